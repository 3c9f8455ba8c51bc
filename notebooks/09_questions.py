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
# # 09 · The questions everyone asks
#
# Five questions come back again and again about VAE examples. Each section below answers one
# with a short experiment, its numbers, a picture and `assert`s of what the text claims, and links the
# derivation that explains it:
#
# 1. **Sum or mean over pixels?** Over the batch it hardly matters with Adam; over the pixels it is a
#    different model ([notation.md](../derivations/notation.md#eq:loss-reduction)).
# 2. **What should the KL weight β be?** β trades rate (KL) for distortion (reconstruction)
#    ([elbo.md](../derivations/elbo.md#eq:vae-loss), [rate-distortion.md](../derivations/rate-distortion.md#eq:beta-slope)).
# 3. **Binary cross-entropy on grey levels?** It is not a likelihood; the continuous Bernoulli is
#    ([continuous-bernoulli.md](../derivations/continuous-bernoulli.md#eq:cb-log-norm)).
# 4. **MSE or BCE, and why are Gaussian VAEs blurry?** "MSE + KL" fixes a variance σ_x², usually far too
#    large ([sigma-vae.md](../derivations/sigma-vae.md#eq:sigma-vae-implied-var)).
# 5. **Why does the KL fall to zero?** Posterior collapse, and two remedies: free bits and KL warm-up
#    ([free-bits.md](../derivations/free-bits.md#eq:free-bits)).
#
# Every model here is small (784-128-16, ReLU; 784-128-32 in section 5) and trained briefly (200 to 500
# steps) on 5 000 digits, so that the whole notebook runs in about a minute on two cores and each training
# shows a progress bar. The numbers are these small models' and the pictures are blurrier than a full
# training run's (`tinyvae train`). All numbers are nats per example; the scores are on 1 000 test digits, except section 1's
# training curves, which are losses on the training batches.
#
# **In the browser** (this notebook's JupyterLite copy, where `sys.platform` is `"emscripten"`), the
# browser's NumPy has no optimized matrix library and multiplies matrices many times slower than a NumPy
# installed on your computer, so the notebook trains less there, and takes longer all the same
# ([the browser edition](../docs/browser.md) gives its time there). Sections 2 to 5 do not train their
# thirteen models in the browser: `fit` loads each from a checkpoint that the site's build trained
# natively, by exactly the config and seed with which `fit` trains it natively (the build and the
# notebook both read them from `notebooks/browser_models.py` in the repository; in the browser it is an
# installed package, not in the file list, and `print(browser_models.__file__)` shows where). Every
# score, picture and `assert` below is still computed in the browser, from the loaded models (the
# printed numbers may differ slightly from the stored outputs). Section 1 trains by hand for
# 50 steps instead of 200, and section 4 finds the principal directions (PCA) of the data from 2 000
# digits instead of 5 000. The outputs stored with the notebook are those of the native run; to retrain
# the models yourself, run the notebook with Jupyter on your own machine, where `fit` trains each of them.
#
# `fit` accepts only the settings `browser_models.py` declares for each name, natively too (any other
# change is refused with an error), so that the browser can load the matching checkpoint. To try other
# settings, train the model yourself: `run = tinyvae.train(tinyvae.TrainConfig(**{**BASE, "beta": 2.0,
# "out": str(runs / "beta2")}), dataset=MODELS.dataset)` returns its run folder, and
# `tinyvae.load_model(run / "checkpoint.npz")` the model (in the browser this trains, slowly).

# %%
# %matplotlib inline
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import matplotlib.pyplot as plt
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm
import tinyvae
from tinyvae import data, evaluate, plots

np.set_printoptions(precision=3, suppress=True)
runs = Path(tempfile.mkdtemp(prefix="tinyvae-"))   # run folders go to a scratch directory
mnist = data.load_dataset()
x_train, x_test = mnist.train_x[:5000], mnist.test_x[:1000]          # uint8, grey levels
IN_BROWSER = sys.platform == "emscripten"                      # JupyterLite: a shorter run (see above)
STEPS = 50 if IN_BROWSER else 200                              # section 1's steps by hand
EIGEN_DIGITS = 2000 if IN_BROWSER else 5000                    # section 4's principal directions

# %% [markdown]
# Three helpers: `fit` trains one small model (with a progress bar; in the browser it loads it, see above),
# `scores` scores it on the 1 000 test digits, and `sample_rows` with `show` draws prior samples, one row
# per model.

# %%
# browser_models.py (see above), imported in its own cell: the browser edition finds the packages a cell
# needs by reading its imports as Python, which it cannot do in a cell with a %-line
import browser_models

MODELS = browser_models.models("09_questions")  # sections 2 to 5's models: their digits, BASE and changes
BASE = MODELS.base    # hidden=(128,), latent=16, batch_size=100, epochs=4, lr=1e-3, init="auto", seed=0
if IN_BROWSER:
    print(f"in the browser: sections 2 to 5 load their {len(MODELS.declared)} models from checkpoints the site's "
          f"build trained natively by the same configs and seeds (browser_models.py) instead of training them; "
          f"section 1 trains by hand for {STEPS} steps (not 200), section 4's directions come from {EIGEN_DIGITS} "
          f"digits (not 5000). To retrain the models, run this notebook with Jupyter on your own machine.")


def fit(name, **changes):
    """Train the small VAE `name`, BASE with `changes`, on the first 5 000 training digits (with a progress
    bar); returns the trained model. The changes must be the ones browser_models.py declares for `name`."""
    return MODELS.fit(name, out=runs / name, **changes)


def scores(model):
    """Negative ELBO (ε sampled, β = 1, no free bits), its two terms, and the active units, on the test digits."""
    result = tinyvae.evaluate_elbo(model, x_test, seed=0)
    result["active"] = tinyvae.active_units(model, x_test)[0]
    return result


def sample_rows(models, n=10, seed=0):
    """One row of n prior samples (mean images) per model, as a single picture."""
    rows = [tinyvae.to_numpy(m.sample(n, tinyvae.default_rng(seed))) for m in models]
    return np.concatenate([np.concatenate([img.reshape(28, 28) for img in row], axis=1) for row in rows], axis=0)


def show(picture, labels, title):
    fig, ax = plt.subplots(figsize=(7, 0.75 * len(labels) + 0.4))
    ax.imshow(np.clip(picture, 0, 1), cmap="gray", vmin=0, vmax=1)
    ax.set_yticks([14 + 28 * i for i in range(len(labels))], labels)
    ax.set_xticks([])
    ax.set_title(title, fontsize=10)
    plt.show()

# %% [markdown]
# ## 1. Sum or mean?
#
# tinyvae's loss is **summed over pixels and latent dimensions and averaged over the batch**: nats per
# example ([eq:loss-reduction](../derivations/notation.md#eq:loss-reduction)). Two other reductions are
# common, and they are different questions.
#
# **Over the batch** (`reduction="sum"` as in pytorch/examples, against the mean): the sum is N times
# the mean, so every gradient is N times larger. Adam divides each step by the running size of the
# gradient, so at an equal learning rate the two train almost the same (only Adam's ε sees the scale).
# SGD (here with momentum 0.9) takes the gradient as it is: at an equal learning rate the summed loss
# takes steps N = 100 times larger. We train by hand, scaling the gradient before each step, from the
# same initial weights; the numbers printed are the mean loss of the last 20 training batches.

# %%
def train_by_hand(optimizer, scale=1.0, beta=1.0, steps=STEPS, lr=1e-3, seed=0):
    """Steps of batches of 100 on the grey-level digits; the gradient is multiplied by `scale` before
    each update (scale = N: the loss summed over the batch). Returns the model and its per-step losses."""
    model = tinyvae.VAE(hidden=BASE["hidden"], latent=16, seed=seed)
    opt = tinyvae.Adam(model, lr=lr) if optimizer == "adam" else tinyvae.SGD(model, lr=lr, momentum=0.9)
    rng = np.random.default_rng(seed)
    x_all = data.to_float(x_train)
    losses = []
    # One BLAS thread, as tinyvae.train uses: on a busy machine, BLAS threads that wait for each other
    # cost far more than they save on matrices this small. A diverging run overflows: we record it, not warn.
    with np.errstate(all="ignore"), threadpool_limits(limits=1, user_api="blas"):
        for step in tqdm(range(steps), desc=f"{optimizer}, gradient × {scale:g}, β = {beta:g}"):
            x = x_all[rng.integers(0, len(x_all), 100)]
            loss = float(model.forward(x, beta=beta, validate=False))
            losses.append(loss)
            if not math.isfinite(loss):
                break
            model.backward()
            model.grad *= scale
            opt.step()
    return model, losses


runs_by_hand = {(opt, scale): train_by_hand(opt, scale) for opt in ("adam", "sgd") for scale in (1.0, 100.0)}

# %%
for (opt, scale), (model, losses) in runs_by_hand.items():
    what = "summed over the batch" if scale > 1 else "batch mean"
    print(f"{opt:>4}, {what:<22} last 20 steps: {np.mean(losses[-20:]):10.2f} nats per example "
          f"({len(losses)} steps)")
adam_mean, adam_sum = (np.mean(runs_by_hand[("adam", s)][1][-20:]) for s in (1.0, 100.0))
sgd_mean, sgd_sum = (np.mean(runs_by_hand[("sgd", s)][1][-20:]) for s in (1.0, 100.0))
assert abs(adam_sum - adam_mean) < 0.02 * adam_mean      # Adam: the same training, within 2 %
assert not (sgd_sum < 1.5 * sgd_mean)                    # SGD: the summed loss diverges (nan) or does far worse

# %%
fig, ax = plt.subplots(figsize=(7, 3))
styles = {("adam", 1.0): dict(lw=4, alpha=0.5), ("adam", 100.0): dict(lw=1.2, ls=":", color="black"),
          ("sgd", 1.0): dict(lw=1.2, ls="--"), ("sgd", 100.0): dict(lw=1.2, ls="--", marker="x")}
for (opt, scale), (_, losses) in runs_by_hand.items():
    ax.plot(np.clip(losses, 0, 600), label=f"{opt}, {'sum over batch' if scale > 1 else 'mean over batch'}",
            **styles[(opt, scale)])
ax.set_xlabel("step"); ax.set_ylabel("loss per example (clipped at 600)"); ax.legend(fontsize=8)
ax.set_title("Equal learning rate 1e-3: the two Adam curves lie on top of each other;\n"
             "SGD on the summed loss leaves the plot within a few steps", fontsize=10)
plt.show()
adam_gap = np.abs(np.subtract(runs_by_hand[("adam", 1.0)][1], runs_by_hand[("adam", 100.0)][1])).max()
print(f"largest difference between the two Adam curves over {len(runs_by_hand[('adam', 1.0)][1])} steps: "
      f"{adam_gap:.2f} nats per example")
assert adam_gap < 5

# %% [markdown]
# **Over the pixels** (`F.binary_cross_entropy(..., reduction="mean")` plus a KL summed over latents and
# averaged over the batch): `reduction="mean"` averages over the batch *and* the pixels, dividing the
# summed reconstruction by N·D, while the KL is divided by N only. Per example, the reconstruction is
# divided by D = 784 and the KL is not, so the loss is
# $\tfrac{1}{D}(\text{recon} + D\cdot\text{KL})$: the same model with **β = 784**. This one is not a question
# of step size: the minimum moves. We train on exactly this loss, by hand as above: β = 784, and the
# gradient scaled by 1/D (which Adam, as just seen, hardly notices).

# %%
per_pixel_mean, _ = train_by_hand("adam", scale=1 / 784, beta=784.0)
summed, _ = runs_by_hand[("adam", 1.0)]
for name, model in (("summed over pixels", summed), ("mean over pixels", per_pixel_mean)):
    s = scores(model)
    print(f"{name:<19} negative ELBO {s['loss']:7.2f}  KL {s['kl']:6.2f}  active units {s['active']:>2} of 16")
mean_scores, sum_scores = scores(per_pixel_mean), scores(summed)
assert mean_scores["kl"] < 1.0 and mean_scores["active"] <= 2 < 8 <= sum_scores["active"]
show(sample_rows([summed, per_pixel_mean]), ["sum", "mean"],
     "Samples: the per-pixel mean makes β = 784, and every digit becomes the same blur")

# %% [markdown]
# With the reconstruction averaged over pixels, each nat of KL costs as much as 784 nats of
# reconstruction, so the encoder sends (almost) nothing: the KL is near 0, no latent dimension is
# active (the **active units** printed above, as `tinyvae evaluate` counts them: dimension j is active
# when its posterior mean varies across digits, Var_x E[z_j | x] > 0.01), and every sample decodes to the
# average digit. That is the blurry "VAE" of many tutorials.
#
# ## 2. What should β be?
#
# The loss is [recon + β · KL](../derivations/elbo.md#eq:vae-loss). The KL is the **rate**: nats of
# information the code carries about each digit. The reconstruction is the **distortion**. β = 1 is the
# ELBO; other values trade one for the other: at the optimum of recon + β · KL, one more nat of rate buys a
# reduction of β nats of distortion ([the slope of the frontier is −β](../derivations/rate-distortion.md#eq:beta-slope)).
# Sweep β from 0.1 to 10:

# %%
betas = [0.1, 0.3, 1.0, 3.0, 10.0]
beta_models = {b: fit(f"beta{b}", beta=b) for b in betas}
beta_scores = {b: scores(m) for b, m in beta_models.items()}
rate = {b: s["kl"] for b, s in beta_scores.items()}
distortion = {b: s["recon"] for b, s in beta_scores.items()}
for b in betas:
    print(f"β = {b:>4}: rate (KL) {rate[b]:6.2f}  distortion (recon) {distortion[b]:7.2f}  "
          f"negative ELBO {rate[b] + distortion[b]:7.2f}")
assert all(rate[a] > rate[b] for a, b in zip(betas, betas[1:]))               # more β, less rate
assert all(distortion[a] < distortion[b] for a, b in zip(betas, betas[1:]))   # more β, more distortion
assert min(betas, key=lambda b: rate[b] + distortion[b]) == 1.0               # β = 1 maximizes the ELBO

# %%
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.plot([rate[b] for b in betas], [distortion[b] for b in betas], "o-")
for b in betas:
    ax.annotate(f"β = {b:g}", (rate[b], distortion[b]), textcoords="offset points", xytext=(5, 5), fontsize=8)
ax.set_xlabel("rate: KL (nats)"); ax.set_ylabel("distortion: reconstruction (nats)")
ax.margins(x=0.18, y=0.12)                             # room for the labels at both ends
ax.set_title("Rate against distortion as β goes from 0.1 to 10", fontsize=10)
plt.show()

# %% [markdown]
# The same five models, each decoding prior draws z ~ N(0, I), one row per β; each column decodes the
# same z in every row (the draws come from one seed, and every model has Z = 16):

# %%
assert {m.config.latent for m in beta_models.values()} == {16}
assert 0.25 < rate[10.0] < 0.4                                     # β = 10: about a third of a nat
show(sample_rows([beta_models[b] for b in betas]), [f"β={b:g}" for b in betas], "Samples from N(0, I)")

# %% [markdown]
# Small β buys better reconstructions with a high rate: each digit's posterior sits further from the prior
# (the KL printed above). In the picture, the rows for β = 0.1, 0.3 and 1 all have grainy, speckled
# samples in several columns, and β = 3 gives smoother ones: the picture does not show the small βs'
# samples as worse than β = 1's. At β = 10 the code carries a third of a nat, and every column decodes to the same blurred
# blob (bottom row). Only β = 1 optimizes the ELBO, the bound on log p(x)
# the model is judged by; other values are a choice of trade-off (β-VAE). For β > 1 the loss recon + β·KL
# is still an upper bound on −log p(x), only a looser one (it adds (β − 1)·KL ≥ 0 to the negative ELBO);
# for β < 1 it need not be one ([elbo.md](../derivations/elbo.md#eq:vae-loss)).
#
# ## 3. Binary cross-entropy on grey levels?
#
# MNIST pixels are grey levels. The Bernoulli formula $\lambda^x(1-\lambda)^{1-x}$ at a grey $x$ is no
# probability of anything: over $x \in [0, 1]$ it integrates to $\tanh(l/2)/l \le 1/2$
# ([bernoulli.md](../derivations/bernoulli.md#eq:bce-logits)). Its "NLL" never reaches 0 even for a
# perfect reconstruction: its minimum is the entropy of the grey levels. The continuous Bernoulli
# divides by the missing normalizer [C(l) = l / tanh(l/2)](../derivations/continuous-bernoulli.md#eq:cb-log-norm)
# and is a true density on $[0, 1]$.

# %%
x_test_float = data.to_float(x_test).astype(np.float64)
p = np.clip(x_test_float, 1e-12, 1 - 1e-12)
floor = -(p * np.log(p) + (1 - p) * np.log(1 - p)).sum(axis=1).mean()    # BCE of a perfect reconstruction
bce_model = beta_models[1.0]                                   # section 2's β = 1 model is the BCE model
assert bce_model.config.likelihood == "bernoulli"
cb_model = fit("cb", likelihood="continuous-bernoulli")
bce_scores, cb_scores = scores(bce_model), scores(cb_model)
print(f"grey-level BCE of a perfect reconstruction (the entropy floor): {floor:.2f} nats per digit")
print(f"BCE model:  reconstruction {bce_scores['recon']:.2f} (a cross-entropy, floor {floor:.2f})")
print(f"CB model:   reconstruction {cb_scores['recon']:.2f} (a density: negative is allowed)")
assert bce_scores["recon"] > floor > 0 > cb_scores["recon"]


def cb_negative_elbo(model, pixels, seed=0):
    """Negative ELBO with the decoder's logits read as a continuous Bernoulli (for the BCE-trained decoder:
    the same logits, with the normalizer), on float pixels (N, D); also returns the most negative logit."""
    mu, log_var = model.encode(pixels)
    eps = np.random.default_rng(seed).standard_normal(mu.shape).astype(mu.dtype)
    logits = model.decoder.forward(mu + np.exp(0.5 * log_var) * eps)
    recon, _ = tinyvae.continuous_bernoulli_nll(logits, pixels)
    kl, _, _ = tinyvae.gaussian_kl(mu, log_var)
    return float(recon + kl), float(logits.min())


# Dequantized pixels x = (k + u)/256, one fixed u ~ U[0, 1) per pixel: none at exactly 0 or 1.
u = np.random.default_rng(0).random(x_test.shape, dtype=np.float32)
x_dequantized = ((x_test + u) / 256).astype(np.float32)
density_floor = -784 * math.log(256)                     # no negative ELBO of dequantized digits is below this
on_grey = {name: cb_negative_elbo(m, data.to_float(x_test)) for name, m in (("CB", cb_model), ("BCE", bce_model))}
on_deq = {name: cb_negative_elbo(m, x_dequantized) for name, m in (("CB", cb_model), ("BCE", bce_model))}
for name in on_grey:
    print(f"{name} model as a density: negative ELBO {on_grey[name][0]:8.1f} on the grey levels k/255, "
          f"{on_deq[name][0]:8.1f} on dequantized pixels (lower is better); most negative logit {on_grey[name][1]:7.1f}")
print(f"no density of dequantized digits can score below −784 log 256 = {density_floor:.0f}")
assert on_grey["CB"][1] < 10 * on_grey["BCE"][1] < 0                # the CB's background logits ran far
assert density_floor < on_deq["CB"][0] < on_deq["BCE"][0] - 500     # dequantized, the CB model still wins, widely
assert abs(on_grey["CB"][0] - cb_scores["loss"]) < 5                # the figure evaluate_elbo gave above

# %% [markdown]
# A caveat first. The grey levels $k/255$ put most pixels at exactly 0, an atom, where the continuous
# Bernoulli's likelihood has no maximum: $-\log p(0 \mid l)$ keeps falling as the logit $l \to -\infty$
# ([continuous-bernoulli.md](../derivations/continuous-bernoulli.md#eq:cb-nll), below its NLL). Trained on such pixels, the CB model's
# background logits have run far below the BCE model's (the most negative logits, printed), and its
# figures on the grey levels, the reconstruction above included, measure partly how far they ran. A fair
# comparison of densities scores dequantized pixels $x = (k + u)/256$, none at 0 or 1, where no model can
# go below $-784 \log 256$ nats. There too the model trained with its own normalizer wins by a wide
# margin, on this pair of models: the BCE-trained decoder puts its logits where the *cross-entropy* is
# lowest, not the density.
#
# **Which image is the CB's?** Its parameter $\lambda = \sigma(l)$ is not its mean: the mean is
# [σ(l) − d log C/dl](../derivations/continuous-bernoulli.md#eq:cb-mean), pulled toward ½. `decode` (and so every
# picture tinyvae draws) returns the mean $\mathbb{E}[x \mid z]$. The two differ most where the decoder is
# confident: a background logit of −100 has $\lambda \approx 10^{-44}$ but mean $1/100$, and a stroke logit of 3
# has $\lambda = 0.95$ but mean $0.72$. So the mean image is the greyer one, with dimmer strokes:

# %%
xb = data.to_float(x_test[:500])
mu_cb, _ = cb_model.encode(xb)
logits = cb_model.decoder.forward(mu_cb)
lam, cb_mean = tinyvae.sigmoid(logits), cb_model.decode(mu_cb)
np.testing.assert_allclose(cb_mean, tinyvae.continuous_bernoulli_mean(logits))
examples = np.array([-100.0, 3.0])                                  # the two logits of the text above
lam_examples, mean_examples = tinyvae.sigmoid(examples), tinyvae.continuous_bernoulli_mean(examples)
print(f"logit −100: λ = {lam_examples[0]:.1e}, mean {mean_examples[0]:.3f};  logit 3: λ = {lam_examples[1]:.3f}, "
      f"mean {mean_examples[1]:.3f}")
np.testing.assert_allclose(tinyvae.continuous_bernoulli_mean(examples), [0.01, 0.72], atol=0.005)
assert tinyvae.sigmoid(examples)[0] < 1e-43 and abs(tinyvae.sigmoid(examples)[1] - 0.95) < 0.005
bce_recon = bce_model.reconstruct(xb)
for name, img in (("BCE σ(l)", bce_recon), ("CB mean", cb_mean), ("CB λ = σ(l)", lam)):
    print(f"{name:<12} squared error per pixel {((img - xb) ** 2).mean():.4f}  absolute {np.abs(img - xb).mean():.4f}  "
          f"mean value on stroke pixels (> 0.9): {img[xb > 0.9].mean():.3f}")
assert ((cb_mean - xb) ** 2).mean() < ((lam - xb) ** 2).mean()    # the mean is the better least-squares image
assert cb_mean[xb > 0.9].mean() < lam[xb > 0.9].mean()             # and the dimmer one
picture = np.concatenate([np.concatenate([r.reshape(28, 28) for r in rows[:8]], axis=1)
                          for rows in (xb, bce_recon, cb_mean, lam)])
show(picture, ["input", "BCE σ(l)", "CB mean", "CB λ"], "Reconstructions: the CB's mean (what decode returns) and its λ")

# %% [markdown]
# The mean is what the model expects a pixel to be, and it has the smaller squared error; λ looks
# crisper but is not an expectation of anything the model draws. Neither is "the" sample: a draw from
# the CB adds independent noise to every pixel ([inverse-CDF draws](../derivations/continuous-bernoulli.md#eq:cb-inverse-cdf)).
#
# ## 4. MSE or BCE, and why are Gaussian VAEs blurry?
#
# A Gaussian decoder has a variance σ_x² that "MSE + KL" fixes silently: summed squared error + β·KL
# is the ELBO of [σ_x² = β/2](../derivations/sigma-vae.md#eq:sigma-vae-implied-var), so
# `mse_loss(reduction="sum") + KL` means σ_x² = 0.5, while a decent decoder's squared error per pixel is a
# few hundredths (the optimal σ_x² below ends near 0.03). A σ_x² that large makes detail not worth its KL. In a linear decoder this is exact: with
# Z latent dimensions it holds at most the Z principal directions of the data with the largest variances,
# and a direction of variance λ is shrunk by
# [1 − σ_x²/λ, and dropped when λ ≤ σ_x²](../derivations/sigma-vae.md#eq:sigma-vae-shrinkage). On MNIST,
# how many directions have a variance above σ_x², and so how many of Z = 16 latent dimensions a linear
# decoder could use:

# %%
flat = data.to_float(x_train).astype(np.float64)
data_mse = float(((flat - flat.mean(0)) ** 2).mean())     # per pixel, about the mean image
print(f"the data's mean squared error about its mean image: {data_mse:.4f} per pixel")
eigenvalues = np.linalg.eigvalsh(np.cov(flat[:EIGEN_DIGITS], rowvar=False))[::-1]   # (784,) largest first
for var in (1.0, 0.5, 0.02):
    kept = int((eigenvalues > var).sum())
    print(f"σ_x² = {var:<4}: {kept:>3} of 784 directions with a variance above σ_x²; "
          f"a linear decoder with Z = 16 could use {min(kept, 16)} of its 16 latent dimensions")
assert (eigenvalues > 1.0).sum() == 12 and 16 <= (eigenvalues > 0.5).sum() < (eigenvalues > 0.02).sum()

# %% [markdown]
# So with σ_x² = 1 a linear decoder with Z = 16 could use only 12 of its latent dimensions, and even the
# ones it uses are shrunk. (The nonlinear decoders below are not bound by this count.)
#
# The σ-VAE (Rybkin et al. 2021) does not choose σ_x²: `obs_var_mode="learned"` trains log σ_x² with the
# rest ([its gradient](../derivations/sigma-vae.md#eq:sigma-vae-grad-logvar)), and `"optimal"` sets it to
# each batch's [mean squared error](../derivations/sigma-vae.md#eq:sigma-vae-optimal-var), the closed-form
# optimum. All four below are Gaussian densities on the same pixels, so their negative ELBOs compare. We
# give these four 500 steps (batches of 50) rather than the 200 of the other sections, so that the learned
# variance has more steps to move (see next). The learned σ_x² starts at the data's own mean squared error about its mean image (what
# a decoder that draws the average digit would leave), not at 1: Adam moves log σ_x² by at most about one
# learning rate per step, so from 1, 500 steps at 1e-3 could bring σ_x² down to about e^−0.5 ≈ 0.6 at
# best, far above any decent decoder's error. Sharpness is the mean squared difference
# between neighbouring pixels of 1 000 samples (`tinyvae.evaluate.sample_sharpness`): blur lowers it.

# %%
GAUSSIAN = dict(epochs=5, batch_size=50)   # 500 steps: 5 epochs of 5 000 digits in batches of 50
variance_models = {"σ_x² = 1": fit("g1", likelihood="gaussian", obs_var=1.0, **GAUSSIAN),
                   "σ_x² = 0.5 (SSE + KL)": fit("g05", likelihood="gaussian", obs_var=0.5, **GAUSSIAN)}

# %%
variance_models["learned"] = fit("glearned", likelihood="gaussian", obs_var_mode="learned", obs_var=data_mse,
                                 **GAUSSIAN)
variance_models["optimal"] = fit("goptimal", likelihood="gaussian", obs_var_mode="optimal", **GAUSSIAN)

# %%
variance_scores = {}
for name, model in variance_models.items():
    s = scores(model)
    s["sharpness"] = evaluate.sample_sharpness(model)
    variance_scores[name] = s
    print(f"{name:<22} σ_x² {model.observation_variance():7.4f}  negative ELBO {s['loss']:8.1f}  KL {s['kl']:6.1f}  "
          f"sample sharpness {s['sharpness']:.4f}")
digits_sharpness = evaluate.image_sharpness(data.to_float(x_test))
print(f"sharpness of the test digits themselves: {digits_sharpness:.4f}")
fixed, optimal, learned = (variance_scores[k] for k in ("σ_x² = 1", "optimal", "learned"))
assert optimal["loss"] < learned["loss"] < fixed["loss"]            # the better σ_x², the better the ELBO
assert optimal["kl"] > 8 * fixed["kl"]                             # about ten times the information in the code
assert fixed["sharpness"] < 0.5 * digits_sharpness and min(optimal["sharpness"], learned["sharpness"]) > digits_sharpness
learned_var, optimal_var = (variance_models[k].observation_variance() for k in ("learned", "optimal"))
assert 0.02 < optimal_var < 0.04                                   # a decent decoder's error per pixel
assert optimal_var < learned_var < data_mse                        # on its way down, not there yet
assert learned["loss"] < variance_scores["σ_x² = 0.5 (SSE + KL)"]["loss"]
show(sample_rows(list(variance_models.values())), list(variance_models), "Samples of four Gaussian decoders")

# %% [markdown]
# Read the sharpness column with its caveat first: it rewards any difference between neighbouring pixels,
# speckle included, and the samples of the learned and the optimal σ_x² are mostly speckle and broken
# strokes (the picture's bottom two rows): by this measure they are sharper than the real digits, yet few of them look like
# digits. Of the four rows, σ_x² = 0.5 looks the most digit-like, and σ_x² = 1 gives blurred blobs, under
# half the sharpness of real digits, with a few nats of KL. The ELBO tells another story: the optimal
# σ_x² puts about ten times as much information in the code as σ_x² = 1 and scores a far better negative
# ELBO. The learned variance heads the same way: from the data's mean squared error it falls toward the
# optimal one, but with Adam at 1e-3 its log σ_x² moves about 1e-3 per step, so 500 steps take it only
# part of the way (the printed σ_x²). Even so it beats both fixed variances by hundreds of nats; the
# optimal σ_x² needs no steps at all. A better ELBO has not bought better-looking samples from this
# briefly trained decoder.
#
# ## 5. Why does the KL fall to zero?
#
# Posterior collapse: a latent dimension whose KL falls to about 0 carries no information; its posterior
# is the prior for every digit. A dimension that does not help the decoder early is pushed to the prior
# by the KL, and there its KL gradient keeps it. Two remedies: **KL warm-up** (β grows from 0 to its value
# over the first epochs, so information is cheap while the decoder learns to use it) and **free bits**
# ([Σ_j max(λ, KL_j)](../derivations/free-bits.md#eq:free-bits): a dimension under λ nats gets
# [no KL gradient at all](../derivations/free-bits.md#eq:free-bits-grad)). To see collapse within 200
# steps, we train 32 latent dimensions with a strong β = 10 (section 2's β = 10 model already kept under
# a nat in all). Two measures: the **active units** of section 1 (dimension j is active when
# Var_x E[z_j | x] > 0.01), and the **KL** of each dimension, the nats it carries.

# %%
collapse_models = {"plain": fit("plain", latent=32, beta=10.0),
                   "KL warm-up (3 epochs)": fit("warmup", latent=32, beta=10.0, kl_warmup=3.0),
                   "free bits λ = 0.5": fit("freebits", latent=32, beta=10.0, free_bits=0.5)}
kl_dims, collapse = {}, {}
for name, model in collapse_models.items():
    collapse[name] = scores(model)
    kl_dims[name] = np.sort(tinyvae.kl_per_dimension(model, x_test))[::-1]
    print(f"{name:<22} active units {collapse[name]['active']:>2} of 32  KL {collapse[name]['kl']:6.2f} in all  "
          f"negative ELBO {collapse[name]['loss']:7.2f}")
plain, warm, free = (collapse[k] for k in collapse_models)
assert rate[10.0] < 1                                              # section 2's β = 10 model: under a nat in all
assert plain["active"] < 16 and plain["kl"] < 1                    # most dimensions inactive, under a nat in all
assert warm["active"] == 32 and warm["kl"] < 2                     # all "active", yet about a nat in all
assert free["active"] == 32 and free["kl"] > 10 * plain["kl"] and free["loss"] < plain["loss"] - 20

# %%
fig, ax = plt.subplots(figsize=(6, 3))
for name, values in kl_dims.items():
    ax.plot(values, "o-", ms=3, label=name)
ax.axhline(0.5, color="gray", lw=0.8, ls=":", label="λ = 0.5")
ax.set_yscale("log")
ax.set_xlabel("latent dimension, by decreasing KL"); ax.set_ylabel("KL (nats, log scale)"); ax.legend(fontsize=8)
ax.set_title("KL per latent dimension on the test digits (β = 10, 32 dimensions)", fontsize=10)
plt.show()
assert ((0.2 < kl_dims["free bits λ = 0.5"]) & (kl_dims["free bits λ = 0.5"] < 0.55)).all()   # near λ

# %% [markdown]
# Without a remedy the code collapses: most of the 32 dimensions are inactive, and all of them together
# carry under one nat. Warm-up does not prevent it here: β reaches 10 after three epochs, and although
# every posterior mean still moves a little from digit to digit (so all 32 count as active), the code
# carries about a nat in all; the active-units count alone overstates what such a code holds. Under free
# bits no dimension is charged below λ = 0.5 nats, so the encoder keeps information in every dimension
# (each ends between 0.2 and 0.55 nats, near λ, in the plot), and the model scores a far better negative
# ELBO. That ELBO is computed with the plain KL and β = 1 in every case (free bits change how the model is
# trained, not what it is scored on): the information it was allowed to keep pays for itself in
# reconstruction.
#
# **Latent traversals** show what an active dimension does: decode a digit's posterior mean with one
# coordinate $z_j$ replaced by values from −3 to +3 standard deviations of $\mu_j$ over the data, centred
# on its mean over the data (so the middle column is not the digit's own code), as
# `tinyvae plot RUN --traverse` does for a run. Here for the β = 1 model of section 2, and for its four
# dimensions whose posterior mean varies most over the digits (the ones `plot_traversals` picks); the KL
# of each is printed.

# %%
model_b1 = beta_models[1.0]
spread = model_b1.encode(data.to_float(x_test))[0].var(axis=0)                 # (16,) variance of μ_j over the digits
plotted = np.argsort(spread)[::-1][:4]
kl_b1 = tinyvae.kl_per_dimension(model_b1, x_test)
for j in plotted:
    print(f"z_{j}: variance of μ_{j} over the digits {spread[j]:.2f}, KL {kl_b1[j]:.2f} nats")
assert (kl_b1[plotted] > 1).all()
plots.plot_traversals(model_b1, x_test, dims=4, digits=2, steps=7)

# %% [markdown]
# No dimension does one thing. In each grid the top row is decoded from the code of a 7 and the bottom
# row from that of a 2, with only $z_j$ changed. Along $z_{11}$ the bottom row goes from a 1-like stroke at
# −3σ to a 3, and the 7 blurs into a blob at +3σ; along $z_{15}$ the bottom row goes from a 2- or 3-like
# shape to a 5; elsewhere the 7s change less, mostly in slant and thickness. Each of these dimensions mixes several changes, and the same change of $z_j$ does
# different things to different digits: the axes of a VAE trained this way need not mean anything alone.

# %% [markdown]
# This is the last notebook in the reading order of [Start here](../docs/start-here.md). Deeper: the reductions and their β in [notation.md](../derivations/notation.md#eq:loss-reduction),
# the β trade-off as a frontier in [rate-distortion.md](../derivations/rate-distortion.md#eq:beta-slope), the
# normalizer in [continuous-bernoulli.md](../derivations/continuous-bernoulli.md#eq:cb-log-norm), σ_x² in
# [sigma-vae.md](../derivations/sigma-vae.md#eq:sigma-vae-implied-var), collapse and its remedies in
# [free-bits.md](../derivations/free-bits.md#eq:free-bits); every page in reading order in the
# [derivations index](../derivations/README.md). Back to the start: [01 · a VAE on one screen](01_vae_on_one_screen.ipynb).
