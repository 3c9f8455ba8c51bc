"""The layer contract every tinyvae layer follows, and the base class that enforces its guard.

* ``forward(x)`` computes the output and keeps exactly what the backward needs (its cache);
* ``backward(dy)`` takes dL/d(output) and returns dL/d(input), writing the parameter gradients
  into ``grads`` (same keys and shapes as ``params``) in place;
* calling ``backward`` before ``forward`` raises ``RuntimeError``.
"""

from __future__ import annotations


class Layer:
    """Base class: parameter and gradient dictionaries and the before-forward guard."""

    def __init__(self):
        self.params = {}
        self.grads = {}
        self._cache = None

    def _cached(self):
        if self._cache is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward called before forward: run forward(x) first, "
                f"the backward pass needs what the forward keeps"
            )
        return self._cache

    def __call__(self, x):
        return self.forward(x)

    def __repr__(self):
        return f"{type(self).__name__}()"
