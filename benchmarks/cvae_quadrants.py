"""Quadrant completion on MNIST: the conditional VAE against the deterministic regressor, given 1, 2 and 3
quadrants (Sohn, Lee & Yan 2015, their MNIST experiment), with time per epoch against the plain VAE and peak memory.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/cvae_quadrants.py              # the full table
    python benchmarks/cvae_quadrants.py --epochs 1 --limit-train 256 --limit-test 64 --hidden 16 --latent 3 \\
        --k 4 --vae-epochs 1 --out /tmp/cvae-tiny.json                                          # a tiny setting

For each number of seen quadrants Q, two runs of ``tinyvae.train``: ``--model cvae --condition quadrants
--quadrants Q`` and ``--model quadrant-regressor --quadrants Q``, each for ``--epochs`` epochs with Adam at 1e-3
and batches of 128; then on the first ``--limit-test`` test digits (all 10,000 by default) the Bernoulli
cross-entropy of the unseen quadrants: importance-sampled with K recognition samples for the CVAE
(``tinyvae.conditional_nll``) and exact for the regressor, in nats per digit, beside the CVAE's negative ELBO.
By default the digits are grey levels, which is what Pyro's example trains on and scores with the Bernoulli
cross-entropy, so the figures stay comparable with its table; on grey levels they are cross-entropies, not
−log p(x_u | c) (derivations/bernoulli.md#grey-levels-a-cross-entropy-not-a-likelihood). With ``--binarize
static`` or ``dynamic`` the runs train on binarized digits, the test digits get the fixed binarization every
binarized run's test set gets, and the figures are negative log-likelihoods. The plain VAE of the same sizes trains
``--vae-epochs`` epochs for the time comparison. Each run is a fresh process, whose peak resident memory
(``ru_maxrss``: the data, the model, the optimizer and the evaluation) is reported, after training
and at the end. Seconds per epoch are the training loop alone, as written to ``metrics.jsonl``, and its
process CPU seconds (``m2_labels.EpochCPU``: from the end of the first step to the end of the last,
scaled to the whole epoch); the ratios to the plain VAE are the median epoch's.

The table Pyro's CVAE tutorial reports (baseline 100.4 / 61.9 / 25.4, CVAE 71.8 / 51.0 / 24.2 nats for
1 / 2 / 3 quadrants) was made with another protocol; the differences are in ``PROTOCOL_DIFFERENCES``,
which the JSON repeats.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import tinyvae  # noqa: F401,I001  (first: it tunes OpenBLAS's threads before NumPy loads, as `tinyvae train` does)
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import blas_info  # noqa: E402
from m2_labels import EpochCPU  # noqa: E402

PYRO_TABLE = {"baseline": {1: 100.4, 2: 61.9, 3: 25.4}, "cvae": {1: 71.8, 2: 51.0, 3: 24.2}}
PROTOCOL_DIFFERENCES = [
    "Pyro's CVAE has a prior network p(z|x, y_hat) fed the baseline's prediction y_hat; tinyvae's has p(z) = "
    "N(0, I) and a decoder that reads the condition c = [seen pixels | mask] (derivations/conditional.md)",
    "Pyro's generation network reads z only; tinyvae's decoder reads [z | c]",
    "Pyro's recognition network reads one image holding the seen and the unseen pixels; tinyvae's reads [x | c]",
    "Pyro's CVAE figure is the negative ELBO with 10 samples (Trace_ELBO, num_particles=10) with the prior "
    "network in the KL; tinyvae's is the importance-sampled -log p(x_u | c) with K samples (an estimate that "
    "tightens with K), the negative ELBO given beside it",
    "Pyro trains until the test-set loss has not improved for 3 epochs and keeps the best epoch, selecting on "
    "the set it reports (its tutorial: 'We trained only for 50 epochs with early stopping patience of 3 "
    "epochs'; the example script's default is at most 101); "
    "tinyvae trains a fixed number of epochs and reports the last",
    "Pyro's loader scales MNIST to [0, 1] and does not binarize, as tinyvae's default --binarize none; both "
    "figures are per test digit, summed over the unseen pixels; Pyro scores all 10,000 test digits, this "
    "script the first --limit-test (0: all)",
    "Pyro's networks: 500-500 ReLU, z 200, for the baseline, the prior, recognition and generation networks; "
    "tinyvae's sizes are this script's --hidden and --latent",
    "Pyro averages per-batch means over batches of 32 (the last, partial batch weighted as a full one); tinyvae "
    "averages over the digits",
]


def train_and_score(job):
    """One fresh process: train ``job['config']``, score the test digits; returns figures and peak memory."""
    import resource  # noqa: PLC0415

    from tinyvae import conditional_nll, evaluate_elbo, load_model  # noqa: PLC0415
    from tinyvae.data import load_dataset  # noqa: PLC0415
    from tinyvae.run.train import TrainConfig, train  # noqa: PLC0415

    config = TrainConfig(**job["config"])
    hook = EpochCPU()
    run_dir = Path(train(config, progress=False, pictures=False, log=lambda line: None, on_step=hook))
    seconds = [json.loads(line)["seconds"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    out = {"epoch_seconds": seconds, "epoch_cpu_seconds": hook.seconds, "run": str(run_dir),
           "peak_rss_mib_after_training": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if config.model != "vae":
        model = load_model(run_dir / "checkpoint.npz")
        x = load_dataset().test_x[:job["limit_test"] or None]
        if config.binarize != "none":  # the test digits as the run scores them: binary, so the figures are NLLs
            from tinyvae.data import binarize_static  # noqa: PLC0415
            from tinyvae.run.config import EVAL_BINARIZE_SEED  # noqa: PLC0415
            x = binarize_static(x, EVAL_BINARIZE_SEED)
        start = time.perf_counter()
        nll = conditional_nll(model, x, k=job["k"], seed=job["seed"])
        out.update(nll=float(nll.mean()), nll_sem=float(nll.std() / np.sqrt(len(nll))), test_digits=int(len(x)),
                   eval_seconds=time.perf_counter() - start)
        if config.model == "cvae":
            out["neg_elbo"] = float(evaluate_elbo(model, x, seed=job["seed"])["loss"])
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return out


def jobs(args, folder):
    """{name: job} of every run, in the order they run."""
    common = dict(hidden=tuple(args.hidden), latent=args.latent, batch_size=128, lr=1e-3, seed=args.seed,
                  limit_train=args.limit_train, limit_test=args.limit_test, init="uniform", binarize=args.binarize)
    out = {"vae": dict(config={**common, "model": "vae", "epochs": args.vae_epochs})}
    for q in args.quadrants:
        out[f"cvae q{q}"] = dict(config={**common, "model": "cvae", "condition": "quadrants", "quadrants": q,
                                         "epochs": args.epochs})
        out[f"regressor q{q}"] = dict(config={**common, "model": "quadrant-regressor", "condition": "quadrants",
                                              "quadrants": q, "epochs": args.epochs})
    for name, job in out.items():
        job["config"]["out"] = str(folder / name.replace(" ", "-"))
        job.update(k=args.k, seed=args.seed, limit_test=args.limit_test)
    return out


def median_or_none(values):
    """The median, or None where nothing was measured (``EpochCPU`` needs two steps an epoch)."""
    return statistics.median(values) if values else None


def table(results, quadrants):
    """The NLL table as {model: {quadrants: nats}}, with the time ratios to the plain VAE."""
    vae = statistics.median(results["vae"]["epoch_seconds"])
    vae_cpu = median_or_none(results["vae"].get("epoch_cpu_seconds"))
    rows = {"regressor": {}, "cvae": {}, "cvae_neg_elbo": {}, "seconds_per_epoch_vs_vae": {},
            "cpu_seconds_per_epoch_vs_vae": {}}
    for q in quadrants:
        rows["regressor"][q] = results[f"regressor q{q}"]["nll"]
        rows["cvae"][q] = results[f"cvae q{q}"]["nll"]
        rows["cvae_neg_elbo"][q] = results[f"cvae q{q}"]["neg_elbo"]
        rows["seconds_per_epoch_vs_vae"][q] = {
            m: statistics.median(results[f"{m} q{q}"]["epoch_seconds"]) / vae for m in ("cvae", "regressor")}
        cpu = {m: median_or_none(results[f"{m} q{q}"].get("epoch_cpu_seconds")) for m in ("cvae", "regressor")}
        rows["cpu_seconds_per_epoch_vs_vae"][q] = {
            m: None if c is None or not vae_cpu else c / vae_cpu for m, c in cpu.items()}
    return rows


def row_labels(binarize, k):
    """(row, label) of the printed table: on grey levels the figures are cross-entropies, not NLLs."""
    what = "NLL" if binarize != "none" else "cross-entropy"
    return (("regressor", f"regressor (exact {what})"), ("cvae", f"CVAE (IS {what}, K={k})"),
            ("cvae_neg_elbo", "CVAE negative ELBO"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quadrants", type=int, nargs="+", default=[1, 2, 3], choices=[1, 2, 3])
    p.add_argument("--epochs", type=int, default=30, help="epochs of the CVAE and of the regressor (default 30)")
    p.add_argument("--vae-epochs", type=int, default=3, help="epochs of the plain VAE timed beside them (default 3)")
    p.add_argument("--hidden", type=int, nargs="+", default=[500, 500], help="hidden widths (default 500 500)")
    p.add_argument("--latent", type=int, default=200, help="Z (default 200)")
    p.add_argument("--k", type=int, default=100, help="importance samples per test digit (default 100)")
    p.add_argument("--limit-train", type=int, default=0, help="training digits (default 0: all 60,000)")
    p.add_argument("--limit-test", type=int, default=0, help="test digits scored (default 0: all 10,000)")
    p.add_argument("--binarize", choices=("none", "static", "dynamic"), default="none",
                   help="none (default: grey levels, as Pyro's example; the figures are cross-entropies), or "
                        "train on binarized digits and score binarized test digits (the figures are NLLs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="the JSON (default benchmarks/results/<date>-cvae-quadrants.json)")
    args = p.parse_args(argv)
    out = Path(args.out or Path(__file__).resolve().parent / "results" / f"{time.strftime('%Y-%m-%d')}-cvae-quadrants.json")
    print("BLAS:", json.dumps(blas_info()), flush=True)
    context = multiprocessing.get_context("spawn")  # each run's peak memory is its own
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, job in jobs(args, Path(tmp)).items():
            with context.Pool(1) as pool:
                results[name] = pool.apply(train_and_score, (job,))
            r = results[name]
            what = "NLL" if args.binarize != "none" else "cross-entropy"
            figure = f"  {what} {r['nll']:.2f} ± {r['nll_sem']:.2f}" if "nll" in r else ""
            print(f"{name:14s} {statistics.median(r['epoch_seconds']):7.2f} s/epoch "
                  f"({median_or_none(r['epoch_cpu_seconds']) or float('nan'):7.2f} CPU s)  peak {r['peak_rss_mib']:7.0f} MiB "
                  f"({r['peak_rss_mib_after_training']:7.0f} after training)"
                  f"{figure}", flush=True)
    rows = table(results, args.quadrants)
    grey = " (grey levels)" if args.binarize == "none" else f" (binarized, {args.binarize})"
    print(f"\nnats per digit, unseen quadrants{grey}   " + "   ".join(f"{q} seen" for q in args.quadrants))
    for model, label in row_labels(args.binarize, args.k):
        print(f"{label:34s}" + "".join(f"{rows[model][q]:9.2f}" for q in args.quadrants))
    print(f"{'Pyro tutorial base/CVAE (grey)':34s}" + "".join(
        f"{PYRO_TABLE['baseline'][q]:5.1f}/{PYRO_TABLE['cvae'][q]:.1f}" for q in args.quadrants))
    doc = {"command": "python benchmarks/cvae_quadrants.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "date": time.strftime("%Y-%m-%d"), "machine": platform.platform(), "cpu": platform.processor(),
           "blas": blas_info(), "settings": {k: v for k, v in vars(args).items() if k != "out"},
           "table_nats": {m: {str(q): v for q, v in row.items()} for m, row in rows.items()},
           "runs": {name: {k: v for k, v in r.items() if k != "run"} for name, r in results.items()},
           "pyro_table_nats": {m: {str(q): v for q, v in row.items()} for m, row in PYRO_TABLE.items()},
           "protocol_differences": PROTOCOL_DIFFERENCES}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}")
    return doc


if __name__ == "__main__":
    main()
