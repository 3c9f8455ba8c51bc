"""The closed-form KL(N(μ, diag σ²) ‖ N(0, I)) against a Monte Carlo estimate of its definition.

KL(q ‖ p) = E_q[log q(z) − log p(z)] (derivations/kl.md, Step 2); the closed form is
[eq:kl-closed-form]. Each case draws many z ~ q (seeded) and compares the sample mean of
log q(z) − log p(z), written out here independently of tinyvae, with tinyvae.prob.losses.gaussian_kl,
to within 4 standard errors of the Monte Carlo mean.
"""

import math

import numpy as np
import pytest

from tinyvae.prob.losses import gaussian_kl, gaussian_kl_per_dim

SAMPLES = 200_000

# (μ, log σ²) per latent dimension: at the prior, small and large variances, large means, mixed.
CASES = {
    "prior": ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
    "shifted": ([2.0, -1.5, 0.3], [0.0, 0.0, 0.0]),
    "small_variance": ([0.5, -0.2, 0.0], [-6.0, -9.0, -3.0]),
    "large_variance": ([0.0, 1.0, -0.5], [2.0, 3.0, 1.0]),
    "mixed": ([3.0, -0.7, 0.1], [-4.0, 2.5, 0.5]),
}


def log_normal(z, mean, var):
    """log N(z; mean, var) elementwise, from the definition."""
    return -0.5 * (np.log(2 * np.pi * var) + (z - mean) ** 2 / var)


def monte_carlo_kl_terms(mu, log_var, rng):
    """Samples of log q(z_j) − log p(z_j), shape (SAMPLES, Z), with z ~ q."""
    var = np.exp(log_var)
    z = mu + np.sqrt(var) * rng.standard_normal((SAMPLES, mu.size))
    return log_normal(z, mu, var) - log_normal(z, 0.0, 1.0)


@pytest.mark.parametrize("case", sorted(CASES))
def test_closed_form_kl_matches_monte_carlo(case):
    mu, log_var = (np.array(v, dtype=np.float64) for v in CASES[case])
    terms = monte_carlo_kl_terms(mu, log_var, np.random.default_rng(sorted(CASES).index(case)))
    total = terms.sum(axis=1)
    mc, se = total.mean(), total.std(ddof=1) / math.sqrt(SAMPLES)
    kl, _, _ = gaussian_kl(mu[None, :], log_var[None, :])
    assert abs(float(kl) - mc) <= 4 * se + 1e-12, f"closed form {float(kl)}, Monte Carlo {mc} ± {se}"
    # Per dimension too: each latent dimension's closed-form term against its own samples.
    per_dim = gaussian_kl_per_dim(mu[None, :], log_var[None, :])[0]
    se_dim = terms.std(axis=0, ddof=1) / math.sqrt(SAMPLES)
    assert np.all(np.abs(per_dim - terms.mean(axis=0)) <= 4 * se_dim + 1e-12)


def test_monte_carlo_check_would_catch_a_variance_for_std_bug():
    # The check has teeth: a KL computed with σ in place of σ² sits many standard errors away.
    mu, log_var = (np.array(v, dtype=np.float64) for v in CASES["mixed"])
    total = monte_carlo_kl_terms(mu, log_var, np.random.default_rng(99)).sum(axis=1)
    mc, se = total.mean(), total.std(ddof=1) / math.sqrt(SAMPLES)
    std = np.exp(0.5 * log_var)
    wrong = 0.5 * np.sum(std + mu**2 - 1 - log_var)
    assert abs(wrong - mc) > 100 * se


def test_kl_is_zero_when_posterior_equals_prior():
    kl, dmu, dlog_var = gaussian_kl(np.zeros((4, 3)), np.zeros((4, 3)))
    assert float(kl) == 0.0 and not dmu.any() and not dlog_var.any()


def test_per_dimension_kl_sums_to_the_total():
    rng = np.random.default_rng(7)
    mu = rng.normal(scale=2.0, size=(64, 5))
    log_var = rng.uniform(-8.0, 4.0, size=(64, 5))
    per_dim = gaussian_kl_per_dim(mu, log_var)
    assert per_dim.shape == (64, 5) and np.all(per_dim >= 0)
    kl, _, _ = gaussian_kl(mu, log_var)
    # Sum over Z, mean over N: the reduction of every tinyvae loss  [eq:loss-reduction].
    assert float(kl) == pytest.approx(per_dim.sum(axis=1).mean(), rel=1e-13)
    for case, (m, lv) in CASES.items():
        m, lv = np.array([m]), np.array([lv])
        assert float(gaussian_kl(m, lv)[0]) == pytest.approx(gaussian_kl_per_dim(m, lv).sum(), rel=1e-13, abs=0)
