"""Tests for tinyvae.run.train: the config and the CLI, the run folder, reproducibility, exact resume
(at an epoch boundary, mid-epoch, after a real Ctrl-C), NaN handling and the variants that train.

Runs are small (512 training and 256 test images of the bundled MNIST, tiny hidden layers, one to
three epochs) so that the whole file takes seconds.
"""

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinyvae import cli
from tinyvae.checkpoint import CheckpointError, load_arrays
from tinyvae.data import Dataset, load_dataset
from tinyvae.run.train import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    METRICS_NAME,
    ConfigError,
    RunExistsError,
    TrainConfig,
    TrainingDiverged,
    TrainingInterrupted,
    resume,
    train,
)

train_module = importlib.import_module("tinyvae.run.train")  # the module, whatever tinyvae/__init__ exports
loop_module = importlib.import_module("tinyvae.run.loop")
N_TRAIN, N_TEST = 512, 256
SMALL_FLAGS = ["--hidden", "32", "--latent", "4", "--batch-size", "64", "--limit-train", str(N_TRAIN),
               "--limit-test", str(N_TEST), "--no-progress", "--no-pictures"]
TIMING_KEYS = ("seconds", "eval_seconds")


@pytest.fixture(scope="module")
def mnist():
    """512 training and 256 test images of the bundled MNIST, uint8 as stored."""
    full = load_dataset()
    empty_x, empty_y = full.val_x, full.val_y
    return Dataset(full.train_x[:N_TRAIN], full.train_y[:N_TRAIN], empty_x, empty_y,
                   full.test_x[:N_TEST], full.test_y[:N_TEST])


def small(out, **changes):
    """A config that trains in a fraction of a second on the `mnist` fixture; 8 steps per epoch."""
    fields = dict(hidden=(32,), latent=4, batch_size=64, epochs=1, out=None if out is None else str(out))
    fields.update(changes)
    return TrainConfig(**fields)


def run_quietly(config, mnist, **kwargs):
    lines = []
    run_dir = train(config, dataset=mnist, log=lines.append, progress=False, pictures=False, **kwargs)
    return run_dir, lines


def resume_quietly(path, mnist, **kwargs):
    lines = []
    run_dir = resume(path, dataset=mnist, log=lines.append, progress=False, pictures=False, **kwargs)
    return run_dir, lines


def metrics(run_dir, drop_timing=True):
    rows = [json.loads(line) for line in (Path(run_dir) / METRICS_NAME).read_text().splitlines()]
    return [{k: v for k, v in row.items() if not (drop_timing and k in TIMING_KEYS)} for row in rows]


def theta(run_dir):
    return load_arrays(Path(run_dir) / CHECKPOINT_NAME)["theta"]


def assert_same_run(a, b):
    assert metrics(a) == metrics(b)
    np.testing.assert_array_equal(theta(a), theta(b))
    ca, cb = load_arrays(Path(a) / CHECKPOINT_NAME), load_arrays(Path(b) / CHECKPOINT_NAME)
    for key in ("optim.t", "optim.m_sum.0", "optim.v_sum.0"):
        np.testing.assert_array_equal(ca[key], cb[key])


# --------------------------------------------------------------------------- config and CLI


def test_defaults_are_the_pytorch_examples_vae():
    args = cli.build_parser().parse_args(["train"])
    fields = set(TrainConfig.__dataclass_fields__)
    assert not fields & set(vars(args))  # no flag, no override: the dataclass defaults run
    c = TrainConfig()
    assert (c.model, c.hidden, c.latent, c.activation, c.likelihood, c.binarize) == \
        ("vae", (400,), 20, "relu", "bernoulli", "none")
    assert (c.optimizer, c.lr, c.batch_size, c.epochs, c.beta) == ("adam", 1e-3, 128, 10, 1.0)


def test_cli_parses_every_documented_flag():
    args = cli.build_parser().parse_args(
        ["train", "--epochs", "3", "--batch-size", "32", "--lr", "0.01", "--hidden", "200", "200", "--latent", "2",
         "--activation", "tanh", "--likelihood", "gaussian", "--binarize", "dynamic", "--beta", "4",
         "--kl-warmup", "1.5", "--model", "ae", "--device", "cpu", "--seed", "7", "--data", "d", "--out", "o",
         "--resume", "r", "--validation", "100", "--optimizer", "sgd", "--no-progress"])
    assert args.hidden == [200, 200] and args.kl_warmup == 1.5 and args.optimizer == "sgd" and args.no_progress
    assert args.func.__name__ == "train_command"


def test_cli_rejects_unknown_flags_with_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--epoch", "3", "--learning-rate", "1"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


@pytest.mark.parametrize("flags, word", [
    (["--epochs", "-1"], "--epochs"), (["--epochs", "0"], "--epochs"), (["--batch-size", "0"], "--batch-size"),
    (["--latent", "0"], "--latent"), (["--lr", "0"], "--lr"), (["--lr", "-1e-3"], "--lr"), (["--lr", "nan"], "--lr"),
    (["--hidden", "400", "0"], "--hidden"), (["--beta", "-1"], "--beta"), (["--kl-warmup", "-2"], "--kl-warmup"),
    (["--binarize", "sometimes"], "--binarize"), (["--likelihood", "poisson"], "--likelihood"),
    (["--seed", "-3"], "--seed"), (["--epochs", "2.5"], "--epochs"),
])
def test_cli_refuses_impossible_values_with_exit_2(flags, word, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert word in err and "error" in err


@pytest.mark.parametrize("changes, word", [
    ({"epochs": 0}, "epochs"), ({"batch_size": -5}, "batch_size"), ({"latent": 0}, "latent"), ({"lr": 0.0}, "lr"),
    ({"lr": float("inf")}, "lr"), ({"hidden": (64, -1)}, "hidden"), ({"model": "gan"}, "model"),
    ({"optimizer": "rmsprop"}, "optimizer"), ({"device": "tpu"}, "device"), ({"obs_var": 0}, "obs_var"),
    ({"epochs": True}, "epochs"), ({"validation": -1}, "validation"), ({"init": "zeros"}, "init"),
])
def test_train_config_refuses_impossible_values_naming_the_field(changes, word):
    with pytest.raises(ConfigError, match=word):
        TrainConfig(**changes)


# --------------------------------------------------------------------------- a run and its folder


def test_short_run_writes_config_metrics_and_checkpoint_with_documented_keys(tmp_path, mnist):
    run_dir, lines = run_quietly(small(tmp_path / "run", epochs=2), mnist)
    assert run_dir == tmp_path / "run"
    config = json.loads((run_dir / CONFIG_NAME).read_text())
    assert config["latent"] == 4 and config["hidden"] == [32] and config["model_config"]["input_dim"] == 784
    assert {"tinyvae_version", "numpy_version", "device", "device_name"} <= set(config)
    rows = metrics(run_dir, drop_timing=False)
    assert [r["epoch"] for r in rows] == [1, 2]
    for row in rows:
        assert {"epoch", "train_loss", "train_recon", "train_kl", "test_loss", "test_recon", "test_kl", "beta",
                "seconds", "eval_seconds"} <= set(row)
        assert row["train_loss"] == pytest.approx(row["train_recon"] + row["train_kl"], rel=1e-6)
        assert row["test_loss"] == pytest.approx(row["test_recon"] + row["test_kl"], rel=1e-6)
    arrays = load_arrays(run_dir / CHECKPOINT_NAME)
    assert {"format", "config", "theta", "train_format", "train_config", "epoch", "step", "sums", "seconds",
            "optim.t", "optim.m_sum.0", "optim.v_sum.0"} <= set(arrays)
    assert (int(arrays["epoch"]), int(arrays["step"]), int(arrays["optim.t"])) == (2, 0, 16)
    assert sum(line.startswith("epoch ") for line in lines) == 2


def test_checkpoint_loads_as_a_model(tmp_path, mnist):
    from tinyvae import load_model

    run_dir, _ = run_quietly(small(tmp_path / "run"), mnist)
    model = load_model(run_dir / CHECKPOINT_NAME)
    np.testing.assert_array_equal(model.theta, theta(run_dir))


def test_loss_decreases_over_epochs_on_real_mnist(tmp_path, mnist):
    # He init: on only 24 steps it falls faster than the default fan-in uniform init
    run_dir, _ = run_quietly(small(tmp_path / "run", epochs=3, hidden=(64,), latent=8, init="he"), mnist)
    rows = metrics(run_dir)
    train_losses, test_losses = [r["train_loss"] for r in rows], [r["test_loss"] for r in rows]
    assert train_losses[0] > train_losses[1] > train_losses[2]
    assert test_losses[0] > test_losses[2]
    assert test_losses[2] < 300  # nats per example; an untrained decoder gives about 543 (784 log 2)


def test_a_run_folder_is_never_overwritten(tmp_path, mnist, capsys):
    run_dir, _ = run_quietly(small(tmp_path / "run"), mnist)
    before = (run_dir / CHECKPOINT_NAME).read_bytes()
    with pytest.raises(RunExistsError, match="--resume"):
        run_quietly(small(run_dir, seed=1), mnist)
    assert cli.main(["train", "--out", str(run_dir), *SMALL_FLAGS]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (run_dir / CHECKPOINT_NAME).read_bytes() == before


def test_default_run_folders_are_unique(tmp_path, mnist, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a, _ = run_quietly(small(None), mnist)
    b, _ = run_quietly(small(None), mnist)
    assert a != b and a.parent == b.parent == Path("runs")
    assert a.name.endswith("-vae-z4") or "-vae-z4-" in a.name


# --------------------------------------------------------------------------- reproducibility and resume


def test_same_seed_gives_the_same_run_and_another_seed_another(tmp_path, mnist):
    a, _ = run_quietly(small(tmp_path / "a", epochs=2), mnist)
    b, _ = run_quietly(small(tmp_path / "b", epochs=2), mnist)
    c, _ = run_quietly(small(tmp_path / "c", epochs=2, seed=1), mnist)
    assert_same_run(a, b)
    assert metrics(a) != metrics(c)
    assert not np.array_equal(theta(a), theta(c))


def test_resume_at_an_epoch_boundary_is_bit_identical(tmp_path, mnist):
    straight, _ = run_quietly(small(tmp_path / "straight", epochs=2), mnist)
    split, _ = run_quietly(small(tmp_path / "split", epochs=1), mnist)
    resume_quietly(split, mnist, epochs=2)
    assert_same_run(straight, split)
    assert json.loads((split / CONFIG_NAME).read_text())["epochs"] == 2


@pytest.mark.parametrize("stop_at", [(1, 2), (1, 8), (2, 7)])  # (epoch, steps done in it) at the request
def test_resume_mid_epoch_after_a_stop_request_is_bit_identical(tmp_path, mnist, stop_at):
    changes = dict(epochs=2, binarize="dynamic", kl_warmup=1.5, limit_train=500)  # 8 steps, the last of 52
    straight, _ = run_quietly(small(tmp_path / "straight", **changes), mnist)

    def stop(run):
        if (run.epoch, run.step + 1) == stop_at:  # run.step is the index of the step just taken
            run.request_stop()

    with pytest.raises(TrainingInterrupted) as info:
        run_quietly(small(tmp_path / "split", **changes), mnist, on_step=stop)
    split = info.value.run_dir
    arrays = load_arrays(split / CHECKPOINT_NAME)
    epoch, steps = stop_at  # a request after an epoch's last step is honoured before the next epoch's first
    assert (int(arrays["epoch"]), int(arrays["step"])) == (epoch - 1 + (steps == 8), steps % 8)
    _, lines = resume_quietly(split, mnist)
    assert any("resuming" in line for line in lines)
    assert_same_run(straight, split)


def test_resume_refuses_changed_training_flags_and_accepts_more_epochs(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert cli.main(["train", "--out", str(run_dir), "--epochs", "1", *SMALL_FLAGS]) == 0
    assert cli.main(["train", "--resume", str(run_dir), "--hidden", "16", "--lr", "0.01"]) == 2
    err = capsys.readouterr().err
    assert "hidden" in err and "lr" in err and "stored" in err
    assert cli.main(["train", "--resume", str(run_dir), "--hidden", "32", "--epochs", "2", "--no-progress",
                     "--no-pictures"]) == 0  # a flag equal to the stored value is fine
    assert [r["epoch"] for r in metrics(run_dir)] == [1, 2]
    assert cli.main(["train", "--resume", str(run_dir), "--no-progress"]) == 0  # nothing left to do
    assert "already holds all 2 epochs" in capsys.readouterr().out


def test_a_truncated_checkpoint_gives_a_clear_error_on_resume(tmp_path, mnist, capsys):
    run_dir, _ = run_quietly(small(tmp_path / "run"), mnist)
    data = (run_dir / CHECKPOINT_NAME).read_bytes()
    (run_dir / CHECKPOINT_NAME).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        resume_quietly(run_dir, mnist, epochs=2)
    assert cli.main(["train", "--resume", str(run_dir), "--epochs", "2"]) == 1
    assert "truncated or corrupt" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="no such file"):
        resume_quietly(tmp_path / "nowhere.npz", mnist)


def test_a_checkpoint_of_another_architecture_is_refused(tmp_path, mnist):
    run_dir, _ = run_quietly(small(tmp_path / "run"), mnist)
    other = Dataset(mnist.train_x[:, :400], mnist.train_y, mnist.val_x[:, :400], mnist.val_y,
                    mnist.test_x[:, :400], mnist.test_y, image_shape=(20, 20))
    with pytest.raises(CheckpointError, match="784-32-4"):
        resume_quietly(run_dir, other, epochs=2)


# --------------------------------------------------------------------------- NaN and Ctrl-C


def test_a_planted_nan_stops_training_and_keeps_the_last_checkpoint(tmp_path, mnist):
    def plant(run):
        if (run.epoch, run.step) == (2, 3):
            run.model.params["decoder.0.W"][0, 0] = np.nan

    with pytest.raises(TrainingDiverged) as info:
        run_quietly(small(tmp_path / "run", epochs=3), mnist, on_step=plant)
    message = str(info.value)
    assert "epoch 2, step 4" in message and "reconstruction" in message and "decoder.0.W" in message
    assert "intact" in message
    arrays = load_arrays(tmp_path / "run" / CHECKPOINT_NAME)
    assert int(arrays["epoch"]) == 1 and np.isfinite(arrays["theta"]).all()
    assert [r["epoch"] for r in metrics(tmp_path / "run")] == [1]


def test_a_huge_learning_rate_exits_1_naming_the_problem(tmp_path, capsys):
    code = cli.main(["train", "--out", str(tmp_path / "run"), "--lr", "1e12", "--epochs", "2", *SMALL_FLAGS])
    assert code == 1
    err = capsys.readouterr().err
    assert "diverged" in err and "epoch 1" in err and "non-finite" in err
    assert not (tmp_path / "run" / CHECKPOINT_NAME).exists()


def test_ctrl_c_in_a_real_process_saves_a_checkpoint_and_exits_130(tmp_path, mnist):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "tinyvae", "train", "--out", str(run_dir), "--epochs", "100000",
               *SMALL_FLAGS]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not (run_dir / CHECKPOINT_NAME).exists():  # the first epoch is done: the loop is running
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint after 60 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in out and f"--resume {run_dir}" in out
    arrays = load_arrays(run_dir / CHECKPOINT_NAME)
    done = int(arrays["epoch"])
    assert done >= 1 and np.isfinite(arrays["theta"]).all()
    assert len(metrics(run_dir)) == done
    resume_quietly(run_dir, mnist, epochs=done + 1)  # loadable, and it continues
    assert [r["epoch"] for r in metrics(run_dir)] == list(range(1, done + 2))


# --------------------------------------------------------------------------- the variants train


@pytest.mark.parametrize("changes", [
    {"model": "ae"},
    {"likelihood": "gaussian"},
    {"binarize": "dynamic"},
    {"binarize": "static", "optimizer": "sgd", "lr": 0.01},
    {"hidden": (), "activation": "tanh", "validation": 0},
])
def test_variants_train_and_improve(tmp_path, mnist, changes):
    run_dir, _ = run_quietly(small(tmp_path / "run", epochs=2, **changes), mnist)
    rows = metrics(run_dir)
    assert rows[1]["train_loss"] < rows[0]["train_loss"]
    assert all(np.isfinite(r["test_loss"]) for r in rows)
    if changes.get("model") == "ae":
        assert rows[1]["train_kl"] == 0 and rows[1]["test_kl"] == 0


def test_validation_examples_are_held_out_and_evaluated(tmp_path):
    run_dir = tmp_path / "run"
    assert cli.main(["train", "--out", str(run_dir), "--epochs", "1", "--validation", "100", *SMALL_FLAGS]) == 0
    row = metrics(run_dir)[0]
    assert {"val_loss", "val_recon", "val_kl"} <= set(row)
    assert json.loads((run_dir / CONFIG_NAME).read_text())["val_examples"] == 100


def test_kl_warmup_ramps_beta_step_by_step(tmp_path, mnist):
    run_dir, _ = run_quietly(small(tmp_path / "run", epochs=3, kl_warmup=2, beta=0.5), mnist)
    betas = [r["beta"] for r in metrics(run_dir)]  # β at the last (8th) step of each epoch
    assert betas == pytest.approx([0.5 * (7 / 8) / 2, 0.5 * (15 / 8) / 2, 0.5])


def test_static_binarization_gives_every_run_the_same_test_images(tmp_path, mnist):
    a = loop_module.load_images(small(tmp_path, binarize="static", seed=0), mnist)
    b = loop_module.load_images(small(tmp_path, binarize="static", seed=1), mnist)
    assert set(np.unique(a[0])) <= {0, 255}
    assert not np.array_equal(a[0], b[0])  # training images: the run's own sample
    np.testing.assert_array_equal(a[1], b[1])  # test images: one fixed sample


def test_test_set_figures_are_evaluates_negative_elbo(tmp_path, mnist):
    from tinyvae import evaluate_elbo, load_model

    run_dir, _ = run_quietly(small(tmp_path / "run"), mnist)
    row = metrics(run_dir)[-1]
    model = load_model(run_dir / CHECKPOINT_NAME)
    ours = evaluate_elbo(model, mnist.test_x, binarize="none", seed=loop_module.eval_seed(0, 1),
                         batch_size=loop_module.EVAL_BATCH)
    for key in ("loss", "recon", "kl"):
        assert row[f"test_{key}"] == pytest.approx(ours[key], rel=1e-6)
    assert ours["loss"] == pytest.approx(ours["recon"] + ours["kl"], rel=1e-6)


def test_reading_the_losses_every_20_steps_as_on_a_gpu_changes_nothing(tmp_path, mnist, monkeypatch):
    every_step, _ = run_quietly(small(tmp_path / "a", epochs=2, batch_size=16), mnist)  # 32 steps per epoch
    monkeypatch.setattr(loop_module, "reads_are_free", lambda xp: False)
    windowed, _ = run_quietly(small(tmp_path / "b", epochs=2, batch_size=16), mnist)
    assert_same_run(every_step, windowed)

    def plant(run):
        if (run.epoch, run.step) == (1, 24):
            run.model.theta[:] = np.inf

    with pytest.raises(TrainingDiverged, match="epoch 1, step 25 .steps 20-31 were read together"):
        run_quietly(small(tmp_path / "c", batch_size=16), mnist, on_step=plant)


def test_the_gpu_path_runs_on_a_strict_stand_in_and_matches_the_cpu(tmp_path, mnist, monkeypatch):
    """device="gpu" on an array namespace that refuses every implicit host conversion, as CuPy does."""
    from strict_xp import strict_ns

    from tinyvae import backend

    cpu, _ = run_quietly(small(tmp_path / "cpu", epochs=2, batch_size=16, binarize="dynamic"), mnist)
    monkeypatch.setattr(backend, "_cupy", strict_ns)  # backend.namespace("gpu") now gives the stand-in
    gpu, _ = run_quietly(small(tmp_path / "gpu", epochs=2, batch_size=16, binarize="dynamic", device="gpu"), mnist)
    assert json.loads((gpu / CONFIG_NAME).read_text())["device_name"] == "gpu"
    # the same host ε and the same arithmetic: the same parameters and optimizer state, bit for bit;
    # the logged losses differ in the last digits only, as the CPU sums the BCE's logarithms as
    # logs of products (losses.sum_of_logs) and a GPU takes them one by one
    np.testing.assert_array_equal(theta(cpu), theta(gpu))
    ca, cg = load_arrays(Path(cpu) / CHECKPOINT_NAME), load_arrays(Path(gpu) / CHECKPOINT_NAME)
    for key in ("optim.t", "optim.m_sum.0", "optim.v_sum.0"):
        np.testing.assert_array_equal(ca[key], cg[key])
    for row_cpu, row_gpu in zip(metrics(cpu), metrics(gpu), strict=True):
        assert row_cpu.keys() == row_gpu.keys()
        for key, value in row_cpu.items():
            assert row_gpu[key] == (value if key in ("epoch", "step", "beta") else pytest.approx(value, rel=1e-6)), key
    with pytest.raises(TrainingInterrupted):
        run_quietly(small(tmp_path / "mid", epochs=2, batch_size=16, device="gpu"), mnist,
                    on_step=lambda run: run.request_stop() if (run.epoch, run.step) == (1, 9) else None)
    resume_quietly(tmp_path / "mid", mnist)
    assert [r["epoch"] for r in metrics(tmp_path / "mid")] == [1, 2]


def test_run_data_carries_each_examples_label_beside_its_image(tmp_path, mnist):
    images = loop_module.load_images(small(tmp_path, limit_train=50, limit_test=20), mnist)
    np.testing.assert_array_equal(images.train_x, mnist.train_x[:50])
    np.testing.assert_array_equal(images.train_y, mnist.train_y[:50])
    np.testing.assert_array_equal(images.test_y, mnist.test_y[:20])
    assert len(images.val_y) == len(images.val_x)
