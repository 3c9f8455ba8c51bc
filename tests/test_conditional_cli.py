"""The conditional models from the command line and the Python API: they train, record their condition, and
refuse bad input with a sentence (no traceback) and no run folder left behind."""

import gzip
import json
import struct

import numpy as np
import pytest

import tinyvae
from tinyvae.cli import main
from tinyvae.data import load_dataset
from tinyvae.run.config import TrainConfig

SMALL = ["--limit-train", "256", "--limit-test", "64", "--epochs", "1", "--hidden", "16", "--latent", "3",
         "--batch-size", "64", "--no-progress", "--no-pictures"]


def write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + np.ascontiguousarray(array).tobytes()))


@pytest.fixture(scope="module")
def bad_label_data(tmp_path_factory):
    """MNIST-format files of 28x28 images whose training labels include a 12."""
    folder = tmp_path_factory.mktemp("bad-labels")
    full = load_dataset()
    for split, x, y in (("train", full.train_x[:64], full.train_y[:64].copy()), ("t10k", full.test_x[:16],
                                                                                 full.test_y[:16])):
        if split == "train":
            y[5] = 12
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", x.reshape(-1, 28, 28))
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", y)
    return folder


@pytest.mark.parametrize("flags, condition", [(["--model", "cvae", "--condition", "label"], "label"),
                                               (["--model", "cvae", "--condition", "quadrants", "--quadrants", "1"],
                                                "quadrants"),
                                               (["--model", "quadrant-regressor", "--quadrants", "3"], "quadrants")])
def test_conditional_models_train_from_the_command_line_and_record_their_condition(tmp_path, flags, condition):
    out = tmp_path / "run"
    assert main(["train", *flags, *SMALL, "--out", str(out)]) == 0
    stored = json.loads((out / "config.json").read_text())
    assert stored["condition"] == stored["model_config"]["condition"] == condition
    model = tinyvae.load_model(out / "checkpoint.npz")
    assert model.config.model == flags[1] and model.config.condition == condition


def test_the_label_cvae_trains_from_the_python_api_with_its_labels_and_draws_each_digit(tmp_path):
    run = tinyvae.train(TrainConfig(model="cvae", condition="label", hidden=(16,), latent=3, epochs=1, batch_size=64,
                                    limit_train=256, limit_test=64, out=str(tmp_path / "run")),
                        log=lambda line: None, progress=False)
    assert (run / "digits.png").is_file() and (run / "style_transfer.png").is_file()
    model = tinyvae.load_model(run / "checkpoint.npz")
    assert tinyvae.plots.digit_grid(model, n=2).shape == (2, 10, 784)
    x, y = load_dataset().test_x[:5], load_dataset().test_y[:5]
    nll = tinyvae.conditional_nll(model, x, labels=y, k=4)
    assert nll.shape == (5,) and np.all(np.isfinite(nll))


@pytest.mark.parametrize("flags, says", [
    (["--model", "cvae"], "model 'cvae' needs a condition, and no --condition was given: add --condition label or "
                          "--condition quadrants (with --quadrants 1, 2 or 3)"),
    (["--model", "cvae", "--condition", "quadrants"], "condition 'quadrants' needs the number of quadrants seen, and "
                                                      "no --quadrants was given: add --quadrants 1"),
    (["--model", "cvae", "--condition", "quadrants", "--quadrants", "4"],
     "argument --quadrants: expected 1, 2 or 3 quadrants seen, got '4'"),
    (["--model", "cvae", "--condition", "quadrants", "--quadrants", "0"],
     "argument --quadrants: expected 1, 2 or 3 quadrants seen, got '0'"),
    (["--model", "vae", "--condition", "label"], "--condition label sets a condition, which only a conditional model "
                                                 "reads: add --model cvae"),
    (["--model", "quadrant-regressor"], "and no --quadrants was given"),
    (["--model", "quadrant-regressor", "--condition", "label"],
     "reads no label, got --condition label: drop --condition (or pass --condition quadrants) and give --quadrants 1, "
     "2 or 3"),
    (["--model", "cvae", "--condition", "label", "--objective", "iwae"],
     "the conditional models are built for objective 'elbo', got 'iwae' (model 'cvae'): drop --objective iwae"),
    (["--model", "cvae", "--condition", "quadrants", "--quadrants", "2", "--likelihood", "gaussian"],
     "the quadrant condition scores the unseen pixels with a Bernoulli (eq:cvae-unseen-nll), got likelihood "
     "'gaussian'"),
])
def test_impossible_conditional_flags_are_refused_with_a_sentence_and_no_run_folder(tmp_path, capsys, flags, says):
    out = tmp_path / "run"
    try:
        rc = main(["train", *flags, *SMALL, "--out", str(out)])
    except SystemExit as stop:  # argparse refuses a flag's value itself, with exit status 2
        rc = stop.code
    assert rc == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert "got 'none'" not in err and "got 0" not in err and "needs a VAE" not in err  # nothing the user did not type
    assert not out.exists()


def test_labels_outside_the_classes_are_refused_before_any_run_folder_exists(tmp_path, capsys, bad_label_data):
    out = tmp_path / "run"
    rc = main(["train", "--model", "cvae", "--condition", "label", *SMALL, "--data", str(bad_label_data), "--out",
               str(out)])
    err = capsys.readouterr().err
    assert rc != 0 and "Traceback" not in err
    assert "the train labels of" in err and "hold the label 12" in err and "expected labels 0..9" in err
    assert not out.exists()


def test_a_conditional_run_given_to_the_unconditional_evaluation_is_refused_and_its_folder_kept(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "cvae", "--condition", "label", *SMALL, "--out", str(out)]) == 0
    capsys.readouterr()
    before = sorted(p.name for p in out.iterdir())
    assert main(["evaluate", str(out)]) != 0
    err = capsys.readouterr().err
    assert "holds a conditional model (cvae" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == before


def test_resuming_a_conditional_run_as_an_unconditional_one_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "cvae", "--condition", "label", *SMALL, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--model", "vae", "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert "--model: stored cvae, asked vae" in err and "Traceback" not in err


def test_a_conditional_run_resumes_bit_for_bit_like_an_uninterrupted_one(tmp_path):
    flags = ["--model", "cvae", "--condition", "label", *SMALL]
    assert main(["train", *flags, "--epochs", "2", "--out", str(tmp_path / "whole")]) == 0
    assert main(["train", *flags, "--out", str(tmp_path / "parts")]) == 0
    assert main(["train", "--resume", str(tmp_path / "parts"), "--epochs", "2", "--no-progress", "--no-pictures"]) == 0
    whole, parts = (tinyvae.load_model(tmp_path / name / "checkpoint.npz") for name in ("whole", "parts"))
    np.testing.assert_array_equal(whole.theta, parts.theta)


def test_tinyvae_plot_draws_a_conditional_runs_own_pictures_and_the_unconditional_ones_refuse_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "quadrant-regressor", "--quadrants", "2", *SMALL, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["plot", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "completion.png")
    for command in (["sample", str(out), "--out", str(tmp_path / "picture.png")], ["plot", str(out), "--traverse"]):
        assert main(command) != 0
        err = capsys.readouterr().err
        assert "holds a conditional model (quadrant-regressor" in err and "Traceback" not in err
    assert not (tmp_path / "picture.png").exists() and not (out / "traversals.png").exists()
