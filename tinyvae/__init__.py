"""tinyvae: a Variational Autoencoder in NumPy, every backward pass by hand and gradient-checked.

The public API is the list below, plus the modules ``tinyvae.data`` (MNIST and any IDX data),
``tinyvae.plots`` (the pictures), ``tinyvae.exercises`` (graded backward passes) and
``tinyvae.pretrained`` (small trained models bundled with the package, each with its recipe); a notebook
needs nothing else. The math behind each piece is in
the repository's ``derivations/`` folder, cited from the code as ``# [eq:...]``.
"""

import os as _os

# OpenBLAS's worker threads spin for a while after each matrix product before they sleep, and the
# optimizer's own threads (backend.run_split) would compete with them for the cores. A short spin
# lets them sleep at once. Measured on two cores, an epoch at batch 32 (where the optimizer's
# threads run most often) took a median 0.77 times as long as with OpenBLAS's default spin.
# It acts only when NumPy is not imported yet and never overrides a value you set.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from .backend import default_rng, get_xp, to_device, to_numpy
from .checkpoint import CheckpointError
from .gradcheck import (GradcheckReport, check_gradients, check_layer, check_loss, check_model,
                        check_reparameterize, numerical_gradient)
from .layers import Dense, LeakyReLU, ReLU, Sequential, Sigmoid, Softplus, Tanh, mlp, sigmoid
from .layers import Conv2d, ConvTranspose2d, Flatten, Unflatten, col2im, conv2d_adjoint, im2col
from .losses import (bernoulli_log_prob, bernoulli_nll, gaussian_kl, gaussian_kl_per_dim, gaussian_log_prob,
                     gaussian_nll, log_normal_density)
from .losses import free_bits_kl, gaussian_nll_learned_var, gaussian_nll_optimal_var
from .continuous_bernoulli import continuous_bernoulli_log_prob, continuous_bernoulli_nll
from .continuous_bernoulli import log_normalizer as continuous_bernoulli_log_normalizer
from .continuous_bernoulli import mean as continuous_bernoulli_mean
from .optim import SGD, Adam
from .vae import VAE, Autoencoder, ModelConfig, Reparameterize, build_model, load_model
from .train import TrainConfig, resume, train
from .evaluate import (active_units, evaluate_checkpoint, evaluate_elbo, importance_weighted_bounds,
                       importance_weighted_nll, kl_per_dimension, log_mean_exp)
from .ppca import PPCA, fit_linear_vae, linear_vae_elbo, linear_vae_from_ppca, ppca_fit, ppca_log_likelihood

__version__ = "0.1.0"

__all__ = [
    "TrainConfig", "train", "resume",
    "active_units", "evaluate_checkpoint", "evaluate_elbo", "importance_weighted_bounds", "importance_weighted_nll",
    "kl_per_dimension",
    "log_mean_exp",
    "PPCA", "fit_linear_vae", "linear_vae_elbo", "linear_vae_from_ppca", "ppca_fit", "ppca_log_likelihood",
    "Adam", "Autoencoder", "CheckpointError", "Dense", "GradcheckReport", "LeakyReLU", "ModelConfig",
    "ReLU", "Reparameterize", "SGD", "Sequential", "Sigmoid", "Softplus", "Tanh", "VAE",
    "Conv2d", "ConvTranspose2d", "Flatten", "Unflatten", "col2im", "conv2d_adjoint", "im2col",
    "bernoulli_log_prob", "bernoulli_nll", "build_model", "check_gradients", "check_layer", "check_loss",
    "check_model", "check_reparameterize", "default_rng", "gaussian_kl", "gaussian_kl_per_dim",
    "gaussian_log_prob", "gaussian_nll", "get_xp", "load_model", "log_normal_density", "mlp",
    "numerical_gradient", "sigmoid", "to_device", "to_numpy",
    "continuous_bernoulli_log_normalizer", "continuous_bernoulli_log_prob", "continuous_bernoulli_mean",
    "continuous_bernoulli_nll", "free_bits_kl", "gaussian_nll_learned_var", "gaussian_nll_optimal_var",
]
