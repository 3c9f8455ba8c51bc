"""Exercise (e2), ``reparameterize_backward``: the reparameterization's backward pass (derivations/reparameterization.md).

The stub the learner replaces, the cases it is checked on, its numeric check and the named
mistakes the checker recognizes.
"""

from __future__ import annotations

import numpy as np

from .spec import SIZES, Exercise, Mistake, _reparam_case, _sum_check


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


def _reparam_logvar_mistakes():
    """Wrong dlog_var answers of (e2) that still use the forward's ε: each gets its own name."""
    def half_dz_eps(c, factor):
        return 0.5 * c["dz"] * c["eps"] * factor

    chain = "d exp(½ v)/dv = ½ exp(½ v) = ½ σ, with v = log σ²"
    return [
        Mistake("dlog_var", "differentiated w.r.t. σ² (the variance), not log σ²: dz/dσ² = ε/(2σ). The variable is "
                            "log_var, and dσ²/d log σ² = σ² turns that into ½ ε σ [eq:reparam-grad-logvar]",
                lambda c: c["dz"] * c["eps"] / (2 * c["std"])),
        Mistake("dlog_var", f"differentiated w.r.t. σ, not log σ²: dz/dσ = ε, and the chain factor {chain} [eq:reparam-grad-logvar]",
                lambda c: c["dz"] * c["eps"]),
        Mistake("dlog_var", f"log σ² where σ belongs: the chain factor is ½ σ, not ½ log σ², since {chain}; std is "
                            "that σ [eq:reparam-grad-logvar]", lambda c: half_dz_eps(c, np.log(c["std"] ** 2))),
        Mistake("dlog_var", "√σ in place of σ: std is already the standard deviation σ = exp(½ log σ²), so the "
                            "factor is ½ σ itself, with no further square root [eq:reparam-grad-logvar]",
                lambda c: half_dz_eps(c, np.sqrt(c["std"]))),
        Mistake("dlog_var", "exp(σ) in place of σ: std is already exp(½ log σ²), so the factor is ½ σ itself; "
                            "exponentiating again is one exp too many [eq:reparam-grad-logvar]",
                lambda c: half_dz_eps(c, np.exp(c["std"]))),
        *[Mistake("dlog_var", "the KL's gradient ½(σ² − 1) (or its batch mean) is added in here: the backward of "
                              "z = μ + σ ⊙ ε alone is dlog_var = ½ dz ε σ. The KL's own gradient joins where the two "
                              "paths meet, in vae_backward [eq:encoder-output-grad]",
                  lambda c, n=n: half_dz_eps(c, c["std"]) + 0.5 * (c["std"] ** 2 - 1) / n) for n in (1, SIZES["N"])],
        Mistake("dlog_var", "ε is missing: dz/d log σ² = ½ σ ε, with the very ε the forward used "
                            "[eq:reparam-grad-logvar]", lambda c: 0.5 * c["dz"] * c["std"]),
    ]


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
                      lambda c: c["dz"] * c["std"]),
              *_reparam_logvar_mistakes()])
