"""The continuous-Bernoulli VAE trained and scored on dequantized pixels, x = (k + u)/256.

    python benchmarks/cb_dequantized.py                       # 10 epochs, K = 1000 on 1,000 test digits
    python benchmarks/cb_dequantized.py --out benchmarks/results/NAME.json

On grey levels k/255 the continuous Bernoulli's likelihood has no maximum: the pixels equal to 0
(and 1) are atoms, and −log p(0 | l) falls without bound as l → −∞
(derivations/continuous-bernoulli.md), so a negative log-likelihood measured there says how far the
logits have run, not how good the model is. Dequantization (derivations/notation.md) spreads each
8-bit value k over its cell [k/256, (k + 1)/256) with u ~ U[0, 1): no pixel sits on an atom and the
density is bounded. Training draws a fresh u for every batch (from the seed, the epoch and the
step); the test digits get one fixed u (from the seed), the same for the ELBO and the
importance-weighted estimate.

The model is the pytorch/examples configuration (784-400-20, ReLU, Adam 1e-3, batch 128, seed 0)
with the continuous-Bernoulli decoder, built by `TrainConfig.model_config` as `tinyvae train` builds
it. Prints the test negative ELBO, the importance-weighted NLL (both nats per example, densities on
[0, 1)^784) and the bits per dimension they bound for the 8-bit images: at most E_u[ℓ]/(D ln 2) + 8.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np

import tinyvae
from tinyvae.data import epoch_permutation, load_split
from tinyvae.evaluation.evaluate import active_units
from tinyvae.run.config import TrainConfig


def dequantize(images, rng):
    """uint8 images (N, D) as floats (k + u)/256 in [0, 1), u ~ U[0, 1) drawn from ``rng``: (N, D) float32."""
    u = rng.random(images.shape, dtype=np.float32)
    return (images.astype(np.float32) + u) / np.float32(256)


def train_dequantized(train_x, epochs, seed, batch_size=128, lr=1e-3):
    """The continuous-Bernoulli VAE after ``epochs`` passes over dequantized ``train_x``; its last epoch's mean loss."""
    config = TrainConfig(likelihood="continuous-bernoulli", seed=seed, batch_size=batch_size, lr=lr)
    model = tinyvae.build_model(config.model_config(train_x.shape[1]))
    optimizer = tinyvae.Adam(model, lr=lr)
    steps = -(-len(train_x) // batch_size)
    for epoch in range(epochs):
        order = epoch_permutation(len(train_x), seed, epoch)
        total = 0.0
        for step in range(steps):
            index = order[step * batch_size:(step + 1) * batch_size]
            rng = np.random.default_rng([seed, epoch, step])
            x = dequantize(train_x[index], rng)  # (N, D), a fresh u every batch
            loss, _ = model.loss_and_grad(x)
            optimizer.step()
            total += float(loss) * len(index)
        print(f"epoch {epoch + 1}: train loss {total / len(train_x):.1f} nats per example", flush=True)
    return model, total / len(train_x)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=1000, help="importance samples per test digit")
    parser.add_argument("--limit", type=int, default=1000, help="test digits for the importance-weighted NLL")
    parser.add_argument("--out", help="write the figures to this JSON file")
    args = parser.parse_args(argv)

    train_x, _ = load_split("train")
    test_x, _ = load_split("test")
    train_x, test_x = train_x.reshape(len(train_x), -1), test_x.reshape(len(test_x), -1)
    start = time.perf_counter()
    model, train_loss = train_dequantized(train_x, args.epochs, args.seed)
    train_seconds = time.perf_counter() - start

    x_test = dequantize(test_x, np.random.default_rng([args.seed, 2026]))  # one fixed u for the test digits
    elbo = tinyvae.evaluate_elbo(model, x_test, seed=args.seed)
    nll = tinyvae.importance_weighted_nll(model, x_test[:args.limit], k=args.k, seed=args.seed)
    elbo_first = tinyvae.evaluate_elbo(model, x_test[:args.limit], seed=args.seed)
    active = active_units(model, x_test)[0]
    d = test_x.shape[1]
    bits = lambda nats: nats / (d * math.log(2)) + 8  # noqa: E731  the 8-bit images' bits per dimension, at most
    result = {
        "what": "continuous-Bernoulli VAE, pytorch/examples configuration, trained and tested on dequantized "
                "pixels x = (k + u)/256 (benchmarks/cb_dequantized.py)",
        "epochs": args.epochs, "seed": args.seed,
        "train_loss_last_epoch": round(train_loss, 2),
        "test_neg_elbo": round(elbo["loss"], 2), "test_recon": round(elbo["recon"], 2),
        "test_kl": round(elbo["kl"], 2), "test_n": int(len(test_x)),
        "nll_k": args.k, "nll_n": int(args.limit),
        "nll_mean": round(float(nll.mean()), 2),
        "nll_stderr": round(float(nll.std(ddof=1) / math.sqrt(len(nll))), 2),
        "neg_elbo_same_digits": round(elbo_first["loss"], 2),
        "bits_per_dim_bound": round(bits(float(nll.mean())), 3),
        "active_units": active,
        "train_seconds": round(train_seconds, 1),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}; loaded by other jobs",
    }
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
