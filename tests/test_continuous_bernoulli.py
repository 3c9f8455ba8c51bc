"""Tests for tinyvae.prob.continuous_bernoulli: log C(l) and its derivative against a 40-digit reference
in float64 and float32 (0, tiny, the series' seam at |l| = 1, ±1e4), central-difference gradient
checks at and near l = 0 (float64), the density integrating to 1 and its mean, the loss and its
gradient (mean − x), draws, the decoder's mean image, bad targets, and planted bugs the checks catch.
"""

from __future__ import annotations

import math
from pathlib import Path
from decimal import Decimal, localcontext

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyvae import VAE
from tinyvae.prob import continuous_bernoulli as cb
from tinyvae.learn.gradcheck import check_loss
from tinyvae.prob.losses import bernoulli_nll

F64 = np.float64
LOGITS = [0.0, 1e-30, -1e-12, 1e-8, -1e-4, 3e-3, 0.1, -0.5, 0.999, -0.9999, 1.0, -1.0, 1.0001, 1.5, -2.0, 5.0,
          -12.0, 30.0, -88.0, 100.0, 700.0, -5000.0, 1e4, -1e4]


def reference(l):
    """(log C, d log C/dl, E[x]) of the logit ``l`` (a float) to over 40 digits, with Decimal."""
    with localcontext() as ctx:
        ctx.prec = 110  # 1/l − 1/sinh l at l = 1e-30 cancels 61 digits
        if l == 0:
            return math.log(2), 0.0, 0.5
        x = Decimal(l)
        e, e_neg = x.exp(), (-x).exp()
        log_c = (x * (e + 1) / (e - 1)).ln()  # log(l / tanh(l/2))
        g = 1 / x - 2 / (e - e_neg)  # 1/l − 1/sinh l
        mean = 1 / (1 - e_neg) - 1 / x
        return float(log_c), float(g), float(mean)


REF = np.array([reference(float(np.float32(v))) for v in LOGITS])  # of the float32-rounded logits


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 2e-15), (np.float32, 2e-6)])
def test_log_normalizer_and_mean_match_a_40_digit_reference_from_zero_to_1e4(dtype, rtol):
    logits = np.array(LOGITS, dtype=np.float32).astype(dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        log_c, g = cb.log_normalizer(logits)
        mean = cb.mean(logits)
    assert log_c.dtype == g.dtype == mean.dtype == dtype
    np.testing.assert_allclose(log_c, REF[:, 0], rtol=rtol, atol=0)
    np.testing.assert_allclose(g, REF[:, 1], rtol=rtol, atol=1e-300)  # relative even for g(1e-30) = 1.7e-31
    np.testing.assert_allclose(mean, REF[:, 2], rtol=0, atol=4 * np.finfo(dtype).eps)


def test_log_normalizer_is_log_2_with_zero_slope_at_zero_and_even_with_an_odd_slope():
    log_c, g = cb.log_normalizer(np.array([0.0, 0.0]))
    assert log_c[0] == math.log(2) and g[0] == 0.0
    l = np.linspace(-40, 40, 801)
    (c_pos, g_pos), (c_neg, g_neg) = cb.log_normalizer(l), cb.log_normalizer(-l)
    np.testing.assert_array_equal(c_pos, c_neg)
    np.testing.assert_array_equal(g_pos, -g_neg)


def test_the_series_and_the_closed_form_agree_at_the_seam():
    below, above = np.nextafter(1.0, 0.0), 1.0  # the last logit of the series, the first of the closed form
    (c1, g1), (c2, g2) = cb.log_normalizer(np.array([below])), cb.log_normalizer(np.array([above]))
    assert abs(c1[0] - c2[0]) < 4e-16 and abs(g1[0] - g2[0]) < 4e-16


def test_the_series_coefficients_are_the_exact_bernoulli_number_values():
    c = cb._series_coefficients(4)
    assert [str(v) for v in c] == ["1/6", "-7/360", "31/15120", "-127/604800"]


def log_c_sum(logits):
    log_c, g = cb.log_normalizer(logits)
    return log_c.sum(), g


@pytest.mark.parametrize("logits", [
    pytest.param([[0.0, 1e-6, -1e-3, 2e-2], [-0.05, 0.2, -0.6, 0.95]], id="at-and-near-zero"),
    pytest.param([[0.0, -0.999, 1.0, 1.001], [-3.0, 8.0, -25.0, 60.0]], id="zero-to-60"),
])
def test_log_normalizer_gradient_matches_central_differences_at_and_near_zero(logits, gradcheck_passes):
    gradcheck_passes(check_loss(log_c_sum, {"logits": np.array(logits, dtype=F64)}, wrt=["logits"],
                                label="log C(l)"))


def test_float32_gradient_of_the_loss_agrees_with_float64():
    rng = np.random.default_rng(3)
    logits = np.concatenate([rng.normal(0, 4, (6, 50)), rng.normal(0, 0.3, (6, 50))])
    logits[0, :4] = 0.0, 1e-7, -1e4, 1e4
    x = rng.uniform(0, 1, logits.shape)
    loss64, grad64 = cb.continuous_bernoulli_nll(logits, x)
    loss32, grad32 = cb.continuous_bernoulli_nll(logits.astype(np.float32), x.astype(np.float32))
    assert grad32.dtype == np.float32 and loss32.dtype == np.float32
    # inputs rounded to float32 move the answer by about eps32 · |l|; the gradient is bounded by 1/N
    assert np.abs(grad32 - grad64).max() < 4e-7 / len(logits)
    assert abs(float(loss32) - float(loss64)) < 1e-6 * np.abs(logits).sum() / len(logits) + 1e-4


@settings(max_examples=15, deadline=None)
@given(shape=st.tuples(st.integers(1, 5), st.integers(1, 6)), data=st.data())
def test_continuous_bernoulli_nll_gradient_matches_finite_differences(shape, data, gradcheck_passes):
    elements = st.floats(-8, 8, allow_nan=False, allow_subnormal=False)
    logits = data.draw(hnp.arrays(F64, shape, elements=elements))
    x = data.draw(hnp.arrays(F64, shape, elements=st.floats(0, 1, allow_subnormal=False)))
    _, grad = cb.continuous_bernoulli_nll(logits, x)
    assume(np.abs(grad).max() > 1e-6)  # above the round-off of a central difference
    gradcheck_passes(check_loss(cb.continuous_bernoulli_nll, {"logits": logits, "x": x}, wrt=["logits"]))


def test_gradient_is_the_mean_minus_the_pixel_over_n():
    rng = np.random.default_rng(0)
    logits, x = rng.normal(0, 3, (4, 7)), rng.uniform(0, 1, (4, 7))
    _, grad = cb.continuous_bernoulli_nll(logits, x)
    np.testing.assert_allclose(grad, (cb.mean(logits) - x) / 4, rtol=0, atol=1e-16)


def test_density_integrates_to_one_and_its_mean_is_the_formula():
    x = ((np.arange(50_000) + 0.5) / 50_000)[None, :]  # midpoint rule on [0, 1]: error about (l/50000)² / 24
    logits = np.array([-1e4, -40.0, -3.0, -0.4, 0.0, 1e-5, 0.7, 6.0, 25.0])[:, None]
    for l in logits:
        density = np.exp(-cb._pixel_nll(np.broadcast_to(l, x.shape), x)[0])
        if abs(l[0]) < 100:  # the midpoint rule cannot resolve e^(lx) of width 1e-4
            assert abs(density.mean() - 1) < 1e-7
            assert abs((x * density).mean() - cb.mean(l)[0]) < 1e-7


def test_loss_is_the_binary_cross_entropy_minus_the_log_normalizer():
    rng = np.random.default_rng(1)
    logits, x = rng.normal(0, 5, (3, 9)), rng.uniform(0, 1, (3, 9))
    loss, _ = cb.continuous_bernoulli_nll(logits, x)
    bce, _ = bernoulli_nll(logits, x)
    np.testing.assert_allclose(loss, bce - cb.log_normalizer(logits)[0].sum() / 3, rtol=1e-13)
    per_example = cb.continuous_bernoulli_log_prob(logits, x)
    np.testing.assert_allclose(-per_example.mean(), loss, rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_is_finite_and_exact_at_logits_of_1e4(dtype):
    logits = np.array([[1e4, -1e4, 1e4, -1e4]], dtype=dtype)
    x = np.array([[1.0, 0.0, 0.999, 0.001]], dtype=dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        loss, grad = cb.continuous_bernoulli_nll(logits, x)
    # density l e^(l(x−1)) near 1 (and its mirror): −log p = −log 1e4 + 1e4·(1 − x) for l = 1e4
    expected = [-math.log(1e4), -math.log(1e4), -math.log(1e4) + 10.0, -math.log(1e4) + 10.0]
    tol = 1e-9 if dtype == np.float64 else 1e-2  # float32's 0.999 is 0.999000012...: 1e4 times that
    np.testing.assert_allclose(float(loss), sum(expected), rtol=0, atol=tol)
    np.testing.assert_allclose(grad, [[-1e-4, 1e-4, 1 - 1e-4 - float(x[0, 2]), 1e-4 - float(x[0, 3])]], atol=1e-6)


def test_a_sharp_decoder_has_a_negative_nll_because_it_is_a_density():
    logits = np.full((1, 784), -12.0)  # a black background, predicted confidently
    loss, _ = cb.continuous_bernoulli_nll(logits, np.zeros((1, 784)))
    assert float(loss) < -1000  # each pixel's density at 0 is about 12


def test_draws_have_the_distribution_mean_and_stay_in_the_unit_interval():
    rng = np.random.default_rng(0)
    logits = np.repeat(np.array([[-20.0], [-2.0], [0.0], [1e-9], [0.5], [4.0], [1e4]]), 100_000, axis=1)
    draws = cb.sample(logits, rng)
    assert draws.min() >= 0 and draws.max() <= 1
    se = draws.std(axis=1) / math.sqrt(draws.shape[1])
    assert np.all(np.abs(draws.mean(axis=1) - cb.mean(logits[:, 0])) < 5 * se + 1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_draws_at_small_logits_match_the_inverse_cdf_of_the_same_uniforms(dtype):
    # Both signs, down to just above the l = 0 cut-off: log(u + (1 − u) e^(−l)) for l > 0 lost the
    # small difference from 1 in float32 (0.057 off at l = 2e-6); log1p/expm1 keeps it.
    logits = np.repeat(np.array([[2e-6], [-2e-6], [1e-5], [-1e-5], [1e-4], [-1e-4], [0.3], [-0.3]]), 20_000, axis=1)
    draws = cb.sample(logits.astype(dtype), np.random.default_rng(5))
    u = np.random.default_rng(5).random(logits.shape).astype(dtype).astype(np.float64)  # the sampler's uniforms
    exact = np.log1p(u * np.expm1(logits)) / logits  # [eq:cb-inverse-cdf] in float64, no cancellation for l < 1
    assert draws.dtype == dtype
    np.testing.assert_allclose(draws, exact, rtol=0, atol=1e-6 if dtype == np.float32 else 1e-12)


def test_decode_returns_the_continuous_bernoulli_mean_not_the_sigmoid():
    model = VAE(input_dim=12, hidden=(6,), latent=2, likelihood="continuous-bernoulli", dtype="float64", seed=0)
    z = np.random.default_rng(0).standard_normal((5, 2)) * 3
    logits = model.decoder.forward(z)
    np.testing.assert_allclose(model.decode(z), cb.mean(logits), rtol=1e-15)
    assert np.abs(model.decode(z) - 1 / (1 + np.exp(-logits))).max() > 1e-3


def test_model_log_likelihood_is_minus_the_per_example_loss():
    model = VAE(input_dim=12, hidden=(6,), latent=2, likelihood="continuous-bernoulli", dtype="float64", seed=0)
    rng = np.random.default_rng(2)
    logits, x = rng.normal(0, 3, (3, 4, 12)), rng.uniform(0, 1, (4, 12))
    per_example = model.log_likelihood(logits, x)  # (S, N): x broadcasts against S samples
    assert per_example.shape == (3, 4)
    for s in range(3):
        np.testing.assert_allclose(per_example[s], cb.continuous_bernoulli_log_prob(logits[s], x), rtol=1e-14)


@pytest.mark.parametrize("bad, where", [(1.5, "[0, 1.5]"), (-0.25, "[-0.25, 1]")])
def test_targets_outside_the_unit_interval_are_refused_naming_the_range(bad, where):
    x = np.linspace(0, 1, 12).reshape(2, 6)
    x[1, 3] = bad
    with pytest.raises(ValueError, match=r"continuous Bernoulli targets must lie in \[0, 1\].*got values in "
                                         + where.replace("[", r"\[").replace("]", r"\]")):
        cb.continuous_bernoulli_nll(np.zeros((2, 6)), x)
    model = VAE(input_dim=6, hidden=(4,), latent=2, likelihood="continuous-bernoulli", dtype="float64")
    with pytest.raises(ValueError, match="continuous Bernoulli targets"):
        model.forward(x, np.zeros((2, 2)))


# --------------------------------------------------------------------------- planted bugs


def test_a_gradient_that_forgets_the_normalizer_fails_the_check():
    """σ(l) − x, the Bernoulli's gradient, is what a port from BCE forgets to change."""
    def planted(logits, x):
        loss, _ = cb.continuous_bernoulli_nll(logits, x)
        return loss, (1 / (1 + np.exp(-logits)) - x) / logits.shape[0]

    rng = np.random.default_rng(0)
    report = check_loss(planted, {"logits": rng.normal(0, 3, (3, 5)), "x": rng.uniform(0, 1, (3, 5))},
                        wrt=["logits"])
    assert not report.passed and report.max_error > 0.05


def test_the_closed_form_near_zero_fails_the_reference_that_the_series_passes():
    """1/l − 1/sinh l without the series: exact in theory, wrong by 27 % at l = 1e-3 in float32."""
    l = np.array([1e-3, -2e-3, 1e-2], dtype=np.float32)
    naive = 1 / l - 1 / np.sinh(l)
    ref = np.array([reference(float(v))[1] for v in l])
    assert np.abs(naive / ref - 1).max() > 0.1
    np.testing.assert_allclose(cb.log_normalizer(l)[1], ref, rtol=2e-6)


def test_a_normalizer_missing_its_log_2_fails_the_integral():
    """The series without its constant term: the density integrates to 1/2 near l = 0."""
    x = (np.arange(100_000) + 0.5) / 100_000
    l = 0.3
    log_c_planted = cb.log_normalizer(np.array([l]))[0][0] - math.log(2)
    bce = max(l, 0) - x * l + np.log1p(np.exp(-abs(l)))
    assert abs(np.exp(log_c_planted - bce).mean() - 0.5) < 1e-6


def test_logits_for_mean_invert_the_mean_and_refuse_0_and_1():
    p = np.array([1e-3, 0.05, 0.5, 0.73, 0.999])
    np.testing.assert_allclose(cb.mean(cb.logits_for_mean(p)), p, rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match="strictly between 0 and 1, got values in \\[0, 0.5\\]"):
        cb.logits_for_mean(np.array([0.0, 0.5]))


@pytest.mark.parametrize("likelihood", ["bernoulli", "continuous-bernoulli", "gaussian"])
def test_the_data_mean_output_bias_makes_the_untrained_decoder_predict_the_average_image(likelihood):
    from tinyvae.run.loop import init_output_bias  # noqa: PLC0415

    images = (np.random.default_rng(0).random((50, 12)) * 255).astype(np.uint8)
    model = VAE(input_dim=12, hidden=(6,), latent=2, likelihood=likelihood, dtype="float64", seed=0)
    model.decoder.layers[-1].params["W"][...] = 0  # the output is then the bias alone
    init_output_bias(model, images, "data-mean")
    average = np.clip(images.mean(axis=0) / 255, 1e-3, 1 - 1e-3)
    np.testing.assert_allclose(model.decode(np.zeros((1, 2)))[0], average, rtol=1e-12)


def test_the_nll_of_a_pixel_at_zero_falls_without_bound_and_the_derivation_says_so():
    """On pixels at exactly 0 the likelihood has no maximum: −log p(0 | l) ≈ −log|l| → −∞ with a positive
    gradient at every l. derivations/continuous-bernoulli.md must state it and name the remedy."""
    logits = -np.logspace(0, 5, 200)[None, :]  # (1, 200): l from −1 to −1e5
    per_pixel = np.array([float(cb.continuous_bernoulli_nll(logits[:, i:i + 1], np.zeros((1, 1)))[0])
                          for i in range(logits.shape[1])])
    _, grad = cb.continuous_bernoulli_nll(logits, np.zeros_like(logits))
    assert (np.diff(per_pixel) < 0).all() and (grad > 0).all()
    assert abs(per_pixel[-1] + math.log(1e5)) < 1e-6
    page = (Path(__file__).resolve().parents[1] / "derivations" / "continuous-bernoulli.md").read_text(encoding="utf-8")
    text = " ".join(page.split())
    assert "The likelihood has no maximum on data with atoms." in text
    assert "dequantize" in text and "x = (k + u)/256" in text
