"""The first dense layer of q(z|x, y) on M2's rows, with x's product computed once per example.

A row r is an example n(r) with a label y_r (``semi_supervised.label_rows``): an unlabelled example has
C rows, one per label. The layer is the dense layer of [x | onehot(y)] with W = [W_x ; W_y] of shape
(D + C, H), but x_n W_x is the same for all C rows of an example, so it is computed once per example
and copied to its rows, and onehot(y) W_y is just the row y of W_y [eq:m2-shared-first-layer]
(the identity of derivations/conditional.md#eq:cvae-concat). The D·H products of an unlabelled example
are then done once instead of C times. Same parameters, same values, as ``nn.Dense`` on the
concatenated rows; it computes no dL/dx (nothing upstream of the data learns).

Shapes: N examples, R rows, D input, C classes, H hidden.
"""

from __future__ import annotations

from ...backend import get_xp, matmul
from ...nn.base import Layer


class LabelledRowsDense(Layer):
    """h_r = x_{n(r)} W_x + W_y[y_r] + b for rows (x (N, D), example (R,), label (R,)); W (D + C, H) as ``Dense``'s."""

    def __init__(self, dense, d, classes):
        super().__init__()
        if dense.d_in != d + classes:
            raise ValueError(f"LabelledRowsDense: the dense layer takes {dense.d_in} inputs, expected D + C = "
                             f"{d} + {classes}")
        self.d, self.classes, self.d_out = int(d), int(classes), dense.d_out
        self.params, self.grads = dense.params, dense.grads  # the very arrays: W (D + C, H), b (H,)

    def forward(self, rows):
        x, example, label = rows
        W, b = self.params["W"], self.params["b"]
        h = matmul(x, W[:self.d])[example]  # (R, H): x_n W_x, once per example  [eq:m2-shared-first-layer]
        h += W[self.d:][label]  # onehot(y_r) W_y is row y_r of W_y
        h += b
        self._cache = rows
        return h

    def backward(self, dh):
        """Writes dW and db from dL/dh (R, H); returns None (no dL/dx)."""
        x, example, label = self._cached()
        xp = get_xp(dh)
        per_example = xp.zeros((x.shape[0], self.d_out), dtype=dh.dtype)  # (N, H): Σ of each example's rows
        starts = xp.flatnonzero(xp.concatenate([xp.ones(1, dtype=bool), example[1:] != example[:-1]]))
        xp.add.at(per_example, example[starts], xp.add.reduceat(dh, starts, axis=0))  # runs of one example's rows
        matmul(x.T, per_example, out=self.grads["W"][:self.d])  # (D, H)  [eq:m2-shared-first-layer-grad]
        onehot = xp.zeros((self.classes, dh.shape[0]), dtype=dh.dtype)
        onehot[label, xp.arange(dh.shape[0])] = 1
        matmul(onehot, dh, out=self.grads["W"][self.d:])  # (C, H): Σ of each label's rows
        xp.sum(dh, axis=0, out=self.grads["b"])  # (H,)  [eq:dense-grad-b]
        return None

    def __repr__(self):
        return f"LabelledRowsDense({self.d} + {self.classes}, {self.d_out})"
