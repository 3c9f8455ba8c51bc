"""Tests for the reparameterization z = μ + exp(½ log σ²) ⊙ ε (tinyvae.models.vae.Reparameterize).

Two bugs shipped by well-known from-scratch VAEs are pinned here: noise scaled by the variance
instead of the standard deviation, and a backward pass that uses another ε than its forward.
"""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyvae import backend
from tinyvae.checks import ShapeError
from tinyvae.learn.gradcheck import check_reparameterize
from tinyvae.models.vae import VAE
from tinyvae.models.parts.encoders import Reparameterize

F64 = np.float64


def floats_in(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@settings(max_examples=25, deadline=None)
@given(shape=st.tuples(st.integers(1, 6), st.integers(1, 6)), data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_reparameterize_backward_matches_finite_differences(shape, data, seed, gradcheck_passes):
    mu, log_var, eps = (data.draw(hnp.arrays(F64, shape, elements=floats_in(-3, 3))) for _ in range(3))
    assume(np.abs(eps).max() > 1e-2)  # dL/dlog σ² = ½ dz ε σ vanishes with ε: nothing to compare
    report = check_reparameterize(Reparameterize(), mu, log_var, eps, np.random.default_rng(seed))
    gradcheck_passes(report)
    assert [r.name for r in report.results] == ["mu", "log_var"]


def test_reparameterize_scales_the_noise_by_the_standard_deviation_not_the_variance():
    mu, log_var, eps = np.array([[1.0, -2.0]]), np.array([[math.log(4.0), math.log(0.25)]]), np.array([[0.5, 2.0]])
    z = Reparameterize().forward(mu, log_var, eps)
    np.testing.assert_allclose(z, [[1.0 + 2.0 * 0.5, -2.0 + 0.5 * 2.0]], rtol=1e-15)


def test_reparameterize_backward_uses_the_very_eps_of_the_forward():
    rng = np.random.default_rng(0)
    mu, log_var, eps, dz = (rng.standard_normal((3, 4)) for _ in range(4))
    reparam = Reparameterize()
    reparam.forward(mu, log_var, eps)
    dmu, dlog_var = reparam.backward(dz)
    np.testing.assert_array_equal(dmu, dz)
    np.testing.assert_allclose(dlog_var, 0.5 * dz * eps * np.exp(0.5 * log_var), rtol=1e-15)


def test_reparameterize_backward_after_a_second_forward_uses_the_new_eps():
    rng = np.random.default_rng(1)
    mu, log_var, eps_1, eps_2, dz = (rng.standard_normal((2, 3)) for _ in range(5))
    reparam = Reparameterize()
    reparam.forward(mu, log_var, eps_1)
    reparam.forward(mu, log_var, eps_2)
    _, dlog_var = reparam.backward(dz)
    np.testing.assert_allclose(dlog_var, 0.5 * dz * eps_2 * np.exp(0.5 * log_var), rtol=1e-15)
    assert not np.allclose(dlog_var, 0.5 * dz * eps_1 * np.exp(0.5 * log_var))


def test_reparameterize_backward_returns_gradients_for_mu_and_log_var_only_not_eps():
    reparam = Reparameterize()
    reparam.forward(np.zeros((2, 3)), np.zeros((2, 3)), np.ones((2, 3)))
    grads = reparam.backward(np.ones((2, 3)))
    assert isinstance(grads, tuple) and len(grads) == 2
    assert all(g.shape == (2, 3) for g in grads)


def test_reparameterize_backward_before_forward_is_an_error():
    with pytest.raises(RuntimeError, match=r"Reparameterize\.backward called before forward: run forward\(mu, log_var, eps\)"):
        Reparameterize().backward(np.ones((2, 3)))


@pytest.mark.parametrize("which, shapes, message", [
    ("log_var", [(2, 3), (2, 4), (2, 3)], r"mu and log_var must have the same shape, got \(2, 3\) and \(2, 4\)"),
    ("eps", [(2, 3), (2, 3), (3, 3)], r"mu and eps must have the same shape, got \(2, 3\) and \(3, 3\)"),
])
def test_reparameterize_refuses_mismatched_shapes_naming_both(which, shapes, message):
    with pytest.raises(ShapeError, match=message):
        Reparameterize().forward(*(np.zeros(s) for s in shapes))


# --------------------------------------------------------------------------- ε drawn by the model


class RecordingGenerator:
    """Wraps a generator and keeps every array it draws."""

    def __init__(self, rng):
        self.rng, self.draws = rng, []

    def standard_normal(self, *args, **kwargs):
        out = self.rng.standard_normal(*args, **kwargs)
        self.draws.append(out.copy())
        return out


def small_vae(seed=11):
    return VAE(input_dim=6, hidden=(5,), latent=3, dtype="float64", seed=seed)


def test_eps_none_draws_from_the_models_seeded_generator_reproducibly():
    x = np.random.default_rng(0).uniform(0, 1, (4, 6))
    first, second = small_vae(), small_vae()
    losses_1 = [float(first.forward(x)) for _ in range(3)]
    losses_2 = [float(second.forward(x)) for _ in range(3)]
    assert losses_1 == losses_2  # same seed, same noise, same losses
    assert len(set(losses_1)) == 3  # and a fresh ε on every call
    assert float(small_vae(seed=12).forward(x)) != losses_1[0]


def test_eps_none_uses_the_noise_it_drew_in_forward_and_backward():
    x = np.random.default_rng(0).uniform(0, 1, (4, 6))
    model = small_vae()
    model.rng = RecordingGenerator(model.rng)
    loss = float(model.forward(x))
    grad = model.backward().copy()
    (eps,) = model.rng.draws
    assert eps.shape == (4, 3) and eps.dtype == F64
    assert float(model.forward(x, eps)) == loss
    np.testing.assert_array_equal(model.backward(), grad)


# --------------------------------------------------------------------------- backend-clean


def test_reparameterize_runs_on_device_arrays_and_agrees_with_numpy(device_xp):
    rng = np.random.default_rng(2)
    mu, log_var, eps, dz = (rng.standard_normal((3, 4)) for _ in range(4))
    host = Reparameterize()
    z = host.forward(mu, log_var, eps)
    grads = host.backward(dz)
    dev = Reparameterize()
    z_dev = dev.forward(*(backend.to_device(a, device_xp) for a in (mu, log_var, eps)))
    grads_dev = dev.backward(backend.to_device(dz, device_xp))
    for h, d in zip((z, *grads), (z_dev, *grads_dev)):
        assert backend.get_xp(d) is device_xp
        np.testing.assert_allclose(backend.to_numpy(d), h, rtol=1e-12, atol=1e-12)
