"""Tests for tinyvae.nn.optim: Adam against a textbook Adam written out here (bias corrections
unfolded), SGD with momentum against the PyTorch-convention formula, convergence on a quadratic,
state round trips, float32 and in-place updates, errors, and backend-cleanliness.
"""

import numpy as np
import pytest

from tinyvae import backend
from tinyvae.checkpoint import CheckpointError, load_arrays, save_arrays
from tinyvae.nn.optim import SGD, Adam
from tinyvae.models.vae import VAE

F64 = np.float64


class Quadratic:
    """f(θ) = ½ Σ a ⊙ (θ − c)², a stand-in model with one parameter and one gradient buffer."""

    def __init__(self, size=7, seed=0, dtype=F64):
        rng = np.random.default_rng(seed)
        self.a = rng.uniform(0.5, 2.0, size).astype(dtype)
        self.c = rng.standard_normal(size).astype(dtype)
        self.theta = rng.standard_normal(size).astype(dtype) * 3
        self.grad = np.zeros(size, dtype)

    def loss(self):
        return 0.5 * float((self.a * (self.theta - self.c) ** 2).sum())

    def backward(self):
        self.grad[...] = self.a * (self.theta - self.c)
        return self.grad


def textbook_adam(theta, grads_of, steps, lr, b1=0.9, b2=0.999, eps=1e-8):
    """Kingma & Ba (2015), Algorithm 1, bias corrections written out."""
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    for t in range(1, steps + 1):
        g = grads_of(theta)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
    return theta


def pytorch_sgd(theta, grads_of, steps, lr, momentum):
    """torch.optim.SGD: v ← μ·v + g (v starts at the first g), θ ← θ − lr·v."""
    v = None
    for _ in range(steps):
        g = grads_of(theta)
        v = g.copy() if v is None else momentum * v + g
        theta = theta - lr * v
    return theta


def run(opt, model, steps):
    for _ in range(steps):
        model.backward()
        opt.step()
    return model.theta


@pytest.mark.parametrize("lr, betas, eps", [(1e-3, (0.9, 0.999), 1e-8), (0.05, (0.8, 0.99), 1e-6),
                                            (0.3, (0.0, 0.5), 1e-3)])
def test_adam_matches_textbook_adam_with_unfolded_bias_correction(lr, betas, eps):
    model = Quadratic()
    start = model.theta.copy()
    expected = textbook_adam(start, lambda th: model.a * (th - model.c), 12, lr, *betas, eps)
    got = run(Adam(model, lr=lr, betas=betas, eps=eps), model, 12)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
def test_sgd_with_momentum_matches_the_pytorch_convention(momentum):
    model = Quadratic(seed=1)
    expected = pytorch_sgd(model.theta.copy(), lambda th: model.a * (th - model.c), 10, 0.1, momentum)
    got = run(SGD(model, lr=0.1, momentum=momentum), model, 10)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15)


def test_sgd_without_momentum_is_plain_gradient_descent():
    model = Quadratic(seed=2)
    theta, g = model.theta.copy(), model.backward().copy()
    SGD(model, lr=0.25, momentum=0.0).step()
    np.testing.assert_array_equal(model.theta, theta - 0.25 * g)


@pytest.mark.parametrize("make", [lambda m: Adam(m, lr=0.05), lambda m: SGD(m, lr=0.1, momentum=0.9)],
                         ids=["adam", "sgd-momentum"])
def test_optimizers_minimize_a_quadratic(make):
    model = Quadratic(seed=3)
    start = model.loss()
    run(make(model), model, 400)
    assert model.loss() < 1e-6 * start
    np.testing.assert_allclose(model.theta, model.c, atol=2e-3)


def test_optimizers_accept_explicit_lists_and_dicts_of_parameters():
    rng = np.random.default_rng(4)
    params = {"W": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}
    grads = {"W": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}
    before = {k: v.copy() for k, v in params.items()}
    SGD(params, grads, lr=0.5, momentum=0.0).step()
    for k in params:
        np.testing.assert_allclose(params[k], before[k] - 0.5 * grads[k], rtol=1e-15)
    Adam(list(params.values()), list(grads.values()), lr=1e-3).step()
    assert np.all(np.abs(params["W"] - (before["W"] - 0.5 * grads["W"])) <= 1e-3 + 1e-12)  # |Adam's 1st step| ≤ lr


@pytest.mark.parametrize("opt_class", [Adam, SGD])
def test_optimizer_state_round_trips_through_a_checkpoint(opt_class, tmp_path):
    a, b = Quadratic(seed=5), Quadratic(seed=5)
    opt_a, opt_b = opt_class(a, lr=0.05), opt_class(b, lr=0.05)
    run(opt_a, a, 5)
    save_arrays(tmp_path / "opt.npz", opt_a.state_dict())
    b.theta[...] = a.theta
    opt_b.load_state_dict(load_arrays(tmp_path / "opt.npz"))
    assert opt_b.t == opt_a.t == 5
    np.testing.assert_array_equal(run(opt_b, b, 4), run(opt_a, a, 4))  # the same continuation


def test_loading_optimizer_state_of_another_shape_is_refused():
    opt = Adam(Quadratic(size=7), lr=0.1)
    state = Adam(Quadratic(size=5), lr=0.1).state_dict()
    with pytest.raises(CheckpointError, match="optimizer state 'm_sum.0' missing or of the wrong shape"):
        opt.load_state_dict(state)


@pytest.mark.parametrize("opt_class", [Adam, SGD])
def test_a_step_updates_in_place_and_keeps_float32(opt_class):
    model = VAE(input_dim=6, hidden=(4,), latent=2, dtype="float32")
    theta, views = model.theta, dict(model.params)
    opt = opt_class(model, lr=1e-2)
    model.forward(np.random.default_rng(0).uniform(0, 1, (3, 6)).astype(np.float32))
    model.backward()
    before = theta.copy()
    opt.step()
    assert model.theta is theta and theta.dtype == np.float32  # the very buffer, same dtype
    assert all(model.params[k] is v for k, v in views.items())
    assert all(buf.dtype == np.float32 for bufs in opt.state.values() for buf in bufs)
    assert np.any(theta != before)


@pytest.mark.parametrize("make, message", [
    (lambda m: Adam(m, lr=0.0), "lr must be positive, got 0.0"),
    (lambda m: SGD(m, lr=-1.0), "lr must be positive, got -1.0"),
    (lambda m: SGD(m, momentum=1.0), r"momentum must lie in \[0, 1\), got 1.0"),
    (lambda m: Adam(m, betas=(0.9, 1.0)), r"betas must lie in \[0, 1\), got \(0.9, 1.0\)"),
    (lambda m: Adam(m, eps=0.0), "eps must be positive, got 0.0"),
])
def test_optimizers_refuse_bad_hyperparameters_naming_them(make, message):
    with pytest.raises(ValueError, match=message):
        make(Quadratic())


def test_optimizers_refuse_params_and_grads_that_do_not_pair_up():
    with pytest.raises(ValueError, match="params and grads must pair up one to one with equal shapes"):
        Adam([np.zeros(3)], [np.zeros(4)])
    with pytest.raises(TypeError, match=r"pass a model \(with .theta and .grad\) or both params and grads"):
        SGD([np.zeros(3)])


@pytest.mark.parametrize("opt_class", [Adam, SGD])
def test_optimizers_run_on_device_arrays_and_agree_with_numpy(opt_class, device_xp):
    host, dev = Quadratic(seed=6), Quadratic(seed=6)
    dev.theta, dev.grad = backend.to_device(dev.theta, device_xp), backend.to_device(dev.grad, device_xp)
    dev.a, dev.c = backend.to_device(dev.a, device_xp), backend.to_device(dev.c, device_xp)
    dev.backward = lambda: dev.grad.__setitem__(Ellipsis, dev.a * (dev.theta - dev.c))
    run(opt_class(host, lr=0.05), host, 6)
    opt = opt_class(dev, lr=0.05)
    run(opt, dev, 6)
    assert all(backend.get_xp(buf) is device_xp for bufs in opt.state.values() for buf in bufs)
    np.testing.assert_allclose(backend.to_numpy(dev.theta), host.theta, rtol=1e-12, atol=1e-14)


def test_adam_split_across_threads_is_bit_identical_to_one_thread(monkeypatch):
    from tinyvae import backend
    from tinyvae.models.vae import VAE

    thetas = []
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("TINYVAE_THREADS", threads)
        model = VAE(hidden=(300,), latent=8, seed=3)  # 784·300 weights: large enough to be split
        opt = Adam(model, lr=1e-2)
        assert len(opt._pieces) == int(threads)
        rng = np.random.default_rng(0)
        for _ in range(3):
            model.grad[...] = rng.standard_normal(model.grad.shape).astype(np.float32)
            opt.step()
        thetas.append(model.theta.copy())
    assert backend.host_threads(np) == 3
    np.testing.assert_array_equal(thetas[0], thetas[1])
    np.testing.assert_array_equal(thetas[0], thetas[2])


def test_thread_count_setting_is_validated(monkeypatch):
    from tinyvae import backend

    monkeypatch.setenv("TINYVAE_THREADS", "zero")
    with pytest.raises(ValueError, match="TINYVAE_THREADS must be a positive integer, got 'zero'"):
        backend.host_threads(np)


def test_adam_keeps_discounted_sums_of_the_gradients_and_their_squares():
    model = Quadratic(seed=8)
    opt = Adam(model, lr=0.01, betas=(0.8, 0.9))
    m_sum, v_sum = np.zeros_like(model.theta), np.zeros_like(model.theta)
    for _ in range(5):
        g = model.backward().copy()
        m_sum, v_sum = 0.8 * m_sum + g, 0.9 * v_sum + g * g
        opt.step()
    state = opt.state_dict()
    np.testing.assert_allclose(state["m_sum.0"], m_sum, rtol=1e-14)
    np.testing.assert_allclose(state["v_sum.0"], v_sum, rtol=1e-14)


def test_adam_resumes_from_state_saved_as_plain_moments():
    """A state with PyTorch's m and v (keys m.0, v.0) continues exactly like textbook Adam."""
    model = Quadratic(seed=9)
    grads_of = lambda th: model.a * (th - model.c)  # noqa: E731
    start = model.theta.copy()
    b1, b2, lr = 0.9, 0.999, 0.02
    theta, m, v = start.copy(), np.zeros_like(start), np.zeros_like(start)
    for t in range(1, 4):
        g = grads_of(theta)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        theta = theta - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + 1e-8)
    model.theta[...] = theta
    opt = Adam(model, lr=lr)
    opt.load_state_dict({"t": np.array(3), "m.0": m, "v.0": v})
    got = run(opt, model, 4)
    expected = textbook_adam(start, grads_of, 7, lr)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
