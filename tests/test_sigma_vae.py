"""Tests for the Gaussian decoder with a learned or optimal variance (the σ-VAE of Rybkin et al.
2021): the losses and their gradients, the closed-form optimum, the parameter inside the model
(theta, optimizer, checkpoint, resume), what evaluation uses, the refusals, and planted bugs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyvae import VAE, Adam, Autoencoder, ModelConfig, TrainConfig, cli, evaluate_elbo, train

from tinyvae.data import Dataset, load_dataset
from tinyvae.learn.gradcheck import DEFAULT_H, DEFAULT_TOL, check_loss, check_model
from tinyvae.prob.losses import (OPTIMAL_VAR_FLOOR, gaussian_log_prob, gaussian_nll, gaussian_nll_learned_var,
                            gaussian_nll_optimal_var)
from tinyvae.run.train import ConfigError, resume
from tinyvae.models.config import OBS_VAR_AVERAGING
from tinyvae.models.vae import load_model

F64 = np.float64


def pair(seed=0, shape=(4, 6)):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, shape), rng.uniform(0, 1, shape)


# --------------------------------------------------------------------------- the losses


def central_difference_error_bound(mean, x, log_var, h=DEFAULT_H):
    """Bounds on |central difference − gradient| of the learned-variance NLL for the mean and log σ² [eq:fd-error].

    With SSE the batch-mean squared error and v = log σ², the loss is SSE·e^{−v}/2 + D·(log 2π + v)/2.
    Truncation h²/6·M₃: it is quadratic in the mean (M₃ = 0); in v, M₃ = SSE·e^{−v+h}/2. Round-off
    ε_f/h: N·D products summed, then a few operations, so (N·D + 6) unit round-offs of the terms'
    magnitudes bound ε_f. dL/dv = D/2 − SSE·e^{−v}/2 cancels where the errors match σ², and then is
    tiny beside a loss of order one (N = 4, D = 1, v = −1.33: gradient 2.2e-5, loss 0.75, relative
    error 4.6e-7): the floor is round-off, which no step h lowers.
    """
    n, d = mean.shape
    sse, v = float(((mean - x) ** 2).sum()) / n, float(log_var)
    unit = np.finfo(F64).eps / 2
    roundoff = (n * d + 6) * unit * (0.5 * sse * math.exp(-v) + 0.5 * d * (math.log(2 * math.pi) + abs(v))) / h
    truncation = h * h / 6 * 0.5 * sse * math.exp(-v + h)
    return {"mean": roundoff, "log_var": roundoff + truncation}


@settings(max_examples=20, deadline=None)
@given(shape=st.tuples(st.integers(1, 5), st.integers(1, 6)), log_var=st.floats(-4, 2), data=st.data())
def test_learned_variance_gradients_match_finite_differences(shape, log_var, data, gradcheck_passes):
    values = st.floats(0, 1, allow_subnormal=False)
    mean, x = data.draw(hnp.arrays(F64, shape, elements=values)), data.draw(hnp.arrays(F64, shape, elements=values))
    _, dmean, dlog_var = gaussian_nll_learned_var(mean, x, np.array([log_var]))
    # Each array's tolerance: the default 1e-7, or the bound of eq:fd-error relative to its largest
    # gradient where that is larger. Examples whose gradient is so small beside the loss that the
    # bound passes 1e-2 are left out: there a wrong gradient (a factor, a sign) could hide in it.
    bound = central_difference_error_bound(mean, x, log_var)
    scale = {"mean": np.abs(dmean).max(), "log_var": np.abs(dlog_var).max()}
    tol = max([DEFAULT_TOL] + [bound[k] / scale[k] for k in bound if scale[k] > 0])
    assume(tol < 1e-2)
    gradcheck_passes(check_loss(gaussian_nll_learned_var, {"mean": mean, "x": x, "log_var": np.array([log_var])},
                                wrt=["mean", "log_var"], tol=tol))


def test_the_central_difference_bound_covers_a_log_variance_gradient_that_cancels(gradcheck_passes):
    """An example a fixed tolerance of 1e-7 failed on: its error is round-off, inside the bound."""
    rng = np.random.default_rng(7)
    mean, x = rng.uniform(0, 1, (4, 1)), rng.uniform(0, 1, (4, 1))
    sse = float(((mean - x) ** 2).sum()) / 4
    log_var = math.log(sse) + 1e-4  # dL/dlog σ² = (1 − SSE/σ²)/2 ≈ 5e-5, the loss of order one
    report = check_loss(gaussian_nll_learned_var, {"mean": mean, "x": x, "log_var": np.array([log_var])},
                        wrt=["mean", "log_var"])
    error = report.results[1].rel_error * abs(report.results[1].analytic)
    assert error < central_difference_error_bound(mean, x, log_var)["log_var"]

    def planted(mean, x, log_var):  # the ½ of dL/dlog σ² forgotten
        loss, dmean, dlog_var = gaussian_nll_learned_var(mean, x, log_var)
        return loss, dmean, 2 * dlog_var

    assert not check_loss(planted, {"mean": mean, "x": x, "log_var": np.array([log_var])},
                          wrt=["mean", "log_var"], tol=1e-2).passed


def test_learned_variance_loss_is_the_fixed_variance_loss_at_that_variance():
    mean, x = pair()
    loss, dmean, _ = gaussian_nll_learned_var(mean, x, np.array([math.log(0.3)]))
    fixed, dfixed = gaussian_nll(mean, x, 0.3)
    np.testing.assert_allclose(loss, fixed, rtol=1e-14)
    np.testing.assert_allclose(dmean, dfixed, rtol=1e-14)


def test_learned_variance_gradient_vanishes_exactly_at_the_mean_squared_error():
    mean, x = pair(1)
    mse = ((mean - x) ** 2).mean()
    _, _, dlog_var = gaussian_nll_learned_var(mean, x, np.array([math.log(mse)]))
    assert abs(dlog_var[0]) < 1e-12
    _, _, above = gaussian_nll_learned_var(mean, x, np.array([math.log(2 * mse)]))
    _, _, below = gaussian_nll_learned_var(mean, x, np.array([math.log(mse / 2)]))
    assert above[0] > 0 > below[0]  # descent moves σ_x² toward the MSE from either side


def test_optimal_variance_loss_is_the_minimum_over_every_fixed_variance():
    mean, x = pair(2)
    loss, _, obs_var = gaussian_nll_optimal_var(mean, x)
    mse = ((mean - x) ** 2).mean()
    assert float(obs_var) == pytest.approx(mse, rel=1e-14)
    assert float(loss) == pytest.approx(0.5 * 6 * (1 + math.log(2 * math.pi * mse)), rel=1e-14)
    grid = mse * np.exp(np.linspace(-3, 3, 601))
    fixed = np.array([float(gaussian_nll(mean, x, v)[0]) for v in grid])
    assert float(loss) <= fixed.min() + 1e-12
    assert fixed.min() - float(loss) < 1e-4  # the grid comes within its spacing of the optimum


def test_optimal_variance_gradient_matches_finite_differences_through_the_variance(gradcheck_passes):
    rng = np.random.default_rng(3)
    gradcheck_passes(check_loss(gaussian_nll_optimal_var, {"mean": rng.uniform(0, 1, (5, 7)),
                                                           "x": rng.uniform(0, 1, (5, 7))}, wrt=["mean"]))


def test_an_exact_reconstruction_gives_a_finite_loss_at_the_variance_floor():
    x = np.random.default_rng(0).uniform(0, 1, (3, 4))
    loss, dmean, obs_var = gaussian_nll_optimal_var(x.copy(), x)
    assert float(obs_var) == OPTIMAL_VAR_FLOOR and np.isfinite(loss) and not dmean.any()
    assert float(loss) == pytest.approx(2 * (math.log(2 * math.pi * OPTIMAL_VAR_FLOOR)), rel=1e-14)


def test_a_gradient_through_sigma_without_the_envelope_argument_fails_the_check():
    """Planted: differentiating D/2 log MSE as if σ² were 1 (the plain squared error's gradient)."""
    def planted(mean, x):
        loss, _, _ = gaussian_nll_optimal_var(mean, x)
        return loss, (mean - x) / mean.shape[0]

    rng = np.random.default_rng(4)
    report = check_loss(planted, {"mean": rng.uniform(0, 1, (4, 5)), "x": rng.uniform(0, 1, (4, 5))}, wrt=["mean"])
    assert not report.passed


def test_a_learned_variance_gradient_with_the_wrong_sign_on_the_log_term_fails_the_check():
    def planted(mean, x, log_var):
        loss, dmean, dlog_var = gaussian_nll_learned_var(mean, x, log_var)
        return loss, dmean, dlog_var - mean.shape[1]  # −D/2 instead of +D/2

    mean, x = pair(5)
    report = check_loss(planted, {"mean": mean, "x": x, "log_var": np.array([-1.0])}, wrt=["mean", "log_var"])
    assert not report.passed and report.worst.name == "log_var"


# --------------------------------------------------------------------------- the model


def gaussian_vae(mode, **kw):
    return VAE(input_dim=6, hidden=(5,), latent=2, likelihood="gaussian", obs_var_mode=mode, activation="tanh",
               dtype="float64", seed=0, **kw)


@pytest.mark.parametrize("mode", ["learned", "optimal"])
def test_the_variance_is_one_more_parameter_in_theta(mode):
    fixed, model = gaussian_vae("fixed"), gaussian_vae(mode)
    assert model.num_params == fixed.num_params + 1 == model.config.parameter_count()
    assert "obs_var.log_var" in model.params and "obs_var.log_var" in model.grads
    assert model.params["obs_var.log_var"].base is model.theta or np.shares_memory(model.params["obs_var.log_var"],
                                                                                   model.theta)
    assert model.observation_variance() == pytest.approx(1.0)
    assert gaussian_vae("learned", obs_var=0.25).observation_variance() == pytest.approx(0.25)


@pytest.mark.parametrize("make", [lambda: gaussian_vae("learned", obs_var=0.2), lambda: gaussian_vae("optimal"),
                                  lambda: Autoencoder(input_dim=6, hidden=(5,), latent=2, likelihood="gaussian",
                                                      obs_var_mode="learned", dtype="float64")])
def test_whole_model_gradient_matches_finite_differences(make, gradcheck_passes):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (4, 6))
    gradcheck_passes(check_model(make(), x, rng.standard_normal((4, 2)) if isinstance(make(), VAE) else None))


def test_adam_moves_a_learned_variance_toward_the_reconstruction_error():
    model = VAE(input_dim=16, hidden=(8,), latent=2, likelihood="gaussian", obs_var_mode="learned", seed=0,
                dtype="float64")
    x = np.random.default_rng(0).uniform(0, 1, (32, 16))
    opt = Adam(model, lr=0.05)
    for _ in range(200):
        model.forward(x)
        model.backward()
        opt.step()
    mse = float(((model.decoder.forward(model.encode(x)[0]) - x) ** 2).mean())
    assert model.observation_variance() < 0.3  # from 1, toward an MSE of a few 1e-2
    assert model.observation_variance() == pytest.approx(mse, rel=1.0)


def test_an_optimal_variance_is_fitted_by_each_step_and_averaged_for_evaluation():
    model = gaussian_vae("optimal")
    rng = np.random.default_rng(0)
    batches = [rng.uniform(0, 1, (4, 6)) for _ in range(3)]
    expected = None
    for x in batches:
        model.forward(x, rng.standard_normal((4, 2)))
        fitted = float(model.stats["obs_var"])
        model.backward()
        assert model.grads["obs_var.log_var"][0] == 0  # the optimum's gradient is zero
        expected = fitted if expected is None else (1 - OBS_VAR_AVERAGING) * expected + OBS_VAR_AVERAGING * fitted
        assert model.observation_variance() == pytest.approx(expected, rel=1e-12)


def test_evaluation_scores_with_the_stored_variance_not_one_refitted_to_the_test_batch():
    model = gaussian_vae("optimal")
    model.params["obs_var.log_var"][...] = math.log(0.05)
    x = np.random.default_rng(1).uniform(0, 1, (7, 6))
    eps = np.random.default_rng(0).standard_normal((7, 2))  # the ε that evaluate_elbo(seed=0) draws
    result = evaluate_elbo(model, x, seed=0, batch_size=7)
    stored = float(model.forward(x, eps, fit_obs_var=False))
    refitted = float(model.forward(x, eps))
    assert result["loss"] == pytest.approx(stored, rel=1e-12)
    assert abs(refitted - stored) > 1.0
    assert model.observation_variance() == pytest.approx(0.05)  # forward alone never changes it
    out = model.decoder.forward(model.encode(x)[0])
    np.testing.assert_allclose(model.log_likelihood(out, x), gaussian_log_prob(out, x, 0.05), rtol=1e-13)


def test_checkpoints_keep_the_learned_variance(tmp_path):
    model = gaussian_vae("learned")
    model.params["obs_var.log_var"][...] = -2.5
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert loaded.config.obs_var_mode == "learned"
    assert loaded.observation_variance() == pytest.approx(math.exp(-2.5))


# --------------------------------------------------------------------------- training and refusals


@pytest.fixture(scope="module")
def mnist():
    full = load_dataset()
    return Dataset(full.train_x[:128], full.train_y[:128], full.val_x, full.val_y, full.test_x[:64],
                   full.test_y[:64])


@pytest.mark.parametrize("mode", ["learned", "optimal"])
def test_a_run_records_the_variance_and_resumes_bit_identically(tmp_path, mnist, mode):
    def config(out, epochs):
        return TrainConfig(hidden=(16,), latent=3, batch_size=64, epochs=epochs, likelihood="gaussian",
                           obs_var_mode=mode, out=str(out))

    quiet = dict(dataset=mnist, log=lambda *_: None, progress=False, pictures=False)
    straight = train(config(tmp_path / "straight", 2), **quiet)
    split = train(config(tmp_path / "split", 1), **quiet)
    resume(split, epochs=2, **quiet)
    a, b = load_model(straight / "checkpoint.npz"), load_model(split / "checkpoint.npz")
    np.testing.assert_array_equal(a.theta, b.theta)
    rows = [line for line in (straight / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all('"obs_var"' in row for row in rows)
    assert a.observation_variance() < 1.0


@pytest.mark.parametrize("likelihood", ["bernoulli", "continuous-bernoulli"])
@pytest.mark.parametrize("mode", ["learned", "optimal"])
def test_a_learned_or_optimal_variance_is_refused_with_a_bernoulli_likelihood(likelihood, mode):
    with pytest.raises(ValueError, match=f"a {mode} observation variance needs likelihood='gaussian'.*"
                                         f"got likelihood='{likelihood}'"):
        ModelConfig(likelihood=likelihood, obs_var_mode=mode)
    with pytest.raises(ConfigError, match=f"a {mode} observation variance needs likelihood='gaussian'"):
        TrainConfig(likelihood=likelihood, obs_var_mode=mode)


def test_an_unknown_variance_mode_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match=r"obs_var_mode must be one of \('fixed', 'learned', 'optimal'\), got 'auto'"):
        ModelConfig(likelihood="gaussian", obs_var_mode="auto")


def test_the_command_line_takes_a_number_learned_or_optimal_and_refuses_the_rest(capsys, tmp_path):
    assert cli.main(["train", "--obs-var", "learned", "--out", str(tmp_path / "a")]) == 2
    assert "a learned observation variance needs likelihood='gaussian'" in capsys.readouterr().err
    for bad in ("0", "-1", "sometimes"):
        with pytest.raises(SystemExit) as info:
            cli.main(["train", "--likelihood", "gaussian", "--obs-var", bad])
        assert info.value.code == 2
        assert f"expected a finite number > 0, 'learned' or 'optimal', got '{bad}'" in capsys.readouterr().err


def test_the_command_line_trains_with_a_fixed_number_as_before(tmp_path):
    out = tmp_path / "run"
    assert cli.main(["train", "--likelihood", "gaussian", "--obs-var", "0.25", "--hidden", "8", "--latent", "2",
                     "--epochs", "1", "--limit-train", "128", "--limit-test", "64", "--no-pictures", "--no-progress",
                     "--out", str(out)]) == 0
    model = load_model(out / "checkpoint.npz")
    assert model.config.obs_var_mode == "fixed" and model.config.obs_var == 0.25 and model.obs_var is None
