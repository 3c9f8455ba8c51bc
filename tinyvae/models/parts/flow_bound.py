"""The encoder and the objective of a VAE whose posterior is a flow: q_T, every term sampled.

* ``ContextEncoder``: the encoder's output (N, 2Z + C) split into μ, log σ² of q_0(z|x) = N(μ, diag σ²)
  and the context h (N, C) the IAF steps read (C = 0 for planar steps); its backward joins the three.
* ``FlowBound``: the loss from log w = log p(x|z_T) + log p(z_T) − log q_T(z_T|x), with
  log q_T(z_T|x) = log q_0(z_0|x) − Σ_t log|det J_t| [eq:flow-log-q]. There is no closed-form KL
  against q_T, so the ELBO samples it:

      K = 1 (ELBO):  loss = −(1/N) Σ_n [log p(x|z_T) − β (log q_T(z_T) − log p(z_T))]   [eq:flow-elbo]
      K > 1 (IWAE):  loss = −(1/N) Σ_n log (1/K) Σ_k w_nk                             [eq:flow-iwae]

  (β = 1 is −(1/N) Σ_n log w_n; a β ≠ 1 weights the sampled KL term as [eq:vae-loss] weights the closed-form
  one.) T is the number of flow steps, K that of importance samples.

  With z_0 = μ + σ ⊙ ε, log q_0(z_0|x) = −½ Σ_j (log 2π + log σ_j² + ε_j²) [eq:iwae-log-q-eps]: its
  explicit part in log σ² gives every log σ_j² the constant −½ times the row's weight, −½ Σ_k g_nk,
  where g_nk is what each row's log w counts in the loss (w̃_nk / N for IWAE, 1/N or β/N for the ELBO's
  terms); for IWAE Σ_k g_nk = 1/N, the −½/N of ``iwae.py``.

Shapes: N batch, K samples per example (1 for the ELBO), D input, Z latent, C context; the flow and the
decoder see N·K rows. Losses are nats per example: summed over pixels and latent dimensions, averaged
over the batch.
"""

from __future__ import annotations

from ...backend import get_xp
from ...checks import ShapeError, check_array
from . import iwae


class ContextEncoder:
    """[μ | log σ² | h] = net(x): forward(x) -> (μ, log σ², h), backward(dμ, dlog σ², dh)."""

    def __init__(self, net, latent, context, dtype):
        self.net, self.latent, self.context, self.dtype = net, latent, context, dtype

    def forward(self, x):
        out = self.net.forward(x)  # (N, 2Z + C)
        z = self.latent
        return out[:, :z], out[:, z:2 * z], out[:, 2 * z:]  # μ, log σ² (N, Z) each; h (N, C)

    def backward(self, dmu, dlog_var, dh=None):
        z = self.latent
        dout = get_xp(dmu).zeros((dmu.shape[0], 2 * z + self.context), dtype=self.dtype)  # (N, 2Z + C)
        dout[:, :z] = dmu
        dout[:, z:2 * z] = dlog_var
        if dh is not None:
            dout[:, 2 * z:] = dh
        return self.net.backward(dout)


class FlowBound:
    """−ELBO (K = 1, with β) or −L_K (K > 1) of a flow posterior q_T (module docstring)."""

    def __init__(self, name, k, beta=1.0):
        self.name, self.k, self.beta = name, int(k), float(beta)
        self.stats = {}
        self._cache = None

    def noise(self, model, n, eps, validate):
        """ε (N, K, Z): drawn from ``model.rng`` when None, else the caller's (N, Z) for the ELBO or
        (N, K, Z) for IWAE, checked."""
        z_dim = model.config.latent
        if self.name == "iwae":
            iwae.check_memory(n, self.k, model.config, model.dtype.itemsize, model.xp)
        if eps is None:
            return model.rng.standard_normal((n, self.k, z_dim), dtype=model.dtype)
        if self.name == "iwae":
            return iwae.check_eps(eps, n, self.k, z_dim, validate)
        if tuple(eps.shape) != (n, z_dim):
            raise ShapeError(f"eps: expected shape (N, Z) = {(n, z_dim)} for the ELBO of a flow posterior, "
                             f"got {tuple(eps.shape)}")
        return check_array(eps, "eps", finite=validate)[:, None, :]  # (N, 1, Z)

    def forward(self, x, out, parts, z_t, eps, log_var, log_det):
        """The loss from the decoder's output ``out`` (N·K, D), z_T (N·K, Z), ε (N, K, Z), log σ² (N, Z) and
        the flow's Σ log|det J| (N·K,); keeps each row's weights for the backward."""
        n, k, _ = eps.shape
        log_px, dout = parts.likelihood.log_prob_rows(out.reshape(n, k, -1), x)  # (N, K), (N, K, D)
        log_pz = parts.prior.log_prob(z_t).reshape(n, k)  # (N, K)  [eq:log-normal-density]
        log_q0 = iwae.log_posterior(eps, log_var)  # (N, K)  [eq:iwae-log-q-eps]
        log_qk = log_q0 - log_det.reshape(n, k)  # (N, K)  [eq:flow-log-q]
        rate = log_qk - log_pz  # the sampled KL term
        if self.name == "iwae":
            loss, weights = iwae.bound(log_px - rate)  # [eq:flow-iwae] [eq:iwae-loss]
            g_px = g_rate = weights / n  # (N, K) −∂loss/∂log w  [eq:iwae-grad-logw]
        else:
            loss = -(log_px.sum() - self.beta * rate.sum()) / n  # [eq:flow-elbo]
            g_px = get_xp(log_px).full((n, k), 1.0 / n, dtype=log_px.dtype)
            g_rate = g_px * self.beta
        self._cache = (dout.reshape(n * k, -1), z_t, g_px.astype(z_t.dtype), g_rate.astype(z_t.dtype))
        self.stats = {"loss": loss, "recon": -log_px.sum() / (n * k), "kl": rate.sum() / (n * k)}
        return loss

    def dout(self):
        """∂loss/∂out (N·K, D): each row's −∂ log p(x|z_T)/∂out times its weight."""
        dout, _, g_px, _ = self._cache
        return dout * g_px.reshape(-1, 1)  # [eq:iwae-grad-out]

    def flow_grads(self, dz_t):
        """(∂loss/∂z_T (N·K, Z), ∂loss/∂Σ log|det J| (N·K,)) from the decoder's part ``dz_t``, and the
        explicit ∂loss/∂log σ² (N, 1) of log q_0 (broadcast over Z)."""
        _, z_t, _, g_rate = self._cache
        g = g_rate.reshape(-1, 1)  # (N·K, 1)
        dz_t = dz_t + g * z_t  # the prior: loss holds −g log p(z_T), −∂ log p/∂z = z  [eq:iwae-grad-z]
        dlog_det = -g_rate.reshape(-1)  # loss holds +g log q_T = g (log q_0 − Σ log|det|)  [eq:flow-log-q]
        dlog_var = -0.5 * g_rate.sum(axis=1, keepdims=True)  # log q_0's explicit −½ log σ²  [eq:iwae-log-q-eps]
        return dz_t, dlog_det, dlog_var
