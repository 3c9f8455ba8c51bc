"""Pictures of a model's latent space: a scatter of posterior means, the decoded manifold when Z = 2
(Kingma & Welling, *Auto-Encoding Variational Bayes*, ICLR 2014, fig. 4), an interpolation between
two digits, and latent traversals of the most active dimensions.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from .. import backend
from ..backend import to_numpy
from .evaluate import model_input, posterior_means
from .figures import _as_batch, _figure, _finish, _grid, _show

def _project(means):
    """2-D coordinates of (N, Z) points, axis labels and a sentence saying how they were made."""
    z = means.shape[1]
    if z == 1:
        return np.column_stack([means[:, 0], np.zeros(len(means))]), ("z₁", ""), "the single latent dimension (Z = 1)"
    if z == 2:
        return means, ("z₁", "z₂"), "the two latent dimensions (Z = 2)"
    centered = means - means.mean(axis=0)
    _, s, vt = np.linalg.svd(centered, full_matrices=False)  # principal axes in the rows of vt
    share = s[:2] ** 2 / max(float((s ** 2).sum()), 1e-300)
    return centered @ vt[:2].T, (f"PC 1 ({share[0]:.0%} of variance)", f"PC 2 ({share[1]:.0%})"), \
        f"a PCA projection of the Z = {z} dimensions to 2-D"


def plot_latent(model, x, labels, path=None):
    """Scatter of the posterior means E_q[z|x] (the codes, for an autoencoder), coloured by digit.

    Z = 2 plots the two dimensions; Z > 2 a PCA projection (numpy SVD); the title says which.
    """
    labels = np.asarray(to_numpy(labels)).ravel()
    means = posterior_means(model, _as_batch(x))
    if len(labels) != len(means):
        raise ValueError(f"plot_latent: {len(means)} images but {len(labels)} labels")
    points, (xlabel, ylabel), how = _project(means)
    fig = _figure(figsize=(6.4, 5.6), layout="constrained")
    ax = fig.add_subplot()
    colors = _digit_colors()
    for digit in np.unique(labels):
        mask = labels == digit
        ax.scatter(points[mask, 0], points[mask, 1], s=6, alpha=0.7, color=colors[int(digit) % 10],
                   label=str(digit), linewidths=0)
    ax.legend(title="digit", markerscale=3, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    what = ("Posterior means E_q[z1|x]" if model.config.stochastic_layers == 2 else
            "Means μ of q_0(z|x), before the flow," if getattr(model.config, "flow", "none") != "none" else
            "Posterior means E_q[z|x]" if model.config.model == "vae" else "Autoencoder codes z")
    ax.set_title(f"{what} of {len(means)} digits:\n{how}", fontsize=10)
    return _finish(fig, path)


def _digit_colors():
    from matplotlib import colormaps  # noqa: PLC0415

    return [colormaps["tab10"](i) for i in range(10)]


def inverse_normal_cdf_grid(n, low=0.05, high=0.95):
    """Φ⁻¹ of ``n`` evenly spaced probabilities in [low, high]: equal prior mass between grid lines."""
    return np.array([NormalDist().inv_cdf(p) for p in np.linspace(low, high, n)])


def plot_manifold(model, n=20, path=None):
    """Decode an n × n grid of z over Φ⁻¹ of an even grid in (0.05, 0.95); needs Z = 2."""
    z_dim = model.config.latent
    if z_dim != 2:
        raise ValueError(f"plot_manifold needs a 2-D latent space (Z = 2), this model has Z = {z_dim}; "
                         f"train with --latent 2, or use plot_latent for a projection")
    grid = inverse_normal_cdf_grid(n)
    z1, z2 = np.meshgrid(grid, grid[::-1])  # z₂ grows upwards, as on a plot's axis
    z = np.column_stack([z1.ravel(), z2.ravel()]).astype(model.dtype)  # (n·n, 2)
    images = to_numpy(model.decode(backend.to_device(z, model.xp)))
    fig = _figure(figsize=(7.0, 7.3), layout="constrained")
    ax = fig.add_subplot()
    _show(ax, _grid(images, n))
    ax.set_xlabel(f"z₁ from {grid[0]:.2f} to {grid[-1]:.2f} →")
    ax.set_ylabel(f"z₂ from {grid[0]:.2f} to {grid[-1]:.2f} →")
    fig.suptitle("The learned manifold: decoded z on a grid of equal prior probability\n"
                 "z = Φ⁻¹(p), p evenly spaced in [0.05, 0.95]", fontsize=10)
    return _finish(fig, path)


def plot_interpolation(model, x_a, x_b, steps=10, path=None):
    """Decode ``steps`` points on the line between the posterior means of ``x_a`` and ``x_b``."""
    if steps < 2:
        raise ValueError(f"plot_interpolation needs steps >= 2, got {steps}")
    pair = np.concatenate([_as_batch(x_a), _as_batch(x_b)])
    inputs = to_numpy(model_input(model, pair))
    means = posterior_means(model, pair)  # (2, Z)
    t = np.linspace(0.0, 1.0, steps)[:, None]
    z = ((1.0 - t) * means[0] + t * means[1]).astype(model.dtype)  # (steps, Z)
    decoded = to_numpy(model.decode(backend.to_device(z, model.xp)))
    row = np.concatenate([inputs[:1], decoded, inputs[1:]])
    cols = ["A", *[f"t = {v:.2g}" if i == 0 else f"{v:.2g}" for i, v in enumerate(t.ravel())], "B"]
    fig = _figure(figsize=(1.0 + 0.6 * (steps + 2), 1.45), layout="constrained")
    _show(fig.add_subplot(), _grid(row, steps + 2), pair.shape[1], cols=cols)
    what = ("posterior means E_q[z1|x]" if model.config.stochastic_layers == 2 else
            "means μ of q_0 (before the flow)" if getattr(model.config, "flow", "none") != "none" else
            "posterior means" if model.config.model == "vae" else "codes")
    fig.suptitle(f"Interpolation: decoding (1 − t)·z_A + t·z_B between the {what} of inputs A and B", fontsize=10)
    return _finish(fig, path)


def most_active_dimensions(means, count):
    """Indices of the ``count`` latent dimensions whose posterior means vary most over the data
    (the activity measure of Burda et al. 2016, sec. 5.2), most active first."""
    variances = means.var(axis=0)
    return [int(j) for j in np.argsort(-variances, kind="stable")[:count]]


def traversal_codes(means, j, digits, t):
    """The codes of one traversal grid, (digits·len(t), Z), row by row: the posterior means of the
    first ``digits`` examples with coordinate j replaced by m_j + t·s_j, where m_j and s_j are the
    mean and standard deviation of ``means[:, j]`` over all the examples."""
    z = np.repeat(means[:digits, None, :], len(t), axis=1)  # (digits, steps, Z)
    z[:, :, j] = means[:, j].mean() + np.asarray(t) * means[:, j].std()
    return z.reshape(-1, means.shape[1])


def plot_traversals(model, x, dims=6, digits=3, steps=9, span=3.0, path=None):
    """Latent traversals: for each of the ``dims`` most active dimensions j, a grid whose rows are
    ``digits`` inputs and whose columns decode their posterior mean μ(x) with z_j alone swept from
    m_j − span·s_j to m_j + span·s_j (m_j, s_j: mean and standard deviation of μ_j over all of ``x``).

    ``dims`` may also be a list of dimension indices. The activity (the variance of μ_j over ``x``)
    is printed above each grid; a collapsed dimension (variance near 0) changes nothing.
    """
    if steps < 2 or digits < 1 or span <= 0:
        raise ValueError(f"plot_traversals needs steps >= 2, digits >= 1 and span > 0, got steps={steps}, "
                         f"digits={digits}, span={span}")
    x = _as_batch(x)
    means = posterior_means(model, x)  # (N, Z)
    z_dim = means.shape[1]
    chosen = most_active_dimensions(means, min(int(dims), z_dim)) if np.isscalar(dims) else [int(j) for j in dims]
    if not chosen or any(not 0 <= j < z_dim for j in chosen):
        raise ValueError(f"plot_traversals: dimensions must lie in [0, {z_dim}), got {dims!r}")
    spread = means.std(axis=0)
    t = np.linspace(-span, span, steps)
    n_rows = min(int(digits), len(means))
    cols = 2 if len(chosen) > 1 else 1
    rows = math.ceil(len(chosen) / cols)
    fig = _figure(figsize=(cols * (0.55 * steps + 0.6), rows * (0.62 * n_rows + 0.75) + 0.6), layout="constrained")
    for k, j in enumerate(chosen):
        z = traversal_codes(means, j, n_rows, t)  # (digits·steps, Z)
        images = to_numpy(model.decode(backend.to_device(z.astype(model.dtype), model.xp)))
        ax = fig.add_subplot(rows, cols, k + 1)
        labels = [("0" if v == 0 else f"{v:+.0f}σ") if v == int(v) else "" for v in t]
        _show(ax, _grid(images, steps), x.shape[1], cols=labels)
        ax.set_title(f"z_{j}: var of μ_{j} over the data {spread[j] ** 2:.3g}", fontsize=9)
    what = "posterior mean μ(x)" if model.config.model == "vae" else "code"
    fig.suptitle(f"Latent traversals of the {len(chosen)} most active dimensions ({model.config.describe()})\n"
                 f"each row: a digit's {what} decoded with one coordinate z_j swept over\n"
                 f"±{span:g} standard deviations (σ) of μ_j over {len(x)} digits", fontsize=10)
    return _finish(fig, path)
