"""The prior p(z) = N(0, I): its log density, the gradient of −log p(z), and the closed-form KL from a
diagonal Gaussian q(z|x) (derivations/kl.md).

A prior that is itself learned (a second stochastic layer's p(z₁|z₂)) is another part with the same
methods; an objective that needs only log p(z) and its gradient then takes it unchanged.
"""

from __future__ import annotations

import math

from ...prob.losses import gaussian_kl

LOG_2PI = math.log(2.0 * math.pi)


class StandardNormal:
    """p(z) = N(0, I) over Z latent dimensions."""

    def log_prob(self, z):
        """log N(z; 0, I) over the last axis: −½ Σ_j (log 2π + z_j²)."""
        return -0.5 * ((z * z).sum(axis=-1) + z.shape[-1] * LOG_2PI)  # [eq:log-normal-density]

    def neg_log_prob_grad(self, z):
        """−∂ log p(z)/∂z = z."""
        return z  # [eq:iwae-grad-z]

    def kl(self, mu, log_var):
        """KL(N(μ, diag σ²) ‖ N(0, I)) summed over Z, averaged over N: ``(kl, dmu, dlog_var)``."""
        return gaussian_kl(mu, log_var, validate=False)  # [eq:kl-closed-form]
