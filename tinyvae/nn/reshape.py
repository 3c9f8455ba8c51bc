"""The reshapes between image and vector layouts: ``Flatten`` (N, C, H, W) -> (N, C·H·W) and ``Unflatten``.

Both only relabel the entries, so each backward is the inverse reshape of the upstream gradient.
Flattening follows NCHW order (channel, then row, then column), PyTorch's ``nn.Flatten``.
"""

from __future__ import annotations

import numpy as np

from ..checks import ShapeError, check_array
from .base import Layer


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1·d2·...); keeps the input's shape for the backward."""

    def forward(self, x):
        check_array(x, "Flatten input x", floating=False, finite=False)
        if x.ndim < 2:
            raise ShapeError(f"Flatten input x: expected at least 2 dimensions (N, ...), got shape {tuple(x.shape)}")
        self._cache = tuple(x.shape)
        return x.reshape(x.shape[0], -1)  # (N, C·H·W); a copy only when x is not in NCHW order in memory

    def backward(self, dy):
        shape = self._cached()
        check_array(dy, "Flatten upstream gradient dy", shape=(shape[0], int(np.prod(shape[1:]))), finite=False)
        return dy.reshape(shape)

    def __repr__(self):
        return "Flatten()"


class Unflatten(Layer):
    """(N, C·H·W) -> (N, C, H, W) for ``shape`` = (C, H, W) (any trailing shape works)."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        if not self.shape or min(self.shape) < 1:
            raise ValueError(f"Unflatten shape must be positive sizes, got {shape!r}")
        self.size = int(np.prod(self.shape))

    def forward(self, x):
        check_array(x, "Unflatten input x", shape=(None, self.size), floating=False, finite=False)
        self._cache = True
        return x.reshape(x.shape[0], *self.shape)

    def backward(self, dy):
        self._cached()
        check_array(dy, "Unflatten upstream gradient dy", shape=(None, *self.shape), finite=False)
        return dy.reshape(dy.shape[0], self.size)

    def __repr__(self):
        return f"Unflatten({self.shape})"
