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
# # 01 · Autoencoder or VAE: why the KL term is there
#
# **What you will see.** A plain autoencoder (AE) and a VAE, with the same networks, trained briefly on
# 10 000 MNIST digits. Both reconstruct well. But decode draws from $\mathcal N(0, I)$ and only the VAE
# produces digits: the AE's codes sit wherever the reconstruction loss happened to put them, with a
# scale and holes that nothing controls, so prior draws land where its decoder has never been trained.
# The VAE's [loss](../derivations/elbo.md#eq:vae-loss) adds the [KL term](../derivations/kl.md#eq:kl-closed-form), which pulls
# every $q(z \mid x)$ toward $\mathcal N(0, I)$, and [noise](../derivations/reparameterization.md#eq:reparam), which
# trains the decoder on neighbourhoods rather than points. Read
# [the autoencoder loss](../derivations/autoencoder.md#eq:ae-loss) and [what the KL does to the aggregate
# posterior](../derivations/autoencoder.md#eq:aggregate-kl).
#
# Training here is deliberately short (3 epochs on a subset, well under a minute on a laptop CPU), so the
# pictures are blurrier than a full run's.

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

# %% [markdown]
# ## 1. Train both
#
# Same architecture (784-256-16, ReLU, Bernoulli decoder), same data, same seed; `model="ae"` drops the
# KL term and the noise. `tinyvae.train` returns the run folder; `tinyvae.load_model` rebuilds the model
# from its checkpoint.

# %%
common = dict(hidden=(256,), latent=16, epochs=3, limit_train=10_000, limit_test=1_000, lr=2e-3)
quiet = dict(progress=False, pictures=False, log=lambda line: None)
ae_run = tinyvae.train(tinyvae.TrainConfig(model="ae", out=str(runs / "ae"), **common), **quiet)
vae_run = tinyvae.train(tinyvae.TrainConfig(model="vae", out=str(runs / "vae"), **common), **quiet)
ae = tinyvae.load_model(ae_run / "checkpoint.npz")
vae = tinyvae.load_model(vae_run / "checkpoint.npz")

# %% [markdown]
# ## 2. Reconstructions: both fine. Samples from N(0, I): only the VAE
#
# Rows 2 and 3 reconstruct the test digits of row 1; rows 4 and 5 decode the same ten draws
# $z \sim \mathcal N(0, I)$ with each decoder.

# %%
plots.plot_ae_vs_vae(ae, vae, mnist.test_x[:10], seed=0)

# %%
for name, run in (("AE ", ae_run), ("VAE", vae_run)):
    last = plots.read_metrics(run)[-1]
    print(f"{name} test reconstruction {last['test_recon']:6.1f} nats/example,  KL {last['test_kl']:5.1f}")

# %% [markdown]
# The AE reconstructs a little better: it spends nothing on the KL and has no noise to fight. That is
# not the point of a VAE; generating is.

# %% [markdown]
# ## 3. The latent spaces, and their holes
#
# Sixteen dimensions cannot be drawn, and a projection hides exactly the gaps we are after. So train the
# same pair again with **two** latent dimensions, where the scatter of the codes *is* the latent space.

# %%
z2 = dict(common, latent=2)
ae2 = tinyvae.load_model(tinyvae.train(tinyvae.TrainConfig(model="ae", out=str(runs / "ae2"), **z2), **quiet) / "checkpoint.npz")
vae2 = tinyvae.load_model(tinyvae.train(tinyvae.TrainConfig(model="vae", out=str(runs / "vae2"), **z2), **quiet) / "checkpoint.npz")
x, y = mnist.test_x[:2000], mnist.test_y[:2000]
plots.plot_latent(ae2, x, y)

# %%
plots.plot_latent(vae2, x, y)

# %% [markdown]
# Now drop 1000 draws from the prior $\mathcal N(0, I)$, the points `sample` decodes, onto each picture,
# over the codes of real digits (grey). Which draws fall in a *hole*, where the decoder produces
# something that is not a digit? Distances in the latent space would mislead here: the autoencoder's
# coordinates have an arbitrary scale (here its codes spread wider than the prior, as printed below, so
# the prior draws land in the crowded middle of its cloud), and the VAE's decoder was trained on the noisy
# neighbourhoods $\mu + \sigma \odot \varepsilon$ around each code, not at the codes alone. So measure
# where both models are on the same footing, in image space, and relative to each model's own outputs:
# decode each draw and find the nearest of 10 000 training digits. A draw is *in a hole* (red) when its
# decoding is farther from every training digit than 99 % of the model's reconstructions of test digits
# are. No latent distance enters, so rescaling a model's codes would not change its figure.

# %%
rng = np.random.default_rng(0)
train_images = data.to_float(mnist.train_x[:10_000])          # (10000, 784)

def codes_of(model, images):                                 # the code, or the mean of q(z|x): (N, Z)
    out = model.encode(data.to_float(images))
    return out[0] if isinstance(out, tuple) else out

def nearest(points, bank):                                   # distance to the closest row of bank
    d2 = (points**2).sum(1)[:, None] - 2 * points @ bank.T + (bank**2).sum(1)[None, :]
    return np.sqrt(np.maximum(d2, 0).min(axis=1))

def in_holes(model, prior_draws):
    """Which prior draws decode farther from every training digit than 99 % of test reconstructions do."""
    typical = np.quantile(nearest(model.reconstruct(data.to_float(x[:1000])), train_images), 0.99)
    return nearest(model.decode(prior_draws), train_images) > typical

prior = rng.standard_normal((1000, 2)).astype(np.float32)
holes = {}
fig, axes = plt.subplots(1, 2, figsize=(11, 5))
for ax, (name, model) in zip(axes, (("autoencoder", ae2), ("VAE", vae2))):
    codes = codes_of(model, x)                                # (2000, 2)
    in_hole = in_holes(model, prior)
    holes[name] = in_hole.mean()
    ax.scatter(*codes.T, s=3, c="0.6", label="codes of test digits")
    ax.scatter(*prior[in_hole].T, s=6, c="red", label="prior draw in a hole")
    ax.scatter(*prior[~in_hole].T, s=6, c="tab:blue", label="prior draw that decodes near data")
    ax.set_title(f"{name}: {in_hole.mean():.0%} of prior draws fall in holes")
    ax.set_aspect("equal")
    print(f"Z = 2 {name}: code std per dimension {codes.std(0).round(2)}")
axes[0].legend(loc="lower left", fontsize=8)
plt.show()
print(f"Z = 2: prior draws in holes: autoencoder {holes['autoencoder']:.0%}, VAE {holes['VAE']:.0%}")
prior16 = rng.standard_normal((1000, 16)).astype(np.float32)
holes16 = {name: in_holes(model, prior16).mean() for name, model in (("autoencoder", ae), ("VAE", vae))}
print(f"Z = 16: prior draws in holes: autoencoder {holes16['autoencoder']:.0%}, VAE {holes16['VAE']:.0%}")
for name, model in (("AE ", ae), ("VAE", vae)):
    print(f"Z = 16 {name}: code std per dimension {codes_of(model, x).std(0).round(1)}")
assert codes_of(ae2, x).std(0).min() > 1.0                  # the AE's codes: wider than the prior
assert holes["VAE"] < holes["autoencoder"] and holes16["VAE"] < holes16["autoencoder"], (holes, holes16)

# %% [markdown]
# **Why.** The AE loss only asks that the decoder undo the encoder, and it is unchanged by any
# invertible map of the latent space ([eq:ae-loss](../derivations/autoencoder.md#eq:ae-loss)), so nothing fixes where the
# codes go, how far apart the classes sit, or what lies between them. The VAE's KL term, averaged over the
# data, is the mutual information between $x$ and $z$ plus $\mathrm{KL}(q(z) \Vert p(z))$
# ([eq:aggregate-kl](../derivations/autoencoder.md#eq:aggregate-kl)): it pulls the cloud of all codes toward
# $\mathcal N(0, I)$, so the places the prior samples from are places the decoder was trained on.
#
# Next: [02 · the reparameterization trick](02_reparameterization.ipynb), the piece that lets the VAE
# backpropagate through its noise.
