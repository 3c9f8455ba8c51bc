"""Conditional models: the conditional VAE (on a label, or on the seen quadrants of an image) and the
deterministic quadrant regressor, assembled from the same parts as the VAE (derivations/conditional.md).

Conditional VAE, shapes N batch, D pixels, C condition width, Z latent::

    c = condition(x, labels or mask)          (N, C)   parts/conditions.py
    [x | c] (N, D + C) -> encoder: q(z|x, c) = N(μ, diag σ²), [μ | log σ²] (N, 2Z)
             -> reparameterize: z = μ + exp(½ log σ²) ⊙ ε (N, Z), ε passed in
    [z | c] (N, Z + C) -> decoder -> logits (N, D)
             -> score: the ELBO part with p(z) = N(0, I) and the condition's likelihood
    loss = −log p(x|z, c) + β · KL(q(z|x, c) ‖ N(0, I))      [eq:cvae-loss], the −ELBO at β = 1 [eq:cvae-elbo]

The condition enters by concatenation into the first dense layer of each network [eq:cvae-concat]; for a
one-hot label that is a learned embedding of the label added to the layer's pre-activation, so no
separate embedding is built. The prior is N(0, I), not a prior network p(z|c) as in Sohn et al. (2015):
the decoder reads c, so the shift and scale a diagonal Gaussian p(z|c) with s(c) > 0 would add can be
learned by a decoder flexible enough, given an encoder that also absorbs the map [eq:cvae-prior-absorbed],
and the KL keeps its closed form (derivations/conditional.md#why-a-standard-normal-prior). Nothing forces the
decoder to use c: a latent wide enough to carry the label lets it ignore the label.

Quadrant regressor (Sohn et al.'s deterministic baseline): c -> network -> logits (N, D), loss = the
Bernoulli NLL of the unseen pixels [eq:cvae-unseen-nll], nothing sampled. Its best prediction is each
pixel's conditional mean [eq:cvae-regressor-mean]: grey wherever the plausible completions differ.

Losses are nats per example: summed over the scored pixels and the latent dimensions, averaged over the
batch.
"""

from __future__ import annotations

import numpy as np

from ..backend import get_xp
from ..checks import ShapeError, check_array
from ..errors import InputError
from ..nn import mlp
from .base import Model
from .conditioning import condition_width, network_sizes
from .parts.conditions import LabelCondition, QuadrantCondition, check_labels, one_hot
from .parts.encoders import GaussianEncoder
from .parts.objectives import ELBO, Reconstruction
from .parts.priors import StandardNormal


def make_condition(config, dtype):
    """The condition part a config names."""
    if config.condition == "label":
        return LabelCondition(config.classes)
    return QuadrantCondition(config.quadrants, config.image_shape, dtype)


class _Conditional(Model):
    """What the conditional models share: the condition part, and its checks of the call's arguments."""

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.condition = make_condition(self.config, self.dtype)

    @property
    def needs_labels(self):
        return self.config.condition == "label"

    def condition_of(self, x, labels=None, mask=None):
        """c (N, C) for the images ``x`` (N, D) (the seen pixels are read from them) and the labels or mask."""
        check_array(x, "x", shape=(None, self.config.input_dim))
        return self.condition.make(x, self.likelihood, labels=labels, mask=mask)[0]

    def _check_objective(self, objective):
        if objective not in (None, "elbo"):
            raise InputError(f"objective: the conditional models train on the ELBO, got {objective!r}")


class ConditionalVAE(_Conditional):
    """q(z|x, c), p(z) = N(0, I), p(x|z, c) and the ELBO (see the module docstring)."""

    kind = "cvae"

    def __init__(self, config=None, **overrides):
        if config is None:
            overrides.setdefault("condition", "label")
        super().__init__(config, **overrides)
        self.q = GaussianEncoder(self.encoder, self.config.latent, self.dtype)  # q(z|x, c)
        self.prior = StandardNormal()  # p(z)
        self._objective_key = None
        self.objective = self._objective_for(None, None)
        self._likelihood_used = None  # the likelihood part of the last forward (the condition's), for backward

    def _build_networks(self, config, rng):
        """The encoder [x | c] -> [μ | log σ²] and the decoder [z | c] -> logits. The encoder's first layer
        computes no dL/d[x | c]: nothing upstream of the data and the condition learns."""
        sizes = network_sizes(config)
        encoder = mlp(sizes["encoder"], config.activation, rng=rng, init=config.init, dtype=self.dtype,
                      first_needs_dx=False)
        decoder = mlp(sizes["decoder"], config.activation, rng=rng, init=config.init, dtype=self.dtype)
        return encoder, decoder

    def _objective_for(self, beta, free_bits):
        cfg = self.config
        key = (cfg.beta if beta is None else float(beta), cfg.free_bits if free_bits is None else float(free_bits))
        if key != self._objective_key:
            self.objective, self._objective_key = ELBO(*key), key
        return self.objective

    # ---- the pieces

    def encode(self, x, c):
        """(μ, log σ²) of q(z|x, c), each (N, Z)."""
        xp = self.xp
        return self.q.forward(xp.concatenate([x, c], axis=1))  # [x | c] (N, D + C)  [eq:cvae-concat]

    def decode_logits(self, z, c):
        """The decoder's logits (N, D) of p(x|z, c)."""
        return self.decoder.forward(self.xp.concatenate([z, c], axis=1))  # [z | c] (N, Z + C)  [eq:cvae-concat]

    def decode(self, z, c):
        """The mean image E[x | z, c] (N, D)."""
        check_array(z, "z", shape=(None, self.config.latent))
        check_array(c, "c", shape=(z.shape[0], condition_width(self.config)))
        return self.likelihood.mean(self.decode_logits(z, c))

    def reconstruct(self, x, labels=None, mask=None):
        """Decode the posterior mean under the example's own condition."""
        c = self.condition_of(x, labels, mask)
        return self.decode(self.encode(x, c)[0], c)

    def sample(self, n, rng=None, *, c=None, labels=None):
        """Mean images (n, R, D): n draws z ~ N(0, I), each decoded under every row of ``c`` (R, C), so that row
        i of the result shares one z (one style) across the conditions. For the label condition ``labels`` (R,)
        is a shortcut for their one-hot rows: ``sample(8, labels=[3])`` draws eight 3s."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n: expected a positive integer number of samples, got {n!r}")
        c = self._sample_condition(c, labels)  # (R, C), on the model's device, in its dtype
        rng = self.rng if rng is None else rng
        r, z_dim = c.shape[0], self.config.latent
        z = rng.standard_normal((int(n), z_dim), dtype=self.dtype)  # (n, Z)
        z_rows = self.xp.repeat(z, r, axis=0)  # (n·R, Z)
        c_rows = self.xp.tile(c, (int(n), 1))  # (n·R, C)
        return self.decode(z_rows, c_rows).reshape(int(n), r, self.config.input_dim)

    def _sample_condition(self, c, labels):
        """The rows of c that ``sample`` decodes under, checked as the caller gave them (before any tiling)."""
        width = condition_width(self.config)
        if self.needs_labels:
            want = f"one-hot rows of shape (R, {width}) (e.g. np.eye({width})[[3]]), or labels=[3]"
        else:
            want = f"rows [x ⊙ m | m] of shape (R, {width}), e.g. model.condition_of(x)"
        if (c is None) == (labels is None):
            raise InputError(f"sample: expected c, {want}; got {'both c and labels' if c is not None else 'neither'}")
        if labels is not None:
            if not self.needs_labels:
                raise InputError("labels: the quadrant condition reads the seen pixels, not a label; pass "
                                 "c=model.condition_of(x)")
            labels = check_labels(labels, len(labels) if hasattr(labels, "__len__") else -1, self.config.classes,
                                  call="sample(n, labels=y)")
            return one_hot(self.xp.asarray(labels), self.config.classes, self.dtype, self.xp)
        shape = tuple(getattr(c, "shape", np.shape(c)))
        if len(shape) != 2 or shape[1] != width:
            raise ShapeError(f"c: expected {want}, got shape {shape}")
        c = c if hasattr(c, "dtype") and get_xp(c) is self.xp else self.xp.asarray(c)
        check_array(c, "c", shape=(None, width), floating=c.dtype.kind == "f")
        return c.astype(self.dtype, copy=False)  # the model's dtype, whatever c's

    # ---- forward and backward

    def forward(self, x, eps=None, *, labels=None, mask=None, beta=None, validate=True, objective=None,
                fit_obs_var=True, free_bits=None):
        """The loss (0-d array, nats per example) of ``x`` (N, D) under its condition (``labels`` (N,) for the
        label condition; for the quadrant condition the config's quadrants, or ``mask`` (D,) or (N, D)) with
        noise ``eps`` (N, Z) (None: drawn from the model's generator). ``self.stats``: loss, recon, kl."""
        self._check_x(x, validate)
        self._check_objective(objective)
        if eps is not None:
            self._check_noise(eps)
        c, likelihood = self.condition.make(x, self.likelihood, labels=labels, mask=mask, validate=validate)  # (N, C)
        score = self._objective_for(beta, free_bits)
        eps = score.noise(self, x.shape[0], eps, validate)
        mu, log_var = self.encode(x, c)  # q(z|x, c): (N, Z) each
        z = score.sample(mu, log_var, eps)  # (N, Z)
        out = self.decode_logits(z, c)  # p(x|z, c): (N, D)
        loss = score.forward(x, out, _Parts(likelihood, self.prior), mu, log_var, validate, fit_obs_var)
        self._cache = score  # [eq:cvae-loss]
        self.stats = {**score.stats, **likelihood.stats()}
        self._likelihood_used = likelihood
        return loss

    def backward(self):
        """Fill ``self.grad`` from the last forward; returns it."""
        score = self._cached()
        dzc = self.decoder.backward(score.dout())  # (N, Z + C)
        dz = dzc[:, :self.config.latent]  # c is data: its columns of the gradient go nowhere  [eq:cvae-grad-z]
        dmu, dlog_var = score.latent_backward(dz)  # through z = μ + σ ⊙ ε, and the KL's own terms
        self.q.backward(dmu, dlog_var)  # through the encoder (no gradient into [x | c])
        self._likelihood_used.backward()  # a learned or optimal σ_x² (label condition)
        return self.grad


class QuadrantRegressor(_Conditional):
    """The deterministic baseline: c = [x ⊙ m | m] -> network -> logits of the unseen pixels; loss = their
    Bernoulli NLL [eq:cvae-unseen-nll]. Its one network is held as the decoder (it maps to pixels)."""

    kind = "quadrant-regressor"

    def __init__(self, config=None, **overrides):
        if config is None:
            overrides.setdefault("condition", "quadrants")
            overrides.setdefault("quadrants", 2)
        super().__init__(config, **overrides)
        self.objective = Reconstruction()

    def _build_networks(self, config, rng):
        from .parts.gaussian_layer import Networks  # noqa: PLC0415
        net = mlp(network_sizes(config)["decoder"], config.activation, rng=rng, init=config.init, dtype=self.dtype,
                  first_needs_dx=False)
        return Networks(), net  # no encoder; the network from c to the pixels

    def predict(self, x, mask=None):
        """The Bernoulli means (N, D) of every pixel given the seen part of ``x``: one prediction, no sample."""
        c = self.condition_of(x, mask=mask)
        return self.likelihood.mean(self.decoder.forward(c))

    def forward(self, x, eps=None, *, labels=None, mask=None, beta=None, validate=True, objective=None,
                fit_obs_var=True, free_bits=None):
        """The Bernoulli NLL of the unseen pixels of ``x`` (N, D), nats per example; ``eps``, ``beta`` and
        ``free_bits`` are accepted and ignored (nothing is sampled)."""
        self._check_x(x, validate)
        self._check_objective(objective)
        c, likelihood = self.condition.make(x, labels=labels, mask=mask, validate=validate)  # (N, 2D)
        out = self.decoder.forward(c)  # (N, D)
        loss = self.objective.forward(x, out, likelihood, validate, fit_obs_var)  # [eq:cvae-unseen-nll]
        self._cache = self.objective
        self.stats = dict(self.objective.stats)
        return loss

    def backward(self):
        self.decoder.backward(self._cached().dout())  # returns None: c is data
        return self.grad


class _Parts:
    """The likelihood and the prior the ELBO part scores with, for one batch."""

    def __init__(self, likelihood, prior):
        self.likelihood, self.prior = likelihood, prior


CONDITIONAL_CLASSES = {"cvae": ConditionalVAE, "quadrant-regressor": QuadrantRegressor}
