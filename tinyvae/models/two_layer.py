"""A VAE with two stochastic layers (Burda, Grosse & Salakhutdinov 2015, sec. 5), forward and backward by hand.

Shapes: N batch, K samples per example (1 for the ELBO), D input, Z1 and Z2 the units of z1 and z2;
the networks above x run on N·K rows. The four networks (``hierarchy.network_sizes``)::

    q(z1|x)  = N(μ1, σ1²),  z1 = μ1 + σ1 ⊙ ε1        ε = [ε1 | ε2] passed in, (N, K, Z1 + Z2)
    q(z2|z1) = N(μ2, σ2²),  z2 = μ2 + σ2 ⊙ ε2        (μ2, σ2 computed from the sample z1)
    p(z2) = N(0, I),  p(z1|z2) = N(m, s²),  p(x|z1) Bernoulli(σ(logits))

    log w = log p(x|z1) + log p(z1|z2) + log p(z2) − log q(z1|x) − log q(z2|z1)   [eq:hvae-log-weight]

Every term is sampled, none in closed form: the ELBO objective (K = 1) minimizes −log w averaged
over the batch [eq:hvae-elbo], the IWAE objective −log (1/K) Σ_k w_k (``iwae.bound``), and the
importance-weighted NLL scores the same log weights (``log_weights``). Why no closed-form KL, and
every gradient below: derivations/two-layer.md. Losses are nats per example: summed over pixels
and latent units, averaged over the batch.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..checks import ShapeError, check_array
from ..nn import mlp, sigmoid
from ..prob.losses import bernoulli_log_prob
from .base import Model
from .config import OBJECTIVES
from .hierarchy import network_sizes
from .parts import iwae
from .parts.gaussian_layer import GaussianNetwork, Networks
from .parts.priors import StandardNormal

LOG_2PI = math.log(2.0 * math.pi)


class Cache(NamedTuple):
    """What ``backward`` needs from ``forward``; nothing is recomputed."""

    dout: object  # (N·K, D) σ(logits) − x, not yet weighted
    eps1: object  # (N, K, Z1)
    std1: object  # (N, Z1)
    eps2: object  # (N·K, Z2)
    std2: object  # (N·K, Z2)
    z2: object  # (N·K, Z2)
    r: object  # (N·K, Z1) (z1 − m)/s²: −∂ log p(z1|z2)/∂z1
    u2: object  # (N·K, Z1) (z1 − m)²/s²
    weights: object  # (N, K) w̃ = softmax_k(log w); all 1 when K = 1


class TwoLayerVAE(Model):
    """x -> z1 -> z2 and back; ``forward``/``backward`` with ε = [ε1 | ε2] given (see the module docstring)."""

    kind = "vae"

    def __init__(self, config=None, **overrides):
        if config is None:
            overrides.setdefault("stochastic_layers", 2)
        super().__init__(config, **overrides)
        if self.config.stochastic_layers != 2:
            raise ValueError(f"TwoLayerVAE needs config.stochastic_layers == 2, got {self.config.stochastic_layers}")
        self.prior = StandardNormal()  # p(z2)

    def _build_networks(self, config, rng):
        """(inference networks, generative networks), initialized from ``rng`` in the order q(z1|x), q(z2|z1),
        p(z1|z2), p(x|z1). The first layer of q(z1|x) computes no dL/dx: nothing upstream of the data learns."""
        sizes, act, init = network_sizes(config), config.activation, config.init
        self.q_z1 = GaussianNetwork(sizes["q_z1"], act, rng=rng, init=init, dtype=self.dtype, first_needs_dx=False)
        self.q_z2 = GaussianNetwork(sizes["q_z2"], act, rng=rng, init=init, dtype=self.dtype)
        self.p_z1 = GaussianNetwork(sizes["p_z1"], act, rng=rng, init=init, dtype=self.dtype)
        self.p_x = mlp(sizes["p_x"], act, rng=rng, init=init, dtype=self.dtype)
        return Networks(q_z1=self.q_z1, q_z2=self.q_z2), Networks(p_z1=self.p_z1, p_x=self.p_x)

    @property
    def noise_dim(self):
        """Z1 + Z2: the width of ε, whose first Z1 columns are ε1 and last Z2 columns ε2."""
        return self.config.latent + self.config.latent2

    # ---- the pieces

    def encode(self, x):
        """(μ1, log σ1²) of q(z1|x), each (N, Z1): the lower layer, which the decoder reads."""
        check_array(x, "x", shape=(None, self.config.input_dim))
        return self.q_z1.forward(x)

    def encode_upper(self, z1):
        """(μ2, log σ2²) of q(z2|z1), each (N, Z2)."""
        check_array(z1, "z1", shape=(None, self.config.latent))
        return self.q_z2.forward(z1)

    def prior_z1(self, z2):
        """(m, log s²) of p(z1|z2), each (N, Z1)."""
        check_array(z2, "z2", shape=(None, self.config.latent2))
        return self.p_z1.forward(z2)

    def decode(self, z1):
        """The mean image σ(logits) (N, D) of p(x|z1)."""
        check_array(z1, "z1", shape=(None, self.config.latent))
        return sigmoid(self.p_x.forward(z1))

    def reconstruct(self, x):
        """Decode the lower posterior mean μ1: the model's reconstruction of x."""
        return self.decode(self.encode(x)[0])

    def sample(self, n, rng=None):
        """Ancestral samples: z2 ~ N(0, I), z1 ~ p(z1|z2), then the mean image of p(x|z1), (n, D)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n: expected a positive integer number of samples, got {n!r}")
        rng = self.rng if rng is None else rng
        z2 = rng.standard_normal((int(n), self.config.latent2), dtype=self.dtype)  # (n, Z2)
        m, log_var = self.p_z1.forward(z2)  # (n, Z1) each
        eps = rng.standard_normal(m.shape, dtype=self.dtype)
        return self.decode(m + self.xp.exp(0.5 * log_var) * eps)  # [eq:reparam]

    # ---- the log weights

    def _log_weight_terms(self, x, eps, with_grad):
        """The five log densities (N, K) each, and what the backward needs, for x (N, D) and ε (N, K, Z1 + Z2)."""
        xp, cfg = self.xp, self.config
        n, k, _ = eps.shape
        z1_dim, z2_dim = cfg.latent, cfg.latent2
        eps1, eps2 = eps[:, :, :z1_dim], eps[:, :, z1_dim:].reshape(n * k, z2_dim)  # (N, K, Z1), (N·K, Z2)
        mu1, log_var1 = self.q_z1.forward(x)  # (N, Z1) each
        z1, std1 = iwae.sample(mu1, log_var1, eps1)  # (N, K, Z1)  [eq:reparam]
        z1 = z1.reshape(n * k, z1_dim)  # (N·K, Z1)
        mu2, log_var2 = self.q_z2.forward(z1)  # (N·K, Z2) each: q(z2|z1) reads the sample z1
        std2 = xp.exp(0.5 * log_var2)
        z2 = mu2 + std2 * eps2  # (N·K, Z2)  [eq:reparam]
        m, log_s2 = self.p_z1.forward(z2)  # (N·K, Z1) each
        logits = self.p_x.forward(z1).reshape(n, k, cfg.input_dim)  # (N, K, D)
        if with_grad:
            log_px, dout = iwae.bernoulli_rows(logits, x)  # (N, K), (N, K, D)  [eq:bce-stable]
        else:
            log_px, dout = bernoulli_log_prob(logits, x[:, None, :]), None
        diff = z1 - m
        r = diff * xp.exp(-log_s2)  # (z1 − m)/s²
        u2 = diff * r  # (z1 − m)²/s²
        terms = {
            "log_px": log_px,
            "log_pz1": (-0.5 * (LOG_2PI + log_s2 + u2).sum(axis=1)).reshape(n, k),  # [eq:log-normal-density]
            "log_pz2": self.prior.log_prob(z2).reshape(n, k),  # [eq:log-normal-density]
            "log_qz1": iwae.log_posterior(eps1, log_var1),  # [eq:iwae-log-q-eps]
            "log_qz2": iwae.log_posterior(eps2[:, None, :], log_var2)[:, 0].reshape(n, k),  # [eq:iwae-log-q-eps]
        }
        return terms, (dout, eps1, std1, eps2, std2, z2, r, u2)

    @staticmethod
    def log_weight(terms):
        """log w (N, K) from the five terms  [eq:hvae-log-weight]."""
        return terms["log_px"] + terms["log_pz1"] + terms["log_pz2"] - terms["log_qz1"] - terms["log_qz2"]

    def log_weights(self, x, eps):
        """log w (N, K) in float64 for x (N, D) and ε (N, K, Z1 + Z2): what the importance-weighted NLL scores."""
        check_array(eps, "eps", shape=(x.shape[0], None, self.noise_dim), finite=False)
        terms, _ = self._log_weight_terms(x, eps, with_grad=False)
        self._cache = None  # the networks' caches now hold this pass, not a training step's
        return self.log_weight(terms).astype(self.xp.float64)

    # ---- forward and backward

    def forward(self, x, eps=None, *, beta=None, validate=True, objective=None, fit_obs_var=True, free_bits=None):
        """The loss (0-d array, nats per example) of ``x`` (N, D) with ε (N, Z1 + Z2), or (N, K, Z1 + Z2) for the
        IWAE objective; ``eps=None`` draws it from the model's generator.

        objective "elbo": −(1/N) Σ_n log w_n, every term sampled [eq:hvae-elbo]; "iwae": −L_K [eq:iwae-loss].
        ``beta`` and ``free_bits`` exist for the one-layer VAE's callers: only 1 and 0 (or None) are accepted.
        ``fit_obs_var`` is ignored (a Bernoulli decoder has no σ_x²). ``self.stats``: loss, recon
        (−mean log p(x|z1)) and kl (the mean of log q(z1|x) + log q(z2|z1) − log p(z1|z2) − log p(z2)).
        """
        self._check_x(x, validate)
        if beta not in (None, 1, 1.0) or free_bits not in (None, 0, 0.0):
            raise ValueError(f"two stochastic layers train on the ELBO or the IWAE bound with every term sampled: "
                             f"beta must be 1 and free_bits 0 (or None), got beta={beta}, free_bits={free_bits}")
        objective = objective or self.config.objective
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        eps = self._noise(x.shape[0], eps, objective, validate)
        n, k, _ = eps.shape
        terms, kept = self._log_weight_terms(x, eps, with_grad=True)
        log_w = self.log_weight(terms)  # (N, K)  [eq:hvae-log-weight]
        loss, weights = iwae.bound(log_w)  # K = 1: −(1/N) Σ log w, weights 1  [eq:hvae-elbo] [eq:iwae-loss]
        dout, eps1, std1, eps2, std2, z2, r, u2 = kept
        self._cache = Cache(dout.reshape(n * k, self.config.input_dim), eps1, std1, eps2, std2, z2, r, u2, weights)
        rate = terms["log_qz1"] + terms["log_qz2"] - terms["log_pz1"] - terms["log_pz2"]
        self.stats = {"loss": loss, "recon": -terms["log_px"].sum() / (n * k), "kl": rate.sum() / (n * k)}
        return loss

    def _noise(self, n, eps, objective, validate):
        """ε as (N, K, Z1 + Z2): drawn, or the caller's checked ((N, Z1 + Z2) for the ELBO, (N, K, Z1 + Z2) for IWAE)."""
        cfg, width = self.config, self.noise_dim
        k = cfg.k if objective == "iwae" else 1
        if objective == "iwae":
            iwae.check_memory(n, k, cfg, self.dtype.itemsize, self.xp)
        if eps is None:
            return self.rng.standard_normal((n, k, width), dtype=self.dtype)
        self._check_noise(eps)
        want = (n, k, width) if objective == "iwae" else (n, width)
        if tuple(eps.shape) != want:
            letters = "(N, K, Z1 + Z2)" if objective == "iwae" else "(N, Z1 + Z2)"
            raise ShapeError(f"eps: expected shape {letters} = {want} for the {objective} objective of two "
                             f"stochastic layers (ε1 in the first {cfg.latent} columns, ε2 in the last "
                             f"{cfg.latent2}), got {tuple(eps.shape)}")
        check_array(eps, "eps", finite=validate)
        return eps.reshape(n, k, width)

    def backward(self):
        """Fill ``self.grad`` from the last forward: Σ_k w̃_nk ∇(−log w_nk) / N, w̃ held constant; returns it."""
        c = self._cached()
        n, k = c.weights.shape
        # (N·K, 1) −∂loss/∂log w  [eq:iwae-grad-logw], in the model's dtype: the weights come out of float64 sums,
        # and a float64 factor would turn every product below into a float64 one (about 2.5 times as slow)
        g = (c.weights / n).astype(self.dtype).reshape(n * k, 1)
        dz1 = self.p_x.backward(c.dout * g)  # (N·K, Z1) through p(x|z1)  [eq:iwae-grad-out]
        dz1 += g * c.r  # through log p(z1|z2), its z1 argument  [eq:hvae-grad-prior]
        dz2 = self.p_z1.backward(-g * c.r, 0.5 * g * (1.0 - c.u2))  # its mean and log s²  [eq:hvae-grad-prior]
        dz2 += g * self.prior.neg_log_prob_grad(c.z2)  # log p(z2) = log N(z2; 0, I)  [eq:iwae-grad-z]
        dlog_var2 = 0.5 * c.std2 * c.eps2 * dz2 - 0.5 * g  # z2's path and log q(z2|z1)'s  [eq:hvae-grad-q2]
        dz1 += self.q_z2.backward(dz2, dlog_var2)  # q(z2|z1) reads z1  [eq:hvae-grad-z1]
        dz1 = dz1.reshape(n, k, self.config.latent)  # (N, K, Z1)
        dmu1 = dz1.sum(axis=1)  # (N, Z1)  [eq:iwae-grad-mu]
        dlog_var1 = 0.5 * c.std1 * (dz1 * c.eps1).sum(axis=1) - 0.5 / n  # [eq:iwae-grad-logvar]
        self.q_z1.backward(dmu1, dlog_var1)
        return self.grad

