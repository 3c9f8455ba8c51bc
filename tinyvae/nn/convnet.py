"""The convolutional encoder and decoder of the Keras example's VAE, built from tinyvae's layers.

The Keras example *Variational AutoEncoder* (F. Chollet, keras.io/examples/generative/vae) on
28×28 MNIST, with ``channels = (32, 64)`` and ``dense = 16``::

    encoder  x (N, 784) -> (N, 1, 28, 28) -> Conv(1→32, 3, s2, p1) ReLU -> (N, 32, 14, 14)
             -> Conv(32→64, 3, s2, p1) ReLU -> (N, 64, 7, 7) -> Flatten (N, 3136)
             -> Dense(16) ReLU -> Dense(2Z): [μ | log σ²]
    decoder  z (N, Z) -> Dense(3136) ReLU -> (N, 64, 7, 7)
             -> ConvT(64→64, 3, s2, p1, output_padding 1) ReLU -> (N, 64, 14, 14)
             -> ConvT(64→32, 3, s2, p1, op 1) ReLU -> (N, 32, 28, 28)
             -> ConvT(32→1, 3, s1, p1) -> (N, 1, 28, 28) -> Flatten: logits (N, 784)

Keras's ``padding="same"`` with stride 2 gives the sizes of padding 1 here (output ⌈H/2⌉), not the same
windows: Keras pads 0 rows before and 1 after, padding 1 pads one on each side, so tinyvae's windows sit
one pixel earlier (derivations/convolution.md). Keras's stride-2 ``Conv2DTranspose`` doubles the size,
which output_padding 1 gives [eq:conv-transpose-output-size].
Other channel lists add or drop stride-2 stages; ``dense = 0`` goes from the flattened features
straight to (μ, log σ²). Images are handed over flat, as for the MLP, so the rest of tinyvae (losses,
training, evaluation, pictures) treats both architectures alike.
"""

from __future__ import annotations

import numpy as np

from .activations import activation
from .conv import Conv2d, ConvTranspose2d
from .dense import Dense
from .reshape import Flatten, Unflatten
from .sequential import Sequential

KERNEL, PADDING = 3, 1  # every convolution: 3×3 with one pixel of zero padding ("same")


def conv_size_problem(image_shape, channels):
    """Why ``image_shape`` cannot go through the architecture (a sentence), or None when it can.

    Each of the len(channels) stride-2 convolutions takes a side H to ⌈H/2⌉ and each stride-2
    transposed convolution doubles it, so the decoder gives back the input size exactly when every
    side is a multiple of 2^len(channels).
    """
    factor = 2 ** len(channels)
    if any(side % factor for side in image_shape):
        rows, cols = image_shape
        return (f"images of {rows}×{cols} pixels do not fit the conv architecture: its {len(channels)} stride-2 "
                f"convolutions halve each side and its decoder doubles it back, so each side must be a multiple "
                f"of {factor} (28×28 MNIST is; so is 32×32), got {rows}×{cols}")
    return None


def feature_shape(image_shape, channels):
    """(C_last, H / 2^L, W / 2^L): the encoder's last feature map and the decoder's first."""
    factor = 2 ** len(channels)
    return (channels[-1], image_shape[0] // factor, image_shape[1] // factor)


def conv_encoder(image_shape, channels, dense, out, activation_name="relu", *, rng, init="he", dtype=np.float32):
    """x (N, H·W) -> ``out`` values per example (2Z for a VAE: μ and log σ²)."""
    layers = [Unflatten((1, *image_shape))]
    c_in = 1
    for i, c_out in enumerate(channels):
        # the first convolution never needs dL/dx: nothing upstream of the data learns
        layers += [Conv2d(c_in, c_out, KERNEL, 2, PADDING, init=init, rng=rng, dtype=dtype, need_dx=i > 0),
                   activation(activation_name)]
        c_in = c_out
    layers.append(Flatten())
    width = int(np.prod(feature_shape(image_shape, channels)))
    if dense:
        layers += [Dense(width, dense, init=init, rng=rng, dtype=dtype), activation(activation_name)]
        width = dense
    layers.append(Dense(width, out, init=_last(init), rng=rng, dtype=dtype))
    return Sequential(layers)


def conv_decoder(image_shape, channels, latent, activation_name="relu", *, rng, init="he", dtype=np.float32):
    """z (N, Z) -> logits or means (N, H·W), mirroring ``conv_encoder``."""
    shape = feature_shape(image_shape, channels)
    layers = [Dense(latent, int(np.prod(shape)), init=init, rng=rng, dtype=dtype), activation(activation_name),
              Unflatten(shape)]
    widths = [channels[-1], *reversed(channels)]  # (64, 64, 32) for channels (32, 64)
    for c_in, c_out in zip(widths[:-1], widths[1:]):
        layers += [ConvTranspose2d(c_in, c_out, KERNEL, 2, PADDING, 1, init=init, rng=rng, dtype=dtype),
                   activation(activation_name)]
    layers += [ConvTranspose2d(channels[0], 1, KERNEL, 1, PADDING, init=_last(init), rng=rng, dtype=dtype), Flatten()]
    return Sequential(layers)


def _last(init):
    """The output layer has no ReLU after it: Glorot where the others use He, as ``mlp`` does."""
    return "glorot" if init == "he" else init
