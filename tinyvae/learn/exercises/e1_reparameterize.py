"""Exercise (e1), ``reparameterize``: the reparameterized sample z = μ + σ ⊙ ε (derivations/reparameterization.md).

The stub the learner replaces, the cases it is checked on, its numeric check and the named
mistakes the checker recognizes.
"""

from __future__ import annotations

import numpy as np

from .spec import Exercise, Mistake, _reparam_case


def reparameterize(mu, log_var, eps):
    """(e1) The sample z = μ + σ ⊙ ε, with σ = exp(½ log σ²) and ε given (never drawn here).

    Inputs: mu, log_var, eps, each (N, Z). Return: z (N, Z).
    Read: derivations/reparameterization.md#eq:reparam.
    """
    raise NotImplementedError


EXERCISE = Exercise(
    name="reparameterize", letter="e1", outputs=("z",), shapes={"z": ("N", "Z")},
    read={"z": "reparameterization.md#eq:reparam"},
    make_case=_reparam_case, args=("mu", "log_var", "eps"), values=("z",),
    mistakes=[Mistake("z", "σ² in place of σ: the noise is scaled by exp(log_var) = σ², the variance; "
                           "it must be scaled by the standard deviation σ = exp(½ log_var) [eq:reparam]",
                      lambda c: c["mu"] + np.exp(c["log_var"]) * c["eps"]),
              Mistake("z", "log σ² used as if it were σ: σ = exp(½ log_var) [eq:reparam]",
                      lambda c: c["mu"] + c["log_var"] * c["eps"]),
              Mistake("z", "μ is missing: z = μ + σ ⊙ ε [eq:reparam]",
                      lambda c: np.exp(0.5 * c["log_var"]) * c["eps"])])
