"""Seconds per training epoch of the IWAE paper's preset with one and with two stochastic layers.

    python benchmarks/bench_two_layer.py                  # 3 rounds of 2 epochs each, 60,000 digits
    python benchmarks/bench_two_layer.py --rounds 5 --epochs 3

Both models train with ``tinyvae.train.train`` on the ``iwae-paper`` preset (784-200-200-50 tanh,
dynamic binarization, Adam ε 1e-4, batch 128, the ELBO): one stochastic layer as in the one-layer
reproduction, and ``stochastic_layers=2`` (z1 100, z2 50, 100-100 between them, every term of the
ELBO sampled). Each epoch's seconds are the training loop alone, as written to ``metrics.jsonl``.
The two take turns within each round, so both see the same drift of a shared machine; the ratio
is taken within each round and the median over rounds is quoted. Prints the BLAS library, kernel
and threads that ran (threadpoolctl), a table, then the JSON.
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
from tinyvae.train import PRESETS, TWO_LAYER_PRESETS, TrainConfig, train  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import blas_info  # noqa: E402

MODELS = {"one layer": {}, "two layers": dict(stochastic_layers=2, **TWO_LAYER_PRESETS["iwae-paper"])}


def epoch_seconds(changes, epochs, dataset, folder):
    """Seconds of each training epoch (the loop alone) of the preset with ``changes``."""
    config = TrainConfig(**{**PRESETS["iwae-paper"], **changes, "epochs": epochs, "out": str(folder)})
    run_dir = train(config, dataset=dataset, progress=False, pictures=False, log=lambda line: None)
    return [json.loads(line)["seconds"] for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds (default 3)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per model per round (default 2)")
    args = parser.parse_args(argv)
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
