"""Exercise (f), ``vae_backward``: every gradient of a one-hidden-layer VAE (derivations/reparameterization.md, derivations/elbo.md).

The stub the learner replaces, the cases it is checked on, its numeric check and the named
mistakes the checker recognizes.
"""

from __future__ import annotations

import numpy as np

from .. import solutions
from ..gradcheck import check_gradients
from .spec import Exercise, Mistake, SIZES, TOL, _shape


def vae_backward(params, cache):
    """(f) Every parameter gradient of the 1-hidden-layer VAE computed by ``vae_forward``.

    Inputs: ``params`` (the dict given to ``vae_forward``) and the ``cache`` it returned.
    Return: a dict with the same keys as ``params``; each gradient has its parameter's shape.
    The loss is BCE (sum over D) + KL (sum over Z), averaged over N. Chain your answers to (a)-(e);
    the encoder's hidden layer feeds both the μ head and the log σ² head, so its gradients add.
    Read: derivations/reparameterization.md#eq:encoder-output-grad and derivations/elbo.md#eq:vae-loss.
    """
    raise NotImplementedError


VAE_PARAM_SHAPES = {
    "W_enc": ("D", "H"), "b_enc": ("H",),  # encoder hidden layer (tanh)
    "W_mu": ("H", "Z"), "b_mu": ("Z",),  # μ head
    "W_logvar": ("H", "Z"), "b_logvar": ("Z",),  # log σ² head
    "W_dec": ("Z", "H"), "b_dec": ("H",),  # decoder hidden layer (tanh)
    "W_out": ("H", "D"), "b_out": ("D",),  # decoder output: Bernoulli logits
}


def init_vae_params(rng, D=SIZES["D"], H=SIZES["H"], Z=SIZES["Z"], scale=0.5):
    """Random float64 parameters for ``vae_forward``, shaped as in ``VAE_PARAM_SHAPES``."""
    sizes = {"D": D, "H": H, "Z": Z}
    return {k: scale * rng.standard_normal([sizes[s] for s in shape]) for k, shape in VAE_PARAM_SHAPES.items()}


def vae_forward(params, x, eps):
    """The loss of a 1-hidden-layer VAE on x (N, D) with noise eps (N, Z), and the cache.

    x -> tanh(x W_enc + b_enc) = h_enc -> μ, log σ² -> z = μ + σ ⊙ ε -> tanh(z W_dec + b_dec) = h_dec
    -> logits. Loss = BCE(logits, x) + KL, each summed over D or Z and averaged over N.
    The cache holds x, eps, h_enc, mu, log_var, std, z, h_dec, logits: all the backward needs.
    """
    p = params
    n = x.shape[0]
    h_enc = np.tanh(x @ p["W_enc"] + p["b_enc"])  # (N, H)
    mu = h_enc @ p["W_mu"] + p["b_mu"]  # (N, Z)
    log_var = h_enc @ p["W_logvar"] + p["b_logvar"]  # (N, Z)
    std = np.exp(0.5 * log_var)  # (N, Z)
    z = mu + std * eps  # (N, Z)  [eq:reparam]
    h_dec = np.tanh(z @ p["W_dec"] + p["b_dec"])  # (N, H)
    logits = h_dec @ p["W_out"] + p["b_out"]  # (N, D)
    recon = (np.maximum(logits, 0) - x * logits + np.log1p(np.exp(-np.abs(logits)))).sum() / n  # [eq:bce-stable]
    kl = 0.5 * (np.exp(log_var) + mu**2 - 1.0 - log_var).sum() / n  # [eq:kl-closed-form]
    cache = {"x": x, "eps": eps, "h_enc": h_enc, "mu": mu, "log_var": log_var, "std": std,
             "z": z, "h_dec": h_dec, "logits": logits}
    return float(recon + kl), cache  # [eq:vae-loss]


def _vae_case(rng):
    params = init_vae_params(rng)
    x = rng.uniform(0.0, 1.0, _shape("N", "D"))
    eps = rng.standard_normal(_shape("N", "Z"))
    _, cache = vae_forward(params, x, eps)
    return {"params": params, "cache": cache}


def _vae_numeric(case, grads):
    params = {k: v.copy() for k, v in case["params"].items() if k in grads}
    full = dict(case["params"], **params)
    x, eps = case["cache"]["x"], case["cache"]["eps"]
    return check_gradients(lambda: np.float64(vae_forward(full, x, eps)[0]), params, grads, tol=TOL,
                           label="the VAE's loss (ε held fixed)")


def _vae_with(case, **changes):
    """The reference VAE gradients computed from a doctored cache: how a known mistake looks."""
    return solutions.vae_backward(case["params"], dict(case["cache"], **changes))


def _vae_mistakes():
    out = []
    for name in VAE_PARAM_SHAPES:
        c = lambda case, name=name, **kw: _vae_with(case, **kw)[name]  # noqa: E731
        out += [
            Mistake(name, "the KL term's own gradients (μ/N into dmu, ½(σ² − 1)/N into dlog_var) are missing: "
                          "μ and log σ² reach the loss along two paths, through z and through the KL "
                          "[eq:encoder-output-grad]", lambda case, c=c: c(case, mu=0 * case["cache"]["mu"],
                                                                          log_var=0 * case["cache"]["log_var"])),
            Mistake(name, "dlog_var gets nothing through z: add ½·dz·ε·σ from the reparameterization "
                          "[eq:reparam-grad-logvar]", lambda case, c=c: c(case, eps=0 * case["cache"]["eps"])),
            Mistake(name, "σ² in place of σ: the reparameterization's dlog_var uses exp(log_var) = σ²; "
                          "it needs σ = exp(½ log_var) (cache['std']) [eq:reparam-grad-logvar]",
                    lambda case, c=c: c(case, std=case["cache"]["std"] ** 2)),
            Mistake(name, "a missing ½ in the reparameterization's dlog_var = ½·dz·ε·σ [eq:reparam-grad-logvar]",
                    lambda case, c=c: c(case, std=2 * case["cache"]["std"])),
        ]
    return out


EXERCISE = Exercise(
    name="vae_backward", letter="f", outputs=tuple(VAE_PARAM_SHAPES), shapes=dict(VAE_PARAM_SHAPES),
    read={k: "reparameterization.md#eq:encoder-output-grad" if k in ("W_mu", "b_mu", "W_logvar", "b_logvar")
          else "dense.md#eq:dense-grad-b" if k.startswith("b") else "dense.md#eq:dense-grad-w"
          for k in VAE_PARAM_SHAPES},
    make_case=_vae_case, args=("params", "cache"), numeric=_vae_numeric, mistakes=_vae_mistakes(),
    scale_note="only the loss's own gradients (dlogits and the KL's) carry 1/N; the layers do not divide again")
