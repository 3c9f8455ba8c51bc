"""Elementwise activations (ReLU, leaky ReLU, tanh, sigmoid, softplus) and the stable sigmoid.

Each keeps what its slope needs (its output, a mask or its input). The math is in
derivations/activations.md; each line that computes a formula cites it as ``# [eq:...]``.
"""

from __future__ import annotations

from ..backend import get_xp, in_pieces
from .base import Layer


class ReLU(Layer):
    """y = max(x, 0). Keeps the output: y > 0 exactly where the slope is 1.

    A large batch goes in pieces to host threads (``backend.in_pieces``): the conv VAE's ReLUs pass over
    millions of elements each.
    """

    def forward(self, x):
        xp = get_xp(x)
        y = xp.empty_like(x)
        in_pieces(lambda x, y: xp.maximum(x, 0, out=y), x, y)  # [eq:relu]
        self._cache = y
        return y

    def backward(self, dy):
        y = self._cached()
        xp = get_xp(dy)
        dx = xp.empty_like(y)
        in_pieces(lambda dy, y, dx: xp.multiply(dy, y > 0, out=dx), dy, y, dx)  # [eq:relu-grad]
        return dx


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
    """σ(x) without overflow and with a small relative error in both tails.

    exp only ever sees −|x| ≤ 0; for x < 0 the form e/(1 + e) keeps tiny values such as σ(−30)
    to a few units in the last place (measured relative error at most about 4.5·2⁻²⁴ in float32,
    derivations/float32-loss.md), where 1 − σ(|x|) would round them to 0. (The training loss uses
    the faster ``sigmoid_from_abs``, whose error is absolute, which is all a gradient σ(l) − x needs.)
    """
    xp = get_xp(x)
    e = xp.exp(-xp.abs(x))  # in (0, 1]
    r = 1 / (1 + e)  # σ(|x|)
    return xp.where(x >= 0, r, e * r)  # [eq:sigmoid-stable]


def sigmoid_from_abs(r, x):
    """σ(x) from r = σ(|x|), in place: r where x ≥ 0, 1 − r where x < 0, as σ(−a) = 1 − σ(a).

    Written as ½ + copysign(r − ½, x): three cheap ufuncs instead of a ``where``, which is several
    times slower in NumPy (this runs over every pixel of every training batch). The three steps
    are exact; the error is that of r, absolute, at most about 1.5·2⁻²⁴ ≈ 9e-8 in float32
    (measured; bounded in [eq:sigmoid-from-abs-error]): right for the gradient σ(l) − x, not for
    tiny σ values, which come out as 0.
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
