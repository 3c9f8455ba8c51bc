"""The dense (fully connected) layer y = x W + b and its weight initializations.

Shapes: N batch, D_in / D_out the widths of the layer. The math is in derivations/dense.md; each
line that computes a formula cites it as ``# [eq:...]``.
"""

from __future__ import annotations

import math

import numpy as np

from ..backend import get_xp, matmul
from ..checks import check_array
from .base import Layer


class Dense(Layer):
    """y = x W + b with W of shape (D_in, D_out) and b of shape (D_out,).

    ``init``: ``"glorot"`` (uniform, for tanh/sigmoid/linear), ``"he"`` (normal, for a layer whose
    input is a ReLU output or whose output goes into a ReLU; see derivations/dense.md) or
    ``"uniform"`` (U(±1/sqrt(D_in)) for W and b, the fan-in rule PyTorch's ``nn.Linear`` uses,
    handy for like-for-like comparisons). Initial values come from ``rng`` (a NumPy Generator)
    so that a model is the same on every backend for the same seed.
    ``need_dx=False`` skips dL/dx, which the first layer of a network never needs.
    """

    def __init__(self, d_in, d_out, *, init="glorot", rng=None, dtype=np.float32, need_dx=True):
        super().__init__()
        if rng is None:
            raise ValueError("Dense: pass rng=np.random.default_rng(seed); initialization is seeded explicitly")
        self.d_in, self.d_out, self.need_dx = int(d_in), int(d_out), need_dx
        self.params = {"W": init_weights(rng, d_in, d_out, init, dtype), "b": np.zeros(d_out, dtype)}
        if init == "uniform":
            bound = 1.0 / math.sqrt(d_in)
            self.params["b"][...] = rng.uniform(-bound, bound, d_out)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def forward(self, x):
        check_array(x, "Dense input x", shape=(None, self.d_in), finite=False)
        W, b = self.params["W"], self.params["b"]
        y = matmul(x, W)  # (N, D_out)  [eq:dense-forward]
        y += b
        self._cache = x
        return y

    def backward(self, dy):
        x = self._cached()
        xp = get_xp(dy)
        check_array(dy, "Dense upstream gradient dy", shape=(x.shape[0], self.d_out), finite=False)
        matmul(x.T, dy, out=self.grads["W"])  # (D_in, D_out)  [eq:dense-grad-w]
        xp.sum(dy, axis=0, out=self.grads["b"])  # (D_out,)  [eq:dense-grad-b]
        if not self.need_dx:
            return None
        return matmul(dy, self.params["W"].T)  # (N, D_in)  [eq:dense-grad-x]

    def __repr__(self):
        return f"Dense({self.d_in}, {self.d_out})"


def init_weights(rng, d_in, d_out, init, dtype):
    """A (D_in, D_out) weight matrix drawn on the host from ``rng``."""
    if init == "glorot":
        limit = math.sqrt(6.0 / (d_in + d_out))  # [eq:glorot-init]
        w = rng.uniform(-limit, limit, (d_in, d_out))
    elif init == "he":
        w = rng.normal(0.0, math.sqrt(2.0 / d_in), (d_in, d_out))  # [eq:he-init]
    elif init == "uniform":
        bound = 1.0 / math.sqrt(d_in)
        w = rng.uniform(-bound, bound, (d_in, d_out))
    else:
        raise ValueError(f"init must be 'glorot', 'he' or 'uniform', got {init!r}")
    return w.astype(dtype)
