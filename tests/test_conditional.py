"""The conditional VAE (on a label, on seen quadrants) and the quadrant regressor: gradients by central
differences, what the parts compute against their closed forms, and the bad inputs each refuses."""

import re

import numpy as np
import pytest

import tinyvae
from tinyvae.checkpoint import CheckpointError
from tinyvae.checks import ShapeError
from tinyvae.learn.gradcheck import check_gradients, check_model
from tinyvae.learn.gradcheck_conditional import conditional_checks
from tinyvae.models.conditional import ConditionalVAE, QuadrantRegressor
from tinyvae.models.config import ModelConfig
from tinyvae.models.parts.conditions import LabelError, one_hot, quadrant_mask
from tinyvae.prob.losses import bernoulli_nll, gaussian_kl

RNG = np.random.default_rng(5)


def label_cvae(**changes):
    fields = dict(input_dim=6, hidden=(5,), latent=2, activation="tanh", classes=3, dtype="float64", seed=1)
    return ConditionalVAE(**{**fields, **changes})


def quadrant_cvae(seen=2, **changes):
    fields = dict(input_dim=16, image_shape=(4, 4), hidden=(5,), latent=2, activation="tanh", condition="quadrants",
                  quadrants=seen, dtype="float64", seed=1)
    return ConditionalVAE(**{**fields, **changes})


@pytest.mark.parametrize("report", conditional_checks(np.random.default_rng(0), 0), ids=lambda r: r.label)
def test_conditional_gradients_match_central_differences_with_fixed_eps(report, gradcheck_passes):
    gradcheck_passes(report)


def test_label_cvae_gradient_matches_central_differences_with_several_hidden_layers(gradcheck_passes):
    model = label_cvae(hidden=(5, 4), activation="softplus", beta=1.3)
    x, y, eps = RNG.uniform(0, 1, (5, 6)), np.array([0, 1, 2, 2, 0]), RNG.standard_normal((5, 2))
    model.forward(x, eps, labels=y)
    model.backward()
    gradcheck_passes(check_gradients(lambda: model.forward(x, eps, labels=y), model.params, model.grads,
                                     label="label CVAE 6-5-4-2"))


def test_label_cvae_loss_is_its_decoders_bernoulli_nll_plus_the_closed_form_kl():
    model = label_cvae()
    x, y, eps = RNG.uniform(0, 1, (4, 6)), np.array([2, 0, 1, 1]), RNG.standard_normal((4, 2))
    loss = float(model.forward(x, eps, labels=y))
    c = one_hot(y, 3, np.float64, np)
    mu, log_var = model.encode(x, c)
    logits = model.decode_logits(mu + np.exp(0.5 * log_var) * eps, c)
    want = float(bernoulli_nll(logits, x)[0]) + float(gaussian_kl(mu, log_var)[0])
    assert loss == pytest.approx(want, rel=1e-12)


def test_one_hot_concatenation_is_a_learned_vector_per_class_added_to_the_first_layers_preactivation():
    model = label_cvae()
    dense = model.encoder.layers[0]
    x = RNG.uniform(0, 1, (3, 6))
    y = np.array([0, 2, 1])
    c = one_hot(y, 3, np.float64, np)
    model.encode(x, c)  # the model's own concatenation reaches its first layer as [x | c]
    np.testing.assert_array_equal(dense._cache, np.concatenate([x, c], axis=1))
    pre = dense.forward(dense._cache)  # the real layer's forward
    w_y = dense.params["W"][6:]  # (C, H): one row per class
    np.testing.assert_allclose(pre, x @ dense.params["W"][:6] + dense.params["b"] + w_y[y], rtol=1e-14, atol=1e-14)


def test_quadrant_masks_follow_the_bottom_left_then_left_half_then_all_but_bottom_right_layout():
    m1, m2, m3 = (quadrant_mask(k, (4, 4)).reshape(4, 4) for k in (1, 2, 3))
    np.testing.assert_array_equal(m1, [[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]])
    np.testing.assert_array_equal(m2, [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]])
    np.testing.assert_array_equal(m3, [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0]])


def test_quadrant_models_score_only_the_unseen_pixels_and_never_read_them():
    model = QuadrantRegressor(input_dim=16, image_shape=(4, 4), hidden=(5,), activation="tanh", quadrants=2,
                              dtype="float64", seed=1)
    x = RNG.uniform(0, 1, (3, 16))
    changed = x.copy()
    unseen = quadrant_mask(2, (4, 4)) == 0
    changed[:, unseen] = RNG.uniform(0, 1, (3, int(unseen.sum())))
    prediction = model.predict(x)
    np.testing.assert_array_equal(model.predict(changed), prediction)  # the input never sees the unseen pixels
    logits = np.log(prediction / (1 - prediction))
    want = float(bernoulli_nll(logits[:, unseen], x[:, unseen])[0])
    assert float(model.forward(x)) == pytest.approx(want, rel=1e-10)


def test_a_mask_given_per_call_replaces_the_configs_quadrants():
    model = quadrant_cvae(seen=1)
    x, eps = RNG.uniform(0, 1, (2, 16)), RNG.standard_normal((2, 2))
    other = quadrant_cvae(seen=3)
    other.theta[...] = model.theta
    assert float(model.forward(x, eps, mask=quadrant_mask(3, (4, 4)))) == pytest.approx(float(other.forward(x, eps)))


def test_samples_share_one_z_per_row_across_the_conditions():
    model = label_cvae()
    c = one_hot(np.arange(3), 3, np.float64, np)
    images = model.sample(4, np.random.default_rng(0), c=c)
    assert images.shape == (4, 3, 6)
    z = np.random.default_rng(0).standard_normal((4, 2))
    np.testing.assert_allclose(images[2, 1], model.decode(z[2:3], c[1:2])[0], rtol=1e-12)


# ---- bad input


@pytest.mark.parametrize("labels, says", [
    (np.array([0, 1, 3, 1]), "expected classes 0..2 (3 classes), got 3"),
    (np.array([0, -1, 2, 1]), "got -1"),
    (np.array([0, 1, 2]), "shape (4,), got shape (3,)"),
    (np.array([[0, 1, 2, 1]]), "got shape (1, 4)"),
    (np.array([0.0, 1.0, 2.0, 1.0]), "integer class indices 0..2, got dtype float64"),
    (None, "expected labels, 4 integers in 0..2"),
])
def test_labels_outside_the_classes_or_of_the_wrong_length_are_refused_naming_both(labels, says):
    with pytest.raises(LabelError, match="labels: .*" + re.escape(says)):
        label_cvae().forward(RNG.uniform(0, 1, (4, 6)), labels=labels)


@pytest.mark.parametrize("mask", [np.ones(15), np.ones((3, 16)), np.ones((4, 4))])
def test_a_quadrant_mask_of_the_wrong_shape_is_refused_naming_both(mask):
    with pytest.raises(ShapeError, match=r"mask: expected the seen pixels as shape \(16,\) or \(2, 16\).*got shape"):
        quadrant_cvae().forward(RNG.uniform(0, 1, (2, 16)), mask=mask)


def test_a_conditional_checkpoint_loaded_into_an_unconditional_model_is_refused_and_the_reverse(tmp_path):
    cvae, vae = label_cvae(), tinyvae.VAE(input_dim=6, hidden=(5,), latent=2, dtype="float64")
    cvae.save(tmp_path / "cvae.npz")
    vae.save(tmp_path / "vae.npz")
    with pytest.raises(CheckpointError, match="holds a conditional cvae .condition 'label'., but this model is an "
                                              "unconditional vae"):
        vae.load_weights(tmp_path / "cvae.npz")
    with pytest.raises(CheckpointError, match="holds an unconditional vae, but this model is a conditional cvae"):
        cvae.load_weights(tmp_path / "vae.npz")
    loaded = tinyvae.load_model(tmp_path / "cvae.npz")
    assert isinstance(loaded, ConditionalVAE)
    np.testing.assert_array_equal(loaded.theta, cvae.theta)


@pytest.mark.parametrize("fields, says", [
    (dict(model="cvae"), "needs a condition, and no --condition was given"),
    (dict(model="cvae", condition="quadrants"), "needs the number of quadrants seen, and no --quadrants was given"),
    (dict(model="cvae", condition="quadrants", quadrants=4), "--quadrants: expected 1, 2 or 3 quadrants seen, got 4"),
    (dict(model="quadrant-regressor", condition="label"), "reads no label, got --condition label: drop --condition"),
    (dict(model="vae", condition="label"), "--condition label sets a condition, which only a conditional model reads"),
    (dict(model="vae", classes=5), "--classes 5 sets a condition, which only a conditional model reads"),
    (dict(model="cvae", condition="quadrants", quadrants=1, classes=5), "condition 'quadrants' reads no label"),
    (dict(model="cvae", condition="label", objective="iwae"), "built for objective 'elbo', got 'iwae'"),
    (dict(model="cvae", condition="quadrants", quadrants=2, likelihood="gaussian"),
     "scores the unseen pixels with a Bernoulli"),
])
def test_impossible_conditional_configs_are_refused(fields, says):
    with pytest.raises(ValueError, match=says):
        ModelConfig(**fields)


def test_an_unconditional_config_stores_no_condition_fields():
    assert not {"condition", "classes", "quadrants"} & set(ModelConfig().to_dict())
    assert ModelConfig(model="cvae", condition="label").to_dict()["condition"] == "label"


def test_conditional_gradcheck_fails_when_the_decoder_gradient_is_read_from_the_condition_columns(monkeypatch):
    """A planted bug: dL/dz taken from the condition's columns of dL/d[z | c]."""
    model = quadrant_cvae(seen=1, latent=3)
    x, eps = RNG.uniform(0, 1, (3, 16)), RNG.standard_normal((3, 3))
    model.forward(x, eps)
    real = model.decoder.backward
    monkeypatch.setattr(model.decoder, "backward", lambda d: np.roll(real(d), -3, axis=1))
    assert not check_model(model, x, eps).passed


# ---- the importance-sampled conditional NLL


def test_conditional_nll_is_exact_when_the_posterior_is_the_prior_and_the_decoder_ignores_z():
    """q(z|x, c) = N(0, I) = p(z) makes every weight w_k = p(x_u | c): the estimate is exact for any K."""
    model = quadrant_cvae(seen=2)
    model.encoder.layers[-1].params["W"][...] = 0
    model.encoder.layers[-1].params["b"][...] = 0  # μ = 0, log σ² = 0
    model.decoder.layers[0].params["W"][:2] = 0  # the z rows of the decoder's first layer: p(x|z, c) = p(x|c)
    x = RNG.uniform(0, 1, (3, 16))
    c = model.condition_of(x)
    logits = model.decode_logits(np.zeros((3, 2)), c)
    unseen = quadrant_mask(2, (4, 4)) == 0
    want = [float(bernoulli_nll(logits[i:i + 1, unseen], x[i:i + 1, unseen])[0]) for i in range(3)]
    np.testing.assert_allclose(tinyvae.conditional_nll(model, x, k=7, seed=3), want, rtol=1e-12)


def test_conditional_nll_with_one_sample_averages_to_the_negative_elbo():
    model = label_cvae()
    x, y = np.tile(RNG.uniform(0, 1, (1, 6)), (4000, 1)), np.full(4000, 1)
    nll_one = tinyvae.conditional_nll(model, x, labels=y, k=1, seed=0, batch_size=4000)
    elbo = tinyvae.evaluate_elbo(model, x[:1], labels=y[:1])  # a sampled recon, the closed-form KL
    recon = tinyvae.evaluate_elbo(model, x, labels=y, batch_size=4000)["recon"]
    assert nll_one.mean() == pytest.approx(recon + elbo["kl"], abs=4 * nll_one.std() / np.sqrt(4000))


def test_more_importance_samples_tighten_the_conditional_bound_on_average():
    model = quadrant_cvae(seen=1, latent=3)
    x = RNG.uniform(0, 1, (200, 16))
    assert tinyvae.conditional_nll(model, x, k=50).mean() < tinyvae.conditional_nll(model, x, k=1).mean()


def test_the_regressors_conditional_nll_is_its_loss_per_example():
    model = QuadrantRegressor(input_dim=16, image_shape=(4, 4), hidden=(5,), quadrants=1, dtype="float64")
    x = RNG.uniform(0, 1, (5, 16))
    assert tinyvae.conditional_nll(model, x).mean() == pytest.approx(float(model.forward(x)), rel=1e-12)


def test_conditional_nll_refuses_an_unconditional_model():
    with pytest.raises(ValueError, match="needs a conditional model .cvae or quadrant-regressor., got a VAE"):
        tinyvae.conditional_nll(tinyvae.VAE(input_dim=6, hidden=(5,), latent=2), RNG.uniform(0, 1, (2, 6)))


# ---- pictures


def test_completions_keep_the_seen_pixels_and_differ_between_samples_where_unseen():
    from tinyvae.evaluation.conditional_pictures import completions, seen_part
    model = quadrant_cvae(seen=2, latent=3)
    model.theta[...] = np.random.default_rng(0).normal(0, 0.5, model.theta.shape)
    x = RNG.uniform(0, 1, (4, 16))
    filled = completions(model, x, samples=3, seed=1)
    seen = quadrant_mask(2, (4, 4)) == 1
    assert filled.shape == (3, 4, 16)
    np.testing.assert_allclose(filled[:, :, seen], np.broadcast_to(x[:, seen], (3, 4, int(seen.sum()))))
    assert np.abs(filled[0, :, ~seen] - filled[1, :, ~seen]).max() > 1e-3
    np.testing.assert_allclose(seen_part(model, x)[:, ~seen], 0.35)


def test_style_transfer_decodes_each_digits_posterior_mean_under_every_label():
    from tinyvae.evaluation.conditional_pictures import style_transfer
    model = label_cvae(dtype="float32")
    x, y = RNG.uniform(0, 1, (2, 6)).astype(np.float32), np.array([2, 0])
    images = style_transfer(model, x, y)
    assert images.shape == (2, 3, 6)
    mu, _ = model.encode(x, one_hot(y, 3, np.float32, np))
    np.testing.assert_allclose(images[1, 2], model.decode(mu[1:2], one_hot(np.array([2]), 3, np.float32, np))[0],
                               rtol=1e-6)


@pytest.mark.parametrize("make", [lambda: label_cvae(), lambda: quadrant_cvae(seen=3)], ids=["label", "quadrants"])
def test_the_cvae_runs_unchanged_on_a_device_namespace(device_xp, make):
    from tinyvae import backend
    x, eps, y = RNG.uniform(0, 1, (4, 16)), RNG.standard_normal((4, 2)), np.array([0, 2, 1, 1])
    model = make()
    x = x[:, :model.config.input_dim]
    extra = {"labels": y} if model.needs_labels else {}
    loss = float(model.forward(x, eps, **extra))
    grad = model.backward().copy()
    on_device = make().to(device_xp)
    extra = {k: backend.to_device(v, device_xp) for k, v in extra.items()}
    dloss = float(on_device.forward(backend.to_device(x, device_xp), backend.to_device(eps, device_xp), **extra))
    assert dloss == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(backend.to_numpy(on_device.backward()), grad, rtol=1e-10, atol=1e-14)


def test_a_mask_with_values_other_than_0_and_1_is_refused_naming_one():
    mask = quadrant_mask(2, (4, 4))
    mask[3] = 0.5
    with pytest.raises(ValueError, match="mask: expected 1 at the seen pixels and 0 at the unseen, got 1 other values, "
                                         "the first 0.5"):
        quadrant_cvae().forward(RNG.uniform(0, 1, (2, 16)), mask=mask)


def test_labels_given_to_the_quadrant_condition_and_a_mask_to_the_label_condition_are_refused():
    with pytest.raises(ValueError, match="labels: the quadrant condition reads the seen pixels, not a label"):
        quadrant_cvae().forward(RNG.uniform(0, 1, (2, 16)), labels=np.array([1, 2]))
    with pytest.raises(ValueError, match="mask: the label condition scores every pixel and takes no mask"):
        label_cvae().forward(RNG.uniform(0, 1, (2, 6)), labels=np.array([1, 2]), mask=np.ones(6))


def test_the_evaluation_and_the_pictures_refuse_labels_of_the_wrong_length_or_outside_the_classes():
    from tinyvae.evaluation.conditional_pictures import style_transfer
    model = label_cvae()
    x = RNG.uniform(0, 1, (5, 6))
    with pytest.raises(LabelError, match=r"labels: expected one class per example, shape \(5,\), got shape \(4,\)"):
        tinyvae.conditional_nll(model, x, labels=np.array([0, 1, 2, 0]), batch_size=2)
    with pytest.raises(LabelError, match="expected classes 0..2 .3 classes., got 7"):
        style_transfer(model, x, [0, 1, 2, 0, 7])
