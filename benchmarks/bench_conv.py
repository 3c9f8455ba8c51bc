"""Seconds per training epoch of the conv VAE (the Keras example's layers), against PyTorch and the FLOP bound.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_conv.py   # 3 rounds of 1 epoch
    python benchmarks/bench_conv.py --rounds 2 --limit-train 15000                  # quicker, scaled to 60,000

tinyvae's epoch is ``tinyvae.run.train.train`` with ``TrainConfig(arch="conv", latent=2)``, batch 128, Adam
1e-3, float32: everything a real run does per step (batch gathering, uint8 -> float, ε, forward,
backward, Adam). Its seconds are the training loop alone, as written to ``metrics.jsonl``.

PyTorch (optional, never required) trains the same layers (``benchmarks/torch_conv_vae.py``: summed
BCE + KL, ``torch.optim.Adam``, batches sliced from a preloaded tensor) in a process of its own. The
two take turns, round by round, so that both see the same drift of a shared machine; the ratio is
taken within each round and the median over rounds is quoted. With ``--limit-train N`` each side
trains on the first N digits and its seconds are scaled by 60,000 / N.

The bound is the epoch's convolution and matrix-product FLOPs (forward; the weight gradient of every
layer; the input gradient of every layer but the first, whose input is data; 2 FLOPs per
multiply-add) divided by the best rate NumPy reaches on a 2048 × 2048 float32 product, sampled
between the timed stretches. The run prints which BLAS kernel and how many threads ran
(threadpoolctl): OpenBLAS picks its kernel by CPU unless OPENBLAS_CORETYPE says otherwise, so unset
it (and OPENBLAS_L2_SIZE) for this command. Prints a table, then the JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import tinyvae  # noqa: F401,I001  (first: it tunes OpenBLAS's threads before NumPy loads, as `tinyvae train` does)
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_training import blas_info, cpu_name, matmul_rate, torch_available  # noqa: E402
from tinyvae.nn import Conv2d, ConvTranspose2d, Dense, Flatten, Unflatten  # noqa: E402
from tinyvae.run.train import TrainConfig, train  # noqa: E402
from tinyvae.models.vae import VAE  # noqa: E402

EPOCH = 60_000  # digits in an MNIST training epoch


def layer_macs(net, shape):
    """[(layer, multiply-adds per example of its forward product)] of a Sequential, from the input
    shape of one example (a tuple without the batch axis); layers without a product are left out."""
    out = []
    for layer in net.layers:
        if isinstance(layer, Dense):
            out.append((layer, layer.d_in * layer.d_out))
            shape = (layer.d_out,)
        elif isinstance(layer, Conv2d):
            h, w = layer.output_hw(shape[1:])
            out.append((layer, layer.c_out * layer.c_in * layer.kernel ** 2 * h * w))
            shape = (layer.c_out, h, w)
        elif isinstance(layer, ConvTranspose2d):
            out.append((layer, layer.c_in * layer.c_out * layer.kernel ** 2 * shape[1] * shape[2]))
            shape = (layer.c_out, *layer.output_hw(shape[1:]))
        elif isinstance(layer, Unflatten):
            shape = layer.shape
        elif isinstance(layer, Flatten):
            shape = (int(np.prod(shape)),)
    return out


def epoch_flops(model, n_examples):
    """FLOPs of one training epoch's products: forward, dW of every layer, dX of every layer that needs it."""
    d, z = model.config.input_dim, model.config.latent
    per_example = 0
    for layer, macs in layer_macs(model.encoder, (d,)) + layer_macs(model.decoder, (z,)):
        needs_dx = getattr(layer, "need_dx", True)
        per_example += macs * (2 + needs_dx)  # forward, weight gradient, input gradient
    return 2 * n_examples * per_example


def time_tinyvae(epochs, batch_size, limit, latent, workdir, device="cpu"):
    config = TrainConfig(arch="conv", latent=latent, epochs=epochs, batch_size=batch_size, limit_train=limit,
                         limit_test=1000, seed=0, out=str(workdir), device=device)
    run = train(config, progress=False, log=lambda *a, **k: None, pictures=False)
    rows = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]
    return [r["seconds"] for r in rows]


def time_torch(epochs, batch_size, limit, latent, device="cpu"):
    cmd = [sys.executable, str(HERE / "torch_conv_vae.py"), "--epochs", str(epochs), "--batch-size", str(batch_size),
           "--limit-train", str(limit), "--latent", str(latent), "--device", device]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="rounds, each tinyvae then PyTorch")
    p.add_argument("--epochs", type=int, default=1, help="epochs timed per round and side")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--latent", type=int, default=2)
    p.add_argument("--limit-train", type=int, default=0, help="train on the first N digits (0: all 60,000)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                   help="gpu: tinyvae on CuPy, PyTorch on CUDA (the FLOP bound stays the CPU's)")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.epochs < 1:
        p.error("--rounds and --epochs must be at least 1")
    n = args.limit_train or EPOCH
    scale = EPOCH / n  # seconds per pass over n digits -> seconds per 60,000-digit epoch
    have_torch = not args.no_torch and torch_available()
    blas = blas_info()
    print(f"CPU: {cpu_name()}; BLAS: " + ", ".join(f"{k} {v}" for k, v in blas.items() if k != "filepath"),
          flush=True)
    model = VAE(arch="conv", latent=args.latent)
    flops = epoch_flops(model, EPOCH)
    rates = [matmul_rate(np)]
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            ours = [s * scale for s in time_tinyvae(args.epochs, args.batch_size, n, args.latent, Path(tmp) / f"r{r}",
                                                   args.device)]
            rates.append(matmul_rate(np))
            row = {"tinyvae": ours}
            if have_torch:
                theirs = time_torch(args.epochs, args.batch_size, n, args.latent, args.device)
                row["torch"] = [s * scale for s in theirs["seconds"]]
                row["torch_threads"] = theirs["threads"]
                row["ratio"] = statistics.median(ours) / statistics.median(row["torch"])
                rates.append(matmul_rate(np))
            rounds.append(row)
            print(f"round {r + 1}: tinyvae {statistics.median(ours):.1f} s/epoch" +
                  (f", PyTorch {statistics.median(row['torch']):.1f} s/epoch, ratio {row['ratio']:.2f}" if have_torch
                   else ""), flush=True)
    rate = max(rates)
    bound = flops / (rate * 1e9)
    ours = statistics.median(s for row in rounds for s in row["tinyvae"])
    result = {"model": model.config.describe(), "batch_size": args.batch_size, "digits_timed": n,
              "epoch_gflop": flops / 1e9, "best_matmul_gflops": rate, "flop_bound_seconds": bound,
              "tinyvae_seconds": ours, "tinyvae_over_bound": ours / bound, "rounds": rounds, "blas": blas}
    print(f"\n{'conv VAE, batch ' + str(args.batch_size):<28} {'s/epoch':>8}  {'× bound':>8}")
    print(f"{'FLOP bound':<28} {bound:>8.1f}  {1.0:>8.2f}   ({flops / 1e9:.0f} GFLOP at {rate:.0f} GFLOP/s)")
    print(f"{'tinyvae':<28} {ours:>8.1f}  {ours / bound:>8.2f}")
    if have_torch:
        theirs = statistics.median(s for row in rounds for s in row["torch"])
        ratio = statistics.median(row["ratio"] for row in rounds)
        result.update(torch_seconds=theirs, ratio_to_torch=ratio)
        print(f"{'PyTorch (' + str(rounds[0]['torch_threads']) + ' threads)':<28} {theirs:>8.1f}  {theirs / bound:>8.2f}")
        print(f"tinyvae / PyTorch, median of the paired rounds: {ratio:.2f}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
