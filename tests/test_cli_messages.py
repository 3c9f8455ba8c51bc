"""The command line's first ten minutes: the quick-run flags are listed, a mistyped flag gets the
closest valid one, an error is one line of error and one line of usage, and counts read as English."""

import pytest

from tinyvae import cli
from tinyvae.data import Dataset, load_dataset
from tinyvae.run.folder import plural
from tinyvae.run.train import TrainConfig, resume, train


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_train_help_lists_the_quick_run_flags(capsys):
    code, out, _ = run_cli(["train", "--help"], capsys)
    assert code == 0
    assert "--limit-train N" in out and "--limit-test N" in out
    assert "quick first run" in out


@pytest.mark.parametrize("argv, wrong, right", [
    (["train", "--epoch", "2"], "--epoch", "--epochs"),
    (["train", "--batchsize", "32"], "--batchsize", "--batch-size"),
    (["train", "--limit-trian=500"], "--limit-trian", "--limit-train"),
    (["evaluate", "run", "--iw-sample", "5"], "--iw-sample", "--iw-samples"),
])
def test_a_mistyped_flag_is_answered_with_the_closest_flag(argv, wrong, right, capsys):
    code, _, err = run_cli(argv, capsys)
    first = err.splitlines()[0]
    assert code == 2
    assert first.startswith(f"tinyvae {argv[0]}: error: unrecognized arguments: {wrong}"), err
    assert first.endswith(f"did you mean {right}?"), err


def test_several_mistyped_flags_each_get_their_suggestion(capsys):
    _, _, err = run_cli(["train", "--epoch", "2", "--latnet", "4"], capsys)
    assert "did you mean --epochs (for --epoch), --latent (for --latnet)?" in err


def test_a_flag_with_no_close_match_gets_no_guess(capsys):
    _, _, err = run_cli(["train", "--colour", "red"], capsys)
    assert "unrecognized arguments: --colour red" in err and "did you mean" not in err


@pytest.mark.parametrize("argv, guess", [
    (["trian"], "did you mean 'train'?"),
    (["train", "--likelihood", "bernouli"], "did you mean 'bernoulli'?"),
])
def test_a_mistyped_command_or_choice_is_answered_with_the_closest_one(argv, guess, capsys):
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "invalid choice" in err and guess in err.splitlines()[0], err


@pytest.mark.parametrize("argv", [
    ["train", "--epoch", "2"], ["train", "--latent", "x"], ["train", "--epochs", "0"], ["evaluate"],
    ["trian"], ["sample"],
])
def test_an_error_is_one_line_of_error_and_one_line_of_usage(argv, capsys):
    code, out, err = run_cli(argv, capsys)
    lines = err.splitlines()
    assert code == 2 and out == ""
    assert len(lines) == 2, err
    assert lines[0].startswith("tinyvae") and ": error: " in lines[0]
    assert lines[1].startswith("usage: tinyvae") and "--help" in lines[1], err


def test_the_usage_line_names_the_positional_arguments(capsys):
    _, _, err = run_cli(["evaluate"], capsys)
    assert err.splitlines()[1].startswith("usage: tinyvae evaluate [FLAGS] CHECKPOINT_OR_RUN_DIR"), err


def test_plural_says_one_epoch_and_two_epochs():
    assert [plural(n, "epoch") for n in (0, 1, 2)] == ["0 epochs", "1 epoch", "2 epochs"]


@pytest.fixture(scope="module")
def tiny_mnist():
    full = load_dataset()
    return Dataset(full.train_x[:128], full.train_y[:128], full.val_x, full.val_y, full.test_x[:64], full.test_y[:64])


def test_a_one_epoch_run_says_one_epoch_when_it_starts_and_when_it_is_resumed(tmp_path, tiny_mnist):
    config = TrainConfig(hidden=(16,), latent=2, batch_size=64, epochs=1, out=str(tmp_path / "run"))
    lines = []
    run_dir = train(config, dataset=tiny_mnist, log=lines.append, progress=False, pictures=False)
    resume(run_dir, dataset=tiny_mnist, log=lines.append, progress=False, pictures=False)
    text = "\n".join(lines)
    assert "examples, 1 epoch on cpu" in text
    assert "already holds all 1 epoch;" in text
    assert "1 epochs" not in text
