"""Tests for the VAE and the autoencoder (tinyvae.models.vae): whole-model gradient checks with ε held
fixed, the loss by hand, backend-cleanliness (the same numbers on the strict stand-in namespace,
and on CuPy where a GPU is present), sampling and encoding, checkpoints, float32 all the way
through a training step, and the errors.
"""

import math
import os

import numpy as np
import pytest

import tinyvae.checkpoint
import tinyvae.nn
import tinyvae.models.parts.priors
from strict_xp import StrictArray, strict_ns
from tinyvae import backend
from tinyvae.checkpoint import CheckpointError
from tinyvae.checks import ShapeError
from tinyvae.learn.gradcheck import check_model
from tinyvae.prob.losses import bernoulli_nll, gaussian_kl, gaussian_nll
from tinyvae.nn.optim import SGD, Adam
from tinyvae.models.vae import VAE, Autoencoder, build_model, load_model
from tinyvae.models.config import ModelConfig

D, Z, N = 6, 2, 4


def data(seed=0, n=N, dtype=np.float64):
    """A batch x in [0, 1] (N, D) and a noise ε (N, Z)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, D)).astype(dtype), rng.standard_normal((n, Z)).astype(dtype)


def vae(**kw):
    kw = {"input_dim": D, "hidden": (5, 4), "latent": Z, "dtype": "float64", "seed": 3, **kw}
    return VAE(**kw)


def ae(**kw):
    kw = {"input_dim": D, "hidden": (5, 4), "latent": Z, "dtype": "float64", "seed": 3, **kw}
    return Autoencoder(**kw)


# --------------------------------------------------------------------------- whole-model gradients


@pytest.mark.parametrize("likelihood, act, hidden, beta", [
    ("bernoulli", "tanh", (5, 4), 0.5),
    ("gaussian", "softplus", (5, 4), 2.0),
    ("bernoulli", "sigmoid", (4,), 1.0),
    ("gaussian", "leaky_relu", (5, 3), 0.3),
    ("bernoulli", "relu", (6, 5), 1.5),
])
def test_whole_vae_gradient_matches_finite_differences_with_fixed_eps(likelihood, act, hidden, beta,
                                                                      gradcheck_passes):
    model = vae(likelihood=likelihood, activation=act, hidden=hidden, beta=beta, obs_var=0.7)
    x, eps = data(1)
    report = gradcheck_passes(check_model(model, x, eps))
    assert {r.name for r in report.results} == set(model.params)  # every parameter was checked


@pytest.mark.parametrize("likelihood, act", [("bernoulli", "tanh"), ("gaussian", "relu")])
def test_whole_autoencoder_gradient_matches_finite_differences(likelihood, act, gradcheck_passes):
    model = ae(likelihood=likelihood, activation=act)
    x, _ = data(2)
    gradcheck_passes(check_model(model, x))


def test_vae_loss_is_reconstruction_plus_beta_times_kl_by_hand():
    model = vae(likelihood="gaussian", obs_var=0.5, beta=0.25, activation="tanh")
    x, eps = data(3)
    loss = float(model.forward(x, eps))
    mu, log_var = model.encode(x)
    z = mu + np.exp(0.5 * log_var) * eps
    recon = float(gaussian_nll(model.decoder.forward(z), x, 0.5)[0])
    kl = float(gaussian_kl(mu, log_var)[0])
    assert loss == pytest.approx(recon + 0.25 * kl, rel=1e-14)
    assert float(model.stats["recon"]) == pytest.approx(recon, rel=1e-14)
    assert float(model.stats["kl"]) == pytest.approx(kl, rel=1e-14)
    assert float(model.forward(x, eps, beta=1.0)) == pytest.approx(recon + kl, rel=1e-14)


def test_autoencoder_loss_is_the_reconstruction_of_its_code():
    model = ae()
    x, _ = data(4)
    loss = float(model.forward(x))
    assert loss == pytest.approx(float(bernoulli_nll(model.decoder.forward(model.encode(x)), x)[0]), rel=1e-14)
    assert float(model.stats["kl"]) == 0.0


# --------------------------------------------------------------------------- backend-clean


def train(model, x, eps, steps=3):
    """Forward, backward, then alternately an Adam and an SGD step; losses, grad and theta on the host."""
    adam, sgd = Adam(model, lr=1e-2), SGD(model, lr=1e-2, momentum=0.9)
    losses, grads = [], []
    for t in range(steps):
        losses.append(backend.to_float(model.forward(x, eps)))
        grads.append(backend.to_numpy(model.backward()).copy())
        (adam if t % 2 == 0 else sgd).step()
    return losses, grads, backend.to_numpy(model.theta).copy()


MODELS = {
    "vae-bernoulli": lambda: vae(activation="softplus", beta=0.7),
    "vae-gaussian": lambda: vae(likelihood="gaussian", activation="leaky_relu", obs_var=0.3),
    "ae-bernoulli": lambda: ae(activation="sigmoid"),
    "ae-gaussian": lambda: ae(likelihood="gaussian", activation="tanh"),
    "vae-continuous-bernoulli": lambda: vae(likelihood="continuous-bernoulli", activation="tanh"),
    "vae-gaussian-learned-var": lambda: vae(likelihood="gaussian", obs_var_mode="learned", activation="tanh"),
    "vae-gaussian-optimal-var": lambda: vae(likelihood="gaussian", obs_var_mode="optimal", activation="tanh"),
    "vae-free-bits": lambda: vae(activation="tanh", free_bits=0.05),
}


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_models_train_on_device_arrays_and_agree_with_numpy(make, device_xp):
    x, eps = data(5)
    host = train(make(), x, eps)
    model = make().to(device_xp)
    assert all(backend.get_xp(a) is device_xp for a in (model.theta, model.grad, *model.params.values()))
    dev = train(model, backend.to_device(x, device_xp), backend.to_device(eps, device_xp))
    # the first loss and gradient: the same to 1e-12
    assert dev[0][0] == pytest.approx(host[0][0], rel=1e-12)
    np.testing.assert_allclose(dev[1][0], host[1][0], rtol=1e-12, atol=1e-14)
    # after optimizer steps: Adam's first step divides by |g| + 1e-8, which magnifies the round-off
    # of a near-zero gradient (a GPU sums in another order) up to lr / 1e-8; the strict namespace,
    # running NumPy underneath, agrees bit for bit anyway
    np.testing.assert_allclose(dev[0], host[0], rtol=1e-10)
    for g_dev, g_host in zip(dev[1], host[1]):
        np.testing.assert_allclose(g_dev, g_host, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dev[2], host[2], rtol=1e-10, atol=1e-10)
    if device_xp is strict_ns:
        np.testing.assert_array_equal(dev[2], host[2])


def test_vae_on_device_draws_the_same_eps_as_on_numpy_when_none_is_given(device_xp):
    x, _ = data(6)
    host = vae()
    dev = vae().to(device_xp)
    assert backend.to_float(dev.forward(backend.to_device(x, device_xp))) == pytest.approx(
        float(host.forward(x)), rel=1e-12)


def test_gradient_check_runs_on_device_arrays(device_xp, gradcheck_passes):
    model = vae(hidden=(3,), activation="tanh").to(device_xp)
    x, eps = data(7)
    gradcheck_passes(check_model(model, backend.to_device(x, device_xp), backend.to_device(eps, device_xp)))


def stray_np_tanh(self, x):
    y = np.tanh(x)  # the planted bug: np. where xp. belongs
    self._cache = y
    return y


def stray_np_kl(mu, log_var, validate=True):
    mu = np.asarray(mu)  # the planted bug: a silent device -> host copy
    return gaussian_kl(mu, log_var, validate=validate)


@pytest.mark.parametrize("target, name, plant, message", [
    (tinyvae.nn.Tanh, "forward", stray_np_tanh, "does not support ufuncs"),
    (tinyvae.models.parts.priors, "gaussian_kl", stray_np_kl, "implicit conversion to a NumPy array is not allowed"),
])
def test_a_stray_numpy_call_fails_on_the_strict_namespace_while_numpy_hides_it(target, name, plant, message,
                                                                               monkeypatch):
    make = lambda: vae(activation="tanh")  # noqa: E731
    x, eps = data(8)
    monkeypatch.setattr(target, name, plant)
    train(make(), x, eps)  # on NumPy the stray call goes unnoticed
    model = make().to(strict_ns)
    with pytest.raises(TypeError, match=message):
        train(model, strict_ns.asarray(x), strict_ns.asarray(eps))


def test_moving_to_a_device_and_back_keeps_every_parameter():
    model = vae()
    theta = model.theta.copy()
    model.to(strict_ns)
    assert isinstance(model.theta, StrictArray) and model.device == "gpu"
    model.to("cpu")
    assert type(model.theta) is np.ndarray and model.device == "cpu"
    np.testing.assert_array_equal(model.theta, theta)
    assert model.params["encoder.0.W"].base is not None  # still views into the one buffer


# --------------------------------------------------------------------------- sample, encode, reconstruct


def test_sample_decodes_n_prior_draws_into_probabilities_in_the_unit_interval():
    for model in (vae(), ae()):
        images = model.sample(7)
        assert images.shape == (7, D) and images.dtype == np.float64
        assert np.all((images >= 0) & (images <= 1))


def test_sample_with_a_given_generator_is_reproducible_and_gaussian_means_are_unbounded():
    model = vae(likelihood="gaussian")
    a = model.sample(5, rng=np.random.default_rng(0))
    b = model.sample(5, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (5, D) and np.all(np.isfinite(a))


def test_sample_on_a_device_returns_device_arrays():
    images = vae().to(strict_ns).sample(3)
    assert isinstance(images, StrictArray) and images.shape == (3, D)


def test_encode_returns_mu_and_log_var_for_a_vae_and_the_code_for_an_autoencoder():
    x, _ = data(9)
    mu, log_var = vae().encode(x)
    assert mu.shape == (N, Z) and log_var.shape == (N, Z)
    assert ae().encode(x).shape == (N, Z)


def test_reconstruct_decodes_the_posterior_mean():
    model = vae()
    x, _ = data(10)
    recon = model.reconstruct(x)
    assert recon.shape == (N, D) and np.all((recon >= 0) & (recon <= 1))
    mu, _ = model.encode(x)
    np.testing.assert_allclose(recon, model.decode(mu), rtol=1e-15)
    assert ae().reconstruct(x).shape == (N, D)


# --------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("make", [vae, ae], ids=["vae", "ae"])
def test_save_and_load_round_trip_is_exact(make, dtype, tmp_path):
    model = make(dtype=dtype, likelihood="gaussian", activation="tanh", beta=0.5, obs_var=0.3)
    model.theta += np.random.default_rng(0).standard_normal(model.theta.shape).astype(dtype)  # not the init
    path = model.save(tmp_path / "model.npz", extra={"step": np.array(17)})
    loaded = load_model(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert loaded.theta.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(loaded.theta, model.theta)
    x, eps = data(11, dtype=dtype)
    assert float(loaded.forward(x, eps)) == float(model.forward(x, eps))
    with np.load(path, allow_pickle=False) as archive:  # plain arrays only: nothing runs on load
        assert int(archive["step"]) == 17 and set(archive.files) >= {"format", "config", "theta"}


def test_load_model_rebuilds_the_architecture_from_the_stored_config(tmp_path):
    config = ModelConfig(model="ae", input_dim=D, hidden=(7, 3), latent=3, activation="softplus",
                         likelihood="gaussian", obs_var=2.0, dtype="float64", seed=9)
    build_model(config).save(tmp_path / "ae.npz")
    loaded = load_model(tmp_path / "ae.npz", device=strict_ns)
    assert isinstance(loaded, Autoencoder) and loaded.config == config
    assert [type(layer).__name__ for layer in loaded.encoder.layers] == ["Dense", "Softplus", "Dense", "Softplus",
                                                                          "Dense"]
    assert isinstance(loaded.theta, StrictArray)


def test_save_writes_atomically_leaving_no_temporary_file(tmp_path):
    model = vae()
    model.save(tmp_path / "model.npz")
    model.save(tmp_path / "model.npz")  # replacing an existing one
    assert os.listdir(tmp_path) == ["model.npz"]


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    vae(seed=1).save(path)
    before = path.read_bytes()

    def savez_dies_midway(f, **arrays):
        f.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(tinyvae.checkpoint.np, "savez", savez_dies_midway)
    with pytest.raises(OSError, match="disk full"):
        vae(seed=2).save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]
    monkeypatch.undo()
    np.testing.assert_array_equal(load_model(path).theta, vae(seed=1).theta)


@pytest.mark.parametrize("cut", [lambda n: 0, lambda n: n // 2, lambda n: int(0.9 * n), lambda n: n - 1],
                         ids=["empty", "half", "90%", "all-but-the-last-byte"])
def test_a_truncated_checkpoint_is_a_clear_checkpoint_error(cut, tmp_path):
    path = vae().save(tmp_path / "model.npz")
    raw = path.read_bytes()
    path.write_bytes(raw[:cut(len(raw))])
    with pytest.raises(CheckpointError, match=r"model\.npz: cannot be read as an \.npz archive .*\(truncated or corrupt\?\)"):
        load_model(path)


def test_a_checkpoint_of_another_architecture_is_refused_naming_both(tmp_path):
    theirs, mine = vae(hidden=(5,)), vae(hidden=(4,))
    path = theirs.save(tmp_path / "a.npz")
    with pytest.raises(CheckpointError, match=rf"a\.npz holds a vae 6-5-2 relu bernoulli \({theirs.num_params} parameters\), "
                                              rf"this model is a vae 6-4-2 relu bernoulli \({mine.num_params}\); "
                                              r".*'hidden': \(\[5\], \[4\]\)"):
        mine.load_weights(path)
    ae_path = ae().save(tmp_path / "b.npz")
    with pytest.raises(CheckpointError, match=r"holds a ae 6-5-4-2 .*this model is a vae 6-5-4-2"):
        vae().load_weights(ae_path)


def test_a_file_that_is_no_tinyvae_checkpoint_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match=r"missing\.npz: no such file"):
        load_model(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(CheckpointError, match=r"missing arrays \['format', 'config', 'theta'\]; it holds \['weights'\]"):
        load_model(tmp_path / "other.npz")
    np.savez(tmp_path / "pickled.npz", format=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckpointError, match="cannot be read as an .npz archive of plain arrays"):
        load_model(tmp_path / "pickled.npz")


def test_a_checkpoint_with_an_invalid_stored_config_is_refused(tmp_path):
    path = vae().save(tmp_path / "model.npz")
    with np.load(path) as archive:
        arrays = dict(archive)
    arrays["config"] = np.array(arrays["config"][()].replace('"relu"', '"swish"'))
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match="stored config is not a valid model config: .*got 'swish'"):
        load_model(path)


# --------------------------------------------------------------------------- float32 stays float32


def record_dtypes(model, monkeypatch):
    """Wrap every layer's (and the reparameterization's) forward and backward to log output dtypes."""
    seen = []

    def wrap(obj, name, label):
        fn = getattr(obj, name)

        def recorded(*args):
            out = fn(*args)
            for o in out if isinstance(out, tuple) else (out,):
                if o is not None:
                    seen.append((f"{label}.{name}", o.dtype))
            return out

        monkeypatch.setattr(obj, name, recorded)

    layers = [(f"{net}.{i}", layer) for net in ("encoder", "decoder")
              for i, layer in enumerate(getattr(model, net).layers)]
    if hasattr(model, "reparam"):
        layers.append(("reparam", model.reparam))
    for label, layer in layers:
        wrap(layer, "forward", label)
        wrap(layer, "backward", label)
    return seen


@pytest.mark.parametrize("xp", [np, strict_ns], ids=["numpy", "strict"])
@pytest.mark.parametrize("make, opt", [(vae, Adam), (vae, SGD), (ae, Adam)], ids=["vae-adam", "vae-sgd", "ae-adam"])
def test_a_float32_training_step_never_upcasts(make, opt, xp, monkeypatch):
    f32 = np.float32
    model = make(dtype="float32", likelihood="gaussian", activation="softplus").to(xp)
    optimizer = opt(model)
    x, eps = (xp.asarray(a) for a in data(12, dtype=f32))
    seen = record_dtypes(model, monkeypatch)
    loss = model.forward(x, eps)
    model.backward()
    optimizer.step()
    assert len(seen) >= 2 * 5 * 2 - 1  # every layer, forward and backward (the first needs no dx)
    assert {dtype for _, dtype in seen} == {np.dtype(f32)}, [s for s in seen if s[1] != f32]
    assert loss.dtype == f32 and all(v.dtype == f32 for v in model.stats.values())
    assert model.theta.dtype == f32 and model.grad.dtype == f32
    assert all(buf.dtype == f32 for bufs in optimizer.state.values() for buf in bufs)
    assert model.sample(2).dtype == f32 and model.reconstruct(x).dtype == f32


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("field, value, message", [
    ("model", "gan", r"model must be one of \('vae', 'ae', 'cvae', 'quadrant-regressor'\), got 'gan'"),
    ("likelihood", "poisson", r"likelihood must be one of \('bernoulli', 'gaussian', 'continuous-bernoulli'\), got 'poisson'"),
    ("activation", "swish", r"activation must be one of \['leaky_relu', 'relu', 'sigmoid', 'softplus', 'tanh'\], got 'swish'"),
    ("init", "xavier", r"init must be one of \('auto', 'glorot', 'he', 'uniform'\), got 'xavier'"),
    ("latent", 0, r"sizes must be positive, got input_dim=784, hidden=\(400,\), latent=0"),
    ("hidden", (400, -1), r"sizes must be positive, got input_dim=784, hidden=\(400, -1\), latent=20"),
    ("obs_var", 0.0, "obs_var must be positive, got 0.0"),
    ("beta", -1.0, "beta must be >= 0, got -1.0"),
    ("dtype", "float16", "dtype must be 'float32' or 'float64', got 'float16'"),
])
def test_an_invalid_config_value_is_refused_naming_the_field_the_value_and_the_choices(field, value, message):
    with pytest.raises(ValueError, match=f"invalid model config: {message}"):
        ModelConfig(**{field: value})


def test_an_unknown_config_field_is_refused_naming_it():
    with pytest.raises(TypeError, match="unexpected keyword argument 'latent_dim'"):
        VAE(latent_dim=3)


def test_a_model_class_refuses_a_config_of_the_other_kind():
    with pytest.raises(ValueError, match="VAE needs config.model == 'vae', got 'ae'"):
        VAE(ModelConfig(model="ae", input_dim=D, hidden=(3,), latent=Z))
    with pytest.raises(ValueError, match="Autoencoder needs config.model == 'ae', got 'vae'"):
        Autoencoder(ModelConfig(model="vae", input_dim=D, hidden=(3,), latent=Z))


@pytest.mark.parametrize("make", [vae, ae], ids=["VAE", "Autoencoder"])
def test_backward_before_forward_is_an_error_naming_the_model(make):
    model = make()
    name = type(model).__name__
    with pytest.raises(RuntimeError, match=rf"{name}\.backward called before forward: run forward\(x\) first"):
        model.backward()
    model.forward(*data(13)) if name == "VAE" else model.forward(data(13)[0])
    model.to(strict_ns)  # moving drops what the forward kept: it lives on the other device
    with pytest.raises(RuntimeError, match=rf"{name}\.backward called before forward"):
        model.backward()


@pytest.mark.parametrize("make", [vae, ae], ids=["vae", "ae"])
def test_forward_refuses_bad_inputs_naming_the_argument_got_and_expected(make):
    model = make()
    x, eps = data(14)
    poisoned = x.copy()
    poisoned[0, 1], poisoned[2, 3] = np.nan, -np.inf
    cases = [
        (ShapeError, r"x: expected size 6 along axis 1, got shape \(4, 5\)", x[:, :5], eps),
        (ShapeError, r"x: expected shape \(N, 6\), got \(6,\)", x[0], eps),
        (TypeError, "x: expected dtype float64 to match the model, got float32", x.astype(np.float32), eps),
        (TypeError, "x: expected a floating-point array .*got dtype int64", (x > 0.5).astype(np.int64), eps),
        (ValueError, "x: expected finite values, got 2 NaN or inf entries", poisoned, eps),
        (ValueError, r"x \(targets\): Bernoulli targets must lie in \[0, 1\], got values in \[0, 2\]",
         np.where(x > 0.8, 2.0, np.where(x < 0.2, 0.0, x)), eps),
        (TypeError, "x lives on another device than the model", strict_ns.asarray(x), eps),
    ]
    if make is vae:
        cases += [
            (ShapeError, r"eps: expected size 2 along axis 1, got shape \(4, 3\)", x, np.zeros((4, 3))),
            (ShapeError, r"eps: expected size 4 along axis 0, got shape \(5, 2\)", x, np.zeros((5, 2))),
            (ValueError, "eps: expected finite values, got 1 NaN or inf entries", x,
             np.where(np.arange(8).reshape(4, 2) == 3, np.inf, eps)),
        ]
    for error, message, bad_x, bad_eps in cases:
        with pytest.raises(error, match=message):
            model.forward(bad_x, bad_eps)


def test_decode_refuses_a_code_of_the_wrong_width():
    with pytest.raises(ShapeError, match=r"z: expected size 2 along axis 1, got shape \(3, 4\)"):
        vae().decode(np.zeros((3, 4)))


def test_the_number_of_parameters_is_that_of_the_layers():
    model = vae(hidden=(5,))
    expected = (D * 5 + 5) + (5 * 2 * Z + 2 * Z) + (Z * 5 + 5) + (5 * D + D)
    assert model.num_params == expected == sum(math.prod(p.shape) for p in model.params.values())
