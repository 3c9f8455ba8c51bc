"""Inverse autoregressive flow steps (Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling 2016),
with the MADE masks (Germain, Gregor, Murray & Larochelle 2015) that make each step autoregressive.

One step, from z (R, Z) and the encoder's context h (R, C)::

    t = tanh(z (W1 ⊙ M1) + h V + b1)                 (R, H)   the masked hidden layer
    m = t (Wm ⊙ M2) + bm,  s = t (Ws ⊙ M2) + bs       (R, Z) each
    z' = σ(s) ⊙ z + (1 − σ(s)) ⊙ m                    [eq:iaf-step]
    log |det ∂z'/∂z| = Σ_i log σ(s_i)                 [eq:iaf-logdet]

The masks [eq:made-masks] let m_i and s_i read only the z_j that come before z_i in the step's ordering,
so ∂z'/∂z is triangular in that ordering with σ(s) on its diagonal. The context enters unmasked: it is
not z. The first step's ordering is a seeded permutation, and each next step reverses the one before,
so that every dimension is at the start of some step's ordering and the end of another's.
The s bias starts at +2 (σ(s) ≈ 0.88) and the heads' weights near 0, so that each step starts close to
z' = 0.88 z + 0.12 m with m nearly constant: a gate that mostly keeps z.

Shapes: R rows, Z latent, H hidden, C context.
"""

from __future__ import annotations

import numpy as np

from ...backend import get_xp, to_device
from ...nn import Layer, init_weights, sigmoid
from .flows import softplus

ORDERING_SEED = 2016  # the first step's ordering: part of the architecture, the same whatever config.seed
S_BIAS = 2.0  # the starting bias of s: σ(2) ≈ 0.88


def orderings(z_dim, steps):
    """The orderings of ``steps`` steps: a seeded permutation of 0..Z−1, then reversed each step.
    order[i] is the position of dimension i (0 first)."""
    first = np.random.default_rng(ORDERING_SEED).permutation(z_dim)
    return [first if k % 2 == 0 else first[::-1].copy() for k in range(steps)]


def made_masks(order, hidden):
    """(M1 (Z, H), M2 (H, Z)) for a MADE with one hidden layer and the ordering ``order`` (Z,).

    Hidden unit k gets degree d_k = k mod max(Z − 1, 1), the degrees 0 .. Z−2 in turn: it may read the inputs
    at positions ≤ d_k and feed the outputs at positions > d_k. So output i sees input j only through units
    with order[j] ≤ d_k < order[i]: only when order[j] < order[i]  [eq:made-masks]. With H ≥ Z − 1 every
    degree has a unit, so every such pair has a path; with no unit of degree d, the output at position
    d + 1 could not read the input at position d (no unit has order[j] ≤ d_k < order[i] for that pair),
    which is why fewer units are refused.
    """
    z_dim = len(order)
    if hidden < z_dim - 1:
        raise ValueError(f"a MADE layer for Z = {z_dim} needs at least Z − 1 = {z_dim - 1} hidden units, one "
                         f"for each degree, got {hidden}")
    degrees = np.arange(hidden) % max(z_dim - 1, 1)  # (H,)
    m1 = (order[:, None] <= degrees[None, :]).astype(np.float64)  # (Z, H)  [eq:made-masks]
    m2 = (degrees[:, None] < order[None, :]).astype(np.float64)  # (H, Z)  [eq:made-masks]
    return m1, m2


class IAFStep(Layer):
    """z' = σ(s) ⊙ z + (1 − σ(s)) ⊙ m with (m, s) from a masked net of z and the context (module docstring)."""

    def __init__(self, order, hidden, context, *, rng, dtype=np.float32):
        super().__init__()
        self.order = np.asarray(order)
        z_dim = len(self.order)
        m1, m2 = made_masks(self.order, hidden)
        self.m1, self.m2 = m1.astype(dtype), m2.astype(dtype)
        head = 0.01  # small heads: m and s start nearly constant in z
        self.params = {"W1": init_weights(rng, z_dim, hidden, "glorot", dtype) * self.m1,
                       "V": init_weights(rng, context, hidden, "glorot", dtype),
                       "b1": np.zeros(hidden, dtype=dtype),
                       "Wm": (head * rng.standard_normal((hidden, z_dim))).astype(dtype) * self.m2,
                       "bm": np.zeros(z_dim, dtype=dtype),
                       "Ws": (head * rng.standard_normal((hidden, z_dim))).astype(dtype) * self.m2,
                       "bs": np.full(z_dim, S_BIAS, dtype=dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._masks_on = None  # the namespace the masks were last moved to

    def _masks(self, xp):
        if self._masks_on is not xp:  # the masks follow the parameters onto the device
            self.m1, self.m2, self._masks_on = to_device(self.m1, xp), to_device(self.m2, xp), xp
        return self.m1, self.m2

    def made(self, z, context):
        """(m, s, t) of the masked network, (R, Z), (R, Z), (R, H)."""
        p = self.params
        m1, m2 = self._masks(get_xp(z))
        t = get_xp(z).tanh(z @ (p["W1"] * m1) + context @ p["V"] + p["b1"])  # (R, H)
        return t @ (p["Wm"] * m2) + p["bm"], t @ (p["Ws"] * m2) + p["bs"], t  # (R, Z) each  [eq:made-masks]

    def forward(self, z, context):
        """(z' (R, Z), Σ_i log σ(s_i) (R,)) for z (R, Z) and the context (R, C)."""
        m, s, t = self.made(z, context)
        gate = sigmoid(s)  # σ(s) (R, Z)
        self._cache = (z, context, m, gate, t)
        z_next = gate * z + (1.0 - gate) * m  # (R, Z)  [eq:iaf-step]
        return z_next, -softplus(-s).sum(axis=1)  # log σ(s) = −log(1 + e^(−s))  [eq:iaf-logdet]

    def backward(self, dz_next, dlog_det):
        """(dL/dz (R, Z), dL/dcontext (R, C)) from dL/dz' (R, Z) and dL/dlog|det| (R,); writes every grad."""
        z, context, m, gate, t = self._cached()
        p, g = self.params, self.grads
        m1, m2 = self._masks(get_xp(z))
        dm = dz_next * (1.0 - gate)  # (R, Z)  [eq:iaf-backward]
        # s reaches z' through σ(s), σ′ = σ(1 − σ), and the log-det through d log σ(s)/ds = 1 − σ(s)
        ds = (dz_next * (z - m) * gate + dlog_det[:, None]) * (1.0 - gate)  # (R, Z)  [eq:iaf-backward]
        g["Wm"][...] = (t.T @ dm) * m2
        g["bm"][...] = dm.sum(axis=0)
        g["Ws"][...] = (t.T @ ds) * m2
        g["bs"][...] = ds.sum(axis=0)
        dt = dm @ (p["Wm"] * m2).T + ds @ (p["Ws"] * m2).T  # (R, H)
        da = dt * (1.0 - t * t)  # through tanh
        w1 = p["W1"] * m1
        g["W1"][...] = (z.T @ da) * m1
        g["V"][...] = context.T @ da
        g["b1"][...] = da.sum(axis=0)
        dz = dz_next * gate + da @ w1.T  # z' reads z directly and through (m, s)  [eq:iaf-backward]
        return dz, da @ p["V"].T  # (R, Z), (R, C)

    def __repr__(self):
        return f"IAFStep(Z={len(self.order)}, H={self.params['b1'].shape[0]})"
