"""Seconds per training epoch of the IWAE paper's preset with one and with two stochastic layers.

    python benchmarks/bench_two_layer.py                  # 3 rounds of 2 epochs each, 60,000 digits
    python benchmarks/bench_two_layer.py --rounds 5 --epochs 3
    python benchmarks/bench_two_layer.py --cpu-steps 100    # CPU time per step instead (a shared machine)

Both models train with ``tinyvae.run.train.train`` on the ``iwae-paper`` preset (784-200-200-50 tanh,
dynamic binarization, Adam ε 1e-4, batch 128, the ELBO): one stochastic layer as in the one-layer
reproduction, and ``stochastic_layers=2`` (z1 100, z2 50, 100-100 between them, every term of the
ELBO sampled). Each epoch's seconds are the training loop alone, as written to ``metrics.jsonl``.
The two take turns within each round, so both see the same drift of a shared machine; the ratio
is taken within each round and the median over rounds is quoted. Prints the BLAS library, kernel
and threads that ran (threadpoolctl), a table, then the JSON.

On a machine shared with other jobs the wall-clock seconds of an epoch measure the load more than the
model. ``--cpu-steps S`` times instead the process CPU time of S training steps (forward, backward and
Adam on one fixed batch of 128 binarized digits) with one BLAS thread, for each model in turn, in
paired rounds: a figure that other jobs on the machine disturb far less.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import tinyvae  # noqa: F401,I001  (first: it tunes OpenBLAS's threads before NumPy loads, as `tinyvae train` does)
import numpy as np

from tinyvae.data import load_dataset  # noqa: E402
from tinyvae.run.config import PRESETS, TWO_LAYER_PRESETS  # noqa: E402
from tinyvae.run.train import TrainConfig, train  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import blas_info  # noqa: E402

MODELS = {"one layer": {}, "two layers": dict(stochastic_layers=2, **TWO_LAYER_PRESETS["iwae-paper"])}


def epoch_seconds(changes, epochs, dataset, folder):
    """Seconds of each training epoch (the loop alone) of the preset with ``changes``."""
    config = TrainConfig(**{**PRESETS["iwae-paper"], **changes, "epochs": epochs, "out": str(folder)})
    run_dir = train(config, dataset=dataset, progress=False, pictures=False, log=lambda line: None)
    return [json.loads(line)["seconds"] for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def step_cpu_ms(rounds, steps):
    """{model: [CPU milliseconds per step, one per round]} with one BLAS thread, the models taking turns."""
    import time  # noqa: PLC0415

    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    from tinyvae import Adam, build_model  # noqa: PLC0415

    dataset = load_dataset()
    x = (dataset.train_x[:128] > 127).astype(np.float32)  # (N, D) one batch of binarized digits
    configs = {name: TrainConfig(**{**PRESETS["iwae-paper"], **changes}).model_config(x.shape[1])
               for name, changes in MODELS.items()}
    models = {name: build_model(config) for name, config in configs.items()}
    optimizers = {name: Adam(model, lr=1e-3, eps=1e-4) for name, model in models.items()}
    rng = np.random.default_rng(0)
    out = {name: [] for name in models}
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(rounds):
            for name, model in models.items():
                eps = rng.standard_normal((steps, 128, model.config.latent + model.config.latent2), dtype=np.float32)
                start = time.process_time()
                for step in range(steps):
                    model.forward(x, eps[step], validate=False)
                    model.backward()
                    optimizers[name].step()
                out[name].append((time.process_time() - start) / steps * 1000)
            print(", ".join(f"{k} {v[-1]:.2f} ms" for k, v in out.items()), flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds (default 3)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per model per round (default 2)")
    parser.add_argument("--cpu-steps", type=int, default=0, metavar="S",
                        help="time the CPU of S steps per model and round instead of whole epochs")
    args = parser.parse_args(argv)
    if args.cpu_steps:
        per_step = step_cpu_ms(args.rounds, args.cpu_steps)
        ratios = [b / a for a, b in zip(per_step["one layer"], per_step["two layers"])]
        result = {"rounds": args.rounds, "steps_per_round": args.cpu_steps, "cpu_ms_per_step": per_step,
                  "median_cpu_ms_per_step": {k: statistics.median(v) for k, v in per_step.items()},
                  "median_ratio_two_to_one": statistics.median(ratios), "ratios": ratios, "blas_threads": 1,
                  "blas": blas_info(), "numpy": np.__version__, "python": platform.python_version()}
        print(f"median CPU ms per step (one BLAS thread): " + ", ".join(
            f"{k} {v:.2f}" for k, v in result["median_cpu_ms_per_step"].items())
              + f"; two layers / one layer, median of {args.rounds} paired rounds: {statistics.median(ratios):.2f}")
        print(json.dumps(result, indent=2))
        return result
    dataset = load_dataset()
    seconds = {name: [] for name in MODELS}  # every epoch of every round
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            medians = {}
            for name, changes in MODELS.items():
                epochs = epoch_seconds(changes, args.epochs, dataset, Path(tmp) / f"{r}-{name.replace(' ', '-')}")
                seconds[name] += epochs
                medians[name] = statistics.median(epochs)
            ratios.append(medians["two layers"] / medians["one layer"])
            print(f"round {r + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in medians.items())
                  + f", ratio {ratios[-1]:.2f}", flush=True)
    result = {"rounds": args.rounds, "epochs_per_round": args.epochs, "train_examples": len(dataset.train_x),
              "median_epoch_seconds": {k: statistics.median(v) for k, v in seconds.items()},
              "epoch_seconds": seconds, "median_ratio_two_to_one": statistics.median(ratios), "ratios": ratios,
              "blas": blas_info(), "numpy": np.__version__, "python": platform.python_version(),
              "machine": platform.machine()}
    print(f"median seconds per epoch: " + ", ".join(f"{k} {v:.2f}" for k, v in
                                                   result["median_epoch_seconds"].items())
          + f"; two layers / one layer, median of {args.rounds} paired rounds: {result['median_ratio_two_to_one']:.2f}")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
