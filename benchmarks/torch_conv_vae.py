"""The PyTorch equivalent of tinyvae's conv VAE, for timing comparisons only (PyTorch is never a
tinyvae dependency).

The same layers as ``tinyvae.VAE(arch="conv")`` (the Keras example's): Conv2d(1→32, 3, s2, p1) ReLU,
Conv2d(32→64, 3, s2, p1) ReLU, Flatten, Linear(3136→16) ReLU, Linear(16→2Z); decoder Linear(Z→3136)
ReLU, (64, 7, 7), ConvTranspose2d(64→64, 3, s2, p1, op1) ReLU, ConvTranspose2d(64→32, 3, s2, p1, op1)
ReLU, ConvTranspose2d(32→1, 3, s1, p1), logits. BCE-with-logits and the closed-form KL summed over
pixels and latent dimensions, ``torch.optim.Adam`` at 1e-3. Batches are sliced from one preloaded
float32 tensor (no DataLoader), so the comparison measures the models and optimizers.

Run as its own process (PyTorch's OpenMP threads keep spinning after each parallel region and would
slow whatever runs next in the same process); prints its seconds as JSON on its last line.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class TorchConvVAE(nn.Module):
    def __init__(self, z=2, channels=(32, 64), dense=16):
        super().__init__()
        c1, c2 = channels
        self.z = z
        self.encoder = nn.Sequential(
            nn.Unflatten(1, (1, 28, 28)),
            nn.Conv2d(1, c1, 3, 2, 1), nn.ReLU(), nn.Conv2d(c1, c2, 3, 2, 1), nn.ReLU(), nn.Flatten(),
            nn.Linear(c2 * 49, dense), nn.ReLU(), nn.Linear(dense, 2 * z))
        self.decoder = nn.Sequential(
            nn.Linear(z, c2 * 49), nn.ReLU(), nn.Unflatten(1, (c2, 7, 7)),
            nn.ConvTranspose2d(c2, c2, 3, 2, 1, 1), nn.ReLU(), nn.ConvTranspose2d(c2, c1, 3, 2, 1, 1), nn.ReLU(),
            nn.ConvTranspose2d(c1, 1, 3, 1, 1), nn.Flatten())

    def loss(self, x, eps):
        """Summed BCE + KL of the batch (x flat, (N, 784))."""
        h = self.encoder(x)
        mu, log_var = h[:, :self.z], h[:, self.z:]
        logits = self.decoder(mu + torch.exp(0.5 * log_var) * eps)
        bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl = 0.5 * torch.sum(torch.exp(log_var) + mu * mu - 1.0 - log_var)
        return bce + kl


def train_steps(model, opt, x_all, batch_size, generator):
    """One pass over ``x_all`` in shuffled batches; returns (seconds, mean loss per example)."""
    n, device = x_all.shape[0], x_all.device
    total = torch.zeros((), device=device)
    _synchronize(device)
    start = time.perf_counter()
    order = torch.randperm(n, generator=generator).to(device)
    for i in range(0, n, batch_size):
        x = x_all[order[i:i + batch_size]]
        eps = torch.randn(x.shape[0], model.z, device=device)
        opt.zero_grad(set_to_none=True)
        loss = model.loss(x, eps)
        loss.backward()
        opt.step()
        total += loss.detach()
    _synchronize(device)  # a GPU's queued steps are done before the clock is read
    return time.perf_counter() - start, float(total) / n


def _synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None):
    import argparse  # noqa: PLC0415
    import json  # noqa: PLC0415

    from tinyvae.data import load_dataset  # noqa: PLC0415

    p = argparse.ArgumentParser(description="time the PyTorch equivalent of tinyvae's conv VAE")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--limit-train", type=int, default=0, help="train on the first N digits only (0: all)")
    p.add_argument("--latent", type=int, default=2)
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="gpu: CUDA")
    args = p.parse_args(argv)
    device = torch.device("cuda" if args.device == "gpu" else "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device gpu: PyTorch sees no CUDA device")
    images = load_dataset().train_x[:args.limit_train or None]
    x = torch.from_numpy(images.astype(np.float32) / 255.0).to(device)
    torch.manual_seed(0)
    model = TorchConvVAE(args.latent).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    seconds = [train_steps(model, opt, x, args.batch_size, gen)[0] for _ in range(args.epochs)]
    print(json.dumps({"seconds": seconds, "examples": int(x.shape[0]), "threads": torch.get_num_threads()}))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
