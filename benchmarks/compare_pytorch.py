"""Test loss per epoch: tinyvae's default VAE against the equivalent PyTorch model.

    python benchmarks/compare_pytorch.py              # 3 epochs each (needs `pip install torch`)
    python benchmarks/compare_pytorch.py --epochs 10

Both are the pytorch/examples configuration: 784-400-20, ReLU, grey-level BCE + KL, Adam 1e-3,
batch 128, full MNIST, the test loss being the negative ELBO per example with ε sampled. tinyvae
trains through ``tinyvae.run.train.train``; PyTorch through ``torch_vae.py`` beside this file (its
default initialization, its own random stream). Prints one row per epoch and the relative gap.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import tinyvae  # noqa: F401,I001  (first, as in `tinyvae train`)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from tinyvae.data import load_dataset  # noqa: E402
from tinyvae.run.train import TrainConfig, train  # noqa: E402


def tinyvae_losses(epochs, seed):
    with tempfile.TemporaryDirectory() as tmp:
        run = train(TrainConfig(epochs=epochs, seed=seed, out=str(Path(tmp) / "run")),
                    progress=False, log=lambda *a, **k: None, pictures=False)
        rows = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]
    return [r["test_loss"] for r in rows]


def torch_losses(epochs, seed):
    import torch  # noqa: PLC0415

    import torch_vae  # noqa: PLC0415

    torch.manual_seed(seed)
    data = load_dataset()
    x_train, x_test = torch_vae.to_tensor(data.train_x), torch_vae.to_tensor(data.test_x)
    model = torch_vae.TorchVAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for epoch in range(epochs):
        torch_vae.train_epoch(model, opt, x_train, 128, gen)
        losses.append(torch_vae.test_loss(model, x_test, seed=epoch))
    return losses


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    ours = tinyvae_losses(args.epochs, args.seed)
    theirs = torch_losses(args.epochs, args.seed)
    print(f"{'epoch':>5} {'tinyvae':>9} {'pytorch':>9} {'gap':>7}")
    rows = []
    for epoch, (a, b) in enumerate(zip(ours, theirs), 1):
        gap = (a - b) / b
        rows.append({"epoch": epoch, "tinyvae_test_loss": a, "torch_test_loss": b, "relative_gap": gap})
        print(f"{epoch:>5} {a:>9.2f} {b:>9.2f} {100 * gap:>6.2f}%")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
