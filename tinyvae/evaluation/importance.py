"""The log importance weights of a trained VAE, K per example, for the NLL estimate and the L_K curve.

Burda, Grosse & Salakhutdinov (ICLR 2016, sec. 5) score a model by L_K with K = 5000 samples per
test digit: 5·10⁷ decoder passes for MNIST's 10,000 test digits. ``log_weights`` yields, batch by
batch of examples, the (B, K) array of log w = log p(x|z) + log p(z) − log q(z|x)
[eq:iwae-log-weight], in float64 on the host; ``evaluate.py`` turns it into the NLL estimate and
``bound_curve`` into estimates of L_1, L_5, L_50, ... from the same samples.

The noise is one stream: example after example, the K·Z normals of each, so the result depends on
the seed alone, not on how examples and samples are batched.

Two ways to the same numbers:

* ``_generic``: any likelihood, any device (NumPy or CuPy), the model's own decoder and
  ``log_likelihood``, a few thousand decoder rows at a time.
* ``_binary_bernoulli``, on the CPU for a Bernoulli decoder and {0, 1} pixels, which is what the
  benchmark protocol evaluates. Most of the time goes into the decoder's matrix products, so the
  rest is cut down to one transcendental function per pixel:
  - with s = 1 − 2x, log p(x|l) = −Σ_d log(1 + exp(s_d l_d)) [eq:bce-binary]; the sign s (one per
    example and pixel) is folded into the last layer's weights, and every bias into its weight matrix
    as one more row (the layer's input gets a column of ones), so each layer is a single product;
  - the sum of logs is the log of products of 16 factors [eq:log-of-products], folded over the
    pixels of each sample (stored pixels-first, so each fold multiplies contiguous blocks); a product
    that overflows float32 (16 pixels wrong by an average logit of 5.5 or more) is recomputed for
    its sample with the stable form in float64;
  - log p(z) − log q(z|x) = ½ Σ_j (ε_j² − z_j² + log σ_j²) [eq:iwae-log-q-eps];
  - examples are split between host threads (one per core), each running its own matrix products
    with one BLAS thread (threadpoolctl), in blocks of rows that stay in the core's cache; a helper
    thread draws the next batch's ε meanwhile. Hidden layers with tanh or ReLU take this path; other activations the generic one.
  In the model's dtype (float32 for a trained model); the log weights are summed in float64.
"""

from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext

import numpy as np

from .. import backend
from ..backend import host_threads, is_numpy, run_split, threads_available, to_numpy
from ..nn import Dense, ReLU, Tanh
from ..models.parts.iwae import log_row_sums
from ..prob.losses import log_normal_density

MAX_ROWS = 8192  # decoder rows per pass of the generic path: ~25 MB per (rows, 784) float32
FAST_ROWS = 256  # rows per block of the CPU path: the (256, 784) float32 block (0.8 MB) stays in a core's cache
CURVE_KS = (1, 5, 50)  # the L_K curve is reported at these K and at the K of the estimate


def log_weights(model, batches, k, noise, *, sample_chunk=None):
    """Yield the log weights (B, K) float64 on the host for each float batch (B, D) of ``batches``.

    ``noise`` (a generator of the model's namespace) gives ε example after example.
    ``sample_chunk``: decoder rows per pass (default: MAX_ROWS on the generic path, FAST_ROWS on the CPU one).
    """
    fast = _fast_path_applies(model)
    if not fast:
        for xb in batches:
            yield to_numpy(_generic(model, xb, k, noise, sample_chunk or MAX_ROWS))
        return
    z_dim, dtype = model.config.latent, model.dtype
    rows = sample_chunk or FAST_ROWS
    draws = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tinyvae-noise") if threads_available() \
        else _Inline()  # the browser starts no thread: ε is drawn when asked for

    def draw(batch):  # a binary batch's ε, on the helper thread (the stream stays in order)
        return draws.submit(noise.standard_normal, (len(batch[0]), k, z_dim), dtype=dtype) \
            if batch is not None and batch[1] else None

    try:
        with _one_blas_thread():
            batches = ((xb, bool(((xb == 0) | (xb == 1)).all())) for xb in batches)
            current = next(batches, None)
            pending = draw(current)
            while current is not None:
                xb, binary = current
                following = next(batches, None)
                if binary:
                    eps = pending.result()
                    pending = draw(following)  # the next batch's ε is drawn while this one is computed
                    yield _binary_bernoulli(model, xb, eps, rows)
                else:  # grey levels: the generic path draws its own ε
                    log_w = to_numpy(_generic(model, xb, k, noise, sample_chunk or MAX_ROWS))
                    pending = draw(following)
                    yield log_w
                current = following
    finally:
        draws.shutdown(wait=True)


class _Inline:
    """A stand-in for a one-thread pool that runs each task at once, on the calling thread."""

    def submit(self, fn, *args, **kwargs):
        done = Future()
        done.set_result(fn(*args, **kwargs))
        return done

    def shutdown(self, wait=True):
        pass


def bound_curve(log_w, ks):
    """Estimates of L_K' for each K' in ``ks`` from the K log weights of each example: (B, len(ks)).

    The K samples are cut into K // K' blocks of K' (a remainder is dropped); each block gives
    log (1/K') Σ w, and the blocks are averaged. When each K' divides the next and K (1, 5, 50,
    5000), the blocks are nested and the estimates never fall as K' grows, for every example
    (derivations/iwae.md) [eq:iwae-bound-order].
    """
    n, k = log_w.shape
    out = np.empty((n, len(ks)), dtype=np.float64)
    for i, kk in enumerate(ks):
        if not 1 <= kk <= k:
            raise ValueError(f"a bound with K' = {kk} samples needs 1 <= K' <= K = {k}")
        blocks = log_w[:, :(k // kk) * kk].reshape(n, k // kk, kk)
        m = blocks.max(axis=2, keepdims=True)
        lse = np.log(np.exp(blocks - m).sum(axis=2)) + m[..., 0]  # [eq:log-mean-exp]
        out[:, i] = (lse - math.log(kk)).mean(axis=1)  # [eq:iw-bound]
    return out


# --------------------------------------------------------------------------- any model, any device


def _generic(model, xb, k, noise, rows):
    """(B, K) log weights on the model's device, the decoder ``rows`` rows at a time.

    A batch whose B·K rows fit goes through at once; otherwise one example at a time, its samples
    in chunks. ε is drawn in that order either way: the same stream. A model with two stochastic
    layers computes its own log weights, from ε = [ε1 | ε2], and so does a VAE with a flow posterior.
    """
    n, z_dim = xb.shape[0], model.config.latent + model.config.latent2
    if hasattr(model, "log_weights"):  # two stochastic layers, a flow posterior
        block = lambda i, eps: model.log_weights(xb[i], eps)  # noqa: E731
    else:
        mu, log_var = model.encode(xb)  # (B, Z) each
        block = lambda i, eps: _generic_block(model, xb[i], mu[i], log_var[i], eps)  # noqa: E731
    log_w = model.xp.empty((n, k), dtype=model.xp.float64)
    if n * k <= rows:
        eps = noise.standard_normal((n, k, z_dim), dtype=model.dtype)  # (B, K, Z)
        log_w[...] = block(slice(0, n), eps)
        return log_w
    for i in range(n):
        for s0 in range(0, k, rows):
            eps = noise.standard_normal((1, min(rows, k - s0), z_dim), dtype=model.dtype)  # (1, S, Z)
            log_w[i:i + 1, s0:s0 + eps.shape[1]] = block(slice(i, i + 1), eps)
    return log_w


def _generic_block(model, xb, mu, log_var, eps):
    """log w (b, S) of the examples ``xb`` (b, D) for their noise ``eps`` (b, S, Z)."""
    xp, cfg = model.xp, model.config
    b, s, z_dim = eps.shape
    zero = xp.zeros((z_dim,), dtype=model.dtype)  # the prior's μ and log σ²
    z = mu[:, None, :] + xp.exp(0.5 * log_var)[:, None, :] * eps  # (b, S, Z)  [eq:reparam]
    out = model.decoder.forward(z.reshape(b * s, z_dim)).reshape(b, s, cfg.input_dim)  # (b, S, D)
    log_px = model.log_likelihood(out, xb[:, None, :])  # (b, S): the model's own log p(x|z)
    log_pz = log_normal_density(z, zero, zero)  # (b, S)  [eq:log-normal-density]
    log_qz = log_normal_density(z, mu[:, None, :], log_var[:, None, :])  # (b, S)
    return (log_px + log_pz - log_qz).astype(xp.float64)  # [eq:iwae-log-weight]


# --------------------------------------------------------------------------- {0, 1} pixels, Bernoulli, CPU


def _tanh(a, out):
    return np.tanh(a, out=out)


def _relu(a, out):
    return np.maximum(a, 0, out=out)


FAST_ACTIVATIONS = {Tanh: _tanh, ReLU: _relu}  # computed into a preallocated buffer


def _fast_path_applies(model):
    layers = model.decoder.layers
    return (not hasattr(model, "log_weights") and is_numpy(model.xp) and model.config.likelihood == "bernoulli" and len(layers) % 2 == 1
            and all(isinstance(d, Dense) for d in layers[0::2])
            and all(type(a) in FAST_ACTIVATIONS for a in layers[1::2]))


def _one_blas_thread():
    """One BLAS thread per host thread while evaluating (each core runs its own products)."""
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415
    except ImportError:
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _binary_bernoulli(model, xb, eps, rows):
    """(B, K) float64 log weights of {0, 1} images ``xb`` (B, D) for their noise ``eps`` (B, K, Z)."""
    n = xb.shape[0]
    mu, log_var = model.encode(xb)  # (B, Z) each
    layers = model.decoder.layers
    # every bias as the last row of its weight matrix: the inputs get a column of ones
    weights = [np.vstack([d.params["W"], d.params["b"][None, :]]) for d in layers[0::2]]
    acts = [FAST_ACTIVATIONS[type(a)] for a in layers[1::2]]
    threads = min(host_threads(np), n)
    parts = [(range(t, n, threads), xb, mu, log_var, eps, weights, acts, rows) for t in range(threads)]
    log_w = np.empty((n, eps.shape[1]), dtype=np.float64)
    for part, result in zip(parts, run_split(_examples, parts)):
        log_w[part[0]] = result
    return log_w


def _examples(indices, xb, mu, log_var, eps, weights, acts, rows):
    """The log weights of the examples ``indices``, one after another, on this thread: (len, K)."""
    k, z_dim = eps.shape[1], eps.shape[2]
    rows, dtype = min(rows, k), eps.dtype
    zbuf = np.ones((rows, z_dim + 1), dtype=dtype)  # [z | 1]
    hidden = [np.ones((rows, w.shape[1] + 1), dtype=dtype) for w in weights[:-1]]  # [act(h) | 1]
    # (D, rows): s ⊙ logits, then 1 + e^u, then products. Pixels first, so that folding the halves of
    # each digit's pixels together multiplies whole contiguous blocks.
    u = np.empty((weights[-1].shape[1], rows), dtype=dtype)
    out = np.empty((len(indices), k), dtype=np.float64)
    for row, i in enumerate(indices):
        sign = 1 - 2 * xb[i]  # s = 1 − 2x: +1 where x = 0, −1 where x = 1
        last_t = np.ascontiguousarray((weights[-1] * sign).T)  # (D, H + 1): the sign folded into the last layer
        std = np.exp(0.5 * log_var[i])  # (Z,)
        half_log_var = 0.5 * float(log_var[i].sum(dtype=np.float64))
        for s0 in range(0, k, rows):
            r = min(rows, k - s0)
            e = eps[i, s0:s0 + r]  # (r, Z)
            z = zbuf[:r, :z_dim]
            np.multiply(e, std, out=z)
            z += mu[i]  # z = μ + σ ⊙ ε  [eq:reparam]
            h = zbuf[:r]
            for w, act, buf in zip(weights[:-1], acts, hidden):
                act(h @ w, buf[:r, :-1])  # (r, H)  [eq:dense-forward]
                h = buf[:r]
            nll = _softplus_sums(h, last_t, u[:, :r])  # Σ_d log(1 + e^(s_d l_d)) = −log p(x|z)  [eq:bce-binary]
            zz = (z * z).sum(axis=1, dtype=np.float64)
            ee = (e * e).sum(axis=1, dtype=np.float64)
            out[row, s0:s0 + r] = -nll + 0.5 * (ee - zz) + half_log_var  # [eq:iwae-log-weight] [eq:iwae-log-q-eps]
    return out


def _softplus_sums(h, last_t, u):
    """Σ_d log(1 + e^(u_d)) for each sample, u = (h @ last_tᵀ)ᵀ of shape (D, r), in float64; ``u`` is scratch."""
    np.matmul(last_t, h.T, out=u)  # (D, r): s ⊙ (h W + b), one column per sample
    np.exp(u, out=u)
    u += 1
    sums = log_row_sums(u, inplace=True, axis=0)  # logs of products of 16 factors  [eq:log-of-products]
    bad = ~np.isfinite(sums)  # a product beyond float32's range (or e^u itself): redo those samples exactly
    if bad.any():
        v = h[bad].astype(np.float64) @ last_t.T.astype(np.float64)
        sums[bad] = (np.maximum(v, 0) + np.log1p(np.exp(-np.abs(v)))).sum(axis=1)  # [eq:bce-stable]
    return sums
