"""Training a VAE or an autoencoder on MNIST: ``train(config)`` in Python, ``tinyvae train`` in a shell.

The defaults are the PyTorch examples VAE (github.com/pytorch/examples, ``vae/main.py``):
784-400-20 with ReLU, a Bernoulli decoder on grey levels, Adam at 1e-3, batches of 128, 10 epochs.

``train`` reads as the recipe it runs: build the run (data, model, optimizer; ``loop.py``), make its
folder and write its config (``folder.py``), then fit: the epochs, each ending with an evaluation,
a metrics line and a checkpoint. ``resume`` reads a checkpoint back and fits the rest. How a run
stops early (Ctrl-C, divergence) is ``stopping.py``.

A run folder holds ``config.json`` (written once, at the start), ``metrics.jsonl`` (one line per
epoch) and ``checkpoint.npz`` (replaced atomically after every epoch and on Ctrl-C; never written
with non-finite values). Loss values are nats per example: summed over pixels and latent
dimensions, averaged over examples [eq:loss-reduction]. Epochs count from 1 and steps within an epoch
from 0; a checkpoint's (epoch, step) says how many of each are done.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

from .. import backend
from ..checkpoint import CheckpointError, remove_stale_temporaries
from ..data import BINARIZE_MODES, DataError
from ..errors import UserError, explain
from ..models.config import ARCHS, LIKELIHOODS, MODELS, OBJECTIVES
from ..nn import ACTIVATIONS
from ..models.conditioning import CONDITIONS, QUADRANT_COUNTS
from ..models.flow_sizes import FLOWS, IAF_HIDDEN
from ..models.hierarchy import STOCHASTIC_LAYERS, one_latent_size
from .config import (INITS, LR_SCHEDULES, OPTIMIZERS, OUTPUT_BIASES, PRESETS, TWO_LAYER_PRESETS, ConfigError,
                     TrainConfig)
from .folder import (CHECKPOINT_NAME, CONFIG_NAME, METRICS_NAME, RunExistsError, check_config_json,
                     checkpoint_path, make_run_dir, merge_resume, plural, read_checkpoint, read_config_json,
                     refuse_existing_run, refuse_lost_checkpoint, trim_metrics, write_run_config)
from .loop import SGD_MOMENTUM, Run, init_output_bias
from .stopping import TrainingDiverged, TrainingInterrupted
from .semi import m2_command, m2_defaults

M2_ONLY = ("labels", "label_seed", "alpha", "labelled_batch", "classifier_hidden")  # the flags of --model m2 alone

__all__ = ["CHECKPOINT_NAME", "CONFIG_NAME", "METRICS_NAME", "ConfigError", "RunExistsError", "TrainConfig",
           "TrainingDiverged", "TrainingInterrupted", "resume", "train"]

# --------------------------------------------------------------------------- public entry points


def train(config=None, *, progress=True, log=print, dataset=None, on_step=None, pictures=True):
    """Train a new run of ``config`` (a TrainConfig; None: the defaults). Returns the run folder.

    ``dataset``: a ``data.Dataset`` to train on instead of loading ``config.data``.
    ``on_step(run)``: called after every optimizer step with the running ``loop.Run``: its ``epoch``,
    ``step`` (the index of the step just taken), ``model``, ``optimizer`` and ``request_stop()``,
    which acts like Ctrl-C.
    ``pictures``: draw the run's pictures at the end (``plots.write_run_pictures``).
    Raises TrainingInterrupted after Ctrl-C (checkpoint saved) and TrainingDiverged on NaN/inf.
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"train() takes a TrainConfig, got {type(config).__name__}")
    config = dataclasses.replace(config)  # validates again and leaves the caller's object alone
    if config.out is not None:
        refuse_existing_run(Path(config.out))
    run = _new_run(config, dataset, progress=progress, log=log, on_step=on_step, pictures=pictures)
    run.folder.path = make_run_dir(config)
    write_run_config(run, fresh=True)
    log(f"training {run.model.config.describe()} ({run.model.num_params:,} parameters) on {len(run.train_x):,} "
        f"examples, {plural(config.epochs, 'epoch')} on {config.device}; run folder {run.run_dir}")
    return run.fit(first_epoch=1, first_step=0, sums=[0.0, 0.0, 0.0], seconds=0.0)


def resume(path, *, epochs=None, device=None, expect=None, progress=True, log=print, dataset=None, on_step=None,
           pictures=True):
    """Continue the run whose checkpoint is ``path`` (a run folder or a checkpoint file).

    The stored config is used. ``epochs`` may raise the number of epochs; ``device`` may move the run
    (then it is no longer bit-identical to one that stayed). ``expect``: config values the caller
    asked for (the CLI's flags); any that differs from the stored one is refused.
    """
    asked = dict(expect or {})
    asked.update({k: v for k, v in (("epochs", epochs), ("device", device)) if v is not None})
    options = dict(progress=progress, log=log, on_step=on_step, pictures=pictures)
    checkpoint = checkpoint_path(path)
    if checkpoint is None:  # stopped before its first checkpoint: only config.json is there
        return _restart(Path(path), asked, dataset, options)
    remove_stale_temporaries(checkpoint.parent)  # of a writer killed mid-write
    arrays = read_checkpoint(checkpoint)
    stored = arrays["train_config"]
    check_config_json(checkpoint, stored, log)
    done, step = int(arrays["epoch"]), int(arrays["step"])
    config = merge_resume(stored, asked, checkpoint.parent, done + (step > 0))
    if done >= config.epochs:
        log(f"{checkpoint.parent} already holds all {plural(done, 'epoch')}; pass --epochs N (N > {done}) to train longer")
        return checkpoint.parent
    run = Run(config, dataset, **options)
    run.folder.path = checkpoint.parent
    run.folder.restore(run.model, run.optimizer, arrays, checkpoint)
    if config.device != stored.device:
        log(f"note: the run moves from {stored.device} to {config.device}; it stays reproducible but will "
            f"not match, bit for bit, a run that never moved")
    trim_metrics(run.run_dir / METRICS_NAME, done, log)  # checked (and trimmed) before anything is rewritten
    write_run_config(run, fresh=False)
    log(f"resuming {run.run_dir} {run.folder.position(done, step)}")
    return run.fit(first_epoch=done + 1, first_step=step, sums=[float(v) for v in arrays["sums"]],
                   seconds=float(arrays["seconds"]))


def _new_run(config, dataset, **options):
    """A run at its start: data, model (output bias set) and optimizer; no folder yet."""
    run = Run(config, dataset, **options)
    init_output_bias(run.model, run.train_x, config.output_bias)
    return run


def _restart(folder, asked, dataset, options):
    """Start again, from the beginning, a run stopped before its first checkpoint (its folder holds
    config.json and no checkpoint.npz): the same config gives the same run, bit for bit."""
    refuse_lost_checkpoint(folder)
    stored = read_config_json(folder, remedy=f"repair it, or delete the folder {folder} (it holds no trained "
                                              f"weights) and start the run again with tinyvae train --out {folder}")
    if stored is None:
        raise CheckpointError(f"cannot resume: {folder} holds no run (neither {CHECKPOINT_NAME} nor {CONFIG_NAME}); "
                              f"start one there with: tinyvae train --out {folder}")
    config = merge_resume(stored, asked, folder, 0)
    remove_stale_temporaries(folder)
    run = _new_run(config, dataset, **options)
    run.folder.path = folder
    trim_metrics(folder / METRICS_NAME, 0, run.log)
    if config != stored:
        write_run_config(run, fresh=False)
    run.log(f"{folder} holds no checkpoint yet (the run stopped before its first one): starting it again from the "
            f"beginning with its stored config, {plural(config.epochs, 'epoch')}")
    return run.fit(first_epoch=1, first_step=0, sums=[0.0, 0.0, 0.0], seconds=0.0)


# --------------------------------------------------------------------------- the command line


def _positive_int(text):
    return _typed(text, int, lambda v: v >= 1, "an integer >= 1")


def _count(text):
    return _typed(text, int, lambda v: v >= 0, "an integer >= 0")


def _obs_var(text):
    if text in ("learned", "optimal"):
        return text
    return _typed(text, float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0, 'learned' or 'optimal'")


def _stochastic_layers(text):
    value = _typed(text, int, lambda v: True, "1 or 2 stochastic layers")
    if value not in STOCHASTIC_LAYERS:
        raise argparse.ArgumentTypeError(f"{value} stochastic layers are not supported: tinyvae builds one (z) or "
                                         f"two (z1 and z2, the hierarchy of Burda et al. 2015); use 1 or 2")
    return value


def _quadrants(text):
    return _typed(text, int, lambda v: v in QUADRANT_COUNTS, "1, 2 or 3 quadrants seen")


def _positive_float(text):
    return _typed(text, float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")


def _non_negative_float(text):
    return _typed(text, float, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")


def _typed(text, kind, ok, what):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


_PAPER, _TWO = PRESETS["iwae-paper"], TWO_LAYER_PRESETS["iwae-paper"]  # what the preset's help states
_SCHEDULE_EPOCHS = sum(3 ** i for i in range(8))  # the iwae-paper schedule's stages i = 0..7


def add_parser(subparsers):
    d = TrainConfig()
    p = subparsers.add_parser(
        "train", help="train a VAE, an autoencoder, a conditional VAE (cvae), the quadrant-regressor or m2 on MNIST",
        description="Train a VAE, an autoencoder (--model ae), a conditional VAE (--model cvae, on a label or on the "
                    "seen quadrants of a digit), the deterministic --model quadrant-regressor, or the semi-supervised "
                    "--model m2. With no flags: the PyTorch examples VAE (784-400-20, ReLU, "
                    "Bernoulli decoder on grey levels, Adam 1e-3, batch 128, 10 epochs) on the bundled MNIST.",
        epilog=m2_defaults(),
        argument_default=argparse.SUPPRESS)  # absent flags stay absent: --resume can tell what was asked
    a = p.add_argument
    a("--model", choices=(*MODELS, "m2"),
      help=f"vae, a plain autoencoder (ae), a conditional VAE (cvae, with --condition), the deterministic "
           f"quadrant-regressor (with --quadrants), or m2: the semi-supervised VAE of Kingma et al. (2014), with "
           f"--labels; m2 has its own defaults, listed below the flags (default {d.model})")
    a("--condition", choices=CONDITIONS,
      help="with --model cvae: label (q(z|x, y), p(x|z, y), y one-hot) or quadrants (given --quadrants of each digit, "
           "predict the rest; Sohn et al. 2015)")
    a("--classes", type=_positive_int, metavar="C", help="with --condition label: the classes, labels 0..C-1 "
                                                        "(default 10)")
    a("--quadrants", type=_quadrants, metavar="Q",
      help="with --condition quadrants or --model quadrant-regressor: quadrants seen, 1 (bottom left), 2 (left "
           "half) or 3 (all but bottom right)")
    a("--arch", choices=ARCHS, help=f"mlp (dense layers) or conv (the Keras example's convolutional VAE: "
                                    f"--channels and --dense set it) (default {d.arch})")
    a("--channels", type=_positive_int, nargs="+", metavar="C",
      help="conv: channels of the encoder's stride-2 3x3 convolutions; the decoder mirrors them (default 32 64)")
    a("--dense", type=_count, metavar="N", help=f"conv: width of the dense layer before the latent; 0 for none "
                                                f"(default {d.dense})")
    a("--hidden", type=_positive_int, nargs="*", metavar="H",
      help="hidden widths of the encoder, e.g. --hidden 400 or --hidden 200 200; none gives a linear model "
           "(default 400)")
    a("--latent", type=_positive_int, nargs="+", metavar="Z",
      help=f"latent dimensions Z (default {d.latent}); with --stochastic-layers 2, two sizes: Z1 Z2 (z1, z2)")
    a("--stochastic-layers", type=_stochastic_layers, metavar="L",
      help="1 (default), or 2: z1 and z2, the hierarchical VAE of Burda et al. (2015); with --preset iwae-paper it "
           "takes their sizes (--latent 100 50, --hidden2 100 100); without it, give two sizes, --latent Z1 Z2")
    a("--hidden2", type=_positive_int, nargs="+", metavar="H",
      help="with --stochastic-layers 2: hidden widths between z1 and z2 in q(z2|z1) and p(z1|z2) (default 100 100)")
    a("--flow", choices=FLOWS, help="the posterior: none (a diagonal Gaussian, the default), or that Gaussian followed "
      "by a planar flow (Rezende & Mohamed 2015) or an inverse autoregressive flow, iaf (Kingma et al. 2016), of "
      "--flow-steps steps")
    a("--flow-steps", type=_positive_int, metavar="T", help="with --flow: the number of steps T, e.g. 10 planar or 2 iaf")
    a("--flow-hidden", type=_positive_int, metavar="H",
      help=f"with --flow iaf: width of each step's masked hidden layer and of the encoder's context, at least "
           f"--latent minus 1 (default {IAF_HIDDEN})")
    a("--activation", choices=sorted(ACTIVATIONS), help=f"(default {d.activation})")
    a("--likelihood", choices=LIKELIHOODS, help=f"decoder distribution (default {d.likelihood})")
    a("--beta", type=_non_negative_float, help=f"weight of the KL term (default {d.beta:g})")
    a("--obs-var", type=_obs_var, metavar="VAR|learned|optimal",
      help=f"Gaussian likelihood's variance σ_x²: a fixed number (default {d.obs_var:g}), 'learned' (trained "
           f"with the weights, from 1) or 'optimal' (each batch's mean squared error)")
    a("--free-bits", type=_non_negative_float, metavar="LAMBDA",
      help="nats per latent dimension the KL term leaves free: it charges max(LAMBDA, KL_j) for each dimension j "
           "(default 0: the plain KL)")
    a("--init", choices=INITS, help=f"weight initialization (default {d.init})")
    a("--epochs", type=_positive_int, help=f"(default {d.epochs}); with --resume, raise it to train longer")
    a("--batch-size", type=_positive_int, help=f"(default {d.batch_size})")
    a("--lr", type=_positive_float, help=f"learning rate (default {d.lr:g})")
    a("--optimizer", choices=OPTIMIZERS, help=f"adam, or sgd with momentum {SGD_MOMENTUM} (default {d.optimizer})")
    a("--kl-warmup", type=_non_negative_float, metavar="EPOCHS",
      help="epochs over which β grows linearly from 0 (default 0: no warm-up)")
    a("--lr-schedule", choices=LR_SCHEDULES,
      help=f"constant, or iwae-paper: Burda et al.'s stages of 3^i epochs at --lr·10^(−i/7), i = 0..7 (1e-3·10^(−i/7) "
           f"with --preset iwae-paper), {_SCHEDULE_EPOCHS:,} epochs in all; a run with fewer --epochs follows the "
           f"start of that schedule (it is not compressed), a longer one goes on to stage 8 (default {d.lr_schedule})")
    a("--adam-eps", type=_positive_float, help=f"Adam's epsilon (default {d.adam_eps:g})")
    a("--output-bias", choices=OUTPUT_BIASES, help=f"decoder output bias at start (default {d.output_bias})")
    a("--objective", choices=OBJECTIVES,
      help="elbo (the default), or iwae: the importance-weighted bound L_K of Burda et al. with --k samples per "
           "example; --objective iwae --k 1 is the ELBO with its KL term estimated by Monte Carlo from the one "
           "sample instead of in closed form")
    a("--k", type=_positive_int, metavar="K", help="importance samples per example, with --objective iwae (default 1)")
    a("--labels", type=_positive_int, metavar="N",
      help="with --model m2: labelled training examples, drawn class-balanced (N/10 of each digit) from --label-seed; "
           "the other training images are unlabelled (default 100)")
    a("--label-seed", type=_count, metavar="S", help="with --model m2: which labelled subset is drawn (default 0)")
    a("--alpha", type=_non_negative_float, metavar="A",
      help="with --model m2: α_batch, the weight of the classifier's cross-entropy per labelled example of the batch "
           "mean (default 0.1: about the paper's share with equal labelled and unlabelled batches)")
    a("--labelled-batch", type=_positive_int, metavar="N",
      help="with --model m2: labelled examples in each step beside --batch-size unlabelled ones, drawn afresh each "
           "step without replacement from the --labels labelled examples, so at most --labels (default 100, or all of "
           "--labels when fewer)")
    a("--classifier-hidden", type=_positive_int, nargs="+", metavar="H",
      help="with --model m2: hidden widths of the classifier q(y|x) (default 500)")
    a("--preset", choices=sorted(PRESETS),
      help=f"a published configuration; flags given beside it override its values. iwae-paper: Burda et al. "
           f"(2015): 784-200-200-50 tanh, Glorot, dynamic binarization, Adam eps 1e-4, {_PAPER['epochs']:,} epochs on their "
           f"learning-rate schedule (--lr-schedule iwae-paper), output bias at the data mean; with --stochastic-layers "
           f"2: {_TWO['latent']} and {_TWO['latent2']} latent units (--latent {_TWO['latent']} {_TWO['latent2']}, "
           f"--hidden2 {' '.join(map(str, _TWO['hidden2']))}), the paper's two-layer model; add --objective iwae "
           f"--k 5 (or 50) for their IWAE rows")
    a("--binarize", choices=BINARIZE_MODES, help=f"(default {d.binarize}: grey levels)")
    a("--validation", type=_count, metavar="N", help="training examples held out for validation (default 0)")
    a("--data", metavar="DIR", help="folder of MNIST-format IDX files (default: the bundled MNIST)")
    a("--limit-train", type=_count, metavar="N", help="train on the first N training examples only, for a quick "
      "first run, e.g. --limit-train 2000 --limit-test 500 --epochs 1 (default 0: all of them)")
    a("--limit-test", type=_count, metavar="N", help="evaluate on the first N test examples only (default 0: all of them)")
    a("--device", choices=backend.DEVICES, help=f"(default {d.device})")
    a("--seed", type=_count, help=f"seeds the whole run (default {d.seed})")
    a("--out", metavar="DIR", help="run folder (default runs/<date-time>-<model>-z<latent>); never overwritten")
    a("--resume", metavar="RUN", help="continue the run in folder RUN (or checkpoint file RUN)")
    a("--no-progress", action="store_true", help="no progress bar (none is shown when stderr is not a terminal)")
    a("--no-pictures", action="store_true", help="do not draw the run's pictures at the end")
    p.set_defaults(func=train_command)


def _unused_flag(flags, config):
    """A flag typed on the command line that the run's architecture or likelihood would ignore, or None."""
    arch, likelihood = config.get("arch", "mlp"), config.get("likelihood", "bernoulli")
    if arch == "conv" and "hidden" in flags:
        return ("--hidden sets the widths of the mlp architecture; --arch conv ignores it: its sizes are --channels "
                "and --dense. Drop --hidden")
    for flag in ("channels", "dense"):
        if arch != "conv" and flag in flags:
            return f"--{flag} sets the conv architecture; the {arch} architecture ignores it: add --arch conv, or drop it"
    if likelihood != "gaussian" and isinstance(flags.get("obs_var"), float):
        return (f"--obs-var {flags['obs_var']:g} sets the Gaussian likelihood's variance σ_x²; the {likelihood} "
                f"likelihood has none: add --likelihood gaussian, or drop --obs-var")
    return None


def _untyped_latent(given):
    """Two stochastic layers and no --latent (nor a preset's sizes): the error, saying that the one size is
    --latent's default, followed by whatever else is wrong with the flags (checked with a stand-in Z2)."""
    problems = [one_latent_size(TrainConfig.latent, default=True)]
    try:
        TrainConfig(**{**given, "latent2": 1})
    except ConfigError as err:
        problems.append(str(err).removeprefix("invalid training config: "))
    return "invalid training config: " + "; ".join(problems)


def train_command(args):
    if getattr(args, "model", None) == "m2":
        return m2_command(args)
    m2_only = [f"--{k.replace('_', '-')}" for k in M2_ONLY if hasattr(args, k)]
    if m2_only:
        print(f"tinyvae train: error: {' '.join(m2_only)} sets the semi-supervised model: add --model m2, or drop "
              f"{'it' if len(m2_only) == 1 else 'them'}", file=sys.stderr)
        return 2
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in fields}
    if isinstance(given.get("obs_var"), str):  # --obs-var learned / optimal
        given["obs_var_mode"] = given.pop("obs_var")
    if "latent" in given:  # --latent Z, or --latent Z1 Z2 for two stochastic layers
        sizes = given.pop("latent")
        if len(sizes) > 2:
            print(f"tinyvae train: error: --latent takes one size (Z) or two (Z1 Z2, with --stochastic-layers 2), "
                  f"got {len(sizes)}: {' '.join(map(str, sizes))}", file=sys.stderr)
            return 2
        given.update(latent=sizes[0], latent2=sizes[1] if len(sizes) == 2 else 0)
    if given.get("model") == "quadrant-regressor":
        given.setdefault("condition", "quadrants")  # its only condition
    if getattr(args, "preset", None):
        layers = TWO_LAYER_PRESETS.get(args.preset, {}) if given.get("stochastic_layers") == 2 else {}
        given = {**PRESETS[args.preset], **layers, **given}
    if given.get("stochastic_layers") == 2 and "latent" not in given and not getattr(args, "resume", None):
        print(f"tinyvae train: error: {_untyped_latent(given)}", file=sys.stderr)
        return 2
    if "k" in given and given.get("objective", "elbo") != "iwae" and not getattr(args, "resume", None):
        print(f"tinyvae train: error: --k {given['k']} sets the importance samples of --objective iwae; the ELBO "
              f"objective (the default) takes one sample: add --objective iwae, or drop --k", file=sys.stderr)
        return 2
    if "hidden2" in given and given.get("stochastic_layers", 1) != 2 and not getattr(args, "resume", None):
        print(f"tinyvae train: error: --hidden2 {' '.join(map(str, given['hidden2']))} sets the widths between z1 and "
              f"z2, which only two stochastic layers have: add --stochastic-layers 2 (and --latent Z1 Z2), or drop "
              f"--hidden2", file=sys.stderr)
        return 2
    if given.get("flow") == "iaf" and "flow_hidden" not in given and not getattr(args, "resume", None):
        given["flow_hidden"] = IAF_HIDDEN
    unused = None if getattr(args, "resume", None) else _unused_flag(vars(args), given)
    if unused:
        print(f"tinyvae train: error: {unused}", file=sys.stderr)
        return 2
    options = {"progress": not getattr(args, "no_progress", False), "pictures": not getattr(args, "no_pictures", False)}
    try:
        if getattr(args, "resume", None):
            resume(args.resume, expect=given, **options)
        else:
            train(TrainConfig(**given), **options)
    except (ConfigError, RunExistsError) as err:
        print(f"tinyvae train: error: {err}", file=sys.stderr)
        return 2
    except TrainingInterrupted:
        return 130  # the checkpoint is saved and how to resume was printed
    except (TrainingDiverged, CheckpointError, DataError, backend.BackendError, FileNotFoundError) as err:
        print(f"tinyvae train: {err}", file=sys.stderr)
        return 1
    except (UserError, OSError) as err:  # a file the OS refused: which, why, what is intact, how to go on
        print(f"tinyvae train: error: {explain(err)}", file=sys.stderr)
        return 1
    return 0
