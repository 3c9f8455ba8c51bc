"""Dense layers, activations and an MLP builder, each with a hand-written backward pass.

One contract for every layer:

* ``forward(x)`` computes the output and keeps exactly what the backward needs (its cache);
* ``backward(dy)`` takes dL/d(output) and returns dL/d(input), writing the parameter gradients
  into ``grads`` (same keys and shapes as ``params``) in place;
* calling ``backward`` before ``forward`` raises ``RuntimeError``.

Shapes: N batch, D_in / D_out the widths of one layer. The math is in derivations/dense.md and
derivations/activations.md; each line that computes a formula cites it as ``# [eq:...]``.
"""

from __future__ import annotations

import math

import numpy as np

from .backend import get_xp
from .checks import check_array


class Layer:
    """Base class: parameter and gradient dictionaries and the before-forward guard."""

    def __init__(self):
        self.params = {}
        self.grads = {}
        self._cache = None

    def _cached(self):
        if self._cache is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward called before forward: run forward(x) first, "
                f"the backward pass needs what the forward keeps"
            )
        return self._cache

    def __call__(self, x):
        return self.forward(x)

    def __repr__(self):
        return f"{type(self).__name__}()"


# --------------------------------------------------------------------------- dense


class Dense(Layer):
    """y = x W + b with W of shape (D_in, D_out) and b of shape (D_out,).

    ``init``: ``"glorot"`` (uniform, for tanh/sigmoid/linear), ``"he"`` (normal, for ReLU) or
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
        y = x @ W  # (N, D_out)  [eq:dense-forward]
        y += b
        self._cache = x
        return y

    def backward(self, dy):
        x = self._cached()
        xp = get_xp(dy)
        check_array(dy, "Dense upstream gradient dy", shape=(x.shape[0], self.d_out), finite=False)
        xp.matmul(x.T, dy, out=self.grads["W"])  # (D_in, D_out)  [eq:dense-grad-w]
        xp.sum(dy, axis=0, out=self.grads["b"])  # (D_out,)  [eq:dense-grad-b]
        if not self.need_dx:
            return None
        return dy @ self.params["W"].T  # (N, D_in)  [eq:dense-grad-x]

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


# --------------------------------------------------------------------------- activations


class ReLU(Layer):
    """y = max(x, 0). Keeps the output: y > 0 exactly where the slope is 1."""

    def forward(self, x):
        xp = get_xp(x)
        y = xp.maximum(x, 0)  # [eq:relu]
        self._cache = y
        return y

    def backward(self, dy):
        y = self._cached()
        return dy * (y > 0)  # [eq:relu-grad]


class LeakyReLU(Layer):
    """y = x for x > 0, a·x otherwise (a = ``slope``, 0.01 by default)."""

    def __init__(self, slope=0.01):
        super().__init__()
        if not 0 <= slope < 1:
            raise ValueError(f"LeakyReLU slope must lie in [0, 1), got {slope}")
        self.slope = slope

    def forward(self, x):
        xp = get_xp(x)
        positive = x > 0
        self._cache = positive
        return xp.where(positive, x, x * x.dtype.type(self.slope))  # [eq:leaky-relu]

    def backward(self, dy):
        positive = self._cached()
        xp = get_xp(dy)
        return xp.where(positive, dy, dy * dy.dtype.type(self.slope))  # [eq:leaky-relu-grad]


class Tanh(Layer):
    """y = tanh(x); the slope 1 − y² is computed from the kept output."""

    def forward(self, x):
        y = get_xp(x).tanh(x)
        self._cache = y
        return y

    def backward(self, dy):
        y = self._cached()
        return dy * (1 - y * y)  # [eq:tanh-grad]


class Sigmoid(Layer):
    """y = 1 / (1 + exp(−x)), computed without overflow; slope y(1 − y) from the kept output."""

    def forward(self, x):
        y = sigmoid(x)
        self._cache = y
        return y

    def backward(self, dy):
        y = self._cached()
        return dy * y * (1 - y)  # [eq:sigmoid-grad]


class Softplus(Layer):
    """y = log(1 + exp(x)) in the stable form; its slope is sigmoid(x)."""

    def forward(self, x):
        xp = get_xp(x)
        y = xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))  # [eq:softplus]
        self._cache = x
        return y

    def backward(self, dy):
        x = self._cached()
        return dy * sigmoid(x)  # [eq:softplus-grad]


def sigmoid(x):
    """σ(x) without overflow and with full relative accuracy in both tails.

    exp only ever sees −|x| ≤ 0; for x < 0 the form e/(1 + e) keeps tiny values such as σ(−30)
    exact, which 1 − σ(|x|) would round to 0. (The training loss uses the faster
    ``sigmoid_from_abs``, whose error is absolute, which is all a gradient σ(l) − x needs.)
    """
    xp = get_xp(x)
    e = xp.exp(-xp.abs(x))  # in (0, 1]
    r = 1 / (1 + e)  # σ(|x|)
    return xp.where(x >= 0, r, e * r)  # [eq:sigmoid-stable]


def sigmoid_from_abs(r, x):
    """σ(x) from r = σ(|x|), in place: r where x ≥ 0, 1 − r where x < 0, as σ(−a) = 1 − σ(a).

    Written as ½ + copysign(r − ½, x): three cheap ufuncs instead of a ``where``, which is several
    times slower in NumPy (this runs over every pixel of every training batch). Its error is
    absolute, at most half an ulp of 1: right for the gradient σ(l) − x, not for tiny σ values.
    """
    xp = get_xp(r)
    r -= 0.5
    xp.copysign(r, x, out=r)
    r += 0.5
    return r  # [eq:sigmoid-stable]


ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "tanh": Tanh, "sigmoid": Sigmoid, "softplus": Softplus}


def activation(name):
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}") from None


# --------------------------------------------------------------------------- networks


class Sequential(Layer):
    """Layers applied in order; backward runs them in reverse.

    ``params`` and ``grads`` name each entry ``"<index>.<key>"`` (``"0.W"``, ``"2.b"``) and hold
    the very arrays of the layers, so writing to them writes to the layers.
    """

    def __init__(self, layers):
        super().__init__()
        self.layers = list(layers)
        self._refresh()

    def _refresh(self):
        self.params = {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.params.items()}
        self.grads = {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.grads.items()}

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        self._cache = True
        return x

    def backward(self, dy):
        self._cached()
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def __repr__(self):
        return "Sequential(" + ", ".join(map(repr, self.layers)) + ")"


def mlp(sizes, activation_name="relu", *, rng, init="auto", dtype=np.float32, first_needs_dx=True):
    """An MLP ``sizes[0] -> sizes[1] -> ... -> sizes[-1]`` with an activation between dense layers.

    No activation follows the last layer: its outputs are logits, means or (μ, log σ²).
    ``init="auto"`` picks He for ReLU-like activations and Glorot for the others.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"mlp sizes must be at least two positive widths, got {sizes}")
    if init == "auto":
        init = "he" if activation_name in ("relu", "leaky_relu") else "glorot"
    layers = []
    for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        need_dx = first_needs_dx or i > 0
        layers.append(Dense(d_in, d_out, init="glorot" if last and init == "he" else init,
                            rng=rng, dtype=dtype, need_dx=need_dx))
        if not last:
            layers.append(activation(activation_name))
    return Sequential(layers)
