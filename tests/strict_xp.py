"""A stand-in for CuPy whose arrays refuse to become NumPy arrays behind the code's back.

A CuPy array lives on the GPU: ``np.exp(cupy_array)``, ``np.asarray(cupy_array)`` or
``cupy_array + numpy_array`` raise ``TypeError`` instead of silently copying to the host. Code that
calls ``np.`` where it should call ``xp.`` therefore works on the CPU and breaks on the GPU, and a
test suite run without a GPU never notices. This module gives the tests the same guard on any
machine: ``strict_ns`` is an array namespace (``asarray``, ``zeros``, ``exp``, ``matmul`` ... with
``out=``, ``random.default_rng``) whose arrays are ``StrictArray`` wrappers around a private NumPy
array that

* refuse conversion (``__array__`` raises, ``__array_ufunc__ = None``, ``__array_function__``
  refuses), so any NumPy function applied to them raises ``TypeError``;
* refuse to mix with host NumPy arrays in operators, namespace functions and assignments;
* support what CuPy's arrays support and tinyvae uses: arithmetic (also in place), comparisons,
  ``@``, indexing that returns views which write through, ``__setitem__``, the usual attributes
  and reductions, ``bool``/``float``/``int`` of 0-d arrays and ``.get()`` (the host copy, an edge).

The only ways to the host are ``.get()`` and ``strict_ns.asnumpy``; the only way in is
``strict_ns.asarray`` (or ``array``), which copies, as a host -> device transfer does.
This is a helper module for the tests, not a test file.
"""

from __future__ import annotations

import operator

import numpy as np

CONVERSION_REFUSED = (
    "implicit conversion to a NumPy array is not allowed (StrictArray stands in for a GPU array): "
    "use xp = get_xp(x) and xp.* functions, or .get() at an edge"
)
MIXING_REFUSED = (
    "cannot mix a host NumPy array with a StrictArray (a device array): "
    "move it with xp.asarray / tinyvae.backend.to_device first"
)

_DTYPE_NAMES = ("bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                "float16", "float32", "float64", "complex64", "complex128", "intp")
_CONSTANTS = ("pi", "e", "inf", "nan", "newaxis")
# ndarray methods a StrictArray offers (each keeps its result on the "device").
_METHODS = ("reshape", "sum", "mean", "max", "min", "astype", "copy", "ravel", "transpose", "any", "all",
            "fill", "std", "var", "argmax", "argmin", "clip", "squeeze", "flatten", "dot", "prod",
            "cumsum", "swapaxes")


def _unwrap(obj):
    """The private NumPy arrays inside ``obj`` (recursing into tuples, lists and dicts).

    A bare NumPy array is refused: on a GPU it would be a host array in a device computation.
    Scalars (Python numbers and NumPy scalars) pass, as CuPy accepts them.
    """
    if isinstance(obj, StrictArray):
        return obj._a
    if isinstance(obj, np.ndarray):
        raise TypeError(MIXING_REFUSED)
    if isinstance(obj, tuple):
        return tuple(_unwrap(o) for o in obj)
    if isinstance(obj, list):
        return [_unwrap(o) for o in obj]
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
    return obj


def _wrap(obj):
    """Wrap NumPy results; NumPy scalars become 0-d arrays, as CuPy returns 0-d arrays."""
    if isinstance(obj, np.ndarray):
        return StrictArray(obj)
    if isinstance(obj, np.generic):
        return StrictArray(np.asarray(obj))
    if isinstance(obj, tuple):
        return tuple(_wrap(o) for o in obj)
    if isinstance(obj, list):
        return [_wrap(o) for o in obj]
    return obj


def _call(fn, args, kwargs):
    """Call a NumPy function on unwrapped arguments; ``out=`` returns the very array passed."""
    out = kwargs.get("out")
    result = fn(*_unwrap(args), **_unwrap(kwargs))
    if out is not None:
        return out
    return _wrap(result)


def _operand(other):
    if isinstance(other, StrictArray):
        return other._a
    if isinstance(other, np.ndarray):
        raise TypeError(MIXING_REFUSED)
    if isinstance(other, (int, float, complex, bool, np.generic)):
        return other
    return NotImplemented


def _binary(op):
    def method(self, other):
        o = _operand(other)
        return NotImplemented if o is NotImplemented else _wrap(op(self._a, o))
    method.__name__ = f"__{op.__name__.strip('_')}__"
    return method


def _reflected(op):
    def method(self, other):
        o = _operand(other)
        return NotImplemented if o is NotImplemented else _wrap(op(o, self._a))
    return method


def _inplace(op):
    def method(self, other):
        o = _operand(other)
        if o is NotImplemented:
            return NotImplemented
        op(self._a, o)  # NumPy's in-place operators write into self._a
        return self
    return method


def _unary(op):
    def method(self):
        return _wrap(op(self._a))
    return method


def _forward_method(name):
    def method(self, *args, **kwargs):
        return _call(getattr(self._a, name), args, kwargs)
    method.__name__ = name
    return method


class StrictArray:
    """A "device" array: a private NumPy array that refuses to be converted to NumPy."""

    __slots__ = ("_a",)
    __array_ufunc__ = None  # np.exp(strict), ndarray + strict: NumPy gives up (TypeError / reflected op)
    __hash__ = None

    def __init__(self, array):
        if not isinstance(array, np.ndarray):
            raise TypeError(f"StrictArray wraps a numpy.ndarray, got {type(array).__name__}")
        self._a = array

    # ---- refusing conversion

    def __array__(self, dtype=None, copy=None):
        raise TypeError(CONVERSION_REFUSED)

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"numpy.{func.__name__} called on a StrictArray: {CONVERSION_REFUSED}")

    def __array_namespace__(self, api_version=None):
        return strict_ns

    # ---- the edges, as CuPy has them

    def get(self):
        """A host NumPy copy (CuPy's device -> host transfer)."""
        return self._a.copy()

    def _scalar(self, kind):
        if self._a.ndim != 0:
            raise TypeError(f"only 0-d StrictArrays convert to {kind.__name__}, got shape {self._a.shape}")
        return kind(self._a)

    def __bool__(self):
        return self._scalar(bool)

    def __float__(self):
        return self._scalar(float)

    def __int__(self):
        return self._scalar(int)

    def __index__(self):
        if self._a.ndim != 0 or self._a.dtype.kind not in "iu":
            raise TypeError("only 0-d integer StrictArrays can be used as an index")
        return int(self._a)

    def __format__(self, spec):
        return format(self._scalar(float), spec) if self._a.ndim == 0 else format(str(self), spec)

    def __repr__(self):
        return f"StrictArray({self._a!r})"

    def __len__(self):
        if self._a.ndim == 0:
            raise TypeError("len() of a 0-d StrictArray")
        return len(self._a)

    # ---- attributes

    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    T = property(lambda self: StrictArray(self._a.T))

    # ---- indexing: basic indexing gives views that write through

    def __getitem__(self, key):
        key = _unwrap(key)
        result = self._a[key]
        if isinstance(result, np.generic):  # a full integer index: CuPy gives a 0-d view
            result = self._a[(key if isinstance(key, tuple) else (key,)) + (Ellipsis,)]
        return _wrap(result)

    def __setitem__(self, key, value):
        self._a[_unwrap(key)] = _unwrap(value)

    # ---- operators

    __add__, __radd__, __iadd__ = _binary(operator.add), _reflected(operator.add), _inplace(operator.iadd)
    __sub__, __rsub__, __isub__ = _binary(operator.sub), _reflected(operator.sub), _inplace(operator.isub)
    __mul__, __rmul__, __imul__ = _binary(operator.mul), _reflected(operator.mul), _inplace(operator.imul)
    __truediv__, __rtruediv__, __itruediv__ = (_binary(operator.truediv), _reflected(operator.truediv),
                                               _inplace(operator.itruediv))
    __floordiv__, __rfloordiv__, __ifloordiv__ = (_binary(operator.floordiv), _reflected(operator.floordiv),
                                                  _inplace(operator.ifloordiv))
    __mod__, __rmod__, __imod__ = _binary(operator.mod), _reflected(operator.mod), _inplace(operator.imod)
    __pow__, __rpow__, __ipow__ = _binary(operator.pow), _reflected(operator.pow), _inplace(operator.ipow)
    __matmul__, __rmatmul__ = _binary(operator.matmul), _reflected(operator.matmul)
    __and__, __rand__, __iand__ = _binary(operator.and_), _reflected(operator.and_), _inplace(operator.iand)
    __or__, __ror__, __ior__ = _binary(operator.or_), _reflected(operator.or_), _inplace(operator.ior)
    __xor__, __rxor__, __ixor__ = _binary(operator.xor), _reflected(operator.xor), _inplace(operator.ixor)
    __lt__, __le__ = _binary(operator.lt), _binary(operator.le)
    __gt__, __ge__ = _binary(operator.gt), _binary(operator.ge)
    __eq__, __ne__ = _binary(operator.eq), _binary(operator.ne)
    __neg__, __pos__, __abs__, __invert__ = (_unary(operator.neg), _unary(operator.pos), _unary(operator.abs),
                                             _unary(operator.invert))


for _name in _METHODS:
    setattr(StrictArray, _name, _forward_method(_name))
del _name


class _StrictGenerator:
    """A seeded generator on the "device": NumPy's stream, results as StrictArrays."""

    def __init__(self, seed):
        self._rng = np.random.default_rng(seed)

    def __getattr__(self, name):
        method = getattr(self._rng, name)  # standard_normal, random, normal, uniform, integers ...
        if not callable(method):
            return method
        return lambda *args, **kwargs: _call(method, args, kwargs)


class _StrictRandom:
    """``strict_ns.random``: only ``default_rng``, the Generator API CuPy also offers."""

    @staticmethod
    def default_rng(seed=None):
        return _StrictGenerator(seed)


class StrictNamespace:
    """An array namespace like ``numpy``/``cupy`` whose arrays are ``StrictArray``.

    Any NumPy function is available by name (``strict_ns.exp``, ``strict_ns.matmul(a, b, out=c)``):
    arguments are unwrapped, NumPy is called, array results are wrapped, and ``out=`` returns the
    very array passed. ``asarray`` and ``array`` copy a host array in (the host -> device edge),
    ``asnumpy`` copies one out.
    """

    random = _StrictRandom()
    ndarray = StrictArray
    __name__ = "strict_xp"

    def __repr__(self):
        return "<strict array namespace>"

    @staticmethod
    def asarray(x, dtype=None):
        if isinstance(x, StrictArray):
            return x if dtype is None or x.dtype == np.dtype(dtype) else x.astype(dtype)
        return StrictArray(np.array(x, dtype=dtype, copy=True))  # a transfer is always a copy

    array = asarray

    @staticmethod
    def asnumpy(x):
        return x.get() if isinstance(x, StrictArray) else np.asarray(x)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(np, name)  # AttributeError for names NumPy lacks (e.g. "cuda")
        if name in _DTYPE_NAMES or name in _CONSTANTS or isinstance(attr, type) or not callable(attr):
            return attr
        fn = lambda *args, **kwargs: _call(attr, args, kwargs)  # noqa: E731
        fn.__name__ = name
        return fn


strict_ns = StrictNamespace()
