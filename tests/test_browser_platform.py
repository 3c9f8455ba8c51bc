"""tinyvae in the browser's Python (Pyodide, ``sys.platform == "emscripten"``), simulated here.

There no thread can start ("can't start new thread") and ``os`` has no ``link``. Each test sets the
platform name, makes starting a thread fail as it fails there, and checks that the piece that would
have used a thread or a hard link does its work on the calling thread, with the same result.
"""

from __future__ import annotations

import os
import sys
import threading

import numpy as np
import pytest

from tinyvae import ModelConfig, build_model
from tinyvae import backend
from tinyvae.evaluation import importance
from tinyvae.checkpoint import atomic_write


@pytest.fixture
def browser_platform(monkeypatch):
    """sys.platform as Pyodide reports it, and no thread may start (as there)."""
    def refuse(self):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(sys, "platform", "emscripten")
    monkeypatch.setattr(threading.Thread, "start", refuse)
    monkeypatch.setattr(backend, "_workers", [])  # workers started earlier in this process are live threads
    monkeypatch.setenv("TINYVAE_THREADS", "2")  # even when asked for two


def test_host_work_runs_in_one_thread_in_the_browser(browser_platform):
    assert backend.host_threads(np) == 1
    parts = [(i,) for i in range(3)]
    assert backend.run_split(lambda i: (i, threading.get_ident()), parts) == \
        [(i, threading.get_ident()) for i in range(3)]


def _bounds_model():
    return build_model(ModelConfig(input_dim=12, hidden=(8,), latent=3, activation="tanh", seed=1))


def _log_weights():
    model = _bounds_model()
    x = (np.random.default_rng(2).random((5, 12)) < 0.5).astype(np.float32)
    noise = np.random.default_rng(3)
    return np.concatenate(list(importance.log_weights(model, [x[:3], x[3:]], 7, noise)))


def test_importance_weights_in_the_browser_draw_noise_inline_with_the_same_result(monkeypatch):
    native = _log_weights()
    assert importance._fast_path_applies(_bounds_model())  # the path that uses the helper thread
    with monkeypatch.context() as m:
        m.setattr(sys, "platform", "emscripten")
        m.setattr(threading.Thread, "start", lambda self: (_ for _ in ()).throw(RuntimeError("can't start new thread")))
        m.setattr(backend, "_workers", [])
        browser = _log_weights()
    np.testing.assert_array_equal(browser, native)


def test_exclusive_write_without_os_link_creates_once_then_refuses(browser_platform, monkeypatch, tmp_path):
    monkeypatch.delattr(os, "link")  # Pyodide's os has no link: AttributeError, not OSError
    path = tmp_path / "run" / "config.json"
    atomic_write(path, lambda f: f.write(b"first"), exclusive=True)
    with pytest.raises(FileExistsError):
        atomic_write(path, lambda f: f.write(b"second"), exclusive=True)
    assert path.read_bytes() == b"first"
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.json"]  # no temporary left behind


def test_training_in_the_browser_runs_without_a_socket_pair_for_ctrl_c(browser_platform, monkeypatch, tmp_path):
    import socket  # noqa: PLC0415

    from tinyvae import TrainConfig, data, train  # noqa: PLC0415

    def refuse(*args, **kwargs):  # Pyodide's socket.socketpair fails so (its fallback cannot accept)
        raise OSError(28, "Invalid argument")

    monkeypatch.setattr(socket, "socketpair", refuse)
    mnist = data.load_dataset()
    subset = data.Dataset(mnist.train_x[:200], mnist.train_y[:200], mnist.val_x, mnist.val_y,
                          mnist.test_x[:50], mnist.test_y[:50])
    config = TrainConfig(hidden=(8,), latent=2, epochs=1, batch_size=50, seed=0, out=str(tmp_path / "run"))
    run = train(config, dataset=subset, progress=False, pictures=False, log=lambda *_: None)
    assert (run / "checkpoint.npz").is_file()
