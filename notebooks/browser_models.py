"""The models a notebook trains with ``tinyvae.train``, declared once for the notebook and the site's build.

Training a notebook's models takes about a minute with a native NumPy and many minutes in the browser
(the browser edition, docs/browser.md: NumPy without an optimized matrix library, on one thread). So
a notebook that trains several models declares them here, each by name: the digits it trains on and
its ``TrainConfig`` fields, seed included. The notebook gets them with ``models(NOTEBOOK)`` and calls
``fit(name, **changes)``, the changes written out where the lesson shows them:

* natively, ``fit`` trains the model with ``tinyvae.train``, as the notebook always did;
* in the browser (Pyodide, ``sys.platform == "emscripten"``), it loads the checkpoint that
  ``python docs/build_site.py --lite`` trained natively from the same declaration (``make``) and shipped
  with this module in the app's wheel ``tinyvae-notebook-models``.

Either way ``fit`` first checks that the changes it was given are the declared ones, and in the browser
that the checkpoint was trained by exactly the declared config: a notebook and a build that disagree
fail loudly instead of showing another model. tinyvae's training is reproducible from its config and
seed (bit for bit whatever tinyvae's own thread count, on one BLAS kernel with BLAS on one thread), so
the loaded model is, bit for bit, the one ``fit`` trains natively on the machine that built the site,
with the same NumPy and BLAS kernel (tests/test_browser_models.py checks this in one process). A native
retrain on another CPU or BLAS kernel, or with ``OPENBLAS_NUM_THREADS`` set above 1, adds up its
products in another order: its weights then differ in the last bits, and the figures computed from
them slightly. Likewise the figures computed from a loaded model in the browser may differ slightly
from a native run's, because the browser's NumPy (no optimized BLAS) adds up float32 products in
another order; the stored outputs match them only as closely as the machine that ran the notebook
matches the one that built the site.

A checkpoint holds the training config as JSON (``train_config``) and what ``fit`` returns: for
``Models``, the weights and the model config (tinyvae's model format: float32, no optimizer state);
for ``WithMetrics``, those and the run's per-epoch metrics (``metrics``); for ``SemiSupervised``, the
record only (``record``), no weights. All are plain arrays (``np.savez``, read with
``allow_pickle=False``), written atomically.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

import tinyvae
from tinyvae import data
from tinyvae.checkpoint import save_arrays

# where the app's wheel puts the checkpoints, beside this module: FOLDER/NOTEBOOK/NAME.npz
FOLDER = Path(__file__).resolve().parent / "tinyvae_notebook_checkpoints"
RETRAIN = "run the notebook with Jupyter on your own machine: there fit trains every model natively"


class Models:
    """One notebook's models: ``dataset`` they train on and ``declared`` {name: TrainConfig fields changed
    from ``base``}; ``fit(name, **changes)`` trains natively and loads in the browser."""

    def __init__(self, notebook, dataset, base, declared):
        self.notebook, self.dataset, self.base, self.declared = notebook, dataset, dict(base), dict(declared)

    def config(self, name):
        """The declared TrainConfig fields of ``name`` (its run folder left out)."""
        if name not in self.declared:
            raise KeyError(f"{self.notebook} declares no model {name!r} in browser_models.py; "
                           f"it declares {sorted(self.declared)}")
        return {**self.base, **self.declared[name]}

    def fit(self, name, out=None, **changes):
        """The model ``name``, trained by ``base`` with ``changes`` (natively: into the run folder ``out``,
        a scratch folder by default); in the browser, the checkpoint the build trained by that config."""
        declared = self.declared.get(name)
        if declared is None or not same_fields(changes, declared):
            raise ValueError(f"{self.notebook}: fit({name!r}, {_fields(changes)}) is not the declared model "
                             f"{name!r} ({_fields(declared) if declared is not None else 'none'}) of "
                             "browser_models.py; change both, so that the browser loads the model this call trains")
        if sys.platform == "emscripten":  # Pyodide: the browser
            return self.load(name)
        return self.train(self.config(name), out or tempfile.mkdtemp(prefix=f"tinyvae-{name}-"), progress=True)[0]

    def path(self, name, folder=None):
        return Path(folder or FOLDER) / self.notebook / f"{name}.npz"

    def load(self, name, folder=None):
        """The checkpoint of ``name`` the build made, refused unless trained by the declared config."""
        path = self.path(name, folder)
        if not path.is_file():
            raise FileNotFoundError(f"{self.notebook}: no checkpoint of {name!r} at {path}: the app was built without "
                                    f"it (python docs/build_site.py --lite makes it); or {RETRAIN}")
        with np.load(path, allow_pickle=False) as arrays:
            stored = json.loads(str(arrays["train_config"]))
        declared = self.every_field(self.config(name))
        if not same_fields(stored, declared):
            differ = sorted(k for k in {**stored, **declared} if not same_fields({k: stored.get(k)}, {k: declared.get(k)}))
            raise ValueError(f"{path} was trained by {_fields({k: stored.get(k) for k in differ})}, not by the declared "
                             f"{_fields({k: declared.get(k) for k in differ})}; rebuild the app (python docs/build_site.py --lite)")
        return self.read(path)

    def make(self, folder, log=print):
        """Train every declared model natively and write its checkpoint into ``folder``/NOTEBOOK/;
        returns the paths. Any failure raises: an app never ships without a declared model."""
        paths = []
        for name in self.declared:
            config, path = self.config(name), self.path(name, folder)
            with tempfile.TemporaryDirectory(prefix="tinyvae-notebook-model-") as tmp:
                model, trained = self.train(config, Path(tmp) / name, progress=False)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.write(model, path, trained)  # the config train returned (the run's record where it keeps one),
            # which load compares with the declared
            log(f"browser_models: {self.notebook} {name} trained natively into {path}")
            paths.append(path)
        return paths

    # How a model is trained, written and read: a notebook whose models are of another kind (trained by
    # another function, saved otherwise) declares them with a subclass that overrides these three.

    def train(self, config, out, progress):
        """Train natively by ``config`` (TrainConfig fields) into the run folder ``out``; returns the model and
        every field of the config that the run recorded in its checkpoint (as ``every_field`` gives them)."""
        run = tinyvae.train(tinyvae.TrainConfig(**config, out=str(out)), dataset=self.dataset,
                            progress=progress, pictures=False, log=lambda *_: None)
        with np.load(Path(run) / "checkpoint.npz", allow_pickle=False) as arrays:
            recorded = json.loads(str(arrays["train_config"]))
        return tinyvae.load_model(Path(run) / "checkpoint.npz"), self.every_field(recorded)

    def every_field(self, config):
        """Every field of the TrainConfig ``config`` (defaults filled in), its run folder left out."""
        fields = tinyvae.TrainConfig.from_dict(dict(config)).to_dict()
        fields.pop("out", None)
        return json.loads(json.dumps(fields))  # as a checkpoint stores them: tuples become lists

    def write(self, model, path, config):
        """The weights, the model config and ``config`` as JSON (``train_config``), atomically, plain arrays."""
        model.save(path, extra={"train_config": np.array(json.dumps(config))})

    def read(self, path):
        return tinyvae.load_model(path)


def same_fields(a, b):
    """Whether two {field: value} are equal, floats up to rounding in their last bits (a value such as a
    variance the notebook computes from the digits may round differently in the browser)."""
    if set(a) != set(b):
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
            if list(x) != list(y):
                return False
        elif isinstance(x, float) or isinstance(y, float):
            if not (isinstance(x, (int, float)) and isinstance(y, (int, float)) and math.isclose(x, y, rel_tol=1e-9)):
                return False
        elif x != y:
            return False
    return True


def _fields(fields):
    return ", ".join(f"{k}={v!r}" for k, v in fields.items())


# --- the declarations ------------------------------------------------------------------------------

def questions():
    """Notebook 09's thirteen models (sections 2 to 5): 784-128-16 (-32 in section 5), on 5 000 digits."""
    mnist = data.load_dataset()
    x_train, x_test = mnist.train_x[:5000], mnist.test_x[:200]
    # training evaluates these 200 test digits after each epoch (its metrics); the notebook scores on 1 000
    subset = data.Dataset(x_train, mnist.train_y[:5000], mnist.val_x, mnist.val_y, x_test, mnist.test_y[:200])
    flat = data.to_float(x_train).astype(np.float64)
    data_mse = float(((flat - flat.mean(0)) ** 2).mean())  # the learned σ_x²'s start (notebook 09, section 4)
    base = dict(hidden=(128,), latent=16, batch_size=100, epochs=4, lr=1e-3, init="auto", seed=0)
    gaussian = dict(likelihood="gaussian", epochs=5, batch_size=50)
    declared = {f"beta{b}": dict(beta=b) for b in (0.1, 0.3, 1.0, 3.0, 10.0)}
    declared |= {"cb": dict(likelihood="continuous-bernoulli"),
                 "g1": dict(obs_var=1.0, **gaussian), "g05": dict(obs_var=0.5, **gaussian),
                 "glearned": dict(obs_var_mode="learned", obs_var=data_mse, **gaussian),
                 "goptimal": dict(obs_var_mode="optimal", **gaussian),
                 "plain": dict(latent=32, beta=10.0), "warmup": dict(latent=32, beta=10.0, kl_warmup=3.0),
                 "freebits": dict(latent=32, beta=10.0, free_bits=0.5)}
    return Models("09_questions", subset, base, declared)


class WithMetrics(Models):
    """Models trained by ``tinyvae.train`` that come with their run's metrics (metrics.jsonl: one record per
    epoch); ``fit`` returns (model, records), and the checkpoint keeps the records (``metrics``, JSON)."""

    def train(self, config, out, progress):
        model, recorded = super().train(config, out, progress)
        lines = (Path(out) / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        return (model, [json.loads(line) for line in lines]), recorded

    def write(self, trained, path, config):
        model, records = trained
        model.save(path, extra={"train_config": np.array(json.dumps(config)), "metrics": np.array(json.dumps(records))})

    def read(self, path):
        with np.load(path, allow_pickle=False) as arrays:
            records = json.loads(str(arrays["metrics"]))
        return tinyvae.load_model(path), records


class SemiSupervised(Models):
    """M2 runs (``tinyvae.train_m2``) and classifiers trained on the labels alone (``train_classifier_alone``,
    declared with their ``steps``), by SemiConfig fields. What ``fit`` returns, and the checkpoint keeps, is
    the record the notebook shows, not the weights: for M2 its per-epoch records and its run's config.json,
    for a classifier its test error. A classifier's run records no config: its ``train_config`` is the
    declared one, so ``load``'s comparison cannot fail for it, and the check that counts is ``fit``'s (the
    changes, ``steps`` included, must be the declared ones)."""

    def train(self, config, out, progress):
        semi = tinyvae.SemiConfig(**{k: v for k, v in config.items() if k != "steps"}, out=str(out))
        if "steps" in config:
            error = tinyvae.train_classifier_alone(semi, steps=config["steps"])[1]
            return {"test_error": float(error)}, self.every_field(config)
        curve = []
        run = tinyvae.train_m2(semi, log=print if progress else (lambda *_: None), on_epoch=curve.append)
        stored = json.loads((Path(run) / "config.json").read_text(encoding="utf-8"))
        recorded = {k: stored[k] for k in tinyvae.SemiConfig.__dataclass_fields__}  # the config the run wrote
        return {"curve": curve, "config": stored}, self.every_field(recorded)

    def every_field(self, config):
        """Every SemiConfig field of ``config`` (defaults filled in) and its ``steps`` if any, its run folder left out."""
        fields = tinyvae.SemiConfig(**{k: v for k, v in config.items() if k not in ("steps", "out")}).to_dict()
        fields.pop("out", None)
        fields |= {"steps": config["steps"]} if "steps" in config else {}
        return json.loads(json.dumps(fields))

    def write(self, record, path, config):
        save_arrays(path, {"train_config": np.array(json.dumps(config)), "record": np.array(json.dumps(record))})

    def read(self, path):
        with np.load(path, allow_pickle=False) as arrays:
            return json.loads(str(arrays["record"]))


class Parts(dict):
    """One notebook's models of several kinds, {part: Models}, made together (their names all different)."""

    def make(self, folder, log=print):
        return [path for part in self.values() for path in part.make(folder, log=log)]


def conditional():
    """Notebook 11's models: two label CVAEs and the quadrant CVAE and regressor (sections 1 and 2), one
    hidden layer of 256, 3 epochs on 10,000 digits; M2 and the classifier alone after as many steps as M2
    had taken at the end of each of its six epochs (section 3), on 5,000 digits, 100 of them labelled."""
    base = dict(hidden=(256,), epochs=3, limit_train=10_000, limit_test=500, batch_size=100, lr=2e-3, seed=0)
    quadrant = dict(condition="quadrants", quadrants=1, binarize="dynamic")
    declared = {"label-z2": dict(model="cvae", condition="label", latent=2),
                "label-z8": dict(model="cvae", condition="label", latent=8),
                "quadrant-cvae": dict(model="cvae", latent=2, **quadrant),
                "quadrant-regressor": dict(model="quadrant-regressor", **quadrant)}
    semi = dict(labels=100, hidden=(128,), classifier_hidden=(128,), latent=8, epochs=6, limit_train=5_000,
                limit_test=1_000, batch_size=50, labelled_batch=50, lr=1e-3, alpha=0.1, binarize="dynamic", seed=0)
    runs = {"m2": {}} | {f"alone-{steps}": dict(steps=steps) for steps in range(98, 6 * 98 + 1, 98)}
    return Parts(cvae=WithMetrics("11_conditional_and_semi_supervised", None, base, declared),
                 m2=SemiSupervised("11_conditional_and_semi_supervised", None, semi, runs))


NOTEBOOKS = {"09_questions": questions, "11_conditional_and_semi_supervised": conditional}
# notebook -> its declaration (one Models, or Parts for models of several kinds); the build makes every one


def models(notebook):
    """The declared models of ``notebook`` (its file name without .ipynb)."""
    if notebook not in NOTEBOOKS:
        raise KeyError(f"browser_models.py declares no models for {notebook!r}; it declares {sorted(NOTEBOOKS)}")
    return NOTEBOOKS[notebook]()
