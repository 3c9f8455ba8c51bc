"""Graded exercises: write the VAE's backward passes yourself and be told exactly what is wrong.

Eleven functions, from one dense layer to the whole VAE, the importance-weighted (IWAE) bound and
a convolution layer's backward pass. Each
stub below states its shapes (N batch, D input, H hidden, Z latent, K importance samples), its reduction (losses sum over D and Z and average over N,
in nats per example [eq:loss-reduction]) and the derivation to read first. Write your version
with the same signature, then::

    from tinyvae import exercises
    exercises.check("dense_backward", my_dense_backward)   # -> Feedback: PASS, or what is wrong
    exercises.check_all(my_module)                          # every exercise found in a module or dict

or, from a shell, ``python -m tinyvae.exercises my_answers.py``.

``check`` draws seeded float64 inputs of awkward shapes (N=4, D=7, H=5, Z=3: nothing square, so a
missing transpose shows; N > 1, so a sum-for-mean mix-up shows), calls your function, and compares
its gradients with central differences of the true loss (``tinyvae.gradcheck``). When something
is off it compares your output with the reference (``tinyvae.solutions``) on the same inputs to
name the usual causes: a missing transpose, a missing ½, a sum where the batch mean is meant, the
wrong sign, a fresh ε, σ² in place of σ, a derivative taken w.r.t. σ or σ² instead of log σ², outputs
returned in each other's places, a forgotten bias gradient, a wrong shape, an exception.
"""

from __future__ import annotations

import linecache
import sys
import traceback
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import solutions
from .gradcheck import GradcheckReport, check_gradients

__all__ = [
    "EXERCISES", "Feedback", "Summary", "bce_with_logits", "check", "check_all", "dense_backward",
    "gaussian_kl", "init_vae_params", "relu_backward", "reparameterize", "reparameterize_backward",
    "tanh_backward", "vae_backward", "vae_forward", "iwae_loss", "iwae_encoder_backward", "conv_backward",
    "conv_forward",
]

SIZES = {"N": 4, "D": 7, "H": 5, "Z": 3, "K": 6}  # all different: a transpose or a wrong axis cannot hide
TOL = 1e-7  # relative error allowed by the gradient check (float64 central differences)
DERIV = "derivations/"


# =========================================================================== the exercises (stubs)


def dense_backward(dy, x, W):
    """(a) Backward pass of a dense layer y = x W + b.

    Inputs: dy = dL/dy (N, H), the layer's input x (N, D), its weights W (D, H).
    Return: (dx, dW, db) with shapes (N, D), (D, H), (H,).
    No reduction here: dy already carries the loss's 1/N, so do not divide by N again.
    Read: derivations/dense.md#eq:dense-grad-w (and #eq:dense-grad-b, #eq:dense-grad-x).
    """
    raise NotImplementedError


def relu_backward(dy, x):
    """(b1) Backward pass of y = max(x, 0).

    Inputs: dy (N, H) and the layer's *input* x (N, H). Return: dx (N, H).
    Read: derivations/activations.md#eq:relu-grad.
    """
    raise NotImplementedError


def tanh_backward(dy, y):
    """(b2) Backward pass of y = tanh(x).

    Inputs: dy (N, H) and the layer's *output* y = tanh(x) (N, H). Return: dx (N, H).
    Read: derivations/activations.md#eq:tanh-grad.
    """
    raise NotImplementedError


def bce_with_logits(logits, x):
    """(c) Bernoulli negative log-likelihood (binary cross-entropy) from logits, and its gradient.

    Inputs: logits (N, D), targets x (N, D) in [0, 1].
    Return: (loss, dlogits): loss a number, summed over D and averaged over N; dlogits (N, D).
    Must stay finite and exact for logits as large as ±1e4 (no clipping).
    Read: derivations/bernoulli.md#eq:bce-stable and #eq:bce-grad.
    """
    raise NotImplementedError


def gaussian_kl(mu, log_var):
    """(d) KL(N(μ, diag σ²) ‖ N(0, I)) in closed form, and its gradients. log_var means log σ².

    Inputs: mu (N, Z), log_var (N, Z).
    Return: (kl, dmu, dlog_var): kl a number, summed over Z and averaged over N; dmu, dlog_var (N, Z).
    Read: derivations/kl.md#eq:kl-closed-form, #eq:kl-grad-mu, #eq:kl-grad-logvar.
    """
    raise NotImplementedError


def reparameterize(mu, log_var, eps):
    """(e1) The sample z = μ + σ ⊙ ε, with σ = exp(½ log σ²) and ε given (never drawn here).

    Inputs: mu, log_var, eps, each (N, Z). Return: z (N, Z).
    Read: derivations/reparameterization.md#eq:reparam.
    """
    raise NotImplementedError


def reparameterize_backward(dz, eps, std):
    """(e2) Backward pass of z = μ + σ ⊙ ε, with the forward's own ε and σ = exp(½ log σ²).

    Inputs: dz = dL/dz, eps, std, each (N, Z). Return: (dmu, dlog_var), each (N, Z).
    ε is an input, not a parameter: it gets no gradient.
    Read: derivations/reparameterization.md#eq:reparam-grad-mu and #eq:reparam-grad-logvar.
    """
    raise NotImplementedError


def vae_backward(params, cache):
    """(f) Every parameter gradient of the 1-hidden-layer VAE computed by ``vae_forward``.

    Inputs: ``params`` (the dict given to ``vae_forward``) and the ``cache`` it returned.
    Return: a dict with the same keys as ``params``; each gradient has its parameter's shape.
    The loss is BCE (sum over D) + KL (sum over Z), averaged over N. Chain your answers to (a)-(e);
    the encoder's hidden layer feeds both the μ head and the log σ² head, so its gradients add.
    Read: derivations/reparameterization.md#eq:encoder-output-grad and derivations/elbo.md#eq:vae-loss.
    """
    raise NotImplementedError


def iwae_loss(log_w):
    """(g) The IWAE loss −L_K from the log importance weights, and its gradient.

    Input: log_w (N, K), log w_nk = log p(x_n|z_nk) + log p(z_nk) − log q(z_nk|x_n) for K samples
    of each of N examples. Return: (loss, dlog_w):
    loss = −(1/N) Σ_n log (1/K) Σ_k exp(log_w_nk), one number (nats per example);
    dlog_w = ∂loss/∂log_w, shape (N, K).
    Log weights of an MNIST model are around −100 nats: your code must stay finite and exact for
    log weights of ±1e4 (no clipping).
    Read: derivations/iwae.md#eq:iwae-loss, #eq:iwae-weights and #eq:iwae-grad-logw.
    """
    raise NotImplementedError


def iwae_encoder_backward(weights, dlogpx_dz, z, eps, std):
    """(h) The IWAE loss's gradient at the encoder's outputs μ and log σ², for ε held fixed.

    The loss is −(1/N) Σ_n log (1/K) Σ_k w_nk with log w_nk = log p(x_n|z_nk) + log p(z_nk) − log q(z_nk|x_n),
    z_nk = μ_n + σ_n ⊙ ε_nk, p(z) = N(0, I), q(z|x) = N(μ, diag σ²).
    Inputs: weights (N, K), the normalized weights w̃ = softmax_k(log w) (your (g) gives −w̃/N);
    dlogpx_dz (N, K, Z) = ∂ log p(x_n|z)/∂z at z_nk (what the decoder's backward returns);
    z, eps (N, K, Z); std = σ (N, Z).
    Return: (dmu, dlog_var), each (N, Z). Careful: log q depends on μ and log σ² twice, through the
    sample z and directly.
    Read: derivations/iwae.md#eq:iwae-grad-z, #eq:iwae-log-q-total, #eq:iwae-grad-mu and #eq:iwae-grad-logvar.
    """
    raise NotImplementedError


def conv_backward(dy, x, W, stride, padding):
    """(i) Backward pass of a convolution y = conv(x, W) + b (see ``conv_forward``), images NCHW.

    Inputs: dy = dL/dy (N, F, H_out, W_out); the layer's input x (N, C, R, S); its kernel W (F, C, k, k);
    the stride s and padding p (ints). Return: (dx, dW, db) with shapes (N, C, R, S), (F, C, k, k), (F,).
    Suggested route: im2col (the matrix of every window of the padded x, one column per output
    position), then dW = dY colsᵀ, db = the sum of dy over examples *and* positions, and
    dx = col2im(Wᵀ dY), where col2im adds each column back onto its window (overlaps add up), cut
    back to R × S. No division by N: dy already carries the loss's 1/N.
    Read: derivations/convolution.md#eq:im2col, #eq:conv-grad-w, #eq:conv-grad-b, #eq:col2im, #eq:conv-grad-x.
    """
    raise NotImplementedError


def conv_forward(x, W, b, stride, padding):
    """The convolution of exercise (i), by its definition: y[n, f, u, v] = b[f] + Σ_{c,i,j}
    W[f, c, i, j] · x_pad[n, c, s·u + i, s·v + j], with x_pad the input padded by p zeros on each side.
    x (N, C, R, S), W (F, C, k, k), b (F,) -> y (N, F, H_out, W_out), H_out = ⌊(R + 2p − k)/s⌋ + 1.
    """
    n, _, rows, cols = x.shape
    f, _, k, _ = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho, wo = (rows + 2 * padding - k) // stride + 1, (cols + 2 * padding - k) // stride + 1  # [eq:conv-output-size]
    y = np.empty((n, f, ho, wo))
    for u in range(ho):
        for v in range(wo):
            window = xp[:, :, stride * u:stride * u + k, stride * v:stride * v + k]  # (N, C, k, k)
            y[:, :, u, v] = np.tensordot(window, W, axes=([1, 2, 3], [1, 2, 3])) + b
    return y


# =========================================================================== the VAE of exercise (f)

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


# =========================================================================== exercise specifications


@dataclass
class Mistake:
    """A common wrong answer: what it would return for ``output``, and the hint that names it."""

    output: str
    hint: str
    wrong: object  # case -> the array this mistake produces


@dataclass
class Exercise:
    name: str
    letter: str
    outputs: tuple  # names of the returned values, in order
    shapes: dict  # output -> its shape in letters, e.g. ("D", "H")
    read: dict  # output -> derivation link
    make_case: object  # rng -> dict of float64 inputs (the learner's arguments, plus extras)
    args: tuple  # which inputs the learner's function receives, in order
    numeric: object = None  # (case, grads) -> GradcheckReport, central differences of the true loss
    values: tuple = ()  # outputs compared by value (a loss, a sample), not by gradient check
    mistakes: list = field(default_factory=list)
    scale_note: str = ""  # added to a "1/N too small" diagnosis


def _away_from_zero(rng, shape):
    return rng.uniform(0.2, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


def _shape(*letters):
    return tuple(SIZES[c] for c in letters)


def _sum_check(forward, inputs, wrt, grads, label):
    """Central differences of sum(R ⊙ forward(inputs)) against the learner's grads (R = upstream)."""
    params = {name: inputs[src].copy() for name, src in wrt.items() if name in grads}

    def f():
        values = dict(inputs, **{wrt[name]: p for name, p in params.items()})
        return np.sum(forward(values) * inputs["upstream"])

    return check_gradients(f, params, grads, tol=TOL, label=label)


def _dense_case(rng):
    x, W = rng.standard_normal(_shape("N", "D")), rng.standard_normal(_shape("D", "H"))
    b, dy = rng.standard_normal(_shape("H")), rng.standard_normal(_shape("N", "H"))
    return {"dy": dy, "x": x, "W": W, "b": b, "upstream": dy}


def _dense_numeric(case, grads):
    return _sum_check(lambda v: v["x"] @ v["W"] + v["b"], case, {"dx": "x", "dW": "W", "db": "b"}, grads,
                      "dense layer y = x W + b")


def _act_case(fn):
    def make(rng):
        x = _away_from_zero(rng, _shape("N", "H"))  # no input sits on ReLU's kink
        dy = rng.standard_normal(_shape("N", "H"))
        return {"dy": dy, "x": x, "y": fn(x), "upstream": dy}
    return make


def _relu(x):
    return np.maximum(x, 0.0)


def _act_numeric(fn, label):
    return lambda case, grads: _sum_check(lambda v: fn(v["x"]), case, {"dx": "x"}, grads, label)


def _bce_case(rng):
    logits = rng.normal(0.0, 3.0, _shape("N", "D"))
    x = rng.uniform(0.0, 1.0, _shape("N", "D"))
    x[0] = (x[0] > 0.5).astype(float)  # some binary targets, some grey
    return {"logits": logits, "x": x}


def _loss_numeric(ref_fn, args, wrt, label):
    """Central differences of the reference loss value w.r.t. the inputs ``wrt`` (grads named d<input>)."""
    def run(case, grads):
        params = {f"d{k}": case[k].copy() for k in wrt if f"d{k}" in grads}
        return check_gradients(lambda: np.float64(ref_fn(*[params.get(f"d{a}", case[a]) for a in args])[0]),
                               params, grads, tol=TOL, label=label)
    return run


def _kl_case(rng):
    return {"mu": rng.standard_normal(_shape("N", "Z")), "log_var": rng.normal(0.0, 0.7, _shape("N", "Z"))}


def _reparam_case(rng):
    mu, log_var = rng.standard_normal(_shape("N", "Z")), rng.normal(0.0, 0.7, _shape("N", "Z"))
    eps, dz = rng.standard_normal(_shape("N", "Z")), rng.standard_normal(_shape("N", "Z"))
    return {"mu": mu, "log_var": log_var, "eps": eps, "std": np.exp(0.5 * log_var), "dz": dz, "upstream": dz}


def _reparam_numeric(case, grads):
    return _sum_check(lambda v: v["mu"] + np.exp(0.5 * v["log_var"]) * v["eps"], case,
                      {"dmu": "mu", "dlog_var": "log_var"}, grads, "z = μ + exp(½ log σ²) ⊙ ε, ε fixed")


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


def _iwae_case(rng):
    return {"log_w": rng.normal(-3.0, 1.5, _shape("N", "K"))}


def _softmax_k(c):
    lw = c["log_w"]
    e = np.exp(lw - lw.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _iwae_through_weights(c):
    """The gradient of the surrogate −(1/N) Σ w̃ log w with w̃ differentiated too [eq:iwae-wrong-grad]."""
    w, lw = _softmax_k(c), c["log_w"]
    return -w * (1 + lw - (w * lw).sum(axis=1, keepdims=True)) / SIZES["N"]


def _iwae_mistakes():
    n, k = SIZES["N"], SIZES["K"]
    mean_of_logs = ("the mean of the logs, not the log of the mean: −(1/(N K)) Σ log w is the average of "
                    "K one-sample bounds (L_1, the ELBO); L_K takes the log of the average weight, "
                    "log (1/K) Σ_k exp(log w_k) [eq:iwae-loss]")
    return [
        Mistake("dlog_w", "the weights are not normalized: the gradient is −w̃/N with w̃_k = w_k / Σ_j w_j "
                          "(the softmax of log w over the K samples), not −w/N [eq:iwae-weights] [eq:iwae-grad-logw]",
                lambda c: -np.exp(c["log_w"]) / n),
        Mistake("dlog_w", "the weights are shifted by the maximum but not normalized: divide exp(log w − max) by "
                          "its sum over the K samples, w̃ = softmax(log w) [eq:iwae-weights]",
                lambda c: -np.exp(c["log_w"] - c["log_w"].max(axis=1, keepdims=True)) / n),
        Mistake("dlog_w", "normalized over the wrong axis: w̃ is the softmax over the K samples of each example "
                          "(axis 1), not over the batch [eq:iwae-weights]",
                lambda c: -(np.exp(c["log_w"]) / np.exp(c["log_w"]).sum(axis=0, keepdims=True)) / n),
        Mistake("dlog_w", "a gradient taken through w̃ as well: differentiating the surrogate −(1/N) Σ w̃ log w "
                          "with w̃ not held constant adds −(w̃/N)(log w − Σ w̃ log w) + ...; the gradient of the "
                          "log-sum-exp is just −w̃/N [eq:iwae-wrong-grad] [eq:iwae-grad-logw]",
                _iwae_through_weights),
        Mistake("loss", mean_of_logs, lambda c: -c["log_w"].mean()),
        Mistake("dlog_w", mean_of_logs, lambda c: np.full(c["log_w"].shape, -1.0 / (n * k))),
        Mistake("loss", "the 1/K inside the log is missing: the loss is off by exactly log K = "
                        f"{np.log(k):.4f}; L_K averages the K weights [eq:iwae-loss]",
                lambda c: float(solutions.iwae_loss(c["log_w"])[0] - np.log(k))),
    ]


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


CONV = {"N": 4, "C": 2, "F": 8, "R": 9, "S": 10, "k": 3, "stride": 2, "padding": 1}  # nothing square


def _conv_case(rng):
    c = CONV
    x = rng.standard_normal((c["N"], c["C"], c["R"], c["S"]))
    W, b = rng.standard_normal((c["F"], c["C"], c["k"], c["k"])), rng.standard_normal(c["F"])
    y = conv_forward(x, W, b, c["stride"], c["padding"])
    dy = rng.standard_normal(y.shape)
    return {"dy": dy, "x": x, "W": W, "b": b, "stride": c["stride"], "padding": c["padding"], "upstream": dy}


def _conv_numeric(case, grads):
    return _sum_check(lambda v: conv_forward(v["x"], v["W"], v["b"], v["stride"], v["padding"]), case,
                      {"dx": "x", "dW": "W", "db": "b"}, grads, "convolution y = conv(x, W) + b")


def _conv_dx(c, kernel_matrix=None, place=None):
    """dx by the reference route, with a mistake planted: another kernel matrix, or another col2im step."""
    x, W, s, p, dy = c["x"], c["W"], c["stride"], c["padding"], c["dy"]
    f, ch, k, _ = W.shape
    n, _, ho, wo = dy.shape
    w_t = W.reshape(f, ch * k * k).T if kernel_matrix is None else kernel_matrix(W)
    blocks = (w_t @ dy.transpose(1, 0, 2, 3).reshape(f, -1)).reshape(ch, k, k, n, ho, wo)
    out = np.zeros((ch, n, x.shape[2] + 2 * p, x.shape[3] + 2 * p))
    for i in range(k):
        for j in range(k):
            (place or _add_window)(out, blocks[:, i, j], i, j, s, ho, wo)
    return out[:, :, p:p + x.shape[2], p:p + x.shape[3]].transpose(1, 0, 2, 3)


def _add_window(out, block, i, j, s, ho, wo):
    out[:, :, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s] += block  # [eq:col2im]


def _conv_mistakes():
    rotated = lambda W: W[:, :, ::-1, ::-1].reshape(W.shape[0], -1).T  # noqa: E731
    reshaped = lambda W: W.reshape(-1, W.shape[0])  # noqa: E731

    def no_stride(out, block, i, j, s, ho, wo):
        out[:, :, i:i + ho, j:j + wo] += block

    def overwrite(out, block, i, j, s, ho, wo):
        out[:, :, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s] = block

    def dW_rotated(c):
        return solutions.conv_backward(c["dy"], c["x"], c["W"], c["stride"], c["padding"])[1][:, :, ::-1, ::-1]

    return [
        Mistake("dx", "the kernel's orientation: yours is the right dx for the kernel rotated by 180°. With "
                      "col2im (dcols = Wᵀ dY, each column added back onto its window) the kernel is used as it "
                      "is; written as a full convolution of the spread-out dy, it must be rotated, and not both "
                      "[eq:conv-grad-x] [eq:conv-adjoint-full]", lambda c: _conv_dx(c, kernel_matrix=rotated)),
        Mistake("dx", "the kernel matrix is reshaped where it must be transposed: Wᵀ is W.reshape(F, C·k·k).T; "
                      "W.reshape(C·k·k, F) has the same shape and the wrong entries [eq:conv-grad-x]",
                lambda c: _conv_dx(c, kernel_matrix=reshaped)),
        Mistake("dx", "the stride is missing in col2im: kernel offset (i, j) of output pixel (u, v) lands on "
                      "input pixel (s·u + i, s·v + j), every s-th pixel, not on consecutive ones [eq:col2im]",
                lambda c: _conv_dx(c, place=no_stride)),
        Mistake("dx", "overlapping windows overwrite each other: an input pixel under several windows gets the "
                      "sum of all their contributions (+=), not the last one (=) [eq:col2im]",
                lambda c: _conv_dx(c, place=overwrite)),
        Mistake("dW", "the kernel gradient's taps are rotated by 180°: dW[f, c, i, j] pairs dy[n, f, u, v] with "
                      "x_pad[n, c, s·u + i, s·v + j], tap (i, j) unflipped [eq:conv-grad-w]", dW_rotated),
        Mistake("db", "db is summed over the batch at one position only: the bias is added at every output "
                      "position, so its gradient sums dy over examples and positions, axes (0, 2, 3) "
                      "[eq:conv-grad-b]", lambda c: c["dy"][:, :, 0, 0].sum(axis=0)),
        Mistake("db", "db is averaged over positions: the bias gradient is the sum of dy over examples and "
                      "positions (the loss's 1/N is already in dy) [eq:conv-grad-b]",
                lambda c: c["dy"].sum(axis=0).mean(axis=(1, 2))),
    ]


def _sig(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _kl_with_std(c):
    return 0.5 * (np.exp(0.5 * c["log_var"]) + c["mu"] ** 2 - 1 - c["log_var"]).sum() / SIZES["N"]


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


EXERCISES = {e.name: e for e in [
    Exercise(
        name="dense_backward", letter="a", outputs=("dx", "dW", "db"),
        shapes={"dx": ("N", "D"), "dW": ("D", "H"), "db": ("H",)},
        read={"dx": "dense.md#eq:dense-grad-x", "dW": "dense.md#eq:dense-grad-w", "db": "dense.md#eq:dense-grad-b"},
        make_case=_dense_case, args=("dy", "x", "W"), numeric=_dense_numeric,
        mistakes=[Mistake("db", "db is dy averaged over the batch; it is the sum: dy already carries the loss's 1/N "
                                "[eq:dense-grad-b]", lambda c: c["dy"].mean(axis=0))],
        scale_note="dy already carries the loss's 1/N: a layer's backward never divides by N again"),
    Exercise(
        name="relu_backward", letter="b1", outputs=("dx",), shapes={"dx": ("N", "H")},
        read={"dx": "activations.md#eq:relu-grad"},
        make_case=_act_case(_relu), args=("dy", "x"), numeric=_act_numeric(_relu, "ReLU"),
        mistakes=[Mistake("dx", "the upstream gradient is missing: dx is dy times the local slope, not the slope "
                                "alone (chain rule)", lambda c: (c["x"] > 0).astype(float)),
                  Mistake("dx", "multiplied by x; the slope of ReLU is the 0/1 mask (x > 0), not x",
                          lambda c: c["dy"] * c["x"]),
                  Mistake("dx", "multiplied by the output max(x, 0); the slope is the 0/1 mask (x > 0)",
                          lambda c: c["dy"] * _relu(c["x"]))]),
    Exercise(
        name="tanh_backward", letter="b2", outputs=("dx",), shapes={"dx": ("N", "H")},
        read={"dx": "activations.md#eq:tanh-grad"},
        make_case=_act_case(np.tanh), args=("dy", "y"), numeric=_act_numeric(np.tanh, "tanh"),
        mistakes=[Mistake("dx", "the upstream gradient is missing: dx is dy times the local slope 1 − y²",
                          lambda c: 1 - c["y"] ** 2),
                  Mistake("dx", "the slope is 1 − y² (squared): yours is 1 − y", lambda c: c["dy"] * (1 - c["y"])),
                  Mistake("dx", "tanh applied a second time: y is already tanh(x), so the slope is 1 − y², "
                                "not 1 − tanh(y)²", lambda c: c["dy"] * (1 - np.tanh(c["y"]) ** 2))]),
    Exercise(
        name="bce_with_logits", letter="c", outputs=("loss", "dlogits"), shapes={"loss": (), "dlogits": ("N", "D")},
        read={"loss": "bernoulli.md#eq:bce-stable", "dlogits": "bernoulli.md#eq:bce-grad"},
        make_case=_bce_case, args=("logits", "x"), values=("loss",),
        numeric=_loss_numeric(solutions.bce_with_logits, ("logits", "x"), ["logits"], "binary cross-entropy"),
        mistakes=[Mistake("dlogits", "yours is (σ(l) − x)·σ(l)(1 − σ(l))/N: the sigmoid's slope cancels against "
                                     "the cross-entropy's, so dlogits = (σ(l) − x)/N [eq:bce-grad]",
                          lambda c: (_sig(c["logits"]) - c["x"]) * _sig(c["logits"]) * (1 - _sig(c["logits"]))
                          / SIZES["N"])]),
    Exercise(
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
                          lambda c: 0.5 * (1 - np.exp(-c["log_var"])) / SIZES["N"])]),
    Exercise(
        name="reparameterize", letter="e1", outputs=("z",), shapes={"z": ("N", "Z")},
        read={"z": "reparameterization.md#eq:reparam"},
        make_case=_reparam_case, args=("mu", "log_var", "eps"), values=("z",),
        mistakes=[Mistake("z", "σ² in place of σ: the noise is scaled by exp(log_var) = σ², the variance; "
                               "it must be scaled by the standard deviation σ = exp(½ log_var) [eq:reparam]",
                          lambda c: c["mu"] + np.exp(c["log_var"]) * c["eps"]),
                  Mistake("z", "log σ² used as if it were σ: σ = exp(½ log_var) [eq:reparam]",
                          lambda c: c["mu"] + c["log_var"] * c["eps"]),
                  Mistake("z", "μ is missing: z = μ + σ ⊙ ε [eq:reparam]",
                          lambda c: np.exp(0.5 * c["log_var"]) * c["eps"])]),
    Exercise(
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
                  *_reparam_logvar_mistakes()]),
    Exercise(
        name="vae_backward", letter="f", outputs=tuple(VAE_PARAM_SHAPES), shapes=dict(VAE_PARAM_SHAPES),
        read={k: "reparameterization.md#eq:encoder-output-grad" if k in ("W_mu", "b_mu", "W_logvar", "b_logvar")
              else "dense.md#eq:dense-grad-b" if k.startswith("b") else "dense.md#eq:dense-grad-w"
              for k in VAE_PARAM_SHAPES},
        make_case=_vae_case, args=("params", "cache"), numeric=_vae_numeric, mistakes=_vae_mistakes(),
        scale_note="only the loss's own gradients (dlogits and the KL's) carry 1/N; the layers do not divide again"),
    Exercise(
        name="iwae_loss", letter="g", outputs=("loss", "dlog_w"), shapes={"loss": (), "dlog_w": ("N", "K")},
        read={"loss": "iwae.md#eq:iwae-loss", "dlog_w": "iwae.md#eq:iwae-grad-logw"},
        make_case=_iwae_case, args=("log_w",), values=("loss",),
        numeric=_loss_numeric(solutions.iwae_loss, ("log_w",), ["log_w"], "IWAE loss −L_K"),
        mistakes=_iwae_mistakes()),
    Exercise(
        name="iwae_encoder_backward", letter="h", outputs=("dmu", "dlog_var"),
        shapes={"dmu": ("N", "Z"), "dlog_var": ("N", "Z")},
        read={"dmu": "iwae.md#eq:iwae-grad-mu", "dlog_var": "iwae.md#eq:iwae-grad-logvar",
              "log q": "iwae.md#eq:iwae-log-q-total"},
        make_case=_iwae_encoder_case, args=("weights", "dlogpx_dz", "z", "eps", "std"),
        numeric=_iwae_encoder_numeric, mistakes=_iwae_encoder_mistakes()),
    Exercise(
        name="conv_backward", letter="i", outputs=("dx", "dW", "db"),
        shapes={"dx": ("N", "C", "R", "S"), "dW": ("F", "C", "k", "k"), "db": ("F",)},
        read={"dx": "convolution.md#eq:conv-grad-x", "dW": "convolution.md#eq:conv-grad-w",
              "db": "convolution.md#eq:conv-grad-b", "col2im": "convolution.md#eq:col2im"},
        make_case=_conv_case, args=("dy", "x", "W", "stride", "padding"), numeric=_conv_numeric,
        mistakes=_conv_mistakes(),
        scale_note="dy already carries the loss's 1/N: a layer's backward never divides by N again"),
]}


BCE_PROBE_LOGITS = np.array([[1e4, -1e4, 30.0, -30.0, 0.0, 800.0, -800.0]] * 2)
# Log weights far outside exp's range (float64 overflows above 709.8 and underflows below −745).
IWAE_PROBE_LOG_W = np.array([[-1e4, -1e4 + 1.0, -1e4 - 3.0, -1e4 + 0.5, -1e4 - 20.0, -1e4 + 2.0],
                             [800.0, 801.0, 790.0, 805.0, 799.5, 760.0],
                             [-800.0, -805.0, -790.0, -801.0, -2000.0, -795.0]])


# =========================================================================== feedback


@dataclass
class Feedback:
    """What ``check`` found: ``passed``, ``status`` and a readable ``str`` (PASS or what is wrong)."""

    exercise: str
    status: str  # "pass", "fail", "error", "not implemented"
    problems: list = field(default_factory=list)  # one readable line (or paragraph) per problem
    report: GradcheckReport | None = None
    read: list = field(default_factory=list)  # derivation links

    @property
    def passed(self):
        return self.status == "pass"

    def __str__(self):
        ex = EXERCISES[self.exercise]
        head = f"({ex.letter}) {self.exercise}: "
        if self.status == "not implemented":
            return (head + "not implemented yet. Write the body (it still raises NotImplementedError), "
                    f"then run the check again. Read first: {', '.join(self.read)}")
        if self.status == "pass":
            worst = f" (worst relative error {self.report.max_error:.1e})" if self.report else ""
            checked = "match central differences" if self.report else "match the reference"
            what = ", ".join(ex.outputs) if len(ex.outputs) < 5 else "all gradients"
            verb = checked.replace("match ", "matches ") if len(ex.outputs) == 1 else checked
            return head + f"PASS: {what} {verb}{worst}."
        lines = [head + ("FAIL" if self.status == "fail" else "ERROR, your code raised an exception")]
        lines += ["  - " + p.replace("\n", "\n    ") for p in self.problems]
        if self.report is not None and not self.report.passed:
            lines.append("  " + str(self.report).replace("\n", "\n  "))
        lines.append("  Read: " + ", ".join(self.read))
        return "\n".join(lines)

    __repr__ = __str__


@dataclass
class Summary:
    """The feedback of several exercises; ``passed`` when all passed."""

    feedback: list

    @property
    def passed(self):
        return all(f.passed for f in self.feedback)

    def __str__(self):
        marks = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "not implemented": "not implemented yet"}
        head = [f"{sum(f.passed for f in self.feedback)}/{len(self.feedback)} exercises pass"]
        head += [f"  {'(' + EXERCISES[f.exercise].letter + ')':<5} {f.exercise:<24} {marks[f.status]}" for f in self.feedback]
        details = [str(f) for f in self.feedback if f.status in ("fail", "error")]
        return "\n".join(head) + ("\n\n" + "\n\n".join(details) if details else "")

    __repr__ = __str__


# =========================================================================== the checker


def check(name, fn=None, *, seed=0):
    """Check the learner's function ``fn`` for exercise ``name`` (or ``check(fn)`` by its name)."""
    if fn is None and callable(name):
        name, fn = name.__name__, name
    if name not in EXERCISES:
        raise ValueError(f"no exercise named {name!r}; the exercises are {list(EXERCISES)}")
    ex = EXERCISES[name]
    read = sorted({DERIV + link for link in ex.read.values()})
    case = ex.make_case(np.random.default_rng(1000 + list(EXERCISES).index(name) + seed))
    ref = _as_outputs(ex, _call(getattr(solutions, name), ex, case)[0])

    result, error = _call(fn, ex, case)
    if isinstance(error, NotImplementedError):
        return Feedback(name, "not implemented", read=read)
    if error is not None:
        return Feedback(name, "error", [_explain_exception(error, ex, case)], read=read)

    problems = []
    got = _as_outputs(ex, result, problems)
    again, error2 = _call(fn, ex, case)
    if error2 is None and not _same(got, _as_outputs(ex, again)):
        problems.append("your function gives different answers for the same inputs: it draws fresh random "
                        "numbers (a fresh ε?). Use the ε that is passed in: " + (
                            "randomness comes in from outside, so that the backward can use the very same ε "
                            "[eq:reparam]" if name == "reparameterize" else
                            "the backward must see the very ε of the forward (ε itself gets no gradient) "
                            "[eq:reparam-grad-logvar]"))
    if any(v is not None for v in got.values()):  # else the return value's structure is the problem
        problems += _check_outputs(ex, case, got, ref, fn)
    if name == "iwae_loss" and not problems:
        problems += _iwae_probe(fn, ex)
    if name == "bce_with_logits" and not problems:
        problems += _bce_probe(fn, ex)

    report = None
    if ex.numeric is not None:
        grads = {k: np.asarray(v, dtype=np.float64) for k, v in got.items()
                 if k not in ex.values and v is not None and _is_numeric(v)}
        if grads:
            report = ex.numeric(case, grads)
            bad = [r for r in report.results if r.rel_error > TOL]
            if bad and not problems:
                problems += [f"{r.name}: relative error {r.rel_error:.2e} > {TOL:.0e}, worst at index {r.where}: "
                             f"analytic {r.analytic:.6g} vs numeric {r.numeric:.6g}" for r in bad]
    status = "pass" if not problems and (report is None or report.passed) else "fail"
    return Feedback(name, status, problems, report, read)


def check_all(answers, *, seed=0):
    """Check every exercise found in ``answers`` (a module or a dict of functions). Returns a Summary."""
    get = answers.get if isinstance(answers, dict) else lambda k: getattr(answers, k, None)
    out = []
    for name, ex in EXERCISES.items():
        fn = get(name)
        if fn is None:
            out.append(Feedback(name, "not implemented", read=sorted({DERIV + v for v in ex.read.values()})))
        else:
            out.append(check(name, fn, seed=seed))
    return Summary(out)


# --------------------------------------------------------------------------- calling the learner


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return np.array(value, dtype=np.float64) if isinstance(value, np.ndarray) else value


def _call(fn, ex, case):
    """fn on fresh copies of the inputs, warnings silenced (overflow shows up in the result)."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return fn(*[_copy(case[a]) for a in ex.args]), None
    except Exception as err:  # noqa: BLE001  (the learner's exception is the feedback)
        return None, err


def _as_outputs(ex, result, problems=None):
    """The learner's return value as {output name: value}; missing ones become None (and a problem)."""
    problems = [] if problems is None else problems
    names = ex.outputs
    if ex.name == "vae_backward":
        if not isinstance(result, dict):
            problems.append(f"expected a dict of gradients with the keys of params {list(names)}, got {type(result).__name__}")
            return dict.fromkeys(names)
        extra = sorted(set(result) - set(names))
        if extra:
            problems.append(f"unexpected keys {extra}: return exactly the keys of params")
        return {k: result.get(k) for k in names}
    if len(names) == 1:
        if isinstance(result, tuple) and len(result) == 1:
            result = result[0]
        if isinstance(result, (tuple, list)):
            problems.append(f"expected one array {names[0]}, got a {type(result).__name__} of {len(result)} values")
            return {names[0]: None}
        return {names[0]: result}
    if not isinstance(result, (tuple, list)):
        problems.append(f"expected a tuple of {len(names)} values ({', '.join(names)}), got one {type(result).__name__}")
        return dict.fromkeys(names)
    if len(result) != len(names):
        missing = names[len(result):]
        if len(result) < len(names):
            hint = "the bias gradient db is missing" if "db" in missing else f"{', '.join(missing)} missing"
        elif "eps" in ex.args:
            hint = ("ε gets no gradient: it is an input, a draw of N(0, I) held fixed, not a parameter, so return "
                    f"only ({', '.join(names)}) [eq:reparam-grad-logvar]")
        else:
            hint = f"return exactly these {len(names)}, in this order"
        problems.append(f"returned {len(result)} values, expected {len(names)}: ({', '.join(names)}); {hint}")
        return {k: (result[i] if i < len(result) and len(result) < len(names) else None) for i, k in enumerate(names)}
    return dict(zip(names, result))


def _is_numeric(v):
    try:
        np.asarray(v, dtype=np.float64)
        return True
    except (TypeError, ValueError):
        return False


def _same(a, b):
    for k in a:
        x, y = a[k], b.get(k)
        if x is None or y is None or not _is_numeric(x) or not _is_numeric(y):
            continue
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x.shape != y.shape or not np.allclose(x, y, rtol=1e-12, atol=0, equal_nan=True):
            return False
    return True


def _explain_exception(err, ex, case):
    """The exception, the learner's line that raised it, the input shapes and a hint."""
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if f.filename != __file__ and "site-packages" not in f.filename and "numpy" not in f.filename]
    where = ""
    if frames:
        f = frames[-1]
        line = f.line or linecache.getline(f.filename, f.lineno).strip()
        where = f"\n  in {f.name}, line {f.lineno}: {line}"
    shapes = ", ".join(f"{a} {_describe_shape(case[a])}" for a in ex.args if isinstance(case[a], np.ndarray))
    text = f"{type(err).__name__}: {err}{where}"
    if shapes:
        text += f"\n  your inputs: {shapes}"
    msg = str(err)
    if isinstance(err, ValueError) and ("matmul" in msg or "shapes" in msg or "broadcast" in msg or "aligned" in msg):
        text += ("\n  hint: the shapes do not line up. In A @ B the inner sizes must agree; a missing transpose "
                 "(.T) is the usual cause. Write each array's shape next to the line.")
    elif isinstance(err, KeyError) and ex.name == "vae_backward":
        text += f"\n  hint: params has keys {list(VAE_PARAM_SHAPES)}; cache has keys {list(case['cache'])}"
    return text


def _describe_shape(a):
    letters = {v: k for k, v in SIZES.items()}
    return f"{a.shape} = ({', '.join(letters.get(s, str(s)) for s in a.shape)}{',' if a.ndim == 1 else ''})"


# --------------------------------------------------------------------------- diagnosing outputs


def _check_outputs(ex, case, got, ref, fn):
    """One line per wrong output; outputs explained by the same known mistake share one line."""
    problems, grouped = _swapped(ex, got, ref), {}
    swapped = {n for p in problems for n in p.split(" are swapped")[0].split(" and ")}
    for name in ex.outputs:
        if name in swapped:
            continue
        g, r = got[name], np.asarray(ref[name], dtype=np.float64)
        link = f"[{ex.read[name].split('#')[1]}]"
        sym = "(" + ", ".join(ex.shapes[name]) + ("," if len(ex.shapes[name]) == 1 else "") + ")"
        if g is None:
            bias = name.startswith(("db", "b_"))
            problems.append(f"{name} is missing" + (": the bias gradient was forgotten; a bias gets the "
                                                           "upstream gradient summed over the batch [eq:dense-grad-b]"
                                                           if bias else ""))
        elif not _is_numeric(g):
            problems.append(f"{name}: expected numbers, got a {type(g).__name__}")
        elif np.shape(g) != r.shape:
            problems.append(_shape_problem(name, np.asarray(g, dtype=np.float64), r, sym, link))
        else:
            g = np.asarray(g, dtype=np.float64)
            if np.allclose(g, r, rtol=1e-7, atol=1e-12 * max(1.0, np.abs(r).max(initial=0))):
                continue
            hint = _known_mistake(ex, case, name, g, r)
            if hint:
                grouped.setdefault(hint, []).append((name, f"{name}: {hint}"))
                continue
            key, text = _value_problem(ex, case, name, g, r, link, fn)
            if np.asarray(got[name]).dtype in (np.float32, np.float16):
                text += f" (and it is {np.asarray(got[name]).dtype}: keep float64, a gradient check needs it)"
            if key:
                grouped.setdefault(key, []).append((name, text))
            else:
                problems.append(text)
    for key, items in grouped.items():
        if len(items) == 1:
            problems.append(items[0][1])
        else:
            problems.append(f"{', '.join(n for n, _ in items)}: " + ("each is " if key.startswith("exactly") else "") + key)
    if ex.name == "vae_backward" and problems:
        problems.append(_locate(got, ref))
    return problems


def _swapped(ex, got, ref):
    """Two outputs of one shape returned in each other's places: one line per such pair."""
    def equal(a, b):
        return (a is not None and _is_numeric(a) and np.shape(a) == np.shape(b)
                and np.allclose(np.asarray(a, dtype=np.float64), b, rtol=1e-7, atol=1e-12))

    out, seen = [], set()
    ref = {k: np.asarray(v, dtype=np.float64) for k, v in ref.items()}
    for i, a in enumerate(ex.outputs):
        for b in ex.outputs[i + 1:]:
            if {a, b} & seen or ref[a].shape != ref[b].shape or np.allclose(ref[a], ref[b]):
                continue
            if equal(got[a], ref[b]) and equal(got[b], ref[a]):
                seen |= {a, b}
                if ex.name == "vae_backward":  # a dict: the keys are mixed up
                    out.append(f"{a} and {b} are swapped: yours are exactly the right values under each other's keys")
                else:
                    out.append(f"{a} and {b} are swapped: yours are exactly the right values in each other's places. "
                               f"Return ({', '.join(ex.outputs)}) in this order")
    return out


def _locate(got, ref):
    """For the VAE: the first wrong gradient walking back from the loss points at the faulty step."""
    order = ["W_out", "b_out", "W_dec", "b_dec", "W_mu", "b_mu", "W_logvar", "b_logvar", "W_enc", "b_enc"]
    right = [k for k in order if got[k] is not None and _is_numeric(got[k]) and np.shape(got[k]) == ref[k].shape
             and np.allclose(np.asarray(got[k], dtype=np.float64), ref[k], rtol=1e-7, atol=1e-12)]
    wrong = [k for k in order if k not in right]
    return (f"walking back from the loss, right: {', '.join(right) or 'none'}; wrong: {', '.join(wrong)}. "
            f"The first wrong one, {wrong[0]}, points at the step that computes it.")


def _known_mistake(ex, case, name, g, r):
    """The hint of a catalogued mistake that produces exactly ``g`` (and not the right answer)."""
    for m in ex.mistakes:
        if m.output == name:
            with np.errstate(all="ignore"):
                w = np.asarray(m.wrong(case), dtype=np.float64)
            if w.shape == g.shape and not np.allclose(w, r, rtol=1e-7) and np.allclose(g, w, rtol=1e-7, atol=1e-12):
                return m.hint
    return None


def _shape_problem(name, g, r, sym, link):
    text = f"{name}: expected shape {r.shape} = {sym}, got {g.shape}"
    if g.ndim == 2 and g.shape == r.shape[::-1]:
        if np.allclose(g.T, r, rtol=1e-7):
            return text + f": a missing transpose; yours is exactly the right {name}, transposed {link}"
        return text + f", the transposed shape: a missing transpose (and the values differ too) {link}"
    if r.ndim == 1 and g.ndim == 3 and g.shape[0] == r.shape[0]:
        return text + (": summed over the batch only. A convolution's bias is added at every output position "
                       "too, so its gradient sums dy over examples and positions, axes (0, 2, 3) [eq:conv-grad-b]")
    if r.ndim == 4 and g.shape == (r.shape[1], r.shape[0], *r.shape[2:]):
        return text + (": the two channel axes are swapped; the kernel (and its gradient) is (F, C, k, k), output "
                       f"channels first {link}")
    if r.ndim == 1 and g.ndim == 2 and g.shape[1] == r.shape[0]:
        if g.shape[0] == 1:
            return text + ": drop the keepdims, the result is one-dimensional"
        return text + (": not summed over the batch. A bias is shared by all N examples, so its gradient "
                       f"sums the upstream gradient over axis 0 {link}")
    if r.ndim == 1 and g.ndim == 1 and g.shape[0] == SIZES["N"]:
        return text + f": summed over the wrong axis; sum over the batch, axis 0 {link}"
    if r.ndim == 0:
        return text + (": the loss is one number, the sum over D (or Z) averaged over N; yours keeps an axis "
                       "[eq:loss-reduction]")
    if g.ndim == 0:
        return text + f": a single number where an array of shape {sym} is meant"
    return text + f" {link}"


def _known_factors(ex):
    n, d, z = SIZES["N"], SIZES["D"], SIZES["Z"]
    inner = {"bce_with_logits": ("D", d, "pixels"), "gaussian_kl": ("Z", z, "latent dimensions")}.get(ex.name)
    f = {2.0: "a missing ½", 0.5: "an extra ½ (or a missing factor 2)",
         float(n): f"a sum over the batch where the mean is meant: the loss averages over the N = {n} examples, "
                   "so divide by N [eq:loss-reduction]",
         1.0 / n: f"divided by N = {n} once too often" + (f": {ex.scale_note}" if ex.scale_note else "")}
    if inner:
        letter, size, what = inner
        f[1.0 / size] = (f"averaged over the {letter} = {size} {what} too: sum over {letter}, mean over N only "
                         "[eq:loss-reduction]")
        f[1.0 / (size * n)] = (f"a mean over every entry (np.mean): sum over the {letter} = {size} {what}, then "
                               "average over N [eq:loss-reduction]")
    return f


def _ratio_hint(ex, c):
    """Name the factor c (yours = c × right) when it is one of the usual suspects."""
    sign = c < 0
    mag = abs(c)
    for factor, text in _known_factors(ex).items():
        if np.isclose(mag, factor, rtol=1e-6):
            if sign:
                return f"the wrong sign and {text}"
            return text
    if sign and np.isclose(mag, 1.0, rtol=1e-6):
        return "the wrong sign"
    return None


def _value_problem(ex, case, name, g, r, link, fn):
    """(group key or None, text): what is wrong with a same-shape output ``g`` (reference ``r``)."""
    if not np.all(np.isfinite(g)):
        bad = np.argwhere(~np.isfinite(g))
        return None, f"{name} contains NaN or inf (at {len(bad)} entries, first {tuple(int(i) for i in bad[0])}): an overflow {link}"
    scale = float((r * r).sum())
    c = float((g * r).sum() / scale) if scale > 0 else 0.0
    proportional = scale > 0 and np.allclose(g, c * r, rtol=1e-6, atol=1e-12 * np.abs(r).max())
    head = f"{name} is wrong"
    if g.ndim == 0:
        head += f": yours {float(g):.6g}, expected {float(r):.6g}"
    else:
        i = np.unravel_index(int(np.argmax(np.abs(g - r))), g.shape)
        rel = np.abs(g - r).max() / max(np.abs(g).max(), np.abs(r).max(), 1e-300)
        head += (f": relative error {rel:.2e}, worst at index {tuple(int(k) for k in i)}: "
                 f"yours {g[i]:.6g}, expected {r[i]:.6g}")
    if proportional:
        hint = _ratio_hint(ex, c)
        if hint:
            return f"exactly {c:.4g} × the right one: {hint}", f"{head}. Yours is exactly {c:.4g} × the right one: {hint} {link}"
        if g.ndim > 0 and not np.isclose(c, 0.0):
            return None, f"{head}. Yours is the right one times {c:.4g}: a constant factor is off {link}"
    if not np.any(g) and np.any(r):
        bias = name.startswith(("db", "b_"))
        return None, f"{head}. It is all zeros" + (": the bias gradient was forgotten" if bias else "") + f" {link}"
    if ex.name == "reparameterize_backward" and name == "dlog_var" and _eps_out_of_place(case, g):
        return None, (f"{head}. It equals ½·dz·ε'·σ where ε' holds the forward's ε values in other places "
                      "(transposed, reversed or shuffled): each entry of z has its own ε, and its gradient uses "
                      "that same entry [eq:reparam-grad-logvar]")
    if ex.name == "reparameterize_backward" and name == "dlog_var" and _uses_another_eps(fn, ex, case, g):
        return None, (f"{head}. It equals ½·dz·ε'·σ for an ε' that is not the forward's ε: the wrong ε. "
                      "The backward must use the very ε the forward drew; with a fresh one the reconstruction "
                      "stops pulling on σ [eq:reparam-grad-logvar]")
    return None, f"{head} {link}"


def _eps_out_of_place(case, g):
    """Whether g = ½·dz·ε'·σ for an ε' whose entries are the forward's ε rearranged."""
    denom = 0.5 * case["dz"] * case["std"]
    if np.any(np.abs(denom) < 1e-8):
        return False
    e = g / denom
    return (np.all(np.isfinite(e)) and not np.allclose(e, case["eps"], rtol=1e-6)
            and np.allclose(np.sort(e, axis=None), np.sort(case["eps"], axis=None), rtol=1e-7, atol=1e-12))


def _uses_another_eps(fn, ex, case, g):
    """Whether g = ½·dz·ε'·σ for an ε' that looks like an independent N(0, 1) draw.

    Two tests, both needed: ε' has the sample mean and spread of N(0, 1) noise, and it is independent
    of the ε passed in (the answer stays the same when ε is replaced by another draw). A formula
    built on the right ε with a wrong factor (σ², √σ, 1/(2σ), ...) fails the second test.
    """
    denom = 0.5 * case["dz"] * case["std"]
    if np.any(np.abs(denom) < 1e-8):
        return False
    e = g / denom
    n = e.size
    if not np.all(np.isfinite(e)) or abs(e.mean()) > 4 / np.sqrt(n) or not 0.35 < e.std() < 2.0:
        return False
    def dlog_var(inputs):
        result, err = _call(fn, ex, inputs)
        out = None if err is not None else _as_outputs(ex, result).get("dlog_var")
        ok = out is not None and _is_numeric(out) and np.shape(out) == g.shape
        return np.asarray(out, dtype=np.float64) if ok else None

    again = dlog_var(case)
    if again is not None and not np.allclose(again, g, rtol=1e-12, atol=0):
        return True  # a fresh draw on every call: independent of the ε passed in by construction
    other = dlog_var(dict(case, eps=np.random.default_rng(99).standard_normal(case["eps"].shape)))
    return other is not None and np.allclose(other, g, rtol=1e-12, atol=0)


def _bce_probe(fn, ex):
    """Logits of ±1e4 (and ±800, beyond exp's range): the loss and gradient must stay finite and exact."""
    x = np.zeros_like(BCE_PROBE_LOGITS)
    x[0] = 1.0
    x[1, ::2] = 1.0
    x[1, 1::2] = 0.3
    case = {"logits": BCE_PROBE_LOGITS.copy(), "x": x}
    result, err = _call(fn, ex, case)
    if err is not None:
        return [f"with logits of ±1e4 your code raised {type(err).__name__}: {err}"]
    got = _as_outputs(ex, result)
    ref = _as_outputs(ex, solutions.bce_with_logits(case["logits"], case["x"]))
    out = []
    for k in ex.outputs:
        if got[k] is None or not _is_numeric(got[k]):
            continue  # already reported on the main inputs
        g, r = np.asarray(got[k], dtype=np.float64), np.asarray(ref[k], dtype=np.float64)
        if not np.all(np.isfinite(g)):
            out.append(f"{k} is not finite for logits of ±1e4: exp overflows (or log(0) appears). Use the stable "
                       "form max(l, 0) − x·l + log1p(exp(−|l|)), whose exp never sees a positive number "
                       "[eq:bce-stable]")
        elif g.shape != r.shape or not np.allclose(g, r, rtol=1e-7, atol=1e-9):
            out.append(f"{k} is wrong for large logits (±1e4, ±800): clipping or an overflowing step changes it; "
                       "the stable form is exact at any size [eq:bce-stable]")
    return out


def _iwae_probe(fn, ex):
    """Log weights of ±1e4 and ±800: the loss and gradient must stay finite and exact."""
    case = {"log_w": IWAE_PROBE_LOG_W.copy()}
    result, err = _call(fn, ex, case)
    if err is not None:
        return [f"with log weights of ±1e4 your code raised {type(err).__name__}: {err}"]
    got = _as_outputs(ex, result)
    ref = _as_outputs(ex, solutions.iwae_loss(case["log_w"]))
    out = []
    for k in ex.outputs:
        if got[k] is None or not _is_numeric(got[k]):
            continue
        g, r = np.asarray(got[k], dtype=np.float64), np.asarray(ref[k], dtype=np.float64)
        if not np.all(np.isfinite(g)):
            out.append(f"{k} is not finite for log weights of −1e4 or 800: exp overflows (e^800 = inf) or "
                       "underflows to 0 (then log 0 = −inf, or 0/0). Take each example's largest log weight m "
                       "out first: log Σ_k e^(a_k) = m + log Σ_k e^(a_k − m), and w̃ = e^(a − m) / Σ e^(a − m) "
                       "[eq:log-mean-exp] [eq:iwae-weights]")
        elif g.shape != r.shape or not np.allclose(g, r, rtol=1e-9, atol=1e-12):
            out.append(f"{k} is wrong for log weights of ±1e4 and ±800: clipping or an overflowing step changes it; "
                       "the log-sum-exp with the maximum taken out is exact at any size [eq:log-mean-exp]")
    return out


# =========================================================================== command line


def main(argv=None):
    """``python -m tinyvae.exercises my_answers.py``: check every exercise defined in that file."""
    import importlib.util  # noqa: PLC0415

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m tinyvae.exercises path/to/my_answers.py")
        return 2
    spec = importlib.util.spec_from_file_location("learner_answers", argv[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    summary = check_all(module)
    print(summary)
    return 0 if summary.passed else 1


if __name__ == "__main__":
    sys.exit(main())
