"""A training step's critical path from thread CPU times: what an idle machine would take, read on a busy one.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_critical_path.py --arch conv   # ~1 min
    ... --arch mlp --rounds 9 --steps 5 --json PATH

Wall-clock time on a machine that other programs load measures their load as much as tinyvae. CPU time
does not: a thread's CPU seconds (``time.thread_time``) count only while it runs. This script times
training steps (forward, backward, Adam; batch ``--batch-size``, ``TrainConfig``'s model for ``--arch``)
with BLAS held at one thread, under two settings taken in turns, round by round:

* ``split``: ``TINYVAE_THREADS=2``, every split's pieces at once, as an idle 2-core machine runs them;
* ``one thread``: ``TINYVAE_THREADS=1``.

Every ``backend.run_split`` is timed piece by piece on the thread that ran it. Per step it prints the
calling thread's CPU outside the splits (``serial``), the sum over splits of the largest CPU time one
thread spent on its pieces (``split critical``), their sum (``critical path``: the step's time on an
idle machine if handing pieces over cost nothing and nothing else ran), every thread's CPU
(``process``), the wall-clock time and the number of splits. The critical path is an estimate, a
lower bound of the idle time: it leaves out the hand-offs' latency (``bench_handoff.py``). Each figure
is the median over rounds; the BLAS library and kernel (threadpoolctl) are printed first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import tinyvae  # noqa: F401,I001  (first: it tunes OpenBLAS's threads before NumPy loads, as `tinyvae train` does)
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_training import blas_info  # noqa: E402
from tinyvae import backend, threads  # noqa: E402
from tinyvae.data import load_dataset  # noqa: E402
from tinyvae.models.vae import build_model  # noqa: E402
from tinyvae.nn.optim import Adam  # noqa: E402
from tinyvae.run.train import TrainConfig  # noqa: E402

SETTINGS = {"split": "2", "one thread": "1"}
FIGURES = ("serial", "split critical", "critical path", "process", "wall", "splits")


class SplitClock:
    """Stands in for ``backend.run_split`` in every tinyvae module that calls it, timing each split's pieces."""

    def __init__(self):
        self.original, self.critical, self.on_caller, self.splits = backend.run_split, 0.0, 0.0, 0
        self.modules = [m for name, m in list(sys.modules.items())
                        if name.startswith("tinyvae") and getattr(m, "run_split", None) is self.original]

    def __enter__(self):
        for module in self.modules:
            module.run_split = self.run_split
        return self

    def __exit__(self, *exc):
        for module in self.modules:
            module.run_split = self.original

    def run_split(self, fn, parts):
        cpu, ran_on = [0.0] * len(parts), [None] * len(parts)

        def timed(i, *part):
            start = time.thread_time()
            result = fn(*part)
            cpu[i], ran_on[i] = time.thread_time() - start, threading.get_ident()
            return result

        results = self.original(timed, [(i, *part) for i, part in enumerate(parts)])
        self.account(cpu, ran_on, threading.get_ident())
        return results

    def account(self, cpu, ran_on, caller):
        """Add one split: its pieces' CPU seconds and the threads that ran them."""
        per_thread = defaultdict(float)
        for seconds, thread in zip(cpu, ran_on):
            per_thread[thread] += seconds
        self.critical += max(per_thread.values())
        self.on_caller += per_thread.get(caller, 0.0)
        self.splits += len(cpu) > 1


def step_function(arch, batch_size):
    config = TrainConfig(arch=arch, latent=2 if arch == "conv" else 20, batch_size=batch_size)
    model = build_model(config.model_config(784, (28, 28)))
    optimizer = Adam(model)
    x = load_dataset().train_x[:batch_size].astype(np.float32) / 255.0  # (N, D)
    eps = np.random.default_rng(0).standard_normal((batch_size, config.latent), dtype=np.float32)  # (N, Z)

    def step():
        model.forward(x, eps, beta=1.0, validate=False)
        model.backward()
        optimizer.step()
    return step


def measure(step, clock, steps):
    """{figure: milliseconds per step (splits: count per step)} over ``steps`` steps after one warm-up step."""
    step()
    clock.critical = clock.on_caller = clock.splits = 0
    wall, main, process = time.perf_counter(), time.thread_time(), time.process_time()
    for _ in range(steps):
        step()
    wall, main, process = time.perf_counter() - wall, time.thread_time() - main, time.process_time() - process
    serial = main - clock.on_caller
    figures = {"serial": serial, "split critical": clock.critical, "critical path": serial + clock.critical,
               "process": process, "wall": wall}
    return {**{k: v / steps * 1e3 for k, v in figures.items()}, "splits": clock.splits / steps}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", choices=("mlp", "conv"), default="conv")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=3, help="steps per setting and round")
    p.add_argument("--json", metavar="PATH", help="also write the figures there")
    args = p.parse_args(argv)
    blas = blas_info()
    print("BLAS: " + ", ".join(f"{k} {v}" for k, v in blas.items() if k != "filepath"), flush=True)
    step = step_function(args.arch, args.batch_size)
    runs = {s: defaultdict(list) for s in SETTINGS}
    loads = []
    previous = os.environ.get("TINYVAE_THREADS")
    try:
        with SplitClock() as clock, threads.blas_pinned():
            for r in range(args.rounds):
                loads.append(os.getloadavg()[0])
                names = list(SETTINGS)
                for name in names[r % 2:] + names[:r % 2]:  # the first setting alternates
                    os.environ["TINYVAE_THREADS"] = SETTINGS[name]
                    for k, v in measure(step, clock, args.steps).items():
                        runs[name][k].append(v)
    finally:
        os.environ.pop("TINYVAE_THREADS", None)
        if previous is not None:
            os.environ["TINYVAE_THREADS"] = previous
    medians = {s: {k: statistics.median(v) for k, v in runs[s].items()} for s in SETTINGS}
    print(f"{args.arch}, batch {args.batch_size}: ms per step, median of {args.rounds} rounds of {args.steps} steps "
          f"(load average {min(loads):.1f} to {max(loads):.1f} before the rounds)")
    print(f"{'':<16}" + "".join(f"{s:>12}" for s in SETTINGS))
    for figure in FIGURES:
        print(f"{figure:<16}" + "".join(f"{medians[s][figure]:12.2f}" for s in SETTINGS))
    if args.json:
        report = {"date": time.strftime("%Y-%m-%d"), "arch": args.arch, "batch_size": args.batch_size,
                  "rounds": args.rounds, "steps": args.steps, "blas": blas, "load_average_before_rounds": loads,
                  "ms_per_step": {s: dict(runs[s]) for s in SETTINGS}, "medians": medians}
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
