"""The VAE's loss terms, each as a value and its gradient.

Reduction, the same for every loss here: **sum over pixels (D) and latent dimensions (Z), mean
over the batch (N), in nats per example** [eq:loss-reduction]. So ``bernoulli_nll`` of a batch is
the average over its N examples of the summed 784-pixel cross-entropy, and its gradient carries
the factor 1/N.

* Bernoulli likelihood, from logits, in the stable form (derivations/bernoulli.md).
* Gaussian likelihood with a fixed observation variance ``obs_var`` (derivations/gaussian.md);
  with ``obs_var=1`` it is ½·(sum of squared errors) + (D/2)·log 2π, i.e. MSE up to scale and a
  constant.
* KL(N(μ, diag σ²) ‖ N(0, I)) in closed form, with gradients w.r.t. μ and log σ² (derivations/kl.md).

The ``*_log_prob`` functions return one number per example (no reduction) for the
importance-weighted bound in ``evaluate.py``.
"""

from __future__ import annotations

import math

from ..backend import get_xp, host_threads, is_numpy, run_split
from ..checks import check_array, check_same_shape, check_unit_interval
from ..nn import sigmoid_from_abs

LOG_2PI = math.log(2.0 * math.pi)


def _check_pair(pred, pred_name, x, validate):
    check_array(pred, pred_name, ndim=2, finite=validate)
    check_array(x, "x (targets)", ndim=2, finite=validate)
    check_same_shape(pred, pred_name, x, "x (targets)")


def bernoulli_nll(logits, x, *, validate=True):
    """−log p(x | logits) for a Bernoulli decoder, batch-mean of per-example sums.

    Returns ``(loss, dlogits)``: loss is a 0-d array in nats per example, ``dlogits`` has the
    shape of ``logits`` (N, D). ``x`` must lie in [0, 1]; grey levels are accepted (then the
    value is a cross-entropy rather than a log-likelihood; see derivations/bernoulli.md).
    Finite and accurate for logits as large as ±1e4: nothing is clipped. In float32 the value
    is off by about 1e-4 nats per example (two large sums cancel below; the gradient is computed
    per element and does not see them): measured in derivations/float32-loss.md.

    This runs on every training step over N·D elements, so it is a short chain of in-place
    operations on the output buffer, written once (``_bce_rows``) and run on row blocks: on the
    CPU, a large batch is cut into one block per core and the blocks run on host threads (NumPy
    releases the GIL inside each operation). Only the summation order of the loss depends on the
    number of blocks; ``dlogits`` is the same bit for bit.
    """
    _check_pair(logits, "logits", x, validate)
    if validate:
        check_unit_interval(x, "x (targets)")
    xp = get_xp(logits)
    n = logits.shape[0]
    dlogits = xp.empty_like(logits)
    blocks = row_blocks(n, logits.shape[1], host_threads(xp))
    partial = run_split(_bce_rows, [(logits[rows], x[rows], dlogits[rows], 1.0 / n) for rows in blocks])
    # Σ_nd max(l, 0) − x l + log(1 + exp(−|l|)), averaged over the batch  [eq:bce-stable] [eq:loss-reduction]
    loss = sum(partial[1:], partial[0]) / n
    return loss, dlogits


def _bce_rows(logits, x, out, scale):
    """Σ of the stable BCE terms over a block of rows; writes scale·(σ(l) − x) into ``out``.

    Reuses each intermediate: |l| gives both Σ max(l, 0) = ½(Σ l + Σ |l|) and exp(−|l|);
    1 + exp(−|l|) gives both the log term and σ(l). The price: Σ l, Σ |l| and Σ x·l are each far
    larger than the loss and cancel, which costs about 1e-4 nats per example in float32 against
    1e-5 for a per-element sum [eq:split-sum-error]; far below the reported precision.
    """
    xp = get_xp(logits)
    buf = xp.abs(logits, out=out)  # |l|
    sum_pos = 0.5 * (logits.sum() + buf.sum())  # Σ max(l, 0)
    xp.negative(buf, out=buf)
    xp.exp(buf, out=buf)  # u = exp(−|l|) in (0, 1]: cannot overflow
    buf += 1  # 1 + u in [1, 2] (exactly 1 in float32 once u < 2⁻²⁴)
    # log(1 + u) rather than log1p(u): 1 + u is needed below anyway, and NumPy's float32 log is
    # typically faster than its log1p (benchmarks/bench_log.py); the two differ by at most about
    # 2·2⁻²⁴ ≈ 1.2e-7 per pixel, ≲ 1e-4 nats over an example's 784 pixels
    # (derivations/float32-loss.md): far below the 0.01 nats to which losses are reported.
    sum_log = sum_of_logs(buf)  # Σ log(1 + u)
    value = sum_pos - xp.vdot(x, logits) + sum_log  # [eq:bce-stable]
    xp.reciprocal(buf, out=buf)  # r = 1 / (1 + u) = σ(|l|)
    grad = sigmoid_from_abs(buf, logits)  # σ(l), in place
    grad -= x
    grad *= scale  # (σ(l) − x) / N  [eq:bce-grad]
    return value


# Products of at most 2**FOLDS factors in [1, 2] stay below 2**64: far from float32's overflow at 2**128.
FOLDS = 6


def sum_of_logs(values):
    """Σ log(values) for values in [1, 2], with about 64 times fewer logarithms.

    On the CPU a logarithm costs several times a multiply (how many depends on the CPU and on
    NumPy's SIMD build; benchmarks/bench_log.py measures it), so the values are first
    multiplied together in groups of up to 64: the sum of the logs is the log of the product
    [eq:log-of-products]. The buffer is folded in halves (the first half times the second), six
    times, into one scratch half-buffer; an odd element left over by a fold is taken by itself.
    In float32 a group's log is off by at most about 100·2⁻²⁴ (63 product roundings and the final
    log's), about 1.6·2⁻²⁴ per value, as much as the per-value logs it replaces [eq:log-of-products-error].
    On a GPU the logs are cheap and the many small operations are not, so there it takes the logs
    directly.
    """
    xp = get_xp(values)
    flat = values.reshape(-1)
    if not is_numpy(xp) or flat.size < 2:
        return xp.log(flat).sum()
    half = flat.size // 2
    prod = xp.multiply(flat[:half], flat[half:2 * half])  # ≤ 2 factors each
    total = xp.log(flat[2 * half:]).sum()  # the odd element, if any
    for _ in range(FOLDS - 1):
        if half < 2:
            break
        size, half = half, half // 2
        prod[:half] *= prod[half:2 * half]
        if size % 2:
            total += xp.log(prod[size - 1:size]).sum()
    return total + xp.log(prod[:half]).sum()  # [eq:log-of-products]


def row_blocks(n, d, threads):
    """Split N rows of width D into ``threads`` slices when the batch is large enough to gain."""
    if threads < 2 or n * d < MIN_SPLIT_ELEMENTS or n < threads:
        return [slice(0, n)]
    bounds = [n * i // threads for i in range(threads + 1)]
    return [slice(bounds[i], bounds[i + 1]) for i in range(threads)]


# Below this many elements (256 MNIST rows) handing half the work to a thread saved nothing when
# measured on a 2-core machine; at 512 rows it halves the time.
MIN_SPLIT_ELEMENTS = 256 * 784


def bernoulli_log_prob(logits, x):
    """log p(x | logits) per example: the sum over the last axis, shape (N,) or (S, N).

    ``x`` broadcasts against ``logits`` (the importance-weighted bound scores S samples of one
    batch). The stable form of ``bernoulli_nll`` with two of its shortcuts: log(1 + u) for log1p(u), and
    Σ max(l, 0) = ½(Σ l + Σ |l|) before Σ x·l is subtracted. No gradient, so no sigmoid; and one log per
    pixel, not ``sum_of_logs``, which sums the whole buffer where this needs one sum per example.
    """
    xp = get_xp(logits)
    buf = xp.abs(logits)  # |l|
    sum_pos = 0.5 * (logits.sum(axis=-1) + buf.sum(axis=-1))  # Σ_d max(l, 0)
    xp.negative(buf, out=buf)
    xp.exp(buf, out=buf)
    buf += 1
    xp.log(buf, out=buf)  # log(1 + exp(−|l|))
    # −Σ_d [max(l, 0) − x l + log(1 + exp(−|l|))]  [eq:bce-stable] [eq:bce-logits]
    return -(sum_pos - (x * logits).sum(axis=-1) + buf.sum(axis=-1))


def gaussian_nll(mean, x, obs_var=1.0, *, validate=True):
    """−log N(x; mean, obs_var·I), batch-mean of per-example sums. Returns ``(loss, dmean)``.

    Equals ½·SSE/obs_var + (D/2)·log(2π·obs_var) per example [eq:mse-relation].
    """
    _check_pair(mean, "mean", x, validate)
    if not obs_var > 0:
        raise ValueError(f"obs_var must be positive, got {obs_var}")
    n, d = mean.shape
    diff = mean - x  # (N, D)
    loss = (diff * diff).sum() / (2.0 * obs_var * n) + 0.5 * d * (LOG_2PI + math.log(obs_var))  # [eq:gaussian-nll]
    dmean = diff / (obs_var * n)  # [eq:gaussian-nll-grad]
    return loss, dmean


def gaussian_log_prob(mean, x, obs_var=1.0):
    """log N(x; mean, obs_var·I) per example (sum over the last axis)."""
    diff = mean - x
    d = mean.shape[-1]
    return -(diff * diff).sum(axis=-1) / (2.0 * obs_var) - 0.5 * d * (LOG_2PI + math.log(obs_var))  # [eq:gaussian-nll]


def gaussian_kl_per_dim(mu, log_var):
    """KL(N(μ_j, σ_j²) ‖ N(0, 1)) for every example and latent dimension, shape (N, Z)."""
    xp = get_xp(mu)
    return 0.5 * (xp.expm1(log_var) - log_var + mu * mu)  # [eq:kl-per-dim]  expm1: never < 0


def gaussian_kl(mu, log_var, *, validate=True):
    """KL(N(μ, diag σ²) ‖ N(0, I)), summed over Z, averaged over N.

    Returns ``(kl, dmu, dlog_var)``; the gradients have the shape (N, Z) of the inputs.
    """
    check_array(mu, "mu", ndim=2, finite=validate)
    check_array(log_var, "log_var", ndim=2, finite=validate)
    check_same_shape(mu, "mu", log_var, "log_var")
    xp = get_xp(mu)
    n = mu.shape[0]
    # σ² − 1 via expm1: expm1(v) ≥ v exactly, so the sum below can never round to a negative KL
    var_m1 = xp.expm1(log_var)
    kl = 0.5 * (var_m1 - log_var + mu * mu).sum() / n  # [eq:kl-closed-form]
    dmu = mu / n  # [eq:kl-grad-mu]
    dlog_var = 0.5 * var_m1 / n  # [eq:kl-grad-logvar]
    return kl, dmu, dlog_var


def log_normal_density(z, mu, log_var):
    """log N(z; μ, diag exp(log_var)) summed over the last axis."""
    xp = get_xp(z)
    diff = z - mu
    return -0.5 * (LOG_2PI + log_var + diff * diff * xp.exp(-log_var)).sum(axis=-1)  # [eq:log-normal-density]


# --------------------------------------------------------------------------- σ-VAE and free bits

# The optimal σ_x² is floored here: a batch reconstructed exactly would otherwise give log 0 = −∞.
# Far below any MSE a trained model reaches on images in [0, 1] (about 1e-2 on MNIST grey levels).
OPTIMAL_VAR_FLOOR = 1e-6


def gaussian_nll_learned_var(mean, x, log_var, *, validate=True):
    """−log N(x; mean, σ_x² I) with a learned σ_x² = exp(log_var), ``log_var`` of shape (1,).

    Returns ``(loss, dmean, dlog_var)``: the batch mean of per-example sums (nats per example),
    (mean − x)/(σ_x² N) [eq:gaussian-nll-grad] and D/2 − SSE/(2σ_x²) averaged over the batch
    [eq:sigma-vae-grad-logvar] (Rybkin, Daniilidis & Levine 2021, sec. 3).
    """
    _check_pair(mean, "mean", x, validate)
    check_array(log_var, "log_var (of σ_x²)", shape=(1,), finite=validate)
    xp = get_xp(mean)
    n, d = mean.shape
    diff = mean - x  # (N, D)
    sse = xp.vdot(diff, diff) / n  # mean over the batch of the per-example SSE
    inv_var = xp.exp(-log_var)  # (1,)
    loss = 0.5 * sse * inv_var[0] + 0.5 * d * (LOG_2PI + log_var[0])  # [eq:gaussian-nll]
    dmean = diff * (inv_var / n)  # [eq:gaussian-nll-grad]
    dlog_var = 0.5 * d - 0.5 * sse * inv_var  # (1,)  [eq:sigma-vae-grad-logvar]
    return loss, dmean, dlog_var


def gaussian_nll_optimal_var(mean, x, *, validate=True):
    """−log N(x; mean, σ*² I) with σ*² the batch's optimum: the mean squared error per pixel.

    Returns ``(loss, dmean, obs_var)``: loss = (D/2)(1 + log 2π σ*²) per example
    [eq:sigma-vae-optimal-loss]; dmean = (mean − x)/(σ*² N), the fixed-σ² gradient taken at σ*²,
    because at the optimum the derivative through σ*² vanishes [eq:sigma-vae-envelope]; obs_var
    = σ*² (a 0-d array), floored at ``OPTIMAL_VAR_FLOOR``.
    """
    _check_pair(mean, "mean", x, validate)
    xp = get_xp(mean)
    n, d = mean.shape
    diff = mean - x  # (N, D)
    mse = xp.vdot(diff, diff) / (n * d)
    obs_var = xp.maximum(mse, OPTIMAL_VAR_FLOOR)  # σ*² = MSE  [eq:sigma-vae-optimal-var]
    loss = 0.5 * d * (LOG_2PI + xp.log(obs_var) + mse / obs_var)  # [eq:sigma-vae-optimal-loss]
    dmean = diff / (obs_var * n)  # [eq:sigma-vae-envelope]
    return loss, dmean, obs_var


def free_bits_kl(mu, log_var, free_bits, *, validate=True):
    """The KL term with free bits: Σ_j max(λ, KL_j), KL_j the batch-mean KL of latent dimension j.

    Kingma et al., *Improved Variational Inference with Inverse Autoregressive Flow* (NeurIPS 2016),
    appendix C.8, with one group per dimension. Returns ``(objective, dmu, dlog_var, kl_per_dim)``:
    ``gaussian_kl``'s gradients passed through ``apply_free_bits``. ``kl_per_dim`` (Z,) sums to the true KL.
    """
    _, dmu, dlog_var = gaussian_kl(mu, log_var, validate=validate)
    return apply_free_bits(mu, log_var, dmu, dlog_var, free_bits)


def apply_free_bits(mu, log_var, dmu, dlog_var, free_bits):
    """Turn the KL term's value and gradients (``dmu``, ``dlog_var`` of ``gaussian_kl``) into those of free bits.

    A dimension whose batch-mean KL is at most λ costs λ whatever its posterior, so its gradients
    are zeroed; the others keep the KL's [eq:free-bits-grad]. Returns ``(objective, dmu, dlog_var,
    kl_per_dim)`` with the objective Σ_j max(λ, KL_j) [eq:free-bits] and the (Z,) batch-mean KL.
    """
    if not (math.isfinite(free_bits) and free_bits >= 0):
        raise ValueError(f"free_bits must be a finite number of nats >= 0, got {free_bits}")
    xp = get_xp(mu)
    kl_per_dim = gaussian_kl_per_dim(mu, log_var).sum(axis=0) / mu.shape[0]  # (Z,)  [eq:kl-per-dim]
    objective = xp.maximum(kl_per_dim, free_bits).sum()  # [eq:free-bits]
    paid = (kl_per_dim > free_bits).astype(mu.dtype)  # (Z,): 1 where the KL is charged, 0 where it is free
    return objective, dmu * paid, dlog_var * paid, kl_per_dim  # [eq:free-bits-grad]
