"""Training a VAE or an autoencoder on MNIST: ``train(config)`` in Python, ``tinyvae train`` in a shell.

The defaults are the PyTorch examples VAE (github.com/pytorch/examples, ``vae/main.py``):
784-400-20 with ReLU, a Bernoulli decoder on grey levels, Adam at 1e-3, batches of 128, 10 epochs.

A run is a pure function of its config. Epoch e visits the examples in the order
``epoch_permutation(n, seed, e)`` and step s of it draws every random number it needs (dynamic
binarization, then ε ~ N(0, I) for the reparameterization of Kingma & Welling 2014, sec. 2.4) from
``np.random.default_rng([seed, e, s])`` on the host. So the same run gives the same numbers on the
CPU and on the GPU up to floating-point rounding, and a run resumed from a checkpoint, even one
written mid-epoch by Ctrl-C, continues bit for bit as if it had never stopped.

A run folder holds ``config.json`` (written once, at the start), ``metrics.jsonl`` (one line per
epoch) and ``checkpoint.npz`` (replaced atomically after every epoch and on Ctrl-C; never written
with non-finite values). Loss values are nats per example: summed over pixels and latent
dimensions, averaged over examples [eq:loss-reduction]. Epochs count from 1 and steps within an epoch
from 0; a checkpoint's (epoch, step) says how many of each are done.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import backend, threads
from .checkpoint import (CheckpointError, atomic_write, from_json_array, json_array, load_arrays,
                         remove_stale_temporaries)
from .checks import field_problems
from .errors import FileError, UserError, explain, file_errors
from .data import BINARIZE_MODES, DataError, binarize_static, epoch_permutation, load_dataset, to_float
from .continuous_bernoulli import logits_for_mean
from .evaluate import evaluate_elbo
from .layers import ACTIVATIONS
from .iwae import OBJECTIVES, check_memory
from .vae import (ARCHS, LIKELIHOODS, MODELS, ModelConfig, architecture_problems, build_model, likelihood_problems,
                  objective_problems)

CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.jsonl"
CHECKPOINT_NAME = "checkpoint.npz"
TRAIN_FORMAT = "tinyvae-train-1"
OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("constant", "iwae-paper")
OUTPUT_BIASES = ("zero", "data-mean")
# Burda, Grosse & Salakhutdinov (2015, sec. 5): 3^i passes at 0.001 · 10^(-i/7), i = 0..7 (3,280 passes),
# Adam β1 0.9, β2 0.999, ε 1e-4; 784-200-200-50 tanh, dynamic binarization, output bias at the data mean.
PRESETS = {
    "iwae-paper": dict(hidden=(200, 200), latent=50, activation="tanh", init="glorot", binarize="dynamic",
                       lr=1e-3, lr_schedule="iwae-paper", adam_eps=1e-4, output_bias="data-mean", epochs=3280),
}
INITS = ("auto", "he", "glorot", "uniform")
SGD_MOMENTUM = 0.9
READ_EVERY = 20  # steps between reads of the device (progress bar; the NaN check on a GPU)
EVAL_BATCH = 250  # rows per forward pass when evaluating the test set after each epoch: small enough that
# the evaluation's activations do not raise the run's peak memory (see the README's Performance section)
# The test (and validation) images of a binarized run get one fixed binarization, the same for
# every run whatever its seed, so that test figures of different runs are comparable.
EVAL_BINARIZE_SEED = 2014
LOSS_TERMS = ("loss", "recon", "kl")


class ConfigError(UserError, ValueError):
    """An impossible training config, or a resume that contradicts the stored one."""


class RunExistsError(UserError, FileExistsError):
    """The output folder already holds a run; tinyvae never overwrites one."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on request (Ctrl-C) after saving a checkpoint; ``.run_dir`` resumes it."""

    def __init__(self, message, run_dir):
        super().__init__(message)
        self.run_dir = run_dir


class TrainingDiverged(UserError, RuntimeError):
    """The loss or the parameters became NaN or inf; the last good checkpoint is left as it was."""


@dataclass
class TrainConfig:
    """Everything a training run depends on; stored in config.json and in every checkpoint."""

    # the model (see vae.ModelConfig)
    model: str = "vae"  # "vae", or "ae" for a plain autoencoder
    hidden: tuple = (400,)  # widths of the encoder's hidden layers (the decoder mirrors them); () is linear
    arch: str = "mlp"  # "mlp" (dense layers), or "conv": the Keras example's convolutional VAE (layers/convnet.py)
    channels: tuple = (32, 64)  # conv: channels of the encoder's stride-2 convolutions (the decoder mirrors them)
    dense: int = 16  # conv: width of the dense layer before (μ, log σ²); 0: none
    latent: int = 20  # Z, latent dimensions
    activation: str = "relu"  # relu, leaky_relu, tanh, sigmoid, softplus
    likelihood: str = "bernoulli"  # decoder: "bernoulli" (binary cross-entropy), "continuous-bernoulli" or "gaussian"
    beta: float = 1.0  # weight of the KL term; 1 trains on the ELBO
    obs_var: float = 1.0  # the Gaussian likelihood's variance σ_x² (the starting value when learned)
    obs_var_mode: str = "fixed"  # σ_x²: "fixed" (obs_var), "learned" (trained), "optimal" (each batch's MSE)
    free_bits: float = 0.0  # λ: nats per latent dimension that the KL term leaves free (0: none)
    init: str = "uniform"  # weights: "uniform" (U(±1/sqrt(fan_in)), as PyTorch's nn.Linear and so the
    # pytorch/examples VAE: 105.5 nats after 10 epochs here), "auto" (ReLU: He, Glorot on the output layer; else
    # Glorot; derivations/dense.md), "he", "glorot"
    # the optimization
    epochs: int = 10  # passes over the training set
    batch_size: int = 128  # examples per step; the last, partial batch of an epoch is kept
    lr: float = 1e-3  # learning rate
    optimizer: str = "adam"  # "adam" (PyTorch defaults) or "sgd" (momentum 0.9)
    kl_warmup: float = 0.0  # epochs over which β grows linearly, step by step, from 0 to beta
    lr_schedule: str = "constant"  # "constant", or "iwae-paper": 3^i epochs at lr·10^(-i/7), i = 0, 1, ...
    adam_eps: float = 1e-8  # Adam's ε (PyTorch's default; the IWAE paper used 1e-4)
    output_bias: str = "zero"  # decoder output bias at start: "zero" or "data-mean" (logit of each pixel's mean)
    objective: str = "elbo"  # "elbo", or "iwae": the importance-weighted bound L_K with k samples (tinyvae/iwae.py);
    # with "iwae", train_loss in the metrics is −L_K (train_recon + train_kl: the k-sample negative ELBO) and the
    # test_* and val_* figures stay the negative ELBO
    k: int = 1  # importance samples per example for objective "iwae" (k = 1: the ELBO, its KL by Monte Carlo)
    # the data
    binarize: str = "none"  # "none" (grey levels), "static" (one sample at load), "dynamic" (fresh per batch)
    validation: int = 0  # training examples held out as a validation set
    data: str | None = None  # folder of MNIST-format IDX files; None is the bundled MNIST
    limit_train: int = 0  # use only the first N training examples (0: all); for quick tests
    limit_test: int = 0  # evaluate on the first N test examples only (0: all)
    # where and how
    device: str = "cpu"  # "cpu" (NumPy) or "gpu" (CuPy)
    seed: int = 0  # initial weights, data order, every ε: the whole run
    out: str | None = None  # run folder; None makes runs/<date-time>-<model>-z<latent>

    def __post_init__(self):
        problems = list(field_problems(self).values())  # each field's type, by its default (new fields too)
        if problems:
            raise ConfigError("invalid training config: " + "; ".join(problems))

        def count(name, low):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                problems.append(f"{name} must be an integer >= {low}, got {value!r}")
            else:
                setattr(self, name, int(value))

        def number(name, ok, what):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not ok(float(value)):
                problems.append(f"{name} must be {what}, got {value!r}")
            else:
                setattr(self, name, float(value))

        for name, choices in (("model", MODELS), ("activation", tuple(sorted(ACTIVATIONS))),
                              ("likelihood", LIKELIHOODS), ("init", INITS), ("optimizer", OPTIMIZERS),
                              ("binarize", BINARIZE_MODES), ("device", backend.DEVICES),
                              ("lr_schedule", LR_SCHEDULES), ("output_bias", OUTPUT_BIASES), ("arch", ARCHS)):
            if getattr(self, name) not in choices:
                problems.append(f"{name} must be one of {choices}, got {getattr(self, name)!r}")
        for name, low in (("latent", 1), ("epochs", 1), ("batch_size", 1), ("validation", 0), ("seed", 0),
                          ("limit_train", 0), ("limit_test", 0)):
            count(name, low)
        try:
            self.hidden = tuple(self.hidden)
        except TypeError:
            self.hidden = (self.hidden,)
        if any(isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1 for h in self.hidden):
            problems.append(f"hidden must be positive integer widths, got {self.hidden!r}")
        else:
            self.hidden = tuple(int(h) for h in self.hidden)
        number("lr", lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
        number("beta", lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")
        number("adam_eps", lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
        number("obs_var", lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
        number("kl_warmup", lambda v: math.isfinite(v) and v >= 0, "a finite number of epochs >= 0")
        problems.extend(objective_problems(self.objective, self.k, self.model, self.beta))
        problems.extend(likelihood_problems(self))
        if self.arch in ARCHS:
            problems.extend(architecture_problems(self))
        if self.arch == "conv" and self.output_bias == "data-mean":
            problems.append("output_bias 'data-mean' sets one bias per pixel, but the conv decoder's last layer has "
                            "one bias per channel; use output_bias 'zero' with arch 'conv'")
        if self.objective == "iwae" and self.kl_warmup:
            problems.append(f"kl_warmup ramps the ELBO's KL weight; the IWAE bound has none, so kl_warmup must be 0 "
                            f"with objective 'iwae', got {self.kl_warmup:g}")
        for name in ("data", "out"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (str, os.PathLike)):
                problems.append(f"{name} must be a folder path or None, got {value!r}")
            elif value is not None:
                setattr(self, name, str(value))
        if problems:
            raise ConfigError("invalid training config: " + "; ".join(problems))

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict):
            raise ConfigError(f"a training config must be a JSON object (field: value), got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown training config fields {unknown}; known: {sorted(known)}")
        return cls(**d)

    def model_config(self, input_dim, image_shape=None):
        """The ModelConfig of this run for images of ``input_dim`` pixels, (rows, cols) = ``image_shape``."""
        try:
            return self._model_config(input_dim, image_shape)
        except ValueError as err:  # e.g. sizes giving an absurd number of parameters: refused before allocating
            raise ConfigError(str(err)) from err

    def _model_config(self, input_dim, image_shape):
        conv = {"channels": self.channels, "dense": self.dense}
        if self.arch == "conv":
            conv["image_shape"] = tuple(image_shape) if image_shape is not None else (1, int(input_dim))
        return ModelConfig(model=self.model, input_dim=int(input_dim), hidden=self.hidden, latent=self.latent,
                           arch=self.arch, **conv,
                           activation=self.activation, likelihood=self.likelihood, obs_var=self.obs_var,
                           obs_var_mode=self.obs_var_mode, free_bits=self.free_bits,
                           beta=self.beta, init=self.init, seed=self.seed, dtype="float32",
                           objective=self.objective, k=self.k)


# --------------------------------------------------------------------------- public entry points


def train(config=None, *, progress=True, log=print, dataset=None, on_step=None, pictures=True):
    """Train a new run of ``config`` (a TrainConfig; None: the defaults). Returns the run folder.

    ``dataset``: a ``data.Dataset`` to train on instead of loading ``config.data``.
    ``on_step(run)``: called after every optimizer step with the running ``_Run``: its ``epoch``,
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
        _refuse_existing_run(Path(config.out))
    run = _new_run(config, dataset, progress=progress, log=log, on_step=on_step, pictures=pictures)
    run.run_dir = _make_run_dir(config)
    _write_run_config(run, fresh=True)
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
    checkpoint = _checkpoint_path(path)
    if checkpoint is None:  # stopped before its first checkpoint: only config.json is there
        return _restart(Path(path), asked, dataset, options)
    remove_stale_temporaries(checkpoint.parent)  # of a writer killed mid-write
    arrays = _read_checkpoint(checkpoint)
    stored = arrays["train_config"]
    _check_config_json(checkpoint, stored, log)
    done, step = int(arrays["epoch"]), int(arrays["step"])
    config = _merge_resume(stored, asked, checkpoint.parent, done + (step > 0))
    if done >= config.epochs:
        log(f"{checkpoint.parent} already holds all {plural(done, 'epoch')}; pass --epochs N (N > {done}) to train longer")
        return checkpoint.parent
    run = _Run(config, dataset, **options)
    run.run_dir = checkpoint.parent
    run.restore(arrays, checkpoint)
    if config.device != stored.device:
        log(f"note: the run moves from {stored.device} to {config.device}; it stays reproducible but will "
            f"not match, bit for bit, a run that never moved")
    _trim_metrics(run.run_dir / METRICS_NAME, done, log)  # checked (and trimmed) before anything is rewritten
    _write_run_config(run, fresh=False)
    log(f"resuming {run.run_dir} {run.position(done, step)}")
    return run.fit(first_epoch=done + 1, first_step=step, sums=[float(v) for v in arrays["sums"]],
                   seconds=float(arrays["seconds"]))


def _new_run(config, dataset, **options):
    """A run at its start: data, model (output bias set) and optimizer; no folder yet."""
    run = _Run(config, dataset, **options)
    init_output_bias(run.model, run.train_x, config.output_bias)
    return run


def _restart(folder, asked, dataset, options):
    """Start again, from the beginning, a run stopped before its first checkpoint (its folder holds
    config.json and no checkpoint.npz): the same config gives the same run, bit for bit."""
    stored = _read_config_json(folder, remedy=f"repair it, or delete the folder {folder} (it holds no trained "
                                              f"weights) and start the run again with tinyvae train --out {folder}")
    if stored is None:
        raise CheckpointError(f"cannot resume: {folder} holds no run (neither {CHECKPOINT_NAME} nor {CONFIG_NAME}); "
                              f"start one there with: tinyvae train --out {folder}")
    config = _merge_resume(stored, asked, folder, 0)
    remove_stale_temporaries(folder)
    run = _new_run(config, dataset, **options)
    run.run_dir = folder
    _trim_metrics(folder / METRICS_NAME, 0, run.log)
    if config != stored:
        _write_run_config(run, fresh=False)
    run.log(f"{folder} holds no checkpoint yet (the run stopped before its first one): starting it again from the "
            f"beginning with its stored config, {plural(config.epochs, 'epoch')}")
    return run.fit(first_epoch=1, first_step=0, sums=[0.0, 0.0, 0.0], seconds=0.0)


# --------------------------------------------------------------------------- the run


class _Run:
    """One training run: its data, model and optimizer, the loop, checkpoints and metrics."""

    def __init__(self, config, dataset, *, progress, log, on_step, pictures):
        self.config, self.log, self.on_step, self.pictures = config, log, on_step, pictures
        self.progress = progress and (sys.stderr.isatty() or "ipykernel" in sys.modules)  # not in CI logs
        self.xp = backend.namespace(config.device)  # fails now, not after loading data, if there is no GPU
        self.train_x, self.test_x, self.val_x, self.image_shape = _load_images(config, dataset)
        if config.objective == "iwae":  # refuse a batch whose N·K decoder rows cannot fit, before allocating any
            try:
                check_memory(config.batch_size, config.k, config.model_config(self.train_x.shape[1], self.image_shape),
                             4, self.xp)
            except ValueError as err:
                raise ConfigError(f"--batch-size {config.batch_size} is too large for --k {config.k}: {err}") from err
        self.model = build_model(config.model_config(self.train_x.shape[1], self.image_shape)).to(config.device)
        if config.optimizer == "adam":
            from .optim import Adam  # noqa: PLC0415
            self.optimizer = Adam(self.model, lr=config.lr, eps=config.adam_eps)
        else:
            from .optim import SGD  # noqa: PLC0415
            self.optimizer = SGD(self.model, lr=config.lr, momentum=SGD_MOMENTUM)
        self.steps_per_epoch = -(-len(self.train_x) // config.batch_size)
        self.run_dir = None
        self.epoch = self.step = 0  # the step just taken, for on_step
        self.stop_requested = False
        self.good_checkpoint = None  # (epoch, step) of the last checkpoint written or read
        self._buffers = {}

    def request_stop(self):
        """Stop at the next step boundary, after saving a checkpoint (what Ctrl-C does)."""
        self.stop_requested = True

    # ---- the loop

    @threads.pins_blas  # BLAS on one thread, tinyvae's own threads on the free cores (threads.py)
    def fit(self, first_epoch, first_step, sums, seconds):
        # NaN and inf are caught and reported by _read (where and which term); numpy's warnings would only
        # repeat that, less precisely.
        with _sigint_requests_stop(self), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for epoch in range(first_epoch, self.config.epochs + 1):
                self.optimizer.lr = epoch_lr(self.config, epoch)
                sums, seconds = self._train_epoch(epoch, first_step, sums, seconds)
                self._end_epoch(epoch, sums, seconds)
                first_step, sums, seconds = 0, [0.0, 0.0, 0.0], 0.0
        if self.pictures:
            # The pictures reload the model from the checkpoint just written and read their own test
            # digits: the training set (47 MB of uint8 for MNIST), the batch buffers and the optimizer's
            # moments are dropped first, so drawing does not add its memory on top of training's.
            self.train_x = self.test_x = self.val_x = None
            self._buffers.clear()
            self.optimizer = None
            _write_pictures(self.run_dir, self.log)
        self.log(f"done: {self.run_dir}/ holds {CONFIG_NAME}, {METRICS_NAME} and {CHECKPOINT_NAME}; "
                 f"evaluate it with: tinyvae evaluate {self.run_dir}")
        return self.run_dir

    def _train_epoch(self, epoch, first_step, sums, seconds):
        """Steps ``first_step``.. of ``epoch``; returns the sums of loss/recon/kl × batch size and the time."""
        cfg, model, opt, xp = self.config, self.model, self.optimizer, self.xp
        order = epoch_permutation(len(self.train_x), cfg.seed, epoch)
        mode = "dynamic" if cfg.binarize == "dynamic" else "none"  # static data was binarized at load
        read_every = 1 if _reads_are_free(xp) else READ_EVERY
        window = xp.zeros((read_every, len(LOSS_TERMS)), dtype=np.float64)  # per-step values, on the device
        pending = []  # (step, batch size) of the rows of window not yet read
        bar = self._progress_bar(epoch, first_step)
        start = time.perf_counter()
        for step in range(first_step, self.steps_per_epoch):
            if self.stop_requested:
                self._read(window, pending, epoch, sums, bar)
                self._interrupt(epoch, step, sums, seconds + time.perf_counter() - start, bar)
            index = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            images, x, eps = self._batch_buffers(len(index))
            np.take(self.train_x, index, axis=0, out=images)
            rng = np.random.default_rng([cfg.seed, epoch, step])  # all of this step's randomness
            to_float(images, mode, rng, out=x)  # (N, D)
            if eps is not None:
                rng.standard_normal(dtype=np.float32, out=eps)  # (N, Z)
            model.forward(backend.to_device(x, xp), None if eps is None else backend.to_device(eps, xp),
                          beta=self._beta(epoch, step), validate=False)
            model.backward()
            opt.step()
            stats = model.stats
            xp.stack([stats["loss"], stats["recon"], stats["kl"]], out=window[len(pending)])
            pending.append((step, len(index)))
            if len(pending) == read_every or step == self.steps_per_epoch - 1:
                self._read(window, pending, epoch, sums, bar)
            if self.on_step is not None:
                self.epoch, self.step = epoch, step
                self.on_step(self)
        backend.synchronize(xp)
        seconds += time.perf_counter() - start
        if bar is not None:
            bar.close()
        return sums, seconds

    def _read(self, window, pending, epoch, sums, bar):
        """Bring the pending per-step values to the host, check them, add them to the epoch's sums."""
        if not pending:
            return
        values = backend.to_numpy(window[:len(pending)])  # on a GPU: the one sync every READ_EVERY steps
        if not np.isfinite(values).all():
            self._diverged(epoch, pending, values)
        for (_, n), row in zip(pending, values.tolist()):
            for i, v in enumerate(row):
                sums[i] += v * n
        last_step = pending[-1][0]
        if bar is not None and (last_step + 1 - bar.n >= READ_EVERY or last_step == self.steps_per_epoch - 1):
            seen = min((last_step + 1) * self.config.batch_size, len(self.train_x))
            bar.n = last_step + 1
            bar.set_postfix_str(f"loss {sums[0] / seen:.2f}  recon {sums[1] / seen:.2f}  KL {sums[2] / seen:.2f}")
        pending.clear()

    def _beta(self, epoch, step):
        """β at this step: ramps linearly from 0 to beta over kl_warmup epochs, step by step."""
        cfg = self.config
        if cfg.kl_warmup <= 0:
            return cfg.beta
        done = (epoch - 1) + step / self.steps_per_epoch  # epochs completed before this step
        return cfg.beta * min(1.0, done / cfg.kl_warmup)

    def _batch_buffers(self, n):
        """Host buffers for a batch of n rows: uint8 images, float32 pixels, float32 ε (None for an AE).

        ε is (N, Z), or (N, K, Z) for the IWAE objective: K samples per example."""
        buffers = self._buffers.get(n)
        if buffers is None:
            d, z = self.train_x.shape[1], self.config.latent
            shape = (n, self.config.k, z) if self.config.objective == "iwae" else (n, z)
            eps = np.empty(shape, dtype=np.float32) if self.config.model == "vae" else None
            buffers = self._buffers[n] = (np.empty((n, d), dtype=np.uint8), np.empty((n, d), dtype=np.float32), eps)
        return buffers

    def _progress_bar(self, epoch, first_step):
        if not self.progress:
            return None
        from tqdm.auto import tqdm  # noqa: PLC0415

        return tqdm(total=self.steps_per_epoch, initial=first_step, desc=f"epoch {epoch}/{self.config.epochs}",
                    unit="step", leave=False, dynamic_ncols=True)

    # ---- the end of an epoch

    def _end_epoch(self, epoch, sums, seconds):
        cfg, n = self.config, len(self.train_x)
        start = time.perf_counter()
        self._check_savable(epoch, 0, sums)  # before the metrics line: no line for an epoch never saved
        record = {"epoch": epoch, "step": epoch * self.steps_per_epoch}
        record.update({f"train_{k}": s / n for k, s in zip(LOSS_TERMS, sums)})
        for split, x in (("test", self.test_x), ("val", self.val_x)):
            if len(x):
                result = evaluate_elbo(self.model, x, binarize="none", seed=_eval_seed(cfg.seed, epoch),
                                       batch_size=EVAL_BATCH)
                record.update({f"{split}_{k}": float(result[k]) for k in LOSS_TERMS})
        if self.model.obs_var is not None:  # a learned or optimal σ_x², as the model now holds it
            record["obs_var"] = self.model.observation_variance()
        record.update(beta=self._beta(epoch, self.steps_per_epoch - 1), lr=self.optimizer.lr, seconds=seconds,
                      eval_seconds=time.perf_counter() - start)
        self._append_metrics(record)
        self._save(epoch, 0, [0.0, 0.0, 0.0], 0.0)
        self.log(_summary(record, cfg.epochs))

    # ---- checkpoints

    def _check_savable(self, epoch, step, sums):
        bad = _nonfinite_parameters(self.model, self.optimizer)
        if bad or not all(math.isfinite(s) for s in sums):
            raise TrainingDiverged(self._divergence_text(self.position(epoch, step), bad))

    def _save(self, epoch, step, sums, seconds):
        """Write checkpoint.npz at ``epoch`` epochs done plus ``step`` steps; only finite values."""
        self._check_savable(epoch, step, sums)
        extra = {"train_format": np.array(TRAIN_FORMAT), "train_config": json_array(self.config.to_dict()),
                 "epoch": np.array(epoch, dtype=np.int64), "step": np.array(step, dtype=np.int64),
                 "sums": np.array(sums, dtype=np.float64), "seconds": np.array(seconds, dtype=np.float64),
                 "tinyvae_version": np.array(_version())}
        extra.update({f"optim.{k}": v for k, v in self.optimizer.state_dict().items()})
        with self._writing(self.run_dir / CHECKPOINT_NAME):
            self.model.save(self.run_dir / CHECKPOINT_NAME, extra=extra)
        self.good_checkpoint = (epoch, step)

    def _append_metrics(self, record):
        """One line in metrics.jsonl; a line that could not be written whole is taken back."""
        path, line = self.run_dir / METRICS_NAME, (json.dumps(record) + "\n").encode("utf-8")
        with self._writing(path), open(path, "ab") as f:
            start = f.tell()
            try:
                f.write(line)
                f.flush()
            except OSError:
                with contextlib.suppress(OSError):
                    f.truncate(start)
                raise

    @contextlib.contextmanager
    def _writing(self, path):
        """OS errors while writing ``path`` become a FileError that says what is intact and how to go on."""
        try:
            with file_errors("write", path):
                yield
        except FileError as err:
            raise FileError(f"{err}. {self._kept()}", err.code, path) from err

    def _kept(self):
        """What survives a failure now, and the command that continues the run."""
        if self.good_checkpoint is None:
            return (f"No checkpoint had been written yet; once that is fixed, start the run again from the beginning "
                    f"with: tinyvae train --resume {self.run_dir}")
        return (f"The last checkpoint, {self.position(*self.good_checkpoint)}, is intact in "
                f"{self.run_dir / CHECKPOINT_NAME}; once that is fixed, resume with: tinyvae train --resume "
                f"{self.run_dir}")

    def position(self, done, step):
        """A point in the run, one unit at a time: 'after epoch 2 of 6', 'after step 3 of 8 in epoch 3 of 6'."""
        if step:
            return f"after step {step} of {self.steps_per_epoch} in epoch {done + 1} of {self.config.epochs}"
        return f"after epoch {done} of {self.config.epochs}" if done else "at the start"

    def restore(self, arrays, path):
        """Load the model and optimizer state of a checkpoint read by ``_read_checkpoint``."""
        self.model.load_weights(path)  # refuses another architecture with a message naming both
        state = {k[len("optim."):]: v for k, v in arrays.items() if k.startswith("optim.")}
        if "t" not in state:
            raise CheckpointError(f"{path}: holds no optimizer state (optim.t)")
        self.optimizer.load_state_dict(state)
        epoch, step = int(arrays["epoch"]), int(arrays["step"])
        if not (0 <= epoch and 0 <= step < self.steps_per_epoch):
            raise CheckpointError(f"{path}: refused, its position ({plural(epoch, 'epoch')} and {plural(step, 'step')} done) is "
                                  f"impossible: an epoch of this run has {self.steps_per_epoch} steps (0 to "
                                  f"{self.steps_per_epoch - 1})")
        self.good_checkpoint = (epoch, step)

    def _interrupt(self, epoch, step, sums, seconds, bar):
        if bar is not None:
            bar.close()
        self._save(epoch - 1, step, sums, seconds)
        message = (f"interrupted: checkpoint saved {self.position(epoch - 1, step)} in "
                   f"{self.run_dir / CHECKPOINT_NAME}\nresume with: tinyvae train --resume {self.run_dir}")
        self.log(message)
        raise TrainingInterrupted(message, self.run_dir)

    # ---- divergence

    def _diverged(self, epoch, pending, values):
        row = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
        step = pending[row][0]
        terms = [f"{name} {values[row, i]}" for i, name in ((1, "reconstruction"), (2, "KL"))
                 if not math.isfinite(values[row, i])] or [f"the total loss {values[row, 0]} (both terms finite)"]
        window = "" if len(pending) == 1 else f" (steps {pending[0][0]}-{pending[-1][0]} were read together)"
        where = f"at epoch {epoch}, step {step}{window}: non-finite " + " and ".join(terms)
        raise TrainingDiverged(self._divergence_text(where, _nonfinite_parameters(self.model, self.optimizer)))

    def _divergence_text(self, where, bad):
        params = ("; non-finite parameters: " + ", ".join(bad)) if bad else "; every parameter is still finite"
        if self.good_checkpoint is None:
            kept = "no checkpoint had been written yet"
        else:
            kept = (f"the last good checkpoint, {self.position(*self.good_checkpoint)}, is intact at "
                    f"{self.run_dir / CHECKPOINT_NAME}")
        return (f"training diverged {where}{params}. Nothing was saved; {kept}. "
                f"Try a smaller --lr (now {self.config.lr:g}) or --kl-warmup.")


# --------------------------------------------------------------------------- helpers


def epoch_lr(config, epoch):
    """The learning rate of ``epoch`` (from 1): constant, or the IWAE paper's schedule, in which
    stage i = 0, 1, ... lasts 3^i epochs at lr · 10^(-i/7) (the last stage lasts as long as needed)."""
    if config.lr_schedule == "constant":
        return config.lr
    i, end = 0, 1
    while epoch > end:
        i += 1
        end += 3 ** i
    return config.lr * 10.0 ** (-i / 7)


def init_output_bias(model, train_x, how):
    """Set the decoder's output bias so that the untrained decoder already predicts the average digit:
    each pixel's mean p over the training images (clipped to [0.001, 0.999]) as a Gaussian mean, its
    logit for the Bernoulli, and for the continuous Bernoulli the logit whose mean (not σ) is p."""
    if how == "zero":
        return
    mean = np.zeros(train_x.shape[1], dtype=np.float64)
    for start in range(0, len(train_x), 10_000):  # uint8 rows to float a piece at a time
        mean += train_x[start:start + 10_000].sum(axis=0, dtype=np.float64)
    p = np.clip(mean / (255.0 * len(train_x)), 1e-3, 1 - 1e-3)  # uint8 images: 255 is a pixel of 1
    bias = model.decoder.layers[-1].params["b"]
    likelihood = model.config.likelihood
    value = p if likelihood == "gaussian" else logits_for_mean(p) if likelihood == "continuous-bernoulli" \
        else np.log(p / (1 - p))
    bias[...] = backend.to_device(value.astype(model.dtype), model.xp)


def _load_images(config, dataset):
    """(train, test, validation) uint8 images, subset and binarized as the config says, and (rows, cols)."""
    if dataset is None:
        try:
            dataset = load_dataset(config.data, validation=config.validation, seed=config.seed)
        except DataError:
            raise
        except ValueError as err:  # e.g. more validation examples than training examples
            raise ConfigError(str(err)) from err
    train_x = dataset.train_x[:config.limit_train or None]
    test_x, val_x = dataset.test_x[:config.limit_test or None], dataset.val_x
    if len(train_x) == 0:
        raise ConfigError("there are no training examples")
    if config.binarize == "static":
        train_x = binarize_static(train_x, config.seed)
    if config.binarize != "none":
        test_x = binarize_static(test_x, EVAL_BINARIZE_SEED)
        val_x = binarize_static(val_x, EVAL_BINARIZE_SEED + 1)
    return np.ascontiguousarray(train_x), test_x, val_x, dataset.image_shape


def _reads_are_free(xp):
    """Reading a scalar of ``xp`` costs nothing on the CPU; on a GPU it waits for the device."""
    return backend.is_numpy(xp)


def _eval_seed(seed, epoch):
    """The seed of the test-set ε after ``epoch``: a pure function of (seed, epoch)."""
    return int(np.random.SeedSequence([seed, epoch, 1]).generate_state(1)[0])


def _nonfinite_parameters(model, optimizer):
    """Names (with counts) of parameters or optimizer buffers holding NaN or inf; [] when all are finite."""
    xp = model.xp
    if bool(xp.isfinite(model.theta).all()) and all(
            bool(xp.isfinite(buf).all()) for bufs in optimizer.state.values() for buf in bufs):
        return []
    bad = []
    for name, value in model.params.items():
        count = int((~xp.isfinite(value)).sum())
        if count:
            bad.append(f"{name} ({count} of {value.size})")
    for state, bufs in optimizer.state.items():
        for buf in bufs:
            count = int((~xp.isfinite(buf)).sum())
            if count:
                bad.append(f"optimizer {state} ({count} of {buf.size})")
    return bad


def plural(n, noun):
    """'1 epoch', '2 epochs', '0 steps': a count with its noun, for every message that prints one."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _summary(r, epochs):
    line = (f"epoch {r['epoch']}/{epochs}  train {r['train_loss']:.2f} (recon {r['train_recon']:.2f}, "
            f"KL {r['train_kl']:.2f})")
    for split in ("test", "val"):
        if f"{split}_loss" in r:
            line += f"  {split} {r[f'{split}_loss']:.2f} (recon {r[f'{split}_recon']:.2f}, KL {r[f'{split}_kl']:.2f})"
    return line + f"  β {r['beta']:.3g}  {r['seconds']:.1f} s (+{r['eval_seconds']:.1f} s eval)"


def _version():
    from . import __version__  # noqa: PLC0415

    return __version__


def _device_name(xp):
    if backend.is_numpy(xp):
        return f"cpu ({os.cpu_count()} cores)"
    try:
        name = xp.cuda.runtime.getDeviceProperties(xp.cuda.Device().id)["name"]
        return f"gpu ({name.decode() if isinstance(name, bytes) else name})"
    except Exception:  # a stand-in namespace, or a driver that will not say
        return "gpu"


def _refuse_existing_run(folder):
    """--out must name a new or empty folder, or one with no run files in it (a run is never overwritten)."""
    with file_errors("use the run folder", folder, "nothing was written"):
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"--out {folder}: is a file, not a folder; name a new or empty folder for the run")
        has = {name: (folder / name).exists() for name in (CONFIG_NAME, CHECKPOINT_NAME, METRICS_NAME)}
    if has[CHECKPOINT_NAME]:
        raise RunExistsError(f"{folder} already holds a run; continue it with --resume {folder}, "
                             f"or choose another --out folder (a run is never overwritten)")
    if has[CONFIG_NAME]:
        raise RunExistsError(f"{folder} holds a run that stopped before its first checkpoint ({CONFIG_NAME}, no "
                             f"{CHECKPOINT_NAME}); start it again from the beginning, with its stored config, with: "
                             f"tinyvae train --resume {folder}; or choose another --out folder")
    if has[METRICS_NAME]:
        raise RunExistsError(f"{folder} holds a {METRICS_NAME} but no {CONFIG_NAME}: the metrics of another run, "
                             f"which tinyvae will not append to; choose another --out folder")


def _make_run_dir(config):
    if config.out is not None:
        folder = Path(config.out)
        _refuse_existing_run(folder)
        with file_errors("create the run folder", folder, "Nothing was written; choose another --out folder"):
            folder.mkdir(parents=True, exist_ok=True)
        return folder
    base = Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{config.model}-z{config.latent}"
    with file_errors("create the run folder", base.parent, "Nothing was written; pass --out DIR to choose a folder"):
        base.parent.mkdir(parents=True, exist_ok=True)
    for i in range(1, 10_000):
        folder = base if i == 1 else base.with_name(f"{base.name}-{i}")
        try:
            with file_errors("create the run folder", folder, "Nothing was written; pass --out DIR"):
                folder.mkdir()
            return folder
        except FileError as err:
            if err.code != errno.EEXIST:
                raise
    raise RunExistsError(f"could not find a free run folder next to {base}")


def _write_run_config(run, fresh):
    """config.json: the training config (flat), the model config, versions and the device."""
    doc = run.config.to_dict()
    doc.update(model_config=run.model.config.to_dict(), tinyvae_version=_version(), numpy_version=np.__version__,
               python_version=sys.version.split()[0], device_name=_device_name(run.xp),
               test_binarize_seed=EVAL_BINARIZE_SEED if run.config.binarize != "none" else None,
               train_examples=len(run.train_x), test_examples=len(run.test_x), val_examples=len(run.val_x))
    path = run.run_dir / CONFIG_NAME
    data = (json.dumps(doc, indent=2) + "\n").encode("utf-8")
    try:  # a fresh run never replaces a config.json, even one written by a run started at the same moment
        atomic_write(path, lambda f: f.write(data), exclusive=fresh,
                     after="Nothing was trained yet" if fresh else run._kept())
    except FileExistsError:
        raise RunExistsError(f"{run.run_dir} already holds a run: another training wrote its {CONFIG_NAME} there "
                             f"first; this one stopped without writing anything; choose another --out folder") from None


def _trim_metrics(path, epochs_done, log=print):
    """Drop lines of epochs after the checkpoint (written just before a crash), so none repeats.

    A last line cut short (the disk filled, or the process died, while it was written) is dropped
    too; any other line that is not a JSON object is reported, and the file is left as it is."""
    with file_errors("read", path):
        if not path.exists():
            return
        text = path.read_text(encoding="utf-8", errors="replace")
    lines, keep = text.splitlines(keepends=True), []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines) and not line.endswith("\n"):
                log(f"note: dropped the last line of {path}, cut short by the stop: {line[:40]!r}")
                continue
            raise ConfigError(f"{path} line {number} is not JSON ({err}): it was edited or damaged; tinyvae will not "
                              f"rewrite it: repair it, or move it aside, and resume again") from err
        if not isinstance(record, dict) or not isinstance(record.get("epoch", 0), int):
            raise ConfigError(f"{path} line {number}: expected a JSON object with an integer 'epoch', got "
                              f"{line.strip()[:60]}; repair it, or move the file aside, and resume again")
        if record.get("epoch", 0) <= epochs_done:
            keep.append(line)
    if len(keep) != len(lines):
        dropped = sum(1 for line in lines if line.strip()) - len(keep)
        if dropped:
            log(f"note: {path}: dropped {dropped} line(s) of epochs after the checkpoint (written before the stop)")
        atomic_write(path, lambda f: f.write("".join(keep).encode("utf-8")))


def _checkpoint_path(path):
    """The checkpoint file to resume from; None for a run folder that holds none (yet)."""
    path = Path(path)
    with file_errors("read", path):
        if path.is_dir():
            checkpoint = path / CHECKPOINT_NAME
            if checkpoint.exists() and not checkpoint.is_file():
                raise CheckpointError(f"cannot resume: {checkpoint} is not a regular file; expected the run's "
                                      f"checkpoint")
            return checkpoint if checkpoint.exists() else None
        if not path.exists():
            raise CheckpointError(f"cannot resume: {path}: no such file or folder; expected a run folder (or its "
                                  f"{CHECKPOINT_NAME}); start a new run with: tinyvae train --out {path}")
    return path


def _read_config_json(folder, remedy):
    """The TrainConfig stored in ``folder/config.json``; None when there is none; refused when unreadable."""
    path = Path(folder) / CONFIG_NAME
    with file_errors("read", path):
        if not path.exists():
            return None
        text = path.read_text(encoding="utf-8", errors="replace")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path} is not valid JSON ({err}): it was edited or damaged, and tinyvae will not "
                          f"overwrite it; {remedy}") from err
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    try:
        if not isinstance(doc, dict):
            raise ConfigError(f"expected a JSON object, got {type(doc).__name__}")
        return TrainConfig.from_dict({k: v for k, v in doc.items() if k in fields})
    except ConfigError as err:
        raise ConfigError(f"{path} does not hold a valid training config ({err}): it was edited or damaged, and "
                          f"tinyvae will not overwrite it; {remedy}") from err


def _check_config_json(checkpoint, stored, log):
    """config.json must agree with the checkpoint's config (but for epochs and device, which a resume may change)."""
    path = checkpoint.parent / CONFIG_NAME
    aside = f"mv {path} {path}.edited"
    on_disk = _read_config_json(checkpoint.parent, remedy=f"undo the change, or move it aside ({aside}) and resume "
                                                          f"again to have it rewritten from {checkpoint}")
    if on_disk is None:
        log(f"note: {path} is missing; it is written again from the config stored in {checkpoint}")
        return
    a, b = on_disk.to_dict(), stored.to_dict()
    diff = [f"{k}: config.json {a[k]!r}, checkpoint {b[k]!r}" for k in b if k not in ("epochs", "device", "out")
            and a[k] != b[k]]
    if diff:
        raise ConfigError(f"{path} disagrees with the config stored in {checkpoint} ({'; '.join(diff)}): it was "
                          f"edited after the run started. The run trained with the checkpoint's config, and tinyvae "
                          f"will not overwrite your edit: undo it, or move the file aside ({aside}) to have it "
                          f"rewritten; to train with other settings, start a new run")


def _read_checkpoint(checkpoint):
    """The arrays of a training checkpoint, with ``train_config`` parsed; clear errors otherwise."""
    arrays = load_arrays(checkpoint, texts=("format", "config", "train_format", "train_config"),
                         counters=("epoch", "step"), floats=("theta", "sums", "seconds"))
    if str(arrays["train_format"]) != TRAIN_FORMAT:
        raise CheckpointError(f"{checkpoint}: training format {str(arrays['train_format'])!r} is not {TRAIN_FORMAT!r}")
    try:  # both configs, the model's sizes included, are checked before anything is allocated
        arrays["train_config"] = TrainConfig.from_dict(from_json_array(arrays["train_config"], checkpoint))
        model_config = from_json_array(arrays["config"], checkpoint)
        arrays["train_config"].model_config(model_config.get("input_dim", 784), model_config.get("image_shape"))
    except ConfigError as err:
        problem = str(err).removeprefix("invalid training config: ").removeprefix("invalid model config: ")
        raise CheckpointError(f"{checkpoint}: its stored training config is unusable: {problem}") from err
    for name, shape in (("sums", (len(LOSS_TERMS),)), ("seconds", ())):
        if arrays[name].shape != shape:
            raise CheckpointError(f"{checkpoint}: '{name}' must have shape {shape}, got {arrays[name].shape}")
    return arrays


def _merge_resume(stored, asked, folder, current_epoch):
    """The stored config with the changes a resume may make (epochs, device); refuses any other."""
    if asked.get("out") is not None and Path(asked["out"]).resolve() != Path(folder).resolve():
        raise ConfigError(f"--out cannot change on resume: the run continues in {folder}")
    asked = {k: v for k, v in asked.items() if k != "out"}
    merged = TrainConfig.from_dict({**stored.to_dict(), **asked})
    conflicts = [f"{k}: stored {getattr(stored, k)!r}, asked {getattr(merged, k)!r}" for k in asked
                 if k not in ("epochs", "device") and getattr(merged, k) != getattr(stored, k)]
    if conflicts:
        raise ConfigError(f"cannot resume {folder} with a different config ({'; '.join(conflicts)}); "
                          f"drop those flags to continue the run as it was, or start a new run")
    if merged.epochs < current_epoch:
        raise ConfigError(f"--epochs {merged.epochs} is fewer than the {plural(current_epoch, 'epoch')} this run has "
                          f"already begun")
    return merged


def _write_pictures(run_dir, log):
    try:
        from . import plots  # noqa: PLC0415
        write = plots.write_run_pictures
    except (ImportError, AttributeError):
        log("note: tinyvae.plots is not available; no pictures written")
        return
    try:
        written = write(run_dir)
    except (UserError, OSError, ValueError) as err:  # the run itself is complete and saved
        log(f"note: the run is complete and saved, but its pictures could not be drawn ({explain(err)}); draw "
            f"them later with: tinyvae plot {run_dir}")
        return
    if written:
        log("pictures: " + ", ".join(str(p) for p in written))


class _sigint_requests_stop:
    """While training, Ctrl-C asks for a stop at the next step boundary; a second Ctrl-C stops at once."""

    def __init__(self, run):
        self.run, self.installed, self.previous = run, False, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # only there can Python set handlers
            self.previous = signal.signal(signal.SIGINT, self._handle)
            self.installed = True

    def _handle(self, signum, frame):
        if self.run.stop_requested:
            raise KeyboardInterrupt
        self.run.request_stop()

    def __exit__(self, *exc):
        if self.installed:
            signal.signal(signal.SIGINT, signal.SIG_DFL if self.previous is None else self.previous)


# --------------------------------------------------------------------------- the command line


def _positive_int(text):
    return _typed(text, int, lambda v: v >= 1, "an integer >= 1")


def _count(text):
    return _typed(text, int, lambda v: v >= 0, "an integer >= 0")


def _obs_var(text):
    if text in ("learned", "optimal"):
        return text
    return _typed(text, float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0, 'learned' or 'optimal'")


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


def add_parser(subparsers):
    d = TrainConfig()
    p = subparsers.add_parser(
        "train", help="train a VAE (or an autoencoder) on MNIST",
        description="Train a VAE or an autoencoder. With no flags: the PyTorch examples VAE (784-400-20, ReLU, "
                    "Bernoulli decoder on grey levels, Adam 1e-3, batch 128, 10 epochs) on the bundled MNIST.",
        argument_default=argparse.SUPPRESS)  # absent flags stay absent: --resume can tell what was asked
    a = p.add_argument
    a("--model", choices=MODELS, help=f"vae or a plain autoencoder (default {d.model})")
    a("--arch", choices=ARCHS, help=f"mlp (dense layers) or conv (the Keras example's convolutional VAE: "
                                    f"--channels and --dense set it) (default {d.arch})")
    a("--channels", type=_positive_int, nargs="+", metavar="C",
      help="conv: channels of the encoder's stride-2 3x3 convolutions; the decoder mirrors them (default 32 64)")
    a("--dense", type=_count, metavar="N", help=f"conv: width of the dense layer before the latent; 0 for none "
                                                f"(default {d.dense})")
    a("--hidden", type=_positive_int, nargs="*", metavar="H",
      help="hidden widths of the encoder, e.g. --hidden 400 or --hidden 200 200; none gives a linear model "
           "(default 400)")
    a("--latent", type=_positive_int, help=f"latent dimensions Z (default {d.latent})")
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
    a("--lr-schedule", choices=LR_SCHEDULES, help=f"(default {d.lr_schedule})")
    a("--adam-eps", type=_positive_float, help=f"Adam's epsilon (default {d.adam_eps:g})")
    a("--output-bias", choices=OUTPUT_BIASES, help=f"decoder output bias at start (default {d.output_bias})")
    a("--objective", choices=OBJECTIVES,
      help="elbo (the default), or iwae: the importance-weighted bound L_K of Burda et al. with --k samples per "
           "example; --objective iwae --k 1 is the ELBO with its KL term estimated by Monte Carlo from the one "
           "sample instead of in closed form")
    a("--k", type=_positive_int, metavar="K", help="importance samples per example, with --objective iwae (default 1)")
    a("--preset", choices=sorted(PRESETS),
      help="a published configuration; flags given beside it override its values. iwae-paper: Burda et al. "
           "(2015): 784-200-200-50 tanh, Glorot, dynamic binarization, Adam eps 1e-4, 3,280 epochs on their "
           "learning-rate schedule, output bias at the data mean; add --objective iwae --k 5 (or 50) for their "
           "IWAE rows")
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


def train_command(args):
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in fields}
    if isinstance(given.get("obs_var"), str):  # --obs-var learned / optimal
        given["obs_var_mode"] = given.pop("obs_var")
    if getattr(args, "preset", None):
        given = {**PRESETS[args.preset], **given}
    if "k" in given and given.get("objective", "elbo") != "iwae" and not getattr(args, "resume", None):
        print(f"tinyvae train: error: --k {given['k']} sets the importance samples of --objective iwae; the ELBO "
              f"objective (the default) takes one sample: add --objective iwae, or drop --k", file=sys.stderr)
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
