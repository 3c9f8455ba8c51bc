"""What a learner of the two-stochastic-layer VAE is told: errors that name the flags they typed (or did not
type) with the values as they would type them, a two-layer file offered to a one-layer model, run folders
accepted by ``tinyvae.load_model``, help texts that say what the code does, and pictures and reports that
say which layer they show.

Runs of 256 bundled MNIST digits with tiny layers; each trains in about a second.
"""

import argparse

import numpy as np
import pytest

from tinyvae import cli
from tinyvae.checkpoint import CheckpointError
from tinyvae.evaluation.command import format_report
from tinyvae.evaluation.evaluate import evaluate_checkpoint
from tinyvae.evaluation.latent_pictures import plot_interpolation
from tinyvae.models.config import ModelConfig
from tinyvae.models.two_layer import TwoLayerVAE
from tinyvae.models.vae import VAE, load_model
from tinyvae.run.config import PRESETS, TWO_LAYER_PRESETS, TrainConfig, epoch_lr

BASE_FLAGS = ["--hidden", "16", "--activation", "tanh", "--binarize", "dynamic", "--batch-size", "64",
              "--limit-train", "256", "--limit-test", "64", "--no-progress", "--no-pictures"]
TWO_LAYER_FLAGS = ["--stochastic-layers", "2", "--hidden2", "8", "--latent", "6", "3", *BASE_FLAGS]


def status(argv):
    """The exit status of ``tinyvae ARGV``: argparse itself exits (status 2) on a value it refuses."""
    try:
        return cli.main(argv)
    except SystemExit as stop:
        return stop.code


@pytest.fixture(scope="module")
def two_layer_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("two") / "run"
    assert cli.main(["train", "--out", str(out), "--epochs", "1", *TWO_LAYER_FLAGS]) == 0
    return out


def help_of(command, flag):
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return " ".join(next(a for a in sub._actions if flag in a.option_strings).help.split())


# --------------------------------------------------------------------------- the latent sizes


def test_two_layers_with_one_latent_size_say_whether_it_was_typed_or_the_default(tmp_path, capsys):
    out = tmp_path / "run"
    assert status(["train", "--out", str(out), *BASE_FLAGS, "--stochastic-layers", "2"]) == 2
    err = capsys.readouterr().err
    assert f"got one, the default --latent {TrainConfig().latent}" in err, err
    assert "--latent Z1 Z2" in err and "iwae-paper uses 100 50" in err, err
    assert "Traceback" not in err and not out.exists()
    assert status(["train", "--out", str(out), *BASE_FLAGS, "--stochastic-layers", "2", "--latent", "6"]) == 2
    err = capsys.readouterr().err
    assert "got one, --latent 6" in err and "default" not in err and not out.exists(), err


def test_two_layers_without_latent_sizes_also_name_the_other_problems(capsys):
    assert status(["train", *BASE_FLAGS, "--stochastic-layers", "2", "--likelihood", "gaussian"]) == 2
    err = capsys.readouterr().err
    assert "the default --latent 20" in err and "likelihood 'bernoulli'" in err, err


def test_two_latent_sizes_with_one_layer_name_the_flag_as_typed(tmp_path, capsys):
    assert status(["train", "--out", str(tmp_path / "run"), *BASE_FLAGS, "--latent", "100", "50"]) == 2
    err = capsys.readouterr().err
    assert "--latent 100 50 gives two sizes" in err and "one stochastic layer takes one" in err, err
    assert "latent2" not in err, err


# --------------------------------------------------------------------------- resume


@pytest.mark.parametrize("flags, conflict", [
    (["--latent", "6"], "--latent: stored 6 3, asked 6"),
    (["--latent", "7", "3"], "--latent: stored 6 3, asked 7 3"),
    (["--stochastic-layers", "1"], "--stochastic-layers: stored 2, asked 1"),
    (["--hidden2", "9", "9"], "--hidden2: stored 8, asked 9 9"),
    (["--activation", "relu"], "--activation: stored tanh, asked relu"),
])
def test_a_resume_that_changes_the_config_names_flags_and_values_as_typed(two_layer_run, capsys, flags, conflict):
    before = (two_layer_run / "checkpoint.npz").read_bytes()
    assert status(["train", "--resume", str(two_layer_run), "--epochs", "2", *flags]) == 2
    err = capsys.readouterr().err
    assert conflict in err and "latent2" not in err and "stochastic_layers" not in err, err
    assert "Traceback" not in err and (two_layer_run / "checkpoint.npz").read_bytes() == before


# --------------------------------------------------------------------------- loading


def test_a_two_layer_file_offered_to_a_one_layer_model_says_what_it_is_and_how_to_load_it(tmp_path):
    two = TwoLayerVAE(ModelConfig(stochastic_layers=2, hidden=(16,), latent=6, latent2=3, hidden2=(8,),
                                  activation="tanh"))
    two.save(tmp_path / "two.npz")
    with pytest.raises(CheckpointError) as refused:
        VAE(ModelConfig(hidden=(16,), latent=6, activation="tanh")).load_weights(tmp_path / "two.npz")
    text = str(refused.value)
    assert "holds a VAE with two stochastic layers" in text and "this model is a VAE with one" in text, text
    assert f"tinyvae.load_model('{tmp_path / 'two.npz'}')" in text, text
    assert "hidden2" not in text and "latent2" not in text, text


def test_a_one_layer_file_offered_to_a_two_layer_model_says_what_it_is_and_how_to_load_it(tmp_path):
    VAE(ModelConfig(hidden=(16,), latent=6, activation="tanh")).save(tmp_path / "one.npz")
    two = TwoLayerVAE(ModelConfig(stochastic_layers=2, hidden=(16,), latent=6, latent2=3, activation="tanh"))
    with pytest.raises(CheckpointError) as refused:
        two.load_weights(tmp_path / "one.npz")
    text = str(refused.value)
    assert "holds a VAE with one stochastic layer" in text and "this model is a VAE with two" in text, text
    assert "tinyvae.load_model(" in text and "hidden2" not in text, text


def test_load_model_accepts_a_run_folder_that_holds_a_checkpoint(two_layer_run):
    from_folder, from_file = load_model(two_layer_run), load_model(two_layer_run / "checkpoint.npz")
    assert isinstance(from_folder, TwoLayerVAE)
    assert np.array_equal(from_folder.theta, from_file.theta)


def test_load_model_refuses_a_folder_without_a_checkpoint_naming_the_file_it_looked_for(tmp_path):
    with pytest.raises(CheckpointError, match=f"{tmp_path} holds no checkpoint.npz"):
        load_model(tmp_path)


# --------------------------------------------------------------------------- help texts


def test_evaluate_seed_help_says_a_run_that_recorded_its_binarization_keeps_it(two_layer_run):
    text = help_of("evaluate", "--seed")
    assert "binarization" in text and "recorded a test binarization seed" in text and "keep that seed" in text, text
    results = [evaluate_checkpoint(two_layer_run, seed=seed, limit=32) for seed in (0, 1)]
    assert results[0]["evaluated_on"] == results[1]["evaluated_on"]  # the run's own seed, whatever --seed


def test_the_preset_help_gives_the_two_layer_sizes_it_sets():
    sizes = TWO_LAYER_PRESETS["iwae-paper"]
    text = help_of("train", "--preset")
    assert f"--stochastic-layers 2: {sizes['latent']} and {sizes['latent2']} latent units" in text, text
    assert f"--hidden2 {' '.join(map(str, sizes['hidden2']))}" in text, text


def test_the_lr_schedule_help_states_the_schedule_epoch_lr_follows():
    text = help_of("train", "--lr-schedule")
    preset = TrainConfig(**PRESETS["iwae-paper"])
    stages = [3 ** i for i in range(8)]
    assert f"{sum(stages):,} epochs" in text and sum(stages) == preset.epochs, text
    assert "3^i epochs at --lr·10^(−i/7), i = 0..7" in text and "follows the start" in text, text
    first_epochs = np.cumsum([0, *stages[:-1]]) + 1  # the first epoch of each stage
    assert [epoch_lr(preset, int(e)) for e in first_epochs] == pytest.approx([1e-3 * 10 ** (-i / 7) for i in range(8)])


# --------------------------------------------------------------------------- pictures and reports


def test_the_two_layer_interpolation_title_says_it_interpolates_z1():
    model = TwoLayerVAE(ModelConfig(stochastic_layers=2, hidden=(16,), latent=6, latent2=3, activation="tanh"))
    pair = np.random.default_rng(0).uniform(0, 1, (2, 784))
    fig = plot_interpolation(model, pair[0], pair[1], steps=3)
    assert "posterior means E_q[z1|x]" in fig._suptitle.get_text()


def test_the_two_layer_report_prints_counts_per_layer_and_leaves_each_unit_to_json(two_layer_run):
    result = evaluate_checkpoint(two_layer_run, limit=32)
    text = format_report(result)
    assert "active units   z1:" in text and "active units   z2:" in text
    assert "--json" in text and "var E[u|x]" not in text, text
    assert len(text.splitlines()) < 20, text
    assert [len(layer["mean_variances"]) for layer in result["layers"]] == [6, 3]
