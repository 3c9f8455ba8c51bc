"""The recipe of every bundled checkpoint: the `tinyvae train` flags that make it, seed included.

Each entry is NAME: {"flags": the training config's fields as given on the command line, "what": one line
on the model}. ``python -m tinyvae.pretrained NAME`` trains it with exactly these fields (and no others:
the rest are TrainConfig's defaults) and writes ``NAME.npz`` beside this file; ``tinyvae.pretrained.command``
prints the equivalent ``tinyvae train`` command. Keep each model small: all files together a few MB.
"""

RECIPES = {
    # notebook 02: an autoencoder and a VAE with the same networks, at Z = 16 and at Z = 2
    "ae-z16": {"flags": dict(model="ae", hidden=(128,), latent=16, epochs=3, limit_train=10_000, limit_test=1_000,
                             lr=2e-3, seed=0),
               "what": "autoencoder 784-128-16, 3 epochs on 10,000 grey-level digits"},
    "vae-z16": {"flags": dict(model="vae", hidden=(128,), latent=16, epochs=3, limit_train=10_000, limit_test=1_000,
                              lr=2e-3, seed=0),
                "what": "VAE 784-128-16, 3 epochs on 10,000 grey-level digits"},
    "ae-z2": {"flags": dict(model="ae", hidden=(128,), latent=2, epochs=3, limit_train=10_000, limit_test=1_000,
                            lr=2e-3, seed=0),
              "what": "autoencoder 784-128-2, 3 epochs on 10,000 grey-level digits"},
    "vae-z2": {"flags": dict(model="vae", hidden=(128,), latent=2, epochs=3, limit_train=10_000, limit_test=1_000,
                             lr=2e-3, seed=0),
               "what": "VAE 784-128-2, 3 epochs on 10,000 grey-level digits"},
    # notebook 06: a Z = 2 and a Z = 16 VAE trained the same way, on binarized digits (its section 6
    # scores log p(x) of binary digits, where the Bernoulli decoder is a true likelihood)
    "vae-z2-binary": {"flags": dict(model="vae", hidden=(128,), latent=2, binarize="dynamic", epochs=5,
                                    limit_train=20_000, limit_test=1_000, lr=2e-3, seed=0),
                      "what": "VAE 784-128-2, 5 epochs on 20,000 dynamically binarized digits"},
    "vae-z16-binary": {"flags": dict(model="vae", hidden=(128,), latent=16, binarize="dynamic", epochs=5,
                                     limit_train=20_000, limit_test=1_000, lr=2e-3, seed=0),
                       "what": "VAE 784-128-16, 5 epochs on 20,000 dynamically binarized digits"},
    # notebook 12: vae-z2-binary's recipe with 8 planar flow steps after the encoder (bundled because the
    # browser edition cannot train it within its time)
    "flow-z2-binary": {"flags": dict(model="vae", hidden=(128,), latent=2, binarize="dynamic", epochs=5,
                                     limit_train=20_000, limit_test=1_000, lr=2e-3, seed=0, flow="planar",
                                     flow_steps=8),
                       "what": "VAE 784-128-2 with 8 planar flow steps, 5 epochs on 20,000 dynamically binarized digits"},
    # notebook 08: the Keras example's convolutional VAE, trained as vae-z2 above (its dense neighbour there)
    "conv-z2": {"flags": dict(model="vae", arch="conv", latent=2, epochs=3, limit_train=10_000, limit_test=1_000,
                              lr=2e-3, seed=0),
                "what": "convolutional VAE (Keras example's layers) with Z = 2, 3 epochs on 10,000 grey-level digits"},
}
