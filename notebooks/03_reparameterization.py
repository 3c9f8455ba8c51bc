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
# # 03 · The reparameterization trick, forward and backward
#
# **What you will learn.** How a VAE draws a latent sample and still backpropagates through it:
# the sample is written as a function, $z = \mu + \sigma \odot \varepsilon$ with $\sigma = \exp(\tfrac12 \log\sigma^2)$
# and noise $\varepsilon \sim \mathcal N(0, I)$ passed in from outside. Then, step by step:
# the two gradients $\partial L/\partial\mu = dz$ and $\partial L/\partial\log\sigma^2 = \tfrac12 dz \varepsilon \sigma$;
# a gradient check against central differences; why $\varepsilon$ gets no gradient and why the backward
# must use the *same* $\varepsilon$ as the forward; and, on a toy objective, how much smaller the
# variance of this estimator is than that of the score-function (REINFORCE) estimator it replaces.
#
# **Read alongside:** [the sample as a function](../derivations/reparameterization.md#eq:reparam),
# [dμ](../derivations/reparameterization.md#eq:reparam-grad-mu), [dlog σ²](../derivations/reparameterization.md#eq:reparam-grad-logvar),
# [the score-function estimator](../derivations/reparameterization.md#eq:score-function), and the
# [notation](../derivations/notation.md) (`log_var` always means log σ², `std` = σ, `eps` is only the noise).

# %%
# %matplotlib inline
import numpy as np
import matplotlib.pyplot as plt
import tinyvae

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## 1. The sample as a function
#
# `tinyvae.Reparameterize` computes [z = μ + exp(½ log σ²) ⊙ ε](../derivations/reparameterization.md#eq:reparam).
# The caller owns the random generator and passes ε in. Shapes: N examples, Z latent dimensions.

# %%
rng = np.random.default_rng(0)
N, Z = 4, 3
mu = rng.standard_normal((N, Z))
log_var = rng.normal(0.0, 0.7, (N, Z))
eps = rng.standard_normal((N, Z))          # the noise: drawn by us, not inside the layer

reparam = tinyvae.Reparameterize()
z = reparam.forward(mu, log_var, eps)      # (N, Z)
print("z =\n", z)
print("same as mu + exp(0.5 * log_var) * eps:", np.allclose(z, mu + np.exp(0.5 * log_var) * eps))

# %% [markdown]
# Is $z$ really distributed as $\mathcal N(\mu, \sigma^2)$? Draw many ε for one (μ, log σ²) and
# look at the sample mean and standard deviation. The noise is scaled by the **standard deviation**
# $\exp(\tfrac12\log\sigma^2)$. Scaling it by the variance $\exp(\log\sigma^2)$ instead is an easy
# mistake to make when a name like `var` or `sigma` could mean either; the numbers show the difference.

# %%
m, lv = np.array([[1.5]]), np.array([[np.log(0.25)]])     # mean 1.5, variance 0.25, so sigma = 0.5
many = rng.standard_normal((200_000, 1))
samples = tinyvae.Reparameterize().forward(np.repeat(m, len(many), 0), np.repeat(lv, len(many), 0), many)
print(f"sample mean {samples.mean():.4f} (mu = 1.5), sample std {samples.std():.4f} (sigma = 0.5)")
wrong = 1.5 + np.exp(lv) * many                            # noise scaled by the variance
print(f"with the variance in place of sigma the std would be {wrong.std():.4f}")
assert abs(samples.mean() - 1.5) < 0.01 and abs(samples.std() - 0.5) < 0.01 and abs(wrong.std() - 0.25) < 0.01

# %% [markdown]
# ## 2. The backward pass, step by step
#
# Each $z_{nj}$ depends only on $\mu_{nj}$, $\log\sigma^2_{nj}$ and $\varepsilon_{nj}$, so the chain rule is elementwise:
#
# * $\partial z/\partial\mu = 1$, so [dμ = dz](../derivations/reparameterization.md#eq:reparam-grad-mu);
# * $\partial z/\partial \log\sigma^2 = \varepsilon \cdot \tfrac{d}{dv} e^{v/2} = \tfrac12 \varepsilon \sigma$, so
#   [dlog σ² = ½ · dz · ε · σ](../derivations/reparameterization.md#eq:reparam-grad-logvar).
#
# The forward keeps ε and σ; the backward needs nothing else.

# %%
dz = rng.standard_normal((N, Z))             # dL/dz, as if it came back from the decoder
dmu, dlog_var = reparam.backward(dz)
std = np.exp(0.5 * log_var)
print("dmu == dz:                     ", np.allclose(dmu, dz))
print("dlog_var == 0.5 * dz * eps * std:", np.allclose(dlog_var, 0.5 * dz * eps * std))
print("dlog_var =\n", dlog_var)

# %% [markdown]
# ## 3. A gradient check
#
# With ε held fixed, $z$ is a deterministic function of (μ, log σ²), so central differences in
# float64 can check the backward pass. `tinyvae.check_reparameterize` uses the loss
# $L = \sum R \odot z$ for a random $R$ (so that $dz = R$) and reports, per input, the largest
# relative error and where it happens.

# %%
report = tinyvae.check_reparameterize(tinyvae.Reparameterize(), mu.copy(), log_var.copy(), eps, rng)
print(report)
assert report.passed

# %% [markdown]
# ## 4. Why ε gets no gradient, and why it must be the same ε
#
# ε is an *input*, drawn from a fixed distribution like the data; nothing upstream of it is learned,
# so there is nothing to send a gradient to. What the backward computes is the exact gradient *at the ε
# that was drawn*, and averaging that over ε gives the gradient of the expected loss: the estimator is
# unbiased.
#
# Take $f(z) = (z - 3)^2$ with $z \sim \mathcal N(\mu, \sigma^2)$. Then $\mathbb E f = (\mu - 3)^2 + \sigma^2$
# and the true gradient with respect to $\log\sigma^2$ is $\sigma^2$. Compare the average of the
# reparameterized gradient when the backward uses the forward's ε with the average when it uses a
# fresh ε′ (a second easy mistake: drawing the noise again in the backward): the fresh one averages to
# zero, so the reconstruction term would exert no pull on σ on average (each draw still pushes σ at
# random, one way or the other).

# %%
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
assert abs(same.mean() - sigma**2) < 4 * same.std() / np.sqrt(M)    # unbiased: within 4 standard errors
assert abs(fresh.mean()) < 4 * fresh.std() / np.sqrt(M)              # averages to zero, not to sigma^2


# %% [markdown]
# ## 5. Reparameterization against the score function
#
# Without the trick one would use the [score-function estimator](../derivations/reparameterization.md#eq:score-function)
# $\nabla_\phi \mathbb E_q[f] = \mathbb E_q[f(z) \nabla_\phi \log q_\phi(z)]$, which needs only values of $f$.
# Both are unbiased; the difference is the variance. On the toy problem
# $q = \mathcal N(\mu, \sigma^2)$, $f(z) = z^2$, the target is $\partial_\mu \mathbb E[z^2] = 2\mu$, and the
# derivation computes the variances exactly: $4\sigma^2$ (reparameterized),
# $\mu^4/\sigma^2 + 14\mu^2 + 15\sigma^2$ (score function), $8\mu^2 + 10\sigma^2$ (score function minus the
# usual baseline $b = \mathbb E f = \mu^2 + \sigma^2$) and $8\mu^2 + 6\sigma^2$ (minus the best constant
# baseline $b^\ast = \mathbb E[f s^2]/\mathbb E[s^2] = \mu^2 + 3\sigma^2$, where $s$ is the score). The cell
# estimates all four from samples and prints them with the exact values.

# %%
def estimators(mu, sigma, M, rng):
    e = rng.standard_normal(M)
    z = mu + sigma * e
    f = z**2
    score = (z - mu) / sigma**2                       # d log q(z) / d mu
    return {"reparameterized": 2 * z,                 # f'(z) * dz/dmu
            "score function": f * score,
            "minus usual baseline": (f - (mu**2 + sigma**2)) * score,
            "minus best baseline": (f - (mu**2 + 3 * sigma**2)) * score}

def exact_var(mu, s):
    return {"reparameterized": 4 * s**2, "score function": mu**4 / s**2 + 14 * mu**2 + 15 * s**2,
            "minus usual baseline": 8 * mu**2 + 10 * s**2, "minus best baseline": 8 * mu**2 + 6 * s**2}

measured = {}
for sigma in (1.0, 0.3, 0.1):
    print(f"mu = 1, sigma = {sigma}: target gradient 2.0")
    ex = exact_var(1.0, sigma)
    for name, g in estimators(1.0, sigma, 1_000_000, rng).items():
        measured[name, sigma] = g.var()
        print(f"   {name:<21} mean {g.mean():7.4f}   variance {g.var():9.3f}   (exact {ex[name]:9.3f})")
        assert abs(g.var() / ex[name] - 1) < 0.1 and abs(g.mean() - 2.0) < 0.1, (name, sigma)

# %% [markdown]
# The same variances over a range of σ: the lines are the exact formulas above, the dots the sampled
# variances of the cell before.

# %%
sigmas = np.geomspace(0.03, 3, 100)
fig, ax = plt.subplots(figsize=(7, 4))
for (name, exact), colour in zip(exact_var(1.0, sigmas).items(), ("tab:blue", "tab:red", "tab:orange", "tab:green")):
    ax.plot(sigmas, exact, color=colour, label=name)
    ax.plot([s for n, s in measured if n == name], [v for (n, s), v in measured.items() if n == name],
            "o", color=colour)
ax.set_xscale("log"), ax.set_yscale("log")
ax.set_xlabel("σ, the standard deviation of q (μ = 1)"), ax.set_ylabel("variance of the gradient estimate")
ax.set_title("Estimators of d E[z²] / dμ: as σ shrinks, only the reparameterized variance goes to zero", fontsize=10)
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# As the encoder grows confident ($\sigma \to 0$) the reparameterized variance goes to zero, while
# the plain score-function variance blows up like $\mu^4/\sigma^2$. A baseline helps, the best constant one
# most, but both baseline versions still tend to $8\mu^2$, not to zero. On this toy, then, one ε per
# example gives a far less noisy gradient than the score function; on real models the reparameterized
# estimator typically, though not always, has the lower variance, and that is part of why a VAE trains
# well with a single ε per example.
#
# **Takeaways.** (1) `z = mu + exp(0.5 * log_var) * eps`, with ε passed in. (2) `dmu = dz`,
# `dlog_var = 0.5 * dz * eps * std`, using the forward's own ε and σ. (3) ε is an input, not a parameter.
# (4) The trick lets backpropagation run through the sample at all, and typically (as on this toy)
# gives a lower-variance gradient than the score function. Next: [04 · the ELBO and the losses](04_elbo_and_losses.ipynb);
# to write this backward yourself: [07 · exercises](07_gradient_check_exercises.ipynb). Deeper: the whole
# [reparameterization page](../derivations/reparameterization.md), with the variances derived, and
# [the gradient check](../derivations/gradcheck.md).
