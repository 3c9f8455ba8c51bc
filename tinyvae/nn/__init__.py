"""Layers with hand-written backward passes, one file per kind; ``from tinyvae.nn import X``.

* ``base``: the contract (``forward`` keeps what ``backward`` needs; ``backward(dy)`` returns dx and
  writes ``grads``; backward before forward is an error) and the ``Layer`` base class;
* ``dense``: ``Dense`` and its initializations (derivations/dense.md);
* ``activations``: ReLU, LeakyReLU, Tanh, Sigmoid, Softplus and the stable sigmoid
  (derivations/activations.md);
* ``conv``: ``Conv2d`` and ``ConvTranspose2d`` as matrix products (im2col, col2im), the transposed
  convolution's forward being the convolution's input gradient (derivations/convolution.md);
* ``reshape``: ``Flatten`` and ``Unflatten`` between image and vector layouts;
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
from .conv import Conv2d, ConvTranspose2d, col2im, conv2d_adjoint, conv2d_apply, im2col
from .dense import Dense, init_weights
from .reshape import Flatten, Unflatten
from .sequential import Sequential, mlp

__all__ = [
    "ACTIVATIONS",
    "Conv2d",
    "ConvTranspose2d",
    "Dense",
    "Flatten",
    "Layer",
    "LeakyReLU",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softplus",
    "Tanh",
    "Unflatten",
    "activation",
    "col2im",
    "conv2d_adjoint",
    "conv2d_apply",
    "im2col",
    "init_weights",
    "mlp",
    "sigmoid",
    "sigmoid_from_abs",
]
