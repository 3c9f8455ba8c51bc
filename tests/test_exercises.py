"""The graded exercises: the checker passes every reference solution and names the usual mistakes.

Each planted wrong answer below is one classic bug; its test asserts both that the check fails and
that the feedback says *which* bug it is.

Learners: check your own answers with
    TINYVAE_ANSWERS=path/to/my_answers.py pytest tests/test_exercises.py -k learner
(or ``python -m tinyvae.exercises path/to/my_answers.py``).
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinyvae
from tinyvae import exercises
from tinyvae.models.parts import iwae
from tinyvae.learn import solutions
from tinyvae.learn.exercises import EXERCISES, check, check_all
from test_exercise_m2 import answer as m2_answer

NAMES = list(EXERCISES)


# --------------------------------------------------------------------------- the reference passes


@pytest.mark.parametrize("name", NAMES)
def test_reference_solution_passes_its_exercise(name):
    feedback = check(name, getattr(solutions, name))
    assert feedback.passed, str(feedback)
    assert "PASS" in str(feedback)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_reference_solutions_pass_with_other_seeds(seed):
    summary = check_all(solutions, seed=seed)
    assert summary.passed, str(summary)


@pytest.mark.parametrize("name", NAMES)
def test_stub_reports_not_implemented_yet(name):
    feedback = check(name, getattr(exercises, name))
    assert feedback.status == "not implemented"
    assert not feedback.passed
    assert "not implemented yet" in str(feedback)
    assert "derivations/" in str(feedback)  # points at what to read


def test_check_all_lists_every_exercise_and_counts_passes():
    mixed = {"dense_backward": solutions.dense_backward, "gaussian_kl": lambda mu, log_var: (0.0, mu, mu)}
    summary = check_all(mixed)
    text = str(summary)
    assert not summary.passed
    assert text.startswith(f"1/{len(NAMES)} exercises pass")
    assert "dense_backward" in text and "PASS" in text
    assert "gaussian_kl" in text and "FAIL" in text
    absent = [f"({EXERCISES[name].letter})" for name in NAMES if name not in mixed]
    assert text.count("not implemented yet") == 0  # the answers lack the others: one line says so
    assert f"\n  not defined in these answers, so not checked: {', '.join(absent)}\n" in text + "\n"
    assert len(absent) == len(NAMES) - 2


def test_check_all_lists_a_defined_stub_as_not_implemented_yet():
    text = str(check_all({"dense_backward": exercises.dense_backward, "relu_backward": solutions.relu_backward}))
    assert "(a)   dense_backward           not implemented yet" in text
    assert "(b1)  relu_backward            PASS" in text
    assert "not defined in these answers, so not checked: (b2), (c)," in text


def test_check_accepts_a_function_named_after_its_exercise():
    def relu_backward(dy, x):
        return dy * (x > 0)
    assert check(relu_backward).passed


def test_unknown_exercise_name_is_refused_with_the_list():
    with pytest.raises(ValueError, match="dense_backward"):
        check("dense_forward", solutions.dense_backward)


def test_pass_feedback_reports_the_worst_relative_error():
    text = str(check("dense_backward", solutions.dense_backward))
    assert "worst relative error" in text


def test_reference_vae_forward_matches_the_library_vae_loss_formula():
    rng = np.random.default_rng(0)
    params = exercises.init_vae_params(rng)
    x, eps = rng.uniform(0, 1, (4, 7)), rng.standard_normal((4, 3))
    loss, cache = exercises.vae_forward(params, x, eps)
    recon, _ = tinyvae.bernoulli_nll(cache["logits"], x)
    kl, _, _ = tinyvae.gaussian_kl(cache["mu"], cache["log_var"])
    assert loss == pytest.approx(float(recon + kl), rel=1e-12)


def test_solutions_agree_with_the_library_layers_and_losses():
    """Two independent implementations of each formula must agree exactly (float64)."""
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((4, 7)), rng.standard_normal((4, 5))
    dense = tinyvae.Dense(7, 5, rng=rng, dtype=np.float64)
    dense.forward(x)
    dx = dense.backward(dy)
    ref = solutions.dense_backward(dy, x, dense.params["W"])
    np.testing.assert_allclose(ref[0], dx, rtol=1e-12)
    np.testing.assert_allclose(ref[1], dense.grads["W"], rtol=1e-12)
    np.testing.assert_allclose(ref[2], dense.grads["b"], rtol=1e-12)
    for layer, fn, kept in ((tinyvae.ReLU(), solutions.relu_backward, "x"), (tinyvae.Tanh(), solutions.tanh_backward, "y")):
        h = rng.standard_normal((4, 5))
        y = layer.forward(h)
        np.testing.assert_allclose(fn(dy, h if kept == "x" else y), layer.backward(dy), rtol=1e-12)
    logits, target = rng.normal(0, 3, (4, 7)), rng.uniform(0, 1, (4, 7))
    loss, dlogits = tinyvae.bernoulli_nll(logits, target)
    ref_loss, ref_dlogits = solutions.bce_with_logits(logits, target)
    assert ref_loss == pytest.approx(float(loss), rel=1e-12)
    np.testing.assert_allclose(ref_dlogits, dlogits, rtol=1e-10)
    mu, log_var, eps = rng.standard_normal((4, 3)), rng.normal(0, 0.7, (4, 3)), rng.standard_normal((4, 3))
    kl, dmu, dlv = tinyvae.gaussian_kl(mu, log_var)
    ref = solutions.gaussian_kl(mu, log_var)
    assert ref[0] == pytest.approx(float(kl), rel=1e-12)
    np.testing.assert_allclose(ref[1], dmu, rtol=1e-12)
    np.testing.assert_allclose(ref[2], dlv, rtol=1e-12)
    log_w = rng.normal(-90.0, 4.0, (4, 6))
    loss, weights = iwae.bound(log_w)
    ref_loss, ref_dlog_w = solutions.iwae_loss(log_w)
    assert ref_loss == pytest.approx(float(loss), rel=1e-12)
    np.testing.assert_allclose(ref_dlog_w, -weights / 4, rtol=1e-12)
    reparam = tinyvae.Reparameterize()
    np.testing.assert_allclose(solutions.reparameterize(mu, log_var, eps), reparam.forward(mu, log_var, eps), rtol=1e-12)
    dz = rng.standard_normal((4, 3))
    got = reparam.backward(dz)
    ref = solutions.reparameterize_backward(dz, eps, np.exp(0.5 * log_var))
    np.testing.assert_allclose(ref[0], got[0], rtol=1e-12)
    np.testing.assert_allclose(ref[1], got[1], rtol=1e-12)


# --------------------------------------------------------------------------- planted mistakes


def _vae(transform=None, **cache_changes):
    """The reference VAE backward, with a doctored cache and/or a transformed result."""
    def vae_backward(params, cache):
        doctored = dict(cache, **{k: f(cache) for k, f in cache_changes.items()})
        grads = solutions.vae_backward(params, doctored)
        return transform(grads) if transform else grads
    return vae_backward


def _without(key):
    return lambda g: {k: v for k, v in g.items() if k != key}


def _kl_scaled(c):
    def gaussian_kl(mu, log_var):
        kl, dmu, dlv = solutions.gaussian_kl(mu, log_var)
        return c * kl, c * dmu, c * dlv
    return gaussian_kl


def _bce_scaled(c):
    def bce(logits, x):
        loss, d = solutions.bce_with_logits(logits, x)
        return c * loss, c * d
    return bce


def _naive_bce(logits, x):
    p = 1.0 / (1.0 + np.exp(-logits))
    return -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum() / len(x), (p - x) / len(x)


def _iwae_parts(log_w):
    n, k = log_w.shape
    m = log_w.max(axis=1, keepdims=True)
    e = np.exp(log_w - m)
    return n, k, e / e.sum(axis=1, keepdims=True), solutions.iwae_loss(log_w)[0]


def _iwae_unnormalized(log_w):
    n, _, _, loss = _iwae_parts(log_w)
    return loss, -np.exp(log_w) / n


def _iwae_shifted_not_normalized(log_w):
    n, _, _, loss = _iwae_parts(log_w)
    return loss, -np.exp(log_w - log_w.max(axis=1, keepdims=True)) / n


def _iwae_wrong_axis(log_w):
    n, _, _, loss = _iwae_parts(log_w)
    w = np.exp(log_w)
    return loss, -(w / w.sum(axis=0, keepdims=True)) / n


def _iwae_mean_of_logs(log_w):
    return float(-log_w.mean()), np.full(log_w.shape, -1.0 / log_w.size)


def _iwae_through_weights(log_w):
    """The surrogate −(1/N) Σ w̃ log w differentiated with w̃ too (what autograd does without stop-gradient)."""
    n, _, w, loss = _iwae_parts(log_w)
    return loss, -w * (1 + log_w - (w * log_w).sum(axis=1, keepdims=True)) / n


def _iwae_naive_lse(log_w):
    n, k = log_w.shape
    w = np.exp(log_w)
    return float(-np.log(w.sum(axis=1) / k).sum() / n), -(w / w.sum(axis=1, keepdims=True)) / n


def _iwae_clipped(log_w):
    return solutions.iwae_loss(np.clip(log_w, -700.0, 700.0))


def _iwae_without_log_k(log_w):
    n, k, w, loss = _iwae_parts(log_w)
    return loss - np.log(k), -w / n


def _iwae_batch_sum(log_w):
    n, _, w, loss = _iwae_parts(log_w)
    return n * loss, -w


def _iwae_encoder(q_mu=None, q_logvar=None, prior=True, weight=None, std_power=1):
    """The answer to (h) with one piece swapped: log q's parts on μ and log σ², the prior, the weights, σ."""
    def iwae_encoder_backward(weights, dlogpx_dz, z, eps, std):
        n, k = weights.shape
        g = (weights if weight is None else weight(weights))[..., None] / n  # (N, K, 1)
        s = std[:, None, :]
        dz = g * ((z if prior else 0.0) - dlogpx_dz)
        dmu = dz.sum(axis=1) + (0.0 if q_mu is None else q_mu(g, eps, s).sum(axis=1))
        dlog_var = 0.5 * std ** std_power * (dz * eps).sum(axis=1)
        dlog_var = dlog_var + (-0.5 / n if q_logvar is None else q_logvar(g, eps, n, k))
        return dmu, dlog_var
    return iwae_encoder_backward


def _conv(kernel="transposed", place="+=", db_axes=(0, 2, 3), dW_flip=False):
    """A learner's conv backward by im2col, with one of the usual mistakes chosen by the arguments."""
    def conv_backward(dy, x, W, stride, padding):
        n, c, rows, cols_ = x.shape
        f, _, k, _ = W.shape
        ho, wo, s, p = dy.shape[2], dy.shape[3], stride, padding
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        cols = np.stack([xp[:, :, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s]
                         for i in range(k) for j in range(k)], axis=2)  # (N, C, k·k, Ho, Wo)
        cols = cols.transpose(1, 2, 0, 3, 4).reshape(c * k * k, -1)
        dY = dy.transpose(1, 0, 2, 3).reshape(f, -1)
        dW = (dY @ cols.T).reshape(W.shape)
        if dW_flip:
            dW = dW[:, :, ::-1, ::-1]
        w_t = {"transposed": W.reshape(f, -1).T, "rotated": W[:, :, ::-1, ::-1].reshape(f, -1).T,
               "reshaped": W.reshape(-1, f)}[kernel]
        dcols = (w_t @ dY).reshape(c, k, k, n, ho, wo)
        out = np.zeros((c, n, rows + 2 * p, cols_ + 2 * p))
        for i in range(k):
            for j in range(k):
                if place == "+=":
                    out[:, :, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s] += dcols[:, i, j]
                elif place == "=":
                    out[:, :, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s] = dcols[:, i, j]
                else:  # consecutive pixels: the stride forgotten
                    out[:, :, i:i + ho, j:j + wo] += dcols[:, i, j]
        dx = out[:, :, p:p + rows, p:p + cols_].transpose(1, 0, 2, 3)
        return dx, dW, dy.sum(axis=db_axes)
    return conv_backward


def _planar_answer(constraint=True, slope="h'", logdet_in_backward=True, logdet_sign=1.0, dlogdet_sign=-1.0,
                   chain_u_hat=True, weight="g", logdet_in_da=True, logdet_in_dc=True, slope_in_da="h'"):
    """A learner's planar step, written term by term, with one of the usual mistakes chosen by the arguments."""
    def planar_step(z, u, w, b, dz_out, g):
        g = {"g": g, "1/N": np.full_like(g, 1.0 / len(g)), "1": np.ones_like(g)}[weight]
        m = -1.0 + np.log1p(np.exp(w @ u))
        uh = u + (m - w @ u) * w / (w @ w) if constraint else u
        a = z @ w + b
        h = np.tanh(a)
        hp = 1.0 - h ** 2
        scale, scale_da = (h, hp) if slope == "h" else (hp, -2.0 * h * hp)  # ψ = scale · w
        det = 1.0 + scale * (w @ uh)
        logdet = logdet_sign * np.log(np.abs(det))
        z_out = z + np.outer(h, uh)
        dl = dlogdet_sign * g if logdet_in_backward else np.zeros_like(g)  # ∂L/∂log|det J|
        dl_a = dl if logdet_in_da else np.zeros_like(dl)
        da = (dz_out @ uh) * (h if slope_in_da == "h" else hp) + dl_a / det * (w @ uh) * scale_da
        dl_c = dl if logdet_in_dc else np.zeros_like(dl)
        duh = h @ dz_out + np.sum(dl_c / det * scale) * w
        dw = z.T @ da + np.sum(dl_c / det * scale) * uh
        if constraint and chain_u_hat:
            beta, n2 = w @ u, w @ w
            coef, sig = (m - beta) / n2, 1.0 / (1.0 + np.exp(-beta))
            du = duh + (sig - 1.0) * (w @ duh) / n2 * w
            dw = dw + coef * duh + (w @ duh) * ((sig - 1.0) * u / n2 - 2.0 * coef * w / n2)
        else:
            du = duh
        return z_out, logdet, dz_out + np.outer(da, w), du, dw, da.sum()
    return planar_step


def _raises(*args):
    return np.sum(args[0], axis=5)  # an AxisError inside "learner code"


PLANTED = [
    # (exercise, label, wrong answer, words the feedback must contain)
    ("dense_backward", "missing transpose", lambda dy, x, W: (dy @ W.T, dy.T @ x, dy.sum(0)),
     ["dW", "missing transpose", "expected shape (7, 5)"]),
    ("dense_backward", "transpose that does not line up", lambda dy, x, W: (dy @ W, x.T @ dy, dy.sum(0)),
     ["ValueError", "dy @ W", "missing transpose", "(4, 5) = (N, H)"]),
    ("dense_backward", "wrong sign", lambda dy, x, W: tuple(-a for a in solutions.dense_backward(dy, x, W)),
     ["dx, dW, db", "wrong sign"]),
    ("dense_backward", "bias gradient not returned", lambda dy, x, W: solutions.dense_backward(dy, x, W)[:2],
     ["returned 2 values", "bias gradient db is missing"]),
    ("dense_backward", "bias gradient None", lambda dy, x, W: (dy @ W.T, x.T @ dy, None),
     ["db is missing", "bias gradient was forgotten"]),
    ("dense_backward", "bias gradient zeros", lambda dy, x, W: (dy @ W.T, x.T @ dy, np.zeros(W.shape[1])),
     ["db", "all zeros", "bias gradient was forgotten"]),
    ("dense_backward", "bias gradient not summed", lambda dy, x, W: (dy @ W.T, x.T @ dy, dy),
     ["expected shape (5,)", "got (4, 5)", "not summed over the batch"]),
    ("dense_backward", "bias gradient over the wrong axis", lambda dy, x, W: (dy @ W.T, x.T @ dy, dy.sum(1)),
     ["expected shape (5,)", "wrong axis"]),
    ("dense_backward", "bias gradient averaged", lambda dy, x, W: (dy @ W.T, x.T @ dy, dy.mean(0)),
     ["db", "averaged over the batch"]),
    ("dense_backward", "divides by N again", lambda dy, x, W: (dy @ W.T, x.T @ dy / len(x), dy.sum(0)),
     ["dW", "0.25 ×", "once too often"]),
    ("dense_backward", "an exception", lambda dy, x, W: _raises(dy),
     ["ERROR", "AxisError", "_raises"]),
    ("dense_backward", "float32", lambda dy, x, W: (dy @ W.T, (x.T @ dy).astype(np.float32) * 2, dy.sum(0)),
     ["dW", "missing ½", "float32"]),
    ("relu_backward", "upstream gradient dropped", lambda dy, x: (x > 0) * 1.0, ["upstream gradient is missing"]),
    ("relu_backward", "wrong sign", lambda dy, x: -dy * (x > 0), ["dx is wrong", "wrong sign", "index"]),
    ("relu_backward", "returns a tuple of two", lambda dy, x: (dy, x), ["expected one array dx"]),
    ("tanh_backward", "1 - y", lambda dy, y: dy * (1 - y), ["1 − y² (squared)"]),
    ("tanh_backward", "tanh twice", lambda dy, y: dy * (1 - np.tanh(y) ** 2), ["tanh applied a second time"]),
    ("tanh_backward", "missing ½ variant", lambda dy, y: 2 * dy * (1 - y * y), ["missing ½"]),
    ("bce_with_logits", "sum over the batch", _bce_scaled(4), ["loss", "dlogits", "4 ×",
                                                               "sum over the batch where the mean is meant"]),
    ("bce_with_logits", "np.mean over everything", _bce_scaled(1 / 28), ["mean over every entry"]),
    ("bce_with_logits", "mean over pixels", _bce_scaled(1 / 7), ["averaged over the D = 7 pixels"]),
    ("bce_with_logits", "wrong sign", lambda l, x: (solutions.bce_with_logits(l, x)[0], -solutions.bce_with_logits(l, x)[1]),
     ["dlogits", "wrong sign"]),
    ("bce_with_logits", "naive formula overflows", _naive_bce, ["not finite for logits of ±1e4", "stable form"]),
    ("bce_with_logits", "clipped logits", lambda l, x: solutions.bce_with_logits(np.clip(l, -50, 50), x),
     ["wrong for large logits", "clipping"]),
    ("bce_with_logits", "per-example loss", lambda l, x: (np.full(len(l), 1.0), solutions.bce_with_logits(l, x)[1]),
     ["expected shape ()", "one number"]),
    ("gaussian_kl", "missing ½", _kl_scaled(2), ["kl, dmu, dlog_var", "2 ×", "missing ½"]),
    ("gaussian_kl", "sum for mean", _kl_scaled(4), ["4 ×", "sum over the batch where the mean is meant"]),
    ("gaussian_kl", "wrong sign", lambda mu, lv: (solutions.gaussian_kl(mu, lv)[0], -mu / 4, -solutions.gaussian_kl(mu, lv)[2]),
     ["dmu, dlog_var", "wrong sign"]),
    ("gaussian_kl", "the −1 forgotten", lambda mu, lv: (solutions.gaussian_kl(mu, lv)[0], mu / 4, 0.5 * np.exp(lv) / 4),
     ["dlog_var", "the −1 is missing"]),
    ("gaussian_kl", "σ for σ²", lambda mu, lv: (0.5 * (np.exp(0.5 * lv) + mu**2 - 1 - lv).sum() / 4, mu / 4,
                                                 0.5 * (np.exp(0.5 * lv) - 1) / 4),
     ["kl: σ in place of σ²", "dlog_var: σ in place of σ²"]),
    ("reparameterize", "σ² for σ", lambda mu, lv, eps: mu + np.exp(lv) * eps, ["σ² in place of σ"]),
    ("reparameterize", "fresh ε", lambda mu, lv, eps: mu + np.exp(0.5 * lv) * np.random.standard_normal(mu.shape),
     ["different answers for the same inputs", "fresh"]),
    ("reparameterize", "log σ² as σ", lambda mu, lv, eps: mu + lv * eps, ["log σ² used as if it were σ"]),
    ("reparameterize_backward", "missing ½", lambda dz, eps, std: (dz, dz * eps * std), ["dlog_var", "2 ×", "missing ½"]),
    ("reparameterize_backward", "σ² for σ", lambda dz, eps, std: (dz, 0.5 * dz * eps * std**2), ["σ² in place of σ"]),
    ("reparameterize_backward", "wrong sign", lambda dz, eps, std: (-dz, -0.5 * dz * eps * std), ["wrong sign"]),
    ("reparameterize_backward", "fresh ε",
     lambda dz, eps, std: (dz, 0.5 * dz * np.random.standard_normal(dz.shape) * std),
     ["different answers for the same inputs", "fresh ε", "not the forward's ε"]),
    ("reparameterize_backward", "another fixed ε",
     lambda dz, eps, std: (dz, 0.5 * dz * np.random.default_rng(123).standard_normal(dz.shape) * std),
     ["the wrong ε", "not the forward's ε"]),
    ("reparameterize_backward", "ε times dz into dmu", lambda dz, eps, std: (dz * eps, 0.5 * dz * eps * std),
     ["dmu", "multiplies by ε"]),
    ("reparameterize_backward", "σ chain factor dropped", lambda dz, eps, std: (dz, 0.5 * dz * eps),
     ["chain factor σ is missing"]),
    ("reparameterize_backward", "an exception", lambda dz, eps, std: (dz, 0.5 * dz * eps * sigma),  # noqa: F821
     ["NameError", "sigma"]),
    ("vae_backward", "KL gradient forgotten", _vae(mu=lambda c: 0 * c["mu"], log_var=lambda c: 0 * c["log_var"]),
     ["KL term's own gradients", "are missing", "right: W_out, b_out, W_dec, b_dec"]),
    ("vae_backward", "σ² for σ", _vae(std=lambda c: np.exp(c["log_var"])), ["σ² in place of σ", "W_logvar"]),
    ("vae_backward", "missing ½ in the reparameterization", _vae(std=lambda c: 2 * c["std"]), ["missing ½"]),
    ("vae_backward", "no path through z into log σ²", _vae(eps=lambda c: 0 * c["eps"]), ["dlog_var gets nothing through z"]),
    ("vae_backward", "fresh ε", _vae(eps=lambda c: np.random.standard_normal(c["eps"].shape)),
     ["different answers for the same inputs", "fresh ε"]),
    ("vae_backward", "bias gradient forgotten", _vae(_without("b_enc")), ["b_enc is missing", "bias gradient was forgotten"]),
    ("vae_backward", "missing transpose", _vae(lambda g: dict(g, W_dec=g["W_dec"].T)),
     ["W_dec", "missing transpose", "expected shape (3, 5) = (Z, H)"]),
    ("vae_backward", "sum for mean", _vae(lambda g: {k: 4 * v for k, v in g.items()}),
     ["4 ×", "sum over the batch where the mean is meant"]),
    ("vae_backward", "wrong sign", _vae(lambda g: {k: -v for k, v in g.items()}), ["wrong sign"]),
    ("vae_backward", "decoder bias not summed", _vae(lambda g: dict(g, b_out=np.tile(g["b_out"], (4, 1)) / 4)),
     ["b_out", "expected shape (7,)", "not summed over the batch"]),
    ("vae_backward", "a list, not a dict", lambda params, cache: list(solutions.vae_backward(params, cache).values()),
     ["expected a dict of gradients"]),
    ("vae_backward", "a wrong cache key", lambda params, cache: cache["h"], ["KeyError", "cache has keys"]),
    ("iwae_loss", "weights not normalized", _iwae_unnormalized, ["dlog_w", "not normalized", "softmax"]),
    ("iwae_loss", "shifted but not normalized", _iwae_shifted_not_normalized,
     ["dlog_w", "shifted by the maximum but not normalized"]),
    ("iwae_loss", "normalized over the batch", _iwae_wrong_axis, ["dlog_w", "wrong axis"]),
    ("iwae_loss", "mean of logs instead of log of mean", _iwae_mean_of_logs,
     ["loss, dlog_w", "the mean of the logs, not the log of the mean"]),
    ("iwae_loss", "gradient through w̃ as well", _iwae_through_weights,
     ["dlog_w", "a gradient taken through w̃ as well", "eq:iwae-wrong-grad"]),
    ("iwae_loss", "log-sum-exp that overflows", _iwae_naive_lse,
     ["loss is not finite", "dlog_w is not finite", "largest log weight"]),
    ("iwae_loss", "clipped log weights", _iwae_clipped, ["wrong for log weights of ±1e4", "clipping"]),
    ("iwae_loss", "log K forgotten", _iwae_without_log_k, ["loss", "1/K inside the log is missing"]),
    ("iwae_loss", "sum over the batch", _iwae_batch_sum, ["4 ×", "sum over the batch where the mean is meant"]),
    ("iwae_encoder_backward", "log q through z only",
     _iwae_encoder(q_mu=lambda g, e, s: -g * e / s, q_logvar=lambda g, e, n, k: (-0.5 * g * e ** 2).sum(axis=1)),
     ["dmu, dlog_var", "only the path through z", "eq:iwae-log-q-total"]),
    ("iwae_encoder_backward", "log q directly only",
     _iwae_encoder(q_mu=lambda g, e, s: g * e / s, q_logvar=lambda g, e, n, k: (g * (0.5 * e ** 2 - 0.5)).sum(axis=1)),
     ["dmu, dlog_var", "only the direct dependence"]),
    ("iwae_encoder_backward", "log q's −½ missing", _iwae_encoder(q_logvar=lambda g, e, n, k: 0.0),
     ["dlog_var", "−½ per sample is missing"]),
    ("iwae_encoder_backward", "log q's −½ unweighted", _iwae_encoder(q_logvar=lambda g, e, n, k: -0.5 * k / n),
     ["dlog_var", "without its weight"]),
    ("iwae_encoder_backward", "the prior forgotten", _iwae_encoder(prior=False), ["dmu, dlog_var", "prior's term"]),
    ("iwae_encoder_backward", "uniform weights", _iwae_encoder(weight=lambda w: np.full_like(w, 1 / w.shape[1])),
     ["dmu, dlog_var", "weighted 1/(N K)"]),
    ("iwae_encoder_backward", "σ² for σ", _iwae_encoder(std_power=2), ["dlog_var", "σ² in place of σ"]),
    ("conv_backward", "kernel rotated", _conv(kernel="rotated"), ["dx", "kernel's orientation", "rotated by 180°"]),
    ("conv_backward", "kernel reshaped, not transposed", _conv(kernel="reshaped"),
     ["dx", "reshaped where it must be transposed"]),
    ("conv_backward", "stride missing in col2im", _conv(place="consecutive"), ["dx", "stride is missing in col2im"]),
    ("conv_backward", "overlaps overwritten", _conv(place="="), ["dx", "overwrite each other", "(+=)"]),
    ("conv_backward", "bias summed over the batch only", _conv(db_axes=0),
     ["db", "expected shape (8,)", "got (8, 5, 5)", "summed over the batch only", "positions"]),
    ("conv_backward", "kernel gradient flipped", _conv(dW_flip=True), ["dW", "taps are rotated by 180°"]),
    ("conv_backward", "channels swapped in dW", lambda *a: (lambda r: (r[0], r[1].transpose(1, 0, 2, 3), r[2]))(
        solutions.conv_backward(*a)), ["dW", "two channel axes are swapped"]),
    ("conv_backward", "divides by N again", lambda *a: (lambda r: (r[0], r[1] / 4, r[2]))(solutions.conv_backward(*a)),
     ["dW", "0.25 ×", "once too often"]),
    ("planar_step", "log-det term left out of the backward", _planar_answer(logdet_in_backward=False),
     ["dz, du, dw, db", "the log-det term's gradient is missing", "eq:planar-backward"]),
    ("planar_step", "ψ with h instead of h′", _planar_answer(slope="h"),
     ["logdet", "ψ computed with h instead of h′", "eq:planar-psi"]),
    ("planar_step", "invertibility constraint missing", _planar_answer(constraint=False),
     ["z_out, logdet", "the invertibility constraint is missing", "eq:planar-u-hat"]),
    ("planar_step", "log-det's sign", _planar_answer(logdet_sign=-1.0, dlogdet_sign=1.0),
     ["logdet: the log-det's sign", "eq:flow-log-q"]),
    ("planar_step", "log-det gradient's sign", _planar_answer(dlogdet_sign=1.0),
     ["dz, du, dw, db", "the log-det term's gradient has the wrong sign"]),
    ("planar_step", "gradient stopped at û", _planar_answer(chain_u_hat=False), ["du, dw", "the gradient stops at û"]),
    ("planar_step", "g ignored: 1/N", _planar_answer(weight="1/N"), ["dz, du, dw, db", "the weights g are ignored"]),
    ("planar_step", "g ignored: 1", _planar_answer(weight="1"), ["dz, du, dw, db", "the weights g are ignored"]),
    ("planar_step", "log-det term dropped from da only", _planar_answer(logdet_in_da=False),
     ["dz, db: part of the log-det term's gradient is missing", "eq:planar-backward",
      "dw is wrong", "may follow from the mistake named above"]),
    ("planar_step", "log-det term dropped from dc only", _planar_answer(logdet_in_dc=False),
     ["du: part of the log-det term's gradient is missing", "dw is wrong", "may follow from the mistake named above"]),
    ("planar_step", "log-det returned as zeros",
     lambda *a: (lambda r: (r[0], np.zeros(len(a[0])), *r[2:]))(solutions.planar_step(*a)),
     ["logdet", "the log-determinant is missing"]),
]


# (k): the usual mistakes of M2's loss, as tests/test_exercise_m2.py writes them
PLANTED += [("m2_batch_loss", label, m2_answer(**options), words) for label, options, words in (
    ("q(y|x) detached", {"detach": True}, ["dlogits", "held constant (detached)"]),
    ("α on unlabelled data", {"alpha_on_unlabelled": True}, ["dlogits", "α is applied to the unlabelled"]),
)]


@pytest.mark.parametrize("name, label, wrong, words", PLANTED, ids=[f"{p[0]}-{p[1]}" for p in PLANTED])
def test_planted_mistake_fails_with_the_matching_hint(name, label, wrong, words):
    feedback = check(name, wrong)
    text = str(feedback)
    assert not feedback.passed, f"{label} passed:\n{text}"
    for word in words:
        assert word in text, f"{label}: expected {word!r} in the feedback:\n{text}"


def test_a_named_planar_mistake_comes_first_and_the_other_wrong_outputs_are_marked_as_possibly_caused_by_it():
    feedback = check("planar_step", _planar_answer(slope="h", slope_in_da="h"))  # tanh for h′ everywhere
    first, *rest = feedback.problems
    assert first.startswith("logdet, du: ψ computed with h instead of h′"), first
    assert rest and all("may follow from the mistake named above; fix that one first" in p for p in rest), rest


def test_a_planar_bias_gradient_with_an_axis_is_told_it_has_the_bias_shape_not_the_loss_reduction():
    text = str(check("planar_step", lambda *a: (lambda r: (*r[:5], np.atleast_1d(r[5])))(solutions.planar_step(*a))))
    assert "db: expected shape () = (), got (1,)" in text and "b is a single number, so db is one too" in text
    assert "the loss is one number" not in text and "eq:planar-backward" in text


def test_too_few_planar_values_of_other_shapes_say_which_positions_and_do_not_guess_db():
    text = str(check("planar_step", lambda *a: solutions.planar_step(*a)[2:]))  # z_out and logdet left out
    assert "returned 4 values, expected 6: (z_out, logdet, dz, du, dw, db)" in text
    assert "which are missing cannot be told" in text and "are z_out, logdet left out?" in text
    assert "db is missing" not in text and "dense-grad-b" not in text


def test_a_wrong_du_outside_the_catalogue_points_at_the_planar_backward_and_says_what_relative_means():
    text = str(check("planar_step", lambda *a: (lambda r: (*r[:3], r[3] * 1.1 + 0.01, *r[4:]))(solutions.planar_step(*a))))
    line = next(ln for ln in text.splitlines() if "du is wrong" in ln)
    assert "(the largest difference over the largest entry)" in line and line.endswith("[eq:planar-backward]")
    assert "flows.md#eq:planar-u-hat" in text.splitlines()[-1]  # û's page stays on the Read line


# Answers to (e2) that use the forward's very ε but a wrong factor: each gets its own name, and none
# is told "the wrong ε", which is kept for an ε' that looks like an independent N(0, 1) draw.
RIGHT_EPS_WRONG_FACTOR = [
    ("differentiated w.r.t. the variance", lambda dz, eps, std: (dz, dz * eps / (2 * std)),
     ["dlog_var", "w.r.t. σ² (the variance), not log σ²", "ε/(2σ)"]),
    ("differentiated w.r.t. σ", lambda dz, eps, std: (dz, dz * eps), ["dlog_var", "w.r.t. σ, not log σ²"]),
    ("log σ² as the factor", lambda dz, eps, std: (dz, 0.5 * dz * eps * np.log(std ** 2)),
     ["dlog_var", "log σ² where σ belongs"]),
    ("√σ as the factor", lambda dz, eps, std: (dz, 0.5 * dz * eps * np.sqrt(std)), ["dlog_var", "√σ in place of σ"]),
    ("exp(σ) as the factor", lambda dz, eps, std: (dz, 0.5 * dz * eps * np.exp(std)),
     ["dlog_var", "exp(σ) in place of σ"]),
    ("KL gradient added inside", lambda dz, eps, std: (dz, 0.5 * dz * eps * std + 0.5 * (std ** 2 - 1)),
     ["dlog_var", "the KL's gradient", "vae_backward", "eq:encoder-output-grad"]),
    ("KL gradient (batch-averaged) added inside",
     lambda dz, eps, std: (dz, 0.5 * dz * eps * std + 0.5 * (std ** 2 - 1) / 4), ["dlog_var", "the KL's gradient"]),
    ("ε left out", lambda dz, eps, std: (dz, 0.5 * dz * std), ["dlog_var", "ε is missing"]),
    ("ε's entries transposed", lambda dz, eps, std: (dz, 0.5 * dz * eps.T.reshape(eps.shape) * std),
     ["dlog_var", "the forward's ε values in other places"]),
]


@pytest.mark.parametrize("label, wrong, words", RIGHT_EPS_WRONG_FACTOR, ids=[p[0] for p in RIGHT_EPS_WRONG_FACTOR])
def test_reparameterize_backward_with_the_right_eps_gets_its_own_hint_not_the_wrong_eps(label, wrong, words):
    for seed in (0, 1, 2):
        feedback = check("reparameterize_backward", wrong, seed=seed)
        text = str(feedback)
        assert not feedback.passed, f"{label} passed:\n{text}"
        assert "wrong ε" not in text and "not the forward's ε" not in text, f"{label}:\n{text}"
        for word in words:
            assert word in text, f"{label}: expected {word!r} in the feedback:\n{text}"


@pytest.mark.parametrize("seed", range(6))
def test_reparameterize_backward_with_an_independent_fixed_eps_is_told_the_wrong_eps(seed):
    def another_eps(dz, eps, std):
        return dz, 0.5 * dz * np.random.default_rng(seed + 50).standard_normal(dz.shape) * std
    text = str(check("reparameterize_backward", another_eps, seed=seed))
    assert "the wrong ε" in text, text


def test_gaussian_kl_differentiated_with_respect_to_the_variance_is_named():
    def kl(mu, lv):
        return solutions.gaussian_kl(mu, lv)[0], mu / 4, 0.5 * (1 - np.exp(-lv)) / 4
    text = str(check("gaussian_kl", kl))
    assert "dlog_var: differentiated w.r.t. σ² (the variance), not log σ²" in text, text


@pytest.mark.parametrize("name, wrong, pair", [
    ("reparameterize_backward", lambda dz, eps, std: solutions.reparameterize_backward(dz, eps, std)[::-1],
     "dmu and dlog_var are swapped"),
    ("gaussian_kl", lambda mu, lv: (lambda r: (r[0], r[2], r[1]))(solutions.gaussian_kl(mu, lv)),
     "dmu and dlog_var are swapped"),
    ("vae_backward", lambda p, c: (lambda g: dict(g, W_mu=g["W_logvar"], W_logvar=g["W_mu"]))(
        solutions.vae_backward(p, c)), "W_mu and W_logvar are swapped"),
], ids=["reparameterize_backward", "gaussian_kl", "vae_backward"])
def test_swapped_outputs_are_named_as_swapped(name, wrong, pair):
    feedback = check(name, wrong)
    text = str(feedback)
    assert not feedback.passed
    assert pair in text and "exactly the right values" in text, text
    assert "wrong ε" not in text


def test_an_extra_gradient_for_eps_is_told_that_eps_gets_no_gradient():
    def with_deps(dz, eps, std):
        dmu, dlog_var = solutions.reparameterize_backward(dz, eps, std)
        return dmu, dlog_var, dz * std
    text = str(check("reparameterize_backward", with_deps))
    assert "returned 3 values, expected 2: (dmu, dlog_var); ε gets no gradient" in text, text
    assert not any(line.rstrip().endswith(";") for line in text.splitlines()), text


def test_too_many_values_elsewhere_says_what_to_return_without_a_dangling_semicolon():
    text = str(check("dense_backward", lambda dy, x, W: (*solutions.dense_backward(dy, x, W), 0.0)))
    assert "returned 4 values, expected 3: (dx, dW, db); return exactly these 3" in text, text
    assert not any(line.rstrip().endswith(";") for line in text.splitlines()), text


def test_gradient_table_names_the_given_and_expected_shape_on_a_shape_mismatch():
    def summed(dz, eps, std):
        dmu, dlog_var = solutions.reparameterize_backward(dz, eps, std)
        return dmu, dlog_var.sum(axis=0)
    text = str(check("reparameterize_backward", summed))
    row = next(line for line in text.splitlines() if line.strip().startswith("dlog_var ") and "<-- wrong" in line)
    assert "(3,) given, (4, 3) expected" in row, text
    assert "inf" not in row and "nan" not in row and "()" not in row, row


def test_gradcheck_report_on_a_wrong_shape_raises_with_both_shapes():
    from tinyvae.learn.gradcheck import check_gradients
    w = np.ones((2, 3))
    report = check_gradients(lambda: (w ** 2).sum(), {"w": w}, {"w": np.ones(3)})
    assert not report.passed
    with pytest.raises(AssertionError, match=r"has shape \(3,\), expected \(2, 3\)"):
        report.raise_if_failed()


def test_every_exercise_has_planted_mistakes():
    assert {p[0] for p in PLANTED} == set(NAMES)


def test_failed_gradient_feedback_shows_relative_error_index_and_both_values():
    text = str(check("tanh_backward", lambda dy, y: dy * (1 - y)))
    assert "rel. error" in text and "worst at" in text and "analytic" in text and "numeric" in text
    assert "<-- wrong" in text


def test_a_wrong_answer_outside_the_catalogue_still_points_at_the_gradient():
    text = str(check("relu_backward", lambda dy, x: dy * (x > 0.5)))
    assert "dx is wrong" in text and "relative error" in text and "eq:relu-grad" in text


def test_learner_inputs_are_copies_so_in_place_edits_cannot_corrupt_the_check():
    def dense_backward(dy, x, W):
        out = solutions.dense_backward(dy.copy(), x.copy(), W.copy())
        dy *= 0
        x *= 0
        return out
    assert check("dense_backward", dense_backward).passed


def test_command_line_checks_a_file_of_answers(tmp_path, capsys):
    from tinyvae.learn.exercises.__main__ import main  # noqa: PLC0415  (what python -m tinyvae.exercises runs)

    answers = tmp_path / "answers.py"
    answers.write_text("import numpy as np\n\ndef relu_backward(dy, x):\n    return dy * (x > 0)\n")
    assert main([str(answers)]) == 1  # the others are not there yet
    out = capsys.readouterr().out
    assert f"1/{len(NAMES)} exercises pass" in out
    assert main([solutions.__file__]) == 0


def run_exercises_command(*args, cwd):
    """``python -m tinyvae.exercises ARGS`` in a fresh process, as notebook 07 and notebooks/README.md give it."""
    root = Path(tinyvae.__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "tinyvae.exercises", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)  # a guard against a hang, not a measure of speed


def test_the_documented_shell_command_checks_a_file_of_answers(tmp_path):
    answers = tmp_path / "my_answers.py"
    answers.write_text("def relu_backward(dy, x):\n    return dy * (x > 0)\n")
    proc = run_exercises_command(str(answers), cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert f"1/{len(NAMES)} exercises pass" in proc.stdout
    proc = run_exercises_command(solutions.__file__, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(NAMES)}/{len(NAMES)} exercises pass" in proc.stdout


@pytest.mark.parametrize("args, code, words", [
    (["--help"], 0, ["usage: python -m tinyvae.exercises"]),
    (["-h"], 0, ["usage: python -m tinyvae.exercises"]),
    (["no_such_answers.py"], 2, ["no such file: no_such_answers.py", "usage:"]),
    ([], 2, ["expected one file of answers, got 0 arguments", "usage:"]),
    (["a.py", "b.py"], 2, ["got 2 arguments", "usage:"]),
], ids=["--help", "-h", "missing file", "no file", "two files"])
def test_the_shell_command_answers_help_and_bad_arguments_with_usage_and_no_traceback(tmp_path, args, code, words):
    proc = run_exercises_command(*args, cwd=tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode == code and "Traceback" not in text, text
    for word in words:
        assert word in text, text


def test_the_shell_command_names_a_broken_answers_file_without_a_traceback(tmp_path):
    (tmp_path / "broken.py").write_text("def relu_backward(dy, x):\n    return dy *\n")
    (tmp_path / "notes.txt").write_text("not python")
    proc = run_exercises_command("broken.py", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "running broken.py raised SyntaxError" in proc.stderr and "line 2" in proc.stderr, proc.stderr
    proc = run_exercises_command("notes.txt", cwd=tmp_path)
    assert proc.returncode == 2 and "expected a Python file ending in .py" in proc.stderr, proc.stderr


# --------------------------------------------------------------------------- the learner's own file


# A learner points TINYVAE_ANSWERS at their own file; without it the same tests check the reference
# solutions, so the mechanism itself is exercised on every run.
ANSWERS = os.environ.get("TINYVAE_ANSWERS") or solutions.__file__


@pytest.mark.parametrize("name", NAMES)
def test_learner_exercise(name):
    spec = importlib.util.spec_from_file_location("learner_answers", ANSWERS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = getattr(module, name, None)
    assert fn is not None, f"{name} is not defined in {ANSWERS} yet"
    feedback = check(name, fn)
    assert feedback.passed, "\n" + str(feedback)


def test_the_conv_exercise_forward_and_solution_agree_with_the_library_layer():
    """exercises.conv_forward, solutions.conv_backward and tinyvae's Conv2d: three implementations, one answer."""
    rng = np.random.default_rng(0)
    layer = tinyvae.nn.Conv2d(2, 8, 3, 2, 1, init="uniform", rng=rng, dtype=np.float64)
    x = rng.standard_normal((4, 2, 9, 10))
    y = layer.forward(x)
    np.testing.assert_allclose(exercises.conv_forward(x, layer.params["W"], layer.params["b"], 2, 1), y, rtol=1e-12,
                               atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    ref = solutions.conv_backward(dy, x, layer.params["W"], 2, 1)
    for mine, theirs in zip(ref, (dx, layer.grads["W"], layer.grads["b"])):
        np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-12)


def test_the_planar_solution_has_the_log_determinant_of_its_jacobian_and_a_constrained_u():
    """The reference (j) against slogdet of a central-difference Jacobian, on inputs with wᵀu < −1."""
    rng = np.random.default_rng(3)
    z, w = rng.standard_normal((4, 3)), rng.standard_normal(3)
    u = rng.standard_normal(3)
    u += (-2.5 - w @ u) * w / (w @ w)
    b, dz_out, g = 0.4, rng.standard_normal((4, 3)), np.full(4, 0.25)
    z_out, logdet = solutions.planar_step(z, u, w, b, dz_out, g)[:2]
    u_hat = (z_out[0] - z[0]) / np.tanh(z[0] @ w + b)
    assert w @ u < -1 < w @ u_hat
    for n in range(4):
        cols = []
        for e in np.eye(3) * 1e-6:
            up = solutions.planar_step((z[n] + e)[None], u, w, b, dz_out[:1], g[:1])[0][0]
            down = solutions.planar_step((z[n] - e)[None], u, w, b, dz_out[:1], g[:1])[0][0]
            cols.append((up - down) / 2e-6)
        sign, value = np.linalg.slogdet(np.stack(cols, axis=1))
        assert sign > 0 and abs(value - logdet[n]) < 1e-8
