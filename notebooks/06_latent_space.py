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
# # 06 · The latent space: maps, paths, denoising, inpainting
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
# bundled with tinyvae, so this notebook runs in under a minute. Set `RETRAIN = True` (or the environment variable
# `TINYVAE_RETRAIN=1`) to train both here instead, with a progress bar; the printed command makes the same
# model from a shell.
#
# **In the browser** (this notebook's JupyterLite copy, where `sys.platform` is `"emscripten"`), NumPy has
# no optimized matrix library and multiplies matrices many times slower than on your machine, so sections
# 4 and 5 use 200 test digits instead of 500, and section 6 uses 18 digits instead of 24. The same lines
# print the browser's figures and the same `assert`s check them; the outputs stored with the notebook are
# those of the full run, which Jupyter on your own machine repeats.

# %%
# %matplotlib inline
import dataclasses
import sys

import numpy as np
import matplotlib.pyplot as plt
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm
import tinyvae
from tinyvae import data, plots, pretrained

RETRAIN = False   # True: train both models here (about a minute), as TINYVAE_RETRAIN=1 does
IN_BROWSER = sys.platform == "emscripten"   # JupyterLite: fewer digits in sections 4 to 6 (see above)
if IN_BROWSER:
    print("in the browser: 200 test digits in sections 4 and 5 (not 500), 18 in section 6 (not 24)")
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
# The posterior means of 2000 test digits, coloured by label. The KL term pulls the cloud toward
# $\mathcal N(0, I)$, and digits that look alike sit side by side; the printed numbers say how close to
# the prior the cloud is.

# %%
codes = vae.encode(data.to_float(mnist.test_x[:2000]))[0]                    # (2000, 2) posterior means
inside = (np.abs(codes) < 3).all(1).mean()
print(f"codes: mean {codes.mean(0)}, standard deviation {codes.std(0)}; {inside:.0%} within ±3 on both axes")
print(f"median z₂ of the codes of the digit 1: {np.median(codes[mnist.test_y[:2000] == 1, 1]):.2f}")
assert inside > 0.9 and np.median(codes[mnist.test_y[:2000] == 1, 1]) < -2
plots.plot_latent(vae, mnist.test_x[:2000], mnist.test_y[:2000])   # the figure, as the cell's last expression

# %% [markdown]
# Most codes lie within ±3 of the origin, but the cloud is no round Gaussian: the 1s form a group of their
# own far below the rest, and several classes (the 4s, 7s and 9s; the 3s, 5s and 8s) overlap. A code of
# two numbers, trained briefly, has not separated them.

# %% [markdown]
# ## 2. The manifold
#
# Decode a 15 × 15 grid. The grid is spaced evenly in *probability* under the prior ($z = \Phi^{-1}(p)$,
# $p$ from 0.05 to 0.95), so each cell holds the same prior mass, and it spans ±1.64 on each axis.

# %%
in_grid = (np.abs(codes) < 1.645).all(1).mean()
print(f"{in_grid:.0%} of the 2000 codes of section 1 lie inside the grid's square")
assert 0.5 < in_grid < 0.9
plots.plot_manifold(vae, n=15)

# %% [markdown]
# Neighbouring cells morph into each other, and most cells decode to something digit-like, many of
# them blurred blends of two digits (a 3 into an 8, a 7 into a 9). The grid covers the prior's middle
# 90 % on each axis, not every code: the 1s, whose codes lie far below (section 1), appear only as the
# thin, 1- or 7-like strokes at the left of the bottom rows.

# %% [markdown]
# ## 3. Interpolation
#
# Decode points on the straight line between the posterior means of two test digits.

# %%
labels = mnist.test_y
a, b = int(np.flatnonzero(labels == 1)[0]), int(np.flatnonzero(labels == 0)[0])
plots.plot_interpolation(vae, mnist.test_x[a], mnist.test_x[b], steps=10)

# %% [markdown]
# The path from the 1 to the 0 does not morph one into the other directly: halfway it decodes to
# shapes like a 3 and then an 8. A straight line in $z$ crosses whatever classes lie between its ends
# in the scatter of section 1.

# %% [markdown]
# ## 4. Denoising
#
# Both models were trained on binarized digits; from here on we feed them the grey-level test digits
# (pixel values in [0, 1]) and compare with grey-level training digits, an input a little unlike the
# one they learned from. Corrupt test digits by flipping 5 % of their pixels (a pixel $x$ becomes
# $1 - x$), and reconstruct them (encode to the posterior
# mean, decode). A model trained only on clean digits can only produce clean-looking ones, so
# reconstruction projects the corrupted image back onto the digits it knows. Whether it lands on the
# *right* digit depends on how much the code can hold. To count rather than judge by eye, we give each
# output the label of its nearest neighbour (in squared pixel distance) among 10,000 training digits,
# and count how often that is the digit's own label. The same count on the clean digits themselves is
# what a perfect restoration would score.

# %%
reference = data.to_float(mnist.train_x[:10_000])                        # (10000, 784) grey levels
reference_sq = (reference ** 2).sum(1)


def keeps_label(images, labels):
    """Whether each image's nearest training digit (squared pixel distance) has the image's own label."""
    distance = reference_sq[None, :] - 2 * images @ reference.T          # (N, 10000), up to |image|²
    return mnist.train_y[:10_000][distance.argmin(1)] == labels


def show(rows, titles):
    fig, axes = plt.subplots(len(rows), len(rows[0]), figsize=(1.1 * len(rows[0]), 1.15 * len(rows)))
    for r, (row, title) in enumerate(zip(rows, titles)):
        for c, img in enumerate(row):
            axes[r, c].imshow(img.reshape(28, 28), cmap="gray", vmin=0, vmax=1)
            axes[r, c].set_xticks([]); axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(title, rotation=0, ha="right", va="center", fontsize=9)
    plt.show()

# %%
n_test = 200 if IN_BROWSER else 500
clean, labels = data.to_float(mnist.test_x[:n_test]), mnist.test_y[:n_test]   # (n_test, 784) float32 in [0, 1]
rng = np.random.default_rng(0)
flipped = np.where(rng.random(clean.shape) < 0.05, 1 - clean, clean).astype(np.float32)
restored = {"Z = 2": vae.reconstruct(flipped), "Z = 16": vae16.reconstruct(flipped)}
kept = {"clean": keeps_label(clean, labels).mean(), "5% flipped": keeps_label(flipped, labels).mean()}
for name, model in (("Z = 2", vae), ("Z = 16", vae16)):
    kept[f"clean, {name}"] = keeps_label(model.reconstruct(clean), labels).mean()
    kept[f"5% flipped, {name}"] = keeps_label(restored[name], labels).mean()
print(f"nearest training digit has the right label, {n_test} test digits:")
for name, share in kept.items():
    print(f"  {name:<18} {share:.0%}" + ("  (reconstructed)" if "Z =" in name else ""))
assert abs(kept["5% flipped"] - kept["clean"]) < 0.03                  # the flips alone lose almost nothing
assert kept["5% flipped, Z = 16"] > 0.7 and kept["5% flipped, Z = 2"] < 0.4  # the models lose it, Z = 2 most
assert kept["clean, Z = 2"] < 0.5                                       # even from clean digits

# %%
show([clean[:8], flipped[:8], restored["Z = 2"][:8], restored["Z = 16"][:8]], ["clean", "5% flipped", "Z = 2", "Z = 16"])

# %% [markdown]
# The flips themselves cost the nearest-neighbour rule almost nothing; the loss is the models'. The
# Z = 16 model's reconstructions keep the right digit for most of the test digits, the Z = 2 model's for under
# half: even from the *clean* digits, two numbers per digit, trained this briefly, often decode to a
# neighbouring digit's shape (see the scatter of section 1, where the classes overlap). The pictures
# show the same: the Z = 2 row holds blurred, digit-like shapes, often of another digit than the input's.

# %% [markdown]
# Gaussian noise on every pixel is harder: the encoder has never seen a grey, speckled background and
# its guess of μ goes astray. The decoder still knows what digits look like, so instead of trusting the
# encoder we can *search* for the code whose decoding best explains the noisy image under the Bernoulli
# likelihood, plus the prior's pull toward 0: minimize $-\log p(x \mid z) - \log p(z)$ over $z$, starting
# from the encoder's μ. The gradient with respect to $z$ is exactly what the decoder's backward pass
# returns (`decoder.backward` gives dL/dz), so a few lines of Adam do it. The loop holds NumPy's BLAS to
# one thread, as `tinyvae.train` does: on a busy machine, BLAS threads that wait for each other cost far
# more than they save on matrices this small.

# %%
def fit_code(model, x, steps=200, lr=0.05):
    z = model.encode(x)[0].copy()                       # start from the encoder's guess, (N, Z)
    m, v = np.zeros_like(z), np.zeros_like(z)
    with threadpool_limits(limits=1, user_api="blas"):   # one BLAS thread, as tinyvae.train uses (see above)
        for t in tqdm(range(1, steps + 1), desc="fitting the codes"):
            logits = model.decoder.forward(z)
            _, dlogits = tinyvae.bernoulli_nll(logits, x)   # -log p(x|z), batch mean
            dz = model.decoder.backward(dlogits) + z / len(x)   # ... plus -log p(z) = |z|^2 / 2 per example
            m, v = 0.9 * m + 0.1 * dz, 0.999 * v + 0.001 * dz**2
            z -= lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return model.decode(z)


noisy = np.clip(clean + rng.normal(0, 0.25, clean.shape), 0, 1).astype(np.float32)   # clipped to [0, 1]
background_grey = noisy[clean == 0].mean()             # the clipping keeps only the noise's positive half there
print(f"mean grey of the noisy background (0 before the noise): {background_grey:.2f}")
assert 0.09 < background_grey < 0.11
encoded, fitted = vae16.reconstruct(noisy), fit_code(vae16, noisy)
noise_kept = {"noisy": keeps_label(noisy, labels).mean(), "encode-decode": keeps_label(encoded, labels).mean(),
              "fit the code": keeps_label(fitted, labels).mean()}
for name, share in noise_kept.items():
    print(f"Z = 16, {name:<14} nearest training digit has the right label: {share:.0%} of {n_test}")
assert noise_kept["encode-decode"] < noise_kept["noisy"] - 0.15                # the encoder loses the digit
assert abs(noise_kept["fit the code"] - noise_kept["encode-decode"]) < 0.05     # the search does no better

# %%
show([clean[:8], noisy[:8], encoded[:8], fitted[:8]], ["clean", "noise", "encode-decode", "fit the code"])

# %% [markdown]
# The counts say what the pictures suggest. Gaussian noise of σ = 0.25 on every pixel, clipped to
# [0, 1], turns the black background a mean grey of about 0.1 (printed above), since only the noise's
# positive half survives the clipping there. It barely hides the
# digit from the nearest-neighbour rule, but the encoder, fed a speckled grey background it never saw,
# loses it far more often. Searching for the code does not win it back on this model: the code that best
# explains the noisy image under the Bernoulli likelihood decodes to the right digit no more often than
# the encoder's guess (the counts above). Its decodings carry a grey haze: the likelihood also pays for
# explaining the noise's ink on the background, which is one likely reason. The search is still the tool of section 6, where what it optimizes, the ELBO of
# a clean binary digit, is what we want to measure.
#
# ## 5. Inpainting
#
# Hide the bottom half of each digit. Start with the hidden pixels at 0, then repeat: reconstruct the
# whole image, and put the known top half back. This is a fixed-point heuristic, not an optimization
# with a guarantee: each pass is meant to move the guess for the hidden half toward an image the model
# finds likely *and* consistent with the visible half; the change per pass shows the iteration settling.

# %%
known = np.zeros((28, 28), dtype=np.float32)
known[:14] = 1                                          # the top half is visible
known = known.ravel()
completed = {}
for name, model in (("Z = 2", vae), ("Z = 16", vae16)):
    guess = clean * known                               # hidden pixels start at 0
    for i in range(1, 11):
        new = known * clean + (1 - known) * model.reconstruct(guess)   # reconstruct, restore the known pixels
        change = np.abs(new - guess).mean()
        guess = new
        if i in (1, 3, 10):
            print(f"{name:>6}, pass {i:>2}: mean change {change:.4f}")
    completed[name] = guess
inpaint_kept = {"top half only": keeps_label(clean * known, labels).mean()}
inpaint_kept |= {f"completed, {name}": keeps_label(img, labels).mean() for name, img in completed.items()}
for name, share in inpaint_kept.items():
    print(f"{name:<18} nearest training digit has the right label: {share:.0%} of {n_test}")
hidden = 1 - known                                      # the bottom 14 rows
guesses = {"all black": clean * known, "mean training digit": np.broadcast_to(reference.mean(0), clean.shape)}
hidden_error = {name: (((img - clean) ** 2) * hidden).sum(1).mean() / hidden.sum()
                for name, img in (guesses | completed).items()}
for name, err in hidden_error.items():
    print(f"{name:<20} squared error per hidden pixel: {err:.3f}")
assert min(inpaint_kept["completed, Z = 2"], inpaint_kept["completed, Z = 16"]) > inpaint_kept["top half only"] + 0.15
assert inpaint_kept["completed, Z = 2"] > inpaint_kept["completed, Z = 16"]          # Z = 2 ahead on the count
assert hidden_error["Z = 2"] < hidden_error["Z = 16"] < hidden_error["all black"]   # and on the squared error
assert hidden_error["mean training digit"] < 1.1 * hidden_error["Z = 16"]          # one blur, nearly as good

# %%
show([clean[:8], (clean * known)[:8], completed["Z = 2"][:8], completed["Z = 16"][:8]],
     ["clean", "top half", "Z = 2", "Z = 16"])

# %% [markdown]
# The Z = 16 model's completions continue most of the strokes (the 7, the 2, the 0, the 1s); the Z = 2
# model's are often a blurred blob under a sharp top half. Yet both numbers printed above put the Z = 2
# model slightly *ahead*: its completions keep the right label a little more often, and they miss the
# hidden half by a smaller squared error. Neither measure rewards sharpness. A blurred, class-average
# blob is close in squared distance to many digits of its class, enough for the nearest-neighbour rule,
# and squared error is smallest for the average of the plausible completions, not for one sharp guess
# that may be wrong (the mean training digit alone scores nearly as well as the Z = 16 model). So these
# counts do not say which model fills in better digits; the pictures suggest Z = 16 does. Both completions
# beat the top half alone, and what the models fill in is a guess they find likely, not the true lower half.
#
# ## 6. How good is the encoder? The amortization gap and the approximation gap
#
# Section 4 searched for a code through the decoder's backward pass. The same search, now over the whole
# Gaussian $q(z \mid x)$ and on the ELBO, measures how much the encoder costs. For one digit $x$, the ELBO of the encoder's $q(z \mid x)$ falls
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
# estimated by importance sampling with the fitted $q$ as the proposal, $\hat L_K$ with K = 1000.
#
# Read the two printed gaps with their biases in mind
# ([amortization.md](../derivations/amortization.md#eq:inference-gaps)). A search that stops short of the
# best $q^\ast$ leaves ELBO(q*) − ELBO(q_fit) ≥ 0 undone, and that amount moves out of the amortization
# gap and into the approximation gap: since the ELBO estimates are unbiased, the printed amortization gap
# is an underestimate in expectation. The printed approximation gap errs either way: the unfinished
# search biases it *up*, and $\hat L_K$, a lower bound on $\log p(x)$ in expectation, biases it *down*.
# Their sum, the inference gap $\hat L_K - \mathrm{ELBO}(q_{\text{encoder}})$, is an underestimate in
# expectation. Below, a run with half the search steps shows how far the search had still to go, and
# $\hat L_K$ with K = 100 beside K = 1000 shows how far the estimate of $\log p(x)$ still moves.
#
# The Z = 16 model and 24 binary test digits (18 in the browser; their own fixed binarization); first the two tools:

# %%
n, Z = 18 if IN_BROWSER else 24, vae16.config.latent
xb = data.to_float(mnist.test_x[:n], "dynamic", np.random.default_rng(7))   # (n, 784), binary
zero = np.zeros(Z, dtype=np.float32)


def elbo_and_log_p(mu, log_var, samples=1000, seed=1):
    """Per digit: the ELBO and the importance-weighted log p(x) with K = samples and with K = 100 (the
    first 100 of the same samples), all from the same samples of q."""
    eps = np.random.default_rng(seed).standard_normal((samples, n, Z), dtype=np.float32)
    z = mu + np.exp(0.5 * log_var) * eps                                          # (S, n, Z)
    logits = vae16.decoder.forward(z.reshape(-1, Z)).reshape(samples, n, -1)     # (S, n, D)
    log_px_z = tinyvae.bernoulli_log_prob(logits, xb).astype(np.float64)          # (S, n)
    log_w = log_px_z + tinyvae.log_normal_density(z, zero, zero) - tinyvae.log_normal_density(z, mu, log_var)
    kl = tinyvae.gaussian_kl_per_dim(mu, log_var).sum(1).astype(np.float64)
    log_w = log_w.astype(np.float64)
    return log_px_z.mean(0) - kl, tinyvae.log_mean_exp(log_w, axis=0), tinyvae.log_mean_exp(log_w[:100], axis=0)


def fit_q(mu, log_var, steps, samples=8, lr=0.02, seed=0):
    """Gradient ascent on each digit's ELBO in (μ, log σ²), through the decoder's backward pass."""
    mu, log_var = mu.copy(), log_var.copy()
    dmu, dlog_var = np.zeros_like(mu), np.zeros_like(log_var)
    opt = tinyvae.Adam([mu, log_var], [dmu, dlog_var], lr=lr)
    noise = np.random.default_rng(seed)
    xs = np.tile(xb, (samples, 1))                                                # (S n, D)
    with threadpool_limits(limits=1, user_api="blas"):                            # as in fit_code above
        for _ in tqdm(range(steps), desc=f"fitting q, {steps} steps"):
            eps = noise.standard_normal((samples, n, Z), dtype=np.float32)
            z = mu + np.exp(0.5 * log_var) * eps                                  # (S, n, Z)
            _, dlogits = tinyvae.bernoulli_nll(vae16.decoder.forward(z.reshape(-1, Z)), xs)
            dz = vae16.decoder.backward(dlogits).reshape(samples, n, Z) * samples  # d(−ELBO)/dz, per digit
            _, dmu_kl, dlv_kl = tinyvae.gaussian_kl(mu, log_var)
            dmu[...] = dz.mean(0) + dmu_kl                                        # dz flows straight to μ
            dlog_var[...] = (0.5 * dz * (z - mu)).mean(0) + dlv_kl                # and as ½ dz (z − μ) to log σ²
            opt.step()
    return mu, log_var

# %% [markdown]
# Then the three ELBOs (the encoder's $q$, the $q$ fitted for 150 steps and for 300) and $\hat L_K$:

# %%
mu_enc, lv_enc = (a.copy() for a in vae16.encode(xb))
elbo_enc, _, _ = elbo_and_log_p(mu_enc, lv_enc)
elbo_half, _, _ = elbo_and_log_p(*fit_q(mu_enc, lv_enc, steps=150))
elbo_opt, log_p, log_p_100 = elbo_and_log_p(*fit_q(mu_enc, lv_enc, steps=300))
amortization, approximation = elbo_opt - elbo_enc, log_p - elbo_opt
print(f"mean over {n} test digits, nats:  ELBO of the encoder's q {elbo_enc.mean():.2f}, "
      f"of the fitted q {elbo_opt.mean():.2f} (after 150 steps {elbo_half.mean():.2f}); log p(x) ≈ {log_p.mean():.2f}")
print(f"amortization gap {amortization.mean():.2f} nats, approximation gap {approximation.mean():.2f} nats, "
      f"inference gap (their sum) {(log_p - elbo_enc).mean():.2f} nats")
print(f"log p(x) estimated with K = 100: {log_p_100.mean():.2f}, with K = 1000: {log_p.mean():.2f} nats")
# The encoder is beaten on every digit, and the search has settled: the last 150 steps gain under a
# tenth of what the first 150 did.
assert (amortization > 0).all() and (approximation > 0).all()
assert elbo_opt.mean() - elbo_half.mean() < 0.1 * (elbo_half.mean() - elbo_enc.mean())
# Ten times the samples move the estimate of log p(x) by a small fraction of the approximation gap.
assert 0 <= log_p.mean() - log_p_100.mean() < 0.1 * approximation.mean()

# %%
fig, ax = plt.subplots(figsize=(7, 2.6))
order = np.argsort(amortization + approximation)
ax.bar(range(n), approximation[order], label="approximation gap", color="tab:blue")
ax.bar(range(n), amortization[order], bottom=approximation[order], label="amortization gap", color="tab:orange")
ax.set_xlabel("test digit (sorted by the inference gap)"); ax.set_ylabel("nats"); ax.legend(frameon=False)
ax.set_title("The two gaps of each digit, stacked: their sum is the inference gap", fontsize=10)
plt.show()
assert amortization.mean() > approximation.mean()

# %% [markdown]
# On this notebook's small model, on these digits, the shared encoder, not the Gaussian family, is the
# larger loss: fitting each digit's $q$ gains more nats than the rest of the way to $\log p(x)$, which only
# the true posterior could close. These are estimates with the biases above. A longer search could raise
# the fitted ELBO slightly (the last 150 steps gained little, printed above), which would add to the
# amortization gap and take from the approximation gap. $\hat L_K$ moved little from K = 100 to
# K = 1000 (printed above); that suggests, but does not prove, that it is close to $\log p(x)$: an
# estimate still short of $\log p(x)$ would make the approximation gap look smaller than it is. Cremer, Li &
# Duvenaud (*Inference Suboptimality in Variational Autoencoders*, ICML 2018) found the same kind of result
# on their models: the gap is often due to the imperfect encoder rather than to the limited family of
# $q$, partly because the decoder learns posteriors that the family fits well.
#
# Next: [07 · write the backward passes yourself](07_gradient_check_exercises.ipynb). Deeper: the gaps and
# their estimators in [amortization.md](../derivations/amortization.md#eq:inference-gaps), the importance-sampled
# $\log p(x)$ in [importance-sampling.md](../derivations/importance-sampling.md), and why the prior's mass and the
# codes' cloud meet in [autoencoder.md](../derivations/autoencoder.md#eq:aggregate-kl).
