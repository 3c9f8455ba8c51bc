"""A public, friendly gradient checker: central differences in float64.

``check_gradients(f, params, grads)`` perturbs every entry of every array in ``params`` by ±h,
evaluates the scalar ``f()`` twice [eq:central-difference], and compares the result with the
analytic gradient in ``grads`` using, per parameter, the largest error relative to the largest
gradient magnitude [eq:gradcheck-relative-error]. The report names each parameter, its worst
relative error, and where (the index) it happened, so a wrong backward pass points at itself.

Helpers build ``f`` for the common cases: a layer (``check_layer``), a loss (``check_loss``), the
reparameterization (``check_reparameterize``) and a whole model with ε held fixed
(``check_model``), which makes the VAE a deterministic function of its parameters.
The math is in derivations/gradcheck.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..backend import get_xp, to_float, to_numpy

DEFAULT_H = 1e-5
DEFAULT_TOL = 1e-7


@dataclass
class ParamResult:
    name: str
    shape: tuple
    rel_error: float  # max |a − n| / max(max|a|, max|n|, tiny)  [eq:gradcheck-relative-error]
    where: tuple  # index of the worst entry
    analytic: float  # analytic gradient there
    numeric: float  # central-difference gradient there
    expected_shape: tuple | None = None  # the parameter's shape, when the analytic gradient's differs

    @property
    def wrong_shape(self):
        return self.expected_shape is not None


@dataclass
class GradcheckReport:
    label: str
    tol: float
    results: list = field(default_factory=list)

    @property
    def worst(self):
        return max(self.results, key=lambda r: r.rel_error) if self.results else None

    @property
    def max_error(self):
        return self.worst.rel_error if self.results else 0.0

    @property
    def passed(self):
        return all(r.rel_error <= self.tol for r in self.results)

    def __str__(self):
        lines = [f"gradient check of {self.label}: {'PASS' if self.passed else 'FAIL'} (tolerance {self.tol:.0e})",
                 f"  {'parameter':<22} {'shape':<12} {'rel. error':>10}  {'worst at':<12} {'analytic':>12} {'numeric':>12}"]
        for r in self.results:
            flag = "" if r.rel_error <= self.tol else "  <-- wrong"
            if r.wrong_shape:
                lines.append(f"  {r.name:<22} {str(r.shape):<12} wrong shape: {r.shape} given, {r.expected_shape} "
                             f"expected (a gradient has its parameter's shape){flag}")
                continue
            lines.append(f"  {r.name:<22} {str(r.shape):<12} {r.rel_error:>10.2e}  {str(r.where):<12} "
                         f"{r.analytic:>12.5g} {r.numeric:>12.5g}{flag}")
        return "\n".join(lines)

    def raise_if_failed(self):
        if not self.passed:
            w = self.worst
            if w.wrong_shape:
                raise AssertionError(f"gradient of {w.name} in {self.label} has shape {w.shape}, expected "
                                     f"{w.expected_shape} (its parameter's shape)\n{self}")
            raise AssertionError(
                f"gradient of {w.name} in {self.label} is wrong: relative error {w.rel_error:.2e} > {self.tol:.0e} "
                f"at index {w.where} (analytic {w.analytic:.6g}, numeric {w.numeric:.6g})\n{self}")
        return self


def numerical_gradient(f, x, h=DEFAULT_H):
    """Central differences of the scalar ``f()`` w.r.t. every entry of ``x`` (perturbed in place)."""
    if x.dtype != np.float64:
        raise TypeError(f"gradient checks need float64 arrays, got {x.dtype}: float32 round-off swamps the differences")
    grad = np.zeros(x.shape, dtype=np.float64)
    for idx in np.ndindex(*x.shape):
        old = float(to_float(x[idx]))
        x[idx] = old + h
        f_plus = to_float(f())
        x[idx] = old - h
        f_minus = to_float(f())
        x[idx] = old
        grad[idx] = (f_plus - f_minus) / (2 * h)  # [eq:central-difference]
    return grad


def compare(name, analytic, numeric):
    """One parameter's relative error and where it is worst."""
    a, n = to_numpy(analytic).astype(np.float64), to_numpy(numeric).astype(np.float64)
    if a.shape != n.shape:
        return ParamResult(name, a.shape, float("inf"), (), float("nan"), float("nan"), expected_shape=n.shape)
    if a.size == 0:
        return ParamResult(name, a.shape, 0.0, (), 0.0, 0.0)
    err = np.abs(a - n)
    scale = max(np.abs(a).max(), np.abs(n).max(), 1e-12)
    flat = int(np.argmax(err)) if np.all(np.isfinite(err)) else int(np.argmax(~np.isfinite(err)))
    where = np.unravel_index(flat, a.shape)
    return ParamResult(name, a.shape, float(err.max() / scale) if np.all(np.isfinite(err)) else float("inf"),
                       tuple(int(i) for i in where), float(a[where]), float(n[where]))


def check_gradients(f, params, grads, *, h=DEFAULT_H, tol=DEFAULT_TOL, label="function"):
    """Compare ``grads[name]`` with central differences of ``f()`` w.r.t. ``params[name]``.

    ``f`` is called with no arguments and must read the current values of ``params`` (which are
    perturbed in place and restored). ``grads`` must already hold the analytic gradients.
    """
    missing = set(params) ^ set(grads)
    if missing:
        raise ValueError(f"params and grads must have the same names; unmatched: {sorted(missing)}")
    report = GradcheckReport(label, tol)
    analytic = {k: to_numpy(v).copy() for k, v in grads.items()}  # before f() overwrites anything
    for name, x in params.items():
        report.results.append(compare(name, analytic[name], numerical_gradient(f, x, h)))
    return report


# --------------------------------------------------------------------------- ready-made checks


def check_layer(layer, x, rng, **kw):
    """Check ``layer``'s backward: dL/dx and every parameter gradient, for L = Σ R ⊙ layer(x)."""
    xp = get_xp(x)
    y = layer.forward(x)
    r = xp.asarray(rng.standard_normal(y.shape))  # a random upstream gradient
    dx = layer.backward(r)
    params = dict(layer.params)
    grads = {k: layer.grads[k] for k in params}
    if dx is not None:
        params["x"], grads["x"] = x, dx
    return check_gradients(lambda: (layer.forward(x) * r).sum(), params, grads,
                           label=type(layer).__name__, **kw)


def check_loss(loss_fn, inputs, *, wrt, label=None, **kw):
    """Check a loss that returns ``(value, grad_1, grad_2, ...)`` with gradients for ``wrt`` in order."""
    out = loss_fn(**inputs)
    grads = dict(zip(wrt, out[1:]))
    params = {k: inputs[k] for k in wrt}
    return check_gradients(lambda: loss_fn(**inputs)[0], params, grads,
                           label=label or getattr(loss_fn, "__name__", "loss"), **kw)


def check_reparameterize(reparam, mu, log_var, eps, rng, **kw):
    """Check dL/dμ and dL/dlog σ² of z = μ + exp(½ log σ²) ⊙ ε with ε fixed."""
    xp = get_xp(mu)
    z = reparam.forward(mu, log_var, eps)
    r = xp.asarray(rng.standard_normal(z.shape))
    dmu, dlog_var = reparam.backward(r)
    return check_gradients(lambda: (reparam.forward(mu, log_var, eps) * r).sum(),
                           {"mu": mu, "log_var": log_var}, {"mu": dmu, "log_var": dlog_var},
                           label="Reparameterize", **kw)


def check_model(model, x, eps=None, **kw):
    """Check every parameter gradient of a whole model (VAE with ε held fixed, or AE)."""
    model.forward(x, eps)
    model.backward()
    return check_gradients(lambda: model.forward(x, eps), model.params, model.grads,
                           label=f"{type(model).__name__} ({model.config.describe()})", **kw)


def standard_suite(seed=0):
    """Every layer, every loss, the reparameterization, a VAE of each likelihood and an AE.

    Small float64 shapes keep it to a few seconds; inputs are drawn away from ReLU's kink.
    Returns a list of ``GradcheckReport``. ``tinyvae gradcheck`` prints them.
    """
    from .. import nn as layers  # noqa: PLC0415
    from ..prob import losses  # noqa: PLC0415
    from ..models.vae import Autoencoder, VAE  # noqa: PLC0415
    from ..models.parts.encoders import Reparameterize  # noqa: PLC0415
    from .gradcheck_conditional import conditional_checks  # noqa: PLC0415
    from .gradcheck_flows import flow_checks  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    f64 = np.float64

    def away_from_zero(shape):
        x = rng.uniform(0.1, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
        return x.astype(f64)

    reports = []
    n, d_in, d_out = 4, 5, 3
    for init in ("glorot", "he"):
        dense = layers.Dense(d_in, d_out, init=init, rng=rng, dtype=f64)
        dense.params["b"][...] = rng.standard_normal(d_out)
        rep = check_layer(dense, rng.standard_normal((n, d_in)), rng)
        rep.label = f"Dense({d_in}, {d_out}, init={init})"
        reports.append(rep)
    for layer in (layers.ReLU(), layers.LeakyReLU(0.1), layers.Tanh(), layers.Sigmoid(), layers.Softplus()):
        reports.append(check_layer(layer, away_from_zero((n, d_in)), rng))

    logits = rng.normal(0, 3, (n, 6))
    x_grey = rng.uniform(0, 1, (n, 6))
    reports.append(check_loss(losses.bernoulli_nll, {"logits": logits, "x": x_grey}, wrt=["logits"]))
    reports.append(check_loss(lambda mean, x: losses.gaussian_nll(mean, x, obs_var=0.5),
                              {"mean": rng.standard_normal((n, 6)), "x": rng.standard_normal((n, 6))},
                              wrt=["mean"], label="gaussian_nll (obs_var=0.5)"))
    reports.append(check_loss(losses.gaussian_kl, {"mu": rng.standard_normal((n, 3)),
                                                   "log_var": rng.normal(0, 0.5, (n, 3))},
                              wrt=["mu", "log_var"]))
    reports.append(check_reparameterize(Reparameterize(), rng.standard_normal((n, 3)),
                                        rng.normal(0, 0.5, (n, 3)), rng.standard_normal((n, 3)), rng))

    x01 = rng.uniform(0, 1, (n, 6))
    for likelihood, act in (("bernoulli", "tanh"), ("gaussian", "softplus")):
        vae = VAE(input_dim=6, hidden=(5,), latent=2, activation=act, likelihood=likelihood,
                  beta=0.7, dtype="float64", seed=seed)
        reports.append(check_model(vae, x01, rng.standard_normal((n, 2))))
    reports.extend(iwae_checks(rng, seed, x01))
    reports.extend(two_layer_checks(rng, seed, x01))
    reports.extend(likelihood_checks(rng, seed, x01))
    reports.extend(conditional_checks(rng, seed))  # the conditional VAE and the regressor (gradcheck_conditional.py)
    ae = Autoencoder(input_dim=6, hidden=(5,), latent=2, activation="tanh", dtype="float64", seed=seed)
    reports.append(check_model(ae, x01))
    reports.extend(conv_checks(rng, seed))
    reports.extend(m2_checks(rng, seed))
    reports.extend(flow_checks(seed))  # planar and IAF posteriors (gradcheck_flows.py)
    return reports


def iwae_checks(rng, seed, x01):
    """The IWAE bound from log weights (dloss/dlog w = −w̃/N), and whole VAEs trained on −L_K with
    ε (N, K, Z) held fixed for K = 1, 2, 5 (Bernoulli) and K = 3 (Gaussian) (derivations/iwae.md)."""
    from ..models.parts import iwae  # noqa: PLC0415
    from ..models.vae import VAE  # noqa: PLC0415

    n = x01.shape[0]

    def bound(log_w):
        loss, weights = iwae.bound(log_w)
        return loss, -weights / log_w.shape[0]  # [eq:iwae-grad-logw]

    reports = [check_loss(bound, {"log_w": rng.normal(-80.0, 5.0, (n, 5))}, wrt=["log_w"],
                          label="iwae.bound (−L_K of log weights, K=5)")]
    for k, likelihood, act in ((1, "bernoulli", "tanh"), (2, "bernoulli", "tanh"), (5, "bernoulli", "tanh"),
                               (3, "gaussian", "softplus")):
        vae = VAE(input_dim=6, hidden=(5,), latent=2, activation=act, likelihood=likelihood, objective="iwae",
                  k=k, dtype="float64", seed=seed)
        rep = check_model(vae, x01, rng.standard_normal((n, k, 2)))
        rep.label = f"IWAE K={k} ({act} {likelihood})"
        reports.append(rep)
    return reports


def two_layer_checks(rng, seed, x01):
    """The VAE with two stochastic layers (tanh, Bernoulli) under the ELBO (K = 1, every term sampled) and the
    IWAE bound (K = 3), ε = [ε1 | ε2] held fixed (derivations/two-layer.md)."""
    from ..models.two_layer import TwoLayerVAE  # noqa: PLC0415

    n, reports = x01.shape[0], []
    for objective, k in (("elbo", 1), ("iwae", 3)):
        model = TwoLayerVAE(input_dim=6, hidden=(5,), latent=3, latent2=2, hidden2=(4,), activation="tanh",
                            objective=objective, k=k, dtype="float64", seed=seed)
        eps = rng.standard_normal((n, 5) if objective == "elbo" else (n, k, 5))
        rep = check_model(model, x01, eps)
        rep.label = f"two stochastic layers, {objective.upper()}" + (f" K={k}" if objective == "iwae" else "")
        reports.append(rep)
    return reports


def likelihood_checks(rng, seed, x01):
    """The continuous Bernoulli (its log normalizer at, near and far from l = 0, and its NLL), the
    Gaussian NLL with a learned and with the optimal σ_x², free bits (λ away from the kink), and
    whole models with each (derivations/continuous-bernoulli.md, sigma-vae.md, free-bits.md)."""
    from ..prob import continuous_bernoulli as cb, losses  # noqa: PLC0415
    from ..models.vae import Autoencoder, VAE  # noqa: PLC0415

    n = x01.shape[0]

    def log_c_sum(logits):
        log_c, g = cb.log_normalizer(logits)
        return log_c.sum(), g  # [eq:cb-log-norm-grad]

    near_zero = np.array([[0.0, 1e-3, -1e-3, 0.02], [-0.05, 0.3, -0.7, 0.99]])
    spread = np.array([[0.0, -0.999, 1.001, 2.0], [-3.0, 8.0, -25.0, 0.5]])
    reports = [check_loss(log_c_sum, {"logits": near_zero}, wrt=["logits"],
                          label="continuous Bernoulli log C(l), |l| < 1"),
               check_loss(log_c_sum, {"logits": spread}, wrt=["logits"],
                          label="continuous Bernoulli log C(l), l = 0 to ±25")]
    logits = rng.normal(0, 3, (n, 6))
    logits[0, :2] = 0.0, 1e-4  # at and near the series' centre
    reports.append(check_loss(cb.continuous_bernoulli_nll, {"logits": logits, "x": rng.uniform(0, 1, (n, 6))},
                              wrt=["logits"]))
    reports.append(check_loss(losses.gaussian_nll_learned_var,
                              {"mean": rng.uniform(0, 1, (n, 6)), "x": x01, "log_var": rng.normal(-1.0, 1.0, 1)},
                              wrt=["mean", "log_var"], label="gaussian_nll, learned log σ_x²"))
    reports.append(check_loss(losses.gaussian_nll_optimal_var, {"mean": rng.uniform(0, 1, (n, 6)), "x": x01},
                              wrt=["mean"], label="gaussian_nll, optimal σ_x² (batch MSE)"))
    mu, log_var = rng.standard_normal((n, 4)), rng.normal(0, 0.5, (n, 4))
    kl_sorted = np.sort(losses.free_bits_kl(mu, log_var, 0.0)[3])
    free_bits = 0.5 * (kl_sorted[1] + kl_sorted[2])  # two dimensions below λ, two above, far from the kink
    reports.append(check_loss(lambda mu, log_var: losses.free_bits_kl(mu, log_var, free_bits),
                              {"mu": mu, "log_var": log_var}, wrt=["mu", "log_var"],
                              label=f"free_bits_kl (λ={free_bits:.3f}, 2 of 4 dims free)"))

    eps = rng.standard_normal((n, 2))
    for act, options in (("tanh", {"likelihood": "continuous-bernoulli"}),
                         ("softplus", {"likelihood": "gaussian", "obs_var_mode": "learned", "obs_var": 0.2}),
                         ("softplus", {"likelihood": "gaussian", "obs_var_mode": "optimal"})):
        vae = VAE(input_dim=6, hidden=(5,), latent=2, activation=act, beta=0.7, dtype="float64", seed=seed, **options)
        rep = check_model(vae, x01, eps)
        rep.label = f"VAE ({act} {vae.config.likelihood}" + (
            f", σ_x² {vae.config.obs_var_mode})" if vae.config.obs_var_mode != "fixed" else ")")
        reports.append(rep)
    vae = VAE(input_dim=6, hidden=(5,), latent=3, activation="tanh", dtype="float64", seed=seed)
    mu, log_var = vae.encode(x01)
    kl_sorted = np.sort(losses.free_bits_kl(mu, log_var, 0.0)[3])
    vae = VAE(vae.config, free_bits=0.5 * (kl_sorted[0] + kl_sorted[1]))  # one dimension free, two paying
    rep = check_model(vae, x01, rng.standard_normal((n, 3)))
    rep.label = f"VAE (tanh bernoulli, free bits λ={vae.config.free_bits:.3f})"
    reports.append(rep)
    ae = Autoencoder(input_dim=6, hidden=(5,), latent=2, activation="tanh", likelihood="gaussian",
                     obs_var_mode="learned", dtype="float64", seed=seed)
    rep = check_model(ae, x01)
    rep.label = "Autoencoder (tanh gaussian, σ_x² learned)"
    reports.append(rep)
    return reports



def conv_checks(rng, seed):
    """Conv2d and ConvTranspose2d (stride 2, padding 1, output padding 1), the reshapes between them
    and dense layers, and a conv VAE and conv autoencoder on 8×8 images (derivations/convolution.md)."""
    from .. import nn as layers  # noqa: PLC0415
    from ..models.vae import Autoencoder, VAE  # noqa: PLC0415

    f64 = np.float64
    reports = []
    for layer, shape in ((layers.Conv2d(2, 3, 3, 2, 1, init="uniform", rng=rng, dtype=f64), (2, 2, 5, 5)),
                         (layers.ConvTranspose2d(3, 2, 3, 2, 1, 1, init="uniform", rng=rng, dtype=f64), (2, 3, 3, 3)),
                         (layers.Flatten(), (2, 3, 2, 2)), (layers.Unflatten((3, 2, 2)), (2, 12))):
        rep = check_layer(layer, rng.standard_normal(shape), rng)
        rep.label = {"Conv2d": "Conv2d(2→3, k3, s2, p1)", "ConvTranspose2d": "ConvTranspose2d(3→2, k3, s2, p1, op1)"}.get(
            type(layer).__name__, repr(layer))
        reports.append(rep)
    x01 = rng.uniform(0, 1, (2, 64))
    conv = dict(arch="conv", input_dim=64, image_shape=(8, 8), channels=(2, 3), dense=4, latent=2, dtype="float64",
                seed=seed)
    vae = VAE(activation="tanh", likelihood="bernoulli", beta=0.7, **conv)
    rep = check_model(vae, x01, rng.standard_normal((2, 2)))
    rep.label = "VAE, conv 8x8 c2-c3-d4 (tanh bernoulli)"
    reports.append(rep)
    # tanh, not softplus: the first layer's gradients stay well above the round-off of a loss of 64 pixels
    ae = Autoencoder(activation="tanh", likelihood="gaussian", **{**conv, "dense": 0})
    rep = check_model(ae, x01)
    rep.label = "Autoencoder, conv 8x8 c2-c3 (tanh gaussian)"
    reports.append(rep)
    return reports


def labelled_rows_check(rng, x, labels, classes):
    """The first layer of M2's q(z|x, y) on the rows of a mixed batch (x's product once per example)."""
    from .. import nn as layers  # noqa: PLC0415
    from ..models.parts.labelled_rows import LabelledRowsDense  # noqa: PLC0415
    from ..models.parts.semi_supervised import label_rows  # noqa: PLC0415

    example, label, _ = label_rows(labels, classes)
    layer = LabelledRowsDense(layers.Dense(x.shape[1] + classes, 4, rng=rng, dtype=np.float64), x.shape[1], classes)
    layer.params["b"][...] = rng.standard_normal(4)
    upstream = rng.standard_normal((len(example), 4))
    layer.forward((x, example, label))
    layer.backward(upstream)
    return check_gradients(lambda: (layer.forward((x, example, label)) * upstream).sum(), layer.params, layer.grads,
                           label="M2 first layer on the rows [x | y]")


def m2_checks(rng, seed):
    """The semi-supervised M2 (derivations/semi-supervised.md): its objective from the rows' −L and the
    classifier's logits, piece by piece (the softmax classifier's cross-entropy with α, the sum over labels
    weighted by q(y|x), the entropy alone, a mixed batch), and whole models on a mixed batch, ε held fixed."""
    from ..models.m2 import M2  # noqa: PLC0415
    from ..models.parts.semi_supervised import m2_loss, row_count  # noqa: PLC0415

    c, reports = 3, []

    def objective(labels, alpha, zero_rows=False):
        def loss(neg_l, logits):
            value, d_neg_l, dlogits, _ = m2_loss(0 * neg_l if zero_rows else neg_l, logits, labels, alpha)
            return (value, dlogits) if zero_rows else (value, d_neg_l, dlogits)
        return loss

    cases = (("labelled: −L − α log q(y|x)", np.array([0, 2, 1, 2]), 0.7, False),
             ("unlabelled: Σ_y q(y|x)(−L) − H", np.array([-1, -1, -1]), 0.7, False),
             ("the entropy −H(q(y|x)) alone", np.array([-1, -1, -1]), 0.0, True),
             ("the α term −α log q(y|x) alone", np.array([1, 0, 2]), 2.5, True),
             ("a mixed batch", np.array([1, -1, 0, -1, 2]), 0.7, False))
    for label, labels, alpha, zero_rows in cases:
        inputs = {"neg_l": rng.normal(90.0, 5.0, row_count(labels, c)), "logits": rng.normal(0, 1.5, (len(labels), c))}
        reports.append(check_loss(objective(labels, alpha, zero_rows), inputs,
                                  wrt=["neg_l"] * (not zero_rows) + ["logits"], label=f"M2 loss, {label}"))
    x01, labels = rng.uniform(0, 1, (5, 6)), np.array([1, -1, 0, -1, 2])
    reports.append(labelled_rows_check(rng, x01, labels, c))
    for act in ("tanh", "softplus"):
        model = M2(input_dim=6, classes=c, hidden=(5,), classifier_hidden=(4,), latent=2, activation=act, alpha=0.7,
                   dtype="float64", seed=seed)
        eps = rng.standard_normal((model.rows(labels), 2))
        model.forward(x01, labels, eps)
        model.backward()
        reports.append(check_gradients(lambda: model.forward(x01, labels, eps), model.params, model.grads,
                                       label=f"M2 model, mixed batch ({act})"))
    return reports

