"""Gradient checks of the conditional models (derivations/conditional.md), part of ``tinyvae gradcheck``.

The conditional VAE on a label (tanh Bernoulli with β 0.7; softplus with a learned Gaussian σ_x²) and on the
seen quadrants of 4×4 images (1 and 3 seen: only the unseen pixels scored), and the deterministic quadrant
regressor; ε held fixed, the labels or the seen pixels given, every parameter by central differences in
float64.
"""

from __future__ import annotations

import numpy as np

from ..models.conditional import ConditionalVAE, QuadrantRegressor
from .gradcheck import check_gradients, check_model


def conditional_checks(rng, seed):
    """The conditional VAE on a label (tanh Bernoulli, β 0.7, and softplus with a learned Gaussian σ_x²) and on
    the seen quadrants of 4×4 images (1 and 3 seen), and the quadrant regressor, ε held fixed and the labels or
    seen pixels given (derivations/conditional.md)."""
    n, reports = 4, []
    x01, labels = rng.uniform(0, 1, (n, 16)), np.array([0, 2, 1, 2])
    for act, options in (("tanh", {"beta": 0.7}),
                         ("softplus", {"likelihood": "gaussian", "obs_var_mode": "learned", "obs_var": 0.2})):
        model = ConditionalVAE(input_dim=6, hidden=(5,), latent=2, activation=act, classes=3, dtype="float64",
                               seed=seed, **options)
        eps = rng.standard_normal((n, 2))
        model.forward(x01[:, :6], eps, labels=labels)
        model.backward()
        reports.append(check_gradients(lambda m=model, e=eps: m.forward(x01[:, :6], e, labels=labels), model.params,
                                       model.grads, label=f"CVAE on a label ({act} {model.config.likelihood})"))
    quadrants = dict(input_dim=16, image_shape=(4, 4), hidden=(5,), activation="tanh", condition="quadrants",
                     dtype="float64", seed=seed)
    for seen in (1, 3):
        model = ConditionalVAE(latent=2, quadrants=seen, **quadrants)
        rep = check_model(model, x01, rng.standard_normal((n, 2)))
        rep.label = f"CVAE on {seen} seen quadrant{'s' * (seen > 1)} (4x4, tanh)"
        reports.append(rep)
    rep = check_model(QuadrantRegressor(quadrants=2, **quadrants), x01)
    rep.label = "quadrant regressor, 2 seen (4x4, tanh)"
    reports.append(rep)
    return reports
