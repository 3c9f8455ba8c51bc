"""What every model shares: its networks, one parameter buffer, its device, and its checkpoint file.

All parameters of a model live in one contiguous buffer ``theta`` and all gradients in one
buffer ``grad`` of the same layout; each layer's ``params``/``grads`` entries are views into
them. The optimizers then update every parameter with a few vectorized operations, and moving a
model to the GPU is a single copy. The order in ``theta`` (encoder, decoder, a flow's steps, then a learned or
optimal σ_x²) is the checkpoint format ``tinyvae-model-1`` (``weights.py``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import backend
from ..backend import get_xp
from ..checkpoint import CheckpointError
from ..checks import ShapeError, check_array
from ..nn import mlp
from ..nn.convnet import conv_decoder, conv_encoder
from .config import CONV_MAX_ROWS, ModelConfig
from .flow_sizes import context_width
from .parts.likelihoods import make_likelihood
from .weights import load_weights, read_model_config, save_model


def build_networks(config, dtype, rng):
    """The encoder and decoder networks a config describes: (encoder, decoder).

    The encoder's output is 2Z wide for a VAE ([μ | log σ²]) and Z for an autoencoder's code.
    """
    d, z = config.input_dim, config.latent
    enc_out = 2 * z + context_width(config) if config.model == "vae" else z  # a flow's context h after [μ | log σ²]
    if config.arch == "conv":
        init = config.init if config.init != "auto" else (
            "he" if config.activation in ("relu", "leaky_relu") else "glorot")
        encoder = conv_encoder(config.image_shape, config.channels, config.dense, enc_out, config.activation,
                               rng=rng, init=init, dtype=dtype)
        decoder = conv_decoder(config.image_shape, config.channels, z, config.activation, rng=rng,
                               init=init, dtype=dtype)
        return encoder, decoder
    # The encoder's first layer never needs dL/dx: nothing upstream of the data learns.
    encoder = mlp([d, *config.hidden, enc_out], config.activation, rng=rng,
                  init=config.init, dtype=dtype, first_needs_dx=False)
    decoder = mlp([z, *reversed(config.hidden), d], config.activation, rng=rng, init=config.init, dtype=dtype)
    return encoder, decoder


class Model:
    """What the VAE and the autoencoder share: the networks, one parameter buffer, I/O."""

    kind = None  # the config.model a subclass builds ("vae", "ae")
    # True for a model whose forward reads each example's class, forward(x, eps, labels=y) with y (N,) integers:
    # the training loop and ``evaluate_elbo`` then pass the batch's labels beside its images
    needs_labels = False

    def __init__(self, config=None, **overrides):
        if config is None and self.kind is not None:
            overrides.setdefault("model", self.kind)
        config = dataclasses.replace(config, **overrides) if config else ModelConfig(**overrides)
        if self.kind is not None and config.model != self.kind:
            raise ValueError(f"{type(self).__name__} needs config.model == {self.kind!r}, got {config.model!r}")
        self.config = config
        self.dtype = np.dtype(config.dtype)
        rng = np.random.default_rng(config.seed)  # host generator: same weights on every backend
        self.encoder, self.decoder = self._build_networks(config, rng)
        self.likelihood = make_likelihood(config, self.dtype)  # p(x|z), with its σ_x² if it has one
        self._slots = [(name, net, layer, key)
                       for name, net in self._named_networks()
                       for i, layer in enumerate(net.layers) for key in layer.params]
        if self.obs_var is not None:  # a learned or optimal σ_x²: one more parameter, after the networks'
            self._slots.append(("obs_var", None, self.obs_var, "log_var"))
        self.xp = np
        self._bind(self._gather(), np)
        self.rng = backend.default_rng(config.seed + 1, np)
        self._cache = None
        self.stats = {}

    def _build_networks(self, config, rng):
        """(encoder, decoder) of this model, initialized from ``rng``; a model family with other networks
        (``two_layer.TwoLayerVAE``) overrides it and returns its own parameter containers."""
        return build_networks(config, self.dtype, rng)

    def _named_networks(self):
        """(name, parameter container) in the order of ``theta``; a model with more parts (a flow) adds them."""
        return [("encoder", self.encoder), ("decoder", self.decoder)]

    @property
    def obs_var(self):
        """The parameter part holding a learned or optimal log σ_x² (``params["log_var"]``), else None."""
        return self.likelihood.params_part

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
        for _, net in self._named_networks():
            net._refresh()
        self.xp = xp

    @property
    def params(self):
        """Every parameter by name (``"encoder.0.W"``, ``"obs_var.log_var"``), as views into ``theta``."""
        named = {f"{n}.{k}": v for n, net in self._named_networks() for k, v in net.params.items()}
        if self.obs_var is not None:
            named["obs_var.log_var"] = self.obs_var.params["log_var"]
        return named

    @property
    def grads(self):
        named = {f"{n}.{k}": v for n, net in self._named_networks() for k, v in net.grads.items()}
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
        self.likelihood.loaded()  # loaded weights carry their σ_x²: an optimal one keeps averaging from there

    # ---- shared pieces of the forward pass

    def _check_x(self, x, validate):
        check_batch(self, x, validate)

    def _check_noise(self, eps):
        check_noise(self, eps)

    def observation_variance(self):
        """The Gaussian decoder's σ_x² as it stands (a float): the config's, or the learned or last fitted one."""
        return self.likelihood.variance()

    def log_likelihood(self, out, x):
        """log p(x | z) per example from the decoder's output ``out`` (logits or means, (..., D)),
        summed over the last axis: (N,) for (N, D), (S, N) for (S, N, D); ``x`` broadcasts.

        The model's density as it stands (a learned or optimal σ_x² at its current value): what the
        importance-weighted NLL of ``tinyvae.evaluate`` scores.
        """
        return self.likelihood.log_prob(out, x)

    def _cached(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward: run forward(x) first")
        return self._cache

    def decode(self, z):
        """The decoder's mean image E[x | z]: σ(logits) for Bernoulli, the means for Gaussian, and for
        the continuous Bernoulli its mean σ(l) − d log C/dl, greyer than σ(l) [eq:cb-mean]."""
        check_array(z, "z", shape=(None, self.config.latent))
        return self.likelihood.mean(self.decoder.forward(z))

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

    # ---- save and load (models/weights.py)

    def save(self, path, extra=None):
        """Write the weights and the config to ``path`` (.npz, atomically)."""
        return save_model(self, path, extra)

    @classmethod
    def read_config(cls, path):
        """(ModelConfig, arrays) of the checkpoint at ``path``, checked, nothing allocated yet."""
        return read_model_config(path)

    def load_weights(self, path):
        """Load weights saved by a model of the same architecture; refuse any other."""
        return load_weights(self, path)


def check_batch(model, x, validate):
    """x must be a non-empty (N, D) batch of the model's dtype, on the model's device."""
    check_array(x, "x", shape=(None, model.config.input_dim), finite=validate)
    if x.shape[0] == 0:
        raise ShapeError(f"x: expected a batch of at least one example, shape (N, {model.config.input_dim}) "
                         f"with N >= 1, got shape {tuple(x.shape)}")
    if x.dtype != model.dtype:
        raise TypeError(f"x: expected dtype {model.dtype} to match the model, got {x.dtype}")
    if get_xp(x) is not model.xp:
        raise TypeError(f"x lives on another device than the model ({model.device}); move it with tinyvae.backend.to_device")


def check_noise(model, eps):
    """ε must match the model as x must: same dtype (float64 ε would make a float64 loss), same device."""
    check_array(eps, "eps", floating=True, finite=False)
    if eps.dtype != model.dtype:
        raise TypeError(f"eps: expected dtype {model.dtype} to match the model (as x must), got {eps.dtype}")
    if get_xp(eps) is not model.xp:
        raise TypeError(f"eps lives on another device than the model ({model.device}); move it with "
                        f"tinyvae.backend.to_device")
