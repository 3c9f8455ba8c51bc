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
# # 02 · Autoencoder or VAE: why the KL term is there
#
# **What you will see.** A plain autoencoder (AE) and a VAE, with the same networks, trained briefly on
# 10 000 MNIST digits. Both reconstruct. Then decode draws from $\mathcal N(0, I)$ with each: the AE's
# codes sit wherever the reconstruction loss happened to put them, with a scale and holes that nothing
# controls, so many prior draws land where its decoder was never trained: on these models more than three
# times as often as the VAE's (until its codes are centred and standardized after training, section 3).
# The VAE's [loss](../derivations/elbo.md#eq:vae-loss) adds the [KL term](../derivations/kl.md#eq:kl-closed-form), which pulls every $q(z \mid x)$ toward
# $\mathcal N(0, I)$, and [noise](../derivations/reparameterization.md#eq:reparam), which trains the
# decoder on neighbourhoods rather than points. Read [the autoencoder loss](../derivations/autoencoder.md#eq:ae-loss)
# and [what the KL does to the aggregate posterior](../derivations/autoencoder.md#eq:aggregate-kl).
#
# The four models (AE and VAE, with 16 and with 2 latent dimensions) come trained with the package, so
# this notebook runs in seconds: `tinyvae.pretrained.load(name)` returns one. Each was made by one
# `tinyvae train` command with its seed, printed below; it took 3 epochs on 10 000 digits, so the
# pictures are blurrier than a full run's. **To train them here instead**, set the environment variable
# `TINYVAE_RETRAIN=1` before starting Jupyter (or pass `retrain=True` to `load`).
#
# **In the browser** (this notebook's JupyterLite copy, where `sys.platform` is `"emscripten"`), NumPy has
# no optimized matrix library and multiplies matrices many times slower than on your machine, so section 3
# decodes 300 draws from the prior at each latent size instead of 500. The same lines print the browser's
# figures and the same `assert`s check them; the outputs stored with the notebook are those of the full
# run, which Jupyter on your own machine repeats.

# %%
# %matplotlib inline
import sys

import numpy as np
import matplotlib.pyplot as plt
import tinyvae
from tinyvae import data, plots, pretrained

np.set_printoptions(precision=2, suppress=True)
mnist = data.load_dataset()                          # the bundled MNIST, uint8
print(mnist)
print("retrain:", pretrained.retrain_requested(), "(set TINYVAE_RETRAIN=1 to train the models below here)")
DRAWS = 300 if sys.platform == "emscripten" else 500     # prior draws per latent size (section 3; see above)
if sys.platform == "emscripten":
    print(f"in the browser: {DRAWS} prior draws per latent size in section 3, not 500")

# %% [markdown]
# ## 1. Train both
#
# Same architecture (784-128-16, ReLU, Bernoulli decoder), same data, same seed; `--model ae` drops the
# KL term and the noise.

# %%
for name in ("ae-z16", "vae-z16"):
    print(f"{name}: {pretrained.command(name)} --out DIR")
ae, vae = pretrained.load("ae-z16"), pretrained.load("vae-z16")

# %% [markdown]
# ## 2. Reconstructions: similar. Samples from N(0, I): compare
#
# Rows 2 and 3 reconstruct the test digits of row 1; rows 4 and 5 decode the same ten draws
# $z \sim \mathcal N(0, I)$ with each decoder. After 3 epochs the two reconstruct alike, and imperfectly:
# both blur some digits and turn a few into another class.

# %%
plots.plot_ae_vs_vae(ae, vae, mnist.test_x[:10], seed=0)

# %%
scores = {}
for name, model in (("AE ", ae), ("VAE", vae)):
    scores[name] = tinyvae.evaluate_elbo(model, mnist.test_x[:1000], seed=0)
    print(f"{name} reconstruction term on 1000 test digits {scores[name]['recon']:6.1f} nats/example,  "
          f"KL {scores[name]['kl']:5.1f}")
assert scores["AE "]["recon"] < scores["VAE"]["recon"]

# %% [markdown]
# The AE reconstructs better: it spends nothing on the KL and has no noise to fight. That is not the point
# of a VAE; generating is.
#
# ## 3. The latent spaces, and their holes
#
# Sixteen dimensions cannot be drawn, and a projection hides exactly the gaps we are after. So take the
# same pair trained with **two** latent dimensions, where the scatter of the codes *is* the latent space.

# %%
for name in ("ae-z2", "vae-z2"):
    print(f"{name}: {pretrained.command(name)} --out DIR")
ae2, vae2 = pretrained.load("ae-z2"), pretrained.load("vae-z2")
x, y = mnist.test_x[:2000], mnist.test_y[:2000]
plots.plot_latent(ae2, x, y)

# %%
plots.plot_latent(vae2, x, y)

# %% [markdown]
# Mind the axes: the AE's cloud is off-centre and several times wider than the prior, whose draws
# mostly fall within radius 2 of the origin. The cell below prints how few of its codes lie there.

# %%
def codes_of(model, images):                                 # the code, or the mean of q(z|x): (N, Z)
    out = model.encode(data.to_float(images))
    return out[0] if isinstance(out, tuple) else out

rng = np.random.default_rng(0)
prior = rng.standard_normal((DRAWS, 2)).astype(np.float32)   # draws z ~ N(0, I), Z = 2
near_origin = {"prior draws": (np.linalg.norm(prior, axis=1) < 2).mean()}
for name, model in (("autoencoder", ae2), ("VAE", vae2)):
    codes = codes_of(model, x)                                # (2000, 2)
    near_origin[name + " codes"] = (np.linalg.norm(codes, axis=1) < 2).mean()
    print(f"Z = 2 {name}: codes' mean {codes.mean(0)}, standard deviation per dimension {codes.std(0)}")
print("within radius 2 of the origin:", {k: f"{v:.0%}" for k, v in near_origin.items()})
assert near_origin["autoencoder codes"] < 0.2 < 0.8 < near_origin["prior draws"]
ae_codes = codes_of(ae2, x)
assert np.linalg.norm(ae_codes.mean(0)) > 2 and ae_codes.std(0).min() > 2.5   # off-centre; the prior's std is 1

# %% [markdown]
# Which prior draws fall in a *hole*, where the decoder produces something that is not a digit? Distances
# in the latent space would mislead here: the autoencoder's coordinates have an arbitrary scale, and the
# VAE's decoder was trained on the noisy neighbourhoods $\mu + \sigma \odot \varepsilon$ around each
# code, not at the codes alone. So measure in image space, relative to each model's own outputs: decode
# each draw and find the nearest of 5000 training digits. A draw is *in a hole* (red) when its decoding
# is farther from every training digit than 99 % of the model's reconstructions of 500 test digits are.

# %%
bank = data.to_float(mnist.train_x[:5000])                  # (5000, 784)

def nearest(points, bank):                                   # distance to the closest row of bank
    d2 = (points**2).sum(1)[:, None] - 2 * points @ bank.T + (bank**2).sum(1)[None, :]
    return np.sqrt(np.maximum(d2, 0).min(axis=1))

typical = {}                                                 # each model's threshold, computed once

def in_holes(model, prior_draws, scale=1.0):
    """Which draws decode (as z / scale) farther from every training digit than 99 % of test reconstructions do."""
    if model not in typical:
        typical[model] = np.quantile(nearest(model.reconstruct(data.to_float(x[:500])), bank), 0.99)
    return nearest(model.decode(prior_draws / np.float32(scale)), bank) > typical[model]

holes = {}
fig, axes = plt.subplots(1, 2, figsize=(11, 5))
for ax, (name, model) in zip(axes, (("autoencoder", ae2), ("VAE", vae2))):
    in_hole = in_holes(model, prior)
    holes[name] = in_hole.mean()
    ax.scatter(*codes_of(model, x).T, s=3, c="0.6", label="codes of test digits")
    ax.scatter(*prior[in_hole].T, s=6, c="red", label="prior draw in a hole")
    ax.scatter(*prior[~in_hole].T, s=6, c="tab:blue", label="prior draw that decodes near data")
    ax.set_title(f"{name}: {in_hole.mean():.0%} of prior draws fall in holes")
    ax.set_xlabel("$z_1$"), ax.set_ylabel("$z_2$"), ax.set_aspect("equal")
axes[0].legend(loc="lower left", fontsize=8)
plt.show()

# %%
prior16 = rng.standard_normal((DRAWS, 16)).astype(np.float32)
holes16 = {name: in_holes(model, prior16).mean() for name, model in (("autoencoder", ae), ("VAE", vae))}
for z_dim, found in ((2, holes), (16, holes16)):
    ratio = found["autoencoder"] / found["VAE"]
    print(f"Z = {z_dim:>2}: prior draws in holes: autoencoder {found['autoencoder']:.0%}, VAE {found['VAE']:.0%}"
          f"  ({ratio:.1f} times as often for the autoencoder)")
    assert ratio > 3, (z_dim, found)

# %% [markdown]
# On these models the autoencoder's prior draws fall in holes more than three times as often as the VAE's,
# at Z = 2 and at Z = 16 (the ratios are printed above); some of the VAE's do too.
#
# That figure for the autoencoder depends on an arbitrary choice. Multiply its encoder's output by $c$ and
# divide its decoder's input by $c$: the new autoencoder reconstructs every digit exactly as before and has
# the same loss, but its codes are $c$ times wider, so the same prior draws land elsewhere among them.
# Nothing in the AE's loss prefers one $c$. The VAE has no such freedom: rescaling its codes changes its KL
# term. Below, the fraction of prior draws in holes for the AE rescaled by $c$, at both latent sizes, against
# the VAE's. Rescaling about the origin leaves the AE's codes off-centre, so one more point: the AE with its
# codes centred and standardized (each dimension shifted to mean 0 and scaled to standard deviation 1 over
# the 2000 test digits, the decoder undoing it), the affine map that matches the prior's mean and spread.

# %%
scales = np.array([0.15, 0.25, 0.4, 0.6, 1.0, 1.6, 2.5])
ae_holes = {2: [in_holes(ae2, prior, c).mean() for c in scales],
            16: [in_holes(ae, prior16, c).mean() for c in scales]}
fig, ax = plt.subplots(figsize=(7, 3.6))
for (z_dim, fractions), colour in zip(ae_holes.items(), ("tab:red", "tab:purple")):
    ax.plot(scales, fractions, "o-", color=colour, label=f"autoencoder, Z = {z_dim}, codes rescaled by c")
    ax.axhline((holes if z_dim == 2 else holes16)["VAE"], color=colour, ls="--", label=f"VAE, Z = {z_dim}")
def standardized_in_holes(model, prior_draws):
    """Which draws fall in holes when the AE's codes are centred and standardized per dimension."""
    codes = codes_of(model, x)                                 # (2000, Z)
    return in_holes(model, prior_draws * codes.std(0) + codes.mean(0))  # the decoder undoes the map


standardized = {2: standardized_in_holes(ae2, prior).mean(), 16: standardized_in_holes(ae, prior16).mean()}
for (z_dim, fraction), colour in zip(standardized.items(), ("tab:red", "tab:purple")):
    ax.axhline(fraction, color=colour, ls=":", label=f"autoencoder, Z = {z_dim}, codes centred and standardized")
ax.set_xscale("log"), ax.set_xticks(scales, [f"{c:g}" for c in scales], minor=False), ax.minorticks_off()
ax.set_xlabel("c (1: the trained autoencoder)"), ax.set_ylabel("prior draws in holes")
ax.set_ylim(0, 1.02), ax.legend(fontsize=8)
ax.set_title("The same autoencoder, its codes rescaled by c or standardized, against the VAE", fontsize=10)
plt.show()
for z_dim, fractions in ae_holes.items():
    vae_holes = (holes if z_dim == 2 else holes16)["VAE"]
    print(f"Z = {z_dim:>2}, autoencoder rescaled by c = {scales}: in holes {np.round(fractions, 2)} (VAE {vae_holes:.2f})")
    assert max(fractions) - min(fractions) > 0.3                 # the AE's figure moves with c ...
    assert min(fractions) > 2 * vae_holes                        # ... and stays above twice the VAE's
    assert 0.25 < min(fractions) < 0.5 and max(fractions) > 0.9
    print(f"Z = {z_dim:>2}, autoencoder with its codes centred and standardized: in holes {standardized[z_dim]:.2f}")
    assert standardized[z_dim] < vae_holes < 0.15                # below the VAE's once centred

# %% [markdown]
# The autoencoder's figure moves with $c$, between about a third and nearly all of the draws; at every
# scale tried it stays more than twice the VAE's. Centred and standardized, though, the autoencoder's codes
# leave *fewer* prior draws in holes than the VAE's, on these models at both latent sizes (the dotted lines,
# printed above). So the autoencoder's codes are not unusable for sampling: they sit at an arbitrary place
# and scale, which a fit after training (here one mean and one standard deviation per dimension) can
# correct. The VAE needs no such fit: its loss puts the codes where the prior samples, and pays for it in
# reconstruction (section 2).

# %% [markdown]
# **Why.** The AE loss only asks that the decoder undo the encoder. It is unchanged when the codes go
# through any invertible affine map $z \mapsto Az + b$: the encoder's last layer and the decoder's first,
# both linear, absorb the map and its inverse exactly ([eq:ae-loss](../derivations/autoencoder.md#eq:ae-loss)); the scalings, shifts and
# standardization above are such maps. So nothing fixes where the codes go, how far apart the classes sit,
# or what lies between them. The VAE's KL term, averaged over the
# data, is the mutual information between $x$ and $z$ plus $\mathrm{KL}(q(z) \Vert p(z))$
# ([eq:aggregate-kl](../derivations/autoencoder.md#eq:aggregate-kl)): it pulls the cloud of all codes toward
# $\mathcal N(0, I)$, so the places the prior samples from are mostly places the decoder was trained on
# (not all: some of the VAE's draws fell in holes above).
#
# Next: [03 · the reparameterization trick](03_reparameterization.ipynb), the piece that lets the VAE
# backpropagate through its noise. Deeper: [the autoencoder and the aggregate posterior](../derivations/autoencoder.md),
# [the ELBO](../derivations/elbo.md), [the KL](../derivations/kl.md).
