"""The Variational Autoencoder (Kingma & Welling 2014) and a plain autoencoder, assembled from parts.

VAE, shapes N batch, D input, Z latent::

    x (N, D) -> encoder: q(z|x) = N(μ, diag σ²), [μ | log σ²] (N, 2Z)      parts/encoders.py
             -> reparameterize: z = μ + exp(½ log σ²) ⊙ ε (N, Z), ε passed in
             -> decoder -> out: logits (Bernoulli) or means (Gaussian) (N, D)
             -> score: the objective from log p(x|z) (the likelihood), p(z) (the prior) and q(z|x)
    loss = reconstruction + β · KL(q(z|x) ‖ N(0, I))      [eq:vae-loss]   (parts/objectives.py)
    loss = −L_K, the importance-weighted bound              [eq:iwae-loss]  (parts/iwae.py)

Which likelihood, σ_x² mode, architecture and objective a model has is decided when it is built,
by the parts its config selects; ``forward`` and ``backward`` are the same for all of them.

The autoencoder uses the same networks with z = encoder(x) and the reconstruction alone
[eq:ae-loss]; ``sample`` on it decodes z ~ N(0, I) to show why it cannot generate
(derivations/autoencoder.md).
"""

from __future__ import annotations

from ..checkpoint import run_checkpoint
from ..checks import check_array
from .base import Model
from .config import OBJECTIVES
from .parts.encoders import CodeEncoder, GaussianEncoder
from .parts.iwae import IWAE
from .parts.objectives import ELBO, Reconstruction
from .parts.priors import StandardNormal
from .conditional import CONDITIONAL_CLASSES
from .flow_vae import FlowVAE
from .two_layer import TwoLayerVAE


def _iwae(config, beta, free_bits):
    if beta != 1:
        raise ValueError(f"the IWAE objective has no KL weight: beta must be 1 (or None), got {beta}")
    return IWAE(config.k, config)


# objective name -> its part, from (config, β, λ)
OBJECTIVE_PARTS = {"elbo": lambda config, beta, free_bits: ELBO(beta, free_bits), "iwae": _iwae}


class VAE(Model):
    """A Variational Autoencoder: q(z|x), p(z), p(x|z) and an objective (see the module docstring)."""

    kind = "vae"

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        if self.config.stochastic_layers != 1:
            raise ValueError(f"VAE has one stochastic layer; this config asks for {self.config.stochastic_layers} "
                             f"(build it with tinyvae.build_model, or load it with tinyvae.load_model)")
        if self.config.flow != "none":
            raise ValueError(f"VAE has a diagonal Gaussian posterior; this config asks for a {self.config.flow} flow "
                             f"(build it with tinyvae.build_model, or load it with tinyvae.load_model)")
        self.q = GaussianEncoder(self.encoder, self.config.latent, self.dtype)  # q(z|x)
        self.prior = StandardNormal()  # p(z)
        self._objective_key = None
        self.objective = self._objective_for(None, None, None)  # the config's: ELBO (β, λ) or IWAE (K)

    @property
    def reparam(self):
        """The reparameterization z = μ + σ ⊙ ε of the objective in use (one sample per example)."""
        return getattr(self.objective, "reparameterize", None)

    def encode(self, x):
        """(μ, log σ²) of q(z|x), each (N, Z)."""
        check_array(x, "x", shape=(None, self.config.input_dim))
        return self.q.forward(x)

    def reconstruct(self, x):
        """Decode the posterior mean: the model's reconstruction of x."""
        mu, _ = self.encode(x)
        return self.decode(mu)

    def forward(self, x, eps=None, *, beta=None, validate=True, objective=None, fit_obs_var=True, free_bits=None):
        """The loss (0-d array, nats per example) of the batch ``x`` (N, D) with noise ``eps``.

        ``eps=None`` draws ε from the model's generator; the objective says its shape, (N, Z) for the
        ELBO and (N, K, Z) for IWAE. Keeps what ``backward`` needs; ``self.stats`` gets the loss, the
        reconstruction term and the KL term (the true KL, also with free bits, where the loss charges
        Σ_j max(λ, KL_j) instead [eq:free-bits]; for IWAE see ``parts/iwae.py``), and ``obs_var`` for
        a learned or optimal σ_x². ``fit_obs_var``: an optimal σ_x² is the batch's optimum (training,
        the default); False scores with the model's current σ_x² (evaluation). ``beta``, ``free_bits``
        (λ) and ``objective`` ("elbo" or "iwae") default to the config's; β = 1 and λ = 0 give the
        negative ELBO.
        """
        self._check_x(x, validate)
        if eps is not None:
            self._check_noise(eps)
        score = self._objective_for(objective, beta, free_bits)
        eps = score.noise(self, x.shape[0], eps, validate)
        mu, log_var = self.q.forward(x)  # encode: (N, Z) each
        z = score.sample(mu, log_var, eps)  # reparameterize: one row per sample
        out = self.decoder.forward(z)  # decode: (rows, D)
        loss = score.forward(x, out, self, mu, log_var, validate, fit_obs_var)  # score
        self._cache = score
        self.stats = {**score.stats, **self.likelihood.stats()}
        return loss

    def backward(self):
        """Fill ``self.grad`` (every parameter's dL/dθ) from the last forward; returns it."""
        score = self._cached()
        dz = self.decoder.backward(score.dout())  # back through the decoder: (rows, Z)
        dmu, dlog_var = score.latent_backward(dz)  # through z = μ + σ ⊙ ε, and the terms on q's own parameters
        self.q.backward(dmu, dlog_var)  # through the encoder
        self.likelihood.backward()  # a learned or optimal σ_x²
        return self.grad

    def _objective_for(self, objective, beta, free_bits):
        """The objective part for these call arguments (None: the config's); rebuilt only when they change."""
        cfg = self.config
        name = cfg.objective if objective is None else objective
        if name not in OBJECTIVE_PARTS:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        key = (name, cfg.beta if beta is None else float(beta), cfg.free_bits if free_bits is None else float(free_bits))
        if key != self._objective_key:
            self.objective, self._objective_key = OBJECTIVE_PARTS[name](cfg, *key[1:]), key
        return self.objective


class Autoencoder(Model):
    """A deterministic autoencoder: z = encoder(x), loss = reconstruction only [eq:ae-loss]."""

    kind = "ae"

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.code = CodeEncoder(self.encoder)
        self.objective = Reconstruction()

    def encode(self, x):
        """The code z (N, Z) of each input."""
        check_array(x, "x", shape=(None, self.config.input_dim))
        return self.code.forward(x)

    def reconstruct(self, x):
        return self.decode(self.encode(x))

    def forward(self, x, eps=None, *, beta=None, validate=True, objective=None, fit_obs_var=True, free_bits=None):
        """The reconstruction loss of ``x``; ``eps``, ``beta``, ``objective`` and ``free_bits`` are accepted and
        ignored (``fit_obs_var`` as for the VAE)."""
        self._check_x(x, validate)
        z = self.code.forward(x)  # encode: (N, Z)
        out = self.decoder.forward(z)  # decode: (N, D)
        loss = self.objective.forward(x, out, self.likelihood, validate, fit_obs_var)  # score  [eq:ae-loss]
        self._cache = self.objective
        self.stats = {**self.objective.stats, **self.likelihood.stats()}
        return loss

    def backward(self):
        dz = self.decoder.backward(self._cached().dout())
        self.code.backward(dz)
        self.likelihood.backward()
        return self.grad


def build_model(config):
    """A VAE, a VAE with two stochastic layers, a VAE with a flow posterior, an Autoencoder, a ConditionalVAE or a
    QuadrantRegressor (``models/conditional.py``) from a ``ModelConfig``."""
    if config.stochastic_layers == 2:
        return TwoLayerVAE(config)
    if config.flow != "none":
        return FlowVAE(config)
    return {"vae": VAE, "ae": Autoencoder, **CONDITIONAL_CLASSES}[config.model](config)


def load_model(path, device="cpu"):
    """Rebuild the model saved at ``path`` (architecture from its stored config) on ``device``.

    ``path``: a checkpoint .npz file, or a run folder that holds one (its checkpoint.npz), as every
    ``tinyvae`` command accepts; a folder without checkpoint.npz is refused with a CheckpointError.
    """
    path = run_checkpoint(path)
    config, _ = Model.read_config(path)
    model = build_model(config)
    model.load_weights(path)
    return model.to(device)
