"""Training M2 from Python and from ``tinyvae train --model m2``: the labelled subset, the run folder, and bad
input refused with a clear message, no traceback and no run folder."""

import json

import numpy as np
import pytest

from test_data import make_fake_mnist, write_idx
from tinyvae.data import MNIST_FILES, load_dataset
from tinyvae.run import cli
from tinyvae.run.config import ConfigError
from tinyvae.run.semi import SemiConfig, draw_labelled, train_classifier_alone, train_m2, load_data

TINY = dict(hidden=(16,), classifier_hidden=(16,), latent=3, epochs=1, batch_size=50, labelled_batch=20,
            limit_train=300, limit_test=200)


def run_cli(argv, capsys):
    """(exit status, stdout, stderr) of the command line, whether it returns or exits (argparse's errors)."""
    try:
        status = cli.main(argv)
    except SystemExit as exit_info:
        status = exit_info.code
    out = capsys.readouterr()
    return status, out.out, out.err


def test_labelled_subset_is_class_balanced_and_a_pure_function_of_its_seed():
    y = load_dataset().train_y
    a, b, c = draw_labelled(y, 100, 0), draw_labelled(y, 100, 0), draw_labelled(y, 100, 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.bincount(y[a], minlength=10).tolist() == [10] * 10
    assert len(set(a.tolist())) == 100


def test_a_short_m2_run_writes_its_labelled_indices_metrics_and_checkpoint(tmp_path):
    folder = train_m2(SemiConfig(labels=20, out=str(tmp_path / "run"), **TINY), log=lambda s: None)
    config = json.loads((folder / "config.json").read_text())
    y = load_dataset().train_y[:300]
    assert config["labels"] == 20 and len(config["labelled_indices"]) == 20
    assert config["labelled_indices"] == draw_labelled(y, 20, 0).tolist()
    record = json.loads((folder / "metrics.jsonl").read_text().splitlines()[0])
    assert 0 <= record["test_error"] <= 1 and np.isfinite(record["train_loss"])
    from tinyvae.models.m2 import M2
    assert M2.load(folder / "checkpoint.npz").config.latent == 3


def test_classifier_alone_trains_only_on_the_labelled_examples():
    config = SemiConfig(labels=20, **TINY)
    data = load_data(config)
    labelled = draw_labelled(data.train_y, 20, 0)
    model, error = train_classifier_alone(config, data, labelled, steps=3)
    assert 0 <= error <= 1
    assert not np.any(model.grads["encoder.0.W"])  # the generative networks are never touched


def test_classifier_alone_from_its_config_alone_uses_the_data_and_labels_of_the_m2_run():
    config = SemiConfig(labels=20, binarize="dynamic", **TINY)
    data = load_data(config)
    given, given_error = train_classifier_alone(config, data, draw_labelled(data.train_y, 20, 0), steps=30)
    default, default_error = train_classifier_alone(config, steps=30)
    assert default_error == given_error
    for name, value in given.params.items():
        np.testing.assert_array_equal(default.params[name], value, err_msg=name)


@pytest.mark.parametrize("argv, message", [
    (["--labels", "65"], "--labels 65: a class-balanced subset needs a multiple of 10 (the same number of each "
                         "digit); use 60 or 70"),
    (["--labels", "5"], "--labels 5: a class-balanced subset needs a multiple of 10 (the same number of each digit); "
                        "use 10"),
    (["--labels", "0"], "expected an integer >= 1, got '0'"),
    (["--beta", "2"], "--model m2 does not use --beta"),
    (["--latent", "3", "2"], "one latent size, got 2"),
])
def test_bad_m2_settings_get_a_clear_error_and_leave_no_run_folder(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    status, _, err = run_cli(["train", "--model", "m2", *argv, "--out", str(out)], capsys)
    assert status == 2
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_labels_flag_without_m2_is_refused(tmp_path, capsys):
    status, _, err = run_cli(["train", "--labels", "100", "--out", str(tmp_path / "run")], capsys)
    assert status == 2 and "add --model m2" in err
    assert not (tmp_path / "run").exists()


def test_a_class_with_too_few_examples_for_a_balanced_subset_is_named():
    y = np.array([0] * 50 + [1] * 3 + list(range(2, 10)) * 10, dtype=np.uint8)
    with pytest.raises(ConfigError, match="--labels 50: a class-balanced subset takes 5 examples of each class, but "
                                          "class 1 has only 3 in the 133 training images; ask for at most 30 "
                                          r"\(a multiple of 10\)"):
        draw_labelled(y, 50, 0)


def test_the_largest_labels_the_error_suggests_is_accepted_and_the_next_multiple_is_not():
    y = load_dataset().train_y
    most = 10 * int(np.bincount(y, minlength=10).min())  # the rarest digit sets it: 5,421 fives in MNIST's 60,000
    assert most == 54210
    for too_many in (60000, 59230, most + 10):
        with pytest.raises(ConfigError, match=f"class 5 has only 5,421 in the 60,000 training images; ask for at most "
                                              f"{most} "):
            draw_labelled(y, too_many, 0)
    assert np.bincount(y[draw_labelled(y, most, 0)]).tolist() == [most // 10] * 10


def test_labels_beyond_the_limit_train_subset_are_refused_with_its_true_maximum(tmp_path, capsys):
    counts = np.bincount(load_dataset().train_y[:300], minlength=10)
    most = 10 * int(counts.min())
    out = tmp_path / "run"
    status, _, err = run_cli(["train", "--model", "m2", "--labels", str(most + 10), "--limit-train", "300",
                              "--out", str(out)], capsys)
    assert status == 2 and "Traceback" not in err and not out.exists()
    assert (f"--labels {most + 10}: a class-balanced subset takes {most // 10 + 1} examples of each class, but class "
            f"{int(counts.argmin())} has only {most // 10} in the 300 training images that --limit-train 300 keeps; "
            f"ask for at most {most} (a multiple of 10)") in err


def test_labels_that_would_leave_no_unlabelled_image_are_refused():
    y = np.tile(np.arange(10, dtype=np.uint8), 5)  # five of each digit
    with pytest.raises(ConfigError, match="--labels 50: it would label every one of the 50 training images, and M2 "
                                          r"needs unlabelled images too; ask for at most 40 \(a multiple of 10\)"):
        draw_labelled(y, 50, 0)
    assert len(draw_labelled(y, 40, 0)) == 40
    with pytest.raises(ConfigError, match="no class-balanced subset leaves an image unlabelled: class 0 has 1"):
        draw_labelled(np.arange(10, dtype=np.uint8), 10, 0)


@pytest.mark.parametrize("fault, message", [
    ("label 12", "the training labels: expected integers 0 to 9 (one of 10 classes), got 12 at position 4"),
    ("short", "40 images in train-images-idx3-ubyte.gz but 30 labels in train-labels-idx1-ubyte.gz"),
])
def test_data_with_labels_outside_0_to_9_or_of_the_wrong_length_is_refused(tmp_path, capsys, fault, message):
    data = tmp_path / "data"
    arrays = make_fake_mnist(data, n_train=40, n_test=10)
    labels = arrays["train"][1].copy()
    if fault == "label 12":
        labels[4] = 12
    else:
        labels = labels[:30]
    write_idx(data / (MNIST_FILES["train"][1] + ".gz"), labels)
    out = tmp_path / "run"
    status, _, err = run_cli(["train", "--model", "m2", "--labels", "10", "--data", str(data), "--out", str(out),
                              "--hidden", "4", "--classifier-hidden", "4", "--latent", "2"], capsys)
    assert status != 0
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_the_m2_benchmark_script_runs_on_a_tiny_setting_and_writes_its_json(tmp_path):
    from scripts import load_benchmark  # noqa: PLC0415
    bench = load_benchmark("m2_labels")
    out = tmp_path / "m2.json"
    result = bench.main(["--tiny", "--labels", "20", "--draws", "2", "--rounds", "1", "--steps", "1", "--out", str(out)])
    stored = json.loads(out.read_text())
    assert stored["tiny"] is True and stored["config"]["labels"] == 20
    errors = stored["m2_test_error_percent"]["values"]
    assert len(errors) == 2 and stored["m2_test_error_percent"]["mean"] == pytest.approx(np.mean(errors))
    assert stored["m2_test_error_percent"]["std"] == pytest.approx(np.std(errors, ddof=1))
    assert len(stored["classifier_alone_test_error_percent"]["values"]) == 2
    assert stored["m2_step_seconds"] > 0 and stored["vae_step_seconds"] > 0
    assert result["paper"]["test_error_percent"] == 11.97
    # the curve: one test error per epoch of each draw, the last the draw's figure; CPU and memory per epoch
    curves = stored["m2_test_error_percent_by_epoch"]
    assert [len(c) for c in curves] == [1, 1] and [c[-1] for c in curves] == errors
    assert [len(c) for c in stored["m2_epoch_cpu_seconds_measured"]] == [1, 1]
    assert all(p[0] > 0 for p in stored["m2_peak_rss_mib_by_epoch"]) and stored["plain_vae_run"] is None


def test_the_m2_benchmark_given_several_alphas_runs_each_and_writes_one_json_without_timing(tmp_path):
    from scripts import load_benchmark  # noqa: PLC0415
    bench = load_benchmark("m2_labels")
    out = tmp_path / "sweep.json"
    bench.main(["--tiny", "--labels", "20", "--draws", "1", "--alpha", "0", "50", "--no-timing", "--out", str(out)])
    stored = json.loads(out.read_text())
    assert stored["alphas"] == [0, 50] and "--alpha 0 50 --no-timing" in stored["command"]
    runs = stored["by_alpha"]
    assert [r["config"]["alpha"] for r in runs] == [0, 50]
    assert runs[0]["config"] == {**runs[1]["config"], "alpha": 0}  # all else alike
    assert all("m2_step_seconds" not in r for r in runs)  # --no-timing
    # the same draw and steps: the classifier alone is the same run; α changes what M2 learns
    alone = [r["classifier_alone_test_error_percent"]["values"] for r in runs]
    assert alone[0] == alone[1]
    assert runs[0]["m2_test_error_percent_by_epoch"] != runs[1]["m2_test_error_percent_by_epoch"]


def test_the_m2_benchmark_times_the_plain_vae_of_the_same_sizes_in_its_own_process(tmp_path):
    import importlib.util
    import sys
    from pathlib import Path
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    spec = importlib.util.spec_from_file_location("m2_labels", folder / "m2_labels.py")
    bench = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(folder))
    sys.modules["m2_labels"] = bench  # the VAE's run is pickled by name into a fresh process
    try:
        spec.loader.exec_module(bench)
        stored = bench.main(["--tiny", "--labels", "20", "--draws", "1", "--rounds", "1", "--steps", "1",
                             "--vae-epochs", "2", "--out", str(tmp_path / "m2.json")])
    finally:
        sys.path.remove(str(folder))
        del sys.modules["m2_labels"]
    vae = stored["plain_vae_run"]
    assert vae["config"]["model"] == "vae" and vae["config"]["hidden"] == list(bench.TINY["hidden"])
    assert vae["config"]["latent"] == bench.TINY["latent"] and vae["config"]["batch_size"] == bench.TINY["batch_size"]
    assert len(vae["cpu_seconds_by_epoch"]) == 2 and len(vae["seconds_by_epoch"]) == 2 and vae["peak_rss_mib"] > 0


def test_the_m2_benchmark_reads_a_spawned_processs_own_peak_memory_not_the_one_it_inherits(tmp_path):
    # the plain VAE's run is spawned after M2 trained; on Linux a spawned child's ru_maxrss starts at its
    # parent's peak, so the benchmark reads VmHWM, the child's own: here below a block the parent alone touched
    import importlib.util
    import multiprocessing
    import sys
    from pathlib import Path
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    spec = importlib.util.spec_from_file_location("m2_labels", folder / "m2_labels.py")
    bench = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(folder))
    sys.modules["m2_labels"] = bench  # the child unpickles the function by name
    try:
        spec.loader.exec_module(bench)
        block = np.ones(300 * 2**20 // 8)  # 300 MiB, every page written
        parent = bench.peak_rss_mib()
        del block
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            child = pool.apply(bench.peak_rss_mib)
    finally:
        sys.path.remove(str(folder))
        del sys.modules["m2_labels"]
    assert parent >= 300 and 0 < child < 300, (parent, child)


def test_epoch_cpu_time_runs_from_the_first_step_to_the_last_scaled_to_the_whole_epoch():
    from types import SimpleNamespace

    from scripts import load_benchmark
    bench = load_benchmark("m2_labels")
    ticks = iter([10.0, 14.0, 20.0, 25.0])  # the clock read after steps 0 and 2 of two epochs of 3 steps
    hook = bench.EpochCPU(clock=lambda: next(ticks))
    for _ in range(2):
        for step in range(3):
            hook(SimpleNamespace(step=step, steps_per_epoch=3))
    assert hook.seconds == [6.0, 7.5]  # (14 - 10) and (25 - 20), each times 3 steps / 2 timed
    single = bench.EpochCPU(clock=lambda: 1.0)
    single(SimpleNamespace(step=0, steps_per_epoch=1))
    assert single.seconds == []  # one step an epoch: nothing to time between, so nothing recorded


def test_an_m2_run_given_to_the_vae_commands_is_refused_with_what_it_is(tmp_path, capsys):
    folder = train_m2(SemiConfig(labels=20, out=str(tmp_path / "run"), **TINY), log=lambda s: None)
    for argv in (["evaluate", str(folder)], ["train", "--resume", str(folder)]):
        status, _, err = run_cli(argv, capsys)
        assert status == 1 and "Traceback" not in err
        assert "It is a semi-supervised M2 model" in err and "tinyvae.M2.load" in err


def test_a_non_finite_loss_stops_the_run_with_a_sentence_naming_the_step(tmp_path, monkeypatch):
    from tinyvae.models.m2 import M2
    from tinyvae.run.semi import TrainingDiverged
    monkeypatch.setattr(M2, "forward", lambda self, *a, **k: np.float32("nan"))
    with pytest.raises(TrainingDiverged, match="diverged at epoch 1, step 0: the loss is nan"):
        train_m2(SemiConfig(labels=20, out=str(tmp_path / "run"), **TINY), log=lambda s: None)


def test_the_command_line_trains_m2_and_records_its_labelled_subset(tmp_path, capsys):
    out = tmp_path / "run"
    status, stdout, err = run_cli(["train", "--model", "m2", "--labels", "20", "--label-seed", "3", "--limit-train",
                                   "300", "--limit-test", "100", "--hidden", "8", "--classifier-hidden", "8",
                                   "--latent", "2", "--epochs", "1", "--batch-size", "100", "--labelled-batch", "20",
                                   "--alpha", "2.5", "--out", str(out)], capsys)
    assert status == 0, err
    config = json.loads((out / "config.json").read_text())
    assert (config["labels"], config["label_seed"], config["alpha"]) == (20, 3, 2.5)
    assert config["labelled_indices"] == draw_labelled(load_dataset().train_y[:300], 20, 3).tolist()
    assert "test error" in stdout and (out / "checkpoint.npz").exists()


def test_train_help_gives_m2s_own_defaults_and_every_flag_m2_reads(capsys):
    from tinyvae.run.semi import M2_FLAGS  # noqa: PLC0415

    status, out, _ = run_cli(["train", "--help"], capsys)
    assert status == 0
    text = " ".join(out.split())  # argparse wraps the lines
    assert ("--model m2 has its own defaults: --labels 100 --label-seed 0 --alpha 0.1 --labelled-batch 100 "
            "--batch-size 100 --hidden 500 --classifier-hidden 500 --latent 50 --activation softplus --lr 0.0003 "
            "--binarize dynamic --epochs 10 --seed 0; it reads only these flags and --data, --limit-train, "
            "--limit-test and --out (and ignores --no-pictures and --no-progress).") in text
    own = text[text.index("--model m2 has its own defaults"):]
    assert all(f"--{flag.replace('_', '-')}" in own for flag in M2_FLAGS[1:])
    assert "m2 has its own defaults, listed below the flags" in text


def test_m2_model_and_its_training_run_default_to_the_same_alpha():
    from tinyvae.models.m2 import M2Config  # noqa: PLC0415

    assert M2Config().alpha == SemiConfig().alpha == 0.1


def test_the_semi_supervised_page_states_the_defaults_of_its_try_it_command():
    from pathlib import Path  # noqa: PLC0415

    d = SemiConfig()
    page = " ".join((Path(__file__).resolve().parents[1] / "derivations" / "semi-supervised.md").read_text(
        encoding="utf-8").split())
    steps = -(-(60000 - d.labels) // d.batch_size)  # an epoch over MNIST's unlabelled training images
    quick = -(-(2000 - d.labels) // d.batch_size)
    assert (f"`tinyvae train --model m2 --labels {d.labels}` trains M2 on MNIST with {d.labels} labels" in page)
    assert (f"batches of {d.batch_size} + {d.labelled_batch}, $\\alpha_{{\\text{{batch}}}}$ {d.alpha:g}, "
            f"{d.epochs} epochs of {steps} steps" in page)
    assert (f"--labels {d.labels} --limit-train 2000 --limit-test 500 --epochs 2`, {quick} steps an epoch on its "
            f"{2000 - d.labels:,} unlabelled images" in page)


def test_the_m2_benchmark_trains_with_its_batch_layout_flags_and_records_the_label_diagnostic_of_each_epoch(tmp_path,
                                                                                                          capsys):
    from tinyvae.models.m2 import M2  # noqa: PLC0415
    from tinyvae.run.semi import label_diagnostic  # noqa: PLC0415

    from scripts import load_benchmark
    bench = load_benchmark("m2_labels")
    out = tmp_path / "layout.json"
    bench.main(["--tiny", "--labels", "20", "--draws", "1", "--batch-size", "40", "--labelled-batch", "1",
                "--binarize", "none", "--lr", "0.00042", "--alpha", "15", "--no-timing", "--diagnostic-images", "120",
                "--out", str(out)])
    stored = json.loads(out.read_text())
    config = stored["config"]
    assert (config["batch_size"], config["labelled_batch"], config["binarize"], config["lr"]) == (40, 1, "none", 0.00042)
    cpu = stored["m2_epoch_cpu_seconds_measured"][0][0]  # printed with one decimal, not rounded to whole seconds
    assert f"; CPU s per epoch: {cpu:.1f}; peak after epoch 1: " in capsys.readouterr().out
    assert config["hidden"] == list(bench.TINY["hidden"])  # the other tiny sizes stay
    # the same run again, by hand: its checkpoint's diagnostic is the one recorded
    cfg = SemiConfig(**{**config, "out": str(tmp_path / "again")})
    model = M2.load(train_m2(cfg, log=lambda s: None) / "checkpoint.npz")
    test = load_dataset()
    expected = label_diagnostic(model, test.test_x[:120], test.test_y[:120], samples=bench.DIAGNOSTIC_SAMPLES)
    assert stored["diagnostic"]["images"] == 120
    assert stored["generative_error_percent_by_epoch"] == [[100 * expected["generative_error"]]]
    assert stored["q_entropy_by_epoch"] == [[expected["q_entropy"]]]
    # left at their defaults, the flags keep the tiny sizes
    bench.main(["--tiny", "--labels", "20", "--draws", "1", "--no-timing", "--diagnostic-images", "0",
                "--out", str(tmp_path / "default.json")])
    default = json.loads((tmp_path / "default.json").read_text())
    assert default["config"]["batch_size"] == bench.TINY["batch_size"] and default["config"]["binarize"] == "dynamic"
    assert default["generative_error_percent_by_epoch"] == [[]] and default["diagnostic"]["images"] == 0


def test_a_labelled_batch_larger_than_the_labels_is_refused_by_the_config_and_the_command_line(tmp_path, capsys):
    message = ("--labelled-batch 200 is more than --labels 100: each step draws its labelled examples without "
               "replacement from the 100 labelled ones")
    with pytest.raises(ConfigError, match=message):
        SemiConfig(labels=100, labelled_batch=200)
    SemiConfig(labels=100, labelled_batch=100)  # all of them: accepted
    out = tmp_path / "run"
    status, _, err = run_cli(["train", "--model", "m2", "--labelled-batch", "200", "--out", str(out)], capsys)
    assert status == 2 and message in " ".join(err.split()) and "Traceback" not in err
    assert not out.exists()


def test_the_default_labelled_batch_is_100_or_all_the_labels_when_there_are_fewer():
    assert SemiConfig().labelled_batch == 100 and SemiConfig(labels=300).labelled_batch == 100
    assert SemiConfig(labels=20).labelled_batch == 20  # accepted, as before the limit: every label in every step
    assert SemiConfig(labels=20, labelled_batch=5).labelled_batch == 5
    with pytest.raises(ConfigError, match="labelled_batch must be an integer, got 2.5"):
        SemiConfig(labelled_batch=2.5)


def test_train_help_says_the_labelled_batch_is_drawn_afresh_each_step_without_replacement(capsys):
    status, out, _ = run_cli(["train", "--help"], capsys)
    text = " ".join(out.split())
    assert status == 0 and ("labelled examples in each step beside --batch-size unlabelled ones, drawn afresh each "
                            "step without replacement from the --labels labelled examples, so at most --labels") in text


@pytest.mark.parametrize("argv, message", [
    (["--draws", "0"], "argument --draws: expected an integer >= 1, got '0'"),
    (["--diagnostic-images", "-1"], "argument --diagnostic-images: expected an integer >= 0, got '-1'"),
    (["--rounds", "0"], "argument --rounds: expected an integer >= 1, got '0'"),
    (["--labels", "105"], "--labels 105: a class-balanced subset needs a multiple of 10"),
    (["--labelled-batch", "0"], "--labelled-batch must be an integer >= 1, got 0"),
    (["--labelled-batch", "200"], "--labelled-batch 200 is more than --labels 100"),
    (["--alpha", "1", "-1"], "--alpha must be a finite number >= 0, got -1.0"),
    (["--lr", "0"], "--lr must be a finite number > 0, got 0.0"),
])
def test_the_m2_benchmark_refuses_bad_flags_with_a_usage_error_naming_the_flag(tmp_path, capsys, argv, message):
    from scripts import load_benchmark  # noqa: PLC0415
    bench = load_benchmark("m2_labels")
    out = tmp_path / "m2.json"
    with pytest.raises(SystemExit) as exit_info:
        bench.main([*argv, "--tiny", "--no-timing", "--out", str(out)])  # tiny: the bad flag is refused all the same
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in " ".join(err.split()) and "Traceback" not in err
    assert err.startswith("usage:") and not out.exists()


def test_the_m2_benchmark_help_gives_every_default(capsys):
    from scripts import load_benchmark  # noqa: PLC0415
    bench = load_benchmark("m2_labels")
    with pytest.raises(SystemExit):
        bench.main(["--help"])
    options = capsys.readouterr().out.split("\n  -")  # each option's entry, wrapped lines included
    entries = {entry.split()[0]: " ".join(entry.split()) for entry in options[1:]}
    for flag, default in (("-labels", "100"), ("-draws", "3"), ("-epochs", "10"), ("-alpha", "0.1"),
                          ("-batch-size", "100"), ("-labelled-batch", "100"), ("-binarize", "dynamic"),
                          ("-lr", "0.0003"), ("-diagnostic-images", "2000"), ("-rounds", "3"), ("-steps", "5"),
                          ("-vae-epochs", "0")):
        assert f"(default {default}" in entries[flag], flag
