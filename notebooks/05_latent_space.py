# ---
# jupyter:
#   jupytext:
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · The latent space: maps, paths, denoising, inpainting
#
# **What you will see.** With Z = 2 the whole latent space fits on a page. We train a VAE with two latent
# dimensions and look at where each digit lands (the posterior means), decode a grid of $z$ (the learned
# manifold, as in Kingma & Welling's figure 4) and walk in a straight line between two digits. Then we
# use a VAE as a prior over images: **denoising** (map a corrupted digit back onto the digits the model
# knows) and **inpainting** (fill in a missing half by alternating reconstruct and restore-the-known-pixels).
# Two numbers turn out to be too few to restore a particular digit, so for that part we also train a
# Z = 16 model and compare.
#
# Background: [the sample z = μ + σ ⊙ ε](../derivations/reparameterization.md#eq:reparam), [the loss](../derivations/elbo.md#eq:vae-loss),
# and [why the KL term fills the space](../derivations/autoencoder.md#eq:aggregate-kl).

# %%
# %matplotlib inline
import tempfile
from pathlib import Path

import numpy as np
import matplotlib.pyplot as plt
import tinyvae
from tinyvae import data, plots

np.set_printoptions(precision=3, suppress=True)
runs = Path(tempfile.mkdtemp(prefix="tinyvae-"))   # run folders go to a scratch directory
mnist = data.load_dataset()                          # the bundled MNIST, uint8
print(mnist)

# %%
quiet = dict(progress=False, pictures=False, log=lambda line: None)
config = tinyvae.TrainConfig(hidden=(256,), latent=2, epochs=5, limit_train=30_000, limit_test=1_000,
                           lr=2e-3, seed=0, out=str(runs / "z2"))
vae = tinyvae.load_model(tinyvae.train(config, **quiet) / "checkpoint.npz")
print("test loss", round(plots.read_metrics(runs / "z2")[-1]["test_loss"], 1), "nats per example")

# %% [markdown]
# ## 1. Where the digits land
#
# The posterior means of 2000 test digits, coloured by label. The KL term keeps the cloud near
# $\mathcal N(0, I)$, roughly within ±3 of the origin; digits that look alike sit side by side.

# %%
plots.plot_latent(vae, mnist.test_x[:2000], mnist.test_y[:2000])

# %% [markdown]
# ## 2. The manifold
#
# Decode a 15 × 15 grid. The grid is spaced evenly in *probability* under the prior ($z = \Phi^{-1}(p)$,
# $p$ from 0.05 to 0.95), so each cell holds the same prior mass. Almost every point decodes to something
# digit-like and neighbouring cells morph into each other: no large holes. (The odd corner is a sign of
# the short training.)

# %%
plots.plot_manifold(vae, n=15)

# %% [markdown]
# ## 3. Interpolation
#
# Decode points on the straight line between the posterior means of two test digits.

# %%
labels = mnist.test_y
a, b = int(np.flatnonzero(labels == 1)[0]), int(np.flatnonzero(labels == 0)[0])
plots.plot_interpolation(vae, mnist.test_x[a], mnist.test_x[b], steps=10)

# %% [markdown]
# ## 4. Denoising
#
# Corrupt eight test digits by flipping 5 % of their pixels, and reconstruct them (encode to the posterior
# mean, decode). A model trained only on clean digits can only produce clean-looking ones, so
# reconstruction projects the corrupted image back onto the digits it knows. Whether it lands on the
# *right* digit depends on how much the code can hold: compare the Z = 2 model with a Z = 16 one.

# %%
vae16 = tinyvae.load_model(tinyvae.train(tinyvae.TrainConfig(hidden=(256,), latent=16, epochs=3, limit_train=10_000,
                                                         limit_test=1_000, lr=2e-3, out=str(runs / "z16")), **quiet) / "checkpoint.npz")

def show(rows, titles):
    fig, axes = plt.subplots(len(rows), len(rows[0]), figsize=(1.1 * len(rows[0]), 1.15 * len(rows)))
    for r, (row, title) in enumerate(zip(rows, titles)):
        for c, img in enumerate(row):
            axes[r, c].imshow(img.reshape(28, 28), cmap="gray", vmin=0, vmax=1)
            axes[r, c].set_xticks([]); axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(title, rotation=0, ha="right", va="center", fontsize=9)
    plt.show()

rng = np.random.default_rng(0)
clean = data.to_float(mnist.test_x[:8])                                  # (8, 784) float32 in [0, 1]
flipped = np.where(rng.random(clean.shape) < 0.05, 1 - clean, clean).astype(np.float32)
show([clean, flipped, vae.reconstruct(flipped), vae16.reconstruct(flipped)],
     ["clean", "5% flipped", "Z = 2", "Z = 16"])


# %% [markdown]
# Gaussian noise on every pixel is harder: the encoder has never seen a grey, speckled background and
# its guess of μ goes astray. The decoder still knows what digits look like, so instead of trusting the
# encoder we can *search* for the code whose decoding best explains the noisy image under the Bernoulli
# likelihood, plus the prior's pull toward 0: minimize $-\log p(x \mid z) - \log p(z)$ over $z$, starting
# from the encoder's μ. The gradient with respect to $z$ is exactly what the decoder's backward pass
# returns (`decoder.backward` gives dL/dz), so a few lines of Adam do it.

# %%
def fit_code(model, x, steps=200, lr=0.05):
    z = model.encode(x)[0].copy()                       # start from the encoder's guess, (N, Z)
    m, v = np.zeros_like(z), np.zeros_like(z)
    for t in range(1, steps + 1):
        logits = model.decoder.forward(z)
        _, dlogits = tinyvae.bernoulli_nll(logits, x)   # -log p(x|z), batch mean
        dz = model.decoder.backward(dlogits) + z / len(x)   # ... plus -log p(z) = |z|^2 / 2 per example
        m, v = 0.9 * m + 0.1 * dz, 0.999 * v + 0.001 * dz**2
        z -= lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return model.decode(z)

noisy = np.clip(clean + rng.normal(0, 0.25, clean.shape), 0, 1).astype(np.float32)
show([clean, noisy, vae16.reconstruct(noisy), fit_code(vae16, noisy)],
     ["clean", "noise", "encode-decode", "fit the code"])

# %% [markdown]
# The fitted codes decode to the right digits; the faint grey background is the model explaining the
# noise's average brightness.
#
# ## 5. Inpainting
#
# Hide the bottom half of each digit. Start with the hidden pixels at 0, then repeat: reconstruct the
# whole image, and put the known top half back. Each pass moves the guess for the hidden half toward
# an image the model finds likely *and* consistent with the visible half; the change per pass shows the
# iteration settling.

# %%
known = np.zeros((28, 28), dtype=np.float32)
known[:14] = 1                                          # the top half is visible
known = known.ravel()
results = {}
for name, model in (("Z = 2", vae), ("Z = 16", vae16)):
    guess = clean * known                               # hidden pixels start at 0
    for i in range(1, 11):
        new = known * clean + (1 - known) * model.reconstruct(guess)   # reconstruct, restore the known pixels
        change = np.abs(new - guess).mean()
        guess = new
        if i in (1, 3, 10):
            print(f"{name:>6}, pass {i:>2}: mean change {change:.4f}")
    results[name] = guess
show([clean, clean * known, results["Z = 2"], results["Z = 16"]], ["clean", "top half", "Z = 2", "Z = 16"])

# %% [markdown]
# The filled-in halves are plausible completions, smooth and typical, not necessarily the true ones:
# the model can only propose what it has learned digits look like. Longer training and more latent
# dimensions sharpen every picture in this notebook.
# Next: [06 · write the backward passes yourself](06_gradient_check_exercises.ipynb).
