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
# # 01 · A VAE on one screen
#
# **What you will see.** A whole Variational Autoencoder trained on MNIST, with every step of its
# training written out in one cell: an encoder that maps a digit $x$ to the mean $\mu$ and the log-variance
# $\log\sigma^2$ of $q(z \mid x)$, a latent sample $z = \mu + \sigma \odot \varepsilon$, a decoder that
# maps $z$ back to pixel logits, the loss (the [negative ELBO](../derivations/elbo.md#eq:vae-loss):
# reconstruction + KL), the backward pass through each piece in reverse, and an Adam step. Each line
# that computes a formula names its equation, as `[eq:...]`, and each equation is derived in
# [`derivations/`](../derivations/README.md). Then the same weights and the same noise go through
# `tinyvae.VAE`, which gives the same loss and the same gradients bit for bit, and the last section lists
# what the library adds to these lines.
#
# **Read alongside:** [the ELBO](../derivations/elbo.md#eq:elbo),
# [the reparameterization](../derivations/reparameterization.md#eq:reparam) and its
# [backward](../derivations/reparameterization.md#eq:encoder-output-grad),
# [the KL in closed form](../derivations/kl.md#eq:kl-closed-form),
# [the Bernoulli loss from logits](../derivations/bernoulli.md#eq:bce-stable),
# [the dense layer](../derivations/dense.md#eq:dense-forward), [Adam](../derivations/optimizers.md#eq:adam-update).
# Shapes use one alphabet: N examples in a batch, D = 784 pixels, H hidden units, Z latent dimensions.
#
# **Before you start.** Nothing needs to be read first. The dense layer and its initialization, the ReLU,
# the Bernoulli loss from logits and Adam are derived later, in the core course; on a first reading, take
# those lines on trust. One convention helps now: [how the loss reduces](../derivations/notation.md#eq:loss-reduction),
# summed over pixels and latent dimensions and averaged over the batch.

# %%
# %matplotlib inline
import sys

import numpy as np
import matplotlib.pyplot as plt
from tqdm.auto import tqdm
import tinyvae
from tinyvae import data

mnist = data.load_dataset()                           # the bundled MNIST: uint8 images, 60 000 + 10 000
D, H, Z, N = 784, 200, 16, 100                        # pixels, hidden units, latent dimensions, batch size
rng = np.random.default_rng(0)                        # every random number below comes from here


def init(fan_in, fan_out, rule):                      # a weight matrix (fan_in, fan_out), float32
    if rule == "he":                                  # for a layer followed by a ReLU  [eq:he-init]
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), (fan_in, fan_out)).astype(np.float32)
    limit = np.sqrt(6.0 / (fan_in + fan_out))         # for an output layer  [eq:glorot-init]
    return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)


P = {"W1": init(D, H, "he"), "b1": np.zeros(H, np.float32),          # encoder: D -> H -> 2Z
     "W2": init(H, 2 * Z, "glorot"), "b2": np.zeros(2 * Z, np.float32),
     "W3": init(Z, H, "he"), "b3": np.zeros(H, np.float32),          # decoder: Z -> H -> D
     "W4": init(H, D, "glorot"), "b4": np.zeros(D, np.float32)}
G = {name: np.zeros_like(value) for name, value in P.items()}       # dL/dθ, same keys and shapes as P
print({name: value.shape for name, value in P.items()})

# %% [markdown]
# ## 1. The training step
#
# `x` is a batch of binary digits (N, D), `eps` the noise ε ~ N(0, I) (N, Z), drawn by the caller, so
# that the step is a deterministic function of the weights, the data and ε. The loss is summed over
# pixels and latent dimensions and averaged over the batch: nats per example
# ([eq:loss-reduction](../derivations/notation.md#eq:loss-reduction)). Two library functions compute a
# loss term with its gradient: `tinyvae.bernoulli_nll` (the binary cross-entropy from logits, written
# stably for logits as large as ±1e4) and `tinyvae.gaussian_kl` (the closed-form KL); `tinyvae.Adam`
# takes the step (section 2); everything else is written here.

# %%
def train_step(x, eps):
    """Forward, loss and backward of one batch; fills G with dL/dθ and returns (loss, recon, kl)."""
    a1 = x @ P["W1"] + P["b1"]                        # (N, H)  [eq:dense-forward]
    h1 = np.maximum(a1, 0)                            # (N, H)  [eq:relu]
    h = h1 @ P["W2"] + P["b2"]                        # (N, 2Z) [eq:dense-forward]
    mu, log_var = h[:, :Z], h[:, Z:]                  # (N, Z) each; log_var is log σ²
    std = np.exp(0.5 * log_var)                       # σ = exp(½ log σ²)
    z = mu + std * eps                                # (N, Z)  [eq:reparam]
    a3 = z @ P["W3"] + P["b3"]                        # (N, H)  [eq:dense-forward]
    h3 = np.maximum(a3, 0)                            # (N, H)  [eq:relu]
    logits = h3 @ P["W4"] + P["b4"]                   # (N, D)  [eq:dense-forward]
    recon, dlogits = tinyvae.bernoulli_nll(logits, x)             # −log p(x|z) [eq:bce-stable], (σ(l) − x)/N [eq:bce-grad]
    kl, dmu_kl, dlog_var_kl = tinyvae.gaussian_kl(mu, log_var)    # [eq:kl-closed-form] [eq:kl-grad-mu] [eq:kl-grad-logvar]
    loss = recon + kl                                 # the negative ELBO  [eq:vae-loss]
    # backward: each piece in reverse order, each taking dL/d(its output) and giving dL/d(its input)
    G["W4"][...] = h3.T @ dlogits                     # (H, D)  [eq:dense-grad-w]
    G["b4"][...] = dlogits.sum(axis=0)                # (D,)    [eq:dense-grad-b]
    da3 = (dlogits @ P["W4"].T) * (h3 > 0)            # (N, H)  [eq:dense-grad-x] [eq:relu-grad]
    G["W3"][...] = z.T @ da3                          # (Z, H)  [eq:dense-grad-w]
    G["b3"][...] = da3.sum(axis=0)                    # (H,)    [eq:dense-grad-b]
    dz = da3 @ P["W3"].T                              # (N, Z)  [eq:dense-grad-x]
    dmu = dz                                          # [eq:reparam-grad-mu]
    dlog_var = 0.5 * dz * eps * std                   # the forward's own ε and σ  [eq:reparam-grad-logvar]
    dh = np.concatenate([dmu + dmu_kl, dlog_var + dlog_var_kl], axis=1)  # (N, 2Z)  [eq:encoder-output-grad]
    G["W2"][...] = h1.T @ dh                          # (H, 2Z) [eq:dense-grad-w]
    G["b2"][...] = dh.sum(axis=0)                     # (2Z,)   [eq:dense-grad-b]
    da1 = (dh @ P["W2"].T) * (h1 > 0)                 # (N, H)  [eq:dense-grad-x] [eq:relu-grad]
    G["W1"][...] = x.T @ da1                          # (D, H)  [eq:dense-grad-w]; nothing upstream of x learns
    G["b1"][...] = da1.sum(axis=0)                    # (H,)    [eq:dense-grad-b]
    return float(loss), float(recon), float(kl)


# %% [markdown]
# ## 2. Train
#
# Adam ([eq:adam-update](../derivations/optimizers.md#eq:adam-update)) updates every array of `P` in place
# from the same array of `G`. Each batch is drawn at random from the first 20 000 training digits and
# binarized afresh (pixel $d$ is 1 with probability grey$_d$/255), because the Bernoulli loss is a
# log-likelihood of binary pixels ([bernoulli.md](../derivations/bernoulli.md#eq:bce-logits)).
#
# **In the browser** (this notebook's JupyterLite copy, where `sys.platform` is `"emscripten"`) the loop
# runs 400 steps of 50 digits instead of 800 steps of 100, a quarter of the arithmetic: NumPy there has no
# optimized matrix library, and each step takes many times longer than on your machine. The same lines
# print that run's figures, and the same `assert`s check them. Run the notebook in Jupyter on your own
# machine for the 800 steps whose outputs are stored with it.

# %%
STEPS = 800
if sys.platform == "emscripten":                      # the browser's shorter run (see above)
    STEPS, N = 400, 50
    print(f"in the browser: {STEPS} steps of {N} digits instead of 800 of 100; run the notebook natively for the full run")
train_x = mnist.train_x[:20_000]
adam = tinyvae.Adam(list(P.values()), list(G.values()), lr=2e-3)
history = []
for step in tqdm(range(STEPS), desc="training"):
    x = data.to_float(train_x[rng.integers(0, len(train_x), N)], binarize="dynamic", rng=rng)  # (N, D)
    eps = rng.standard_normal((N, Z), dtype=np.float32)                                       # (N, Z)
    history.append(train_step(x, eps))
    adam.step()                                       # θ ← θ − lr · m̂ / (sqrt(v̂) + eps_Adam) for each θ  [eq:adam-update]
history = np.array(history)                           # (STEPS, 3): loss, recon, kl
first, last = history[:20].mean(axis=0), history[-100:].mean(axis=0)
print(f"first 20 steps: loss {first[0]:6.1f} = recon {first[1]:6.1f} + KL {first[2]:5.1f} nats per example")
print(f"last 100 steps: loss {last[0]:6.1f} = recon {last[1]:6.1f} + KL {last[2]:5.1f} nats per example")
assert last[0] < 0.5 * first[0] and last[2] > 2 * history[:50, 2].mean()
kl_by_10 = history[:40, 2].reshape(4, 10).mean(axis=1)      # the KL's first 40 steps, 10 at a time
print(f"KL at step 1: {history[0, 2]:.1f}; highest in steps 1-10: {history[:10, 2].max():.1f}; "
      f"mean of steps 21-30: {kl_by_10[2]:.1f}; last 100 steps: {last[2]:.1f}")
assert history[0, 2] < 4 < 10 < history[:10, 2].max() and kl_by_10[2] < 8 < 20 < last[2]

# %%
fig, ax = plt.subplots(figsize=(7, 3.2))
for column, label in enumerate(("loss (negative ELBO)", "reconstruction", "KL")):
    ax.plot(np.convolve(history[:, column], np.ones(20) / 20, mode="valid"), label=label)
ax.set_yscale("log")
ax.set_xlabel("step (average of 20 steps)")
ax.set_ylabel("nats per example")
ax.legend()
ax.set_title("Training batches: the loss falls; the KL, after a bump and a dip early on, rises", fontsize=10)
plt.show()

# %% [markdown]
# The KL is what the codes cost: how far each $q(z \mid x)$ sits from the prior (averaged over the data it
# is an upper bound on the information the codes carry about the digits,
# [eq:aggregate-kl](../derivations/autoencoder.md#eq:aggregate-kl)). On this run it starts at about 3 nats
# (the random encoder's), jumps above 10 within the first ten Adam steps, falls back below 8 by steps 21-30,
# and then rises for the rest of the run as the reconstruction term buys information about each digit
# (the printed figures above). The smoothed curve shows the bump and the dip only in part: each of its
# points averages 20 steps.
#
# ## 3. What it has learned
#
# Top: 40 draws $z \sim \mathcal N(0, I)$ decoded to the pixel probabilities $\sigma(\text{logits})$.
# Bottom: ten test digits (first row) and their reconstructions from $z = \mu$ (second row). The test digits
# are shown and encoded as stored, in grey levels, although the model trained on binarized digits; their
# grey edges are inputs of a kind it never saw, and it encodes them all the same.

# %%
def decode(z):                                        # (M, Z) -> (M, D) pixel probabilities
    return tinyvae.sigmoid(np.maximum(z @ P["W3"] + P["b3"], 0) @ P["W4"] + P["b4"])


def encode_mean(x):                                   # (M, D) -> (M, Z): μ of q(z|x)
    return (np.maximum(x @ P["W1"] + P["b1"], 0) @ P["W2"] + P["b2"])[:, :Z]


samples = decode(rng.standard_normal((40, Z), dtype=np.float32))
test = data.to_float(mnist.test_x[:10])
rows = np.concatenate([samples, test, decode(encode_mean(test))]).reshape(-1, 10, 28, 28)
fig, ax = plt.subplots(figsize=(8, 5.2))
ax.imshow(rows.transpose(0, 2, 1, 3).reshape(-1, 280), cmap="gray_r")
ax.axhline(4 * 28 - 0.5, color="tab:red")
ax.set_axis_off()
ax.set_title("Rows 1-4: draws from the prior, decoded.  Row 5: test digits.  Row 6: their reconstructions")
plt.show()

# %% [markdown]
# After 800 steps (80 000 digits drawn at random, with replacement: about four draws per digit of the
# 20 000), the run stored with this notebook, some prior draws decode to blurry
# digits one can name, and others to shapes between two digits; a longer run on all of MNIST
# (`tinyvae train`) gives sharper ones. The reconstructions are blurry copies of the test digits. (The
# browser's shorter run, 400 steps of 50 digits, stops earlier than the one these sentences describe.)
#
# ## 4. The same numbers from `tinyvae.VAE`
#
# The library's VAE with these sizes has the same layers (`Dense`, `ReLU`, `Dense` in each network). Copy
# the trained weights into it, run its `forward` and `backward` on one batch with the same ε, and compare.
# The arithmetic is the same operations in the same order on the same float32 arrays (the library also
# multiplies the KL's gradients by β = 1, which changes no bit), so the loss and every gradient agree
# **exactly**, not only to a tolerance.
#
# The stored outputs were computed with NumPy's BLAS on one thread. With several BLAS threads, a long
# matrix product may be summed in another order, so the numbers you get can differ from the stored ones
# in their last digits; the two columns below still agree with each other, since both run the same products.

# %%
vae = tinyvae.VAE(hidden=(H,), latent=Z)
names = {"W1": "encoder.0.W", "b1": "encoder.0.b", "W2": "encoder.2.W", "b2": "encoder.2.b",
         "W3": "decoder.0.W", "b3": "decoder.0.b", "W4": "decoder.2.W", "b4": "decoder.2.b"}
for mine, theirs in names.items():
    vae.params[theirs][...] = P[mine]                 # the library keeps every parameter in one buffer
x = data.to_float(mnist.test_x[:N], binarize="dynamic", rng=rng)
eps = rng.standard_normal((N, Z), dtype=np.float32)
loss, recon, kl = train_step(x, eps)
library_loss = vae.forward(x, eps)
vae.backward()
print(f"by hand:     loss {loss!r}  (recon {recon!r}, KL {kl!r})")
print(f"tinyvae.VAE: loss {float(library_loss)!r}  (recon {float(vae.stats['recon'])!r}, "
      f"KL {float(vae.stats['kl'])!r})")
assert loss == float(library_loss) and recon == float(vae.stats["recon"]) and kl == float(vae.stats["kl"])
for mine, theirs in names.items():
    assert np.array_equal(G[mine], vae.grads[theirs]), mine
print("every gradient equal, element for element:", ", ".join(names))

# %% [markdown]
# ## 5. What the library adds to these lines
#
# The step above is the whole algorithm. `tinyvae` wraps the same arithmetic with what a real run needs:
#
# * **Checks that fail loudly**: wrong shapes, dtypes, NaNs and pixels outside [0, 1] are refused with a
#   message that says what was given and what was expected; every backward pass is
#   [gradient-checked](../derivations/gradcheck.md) in float64 (`tinyvae gradcheck`).
# * **Speed**: all parameters live in one buffer, so Adam updates them in a few vectorized operations on
#   the free cores (never changing a bit of the result); the loss is a short chain of in-place operations;
#   CuPy runs it all on a GPU.
# * **Runs you can trust later**: `tinyvae.train` (and `tinyvae train` in a shell) saves a config, a
#   metrics log and atomic checkpoints, resumes after an interruption, stops on NaN, and reproduces a run
#   from its config and seed.
# * **Evaluation**: the ELBO with ε sampled, the [importance-weighted
#   bound](../derivations/importance-sampling.md#eq:iw-bound) on $-\log p(x)$, active units.
# * **More models**: Gaussian, continuous-Bernoulli and σ-VAE decoders, β, free bits, KL warm-up, the IWAE
#   objective, a convolutional encoder and decoder, a plain autoencoder.
#
# Next: [02 · autoencoder or VAE](02_autoencoder_vs_vae.ipynb), why the KL term is there. Deeper: the
# derivations of [the ELBO](../derivations/elbo.md), [the reparameterization](../derivations/reparameterization.md)
# and [the KL](../derivations/kl.md).
