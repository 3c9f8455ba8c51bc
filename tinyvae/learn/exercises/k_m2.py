"""Exercise (k), ``m2_batch_loss``: the semi-supervised M2's loss of a mixed batch and its gradients with respect
to each label's bound and to the classifier's logits (derivations/semi-supervised.md).

The stub the learner replaces, the cases it is checked on, its numeric check and the named
mistakes the checker recognizes.
"""

from __future__ import annotations

import numpy as np

from .. import solutions
from .spec import Exercise, Mistake, SIZES, _loss_numeric, _shape


def m2_batch_loss(neg_l, logits, y_onehot, alpha):
    """(k) The M2 loss of a batch of labelled and unlabelled examples, and its gradients.

    Inputs: neg_l (N, C), −L(x_n, y) for every example n and every label y (the labelled bound of
    the pair, already computed by the encoder and decoder); logits (N, C) of the classifier,
    q(y|x) = softmax(logits); y_onehot (N, C), the one-hot label of a labelled example and a row of
    zeros for an unlabelled one; alpha, α_batch, the weight of the classifier's cross-entropy per
    labelled example of the batch mean.
    Return (loss, dneg_l, dlogits):
    loss = (1/N) [Σ_labelled (−L(x, y) − α log q(y|x)) + Σ_unlabelled −U(x)], one number, with
    −U(x) = Σ_y q(y|x)(−L(x, y)) − H(q(y|x)); dneg_l = ∂loss/∂neg_l and dlogits = ∂loss/∂logits,
    (N, C) each. q(y|x) is a function of the logits everywhere it appears. For a labelled example n
    with label y only neg_l[n, y] enters the loss: its other C − 1 columns are unused, and dneg_l is 0
    there. (The page's rows are the entries of neg_l that enter the loss.)
    Read: derivations/semi-supervised.md#eq:m2-unlabelled, #eq:m2-loss, #eq:m2-grad-rows,
    #eq:m2-grad-logits and #eq:m2-grad-alpha.
    """
    raise NotImplementedError


def _m2_case(rng):
    n, c = _shape("N", "C")
    y_onehot = np.zeros((n, c))
    y_onehot[[0, 2], rng.integers(0, c, 2)] = 1.0  # examples 0 and 2 labelled, 1 and 3 not
    return {"neg_l": rng.normal(5.0, 3.0, (n, c)), "logits": rng.normal(0.0, 1.5, (n, c)), "y_onehot": y_onehot,
            "alpha": 2.5}


def _parts(c):
    """(q, log q, labelled (N, 1), −U (N, 1)) of a case."""
    a = c["logits"] - c["logits"].max(axis=1, keepdims=True)
    log_q = a - np.log(np.exp(a).sum(axis=1, keepdims=True))
    q = np.exp(log_q)
    return q, log_q, c["y_onehot"].sum(axis=1, keepdims=True), (q * (c["neg_l"] + log_q)).sum(axis=1, keepdims=True)


def _ref(c):
    return solutions.m2_batch_loss(c["neg_l"], c["logits"], c["y_onehot"], c["alpha"])


def _unlabelled_logits(c, grad):
    """The reference dlogits with the unlabelled rows replaced by ``grad`` (N, C) / N."""
    _, _, lab, _ = _parts(c)
    return lab * _ref(c)[2] + (1 - lab) * grad / SIZES["N"]


def _m2_mistakes():
    n, c_count = SIZES["N"], SIZES["C"]

    def entropy_part(c):
        q, log_q, _, _ = _parts(c)
        return q * (log_q - (q * log_q).sum(axis=1, keepdims=True))

    def bounds_part(c):
        q, _, _, _ = _parts(c)
        return q * (c["neg_l"] - (q * c["neg_l"]).sum(axis=1, keepdims=True))

    def loss_with(c, entropy_sign):
        q, log_q, lab, _ = _parts(c)
        neg_u = (q * c["neg_l"]).sum(axis=1, keepdims=True) + entropy_sign * (q * log_q).sum(axis=1, keepdims=True)
        lab_terms = (c["y_onehot"] * (c["neg_l"] - c["alpha"] * log_q)).sum(axis=1, keepdims=True)
        return float((lab * lab_terms + (1 - lab) * neg_u).sum() / n)

    def unweighted_rows(scale):
        return lambda c: (c["y_onehot"] + (1 - _parts(c)[2]) * scale) / n

    forgot_entropy = ("the entropy is missing: −U(x) = Σ_y q(y|x)(−L(x, y)) − H(q(y|x)), that is "
                      "Σ_y q (−L + log q); the entropy term adds q_j(log q_j − Σ_y q_y log q_y) to the logits' "
                      "gradient [eq:m2-unlabelled] [eq:m2-grad-logits]")
    wrong_sign = ("the entropy enters with the wrong sign: the bound subtracts H(q(y|x)), so the loss adds "
                  "Σ_y q log q (≤ 0), which rewards a spread-out q(y|x) [eq:m2-unlabelled]")
    return [
        Mistake("dneg_l", "an unlabelled example's rows are not weighted by q(y|x): −U sums −L(x, y) over the labels "
                          "with weights q(y|x), so ∂loss/∂(−L(x, y)) = q(y|x)/N, not 1/N [eq:m2-grad-rows]",
                unweighted_rows(1.0)),
        Mistake("dneg_l", "an unlabelled example's rows are averaged over the labels (1/C each), not weighted by "
                          "q(y|x): ∂loss/∂(−L(x, y)) = q(y|x)/N [eq:m2-grad-rows]", unweighted_rows(1.0 / c_count)),
        Mistake("loss", "the unlabelled bound is not weighted by q(y|x): Σ_y q(y|x)(−L(x, y)), not the plain sum "
                        "or mean over the labels [eq:m2-unlabelled]",
                lambda c: float(_ref(c)[0] + ((1 - _parts(c)[2]) * ((c["neg_l"] * (1 / c_count - _parts(c)[0]))
                                                                   .sum(axis=1, keepdims=True))).sum() / n)),
        Mistake("loss", forgot_entropy, lambda c: loss_with(c, 0.0)),
        Mistake("dlogits", forgot_entropy, lambda c: _unlabelled_logits(c, bounds_part(c))),
        Mistake("loss", wrong_sign, lambda c: loss_with(c, -1.0)),
        Mistake("dlogits", wrong_sign, lambda c: _unlabelled_logits(c, bounds_part(c) - entropy_part(c))),
        Mistake("dlogits", "q(y|x) is held constant (detached) where it weights the bounds: the gradient through the "
                           "weights, q_j(−L(x, j) − Σ_y q_y(−L(x, y))), is missing; only the entropy's part is left, "
                           "and the classifier never learns from the bounds [eq:m2-grad-logits]",
                lambda c: _unlabelled_logits(c, entropy_part(c))),
        Mistake("dlogits", "no gradient reaches the unlabelled examples' logits: q(y|x) is a function of the logits "
                           "in the weights and in the entropy (holding every weight q(y|x) constant leaves only the "
                           "sum inside the log, which is zero) [eq:m2-grad-logits]",
                lambda c: _unlabelled_logits(c, np.zeros_like(c["logits"]))),
        Mistake("dlogits", "α is applied to the unlabelled examples too: α(q − y_onehot)/N on a zero row adds αq/N; "
                           "the cross-entropy term exists only for labelled pairs, whose label is known "
                           "[eq:m2-loss] [eq:m2-grad-alpha]",
                lambda c: _ref(c)[2] + (1 - _parts(c)[2]) * c["alpha"] * _parts(c)[0] / n),
        Mistake("dlogits", "the labelled examples' logits get no gradient: −L(x, y) does not involve the classifier, "
                           "but the α term does, α(q − onehot(y))/N [eq:m2-grad-alpha]",
                lambda c: (1 - _parts(c)[2]) * _ref(c)[2]),
    ]


EXERCISE = Exercise(
    name="m2_batch_loss", letter="k", outputs=("loss", "dneg_l", "dlogits"),
    shapes={"loss": (), "dneg_l": ("N", "C"), "dlogits": ("N", "C")},
    read={"loss": "semi-supervised.md#eq:m2-loss", "dneg_l": "semi-supervised.md#eq:m2-grad-rows",
          "dlogits": "semi-supervised.md#eq:m2-grad-logits"},
    also_read=("semi-supervised.md#eq:m2-unlabelled", "semi-supervised.md#eq:m2-grad-alpha"),
    case_note="In this check's batch, examples 0 and 2 (rows 0 and 2 of each array) are labelled; 1 and 3 are not.",
    make_case=_m2_case, args=("neg_l", "logits", "y_onehot", "alpha"), values=("loss",),
    numeric=_loss_numeric(solutions.m2_batch_loss, ("neg_l", "logits", "y_onehot", "alpha"), ["neg_l", "logits"],
                          "M2 loss of a mixed batch"),
    mistakes=_m2_mistakes())
