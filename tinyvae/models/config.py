"""What a model is: ``ModelConfig``, the dataclass stored beside the weights in every checkpoint, and
its validation (each field's type and range, which options go together, and sizes that fit in memory).

A config is checked when it is made: a bad one is refused with every problem named, before anything
is allocated. The parts a config selects are assembled in ``tinyvae/models/vae.py``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import numpy as np

from ..checks import field_problems
from ..nn import ACTIVATIONS
from ..nn.convnet import conv_size_problem, feature_shape
from . import conditioning
from . import flow_sizes
from .hierarchy import describe as hierarchy_describe
from .hierarchy import HIDDEN2, hierarchy_problems, stored_fields
from .hierarchy import parameter_count as hierarchy_parameter_count

LIKELIHOODS = ("bernoulli", "gaussian", "continuous-bernoulli")
OBS_VAR_MODES = ("fixed", "learned", "optimal")  # the Gaussian decoder's σ_x²: see derivations/sigma-vae.md
# An optimal σ_x² is each training batch's MSE; the model keeps, for evaluation, a running average of them
# with this weight on the newest: the MSE over roughly the last 100 batches, steadier than the last one alone.
OBS_VAR_AVERAGING = 0.01
OBJECTIVES = ("elbo", "iwae")  # the ELBO, or the importance-weighted bound L_K (tinyvae/models/parts/iwae.py)
MODELS = ("vae", "ae", "cvae", "quadrant-regressor")  # the last two: conditional models (models/conditional.py)
LATENT_MODELS = ("vae", "cvae")  # the models with a latent z and so an ε per example (the others are deterministic)
ARCHS = ("mlp", "conv")  # dense layers, or the Keras example's convolutions (tinyvae/nn/convnet.py)
# Fields that only the conv architecture reads: an MLP ignores them (and load_weights does too).
CONV_ONLY = ("channels", "dense", "image_shape")
CONV_MAX_ROWS = 128  # see Model.max_rows
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
    objective: str = "elbo"  # "elbo", or "iwae": the importance-weighted bound L_K (models/parts/iwae.py)
    k: int = 1  # K, importance samples per example of the IWAE objective (the ELBO takes 1)
    stochastic_layers: int = 1  # 1: z ~ q(z|x); 2: z1 (latent units) and z2 (latent2), models/two_layer.py
    latent2: int = 0  # Z2, units of the upper stochastic layer z2 (two stochastic layers only)
    hidden2: tuple = HIDDEN2  # widths between z1 and z2, in q(z2|z1) and (reversed) p(z1|z2); two layers only
    condition: str = "none"  # conditional models: "label" (one-hot y) or "quadrants" (seen pixels and mask)
    classes: int = 10  # condition "label": the one-hot width, labels 0 .. classes − 1
    quadrants: int = 0  # condition "quadrants": how many quadrants of each image are seen, 1, 2 or 3
    flow: str = "none"  # posterior: "none" (diagonal Gaussian), "planar" or "iaf" flow after it (models/flow_vae.py)
    flow_steps: int = 0  # T, the flow's steps (>= 1 with a flow)
    flow_hidden: int = 0  # iaf: width (>= latent - 1) of each step's masked hidden layer and of the encoder's context h

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
        problems += hierarchy_problems(self)
        problems += conditioning.condition_problems(self)
        problems += flow_sizes.flow_problems(self)
        if not problems:
            problems.extend(self._size_problems())  # before anything is allocated
        if problems:
            raise ValueError("invalid model config: " + "; ".join(problems))

    def parameter_count(self):
        """Weights and biases of encoder and decoder, counted from the sizes without allocating anything."""
        if self.stochastic_layers == 2:
            return hierarchy_parameter_count(self)
        if conditioning.is_conditional(self):
            return conditioning.parameter_count(self)
        enc_out = 2 * self.latent + flow_sizes.context_width(self) if self.model == "vae" else self.latent
        if self.arch == "conv":
            return conv_parameter_count(self, enc_out) + (self.obs_var_mode != "fixed")
        count = flow_sizes.parameter_count(self)
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
        return conditioning.stored_fields(self, flow_sizes.stored_flow_fields(self, stored_fields(self, d)))

    def describe(self):
        if self.stochastic_layers == 2:
            return hierarchy_describe(self)
        if conditioning.is_conditional(self):
            return conditioning.describe(self)
        sizes = "-".join(map(str, (self.input_dim, *self.hidden, self.latent)))
        if self.arch == "conv":
            rows, cols = self.image_shape
            sizes = "-".join([f"conv {rows}x{cols}", *(f"c{c}" for c in self.channels),
                              *([f"d{self.dense}"] if self.dense else []), f"z{self.latent}"])
        text = f"{self.model} {sizes} {self.activation} {self.likelihood}"
        if self.obs_var_mode != "fixed":
            text += f" (σ_x² {self.obs_var_mode})"
        return text + (f" free bits {self.free_bits:g}" if self.free_bits else "") + flow_sizes.describe(self)


def objective_problems(objective, k, model="vae", beta=1.0):
    """What is wrong with an (objective, K) pair, one sentence each ([] when nothing is)."""
    if objective not in OBJECTIVES:
        return [f"objective must be one of {OBJECTIVES}, got {objective!r}"]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        return [f"k (importance samples per example) must be an integer >= 1, got {k!r}"]
    if objective == "elbo" and k != 1:
        return [f"k = {k} importance samples needs objective 'iwae'; the ELBO objective takes one sample "
                f"(k = 1)"]
    if objective == "iwae" and model in conditioning.CONDITIONAL_MODELS:
        return [f"the conditional models are built for objective 'elbo', got 'iwae' (model {model!r}): drop "
                f"--objective iwae"]
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
    elif config.free_bits > 0 and config.model not in LATENT_MODELS:
        problems.append(f"free_bits acts on the KL term of a VAE; the {config.model!r} model has none "
                        f"(got free_bits={config.free_bits:g})")
    objective = getattr(config, "objective", "elbo")
    if objective != "elbo" and (config.likelihood == "continuous-bernoulli" or config.obs_var_mode != "fixed"
                                or config.free_bits > 0):
        problems.append(f"objective {objective!r} supports the bernoulli and fixed-variance gaussian likelihoods "
                        f"without free bits; got likelihood={config.likelihood!r}, obs_var_mode="
                        f"{config.obs_var_mode!r}, free_bits={config.free_bits:g}")
    return problems
