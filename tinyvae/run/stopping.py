"""How a run stops before its end: on request (Ctrl-C, or ``request_stop()``), after saving a
checkpoint; or because it diverged (NaN or inf in the loss or the parameters), saving nothing.

``Stopping`` holds the request and writes the messages, which name where the run stopped, what is
intact in its folder and how to go on.
"""

from __future__ import annotations

import math
import signal
import threading

import numpy as np

from ..errors import UserError


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on request (Ctrl-C) after saving a checkpoint; ``.run_dir`` resumes it."""

    def __init__(self, message, run_dir):
        super().__init__(message)
        self.run_dir = run_dir

class TrainingDiverged(UserError, RuntimeError):
    """The loss or the parameters became NaN or inf; the last good checkpoint is left as it was."""


class Stopping:
    """A run's stop request and its divergence checks; ``folder`` (a RunFolder) says what is intact."""

    def __init__(self, folder, config):
        self.folder, self.config = folder, config
        self.stop_requested = False

    def request_stop(self):
        """Stop at the next step boundary, after saving a checkpoint (what Ctrl-C does)."""
        self.stop_requested = True

    def check_savable(self, model, optimizer, epoch, step, sums):
        """Refuse (TrainingDiverged) to save non-finite parameters, optimizer state or loss sums."""
        bad = nonfinite_parameters(model, optimizer)
        if bad or not all(math.isfinite(s) for s in sums):
            raise TrainingDiverged(self.divergence_text(self.folder.position(epoch, step), bad))

    def interrupted(self, epoch, step):
        """TrainingInterrupted for a stop after ``epoch`` epochs and ``step`` steps, the checkpoint just saved."""
        message = (f"interrupted: checkpoint saved {self.folder.position(epoch, step)} in "
                   f"{self.folder.checkpoint}\nresume with: tinyvae train --resume {self.folder.path}")
        return TrainingInterrupted(message, self.folder.path)

    def diverged(self, model, optimizer, epoch, pending, values):
        """TrainingDiverged naming the step and the term that became NaN or inf."""
        row = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
        step = pending[row][0]
        terms = [f"{name} {values[row, i]}" for i, name in ((1, "reconstruction"), (2, "KL"))
                 if not math.isfinite(values[row, i])] or [f"the total loss {values[row, 0]} (both terms finite)"]
        window = "" if len(pending) == 1 else f" (steps {pending[0][0]}-{pending[-1][0]} were read together)"
        where = f"at epoch {epoch}, step {step}{window}: non-finite " + " and ".join(terms)
        return TrainingDiverged(self.divergence_text(where, nonfinite_parameters(model, optimizer)))

    def divergence_text(self, where, bad):
        params = ("; non-finite parameters: " + ", ".join(bad)) if bad else "; every parameter is still finite"
        if self.folder.good_checkpoint is None:
            kept = "no checkpoint had been written yet"
        else:
            kept = (f"the last good checkpoint, {self.folder.position(*self.folder.good_checkpoint)}, is intact at "
                    f"{self.folder.checkpoint}")
        return (f"training diverged {where}{params}. Nothing was saved; {kept}. "
                f"Try a smaller --lr (now {self.config.lr:g}) or --kl-warmup.")


def nonfinite_parameters(model, optimizer):
    """Names (with counts) of parameters or optimizer buffers holding NaN or inf; [] when all are finite."""
    xp = model.xp
    if bool(xp.isfinite(model.theta).all()) and all(
            bool(xp.isfinite(buf).all()) for bufs in optimizer.state.values() for buf in bufs):
        return []
    bad = []
    for name, value in model.params.items():
        count = int((~xp.isfinite(value)).sum())
        if count:
            bad.append(f"{name} ({count} of {value.size})")
    for state, bufs in optimizer.state.items():
        for buf in bufs:
            count = int((~xp.isfinite(buf)).sum())
            if count:
                bad.append(f"optimizer {state} ({count} of {buf.size})")
    return bad


class sigint_requests_stop:
    """While training, Ctrl-C asks for a stop at the next step boundary; a second Ctrl-C stops at once."""

    def __init__(self, stopping):
        self.stopping, self.installed, self.previous = stopping, False, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # only there can Python set handlers
            self.previous = signal.signal(signal.SIGINT, self._handle)
            self.installed = True

    def _handle(self, signum, frame):
        if self.stopping.stop_requested:
            raise KeyboardInterrupt
        self.stopping.request_stop()

    def __exit__(self, *exc):
        if self.installed:
            signal.signal(signal.SIGINT, signal.SIG_DFL if self.previous is None else self.previous)
