"""The networks of a hierarchical VAE's Gaussian layers, and a container that holds several networks.

``GaussianNetwork``: inputs (N, I) -> MLP -> (μ, log σ²), each (N, Z). Burda et al.'s code
(yburda/iwae, ``iwae.py``, ``GaussianSampler``) ends each Gaussian layer with two linear heads, the
mean and σ = exp(a). Here one dense layer of width 2Z gives [μ | a], and tinyvae's convention
log σ² is 2a [eq:hvae-log-sigma]: the same family and the same parameterization of σ, written the
tinyvae way. Its backward takes (dL/dμ, dL/dlog σ²) and returns dL/d(inputs)
(None when built with ``first_needs_dx=False``: nothing upstream of the data learns).

``Networks``: named networks seen as one list of layers with ``params``/``grads`` named
``"<network>.<index>.<key>"``, which is what ``models.base.Model``'s single parameter buffer binds to.
It holds parameters; it does not run the networks (each is run by name).
"""

from __future__ import annotations

from ...backend import get_xp
from ...nn import mlp


class GaussianNetwork:
    """A diagonal Gaussian over Z units whose (μ, log σ²) an MLP computes from its inputs."""

    def __init__(self, sizes, activation, *, rng, init, dtype, first_needs_dx=True):
        *trunk, self.units = [int(s) for s in sizes]
        self.net = mlp([*trunk, 2 * self.units], activation, rng=rng, init=init, dtype=dtype,
                       first_needs_dx=first_needs_dx)

    @property
    def layers(self):
        return self.net.layers

    @property
    def params(self):
        return self.net.params

    @property
    def grads(self):
        return self.net.grads

    def _refresh(self):
        self.net._refresh()

    def forward(self, inputs):
        """(μ, log σ²), each (N, Z), of the inputs (N, I)."""
        h = self.net.forward(inputs)  # (N, 2Z)
        return h[:, :self.units], 2.0 * h[:, self.units:]  # μ, log σ² = 2a (σ = exp(a))  [eq:hvae-log-sigma]

    def backward(self, dmu, dlog_var):
        """dL/d(inputs) (N, I) from dL/dμ and dL/dlog σ² (N, Z) each; writes the network's gradients."""
        xp = get_xp(dmu)
        dh = xp.empty((dmu.shape[0], 2 * self.units), dtype=dmu.dtype)  # (N, 2Z)
        dh[:, :self.units] = dmu
        dh[:, self.units:] = 2.0 * dlog_var  # d log σ²/da = 2  [eq:hvae-log-sigma]
        return self.net.backward(dh)

    def __repr__(self):
        return f"GaussianNetwork({self.net!r} -> μ, log σ² of {self.units})"


class Networks:
    """Several named networks as one parameter container (``layers``, ``params``, ``grads``)."""

    def __init__(self, **networks):
        self.networks = networks
        self._refresh()

    @property
    def layers(self):
        return [layer for net in self.networks.values() for layer in net.layers]

    def _refresh(self):
        for net in self.networks.values():
            net._refresh()
        self.params = {f"{name}.{k}": v for name, net in self.networks.items() for k, v in net.params.items()}
        self.grads = {f"{name}.{k}": v for name, net in self.networks.items() for k, v in net.grads.items()}

    def forward(self, x):
        raise TypeError(f"Networks({', '.join(self.networks)}) holds parameters; run each network by name")

    def __repr__(self):
        return "Networks(" + ", ".join(f"{k}={v!r}" for k, v in self.networks.items()) + ")"
