"""The one module that knows NumPy from CuPy.

Everything else asks an array for its namespace (``xp = get_xp(x)``) and calls ``xp.exp``,
``xp.matmul`` and so on, so the same line runs on the CPU (NumPy) and on an NVIDIA GPU (CuPy).
Arrays cross between host and device only through the functions here (``to_device``,
``to_numpy``, ``to_float``), which are called at the edges: a batch in, a number out for logging,
a copy to the host for plots and checkpoints.

CuPy is imported lazily, the first time the GPU is asked for, so NumPy users never pay for it.
Any other namespace that follows the same conventions (``asarray``, ufuncs with ``out=``,
``random.default_rng``, arrays with ``.get()`` and ``__array_namespace__``) can stand in for CuPy;
the test suite uses one whose arrays refuse conversion to NumPy, as CuPy's do, to prove that no
stray ``np.`` call sits on the hot path.
"""

from __future__ import annotations

import os
import sys
import threading

import numpy as np

from . import split_check, threads
from .errors import InputError

CPU = "cpu"
GPU = "gpu"
DEVICES = (CPU, GPU)

# Training runs in float32 (speed, memory); gradient checks in float64 (accuracy).
TRAIN_DTYPE = np.float32
CHECK_DTYPE = np.float64

_cupy = None


class BackendError(RuntimeError):
    """The requested array backend is not available here."""


def cupy():
    """Import CuPy on first use; a clear error when it or a GPU is missing."""
    global _cupy
    if _cupy is None:
        try:
            import cupy as cp  # noqa: PLC0415  (lazy on purpose)
        except ImportError as err:
            raise BackendError(
                "device 'gpu' needs CuPy, which is not installed: "
                "pip install 'tinyvae[gpu]' (or the cupy-cudaXXx wheel matching your CUDA)"
            ) from err
        try:
            count = cp.cuda.runtime.getDeviceCount()
        except Exception as err:  # CUDA driver missing or broken
            raise BackendError(f"device 'gpu': CuPy is installed but found no usable GPU ({err})") from err
        if count < 1:
            raise BackendError("device 'gpu': CuPy is installed but found no GPU")
        _cupy = cp
    return _cupy


def namespace(device):
    """The array namespace for ``device``: ``"cpu"`` -> numpy, ``"gpu"`` -> cupy.

    A namespace object (a module such as ``numpy``) is passed through unchanged.
    """
    if device == CPU:
        return np
    if device == GPU:
        return cupy()
    if isinstance(device, str):
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if not hasattr(device, "asarray"):
        raise ValueError(f"device must be 'cpu', 'gpu' or an array namespace, got {device!r}")
    return device


def get_xp(x):
    """The namespace that ``x`` lives in (numpy, cupy, or a stand-in)."""
    if isinstance(x, (np.ndarray, np.generic)):
        return np
    module = type(x).__module__
    if module.startswith("cupy"):
        return cupy()
    ns = getattr(x, "__array_namespace__", None)
    if ns is not None:
        return ns()
    raise TypeError(f"expected an array (numpy, cupy or a stand-in), got {type(x).__name__}")


def is_numpy(xp):
    return xp is np


def to_device(x, device):
    """Copy a host array (or move any array) to ``device``; a no-op when already there."""
    xp = namespace(device)
    if xp is np:
        return to_numpy(x)
    if get_xp(x) is xp:
        return x
    return xp.asarray(to_numpy(x))


def to_numpy(x):
    """A host NumPy copy of ``x`` (no copy when it already is a NumPy array). An edge."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, np.generic):
        return np.asarray(x)
    get = getattr(x, "get", None)  # CuPy's (and the stand-in's) device -> host copy
    if get is None:
        raise TypeError(f"cannot bring a {type(x).__name__} to the host")
    return get()


def to_float(x):
    """A Python float from a 0-d array; on a GPU this waits for the device. An edge."""
    return float(to_numpy(x))


def default_rng(seed, xp=np):
    """A seeded random generator that makes arrays of namespace ``xp``."""
    if xp is np:
        return np.random.default_rng(seed)
    return xp.random.default_rng(seed)


def synchronize(xp):
    """Wait for the device to finish queued work (before reading a timer). No-op on NumPy."""
    if xp is np:
        return
    cuda = getattr(xp, "cuda", None)
    if cuda is not None:
        cuda.Stream.null.synchronize()


def available_memory(xp=np):
    """Bytes free for new arrays of namespace ``xp`` (None where it cannot be told).

    Host: the kernel's MemAvailable (Linux), else the free pages. GPU: the device's free memory.
    """
    if xp is not np:
        cuda = getattr(xp, "cuda", None)
        return int(cuda.runtime.memGetInfo()[0]) if cuda is not None else None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


# ---- host threads
#
# NumPy's elementwise ufuncs run on one core. They release the GIL, though, so Python threads
# working on separate pieces of a large buffer run on separate cores. The optimizer uses this for its
# update, which reads and writes every parameter ten times per step and would otherwise leave all
# but one core idle, and so do the Bernoulli loss of a large batch, im2col and col2im, large ReLUs
# and bias sums (``in_pieces``), and (``matmul``) the large matrix products while tinyvae holds
# BLAS at one thread (threads.py says why). The pieces
# are ``host_threads`` many, fixed by the machine and ``TINYVAE_THREADS``; how many of them run at
# once follows the cores other programs leave free (``threads.concurrency``). Gradients and
# parameters are bit-identical either way: each element sees the same operations (a product is
# split only where split_check.py has seen its pieces give the whole's bits), only the summation
# order of a split loss value depends on the number of pieces, in its last digits.

_CPUS = os.cpu_count() or 1  # read once: os.cpu_count() takes microseconds, and this is asked every step
# A product's pieces start at multiples of this many rows or columns (see matmul): a multiple of the tile that
# OpenBLAS's SkylakeX kernel computes at a time (the cuts it passes split_check with), and fine enough to cut
# the conv VAE's 288 and 576 rows and 32 columns into halves.
ALIGN = 16
# No piece of a split product is smaller than this many multiply-adds: OpenBLAS on one thread may run a
# small product with another kernel that adds up in another order (measured: a 64 x 1000 x 9 piece of a
# 64 x 1000 x 73 product differed from the whole in the last bits). Below it a handoff pays little anyway.
MIN_PIECE_MACS = 28 * 512 * 512


def _threads_setting():
    """TINYVAE_THREADS as a positive int, or None when unset."""
    wanted = os.environ.get("TINYVAE_THREADS", "").strip()
    if not wanted:
        return None
    if not wanted.isdigit() or int(wanted) < 1:
        raise InputError(f"TINYVAE_THREADS must be a positive integer, got {wanted!r}")
    return int(wanted)


def threads_available():
    """False in the browser (Pyodide, ``sys.platform == "emscripten"``), which cannot start a thread."""
    return sys.platform != "emscripten"


def host_threads(xp):
    """How many pieces host work may split into (1 on a GPU: the device is parallel; 1 in the browser,
    where no thread can start)."""
    if xp is not np or not threads_available():
        return 1
    wanted = _threads_setting()
    return wanted if wanted is not None else min(2, _CPUS)


def run_split(fn, parts):
    """``[fn(*part) for part in parts]``: the first part on this thread, the others on host threads,
    as many at once as there are free cores (all on this thread when only one is free, and when the
    threads are already busy: a call from one of them, or from another thread of the program)."""
    workers = threads.concurrency(len(parts), _threads_setting()) - 1 if threads_available() else 0
    if workers == 0 or not _handoff.acquire(blocking=False):
        return [fn(*part) for part in parts]
    out = []  # the workers that hold a group of this call and have not handed it back yet
    try:
        while len(_workers) < workers:
            _workers.append(_Worker(f"tinyvae_{len(_workers)}"))
        settings = np.geterr()  # np.errstate is per thread: the workers follow the caller's
        rest = parts[1:]
        for worker, w in zip(_workers, range(workers)):  # one group each: at most `workers` besides this thread
            out.append(worker)
            worker.start(settings, fn, rest[w::workers])
        results = [None] * len(parts)
        try:
            results[0] = fn(*parts[0])
        finally:  # every worker is waited for, even when this thread's part raised
            outcomes = []
            while out:
                outcomes.append(out[0].finish())
                del out[0]
        for w, (group_results, error) in enumerate(outcomes):
            if error is not None:
                raise error
            results[1 + w::workers] = group_results
        return results
    finally:
        if out:  # left while a worker still works (Ctrl-C during the wait): it finishes unwatched, and
            _workers.clear()  # the next call starts new workers rather than read its late result
        _handoff.release()


# Work on fewer elements than this stays whole on the calling thread: handing half of it to a host
# thread costs tens of microseconds, about what half of it takes.
MIN_SPLIT_ELEMENTS = 1 << 19


def split_range(work, n, size, xp):
    """``work(a, b)`` over consecutive spans a..b of range(n): ``host_threads`` of them on ``run_split``'s
    threads when the work touches at least MIN_SPLIT_ELEMENTS elements (``size``), else one span."""
    count = min(host_threads(xp), n) if size >= MIN_SPLIT_ELEMENTS else 1
    bounds = [n * i // count for i in range(count + 1)]
    return run_split(work, list(zip(bounds[:-1], bounds[1:])))


def in_pieces(fn, *arrays, axis=0):
    """``fn(*arrays)``, run as ``fn(*pieces)`` over slices a..b of every array along ``axis`` (the batch,
    unless told otherwise), the spans of ``split_range`` sized by the first array.

    Work that treats each slice on its own gives the same bits whatever the number of pieces: an
    elementwise operation into ``out=``, or a sum along another axis made by one call per row (NumPy
    may order the additions of a sum over several rows by their number and layout). tests/test_threads.py
    and tests/test_conv.py check each use.
    """
    first = arrays[0]
    lead = (slice(None),) * axis
    split_range(lambda a, b: fn(*(x[lead + (slice(a, b),)] for x in arrays)), first.shape[axis], first.size,
                get_xp(first))


class _Worker:
    """A host thread that sleeps on a lock until it is handed a group of parts.

    Two locks and a slot, no queue and no future per call: the handoff costs a lock release on
    each side (benchmarks/bench_handoff.py measures it against a ThreadPoolExecutor).
    """

    def __init__(self, name):
        self.go, self.done = threading.Lock(), threading.Lock()
        self.go.acquire()
        self.done.acquire()
        self.task = self.outcome = None
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def start(self, settings, fn, group):
        self.task = (settings, fn, group)
        self.go.release()

    def finish(self):
        """(the group's results, None) or (None, the exception it raised), once the thread is done."""
        self.done.acquire()
        outcome, self.outcome = self.outcome, None
        return outcome

    def _serve(self):
        settings = None
        while True:
            self.go.acquire()
            (wanted, fn, group), self.task = self.task, None
            try:
                if wanted != settings:
                    np.seterr(**wanted)
                    settings = wanted
                self.outcome = ([fn(*part) for part in group], None)
            except BaseException as err:  # noqa: BLE001  (handed to the caller, raised there)
                self.outcome = (None, err)
            del fn, group
            self.done.release()


_workers = []  # the host threads started so far, reused by every call
_handoff = threading.Lock()  # held while a call's parts are out on the workers


def _forget_workers():
    """In a forked child the workers' threads are gone: start new ones when next needed."""
    global _handoff
    _workers.clear()
    _handoff = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


def matmul(a, b, out=None):
    """``a @ b`` (M, K) @ (K, N) -> (M, N); on the host, while BLAS is held at one thread, a large
    product runs as pieces of rows (or columns, whichever are more) on ``run_split``'s threads.

    Only where the pieces give the bits of the whole product: split_check.py checks it once per
    kind of product (shapes, dtypes, memory layout, cut) on the BLAS that runs them; a kind that
    fails is computed whole. Pieces start at multiples of ALIGN rows or columns and are large
    (MIN_PIECE_MACS): cuts of that kind keep the bits with OpenBLAS's SkylakeX kernel.
    """
    xp = get_xp(a)
    pieces = host_threads(xp) if threads.products_split() and a.ndim == b.ndim == 2 else 1
    spans = _product_pieces(a.shape[0], a.shape[-1], b.shape[-1], pieces)
    if len(spans) < 2:
        return xp.matmul(a, b, out=out)
    m, n = a.shape[0], b.shape[-1]
    if out is None:
        out = xp.empty((m, n), dtype=xp.result_type(a, b))
    if not split_check.pieces_reproduce_whole(a, b, out, spans, by_rows=m >= n):
        return xp.matmul(a, b, out=out)
    # The calling thread takes the largest piece: it starts at once, while a worker starts only when
    # the system has woken it, so the two then finish closer together.
    parts = [(s,) for s in sorted(spans, key=lambda s: s.start - s.stop)]
    if m >= n:
        run_split(lambda s: xp.matmul(a[s], b, out=out[s]), parts)
    else:
        run_split(lambda s: xp.matmul(a, b[:, s], out=out[:, s]), parts)
    return out


def _product_pieces(m, k, n, pieces):
    """The row (m >= n) or column spans of an (m, k) @ (k, n) product: at most ``pieces``, starting at
    multiples of ALIGN, none under MIN_PIECE_MACS multiply-adds. A function of the shape alone."""
    size, other = (m, n) if m >= n else (n, m)
    for count in range(min(pieces, size // ALIGN), 1, -1):
        bounds = sorted({int(size * i / count / ALIGN + 0.5) * ALIGN for i in range(count)} | {size})
        if min(hi - lo for lo, hi in zip(bounds[:-1], bounds[1:])) * other * k >= MIN_PIECE_MACS:
            return [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
    return [slice(0, size)]
