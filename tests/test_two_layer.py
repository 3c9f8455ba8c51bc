"""The VAE with two stochastic layers (tinyvae/models/two_layer.py): its gradients, its log weights term by term,
its structure (each layer's own noise, q(z2|z1) reading x only through z1), training, exact resume,
evaluation per layer, and the bad input the command line refuses.

Small float64 models for the math; runs of 512 bundled MNIST digits with tiny layers for the rest.
"""

import importlib
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from tinyvae import cli
from tinyvae.checkpoint import CheckpointError, load_arrays
from tinyvae.data import Dataset, load_dataset
from tinyvae.evaluation.command import format_report
from tinyvae.evaluation.evaluate import evaluate_checkpoint
from tinyvae.learn.gradcheck import check_model, standard_suite
from tinyvae.models.config import ModelConfig
from tinyvae.models.parts import iwae
from tinyvae.models.two_layer import TwoLayerVAE
from tinyvae.models.vae import VAE, build_model, load_model
from tinyvae.prob.losses import bernoulli_log_prob, log_normal_density
from tinyvae.run.train import CHECKPOINT_NAME, METRICS_NAME, ConfigError, TrainConfig, resume, train

SMALL = dict(input_dim=6, hidden=(5,), latent=3, latent2=2, hidden2=(4,), activation="tanh", dtype="float64")
N_TRAIN, N_TEST = 512, 256
TINY_RUN = dict(stochastic_layers=2, hidden=(32,), latent=6, latent2=3, hidden2=(8,), activation="tanh",
                init="glorot", binarize="dynamic", output_bias="data-mean", batch_size=64)
BASE_FLAGS = ["--hidden", "32", "--activation", "tanh", "--binarize", "dynamic", "--batch-size", "64",
              "--limit-train", str(N_TRAIN), "--limit-test", str(N_TEST), "--no-progress", "--no-pictures"]
TINY_FLAGS = ["--stochastic-layers", "2", "--hidden2", "8", "--latent", "6", "3", *BASE_FLAGS]


@pytest.fixture(scope="module")
def mnist():
    full = load_dataset()
    return Dataset(full.train_x[:N_TRAIN], full.train_y[:N_TRAIN], full.val_x, full.val_y,
                   full.test_x[:N_TEST], full.test_y[:N_TEST])


def small_model(**changes):
    return TwoLayerVAE(ModelConfig(stochastic_layers=2, **{**SMALL, **changes}))


def batch(seed=0, n=4, k=None):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 6))
    eps = rng.standard_normal((n, 5) if k is None else (n, k, 5))
    return x, eps


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("objective, k", [("elbo", 1), ("iwae", 1), ("iwae", 4)])
def test_whole_two_layer_gradient_matches_central_differences_with_fixed_eps(objective, k, gradcheck_passes):
    model = small_model(objective=objective, k=k, seed=3)
    x, eps = batch(1, k=None if objective == "elbo" else k)
    gradcheck_passes(check_model(model, x, eps).raise_if_failed())


def test_the_elbo_is_the_iwae_bound_with_one_sample():
    x, eps = batch(2)
    elbo = small_model(objective="elbo")
    one = small_model(objective="iwae", k=1)
    assert float(elbo.forward(x, eps)) == float(one.forward(x, eps[:, None, :]))
    np.testing.assert_array_equal(elbo.backward(), one.backward())


def test_gradcheck_command_lists_the_two_layer_model_under_both_objectives():
    labels = [rep.label for rep in standard_suite()]
    assert "two stochastic layers, ELBO" in labels and "two stochastic layers, IWAE K=3" in labels


# --------------------------------------------------------------------------- the log weights


def reference_log_weights(model, x, eps):
    """log w (N, K) assembled from the model's public pieces and the generic densities of tinyvae.losses."""
    z1_dim = model.config.latent
    eps1, eps2 = eps[:, :, :z1_dim], eps[:, :, z1_dim:]
    mu1, log_var1 = model.encode(x)
    z1 = mu1[:, None, :] + np.exp(0.5 * log_var1)[:, None, :] * eps1  # (N, K, Z1)
    rows = z1.reshape(-1, z1_dim)
    mu2, log_var2 = model.encode_upper(rows)
    z2 = mu2 + np.exp(0.5 * log_var2) * eps2.reshape(mu2.shape)
    m, log_s2 = model.prior_z1(z2)
    logits = model.p_x.forward(rows).reshape(*z1.shape[:2], -1)
    zero = np.zeros(model.config.latent2)
    shape = z1.shape[:2]
    return (bernoulli_log_prob(logits, x[:, None, :])
            + log_normal_density(rows, m, log_s2).reshape(shape)
            + log_normal_density(z2, zero, zero).reshape(shape)
            - log_normal_density(z1, mu1[:, None, :], log_var1[:, None, :])
            - log_normal_density(z2, mu2, log_var2).reshape(shape))


def test_log_weight_is_the_sum_of_the_five_log_densities_each_at_its_own_noise():
    model = small_model(seed=4)
    x, eps = batch(3, k=7)
    np.testing.assert_allclose(model.log_weights(x, eps), reference_log_weights(model, x, eps), rtol=0, atol=1e-10)
    loss = model.forward(x, eps[:, 0, :])  # the ELBO's loss is −mean log w of the same draw
    assert abs(float(loss) + reference_log_weights(model, x, eps[:, :1]).mean()) < 1e-10


def test_upper_posterior_reads_x_only_through_z1():
    """Two inputs whose noise gives them the same z1: every term that involves z2 must agree, so the difference
    of their log weights is that of log p(x|z1) − log q(z1|x) alone."""
    model = small_model(seed=5)
    (x, eps), (y, _) = batch(6, n=2, k=3), batch(7, n=2)
    mu_x, lv_x = model.encode(x)
    mu_y, lv_y = model.encode(y)
    z1 = mu_x[:, None, :] + np.exp(0.5 * lv_x)[:, None, :] * eps[:, :, :3]
    eps_y = eps.copy()
    eps_y[:, :, :3] = (z1 - mu_y[:, None, :]) / np.exp(0.5 * lv_y)[:, None, :]  # the same z1 from y
    logits = model.p_x.forward(z1.reshape(-1, 3)).reshape(2, 3, 6)

    def lower(data, mu, lv, e):
        return bernoulli_log_prob(logits, data[:, None, :]) + 0.5 * (e[:, :, :3] ** 2 + lv[:, None, :]).sum(-1)

    difference = model.log_weights(x, eps) - model.log_weights(y, eps_y)
    np.testing.assert_allclose(difference, lower(x, mu_x, lv_x, eps) - lower(y, mu_y, lv_y, eps_y), atol=1e-10)


def test_each_layer_takes_its_own_columns_of_eps():
    model = small_model(seed=6)
    x, eps = batch(8, k=2)
    moved = eps.copy()
    moved[:, :, 3:] += 0.5  # ε2 only: z1 stays, z2 moves
    base, after = model.log_weights(x, eps), model.log_weights(x, moved)
    assert np.all(np.abs(base - after) > 1e-6)
    np.testing.assert_allclose(after, reference_log_weights(model, x, moved), atol=1e-10)


def test_eps_of_the_wrong_width_is_refused_naming_both_layers():
    model = small_model()
    x, eps = batch()
    with pytest.raises(ValueError, match=r"\(N, Z1 \+ Z2\) = \(4, 5\).*first 3 columns.*last 2"):
        model.forward(x, eps[:, :3])


def test_sample_gives_mean_images_from_the_hierarchical_prior():
    model = small_model(seed=7)
    images = model.sample(5, np.random.default_rng(0))
    assert images.shape == (5, 6) and np.all((images > 0) & (images < 1))
    again = model.sample(5, np.random.default_rng(0))
    np.testing.assert_array_equal(images, again)


# --------------------------------------------------------------------------- training, resume, evaluation


def quiet(fn, *args, **kwargs):
    return fn(*args, log=lambda line: None, progress=False, pictures=False, **kwargs)


def assert_same_run(a, b):
    rows = [[{k: v for k, v in json.loads(line).items() if k not in ("seconds", "eval_seconds")}
             for line in (Path(d) / METRICS_NAME).read_text().splitlines()] for d in (a, b)]
    assert rows[0] == rows[1]
    first, second = load_arrays(Path(a) / CHECKPOINT_NAME), load_arrays(Path(b) / CHECKPOINT_NAME)
    for name in first:
        if name.startswith("optim.") or name in ("theta", "epoch", "step", "sums"):
            np.testing.assert_array_equal(first[name], second[name], err_msg=name)


@pytest.mark.parametrize("objective, k", [("elbo", 1), ("iwae", 2)])
def test_two_layer_resume_is_bit_identical(tmp_path, mnist, objective, k):
    config = dict(TINY_RUN, objective=objective, k=k)
    straight = quiet(train, TrainConfig(**config, epochs=2, out=str(tmp_path / "straight")), dataset=mnist)
    split = quiet(train, TrainConfig(**config, epochs=1, out=str(tmp_path / "split")), dataset=mnist)
    quiet(resume, split, epochs=2, dataset=mnist)
    assert_same_run(straight, split)
    losses = [json.loads(line)["train_loss"] for line in (straight / METRICS_NAME).read_text().splitlines()]
    assert losses[1] < losses[0]  # it learns


def test_evaluate_reports_active_units_per_stochastic_layer(tmp_path, mnist):
    run = quiet(train, TrainConfig(**TINY_RUN, epochs=1, out=str(tmp_path / "run")), dataset=mnist)
    result = evaluate_checkpoint(run, iw_samples=20, limit=50)
    assert [layer["name"] for layer in result["layers"]] == ["z1", "z2"] and result["latent"] == [6, 3]
    assert result["active_units"] == [int((np.array(layer["mean_variances"]) > 0.01).sum())
                                      for layer in result["layers"]]
    assert result["iw_bounds"]["1"] <= result["iw_bounds"]["5"] <= result["iw_bounds"]["20"]
    assert math.isclose(result["nll"], -result["iw_bounds"]["20"])
    text = format_report(result)
    assert "active units   z1:" in text and "active units   z2:" in text and "negative ELBO" in text


def test_the_preset_with_two_stochastic_layers_takes_the_papers_sizes(capsys, monkeypatch):
    seen = {}
    module = importlib.import_module("tinyvae.run.train")  # the module, whatever tinyvae/__init__ exports
    monkeypatch.setattr(module, "train", lambda config, **kw: seen.setdefault("config", config))
    assert cli.main(["train", "--preset", "iwae-paper", "--stochastic-layers", "2"]) == 0
    config = seen["config"]
    assert (config.latent, config.latent2, config.hidden, config.hidden2) == (100, 50, (200, 200), (100, 100))
    assert (config.activation, config.binarize, config.adam_eps, config.epochs) == ("tanh", "dynamic", 1e-4, 3280)
    sizes = build_model(config.model_config(784)).config
    assert sizes.parameter_count() == build_model(config.model_config(784)).num_params


# --------------------------------------------------------------------------- bad input


def status(argv):
    """The exit status of ``tinyvae ARGV``: argparse itself exits (status 2) on a value it refuses."""
    try:
        return cli.main(argv)
    except SystemExit as stop:
        return stop.code


@pytest.mark.parametrize("flags, words", [
    (["--stochastic-layers", "3"], ["3 stochastic layers are not supported", "use 1 or 2"]),
    (["--stochastic-layers", "2", "--latent", "6"], ["two stochastic layers need two latent sizes", "--latent 6"]),
    (["--latent", "6", "3"], ["--latent 6 3 gives two sizes", "one stochastic layer takes one"]),
    (["--latent", "6", "3", "2", "--stochastic-layers", "2"], ["--latent takes one size", "got 3"]),
    (["--latent", "6", "--stochastic-layers", "1", "--hidden2", "8"], ["--hidden2 8 sets the widths", "only two"]),
])
def test_impossible_layer_flags_are_refused_clearly_without_a_run_folder(tmp_path, capsys, flags, words):
    out = tmp_path / "run"
    assert status(["train", "--out", str(out), *BASE_FLAGS, *flags]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err
    assert "Traceback" not in err and not out.exists()


def test_a_two_layer_checkpoint_is_refused_by_a_one_layer_model_and_the_other_way_round(tmp_path):
    two = small_model(input_dim=784, latent=6, hidden=(32,))
    one = VAE(ModelConfig(hidden=(32,), latent=6, activation="tanh"))
    two.save(tmp_path / "two.npz")
    one.save(tmp_path / "one.npz")
    with pytest.raises(CheckpointError, match=r"holds a VAE with two stochastic layers.*tinyvae.load_model\("):
        VAE(ModelConfig(hidden=(32,), latent=6, activation="tanh")).load_weights(tmp_path / "two.npz")
    with pytest.raises(CheckpointError, match=r"holds a VAE with one stochastic layer.*this model is a VAE with two"):
        small_model(input_dim=784, latent=6, hidden=(32,)).load_weights(tmp_path / "one.npz")
    assert isinstance(load_model(tmp_path / "two.npz"), TwoLayerVAE)  # the stored config says which to build
    assert isinstance(load_model(tmp_path / "one.npz"), VAE)
    with pytest.raises(ValueError, match="VAE has one stochastic layer"):
        VAE(two.config)


def test_resuming_a_two_layer_run_as_one_layer_is_refused_naming_the_difference(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--out", str(out), "--epochs", "1", *TINY_FLAGS]) == 0
    before = (out / CHECKPOINT_NAME).read_bytes()
    assert cli.main(["train", "--resume", str(out), "--stochastic-layers", "1", "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert "--stochastic-layers: stored 2, asked 1" in err and "Traceback" not in err
    assert (out / CHECKPOINT_NAME).read_bytes() == before


def test_two_layer_configs_refuse_what_the_model_does_not_support():
    for changes, words in ((dict(likelihood="gaussian"), "likelihood 'bernoulli'"), (dict(beta=0.5), "beta 1"),
                           (dict(kl_warmup=2.0), "kl_warmup must be 0"), (dict(model="ae"), "model 'vae'")):
        with pytest.raises(ConfigError, match=words):
            TrainConfig(**{**TINY_RUN, **changes})


# --------------------------------------------------------------------------- an exact answer


def exact_log_likelihood(model, x):
    """log p(x) = log ∫∫ p(x|z1) p(z1|z2) p(z2) dz1 dz2 by quadrature on a grid, for Z1 = Z2 = 1."""
    z1, z2 = np.linspace(-9, 9, 1201), np.linspace(-7, 7, 701)
    m, log_s2 = model.prior_z1(z2[:, None])  # (G2, 1) each
    log_p1 = -0.5 * (math.log(2 * math.pi) + log_s2 + (z1[None, :] - m) ** 2 / np.exp(log_s2))  # (G2, G1)
    log_p2 = -0.5 * (math.log(2 * math.pi) + z2 ** 2)[:, None]
    log_px = bernoulli_log_prob(model.p_x.forward(z1[:, None]), x[None, :])[None, :]  # (1, G1)
    joint = log_px + log_p1 + log_p2
    top = joint.max()
    return top + math.log(np.exp(joint - top).sum() * (z1[1] - z1[0]) * (z2[1] - z2[0]))


@pytest.mark.parametrize("seed", [3, 5])
def test_importance_weighted_estimate_converges_to_the_exact_log_likelihood(seed):
    """With one unit per layer, log p(x) is a 2-D integral. The mean of the weights w = p(x, z1, z2)/q(z1, z2|x)
    is p(x) only if each sample is drawn from the q whose density log w divides by and log w holds all five
    terms: reusing ε1 for z2, or dropping log p(z1|z2), moves the estimate by far more than its error."""
    model = small_model(input_dim=4, hidden=(6,), latent=1, latent2=1, hidden2=(5,), seed=seed)
    for net in (model.q_z1, model.q_z2):  # σ near 1: a proposal as wide as the posterior, light-tailed weights
        head = net.layers[-1]
        head.params["W"][:, 1:] *= 0.1
        head.params["b"][1:] = 0.0
    x = np.array([1.0, 0.0, 1.0, 1.0])
    log_w = model.log_weights(x[None], np.random.default_rng(seed).standard_normal((1, 100_000, 2)))[0]
    w = np.exp(log_w - log_w.max())
    estimate, error = log_w.max() + math.log(w.mean()), w.std() / w.mean() / math.sqrt(w.size)
    assert error < 0.01
    assert abs(estimate - exact_log_likelihood(model, x)) < 0.02


def test_the_two_layer_benchmark_times_each_model_in_each_round(capsys):
    spec = importlib.util.spec_from_file_location(
        "bench_two_layer", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_two_layer.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.main(["--cpu-steps", "2", "--rounds", "2"])
    assert set(result["cpu_ms_per_step"]) == {"one layer", "two layers"}
    assert all(len(v) == 2 and min(v) > 0 for v in result["cpu_ms_per_step"].values())
    assert "median of 2 paired rounds" in capsys.readouterr().out
