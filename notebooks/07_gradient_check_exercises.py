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
# # 07 · Write the backward passes yourself
#
# **What you will do.** Implement the VAE's backward passes one piece at a time, from a dense layer
# to the whole model, and have each one checked. `tinyvae.exercises.check(name, your_function)` runs
# your function on seeded float64 inputs of awkward shapes (N = 4, D = 7, H = 5, Z = 3, K = 6, C = 10: nothing is
# square, so a missing transpose shows, and N > 1, so a sum-for-mean mix-up shows), compares its
# gradients with central differences, and when something is off it says which gradient is wrong, by how
# much, and the likely cause: a missing transpose, a missing ½, a sum where the batch mean is meant,
# the wrong sign, a fresh ε, σ² in place of σ, a forgotten bias gradient, a wrong shape.
#
# Shapes use one alphabet: N batch, D input, H hidden, Z latent, K importance samples (and, for the
# convolution, C and F channels in and out, R × S images, k × k kernels; for (k), C classes). Losses sum over D and Z and average
# over N ([the reduction convention](../derivations/notation.md#eq:loss-reduction)).
#
# | exercise | function | inputs | returns | read first | where |
# | --- | --- | --- | --- | --- | --- |
# | (a) | `dense_backward(dy, x, W)` | dy (N, H), x (N, D), W (D, H) | dx (N, D), dW (D, H), db (H,) | [dense layer gradients](../derivations/dense.md#eq:dense-grad-w) | here |
# | (b1) | `relu_backward(dy, x)` (worked example) | dy (N, H), x (N, H) | dx (N, H) | [ReLU](../derivations/activations.md#eq:relu-grad) | here |
# | (b2) | `tanh_backward(dy, y)` | dy (N, H), y = tanh x (N, H) | dx (N, H) | [tanh](../derivations/activations.md#eq:tanh-grad) | here |
# | (c) | `bce_with_logits(logits, x)` | logits (N, D), x (N, D) | loss (a number), dlogits (N, D) | [stable BCE](../derivations/bernoulli.md#eq:bce-stable), [its gradient](../derivations/bernoulli.md#eq:bce-grad) | here |
# | (d) | `gaussian_kl(mu, log_var)` | mu (N, Z), log_var (N, Z) | kl (a number), dmu (N, Z), dlog_var (N, Z) | [KL](../derivations/kl.md#eq:kl-closed-form), [dμ](../derivations/kl.md#eq:kl-grad-mu), [dlog σ²](../derivations/kl.md#eq:kl-grad-logvar) | here |
# | (e1) | `reparameterize(mu, log_var, eps)` | mu, log_var, eps (N, Z) | z (N, Z) | [z = μ + σ ⊙ ε](../derivations/reparameterization.md#eq:reparam) | here |
# | (e2) | `reparameterize_backward(dz, eps, std)` | dz, eps, std (N, Z) | dmu (N, Z), dlog_var (N, Z) | [dμ, dlog σ²](../derivations/reparameterization.md#eq:reparam-grad-logvar) | here |
# | (f) | `vae_backward(params, cache)` | two dicts of arrays (their shapes are printed in (f)) | a dict: one gradient per key of `params`, of its shape | [the encoder's two paths](../derivations/reparameterization.md#eq:encoder-output-grad), [the loss](../derivations/elbo.md#eq:vae-loss) | here |
# | (g) | `iwae_loss(log_w)` | log_w (N, K) | loss (a number), dlog_w (N, K) | [the IWAE gradient](../derivations/iwae.md#eq:iwae-grad-logw) | here |
# | (h) | `iwae_encoder_backward(weights, dlogpx_dz, z, eps, std)` | weights (N, K), dlogpx_dz (N, K, Z), z (N, K, Z), eps (N, K, Z), std (N, Z) | dmu (N, Z), dlog_var (N, Z) | [log q, twice](../derivations/iwae.md#eq:iwae-log-q-total) | here |
# | (i) | `conv_backward(dy, x, W, stride, padding)` | dy (N, F, H_out, W_out), x (N, C, R, S), W (F, C, k, k), two ints | dx (N, C, R, S), dW (F, C, k, k), db (F,) | [im2col](../derivations/convolution.md#eq:im2col), [col2im](../derivations/convolution.md#eq:col2im) | [notebook 08](08_conv_vae.ipynb), section 5 |
# | (j) | `planar_step(z, u, w, b, dz_out, g)` | z (N, Z), u (Z,), w (Z,), b a number, dz_out (N, Z), g (N,) | z_out (N, Z), logdet (N,), dz (N, Z), du (Z,), dw (Z,), db (a number) | [the planar step](../derivations/flows.md#eq:planar-step), [its backward](../derivations/flows.md#eq:planar-backward) | here |
# | (k) | `m2_batch_loss(neg_l, logits, y_onehot, alpha)` | neg_l (N, C), logits (N, C), y_onehot (N, C), alpha (a number) | loss (a number), dneg_l (N, C), dlogits (N, C) | [the gradient through q(y\|x)](../derivations/semi-supervised.md#eq:m2-grad-logits) | here |
#
# **Checking an answer.** In a notebook: `exercises.check("dense_backward", dense_backward)` for one
# exercise (the cell under each exercise does this), `exercises.check_all(globals())` for all of them.
# From a shell, with your answers as functions of those names in a file:
# `python -m tinyvae.exercises my_answers.py`. The full statement of an exercise (its shapes, its
# reduction, the pages to read) is its docstring: `help(exercises.dense_backward)`, or
# `help(tinyvae.exercises.NAME)` for any name in the table.
#
# Each exercise below has a stub that raises `NotImplementedError` (the check then says "not implemented
# yet") and a check. Replace the `raise` with your code and run the cell again.

# %%
import numpy as np
from tinyvae import exercises

rng = np.random.default_rng(0)


# %% [markdown]
# ## A worked example: ReLU backward
#
# $y = \max(x, 0)$, so the local slope is 1 where $x > 0$ and 0 elsewhere ([eq:relu-grad](../derivations/activations.md#eq:relu-grad)),
# and by the chain rule $dx = dy \odot [x > 0]$. A classic slip is to return the slope alone and forget
# the upstream gradient `dy`. Here is that wrong answer and what the checker says about it:

# %%
def relu_backward(dy, x):
    return (x > 0) * 1.0          # wrong: the slope alone, dy forgotten

exercises.check("relu_backward", relu_backward)


# %% [markdown]
# The feedback names the gradient (`dx`), shows the gradient check (relative error, the index of the
# worst entry, analytic against numeric), and names the cause. The fix:

# %%
def relu_backward(dy, x):
    return dy * (x > 0)           # (N, H): dy where x > 0, zero elsewhere

exercises.check("relu_backward", relu_backward)


# %% [markdown]
# ## (a) Dense layer
#
# Forward: $y = xW + b$ with x (N, D), W (D, H), b (H,). Given dy (N, H), return `(dx, dW, db)` of
# shapes (N, D), (D, H), (H,). Read [dense.md](../derivations/dense.md#eq:dense-grad-w): write each shape next to each
# product and the transposes fall out. Do not divide by N: dy already carries the loss's 1/N.

# %%
def dense_backward(dy, x, W):
    # return dx (N, D), dW (D, H), db (H,)
    raise NotImplementedError  # your code here

exercises.check('dense_backward', dense_backward)


# %% [markdown]
# ## (b2) tanh
#
# The forward keeps its *output* $y = \tanh x$; the slope is a function of it ([eq:tanh-grad](../derivations/activations.md#eq:tanh-grad)).
# Given dy and y, both (N, H), return dx (N, H).

# %%
def tanh_backward(dy, y):
    # return dx (N, H)
    raise NotImplementedError  # your code here

exercises.check('tanh_backward', tanh_backward)


# %% [markdown]
# ## (c) Binary cross-entropy from logits
#
# Return `(loss, dlogits)`: the loss summed over the D pixels and averaged over the N examples (one
# number), and its gradient (N, D). It must stay finite and exact for logits of ±1e4, so use the
# [stable form](../derivations/bernoulli.md#eq:bce-stable); the [gradient](../derivations/bernoulli.md#eq:bce-grad) is short.

# %%
def bce_with_logits(logits, x):
    # return loss (a number), dlogits (N, D)
    raise NotImplementedError  # your code here

exercises.check('bce_with_logits', bce_with_logits)


# %% [markdown]
# ## (d) The Gaussian KL
#
# KL(N(μ, diag σ²) ‖ N(0, I)) with `mu` and `log_var` (= log σ²) of shape (N, Z). Return
# `(kl, dmu, dlog_var)`: the KL summed over Z and averaged over N, and its gradients, (N, Z) each.
# Read [the closed form](../derivations/kl.md#eq:kl-closed-form) and [the gradient w.r.t. log σ²](../derivations/kl.md#eq:kl-grad-logvar).

# %%
def gaussian_kl(mu, log_var):
    # return kl (a number), dmu (N, Z), dlog_var (N, Z)
    raise NotImplementedError  # your code here

exercises.check('gaussian_kl', gaussian_kl)


# %% [markdown]
# ## (e1) and (e2) The reparameterization, forward and backward
#
# Forward: $z = \mu + \sigma \odot \varepsilon$ with $\sigma = \exp(\tfrac12\log\sigma^2)$ and ε given
# ([eq:reparam](../derivations/reparameterization.md#eq:reparam)). Backward: given dz, the forward's ε and σ, return
# `(dmu, dlog_var)` ([eq:reparam-grad-logvar](../derivations/reparameterization.md#eq:reparam-grad-logvar)). All arrays (N, Z).

# %%
def reparameterize(mu, log_var, eps):
    # return z (N, Z)
    raise NotImplementedError  # your code here

exercises.check('reparameterize', reparameterize)


# %%
def reparameterize_backward(dz, eps, std):
    # return dmu (N, Z), dlog_var (N, Z)
    raise NotImplementedError  # your code here

exercises.check('reparameterize_backward', reparameterize_backward)

# %% [markdown]
# ## (f) The whole VAE
#
# `exercises.vae_forward(params, x, eps)` computes a one-hidden-layer VAE (tanh hidden layers, Bernoulli
# decoder) and returns the loss and a `cache` of everything the backward needs. Write `vae_backward(params, cache)`
# returning a dict of gradients with the keys of `params`. Chain your answers above, from the loss back to
# the input; remember that μ and log σ² reach the loss twice, through z and through the KL
# ([eq:encoder-output-grad](../derivations/reparameterization.md#eq:encoder-output-grad)). Here are the pieces and their shapes:

# %%
params = exercises.init_vae_params(rng)              # D = 7, H = 5, Z = 3
x = rng.uniform(0, 1, (4, 7))                        # N = 4
eps = rng.standard_normal((4, 3))
loss, cache = exercises.vae_forward(params, x, eps)
print(f"loss = {loss:.4f}")
print("params:", {k: v.shape for k, v in params.items()})
print("cache: ", {k: v.shape for k, v in cache.items()})


# %%
def vae_backward(params, cache):
    # return {name: gradient of the same shape as params[name]}
    raise NotImplementedError  # your code here

exercises.check('vae_backward', vae_backward)

# %% [markdown]
# ## (g) The importance-weighted loss
#
# The IWAE trains on the bound $L_K$: for each example, K samples and their log weights
# $\log w_k = \log p(x \mid z_k) + \log p(z_k) - \log q(z_k \mid x)$. Write `iwae_loss(log_w)`: from the
# (N, K) log weights, the loss $-\frac1N\sum_n \log \frac1K \sum_k w_{nk}$ and its gradient with respect to
# `log_w` ([derivations/iwae.md](../derivations/iwae.md#eq:iwae-grad-logw)). The checker also feeds log weights of
# ±1e4, where a plain `np.log(np.mean(np.exp(log_w)))` fails.

# %%
def iwae_loss(log_w):
    # return loss (a number), dlog_w (N, K)
    raise NotImplementedError  # your code here

exercises.check('iwae_loss', iwae_loss)

# %% [markdown]
# ## (h) The IWAE gradient at the encoder
#
# Each of the N examples has K samples $z_{nk} = \mu_n + \sigma_n \odot \varepsilon_{nk}$. Given
#
# - `weights` (N, K): the normalized weights $\tilde w_{nk}$ (softmax of the log weights over k; your (g) returns $-\tilde w / N$),
# - `dlogpx_dz` (N, K, Z): $\partial \log p(x_n \mid z)/\partial z$ at each sample, the gradient of the
#   log-likelihood itself (the decoder's backward on a batch-mean negative log-likelihood, as in notebook 06,
#   gives this with the opposite sign and divided by the batch size),
# - `z` and `eps` (N, K, Z): the samples and their noise,
# - `std` (N, Z): σ of each example's $q$,
#
# write `iwae_encoder_backward` returning the loss's gradient at μ and at log σ², each (N, Z). The trap:
# log q depends on μ and log σ² through the sample *and* directly
# ([eq:iwae-log-q-total](../derivations/iwae.md#eq:iwae-log-q-total)).

# %%
def iwae_encoder_backward(weights, dlogpx_dz, z, eps, std):
    # return dmu (N, Z), dlog_var (N, Z)
    raise NotImplementedError  # your code here

exercises.check('iwae_encoder_backward', iwae_encoder_backward)

# %% [markdown]
# ## (j) A planar flow step
#
# A normalizing flow pushes the encoder's sample $z_0$ through invertible steps and keeps track of the
# density: $\log q_T(z_T) = \log q_0(z_0) - \sum_t \log\lvert\det J_t\rvert$
# ([eq:flow-log-q](../derivations/flows.md#eq:flow-log-q)). One planar step is
# $f(z) = z + \hat u \tanh(w^\top z + b)$, whose log-determinant is $\log\lvert 1 + \hat u^\top\psi(z)\rvert$ with
# $\psi = \tanh'(w^\top z + b) w$ ([eq:planar-logdet](../derivations/flows.md#eq:planar-logdet)), and
# $\hat u = u + (m(w^\top u) - w^\top u) w/\lVert w\rVert^2$, $m(a) = -1 + \operatorname{softplus}(a)$, keeps the
# step invertible ([eq:planar-u-hat](../derivations/flows.md#eq:planar-u-hat)). Write `planar_step`: the
# forward (`z_out`, `logdet`) and the backward of a loss that holds the step's output (its gradient
# `dz_out` comes from the rest of the model) and the log-determinant as $-\sum_n g_n \log\lvert\det J(z_n)\rvert$,
# with `g` each example's weight (1/N for the ELBO; the check's `g` differs from example to example, so use
# it). Remember that the log-determinant depends on $z$, $u$, $w$ and $b$ too, and that $u$ reaches the loss
# only through $\hat u$ ([eq:planar-backward](../derivations/flows.md#eq:planar-backward)).
#
# Work from the equations, and try this before you read the numeric check of flows.md: its block that
# defines `planar_backward` is a complete solution of this exercise.

# %%
def planar_step(z, u, w, b, dz_out, g):
    # return z_out (N, Z), logdet (N,), dz (N, Z), du (Z,), dw (Z,), db (a number)
    raise NotImplementedError  # your code here

exercises.check('planar_step', planar_step)

# %% [markdown]
# ## (k) The loss of the semi-supervised M2
#
# M2 ([semi-supervised.md](../derivations/semi-supervised.md)) has a classifier, $q(y \mid x) = \mathrm{softmax}$
# of its logits, and scores each pair (x, y) with the negative labelled bound $-\mathcal L(x, y)$
# ([eq:m2-labelled](../derivations/semi-supervised.md#eq:m2-labelled)). A labelled example adds
# $-\mathcal L(x, y) - \alpha \log q(y \mid x)$; an unlabelled one adds
# $-\mathcal U(x) = \sum_y q(y \mid x)\big(-\mathcal L(x, y) + \log q(y \mid x)\big)$
# ([eq:m2-unlabelled](../derivations/semi-supervised.md#eq:m2-unlabelled)); the loss is their mean over the N
# examples ([eq:m2-loss](../derivations/semi-supervised.md#eq:m2-loss), where α is called $\alpha_{\text{batch}}$).
# Write `m2_batch_loss`: the loss and its gradients with respect to `neg_l` and `logits`. `neg_l` (N, C) holds
# $-\mathcal L(x_n, y)$ for every example and every label; for a labelled example only its label's column enters
# the loss, so `dneg_l` is 0 in its other columns. `y_onehot` marks the labelled examples (a row of zeros: an
# unlabelled one). Remember that $q(y \mid x)$ appears twice in $-\mathcal U$, as the weights and inside the log
# ([eq:m2-grad-logits](../derivations/semi-supervised.md#eq:m2-grad-logits)), and that the α term is the
# classifier's only gradient from a labelled example
# ([eq:m2-grad-alpha](../derivations/semi-supervised.md#eq:m2-grad-alpha)).

# %%
def m2_batch_loss(neg_l, logits, y_onehot, alpha):
    # return loss (a number), dneg_l (N, C), dlogits (N, C)
    raise NotImplementedError  # your code here

exercises.check('m2_batch_loss', m2_batch_loss)

# %% [markdown]
# ## Everything at once
#
# `check_all` takes a module or a dict of functions; `globals()` is the dict of everything defined in
# this notebook, so this checks all your answers together. Exercise (i), `conv_backward`, is posed in
# notebook 08 and is not defined here: the summary's last line lists it among those not checked.

# %%
exercises.check_all(globals())

# %% [markdown] jupyter={"source_hidden": true}
# ## Solutions
#
# Stuck after reading the derivation and the checker's hint? The reference solutions are plain NumPy, one
# short function per exercise, in [`tinyvae/learn/solutions.py`](../tinyvae/learn/solutions.py). Try first: the
# hint usually names the line to change.
#
# Next: [08 · the convolutional VAE](08_conv_vae.ipynb), where exercise (i) waits. Deeper: the whole
# backward pass of the library's VAE in one place, [the encoder's two paths](../derivations/reparameterization.md#eq:encoder-output-grad);
# how a gradient check decides ([gradcheck.md](../derivations/gradcheck.md)); and the IWAE's gradient
# ([iwae.md](../derivations/iwae.md#eq:iwae-grad-logw)); a flow step's, with its log-determinant
# ([flows.md](../derivations/flows.md#eq:planar-backward)); and M2's, through the classifier's two roles
# ([semi-supervised.md](../derivations/semi-supervised.md#eq:m2-grad-logits)).
