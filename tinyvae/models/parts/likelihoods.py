"""The decoder's likelihood p(x|z): what the decoder's output means, and how it scores the data.

Each likelihood takes the decoder's output ``out`` (logits or means, (N, D)) and offers:

* ``nll(out, x, validate, fit)``: −log p(x|z) as a batch mean, nats per example, and its gradient
  with respect to ``out`` (what the ELBO charges);
* ``log_prob_rows(out, x)``: log p(x_n|z_nk) for K samples per example, (N, K), and −∂ log p/∂out
  (what the IWAE bound weighs);
* ``log_prob(out, x)``: log p(x|z) per example, for the importance-weighted evaluation;
* ``mean(out)``: E[x|z], the picture a decoder draws;
* ``backward()``: the gradient of its own parameters (a learned or optimal σ_x²), if it has any.

Bernoulli (derivations/bernoulli.md), continuous Bernoulli (derivations/continuous-bernoulli.md),
Gaussian with a fixed σ_x² (derivations/gaussian.md), and Gaussian with σ_x² learned or set to each
batch's optimum (Rybkin, Daniilidis & Levine 2021; derivations/sigma-vae.md).
"""

from __future__ import annotations

import numpy as np

from ... import backend
from ...backend import get_xp
from ...nn import sigmoid
from ...prob.continuous_bernoulli import continuous_bernoulli_log_prob, continuous_bernoulli_nll
from ...prob.continuous_bernoulli import mean as continuous_bernoulli_mean
from ...prob.losses import (bernoulli_log_prob, bernoulli_nll, gaussian_log_prob, gaussian_nll,
                            gaussian_nll_learned_var, gaussian_nll_optimal_var)
from ..config import OBS_VAR_AVERAGING
from . import iwae


class _Likelihood:
    """What every likelihood shares: no parameters, no statistics, no rows for the IWAE bound."""

    name = ""
    params_part = None  # the ObservationVariance of a learned or optimal σ_x², else None

    def __init__(self, obs_var=1.0):
        self.obs_var = obs_var  # the config's σ_x²: what a Gaussian scores with, a learned one's start

    def variance(self):
        """σ_x² as it stands, a float (the config's for a likelihood that has none)."""
        return self.obs_var

    def loaded(self):
        """Weights were loaded (an optimal σ_x² then keeps averaging from the loaded value)."""

    def stats(self):
        """Numbers of the last ``nll`` to log beside the loss (a learned or optimal σ_x²)."""
        return {}

    def backward(self):
        """Its own parameters' gradient from the last ``nll``; none here."""

    def log_prob_rows(self, out, x):
        raise ValueError(f"the IWAE objective supports the bernoulli and fixed-variance gaussian likelihoods; "
                         f"got the {self.name} likelihood")


class Bernoulli(_Likelihood):
    """p(x|z) = Π_d Bernoulli(x_d; σ(l_d)) from logits l."""

    name = "bernoulli"

    def nll(self, out, x, validate=True, fit=True):
        return bernoulli_nll(out, x, validate=validate)

    def log_prob_rows(self, out, x):
        return iwae.bernoulli_rows(out, x)

    def log_prob(self, out, x):
        return bernoulli_log_prob(out, x)

    def mean(self, out):
        return sigmoid(out)


class ContinuousBernoulli(_Likelihood):
    """The continuous Bernoulli of Loaiza-Ganem & Cunningham (2019), from logits."""

    name = "continuous-bernoulli"

    def nll(self, out, x, validate=True, fit=True):
        return continuous_bernoulli_nll(out, x, validate=validate)

    def log_prob(self, out, x):
        return continuous_bernoulli_log_prob(out, x)

    def mean(self, out):
        """σ(l) − d log C/dl, greyer than σ(l) [eq:cb-mean]."""
        return continuous_bernoulli_mean(out)


class Gaussian(_Likelihood):
    """p(x|z) = N(x; means, σ_x² I) with a fixed σ_x²."""

    name = "gaussian"

    def nll(self, out, x, validate=True, fit=True):
        return gaussian_nll(out, x, self.variance(), validate=validate)

    def log_prob_rows(self, out, x):
        return iwae.gaussian_rows(out, x, self.obs_var)

    def log_prob(self, out, x):
        return gaussian_log_prob(out, x, self.variance())

    def mean(self, out):
        return out


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


class _GaussianWithParameter(Gaussian):
    """A Gaussian whose σ_x² is a parameter of the model (``params_part``), learned or fitted."""

    def __init__(self, obs_var, dtype):
        super().__init__(obs_var)
        self.params_part = ObservationVariance(obs_var, dtype)
        self._stat = None  # σ_x² of the last nll, for the log
        self._step = None  # what backward does with it

    @property
    def log_var(self):
        return self.params_part.params["log_var"]

    def variance(self):
        return float(np.exp(backend.to_numpy(self.log_var).astype(np.float64)[0]))

    def stats(self):
        return {} if self._stat is None else {"obs_var": self._stat}

    def backward(self):
        self.params_part.grads["log_var"][...] = 0


class LearnedVarianceGaussian(_GaussianWithParameter):
    """log σ_x² trained with the weights: its gradient D/2 − SSE/(2σ_x²) [eq:sigma-vae-grad-logvar]."""

    def nll(self, out, x, validate=True, fit=True):
        recon, dout, self._step = gaussian_nll_learned_var(out, x, self.log_var, validate=validate)
        self._stat = get_xp(out).exp(self.log_var[0])
        return recon, dout

    def backward(self):
        self.params_part.grads["log_var"][...] = self._step  # [eq:sigma-vae-grad-logvar]


class OptimalVarianceGaussian(_GaussianWithParameter):
    """σ_x² set to each training batch's optimum, the MSE [eq:sigma-vae-optimal-var]; evaluation
    (``fit=False``) scores with the running average of those optima (``OBS_VAR_AVERAGING``)."""

    def __init__(self, obs_var, dtype):
        super().__init__(obs_var, dtype)
        self.fitted = False  # has σ_x² been fitted yet (by a step, or loaded)?

    def loaded(self):
        self.fitted = True

    def nll(self, out, x, validate=True, fit=True):
        self._step = self._stat = None
        if not fit:
            return gaussian_nll(out, x, self.variance(), validate=validate)
        recon, dout, obs_var = gaussian_nll_optimal_var(out, x, validate=validate)
        self._step = self._stat = obs_var
        return recon, dout

    def backward(self):
        """A zero gradient [eq:sigma-vae-envelope], and σ_x² moved to the running average of the batch
        optima (the first step takes σ*² itself)."""
        self.params_part.grads["log_var"][...] = 0
        if self._step is None:
            return
        log_var, a = self.log_var, OBS_VAR_AVERAGING if self.fitted else 1.0
        xp = get_xp(log_var)
        log_var[...] = xp.log((1 - a) * xp.exp(log_var) + a * self._step)
        self.fitted = True


def make_likelihood(config, dtype):
    """The likelihood part a config names."""
    if config.likelihood != "gaussian":
        return {"bernoulli": Bernoulli, "continuous-bernoulli": ContinuousBernoulli}[config.likelihood](config.obs_var)
    kinds = {"fixed": lambda: Gaussian(config.obs_var),
             "learned": lambda: LearnedVarianceGaussian(config.obs_var, dtype),
             "optimal": lambda: OptimalVarianceGaussian(config.obs_var, dtype)}
    return kinds[config.obs_var_mode]()
