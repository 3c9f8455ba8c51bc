"""Checkpoints written by tinyvae 0.1.0 (commit f5b1629) still load and resume bit for bit.

tests/fixtures/checkpoints_v0.1 holds three runs made by that version (README.md and make.sh there
record how), and what that version wrote when it resumed each for one more epoch. Today's code
resumes a copy of each run; its metrics and every array of its checkpoint must be the same.
"""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import tinyvae

FIXTURES = Path(__file__).parent / "fixtures" / "checkpoints_v0.1"
TIMING_KEYS = ("seconds", "eval_seconds")
RUN_PATH_KEYS = ("train_config",)  # holds the run folder's path, which differs between the two resumes


def _digests(path):
    """The SHA-256 of each array's dtype, shape and bytes, as the fixture's digest.py computes it."""
    with np.load(path, allow_pickle=False) as f:
        return {key: hashlib.sha256(f"{f[key].dtype.str}{f[key].shape}".encode() + f[key].tobytes()).hexdigest()
                for key in sorted(f.files) if key != "seconds"}


def _metrics(folder):
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in rows]


@pytest.mark.parametrize("run", ["mlp", "conv", "iwae"])
def test_checkpoint_of_version_0_1_resumes_bit_for_bit(run, tmp_path):
    folder = tmp_path / run
    shutil.copytree(FIXTURES / run, folder)
    tinyvae.resume(folder, epochs=3, progress=False, log=lambda *a, **k: None, pictures=False)
    reference = FIXTURES / "reference" / run
    assert _metrics(folder) == _metrics(reference)
    expected = json.loads((reference / "checkpoint_sha256.json").read_text())
    got = _digests(folder / "checkpoint.npz")
    assert sorted(got) == sorted(expected)
    differ = [key for key in expected if key not in RUN_PATH_KEYS and got[key] != expected[key]]
    assert differ == [], f"arrays that differ from what version 0.1.0 wrote when resuming {run}: {differ}"


@pytest.mark.parametrize("run", ["mlp", "conv", "iwae"])
def test_checkpoint_of_version_0_1_loads_as_a_model(run):
    model = tinyvae.load_model(FIXTURES / run / "checkpoint.npz")
    config = json.loads((FIXTURES / run / "config.json").read_text())
    assert model.config.latent == config["latent"]
