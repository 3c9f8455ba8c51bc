"""The classifier q(y|x) of the semi-supervised model M2, and the labels it reads.

Kingma, Rezende, Mohamed & Welling, *Semi-supervised learning with deep generative models*
(NeurIPS 2014), sec. 3.1.2: q(y|x) = Cat(y | π(x)), π an MLP ending in a softmax over the C classes.

* ``Classifier``: an MLP giving logits a (N, C) (``forward``); ``log_prob`` gives log q(y|x) =
  a − logsumexp(a) (N, C) [eq:m2-log-softmax]; ``backward(dlogits)`` carries ∂loss/∂a into the network.
* ``check_labels``: labels are integers 0..C−1, one per example; −1 marks an unlabelled example
  where ``allow_unlabelled`` says so. A clear error names what was given and what was expected.
The one-hot rows that q(z|x, y) and p(x|y, z) read beside x and z are the conditional VAE's
(``conditions.one_hot``), fed in by concatenation as there [eq:cvae-concat].

Shapes: N batch, D input, C classes (derivations/semi-supervised.md).
"""

from __future__ import annotations

import numpy as np

from ...backend import get_xp
from .conditions import LabelError

UNLABELLED = -1  # the label of an example whose class is not given


def log_softmax(logits):
    """log softmax over the last axis, without overflow: a − max − log Σ exp(a − max)."""
    xp = get_xp(logits)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))  # [eq:m2-log-softmax]


class Classifier:
    """q(y|x) = softmax(net(x)) over C classes: forward(x) -> logits (N, C), backward(dlogits)."""

    def __init__(self, net, classes):
        self.net, self.classes = net, int(classes)

    def forward(self, x):
        """The logits a (N, C) of the inputs (N, D); q(y|x) = softmax(a)."""
        return self.net.forward(x)  # (N, C)

    def log_prob(self, x):
        """log q(y|x) (N, C) of the inputs (N, D)."""
        return log_softmax(self.forward(x))  # [eq:m2-log-softmax]

    def backward(self, dlogits):
        """∂loss/∂logits (N, C) through the network; writes its gradients."""
        return self.net.backward(dlogits)


def check_labels(labels, n, classes, *, allow_unlabelled=False, name="y"):
    """``labels`` as an int64 array of n labels in 0..C−1 (−1 too with ``allow_unlabelled``), or a LabelError
    naming what was wrong, what was given and what was expected."""
    xp = get_xp(labels) if hasattr(labels, "shape") else np
    arr = labels if hasattr(labels, "shape") else np.asarray(labels)
    low = UNLABELLED if allow_unlabelled else 0
    want = f"integers {low} to {classes - 1}" + (" (−1: unlabelled)" if allow_unlabelled else "")
    if arr.ndim != 1 or arr.shape[0] != n:
        raise LabelError(f"{name}: expected one label per example, shape ({n},), got shape {tuple(arr.shape)}")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind != "f" or not bool(xp.all(arr == xp.round(arr))):
            raise LabelError(f"{name}: expected {want}, got an array of dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = (arr < low) | (arr >= classes)
    if bool(bad.any()):
        first = int(xp.argmax(bad))
        raise LabelError(f"{name}: expected {want} (one of {classes} classes), got {int(arr[first])} at "
                         f"position {first}" + (f" and {int(bad.sum()) - 1} more out of range" if bad.sum() > 1 else ""))
    return arr
