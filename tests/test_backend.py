"""Tests for tinyvae.backend and for the strict stand-in namespace the other tests rely on.

The strict namespace (tests/strict_xp.py) must refuse everything CuPy refuses, or a test that
passes on it proves nothing; and tinyvae's backend must accept it like CuPy.
"""

import sys

import numpy as np
import pytest

from strict_xp import StrictArray, strict_ns
from tinyvae import backend

# --------------------------------------------------------------------------- the guard itself


@pytest.fixture
def a():
    return strict_ns.asarray(np.arange(6.0).reshape(2, 3))


@pytest.mark.parametrize("convert", [
    pytest.param(lambda a: np.asarray(a), id="np.asarray"),
    pytest.param(lambda a: np.array(a), id="np.array"),
    pytest.param(lambda a: np.exp(a), id="np.exp"),
    pytest.param(lambda a: np.maximum(a, 0), id="np.maximum"),
    pytest.param(lambda a: np.concatenate([a, a]), id="np.concatenate"),
    pytest.param(lambda a: np.sum(a), id="np.sum"),
    pytest.param(lambda a: np.where(a > 0, a, 0), id="np.where"),
    pytest.param(lambda a: np.ones(3) + a[0], id="ndarray+strict"),
    pytest.param(lambda a: a[0] * np.ones(3), id="strict*ndarray"),
    pytest.param(lambda a: strict_ns.exp(np.ones(3)), id="xp.exp(ndarray)"),
    pytest.param(lambda a: a.__setitem__(0, np.ones(3)), id="strict[...]=ndarray"),
    pytest.param(lambda a: float(a), id="float of 2-d"),
])
def test_strict_arrays_refuse_every_silent_conversion_to_numpy(a, convert):
    with pytest.raises(TypeError, match="not allowed|does not support ufuncs|cannot mix|only 0-d"):
        convert(a)


def test_strict_arrays_support_what_cupy_arrays_support(a):
    b = a * 2 + 1 - a / 2
    assert isinstance(b, StrictArray) and b.shape == (2, 3) and b.dtype == np.float64
    np.testing.assert_array_equal((a @ a.T).get(), a.get() @ a.get().T)
    np.testing.assert_array_equal((1 - a).get(), 1 - a.get())
    np.testing.assert_array_equal((np.float64(2.0) * a).get(), 2 * a.get())  # NumPy scalar on the left
    assert (a > 2).dtype == np.bool_ and a.T.shape == (3, 2) and a.ndim == 2 and a.size == 6
    assert float(a.sum()) == 15.0 and int(a.max()) == 5 and bool(a.min() == 0) and f"{a.mean():.1f}" == "2.5"
    assert a.reshape(3, 2).shape == (3, 2) and a.ravel().shape == (6,) and a.astype(np.float32).dtype == np.float32
    assert a.__array_namespace__() is strict_ns


def test_strict_slices_are_views_that_write_through(a):
    row = a[1]
    row += 10  # in place on a view
    a[0, :2] = strict_ns.asarray(np.array([-1.0, -2.0]))
    entry = a[0, 2]  # a full integer index: a 0-d view, as on CuPy
    entry[...] = 7.0
    np.testing.assert_array_equal(a.get(), [[-1, -2, 7], [13, 14, 15]])


def test_strict_in_place_operators_and_out_keep_the_very_array(a):
    before = a
    a *= 3
    a -= 1
    assert a is before
    out = strict_ns.zeros(3, dtype=strict_ns.float64)
    assert strict_ns.sum(a, axis=0, out=out) is out
    np.testing.assert_array_equal(out.get(), (3 * np.arange(6.0).reshape(2, 3) - 1).sum(axis=0))


def test_strict_get_and_asarray_copy_across_the_edge():
    host = np.arange(3.0)
    dev = strict_ns.asarray(host)
    host[0] = 99.0
    assert float(dev[0]) == 0.0  # asarray copied
    back = dev.get()
    back[1] = 99.0
    assert float(dev[1]) == 1.0  # get copied


# --------------------------------------------------------------------------- tinyvae.backend accepts it


def test_get_xp_names_the_namespace_of_each_array():
    assert backend.get_xp(np.zeros(2)) is np
    assert backend.get_xp(np.float32(1)) is np
    assert backend.get_xp(strict_ns.zeros(2)) is strict_ns


def test_get_xp_refuses_a_non_array_naming_its_type():
    with pytest.raises(TypeError, match="expected an array .*got list"):
        backend.get_xp([1.0, 2.0])


def test_namespace_passes_an_array_namespace_through():
    assert backend.namespace("cpu") is np
    assert backend.namespace(strict_ns) is strict_ns
    assert backend.namespace(np) is np


@pytest.mark.parametrize("device, message", [
    ("tpu", r"device must be one of \('cpu', 'gpu'\), got 'tpu'"),
    (42, "device must be 'cpu', 'gpu' or an array namespace, got 42"),
])
def test_namespace_refuses_an_unknown_device_naming_it(device, message):
    with pytest.raises(ValueError, match=message):
        backend.namespace(device)


def test_to_device_copies_a_host_array_onto_the_strict_namespace():
    host = np.arange(4.0, dtype=np.float32)
    dev = backend.to_device(host, strict_ns)
    assert isinstance(dev, StrictArray) and dev.dtype == np.float32
    host[0] = 5.0
    np.testing.assert_array_equal(dev.get(), [0, 1, 2, 3])
    assert backend.to_device(dev, strict_ns) is dev  # already there: a no-op


def test_to_numpy_and_to_float_bring_strict_arrays_to_the_host():
    dev = strict_ns.asarray(np.array([[1.5, 2.5]]))
    host = backend.to_numpy(dev)
    assert type(host) is np.ndarray
    np.testing.assert_array_equal(host, [[1.5, 2.5]])
    assert backend.to_float(dev.sum()) == 4.0
    back = backend.to_device(dev, "cpu")
    assert type(back) is np.ndarray and back.tolist() == [[1.5, 2.5]]


def test_to_numpy_refuses_what_cannot_come_to_the_host():
    with pytest.raises(TypeError, match="cannot bring a list to the host"):
        backend.to_numpy([1.0])


def test_default_rng_on_the_strict_namespace_draws_numpys_stream_as_strict_arrays():
    dev, host = backend.default_rng(7, strict_ns), backend.default_rng(7)
    for draw in ("standard_normal", "random"):
        a, b = getattr(dev, draw)((2, 3)), getattr(host, draw)((2, 3))
        assert isinstance(a, StrictArray)
        np.testing.assert_array_equal(a.get(), b)
    np.testing.assert_array_equal(dev.normal(1.0, 2.0, 4).get(), host.normal(1.0, 2.0, 4))
    np.testing.assert_array_equal(dev.uniform(-1, 1, 4).get(), host.uniform(-1, 1, 4))
    assert dev.standard_normal(3, dtype=np.float32).dtype == np.float32


def test_synchronize_is_a_no_op_without_a_device_queue():
    backend.synchronize(np)
    backend.synchronize(strict_ns)  # no .cuda attribute: nothing to wait for


def test_gpu_without_cupy_is_a_clear_error_saying_how_to_install_it(monkeypatch):
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` fail
    with pytest.raises(backend.BackendError, match=r"needs CuPy, which is not installed: pip install 'tinyvae\[gpu\]'"):
        backend.namespace("gpu")


@pytest.mark.parametrize("device_xp", ["cupy"], indirect=True)
def test_gpu_backend_moves_arrays_and_back_where_cupy_and_a_gpu_exist(device_xp):
    cp = device_xp
    host = np.arange(5.0)
    dev = backend.to_device(host, "gpu")
    assert backend.get_xp(dev) is cp
    np.testing.assert_array_equal(backend.to_numpy(dev), host)
