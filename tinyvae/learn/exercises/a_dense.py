"""Exercise (a), ``dense_backward``: A dense layer's backward pass (derivations/dense.md).

The stub the learner replaces, the cases it is checked on, its numeric check and the named
mistakes the checker recognizes.
"""

from __future__ import annotations

from .spec import Exercise, Mistake, _shape, _sum_check


def dense_backward(dy, x, W):
    """(a) Backward pass of a dense layer y = x W + b.

    Inputs: dy = dL/dy (N, H), the layer's input x (N, D), its weights W (D, H).
    Return: (dx, dW, db) with shapes (N, D), (D, H), (H,).
    No reduction here: dy already carries the loss's 1/N, so do not divide by N again.
    Read: derivations/dense.md#eq:dense-grad-w (and #eq:dense-grad-b, #eq:dense-grad-x).
    """
    raise NotImplementedError


def _dense_case(rng):
    x, W = rng.standard_normal(_shape("N", "D")), rng.standard_normal(_shape("D", "H"))
    b, dy = rng.standard_normal(_shape("H")), rng.standard_normal(_shape("N", "H"))
    return {"dy": dy, "x": x, "W": W, "b": b, "upstream": dy}


def _dense_numeric(case, grads):
    return _sum_check(lambda v: v["x"] @ v["W"] + v["b"], case, {"dx": "x", "dW": "W", "db": "b"}, grads,
                      "dense layer y = x W + b")


EXERCISE = Exercise(
    name="dense_backward", letter="a", outputs=("dx", "dW", "db"),
    shapes={"dx": ("N", "D"), "dW": ("D", "H"), "db": ("H",)},
    read={"dx": "dense.md#eq:dense-grad-x", "dW": "dense.md#eq:dense-grad-w", "db": "dense.md#eq:dense-grad-b"},
    make_case=_dense_case, args=("dy", "x", "W"), numeric=_dense_numeric,
    mistakes=[Mistake("db", "db is dy averaged over the batch; it is the sum: dy already carries the loss's 1/N "
                            "[eq:dense-grad-b]", lambda c: c["dy"].mean(axis=0))],
    scale_note="dy already carries the loss's 1/N: a layer's backward never divides by N again")
