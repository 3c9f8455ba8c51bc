"""Tests for tinyvae.prob.losses: gradients against central differences (float64, hypothesis), the
closed forms against hand-computed values and a Monte Carlo estimate, the reduction (sum over D
and Z, mean over N), extreme logits, the errors, and backend-cleanliness.
"""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyvae import backend
from tinyvae.checks import ShapeError
from tinyvae import (continuous_bernoulli_log_normalizer, continuous_bernoulli_log_prob, continuous_bernoulli_mean,
                     continuous_bernoulli_nll, free_bits_kl, gaussian_nll_learned_var, gaussian_nll_optimal_var)
from tinyvae.learn.gradcheck import DEFAULT_H, check_loss
from tinyvae.prob.losses import (MIN_SPLIT_ELEMENTS, bernoulli_log_prob, bernoulli_nll, gaussian_kl, gaussian_kl_per_dim,
                            gaussian_log_prob, gaussian_nll, log_normal_density, sum_of_logs)

F64 = np.float64
GRADCHECK = settings(max_examples=25, deadline=None)
dims = st.integers(1, 6)


def floats_in(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def arrays(shape, lo, hi):
    return hnp.arrays(F64, shape, elements=floats_in(lo, hi))


def measurable(value, *grads):
    """True when every gradient stands well above the round-off of a central difference of f.

    A difference quotient carries an error of about 1e-16·|f| / h; where a gradient is that small
    (f at its minimum, say) the relative error measures round-off, not the backward pass.
    """
    noise = np.finfo(F64).eps * max(1.0, abs(float(value))) / DEFAULT_H
    return all(np.abs(g).max() > 1e8 * noise for g in grads)  # round-off ≲ 1e-8 of the gradient


def sigmoid_by_hand(l):
    return np.array([1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v)) for v in l.ravel()]
                    ).reshape(l.shape)


# --------------------------------------------------------------------------- gradient checks


@GRADCHECK
@given(shape=st.tuples(dims, dims), data=st.data())
def test_bernoulli_nll_gradient_matches_finite_differences(shape, data, gradcheck_passes):
    logits, x = data.draw(arrays(shape, -8, 8)), data.draw(arrays(shape, 0, 1))
    assume(measurable(*bernoulli_nll(logits, x)))
    gradcheck_passes(check_loss(bernoulli_nll, {"logits": logits, "x": x}, wrt=["logits"]))


@GRADCHECK
@given(shape=st.tuples(dims, dims), obs_var=floats_in(0.1, 10.0), data=st.data())
def test_gaussian_nll_gradient_matches_finite_differences_for_any_obs_var(shape, obs_var, data, gradcheck_passes):
    mean, x = data.draw(arrays(shape, -3, 3)), data.draw(arrays(shape, -3, 3))
    assume(measurable(*gaussian_nll(mean, x, obs_var)))
    gradcheck_passes(check_loss(lambda mean, x: gaussian_nll(mean, x, obs_var), {"mean": mean, "x": x},
                                wrt=["mean"], label=f"gaussian_nll(obs_var={obs_var:g})"))


@GRADCHECK
@given(shape=st.tuples(dims, dims), data=st.data())
def test_gaussian_kl_gradients_match_finite_differences(shape, data, gradcheck_passes):
    mu, log_var = data.draw(arrays(shape, -3, 3)), data.draw(arrays(shape, -3, 3))
    assume(measurable(*gaussian_kl(mu, log_var)))
    report = gradcheck_passes(check_loss(gaussian_kl, {"mu": mu, "log_var": log_var}, wrt=["mu", "log_var"]))
    assert [r.name for r in report.results] == ["mu", "log_var"]


# --------------------------------------------------------------------------- the KL


@settings(max_examples=100, deadline=None)
@given(data=st.data(), shape=st.tuples(dims, dims))
def test_kl_is_never_negative(data, shape):
    mu, log_var = data.draw(arrays(shape, -10, 10)), data.draw(arrays(shape, -10, 10))
    assert float(gaussian_kl(mu, log_var)[0]) >= 0.0
    assert np.all(gaussian_kl_per_dim(mu, log_var) >= 0.0)


def test_kl_is_never_negative_near_the_prior_where_round_off_could_flip_its_sign():
    log_var = np.array([[1e-9, 3e-9, 1e-10, -1e-9, 1e-8, 2e-9, 7e-10, -3e-8]]).T
    per_dim = gaussian_kl_per_dim(np.zeros_like(log_var), log_var)
    assert np.all(per_dim >= 0)
    # KL = ½(e^v − 1 − v) ≈ v²/4 for small v: accurate, not just non-negative
    np.testing.assert_allclose(per_dim, log_var**2 / 4, rtol=1e-6)


def test_kl_is_zero_when_posterior_equals_prior():
    kl, dmu, dlog_var = gaussian_kl(np.zeros((3, 4)), np.zeros((3, 4)))
    assert float(kl) == 0.0
    assert not dmu.any() and not dlog_var.any()


def test_kl_matches_the_closed_form_by_hand():
    mu, log_var = np.array([[0.5, -1.0]]), np.array([[math.log(4.0), math.log(0.25)]])
    by_hand = 0.5 * ((4.0 + 0.25 - 1 - 1) + (0.25 + 1.0) - math.log(4.0) - math.log(0.25))
    assert float(gaussian_kl(mu, log_var)[0]) == pytest.approx(by_hand, rel=1e-15)


def test_kl_matches_a_monte_carlo_estimate_within_four_standard_errors():
    mu, log_var = np.array([[0.8, -1.5, 0.1]]), np.array([[0.4, -1.2, 0.9]])
    m = 400_000
    eps = np.random.default_rng(2024).standard_normal((m, 3))
    z = mu + np.exp(0.5 * log_var) * eps
    # log q(z) − log p(z) with q = N(μ, σ²), p = N(0, 1); the log 2π terms cancel
    samples = (-0.5 * log_var - 0.5 * eps**2 + 0.5 * z**2).sum(axis=1)
    estimate, std_err = samples.mean(), samples.std(ddof=1) / math.sqrt(m)
    kl = float(gaussian_kl(mu, log_var)[0])
    assert std_err < 0.005 * kl  # the estimate is sharp enough to mean something
    assert abs(estimate - kl) < 4 * std_err  # P(|N(0,1)| > 4) ≈ 6e-5; the seed fixes the draw


def test_kl_gradients_are_mu_and_half_of_var_minus_one_over_n():
    rng = np.random.default_rng(0)
    mu, log_var = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    _, dmu, dlog_var = gaussian_kl(mu, log_var)
    np.testing.assert_allclose(dmu, mu / 4, rtol=1e-15)
    np.testing.assert_allclose(dlog_var, 0.5 * (np.exp(log_var) - 1) / 4, rtol=1e-12)


def test_kl_per_dim_sums_to_the_kl_times_n():
    rng = np.random.default_rng(0)
    mu, log_var = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    per_dim = gaussian_kl_per_dim(mu, log_var)
    assert per_dim.shape == (5, 3)
    assert per_dim.sum() / 5 == pytest.approx(float(gaussian_kl(mu, log_var)[0]), rel=1e-14)


# --------------------------------------------------------------------------- Bernoulli


@pytest.mark.parametrize("logit, x, exact", [
    (1e4, 1.0, 0.0), (1e4, 0.0, 1e4), (-1e4, 0.0, 0.0), (-1e4, 1.0, 1e4), (1e4, 0.5, 5e3), (-1e4, 0.25, 2.5e3),
    (50.0, 0.0, 50.0 + math.log1p(math.exp(-50.0))),  # a clip of p to 1 − 1e-7 would give 16.1
    (-30.0, 1.0, 30.0 + math.log1p(math.exp(-30.0))),
])
def test_bernoulli_nll_is_finite_and_exact_for_huge_logits_without_clipping(logit, x, exact):
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, dlogits = bernoulli_nll(np.array([[logit]]), np.array([[x]]))
    assert np.isfinite(loss) and float(loss) == pytest.approx(exact, rel=1e-15, abs=1e-300)
    assert float(dlogits[0, 0]) == pytest.approx(float(sigmoid_by_hand(np.array([logit]))[0]) - x, abs=1e-15)


def test_bernoulli_nll_equals_the_cross_entropy_by_hand():
    rng = np.random.default_rng(0)
    logits, x = rng.normal(0, 3, (3, 5)), rng.uniform(0, 1, (3, 5))
    p = sigmoid_by_hand(logits)
    by_hand = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum() / 3
    assert float(bernoulli_nll(logits, x)[0]) == pytest.approx(by_hand, rel=1e-13)


def test_bernoulli_gradient_is_sigmoid_minus_target_over_n():
    rng = np.random.default_rng(1)
    logits, x = rng.normal(0, 4, (4, 6)), (rng.uniform(0, 1, (4, 6)) > 0.5).astype(F64)
    _, dlogits = bernoulli_nll(logits, x)
    np.testing.assert_allclose(dlogits, (sigmoid_by_hand(logits) - x) / 4, rtol=1e-12, atol=1e-17)


@given(size=st.integers(1, 5000), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_sum_of_logs_of_products_matches_the_sum_of_logs_in_float32(size, seed):
    values = (1 + np.random.default_rng(seed).random(size)).astype(np.float32)
    exact = np.log(values.astype(F64)).sum()
    # float32 resolution: the per-element logs themselves round at about 6e-8 each
    assert float(sum_of_logs(values)) == pytest.approx(exact, rel=1e-6, abs=size * 6e-8)


@pytest.mark.parametrize("size", [64, 128, 4096, 4097])
def test_sum_of_logs_never_overflows_even_when_every_factor_is_two(size):
    values = np.full(size, 2.0, np.float32)  # the largest factor 1 + exp(-|l|) can be (l = 0)
    assert float(sum_of_logs(values)) == pytest.approx(size * math.log(2.0), rel=1e-6)


def test_bernoulli_nll_split_over_threads_gives_the_same_gradient_bit_for_bit(monkeypatch):
    rng = np.random.default_rng(4)
    n = MIN_SPLIT_ELEMENTS // 784 + 3  # large enough to be split, and odd
    logits = (rng.standard_normal((n, 784)) * 4).astype(np.float32)
    x = rng.random((n, 784)).astype(np.float32)
    results = []
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("TINYVAE_THREADS", threads)
        results.append(bernoulli_nll(logits, x))
    exact = (np.maximum(logits, 0) - x * logits + np.log1p(np.exp(-np.abs(logits.astype(F64))))).sum() / n
    for loss, dlogits in results[1:]:
        np.testing.assert_array_equal(dlogits, results[0][1])
        assert float(loss) == pytest.approx(float(results[0][0]), rel=1e-6)
    assert float(results[0][0]) == pytest.approx(exact, rel=1e-6)


def test_bernoulli_log_prob_is_minus_the_per_example_loss():
    rng = np.random.default_rng(2)
    logits, x = rng.normal(0, 3, (4, 6)), rng.uniform(0, 1, (4, 6))
    log_p = bernoulli_log_prob(logits, x)
    assert log_p.shape == (4,)
    assert -log_p.mean() == pytest.approx(float(bernoulli_nll(logits, x)[0]), rel=1e-13)
    assert -log_p[1] == pytest.approx(float(bernoulli_nll(logits[1:2], x[1:2])[0]), rel=1e-13)


# --------------------------------------------------------------------------- Gaussian


@pytest.mark.parametrize("obs_var", [0.1, 1.0, 3.7])
def test_gaussian_nll_is_half_sse_over_obs_var_plus_log_normalizer_per_example(obs_var):
    rng = np.random.default_rng(3)
    mean, x = rng.standard_normal((4, 7)), rng.standard_normal((4, 7))
    loss, dmean = gaussian_nll(mean, x, obs_var)
    per_example = 0.5 * ((mean - x) ** 2).sum(axis=1) / obs_var + 3.5 * math.log(2 * math.pi * obs_var)
    assert float(loss) == pytest.approx(per_example.mean(), rel=1e-14)
    np.testing.assert_allclose(dmean, (mean - x) / (obs_var * 4), rtol=1e-14)


def test_gaussian_nll_with_unit_variance_is_scaled_mse_plus_a_constant():
    rng = np.random.default_rng(4)
    mean, x = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    mse = ((mean - x) ** 2).mean()  # over N and D
    assert float(gaussian_nll(mean, x)[0]) == pytest.approx(0.5 * 5 * mse + 2.5 * math.log(2 * math.pi), rel=1e-14)


def test_gaussian_log_prob_is_minus_the_per_example_loss():
    rng = np.random.default_rng(5)
    mean, x = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    log_p = gaussian_log_prob(mean, x, 0.5)
    assert log_p.shape == (3,)
    assert -log_p.mean() == pytest.approx(float(gaussian_nll(mean, x, 0.5)[0]), rel=1e-14)


def test_log_normal_density_matches_the_formula_by_hand():
    z, mu, log_var = np.array([[0.3, -1.0]]), np.array([[0.0, 0.5]]), np.array([[0.0, math.log(2.0)]])
    by_hand = (-0.5 * math.log(2 * math.pi) - 0.5 * 0.09
               - 0.5 * math.log(2 * math.pi * 2.0) - 0.5 * 1.5**2 / 2.0)
    assert float(log_normal_density(z, mu, log_var)[0]) == pytest.approx(by_hand, rel=1e-15)


# --------------------------------------------------------------------------- reduction


def losses_of(a, b):
    """Each loss of the batch (a, b) as a float: reconstruction (both kinds) and KL."""
    return [float(bernoulli_nll(a, np.clip(b, 0, 1))[0]), float(gaussian_nll(a, b, 0.7)[0]),
            float(gaussian_kl(a, b)[0])]


def test_losses_mean_over_the_batch_so_a_repeated_example_costs_the_same_as_one():
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((1, 5)), rng.uniform(0, 1, (1, 5))
    np.testing.assert_allclose(losses_of(np.vstack([a, a]), np.vstack([b, b])), losses_of(a, b), rtol=1e-14)


def test_losses_of_a_batch_are_the_mean_of_the_per_example_losses():
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((3, 5)), rng.uniform(0, 1, (3, 5))
    per_example = np.array([losses_of(a[i:i + 1], b[i:i + 1]) for i in range(3)])
    np.testing.assert_allclose(losses_of(a, b), per_example.mean(axis=0), rtol=1e-13)


def test_losses_sum_over_pixels_and_latent_dimensions():
    rng = np.random.default_rng(8)
    a, b = rng.standard_normal((1, 4)), rng.uniform(0, 1, (1, 4))
    per_column = np.array([losses_of(a[:, j:j + 1], b[:, j:j + 1]) for j in range(4)])
    np.testing.assert_allclose(losses_of(a, b), per_column.sum(axis=0), rtol=1e-13)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_losses_refuse_nan_and_inf_naming_the_argument(bad):
    good, poisoned = np.full((2, 3), 0.5), np.full((2, 3), 0.5)
    poisoned[1, 2] = bad
    with pytest.raises(ValueError, match="logits: expected finite values, got 1 NaN or inf entries"):
        bernoulli_nll(poisoned, good)
    with pytest.raises(ValueError, match=r"x \(targets\): expected finite values, got 1 NaN or inf entries"):
        gaussian_nll(good, poisoned)
    with pytest.raises(ValueError, match="log_var: expected finite values, got 1 NaN or inf entries"):
        gaussian_kl(good, poisoned)


def test_bernoulli_nll_refuses_targets_outside_the_unit_interval_naming_the_range():
    x = np.array([[0.0, 1.5], [-0.5, 0.2]])
    with pytest.raises(ValueError, match=r"x \(targets\): Bernoulli targets must lie in \[0, 1\], got values in \[-0.5, 1.5\]"):
        bernoulli_nll(np.zeros((2, 2)), x)


@pytest.mark.parametrize("loss, names", [
    (bernoulli_nll, ("logits", r"x \(targets\)")), (gaussian_nll, ("mean", r"x \(targets\)")),
    (gaussian_kl, ("mu", "log_var")),
])
def test_losses_refuse_integer_arrays_naming_the_argument_and_dtype(loss, names):
    floats, ints = np.zeros((2, 3)), np.zeros((2, 3), np.int64)
    with pytest.raises(TypeError, match=rf"{names[0]}: expected a floating-point array .*got dtype int64"):
        loss(ints, floats)
    with pytest.raises(TypeError, match=rf"{names[1]}: expected a floating-point array .*got dtype int64"):
        loss(floats, ints)


@pytest.mark.parametrize("loss, names", [
    (bernoulli_nll, r"logits and x \(targets\)"), (gaussian_nll, r"mean and x \(targets\)"),
    (gaussian_kl, "mu and log_var"),
])
def test_losses_refuse_mismatched_shapes_naming_both(loss, names):
    with pytest.raises(ShapeError, match=rf"{names} must have the same shape, got \(2, 3\) and \(2, 4\)"):
        loss(np.zeros((2, 3)), np.zeros((2, 4)))


def test_losses_refuse_a_batch_that_is_not_two_dimensional():
    with pytest.raises(ShapeError, match=r"logits: expected shape 2-d, got \(3,\)"):
        bernoulli_nll(np.zeros(3), np.zeros(3))
    with pytest.raises(ShapeError, match=r"mu: expected shape 2-d, got \(1, 2, 3\)"):
        gaussian_kl(np.zeros((1, 2, 3)), np.zeros((1, 2, 3)))


@pytest.mark.parametrize("obs_var", [0.0, -1.0, float("nan")])
def test_gaussian_nll_refuses_a_non_positive_obs_var(obs_var):
    with pytest.raises(ValueError, match=f"obs_var must be positive, got {obs_var}"):
        gaussian_nll(np.zeros((2, 2)), np.zeros((2, 2)), obs_var)


# --------------------------------------------------------------------------- backend-clean


LOSSES = {
    "bernoulli_nll": lambda a, b: bernoulli_nll(a, b),
    "gaussian_nll": lambda a, b: gaussian_nll(a, b, 0.3),
    "gaussian_kl": lambda a, b: gaussian_kl(a, b),
    "log_probs": lambda a, b: (bernoulli_log_prob(a, b), gaussian_log_prob(a, b, 2.0), log_normal_density(a, b, b),
                               gaussian_kl_per_dim(a, b)),
    "continuous_bernoulli": lambda a, b: (*continuous_bernoulli_nll(a, b), continuous_bernoulli_log_prob(a, b),
                                          *continuous_bernoulli_log_normalizer(a), continuous_bernoulli_mean(a)),
    "gaussian_nll_learned_var": lambda a, b: gaussian_nll_learned_var(a, b, 0 * a[0, :1] - 1.5),
    "gaussian_nll_optimal_var": lambda a, b: gaussian_nll_optimal_var(a, b),
    "free_bits_kl": lambda a, b: free_bits_kl(a, b, 0.7),
}


@pytest.mark.parametrize("loss", LOSSES.values(), ids=LOSSES.keys())
def test_every_loss_runs_on_device_arrays_and_agrees_with_numpy(loss, device_xp):
    rng = np.random.default_rng(9)
    a, b = rng.normal(0, 3, (4, 5)), rng.uniform(0, 1, (4, 5))
    host = loss(a, b)
    dev = loss(backend.to_device(a, device_xp), backend.to_device(b, device_xp))
    assert len(dev) == len(host)
    for h, d in zip(host, dev):
        assert backend.get_xp(d) is device_xp
        np.testing.assert_allclose(backend.to_numpy(d), h, rtol=1e-12, atol=1e-12)
