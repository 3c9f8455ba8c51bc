"""The conditional VAE against PyTorch autograd (skipped where torch is not installed).

The same networks are built in torch from tinyvae's weights (float64), fed [x | c] and [z | c] with the same
x, c and ε, and scored with torch's own functions: ``binary_cross_entropy_with_logits`` (weighted by the
unseen-pixel mask for the quadrant condition) and ``torch.distributions.kl_divergence`` between Normal(μ, σ)
and Normal(0, 1). Loss and every gradient must agree with tinyvae's to 1e-10.
"""

import numpy as np
import pytest

from tinyvae.models.conditional import ConditionalVAE, QuadrantRegressor
from tinyvae.models.parts.conditions import one_hot, quadrant_mask

torch = pytest.importorskip("torch")
F = torch.nn.functional
Normal = torch.distributions.Normal

from test_torch_crosscheck import run_mlp, torch_grads, torch_mlp  # noqa: E402


def torch_cvae_loss(model, x_np, c_np, eps_np, scored_np):
    cfg = model.config
    enc, dec = torch_mlp(model.encoder), torch_mlp(model.decoder)
    x, c, eps = (torch.from_numpy(a) for a in (x_np, c_np, eps_np))
    h = run_mlp(enc, torch.cat([x, c], dim=1), cfg.activation)
    mu, log_var = h[:, :cfg.latent], h[:, cfg.latent:]
    q = Normal(mu, torch.exp(0.5 * log_var))
    z = q.loc + q.scale * eps
    logits = run_mlp(dec, torch.cat([z, c], dim=1), cfg.activation)
    weight = torch.from_numpy(np.broadcast_to(scored_np, x_np.shape).copy())
    recon = F.binary_cross_entropy_with_logits(logits, x, weight=weight, reduction="sum") / x.shape[0]
    kl = torch.distributions.kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum() / x.shape[0]
    loss = recon + cfg.beta * kl
    loss.backward()
    return loss.item(), torch_grads({"encoder": enc, "decoder": dec})


@pytest.mark.parametrize("condition, seed", [("label", 0), ("quadrants", 1)])
def test_cvae_loss_and_every_gradient_match_torch_autograd(condition, seed):
    rng = np.random.default_rng(seed)
    if condition == "label":
        model = ConditionalVAE(input_dim=12, hidden=(9, 7), latent=4, classes=5, activation="tanh", beta=0.8,
                               dtype="float64", seed=seed)
        x, y = rng.uniform(size=(6, 12)), rng.integers(0, 5, 6)
        c, scored, extra = one_hot(y, 5, np.float64, np), np.ones(12), {"labels": y}
    else:
        model = ConditionalVAE(input_dim=16, image_shape=(4, 4), hidden=(9, 7), latent=4, condition="quadrants",
                               quadrants=1, activation="tanh", dtype="float64", seed=seed)
        x, m = rng.uniform(size=(6, 16)), quadrant_mask(1, (4, 4))
        c, scored, extra = np.concatenate([x * m, np.tile(m, (6, 1))], axis=1), 1 - m, {}
    model.theta[...] = rng.normal(0, 0.4, model.theta.shape)  # every weight and bias away from its start
    eps = rng.standard_normal((6, 4))
    loss = float(model.forward(x, eps, **extra))
    model.backward()
    want_loss, want = torch_cvae_loss(model, x, c, eps, scored)
    assert abs(loss - want_loss) <= 1e-10 * max(1.0, abs(want_loss))
    assert set(want) == set(model.grads)
    for name, grad in model.grads.items():
        np.testing.assert_allclose(grad, want[name], rtol=0, atol=1e-10, err_msg=name)


def test_quadrant_regressor_loss_and_gradients_match_torch_autograd():
    rng = np.random.default_rng(2)
    model = QuadrantRegressor(input_dim=16, image_shape=(4, 4), hidden=(9,), quadrants=3, activation="tanh",
                              dtype="float64", seed=2)
    model.theta[...] = rng.normal(0, 0.4, model.theta.shape)
    x, m = rng.uniform(size=(5, 16)), quadrant_mask(3, (4, 4))
    loss = float(model.forward(x))
    model.backward()
    net = torch_mlp(model.decoder)
    c = torch.from_numpy(np.concatenate([x * m, np.tile(m, (5, 1))], axis=1))
    logits = run_mlp(net, c, "tanh")
    weight = torch.from_numpy(np.tile(1 - m, (5, 1)))
    t_loss = F.binary_cross_entropy_with_logits(logits, torch.from_numpy(x), weight=weight, reduction="sum") / 5
    t_loss.backward()
    assert abs(loss - t_loss.item()) <= 1e-10 * max(1.0, abs(t_loss.item()))
    for name, grad in torch_grads({"decoder": net}).items():
        np.testing.assert_allclose(model.grads[name], grad, rtol=0, atol=1e-10, err_msg=name)
