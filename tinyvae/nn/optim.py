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

from ..backend import get_xp, host_threads, run_split, to_device, to_numpy
from ..checkpoint import CheckpointError


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
    """Adam (Kingma & Ba 2015), the same update as ``torch.optim.Adam`` with default arguments:
    θ ← θ − lr · m̂ / (sqrt(v̂) + eps), m̂ = m / (1 − β1^t), v̂ = v / (1 − β2^t).

    It keeps the discounted sums m̃ = m / (1 − β1) and ṽ = v / (1 − β2) rather than m and v, and
    folds both bias corrections and those factors into one step size and one eps per step
    (derivations/optimizers.md, [eq:adam-sums-update]): ten passes over the parameters per step
    instead of twelve, for the same update to round-off.
    """

    state_names = ("m_sum", "v_sum")

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
        buffers = (self.params, self.grads, self.state["m_sum"], self.state["v_sum"], self._work)
        self._pieces = split_pieces(buffers, host_threads(get_xp(self.params[0])))

    def step(self):
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        bias1 = 1.0 - b1 ** self.t  # [eq:adam-bias-correction]
        bias2 = 1.0 - b2 ** self.t
        # The bias corrections folded into the step size and eps as in [eq:adam-folded], together
        # with the factors that turn the sums back into moments  [eq:adam-sums-update]
        c = math.sqrt(bias2 / (1.0 - b2))
        a_t = self.lr * (1.0 - b1) / bias1 * c
        eps_t = self.eps * c
        run_split(self._update, [(piece, a_t, eps_t) for piece in self._pieces])

    def _update(self, piece, a_t, eps_t):
        b1, b2 = self.beta1, self.beta2
        for theta, g, m_sum, v_sum, tmp in piece:
            xp = get_xp(theta)
            # m̃ ← β1·m̃ + g: the first moment of [eq:adam-moments] divided by 1 − β1  [eq:adam-sums]
            m_sum *= b1
            m_sum += g
            # ṽ ← β2·ṽ + g²
            xp.multiply(g, g, out=tmp)
            v_sum *= b2
            v_sum += tmp
            # θ ← θ − a_t · m̃ / (sqrt(ṽ) + eps_t), the update of [eq:adam-update]  [eq:adam-sums-update]
            xp.sqrt(v_sum, out=tmp)
            tmp += eps_t
            xp.divide(m_sum, tmp, out=tmp)
            tmp *= a_t
            theta -= tmp

    def load_state_dict(self, arrays):
        """Also reads the plain moments m, v (keys ``m.i``, ``v.i``) that PyTorch's convention keeps."""
        if "m.0" in arrays and "m_sum.0" not in arrays:
            arrays = dict(arrays)
            for i in range(len(self.params)):
                for plain, scale in (("m", 1.0 - self.beta1), ("v", 1.0 - self.beta2)):
                    if f"{plain}.{i}" in arrays:
                        arrays[f"{plain}_sum.{i}"] = arrays.pop(f"{plain}.{i}") / scale
        super().load_state_dict(arrays)


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
