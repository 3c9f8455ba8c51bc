"""The Variational Autoencoder (Kingma & Welling 2014) and a plain autoencoder, by hand.

VAE, shapes N batch, D input, H hidden, Z latent::

    x (N, D) -> encoder MLP -> [μ | log σ²] (N, 2Z)
             -> z = μ + exp(½ log σ²) ⊙ ε (N, Z),  ε ~ N(0, I) passed in
             -> decoder MLP -> logits (Bernoulli) or means (Gaussian) (N, D)
    loss = reconstruction + β · KL(q(z|x) ‖ N(0, I))      [eq:vae-loss]

The autoencoder uses the same layers with z = encoder(x) and the reconstruction alone
[eq:ae-loss]; ``sample`` on it decodes z ~ N(0, I) to show why it cannot generate
(derivations/autoencoder.md).

All parameters of a model live in one contiguous buffer ``theta`` and all gradients in one
buffer ``grad`` of the same layout; each layer's ``params``/``grads`` entries are views into
them. The optimizers then update every parameter with a few vectorized operations, and moving a
model to the GPU is a single copy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from . import backend
from .backend import get_xp
from .checkpoint import CheckpointError, json_array, from_json_array, load_arrays, save_arrays
from .checks import check_array, check_same_shape
from .layers import ACTIVATIONS, mlp, sigmoid
from .losses import bernoulli_nll, gaussian_kl, gaussian_nll

LIKELIHOODS = ("bernoulli", "gaussian")
MODELS = ("vae", "ae")
CHECKPOINT_FORMAT = "tinyvae-model-1"


@dataclass
class ModelConfig:
    """Architecture and loss of a model; stored beside the weights in every checkpoint."""

    model: str = "vae"  # "vae" or "ae" (plain autoencoder)
    input_dim: int = 784  # D: pixels per image
    hidden: tuple = (400,)  # H: widths of the encoder's hidden layers (the decoder mirrors them)
    latent: int = 20  # Z: latent dimensions
    activation: str = "relu"  # between dense layers: relu, leaky_relu, tanh, sigmoid, softplus
    likelihood: str = "bernoulli"  # decoder: "bernoulli" (logits) or "gaussian" (means)
    obs_var: float = 1.0  # Gaussian likelihood's fixed variance σ_x²
    beta: float = 1.0  # weight of the KL term (1 gives the ELBO)
    init: str = "auto"  # "auto" (He for ReLU, Glorot otherwise), "he", "glorot", "uniform"
    seed: int = 0  # initial weights
    dtype: str = "float32"  # "float32" for training, "float64" for gradient checks

    def __post_init__(self):
        self.hidden = tuple(int(h) for h in self.hidden)
        problems = []
        if self.model not in MODELS:
            problems.append(f"model must be one of {MODELS}, got {self.model!r}")
        if self.likelihood not in LIKELIHOODS:
            problems.append(f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
        if self.activation not in ACTIVATIONS:
            problems.append(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.init not in ("auto", "glorot", "he", "uniform"):
            problems.append(f"init must be one of ('auto', 'glorot', 'he', 'uniform'), got {self.init!r}")
        if self.input_dim < 1 or self.latent < 1 or any(h < 1 for h in self.hidden):
            problems.append(f"sizes must be positive, got input_dim={self.input_dim}, hidden={self.hidden}, latent={self.latent}")
        if not self.obs_var > 0:
            problems.append(f"obs_var must be positive, got {self.obs_var}")
        if not self.beta >= 0:
            problems.append(f"beta must be >= 0, got {self.beta}")
        if self.dtype not in ("float32", "float64"):
            problems.append(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if problems:
            raise ValueError("invalid model config: " + "; ".join(problems))

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    def describe(self):
        sizes = "-".join(map(str, (self.input_dim, *self.hidden, self.latent)))
        return f"{self.model} {sizes} {self.activation} {self.likelihood}"


class Reparameterize:
    """z = μ + exp(½ log σ²) ⊙ ε, with ε given by the caller.

    The backward returns (dL/dμ, dL/dlog σ²) and nothing for ε: ε is an input drawn from
    N(0, I), not a parameter. It uses the very ε and σ of the forward, which it keeps.
    """

    def __init__(self):
        self._cache = None

    def forward(self, mu, log_var, eps):
        check_same_shape(mu, "mu", log_var, "log_var")
        check_same_shape(mu, "mu", eps, "eps")
        xp = get_xp(mu)
        std = xp.exp(0.5 * log_var)  # σ = exp(½ log σ²)
        self._cache = (eps, std)
        return mu + std * eps  # (N, Z)  [eq:reparam]

    def backward(self, dz):
        if self._cache is None:
            raise RuntimeError("Reparameterize.backward called before forward: run forward(mu, log_var, eps) first")
        eps, std = self._cache
        dmu = dz  # [eq:reparam-grad-mu]
        dlog_var = 0.5 * dz * eps * std  # [eq:reparam-grad-logvar]
        return dmu, dlog_var


class _Model:
    """What the VAE and the autoencoder share: the networks, one parameter buffer, I/O."""

    def __init__(self, config=None, **overrides):
        config = dataclasses.replace(config, **overrides) if config else ModelConfig(**overrides)
        self.config = config
        self.dtype = np.dtype(config.dtype)
        rng = np.random.default_rng(config.seed)  # host generator: same weights on every backend
        d, z = config.input_dim, config.latent
        enc_out = 2 * z if config.model == "vae" else z
        # The encoder's first layer never needs dL/dx: nothing upstream of the data learns.
        self.encoder = mlp([d, *config.hidden, enc_out], config.activation, rng=rng,
                           init=config.init, dtype=self.dtype, first_needs_dx=False)
        self.decoder = mlp([z, *reversed(config.hidden), d], config.activation, rng=rng,
                           init=config.init, dtype=self.dtype)
        self._slots = [(name, net, layer, key)
                       for name, net in (("encoder", self.encoder), ("decoder", self.decoder))
                       for i, layer in enumerate(net.layers) for key in layer.params]
        self.xp = np
        self._bind(self._gather(), np)
        self.rng = backend.default_rng(config.seed + 1, np)
        self._cache = None
        self.stats = {}

    # ---- the parameter buffer

    def _gather(self):
        parts = [backend.to_numpy(layer.params[key]).ravel() for _, _, layer, key in self._slots]
        return np.concatenate(parts).astype(self.dtype)

    def _bind(self, theta, xp):
        """Make every layer's params/grads views into the flat ``theta``/``grad`` buffers."""
        self.theta = theta
        self.grad = xp.zeros(theta.shape, dtype=self.dtype)
        offset = 0
        for _, _, layer, key in self._slots:
            shape = tuple(layer.params[key].shape)
            size = int(np.prod(shape))
            layer.params[key] = self.theta[offset:offset + size].reshape(shape)
            layer.grads[key] = self.grad[offset:offset + size].reshape(shape)
            offset += size
        for net in (self.encoder, self.decoder):
            net._refresh()
        self.xp = xp

    @property
    def params(self):
        """Every parameter by name (``"encoder.0.W"``), as views into ``theta``."""
        return {f"{n}.{k}": v for n, net in (("encoder", self.encoder), ("decoder", self.decoder))
                for k, v in net.params.items()}

    @property
    def grads(self):
        return {f"{n}.{k}": v for n, net in (("encoder", self.encoder), ("decoder", self.decoder))
                for k, v in net.grads.items()}

    @property
    def num_params(self):
        return int(self.theta.size)

    @property
    def device(self):
        return backend.CPU if self.xp is np else backend.GPU

    def to(self, device):
        """Move the model to ``"cpu"``, ``"gpu"`` (or a stand-in namespace); returns self.

        The parameter and gradient buffers are replaced by copies on the device, so create the
        optimizer after moving the model.
        """
        xp = backend.namespace(device)
        if xp is not self.xp:
            self._bind(backend.to_device(self.theta, device), xp)
            self.rng = backend.default_rng(self.config.seed + 1, xp)
            self._cache = None
        return self

    def set_theta(self, values):
        """Copy ``values`` (a host or device array of the right size) into the parameters."""
        values = backend.to_numpy(values)
        if values.shape != self.theta.shape:
            raise CheckpointError(f"expected {self.theta.size} parameters for {self.config.describe()}, got {values.shape}")
        self.theta[...] = backend.to_device(values.astype(self.dtype), self.xp) if self.xp is not np else values

    # ---- shared pieces of the forward pass

    def _check_x(self, x, validate):
        check_array(x, "x", shape=(None, self.config.input_dim), finite=validate)
        if x.dtype != self.dtype:
            raise TypeError(f"x: expected dtype {self.dtype} to match the model, got {x.dtype}")
        if get_xp(x) is not self.xp:
            raise TypeError(f"x lives on another device than the model ({self.device}); move it with tinyvae.backend.to_device")

    def _reconstruction(self, out, x, validate):
        if self.config.likelihood == "bernoulli":
            return bernoulli_nll(out, x, validate=validate)
        return gaussian_nll(out, x, self.config.obs_var, validate=validate)

    def _cached(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward: run forward(x) first")
        return self._cache

    def decode(self, z):
        """The decoder's mean image: sigmoid(logits) for Bernoulli, the means for Gaussian."""
        check_array(z, "z", shape=(None, self.config.latent))
        out = self.decoder.forward(z)
        return sigmoid(out) if self.config.likelihood == "bernoulli" else out

    def sample(self, n, rng=None):
        """Decode ``n`` draws z ~ N(0, I) (the prior). Returns mean images (n, D)."""
        rng = self.rng if rng is None else rng
        z = rng.standard_normal((int(n), self.config.latent), dtype=self.dtype)
        return self.decode(z)

    def loss_and_grad(self, x, eps=None, **kwargs):
        """forward then backward; returns the loss (0-d array) and the gradient buffer."""
        loss = self.forward(x, eps, **kwargs)
        self.backward()
        return loss, self.grad

    # ---- save and load

    def save(self, path, extra=None):
        """Write the weights and the config to ``path`` (.npz, atomically)."""
        arrays = {"format": np.array(CHECKPOINT_FORMAT), "config": json_array(self.config.to_dict()),
                  "theta": backend.to_numpy(self.theta)}
        arrays.update(extra or {})
        return save_arrays(path, arrays)

    @classmethod
    def read_config(cls, path):
        arrays = load_arrays(path, required=("format", "config", "theta"))
        if str(arrays["format"]) != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path}: format {str(arrays['format'])!r} is not {CHECKPOINT_FORMAT!r}")
        try:
            config = ModelConfig(**from_json_array(arrays["config"], path))
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{path}: stored config is not a valid model config: {err}") from err
        return config, arrays

    def load_weights(self, path):
        """Load weights saved by a model of the same architecture; refuse any other."""
        config, arrays = self.read_config(path)
        mine, theirs = self.config.to_dict(), config.to_dict()
        arch = ("model", "input_dim", "hidden", "latent", "likelihood")
        diff = {k: (theirs[k], mine[k]) for k in arch if mine[k] != theirs[k]}
        if diff or arrays["theta"].shape != self.theta.shape:
            raise CheckpointError(
                f"{path} holds a {config.describe()} ({arrays['theta'].size} parameters), "
                f"this model is a {self.config.describe()} ({self.num_params}); differences (file, model): {diff}")
        self.set_theta(arrays["theta"])
        return arrays


class VAE(_Model):
    """A Variational Autoencoder with MLP encoder and decoder (see the module docstring)."""

    def __init__(self, config=None, **overrides):
        if config is None:
            overrides.setdefault("model", "vae")
        super().__init__(config, **overrides)
        if self.config.model != "vae":
            raise ValueError(f"VAE needs config.model == 'vae', got {self.config.model!r}")
        self.reparam = Reparameterize()

    def encode(self, x):
        """(μ, log σ²) of q(z|x), each (N, Z)."""
        check_array(x, "x", shape=(None, self.config.input_dim))
        h = self.encoder.forward(x)  # (N, 2Z)
        z = self.config.latent
        return h[:, :z], h[:, z:]

    def reconstruct(self, x):
        """Decode the posterior mean: the model's reconstruction of x."""
        mu, _ = self.encode(x)
        return self.decode(mu)

    def forward(self, x, eps=None, *, beta=None, validate=True):
        """The loss (0-d array, nats per example) of the batch ``x`` (N, D) with noise ``eps`` (N, Z).

        ``eps=None`` draws ε from the model's generator. Keeps what ``backward`` needs;
        ``self.stats`` gets the loss, the reconstruction term and the KL term.
        """
        self._check_x(x, validate)
        n, z_dim = x.shape[0], self.config.latent
        if eps is None:
            eps = self.rng.standard_normal((n, z_dim), dtype=self.dtype)
        else:
            check_array(eps, "eps", shape=(n, z_dim), finite=validate)
        beta = self.config.beta if beta is None else float(beta)
        h = self.encoder.forward(x)  # (N, 2Z)
        mu, log_var = h[:, :z_dim], h[:, z_dim:]  # (N, Z) each
        z = self.reparam.forward(mu, log_var, eps)  # (N, Z)
        out = self.decoder.forward(z)  # (N, D)
        recon, dout = self._reconstruction(out, x, validate)
        kl, dmu_kl, dlog_var_kl = gaussian_kl(mu, log_var, validate=False)
        loss = recon + beta * kl  # −ELBO when β = 1  [eq:vae-loss] [eq:elbo]
        self._cache = (dout, dmu_kl, dlog_var_kl, beta)
        self.stats = {"loss": loss, "recon": recon, "kl": kl}
        return loss

    def backward(self):
        """Fill ``self.grad`` (every parameter's dL/dθ) from the last forward; returns it."""
        dout, dmu_kl, dlog_var_kl, beta = self._cached()
        z_dim = self.config.latent
        dz = self.decoder.backward(dout)  # (N, Z)
        dmu, dlog_var = self.reparam.backward(dz)  # through z = μ + σ ⊙ ε
        dh = self.xp.empty((dz.shape[0], 2 * z_dim), dtype=self.dtype)  # (N, 2Z)
        dh[:, :z_dim] = dmu + beta * dmu_kl  # the KL term reaches μ and log σ² directly
        dh[:, z_dim:] = dlog_var + beta * dlog_var_kl
        self.encoder.backward(dh)
        return self.grad


class Autoencoder(_Model):
    """A deterministic autoencoder: z = encoder(x), loss = reconstruction only [eq:ae-loss]."""

    def __init__(self, config=None, **overrides):
        if config is None:
            overrides.setdefault("model", "ae")
        super().__init__(config, **overrides)
        if self.config.model != "ae":
            raise ValueError(f"Autoencoder needs config.model == 'ae', got {self.config.model!r}")

    def encode(self, x):
        """The code z (N, Z) of each input."""
        check_array(x, "x", shape=(None, self.config.input_dim))
        return self.encoder.forward(x)

    def reconstruct(self, x):
        return self.decode(self.encode(x))

    def forward(self, x, eps=None, *, beta=None, validate=True):
        """The reconstruction loss of ``x``; ``eps`` and ``beta`` are accepted and ignored."""
        self._check_x(x, validate)
        z = self.encoder.forward(x)  # (N, Z)
        out = self.decoder.forward(z)  # (N, D)
        loss, dout = self._reconstruction(out, x, validate)  # [eq:ae-loss]
        self._cache = dout
        self.stats = {"loss": loss, "recon": loss, "kl": self.xp.zeros((), dtype=self.dtype)}
        return loss

    def backward(self):
        dout = self._cached()
        dz = self.decoder.backward(dout)
        self.encoder.backward(dz)
        return self.grad


def build_model(config):
    """A VAE or an Autoencoder from a ``ModelConfig``."""
    return VAE(config) if config.model == "vae" else Autoencoder(config)


def load_model(path, device="cpu"):
    """Rebuild the model saved at ``path`` (architecture from its stored config) on ``device``."""
    config, _ = _Model.read_config(path)
    model = build_model(config)
    model.load_weights(path)
    return model.to(device)
