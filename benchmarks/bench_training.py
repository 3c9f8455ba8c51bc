"""Seconds per training epoch of the pytorch/examples VAE, against the matrix-multiply lower bound.

    python benchmarks/bench_training.py                   # CPU, batch sizes 32 128 512
    python benchmarks/bench_training.py --device gpu      # CuPy (and PyTorch CUDA if present)

The model is tinyvae's default: 784-400-20, ReLU, grey-level BCE + KL, Adam 1e-3, float32,
60,000 MNIST digits per epoch, trained by ``tinyvae.train.train`` itself, so the figure includes
everything a real run does per step (batch gathering, uint8 -> float, drawing ε, forward,
backward, Adam). Each epoch's seconds are the training loop alone, as written to
``metrics.jsonl`` (the test-set evaluation after each epoch is timed separately and left out);
the GPU path synchronizes the device before reading the timer.

The lower bound is the epoch's matrix-multiply FLOPs (forward; dW of every dense layer; dX of
every layer but the first, whose input is data) divided by the rate NumPy reaches on a large
square float32 product on this machine, measured in the same run. Nothing can train an epoch
faster than its multiplies alone.

Where PyTorch is installed (optional, never required), an equivalent PyTorch model (same
layers, BCE + KL summed, torch.optim.Adam defaults, batches sliced from a preloaded tensor) is
timed in the same run. The peak resident memory is that of a whole ``tinyvae train --epochs 1``
process on full MNIST, each measured in a fresh process, without and with the pictures drawn at
the end. Prints a table, then the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tinyvae  # noqa: F401,I001  (first: it tunes OpenBLAS's threads before NumPy loads, as `tinyvae train` does)
import numpy as np

HERE = Path(__file__).resolve().parent

from tinyvae import backend  # noqa: E402
from tinyvae.data import load_dataset  # noqa: E402
from tinyvae.train import TrainConfig, train  # noqa: E402

SIZES = (784, 400, 20)


def dense_shapes(d=784, h=400, z=20):
    """(D_in, D_out) of every dense layer of the default VAE; the encoder head gives μ and log σ²."""
    return [(d, h), (h, 2 * z), (z, h), (h, d)]


def epoch_matmul_flops(n_examples, shapes):
    """Multiply-add FLOPs (2 per multiply-add) of one epoch: forward, dW, and dX but for the first layer."""
    per_example = sum(2 * a * b for a, b in shapes)  # forward
    per_example += sum(2 * a * b for a, b in shapes)  # dW = Xᵀ dY
    per_example += sum(2 * a * b for a, b in shapes[1:])  # dX = dY Wᵀ
    return n_examples * per_example


def matmul_rate(xp, size=2048, repeats=11):
    """GFLOP/s of a (size × size) float32 product on this machine (median of several)."""
    rng = backend.default_rng(0, xp)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = xp.empty((size, size), dtype=np.float32)  # preallocated: time the product, not page faults
    for _ in range(3):
        xp.matmul(a, b, out=out)
    times = []
    for _ in range(repeats):
        backend.synchronize(xp)
        start = time.perf_counter()
        xp.matmul(a, b, out=out)
        backend.synchronize(xp)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / min(times) / 1e9  # the best run: the rate NumPy can reach, for a true lower bound


def time_tinyvae(batch_size, epochs, device, workdir):
    config = TrainConfig(epochs=epochs, batch_size=batch_size, device=device, seed=0,
                         out=str(Path(workdir) / f"tinyvae-b{batch_size}"))
    run = train(config, progress=False, log=lambda *a, **k: None, pictures=False)
    rows = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]
    return [r["seconds"] for r in rows], [r["test_loss"] for r in rows]


def time_torch(batch_sizes, epochs, device):
    """PyTorch's seconds per epoch, in a process of its own: its OpenMP threads keep spinning after
    each parallel region and would slow whatever runs next in the same process."""
    try:
        import torch  # noqa: F401, PLC0415
    except ImportError:
        return {}
    cmd = [sys.executable, str(HERE / "torch_vae.py"), "--epochs", str(epochs), "--device", device,
           "--batch-sizes", *map(str, batch_sizes)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return {int(b): secs for b, secs in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def peak_memory_mib(device, pictures):
    """Peak RSS of a whole `tinyvae train --epochs 1` process on full MNIST, in its own process."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "tinyvae.cli", "train", "--epochs", "1", "--no-progress",
               "--device", device, "--out", str(Path(tmp) / "run")] + ([] if pictures else ["--no-pictures"])
        out = subprocess.run([sys.executable, "-c", code, *cmd], check=True, capture_output=True, text=True)
    return int(out.stdout.split()[-1]) / 1024  # ru_maxrss is in KiB on Linux


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 512])
    p.add_argument("--epochs", type=int, default=5, help="epochs timed per batch size (the median is quoted)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory run")
    args = p.parse_args(argv)

    xp = backend.namespace(args.device)
    n_train = len(load_dataset().train_x)
    shapes = dense_shapes(*SIZES)
    # The rate is sampled before every batch size and the best sample is kept: this machine's speed
    # drifts, and a lower bound must come from the fastest the multiplies ever ran.
    rates = [matmul_rate(xp)]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for b in args.batch_sizes:
            rates.append(matmul_rate(xp))
            secs, test_losses = time_tinyvae(b, args.epochs, args.device, tmp)
            rates.append(matmul_rate(xp))
            results.append({"batch_size": b, "tinyvae_s_per_epoch": statistics.median(secs), "tinyvae_runs": secs,
                            "test_loss_after_last_epoch": test_losses[-1]})
            print(f"batch {b:4d}: tinyvae {statistics.median(secs):.3f} s/epoch", flush=True)
    torch_secs = {} if args.no_torch else time_torch(args.batch_sizes, args.epochs, args.device)
    for row in results:
        secs = torch_secs.get(row["batch_size"])
        if secs:
            row.update({"torch_s_per_epoch": statistics.median(secs), "torch_runs": secs,
                        "ratio_to_torch": row["tinyvae_s_per_epoch"] / statistics.median(secs)})
            print(f"batch {row['batch_size']:4d}: torch {row['torch_s_per_epoch']:.3f} s/epoch, "
                  f"tinyvae/torch {row['ratio_to_torch']:.2f}", flush=True)
    best = max(rates)
    for row in results:  # every row against the best rate seen in the whole run
        row["matmul_lower_bound_s"] = epoch_matmul_flops(n_train, shapes) / (best * 1e9)
        row["ratio_to_lower_bound"] = row["tinyvae_s_per_epoch"] / row["matmul_lower_bound_s"]
    print(f"lower bound from the best matmul rate of the run ({best:.0f} GFLOP/s): "
          f"{results[0]['matmul_lower_bound_s']:.3f} s per epoch; ratios "
          + ", ".join(f"batch {r['batch_size']}: {r['ratio_to_lower_bound']:.2f}" for r in results))
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "device": args.device,
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__},
        "matmul_gflops": max(rates),
        "matmul_gflops_samples": rates,
        "epoch_matmul_gflop": epoch_matmul_flops(n_train, shapes) / 1e9,
        "epochs_timed_per_batch_size": args.epochs,
        "results": results,
    }
    try:
        import torch  # noqa: PLC0415
        report["machine"]["torch"] = torch.__version__
    except ImportError:
        pass
    if not args.no_memory:
        report["peak_rss_mib_training"] = peak_memory_mib(args.device, pictures=False)
        report["peak_rss_mib_training_and_pictures"] = peak_memory_mib(args.device, pictures=True)
        print(f"peak RSS of `tinyvae train --epochs 1`: {report['peak_rss_mib_training']:.0f} MiB training "
              f"(--no-pictures), {report['peak_rss_mib_training_and_pictures']:.0f} MiB with the pictures")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
