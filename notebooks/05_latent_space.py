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
# **What you will see.** With Z = 2 the whole latent space fits on a page. We take a VAE with two latent
# dimensions and look at where each digit lands (the posterior means), decode a grid of $z$ (the learned
# manifold, as in Kingma & Welling's figure 4) and walk in a straight line between two digits. Then we
# use a VAE as a prior over images: **denoising** (map a corrupted digit back onto the digits the model
# knows) and **inpainting** (fill in a missing half by alternating reconstruct and restore-the-known-pixels),
# each time with the Z = 2 model beside a Z = 16 one trained the same way, to see what two numbers can hold.
# Last, how much the shared encoder costs against the best Gaussian $q$ for each digit.
#
# Background: [the sample z = μ + σ ⊙ ε](../derivations/reparameterization.md#eq:reparam), [the loss](../derivations/elbo.md#eq:vae-loss),
# and [why the KL term fills the space](../derivations/autoencoder.md#eq:aggregate-kl).
#
# **The two models.** Both are 784-128-Z VAEs (ReLU, Bernoulli decoder) trained for 5 epochs on 20,000
# dynamically binarized training digits with Adam at 2e-3 and seed 0; they differ only in Z. They come
# bundled with tinyvae, so this notebook runs in seconds. Set `RETRAIN = True` (or the environment variable
# `TINYVAE_RETRAIN=1`) to train both here instead, with a progress bar; the printed command makes the same
# model from a shell.

# %%
# %matplotlib inline
import dataclasses

import numpy as np
import matplotlib.pyplot as plt
import tinyvae
from tinyvae import data, plots, pretrained

RETRAIN = False   # True: train both models here (about a minute), as TINYVAE_RETRAIN=1 does
np.set_printoptions(precision=3, suppress=True)
mnist = data.load_dataset()                          # the bundled MNIST, uint8
names = ("vae-z2-binary", "vae-z16-binary")
vae, vae16 = (pretrained.load(name, retrain=RETRAIN or pretrained.retrain_requested()) for name in names)
for name, model in zip(names, (vae, vae16)):
    print(f"{name}: {model.config.describe()}, {model.num_params:,} parameters\n    {pretrained.command(name)} --out DIR")
recipes = [dataclasses.asdict(pretrained.config(name)) for name in names]
assert [k for k in recipes[0] if recipes[0][k] != recipes[1][k]] == ["latent"]   # trained the same way, but for Z

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
# Trained on dynamically binarized digits: its Bernoulli likelihood is then a real likelihood,
# which section 6 needs.
vae16 = tinyvae.load_model(tinyvae.train(tinyvae.TrainConfig(hidden=(256,), latent=16, epochs=3, limit_train=10_000,
                                                         limit_test=1_000, lr=2e-3, binarize="dynamic",
                                                         out=str(runs / "z16")), **quiet) / "checkpoint.npz")

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
#
# ## 6. How good is the encoder? The amortization gap and the approximation gap
#
# Section 4 found better codes than the encoder's by searching through the decoder. The same search
# measures how much the encoder costs. For one digit $x$, the ELBO of the encoder's $q(z \mid x)$ falls
# short of $\log p(x)$ by two gaps ([the decomposition](../derivations/amortization.md#eq:inference-gaps)):
#
# - the **amortization gap**, $\mathrm{ELBO}(q^\ast) - \mathrm{ELBO}(q_{\text{encoder}})$: what one network,
#   shared by all digits, loses against the best diagonal Gaussian $q^\ast$ for *this* digit;
# - the **approximation gap**, $\log p(x) - \mathrm{ELBO}(q^\ast)$: what any diagonal Gaussian loses
#   against the true posterior.
#
# $q^\ast$ is found by gradient ascent on the ELBO in $(\mu, \log\sigma^2)$ for each digit, starting
# from the encoder's output: the decoder's backward pass gives $dL/dz$, the reparameterization
# turns it into $dL/d\mu$ and $dL/d\log\sigma^2$, and the KL term adds its own gradient. $\log p(x)$ is
# estimated by importance sampling with $q^\ast$ as the proposal; that estimate is itself a lower
# bound in expectation, so the approximation gap printed is, in expectation, an underestimate.

# %%
n, Z = 24, vae16.config.latent
xb = data.to_float(mnist.test_x[:n], "dynamic", np.random.default_rng(7))   # 24 binary test digits
zero = np.zeros(Z, dtype=np.float32)

def elbo_and_log_p(mu, log_var, samples=1000, seed=1):
    """Per digit: the ELBO and the importance-weighted log p(x), from the same samples of q."""
    eps = np.random.default_rng(seed).standard_normal((samples, n, Z), dtype=np.float32)
    z = mu + np.exp(0.5 * log_var) * eps                                          # (S, n, Z)
    logits = vae16.decoder.forward(z.reshape(-1, Z)).reshape(samples, n, -1)     # (S, n, D)
    log_px_z = tinyvae.bernoulli_log_prob(logits, xb).astype(np.float64)          # (S, n)
    log_w = log_px_z + tinyvae.log_normal_density(z, zero, zero) - tinyvae.log_normal_density(z, mu, log_var)
    kl = tinyvae.gaussian_kl_per_dim(mu, log_var).sum(1).astype(np.float64)
    return log_px_z.mean(0) - kl, tinyvae.log_mean_exp(log_w.astype(np.float64), axis=0)

def fit_q(mu, log_var, steps, samples=8, lr=0.02, seed=0):
    """Gradient ascent on each digit's ELBO in (μ, log σ²), through the decoder's backward pass."""
    mu, log_var = mu.copy(), log_var.copy()
    dmu, dlog_var = np.zeros_like(mu), np.zeros_like(log_var)
    opt = tinyvae.Adam([mu, log_var], [dmu, dlog_var], lr=lr)
    noise = np.random.default_rng(seed)
    xs = np.tile(xb, (samples, 1))                                                # (S n, D)
    for _ in range(steps):
        eps = noise.standard_normal((samples, n, Z), dtype=np.float32)
        z = mu + np.exp(0.5 * log_var) * eps                                      # (S, n, Z)
        _, dlogits = tinyvae.bernoulli_nll(vae16.decoder.forward(z.reshape(-1, Z)), xs)
        dz = vae16.decoder.backward(dlogits).reshape(samples, n, Z) * samples     # d(−ELBO)/dz, per digit
        _, dmu_kl, dlv_kl = tinyvae.gaussian_kl(mu, log_var)
        dmu[...] = dz.mean(0) + dmu_kl                                            # dz flows straight to μ
        dlog_var[...] = (0.5 * dz * (z - mu)).mean(0) + dlv_kl                    # and as ½ dz (z − μ) to log σ²
        opt.step()
    return mu, log_var

mu_enc, lv_enc = (a.copy() for a in vae16.encode(xb))
elbo_enc, _ = elbo_and_log_p(mu_enc, lv_enc)
elbo_half, _ = elbo_and_log_p(*fit_q(mu_enc, lv_enc, steps=150))
elbo_opt, log_p = elbo_and_log_p(*fit_q(mu_enc, lv_enc, steps=300))
amortization, approximation = elbo_opt - elbo_enc, log_p - elbo_opt
print(f"mean over {n} test digits, nats:  ELBO of the encoder's q {elbo_enc.mean():.2f}, "
      f"of the fitted q {elbo_opt.mean():.2f} (after 150 steps {elbo_half.mean():.2f}); log p(x) ≈ {log_p.mean():.2f}")
print(f"amortization gap {amortization.mean():.2f} nats, approximation gap {approximation.mean():.2f} nats "
      f"(an underestimate in expectation: log p(x) is estimated from below)")

fig, ax = plt.subplots(figsize=(7, 2.6))
order = np.argsort(amortization + approximation)
ax.bar(range(n), approximation[order], label="approximation gap", color="tab:blue")
ax.bar(range(n), amortization[order], bottom=approximation[order], label="amortization gap", color="tab:orange")
ax.set_xlabel("test digit (sorted)"); ax.set_ylabel("nats"); ax.legend(frameon=False)
plt.show()

# The encoder is beaten on every digit, the search has settled, and the shared encoder costs more
# than the diagonal Gaussian family does.
assert (amortization > 0).all() and (approximation > 0).all()
assert elbo_opt.mean() - elbo_half.mean() < 0.1 * amortization.mean()
assert amortization.mean() > approximation.mean()

# %% [markdown]
# On this briefly trained model the shared encoder, not the Gaussian family, is the larger loss:
# fitting each digit's $q$ gains several nats, and the rest of the way to $\log p(x)$, which only the
# true posterior could close, is shorter. Cremer, Li & Duvenaud (*Inference Suboptimality in
# Variational Autoencoders*, ICML 2018) found the same kind of result: the gap is often due to the
# imperfect encoder rather than to the limited family of $q$, partly because the decoder learns
# posteriors that the family fits well.
#
# Next: [06 · write the backward passes yourself](06_gradient_check_exercises.ipynb).
