"""The encoder's side of a model: q(z|x) and the reparameterized draw from it.

* ``GaussianEncoder``: a network whose output (N, 2Z) is split into μ and log σ² of
  q(z|x) = N(μ, diag σ²) (derivations/vae.md); its backward joins the two gradients again.
* ``Reparameterize``: z = μ + exp(½ log σ²) ⊙ ε with ε passed in (Kingma & Welling 2014, sec. 2.4;
  derivations/reparameterization.md).
* ``CodeEncoder``: the autoencoder's deterministic code z = f(x) (derivations/autoencoder.md).

Shapes: N batch, D input, Z latent.
"""

from __future__ import annotations

from ...backend import get_xp
from ...checks import check_same_shape


class Reparameterize:
    """z = μ + exp(½ log σ²) ⊙ ε, with ε given by the caller.

    The backward returns (dL/dμ, dL/dlog σ²) and nothing for ε: ε is an input drawn from
    N(0, I), not a parameter. It uses the very ε and σ of the forward, which it keeps.
    """

    def __init__(self):
        self._cache = None

    def forward(self, mu, log_var, eps):
        check_same_shape(mu, "mu", log_var, "log_var")
        check_same_shape(mu, "mu", eps, "eps")
        xp = get_xp(mu)
        std = xp.exp(0.5 * log_var)  # σ = exp(½ log σ²)
        self._cache = (eps, std)
        return mu + std * eps  # (N, Z)  [eq:reparam]

    def backward(self, dz):
        if self._cache is None:
            raise RuntimeError("Reparameterize.backward called before forward: run forward(mu, log_var, eps) first")
        eps, std = self._cache
        dmu = dz  # [eq:reparam-grad-mu]
        dlog_var = 0.5 * dz * eps * std  # [eq:reparam-grad-logvar]
        return dmu, dlog_var


class GaussianEncoder:
    """q(z|x) = N(μ, diag σ²) with [μ | log σ²] = net(x): forward(x) -> (μ, log σ²), backward(dμ, dlog σ²)."""

    def __init__(self, net, latent, dtype):
        self.net, self.latent, self.dtype = net, latent, dtype

    def forward(self, x):
        h = self.net.forward(x)  # (N, 2Z)
        return h[:, :self.latent], h[:, self.latent:]  # μ, log σ²: (N, Z) each

    def backward(self, dmu, dlog_var):
        """Both gradients (N, Z) into the network's output (N, 2Z), in the network's dtype, then through it."""
        z = self.latent
        dh = get_xp(dmu).empty((dmu.shape[0], 2 * z), dtype=self.dtype)  # (N, 2Z)
        dh[:, :z] = dmu  # [eq:encoder-output-grad]
        dh[:, z:] = dlog_var
        return self.net.backward(dh)


class CodeEncoder:
    """The autoencoder's code z = net(x), one point per input: forward(x) -> z, backward(dz)."""

    def __init__(self, net):
        self.net = net

    def forward(self, x):
        return self.net.forward(x)  # (N, Z)

    def backward(self, dz):
        return self.net.backward(dz)
