"""Input validation with errors that say what was wrong and what was expected.

Every public entry point checks its arrays here before touching them. The checks are cheap
(shape and dtype are free; finiteness is one reduction), and the training loop, whose batches come
from validated uint8 images, can skip the finiteness pass with ``validate=False``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .backend import get_xp


class ShapeError(ValueError):
    """An array has the wrong number of dimensions or the wrong size along one."""


def check_array(x, name, *, ndim=None, shape=None, floating=True, finite=True):
    """Check ``x`` and return it unchanged.

    ``shape`` may hold ``None`` for a free dimension, e.g. ``(None, 784)`` for a batch of
    MNIST images. ``finite=True`` refuses NaN and inf (one reduction over ``x``).
    """
    try:
        xp = get_xp(x)
    except TypeError:
        raise TypeError(f"{name}: expected an array, got {type(x).__name__}") from None
    if shape is not None:
        ndim = len(shape)
    if ndim is not None and x.ndim != ndim:
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")" if shape else f"{ndim}-d"
        raise ShapeError(f"{name}: expected shape {want}, got {tuple(x.shape)}")
    if shape is not None:
        for axis, (got, want) in enumerate(zip(x.shape, shape)):
            if want is not None and got != want:
                raise ShapeError(
                    f"{name}: expected size {want} along axis {axis}, got shape {tuple(x.shape)}"
                )
    if floating and x.dtype.kind != "f":
        raise TypeError(
            f"{name}: expected a floating-point array (float32 or float64), got dtype {x.dtype}; "
            f"convert images with tinyvae.data.to_float or x.astype(float32)"
        )
    if finite and x.size and not bool(xp.all(xp.isfinite(x))):
        bad = int(xp.sum(~xp.isfinite(x)))
        raise ValueError(f"{name}: expected finite values, got {bad} NaN or inf entries")
    return x


def check_unit_interval(x, name):
    """Bernoulli targets must lie in [0, 1] (grey levels are allowed, see derivations/bernoulli.md)."""
    xp = get_xp(x)
    if x.size and not bool(xp.all((x >= 0) & (x <= 1))):
        lo, hi = float(xp.min(x)), float(xp.max(x))
        raise ValueError(
            f"{name}: Bernoulli targets must lie in [0, 1], got values in [{lo:g}, {hi:g}]; "
            f"scale images by 1/255 (tinyvae.data.to_float) or use likelihood='gaussian'"
        )
    return x


def check_same_shape(a, a_name, b, b_name):
    if tuple(a.shape) != tuple(b.shape):
        raise ShapeError(f"{a_name} and {b_name} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def field_problems(config):
    """Type problems of a config dataclass, judged by each field's default; converts what it accepts.

    An int field takes an integer (not a bool, not 2.5), a float field a finite real number, a str
    field a string, a tuple field a list or tuple (of integers when the default holds integers).
    Fields whose default is None are left to the class. Returns {field name: "NAME must be ..., got ..."}
    and stores accepted values in canonical form (Python int, float, tuple), so a config read back
    from JSON compares equal to the one written. New fields are covered by their default alone.
    """
    problems = {}
    for field in dataclasses.fields(config):
        default = field.default
        if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        value = getattr(config, field.name)
        ok, what, canonical = _judge(default, value)
        if ok:
            setattr(config, field.name, canonical)
        elif what is not None:
            problems[field.name] = f"{field.name} must be {what}, got {value!r}"
    return problems


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _judge(default, value):
    """(accepted, what was expected, canonical value) for ``value`` of a field whose default is ``default``."""
    if default is None or default is dataclasses.MISSING:
        return True, None, value
    if isinstance(default, bool):
        ok = isinstance(value, (bool, np.bool_))
        return ok, "True or False", bool(value) if ok else value
    if isinstance(default, int):
        return (_is_int(value), "an integer", int(value) if _is_int(value) else value)
    if isinstance(default, float):
        ok = (_is_int(value) or isinstance(value, (float, np.floating))) and math.isfinite(float(value))
        return ok, "a finite number", float(value) if ok else value
    if isinstance(default, str):
        return isinstance(value, str), "a string", value
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            return False, "a list of integers" if default and _is_int(default[0]) else "a list", value
        if default and _is_int(default[0]):
            ok = all(_is_int(v) for v in value)
            return ok, "a list of integers", tuple(int(v) for v in value) if ok else value
        return True, None, tuple(value)
    return True, None, value
