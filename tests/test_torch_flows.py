"""The flow VAE against PyTorch autograd (skipped where torch is not installed).

The same model is built in torch from tinyvae's weights (float64; a torch ``Linear`` stores Wᵀ): the
encoder, the flow's steps written with torch's own functions (planar: û from ``F.softplus``, the
log-determinant log|1 + ûᵀψ| with ψ = (1 − tanh²) w; IAF: the masked products and ``F.logsigmoid``), and
the decoder with ``binary_cross_entropy_with_logits``; the MADE masks are tinyvae's own (tests/test_flows.py checks them
against the autoregressive property). log q_0 is ``Normal(μ, σ).log_prob`` at the sample
z_0, not through ε. The loss (−ELBO with β, or −L_K with ``torch.logsumexp``) is differentiated by
autograd; the loss and every gradient must agree with tinyvae's to 1e-10.
"""

import math

import numpy as np
import pytest

from tinyvae.learn.gradcheck_flows import randomize_flow
from tinyvae.models.config import ModelConfig
from tinyvae.models.flow_vae import FlowVAE

torch = pytest.importorskip("torch")
F = torch.nn.functional
Normal = torch.distributions.Normal

from test_torch_crosscheck import run_mlp, torch_grads, torch_mlp  # noqa: E402  (Linear, "Tanh") pairs; Linear.weight is Wᵀ


def leaf(array):
    return torch.tensor(np.array(array), dtype=torch.float64, requires_grad=True)


def planar(p, z):
    """One planar step in torch: (z', log|det J|)."""
    s = p["w"] @ p["u"]
    u_hat = p["u"] + (F.softplus(s) - 1 - s) * p["w"] / (p["w"] @ p["w"])
    a = z @ p["w"] + p["b"]
    psi = (1 - torch.tanh(a) ** 2)[:, None] * p["w"]
    return z + torch.tanh(a)[:, None] * u_hat, torch.log(torch.abs(1 + psi @ u_hat))


def iaf(p, step, z, h):
    """One IAF step in torch: (z', Σ log σ(s))."""
    m1, m2 = torch.from_numpy(step.m1), torch.from_numpy(step.m2)
    t = torch.tanh(z @ (p["W1"] * m1) + h @ p["V"] + p["b1"])
    m, s = t @ (p["Wm"] * m2) + p["bm"], t @ (p["Ws"] * m2) + p["bs"]
    gate = torch.sigmoid(s)
    return gate * z + (1 - gate) * m, F.logsigmoid(s).sum(1)


def torch_loss(model, x_np, eps_np, objective, beta):
    """(loss, {tinyvae parameter name: gradient}) of ``model`` in torch, for ε (N, K, Z)."""
    cfg = model.config
    z_dim, n, k = cfg.latent, eps_np.shape[0], eps_np.shape[1]
    enc, dec = torch_mlp(model.encoder), torch_mlp(model.decoder)
    steps = [{key: leaf(v) for key, v in step.params.items()} for step in model.flow.layers]
    x, eps = torch.from_numpy(x_np), torch.from_numpy(eps_np)
    out = run_mlp(enc, x, "tanh")
    mu, log_var, h = out[:, :z_dim], out[:, z_dim:2 * z_dim], out[:, 2 * z_dim:]
    q0 = Normal(mu.repeat_interleave(k, 0), torch.exp(0.5 * log_var).repeat_interleave(k, 0))
    z = q0.loc + q0.scale * eps.reshape(n * k, z_dim)
    log_q = q0.log_prob(z).sum(1)
    h_rows = h.repeat_interleave(k, 0)
    for p, step in zip(steps, model.flow.layers):
        z, log_det = planar(p, z) if cfg.flow == "planar" else iaf(p, step, z, h_rows)
        log_q = log_q - log_det
    log_px = -F.binary_cross_entropy_with_logits(run_mlp(dec, z, "tanh"), x.repeat_interleave(k, 0), reduction="none").sum(1)
    log_pz = Normal(torch.zeros_like(z), torch.ones_like(z)).log_prob(z).sum(1)
    if objective == "elbo":
        loss = -(log_px - beta * (log_q - log_pz)).mean()
    else:
        log_w = (log_px + log_pz - log_q).reshape(n, k)
        loss = -(torch.logsumexp(log_w, dim=1) - math.log(k)).mean()
    loss.backward()
    grads = torch_grads({"encoder": enc, "decoder": dec})
    for i, p in enumerate(steps):
        grads.update({f"flow.{i}.{key}": v.grad.numpy() for key, v in p.items()})
    return loss.item(), grads


@pytest.mark.parametrize("flow, objective, k, beta", [("planar", "elbo", 1, 0.6), ("planar", "iwae", 4, 1.0),
                                                      ("iaf", "elbo", 1, 1.0), ("iaf", "iwae", 3, 1.0)])
def test_flow_vae_loss_and_every_gradient_match_torch_autograd(flow, objective, k, beta):
    sizes = {"flow_steps": 3} if flow == "planar" else {"flow_steps": 2, "flow_hidden": 5}
    model = FlowVAE(ModelConfig(input_dim=10, hidden=(8, 7), latent=4, activation="tanh", init="glorot", flow=flow,
                                objective=objective, k=k, beta=beta, dtype="float64", seed=3, **sizes))
    rng = np.random.default_rng(4)
    for name in ("encoder", "decoder"):  # every weight and bias away from its start
        for value in getattr(model, name).params.values():
            value[...] = rng.normal(0, 0.4, value.shape)
    randomize_flow(model.flow, rng)
    x = (rng.uniform(size=(5, 10)) < 0.4).astype(np.float64)
    eps = rng.standard_normal((5, k, 4))
    loss = float(model.forward(x, eps[:, 0, :] if objective == "elbo" else eps))
    model.backward()
    want_loss, want = torch_loss(model, x, eps, objective, beta)
    assert abs(loss - want_loss) <= 1e-10 * max(1.0, abs(want_loss))
    assert set(want) == set(model.grads)
    for name, grad in model.grads.items():
        np.testing.assert_allclose(grad, want[name], rtol=0, atol=1e-10, err_msg=name)
