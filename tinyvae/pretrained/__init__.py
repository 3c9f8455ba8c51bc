"""Small trained models bundled with the package, so that a notebook shows a trained model in seconds.

Each bundled model ``NAME.npz`` (beside this file) is the model part (format, config, weights; no optimizer
state) of the checkpoint of one training run, whose flags and seed are written in ``recipes.py``. Rebuild one
with its command::

    python -m tinyvae.pretrained vae-z2          # trains the recipe, writes tinyvae/pretrained/vae-z2.npz
    python -m tinyvae.pretrained --list          # every name, its model and its `tinyvae train` command

The same training on the same machine (same BLAS kernel) rewrites the same weights bit for bit; another
CPU's kernel may round the float32 matrix products differently in the last bits.

``load(name)`` returns the bundled model. With ``retrain=True``, or the environment variable
``TINYVAE_RETRAIN=1``, it runs the recipe instead (in a temporary folder, with a progress bar) and returns
the model it trained: what a notebook shows then comes from a model trained before your eyes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from .recipes import RECIPES

HERE = Path(__file__).resolve().parent
RETRAIN_VARIABLE = "TINYVAE_RETRAIN"


def names():
    """The names of the bundled models, in the order of ``recipes.py``."""
    return list(RECIPES)


def _recipe(name):
    if name not in RECIPES:
        raise ValueError(f"no bundled model named {name!r}; the bundled models are {', '.join(RECIPES)}")
    return RECIPES[name]


def path(name):
    """The file of the bundled model ``name``."""
    _recipe(name)
    return HERE / f"{name}.npz"


def config(name, out=None):
    """The TrainConfig of ``name``'s recipe, writing its run to ``out``."""
    from ..run.config import TrainConfig  # noqa: PLC0415 (train imports much; load() of a bundled file needs none of it)

    return TrainConfig(**_recipe(name)["flags"], out=None if out is None else str(out))


def command(name):
    """The ``tinyvae train`` command line of ``name``'s recipe (its run folder left to you: ``--out DIR``)."""
    parts = ["tinyvae train"]
    for field, value in _recipe(name)["flags"].items():
        flag = "--" + field.replace("_", "-")
        values = value if isinstance(value, (tuple, list)) else (value,)
        parts.append(" ".join([flag, *(f"{v:g}" if isinstance(v, float) else str(v) for v in values)]))
    return " ".join(parts)


def retrain_requested():
    """Whether ``TINYVAE_RETRAIN`` asks to retrain (1, true, yes; anything else, or unset: no)."""
    return os.environ.get(RETRAIN_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def train_recipe(name, folder, *, progress=True, log=None):
    """Train ``name``'s recipe into the run folder ``folder`` (which must not exist); returns the run folder."""
    from ..run.train import train  # noqa: PLC0415

    return train(config(name, folder), progress=progress, pictures=False,
                 log=log if log is not None else (lambda line: None))


def build(name, target=None, *, progress=True, log=print):
    """Train ``name``'s recipe and write its model to ``target`` (default: the bundled file); returns ``target``."""
    from ..models.vae import load_model  # noqa: PLC0415

    target = path(name) if target is None else Path(target)
    with tempfile.TemporaryDirectory(prefix="tinyvae-pretrained-") as scratch:
        run = train_recipe(name, Path(scratch) / name, progress=progress, log=log)
        load_model(run / "checkpoint.npz").save(target)  # the model alone: format, config, weights (atomic)
    return target


def load(name, *, retrain=None, progress=True):
    """The bundled model ``name``; with ``retrain`` (default: ``TINYVAE_RETRAIN``) a fresh run of its recipe."""
    from ..models.vae import load_model  # noqa: PLC0415

    if retrain is None:
        retrain = retrain_requested()
    if not retrain:
        return load_model(path(name))
    run = train_recipe(name, Path(tempfile.mkdtemp(prefix="tinyvae-")) / name, progress=progress)
    return load_model(run / "checkpoint.npz")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tinyvae.pretrained",
                                     description="Rebuild bundled models from their recipes (tinyvae/pretrained/).")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"models to rebuild: {', '.join(RECIPES)}")
    parser.add_argument("--list", action="store_true", help="print each model and its command; train nothing")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in RECIPES]
    if unknown or not (args.names or args.list):
        problem = f"unknown model names {unknown}" if unknown else "name at least one model"
        parser.error(f"{problem}; the bundled models are {', '.join(RECIPES)}")
    if args.list:
        for name in RECIPES:
            print(f"{name}: {RECIPES[name]['what']}\n    {command(name)} --out DIR")
        return 0
    for name in args.names:
        target = build(name)
        print(f"{name}: wrote {target.relative_to(HERE.parent.parent)} ({target.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
