"""Fault injection (issue 11): every bad input and every fault gets a clear message, nothing is
accepted silently, nothing is lost, and no run becomes a dead end.

Each case runs the command line in-process (``tinyvae.run.cli.main``) where it can, and in a real
process for kill -9 and a closed pipe, and asserts:

* the exit status;
* that the message names the argument or the file, what it got and what was expected;
* that no Python traceback was printed;
* that every file that existed before is intact (SHA-256 before and after).

Permission cases run in a forked child that has dropped root (uid ``nobody``), because root
ignores file modes. A full disk is a patched writer that raises ENOSPC, and also a real 256 KiB
tmpfs where one can be mounted. The data is 200 training and 100 test digits of the bundled
MNIST written as IDX files, and the model is 784-8-2, so that the module takes seconds.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import gzip
import hashlib
import importlib
import io
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import tinyvae.evaluation.plots  # noqa: F401  (imported before any fork: the child imports nothing new)
from tinyvae import cli
from tinyvae.checkpoint import CheckpointError, load_arrays, remove_stale_temporaries
from tinyvae.checks import ShapeError
from tinyvae.data import DataError, MNIST_FILES, load_split
from tinyvae.run.train import ConfigError, TrainConfig
from tinyvae.models.vae import VAE
from tinyvae.models.config import ModelConfig

N_TRAIN, N_TEST, BATCH, EPOCHS = 200, 100, 50, 3  # 4 steps per epoch
MODEL = ["--hidden", "8", "--latent", "2", "--batch-size", str(BATCH), "--no-progress", "--no-pictures"]
NOBODY = 65534
# The modules themselves: tinyvae/__init__ binds the names `train` (and others) to functions.
train_module = importlib.import_module("tinyvae.run.train")
loop_module = importlib.import_module("tinyvae.run.loop")
checkpoint_module = importlib.import_module("tinyvae.checkpoint")
TIMING_KEYS = ("seconds", "eval_seconds")


# --------------------------------------------------------------------------- helpers


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def files(*roots):
    """{file: SHA-256} of every file under ``roots``."""
    out = {}
    for root in map(Path, roots):
        for path in ([root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())):
            out[path] = sha(path)
    return out


def assert_intact(before):
    """Every file of a ``files()`` snapshot still exists with the same contents."""
    for path, digest in before.items():
        assert path.is_file(), f"{path} was removed"
        assert sha(path) == digest, f"{path} was changed"


class Result:
    def __init__(self, rc, out, err):
        self.rc, self.out, self.err = rc, out, err
        self.text = out + err

    def says(self, *parts):
        missing = [p for p in parts if str(p) not in self.text]
        assert not missing, f"message lacks {missing}:\n{self.text}"
        return self


def call(args, capsys):
    """``tinyvae ARGS`` in this process: exit status and output; never a traceback."""
    capsys.readouterr()
    try:
        rc = cli.main([str(a) for a in args])
    except SystemExit as exit_:  # argparse refuses with exit status 2
        rc = exit_.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, out + err
    return Result(rc, out, err)


def theta_and_state(run):
    arrays = load_arrays(Path(run) / "checkpoint.npz")
    return {k: v for k, v in arrays.items() if k == "theta" or k.startswith("optim.")}


def metrics(run):
    rows = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in rows]


def assert_same_as(run, baseline):
    """Bit for bit the run ``baseline``: weights, optimizer state, metrics (timings aside)."""
    mine, theirs = theta_and_state(run), theta_and_state(baseline)
    assert mine.keys() == theirs.keys()
    for key in mine:
        np.testing.assert_array_equal(mine[key], theirs[key], err_msg=key)
    assert metrics(run) == metrics(baseline)


def write_idx(path, array):
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    Path(path).write_bytes(header + array.tobytes())


def dead_pid():
    """The id of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def train_args(data, out, *extra, epochs=EPOCHS):
    return ["train", "--data", data, "--out", out, "--epochs", epochs, *MODEL, *extra]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def base():
    """A folder every user may enter (the permission cases run as nobody), removed at the end."""
    folder = Path(tempfile.mkdtemp(prefix="tinyvae-faults-"))
    folder.chmod(0o755)
    yield folder
    for path in [folder, *folder.rglob("*")]:  # undo the modes the cases set, then remove
        with contextlib.suppress(OSError):
            path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def data(base):
    """200 training and 100 test digits of the bundled MNIST as raw IDX files, readable by all."""
    folder = base / "data"
    folder.mkdir()
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        x, y = load_split(split)
        images, labels = MNIST_FILES[split]
        write_idx(folder / images, x[:n].reshape(n, 28, 28))
        write_idx(folder / labels, y[:n])
    return folder


@pytest.fixture(scope="module")
def baseline(base, data):
    """An uninterrupted run of EPOCHS epochs: what every interrupted, resumed run must equal."""
    run = base / "baseline"
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main([str(a) for a in train_args(data, run)]) == 0
    return run


@pytest.fixture
def run(baseline, tmp_path):
    """A copy of the finished baseline run, to damage."""
    return Path(shutil.copytree(baseline, tmp_path / "run"))


def stopped_run(data, folder, epoch, step):
    """A run stopped (as by Ctrl-C) after ``step`` steps of ``epoch``: checkpoint saved mid-epoch."""

    def stop(r):
        if (r.epoch, r.step) == (epoch, step - 1):
            r.request_stop()

    config = TrainConfig(data=str(data), out=str(folder), epochs=EPOCHS, hidden=(8,), latent=2, batch_size=BATCH)
    lines = []
    with pytest.raises(train_module.TrainingInterrupted):
        train_module.train(config, log=lines.append, progress=False, pictures=False, on_step=stop)
    return lines


# =========================================================================== 1. arguments


@pytest.mark.parametrize("args, parts", [
    (["train", "--epoch", "2"], ["unrecognized arguments: --epoch 2"]),  # no abbreviation of --epochs
    (["evaluate", "RUN", "--js"], ["unrecognized arguments: --js"]),
    (["sample", "RUN", "--se", "3"], ["unrecognized arguments: --se 3"]),
    (["evaluate", "RUN", "--limit", "abc"], ["argument --limit: expected an integer >= 1, got 'abc'"]),
    (["evaluate", "RUN", "--iw-samples", "-1"], ["argument --iw-samples: expected an integer >= 0, got '-1'"]),
    (["evaluate", "RUN", "--seed", "x"], ["argument --seed: expected an integer >= 0, got 'x'"]),
    (["sample", "RUN", "--n", "0"], ["argument --n: expected an integer >= 1, got '0'"]),
    (["plot", "RUN", "--seed", "-2"], ["argument --seed: expected an integer >= 0, got '-2'"]),
    (["gradcheck", "--seed", "abc"], ["argument --seed: expected an integer >= 0, got 'abc'"]),
    (["train", "--lr", "abc"], ["argument --lr: expected a finite number > 0, got 'abc'"]),
    (["train", "--latent", "2.5"], ["argument --latent: expected an integer >= 1, got '2.5'"]),
])
def test_bad_flags_exit_2_naming_the_flag_the_value_and_what_was_expected(args, parts, capsys):
    result = call(args, capsys)
    assert result.rc == 2
    result.says("error:", *parts)
    assert "invalid" not in result.err and "_positive" not in result.err  # no argparse internals


def test_every_flag_of_every_command_refuses_abbreviations_and_explains_bad_values(capsys):
    """Covers the flags every module adds, present and future: parsed only, nothing runs."""
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a.choices, dict))
    assert not parser.allow_abbrev
    checked = 0
    for name, sub in subparsers.choices.items():
        assert not sub.allow_abbrev, name
        positional = ["RUN"] if any(not a.option_strings and a.required for a in sub._actions) else []
        for action in sub._actions:
            if action.type is None or not action.option_strings or action.choices is not None:
                continue
            capsys.readouterr()
            try:
                parser.parse_args([name, *positional, action.option_strings[-1], "@@"])
                continue  # a free-form value: nothing to refuse
            except SystemExit as exit_:
                assert exit_.code == 2
            err = capsys.readouterr().err
            assert f"argument {'/'.join(action.option_strings)}: expected" in err and "got '@@'" in err, err
            assert "invalid" not in err and "Traceback" not in err, err
            checked += 1
    assert checked >= 10


# =========================================================================== 2. damaged checkpoints


class Evil:
    """Unpickling this would create the file ``marker``: proof that a pickle was never loaded."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _edit(change):
    def plant(path, marker):
        with np.load(path) as archive:
            arrays = dict(archive)
        change(arrays)
        np.savez(path, **arrays)
    return plant


def _set(**values):
    return lambda arrays: arrays.update({k: np.asarray(v(arrays[k]) if callable(v) else v) for k, v in values.items()})


def _nan_at_3(t):
    t = t.copy()
    t[3] = np.nan
    return t


def _inf_at_0(t):
    t = t.copy()
    t[0] = np.inf
    return t


def _huge(text):
    return np.array(str(text[()]).replace('"hidden": [8]', '"hidden": [100000, 100000, 100000]'))


def _npy_bytes():
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(5, np.float32))
    return buffer.getvalue()


def _huge_header(path, marker):
    """theta's header claims 10^10 floats (40 GB) where the archive holds 12 bytes."""
    with np.load(path) as archive:
        arrays = dict(archive)
    with zipfile.ZipFile(path, "w") as archive:
        for name, value in arrays.items():
            member = io.BytesIO()
            if name == "theta":
                np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False,
                                                               "shape": (10**10,)})
                member.write(bytes(12))
            else:
                np.lib.format.write_array(member, value, allow_pickle=False)
            archive.writestr(f"{name}.npy", member.getvalue())


def _pickle_file(path, marker):
    path.write_bytes(pickle.dumps(Evil(marker)))


def _object_array(path, marker):
    np.savez(path, format=np.array([Evil(marker)], dtype=object), theta=np.zeros(3, dtype=np.float32))


PLANTS = {
    "integer weights": (_edit(_set(theta=lambda t: t.astype(np.int64))), ["'theta'", "real floating-point", "int64"]),
    "complex weights": (_edit(_set(theta=lambda t: t.astype(np.complex64))), ["'theta'", "real floating-point", "complex64"]),
    "a NaN weight": (_edit(_set(theta=_nan_at_3)), ["'theta'", "must hold finite numbers", "1 NaN"]),
    "inf in Adam's state": (_edit(_set(**{"optim.m_sum.0": _inf_at_0})), ["'optim.m_sum.0'", "finite", "1 inf"]),
    "text weights": (_edit(_set(theta=lambda t: t.astype(str))), ["'theta'", "real floating-point", "<U"]),
    "a text epoch": (_edit(_set(epoch="3")), ["'epoch'", "integer counter", "the text '3'"]),
    "a vector epoch": (_edit(_set(epoch=np.array([1, 2, 3]))), ["'epoch'", "integer counter", "shape (3,)"]),
    "a negative step": (_edit(_set(step=np.array(-1))), ["'step'", ">= 0", "-1"]),
    "a boolean array": (_edit(lambda a: a.update(mask=np.ones(3, dtype=bool))), ["'mask'", "real floating-point", "bool"]),
    "2-d weights": (_edit(_set(theta=lambda t: t.reshape(2, -1))), ["'theta'", "one flat array", "shape (2, "]),
    "an absurd model": (_edit(_set(config=_huge, train_config=_huge)),
                        ["vae 784-100000-100000-100000-2", "has 40,158,000,788 parameters", "more than the 1,000,000,000"]),
    "a config that is a list": (_edit(_set(config="[1, 2]", train_config="[1, 2]")),
                                ["must be a JSON object", "got list"]),
    "a .npy under .npz": (lambda p, m: p.write_bytes(_npy_bytes()),
                          ["single .npy array", "expected", ".npz archive"]),
    "a header claiming 40 GB": (_huge_header, ["'theta'", "declares shape (10000000000,)", "holds 12 bytes"]),
    "a pickle": (_pickle_file, ["Python pickle", "refused", ".npz archive"]),
    "a pickled object array": (_object_array, ["'format'", "pickled Python object", "refused"]),
    "an empty file": (lambda p, m: p.write_bytes(b""), ["empty, 0 bytes", ".npz archive"]),
    "a truncated file": (lambda p, m: p.write_bytes(p.read_bytes()[:5000]), ["truncated or corrupt", ".npz archive"]),
    "no weights": (_edit(lambda a: a.pop("theta")), ["missing arrays ['theta']", "it holds"]),
}
COMMANDS = {
    "evaluate": lambda run: ["evaluate", run],
    "sample": lambda run: ["sample", run],
    "resume": lambda run: ["train", "--resume", run, "--epochs", EPOCHS + 1, "--no-progress", "--no-pictures"],
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("plant", PLANTS)
def test_a_damaged_checkpoint_is_refused_by_every_command_naming_file_array_and_expectation(plant, command, run,
                                                                                            capsys, tmp_path):
    damage, parts = PLANTS[plant]
    marker = tmp_path / "pickle-was-loaded"
    damage(run / "checkpoint.npz", marker)
    before = files(run)
    result = call(COMMANDS[command](run), capsys)
    assert result.rc == 1
    result.says(run / "checkpoint.npz", *parts)
    assert "intact" not in result.text  # nothing is said to be intact about a checkpoint that is not usable
    assert not marker.exists()  # no pickle was ever run
    assert_intact(before)
    assert files(run).keys() == before.keys()  # and nothing was added (no samples.png, no temporaries)


def test_plot_refuses_a_checkpoint_with_nan_weights_too(run, capsys):
    PLANTS["a NaN weight"][0](run / "checkpoint.npz", None)
    before = files(run)
    result = call(["plot", run], capsys)
    assert result.rc == 1
    result.says(run / "checkpoint.npz", "'theta'", "must hold finite numbers", "1 NaN")
    assert_intact(before)


def test_a_checkpoint_whose_weights_do_not_fit_its_own_config_is_named_damaged_not_an_empty_difference(run):
    with np.load(run / "checkpoint.npz") as archive:
        arrays = dict(archive)
    arrays["theta"] = arrays["theta"][:-1]
    np.savez(run / "checkpoint.npz", **arrays)
    config, _ = VAE.read_config(run / "checkpoint.npz")
    with pytest.raises(CheckpointError) as info:
        VAE(config).load_weights(run / "checkpoint.npz")
    message = str(info.value)
    assert "13395 parameters" in message and "needs 13396" in message and "damaged" in message
    assert "{}" not in message


# =========================================================================== 3. the operating system says no


def test_out_naming_a_file_is_refused_before_anything_is_done(data, tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("mine\n")
    before = files(tmp_path)
    result = call(train_args(data, target), capsys)
    assert result.rc == 2
    result.says(f"--out {target}", "is a file, not a folder", "new or empty folder")
    assert_intact(before)


def test_out_below_a_file_names_the_file_in_the_way(data, tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("mine\n")
    before = files(tmp_path)
    result = call(train_args(data, target / "run"), capsys)
    assert result.rc == 1
    result.says(f"cannot create the run folder {target / 'run'}", f"{target} is a file, not a folder",
                "Nothing was written")
    assert_intact(before)


def test_sample_out_below_a_file_names_the_file_in_the_way(run, tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("mine\n")
    before = files(tmp_path)
    result = call(["sample", run, "--out", target / "s.png"], capsys)
    assert result.rc == 1
    result.says(f"cannot write {target / 's.png'}", f"{target} is a file, not a folder")
    assert_intact(before)


def test_sample_out_naming_a_folder_writes_inside_it(run, tmp_path, capsys):
    folder = tmp_path / "pictures"
    folder.mkdir()
    before = files(run)
    result = call(["sample", run, "--out", folder, "--n", "4"], capsys)
    assert result.rc == 0
    assert (folder / "samples.png").is_file() and not Path(f"{folder}.png").exists()
    result.says(folder / "samples.png")
    assert_intact(before)


@pytest.mark.parametrize("out, got", [("samples", "got no suffix"), ("samples.txt", "got the suffix .txt")])
def test_sample_out_without_a_picture_suffix_is_refused(run, tmp_path, capsys, out, got):
    before = files(tmp_path)
    result = call(["sample", run, "--out", tmp_path / out], capsys)
    assert result.rc == 1
    result.says(f"--out {tmp_path / out}", "expected a picture file ending in .png", got)
    assert files(tmp_path) == before


def _failing_savez(fail_on_call, code=errno.ENOSPC):
    """np.savez that writes part of the archive, then fails as a full disk does, on call ``fail_on_call``."""
    real, calls = np.savez, []

    def savez(f, **arrays):
        calls.append(1)
        if len(calls) != fail_on_call:
            return real(f, **arrays)
        buffer = io.BytesIO()
        real(buffer, **arrays)
        f.write(buffer.getvalue()[:1000])
        raise OSError(code, os.strerror(code))

    return savez


def test_a_full_disk_during_a_checkpoint_says_which_file_what_is_intact_and_how_to_resume(
        data, baseline, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setattr(checkpoint_module.np, "savez", _failing_savez(fail_on_call=2))
    result = call(train_args(data, out), capsys)
    monkeypatch.undo()
    assert result.rc == 1
    result.says(f"cannot write {out / 'checkpoint.npz'}: no space left on the device", "free some space",
                "The last checkpoint, after epoch 1 of 3, is intact", f"resume with: tinyvae train --resume {out}")
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "config.json", "metrics.jsonl"]  # no litter
    assert int(load_arrays(out / "checkpoint.npz")["epoch"]) == 1
    assert call(["train", "--resume", out, "--no-progress", "--no-pictures"], capsys).rc == 0
    assert_same_as(out, baseline)


def test_a_full_disk_while_appending_metrics_takes_the_partial_line_back(data, baseline, tmp_path, capsys,
                                                                           monkeypatch):
    out = tmp_path / "run"
    real_open, state = open, {"appends": 0}

    class HalfWriter:
        def __init__(self, f):
            self.f = f

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[:7])
            self.f.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fake_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        if str(path).endswith("metrics.jsonl") and "a" in mode:
            state["appends"] += 1
            if state["appends"] == 2:
                state["before"] = sha(path)
                return HalfWriter(f)
        return f

    monkeypatch.setattr(importlib.import_module("tinyvae.run.folder"), "open", fake_open, raising=False)
    result = call(train_args(data, out), capsys)
    monkeypatch.undo()
    assert result.rc == 1
    result.says(f"cannot write {out / 'metrics.jsonl'}: no space left on the device",
                "The last checkpoint, after epoch 1 of 3, is intact", f"tinyvae train --resume {out}")
    assert sha(out / "metrics.jsonl") == state["before"]  # the half line was taken back
    assert call(["train", "--resume", out, "--no-progress", "--no-pictures"], capsys).rc == 0
    assert_same_as(out, baseline)


def _mount_tmpfs(folder, size):
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True)
    return done.returncode == 0


def test_a_real_full_disk_a_small_tmpfs_leaves_the_last_checkpoint_intact(data, baseline, tmp_path, capsys):
    disk = tmp_path / "disk"
    disk.mkdir()
    # One checkpoint of this model is 166 KB: the first fits, the second (written beside it) does not.
    if not _mount_tmpfs(disk, "256k"):
        pytest.skip("cannot mount a tmpfs here (needs root and permission to mount); the patched writer above "
                    "covers a full disk")
    try:
        out = disk / "run"
        result = call(train_args(data, out), capsys)
        assert result.rc == 1
        result.says(f"cannot write {out / 'checkpoint.npz'}: no space left on the device",
                    "The last checkpoint, after epoch 1 of 3, is intact", f"tinyvae train --resume {out}")
        assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "config.json", "metrics.jsonl"]
        moved = Path(shutil.copytree(out, tmp_path / "moved"))
    finally:
        subprocess.run(["umount", str(disk)], check=False)
    assert call(["train", "--resume", moved, "--no-progress", "--no-pictures"], capsys).rc == 0
    assert_same_as(moved, baseline)


def test_two_trainings_racing_into_one_folder_the_loser_is_refused_clearly(data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    real = train_module.make_run_dir

    def the_other_one_wins(config):  # between our check and our write, another training writes its config
        folder = real(config)
        (folder / "config.json").write_text('{"theirs": true}\n')
        return folder

    monkeypatch.setattr(train_module, "make_run_dir", the_other_one_wins)
    result = call(train_args(data, out), capsys)
    assert result.rc == 2
    result.says(f"{out} already holds a run", "another training wrote its config.json there first",
                "choose another --out folder")
    assert (out / "config.json").read_text() == '{"theirs": true}\n'
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]


def test_a_diverging_run_reports_itself_without_numpy_runtime_warnings(data, tmp_path, capsys):
    out = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # 100 hidden units: 157,000 parameters, so Adam splits its update over threads
        result = call(["train", "--data", data, "--out", out, "--hidden", "100", "--lr", "1e6", "--epochs", "1",
                       "--batch-size", str(BATCH), "--no-progress", "--no-pictures"], capsys)
    assert result.rc == 1
    result.says("training diverged", "non-finite", "Try a smaller --lr (now 1e+06)")
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]
    assert "RuntimeWarning" not in result.text


# --------------------------------------------------------------------------- as a user without root's powers


def _in_unprivileged_child(cases):
    """Run ``cases`` ([(name, function)]) in a forked child that dropped root; {name: (rc, output)}.

    Root ignores file modes, so the child becomes ``nobody`` when the tests run as root (CI does).
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        results = {}
        try:
            os.close(read)
            os.environ["TINYVAE_THREADS"] = "1"
            # zipfile decodes member names as cp437: load that codec while the interpreter's own files (which
            # may sit in root's home, as a pyenv install does) are still readable; the faults are about run folders
            codecs.lookup("cp437")
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            for name, function in cases:
                out = io.StringIO()
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                    try:
                        rc = function()
                    except SystemExit as exit_:
                        rc = exit_.code
                    except BaseException as err:  # noqa: BLE001 - reported to the parent, which fails
                        rc, _ = "crash", print(f"Traceback: {type(err).__name__}: {err}")
                results[name] = (rc, out.getvalue())
        finally:
            os.write(write, json.dumps(results).encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        payload = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(payload)


@pytest.fixture(scope="module")
def unprivileged(base, data, baseline):
    """Five permission faults, set up here as root, run in one unprivileged child."""
    box = base / "perm"
    box.mkdir()
    locked = box / "locked"  # a folder nobody may write into
    locked.mkdir(mode=0o755)
    unreadable_data = box / "data"
    shutil.copytree(data, unreadable_data)
    secret = Path(shutil.copytree(baseline, box / "secret"))
    readonly = Path(shutil.copytree(baseline, box / "readonly"))  # root's files: nobody cannot write them
    midway = box / "midway"  # nobody's own run folder, which becomes read-only during training
    midway.mkdir()
    for path in (box, unreadable_data, secret, readonly, midway):
        path.chmod(0o755)
    os.chown(midway, NOBODY if os.geteuid() == 0 else os.getuid(), -1)
    snapshot = files(box)
    (unreadable_data / MNIST_FILES["train"][0]).chmod(0o000)
    (secret / "checkpoint.npz").chmod(0o000)

    def read_only_in_epoch_2():
        real = loop_module.Run._end_epoch

        def end_epoch(self, epoch, sums, seconds):
            if epoch == 2:
                midway.chmod(0o555)
            return real(self, epoch, sums, seconds)

        loop_module.Run._end_epoch = end_epoch
        return cli.main([str(a) for a in train_args(data, midway)])

    cases = [
        ("out", lambda: cli.main([str(a) for a in train_args(data, locked / "run")])),
        ("data", lambda: cli.main([str(a) for a in train_args(unreadable_data, box / "never")])),
        ("evaluate", lambda: cli.main(["evaluate", str(secret)])),
        ("resume", lambda: cli.main(["train", "--resume", str(readonly), "--epochs", "4", "--no-progress",
                                     "--no-pictures"])),
        ("midway", read_only_in_epoch_2),
    ]
    results = _in_unprivileged_child(cases)
    midway.chmod(0o755)
    (unreadable_data / MNIST_FILES["train"][0]).chmod(0o644)
    (secret / "checkpoint.npz").chmod(0o644)
    return results, snapshot, dict(box=box, locked=locked, data=unreadable_data, secret=secret, readonly=readonly,
                                   midway=midway)


def _unprivileged_result(unprivileged, name):
    results, snapshot, paths = unprivileged
    rc, text = results[name]
    assert "Traceback" not in text, text
    assert_intact({p: h for p, h in snapshot.items() if not p.is_relative_to(paths["midway"])})
    return rc, Result(rc, text, ""), paths


def test_out_in_a_folder_the_user_cannot_write_is_refused(unprivileged):
    rc, result, paths = _unprivileged_result(unprivileged, "out")
    assert rc == 1
    result.says(f"cannot create the run folder {paths['locked'] / 'run'}: permission denied", "Nothing was written")
    assert not (paths["locked"] / "run").exists()


def test_an_unreadable_data_file_is_named(unprivileged):
    rc, result, paths = _unprivileged_result(unprivileged, "data")
    assert rc == 1
    result.says(f"cannot read {paths['data'] / MNIST_FILES['train'][0]}: permission denied",
                "use a location you can read")


def test_an_unreadable_checkpoint_is_named(unprivileged):
    rc, result, paths = _unprivileged_result(unprivileged, "evaluate")
    assert rc == 1
    result.says(f"cannot read the checkpoint {paths['secret'] / 'checkpoint.npz'}: permission denied")


def test_resuming_in_a_folder_the_user_cannot_write_says_the_checkpoint_is_intact(unprivileged):
    rc, result, paths = _unprivileged_result(unprivileged, "resume")
    assert rc == 1
    result.says(f"cannot write {paths['readonly'] / 'config.json'}: permission denied",
                "The last checkpoint, after epoch 3 of 4, is intact",
                f"resume with: tinyvae train --resume {paths['readonly']}")


def test_a_run_folder_made_read_only_during_training_stops_with_the_last_checkpoint_intact(unprivileged, baseline,
                                                                                          capsys):
    rc, result, paths = _unprivileged_result(unprivileged, "midway")
    midway = paths["midway"]
    assert rc == 1
    result.says(f"cannot write {midway / 'checkpoint.npz'}: permission denied",
                "The last checkpoint, after epoch 1 of 3, is intact", f"tinyvae train --resume {midway}")
    assert int(load_arrays(midway / "checkpoint.npz")["epoch"]) == 1
    assert call(["train", "--resume", midway, "--no-progress", "--no-pictures"], capsys).rc == 0  # writable again
    assert_same_as(midway, baseline)


# =========================================================================== 4. no dead ends, no litter


def test_a_run_killed_before_its_first_checkpoint_restarts_with_resume_and_matches(data, baseline, tmp_path,
                                                                                   capsys):
    out = tmp_path / "run"

    class Killed(Exception):
        pass

    def die(r):
        if (r.epoch, r.step) == (1, 1):
            raise Killed

    config = TrainConfig(data=str(data), out=str(out), epochs=EPOCHS, hidden=(8,), latent=2, batch_size=BATCH)
    with pytest.raises(Killed):
        train_module.train(config, log=lambda *_: None, progress=False, pictures=False, on_step=die)
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]
    config_before = files(out)

    again = call(train_args(data, out), capsys)  # the same command again: refused, with the way out
    assert again.rc == 2
    again.says(f"{out} holds a run that stopped before its first checkpoint", f"tinyvae train --resume {out}")
    assert_intact(config_before)

    result = call(["train", "--resume", out, "--no-progress", "--no-pictures"], capsys)
    assert result.rc == 0
    result.says("holds no checkpoint yet", "starting it again from the beginning with its stored config")
    assert_intact(config_before)
    assert_same_as(out, baseline)


@pytest.mark.parametrize("make, parts", [
    (lambda p: p.mkdir(), ["holds no run (neither checkpoint.npz nor config.json)", "tinyvae train --out"]),
    (lambda p: None, ["no such file or folder", "expected a run folder", "tinyvae train --out"]),
])
def test_resume_of_a_folder_without_a_run_says_how_to_start_one(tmp_path, capsys, make, parts):
    target = tmp_path / "nothing"
    make(target)
    result = call(["train", "--resume", target], capsys)
    assert result.rc == 1
    result.says(target, *parts)


def test_a_folder_with_another_runs_metrics_is_refused(data, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 99.0}\n')
    before = files(out)
    result = call(train_args(data, out), capsys)
    assert result.rc == 2
    result.says(f"{out} holds a metrics.jsonl but no config.json", "will not append", "choose another --out")
    assert_intact(before)
    assert files(out).keys() == before.keys()


@pytest.mark.parametrize("edit, parts", [
    (lambda text: text[:len(text) // 2], ["config.json is not valid JSON", "will not overwrite it", "move it aside"]),
    (lambda text: text.replace('"lr": 0.001', '"lr": 0.01'),
     ["config.json disagrees with the config stored in", "lr: config.json 0.01, checkpoint 0.001",
      "will not overwrite your edit"]),
    (lambda text: text.replace('"latent": 2', '"latent": "two"'),
     ["config.json does not hold a valid training config", "latent must be an integer, got 'two'"]),
])
def test_an_edited_or_damaged_config_json_is_reported_on_resume_not_overwritten(run, capsys, edit, parts):
    path = run / "config.json"
    path.write_text(edit(path.read_text()))
    before = files(run)
    result = call(["train", "--resume", run, "--epochs", EPOCHS + 1, "--no-progress", "--no-pictures"], capsys)
    assert result.rc == 2
    result.says(*parts)
    assert_intact(before)


def test_a_damaged_config_json_of_a_run_without_checkpoint_says_how_to_start_again(data, run, capsys):
    for name in ("checkpoint.npz", "metrics.jsonl"):
        (run / name).unlink()
    (run / "config.json").write_text("{not json")
    before = files(run)
    result = call(["train", "--resume", run], capsys)
    assert result.rc == 2
    result.says(run / "config.json", "is not valid JSON", "delete the folder", f"tinyvae train --out {run}")
    assert_intact(before)


def test_a_damaged_metrics_line_is_reported_by_line_number(run, capsys):
    path = run / "metrics.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + "garbage\n" + "".join(lines[1:]))
    before = files(run)
    result = call(["train", "--resume", run, "--epochs", EPOCHS + 1, "--no-progress", "--no-pictures"], capsys)
    assert result.rc == 2
    result.says(f"{path} line 2 is not JSON", "repair it, or move it aside")
    assert_intact(before)


def test_resume_and_interrupt_messages_use_one_unit_at_a_time(data, tmp_path, capsys):
    out = tmp_path / "run"
    lines = stopped_run(data, out, epoch=2, step=3)
    assert any(f"checkpoint saved after step 3 of 4 in epoch 2 of 3 in {out / 'checkpoint.npz'}" in line
               for line in lines), lines
    result = call(["train", "--resume", out, "--no-progress", "--no-pictures"], capsys)
    assert result.rc == 0
    result.says(f"resuming {out} after step 3 of 4 in epoch 2 of 3")


def test_resume_removes_the_temporaries_of_dead_writers_and_keeps_a_live_ones(run, baseline, capsys):
    dead = run / f".checkpoint.npz.tmp-{dead_pid()}"
    alive = run / f".checkpoint.npz.tmp-{os.getppid()}"  # a live process that is not this one
    dead.write_bytes(b"half a checkpoint")
    alive.write_bytes(b"being written")
    result = call(["train", "--resume", run, "--epochs", EPOCHS + 1, "--no-progress", "--no-pictures"], capsys)
    assert result.rc == 0
    assert not dead.exists() and alive.read_bytes() == b"being written"


def test_the_next_write_removes_a_dead_writers_temporary(tmp_path):
    dead = tmp_path / f".model.npz.tmp-{dead_pid()}"
    dead.write_bytes(b"x" * 1000)
    VAE(hidden=(3,), latent=2, input_dim=4).save(tmp_path / "model.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]
    assert remove_stale_temporaries(tmp_path) == []


def test_a_broken_pipe_on_stdout_ends_quietly_in_a_real_process(run):
    proc = subprocess.Popen([sys.executable, "-m", "tinyvae", "evaluate", str(run), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first byte, as `| head -0` would be
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141, err
    assert b"Traceback" not in err and b"BrokenPipeError" not in err and err == b""


def test_a_broken_pipe_in_process_returns_141_without_a_word(run, capsys, monkeypatch):
    class Closed(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Closed())
    assert cli.main(["evaluate", str(run)]) == 141
    monkeypatch.undo()
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- kill -9, in real processes

SLOW_STEPS = """
import importlib, sys, time
t = importlib.import_module("tinyvae.run.loop")
real = t.Run._beta
def slow(self, epoch, step):  # 30 ms a step: a window wide enough to be hit; the numbers do not change
    time.sleep(0.03)
    return real(self, epoch, step)
t.Run._beta = slow
from tinyvae.run.cli import main
sys.exit(main(sys.argv[1:]))
"""

HANG_MID_WRITE = """
import importlib, io, sys, time
import numpy as np
c = importlib.import_module("tinyvae.checkpoint")
real, calls = np.savez, []
def savez(f, **arrays):  # the second checkpoint: half written, then the process hangs until killed
    calls.append(1)
    if len(calls) < 2:
        return real(f, **arrays)
    buffer = io.BytesIO()
    real(buffer, **arrays)
    f.write(buffer.getvalue()[:len(buffer.getvalue()) // 2])
    f.flush()
    open(sys.argv[1], "w").close()
    time.sleep(600)
c.np.savez = savez
from tinyvae.run.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _start(script, *args):
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _wait_for(path, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.005)


def _continue(out, data, capsys):
    """Whatever state kill -9 left, one command continues the run."""
    if (out / "config.json").exists():
        return call(["train", "--resume", out, "--no-progress", "--no-pictures"], capsys)
    return call(train_args(data, out), capsys)


def test_kill_9_at_seeded_random_moments_then_resume_matches_the_uninterrupted_run(data, baseline, tmp_path,
                                                                                    capsys):
    rng = random.Random(11)
    for i in range(3):
        out = tmp_path / f"run{i}"
        proc = _start(SLOW_STEPS, *train_args(data, out))
        try:
            _wait_for(out / "config.json", proc)
            time.sleep(rng.uniform(0.0, 0.3))  # 12 steps of 30 ms and three evaluations follow
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == -signal.SIGKILL
        result = _continue(out, data, capsys)
        assert result.rc == 0, result.text
        assert_same_as(out, baseline)
        assert not [p for p in out.iterdir() if ".tmp-" in p.name]


def test_kill_9_while_the_checkpoint_is_written_keeps_the_old_one_and_resume_cleans_up(data, baseline, tmp_path,
                                                                                    capsys):
    out, flag = tmp_path / "run", tmp_path / "writing"
    proc = _start(HANG_MID_WRITE, flag, *train_args(data, out))
    try:
        _wait_for(flag, proc)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    litter = out / f".checkpoint.npz.tmp-{proc.pid}"
    assert litter.is_file() and litter.stat().st_size > 0  # what the killed writer left
    assert int(load_arrays(out / "checkpoint.npz")["epoch"]) == 1  # the previous checkpoint, whole
    result = call(["train", "--resume", out, "--no-progress", "--no-pictures"], capsys)
    assert result.rc == 0
    assert not litter.exists()
    assert_same_as(out, baseline)


# =========================================================================== 5. the Python API accepts nothing silently


@pytest.mark.parametrize("changes, parts", [
    ({"latent": 2.5}, ["latent must be an integer, got 2.5"]),
    ({"hidden": (8.0,)}, ["hidden must be a list of integers, got (8.0,)"]),
    ({"input_dim": "784"}, ["input_dim must be an integer, got '784'"]),
    ({"beta": float("nan")}, ["beta must be a finite number, got nan"]),
    ({"hidden": (10**6, 10**6)}, ["2,001,632,000,824 parameters", "more than the 1,000,000,000"]),
])
def test_a_model_config_is_refused_at_construction_before_anything_is_allocated(changes, parts):
    with pytest.raises(ValueError) as info:
        VAE(**changes)
    for part in parts:
        assert part in str(info.value)


def test_float64_eps_into_a_float32_model_is_refused_like_float64_x():
    model = VAE(hidden=(3,), latent=2, input_dim=4)
    x = np.full((5, 4), 0.5, dtype=np.float32)
    with pytest.raises(TypeError, match=r"eps: expected dtype float32 to match the model \(as x must\), got float64"):
        model.forward(x, np.zeros((5, 2)))
    assert model.forward(x, np.zeros((5, 2), dtype=np.float32)).dtype == np.float32


def test_an_empty_batch_is_refused_naming_its_shape():
    model = VAE(hidden=(3,), latent=2, input_dim=4)
    with pytest.raises(ShapeError, match=r"x: expected a batch of at least one example.*got shape \(0, 4\)"):
        model.forward(np.zeros((0, 4), dtype=np.float32))


@pytest.mark.parametrize("n", [-1, 0, 2.5, True])
def test_sample_refuses_a_count_that_is_not_a_positive_integer(n):
    with pytest.raises(ValueError, match=rf"n: expected a positive integer number of samples, got {n!r}"):
        VAE(hidden=(3,), latent=2, input_dim=4).sample(n)


def test_a_training_config_that_is_not_an_object_is_refused():
    with pytest.raises(ConfigError, match="a training config must be a JSON object .*got list"):
        TrainConfig.from_dict([1, 2])


def test_an_idx_split_with_zero_images_is_named(data, tmp_path, capsys):
    folder = Path(shutil.copytree(data, tmp_path / "empty"))
    write_idx(folder / MNIST_FILES["test"][0], np.zeros((0, 28, 28)))
    write_idx(folder / MNIST_FILES["test"][1], np.zeros((0,)))
    with pytest.raises(DataError, match=r"the test split holds 0 images.*expected at least one"):
        load_split("test", folder)
    result = call(train_args(folder, tmp_path / "run"), capsys)
    assert result.rc == 1
    result.says(folder / MNIST_FILES["test"][0], "holds 0 images", "expected at least one")


def test_a_truncated_gzip_data_file_is_named_not_a_traceback(data, tmp_path, capsys):
    folder = Path(shutil.copytree(data, tmp_path / "gz"))
    raw = folder / MNIST_FILES["test"][0]
    Path(f"{raw}.gz").write_bytes(gzip.compress(raw.read_bytes())[:300])
    raw.unlink()
    result = call(train_args(folder, tmp_path / "run"), capsys)
    assert result.rc == 1
    result.says(f"{raw}.gz", "truncated or corrupt", "expected a complete gzip file")


def test_model_config_counts_the_parameters_it_would_allocate():
    for kwargs in (dict(hidden=(5, 3), latent=2), dict(model="ae", hidden=(), latent=4), dict(hidden=(7,))):
        config = ModelConfig(input_dim=12, **kwargs)
        from tinyvae.models.vae import build_model  # noqa: PLC0415
        assert config.parameter_count() == build_model(config).num_params


def test_a_model_larger_than_this_machines_memory_is_refused_before_allocating(monkeypatch):
    vae_module = importlib.import_module("tinyvae.models.config")
    monkeypatch.setattr(vae_module, "_physical_memory", lambda: 2**20)  # a machine with 1 MiB
    with pytest.raises(ValueError) as info:
        VAE(hidden=(400,))  # 652,824 parameters: 4 copies of float32 are 10 MB
    message = str(info.value)
    assert "652,824 parameters" in message and "4 copies" in message
    assert "more than this machine's 0.0 GiB of memory" in message
    VAE(hidden=(40,), latent=2, input_dim=16)  # 1,620 parameters: 4 float32 copies (26 KB) fit in 1 MiB


# =========================================================================== 6. found along the way


def test_a_bad_thread_count_in_the_environment_is_named(run, capsys, monkeypatch):
    monkeypatch.setenv("TINYVAE_THREADS", "many")
    result = call(["evaluate", run], capsys)
    assert result.rc == 1
    result.says("TINYVAE_THREADS must be a positive integer, got 'many'")


def test_data_naming_a_file_is_refused_as_not_a_folder(tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("mine\n")
    result = call(train_args(target, tmp_path / "run"), capsys)
    assert result.rc == 1
    result.says(f"--data {target}: is a file; expected a folder holding the MNIST-format IDX files")
    assert not (tmp_path / "run").exists()


def test_a_run_config_json_that_is_not_an_object_is_refused_by_evaluate(run, capsys):
    (run / "config.json").write_text("[1, 2]\n")
    before = files(run)
    result = call(["evaluate", run], capsys)
    assert result.rc == 1
    result.says(run / "config.json", "expected a JSON object", "got list")
    assert_intact(before)


def test_plot_names_a_damaged_metrics_line_before_drawing_anything(run, capsys):
    (run / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2,\n')
    before = files(run)
    result = call(["plot", run], capsys)
    assert result.rc == 1
    result.says(f"{run / 'metrics.jsonl'} line 2: expected one JSON object per line", "got '{\"epoch\": 2,'")
    assert_intact(before)
    assert files(run).keys() == before.keys()  # no picture drawn


def test_resume_says_what_it_repairs_a_missing_config_json_and_a_cut_short_metrics_line(run, capsys):
    (run / "config.json").unlink()
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 4, "train_lo')  # what a kill mid-append leaves
    checkpoint = files(run / "checkpoint.npz")
    result = call(["train", "--resume", run, "--epochs", EPOCHS + 1, "--no-progress", "--no-pictures"], capsys)
    assert result.rc == 0
    result.says(f"note: {run / 'config.json'} is missing; it is written again from the config stored in",
                f"note: dropped the last line of {run / 'metrics.jsonl'}, cut short by the stop")
    assert (run / "config.json").is_file()
    assert [row["epoch"] for row in metrics(run)] == [1, 2, 3, 4]
    assert sha(run / "checkpoint.npz") != checkpoint[run / "checkpoint.npz"]  # it trained on


# =========================================================================== 7. nothing lost, round two


def test_resume_refuses_a_run_whose_checkpoint_is_gone_after_recorded_epochs_and_changes_nothing(run, capsys):
    (run / "checkpoint.npz").unlink()
    before = files(run)
    result = call(["train", "--resume", run, "--no-progress", "--no-pictures"], capsys)
    assert result.rc == 1
    result.says(f"cannot resume {run}", f"{run / 'metrics.jsonl'} records 3 finished epochs (the last, epoch 3)",
                f"{run / 'checkpoint.npz'} is missing", "Nothing was changed", "tinyvae train --out NEW_FOLDER")
    assert_intact(before)
    assert files(run).keys() == before.keys()


@pytest.mark.parametrize("left", ["a first line cut short", "epoch 1's line"])
def test_resume_starts_again_a_run_stopped_before_its_first_checkpoint_was_written(data, baseline, run, capsys, left):
    """What a kill leaves while the first line is written, or between it and the first checkpoint: starting
    again loses nothing (epoch 1 is recomputed bit for bit, its line with it)."""
    (run / "checkpoint.npz").unlink()
    first = (run / "metrics.jsonl").read_text().splitlines(keepends=True)[0]
    (run / "metrics.jsonl").write_text(first[:20] if left == "a first line cut short" else first)
    result = call(["train", "--resume", run, "--no-progress", "--no-pictures"], capsys)
    assert result.rc == 0, result.text
    assert_same_as(run, baseline)


TWO_PRESSES_IN_ONE_C_CALL = """
import ctypes, importlib, os, sys, threading, time
libc = ctypes.CDLL(None)
mutex = ctypes.create_string_buffer(64)  # a pthread mutex: all zeros is PTHREAD_MUTEX_INITIALIZER (glibc)
t = importlib.import_module("tinyvae.run.loop")
real, calls = t.evaluate_elbo, []

def hold(flag, release):
    # Hold the mutex until the test creates `release`. Say `flag` only once the main thread waits for it:
    # glibc's futex word (the mutex's first int) becomes 2 when a thread sleeps on a held mutex.
    libc.pthread_mutex_lock(mutex)
    held.set()
    word, deadline = ctypes.c_int.from_buffer(mutex), time.monotonic() + 10
    while word.value != 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    open(flag, "w").close()
    while not os.path.exists(release):
        time.sleep(0.001)
    libc.pthread_mutex_unlock(mutex)

def evaluate(*args, **kwargs):  # the second epoch's evaluation: one long C call while Ctrl-C is pressed twice
    calls.append(1)
    if len(calls) == 2:
        threading.Thread(target=hold, args=(sys.argv[1], sys.argv[2])).start()
        held.wait()
        # Blocks in C until the test has seen both presses delivered: no signal ends the wait (a mutex
        # never returns EINTR), so Python runs its SIGINT handler once, after it, for both presses.
        libc.pthread_mutex_lock(mutex)
        libc.pthread_mutex_unlock(mutex)
    return real(*args, **kwargs)

held = threading.Event()
t.evaluate_elbo = evaluate
from tinyvae.run.cli import main
sys.exit(main(sys.argv[3:]))
"""


def _wait_until_delivered(pid, signum, timeout=60):
    """Wait until the kernel has handed ``signum`` to process ``pid``: a second signal sent while the first is
    still pending (a process waiting for a busy CPU) merges with it, and two presses would be one."""
    status, bit = Path(f"/proc/{pid}/status"), 1 << (signum - 1)
    deadline = time.monotonic() + timeout
    while status.exists() and time.monotonic() < deadline:
        masks = [int(line.split()[1], 16) for line in status.read_text().splitlines()
                 if line.startswith(("SigPnd:", "ShdPnd:"))]
        if not any(mask & bit for mask in masks):
            return
        time.sleep(0.001)


def test_two_quick_ctrl_c_stop_at_once_keeping_the_last_checkpoint(data, baseline, tmp_path, capsys):
    out, flag, release = tmp_path / "run", tmp_path / "evaluating", tmp_path / "release"
    proc = subprocess.Popen([sys.executable, "-c", TWO_PRESSES_IN_ONE_C_CALL, flag, release,
                             *map(str, train_args(data, out))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(flag, proc)  # the child's main thread now waits inside one C call until `release` exists
        checkpoint = files(out / "checkpoint.npz")  # after epoch 1; epoch 2 is being evaluated
        for _ in range(2):
            proc.send_signal(signal.SIGINT)
            _wait_until_delivered(proc.pid, signal.SIGINT)  # two arrivals, not one merged pending signal
        release.touch()
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    Result(proc.returncode, stdout, stderr).says(
        "stopped at once by a second Ctrl-C: the last checkpoint, after epoch 1 of 3, is intact",
        f"resume with: tinyvae train --resume {out}")
    assert_intact(checkpoint)
    assert call(["train", "--resume", out, "--no-progress", "--no-pictures"], capsys).rc == 0
    assert_same_as(out, baseline)


def test_ctrl_c_during_the_last_evaluation_is_not_ignored(data, tmp_path, capsys):
    out = tmp_path / "run"

    def press_during_last_evaluation(run):
        if (run.epoch, run.step) == (EPOCHS, run.steps_per_epoch - 1):
            run.request_stop()  # as the handler does: after the last step's check, before the evaluation

    config = TrainConfig(data=str(data), out=str(out), epochs=EPOCHS, hidden=(8,), latent=2, batch_size=BATCH)
    lines = []
    with pytest.raises(train_module.TrainingInterrupted):
        train_module.train(config, log=lines.append, progress=False, pictures=False, on_step=press_during_last_evaluation)
    assert any(f"interrupted after the last epoch: the run is complete, its checkpoint saved after epoch 3 of 3" in line
               for line in lines), lines
    assert int(load_arrays(out / "checkpoint.npz")["epoch"]) == EPOCHS


@pytest.mark.parametrize("spell", ["absolute", "relative", "trailing slash", "dotted name", "symlink"])
def test_sample_out_naming_an_existing_folder_prints_the_file_it_wrote(run, tmp_path, capsys, monkeypatch, spell):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / ("pics.v2" if spell == "dotted name" else "pics")
    folder.mkdir()
    if spell == "symlink":
        (tmp_path / "link").symlink_to(folder)
    arg = {"absolute": str(folder), "relative": folder.name, "trailing slash": f"{folder.name}/",
           "dotted name": folder.name, "symlink": "link"}[spell]
    before = files(tmp_path)
    result = call(["sample", run, "--out", arg, "--n", "4"], capsys)
    assert result.rc == 0
    written = Path(result.out.strip())
    assert written.is_file() and written.resolve().parent == folder.resolve() and written.name == "samples.png"
    assert set(files(tmp_path)) - set(before) == {folder / "samples.png"}  # nothing beside it (no pics.png)
    assert_intact(before)


def test_sample_never_replaces_a_picture_it_named_itself_and_writes_a_named_file_as_asked(run, tmp_path, capsys):
    (run / "samples.png").write_bytes(b"the picture training drew")
    before = files(run)
    printed = [call(["sample", run, "--n", "4", *extra], capsys).out.strip() for extra in ([], [], ["--out", run])]
    assert printed == [str(run / "samples-2.png"), str(run / "samples-3.png"), str(run / "samples-4.png")]
    assert_intact(before)
    named = tmp_path / "mine.png"
    named.write_bytes(b"old")
    assert call(["sample", run, "--n", "4", "--out", named], capsys).out.strip() == str(named)
    assert named.read_bytes()[:4] == b"\x89PNG"  # --out FILE: the user asked for that file


# =========================================================================== 8. the other architectures, objectives and likelihoods
# Each kind of run trains KIND_EPOCHS epochs on the same 200 digits; the cases below give each one bad
# values, a kill -9 mid-epoch, a damaged checkpoint, and a checkpoint of one kind resumed as another.

KIND_EPOCHS = 2
SMALL = ["--latent", "2", "--batch-size", str(BATCH), "--no-progress", "--no-pictures"]
KINDS = {
    "conv": ["--arch", "conv", "--channels", "2", "4", "--dense", "0", *SMALL],
    "iwae k=2": [*MODEL, "--objective", "iwae", "--k", "2"],
    "preset iwae-paper": ["--preset", "iwae-paper", "--hidden", "8", *SMALL],
    "continuous bernoulli": [*MODEL, "--likelihood", "continuous-bernoulli"],
    "learned variance": [*MODEL, "--likelihood", "gaussian", "--obs-var", "learned"],
    "optimal variance": [*MODEL, "--likelihood", "gaussian", "--obs-var", "optimal"],
    "free bits": [*MODEL, "--free-bits", "0.5"],
}


def kind_args(data, out, kind, *extra, epochs=KIND_EPOCHS):
    return ["train", "--data", data, "--out", out, "--epochs", epochs, *KINDS[kind], *extra]


@pytest.fixture(scope="module")
def kind_runs(base, data):
    """A finished run of every kind: what each interrupted, resumed run must equal."""
    runs = {}
    for i, kind in enumerate(KINDS):
        runs[kind] = base / f"kind-{i}"
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli.main([str(a) for a in kind_args(data, runs[kind], kind)]) == 0, kind
    return runs


@pytest.fixture
def kind_run(kind_runs, tmp_path):
    """A copy of a finished run of the given kind, to damage."""
    return lambda kind: Path(shutil.copytree(kind_runs[kind], tmp_path / "run"))


@pytest.mark.parametrize("extra, parts", [
    (["--arch", "conv", "--hidden", "8"], ["--hidden sets the widths of the mlp architecture", "Drop --hidden"]),
    (["--channels", "4"], ["--channels sets the conv architecture", "add --arch conv"]),
    (["--dense", "3"], ["--dense sets the conv architecture", "add --arch conv"]),
    (["--arch", "conv", "--channels", "0"], ["argument --channels: expected an integer >= 1, got '0'"]),
    (["--arch", "conv", "--dense", "-1"], ["argument --dense: expected an integer >= 0, got '-1'"]),
    (["--arch", "conv", "--channels", *["4"] * 6], ["6 stride-2 convolutions", "a multiple of 64", "got 28×28"]),
    (["--arch", "cnn"], ["argument --arch: invalid choice: 'cnn'", "'mlp', 'conv'"]),
    (["--objective", "iwae", "--k", "0"], ["argument --k: expected an integer >= 1, got '0'"]),
    (["--objective", "iwae", "--k", "two"], ["argument --k: expected an integer >= 1, got 'two'"]),
    (["--k", "5"], ["--k 5 sets the importance samples of --objective iwae", "add --objective iwae, or drop --k"]),
    (["--objective", "iwae", "--model", "ae"], ["objective 'iwae' needs a VAE", "got model 'ae'"]),
    (["--objective", "iwae", "--likelihood", "continuous-bernoulli"],
     ["objective 'iwae' supports the bernoulli and fixed-variance gaussian", "likelihood='continuous-bernoulli'"]),
    (["--objective", "iwae", "--likelihood", "gaussian", "--obs-var", "optimal"],
     ["objective 'iwae' supports the bernoulli and fixed-variance gaussian", "obs_var_mode='optimal'"]),
    (["--objective", "iwae", "--free-bits", "1"], ["objective 'iwae' supports", "free_bits=1"]),
    (["--objective", "iwae", "--k", "100000", "--batch-size", "100000"],
     ["--batch-size 100000 is too large for --k 100000", "fits with k 100000"]),
    (["--preset", "iwae"], ["argument --preset: invalid choice: 'iwae'", "'iwae-paper'"]),
    (["--preset", "iwae-paper", "--k", "5"], ["--k 5 sets the importance samples of --objective iwae"]),
    (["--preset", "iwae-paper", "--objective", "iwae", "--k", "-5"], ["argument --k: expected an integer >= 1"]),
    (["--likelihood", "continuous-bernoulli", "--obs-var", "learned"],
     ["a learned observation variance needs likelihood='gaussian'", "got likelihood='continuous-bernoulli'"]),
    (["--likelihood", "continuous-bernoulli", "--obs-var", "2"],
     ["--obs-var 2 sets the Gaussian likelihood's variance σ_x²", "the continuous-bernoulli likelihood has none"]),
    (["--obs-var", "0.5"], ["--obs-var 0.5 sets the Gaussian", "the bernoulli likelihood has none"]),
    (["--likelihood", "gaussian", "--obs-var", "0"], ["expected a finite number > 0, 'learned' or 'optimal', got '0'"]),
    (["--likelihood", "gaussian", "--obs-var", "nan"], ["argument --obs-var: expected a finite number > 0", "'nan'"]),
    (["--likelihood", "gaussian", "--obs-var", "learnt"], ["argument --obs-var: expected", "got 'learnt'"]),
    (["--free-bits", "nan"], ["argument --free-bits: expected a finite number >= 0, got 'nan'"]),
    (["--free-bits", "1e400"], ["argument --free-bits: expected a finite number >= 0, got '1e400'"]),
    (["--model", "ae", "--free-bits", "0.5"], ["free_bits acts on the KL term of a VAE"]),
    (["--likelihood", "gaussian", "--obs-var", "optimal", "--free-bits", "-1"],
     ["argument --free-bits: expected a finite number >= 0, got '-1'"]),
])
def test_a_bad_value_for_a_newer_surface_is_refused_before_anything_is_written(data, tmp_path, capsys, extra, parts):
    before = files(tmp_path, data)
    out = tmp_path / "run"
    result = call(["train", "--data", data, "--out", out, "--epochs", 1, "--no-progress", "--no-pictures", *extra],
                  capsys)
    assert result.rc == 2
    result.says("error:", *parts)
    assert not out.exists()
    assert files(tmp_path, data) == before


KILL_MID_EPOCH_2 = """
import importlib, os, signal, sys
t = importlib.import_module("tinyvae.run.loop")
real = t.Run._beta
def beta(self, epoch, step):  # called before every step: die like kill -9 before step 1 of epoch 2
    if (epoch, step) == (2, 1):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, epoch, step)
t.Run._beta = beta
from tinyvae.run.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("kind", KINDS)
def test_kill_9_mid_epoch_then_resume_is_bit_for_bit_the_uninterrupted_run(kind, data, kind_runs, tmp_path, capsys):
    before = files(data, kind_runs[kind])
    out = tmp_path / "run"
    proc = _start(KILL_MID_EPOCH_2, *kind_args(data, out, kind))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err
    assert int(load_arrays(out / "checkpoint.npz")["epoch"]) == 1  # epoch 2 was under way
    result = call(["train", "--resume", out, "--no-progress", "--no-pictures"], capsys)
    assert result.rc == 0, result.text
    assert_same_as(out, kind_runs[kind])
    assert_intact(before)


@pytest.mark.parametrize("plant", ["a NaN weight", "a truncated file"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_checkpoint_of_each_kind_is_refused_on_resume(kind, plant, kind_run, capsys, tmp_path):
    run = kind_run(kind)
    damage, parts = PLANTS[plant]
    damage(run / "checkpoint.npz", tmp_path / "marker")
    before = files(run)
    result = call(["train", "--resume", run, "--epochs", KIND_EPOCHS + 1, "--no-progress", "--no-pictures"], capsys)
    assert result.rc == 1
    result.says(run / "checkpoint.npz", *parts)
    assert_intact(before)
    assert files(run).keys() == before.keys()


@pytest.mark.parametrize("kind, flags, conflict", [
    ("conv", ["--arch", "mlp"], "--arch: stored conv, asked mlp"),
    ("iwae k=2", ["--objective", "elbo"], "--objective: stored iwae, asked elbo"),
    ("iwae k=2", ["--k", "5"], "--k: stored 2, asked 5"),
    ("preset iwae-paper", ["--lr-schedule", "constant"], "--lr-schedule: stored iwae-paper, asked constant"),
    ("continuous bernoulli", ["--likelihood", "bernoulli"],
     "--likelihood: stored continuous-bernoulli, asked bernoulli"),
    ("learned variance", ["--obs-var", "optimal"], "--obs-var: stored learned, asked optimal"),
    ("optimal variance", ["--obs-var", "learned"], "--obs-var: stored optimal, asked learned"),
    ("free bits", ["--free-bits", "0"], "--free-bits: stored 0.5, asked 0"),
])
def test_a_run_resumed_as_another_kind_is_refused_and_left_alone(kind, flags, conflict, kind_run, capsys):
    run = kind_run(kind)
    before = files(run)
    result = call(["train", "--resume", run, "--epochs", KIND_EPOCHS + 1, *flags, "--no-progress", "--no-pictures"],
                  capsys)
    assert result.rc == 2
    result.says(f"cannot resume {run} with a different config", conflict, "start a new run")
    assert_intact(before)


@pytest.mark.parametrize("theirs, mine", [("conv", "iwae k=2"), ("learned variance", "optimal variance"),
                                          ("continuous bernoulli", "free bits"), ("preset iwae-paper", "conv")])
def test_a_checkpoint_of_another_kind_put_in_a_run_folder_is_refused(theirs, mine, kind_runs, kind_run, capsys):
    run = kind_run(mine)
    shutil.copy(kind_runs[theirs] / "checkpoint.npz", run / "checkpoint.npz")
    before = files(run)
    result = call(["train", "--resume", run, "--epochs", KIND_EPOCHS + 1, "--no-progress", "--no-pictures"], capsys)
    assert result.rc == 2
    result.says(f"{run / 'config.json'} disagrees with the config stored in {run / 'checkpoint.npz'}",
                "will not overwrite your edit")
    assert_intact(before)
    for command in (["evaluate", run], ["sample", run]):  # they read the checkpoint's own config: it is whole
        assert call(command, capsys).rc == 0


def test_a_picture_asked_for_at_a_folder_path_is_refused_not_written_beside_it(tmp_path):
    from tinyvae.plots import plot_samples  # noqa: PLC0415

    folder = tmp_path / "pictures"
    folder.mkdir()
    with pytest.raises(ValueError, match=f"path {folder} is a folder; expected a picture file such as"):
        plot_samples(VAE(hidden=(3,), latent=2, input_dim=4), n=4, path=folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pictures"] and not any(folder.iterdir())
