"""The sizes of a VAE with two stochastic layers, as a config sees them: what is allowed, how many
parameters, how it is described. The model itself is in ``models/two_layer.py``.

Burda, Grosse & Salakhutdinov, *Importance Weighted Autoencoders* (ICLR 2016), sec. 5 and their
code (yburda/iwae, ``experiments.py``: latent units [100, 50], hidden units of q [[200, 200],
[100, 100]] and of p [[100, 100], [200, 200]]):

    q(z₁|x):  x  -> hidden (200, 200)   -> (μ₁, log σ₁²)  z₁: latent units (100)
    q(z₂|z₁): z₁ -> hidden2 (100, 100)  -> (μ₂, log σ₂²)  z₂: latent2 units (50)
    p(z₁|z₂): z₂ -> hidden2 reversed    -> (m, log s²)
    p(x|z₁):  z₁ -> hidden reversed     -> Bernoulli logits

This module imports nothing of the model, so that ``models.config.ModelConfig`` and
``run.config.TrainConfig`` can ask it about their fields.
"""

from __future__ import annotations

STOCHASTIC_LAYERS = (1, 2)
HIDDEN2 = (100, 100)  # the default widths between z1 and z2 (the paper's)
FIELDS = ("stochastic_layers", "latent2", "hidden2")


def stored_fields(config, d):
    """``d`` (a config's dict) as it is stored: a one-layer config with the hierarchy's fields at their
    defaults leaves them out, so that its config.json and checkpoints read exactly as those of a
    version without two stochastic layers; any other config stores all three (hidden2 as a list)."""
    if config.stochastic_layers == 1 and not config.latent2 and tuple(config.hidden2) == HIDDEN2:
        return {k: v for k, v in d.items() if k not in FIELDS}
    return {**d, "hidden2": list(config.hidden2)}


def hierarchy_problems(config):
    """What is wrong with a config's stochastic layers (``stochastic_layers``, ``latent2``, ``hidden2``),
    one sentence each ([] when nothing is). Works on a ModelConfig and on a TrainConfig."""
    layers, latent2 = config.stochastic_layers, config.latent2
    if layers not in STOCHASTIC_LAYERS:
        return [f"stochastic_layers {layers!r} is not supported: tinyvae builds one stochastic layer (z) or two "
                f"(z1 and z2, the hierarchy of Burda et al. 2015); use 1 or 2"]
    if layers == 1:
        if latent2:
            return [f"--latent {config.latent} {latent2} gives two sizes but one stochastic layer "
                    f"takes one; give one size (--latent {config.latent}), or ask for two layers "
                    f"(--stochastic-layers 2)"]
        return []
    problems = []
    if latent2 < 1:
        problems.append(one_latent_size(config.latent))
    if not config.hidden or not config.hidden2 or min(config.hidden2) < 1:
        problems.append(f"two stochastic layers need hidden widths between x and z1 (hidden, got "
                        f"{list(config.hidden)}) and between z1 and z2 (hidden2, got {list(config.hidden2)})")
    wanted = {"model": "vae", "arch": "mlp", "likelihood": "bernoulli", "obs_var_mode": "fixed"}
    for name, value in wanted.items():
        if getattr(config, name) != value:
            problems.append(f"two stochastic layers are built for {name} {value!r} (the IWAE paper's model), got "
                            f"{getattr(config, name)!r}")
    if config.free_bits or config.beta != 1:
        problems.append(f"two stochastic layers train on the ELBO or the IWAE bound with every term sampled: no KL "
                        f"weight and no free bits (beta 1, free_bits 0), got beta {config.beta:g}, free_bits "
                        f"{config.free_bits:g}")
    return problems


def one_latent_size(latent, default=False):
    """The sentence for two stochastic layers given one latent size, ``latent``; ``default``: nobody typed it,
    it is the default of --latent."""
    given = f"the default --latent {latent}" if default else f"--latent {latent}"
    return (f"two stochastic layers need two latent sizes, --latent Z1 Z2 for z1 and z2 (the preset iwae-paper "
            f"uses 100 50); got one, {given}")


def network_sizes(config):
    """The widths of the four networks: {name: [input, *hidden, output units]} (a Gaussian network's output
    is its number of units; its last layer has twice as many, μ and log σ)."""
    d, z1, z2 = config.input_dim, config.latent, config.latent2
    hidden, hidden2 = list(config.hidden), list(config.hidden2)
    return {"q_z1": [d, *hidden, z1], "q_z2": [z1, *hidden2, z2],
            "p_z1": [z2, *reversed(hidden2), z1], "p_x": [z1, *reversed(hidden), d]}


def parameter_count(config):
    """Weights and biases of the four networks, from the sizes alone."""
    count = 0
    for name, sizes in network_sizes(config).items():
        widths = sizes if name == "p_x" else [*sizes[:-1], 2 * sizes[-1]]  # Gaussian: μ and log σ per unit
        count += sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
    return count


def describe(config):
    """E.g. 'vae 784-200-200-[z1 100]-100-100-[z2 50] tanh bernoulli (two stochastic layers)'."""
    sizes = "-".join(map(str, (config.input_dim, *config.hidden, f"[z1 {config.latent}]", *config.hidden2,
                               f"[z2 {config.latent2}]")))
    return f"{config.model} {sizes} {config.activation} {config.likelihood} (two stochastic layers)"
