"""The semi-supervised M2: its objective against the bound written out example by example, the exact
minimum of the unlabelled bound over q(y|x), every gradient against central differences, and bad labels."""

import math

import numpy as np
import pytest

from tinyvae.checkpoint import CheckpointError
from tinyvae.checks import ShapeError
from tinyvae.learn.gradcheck import check_gradients, check_loss, m2_checks
from tinyvae.models.m2 import M2
from tinyvae.models.parts.classifier import check_labels, log_softmax
from tinyvae.models.parts.semi_supervised import label_rows, m2_loss, row_count

C = 3


def written_out(neg_l, logits, labels, alpha):
    """The loss [eq:m2-loss] one example at a time, with plain Python sums."""
    total, row = 0.0, 0
    for n, y in enumerate(labels):  # labelled rows first, in order
        if y >= 0:
            q = np.exp(logits[n]) / np.exp(logits[n]).sum()
            total += neg_l[row] - alpha * math.log(q[y])
            row += 1
    for n, y in enumerate(labels):  # then C rows for each unlabelled example
        if y < 0:
            q = np.exp(logits[n]) / np.exp(logits[n]).sum()
            total += sum(q[c] * neg_l[row + c] for c in range(C)) + sum(q[c] * math.log(q[c]) for c in range(C))
            row += C
    return total / len(labels)


def mixed(rng, labels=(1, -1, 0, -1, 2, -1)):
    labels = np.array(labels)
    return rng.normal(90.0, 5.0, row_count(labels, C)), rng.normal(0.0, 2.0, (len(labels), C)), labels


def test_rows_put_each_labelled_example_once_and_each_unlabelled_one_under_every_label():
    example, label, n_lab = label_rows(np.array([2, -1, 0]), C)
    assert n_lab == 2
    assert example.tolist() == [0, 2, 1, 1, 1]
    assert label.tolist() == [2, 0, 0, 1, 2]


def test_m2_loss_equals_the_bound_written_out_example_by_example():
    neg_l, logits, labels = mixed(np.random.default_rng(0))
    loss = m2_loss(neg_l, logits, labels, alpha=0.7)[0]
    assert loss == pytest.approx(written_out(neg_l, logits, labels, 0.7), rel=1e-13)


def test_unlabelled_bound_is_minimized_by_the_posterior_over_labels_where_it_equals_minus_log_marginal():
    # min over q of Σ_y q_y (ℓ_y + log q_y) is −log Σ_y exp(−ℓ_y), reached at q = softmax(−ℓ): it fails if the
    # labels are not summed, if q does not weight them, or if the entropy enters with the wrong sign
    rng = np.random.default_rng(1)
    neg_l = rng.normal(3.0, 2.0, (4, C))
    labels = -np.ones(4, dtype=np.int64)
    at_posterior = m2_loss(neg_l.ravel(), -neg_l, labels, alpha=0.0)[0]
    exact = -np.mean(np.log(np.exp(-neg_l).sum(axis=1)))
    assert at_posterior == pytest.approx(exact, rel=1e-12)
    for _ in range(5):
        assert m2_loss(neg_l.ravel(), rng.normal(0, 3, (4, C)), labels, alpha=0.0)[0] > at_posterior


def test_equal_bounds_give_a_loss_lowest_at_uniform_q_by_the_entropy_log_c():
    neg_l, labels = np.full(2 * C, 50.0), np.array([-1, -1])
    uniform = m2_loss(neg_l, np.zeros((2, C)), labels, alpha=0.0)[0]
    assert uniform == pytest.approx(50.0 - math.log(C), rel=1e-14)  # the entropy is subtracted
    assert m2_loss(neg_l, np.array([[4.0, 0, 0], [0, -2.0, 1.0]]), labels, alpha=0.0)[0] > uniform


def test_alpha_touches_only_the_labelled_examples():
    neg_l, logits, _ = mixed(np.random.default_rng(2), labels=(-1, -1, -1))
    labels = np.array([-1, -1, -1])
    a = m2_loss(neg_l, logits, labels, alpha=0.0)
    b = m2_loss(neg_l, logits, labels, alpha=50.0)
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[2], b[2])
    neg_l, logits, labels = mixed(np.random.default_rng(2))
    grow = m2_loss(neg_l, logits, labels, 1.0)[2] - m2_loss(neg_l, logits, labels, 0.0)[2]
    assert np.all(grow[labels < 0] == 0) and np.all(np.abs(grow[labels >= 0]).sum(axis=1) > 0)


@pytest.mark.parametrize("labels", [(1, -1, 0, -1, 2, -1), (-1, -1, -1), (0, 2, 1)])
def test_m2_loss_gradients_in_the_rows_and_the_logits_match_central_differences(labels):
    neg_l, logits, labels = mixed(np.random.default_rng(3), labels)

    def loss(neg_l, logits):
        value, d_neg_l, dlogits, _ = m2_loss(neg_l, logits, labels, 0.7)
        return value, d_neg_l, dlogits

    check_loss(loss, {"neg_l": neg_l, "logits": logits}, wrt=["neg_l", "logits"]).raise_if_failed()


def test_every_m2_check_of_the_gradcheck_suite_passes():
    reports = m2_checks(np.random.default_rng(0), 0)
    assert len(reports) == 8
    for rep in reports:
        rep.raise_if_failed()


def test_whole_m2_gradient_matches_finite_differences_with_fixed_eps_on_a_mixed_batch():
    model = M2(input_dim=7, classes=C, hidden=(6, 5), classifier_hidden=(5,), latent=3, activation="tanh",
               alpha=2.0, dtype="float64", seed=4)
    rng = np.random.default_rng(4)
    x, labels = rng.uniform(0, 1, (5, 7)), np.array([-1, 2, -1, 0, -1])
    eps = rng.standard_normal((model.rows(labels), 3))
    model.forward(x, labels, eps)
    model.backward()
    check_gradients(lambda: model.forward(x, labels, eps), model.params, model.grads).raise_if_failed()


def test_log_softmax_is_finite_for_large_logits():
    out = log_softmax(np.array([[1000.0, 0.0, -1000.0]]))
    assert np.isfinite(out).all() and out[0, 0] == 0.0


@pytest.mark.parametrize("labels, message", [
    ([0, 1], "expected one label per example, shape (3,), got shape (2,)"),
    ([0, 1, 3], "expected integers 0 to 2 (one of 3 classes), got 3 at position 2"),
    ([0, -1, 1], "expected integers 0 to 2 (one of 3 classes), got -1 at position 1"),
    ([0.5, 1, 2], "got an array of dtype float64"),
])
def test_bad_labels_are_refused_naming_what_was_given_and_what_was_expected(labels, message):
    with pytest.raises((ValueError, ShapeError)) as info:
        check_labels(labels, 3, C)
    assert message in str(info.value)


def test_model_refuses_a_label_outside_the_classes_and_eps_of_the_wrong_rows():
    model = M2(input_dim=4, classes=C, hidden=(3,), classifier_hidden=(3,), latent=2, dtype="float64")
    x = np.zeros((2, 4))
    with pytest.raises(ValueError, match="got 7 at position 1"):
        model.forward(x, [0, 7])
    with pytest.raises(ShapeError, match=r"\(4, 2\)"):
        model.forward(x, [0, -1], np.zeros((2, 2)))  # one labelled row and C = 3 unlabelled ones: R = 4


def test_saved_m2_loads_back_with_the_same_weights_and_refuses_a_vae_checkpoint(tmp_path):
    model = M2(input_dim=4, classes=C, hidden=(3,), classifier_hidden=(3,), latent=2, seed=5)
    model.save(tmp_path / "m2.npz")
    back = M2.load(tmp_path / "m2.npz")
    assert back.config == model.config
    for k, v in model.params.items():
        np.testing.assert_array_equal(back.params[k], v)
    from tinyvae.models.vae import VAE
    VAE(input_dim=4, hidden=(3,), latent=2).save(tmp_path / "vae.npz")
    with pytest.raises(CheckpointError):
        M2.load(tmp_path / "vae.npz")


def test_first_layer_on_the_rows_equals_a_dense_layer_on_the_concatenated_rows():
    from tinyvae.nn import Dense
    from tinyvae.models.parts.labelled_rows import LabelledRowsDense
    rng = np.random.default_rng(6)
    x, labels = rng.uniform(0, 1, (5, 7)), np.array([2, -1, 0, -1, -1])
    example, label, _ = label_rows(labels, C)
    dense = Dense(7 + C, 4, rng=rng, dtype=np.float64)
    dense.params["b"][...] = rng.standard_normal(4)
    rows = np.concatenate([x[example], np.eye(C)[label]], axis=1)  # (R, D + C)
    want = dense.forward(rows)
    dh = rng.standard_normal(want.shape)
    dense.backward(dh)
    want_grads = {k: v.copy() for k, v in dense.grads.items()}
    layer = LabelledRowsDense(dense, 7, C)  # the same W and b
    np.testing.assert_allclose(layer.forward((x, example, label)), want, rtol=1e-13, atol=1e-13)
    assert layer.backward(dh) is None
    for k in want_grads:
        np.testing.assert_allclose(layer.grads[k], want_grads[k], rtol=1e-12, atol=1e-13, err_msg=k)
