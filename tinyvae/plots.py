"""Pictures of a model and of its training run (``tinyvae sample``, ``tinyvae plot``).

Samples from the prior, reconstructions, training curves, the latent space (a scatter of posterior
means; the decoded manifold when Z = 2), an interpolation, and the autoencoder-versus-VAE
comparison that shows why the KL term is there (Kingma & Welling, *Auto-Encoding Variational
Bayes*, ICLR 2014, fig. 4 for the manifold; the AE's inability to generate: derivations/autoencoder.md).

Every function draws on a ``matplotlib.figure.Figure`` made directly, without pyplot, so it never
touches the backend a notebook has chosen; it writes a PNG when given ``path`` and returns the
Figure, which a notebook displays. Models may live on the GPU: arrays come to the host
(``backend.to_numpy``) only to be drawn.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from statistics import NormalDist

import numpy as np

from . import arguments, backend, data
from .backend import to_numpy
from .checkpoint import CheckpointError
from .errors import UserError, explain, file_errors
from .evaluate import evaluation_images, find_checkpoint, load_images, model_input, posterior_means, run_data_dir
from .vae import VAE, load_model

PAD = 2  # pixels between images in a grid
PAD_VALUE = 0.35  # grey gaps: distinct from both the black background and the white strokes
SCATTER_DIGITS = 2000  # test digits in a run's latent scatter: enough to see the classes, fast to draw
METRICS_NAME = "metrics.jsonl"
IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")  # what --out may name (matplotlib writes them all)


# --------------------------------------------------------------------------- helpers



def _figure(**kwargs):
    """A matplotlib Figure, imported on first use: `tinyvae train` should not pay for matplotlib
    (about 30 MB and half a second) until it draws its pictures at the end."""
    from matplotlib.figure import Figure  # noqa: PLC0415

    return Figure(**kwargs)

def _image_shape(d):
    side = math.isqrt(d)
    return (side, side) if side * side == d else (1, d)


def _grid(images, cols):
    """Tile (N, D) images in [0, 1] into one (rows·(h+PAD)−PAD, cols·(w+PAD)−PAD) picture."""
    images = np.clip(np.asarray(images, dtype=np.float64), 0.0, 1.0)  # Gaussian means may leave [0, 1]
    n = len(images)
    h, w = _image_shape(images.shape[1])
    rows = max(1, math.ceil(n / cols))
    out = np.full((rows * (h + PAD) - PAD, cols * (w + PAD) - PAD), PAD_VALUE)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        out[r * (h + PAD):r * (h + PAD) + h, c * (w + PAD):c * (w + PAD) + w] = image.reshape(h, w)
    return out


def _show(ax, picture, d=784, rows=(), cols=()):
    """An image grid of D-pixel images, without ticks or frame; one label per row in ``rows``
    (on the left) and per column in ``cols`` (below)."""
    ax.imshow(picture, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    h, w = _image_shape(d)
    ax.set_yticks([i * (h + PAD) + (h - 1) / 2 for i in range(len(rows))], list(rows))
    ax.set_xticks([i * (w + PAD) + (w - 1) / 2 for i in range(len(cols))], list(cols))
    ax.tick_params(length=0, labelsize=9)
    for spine in ax.spines.values():
        spine.set_visible(False)


def _finish(fig, path):
    if path is not None:
        with file_errors("write", path):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=fig.dpi, facecolor="white")
    return fig


def output_file(out, default_name):
    """Where ``--out`` asks a picture to go: inside it when it is a folder (one that exists, or a path
    ending in /), else the file itself, which must end in .png (or .pdf, .svg, .jpg)."""
    path = Path(out)
    if path.is_dir() or str(out).endswith(("/", os.sep)):
        return path / default_name
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"--out {out}: expected a picture file ending in {', '.join(IMAGE_SUFFIXES)}, or a "
                         f"folder, got {'no suffix' if not path.suffix else 'the suffix ' + path.suffix}")
    return path


def _host_images(model, x):
    """Mean images (N, D) of the model for inputs ``x`` as host floats, for display."""
    return to_numpy(model.reconstruct(model_input(model, x)))


def _as_batch(x):
    """Images on the host as (N, D); one image (D,) becomes (1, D)."""
    if not isinstance(x, np.ndarray):
        x = to_numpy(x) if hasattr(x, "get") else np.asarray(x)
    return x.reshape(1, -1) if x.ndim == 1 else x


def _prior_samples(model, n, seed):
    return to_numpy(model.sample(n, backend.default_rng(seed, model.xp)))


# --------------------------------------------------------------------------- one model


def plot_samples(model, n=64, seed=0, path=None):
    """A grid of ``n`` mean images decoded from z ~ N(0, I) (seeded)."""
    cols = math.ceil(math.sqrt(n))
    picture = _grid(_prior_samples(model, n, seed), cols)
    fig = _figure(figsize=(6.0, 6.0 * picture.shape[0] / picture.shape[1] + 0.5), layout="constrained")
    _show(fig.add_subplot(), picture)
    fig.suptitle(f"{n} samples: z ~ N(0, I) decoded to mean images\n{model.config.describe()}", fontsize=10)
    return _finish(fig, path)


def plot_reconstructions(model, x, n=16, path=None):
    """``n`` inputs (top row) above their reconstructions, the decoded posterior means (bottom row)."""
    x = _as_batch(x)[:n]
    images = np.concatenate([to_numpy(model_input(model, x)), _host_images(model, x)])
    fig = _figure(figsize=(1.4 + 0.55 * len(x), 1.75), layout="constrained")
    _show(fig.add_subplot(), _grid(images, len(x)), x.shape[1], rows=("input", "reconstruction"))
    kind = "decoded posterior means" if isinstance(model, VAE) else "decoded codes"
    fig.suptitle(f"Reconstructions ({kind}), {model.config.describe()}", fontsize=10)
    return _finish(fig, path)


def read_metrics(metrics):
    """The per-epoch dicts of a ``metrics.jsonl`` path (or a run folder), or a list passed through."""
    if not isinstance(metrics, (str, Path)):
        return list(metrics)
    path = Path(metrics)
    path = path / METRICS_NAME if path.is_dir() else path
    rows = []
    with file_errors("read", path):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} line {number}: expected one JSON object per line, got {line[:40]!r} ({err})") \
                from err
        if not isinstance(row, dict):
            raise ValueError(f"{path} line {number}: expected a JSON object, got {line[:40]!r}")
        rows.append(row)
    return rows


def _model_kind(metrics, model):
    """"ae" or "vae": ``model`` when given, else the "model" of the config.json beside a metrics path."""
    if model is None and isinstance(metrics, (str, Path)):
        folder = Path(metrics) if Path(metrics).is_dir() else Path(metrics).parent
        config = folder / "config.json"
        kind = json.loads(config.read_text()).get("model") if config.is_file() else None
        model = kind if isinstance(kind, str) else None  # tinyvae.train writes "vae" or "ae" there
    model = "vae" if model is None else model
    if model not in ("vae", "ae"):
        raise ValueError(f"plot_curves: model must be 'vae' or 'ae', got {model!r}")
    return model


def plot_curves(metrics, path=None, model=None):
    """Training curves per epoch: loss, reconstruction, KL; train solid, test dashed (validation dotted).

    ``metrics``: a ``metrics.jsonl`` path, a run folder, or a list of dicts with the keys epoch,
    train_loss, train_recon, train_kl, test_loss, test_recon, test_kl (and beta). ``model``: "vae" or
    "ae"; by default the run's config.json says (a list of dicts is taken to be a VAE's). An
    autoencoder has no KL term and its loss bounds no likelihood, so its picture is one panel, the
    reconstruction loss.
    """
    rows = read_metrics(metrics)
    if not rows:
        raise ValueError("plot_curves: no epochs in the metrics")
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(rows)]
    if _model_kind(metrics, model) == "ae":
        panels = (("loss", "reconstruction loss (autoencoder: no KL term)"),)
    else:
        betas = {row.get("beta", 1.0) for row in rows}
        loss_title = "negative ELBO" if betas == {1.0} else "train: recon + β·KL; test: negative ELBO (β = 1)"
        panels = (("loss", loss_title), ("recon", "reconstruction"), ("kl", "KL(q(z|x) ‖ p(z))"))
    fig = _figure(figsize=(4.0 * len(panels) + 0.4 * (len(panels) == 1), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (key, title) in zip(axes, panels):
        for split, style in (("train", "-"), ("test", "--"), ("val", ":")):
            values = [row.get(f"{split}_{key}") for row in rows]
            points = [(e, v) for e, v in zip(epochs, values) if v is not None]
            if points:
                ax.plot(*zip(*points), style, marker="o", markersize=3, label=split)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("nats per example")
    axes[0].legend()
    fig.suptitle("Training curves", fontsize=11)
    return _finish(fig, path)


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
    what = "Posterior means E_q[z|x]" if isinstance(model, VAE) else "Autoencoder codes z"
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
    what = "posterior means" if isinstance(model, VAE) else "codes"
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
    what = "posterior mean μ(x)" if isinstance(model, VAE) else "code"
    fig.suptitle(f"Latent traversals of the {len(chosen)} most active dimensions ({model.config.describe()})\n"
                 f"each row: a digit's {what} decoded with one coordinate z_j swept over\n"
                 f"±{span:g} standard deviations (σ) of μ_j over {len(x)} digits", fontsize=10)
    return _finish(fig, path)


# --------------------------------------------------------------------------- two models


def plot_ae_vs_vae(ae, vae, x, n=10, seed=0, path=None):
    """Both models' reconstructions of ``n`` digits, and both decoding ``n`` draws z ~ N(0, I)."""
    x = _as_batch(x)[:n]
    n = len(x)
    rows = [("input", to_numpy(model_input(vae, x))),
            ("AE: reconstruction", _host_images(ae, x)),
            ("VAE: reconstruction", _host_images(vae, x)),
            ("AE: z ~ N(0, I)", _prior_samples(ae, n, seed)),
            ("VAE: z ~ N(0, I)", _prior_samples(vae, n, seed))]
    images = np.concatenate([images for _, images in rows])
    fig = _figure(figsize=(max(8.0, 2.2 + 0.6 * n), 4.6), layout="constrained")
    _show(fig.add_subplot(), _grid(images, n), x.shape[1], rows=[label for label, _ in rows])
    fig.suptitle("Rows 2 and 3: each model's reconstructions of the inputs of row 1.\n"
                 "Rows 4 and 5: the same draws z ~ N(0, I) decoded by each model. The VAE's KL term pulls q(z|x) "
                 "toward N(0, I);\nnothing places the autoencoder's codes, so its draws may land where its "
                 "decoder never learned.", fontsize=10)
    return _finish(fig, path)


# --------------------------------------------------------------------------- a run folder


def _run(path, device="cpu"):
    """(model, run config, run folder) of a checkpoint file or run folder."""
    checkpoint, config = find_checkpoint(path)
    return load_model(checkpoint, device), config, checkpoint.parent


def _run_test_images(config, seed, limit):
    """The run's test digits as the model saw them in training (binarized when it was), and labels."""
    x, y = load_images("test", run_data_dir(config), config, limit)
    x, _ = evaluation_images(x, config, seed)
    return x, y


def _two_different_digits(labels):
    """Indices of the first example and of the first one with another label (or the second)."""
    others = np.flatnonzero(labels != labels[0])
    return 0, int(others[0]) if len(others) else min(1, len(labels) - 1)


def write_run_pictures(run_dir, seed=0):
    """Write samples, reconstructions, curves, latent, interpolation (and manifold when Z = 2) PNGs
    into the run folder; returns their paths. Curves need the run's ``metrics.jsonl``."""
    run_dir = Path(run_dir)
    model, config, folder = _run(run_dir)
    x, y = _run_test_images(config, seed, SCATTER_DIGITS)
    rows = read_metrics(folder / METRICS_NAME) if (folder / METRICS_NAME).is_file() else None  # checked first
    written = []

    def save(name, draw, *args, **kwargs):
        written.append(folder / name)
        draw(*args, path=written[-1], **kwargs)

    save("samples.png", plot_samples, model, seed=seed)
    save("reconstructions.png", plot_reconstructions, model, x)
    if rows is not None:
        save("curves.png", plot_curves, rows, model="vae" if isinstance(model, VAE) else "ae")
    save("latent.png", plot_latent, model, x, y)
    a, b = _two_different_digits(y)
    save("interpolation.png", plot_interpolation, model, x[a], x[b])
    if model.config.latent == 2:
        save("manifold.png", plot_manifold, model)
    return written


def write_traversals(run_dir, seed=0):
    """Draw the latent traversals of a run (``plot_traversals`` on its test digits) into
    ``traversals.png`` in the run folder; returns ``[path]``."""
    model, config, folder = _run(run_dir)
    x, _ = _run_test_images(config, seed, SCATTER_DIGITS)
    path = folder / "traversals.png"
    plot_traversals(model, x, path=path)
    return [path]


# --------------------------------------------------------------------------- command line


def add_parser(subparsers):
    s = subparsers.add_parser("sample", help="decode draws from the prior into a PNG grid",
                              description="Decode z ~ N(0, I) with a trained model and save the mean images.")
    s.add_argument("checkpoint", metavar="CHECKPOINT_OR_RUN", help="a checkpoint .npz or a run folder")
    s.add_argument("--n", type=_positive, default=64, help="number of samples (default 64)")
    s.add_argument("--seed", type=arguments.count, default=0, help="seed of z (default 0)")
    s.add_argument("--out", metavar="FILE.png", default=None,
                   help="output file, or a folder to write samples.png into (default: the run folder)")
    s.set_defaults(func=sample_command)

    p = subparsers.add_parser("plot", help="all pictures of a run, or the AE-versus-VAE comparison",
                              description="`tinyvae plot RUN_DIR` writes every picture of a run into it; "
                                          "`tinyvae plot --ae AE_RUN --vae VAE_RUN --out FILE.png` compares an "
                                          "autoencoder with a VAE.")
    p.add_argument("run", metavar="RUN_DIR", nargs="?", default=None, help="a run folder")
    p.add_argument("--ae", metavar="AE_RUN", default=None, help="autoencoder run folder or checkpoint")
    p.add_argument("--vae", metavar="VAE_RUN", default=None, help="VAE run folder or checkpoint")
    p.add_argument("--out", metavar="FILE.png", default=None, help="comparison output (default ae_vs_vae.png)")
    p.add_argument("--n", type=_positive, default=10, help="digits per row in the comparison (default 10)")
    p.add_argument("--seed", type=arguments.count, default=0,
                   help="seed of z and of the test binarization (default 0)")
    p.add_argument("--traverse", action="store_true",
                   help="only draw latent traversals of the run's most active dimensions into RUN_DIR/traversals.png")
    p.set_defaults(func=plot_command, parser=p)


_positive = arguments.positive_int  # the shared convention (tinyvae/arguments.py)
_ERRORS = (CheckpointError, FileNotFoundError, data.DataError, backend.BackendError, ValueError, UserError, OSError)


def sample_command(args):
    try:
        out = output_file(args.out, "samples.png") if args.out else None
        model, _, folder = _run(args.checkpoint)
        out = out or folder / "samples.png"
        plot_samples(model, n=args.n, seed=args.seed, path=out)
    except _ERRORS as err:
        print(f"tinyvae sample: error: {explain(err)}", file=sys.stderr)
        return 1
    print(out)
    return 0


def plot_command(args):
    comparing = args.ae is not None or args.vae is not None
    if comparing == (args.run is not None) or (comparing and (args.ae is None or args.vae is None)):
        args.parser.error("give either RUN_DIR, or both --ae AE_RUN and --vae VAE_RUN")
    if comparing and args.traverse:
        args.parser.error("--traverse draws the traversals of one run: give RUN_DIR, not --ae and --vae")
    try:
        if comparing:
            ae, _, _ = _run(args.ae)
            vae, config, _ = _run(args.vae)
            x, _ = _run_test_images(config, args.seed, args.n)
            out = output_file(args.out or "ae_vs_vae.png", "ae_vs_vae.png")
            plot_ae_vs_vae(ae, vae, x, n=args.n, seed=args.seed, path=out)
            paths = [out]
        else:
            if not Path(args.run).is_dir():
                raise CheckpointError(f"{args.run} is not a run folder")
            paths = write_traversals(args.run, seed=args.seed) if args.traverse else \
                write_run_pictures(args.run, seed=args.seed)
    except _ERRORS as err:
        print(f"tinyvae plot: error: {explain(err)}", file=sys.stderr)
        return 1
    print("\n".join(map(str, paths)))
    return 0
