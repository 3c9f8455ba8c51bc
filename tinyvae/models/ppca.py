"""Probabilistic PCA, and the linear VAE that is the same model.

A VAE whose encoder and decoder are single affine maps and whose likelihood is Gaussian with a
fixed variance is probabilistic PCA (Tipping & Bishop, *Probabilistic Principal Component
Analysis*, JRSS-B 1999, section 3; Lucas, Tucker, Grosse & Norouzi, *Don't Blame the ELBO! A
Linear VAE Perspective on Posterior Collapse*, NeurIPS 2019). PPCA's log-likelihood and its
maximum have closed forms, and so does the posterior q(z|x); with the maximum-likelihood decoder
and the exact posterior as encoder the ELBO *equals* the log-likelihood. That gives tinyvae an
exact answer to test against: the analytic ELBO here, the model's own stochastic loss, and a
linear VAE trained from scratch with tinyvae's optimizer must all meet it.

Shapes: N examples, D data dimensions, Z latent dimensions (PPCA's k). PPCA's W is (D, Z) as in
the paper (x = W z + μ + noise); tinyvae's row-major decoder weight is its transpose (Z, D).
Everything here runs on the host in float64. Values are in nats per example, averaged over N.
The math is in derivations/ppca.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..backend import to_numpy
from ..checks import check_array
from ..prob.losses import LOG_2PI, gaussian_kl
from ..nn.optim import Adam
from .vae import VAE


@dataclass
class PPCA:
    """A PPCA model x ~ N(mean, W Wᵀ + sigma2·I)  [eq:ppca-model]."""

    mean: np.ndarray  # μ (D,): the data mean
    W: np.ndarray  # (D, Z): principal axes scaled by sqrt(λ_j − σ²), no rotation
    sigma2: float  # σ²: the noise variance, mean of the discarded eigenvalues
    eigvals: np.ndarray  # (D,): eigenvalues of the sample covariance, descending


def _host_data(X, name="X"):
    X = to_numpy(X) if not isinstance(X, (list, tuple)) else np.asarray(X)
    check_array(X, name, ndim=2, floating=False, finite=True)
    return X.astype(np.float64)


def ppca_fit(X, k):
    """The maximum-likelihood PPCA with ``k`` latent dimensions for data ``X`` (N, D).

    Sample covariance with the 1/N (maximum-likelihood) normalization, its eigenvectors sorted
    by descending eigenvalue, σ² the mean of the D − k discarded eigenvalues and
    W = U_k (Λ_k − σ² I)^½ with the rotation R = I  [eq:ppca-mle].
    """
    X = _host_data(X)
    n, d = X.shape
    if n < 2:
        raise ValueError(f"ppca_fit needs at least 2 examples to estimate a covariance, got N={n}")
    if not (isinstance(k, (int, np.integer)) and 1 <= k < d):
        raise ValueError(f"k must be an integer with 1 <= k < D={d} (σ² is the mean of the D − k "
                         f"discarded eigenvalues, so at least one must be left over), got {k!r}")
    mean = X.mean(axis=0)  # (D,)
    centered = X - mean  # (N, D)
    cov = centered.T @ centered / n  # (D, D), the ML estimate (1/N)
    eigvals, eigvecs = np.linalg.eigh(cov)  # ascending
    order = np.argsort(eigvals)[::-1]
    eigvals = np.clip(eigvals[order], 0.0, None)  # tiny negative round-off -> 0
    eigvecs = eigvecs[:, order]
    sigma2 = float(eigvals[k:].mean())  # [eq:ppca-mle]
    # eigh's eigenvalues carry round-off of order eps·λ_1: a σ² below D·eps·λ_1 is zero up to round-off.
    if not sigma2 > d * np.finfo(np.float64).eps * eigvals[0]:
        raise ValueError(f"the data lie in a subspace of dimension <= k={k} (up to round-off): the discarded "
                         f"eigenvalues are all zero, so σ² = 0 and the PPCA covariance is singular; use a smaller k")
    W = eigvecs[:, :k] * np.sqrt(eigvals[:k] - sigma2)  # (D, Z)  [eq:ppca-mle]
    return PPCA(mean=mean, W=W, sigma2=sigma2, eigvals=eigvals)


def ppca_log_likelihood(X, mean, W, sigma2):
    """The average log N(x; μ, C) over the rows of ``X``, C = W Wᵀ + σ² I, in nats per example.

    Through the Cholesky factor C = L Lᵀ: log det C = 2 Σ log L_ii and the Mahalanobis term is
    ‖L⁻¹(x − μ)‖²  [eq:ppca-loglik].
    """
    X = _host_data(X)
    n, d = X.shape
    W = np.asarray(W, dtype=np.float64)
    mean = np.asarray(mean, dtype=np.float64)
    if W.ndim != 2 or W.shape[0] != d or mean.shape != (d,):
        raise ValueError(f"expected mean (D,) and W (D, Z) with D={d}, got {mean.shape} and {W.shape}")
    if not sigma2 > 0:
        raise ValueError(f"sigma2 must be positive, got {sigma2}")
    cov = W @ W.T + sigma2 * np.eye(d)  # (D, D)  [eq:ppca-model]
    L = np.linalg.cholesky(cov)  # (D, D), lower triangular
    y = np.linalg.solve(L, (X - mean).T)  # (D, N)
    log_det = 2.0 * np.log(np.diag(L)).sum()
    return float(-0.5 * (d * LOG_2PI + log_det + (y * y).sum() / n))  # [eq:ppca-loglik]


def linear_vae_from_ppca(ppca, dtype="float64"):
    """A linear-Gaussian tinyvae ``VAE`` holding the PPCA decoder and its exact posterior.

    Decoder: mean(x|z) = z Wᵀ + μ. Encoder: q(z|x) = N(M⁻¹ Wᵀ (x − μ), σ² M⁻¹) with
    M = WᵀW + σ² I  [eq:ppca-posterior]; for the ML solution M = Λ_k is diagonal, so the
    posterior is exactly representable by the VAE's diagonal Gaussian, with a log-variance that
    does not depend on x (weights zero, bias log(σ²/λ_j)).
    """
    mean = np.asarray(ppca.mean, dtype=np.float64)
    W = np.asarray(ppca.W, dtype=np.float64)
    sigma2 = float(ppca.sigma2)
    d, z = W.shape
    M = W.T @ W + sigma2 * np.eye(z)  # (Z, Z)  [eq:ppca-posterior]
    m_diag = np.diag(M)
    if np.abs(M - np.diag(m_diag)).max() > 1e-10 * m_diag.max():
        raise ValueError("WᵀW is not diagonal (W has a rotation): the exact posterior covariance σ² M⁻¹ "
                         "is then not diagonal and a VAE's diagonal-Gaussian encoder cannot hold it; "
                         "use the unrotated W of ppca_fit")
    model = VAE(input_dim=d, hidden=(), latent=z, likelihood="gaussian", obs_var=sigma2, dtype=dtype)
    params = model.params
    enc_mu = W / m_diag  # (D, Z): (M⁻¹ Wᵀ)ᵀ, row-major  [eq:ppca-posterior]
    params["encoder.0.W"][...] = 0.0
    params["encoder.0.W"][:, :z] = enc_mu
    params["encoder.0.b"][:z] = -mean @ enc_mu  # μ_z = (x − μ) W M⁻¹
    params["encoder.0.b"][z:] = np.log(sigma2 / m_diag)  # diag of σ² M⁻¹: log(σ²/λ_j), x-independent
    params["decoder.0.W"][...] = W.T  # (Z, D)
    params["decoder.0.b"][...] = mean
    return model


def _check_linear_gaussian(model):
    cfg = model.config
    if cfg.model != "vae" or cfg.hidden != () or cfg.likelihood != "gaussian":
        raise ValueError(f"the analytic ELBO needs a linear-Gaussian VAE (model='vae', hidden=(), "
                         f"likelihood='gaussian'), got {cfg.describe()} with hidden={cfg.hidden}")


def linear_vae_elbo(model, X):
    """The ELBO of a linear-Gaussian VAE in closed form, averaged over the rows of ``X``, in nats.

    With q(z|x) = N(m, diag s²) and mean(x|z) = z W_d + b (W_d of shape (Z, D)):
    E_q[log p(x|z)] = −(‖x − m W_d − b‖² + Σ_j s_j² ‖W_d[j]‖²) / (2 σ_x²) − (D/2) log(2π σ_x²),
    minus KL(q ‖ N(0, I))  [eq:linear-vae-elbo]. No sampling: the model's own loss
    ``model.forward(x, ε)`` is an unbiased estimate of minus this number.
    """
    _check_linear_gaussian(model)
    X = _host_data(X)
    cfg = model.config
    d, z = cfg.input_dim, cfg.latent
    if X.shape[1] != d:
        raise ValueError(f"X: expected {d} columns for this model, got shape {X.shape}")
    p = {name: to_numpy(v).astype(np.float64) for name, v in model.params.items()}
    h = X @ p["encoder.0.W"] + p["encoder.0.b"]  # (N, 2Z)
    mu, log_var = h[:, :z], h[:, z:]  # (N, Z) each
    W_d, b_d = p["decoder.0.W"], p["decoder.0.b"]  # (Z, D), (D,)
    resid = X - (mu @ W_d + b_d)  # (N, D)
    spread = np.exp(log_var) @ (W_d * W_d).sum(axis=1)  # (N,): Σ_j s_j² ‖W_d[j]‖²
    expected_sq = ((resid * resid).sum(axis=1) + spread).mean()
    expected_log_lik = -expected_sq / (2.0 * cfg.obs_var) - 0.5 * d * (LOG_2PI + math.log(cfg.obs_var))
    kl, _, _ = gaussian_kl(mu, log_var)  # [eq:kl-closed-form]
    return float(expected_log_lik - kl)  # [eq:linear-vae-elbo]


def fit_linear_vae(X, k, *, obs_var, steps=20000, lr=0.05, final_lr=1e-4, batch_size=100, seed=0):
    """Train a linear-Gaussian VAE (float64) on ``X`` from a random start; returns the model.

    tinyvae's own loop: model.forward(x, ε) with ε from a generator seeded by ``seed``,
    model.backward(), Adam.step(). The learning rate stays at ``lr`` for the first half of the
    steps, then decays geometrically to ``final_lr``: the first half crosses the shallow valley
    in which W's rotation only slowly aligns with the principal axes (the diagonal posterior
    is what breaks the rotation symmetry, weakly), the second half averages out the minibatch
    and ε noise. The observation variance stays fixed at ``obs_var``.
    """
    X = _host_data(X)
    n, d = X.shape
    if not (isinstance(steps, (int, np.integer)) and steps >= 1):
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not 0 < final_lr <= lr:
        raise ValueError(f"need 0 < final_lr <= lr, got lr={lr}, final_lr={final_lr}")
    batch_size = min(int(batch_size), n)
    model = VAE(input_dim=d, hidden=(), latent=k, likelihood="gaussian", obs_var=obs_var,
                dtype="float64", seed=seed)
    opt = Adam(model, lr=lr)
    rng = np.random.default_rng(seed)
    hold = steps // 2
    decay = (final_lr / lr) ** (1.0 / max(steps - 1 - hold, 1))
    order, pos = rng.permutation(n), 0
    for step in range(steps):
        if pos + batch_size > n:
            order, pos = rng.permutation(n), 0
        x = X[order[pos:pos + batch_size]]  # (N_batch, D)
        pos += batch_size
        eps = rng.standard_normal((batch_size, k))  # (N_batch, Z)
        opt.lr = lr * decay ** max(step - hold, 0)
        model.forward(x, eps, validate=False)
        model.backward()
        opt.step()
    return model
