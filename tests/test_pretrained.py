"""The bundled models (tinyvae/pretrained): each is what its recipe trains, and the retrain switch retrains.

A recipe is rerun with its command and the result compared with the bundled file bit for bit. The
comparison holds on the machine and BLAS kernel that made the files; another CPU's float32 matrix
products may round differently in the last bits (see tinyvae/pretrained/__init__.py).
"""

import shlex

import numpy as np
import pytest

from tinyvae import load_model, pretrained
from tinyvae.run.cli import main as cli_main
from tinyvae.pretrained import recipes

# A recipe small enough to train in a second, for the tests of the mechanism itself.
TINY = {"flags": dict(model="vae", hidden=(8,), latent=2, epochs=1, limit_train=256, limit_test=64, seed=3),
        "what": "a tiny VAE for the tests"}


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(recipes.RECIPES, "tiny", TINY)
    return "tiny"


def _same_model(a, b):
    assert a.config == b.config
    np.testing.assert_array_equal(a.theta, b.theta)  # bit for bit


def test_every_bundled_model_is_the_model_of_its_recipe():
    assert pretrained.names()
    total = 0
    for name in pretrained.names():
        model = pretrained.load(name, retrain=False)
        assert model.config == pretrained.config(name).model_config(784, (28, 28)), name
        total += pretrained.path(name).stat().st_size
    assert total < 8e6, f"the bundled models take {total / 1e6:.1f} MB; keep them to a few MB"


def test_a_bundled_model_rebuilds_bit_for_bit_from_its_recipe(tmp_path):
    rebuilt = pretrained.build("vae-z2", tmp_path / "vae-z2.npz", progress=False, log=lambda line: None)
    _same_model(load_model(rebuilt), pretrained.load("vae-z2", retrain=False))


def test_the_documented_command_trains_the_same_weights_as_the_recipe(tiny, tmp_path):
    built = load_model(pretrained.build(tiny, tmp_path / "tiny.npz", progress=False, log=lambda line: None))
    argv = shlex.split(pretrained.command(tiny))[1:] + ["--out", str(tmp_path / "run"), "--no-progress",
                                                         "--no-pictures"]
    assert cli_main(argv) == 0
    _same_model(load_model(tmp_path / "run" / "checkpoint.npz"), built)


def test_retrain_variable_makes_load_train_the_recipe(tiny, tmp_path, monkeypatch):
    built = load_model(pretrained.build(tiny, tmp_path / "tiny.npz", progress=False, log=lambda line: None))
    monkeypatch.setenv(pretrained.RETRAIN_VARIABLE, "1")
    _same_model(pretrained.load(tiny, progress=False), built)  # there is no bundled tiny.npz: it was trained
    monkeypatch.setenv(pretrained.RETRAIN_VARIABLE, "0")
    with pytest.raises(Exception, match="tiny.npz"):
        pretrained.load(tiny)


def test_an_unknown_name_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="no bundled model named 'vae-z3'.*vae-z2"):
        pretrained.load("vae-z3")
