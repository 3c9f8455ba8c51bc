"""What an exercise is (``Exercise``, ``Mistake``), the awkward sizes every case uses, and the helpers
the exercises' cases and numeric checks share.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..gradcheck import check_gradients


SIZES = {"N": 4, "D": 7, "H": 5, "Z": 3, "K": 6, "C": 10}  # all different: a transpose or a wrong axis cannot hide


TOL = 1e-7  # relative error allowed by the gradient check (float64 central differences)


DERIV = "derivations/"


@dataclass
class Mistake:
    """A common wrong answer: what it would return for ``output``, and the hint that names it."""

    output: str
    hint: str
    wrong: object  # case -> the array this mistake produces
    partial: str = ""  # the hint's wording when an answer shows the mistake in only some of these outputs


@dataclass
class Exercise:
    name: str
    letter: str
    outputs: tuple  # names of the returned values, in order
    shapes: dict  # output -> its shape in letters, e.g. ("D", "H")
    read: dict  # output -> derivation link
    make_case: object  # rng -> dict of float64 inputs (the learner's arguments, plus extras)
    args: tuple  # which inputs the learner's function receives, in order
    numeric: object = None  # (case, grads) -> GradcheckReport, central differences of the true loss
    values: tuple = ()  # outputs compared by value (a loss, a sample), not by gradient check
    mistakes: list = field(default_factory=list)
    scale_note: str = ""  # added to a "1/N too small" diagnosis
    also_read: tuple = ()  # derivation links for the "Read:" line beyond those of ``read``
    case_note: str = ""  # what a failing answer is told about the check's inputs (which rows are which)


def _away_from_zero(rng, shape):
    return rng.uniform(0.2, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


def _shape(*letters):
    return tuple(SIZES[c] for c in letters)


def _sum_check(forward, inputs, wrt, grads, label):
    """Central differences of sum(R ⊙ forward(inputs)) against the learner's grads (R = upstream)."""
    params = {name: inputs[src].copy() for name, src in wrt.items() if name in grads}

    def f():
        values = dict(inputs, **{wrt[name]: p for name, p in params.items()})
        return np.sum(forward(values) * inputs["upstream"])

    return check_gradients(f, params, grads, tol=TOL, label=label)


def _loss_numeric(ref_fn, args, wrt, label):
    """Central differences of the reference loss value w.r.t. the inputs ``wrt`` (grads named d<input>)."""
    def run(case, grads):
        params = {f"d{k}": case[k].copy() for k in wrt if f"d{k}" in grads}
        return check_gradients(lambda: np.float64(ref_fn(*[params.get(f"d{a}", case[a]) for a in args])[0]),
                               params, grads, tol=TOL, label=label)
    return run


def _sig(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _act_case(fn):
    def make(rng):
        x = _away_from_zero(rng, _shape("N", "H"))  # no input sits on ReLU's kink
        dy = rng.standard_normal(_shape("N", "H"))
        return {"dy": dy, "x": x, "y": fn(x), "upstream": dy}
    return make


def _act_numeric(fn, label):
    return lambda case, grads: _sum_check(lambda v: fn(v["x"]), case, {"dx": "x"}, grads, label)


def _relu(x):
    return np.maximum(x, 0.0)


def _reparam_case(rng):
    mu, log_var = rng.standard_normal(_shape("N", "Z")), rng.normal(0.0, 0.7, _shape("N", "Z"))
    eps, dz = rng.standard_normal(_shape("N", "Z")), rng.standard_normal(_shape("N", "Z"))
    return {"mu": mu, "log_var": log_var, "eps": eps, "std": np.exp(0.5 * log_var), "dz": dz, "upstream": dz}
