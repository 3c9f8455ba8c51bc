"""Exercise (e2), ``reparameterize_backward``: the reparameterization's backward pass (derivations/reparameterization.md).

The stub the learner replaces, the cases it is checked on, its numeric check and the named
mistakes the checker recognizes.
"""

from __future__ import annotations

import numpy as np

from .spec import Exercise, Mistake, _reparam_case, _sum_check


def reparameterize_backward(dz, eps, std):
    """(e2) Backward pass of z = μ + σ ⊙ ε, with the forward's own ε and σ = exp(½ log σ²).

    Inputs: dz = dL/dz, eps, std, each (N, Z). Return: (dmu, dlog_var), each (N, Z).
    ε is an input, not a parameter: it gets no gradient.
    Read: derivations/reparameterization.md#eq:reparam-grad-mu and #eq:reparam-grad-logvar.
    """
    raise NotImplementedError


def _reparam_numeric(case, grads):
    return _sum_check(lambda v: v["mu"] + np.exp(0.5 * v["log_var"]) * v["eps"], case,
                      {"dmu": "mu", "dlog_var": "log_var"}, grads, "z = μ + exp(½ log σ²) ⊙ ε, ε fixed")


EXERCISE = Exercise(
        name="reparameterize_backward", letter="e2", outputs=("dmu", "dlog_var"),
        shapes={"dmu": ("N", "Z"), "dlog_var": ("N", "Z")},
        read={"dmu": "reparameterization.md#eq:reparam-grad-mu",
              "dlog_var": "reparameterization.md#eq:reparam-grad-logvar"},
        make_case=_reparam_case, args=("dz", "eps", "std"), numeric=_reparam_numeric,
        mistakes=[Mistake("dlog_var", "σ² in place of σ: dz/d log σ² = ε · ½ exp(½ log σ²) = ½ ε σ; yours uses "
                                      "σ² = exp(log_var) [eq:reparam-grad-logvar]",
                          lambda c: 0.5 * c["dz"] * c["eps"] * c["std"] ** 2),
                  Mistake("dlog_var", "the chain factor σ is missing: d exp(½ v)/dv = ½ exp(½ v) = ½ σ "
                                      "[eq:reparam-grad-logvar]", lambda c: 0.5 * c["dz"] * c["eps"]),
                  Mistake("dmu", "dz/dμ is 1, so dmu = dz; yours multiplies by ε [eq:reparam-grad-mu]",
                          lambda c: c["dz"] * c["eps"]),
                  Mistake("dmu", "dz/dμ is 1, so dmu = dz; yours multiplies by σ [eq:reparam-grad-mu]",
                          lambda c: c["dz"] * c["std"])])
