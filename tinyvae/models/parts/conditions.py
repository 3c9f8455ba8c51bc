"""The condition of a conditional model: what it is given beside x, the vector c it becomes, and which
pixels the likelihood then scores (derivations/conditional.md).

* ``LabelCondition``: c = one-hot(y) (N, C) over C classes; every pixel is scored.
* ``QuadrantCondition``: Sohn, Lee & Yan (2015), their MNIST experiment: c = [x ⊙ m | m] (N, 2D), the seen pixels and the
  mask m (1 where a pixel is seen), and only the unseen pixels, 1 − m, are scored
  (``ScoredBernoulli``) [eq:cvae-unseen-nll].

A model feeds c in by concatenation: its encoder reads [x | c] and its decoder [z | c] [eq:cvae-concat].
For a one-hot row c = e_y that is already a learned embedding: the first dense layer's
[x | c] W + b = x W_x + c W_c + b, and e_y W_c is row y of W_c, a vector learned for each class and added
to the layer's pre-activation. A separate embedding E (C rows of width k) before it would give e_y E W_c',
and E W_c' has rank at most min(C, k): with k >= C it holds exactly the vectors W_c can, with k < C it
confines the C class vectors to a k-dimensional subspace; it adds nothing
(derivations/conditional.md#concatenation-is-an-embedding).

Shapes: N batch, D pixels, C condition width.
"""

from __future__ import annotations

import numpy as np

from ...backend import get_xp
from ...checks import ShapeError
from ...errors import InputError
from ...nn import sigmoid


class LabelError(InputError):
    """Labels that are not one class index per example, each in 0 .. C − 1."""


def check_labels(labels, n, classes, validate=True, call="forward(x, eps, labels=y)"):
    """``labels`` as an integer array (N,), or a LabelError naming what was given and what was expected.

    ``validate=False`` skips the range check, which reads the labels' extremes back from their device: the
    training loop has checked every label of the run once, before its first step. ``call`` is how the caller's
    own function takes them, for the message; ``n`` < 0 takes any number of labels.
    """
    if labels is None:
        count = f"{n} integers" if n >= 0 else "integers"
        raise LabelError(f"labels: this model conditions on each example's class: expected labels, {count} "
                         f"in 0..{classes - 1} ({call}), got None")
    labels = labels if hasattr(labels, "ndim") else np.asarray(labels)  # a list or tuple stays on the host
    if labels.ndim != 1 or (n >= 0 and labels.shape[0] != n):
        raise LabelError(f"labels: expected one class per example, shape ({n if n >= 0 else 'R'},), got shape "
                         f"{tuple(labels.shape)}")
    if labels.dtype.kind not in "iu":
        raise LabelError(f"labels: expected integer class indices 0..{classes - 1}, got dtype {labels.dtype}")
    if validate and n and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        bad = int(labels.min()) if int(labels.min()) < 0 else int(labels.max())
        raise LabelError(f"labels: expected classes 0..{classes - 1} ({classes} classes), got {bad}")
    return labels


def one_hot(labels, classes, dtype, xp):
    """(N, C) rows with a 1 in column y_n."""
    out = xp.zeros((labels.shape[0], classes), dtype=dtype)  # (N, C)
    out[xp.arange(labels.shape[0]), xp.asarray(labels, dtype=xp.int64)] = 1
    return out


def quadrant_mask(quadrants, image_shape, dtype=np.float64):
    """m (D,): 1 at the pixels seen, 0 elsewhere. 1: the bottom-left quadrant; 2: the left half; 3: all but the
    bottom-right quadrant (Pyro's CVAE example's layout). Rows and columns split at rows // 2, cols // 2."""
    if quadrants not in (1, 2, 3):
        raise ValueError(f"quadrants: expected 1, 2 or 3 quadrants seen, got {quadrants!r}")
    rows, cols = image_shape
    m = np.zeros((rows, cols), dtype=dtype)
    m[rows // 2:, :cols // 2] = 1  # bottom left
    if quadrants >= 2:
        m[:, :cols // 2] = 1  # the left half
    if quadrants == 3:
        m[:rows // 2, :] = 1  # and the top half
    return m.reshape(-1)  # (D,)


class LabelCondition:
    """c = one-hot(y); the likelihood scores every pixel."""

    def __init__(self, classes):
        self.classes = classes
        self.width = classes  # C

    def make(self, x, likelihood, labels=None, mask=None, validate=True):
        """(c (N, C), the likelihood part that scores the batch)."""
        if mask is not None:
            raise InputError("mask: the label condition scores every pixel and takes no mask; pass labels=")
        labels = check_labels(labels, x.shape[0], self.classes, validate)
        return one_hot(labels, self.classes, x.dtype, get_xp(x)), likelihood


class QuadrantCondition:
    """c = [x ⊙ m | m] with m the seen pixels (the config's quadrants, or a mask given per call); the
    likelihood scores the unseen pixels 1 − m."""

    def __init__(self, quadrants, image_shape, dtype):
        self.mask = quadrant_mask(quadrants, image_shape, dtype)  # (D,) on the host
        self.width = 2 * self.mask.size  # C = 2D
        self._on_device = (np, self.mask)  # (namespace, the mask there): copied to a device once, not every step

    def device_mask(self, xp):
        """The config's mask (D,) in the namespace ``xp``."""
        if self._on_device[0] is not xp:
            self._on_device = (xp, xp.asarray(self.mask))
        return self._on_device[1]

    def check_mask(self, mask, n, xp=np):
        """The mask to use, (D,) or (N, D), with every entry 0 or 1; a ShapeError names a wrong shape."""
        d = self.mask.size
        if mask is None:
            return self.device_mask(xp)
        mask = mask if hasattr(mask, "ndim") else np.asarray(mask, dtype=self.mask.dtype)  # a list stays on the host
        if mask.ndim not in (1, 2) or mask.shape[-1] != d or (mask.ndim == 2 and mask.shape[0] != n):
            raise ShapeError(f"mask: expected the seen pixels as shape ({d},) or ({n}, {d}) (1 seen, 0 unseen), "
                             f"got shape {tuple(mask.shape)}")
        xp = get_xp(mask)
        other = (mask != 0) & (mask != 1)
        if bool(xp.any(other)):
            raise InputError(f"mask: expected 1 at the seen pixels and 0 at the unseen, got {int(other.sum())} other "
                             f"values, the first {float(mask[other][0]):g}")
        return mask

    def make(self, x, likelihood=None, labels=None, mask=None, validate=True):
        if labels is not None:
            raise InputError("labels: the quadrant condition reads the seen pixels, not a label; drop labels=")
        xp = get_xp(x)
        m = self.check_mask(mask, x.shape[0], xp)  # (D,) or (N, D)
        m = m if m.dtype == x.dtype else m.astype(x.dtype)
        m_rows = xp.broadcast_to(m, x.shape)  # (N, D)
        c = xp.concatenate([x * m_rows, m_rows], axis=1)  # (N, 2D)  [eq:cvae-quadrant-condition]
        return c, ScoredBernoulli(1 - m)


class ScoredBernoulli:
    """The Bernoulli of the scored pixels only: −log p(x_u | z, c) = Σ_d s_d BCE(l_d, x_d), s = 1 − m
    [eq:cvae-unseen-nll]. Same methods as a likelihood part (``likelihoods.py``)."""

    name = "bernoulli"
    params_part = None

    def __init__(self, scored):
        self.scored = scored  # (D,) or (N, D): 1 where a pixel is scored

    def _bce(self, out, x):
        """s ⊙ [max(l, 0) − x l + log(1 + exp(−|l|))], per pixel  [eq:bce-stable]."""
        xp = get_xp(out)
        return self.scored * (xp.maximum(out, 0) - x * out + xp.log1p(xp.exp(-xp.abs(out))))

    def nll(self, out, x, validate=True, fit=True):
        """(−(1/N) Σ_n log p(x_u,n | z_n, c_n), its gradient s ⊙ (σ(l) − x) / N)  [eq:cvae-unseen-nll-grad]."""
        n = out.shape[0]
        loss = self._bce(out, x).sum() / n
        return loss, self.scored * (sigmoid(out) - x) / n

    def log_prob(self, out, x):
        """log p(x_u | z, c) per example, summed over the last axis."""
        return -self._bce(out, x).sum(axis=-1)

    def mean(self, out):
        return sigmoid(out)

    def stats(self):
        return {}

    def backward(self):
        """No parameters of its own."""
