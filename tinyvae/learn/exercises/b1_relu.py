"""Exercise (b1), ``relu_backward``: reLU's backward pass (derivations/activations.md).

The stub the learner replaces, the cases it is checked on, its numeric check and the named
mistakes the checker recognizes.
"""

from __future__ import annotations

from .spec import Exercise, Mistake, _act_case, _act_numeric, _relu


def relu_backward(dy, x):
    """(b1) Backward pass of y = max(x, 0).

    Inputs: dy (N, H) and the layer's *input* x (N, H). Return: dx (N, H).
    Read: derivations/activations.md#eq:relu-grad.
    """
    raise NotImplementedError


EXERCISE = Exercise(
    name="relu_backward", letter="b1", outputs=("dx",), shapes={"dx": ("N", "H")},
    read={"dx": "activations.md#eq:relu-grad"},
    make_case=_act_case(_relu), args=("dy", "x"), numeric=_act_numeric(_relu, "ReLU"),
    mistakes=[Mistake("dx", "the upstream gradient is missing: dx is dy times the local slope, not the slope "
                            "alone (chain rule)", lambda c: (c["x"] > 0).astype(float)),
              Mistake("dx", "multiplied by x; the slope of ReLU is the 0/1 mask (x > 0), not x",
                      lambda c: c["dy"] * c["x"]),
              Mistake("dx", "multiplied by the output max(x, 0); the slope is the 0/1 mask (x > 0)",
                      lambda c: c["dy"] * _relu(c["x"]))])
