"""Layers in a row (``Sequential``) and the MLP builder the dense VAE uses."""

from __future__ import annotations

import numpy as np

from .activations import activation
from .base import Layer
from .dense import Dense


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
            if dy is None:  # a layer built with need_dx=False: nothing before it has parameters to learn
                return None
        return dy

    def __repr__(self):
        return "Sequential(" + ", ".join(map(repr, self.layers)) + ")"


def mlp(sizes, activation_name="relu", *, rng, init="auto", dtype=np.float32, first_needs_dx=True):
    """An MLP ``sizes[0] -> sizes[1] -> ... -> sizes[-1]`` with an activation between dense layers.

    No activation follows the last layer: its outputs are logits, means or (μ, log σ²).
    ``init="auto"`` means ``"he"`` for ReLU-like activations and ``"glorot"`` for the others; and
    ``"he"`` puts He on every layer that feeds a ReLU (the first and the hidden ones) and Glorot on
    the output layer, whose smaller initial outputs start the loss lower (the reasons and the
    measurement are in derivations/dense.md, "Which rule init='auto' applies where").
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
