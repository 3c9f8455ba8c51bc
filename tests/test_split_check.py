"""The check that lets tinyvae split a matrix product only where the pieces give the bits of the whole
(tinyvae/split_check.py): on a kernel whose cut changes bits, nothing is split and a run's bits stay
the same for any number of threads; each kind of product is checked once."""

import threading
from pathlib import Path

import numpy as np
import pytest

from tinyvae import backend, split_check, threads
from tinyvae.checkpoint import load_arrays
from tinyvae.data import Dataset, load_dataset
from tinyvae.run.train import TrainConfig, train

REAL_MATMUL = np.matmul


def kernel_that_rounds_up_odd_widths(a, b, out=None):
    """A stand-in for a BLAS kernel whose order of additions depends on the width of the result: a product
    whose width is not a multiple of 32 comes out one unit in the last place higher."""
    result = REAL_MATMUL(a, b, out=out)
    if result.ndim == 2 and result.shape[1] % 32:
        np.nextafter(result, np.inf, out=result)
    return result


@pytest.fixture(autouse=True)
def blas_left_to_tinyvae(monkeypatch):
    """No BLAS thread count in the environment: tinyvae pins BLAS and splits products."""
    for name in threads.BLAS_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fresh_verdicts(monkeypatch):
    """An empty verdict cache for the test; the process's own comes back afterwards."""
    verdicts = {}
    monkeypatch.setattr(split_check, "_verdicts", verdicts)
    return verdicts


@pytest.fixture
def bits_changing_kernel(monkeypatch, fresh_verdicts):
    monkeypatch.setattr(np, "matmul", kernel_that_rounds_up_odd_widths)
    return fresh_verdicts


def split_calls(monkeypatch):
    """The number of pieces of each split ``backend.run_split`` is handed, as they come."""
    sizes, split = [], backend.run_split
    monkeypatch.setattr(backend, "run_split", lambda fn, parts: sizes.append(len(parts)) or split(fn, parts))
    return sizes


def test_the_stand_in_kernel_changes_bits_when_a_product_is_cut_into_columns():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((128, 784), dtype=np.float32), rng.standard_normal((784, 400), dtype=np.float32)
    whole = kernel_that_rounds_up_odd_widths(a, b)
    pieces = np.concatenate([kernel_that_rounds_up_odd_widths(a, b[:, :208]),
                             kernel_that_rounds_up_odd_widths(a, b[:, 208:])], axis=1)
    assert not np.array_equal(pieces, whole)  # so the tests below would see a split that changes bits


def test_a_product_whose_pieces_change_bits_is_computed_whole(bits_changing_kernel, monkeypatch):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((128, 784), dtype=np.float32), rng.standard_normal((784, 400), dtype=np.float32)
    monkeypatch.setenv("TINYVAE_THREADS", "2")
    calls = split_calls(monkeypatch)
    with threads.blas_pinned():
        got, whole = backend.matmul(a, b), kernel_that_rounds_up_odd_widths(a, b)
    np.testing.assert_array_equal(got, whole)
    assert calls == [] and list(bits_changing_kernel.values()) == [False]


def test_a_product_whose_pieces_keep_the_bits_is_split_as_on_the_real_kernel(fresh_verdicts, monkeypatch):
    rng = np.random.default_rng(2)  # (784, 128) @ (128, 400): rows are cut, every piece 400 wide like the whole
    a, b = rng.standard_normal((784, 128), dtype=np.float32), rng.standard_normal((128, 400), dtype=np.float32)
    monkeypatch.setenv("TINYVAE_THREADS", "2")
    with threads.blas_pinned():
        backend.matmul(a, b)
        (on_the_real_kernel,) = fresh_verdicts.values()  # True with OpenBLAS's SkylakeX kernel
        fresh_verdicts.clear()
        monkeypatch.setattr(np, "matmul", kernel_that_rounds_up_odd_widths)  # it rounds up whole and pieces alike
        calls = split_calls(monkeypatch)
        got, whole = backend.matmul(a, b), kernel_that_rounds_up_odd_widths(a, b)
    np.testing.assert_array_equal(got, whole)
    assert list(fresh_verdicts.values()) == [on_the_real_kernel]
    assert calls == ([2] if on_the_real_kernel else [])


def trained_theta(digits, out):
    config = TrainConfig(batch_size=256, epochs=1, seed=5, out=str(out))
    run = Path(train(config, dataset=digits, log=lambda *a: None, progress=False, pictures=False))
    return load_arrays(run / "checkpoint.npz")["theta"]


@pytest.fixture(scope="module")
def digits():
    full = load_dataset()
    return Dataset(full.train_x[:512], full.train_y[:512], full.val_x[:256], full.val_y[:256], full.test_x[:256],
                   full.test_y[:256])


def test_on_a_kernel_whose_cuts_change_bits_training_gives_the_same_bits_for_any_number_of_threads(
        bits_changing_kernel, digits, monkeypatch, tmp_path):
    thetas = {}
    for count in ("1", "2", "3"):
        monkeypatch.setenv("TINYVAE_THREADS", count)
        thetas[count] = trained_theta(digits, tmp_path / count)
    np.testing.assert_array_equal(thetas["2"], thetas["1"])
    np.testing.assert_array_equal(thetas["3"], thetas["1"])
    assert False in bits_changing_kernel.values()  # the stand-in's cuts were refused (on SkylakeX, not all)


def test_each_kind_of_product_is_checked_once(fresh_verdicts, monkeypatch):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((128, 784), dtype=np.float32), rng.standard_normal((784, 400), dtype=np.float32)
    products = []
    monkeypatch.setattr(np, "matmul", lambda *args, **kw: products.append(1) or REAL_MATMUL(*args, **kw))
    monkeypatch.setenv("TINYVAE_THREADS", "2")
    with threads.blas_pinned():
        backend.matmul(a, b)
        first = len(products)
        backend.matmul(a, b)
        second = len(products) - first
        backend.matmul(np.asfortranarray(a), b)  # another layout: another kind
        third = len(products) - first - second
    c_order, f_order = ((2 if verdict else 1) for verdict in fresh_verdicts.values())  # products of the work
    assert first == 3 + c_order  # the check's whole and two pieces, then the work itself
    assert second == c_order  # the verdict is reused: no check
    assert third == 3 + f_order


def test_a_verdict_holds_for_one_memory_layout_only(fresh_verdicts, monkeypatch):
    # a stand-in check whose kernel keeps the bits of row-major left operands only
    monkeypatch.setattr(split_check, "_check", lambda a, b, out, spans, by_rows: a.flags.c_contiguous)
    a, b = np.ones((128, 784), dtype=np.float32), np.ones((784, 400), dtype=np.float32)
    out = np.empty((128, 400), dtype=np.float32)
    spans = [slice(0, 208), slice(208, 400)]
    assert split_check.pieces_reproduce_whole(a, b, out, spans, by_rows=False)
    assert not split_check.pieces_reproduce_whole(np.asfortranarray(a), b, out, spans, by_rows=False)
    assert split_check.pieces_reproduce_whole(a, b, out, spans, by_rows=False)


def test_threads_asking_about_a_new_kind_of_product_at_once_share_one_check(fresh_verdicts, monkeypatch):
    a, b = np.ones((128, 784), dtype=np.float32), np.ones((784, 400), dtype=np.float32)
    out, spans = np.empty((128, 400), dtype=np.float32), [slice(0, 208), slice(208, 400)]
    checks, check = [], split_check._check
    monkeypatch.setattr(split_check, "_check", lambda *args: checks.append(1) or check(*args))
    start, answers = threading.Barrier(4), []

    def ask():
        start.wait()
        answers.append(split_check.pieces_reproduce_whole(a, b, out, spans, by_rows=False))
    askers = [threading.Thread(target=ask) for _ in range(4)]
    for asker in askers:
        asker.start()
    for asker in askers:
        asker.join()
    assert len(checks) == 1 and len(set(answers)) == 1 and len(answers) == 4


def at_offset(shape, offset, rng):
    """A float32 array of ``shape`` whose data starts ``offset`` bytes into a 64-byte block."""
    raw = np.empty(int(np.prod(shape)) * 4 + 64, dtype=np.uint8)
    start = (offset - raw.ctypes.data) % 64
    x = raw[start:start + int(np.prod(shape)) * 4].view(np.float32).reshape(shape)
    x[...] = rng.standard_normal(shape)
    return x


@pytest.mark.parametrize("m, k, n", [(128, 784, 400), (784, 128, 400)])
def test_a_verdict_does_not_depend_on_where_the_operands_lie_in_memory(fresh_verdicts, m, k, n):
    rng = np.random.default_rng(4)
    spans = backend._product_pieces(m, k, n, 2)
    verdicts = set()
    with threads.blas_pinned():
        for offset in range(0, 64, 4):
            fresh_verdicts.clear()
            a, b, out = (at_offset(shape, offset, rng) for shape in ((m, k), (k, n), (m, n)))
            verdicts.add(split_check.pieces_reproduce_whole(a, b, out, spans, by_rows=m >= n))
    assert len(verdicts) == 1


def test_operands_that_share_memory_are_never_split(fresh_verdicts, monkeypatch):
    monkeypatch.setattr(split_check, "_check", lambda *args: True)  # a kernel whose cuts keep every bit
    x = np.ones((800, 800), dtype=np.float32)
    assert not split_check.pieces_reproduce_whole(x, x.T, np.empty_like(x), [slice(0, 400), slice(400, 800)], True)
    assert not split_check.pieces_reproduce_whole(x, x, x, [slice(0, 400), slice(400, 800)], True)


def test_a_training_run_of_the_default_model_meets_at_most_a_dozen_kinds_of_product(fresh_verdicts, digits,
                                                                                      monkeypatch, tmp_path):
    monkeypatch.setattr(backend, "_CPUS", 2)  # two pieces, as on any machine of two cores or more
    monkeypatch.delenv("TINYVAE_THREADS", raising=False)
    train(TrainConfig(epochs=2, seed=1, out=str(tmp_path)), dataset=digits, log=lambda *a: None, progress=False,
          pictures=False)
    # batches of 128 and evaluation batches: 784-400-20's forward and backward products, each a few shapes
    assert 4 <= len(fresh_verdicts) <= 12
