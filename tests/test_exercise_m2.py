"""Exercise (k), ``m2_batch_loss``: the reference passes, the stub says it is not implemented, and each usual
mistake, written as a learner would write it, fails with the hint that names it."""

import numpy as np
import pytest

from tinyvae import exercises
from tinyvae.learn import solutions
from tinyvae.learn.exercises import check
from tinyvae.models.parts.semi_supervised import m2_loss


def answer(weights="q", entropy=+1, detach=False, alpha_on_unlabelled=False):
    """A learner's M2 loss with one thing changed: how the unlabelled rows are weighted ("q", "one" or "mean"),
    the entropy's sign (0: forgotten), q held constant in the weights of the bounds (True) or in every weight,
    the entropy's included ("all"), α applied to every row."""
    def m2_batch_loss(neg_l, logits, y_onehot, alpha):
        n, c = neg_l.shape
        a = logits - logits.max(axis=1, keepdims=True)
        log_q = a - np.log(np.exp(a).sum(axis=1, keepdims=True))
        q = np.exp(log_q)
        lab = y_onehot.sum(axis=1, keepdims=True)
        w = {"q": q, "one": np.ones_like(q), "mean": np.full_like(q, 1.0 / c)}[weights]
        neg_u = (w * neg_l).sum(axis=1, keepdims=True) + entropy * (q * log_q).sum(axis=1, keepdims=True)
        loss = ((lab * (y_onehot * (neg_l - alpha * log_q)).sum(axis=1, keepdims=True)).sum()
                + ((1 - lab) * neg_u).sum()) / n
        dneg_l = (y_onehot + (1 - lab) * w) / n
        through_weights = 0 if detach else q * (neg_l - (q * neg_l).sum(axis=1, keepdims=True))
        through_entropy = 0 if detach == "all" else entropy * q * (log_q - (q * log_q).sum(axis=1, keepdims=True))
        ce = alpha * (q - y_onehot) if alpha_on_unlabelled else lab * alpha * (q - y_onehot)
        dlogits = (ce + (1 - lab) * (through_weights + through_entropy)) / n
        return loss, dneg_l, dlogits
    return m2_batch_loss


def test_the_reference_passes_on_several_cases():
    for seed in (0, 1, 2):
        feedback = check("m2_batch_loss", solutions.m2_batch_loss, seed=seed)
        assert feedback.passed, str(feedback)


def test_a_learner_answer_written_out_passes_and_the_stub_is_not_implemented():
    assert check("m2_batch_loss", answer()).passed
    assert check("m2_batch_loss", exercises.m2_batch_loss).status == "not implemented"


def test_the_reference_agrees_with_the_library_objective():
    rng = np.random.default_rng(0)
    neg_l, logits = rng.normal(5, 3, (5, 4)), rng.normal(0, 2, (5, 4))
    labels = np.array([2, -1, 0, -1, -1])
    onehot = np.zeros((5, 4))
    onehot[[0, 2], [2, 0]] = 1
    loss, dneg_l, dlogits = solutions.m2_batch_loss(neg_l, logits, onehot, 1.5)
    rows = np.concatenate([neg_l[[0, 2], [2, 0]], neg_l[[1, 3, 4]].ravel()])  # the library's row order
    lib = m2_loss(rows, logits, labels, 1.5)
    assert loss == pytest.approx(float(lib[0]), rel=1e-13)
    np.testing.assert_allclose(dlogits, lib[2], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.concatenate([dneg_l[[0, 2], [2, 0]], dneg_l[[1, 3, 4]].ravel()]), lib[1], rtol=1e-12)


@pytest.mark.parametrize("wrong, words", [
    (answer(weights="one"), ["dneg_l", "not weighted by q(y|x)", "eq:m2-grad-rows"]),
    (answer(weights="mean"), ["dneg_l", "averaged over the labels", "q(y|x)/N"]),
    (answer(entropy=0), ["loss", "dlogits", "the entropy is missing"]),
    (answer(entropy=-1), ["the entropy enters with the wrong sign"]),
    (answer(detach=True), ["dlogits", "held constant (detached)", "eq:m2-grad-logits"]),
    (answer(detach="all"), ["dlogits", "no gradient reaches the unlabelled examples' logits", "holding every weight "
                            "q(y|x) constant leaves only the sum inside the log, which is zero"]),
    (answer(alpha_on_unlabelled=True), ["dlogits", "α is applied to the unlabelled examples too"]),
], ids=["not weighted by q", "averaged over labels", "entropy forgotten", "entropy sign", "q detached",
        "every weight detached", "alpha on unlabelled"])
def test_each_usual_m2_mistake_fails_with_the_hint_that_names_it(wrong, words):
    feedback = check("m2_batch_loss", wrong)
    text = str(feedback)
    assert not feedback.passed, text
    for word in words:
        assert word in text, f"expected {word!r} in:\n{text}"


def test_a_failing_answer_is_told_which_examples_are_labelled_and_to_read_the_unlabelled_bound():
    text = str(check("m2_batch_loss", answer(detach=True)))
    assert "In this check's batch, examples 0 and 2 (rows 0 and 2 of each array) are labelled; 1 and 3 are not." in text
    read = text[text.index("Read: "):]
    for anchor in ("eq:m2-unlabelled", "eq:m2-loss", "eq:m2-grad-rows", "eq:m2-grad-logits", "eq:m2-grad-alpha"):
        assert f"derivations/semi-supervised.md#{anchor}" in read


def test_the_check_labels_examples_0_and_2_as_its_note_says():
    from tinyvae.learn.exercises.k_m2 import _m2_case  # noqa: PLC0415

    for seed in range(5):
        assert _m2_case(np.random.default_rng(seed))["y_onehot"].sum(axis=1).tolist() == [1, 0, 1, 0]
