"""Pictures of the conditional models: each digit drawn from several z, style transfer, and quadrant completion
beside the deterministic regressor's one mean (derivations/conditional.md).

Each picture has a function that returns its images as host arrays (for tests and notebooks) and a
``plot_`` function that draws them on a Figure made without pyplot, writing a PNG when given ``path``.
"""

from __future__ import annotations

import numpy as np

from .. import backend
from ..backend import to_numpy
from .conditional import require_conditional
from .evaluate import model_input
from .figures import _as_batch, _figure, _finish, _grid, _show
from ..models.conditional import ConditionalVAE, QuadrantRegressor
from ..models.parts.conditions import check_labels, one_hot

UNSEEN_GREY = 0.35  # how an unseen pixel is shown: the grid's gap grey, neither ink nor paper


def _require(model, kind, condition, what):
    require_conditional(model, what)
    if not isinstance(model, kind) or model.config.condition != condition:
        raise ValueError(f"{what} needs a {kind.__name__} with condition {condition!r}, got "
                         f"{model.config.describe()}")
    return model


def _labels_c(model, labels):
    labels = check_labels(np.asarray(labels), len(labels), model.config.classes)
    return one_hot(backend.to_device(labels, model.xp), model.config.classes, model.dtype, model.xp)


def digit_grid(model, n=6, seed=0):
    """(n, C, D) host mean images: row i decodes one z_i ~ N(0, I) under every label 0 .. C − 1."""
    _require(model, ConditionalVAE, "label", "digit_grid")
    c = _labels_c(model, np.arange(model.config.classes))
    return to_numpy(model.sample(n, backend.default_rng(seed, model.xp), c=c))


def style_transfer(model, x, labels):
    """(N, C, D) host mean images: each x_n encoded with its own label, its posterior mean μ_n decoded under
    every label, so that one row keeps x_n's style across the classes."""
    _require(model, ConditionalVAE, "label", "style_transfer")
    xb = model_input(model, _as_batch(x))
    check_labels(np.asarray(labels), xb.shape[0], model.config.classes)  # one label per digit, each a class
    mu, _ = model.encode(xb, _labels_c(model, labels))  # (N, Z)
    every = _labels_c(model, np.arange(model.config.classes))  # (C, C)
    n, classes = mu.shape[0], model.config.classes
    images = model.decode(model.xp.repeat(mu, classes, axis=0), model.xp.tile(every, (n, 1)))  # (N·C, D)
    return to_numpy(images).reshape(n, classes, -1)


def completions(model, x, samples=5, seed=0, mask=None):
    """(S, N, D) host images: the seen pixels of each x_n kept and the unseen ones filled with the mean image of
    ``samples`` draws z ~ N(0, I) decoded under c_n (a ConditionalVAE), or with the one prediction (S = 1, a
    QuadrantRegressor)."""
    require_conditional(model, "completions")
    if model.config.condition != "quadrants":
        raise ValueError(f"completions needs a model with condition 'quadrants', got {model.config.describe()}")
    xb = model_input(model, _as_batch(x))
    c = model.condition_of(xb, mask=mask)
    m = model.condition.check_mask(mask, xb.shape[0], model.xp).astype(model.dtype)
    if isinstance(model, QuadrantRegressor):
        filled = model.likelihood.mean(model.decoder.forward(c))[None]  # (1, N, D)
    else:
        z = backend.default_rng(seed, model.xp).standard_normal((samples * xb.shape[0], model.config.latent),
                                                                 dtype=model.dtype)
        filled = model.decode(z, model.xp.tile(c, (samples, 1))).reshape(samples, *xb.shape)  # (S, N, D)
    return to_numpy(xb * m + filled * (1 - m))


def seen_part(model, x, mask=None):
    """(N, D) host images: the seen pixels of x, the unseen shown grey."""
    xb = to_numpy(model_input(model, _as_batch(x)))
    m = to_numpy(model.condition.check_mask(mask, xb.shape[0], model.xp))
    return xb * m + UNSEEN_GREY * (1 - m)


def plot_digit_grid(model, n=6, seed=0, path=None):
    """Each digit 0 .. C − 1 (columns) drawn from ``n`` draws of z (rows), one z per row."""
    images = digit_grid(model, n, seed)
    fig = _figure(figsize=(0.55 * images.shape[1] + 0.8, 0.55 * n + 0.7), layout="constrained")
    _show(fig.add_subplot(), _grid(images.reshape(-1, images.shape[-1]), images.shape[1]), images.shape[-1],
          cols=[str(k) for k in range(images.shape[1])])
    fig.suptitle(f"p(x | z, y): one z ~ N(0, I) per row, the label y per column\n{model.config.describe()}",
                 fontsize=9)
    return _finish(fig, path)


def plot_style_transfer(model, x, labels, path=None):
    """Each test digit (left column) encoded with its label, then decoded under every label."""
    x = _as_batch(x)
    images = style_transfer(model, x, labels)
    shown = np.concatenate([to_numpy(model_input(model, x))[:, None], images], axis=1)  # (N, 1 + C, D)
    fig = _figure(figsize=(0.55 * shown.shape[1] + 0.8, 0.55 * len(x) + 0.7), layout="constrained")
    _show(fig.add_subplot(), _grid(shown.reshape(-1, shown.shape[-1]), shown.shape[1]), shown.shape[-1],
          cols=["input"] + [str(k) for k in range(images.shape[1])])
    fig.suptitle("Style transfer: μ of q(z | x, y) decoded under every label", fontsize=9)
    return _finish(fig, path)


def plot_completion(cvae, x, regressor=None, samples=5, seed=0, path=None):
    """Columns: test digits. Rows: the seen part (unseen grey), the truth, the regressor's mean (when given)
    and ``samples`` CVAE completions."""
    x = _as_batch(x)
    rows = [seen_part(cvae, x), to_numpy(model_input(cvae, x))]
    names = ["seen", "truth"]
    if regressor is not None:
        rows.append(completions(regressor, x)[0])
        names.append("regressor")
    rows.extend(completions(cvae, x, samples, seed))
    names.extend(f"CVAE {i + 1}" for i in range(samples))
    fig = _figure(figsize=(0.55 * len(x) + 1.4, 0.55 * len(rows) + 0.7), layout="constrained")
    _show(fig.add_subplot(), _grid(np.concatenate(rows), len(x)), x.shape[1], rows=names)
    fig.suptitle(f"Quadrant completion, {cvae.config.quadrants} seen", fontsize=9)
    return _finish(fig, path)


def write_conditional_pictures(model, x, y, folder, seed=0):
    """The pictures of a conditional run into ``folder``: digits.png and style_transfer.png (label), or
    completion.png (quadrants); returns their paths."""
    written = []
    if model.config.condition == "label":
        written.append(folder / "digits.png")
        plot_digit_grid(model, seed=seed, path=written[-1])
        written.append(folder / "style_transfer.png")
        plot_style_transfer(model, x[:8], y[:8], path=written[-1])
    elif isinstance(model, QuadrantRegressor):
        written.append(folder / "completion.png")
        fig = _figure(figsize=(6.0, 2.5), layout="constrained")
        rows = np.concatenate([seen_part(model, x[:10]), to_numpy(model_input(model, x[:10])),
                               completions(model, x[:10])[0]])
        _show(fig.add_subplot(), _grid(rows, 10), x.shape[1], rows=("seen", "truth", "regressor"))
        fig.suptitle(f"Quadrant regressor, {model.config.quadrants} seen", fontsize=9)
        _finish(fig, written[-1])
    else:
        written.append(folder / "completion.png")
        plot_completion(model, x[:10], seed=seed, path=written[-1])
    return written
