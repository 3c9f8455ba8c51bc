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
# # 07 · The convolutional VAE, step by step
#
# **What you will see.** The convolutional VAE of the Keras example (two stride-2 convolutions in the
# encoder, three transposed convolutions in the decoder, a 2-D latent space) built from tinyvae's
# hand-written layers. First the convolution itself: im2col drawn on a real digit, so that a whole
# layer becomes one matrix product; then the transposed convolution as the convolution's adjoint,
# checked to 1e-12; the checkerboard a stride-2 transposed convolution paints; a gradient check of
# both layers and of a whole conv VAE. Then a short training run, the latent scatter and the learned
# manifold for Z = 2, and the reconstructions of the conv VAE beside those of a dense one.
#
# Background: [im2col](../derivations/convolution.md#eq:im2col),
# [the three gradients](../derivations/convolution.md#eq:conv-grad-w),
# [col2im](../derivations/convolution.md#eq:col2im), [the adjoint](../derivations/convolution.md#eq:conv-adjoint),
# [the transposed convolution](../derivations/convolution.md#eq:conv-transpose),
# [checkerboards](../derivations/convolution.md#eq:checkerboard).

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
fig, axes = plt.subplots(2, 9, figsize=(11, 3.2), gridspec_kw={"height_ratios": [1, 0.45]})
for r, ax in enumerate(axes[0]):
    ax.imshow(cols[r].reshape(14, 14), cmap="gray_r")
    ax.set_title(f"tap ({r // 3}, {r % 3})", fontsize=8)
    ax.axis("off")
big = fig.add_subplot(2, 1, 2)
for ax in axes[1]:
    ax.remove()
big.imshow(cols, cmap="gray_r", aspect="auto")
big.set_title("the whole 9 × 196 matrix: one column per output pixel", fontsize=9)
big.set_yticks(range(9))
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
fig, axes = plt.subplots(1, 5, figsize=(8, 1.8))
axes[0].imshow(digit[0, 0], cmap="gray_r"); axes[0].set_title("input", fontsize=8)
for c in range(4):
    axes[c + 1].imshow(y[0, c], cmap="RdBu_r"); axes[c + 1].set_title(f"map {c}", fontsize=8)
for ax in axes:
    ax.axis("off")
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
fig, axes = plt.subplots(1, 2, figsize=(6, 3))
for ax, img, title in ((axes[0], k3, "3×3 kernel, stride 2"), (axes[1], k4, "4×4 kernel, stride 2")):
    ax.imshow(img, cmap="gray_r", vmin=0, vmax=4); ax.set_title(title, fontsize=9); ax.axis("off")
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
# The last exercise of [notebook 06's table](06_gradient_check_exercises.ipynb). `exercises.conv_forward(x, W, b,
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
# ## 6. A short training run, and the dense VAE beside it
#
# The conv VAE with the Keras example's layers and Z = 2, and the dense 784-400-2 VAE, each trained for
# three epochs on the same 10,000 digits with the same seed, batch 128, Adam at 3e-3 (three times the
# Keras example's rate, so that three short epochs get somewhere). The real thing is
# `tinyvae train --arch conv --latent 2 --epochs 30` (results in the README); three epochs on a
# sixth of the data give blurrier pictures.

# %%
quiet = dict(progress=False, pictures=False, log=lambda line: None)
common = dict(latent=2, epochs=3, limit_train=10_000, limit_test=1_000, lr=3e-3, seed=0)
conv_vae = tinyvae.load_model(tinyvae.train(tinyvae.TrainConfig(arch="conv", out=str(runs / "conv"), **common),
                                            **quiet) / "checkpoint.npz")
dense_vae = tinyvae.load_model(tinyvae.train(tinyvae.TrainConfig(out=str(runs / "dense"), **common),
                                             **quiet) / "checkpoint.npz")
for name, model in (("conv", conv_vae), ("dense", dense_vae)):
    rows = plots.read_metrics(runs / name)
    print(f"{name:>5}: {model.config.describe():<45} {model.num_params:>7,} parameters, "
          f"test loss by epoch {[round(r['test_loss'], 1) for r in rows]}")
    assert rows[-1]["test_loss"] < rows[0]["test_loss"]
print(conv_vae.encoder, "\n", conv_vae.decoder)

# %% [markdown]
# ## 7. The latent space of the conv VAE
#
# Where 2,000 test digits land (their posterior means), and the decoder's image at each point of a
# 20 × 20 grid of $z$ spread over the prior's quantiles.

# %%
plots.plot_latent(conv_vae, mnist.test_x[:2000], mnist.test_y[:2000])

# %%
plots.plot_manifold(conv_vae, n=20)

# %% [markdown]
# ## 8. Reconstructions: conv against dense
#
# The same sixteen test digits through each model (the decoded posterior mean), conv above, dense
# below, and each model's test negative ELBO after the three epochs above, in nats per digit.

# %%
plots.plot_reconstructions(conv_vae, mnist.test_x[:16])

# %%
plots.plot_reconstructions(dense_vae, mnist.test_x[:16])

# %%
final = {name: plots.read_metrics(runs / name)[-1]["test_loss"] for name in ("conv", "dense")}
for name, loss in final.items():
    print(f"{name:>5}: test negative ELBO {loss:.1f} nats")
print(f"parameters: dense / conv = {dense_vae.num_params / conv_vae.num_params:.1f}")
assert final["dense"] < final["conv"] and dense_vae.num_params > 4 * conv_vae.num_params

# %% [markdown]
# After this short run the dense VAE is ahead, with almost five times the parameters. The conv VAE
# squeezes every digit through a 16-unit dense layer before its two latent numbers and builds its
# images from 3×3 patches; the README compares the two after 30 epochs on all 60,000 digits.

# %% [markdown]
# Next: [08 · questions everyone asks](08_questions.ipynb).
