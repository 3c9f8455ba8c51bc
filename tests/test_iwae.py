"""The IWAE objective (tinyvae/iwae.py): its value, its hand-written gradient, its bad inputs, training on it.

The gradient is checked in float64 with ε (N, K, Z) held fixed, for several K and both
likelihoods; the checker must also fail when one piece of the derivation (derivations/iwae.md) is
planted wrong: unnormalized weights, the prior's term dropped, log q's −½ on log σ² dropped.
"""

import json
import math

import numpy as np
import pytest

from tinyvae import backend
from tinyvae.models.parts import iwae
from tinyvae.run.cli import main as cli_main
from tinyvae.data import Dataset, load_split
from tinyvae.learn.gradcheck import check_model
from tinyvae.prob.losses import gaussian_kl
from tinyvae.run.train import ConfigError, TrainConfig, train
from tinyvae.models.vae import VAE
from tinyvae.models.config import ModelConfig


def iwae_vae(k, likelihood="bernoulli", activation="tanh", **kw):
    return VAE(input_dim=6, hidden=(5, 4), latent=3, activation=activation, likelihood=likelihood, obs_var=0.7,
               objective="iwae", k=k, dtype="float64", seed=2, **kw)


def inputs(k, n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, 6)), rng.standard_normal((n, k, 3))


# --------------------------------------------------------------------------- the gradient


@pytest.mark.parametrize("k", [1, 2, 5])
@pytest.mark.parametrize("likelihood, activation", [("bernoulli", "tanh"), ("gaussian", "softplus")])
def test_iwae_gradient_matches_central_differences_with_fixed_eps(gradcheck_passes, k, likelihood, activation):
    model = iwae_vae(k, likelihood, activation)
    gradcheck_passes(check_model(model, *inputs(k)))


def planted(monkeypatch, change):
    """Run the real backward on a doctored cache (``change(cache, model)`` returns the new one): the
    objective's forward is the real one, and what it keeps for the backward is changed after it."""
    original = iwae.IWAE.forward

    def forward(self, *args):
        loss = original(self, *args)
        self._cache = change(self._cache, None)
        return loss

    monkeypatch.setattr(iwae.IWAE, "forward", forward)


@pytest.mark.parametrize("name, change", [
    ("weights not normalized", lambda c, m: c._replace(weights=c.weights * 1.7)),
    ("the prior's z term dropped", lambda c, m: c._replace(z=0 * c.z)),
    ("a fresh ε in the backward", lambda c, m: c._replace(eps=c.eps[:, ::-1].copy())),
])
def test_gradient_check_fails_on_a_planted_mistake(monkeypatch, name, change):
    planted(monkeypatch, change)
    report = check_model(iwae_vae(3), *inputs(3))
    assert not report.passed, f"{name} passed the gradient check"
    assert report.max_error > 1e-4


def test_gradient_check_fails_when_log_q_gives_log_var_nothing(monkeypatch):
    """Plant: the −1/(2N) on log σ² (log q's two dependences added, [eq:iwae-grad-logvar]) left out."""
    model = iwae_vae(3)
    original = model.encoder.backward

    def backward(dh):
        dh = dh.copy()
        dh[:, 3:] += 0.5 / dh.shape[0]
        return original(dh)

    monkeypatch.setattr(model.encoder, "backward", backward)
    report = check_model(model, *inputs(3))
    assert not report.passed and report.worst.name.startswith("encoder.")
    assert all(r.rel_error <= report.tol for r in report.results if r.name.startswith("decoder."))


def test_the_gradient_does_not_change_when_backward_runs_twice():
    model = iwae_vae(4)
    model.forward(*inputs(4))
    first = model.backward().copy()
    np.testing.assert_array_equal(model.backward(), first)


# --------------------------------------------------------------------------- the value


def test_k_1_is_the_reconstruction_plus_a_one_sample_monte_carlo_kl():
    x, eps = inputs(1)
    model = iwae_vae(1)
    loss = float(model.forward(x, eps))
    stats = {k: float(v) for k, v in model.stats.items()}
    elbo_loss = float(model.forward(x, eps[:, 0], objective="elbo"))
    recon = float(model.stats["recon"])
    mu, log_var = model.encode(x)
    z = mu + np.exp(0.5 * log_var) * eps[:, 0]
    log_q = -0.5 * (np.log(2 * np.pi) + log_var + (z - mu) ** 2 / np.exp(log_var)).sum(1)
    log_p = -0.5 * (np.log(2 * np.pi) + z ** 2).sum(1)
    mc_kl = (log_q - log_p).mean()
    assert loss == pytest.approx(recon + mc_kl, rel=1e-12)
    assert stats["recon"] == pytest.approx(recon, rel=1e-12) and stats["kl"] == pytest.approx(mc_kl, rel=1e-12)
    assert loss == pytest.approx(stats["recon"] + stats["kl"], rel=1e-12)
    closed_kl = float(gaussian_kl(mu, log_var)[0])
    assert elbo_loss == pytest.approx(recon + closed_kl, rel=1e-12) and abs(mc_kl - closed_kl) > 1e-3


def test_the_loss_is_minus_the_mean_log_mean_weight_computed_independently():
    k = 7
    x, eps = inputs(k, n=5, seed=3)
    model = iwae_vae(k)
    loss = float(model.forward(x, eps))
    mu, log_var = model.encode(x)
    z = mu[:, None] + np.exp(0.5 * log_var)[:, None] * eps
    logits = model.decoder.forward(z.reshape(-1, 3)).reshape(5, k, 6)
    p = 1 / (1 + np.exp(-logits))
    log_px = (x[:, None] * np.log(p) + (1 - x[:, None]) * np.log(1 - p)).sum(-1)
    log_w = (log_px - 0.5 * (z ** 2).sum(-1)
             + 0.5 * (log_var[:, None] + (z - mu[:, None]) ** 2 / np.exp(log_var)[:, None]).sum(-1))
    expected = -np.mean(np.log(np.mean(np.exp(log_w), axis=1)))
    assert loss == pytest.approx(expected, rel=1e-12)


def test_the_iwae_loss_is_below_the_k_sample_negative_elbo_and_falls_as_k_grows():
    """64 samples per example cut into blocks of K: with nested blocks the order is exact [eq:iwae-bound-order]."""
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1, (50, 6))
    eps = rng.standard_normal((50, 64, 3))
    losses = []
    for k in (1, 4, 16, 64):
        model = iwae_vae(k)
        blocks = 64 // k  # each example appears once per block of k of its 64 samples
        losses.append(float(model.forward(np.repeat(x, blocks, axis=0), eps.reshape(50 * blocks, k, 3))))
        assert losses[-1] <= float(model.stats["recon"] + model.stats["kl"]) + 1e-12
    assert losses[0] > losses[1] > losses[2] > losses[3]


def test_the_bound_stays_finite_and_its_weights_sum_to_one_for_log_weights_of_1e4():
    log_w = np.array([[-1e4, -1e4 + 3.0, -1e4 - 50.0], [800.0, 790.0, 805.0]])
    loss, weights = iwae.bound(log_w)
    assert np.isfinite(float(loss)) and np.all(np.isfinite(weights))
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-15)
    expected = -np.mean([np.logaddexp.reduce(row) - math.log(3) for row in log_w])
    assert float(loss) == pytest.approx(expected, rel=1e-14)


def test_iwae_runs_unchanged_on_a_device_namespace(device_xp):
    x, eps = inputs(3)
    model = iwae_vae(3)
    loss = float(model.forward(x, eps))
    grad = model.backward().copy()
    on_device = iwae_vae(3).to(device_xp)
    dloss = float(on_device.forward(backend.to_device(x, device_xp), backend.to_device(eps, device_xp)))
    assert dloss == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(backend.to_numpy(on_device.backward()), grad, rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------------- bad input


def test_eps_of_the_wrong_shape_is_refused_naming_n_k_and_z():
    model = iwae_vae(5)
    x, eps = inputs(5)
    with pytest.raises(ValueError, match=r"eps: expected shape \(N, K, Z\) = \(4, 5, 3\) .* K = 5 importance "
                                         r"samples .*got \(4, 3\)"):
        model.forward(x, eps[:, 0])
    with pytest.raises(ValueError, match=r"got \(4, 4, 3\)"):
        model.forward(x, eps[:, :4])


@pytest.mark.parametrize("kw, message", [
    (dict(objective="iwae", k=0), "k .importance samples per example. must be an integer >= 1, got 0"),
    (dict(objective="elbo", k=5), "k = 5 importance samples needs objective 'iwae'"),
    (dict(objective="iwea", k=5), "objective must be one of .'elbo', 'iwae'., got 'iwea'"),
    (dict(objective="iwae", k=5, beta=0.5), "beta must be 1 with objective 'iwae', got 0.5"),
    (dict(objective="iwae", k=5, model="ae"), "objective 'iwae' needs a VAE"),
])
def test_an_impossible_objective_is_refused_naming_what_was_given(kw, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kw)
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**kw)


def test_kl_warmup_is_refused_with_the_iwae_objective():
    with pytest.raises(ConfigError, match="kl_warmup must be 0 with objective 'iwae', got 2"):
        TrainConfig(objective="iwae", k=5, kl_warmup=2)


def test_a_batch_too_large_for_memory_is_refused_before_anything_is_allocated(monkeypatch):
    monkeypatch.setattr(backend, "available_memory", lambda xp=np: 64 * 2**20)  # 64 MiB free
    model = VAE(input_dim=784, hidden=(200, 200), latent=50, activation="tanh", objective="iwae", k=10**9)
    x = np.zeros((20, 784), np.float32)
    # ε of (20, 10⁹, 50) alone would take 4 TB: the error must come before any allocation.
    with pytest.raises(ValueError, match=r"batch 20 with k 1000000000 needs about .* GiB .*N·K = 20,000,000,000 "
                                         r"rows.*not even a batch of 1 fits with k 1000000000: lower k"):
        model.forward(x)
    model = VAE(input_dim=784, hidden=(200, 200), latent=50, activation="tanh", objective="iwae", k=50)
    fits = int(0.5 * 64 * 2**20 // iwae.step_bytes(1, 50, model.config, 4))
    with pytest.raises(ValueError, match=f"a batch of at most {fits} fits with k 50"):
        model.forward(np.zeros((fits + 1, 784), np.float32))


def test_training_refuses_a_batch_whose_k_samples_cannot_fit(monkeypatch, tmp_path):
    monkeypatch.setattr(backend, "available_memory", lambda xp=np: 2**30)  # 1 GiB free: 75 MB per example at k 5000
    config = TrainConfig(objective="iwae", k=5000, batch_size=128, hidden=(200, 200), latent=50,
                         limit_train=200, limit_test=100, out=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match=r"--batch-size 128 is too large for --k 5000: .*a batch of at most \d+ "
                                          r"fits with k 5000"):
        train(config, progress=False, log=lambda *a: None, pictures=False)
    assert not (tmp_path / "run").exists()


def test_the_command_line_refuses_k_without_the_iwae_objective_and_k_0(capsys):
    assert cli_main(["train", "--k", "5", "--epochs", "1"]) == 2
    assert "--k 5 sets the importance samples of --objective iwae" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        cli_main(["train", "--objective", "iwae", "--k", "0"])
    assert stop.value.code == 2
    assert "argument --k: expected an integer >= 1, got '0'" in capsys.readouterr().err


# --------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def small_mnist():
    x, y = load_split("test")
    return Dataset(train_x=x[:300], train_y=y[:300], test_x=x[300:400], test_y=y[300:400],
                   val_x=x[:0], val_y=y[:0])


def test_training_on_the_iwae_bound_lowers_it_and_records_the_objective(tmp_path, small_mnist):
    config = TrainConfig(objective="iwae", k=4, hidden=(32,), latent=4, activation="tanh", binarize="dynamic",
                         epochs=3, batch_size=50, lr=3e-3, out=str(tmp_path / "run"))
    run = train(config, dataset=small_mnist, progress=False, log=lambda *a: None, pictures=False)
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [m["train_loss"] for m in metrics]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    for m in metrics:  # train_loss is −L_4, below the 4-sample negative ELBO recon + kl
        assert m["train_loss"] < m["train_recon"] + m["train_kl"]
    stored = json.loads((run / "config.json").read_text())
    assert stored["objective"] == "iwae" and stored["k"] == 4
    assert stored["model_config"]["objective"] == "iwae" and stored["model_config"]["k"] == 4


def test_the_paper_preset_trains_with_the_iwae_objective_from_the_command_line(tmp_path, monkeypatch):
    import importlib

    train_module = importlib.import_module("tinyvae.run.train")  # the module (tinyvae.run.train is also the function)
    seen = {}
    monkeypatch.setattr(train_module, "train", lambda config, **kw: seen.setdefault("config", config))
    assert cli_main(["train", "--preset", "iwae-paper", "--objective", "iwae", "--k", "5",
                     "--out", str(tmp_path / "r")]) == 0
    config = seen["config"]
    assert (config.objective, config.k, config.hidden, config.latent, config.activation) == \
        ("iwae", 5, (200, 200), 50, "tanh")
    assert (config.lr_schedule, config.adam_eps, config.binarize, config.output_bias, config.epochs) == \
        ("iwae-paper", 1e-4, "dynamic", "data-mean", 3280)


@pytest.mark.parametrize("width", [1, 6, 7, 784])
@pytest.mark.parametrize("inplace", [False, True])
def test_log_row_sums_equal_the_sums_of_the_logs(width, inplace):
    values = 1 + np.random.default_rng(width).uniform(0, 1, (3, 5, width))  # factors in [1, 2)
    expected = np.log(values).sum(axis=-1)
    np.testing.assert_allclose(iwae.log_row_sums(values.copy() if inplace else values, inplace=inplace), expected,
                               rtol=1e-13)


def step_peak_bytes(model, n, k, latent):
    """The traced peak of one IWAE training step (forward and backward) on random binary digits, after a
    first step has allocated what every step keeps."""
    import tracemalloc  # noqa: PLC0415

    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(n, 784)) < 0.2).astype(np.float32)
    eps = rng.standard_normal((n, k, latent), dtype=np.float32)
    model.forward(x, eps)
    model.backward()
    model._cache = None  # the last step's arrays freed, as at the start of the next step
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        model.forward(x, eps)
        model.backward()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("hidden, latent, n, k", [((64,), 8, 8, 20), ((32, 32), 6, 4, 60)])
def test_the_memory_estimate_bounds_the_measured_peak_of_a_step(hidden, latent, n, k):
    model = VAE(input_dim=784, hidden=hidden, latent=latent, activation="tanh", objective="iwae", k=k)
    peak = step_peak_bytes(model, n, k, latent)
    estimate = iwae.step_bytes(n, k, model.config, 4)
    assert 0.3 * estimate < peak <= estimate
