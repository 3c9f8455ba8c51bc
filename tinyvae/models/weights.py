"""A model's checkpoint file (format ``tinyvae-model-1``): its config as JSON and its weights as one
flat array ``theta``, beside whatever training state the caller adds; read with every array and the
config checked before anything is allocated, and loaded only into a model of the same architecture.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import backend
from ..checkpoint import CheckpointError, from_json_array, json_array, load_arrays, save_arrays
from .conditioning import is_conditional
from .config import CHECKPOINT_FORMAT, CONV_ONLY, WEIGHT_INDEPENDENT, ModelConfig


def save_model(model, path, extra=None):
    """Write the weights and the config to ``path`` (.npz, atomically)."""
    arrays = {"format": np.array(CHECKPOINT_FORMAT), "config": json_array(model.config.to_dict()),
              "theta": backend.to_numpy(model.theta)}
    arrays.update(extra or {})
    return save_arrays(path, arrays)


def read_model_config(path):
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


def load_weights(model, path):
    """Load weights saved by a model of the same architecture; refuse any other."""
    config, arrays = read_model_config(path)
    mine, theirs = _every_field(model.config), _every_field(config)
    ignore = WEIGHT_INDEPENDENT + (CONV_ONLY if mine.get("arch") == theirs.get("arch") == "mlp" else ())
    diff = {k: (theirs[k], mine[k]) for k in mine if k not in ignore and mine[k] != theirs.get(k)}
    if is_conditional(config) != is_conditional(model.config):
        def what(c):
            return (f"a conditional {c.model} (condition {c.condition!r})" if is_conditional(c)
                    else f"an unconditional {c.model}")
        raise CheckpointError(
            f"{path} holds {what(config)}, but this model is {what(model.config)}: a conditional model's networks "
            f"read the condition beside x and z, so the weights cannot be shared; load the file with "
            f"tinyvae.load_model, which builds the model the file describes")
    if config.stochastic_layers != model.config.stochastic_layers:
        raise CheckpointError(
            f"{path} holds {_layers(config)} ({config.describe()}, {arrays['theta'].size} parameters), but this "
            f"model is {_layers(model.config)} ({model.config.describe()}, {model.num_params} parameters): a VAE "
            f"with two stochastic layers has networks between z1 and z2, q(z2|z1) and p(z1|z2), that a one-layer "
            f"model lacks, so the weights cannot be shared; load the file with tinyvae.load_model('{path}'), which "
            f"builds the model the file describes")
    if diff:
        raise CheckpointError(
            f"{path} holds a {config.describe()} ({arrays['theta'].size} parameters), "
            f"this model is a {model.config.describe()} ({model.num_params}); differences (file, model): {diff}")
    if arrays["theta"].shape != model.theta.shape:
        raise CheckpointError(
            f"{path}: holds {arrays['theta'].size} parameters, but its own config ({config.describe()}) "
            f"needs {model.num_params}; the file is damaged or was edited")
    model.set_theta(arrays["theta"])
    return arrays


def _layers(config):
    """What a config builds, by its stochastic layers: 'a VAE with two stochastic layers'."""
    if config.stochastic_layers == 2:
        return "a VAE with two stochastic layers"
    return "a VAE with one stochastic layer" if config.model == "vae" else "an autoencoder (no stochastic layer)"


def _every_field(config):
    """Every field of a ModelConfig, sequences as lists: what ``load_weights`` compares (``to_dict`` leaves
    out the fields of two stochastic layers when a one-layer config has them at their defaults)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
