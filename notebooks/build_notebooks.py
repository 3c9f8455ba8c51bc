"""Write the tutorial notebooks from the cell lists below: ``python notebooks/build_notebooks.py``.

The notebooks are stored without outputs or execution counts, with sorted keys, nbformat 4.5 and
cell ids derived from the notebook's name, so a change to a cell changes a few lines of the .ipynb
and nothing else. ``tests/test_notebooks.py`` executes them and checks that the stored files are
what this script writes (edit here, then rebuild; do not edit the .ipynb by hand).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
D = "../derivations/"  # derivations, relative to the notebooks folder


def md(text, **meta):
    return ("markdown", text.strip("\n"), meta)


def code(text, **meta):
    return ("code", text.strip("\n"), meta)


SETUP = code("""
%matplotlib inline
import numpy as np
import matplotlib.pyplot as plt
import tinyvae

np.set_printoptions(precision=4, suppress=True)
""")


TRAIN_SETUP = code("""
%matplotlib inline
import tempfile
from pathlib import Path

import numpy as np
import matplotlib.pyplot as plt
import tinyvae
from tinyvae import data, plots

np.set_printoptions(precision=3, suppress=True)
runs = Path(tempfile.mkdtemp(prefix="tinyvae-"))   # run folders go to a scratch directory
mnist = data.load_dataset()                          # the bundled MNIST, uint8
print(mnist)
""")


# =========================================================================== 01 autoencoder vs VAE

NB01 = [
    md(f"""
# 01 · Autoencoder or VAE: why the KL term is there

**What you will see.** A plain autoencoder (AE) and a VAE, with the same networks, trained briefly on
10 000 MNIST digits. Both reconstruct well. But decode draws from $\\mathcal N(0, I)$ and only the VAE
produces digits: the AE's codes sit wherever the reconstruction loss happened to put them, with a
scale and holes that nothing controls, so prior draws land where its decoder has never been trained.
The VAE's [loss]({D}elbo.md#eq:vae-loss) adds the [KL term]({D}kl.md#eq:kl-closed-form), which pulls
every $q(z \\mid x)$ toward $\\mathcal N(0, I)$, and [noise]({D}reparameterization.md#eq:reparam), which
trains the decoder on neighbourhoods rather than points. Read
[the autoencoder loss]({D}autoencoder.md#eq:ae-loss) and [what the KL does to the aggregate
posterior]({D}autoencoder.md#eq:aggregate-kl).

Training here is deliberately short (3 epochs on a subset, well under a minute on a laptop CPU), so the
pictures are blurrier than a full run's.
"""),
    TRAIN_SETUP,
    md("""
## 1. Train both

Same architecture (784-256-16, ReLU, Bernoulli decoder), same data, same seed; `model="ae"` drops the
KL term and the noise. `tinyvae.train` returns the run folder; `tinyvae.load_model` rebuilds the model
from its checkpoint.
"""),
    code("""
common = dict(hidden=(256,), latent=16, epochs=3, limit_train=10_000, limit_test=1_000, lr=2e-3)
quiet = dict(progress=False, pictures=False, log=lambda line: None)
ae_run = tinyvae.train(tinyvae.TrainConfig(model="ae", out=str(runs / "ae"), **common), **quiet)
vae_run = tinyvae.train(tinyvae.TrainConfig(model="vae", out=str(runs / "vae"), **common), **quiet)
ae = tinyvae.load_model(ae_run / "checkpoint.npz")
vae = tinyvae.load_model(vae_run / "checkpoint.npz")
"""),
    md("""
## 2. Reconstructions: both fine. Samples from N(0, I): only the VAE

Rows 2 and 3 reconstruct the test digits of row 1; rows 4 and 5 decode the same ten draws
$z \\sim \\mathcal N(0, I)$ with each decoder.
"""),
    code("""
plots.plot_ae_vs_vae(ae, vae, mnist.test_x[:10], seed=0)
"""),
    code("""
for name, run in (("AE ", ae_run), ("VAE", vae_run)):
    last = plots.read_metrics(run)[-1]
    print(f"{name} test reconstruction {last['test_recon']:6.1f} nats/example,  KL {last['test_kl']:5.1f}")
"""),
    md("""
The AE reconstructs a little better: it spends nothing on the KL and has no noise to fight. That is
not the point of a VAE; generating is.
"""),
    md("""
## 3. The latent spaces, and their holes

Sixteen dimensions cannot be drawn, and a projection hides exactly the gaps we are after. So train the
same pair again with **two** latent dimensions, where the scatter of the codes *is* the latent space.
"""),
    code("""
z2 = dict(common, latent=2)
ae2 = tinyvae.load_model(tinyvae.train(tinyvae.TrainConfig(model="ae", out=str(runs / "ae2"), **z2), **quiet) / "checkpoint.npz")
vae2 = tinyvae.load_model(tinyvae.train(tinyvae.TrainConfig(model="vae", out=str(runs / "vae2"), **z2), **quiet) / "checkpoint.npz")
x, y = mnist.test_x[:2000], mnist.test_y[:2000]
plots.plot_latent(ae2, x, y)
"""),
    code("""
plots.plot_latent(vae2, x, y)
"""),
    md("""
Now drop 1000 draws from the prior $\\mathcal N(0, I)$, the points `sample` decodes, onto each picture,
over the codes of real digits (grey). A draw is *in a hole* (red) when it lies farther from every real
code than 99 % of real codes lie from their nearest neighbour: the decoder was never trained near it.
"""),
    code("""
rng = np.random.default_rng(0)
prior = rng.standard_normal((1000, 2))

def codes_of(model, images):                                 # the code, or the mean of q(z|x): (N, Z)
    out = model.encode(data.to_float(images))
    return out[0] if isinstance(out, tuple) else out

def nearest(points, bank):                                   # distance to the closest point of bank
    d2 = (points**2).sum(1)[:, None] - 2 * points @ bank.T + (bank**2).sum(1)[None, :]
    return np.sqrt(np.maximum(d2, 0).min(axis=1))

fig, axes = plt.subplots(1, 2, figsize=(11, 5))
for ax, (name, model) in zip(axes, (("autoencoder", ae2), ("VAE", vae2))):
    codes = codes_of(model, x)                                # (2000, 2)
    spacing = np.quantile(nearest(codes[:1000], codes[1000:]), 0.99)
    in_hole = nearest(prior, codes) > spacing
    ax.scatter(*codes.T, s=3, c="0.6", label="codes of test digits")
    ax.scatter(*prior[in_hole].T, s=6, c="red", label="prior draw in a hole")
    ax.scatter(*prior[~in_hole].T, s=6, c="tab:blue", label="prior draw near data")
    ax.set_title(f"{name}: {in_hole.mean():.0%} of prior draws fall in holes")
    ax.set_aspect("equal")
axes[0].legend(loc="lower left", fontsize=8)
plt.show()
for name, model in (("AE ", ae), ("VAE", vae)):
    print(f"Z = 16 {name}: code std per dimension {codes_of(model, x).std(0).round(1)}")
"""),
    md(f"""
**Why.** The AE loss only asks that the decoder undo the encoder, and it is unchanged by any
invertible map of the latent space ([eq:ae-loss]({D}autoencoder.md#eq:ae-loss)), so nothing fixes where the
codes go, how far apart the classes sit, or what lies between them. The VAE's KL term, averaged over the
data, is the mutual information between $x$ and $z$ plus $\\mathrm{{KL}}(q(z) \\Vert p(z))$
([eq:aggregate-kl]({D}autoencoder.md#eq:aggregate-kl)): it pulls the cloud of all codes toward
$\\mathcal N(0, I)$, so the places the prior samples from are places the decoder was trained on.

Next: [02 · the reparameterization trick](02_reparameterization.ipynb), the piece that lets the VAE
backpropagate through its noise.
"""),
]


# =========================================================================== 04 training

NB04 = [
    md(f"""
# 04 · Training a VAE on MNIST, reading its curves, evaluating it

**What you will do.** Train a VAE with `tinyvae.train` (a short setting: 5 epochs on 15 000 digits,
well under a minute on a laptop CPU), read its training curves, evaluate it properly (the negative
[ELBO]({D}elbo.md#eq:elbo) with ε *sampled*, and a small-K [importance-weighted]({D}importance-sampling.md#eq:iw-bound)
estimate of $-\\log p(x)$), and look at samples and reconstructions. Every number is in nats per
example ([the reduction convention]({D}notation.md#eq:loss-reduction)), and the loss is
[reconstruction + β · KL]({D}elbo.md#eq:vae-loss).
"""),
    TRAIN_SETUP,
    md("""
## 1. Train

A `TrainConfig` holds everything a run depends on (each field has a comment in `tinyvae/train.py`);
the run is a pure function of it. The full recipe is the default config (784-400-20, 10 epochs on
all 60 000 digits, `tinyvae train` in a shell); here we shorten it.
"""),
    code("""
config = tinyvae.TrainConfig(hidden=(256,), latent=20, epochs=5, limit_train=15_000, limit_test=2_000,
                           lr=2e-3, seed=0, out=str(runs / "mnist"))
run = tinyvae.train(config, progress=False, pictures=False)     # prints one line per epoch
print(sorted(p.name for p in run.iterdir()))
"""),
    md("""
The run folder holds `config.json`, `metrics.jsonl` (one line per epoch) and `checkpoint.npz`.

## 2. Read the curves
"""),
    code("""
for row in plots.read_metrics(run):
    print({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items() if k.split("_")[0] in ("epoch", "train", "test")})
plots.plot_curves(run)
"""),
    md("""
How to read them:

* **The train curve lies above the test curve at first.** The train number of an epoch averages the
  loss over the whole epoch, while the model was still improving; the test number is measured at the
  end of the epoch. Later, once the model fits the training set better than unseen data, the
  order flips: that gap is overfitting.
* **The reconstruction term falls and the KL term rises.** At the start the codes carry almost no
  information (KL near 0, reconstruction near that of an average image); training buys better
  reconstructions by spending nats of KL on information about each digit.
* **The loss is the negative ELBO** when β = 1: an upper bound on $-\\log p(x)$.

## 3. Evaluate

`tinyvae.evaluate_elbo` samples ε, as the ELBO's expectation requires: decoding z = μ instead would
give a smaller number that bounds nothing. `tinyvae.importance_weighted_nll` averages K importance
weights inside the log ([eq:iw-nll-estimate](../derivations/importance-sampling.md#eq:iw-nll-estimate)): K = 1
is the ELBO again (a different draw of ε, so a slightly different number) and the estimate decreases
toward $-\\log p(x)$ as K grows (papers use K = 5000; small K keeps this quick). All on the same 500
test digits.
"""),
    code("""
model = tinyvae.load_model(run / "checkpoint.npz")
x_test = mnist.test_x[:500]
elbo = tinyvae.evaluate_elbo(model, x_test, seed=0)
print(f"negative ELBO, eps sampled:       {elbo['loss']:.2f} = recon {elbo['recon']:.2f} + KL {elbo['kl']:.2f}")
for k in (1, 10, 100):
    nll = tinyvae.importance_weighted_nll(model, x_test, k=k, seed=0)
    print(f"importance-weighted, K = {k:>3}:     {nll.mean():.2f} nats per example")
active, variances = tinyvae.active_units(model, mnist.test_x[:2000])
print(f"active latent dimensions: {active} of {model.config.latent}")
"""),
    md("""
A dimension is *active* when its posterior mean varies across digits; the inactive ones have
collapsed onto the prior (KL ≈ 0) and carry no information.

## 4. Samples and reconstructions
"""),
    code("""
plots.plot_samples(model, n=64, seed=0)
"""),
    code("""
plots.plot_reconstructions(model, mnist.test_x[:16])
"""),
    md("""
Five short epochs give recognizable but blurry digits. Train longer (`tinyvae train`, the default 10
epochs on all 60 000 digits) for sharper ones; the curves above tell you when more epochs stop helping.
Next: [05 · the latent space](05_latent_space.ipynb).
"""),
]


# =========================================================================== 05 latent space

NB05 = [
    md(f"""
# 05 · The latent space: maps, paths, denoising, inpainting

**What you will see.** With Z = 2 the whole latent space fits on a page. We train a VAE with two latent
dimensions and look at where each digit lands (the posterior means), decode a grid of $z$ (the learned
manifold, as in Kingma & Welling's figure 4) and walk in a straight line between two digits. Then we
use a VAE as a prior over images: **denoising** (map a corrupted digit back onto the digits the model
knows) and **inpainting** (fill in a missing half by alternating reconstruct and restore-the-known-pixels).
Two numbers turn out to be too few to restore a particular digit, so for that part we also train a
Z = 16 model and compare.

Background: [the sample z = μ + σ ⊙ ε]({D}reparameterization.md#eq:reparam), [the loss]({D}elbo.md#eq:vae-loss),
and [why the KL term fills the space]({D}autoencoder.md#eq:aggregate-kl).
"""),
    TRAIN_SETUP,
    code("""
quiet = dict(progress=False, pictures=False, log=lambda line: None)
config = tinyvae.TrainConfig(hidden=(256,), latent=2, epochs=5, limit_train=30_000, limit_test=1_000,
                           lr=2e-3, seed=0, out=str(runs / "z2"))
vae = tinyvae.load_model(tinyvae.train(config, **quiet) / "checkpoint.npz")
print("test loss", round(plots.read_metrics(runs / "z2")[-1]["test_loss"], 1), "nats per example")
"""),
    md("""
## 1. Where the digits land

The posterior means of 2000 test digits, coloured by label. The KL term keeps the cloud near
$\\mathcal N(0, I)$, roughly within ±3 of the origin; digits that look alike sit side by side.
"""),
    code("""
plots.plot_latent(vae, mnist.test_x[:2000], mnist.test_y[:2000])
"""),
    md("""
## 2. The manifold

Decode a 15 × 15 grid. The grid is spaced evenly in *probability* under the prior ($z = \\Phi^{-1}(p)$,
$p$ from 0.05 to 0.95), so each cell holds the same prior mass. Almost every point decodes to something
digit-like and neighbouring cells morph into each other: no large holes. (The odd corner is a sign of
the short training.)
"""),
    code("""
plots.plot_manifold(vae, n=15)
"""),
    md("""
## 3. Interpolation

Decode points on the straight line between the posterior means of two test digits.
"""),
    code("""
labels = mnist.test_y
a, b = int(np.flatnonzero(labels == 1)[0]), int(np.flatnonzero(labels == 0)[0])
plots.plot_interpolation(vae, mnist.test_x[a], mnist.test_x[b], steps=10)
"""),
    md("""
## 4. Denoising

Corrupt eight test digits by flipping 5 % of their pixels, and reconstruct them (encode to the posterior
mean, decode). A model trained only on clean digits can only produce clean-looking ones, so
reconstruction projects the corrupted image back onto the digits it knows. Whether it lands on the
*right* digit depends on how much the code can hold: compare the Z = 2 model with a Z = 16 one.
"""),
    code("""
vae16 = tinyvae.load_model(tinyvae.train(tinyvae.TrainConfig(hidden=(256,), latent=16, epochs=3, limit_train=10_000,
                                                         limit_test=1_000, lr=2e-3, out=str(runs / "z16")), **quiet) / "checkpoint.npz")

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
"""),
    md("""
Gaussian noise on every pixel is harder: the encoder has never seen a grey, speckled background and
its guess of μ goes astray. The decoder still knows what digits look like, so instead of trusting the
encoder we can *search* for the code whose decoding best explains the noisy image under the Bernoulli
likelihood, plus the prior's pull toward 0: minimize $-\\log p(x \\mid z) - \\log p(z)$ over $z$, starting
from the encoder's μ. The gradient with respect to $z$ is exactly what the decoder's backward pass
returns (`decoder.backward` gives dL/dz), so a few lines of Adam do it.
"""),
    code("""
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
"""),
    md("""
The fitted codes decode to the right digits; the faint grey background is the model explaining the
noise's average brightness.

## 5. Inpainting

Hide the bottom half of each digit. Start with the hidden pixels at 0, then repeat: reconstruct the
whole image, and put the known top half back. Each pass moves the guess for the hidden half toward
an image the model finds likely *and* consistent with the visible half; the change per pass shows the
iteration settling.
"""),
    code("""
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
"""),
    md("""
The filled-in halves are plausible completions, smooth and typical, not necessarily the true ones:
the model can only propose what it has learned digits look like. Longer training and more latent
dimensions sharpen every picture in this notebook.
Next: [06 · write the backward passes yourself](06_gradient_check_exercises.ipynb).
"""),
]


# =========================================================================== 02 reparameterization

NB02 = [
    md(f"""
# 02 · The reparameterization trick, forward and backward

**What you will learn.** How a VAE draws a latent sample and still backpropagates through it:
the sample is written as a function, $z = \\mu + \\sigma \\odot \\varepsilon$ with $\\sigma = \\exp(\\tfrac12 \\log\\sigma^2)$
and noise $\\varepsilon \\sim \\mathcal N(0, I)$ passed in from outside. Then, step by step:
the two gradients $\\partial L/\\partial\\mu = dz$ and $\\partial L/\\partial\\log\\sigma^2 = \\tfrac12\\, dz\\, \\varepsilon\\, \\sigma$;
a gradient check against central differences; why $\\varepsilon$ gets no gradient and why the backward
must use the *same* $\\varepsilon$ as the forward; and, on a toy objective, how much smaller the
variance of this estimator is than that of the score-function (REINFORCE) estimator it replaces.

**Read alongside:** [the sample as a function]({D}reparameterization.md#eq:reparam),
[dμ]({D}reparameterization.md#eq:reparam-grad-mu), [dlog σ²]({D}reparameterization.md#eq:reparam-grad-logvar),
[the score-function estimator]({D}reparameterization.md#eq:score-function), and the
[notation]({D}notation.md) (`log_var` always means log σ², `std` = σ, `eps` is only the noise).
"""),
    SETUP,
    md(f"""
## 1. The sample as a function

`tinyvae.Reparameterize` computes [z = μ + exp(½ log σ²) ⊙ ε]({D}reparameterization.md#eq:reparam).
The caller owns the random generator and passes ε in. Shapes: N examples, Z latent dimensions.
"""),
    code("""
rng = np.random.default_rng(0)
N, Z = 4, 3
mu = rng.standard_normal((N, Z))
log_var = rng.normal(0.0, 0.7, (N, Z))
eps = rng.standard_normal((N, Z))          # the noise: drawn by us, not inside the layer

reparam = tinyvae.Reparameterize()
z = reparam.forward(mu, log_var, eps)      # (N, Z)
print("z =\\n", z)
print("same as mu + exp(0.5 * log_var) * eps:", np.allclose(z, mu + np.exp(0.5 * log_var) * eps))
"""),
    md("""
Is $z$ really distributed as $\\mathcal N(\\mu, \\sigma^2)$? Draw many ε for one (μ, log σ²) and
look at the sample mean and standard deviation. The noise is scaled by the **standard deviation**
$\\exp(\\tfrac12\\log\\sigma^2)$; scaling it by the variance $\\exp(\\log\\sigma^2)$ is a bug that has
shipped in public VAE code, and the numbers show the difference.
"""),
    code("""
m, lv = np.array([[1.5]]), np.array([[np.log(0.25)]])     # mean 1.5, variance 0.25, so sigma = 0.5
many = rng.standard_normal((200_000, 1))
samples = tinyvae.Reparameterize().forward(np.repeat(m, len(many), 0), np.repeat(lv, len(many), 0), many)
print(f"sample mean {samples.mean():.4f} (mu = 1.5), sample std {samples.std():.4f} (sigma = 0.5)")
wrong = 1.5 + np.exp(lv) * many                            # noise scaled by the variance
print(f"with the variance in place of sigma the std would be {wrong.std():.4f}")
"""),
    md(f"""
## 2. The backward pass, step by step

Each $z_{{nj}}$ depends only on $\\mu_{{nj}}$, $\\log\\sigma^2_{{nj}}$ and $\\varepsilon_{{nj}}$, so the chain rule is elementwise:

* $\\partial z/\\partial\\mu = 1$, so [dμ = dz]({D}reparameterization.md#eq:reparam-grad-mu);
* $\\partial z/\\partial \\log\\sigma^2 = \\varepsilon \\cdot \\tfrac{{d}}{{dv}} e^{{v/2}} = \\tfrac12\\,\\varepsilon\\,\\sigma$, so
  [dlog σ² = ½ · dz · ε · σ]({D}reparameterization.md#eq:reparam-grad-logvar).

The forward keeps ε and σ; the backward needs nothing else.
"""),
    code("""
dz = rng.standard_normal((N, Z))             # dL/dz, as if it came back from the decoder
dmu, dlog_var = reparam.backward(dz)
std = np.exp(0.5 * log_var)
print("dmu == dz:                     ", np.allclose(dmu, dz))
print("dlog_var == 0.5 * dz * eps * std:", np.allclose(dlog_var, 0.5 * dz * eps * std))
print("dlog_var =\\n", dlog_var)
"""),
    md(f"""
## 3. A gradient check

With ε held fixed, $z$ is a deterministic function of (μ, log σ²), so central differences in
float64 can check the backward pass. `tinyvae.check_reparameterize` uses the loss
$L = \\sum R \\odot z$ for a random $R$ (so that $dz = R$) and reports, per input, the largest
relative error and where it happens.
"""),
    code("""
report = tinyvae.check_reparameterize(tinyvae.Reparameterize(), mu.copy(), log_var.copy(), eps, rng)
print(report)
assert report.passed
"""),
    md("""
## 4. Why ε gets no gradient, and why it must be the same ε

ε is an *input*, drawn from a fixed distribution like the data; nothing upstream of it is learned,
so there is nothing to send a gradient to. What the backward computes is the exact gradient *at the ε
that was drawn*, and averaging that over ε gives the gradient of the expected loss: the estimator is
unbiased.

Take $f(z) = (z - 3)^2$ with $z \\sim \\mathcal N(\\mu, \\sigma^2)$. Then $\\mathbb E f = (\\mu - 3)^2 + \\sigma^2$
and the true gradient with respect to $\\log\\sigma^2$ is $\\sigma^2$. Compare the average of the
reparameterized gradient when the backward uses the forward's ε with the average when it uses a
fresh ε′ (a bug that has also shipped): the fresh one averages to zero, so the reconstruction term
would stop pulling on σ at all.
"""),
    code("""
mu0, lv0 = 1.0, np.log(0.8)                # sigma^2 = 0.8
M = 400_000
e = rng.standard_normal(M)
e_fresh = rng.standard_normal(M)
sigma = np.exp(0.5 * lv0)
z_s = mu0 + sigma * e
dz_s = 2 * (z_s - 3.0)                     # df/dz at each sample
same = 0.5 * dz_s * e * sigma              # [eq:reparam-grad-logvar] with the forward's eps
fresh = 0.5 * dz_s * e_fresh * sigma       # ... with a fresh eps'
print(f"true d E[f] / d log_var   = {sigma**2:.4f}")
print(f"same eps,  mean estimate  = {same.mean():.4f} +/- {same.std() / np.sqrt(M):.4f}")
print(f"fresh eps, mean estimate  = {fresh.mean():.4f} +/- {fresh.std() / np.sqrt(M):.4f}   <- biased to 0")
"""),
    md(f"""
## 5. Reparameterization against the score function

Without the trick one would use the [score-function estimator]({D}reparameterization.md#eq:score-function)
$\\nabla_\\phi \\mathbb E_q[f] = \\mathbb E_q[f(z)\\, \\nabla_\\phi \\log q_\\phi(z)]$, which needs only values of $f$.
Both are unbiased; the difference is the variance. On the toy problem
$q = \\mathcal N(\\mu, \\sigma^2)$, $f(z) = z^2$, the target is $\\partial_\\mu \\mathbb E[z^2] = 2\\mu$, and the
derivation computes the variances exactly: $4\\sigma^2$ (reparameterized),
$\\mu^4/\\sigma^2 + 14\\mu^2 + 15\\sigma^2$ (score function) and $8\\mu^2 + 10\\sigma^2$ (score function with
the best constant baseline). The cell estimates all three from samples and prints them with the exact values.
"""),
    code("""
def estimators(mu, sigma, M, rng):
    e = rng.standard_normal(M)
    z = mu + sigma * e
    f = z**2
    score = (z - mu) / sigma**2                       # d log q(z) / d mu
    return {"reparameterized": 2 * z,                 # f'(z) * dz/dmu
            "score function": f * score,
            "score fn + baseline": (f - (mu**2 + sigma**2)) * score}

def exact_var(mu, s):
    return {"reparameterized": 4 * s**2, "score function": mu**4 / s**2 + 14 * mu**2 + 15 * s**2,
            "score fn + baseline": 8 * mu**2 + 10 * s**2}

for sigma in (1.0, 0.3, 0.1):
    print(f"mu = 1, sigma = {sigma}: target gradient 2.0")
    ex = exact_var(1.0, sigma)
    for name, g in estimators(1.0, sigma, 1_000_000, rng).items():
        print(f"   {name:<20} mean {g.mean():7.4f}   variance {g.var():9.3f}   (exact {ex[name]:9.3f})")
"""),
    md("""
As the encoder grows confident ($\\sigma \\to 0$) the reparameterized variance goes to zero, while
the plain score-function variance blows up like $\\mu^4/\\sigma^2$. That is why the VAE can train with
a single ε per example.

**Takeaways.** (1) `z = mu + exp(0.5 * log_var) * eps`, with ε passed in. (2) `dmu = dz`,
`dlog_var = 0.5 * dz * eps * std`, using the forward's own ε and σ. (3) ε is an input, not a parameter.
(4) Low variance is the reason for the trick. Next: [03 · the ELBO and the losses](03_elbo_and_losses.ipynb);
to write this backward yourself: [06 · exercises](06_gradient_check_exercises.ipynb).
"""),
]


# =========================================================================== 03 ELBO and losses

NB03 = [
    md(f"""
# 03 · The ELBO and its losses, with numbers

**What you will learn.** The VAE minimizes the negative [evidence lower bound]({D}elbo.md#eq:elbo),
[loss = reconstruction + β · KL]({D}elbo.md#eq:vae-loss). This notebook puts numbers on every piece:

1. the Bernoulli reconstruction term computed from logits, [in the stable form]({D}bernoulli.md#eq:bce-stable),
   finite at logits of ±1e4 where the naive formula gives `inf` and `nan`;
2. the Gaussian alternative: [its negative log-likelihood]({D}gaussian.md#eq:gaussian-nll) is
   [½ · SSE / σ_x² plus a constant]({D}gaussian.md#eq:mse-relation), so "MSE" hides a variance and a constant;
3. the [reduction convention]({D}notation.md#eq:loss-reduction): sum over pixels D and latent
   dimensions Z, mean over the batch N, in nats per example;
4. the [KL in closed form]({D}kl.md#eq:kl-closed-form) against a Monte Carlo estimate;
5. the terms of an (untrained) VAE on real MNIST digits.
"""),
    SETUP,
    md(f"""
## 1. Binary cross-entropy from logits: stable against naive

The decoder outputs logits $l$; the per-pixel negative log-likelihood is
$-[x \\log\\sigma(l) + (1-x)\\log(1-\\sigma(l))]$ ([eq:bce-logits]({D}bernoulli.md#eq:bce-logits)).
Computed literally, $\\sigma(l)$ rounds to exactly 0 or 1 for large $|l|$ and the logarithm returns
$-\\infty$. The [stable form]({D}bernoulli.md#eq:bce-stable) $\\max(l, 0) - x\\,l + \\log(1 + e^{{-|l|}})$
only ever exponentiates a non-positive number. One pixel per row below (D = 1), so
`tinyvae.bernoulli_log_prob` gives the per-pixel value.
"""),
    code("""
logits = np.array([-1e4, -30.0, -1.0, 0.0, 1.0, 30.0, 1e4])
x = np.array([1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0])          # targets

with np.errstate(all="ignore"):                             # the naive form overflows on purpose
    p = 1 / (1 + np.exp(-logits))
    naive = -(x * np.log(p) + (1 - x) * np.log(1 - p))
stable = -tinyvae.bernoulli_log_prob(logits[:, None], x[:, None])
for l, t, a, b in zip(logits, x, naive, stable):
    print(f"logit {l:>9g}  x = {t:.0f}   naive {a:>10.4g}   stable {b:>10.4g}")
"""),
    md("""
The stable values are exact: a logit of 10⁴ for a pixel that is 0 costs 10⁴ nats, and a logit of
−30 for a pixel that is 1 costs 30 nats. `tinyvae.bernoulli_nll` also returns the gradient, $(\\sigma(l) - x)/N$,
finite everywhere:
"""),
    code("""
loss, dlogits = tinyvae.bernoulli_nll(logits[None, :], x[None, :])
print("loss (nats per example):", float(loss))
print("dlogits:", dlogits.ravel())
"""),
    md(f"""
## 2. MSE against the Gaussian negative log-likelihood

For real-valued pixels the decoder outputs means $m$ and assumes $x \\sim \\mathcal N(m, \\sigma_x^2 I)$.
Its [negative log-likelihood]({D}gaussian.md#eq:gaussian-nll) per example is
$\\frac{{1}}{{2\\sigma_x^2}}\\mathrm{{SSE}} + \\frac D2 \\log(2\\pi\\sigma_x^2)$. With $\\sigma_x^2 = 1$ that is
½ · SSE plus a constant of 720.4 nats for D = 784, which has no gradient but makes the number
incomparable with the Bernoulli one. The variance is a weight: halving it doubles the pull of the
reconstruction against the KL, exactly like dividing β by 2.
"""),
    code("""
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
"""),
    md(f"""
## 3. The reduction convention, shown with numbers

[Every loss in tinyvae]({D}notation.md#eq:loss-reduction) sums over pixels (D) and latent dimensions (Z)
inside an example, and averages over the N examples of the batch. The unit is **nats per example**,
so the number does not change with the batch size but does grow with the image size. Here is a
batch of N = 3 "images" of D = 4 pixels, reduced by hand:
"""),
    code("""
logits = rng.normal(0, 2, (3, 4))
x = (rng.uniform(0, 1, (3, 4)) > 0.5).astype(float)
per_pixel = -(x * logits - np.logaddexp(0, logits))        # (N, D): one term per pixel
per_example = per_pixel.sum(axis=1)                         # (N,): sum over D
batch_loss = per_example.mean()                             # mean over N
print("per-pixel terms (N, D):\\n", per_pixel)
print("per example (sum over D):", per_example)
print("batch loss (mean over N):", batch_loss, "  tinyvae:", float(tinyvae.bernoulli_nll(logits, x)[0]))

doubled, _ = tinyvae.bernoulli_nll(np.vstack([logits, logits]), np.vstack([x, x]))
print("the same batch twice (N = 6):", float(doubled), "  <- unchanged: a mean over N")
wider, _ = tinyvae.bernoulli_nll(np.hstack([logits, logits]), np.hstack([x, x]))
print("each image twice as wide (D = 8):", float(wider), "  <- doubled: a sum over D")
_, dl = tinyvae.bernoulli_nll(logits, x)
print("gradient carries 1/N:", np.allclose(dl, (tinyvae.sigmoid(logits) - x) / 3))
"""),
    md(f"""
## 4. The KL term: closed form against Monte Carlo

For $q = \\mathcal N(\\mu, \\operatorname{{diag}}\\sigma^2)$ and the prior $\\mathcal N(0, I)$ the KL has a
[closed form]({D}kl.md#eq:kl-closed-form), $\\tfrac12\\sum_j(\\sigma_j^2 + \\mu_j^2 - 1 - \\log\\sigma_j^2)$.
It is also $\\mathbb E_q[\\log q(z) - \\log p(z)]$, which we can estimate by sampling $z$ with the
reparameterization and evaluating both log-densities with `tinyvae.log_normal_density`.
"""),
    code("""
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
"""),
    md("""
The closed form is exact and has an exact gradient, so the VAE uses it; the reconstruction term has
no closed form and is estimated with one sample of ε per example.

## 5. The terms of a VAE on MNIST

One forward pass of an untrained VAE on 64 test digits (`tinyvae.data` reads the bundled MNIST).
`model.stats` holds the two terms; the loss is their sum (β = 1), in nats per example.
An untrained decoder outputs random logits, so each of the 784 pixels costs about log 2 ≈ 0.69 nats
or more; the encoder's random μ and log σ² give a small KL.
"""),
    code("""
from tinyvae import data

mnist = data.load_dataset()
x = data.to_float(mnist.test_x[:64])                 # (64, 784) float32 in [0, 1]
vae = tinyvae.VAE(hidden=(256,), latent=8, seed=0)
loss = vae.forward(x)                                 # eps drawn from the model's own generator
s = vae.stats
print(f"reconstruction {float(s['recon']):8.2f} nats/example")
print(f"KL             {float(s['kl']):8.2f} nats/example")
print(f"loss           {float(s['loss']):8.2f} = reconstruction + KL  (784 * log 2 = {784 * np.log(2):.2f})")
"""),
    md("""
Training pushes the reconstruction down to around a hundred nats while the KL rises from
near zero to a few tens of nats: the code starts carrying information about the digit.
Next: [04 · training on MNIST](04_training_mnist.ipynb).
"""),
]


# =========================================================================== 06 exercises


def _stub(signature, shapes, todo="your code here"):
    return code(f"""
{signature}
    {shapes}
    raise NotImplementedError  # {todo}

exercises.check({signature.split("(")[0].removeprefix("def ")!r}, {signature.split("(")[0].removeprefix("def ")})
""")


NB06 = [
    md(f"""
# 06 · Write the backward passes yourself

**What you will do.** Implement the VAE's backward passes one piece at a time, from a dense layer
to the whole model, and have each one checked. `tinyvae.exercises.check(name, your_function)` runs
your function on seeded float64 inputs of awkward shapes (N = 4, D = 7, H = 5, Z = 3: nothing is
square, so a missing transpose shows, and N > 1, so a sum-for-mean mix-up shows), compares its
gradients with central differences, and when something is off it says which gradient is wrong, by how
much, and the likely cause: a missing transpose, a missing ½, a sum where the batch mean is meant,
the wrong sign, a fresh ε, σ² in place of σ, a forgotten bias gradient, a wrong shape.

Shapes use one alphabet: N batch, D input, H hidden, Z latent. Losses sum over D and Z and average
over N ([the reduction convention]({D}notation.md#eq:loss-reduction)).

| exercise | function | read first |
| --- | --- | --- |
| (a) | `dense_backward(dy, x, W)` | [dense layer gradients]({D}dense.md#eq:dense-grad-w) |
| (b1) | `relu_backward(dy, x)` (worked example) | [ReLU]({D}activations.md#eq:relu-grad) |
| (b2) | `tanh_backward(dy, y)` | [tanh]({D}activations.md#eq:tanh-grad) |
| (c) | `bce_with_logits(logits, x)` | [stable BCE]({D}bernoulli.md#eq:bce-stable), [its gradient]({D}bernoulli.md#eq:bce-grad) |
| (d) | `gaussian_kl(mu, log_var)` | [KL]({D}kl.md#eq:kl-closed-form), [dμ]({D}kl.md#eq:kl-grad-mu), [dlog σ²]({D}kl.md#eq:kl-grad-logvar) |
| (e1) | `reparameterize(mu, log_var, eps)` | [z = μ + σ ⊙ ε]({D}reparameterization.md#eq:reparam) |
| (e2) | `reparameterize_backward(dz, eps, std)` | [dμ, dlog σ²]({D}reparameterization.md#eq:reparam-grad-logvar) |
| (f) | `vae_backward(params, cache)` | [the encoder's two paths]({D}reparameterization.md#eq:encoder-output-grad), [the loss]({D}elbo.md#eq:vae-loss) |

Each exercise below has a stub that raises `NotImplementedError` (the check then says "not implemented
yet") and a check. Replace the `raise` with your code and run the cell again. You can also keep your
answers in a file and run `python -m tinyvae.exercises my_answers.py`.
"""),
    code("""
import numpy as np
from tinyvae import exercises

rng = np.random.default_rng(0)
"""),
    md(f"""
## A worked example: ReLU backward

$y = \\max(x, 0)$, so the local slope is 1 where $x > 0$ and 0 elsewhere ([eq:relu-grad]({D}activations.md#eq:relu-grad)),
and by the chain rule $dx = dy \\odot [x > 0]$. A classic slip is to return the slope alone and forget
the upstream gradient `dy`. Here is that wrong answer and what the checker says about it:
"""),
    code("""
def relu_backward(dy, x):
    return (x > 0) * 1.0          # wrong: the slope alone, dy forgotten

exercises.check("relu_backward", relu_backward)
"""),
    md("""
The feedback names the gradient (`dx`), shows the gradient check (relative error, the index of the
worst entry, analytic against numeric), and names the cause. The fix:
"""),
    code("""
def relu_backward(dy, x):
    return dy * (x > 0)           # (N, H): dy where x > 0, zero elsewhere

exercises.check("relu_backward", relu_backward)
"""),
    md(f"""
## (a) Dense layer

Forward: $y = xW + b$ with x (N, D), W (D, H), b (H,). Given dy (N, H), return `(dx, dW, db)` of
shapes (N, D), (D, H), (H,). Read [dense.md]({D}dense.md#eq:dense-grad-w): write each shape next to each
product and the transposes fall out. Do not divide by N: dy already carries the loss's 1/N.
"""),
    _stub("def dense_backward(dy, x, W):", "# return dx (N, D), dW (D, H), db (H,)"),
    md(f"""
## (b2) tanh

The forward keeps its *output* $y = \\tanh x$; the slope is a function of it ([eq:tanh-grad]({D}activations.md#eq:tanh-grad)).
Given dy and y, both (N, H), return dx (N, H).
"""),
    _stub("def tanh_backward(dy, y):", "# return dx (N, H)"),
    md(f"""
## (c) Binary cross-entropy from logits

Return `(loss, dlogits)`: the loss summed over the D pixels and averaged over the N examples (one
number), and its gradient (N, D). It must stay finite and exact for logits of ±1e4, so use the
[stable form]({D}bernoulli.md#eq:bce-stable); the [gradient]({D}bernoulli.md#eq:bce-grad) is short.
"""),
    _stub("def bce_with_logits(logits, x):", "# return loss (a number), dlogits (N, D)"),
    md(f"""
## (d) The Gaussian KL

KL(N(μ, diag σ²) ‖ N(0, I)) with `mu` and `log_var` (= log σ²) of shape (N, Z). Return
`(kl, dmu, dlog_var)`: the KL summed over Z and averaged over N, and its gradients, (N, Z) each.
Read [the closed form]({D}kl.md#eq:kl-closed-form) and [the gradient w.r.t. log σ²]({D}kl.md#eq:kl-grad-logvar).
"""),
    _stub("def gaussian_kl(mu, log_var):", "# return kl (a number), dmu (N, Z), dlog_var (N, Z)"),
    md(f"""
## (e1) and (e2) The reparameterization, forward and backward

Forward: $z = \\mu + \\sigma \\odot \\varepsilon$ with $\\sigma = \\exp(\\tfrac12\\log\\sigma^2)$ and ε given
([eq:reparam]({D}reparameterization.md#eq:reparam)). Backward: given dz, the forward's ε and σ, return
`(dmu, dlog_var)` ([eq:reparam-grad-logvar]({D}reparameterization.md#eq:reparam-grad-logvar)). All arrays (N, Z).
"""),
    _stub("def reparameterize(mu, log_var, eps):", "# return z (N, Z)"),
    _stub("def reparameterize_backward(dz, eps, std):", "# return dmu (N, Z), dlog_var (N, Z)"),
    md(f"""
## (f) The whole VAE

`exercises.vae_forward(params, x, eps)` computes a one-hidden-layer VAE (tanh hidden layers, Bernoulli
decoder) and returns the loss and a `cache` of everything the backward needs. Write `vae_backward(params, cache)`
returning a dict of gradients with the keys of `params`. Chain your answers above, from the loss back to
the input; remember that μ and log σ² reach the loss twice, through z and through the KL
([eq:encoder-output-grad]({D}reparameterization.md#eq:encoder-output-grad)). Here are the pieces and their shapes:
"""),
    code("""
params = exercises.init_vae_params(rng)              # D = 7, H = 5, Z = 3
x = rng.uniform(0, 1, (4, 7))                        # N = 4
eps = rng.standard_normal((4, 3))
loss, cache = exercises.vae_forward(params, x, eps)
print(f"loss = {loss:.4f}")
print("params:", {k: v.shape for k, v in params.items()})
print("cache: ", {k: v.shape for k, v in cache.items()})
"""),
    _stub("def vae_backward(params, cache):", "# return {name: gradient of the same shape as params[name]}"),
    md("""
## Everything at once

`check_all` takes a module or a dict of functions; `globals()` is the dict of everything defined in
this notebook, so this checks all your answers together.
"""),
    code("""
exercises.check_all(globals())
"""),
    md("""
## Solutions

Stuck after reading the derivation and the checker's hint? The reference solutions are plain NumPy, one
short function per exercise, in [`tinyvae/solutions.py`](../tinyvae/solutions.py). Try first: the
hint usually names the line to change.
""", jupyter={"source_hidden": True}),
]


NOTEBOOKS = {
    "01_autoencoder_vs_vae.ipynb": NB01,
    "02_reparameterization.ipynb": NB02,
    "03_elbo_and_losses.ipynb": NB03,
    "04_training_mnist.ipynb": NB04,
    "05_latent_space.ipynb": NB05,
    "06_gradient_check_exercises.ipynb": NB06,
}


def build(name, cells):
    """The notebook ``name`` as an nbformat object: no outputs, stable ids, python3 kernel."""
    nb = new_notebook()
    nb.nbformat, nb.nbformat_minor = 4, 5
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    stem = name.split("_")[0]
    for i, (kind, text, meta) in enumerate(cells):
        cell = new_code_cell(text) if kind == "code" else new_markdown_cell(text)
        cell.id = f"nb{stem}-{i:02d}"
        cell.metadata = dict(meta)
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def render(name, cells):
    return nbformat.writes(build(name, cells)) + "\n"


def main(argv=None):
    """Write every notebook (or check them with ``--check``: exit 1 if any file is stale)."""
    argv = sys.argv[1:] if argv is None else argv
    stale = []
    for name, cells in NOTEBOOKS.items():
        path = HERE / name
        text = render(name, cells)
        if "--check" in argv:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(HERE.parent)}")
    if stale:
        print("out of date (run python notebooks/build_notebooks.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
