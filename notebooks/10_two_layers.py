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
# # 10 · Two stochastic layers: what each layer encodes
#
# **What you will see.** A VAE with two stochastic layers, the model of Burda et al.'s experiments
# section at a smaller size: $z_2 \sim \mathcal N(0, I)$, then $z_1 \sim p(z_1 \mid z_2)$, then the digit
# $x \sim p(x \mid z_1)$. We train it briefly and ask what each layer holds. We decode with $z_2$
# fixed and $z_1$ resampled, then with $z_1$'s noise fixed and $z_2$ resampled. Then we count the
# active units of each layer, the measure that the paper's Table 1 reports per layer.
#
# Background: [the bound and its five log densities](../derivations/two-layer.md#eq:hvae-log-weight),
# [its gradient, network by network](../derivations/two-layer.md#eq:hvae-grad-z1) and
# [active units per layer](../derivations/two-layer.md#eq:hvae-active-units).

# %%
# %matplotlib inline
import tempfile
from pathlib import Path

import numpy as np
import matplotlib.pyplot as plt
import tinyvae
from tinyvae import data

np.set_printoptions(precision=3, suppress=True)
runs = Path(tempfile.mkdtemp(prefix="tinyvae-"))   # run folders go to a scratch directory
mnist = data.load_dataset()                          # the bundled MNIST, uint8

# %% [markdown]
# ## 1. A short run
#
# The paper's protocol (tanh, Glorot, dynamic binarization, Adam ε 1e-4, the output bias at the logit
# of each pixel's mean) on a smaller model, 784-200-[z1 32]-64-[z2 16]: about a third of the paper's
# latent units (100 and 50), and one hidden layer in each network where the paper has two (of 200
# between x and z1, of 100 between z1 and z2). It trains for 3 epochs on 15,000 digits at a constant
# learning rate of 2e-3, not the paper's schedule of 3,280 epochs.
# `tinyvae train --preset iwae-paper --stochastic-layers 2` is the full-size model and schedule.

# %%
quiet = dict(progress=False, pictures=False, log=lambda line: None)
config = tinyvae.TrainConfig(stochastic_layers=2, hidden=(200,), latent=32, latent2=16, hidden2=(64,),
                             activation="tanh", init="glorot", binarize="dynamic", adam_eps=1e-4,
                             output_bias="data-mean", epochs=3, limit_train=15_000, limit_test=1_000,
                             lr=2e-3, seed=0, out=str(runs / "two"))
run = tinyvae.train(config, **quiet)
model = tinyvae.load_model(run / "checkpoint.npz")
print(model.config.describe())
for line in (run / "metrics.jsonl").read_text().splitlines()[-1:]:
    print(line)

# %% [markdown]
# ## 2. z2 fixed, z1 resampled
#
# Each row draws one $z_2$ from $\mathcal N(0, I)$ and then eight $z_1 \sim p(z_1 \mid z_2)$, decoded
# to their mean images. What stays the same along a row is what $z_2$ decides; what changes is left
# to the lower layer's noise. On this run even the digit's class changes along most rows: given
# $z_2$, much is still left to $z_1$'s noise.

# %%
rng = np.random.default_rng(1)
rows, cols = 6, 8
z2 = np.repeat(rng.standard_normal((rows, 16)).astype(np.float32), cols, axis=0)      # (rows·cols, Z2)
m, log_s2 = model.prior_z1(z2)                                                         # p(z1|z2)
z1 = m + np.exp(0.5 * log_s2) * rng.standard_normal(m.shape).astype(np.float32)
images_a = model.decode(z1)


def show(images, title):
    grid = images.reshape(rows, cols, 28, 28).transpose(0, 2, 1, 3).reshape(rows * 28, cols * 28)
    fig, ax = plt.subplots(figsize=(cols, rows))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    plt.show()


show(images_a, "each row: one z2, eight z1 ~ p(z1|z2)")

# %% [markdown]
# ## 3. z1's noise fixed, z2 resampled
#
# Now each row fixes the noise of $z_1$, $z_1 = m(z_2) + s(z_2) \odot \varepsilon_1$ with one
# $\varepsilon_1$ per row, and draws eight $z_2$. Changes along a row come from the upper layer alone.
# On this run most rows keep their class and much of their shape: $z_2$ moves the digit less than
# $\varepsilon_1$ does, and the noise of $z_1$ carries much of the digit's identity.

# %%
eps1 = np.repeat(rng.standard_normal((rows, 32)).astype(np.float32), cols, axis=0)
z2 = rng.standard_normal((rows * cols, 16)).astype(np.float32)
m, log_s2 = model.prior_z1(z2)
images_b = model.decode(m + np.exp(0.5 * log_s2) * eps1)
show(images_b, "each row: one noise of z1, eight z2 ~ N(0, I)")

# %% [markdown]
# How much of the variation each layer carries, in numbers: the mean over rows of the pixel variance
# along a row, under each scheme. The two schemes are not mirror images: in the first, only
# $s(z_2) \odot \varepsilon_1$ varies along a row; in the second, $z_2$ moves both the mean $m(z_2)$
# and the scale $s(z_2)$ that multiplies the fixed $\varepsilon_1$.

# %%
def spread(images):
    return float(images.reshape(rows, cols, -1).var(axis=1).mean())


print(f"pixel variance along a row: z1 resampled {spread(images_a):.4f}, z2 resampled {spread(images_b):.4f}")
assert spread(images_a) > spread(images_b)

# %% [markdown]
# On this short run the lower layer's noise moves the images more than the upper layer does (the assert
# checks it): given $z_2$, $p(z_1 \mid z_2)$ still leaves much of the variation of $z_1$ to its own noise.
# The prior network says the same in its own numbers: for each unit of $z_1$, the variance of its
# mean $m(z_2)$ over $z_2 \sim \mathcal N(0, I)$ against its mean variance $\mathbb E[s^2]$, the part of
# $z_1$'s spread that $z_2$ decides against the part left to $\varepsilon_1$. On this run the first is
# the smaller for every unit (the assert checks it).

# %%
z2 = np.random.default_rng(2).standard_normal((10_000, 16)).astype(np.float32)
m, log_s2 = model.prior_z1(z2)
ratio = m.var(axis=0) / np.exp(log_s2).mean(axis=0)                 # (Z1,) Var_z2(m) / E[s²]
print(f"Var(m) / E[s²] per unit of z1: median {np.median(ratio):.2f}, "
      f"below 1 for {(ratio < 1).sum()} of {ratio.size} units")
assert (ratio < 1).all()

# %% [markdown]
# ## 4. Active units per layer
#
# A unit is active when its posterior mean varies over the data: $\operatorname{Cov}_x(\mathbb E_q[u \mid x]) > 0.01$.
# For $z_2$ the posterior mean averages $\mu_2(z_1)$ over draws of $z_1$
# ([two-layer.md](../derivations/two-layer.md#eq:hvae-active-units)). `tinyvae evaluate` reports the
# same counts, with the negative ELBO and, given `--iw-samples`, the importance-weighted NLL.
# "Active" says that $q$'s mean of a unit varies with the digit; it does not say how much of that
# unit $p(z_1 \mid z_2)$ passes on to the decoder (the section above measures that).

# %%
result = tinyvae.evaluate_checkpoint(run, limit=1000, iw_samples=50)
for layer in result["layers"]:
    print(f"{layer['name']}: {layer['active_units']} of {layer['units']} units active")
print(f"negative ELBO {result['loss']:.1f}, NLL estimate (K = 50) {result['nll']:.1f} nats per digit")
fig, ax = plt.subplots(figsize=(6, 3))
for layer in result["layers"]:
    ax.plot(sorted(layer["mean_variances"], reverse=True), "o-", ms=3, label=layer["name"])
ax.axhline(0.01, color="gray", lw=0.8, ls="--")
ax.set_yscale("log")
ax.set_xlabel("unit, by decreasing activity"); ax.set_ylabel("Cov_x(E_q[u|x])"); ax.legend()
ax.set_title("Activity of each unit, 1,000 test digits", fontsize=10)
plt.show()
assert result["active_units"] == [sum(v > 0.01 for v in layer["mean_variances"]) for layer in result["layers"]]
assert result["active_units"] == [32, 16]

# %% [markdown]
# After 3 epochs at this size no unit of either layer is inactive (the assert checks it): the upper
# layer has not collapsed on this run, although the bound allows it
# ([two-layer.md](../derivations/two-layer.md#eq:hvae-active-units)). Both figures above are those of
# a small model after 3 epochs, far from those of a full-size model trained on the paper's schedule
# ([docs/results.md](../docs/results.md) lists the one-layer model's).
