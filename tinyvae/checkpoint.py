"""Checkpoints as plain arrays: ``np.savez`` written atomically, read with ``allow_pickle=False``.

A checkpoint is a flat dictionary of NumPy arrays (strings such as the JSON config are stored as
0-d unicode arrays), so it can be opened by anyone with NumPy and never runs code when loaded.
Writing goes to a temporary file ``.NAME.tmp-PID`` in the same folder, is flushed to disk, then
renamed over the target: a crash mid-write leaves the previous checkpoint intact, and the next
write into that folder removes the temporary files of writers that are no longer running.

Every array read is checked by one rule, whoever reads it (load_model, evaluate, resume, sample,
plot): text is a 0-d string, an integer is a 0-d counter >= 0, and everything else is an array
of real floating-point numbers, all finite. Integer, complex, boolean or byte-string weights, NaN
and inf, a ``.npy`` or a pickle saved under the name ``.npz``: each is refused with a message
naming the file, the array, what it holds and what was expected.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .errors import FileError, UserError, file_errors, process_alive


class CheckpointError(UserError, ValueError):
    """A checkpoint file is missing, truncated, corrupt, or of another model."""


CHECKPOINT_NAME = "checkpoint.npz"  # a run folder's checkpoint, which tinyvae train replaces after every epoch


def run_checkpoint(path):
    """The checkpoint file that ``path`` names: ``path`` itself, or the checkpoint.npz of a run folder;
    a folder without one is refused."""
    path = Path(path)
    if not path.is_dir():
        return path
    if not (path / CHECKPOINT_NAME).is_file():
        raise CheckpointError(f"{path} holds no {CHECKPOINT_NAME}: expected a checkpoint .npz file, or a run folder "
                              f"that holds one (tinyvae train writes {CHECKPOINT_NAME} there after each epoch)")
    return path / CHECKPOINT_NAME


TEXT, COUNTER, FLOATS = "a text (a 0-d string)", "an integer counter (a scalar >= 0)", "an array of real floating-point numbers"
# What the arrays tinyvae writes hold, checked whenever they are present, whoever reads the file.
KNOWN_KINDS = {"format": TEXT, "config": TEXT, "train_format": TEXT, "train_config": TEXT, "tinyvae_version": TEXT,
               "epoch": COUNTER, "step": COUNTER, "optim.t": COUNTER, "theta": FLOATS, "sums": FLOATS,
               "seconds": FLOATS}
_TEMPORARY = re.compile(r"^\..+\.tmp-(\d+)$")  # .NAME.tmp-PID, as atomic_write names them
_ZIP_STARTS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip member, or an empty zip archive


# --------------------------------------------------------------------------- writing


def remove_stale_temporaries(folder):
    """Delete ``.NAME.tmp-PID`` files in ``folder`` whose writer PID is no longer running.

    Such a file is what a writer killed mid-write (kill -9, power loss) leaves behind; a file of a
    writer that is still alive is left alone. Returns the paths removed.
    """
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match and not process_alive(int(match.group(1))):
            try:
                entry.unlink()
                removed.append(entry)
            except OSError:  # e.g. a read-only folder: the write that follows will say so
                pass
    return removed


def atomic_write(path, write, *, exclusive=False, after=None):
    """Write ``path`` through ``write(binary_file)`` so that it holds either the old or the new contents.

    The bytes go to ``.NAME.tmp-PID`` beside it, are flushed to disk, and the file is renamed
    over ``path``. ``exclusive=True`` refuses to replace an existing ``path`` (FileExistsError,
    atomically, even when two processes race). OS errors become a FileError naming ``path``,
    followed by ``after`` (what is intact, how to continue).
    """
    path = Path(path)
    taken = False
    with file_errors("write", path, after):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            if exclusive:
                taken = not _link(tmp, path)
            else:
                os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
    if taken:
        raise FileExistsError(errno.EEXIST, "another writer created it first", str(path))
    return path


def _link(tmp, path):
    """Give ``tmp`` the name ``path`` unless ``path`` exists (atomically); False when it did exist."""
    try:
        os.link(tmp, path)  # fails when path exists, even when two processes race for it
    except FileExistsError:
        return False
    except (OSError, AttributeError) as err:  # AttributeError: the browser's Python has no os.link
        if isinstance(err, OSError) and err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            raise
        try:  # a file system without hard links: exclusive creation, then a copy
            with open(path, "xb") as out, open(tmp, "rb") as f:
                out.write(f.read())
        except FileExistsError:
            return False
    return True


def save_arrays(path, arrays, after=None):
    """Write ``arrays`` (name -> array) to ``path`` atomically (see ``atomic_write``)."""
    return atomic_write(path, lambda f: np.savez(f, **arrays), after=after)


# --------------------------------------------------------------------------- reading


# What a checkpoint of another kind is, by its "format" array, added to the refusal of a reader that expects
# other arrays: each module that writes such checkpoints adds its sentence (models/m2.py).
FORMAT_NOTES = {}


def load_arrays(path, required=(), *, texts=(), counters=(), floats=()):
    """Read and check every array of the checkpoint at ``path``; a clear CheckpointError when it is unusable.

    Every array must pass ``array_problem``. ``texts``, ``counters`` and ``floats`` name arrays
    that must be present and of that kind; ``required`` names arrays that must be present.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path}: is a folder; expected a .npz checkpoint file")
    if not path.exists():
        raise CheckpointError(f"checkpoint {path}: no such file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: is not a regular file (a device or a pipe?); expected a .npz file")
    with file_errors("read the checkpoint", path), open(path, "rb") as f:
        start = f.read(8)
        if not start.startswith(_ZIP_STARTS):
            raise CheckpointError(f"checkpoint {path}: cannot be read as an .npz archive of plain arrays: "
                                  f"{_not_an_npz(start)}; expected an .npz archive as np.savez writes it")
        f.seek(0)
        arrays = _read_npz(f, path)
    missing = [name for name in dict.fromkeys((*required, *texts, *counters, *floats)) if name not in arrays]
    if missing:
        fmt = arrays.get("format")
        note = FORMAT_NOTES.get(str(fmt[()])) if fmt is not None and fmt.dtype.kind == "U" and fmt.ndim == 0 else None
        raise CheckpointError(f"checkpoint {path}: missing arrays {missing}; it holds {sorted(arrays)}"
                              + (f". It is {note}" if note else ""))
    kinds = {**KNOWN_KINDS, **dict.fromkeys(texts, TEXT), **dict.fromkeys(counters, COUNTER),
             **dict.fromkeys(floats, FLOATS)}
    problems = []
    for name, value in arrays.items():
        want = kinds.get(name)
        if want is not None and _kind(value) != want:
            problems.append(f"'{name}' must be {want}, got {_describe(value)}")
        elif problem := array_problem(value):
            problems.append(f"'{name}' {problem}")
    if problems:
        raise CheckpointError(f"checkpoint {path}: refused, {'; '.join(problems)}")
    return arrays


def _read_npz(f, path):
    try:
        archive = np.load(f, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, zlib.error) as err:
        raise CheckpointError(f"checkpoint {path}: cannot be read as an .npz archive (truncated or corrupt?): "
                              f"{err}") from err
    arrays = {}
    with archive:
        for name in archive.files:
            try:
                _check_declared_size(archive, name, path)
                arrays[name] = archive[name]
            except CheckpointError:
                raise
            except ValueError as err:
                if "allow_pickle" in str(err):
                    raise CheckpointError(
                        f"checkpoint {path}: cannot be read as an .npz archive of plain arrays: array '{name}' is a "
                        f"pickled Python object, refused because unpickling can run arbitrary code") from err
                raise CheckpointError(f"checkpoint {path}: array '{name}' cannot be read: {err}") from err
            except (zipfile.BadZipFile, EOFError, OSError, KeyError, zlib.error) as err:
                raise CheckpointError(f"checkpoint {path}: array '{name}' cannot be read (truncated or corrupt "
                                      f"archive?): {err}") from err
    return arrays


def _check_declared_size(archive, name, path):
    """Refuse an array whose header declares more bytes than the archive holds for it, before
    NumPy allocates them (a damaged or hostile header could ask for terabytes)."""
    member = name if name in archive.zip.namelist() else f"{name}.npy"
    try:
        info = archive.zip.getinfo(member)
        with archive.zip.open(member) as fp:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
            else:  # NumPy reads (and checks) other versions itself
                return
            header = fp.tell()
    except (KeyError, ValueError, EOFError, OSError, zipfile.BadZipFile, zlib.error):
        return  # NumPy's own read reports it
    declared = math.prod(shape) * dtype.itemsize
    if declared > info.file_size - header:
        raise CheckpointError(f"checkpoint {path}: array '{name}' declares shape {shape} of {dtype} "
                              f"({declared:,} bytes) but the archive holds {info.file_size - header:,} bytes for it; "
                              f"the file is truncated or corrupt")


def _not_an_npz(start):
    if not start:
        return "the file is empty, 0 bytes (truncated or corrupt?)"
    if start.startswith(b"\x93NUMPY"):
        return "it is a single .npy array (np.save), not an .npz archive of named arrays"
    if start[:1] == b"\x80":
        return "it is a Python pickle, refused because unpickling can run arbitrary code"
    return f"it does not start like an .npz (zip) archive (first bytes {start[:8]!r})"


def _kind(a):
    if a.dtype.kind == "U" and a.ndim == 0:
        return TEXT
    if a.dtype.kind in "iu" and a.ndim == 0:
        return COUNTER
    if a.dtype.kind == "f":
        return FLOATS
    return None


def _describe(a):
    shape = "a scalar" if a.ndim == 0 else f"shape {a.shape}"
    if a.dtype.kind == "U" and a.ndim == 0:
        return f"the text {str(a)[:40]!r}"
    return f"dtype {a.dtype}, {shape}"


def array_problem(a):
    """Why the checkpoint array ``a`` is unusable (a phrase), or None when it is fine.

    Text: a 0-d unicode string. Integer: a 0-d counter >= 0. Anything else: real floating point,
    every entry finite. So weights that are integer, complex, boolean, bytes, NaN or inf are refused.
    """
    kind = a.dtype.kind
    if kind == "U":
        return None if a.ndim == 0 else f"must be one text (a 0-d string), got an array of text of shape {a.shape}"
    if kind in "iu":
        if a.ndim != 0:
            return f"must be an integer counter (a scalar), got an integer array of shape {a.shape}"
        return None if int(a) >= 0 else f"must be a counter >= 0, got {int(a)}"
    if kind != "f":
        return f"must be real floating-point numbers (float32 or float64), got {_describe(a)}"
    if a.size and not np.isfinite(a).all():
        nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
        return f"must hold finite numbers, got {nan} NaN and {inf} inf among its {a.size} values"
    return None


# --------------------------------------------------------------------------- JSON inside a checkpoint


def json_array(obj):
    """A JSON document as a 0-d unicode array, storable without pickle."""
    return np.array(json.dumps(obj, sort_keys=True))


def from_json_array(arr, path="checkpoint"):
    """The JSON object (a dict) stored in the 0-d unicode array ``arr``."""
    try:
        value = json.loads(str(arr[()]))
    except (json.JSONDecodeError, TypeError) as err:
        raise CheckpointError(f"{path}: its stored config is not valid JSON: {err}") from err
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: its stored config must be a JSON object (field: value), got "
                              f"{type(value).__name__} {str(value)[:60]}")
    return value


__all__ = ["CheckpointError", "FileError", "array_problem", "atomic_write", "from_json_array", "json_array",
           "load_arrays", "remove_stale_temporaries", "save_arrays"]
