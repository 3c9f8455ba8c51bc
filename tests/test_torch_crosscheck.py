"""Cross-check against PyTorch autograd (skipped where torch is not installed).

The same VAE is built in torch from tinyvae's weights (float64; a torch ``Linear`` stores Wᵀ),
fed the same x and ε, and its loss, written with torch's own library functions
(``binary_cross_entropy_with_logits`` summed / N, ``gaussian_nll_loss`` with ``full=True``), is
differentiated by autograd. Loss and every gradient must agree with tinyvae's to 1e-10.
The optimizers are compared with ``torch.optim`` the same way.
"""

import math

import numpy as np
import pytest

from tinyvae.nn.optim import SGD, Adam
from tinyvae.models.vae import VAE, Autoencoder

torch = pytest.importorskip("torch")
F = torch.nn.functional

ACTIVATIONS = {"relu": torch.relu, "leaky_relu": lambda h: F.leaky_relu(h, 0.01), "tanh": torch.tanh,
               "sigmoid": torch.sigmoid, "softplus": F.softplus}


def torch_mlp(net):
    """``(Linear, activation)`` pairs in torch from a tinyvae Sequential; Linear.weight is Wᵀ."""
    layers = []
    for layer in net.layers:
        if type(layer).__name__ == "Dense":
            linear = torch.nn.Linear(layer.d_in, layer.d_out, dtype=torch.float64)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(layer.params["W"].T.copy()))
                linear.bias.copy_(torch.from_numpy(layer.params["b"].copy()))
            layers.append(linear)
        else:
            layers.append(type(layer).__name__)
    return layers


def run_mlp(layers, h, act):
    for layer in layers:
        h = layer(h) if isinstance(layer, torch.nn.Linear) else ACTIVATIONS[act](h)
    return h


def torch_grads(named_nets):
    """{tinyvae parameter name: gradient, transposed like tinyvae} of every Linear in ``named_nets`` ({name: layers})."""
    grads = {}
    for name, layers in named_nets.items():
        for i, layer in enumerate(layers):
            if isinstance(layer, torch.nn.Linear):
                grads[f"{name}.{i}.W"] = layer.weight.grad.numpy().T
                grads[f"{name}.{i}.b"] = layer.bias.grad.numpy()
    return grads


def torch_reconstruction(out, x, config):
    n = x.shape[0]
    if config.likelihood == "bernoulli":
        return F.binary_cross_entropy_with_logits(out, x, reduction="sum") / n
    var = torch.full_like(out, config.obs_var)
    return F.gaussian_nll_loss(out, x, var, full=True, eps=0.0, reduction="sum") / n


def torch_loss(model, x_np, eps_np=None):
    """(loss, {tinyvae parameter name: torch parameter, transposed like tinyvae}) for ``model``."""
    config = model.config
    enc, dec = torch_mlp(model.encoder), torch_mlp(model.decoder)
    x = torch.from_numpy(x_np)
    h = run_mlp(enc, x, config.activation)
    if config.model == "vae":
        mu, log_var = h[:, :config.latent], h[:, config.latent:]
        z = mu + torch.exp(0.5 * log_var) * torch.from_numpy(eps_np)
        kl = 0.5 * torch.sum(torch.exp(log_var) + mu**2 - 1 - log_var) / x.shape[0]
        loss = torch_reconstruction(run_mlp(dec, z, config.activation), x, config) + config.beta * kl
    else:
        loss = torch_reconstruction(run_mlp(dec, h, config.activation), x, config)
    loss.backward()
    grads = torch_grads({"encoder": enc, "decoder": dec})
    return loss.item(), grads


@pytest.mark.parametrize("likelihood, act, hidden, beta", [
    ("bernoulli", "relu", (7, 5), 1.0),
    ("bernoulli", "tanh", (6,), 0.5),
    ("gaussian", "softplus", (7, 5), 2.0),
    ("gaussian", "leaky_relu", (6,), 1.0),
    ("bernoulli", "sigmoid", (6,), 1.0),
])
def test_vae_loss_and_every_gradient_match_pytorch_autograd(likelihood, act, hidden, beta):
    model = VAE(input_dim=8, hidden=hidden, latent=3, activation=act, likelihood=likelihood, beta=beta,
                obs_var=0.6, dtype="float64", seed=4)
    rng = np.random.default_rng(0)
    x, eps = rng.uniform(0, 1, (5, 8)), rng.standard_normal((5, 3))
    loss = float(model.forward(x, eps))
    model.backward()
    expected_loss, expected = torch_loss(model, x, eps)
    assert loss == pytest.approx(expected_loss, rel=1e-10, abs=1e-10)
    assert set(expected) == set(model.grads)
    for name, g in model.grads.items():
        np.testing.assert_allclose(g, expected[name], rtol=1e-10, atol=1e-10, err_msg=name)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_autoencoder_loss_and_every_gradient_match_pytorch_autograd(likelihood):
    model = Autoencoder(input_dim=8, hidden=(6,), latent=3, activation="tanh", likelihood=likelihood,
                        dtype="float64", seed=5)
    x = np.random.default_rng(1).uniform(0, 1, (5, 8))
    loss = float(model.forward(x))
    model.backward()
    expected_loss, expected = torch_loss(model, x)
    assert loss == pytest.approx(expected_loss, rel=1e-10, abs=1e-10)
    for name, g in model.grads.items():
        np.testing.assert_allclose(g, expected[name], rtol=1e-10, atol=1e-10, err_msg=name)


def test_gaussian_reconstruction_matches_torch_gaussian_nll_loss_with_the_constant():
    from tinyvae.prob.losses import gaussian_nll

    rng = np.random.default_rng(2)
    mean, x = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    var = torch.full((4, 6), 2.5, dtype=torch.float64)
    expected = F.gaussian_nll_loss(torch.from_numpy(mean), torch.from_numpy(x), var, full=True, eps=0.0,
                                   reduction="sum").item() / 4
    assert float(gaussian_nll(mean, x, 2.5)[0]) == pytest.approx(expected, rel=1e-13)
    assert expected == pytest.approx(0.5 * ((mean - x) ** 2).sum() / 2.5 / 4 + 3 * math.log(2 * math.pi * 2.5),
                                     rel=1e-13)


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_optimizers_match_torch_optim_step_for_step(name):
    rng = np.random.default_rng(3)
    theta, a = rng.standard_normal(6), rng.uniform(0.5, 2.0, 6)
    grad = np.zeros(6)
    ours = Adam([theta], [grad], lr=0.05) if name == "adam" else SGD([theta], [grad], lr=0.05, momentum=0.9)
    p = torch.nn.Parameter(torch.from_numpy(theta.copy()))
    theirs = torch.optim.Adam([p], lr=0.05) if name == "adam" else torch.optim.SGD([p], lr=0.05, momentum=0.9)
    for _ in range(15):
        grad[...] = a * theta**3 - 1.0  # gradients that change with θ
        ours.step()
        theirs.zero_grad()
        p.grad = torch.from_numpy(a) * p.detach() ** 3 - 1.0
        theirs.step()
    np.testing.assert_allclose(theta, p.detach().numpy(), rtol=1e-12, atol=1e-14)


def torch_iwae_loss(model, x_np, eps_np):
    """−L_K in torch: log q written with z, μ and log σ² (not with ε), so autograd takes both of its paths."""
    config = model.config
    enc, dec = torch_mlp(model.encoder), torch_mlp(model.decoder)
    x, eps = torch.from_numpy(x_np), torch.from_numpy(eps_np)  # (N, D), (N, K, Z)
    h = run_mlp(enc, x, config.activation)
    mu, log_var = h[:, None, :config.latent], h[:, None, config.latent:]
    z = mu + torch.exp(0.5 * log_var) * eps  # (N, K, Z)
    out = run_mlp(dec, z, config.activation)  # (N, K, D)
    target = x[:, None, :].expand_as(out)
    if config.likelihood == "bernoulli":
        log_px = -F.binary_cross_entropy_with_logits(out, target, reduction="none").sum(-1)
    else:
        log_px = -F.gaussian_nll_loss(out, target, torch.full_like(out, config.obs_var), full=True, eps=0.0,
                                      reduction="none").sum(-1)
    log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    log_qz = torch.distributions.Normal(mu, torch.exp(0.5 * log_var)).log_prob(z).sum(-1)
    log_w = log_px + log_pz - log_qz  # (N, K)
    loss = -(torch.logsumexp(log_w, dim=1) - math.log(eps_np.shape[1])).mean()
    loss.backward()
    grads = torch_grads({"encoder": enc, "decoder": dec})
    return loss.item(), grads


@pytest.mark.parametrize("k", [1, 2, 5])
@pytest.mark.parametrize("likelihood, act", [("bernoulli", "tanh"), ("gaussian", "relu")])
def test_iwae_loss_and_every_gradient_match_pytorch_autograd(k, likelihood, act):
    model = VAE(input_dim=8, hidden=(7, 5), latent=3, activation=act, likelihood=likelihood, obs_var=0.6,
                objective="iwae", k=k, dtype="float64", seed=6)
    rng = np.random.default_rng(k)
    x, eps = rng.uniform(0, 1, (5, 8)), rng.standard_normal((5, k, 3))
    loss = float(model.forward(x, eps))
    model.backward()
    expected_loss, expected = torch_iwae_loss(model, x, eps)
    assert loss == pytest.approx(expected_loss, rel=1e-10, abs=1e-10)
    assert set(expected) == set(model.grads)
    for name, g in model.grads.items():
        np.testing.assert_allclose(g, expected[name], rtol=1e-10, atol=1e-10, err_msg=name)
