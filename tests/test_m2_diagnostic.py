"""M2's label diagnostic: −L(x, y) of every label against the loss of one labelled example, the generative
model's own label [eq:m2-generative-label] against a brute-force argmin, and a model built so that the answer is
known."""

import math

import numpy as np
import pytest

from tinyvae.checks import ShapeError
from tinyvae.data import to_float
from tinyvae.models.m2 import M2
from tinyvae.run.semi import label_diagnostic

C, D, Z = 3, 12, 2


def small_model(**overrides):
    sizes = {"input_dim": D, "classes": C, "hidden": (5,), "classifier_hidden": (4,), "latent": Z, "dtype": "float64"}
    return M2(**{**sizes, **overrides})


def test_neg_bounds_of_every_label_equal_the_loss_of_one_labelled_example_with_alpha_zero():
    # with α = 0 and one labelled example the loss [eq:m2-loss] is that example's −L(x, y)
    model = small_model(seed=3)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(4, D))
    eps = rng.standard_normal((4 * C, Z))
    table = model.neg_bounds(x, eps)
    assert table.shape == (4, C)
    for n in range(4):
        for y in range(C):
            one = model.forward(x[n:n + 1], np.array([y]), eps[n * C + y][None], alpha=0.0)
            assert table[n, y] == pytest.approx(float(one), rel=1e-12)


def test_a_backward_after_neg_bounds_is_refused_and_bad_noise_is_named():
    model = small_model()
    x = np.random.default_rng(1).uniform(size=(2, D))
    model.forward(x, np.array([0, -1]), np.zeros((1 + C, Z)))
    model.neg_bounds(x, np.zeros((2 * C, Z)))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        model.backward()
    with pytest.raises(ShapeError, match=r"expected shape \(N·C, Z\) = \(6, 2\)"):
        model.neg_bounds(x, np.zeros((2, Z)))


def test_the_generative_label_is_the_argmin_of_the_bound_averaged_over_the_draws_of_noise():
    model = small_model(seed=5)
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (7, D)).astype(np.uint8)
    x = to_float(images, "none").astype(np.float64)
    samples = 3
    eps = [np.random.default_rng([0, s]).standard_normal((7 * C, Z)) for s in range(samples)]
    brute = np.array([[np.mean([float(model.forward(x[n:n + 1], np.array([y]), e[n * C + y][None], alpha=0.0))
                                for e in eps]) for y in range(C)] for n in range(7)])
    best = brute.argmin(axis=1)
    q = np.exp(model.classify(x))
    entropy = -(q * np.log(q)).sum(axis=1).mean()
    for batch_size in (3, 7):  # ε of an image does not depend on how the images are batched
        right = label_diagnostic(model, images, best, samples=samples, batch_size=batch_size)
        assert right == {"generative_error": 0.0, "q_entropy": pytest.approx(entropy, rel=1e-12)}
        # one image in three given another label: its generative label is wrong
        labels = np.where(np.arange(7) % 3 == 0, (best + 1) % C, best)
        wrong = label_diagnostic(model, images, labels, samples=samples, batch_size=batch_size)
        assert wrong["generative_error"] == pytest.approx(3 / 7)


def templated_model():
    """A decoder that draws class k's block of pixels, all on, whatever z, and a classifier with given logits."""
    model = small_model(hidden=(C,))
    block = D // C
    for k, v in model.params.items():
        if k.startswith("decoder.") or k.startswith("classifier."):
            v[...] = 0.0
    model.params["decoder.0.W"][Z:, :] = 12.0 * np.eye(C)  # hidden unit k ≈ 6 when y = k, ≈ 0 otherwise
    model.params["decoder.0.b"][:] = -6.0
    w = -np.ones((C, D))
    for k in range(C):
        w[k, k * block:(k + 1) * block] = 1.0
    model.params["decoder.2.W"][...] = 2.0 * w  # logits ±12 on class k's block and off it
    return model, block


def test_a_decoder_that_draws_each_class_as_its_own_block_labels_each_block_image_with_its_class():
    model, block = templated_model()
    classes = np.array([0, 1, 2, 2, 1, 0])
    images = np.zeros((len(classes), D), dtype=np.uint8)
    for n, k in enumerate(classes):
        images[n, k * block:(k + 1) * block] = 255
    assert label_diagnostic(model, images, classes)["generative_error"] == 0.0
    assert label_diagnostic(model, images, (classes + 1) % C)["generative_error"] == 1.0
    # the classifier's weights are all zero: q(y|x) is uniform, of entropy log C
    assert label_diagnostic(model, images, classes)["q_entropy"] == pytest.approx(math.log(C), rel=1e-12)
    model.params["classifier.2.b"][0] = 50.0  # q(y|x) all on label 0: entropy near 0
    assert label_diagnostic(model, images, classes)["q_entropy"] < 1e-18


def test_label_diagnostic_refuses_no_images_or_no_samples():
    model = small_model()
    with pytest.raises(ValueError, match="at least one image and one sample, got 0 and 5"):
        label_diagnostic(model, np.zeros((0, D), dtype=np.uint8), np.zeros(0, dtype=np.int64))
    with pytest.raises(ValueError, match="got 2 and 0"):
        label_diagnostic(model, np.zeros((2, D), dtype=np.uint8), np.zeros(2, dtype=np.int64), samples=0)


@pytest.mark.parametrize("images, message", [
    (np.zeros((2, D), dtype=np.int64), "images must be uint8 grey levels 0-255 .* or floats in \\[0, 1\\], got dtype int64"),
    (np.full((2, D), 255.0), "float images must lie in \\[0, 1\\] .*, got values from 255 to 255"),
    (np.zeros((2, D + 1), dtype=np.uint8), f"images must be one row of {D} pixels per image, shape \\(N, {D}\\), got shape \\(2, {D + 1}\\)"),
])
def test_label_diagnostic_names_images_that_are_neither_uint8_nor_floats_in_0_to_1(images, message):
    with pytest.raises(ValueError, match="label_diagnostic: " + message):
        label_diagnostic(small_model(), images, np.zeros(2, dtype=np.int64))


def test_label_diagnostic_reads_floats_in_0_to_1_as_the_grey_levels_of_the_uint8_images():
    model = small_model(seed=5)
    images = np.random.default_rng(4).integers(0, 256, (6, D)).astype(np.uint8)
    labels = np.arange(6) % C
    as_floats = label_diagnostic(model, images.astype(np.float64) / 255, labels, samples=2)
    as_uint8 = label_diagnostic(model, images, labels, samples=2)  # read by to_float, in float32, then float64
    assert as_floats == pytest.approx(as_uint8, rel=1e-6)


def test_label_diagnostic_names_both_lengths_when_the_labels_do_not_match_the_images():
    images = np.zeros((20, D), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"labels must be one label per image, 20 of them \(shape \(20,\)\), got shape "
                                         r"\(10,\)"):
        label_diagnostic(small_model(), images, np.zeros(10, dtype=np.int64))
    with pytest.raises(ValueError, match=f"label_diagnostic: labels: expected integers 0 to {C - 1}"):
        label_diagnostic(small_model(), images, np.full(20, C))
