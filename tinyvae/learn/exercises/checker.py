"""The checker: ``check`` one function, ``check_all`` of a module or dict, and how the learner's
function is called and its answer read; what is wrong with it is named by ``diagnosis.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import solutions
from ..gradcheck import GradcheckReport
from .calling import _as_outputs, _call, _explain_exception, _is_numeric, _same
from .catalogue import EXERCISES
from .diagnosis import _bce_probe, _check_outputs, _iwae_probe
from .spec import DERIV, TOL


@dataclass
class Feedback:
    """What ``check`` found: ``passed``, ``status`` and a readable ``str`` (PASS or what is wrong)."""

    exercise: str
    status: str  # "pass", "fail", "error", "not implemented"
    problems: list = field(default_factory=list)  # one readable line (or paragraph) per problem
    report: GradcheckReport | None = None
    read: list = field(default_factory=list)  # derivation links
    defined: bool = True  # False: the answers checked by ``check_all`` have no function of this name

    @property
    def passed(self):
        return self.status == "pass"

    def __str__(self):
        ex = EXERCISES[self.exercise]
        head = f"({ex.letter}) {self.exercise}: "
        if self.status == "not implemented":
            return (head + "not implemented yet. Write the body (it still raises NotImplementedError), "
                    f"then run the check again. Read first: {', '.join(self.read)}")
        if self.status == "pass":
            worst = f" (worst relative error {self.report.max_error:.1e})" if self.report else ""
            checked = "match central differences" if self.report else "match the reference"
            what = ", ".join(ex.outputs) if len(ex.outputs) < 5 else "all gradients"
            verb = checked.replace("match ", "matches ") if len(ex.outputs) == 1 else checked
            return head + f"PASS: {what} {verb}{worst}."
        lines = [head + ("FAIL" if self.status == "fail" else "ERROR, your code raised an exception")]
        lines += ["  - " + p.replace("\n", "\n    ") for p in self.problems]
        if self.report is not None and not self.report.passed:
            lines.append("  " + str(self.report).replace("\n", "\n  "))
        if ex.case_note:
            lines.append("  " + ex.case_note)
        lines.append("  Read: " + ", ".join(self.read))
        return "\n".join(lines)

    __repr__ = __str__


@dataclass
class Summary:
    """The feedback of several exercises; ``passed`` when all passed."""

    feedback: list

    @property
    def passed(self):
        return all(f.passed for f in self.feedback)

    def __str__(self):
        marks = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "not implemented": "not implemented yet"}
        head = [f"{sum(f.passed for f in self.feedback)}/{len(self.feedback)} exercises pass"]
        head += [f"  {'(' + EXERCISES[f.exercise].letter + ')':<5} {f.exercise:<24} {marks[f.status]}"
                 for f in self.feedback if f.defined]
        absent = [f"({EXERCISES[f.exercise].letter})" for f in self.feedback if not f.defined]
        if absent:  # one line, however many: a file of one answer is not told twelve times what it lacks
            head.append(f"  not defined in these answers, so not checked: {', '.join(absent)}")
        details = [str(f) for f in self.feedback if f.status in ("fail", "error")]
        return "\n".join(head) + ("\n\n" + "\n\n".join(details) if details else "")

    __repr__ = __str__


def check(name, fn=None, *, seed=0):
    """Check the learner's function ``fn`` for exercise ``name`` (or ``check(fn)`` by its name)."""
    if fn is None and callable(name):
        name, fn = name.__name__, name
    if name not in EXERCISES:
        raise ValueError(f"no exercise named {name!r}; the exercises are {list(EXERCISES)}")
    ex = EXERCISES[name]
    read = _read_links(ex)
    case = ex.make_case(np.random.default_rng(1000 + list(EXERCISES).index(name) + seed))
    ref = _as_outputs(ex, _call(getattr(solutions, name), ex, case)[0])

    result, error = _call(fn, ex, case)
    if isinstance(error, NotImplementedError):
        return Feedback(name, "not implemented", read=read)
    if error is not None:
        return Feedback(name, "error", [_explain_exception(error, ex, case)], read=read)

    problems = []
    got = _as_outputs(ex, result, problems, ref)
    again, error2 = _call(fn, ex, case)
    if error2 is None and not _same(got, _as_outputs(ex, again)):
        problems.append("your function gives different answers for the same inputs: it draws fresh random "
                        "numbers (a fresh ε?). Use the ε that is passed in: " + (
                            "randomness comes in from outside, so that the backward can use the very same ε "
                            "[eq:reparam]" if name == "reparameterize" else
                            "the backward must see the very ε of the forward (ε itself gets no gradient) "
                            "[eq:reparam-grad-logvar]"))
    if any(v is not None for v in got.values()):  # else the return value's structure is the problem
        problems += _check_outputs(ex, case, got, ref, fn)
    if name == "iwae_loss" and not problems:
        problems += _iwae_probe(fn, ex)
    if name == "bce_with_logits" and not problems:
        problems += _bce_probe(fn, ex)

    report = None
    if ex.numeric is not None:
        grads = {k: np.asarray(v, dtype=np.float64) for k, v in got.items()
                 if k not in ex.values and v is not None and _is_numeric(v)}
        if grads:
            report = ex.numeric(case, grads)
            bad = [r for r in report.results if r.rel_error > TOL]
            if bad and not problems:
                problems += [f"{r.name}: relative error {r.rel_error:.2e} > {TOL:.0e}, worst at index {r.where}: "
                             f"analytic {r.analytic:.6g} vs numeric {r.numeric:.6g}" for r in bad]
    status = "pass" if not problems and (report is None or report.passed) else "fail"
    return Feedback(name, status, problems, report, read)


def _read_links(ex):
    """The derivation links of an exercise's "Read:" line."""
    return sorted({DERIV + link for link in (*ex.read.values(), *ex.also_read)})


def check_all(answers, *, seed=0):
    """Check every exercise found in ``answers`` (a module or a dict of functions). Returns a Summary."""
    get = answers.get if isinstance(answers, dict) else lambda k: getattr(answers, k, None)
    out = []
    for name, ex in EXERCISES.items():
        fn = get(name)
        if fn is None:
            out.append(Feedback(name, "not implemented", read=_read_links(ex), defined=False))
        else:
            out.append(check(name, fn, seed=seed))
    return Summary(out)
