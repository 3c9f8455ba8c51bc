"""tinyvae: a Variational Autoencoder in NumPy, every backward pass by hand and gradient-checked.

The package in one paragraph, each folder importing only from those before it: the floor that every
room reaches (``backend``: NumPy or CuPy; ``checks``: argument checks; ``errors``; ``checkpoint``:
plain-array files; ``data``: MNIST and any IDX data; ``arguments``: the command line's flag
conventions); ``nn/``, the building blocks (layers with their backward passes, optimizers);
``prob/``, the probability pieces (likelihoods, the Gaussian KL, free bits, the continuous
Bernoulli); ``models/``, the models assembled from parts (``config``: what a model is and its
validation; ``parts/``: the encoder giving q(z|x), the prior, the decoder's likelihood, the
objectives ELBO and IWAE, a Gaussian layer of a hierarchy; ``vae``: the VAE and the autoencoder;
``two_layer``: the VAE with two stochastic layers, ``hierarchy`` its sizes; ``flow_vae``: the VAE whose
posterior is a planar or inverse autoregressive flow, ``flow_sizes`` its config fields; ``conditional``: the
conditional VAE and the quadrant regressor, ``conditioning`` their config fields; ``m2``: the
semi-supervised VAE M2 with its classifier q(y|x); ``ppca``: the linear VAE and probabilistic PCA);
``evaluation/``, the bounds, the importance-weighted NLL and the pictures;
``learn/``, the learner's tools (the gradient checker, the exercises with their checker, the reference
solutions); ``run/``, running (the training loop, the run folder, stopping, M2's training on a few
labels, the ``tinyvae`` command); and ``pretrained/``, small trained models with the recipes that rebuild them. The math
behind each piece is in the repository's ``derivations/`` folder, cited from the code as
``# [eq:...]``.

The public API is the list below, plus the modules ``tinyvae.data`` (MNIST and any IDX data),
``tinyvae.plots`` (the pictures), ``tinyvae.evaluate`` (the evaluation's helpers), ``tinyvae.exercises``
(graded backward passes) and ``tinyvae.pretrained`` (small trained models bundled with the package,
each with its recipe); a notebook needs nothing else.
"""

import os as _os
import sys as _sys

# OpenBLAS's worker threads spin for a while after each matrix product before they sleep, and the
# optimizer's own threads (backend.run_split) would compete with them for the cores. A short spin
# lets them sleep at once. Measured on two cores, an epoch at batch 32 (where the optimizer's
# threads run most often) took a median 0.77 times as long as with OpenBLAS's default spin.
# It acts only when NumPy is not imported yet and never overrides a value you set.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from .backend import default_rng, get_xp, to_device, to_numpy
from .checkpoint import CheckpointError
from .learn.gradcheck import (GradcheckReport, check_gradients, check_layer, check_loss, check_model,
                              check_reparameterize, numerical_gradient)
from .nn import Dense, LeakyReLU, ReLU, Sequential, Sigmoid, Softplus, Tanh, mlp, sigmoid
from .nn import Conv2d, ConvTranspose2d, Flatten, Unflatten, col2im, conv2d_adjoint, im2col
from .prob.losses import (bernoulli_log_prob, bernoulli_nll, gaussian_kl, gaussian_kl_per_dim, gaussian_log_prob,
                          gaussian_nll, log_normal_density)
from .prob.losses import free_bits_kl, gaussian_nll_learned_var, gaussian_nll_optimal_var
from .prob.continuous_bernoulli import continuous_bernoulli_log_prob, continuous_bernoulli_nll
from .prob.continuous_bernoulli import log_normalizer as continuous_bernoulli_log_normalizer
from .prob.continuous_bernoulli import mean as continuous_bernoulli_mean
from .nn.optim import SGD, Adam
from .models.config import ModelConfig
from .models.parts.encoders import Reparameterize
from .models.vae import VAE, Autoencoder, build_model, load_model
from .models.two_layer import TwoLayerVAE
from .models.conditional import ConditionalVAE, QuadrantRegressor
from .models.m2 import M2, M2Config
from .models.flow_vae import FlowVAE
from .models.parts.flows import Flow, PlanarStep
from .run.train import TrainConfig, resume, train
from .run.semi import SemiConfig, train_classifier_alone, train_m2
from .evaluation.evaluate import (active_units, evaluate_checkpoint, evaluate_elbo, importance_weighted_bounds,
                                  importance_weighted_nll, kl_per_dimension, log_mean_exp)
from .evaluation.conditional import conditional_nll
from .models.ppca import PPCA, fit_linear_vae, linear_vae_elbo, linear_vae_from_ppca, ppca_fit, ppca_log_likelihood

# The modules users import by their short names (`from tinyvae import plots`, `python -m tinyvae.exercises`,
# the `tinyvae` script's `tinyvae.cli:main`) are the modules of the folders, under a second name.
from . import data
from .evaluation import evaluate, plots
from .learn import exercises
from .run import cli

for _module in (evaluate, plots, exercises, cli):
    _sys.modules[f"{__name__}.{_module.__name__.rsplit('.', 1)[1]}"] = _module
del _module

__version__ = "0.1.0"

__all__ = [
    "TrainConfig", "train", "resume",
    "active_units", "evaluate_checkpoint", "evaluate_elbo", "importance_weighted_bounds", "importance_weighted_nll",
    "kl_per_dimension",
    "log_mean_exp",
    "PPCA", "fit_linear_vae", "linear_vae_elbo", "linear_vae_from_ppca", "ppca_fit", "ppca_log_likelihood",
    "Adam", "Autoencoder", "CheckpointError", "Dense", "GradcheckReport", "LeakyReLU", "ModelConfig",
    "ReLU", "Reparameterize", "SGD", "Sequential", "Sigmoid", "Softplus", "Tanh", "TwoLayerVAE", "VAE",
    "Conv2d", "ConvTranspose2d", "Flatten", "Unflatten", "col2im", "conv2d_adjoint", "im2col",
    "bernoulli_log_prob", "bernoulli_nll", "build_model", "check_gradients", "check_layer", "check_loss",
    "check_model", "check_reparameterize", "default_rng", "gaussian_kl", "gaussian_kl_per_dim",
    "gaussian_log_prob", "gaussian_nll", "get_xp", "load_model", "log_normal_density", "mlp",
    "numerical_gradient", "sigmoid", "to_device", "to_numpy",
    "continuous_bernoulli_log_normalizer", "continuous_bernoulli_log_prob", "continuous_bernoulli_mean",
    "continuous_bernoulli_nll", "free_bits_kl", "gaussian_nll_learned_var", "gaussian_nll_optimal_var",
    "ConditionalVAE", "QuadrantRegressor", "conditional_nll",
    "M2", "M2Config", "SemiConfig", "train_classifier_alone", "train_m2",
    "FlowVAE", "Flow", "PlanarStep",
]
