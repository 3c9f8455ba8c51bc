"""Exercise (b2), ``tanh_backward``: tanh's backward pass, from its output (derivations/activations.md).

The stub the learner replaces, the cases it is checked on, its numeric check and the named
mistakes the checker recognizes.
"""

from __future__ import annotations

import numpy as np

from .spec import Exercise, Mistake, _act_case, _act_numeric


def tanh_backward(dy, y):
    """(b2) Backward pass of y = tanh(x).

    Inputs: dy (N, H) and the layer's *output* y = tanh(x) (N, H). Return: dx (N, H).
    Read: derivations/activations.md#eq:tanh-grad.
    """
    raise NotImplementedError


EXERCISE = Exercise(
    name="tanh_backward", letter="b2", outputs=("dx",), shapes={"dx": ("N", "H")},
    read={"dx": "activations.md#eq:tanh-grad"},
    make_case=_act_case(np.tanh), args=("dy", "y"), numeric=_act_numeric(np.tanh, "tanh"),
    mistakes=[Mistake("dx", "the upstream gradient is missing: dx is dy times the local slope 1 − y²",
                      lambda c: 1 - c["y"] ** 2),
              Mistake("dx", "the slope is 1 − y² (squared): yours is 1 − y", lambda c: c["dy"] * (1 - c["y"])),
              Mistake("dx", "tanh applied a second time: y is already tanh(x), so the slope is 1 − y², "
                            "not 1 − tanh(y)²", lambda c: c["dy"] * (1 - np.tanh(c["y"]) ** 2))])
