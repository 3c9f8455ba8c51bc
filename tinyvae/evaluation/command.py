"""``tinyvae evaluate``: the report of ``evaluate_checkpoint`` as a table or JSON, and its command line."""

from __future__ import annotations

import json
import sys

from .. import arguments, backend, data
from ..checkpoint import CheckpointError
from ..errors import UserError, explain
from .evaluate import evaluate_checkpoint
from .two_layer_report import format_layers

_positive, _non_negative = arguments.positive_int, arguments.count  # the shared convention (tinyvae/arguments.py)

def format_report(result):
    """The dict of ``evaluate_checkpoint`` as a readable table."""
    lines = [f"checkpoint     {result['checkpoint']}", f"model          {result['model']}",
             f"data           {result['split']} split, {result['n']} examples",
             f"evaluated on   {result['evaluated_on']}",
             f"negative ELBO  {result['loss']:.3f} nats per example "
             f"(reconstruction {result['recon']:.3f} + KL {result['kl']:.3f}; ε sampled)"
             if result["kl_per_dim"] is not None or "layers" in result or result.get("flow", "none") != "none" else
             f"reconstruction {result['loss']:.3f} nats per example (an autoencoder has no KL term and no ELBO)"]
    if result.get("nll") is not None:
        lines.append(f"NLL (IW, K={result['iw_samples']})  {result['nll']:.3f} nats per example "
                     f"(standard error {result['nll_sem']:.3f}; {result['loss'] - result['nll']:.3f} below the "
                     f"negative ELBO)")
        curve = ", ".join(f"L_{kk} = {v:.3f}" for kk, v in result.get("iw_bounds", {}).items())
        if curve:
            lines.append(f"IWAE bound     {curve} (nats per example, from the same samples)")
    if result.get("sample_sharpness") is not None:
        lines.append(f"sharpness      samples {result['sample_sharpness']:.4f}, {result['split']} digits "
                     f"{result['data_sharpness']:.4f} (mean squared difference of neighbouring pixels; blur lowers it)")
    if "layers" in result:  # two stochastic layers
        return "\n".join([*lines, *format_layers(result), "", *result["notes"], f"evaluated in {result['seconds']:.1f} s"])
    unit = {"none": "posterior mean"}.get(result.get("flow", "none"), "posterior mean of q_0") \
        if result["kl_per_dim"] is not None or result.get("flow", "none") != "none" else "code"
    lines.append(f"active units   {result['active_units']} / {result['latent']} "
                 f"(variance over the data of the {unit} > {result['threshold']:g})")
    lines.append("")
    lines.append(f"  dim  {'KL (nats)':>10}  {'var E[z]':>10}  active")
    kl = result["kl_per_dim"] or [None] * result["latent"]
    for j, (k_j, v_j) in enumerate(zip(kl, result["mean_variances"])):
        kl_text = "-" if k_j is None else f"{k_j:.3f}"
        lines.append(f"  {j:>3}  {kl_text:>10}  {v_j:>10.4f}  {'yes' if v_j > result['threshold'] else 'no'}")
    lines.extend(["", *result["notes"], f"evaluated in {result['seconds']:.1f} s"])
    return "\n".join(lines)


def add_parser(subparsers):
    p = subparsers.add_parser("evaluate", help="negative ELBO, importance-weighted NLL, KL per dimension, active units",
                              description="Evaluate a checkpoint (or a run folder holding checkpoint.npz) "
                                          "on a data split. Unconditional models only: a cvae or quadrant-regressor "
                                          "run is scored with tinyvae.conditional_nll and drawn with tinyvae plot "
                                          "RUN (derivations/conditional.md#try-it).")
    p.add_argument("checkpoint", metavar="CHECKPOINT_OR_RUN_DIR", help="a checkpoint .npz or a run folder")
    p.add_argument("--iw-samples", type=_non_negative, default=0, metavar="K",
                   help="importance samples for the NLL estimate (5000 is standard; 0 skips it, the default)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--data", metavar="DIR", default=None,
                   help="folder of MNIST-format files (default: the run's, else the bundled MNIST)")
    p.add_argument("--split", choices=("test", "val", "train"), default="test", help="data split (default test)")
    p.add_argument("--device", choices=backend.DEVICES, default="cpu", help="cpu (NumPy) or gpu (CuPy)")
    p.add_argument("--limit", type=_positive, default=None, metavar="N", help="evaluate the first N examples only")
    p.add_argument("--batch-size", type=_positive, default=1000, help="examples per batch for the ELBO (default 1000)")
    p.add_argument("--seed", type=arguments.count, default=0,
                   help="seed of ε and the IW samples (default 0); for a binarized run, also of the digits' "
                        "binarization, except where the run's config recorded a test binarization seed (tinyvae train "
                        "records one): its test and validation splits keep that seed, whatever --seed is")
    p.set_defaults(func=evaluate_command)


def evaluate_command(args):
    try:
        result = evaluate_checkpoint(args.checkpoint, data=args.data, iw_samples=args.iw_samples, split=args.split,
                                     device=args.device, limit=args.limit, seed=args.seed, batch_size=args.batch_size,
                                     progress=sys.stderr.isatty())
    except (CheckpointError, FileNotFoundError, data.DataError, backend.BackendError, ValueError, UserError,
            OSError) as err:
        print(f"tinyvae evaluate: error: {explain(err)}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0
