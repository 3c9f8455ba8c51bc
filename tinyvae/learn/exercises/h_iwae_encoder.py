"""Exercise (h), ``iwae_encoder_backward``: the IWAE gradient through the encoder's outputs μ and log σ² (derivations/iwae.md).

The stub the learner replaces, the cases it is checked on, its numeric check and the named
mistakes the checker recognizes.
"""

from __future__ import annotations

import numpy as np

from ..gradcheck import check_gradients
from .spec import Exercise, Mistake, SIZES, TOL


def iwae_encoder_backward(weights, dlogpx_dz, z, eps, std):
    """(h) The IWAE loss's gradient at the encoder's outputs μ and log σ², for ε held fixed.

    The loss is −(1/N) Σ_n log (1/K) Σ_k w_nk with log w_nk = log p(x_n|z_nk) + log p(z_nk) − log q(z_nk|x_n),
    z_nk = μ_n + σ_n ⊙ ε_nk, p(z) = N(0, I), q(z|x) = N(μ, diag σ²).
    Inputs: weights (N, K), the normalized weights w̃ = softmax_k(log w) (your (g) gives −w̃/N);
    dlogpx_dz (N, K, Z) = ∂ log p(x_n|z)/∂z at z_nk (the log-likelihood's own gradient,
        not a loss's);
    z, eps (N, K, Z); std = σ (N, Z).
    Return: (dmu, dlog_var), each (N, Z). Careful: log q depends on μ and log σ² twice, through the
    sample z and directly.
    Read: derivations/iwae.md#eq:iwae-grad-z, #eq:iwae-log-q-total, #eq:iwae-grad-mu and #eq:iwae-grad-logvar.
    """
    raise NotImplementedError


# The "decoder" of exercise (h): log p(x|z) = −½ ‖x − A z‖², so the loss has a closed form to differentiate.
def _iwae_encoder_loss(x, A, mu, log_var, eps):
    z = mu[:, None, :] + np.exp(0.5 * log_var)[:, None, :] * eps  # (N, K, Z)
    log_px = -0.5 * ((x[:, None, :] - z @ A.T) ** 2).sum(-1)
    log_pz = -0.5 * (z ** 2 + np.log(2 * np.pi)).sum(-1)
    log_qz = -0.5 * (np.log(2 * np.pi) + log_var[:, None, :]
                     + ((z - mu[:, None, :]) / np.exp(0.5 * log_var)[:, None, :]) ** 2).sum(-1)
    log_w = log_px + log_pz - log_qz  # [eq:iwae-log-weight]
    m = log_w.max(axis=1, keepdims=True)
    e = np.exp(log_w - m)
    loss = -(np.log(e.sum(axis=1)) + m[:, 0] - np.log(log_w.shape[1])).mean()  # [eq:iwae-loss]
    return loss, z, e / e.sum(axis=1, keepdims=True), (x[:, None, :] - z @ A.T) @ A


def _iwae_encoder_case(rng):
    n, k, z_dim = SIZES["N"], SIZES["K"], SIZES["Z"]
    x, A = rng.normal(size=(n, SIZES["D"])), rng.normal(0, 0.5, (SIZES["D"], z_dim))
    mu, log_var = rng.normal(size=(n, z_dim)), rng.normal(0, 0.5, (n, z_dim))
    eps = rng.standard_normal((n, k, z_dim))
    _, z, weights, dlogpx_dz = _iwae_encoder_loss(x, A, mu, log_var, eps)
    return {"weights": weights, "dlogpx_dz": dlogpx_dz, "z": z, "eps": eps, "std": np.exp(0.5 * log_var),
            "x": x, "A": A, "mu": mu, "log_var": log_var}


def _iwae_encoder_numeric(case, grads):
    params = {k: case[src].copy() for k, src in (("dmu", "mu"), ("dlog_var", "log_var")) if k in grads}

    def f():
        mu, log_var = params.get("dmu", case["mu"]), params.get("dlog_var", case["log_var"])
        return np.float64(_iwae_encoder_loss(case["x"], case["A"], mu, log_var, case["eps"])[0])

    return check_gradients(f, params, grads, tol=TOL, label="the IWAE loss at μ and log σ² (ε held fixed)")


def _iwae_encoder_with(c, dz=None, q_mu=0.0, q_logvar=None):
    """The reference answer with the sample gradient dz and log q's parts replaced (a catalogued mistake)."""
    n = SIZES["N"]
    g = c["weights"][..., None] / n
    dz = g * (c["z"] - c["dlogpx_dz"]) if dz is None else dz
    dmu = dz.sum(axis=1) + q_mu
    dlog_var = 0.5 * c["std"] * (dz * c["eps"]).sum(axis=1) + (-0.5 / n if q_logvar is None else q_logvar)
    return dmu, dlog_var


def _iwae_encoder_mistakes():
    n, k = SIZES["N"], SIZES["K"]

    def via_z_only(c):  # log q differentiated through z alone, as if μ and log σ² did not appear in it
        g = c["weights"][..., None] / n
        return _iwae_encoder_with(c, q_mu=(-g * c["eps"] / c["std"][:, None, :]).sum(axis=1),
                                  q_logvar=(-0.5 * g * c["eps"] ** 2).sum(axis=1))

    def direct_only(c):  # log q differentiated directly alone, z treated as a constant
        g = c["weights"][..., None] / n
        return _iwae_encoder_with(c, q_mu=(g * c["eps"] / c["std"][:, None, :]).sum(axis=1),
                                  q_logvar=(g * (-0.5 + 0.5 * c["eps"] ** 2)).sum(axis=1))

    two_paths = ("log q depends on μ and log σ² twice, through z and directly; "
                 "{which}. Added, they give d log q/dμ = 0 and d log q/d log σ² = −½ [eq:iwae-log-q-total]")
    out = []
    for name, i in (("dmu", 0), ("dlog_var", 1)):
        out += [
            Mistake(name, two_paths.format(which="yours has only the path through z"),
                    lambda c, i=i: via_z_only(c)[i]),
            Mistake(name, two_paths.format(which="yours has only the direct dependence (z held constant)"),
                    lambda c, i=i: direct_only(c)[i]),
            Mistake(name, "the prior's term is missing: −log p(z) adds z to ∂(−log w)/∂z, weighted like the "
                          "rest, w̃/N · (z − ∂ log p(x|z)/∂z) [eq:iwae-grad-z]",
                    lambda c, i=i: _iwae_encoder_with(c, dz=c["weights"][..., None] / n * -c["dlogpx_dz"])[i]),
            Mistake(name, "every sample weighted 1/(N K), as in an average of one-sample ELBOs: the IWAE "
                          "weights each sample by w̃/N [eq:iwae-grad-logw]",
                    lambda c, i=i: _iwae_encoder_with(
                        c, dz=(c["z"] - c["dlogpx_dz"]) / (n * k), q_logvar=-0.5 / n)[i]),
        ]
    out += [
        Mistake("dlog_var", "log q's −½ per sample is missing: −log q in every log weight gives log σ² the "
                            "constant −½·w̃/N, which sums over k to −1/(2N) [eq:iwae-grad-logvar]",
                lambda c: _iwae_encoder_with(c, q_logvar=0.0)[1]),
        Mistake("dlog_var", f"log q's −½ taken once per sample without its weight: Σ_k w̃_k/N · ½ = 1/(2N), "
                            f"not K/(2N) = {k}/(2N) [eq:iwae-grad-logvar]",
                lambda c: _iwae_encoder_with(c, q_logvar=-0.5 * k / n)[1]),
        Mistake("dlog_var", "σ² in place of σ: dz/d log σ² = ½ σ ε [eq:reparam-grad-logvar]",
                lambda c: 0.5 * c["std"] ** 2 * (_iwae_encoder_dz(c) * c["eps"]).sum(axis=1) - 0.5 / n),
    ]
    return out


def _iwae_encoder_dz(c):
    return c["weights"][..., None] / SIZES["N"] * (c["z"] - c["dlogpx_dz"])


EXERCISE = Exercise(
    name="iwae_encoder_backward", letter="h", outputs=("dmu", "dlog_var"),
    shapes={"dmu": ("N", "Z"), "dlog_var": ("N", "Z")},
    read={"dmu": "iwae.md#eq:iwae-grad-mu", "dlog_var": "iwae.md#eq:iwae-grad-logvar",
          "log q": "iwae.md#eq:iwae-log-q-total"},
    make_case=_iwae_encoder_case, args=("weights", "dlogpx_dz", "z", "eps", "std"),
    numeric=_iwae_encoder_numeric, mistakes=_iwae_encoder_mistakes())
