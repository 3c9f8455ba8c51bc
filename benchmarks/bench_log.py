"""What a float32 logarithm costs on this machine, per element, against a multiply and a log1p.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_log.py
    python benchmarks/bench_log.py --rounds 21 --size 100352

The binary cross-entropy needs log(1 + u) for every pixel, which is why `tinyvae.prob.losses.sum_of_logs`
multiplies 64 factors together before taking one logarithm (derivations/bernoulli.md). How much that saves depends on what a `log` costs
compared with a multiply, which depends on the CPU and on NumPy's SIMD build: this script measures it.

Each round times `np.log`, `np.log1p` and `np.multiply` once each, in that order, on the same float32
array of values in [1, 2] (a batch of 128 digits of 784 pixels by default), writing into a buffer
(so no allocation is timed). Prints the median over the rounds of nanoseconds per element of each
and of the paired ratios log/multiply and log1p/log, then the JSON, with NumPy's version and the
SIMD extensions it dispatches to. Pure NumPy ufuncs call no BLAS, so no BLAS kernel is involved.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np


def time_once(func, *args, out):
    start = time.perf_counter_ns()
    func(*args, out=out)
    return time.perf_counter_ns() - start


def measure(size, rounds, seed=0):
    """Medians over ``rounds`` of ns per element (log, log1p, multiply) and of the paired ratios."""
    rng = np.random.default_rng(seed)
    a = (1 + rng.random(size, dtype=np.float32)).astype(np.float32)  # factors 1 + u in [1, 2]
    b = rng.random(size, dtype=np.float32)
    out = np.empty_like(a)
    rows = []
    for _ in range(rounds + 1):
        rows.append((time_once(np.log, a, out=out), time_once(np.log1p, b, out=out),
                     time_once(np.multiply, a, a, out=out)))
    rows = rows[1:]  # the first round warms the caches
    log, log1p, mul = ([r[i] / size for r in rows] for i in range(3))
    return {
        "size": size, "rounds": rounds,
        "log_ns": round(statistics.median(log), 3),
        "log1p_ns": round(statistics.median(log1p), 3),
        "multiply_ns": round(statistics.median(mul), 3),
        "log_over_multiply": round(statistics.median(x / m for x, m in zip(log, mul)), 1),
        "log1p_over_log": round(statistics.median(p / x for p, x in zip(log1p, log)), 2),
    }


def simd():
    try:
        from numpy._core._multiarray_umath import __cpu_features__  # noqa: PLC0415  NumPy 2
    except ImportError:
        try:
            from numpy.core._multiarray_umath import __cpu_features__  # noqa: PLC0415  NumPy 1
        except ImportError:
            return "unknown"
    return ", ".join(name for name in ("AVX512F", "AVX2", "FMA3", "NEON", "ASIMD") if __cpu_features__.get(name))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=128 * 784, help="elements per call (default one batch)")
    parser.add_argument("--rounds", type=int, default=51)
    args = parser.parse_args(argv)
    result = measure(args.size, args.rounds)
    result.update(numpy=np.__version__, simd=simd(), machine=platform.machine())
    print(f"float32, {args.size} elements, median of {args.rounds} rounds: log {result['log_ns']} ns, "
          f"log1p {result['log1p_ns']} ns, multiply {result['multiply_ns']} ns per element; "
          f"log = {result['log_over_multiply']} multiplies, log1p = {result['log1p_over_log']} logs")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
