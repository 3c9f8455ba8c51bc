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
from concurrent.futures import ThreadPoolExecutor

import numpy as np

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


# ---- host threads for elementwise work
#
# NumPy's matrix products use every core (through BLAS), its elementwise ufuncs one. They release
# the GIL, though, so Python threads working on separate pieces of a large buffer run on separate
# cores. The optimizer uses this for its update, which reads and writes every parameter ten
# times per step and would otherwise leave all but one core idle, and so does the Bernoulli loss of
# a large batch. ``TINYVAE_THREADS=1`` turns it off; gradients and parameters are bit-identical
# either way (each element sees the same operations), only the summation order of a split loss
# value differs, in its last digits.

_pool = None
_CPUS = os.cpu_count() or 1  # read once: os.cpu_count() takes microseconds, and this is asked every step


def threads_available():
    """False in the browser (Pyodide, ``sys.platform == "emscripten"``), which cannot start a thread."""
    return sys.platform != "emscripten"


def host_threads(xp):
    """How many threads elementwise host work may split into (1 on a GPU: the device is parallel;
    1 in the browser, where no thread can start)."""
    if xp is not np or not threads_available():
        return 1
    wanted = os.environ.get("TINYVAE_THREADS", "").strip()
    if wanted:
        if not wanted.isdigit() or int(wanted) < 1:
            raise InputError(f"TINYVAE_THREADS must be a positive integer, got {wanted!r}")
        return int(wanted)
    return min(2, _CPUS)


def run_split(fn, parts):
    """``[fn(*part) for part in parts]``: the first part on this thread, the others on pool threads."""
    global _pool
    if len(parts) == 1 or not threads_available():
        return [fn(*part) for part in parts]
    if _pool is None or _pool._max_workers < len(parts) - 1:
        _pool = ThreadPoolExecutor(max_workers=len(parts) - 1, thread_name_prefix="tinyvae")
    settings = np.geterr()  # np.errstate is per thread: the pool's threads follow the caller's
    futures = [_pool.submit(_under_errstate, settings, fn, part) for part in parts[1:]]
    first = fn(*parts[0])
    return [first] + [future.result() for future in futures]


def _under_errstate(settings, fn, part):
    """``fn(*part)`` with NumPy's floating-point error handling set as ``settings`` (np.geterr())."""
    with np.errstate(**settings):
        return fn(*part)
