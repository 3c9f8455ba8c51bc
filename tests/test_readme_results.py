"""The measured figures of the results page (docs/results.md) and the README's headline table are the
ones their result files recorded.

Every benchmark and long run that the results page quotes leaves its JSON in benchmarks/results/,
except the three Gaussian-decoder rows, which the page says were kept in no file (their derived
ratios are checked against the table).
These tests read each file and look for the figure, rounded as the page rounds it, in the page's
text, so a re-measured file that the page was not updated for (or a figure typed by hand) fails
here. The README keeps a table of headline figures: each is checked against the same files, and
against the results page.
"""
import json
import math
import re
import statistics
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


@pytest.fixture(scope="module")
def readme():
    """The results page (the figures the README used to hold in full)."""
    return (ROOT / "docs" / "results.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def front():
    """The README itself, with its table of headline figures."""
    return (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def prose(readme):
    """The results page with its line breaks and runs of spaces as single spaces and − written as -."""
    return " ".join(readme.split()).replace("\u2212", "-")


def load(name):
    return json.loads((RESULTS / name).read_text(encoding="utf-8"))


def load_metrics(folder):
    """The per-epoch records of a stored run folder's metrics.jsonl."""
    lines = (RESULTS / folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def curve(iw_bounds):
    """An evaluation's L_K values as the README writes them: "L_1 = -90.53, L_5 = ..."."""
    return ", ".join(f"L_{k} = {v:.2f}" for k, v in iw_bounds.items())


def table_row(readme, first_cell):
    """The cells of the README table row whose first cell is ``first_cell``."""
    for line in readme.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.lstrip().startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no README table row starts with {first_cell!r}")


@pytest.mark.parametrize("run, row", [
    ("conv-z2", "conv, Z = 2 (the Keras example: 30 epochs, batch 128)"),
    ("conv-z20", "conv, Z = 20"),
    ("mlp-z20", "MLP 784-400-20, Z = 20"),
])
def test_readme_conv_rows_are_the_runs_recorded_evaluations(readme, run, row):
    ev = load(f"2026-12-01-conv-runs/{run}/evaluate.json")
    cells = table_row(readme, row)
    assert f"**{ev['loss']:.2f}**" in cells[-1], (run, cells[-1])
    assert f"{ev['recon']:.2f}" in cells[-1] and f"KL {ev['kl']:.2f}" in cells[-1], (run, cells[-1])
    config = load(f"2026-12-01-conv-runs/{run}/config.json")
    epochs = [m["epoch"] for m in load_metrics(f"2026-12-01-conv-runs/{run}")]
    assert config["epochs"] == 30 and max(epochs) == 30 and config["seed"] == 0


def test_readme_active_unit_counts_are_the_evaluations(prose):
    conv = load("2026-12-01-conv-runs/conv-z20/evaluate.json")
    mlp = load("2026-12-01-conv-runs/mlp-z20/evaluate.json")
    assert f"Only {conv['active_units']} of the conv model's {conv['latent']} latent units are active" in prose
    assert f"against all {mlp['active_units']} of the MLP's" in prose and mlp["active_units"] == mlp["latent"]


def test_readme_conv_benchmark_is_the_recorded_one(readme, prose):
    bench = load("2026-12-01-conv-cpu.json")
    tiny = [r["tinyvae"][0] for r in bench["rounds"]]
    torch = [r["torch"][0] for r in bench["rounds"]]
    ratios = [r["ratio"] for r in bench["rounds"]]
    fmt = ", ".join
    row = table_row(readme, "tinyvae")
    assert row[1:4] == [f"{bench['tinyvae_seconds']:.1f}", fmt(f"{t:.1f}" for t in tiny),
                        f"{bench['tinyvae_over_bound']:.2f}"]
    row = table_row(readme, "PyTorch")
    assert row[1:4] == [f"{bench['torch_seconds']:.1f}", fmt(f"{t:.1f}" for t in torch),
                        f"{bench['torch_seconds'] / bench['flop_bound_seconds']:.2f}"]
    row = table_row(readme, "tinyvae / PyTorch (paired, median)")
    assert row[1:3] == [f"**{bench['ratio_to_torch']:.2f}**", fmt(f"{r:.2f}" for r in ratios)]
    assert f"{bench['flop_bound_seconds']:.1f} s" in prose and f"{bench['epoch_gflop']:,.0f} GFLOP" in prose


def test_readme_training_benchmark_table_is_the_recorded_one(readme, prose):
    bench = load("2026-12-01-cpu.json")
    assert f"({bench['matmul_gflops']:.0f} GFLOP/s)" in prose
    for r in bench["results"]:
        row = table_row(readme, str(r["batch_size"]))
        assert row[1:] == [
            f"{r['tinyvae_s_per_epoch']:.2f}", f"{r['ratio_to_lower_bound']:.2f}", f"{r['shape_bound_s']:.2f}",
            f"{r['ratio_to_shape_bound']:.2f}", f"{r['torch_s_per_epoch']:.2f}", f"{r['ratio_to_torch']:.2f}",
            f"{r['torch_fused_s_per_epoch']:.2f}", f"**{r['ratio_to_torch_fused']:.2f}**"], row
        rounds = [f"{x:.2f}" for x in r["ratio_to_torch_fused_by_round"]]
        line = next(l for l in readme.splitlines() if l.startswith(f"- batch {r['batch_size']}:"))
        assert re.findall(r"\d+\.\d\d", line)[:3] == rounds, (line, rounds)
    rss = f"{bench['peak_rss_mib_training']:.0f} MiB with `--no-pictures`"
    assert rss in prose and f"{bench['peak_rss_mib_training_and_pictures']:.0f} MiB with the pictures" in prose


def test_readme_time_breakdown_is_the_recorded_median(readme, prose):
    median = load("2026-12-01-breakdown-b128.json")["median"]
    assert f"{median['epoch']:.2f} s per epoch in all" in prose
    rows = {"the dense layers": "dense layers", "Adam": "Adam", "the Bernoulli loss": "loss",
            "the activations": "activations", "the KL term": "KL", "the reparameterization": "reparameterization",
            "the rest": "the rest"}
    for start, key in rows.items():
        line = next(l for l in readme.splitlines() if l.startswith(f"| {start}"))
        assert line.rstrip().endswith(f"| {median[key]:.2f} |"), (line, median[key])


def test_readme_evaluation_benchmark_is_the_recorded_one(prose):
    ev = load("2026-12-01-evaluate-cpu.json")
    assert f"it gave {ev['wall_s_10k']:.0f} s" in prose
    assert f"{ev['wall_s_10k'] / ev['bound_s_10k']:.2f} times the bound of {ev['bound_s_10k']:.0f} s" in prose
    assert f"{ev['decoder_tflop_10k']:.1f} TFLOP at {ev['matmul_gflops']:.0f} GFLOP/s" in prose
    assert curve(ev["iw_bounds"]) in prose
    values = list(ev["iw_bounds"].values())
    assert values == sorted(values)


IWAE_RUN = "2026-12-02-iwae-paper-vae"


def test_readme_iwae_paper_row_is_the_recorded_run(readme, prose):
    """The VAE row of Burda et al.'s Table 1: the run's config, all 3,280 epochs, and its K = 5000 score."""
    config = load(f"{IWAE_RUN}/config.json")
    assert (config["lr_schedule"], config["epochs"], config["adam_eps"], config["init"]) == ("iwae-paper", 3280, 1e-4, "glorot")
    assert (config["hidden"], config["latent"], config["objective"], config["binarize"]) == ([200, 200], 50, "elbo", "dynamic")
    metrics = load_metrics(IWAE_RUN)
    assert [m["epoch"] for m in metrics] == list(range(1, 3281))
    ev = load(f"{IWAE_RUN}/evaluate.json")
    assert ev["iw_samples"] == 5000 and ev["n"] == 10000 and ev["split"] == "test"
    row = table_row(readme, "VAE (k = 1)")
    assert row[1] == "86.76" and row[2] == f"**{ev['nll']:.2f}** ± {ev['nll_sem']:.2f}", row
    assert f"{ev['active_units']} of {ev['latent']} latent units active" in prose
    assert f"Its L_K curve is {curve(ev['iw_bounds'])}." in prose
    seconds = sorted(m["seconds"] for m in metrics)
    median = seconds[len(seconds) // 2]
    assert f"{median:.1f} s per epoch (median), so the 3,280 epochs are about {median * 3280 / 3600:.1f} hours" in prose
    assert f"last epoch's test negative ELBO was {metrics[-1]['test_loss']:.2f}" in prose
    assert f"gave test negative ELBO {ev['loss']:.2f} and NLL {ev['nll']:.2f}" in prose
    assert f"The NLL is {86.76 - ev['nll']:.2f} nats below the paper's, less than its standard error of " \
           f"{ev['nll_sem']:.2f}" in prose and 0 < 86.76 - ev["nll"] < ev["nll_sem"]
    values = list(ev["iw_bounds"].values())
    assert list(ev["iw_bounds"]) == ["1", "5", "50", "5000"] and values == sorted(values) and values[-1] == -ev["nll"]
    timing = load(f"{IWAE_RUN}/evaluate-timing.json")
    bound = load("2026-12-01-evaluate-cpu.json")["bound_s_10k"]
    assert f"The evaluation took {timing['wall_s']:.0f} s" in prose
    assert f"peaked at {timing['max_rss_kib'] / 1024:.0f} MiB resident" in prose
    assert f"finished run above took {timing['wall_s']:.0f} s, {timing['wall_s'] / bound:.2f} times that bound" in prose


TWO_LAYER_RUN = "2026-12-07-two-layer-vae"


def test_results_page_two_layer_row_is_the_recorded_run(readme, prose):
    """Burda et al.'s Table 1 two-layer VAE row: the run's config (the one-layer row's protocol with two stochastic
    layers of the paper's sizes), all 3,280 epochs, its K = 5000 score, active units per layer and its L_K curve."""
    config = load(f"{TWO_LAYER_RUN}/config.json")
    one = load(f"{IWAE_RUN}/config.json")
    assert (config["stochastic_layers"], config["hidden"], config["latent"], config["hidden2"], config["latent2"]) == \
        (2, [200, 200], 100, [100, 100], 50)
    for key in ("lr_schedule", "epochs", "adam_eps", "init", "batch_size", "binarize", "activation", "objective",
                "output_bias", "seed"):
        assert config[key] == one[key], key
    assert (config["batch_size"], config["binarize"], config["activation"]) == (128, "dynamic", "tanh")
    metrics = load_metrics(TWO_LAYER_RUN)
    assert [m["epoch"] for m in metrics] == list(range(1, 3281))
    ev = load(f"{TWO_LAYER_RUN}/evaluate.json")
    assert ev["iw_samples"] == 5000 and ev["n"] == 10000 and ev["split"] == "test" and ev["latent"] == [100, 50]
    row = table_row(readme, "two-layer VAE (k = 1)")
    assert row[1] == "85.33" and row[2] == f"**{ev['nll']:.2f}** ± {ev['nll_sem']:.2f}", row
    assert table_row(readme, "two-layer IWAE (k = 5)")[1:3] == ["83.89", "not run"]
    median = sorted(m["seconds"] for m in metrics)[len(metrics) // 2]
    paused = sorted(m["seconds"] for m in metrics if m["seconds"] > 60)  # the slowest unpaused epoch took 47 s
    unpaused_hours = sum(m["seconds"] for m in metrics if m["seconds"] <= 60) / 3600
    total_hours = sum(m["seconds"] for m in metrics) / 3600
    assert f"Its median epoch took {median:.1f} s, so the 3,280 epochs are about {median * 3280 / 3600:.1f} hours of " \
           f"training at that rate. The recorded epoch times add up to {total_hours:.1f} hours: {unpaused_hours:.1f} " \
           f"hours once the {len(paused)} epochs that include a pause (from {paused[0]:.0f} s to {paused[-1]:,.0f} s " \
           f"each) are left out" in prose
    assert config["test_binarize_seed"] == one["test_binarize_seed"] == 2014 and "seed 2014" in ev["evaluated_on"]
    assert "scored in one fixed binarization (seed 2014, the run's own" in prose
    z1_var, z2_var = (layer["mean_variances"] for layer in ev["layers"])
    assert max(v for v in z2_var if v <= 0.01) <= 0.0005 and min(v for v in z2_var if v > 0.01) >= 0.4
    assert "its inactive units' variances are at most 0.0005 and its active ones' at least 0.4" in prose
    assert sum(0.01 < v < 0.03 for v in z1_var) == 3 and "Three z1 units lie between 0.01 and 0.03" in prose
    assert "this is one run, with seed 0" in prose and config["seed"] == 0
    assert f"The last epoch's test negative ELBO was {metrics[-1]['test_loss']:.2f}." in prose
    assert f"then gave test negative ELBO {ev['loss']:.2f} and NLL {ev['nll']:.2f}. Its L_K curve is " \
           f"{curve(ev['iw_bounds'])} (the negative ELBO and -L_1 estimate" in prose
    values = list(ev["iw_bounds"].values())
    assert list(ev["iw_bounds"]) == ["1", "5", "50", "5000"] and values == sorted(values) and values[-1] == -ev["nll"]
    (z1, z2), (u1, u2) = ev["active_units"], ev["latent"]
    assert [layer["active_units"] for layer in ev["layers"]] == [z1, z2] and ev["threshold"] == 0.01
    assert f"{z1} of {u1} in z1 and {z2} of {u2} in z2" in prose
    gap = 85.33 - ev["nll"]
    assert f"The NLL is {gap:.2f} nats below the paper's figure as quoted, more than twice its standard error of " \
           f"{ev['nll_sem']:.2f}" in prose and gap > 2 * ev["nll_sem"]
    timing = load(f"{TWO_LAYER_RUN}/evaluate-timing.json")
    minutes, seconds = divmod(round(timing["wall_s"]), 60)
    assert f"The evaluation took {timing['wall_s']:.0f} s ({minutes} minutes {seconds} s) of wall time" in prose
    assert f"peaked at {timing['max_rss_kib'] / 1024:.0f} MiB resident" in prose
    resumes = sum(1 for m, n in zip(metrics, metrics[1:]) if n["step"] - m["step"] != metrics[1]["step"] - metrics[0]["step"])
    assert resumes == 0  # the steps run on without a gap across the resumes
    one_median = sorted(m["seconds"] for m in load_metrics(IWAE_RUN))[3280 // 2]
    assert f"the one-layer row's run took {one_median:.1f} s per epoch (median) and this one {median:.1f} s" in prose


def test_two_layer_page_active_units_are_the_recorded_run():
    page = " ".join((ROOT / "derivations" / "two-layer.md").read_text(encoding="utf-8").split())
    (z1, z2), (u1, u2) = load(f"{TWO_LAYER_RUN}/evaluate.json")["active_units"], [100, 50]
    assert f"{z1} of the {u1} units of $z_1$ and {z2} of the {u2} units of $z_2$ were active" in page
    assert f"({100 * z2 / u2:.0f} %) than the lower one ({100 * z1 / u1:.0f} %)" in page and z2 / u2 < z1 / u1


def test_results_page_two_layer_step_cost_is_the_recorded_benchmark(prose):
    steps = load("2026-12-07-two-layer-cpu-steps.json")
    ms = steps["median_cpu_ms_per_step"]
    assert (steps["rounds"], steps["steps_per_round"], steps["blas_threads"]) == (5, 100, 1)
    assert f"took {ms['two layers']:.2f} ms against {ms['one layer']:.2f} ms for the one-layer model (medians of " \
           f"{steps['rounds']} rounds of {steps['steps_per_round']} steps" in prose
    assert "load average of about 18" in prose and "load average about 18" in steps["note"]
    ratios = sorted(steps["ratios"])
    assert f"rounds' ratios have a median of {ratios[len(ratios) // 2]:.2f}" in prose


def test_readme_headline_two_layer_figure_is_the_recorded_run(front):
    ev = load(f"{TWO_LAYER_RUN}/evaluate.json")
    figure = headline(front, "Burda et al.'s two-layer VAE (784-200-200-[z1 100]-100-100-[z2 50], the same protocol: batch 128, 3,280 epochs)")
    assert figure.startswith(f"NLL (K = 5000) **{ev['nll']:.2f}** ± {ev['nll_sem']:.2f} (the paper: 85.33, as quoted)")


def test_readme_iwae_k5_estimate_is_the_recorded_epochs(prose):
    """The IWAE k = 5 row is not run; the README's estimate of its time comes from three timed epochs."""
    config = load("2026-12-02-iwae-k5-epochs/config.json")
    assert (config["objective"], config["k"], config["lr_schedule"]) == ("iwae", 5, "iwae-paper")
    seconds = [m["seconds"] for m in load_metrics("2026-12-02-iwae-k5-epochs")]
    assert len(seconds) == 3
    listed = f"{seconds[0]:.1f} s, {seconds[1]:.1f} s and {seconds[2]:.1f} s"
    hours = sorted(seconds)[1] * 3280 / 3600
    assert f"three epochs took {listed} here" in prose and f"would take about {hours:.1f} hours" in prose


# --------------------------------------------------------------------------- the README's headline table


def headline(front, first_cell):
    cells = table_row(front, first_cell)
    return cells[2]


def test_readme_headline_iwae_figure_is_the_recorded_run(front, readme):
    ev = load(f"{IWAE_RUN}/evaluate.json")
    assert load(f"{IWAE_RUN}/config.json")["batch_size"] == 128  # the paper's protocol except its batch of 20
    figure = headline(front, "Burda et al.'s VAE (784-200-200-50, their protocol except batch 128 (paper: 20), 3,280 epochs)")
    assert figure.startswith(f"NLL (K = 5000) **{ev['nll']:.2f}** ± {ev['nll_sem']:.2f} (the paper: 86.76)"), figure
    assert f"**{ev['nll']:.2f}** ± {ev['nll_sem']:.2f}" in readme


def test_readme_headline_conv_figure_is_the_recorded_run(front):
    ev = load("2026-12-01-conv-runs/conv-z2/evaluate.json")
    figure = headline(front, "the Keras example's convolutional VAE (Z = 2, 30 epochs)")
    assert figure == f"negative ELBO **{ev['loss']:.2f}**", figure


def test_readme_headline_speed_is_the_recorded_benchmark(front):
    rows = {r["batch_size"]: r["ratio_to_torch_fused"] for r in load("2026-12-01-cpu.json")["results"]}
    figure = headline(front, "training speed, batch 128, against PyTorch with its fused Adam")
    assert figure.startswith(f"**{rows[128]:.2f}** × PyTorch's time per epoch"), figure
    assert f"{rows[32]:.2f} at batch 32, {rows[512]:.2f} at batch 512;" in figure, figure


DEFAULT_RUN = "2026-12-07-default-run"


def test_readme_headline_default_run_is_the_recorded_runs(front, readme):
    """The default run's figures are the last test losses of the two stored runs (seeds 0 and 1),
    and the headline is the results page's row."""
    last = {seed: load_metrics(f"{DEFAULT_RUN}/seed{seed}")[-1] for seed in (0, 1)}
    assert all(r["epoch"] == 10 for r in last.values())
    for seed in (0, 1):
        config = load(f"{DEFAULT_RUN}/seed{seed}/config.json")
        assert (config["seed"], config["epochs"], config["limit_train"]) == (seed, 10, 0), config
    figure = headline(front, "the pytorch/examples VAE (784-400-20, grey-level BCE, 10 epochs)")
    loss, seed1, seconds = re.search(r"\*\*(\d+\.\d\d)\*\* .*\(seed 0; seed 1: (\d+\.\d\d)\).*; (\d+) s", figure).groups()
    assert (loss, seed1) == (f"{last[0]['test_loss']:.2f}", f"{last[1]['test_loss']:.2f}"), (loss, seed1)
    first3 = ", ".join(f"{r['test_loss']:.2f}" for r in load_metrics(f"{DEFAULT_RUN}/seed0")[:3])
    assert f"the default run's first three test losses are now {first3}" in readme
    assert "not a bound on a likelihood" in figure and "negative ELBO" not in figure  # grey levels: no likelihood
    row = table_row(readme, "pytorch/examples: 784-400-20, ReLU, grey-level BCE, Adam 1e-3, batch 128")
    assert f"**{loss}** (seed 0; seed 1: {seed1})" in row[-1] and "not a bound on a likelihood" in row[-1], row
    assert row[3].startswith(f"{seconds} s for the whole run"), row


def test_readme_links_the_results_page_and_start_here(front):
    assert "(docs/results.md)" in front and "(docs/start-here.md)" in front
    assert "python -m pytest -q\n" in front  # CI runs the README's test command


CB_RUN = "2026-12-07-cb-dequantized.json"


def test_readme_continuous_bernoulli_row_is_the_dequantized_run(readme, prose):
    """The continuous-Bernoulli row quotes benchmarks/cb_dequantized.py's run: trained and scored on
    dequantized pixels, where the density is bounded (on grey levels with atoms at 0 it is not)."""
    run = load(CB_RUN)
    assert (run["epochs"], run["seed"], run["nll_k"], run["nll_n"], run["test_n"]) == (10, 0, 1000, 1000, 10000)
    cells = table_row(readme, "continuous Bernoulli, dequantized pixels")
    figures = cells[-1].replace("\u2212", "-")
    assert f"negative ELBO {run['test_neg_elbo']:.2f} on all 10,000 test digits" in figures, figures
    assert f"**NLL (K = 1000) {run['nll_mean']:.2f} ± {run['nll_stderr']:.2f}** on the first 1,000" in figures
    assert f"(their negative ELBO: {run['neg_elbo_same_digits']:.2f})" in figures
    bits_se = run["nll_stderr"] / (784 * math.log(2))  # the NLL's standard error in bits per dimension
    assert f"an upper bound of {run['bits_per_dim_bound']:.3f} ± {bits_se:.3f} bits per dimension" in figures
    assert f"KL {run['test_kl']:.2f}" in figures and f"{run['active_units']} of 20 latent units active" in figures
    # A density of dequantized 8-bit digits is at least -D log 256 nats (derivations/continuous-bernoulli.md).
    assert run["nll_mean"] > -784 * 5.545177444479562 and run["test_neg_elbo"] > -784 * 5.545177444479562
    assert "python benchmarks/cb_dequantized.py" in cells[1]
    bound = 784 * math.log(256)
    assert f"averaged over u, no model scores below -784 log 256 ≈ -{bound:.0f} nats per digit" in prose
    assert abs(run["bits_per_dim_bound"] - (run["nll_mean"] / (784 * math.log(2)) + 8)) < 1e-3
    assert f"by `benchmarks/cb_dequantized.py` ({run['epochs']} epochs" in prose and CB_RUN in prose


def test_ratios_quoted_from_the_gaussian_rows_follow_from_the_table(readme, prose):
    """The Gaussian rows have no result file; the prose's ratios must at least agree with the table."""
    def figure(first_cell, pattern):
        cells = table_row(readme, first_cell)
        return float(re.search(pattern, cells[-1].replace("\u2212", "-")).group(1))
    fixed, learned, optimal = ("Gaussian, σ_x² = 1 fixed",
                               "Gaussian, σ_x² learned (1 at the start, 0.0163 after 10 epochs and still falling)",
                               "Gaussian, σ_x² optimal (each batch's MSE; the model keeps their running average, 0.0118 at the end)")
    nll = {row: figure(row, r"NLL (?:\(K = 1000\) )?(-?[\d.]+) ±") for row in (fixed, learned, optimal)}
    sharp = {row: figure(row, r"sample sharpness ([\d.]+)") for row in (fixed, learned, optimal)}
    assert nll[fixed] == 739.49 and sharp[fixed] == 0.0087  # the table parsed as written
    assert min(nll[fixed] - nll[learned], nll[fixed] - nll[optimal]) > 1300 and "better by over 1,300 nats" in prose
    ratios = f"{sharp[learned] / sharp[fixed]:.1f} and {sharp[optimal] / sharp[fixed]:.1f} times as sharp"
    assert ratios == "1.8 and 2.2 times as sharp" and ratios in prose
    assert f"is {1 / 0.035:.0f} times the squared error per pixel of that model's own reconstructions (0.035" in prose
    assert "12 of 20 units are inactive" in prose and "8 of 20 units active" in table_row(readme, fixed)[-1]
    kl_optimal = figure(optimal, r"KL ([\d.]+)")
    assert f"its codes spend {kl_optimal:.0f} nats" in prose


CONTENTION = "2026-12-07-contention-cpu-final.json"


def test_results_page_contention_table_is_the_recorded_benchmark(prose):
    """The busy-machine table quotes benchmarks/bench_contention.py's JSON: medians of the rounds' seconds
    and the medians of the per-round ratios, as the script prints them."""
    run = load(CONTENTION)
    seconds = {k: statistics.median(v) for k, v in run["seconds"].items()}
    for workload in ("train", "conv", "evaluate"):
        ratio = {name.split(": ", 1)[1]: r["median"] for name, r in run["ratios"].items() if name.startswith(workload + ":")}
        cells = [f"{seconds[f'{workload} | default | idle']:.2f}", f"{seconds[f'{workload} | old default | idle']:.2f}",
                 f"{seconds[f'{workload} | default | busy']:.2f}", f"{seconds[f'{workload} | one thread | busy']:.2f}",
                 f"{ratio['busy default / busy one thread']:.2f}", f"{ratio['idle default / idle old default']:.2f}"]
        assert " | ".join(cells) + " |" in prose, (workload, cells)
    torch_cells = f"| {seconds['torch | default | idle']:.2f} | | {seconds['torch | default | busy']:.2f} |"
    assert torch_cells in prose, torch_cells
    for workload in ("train", "conv", "evaluate"):
        ratio = run["ratios"][f"{workload}: idle default / idle old default"]
        rounds = ", ".join(f"{x:.2f}" for x in ratio["by_round"])
        assert f"{ratio['median']:.2f} (rounds {rounds})" in prose, (workload, rounds)
    busy = [run["ratios"][f"{w}: busy default / busy one thread"] for w in ("train", "conv", "evaluate")]
    assert all(r["median"] <= 1.3 for r in busy)
    assert "the worst single rounds were {:.2f} (dense), {:.2f} (conv) and {:.2f} (evaluation)".format(
        *(max(r["by_round"]) for r in busy)) in prose
    torch_busy = run["seconds"]["torch | default | busy"]
    assert "PyTorch's busy rounds took {:.1f}, {:.1f} and {:.1f} s".format(*torch_busy) in prose
    conv = run["ratios"]["conv: idle default / idle old default"]["by_round"]
    assert max(conv) < 1 and "the conv model in every round" in prose
    first = run["splits_at_once"]["evaluate | default | idle"][0]
    assert f"in its first round the policy ran only {first:.0%} of its splits at once".replace("%", " %") in prose
    loads = ", ".join(f"{x:.1f}" for x in run["load_average_before_rounds"][:2]) + " and " + \
        f"{run['load_average_before_rounds'][2]:.1f}"
    assert f"the load average before the rounds was {loads} on 2 cores" in prose
    dense, evaluation = (run["splits_at_once"][f"{w} | default | idle"] for w in ("train", "evaluate"))
    assert max(dense[1:] + [evaluation[0], evaluation[2]]) < 0.8  # the rounds the page calls not fully idle
    said = (f"the default ran only {dense[1]:.0%} and {dense[2]:.0%} of its splits at once in the dense model's rounds 2 "
            f"and 3 ({evaluation[0]:.0%} and {evaluation[2]:.0%} in the evaluation's rounds 1 and 3)")
    assert said.replace("%", " %") in prose


def test_readme_quotes_the_recorded_suite_time(front):
    """The suite's wall time beside the test command is the recorded CI run's."""
    run = load("2026-12-07-suite-time.json")
    text = " ".join(front.split())
    assert f"the suite took {round(run['pytest_seconds'])} s as `.ci/run` runs it ({run['passed']:,} tests passed and {run['skipped']}" in text


def test_results_page_m2_table_is_the_recorded_benchmark(prose):
    result = load("2026-12-07-m2-labels100.json")
    assert result["config"]["labels"] == 100 and result["config"]["epochs"] == 2 and result["draws"] == 3
    for key in ("m2_test_error_percent", "classifier_alone_test_error_percent"):
        for value in result[key]["values"]:
            assert f"{value:.2f} %" in prose, (key, value)
        assert f"{result[key]['mean']:.2f} %" in prose and f"± {result[key]['std']:.2f}" in prose
    m2, alone = result["m2_test_error_percent"]["mean"], result["classifier_alone_test_error_percent"]["mean"]
    assert m2 > alone and "so M2 does not beat the classifier trained on the labels alone" in prose
    gaps = [a - b for a, b in zip(result["m2_test_error_percent"]["values"],
                                  result["classifier_alone_test_error_percent"]["values"])]
    assert min(gaps) > 0 and f"in each of the three draws (by {min(gaps):.1f} to {max(gaps):.1f} points)" in prose
    assert f"{result['paper']['test_error_percent']:.2f} %" in prose and not result["paper"]["checked"]
    assert "was not checked against the paper" in prose
    cpu_m2, cpu_vae = result["m2_step_cpu_seconds"], result["vae_step_cpu_seconds"]
    assert f"{cpu_m2:.3f} CPU seconds against {cpu_vae:.3f}" in prose
    assert f"a ratio of medians of {cpu_m2 / cpu_vae:.2f}" in prose
    steps = result["step_seconds"]
    paired = [m / v for m, v in zip(steps["m2_cpu"], steps["vae_cpu"])]  # the rounds take turns: paired
    listed = ", ".join(f"{r:.2f}" for r in paired[:-1]) + f" and {paired[-1]:.2f}"
    assert f"the paired per-round ratios were {listed}, median {statistics.median(paired):.2f}" in prose
    assert result["blas"]["num_threads"] == 2 and "are not a measure of M2's cost" in prose
    # the like-for-like step rounds: the --pin-blas run, BLAS on one thread for both models
    pinned = load("2026-12-07-m2-labels100-pinned.json")
    assert pinned["blas"]["num_threads"] == 1 and "--pin-blas" in pinned["command"]
    p_m2, p_vae = pinned["m2_step_cpu_seconds"], pinned["vae_step_cpu_seconds"]
    steps = pinned["step_seconds"]
    assert p_m2 == statistics.median(steps["m2_cpu"]) and p_vae == statistics.median(steps["vae_cpu"])
    assert f"an M2 step took {p_m2:.4f} CPU seconds against {p_vae:.4f} for a plain VAE" in prose
    assert f"a ratio of medians of {p_m2 / p_vae:.2f}" in prose
    paired = [m / v for m, v in zip(steps["m2_cpu"], steps["vae_cpu"])]
    listed = ", ".join(f"{r:.2f}" for r in paired[:-1]) + f" and {paired[-1]:.2f}"
    assert f"the paired per-round ratios were {listed}, median {statistics.median(paired):.2f}" in prose
    epoch = statistics.median(pinned["m2_epoch_cpu_seconds_measured"][0])
    assert abs(pinned["m2_epoch_cpu_seconds_from_steps"] - 599 * p_m2) < 1e-6 * epoch
    assert (f"predicts {pinned['m2_epoch_cpu_seconds_from_steps']:.1f} CPU s for its epoch's steps, against the "
            f"{epoch:.1f} s its whole first epoch took") in prose
    # BLAS on 2 threads inflated the plain VAE's step more than M2's
    assert cpu_vae / p_vae > cpu_m2 / p_m2
    assert (f"{cpu_vae:.3f} against {p_vae:.4f} CPU s for the plain VAE, {cpu_m2:.3f} against {p_m2:.4f} "
            "for M2") in prose


def test_results_page_flow_table_is_the_recorded_benchmark(prose):
    result = load("2026-12-07-flows-mnist.json")
    assert result["epochs"] == 40 and result["iw_samples"] == 5000 and result["test_limit"] == 2000
    assert "first 4 stages" in prose and "first 2,000 test digits" in prose and "K = 5000" in prose
    rows = result["rows"]
    for row in rows.values():
        assert f"**{row['test_nll']:.2f}** ± {row['test_nll_sem']:.2f}" in prose
        assert f"{row['test_neg_elbo']:.2f} ± {row['test_neg_elbo_sem']:.2f}" in prose
        assert f"{row['cpu_ms_per_step']:.2f} ({row['step_time_over_diagonal']:.2f}×)" in prose
    beat = [name for name, row in rows.items() if name != "diagonal"
            and -row["nll_minus_diagonal"] > 2 * row["nll_minus_diagonal_sem"]]
    assert sorted(beat) == ["iaf-2", "iaf-4", "planar-40"], beat  # the page's sentence names these three
    assert "planar T = 40 and both IAF rows beat the diagonal Gaussian by more than two standard errors" in prose
    ten = rows["planar-10"]
    assert abs(ten["nll_minus_diagonal"]) < ten["nll_minus_diagonal_sem"]  # "within one standard error"
    for name in beat:
        diff, sem = rows[name]["nll_minus_diagonal"], rows[name]["nll_minus_diagonal_sem"]
        assert f"{diff:+.2f} ± {sem:.2f}" in prose
    gap = rows["iaf-4"]["test_nll"] - rows["iaf-2"]["test_nll"]
    assert gap > 0 and f"IAF with 4 steps scored {gap:.2f} nats worse than with 2" in prose


def test_results_page_quadrant_table_is_the_recorded_benchmark(prose):
    result = load("2026-12-07-cvae-quadrants.json")
    assert result["settings"]["epochs"] == 10 and result["settings"]["limit_test"] == 2000
    assert result["settings"]["k"] == 100 and "K = 100" in prose and "first 2,000 test digits" in prose
    table, runs = result["table_nats"], result["runs"]
    for q in "123":
        assert f"{table['regressor'][q]:.2f} ± {runs['regressor q' + q]['nll_sem']:.2f}" in prose
        assert f"**{table['cvae'][q]:.2f}** ± {runs['cvae q' + q]['nll_sem']:.2f}" in prose
        assert f"{table['cvae_neg_elbo'][q]:.2f}" in prose
        assert table["cvae"][q] < table["regressor"][q]  # "On every split the CVAE's figure is the lower"
    gaps = ", ".join(f"{table['regressor'][q] - table['cvae'][q]:.2f}" for q in "12")
    assert f"the lower on every split, by {gaps} and {table['regressor']['3'] - table['cvae']['3']:.2f} nats" in prose
    pyro = result["pyro_table_nats"]
    # Pyro's figures sit beside the rows they are like: its baseline by the regressor, its CVAE's negative
    # ELBO by this CVAE's negative ELBO; the gaps between them, like for like
    reg = " | ".join(f"{table['regressor'][q]:.2f} ± {runs['regressor q' + q]['nll_sem']:.2f}" for q in "123")
    assert f"{reg} | its baseline: " + " / ".join(f"{pyro['baseline'][q]:.1f}" for q in "123") + " |" in prose
    elbo = " | ".join(f"{table['cvae_neg_elbo'][q]:.2f}" for q in "123")
    assert f"{elbo} | its CVAE's negative ELBO: " + " / ".join(f"{pyro['cvae'][q]:.1f}" for q in "123") in prose
    above = [table["cvae_neg_elbo"][q] - pyro["cvae"][q] for q in "123"]
    assert f"this run's CVAE is {above[0]:.2f}, {above[1]:.2f} and {above[2]:.2f} nats above Pyro's" in prose
    above = [table["regressor"][q] - pyro["baseline"][q] for q in "123"]
    assert f"its regressor {above[0]:.2f}, {above[1]:.2f} and {above[2]:.2f} nats above Pyro's baseline" in prose
    # grey levels: the page must not call these figures likelihoods
    assert "not −log p(x_u|c)".replace("−", "-") in prose and "a cross-entropy" in prose
    # "each gap more than 16 times the larger of the two figures' standard errors", the smallest on the 3-seen split
    times = {q: (table["regressor"][q] - table["cvae"][q])
             / max(runs["regressor q" + q]["nll_sem"], runs["cvae q" + q]["nll_sem"]) for q in "123"}
    assert min(times.values()) > 16 and min(times, key=times.get) == "3"
    sem3 = max(runs["regressor q3"]["nll_sem"], runs["cvae q3"]["nll_sem"])
    assert f"({table['regressor']['3'] - table['cvae']['3']:.2f} against {sem3:.2f} on the 3-seen split;" in prose
    cvae_mem = sorted(runs[f"cvae q{q}"]["peak_rss_mib"] for q in "123")
    assert f"{cvae_mem[0]:.0f}–{cvae_mem[-1]:.0f} MiB for the CVAE" in prose
    # the protocol comparison: the page's list and the script's agree on what Pyro does
    assert result["settings"].get("binarize", "none") == "none" and "does not binarize" in prose
    cost = load("2026-12-07-cvae-cost.json")  # made after the script learned to list the grey-level point
    listed = " ".join(cost["protocol_differences"])
    import importlib.util
    import sys
    spec = importlib.util.spec_from_file_location("cvae_quadrants_for_page", ROOT / "benchmarks" / "cvae_quadrants.py")
    script = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec.loader.exec_module(script)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    now = script.PROTOCOL_DIFFERENCES  # "this table's JSON holds an older list"
    assert result["protocol_differences"] != now and "(this table's JSON holds an older list)" in prose
    assert any("recognition network reads one image holding the seen and the unseen pixels" in d for d in now)
    assert "its recognition network reads one image holding the seen and the unseen pixels" in prose
    assert "500-500 ReLU hidden layers, Z = 200, Adam at 1e-3, batches of 128" in prose
    assert result["settings"]["hidden"] == [500, 500] and result["settings"]["latent"] == 200
    import argparse
    from tinyvae.run.config import TrainConfig
    args = argparse.Namespace(quadrants=[2], epochs=1, vae_epochs=1, hidden=[500, 500], latent=200, k=100,
                              limit_train=0, limit_test=0, binarize="none", seed=0)
    config = script.jobs(args, Path("."))["cvae q2"]["config"]
    assert config["lr"] == 1e-3 and config["batch_size"] == 128  # Adam at 1e-3, batches of 128
    assert "activation" not in config and TrainConfig.activation == "relu" and TrainConfig.optimizer == "adam"
    for fact in ("does not binarize", "Trace_ELBO, num_particles=10", "batches of 32", "50 epochs"):
        assert fact in listed, fact
    for fact in ("negative ELBO averaged over 10 samples", "batches of 32", "patience 3 epochs",
                 '"We trained only for 50 epochs with early stopping patience of 3 epochs"',
                 "1 is the bottom left, 2 the left half, 3 all but the bottom right"):
        assert fact in prose, fact


M2_CURVE = "2026-12-07-m2-labels100-8epochs.json"


def test_results_page_m2_curve_is_the_recorded_run_with_the_gap_to_the_quoted_figure(prose):
    result = load(M2_CURVE)
    n, curve = result["config"]["epochs"], result["m2_test_error_percent_by_epoch"][0]
    assert result["draws"] == 1 and result["config"]["labels"] == 100 and n > 2 and len(curve) == n
    assert curve[-1] == result["m2_test_error_percent"]["values"][0]  # the curve ends at the run's figure
    assert f"--labels 100 --draws 1 --epochs {n} --vae-epochs 1" in prose
    assert "| M2 test error | " + " | ".join(f"{e:.2f} %" for e in curve) + " |" in prose
    falling = all(b <= a for a, b in zip(curve, curve[1:]))
    assert ("the error falls after every epoch" in prose) == falling
    assert ("the error does not keep falling" in prose) == (not falling)
    if not falling:
        low, high = min(curve), max(curve)
        assert f"it is lowest after epoch {curve.index(low) + 1} ({low:.2f} %)" in prose
        worst = curve.index(high) + 1
        assert (f"highest after epoch {n}, the last ({high:.2f} %)" if worst == n
                else f"highest after epoch {worst} ({high:.2f} %)") in prose
        assert f"from epoch 1 to epoch {n} it changed by {curve[-1] - curve[0]:+.2f} points" in prose
    alone = result["classifier_alone_test_error_percent"]["values"][0]
    assert f"for the same {599 * n:,} steps reached {alone:.2f} %" in prose
    assert ("lower than M2's error after every one of the" in prose) == (alone < min(curve))
    three = load("2026-12-07-m2-labels100.json")  # draw 0 is this run's label seed, trained for 2 epochs
    assert three["config"]["label_seed"] == result["config"]["label_seed"] == 0
    mean = three["classifier_alone_test_error_percent"]["mean"]
    assert ("that it equals the three-draw mean above is a coincidence" in prose) == (f"{mean:.2f}" == f"{alone:.2f}")
    short = three["classifier_alone_test_error_percent"]["values"][0]
    assert f"after {599 * three['config']['epochs']:,} steps the same draw gave {short:.2f} %" in prose
    assert f"the error rose from {curve[0]:.2f} % after epoch 1 to {curve[-1]:.2f} % after epoch {n}" in prose
    quoted = result["paper"]["test_error_percent"]
    assert not result["paper"]["checked"] and quoted == 11.97
    assert f"misses the {quoted:.2f} % quoted for M2" in prose and f"by {curve[-1] - quoted:.2f} points" in prose
    assert "0.1 × 599 = 59.9 times" in prose and abs(0.1 * 599 - 59.9) < 1e-9


def m2_bench():
    """benchmarks/m2_labels.py as a module (its PAPER and PYRO_SSVAE figures)."""
    from scripts import load_benchmark
    return load_benchmark("m2_labels", "m2_labels_for_page")


def test_results_page_quotes_pyros_ssvae_table_as_the_benchmark_records_it(prose):
    bench = m2_bench()
    pyro = bench.PYRO_SSVAE
    assert f"reports {100 * pyro['accuracy']:.2f} % accuracy at 100 labels" in prose
    error, bound = 100 * (1 - pyro["accuracy"]), 100 * pyro["bound"]
    assert f"that is {error:.2f} % error (95 % bounds ± {bound:.2f} points" in prose
    assert pyro["draws"] == 5 and "over five labelled draws" in prose
    assert "at 100 labels for its third variant (y summed over the labels, plus the auxiliary classification loss" in prose
    assert "third variant" in pyro["source"]
    first, second = 100 * pyro["first_variant_accuracy"], 100 * pyro["second_variant_accuracy"]
    assert f"reach {first:.2f} % and {second:.2f} % accuracy there" in prose
    alone, alone_bound = 100 * (1 - pyro["classifier_alone_accuracy"]), 100 * pyro["classifier_alone_bound"]
    ours = load("2026-12-07-m2-labels100.json")["classifier_alone_test_error_percent"]["mean"]
    assert abs(alone - ours) < 2  # "close to"
    assert f"Its classifier on the labels alone errs {alone:.2f} % (± {alone_bound:.2f} points), close to the " \
           f"{ours:.2f} % of tinyvae's classifier alone" in prose
    assert f"its {error:.2f} % is below the {bench.PAPER['test_error_percent']:.2f} % quoted above" in prose
    script = bench.PYRO_SSVAE_SCRIPT  # the example script's defaults, as the page quotes them
    assert f"as of pyro-ppl/pyro commit {script['commit']}) trains {script['num_epochs']} epochs by default" in prose
    assert f"an epoch), {script['aux_loss_multiplier']} by default (as of commit {script['commit']}; " \
           f"{script['before_b6bc8459d']['aux_loss_multiplier']} before April 2018)" in prose
    assert f"batches of {script['batch_size']} and Adam with learning rate {script['learning_rate'] * 1e4:.1f}e-4 " \
           f"(β1 {script['beta_1']}; its example command uses {script['example_run_beta_1']})" in prose
    authors = bench.AUTHORS_M1M2_100
    assert f"trains its M1+M2 runs for {authors['epochs']:,} epochs" in prose
    per_step = 100 // authors["minibatches"]
    assert f"it uses {authors['hidden']} hidden units and {authors['minibatches']} minibatches an epoch, " \
           f"{'one' if per_step == 1 else per_step} labelled example per step" in prose
    from tinyvae.run.semi import SemiConfig
    assert authors["adam_lr"] == SemiConfig.lr == 3e-4 and authors["adam_beta_1"] == 0.9
    assert "The authors' code uses Adam at 3e-4 (β1 0.9), as tinyvae does, with one labelled digit a step" in prose
    assert "0.1·N_train/N_l = 60, with N_train = 60,000 training images and N_l = 100" in prose
    weight = authors["alpha"] * authors["train_images"] / 100
    assert f"the same rule to its {authors['train_images']:,} training images, which gives {weight:.0f}" in prose
    by_labels = bench.PAPER["test_error_percent_by_labels"]
    assert by_labels == {"100": 11.97, "600": 4.94, "1000": 3.60, "3000": 3.92} and not bench.PAPER["checked"]


def test_results_page_cost_table_is_the_recorded_cpu_time_and_peak_memory(prose):
    cost, m2 = load("2026-12-07-cvae-cost.json"), load(M2_CURVE)
    med, runs = statistics.median, cost["runs"]
    assert cost["settings"]["quadrants"] == [2] and cost["settings"]["limit_test"] == 500
    assert "--quadrants 2 --epochs 2 --vae-epochs 2 --limit-test 500" in prose
    base = med(runs["vae"]["epoch_cpu_seconds"])
    assert f"| {base:.2f} | 1 | {runs['vae']['peak_rss_mib_after_training']:.0f} |" in prose
    for name in ("cvae q2", "regressor q2"):
        cpu = med(runs[name]["epoch_cpu_seconds"])
        assert f"| {cpu:.2f} | {cpu / base:.2f} | {runs[name]['peak_rss_mib_after_training']:.0f} |" in prose, name
    assert f"raised the CVAE's peak to {runs['cvae q2']['peak_rss_mib']:.0f} MiB" in prose
    vae = m2["plain_vae_run"]
    for key in ("hidden", "latent", "activation", "batch_size", "binarize", "lr"):
        assert vae["config"][key] == m2["config"][key], key  # "the plain VAE of the same sizes, batch and data"
    vae_cpu, m2_cpu = med(vae["cpu_seconds_by_epoch"]), med(m2["m2_epoch_cpu_seconds_measured"][0])
    peaks = m2["m2_peak_rss_mib_by_epoch"][0]
    # that run read the VAE's peak with ru_maxrss in a spawned child, which inherits its parent's (M2's) peak
    assert "peak_memory" not in m2 and vae["peak_rss_mib"] >= peaks[0]
    assert f"| {vae_cpu:.1f} | 1 | not measured |" in prose
    assert f"also records a peak for the plain VAE, {vae['peak_rss_mib']:.0f} MiB, but it is M2's" in prose
    assert f"| {m2_cpu:.1f} | — (BLAS threads differ) | {peaks[0]:.0f} |" in prose  # 2 threads against one
    assert f"({m2_cpu:.1f} against {vae_cpu:.1f} CPU s, {m2_cpu / vae_cpu:.2f} times; not like for like)" in prose
    assert "Each M2 ratio divides by the plain-VAE row above it" in prose
    assert f"{m2['m2_score_cpu_seconds'][0]:.1f} CPU s when timed alone" in prose
    assert f"({peaks[-1]:.0f} MiB after its last;" in prose
    assert "shared with several other jobs" in prose and "are not quoted" in prose
    # the short per-step rounds overstate the plain VAE's epoch against the whole epoch trained by tinyvae train
    predicted = m2["vae_epoch_cpu_seconds_from_steps"]
    assert predicted > 2 * vae_cpu
    said = (f"a plain VAE step took {m2['vae_step_cpu_seconds']:.3f} CPU s, which predicts {predicted:.1f} CPU s for "
            f"its epoch, while its epoch's training steps, trained as `tinyvae train` trains them (BLAS on one thread), took "
            f"{vae_cpu:.1f} CPU s")
    assert said in prose
    assert m2["blas"]["num_threads"] == 2 and "leaves BLAS on its 2 threads" in prose
    pinned = load("2026-12-07-m2-labels100-pinned.json")
    assert pinned["blas"]["num_threads"] == 1 and "--pin-blas" in pinned["command"]
    assert pinned["config"]["epochs"] == 1 and pinned["plain_vae_run"]["config"]["hidden"] == pinned["config"]["hidden"]
    p_vae = med(pinned["plain_vae_run"]["cpu_seconds_by_epoch"])
    p_m2 = med(pinned["m2_epoch_cpu_seconds_measured"][0])
    assert pinned["peak_memory"].startswith("VmHWM")  # each process's own peak, the VAE's child included
    p_vae_peak, p_m2_peak = pinned["plain_vae_run"]["peak_rss_mib"], pinned["m2_peak_rss_mib_by_epoch"][0][0]
    assert f"| {p_vae:.1f} | 1 | {p_vae_peak:.0f} |" in prose
    assert f"| {p_m2:.1f} | {p_m2 / p_vae:.2f} | {p_m2_peak:.0f} |" in prose
    assert f"M2's own peak memory is {p_m2_peak:.0f} MiB against the plain VAE's {p_vae_peak:.0f} MiB" in prose
    from_steps = pinned["m2_epoch_cpu_seconds_from_steps"]
    assert f"took {p_m2 / p_vae:.2f} times the plain VAE's CPU time (one epoch of each, one run; " in prose
    assert (f"M2's steps alone predict {from_steps:.1f} CPU s, {from_steps / p_vae:.2f} times), against "
            f"{m2_cpu / vae_cpu:.2f} times for M2 with BLAS on 2 threads") in prose
    assert f"one-epoch CPU time was {vae_cpu:.1f} s in one run and {p_vae:.1f} s in the" in prose
    said = (f"took {m2_cpu / p_m2:.1f} times the CPU time of its epoch on one thread "
            f"({m2_cpu:.1f} against {p_m2:.1f} s; a median of 8 epochs in one run against one epoch in another)")
    assert said in prose
    # BLAS on 2 threads against one, the plain VAE's step in the timing rounds and M2's epoch
    said = (f"a plain VAE step took {m2['vae_step_cpu_seconds']:.3f} CPU s in the timing rounds of the 8-epoch run, "
            f"against {pinned['vae_step_cpu_seconds']:.4f} with BLAS on one thread in the pinned run below, and M2's "
            f"epoch {m2_cpu:.1f} CPU s against {p_m2:.1f}")
    assert said in prose
    first = pinned["m2_test_error_percent_by_epoch"][0][0]
    assert f"{first:.2f}" == f"{m2['m2_test_error_percent_by_epoch'][0][0]:.2f}"  # "the same test error after it"
    assert f"as the 8-epoch run's first ({first:.2f} %)" in prose


def test_results_page_m2_alpha_table_is_the_recorded_sweep_with_only_alpha_changed(prose):
    sweep, extra = load("2026-12-07-m2-alpha-sweep.json"), load("2026-12-07-m2-alpha300.json")
    runs = sweep["by_alpha"] + [extra]
    assert [r["config"]["alpha"] for r in sweep["by_alpha"]] == sweep["alphas"] == [1, 10, 60]
    assert extra["config"]["alpha"] == 300
    curve, two = load(M2_CURVE), load("2026-12-07-m2-labels100.json")
    same = {k: v for k, v in two["config"].items() if k != "alpha"}  # draw 0 of the 2-epoch table: seed 0
    assert two["config"]["alpha"] == 0.1 and two["config"]["epochs"] == 2 and same["label_seed"] == 0
    for r in runs:  # "with only α_batch changed", "BLAS on one thread", one draw of 2 epochs
        assert {k: v for k, v in r["config"].items() if k != "alpha"} == same
        assert r["draws"] == 1 and r["blas"]["num_threads"] == 1 and r["config"]["label_seed"] == 0
    for cmd in (sweep["command"], extra["command"]):
        flags = cmd.split(" --out ")[0]  # the page leaves out where the JSON was written
        assert f"OPENBLAS_L2_SIZE {flags}" in prose and "--pin-blas" in flags and "--epochs 2 " in flags
    rows = [(0.1, curve["m2_test_error_percent_by_epoch"][0][:2])]
    rows += [(r["config"]["alpha"], r["m2_test_error_percent_by_epoch"][0]) for r in runs]
    assert curve["config"]["alpha"] == 0.1 and curve["blas"]["num_threads"] == 2
    for alpha, (e1, e2) in rows:
        label = "0.1 (the default)" if alpha == 0.1 else f"{alpha:g}"
        assert f"| α_batch {label} | {e1:.2f} % | {e2:.2f} % |" in prose, alpha
    alone = {r["classifier_alone_test_error_percent"]["values"][0] for r in runs}
    assert alone == {two["classifier_alone_test_error_percent"]["values"][0]}  # "in each of these runs, as in draw 0"
    (alone,) = alone
    assert f"for the same {599 * 2:,} steps reached {alone:.2f} % in each of these runs" in prose
    ends = [e[-1] for _, e in rows[1:]]
    assert all(b < a for a, b in zip(ends, ends[1:])) and "M2's error falls as α_batch rises from 1 to 300" in prose
    below = [alpha for alpha, e in rows if e[-1] < alone]
    assert below == [300] and "Only α_batch 300 ends below the classifier alone" in prose
    gap_300, gap_60 = alone - ends[-1], ends[-2] - alone
    assert f"by {gap_300:.2f} points ({round(gap_300 * 100)} of the 10,000 test digits)" in prose
    assert f"α_batch 60 ends {gap_60:.2f} points above it" in prose
    bench = m2_bench()
    pyro_error = 100 * (1 - bench.PYRO_SSVAE["accuracy"])
    assert min(ends) > 2 * pyro_error and f"the {pyro_error:.2f} % error of Pyro's tutorial" in prose
    now, before = bench.PYRO_SSVAE_SCRIPT["aux_loss_multiplier"], bench.PYRO_SSVAE_SCRIPT["before_b6bc8459d"]
    steps = 599  # an epoch of 59,900 unlabelled digits in batches of 100
    assert steps == -(-(60_000 - runs[0]["config"]["labels"]) // runs[0]["config"]["batch_size"])
    assert (f"{now} / {steps} ≈ {now / steps:.2f} for its default and {before['aux_loss_multiplier']} / {steps} ≈ "
            f"{before['aux_loss_multiplier'] / steps:.2f} for its default before April 2018") in prose


PYRO_LAYOUT = ("2026-12-07-m2-pyro-layout-a15.json", "2026-12-07-m2-pyro-layout-a100.json")


def test_results_page_m2_pyro_layout_tables_are_the_recorded_pair_of_runs_with_only_alpha_changed(prose):
    runs = [load(name) for name in PYRO_LAYOUT]
    config = runs[0]["config"]
    assert [r["config"]["alpha"] for r in runs] == [15, 100]
    for r in runs:  # one draw, label seed 0, BLAS on one thread, only α_batch changed
        assert {k: v for k, v in r["config"].items() if k != "alpha"} == {k: v for k, v in config.items() if k != "alpha"}
        assert r["draws"] == 1 and r["blas"]["num_threads"] == 1 and "m2_step_seconds" not in r
        flags = r["command"].split(" --out ")[0]  # the page leaves out where the JSON was written
        assert f"OPENBLAS_L2_SIZE {flags}" in prose and "--pin-blas" in flags and "--no-timing" in flags
    script = m2_bench().PYRO_SSVAE_SCRIPT
    assert (config["batch_size"], config["lr"], config["binarize"]) == (script["batch_size"], script["learning_rate"], "none")
    assert (config["labels"], config["label_seed"], config["labelled_batch"]) == (100, 0, 1)
    others = {k: v for k, v in load("2026-12-07-m2-labels100.json")["config"].items()
              if k not in ("alpha", "batch_size", "labelled_batch", "binarize", "lr", "epochs")}
    assert {k: config[k] for k in others} == others  # "the sizes and label seed of draw 0 above"
    n = config["epochs"]
    steps = -(-(60_000 - config["labels"]) // config["batch_size"])  # train_epoch's count
    assert steps == 300 and f"{n} epochs of {steps} steps ({n * steps:,} steps)" in prose
    per_epoch = steps * config["labelled_batch"] / config["labels"]  # times a labelled example is drawn, on average
    assert per_epoch == 3 and f"{steps} · α_batch / {config['labels']} = 3 · α_batch times one unlabelled" in prose
    p = config["labelled_batch"] / config["labels"]  # a labelled digit's chance to be a step's draw
    spread, never = math.sqrt(steps * p * (1 - p)), (1 - p) ** steps
    assert f"a Binomial({steps}, 1/{config['labels']}) count with a standard deviation of {spread:.2f}" in prose
    assert f"about {100 * never:.1f} % of the labelled digits ((0.99)^{steps}) are not drawn at all" in prose
    # the exact weight, batch means of 200 + 1 in full steps and 100 + 1 in the last: α/N per labelled draw
    unl = 60_000 - config["labels"]
    last = unl - (steps - 1) * config["batch_size"]
    full, end = config["batch_size"] + 1, last + 1
    exact = ((steps - 1) / full + 1 / end) / config["labels"] * full
    assert last == 100 and f"({exact:.2f} · α_batch against the bound of an unlabelled digit in a full step" in prose
    assert f"whose batch is {last} + 1)" in prose and abs(exact - 3) < 0.02
    assert "so under Adam these matches are approximate" in prose
    assert ("That script would refuse a batch of 200 at 100 labels (it requires the batch size to divide the number "
            "of labels)") in prose and config["labels"] % script["batch_size"] != 0
    assert "so at 100 labels it refuses its default batch of 200" in prose
    assert (f"45 for α_batch 15, close to the {script['aux_loss_multiplier']} of Pyro's default, and 300 for α_batch "
            f"100, its {script['before_b6bc8459d']['aux_loss_multiplier']} before April 2018") in prose
    header = "| label seed 0, 100 labels | " + " | ".join(f"epoch {i}" for i in range(1, n + 1)) + " |"
    assert header in prose
    for r in runs:
        alpha, errors = r["config"]["alpha"], r["m2_test_error_percent_by_epoch"][0]
        assert len(errors) == n and errors[-1] == r["m2_test_error_percent"]["values"][0]
        assert f"| α_batch {alpha:g}: M2 test error | " + " | ".join(f"{e:.2f} %" for e in errors) + " |" in prose
        wrong, entropy = r["generative_error_percent_by_epoch"][0], r["q_entropy_by_epoch"][0]
        assert len(wrong) == len(entropy) == n
        assert r["diagnostic"]["images"] == 2000 and r["diagnostic"]["samples"] == 5
        assert f"| α_batch {alpha:g}: generative label wrong | " + " | ".join(f"{e:.2f} %" for e in wrong) + " |" in prose
        assert f"| α_batch {alpha:g}: entropy of q, nats | " + " | ".join(f"{e:.2f}" for e in entropy) + " |" in prose
    assert "the first 2,000 test digits" in prose and "averaged over 5 draws of ε" in prose
    assert f"log 10 = {math.log(10):.2f} for a uniform q" in prose
    alone = {r["classifier_alone_test_error_percent"]["values"][0] for r in runs}
    assert len(alone) == 1  # the classifier alone does not read α: the same run twice
    (alone,) = alone
    assert f"for the same {n * steps:,} steps reached {alone:.2f} % in both runs" in prose
    m2_checks_of_pyro_layout(prose, runs, alone)


def m2_checks_of_pyro_layout(prose, runs, alone):
    """The sentences that read the Pyro-layout tables."""
    a15, a100 = runs
    for r in (a100, a15):
        errors = r["m2_test_error_percent_by_epoch"][0]
        low = min(errors)
        assert (f"with α_batch {r['config']['alpha']:g} the error is lowest after epoch {errors.index(low) + 1} "
                f"({low:.2f} %) and ends at {errors[-1]:.2f} %") in prose
        assert low > alone  # "both are above the classifier alone's ... after every epoch"
    assert "neither run reaches the classifier trained alone" in prose
    assert f"both are above the classifier alone's {alone:.2f} % after every epoch" in prose
    pyro = 100 * (1 - m2_bench().PYRO_SSVAE["accuracy"])
    assert f"far from the {pyro:.2f} % of Pyro's tutorial" in prose
    w15, w100 = a15["generative_error_percent_by_epoch"][0], a100["generative_error_percent_by_epoch"][0]
    assert (f"After epoch 12 it is wrong on {w15[-1]:.2f} % (α_batch 15) and {w100[-1]:.2f} % "
            f"(α_batch 100) of the 2,000 digits, against 90 % for a label drawn uniformly at random") in prose
    images = a15["diagnostic"]["images"]
    se = 100 * math.sqrt(0.9 * 0.1 / images)  # the standard error of the share wrong by chance
    assert images == 2000 and f"(± {se:.2f} points, the standard error of that share on {images:,} digits" in prose
    assert (90 - w15[0]) / se < 1.5 and f"the {w15[0]:.2f} % of α_batch 15 after epoch 1 is within 1.5 standard" in prose
    assert "Whether r is peaked on a wrong label or nearly flat was not measured" in prose
    assert f"noisy with S = {a15['diagnostic']['samples']} draws of ε" in prose
    assert "pulled toward" not in prose
    assert len(w15) == 12 and min(w15[-1], w100[-1]) > 50  # "wrong on most digits here", "more often than"
    h15, h100 = a15["q_entropy_by_epoch"][0][-1], a100["q_entropy_by_epoch"][0][-1]
    assert (f"its mean entropy after epoch 12 is {h15:.2f} nats with α_batch 15, near the {math.log(10):.2f} of a "
            f"uniform q, and {h100:.2f} nats with α_batch 100") in prose and math.log(10) - h15 < 0.2
    assert all(b < a for a, b in zip(w100, w100[1:]))
    assert f"the generative label's error falls after every epoch (from {w100[0]:.2f} % to {w100[-1]:.2f} %)" in prose
    later = a100["m2_test_error_percent_by_epoch"][0][1:]
    assert f"M2's test error stays between {min(later):.2f} and {max(later):.2f} % from epoch 2 on" in prose


def test_results_page_cvae_cost_peaks_are_the_runs_own_not_their_parents():
    """cvae_quadrants.py reads ``ru_maxrss`` in each spawned run, which starts at its parent's peak; the page
    says that parent, up to the point where it starts the runs, peaks below every recorded run's peak."""
    import subprocess
    import sys
    code = ("import sys; sys.path.insert(0, 'benchmarks'); import cvae_quadrants as c, tempfile, pathlib; "
            "from bench_training import blas_info; blas_info(); "
            "c.jobs(c.argparse.Namespace(quadrants=[2], epochs=2, vae_epochs=2, hidden=[500, 500], latent=200, "
            "k=100, limit_train=0, limit_test=500, binarize='none', seed=0), pathlib.Path(tempfile.gettempdir())); "
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    parent = int(out.stdout.split()[-1]) / 1024
    runs = load("2026-12-07-cvae-cost.json")["runs"]
    assert parent < min(r["peak_rss_mib_after_training"] for r in runs.values()), parent



M2_LONG = "2026-12-07-m2-alpha300-3draws.json"


def test_results_page_m2_long_table_is_the_recorded_three_draws_beside_both_classifiers_alone(prose):
    """α_batch 300 for 25 epochs over label seeds 0-2: the table, both classifier-alone rows, the paired gaps and
    the misses; and the page does not claim that M2 beats the classifier alone."""
    run = load(M2_LONG)
    config, sweep = run["config"], load("2026-12-07-m2-alpha300.json")["config"]
    assert run["draws"] == 3 and run["blas"]["num_threads"] == 1 and "m2_step_seconds" not in run
    assert {k: v for k, v in config.items() if k != "epochs"} == {k: v for k, v in sweep.items() if k != "epochs"}
    assert (config["alpha"], config["epochs"], config["batch_size"], config["labelled_batch"]) == (300, 25, 100, 100)
    assert f"OPENBLAS_L2_SIZE {run['command'].split(' --out ')[0]} --out benchmarks/results/{M2_LONG}" in prose
    steps = -(-(60_000 - config["labels"]) // config["batch_size"]) * config["epochs"]
    assert steps == 14_975 and f"trains 25 epochs ({steps:,} steps)" in prose
    assert f"α_batch × 599 = {300 * 599:,} times one unlabelled bound" in prose
    cpu = [sum(c) for c in run["m2_epoch_cpu_seconds_measured"]]
    assert f"each draw took {min(cpu):.0f} to {max(cpu):.0f} CPU seconds" in prose
    m2, alone = run["m2_test_error_percent"]["values"], run["classifier_alone_test_error_percent"]["values"]
    first = load("2026-12-07-m2-labels100.json")
    early = first["classifier_alone_test_error_percent"]["values"]
    assert first["blas"]["num_threads"] == 2 and first["config"]["epochs"] == 2

    def row(name, values, unit=" %", spread=" points"):
        return (f"| {name} | " + " | ".join(f"{v:.2f}{unit}" for v in values) +
                f" | {statistics.mean(values):.2f}{unit} ± {statistics.stdev(values):.2f}{spread} |")
    assert row("M2", m2) in prose
    assert row(f"the classifier on the 100 labels alone, {steps:,} steps", alone) in prose
    assert row("the classifier on the 100 labels alone, 1,198 steps", early) in prose
    gaps = [a - m for a, m in zip(alone, m2)]
    assert row(f"the classifier alone at {steps:,} steps, minus M2", gaps, unit="", spread="") in prose
    assert min(gaps) > 0 and f"by {min(gaps):.2f} to {max(gaps):.2f}\npoints".replace("\n", " ") in prose
    assert all(e < a for e, a in zip(early, alone)) and "on each draw its error after 1,198 steps is lower than after 14,975" in prose
    twenty = load("2026-12-07-m2-alpha300-20epochs.json")["classifier_alone_test_error_percent"]["values"][0]
    assert f"on draw 0 it was {twenty:.2f} % after 11,980 steps" in prose
    vs_early = [m - e for m, e in zip(m2, early)]
    lower = [i for i, v in enumerate(vs_early) if v < 0]
    assert lower == [0, 2] and (f"M2 is lower on draws 0 and 2 (by {-vs_early[0]:.2f} and {-vs_early[2]:.2f} points) "
                                f"and higher on draw 1 (by {vs_early[1]:.2f})") in prose
    assert "These three draws do not show that the unlabelled digits lower the error" in prose
    assert "the unlabelled digits lower the error." not in prose.replace("do not show that the unlabelled digits lower the error.", "")
    paper, pyro = m2_bench().PAPER["test_error_percent"], 100 * (1 - m2_bench().PYRO_SSVAE["accuracy"])
    mean = statistics.mean(m2)
    assert f"misses the {paper:.2f} % quoted for the paper by {mean - paper:.2f} points" in prose
    assert f"and the {pyro:.2f} % of Pyro's tutorial by {mean - pyro:.2f}" in prose
    assert (f"M2's mean test error is {mean:.2f} % ± {statistics.stdev(m2):.2f} points, against "
            f"{statistics.mean(early):.2f} % for the classifier alone after the 1,198 steps") in prose
    assert f"and {statistics.mean(alone):.2f} % after the same 14,975 steps" in prose
    assert round(mean - paper) == 11 and "misses the quoted figure by about 11 points" in prose


def test_results_page_m2_long_curves_are_described_draw_by_draw(prose):
    run = load(M2_LONG)
    epochs = (1, 5, 10, 15, 20, 25)
    assert "| label seed 0, α_batch 300 | " + " | ".join(f"epoch {e}" for e in epochs) + " |" in prose
    for label, key, unit in (("M2 test error", "m2_test_error_percent_by_epoch", " %"),
                             ("generative label wrong", "generative_error_percent_by_epoch", " %"),
                             ("entropy of q, nats", "q_entropy_by_epoch", "")):
        values = run[key][0]
        assert len(values) == 25
        assert f"| {label} | " + " | ".join(f"{values[e - 1]:.2f}{unit}" for e in epochs) + " |" in prose, label
    e0, e1, e2 = run["m2_test_error_percent_by_epoch"]
    low = min(e0)
    assert (f"from {e0[0]:.2f} % after epoch 1 to {e0[-1]:.2f} % after epoch 25 (lowest {low:.2f} %, after epoch "
            f"{e0.index(low) + 1}), and not at every epoch ({e0[11]:.2f} % after epoch 12)") in prose
    assert (f"Draws 1 and 2 rose to {max(e1):.2f} % (epoch {e1.index(max(e1)) + 1}) and {max(e2):.2f} % "
            f"(epoch {e2.index(max(e2)) + 1})") in prose
    assert e1[-1] > e1[0] and e2[-1] < e2[0]
    assert (f"draw 1 ended {e1[-1] - e1[0]:.2f} points above its error after epoch 1, draw 2 {e2[0] - e2[-1]:.2f} "
            f"points below it") in prose
    wrong = run["generative_error_percent_by_epoch"]
    said = ", ".join(f"{w[0]:.2f} % → {w[-1]:.2f} % on draw {d}" for d, w in enumerate(wrong))
    assert said.replace(", 72.90", " and 72.90") in prose and all(w[-1] < w[0] for w in wrong)
    entropy = run["q_entropy_by_epoch"][0]
    assert f"({entropy[0]:.2f} to {entropy[-1]:.2f} nats on draw 0)" in prose


def test_results_page_m2_long_runs_repeat_the_shorter_runs_digit_for_digit(prose):
    long, twenty = load(M2_LONG), load("2026-12-07-m2-alpha300-20epochs.json")
    assert {k: v for k, v in twenty["config"].items() if k != "epochs"} == \
        {k: v for k, v in long["config"].items() if k != "epochs"}
    for key in ("m2_test_error_percent_by_epoch", "generative_error_percent_by_epoch", "q_entropy_by_epoch"):
        assert long[key][0][:20] == twenty[key][0], key
    assert long["m2_test_error_percent_by_epoch"][0][:2] == load("2026-12-07-m2-alpha300.json")["m2_test_error_percent_by_epoch"][0]
    assert "Draw 0's first 20 epochs repeat, to the last digit, a separate 20-epoch run" in prose
    forty, twelve = load("2026-12-07-m2-pyro-layout-a100-40epochs.json"), load("2026-12-07-m2-pyro-layout-a100.json")
    assert {k: v for k, v in forty["config"].items() if k != "epochs"} == \
        {k: v for k, v in twelve["config"].items() if k != "epochs"} and forty["config"]["epochs"] == 40
    for key in ("m2_test_error_percent_by_epoch", "generative_error_percent_by_epoch", "q_entropy_by_epoch"):
        assert forty[key][0][:12] == twelve[key][0], key
    assert f"OPENBLAS_L2_SIZE {forty['command'].split(' --out ')[0]}" in prose
    errors, wrong = forty["m2_test_error_percent_by_epoch"][0], forty["generative_error_percent_by_epoch"][0]
    low, alone = min(errors), forty["classifier_alone_test_error_percent"]["values"][0]
    assert (f"to {errors[-1]:.2f} % after epoch 40 (lowest {low:.2f} % after epoch {errors.index(low) + 1}), against "
            f"{alone:.2f} % for the classifier alone over the same 12,000 steps") in prose
    se = 100 * math.sqrt(0.23 * 0.77 / 10_000)
    assert abs(errors[-1] - alone) < se and f"standard error of about {se:.2f} points" in prose
    assert f"the generative label's error fell to {wrong[-1]:.2f} %" in prose
