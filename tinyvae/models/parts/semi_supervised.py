"""The objective of the semi-supervised model M2, forward and backward by hand.

Kingma, Rezende, Mohamed & Welling, *Semi-supervised learning with deep generative models*
(NeurIPS 2014), sec. 3.1.2 and eqs. (6)-(9). For a labelled pair (x, y) and one z = μ + σ ⊙ ε from
q(z|x, y), the negative labelled bound of one row is

    −L(x, y) = −log p(x|y, z) + KL(q(z|x, y) ‖ N(0, I)) − log p(y)        [eq:m2-labelled]

with p(y) uniform over C classes (−log p(y) = log C). An unlabelled x takes every label: its C rows
are weighted by q(y|x) and the entropy of q(y|x) is subtracted,

    −U(x) = Σ_y q(y|x) (−L(x, y)) − H(q(y|x)) = Σ_y q(y|x) (−L(x, y) + log q(y|x))   [eq:m2-unlabelled]

and the loss of a batch of N examples, nats per example, adds α times the classifier's
cross-entropy on the labelled ones:

    loss = (1/N) [Σ_labelled (−L(x, y) − α log q(y|x)) + Σ_unlabelled (−U(x))]        [eq:m2-loss]

The rows (``label_rows``): each labelled example gives one row (x, y), each unlabelled one gives C
rows (x, 0), ..., (x, C−1); the labelled rows come first. ``bound_rows`` scores the rows; ``m2_loss``
combines them with q(y|x) and gives ∂loss/∂(−L) per row and ∂loss/∂logits [eq:m2-grad-rows]
[eq:m2-grad-logits]. Shapes: N batch, C classes, R rows, D input, Z latent.
"""

from __future__ import annotations

import math

from ...backend import get_xp
from .classifier import UNLABELLED, log_softmax
from .iwae import bernoulli_rows


def label_rows(labels, classes):
    """(example, label) of every row (R,) each, and the number of labelled rows, for labels (N,) with −1 for
    unlabelled: the labelled examples' rows first, in order, then C rows for each unlabelled example."""
    xp = get_xp(labels)
    labelled = labels != UNLABELLED
    lab = xp.nonzero(labelled)[0]
    unl = xp.nonzero(~labelled)[0]
    example = xp.concatenate([lab, xp.repeat(unl, classes)])  # (R,)
    label = xp.concatenate([labels[lab], xp.tile(xp.arange(classes), unl.shape[0])])  # (R,)
    return example, label, int(lab.shape[0])


def row_count(labels, classes):
    """R, the rows of a batch: one per labelled example, C per unlabelled one (the ε it needs is (R, Z))."""
    unlabelled = int((labels == UNLABELLED).sum())
    return int(labels.shape[0]) - unlabelled + classes * unlabelled


def bound_rows(logits, x_rows, mu, log_var, classes):
    """−L(x, y) of every row (R,) [eq:m2-labelled], and its unweighted gradients: ∂/∂logits (R, D) = σ(l) − x,
    ∂/∂μ (R, Z) = μ, ∂/∂log σ² (R, Z) = ½(σ² − 1)."""
    xp = get_xp(logits)
    log_px, dout = bernoulli_rows(logits[:, None, :], x_rows)  # (R, 1), (R, 1, D)  [eq:bce-stable]
    var_m1 = xp.expm1(log_var)  # σ² − 1
    kl = 0.5 * (var_m1 - log_var + mu * mu).sum(axis=1)  # (R,)  [eq:kl-closed-form]
    neg_l = -log_px[:, 0] + kl + math.log(classes)  # −log p(y) = log C  [eq:m2-labelled]
    return neg_l, dout[:, 0, :], mu, 0.5 * var_m1  # [eq:bce-grad] [eq:kl-grad-mu] [eq:kl-grad-logvar]


def m2_loss(neg_l, logits, labels, alpha):
    """The M2 loss [eq:m2-loss] of a batch from the rows' −L (R,), the classifier's logits (N, C) and the labels
    (N,) (−1: unlabelled), rows as ``label_rows`` orders them. Returns (loss, ∂loss/∂(−L) (R,), ∂loss/∂logits
    (N, C), stats); every term's gradient flows, q(y|x) included."""
    xp = get_xp(logits)
    n, classes = logits.shape
    example, label, n_lab = label_rows(labels, classes)
    log_q = log_softmax(logits)  # (N, C)  [eq:m2-log-softmax]
    q = xp.exp(log_q)
    lab, unl = example[:n_lab], example[n_lab::classes]  # the labelled examples; the unlabelled, once each
    neg_l_lab = neg_l[:n_lab]  # (N_l,)
    log_q_lab = log_q[lab, label[:n_lab]]  # (N_l,) log q(y|x) of the given labels
    neg_l_unl = neg_l[n_lab:].reshape(-1, classes)  # (N_u, C)
    q_unl, log_q_unl = q[unl], log_q[unl]  # (N_u, C)
    inner = neg_l_unl + log_q_unl  # −L(x, y) + log q(y|x)
    neg_u = (q_unl * inner).sum(axis=1)  # (N_u,)  [eq:m2-unlabelled]
    loss = (neg_l_lab.sum() - alpha * log_q_lab.sum() + neg_u.sum()) / n  # [eq:m2-loss]

    d_neg_l = xp.empty_like(neg_l)
    d_neg_l[:n_lab] = 1.0 / n  # a labelled row counts once
    d_neg_l[n_lab:] = (q_unl / n).reshape(-1)  # an unlabelled row counts q(y|x)  [eq:m2-grad-rows]
    dlogits = xp.zeros_like(logits)
    onehot = xp.zeros((n_lab, classes), dtype=logits.dtype)
    onehot[xp.arange(n_lab), label[:n_lab]] = 1
    dlogits[lab] = alpha * (q[lab] - onehot) / n  # −α log q(y|x)  [eq:m2-grad-alpha]
    dlogits[unl] = q_unl * (inner - neg_u[:, None]) / n  # through the weights and the entropy  [eq:m2-grad-logits]
    n_unl = unl.shape[0]
    stats = {"loss": loss,
             "labelled": neg_l_lab.mean() if n_lab else xp.zeros((), dtype=logits.dtype),
             "unlabelled": neg_u.mean() if n_unl else xp.zeros((), dtype=logits.dtype),
             "cross_entropy": -log_q_lab.mean() if n_lab else xp.zeros((), dtype=logits.dtype),
             "entropy": -(q_unl * log_q_unl).sum(axis=1).mean() if n_unl else xp.zeros((), dtype=logits.dtype)}
    return loss, d_neg_l, dlogits, stats
