"""Where a training epoch's time goes: seconds per epoch of each part of the default VAE's step.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_breakdown.py   # batch 128, 5 runs
    python benchmarks/bench_breakdown.py --batch-size 512 --runs 3

Each run is one epoch of ``tinyvae.run.train.train`` on the default model (784-400-20, ReLU,
grey-level BCE + KL, Adam 1e-3, float32) with a timer around the methods that make up a step,
patched on their classes for this process only:

* dense layers: ``Dense.forward`` and ``Dense.backward`` (the matrix products with their bias
  addition and bias-gradient sum);
* activations: every activation layer's ``forward`` and ``backward``;
* reparameterization: ``Reparameterize.forward`` and ``backward``;
* loss: the reconstruction term and its gradient (the Bernoulli likelihood's ``nll``);
* KL: ``gaussian_kl`` as the prior calls it;
* Adam: ``Adam.step``;
* the rest: the epoch's seconds (as ``metrics.jsonl`` records them) minus all of the above: batch
  gathering, uint8 to float, drawing ε, the model's own glue (slicing μ and log σ², adding the KL's
  gradient), reading the losses, Python.

The timers themselves cost about a microsecond per call, some 20 calls per step. The median of each
part over the runs is printed, with the epoch's seconds; the BLAS library, kernel and thread count
(threadpoolctl) first, as in ``bench_training.py``. Prints a table, then the JSON.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import tinyvae  # noqa: F401,I001  (first: it tunes OpenBLAS's threads before NumPy loads, as `tinyvae train` does)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_training import blas_info  # noqa: E402
from tinyvae.models import vae  # noqa: E402
from tinyvae.models.parts import encoders, likelihoods, priors  # noqa: E402
from tinyvae import nn as layers  # noqa: E402
from tinyvae.nn import optim  # noqa: E402
from tinyvae.run.train import TrainConfig, train  # noqa: E402

PARTS = ("dense layers", "activations", "reparameterization", "loss", "KL", "Adam")


def instrument(totals):
    """Wrap the step's methods with timers that add into ``totals[part]``; returns an undo function."""
    undo = []

    def wrap(owner, name, part):
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                totals[part] += time.perf_counter() - start

        setattr(owner, name, timed)
        undo.append((owner, name, original))

    for method in ("forward", "backward"):
        wrap(layers.Dense, method, "dense layers")
        wrap(encoders.Reparameterize, method, "reparameterization")
        for cls in set(layers.ACTIVATIONS.values()):
            wrap(cls, method, "activations")
    wrap(likelihoods.Bernoulli, "nll", "loss")
    wrap(priors, "gaussian_kl", "KL")
    wrap(optim.Adam, "step", "Adam")

    def restore():
        for owner, name, original in reversed(undo):
            setattr(owner, name, original)

    return restore


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--runs", type=int, default=5, help="epochs timed, each in a fresh run (median quoted)")
    args = p.parse_args(argv)
    if args.runs < 1 or args.batch_size < 1:
        p.error("--runs and --batch-size must be at least 1")
    blas = blas_info()
    print("BLAS: " + ", ".join(f"{k} {v}" for k, v in blas.items() if k != "filepath"), flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.runs):
            rows.append(_timed_epoch(args.batch_size, Path(tmp) / f"run{r}"))
            print(f"run {r + 1}/{args.runs}: epoch {rows[-1]['epoch']:.3f} s", flush=True)
    median = {key: statistics.median(row[key] for row in rows) for key in rows[0]}
    print(f"\nbatch {args.batch_size}, median of {args.runs} epochs (seconds per epoch of 60,000 digits)")
    for key in ("epoch", *PARTS, "the rest"):
        print(f"  {key:<20} {median[key]:7.3f}  ({100 * median[key] / median['epoch']:4.1f} %)")
    print(json.dumps({"batch_size": args.batch_size, "runs": rows, "median": median, "blas": blas}, indent=2))
    return 0


def _timed_epoch(batch_size, workdir, **limits):
    """One epoch's seconds and its parts, the evaluation after it taken out of every part.

    ``limits`` (``limit_train``, ``limit_test``) shorten the epoch, for the tests."""
    totals = defaultdict(float)
    restore = instrument(totals)
    marks = {}
    original_eval = vae.VAE.forward

    # The evaluation after the epoch calls the same methods: snapshot the totals when it begins
    # (the first forward call that names its objective, which the training loop never does).
    def forward(self, *a, **k):
        if "objective" in k and not marks:
            marks.update(totals)
        return original_eval(self, *a, **k)

    vae.VAE.forward = forward
    try:
        run = train(TrainConfig(epochs=1, batch_size=batch_size, seed=0, out=str(workdir), **limits),
                    progress=False, log=lambda *a, **k: None, pictures=False)
    finally:
        vae.VAE.forward = original_eval
        restore()
    seconds = json.loads((Path(run) / "metrics.jsonl").read_text().splitlines()[0])["seconds"]
    parts = {part: (marks or totals).get(part, 0.0) for part in PARTS}
    return {"epoch": seconds, **parts, "the rest": seconds - sum(parts.values())}


if __name__ == "__main__":
    sys.exit(main())
