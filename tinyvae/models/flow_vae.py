"""A VAE whose posterior is a normalizing flow: q_0(z|x) = N(μ, diag σ²) from the encoder, then T steps.

Rezende & Mohamed, *Variational Inference with Normalizing Flows* (ICML 2015) (planar steps);
Kingma et al., *Improved Variational Inference with Inverse Autoregressive Flow* (NeurIPS 2016) (IAF steps).
Shapes: N batch, K samples per example (1 for the ELBO), D input, Z latent, C context::

    x (N, D) -> encoder -> μ, log σ² (N, Z), context h (N, C; C = 0 for planar steps)  parts/flow_bound.py
             -> z_0 = μ + σ ⊙ ε (N·K, Z), ε passed in                                 [eq:reparam]
             -> flow: z_T and Σ_t log|det J_t| (N·K,)                                   parts/flows.py, parts/iaf.py
             -> decoder -> out (N·K, D)
             -> FlowBound: −ELBO [eq:flow-elbo] or −L_K [eq:flow-iwae], log q_T sampled  [eq:flow-log-q]

The flow is a part between the reparameterization and the decoder, with its parameters in the model's
one buffer after the decoder's (``_named_networks``); the VAE of ``vae.py`` is unchanged. ``encode``
gives q_0's (μ, log σ²); ``log_weights`` gives the log importance weights that ``tinyvae evaluate
--iw-samples`` scores.
"""

from __future__ import annotations

from ..checks import check_array
from .base import Model, build_networks
from .config import OBJECTIVES
from .flow_sizes import context_width
from .parts import iwae
from .parts.flow_bound import ContextEncoder, FlowBound
from .parts.flows import build_flow
from .parts.priors import StandardNormal


class FlowVAE(Model):
    """A VAE with a flow posterior q_T: ``forward``/``backward`` with ε given (see the module docstring)."""

    kind = "vae"

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        if self.config.flow == "none":
            raise ValueError("FlowVAE needs a flow (config.flow 'planar' or 'iaf'); build a model without one "
                             "with tinyvae.build_model")
        self.q = ContextEncoder(self.encoder, self.config.latent, context_width(self.config), self.dtype)
        self.prior = StandardNormal()  # p(z_T)
        self._score_key, self.objective = None, None

    def _build_networks(self, config, rng):
        """(encoder, decoder) as a VAE's, the encoder 2Z + C wide; then the flow's steps, from the same ``rng``."""
        encoder, decoder = build_networks(config, self.dtype, rng)
        self.flow = build_flow(config, rng, self.dtype)
        return encoder, decoder

    def _named_networks(self):
        return [("encoder", self.encoder), ("decoder", self.decoder), ("flow", self.flow)]

    def encode(self, x):
        """(μ, log σ²) of q_0(z|x), each (N, Z): the Gaussian before the flow."""
        check_array(x, "x", shape=(None, self.config.input_dim))
        return self.q.forward(x)[:2]

    def reconstruct(self, x):
        """Decode the posterior mean of q_0 pushed through the flow."""
        check_array(x, "x", shape=(None, self.config.input_dim))
        mu, _, context = self.q.forward(x)
        return self.decode(self.flow.forward(mu, context if context.shape[1] else None)[0])

    # ---- forward and backward

    def forward(self, x, eps=None, *, beta=None, validate=True, objective=None, fit_obs_var=True, free_bits=None):
        """The loss (0-d array, nats per example) of ``x`` (N, D) with ε (N, Z), or (N, K, Z) for the IWAE
        objective; ``eps=None`` draws it. ``beta`` weights the sampled KL term of the ELBO (IWAE: 1 only);
        ``free_bits`` must be 0 or None; ``fit_obs_var`` is ignored (no learned σ_x² with a flow).
        ``self.stats``: loss, recon (−mean log p(x|z_T)), kl (the mean of log q_T(z_T) − log p(z_T))."""
        self._check_x(x, validate)
        if eps is not None:
            self._check_noise(eps)
        if free_bits not in (None, 0, 0.0):
            raise ValueError(f"a flow posterior has no closed-form KL per dimension to free: free_bits must be 0 "
                             f"(or None), got {free_bits}")
        score = self._score(objective, beta)
        eps = score.noise(self, x.shape[0], eps, validate)  # (N, K, Z)
        n, k, z_dim = eps.shape
        mu, log_var, context = self.q.forward(x)  # (N, Z), (N, Z), (N, C)
        z0, std = iwae.sample(mu, log_var, eps)  # (N, K, Z)  [eq:reparam]
        rows = self.xp.repeat(context, k, axis=0) if context.shape[1] else None  # (N·K, C): h for each of its K rows
        z_t, log_det = self.flow.forward(z0.reshape(n * k, z_dim), rows)  # (N·K, Z), (N·K,)
        out = self.decoder.forward(z_t)  # (N·K, D)
        loss = score.forward(x, out, self, z_t, eps, log_var, log_det)
        self._cache = (score, eps, std, k)
        self.stats = dict(score.stats)
        return loss

    def backward(self):
        """Fill ``self.grad`` from the last forward; returns it."""
        score, eps, std, k = self._cached()
        n = eps.shape[0]
        dz_t = self.decoder.backward(score.dout())  # (N·K, Z)
        dz_t, dlog_det, dlog_var_q0 = score.flow_grads(dz_t)
        dz0, dcontext = self.flow.backward(dz_t, dlog_det)  # (N·K, Z), (N·K, C) or None
        dz0 = dz0.reshape(n, k, -1)  # (N, K, Z)
        dmu = dz0.sum(axis=1)  # [eq:iwae-grad-mu]
        dlog_var = 0.5 * std * (dz0 * eps).sum(axis=1) + dlog_var_q0  # [eq:reparam-grad-logvar] [eq:iwae-log-q-eps]
        dh = None if dcontext is None else dcontext.reshape(n, k, -1).sum(axis=1)  # (N, C)
        self.q.backward(dmu, dlog_var, dh)
        return self.grad

    def _score(self, objective, beta):
        """The FlowBound for these call arguments (None: the config's); rebuilt only when they change."""
        cfg = self.config
        name = cfg.objective if objective is None else objective
        if name not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        beta = cfg.beta if beta is None else float(beta)
        if name == "iwae" and beta != 1:
            raise ValueError(f"the IWAE objective has no KL weight: beta must be 1 (or None), got {beta}")
        key = (name, beta)
        if key != self._score_key:
            self.objective = FlowBound(name, cfg.k if name == "iwae" else 1, beta)
            self._score_key = key
        return self.objective

    # ---- the log weights, for the importance-weighted NLL

    def log_weights(self, x, eps):
        """log w = log p(x|z_T) + log p(z_T) − log q_T(z_T|x), (N, S) float64, for x (N, D) and ε (N, S, Z)."""
        check_array(eps, "eps", shape=(x.shape[0], None, self.config.latent), finite=False)
        n, s, z_dim = eps.shape
        mu, log_var, context = self.q.forward(x)
        z0, _ = iwae.sample(mu, log_var, eps)  # (N, S, Z)
        rows = self.xp.repeat(context, s, axis=0) if context.shape[1] else None
        z_t, log_det = self.flow.forward(z0.reshape(n * s, z_dim), rows)
        out = self.decoder.forward(z_t).reshape(n, s, -1)  # (N, S, D)
        log_px = self.likelihood.log_prob(out, x[:, None, :])  # (N, S)
        log_qk = iwae.log_posterior(eps, log_var) - log_det.reshape(n, s)  # [eq:flow-log-q]
        self._cache = None  # the parts' caches now hold this pass, not a training step's
        return (log_px + self.prior.log_prob(z_t).reshape(n, s) - log_qk).astype(self.xp.float64)  # [eq:flow-iwae]
