"""Evaluating a trained model: the negative ELBO, the importance-weighted NLL, KL per latent dimension
and active units, for a model in memory or a checkpoint on disk (``tinyvae evaluate``, whose report
and command line are ``command.py``).

* The negative ELBO is estimated with ε *sampled*, as its expectation requires (Kingma & Welling,
  *Auto-Encoding Variational Bayes*, ICLR 2014, eq. 10); decoding z = μ instead would report a
  number that is no bound on anything.
* −log p(x) is estimated by importance sampling with the encoder as proposal, the bound L_K of
  Burda, Grosse & Salakhutdinov, *Importance Weighted Autoencoders*, ICLR 2016, sec. 3 (K = 5000
  in their sec. 5.1). L_1 is the ELBO and L_K tightens as K grows (derivations/importance-sampling.md).
* A latent dimension is *active* when Cov_x(E_q[z_j]) > 0.01 (Burda et al., sec. 5.2).

Every number is in nats per example: summed over pixels and latent dimensions, averaged over
examples. Arrays may live on the GPU; results come back to the host as floats and NumPy arrays.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .. import backend, data, threads
from . import importance
from ..backend import get_xp, to_float, to_numpy
from ..checkpoint import CheckpointError, run_checkpoint
from ..checks import check_array, check_unit_interval
from ..prob.losses import gaussian_kl_per_dim
from .importance import CURVE_KS
from ..models.conditioning import evaluation_call, is_conditional
from ..models.config import LATENT_MODELS
from ..models.vae import VAE, load_model

ACTIVE_THRESHOLD = 0.01  # Burda et al. (2016), sec. 5.2
CONFIG_NAME = "config.json"


# --------------------------------------------------------------------------- numerics


def log_mean_exp(a, axis=-1):
    """log((1/n) Σ exp(a)) along ``axis`` (an int, or None for all), without overflow.

    The maximum is taken out before exponentiating, so values like ±1e4 stay finite; an all
    −inf slice gives −inf. Works in any namespace (NumPy, CuPy); keeps the dtype of ``a``.
    """
    xp = get_xp(a)
    n = a.size if axis is None else a.shape[axis]
    if n == 0:
        raise ValueError("log_mean_exp of an empty axis is undefined")
    m = xp.max(a, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))  # ±inf maxima: exp(a − 0) gives the right limit
    with np.errstate(divide="ignore"):  # log(0) = −inf is the right answer for an all −inf slice
        lse = xp.log(xp.sum(xp.exp(a - m), axis=axis, keepdims=True)) + m  # [eq:log-mean-exp]
    lse = lse.reshape(()) if axis is None else xp.squeeze(lse, axis=axis)
    return lse - math.log(n)


# --------------------------------------------------------------------------- batches of images


def _check_images(model, x, binarize="none"):
    """``x`` must be (N, D) uint8 images or floats in [0, 1] (Bernoulli) / finite (Gaussian)."""
    if binarize not in data.BINARIZE_MODES:
        raise ValueError(f"binarize must be one of {data.BINARIZE_MODES}, got {binarize!r}")
    check_array(x, "x", shape=(None, model.config.input_dim), floating=False, finite=False)
    if x.shape[0] == 0:
        raise ValueError("x holds no examples")
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind != "f":
        raise TypeError(f"x: expected uint8 images (0-255) or floats in [0, 1], got dtype {x.dtype}")
    if binarize == "dynamic":
        raise ValueError("binarize='dynamic' samples uint8 images; x is already floating point")
    check_array(x, "x", finite=True)
    if model.config.likelihood in ("bernoulli", "continuous-bernoulli"):
        check_unit_interval(x, "x")
    return x


def _float_batches(model, x, batch_size, binarize="none", rng=None):
    """Yield float batches of the model's dtype on the model's device, ``batch_size`` rows each."""
    if not batch_size >= 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size}")
    if getattr(model, "max_rows", None):  # a conv model: its work buffers grow to the largest batch they see
        batch_size = min(int(batch_size), model.max_rows)
    for start in range(0, x.shape[0], int(batch_size)):
        batch = x[start:start + int(batch_size)]
        if batch.dtype == np.uint8:  # images enter as bytes and become floats one batch at a time
            batch = data.to_float(to_numpy(batch), binarize, rng, dtype=model.dtype)
        elif batch.dtype != model.dtype:
            batch = batch.astype(model.dtype)
        yield backend.to_device(batch, model.xp)


def model_input(model, x):
    """``x`` ((N, D) uint8 images or floats in [0, 1]) as one float array of the model's dtype, on its device."""
    x = _check_images(model, x)
    return next(_float_batches(model, x, x.shape[0]))


def posterior_means(model, x, *, batch_size=1000):
    """E_q[z | x] for every example, (N, Z), on the host: μ for a VAE, the code for an autoencoder."""
    x = _check_images(model, x)
    means = [to_numpy(_means(model, xb)) for xb in _float_batches(model, x, batch_size)]
    return np.concatenate(means).astype(np.float64)


def _means(model, xb):
    return model.encode(xb)[0] if model.config.model == "vae" else model.encode(xb)  # μ (of z1, with two layers)


# --------------------------------------------------------------------------- the bounds


def evaluate_elbo(model, x, *, binarize="none", seed=0, batch_size=1000, labels=None):
    """The negative ELBO of ``x`` with ε ~ N(0, I) sampled from ``seed``: dict(loss, recon, kl).

    ``x``: (N, D) uint8 images (made floats per batch with ``data.to_float(.., binarize)``) or floats
    in [0, 1]. ``loss = recon + kl`` in nats per example, with β = 1 whatever the model was trained
    with, so that it is the ELBO. One draw of ε per example, as in training; the result is
    reproducible for a seed. For an autoencoder kl is 0 and loss is its reconstruction error.
    ``labels``: (N,) class indices, for a model whose forward reads them (``model.needs_labels``), given to
    it batch by batch beside the images.
    """
    x = _check_images(model, x, binarize)
    if labels is not None and len(labels) != x.shape[0]:
        raise ValueError(f"labels: expected one per example, {x.shape[0]}, got {len(labels)}")
    xp, z_dim = model.xp, model.config.latent + model.config.latent2  # two stochastic layers: ε = [ε1 | ε2]
    noise = backend.default_rng(seed, xp)  # ε lives where the model does
    pixels = np.random.default_rng([seed, 1])  # dynamic binarization happens on the host
    totals = {"loss": 0.0, "recon": 0.0, "kl": 0.0}
    start = 0
    for xb in _float_batches(model, x, batch_size, binarize, pixels):
        n = xb.shape[0]
        eps = noise.standard_normal((n, z_dim), dtype=model.dtype) if model.config.model in LATENT_MODELS else None
        extra = {} if labels is None else {"labels": labels[start:start + n]}
        start += n
        # the ELBO is the β = 1 loss [eq:vae-loss], whatever objective the model was trained with
        # (no free bits; a learned or optimal σ_x² as the model holds it, not refitted to the test batch)
        model.forward(xb, eps, beta=1.0, validate=False, objective="elbo", free_bits=0.0, fit_obs_var=False, **extra)
        for key in totals:  # device scalars: no host sync inside the loop
            totals[key] = totals[key] + xp.asarray(model.stats[key], dtype=xp.float64) * n
    return {key: to_float(value) / x.shape[0] for key, value in totals.items()}


def importance_weighted_nll(model, x, *, k=5000, seed=0, batch_size=None, sample_chunk=None, binarize="none",
                            progress=False):
    """−log p̂(x) per example (host array (N,), nats): the importance-weighted estimate with K samples.

        −log p̂(x) = −log (1/K) Σ_k p(x | z_k) p(z_k) / q(z_k | x),   z_k ~ q(z | x)

    K = 1 is a one-sample negative ELBO; in expectation the estimate decreases towards −log p(x) as K
    grows. Seeded: ε is one stream, example after example, so the result depends on ``seed`` alone,
    not on ``batch_size`` (examples per batch) or ``sample_chunk`` (decoder rows per pass), which
    only bound the memory. ``progress=True`` shows a progress bar (stderr).
    """
    return importance_weighted_bounds(model, x, k=k, seed=seed, batch_size=batch_size, sample_chunk=sample_chunk,
                                      binarize=binarize, progress=progress, curve=())[0]


def importance_weighted_bounds(model, x, *, k=5000, seed=0, curve=CURVE_KS, batch_size=None, sample_chunk=None,
                               binarize="none", progress=False):
    """(NLL per example (N,), {K': mean L_K'} for each K' in ``curve`` up to K and for K itself).

    One set of K samples per example serves every K': L_K' is estimated from the K samples cut into
    blocks of K' (``importance.bound_curve``), which costs nothing beyond the NLL itself; where each
    K' divides the next and K (1, 5, 50, 5000) the curve never falls as K' grows, for every example. The NLL is −L_K of each example [eq:iw-nll-estimate].
    """
    if model.config.model != "vae":
        raise TypeError("importance_weighted_nll needs a VAE: an autoencoder defines no q(z|x) and no p(x)")
    if isinstance(k, bool) or not (isinstance(k, (int, np.integer)) and k >= 1):
        raise ValueError(f"k (importance samples) must be a positive int, got {k!r}")
    x = _check_images(model, x, binarize)
    ks = sorted({int(c) for c in curve if 1 <= c < k} | {int(k)})
    if batch_size is None:  # several examples for the cores to share, and about MAX_ROWS decoder rows
        batch_size = max(8, importance.MAX_ROWS // k)
    noise = backend.default_rng(seed, model.xp)
    pixels = np.random.default_rng([seed, 1])
    bounds = np.empty((x.shape[0], len(ks)), dtype=np.float64)
    start = 0
    batches = _float_batches(model, x, batch_size, binarize, pixels)
    with tqdm(total=x.shape[0], desc=f"IW NLL, K={k}", unit="example", disable=not progress, leave=False) as bar:
        for log_w in importance.log_weights(model, batches, int(k), noise, sample_chunk=sample_chunk):  # (B, K)
            bounds[start:start + len(log_w)] = importance.bound_curve(log_w, ks)
            start += len(log_w)
            bar.update(len(log_w))
    return -bounds[:, -1], {kk: float(bounds[:, i].mean()) for i, kk in enumerate(ks)}  # [eq:iw-nll-estimate]


# --------------------------------------------------------------------------- the latent space


def kl_per_dimension(model, x, *, batch_size=1000):
    """KL(q(z_j|x) ‖ N(0, 1)) averaged over the examples, one value per latent dimension: (Z,), nats.

    Sums to the KL term of the negative ELBO; a dimension near 0 carries no information about x.
    """
    if getattr(model.config, "flow", "none") != "none":
        raise TypeError(f"kl_per_dimension needs a diagonal Gaussian posterior; the {model.config.flow} flow's q_T has "
                        f"no KL per dimension in closed form")
    if not isinstance(model, VAE):
        raise TypeError("kl_per_dimension needs a VAE: an autoencoder has no KL term")
    x = _check_images(model, x)
    total = 0.0
    for xb in _float_batches(model, x, batch_size):
        mu, log_var = model.encode(xb)
        total = total + gaussian_kl_per_dim(mu, log_var).astype(model.xp.float64).sum(axis=0)  # (Z,)  [eq:kl-per-dim]
    return to_numpy(total) / x.shape[0]


def active_units(model, x, threshold=ACTIVE_THRESHOLD, *, batch_size=1000):
    """How many latent dimensions are active: Var_x(E_q[z_j | x]) > ``threshold`` (Burda et al. 2016).

    Returns ``(count, variances)`` with ``variances`` (Z,) on the host. For an autoencoder the
    codes stand in for the posterior means.
    """
    variances = posterior_means(model, x, batch_size=batch_size).var(axis=0)  # (Z,)
    return int((variances > threshold).sum()), variances


SHARPNESS_SAMPLES = 1000  # prior samples whose sharpness tinyvae evaluate reports


def image_sharpness(images):
    """Mean squared difference between neighbouring pixels (each pixel and the ones right of and below
    it), averaged over the images: a number per set of square (N, D) images, clipped to [0, 1] as they
    are shown. Blur lowers it: spreading a step of height h over k pixels turns h² into k·(h/k)² = h²/k.
    """
    images = np.clip(np.asarray(to_numpy(images), dtype=np.float64), 0.0, 1.0)
    side = math.isqrt(images.shape[1])
    if side * side != images.shape[1]:
        raise ValueError(f"image_sharpness needs square images, got D = {images.shape[1]} pixels")
    grid = images.reshape(-1, side, side)
    across, down = np.diff(grid, axis=2), np.diff(grid, axis=1)
    return float(((across ** 2).sum(axis=(1, 2)) + (down ** 2).sum(axis=(1, 2))).mean() / (2 * side * (side - 1)))


def sample_sharpness(model, n=SHARPNESS_SAMPLES, seed=0):
    """``image_sharpness`` of ``n`` mean images decoded from z ~ N(0, I) (seeded), as ``tinyvae sample`` draws them."""
    return image_sharpness(model.sample(n, backend.default_rng(seed, model.xp)))


# --------------------------------------------------------------------------- checkpoints and runs


def refuse_conditional(model, path, what):
    """A CheckpointError when ``model`` (loaded from ``path``) is conditional: ``what`` (a command for
    unconditional models) would have to invent each example's label or seen pixels. The message names the
    command, points to ``tinyvae plot RUN`` and gives the complete call that scores the run."""
    if is_conditional(model.config):
        path = Path(path)
        given = "its label" if model.config.condition == "label" else "its seen quadrants"
        raise CheckpointError(
            f"{path} holds a conditional model ({model.config.describe()}); {what} is for unconditional models "
            f"only: a conditional model draws and scores each example given {given}. Draw its own pictures with "
            f"tinyvae plot {path.parent}, and score its test digits in Python with: import tinyvae, tinyvae.data; "
            f"{evaluation_call(model.config, path, _run_binarize(path))}")
    return model


def _run_binarize(checkpoint):
    """The binarization of the run whose checkpoint this is ('none' when its config.json cannot be read)."""
    try:
        return json.loads((Path(checkpoint).parent / "config.json").read_text()).get("binarize", "none")
    except (OSError, ValueError, AttributeError):
        return "none"


def find_checkpoint(path):
    """``(checkpoint file, run config dict)`` for a checkpoint file or a run folder.

    The run's ``config.json`` beside the checkpoint is read when present; ``{}`` otherwise.
    """
    checkpoint = run_checkpoint(path)
    if not checkpoint.is_file():
        raise CheckpointError(f"checkpoint {checkpoint}: no such file")
    config_path = checkpoint.parent / CONFIG_NAME
    if not config_path.is_file():
        return checkpoint, {}
    try:
        config = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{config_path}: not a readable JSON run config: {err}") from err
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path}: expected a JSON object (field: value) describing the run, got "
                              f"{type(config).__name__}; repair it or move it aside")
    return checkpoint, config


def run_data_dir(config):
    """The data folder a run was trained on (None: the bundled MNIST)."""
    value = config.get("data")
    if isinstance(value, dict):  # tolerate {"dir": ...}
        value = value.get("dir") or value.get("data_dir")
    return None if value in (None, "", "bundled") else str(value)


def load_images(split, data_dir=None, config=None, limit=None):
    """(images uint8 (N, D), labels (N,)) of ``split`` ("test", "train" or "val") of a run's data."""
    config = config or {}
    if split in ("test", "train"):
        x, y = data.load_split(split, data_dir)
    elif split == "val":
        validation = int(config.get("validation", 0) or 0)
        if validation <= 0:
            raise ValueError("split 'val': this run kept no validation examples (config 'validation' is 0)")
        ds = data.load_dataset(data_dir, validation=validation, seed=int(config.get("seed", 0)))
        x, y = ds.val_x, ds.val_y
    else:
        raise ValueError(f"split must be 'test', 'train' or 'val', got {split!r}")
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be a positive int, got {limit}")
        x, y = x[:limit], y[:limit]
    return x, y


def evaluation_images(x, config, seed, split="test"):
    """The images a run is evaluated on, and a sentence saying which.

    A model trained on binarized digits is scored on one fixed, seeded binarization of the split
    (the standard protocol for binarized MNIST), so every evaluation sees the same {0, 1} pixels:
    the run's own test binarization when its config records one (``test_binarize_seed``, the
    validation split using that seed + 1, as tinyvae.train does), else ``binarize_static(x, seed)``.
    """
    binarize = config.get("binarize", "none")
    if binarize not in ("static", "dynamic"):
        return x, "grey levels x/255, as the model was trained"
    stored = config.get("test_binarize_seed")
    if stored is not None and split in ("test", "val"):
        seed, whose = int(stored) + (split == "val"), "the run's own, as in its metrics"
    else:
        whose = "--seed"
    return data.binarize_static(x, int(seed)), (
        f"one fixed binarization of the {split} split (binarize_static, seed {seed}: {whose}), "
        f"because the model was trained on binarized digits ({binarize})")


@threads.pins_blas  # BLAS on one thread, tinyvae's own threads on the free cores (threads.py)
def evaluate_checkpoint(path, *, data=None, iw_samples=0, split="test", device="cpu", limit=None, seed=0,
                        batch_size=1000, progress=False):
    """Every metric of this module for the checkpoint (file or run folder) at ``path``, as a dict.

    Keys: checkpoint, model, split, n, binarize (the run's), evaluated_on, loss, recon, kl (negative
    ELBO, nats per example), nll, nll_sem, iw_samples and iw_bounds (when ``iw_samples > 0``; iw_bounds maps
    K' = 1, 5, 50 and K, as strings, to the estimate of L_K'), kl_per_dim,
    active_units, latent, mean_variances, threshold, notes (caveats, one line each), seconds.
    """
    start = time.perf_counter()
    checkpoint, config = find_checkpoint(path)
    model = refuse_conditional(load_model(checkpoint, device), checkpoint, "tinyvae evaluate")
    binarize = config.get("binarize", "none")
    data_dir = data if data is not None else run_data_dir(config)
    x, _ = load_images(split, data_dir, config, limit)
    x, evaluated_on = evaluation_images(x, config, seed, split)
    is_vae = model.config.model == "vae"
    result = {"checkpoint": str(checkpoint), "model": model.config.describe(), "split": split, "n": int(len(x)),
              "binarize": binarize, "evaluated_on": evaluated_on}
    result.update(evaluate_elbo(model, x, seed=seed, batch_size=batch_size))
    notes = []
    if is_vae and model.config.beta != 1:
        notes.append(f"loss is the negative ELBO (β = 1), not the training objective (β = {model.config.beta:g})")
    if is_vae and model.config.free_bits > 0:
        notes.append(f"loss is the negative ELBO with the plain KL, not the training objective (free bits "
                     f"λ = {model.config.free_bits:g} nats per dimension)")
    if not is_vae:
        notes.append("autoencoder: no KL term and no likelihood; loss is the reconstruction error")
    if iw_samples and is_vae:
        nll, bounds = importance_weighted_bounds(model, x, k=int(iw_samples), seed=seed, progress=progress)
        result.update(nll=float(nll.mean()), nll_sem=float(nll.std() / math.sqrt(len(nll))),
                      iw_samples=int(iw_samples), iw_bounds={str(kk): v for kk, v in bounds.items()})
        if binarize not in ("static", "dynamic"):
            what = ("a cross-entropy, not a likelihood" if model.config.likelihood == "bernoulli" else
                    "a density (it can be negative), not a likelihood of discrete data")
            notes.append(f"caveat: on grey-level pixels this {model.config.likelihood} NLL is {what}; compare it only "
                         f"with numbers computed the same way")
    elif iw_samples:
        notes.append("NLL: not defined for an autoencoder (no q(z|x), no p(x))")
    result.update(sample_sharpness=sample_sharpness(model, seed=seed),
                  data_sharpness=image_sharpness(x / 255.0 if x.dtype == np.uint8 else x))  # uint8: 255 is 1
    if model.config.stochastic_layers == 2:  # no closed-form KL per dimension; active units per layer
        from .two_layer_report import layer_activity  # noqa: PLC0415
        result.update(layer_activity(model, x, seed=seed), threshold=ACTIVE_THRESHOLD, notes=notes,
                      seconds=time.perf_counter() - start)
        return result
    count, variances = active_units(model, x, batch_size=batch_size)
    flow = is_vae and model.config.flow != "none"
    if flow:
        result["flow"] = model.config.flow
        notes.append(f"kl is log q_T(z_T|x) − log p(z_T) sampled once per example (the {model.config.flow} flow has no "
                     f"closed-form KL); kl_per_dim is not defined for it, and active units are those of q_0's means")
    result.update(kl_per_dim=kl_per_dimension(model, x, batch_size=batch_size).tolist() if is_vae and not flow
                  else None,
                  active_units=count, latent=model.config.latent, mean_variances=variances.tolist(),
                  threshold=ACTIVE_THRESHOLD, notes=notes, seconds=time.perf_counter() - start)
    return result
