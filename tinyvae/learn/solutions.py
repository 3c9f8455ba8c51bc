"""Reference solutions to the exercises in ``tinyvae/exercises.py``. Try them yourself first.

Each function is the plain answer, written with NumPy alone and independently of the library code
(``layers/``, ``losses.py``, ``vae.py``), so that comparing the two is itself a check. The
docstrings of the exercises state the shapes and reductions; the derivation each line follows is
cited as ``# [eq:...]`` and lives in ``derivations/``.

Shapes: N batch, D input, H hidden, Z latent. Losses: sum over D and Z, mean over N.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "bce_with_logits", "dense_backward", "gaussian_kl", "relu_backward", "reparameterize",
    "reparameterize_backward", "tanh_backward", "vae_backward", "iwae_loss", "iwae_encoder_backward",
    "conv_backward", "planar_step", "m2_batch_loss",
]


# --------------------------------------------------------------------------- (a) dense layer


def dense_backward(dy, x, W):
    """y = x W + b. Given dy (N, H), x (N, D), W (D, H): return dx (N, D), dW (D, H), db (H,)."""
    dx = dy @ W.T  # (N, D)  [eq:dense-grad-x]
    dW = x.T @ dy  # (D, H)  [eq:dense-grad-w]
    db = dy.sum(axis=0)  # (H,)  [eq:dense-grad-b]
    return dx, dW, db


# --------------------------------------------------------------------------- (b) activations


def relu_backward(dy, x):
    """y = max(x, 0). Given dy and the input x, both (N, H): return dx (N, H)."""
    return dy * (x > 0)  # [eq:relu-grad]


def tanh_backward(dy, y):
    """y = tanh(x). Given dy and the *output* y, both (N, H): return dx (N, H)."""
    return dy * (1.0 - y * y)  # [eq:tanh-grad]


# --------------------------------------------------------------------------- (c) Bernoulli loss


def bce_with_logits(logits, x):
    """Binary cross-entropy of targets x given logits, both (N, D); sum over D, mean over N.

    Returns (loss, dlogits): a float and an (N, D) array.
    """
    n = logits.shape[0]
    # −[x log σ(l) + (1 − x) log(1 − σ(l))] rewritten so that exp never sees a positive number
    elem = np.maximum(logits, 0) - x * logits + np.log1p(np.exp(-np.abs(logits)))  # (N, D)  [eq:bce-stable]
    loss = elem.sum() / n  # [eq:loss-reduction]
    prob = 0.5 * (1.0 + np.tanh(0.5 * logits))  # σ(l), an overflow-free form
    dlogits = (prob - x) / n  # (N, D)  [eq:bce-grad]
    return float(loss), dlogits


# --------------------------------------------------------------------------- (d) Gaussian KL


def gaussian_kl(mu, log_var):
    """KL(N(μ, diag σ²) ‖ N(0, I)) with mu, log_var (N, Z); sum over Z, mean over N.

    Returns (kl, dmu, dlog_var): a float and two (N, Z) arrays.
    """
    n = mu.shape[0]
    var = np.exp(log_var)  # σ²
    kl = 0.5 * (var + mu**2 - 1.0 - log_var).sum() / n  # [eq:kl-closed-form]
    dmu = mu / n  # [eq:kl-grad-mu]
    dlog_var = 0.5 * (var - 1.0) / n  # [eq:kl-grad-logvar]
    return float(kl), dmu, dlog_var


# --------------------------------------------------------------------------- (e) reparameterization


def reparameterize(mu, log_var, eps):
    """z = μ + σ ⊙ ε with σ = exp(½ log σ²); all arrays (N, Z)."""
    std = np.exp(0.5 * log_var)  # σ, not σ²
    return mu + std * eps  # (N, Z)  [eq:reparam]


def reparameterize_backward(dz, eps, std):
    """Given dz, the forward's ε and σ, all (N, Z): return dmu, dlog_var, both (N, Z)."""
    dmu = dz  # [eq:reparam-grad-mu]
    dlog_var = 0.5 * dz * eps * std  # dz/dlog σ² = ε · ½ exp(½ log σ²)  [eq:reparam-grad-logvar]
    return dmu, dlog_var


# --------------------------------------------------------------------------- (f) the whole VAE


def vae_backward(params, cache):
    """Every parameter gradient of the 1-hidden-layer VAE of ``exercises.vae_forward``.

    Returns a dict with the keys of ``params``, each gradient shaped like its parameter.
    It is the pieces above, chained from the loss back to the input.
    """
    c = cache
    # Decoder, from the loss back to z.
    _, dlogits = bce_with_logits(c["logits"], c["x"])  # (N, D)  [eq:bce-grad]
    dh_dec, dW_out, db_out = dense_backward(dlogits, c["h_dec"], params["W_out"])
    da_dec = tanh_backward(dh_dec, c["h_dec"])  # (N, H)
    dz, dW_dec, db_dec = dense_backward(da_dec, c["z"], params["W_dec"])  # dz: (N, Z)
    # Through z = μ + σ ⊙ ε, then add the KL term's direct gradients.  [eq:encoder-output-grad]
    dmu, dlog_var = reparameterize_backward(dz, c["eps"], c["std"])
    _, dmu_kl, dlog_var_kl = gaussian_kl(c["mu"], c["log_var"])
    dmu = dmu + dmu_kl
    dlog_var = dlog_var + dlog_var_kl
    # Encoder: two heads read the same hidden layer, so their gradients add up there.
    dh_mu, dW_mu, db_mu = dense_backward(dmu, c["h_enc"], params["W_mu"])
    dh_lv, dW_logvar, db_logvar = dense_backward(dlog_var, c["h_enc"], params["W_logvar"])
    da_enc = tanh_backward(dh_mu + dh_lv, c["h_enc"])  # (N, H)
    _, dW_enc, db_enc = dense_backward(da_enc, c["x"], params["W_enc"])
    return {"W_enc": dW_enc, "b_enc": db_enc, "W_mu": dW_mu, "b_mu": db_mu,
            "W_logvar": dW_logvar, "b_logvar": db_logvar, "W_dec": dW_dec, "b_dec": db_dec,
            "W_out": dW_out, "b_out": db_out}


# --------------------------------------------------------------------------- (g) the IWAE loss


def iwae_loss(log_w):
    """−L_K from log weights (N, K): loss = −(1/N) Σ_n log (1/K) Σ_k w_nk, and dloss/dlog_w (N, K).

    Returns (loss, dlog_w): a float and an (N, K) array.
    """
    n, k = log_w.shape
    m = log_w.max(axis=1, keepdims=True)  # (N, 1): each example's largest log weight
    e = np.exp(log_w - m)  # (N, K), in (0, 1]: nothing overflows  [eq:log-mean-exp]
    total = e.sum(axis=1, keepdims=True)  # (N, 1), in [1, K]
    log_mean = np.log(total[:, 0]) + m[:, 0] - np.log(k)  # log (1/K) Σ_k w_nk
    loss = -log_mean.sum() / n  # [eq:iwae-loss]
    dlog_w = -(e / total) / n  # −w̃ / N, w̃ = softmax_k(log w) held as it is  [eq:iwae-weights] [eq:iwae-grad-logw]
    return float(loss), dlog_w


# --------------------------------------------------------------------------- (h) the IWAE gradient at the encoder


def iwae_encoder_backward(weights, dlogpx_dz, z, eps, std):
    """∂(−L_K)/∂μ and ∂(−L_K)/∂log σ², each (N, Z), from the normalized weights w̃ (N, K), the
    likelihood's gradient at each sample, z and ε (N, K, Z), and σ (N, Z)."""
    n = weights.shape[0]
    g = weights[..., None] / n  # (N, K, 1): −∂loss/∂log w  [eq:iwae-grad-logw]
    dz = g * (z - dlogpx_dz)  # (N, K, Z): −log p(x|z) and −log p(z) = ½‖z‖² + const  [eq:iwae-grad-z]
    dmu = dz.sum(axis=1)  # through z; log q's two paths cancel for μ  [eq:iwae-grad-mu] [eq:iwae-log-q-total]
    dlog_var = 0.5 * std * (dz * eps).sum(axis=1) - 0.5 / n  # log q: −½ per sample, Σ_k w̃ = 1  [eq:iwae-grad-logvar]
    return dmu, dlog_var


# --------------------------------------------------------------------------- (i) convolution


def conv_backward(dy, x, W, stride, padding):
    """y = conv(x, W) + b, NCHW. Given dy (N, F, Ho, Wo), x (N, C, R, S), W (F, C, k, k), the stride s and
    padding p: return dx (N, C, R, S), dW (F, C, k, k), db (F,), by im2col and col2im."""
    n, c, rows, cols_ = x.shape
    f, _, k, _ = W.shape
    _, _, ho, wo = dy.shape
    s, p = stride, padding
    x_pad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    cols = np.empty((c, k, k, n, ho, wo))  # row (c, i, j), column (n, u, v)
    for i in range(k):
        for j in range(k):
            cols[:, i, j] = x_pad[:, :, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s].transpose(1, 0, 2, 3)  # [eq:im2col]
    cols = cols.reshape(c * k * k, n * ho * wo)
    dY = dy.transpose(1, 0, 2, 3).reshape(f, n * ho * wo)  # (F, N·Ho·Wo)
    dW = (dY @ cols.T).reshape(W.shape)  # [eq:conv-grad-w]
    db = dy.sum(axis=(0, 2, 3))  # over examples and positions  [eq:conv-grad-b]
    dcols = (W.reshape(f, c * k * k).T @ dY).reshape(c, k, k, n, ho, wo)
    dx_pad = np.zeros((c, n, rows + 2 * p, cols_ + 2 * p))
    for i in range(k):
        for j in range(k):
            dx_pad[:, :, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s] += dcols[:, i, j]  # [eq:col2im]
    dx = dx_pad[:, :, p:p + rows, p:p + cols_].transpose(1, 0, 2, 3)  # [eq:conv-grad-x]
    return dx, dW, db


# --------------------------------------------------------------------------- (j) a planar flow step


def planar_step(z, u, w, b, dz_out, g):
    """f(z) = z + û tanh(wᵀz + b) on z (N, Z), with u, w (Z,) and b a number, and its backward, for a loss
    that holds the step's log-determinant as −Σ_n g_n logdet_n (g (N,): 1/N, or w̃/N for the IWAE).

    Returns (z_out, logdet, dz, du, dw, db): (N, Z), (N,), (N, Z), (Z,), (Z,) and a number.
    """
    beta, ww = w @ u, w @ w
    gamma = (np.logaddexp(0.0, beta) - 1.0 - beta) / ww  # (m(β) − β)/‖w‖², m(β) = −1 + softplus(β)
    u_hat = u + gamma * w  # wᵀû = m(wᵀu) > −1: invertible  [eq:planar-u-hat]
    a = z @ w + b  # (N,)
    t = np.tanh(a)
    z_out = z + t[:, None] * u_hat  # (N, Z)  [eq:planar-step]
    h1 = 1.0 - t * t  # h′(a); ψ = h′(a) w  [eq:planar-psi]
    c = w @ u_hat
    det = 1.0 + h1 * c  # 1 + ûᵀψ, the matrix determinant lemma
    logdet = np.log(np.abs(det))  # (N,)  [eq:planar-logdet]
    dlogdet = -g  # the loss is −log w, and log w holds +logdet  [eq:flow-elbo]
    # Backward, every term of [eq:planar-backward]: through z_out, then through the log-determinant.
    da = h1 * (dz_out @ u_hat) + dlogdet * c * (-2.0 * t * h1) / det  # (N,): h″(a) = −2 t h′(a)
    dc = np.sum(dlogdet * h1 / det)
    dz = dz_out + da[:, None] * w  # (N, Z)
    db = da.sum()
    du_hat = t @ dz_out + dc * w  # (Z,)
    dw = da @ z + dc * u_hat
    s, sig = w @ du_hat, 0.5 * (1.0 + np.tanh(0.5 * beta))  # m′(β) = sigmoid(β)
    du = du_hat + (sig - 1.0) * s / ww * w  # through û to u
    dw = dw + gamma * du_hat + s * ((sig - 1.0) * u / ww - 2.0 * gamma * w / ww)  # and to w
    return z_out, logdet, dz, du, dw, float(db)


# --------------------------------------------------------------------------- (k) the M2 loss through q(y|x)


def m2_batch_loss(neg_l, logits, y_onehot, alpha):
    """M2's loss of a batch from −L(x_n, y) for every example and label (N, C), the classifier's logits (N, C),
    the labels as one-hot rows (N, C; a zero row: unlabelled) and α. Returns (loss, dneg_l, dlogits)."""
    n = neg_l.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_q = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # (N, C)  [eq:m2-log-softmax]
    q = np.exp(log_q)
    labelled = y_onehot.sum(axis=1, keepdims=True)  # (N, 1): 1 labelled, 0 unlabelled
    neg_u = (q * (neg_l + log_q)).sum(axis=1, keepdims=True)  # (N, 1) −U(x)  [eq:m2-unlabelled]
    per_example = labelled * (y_onehot * (neg_l - alpha * log_q)).sum(axis=1, keepdims=True) + (1 - labelled) * neg_u
    loss = per_example.sum() / n  # [eq:m2-loss]
    dneg_l = (y_onehot + (1 - labelled) * q) / n  # its label's row once; every row weighted by q  [eq:m2-grad-rows]
    dlogits = (labelled * alpha * (q - y_onehot)  # [eq:m2-grad-alpha]
               + (1 - labelled) * q * (neg_l + log_q - neg_u)) / n  # [eq:m2-grad-logits]
    return float(loss), dneg_l, dlogits
