"""The training loop: one run's data, model and optimizer, its epochs and steps, and the record of
each epoch.

A run is a pure function of its config. Epoch e visits the examples in the order
``epoch_permutation(n, seed, e)`` and step s of it draws every random number it needs (dynamic
binarization, then ε ~ N(0, I) for the reparameterization of Kingma & Welling 2014, sec. 2.4) from
``np.random.default_rng([seed, e, s])`` on the host. So the same run gives the same numbers on the
CPU and on the GPU up to floating-point rounding, and a run resumed from a checkpoint, even one
written mid-epoch by Ctrl-C, continues bit for bit as if it had never stopped.

Where the run's files go is ``folder.py``; how it stops early is ``stopping.py``.
"""

from __future__ import annotations

import sys
import time
from typing import NamedTuple

import numpy as np

from .. import backend, threads
from ..data import DataError, binarize_static, epoch_permutation, load_dataset, to_float
from ..errors import UserError, explain
from ..evaluation.evaluate import evaluate_elbo
from ..models.parts.iwae import check_memory
from ..models.conditioning import evaluation_call, is_conditional
from ..models.config import LATENT_MODELS
from ..models.parts.conditions import LabelError
from ..models.vae import build_model
from ..prob.continuous_bernoulli import logits_for_mean
from .config import EVAL_BINARIZE_SEED, ConfigError, epoch_lr
from .folder import CHECKPOINT_NAME, CONFIG_NAME, LOSS_TERMS, METRICS_NAME, RunFolder
from .stopping import Stopping, sigint_requests_stop

SGD_MOMENTUM = 0.9
READ_EVERY = 20  # steps between reads of the device (progress bar; the NaN check on a GPU)
EVAL_BATCH = 250  # rows per forward pass when evaluating the test set after each epoch: small enough that


class Run:
    """One training run: its data, model and optimizer, and the loop; ``folder`` and ``stopping`` beside it."""

    def __init__(self, config, dataset, *, progress, log, on_step, pictures):
        self.config, self.log, self.on_step, self.pictures = config, log, on_step, pictures
        self.progress = progress and (sys.stderr.isatty() or "ipykernel" in sys.modules)  # not in CI logs
        self.xp = backend.namespace(config.device)  # fails now, not after loading data, if there is no GPU
        images = load_images(config, dataset)
        self.train_x, self.test_x, self.val_x, self.image_shape = images[:4]
        self.train_y, self.test_y, self.val_y = images.train_y, images.test_y, images.val_y  # (N,) uint8 each
        if config.objective == "iwae":  # refuse a batch whose N·K decoder rows cannot fit, before allocating any
            try:
                check_memory(config.batch_size, config.k, config.model_config(self.train_x.shape[1], self.image_shape),
                             4, self.xp)
            except ValueError as err:
                raise ConfigError(f"--batch-size {config.batch_size} is too large for --k {config.k}: {err}") from err
        self.model = build_model(config.model_config(self.train_x.shape[1], self.image_shape)).to(config.device)
        if getattr(self.model, "needs_labels", False):  # every label a class of the model, before any folder is made
            check_run_labels(self.model, config, images)
        if config.optimizer == "adam":
            from ..nn.optim import Adam  # noqa: PLC0415
            self.optimizer = Adam(self.model, lr=config.lr, eps=config.adam_eps)
        else:
            from ..nn.optim import SGD  # noqa: PLC0415
            self.optimizer = SGD(self.model, lr=config.lr, momentum=SGD_MOMENTUM)
        self.steps_per_epoch = -(-len(self.train_x) // config.batch_size)
        self.folder = RunFolder(config, self.steps_per_epoch)  # its path is set by train() or resume()
        self.stopping = Stopping(self.folder, config)
        self.epoch = self.step = 0  # the step just taken, for on_step
        self._buffers = {}

    @property
    def run_dir(self):
        return self.folder.path

    def request_stop(self):
        """Stop at the next step boundary, after saving a checkpoint (what Ctrl-C does)."""
        self.stopping.request_stop()

    # ---- the loop

    @threads.pins_blas  # BLAS on one thread, tinyvae's own threads on the free cores (threads.py)
    def fit(self, first_epoch, first_step, sums, seconds):
        # NaN and inf are caught and reported by _read (where and which term); numpy's warnings would only
        # repeat that, less precisely.
        with (sigint_requests_stop(self.stopping, self.log),
              np.errstate(over="ignore", invalid="ignore", divide="ignore")):
            for epoch in range(first_epoch, self.config.epochs + 1):
                self.optimizer.lr = epoch_lr(self.config, epoch)
                sums, seconds = self._train_epoch(epoch, first_step, sums, seconds)
                self._end_epoch(epoch, sums, seconds)
                if self.stopping.stop_requested:  # Ctrl-C during the epoch's evaluation: the checkpoint is saved
                    stop = self.stopping.interrupted_after_epoch(epoch)
                    self.log(str(stop))
                    raise stop
                first_step, sums, seconds = 0, [0.0, 0.0, 0.0], 0.0
        if self.pictures:
            # The pictures reload the model from the checkpoint just written and read their own test
            # digits: the training set (47 MB of uint8 for MNIST), the batch buffers and the optimizer's
            # moments are dropped first, so drawing does not add its memory on top of training's.
            self.train_x = self.test_x = self.val_x = None
            self._buffers.clear()
            self.optimizer = None
            write_pictures(self.run_dir, self.log)
        how = (f"import tinyvae, tinyvae.data; " + evaluation_call(self.model.config, f"{self.run_dir}/{CHECKPOINT_NAME}",
                                                                 self.config.binarize)
               if is_conditional(self.model.config) else f"tinyvae evaluate {self.run_dir}")
        self.log(f"done: {self.run_dir}/ holds {CONFIG_NAME}, {METRICS_NAME} and {CHECKPOINT_NAME}; "
                 f"evaluate it with: {how}")
        return self.run_dir

    def _train_epoch(self, epoch, first_step, sums, seconds):
        """Steps ``first_step``.. of ``epoch``; returns the sums of loss/recon/kl × batch size and the time."""
        cfg, model, opt, xp = self.config, self.model, self.optimizer, self.xp
        order = epoch_permutation(len(self.train_x), cfg.seed, epoch)
        mode = "dynamic" if cfg.binarize == "dynamic" else "none"  # static data was binarized at load
        read_every = 1 if reads_are_free(xp) else READ_EVERY
        window = xp.zeros((read_every, len(LOSS_TERMS)), dtype=np.float64)  # per-step values, on the device
        pending = []  # (step, batch size) of the rows of window not yet read
        bar = progress_bar(self.progress, self.steps_per_epoch, epoch, cfg.epochs, first_step)
        start = time.perf_counter()
        for step in range(first_step, self.steps_per_epoch):
            if self.stopping.stop_requested:
                self._read(window, pending, epoch, sums, bar)
                self._interrupt(epoch, step, sums, seconds + time.perf_counter() - start, bar)
            index = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            images, x, eps = batch_buffers(self._buffers, len(index), self.train_x.shape[1], cfg)
            np.take(self.train_x, index, axis=0, out=images)
            rng = np.random.default_rng([cfg.seed, epoch, step])  # all of this step's randomness
            to_float(images, mode, rng, out=x)  # (N, D)
            if eps is not None:
                rng.standard_normal(dtype=np.float32, out=eps)  # (N, Z)
            model.forward(backend.to_device(x, xp), None if eps is None else backend.to_device(eps, xp),
                          beta=self._beta(epoch, step), validate=False, **self._labels(self.train_y, index))
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
            raise self.stopping.diverged(self.model, self.optimizer, epoch, pending, values)
        for (_, n), row in zip(pending, values.tolist()):
            for i, v in enumerate(row):
                sums[i] += v * n
        last_step = pending[-1][0]
        if bar is not None and (last_step + 1 - bar.n >= READ_EVERY or last_step == self.steps_per_epoch - 1):
            seen = min((last_step + 1) * self.config.batch_size, len(self.train_x))
            bar.n = last_step + 1
            terms = (f"  recon {sums[1] / seen:.2f}  KL {sums[2] / seen:.2f}"
                     if self.model.config.model != "quadrant-regressor" else "")  # no latent, no KL
            bar.set_postfix_str(f"loss {sums[0] / seen:.2f}{terms}")
        pending.clear()

    def _labels(self, labels, index=None):
        """``{"labels": ...}`` for a model whose forward reads each example's class (``model.needs_labels``),
        the rows ``index`` of ``labels`` (all when None) on the model's device; ``{}`` for any other model."""
        if not getattr(self.model, "needs_labels", False):
            return {}
        return {"labels": backend.to_device(labels if index is None else labels[index], self.xp)}

    def _beta(self, epoch, step):
        """β at this step: ramps linearly from 0 to beta over kl_warmup epochs, step by step."""
        cfg = self.config
        if cfg.kl_warmup <= 0:
            return cfg.beta
        done = (epoch - 1) + step / self.steps_per_epoch  # epochs completed before this step
        return cfg.beta * min(1.0, done / cfg.kl_warmup)

    # ---- the end of an epoch, a checkpoint, a stop

    def _end_epoch(self, epoch, sums, seconds):
        cfg, n = self.config, len(self.train_x)
        start = time.perf_counter()
        # before the metrics line: no line for an epoch never saved
        self.stopping.check_savable(self.model, self.optimizer, epoch, 0, sums)
        record = {"epoch": epoch, "step": epoch * self.steps_per_epoch}
        record.update({f"train_{k}": s / n for k, s in zip(LOSS_TERMS, sums)})
        for split, x, y in (("test", self.test_x, self.test_y), ("val", self.val_x, self.val_y)):
            if len(x):
                result = evaluate_elbo(self.model, x, binarize="none", seed=eval_seed(cfg.seed, epoch),
                                       batch_size=EVAL_BATCH, **self._labels(y))
                record.update({f"{split}_{k}": float(result[k]) for k in LOSS_TERMS})
        if self.model.obs_var is not None:  # a learned or optimal σ_x², as the model now holds it
            record["obs_var"] = self.model.observation_variance()
        record.update(beta=self._beta(epoch, self.steps_per_epoch - 1), lr=self.optimizer.lr, seconds=seconds,
                      eval_seconds=time.perf_counter() - start)
        self.folder.append_metrics(record)
        self._save(epoch, 0, [0.0, 0.0, 0.0], 0.0)
        self.log(summary(record, cfg.epochs, latent=self.model.config.model != "quadrant-regressor"))

    def _save(self, epoch, step, sums, seconds):
        """Write checkpoint.npz at ``epoch`` epochs done plus ``step`` steps; only finite values."""
        self.stopping.check_savable(self.model, self.optimizer, epoch, step, sums)
        self.folder.save(self.model, self.optimizer, epoch, step, sums, seconds)

    def _interrupt(self, epoch, step, sums, seconds, bar):
        if bar is not None:
            bar.close()
        self._save(epoch - 1, step, sums, seconds)
        stop = self.stopping.interrupted(epoch - 1, step)
        self.log(str(stop))
        raise stop


def batch_buffers(buffers, n, d, config):
    """Host buffers for a batch of n rows of d pixels, kept in ``buffers`` by n: uint8 images, float32
    pixels, float32 ε (None for an AE). ε is (N, Z), or (N, K, Z) for the IWAE objective: K samples
    per example."""
    found = buffers.get(n)
    if found is None:
        z = config.latent + config.latent2  # ε = [ε1 | ε2] for two stochastic layers
        shape = (n, config.k, z) if config.objective == "iwae" else (n, z)
        eps = np.empty(shape, dtype=np.float32) if config.model in LATENT_MODELS else None
        found = buffers[n] = (np.empty((n, d), dtype=np.uint8), np.empty((n, d), dtype=np.float32), eps)
    return found


def progress_bar(show, steps, epoch, epochs, first_step):
    """A tqdm bar over an epoch's steps, or None when not shown."""
    if not show:
        return None
    from tqdm.auto import tqdm  # noqa: PLC0415

    return tqdm(total=steps, initial=first_step, desc=f"epoch {epoch}/{epochs}", unit="step", leave=False,
                dynamic_ncols=True)


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


class Images(NamedTuple):
    """A run's data: uint8 images (N, D) of each split, (rows, cols), and each split's labels (N,) uint8."""

    train_x: np.ndarray
    test_x: np.ndarray
    val_x: np.ndarray
    image_shape: tuple
    train_y: np.ndarray
    test_y: np.ndarray
    val_y: np.ndarray


def load_images(config, dataset):
    """(train, test, validation) uint8 images, subset and binarized as the config says, (rows, cols), and the
    labels of the same examples in the same order (``Images``): a model that reads labels gets them beside
    its images, and any other model ignores them."""
    if dataset is None:
        try:
            dataset = load_dataset(config.data, validation=config.validation, seed=config.seed)
        except DataError:
            raise
        except ValueError as err:  # e.g. more validation examples than training examples
            raise ConfigError(str(err)) from err
    train_x, train_y = dataset.train_x[:config.limit_train or None], dataset.train_y[:config.limit_train or None]
    test_x, val_x = dataset.test_x[:config.limit_test or None], dataset.val_x
    test_y, val_y = dataset.test_y[:config.limit_test or None], dataset.val_y
    if len(train_x) == 0:
        raise ConfigError("there are no training examples")
    if config.binarize == "static":
        train_x = binarize_static(train_x, config.seed)
    if config.binarize != "none":
        test_x = binarize_static(test_x, EVAL_BINARIZE_SEED)
        val_x = binarize_static(val_x, EVAL_BINARIZE_SEED + 1)
    return Images(np.ascontiguousarray(train_x), test_x, val_x, dataset.image_shape, train_y, test_y, val_y)


def check_run_labels(model, config, images):
    """Every label of the run's splits must be one of the model's classes: a LabelError names the split and
    the label that is not, before the run's folder exists."""
    classes = model.config.classes
    for split in ("train", "test", "val"):
        labels = getattr(images, f"{split}_y")
        if len(labels) and int(labels.max()) >= classes:
            where = config.data or "the bundled MNIST"
            raise LabelError(f"the {split} labels of {where} hold the label {int(labels.max())}; the model "
                             f"conditions on {classes} classes and expected labels 0..{classes - 1} (--classes)")


def reads_are_free(xp):
    """Reading a scalar of ``xp`` costs nothing on the CPU; on a GPU it waits for the device."""
    return backend.is_numpy(xp)


def eval_seed(seed, epoch):
    """The seed of the test-set ε after ``epoch``: a pure function of (seed, epoch)."""
    return int(np.random.SeedSequence([seed, epoch, 1]).generate_state(1)[0])


def summary(r, epochs, latent=True):
    """One epoch's line; ``latent=False`` (a model with no latent variable) leaves out the KL and β."""
    def parts(split):
        return f" (recon {r[f'{split}_recon']:.2f}, KL {r[f'{split}_kl']:.2f})" if latent else ""
    line = f"epoch {r['epoch']}/{epochs}  train {r['train_loss']:.2f}{parts('train')}"
    for split in ("test", "val"):
        if f"{split}_loss" in r:
            line += f"  {split} {r[f'{split}_loss']:.2f}{parts(split)}"
    beta = f"  β {r['beta']:.3g}" if latent else ""
    return line + f"{beta}  {r['seconds']:.1f} s (+{r['eval_seconds']:.1f} s eval)"


def write_pictures(run_dir, log):
    try:
        from ..evaluation import plots  # noqa: PLC0415
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
