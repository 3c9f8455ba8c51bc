"""Exercise (g), ``iwae_loss``: the IWAE loss −L_K from log weights, and its gradient (derivations/iwae.md).

The stub the learner replaces, the cases it is checked on, its numeric check and the named
mistakes the checker recognizes.
"""

from __future__ import annotations

import numpy as np

from .. import solutions
from .spec import Exercise, Mistake, SIZES, _loss_numeric, _shape


def iwae_loss(log_w):
    """(g) The IWAE loss −L_K from the log importance weights, and its gradient.

    Input: log_w (N, K), log w_nk = log p(x_n|z_nk) + log p(z_nk) − log q(z_nk|x_n) for K samples
    of each of N examples. Return: (loss, dlog_w):
    loss = −(1/N) Σ_n log (1/K) Σ_k exp(log_w_nk), one number (nats per example);
    dlog_w = ∂loss/∂log_w, shape (N, K).
    Log weights of an MNIST model are around −100 nats: your code must stay finite and exact for
    log weights of ±1e4 (no clipping).
    Read: derivations/iwae.md#eq:iwae-loss, #eq:iwae-weights and #eq:iwae-grad-logw.
    """
    raise NotImplementedError


def _iwae_case(rng):
    return {"log_w": rng.normal(-3.0, 1.5, _shape("N", "K"))}


def _softmax_k(c):
    lw = c["log_w"]
    e = np.exp(lw - lw.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _iwae_through_weights(c):
    """The gradient of the surrogate −(1/N) Σ w̃ log w with w̃ differentiated too [eq:iwae-wrong-grad]."""
    w, lw = _softmax_k(c), c["log_w"]
    return -w * (1 + lw - (w * lw).sum(axis=1, keepdims=True)) / SIZES["N"]


def _iwae_mistakes():
    n, k = SIZES["N"], SIZES["K"]
    mean_of_logs = ("the mean of the logs, not the log of the mean: −(1/(N K)) Σ log w is the average of "
                    "K one-sample bounds (L_1, the ELBO); L_K takes the log of the average weight, "
                    "log (1/K) Σ_k exp(log w_k) [eq:iwae-loss]")
    return [
        Mistake("dlog_w", "the weights are not normalized: the gradient is −w̃/N with w̃_k = w_k / Σ_j w_j "
                          "(the softmax of log w over the K samples), not −w/N [eq:iwae-weights] [eq:iwae-grad-logw]",
                lambda c: -np.exp(c["log_w"]) / n),
        Mistake("dlog_w", "the weights are shifted by the maximum but not normalized: divide exp(log w − max) by "
                          "its sum over the K samples, w̃ = softmax(log w) [eq:iwae-weights]",
                lambda c: -np.exp(c["log_w"] - c["log_w"].max(axis=1, keepdims=True)) / n),
        Mistake("dlog_w", "normalized over the wrong axis: w̃ is the softmax over the K samples of each example "
                          "(axis 1), not over the batch [eq:iwae-weights]",
                lambda c: -(np.exp(c["log_w"]) / np.exp(c["log_w"]).sum(axis=0, keepdims=True)) / n),
        Mistake("dlog_w", "a gradient taken through w̃ as well: differentiating the surrogate −(1/N) Σ w̃ log w "
                          "with w̃ not held constant adds −(w̃/N)(log w − Σ w̃ log w) + ...; the gradient of the "
                          "log-sum-exp is just −w̃/N [eq:iwae-wrong-grad] [eq:iwae-grad-logw]",
                _iwae_through_weights),
        Mistake("loss", mean_of_logs, lambda c: -c["log_w"].mean()),
        Mistake("dlog_w", mean_of_logs, lambda c: np.full(c["log_w"].shape, -1.0 / (n * k))),
        Mistake("loss", "the 1/K inside the log is missing: the loss is off by exactly log K = "
                        f"{np.log(k):.4f}; L_K averages the K weights [eq:iwae-loss]",
                lambda c: float(solutions.iwae_loss(c["log_w"])[0] - np.log(k))),
    ]


EXERCISE = Exercise(
    name="iwae_loss", letter="g", outputs=("loss", "dlog_w"), shapes={"loss": (), "dlog_w": ("N", "K")},
    read={"loss": "iwae.md#eq:iwae-loss", "dlog_w": "iwae.md#eq:iwae-grad-logw"},
    make_case=_iwae_case, args=("log_w",), values=("loss",),
    numeric=_loss_numeric(solutions.iwae_loss, ("log_w",), ["log_w"], "IWAE loss −L_K"),
    mistakes=_iwae_mistakes())
