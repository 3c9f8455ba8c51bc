"""Tests for tinyvae.evaluation.evaluate: log-mean-exp, the negative ELBO, the importance-weighted NLL against
the exact likelihood of a linear Gaussian VAE, KL per dimension, active units, and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyvae import VAE, Adam, Autoencoder, backend, cli, data
from tinyvae.evaluation.evaluate import (active_units, evaluate_checkpoint, evaluate_elbo, importance_weighted_nll,
                              kl_per_dimension, log_mean_exp)

# --------------------------------------------------------------------------- log-mean-exp

values = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float64, st.integers(1, 30), elements=values))
def test_log_mean_exp_is_log_of_mean_of_exp_and_stays_finite_at_plus_minus_1e4(a):
    got = log_mean_exp(a, axis=0)
    assert np.isfinite(got)
    assert a.max() - math.log(a.size) - 1e-9 <= got <= a.max() + 1e-9  # the mean lies between max/n and max
    if np.abs(a).max() < 700:  # where exp does not overflow, the naive formula is the reference
        assert got == pytest.approx(np.log(np.mean(np.exp(a))), rel=1e-12, abs=1e-12)


def test_log_mean_exp_reduces_the_given_axis_and_keeps_float32():
    a = np.array([[1e4, 1e4], [-1e4, 1e4], [0.0, 0.0]], dtype=np.float32)  # (3, 2)
    over_rows = log_mean_exp(a, axis=0)
    assert over_rows.shape == (2,) and over_rows.dtype == np.float32
    np.testing.assert_allclose(over_rows, [1e4 - math.log(3), 1e4 + math.log(2 / 3)], rtol=1e-6)
    np.testing.assert_allclose(log_mean_exp(a, axis=1), [1e4, 1e4 - math.log(2), 0.0], rtol=1e-6, atol=1e-6)
    assert log_mean_exp(np.full(4, -np.inf), axis=0) == -np.inf


# --------------------------------------------------------------------------- a linear Gaussian VAE: exact log p(x)

OBS_VAR = 0.3
W_DEC = np.array([[1.0, 0.5, -0.3], [0.8, -0.2, 0.6]])  # (Z, D): correlated rows, so q = mean-field is not exact
B_DEC = np.array([0.2, -0.1, 0.4])


def linear_vae(mean_shift=0.0, log_var_shift=0.0):
    """input_dim=3, no hidden layer, Z=2, Gaussian likelihood: p(x) = N(b, WᵀW + σ²I) exactly.

    The encoder gets the true posterior mean and the optimal mean-field variances 1/Λ_jj,
    optionally spoiled by ``mean_shift`` and ``log_var_shift``.
    """
    model = VAE(input_dim=3, hidden=(), latent=2, likelihood="gaussian", obs_var=OBS_VAR, dtype="float64", seed=0)
    precision = np.eye(2) + W_DEC @ W_DEC.T / OBS_VAR  # Λ (Z, Z)
    post_cov = np.linalg.inv(precision)
    gain = W_DEC.T @ post_cov / OBS_VAR  # (D, Z): μ = (x − b) gain
    enc_w, enc_b = model.params["encoder.0.W"], model.params["encoder.0.b"]  # (D, 2Z), (2Z,)
    enc_w[:, :2], enc_b[:2] = gain, -B_DEC @ gain + mean_shift
    enc_w[:, 2:], enc_b[2:] = 0.0, -np.log(np.diag(precision)) + log_var_shift
    model.params["decoder.0.W"][...] = W_DEC
    model.params["decoder.0.b"][...] = B_DEC
    return model


def linear_data(n, seed=1):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 2))
    return z @ W_DEC + B_DEC + math.sqrt(OBS_VAR) * rng.standard_normal((n, 3))  # (N, D)


def exact_nll(x):
    """−log N(x; b, WᵀW + σ²I) per example."""
    cov = W_DEC.T @ W_DEC + OBS_VAR * np.eye(3)
    diff = x - B_DEC
    maha = np.einsum("nd,de,ne->n", diff, np.linalg.inv(cov), diff)
    return 0.5 * (3 * math.log(2 * math.pi) + np.linalg.slogdet(cov)[1] + maha)


def exact_negative_elbo(model, x):
    """−ELBO per example in closed form: E_q[−log p(x|z)] + KL, with q Gaussian and the decoder linear."""
    mu, log_var = (np.asarray(a) for a in model.encode(x))
    resid = x - mu @ W_DEC - B_DEC
    spread = np.exp(log_var) @ (W_DEC ** 2).sum(axis=1)  # E_q‖(z − μ) W‖² = Σ_j σ_j² ‖W_j‖²
    recon = 0.5 * ((resid ** 2).sum(axis=1) + spread) / OBS_VAR + 1.5 * math.log(2 * math.pi * OBS_VAR)
    kl = 0.5 * (np.exp(log_var) + mu ** 2 - 1 - log_var).sum(axis=1)
    return recon + kl


def test_iw_nll_approaches_the_exact_nll_of_a_linear_gaussian_vae_as_k_grows():
    model, x = linear_vae(mean_shift=0.4, log_var_shift=0.7), linear_data(200)
    exact = exact_nll(x).mean()
    gaps = [importance_weighted_nll(model, x, k=k, seed=0).mean() - exact for k in (1, 100, 5000)]
    assert gaps[0] > gaps[1] > gaps[2]  # the bound tightens
    assert gaps[0] > 0.3  # a poor q leaves a visible gap at K = 1 ...
    assert abs(gaps[2]) < 0.01  # ... that K = 5000 all but closes
    good = linear_vae()
    assert importance_weighted_nll(good, x, k=5000, seed=0).mean() == pytest.approx(exact, abs=2e-3)


def test_iw_nll_with_k_1_is_the_negative_elbo_and_larger_k_lies_below_it():
    model, x = linear_vae(mean_shift=0.4), linear_data(4000)
    closed_form = exact_negative_elbo(model, x).mean()
    one = importance_weighted_nll(model, x, k=1, seed=3)
    sem = one.std() / math.sqrt(len(one))
    assert one.mean() == pytest.approx(closed_form, abs=4 * sem)
    sampled = evaluate_elbo(model, x, seed=3)["loss"]
    assert sampled == pytest.approx(closed_form, abs=4 * sem)
    assert importance_weighted_nll(model, x[:500], k=100, seed=3).mean() < evaluate_elbo(model, x[:500])["loss"]


def test_iw_nll_is_reproducible_and_independent_of_how_it_is_chunked_in_expectation():
    model, x = linear_vae(mean_shift=0.4), linear_data(50)
    a = importance_weighted_nll(model, x, k=300, seed=7)
    np.testing.assert_array_equal(a, importance_weighted_nll(model, x, k=300, seed=7))
    b = importance_weighted_nll(model, x, k=300, seed=7, batch_size=7, sample_chunk=64)
    assert a.shape == b.shape == (50,)
    assert b.mean() == pytest.approx(a.mean(), abs=0.02)


def test_iw_nll_refuses_an_autoencoder():
    ae = Autoencoder(input_dim=3, hidden=(), latent=2, likelihood="gaussian")
    with pytest.raises(TypeError, match="autoencoder"):
        importance_weighted_nll(ae, linear_data(4), k=5)


# --------------------------------------------------------------------------- MNIST models


@pytest.fixture(scope="module")
def test_split():
    return data.load_split("test")  # 10 000 digits; the training split would cost a second more to read


@pytest.fixture(scope="module")
def test_digits(test_split):
    x, y = test_split
    return x[:1000], y[:1000]


@pytest.fixture(scope="module")
def trained_vae(test_split):
    """A 784-32-2 VAE after 200 Adam steps on 1000 dynamically binarized digits (disjoint from test_digits)."""
    x = test_split[0][5000:6000]
    model = VAE(input_dim=784, hidden=(32,), latent=2, seed=0)
    opt, rng = Adam(model, lr=3e-3), np.random.default_rng(0)
    for step in range(200):
        batch = x[(step % 10) * 100:(step % 10 + 1) * 100]
        model.loss_and_grad(data.to_float(batch, "dynamic", rng), validate=False)
        opt.step()
    return model


def test_evaluate_elbo_samples_eps_so_it_differs_from_decoding_the_mean_and_is_seeded(trained_vae, test_digits):
    x = data.binarize_static(test_digits[0][:500], 0)
    result = evaluate_elbo(trained_vae, x, seed=0)
    assert result == evaluate_elbo(trained_vae, x, seed=0)
    assert result["loss"] != evaluate_elbo(trained_vae, x, seed=1)["loss"]
    assert result["loss"] == pytest.approx(result["recon"] + result["kl"], rel=1e-6)
    xf = data.to_float(x)
    at_mean = float(trained_vae.forward(xf, np.zeros((500, 2), np.float32)))  # z = μ: no bound on anything
    assert abs(result["loss"] - at_mean) > 0.5
    assert result["recon"] > float(trained_vae.stats["recon"])  # noise in z costs reconstruction


def test_evaluate_elbo_does_not_depend_on_the_batch_size_and_takes_floats_or_bytes(trained_vae, test_digits):
    x = test_digits[0][:300]
    whole = evaluate_elbo(trained_vae, x, batch_size=1000)
    assert evaluate_elbo(trained_vae, x, batch_size=64) == pytest.approx(whole, rel=1e-5)
    assert evaluate_elbo(trained_vae, data.to_float(x), batch_size=64) == pytest.approx(whole, rel=1e-5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        evaluate_elbo(trained_vae, data.to_float(x) * 255)


def test_evaluate_elbo_of_an_autoencoder_is_its_reconstruction_error(test_digits):
    ae = Autoencoder(input_dim=784, hidden=(32,), latent=2, seed=0)
    result = evaluate_elbo(ae, test_digits[0][:200])
    assert result["kl"] == 0.0 and result["loss"] == pytest.approx(result["recon"])


def test_iw_nll_of_a_trained_mnist_vae_lies_below_its_negative_elbo(trained_vae, test_digits):
    x = data.binarize_static(test_digits[0][:100], 0)
    elbo = evaluate_elbo(trained_vae, x, seed=0)["loss"]
    nll_1, nll_50 = (importance_weighted_nll(trained_vae, x, k=k, seed=0).mean() for k in (1, 50))
    assert nll_1 == pytest.approx(elbo, rel=0.02)
    assert nll_50 < elbo


def test_kl_per_dimension_sums_to_the_kl_term(trained_vae, test_digits):
    x = test_digits[0]
    per_dim = kl_per_dimension(trained_vae, x, batch_size=300)
    assert per_dim.shape == (2,) and (per_dim >= 0).all()
    assert per_dim.sum() == pytest.approx(evaluate_elbo(trained_vae, x)["kl"], rel=1e-5)


def test_active_units_counts_a_dimension_the_encoder_ignores_as_inactive(test_digits):
    model = VAE(input_dim=784, hidden=(32,), latent=4, seed=0)
    w = model.params["encoder.2.W"]  # (H, 2Z): the first Z columns give μ
    w[:, [1, 3]] = 0.0  # μ_1 and μ_3 no longer depend on x
    count, variances = active_units(model, test_digits[0])
    assert variances.shape == (4,)
    assert variances[1] == variances[3] == 0.0
    assert min(variances[0], variances[2]) > 0.01
    assert count == 2
    assert active_units(model, test_digits[0], threshold=10 * variances.max())[0] == 0


def test_evaluation_runs_unchanged_on_a_device_namespace(device_xp, trained_vae, test_digits):
    x = data.binarize_static(test_digits[0][:100], 0)
    on_device = VAE(trained_vae.config)
    on_device.set_theta(trained_vae.theta)
    on_device.to(device_xp)
    xd = backend.to_device(data.to_float(x), device_xp)
    assert evaluate_elbo(on_device, xd) == pytest.approx(evaluate_elbo(trained_vae, x), rel=1e-5)
    np.testing.assert_allclose(importance_weighted_nll(on_device, x[:20], k=30),
                               importance_weighted_nll(trained_vae, x[:20], k=30), rtol=1e-5)
    np.testing.assert_allclose(kl_per_dimension(on_device, x), kl_per_dimension(trained_vae, x), rtol=1e-5)
    assert active_units(on_device, xd)[0] == active_units(trained_vae, x)[0]


# --------------------------------------------------------------------------- checkpoints and the CLI


@pytest.fixture
def run_dir(tmp_path, trained_vae):
    """A run folder laid out as tinyvae.run.train writes it."""
    run = tmp_path / "run"
    run.mkdir()
    trained_vae.save(run / "checkpoint.npz")
    config = {"binarize": "dynamic", "seed": 0, "data": None, "model": "vae", "test_binarize_seed": 2014,
              "model_config": trained_vae.config.to_dict()}
    (run / "config.json").write_text(json.dumps(config))
    return run


def test_evaluate_checkpoint_scores_a_binarized_run_on_its_own_fixed_test_binarization(run_dir):
    result = evaluate_checkpoint(run_dir, iw_samples=5, limit=100)
    assert result["n"] == 100 and result["binarize"] == "dynamic"
    assert "binarize_static, seed 2014: the run's own" in result["evaluated_on"]
    assert result["nll"] < result["loss"] + 1.0
    assert not any("caveat" in note for note in result["notes"])
    x = data.binarize_static(data.load_split("test")[0][:100], 2014)
    model = VAE(input_dim=784, hidden=(32,), latent=2)
    model.load_weights(run_dir / "checkpoint.npz")
    assert result["loss"] == pytest.approx(evaluate_elbo(model, x)["loss"], rel=1e-6)


def test_evaluate_checkpoint_binarizes_with_its_seed_when_the_run_recorded_none(run_dir):
    (run_dir / "config.json").write_text(json.dumps({"binarize": "static", "seed": 0}))
    assert "binarize_static, seed 3" in evaluate_checkpoint(run_dir, limit=10, seed=3)["evaluated_on"]


def test_evaluate_checkpoint_warns_that_grey_level_nll_is_not_a_likelihood(run_dir):
    (run_dir / "config.json").write_text(json.dumps({"binarize": "none", "seed": 0}))
    result = evaluate_checkpoint(run_dir / "checkpoint.npz", iw_samples=2, limit=20)
    assert "grey levels" in result["evaluated_on"]
    assert sum("caveat" in note for note in result["notes"]) == 1


def test_evaluate_cli_prints_json_with_every_metric(run_dir, capsys):
    status = cli.main(["evaluate", str(run_dir), "--json", "--limit", "50", "--iw-samples", "3", "--seed", "1"])
    assert status == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("loss", "recon", "kl", "nll", "iw_samples", "kl_per_dim", "active_units", "mean_variances",
                "n", "binarize", "evaluated_on", "notes"):
        assert key in result
    assert result["n"] == 50 and len(result["kl_per_dim"]) == 2


def test_evaluate_cli_prints_a_table(run_dir, capsys):
    assert cli.main(["evaluate", str(run_dir / "checkpoint.npz"), "--limit", "50"]) == 0
    out = capsys.readouterr().out
    assert "negative ELBO" in out and "active units" in out


def test_evaluate_cli_fails_clearly_on_a_truncated_or_missing_checkpoint(run_dir, capsys):
    path = run_dir / "checkpoint.npz"
    path.write_bytes(path.read_bytes()[:200])
    assert cli.main(["evaluate", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert "truncated or corrupt" in err and "Traceback" not in err
    assert cli.main(["evaluate", str(run_dir / "missing.npz")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_evaluate_cli_rejects_unknown_flags():
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["evaluate", "x.npz", "--iw", "5", "--bogus"])
    assert exit_info.value.code == 2


# --------------------------------------------------------------------------- sharpness


def test_image_sharpness_is_the_mean_squared_neighbour_difference_and_blur_lowers_it():
    from tinyvae.evaluation.evaluate import image_sharpness  # noqa: PLC0415

    step = np.zeros((4, 4))
    step[:, 2:] = 1.0  # one vertical edge of height 1 in each of 4 rows: 4 squared steps of 1
    assert image_sharpness(step.reshape(1, 16)) == pytest.approx(4 / (2 * 4 * 3))
    ramp = np.tile([0.0, 1 / 3, 2 / 3, 1.0], (4, 1))  # the same edge spread over three steps
    assert image_sharpness(ramp.reshape(1, 16)) == pytest.approx(image_sharpness(step.reshape(1, 16)) / 3)
    assert image_sharpness(np.full((2, 16), 0.7)) == 0.0
    assert image_sharpness(np.full((1, 16), 3.0)) == 0.0  # values are clipped to [0, 1] as they are shown
    with pytest.raises(ValueError, match="square images, got D = 12"):
        image_sharpness(np.zeros((1, 12)))


def test_evaluate_reports_the_sharpness_of_samples_and_of_the_test_digits(run_dir):
    from tinyvae.evaluation.command import format_report  # noqa: PLC0415
    from tinyvae.evaluation.evaluate import image_sharpness, sample_sharpness  # noqa: PLC0415

    result = evaluate_checkpoint(run_dir, limit=50)
    model = VAE(input_dim=784, hidden=(32,), latent=2)
    model.load_weights(run_dir / "checkpoint.npz")
    assert result["sample_sharpness"] == pytest.approx(sample_sharpness(model, seed=0), rel=1e-12)
    x = data.binarize_static(data.load_split("test")[0][:50], 2014)
    assert result["data_sharpness"] == pytest.approx(image_sharpness(x / 255.0), rel=1e-12)
    assert "sharpness      samples" in format_report(result)
