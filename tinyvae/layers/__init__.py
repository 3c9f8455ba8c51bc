"""Layers with hand-written backward passes, one file per kind; ``from tinyvae.layers import X``.

* ``base``: the contract (``forward`` keeps what ``backward`` needs; ``backward(dy)`` returns dx and
  writes ``grads``; backward before forward is an error) and the ``Layer`` base class;
* ``dense``: ``Dense`` and its initializations (derivations/dense.md);
* ``activations``: ReLU, LeakyReLU, Tanh, Sigmoid, Softplus and the stable sigmoid
  (derivations/activations.md);
* ``sequential``: ``Sequential`` and the ``mlp`` builder.
"""

from .activations import (
    ACTIVATIONS,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softplus,
    Tanh,
    activation,
    sigmoid,
    sigmoid_from_abs,
)
from .base import Layer
from .dense import Dense, init_weights
from .sequential import Sequential, mlp

__all__ = [
    "ACTIVATIONS",
    "Dense",
    "Layer",
    "LeakyReLU",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softplus",
    "Tanh",
    "activation",
    "init_weights",
    "mlp",
    "sigmoid",
    "sigmoid_from_abs",
]
