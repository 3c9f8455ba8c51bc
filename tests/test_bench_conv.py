"""The conv benchmark's arithmetic (not its timings: benchmarks run as scripts, never as timed tests)."""

import importlib.util
import sys
from pathlib import Path

from tinyvae.models.vae import VAE

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_conv.py"


def load_bench():
    sys.path.insert(0, str(BENCH.parent))
    spec = importlib.util.spec_from_file_location("bench_conv", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_conv_flop_count_matches_a_hand_count_of_the_keras_architecture():
    bench = load_bench()
    model = VAE(arch="conv", latent=2)
    # multiply-adds per example, by hand: conv 1→32 on 14×14 outputs, conv 32→64 on 7×7, dense 3136·16 and 16·4;
    # dense 2·3136, transposed 64→64 over 7×7 inputs, 64→32 over 14×14, 32→1 over 28×28 (3×3 kernels)
    forward = [32 * 9 * 196, 64 * 288 * 49, 3136 * 16, 16 * 4, 2 * 3136, 64 * 576 * 49, 64 * 288 * 196, 32 * 9 * 784]
    assert [macs for _, macs in bench.layer_macs(model.encoder, (784,)) + bench.layer_macs(model.decoder, (2,))] \
        == forward
    # every product three times (forward, dW, dX) but the first convolution's dX: its input is data
    assert bench.epoch_flops(model, 60_000) == 2 * 60_000 * (3 * sum(forward) - forward[0])
    assert round(bench.epoch_flops(model, 60_000) / 1e9) == 2391  # 2.4 TFLOP per epoch
