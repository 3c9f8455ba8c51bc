"""Normalizing flows after the encoder: z_0 ~ q_0(z|x) pushed through T invertible steps, and planar steps.

A flow turns the reparameterized sample z_0 = μ + σ ⊙ ε into z_T = f_T ∘ ... ∘ f_1(z_0); by the change
of variables [eq:change-of-variables] its density is

    log q_T(z_T) = log q_0(z_0) − Σ_t log |det ∂f_t/∂z_{t−1}|      [eq:flow-log-q]

so every step gives its output and its log-determinant, evaluated at its input z_{t−1}. The bound the
VAE maximizes then samples log p(z_T) − log q_T(z_T) (``flow_bound.py``; derivations/flows.md).

* ``PlanarStep``: f(z) = z + û h(wᵀz + b) with h = tanh (Rezende & Mohamed 2015: planar flows,
  and the invertibility condition in their appendix), whose log-determinant is log |1 + ûᵀψ(z)|, ψ(z) = h′(wᵀz + b) w; û is u moved along w
  so that wᵀû ≥ −1, which keeps the step invertible;
* ``Flow``: T steps in a row, one parameter container (``params``/``grads`` named ``"<step>.<key>"``)
  that ``models.base.Model`` binds into its single buffer;
* ``build_flow(config, rng, dtype)``: the flow a config asks for (the IAF's steps are in ``iaf.py``).

The flow has T steps (the papers write K; here, as in derivations/flows.md, K is the number of importance
samples). Shapes: R rows (N examples times the samples of each), Z latent, C context (the IAF's; planar steps
ignore it). Every step has ``forward(z, context) -> (z_next, log_det)`` and ``backward(dz_next,
dlog_det) -> (dz, dcontext)``, where dlog_det (R,) is ∂loss/∂log|det J| of each row.
"""

from __future__ import annotations

import numpy as np

from ...backend import get_xp
from ...nn import Layer, sigmoid


def softplus(a):
    """log(1 + e^a) without overflow."""
    xp = get_xp(a)
    return xp.maximum(a, 0) + xp.log1p(xp.exp(-xp.abs(a)))


class PlanarStep(Layer):
    """f(z) = z + û tanh(wᵀz + b), params u, w (Z,) and b (1,); û keeps wᵀû ≥ −1 (module docstring)."""

    def __init__(self, z_dim, *, rng, dtype=np.float32):
        super().__init__()
        scale = 1.0 / np.sqrt(z_dim)
        self.params = {"u": rng.uniform(-scale, scale, z_dim).astype(dtype),
                       "w": rng.uniform(-scale, scale, z_dim).astype(dtype),
                       "b": np.zeros(1, dtype=dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def u_hat(self):
        """(û, wᵀu, wᵀû): û = u + (m(wᵀu) − wᵀu) w/‖w‖², m(a) = −1 + log(1 + e^a), so wᵀû = m(wᵀu) > −1."""
        u, w = self.params["u"], self.params["w"]
        s = w @ u  # wᵀu, a scalar
        c = softplus(s) - 1.0  # m(wᵀu) = wᵀû  [eq:planar-u-hat]
        return u + (c - s) * w / (w @ w), s, c  # (Z,)  [eq:planar-u-hat]

    def forward(self, z, context=None):
        """(f(z) (R, Z), log|det ∂f/∂z| (R,)) for z (R, Z); the log-det is taken at the input z."""
        xp = get_xp(z)
        u_hat, s, c = self.u_hat()
        a = z @ self.params["w"] + self.params["b"]  # (R,)  wᵀz + b
        h = xp.tanh(a)  # (R,)
        dh = 1.0 - h * h  # h′(a) (R,); ψ(z) = h′ w  [eq:planar-psi]
        # 1 + ûᵀψ = 1 + h′ wᵀû ≥ 0 up to round-off; it reaches 0 only where wᵀu below about −17 (float32;
        # −37 in float64) rounds wᵀû to −1 and h′ = 1, and the log-det's −inf is then a diverging flow,
        # which training's divergence guard reports
        det = 1.0 + dh * c  # [eq:planar-logdet]
        self._cache = (z, h, dh, det, u_hat, s, c)
        return z + h[:, None] * u_hat, xp.log(det)  # (R, Z), (R,)  [eq:planar-step] [eq:planar-logdet]

    def backward(self, dz_next, dlog_det):
        """dL/dz (R, Z) from dL/df (R, Z) and dL/dlog|det| (R,); writes dL/du, dL/dw, dL/db. No context: None."""
        z, h, dh, det, u_hat, s, c = self._cached()
        u, w = self.params["u"], self.params["w"]
        # a = wᵀz + b reaches f through h(a) and the log-det through h′(a), with h″ = −2 h h′
        da = (dz_next @ u_hat) * dh + dlog_det * c * (-2.0 * h * dh) / det  # (R,)  [eq:planar-backward]
        du_hat = h @ dz_next  # (Z,) Σ_r h_r ∂L/∂f_r
        dc = (dlog_det * dh / det).sum()  # ∂L/∂(wᵀû), through the log-det
        # û = u + α w/q with α = m(s) − s, q = ‖w‖², s = wᵀu; and c = wᵀû = m(s) exactly, so c's gradient
        # reaches u and w through s, m′(s) = σ(s) (the page's route through û and w gives the same sums)
        q, alpha, sig = w @ w, c - s, sigmoid(s)
        dproj = du_hat @ w / q  # (dû · w)/q
        ds = dproj * (sig - 1.0) + dc * sig  # ∂L/∂s
        self.grads["u"][...] = du_hat + ds * w  # [eq:planar-backward]
        self.grads["w"][...] = da @ z + alpha / q * du_hat - 2.0 * alpha * dproj / q * w + ds * u
        self.grads["b"][...] = da.sum()
        return dz_next + da[:, None] * w, None  # (R, Z)  [eq:planar-backward]

    def __repr__(self):
        return f"PlanarStep({self.params['u'].shape[0]})"


class Flow:
    """T steps z_0 -> z_1 -> ... -> z_T: ``forward(z0, context) -> (z_T, Σ_t log|det J_t|)``, ``backward``."""

    def __init__(self, steps, context=0):
        self.layers = list(steps)
        self.context = int(context)  # C, the width of the context the steps read (0: none)
        self._refresh()

    def _refresh(self):
        self.params = {f"{i}.{k}": v for i, step in enumerate(self.layers) for k, v in step.params.items()}
        self.grads = {f"{i}.{k}": v for i, step in enumerate(self.layers) for k, v in step.grads.items()}

    def forward(self, z, context=None):
        """z_T (R, Z) and the summed log-determinant (R,) of z_0 = ``z`` (R, Z), context (R, C) or None."""
        xp = get_xp(z)
        log_det = xp.zeros(z.shape[0], dtype=z.dtype)  # (R,)
        for step in self.layers:
            z, ld = step.forward(z, context)  # the log-det at the step's input z_{t−1}
            log_det += ld  # [eq:flow-log-q]
        return z, log_det

    def backward(self, dz, dlog_det):
        """(dL/dz_0 (R, Z), dL/dcontext (R, C) or None) from dL/dz_T (R, Z) and dL/dΣ log|det| (R,).

        Every step's log-det enters the sum with weight 1, so each gets the same dlog_det.
        """
        dcontext = None
        for step in reversed(self.layers):
            dz, dc = step.backward(dz, dlog_det)
            if dc is not None:
                dcontext = dc if dcontext is None else dcontext + dc
        return dz, dcontext

    def __repr__(self):
        return f"Flow({len(self.layers)} × {self.layers[0]!r})" if self.layers else "Flow()"


def build_flow(config, rng, dtype):
    """The flow ``config.flow`` names with ``config.flow_steps`` steps, initialized from ``rng``."""
    from .iaf import IAFStep, orderings  # noqa: PLC0415

    z_dim, k = config.latent, config.flow_steps
    if config.flow == "planar":
        return Flow([PlanarStep(z_dim, rng=rng, dtype=dtype) for _ in range(k)])
    if config.flow == "iaf":
        h = config.flow_hidden
        return Flow([IAFStep(order, h, h, rng=rng, dtype=dtype) for order in orderings(z_dim, k)], context=h)
    raise ValueError(f"flow must be 'planar' or 'iaf' to be built, got {config.flow!r}")
