"""What a training run is: ``TrainConfig``, stored in config.json and in every checkpoint, and its
validation (each field's type and range, which options go together), the published presets, and
the learning-rate schedule of an epoch.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass

import numpy as np

from .. import backend
from ..checks import field_problems
from ..data import BINARIZE_MODES
from ..errors import UserError
from ..models.config import (ARCHS, LIKELIHOODS, MODELS, ModelConfig, architecture_problems, likelihood_problems,
                             objective_problems)
from ..models import conditioning
from ..models.flow_sizes import flow_problems, stored_flow_fields
from ..models.hierarchy import HIDDEN2, hierarchy_problems, stored_fields
from ..nn import ACTIVATIONS

OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("constant", "iwae-paper")
OUTPUT_BIASES = ("zero", "data-mean")

# Burda, Grosse & Salakhutdinov (2015, sec. 5): 3^i passes at 0.001 · 10^(-i/7), i = 0..7 (3,280 passes),
# Adam β1 0.9, β2 0.999, ε 1e-4; 784-200-200-50 tanh, dynamic binarization, output bias at the data mean.
PRESETS = {
    "iwae-paper": dict(hidden=(200, 200), latent=50, activation="tanh", init="glorot", binarize="dynamic",
                       lr=1e-3, lr_schedule="iwae-paper", adam_eps=1e-4, output_bias="data-mean", epochs=3280),
}
# What a preset becomes with --stochastic-layers 2: the paper's two-layer sizes (yburda/iwae, experiments.py),
# z1 100 and z2 50 units, 100-100 between them; the rest of the preset stays.
TWO_LAYER_PRESETS = {"iwae-paper": dict(latent=100, latent2=50, hidden2=(100, 100))}

# The test (and validation) images of a binarized run get one fixed binarization, the same for
# every run whatever its seed, so that test figures of different runs are comparable.
EVAL_BINARIZE_SEED = 2014
INITS = ("auto", "he", "glorot", "uniform")


class ConfigError(UserError, ValueError):
    """An impossible training config, or a resume that contradicts the stored one."""


@dataclass
class TrainConfig:
    """Everything a training run depends on; stored in config.json and in every checkpoint."""

    # the model (see vae.ModelConfig)
    model: str = "vae"  # "vae", or "ae" for a plain autoencoder
    hidden: tuple = (400,)  # widths of the encoder's hidden layers (the decoder mirrors them); () is linear
    arch: str = "mlp"  # "mlp" (dense layers), or "conv": the Keras example's convolutional VAE (layers/convnet.py)
    channels: tuple = (32, 64)  # conv: channels of the encoder's stride-2 convolutions (the decoder mirrors them)
    dense: int = 16  # conv: width of the dense layer before (μ, log σ²); 0: none
    latent: int = 20  # Z, latent dimensions
    activation: str = "relu"  # relu, leaky_relu, tanh, sigmoid, softplus
    likelihood: str = "bernoulli"  # decoder: "bernoulli" (binary cross-entropy), "continuous-bernoulli" or "gaussian"
    beta: float = 1.0  # weight of the KL term; 1 trains on the ELBO
    obs_var: float = 1.0  # the Gaussian likelihood's variance σ_x² (the starting value when learned)
    obs_var_mode: str = "fixed"  # σ_x²: "fixed" (obs_var), "learned" (trained), "optimal" (each batch's MSE)
    free_bits: float = 0.0  # λ: nats per latent dimension that the KL term leaves free (0: none)
    init: str = "uniform"  # weights: "uniform" (U(±1/sqrt(fan_in)), as PyTorch's nn.Linear and so the
    # pytorch/examples VAE: 105.5 nats after 10 epochs here), "auto" (ReLU: He, Glorot on the output layer; else
    # Glorot; derivations/dense.md), "he", "glorot"
    # the optimization
    epochs: int = 10  # passes over the training set
    batch_size: int = 128  # examples per step; the last, partial batch of an epoch is kept
    lr: float = 1e-3  # learning rate
    optimizer: str = "adam"  # "adam" (PyTorch defaults) or "sgd" (momentum 0.9)
    kl_warmup: float = 0.0  # epochs over which β grows linearly, step by step, from 0 to beta
    lr_schedule: str = "constant"  # "constant", or "iwae-paper": 3^i epochs at lr·10^(-i/7), i = 0, 1, ...
    adam_eps: float = 1e-8  # Adam's ε (PyTorch's default; the IWAE paper used 1e-4)
    output_bias: str = "zero"  # decoder output bias at start: "zero" or "data-mean" (logit of each pixel's mean)
    objective: str = "elbo"  # "elbo", or "iwae": the importance-weighted bound L_K with k samples (tinyvae/iwae.py);
    # with "iwae", train_loss in the metrics is −L_K (train_recon + train_kl: the k-sample negative ELBO) and the
    # test_* and val_* figures stay the negative ELBO
    k: int = 1  # importance samples per example for objective "iwae" (k = 1: the ELBO, its KL by Monte Carlo)
    stochastic_layers: int = 1  # 1, or 2: z1 (latent units) and z2 (latent2 units), models/two_layer.py
    latent2: int = 0  # Z2, units of z2 (two stochastic layers only; --latent Z1 Z2 sets both)
    hidden2: tuple = HIDDEN2  # widths between z1 and z2 in q(z2|z1) and p(z1|z2) (two stochastic layers only)
    condition: str = "none"  # model "cvae": "label" (one-hot y) or "quadrants"; "quadrant-regressor": "quadrants"
    classes: int = 10  # condition "label": labels 0 .. classes − 1 (MNIST's ten digits)
    quadrants: int = 0  # condition "quadrants": quadrants of each image seen, 1, 2 or 3 (models/conditioning.py)
    flow: str = "none"  # posterior: "none" (diagonal Gaussian), or a "planar" or "iaf" flow after it
    flow_steps: int = 0  # T, the flow's steps (>= 1 with a flow)
    flow_hidden: int = 0  # iaf: width (>= latent - 1) of each step's masked hidden layer and of the encoder's context h
    # the data
    binarize: str = "none"  # "none" (grey levels), "static" (one sample at load), "dynamic" (fresh per batch)
    validation: int = 0  # training examples held out as a validation set
    data: str | None = None  # folder of MNIST-format IDX files; None is the bundled MNIST
    limit_train: int = 0  # use only the first N training examples (0: all); for quick tests
    limit_test: int = 0  # evaluate on the first N test examples only (0: all)
    # where and how
    device: str = "cpu"  # "cpu" (NumPy) or "gpu" (CuPy)
    seed: int = 0  # initial weights, data order, every ε: the whole run
    out: str | None = None  # run folder; None makes runs/<date-time>-<model>-z<latent>

    def __post_init__(self):
        problems = list(field_problems(self).values())  # each field's type, by its default (new fields too)
        if problems:
            raise ConfigError("invalid training config: " + "; ".join(problems))

        def count(name, low):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                problems.append(f"{name} must be an integer >= {low}, got {value!r}")
            else:
                setattr(self, name, int(value))

        def number(name, ok, what):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not ok(float(value)):
                problems.append(f"{name} must be {what}, got {value!r}")
            else:
                setattr(self, name, float(value))

        for name, choices in (("model", MODELS), ("activation", tuple(sorted(ACTIVATIONS))),
                              ("likelihood", LIKELIHOODS), ("init", INITS), ("optimizer", OPTIMIZERS),
                              ("binarize", BINARIZE_MODES), ("device", backend.DEVICES),
                              ("lr_schedule", LR_SCHEDULES), ("output_bias", OUTPUT_BIASES), ("arch", ARCHS)):
            if getattr(self, name) not in choices:
                problems.append(f"{name} must be one of {choices}, got {getattr(self, name)!r}")
        for name, low in (("latent", 1), ("epochs", 1), ("batch_size", 1), ("validation", 0), ("seed", 0),
                          ("limit_train", 0), ("limit_test", 0)):
            count(name, low)
        try:
            self.hidden = tuple(self.hidden)
        except TypeError:
            self.hidden = (self.hidden,)
        if any(isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1 for h in self.hidden):
            problems.append(f"hidden must be positive integer widths, got {self.hidden!r}")
        else:
            self.hidden = tuple(int(h) for h in self.hidden)
        number("lr", lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
        number("beta", lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")
        number("adam_eps", lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
        number("obs_var", lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
        number("kl_warmup", lambda v: math.isfinite(v) and v >= 0, "a finite number of epochs >= 0")
        problems.extend(objective_problems(self.objective, self.k, self.model, self.beta))
        problems.extend(likelihood_problems(self))
        if self.arch in ARCHS:
            problems.extend(architecture_problems(self))
        if self.arch == "conv" and self.output_bias == "data-mean":
            problems.append("output_bias 'data-mean' sets one bias per pixel, but the conv decoder's last layer has "
                            "one bias per channel; use output_bias 'zero' with arch 'conv'")
        problems.extend(hierarchy_problems(self))
        problems.extend(conditioning.condition_problems(self))
        problems.extend(flow_problems(self))
        if self.stochastic_layers == 2 and self.kl_warmup:
            problems.append(f"kl_warmup ramps the one-layer ELBO's closed-form KL; two stochastic layers sample every "
                            f"term and have no KL weight, so kl_warmup must be 0, got {self.kl_warmup:g}")
        if self.objective == "iwae" and self.kl_warmup:
            problems.append(f"kl_warmup ramps the ELBO's KL weight; the IWAE bound has none, so kl_warmup must be 0 "
                            f"with objective 'iwae', got {self.kl_warmup:g}")
        for name in ("data", "out"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (str, os.PathLike)):
                problems.append(f"{name} must be a folder path or None, got {value!r}")
            elif value is not None:
                setattr(self, name, str(value))
        if problems:
            raise ConfigError("invalid training config: " + "; ".join(problems))

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return conditioning.stored_fields(self, stored_flow_fields(self, stored_fields(self, d)))

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict):
            raise ConfigError(f"a training config must be a JSON object (field: value), got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown training config fields {unknown}; known: {sorted(known)}")
        return cls(**d)

    def model_config(self, input_dim, image_shape=None):
        """The ModelConfig of this run for images of ``input_dim`` pixels, (rows, cols) = ``image_shape``."""
        try:
            return self._model_config(input_dim, image_shape)
        except ValueError as err:  # e.g. sizes giving an absurd number of parameters: refused before allocating
            raise ConfigError(str(err)) from err

    def _model_config(self, input_dim, image_shape):
        conv = {"channels": self.channels, "dense": self.dense}
        if self.arch == "conv" or self.condition == "quadrants":  # the quadrants are cut from (rows, cols)
            conv["image_shape"] = tuple(image_shape) if image_shape is not None else (1, int(input_dim))
        return ModelConfig(model=self.model, input_dim=int(input_dim), hidden=self.hidden, latent=self.latent,
                           arch=self.arch, **conv,
                           activation=self.activation, likelihood=self.likelihood, obs_var=self.obs_var,
                           obs_var_mode=self.obs_var_mode, free_bits=self.free_bits,
                           beta=self.beta, init=self.init, seed=self.seed, dtype="float32",
                           objective=self.objective, k=self.k, stochastic_layers=self.stochastic_layers,
                           latent2=self.latent2, hidden2=self.hidden2, condition=self.condition,
                           classes=self.classes, quadrants=self.quadrants,
                           flow=self.flow, flow_steps=self.flow_steps, flow_hidden=self.flow_hidden)


def epoch_lr(config, epoch):
    """The learning rate of ``epoch`` (from 1): constant, or the IWAE paper's schedule, in which
    stage i = 0, 1, ... lasts 3^i epochs at lr · 10^(-i/7) (the last stage lasts as long as needed)."""
    if config.lr_schedule == "constant":
        return config.lr
    i, end = 0, 1
    while epoch > end:
        i += 1
        end += 3 ** i
    return config.lr * 10.0 ** (-i / 7)
