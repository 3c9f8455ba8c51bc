"""The probability pieces: each a log density or a divergence with its gradient, reduced as the
losses say (sum over pixels and latent dimensions, mean over the batch, nats per example).

* ``losses``: the Bernoulli and Gaussian likelihoods (fixed, learned or optimal σ_x²), the Gaussian
  KL in closed form, free bits, and the per-example log densities;
* ``continuous_bernoulli``: the continuous Bernoulli's normalizer, mean, likelihood and sampler.
"""
