"""The importance-weighted evaluation (tinyvae/importance.py): the fast CPU path against the generic one,
one noise stream whatever the batching, the L_K curve, the report.
"""

import dataclasses
import json

import numpy as np
import pytest

from tinyvae import data
from tinyvae.evaluation import importance
from tinyvae.evaluation.command import format_report
from tinyvae.evaluation.evaluate import evaluate_checkpoint, importance_weighted_bounds, importance_weighted_nll
from tinyvae.nn.optim import Adam
from tinyvae.models.vae import VAE


@pytest.fixture(scope="module")
def digits():
    x, _ = data.load_split("test")
    return x


def trained(digits, activation, steps=60):
    """A 784-32-32-4 VAE after a few Adam steps on 1000 binarized digits (disjoint from the evaluated ones)."""
    model = VAE(input_dim=784, hidden=(32, 32), latent=4, activation=activation, seed=1)
    opt, rng, x = Adam(model, lr=3e-3), np.random.default_rng(0), digits[5000:6000]
    for step in range(steps):
        model.loss_and_grad(data.to_float(x[(step % 10) * 100:(step % 10 + 1) * 100], "dynamic", rng), validate=False)
        opt.step()
    return model


@pytest.fixture(scope="module")
def tanh_vae(digits):
    return trained(digits, "tanh")


@pytest.fixture(scope="module")
def relu_vae(digits):
    return trained(digits, "relu", steps=20)


def copy(model, dtype=None):
    other = VAE(dataclasses.replace(model.config, dtype=dtype or model.config.dtype))
    other.set_theta(model.theta)
    return other


@pytest.fixture(scope="module")
def binary(digits):
    return data.binarize_static(digits[:24], 3)


class Stream:
    """A stand-in generator that hands out one fixed array of normals in order (to feed two paths alike)."""

    def __init__(self, normals):
        self.normals, self.used = normals.reshape(-1), 0

    def standard_normal(self, shape, dtype):
        size = int(np.prod(shape))
        out = self.normals[self.used:self.used + size].reshape(shape).astype(dtype)
        self.used += size
        return out


def generic_and_fast(model, xb, k, normals, rows=50):
    generic = importance._generic(model, xb, k, Stream(normals), rows)
    with importance._one_blas_thread():
        eps = Stream(normals).standard_normal((xb.shape[0], k, model.config.latent), dtype=model.dtype)
        fast = importance._binary_bernoulli(model, xb, eps, rows)
    return generic, fast


@pytest.mark.parametrize("which", ["tanh_vae", "relu_vae"])
def test_fast_path_equals_the_generic_path_to_rounding_in_float64(request, digits, which):
    model64 = copy(request.getfixturevalue(which), "float64")
    xb = data.to_float(data.binarize_static(digits[:6], 0), dtype=np.float64)
    normals = np.random.default_rng(0).standard_normal(6 * 130 * 4)
    generic, fast = generic_and_fast(model64, xb, 130, normals)  # 130 samples in blocks of 50: a partial block
    assert np.all(np.isfinite(generic))
    np.testing.assert_allclose(fast, generic, rtol=1e-12, atol=1e-9)


def test_fast_path_in_float32_is_closer_to_float64_than_a_thousandth_of_a_nat(tanh_vae, binary):
    model64 = copy(tanh_vae, "float64")
    xb = data.to_float(binary[:8])
    normals = np.random.default_rng(1).standard_normal(8 * 500 * 4)
    exact = importance._generic(model64, xb.astype(np.float64), 500, Stream(normals), 4000)
    _, fast = generic_and_fast(tanh_vae, xb, 500, normals, rows=256)
    assert np.abs(fast - exact).max() < 1e-3


def test_rows_whose_products_overflow_float32_are_recomputed_exactly(digits, tanh_vae):
    model = copy(tanh_vae)
    model.decoder.layers[-1].params["W"][...] *= 300.0  # logits of thousands: e^u and the products overflow
    model64 = copy(model, "float64")
    xb = data.to_float(data.binarize_static(digits[:3], 0))
    normals = np.random.default_rng(2).standard_normal(3 * 40 * 4)
    exact = importance._generic(model64, xb.astype(np.float64), 40, Stream(normals), 4000)
    with np.errstate(over="ignore"):
        _, fast = generic_and_fast(model, xb, 40, normals)
    assert np.all(np.isfinite(fast)) and np.all(exact < -1000)
    np.testing.assert_allclose(fast, exact, rtol=1e-5)


def test_the_estimate_depends_on_the_seed_alone_not_on_batching_or_chunking(tanh_vae, binary):
    a = importance_weighted_nll(tanh_vae, binary, k=300, seed=7)
    b = importance_weighted_nll(tanh_vae, binary, k=300, seed=7, batch_size=5, sample_chunk=64)
    c = importance_weighted_nll(tanh_vae, binary, k=300, seed=8)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    assert np.abs(a - c).max() > 1e-3


def test_grey_levels_take_the_generic_path_and_agree_with_the_same_stream(tanh_vae, digits):
    grey = digits[:6]
    nll = importance_weighted_nll(tanh_vae, grey, k=50, seed=0)
    xb = data.to_float(grey)
    log_w = importance._generic(tanh_vae, xb, 50, np.random.default_rng(0), importance.MAX_ROWS)
    m = log_w.max(axis=1)
    np.testing.assert_allclose(nll, -(m + np.log(np.exp(log_w - m[:, None]).mean(axis=1))), rtol=1e-6)


def test_the_bound_curve_rises_with_k_for_every_example_of_a_trained_model(tanh_vae, binary):
    nll, curve = importance_weighted_bounds(tanh_vae, binary, k=500, seed=0)
    assert list(curve) == [1, 5, 50, 500]
    values = list(curve.values())
    assert values[0] < values[1] < values[2] < values[3]
    assert curve[500] == pytest.approx(-nll.mean(), rel=1e-12)
    assert values[-1] - values[0] > 0.5  # a trained toy model still gains visibly from K
    log_w = np.concatenate(list(importance.log_weights(tanh_vae, [data.to_float(binary)], 500,
                                                       np.random.default_rng(0))))
    per_example = importance.bound_curve(log_w, (1, 5, 50, 500))
    assert np.all(np.diff(per_example, axis=1) >= -1e-12)  # nested blocks: every example, not only the mean


def test_the_bound_curve_of_one_block_is_the_log_mean_exp_and_of_blocks_of_one_the_mean():
    log_w = np.random.default_rng(0).normal(-100, 3, (4, 10))
    curve = importance.bound_curve(log_w, (1, 10, 3))
    np.testing.assert_allclose(curve[:, 0], log_w.mean(axis=1))
    np.testing.assert_allclose(curve[:, 1], np.log(np.exp(log_w + 100).mean(axis=1)) - 100)
    blocks = log_w[:, :9].reshape(4, 3, 3)
    np.testing.assert_allclose(curve[:, 2], (np.log(np.exp(blocks + 100).mean(axis=2)) - 100).mean(axis=1))
    with pytest.raises(ValueError, match="K' = 11"):
        importance.bound_curve(log_w, (11,))


def test_evaluate_reports_the_bound_curve_in_the_json_and_the_table(tmp_path, tanh_vae):
    run = tmp_path / "run"
    run.mkdir()
    tanh_vae.save(run / "checkpoint.npz")
    (run / "config.json").write_text(json.dumps({"binarize": "dynamic", "test_binarize_seed": 2014}))
    result = evaluate_checkpoint(run, iw_samples=60, limit=30)
    assert list(result["iw_bounds"]) == ["1", "5", "50", "60"]
    assert result["iw_bounds"]["60"] == pytest.approx(-result["nll"], rel=1e-12)
    assert result["iw_bounds"]["1"] < result["iw_bounds"]["60"]
    json.dumps(result)  # the keys are strings: the JSON report holds them as they are
    assert "IWAE bound     L_1 = " in format_report(result) and "L_60 = " in format_report(result)


def test_binary_and_grey_batches_in_one_call_keep_the_stream_in_order(monkeypatch, tanh_vae, binary, digits):
    x = np.concatenate([binary[:8], digits[100:108], binary[8:16]])  # fast, generic, fast
    mixed = importance_weighted_nll(tanh_vae, x, k=40, seed=5, batch_size=8)
    monkeypatch.setattr(importance, "_fast_path_applies", lambda model: False)
    np.testing.assert_allclose(mixed, importance_weighted_nll(tanh_vae, x, k=40, seed=5, batch_size=8), rtol=1e-6)
