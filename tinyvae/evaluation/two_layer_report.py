"""What ``tinyvae evaluate`` reports per stochastic layer of a two-layer VAE: active units, as in
Burda, Grosse & Salakhutdinov (2015), the experiments section (sec. 5) and Table 1.

A unit u of a layer is active when A_u = Cov_x(E_{u ~ q(u|x)}[u]) exceeds 0.01 [eq:hvae-active-units].
For z1, E_q[z1|x] = μ1(x). For z2, E_q[z2|x] = E_{z1 ~ q(z1|x)}[μ2(z1)]: an average over z1,
estimated here with ``SAMPLES`` seeded draws of z1 per example (the paper's code takes one draw, so
its estimate of Cov_x adds the spread of μ2(z1) over z1, divided by 1 instead of by ``SAMPLES``).
"""

from __future__ import annotations

import numpy as np

from ..backend import default_rng, to_numpy
from ..models.parts import iwae
from .evaluate import ACTIVE_THRESHOLD, _float_batches

SAMPLES = 50  # draws of z1 per example for E_q[z2|x]
BATCH = 500  # examples per pass: 500 · 50 rows through q(z2|z1)


def layer_means(model, x, *, samples=SAMPLES, seed=0, batch_size=BATCH):
    """(E_q[z1|x] (N, Z1), E_q[z2|x] (N, Z2)) on the host in float64, for images ``x`` (N, D) (uint8 or floats)."""
    noise = default_rng(seed, model.xp)
    lower, upper = [], []
    for xb in _float_batches(model, x, batch_size):
        mu1, log_var1 = model.encode(xb)  # (B, Z1) each
        eps = noise.standard_normal((xb.shape[0], samples, model.config.latent), dtype=model.dtype)
        z1, _ = iwae.sample(mu1, log_var1, eps)  # (B, S, Z1)  [eq:reparam]
        mu2, _ = model.encode_upper(z1.reshape(-1, model.config.latent))  # (B·S, Z2)
        lower.append(to_numpy(mu1).astype(np.float64))
        upper.append(to_numpy(mu2).astype(np.float64).reshape(xb.shape[0], samples, -1).mean(axis=1))
    return np.concatenate(lower), np.concatenate(upper)


def layer_activity(model, x, *, seed=0, threshold=ACTIVE_THRESHOLD):
    """{"layers": [{"name", "units", "active_units", "mean_variances"}, ...], "active_units": [per layer],
    "latent": [Z1, Z2], "kl_per_dim": None} for the images ``x``."""
    layers = []
    for name, means in zip(("z1", "z2"), layer_means(model, x, seed=seed)):
        variances = means.var(axis=0)  # Cov_x(E_q[u|x]), each unit's diagonal entry  [eq:hvae-active-units]
        layers.append({"name": name, "units": int(variances.size), "active_units": int((variances > threshold).sum()),
                       "mean_variances": variances.tolist()})
    return {"layers": layers, "active_units": [layer["active_units"] for layer in layers],
            "latent": [layer["units"] for layer in layers], "kl_per_dim": None}


def format_layers(result):
    """Lines of the report: active units of each layer. Each unit's variance (150 of them in the paper's
    model) is left to ``--json``, under layers[i].mean_variances."""
    lines = [f"active units   {layer['name']}: {layer['active_units']} / {layer['units']}" for layer in result["layers"]]
    lines[0] += f"  (variance over the data of E_q[unit | x] > {result['threshold']:g}; E_q[z2|x] averages " \
                f"{SAMPLES} draws of z1)"
    lines.append("               each unit's variance: --json prints it (layers[i].mean_variances)")
    return lines
