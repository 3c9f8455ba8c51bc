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
import os
from dataclasses import dataclass

import numpy as np

from . import backend, hierarchy, iwae
from .backend import get_xp
from .checkpoint import CheckpointError, json_array, from_json_array, load_arrays, save_arrays
from .checks import ShapeError, check_array, check_same_shape, field_problems
from .layers import ACTIVATIONS, mlp, sigmoid
from .layers.convnet import conv_decoder, conv_encoder, conv_size_problem, feature_shape
from .continuous_bernoulli import continuous_bernoulli_log_prob, continuous_bernoulli_nll
from .continuous_bernoulli import mean as continuous_bernoulli_mean
from .losses import (apply_free_bits, bernoulli_log_prob, bernoulli_nll, gaussian_kl, gaussian_log_prob, gaussian_nll,
                     gaussian_nll_learned_var, gaussian_nll_optimal_var)

LIKELIHOODS = ("bernoulli", "gaussian", "continuous-bernoulli")
OBS_VAR_MODES = ("fixed", "learned", "optimal")  # the Gaussian decoder's σ_x²: see derivations/sigma-vae.md
# An optimal σ_x² is each training batch's MSE; the model keeps, for evaluation, a running average of them
# with this weight on the newest: the MSE over roughly the last 100 batches, steadier than the last one alone.
OBS_VAR_AVERAGING = 0.01
MODELS = ("vae", "ae")
ARCHS = ("mlp", "conv")  # dense layers, or the Keras example's convolutions (tinyvae/layers/convnet.py)
# Fields that only the conv architecture reads: an MLP ignores them (and load_weights does too).
CONV_ONLY = ("channels", "dense", "image_shape")
CONV_MAX_ROWS = 128  # see _Model.max_rows
CHECKPOINT_FORMAT = "tinyvae-model-1"
# A config asking for more parameters than this is a typo or a damaged file, refused before allocating:
# the largest MLPs on 28x28 images have a few million.
MAX_PARAMETERS = 1_000_000_000
TRAINING_COPIES = 4  # parameters, gradients and Adam's two moments
# Config fields that do not change what the weights mean: load_weights compares every other field.
WEIGHT_INDEPENDENT = ("seed", "init", "dtype", "beta", "obs_var", "objective", "k")


def _physical_memory():
    """Bytes of RAM in this machine, or None where the OS will not say."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


@dataclass
class ModelConfig:
    """Architecture and loss of a model; stored beside the weights in every checkpoint."""

    model: str = "vae"  # "vae" or "ae" (plain autoencoder)
    input_dim: int = 784  # D: pixels per image
    hidden: tuple = (400,)  # H: widths of the encoder's hidden layers (the decoder mirrors them); MLP only
    arch: str = "mlp"  # "mlp" (dense layers) or "conv" (the Keras example's convolutional encoder and decoder)
    channels: tuple = (32, 64)  # conv: channels of the encoder's stride-2 3×3 convolutions (the decoder mirrors them)
    dense: int = 16  # conv: width of the dense ReLU layer between the convolutions and (μ, log σ²); 0: none
    image_shape: tuple = (28, 28)  # conv: (rows, cols) of each image, rows·cols = input_dim
    latent: int = 20  # Z: latent dimensions
    activation: str = "relu"  # between dense layers: relu, leaky_relu, tanh, sigmoid, softplus
    likelihood: str = "bernoulli"  # decoder: "bernoulli" or "continuous-bernoulli" (logits), "gaussian" (means)
    obs_var: float = 1.0  # Gaussian likelihood's variance σ_x² (with obs_var_mode "learned": its start)
    obs_var_mode: str = "fixed"  # "fixed" (obs_var), "learned" (log σ_x² trained), "optimal" (the batch MSE)
    free_bits: float = 0.0  # λ, nats per latent dimension the KL term does not charge (0: plain KL)
    beta: float = 1.0  # weight of the KL term (1 gives the ELBO)
    init: str = "auto"  # "auto" (ReLU: He, Glorot on the output layer; else Glorot), "he", "glorot", "uniform"
    seed: int = 0  # initial weights
    dtype: str = "float32"  # "float32" for training, "float64" for gradient checks
    objective: str = "elbo"  # "elbo", or "iwae": the importance-weighted bound L_K (tinyvae/iwae.py)
    k: int = 1  # K, importance samples per example of the IWAE objective (the ELBO takes 1)
    stochastic_layers: int = 1  # 1: z ~ q(z|x); 2: z1 (latent units) and z2 (latent2), tinyvae/two_layer.py
    latent2: int = 0  # Z2, units of the upper stochastic layer z2 (two stochastic layers only)
    hidden2: tuple = (100, 100)  # widths between z1 and z2, in q(z2|z1) and (reversed) p(z1|z2); two layers only

    def __post_init__(self):
        problems = list(field_problems(self).values())  # each field's type, by its default: latent=2.5 is refused
        if problems:
            raise ValueError("invalid model config: " + "; ".join(problems))
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
        problems += objective_problems(self.objective, self.k, self.model, self.beta)
        problems += likelihood_problems(self)
        problems += architecture_problems(self)
        problems += hierarchy.hierarchy_problems(self)
        if not problems:
            problems.extend(self._size_problems())  # before anything is allocated
        if problems:
            raise ValueError("invalid model config: " + "; ".join(problems))

    def parameter_count(self):
        """Weights and biases of encoder and decoder, counted from the sizes without allocating anything."""
        if self.stochastic_layers == 2:
            return hierarchy.parameter_count(self)
        enc_out = 2 * self.latent if self.model == "vae" else self.latent
        if self.arch == "conv":
            return conv_parameter_count(self, enc_out) + (self.obs_var_mode != "fixed")
        count = 0
        for sizes in ([self.input_dim, *self.hidden, enc_out], [self.latent, *reversed(self.hidden), self.input_dim]):
            count += sum(fan_in * fan_out + fan_out for fan_in, fan_out in zip(sizes, sizes[1:]))  # W and b
        return count + (self.obs_var_mode != "fixed")  # a learned or optimal log σ_x²

    def _size_problems(self):
        """A model too large to be meant: over MAX_PARAMETERS, or more than this machine's memory."""
        count, itemsize = self.parameter_count(), np.dtype(self.dtype).itemsize
        need, memory = TRAINING_COPIES * count * itemsize, _physical_memory()
        sizes = f"the model {self.describe()} has {count:,} parameters"  # describe() names every architecture
        if count > MAX_PARAMETERS:
            return [f"{sizes}, more than the {MAX_PARAMETERS:,} tinyvae accepts; check its sizes"]
        if memory is not None and need > memory:
            return [f"{sizes}, and training holds {TRAINING_COPIES} copies of them ({need / 2**30:,.1f} GiB of "
                    f"{self.dtype}), more than this machine's {memory / 2**30:,.1f} GiB of memory; check its sizes"]
        return []

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        d["hidden2"] = list(self.hidden2)
        return d

    def describe(self):
        if self.stochastic_layers == 2:
            return hierarchy.describe(self)
        sizes = "-".join(map(str, (self.input_dim, *self.hidden, self.latent)))
        if self.arch == "conv":
            rows, cols = self.image_shape
            sizes = "-".join([f"conv {rows}x{cols}", *(f"c{c}" for c in self.channels),
                              *([f"d{self.dense}"] if self.dense else []), f"z{self.latent}"])
        text = f"{self.model} {sizes} {self.activation} {self.likelihood}"
        if self.obs_var_mode != "fixed":
            text += f" (σ_x² {self.obs_var_mode})"
        return text + (f" free bits {self.free_bits:g}" if self.free_bits else "")


def objective_problems(objective, k, model="vae", beta=1.0):
    """What is wrong with an (objective, K) pair, one sentence each ([] when nothing is)."""
    if objective not in iwae.OBJECTIVES:
        return [f"objective must be one of {iwae.OBJECTIVES}, got {objective!r}"]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        return [f"k (importance samples per example) must be an integer >= 1, got {k!r}"]
    if objective == "elbo" and k != 1:
        return [f"k = {k} importance samples needs objective 'iwae'; the ELBO objective takes one sample "
                f"(k = 1)"]
    if objective == "iwae" and model != "vae":
        return [f"objective 'iwae' needs a VAE (an encoder q(z|x) to sample from), got model {model!r}"]
    if objective == "iwae" and beta != 1:
        return [f"beta weights the ELBO's KL term; the IWAE bound has no such term, so beta must be 1 with "
                f"objective 'iwae', got {beta:g}"]
    return []


def architecture_problems(config):
    """What is wrong with the architecture fields (arch, and for conv: channels, dense, image shape)."""
    arch = getattr(config, "arch", "mlp")
    if arch not in ARCHS:
        return [f"arch must be one of {ARCHS}, got {arch!r}"]
    problems = []
    if not config.channels or any(c < 1 for c in config.channels):
        problems.append(f"channels must be one or more positive channel counts, got {list(config.channels)}")
    if config.dense < 0:
        problems.append(f"dense must be a width >= 0 (0: no dense layer), got {config.dense}")
    shape = getattr(config, "image_shape", None)
    if arch != "conv" or shape is None or problems:
        return problems
    if len(shape) != 2 or min(shape) < 1:
        return [f"image_shape must be (rows, cols), two positive sizes, got {tuple(shape)}"]
    if shape[0] * shape[1] != config.input_dim:
        return [f"image_shape {tuple(shape)} has {shape[0] * shape[1]} pixels but input_dim is {config.input_dim}"]
    problem = conv_size_problem(shape, config.channels)
    return [problem] if problem else []


def conv_parameter_count(config, enc_out):
    """Weights and biases of the conv encoder and decoder, from the sizes alone."""
    k2, channels = 9, list(config.channels)
    features = int(np.prod(feature_shape(config.image_shape, channels)))
    count = sum(c_in * c_out * k2 + c_out for c_in, c_out in zip([1, *channels[:-1]], channels))  # encoder convs
    widths = [features, *([config.dense] if config.dense else []), enc_out]
    count += sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))  # encoder dense layers
    count += config.latent * features + features  # decoder's first dense layer
    up = [channels[-1], *reversed(channels), 1]  # decoder's transposed convolutions, e.g. 64, 64, 32, 1
    return count + sum(c_in * c_out * k2 + c_out for c_in, c_out in zip(up[:-1], up[1:]))


def likelihood_problems(config):
    """What is wrong with the likelihood's options (σ_x² mode, free bits), one sentence each."""
    problems = []
    if config.obs_var_mode not in OBS_VAR_MODES:
        problems.append(f"obs_var_mode must be one of {OBS_VAR_MODES}, got {config.obs_var_mode!r}")
    elif config.obs_var_mode != "fixed" and config.likelihood != "gaussian":
        problems.append(f"a {config.obs_var_mode} observation variance needs likelihood='gaussian': the "
                        f"{config.likelihood} likelihood has no σ_x², got likelihood={config.likelihood!r}")
    if not config.free_bits >= 0:
        problems.append(f"free_bits must be >= 0 nats per latent dimension, got {config.free_bits:g}")
    elif config.free_bits > 0 and config.model != "vae":
        problems.append(f"free_bits acts on the KL term of a VAE; the {config.model!r} model has none "
                        f"(got free_bits={config.free_bits:g})")
    objective = getattr(config, "objective", "elbo")
    if objective != "elbo" and (config.likelihood == "continuous-bernoulli" or config.obs_var_mode != "fixed"
                                or config.free_bits > 0):
        problems.append(f"objective {objective!r} supports the bernoulli and fixed-variance gaussian likelihoods "
                        f"without free bits; got likelihood={config.likelihood!r}, obs_var_mode="
                        f"{config.obs_var_mode!r}, free_bits={config.free_bits:g}")
    return problems


class ObservationVariance:
    """The Gaussian decoder's log σ_x², one number for every pixel, as a parameter of the model.

    ``params["log_var"]`` (1,) lives in the model's ``theta`` like any weight, so optimizers,
    checkpoints and devices treat it alike. With obs_var_mode "learned" its gradient is
    [eq:sigma-vae-grad-logvar]; with "optimal" training sets it to the batch's optimum and its
    gradient is zero [eq:sigma-vae-envelope].
    """

    def __init__(self, obs_var, dtype):
        self.params = {"log_var": np.full(1, np.log(obs_var), dtype=dtype)}
        self.grads = {"log_var": np.zeros(1, dtype=dtype)}


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
        self.encoder, self.decoder = self._build_networks(config, rng)
        self._slots = [(name, net, layer, key)
                       for name, net in (("encoder", self.encoder), ("decoder", self.decoder))
                       for i, layer in enumerate(net.layers) for key in layer.params]
        self.obs_var = None  # a learned or optimal σ_x²: one more parameter, after the networks'
        if config.obs_var_mode != "fixed":
            self.obs_var = ObservationVariance(config.obs_var, self.dtype)
            self._slots.append(("obs_var", None, self.obs_var, "log_var"))
        self.xp = np
        self._bind(self._gather(), np)
        self.rng = backend.default_rng(config.seed + 1, np)
        self._cache = None
        self._obs_step = self._obs_stat = None  # the σ_x² of the last forward (learned or optimal), for backward
        self._obs_fitted = False  # has an optimal σ_x² been fitted yet (by a step, or loaded)?
        self.stats = {}

    def _build_networks(self, config, rng):
        """(encoder, decoder) of this architecture, initialized from ``rng``."""
        d, z = config.input_dim, config.latent
        enc_out = 2 * z if config.model == "vae" else z
        if config.arch == "conv":
            init = config.init if config.init != "auto" else (
                "he" if config.activation in ("relu", "leaky_relu") else "glorot")
            return (conv_encoder(config.image_shape, config.channels, config.dense, enc_out, config.activation,
                                 rng=rng, init=init, dtype=self.dtype),
                    conv_decoder(config.image_shape, config.channels, z, config.activation, rng=rng,
                                 init=init, dtype=self.dtype))
        # The encoder's first layer never needs dL/dx: nothing upstream of the data learns.
        return (mlp([d, *config.hidden, enc_out], config.activation, rng=rng,
                    init=config.init, dtype=self.dtype, first_needs_dx=False),
                mlp([z, *reversed(config.hidden), d], config.activation, rng=rng,
                    init=config.init, dtype=self.dtype))

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
        """Every parameter by name (``"encoder.0.W"``, ``"obs_var.log_var"``), as views into ``theta``."""
        named = {f"{n}.{k}": v for n, net in (("encoder", self.encoder), ("decoder", self.decoder))
                 for k, v in net.params.items()}
        if self.obs_var is not None:
            named["obs_var.log_var"] = self.obs_var.params["log_var"]
        return named

    @property
    def grads(self):
        named = {f"{n}.{k}": v for n, net in (("encoder", self.encoder), ("decoder", self.decoder))
                 for k, v in net.grads.items()}
        if self.obs_var is not None:
            named["obs_var.log_var"] = self.obs_var.grads["log_var"]
        return named

    @property
    def max_rows(self):
        """Rows per forward pass that evaluation should not exceed (None: any). A conv model keeps about 100
        times the numbers per example an MLP keeps, and its work buffers grow to the largest batch they
        see; passes of at most ``CONV_MAX_ROWS`` keep them at their training size."""
        return CONV_MAX_ROWS if self.config.arch == "conv" else None

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
        self._obs_fitted = True  # loaded weights carry their σ_x²: an optimal one keeps averaging from there

    # ---- shared pieces of the forward pass

    def _check_x(self, x, validate):
        check_array(x, "x", shape=(None, self.config.input_dim), finite=validate)
        if x.shape[0] == 0:
            raise ShapeError(f"x: expected a batch of at least one example, shape (N, {self.config.input_dim}) "
                             f"with N >= 1, got shape {tuple(x.shape)}")
        if x.dtype != self.dtype:
            raise TypeError(f"x: expected dtype {self.dtype} to match the model, got {x.dtype}")
        if get_xp(x) is not self.xp:
            raise TypeError(f"x lives on another device than the model ({self.device}); move it with tinyvae.backend.to_device")

    def _check_noise(self, eps):
        """ε must match the model as x must: same dtype (float64 ε would make a float64 loss), same device."""
        check_array(eps, "eps", floating=True, finite=False)
        if eps.dtype != self.dtype:
            raise TypeError(f"eps: expected dtype {self.dtype} to match the model (as x must), got {eps.dtype}")
        if get_xp(eps) is not self.xp:
            raise TypeError(f"eps lives on another device than the model ({self.device}); move it with "
                            f"tinyvae.backend.to_device")

    def _reconstruction(self, out, x, validate, fit_obs_var=True):
        """(−log p(x|z) batch mean, its gradient w.r.t. ``out``); keeps what the σ_x² update needs."""
        cfg = self.config
        self._obs_step = self._obs_stat = None
        if cfg.likelihood == "bernoulli":
            return bernoulli_nll(out, x, validate=validate)
        if cfg.likelihood == "continuous-bernoulli":
            return continuous_bernoulli_nll(out, x, validate=validate)
        if cfg.obs_var_mode == "learned":
            recon, dout, dlog_var = gaussian_nll_learned_var(out, x, self.obs_var.params["log_var"], validate=validate)
            self._obs_step = ("grad", dlog_var)
            self._obs_stat = self.xp.exp(self.obs_var.params["log_var"][0])
            return recon, dout
        if cfg.obs_var_mode == "optimal" and fit_obs_var:
            recon, dout, obs_var = gaussian_nll_optimal_var(out, x, validate=validate)
            self._obs_step, self._obs_stat = ("set", obs_var), obs_var
            return recon, dout
        return gaussian_nll(out, x, self.observation_variance(), validate=validate)

    def _obs_var_backward(self):
        """The σ_x² parameter's part of a backward pass: its gradient (learned), or, for an optimal
        σ_x², a zero gradient [eq:sigma-vae-envelope] and its value moved to the running average of
        the batch optima (``OBS_VAR_AVERAGING``), which evaluation then uses."""
        if self._obs_step is None:
            if self.obs_var is not None:
                self.obs_var.grads["log_var"][...] = 0
            return
        kind, value = self._obs_step
        if kind == "grad":
            self.obs_var.grads["log_var"][...] = value  # [eq:sigma-vae-grad-logvar]
        else:  # σ_x² ← running average of the batch optima σ*² (the first step takes σ*² itself)
            log_var, a = self.obs_var.params["log_var"], OBS_VAR_AVERAGING if self._obs_fitted else 1.0
            log_var[...] = self.xp.log((1 - a) * self.xp.exp(log_var) + a * value)
            self.obs_var.grads["log_var"][...] = 0
            self._obs_fitted = True

    def observation_variance(self):
        """The Gaussian decoder's σ_x² as it stands (a float): the config's, or the learned or last fitted one."""
        if self.obs_var is None:
            return self.config.obs_var
        return float(np.exp(backend.to_numpy(self.obs_var.params["log_var"]).astype(np.float64)[0]))

    def log_likelihood(self, out, x):
        """log p(x | z) per example from the decoder's output ``out`` (logits or means, (..., D)),
        summed over the last axis: (N,) for (N, D), (S, N) for (S, N, D); ``x`` broadcasts.

        The model's density as it stands (a learned or optimal σ_x² at its current value): what the
        importance-weighted NLL of ``tinyvae.evaluate`` scores.
        """
        cfg = self.config
        if cfg.likelihood == "bernoulli":
            return bernoulli_log_prob(out, x)
        if cfg.likelihood == "continuous-bernoulli":
            return continuous_bernoulli_log_prob(out, x)
        return gaussian_log_prob(out, x, self.observation_variance())

    def _cached(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward: run forward(x) first")
        return self._cache

    def decode(self, z):
        """The decoder's mean image E[x | z]: σ(logits) for Bernoulli, the means for Gaussian, and for
        the continuous Bernoulli its mean σ(l) − d log C/dl, greyer than σ(l) [eq:cb-mean]."""
        check_array(z, "z", shape=(None, self.config.latent))
        out = self.decoder.forward(z)
        if self.config.likelihood == "bernoulli":
            return sigmoid(out)
        if self.config.likelihood == "continuous-bernoulli":
            return continuous_bernoulli_mean(out)
        return out

    def sample(self, n, rng=None):
        """Decode ``n`` draws z ~ N(0, I) (the prior). Returns mean images (n, D)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n: expected a positive integer number of samples, got {n!r}")
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
        """(ModelConfig, arrays) of the checkpoint at ``path``, every array and the config checked,
        nothing allocated yet: a config asking for an absurd model is refused here."""
        arrays = load_arrays(path, required=("format", "config", "theta"), texts=("format", "config"),
                             floats=("theta",))
        if str(arrays["format"]) != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path}: format {str(arrays['format'])!r} is not {CHECKPOINT_FORMAT!r}")
        stored = from_json_array(arrays["config"], path)
        unknown = sorted(set(stored) - {f.name for f in dataclasses.fields(ModelConfig)})
        if unknown:
            raise CheckpointError(f"{path}: stored config is not a valid model config: unknown fields {unknown} "
                                  f"(written by another version of tinyvae?)")
        try:
            config = ModelConfig(**stored)
        except (TypeError, ValueError) as err:
            problem = str(err).removeprefix("invalid model config: ")
            raise CheckpointError(f"{path}: stored config is not a valid model config: {problem}") from err
        if arrays["theta"].ndim != 1:
            raise CheckpointError(f"{path}: 'theta' must be one flat array of parameters, got shape "
                                  f"{arrays['theta'].shape}")
        return config, arrays

    def load_weights(self, path):
        """Load weights saved by a model of the same architecture; refuse any other."""
        config, arrays = self.read_config(path)
        mine, theirs = self.config.to_dict(), config.to_dict()
        ignore = WEIGHT_INDEPENDENT + (CONV_ONLY if mine.get("arch") == theirs.get("arch") == "mlp" else ())
        diff = {k: (theirs[k], mine[k]) for k in mine if k not in ignore and mine[k] != theirs.get(k)}
        if diff:
            raise CheckpointError(
                f"{path} holds a {config.describe()} ({arrays['theta'].size} parameters), "
                f"this model is a {self.config.describe()} ({self.num_params}); differences (file, model): {diff}")
        if arrays["theta"].shape != self.theta.shape:
            raise CheckpointError(
                f"{path}: holds {arrays['theta'].size} parameters, but its own config ({config.describe()}) "
                f"needs {self.num_params}; the file is damaged or was edited")
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
        if self.config.stochastic_layers != 1:
            raise ValueError(f"VAE has one stochastic layer; this config asks for {self.config.stochastic_layers} "
                             f"(build it with tinyvae.build_model, or load it with tinyvae.load_model)")
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

    def forward(self, x, eps=None, *, beta=None, validate=True, objective=None, fit_obs_var=True, free_bits=None):
        """The loss (0-d array, nats per example) of the batch ``x`` (N, D) with noise ``eps`` (N, Z).

        ``eps=None`` draws ε from the model's generator. Keeps what ``backward`` needs;
        ``self.stats`` gets the loss, the reconstruction term and the KL term (the true KL, also
        with free bits, where the loss charges Σ_j max(λ, KL_j) instead [eq:free-bits]), and
        ``obs_var`` for a learned or optimal σ_x². ``fit_obs_var``: an optimal σ_x² is the batch's
        optimum (training, the default); False scores with the model's current σ_x² (evaluation).
        ``beta`` and ``free_bits`` (λ) default to the config's; β = 1 and λ = 0 give the negative ELBO.
        ``objective`` (default ``config.objective``): "elbo", or "iwae", whose loss is −L_K with
        ``eps`` of shape (N, K, Z) (``tinyvae.iwae``, where its ``stats`` are described).
        """
        self._check_x(x, validate)
        if eps is not None:
            self._check_noise(eps)
        if (objective or self.config.objective) == "iwae":
            if beta is not None and float(beta) != 1:
                raise ValueError(f"the IWAE objective has no KL weight: beta must be 1 (or None), got {beta}")
            return iwae.forward(self, x, eps, validate)
        if objective not in (None, "elbo"):
            raise ValueError(f"objective must be one of {iwae.OBJECTIVES}, got {objective!r}")
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
        recon, dout = self._reconstruction(out, x, validate, fit_obs_var)
        kl, dmu_kl, dlog_var_kl = gaussian_kl(mu, log_var, validate=False)
        kl_term = kl
        free_bits = self.config.free_bits if free_bits is None else float(free_bits)
        if free_bits > 0:  # Σ_j max(λ, KL_j): the KL's gradients zeroed for the dimensions under λ  [eq:free-bits]
            kl_term, dmu_kl, dlog_var_kl, _ = apply_free_bits(mu, log_var, dmu_kl, dlog_var_kl, free_bits)
        loss = recon + beta * kl_term  # −ELBO when β = 1 and no free bits  [eq:vae-loss] [eq:elbo]
        self._cache = (dout, dmu_kl, dlog_var_kl, beta)
        self.stats = {"loss": loss, "recon": recon, "kl": kl}
        if self._obs_stat is not None:
            self.stats["obs_var"] = self._obs_stat
        return loss

    def backward(self):
        """Fill ``self.grad`` (every parameter's dL/dθ) from the last forward; returns it."""
        cache = self._cached()
        if isinstance(cache, iwae.Cache):
            return iwae.backward(self, cache)
        dout, dmu_kl, dlog_var_kl, beta = cache
        z_dim = self.config.latent
        dz = self.decoder.backward(dout)  # (N, Z)
        dmu, dlog_var = self.reparam.backward(dz)  # through z = μ + σ ⊙ ε
        dh = self.xp.empty((dz.shape[0], 2 * z_dim), dtype=self.dtype)  # (N, 2Z)
        dh[:, :z_dim] = dmu + beta * dmu_kl  # the KL term reaches μ and log σ² directly  [eq:encoder-output-grad]
        dh[:, z_dim:] = dlog_var + beta * dlog_var_kl
        self.encoder.backward(dh)
        self._obs_var_backward()
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

    def forward(self, x, eps=None, *, beta=None, validate=True, objective=None, fit_obs_var=True, free_bits=None):
        """The reconstruction loss of ``x``; ``eps``, ``beta``, ``objective`` and ``free_bits`` are accepted and
        ignored (``fit_obs_var`` as for the VAE)."""
        self._check_x(x, validate)
        z = self.encoder.forward(x)  # (N, Z)
        out = self.decoder.forward(z)  # (N, D)
        loss, dout = self._reconstruction(out, x, validate, fit_obs_var)  # [eq:ae-loss]
        self._cache = dout
        self.stats = {"loss": loss, "recon": loss, "kl": self.xp.zeros((), dtype=self.dtype)}
        if self._obs_stat is not None:
            self.stats["obs_var"] = self._obs_stat
        return loss

    def backward(self):
        dout = self._cached()
        dz = self.decoder.backward(dout)
        self.encoder.backward(dz)
        self._obs_var_backward()
        return self.grad


def build_model(config):
    """A VAE, a VAE with two stochastic layers or an Autoencoder from a ``ModelConfig``."""
    if config.stochastic_layers == 2:
        from .two_layer import TwoLayerVAE  # noqa: PLC0415  (it builds on _Model, defined here)
        return TwoLayerVAE(config)
    return VAE(config) if config.model == "vae" else Autoencoder(config)


def load_model(path, device="cpu"):
    """Rebuild the model saved at ``path`` (architecture from its stored config) on ``device``."""
    config, _ = _Model.read_config(path)
    model = build_model(config)
    model.load_weights(path)
    return model.to(device)
