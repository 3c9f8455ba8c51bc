"""Tests for free bits (Kingma et al. 2016): the objective Σ_j max(λ, batch-mean KL_j), its gradient
(zero for a dimension under its allowance) against central differences away from the kink, the
model's loss and reported KL, what evaluation scores, the refusals, and a planted bug.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyvae import VAE, ModelConfig, TrainConfig, cli, evaluate_elbo
from tinyvae.learn.gradcheck import DEFAULT_H, DEFAULT_TOL, check_loss, check_model
from tinyvae.prob.losses import free_bits_kl, gaussian_kl, gaussian_kl_per_dim
from tinyvae.run.train import ConfigError

F64 = np.float64


def posterior(seed=0, n=6, z=4):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, z)), rng.normal(0, 0.5, size=(n, z))


def central_difference_error_bound(mu, log_var, lam, h=DEFAULT_H):
    """Bounds on |central difference − gradient| of Σ_j max(λ, KL_j) for μ and log σ² [eq:fd-error].

    Truncation h²/6·M₃: the objective is quadratic in μ (M₃ = 0) and, in log σ², 0.5·e^{log σ²}/N
    plus terms of lower degree (M₃ = e^{log σ² + h}/(2N)); off the kink no perturbation switches a
    dimension between paid and free. Round-off ε_f/h: the loss is sums of N·Z terms 0.5·(expm1(l) − l
    + μ²) and Z maxima, each term rounded a few times, so (N + Z + 4) unit round-offs of the sum of
    the parts' magnitudes bound ε_f. That floor is absolute: where log σ² ≈ 0 its gradient
    ½(e^{log σ²} − 1)/N is tiny beside a loss of order one (λ = 0, μ = 1, log σ² = 6.1e-5: gradient
    3.05e-5, loss 0.5, round-off ≈ 1e-11, relative 3.4e-7), and no step h resolves it better (the
    best h of eq:fd-error only trades it against truncation).
    """
    n, z = mu.shape
    unit = np.finfo(F64).eps / 2
    parts = 0.5 * (np.abs(np.expm1(log_var)) + np.abs(log_var) + mu * mu)  # (N, Z)
    roundoff = (n + z + 4) * unit * (parts.sum() / n + z * lam) / h
    truncation = h * h / 6 * np.exp(log_var.max() + h) / (2 * n)
    return {"mu": roundoff, "log_var": roundoff + truncation}


@settings(max_examples=25, deadline=None)
@given(shape=st.tuples(st.integers(1, 5), st.integers(1, 5)), lam=st.floats(0.0, 1.5), data=st.data())
def test_free_bits_gradient_matches_finite_differences_away_from_the_kink(shape, lam, data, gradcheck_passes):
    mu = data.draw(hnp.arrays(F64, shape, elements=st.floats(-2, 2, allow_subnormal=False)))
    log_var = data.draw(hnp.arrays(F64, shape, elements=st.floats(-1.5, 1.5, allow_subnormal=False)))
    _, dmu, dlog_var, kl = free_bits_kl(mu, log_var, lam)
    assume(np.abs(kl - lam).min() > 1e-3)  # a perturbation of h = 1e-5 moves KL_j by far less than that
    assume(min(np.abs(dmu).max(), np.abs(dlog_var).max()) > 1e-6)  # above a central difference's round-off
    # The check's error relative to each array's largest gradient, bounded from eq:fd-error: the
    # default 1e-7 where the gradient is large, more where it is small beside the loss. With the
    # bounds drawn here (N, Z ≤ 5, |μ| ≤ 2, |log σ²| ≤ 1.5, λ ≤ 1.5) and a gradient above 1e-6 the
    # tolerance stays below 1e-2, so a wrong gradient (off by a factor, a sign, a missing 1/N) fails.
    bound = central_difference_error_bound(mu, log_var, lam)
    tol = max(DEFAULT_TOL, bound["mu"] / np.abs(dmu).max(), bound["log_var"] / np.abs(dlog_var).max())
    assert tol < 1e-2
    gradcheck_passes(check_loss(lambda mu, log_var: free_bits_kl(mu, log_var, lam), {"mu": mu, "log_var": log_var},
                                wrt=["mu", "log_var"], tol=tol, label=f"free_bits_kl (λ={lam:.3f})"))


def test_the_central_difference_bound_covers_a_gradient_small_beside_the_loss(gradcheck_passes):
    """The example a fixed tolerance of 1e-7 failed on: its error is round-off, inside the bound."""
    mu, log_var = np.array([[1.0]]), np.array([[6.1e-05]])
    report = check_loss(lambda mu, log_var: free_bits_kl(mu, log_var, 0.0), {"mu": mu, "log_var": log_var},
                        wrt=["mu", "log_var"])
    error = report.results[1].rel_error * abs(report.results[1].analytic)
    assert report.results[1].rel_error > DEFAULT_TOL  # the old test's failure, reproduced
    assert error < central_difference_error_bound(mu, log_var, 0.0)["log_var"]

    def planted(mu, log_var):  # the ½ of dKL/dlog σ² forgotten
        objective, dmu, dlog_var, _ = free_bits_kl(mu, log_var, 0.0)
        return objective, dmu, 2 * dlog_var

    assert not check_loss(planted, {"mu": mu, "log_var": log_var}, wrt=["mu", "log_var"], tol=1e-2).passed


def test_zero_free_bits_is_the_plain_kl_exactly():
    mu, log_var = posterior()
    objective, dmu, dlog_var, per_dim = free_bits_kl(mu, log_var, 0.0)
    kl, dmu_kl, dlog_var_kl = gaussian_kl(mu, log_var)
    assert objective == pytest.approx(kl, rel=1e-15) and per_dim.sum() == pytest.approx(kl, rel=1e-15)
    np.testing.assert_allclose(dmu, dmu_kl, rtol=1e-15)  # μ·(1/N) against μ/N: the same to round-off
    np.testing.assert_allclose(dlog_var, dlog_var_kl, rtol=1e-15)


def test_a_dimension_under_its_allowance_costs_lambda_and_gets_no_gradient():
    mu, log_var = posterior(1)
    per_dim = gaussian_kl_per_dim(mu, log_var).mean(axis=0)
    lam = float(np.sort(per_dim)[1:3].mean())  # two dimensions under, two over
    objective, dmu, dlog_var, reported = free_bits_kl(mu, log_var, lam)
    free = per_dim <= lam
    np.testing.assert_allclose(reported, per_dim, rtol=1e-15)
    assert objective == pytest.approx(lam * free.sum() + per_dim[~free].sum(), rel=1e-15)
    assert not dmu[:, free].any() and not dlog_var[:, free].any()
    np.testing.assert_allclose(dmu[:, ~free], mu[:, ~free] / len(mu), rtol=1e-15)


def test_the_allowance_is_on_the_batch_average_not_per_example():
    """One example may use more than λ nats of a dimension if the batch on average does not."""
    mu = np.array([[3.0], [0.0], [0.0], [0.0]])  # KL 4.5 nats for the first example, 0 for the others
    log_var = np.zeros_like(mu)
    objective, dmu, _, per_dim = free_bits_kl(mu, log_var, 2.0)
    assert per_dim[0] == pytest.approx(1.125)
    assert objective == 2.0 and not dmu.any()
    per_example = np.maximum(2.0, 0.5 * mu[:, 0] ** 2).mean()  # the planted per-example version
    assert per_example != objective


def test_a_gradient_that_ignores_the_allowance_fails_the_check():
    mu, log_var = posterior(2)
    lam = float(np.sort(free_bits_kl(mu, log_var, 0.0)[3])[1:3].mean())

    def planted(mu, log_var):
        objective, _, _, _ = free_bits_kl(mu, log_var, lam)
        _, dmu, dlog_var = gaussian_kl(mu, log_var)  # the plain KL's gradient for every dimension
        return objective, dmu, dlog_var

    report = check_loss(planted, {"mu": mu, "log_var": log_var}, wrt=["mu", "log_var"])
    assert not report.passed


def test_the_model_trains_on_free_bits_but_reports_and_evaluates_the_true_kl(gradcheck_passes):
    rng = np.random.default_rng(0)
    x, eps = rng.uniform(0, 1, (5, 8)), rng.standard_normal((5, 3))
    plain = VAE(input_dim=8, hidden=(6,), latent=3, dtype="float64", seed=1, beta=0.5)
    mu, log_var = plain.encode(x)
    per_dim = gaussian_kl_per_dim(mu, log_var).mean(axis=0)
    lam = float(np.sort(per_dim)[:2].mean())
    model = VAE(plain.config, free_bits=lam)
    loss = float(model.forward(x, eps))
    recon, kl = float(model.stats["recon"]), float(model.stats["kl"])
    assert kl == pytest.approx(per_dim.sum(), rel=1e-13)
    assert loss == pytest.approx(recon + 0.5 * np.maximum(per_dim, lam).sum(), rel=1e-13)
    assert loss > recon + 0.5 * kl
    gradcheck_passes(check_model(model, x, eps))
    elbo = evaluate_elbo(model, x, seed=0, batch_size=5)
    assert elbo["loss"] == pytest.approx(elbo["recon"] + elbo["kl"], rel=1e-12)  # β = 1, λ = 0
    assert DEFAULT_H < 1e-3 < np.abs(per_dim - lam).min()  # the whole-model check stays off the kink


def test_negative_free_bits_and_free_bits_on_an_autoencoder_are_refused():
    with pytest.raises(ValueError, match="free_bits must be >= 0 nats per latent dimension, got -0.5"):
        ModelConfig(free_bits=-0.5)
    with pytest.raises(ValueError, match="free_bits acts on the KL term of a VAE; the 'ae' model has none"):
        ModelConfig(model="ae", free_bits=1.0)
    with pytest.raises(ConfigError, match="free_bits acts on the KL term of a VAE"):
        TrainConfig(model="ae", free_bits=1.0)
    with pytest.raises(ValueError, match="free_bits must be a finite number of nats >= 0, got -1"):
        free_bits_kl(*posterior(), -1.0)


def test_the_command_line_refuses_negative_free_bits_and_the_autoencoder(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--free-bits", "-1"])
    assert info.value.code == 2 and "expected a finite number >= 0, got '-1'" in capsys.readouterr().err
    assert cli.main(["train", "--model", "ae", "--free-bits", "0.5"]) == 2
    assert "free_bits acts on the KL term of a VAE" in capsys.readouterr().err


@pytest.mark.parametrize("options", [{"likelihood": "continuous-bernoulli"},
                                     {"likelihood": "gaussian", "obs_var_mode": "learned"},
                                     {"free_bits": 0.5}])
def test_the_iwae_objective_refuses_the_options_it_does_not_support(options):
    with pytest.raises(ValueError, match="objective 'iwae' supports the bernoulli and fixed-variance gaussian "
                                         "likelihoods without free bits"):
        ModelConfig(objective="iwae", k=2, **options)


def test_evaluate_says_that_a_free_bits_run_is_scored_with_the_plain_kl(tmp_path):
    from tinyvae.evaluation.evaluate import evaluate_checkpoint  # noqa: PLC0415

    model = VAE(input_dim=784, hidden=(8,), latent=2, free_bits=0.25)
    model.save(tmp_path / "checkpoint.npz")
    notes = evaluate_checkpoint(tmp_path / "checkpoint.npz", limit=20)["notes"]
    assert any("plain KL, not the training objective (free bits λ = 0.25" in note for note in notes)
