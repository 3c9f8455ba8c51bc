"""M2 with few labels on MNIST: test error over several draws of the labelled set, the same classifier trained on
the labels alone, and seconds per step of M2 against the plain VAE of the same sizes.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/m2_labels.py              # 100 labels, 3 draws
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/m2_labels.py --epochs 50 --draws 5
    python benchmarks/m2_labels.py --tiny      # a seconds-long check of the script itself (not a result)

The figure to compare with is Kingma, Rezende, Mohamed & Welling (NeurIPS 2014), Table 1, M2 with 100 labels,
quoted as 11.97 % (± 1.71) test error; ``PAPER["checked"]`` says whether it has been read off the paper itself
(the JSON carries it). Each draw d (label seed d) trains ``tinyvae.run.semi.train_m2`` (784-500-50 softplus
networks by default, the labelled batch beside each unlabelled one, ``--alpha``) and the classifier network
alone on the same labelled examples (``train_classifier_alone``, as many Adam steps as the M2 run). The table
gives each draw's test error and the mean and the sample standard deviation over the draws.

Time: ``--rounds`` paired rounds; in each, ``--steps`` training steps (wall-clock and process CPU time) of M2 (batch_size unlabelled +
labelled_batch labelled images, the encoder and decoder on labelled + 10·unlabelled rows) and of the plain VAE
of the same sizes (784-500-50 softplus, batch_size images), taking turns on the same machine. Seconds per epoch
are the per-step medians times the steps of an epoch over the unlabelled images (for the VAE: over all
60,000), and the epochs of the M2 runs themselves are in their metrics. Prints the BLAS that ran
(threadpoolctl), a table, and writes the JSON to benchmarks/results/ (``--out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import tinyvae  # noqa: F401,I001  (first: it sets OpenBLAS's threads before NumPy loads)
import numpy as np

from tinyvae.models.m2 import M2  # noqa: E402
from tinyvae.models.vae import VAE  # noqa: E402
from tinyvae.nn.optim import Adam  # noqa: E402
from tinyvae.run.semi import SemiConfig, draw_labelled, load_data, train_classifier_alone, train_m2  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import blas_info  # noqa: E402

PAPER = {"labels": 100, "test_error_percent": 11.97, "spread_percent": 1.71,
         "source": "Kingma, Rezende, Mohamed & Welling (NeurIPS 2014), Table 1, M2, N = 100, as quoted",
         "checked": False}  # not yet read off the paper's table
TINY = dict(hidden=(32,), classifier_hidden=(32,), latent=4, epochs=1, limit_train=600, limit_test=300,
            batch_size=50, labelled_batch=20)


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--labels", type=int, default=100)
    p.add_argument("--draws", type=int, default=3, help="labelled sets drawn (label seeds 0, 1, ...)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--alpha", type=float, default=SemiConfig.alpha)
    p.add_argument("--rounds", type=int, default=3, help="paired timing rounds")
    p.add_argument("--steps", type=int, default=5, help="training steps of each model per timing round")
    p.add_argument("--tiny", action="store_true", help="tiny sizes: checks the script, measures nothing")
    p.add_argument("--out", help="JSON path (default benchmarks/results/<date>-m2-labels<N>.json)")
    return p.parse_args(argv)


def draw(config, label_seed, folder, log):
    """(M2's final test error, the classifier-alone test error, M2's seconds per epoch) of one labelled draw."""
    cfg = SemiConfig(**{**config, "label_seed": label_seed, "out": str(folder / f"draw{label_seed}")})
    run = train_m2(cfg, log=log)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    data = load_data(cfg)
    labelled = draw_labelled(data.train_y, cfg.labels, cfg.label_seed)
    _, alone = train_classifier_alone(cfg, data, labelled)
    return records[-1]["test_error"], alone, [r["seconds"] for r in records]


def step_seconds(config, rounds, steps):
    """{"m2": [...], "vae": [...], "m2_cpu": [...], "vae_cpu": [...]}: wall-clock and process CPU seconds per training
    step, one median per round, the two models taking turns. On a machine shared with other jobs the CPU time is
    the steadier figure: other jobs lengthen the wall-clock time, not the work."""
    cfg = SemiConfig(**config)
    rng = np.random.default_rng(0)
    n_u, n_l = cfg.batch_size, min(cfg.labelled_batch, cfg.labels)
    x = (rng.uniform(size=(n_l + n_u, 784)) < 0.15).astype(np.float32)
    labels = np.concatenate([np.arange(n_l) % 10, np.full(n_u, -1)])
    m2 = M2(cfg.model_config(784))
    vae = VAE(hidden=cfg.hidden, latent=cfg.latent, activation=cfg.activation)
    opt_m2, opt_vae = Adam(m2.params, m2.grads, lr=cfg.lr), Adam(vae, lr=cfg.lr)
    eps_m2 = rng.standard_normal((m2.rows(labels), cfg.latent), dtype=np.float32)
    eps_vae = rng.standard_normal((n_u, cfg.latent), dtype=np.float32)

    def m2_step():
        m2.forward(x, labels, eps_m2, validate=False)
        m2.backward()
        opt_m2.step()

    def vae_step():
        vae.forward(x[n_l:], eps_vae, validate=False)
        vae.backward()
        opt_vae.step()

    out = {"m2": [], "vae": [], "m2_cpu": [], "vae_cpu": []}
    for _ in range(rounds):
        for name, step in (("m2", m2_step), ("vae", vae_step)):
            step()  # warm: buffers allocated
            wall, cpu = [], []
            for _ in range(steps):
                start, start_cpu = time.perf_counter(), time.process_time()
                step()
                wall.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
            out[name].append(statistics.median(wall))
            out[f"{name}_cpu"].append(statistics.median(cpu))
    return out


def summary(values):
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "values": values}


def main(argv=None):
    args = parse(argv)
    config = {**(TINY if args.tiny else {}), "labels": args.labels, "alpha": args.alpha}
    if not args.tiny:
        config["epochs"] = args.epochs
    cfg = SemiConfig(**config)
    blas = blas_info()
    print("BLAS:", json.dumps(blas))
    m2_err, alone_err, epoch_s = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for d in range(args.draws):
            err, alone, seconds = draw(config, d, Path(tmp), log=lambda line: print("  " + line))
            m2_err.append(100 * err)
            alone_err.append(100 * alone)
            epoch_s += seconds
            print(f"draw {d}: M2 {100 * err:.2f} %, classifier alone {100 * alone:.2f} %")
    timing = step_seconds(config, args.rounds, args.steps)
    n_unlabelled = (cfg.limit_train or 60_000) - cfg.labels
    steps_m2 = -(-n_unlabelled // cfg.batch_size)
    steps_vae = -(-(cfg.limit_train or 60_000) // cfg.batch_size)
    m2_step, vae_step = statistics.median(timing["m2"]), statistics.median(timing["vae"])
    m2_cpu, vae_cpu = statistics.median(timing["m2_cpu"]), statistics.median(timing["vae_cpu"])
    result = {
        "what": "M2 test error with few labels over draws of the labelled set; the classifier on the labels alone; "
                "seconds per step of M2 and of the plain VAE of the same sizes (medians of paired rounds)",
        "command": "python benchmarks/m2_labels.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "tiny": args.tiny, "config": cfg.to_dict(), "draws": args.draws, "paper": PAPER,
        "m2_test_error_percent": summary(m2_err), "classifier_alone_test_error_percent": summary(alone_err),
        "m2_epoch_seconds_measured": epoch_s,
        "step_seconds": timing, "m2_step_seconds": m2_step, "vae_step_seconds": vae_step,
        "m2_step_cpu_seconds": m2_cpu, "vae_step_cpu_seconds": vae_cpu,
        "m2_epoch_cpu_seconds_from_steps": m2_cpu * steps_m2, "vae_epoch_cpu_seconds_from_steps": vae_cpu * steps_vae,
        "m2_epoch_seconds_from_steps": m2_step * steps_m2, "vae_epoch_seconds_from_steps": vae_step * steps_vae,
        "blas": blas,
    }
    print(f"\n{'':<28}{'test error %':>14}")
    for name, key in (("M2", "m2_test_error_percent"), ("classifier on labels alone", "classifier_alone_test_error_percent")):
        s = result[key]
        spread = f" ± {s['std']:.2f}" if s["std"] is not None else ""
        print(f"{name:<28}{s['mean']:>10.2f}{spread}   draws: {', '.join(f'{v:.2f}' for v in s['values'])}")
    note = "" if PAPER["checked"] else "   (as quoted; not yet checked against the paper)"
    print(f"{'paper (M2, Table 1)':<28}{PAPER['test_error_percent']:>10.2f} ± {PAPER['spread_percent']:.2f}{note}")
    print(f"\nseconds per step: M2 {m2_step:.3f}, VAE {vae_step:.3f} (ratio {m2_step / vae_step:.2f}); per epoch: M2 "
          f"{result['m2_epoch_seconds_from_steps']:.0f} s ({steps_m2} steps), VAE "
          f"{result['vae_epoch_seconds_from_steps']:.0f} s ({steps_vae} steps)")
    print(f"CPU seconds per step: M2 {m2_cpu:.3f}, VAE {vae_cpu:.3f} (ratio {m2_cpu / vae_cpu:.2f}); per epoch: M2 "
          f"{result['m2_epoch_cpu_seconds_from_steps']:.0f} s, VAE {result['vae_epoch_cpu_seconds_from_steps']:.0f} s")
    out = Path(args.out) if args.out else (Path(__file__).resolve().parent / "results" /
                                           f"{date.today().isoformat()}-m2-labels{args.labels}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
