"""Checkpoints as plain arrays: ``np.savez`` written atomically, read with ``allow_pickle=False``.

A checkpoint is a flat dictionary of NumPy arrays (strings such as the JSON config are stored as
0-d unicode arrays), so it can be opened by anyone with NumPy and never runs code when loaded.
Writing goes to a temporary file in the same folder, is flushed to disk, then renamed over the
target: a crash mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupt, or of another model."""


def save_arrays(path, arrays):
    """Write ``arrays`` (name -> array) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_arrays(path, required=()):
    """Read every array of the checkpoint at ``path``; a clear error when it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as err:
        raise CheckpointError(
            f"checkpoint {path}: cannot be read as an .npz archive of plain arrays "
            f"(truncated or corrupt?): {err}"
        ) from err
    missing = [name for name in required if name not in arrays]
    if missing:
        raise CheckpointError(f"checkpoint {path}: missing arrays {missing}; it holds {sorted(arrays)}")
    return arrays


def json_array(obj):
    """A JSON document as a 0-d unicode array, storable without pickle."""
    return np.array(json.dumps(obj, sort_keys=True))


def from_json_array(arr, path="checkpoint"):
    try:
        return json.loads(str(arr[()]))
    except (json.JSONDecodeError, TypeError) as err:
        raise CheckpointError(f"{path}: its stored config is not valid JSON: {err}") from err
