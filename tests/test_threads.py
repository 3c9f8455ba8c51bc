"""The thread policy (tinyvae/threads.py): how many of tinyvae's pieces run at once, BLAS on one thread
while training, the user's settings honoured, and no result that depends on any of it."""

import json
import signal
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController, threadpool_limits

from tinyvae import backend, split_check, threads
from tinyvae.checkpoint import load_arrays
from tinyvae.data import Dataset, load_dataset
from tinyvae.run.train import TrainConfig, train


def blas_threads():
    return [lib.get_num_threads() for lib in ThreadpoolController().select(user_api="blas").lib_controllers]


@pytest.fixture
def load(monkeypatch):
    """``load(n)``: pretend that n threads of other programs are ready to run."""
    monkeypatch.delenv("TINYVAE_THREADS", raising=False)

    def pretend(others):
        monkeypatch.setattr(threads._load, "others", lambda: others)
        monkeypatch.setattr(threads, "_USABLE", 2)
        monkeypatch.setattr(threads, "_ONLINE", 2)
    return pretend


# --------------------------------------------------------------------------- the decision, a pure function


@pytest.mark.parametrize("others, expected", [(0, 2), (1, 1), (2, 1), (40, 1)])
def test_each_busy_thread_of_another_program_takes_a_core_on_two_cores(others, expected):
    assert threads.decide(2, usable_cores=2, online_cores=2, others_running=others) == expected


def test_never_more_at_once_than_there_are_pieces_and_never_fewer_than_one():
    assert threads.decide(3, usable_cores=16, online_cores=16, others_running=0) == 3
    assert threads.decide(8, usable_cores=16, online_cores=16, others_running=12) == 4
    assert threads.decide(1, usable_cores=16, online_cores=16, others_running=0) == 1
    assert threads.decide(4, usable_cores=1, online_cores=1, others_running=0) == 1
    assert threads.decide(4, usable_cores=4, online_cores=4, others_running=100) == 1


def test_unknown_load_counts_every_usable_core_as_free():
    assert threads.decide(2, usable_cores=2, online_cores=2, others_running=None) == 2
    assert threads.decide(4, usable_cores=3, online_cores=8, others_running=None) == 3


def test_others_are_taken_as_spread_over_the_machine_when_this_process_may_use_only_some_cores():
    # 8 busy threads on a 16-core machine: half a thread per core, one of our 2 cores' worth
    assert threads.decide(2, usable_cores=2, online_cores=16, others_running=8) == 1
    assert threads.decide(2, usable_cores=2, online_cores=16, others_running=4) == 2  # a quarter of each core


def test_the_load_is_read_from_the_kernel_less_this_process_own_threads():
    total, own = threads.runnable_threads(), threads.own_running_threads()
    assert total is None or total >= 1
    assert own >= 1  # at least the thread asking
    assert threads.usable_cores() >= 1


# --------------------------------------------------------------------------- run_split follows it


def names_of_threads_that_ran(parts):
    return set(backend.run_split(lambda i: threading.current_thread().name, [(i,) for i in range(parts)]))


def test_a_busy_machine_runs_every_piece_on_the_calling_thread(load):
    load(2)
    assert names_of_threads_that_ran(2) == {threading.current_thread().name}
    load(0)
    assert len(names_of_threads_that_ran(2)) == 2


def test_tinyvae_threads_overrides_the_load(load, monkeypatch):
    load(2)
    monkeypatch.setenv("TINYVAE_THREADS", "2")
    assert len(names_of_threads_that_ran(2)) == 2
    monkeypatch.setenv("TINYVAE_THREADS", "1")
    assert backend.host_threads(np) == 1
    load(0)
    assert names_of_threads_that_ran(2) == {threading.current_thread().name}


def test_pieces_come_back_in_order_and_no_more_run_at_once_than_were_chosen(load, monkeypatch):
    load(0)  # two usable cores, both free: two at once, though the pool may hold more threads
    monkeypatch.setenv("TINYVAE_THREADS", "4")
    backend.run_split(lambda i: i, [(i,) for i in range(4)])  # three workers exist now
    monkeypatch.delenv("TINYVAE_THREADS")

    def piece(i):
        time.sleep(0.02)  # long enough for every idle worker thread to take a piece if it were offered one
        return i, threading.current_thread().name

    out = backend.run_split(piece, [(i,) for i in range(7)])
    assert [i for i, _ in out] == list(range(7))
    assert len({name for _, name in out}) == 2


def test_an_error_in_a_worker_piece_reaches_the_caller_after_every_piece_is_done(load):
    load(0)
    finished = []

    def piece(i):
        time.sleep(0.02 * (i == 0))  # the caller's piece ends last: the worker's error waits for it
        finished.append(i)
        if i == 1:
            raise ValueError("piece 1 failed")
        return i

    with pytest.raises(ValueError, match="piece 1 failed"):
        backend.run_split(piece, [(0,), (1,)])
    assert sorted(finished) == [0, 1]
    assert backend.run_split(lambda i: i * 10, [(1,), (2,)]) == [10, 20]  # the worker serves the next call


def test_an_error_in_the_caller_piece_still_waits_for_the_worker(load):
    load(0)
    finished = []

    def piece(i):
        if i == 0:
            raise KeyError("piece 0")
        time.sleep(0.02)
        finished.append(i)
        return i

    with pytest.raises(KeyError):
        backend.run_split(piece, [(0,), (1,)])
    assert finished == [1]  # done before run_split returned: no piece outlives the call
    assert backend.run_split(lambda i: -i, [(1,), (2,)]) == [-1, -2]


def test_a_split_left_by_ctrl_c_during_its_wait_gives_the_next_split_its_own_results(load):
    load(0)

    class Interrupted(Exception):
        pass

    def interrupt(signum, frame):
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)  # while this thread waits for the worker's piece
        with pytest.raises(Interrupted):
            backend.run_split(lambda i: time.sleep(0.3 * i) or ("slow", i), [(0,), (1,)])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert split_within_seconds(lambda i: ("next", i), 10) == [("next", 0), ("next", 1)]
    time.sleep(0.3)  # the interrupted piece ends meanwhile
    assert split_within_seconds(lambda i: ("after", i), 10) == [("after", 0), ("after", 1)]


def split_within_seconds(fn, seconds):
    """``backend.run_split(fn, [(0,), (1,)])`` from a thread of its own: its result, or a failure (not a
    hang) when it has not returned within ``seconds``."""
    got = []
    caller = threading.Thread(target=lambda: got.append(backend.run_split(fn, [(0,), (1,)])), daemon=True)
    caller.start()
    caller.join(seconds)
    assert got, f"run_split did not return within {seconds} s"
    return got[0]


def test_a_split_inside_a_piece_runs_on_that_thread_instead_of_waiting_for_busy_workers(load):
    load(0)
    names = lambda i: threading.current_thread().name  # noqa: E731
    out = backend.run_split(lambda i: backend.run_split(names, [(0,), (1,)]), [(0,), (1,)])
    assert len(set(out[0])) == 1 and len(set(out[1])) == 1  # each inner split stayed on its own thread
    assert out[0][0] != out[1][0]


def test_pieces_on_workers_follow_the_caller_floating_point_error_settings(load):
    load(0)
    small, big = np.array([1.0], dtype=np.float32), np.array([1e38], dtype=np.float32)
    for _ in range(2):  # a worker that has served a call under other settings takes the new ones
        with np.errstate(over="raise"):
            with pytest.raises(FloatingPointError):  # raised by the second piece, on a worker
                backend.run_split(lambda x: x * 10, [(small,), (big,)])
        with np.errstate(over="ignore"), warnings.catch_warnings():
            warnings.simplefilter("error")  # not even a warning
            assert np.isinf(backend.run_split(lambda x: x * 10, [(small,), (big,)])[1]).all()


# --------------------------------------------------------------------------- BLAS


def test_blas_runs_on_one_thread_while_pinned_and_as_before_after(monkeypatch):
    for name in threads.BLAS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    before = blas_threads()
    with threads.blas_pinned() as pinned:
        assert pinned and threads.products_split()
        assert blas_threads() == [1] * len(before)
    assert blas_threads() == before and not threads.products_split()


def test_a_blas_thread_count_set_in_the_environment_is_left_alone(monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    before = blas_threads()
    with threads.blas_pinned() as pinned:
        assert not pinned and not threads.products_split()
        assert blas_threads() == before


def test_a_threadpoolctl_limit_set_by_the_user_is_left_alone(monkeypatch):
    for name in threads.BLAS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    # as if BLAS had started with one thread more than it has now: the user lowered it
    monkeypatch.setitem(threads._blas, "started", [n + 1 for n in blas_threads()])
    with threads.blas_pinned() as pinned:
        assert not pinned
    with threadpool_limits(limits=1, user_api="blas"):
        monkeypatch.setitem(threads._blas, "started", [2] * len(blas_threads()))
        with threads.blas_pinned() as pinned:
            assert not pinned and blas_threads() == [1] * len(blas_threads())


# --------------------------------------------------------------------------- the same bits whatever is picked


@pytest.mark.parametrize("m, k, n", [(128, 784, 400), (128, 400, 784), (784, 128, 400), (400, 128, 784),
                                     (100, 1000, 777), (64, 1000, 73), (64, 25088, 288), (288, 25088, 64),
                                     (9, 100352, 32), (576, 6272, 64)])  # the conv VAE's kernel gradients
@pytest.mark.parametrize("pieces", ["2", "3", "7"])
def test_a_product_has_the_bits_of_the_whole_and_is_split_where_the_check_passed(m, k, n, pieces, monkeypatch):
    rng = np.random.default_rng(m + n)
    a, b = rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)
    monkeypatch.setenv("TINYVAE_THREADS", pieces)
    verdicts, check = [], split_check.pieces_reproduce_whole
    monkeypatch.setattr(split_check, "pieces_reproduce_whole", lambda *args, **kw: verdicts.append(check(*args, **kw))
                        or verdicts[-1])
    with threads.blas_pinned():
        for x, y in ((a, b), (b.T, a.T)):
            whole = np.matmul(x, y)
            calls, verdicts[:] = [], []
            monkeypatch.setattr(backend, "run_split", lambda fn, parts: calls.append(len(parts)) or
                                [fn(*p) for p in parts])
            np.testing.assert_array_equal(backend.matmul(x, y), whole)
            assert (calls != []) == (verdicts == [True])  # split exactly where the pieces gave the whole's bits
            assert verdicts or m * n * k < 2 * backend.MIN_PIECE_MACS  # checked, unless too small to split


def test_the_calling_thread_takes_the_largest_piece_of_a_split_product(monkeypatch):
    monkeypatch.setenv("TINYVAE_THREADS", "2")
    a, b = np.ones((128, 784), dtype=np.float32), np.ones((784, 400), dtype=np.float32)
    handed = []
    monkeypatch.setattr(split_check, "pieces_reproduce_whole", lambda *args, **kw: True)  # ones: exact on any kernel
    with threads.blas_pinned():
        monkeypatch.setattr(backend, "run_split", lambda fn, parts: handed.append(parts) or [fn(*p) for p in parts])
        backend.matmul(a, b)
    widths = [s.stop - s.start for (s,) in handed[0]]  # run_split runs the first part on the calling thread
    assert widths == [208, 192]


@pytest.fixture(scope="module")
def digits():
    full = load_dataset()
    return Dataset(full.train_x[:512], full.train_y[:512], full.val_x, full.val_y, full.test_x[:256],
                   full.test_y[:256])


def trained(tmp_path, digits, name, **changes):
    """A run of the default 784-400-20 model, batch 256 (large enough for every split), 2 epochs; or with
    ``changes`` to that config."""
    config = TrainConfig(**{"batch_size": 256, "epochs": 2, "seed": 5, "out": str(tmp_path / name), **changes})
    run = Path(train(config, dataset=digits, log=lambda *a: None, progress=False, pictures=False))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        del row["seconds"], row["eval_seconds"]
    return load_arrays(run / "checkpoint.npz")["theta"], rows


def test_training_gives_the_same_bits_whatever_the_policy_picks(tmp_path, digits, load, monkeypatch):
    load(0)  # idle: the pieces run at once
    theta, rows = trained(tmp_path, digits, "idle")
    load(3)  # busy: one after another
    theta_busy, rows_busy = trained(tmp_path, digits, "busy")
    np.testing.assert_array_equal(theta_busy, theta)
    assert rows_busy == rows  # the logged losses too: the same pieces, summed in the same order
    with threadpool_limits(limits=1, user_api="blas"):  # the user's one BLAS thread, no product split
        theta_one, _ = trained(tmp_path, digits, "blas1")
    np.testing.assert_array_equal(theta_one, theta)
    for count in ("1", "3"):  # other numbers of pieces: the same parameters
        monkeypatch.setenv("TINYVAE_THREADS", count)
        theta_n, _ = trained(tmp_path, digits, f"threads{count}")
        np.testing.assert_array_equal(theta_n, theta)


@pytest.fixture
def split_sizes(monkeypatch):
    """The number of pieces of every split that ``backend.run_split`` is handed, as they come."""
    sizes, split = [], backend.run_split
    monkeypatch.setattr(backend, "run_split", lambda fn, parts: sizes.append(len(parts)) or split(fn, parts))
    return sizes


# The conv VAE of the Keras example (channels 32, 64) at batch 128, one epoch of 4 steps: its ReLUs, bias sums
# and additions, im2col, col2im and products are all large enough to be split.
CONV = dict(arch="conv", latent=2, batch_size=128, epochs=1)


def test_conv_training_gives_the_same_bits_whatever_the_policy_picks(tmp_path, digits, load, monkeypatch,
                                                                      split_sizes):
    load(0)
    monkeypatch.setattr(backend, "_CPUS", 2)  # two pieces by default, as on any machine of two or more cores
    theta, rows = trained(tmp_path, digits, "idle", **CONV)
    assert split_sizes.count(2) > 100  # every step splits some 30 times
    load(3)
    theta_busy, rows_busy = trained(tmp_path, digits, "busy", **CONV)
    np.testing.assert_array_equal(theta_busy, theta)
    assert rows_busy == rows
    with threadpool_limits(limits=1, user_api="blas"):
        theta_one, _ = trained(tmp_path, digits, "blas1", **CONV)
    np.testing.assert_array_equal(theta_one, theta)
    for count in ("1", "3"):
        monkeypatch.setenv("TINYVAE_THREADS", count)
        split_sizes.clear()
        theta_n, _ = trained(tmp_path, digits, f"threads{count}", **CONV)
        np.testing.assert_array_equal(theta_n, theta)
        assert max(split_sizes) == int(count)
