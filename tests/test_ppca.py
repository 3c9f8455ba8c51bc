"""The linear-Gaussian VAE is probabilistic PCA: tinyvae against PPCA's closed forms.

Data come from a known linear-Gaussian model (D = 10, Z = 3, N = 5000, σ² = 0.1, seeded). PPCA's
maximum-likelihood solution and its log-likelihood are exact (Tipping & Bishop 1999, section 3);
a VAE holding that decoder and the exact posterior as encoder has an ELBO equal to it
(Lucas et al. 2019), the model's own stochastic loss estimates that ELBO, and a linear VAE
trained from a random start with tinyvae's Adam climbs to within a stated gap of it.
See derivations/ppca.md.
"""

import math
import time

import numpy as np
import pytest

from tinyvae import VAE
from tinyvae.models.ppca import (PPCA, fit_linear_vae, linear_vae_elbo, linear_vae_from_ppca, ppca_fit,
                          ppca_log_likelihood)

D, Z, N, SIGMA2 = 10, 3, 5000, 0.1

# The trained model's ELBO is within this many nats per example of the PPCA log-likelihood
# (about 1e-3 relative: the log-likelihood is about -9.7 nats). Measured with the default
# schedule of fit_linear_vae over training seeds 0..9: gaps 0.0009 to 0.0043, ~3 s each.
TRAINED_GAP_NATS = 0.01


def make_data(seed=1234):
    """N draws of x = W z + μ + noise from a random linear-Gaussian model, and its parameters."""
    rng = np.random.default_rng(seed)
    W_true = rng.normal(size=(D, Z))  # (D, Z)
    mean_true = rng.normal(size=D)  # (D,)
    X = rng.standard_normal((N, Z)) @ W_true.T + mean_true + math.sqrt(SIGMA2) * rng.standard_normal((N, D))
    return X, W_true, mean_true


@pytest.fixture(scope="module")
def data():
    return make_data()[0]


@pytest.fixture(scope="module")
def fit(data):
    return ppca_fit(data, Z)


def dense_log_likelihood(X, mean, W, sigma2):
    """Mean log N(x; μ, W Wᵀ + σ² I) straight from the definition, with slogdet and solve."""
    d = X.shape[1]
    C = W @ W.T + sigma2 * np.eye(d)
    sign, log_det = np.linalg.slogdet(C)
    assert sign > 0
    diff = X - mean
    quad = np.einsum("nd,nd->n", diff, np.linalg.solve(C, diff.T).T)
    return float(np.mean(-0.5 * (d * np.log(2 * np.pi) + log_det + quad)))


def posterior_kl(model, X, ppca):
    """Mean KL(q(z|x) ‖ p(z|x)) of the model's encoder to the exact PPCA posterior (diagonal here)."""
    W = ppca.W
    M = W.T @ W + ppca.sigma2 * np.eye(Z)
    post_mean = np.linalg.solve(M, W.T @ (X - ppca.mean).T).T  # (N, Z)
    post_var = ppca.sigma2 / np.diag(M)  # (Z,)
    mu, log_var = model.encode(X)
    var = np.exp(log_var)
    return float(np.mean(0.5 * np.sum(np.log(post_var) - log_var + (var + (mu - post_mean) ** 2) / post_var - 1,
                                       axis=1)))


def test_ppca_fit_recovers_the_generating_model():
    X, W_true, mean_true = make_data()
    fit = ppca_fit(X, Z)
    assert fit.W.shape == (D, Z) and fit.mean.shape == (D,) and fit.eigvals.shape == (D,)
    assert np.all(np.diff(fit.eigvals) <= 0)
    assert fit.sigma2 == pytest.approx(SIGMA2, rel=0.05)
    # W is identifiable only up to a rotation; W Wᵀ is not.
    C_fit, C_true = fit.W @ fit.W.T, W_true @ W_true.T
    assert np.linalg.norm(C_fit - C_true) / np.linalg.norm(C_true) < 0.1
    assert np.abs(fit.mean - mean_true).max() < 0.1
    # No rotation: the columns of W are orthogonal, with squared norms λ_j − σ².
    np.testing.assert_allclose(fit.W.T @ fit.W, np.diag(fit.eigvals[:Z] - fit.sigma2), atol=1e-10)


def test_analytic_elbo_of_ppca_solution_equals_ppca_log_likelihood(data, fit):
    log_lik = ppca_log_likelihood(data, fit.mean, fit.W, fit.sigma2)
    model = linear_vae_from_ppca(fit)
    elbo = linear_vae_elbo(model, data)
    rel = abs(elbo - log_lik) / abs(log_lik)
    print(f"PPCA log-likelihood {log_lik:.12f}, analytic ELBO {elbo:.12f}, relative difference {rel:.2e}")
    assert rel <= 1e-6  # measured: ~4e-16


def test_ppca_ml_solution_is_a_maximum(data, fit):
    log_lik = ppca_log_likelihood(data, fit.mean, fit.W, fit.sigma2)
    assert log_lik == pytest.approx(dense_log_likelihood(data, fit.mean, fit.W, fit.sigma2), rel=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(5):
        direction = rng.normal(size=fit.W.shape)
        for step in (1e-2, -1e-2):
            W = fit.W + step * direction
            perturbed = ppca_log_likelihood(data, fit.mean, W, fit.sigma2)
            assert perturbed == pytest.approx(dense_log_likelihood(data, fit.mean, W, fit.sigma2), rel=1e-12)
            assert perturbed < log_lik
    for factor in (0.95, 1.05):
        assert ppca_log_likelihood(data, fit.mean, fit.W, factor * fit.sigma2) < log_lik
        assert ppca_log_likelihood(data, fit.mean, factor * fit.W, fit.sigma2) < log_lik
    assert ppca_log_likelihood(data, fit.mean + 0.01, fit.W, fit.sigma2) < log_lik
    # Any rotation W R is as good: the likelihood sees only W Wᵀ.
    R, _ = np.linalg.qr(rng.normal(size=(Z, Z)))
    assert ppca_log_likelihood(data, fit.mean, fit.W @ R, fit.sigma2) == pytest.approx(log_lik, rel=1e-12)


def test_elbo_is_below_log_likelihood_for_other_encoders(data, fit):
    log_lik = ppca_log_likelihood(data, fit.mean, fit.W, fit.sigma2)
    model = linear_vae_from_ppca(fit)
    assert posterior_kl(model, data, fit) == pytest.approx(0.0, abs=1e-10)
    rng = np.random.default_rng(1)
    for name, scale in (("encoder.0.W", 0.02), ("encoder.0.b", 0.1)):
        other = linear_vae_from_ppca(fit)
        other.params[name][...] += scale * rng.normal(size=other.params[name].shape)
        elbo = linear_vae_elbo(other, data)
        gap = posterior_kl(other, data, fit)
        assert gap > 1e-4
        assert elbo < log_lik
        # The gap is exactly the KL from q(z|x) to the true posterior  [eq:elbo-gap].
        assert log_lik - elbo == pytest.approx(gap, rel=1e-9)


@pytest.mark.parametrize("which", ["ppca", "random"])
def test_analytic_elbo_matches_monte_carlo_of_the_model_loss(data, fit, which):
    model = linear_vae_from_ppca(fit) if which == "ppca" else VAE(
        input_dim=D, hidden=(), latent=Z, likelihood="gaussian", obs_var=fit.sigma2, dtype="float64", seed=3)
    rng = np.random.default_rng(2)
    draws = np.array([-float(model.forward(data, rng.standard_normal((N, Z)))) for _ in range(300)])
    mc, se = draws.mean(), draws.std(ddof=1) / math.sqrt(draws.size)
    elbo = linear_vae_elbo(model, data)
    assert se > 0
    assert abs(mc - elbo) <= 4 * se, f"analytic {elbo}, Monte Carlo {mc} ± {se}"


def test_trained_linear_vae_reaches_ppca_log_likelihood(data, fit):
    """A linear VAE trained from a random start comes within 0.01 nats per example of PPCA.

    fit_linear_vae: float64, obs_var fixed at the PPCA σ², tinyvae's Adam for 20000 steps of 100
    examples (lr 0.05 for half the steps, then geometric decay to 1e-4). Measured gap
    (log-likelihood − analytic ELBO) over seeds 0..9: 0.0009 to 0.0043 nats per example; the bound
    is TRAINED_GAP_NATS = 0.01 (≈ 1e-3 relative). It cannot be negative: the ELBO is below the
    model's own log-likelihood, which is below the maximum.
    """
    log_lik = ppca_log_likelihood(data, fit.mean, fit.W, fit.sigma2)
    start = time.perf_counter()
    model = fit_linear_vae(data, Z, obs_var=fit.sigma2, seed=0)
    seconds = time.perf_counter() - start
    gap = log_lik - linear_vae_elbo(model, data)
    print(f"trained gap {gap:.5f} nats per example ({gap / abs(log_lik):.1e} relative) in {seconds:.1f} s")
    assert -1e-9 <= gap <= TRAINED_GAP_NATS
    # The decoder it found is (a rotation of) the PPCA one, loosely: the likelihood is flat along
    # the largest eigenvalues, so 0.2% of a nat leaves them a few percent off (measured 2-5%).
    W_dec = model.params["decoder.0.W"].T  # (D, Z)
    assert np.linalg.norm(W_dec @ W_dec.T - fit.W @ fit.W.T) / np.linalg.norm(fit.W @ fit.W.T) < 0.1


def test_ppca_fit_rejects_bad_input(data):
    with pytest.raises(ValueError, match="k must be"):
        ppca_fit(data, D)
    with pytest.raises(ValueError, match="k must be"):
        ppca_fit(data, 0)
    with pytest.raises(ValueError, match="shape"):
        ppca_fit(data[0], 1)
    with pytest.raises(ValueError, match="at least 2"):
        ppca_fit(data[:1], 1)
    bad = data.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="finite"):
        ppca_fit(bad, Z)
    flat = np.zeros((20, 4))
    flat[:, 0] = np.arange(20.0)
    with pytest.raises(ValueError, match="subspace"):
        ppca_fit(flat, 1)
    tilted = flat @ np.random.default_rng(0).normal(size=(4, 4)) + 1.0  # still on a line; eigh leaves round-off
    with pytest.raises(ValueError, match="subspace"):
        ppca_fit(tilted, 1)


def test_linear_vae_elbo_refuses_models_that_are_not_linear_gaussian(data):
    with pytest.raises(ValueError, match="linear-Gaussian"):
        linear_vae_elbo(VAE(input_dim=D, hidden=(8,), latent=Z, likelihood="gaussian", dtype="float64"), data)
    with pytest.raises(ValueError, match="linear-Gaussian"):
        linear_vae_elbo(VAE(input_dim=D, hidden=(), latent=Z, likelihood="bernoulli", dtype="float64"), data)


def test_linear_vae_from_ppca_refuses_a_rotated_w(fit):
    R, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(Z, Z)))
    rotated = PPCA(mean=fit.mean, W=fit.W @ R, sigma2=fit.sigma2, eigvals=fit.eigvals)
    with pytest.raises(ValueError, match="not diagonal"):
        linear_vae_from_ppca(rotated)
