"""The continuous Bernoulli distribution: a normalized density for pixels that are grey levels in [0, 1].

Loaiza-Ganem & Cunningham, *The continuous Bernoulli: fixing a pervasive error in variational
autoencoders* (NeurIPS 2019), sections 2 and 3. With the decoder's logit l per pixel and λ = σ(l)::

    p(x | l) = C(l) · λ^x (1 − λ)^(1 − x),   x ∈ [0, 1],   log C(l) = log(l / tanh(l/2))  (log 2 at l = 0)

so −log p(x | l) is the binary cross-entropy with logits minus log C(l) [eq:cb-nll]. Its gradient
is the distribution's mean minus the pixel, E[x] − x [eq:cb-nll-grad], and E[x] = σ(l) − d log C/dl
[eq:cb-mean] is *not* λ = σ(l): a continuous Bernoulli with λ = 0.9 has mean 0.67. ``VAE.decode``
returns this mean. The derivation is in derivations/continuous-bernoulli.md.

Numerics. log C and its derivative g(l) = 1/l − 1/sinh(l) are even and odd in l. For |l| ≥ 1 they
are computed from u = exp(−|l|) ∈ (0, 1/e], which cannot overflow (at l = ±1e4, u is 0 and every
term stays finite) [eq:cb-log-norm-stable]; below that the closed forms cancel (1/l − 1/sinh l
loses all its digits as l → 0, and l / tanh(l/2) is 0/0 at l = 0), so a power series in l² takes over
[eq:cb-log-norm-series]: at |l| = 1, its worst case, 16 terms leave a truncation error of 0.82 ulp in
float64 and 8 terms 0.14 ulp in float32, round-off level.
Loss values reduce as everywhere in tinyvae: sum over pixels, mean over the batch, nats per example.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from ..backend import get_xp
from ..checks import check_array, check_same_shape

SERIES_CUTOFF = 1.0  # |l| below this uses the series
LOG_2 = math.log(2.0)


def _bernoulli_numbers(count):
    """B_0, ..., B_count as exact fractions (the recurrence Σ_k C(m+1, k) B_k = 0, B_0 = 1)."""
    b = [Fraction(1)]
    for m in range(1, count + 1):
        b.append(-sum(math.comb(m + 1, k) * b[k] for k in range(m)) / (m + 1))
    return b


def _series_coefficients(terms):
    """c_n, n = 1..terms, of g(l) = 1/l − 1/sinh(l) = Σ_n c_n l^(2n−1), c_n = 2(2^(2n−1) − 1) B_2n / (2n)!."""
    b = _bernoulli_numbers(2 * terms)
    return [2 * (2 ** (2 * n - 1) - 1) * b[2 * n] / math.factorial(2 * n) for n in range(1, terms + 1)]  # [eq:cb-log-norm-series]


_COEFFICIENTS = _series_coefficients(16)  # c_1 = 1/6, c_2 = −7/360, c_3 = 31/15120, ...
SERIES_TERMS = {np.dtype(np.float32): 8, np.dtype(np.float64): 16}  # truncation under one ulp on |l| <= 1


def _series(l, dtype):
    """(log C(l) − log 2, g(l)) from the power series, for |l| ≤ 1 (Horner's rule in l²)."""
    xp = get_xp(l)
    c = _COEFFICIENTS[:SERIES_TERMS[np.dtype(dtype)]]
    t = l * l
    g_poly = xp.full_like(l, float(c[-1]))  # Σ c_n t^(n−1)
    h_poly = xp.full_like(l, float(c[-1] / (2 * len(c))))  # Σ c_n/(2n) t^(n−1)
    for n in range(len(c) - 1, 0, -1):
        g_poly *= t
        g_poly += float(c[n - 1])
        h_poly *= t
        h_poly += float(c[n - 1] / (2 * n))
    return t * h_poly, l * g_poly  # [eq:cb-log-norm-series]


def _closed_form(a):
    """(log C, |g|) at |l| = a ≥ 1, from u = exp(−a) ∈ (0, 1/e]: no overflow at any logit.

    l / tanh(l/2) = a (1 + u)/(1 − u) and 1/sinh(a) = 2u/((1 − u)(1 + u)). With a ≥ 1, 1 − u ≥ 0.63 loses
    nothing, so plain log and exp do (NumPy's log1p and expm1 cost several times more).
    """
    xp = get_xp(a)
    u = xp.exp(-a)
    one_minus_u, one_plus_u = 1 - u, 1 + u
    log_c = xp.log(a * one_plus_u / one_minus_u)  # [eq:cb-log-norm-stable]
    g_abs = 1 / a - 2 * u / (one_minus_u * one_plus_u)  # [eq:cb-log-norm-grad]
    return log_c, g_abs


def log_normalizer(logits):
    """log C(l) [eq:cb-log-norm] and its derivative d log C/dl = 1/l − 1/sinh(l), elementwise: ``(log_c, g)``.

    Finite and accurate for every finite logit, 0 and ±1e4 included: within 2 ulps below |l| = 1 (the
    series); just above it the closed form of g cancels and is off by up to about 15 ulps in float32
    and 8 in float64 (measured in derivations/continuous-bernoulli.md).
    """
    check_array(logits, "logits")
    xp = get_xp(logits)
    a = xp.abs(logits)
    small = a < SERIES_CUTOFF
    # Each form sees only values on its own side: the others are moved to the cut-off (no log 0).
    h_series, g_series = _series(xp.where(small, logits, 0).astype(logits.dtype, copy=False), logits.dtype)
    log_c_big, g_big = _closed_form(xp.maximum(a, SERIES_CUTOFF).astype(logits.dtype, copy=False))
    log_c = xp.where(small, h_series + LOG_2, log_c_big)
    g = xp.where(small, g_series, xp.copysign(g_big, logits))  # g is odd in l
    return log_c.astype(logits.dtype, copy=False), g.astype(logits.dtype, copy=False)


def mean(logits):
    """E[x] of the continuous Bernoulli with logits l: σ(l) − d log C/dl [eq:cb-mean], in (0, 1).

    At l = 0 it is ½; it tends to 1 − 1/l for large l (σ(l) tends to 1 much faster).
    """
    _, g = log_normalizer(logits)
    return _sigmoid(logits) - g  # [eq:cb-mean]


def logits_for_mean(target):
    """The logits whose continuous Bernoulli mean is ``target`` (values in (0, 1)), by bisection.

    E[x | l] increases with l (its derivative is the variance), from 0 at −∞ to 1 at +∞, so 60 halvings
    of [−1e4, 1e4] pin l down to float64 round-off. Used to start a decoder at the average image.
    """
    target = np.asarray(target, dtype=np.float64)
    if not np.all((target > 0) & (target < 1)):
        raise ValueError(f"a continuous Bernoulli mean lies strictly between 0 and 1, got values in "
                         f"[{target.min():g}, {target.max():g}]")
    low, high = np.full(target.shape, -1e4), np.full(target.shape, 1e4)
    for _ in range(60):
        mid = 0.5 * (low + high)
        below = mean(mid) < target
        low, high = np.where(below, mid, low), np.where(below, high, mid)
    return 0.5 * (low + high)


def _sigmoid(l):
    xp = get_xp(l)
    e = xp.exp(-xp.abs(l))
    r = 1 / (1 + e)
    return xp.where(l >= 0, r, e * r)  # [eq:sigmoid-stable]


def check_targets(x, name="x (targets)"):
    """The continuous Bernoulli is a density on [0, 1]: refuse any pixel outside it, saying where."""
    xp = get_xp(x)
    if x.size and not bool(xp.all((x >= 0) & (x <= 1))):
        lo, hi = float(xp.min(x)), float(xp.max(x))
        raise ValueError(
            f"{name}: continuous Bernoulli targets must lie in [0, 1] (it is a density on the unit interval), "
            f"got values in [{lo:g}, {hi:g}]; scale images by 1/255 (tinyvae.data.to_float) or use "
            f"likelihood='gaussian' for unbounded data")
    return x


def _pixel_nll(logits, x):
    """−log p(x | l) per pixel, max(l, 0) − x l + log(1 + e^(−|l|)) − log C(l), and E[x] per pixel."""
    xp = get_xp(logits)
    log_c, g = log_normalizer(logits)
    e = xp.exp(-xp.abs(logits))  # in (0, 1]
    one_plus_e = 1 + e
    bce = xp.maximum(logits, 0) - x * logits + xp.log(one_plus_e)  # [eq:bce-stable]
    sig = xp.where(logits >= 0, 1, e) / one_plus_e  # σ(l)  [eq:sigmoid-stable]
    return bce - log_c, sig - g  # [eq:cb-nll] [eq:cb-mean]


def continuous_bernoulli_nll(logits, x, *, validate=True):
    """−log p(x | logits) for a continuous Bernoulli decoder: batch mean of per-example sums.

    Returns ``(loss, dlogits)``; ``loss`` is a 0-d array in nats per example (a density: it can be
    negative), ``dlogits`` (N, D) is (E[x] − x) / N [eq:cb-nll-grad]. ``x`` must lie in [0, 1].
    """
    check_array(logits, "logits", ndim=2, finite=validate)
    check_array(x, "x (targets)", ndim=2, finite=validate)
    check_same_shape(logits, "logits", x, "x (targets)")
    if validate:
        check_targets(x)
    n = logits.shape[0]
    nll, expected = _pixel_nll(logits, x)
    loss = nll.sum() / n  # [eq:cb-nll] [eq:loss-reduction]
    dlogits = (expected - x) / n  # (E[x] − x) / N  [eq:cb-nll-grad]
    return loss, dlogits.astype(logits.dtype, copy=False)


def continuous_bernoulli_log_prob(logits, x):
    """log p(x | logits) per example, the sum over the last axis: (N,) or (S, N); ``x`` broadcasts."""
    nll, _ = _pixel_nll(logits, x)
    return -nll.sum(axis=-1)  # [eq:cb-nll]


def sample(logits, rng):
    """One draw per pixel by inverting the CDF F(x) = (e^(l x) − 1)/(e^l − 1) [eq:cb-inverse-cdf].

    ``rng`` is a generator of the logits' namespace. Pictures show the mean, not draws: a draw
    adds independent noise to every pixel.
    """
    xp = get_xp(logits)
    u = rng.random(logits.shape).astype(logits.dtype)
    # x = log(1 + u (e^l − 1)) / l, written so that large |l| cannot overflow: for l < 0 the same
    # formula holds; for l > 0 use x = 1 + log(1 + (1 − u)(e^(−l) − 1)) / l.  Near l = 0, x = u.
    # log1p/expm1 on both sides: log(u + (1 − u) e^(−l)) would round the small difference from 1
    # away at small l (float32 draws off by 0.06 at l = 2e-6).
    l = xp.where(xp.abs(logits) < 1e-6, 1e-6, logits).astype(logits.dtype)
    neg = xp.log1p(u * xp.expm1(xp.minimum(l, 0))) / l
    pos = 1 + xp.log1p((1 - u) * xp.expm1(-xp.maximum(l, 0))) / l
    x = xp.where(l < 0, neg, pos)
    return xp.clip(xp.where(xp.abs(logits) < 1e-6, u, x), 0, 1)  # [eq:cb-inverse-cdf]
