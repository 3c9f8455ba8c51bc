"""Exercise (i), ``conv_backward``: A convolution layer's backward pass (derivations/convolution.md).

The stub the learner replaces, the cases it is checked on, its numeric check and the named
mistakes the checker recognizes.
"""

from __future__ import annotations

import numpy as np

from .. import solutions
from .spec import Exercise, Mistake, _sum_check


def conv_backward(dy, x, W, stride, padding):
    """(i) Backward pass of a convolution y = conv(x, W) + b (see ``conv_forward``), images NCHW.

    Inputs: dy = dL/dy (N, F, H_out, W_out); the layer's input x (N, C, R, S); its kernel W (F, C, k, k);
    the stride s and padding p (ints). Return: (dx, dW, db) with shapes (N, C, R, S), (F, C, k, k), (F,).
    Suggested route: im2col (the matrix of every window of the padded x, one column per output
    position), then dW = dY colsᵀ, db = the sum of dy over examples *and* positions, and
    dx = col2im(Wᵀ dY), where col2im adds each column back onto its window (overlaps add up), cut
    back to R × S. No division by N: dy already carries the loss's 1/N.
    Read: derivations/convolution.md#eq:im2col, #eq:conv-grad-w, #eq:conv-grad-b, #eq:col2im, #eq:conv-grad-x.
    """
    raise NotImplementedError


def conv_forward(x, W, b, stride, padding):
    """The convolution of exercise (i), by its definition: y[n, f, u, v] = b[f] + Σ_{c,i,j}
    W[f, c, i, j] · x_pad[n, c, s·u + i, s·v + j], with x_pad the input padded by p zeros on each side.
    x (N, C, R, S), W (F, C, k, k), b (F,) -> y (N, F, H_out, W_out), H_out = ⌊(R + 2p − k)/s⌋ + 1.
    """
    n, _, rows, cols = x.shape
    f, _, k, _ = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho, wo = (rows + 2 * padding - k) // stride + 1, (cols + 2 * padding - k) // stride + 1  # [eq:conv-output-size]
    y = np.empty((n, f, ho, wo))
    for u in range(ho):
        for v in range(wo):
            window = xp[:, :, stride * u:stride * u + k, stride * v:stride * v + k]  # (N, C, k, k)
            y[:, :, u, v] = np.tensordot(window, W, axes=([1, 2, 3], [1, 2, 3])) + b
    return y


CONV = {"N": 4, "C": 2, "F": 8, "R": 9, "S": 10, "k": 3, "stride": 2, "padding": 1}  # nothing square


def _conv_case(rng):
    c = CONV
    x = rng.standard_normal((c["N"], c["C"], c["R"], c["S"]))
    W, b = rng.standard_normal((c["F"], c["C"], c["k"], c["k"])), rng.standard_normal(c["F"])
    y = conv_forward(x, W, b, c["stride"], c["padding"])
    dy = rng.standard_normal(y.shape)
    return {"dy": dy, "x": x, "W": W, "b": b, "stride": c["stride"], "padding": c["padding"], "upstream": dy}


def _conv_numeric(case, grads):
    return _sum_check(lambda v: conv_forward(v["x"], v["W"], v["b"], v["stride"], v["padding"]), case,
                      {"dx": "x", "dW": "W", "db": "b"}, grads, "convolution y = conv(x, W) + b")


def _conv_dx(c, kernel_matrix=None, place=None):
    """dx by the reference route, with a mistake planted: another kernel matrix, or another col2im step."""
    x, W, s, p, dy = c["x"], c["W"], c["stride"], c["padding"], c["dy"]
    f, ch, k, _ = W.shape
    n, _, ho, wo = dy.shape
    w_t = W.reshape(f, ch * k * k).T if kernel_matrix is None else kernel_matrix(W)
    blocks = (w_t @ dy.transpose(1, 0, 2, 3).reshape(f, -1)).reshape(ch, k, k, n, ho, wo)
    out = np.zeros((ch, n, x.shape[2] + 2 * p, x.shape[3] + 2 * p))
    for i in range(k):
        for j in range(k):
            (place or _add_window)(out, blocks[:, i, j], i, j, s, ho, wo)
    return out[:, :, p:p + x.shape[2], p:p + x.shape[3]].transpose(1, 0, 2, 3)


def _add_window(out, block, i, j, s, ho, wo):
    out[:, :, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s] += block  # [eq:col2im]


def _conv_mistakes():
    rotated = lambda W: W[:, :, ::-1, ::-1].reshape(W.shape[0], -1).T  # noqa: E731
    reshaped = lambda W: W.reshape(-1, W.shape[0])  # noqa: E731

    def no_stride(out, block, i, j, s, ho, wo):
        out[:, :, i:i + ho, j:j + wo] += block

    def overwrite(out, block, i, j, s, ho, wo):
        out[:, :, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s] = block

    def dW_rotated(c):
        return solutions.conv_backward(c["dy"], c["x"], c["W"], c["stride"], c["padding"])[1][:, :, ::-1, ::-1]

    return [
        Mistake("dx", "the kernel's orientation: yours is the right dx for the kernel rotated by 180°. With "
                      "col2im (dcols = Wᵀ dY, each column added back onto its window) the kernel is used as it "
                      "is; written as a full convolution of the spread-out dy, it must be rotated, and not both "
                      "[eq:conv-grad-x] [eq:conv-adjoint-full]", lambda c: _conv_dx(c, kernel_matrix=rotated)),
        Mistake("dx", "the kernel matrix is reshaped where it must be transposed: Wᵀ is W.reshape(F, C·k·k).T; "
                      "W.reshape(C·k·k, F) has the same shape and the wrong entries [eq:conv-grad-x]",
                lambda c: _conv_dx(c, kernel_matrix=reshaped)),
        Mistake("dx", "the stride is missing in col2im: kernel offset (i, j) of output pixel (u, v) lands on "
                      "input pixel (s·u + i, s·v + j), every s-th pixel, not on consecutive ones [eq:col2im]",
                lambda c: _conv_dx(c, place=no_stride)),
        Mistake("dx", "overlapping windows overwrite each other: an input pixel under several windows gets the "
                      "sum of all their contributions (+=), not the last one (=) [eq:col2im]",
                lambda c: _conv_dx(c, place=overwrite)),
        Mistake("dW", "the kernel gradient's taps are rotated by 180°: dW[f, c, i, j] pairs dy[n, f, u, v] with "
                      "x_pad[n, c, s·u + i, s·v + j], tap (i, j) unflipped [eq:conv-grad-w]", dW_rotated),
        Mistake("db", "db is summed over the batch at one position only: the bias is added at every output "
                      "position, so its gradient sums dy over examples and positions, axes (0, 2, 3) "
                      "[eq:conv-grad-b]", lambda c: c["dy"][:, :, 0, 0].sum(axis=0)),
        Mistake("db", "db is averaged over positions: the bias gradient is the sum of dy over examples and "
                      "positions (the loss's 1/N is already in dy) [eq:conv-grad-b]",
                lambda c: c["dy"].sum(axis=0).mean(axis=(1, 2))),
    ]


EXERCISE = Exercise(
    name="conv_backward", letter="i", outputs=("dx", "dW", "db"),
    shapes={"dx": ("N", "C", "R", "S"), "dW": ("F", "C", "k", "k"), "db": ("F",)},
    read={"dx": "convolution.md#eq:conv-grad-x", "dW": "convolution.md#eq:conv-grad-w",
          "db": "convolution.md#eq:conv-grad-b", "col2im": "convolution.md#eq:col2im"},
    make_case=_conv_case, args=("dy", "x", "W", "stride", "padding"), numeric=_conv_numeric,
    mistakes=_conv_mistakes(),
    scale_note="dy already carries the loss's 1/N: a layer's backward never divides by N again")
