"""Whether a matrix product cut into pieces gives the bits of the product computed whole: checked once.

A BLAS kernel adds up each element's inner products in an order set by its blocking: the inner
dimension, the panel and tile widths, where a piece starts within a tile, the memory layout of
the operands and their dtype. OpenBLAS's SkylakeX kernel keeps the bits of the whole product in
the pieces tinyvae cuts (starting at multiples of 16 rows or columns) of the products tried in
tests/test_threads.py; its Haswell kernel (the one AMD Zen gets too) does not, for instance in
any of those cuts of (128, 784) @ (784, 400) in float32. So ``backend.matmul`` splits a product
only where this module has seen, in this process, that the pieces reproduce the whole bit for bit.

The check runs the first time a kind of product is to be split: on seeded random numbers laid out
in memory as the real operands are (shape, dtype, strides, the start's offset within 64 bytes),
it computes the product whole and in the pieces of the planned cut, on the one BLAS thread the
caller holds, and compares every bit (``np.array_equal``). The verdict is kept for the process,
keyed by the shapes, dtypes and strides of both operands and of the output and by the cut; a key
that failed is computed whole. Random numbers with full mantissas make a change of order show:
two orders of the same sums typically differ in the last bits of many of the thousands of elements.

The key leaves out where the arrays lie in memory, which changes from step to step (with it, a
training run would meet several times as many keys): every piece starts a multiple of 64 bytes
after the whole (16 rows or columns of 4 or 8 bytes), so pieces and whole lie alike in the cache
lines, and OpenBLAS copies the operands of a large product into aligned buffers of its own before
it adds up. tests/test_split_check.py counts the keys of a training run and checks, on the BLAS
it runs on, that a verdict does not change with the operands' offsets.
"""

from __future__ import annotations

import os
import threading

import numpy as np

ADDRESS_BLOCK = 64  # bytes: the check's operands start where the real ones do within a block of this size

_verdicts = {}  # key -> whether the pieces reproduce the whole product bit for bit
_lock = threading.Lock()  # one check at a time, so each key's is made once


def layout(x):
    """What of an operand the kernel's order of additions may depend on, besides where it lies."""
    return x.shape, x.dtype.str, x.strides


def pieces_reproduce_whole(a, b, out, spans, by_rows):
    """Whether ``a @ b`` into ``out``, computed as the ``spans`` of rows (``by_rows``) or columns, gives
    the bits of the one-call product: the verdict of this process's check for this key (made now if new).

    Host NumPy arrays only. Operands that overlap in memory (NumPy may then call another BLAS routine
    for the whole, or copy first), that are not float32 or float64, or whose strides are negative or
    not multiples of their item size are never split.
    """
    if np.may_share_memory(a, b) or np.may_share_memory(out, a) or np.may_share_memory(out, b):
        return False
    key = (layout(a), layout(b), layout(out), by_rows, tuple((s.start, s.stop) for s in spans))
    verdict = _verdicts.get(key)
    if verdict is None:
        with _lock:
            verdict = _verdicts.get(key)
            if verdict is None:
                verdict = _verdicts[key] = _check(a, b, out, spans, by_rows)
    return verdict


def _check(a, b, out, spans, by_rows):
    if any(x.dtype not in (np.float32, np.float64) or any(s < 0 or s % x.itemsize for s in x.strides)
           for x in (a, b, out)):
        return False
    rng = np.random.default_rng(0)
    a, b = twin(a, rng), twin(b, rng)
    whole, split = twin(out), twin(out)  # every element is written
    np.matmul(a, b, out=whole)
    for s in spans:
        if by_rows:
            np.matmul(a[s], b, out=split[s])
        else:
            np.matmul(a, b[:, s], out=split[:, s])
    return bool(np.array_equal(whole, split))


def twin(x, rng=None):
    """A new array with the shape, dtype and strides of ``x`` and its start's offset within ADDRESS_BLOCK bytes,
    over uniform random numbers in [-0.5, 0.5) drawn from ``rng`` (None: left as it comes). ``x``'s strides:
    non-negative multiples of its item size."""
    extent = sum((n - 1) * s for n, s in zip(x.shape, x.strides)) + x.itemsize if x.size else 0
    raw = np.empty(extent + ADDRESS_BLOCK, dtype=np.uint8)
    start = (x.ctypes.data - raw.ctypes.data) % ADDRESS_BLOCK
    memory = raw[start:start + extent]
    items = memory.view(x.dtype)
    if rng is not None:
        items[...] = rng.random(items.size, dtype=np.float32 if x.dtype == np.float32 else np.float64) - 0.5
    return np.lib.stride_tricks.as_strided(items, x.shape, x.strides, writeable=True)


def _forget_lock():
    """In a forked child a check of the parent's may have held the lock: a fresh one (the verdicts stay valid)."""
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_lock)
