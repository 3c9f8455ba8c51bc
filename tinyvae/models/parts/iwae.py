"""The importance-weighted bound L_K as a training objective, forward and backward by hand.

Burda, Grosse & Salakhutdinov, *Importance Weighted Autoencoders* (ICLR 2016), sec. 3: draw K
samples z_k = μ + σ ⊙ ε_k from q(z|x) for each example and maximize

    L_K = E[log (1/K) Σ_k w_k],   log w_k = log p(x|z_k) + log p(z_k) − log q(z_k|x)   [eq:iwae-log-weight]

The loss is −L_K in nats per example (summed over pixels and latent dimensions, averaged over the
N examples) [eq:iwae-loss]. K = 1 is the ELBO with its KL term estimated by Monte Carlo from the
one sample (log q − log p at z), not in closed form; K > 1 is a tighter bound.

Shapes: N batch, K importance samples, D input, Z latent; the decoder sees N·K rows.

The backward (derivations/iwae.md): ∂loss/∂log w_nk = −w̃_nk / N with w̃ = softmax_k(log w), held
constant [eq:iwae-grad-logw]; through the decoder and the reparameterization on all N·K samples
like the ELBO's; and log q(z_k|x), written with ε as −½ Σ_j (log 2π + log σ_j² + ε_kj²), gives
every log σ² a constant −½ per sample once its two dependences (through z and explicit) are added
[eq:iwae-log-q-eps]. ``IWAE`` is the objective part that the VAE plugs in for
``config.objective == "iwae"``; it has the steps of every objective (``objectives.py``).

``stats`` under this objective: ``loss`` is −L_K (what is minimized); ``recon`` is
−(1/(N K)) Σ log p(x|z_nk), the reconstruction averaged over the K samples; ``kl`` is
(1/(N K)) Σ (log q(z_nk|x) − log p(z_nk)), the Monte Carlo estimate of the KL term; so
``recon + kl`` is the K-sample estimate of the negative ELBO and ``loss ≤ recon + kl`` always
(log of a mean ≥ mean of logs).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ... import backend
from ...backend import get_xp
from ...checks import ShapeError, check_array
from ...nn import sigmoid_from_abs
from ..flow_sizes import row_floats as flow_row_floats

LOG_2PI = math.log(2.0 * math.pi)
# A bound on the arrays of N·K rows that one training step holds at its peak, in rows of each width:
# the decoder's output, its gradient and the likelihood's scratch buffers (5·D); per hidden layer its
# pre-activation, activation, gradient and temporaries (5·H); ε, z, their gradients and products (8·Z).
# Peaks measured with tracemalloc on 784-400-20 and 784-200-200-50 models were 0.6 to 0.8 of it
# (tests/test_iwae.py checks that it bounds the peak).
ROW_FACTORS = {"D": 5, "H": 5, "Z": 8}
MEMORY_SHARE = 0.5  # at most this share of the free memory for one step's N·K rows


class Cache(NamedTuple):
    """What ``backward`` needs from ``forward``; nothing is recomputed."""

    dout: object  # (N·K, D) ∂(−log p(x|z))/∂out per row, not yet weighted
    z: object  # (N, K, Z)
    eps: object  # (N, K, Z)
    std: object  # (N, Z)
    weights: object  # (N, K) w̃ = softmax_k(log w)


def check_eps(eps, n, k, z_dim, validate=True):
    """ε for the IWAE objective must be (N, K, Z); a message that names each letter otherwise."""
    want = (n, k, z_dim)
    shape = tuple(getattr(eps, "shape", ()))
    if shape != want:
        raise ShapeError(f"eps: expected shape (N, K, Z) = {want} for the IWAE objective (N = {n} examples, "
                         f"K = {k} importance samples each, Z = {z_dim} latent dimensions), got {shape}")
    return check_array(eps, "eps", shape=want, finite=validate)


def step_bytes(n, k, config, itemsize):
    """A bound on the bytes of the N·K-row arrays of one IWAE training step (forward and backward)."""
    per_row = (ROW_FACTORS["D"] * config.input_dim + ROW_FACTORS["H"] * sum(config.hidden)
               + ROW_FACTORS["Z"] * config.latent + flow_row_floats(config))
    return int(n) * int(k) * per_row * int(itemsize)


def check_memory(n, k, config, itemsize, xp):
    """Refuse, before anything is allocated, a batch whose N·K rows would not fit in memory.

    The error names the largest batch that fits with this K (or says that no batch does).
    """
    free = backend.available_memory(xp)
    if free is None:
        return
    need, budget = step_bytes(n, k, config, itemsize), MEMORY_SHARE * free
    if need <= budget:
        return
    fits = int(budget // step_bytes(1, k, config, itemsize))
    where = "on the GPU" if not backend.is_numpy(xp) else "in RAM"
    advice = (f"a batch of at most {fits} fits with k {k}" if fits >= 1 else
              f"not even a batch of 1 fits with k {k}: lower k")
    raise ValueError(f"batch {n} with k {k} needs about {need / 2**30:.1f} GiB for the decoder's N·K = "
                     f"{int(n) * int(k):,} rows, more than {MEMORY_SHARE:.0%} of the {free / 2**30:.1f} GiB "
                     f"free {where}; {advice}")


# --------------------------------------------------------------------------- the pieces of log w


def sample(mu, log_var, eps):
    """z_nk = μ_n + σ_n ⊙ ε_nk for every example and sample: (N, K, Z), and σ (N, Z)."""
    xp = get_xp(mu)
    std = xp.exp(0.5 * log_var)  # (N, Z)
    return mu[:, None, :] + std[:, None, :] * eps, std  # (N, K, Z)  [eq:reparam]


def log_posterior(eps, log_var):
    """log q(z_nk|x_n) for z = μ + σ ⊙ ε: −½ Σ_j (log 2π + log σ_j² + ε_j²), shape (N, K).

    (z − μ)²/σ² is exactly ε², so neither z nor μ appears [eq:iwae-log-q-eps].
    """
    return -0.5 * ((eps * eps).sum(axis=-1) + log_var.sum(axis=-1)[:, None]
                   + eps.shape[-1] * LOG_2PI)  # [eq:iwae-log-q-eps]


def bernoulli_rows(logits, x):
    """log p(x_n | logits_nk) summed over pixels, (N, K), and σ(l) − x (N, K, D): −∂ log p/∂l.

    ``logits`` (N, K, D), ``x`` (N, D) in [0, 1]. The stable form of [eq:bce-stable], per row.
    """
    xp = get_xp(logits)
    xb = x[:, None, :]  # (N, 1, D) against (N, K, D)
    buf = xp.abs(logits)  # |l|
    sum_pos = 0.5 * (logits.sum(axis=-1) + buf.sum(axis=-1))  # Σ_d max(l, 0)
    xp.negative(buf, out=buf)
    xp.exp(buf, out=buf)
    buf += 1  # 1 + exp(−|l|) in [1, 2] (exactly 1 in float32 once exp(−|l|) < 2⁻²⁴)
    log_term = log_row_sums(buf)  # Σ_d log(1 + exp(−|l|)), buf kept
    xp.reciprocal(buf, out=buf)  # σ(|l|)
    grad = sigmoid_from_abs(buf, logits)  # σ(l), in place
    grad -= xb  # σ(l) − x  [eq:bce-grad]
    log_px = -(sum_pos - (logits * xb).sum(axis=-1) + log_term)  # [eq:bce-stable]
    return log_px, grad


FOLDS = 4  # logarithms of products of up to 2**4 = 16 factors


def log_row_sums(values, inplace=False, axis=-1):
    """Σ along ``axis`` of log(values), with 16 times fewer logarithms; float64 sums.

    A logarithm costs several multiplications (how many depends on the CPU and NumPy's SIMD build;
    benchmarks/bench_log.py measures it), so the two halves along ``axis`` are first
    multiplied together, four times: each logarithm then takes a product of 16 factors
    [eq:log-of-products]. The caller makes sure such products stay finite (factors in [1, 2] give
    at most 2**16). ``inplace=True`` folds within ``values`` (destroyed); otherwise into a new
    half-size array. An axis of odd length is not folded further.
    """
    xp = get_xp(values)
    v = xp.moveaxis(values, axis, 0)  # the summed axis first: v[:w] is then a block of whole rows
    width = v.shape[0]
    if width % 2:
        return xp.log(v).sum(axis=0, dtype=xp.float64)
    width //= 2
    prod = v if inplace else xp.empty((width,) + v.shape[1:], dtype=values.dtype)
    xp.multiply(v[:width], v[width:2 * width], out=prod[:width])
    for _ in range(FOLDS - 1):
        if width % 2:
            break
        width //= 2
        xp.multiply(prod[:width], prod[width:2 * width], out=prod[:width])
    return xp.log(prod[:width]).sum(axis=0, dtype=xp.float64)  # [eq:log-of-products]


def gaussian_rows(mean, x, obs_var):
    """log N(x_n; mean_nk, obs_var·I) summed over D, (N, K), and (mean − x)/obs_var: −∂ log p/∂mean."""
    diff = mean - x[:, None, :]  # (N, K, D)
    d = mean.shape[-1]
    log_px = -(diff * diff).sum(axis=-1) / (2.0 * obs_var) - 0.5 * d * (LOG_2PI + math.log(obs_var))  # [eq:gaussian-nll]
    diff /= obs_var  # [eq:gaussian-nll-grad]
    return log_px, diff


def bound(log_w):
    """−L_K estimated from log weights (N, K): (loss, w̃). loss = −(1/N) Σ_n log (1/K) Σ_k w_nk.

    The log-sum-exp takes out each row's maximum, so log weights of ±1e4 stay finite; the
    normalized weights w̃ = softmax_k(log w) (rows sum to 1) come out of the same exponentials.
    """
    xp = get_xp(log_w)
    n, k = log_w.shape
    m = xp.max(log_w, axis=1, keepdims=True)  # (N, 1)
    e = xp.exp(log_w - m)  # (N, K), every entry in (0, 1], the largest exactly 1
    total = e.sum(axis=1, keepdims=True)  # in [1, K]
    lse = (xp.log(total) + m)[:, 0]  # log Σ_k w_nk  [eq:log-mean-exp]
    loss = -(lse - math.log(k)).sum() / n  # [eq:iwae-loss]
    return loss, e / total  # w̃  [eq:iwae-weights]


# --------------------------------------------------------------------------- the objective


class IWAE:
    """loss = −L_K, K reparameterized samples per example weighted by w̃ = softmax_k(log w)."""

    name = "iwae"

    def __init__(self, k, config):
        self.k, self.config = int(k), config
        self.stats = {}
        self._cache = None

    def noise(self, model, n, eps, validate):
        """ε (N, K, Z), drawn from ``model.rng`` when None; a batch whose N·K rows cannot fit is refused first."""
        check_memory(n, self.k, self.config, model.dtype.itemsize, model.xp)
        if eps is None:
            return model.rng.standard_normal((n, self.k, self.config.latent), dtype=model.dtype)
        return check_eps(eps, n, self.k, self.config.latent, validate)

    def sample(self, mu, log_var, eps):
        """z_nk = μ_n + σ_n ⊙ ε_nk as N·K rows for the decoder; keeps z (N, K, Z), ε and σ."""
        z, std = sample(mu, log_var, eps)  # (N, K, Z)
        self._cache = Cache(None, z, eps, std, None)
        n, k, z_dim = z.shape
        return z.reshape(n * k, z_dim)  # (N·K, Z)

    def forward(self, x, out, parts, mu, log_var, validate, fit):
        z, eps = self._cache.z, self._cache.eps
        n, k, _ = z.shape
        d = out.shape[-1]
        log_px, dout = parts.likelihood.log_prob_rows(out.reshape(n, k, d), x)  # (N, K), (N, K, D)
        log_pz, log_qz = parts.prior.log_prob(z), log_posterior(eps, log_var)  # (N, K) each
        log_w = log_px + log_pz - log_qz  # (N, K)  [eq:iwae-log-weight]
        loss, weights = bound(log_w)
        self._cache = Cache(dout.reshape(n * k, d), z, eps, self._cache.std, weights)
        self._prior = parts.prior
        self.stats = {"loss": loss, "recon": -log_px.sum() / (n * k), "kl": (log_qz - log_pz).sum() / (n * k)}
        return loss

    def dout(self):
        """∂loss/∂out: each row's −∂ log p(x|z)/∂out weighted by its w̃ / N."""
        cache = self._cache
        n, k = cache.weights.shape
        g = cache.weights / n  # (N, K) −∂loss/∂log w  [eq:iwae-grad-logw]
        return cache.dout * g.reshape(n * k, 1)  # (N·K, D)  [eq:iwae-grad-out]

    def latent_backward(self, dz):
        """Σ_k w̃_nk ∇ log w_nk / N through z to (μ, log σ²), with the prior's and log q's own terms."""
        cache = self._cache
        n, k = cache.weights.shape
        g = cache.weights / n  # (N, K)  [eq:iwae-grad-logw]
        dz = dz.reshape(n, k, -1)  # (N, K, Z)
        dz += g[:, :, None] * self._prior.neg_log_prob_grad(cache.z)  # the prior: −∂ log p(z)/∂z = z  [eq:iwae-grad-z]
        dmu = dz.sum(axis=1)  # dz/dμ = 1; log q adds nothing  [eq:iwae-grad-mu] [eq:iwae-log-q-total]
        dlog_var = 0.5 * cache.std * (dz * cache.eps).sum(axis=1) - 0.5 / n  # [eq:iwae-grad-logvar]
        return dmu, dlog_var
