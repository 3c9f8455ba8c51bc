"""Tests for the convolutional VAE (ModelConfig(arch="conv"), tinyvae train --arch conv).

The default architecture is the Keras example's; everything that works for the MLP works for it
(Bernoulli and Gaussian decoders, β, warm-up, the autoencoder, evaluate, sample, plot, checkpoints,
bit-exact resume, the device path on the strict stand-in); images it cannot take, and a conv
checkpoint read as an MLP, are clear errors. Training runs use 256 training and 128 test images and
small channel counts so that the file takes seconds on an idle machine.
"""

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from tinyvae import backend, cli
from tinyvae.checkpoint import CheckpointError, load_arrays
from tinyvae.data import Dataset, load_dataset
from tinyvae.evaluation.evaluate import evaluate_elbo, importance_weighted_nll
from tinyvae.learn.gradcheck import check_model
from tinyvae.nn import Conv2d, ConvTranspose2d, Dense, Flatten, ReLU, Unflatten
from tinyvae.run.train import CHECKPOINT_NAME, METRICS_NAME, ConfigError, TrainConfig, TrainingInterrupted, resume, train
from tinyvae.models.vae import VAE, Autoencoder, load_model
from tinyvae.models.config import ModelConfig

N_TRAIN, N_TEST = 256, 128
SMALL = dict(arch="conv", channels=(4, 8), dense=8, latent=2, batch_size=64, epochs=1)
SMALL_FLAGS = ["--arch", "conv", "--channels", "4", "8", "--dense", "8", "--latent", "2", "--batch-size", "64",
               "--limit-train", str(N_TRAIN), "--limit-test", str(N_TEST), "--no-progress", "--no-pictures"]


@pytest.fixture(scope="module")
def mnist():
    full = load_dataset()
    return Dataset(full.train_x[:N_TRAIN], full.train_y[:N_TRAIN], full.val_x, full.val_y,
                   full.test_x[:N_TEST], full.test_y[:N_TEST])


def run_quietly(mnist, out, on_step=None, **changes):
    config = TrainConfig(**{**SMALL, "out": str(out), **changes})
    return train(config, dataset=mnist, log=lambda line: None, progress=False, pictures=False, on_step=on_step)


def rows(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / METRICS_NAME).read_text().splitlines()]


def theta(run_dir):
    return load_arrays(Path(run_dir) / CHECKPOINT_NAME)["theta"]


# --------------------------------------------------------------------------- the architecture


def test_the_default_conv_architecture_is_the_keras_examples():
    model = VAE(arch="conv", latent=2)
    kinds = [(type(layer), getattr(layer, "c_in", None), getattr(layer, "c_out", None)) for layer in model.encoder.layers]
    assert kinds == [(Unflatten, None, None), (Conv2d, 1, 32), (ReLU, None, None), (Conv2d, 32, 64),
                     (ReLU, None, None), (Flatten, None, None), (Dense, None, None), (ReLU, None, None),
                     (Dense, None, None)]
    assert [(layer.d_in, layer.d_out) for layer in model.encoder.layers if isinstance(layer, Dense)] == [(3136, 16),
                                                                                                        (16, 4)]
    convs = [layer for layer in model.encoder.layers if isinstance(layer, Conv2d)]
    assert all((c.kernel, c.stride, c.padding) == (3, 2, 1) for c in convs)
    ups = [layer for layer in model.decoder.layers if isinstance(layer, ConvTranspose2d)]
    assert [(u.c_in, u.c_out, u.kernel, u.stride, u.padding, u.output_padding) for u in ups] == [
        (64, 64, 3, 2, 1, 1), (64, 32, 3, 2, 1, 1), (32, 1, 3, 1, 1, 0)]
    assert (model.decoder.layers[0].d_in, model.decoder.layers[0].d_out) == (2, 3136)
    assert model.decoder.layers[2].shape == (64, 7, 7)
    x = np.zeros((3, 784), np.float32)
    assert model.encoder.forward(x).shape == (3, 4) and model.decoder.forward(np.zeros((3, 2), np.float32)).shape == (3, 784)
    # counted by hand from the layers: 320 + 18,496 + 50,192 + 68 | 9,408 + 36,928 + 18,464 + 289
    assert model.num_params == model.config.parameter_count() == 134_165
    assert model.config.describe() == "vae conv 28x28-c32-c64-d16-z2 relu bernoulli"
    assert (TrainConfig().channels, TrainConfig().dense) == ((32, 64), 16)


def test_channels_and_dense_width_are_configurable():
    model = VAE(arch="conv", channels=(8, 16, 32), dense=0, latent=3, input_dim=32 * 32, image_shape=(32, 32))
    assert [layer.c_out for layer in model.encoder.layers if isinstance(layer, Conv2d)] == [8, 16, 32]
    assert model.encoder.layers[-1].d_in == 32 * 4 * 4  # dense=0: straight from the features to (μ, log σ²)
    assert model.decoder.forward(np.zeros((2, 3), np.float32)).shape == (2, 1024)
    assert model.num_params == model.config.parameter_count()


@pytest.mark.parametrize("likelihood, activation, beta", [("bernoulli", "tanh", 0.7), ("gaussian", "softplus", 1.0)])
def test_conv_vae_gradient_matches_central_differences(likelihood, activation, beta, gradcheck_passes):
    rng = np.random.default_rng(3)
    model = VAE(arch="conv", input_dim=64, image_shape=(8, 8), channels=(2, 3), dense=4, latent=2, beta=beta,
                likelihood=likelihood, activation=activation, init="glorot", dtype="float64")
    report = gradcheck_passes(check_model(model, rng.uniform(0, 1, (3, 64)), rng.standard_normal((3, 2))))
    assert len(report.results) == 16


def test_conv_autoencoder_gradient_matches_central_differences(gradcheck_passes):
    rng = np.random.default_rng(4)
    model = Autoencoder(arch="conv", input_dim=64, image_shape=(8, 8), channels=(2, 3), dense=0, latent=2,
                        activation="tanh", likelihood="gaussian", dtype="float64")
    gradcheck_passes(check_model(model, rng.uniform(0, 1, (2, 64))))


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("changes, message", [
    (dict(input_dim=900, image_shape=(30, 30)), r"images of 30×30 pixels do not fit the conv architecture: its 2 "
                                                r"stride-2 convolutions .* each side must be a multiple of 4"),
    (dict(input_dim=784, image_shape=(28, 27)), r"image_shape \(28, 27\) has 756 pixels but input_dim is 784"),
    (dict(channels=()), r"channels must be one or more positive channel counts, got \[\]"),
    (dict(dense=-1), r"dense must be a width >= 0"),
    (dict(arch="resnet"), r"arch must be one of \('mlp', 'conv'\), got 'resnet'"),
])
def test_an_impossible_conv_config_is_refused_naming_what_was_given(changes, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**{"arch": "conv", **changes})


def write_images(folder, rows, cols, n_train=64, n_test=16):
    """An MNIST-format folder of random rows×cols images."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for stem, n in (("train", n_train), ("t10k", n_test)):
        for kind, array in (("images-idx3-ubyte", rng.integers(0, 256, (n, rows, cols), dtype=np.uint8)),
                            ("labels-idx1-ubyte", rng.integers(0, 10, n, dtype=np.uint8))):
            header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            (folder / f"{stem}-{kind}.gz").write_bytes(gzip.compress(header + array.tobytes()))
    return folder


def test_images_the_architecture_cannot_take_are_refused_before_training(tmp_path, capsys):
    data = write_images(tmp_path / "data30", 30, 30)
    code = cli.main(["train", "--data", str(data), "--out", str(tmp_path / "run"), *SMALL_FLAGS])
    assert code == 2
    err = capsys.readouterr().err
    assert "images of 30×30 pixels do not fit the conv architecture" in err and "multiple of 4" in err
    assert not (tmp_path / "run" / CHECKPOINT_NAME).exists()


def test_the_architecture_follows_the_image_size_of_the_data(tmp_path):
    data = write_images(tmp_path / "data32", 32, 32)
    assert cli.main(["train", "--data", str(data), "--out", str(tmp_path / "run"), *SMALL_FLAGS[:-4],
                     "--no-progress", "--no-pictures"]) == 0
    model = load_model(tmp_path / "run" / CHECKPOINT_NAME)
    assert model.config.image_shape == (32, 32) and model.decoder.layers[2].shape == (8, 8, 8)


def test_a_conv_checkpoint_loaded_as_an_mlp_is_a_clear_error(tmp_path, mnist):
    run_dir = run_quietly(mnist, tmp_path / "run")
    mlp = VAE(latent=2)
    with pytest.raises(CheckpointError, match=r"holds a vae conv 28x28-c4-c8-d8-z2 .*this model is a vae "
                                              r"784-400-2 .*'arch': \('conv', 'mlp'\)"):
        mlp.load_weights(run_dir / CHECKPOINT_NAME)
    with pytest.raises(ConfigError, match=r"--arch: stored conv, asked mlp"):
        resume(run_dir, epochs=2, expect={"arch": "mlp"}, dataset=mnist, log=lambda line: None, progress=False,
               pictures=False)


def test_output_bias_at_the_data_mean_is_refused_for_the_conv_decoder():
    with pytest.raises(ConfigError, match="output_bias 'data-mean' sets one bias per pixel"):
        TrainConfig(arch="conv", output_bias="data-mean")


# --------------------------------------------------------------------------- training


def test_conv_training_improves_and_resumes_mid_epoch_bit_for_bit(tmp_path, mnist):
    changes = dict(epochs=2, binarize="dynamic", kl_warmup=1.5)
    straight = run_quietly(mnist, tmp_path / "straight", **changes)
    metrics = rows(straight)
    assert metrics[1]["train_loss"] < metrics[0]["train_loss"] and metrics[1]["test_loss"] < metrics[0]["test_loss"]

    def stop(run):
        if (run.epoch, run.step) == (1, 2):
            run.request_stop()

    with pytest.raises(TrainingInterrupted):
        run_quietly(mnist, tmp_path / "split", on_step=stop, **changes)
    resume(tmp_path / "split", dataset=mnist, log=lambda line: None, progress=False, pictures=False)
    np.testing.assert_array_equal(theta(straight), theta(tmp_path / "split"))
    drop = ("seconds", "eval_seconds")
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows(straight)] == \
        [{k: v for k, v in r.items() if k not in drop} for r in rows(tmp_path / "split")]


@pytest.mark.parametrize("changes", [{"likelihood": "gaussian"}, {"model": "ae"}, {"beta": 0.5, "kl_warmup": 1.0},
                                     {"optimizer": "sgd", "lr": 0.01}])
def test_conv_variants_train_and_improve(tmp_path, mnist, changes):
    metrics = rows(run_quietly(mnist, tmp_path / "run", **{"epochs": 2, **changes}))
    assert metrics[1]["train_loss"] < metrics[0]["train_loss"]
    assert all(np.isfinite(r["test_loss"]) for r in metrics)


def test_evaluate_sample_and_plot_work_on_a_conv_run(tmp_path, mnist, capsys):
    run_dir = run_quietly(mnist, tmp_path / "run")
    model = load_model(run_dir / CHECKPOINT_NAME)
    assert model.config.arch == "conv"
    elbo = evaluate_elbo(model, mnist.test_x[:50], seed=0)
    nll = importance_weighted_nll(model, mnist.test_x[:10], k=8, seed=0)
    assert nll.shape == (10,) and np.all(np.isfinite(nll)) and np.isfinite(elbo["loss"])
    assert cli.main(["evaluate", str(run_dir), "--limit", "100", "--iw-samples", "4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"loss", "recon", "kl"} <= set(result)
    assert cli.main(["sample", str(run_dir), "--n", "16", "--out", str(tmp_path / "s.png")]) == 0
    assert cli.main(["plot", str(run_dir)]) == 0
    assert (tmp_path / "s.png").exists() and (run_dir / "manifold.png").exists()


def test_the_conv_gpu_path_runs_on_the_strict_stand_in_and_matches_the_cpu(tmp_path, mnist, monkeypatch):
    from strict_xp import strict_ns

    cpu = run_quietly(mnist, tmp_path / "cpu", batch_size=128)
    monkeypatch.setattr(backend, "_cupy", strict_ns)
    gpu = run_quietly(mnist, tmp_path / "gpu", batch_size=128, device="gpu")
    np.testing.assert_array_equal(theta(cpu), theta(gpu))
