"""Calling the learner's function on fresh copies of a case, reading its answer as named outputs,
and explaining an exception it raised."""

from __future__ import annotations

import linecache
import traceback
import warnings

import numpy as np

from .f_vae import VAE_PARAM_SHAPES
from .spec import SIZES


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return np.array(value, dtype=np.float64) if isinstance(value, np.ndarray) else value


def _call(fn, ex, case):
    """fn on fresh copies of the inputs, warnings silenced (overflow shows up in the result)."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return fn(*[_copy(case[a]) for a in ex.args]), None
    except Exception as err:  # noqa: BLE001  (the learner's exception is the feedback)
        return None, err


def _as_outputs(ex, result, problems=None, ref=None):
    """The learner's return value as {output name: value}; missing ones become None (and a problem).

    Too few values are read in order only when their shapes are those of the first outputs of ``ref``
    (the reference's answer); otherwise which ones are missing cannot be told, and none is read.
    """
    problems = [] if problems is None else problems
    names = ex.outputs
    if ex.name == "vae_backward":
        if not isinstance(result, dict):
            problems.append(f"expected a dict of gradients with the keys of params {list(names)}, got {type(result).__name__}")
            return dict.fromkeys(names)
        extra = sorted(set(result) - set(names))
        if extra:
            problems.append(f"unexpected keys {extra}: return exactly the keys of params")
        return {k: result.get(k) for k in names}
    if len(names) == 1:
        if isinstance(result, tuple) and len(result) == 1:
            result = result[0]
        if isinstance(result, (tuple, list)):
            problems.append(f"expected one array {names[0]}, got a {type(result).__name__} of {len(result)} values")
            return {names[0]: None}
        return {names[0]: result}
    if not isinstance(result, (tuple, list)):
        problems.append(f"expected a tuple of {len(names)} values ({', '.join(names)}), got one {type(result).__name__}")
        return dict.fromkeys(names)
    if len(result) != len(names):
        missing = names[len(result):]
        if len(result) < len(names) and ref is not None and not _leading_shapes_match(result, names, ref):
            yours = ", ".join(str(np.shape(v)) if _is_numeric(v) else type(v).__name__ for v in result)
            last = names[len(names) - len(result):]
            guess = (f" (they have the shapes of the last {len(result)}, ({', '.join(last)}): are "
                     f"{', '.join(names[:len(names) - len(result)])} left out?)"
                     if _leading_shapes_match(result, last, ref) else "")
            problems.append(f"returned {len(result)} values, expected {len(names)}: ({', '.join(names)}). Yours have "
                            f"the shapes {yours}, which are not those of the first {len(result)}, so which are "
                            f"missing cannot be told{guess}: return all {len(names)}, in this order")
            return dict.fromkeys(names)
        if len(result) < len(names):
            hint = "the bias gradient db is missing" if list(missing) == ["db"] else f"{', '.join(missing)} missing"
        elif "eps" in ex.args:
            hint = ("ε gets no gradient: it is an input, a draw of N(0, I) held fixed, not a parameter, so return "
                    f"only ({', '.join(names)}) [eq:reparam-grad-logvar]")
        else:
            hint = f"return exactly these {len(names)}, in this order"
        problems.append(f"returned {len(result)} values, expected {len(names)}: ({', '.join(names)}); {hint}")
        return {k: (result[i] if i < len(result) and len(result) < len(names) else None) for i, k in enumerate(names)}
    return dict(zip(names, result))


def _leading_shapes_match(result, names, ref):
    return all(_is_numeric(v) and np.shape(v) == np.shape(ref[k]) for v, k in zip(result, names))


def _is_numeric(v):
    try:
        np.asarray(v, dtype=np.float64)
        return True
    except (TypeError, ValueError):
        return False


def _same(a, b):
    for k in a:
        x, y = a[k], b.get(k)
        if x is None or y is None or not _is_numeric(x) or not _is_numeric(y):
            continue
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x.shape != y.shape or not np.allclose(x, y, rtol=1e-12, atol=0, equal_nan=True):
            return False
    return True


def _explain_exception(err, ex, case):
    """The exception, the learner's line that raised it, the input shapes and a hint."""
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if f.filename != __file__ and "site-packages" not in f.filename and "numpy" not in f.filename]
    where = ""
    if frames:
        f = frames[-1]
        line = f.line or linecache.getline(f.filename, f.lineno).strip()
        where = f"\n  in {f.name}, line {f.lineno}: {line}"
    shapes = ", ".join(f"{a} {_describe_shape(case[a])}" for a in ex.args if isinstance(case[a], np.ndarray))
    text = f"{type(err).__name__}: {err}{where}"
    if shapes:
        text += f"\n  your inputs: {shapes}"
    msg = str(err)
    if isinstance(err, ValueError) and ("matmul" in msg or "shapes" in msg or "broadcast" in msg or "aligned" in msg):
        text += ("\n  hint: the shapes do not line up. In A @ B the inner sizes must agree; a missing transpose "
                 "(.T) is the usual cause. Write each array's shape next to the line.")
    elif isinstance(err, KeyError) and ex.name == "vae_backward":
        text += f"\n  hint: params has keys {list(VAE_PARAM_SHAPES)}; cache has keys {list(case['cache'])}"
    return text


def _describe_shape(a):
    letters = {v: k for k, v in SIZES.items()}
    return f"{a.shape} = ({', '.join(letters.get(s, str(s)) for s in a.shape)}{',' if a.ndim == 1 else ''})"
