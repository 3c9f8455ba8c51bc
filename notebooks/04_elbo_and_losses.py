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
# # 04 · The ELBO and its losses, with numbers
#
# **What you will learn.** The VAE minimizes the negative [evidence lower bound](../derivations/elbo.md#eq:elbo),
# [loss = reconstruction + β · KL](../derivations/elbo.md#eq:vae-loss). This notebook puts numbers on every piece:
#
# 1. the Bernoulli reconstruction term computed from logits, [in the stable form](../derivations/bernoulli.md#eq:bce-stable),
#    finite at logits of ±1e4 where the naive formula gives `inf` and `nan`;
# 2. the Gaussian alternative: [its negative log-likelihood](../derivations/gaussian.md#eq:gaussian-nll) is
#    [½ · SSE / σ_x² plus a constant](../derivations/gaussian.md#eq:mse-relation), so "MSE" hides a variance and a constant;
# 3. the [reduction convention](../derivations/notation.md#eq:loss-reduction): sum over pixels D and latent
#    dimensions Z, mean over the batch N, in nats per example;
# 4. the [KL in closed form](../derivations/kl.md#eq:kl-closed-form) against a Monte Carlo estimate;
# 5. the terms of an (untrained) VAE on real MNIST digits.

# %%
# %matplotlib inline
import numpy as np
import matplotlib.pyplot as plt
import tinyvae

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## 1. Binary cross-entropy from logits: stable against naive
#
# The decoder outputs logits $l$; the per-pixel negative log-likelihood is
# $-[x \log\sigma(l) + (1-x)\log(1-\sigma(l))]$ ([eq:bce-logits](../derivations/bernoulli.md#eq:bce-logits)).
# Computed literally, $\sigma(l)$ rounds to exactly 0 or 1 for large $|l|$ and the logarithm returns
# $-\infty$: the loss is `inf` where the logit points the wrong way, and `nan` where it points the right way,
# because the term the target switches off still computes $0 \cdot (-\infty)$ (the first two rows). The [stable form](../derivations/bernoulli.md#eq:bce-stable) $\max(l, 0) - x l + \log(1 + e^{-|l|})$
# only ever exponentiates a non-positive number. One pixel per row below (D = 1), so
# `tinyvae.bernoulli_log_prob` gives the per-pixel value.

# %%
logits = np.array([-1e4, -1e4, -30.0, -1.0, 0.0, 1.0, 30.0, 1e4])
x = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0])     # targets

with np.errstate(all="ignore"):                             # the naive form overflows on purpose
    p = 1 / (1 + np.exp(-logits))
    naive = -(x * np.log(p) + (1 - x) * np.log(1 - p))
stable = -tinyvae.bernoulli_log_prob(logits[:, None], x[:, None])
for l, t, a, b in zip(logits, x, naive, stable):
    print(f"logit {l:>9g}  x = {t:.0f}   naive {a:>10.4g}   stable {b:>10.4g}")
assert stable[0] == 1e4 and abs(stable[2] - 30) < 1e-12 and stable[-1] == 1e4 and stable[1] == 0
assert np.isinf(naive[0]) and np.isnan(naive[1])          # inf where the target is missed, nan where it is hit

# %% [markdown]
# Where does the naive form break? In float32, the precision a model trains in, for a pixel that is 0 the
# cost is $\log(1 + e^{l})$: the naive form reaches `inf` once $\sigma(l)$ rounds to 1, at a logit of
# about 17, long before the logit itself is large. Just before that it is already off: $1 - \sigma(l)$ is
# then the difference of two numbers close to 1, with few correct digits left, hence the steps.

# %%
grid = np.linspace(-5, 40, 451).astype(np.float32)
zeros = np.zeros_like(grid)
with np.errstate(all="ignore"):
    naive32 = -np.log(1 - 1 / (1 + np.exp(-grid)))                 # x = 0: −log(1 − σ(l)), in float32
stable32 = -tinyvae.bernoulli_log_prob(grid[:, None], zeros[:, None])
breaks = grid[~np.isfinite(naive32)].min()
fig, ax = plt.subplots(figsize=(7, 3.4))
ax.plot(grid, stable32, label="stable form [eq:bce-stable]", lw=3, color="0.7")
ax.plot(grid, np.where(np.isfinite(naive32), naive32, np.nan), label="naive form", color="tab:red")
ax.axvline(breaks, color="tab:red", ls=":", label=f"naive gives inf from l = {breaks:.1f}")
ax.set_xlabel("logit l"), ax.set_ylabel("nats, pixel x = 0"), ax.legend(fontsize=8)
ax.set_title("Binary cross-entropy of one pixel in float32")
plt.show()
assert grid.dtype == stable32.dtype == np.float32 and np.isfinite(stable32).all() and 16 < breaks < 18

# %% [markdown]
# The stable values are exact: a logit of 10⁴ for a pixel that is 0 costs 10⁴ nats, and a logit of
# −30 for a pixel that is 1 costs 30 nats. `tinyvae.bernoulli_nll` also returns the gradient, $(\sigma(l) - x)/N$,
# finite everywhere:

# %%
loss, dlogits = tinyvae.bernoulli_nll(logits[None, :], x[None, :])
print("loss (nats per example):", float(loss))
print("dlogits:", dlogits.ravel())

# %% [markdown]
# ## 2. MSE against the Gaussian negative log-likelihood
#
# For real-valued pixels the decoder outputs means $m$ and assumes $x \sim \mathcal N(m, \sigma_x^2 I)$.
# Its [negative log-likelihood](../derivations/gaussian.md#eq:gaussian-nll) per example is
# $\frac{1}{2\sigma_x^2}\mathrm{SSE} + \frac D2 \log(2\pi\sigma_x^2)$. With $\sigma_x^2 = 1$ that is
# ½ · SSE plus a constant of 720.4 nats for D = 784, which has no gradient. The Gaussian number is not
# comparable with the Bernoulli one, and the constant is not the reason: the Gaussian number is minus the
# log of a *density* over continuous pixels, the Bernoulli number minus the log of a *probability* of
# binary pixels, and subtracting 720.4 from the first would not turn it into the second. The variance is a weight: halving it
# doubles the pull of the reconstruction against the KL. The loss becomes twice the loss with β/2, plus a
# constant, so it has the same minimizers as dividing β by 2; the factor 2 also doubles every gradient,
# which plain SGD feels as a doubled learning rate (Adam, apart from its small ε, does not).

# %%
rng = np.random.default_rng(0)
N, D = 3, 784
x_real = rng.uniform(0, 1, (N, D))
m = np.clip(x_real + rng.normal(0, 0.1, (N, D)), 0, 1)
sse = ((m - x_real) ** 2).sum(axis=1).mean()                 # per example, then batch mean
mse = ((m - x_real) ** 2).mean()                             # what "MSE" usually means: mean over everything
for obs_var in (1.0, 0.1, 0.01):
    nll, dmean = tinyvae.gaussian_nll(m, x_real, obs_var)
    const = 0.5 * D * np.log(2 * np.pi * obs_var)
    print(f"obs_var {obs_var:<5} NLL {float(nll):9.2f} = 0.5*SSE/obs_var {0.5 * sse / obs_var:9.2f} "
          f"+ constant {const:8.2f};   gradient size {np.abs(dmean).max():.2e}")
print(f"MSE (np.mean) = {mse:.5f}, which is SSE / D = {sse / D:.5f}: it also divides by D = {D}")
assert round(0.5 * D * np.log(2 * np.pi), 1) == 720.4

# %% [markdown]
# ## 3. The reduction convention, shown with numbers
#
# [Every loss in tinyvae](../derivations/notation.md#eq:loss-reduction) sums over pixels (D) and latent dimensions (Z)
# inside an example, and averages over the N examples of the batch. The unit is **nats per example**,
# so the number does not change with the batch size but does grow with the image size. Here is a
# batch of N = 3 "images" of D = 4 pixels, reduced by hand:

# %%
logits = rng.normal(0, 2, (3, 4))
x = (rng.uniform(0, 1, (3, 4)) > 0.5).astype(float)
per_pixel = -(x * logits - np.logaddexp(0, logits))        # (N, D): one term per pixel
per_example = per_pixel.sum(axis=1)                         # (N,): sum over D
batch_loss = per_example.mean()                             # mean over N
print("per-pixel terms (N, D):\n", per_pixel)
print("per example (sum over D):", per_example)
print("batch loss (mean over N):", batch_loss, "  tinyvae:", float(tinyvae.bernoulli_nll(logits, x)[0]))

doubled, _ = tinyvae.bernoulli_nll(np.vstack([logits, logits]), np.vstack([x, x]))
print("the same batch twice (N = 6):", float(doubled), "  <- unchanged: a mean over N")
wider, _ = tinyvae.bernoulli_nll(np.hstack([logits, logits]), np.hstack([x, x]))
print("each image twice as wide (D = 8):", float(wider), "  <- doubled: a sum over D")
_, dl = tinyvae.bernoulli_nll(logits, x)
print("gradient carries 1/N:", np.allclose(dl, (tinyvae.sigmoid(logits) - x) / 3))

# %% [markdown]
# ## 4. The KL term: closed form against Monte Carlo
#
# For $q = \mathcal N(\mu, \operatorname{diag}\sigma^2)$ and the prior $\mathcal N(0, I)$ the KL has a
# [closed form](../derivations/kl.md#eq:kl-closed-form), $\tfrac12\sum_j(\sigma_j^2 + \mu_j^2 - 1 - \log\sigma_j^2)$.
# It is also $\mathbb E_q[\log q(z) - \log p(z)]$, which we can estimate by sampling $z$ with the
# reparameterization and evaluating both log-densities with `tinyvae.log_normal_density`.

# %%
mu = np.array([[0.8, -1.2, 0.1]])
log_var = np.array([[-0.5, 0.3, -2.0]])
closed = float(tinyvae.gaussian_kl(mu, log_var)[0])
print(f"closed form: {closed:.5f} nats   (per dimension: {tinyvae.gaussian_kl_per_dim(mu, log_var).ravel()})")
for M in (10, 1_000, 100_000):
    eps = rng.standard_normal((M, 3))
    z = mu + np.exp(0.5 * log_var) * eps
    log_q = tinyvae.log_normal_density(z, mu, log_var)
    log_p = tinyvae.log_normal_density(z, np.zeros_like(z), np.zeros_like(z))
    terms = log_q - log_p
    print(f"Monte Carlo, {M:>7} samples: {terms.mean():.5f} +/- {terms.std() / np.sqrt(M):.5f}")

# %% [markdown]
# The closed form is exact and has an exact gradient, so the VAE uses it; the reconstruction term has
# no closed form and is estimated with one sample of ε per example.
#
# ## 5. The terms of a VAE on MNIST
#
# One forward pass of an untrained VAE on 64 test digits (`tinyvae.data` reads the bundled MNIST).
# `model.stats` holds the two terms; the loss is their sum (β = 1), in nats per example.
# An untrained decoder outputs logits scattered around 0. A logit of exactly 0 costs log 2 ≈ 0.69 nats
# whatever the pixel, and since the cost is convex in the logit, scattered logits typically cost more on
# average: the reconstruction term starts above 784 · log 2. The encoder's random μ and log σ² give a
# KL under 1 % of it.

# %%
from tinyvae import data

mnist = data.load_dataset()
x = data.to_float(mnist.test_x[:64])                 # (64, 784) float32 in [0, 1]
vae = tinyvae.VAE(hidden=(256,), latent=8, seed=0)
loss = vae.forward(x)                                 # eps drawn from the model's own generator
s = vae.stats
print(f"reconstruction {float(s['recon']):8.2f} nats/example")
print(f"KL             {float(s['kl']):8.2f} nats/example")
print(f"loss           {float(s['loss']):8.2f} = reconstruction + KL  (784 * log 2 = {784 * np.log(2):.2f})")
assert float(s["recon"]) > 784 * np.log(2) and float(s["kl"]) < 0.01 * float(s["recon"])

# %% [markdown]
# Training pushes the reconstruction term down and the KL term up: the code starts carrying information
# about the digit. [Notebook 01](01_vae_on_one_screen.ipynb) prints both at the start and the end of a short
# run, and [notebook 05](05_training_mnist.ipynb) draws their curves.
#
# Next: [05 · training on MNIST](05_training_mnist.ipynb). Deeper: [the ELBO](../derivations/elbo.md) and its
# gap, [the Bernoulli loss](../derivations/bernoulli.md) (and why grey levels make it a cross-entropy),
# [the Gaussian](../derivations/gaussian.md), [the KL](../derivations/kl.md), and how float32 rounds the loss
# ([float32-loss](../derivations/float32-loss.md)).
