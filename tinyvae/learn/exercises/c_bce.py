"""Exercise (c), ``bce_with_logits``: the Bernoulli NLL from logits and its gradient, stable at ±1e4 (derivations/bernoulli.md).

The stub the learner replaces, the cases it is checked on, its numeric check and the named
mistakes the checker recognizes.
"""

from __future__ import annotations

from .. import solutions
from .spec import Exercise, Mistake, SIZES, _loss_numeric, _shape, _sig


def bce_with_logits(logits, x):
    """(c) Bernoulli negative log-likelihood (binary cross-entropy) from logits, and its gradient.

    Inputs: logits (N, D), targets x (N, D) in [0, 1].
    Return: (loss, dlogits): loss a number, summed over D and averaged over N; dlogits (N, D).
    Must stay finite and exact for logits as large as ±1e4 (no clipping).
    Read: derivations/bernoulli.md#eq:bce-stable and #eq:bce-grad.
    """
    raise NotImplementedError


def _bce_case(rng):
    logits = rng.normal(0.0, 3.0, _shape("N", "D"))
    x = rng.uniform(0.0, 1.0, _shape("N", "D"))
    x[0] = (x[0] > 0.5).astype(float)  # some binary targets, some grey
    return {"logits": logits, "x": x}


EXERCISE = Exercise(
    name="bce_with_logits", letter="c", outputs=("loss", "dlogits"), shapes={"loss": (), "dlogits": ("N", "D")},
    read={"loss": "bernoulli.md#eq:bce-stable", "dlogits": "bernoulli.md#eq:bce-grad"},
    make_case=_bce_case, args=("logits", "x"), values=("loss",),
    numeric=_loss_numeric(solutions.bce_with_logits, ("logits", "x"), ["logits"], "binary cross-entropy"),
    mistakes=[Mistake("dlogits", "yours is (σ(l) − x)·σ(l)(1 − σ(l))/N: the sigmoid's slope cancels against "
                                 "the cross-entropy's, so dlogits = (σ(l) − x)/N [eq:bce-grad]",
                      lambda c: (_sig(c["logits"]) - c["x"]) * _sig(c["logits"]) * (1 - _sig(c["logits"]))
                      / SIZES["N"])])
