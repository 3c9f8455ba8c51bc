"""Tests for tinyvae.learn.gradcheck: the checker catches planted bugs and points at the parameter.

A gradient check that passes everything proves nothing. Here the usual backward-pass mistakes
are planted with monkeypatch (a transposed weight gradient, a missing ½ in the
reparameterization's and in the KL's dlog σ², a batch sum where the mean was meant) and the real
checker must fail, naming the parameter, both on the piece alone and on the whole VAE.
"""

import numpy as np
import pytest

import tinyvae.prob.losses as losses
import tinyvae.models.parts.likelihoods
import tinyvae.models.parts.priors
from tinyvae.learn.gradcheck import (DEFAULT_H, DEFAULT_TOL, check_gradients, check_layer, check_loss, check_model,
                               check_reparameterize, numerical_gradient, standard_suite)
from tinyvae.nn import Dense
from tinyvae.models.vae import VAE
from tinyvae.models.parts.encoders import Reparameterize

F64 = np.float64


def line_of(report, name):
    (line,) = [ln for ln in str(report).splitlines() if ln.split()[:1] == [name]]
    return line


def assert_fails_at(report, name):
    """The report fails, its worst parameter is ``name``, and its table flags that line."""
    assert not report.passed
    assert report.worst.name == name
    assert "FAIL" in str(report).splitlines()[0]
    assert line_of(report, name).endswith("<-- wrong")
    with pytest.raises(AssertionError, match=f"gradient of {name} in .* is wrong: relative error"):
        report.raise_if_failed()


def small_vae(**kw):
    return VAE(input_dim=6, hidden=(5, 5), latent=2, activation="tanh", dtype="float64", seed=0, **kw)


def vae_inputs(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (4, 6)), rng.standard_normal((4, 2))


# --------------------------------------------------------------------------- the checker's contract


def test_the_checker_uses_central_differences_with_h_1e_5_and_tolerance_1e_7():
    assert DEFAULT_H == 1e-5 and DEFAULT_TOL == 1e-7


def test_numerical_gradient_refuses_float32_with_a_clear_message():
    x = np.ones((2, 2), np.float32)
    with pytest.raises(TypeError, match="gradient checks need float64 arrays, got float32: float32 round-off"):
        numerical_gradient(lambda: (x * x).sum(), x)


def test_numerical_gradient_differentiates_and_restores_every_entry():
    x = np.random.default_rng(0).standard_normal((3, 4))
    before = x.copy()
    grad = numerical_gradient(lambda: (np.sin(x) * x).sum(), x)
    np.testing.assert_allclose(grad, np.sin(before) + before * np.cos(before), rtol=1e-9, atol=1e-11)
    np.testing.assert_array_equal(x, before)  # bit for bit


def test_report_names_the_worst_parameter_and_the_index_of_its_worst_entry():
    x = np.random.default_rng(1).standard_normal((3, 2))
    w = np.random.default_rng(2).standard_normal(4)
    grads = {"x": 2 * x, "w": 3 * w**2}
    grads["x"][2, 1] += 0.1  # one wrong entry
    report = check_gradients(lambda: (x**2).sum() + (w**3).sum(), {"x": x, "w": w}, grads, label="planted")
    assert_fails_at(report, "x")
    assert report.worst.where == (2, 1) and report.worst.shape == (3, 2)
    assert report.worst.analytic == pytest.approx(2 * x[2, 1] + 0.1) and report.worst.numeric == pytest.approx(2 * x[2, 1])
    assert "(2, 1)" in line_of(report, "x")
    assert not line_of(report, "w").endswith("<-- wrong")
    with pytest.raises(AssertionError, match=r"gradient of x in planted is wrong: .* at index \(2, 1\)"):
        report.raise_if_failed()


def test_a_passing_report_raises_nothing_and_returns_itself():
    x = np.arange(1.0, 4.0)
    report = check_gradients(lambda: (x**2).sum(), {"x": x}, {"x": 2 * x})
    assert report.passed and report.raise_if_failed() is report and report.max_error < 1e-9


def test_a_gradient_with_nan_or_the_wrong_shape_fails():
    x = np.arange(1.0, 5.0)
    nan_grad = 2 * x
    nan_grad[2] = np.nan
    report = check_gradients(lambda: (x**2).sum(), {"x": x}, {"x": nan_grad})
    assert not report.passed and report.worst.where == (2,)
    report = check_gradients(lambda: (x**2).sum(), {"x": x}, {"x": np.zeros(3)})
    assert not report.passed and report.max_error == float("inf")


def test_check_gradients_refuses_params_and_grads_with_different_names():
    x = np.ones(2)
    with pytest.raises(ValueError, match=r"params and grads must have the same names; unmatched: \['y'\]"):
        check_gradients(lambda: x.sum(), {"x": x}, {"x": np.ones(2), "y": np.ones(2)})


def test_check_layer_skips_the_input_gradient_of_a_layer_that_does_not_compute_it(gradcheck_passes):
    rng = np.random.default_rng(3)
    report = gradcheck_passes(check_layer(Dense(3, 2, rng=rng, dtype=F64, need_dx=False),
                                          rng.standard_normal((4, 3)), rng))
    assert [r.name for r in report.results] == ["W", "b"]


def test_the_standard_suite_passes_every_check():
    reports = standard_suite()
    assert len(reports) >= 13
    assert all(rep.passed for rep in reports), "\n".join(str(r) for r in reports if not r.passed)


# --------------------------------------------------------------------------- planted bugs


def transposed_weight_gradient(monkeypatch):
    """Plant: a square Dense layer writes dWᵀ instead of dW."""
    original = Dense.backward

    def backward(self, dy):
        dx = original(self, dy)
        if self.d_in == self.d_out:
            self.grads["W"][...] = self.grads["W"].T.copy()
        return dx

    monkeypatch.setattr(Dense, "backward", backward)


def test_checker_catches_a_transposed_weight_gradient_and_names_w(monkeypatch):
    transposed_weight_gradient(monkeypatch)
    rng = np.random.default_rng(4)
    dense = Dense(4, 4, rng=rng, dtype=F64)
    report = check_layer(dense, rng.standard_normal((3, 4)), rng)
    assert_fails_at(report, "W")
    assert [r.name for r in report.results if r.rel_error > report.tol] == ["W"]  # b and x are right


def test_checker_catches_a_transposed_weight_gradient_inside_a_vae(monkeypatch):
    transposed_weight_gradient(monkeypatch)
    report = check_model(small_vae(), *vae_inputs())
    assert not report.passed
    wrong = {r.name for r in report.results if r.rel_error > report.tol}
    assert wrong <= {"encoder.2.W", "decoder.2.W"} and report.worst.name in wrong  # the two 5x5 layers


def reparam_without_half(monkeypatch):
    """Plant: dL/dlog σ² = dz ⊙ ε ⊙ σ, missing the ½ of d exp(½v)/dv."""
    original = Reparameterize.backward

    def backward(self, dz):
        dmu, dlog_var = original(self, dz)
        return dmu, 2 * dlog_var

    monkeypatch.setattr(Reparameterize, "backward", backward)


def test_checker_catches_a_missing_half_in_the_reparameterization_and_names_log_var(monkeypatch):
    reparam_without_half(monkeypatch)
    rng = np.random.default_rng(5)
    report = check_reparameterize(Reparameterize(), *(rng.standard_normal((3, 2)) for _ in range(3)), rng)
    assert_fails_at(report, "log_var")
    assert report.results[0].name == "mu" and report.results[0].rel_error <= report.tol


def test_checker_catches_a_missing_half_in_the_reparameterization_inside_a_vae(monkeypatch):
    reparam_without_half(monkeypatch)
    report = check_model(small_vae(), *vae_inputs(1))
    assert not report.passed and report.worst.name.startswith("encoder.")  # only the encoder is upstream


def kl_without_half(monkeypatch):
    """Plant: dKL/dlog σ² = (σ² − 1)/N, missing the ½."""
    original = losses.gaussian_kl

    def gaussian_kl(mu, log_var, *, validate=True):
        kl, dmu, dlog_var = original(mu, log_var, validate=validate)
        return kl, dmu, 2 * dlog_var

    monkeypatch.setattr(losses, "gaussian_kl", gaussian_kl)
    monkeypatch.setattr(tinyvae.models.parts.priors, "gaussian_kl", gaussian_kl)


def test_checker_catches_a_missing_half_in_the_kl_gradient_and_names_log_var(monkeypatch):
    kl_without_half(monkeypatch)
    rng = np.random.default_rng(6)
    report = check_loss(losses.gaussian_kl, {"mu": rng.standard_normal((3, 2)), "log_var": rng.standard_normal((3, 2))},
                        wrt=["mu", "log_var"])
    assert_fails_at(report, "log_var")


def test_checker_catches_a_missing_half_in_the_kl_gradient_inside_a_vae(monkeypatch):
    kl_without_half(monkeypatch)
    report = check_model(small_vae(beta=2.0), *vae_inputs(2))
    assert not report.passed and report.worst.name.startswith("encoder.")


def bernoulli_sum_not_mean(monkeypatch):
    """Plant: the gradient sums over the batch (σ(l) − x) while the loss averages it."""
    original = losses.bernoulli_nll

    def bernoulli_nll(logits, x, *, validate=True):
        loss, dlogits = original(logits, x, validate=validate)
        return loss, dlogits * logits.shape[0]

    monkeypatch.setattr(losses, "bernoulli_nll", bernoulli_nll)
    monkeypatch.setattr(tinyvae.models.parts.likelihoods, "bernoulli_nll", bernoulli_nll)


def test_checker_catches_a_batch_sum_where_the_mean_was_meant_and_names_logits(monkeypatch):
    bernoulli_sum_not_mean(monkeypatch)
    rng = np.random.default_rng(7)
    report = check_loss(losses.bernoulli_nll, {"logits": rng.normal(0, 2, (4, 5)), "x": rng.uniform(0, 1, (4, 5))},
                        wrt=["logits"])
    assert_fails_at(report, "logits")
    assert report.worst.analytic == pytest.approx(4 * report.worst.numeric, rel=1e-6)  # off by N exactly


def test_checker_catches_a_batch_sum_where_the_mean_was_meant_inside_a_vae(monkeypatch):
    bernoulli_sum_not_mean(monkeypatch)
    report = check_model(small_vae(), *vae_inputs(3))
    assert not report.passed and all(r.rel_error > report.tol for r in report.results if r.name.startswith("decoder."))
