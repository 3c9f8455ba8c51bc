"""Exercise (d), ``gaussian_kl``: the Gaussian KL in closed form and its gradients (derivations/kl.md).

The stub the learner replaces, the cases it is checked on, its numeric check and the named
mistakes the checker recognizes.
"""

from __future__ import annotations

import numpy as np

from .. import solutions
from .spec import Exercise, Mistake, SIZES, _loss_numeric, _shape


def gaussian_kl(mu, log_var):
    """(d) KL(N(μ, diag σ²) ‖ N(0, I)) in closed form, and its gradients. log_var means log σ².

    Inputs: mu (N, Z), log_var (N, Z).
    Return: (kl, dmu, dlog_var): kl a number, summed over Z and averaged over N; dmu, dlog_var (N, Z).
    Read: derivations/kl.md#eq:kl-closed-form, #eq:kl-grad-mu, #eq:kl-grad-logvar.
    """
    raise NotImplementedError


def _kl_case(rng):
    return {"mu": rng.standard_normal(_shape("N", "Z")), "log_var": rng.normal(0.0, 0.7, _shape("N", "Z"))}


def _kl_with_std(c):
    return 0.5 * (np.exp(0.5 * c["log_var"]) + c["mu"] ** 2 - 1 - c["log_var"]).sum() / SIZES["N"]


EXERCISE = Exercise(
    name="gaussian_kl", letter="d", outputs=("kl", "dmu", "dlog_var"),
    shapes={"kl": (), "dmu": ("N", "Z"), "dlog_var": ("N", "Z")},
    read={"kl": "kl.md#eq:kl-closed-form", "dmu": "kl.md#eq:kl-grad-mu", "dlog_var": "kl.md#eq:kl-grad-logvar"},
    make_case=_kl_case, args=("mu", "log_var"), values=("kl",),
    numeric=_loss_numeric(solutions.gaussian_kl, ("mu", "log_var"), ["mu", "log_var"], "Gaussian KL"),
    mistakes=[Mistake("dlog_var", "the −1 is missing: d(−log σ²)/d(log σ²) = −1, so dlog_var = ½(σ² − 1)/N "
                                  "[eq:kl-grad-logvar]", lambda c: 0.5 * np.exp(c["log_var"]) / SIZES["N"]),
              Mistake("dlog_var", "σ in place of σ²: d exp(log σ²)/d log σ² = exp(log σ²) = σ² [eq:kl-grad-logvar]",
                      lambda c: 0.5 * (np.exp(0.5 * c["log_var"]) - 1) / SIZES["N"]),
              Mistake("kl", "σ in place of σ²: the KL has exp(log_var) = σ², not exp(½ log_var) = σ "
                            "[eq:kl-closed-form]", _kl_with_std),
              Mistake("dlog_var", "differentiated w.r.t. σ, not log σ²: the variable is log_var [eq:kl-grad-logvar]",
                      lambda c: (np.exp(0.5 * c["log_var"]) - np.exp(-0.5 * c["log_var"])) / SIZES["N"]),
              Mistake("dlog_var", "differentiated w.r.t. σ² (the variance), not log σ²: ∂KL/∂σ² = ½(1 − 1/σ²)/N; "
                                  "the variable is log_var, and dσ²/d log σ² = σ² turns it into ½(σ² − 1)/N "
                                  "[eq:kl-grad-logvar]",
                      lambda c: 0.5 * (1 - np.exp(-c["log_var"])) / SIZES["N"])])
