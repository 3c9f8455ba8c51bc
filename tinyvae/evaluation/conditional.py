"""Evaluating the conditional models: the negative conditional log-likelihood −log p(x_u | c) of what a model
predicts, importance-sampled for the conditional VAE and exact for the deterministic regressor
(derivations/conditional.md#the-importance-sampled-conditional-nll).

For the CVAE, with K draws z_k = μ + σ ⊙ ε_k from the recognition model q(z|x, c) (which reads the whole
image, as in training) [eq:cvae-iw-nll]::

    log w_k = log p(x_u | z_k, c) + log N(z_k; 0, I) − log q(z_k | x, c)
    −log p̂(x_u | c) = −log (1/K) Σ_k w_k            (log-mean-exp)

which, for binary pixels, is an upper bound on −log p(x_u | c) in expectation, tighter as K grows (Burda et
al. 2016, sec. 3); K = 1 is a one-sample estimate of the −ELBO. For the regressor the prediction is one
Bernoulli mean per pixel and its NLL needs no sampling. On grey levels the Bernoulli term is not
normalized, and both figures are cross-entropies, not −log p(x_u | c)
(derivations/bernoulli.md#grey-levels-a-cross-entropy-not-a-likelihood).

Every figure is in nats per example, summed over the scored (unseen) pixels, for the label condition
over every pixel.
"""

from __future__ import annotations

import numpy as np

from .. import backend
from ..backend import to_numpy
from ..errors import InputError
from ..models.conditional import ConditionalVAE, QuadrantRegressor
from ..models.parts import iwae
from ..models.parts.conditions import ScoredBernoulli, check_labels
from .evaluate import _check_images, _float_batches, log_mean_exp


def require_conditional(model, what):
    """A ConditionalVAE or QuadrantRegressor, or an error naming what was given."""
    if not isinstance(model, (ConditionalVAE, QuadrantRegressor)):
        raise InputError(f"{what} needs a conditional model (cvae or quadrant-regressor), got a "
                         f"{type(model).__name__} ({model.config.describe()})")
    return model


def conditional_nll(model, x, *, labels=None, mask=None, k=100, seed=0, batch_size=100):
    """−log p(x_u | c) per example, a host float64 array (N,): importance-sampled with ``k`` samples for a
    ConditionalVAE [eq:cvae-iw-nll], exact for a QuadrantRegressor (``k`` and ``seed`` unused).

    ``x``: (N, D) uint8 images or floats in [0, 1]; ``labels`` (N,) for the label condition; ``mask`` (D,) or
    (N, D) to replace the quadrant condition's own.
    """
    require_conditional(model, "conditional_nll")
    x = _check_images(model, x)
    if labels is not None or model.needs_labels:  # every label, before any batch
        labels = check_labels(labels, x.shape[0], model.config.classes, call="conditional_nll(model, x, labels=y)")
    if mask is not None:
        mask = _check_unseen(model, np.asarray(mask) if not hasattr(mask, "ndim") else mask, x.shape[0])
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k: expected a positive integer number of importance samples, got {k!r}")
    noise = backend.default_rng(seed, model.xp)
    out, start = [], 0
    for xb in _float_batches(model, x, batch_size):
        n = xb.shape[0]
        rows = slice(start, start + n)
        start += n
        extra = {"labels": None if labels is None else labels[rows],
                 "mask": mask[rows] if mask is not None and mask.ndim == 2 else mask}
        if isinstance(model, QuadrantRegressor):
            out.append(to_numpy(_regressor_nll(model, xb, extra)).astype(np.float64))
        else:
            eps = noise.standard_normal((n, int(k), model.config.latent), dtype=model.dtype)  # (N, K, Z)
            out.append(-to_numpy(log_mean_exp(_log_weights(model, xb, eps, extra), axis=1)).astype(np.float64))
    return np.concatenate(out)


def _check_unseen(model, mask, n):
    """The mask, refused where it leaves no pixel of an example unseen: −log p(x_u | c) of no pixel is 0, and
    an estimate of it is noise around 0."""
    if model.config.condition != "quadrants":
        return mask  # the label condition refuses any mask with its own message
    mask = model.condition.check_mask(mask, n, model.xp)  # (D,) or (N, D), 0 or 1
    unseen = (mask == 0).sum(axis=-1)
    if bool((unseen == 0).any()):
        which = "the mask" if mask.ndim == 1 else f"row {int(np.flatnonzero(to_numpy(unseen) == 0)[0])} of the mask"
        raise InputError(f"mask: {which} marks every pixel seen, so no pixel is left to predict; expected 0 at the "
                         f"unseen pixels (1 seen), e.g. the quadrant mask tinyvae.models.parts.conditions."
                         f"quadrant_mask(2, (28, 28))")
    return mask


def _regressor_nll(model, xb, extra):
    c, likelihood = model.condition.make(xb, labels=extra["labels"], mask=extra["mask"])
    return -likelihood.log_prob(model.decoder.forward(c), xb)  # (N,)  [eq:cvae-unseen-nll]


def _log_weights(model, xb, eps, extra):
    """log w (N, K) in float64 for a batch ``xb`` (N, D) and ε (N, K, Z)  [eq:cvae-iw-nll]."""
    xp = model.xp
    n, k, z_dim = eps.shape
    c, likelihood = model.condition.make(xb, model.likelihood, **extra)  # (N, C)
    mu, log_var = model.encode(xb, c)  # (N, Z) each
    z, _ = iwae.sample(mu, log_var, eps)  # (N, K, Z)  [eq:reparam]
    z = z.reshape(n * k, z_dim)  # (N·K, Z)
    logits = model.decode_logits(z, xp.repeat(c, k, axis=0))  # (N·K, D)
    if isinstance(likelihood, ScoredBernoulli) and likelihood.scored.ndim == 2:  # a mask per example
        likelihood = ScoredBernoulli(xp.repeat(likelihood.scored, k, axis=0))
    log_px = likelihood.log_prob(logits, xp.repeat(xb, k, axis=0)).reshape(n, k)  # log p(x_u | z, c)
    log_pz = model.prior.log_prob(z).reshape(n, k)  # log N(z; 0, I)  [eq:log-normal-density]
    log_qz = iwae.log_posterior(eps, log_var)  # log q(z | x, c)  [eq:iwae-log-q-eps]
    model._cache = None  # the networks' caches hold this pass, not a training step's
    return (log_px + log_pz - log_qz).astype(xp.float64)
