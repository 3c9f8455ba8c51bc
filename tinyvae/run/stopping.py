"""How a run stops before its end: on request (Ctrl-C, or ``request_stop()``), after saving a
checkpoint; or because it diverged (NaN or inf in the loss or the parameters), saving nothing.

``Stopping`` holds the request and writes the messages, which name where the run stopped, what is
intact in its folder and how to go on.
"""

from __future__ import annotations

import contextlib
import math
import signal
import socket
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

    def interrupted_after_epoch(self, epoch):
        """TrainingInterrupted for a stop asked during the evaluation that ends ``epoch``, its checkpoint saved."""
        where = f"{self.folder.position(epoch, 0)} in {self.folder.checkpoint}"
        if epoch < self.config.epochs:
            message = f"interrupted: checkpoint saved {where}\nresume with: tinyvae train --resume {self.folder.path}"
        else:
            message = (f"interrupted after the last epoch: the run is complete, its checkpoint saved {where}; its "
                       f"pictures were not drawn: draw them with: tinyvae plot {self.folder.path}")
        return TrainingInterrupted(message, self.folder.path)

    def kept_at_stop(self):
        """What a stop at once leaves: the last checkpoint as it was, and how to go on."""
        if self.folder.good_checkpoint is None:
            return (f"no checkpoint had been written yet; start the run again from the beginning with: tinyvae "
                    f"train --resume {self.folder.path}")
        return (f"the last checkpoint, {self.folder.position(*self.folder.good_checkpoint)}, is intact in "
                f"{self.folder.checkpoint}\nresume with: tinyvae train --resume {self.folder.path}")

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
        flow = getattr(self.config, "flow", "none")
        hint = "" if flow == "none" else (
            f" The posterior's {flow} flow ({self.config.flow_steps} steps, parameters flow.*) can diverge first: "
            f"try fewer --flow-steps or a smaller --lr.")
        return (f"training diverged {where}{params}. Nothing was saved; {kept}. "
                f"Try a smaller --lr (now {self.config.lr:g}) or --kl-warmup.{hint}")


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
    """While training, Ctrl-C asks for a stop at the next step boundary (after the epoch's evaluation
    when it comes during one), with a checkpoint; a second Ctrl-C stops at once, keeping the last one.

    Python runs a handler once for however many signals arrived while the main thread was inside one
    long C call (a large matrix product), so two quick presses would look like one. Each arrival also
    writes a byte to the wakeup fd, and the handler counts those bytes.
    """

    def __init__(self, stopping, log):
        self.stopping, self.log, self.installed, self.previous, self.wakeup = stopping, log, False, None, None

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():  # only there can Python set handlers
            return
        self.previous = signal.signal(signal.SIGINT, self._handle)
        self.installed = True
        try:
            reader, writer = socket.socketpair()
        except OSError:  # the browser's Python (Pyodide) cannot make one: count handler calls only
            return
        reader.setblocking(False)
        writer.setblocking(False)
        theirs = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        if theirs == -1:
            self.wakeup = (reader, writer)
        else:  # an event loop owns the wakeup fd: give it back, and count handler calls only
            signal.set_wakeup_fd(theirs)
            reader.close()
            writer.close()

    def _presses(self):
        """How many SIGINTs arrived since the last call (at least 1: this handler is running)."""
        if self.wakeup is None:
            return 1
        count = 0
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while chunk := self.wakeup[0].recv(256):
                count += chunk.count(signal.SIGINT)
        return max(count, 1)

    def _handle(self, signum, frame):
        stopping = self.stopping
        if stopping.stop_requested or self._presses() >= 2:
            message = f"stopped at once by a second Ctrl-C: {stopping.kept_at_stop()}"
            self.log(message)
            raise TrainingInterrupted(message, stopping.folder.path)
        stopping.request_stop()
        self.log("Ctrl-C: stopping after this step (or this epoch's evaluation) and saving a checkpoint; press "
                 "Ctrl-C again to stop at once, keeping the last checkpoint as it is")

    def __exit__(self, *exc):
        if self.installed:
            signal.signal(signal.SIGINT, signal.SIG_DFL if self.previous is None else self.previous)
        if self.wakeup is not None:
            signal.set_wakeup_fd(-1)
            for sock in self.wakeup:
                sock.close()
