"""The two-layer VAE against PyTorch autograd (skipped where torch is not installed).

The same model is built in torch from tinyvae's weights (float64; a torch ``Linear`` stores Wᵀ), fed
the same x and ε = [ε1 | ε2], and its log weight is written with torch's own library functions:
``torch.distributions.Normal(μ, σ).log_prob`` for the four Gaussian densities (evaluated at the
samples z1 and z2, not through ε) and ``binary_cross_entropy_with_logits`` for the decoder, σ = exp(a)
as the paper's code has it. The loss (−mean log w for the ELBO, −mean of ``torch.logsumexp`` − log K
for IWAE) is differentiated by autograd; loss and every gradient must agree with tinyvae's to 1e-10.
"""

import math

import numpy as np
import pytest

from tinyvae.models.config import ModelConfig
from tinyvae.models.two_layer import TwoLayerVAE

torch = pytest.importorskip("torch")
F = torch.nn.functional
Normal = torch.distributions.Normal

from test_torch_crosscheck import run_mlp, torch_grads, torch_mlp as torch_network  # noqa: E402  (Linear, "Tanh") pairs; Linear.weight is Wᵀ


def gaussian(layers, h, units):
    """Normal(μ, σ = exp(a)) from the head [μ | a], as in the paper's code."""
    out = run_mlp(layers, h, "tanh")
    return Normal(out[:, :units], torch.exp(out[:, units:]))


def torch_loss(model, x_np, eps_np):
    """(loss, {tinyvae parameter name: gradient}) of ``model`` in torch, for ε (N, K, Z1 + Z2)."""
    cfg = model.config
    nets = {"encoder.q_z1": model.q_z1.net, "encoder.q_z2": model.q_z2.net, "decoder.p_z1": model.p_z1.net,
            "decoder.p_x": model.p_x}
    torch_nets = {name: torch_network(net) for name, net in nets.items()}
    n, k, _ = eps_np.shape
    x = torch.from_numpy(x_np)
    eps = torch.from_numpy(eps_np)
    q1 = gaussian(torch_nets["encoder.q_z1"], x, cfg.latent)
    z1 = (q1.loc[:, None, :] + q1.scale[:, None, :] * eps[:, :, :cfg.latent]).reshape(n * k, cfg.latent)
    q1_rows = Normal(q1.loc.repeat_interleave(k, 0), q1.scale.repeat_interleave(k, 0))
    q2 = gaussian(torch_nets["encoder.q_z2"], z1, cfg.latent2)
    z2 = q2.loc + q2.scale * eps[:, :, cfg.latent:].reshape(n * k, cfg.latent2)
    p1 = gaussian(torch_nets["decoder.p_z1"], z2, cfg.latent)
    logits = run_mlp(torch_nets["decoder.p_x"], z1, "tanh")
    log_px = -F.binary_cross_entropy_with_logits(logits, x.repeat_interleave(k, 0), reduction="none").sum(1)
    prior = Normal(torch.zeros_like(z2), torch.ones_like(z2))
    log_w = (log_px + p1.log_prob(z1).sum(1) + prior.log_prob(z2).sum(1)
             - q1_rows.log_prob(z1).sum(1) - q2.log_prob(z2).sum(1)).reshape(n, k)
    loss = -(torch.logsumexp(log_w, dim=1) - math.log(k)).mean()
    loss.backward()
    grads = torch_grads(torch_nets)
    return loss.item(), grads


@pytest.mark.parametrize("objective, k, seed", [("elbo", 1, 0), ("iwae", 1, 1), ("iwae", 5, 2)])
def test_two_layer_loss_and_every_gradient_match_torch_autograd(objective, k, seed):
    model = TwoLayerVAE(ModelConfig(stochastic_layers=2, input_dim=12, hidden=(9, 7), latent=4, latent2=3,
                                    hidden2=(6, 5), activation="tanh", init="glorot", objective=objective, k=k,
                                    dtype="float64", seed=seed))
    rng = np.random.default_rng(seed)
    model.theta[...] = rng.normal(0, 0.4, model.theta.shape)  # every weight and bias away from its start
    x = (rng.uniform(size=(6, 12)) < 0.4).astype(np.float64)
    eps = rng.standard_normal((6, k, 7))
    loss = float(model.forward(x, eps[:, 0, :] if objective == "elbo" else eps))
    model.backward()
    want_loss, want = torch_loss(model, x, eps)
    assert abs(loss - want_loss) <= 1e-10 * max(1.0, abs(want_loss))
    assert set(want) == set(model.grads)
    for name, grad in model.grads.items():
        np.testing.assert_allclose(grad, want[name], rtol=0, atol=1e-10, err_msg=name)
