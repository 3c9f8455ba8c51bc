"""The objectives a VAE minimizes, and the autoencoder's: each scores what the other parts computed.

An objective has the same five steps whatever the model around it:

* ``noise(model, n, eps, validate)``: the ε it needs, drawn from the model's generator or checked;
* ``sample(mu, log_var, eps)``: z from q(z|x), reparameterized, as rows for the decoder;
* ``forward(x, out, parts, mu, log_var, validate, fit)``: the loss, nats per example, from the
  likelihood's term for the decoder output ``out``, and the prior's and the posterior's terms;
* ``dout()``: ∂loss/∂out, for the decoder's backward;
* ``latent_backward(dz)``: from ∂loss/∂z (the decoder's dx) to ∂loss/∂(μ, log σ²), adding the terms
  that reach q's parameters directly (the KL, log q).

Here: the ELBO with β and free bits (Kingma & Welling 2014; Higgins et al. 2017; Kingma et al. 2016,
appendix C.8) and the autoencoder's reconstruction error. The IWAE bound is in ``iwae.py``.
"""

from __future__ import annotations

from ...backend import get_xp
from ...checks import check_array
from ...prob.losses import apply_free_bits
from .encoders import Reparameterize


class ELBO:
    """loss = −log p(x|z) + β · KL(q(z|x) ‖ p(z)), one z per example; β = 1 and λ = 0 give the −ELBO.

    With free bits λ > 0 the KL term charges Σ_j max(λ, KL_j) [eq:free-bits]; ``stats["kl"]`` is
    the true KL either way.
    """

    name = "elbo"

    def __init__(self, beta=1.0, free_bits=0.0):
        self.beta, self.free_bits = float(beta), float(free_bits)
        self.reparameterize = Reparameterize()
        self.stats = {}
        self._cache = None

    def noise(self, model, n, eps, validate):
        """ε (N, Z), drawn from ``model.rng`` when None."""
        z_dim = model.config.latent
        if eps is None:
            return model.rng.standard_normal((n, z_dim), dtype=model.dtype)
        return check_array(eps, "eps", shape=(n, z_dim), finite=validate)

    def sample(self, mu, log_var, eps):
        return self.reparameterize.forward(mu, log_var, eps)  # (N, Z)

    def forward(self, x, out, parts, mu, log_var, validate, fit):
        recon, dout = parts.likelihood.nll(out, x, validate, fit)  # −(1/N) Σ_n log p(x_n|z_n)
        kl, dmu_kl, dlog_var_kl = parts.prior.kl(mu, log_var)  # in closed form
        kl_term = kl
        if self.free_bits > 0:  # Σ_j max(λ, KL_j): the KL's gradients zeroed for the dimensions under λ  [eq:free-bits]
            kl_term, dmu_kl, dlog_var_kl, _ = apply_free_bits(mu, log_var, dmu_kl, dlog_var_kl, self.free_bits)
        loss = recon + self.beta * kl_term  # −ELBO when β = 1 and no free bits  [eq:vae-loss] [eq:elbo]
        self._cache = (dout, dmu_kl, dlog_var_kl)
        self.stats = {"loss": loss, "recon": recon, "kl": kl}
        return loss

    def dout(self):
        return self._cache[0]

    def latent_backward(self, dz):
        _, dmu_kl, dlog_var_kl = self._cache
        dmu, dlog_var = self.reparameterize.backward(dz)  # through z = μ + σ ⊙ ε
        # the KL term reaches μ and log σ² directly  [eq:encoder-output-grad]
        return dmu + self.beta * dmu_kl, dlog_var + self.beta * dlog_var_kl


class Reconstruction:
    """The autoencoder's loss: the reconstruction error −log p(x|z) of its code, nothing else [eq:ae-loss]."""

    name = "reconstruction"

    def __init__(self):
        self.stats = {}
        self._dout = None

    def forward(self, x, out, likelihood, validate, fit):
        loss, self._dout = likelihood.nll(out, x, validate, fit)  # [eq:ae-loss]
        self.stats = {"loss": loss, "recon": loss, "kl": get_xp(out).zeros((), dtype=out.dtype)}
        return loss

    def dout(self):
        return self._dout
