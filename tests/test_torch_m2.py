"""The semi-supervised M2 against PyTorch autograd (skipped where torch is not installed).

The same three networks are built in torch from tinyvae's weights (float64), fed the same mixed batch
and the same ε, and the loss is written with torch's own pieces: ``log_softmax`` for q(y|x),
``binary_cross_entropy_with_logits`` for p(x|y, z), ``torch.distributions.kl_divergence`` between
Normal(μ, σ) and Normal(0, 1), ``F.one_hot`` for the labels. Autograd differentiates everything,
q(y|x) in the unlabelled bound included; loss and every gradient must agree with tinyvae's to 1e-10.
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from tinyvae.models.m2 import M2

torch = pytest.importorskip("torch")
F = torch.nn.functional
Normal = torch.distributions.Normal

from test_torch_crosscheck import run_mlp, torch_grads, torch_mlp  # noqa: E402


def torch_encoder(net):
    """The encoder in torch as a plain MLP on the concatenated rows [x | onehot(y)]: its first layer, which tinyvae
    computes once per example (LabelledRowsDense), is an ordinary Linear of the same W (D + C, H) here."""
    first = net.layers[0]
    linear = torch.nn.Linear(first.d + first.classes, first.d_out, dtype=torch.float64)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(first.params["W"].T.copy()))
        linear.bias.copy_(torch.from_numpy(first.params["b"].copy()))
    return [linear] + torch_mlp(SimpleNamespace(layers=net.layers[1:]))


def torch_m2_loss(model, x_np, labels_np, eps_np, alpha, act):
    """(loss, {tinyvae parameter name: gradient}) of ``model`` in torch."""
    cfg, c = model.config, model.config.classes
    nets = {"classifier": torch_mlp(model.classifier.net), "encoder": torch_encoder(model.encoder),
            "decoder": torch_mlp(model.decoder)}
    x, labels, eps = torch.from_numpy(x_np), torch.from_numpy(labels_np), torch.from_numpy(eps_np)
    log_q = F.log_softmax(run_mlp(nets["classifier"], x, act), dim=1)  # (N, C)
    lab, unl = torch.nonzero(labels >= 0)[:, 0], torch.nonzero(labels < 0)[:, 0]
    rows_x = torch.cat([x[lab], x[unl].repeat_interleave(c, 0)])  # the order of parts.semi_supervised.label_rows
    rows_y = torch.cat([labels[lab], torch.arange(c).repeat(len(unl))])
    onehot = F.one_hot(rows_y, c).to(torch.float64)
    h = run_mlp(nets["encoder"], torch.cat([rows_x, onehot], 1), act)
    q_z = Normal(h[:, :cfg.latent], torch.exp(0.5 * h[:, cfg.latent:]))
    z = q_z.loc + q_z.scale * eps
    logits = run_mlp(nets["decoder"], torch.cat([z, onehot], 1), act)
    kl = torch.distributions.kl_divergence(q_z, Normal(torch.zeros_like(z), torch.ones_like(z))).sum(1)
    neg_l = F.binary_cross_entropy_with_logits(logits, rows_x, reduction="none").sum(1) + kl + math.log(c)
    n_lab = len(lab)
    labelled = neg_l[:n_lab].sum() - alpha * log_q[lab, labels[lab]].sum()
    q_unl = log_q[unl].exp()
    unlabelled = (q_unl * (neg_l[n_lab:].reshape(-1, c) + log_q[unl])).sum()
    loss = (labelled + unlabelled) / len(labels)
    loss.backward()
    grads = torch_grads(nets)
    return loss.item(), grads


@pytest.mark.parametrize("act, alpha, seed", [("tanh", 0.7, 0), ("softplus", 30.0, 1), ("relu", 0.0, 2)])
def test_m2_loss_and_every_gradient_match_torch_autograd_on_a_mixed_batch(act, alpha, seed):
    model = M2(input_dim=10, classes=4, hidden=(8, 6), classifier_hidden=(7,), latent=3, activation=act,
               init="glorot", dtype="float64", seed=seed)
    rng = np.random.default_rng(seed)
    for v in model.params.values():
        v[...] = rng.normal(0, 0.4, v.shape)  # every weight and bias away from its start
    x = (rng.uniform(size=(6, 10)) < 0.4).astype(np.float64)
    labels = np.array([2, -1, 0, -1, -1, 3])
    eps = rng.standard_normal((model.rows(labels), 3))
    loss = float(model.forward(x, labels, eps, alpha=alpha))
    model.backward()
    want_loss, want = torch_m2_loss(model, x, labels, eps, alpha, act)
    assert abs(loss - want_loss) <= 1e-10 * max(1.0, abs(want_loss))
    assert set(want) == set(model.grads)
    for name, grad in model.grads.items():
        np.testing.assert_allclose(grad, want[name], rtol=0, atol=1e-10, err_msg=name)
