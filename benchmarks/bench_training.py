"""Seconds per training epoch of the pytorch/examples VAE, against the matrix-multiply lower bound.

    python benchmarks/bench_training.py                   # CPU, batch sizes 32 128 512, 3 rounds of 3 epochs
    python benchmarks/bench_training.py --device gpu      # CuPy (and PyTorch CUDA if present)

The model is tinyvae's default: 784-400-20, ReLU, grey-level BCE + KL, Adam 1e-3, float32,
60,000 MNIST digits per epoch, trained by ``tinyvae.run.train.train`` itself, so the figure includes
everything a real run does per step (batch gathering, uint8 -> float, drawing ε, forward,
backward, Adam). Each epoch's seconds are the training loop alone, as written to
``metrics.jsonl`` (the test-set evaluation after each epoch is timed separately and left out);
the GPU path synchronizes the device before reading the timer.

Two lower bounds, both measured in the same run. The large-square bound is the epoch's
matrix-multiply FLOPs (forward; dW of every dense layer; dX of every layer but the first, whose
input is data) divided by the best rate NumPy reaches on a 2048 × 2048 float32 product. The shape
bound is the time the epoch's very products take at the model's own shapes (a batch of 128 rows
times a 784 × 400 matrix runs slower than a large square), timed alone with preallocated arrays:
what BLAS itself can do for this model, so tinyvae / shape bound is the cost of everything else
(Adam, the loss, activations, batch preparation, Python). Nothing can train an epoch faster than
its multiplies alone. The run prints which BLAS library, which kernel and how many threads ran
(threadpoolctl, where installed): OpenBLAS picks its kernels by CPU unless OPENBLAS_CORETYPE says
otherwise, so benchmark with that variable unset.

Where PyTorch is installed (optional, never required), an equivalent PyTorch model (same
layers, BCE + KL summed, torch.optim.Adam defaults, batches sliced from a preloaded tensor) is
timed in the same run, taking turns with tinyvae: each round times every batch size, tinyvae
then PyTorch, so that both see the same drift of a shared machine, and the ratio between them is
taken within each round (the quoted ratio is the median over rounds). PyTorch runs twice per
round: with ``torch.optim.Adam`` defaults and with ``fused=True`` (its fastest optimizer on a CPU). The peak resident memory
is that of a whole ``tinyvae train --epochs 1`` process on full MNIST, each measured in a fresh
process, without and with the pictures drawn at the end. Prints a table, then the JSON.
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
from tinyvae.run.train import TrainConfig, train  # noqa: E402

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


def shape_bound_seconds(xp, n_examples, batch_size, shapes, repeats=3):
    """Seconds of one epoch's matrix products at the model's own shapes, nothing else (the best of
    ``repeats``): per step the forward Y = X W, dW = Xᵀ dY, and dX = dY Wᵀ for every layer but the first."""
    full, rest = divmod(n_examples, batch_size)
    sizes = [batch_size] * full + ([rest] if rest else [])
    rng = backend.default_rng(0, xp)
    bufs = {}
    for n in set(sizes):
        layers = []
        for d_in, d_out in shapes:
            x = rng.standard_normal((n, d_in), dtype=np.float32)
            w = rng.standard_normal((d_in, d_out), dtype=np.float32)
            dy = rng.standard_normal((n, d_out), dtype=np.float32)
            layers.append((x, w, dy, xp.empty((n, d_out), np.float32), xp.empty((d_in, d_out), np.float32),
                           xp.empty((n, d_in), np.float32)))
        bufs[n] = layers
    best = float("inf")
    for _ in range(repeats):
        backend.synchronize(xp)
        start = time.perf_counter()
        for n in sizes:
            for i, (x, w, dy, y, dw, dx) in enumerate(bufs[n]):
                xp.matmul(x, w, out=y)
                xp.matmul(x.T, dy, out=dw)
                if i:
                    xp.matmul(dy, w.T, out=dx)
        backend.synchronize(xp)
        best = min(best, time.perf_counter() - start)
    return best


def blas_info():
    """Which BLAS library, kernel ("architecture") and thread count NumPy's products use."""
    try:
        from threadpoolctl import threadpool_info  # noqa: PLC0415
    except ImportError:
        return {"note": "threadpoolctl not installed: pip install threadpoolctl"}
    info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not info:
        return {"note": "no BLAS library found by threadpoolctl"}
    keep = ("internal_api", "version", "architecture", "num_threads", "threading_layer", "filepath")
    return {k: info[0].get(k) for k in keep} | {"OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
                                                 "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE")}


def torch_available():
    try:
        import torch  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def time_torch(batch_sizes, epochs, device, fused=False):
    """PyTorch's seconds per epoch, in a process of its own: its OpenMP threads keep spinning after
    each parallel region and would slow whatever runs next in the same process."""
    cmd = [sys.executable, str(HERE / "torch_vae.py"), "--epochs", str(epochs), "--device", device,
           "--batch-sizes", *map(str, batch_sizes)] + (["--fused"] if fused else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return {int(b): secs for b, secs in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def peak_memory_mib(device, pictures):
    """Peak RSS of a whole `tinyvae train --epochs 1` process on full MNIST, in its own process."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "tinyvae", "train", "--epochs", "1", "--no-progress",
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
    p.add_argument("--epochs", type=int, default=3, help="epochs timed per batch size in each round")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds; each times every batch size with tinyvae then PyTorch (medians over all epochs)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory run")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.rounds < 1:
        p.error("--epochs and --rounds must be at least 1")

    xp = backend.namespace(args.device)
    n_train = len(load_dataset().train_x)
    shapes = dense_shapes(*SIZES)
    have_torch = not args.no_torch and torch_available()
    blas = blas_info()
    print("BLAS: " + ", ".join(f"{k} {v}" for k, v in blas.items() if k != "filepath"), flush=True)
    # The rate is sampled before and after every timed stretch and the best sample is kept: this
    # machine's speed drifts, and a lower bound must come from the fastest the multiplies ever ran.
    # tinyvae and PyTorch take turns, batch size by batch size and round by round, so that both
    # see the same drift; their ratio is taken within each round (paired), then the median.
    rates = [matmul_rate(xp)]
    runs = {b: {"tinyvae": [], "torch": [], "torch_fused": [], "paired_ratios": [], "paired_ratios_fused": [],
                "shape_bound": [], "test_loss": None} for b in args.batch_sizes}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for b in args.batch_sizes:
                secs, test_losses = time_tinyvae(b, args.epochs, args.device, Path(tmp) / f"round{r}")
                rates.append(matmul_rate(xp))
                row = runs[b]
                row["tinyvae"] += secs
                row["test_loss"] = test_losses[-1]
                row["shape_bound"].append(shape_bound_seconds(xp, n_train, b, shapes))
                line = (f"round {r + 1}/{args.rounds} batch {b:4d}: tinyvae {statistics.median(secs):.3f} s/epoch, "
                        f"shape bound {row['shape_bound'][-1]:.3f}")
                if have_torch:
                    for fused, key in ((False, ""), (True, "_fused")):
                        torch_secs = time_torch([b], args.epochs, args.device, fused=fused)[b]
                        row["torch" + key] += torch_secs
                        row["paired_ratios" + key].append(statistics.median(secs) / statistics.median(torch_secs))
                        line += (f", PyTorch{' fused' if fused else ''} {statistics.median(torch_secs):.3f} s/epoch "
                                 f"(ratio {row['paired_ratios' + key][-1]:.2f})")
                    rates.append(matmul_rate(xp))
                print(line, flush=True)
    best = max(rates)
    bound = epoch_matmul_flops(n_train, shapes) / (best * 1e9)
    results = []
    for b, row in runs.items():
        result = {"batch_size": b, "tinyvae_s_per_epoch": statistics.median(row["tinyvae"]),
                  "tinyvae_runs": row["tinyvae"], "test_loss_after_last_epoch": row["test_loss"],
                  "matmul_lower_bound_s": bound, "shape_bound_s": min(row["shape_bound"]),
                  "shape_bound_runs": row["shape_bound"]}
        result["ratio_to_lower_bound"] = result["tinyvae_s_per_epoch"] / bound
        result["ratio_to_shape_bound"] = result["tinyvae_s_per_epoch"] / result["shape_bound_s"]
        if row["torch"]:
            result.update({"torch_s_per_epoch": statistics.median(row["torch"]), "torch_runs": row["torch"],
                           "ratio_to_torch": statistics.median(row["paired_ratios"]),
                           "ratio_to_torch_by_round": row["paired_ratios"],
                           "torch_fused_s_per_epoch": statistics.median(row["torch_fused"]),
                           "torch_fused_runs": row["torch_fused"],
                           "ratio_to_torch_fused": statistics.median(row["paired_ratios_fused"]),
                           "ratio_to_torch_fused_by_round": row["paired_ratios_fused"]})
        results.append(result)
    print(f"\nmedian of {args.rounds} x {args.epochs} epochs per batch size; lower bound {bound:.3f} s per epoch "
          f"({epoch_matmul_flops(n_train, shapes) / 1e9:.1f} GFLOP at the best rate of the run, {best:.0f} GFLOP/s)")
    print("batch  tinyvae s  / bound  shape bound s  / shape bound" +
          ("  PyTorch s  tinyvae/PyTorch  PyTorch fused s  tinyvae/fused" if have_torch else ""))
    for res in results:
        line = (f"{res['batch_size']:5d}  {res['tinyvae_s_per_epoch']:9.3f}  {res['ratio_to_lower_bound']:7.2f}"
                f"  {res['shape_bound_s']:13.3f}  {res['ratio_to_shape_bound']:13.2f}")
        if "torch_s_per_epoch" in res:
            line += (f"  {res['torch_s_per_epoch']:9.3f}  {res['ratio_to_torch']:15.2f}"
                     f"  {res['torch_fused_s_per_epoch']:15.3f}  {res['ratio_to_torch_fused']:13.2f}")
        print(line)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "device": args.device,
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__, "blas": blas},
        "matmul_gflops": best,
        "matmul_gflops_samples": rates,
        "epoch_matmul_gflop": epoch_matmul_flops(n_train, shapes) / 1e9,
        "rounds": args.rounds,
        "epochs_per_round": args.epochs,
        "results": results,
    }
    if have_torch:
        import torch  # noqa: PLC0415
        report["machine"]["torch"] = torch.__version__
    if not args.no_memory:
        report["peak_rss_mib_training"] = peak_memory_mib(args.device, pictures=False)
        report["peak_rss_mib_training_and_pictures"] = peak_memory_mib(args.device, pictures=True)
        print(f"peak RSS of `tinyvae train --epochs 1`: {report['peak_rss_mib_training']:.0f} MiB training "
              f"(--no-pictures), {report['peak_rss_mib_training_and_pictures']:.0f} MiB with the pictures")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
