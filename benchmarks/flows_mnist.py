"""Flow posteriors on MNIST: the diagonal Gaussian against planar and inverse autoregressive flows.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/flows_mnist.py            # every row
    python benchmarks/flows_mnist.py --rows diagonal planar-10 --stages 3
    python benchmarks/flows_mnist.py --epochs 1 --limit-train 512 --test-limit 20 --iw-samples 50   # a smoke test

Every row trains the ``iwae-paper`` preset (784-200-200-50 tanh, Glorot, dynamic binarization, Adam
ε 1e-4, batch 128, output bias at the data mean, the ELBO) with ``tinyvae.run.train.train`` on the same
schedule: the first ``--stages`` stages of Burda et al.'s learning-rate schedule (stage i: 3^i epochs at
1e-3 · 10^(−i/7)), 1 + 3 + 9 + 27 = 40 epochs for the default 4 stages. The rows:

* ``diagonal``: q(z|x) = N(μ, diag σ²), the one-layer VAE;
* ``planar-10``, ``planar-40``: that Gaussian followed by 10 or 40 planar steps (Rezende & Mohamed 2015);
* ``iaf-2``, ``iaf-4``: followed by 2 or 4 IAF steps with a masked hidden layer of 100 units and a context
  of 100 (Kingma et al. 2016).

For each trained model, on the first ``--test-limit`` test digits (the run's own fixed binarization):
``--iw-samples`` K importance samples per digit give the NLL estimate −log (1/K) Σ w and, from the same
samples, the negative ELBO −(1/K) Σ log w (far less noisy than one sample per digit), each with its
standard error over the digits; and, since every row scores the same digits, each flow row's paired
difference to the diagonal row with the standard error of that difference (far smaller than either's own:
the digits' difficulty cancels). The default is K = 5000 on the first 2000 test digits: the flows'
log weights cannot take the evaluation's fast path for the diagonal Gaussian, and K = 5000 on all 10,000
digits took about 0.13 to 0.19 CPU seconds per digit for a flow on this machine (measured on 8 digits,
untrained models, loaded machine), 20 to 30 minutes per row. The time per epoch is the training loop's (metrics.jsonl, median over
the epochs); the flow's share is measured apart, as the process CPU time of the flow's forward and
backward over that of whole training steps (forward, backward, Adam) on one batch of 128, one BLAS
thread, median of paired rounds. Prints the BLAS library and kernel (threadpoolctl), a table, then
writes the JSON to benchmarks/results/ (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import tinyvae  # noqa: F401,I001  (first: it tunes OpenBLAS's threads before NumPy loads, as `tinyvae train` does)
import numpy as np

from tinyvae import backend  # noqa: E402
from tinyvae.evaluation import importance  # noqa: E402
from tinyvae.evaluation.evaluate import evaluation_images, load_images  # noqa: E402
from tinyvae.models.vae import load_model  # noqa: E402
from tinyvae.run.config import PRESETS  # noqa: E402
from tinyvae.run.train import TrainConfig, train  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import blas_info  # noqa: E402

ROWS = {"diagonal": {}, "planar-10": dict(flow="planar", flow_steps=10), "planar-40": dict(flow="planar", flow_steps=40),
        "iaf-2": dict(flow="iaf", flow_steps=2, flow_hidden=100), "iaf-4": dict(flow="iaf", flow_steps=4, flow_hidden=100)}


def stage_epochs(stages):
    """Epochs of the first ``stages`` stages of the paper's schedule: Σ_{i<stages} 3^i."""
    return sum(3 ** i for i in range(stages))


def train_row(changes, epochs, limit_train, folder):
    """Train one row; returns (run folder, seconds of each epoch's training loop)."""
    config = TrainConfig(**{**PRESETS["iwae-paper"], **changes, "epochs": epochs, "limit_train": limit_train,
                            "out": str(folder)})
    run_dir = train(config, progress=False, pictures=False, log=lambda line: print("   ", line, flush=True))
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return Path(run_dir), [r["seconds"] for r in rows]


def test_bounds(run_dir, k, limit, seed=0):
    """Per-digit NLL −log (1/K) Σ w and negative ELBO −(1/K) Σ log w on the run's test images: (nll, nelbo)."""
    model = load_model(run_dir / "checkpoint.npz")
    config = json.loads((run_dir / "config.json").read_text())
    x, _ = load_images("test", None, config, limit or None)
    x, _ = evaluation_images(x, config, seed, "test")
    batch = max(8, importance.MAX_ROWS // k)
    batches = (x[i:i + batch].astype(model.dtype) / np.float32(255 if x.dtype == np.uint8 else 1)
               for i in range(0, len(x), batch))
    nll, nelbo = [], []
    for log_w in importance.log_weights(model, batches, k, backend.default_rng(seed, model.xp)):  # (B, K)
        m = log_w.max(axis=1, keepdims=True)
        nll.append(-(np.log(np.exp(log_w - m).mean(axis=1)) + m[:, 0]))  # [eq:iw-nll-estimate]
        nelbo.append(-log_w.mean(axis=1))
    return np.concatenate(nll), np.concatenate(nelbo)


def flow_share(run_dir, rounds, steps):
    """Median over paired rounds of (CPU ms per training step, CPU ms of the flow's forward and backward)."""
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    from tinyvae import Adam  # noqa: PLC0415

    model = load_model(run_dir / "checkpoint.npz")
    x = (load_images("train", None, {}, 128)[0] > 127).astype(np.float32)  # (128, D)
    optimizer = Adam(model, lr=1e-4, eps=1e-4)
    rng = np.random.default_rng(0)
    flow = getattr(model, "flow", None)
    step_ms, flow_ms = [], []
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(rounds):
            eps = rng.standard_normal((steps, 128, model.config.latent), dtype=np.float32)
            start = time.process_time()
            for s in range(steps):
                model.forward(x, eps[s], validate=False)
                model.backward()
                optimizer.step()
            step_ms.append((time.process_time() - start) / steps * 1000)
            if flow is None:
                flow_ms.append(0.0)
                continue
            _, _, context = model.q.forward(x)
            context = context if context.shape[1] else None
            dz, dld = np.ones((128, model.config.latent), np.float32), np.full(128, -1 / 128, np.float32)
            start = time.process_time()
            for s in range(steps):
                flow.forward(eps[s], context)
                flow.backward(dz, dld)
            flow_ms.append((time.process_time() - start) / steps * 1000)
    return statistics.median(step_ms), statistics.median(flow_ms)


def sem(values):
    return float(np.std(values) / math.sqrt(len(values)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    p.add_argument("--stages", type=int, default=4, help="stages of the paper's schedule (default 4: 40 epochs)")
    p.add_argument("--epochs", type=int, default=0, help="epochs instead of --stages (a smoke test)")
    p.add_argument("--limit-train", type=int, default=0, help="first N training digits (default 0: all 60,000)")
    p.add_argument("--iw-samples", type=int, default=5000, help="importance samples per test digit (default 5000)")
    p.add_argument("--test-limit", type=int, default=2000, help="first N test digits (default 2000; 0: all 10,000)")
    p.add_argument("--share-rounds", type=int, default=3)
    p.add_argument("--share-steps", type=int, default=50)
    p.add_argument("--keep", metavar="DIR", help="keep the run folders under DIR (default: a temporary folder)")
    p.add_argument("--out", default=f"benchmarks/results/{datetime.date.today()}-flows-mnist.json")
    args = p.parse_args(argv)
    epochs = args.epochs or stage_epochs(args.stages)
    blas = blas_info()
    print("BLAS: " + ", ".join(f"{k} {v}" for k, v in blas.items() if k != "filepath"), flush=True)
    results, per_digit = {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.keep or scratch)
        for name in args.rows:
            print(f"{name}: training {epochs} epochs", flush=True)
            run_dir, seconds = train_row(ROWS[name], epochs, args.limit_train, root / name)
            start = time.perf_counter()
            nll, nelbo = test_bounds(run_dir, args.iw_samples, args.test_limit)
            eval_seconds = time.perf_counter() - start
            step_ms, flow_ms = flow_share(run_dir, args.share_rounds, args.share_steps)
            per_digit[name] = (nll, nelbo)
            results[name] = dict(**ROWS[name], test_nll=float(nll.mean()), test_nll_sem=sem(nll),
                                 test_neg_elbo=float(nelbo.mean()), test_neg_elbo_sem=sem(nelbo),
                                 epoch_seconds_median=statistics.median(seconds), epoch_seconds=seconds,
                                 cpu_ms_per_step=step_ms, flow_cpu_ms_per_step=flow_ms, flow_share=flow_ms / step_ms,
                                 nll_seconds=eval_seconds)
            print(f"{name}: NLL {nll.mean():.2f} ± {sem(nll):.2f}, −ELBO {nelbo.mean():.2f} ± {sem(nelbo):.2f}, "
                  f"{statistics.median(seconds):.1f} s per epoch, flow {flow_ms / step_ms:.0%} of a step", flush=True)
    if "diagonal" in per_digit:  # paired: the same digits, the same binarization
        for name, (nll, nelbo) in per_digit.items():
            results[name].update(nll_minus_diagonal=float((nll - per_digit["diagonal"][0]).mean()),
                                 nll_minus_diagonal_sem=sem(nll - per_digit["diagonal"][0]),
                                 neg_elbo_minus_diagonal=float((nelbo - per_digit["diagonal"][1]).mean()),
                                 neg_elbo_minus_diagonal_sem=sem(nelbo - per_digit["diagonal"][1]),
                                 step_time_over_diagonal=results[name]["cpu_ms_per_step"]
                                 / results["diagonal"]["cpu_ms_per_step"])
    print(f"\n{'row':<10} {'test NLL':>16} {'test −ELBO':>16} {'NLL − diag.':>14} {'s/epoch':>8} "
          f"{'step/diag.':>10} {'flow share':>10}")
    for name, r in results.items():
        paired = (f"{r['nll_minus_diagonal']:>7.2f} ± {r['nll_minus_diagonal_sem']:<4.2f}"
                  if "nll_minus_diagonal" in r else f"{'-':>14}")
        ratio = f"{r['step_time_over_diagonal']:>10.2f}" if "step_time_over_diagonal" in r else f"{'-':>10}"
        print(f"{name:<10} {r['test_nll']:>9.2f} ± {r['test_nll_sem']:<4.2f} {r['test_neg_elbo']:>9.2f} ± "
              f"{r['test_neg_elbo_sem']:<4.2f} {paired} {r['epoch_seconds_median']:>8.1f} {ratio} {r['flow_share']:>10.1%}")
    out = dict(preset="iwae-paper", epochs=epochs, stages=None if args.epochs else args.stages,
               limit_train=args.limit_train, iw_samples=args.iw_samples, test_limit=args.test_limit,
               rows=results, blas=blas, numpy=np.__version__, python=platform.python_version(),
               when=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=2))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
