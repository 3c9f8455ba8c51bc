"""The benchmark's arithmetic (not its timings: benchmarks run as scripts, never as timed tests)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np

from tinyvae import backend, threads
from tinyvae.models.vae import VAE

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_training.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_training", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_lower_bound_counts_every_multiply_of_a_training_step_once():
    bench = load_bench()
    shapes = bench.dense_shapes()
    model = VAE()  # the default model is the benchmarked one
    weights = [layer.params["W"].shape for net in (model.encoder, model.decoder)
               for layer in net.layers if "W" in layer.params]
    assert shapes == weights
    # by hand: forward x W, backward dW = xᵀ dy for all four layers, dX = dy Wᵀ for all but the first
    macs_per_example = 2 * (784 * 400 + 400 * 40 + 20 * 400 + 400 * 784) + (400 * 40 + 20 * 400 + 400 * 784)
    assert bench.epoch_matmul_flops(60_000, shapes) == 2 * 60_000 * macs_per_example
    assert np.isclose(bench.epoch_matmul_flops(60_000, shapes) / 1e9, 196.8)


def test_the_evaluation_bound_counts_the_decoder_products_of_every_importance_sample():
    spec = importlib.util.spec_from_file_location("bench_evaluate", BENCH.with_name("bench_evaluate.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    model = VAE(hidden=(200, 200), latent=50, activation="tanh")  # the IWAE paper's model
    per_sample = 2 * (50 * 200 + 200 * 200 + 200 * 784)  # by hand: the decoder's three products
    assert bench.decoder_flops_per_sample(model) == per_sample
    assert np.isclose(per_sample * 5000 * 10_000 / 1e12, 20.68)  # 5·10⁷ samples: 20.7 TFLOP


def test_the_breakdown_times_each_part_of_a_step_and_puts_every_method_back(tmp_path):
    import sys
    sys.path.insert(0, str(BENCH.parent))  # bench_breakdown imports bench_training as a sibling
    try:
        spec = importlib.util.spec_from_file_location("bench_breakdown", BENCH.with_name("bench_breakdown.py"))
        bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)
    finally:
        sys.path.remove(str(BENCH.parent))
    from tinyvae import nn as layers
    from tinyvae.nn import optim
    from tinyvae.models import vae
    from tinyvae.models.parts import likelihoods, priors

    def patched():  # everything the breakdown wraps, and the forward it hooks for the evaluation
        return [layers.Dense.forward, layers.Dense.backward, optim.Adam.step, likelihoods.Bernoulli.nll,
                priors.gaussian_kl, vae.VAE.forward]

    originals = patched()
    row = bench._timed_epoch(64, tmp_path / "run", limit_train=640, limit_test=64)
    # every part was timed during the training loop, and the parts and the rest add up to the epoch
    assert all(row[part] > 0 for part in bench.PARTS), row
    assert np.isclose(sum(row[p] for p in (*bench.PARTS, "the rest")), row["epoch"])
    assert patched() == originals


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, BENCH.with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # a dataclass in it looks its module up there
    spec.loader.exec_module(module)
    return module


def test_the_gpu_check_without_a_gpu_says_so_runs_nothing_and_exits_0(capsys, monkeypatch):
    gpu_check = load_script("gpu_check")
    monkeypatch.setattr(gpu_check, "gpu_problem", lambda: "CuPy is not installed")
    monkeypatch.setattr(gpu_check, "run_step", lambda step: (_ for _ in ()).throw(AssertionError("a step ran")))
    assert gpu_check.main([]) == 0
    assert capsys.readouterr().out == "no GPU check on this machine: CuPy is not installed. Nothing was run.\n"


def test_the_gpu_check_plan_fits_8_minutes_and_its_table_reads_each_benchmarks_figures(capsys, monkeypatch):
    gpu_check = load_script("gpu_check")
    plan = gpu_check.steps(python="python")
    assert [s.name for s in plan] == ["CuPy tests", "training", "evaluation", "conv"]
    assert sum(s.limit_s for s in plan) + 60 <= 8 * 60
    assert ["--batch-sizes", "128", "512"] == plan[1].command[4:7] and "--no-torch" not in plan[1].command
    assert all("--device" in s.command for s in plan[1:])
    outputs = {  # the last lines each script prints, as they print them
        "CuPy tests": "....\n41 passed, 1050 deselected in 30.1s\n",
        "training": 'table\n{\n  "results": [{"batch_size": 128, "tinyvae_s_per_epoch": 1.5, "torch_s_per_epoch": 1.2,'
                    ' "torch_fused_s_per_epoch": 1.0, "ratio_to_torch": 1.25}]\n}\n',
        "evaluation": 'line\n{"k": 5000, "digits_timed": 1000, "wall_s_10k": 42.0, "nll": 86.7}\n',
        "conv": '{"tinyvae_seconds": 3.0}\n',
    }
    results = [(step, ("ok", step.rows(outputs[step.name]), 1.0)) for step in plan]
    text = gpu_check.table(results)
    for part in ("41 passed, 1050 deselected", "training, batch 128: tinyvae 1.50 s/epoch, PyTorch 1.20 (fused Adam "
                 "1.00); tinyvae/PyTorch 1.25", "evaluation, K = 5000: 42.0 s for 10,000 digits (timed 1000)",
                 "conv, batch 128: tinyvae 3.00 s/epoch"):
        assert part in text, text
    monkeypatch.setattr(gpu_check, "gpu_problem", lambda: None)
    monkeypatch.setattr(gpu_check, "torch_problem", lambda: None)
    monkeypatch.setattr(gpu_check, "run_step", lambda step: ("ok" if step.name != "conv" else "out of time (60 s)",
                                                             step.rows(outputs[step.name]), 1.0))
    assert gpu_check.main([]) == 1  # one step out of time: the run fails, the table still prints
    assert "out of time (60 s)" in capsys.readouterr().out


def test_dequantization_puts_every_pixel_inside_its_own_cell_with_fresh_noise():
    cb = load_script("cb_dequantized")
    k = np.tile(np.arange(256, dtype=np.uint8), (50, 1))  # (N, D): every 8-bit value, 50 times
    x = cb.dequantize(k, np.random.default_rng(0))
    assert x.dtype == np.float32 and x.shape == k.shape
    assert (x >= k / 256.0).all() and (x <= (k + 1.0) / 256.0).all() and (x > 0).mean() > 0.99
    assert not np.array_equal(x, cb.dequantize(k, np.random.default_rng(1)))
    assert np.array_equal(x, cb.dequantize(k, np.random.default_rng(0)))  # seeded: reproducible


def test_the_dequantized_continuous_bernoulli_trains_on_a_few_digits():
    cb = load_script("cb_dequantized")
    images = np.random.default_rng(0).integers(0, 256, (40, 784), dtype=np.uint8)
    model, loss = cb.train_dequantized(images, epochs=1, seed=0, batch_size=20)
    assert model.config.likelihood == "continuous-bernoulli" and np.isfinite(loss)


def test_the_log_benchmark_reports_each_cost_and_their_ratios():
    result = load_script("bench_log").measure(size=4096, rounds=3)
    assert all(result[key] > 0 for key in ("log_ns", "log1p_ns", "multiply_ns", "log_over_multiply", "log1p_over_log"))


def test_the_contention_ratios_are_taken_within_each_round_then_the_median():
    bench = load_script("bench_contention")
    seconds = {"train | default | busy": [2.0, 9.0, 3.0], "train | one thread | busy": [1.0, 3.0, 3.0],
               "train | default | idle": [1.0, 1.0, 2.0], "train | old default | idle": [2.0, 1.0, 1.0],
               "train | one thread | idle": [1.0, 1.0, 1.0]}
    r = bench.ratios(seconds, ["train"], 3)
    assert r["train: busy default / busy one thread"] == {"median": 2.0, "by_round": [2.0, 3.0, 1.0]}
    assert r["train: idle default / idle old default"] == {"median": 1.0, "by_round": [0.5, 1.0, 2.0]}
    assert r["train: busy one thread / idle default"]["by_round"] == [1.0, 3.0, 1.5]
    one, old = bench.settings()["one thread"], bench.settings()["old default"]
    assert one == {"OPENBLAS_NUM_THREADS": "1", "TINYVAE_THREADS": "1"}
    assert old["OPENBLAS_NUM_THREADS"] == str(bench.cores())


def test_the_contention_benchmark_counts_the_splits_whose_pieces_ran_at_once(monkeypatch):
    bench = load_script("bench_contention")
    monkeypatch.setattr(threads, "concurrency", threads.concurrency)  # count_splits replaces it: put it back after
    tally = bench.count_splits()
    monkeypatch.setenv("TINYVAE_THREADS", "2")
    backend.run_split(lambda i: i, [(0,), (1,)])  # two pieces, at once
    backend.run_split(lambda i: i, [(0,)])  # one piece: no split
    monkeypatch.setenv("TINYVAE_THREADS", "1")
    backend.run_split(lambda i: i, [(0,), (1,)])  # two pieces, one after the other
    assert tally == {"splits": 2, "at_once": 1}
    report = {"splits_at_once": {"a": [1.0, None, 0.5, 0.0], "b": [None]}}
    assert bench.median_share(report, "a") == 0.5 and bench.median_share(report, "b") is None



def test_the_handoff_benchmark_points_every_splitting_module_at_the_handoff_it_times(monkeypatch):
    from tinyvae.evaluation import importance  # noqa: PLC0415
    from tinyvae.nn import optim  # noqa: PLC0415
    from tinyvae.prob import losses  # noqa: PLC0415
    bench = load_script("bench_handoff")
    users, original = (backend, optim, losses, importance), backend.run_split
    handed = []

    def futures(fn, parts):
        handed.append(len(parts))
        return bench.run_split_futures(fn, parts)

    monkeypatch.setenv("TINYVAE_THREADS", "2")
    with bench.handoff(futures):
        assert all(m.run_split is futures for m in users)
        assert backend.run_split(lambda i: 2 * i, [(1,), (2,), (3,)]) == [2, 4, 6]
        backend.split_range(lambda a, b: None, 10, backend.MIN_SPLIT_ELEMENTS, np)  # conv's and the ReLU's way in
    assert handed == [3, 2]
    assert all(m.run_split is original for m in users)


def test_the_cvae_benchmark_table_reads_each_runs_figures_and_the_median_epoch_against_the_vae():
    spec = importlib.util.spec_from_file_location("cvae_quadrants", BENCH.with_name("cvae_quadrants.py"))
    bench = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCH.parent))  # it imports bench_training as a sibling
    try:
        spec.loader.exec_module(bench)
    finally:
        sys.path.remove(str(BENCH.parent))
    runs = {"vae": {"epoch_seconds": [2.0, 9.0, 2.0], "epoch_cpu_seconds": [1.0, 4.0, 4.0]},
            "cvae q2": {"epoch_seconds": [5.0, 4.0, 6.0], "epoch_cpu_seconds": [3.0, 7.0, 5.0], "nll": 50.5,
                        "neg_elbo": 52.0},
            "regressor q2": {"epoch_seconds": [3.0, 3.0, 3.0], "epoch_cpu_seconds": [], "nll": 60.25}}
    rows = bench.table(runs, [2])
    assert rows["cvae"] == {2: 50.5} and rows["regressor"] == {2: 60.25} and rows["cvae_neg_elbo"] == {2: 52.0}
    assert rows["seconds_per_epoch_vs_vae"][2] == {"cvae": 2.5, "regressor": 1.5}
    # CPU seconds: medians 5 / 4; an epoch of one step has no CPU figure, and its ratio is None, not a guess
    assert rows["cpu_seconds_per_epoch_vs_vae"][2] == {"cvae": 1.25, "regressor": None}
    assert bench.PYRO_TABLE == {"baseline": {1: 100.4, 2: 61.9, 3: 25.4}, "cvae": {1: 71.8, 2: 51.0, 3: 24.2}}
    grey, binary = dict(bench.row_labels("none", 100)), dict(bench.row_labels("static", 100))
    assert grey["regressor"] == "regressor (exact cross-entropy)" and grey["cvae"] == "CVAE (IS cross-entropy, K=100)"
    assert binary["regressor"] == "regressor (exact NLL)" and binary["cvae"] == "CVAE (IS NLL, K=100)"


def test_the_cvae_benchmark_runs_end_to_end_on_a_tiny_setting_and_writes_its_json(tmp_path):
    spec = importlib.util.spec_from_file_location("cvae_quadrants", BENCH.with_name("cvae_quadrants.py"))
    bench = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCH.parent))
    sys.modules["cvae_quadrants"] = bench  # its runs are pickled by name into fresh processes
    try:
        spec.loader.exec_module(bench)
        doc = bench.main(["--quadrants", "1", "--epochs", "1", "--limit-train", "128", "--limit-test", "32",
                          "--hidden", "8", "--latent", "2", "--k", "3", "--vae-epochs", "1",
                          "--out", str(tmp_path / "cvae.json")])
    finally:
        sys.path.remove(str(BENCH.parent))
        del sys.modules["cvae_quadrants"]
    import json
    assert json.loads((tmp_path / "cvae.json").read_text()) == json.loads(json.dumps(doc))
    assert set(doc["runs"]) == {"vae", "cvae q1", "regressor q1"}
    assert all(r["peak_rss_mib"] > 0 and len(r["epoch_seconds"]) == 1 for r in doc["runs"].values())
    assert all(0 < r["peak_rss_mib_after_training"] <= r["peak_rss_mib"] for r in doc["runs"].values())
    assert doc["runs"]["cvae q1"]["test_digits"] == 32 and np.isfinite(doc["table_nats"]["cvae"]["1"])


def test_the_critical_path_takes_each_split_at_its_busiest_thread_and_puts_run_split_back(monkeypatch):
    bench = load_script("bench_critical_path")
    from tinyvae.nn import optim  # noqa: PLC0415
    original = backend.run_split
    clock = bench.SplitClock()
    clock.account([0.003, 0.002, 0.004], ["caller", "worker", "caller"], "caller")  # the caller's 7 ms, the worker's 2
    clock.account([0.001, 0.005], ["caller", "worker"], "caller")  # the worker's 5 ms, the caller's 1
    clock.account([0.002], ["caller"], "caller")  # one piece: no split, the caller's 2 ms
    assert np.isclose(clock.critical, 0.007 + 0.005 + 0.002) and np.isclose(clock.on_caller, 0.007 + 0.001 + 0.002)
    assert clock.splits == 2
    monkeypatch.setenv("TINYVAE_THREADS", "2")
    with bench.SplitClock() as timed:
        assert backend.run_split == timed.run_split and optim.run_split == timed.run_split
        assert backend.run_split(lambda i: 3 * i, [(1,), (2,)]) == [3, 6]
    assert timed.splits == 1 and timed.critical > 0
    assert backend.run_split is original and optim.run_split is original
