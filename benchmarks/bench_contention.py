"""Speed when other programs use the cores: tinyvae's default threads against one thread, busy and idle.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_contention.py            # ~6 min
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_contention.py --quick    # ~1 min
    ... --json benchmarks/results/DATE-contention.json    # also write the figures there

"Busy" means as many busy-loop processes (``python -c "while True: pass"``) as the machine has
usable cores (``--busy`` to change it), started and killed by this script; "idle" means none of
ours (other programs may still run: the script prints the load average before each round). Four
workloads, each in a fresh process per measurement:

* train: the second of two epochs of ``tinyvae train`` (the default 784-400-20 MLP, batch 128) on the first
  ``--digits`` training digits, seconds scaled to 60,000 digits (the loop alone, as metrics.jsonl
  records it);
* conv: the same with ``--arch conv --latent 2``;
* evaluate: ``tinyvae.evaluate.evaluate_checkpoint`` (what ``tinyvae evaluate RUN --iw-samples K``
  runs) of a small trained MLP, K importance samples on the first ``--eval-digits`` test digits,
  the whole call's seconds (not scaled), timed on the second call in the process: the first also
  pays the process's one-time costs (tinyvae/split_check.py checks each kind of product once), which
  a real evaluation or epoch spreads over far more work than these small ones;
* torch: the same MLP in PyTorch (benchmarks/torch_vae.py, ``torch.optim.Adam``, PyTorch's own
  default threads), scaled to 60,000 digits; skipped with a message where PyTorch is missing.

Settings: "default" is tinyvae as shipped (the thread policy of tinyvae/threads.py); "one thread"
is ``OPENBLAS_NUM_THREADS=1 TINYVAE_THREADS=1``; "old default" is how tinyvae ran before the policy:
BLAS and tinyvae's own threads on every core whatever the load (``OPENBLAS_NUM_THREADS`` = cores,
``TINYVAE_THREADS`` = min(2, cores)). Each round measures every setting idle, then every setting
busy; the ratios are taken within a round (paired) and the medians over rounds are printed:

* busy default / busy one thread (target: at most 1.3),
* idle default / idle old default (target: about 1, within the spread of the rounds).

Each measurement also gives the share of tinyvae's splits (products, Adam's update, im2col, ReLUs and
others) whose pieces ran at once rather than one after another: the policy's reading of the load. Idle, the
default should run nearly all of them at once; where it did not, other programs were running and
the idle figures are not idle ones.

The run prints the BLAS library and kernel (threadpoolctl): OpenBLAS picks its kernel by CPU
unless OPENBLAS_CORETYPE says otherwise, so run it with that (and OPENBLAS_L2_SIZE) unset.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EPOCH = 60_000  # digits in an MNIST training epoch
WORKLOADS = ("train", "conv", "evaluate", "torch")


def cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def settings():
    """{setting: the environment variables it sets (None: unset)}."""
    n = cores()
    return {"default": {"OPENBLAS_NUM_THREADS": None, "TINYVAE_THREADS": None},
            "one thread": {"OPENBLAS_NUM_THREADS": "1", "TINYVAE_THREADS": "1"},
            "old default": {"OPENBLAS_NUM_THREADS": str(n), "TINYVAE_THREADS": str(min(2, n))}}


# --------------------------------------------------------------------------- one measurement, in its own process


def count_splits():
    """Count, from now on in this process, the splits that tinyvae ran and those it ran at once (its pieces
    on two or more threads): {"splits": n, "at_once": n}. On a machine that is idle they are all at once."""
    from tinyvae import threads  # noqa: PLC0415
    tally, decide = {"splits": 0, "at_once": 0}, threads.concurrency

    def counted(pieces, fixed=None):
        at_once = decide(pieces, fixed)
        if pieces > 1:
            tally["splits"] += 1
            tally["at_once"] += at_once > 1
        return at_once
    threads.concurrency = counted
    return tally


def worker(kind, digits, k, run):
    """{"seconds": one measurement of ``kind``, "at_once": the share of tinyvae's splits that ran at once
    (None where none was split)}, printed as the last line (JSON)."""
    tally = count_splits()
    seconds = measurement(kind, digits, k, run)
    return {"seconds": seconds, "at_once": tally["at_once"] / tally["splits"] if tally["splits"] else None}


def measurement(kind, digits, k, run):
    """Seconds of one measurement of ``kind``."""
    if kind in ("train", "conv"):
        from tinyvae.run.train import TrainConfig, train  # noqa: PLC0415
        with tempfile.TemporaryDirectory() as tmp:
            extra = {"arch": "conv", "latent": 2} if kind == "conv" else {}
            # two epochs, timed by the second: the process's one-time costs (split_check.py's checks, about
            # 0.75 s for the conv model) would otherwise be scaled up with the epoch from a few thousand digits
            config = TrainConfig(epochs=2, limit_train=digits, limit_test=200, seed=0, out=f"{tmp}/run", **extra)
            folder = train(config, progress=False, log=lambda *a, **kw: None, pictures=False)
            record = json.loads((Path(folder) / "metrics.jsonl").read_text().splitlines()[-1])
        return record["seconds"] * EPOCH / digits
    if kind == "evaluate":
        from tinyvae.evaluation.evaluate import evaluate_checkpoint  # noqa: PLC0415
        evaluate_checkpoint(run, iw_samples=k, limit=digits)  # once untimed, for the one-time costs, as above
        start = time.perf_counter()
        evaluate_checkpoint(run, iw_samples=k, limit=digits)
        return time.perf_counter() - start
    if kind == "torch":
        sys.path.insert(0, str(HERE))
        import torch  # noqa: PLC0415
        from torch_vae import TorchVAE, to_tensor, train_epoch  # noqa: PLC0415

        from tinyvae.data import load_dataset  # noqa: PLC0415
        torch.manual_seed(0)
        model = TorchVAE()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = to_tensor(load_dataset().train_x[:digits])
        seconds, _ = train_epoch(model, opt, x, 128, torch.Generator().manual_seed(0))
        return seconds * EPOCH / digits
    raise ValueError(kind)


def measure(kind, setting, digits, k, run):
    env = dict(os.environ)
    for name, value in settings()[setting].items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    cmd = [sys.executable, __file__, "--worker", kind, "--digits", str(digits), "--k", str(k), "--run", str(run)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["seconds"], result["at_once"]


# --------------------------------------------------------------------------- the benchmark


class busy_loops:
    """``n`` busy-loop processes for the duration of a with block."""

    def __init__(self, n):
        self.n, self.procs = n, []

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(self.n)]
        time.sleep(0.5)  # let them get going
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()


def small_run(folder):
    """A small trained MLP (1 epoch on 2,000 digits) for the evaluate workload."""
    from tinyvae.run.train import TrainConfig, train  # noqa: PLC0415
    config = TrainConfig(epochs=1, limit_train=2000, limit_test=200, binarize="dynamic", seed=0, out=str(folder))
    return train(config, progress=False, log=lambda *a, **kw: None, pictures=False)


def blas_info():
    sys.path.insert(0, str(HERE))
    from bench_training import blas_info as info  # noqa: PLC0415
    return info()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one round, smaller subsets (about a minute)")
    p.add_argument("--rounds", type=int, default=None, help="paired rounds (default 3; 1 with --quick)")
    p.add_argument("--busy", type=int, default=None, help="busy-loop processes (default: one per usable core)")
    p.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    p.add_argument("--json", metavar="PATH", help="also write the figures to this JSON file")
    p.add_argument("--worker", choices=WORKLOADS, help=argparse.SUPPRESS)
    p.add_argument("--digits", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--k", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--run", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.digits, args.k, args.run)))
        return 0
    rounds = args.rounds or (1 if args.quick else 3)
    busy = cores() if args.busy is None else args.busy
    sizes = ({"train": 5000, "conv": 600, "evaluate": 50, "torch": 5000, "torch busy": 1000, "k": 100} if args.quick
             else {"train": 20000, "conv": 2000, "evaluate": 200, "torch": 20000, "torch busy": 2000, "k": 100})
    workloads = list(args.workloads)
    if "torch" in workloads:
        try:
            import torch  # noqa: F401, PLC0415
        except ImportError:
            print("PyTorch is not installed: skipping its column (pip install torch)")
            workloads.remove("torch")
    blas = blas_info()
    print(f"{cores()} usable cores, {busy} busy-loop processes when busy; BLAS: " +
          ", ".join(f"{k} {v}" for k, v in blas.items() if k != "filepath"), flush=True)
    cases = [(w, s) for w in workloads for s in (("default",) if w == "torch" else settings())]
    seconds = {f"{w} | {s} | {state}": [] for w, s in cases for state in ("idle", "busy")
               if not (state == "busy" and s == "old default")}
    at_once = {key: [] for key in seconds}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        run = small_run(Path(tmp) / "run") if "evaluate" in workloads else ""
        for r in range(rounds):
            loads.append(os.getloadavg()[0])
            print(f"round {r + 1}/{rounds} (load average {loads[-1]:.1f} before it)", flush=True)
            for state in ("idle", "busy"):
                with busy_loops(busy if state == "busy" else 0):
                    for w, s in cases:
                        key = f"{w} | {s} | {state}"
                        if key not in seconds:
                            continue  # the old default is timed idle only (busy, it takes minutes)
                        digits = sizes["torch busy"] if (w, state) == ("torch", "busy") else sizes[w]
                        took, share = measure(w, s, digits, sizes["k"], run)
                        seconds[key].append(took)
                        at_once[key].append(share)
                        print(f"  {key:<36} {took:8.2f} s" +
                              ("" if share is None else f"   {share:4.0%} of the splits at once"), flush=True)
    report = {"date": time.strftime("%Y-%m-%d"), "cores": cores(), "busy_processes": busy, "rounds": rounds,
              "sizes": sizes, "blas": blas, "load_average_before_rounds": loads, "seconds": seconds,
              "splits_at_once": at_once, "ratios": ratios(seconds, workloads, rounds)}
    print_table(report, workloads)
    if max(loads) > 0.5 * cores():
        print(f"note: the machine was not idle (load average up to {max(loads):.1f} on {cores()} cores before a round): "
              f"the idle figures include other programs' load, and the old default suffers from it as when busy")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


def ratios(seconds, workloads, rounds):
    """Per-round (paired) ratios and their medians, for each workload."""
    out = {}
    for w in workloads:
        if w == "torch":
            continue
        pairs = {"busy default / busy one thread": ("default | busy", "one thread | busy"),
                 "idle default / idle old default": ("default | idle", "old default | idle"),
                 "busy one thread / idle default": ("one thread | busy", "default | idle")}
        if "torch" in workloads and w == "train":
            pairs["PyTorch busy / tinyvae busy default"] = (("torch", "default | busy"), "default | busy")
        for name, (top, bottom) in pairs.items():
            top_key = f"{top[0]} | {top[1]}" if isinstance(top, tuple) else f"{w} | {top}"
            by_round = [seconds[top_key][i] / seconds[f"{w} | {bottom}"][i] for i in range(rounds)]
            out[f"{w}: {name}"] = {"median": statistics.median(by_round), "by_round": by_round}
    return out


def print_table(report, workloads):
    s = report["seconds"]
    med = {key: statistics.median(v) for key, v in s.items()}
    print(f"\nmedian seconds over {report['rounds']} paired round(s); train, conv and torch per 60,000-digit "
          f"epoch (scaled from {report['sizes']['train']:,}, {report['sizes']['conv']:,} and "
          f"{report['sizes']['torch']:,} / {report['sizes']['torch busy']:,} busy digits), evaluate: the whole call "
          f"(K = {report['sizes']['k']}, {report['sizes']['evaluate']} test digits)")
    print(f"{'':<10} {'setting':<12} {'idle s':>9} {'busy s':>9}   splits at once, idle / busy (median)")
    for w in workloads:
        for setting in (("default",) if w == "torch" else settings()):
            idle, busy = med.get(f"{w} | {setting} | idle"), med.get(f"{w} | {setting} | busy")
            shares = [median_share(report, f"{w} | {setting} | {state}") for state in ("idle", "busy")]
            print(f"{w:<10} {setting if w != 'torch' else 'PyTorch':<12} {idle:>9.2f} "
                  f"{'(not run)' if busy is None else f'{busy:9.2f}':>9}   " +
                  " / ".join("-" if x is None else f"{x:.0%}" for x in shares))
    print("\nratios (median of the per-round ratios; targets: busy default / busy one thread <= 1.3, "
          "idle default / idle old default about 1)")
    for name, r in report["ratios"].items():
        print(f"  {name:<52} {r['median']:6.2f}   rounds: " + " ".join(f"{x:.2f}" for x in r["by_round"]))


def median_share(report, key):
    """The median share of splits run at once for ``key`` (None where it split nothing or was not run)."""
    shares = [x for x in report.get("splits_at_once", {}).get(key, []) if x is not None]
    return statistics.median(shares) if shares else None


if __name__ == "__main__":
    sys.exit(main())
