"""Cross-check of the convolution layers and the conv VAE against PyTorch autograd (skipped without torch).

``torch.nn.functional.conv2d`` and ``conv_transpose2d`` take tinyvae's kernels as they are (same NCHW
layout, same weight shapes); outputs and every gradient must agree to 1e-10 in float64. The whole
conv VAE is rebuilt in torch from tinyvae's weights, fed the same x and ε, and its loss (summed BCE
/ N + KL, written with torch's library functions) differentiated by autograd.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyvae.nn import Conv2d, ConvTranspose2d
from tinyvae.models.vae import VAE

torch = pytest.importorskip("torch")
F = torch.nn.functional
TOL = 1e-10


def close(ours, theirs, what):
    theirs = theirs.detach().numpy()
    scale = max(1.0, np.abs(theirs).max())
    assert np.abs(ours - theirs).max() <= TOL * scale, f"{what}: max difference {np.abs(ours - theirs).max():.3e}"


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), c_in=st.integers(1, 4), c_out=st.integers(1, 4), k=st.integers(1, 4),
       s=st.integers(1, 3), p=st.integers(0, 2), op=st.integers(0, 2), size=st.integers(0, 5),
       transposed=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_conv_layers_match_torch_outputs_and_every_gradient(n, c_in, c_out, k, s, p, op, size, transposed, seed):
    rng = np.random.default_rng(seed)
    if transposed:
        op = op % s
        h = max(1, -(-(2 * p - k - op + 1) // s) + 1) + size
        layer = ConvTranspose2d(c_in, c_out, k, s, p, op, init="uniform", rng=rng, dtype=np.float64)
    else:
        h = max(1, k - 2 * p) + size
        layer = Conv2d(c_in, c_out, k, s, p, init="uniform", rng=rng, dtype=np.float64)
    x = rng.standard_normal((n, c_in, h, h + 1))
    y = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(layer.params["W"], requires_grad=True)
    bt = torch.tensor(layer.params["b"], requires_grad=True)
    if transposed:
        yt = F.conv_transpose2d(xt, wt, bt, stride=s, padding=p, output_padding=op)
    else:
        yt = F.conv2d(xt, wt, bt, stride=s, padding=p)
    yt.backward(torch.tensor(dy))
    close(y, yt, "output")
    close(dx, xt.grad, "dx")
    close(layer.grads["W"], wt.grad, "dW")
    close(layer.grads["b"], bt.grad, "db")


def torch_net(net, h):
    """Run tinyvae Sequential ``net``'s layers in torch on ``h``; returns (output, {name: torch parameter})."""
    params = {}
    for i, layer in enumerate(net.layers):
        kind = type(layer).__name__
        tp = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in layer.params.items()}
        params.update({f"{i}.{k}": v for k, v in tp.items()})
        if kind == "Dense":
            h = h @ tp["W"] + tp["b"]
        elif kind == "Conv2d":
            h = F.conv2d(h, tp["W"], tp["b"], stride=layer.stride, padding=layer.padding)
        elif kind == "ConvTranspose2d":
            h = F.conv_transpose2d(h, tp["W"], tp["b"], stride=layer.stride, padding=layer.padding,
                                   output_padding=layer.output_padding)
        elif kind == "ReLU":
            h = torch.relu(h)
        elif kind == "Flatten":
            h = torch.flatten(h, 1)
        elif kind == "Unflatten":
            h = h.reshape(h.shape[0], *layer.shape)
        else:
            raise AssertionError(f"no torch counterpart for {kind}")
    return h, params


def test_the_whole_conv_vae_matches_torch_loss_and_every_gradient():
    model = VAE(arch="conv", latent=2, channels=(4, 8), dense=16, dtype="float64", init="uniform", seed=5)
    assert [type(layer) for layer in model.decoder.layers].count(ConvTranspose2d) == 3
    rng = np.random.default_rng(0)
    x, eps = rng.uniform(0, 1, (5, 784)), rng.standard_normal((5, 2))
    loss = float(model.forward(x, eps))
    model.backward()

    h, enc = torch_net(model.encoder, torch.tensor(x))
    mu, log_var = h[:, :2], h[:, 2:]
    z = mu + torch.exp(0.5 * log_var) * torch.tensor(eps)
    logits, dec = torch_net(model.decoder, z)
    recon = F.binary_cross_entropy_with_logits(logits, torch.tensor(x), reduction="sum") / 5
    kl = -0.5 * torch.sum(1 + log_var - mu ** 2 - torch.exp(log_var)) / 5
    total = recon + kl
    total.backward()
    assert abs(loss - float(total.detach())) <= TOL * abs(loss)
    theirs = {**{f"encoder.{k}": v for k, v in enc.items()}, **{f"decoder.{k}": v for k, v in dec.items()}}
    assert set(theirs) == set(model.grads)
    for name, grad in model.grads.items():
        close(grad, theirs[name].grad, name)


def test_torch_takes_conv_transpose_fan_in_from_the_output_channels_unlike_tinyvae_uniform():
    """derivations/convolution.md: the "uniform" rule is PyTorch's default for Conv2d, not ConvTranspose2d."""
    torch.manual_seed(0)
    theirs_t = torch.nn.ConvTranspose2d(32, 1, 3).weight.detach().numpy()  # (C_in, C_out, k, k) = (32, 1, 3, 3)
    theirs_c = torch.nn.Conv2d(1, 32, 3).weight.detach().numpy()  # (C_out, C_in, k, k) = (32, 1, 3, 3)
    ours_t = ConvTranspose2d(32, 1, 3, init="uniform", rng=np.random.default_rng(0)).params["W"]
    ours_c = Conv2d(1, 32, 3, init="uniform", rng=np.random.default_rng(0)).params["W"]
    assert theirs_t.shape == ours_t.shape == (32, 1, 3, 3) and theirs_c.shape == ours_c.shape
    # PyTorch: fan-in from dim 1 × k²: 1·9 for the transposed layer (bound 1/3), 1·9 for the convolution too.
    assert 0.9 / 3 < np.abs(theirs_t).max() <= 1 / 3 + 1e-7
    assert 0.9 / 3 < np.abs(theirs_c).max() <= 1 / 3 + 1e-7
    # tinyvae: fan-in C_in·k² in both: 288 for the transposed layer, 9 for the convolution (PyTorch's).
    assert np.abs(ours_t).max() <= 1 / np.sqrt(288) + 1e-7
    assert 0.9 / 3 < np.abs(ours_c).max() <= 1 / 3 + 1e-7
