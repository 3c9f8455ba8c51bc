"""Tests for the convolution layers (tinyvae/layers/conv.py) and the reshapes between image and vector.

* both convolutions' backward passes against float64 central differences over hypothesis-drawn
  shapes, channels, kernels, strides, paddings and output paddings;
* the adjoint identity ⟨A x, y⟩ = ⟨x, Aᵀ y⟩ as a property, im2col against a direct loop;
* the transposed convolution's forward is the convolution's input gradient, one function;
* planted bugs (kernel not transposed, kernel not rotated, col2im's stride, overlaps overwritten,
  bias gradient missing) each caught by the checker, which names the wrong gradient;
* errors for impossible geometries and wrong shapes; backend-cleanliness on the strict namespace.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strict_xp import strict_ns
from tinyvae import backend
from tinyvae.checks import ShapeError
from tinyvae.learn.gradcheck import check_layer
from tinyvae.nn import Conv2d, ConvTranspose2d, Flatten, ReLU, Sequential, Unflatten, col2im, conv2d_adjoint, im2col
from tinyvae.nn import conv
from tinyvae.nn.conv import conv_output_size, conv_transpose_output_size

F64 = np.float64
GRADCHECK = settings(max_examples=20, deadline=None)


@st.composite
def conv_geometry(draw, transposed=False):
    """(N, C_in, C_out, k, s, p, output_padding, H, W) of a layer with a valid output size."""
    n, c_in, c_out = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k, s = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    p = draw(st.integers(0, k))
    op = draw(st.integers(0, s - 1)) if transposed else 0
    if transposed:  # the output (H − 1)s − 2p + k + op must be at least 1
        low = max(1, -(-(2 * p - k - op + 1) // s) + 1)
        h, w = draw(st.integers(low, low + 3)), draw(st.integers(low, low + 3))
    else:  # H + 2p must be at least k
        low = max(1, k - 2 * p)
        h, w = draw(st.integers(low, low + 4)), draw(st.integers(low, low + 4))
    return n, c_in, c_out, k, s, p, op, h, w


def make(transposed, geometry, seed, init="uniform"):
    n, c_in, c_out, k, s, p, op, h, w = geometry
    rng = np.random.default_rng(seed)
    if transposed:
        layer = ConvTranspose2d(c_in, c_out, k, s, p, op, init=init, rng=rng, dtype=F64)
    else:
        layer = Conv2d(c_in, c_out, k, s, p, init=init, rng=rng, dtype=F64)
    layer.params["b"][...] = rng.standard_normal(c_out)
    return layer, rng.standard_normal((n, c_in, h, w)), rng


# --------------------------------------------------------------------------- gradient checks


@GRADCHECK
@given(geometry=conv_geometry(), seed=st.integers(0, 2**32 - 1))
def test_conv2d_backward_matches_central_differences_for_any_geometry(geometry, seed, gradcheck_passes):
    layer, x, rng = make(False, geometry, seed)
    report = gradcheck_passes(check_layer(layer, x, rng))
    assert [r.name for r in report.results] == ["W", "b", "x"]


@GRADCHECK
@given(geometry=conv_geometry(transposed=True), seed=st.integers(0, 2**32 - 1))
def test_conv_transpose2d_backward_matches_central_differences_for_any_geometry(geometry, seed, gradcheck_passes):
    layer, x, rng = make(True, geometry, seed)
    report = gradcheck_passes(check_layer(layer, x, rng))
    assert [r.name for r in report.results] == ["W", "b", "x"]


def test_a_conv_stack_with_reshapes_matches_central_differences(gradcheck_passes):
    rng = np.random.default_rng(0)
    net = Sequential([Unflatten((1, 6, 6)), Conv2d(1, 2, 3, 2, 1, rng=rng, dtype=F64, need_dx=False),
                      Conv2d(2, 3, 3, 2, 1, rng=rng, dtype=F64), Flatten(),
                      Unflatten((3, 2, 2)), ConvTranspose2d(3, 2, 3, 2, 1, 1, rng=rng, dtype=F64),
                      ConvTranspose2d(2, 1, 3, 1, 1, rng=rng, dtype=F64), Flatten()])
    y = net.forward(rng.standard_normal((2, 36)))
    assert y.shape == (2, 16)
    report = gradcheck_passes(check_layer(net, rng.standard_normal((2, 36)), rng))
    assert {r.name for r in report.results} == {f"{i}.{k}" for i in (1, 2, 5, 6) for k in "Wb"}  # need_dx=False


def test_a_conv_stack_split_into_pieces_on_host_threads_matches_central_differences(gradcheck_passes, monkeypatch):
    monkeypatch.setattr(backend, "MIN_SPLIT_ELEMENTS", 1)  # im2col, col2im, ReLUs and bias sums in pieces
    monkeypatch.setenv("TINYVAE_THREADS", "3")
    rng = np.random.default_rng(1)
    net = Sequential([Unflatten((1, 6, 6)), Conv2d(1, 3, 3, 2, 1, rng=rng, dtype=F64, need_dx=False), ReLU(),
                      ConvTranspose2d(3, 2, 3, 2, 1, 1, rng=rng, dtype=F64), ReLU(),
                      ConvTranspose2d(2, 1, 3, 1, 1, rng=rng, dtype=F64), Flatten()])
    for layer in net.layers[1::2]:  # biases off zero: a ReLU input of exactly 0 (a bias alone) sits on its kink
        layer.params["b"][...] = rng.standard_normal(layer.params["b"].shape)
    report = gradcheck_passes(check_layer(net, rng.standard_normal((5, 36)), rng))
    assert {r.name for r in report.results} == {f"{i}.{k}" for i in (1, 3, 5) for k in "Wb"}


def test_the_first_conv_layer_without_need_dx_still_writes_its_parameter_gradients():
    layer, x, rng = make(False, (2, 2, 3, 3, 2, 1, 0, 5, 5), 0)
    full, _, _ = make(False, (2, 2, 3, 3, 2, 1, 0, 5, 5), 0)
    layer.need_dx = False
    dy = rng.standard_normal(layer.forward(x).shape)
    assert layer.backward(dy) is None
    full.forward(x)
    full.backward(dy)
    np.testing.assert_array_equal(layer.grads["W"], full.grads["W"])
    np.testing.assert_array_equal(layer.grads["b"], full.grads["b"])


# --------------------------------------------------------------------------- the math


def direct_conv(x, weight, stride, padding):
    """The convolution by its definition, one output entry at a time (the reference for im2col)."""
    n, c_in, h, w = x.shape
    c_out, _, k, _ = weight.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho, wo = conv_output_size(h, k, stride, padding), conv_output_size(w, k, stride, padding)
    y = np.zeros((n, c_out, ho, wo))
    for u in range(ho):
        for v in range(wo):
            window = xp[:, :, stride * u:stride * u + k, stride * v:stride * v + k]  # (N, C_in, k, k)
            y[:, :, u, v] = np.einsum("ncij,ocij->no", window, weight)
    return y


@settings(max_examples=30, deadline=None)
@given(geometry=conv_geometry(), seed=st.integers(0, 2**32 - 1))
def test_im2col_convolution_equals_the_direct_loop(geometry, seed):
    layer, x, _ = make(False, geometry, seed)
    expected = direct_conv(x, layer.params["W"], layer.stride, layer.padding) + layer.params["b"][:, None, None]
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(geometry=conv_geometry(), seed=st.integers(0, 2**32 - 1))
def test_the_adjoint_identity_holds_for_any_geometry(geometry, seed):
    """⟨A x, y⟩ = ⟨x, Aᵀ y⟩ for the convolution A and conv2d_adjoint, and for im2col and col2im."""
    n, c_in, c_out, k, s, p, _, h, w = geometry
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((c_out, c_in, k, k))
    x = rng.standard_normal((n, c_in, h, w))
    ax, cols, (ho, wo) = conv.conv2d_apply(x, weight, s, p)
    y = rng.standard_normal((n, c_out, ho, wo))
    lhs = float(np.sum(ax.reshape(c_out, n, ho, wo).transpose(1, 0, 2, 3) * y))
    rhs = float(np.sum(x * conv2d_adjoint(y, weight, s, p, (h, w))))
    # relative to Σ |A| |x| |y|, the size of the terms both sides add up
    scale = float(np.sum(direct_conv(np.abs(x), np.abs(weight), s, p) * np.abs(y)))
    assert abs(lhs - rhs) <= 1e-12 * scale
    c = rng.standard_normal(cols.shape)
    folded = col2im(c, np.zeros((c_in, n, h, w)), k, s, p, (ho, wo))
    lhs, rhs = float(np.sum(im2col(x, k, s, p, (ho, wo)) * c)), float(np.sum(x.transpose(1, 0, 2, 3) * folded))
    assert abs(lhs - rhs) <= 1e-12 * float(np.sum(np.abs(im2col(x, k, s, p, (ho, wo)) * c)))


def test_the_transposed_convolution_forward_is_the_convolution_input_gradient(monkeypatch):
    rng = np.random.default_rng(2)
    c = Conv2d(3, 4, 3, 2, 1, rng=rng, dtype=F64)
    t = ConvTranspose2d(4, 3, 3, 2, 1, 1, rng=rng, dtype=F64)
    t.params["W"][...] = c.params["W"]  # the same (4, 3, 3, 3) kernel
    t.params["b"][...] = 0.0
    x = rng.standard_normal((2, 3, 8, 8))
    dy = rng.standard_normal(c.forward(x).shape)
    np.testing.assert_array_equal(t.forward(dy), c.backward(dy))  # bit for bit: the same arithmetic
    calls = []
    original = conv.conv2d_adjoint
    monkeypatch.setattr(conv, "conv2d_adjoint", lambda *a: calls.append(a) or original(*a))
    c.forward(x)
    c.backward(dy)
    t.forward(dy)
    assert len(calls) == 2  # one function serves both


def test_sizes_follow_the_output_size_formulas():
    assert conv_output_size(28, 3, 2, 1) == 14 and conv_output_size(14, 3, 2, 1) == 7
    assert conv_output_size(2, 5, 1, 1) is None
    assert conv_transpose_output_size(7, 3, 2, 1, 1) == 14 and conv_transpose_output_size(14, 3, 2, 1, 1) == 28
    rng = np.random.default_rng(0)
    assert Conv2d(1, 2, 3, 2, 1, rng=rng).forward(np.zeros((1, 1, 28, 28), np.float32)).shape == (1, 2, 14, 14)
    layer = ConvTranspose2d(2, 1, 3, 2, 1, 1, rng=rng)
    assert layer.forward(np.zeros((1, 2, 7, 7), np.float32)).shape == (1, 1, 14, 14)


def test_large_batches_go_through_in_pieces_with_the_same_result(monkeypatch):
    layer, x, rng = make(True, (7, 3, 2, 3, 2, 1, 1, 4, 5), 3)
    y = layer.forward(x)
    dx = layer.backward(dy := rng.standard_normal(y.shape))
    monkeypatch.setattr(conv, "MAX_COLUMN_BYTES", 2 * 2 * 9 * 4 * 5 * 8)  # two images per piece
    np.testing.assert_allclose(layer.forward(x), y, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(layer.backward(dy), dx, rtol=1e-14, atol=1e-14)


def test_a_later_call_does_not_overwrite_an_earlier_result():
    for transposed in (False, True):
        layer, x, rng = make(transposed, (2, 2, 3, 3, 2, 1, 1 if transposed else 0, 5, 5), 0)
        y1 = layer.forward(x)
        keep = y1.copy()
        dx1 = layer.backward(rng.standard_normal(y1.shape))
        keep_dx = dx1.copy()
        layer.forward(rng.standard_normal(x.shape))
        layer.backward(rng.standard_normal(y1.shape))
        np.testing.assert_array_equal(y1, keep)
        np.testing.assert_array_equal(dx1, keep_dx)


@pytest.mark.parametrize("init", ["he", "glorot", "uniform"])
def test_conv_init_uses_the_fan_in_of_input_channels_times_kernel_area(init):
    c_in, c_out, k = 16, 24, 3
    for layer in (Conv2d(c_in, c_out, k, init=init, rng=np.random.default_rng(0), dtype=F64),
                  ConvTranspose2d(c_in, c_out, k, init=init, rng=np.random.default_rng(0), dtype=F64)):
        w, fan_in, fan_out = layer.params["W"], c_in * k * k, c_out * k * k
        if init == "he":
            assert abs(w.std() - np.sqrt(2 / fan_in)) < 0.05 * np.sqrt(2 / fan_in)
            assert np.all(layer.params["b"] == 0)
        elif init == "glorot":
            limit = np.sqrt(6 / (fan_in + fan_out))
            assert limit * 0.95 < np.abs(w).max() <= limit
        else:
            assert 0.95 / np.sqrt(fan_in) < np.abs(w).max() <= 1 / np.sqrt(fan_in)
            assert 0 < np.abs(layer.params["b"]).max() <= 1 / np.sqrt(fan_in)


def test_the_same_seed_gives_the_same_kernel():
    a = Conv2d(2, 3, 3, rng=np.random.default_rng(7))
    b = Conv2d(2, 3, 3, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.params["W"], b.params["W"])
    assert a.params["W"].dtype == np.float32


# --------------------------------------------------------------------------- planted bugs


def adjoint_by_full_convolution(y, weight, stride, padding, x_hw, rotate=True):
    """Aᵀ y the textbook way: spread y out by the stride, pad by k − 1 − p, and run a stride-1
    convolution with the channel-swapped kernel, rotated by 180° (needs p < k)."""
    n, c_out, ho, wo = y.shape
    k = weight.shape[2]
    h, w = x_hw
    spread = np.zeros((n, c_out, (ho - 1) * stride + 1, (wo - 1) * stride + 1))
    spread[:, :, ::stride, ::stride] = y
    lo = k - 1 - padding
    padded = np.pad(spread, ((0, 0), (0, 0), (lo, h + padding - 1 - (ho - 1) * stride),
                             (lo, w + padding - 1 - (wo - 1) * stride)))
    kernel = weight.transpose(1, 0, 2, 3)
    if rotate:
        kernel = kernel[:, :, ::-1, ::-1]
    return direct_conv(padded, np.ascontiguousarray(kernel), 1, 0)


def test_the_full_convolution_with_the_rotated_kernel_is_the_adjoint():
    rng = np.random.default_rng(8)
    weight, y = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal((2, 3, 4, 4))
    np.testing.assert_allclose(adjoint_by_full_convolution(y, weight, 2, 1, (8, 8)),
                               conv2d_adjoint(y, weight, 2, 1, (8, 8)), rtol=1e-12, atol=1e-12)


def plant_kernel_not_transposed(monkeypatch):
    """Wᵀ written as a reshape of W to (C_in·k·k, C_out): the right shape, the wrong entries."""
    def adjoint(y, weight, stride, padding, x_hw, work=None):
        c_out, c_in, k, _ = weight.shape
        cols = weight.reshape(c_in * k * k, c_out) @ conv.channel_major(y)
        out = np.zeros((c_in, y.shape[0], *x_hw))
        return col2im(cols, out, k, stride, padding, y.shape[2:]).transpose(1, 0, 2, 3)
    monkeypatch.setattr(conv, "conv2d_adjoint", adjoint)


def plant_kernel_not_rotated(monkeypatch):
    monkeypatch.setattr(conv, "conv2d_adjoint", lambda y, weight, stride, padding, x_hw, work=None:
                        adjoint_by_full_convolution(y, weight, stride, padding, x_hw, rotate=False))


def planted_col2im(place):
    """col2im as tinyvae writes it, with ``place(out, block, r_in, c_in, stride)`` putting each block."""
    def col2im_bug(dcols, out, kernel, stride, padding, out_hw):
        c, n, h, w = out.shape
        blocks = dcols.reshape(c, kernel, kernel, n, *out_hw)
        for i in range(kernel):
            for j in range(kernel):
                rows, cols_ = conv.span(h, out_hw[0], i, stride, padding), conv.span(w, out_hw[1], j, stride, padding)
                if rows and cols_:
                    place(out, blocks[:, i, j, :, rows[1], cols_[1]], rows[0], cols_[0], stride)
        return out
    return col2im_bug


def plant_col2im_ignores_the_stride(monkeypatch):
    """Each kernel offset's block lands on consecutive pixels instead of every s-th one."""
    def place(out, block, r_in, c_in, stride):
        rows, cols_ = block.shape[2:]
        out[:, :, r_in.start:r_in.start + rows, c_in.start:c_in.start + cols_] += block
    monkeypatch.setattr(conv, "col2im", planted_col2im(place))


def plant_overlaps_overwritten(monkeypatch):
    """Each kernel offset assigns its block: where windows overlap, the last one wins."""
    def place(out, block, r_in, c_in, stride):
        out[:, :, r_in, c_in] = block
    monkeypatch.setattr(conv, "col2im", planted_col2im(place))


def plant_missing_bias_gradient(monkeypatch):
    """The bias gradient is never written: it keeps whatever was there (zeros)."""
    for cls in (Conv2d, ConvTranspose2d):
        original = cls.backward

        def backward(self, dy, original=original):
            saved = self.grads["b"].copy()
            dx = original(self, dy)
            self.grads["b"][...] = saved
            return dx
        monkeypatch.setattr(cls, "backward", backward)


PLANTS = {
    "kernel not transposed": (plant_kernel_not_transposed, {"x"}, {"W", "x"}),
    "kernel not rotated": (plant_kernel_not_rotated, {"x"}, {"W", "x"}),
    "col2im ignores the stride": (plant_col2im_ignores_the_stride, {"x"}, {"W", "x"}),
    "overlaps overwritten": (plant_overlaps_overwritten, {"x"}, {"W", "x"}),
    "bias gradient missing": (plant_missing_bias_gradient, {"b"}, {"b"}),
}


@pytest.mark.parametrize("plant, wrong_conv, wrong_transposed", PLANTS.values(), ids=PLANTS.keys())
def test_the_checker_catches_each_planted_bug_and_names_the_wrong_gradient(plant, wrong_conv, wrong_transposed,
                                                                           monkeypatch):
    # square channels, a 3×3 kernel with stride 2: every planted bug changes some number here
    conv_layer, x, rng = make(False, (2, 3, 3, 3, 2, 1, 0, 6, 6), 11)
    transposed, xt, rng_t = make(True, (2, 3, 3, 3, 2, 1, 1, 3, 3), 12)
    honest = check_layer(conv_layer, x, rng), check_layer(transposed, xt, rng_t)
    assert all(rep.passed for rep in honest)
    plant(monkeypatch)
    for layer, inputs, wrong, seed in ((conv_layer, x, wrong_conv, 13), (transposed, xt, wrong_transposed, 14)):
        report = check_layer(layer, inputs, np.random.default_rng(seed))
        assert {r.name for r in report.results if r.rel_error > report.tol} == wrong, f"\n{report}"
        assert "<-- wrong" in str(report)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("args, message", [
    ((0, 2, 3), r"Conv2d: c_in must be an integer >= 1, got 0"),
    ((1, 2, 3, 0), r"stride must be an integer >= 1, got 0"),
    ((1, 2, 3, 1, -1), r"padding must be an integer >= 0, got -1"),
    ((1, 2, 2.5), r"kernel must be an integer >= 1, got 2.5"),
])
def test_conv2d_refuses_impossible_geometry_naming_the_value(args, message):
    with pytest.raises(ValueError, match=message):
        Conv2d(*args, rng=np.random.default_rng(0))


def test_conv_transpose2d_refuses_an_output_padding_not_smaller_than_the_stride():
    with pytest.raises(ValueError, match=r"ConvTranspose2d: output_padding must be smaller than stride, got "
                                         r"output_padding 2 with stride 2"):
        ConvTranspose2d(1, 1, 3, 2, 1, 2, rng=np.random.default_rng(0))


def test_conv_layers_need_an_explicit_generator_and_a_known_init():
    with pytest.raises(ValueError, match=r"Conv2d: pass rng=np.random.default_rng"):
        Conv2d(1, 2, 3)
    with pytest.raises(ValueError, match=r"ConvTranspose2d: init must be one of .*got 'xavier'"):
        ConvTranspose2d(1, 2, 3, init="xavier", rng=np.random.default_rng(0))


def test_an_input_too_small_for_the_kernel_is_an_error_naming_sizes():
    layer = Conv2d(1, 2, 5, 1, 1, rng=np.random.default_rng(0))
    with pytest.raises(ShapeError, match=r"Conv2d\(1, 2, kernel=5, stride=1, padding=1\): an input of 2×2 pixels "
                                         r"has no valid output size \(each side plus twice the padding 1 must be "
                                         r"at least the kernel 5\)"):
        layer.forward(np.zeros((1, 1, 2, 2), np.float32))
    t = ConvTranspose2d(1, 1, 3, 1, 2, rng=np.random.default_rng(0))
    with pytest.raises(ShapeError, match=r"an input of 1×1 pixels has no valid output size"):
        t.forward(np.zeros((1, 1, 1, 1), np.float32))


@pytest.mark.parametrize("shape, message", [
    ((2, 3, 5, 5), r"Conv2d\(1, 2, .*\) input x: expected size 1 along axis 1, got shape \(2, 3, 5, 5\)"),
    ((2, 25), r"Conv2d\(1, 2, .*\) input x: expected shape \(N, 1, N, N\), got \(2, 25\)"),
])
def test_conv2d_refuses_inputs_of_the_wrong_shape(shape, message):
    with pytest.raises(ShapeError, match=message):
        Conv2d(1, 2, 3, rng=np.random.default_rng(0)).forward(np.zeros(shape, np.float32))


def test_backward_with_a_wrong_upstream_shape_or_before_forward_is_an_error():
    for layer in (Conv2d(1, 2, 3, rng=np.random.default_rng(0)), ConvTranspose2d(1, 2, 3, rng=np.random.default_rng(0))):
        name = type(layer).__name__
        with pytest.raises(RuntimeError, match=f"{name}.backward called before forward"):
            layer.backward(np.zeros((1, 2, 3, 3), np.float32))
        y = layer.forward(np.zeros((1, 1, 5, 5), np.float32))
        with pytest.raises(ShapeError, match=r"upstream gradient dy: expected size .*got shape \(1, 2, 4, 4\)"):
            layer.backward(np.zeros((1, 2, 4, 4), np.float32))
        assert layer.backward(np.zeros(y.shape, np.float32)).shape == (1, 1, 5, 5)


def test_flatten_and_unflatten_are_inverse_reshapes_with_clear_errors(gradcheck_passes):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 5))
    flat = Flatten()
    np.testing.assert_array_equal(flat.forward(x), x.reshape(2, 60))
    gradcheck_passes(check_layer(flat, x, rng))
    gradcheck_passes(check_layer(Unflatten((3, 4, 5)), x.reshape(2, 60), rng))
    with pytest.raises(ShapeError, match=r"Unflatten input x: expected size 60 along axis 1, got shape \(2, 59\)"):
        Unflatten((3, 4, 5)).forward(np.zeros((2, 59)))
    with pytest.raises(RuntimeError, match="Flatten.backward called before forward"):
        Flatten().backward(np.zeros((2, 60)))


# --------------------------------------------------------------------------- backend-clean


def to_device(layer, xp):
    for key in list(layer.params):
        layer.params[key] = backend.to_device(layer.params[key], xp)
        layer.grads[key] = backend.to_device(layer.grads[key], xp)
    return layer


@pytest.mark.parametrize("transposed", [False, True], ids=["Conv2d", "ConvTranspose2d"])
def test_conv_layers_run_on_device_arrays_and_agree_with_numpy(transposed, device_xp):
    geometry = (3, 2, 3, 3, 2, 1, 1 if transposed else 0, 5, 6)
    host, x, rng = make(transposed, geometry, 4)
    dev = to_device(make(transposed, geometry, 4)[0], device_xp)
    y = host.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = host.backward(dy)
    y_dev = dev.forward(backend.to_device(x, device_xp))
    dx_dev = dev.backward(backend.to_device(dy, device_xp))
    assert backend.get_xp(y_dev) is device_xp and backend.get_xp(dx_dev) is device_xp
    np.testing.assert_allclose(backend.to_numpy(y_dev), y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(dx_dev), dx, rtol=1e-12, atol=1e-12)
    for key in host.grads:
        np.testing.assert_allclose(backend.to_numpy(dev.grads[key]), host.grads[key], rtol=1e-12, atol=1e-12)


def test_the_strict_namespace_refuses_a_stray_numpy_call_in_a_conv_layer(monkeypatch):
    layer, x, _ = make(False, (1, 1, 2, 3, 1, 1, 0, 4, 4), 0)
    to_device(layer, strict_ns)
    monkeypatch.setattr(conv, "channel_major", lambda y: np.ascontiguousarray(y).reshape(y.shape[1], -1))
    layer.forward(strict_ns.asarray(x))
    with pytest.raises(TypeError, match="not allowed"):
        layer.backward(strict_ns.asarray(np.ones((1, 2, 4, 4))))


@pytest.mark.parametrize("transposed", [False, True], ids=["Conv2d", "ConvTranspose2d"])
def test_im2col_col2im_and_the_bias_split_across_threads_give_the_same_numbers(transposed, monkeypatch):
    layer, x, rng = make(transposed, (5, 3, 2, 3, 2, 1, 1 if transposed else 0, 6, 7), 9)
    y = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    monkeypatch.setattr(backend, "MIN_SPLIT_ELEMENTS", 1)  # im2col, col2im in pieces of the batch, bias by channels
    monkeypatch.setenv("TINYVAE_THREADS", "3")
    np.testing.assert_array_equal(layer.forward(x), y)
    np.testing.assert_array_equal(layer.backward(dy), dx)
    for key, value in grads.items():
        np.testing.assert_array_equal(layer.grads[key], value)


@pytest.mark.parametrize("layout", ["rows contiguous", "columns contiguous"])
def test_the_bias_sum_has_the_same_bits_in_any_number_of_pieces_of_channels(layout, monkeypatch):
    dy = np.random.default_rng(13).standard_normal((3, 4096), dtype=np.float32)
    if layout == "columns contiguous":
        dy = np.asfortranarray(dy)  # NumPy adds such rows up in another order when it sums several at once
    monkeypatch.setattr(backend, "MIN_SPLIT_ELEMENTS", 1)
    sums = {}
    for count in ("1", "2", "3"):
        monkeypatch.setenv("TINYVAE_THREADS", count)
        sums[count] = np.empty(3, dtype=np.float32)
        conv.bias_grad(dy, sums[count])
    np.testing.assert_array_equal(sums["2"], sums["1"])
    np.testing.assert_array_equal(sums["3"], sums["1"])
