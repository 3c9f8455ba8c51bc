"""Two-dimensional convolutions as matrix products: ``Conv2d`` and ``ConvTranspose2d``.

A convolution is a linear map A from images to images. im2col copies every k×k window of the input
into one column of a matrix, so that A x is a single matrix product W cols; the gradient with
respect to the input is the adjoint Aᵀ dy = col2im(Wᵀ dy), where col2im adds each column back onto
the window it came from. The transposed convolution *is* that adjoint: ``ConvTranspose2d.forward``
and ``Conv2d.backward`` call the one function ``conv2d_adjoint``, and ``ConvTranspose2d.backward``
calls the convolution ``conv2d_apply`` that ``Conv2d.forward`` calls. The math, step by step, is in
derivations/convolution.md; each line that computes a formula cites it as ``# [eq:...]``.

Layout: images are NCHW, (N batch, C channels, H height, W width; here H is an image height, not the
hidden width of the dense layers). That is PyTorch's layout, so weights have PyTorch's shapes
(``Conv2d``: (C_out, C_in, k, k); ``ConvTranspose2d``: (C_in, C_out, k, k)), a flattened image has
PyTorch's order, and the cross-check against ``torch.nn.functional`` needs no permutation.
In memory the layers work channel-major across the batch, (C, N, H, W), and return NCHW *views* of
those arrays (swapping two axes of a view costs nothing). That is the order in which a layer's one
matrix product, W (C_out, C_in·k·k) @ cols (C_in·k·k, N·H_out·W_out), writes its output and in which
the next convolution reads its input, so no activation is ever transposed in memory between layers;
an input that really is NCHW in memory (the first layer's, or one from ``Unflatten``) is copied once.

Padding is never materialized: im2col and col2im clip each kernel offset's window to the image
(``span``). Work buffers are reused, never reallocated per call: each ``Conv2d`` keeps its im2col
matrix (the backward needs it) in a buffer of its own, and the temporaries (the im2col matrix of an
upstream gradient, Wᵀ y before col2im) live in one set of buffers, ``WORK``, shared by every layer,
each as large as the largest request so far. Their size is set by the batch: training at batch 128
holds about 60 MB of them for the default conv VAE. Arrays a layer returns are always new.
"""

from __future__ import annotations

import math

import numpy as np

from ..backend import get_xp, in_pieces, is_numpy, matmul, split_range
from ..checks import ShapeError, check_array
from .base import Layer

INITS = ("glorot", "he", "uniform")
# Largest im2col matrix conv2d_adjoint builds at once: a larger batch (an evaluation pass) goes
# through in pieces of images. 32 MiB holds the largest one of the default conv VAE at batch 128.
MAX_COLUMN_BYTES = 32 * 2**20


# --------------------------------------------------------------------------- sizes


def conv_output_size(size, kernel, stride, padding):
    """Output side of a convolution over ``size`` input pixels, or None when no window fits."""
    span = size + 2 * padding - kernel
    if span < 0:
        return None
    return span // stride + 1  # [eq:conv-output-size]


def conv_transpose_output_size(size, kernel, stride, padding, output_padding):
    """Output side of a transposed convolution over ``size`` input pixels (may come out < 1)."""
    return (size - 1) * stride - 2 * padding + kernel + output_padding  # [eq:conv-transpose-output-size]


def _check_geometry(name, c_in, c_out, kernel, stride, padding, output_padding=0):
    """Integers in range, or a ValueError naming every one that is not."""
    problems = []
    for what, value, low in (("c_in", c_in, 1), ("c_out", c_out, 1), ("kernel", kernel, 1), ("stride", stride, 1),
                             ("padding", padding, 0), ("output_padding", output_padding, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            problems.append(f"{what} must be an integer >= {low}, got {value!r}")
    if not problems and output_padding >= stride:
        problems.append(f"output_padding must be smaller than stride, got output_padding {output_padding} with "
                        f"stride {stride} (a larger one adds rows that no input pixel reaches, and the layer "
                        f"would no longer be the adjoint of a convolution of the same shapes)")
    if problems:
        raise ValueError(f"{name}: " + "; ".join(problems))


# --------------------------------------------------------------------------- im2col and col2im


class Buffers:
    """Named flat work buffers that only grow: ``get`` returns a view of the requested shape.

    A buffer is reallocated only when a request is larger than it, or of another dtype or namespace;
    a smaller batch (the last of an epoch) uses the front of it. The contents are whatever the last
    user left: callers overwrite what they read.
    """

    def __init__(self):
        self._flat = {}

    def get(self, name, shape, dtype, xp):
        size = int(np.prod(shape))
        key = (name, np.dtype(dtype).str)
        buf = self._flat.get(key)
        if buf is None or buf.size < size or get_xp(buf) is not xp:
            buf = xp.empty(size, dtype=dtype)
            self._flat[key] = buf
        return buf[:size].reshape(shape)


WORK = Buffers()  # temporaries of every conv layer: used within one forward or backward call, then free


def channel_major(x):
    """(N, C, H, W) -> the (C, N·H·W) matrix; free when x is a view of a (C, N, H, W) array."""
    n, c, h, w = x.shape
    return x.transpose(1, 0, 2, 3).reshape(c, n * h * w)


def span(size_in, size_out, offset, stride, padding):
    """Where kernel offset ``offset`` meets the unpadded input along one axis: (input slice, output slice).

    Output position u reads input index s·u + offset − p [eq:im2col]; the positions whose index falls
    in the padding (outside 0 .. size_in − 1) read zeros and are left out. None when none is inside.
    """
    lo = max(0, -(-(padding - offset) // stride))  # the first u with s·u + offset − p >= 0
    hi = min(size_out - 1, (size_in - 1 + padding - offset) // stride)  # the last u inside the input
    if hi < lo:
        return None
    first = stride * lo + offset - padding
    return slice(first, first + stride * (hi - lo) + 1, stride), slice(lo, hi + 1)


def im2col(x, kernel, stride, padding, out_hw, cols_from=None):
    """The (C·k·k, N·H_out·W_out) matrix whose column (n, u, v) is the window under output pixel (u, v).

    Row (c, i, j) of column (n, u, v) holds x_pad[n, c, s·u + i, s·v + j] [eq:im2col], x_pad being x
    with p zeros around it. Filled by k·k strided copies straight from x, one per kernel offset
    (i, j), each moving a whole (C, N, H_out, W_out) block; the entries that fall in the padding are
    set to zero. The matrix goes into a buffer of ``cols_from`` (``Buffers``; None: a new array).
    """
    xp = get_xp(x)
    n, c, h, w = x.shape
    ho, wo = out_hw
    x_cm = x.transpose(1, 0, 2, 3)  # (C, N, H, W), a view
    shape = (c, kernel, kernel, n, ho, wo)
    cols = cols_from.get("cols", shape, x.dtype, xp) if cols_from else xp.empty(shape, dtype=x.dtype)
    # im2col moves memory, one core's worth at a time: a large one runs in pieces of the batch on host threads
    split_range(lambda a, b: _fill_cols(cols[:, :, :, a:b], x_cm[:, a:b], kernel, stride, padding, (h, w)), n,
                cols.size, xp)
    return cols.reshape(c * kernel * kernel, n * ho * wo)


def _fill_cols(cols, x_cm, kernel, stride, padding, hw):
    """im2col's copies for the examples in ``x_cm`` (C, n, H, W) into ``cols`` (C, k, k, n, H_out, W_out)."""
    (h, w), (ho, wo) = hw, cols.shape[4:]
    for i in range(kernel):
        rows = span(h, ho, i, stride, padding)
        for j in range(kernel):
            block = cols[:, i, j]  # (C, N, H_out, W_out)
            cols_ = span(w, wo, j, stride, padding)
            if rows is None or cols_ is None:
                block[...] = 0
                continue
            (r_in, r_out), (c_in, c_out) = rows, cols_
            block[:, :, :r_out.start] = 0  # windows hanging over the padding: zeros there
            block[:, :, r_out.stop:] = 0
            block[:, :, r_out, :c_out.start] = 0
            block[:, :, r_out, c_out.stop:] = 0
            block[:, :, r_out, c_out] = x_cm[:, :, r_in, c_in]  # [eq:im2col]


def col2im(dcols, out, kernel, stride, padding, out_hw):
    """Add each column of ``dcols`` (C·k·k, n·H_out·W_out) back onto its window of ``out`` [eq:col2im].

    ``out`` is a zeroed image (C, n, H, W) in channel-major order. Windows of neighbouring output
    pixels overlap when s < k; the overlaps are summed, k·k strided additions, one per kernel offset;
    what would land in the padding is dropped (the padding is a constant). This is the adjoint of
    ``im2col``: ⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩.
    """
    c, n, h, w = out.shape
    ho, wo = out_hw
    blocks = dcols.reshape(c, kernel, kernel, n, ho, wo)

    def add(a, b):  # examples a..b: their windows never overlap another piece's
        for i in range(kernel):
            rows = span(h, ho, i, stride, padding)
            for j in range(kernel):
                cols_ = span(w, wo, j, stride, padding)
                if rows is None or cols_ is None:
                    continue
                (r_in, r_out), (c_in, c_out) = rows, cols_
                window = out[:, a:b, r_in, c_in]
                window += blocks[:, i, j, a:b, r_out, c_out]  # overlapping windows add up  [eq:col2im]

    split_range(add, n, dcols.size, get_xp(out))  # in pieces of the batch, as im2col
    return out


# --------------------------------------------------------------------------- the two linear maps


def conv2d_apply(x, weight, stride, padding, cols_from=None):
    """A x, the convolution without bias: returns (y (C_out, N·H_out·W_out), cols, (H_out, W_out)).

    ``x`` (N, C_in, H, W), ``weight`` (C_out, C_in, k, k); ``cols`` is im2col(x), which the weight
    gradient needs, in a buffer of ``cols_from``. One matrix product [eq:conv-forward].
    """
    n, c_in, h, w = x.shape
    c_out, _, k, _ = weight.shape
    ho, wo = conv_output_size(h, k, stride, padding), conv_output_size(w, k, stride, padding)
    cols = im2col(x, k, stride, padding, (ho, wo), cols_from)  # (C_in·k·k, N·H_out·W_out)
    y = matmul(weight.reshape(c_out, c_in * k * k), cols)  # (C_out, N·H_out·W_out)  [eq:conv-forward]
    return y, cols, (ho, wo)


def conv2d_adjoint(y, weight, stride, padding, x_hw, work=None):
    """Aᵀ y, the adjoint of ``conv2d_apply``: (N, C_out, H_out, W_out) -> (N, C_in, H, W).

    It is the convolution's gradient with respect to its input (y = dL/d output) and the transposed
    convolution's forward pass (y = its input): one function for both [eq:conv-grad-x]; it satisfies
    ⟨A x, y⟩ = ⟨x, Aᵀ y⟩ [eq:conv-adjoint]. The product
    Wᵀ y gives every window's contribution, col2im adds them up. A batch whose column matrix would
    pass ``MAX_COLUMN_BYTES`` goes through in pieces of images, each one matrix product; the matrix
    lives in a buffer of ``work`` (None: a new array).
    """
    xp = get_xp(y)
    n, c_out, ho, wo = y.shape
    _, c_in, k, _ = weight.shape
    h, w = x_hw
    w_t = weight.reshape(c_out, c_in * k * k).T  # (C_in·k·k, C_out)
    y_mat = channel_major(y)  # (C_out, N·H_out·W_out)
    out = xp.zeros((c_in, n, h, w), dtype=y.dtype)  # channel-major
    per_image = c_in * k * k * ho * wo * y.dtype.itemsize
    step = max(1, min(n, MAX_COLUMN_BYTES // per_image))
    size = c_in * k * k * step * ho * wo
    flat = work.get("dcols", (size,), y.dtype, xp) if work else xp.empty(size, dtype=y.dtype)  # every piece's matrix
    for start in range(0, n, step):
        stop = min(n, start + step)
        dcols = flat[:c_in * k * k * (stop - start) * ho * wo].reshape(c_in * k * k, (stop - start) * ho * wo)
        matmul(w_t, y_mat[:, start * ho * wo:stop * ho * wo], out=dcols)  # [eq:conv-grad-x]
        col2im(dcols, out[:, start:stop], k, stride, padding, (ho, wo))
    return out.transpose(1, 0, 2, 3)  # (N, C_in, H, W), a view


def weight_grad(out_side, cols, out):
    """out_side (C, M) @ colsᵀ (M, K) written into ``out`` (C, K): a kernel gradient [eq:conv-grad-w].

    Computed as its transpose cols @ out_sideᵀ, (K, C): with its long inner dimension M, OpenBLAS runs
    the product in this orientation many times faster than in the other (on this project's 2-core
    machine, while other jobs loaded it: 0.07 s against 2.3 s for (64, 25088) @ (25088, 288) in float32).
    """
    out[...] = matmul(cols, out_side.T).T  # (C, K)
    return out


def add_bias(y, b, axis):
    """y += b, b broadcast along every axis but ``axis`` (the channels): in pieces of channels on host threads."""
    xp = get_xp(y)
    in_pieces(lambda y, b: xp.add(y, b, out=y), y, b, axis=axis)


def bias_grad(dy_cm, out):
    """The sum of dy_cm (C, M) over its second axis into ``out`` (C,): in pieces of channels on host threads.

    On the host each channel's row is summed by a call of its own: NumPy may order a row's additions
    by the rows summed with it (it does when they are not contiguous), and a cut would then change bits.
    """
    xp = get_xp(dy_cm)
    if not is_numpy(xp):  # a GPU: one piece, one call
        xp.sum(dy_cm, axis=1, out=out)
        return
    in_pieces(lambda dy, db: [xp.sum(dy[c:c + 1], axis=1, out=db[c:c + 1]) for c in range(len(dy))], dy_cm, out)


def conv_init(rng, shape, fan_in, fan_out, init, dtype):
    """A kernel of ``shape`` drawn on the host from ``rng``; fan-in C_in·k·k, fan-out C_out·k·k [eq:conv-fan-in]."""
    if init == "glorot":
        limit = math.sqrt(6.0 / (fan_in + fan_out))  # [eq:glorot-init]
        w = rng.uniform(-limit, limit, shape)
    elif init == "he":
        w = rng.normal(0.0, math.sqrt(2.0 / fan_in), shape)  # [eq:he-init]
    elif init == "uniform":
        bound = 1.0 / math.sqrt(fan_in)
        w = rng.uniform(-bound, bound, shape)
    else:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    return w.astype(dtype)


# --------------------------------------------------------------------------- the layers


class _ConvBase(Layer):
    """What both convolutions share: the kernel and bias, their initialization, input checks."""

    def __init__(self, c_in, c_out, kernel, stride, padding, output_padding, *, weight_shape, init, rng, dtype):
        super().__init__()
        name = type(self).__name__
        _check_geometry(name, c_in, c_out, kernel, stride, padding, output_padding)
        if rng is None:
            raise ValueError(f"{name}: pass rng=np.random.default_rng(seed); initialization is seeded explicitly")
        if init not in INITS:
            raise ValueError(f"{name}: init must be one of {INITS}, got {init!r}")
        self.c_in, self.c_out, self.kernel = int(c_in), int(c_out), int(kernel)
        self.stride, self.padding, self.output_padding = int(stride), int(padding), int(output_padding)
        fan_in, fan_out = self.c_in * self.kernel ** 2, self.c_out * self.kernel ** 2  # [eq:conv-fan-in]
        self.params = {"W": conv_init(rng, weight_shape, fan_in, fan_out, init, dtype), "b": np.zeros(c_out, dtype)}
        if init == "uniform":  # the bias too, U(±1/sqrt(fan_in)); PyTorch's default for Conv2d (see ConvTranspose2d)
            bound = 1.0 / math.sqrt(fan_in)
            self.params["b"][...] = rng.uniform(-bound, bound, c_out)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._buffers = Buffers()  # Conv2d: its im2col matrix, kept from forward to backward

    def _check_input(self, x):
        check_array(x, f"{self!r} input x", shape=(None, self.c_in, None, None), finite=False)
        sizes = self.output_hw(tuple(x.shape[2:]))
        if sizes is None:
            raise ShapeError(f"{self!r}: an input of {x.shape[2]}×{x.shape[3]} pixels has no valid output size "
                             f"({self._size_rule()})")
        return sizes

    def _check_dy(self, dy, expected):
        check_array(dy, f"{self!r} upstream gradient dy", shape=expected, finite=False)


class Conv2d(_ConvBase):
    """y = A x + b: C_in -> C_out channels, a k×k kernel moved by ``stride``, ``padding`` zeros around.

    Weights (C_out, C_in, k, k) and bias (C_out,), as PyTorch's ``nn.Conv2d``. ``init``: ``"he"``
    (normal, for ReLU), ``"glorot"`` (uniform) or ``"uniform"`` (U(±1/sqrt(fan_in)) for the weights
    and the bias: PyTorch's default), with fan-in C_in·k·k. ``need_dx=False`` skips dL/dx, which
    the first layer of a network never needs. Input (N, C_in, H, W), output (N, C_out, H_out, W_out).
    """

    def __init__(self, c_in, c_out, kernel, stride=1, padding=0, *, init="he", rng=None, dtype=np.float32,
                 need_dx=True):
        super().__init__(c_in, c_out, kernel, stride, padding, 0, weight_shape=(c_out, c_in, kernel, kernel),
                         init=init, rng=rng, dtype=dtype)
        self.need_dx = need_dx

    def output_hw(self, hw):
        """(H_out, W_out) for an (H, W) input, or None when no window fits."""
        sizes = tuple(conv_output_size(s, self.kernel, self.stride, self.padding) for s in hw)
        return None if None in sizes else sizes

    def _size_rule(self):
        return f"each side plus twice the padding {self.padding} must be at least the kernel {self.kernel}"

    def forward(self, x):
        self._check_input(x)
        n = x.shape[0]
        y, cols, (ho, wo) = conv2d_apply(x, self.params["W"], self.stride, self.padding, self._buffers)
        add_bias(y, self.params["b"][:, None], 0)  # (C_out, N·H_out·W_out)  [eq:conv-forward]
        self._cache = (cols, tuple(x.shape))
        return y.reshape(self.c_out, n, ho, wo).transpose(1, 0, 2, 3)  # (N, C_out, H_out, W_out) view

    def backward(self, dy):
        cols, x_shape = self._cached()
        n, _, h, w = x_shape
        self._check_dy(dy, (n, self.c_out, *self.output_hw((h, w))))
        dy_mat = channel_major(dy)  # (C_out, N·H_out·W_out)
        k2 = self.c_in * self.kernel ** 2
        weight_grad(dy_mat, cols, self.grads["W"].reshape(self.c_out, k2))  # dY colsᵀ  [eq:conv-grad-w]
        bias_grad(dy_mat, self.grads["b"])  # sum over examples and positions  [eq:conv-grad-b]
        if not self.need_dx:
            return None
        return conv2d_adjoint(dy, self.params["W"], self.stride, self.padding, (h, w), WORK)

    def __repr__(self):
        return f"Conv2d({self.c_in}, {self.c_out}, kernel={self.kernel}, stride={self.stride}, padding={self.padding})"


class ConvTranspose2d(_ConvBase):
    """y = Aᵀ x + b, where A is the convolution C_out -> C_in with the same kernel, stride and padding.

    Weights (C_in, C_out, k, k) and bias (C_out,), as PyTorch's ``nn.ConvTranspose2d``. Each side
    grows to (H − 1)·s − 2p + k + output_padding [eq:conv-transpose-output-size]; ``output_padding``
    (less than the stride) adds the rows at the bottom and right that the size formula of a strided
    convolution cannot tell apart. ``init`` as for ``Conv2d``, with fan-in C_in·k·k. So ``"uniform"``
    is not PyTorch's default here: ``nn.ConvTranspose2d`` takes its fan-in from the weight's second
    dimension, C_out·k·k, a bound 1/sqrt(C_out·k·k) (derivations/convolution.md, [eq:conv-fan-in]).
    """

    def __init__(self, c_in, c_out, kernel, stride=1, padding=0, output_padding=0, *, init="he", rng=None,
                 dtype=np.float32):
        super().__init__(c_in, c_out, kernel, stride, padding, output_padding,
                         weight_shape=(c_in, c_out, kernel, kernel), init=init, rng=rng, dtype=dtype)

    def output_hw(self, hw):
        """(H_out, W_out) for an (H, W) input, or None when a side would come out below 1 pixel."""
        sizes = tuple(conv_transpose_output_size(s, self.kernel, self.stride, self.padding, self.output_padding)
                      for s in hw)
        return None if min(sizes) < 1 else sizes

    def _size_rule(self):
        return (f"(side − 1)·{self.stride} − 2·{self.padding} + {self.kernel} + {self.output_padding} "
                f"must be at least 1")

    def forward(self, x):
        h_out, w_out = self._check_input(x)
        y = conv2d_adjoint(x, self.params["W"], self.stride, self.padding, (h_out, w_out),
                           WORK)  # (N, C_out, H_out, W_out)  [eq:conv-transpose]
        add_bias(y, self.params["b"][None, :, None, None], 1)
        self._cache = x
        return y

    def backward(self, dy):
        x = self._cached()
        n, _, h, w = x.shape
        self._check_dy(dy, (n, self.c_out, *self.output_hw((h, w))))
        # dL/dx = A dy, the convolution itself; its im2col matrix also gives dL/dW.
        dx, cols, _ = conv2d_apply(dy, self.params["W"], self.stride, self.padding, WORK)  # (C_in, N·H·W)
        k2 = self.c_out * self.kernel ** 2
        weight_grad(channel_major(x), cols, self.grads["W"].reshape(self.c_in, k2))  # X cols(dy)ᵀ  [eq:conv-transpose-grad-w]
        bias_grad(channel_major(dy), self.grads["b"])  # [eq:conv-grad-b]
        return dx.reshape(self.c_in, n, h, w).transpose(1, 0, 2, 3)  # (N, C_in, H, W)  [eq:conv-transpose-grad-x]

    def __repr__(self):
        return (f"ConvTranspose2d({self.c_in}, {self.c_out}, kernel={self.kernel}, stride={self.stride}, "
                f"padding={self.padding}, output_padding={self.output_padding})")
