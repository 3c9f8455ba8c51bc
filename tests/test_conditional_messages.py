"""What the conditional models say to their user: the refusals of the unconditional commands, the complete
evaluation call, the run summary's widths, the API's errors about the caller's own arrays, and the commands and
Python of conditional.md's "Try it" section, run for real."""

import dataclasses
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

import tinyvae
import tinyvae.data
from tinyvae.checks import ShapeError
from tinyvae.cli import main
from tinyvae.errors import InputError
from tinyvae.models.conditioning import describe
from tinyvae.models.config import ModelConfig
from tinyvae.models.parts.conditions import LabelError
from tinyvae.run.loop import summary

PAGE = Path(__file__).resolve().parents[1] / "derivations" / "conditional.md"
SMALL = ["--limit-train", "256", "--limit-test", "64", "--epochs", "1", "--hidden", "16", "--latent", "3",
         "--batch-size", "64", "--no-progress", "--no-pictures"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny label CVAE and a tiny quadrant CVAE, trained from the command line."""
    folder = tmp_path_factory.mktemp("runs")
    flags = {"label": ["--model", "cvae", "--condition", "label"],
             "quadrants": ["--model", "cvae", "--condition", "quadrants", "--quadrants", "2"]}
    for name, given in flags.items():
        assert main(["train", *given, *SMALL, "--out", str(folder / name)]) == 0
    return folder


def _small_dataset(monkeypatch, n=6):
    """``tinyvae.data.load_dataset`` returning the first ``n`` test digits only, so that a printed call runs fast."""
    full = tinyvae.data.load_dataset()
    small = dataclasses.replace(full, test_x=full.test_x[:n], test_y=full.test_y[:n])
    monkeypatch.setattr(tinyvae.data, "load_dataset", lambda *a, **k: small)


@pytest.mark.parametrize("condition", ["label", "quadrants"])
@pytest.mark.parametrize("command, name", [(["evaluate"], "tinyvae evaluate"), (["sample"], "tinyvae sample"),
                                           (["plot", "--traverse"], "tinyvae plot --traverse")])
def test_unconditional_commands_refuse_a_conditional_run_naming_themselves_and_pointing_to_tinyvae_plot(
        runs, capsys, monkeypatch, condition, command, name):
    run = runs / condition
    before = sorted(p.name for p in run.iterdir())
    assert main([command[0], str(run), *command[1:]]) == 1
    err = capsys.readouterr().err
    assert f"{name} is for unconditional models only" in err and f"tinyvae plot {run}" in err
    assert "benchmarks/cvae_quadrants.py" not in err and "no condition" not in err and "Traceback" not in err
    assert ("labels=d.test_y" in err) == (condition == "label")
    assert sorted(p.name for p in run.iterdir()) == before
    call = err.split("score its test digits in Python with: ", 1)[1].strip()
    _small_dataset(monkeypatch)
    scope = {}
    exec(call.replace("; tinyvae.conditional_nll", "; result = tinyvae.conditional_nll"), scope)  # noqa: S102
    assert np.isfinite(scope["result"])  # the printed call is complete: it runs as given


def test_the_done_line_of_a_conditional_run_gives_the_complete_evaluation_call(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "cvae", "--condition", "label", *SMALL, "--out", str(out)]) == 0
    done = [line for line in capsys.readouterr().out.splitlines() if line.startswith("done:")][0]
    assert done.endswith(f"evaluate it with: import tinyvae, tinyvae.data; d = tinyvae.data.load_dataset(); "
                         f"tinyvae.conditional_nll(tinyvae.load_model('{out}/checkpoint.npz'), d.test_x, "
                         f"labels=d.test_y, k=100).mean()")


def test_run_summaries_show_the_networks_true_input_widths_and_no_kl_for_the_regressor():
    cvae = ModelConfig(model="cvae", condition="quadrants", quadrants=2, hidden=(400,), latent=20)
    regressor = ModelConfig(model="quadrant-regressor", condition="quadrants", quadrants=2, hidden=(400,))
    label = ModelConfig(model="cvae", condition="label", hidden=(400,), latent=20)
    assert describe(cvae) == "cvae [x|c] 2352-400-20 relu bernoulli, condition quadrants (2 seen)"
    assert describe(regressor) == "quadrant-regressor c 1568-400-784 relu bernoulli, condition quadrants (2 seen)"
    assert describe(label) == "cvae [x|c] 794-400-20 relu bernoulli, condition label (10 classes)"
    record = {"epoch": 1, "train_loss": 150.0, "train_recon": 150.0, "train_kl": 0.0, "test_loss": 140.0,
              "test_recon": 140.0, "test_kl": 0.0, "beta": 1.0, "seconds": 2.0, "eval_seconds": 0.5}
    assert summary(record, 3, latent=False) == "epoch 1/3  train 150.00  test 140.00  2.0 s (+0.5 s eval)"
    assert "KL 0.00" in summary(record, 3) and "β 1" in summary(record, 3)


def test_resuming_with_a_condition_the_run_never_had_says_stored_none(runs, capsys, tmp_path):
    out = tmp_path / "vae"
    assert main(["train", *SMALL, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--model", "cvae", "--condition", "quadrants", "--quadrants", "2"]) == 2
    err = capsys.readouterr().err
    assert "--condition: stored none, asked quadrants" in err and "--quadrants: stored none, asked 2" in err


def test_the_help_texts_name_the_conditional_and_semi_supervised_models(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    top = " ".join(capsys.readouterr().out.split())
    assert "a conditional VAE (cvae), the quadrant-regressor or m2" in top
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "a conditional VAE (--model cvae" in text and "--model quadrant-regressor" in text and "--model m2" in text
    for command in ("evaluate", "sample"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "Unconditional models only" in " ".join(capsys.readouterr().out.split())
    readme = (PAGE.parents[1] / "README.md").read_text(encoding="utf-8")
    assert "[--model vae|ae|cvae|quadrant-regressor|m2]" in readme


# ---------------------------------------------------------------- the Python API


def test_sample_takes_labels_as_a_shortcut_for_their_one_hot_rows_and_returns_the_models_dtype(runs):
    model = tinyvae.load_model(runs / "label" / "checkpoint.npz")
    by_labels = model.sample(3, np.random.default_rng(0), labels=[3, 7])
    by_rows = model.sample(3, np.random.default_rng(0), c=np.eye(10)[[3, 7]])  # float64 rows
    np.testing.assert_array_equal(by_labels, by_rows)
    assert by_labels.shape == (3, 2, 784) and by_rows.dtype == model.dtype == np.float32


@pytest.mark.parametrize("kwargs, says", [
    (dict(c=np.array([3])), "c: expected one-hot rows of shape (R, 10) (e.g. np.eye(10)[[3]]), or labels=[3], got "
                            "shape (1,)"),
    (dict(c=np.eye(4)), "got shape (4, 4)"),
    (dict(), "got neither"),
    (dict(c=np.eye(10), labels=[1]), "got both c and labels"),
])
def test_sample_describes_the_callers_own_array_when_it_refuses_it(runs, kwargs, says):
    model = tinyvae.load_model(runs / "label" / "checkpoint.npz")
    with pytest.raises((InputError, ShapeError)) as err:
        model.sample(4, **kwargs)
    assert says in str(err.value) and "(4, 1)" not in str(err.value)


def test_missing_labels_name_the_function_that_was_called(runs):
    model = tinyvae.load_model(runs / "label" / "checkpoint.npz")
    with pytest.raises(LabelError, match=re.escape("(conditional_nll(model, x, labels=y)), got None")):
        tinyvae.conditional_nll(model, tinyvae.data.load_dataset().test_x[:3])


def test_conditional_nll_takes_a_list_mask_like_the_array(runs):
    model = tinyvae.load_model(runs / "quadrants" / "checkpoint.npz")
    x = tinyvae.data.load_dataset().test_x[:3]
    mask = np.r_[np.ones(400), np.zeros(384)]
    np.testing.assert_array_equal(tinyvae.conditional_nll(model, x, mask=list(mask), k=3),
                                  tinyvae.conditional_nll(model, x, mask=mask, k=3))


@pytest.mark.parametrize("mask, which", [(np.ones(784), "the mask"), (np.r_[[np.zeros(784)], np.ones((2, 784))],
                                                                      "row 1 of the mask")])
def test_conditional_nll_refuses_a_mask_that_leaves_nothing_unseen(runs, mask, which):
    model = tinyvae.load_model(runs / "quadrants" / "checkpoint.npz")
    with pytest.raises(InputError, match=f"mask: {which} marks every pixel seen, so no pixel is left to predict"):
        tinyvae.conditional_nll(model, tinyvae.data.load_dataset().test_x[:3], mask=mask, k=2)


# ---------------------------------------------------------------- the page's "Try it"


def test_the_pages_try_it_commands_and_python_run_as_written(tmp_path, monkeypatch, capsys):
    """Every command of conditional.md's "Try it" runs (training smaller: a tiny network, 300 digits, one epoch),
    then its Python block, unchanged, on those runs."""
    section = PAGE.read_text(encoding="utf-8").split("## Try it", 1)[1].split("\n## ", 1)[0]
    commands = [line.split("#")[0].strip() for block in re.findall(r"```sh\n(.*?)```", section, re.S)
                for line in block.splitlines() if line.strip()]
    assert sum(c.startswith("tinyvae train") for c in commands) == 4
    assert sum(c.startswith("tinyvae plot") for c in commands) == 3
    monkeypatch.chdir(tmp_path)
    quick = ["--hidden", "16", "--limit-train", "300", "--limit-test", "100", "--epochs", "1", "--no-progress"]
    for command in commands:
        args = shlex.split(command)[1:]
        assert main(args + quick if args[0] == "train" else args) == 0, command
    assert (tmp_path / "runs" / "regressor-q2" / "completion.png").is_file()
    (python,) = re.findall(r"```py\n(.*?)```", section, re.S)
    exec(python, {})  # noqa: S102
    assert (tmp_path / "completion_vs_regressor.png").is_file()
