"""Run every Hypothesis test of the suite under many seeds and count the failures per test.

    python .ci/hypothesis_sweep.py [--seeds 0:200] [pytest arguments, e.g. -k free_bits]

One pytest process collects only the tests that Hypothesis drives and runs each of them once per
seed, with ``hypothesis.core.global_force_seed`` set as ``pytest --hypothesis-seed=S`` would set it
(a forced seed also keeps the example database out: nothing stored is replayed, so every seed
counts on its own). A failing (test, seed) pair is printed with the command that reproduces it.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


class SeedSweep:
    """A pytest plugin: keep the Hypothesis tests, run each under every seed in ``seeds``."""

    def __init__(self, seeds):
        self.seeds, self.failures, self.tests = seeds, {}, []

    def pytest_collection_modifyitems(self, config, items):
        from hypothesis import is_hypothesis_test  # noqa: PLC0415 -- imported late, after pytest's assertion rewriting

        keep = [item for item in items if is_hypothesis_test(getattr(item, "obj", None))]
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep
        for item in keep:
            item.runtest = self.sweep(item, item.runtest)
            self.tests.append(item.nodeid)

    def sweep(self, item, runtest):
        from hypothesis import core  # noqa: PLC0415

        def run_every_seed():
            failed = []
            for seed in self.seeds:
                core.global_force_seed = seed
                try:
                    runtest()
                except Exception as err:  # noqa: BLE001 -- a failing example of any kind counts
                    failed.append(seed)
                    last = traceback.format_exception_only(type(err), err)[-1].strip()
                    print(f"\nseed {seed}: FAILED {item.nodeid}\n  {last[:300]}\n  reproduce: python -m pytest "
                          f"-p no:cacheprovider --hypothesis-seed={seed} '{item.nodeid}'", flush=True)
                finally:
                    core.global_force_seed = None
            self.failures[item.nodeid] = failed
            if failed:
                raise AssertionError(f"failed for {len(failed)} of {len(self.seeds)} seeds: {failed}")
        return run_every_seed


def main(argv):
    seeds = range(0, 200)
    if argv[:1] == ["--seeds"]:
        start, stop = (int(s) for s in argv[1].split(":"))
        seeds, argv = range(start, stop), argv[2:]
    plugin, t0 = SeedSweep(seeds), time.perf_counter()
    status = pytest.main(["-q", "-p", "no:cacheprovider", "--hypothesis-profile=sweep", *(argv or ["tests"])],
                         plugins=[plugin])
    runs = len(plugin.failures) * len(seeds)
    failed = sum(len(f) for f in plugin.failures.values())
    print(f"\nHypothesis seed sweep: {len(plugin.failures)} tests x {len(seeds)} seeds "
          f"(seeds {seeds.start}..{seeds.stop - 1}) = {runs} runs, {failed} failed, {time.perf_counter() - t0:.0f} s")
    for test, seeds_failed in sorted(plugin.failures.items(), key=lambda kv: -len(kv[1])):
        if seeds_failed:
            print(f"  {len(seeds_failed):4d} failed  {test}  (seeds {seeds_failed[:10]}{' ...' if len(seeds_failed) > 10 else ''})")
    return int(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
