"""How many cores tinyvae computes on: the free ones, re-read as other programs come and go.

A thread that waits for a partner the kernel has descheduled waits a whole time slice. When
tinyvae's threads outnumber the cores that other programs leave free, that wait comes at every
handoff: so often that ``benchmarks/bench_contention.py`` times the old setting (BLAS's threads on
every core) on an idle machine only, as beside busy processes an epoch of it takes minutes. Its
recorded figures, with this policy's, are on the results page (docs/results.md). So:

* NumPy's BLAS runs on one thread while tinyvae trains or evaluates (``blas_pinned``). OpenBLAS
  adds up a long inner dimension in a different order on one thread than on several (0.3.31, from
  more than 512 terms per element on), so letting the load pick BLAS's threads would let it change
  the last bits of a run.
* tinyvae splits its own work instead (the optimizer's update, the loss, large matrix products,
  im2col and col2im, large ReLUs, the conv layers' bias sums), always into the same pieces:
  ``backend.host_threads`` of them: two (one on a one-core machine), or ``TINYVAE_THREADS``, never a
  number that depends on the load. On any one BLAS kernel (Haswell, SkylakeX, ...), the parameters and gradients
  have the same bits whatever that number (as long as the kernel gives a product computed whole the
  same bits wherever its operands lie in memory); different kernels add up a product in different
  orders, so they give different bits. Only a split loss value's last digits depend on the number,
  never on the load. How:

  - Work done element by element (the update, the ReLUs, the bias additions, im2col's copies,
    col2im's additions, the loss gradient) runs the same operations in the same order on each
    element whichever piece it falls in. No sum is cut along the axis it adds up: the bias sums are
    cut between channels, and each channel's row is summed by a call of its own.
  - A matrix product's additions are in the BLAS kernel's order, which a cut may change. So a product
    is cut only where ``split_check`` has seen, once per process for each kind of product (shapes,
    dtypes, strides of the operands and the result, the cut), that the pieces give the bits of the
    product computed whole on seeded random numbers; every other product is computed whole, on one
    BLAS thread. OpenBLAS's SkylakeX kernel (AVX-512) passes all 12 kinds of product that an
    epoch of the default model meets; its Haswell kernel (also the one for AMD Zen) fails them
    all, and there they run whole, on one core.
* How many of those pieces run at once is this module's choice (``concurrency``): as many as
  there are free cores, re-read at most every ``RECHECK_SECONDS`` from the kernel's count of
  runnable threads (/proc/loadavg) less this process's own. One free core runs them one after
  another on the calling thread. The choice changes no result, only the time.

Your settings win: ``TINYVAE_THREADS=n`` fixes both the pieces and how many run at once;
``OPENBLAS_NUM_THREADS`` (or ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``), or a threadpoolctl limit below
the thread count BLAS started with, leaves BLAS's threads as you set them, and tinyvae then splits no
product. Where /proc is missing (not Linux), every usable core counts as free. Programs confined to
this process's cores while the machine has more are undercounted: others are taken as spread evenly.
"""

from __future__ import annotations

import functools
import os
import time
from contextlib import contextmanager

RECHECK_SECONDS = 0.25  # how often the load is re-read (a read costs tens of microseconds)
SAMPLES = 5  # the decision takes the median of this many recent reads (a little over a second)
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                  "GOTO_NUM_THREADS")


def decide(pieces, usable_cores, online_cores, others_running):
    """How many of ``pieces`` to run at once: one per core that other programs leave free, at least one.

    ``usable_cores``: the cores this process may run on (its affinity); ``online_cores``: the
    machine's; ``others_running``: threads of other processes ready to run, machine-wide, or None
    where unknown (then every usable core counts as free). The others are taken to be spread
    evenly over the machine, so the share that falls on our cores is theirs times usable / online.
    """
    if pieces <= 1:
        return 1
    if others_running is None:
        return min(pieces, max(1, usable_cores))
    online = max(online_cores, usable_cores, 1)
    busy = others_running * usable_cores / online
    free = int(usable_cores - busy + 0.5)  # half a core's worth of others rounds up to a busy core
    return max(1, min(pieces, free))


def usable_cores():
    """The cores this process may run on (its CPU affinity where the system tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def runnable_threads():
    """Threads ready to run on the whole machine (the 4th field of /proc/loadavg), or None."""
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            return int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None


def own_running_threads():
    """This process's threads that are running or ready to run now (at least the caller)."""
    count = 0
    try:
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/stat", encoding="ascii") as f:
                    # the state follows the command name, which is in parentheses and may hold spaces
                    count += f.read().rsplit(")", 1)[1].split()[0] == "R"
            except (OSError, IndexError):
                continue
    except OSError:
        return 1
    return max(count, 1)


class _Load:
    """The recent reads of other programs' runnable threads, re-read at most every RECHECK_SECONDS."""

    def __init__(self):
        self.reads, self.when = [], -float("inf")

    def others(self):
        now = time.monotonic()
        if now - self.when >= RECHECK_SECONDS:
            self.when = now
            total = runnable_threads()
            if total is None:
                return None
            self.reads = (self.reads + [max(0, total - own_running_threads())])[-SAMPLES:]
        if not self.reads:
            return None
        return sorted(self.reads)[len(self.reads) // 2]


_load = _Load()
_USABLE, _ONLINE = usable_cores(), os.cpu_count() or 1


def concurrency(pieces, fixed=None):
    """How many of ``pieces`` may run at once now. ``fixed`` (TINYVAE_THREADS) overrides the load."""
    if fixed is not None:
        return max(1, min(pieces, fixed))
    if pieces <= 1:
        return 1
    return decide(pieces, _USABLE, _ONLINE, _load.others())


# ---- BLAS on one thread while training and evaluating

_blas = {"pinned": 0}  # depth of nested blas_pinned() blocks that hold BLAS at one thread


def user_set_blas_threads():
    """The BLAS thread count the user asked for in the environment, or None."""
    for name in BLAS_VARIABLES:
        if os.environ.get(name, "").strip():
            return name
    return None


def products_split():
    """Whether tinyvae splits large matrix products itself (only while it holds BLAS at one thread)."""
    return _blas["pinned"] > 0


@contextmanager
def blas_pinned():
    """Hold NumPy's BLAS at one thread inside the block, unless the user chose its threads.

    The user chose when a BLAS variable is set in the environment, or when BLAS runs on fewer
    threads than it started with (a threadpoolctl limit set in this process).
    """
    controller = _blas_controller()
    if controller is None or user_set_blas_threads() or _user_limited(controller):
        yield False
        return
    before = [lib.num_threads for lib in controller.lib_controllers]
    for lib in controller.lib_controllers:
        lib.set_num_threads(1)
    _blas["pinned"] += 1
    try:
        yield True
    finally:
        _blas["pinned"] -= 1
        for lib, n in zip(controller.lib_controllers, before):
            lib.set_num_threads(n)


def pins_blas(fn):
    """Decorator: ``fn`` runs inside ``blas_pinned()`` (training, evaluation)."""
    @functools.wraps(fn)
    def pinned(*args, **kwargs):
        with blas_pinned():
            return fn(*args, **kwargs)
    return pinned


def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController  # noqa: PLC0415
    except ImportError:
        return None
    if "controller" not in _blas:
        _blas["controller"] = ThreadpoolController().select(user_api="blas")
        _blas["started"] = [lib.get_num_threads() for lib in _blas["controller"].lib_controllers]
    return _blas["controller"] if _blas["controller"].lib_controllers else None


def _user_limited(controller):
    if _blas["pinned"]:  # nested: the outer block pinned it, not the user
        return False
    return any(lib.get_num_threads() < started for lib, started in zip(controller.lib_controllers, _blas["started"]))


_blas_controller()  # BLAS's threads as this process started with them, before any limit of the user's
