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
# # 08 · The convolutional VAE, step by step
#
# **What you will see.** The convolutional VAE of the Keras example (two stride-2 convolutions in the
# encoder, three transposed convolutions in the decoder, a 2-D latent space) built from tinyvae's
# hand-written layers. First the convolution itself: im2col drawn on a real digit, so that a whole
# layer becomes one matrix product; then the transposed convolution as the convolution's adjoint,
# checked to 1e-12; the checkerboard a stride-2 transposed convolution paints; a gradient check of
# both layers and of a whole conv VAE. Then two briefly trained models bundled with tinyvae (a conv VAE
# and a dense one), the conv VAE's latent scatter and learned manifold for Z = 2, and the reconstructions of the conv VAE beside those of a dense one.
#
# Background: [im2col](../derivations/convolution.md#eq:im2col),
# [the three gradients](../derivations/convolution.md#eq:conv-grad-w),
# [col2im](../derivations/convolution.md#eq:col2im), [the adjoint](../derivations/convolution.md#eq:conv-adjoint),
# [the transposed convolution](../derivations/convolution.md#eq:conv-transpose),
# [checkerboards](../derivations/convolution.md#eq:checkerboard).

# %%
# %matplotlib inline
import math

import numpy as np
import matplotlib.pyplot as plt
import tinyvae
from tinyvae import data, plots, pretrained

RETRAIN = False   # True: train the two models of section 6 here (a minute or two) instead of loading them
np.set_printoptions(precision=3, suppress=True)
mnist = data.load_dataset()                          # the bundled MNIST, uint8
digit = (mnist.test_x[0] / 255.0).reshape(1, 1, 28, 28)   # one test digit as an NCHW batch of one
print(mnist, "label of the digit:", mnist.test_y[0])

# %% [markdown]
# ## 1. im2col: every window of the digit as one column
#
# The encoder's first layer is a 3×3 convolution with stride 2 and one pixel of zero padding, so it
# produces a 14×14 map. im2col copies the 3×3 window under each of those 196 output pixels into one
# column: a 9 × 196 matrix. Row $(i, j)$ holds what kernel tap $(i, j)$ sees at every position, which
# is the padded digit sampled at every second pixel, shifted by $(i, j)$: nine slightly shifted,
# half-size copies of the digit.

# %%
cols = tinyvae.im2col(digit, 3, 2, 1, (14, 14))    # (C·k·k, N·H_out·W_out) = (9, 196)
print("cols", cols.shape)
fig, axes = plt.subplots(2, 9, figsize=(11, 3.8), gridspec_kw={"height_ratios": [1, 0.6]})
for r, ax in enumerate(axes[0]):
    ax.imshow(cols[r].reshape(14, 14), cmap="gray_r")
    ax.set_title(f"tap ({r // 3}, {r % 3})", fontsize=8)
    ax.axis("off")
big = fig.add_subplot(2, 1, 2)
for ax in axes[1]:
    ax.remove()
shown = big.imshow(cols, cmap="gray_r", aspect="auto")
big.set_title("the whole 9 × 196 matrix: one column per output pixel", fontsize=9)
big.set_yticks(range(9), [f"({r // 3}, {r % 3})" for r in range(9)], fontsize=7)
big.set_ylabel("kernel tap (i, j)", fontsize=8)
big.set_xlabel("output pixel, row by row (14 × 14 = 196 columns)", fontsize=8)
fig.colorbar(shown, ax=big, label="pixel value", fraction=0.03, pad=0.01)
plt.show()

# %% [markdown]
# With the four kernels of a layer `Conv2d(1, 4, 3, stride 2, padding 1)` as the rows of a 4 × 9 matrix,
# the layer's output is that matrix times the columns, plus the bias
# ([eq:conv-forward](../derivations/convolution.md#eq:conv-forward)):

# %%
conv = tinyvae.Conv2d(1, 4, 3, stride=2, padding=1, init="he", rng=np.random.default_rng(0), dtype=np.float64)
y = conv.forward(digit)                                              # (1, 4, 14, 14)
by_hand = conv.params["W"].reshape(4, 9) @ cols + conv.params["b"][:, None]   # (4, 196)
print("layer output", y.shape, "| max difference to W_mat @ cols + b:", np.abs(y.reshape(4, 196) - by_hand).max())
assert np.allclose(y.reshape(4, 196), by_hand, rtol=0, atol=1e-12)
fig, axes = plt.subplots(1, 5, figsize=(9, 1.9))
axes[0].imshow(digit[0, 0], cmap="gray_r", vmin=0, vmax=1); axes[0].set_title("input (0 to 1)", fontsize=8)
limit = np.abs(y).max()                               # one scale for all four maps, centred on 0
for c in range(4):
    shown = axes[c + 1].imshow(y[0, c], cmap="RdBu_r", vmin=-limit, vmax=limit)
    axes[c + 1].set_title(f"output channel {c}", fontsize=8)
for ax in axes:
    ax.axis("off")
fig.colorbar(shown, ax=axes[1:], label="output (white = 0)", fraction=0.02, pad=0.01)
plt.show()

# %% [markdown]
# ## 2. The transposed convolution is the convolution's adjoint
#
# Without its bias the convolution is a linear map $A$. Its gradient with respect to the input is the
# adjoint: $dx = A^\top dy$, computed as $\mathrm{col2im}(W^\top dY)$, where col2im adds every column
# back onto the window it came from (overlaps add up). The identity that defines the adjoint,
# $\langle A x, y\rangle = \langle x, A^\top y\rangle$, holds here to rounding:

# %%
rng = np.random.default_rng(1)
W = rng.standard_normal((8, 3, 3, 3))                 # A: 3 -> 8 channels, 3×3, stride 2, padding 1
x = rng.standard_normal((2, 3, 14, 14))
Ax = tinyvae.Conv2d(3, 8, 3, 2, 1, rng=rng, dtype=np.float64)
Ax.params["W"][...] = W
Ax.params["b"][...] = 0.0
ax_ = Ax.forward(x)                                   # (2, 8, 7, 7)
yy = rng.standard_normal(ax_.shape)
aty = tinyvae.conv2d_adjoint(yy, W, 2, 1, (14, 14))  # (2, 3, 14, 14)
lhs, rhs = float(np.sum(ax_ * yy)), float(np.sum(x * aty))
print(f"<Ax, y> = {lhs:.12f}\n<x, Aᵀy> = {rhs:.12f}\nrelative difference {abs(lhs - rhs) / abs(lhs):.1e}")
assert abs(lhs - rhs) <= 1e-12 * abs(lhs)

# %% [markdown]
# A `ConvTranspose2d` layer with the same kernel computes exactly this $A^\top$: its forward pass calls
# the very function that computes the convolution's input gradient, so the two agree bit for bit.

# %%
up = tinyvae.ConvTranspose2d(8, 3, 3, stride=2, padding=1, output_padding=1, rng=rng, dtype=np.float64)
up.params["W"][...] = W                               # weight shape (C_in, C_out, k, k) = (8, 3, 3, 3)
up.params["b"][...] = 0.0
Ax.forward(x)
print("ConvTranspose2d forward == Conv2d backward, bit for bit:", np.array_equal(up.forward(yy), Ax.backward(yy)))
assert np.array_equal(up.forward(yy), Ax.backward(yy))

# %% [markdown]
# ## 3. Why stride-2 transposed convolutions paint checkerboards
#
# Each input pixel of a transposed convolution spreads a 3×3 patch onto the output, patches two pixels
# apart. So some output pixels are covered by one patch, some by two, some by four
# ([eq:checkerboard](../derivations/convolution.md#eq:checkerboard)): feed a constant image through a
# constant kernel and the grid appears. A 4×4 kernel with stride 2 covers every pixel twice in each
# direction, and the grid is gone.

# %%
def constant_through(k):
    layer = tinyvae.ConvTranspose2d(1, 1, k, stride=2, padding=1, output_padding=k % 2, rng=rng, dtype=np.float64)
    layer.params["W"][...] = 1.0
    layer.params["b"][...] = 0.0
    return layer.forward(np.ones((1, 1, 7, 7)))[0, 0]

k3, k4 = constant_through(3), constant_through(4)
fig, axes = plt.subplots(1, 2, figsize=(6.8, 3))
for ax, img, title in ((axes[0], k3, "3×3 kernel, stride 2"), (axes[1], k4, "4×4 kernel, stride 2")):
    shown = ax.imshow(img, cmap="gray_r", vmin=0, vmax=4)
    ax.set_title(f"{title}: {img.shape[0]}×{img.shape[1]} output", fontsize=9)
    ax.set_xlabel("output column", fontsize=8); ax.set_ylabel("output row", fontsize=8)
fig.colorbar(shown, ax=axes, label="patches covering the pixel", ticks=range(5), fraction=0.03)
plt.show()
print("taps per pixel inside, 3×3 kernel:", sorted({int(v) for v in k3[2:-2, 2:-2].ravel()}),
      "| 4×4 kernel:", sorted({int(v) for v in k4[2:-2, 2:-2].ravel()}))
assert set(k3[2:-2, 2:-2].ravel()) == {1.0, 2.0, 4.0} and set(k4[2:-2, 2:-2].ravel()) == {4.0}

# %% [markdown]
# ## 4. Gradient checks
#
# Every backward pass against float64 central differences: both layers (every kernel entry, bias
# and input pixel), then a whole conv VAE on 8×8 images with ε held fixed, which makes the loss a
# deterministic function of its parameters.

# %%
for layer, shape in ((tinyvae.Conv2d(2, 3, 3, 2, 1, init="uniform", rng=rng, dtype=np.float64), (2, 2, 7, 6)),
                     (tinyvae.ConvTranspose2d(3, 2, 3, 2, 1, 1, init="uniform", rng=rng, dtype=np.float64), (2, 3, 4, 3))):
    report = tinyvae.check_layer(layer, rng.standard_normal(shape), rng)
    print(report, "\n")
    assert report.passed

small = tinyvae.VAE(arch="conv", input_dim=64, image_shape=(8, 8), channels=(2, 3), dense=4, latent=2,
                    activation="tanh", dtype="float64", seed=0)
report = tinyvae.check_model(small, rng.uniform(0, 1, (3, 64)), rng.standard_normal((3, 2)))
print(report)
assert report.passed

# %% [markdown]
# ## 5. Exercise (i): the convolution's backward pass, yourself
#
# The last exercise of [notebook 07's table](07_gradient_check_exercises.ipynb). `exercises.conv_forward(x, W, b,
# stride, padding)` computes a convolution by its definition, with loops. Write `conv_backward(dy, x, W,
# stride, padding)`: given dy (N, F, H_out, W_out), the input x (N, C, R, S) and the kernel W (F, C, k, k),
# return `(dx, dW, db)` of shapes (N, C, R, S), (F, C, k, k), (F,). The route of section 1 works:
# [im2col](../derivations/convolution.md#eq:im2col), then [dW = dY colsᵀ](../derivations/convolution.md#eq:conv-grad-w),
# db the sum of dy over examples and positions, and dx through [col2im](../derivations/convolution.md#eq:col2im),
# cut back to R × S. `help(exercises.conv_backward)` has the full statement. The checker draws
# inputs in which no two sizes are equal (an image that is not square, more kernels than channels), so a
# swapped axis shows.

# %%
from tinyvae import exercises


def conv_backward(dy, x, W, stride, padding):
    # return dx (N, C, R, S), dW (F, C, k, k), db (F,)
    raise NotImplementedError  # your code here

exercises.check("conv_backward", conv_backward)

# %% [markdown]
# ## 6. Two trained models: the conv VAE and a dense one
#
# The conv VAE with the Keras example's layers and Z = 2, and the dense 784-128-2 VAE of notebook 02,
# trained the same way: three epochs on the same 10,000 grey-level digits, seed 0, batch 128, Adam at 2e-3
# (twice the Keras example's rate, so that three short epochs get somewhere). Both come bundled with
# tinyvae; `RETRAIN = True` in the first cell (or `TINYVAE_RETRAIN=1`) trains them here instead, with a
# progress bar, and the printed commands make them from a shell. The real thing is
# `tinyvae train --arch conv --latent 2 --epochs 30` ([its results](../docs/results.md#the-convolutional-vae)); three epochs on a
# sixth of the data give blurrier pictures.

# %%
names = {"conv": "conv-z2", "dense": "vae-z2"}
models = {kind: pretrained.load(name, retrain=RETRAIN or pretrained.retrain_requested()) for kind, name in names.items()}
conv_vae, dense_vae = models["conv"], models["dense"]
recipes = {kind: pretrained.config(name) for kind, name in names.items()}
assert all(getattr(recipes["conv"], f) == getattr(recipes["dense"], f)
           for f in ("latent", "epochs", "limit_train", "batch_size", "lr", "seed", "binarize"))
x_eval = mnist.test_x[:1000]
scores = {kind: tinyvae.evaluate_elbo(model, x_eval, seed=0) for kind, model in models.items()}
for kind, model in models.items():
    print(f"{kind:>5}: {model.config.describe():<45} {model.num_params:>7,} parameters, "
          f"test negative ELBO {scores[kind]['loss']:.1f} nats (reconstruction {scores[kind]['recon']:.1f} "
          f"+ KL {scores[kind]['kl']:.1f})\n       {pretrained.command(names[kind])} --out DIR")
print(conv_vae.encoder, "\n", conv_vae.decoder)

# %% [markdown]
# ## 7. The latent space of the conv VAE
#
# Where 2,000 test digits land (their posterior means), and the decoder's image at each point of a
# 20 × 20 grid of $z$ spread over the prior's quantiles.

# %%
codes = conv_vae.encode(data.to_float(mnist.test_x[:2000]))[0]              # (2000, 2) posterior means
low, high = codes.min(0), codes.max(0)
below = [0.5 * (1 + math.erf(v / math.sqrt(2))) for v in low]              # Φ(min z₁), Φ(min z₂)
outside = 1 - (1 - below[0]) * (1 - below[1])                                # prior mass where z₁ < min z₁ or z₂ < min z₂
print(f"the codes lie in z₁ ∈ [{low[0]:.2f}, {high[0]:.2f}] and z₂ ∈ [{low[1]:.2f}, {high[1]:.2f}]; "
      f"{below[0]:.0%} of the prior's mass along z₁ lies left of every code, {below[1]:.0%} along z₂ below "
      f"every code, {outside:.0%} of its 2-D mass in one of the two")
correlation = np.corrcoef(codes.T)[0, 1]
print(f"correlation of z₁ and z₂ over the codes: {correlation:.2f}")
assert (low > 0).all() and below[0] > 0.5 and 0.75 < outside < 0.85 and correlation > 0.8
ones = np.median(codes[mnist.test_y[:2000] == 1], axis=0)
print(f"median code of the digit 1: {ones}")
assert ones[1] > 1.645                                                        # above the grid of the manifold below
plots.plot_latent(conv_vae, mnist.test_x[:2000], mnist.test_y[:2000])

# %% [markdown]
# The codes do not fill the prior. All 2,000 sit to the right of z₁ = 0 and above z₂ = 0, so more than
# half of the prior's mass along z₁ lies left of every code, and about four fifths of its 2-D mass lies
# left of or below every code (printed above): the decoder has never been asked to draw anything there. And the codes lie along one thin curve (z₁ and z₂ strongly correlated, printed above):
# the two latent numbers act almost as one, with the 1s at its far end. Three short epochs have not
# pulled the cloud onto the prior.

# %%
plots.plot_manifold(conv_vae, n=20)

# %% [markdown]
# The grid spans ±1.64 on each axis around the origin ($z_2$ grows upwards), so most of it lies where no
# code lies: the codes occupy only its upper right part, and the 1s, whose codes sit near the top of the
# curve (median printed above), lie above the grid altogether. Every cell decodes to a blurred blob, none
# to a clear digit. The picture changes mostly from top to bottom and little from left to right, as the
# codes' one thin curve would suggest: 9- or 8-like blobs in the upper rows across almost all columns,
# rounder blobs further down, and 0-like rings at the bottom right. The manifold of a VAE is only as good
# as the overlap of its codes with the prior. Long runs of the same conv layers used little of their
# latent space too, in the one run we have: trained for 30 epochs with Z = 20 and seed 0, only 4 of their
# 20 latent units were active, against all 20 of a dense 784-400-20 VAE trained the same way
# ([the convolutional VAE results](../docs/results.md#the-convolutional-vae)).
#
# ## 8. Reconstructions: conv against dense
#
# The same sixteen test digits through each model (the decoded posterior mean): conv first, then dense.

# %%
plots.plot_reconstructions(conv_vae, mnist.test_x[:16])

# %%
plots.plot_reconstructions(dense_vae, mnist.test_x[:16])

# %%
ratio = dense_vae.num_params / conv_vae.num_params
print(f"test negative ELBO on 1,000 digits: conv {scores['conv']['loss']:.1f}, dense {scores['dense']['loss']:.1f} nats; "
      f"parameters: dense / conv = {ratio:.1f}")
assert scores["dense"]["loss"] < scores["conv"]["loss"] and 1 < ratio < 2

# %% [markdown]
# After this short run the conv VAE's reconstructions are blurred blobs that tell the 1s from the other
# digits and little else, and the dense VAE is ahead on the negative ELBO, with 1.5 times the
# parameters. The conv VAE squeezes
# every digit through a 16-unit dense layer before its two latent numbers and builds its images from
# 3×3 patches; these runs do not test which of the two holds it back. [The results page](../docs/results.md#the-convolutional-vae)
# gives longer runs, 30 epochs on all 60,000 digits: the conv VAE with Z = 2 and with Z = 20, against a
# dense 784-400-20 VAE at Z = 20 (no dense model with Z = 2).
#
# Next: [09 · questions everyone asks](09_questions.ipynb). Deeper: every formula of this notebook with
# its derivation in [convolution.md](../derivations/convolution.md#eq:im2col), including [the gradients of
# exercise (i)](../derivations/convolution.md#eq:conv-grad-x) and [why checkerboards
# appear](../derivations/convolution.md#eq:checkerboard).
