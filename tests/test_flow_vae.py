"""The VAE with a flow posterior (tinyvae/models/flow_vae.py): its gradients under the ELBO and the IWAE bound,
log q_T against the change of variables computed independently, its log weights against its own loss,
checkpoints, the config's and the command line's refusals, training, evaluation and the divergence guard.

Small float64 models for the math; runs of 512 bundled MNIST digits with tiny layers for the rest.
"""

import json
import math

import numpy as np
import pytest

from tinyvae import cli
from tinyvae.checkpoint import CheckpointError
from tinyvae.evaluation.evaluate import evaluate_checkpoint, kl_per_dimension
from tinyvae.learn.gradcheck import check_model, standard_suite
from tinyvae.learn.gradcheck_flows import randomize_flow
from tinyvae.models.config import ModelConfig
from tinyvae.models.flow_vae import FlowVAE
from tinyvae.models.vae import VAE, build_model, load_model
from tinyvae.prob.losses import bernoulli_log_prob, log_normal_density
from tinyvae.run.config import ConfigError, TrainConfig
from tinyvae.run.stopping import TrainingDiverged

from test_train import mnist, run_quietly, small  # noqa: F401  (mnist is a fixture)

SMALL = dict(input_dim=6, hidden=(5,), latent=3, activation="tanh", dtype="float64")
FLOWS = {"planar": dict(flow="planar", flow_steps=3), "iaf": dict(flow="iaf", flow_steps=2, flow_hidden=4)}


def flow_vae(kind, seed=0, **changes):
    model = FlowVAE(ModelConfig(**SMALL, **FLOWS[kind], seed=seed, **changes))
    randomize_flow(model.flow, np.random.default_rng(seed + 100))
    return model


def data(seed=0, n=4, d=6):
    return (np.random.default_rng(seed).uniform(size=(n, d)) < 0.5).astype(np.float64)


@pytest.mark.parametrize("kind", FLOWS)
@pytest.mark.parametrize("objective, k, beta", [("elbo", 1, 1.0), ("elbo", 1, 0.5), ("iwae", 4, 1.0)])
def test_whole_flow_vae_gradient_matches_central_differences_with_fixed_eps(kind, objective, k, beta):
    model = flow_vae(kind, objective=objective, k=k, beta=beta)
    eps = np.random.default_rng(3).standard_normal((4, 3) if objective == "elbo" else (4, k, 3))
    report = check_model(model, data(), eps)
    assert report.passed, str(report)


def test_gradcheck_suite_lists_every_flow_check_and_passes_them():
    flows = [r for r in standard_suite(0) if "flow" in r.label or r.label.startswith(("PlanarStep", "IAFStep"))]
    assert len(flows) == 7
    assert all(r.passed for r in flows), [str(r) for r in flows if not r.passed]


@pytest.mark.parametrize("kind", FLOWS)
def test_log_weights_are_log_p_x_z_plus_log_p_z_minus_log_q0_plus_the_flows_log_det(kind):
    """log q_T(z_T) = log q_0(z_0) − log|det ∂z_T/∂z_0|, here with log q_0 evaluated at z_0 (not through ε)
    and the determinant of the flow's Jacobian by central differences: an independent computation."""
    model = flow_vae(kind)
    x, eps = data(1, n=2), np.random.default_rng(2).standard_normal((2, 3, 3))
    log_w = model.log_weights(x, eps)  # (2, 3)
    mu, log_var, context = model.q.forward(x)
    h = 1e-5
    for n in range(2):
        for s in range(3):
            z0 = mu[n] + np.exp(0.5 * log_var[n]) * eps[n, s]

            def flow(v):
                return model.flow.forward(v[None, :], context[n:n + 1] if context.shape[1] else None)[0][0]

            jac = np.stack([(flow(z0 + h * e) - flow(z0 - h * e)) / (2 * h) for e in np.eye(3)], axis=1)
            z_t = flow(z0)
            log_qk = log_normal_density(z0, mu[n], log_var[n]) - np.linalg.slogdet(jac)[1]
            log_p = bernoulli_log_prob(model.decoder.forward(z_t[None, :])[0], x[n]) + log_normal_density(
                z_t, np.zeros(3), np.zeros(3))
            assert log_w[n, s] == pytest.approx(log_p - log_qk, abs=1e-8)


@pytest.mark.parametrize("kind", FLOWS)
def test_iwae_loss_is_minus_the_log_mean_of_the_log_weights(kind):
    model = flow_vae(kind, objective="iwae", k=5)
    x, eps = data(4), np.random.default_rng(5).standard_normal((4, 5, 3))
    loss = float(model.forward(x, eps))
    log_w = model.log_weights(x, eps)
    want = -np.mean(np.log(np.mean(np.exp(log_w), axis=1)))
    assert loss == pytest.approx(want, abs=1e-10)
    assert model.stats["recon"] + model.stats["kl"] >= loss  # the K-sample −ELBO is above −L_K


@pytest.mark.parametrize("kind", FLOWS)
def test_elbo_is_the_iwae_bound_with_one_sample_and_beta_weights_only_the_sampled_kl(kind):
    x, eps = data(6), np.random.default_rng(7).standard_normal((4, 3))
    elbo = flow_vae(kind)
    loss = float(elbo.forward(x, eps))
    iwae1 = flow_vae(kind, objective="iwae", k=1)
    assert float(iwae1.forward(x, eps[:, None, :])) == pytest.approx(loss, abs=1e-12)
    assert loss == pytest.approx(float(elbo.stats["recon"] + elbo.stats["kl"]), abs=1e-12)
    half = float(elbo.forward(x, eps, beta=0.5))
    assert half == pytest.approx(float(elbo.stats["recon"] + 0.5 * elbo.stats["kl"]), abs=1e-12)


def test_flow_parameters_sit_in_the_one_buffer_after_the_decoder_and_are_counted_by_the_config():
    for kind in FLOWS:
        model = flow_vae(kind)
        names = list(model.params)
        assert names[-1].startswith("flow.") and not any(n.startswith("flow.") for n in names[:-len(model.flow.params)])
        assert model.num_params == model.config.parameter_count()
        assert np.shares_memory(model.flow.params["0.bs" if kind == "iaf" else "0.u"], model.theta)


@pytest.mark.parametrize("kind", FLOWS)
def test_build_model_save_and_load_model_give_the_same_flow_vae(kind, tmp_path):
    model = build_model(ModelConfig(**SMALL, **FLOWS[kind]))
    assert isinstance(model, FlowVAE)
    randomize_flow(model.flow, np.random.default_rng(1))
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert isinstance(loaded, FlowVAE) and loaded.config == model.config
    np.testing.assert_array_equal(loaded.theta, model.theta)
    eps = np.random.default_rng(2).standard_normal((4, 3))
    assert float(loaded.forward(data(), eps)) == float(model.forward(data(), eps))


def test_a_flow_checkpoint_loaded_into_a_model_without_its_flow_is_refused_and_the_reverse(tmp_path):
    flow = build_model(ModelConfig(**SMALL, **FLOWS["planar"]))
    plain = build_model(ModelConfig(**SMALL))
    flow.save(tmp_path / "flow.npz")
    plain.save(tmp_path / "plain.npz")
    with pytest.raises(CheckpointError, match=r"planar flow, 3 steps.*'flow': \('planar', 'none'\)"):
        plain.load_weights(tmp_path / "flow.npz")
    with pytest.raises(CheckpointError, match=r"'flow': \('none', 'planar'\)"):
        flow.load_weights(tmp_path / "plain.npz")
    iaf = build_model(ModelConfig(**SMALL, **FLOWS["iaf"]))
    with pytest.raises(CheckpointError, match="flow"):
        iaf.load_weights(tmp_path / "flow.npz")


def test_a_config_without_a_flow_stores_no_flow_fields():
    assert not {"flow", "flow_steps", "flow_hidden"} & set(ModelConfig(**SMALL).to_dict())
    assert not {"flow", "flow_steps", "flow_hidden"} & set(TrainConfig().to_dict())
    stored = ModelConfig(**SMALL, **FLOWS["iaf"]).to_dict()
    assert (stored["flow"], stored["flow_steps"], stored["flow_hidden"]) == ("iaf", 2, 4)


def test_the_plain_vae_refuses_a_flow_config():
    with pytest.raises(ValueError, match="asks for a planar flow.*build_model"):
        VAE(ModelConfig(**SMALL, **FLOWS["planar"]))


@pytest.mark.parametrize("changes, words", [
    (dict(flow="planar", flow_steps=0), "flow_steps T >= 1"),
    (dict(flow="radial", flow_steps=2), "flow must be one of ('none', 'planar', 'iaf'), got 'radial'"),
    (dict(flow="planar", flow_steps=2, model="ae"), "needs model 'vae'"),
    (dict(flow="iaf", flow_steps=2, flow_hidden=4, arch="conv", input_dim=64, image_shape=(8, 8)), "needs arch 'mlp'"),
    (dict(flow="iaf", flow_steps=2), "flow_hidden >= 1"),
    (dict(flow="iaf", flow_steps=2, flow_hidden=4, latent=6), "flow_hidden >= latent - 1 = 5"),
    (dict(flow="planar", flow_steps=2, flow_hidden=3), "a planar step has none"),
    (dict(flow_steps=4), "but flow is 'none'"),
    (dict(flow="planar", flow_steps=2, likelihood="gaussian", obs_var_mode="learned"), "fixed-variance gaussian"),
])
def test_config_refuses_an_impossible_flow_naming_what_was_given(changes, words):
    with pytest.raises(ValueError, match="invalid model config") as info:
        ModelConfig(**{**SMALL, **changes})
    assert words in str(info.value)
    with pytest.raises(ConfigError, match="invalid training config"):
        TrainConfig(**{k: v for k, v in changes.items() if k not in ("input_dim", "image_shape")})


RUN_FLAGS = ["--hidden", "32", "--latent", "4", "--activation", "tanh", "--binarize", "dynamic", "--batch-size", "64",
             "--limit-train", "512", "--limit-test", "256", "--no-progress", "--no-pictures"]


@pytest.mark.parametrize("flags, words", [
    (["--flow", "planar", "--flow-steps", "0"], "argument --flow-steps: expected an integer >= 1, got '0'"),
    (["--flow", "radial", "--flow-steps", "2"], "argument --flow: invalid choice: 'radial'"),
    (["--flow", "planar"], "flow_steps T >= 1"),
    (["--model", "ae", "--flow", "planar", "--flow-steps", "2"], "needs model 'vae'"),
    (["--arch", "conv", "--flow", "iaf", "--flow-steps", "2"], "needs arch 'mlp'"),
    (["--flow-steps", "3"], "but flow is 'none'"),
])
def test_cli_refuses_bad_flow_input_without_a_traceback_or_a_run_folder(flags, words, tmp_path, capsys):
    out = tmp_path / "run"
    try:
        code = cli.main(["train", "--out", str(out), *flags, "--epochs", "1", "--limit-train", "64", "--no-progress",
                         "--no-pictures"])
    except SystemExit as stop:  # the flag parser's own refusals
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2
    assert words in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("kind, flags", [("planar", ["--flow", "planar", "--flow-steps", "3"]),
                                         ("iaf", ["--flow", "iaf", "--flow-steps", "2", "--flow-hidden", "8"])])
def test_cli_trains_a_flow_vae_and_evaluate_scores_its_importance_weighted_nll(kind, flags, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--out", str(out), *flags, "--epochs", "2", *RUN_FLAGS]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["flow"] == kind and config["model_config"]["flow"] == kind
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[1]["train_loss"] < rows[0]["train_loss"]
    result = evaluate_checkpoint(out, iw_samples=20, limit=40)
    assert math.isfinite(result["nll"]) and result["nll"] <= result["loss"] + 3 * result["nll_sem"]
    assert result["kl_per_dim"] is None and any("flow" in note for note in result["notes"])
    with pytest.raises(TypeError, match=f"the {kind} flow's q_T has no KL per dimension"):
        kl_per_dimension(load_model(out / "checkpoint.npz"), np.zeros((2, 784), np.uint8))
    assert cli.main(["evaluate", str(out), "--iw-samples", "5", "--limit", "20"]) == 0
    assert "negative ELBO" in capsys.readouterr().out


def test_a_planted_nan_in_a_flow_is_stopped_by_the_divergence_guard_naming_the_flow(tmp_path, mnist):  # noqa: F811
    def plant(run):
        if (run.epoch, run.step) == (1, 2):
            run.model.params["flow.1.u"][0] = np.nan

    with pytest.raises(TrainingDiverged) as info:
        run_quietly(small(tmp_path / "run", flow="planar", flow_steps=2, epochs=1), mnist, on_step=plant)
    message = str(info.value)
    assert "flow.1.u" in message and "planar flow (2 steps" in message


def test_the_flows_benchmark_runs_a_tiny_setting_and_writes_bounds_in_their_order(tmp_path, capsys):
    import importlib.util  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "flows_mnist.py"
    spec = importlib.util.spec_from_file_location("flows_mnist", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.stage_epochs(4) == 1 + 3 + 9 + 27
    out = tmp_path / "flows.json"
    bench.main(["--rows", "diagonal", "iaf-2", "--epochs", "1", "--limit-train", "256", "--test-limit", "6",
                "--iw-samples", "20", "--share-rounds", "1", "--share-steps", "2", "--out", str(out)])
    result = json.loads(out.read_text())
    assert set(result["rows"]) == {"diagonal", "iaf-2"} and result["iw_samples"] == 20
    for row in result["rows"].values():
        assert row["test_nll"] <= row["test_neg_elbo"]  # log of a mean >= mean of logs, digit by digit
        assert 0 <= row["flow_share"] < 1
    iaf = result["rows"]["iaf-2"]
    assert iaf["nll_minus_diagonal"] == pytest.approx(iaf["test_nll"] - result["rows"]["diagonal"]["test_nll"])
    assert "NLL − diag." in capsys.readouterr().out


@pytest.mark.parametrize("kind", FLOWS)
def test_flow_vae_runs_on_device_arrays_and_agrees_with_numpy(kind, device_xp):
    from tinyvae import backend  # noqa: PLC0415

    x, eps = data(8), np.random.default_rng(9).standard_normal((4, 3, 3))
    host = flow_vae(kind, objective="iwae", k=3)
    dev = flow_vae(kind, objective="iwae", k=3).to(device_xp)
    loss = host.forward(x, eps)
    host.backward()
    dev_loss = dev.forward(backend.to_device(x, device_xp), backend.to_device(eps, device_xp))
    dev.backward()
    assert backend.to_float(dev_loss) == pytest.approx(float(loss), rel=1e-12)
    np.testing.assert_allclose(backend.to_numpy(dev.grad), host.grad, rtol=1e-12, atol=1e-14)
    log_w = dev.log_weights(backend.to_device(x, device_xp), backend.to_device(eps, device_xp))
    np.testing.assert_allclose(backend.to_numpy(log_w), host.log_weights(x, eps), rtol=1e-12)
    dev.to("cpu")  # and back: the masks follow
    assert float(dev.forward(x, eps)) == pytest.approx(float(loss), rel=1e-12)


def test_a_flow_run_resumed_is_the_run_trained_in_one_go(tmp_path, mnist):  # noqa: F811
    from test_train import assert_same_run, resume_quietly  # noqa: PLC0415

    changes = dict(flow="iaf", flow_steps=2, flow_hidden=8, activation="tanh")
    whole, _ = run_quietly(small(tmp_path / "whole", epochs=2, **changes), mnist)
    first, _ = run_quietly(small(tmp_path / "split", epochs=1, **changes), mnist)
    resume_quietly(first, mnist, epochs=2)
    assert_same_run(whole, tmp_path / "split")


@pytest.mark.parametrize("flow", [dict(flow="planar", flow_steps=40), dict(flow="iaf", flow_steps=4, flow_hidden=100)],
                         ids=["planar-40", "iaf-4"])
def test_the_iwae_memory_bound_covers_a_flow_training_step(flow):
    from tinyvae.models.parts import iwae  # noqa: PLC0415

    from test_iwae import step_peak_bytes  # noqa: PLC0415

    n, k = 16, 10
    model = FlowVAE(ModelConfig(hidden=(200, 200), latent=50, activation="tanh", objective="iwae", k=k, **flow))
    assert step_peak_bytes(model, n, k, 50) <= iwae.step_bytes(n, k, model.config, 4)
