"""Gradient checks of the flow posteriors (derivations/flows.md), part of ``tinyvae gradcheck``.

Each step is checked as a function of its input z, its context and its parameters through both of its
outputs: L = Σ R ⊙ z' + Σ r · log|det J| with random R and r, so the gradient through the
log-determinant is checked as well as the one through z'. Then whole VAEs with a planar flow and with
an IAF, under the ELBO (β = 0.7: the sampled KL term weighted) and the IWAE bound (K = 3), ε held fixed.
The parameters are drawn away from their initialization: planar steps with wᵀu < −1, where the
constraint wᵀû ≥ −1 moves u; IAF heads of unit scale, so that m and s depend on z clearly, and the s bias near its start.
"""

from __future__ import annotations

import numpy as np

from ..models.parts.iaf import S_BIAS
from .gradcheck import check_gradients, check_model


def randomize_flow(flow, rng):
    """Draw every step's parameters away from their initialization (module docstring); masks kept."""
    for i, step in enumerate(flow.layers):
        p = step.params
        if "u" in p:
            p["w"][...] = rng.normal(0.0, 1.0, p["w"].shape)
            p["u"][...] = rng.normal(0.0, 1.0, p["u"].shape)
            if i % 2 == 0:  # make wᵀu < −1: the constraint is active and û ≠ u
                p["u"][...] -= (2.0 + p["w"] @ p["u"]) * p["w"] / (p["w"] @ p["w"])
            p["b"][...] = rng.normal(0.0, 0.5, 1)
        else:
            for key, mask in (("W1", step.m1), ("Wm", step.m2), ("Ws", step.m2)):
                p[key][...] = rng.normal(0.0, 1.0, p[key].shape) * mask
            for key in ("V", "b1", "bm"):
                p[key][...] = rng.normal(0.0, 0.5, p[key].shape)
            p["bs"][...] = rng.normal(S_BIAS, 0.5, p["bs"].shape)  # σ(s) mostly near 1, as it starts
    return flow


def check_flow_step(step, z, context, rng, **kw):
    """Check a step's backward: dL/dz, dL/dcontext and every parameter, for L = Σ R ⊙ z' + Σ r · log|det J|."""
    z_next, log_det = step.forward(z, context)
    big_r, r = rng.standard_normal(z_next.shape), rng.standard_normal(log_det.shape)
    dz, dcontext = step.backward(big_r, r)

    def loss():
        out, ld = step.forward(z, context)
        return (out * big_r).sum() + (ld * r).sum()

    params, grads = dict(step.params), dict(step.grads)
    params["z"], grads["z"] = z, dz
    if dcontext is not None:
        params["context"], grads["context"] = context, dcontext
    return check_gradients(loss, params, grads, label=repr(step), **kw)


def flow_checks(seed=0):
    """A planar step, an IAF step, and whole VAEs with each flow under the ELBO and the IWAE bound."""
    from ..models.config import ModelConfig  # noqa: PLC0415
    from ..models.flow_vae import FlowVAE  # noqa: PLC0415
    from ..models.parts.flows import Flow, PlanarStep  # noqa: PLC0415
    from ..models.parts.iaf import IAFStep, orderings  # noqa: PLC0415

    rng = np.random.default_rng([seed, 25])  # its own stream: the checks before it draw what they drew
    n, z_dim, hidden = 4, 3, 5
    z, context = rng.standard_normal((n, z_dim)), rng.standard_normal((n, hidden))
    planar = randomize_flow(Flow([PlanarStep(z_dim, rng=rng, dtype=np.float64)]), rng).layers[0]
    reports = [check_flow_step(planar, z, None, rng)]
    reports[-1].label = "PlanarStep (wᵀu < −1: û moved)"
    iaf = randomize_flow(Flow([IAFStep(orderings(z_dim, 1)[0], hidden, hidden, rng=rng, dtype=np.float64)]),
                         rng).layers[0]
    reports.append(check_flow_step(iaf, z, context, rng))
    reports[-1].label = "IAFStep (Z=3, H=5, context 5)"

    x01 = rng.uniform(0, 1, (n, 6))
    base = dict(input_dim=6, hidden=(5,), latent=z_dim, activation="tanh", dtype="float64", seed=seed)
    for flow, size in (("planar", {"flow_steps": 3}), ("iaf", {"flow_steps": 2, "flow_hidden": 4})):
        for objective, k, beta in (("elbo", 1, 0.7), ("iwae", 3, 1.0)):
            model = FlowVAE(ModelConfig(**base, **size, flow=flow, objective=objective, k=k, beta=beta))
            randomize_flow(model.flow, rng)
            eps = rng.standard_normal((n, z_dim) if objective == "elbo" else (n, k, z_dim))
            rep = check_model(model, x01, eps)
            rep.label = f"{flow} flow VAE, " + (f"ELBO β={beta:g}" if objective == "elbo" else f"IWAE K={k}")
            reports.append(rep)
    model = FlowVAE(ModelConfig(**{**base, "activation": "softplus"}, likelihood="gaussian", flow="planar",
                                flow_steps=2))
    randomize_flow(model.flow, rng)
    rep = check_model(model, x01, rng.standard_normal((n, z_dim)))
    rep.label = "planar flow VAE, ELBO (softplus gaussian)"
    reports.append(rep)
    return reports
