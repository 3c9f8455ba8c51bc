"""Everything that needs a GPU, in one call: CuPy's tests, then the training, evaluation and conv benchmarks
against PyTorch CUDA, with one table at the end, all within 8 minutes.

    python benchmarks/gpu_check.py              # on a machine with CUDA, CuPy and PyTorch
    python benchmarks/gpu_check.py --dry-run    # print the plan (each step's command and time limit) only

Without a usable GPU (CuPy not installed, or no CUDA device it can use) it says which and exits 0
having run nothing; without PyTorch (or with PyTorch that sees no CUDA device) the benchmarks run
tinyvae alone and say so. Each step is a process of its own with its own time limit, and the limits
add up to 7 minutes, leaving one for start-up and the table. A step that fails or runs out of time
is marked in the table, and the steps after it still run; the exit status is 1 if any failed.

The steps:

* CuPy tests: every test that runs on CuPy (the ``device_xp`` fixture's ``cupy`` half, the
  CuPy-against-NumPy comparisons), selected with ``-k "cupy or gpu"``;
* training: ``bench_training.py --device gpu`` at batch 128 and 512, 2 rounds of 2 epochs of the
  default VAE on 60,000 digits, tinyvae (CuPy) against PyTorch CUDA, paired within each round;
* evaluation: ``bench_evaluate.py --device gpu``, the K = 5000 importance-weighted NLL of the IWAE
  paper's 784-200-200-50 model on 1,000 test digits, scaled to 10,000;
* conv: ``bench_conv.py --device gpu``, 2 rounds of the conv VAE on 15,000 digits scaled to 60,000,
  against PyTorch CUDA.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BUDGET_S = 8 * 60


@dataclass
class Step:
    name: str
    command: list
    limit_s: int  # wall-clock limit of the step's process
    rows: object  # function(stdout) -> [(what, figure)] for the table


def pytest_rows(out):
    summary = [line for line in out.splitlines() if re.search(r"\d+ (passed|failed|skipped|error)", line)]
    return [("CuPy tests", summary[-1].strip("= ") if summary else "no summary printed")]


def last_json(out):
    """The JSON document a benchmark prints last (one line, or an indented block starting with '{')."""
    start = out.rfind("\n{")
    return json.loads(out[start + 1 if start >= 0 else out.find("{"):])


def training_rows(out):
    rows = []
    for res in last_json(out)["results"]:
        b = res["batch_size"]
        figure = f"tinyvae {res['tinyvae_s_per_epoch']:.2f} s/epoch"
        if "torch_s_per_epoch" in res:
            figure += (f", PyTorch {res['torch_s_per_epoch']:.2f} (fused Adam {res['torch_fused_s_per_epoch']:.2f}); "
                       f"tinyvae/PyTorch {res['ratio_to_torch']:.2f}")
        rows.append((f"training, batch {b}", figure))
    return rows


def evaluation_rows(out):
    res = last_json(out)
    return [(f"evaluation, K = {res['k']}", f"{res['wall_s_10k']:.1f} s for 10,000 digits (timed {res['digits_timed']}), "
                                            f"NLL {res['nll']:.2f}")]


def conv_rows(out):
    res = last_json(out)
    figure = f"tinyvae {res['tinyvae_seconds']:.2f} s/epoch"
    if "torch_seconds" in res:
        figure += f", PyTorch {res['torch_seconds']:.2f}; tinyvae/PyTorch {res['ratio_to_torch']:.2f}"
    return [("conv, batch 128", figure)]


def steps(python=sys.executable, torch=True):
    no_torch = [] if torch else ["--no-torch"]
    return [
        Step("CuPy tests", [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cupy or gpu", "tests"],
             150, pytest_rows),
        Step("training", [python, str(HERE / "bench_training.py"), "--device", "gpu", "--batch-sizes", "128", "512",
                          "--epochs", "2", "--rounds", "2", "--no-memory", *no_torch], 150, training_rows),
        Step("evaluation", [python, str(HERE / "bench_evaluate.py"), "--device", "gpu", "--limit", "1000"],
             60, evaluation_rows),
        Step("conv", [python, str(HERE / "bench_conv.py"), "--device", "gpu", "--rounds", "2",
                      "--limit-train", "15000", *no_torch], 60, conv_rows),
    ]


def gpu_problem():
    """Why this machine cannot run the check (None: CuPy sees a CUDA device)."""
    try:
        import cupy  # noqa: PLC0415
    except ImportError:
        return "CuPy is not installed (pip install 'tinyvae[gpu]', or the cupy-cudaXXx wheel matching the CUDA)"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # noqa: BLE001 -- no driver, no device: CuPy's own words say which
        return f"CuPy finds no usable CUDA device ({type(err).__name__}: {err})"
    return None if count else "CuPy finds no CUDA device"


def torch_problem():
    """Why PyTorch cannot be the comparison (None: it sees a CUDA device)."""
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        return "PyTorch is not installed"
    return None if torch.cuda.is_available() else "PyTorch sees no CUDA device"


def run_step(step):
    """(status, rows, seconds): status is 'ok', 'failed (exit N)' or 'out of time'."""
    start = time.perf_counter()
    try:
        done = subprocess.run(step.command, cwd=ROOT, capture_output=True, text=True, timeout=step.limit_s)
    except subprocess.TimeoutExpired as err:
        tail = (err.stdout or b"")[-2000:]
        print(tail.decode(errors="replace") if isinstance(tail, bytes) else tail, flush=True)
        return f"out of time ({step.limit_s} s)", [], time.perf_counter() - start
    seconds = time.perf_counter() - start
    print(done.stdout[-4000:] + done.stderr[-2000:], flush=True)
    rows = []
    try:
        rows = step.rows(done.stdout)
    except (ValueError, KeyError, IndexError) as err:
        rows = [(step.name, f"could not read its figures ({type(err).__name__}: {err})")]
    status = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
    return status, rows, seconds


def table(results):
    lines = [f"{'step':<12} {'status':<22} {'s':>6}  figures", "-" * 100]
    for step, (status, rows, seconds) in results:
        figures = rows or [("", "")]
        for i, (what, figure) in enumerate(figures):
            head = f"{step.name:<12} {status:<22} {seconds:>6.0f}" if i == 0 else " " * 42
            lines.append(f"{head}  {what + ': ' if what else ''}{figure}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print each step's command and time limit; run none")
    args = parser.parse_args(argv)
    problem = gpu_problem()
    plan = steps(torch=torch_problem() is None)
    assert sum(s.limit_s for s in plan) <= BUDGET_S - 60, "the steps' limits must leave a minute of the 8"
    if args.dry_run:
        print(f"plan ({sum(s.limit_s for s in plan)} s of limits, within {BUDGET_S} s):")
        for step in plan:
            print(f"  {step.name:<12} {step.limit_s:>4} s  {' '.join(step.command)}")
        print(f"GPU: {problem or 'CuPy sees a CUDA device'}; PyTorch: {torch_problem() or 'sees a CUDA device'}")
        return 0
    if problem:
        print(f"no GPU check on this machine: {problem}. Nothing was run.")
        return 0
    if torch_problem():
        print(f"note: {torch_problem()}: the benchmarks time tinyvae alone", flush=True)
    start, results = time.perf_counter(), []
    for step in plan:
        print(f"== {step.name}: {' '.join(step.command)}", flush=True)
        results.append((step, run_step(step)))
    print("\n" + table(results))
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    return 0 if all(status == "ok" for _, (status, _, _) in results) else 1


if __name__ == "__main__":
    sys.exit(main())
