"""Pictures of a model and of its training run (``tinyvae sample``, ``tinyvae plot``).

Samples from the prior, reconstructions, training curves, the latent space (a scatter of posterior
means; the decoded manifold when Z = 2), an interpolation, and the autoencoder-versus-VAE
comparison that shows why the KL term is there (Kingma & Welling, *Auto-Encoding Variational
Bayes*, ICLR 2014, fig. 4 for the manifold; the AE's inability to generate: derivations/autoencoder.md).

Every function draws on a ``matplotlib.figure.Figure`` made directly, without pyplot, so it never
touches the backend a notebook has chosen; it writes a PNG when given ``path`` and returns the
Figure, which a notebook displays. Models may live on the GPU: arrays come to the host
(``backend.to_numpy``) only to be drawn. What every picture shares is in ``figures.py``; the
latent space's pictures are in ``latent_pictures.py`` and part of this module's face.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from .. import arguments, backend, data
from ..backend import to_numpy
from ..checkpoint import CheckpointError
from ..errors import UserError, explain, file_errors
from .evaluate import evaluation_images, find_checkpoint, load_images, model_input, run_data_dir
from .figures import _as_batch, _figure, _finish, _grid, _host_images, _prior_samples, _show, output_file
# the conditional models' pictures, part of this module's face (tinyvae.plots.plot_digit_grid, ...)
from .conditional_pictures import (completions, digit_grid, plot_completion, plot_digit_grid,  # noqa: F401
                                   plot_style_transfer, style_transfer)
# the latent space's pictures, part of this module's face (tinyvae.plots.plot_latent, ...)
from .latent_pictures import (inverse_normal_cdf_grid, most_active_dimensions, plot_interpolation,  # noqa: F401
                              plot_latent, plot_manifold, plot_traversals, traversal_codes)
from ..models.conditioning import is_conditional
from ..models.vae import load_model
from .evaluate import refuse_conditional

SCATTER_DIGITS = 2000  # test digits in a run's latent scatter: enough to see the classes, fast to draw
METRICS_NAME = "metrics.jsonl"


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
    kind = "decoded posterior means" if model.config.model == "vae" else "decoded codes"
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


def _run(path, device="cpu", conditional=False, what="this picture"):
    """(model, run config, run folder) of a checkpoint file or run folder; a conditional model only where the
    caller draws it (``conditional``); ``what`` names the command that refuses one."""
    checkpoint, config = find_checkpoint(path)
    model = load_model(checkpoint, device)
    if not conditional:
        refuse_conditional(model, checkpoint, what)
    return model, config, checkpoint.parent


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
    model, config, folder = _run(run_dir, conditional=True)
    x, y = _run_test_images(config, seed, SCATTER_DIGITS)
    rows = read_metrics(folder / METRICS_NAME) if (folder / METRICS_NAME).is_file() else None  # checked first
    if is_conditional(model.config):  # its own pictures: digits by label, style transfer, completions
        from .conditional_pictures import write_conditional_pictures  # noqa: PLC0415
        return write_conditional_pictures(model, x, y, folder, seed)
    written = []

    def save(name, draw, *args, **kwargs):
        written.append(folder / name)
        draw(*args, path=written[-1], **kwargs)

    save("samples.png", plot_samples, model, seed=seed)
    save("reconstructions.png", plot_reconstructions, model, x)
    if rows is not None:
        save("curves.png", plot_curves, rows, model="vae" if model.config.model == "vae" else "ae")
    save("latent.png", plot_latent, model, x, y)
    a, b = _two_different_digits(y)
    save("interpolation.png", plot_interpolation, model, x[a], x[b])
    if model.config.latent == 2:
        save("manifold.png", plot_manifold, model)
    return written


def write_traversals(run_dir, seed=0):
    """Draw the latent traversals of a run (``plot_traversals`` on its test digits) into
    ``traversals.png`` in the run folder; returns ``[path]``."""
    model, config, folder = _run(run_dir, what="tinyvae plot --traverse")
    x, _ = _run_test_images(config, seed, SCATTER_DIGITS)
    path = folder / "traversals.png"
    plot_traversals(model, x, path=path)
    return [path]


# --------------------------------------------------------------------------- command line


def add_parser(subparsers):
    s = subparsers.add_parser("sample", help="decode draws from the prior into a PNG grid",
                              description="Decode z ~ N(0, I) with a trained model and save the mean images. "
                                          "Unconditional models only: tinyvae plot RUN draws a cvae run's digits "
                                          "by label, or its completions.")
    s.add_argument("checkpoint", metavar="CHECKPOINT_OR_RUN", help="a checkpoint .npz or a run folder")
    s.add_argument("--n", type=_positive, default=64, help="number of samples (default 64)")
    s.add_argument("--seed", type=arguments.count, default=0, help="seed of z (default 0)")
    s.add_argument("--out", metavar="FILE.png", default=None,
                   help="output file (replaced if it exists), or a folder to write samples.png into (default: the run "
                        "folder); where samples.png exists, samples-2.png, samples-3.png, ... (never overwritten)")
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
        model, _, folder = _run(args.checkpoint, what="tinyvae sample")
        if out is None or out.parent == Path(args.out):  # samples.png in the run folder or in the --out folder
            out = _unused(out or folder / "samples.png")
        plot_samples(model, n=args.n, seed=args.seed, path=out)
    except _ERRORS as err:
        print(f"tinyvae sample: error: {explain(err)}", file=sys.stderr)
        return 1
    print(out)
    return 0


def _unused(path):
    """``path``, or where it exists (the picture training drew), the first free ``stem-2``, ``stem-3``, ...:
    a name tinyvae chose never replaces a picture; a file named with --out is written as asked."""
    i = 1
    candidate = path
    while candidate.exists():
        i += 1
        candidate = path.with_name(f"{path.stem}-{i}{path.suffix}")
    return candidate


def plot_command(args):
    comparing = args.ae is not None or args.vae is not None
    if comparing == (args.run is not None) or (comparing and (args.ae is None or args.vae is None)):
        args.parser.error("give either RUN_DIR, or both --ae AE_RUN and --vae VAE_RUN")
    if comparing and args.traverse:
        args.parser.error("--traverse draws the traversals of one run: give RUN_DIR, not --ae and --vae")
    try:
        if comparing:
            ae, _, _ = _run(args.ae, what="tinyvae plot --ae/--vae")
            vae, config, _ = _run(args.vae, what="tinyvae plot --ae/--vae")
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
