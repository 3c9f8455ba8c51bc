"""Seconds to evaluate the importance-weighted NLL with K = 5000 on the 10,000 test digits, against the FLOP bound.

    python benchmarks/bench_evaluate.py RUN                 # a run folder (or checkpoint) of the model to score
    python benchmarks/bench_evaluate.py                     # the IWAE paper's 784-200-200-50 tanh model, untrained
    python benchmarks/bench_evaluate.py RUN --limit 200 --compare-generic

What is timed is ``tinyvae.evaluation.evaluate.importance_weighted_bounds``, the function behind
``tinyvae evaluate RUN --iw-samples 5000`` (the NLL and the L_K curve), on the run's fixed test
binarization. ``--limit N`` times the first N digits and scales the time to 10,000.

The bound: the decoder's matrix products alone, 2 · (50·200 + 200·200 + 200·784) FLOPs per sample
for the paper's model (5·10⁷ samples: 20.7 TFLOP), divided by the best rate NumPy reaches on a
2048 × 2048 float32 product on this machine, sampled before, between and after the timed parts.
No evaluation can be faster than its products. Wall and CPU (process) seconds are both printed:
on a machine shared with other jobs the wall time says more about the neighbours than about the
code, and the CPU time divided by the number of cores is what an idle machine would take at best.

``--compare-generic`` also times the generic path (the model's own decoder and log-likelihood, a
few thousand rows at a time, as tinyvae evaluated before the fast path existed) on the same digits
with the same seed, and prints the largest difference of the per-example NLL between the two.
Prints a table, then one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import tinyvae  # noqa: F401,I001  (first: it tunes OpenBLAS's threads before NumPy loads, as `tinyvae` does)
import numpy as np

from tinyvae import backend, data  # noqa: E402
from tinyvae.evaluation import importance  # noqa: E402
from tinyvae.evaluation.evaluate import (evaluation_images, find_checkpoint, importance_weighted_bounds,  # noqa: E402
                              load_images)
from tinyvae.models.vae import VAE, load_model  # noqa: E402

TEST_DIGITS = 10_000


def decoder_flops_per_sample(model):
    """FLOPs (2 per multiply-add) of one decoder pass: the sum over its dense layers of 2 · fan_in · fan_out."""
    return sum(2 * layer.params["W"].shape[0] * layer.params["W"].shape[1]
               for layer in model.decoder.layers if "W" in layer.params)


def matmul_gflops(size=2048, repeats=3):
    """The best GFLOP/s of a float32 (size × size) @ (size × size) product."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((size, size), dtype=np.float32), rng.standard_normal((size, size), dtype=np.float32)
    out = a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def on_host(bounds):
    """(NLL per digit, L_K curve) with the NLL on the host: on a GPU, the copy waits for the work to finish."""
    nll, curve = bounds
    return backend.to_numpy(nll), curve


def profile_stages(model, xb, k, rows=importance.FAST_ROWS, examples=4):
    """CPU milliseconds per digit of each stage, one thread, for the generic and the fast path.

    ``xb``: float {0, 1} digits. Each stage is timed on its own, on the same inputs as the paths use.
    """
    from tinyvae.prob.losses import bernoulli_log_prob, log_normal_density  # noqa: PLC0415

    def cpu(fn, reps=examples):
        start = time.process_time()
        for _ in range(reps):
            fn()
        return (time.process_time() - start) / reps * 1e3

    rng = np.random.default_rng(0)
    x1 = xb[:1]
    mu, log_var = model.encode(x1)
    eps = rng.standard_normal((k, model.config.latent), dtype=np.float32)
    z = (mu + np.exp(0.5 * log_var) * eps).astype(np.float32)  # (K, Z)
    layers = model.decoder.layers
    acts = [z]
    for layer in layers:
        acts.append(layer.forward(acts[-1]))
    out = acts[-1]
    stages = {}
    with importance._one_blas_thread():
        for i, layer in enumerate(layers):
            name = (f"dense {layer.params['W'].shape[0]}x{layer.params['W'].shape[1]}" if "W" in layer.params
                    else type(layer).__name__.lower())
            stages[f"generic: layer {i}, {name}"] = cpu(lambda i=i, layer=layer: layer.forward(acts[i]))
        stages["generic: Bernoulli log p(x|z)"] = cpu(lambda: bernoulli_log_prob(out, x1))
        zero = np.zeros(model.config.latent, np.float32)
        stages["generic: log p(z), log q(z|x)"] = cpu(lambda: (log_normal_density(z, zero, zero),
                                                             log_normal_density(z, mu, log_var)))
        lw = rng.normal(-100, 3, (1, k))
        stages["generic: log-sum-exp (float64)"] = cpu(lambda: importance.bound_curve(lw, (k,)))
        weights = [np.vstack([d.params["W"], d.params["b"][None, :]]) for d in layers[0::2]]
        last_t = np.ascontiguousarray((weights[-1] * (1 - 2 * x1[0])).T)  # (D, H + 1)
        h = np.ones((k, weights[-1].shape[0]), np.float32)
        h[:, :-1] = acts[-2]
        u = np.empty((weights[-1].shape[1], rows), np.float32)
        blocks = [(s, min(rows, k - s)) for s in range(0, k, rows)]
        stages["fast: last product, sign and bias folded"] = cpu(
            lambda: [np.matmul(last_t, h[s:s + r].T, out=u[:, :r]) for s, r in blocks])
        with np.errstate(over="ignore"):
            stages["fast: Bernoulli (exp, 16-factor products, logs)"] = cpu(
                lambda: [importance._softplus_sums(h[s:s + r], last_t, u[:, :r]) for s, r in blocks]) \
                - stages["fast: last product, sign and bias folded"]
        eps1 = rng.standard_normal((1, k, model.config.latent), dtype=np.float32)
        stages["fast: whole path, one digit (ε given)"] = cpu(
            lambda: importance._binary_bernoulli(model, x1, eps1, rows), reps=examples)
        stages["drawing ε (K·Z normals)"] = cpu(
            lambda: rng.standard_normal((k, model.config.latent), dtype=np.float32))
    return stages


def generic_bounds(model, x, k, seed):
    """The same estimate on the generic path (the fast path switched off for this call)."""
    original = importance._fast_path_applies
    importance._fast_path_applies = lambda m: False
    try:
        return importance_weighted_bounds(model, x, k=k, seed=seed)
    finally:
        importance._fast_path_applies = original


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", nargs="?", help="run folder or checkpoint (default: an untrained 784-200-200-50 tanh VAE)")
    p.add_argument("--k", type=int, default=5000, help="importance samples per digit (default 5000)")
    p.add_argument("--limit", type=int, default=TEST_DIGITS, help="time the first N test digits (default all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compare-generic", action="store_true", help="also time the generic path on the same digits")
    p.add_argument("--profile", action="store_true", help="CPU time per digit of each stage, one thread")
    p.add_argument("--device", choices=backend.DEVICES, default="cpu",
                   help="gpu: the model on CuPy (the FLOP bound stays the CPU's)")
    args = p.parse_args(argv)

    if args.run:
        checkpoint, config = find_checkpoint(args.run)
        model = load_model(checkpoint)
    else:
        model, config = VAE(hidden=(200, 200), latent=50, activation="tanh", init="glorot"), {"binarize": "dynamic"}
    model = model.to(args.device)
    x, _ = load_images("test", config.get("data"), config, args.limit)
    x, _ = evaluation_images(x, config, args.seed)
    n, scale = len(x), TEST_DIGITS / len(x)
    rates = [matmul_gflops()]
    (nll, curve), wall, cpu = timed(lambda: on_host(importance_weighted_bounds(model, x, k=args.k, seed=args.seed)))
    rates.append(matmul_gflops())
    flops = decoder_flops_per_sample(model) * args.k * TEST_DIGITS
    result = {"model": model.config.describe(), "k": args.k, "digits_timed": n, "nll": float(nll.mean()),
              "iw_bounds": {str(k): v for k, v in curve.items()},
              "device": args.device, "wall_s_10k": wall * scale, "cpu_s_10k": cpu * scale, "decoder_tflop_10k": flops / 1e12}
    if args.compare_generic:
        (nll_g, _), wall_g, cpu_g = timed(lambda: generic_bounds(model, x, args.k, args.seed))
        rates.append(matmul_gflops())
        result.update(generic_wall_s_10k=wall_g * scale, generic_cpu_s_10k=cpu_g * scale,
                      generic_nll=float(nll_g.mean()), max_nll_difference=float(np.abs(nll - nll_g).max()))
    best = max(rates)
    result.update(matmul_gflops=best, bound_s_10k=flops / (best * 1e9), cores=os.cpu_count(),
                  load_average=os.getloadavg(), machine=platform.processor() or platform.machine(),
                  numpy=np.__version__)

    print(f"{result['model']}, K = {args.k}, {n} test digits timed (times scaled to {TEST_DIGITS:,}); "
          f"load average {result['load_average'][0]:.1f} on {result['cores']} cores")
    print(f"  decoder products: {result['decoder_tflop_10k']:.1f} TFLOP; best matmul rate {best:.0f} GFLOP/s "
          f"-> bound {result['bound_s_10k']:.0f} s")
    print(f"  fast path:    {result['wall_s_10k']:7.0f} s wall  {result['cpu_s_10k']:7.0f} s CPU  "
          f"({result['wall_s_10k'] / result['bound_s_10k']:.2f} x the bound)  NLL {result['nll']:.3f}")
    if args.compare_generic:
        print(f"  generic path: {result['generic_wall_s_10k']:7.0f} s wall  {result['generic_cpu_s_10k']:7.0f} s CPU  "
              f"NLL {result['generic_nll']:.3f}; largest per-digit difference {result['max_nll_difference']:.1e} nats")
    print("  L_K: " + ", ".join(f"L_{k} = {v:.3f}" for k, v in curve.items()))
    if args.profile:
        stages = profile_stages(model, data.to_float(x[:4]), args.k)
        result["profile_cpu_ms_per_digit"] = stages
        print("  CPU ms per digit, one thread:")
        for name, ms in stages.items():
            print(f"    {name:<52} {ms:8.1f}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
