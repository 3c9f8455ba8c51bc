"""The semi-supervised VAE M2 (Kingma, Rezende, Mohamed & Welling 2014), forward and backward by hand.

Kingma et al., *Semi-supervised learning with deep generative models* (NeurIPS 2014), sec. 2.2 (the
generative model M2) and 3.1 (its inference model, the bounds and the objective). Shapes: N batch, D input,
C classes, Z latent, R rows (one per labelled example, C per unlabelled one)::

    p(y) = Cat(1/C),  p(z) = N(0, I),  p(x|y, z) = Bernoulli(σ(decoder([z | onehot(y)])))
    q(y|x) = softmax(classifier(x))                                  parts/classifier.py
    q(z|x, y) = N(μ, diag σ²),  [μ | log σ²] = encoder([x | onehot(y)]),  z = μ + σ ⊙ ε, ε passed in (R, Z)
    loss = (1/N)[Σ_labelled (−L(x, y) − α log q(y|x)) + Σ_unlabelled (−U(x))]      [eq:m2-loss]

y enters both networks by concatenating its one-hot row to their input, as in the conditional VAE
(``parts/conditions.py``, [eq:cvae-concat]): one learned vector per class in the first dense layer.
The encoder's first layer computes x's product once per example for all its rows
(``parts/labelled_rows.py``, [eq:m2-shared-first-layer]); everything else runs on the R rows. The
objective, the rows and every gradient through q(y|x) are in ``parts/semi_supervised.py``; the math
in derivations/semi-supervised.md. Labels are integers 0..C−1, −1 for an unlabelled example. The
loss is in nats per example: summed over pixels and latent units, averaged over the N examples of
the batch. The model runs on NumPy arrays (CPU).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..checkpoint import FORMAT_NOTES, CheckpointError, from_json_array, json_array, load_arrays, save_arrays
from ..checks import ShapeError, check_array, field_problems
from ..nn import ACTIVATIONS, mlp, sigmoid
from .base import check_batch
from .parts.classifier import UNLABELLED, Classifier, check_labels
from .parts.conditions import one_hot
from .parts.gaussian_layer import Networks
from .parts.labelled_rows import LabelledRowsDense
from .parts.semi_supervised import bound_rows, label_rows, m2_loss, row_count

FORMAT = "tinyvae-m2-1"
FORMAT_NOTES[FORMAT] = ("a semi-supervised M2 model (format 'tinyvae-m2-1'), which the commands for VAE runs do not "
                        "read: load it with tinyvae.M2.load(path); the test error of its classifier after each epoch "
                        "is in its run's metrics.jsonl")


@dataclass
class M2Config:
    """What an M2 model is; stored beside its weights. The defaults: one hidden layer of 500 softplus units and 50
    latent units, the sizes of the authors' code (github.com/dpkingma/nips14-ssl, run_2layer_ssl.py) for its runs
    with more than 100 labels, in which M2 models the features of a pretrained M1 rather than pixels; α_batch 0.1,
    the default of ``SemiConfig`` and ``tinyvae train --model m2``."""

    input_dim: int = 784  # D, pixels per image
    classes: int = 10  # C, labels 0..C−1
    hidden: tuple = (500,)  # widths of q(z|x, y)'s hidden layers (p(x|y, z) mirrors them)
    classifier_hidden: tuple = (500,)  # widths of q(y|x)'s hidden layers
    latent: int = 50  # Z
    activation: str = "softplus"  # between dense layers
    alpha: float = 0.1  # α_batch: weight of −log q(y|x) per labelled example of the batch mean [eq:m2-loss]
    init: str = "auto"  # dense layers' initialization (nn.mlp)
    seed: int = 0  # initial weights
    dtype: str = "float32"  # "float64" for gradient checks

    def __post_init__(self):
        problems = list(field_problems(self).values())
        self.hidden, self.classifier_hidden = tuple(self.hidden), tuple(self.classifier_hidden)
        if not problems:
            if min(self.input_dim, self.latent, *self.hidden, *self.classifier_hidden) < 1:
                problems.append(f"sizes must be positive, got input_dim={self.input_dim}, hidden={self.hidden}, "
                                f"classifier_hidden={self.classifier_hidden}, latent={self.latent}")
            if self.classes < 2:
                problems.append(f"classes must be at least 2, got {self.classes}")
            if self.activation not in ACTIVATIONS:
                problems.append(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
            if not (np.isfinite(self.alpha) and self.alpha >= 0):
                problems.append(f"alpha must be a finite number >= 0, got {self.alpha}")
            if self.dtype not in ("float32", "float64"):
                problems.append(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if problems:
            raise ValueError("invalid M2 config: " + "; ".join(problems))

    def to_dict(self):
        return {**dataclasses.asdict(self), "hidden": list(self.hidden), "classifier_hidden": list(self.classifier_hidden)}

    def describe(self):
        sizes = "-".join(map(str, (self.input_dim, *self.hidden, self.latent)))
        clf = "-".join(map(str, (self.input_dim, *self.classifier_hidden, self.classes)))
        return f"m2 {sizes} (+{self.classes} labels), classifier {clf}, {self.activation}, α {self.alpha:g}"


class M2:
    """q(y|x), q(z|x, y) and p(x|y, z) trained on labelled and unlabelled data (see the module docstring)."""

    def __init__(self, config=None, **overrides):
        config = dataclasses.replace(config, **overrides) if config else M2Config(**overrides)
        self.config, self.dtype = config, np.dtype(config.dtype)
        rng = np.random.default_rng(config.seed)
        d, c, z, act = config.input_dim, config.classes, config.latent, config.activation
        kw = dict(rng=rng, init=config.init, dtype=self.dtype)
        # nothing upstream of the data learns: the first layers of q(y|x) and q(z|x, y) compute no dL/dx
        self.classifier = Classifier(mlp([d, *config.classifier_hidden, c], act, first_needs_dx=False, **kw), c)
        self.encoder = mlp([d + c, *config.hidden, 2 * z], act, first_needs_dx=False, **kw)  # [x | y] -> [μ | log σ²]
        # its first layer on the rows (x_n, y_r): x_n's product once per example, not once per label
        self.encoder.layers[0] = LabelledRowsDense(self.encoder.layers[0], d, c)
        self.decoder = mlp([z + c, *reversed(config.hidden), d], act, **kw)  # [z | y] -> logits
        self.networks = Networks(classifier=self.classifier.net, encoder=self.encoder, decoder=self.decoder)
        self.rng = np.random.default_rng(config.seed + 1)
        self.xp = np  # the model runs on the host
        self._cache = None
        self.stats = {}

    @property
    def params(self):
        return self.networks.params

    @property
    def grads(self):
        return self.networks.grads

    @property
    def num_params(self):
        return int(sum(v.size for v in self.params.values()))

    # ---- the pieces

    def classify(self, x):
        """log q(y|x) (N, C)."""
        check_array(x, "x", shape=(None, self.config.input_dim))
        return self.classifier.log_prob(x)

    def predict(self, x, batch_size=1000):
        """The most probable label under q(y|x) of each row of x (N,), in batches."""
        out = [np.argmax(self.classifier.forward(x[i:i + batch_size]), axis=1) for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def decode(self, z, labels):
        """The mean image σ(logits) (N, D) of p(x|y, z) for z (N, Z) and labels (N,)."""
        check_array(z, "z", shape=(None, self.config.latent))
        labels = check_labels(labels, z.shape[0], self.config.classes, name="labels")
        return sigmoid(self.decoder.forward(np.concatenate([z, one_hot(labels, self.config.classes, z.dtype, np)], 1)))

    def rows(self, labels):
        """R, the rows of a batch with these labels: ε for it is (R, Z)."""
        return row_count(np.asarray(labels), self.config.classes)

    def neg_bounds(self, x, eps):
        """−L(x, y) [eq:m2-labelled] of each row of x (N, D) under every label (N, C), with ε (N·C, Z): row n·C + y
        of ε for example n and label y, as ``label_rows`` orders an unlabelled batch. For evaluation: it sets no
        gradient, and a ``backward`` after it is refused until the next ``forward``."""
        c, z_dim = self.config.classes, self.config.latent
        check_batch(self, x, True)  # (N, D)
        n = x.shape[0]
        example, label, _ = label_rows(np.full(n, UNLABELLED, dtype=np.int64), c)  # (N·C,) each
        if tuple(getattr(eps, "shape", ())) != (n * c, z_dim):
            raise ShapeError(f"eps: expected shape (N·C, Z) = {(n * c, z_dim)}, one row per example and label, got "
                             f"{tuple(getattr(eps, 'shape', ()))}")
        check_array(eps, "eps")
        self._cache = None  # the layers' caches now hold these rows, not the last forward's
        h = self.encoder.forward((x, example, label))  # (N·C, 2Z)
        mu, log_var = h[:, :z_dim], h[:, z_dim:]
        zs = mu + np.exp(0.5 * log_var) * eps  # (N·C, Z)  [eq:reparam]
        logits_x = self.decoder.forward(np.concatenate([zs, one_hot(label, c, self.dtype, np)], axis=1))  # (N·C, D)
        return bound_rows(logits_x, x[example], mu, log_var, c)[0].reshape(n, c)  # [eq:m2-labelled]

    # ---- the loss

    def forward(self, x, labels, eps=None, *, alpha=None, validate=True):
        """The loss [eq:m2-loss] (0-d, nats per example) of x (N, D) with labels (N,) (−1: unlabelled) and noise
        ε (R, Z) for the rows ``label_rows`` makes (drawn from the model's generator when None)."""
        cfg = self.config
        check_batch(self, x, validate)  # (N, D), N >= 1, the model's dtype, on the host
        labels = check_labels(labels, x.shape[0], cfg.classes, allow_unlabelled=True, name="labels")
        alpha = cfg.alpha if alpha is None else float(alpha)
        example, label, _ = label_rows(labels, cfg.classes)
        r = example.shape[0]
        if eps is None:
            eps = self.rng.standard_normal((r, cfg.latent), dtype=self.dtype)
        if tuple(getattr(eps, "shape", ())) != (r, cfg.latent):
            raise ShapeError(f"eps: expected shape (R, Z) = {(r, cfg.latent)}, one row per labelled example and "
                             f"{cfg.classes} per unlabelled one, got {tuple(getattr(eps, 'shape', ()))}")
        check_array(eps, "eps", finite=validate)
        logits_y = self.classifier.forward(x)  # (N, C)
        y_rows = one_hot(label, cfg.classes, self.dtype, np)  # (R, C)  [eq:cvae-concat]
        x_rows = x[example]  # (R, D)
        h = self.encoder.forward((x, example, label))  # (R, 2Z): the dense layers of [x_n | onehot(y_r)]
        mu, log_var = h[:, :cfg.latent], h[:, cfg.latent:]  # (R, Z) each
        std = np.exp(0.5 * log_var)
        z = mu + std * eps  # (R, Z)  [eq:reparam]
        logits_x = self.decoder.forward(np.concatenate([z, y_rows], axis=1))  # (R, D)
        neg_l, dout, dmu_kl, dlog_var_kl = bound_rows(logits_x, x_rows, mu, log_var, cfg.classes)  # [eq:m2-labelled]
        loss, d_neg_l, dlogits, self.stats = m2_loss(neg_l, logits_y, labels, alpha)  # [eq:m2-loss]
        self._cache = (d_neg_l, dout, dmu_kl, dlog_var_kl, eps, std, dlogits)
        return loss

    def backward(self):
        """Every parameter's ∂loss/∂θ into ``grads`` from the last forward; returns ``grads``."""
        if self._cache is None:
            raise RuntimeError("M2.backward called before forward: run forward(x, labels) first")
        d_neg_l, dout, dmu_kl, dlog_var_kl, eps, std, dlogits = self._cache
        z_dim = self.config.latent
        w = d_neg_l[:, None].astype(self.dtype)  # (R, 1) ∂loss/∂(−L) of each row  [eq:m2-grad-rows]
        dz = self.decoder.backward(dout * w)[:, :z_dim]  # (R, Z): [z | y]'s label columns are data  [eq:cvae-grad-z]
        dmu = dz + w * dmu_kl  # [eq:reparam-grad-mu] [eq:kl-grad-mu]
        dlog_var = 0.5 * dz * eps * std + w * dlog_var_kl  # [eq:reparam-grad-logvar] [eq:kl-grad-logvar]
        self.encoder.backward(np.concatenate([dmu, dlog_var], axis=1))  # (R, 2Z)  [eq:encoder-output-grad]
        self.classifier.backward(dlogits.astype(self.dtype))  # [eq:m2-grad-logits] [eq:m2-grad-alpha]
        return self.grads

    def loss_and_grad(self, x, labels, eps=None, **kwargs):
        loss = self.forward(x, labels, eps, **kwargs)
        return loss, self.backward()

    # ---- save and load: plain arrays and the config as JSON

    def save(self, path, extra=None):
        """Write the weights, the config and ``extra`` (name -> array) to ``path`` (.npz, atomically)."""
        arrays = {f"param.{k}": np.asarray(v) for k, v in self.params.items()}
        arrays.update(format=np.array(FORMAT), config=json_array(self.config.to_dict()), **(extra or {}))
        return save_arrays(path, arrays)

    @classmethod
    def load(cls, path):
        """The M2 model saved at ``path``; a CheckpointError names what is wrong with any other file."""
        arrays = load_arrays(path, required=("format", "config"))
        if str(arrays["format"][()]) != FORMAT:
            raise CheckpointError(f"{path}: expected an M2 checkpoint (format {FORMAT!r}), got format "
                                  f"{str(arrays['format'][()])!r}")
        try:
            model = cls(M2Config(**from_json_array(arrays["config"], path)))
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{path}: its stored M2 config is unusable: {err}") from err
        for k, v in model.params.items():
            stored = arrays.get(f"param.{k}")
            if stored is None or stored.shape != v.shape:
                raise CheckpointError(f"{path}: parameter {k} missing or of shape "
                                      f"{None if stored is None else stored.shape}, expected {v.shape}")
            v[...] = stored
        return model

