"""Exercise (j), ``planar_step``: one planar flow step, its log-determinant and its backward pass (derivations/flows.md).

The stub the learner replaces, the cases it is checked on, its numeric check and the named
mistakes the checker recognizes.
"""

from __future__ import annotations

import numpy as np

from ..gradcheck import check_gradients
from .spec import Exercise, Mistake, SIZES, TOL


def planar_step(z, u, w, b, dz_out, g):
    """(j) One planar flow step f(z) = z + û tanh(wᵀz + b): forward, log-determinant and backward.

    Inputs: z (N, Z), the step's input (one example per row); u (Z,), w (Z,) and b (a number), the
    step's parameters; dz_out (N, Z) = ∂L/∂z_out from the rest of the model; g (N,), each example's
    weight in the loss (1/N for the ELBO, w̃/N for the IWAE bound; here it differs per example, so use g). The loss holds the step's
    log-determinant as −Σ_n g_n logdet_n, because log q_T(z_T) = log q_0(z_0) − Σ log|det J| and the
    loss is −log w.
    Use û = u + (m(wᵀu) − wᵀu) w/‖w‖², m(β) = −1 + softplus(β), which keeps wᵀû > −1 (these inputs
    have wᵀu < −1).
    Return: (z_out, logdet, dz, du, dw, db): z_out (N, Z), logdet (N,) = log|det ∂z_out/∂z| per example,
    and ∂L/∂z (N, Z), ∂L/∂u (Z,), ∂L/∂w (Z,), ∂L/∂b (a number).
    Read: derivations/flows.md#eq:planar-step, #eq:planar-psi, #eq:planar-logdet, #eq:planar-u-hat
    and #eq:planar-backward.
    """
    raise NotImplementedError


# Below: the reference step and the catalogued mistakes built from it, which the checker compares with.
# It is a complete solution of the exercise; try the exercise first.


def _planar(c, constrain=True, psi_with_h=False, logdet_sign=1.0, logdet_grad=True, grad_sign=-1.0,
            through_u_hat=True, weights=None):
    """The step and its gradients, or a catalogued mistake's version of them (the flags say which).
    ``weights``: what stands in for g in the backward, e.g. 1/N where the learner ignored g."""
    z, u, w, b, dz_out, g = (c[k] for k in ("z", "u", "w", "b", "dz_out", "g"))
    g = g if weights is None else np.full_like(g, weights(len(g)))
    beta, ww = w @ u, w @ w
    gamma = (np.logaddexp(0.0, beta) - 1.0 - beta) / ww if constrain else 0.0
    u_hat = u + gamma * w  # [eq:planar-u-hat]
    a = z @ w + b  # (N,)
    t = np.tanh(a)
    slope, curve = (t, 1 - t * t) if psi_with_h else (1 - t * t, -2 * t * (1 - t * t))  # the "h′" used, and its derivative
    c_ = w @ u_hat
    det = 1 + slope * c_  # 1 + ûᵀψ  [eq:planar-psi]
    out = {"z_out": z + t[:, None] * u_hat, "logdet": logdet_sign * np.log(np.abs(det))}  # [eq:planar-logdet]
    dl = grad_sign * g if logdet_grad else 0.0 * g  # ∂L/∂logdet, −g when right  [eq:flow-elbo]
    da = (1 - t * t) * (dz_out @ u_hat) + dl * c_ * curve / det  # [eq:planar-backward]
    dc = np.sum(dl * slope / det)
    du_hat = t @ dz_out + dc * w
    dw = da @ z + dc * u_hat
    if constrain and through_u_hat:
        s, sig = w @ du_hat, 0.5 * (1 + np.tanh(0.5 * beta))
        du = du_hat + (sig - 1) * s / ww * w
        dw = dw + gamma * du_hat + s * ((sig - 1) * u / ww - 2 * gamma * w / ww)
    else:
        du = du_hat
    out.update(dz=dz_out + da[:, None] * w, du=du, dw=dw, db=np.float64(da.sum()))
    return out


def _planar_case(rng):
    n, z_dim = SIZES["N"], SIZES["Z"]
    w = rng.normal(0.0, 1.0, z_dim)
    u = rng.normal(0.0, 1.0, z_dim)
    u = u + (-1.5 - rng.uniform(0.0, 0.5) - w @ u) * w / (w @ w)  # wᵀu in [−2, −1.5]: the constraint matters
    return {"z": rng.normal(0.0, 1.0, (n, z_dim)), "u": u, "w": w, "b": np.float64(rng.normal(0.0, 0.5)),
            "dz_out": rng.standard_normal((n, z_dim)), "g": rng.uniform(0.5, 1.5, n) / n}


def _planar_numeric(case, grads):
    params = {k: np.array(case[src], dtype=np.float64) for k, src in
              (("dz", "z"), ("du", "u"), ("dw", "w"), ("db", "b")) if k in grads}

    def f():
        c = dict(case, **{src: params[k] for k, src in (("dz", "z"), ("du", "u"), ("dw", "w"), ("db", "b"))
                          if k in params})
        out = _planar(c)
        return np.sum(case["dz_out"] * out["z_out"]) - np.sum(case["g"] * out["logdet"])  # [eq:flow-elbo]

    return check_gradients(f, params, grads, tol=TOL, label="L = Σ dz_out ⊙ z_out − Σ g ⊙ logdet")


GRADS = ("dz", "du", "dw", "db")


def _mistakes():
    log_det_terms = ("it adds −g·r·c·h″(a) to da and −g·r·h′(a) to dc, with r = 1/(1 + ûᵀψ) "
                     "[eq:flow-elbo] [eq:planar-backward]")
    ignored_g = ("the weights g are ignored: each example's log-det enters the loss as −g_n logdet_n, and g "
                 "differs from example to example (w̃/N for the IWAE bound; these inputs draw it at random), "
                 "so ∂L/∂logdet_n = −g_n, not −1/N or −1 [eq:flow-elbo] [eq:planar-backward]")
    named = [
        (dict(logdet_grad=False), GRADS,
         "the log-det term's gradient is missing: the loss holds −Σ_n g_n log|1 + ûᵀψ(z_n)|, which depends on z, "
         "u, w and b as well; " + log_det_terms),
        (dict(weights=lambda n: 1.0 / n), GRADS, ignored_g),
        (dict(weights=lambda n: 1.0), GRADS, ignored_g),
        (dict(psi_with_h=True), ("logdet",) + GRADS,
         "ψ computed with h instead of h′: the Jacobian is I + û ψᵀ with ψ = h′(wᵀz + b) w, the derivative "
         "1 − tanh²(a), not tanh(a) itself [eq:planar-psi] [eq:planar-logdet]"),
        (dict(constrain=False), ("z_out", "logdet") + GRADS,
         "the invertibility constraint is missing: these inputs have wᵀu < −1, where the step folds space; "
         "use û = u + (m(wᵀu) − wᵀu) w/‖w‖² with m(a) = −1 + softplus(a), so that wᵀû > −1, in the forward "
         "and in the backward [eq:planar-u-hat]"),
        (dict(logdet_sign=-1.0), ("logdet",),
         "the log-det's sign: log|det J| = +log|1 + ûᵀψ|. The minus sign belongs to log q_T = log q_0 − "
         "Σ log|det J| [eq:flow-log-q] [eq:planar-logdet]"),
        (dict(grad_sign=1.0), GRADS,
         "the log-det term's gradient has the wrong sign: the loss is −log w, and log w holds +Σ log|det J| "
         "(log q_T = log q_0 − Σ log|det J|), so ∂L/∂logdet = −g [eq:flow-log-q] [eq:flow-elbo]"),
        (dict(through_u_hat=False), ("du", "dw"),
         "the gradient stops at û: u and w reach the loss through û = u + (m(wᵀu) − wᵀu) w/‖w‖² as well, "
         "so du = dû + (sigmoid(wᵀu) − 1)(wᵀdû) w/‖w‖², and dw gets û's terms too [eq:planar-backward]"),
    ]
    partial = {named[0][2]: "part of the log-det term's gradient is missing: " + log_det_terms}
    out = [Mistake(name, hint, lambda c, flags=flags, name=name: _planar(c, **flags)[name], partial.get(hint, ""))
           for flags, names, hint in named for name in names]
    out.append(Mistake("logdet", "the log-determinant is missing: log|det J| = log|1 + ûᵀψ(z)| is not zero "
                                 "unless the step is the identity [eq:planar-logdet]",
                       lambda c: np.zeros(len(c["z"]))))
    return out


EXERCISE = Exercise(
    name="planar_step", letter="j", outputs=("z_out", "logdet", "dz", "du", "dw", "db"),
    shapes={"z_out": ("N", "Z"), "logdet": ("N",), "dz": ("N", "Z"), "du": ("Z",), "dw": ("Z",), "db": ()},
    read={"z_out": "flows.md#eq:planar-step", "logdet": "flows.md#eq:planar-logdet",
          "dz": "flows.md#eq:planar-backward", "du": "flows.md#eq:planar-backward", "dw": "flows.md#eq:planar-backward",
          "db": "flows.md#eq:planar-backward"},
    also_read=("flows.md#eq:planar-u-hat",),
    make_case=_planar_case, args=("z", "u", "w", "b", "dz_out", "g"), values=("z_out", "logdet"),
    numeric=_planar_numeric, mistakes=_mistakes())
