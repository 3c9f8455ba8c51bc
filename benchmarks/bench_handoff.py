"""What handing a piece of work to a host thread costs: tinyvae's handoff against a ThreadPoolExecutor.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_handoff.py   # 11 rounds of 100 calls
    ... --rounds 7 --json benchmarks/results/DATE-handoff.json    # also write the figures there

(7 rounds of 100 calls took 4 min 20 s on a 2-core machine with a load average of 6 to 10.)

While tinyvae trains it holds BLAS at one thread and splits large products, Adam's update and im2col
into pieces that run on its own threads (tinyvae/threads.py). Each split costs a handoff: waking a
thread, giving it its piece, waiting for its result. This script times, in microseconds per call:

* ``empty``: a split of two pieces that do nothing (the handoff alone);
* ``product``: the encoder's first product of the default model, (128, 784) @ (784, 400) in float32;
* ``adam``: one ``Adam.step`` of the default 784-400-20 model (its update split into two pieces);
* ``step``: one training step of that model at batch 128 (forward, backward, Adam; ``tinyvae.run``'s
  own functions), which holds all of the above.

Each one under these settings, BLAS held at one thread except in the first (every module that splits
work is pointed at the setting's way of handing pieces over):

* ``BLAS 2 threads``: NumPy's product with BLAS's own threads (as many as it started with), no product
  split, Adam's update split as ``futures`` does (tinyvae before its thread policy);
* ``one thread``: no split, everything on the calling thread;
* ``futures``: split, the other piece handed over by ``concurrent.futures.ThreadPoolExecutor`` (a
  future per call: how ``backend.run_split`` handed pieces over until December 2026);
* ``tinyvae``: split by ``backend.run_split`` as it is now.

A round times every setting on every workload, ``--calls`` calls each after a warm-up, in an order
that rotates from round to round; the median over calls is the round's figure. Ratios are taken within
a round (paired) and their median over rounds is printed. Pieces always run at once here
(``TINYVAE_THREADS=2``), whatever the load: on a busy machine the figures measure the handoff under
contention too, and the script prints the load average so that the reader knows which they saw.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import tinyvae  # noqa: F401,I001  (first: it tunes OpenBLAS's threads before NumPy loads, as `tinyvae train` does)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from bench_training import blas_info  # noqa: E402
from tinyvae import backend, threads  # noqa: E402
from tinyvae.data import load_dataset  # noqa: E402
from tinyvae.models.vae import build_model  # noqa: E402
from tinyvae.nn.optim import Adam  # noqa: E402
from tinyvae.run.train import TrainConfig  # noqa: E402

SETTINGS = ("BLAS 2 threads", "one thread", "futures", "tinyvae")
WORKLOADS = ("empty", "product", "adam", "step")
KINDS = {"wall": "median wall microseconds per call",
         "fast": "fast calls, the 10th percentile of wall microseconds (nearest to an idle machine's)",
         "cpu": "CPU microseconds per call, every thread of the process (mean)"}


# --------------------------------------------------------------------------- the handoff before: a future per call

_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="futures")


def run_split_futures(fn, parts):
    """``backend.run_split`` as it was: the first part here, the rest as one task on a pool thread."""
    settings = np.geterr()
    future = _pool.submit(_under_errstate, settings, fn, parts[1:])
    results = [fn(*parts[0])]
    return results + future.result()


def _under_errstate(settings, fn, group):
    with np.errstate(**settings):
        return [fn(*part) for part in group]


def run_split_serial(fn, parts):
    return [fn(*part) for part in parts]


# --------------------------------------------------------------------------- the workloads


def workloads():
    """{name: a function of no arguments that does one call of it}."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((128, 784), dtype=np.float32)
    b = rng.standard_normal((784, 400), dtype=np.float32)
    out = np.empty((128, 400), dtype=np.float32)
    model = build_model(TrainConfig().model_config(784, (28, 28)))  # the default 784-400-20 MLP
    x = load_dataset().train_x[:128].astype(np.float32) / 255.0  # (N, D)
    eps = rng.standard_normal((128, 20), dtype=np.float32)  # (N, Z)
    step_opt = Adam(model)
    other = build_model(TrainConfig().model_config(784, (28, 28)))  # Adam alone steps this one
    other.grad[...] = rng.standard_normal(other.grad.shape, dtype=np.float32) * 1e-3
    adam = Adam(other)

    def step():
        model.forward(x, eps, beta=1.0, validate=False)
        model.backward()
        step_opt.step()

    return {"empty": lambda: backend.run_split(lambda: None, [(), ()]),
            "product": lambda: backend.matmul(a, b, out=out),
            "adam": adam.step,
            "step": step}


def time_calls(fn, calls):
    """{"wall": median wall microseconds per call, "fast": their 10th percentile, "cpu": mean CPU
    microseconds per call of the whole process (every thread)}."""
    for _ in range(max(3, calls // 10)):  # warm-up: threads started, caches filled
        fn()
    seconds = []
    cpu = time.process_time()
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    cpu = (time.process_time() - cpu) / calls
    seconds.sort()
    return {"wall": statistics.median(seconds) * 1e6, "fast": seconds[len(seconds) // 10] * 1e6, "cpu": cpu * 1e6}


def measure(setting, fn, calls):
    """``time_calls(fn, calls)`` under ``setting``."""
    split = {"BLAS 2 threads": run_split_futures, "one thread": run_split_serial, "futures": run_split_futures,
             "tinyvae": backend.run_split}[setting]
    with handoff(split):
        if setting == "BLAS 2 threads":
            with threadpool_limits(limits=threads._blas["started"][0], user_api="blas"):
                return time_calls(fn, calls)  # outside blas_pinned: no product is split
        with threads.blas_pinned():
            return time_calls(fn, calls)


@contextmanager
def handoff(split):
    """Every tinyvae module that splits work calls ``split`` instead of ``backend.run_split`` in the block."""
    original = backend.run_split
    users = [m for name, m in list(sys.modules.items())
             if name.startswith("tinyvae") and getattr(m, "run_split", None) is original]
    for module in users:
        module.run_split = split
    try:
        yield
    finally:
        for module in users:
            module.run_split = original


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=11, help="paired rounds (default 11)")
    p.add_argument("--calls", type=int, default=100, help="timed calls per setting and round (default 100)")
    p.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    p.add_argument("--json", metavar="PATH", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    os.environ["TINYVAE_THREADS"] = "2"  # two pieces, both at once: the handoff is what is timed
    blas = blas_info()
    print("BLAS: " + ", ".join(f"{k} {v}" for k, v in blas.items() if k != "filepath"), flush=True)
    fns = {name: fn for name, fn in workloads().items() if name in args.workloads}
    figures = {kind: {f"{w} | {s}": [] for w in fns for s in SETTINGS} for kind in KINDS}
    loads = []
    for r in range(args.rounds):
        loads.append(os.getloadavg()[0])
        order = SETTINGS[r % len(SETTINGS):] + SETTINGS[:r % len(SETTINGS)]
        for w, fn in fns.items():
            for s in order:
                for kind, value in measure(s, fn, args.calls).items():
                    figures[kind][f"{w} | {s}"].append(value)
        print(f"round {r + 1}/{args.rounds} (load average {loads[-1]:.1f} before it), median us for " +
              ", ".join(SETTINGS) + ": " + "  ".join(
                  f"{w} " + "/".join(f"{figures['wall'][f'{w} | {s}'][-1]:.0f}" for s in SETTINGS) for w in fns),
              flush=True)
    report = {"date": time.strftime("%Y-%m-%d"), "cores": threads.usable_cores(), "rounds": args.rounds,
              "calls": args.calls, "blas": blas, "load_average_before_rounds": loads, "microseconds": figures,
              "ratios": {kind: ratios(figures[kind], fns, args.rounds) for kind in ("wall", "fast")}}
    print_table(report, fns)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


def ratios(us, fns, rounds):
    """tinyvae's time over each other setting's, within each round, and the median over rounds."""
    out = {}
    for w in fns:
        for s in ("BLAS 2 threads", "one thread", "futures"):
            by_round = [us[f"{w} | tinyvae"][i] / us[f"{w} | {s}"][i] for i in range(rounds)]
            out[f"{w}: tinyvae / {s}"] = {"median": statistics.median(by_round), "by_round": by_round}
    return out


def print_table(report, fns):
    loads = report["load_average_before_rounds"]
    print(f"\nmedians over {report['rounds']} paired rounds of {report['calls']} calls each "
          f"(load average {min(loads):.1f} to {max(loads):.1f} on {report['cores']} cores before the rounds)")
    for kind, title in KINDS.items():
        print(f"\n{title}\n{'':<9}" + "".join(f"{s:>16}" for s in SETTINGS))
        for w in fns:
            print(f"{w:<9}" + "".join(f"{statistics.median(report['microseconds'][kind][f'{w} | {s}']):>16.0f}"
                                      for s in SETTINGS))
    for kind in ("wall", "fast"):
        print(f"\nratios of the {KINDS[kind].split(',')[0]} (median of the per-round ratios)")
        for name, r in report["ratios"][kind].items():
            print(f"  {name:<34} {r['median']:6.2f}")


if __name__ == "__main__":
    sys.exit(main())
