"""M2 with few labels on MNIST: test error over several draws of the labelled set, the same classifier trained on
the labels alone, and seconds per step of M2 against the plain VAE of the same sizes.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/m2_labels.py              # 100 labels, 3 draws
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/m2_labels.py --epochs 50 --draws 5
    python benchmarks/m2_labels.py --tiny      # a seconds-long check of the script itself (not a result)

The figure to compare with is Kingma, Rezende, Mohamed & Welling (NeurIPS 2014), Table 1, M2 with 100 labels,
quoted as 11.97 % (± 1.71) test error; ``PAPER["checked"]`` says whether it has been read off the paper itself
(the JSON carries it). Each draw d (label seed d) trains ``tinyvae.run.semi.train_m2`` (784-500-50 softplus
networks by default, the labelled batch beside each unlabelled one, ``--alpha``) and the classifier network
alone on the same labelled examples (``train_classifier_alone``, as many Adam steps as the M2 run). The table
gives each draw's test error and the mean and the sample standard deviation over the draws.

Time: ``--rounds`` paired rounds; in each, ``--steps`` training steps (wall-clock and process CPU time) of M2 (batch_size unlabelled +
labelled_batch labelled images, the encoder and decoder on labelled + 10·unlabelled rows) and of the plain VAE
of the same sizes (784-500-50 softplus, batch_size images), taking turns on the same machine. Seconds per epoch
are the per-step medians times the steps of an epoch over the unlabelled images (for the VAE: over all
60,000), and the epochs of the M2 runs themselves are in their metrics. Prints the BLAS that ran
(threadpoolctl), a table, and writes the JSON to benchmarks/results/ (``--out``).

Each draw also records its test error, process CPU seconds and peak resident memory after every epoch.
``--vae-epochs N`` trains the plain VAE of the same sizes, batch and binarization with ``tinyvae.train``
in its own process for N epochs (CPU seconds of its steps, ``EpochCPU``; its own peak memory, ``VmHWM``). ``tinyvae
train`` runs BLAS on one thread (tinyvae/threads.py) and ``train_m2`` does not; ``--pin-blas`` runs the
whole script with BLAS on one thread, so that M2 and the VAE are timed alike. ``--alpha`` given several values
runs the draws once for each and writes one JSON (``by_alpha``, default <date>-m2-alpha-sweep.json);
``--no-timing`` leaves out the paired step timing.

The batch layout and optimiser are flags with ``SemiConfig``'s defaults: ``--batch-size`` (unlabelled images a
step), ``--labelled-batch`` (labelled examples a step, at most ``--labels``), ``--binarize`` and ``--lr``; for
example one labelled digit beside 200 unlabelled grey-level ones, with the default batch size and learning rate of
Pyro's SS-VAE script (not its layout: it alternates labelled-only and unlabelled steps, and at 100 labels it
refuses a batch of 200):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/m2_labels.py --draws 1 --epochs 12 \
        --batch-size 200 --labelled-batch 1 --binarize none --lr 0.00042 --alpha 15 --no-timing --pin-blas

After every epoch of each draw the script also records ``tinyvae.run.semi.label_diagnostic`` of the epoch's
checkpoint on the first ``--diagnostic-images`` test digits (2,000; 0 for none), ε averaged over
``DIAGNOSTIC_SAMPLES`` draws: the error of the generative model's own label, argmin over y of −L(x, y)
(``generative_error_percent_by_epoch``), and q(y|x)'s mean entropy in nats (``q_entropy_by_epoch``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import tinyvae  # noqa: F401,I001  (first: it sets OpenBLAS's threads before NumPy loads)
import numpy as np

from tinyvae.models.m2 import M2  # noqa: E402
from tinyvae.models.vae import VAE  # noqa: E402
from tinyvae.nn.optim import Adam  # noqa: E402
from tinyvae.run.config import ConfigError  # noqa: E402
from tinyvae.run.semi import (SemiConfig, draw_labelled, label_diagnostic, load_data, test_error,  # noqa: E402
                              train_classifier_alone, train_m2)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import blas_info  # noqa: E402

PAPER = {"labels": 100, "test_error_percent": 11.97, "spread_percent": 1.71,
         "test_error_percent_by_labels": {"100": 11.97, "600": 4.94, "1000": 3.60, "3000": 3.92},
         "source": "Kingma, Rezende, Mohamed & Welling (NeurIPS 2014), Table 1, M2, N = 100, as quoted",
         "checked": False}  # no stored copy of the paper's text was found to read the table off
# Pyro's SS-VAE tutorial (tutorial/source/ss-vae.ipynb in pyro-ppl/pyro, its Table 1, read from the stored
# notebook): M2 with the sum over labels and the auxiliary classification loss ("third variant"), mean test
# accuracy over five draws of the labelled set with 95 % confidence bounds; the classifier on the labels alone.
PYRO_SSVAE = {"labels": 100, "accuracy": 0.9319, "bound": 0.0060, "classifier_alone_accuracy": 0.7712,
              "classifier_alone_bound": 0.0159, "draws": 5,
              # its first two variants at 100 labels: y sampled, then y summed out, both without the auxiliary loss
              "first_variant_accuracy": 0.2007, "second_variant_accuracy": 0.2254,
              "source": "pyro-ppl/pyro tutorial/source/ss-vae.ipynb, Table 1, third variant, 100 labels",
              "checked": True}
# Pyro's SS-VAE example script (examples/vae/ss_vae_M2.py in pyro-ppl/pyro at commit ff6ae1c, read from the
# stored source): its argparse defaults; the auxiliary loss is on only with --aux-loss; each labelled example is
# in one batch an epoch. Before commit b6bc8459d (April 2018) the defaults were 100 epochs and a multiplier of 300.
PYRO_SSVAE_SCRIPT = {"num_epochs": 50, "aux_loss_multiplier": 46, "learning_rate": 0.00042, "beta_1": 0.9,
                     "example_run_beta_1": 0.95, "batch_size": 200, "commit": "ff6ae1c",
                     "before_b6bc8459d": {"num_epochs": 100, "aux_loss_multiplier": 300}}
# The authors' run_2layer_ssl.py (dpkingma/nips14-ssl) with 100 labels: M2 on M1's features, 300 hidden units,
# 100 minibatches an epoch, 3,000 epochs, α = 0.1 on its 50,000 training images (anglepy/data/mnist.py).
# Its optimiser (learn_yz_x_ss.py): AdaM with alpha=3e-4, beta1=0.9 (adam.py: m += (1 - beta1)(g - m), Adam's β1).
AUTHORS_M1M2_100 = {"epochs": 3000, "hidden": 300, "minibatches": 100, "alpha": 0.1, "train_images": 50_000,
                    "adam_lr": 3e-4, "adam_beta_1": 0.9}
DIAGNOSTIC_SAMPLES = 5  # draws of ε averaged in the per-epoch label diagnostic
TINY = dict(hidden=(32,), classifier_hidden=(32,), latent=4, epochs=1, limit_train=600, limit_test=300,
            batch_size=50, labelled_batch=20)


def at_least(low):
    """An argparse type: an integer >= ``low``, or an error that says what was given."""
    def parse_int(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        return value
    return parse_int


def parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--labels", type=int, default=100,
                   help="labelled training examples, class-balanced (a multiple of 10) (default %(default)s)")
    p.add_argument("--draws", type=at_least(1), default=3,
                   help="labelled sets drawn (label seeds 0, 1, ...) (default %(default)s)")
    p.add_argument("--epochs", type=int, default=10, help="passes over the unlabelled images (default %(default)s)")
    p.add_argument("--alpha", type=float, nargs="+", default=[SemiConfig.alpha],
                   help="α_batch; several values run the draws once for each and write one JSON of them all "
                        f"(default {SemiConfig.alpha:g})")
    p.add_argument("--batch-size", type=int, default=SemiConfig.batch_size,
                   help="unlabelled images per step (default %(default)s)")
    p.add_argument("--labelled-batch", type=int, default=SemiConfig.labelled_batch,
                   help="labelled examples per step, drawn afresh each step without replacement, at most --labels "
                        f"(default {SemiConfig().labelled_batch}, or all of --labels when fewer)")
    p.add_argument("--binarize", default=SemiConfig.binarize, choices=("none", "static", "dynamic"),
                   help="the training images: grey levels, binarized once, or redrawn every step (default %(default)s)")
    p.add_argument("--lr", type=float, default=SemiConfig.lr, help="Adam's learning rate (default %(default)g)")
    p.add_argument("--diagnostic-images", type=at_least(0), default=2000,
                   help="first test digits of the per-epoch label diagnostic (label_diagnostic); 0: none "
                        "(default %(default)s)")
    p.add_argument("--no-timing", action="store_true", help="skip the paired step timing of M2 and the VAE")
    p.add_argument("--rounds", type=at_least(1), default=3, help="paired timing rounds (default %(default)s)")
    p.add_argument("--steps", type=at_least(1), default=5,
                   help="training steps of each model per timing round (default %(default)s)")
    p.add_argument("--vae-epochs", type=at_least(0), default=0,
                   help="epochs of the plain VAE of the same sizes, in its own process, for CPU time and peak memory "
                        "(default %(default)s: none)")
    p.add_argument("--pin-blas", action="store_true",
                   help="run BLAS on one thread throughout, as tinyvae train's loop does for the VAE (threads.py); "
                        "train_m2 itself leaves BLAS's threads as they are")
    p.add_argument("--tiny", action="store_true",
                   help="tiny sizes and a few steps: checks that the script runs; its figures, the label "
                        "diagnostic's included, measure nothing")
    p.add_argument("--out", help="JSON path (default benchmarks/results/<date>-m2-labels<N>.json)")
    return p


def parse(argv=None):
    return parser().parse_args(argv)


def peak_rss_mib():
    """This process's own peak resident memory so far, MiB: ``VmHWM`` in /proc/self/status (Linux, in kB); None
    where there is no such file. Not ``ru_maxrss``: on Linux a process started by ``spawn`` (fork, then exec)
    keeps in its ``ru_maxrss`` the peak of the process that started it, so the plain VAE's child would report
    M2's peak."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def mib(value):
    return "not measured" if value is None else f"{value:.0f} MiB"


def draw(config, label_seed, folder, log, diagnostic_images=0):
    """One labelled draw: {"test_error", "alone", "seconds", "test_error_by_epoch", "cpu_seconds_by_epoch",
    "peak_rss_mib_by_epoch", "score_cpu_seconds", "diagnostics", "diagnostic_cpu_seconds", "diagnostic_images"}.
    After each epoch, with ``diagnostic_images``, ``label_diagnostic`` of that epoch's checkpoint on the first
    ``diagnostic_images`` test digits ("diagnostics", one dict an epoch). An epoch's CPU seconds run from the end
    of the previous epoch's diagnostic (the first: from the call, so they include loading the data) and include
    scoring the test digits' classes, whose CPU seconds are timed once more after the run ("score_cpu_seconds");
    the diagnostics' CPU seconds are in no epoch's ("diagnostic_cpu_seconds", all epochs together)."""
    cfg = SemiConfig(**{**config, "label_seed": label_seed, "out": str(folder / f"draw{label_seed}")})
    start, cpu, peaks, diagnostics, diagnostic_cpu = time.process_time(), [], [], [], 0.0
    data = load_data(cfg) if diagnostic_images else None

    def on_epoch(record):
        nonlocal start, diagnostic_cpu
        end = time.process_time()
        cpu.append(end - start)
        peaks.append(peak_rss_mib())
        if diagnostic_images:  # on the checkpoint of the epoch just ended; its CPU time is in no epoch's
            model = M2.load(Path(cfg.out) / "checkpoint.npz")
            one = label_diagnostic(model, data.test_x[:diagnostic_images], data.test_y[:diagnostic_images],
                                   samples=DIAGNOSTIC_SAMPLES)
            diagnostics.append(one)
            log(f"epoch {record['epoch']}: the generative model's label is wrong on "
                f"{100 * one['generative_error']:.2f} % of the first {len(data.test_x[:diagnostic_images]):,} test digits; q(y|x)'s mean entropy "
                f"{one['q_entropy']:.3f} nats")
        start = time.process_time()
        diagnostic_cpu += start - end

    run = train_m2(cfg, log=log, on_epoch=on_epoch)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    data = load_data(cfg) if data is None else data
    model = M2.load(run / "checkpoint.npz")
    start = time.process_time()
    test_error(model, data.test_x, data.test_y)
    score_cpu = time.process_time() - start
    labelled = draw_labelled(data.train_y, cfg.labels, cfg.label_seed)
    _, alone = train_classifier_alone(cfg, data, labelled)
    return {"test_error": records[-1]["test_error"], "alone": alone, "seconds": [r["seconds"] for r in records],
            "test_error_by_epoch": [r["test_error"] for r in records],
            "cpu_seconds_by_epoch": cpu, "peak_rss_mib_by_epoch": peaks,
            "score_cpu_seconds": score_cpu, "diagnostics": diagnostics, "diagnostic_cpu_seconds": diagnostic_cpu,
            "diagnostic_images": len(data.test_x[:diagnostic_images]) if diagnostic_images else 0}


class EpochCPU:
    """An ``on_step`` hook of ``tinyvae.train``: the process CPU seconds of each epoch's training steps, from the
    end of its first step to the end of its last, scaled by steps / (steps - 1) to the whole epoch (the
    evaluation after each epoch is left out). An epoch of one step is not measured."""

    def __init__(self, clock=time.process_time):
        self.clock, self.first, self.seconds = clock, None, []

    def __call__(self, run):
        if run.step == 0:
            self.first = self.clock()
        elif run.step == run.steps_per_epoch - 1 and self.first is not None:
            steps = run.steps_per_epoch
            self.seconds.append((self.clock() - self.first) * steps / (steps - 1))


def plain_vae_epochs(config):
    """In a fresh process: the plain VAE of M2's sizes (784-H-Z, the same activation, batch, Adam rate and
    binarization) trained ``config['epochs']`` epochs with ``tinyvae.train``; its CPU seconds per epoch
    (``EpochCPU``), wall seconds per epoch and the process's peak resident memory."""
    from tinyvae.run.train import TrainConfig, train  # noqa: PLC0415

    hook = EpochCPU()
    run = Path(train(TrainConfig(**config), progress=False, pictures=False, log=lambda line: None, on_step=hook))
    wall = [json.loads(line)["seconds"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {"cpu_seconds_by_epoch": hook.seconds, "seconds_by_epoch": wall, "peak_rss_mib": peak_rss_mib()}


def step_seconds(config, rounds, steps):
    """{"m2": [...], "vae": [...], "m2_cpu": [...], "vae_cpu": [...]}: wall-clock and process CPU seconds per training
    step, one median per round, the two models taking turns. On a machine shared with other jobs the CPU time is
    the steadier figure: other jobs lengthen the wall-clock time, not the work."""
    cfg = SemiConfig(**config)
    rng = np.random.default_rng(0)
    n_u, n_l = cfg.batch_size, min(cfg.labelled_batch, cfg.labels)
    x = (rng.uniform(size=(n_l + n_u, 784)) < 0.15).astype(np.float32)
    labels = np.concatenate([np.arange(n_l) % 10, np.full(n_u, -1)])
    m2 = M2(cfg.model_config(784))
    vae = VAE(hidden=cfg.hidden, latent=cfg.latent, activation=cfg.activation)
    opt_m2, opt_vae = Adam(m2.params, m2.grads, lr=cfg.lr), Adam(vae, lr=cfg.lr)
    eps_m2 = rng.standard_normal((m2.rows(labels), cfg.latent), dtype=np.float32)
    eps_vae = rng.standard_normal((n_u, cfg.latent), dtype=np.float32)

    def m2_step():
        m2.forward(x, labels, eps_m2, validate=False)
        m2.backward()
        opt_m2.step()

    def vae_step():
        vae.forward(x[n_l:], eps_vae, validate=False)
        vae.backward()
        opt_vae.step()

    out = {"m2": [], "vae": [], "m2_cpu": [], "vae_cpu": []}
    for _ in range(rounds):
        for name, step in (("m2", m2_step), ("vae", vae_step)):
            step()  # warm: buffers allocated
            wall, cpu = [], []
            for _ in range(steps):
                start, start_cpu = time.perf_counter(), time.process_time()
                step()
                wall.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
            out[name].append(statistics.median(wall))
            out[f"{name}_cpu"].append(statistics.median(cpu))
    return out


def summary(values):
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "values": values}


def main(argv=None):
    p = parser()
    args = p.parse_args(argv)
    try:
        for alpha in args.alpha:  # every setting checked before anything runs
            SemiConfig(**run_config(args, alpha))
        if args.pin_blas:
            from tinyvae import threads  # noqa: PLC0415
            with threads.blas_pinned():
                return sweep(args, argv)
        return sweep(args, argv)
    except ConfigError as err:
        p.error(str(err))  # exits with status 2 and the usage line, no traceback


def sweep(args, argv):
    """One α: ``run``'s JSON. Several: ``run`` for each in turn, and one JSON with each one's result under
    ``by_alpha`` (default benchmarks/results/<date>-m2-alpha-sweep.json)."""
    if len(args.alpha) == 1:
        return run(args, argv, args.alpha[0])
    results = [run(args, argv, alpha, write=False) for alpha in args.alpha]
    print(f"\n{'α_batch':>10}{'M2 test error % by epoch (first draw)':>44}{'classifier alone %':>22}")
    for alpha, r in zip(args.alpha, results):
        curve = ", ".join(f"{e:.2f}" for e in r["m2_test_error_percent_by_epoch"][0])
        print(f"{alpha:>10g}{curve:>44}{r['classifier_alone_test_error_percent']['values'][0]:>22.2f}")
    result = {"what": "M2 with few labels for each α_batch in turn (see by_alpha), all else alike",
              "command": "python benchmarks/m2_labels.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "alphas": args.alpha, "by_alpha": results}
    return write_result(result, args.out, "m2-alpha-sweep")


def write_result(result, out, name):
    """Write ``result`` as JSON to ``out``, or to results/DATE-NAME.json; print where; return it."""
    out = Path(out) if out else Path(__file__).resolve().parent / "results" / f"{date.today().isoformat()}-{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return result


def run_config(args, alpha):
    """The SemiConfig fields of one run of the script."""
    config = {**(TINY if args.tiny else {}), "labels": args.labels, "alpha": alpha}
    if not args.tiny:
        config["epochs"] = args.epochs
    elif args.labels >= 1:  # TINY's labelled batch, at most the labels there are
        config["labelled_batch"] = min(config["labelled_batch"], args.labels)
    for name in ("batch_size", "labelled_batch", "binarize", "lr"):  # a flag left at its default keeps TINY's size
        if getattr(args, name) != getattr(SemiConfig, name) or name not in config:
            config[name] = getattr(args, name)
    return config


def run(args, argv, alpha, write=True):
    config = run_config(args, alpha)
    cfg = SemiConfig(**config)
    blas = blas_info()
    print("BLAS:", json.dumps(blas))
    m2_err, alone_err, epoch_s, by_draw = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for d in range(args.draws):
            one = draw(config, d, Path(tmp), log=lambda line: print("  " + line, flush=True),
                       diagnostic_images=args.diagnostic_images)
            m2_err.append(100 * one["test_error"])
            alone_err.append(100 * one["alone"])
            epoch_s += one["seconds"]
            by_draw.append(one)
            print(f"draw {d}: M2 {m2_err[-1]:.2f} %, classifier alone {alone_err[-1]:.2f} %; CPU s per epoch: "
                  f"{', '.join(f'{c:.1f}' for c in one['cpu_seconds_by_epoch'])}; peak after epoch 1: "
                  f"{mib(one['peak_rss_mib_by_epoch'][0])}", flush=True)
        vae = None
        if args.vae_epochs:
            vae_config = dict(model="vae", hidden=cfg.hidden, latent=cfg.latent, activation=cfg.activation,
                              batch_size=cfg.batch_size, lr=cfg.lr, binarize=cfg.binarize, seed=cfg.seed,
                              limit_train=cfg.limit_train, limit_test=cfg.limit_test, epochs=args.vae_epochs,
                              out=str(Path(tmp) / "vae"))
            with multiprocessing.get_context("spawn").Pool(1) as pool:  # its peak memory is its own
                vae = {"config": {**vae_config, "hidden": list(cfg.hidden), "out": None},
                       **pool.apply(plain_vae_epochs, (vae_config,))}
            print(f"plain VAE: CPU s per epoch: {', '.join(f'{c:.1f}' for c in vae['cpu_seconds_by_epoch'])}; "
                  f"peak: {mib(vae['peak_rss_mib'])}", flush=True)
    result = {
        "what": "M2 test error with few labels over draws of the labelled set; the classifier on the labels alone"
                + ("" if args.no_timing else "; seconds per step of M2 and of the plain VAE of the same sizes "
                                             "(medians of paired rounds)"),
        "command": "python benchmarks/m2_labels.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "tiny": args.tiny, "config": cfg.to_dict(), "draws": args.draws, "paper": PAPER,
        "m2_test_error_percent": summary(m2_err), "classifier_alone_test_error_percent": summary(alone_err),
        "m2_epoch_seconds_measured": epoch_s,
        "m2_test_error_percent_by_epoch": [[100 * e for e in one["test_error_by_epoch"]] for one in by_draw],
        "m2_epoch_cpu_seconds_measured": [one["cpu_seconds_by_epoch"] for one in by_draw],
        "m2_score_cpu_seconds": [one["score_cpu_seconds"] for one in by_draw],
        "m2_peak_rss_mib_by_epoch": [one["peak_rss_mib_by_epoch"] for one in by_draw],
        "diagnostic": {"what": "after every epoch, on the first test digits (grey levels): the share whose label "
                               "argmin_y of -L(x, y), averaged over the draws of ε, is wrong, and q(y|x)'s mean "
                               "entropy in nats (tinyvae.run.semi.label_diagnostic, seed 0)",
                       "images": by_draw[0]["diagnostic_images"] if by_draw else 0, "samples": DIAGNOSTIC_SAMPLES},
        "generative_error_percent_by_epoch": [[100 * d["generative_error"] for d in one["diagnostics"]]
                                              for one in by_draw],
        "q_entropy_by_epoch": [[d["q_entropy"] for d in one["diagnostics"]] for one in by_draw],
        "diagnostic_cpu_seconds": [one["diagnostic_cpu_seconds"] for one in by_draw],
        "plain_vae_run": vae, "peak_memory": "VmHWM in /proc/self/status, each process its own", "blas": blas,
    }
    if not args.no_timing:
        result.update(timings(cfg, config, args))
    print(f"\n{'':<28}{'test error %':>14}")
    for name, key in (("M2", "m2_test_error_percent"), ("classifier on labels alone", "classifier_alone_test_error_percent")):
        s = result[key]
        spread = f" ± {s['std']:.2f}" if s["std"] is not None else ""
        print(f"{name:<28}{s['mean']:>10.2f}{spread}   draws: {', '.join(f'{v:.2f}' for v in s['values'])}")
    note = "" if PAPER["checked"] else "   (as quoted; not yet checked against the paper)"
    print(f"{'paper (M2, Table 1)':<28}{PAPER['test_error_percent']:>10.2f} ± {PAPER['spread_percent']:.2f}{note}")
    if not write:
        return result
    return write_result(result, args.out, f"m2-labels{args.labels}")


def timings(cfg, config, args):
    """The paired step timing of M2 and the plain VAE (``step_seconds``), printed, as the JSON's timing fields."""
    timing = step_seconds(config, args.rounds, args.steps)
    n_unlabelled = (cfg.limit_train or 60_000) - cfg.labels
    steps_m2 = -(-n_unlabelled // cfg.batch_size)
    steps_vae = -(-(cfg.limit_train or 60_000) // cfg.batch_size)
    m2_step, vae_step = statistics.median(timing["m2"]), statistics.median(timing["vae"])
    m2_cpu, vae_cpu = statistics.median(timing["m2_cpu"]), statistics.median(timing["vae_cpu"])
    result = {
        "step_seconds": timing, "m2_step_seconds": m2_step, "vae_step_seconds": vae_step,
        "m2_step_cpu_seconds": m2_cpu, "vae_step_cpu_seconds": vae_cpu,
        "m2_epoch_cpu_seconds_from_steps": m2_cpu * steps_m2, "vae_epoch_cpu_seconds_from_steps": vae_cpu * steps_vae,
        "m2_epoch_seconds_from_steps": m2_step * steps_m2, "vae_epoch_seconds_from_steps": vae_step * steps_vae,
    }
    print(f"\nseconds per step: M2 {m2_step:.3f}, VAE {vae_step:.3f} (ratio {m2_step / vae_step:.2f}); per epoch: M2 "
          f"{result['m2_epoch_seconds_from_steps']:.0f} s ({steps_m2} steps), VAE "
          f"{result['vae_epoch_seconds_from_steps']:.0f} s ({steps_vae} steps)")
    print(f"CPU seconds per step: M2 {m2_cpu:.3f}, VAE {vae_cpu:.3f} (ratio {m2_cpu / vae_cpu:.2f}); per epoch: M2 "
          f"{result['m2_epoch_cpu_seconds_from_steps']:.0f} s, VAE {result['vae_epoch_cpu_seconds_from_steps']:.0f} s")
    return result


if __name__ == "__main__":
    main()
