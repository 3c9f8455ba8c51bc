"""Shared fixtures: the device backends to compare with NumPy, and a gradient-check recorder.

``device_xp`` runs a test once on the strict stand-in namespace (always: it proves the code is
backend-clean without a GPU) and once on CuPy (only where CuPy and a GPU are present).
``gradcheck_passes`` asserts that a ``GradcheckReport`` passed and remembers the largest relative
error any passing check saw; the terminal summary prints it.
"""

from __future__ import annotations

import pytest
from hypothesis import settings

from strict_xp import strict_ns
from tinyvae import backend

# Hypothesis's example database replays a failing example on every later run in the same clone: a
# help when debugging, a trap in CI, where a stale .hypothesis/ would turn one seed's failure into
# every run's. Hypothesis loads its "ci" profile where a CI variable is set (.ci/run sets CI=1); ours
# keeps its choices (no database, no deadline on a shared machine, the reproducing blob printed) but
# draws new examples on every run, as the seed sweep (.ci/hypothesis_sweep.py, "sweep") does.
settings.register_profile("ci", database=None, deadline=None, print_blob=True, derandomize=False)
settings.register_profile("sweep", database=None)
if settings.get_current_profile_name() == "ci":
    settings.load_profile("ci")

_worst = {"error": 0.0, "label": None, "checks": 0}


def cupy_or_skip():
    """CuPy's namespace, or skip: the GPU half of a comparison needs CuPy and a usable GPU."""
    pytest.importorskip("cupy")
    try:
        return backend.namespace(backend.GPU)
    except backend.BackendError as err:
        pytest.skip(str(err))


@pytest.fixture(params=["strict", "cupy"])
def device_xp(request):
    """A non-NumPy array namespace: the strict stand-in, or CuPy on a GPU."""
    if request.param == "strict":
        return strict_ns
    return cupy_or_skip()


@pytest.fixture(scope="session")
def gradcheck_passes():
    """``gradcheck_passes(report)``: fail with the report's table unless every parameter passed."""

    def check(report):
        assert report.passed, f"\n{report}"
        _worst["checks"] += 1
        if report.max_error >= _worst["error"]:
            _worst["error"], _worst["label"] = report.max_error, f"{report.label}: {report.worst.name}"
        return report

    return check


def pytest_terminal_summary(terminalreporter):
    if _worst["checks"]:
        terminalreporter.write_line(
            f"gradient checks: {_worst['checks']} passed, worst relative error {_worst['error']:.2e} "
            f"({_worst['label']})")
