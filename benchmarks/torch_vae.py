"""The equivalent PyTorch model, for comparisons only (PyTorch is never a tinyvae dependency).

Same layers as tinyvae's default VAE (784-400-20, ReLU, μ and log σ² from the hidden layer, a
784-400-20 decoder giving logits), BCE-with-logits and the closed-form KL summed over pixels and
latent dimensions, ``torch.optim.Adam`` with its defaults (or ``fused=True``). Batches are sliced from one float32
tensor (no DataLoader, no per-image transforms), the fastest way to feed PyTorch on a CPU, so the
comparison measures the models and optimizers, not the input pipelines.
"""

from __future__ import annotations

import time

import numpy as np

import torch
from torch import nn
from torch.nn import functional as F


class TorchVAE(nn.Module):
    def __init__(self, d=784, h=400, z=20):
        super().__init__()
        self.enc = nn.Linear(d, h)
        self.mu = nn.Linear(h, z)
        self.log_var = nn.Linear(h, z)
        self.dec1 = nn.Linear(z, h)
        self.dec2 = nn.Linear(h, d)

    def loss(self, x, eps):
        """Summed BCE + KL of the batch (the pytorch/examples convention)."""
        h = F.relu(self.enc(x))
        mu, log_var = self.mu(h), self.log_var(h)
        z = mu + torch.exp(0.5 * log_var) * eps
        logits = self.dec2(F.relu(self.dec1(z)))
        bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl = 0.5 * torch.sum(torch.exp(log_var) + mu * mu - 1.0 - log_var)
        return bce + kl


def to_tensor(images_uint8, device="cpu"):
    return torch.from_numpy(images_uint8.astype(np.float32) / 255.0).to(device)


def train_epoch(model, opt, x_all, batch_size, generator, device="cpu"):
    """One epoch; returns (seconds, mean loss per example). Syncs the GPU before the timer."""
    n = x_all.shape[0]
    z_dim = model.mu.out_features
    total = torch.zeros((), device=device)
    if device != "cpu":
        torch.cuda.synchronize()
    start = time.perf_counter()
    order = torch.randperm(n, generator=generator).to(device)
    for i in range(0, n, batch_size):
        x = x_all[order[i:i + batch_size]]
        eps = torch.randn(x.shape[0], z_dim, device=device)
        opt.zero_grad(set_to_none=True)
        loss = model.loss(x, eps)
        loss.backward()
        opt.step()
        total += loss.detach()
    if device != "cpu":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return seconds, float(total) / n


@torch.no_grad()
def test_loss(model, x_all, seed=0, batch_size=1000):
    """Negative ELBO per example with ε sampled (seeded), as tinyvae reports it."""
    g = torch.Generator(device=x_all.device).manual_seed(seed)
    total = 0.0
    for i in range(0, x_all.shape[0], batch_size):
        x = x_all[i:i + batch_size]
        eps = torch.randn(x.shape[0], model.mu.out_features, generator=g, device=x_all.device)
        total += float(model.loss(x, eps))
    return total / x_all.shape[0]


def main(argv=None):
    """Seconds per epoch at each batch size, as JSON on stdout (run as its own process)."""
    import argparse  # noqa: PLC0415
    import json  # noqa: PLC0415

    from tinyvae.data import load_dataset  # noqa: PLC0415

    p = argparse.ArgumentParser(description="time the equivalent PyTorch VAE")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 512])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--fused", action="store_true",
                   help="torch.optim.Adam(..., fused=True): one kernel for the whole update, PyTorch's fastest Adam")
    args = p.parse_args(argv)
    device = "cuda" if args.device == "gpu" else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        print(json.dumps({}))
        return 0
    x = to_tensor(load_dataset().train_x, device)
    out = {}
    for b in args.batch_sizes:
        torch.manual_seed(0)
        model = TorchVAE().to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, **({"fused": True} if args.fused else {}))
        gen = torch.Generator().manual_seed(0)
        out[b] = [train_epoch(model, opt, x, b, gen, device)[0] for _ in range(args.epochs)]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
