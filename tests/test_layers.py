"""Tests for tinyvae.nn: every backward pass against central differences (float64, hypothesis
over shapes and values), the forward semantics, the errors, and backend-cleanliness on the strict
stand-in namespace (and on CuPy where a GPU is present).
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyvae import backend
from tinyvae.checks import ShapeError
from tinyvae.learn.gradcheck import check_layer
from tinyvae.nn import (ACTIVATIONS, Dense, LeakyReLU, ReLU, Sequential, Sigmoid, Softplus, Tanh, activation,
                            init_weights, mlp, sigmoid)

F64 = np.float64
GRADCHECK = settings(max_examples=25, deadline=None)
dims = st.integers(1, 6)


def floats_in(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@st.composite
def matrices(draw, lo=-5.0, hi=5.0, shape=None):
    shape = shape or (draw(dims), draw(dims))
    return draw(hnp.arrays(F64, shape, elements=floats_in(lo, hi)))


@st.composite
def away_from_zero(draw, margin=1e-3, hi=5.0):
    """Inputs at least ``margin`` from ReLU's kink: the ±h perturbations never cross it."""
    shape = (draw(dims), draw(dims))
    mags = draw(hnp.arrays(F64, shape, elements=floats_in(margin, hi)))
    signs = draw(hnp.arrays(np.bool_, shape))
    return np.where(signs, mags, -mags)


# --------------------------------------------------------------------------- gradient checks


@GRADCHECK
@given(n=dims, d_in=dims, d_out=dims, init=st.sampled_from(["glorot", "he", "uniform"]),
       data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_dense_backward_matches_finite_differences_for_any_shape_and_init(n, d_in, d_out, init, data, seed,
                                                                         gradcheck_passes):
    rng = np.random.default_rng(seed)
    x = data.draw(matrices(shape=(n, d_in)))
    assume(np.abs(x).max() > 1e-2)  # dL/dW = xᵀ dy vanishes with x: nothing left to compare
    dense = Dense(d_in, d_out, init=init, rng=rng, dtype=F64)
    dense.params["b"][...] = rng.standard_normal(d_out)
    report = gradcheck_passes(check_layer(dense, x, rng))
    assert [r.name for r in report.results] == ["W", "b", "x"]


@GRADCHECK
@given(x=away_from_zero(), seed=st.integers(0, 2**32 - 1))
def test_relu_backward_matches_finite_differences_away_from_the_kink(x, seed, gradcheck_passes):
    gradcheck_passes(check_layer(ReLU(), x, np.random.default_rng(seed)))


@GRADCHECK
@given(x=away_from_zero(), slope=floats_in(0.0, 0.99), seed=st.integers(0, 2**32 - 1))
def test_leaky_relu_backward_matches_finite_differences_away_from_the_kink(x, slope, seed, gradcheck_passes):
    gradcheck_passes(check_layer(LeakyReLU(slope), x, np.random.default_rng(seed)))


# Tanh and sigmoid inputs stay within ±4: further out the slope is so small that the round-off
# of f (≈ 1e-16·|f| / h) rivals it and a float64 central difference measures nothing.
@GRADCHECK
@given(x=matrices(-4.0, 4.0), seed=st.integers(0, 2**32 - 1))
def test_tanh_backward_matches_finite_differences(x, seed, gradcheck_passes):
    gradcheck_passes(check_layer(Tanh(), x, np.random.default_rng(seed)))


@GRADCHECK
@given(x=matrices(-4.0, 4.0), seed=st.integers(0, 2**32 - 1))
def test_sigmoid_backward_matches_finite_differences(x, seed, gradcheck_passes):
    gradcheck_passes(check_layer(Sigmoid(), x, np.random.default_rng(seed)))


@GRADCHECK
@given(x=matrices(-8.0, 8.0), seed=st.integers(0, 2**32 - 1))
def test_softplus_backward_matches_finite_differences(x, seed, gradcheck_passes):
    gradcheck_passes(check_layer(Softplus(), x, np.random.default_rng(seed)))


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "softplus", "leaky_relu"])
def test_mlp_backward_matches_finite_differences_through_every_layer(act, gradcheck_passes):
    rng = np.random.default_rng(1)
    net = mlp([4, 5, 3, 2], act, rng=rng, dtype=F64)
    report = gradcheck_passes(check_layer(net, rng.standard_normal((3, 4)), rng))
    assert {r.name for r in report.results} == {"0.W", "0.b", "2.W", "2.b", "4.W", "4.b", "x"}


# --------------------------------------------------------------------------- forward semantics


def test_dense_computes_x_times_w_plus_b():
    rng = np.random.default_rng(0)
    dense = Dense(3, 2, rng=rng, dtype=F64)
    dense.params["b"][...] = [1.0, -1.0]
    x = rng.standard_normal((4, 3))
    np.testing.assert_allclose(dense.forward(x), x @ dense.params["W"] + [1.0, -1.0], rtol=1e-14)


def test_dense_without_need_dx_writes_parameter_gradients_and_returns_nothing():
    rng = np.random.default_rng(0)
    dense = Dense(3, 2, rng=rng, dtype=F64, need_dx=False)
    x, dy = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    dense.forward(x)
    assert dense.backward(dy) is None
    np.testing.assert_allclose(dense.grads["W"], x.T @ dy, rtol=1e-14)
    np.testing.assert_allclose(dense.grads["b"], dy.sum(axis=0), rtol=1e-14)


@pytest.mark.parametrize("init, d_in, d_out", [("glorot", 30, 20), ("he", 50, 40), ("uniform", 25, 10)])
def test_dense_init_draws_weights_at_the_documented_scale(init, d_in, d_out):
    w = init_weights(np.random.default_rng(0), d_in, d_out, init, F64)
    assert w.shape == (d_in, d_out) and w.dtype == F64
    if init == "glorot":
        limit = np.sqrt(6.0 / (d_in + d_out))
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.9 * limit
    elif init == "he":
        assert abs(w.std() - np.sqrt(2.0 / d_in)) < 0.1 * np.sqrt(2.0 / d_in)
    else:
        assert np.abs(w).max() <= 1 / np.sqrt(d_in)


def test_dense_uniform_init_draws_the_bias_like_pytorch_linear():
    dense = Dense(16, 8, init="uniform", rng=np.random.default_rng(0), dtype=F64)
    b = dense.params["b"]
    assert np.all(np.abs(b) <= 0.25) and np.any(b != 0)


def test_activations_compute_their_formulas():
    x = np.array([[-2.0, -0.5, 0.5, 2.0]])
    np.testing.assert_array_equal(ReLU().forward(x), [[0, 0, 0.5, 2.0]])
    np.testing.assert_allclose(LeakyReLU(0.1).forward(x), [[-0.2, -0.05, 0.5, 2.0]], rtol=1e-14)
    np.testing.assert_allclose(Tanh().forward(x), np.tanh(x), rtol=1e-14)
    np.testing.assert_allclose(Sigmoid().forward(x), 1 / (1 + np.exp(-x)), rtol=1e-14)
    np.testing.assert_allclose(Softplus().forward(x), np.log1p(np.exp(x)), rtol=1e-14)


def test_sigmoid_and_softplus_neither_overflow_nor_drift_in_the_tails():
    x = np.array([[-1000.0, -40.0, -20.0, 0.0, 20.0, 40.0, 1000.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        s = sigmoid(x)
        sp = Softplus().forward(x)
    exact = np.array([[0.0, 4.248354255291589e-18, 2.0611536181902037e-09, 0.5, 1 - 2.0611536181902037e-09, 1.0, 1.0]])
    # σ is accurate to an ulp of 1 (what a probability in [0, 1] needs), not relatively in the
    # negative tail: it is computed as 1 − σ(|x|) there.
    np.testing.assert_allclose(s, exact, rtol=0, atol=2.0**-53)
    np.testing.assert_array_equal(s[0, [0, 3, 6]], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(sp, [[0.0, np.exp(-40.0), np.log1p(np.exp(-20.0)), np.log(2.0), 20.0 + np.log1p(np.exp(-20.0)),
                                     40.0, 1000.0]], rtol=1e-15, atol=0)


def test_activation_layers_keep_float32_as_float32():
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
    for name in ACTIVATIONS:
        layer = activation(name)
        y = layer.forward(x)
        assert y.dtype == np.float32, name
        assert layer.backward(np.ones_like(y)).dtype == np.float32, name


def test_mlp_puts_an_activation_between_dense_layers_and_none_after_the_last():
    net = mlp([4, 5, 3, 2], "tanh", rng=np.random.default_rng(0))
    assert [type(layer) for layer in net.layers] == [Dense, Tanh, Dense, Tanh, Dense]
    assert list(net.params) == ["0.W", "0.b", "2.W", "2.b", "4.W", "4.b"]
    assert net.params["2.W"] is net.layers[2].params["W"]  # the very arrays, not copies


def test_mlp_first_layer_can_skip_the_input_gradient():
    rng = np.random.default_rng(0)
    net = mlp([4, 3, 2], "relu", rng=rng, dtype=F64, first_needs_dx=False)
    net.forward(rng.standard_normal((2, 4)))
    assert net.backward(np.ones((2, 2))) is None


# --------------------------------------------------------------------------- errors


def every_layer():
    rng = np.random.default_rng(0)
    return [Dense(3, 2, rng=rng), ReLU(), LeakyReLU(), Tanh(), Sigmoid(), Softplus(),
            Sequential([Dense(3, 2, rng=rng), Tanh()])]


@pytest.mark.parametrize("layer", every_layer(), ids=lambda layer: type(layer).__name__)
def test_backward_before_forward_is_an_error_naming_the_layer(layer):
    with pytest.raises(RuntimeError, match=rf"{type(layer).__name__}\.backward called before forward: run forward"):
        layer.backward(np.ones((2, 2), np.float32))


def test_dense_refuses_an_input_of_the_wrong_width_naming_got_and_expected():
    dense = Dense(3, 2, rng=np.random.default_rng(0))
    with pytest.raises(ShapeError, match=r"Dense input x: expected size 3 along axis 1, got shape \(2, 4\)"):
        dense.forward(np.ones((2, 4), np.float32))
    with pytest.raises(ShapeError, match=r"Dense input x: expected shape \(N, 3\), got \(3,\)"):
        dense.forward(np.ones(3, np.float32))


def test_dense_refuses_an_upstream_gradient_of_the_wrong_shape():
    dense = Dense(3, 2, rng=np.random.default_rng(0))
    dense.forward(np.ones((4, 3), np.float32))
    with pytest.raises(ShapeError, match=r"Dense upstream gradient dy: expected size 4 along axis 0, got shape \(5, 2\)"):
        dense.backward(np.ones((5, 2), np.float32))


def test_dense_refuses_integer_inputs_naming_the_dtype():
    dense = Dense(3, 2, rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="Dense input x: expected a floating-point array .*got dtype int64"):
        dense.forward(np.ones((2, 3), np.int64))


def test_dense_needs_an_explicit_generator():
    with pytest.raises(ValueError, match="Dense: pass rng=np.random.default_rng"):
        Dense(3, 2)


def test_unknown_init_is_an_error_naming_the_choices_and_the_value():
    with pytest.raises(ValueError, match="init must be 'glorot', 'he' or 'uniform', got 'xavier'"):
        Dense(3, 2, init="xavier", rng=np.random.default_rng(0))


def test_unknown_activation_is_an_error_naming_the_choices_and_the_value():
    with pytest.raises(ValueError, match=r"activation must be one of \['leaky_relu', 'relu', .*\], got 'swish'"):
        activation("swish")
    with pytest.raises(ValueError, match="got 'swish'"):
        mlp([3, 2, 1], "swish", rng=np.random.default_rng(0))


def test_leaky_relu_refuses_a_slope_outside_zero_to_one():
    with pytest.raises(ValueError, match=r"LeakyReLU slope must lie in \[0, 1\), got 1.5"):
        LeakyReLU(1.5)


def test_mlp_refuses_fewer_than_two_positive_widths():
    with pytest.raises(ValueError, match=r"mlp sizes must be at least two positive widths, got \[3\]"):
        mlp([3], rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"got \[3, 0, 2\]"):
        mlp([3, 0, 2], rng=np.random.default_rng(0))


# --------------------------------------------------------------------------- backend-clean


def to_device(layer, xp):
    """Move a layer's parameter and gradient arrays to ``xp`` (layers have no .to of their own)."""
    for key in list(layer.params):
        layer.params[key] = backend.to_device(layer.params[key], xp)
        layer.grads[key] = backend.to_device(layer.grads[key], xp)
    for sub in getattr(layer, "layers", ()):
        to_device(sub, xp)
    if isinstance(layer, Sequential):
        layer._refresh()
    return layer


LAYER_FACTORIES = {  # name -> (factory, output width for a (4, 5) input)
    "Dense": (lambda: Dense(5, 3, init="uniform", rng=np.random.default_rng(3), dtype=F64), 3),
    "ReLU": (ReLU, 5), "LeakyReLU": (lambda: LeakyReLU(0.2), 5), "Tanh": (Tanh, 5), "Sigmoid": (Sigmoid, 5),
    "Softplus": (Softplus, 5),
    "mlp": (lambda: mlp([5, 4, 3], "softplus", rng=np.random.default_rng(3), dtype=F64), 3),
}


@pytest.mark.parametrize("make, d_out", LAYER_FACTORIES.values(), ids=LAYER_FACTORIES.keys())
def test_every_layer_runs_on_device_arrays_and_agrees_with_numpy(make, d_out, device_xp):
    rng = np.random.default_rng(5)
    x, dy = rng.standard_normal((4, 5)), rng.standard_normal((4, d_out))
    host, dev = make(), to_device(make(), device_xp)
    y, dx = host.forward(x), host.backward(dy)
    y_dev = dev.forward(backend.to_device(x, device_xp))
    dx_dev = dev.backward(backend.to_device(dy, device_xp))
    assert backend.get_xp(y_dev) is device_xp and backend.get_xp(dx_dev) is device_xp
    np.testing.assert_allclose(backend.to_numpy(y_dev), y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(dx_dev), dx, rtol=1e-12, atol=1e-12)
    for key in host.grads:
        assert backend.get_xp(dev.grads[key]) is device_xp
        np.testing.assert_allclose(backend.to_numpy(dev.grads[key]), host.grads[key], rtol=1e-12, atol=1e-12)
