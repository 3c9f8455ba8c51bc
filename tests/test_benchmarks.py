"""The benchmark's arithmetic (not its timings: benchmarks run as scripts, never as timed tests)."""

import importlib.util
from pathlib import Path

import numpy as np

from tinyvae.vae import VAE

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_training.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_training", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_lower_bound_counts_every_multiply_of_a_training_step_once():
    bench = load_bench()
    shapes = bench.dense_shapes()
    model = VAE()  # the default model is the benchmarked one
    weights = [layer.params["W"].shape for net in (model.encoder, model.decoder)
               for layer in net.layers if "W" in layer.params]
    assert shapes == weights
    # by hand: forward x W, backward dW = xᵀ dy for all four layers, dX = dy Wᵀ for all but the first
    macs_per_example = 2 * (784 * 400 + 400 * 40 + 20 * 400 + 400 * 784) + (400 * 40 + 20 * 400 + 400 * 784)
    assert bench.epoch_matmul_flops(60_000, shapes) == 2 * 60_000 * macs_per_example
    assert np.isclose(bench.epoch_matmul_flops(60_000, shapes) / 1e9, 196.8)
