"""The notebooks' models for the browser (notebooks/browser_models.py, docs/lite_models.py).

A notebook's ``fit`` trains natively and, in the browser, loads the checkpoint the site's build trained
natively from the same declaration. These tests pin that the loaded model is the natively trained one
bit for bit, that a checkpoint of another config or seed and a call that strays from its declaration are
refused, that a missing checkpoint says how to get it, and that the build's wheel carries the module and
every checkpoint as plain arrays, or stops the build when a model cannot be made; and, for models of
another kind (notebook 11's), that the browser gets the metrics and records the native runs made and
refuses a record made by another config.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tinyvae import data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
import lite  # noqa: E402
import lite_models  # noqa: E402


def load_module():
    spec = importlib.util.spec_from_file_location("browser_models", ROOT / "notebooks" / "browser_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bm = load_module()


def tiny(seed=0):
    """Two tiny models (a second to train) on 256 digits, declared as a notebook declares its models."""
    mnist = data.load_dataset()
    dataset = data.Dataset(mnist.train_x[:256], mnist.train_y[:256], mnist.val_x[:64], mnist.val_y[:64],
                           mnist.test_x[:64], mnist.test_y[:64])
    base = dict(hidden=(8,), latent=2, batch_size=64, epochs=1, lr=1e-3, seed=seed)
    return bm.Models("00_tiny", dataset, base, {"a": dict(beta=1.0), "b": dict(beta=2.0, obs_var=0.5 / 3)})


def in_the_browser(monkeypatch, folder):
    monkeypatch.setattr(sys, "platform", "emscripten")
    monkeypatch.setattr(bm, "FOLDER", folder)


def test_the_browser_loads_bit_for_bit_the_model_fit_trains_natively(tmp_path, monkeypatch):
    models = tiny()
    made = models.make(tmp_path / "made", log=lambda *_: None)
    assert [p.name for p in made] == ["a.npz", "b.npz"]
    native = {name: models.fit(name, out=tmp_path / name, **models.declared[name]) for name in ("a", "b")}
    in_the_browser(monkeypatch, tmp_path / "made")
    for name, model in native.items():
        loaded = models.fit(name, **models.declared[name])
        assert loaded.config == model.config
        np.testing.assert_array_equal(loaded.theta, model.theta)  # the same weights, bit for bit
        assert loaded.theta.dtype == np.float32
    with np.load(made[1], allow_pickle=False) as arrays:  # plain arrays: weights, configs, no optimizer state
        assert json.loads(str(arrays["train_config"])) == models.every_field(models.config("b"))
        assert not [k for k in arrays.files if k.startswith("optim.")]


def test_the_browser_refuses_a_checkpoint_trained_with_another_seed(tmp_path, monkeypatch):
    tiny(seed=1).make(tmp_path, log=lambda *_: None)
    in_the_browser(monkeypatch, tmp_path)
    with pytest.raises(ValueError, match=r"trained by seed=1, not by the declared seed=0"):
        tiny(seed=0).fit("a", beta=1.0)


def test_fit_refuses_changes_that_are_not_the_declared_ones_before_training(tmp_path):
    models = tiny()
    with pytest.raises(ValueError, match=r"fit\('a', beta=3.0\) is not the declared model 'a' \(beta=1.0\)"):
        models.fit("a", out=tmp_path / "a", beta=3.0)
    with pytest.raises(ValueError, match="not the declared model 'c'"):
        models.fit("c", out=tmp_path / "c", beta=1.0)
    assert not list(tmp_path.iterdir())  # nothing was trained
    assert bm.same_fields({"v": 0.5 / 3}, {"v": (0.5 / 3) * (1 + 1e-12)})
    assert not bm.same_fields({"v": 0.5 / 3}, {"v": 0.5 / 3 * 1.001}) and not bm.same_fields({"v": 1}, {"w": 1})


def test_a_missing_checkpoint_says_how_to_make_it_or_retrain_natively(tmp_path, monkeypatch):
    in_the_browser(monkeypatch, tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no checkpoint of 'a'.*build_site.py --lite.*Jupyter on your own"):
        tiny().fit("a", beta=1.0)


def test_notebook_09_declares_its_thirteen_models_once_for_the_notebook_and_the_build():
    models = bm.models("09_questions")
    assert len(models.declared) == 13 and models.base["seed"] == 0
    assert models.config("glearned")["obs_var"] == pytest.approx(0.0671, abs=5e-5)  # the data's own MSE, printed in section 4
    source = (ROOT / "notebooks" / "09_questions.py").read_text(encoding="utf-8")
    assert 'browser_models.models("09_questions")' in source and "MODELS.fit(name" in source
    with pytest.raises(KeyError, match="declares no models for '11_none'"):
        bm.models("11_none")


def test_the_build_ships_the_module_and_every_checkpoint_in_one_wheel(tmp_path, monkeypatch):
    monkeypatch.setattr(bm, "NOTEBOOKS", {"00_tiny": tiny})
    monkeypatch.setattr(lite_models, "declarations", lambda: bm)
    wheel = lite_models.build_wheel(tmp_path, tmp_path / "work", log=lambda *_: None)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert archive.read("browser_models.py") == (ROOT / "notebooks" / "browser_models.py").read_bytes()
        record = archive.read(f"{lite_models.NAME}-{lite_models.VERSION}.dist-info/RECORD").decode()
    assert {"tinyvae_notebook_checkpoints/00_tiny/a.npz", "tinyvae_notebook_checkpoints/00_tiny/b.npz"} <= names
    assert all(name in record for name in names)
    meta = lite.metadata(wheel)
    assert meta["Name"] == "tinyvae-notebook-models" and lite.licence(meta) == "MIT"
    assert "browser_models" in lite._imports(wheel)  # the notebook's import loads the wheel in the browser
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_build_stops_when_a_model_cannot_be_made(tmp_path, monkeypatch):
    def broken():
        models = tiny()
        models.declared["a"] = dict(beta=-1.0)  # no such model: TrainConfig refuses it
        return models

    monkeypatch.setattr(bm, "NOTEBOOKS", {"00_tiny": broken})
    monkeypatch.setattr(lite_models, "declarations", lambda: bm)
    with pytest.raises(SystemExit, match=r"the models of 00_tiny .* could not be trained: .*beta"):
        lite_models.build_wheel(tmp_path, tmp_path / "work", log=lambda *_: None)
    assert not list(tmp_path.glob("*.whl"))


def test_notebooks_import_browser_models_in_a_cell_the_browser_can_parse():
    # The browser loads a cell's packages from the imports it finds by parsing the cell as Python; a cell
    # with an IPython %-line does not parse, and its `import browser_models` then fails there.
    import ast  # noqa: PLC0415

    jupytext = pytest.importorskip("jupytext")
    importing = []
    for source in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        for cell in jupytext.read(source).cells:
            if cell.cell_type == "code" and "import browser_models" in cell.source:
                importing.append(source.stem)
                ast.parse(cell.source)  # raises SyntaxError on a %-line
    assert set(bm.NOTEBOOKS) <= set(importing), "a notebook with declared models does not import browser_models"


SEMI = dict(labels=10, hidden=(8,), classifier_hidden=(8,), latent=2, epochs=1, limit_train=110, limit_test=50,
            batch_size=50, labelled_batch=10, seed=0)


def tiny_parts(**semi_changes):
    """Notebook 11's two kinds, tiny: a label CVAE with its metrics, M2 and a classifier trained alone."""
    base = dict(hidden=(8,), epochs=1, limit_train=200, limit_test=50, batch_size=50, lr=1e-3, seed=0)
    cvae = bm.WithMetrics("00_parts", None, base, {"label": dict(model="cvae", condition="label", latent=2)})
    m2 = bm.SemiSupervised("00_parts", None, {**SEMI, **semi_changes}, {"m2": {}, "alone-2": dict(steps=2)})
    return bm.Parts(cvae=cvae, m2=m2)


def timeless(records):
    """Per-epoch records without their durations (which two runs of one config never share)."""
    return [{k: v for k, v in r.items() if "seconds" not in k} for r in records]


def test_the_browser_gets_the_metrics_and_records_the_native_runs_made(tmp_path, monkeypatch):
    parts = tiny_parts()
    made = parts.make(tmp_path / "made", log=lambda *_: None)
    assert sorted(p.name for p in made) == ["alone-2.npz", "label.npz", "m2.npz"]
    label = dict(model="cvae", condition="label", latent=2)
    model, metrics = parts["cvae"].fit("label", out=tmp_path / "label", **label)
    m2, alone = parts["m2"].fit("m2", out=tmp_path / "m2"), parts["m2"].fit("alone-2", steps=2)
    in_the_browser(monkeypatch, tmp_path / "made")
    loaded, loaded_metrics = parts["cvae"].fit("label", **label)
    np.testing.assert_array_equal(loaded.theta, model.theta)
    assert timeless(loaded_metrics) == timeless(metrics) and len(metrics) == 1 and "test_kl" in metrics[0]
    record = parts["m2"].fit("m2")
    assert timeless(record["curve"]) == timeless(m2["curve"]) and [r["epoch"] for r in m2["curve"]] == [1]
    assert record["config"] | {"out": None} == m2["config"] | {"out": None}  # but for the run folder
    assert m2["config"]["unlabelled_examples"] == 100 and len(m2["config"]["labelled_indices"]) == 10
    assert parts["m2"].fit("alone-2", steps=2) == alone and 0 <= alone["test_error"] <= 1
    with pytest.raises(ValueError, match="not the declared model 'alone-2'"):
        parts["m2"].fit("alone-2", steps=3)
    with np.load(made[1], allow_pickle=False) as arrays:  # plain arrays: the record and its config as JSON
        assert sorted(arrays.files) == ["record", "train_config"]


def test_the_browser_refuses_a_record_made_by_another_semi_config(tmp_path, monkeypatch):
    tiny_parts()["m2"].make(tmp_path, log=lambda *_: None)
    in_the_browser(monkeypatch, tmp_path)
    with pytest.raises(ValueError, match=r"trained by alpha=0.1, not by the declared alpha=1.0"):
        tiny_parts(alpha=1.0)["m2"].fit("m2")
