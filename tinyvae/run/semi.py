"""Training the semi-supervised M2 on a few labels: ``train_m2(config)``, ``tinyvae train --model m2``.

Kingma, Rezende, Mohamed & Welling (NeurIPS 2014), sec. 4.1: MNIST with a class-balanced labelled
subset (100 labels: ten of each digit) and the rest of the training images as unlabelled data.

The recipe: draw the labelled subset (``draw_labelled``, from ``label_seed``), check everything,
make the run folder and write config.json (with the labelled indices), then the epochs. An epoch is
one pass over the unlabelled images in the order ``epoch_permutation``; every step mixes
``batch_size`` of them with ``labelled_batch`` labelled examples (at most ``labels``) drawn afresh, without
replacement, from the step's generator ``default_rng([seed, epoch, step])``,
which also binarizes and draws ε. The loss is the batch mean [eq:m2-loss]. After each epoch: the test
error of q(y|x) (argmax), a line in metrics.jsonl and checkpoint.npz (``M2.save``). A run of M2 does
not resume; start it again.

A line of metrics.jsonl: ``epoch``; ``test_error``, the share of the test images (grey levels) whose most
probable label under q(y|x) is wrong; ``seconds``, the epoch's wall-clock training time; and the means over the
epoch's steps of each step's terms, on the training images as trained (binarized with --binarize):
``train_loss`` (the batch loss [eq:m2-loss]), ``train_labelled`` (−L(x, y) of the step's labelled examples,
their mean), ``train_unlabelled`` (−U(x) of its unlabelled ones, their mean), ``train_cross_entropy``
(−log q(y|x) of its labelled examples, their mean) and ``train_entropy`` (the entropy of q(y|x) in nats, the
mean over its unlabelled images; ``label_diagnostic``'s ``q_entropy`` is the same quantity on test images).

``train_classifier_alone``: the same classifier network trained on the labelled subset only, its
cross-entropy by Adam, the baseline the semi-supervised model is compared with. ``label_diagnostic``: how
often the generative model's own label, argmin over y of −L(x, y) [eq:m2-generative-label], is wrong, and
the mean entropy of q(y|x).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checks import field_problems
from ..data import BINARIZE_MODES, epoch_permutation, to_float
from ..errors import UserError, explain, file_errors
from ..models.m2 import M2, M2Config
from ..models.parts.classifier import UNLABELLED, check_labels, log_softmax
from ..nn.optim import Adam
from .config import ConfigError
from .folder import CHECKPOINT_NAME, CONFIG_NAME, METRICS_NAME, make_run_dir, plural, refuse_existing_run, version

CLASSES = 10
LABELLED_BATCH = 100  # labelled examples per step by default (all the labels when there are fewer)


class TrainingDiverged(UserError, ArithmeticError):
    """The loss of a step is NaN or infinite."""


@dataclass
class SemiConfig:
    """A run of M2: stored in its config.json."""

    model: str = "m2"  # the family (the run folder's name reads it)
    labels: int = 100  # labelled training examples, drawn class-balanced: labels/10 of each digit
    label_seed: int = 0  # which labelled subset: another seed, another draw of the same size
    alpha: float = 0.1  # α_batch, the weight of −log q(y|x) per labelled example of the batch mean (M2Config's
    # default too); 0.1 with equal labelled and unlabelled batches gives the labelled cross-entropy about the share
    # of Kingma et al.'s α = 0.1·N_train (derivations/semi-supervised.md, 'Why α is needed, and which α')
    hidden: tuple = (500,)  # q(z|x, y)'s hidden widths (p(x|y, z) mirrors them); one layer of 500, as in the
    # authors' code (nips14-ssl, run_2layer_ssl.py: 500, and 300 for its 100-label run; there M2 models the
    # features of a pretrained M1, not pixels)
    classifier_hidden: tuple = (500,)  # q(y|x)'s hidden widths
    latent: int = 50  # Z, 50 as in the authors' code
    activation: str = "softplus"  # as in the authors' code
    epochs: int = 10  # passes over the unlabelled images
    batch_size: int = 100  # unlabelled images per step
    labelled_batch: int | None = None  # labelled examples per step, drawn afresh each step without replacement, at
    # most ``labels``; None: LABELLED_BATCH, or all the labels when there are fewer (config.json records the number)
    lr: float = 3e-4  # Adam's learning rate (3e-4 in the authors' code, learn_yz_x_ss.py)
    binarize: str = "dynamic"  # "none", "static" or "dynamic": a fresh Bernoulli draw of each batch
    data: str | None = None  # folder of MNIST-format IDX files; None: the bundled MNIST
    limit_train: int = 0  # the first N training images only (0: all)
    limit_test: int = 0  # the first N test images only (0: all)
    validation: int = 0  # (kept at 0: the data loader's field)
    seed: int = 0  # weights, data order, every ε and binarization
    out: str | None = None  # run folder; None: runs/<date-time>-m2-z<latent>

    def __post_init__(self):
        problems = list(field_problems(self).values())
        self.hidden, self.classifier_hidden = tuple(self.hidden), tuple(self.classifier_hidden)
        if self.labelled_batch is None:  # the default: at most the labels there are
            labels_ok = "labels" not in field_problems(self) and self.labels >= 1
            self.labelled_batch = min(LABELLED_BATCH, self.labels) if labels_ok else LABELLED_BATCH
        elif isinstance(self.labelled_batch, (int, np.integer)) and not isinstance(self.labelled_batch, (bool, np.bool_)):
            self.labelled_batch = int(self.labelled_batch)
        else:
            problems.append(f"labelled_batch must be an integer, got {self.labelled_batch!r}")
        if not problems:
            for name in ("labels", "epochs", "batch_size", "labelled_batch", "latent"):
                if getattr(self, name) < 1:
                    problems.append(f"{flag(name)} must be an integer >= 1, got {getattr(self, name)}")
            if self.labels >= 1 and self.labels % CLASSES:
                problems.append(not_a_multiple(self.labels, CLASSES))
            if self.labelled_batch > self.labels >= 1:
                problems.append(f"--labelled-batch {self.labelled_batch} is more than --labels {self.labels}: each "
                                f"step draws its labelled examples without replacement from the {self.labels} "
                                f"labelled ones; use --labelled-batch {self.labels} or fewer")
            if not (np.isfinite(self.alpha) and self.alpha >= 0):
                problems.append(f"--alpha must be a finite number >= 0, got {self.alpha}")
            if not (np.isfinite(self.lr) and self.lr > 0):
                problems.append(f"--lr must be a finite number > 0, got {self.lr}")
            if self.binarize not in BINARIZE_MODES:
                problems.append(f"--binarize must be one of {BINARIZE_MODES}, got {self.binarize!r}")
            if self.model != "m2" or self.validation:
                problems.append(f"model must be 'm2' and validation 0, got {self.model!r} and {self.validation}")
        if problems:
            raise ConfigError("invalid M2 training config: " + "; ".join(problems))

    def model_config(self, input_dim):
        return M2Config(input_dim=input_dim, classes=CLASSES, hidden=self.hidden, classifier_hidden=self.classifier_hidden,
                        latent=self.latent, activation=self.activation, alpha=self.alpha, seed=self.seed)

    def to_dict(self):
        return {**dataclasses.asdict(self), "hidden": list(self.hidden), "classifier_hidden": list(self.classifier_hidden)}


def flag(field):
    """The command-line flag of a SemiConfig field: labelled_batch -> --labelled-batch."""
    return "--" + field.replace("_", "-")


def not_a_multiple(n_labels, classes):
    """The error for a --labels that no class-balanced subset has, with the nearest values that one has."""
    below = n_labels // classes * classes
    nearest = f"{below} or {below + classes}" if below else f"{classes}"
    return (f"--labels {n_labels}: a class-balanced subset needs a multiple of {classes} (the same number of each "
            f"digit); use {nearest}")


def most_labels(counts, n):
    """The largest class-balanced subset of a training set with ``counts`` (C,) examples per class and ``n`` in all
    that leaves at least one example unlabelled: C times the smallest count (one fewer each if that takes all n)."""
    per_class = int(counts.min())
    if per_class * len(counts) >= n:
        per_class -= 1
    return len(counts) * max(per_class, 0)


def draw_labelled(train_y, n_labels, seed, classes=CLASSES, *, source=None):
    """Indices (sorted) of ``n_labels`` training examples, n_labels/C of each class, drawn with ``seed``; at least
    one example is left unlabelled. ``source`` names the training set in the errors."""
    n = len(train_y)
    source = source or f"the {n:,} training images"
    if n_labels % classes:
        raise ConfigError(not_a_multiple(n_labels, classes))
    counts = np.bincount(train_y, minlength=classes)[:classes]  # (C,)
    most, per_class = most_labels(counts, n), n_labels // classes
    if n_labels > most:
        rare = int(np.argmin(counts))
        if per_class > counts[rare]:
            why = (f"a class-balanced subset takes {per_class:,} examples of each class, but class {rare} has only "
                   f"{counts[rare]:,} in {source}")
        else:
            why = f"it would label every one of {source}, and M2 needs unlabelled images too"
        advice = (f"ask for at most {most} (a multiple of {classes})" if most else
                  f"no class-balanced subset leaves an image unlabelled: class {rare} has {counts[rare]:,}")
        raise ConfigError(f"--labels {n_labels}: {why}; {advice}")
    rng, chosen = np.random.default_rng(seed), []
    for c in range(classes):
        chosen.append(rng.choice(np.flatnonzero(train_y == c), size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def load_data(config, dataset=None):
    """(images, labels) of train and test (uint8, limits applied), the labels checked to be 0..9."""
    from .loop import load_images  # noqa: PLC0415

    data = load_images(config, dataset)
    for split, x, y in (("training", data.train_x, data.train_y), ("test", data.test_x, data.test_y)):
        try:
            check_labels(y, len(x), CLASSES, name=f"the {split} labels")
        except ValueError as err:
            raise ConfigError(f"{err}: M2 classifies digits into {CLASSES} classes") from None
    return data


def train_m2(config=None, *, dataset=None, log=print, on_epoch=None):
    """Train M2 as ``config`` (a SemiConfig) says; returns the run folder. Bad settings are refused before the
    folder is made. ``on_epoch(record)`` is called with each epoch's metrics."""
    config = dataclasses.replace(config or SemiConfig())
    if config.out is not None:
        refuse_existing_run(Path(config.out))
    data = load_data(config, dataset)
    source = f"the {len(data.train_y):,} training images" + (
        f" that --limit-train {config.limit_train} keeps" if config.limit_train else "")
    labelled = draw_labelled(data.train_y, config.labels, config.label_seed, source=source)
    unlabelled = np.setdiff1d(np.arange(len(data.train_x)), labelled)
    model = M2(config.model_config(data.train_x.shape[1]))
    optimizer = Adam(model.params, model.grads, lr=config.lr)
    folder = make_run_dir(config)
    write_config(folder, config, model, labelled, len(unlabelled), len(data.test_x))
    log(f"training {model.config.describe()} ({model.num_params:,} parameters) on {config.labels} labelled and "
        f"{len(unlabelled):,} unlabelled images, {plural(config.epochs, 'epoch')}; run folder {folder}")
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        sums = train_epoch(model, optimizer, data, labelled, unlabelled, config, epoch)
        seconds = time.perf_counter() - start
        record = {"epoch": epoch, **sums, "test_error": test_error(model, data.test_x, data.test_y),
                  "seconds": seconds}
        with file_errors("write the metrics", folder / METRICS_NAME, "the run's earlier epochs are intact"):
            with open(folder / METRICS_NAME, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        model.save(folder / CHECKPOINT_NAME, extra={"epoch": np.array(epoch)})
        log(f"epoch {epoch}/{config.epochs}  loss {record['train_loss']:.2f}  test error {100 * record['test_error']:.2f} %"
            f"  {seconds:.1f} s")
        if on_epoch is not None:
            on_epoch(record)
    return folder


def write_config(folder, config, model, labelled, n_unlabelled, n_test):
    doc = {**config.to_dict(), "model_config": model.config.to_dict(), "labelled_indices": labelled.tolist(),
           "unlabelled_examples": int(n_unlabelled), "test_examples": int(n_test), "tinyvae_version": version(),
           "numpy_version": np.__version__, "python_version": sys.version.split()[0]}
    with file_errors("write the run's config", folder / CONFIG_NAME, "nothing was trained yet"):
        (folder / CONFIG_NAME).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def train_epoch(model, optimizer, data, labelled, unlabelled, config, epoch):
    """One pass over the unlabelled images, each step with its labelled examples; the epoch's mean terms."""
    order = unlabelled[epoch_permutation(len(unlabelled), config.seed, epoch)]
    mode = "dynamic" if config.binarize == "dynamic" else "none"
    steps = -(-len(order) // config.batch_size)
    sums, seen = {}, 0
    for step in range(steps):
        rng = np.random.default_rng([config.seed, epoch, step])  # all of this step's randomness
        lab = rng.permutation(labelled)[:config.labelled_batch]
        unl = order[step * config.batch_size:(step + 1) * config.batch_size]
        x = to_float(data.train_x[np.concatenate([lab, unl])], mode, rng)  # (N, D)
        labels = np.concatenate([data.train_y[lab].astype(np.int64), np.full(len(unl), UNLABELLED)])
        eps = rng.standard_normal((model.rows(labels), config.latent), dtype=np.float32)  # (R, Z)
        loss = float(model.forward(x, labels, eps, validate=False))
        if not np.isfinite(loss):
            raise TrainingDiverged(f"M2 training diverged at epoch {epoch}, step {step}: the loss is {loss}; the run "
                                   f"folder keeps the checkpoint of the last whole epoch; start again with a lower --lr "
                                   f"(it was {config.lr:g})")
        model.backward()
        optimizer.step()
        for k, v in model.stats.items():
            sums[f"train_{k}"] = sums.get(f"train_{k}", 0.0) + float(v)
        seen += 1
    return {k: v / seen for k, v in sums.items()}


def test_error(model, images, labels):
    """The share of ``images`` (uint8) whose most probable label under q(y|x) is not ``labels``."""
    errors = 0
    for i in range(0, len(images), 1000):
        x = to_float(images[i:i + 1000], "none")  # evaluation reads grey levels (binarized at load if static)
        errors += int((model.predict(x.astype(model.dtype)) != labels[i:i + 1000]).sum())
    return errors / len(images)


def diagnostic_inputs(images, labels, input_dim, classes):
    """``label_diagnostic``'s images (N, D), uint8 0-255 or floats in [0, 1], and labels (N,) in 0..C-1, checked;
    a ValueError names what was wrong, what was given and what was expected."""
    images = np.asarray(images)
    if images.ndim != 2 or images.shape[1] != input_dim:
        raise ValueError(f"label_diagnostic: images must be one row of {input_dim} pixels per image, shape "
                         f"(N, {input_dim}), got shape {images.shape}")
    if images.dtype != np.uint8:
        if images.dtype.kind != "f":
            raise ValueError(f"label_diagnostic: images must be uint8 grey levels 0-255 (as tinyvae.data.load_split "
                             f"gives them) or floats in [0, 1], got dtype {images.dtype}")
        if not bool(np.all((images >= 0) & (images <= 1))):
            raise ValueError(f"label_diagnostic: float images must lie in [0, 1] (uint8 images are read as 0-255), got "
                             f"values from {np.nanmin(images):g} to {np.nanmax(images):g}"
                             + (" and NaN" if np.isnan(images).any() else ""))
    labels = np.asarray(labels)
    if labels.shape != (len(images),):
        raise ValueError(f"label_diagnostic: labels must be one label per image, {len(images)} of them (shape "
                         f"({len(images)},)), got shape {labels.shape}")
    return images, check_labels(labels, len(images), classes, name="label_diagnostic: labels")


def label_diagnostic(model, images, labels, samples=5, seed=0, batch_size=200):
    """How M2's two halves label ``images`` (N, D), uint8 0-255 as ``tinyvae.data.load_split`` gives them (read
    as grey levels, as ``test_error`` reads them) or floats in [0, 1], against the true ``labels`` (N,): {"generative_error": the share whose generative label, argmin over y of −L(x, y) averaged
    over ``samples`` draws of ε [eq:m2-generative-label], is not the true one; "q_entropy": the mean entropy of
    q(y|x), nats [eq:m2-unlabelled]}. Draw s of ε for all the images is ``default_rng([seed, s])``'s (N·C, Z)."""
    n, c, z_dim = len(images), model.config.classes, model.config.latent
    if n == 0 or samples < 1:
        raise ValueError(f"label_diagnostic needs at least one image and one sample, got {n} and {samples}")
    images, labels = diagnostic_inputs(images, labels, model.config.input_dim, c)
    eps = [np.random.default_rng([seed, s]).standard_normal((n * c, z_dim), dtype=model.dtype)
           for s in range(samples)]  # (N·C, Z) each
    wrong, entropy = 0, 0.0
    for i in range(0, n, batch_size):
        x = images[i:i + batch_size]  # (B, D)
        x = (to_float(x, "none") if x.dtype == np.uint8 else x).astype(model.dtype)
        rows = slice(i * c, (i + len(x)) * c)
        neg_l = sum(model.neg_bounds(x, e[rows]).astype(np.float64) for e in eps) / samples  # (B, C)
        wrong += int((np.argmin(neg_l, axis=1) != labels[i:i + batch_size]).sum())  # [eq:m2-generative-label]
        log_q = model.classify(x).astype(np.float64)  # (B, C)
        entropy += float(-(np.exp(log_q) * log_q).sum())  # H(q(y|x)) of each, summed  [eq:m2-unlabelled]
    return {"generative_error": wrong / n, "q_entropy": entropy / n}


def train_classifier_alone(config, data=None, labelled=None, *, steps=None):
    """The M2 classifier network, trained on the labelled examples only (their cross-entropy, Adam at config.lr,
    minibatches of labelled_batch); returns (model, test error). ``data`` (default: loaded as ``train_m2``
    loads it, limits and binarization applied) and ``labelled``, indices into its training images (default:
    the subset ``train_m2`` draws from the same config). ``steps``: Adam steps (default: as many as the M2 run
    takes, ``epochs`` passes over the unlabelled images in batches of ``batch_size``)."""
    data = load_data(config) if data is None else data
    labelled = draw_labelled(data.train_y, config.labels, config.label_seed) if labelled is None else labelled
    model = M2(config.model_config(data.train_x.shape[1]))
    params = {k: v for k, v in model.params.items() if k.startswith("classifier.")}
    optimizer = Adam(params, {k: model.grads[k] for k in params}, lr=config.lr)
    steps = steps or config.epochs * -(-(len(data.train_x) - len(labelled)) // config.batch_size)
    mode = "dynamic" if config.binarize == "dynamic" else "none"
    for step in range(steps):
        rng = np.random.default_rng([config.seed, 0, step])
        lab = rng.permutation(labelled)[:config.labelled_batch]
        x = to_float(data.train_x[lab], mode, rng)
        y = data.train_y[lab].astype(np.int64)
        q = np.exp(log_softmax(model.classifier.forward(x)))  # (N, C)
        q[np.arange(len(y)), y] -= 1.0  # ∂ mean(−log q(y|x)) / ∂logits = (q − onehot)/N  [eq:m2-grad-alpha]
        model.classifier.backward((q / len(y)).astype(model.dtype))
        optimizer.step()
    return model, test_error(model, data.test_x, data.test_y)


# --------------------------------------------------------------------------- the command line

# the flags of ``tinyvae train`` that a run of M2 reads (the others are refused with it)
M2_FLAGS = ("model", "labels", "label_seed", "alpha", "labelled_batch", "classifier_hidden", "hidden", "latent",
            "activation", "epochs", "batch_size", "lr", "binarize", "data", "limit_train", "limit_test", "seed", "out")
IGNORED = ("func", "command", "no_progress", "no_pictures")


def m2_defaults():
    """The line of ``tinyvae train --help`` that gives --model m2's own defaults, read from SemiConfig."""
    d = SemiConfig()
    return (f"--model m2 has its own defaults: --labels {d.labels} --label-seed {d.label_seed} --alpha {d.alpha:g} "
            f"--labelled-batch {d.labelled_batch} --batch-size {d.batch_size} --hidden {' '.join(map(str, d.hidden))} "
            f"--classifier-hidden {' '.join(map(str, d.classifier_hidden))} --latent {d.latent} --activation "
            f"{d.activation} --lr {d.lr:g} --binarize {d.binarize} --epochs {d.epochs} --seed {d.seed}; it reads only "
            f"these flags and --data, --limit-train, --limit-test and --out (and ignores --no-pictures and --no-progress).")


def m2_command(args):
    """``tinyvae train --model m2 ...``: a clear one-line error for bad input, never a traceback or a run folder."""
    given = vars(args)
    other = sorted(f"--{k.replace('_', '-')}" for k in given if k not in M2_FLAGS and k not in IGNORED)
    if other:
        print(f"tinyvae train: error: --model m2 does not use {', '.join(other)}; it reads "
              f"{', '.join('--' + k.replace('_', '-') for k in M2_FLAGS[1:])}", file=sys.stderr)
        return 2
    fields = {k: v for k, v in given.items() if k in M2_FLAGS}
    if "latent" in fields:
        if len(fields["latent"]) != 1:
            print(f"tinyvae train: error: --model m2 has one latent size, got {len(fields['latent'])}", file=sys.stderr)
            return 2
        fields["latent"] = fields["latent"][0]
    try:
        train_m2(SemiConfig(**fields))
    except ConfigError as err:
        print(f"tinyvae train: error: {err}", file=sys.stderr)
        return 2
    except (UserError, OSError) as err:
        print(f"tinyvae train: error: {explain(err)}", file=sys.stderr)
        return 1
    return 0
