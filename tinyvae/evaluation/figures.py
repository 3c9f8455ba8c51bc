"""What every picture shares: a Figure made without pyplot, image grids with grey gaps, and writing a file.

Models may live on the GPU: arrays come to the host (``backend.to_numpy``) only to be drawn.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .. import backend
from ..backend import to_numpy
from ..errors import file_errors
from .evaluate import model_input

PAD = 2  # pixels between images in a grid
PAD_VALUE = 0.35  # grey gaps: distinct from both the black background and the white strokes
IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")  # what --out may name (matplotlib writes them all)


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
        if Path(path).is_dir():  # matplotlib would write path + ".png" beside it, under a name nobody asked for
            raise ValueError(f"path {path} is a folder; expected a picture file such as {Path(path) / 'picture.png'}")
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
