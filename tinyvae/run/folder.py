"""The run folder: ``config.json`` (written once, at the start), ``metrics.jsonl`` (one line per
epoch) and ``checkpoint.npz`` (replaced atomically after every epoch and on a stop; never written
with non-finite values); making one, reading one back to resume, and what survives a failure.

A checkpoint holds the model's arrays (``tinyvae-model-1``) and the training state
(``tinyvae-train-1``): the training config, the position (epochs and steps done), the loss sums of
the epoch so far, its seconds, and the optimizer's state as ``optim.*``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import sys
import time
import types
from pathlib import Path

import numpy as np

from .. import backend
from ..checkpoint import CHECKPOINT_NAME, CheckpointError, atomic_write, from_json_array, json_array, load_arrays
from ..errors import FileError, UserError, file_errors
from ..models import conditioning
from .config import EVAL_BINARIZE_SEED, ConfigError, TrainConfig

CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.jsonl"
TRAIN_FORMAT = "tinyvae-train-1"
LOSS_TERMS = ("loss", "recon", "kl")  # the sums a checkpoint keeps of the epoch so far


class RunExistsError(UserError, FileExistsError):
    """The output folder already holds a run; tinyvae never overwrites one."""


class RunFolder:
    """One run's folder: where its files are, the last good checkpoint, and writing them safely."""

    def __init__(self, config, steps_per_epoch, path=None):
        self.config, self.steps_per_epoch, self.path = config, steps_per_epoch, path
        self.good_checkpoint = None  # (epoch, step) of the last checkpoint written or read

    @property
    def checkpoint(self):
        return self.path / CHECKPOINT_NAME

    def position(self, done, step):
        """A point in the run, one unit at a time: 'after epoch 2 of 6', 'after step 3 of 8 in epoch 3 of 6'."""
        if step:
            return f"after step {step} of {self.steps_per_epoch} in epoch {done + 1} of {self.config.epochs}"
        return f"after epoch {done} of {self.config.epochs}" if done else "at the start"

    def kept(self):
        """What survives a failure now, and the command that continues the run."""
        if self.good_checkpoint is None:
            return (f"No checkpoint had been written yet; once that is fixed, start the run again from the beginning "
                    f"with: tinyvae train --resume {self.path}")
        return (f"The last checkpoint, {self.position(*self.good_checkpoint)}, is intact in "
                f"{self.checkpoint}; once that is fixed, resume with: tinyvae train --resume "
                f"{self.path}")

    @contextlib.contextmanager
    def writing(self, path):
        """OS errors while writing ``path`` become a FileError that says what is intact and how to go on."""
        try:
            with file_errors("write", path):
                yield
        except FileError as err:
            raise FileError(f"{err}. {self.kept()}", err.code, path) from err

    def append_metrics(self, record):
        """One line in metrics.jsonl; a line that could not be written whole is taken back."""
        path, line = self.path / METRICS_NAME, (json.dumps(record) + "\n").encode("utf-8")
        with self.writing(path), open(path, "ab") as f:
            start = f.tell()
            try:
                f.write(line)
                f.flush()
            except OSError:
                with contextlib.suppress(OSError):
                    f.truncate(start)
                raise

    def save(self, model, optimizer, epoch, step, sums, seconds):
        """Write checkpoint.npz at ``epoch`` epochs done plus ``step`` steps (the caller checked the values are finite)."""
        extra = {"train_format": np.array(TRAIN_FORMAT), "train_config": json_array(self.config.to_dict()),
                 "epoch": np.array(epoch, dtype=np.int64), "step": np.array(step, dtype=np.int64),
                 "sums": np.array(sums, dtype=np.float64), "seconds": np.array(seconds, dtype=np.float64),
                 "tinyvae_version": np.array(version())}
        extra.update({f"optim.{k}": v for k, v in optimizer.state_dict().items()})
        with self.writing(self.checkpoint):
            model.save(self.checkpoint, extra=extra)
        self.good_checkpoint = (epoch, step)

    def restore(self, model, optimizer, arrays, path):
        """Load the model and optimizer state of a checkpoint read by ``read_checkpoint``."""
        model.load_weights(path)  # refuses another architecture with a message naming both
        state = {k[len("optim."):]: v for k, v in arrays.items() if k.startswith("optim.")}
        if "t" not in state:
            raise CheckpointError(f"{path}: holds no optimizer state (optim.t)")
        optimizer.load_state_dict(state)
        epoch, step = int(arrays["epoch"]), int(arrays["step"])
        if not (0 <= epoch and 0 <= step < self.steps_per_epoch):
            raise CheckpointError(f"{path}: refused, its position ({plural(epoch, 'epoch')} and {plural(step, 'step')} done) is "
                                  f"impossible: an epoch of this run has {self.steps_per_epoch} steps (0 to "
                                  f"{self.steps_per_epoch - 1})")
        self.good_checkpoint = (epoch, step)


def plural(n, noun):
    """'1 epoch', '2 epochs', '0 steps': a count with its noun, for every message that prints one."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def version():
    from .. import __version__  # noqa: PLC0415

    return __version__


def device_name(xp):
    if backend.is_numpy(xp):
        return f"cpu ({os.cpu_count()} cores)"
    try:
        name = xp.cuda.runtime.getDeviceProperties(xp.cuda.Device().id)["name"]
        return f"gpu ({name.decode() if isinstance(name, bytes) else name})"
    except Exception:  # a stand-in namespace, or a driver that will not say
        return "gpu"


def refuse_existing_run(folder):
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


def make_run_dir(config):
    if config.out is not None:
        folder = Path(config.out)
        refuse_existing_run(folder)
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


def write_run_config(run, fresh):
    """config.json: the training config (flat), the model config, versions and the device."""
    doc = run.config.to_dict()
    doc.update(model_config=run.model.config.to_dict(), tinyvae_version=version(), numpy_version=np.__version__,
               python_version=sys.version.split()[0], device_name=device_name(run.xp),
               test_binarize_seed=EVAL_BINARIZE_SEED if run.config.binarize != "none" else None,
               train_examples=len(run.train_x), test_examples=len(run.test_x), val_examples=len(run.val_x))
    path = run.folder.path / CONFIG_NAME
    data = (json.dumps(doc, indent=2) + "\n").encode("utf-8")
    try:  # a fresh run never replaces a config.json, even one written by a run started at the same moment
        atomic_write(path, lambda f: f.write(data), exclusive=fresh,
                     after="Nothing was trained yet" if fresh else run.folder.kept())
    except FileExistsError:
        raise RunExistsError(f"{run.folder.path} already holds a run: another training wrote its {CONFIG_NAME} there "
                             f"first; this one stopped without writing anything; choose another --out folder") from None


def trim_metrics(path, epochs_done, log=print):
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


def checkpoint_path(path):
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


def refuse_lost_checkpoint(folder):
    """A folder whose metrics.jsonl records epochs after the first but holds no checkpoint lost its checkpoint:
    starting again would overwrite the record of those epochs. Epoch 1's line alone is what a stop between
    that line and the first checkpoint leaves; starting again writes the same line (same config, same seed)."""
    path = folder / METRICS_NAME
    with file_errors("read", path):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines() if path.is_file() else []
    epochs = []
    for line in lines:
        with contextlib.suppress(json.JSONDecodeError):
            record = json.loads(line)
            if isinstance(record, dict) and isinstance(record.get("epoch"), int):
                epochs.append(record["epoch"])
    if max(epochs, default=1) > 1:
        raise CheckpointError(
            f"cannot resume {folder}: {path} records {plural(len(epochs), 'finished epoch')} "
            f"(the last, epoch {max(epochs)}), but {folder / CHECKPOINT_NAME} is missing, so the trained weights are "
            f"gone. Nothing was changed. Put the checkpoint back and resume again, or start a new run in another "
            f"folder: tinyvae train --out NEW_FOLDER")


def read_config_json(folder, remedy):
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


def check_config_json(checkpoint, stored, log):
    """config.json must agree with the checkpoint's config (but for epochs and device, which a resume may change)."""
    path = checkpoint.parent / CONFIG_NAME
    aside = f"mv {path} {path}.edited"
    on_disk = read_config_json(checkpoint.parent, remedy=f"undo the change, or move it aside ({aside}) and resume "
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


def read_checkpoint(checkpoint):
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


FLAGS = {"obs_var_mode": "--obs-var", "latent2": "--latent"}  # fields set by another field's flag


def _flag(key):
    """The command-line flag that sets the training config field ``key``: ``--stochastic-layers``."""
    return FLAGS.get(key, "--" + key.replace("_", "-"))


def _shown(config, key):
    """A stored or asked value as the user would type it after its flag: ``--latent 100 50`` gives
    '100 50', ``--hidden2 8`` '8'; an unset condition field reads 'none'."""
    if key in ("latent", "latent2"):  # one flag, --latent Z or --latent Z1 Z2
        return " ".join(str(v) for v in (config.latent, config.latent2) if v)
    if key in ("obs_var", "obs_var_mode"):  # one flag, --obs-var VAR|learned|optimal
        return f"{config.obs_var:g}" if config.obs_var_mode == "fixed" else config.obs_var_mode
    value = getattr(config, key)
    if key == "data" and value is None:
        return "none (the bundled MNIST)"
    if key in ("condition", "quadrants") and value == conditioning.DEFAULTS[key]:
        return "none"
    if isinstance(value, (tuple, list)):
        return " ".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else str(value)


def _conflicts(stored, merged, asked):
    """'--flag: stored VALUE, asked VALUE' for each flag of ``asked`` that changes the stored config
    (but epochs and device, which a resume may change), each flag once."""
    flags = {}
    for key in asked:
        if key not in ("epochs", "device") and getattr(merged, key) != getattr(stored, key):
            flags.setdefault(_flag(key), key)
    return [f"{flag}: stored {_shown(stored, key)}, asked {_shown(merged, key)}" for flag, key in flags.items()]


def merge_resume(stored, asked, folder, current_epoch):
    """The stored config with the changes a resume may make (epochs, device); refuses any other."""
    if asked.get("out") is not None and Path(asked["out"]).resolve() != Path(folder).resolve():
        raise ConfigError(f"--out cannot change on resume: the run continues in {folder}")
    asked = {k: v for k, v in asked.items() if k != "out"}
    invalid = None
    try:
        merged = TrainConfig.from_dict({**stored.to_dict(), **asked})
    except ConfigError as err:  # a change no config allows (--objective elbo for an IWAE run with k = 2)
        merged, invalid = types.SimpleNamespace(**{**vars(stored), **asked}), err
    conflicts = _conflicts(stored, merged, asked)
    if conflicts:  # named before what is invalid about the mixture: the change is the mistake
        raise ConfigError(f"cannot resume {folder} with a different config ({'; '.join(conflicts)}); "
                          f"drop those flags to continue the run as it was, or start a new run")
    if invalid is not None:
        raise invalid
    if merged.epochs < current_epoch:
        raise ConfigError(f"--epochs {merged.epochs} is fewer than the {plural(current_epoch, 'epoch')} this run has "
                          f"already begun")
    return merged
