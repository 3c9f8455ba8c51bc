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
# # 05 · Training a VAE on MNIST, reading its curves, evaluating it
#
# **What you will do.** Train a VAE with `tinyvae.train` on binarized digits (a short setting: a
# 784-128-20 model, 5 epochs on 8 000 digits), read its training curves, evaluate it properly
# (the negative [ELBO](../derivations/elbo.md#eq:elbo) with ε *sampled*, and a small-K
# [importance-weighted](../derivations/importance-sampling.md#eq:iw-bound) estimate of $-\log p(x)$), and
# look at samples and reconstructions. Every number is in nats per
# example ([the reduction convention](../derivations/notation.md#eq:loss-reduction)), and the loss is
# [reconstruction + β · KL](../derivations/elbo.md#eq:vae-loss).

# %%
# %matplotlib inline
import json
import tempfile
from pathlib import Path

import numpy as np
import matplotlib.pyplot as plt
import tinyvae
from tinyvae import data, evaluate, plots

np.set_printoptions(precision=3, suppress=True)
runs = Path(tempfile.mkdtemp(prefix="tinyvae-"))   # run folders go to a scratch directory
mnist = data.load_dataset()                          # the bundled MNIST, uint8
print(mnist)

# %% [markdown]
# ## 1. Train
#
# A `TrainConfig` holds everything a run depends on (each field has a comment in `tinyvae/train.py`);
# the run is a pure function of it. The full recipe is the default config (784-400-20, 10 epochs on
# all 60 000 digits, `tinyvae train` in a shell); here we shorten it, and we train on **binary** pixels.
#
# Why binary: the Bernoulli decoder is a distribution over pixels that are 0 or 1. On grey levels its
# loss is a cross-entropy, not the negative log of any probability, so neither the loss nor the
# importance-weighted figure would be a bound on, or an estimate of, a likelihood
# ([bernoulli.md](../derivations/bernoulli.md#eq:bce-logits), last section). With `binarize="dynamic"` each
# digit is binarized afresh every time it enters a batch (pixel $d$ is 1 with probability grey$_d$/255),
# and the test digits get **one fixed binarization** (seeded, the same for every run), so that every
# evaluation scores the same $\lbrace 0, 1\rbrace$ pixels.

# %%
config = tinyvae.TrainConfig(hidden=(128,), latent=20, epochs=5, limit_train=8_000, limit_test=1_000,
                             lr=2e-3, seed=0, binarize="dynamic", out=str(runs / "mnist"))
run = tinyvae.train(config, pictures=False)     # a progress bar per epoch, then one line per epoch
print(sorted(p.name for p in run.iterdir()))

# %% [markdown]
# The run folder holds `config.json`, `metrics.jsonl` (one line per epoch) and `checkpoint.npz`.
#
# ## 2. Read the curves

# %%
metrics = plots.read_metrics(run)
for row in metrics:
    print({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items() if k.split("_")[0] in ("epoch", "train", "test")})
assert metrics[0]["train_loss"] > metrics[0]["test_loss"] and metrics[0]["train_recon"] > metrics[0]["test_recon"]
assert metrics[0]["train_kl"] > metrics[0]["test_kl"] and metrics[1]["train_kl"] < metrics[1]["test_kl"]
assert metrics[-1]["test_recon"] < metrics[0]["test_recon"] and metrics[-1]["test_kl"] > metrics[0]["test_kl"]
test_kl = [m["test_kl"] for m in metrics]
assert min(min(test_kl), min(m["train_kl"] for m in metrics)) > 5     # the KL is never near 0 here
assert metrics[1]["train_kl"] < metrics[0]["train_kl"] and all(np.diff(test_kl) > 0)
plots.plot_curves(run)

# %% [markdown]
# How to read them:
#
# * **In the loss and reconstruction panels the train curve lies above the test curve at first** (asserted
#   above for the first epoch). The train number of an epoch averages the loss over the whole epoch,
#   while the model was still improving; the test number is measured at the end of the epoch. Later, once
#   the model fits the training set better than unseen data, the order flips: that gap is overfitting.
#   The KL panel does not follow that rule. The KL is what the model pays for better reconstructions,
#   and it mostly grows during training, so the test KL at the end of an epoch can lie above the
#   epoch's average training KL (epoch 2 here, asserted above) or below it (epoch 1).
# * **The reconstruction term falls and, after a dip, the KL term rises.** The KL is not near 0 at the
#   start: on this run it stays above 5 nats per example in every epoch, train and test. Nor does it
#   rise steadily: epoch 2's training average lies below epoch 1's (the per-step curve of
#   [notebook 01](01_vae_on_one_screen.ipynb) shows the same early bump and dip). From the end of epoch 1
#   on, the test KL rises at every epoch (all asserted above): training buys better reconstructions by
#   spending nats of KL on information about each digit.
# * **The loss is the negative ELBO** when β = 1. The test curve is measured on the fixed binarization of
#   the test digits with ε sampled: its expectation over ε is an upper bound on $-\log p(x)$ of those
#   binary digits, averaged over them. The train curve averages the loss over dynamically binarized
#   batches while the model was changing.
#
# ## 3. Evaluate
#
# Evaluate on the run's own binarization of the test digits: `tinyvae.evaluate.evaluation_images` returns
# it (and says which it is) from the run's config. `tinyvae.evaluate_elbo` samples ε, as the ELBO's
# expectation requires: decoding z = μ instead typically gives a smaller reconstruction term, and a number
# that bounds nothing. `tinyvae.importance_weighted_nll` averages K importance weights inside the log
# ([eq:iw-nll-estimate](../derivations/importance-sampling.md#eq:iw-nll-estimate)): K = 1 is the ELBO again
# (a different draw of ε, so a slightly different number). The expectation of the estimate never
# increases as K grows (Burda et al., 2016, Theorem 1), and it tends to $-\log p(x)$ whenever the ELBO is
# finite, as it is here ([importance-sampling.md](../derivations/importance-sampling.md#eq:iw-bound)); the
# printed figures, each from its own samples, typically decrease too. Each is, in expectation, an upper
# bound on the negative log-likelihood of these binary digits, and the last is the tightest. (Papers use
# K = 5000; small K keeps this quick.) All on the same 500 test digits.

# %%
model = tinyvae.load_model(run / "checkpoint.npz")
run_config = json.loads((run / "config.json").read_text())
x_test, which = evaluate.evaluation_images(mnist.test_x[:500], run_config, seed=0)
print("test digits:", which)
assert set(np.unique(x_test)) <= {0, 255}                  # binary pixels (uint8 0 or 255)
elbo = tinyvae.evaluate_elbo(model, x_test, seed=0)
print(f"negative ELBO, eps sampled:       {elbo['loss']:.2f} = recon {elbo['recon']:.2f} + KL {elbo['kl']:.2f}")
x_float = data.to_float(x_test)
model.forward(x_float, eps=np.zeros((len(x_float), model.config.latent), dtype=x_float.dtype))  # z = mu
print(f"reconstruction at z = mu:         {float(model.stats['recon']):.2f} (eps = 0: not an ELBO term, bounds nothing)")
nll = {}
for k in (1, 10, 100):
    nll[k] = tinyvae.importance_weighted_nll(model, x_test, k=k, seed=0).mean()
    print(f"importance-weighted, K = {k:>3}:     {nll[k]:.2f} nats per example")
assert nll[100] < elbo["loss"]
active, variances = tinyvae.active_units(model, x_test)
kl_dims = tinyvae.kl_per_dimension(model, x_test)
print(f"active latent dimensions: {active} of {model.config.latent}")
print("variance across digits of each dimension's posterior mean:", np.sort(variances)[::-1].round(3))
assert active == int((variances > 0.01).sum())               # the criterion stated below
print("KL of each dimension, nats per example:", np.sort(kl_dims)[::-1].round(2))
assert active == model.config.latent and kl_dims.min() > 0.1  # on this run: every dimension active, none at KL 0

# %% [markdown]
# Active units are scored on the same binarized test digits. A dimension $j$ is *active* when its
# posterior mean moves with the digit: when $\mathrm{Var}_x\left(\mathbb E_{q}[z_j \mid x]\right) > 0.01$, the
# criterion of Burda et al. (2016) that `tinyvae evaluate` also uses. An inactive dimension has usually
# collapsed onto the prior: its $q(z_j \mid x)$ is close to $\mathcal N(0, 1)$ for every digit, so it carries
# no information about the digit. The criterion looks only at the mean, though (a dimension whose mean
# stays put while its variance moves away from 1 is inactive too, and pays KL), so check the dimension's
# KL as well (`tinyvae.kl_per_dimension`): near 0 for a collapsed one. In this run every dimension is
# active, and none has a KL near 0 (printed above); inactive ones appear in
# [notebook 09](09_questions.ipynb).
#
# ## 4. Samples and reconstructions

# %%
plots.plot_samples(model, n=64, seed=0)

# %%
plots.plot_reconstructions(model, mnist.test_x[:16])

# %% [markdown]
# Five short epochs on 8 000 digits are not enough for good samples: some of the 64 are recognizable
# digits, most are blurred shapes between digits. The reconstructions are better, since the encoder tells
# the decoder where to look, but far from exact: roughly half of the 16 keep their input's class clearly,
# and the others blur or change it (the 2 comes out as a 3, both 4s as 9s, the 9 after the 5 as a 7, the
# last 5 as a 3).
# Train longer (`tinyvae train`, the default 10 epochs on all 60 000 digits) for sharper ones; the curves
# above tell you when more epochs stop helping.
#
# Next: [06 · the latent space](06_latent_space.ipynb). Deeper: [the ELBO and its gap](../derivations/elbo.md),
# [importance sampling](../derivations/importance-sampling.md), and the [IWAE bound](../derivations/iwae.md).
