"""SGD with momentum and Adam, by hand, updating parameters in place.

An optimizer takes a model (whose parameters and gradients each live in one contiguous buffer,
``model.theta`` and ``model.grad``) or explicit lists of parameter and gradient arrays. With the
single buffer, one step over all of a model's parameters is a handful of vectorized operations.
Every operation writes into an existing buffer (``out=``, ``+=``): a step allocates nothing and
float32 stays float32. The math is in derivations/optimizers.md.
"""

from __future__ import annotations

import math

import numpy as np

from .backend import get_xp, host_threads, run_split, to_device, to_numpy
from .checkpoint import CheckpointError


def _arrays(params, grads):
    if grads is None:
        if not (hasattr(params, "theta") and hasattr(params, "grad")):
            raise TypeError("pass a model (with .theta and .grad) or both params and grads")
        return [params.theta], [params.grad]
    params = list(params.values()) if isinstance(params, dict) else list(params) if isinstance(params, (list, tuple)) else [params]
    grads = list(grads.values()) if isinstance(grads, dict) else list(grads) if isinstance(grads, (list, tuple)) else [grads]
    if len(params) != len(grads) or any(p.shape != g.shape for p, g in zip(params, grads)):
        raise ValueError("params and grads must pair up one to one with equal shapes")
    return params, grads


class Optimizer:
    """Holds the parameter/gradient pairs and a state buffer per parameter."""

    state_names = ()

    def __init__(self, params, grads=None, lr=1e-3):
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}")
        self.params, self.grads = _arrays(params, grads)
        self.lr = float(lr)
        self.t = 0
        self.state = {name: [get_xp(p).zeros_like(p) for p in self.params] for name in self.state_names}

    def state_dict(self):
        """Host copies of the optimizer state, for checkpoints."""
        out = {"t": np.array(self.t, dtype=np.int64)}
        for name, bufs in self.state.items():
            for i, buf in enumerate(bufs):
                out[f"{name}.{i}"] = to_numpy(buf)
        return out

    def load_state_dict(self, arrays):
        for name, bufs in self.state.items():
            for i, buf in enumerate(bufs):
                key = f"{name}.{i}"
                if key not in arrays or arrays[key].shape != buf.shape:
                    raise CheckpointError(f"optimizer state {key!r} missing or of the wrong shape")
                buf[...] = to_device(arrays[key], get_xp(buf))
        self.t = int(arrays["t"])


class SGD(Optimizer):
    """θ ← θ − lr·v with v ← momentum·v + g (momentum 0 gives plain SGD)."""

    state_names = ("velocity",)

    def __init__(self, params, grads=None, lr=1e-2, momentum=0.9):
        super().__init__(params, grads, lr)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        self.momentum = float(momentum)

    def step(self):
        self.t += 1
        for theta, g, v in zip(self.params, self.grads, self.state["velocity"]):
            v *= self.momentum  # [eq:sgd-momentum]
            v += g
            theta -= self.lr * v


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction folded into the step size.

    Same update as PyTorch's ``torch.optim.Adam`` with default arguments:
    θ ← θ − lr · m̂ / (sqrt(v̂) + eps), m̂ = m / (1 − β1^t), v̂ = v / (1 − β2^t).
    """

    state_names = ("m", "v")

    def __init__(self, params, grads=None, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, grads, lr)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.beta1, self.beta2, self.eps = float(b1), float(b2), float(eps)
        self._work = [get_xp(p).empty_like(p) for p in self.params]  # scratch, reused every step
        # Each host thread updates one contiguous piece of every buffer: views, so the state stays
        # whole. Two threads halve the update's time on a 2-core CPU (see backend.run_split).
        buffers = (self.params, self.grads, self.state["m"], self.state["v"], self._work)
        self._pieces = split_pieces(buffers, host_threads(get_xp(self.params[0])))

    def step(self):
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        bias1 = 1.0 - b1 ** self.t  # [eq:adam-bias-correction]
        bias2 = 1.0 - b2 ** self.t
        # Bias corrections folded into the step size and eps: one pass fewer per step  [eq:adam-folded]
        lr_t = self.lr * math.sqrt(bias2) / bias1
        eps_t = self.eps * math.sqrt(bias2)
        run_split(self._update, [(piece, lr_t, eps_t) for piece in self._pieces])

    def _update(self, piece, lr_t, eps_t):
        b1, b2 = self.beta1, self.beta2
        for theta, g, m, v, tmp in piece:
            xp = get_xp(theta)
            # m ← β1·m + (1 − β1)·g, written as m += (1 − β1)·(g − m)  [eq:adam-moments]
            xp.subtract(g, m, out=tmp)
            tmp *= 1.0 - b1
            m += tmp
            # v ← β2·v + (1 − β2)·g², written as v += (1 − β2)·(g² − v)
            xp.multiply(g, g, out=tmp)
            tmp -= v
            tmp *= 1.0 - b2
            v += tmp
            # θ ← θ − lr_t · m / (sqrt(v) + eps_t)  [eq:adam-update]
            xp.sqrt(v, out=tmp)
            tmp += eps_t
            xp.divide(m, tmp, out=tmp)
            tmp *= lr_t
            theta -= tmp


# A buffer smaller than this goes whole to one thread: handing it off costs more than it saves.
MIN_SPLIT = 1 << 16


def split_pieces(buffers, threads):
    """Cut every group of same-shaped buffers into ``threads`` contiguous pieces (flat views).

    ``buffers`` is a tuple of lists (params, grads, state, ...) that pair up index by index.
    Returns one list per thread, each of tuples (theta, g, ...) of views.
    """
    pieces = [[] for _ in range(threads)]
    for group in zip(*buffers):
        size = group[0].size
        flat = [b.reshape(-1) for b in group]
        if threads == 1 or size < MIN_SPLIT:
            pieces[0].append(tuple(flat))
            continue
        bounds = [size * i // threads for i in range(threads + 1)]
        for t in range(threads):
            pieces[t].append(tuple(f[bounds[t]:bounds[t + 1]] for f in flat))
    return [p for p in pieces if p]
