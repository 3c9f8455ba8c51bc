"""A normalizing-flow posterior as a config sees it: which flows exist, what goes with what, how many
parameters, how it is described and stored. The flows themselves are in ``parts/flows.py`` (planar)
and ``parts/iaf.py`` (inverse autoregressive); the model that uses them in ``flow_vae.py``.

Config fields (``ModelConfig`` and ``TrainConfig``):

* ``flow``: "none", "planar" (Rezende & Mohamed 2015) or "iaf" (Kingma et al. 2016);
* ``flow_steps``: T ≥ 1, the steps z_0 -> z_1 -> ... -> z_T (0 without a flow);
* ``flow_hidden``: the IAF's width H ≥ Z − 1 of each step's masked hidden layer, which is also the width of
  the context h the encoder gives (0 without an IAF).

Like ``hierarchy.py``, this module imports nothing of the model, so that both configs can ask it.
"""

from __future__ import annotations

FLOWS = ("none", "planar", "iaf")
FIELDS = ("flow", "flow_steps", "flow_hidden")
IAF_HIDDEN = 100  # the width the command line gives an IAF when --flow-hidden is not given


def stored_flow_fields(config, d):
    """``d`` (a config's dict) without the flow's fields when the config has no flow, so that its
    config.json and checkpoints read exactly as those of a version without flows."""
    if config.flow == "none" and not config.flow_steps and not config.flow_hidden:
        return {k: v for k, v in d.items() if k not in FIELDS}
    return d


def flow_problems(config):
    """What is wrong with a config's flow fields, one sentence each ([] when nothing is).
    Works on a ModelConfig and on a TrainConfig."""
    flow, steps, hidden = config.flow, config.flow_steps, config.flow_hidden
    if flow not in FLOWS:
        return [f"flow must be one of {FLOWS}, got {flow!r}"]
    if flow == "none":
        if steps or hidden:
            return [f"flow_steps ({steps}) and flow_hidden ({hidden}) set a flow's size, but flow is 'none': "
                    f"add --flow planar or --flow iaf, or drop them"]
        return []
    problems = []
    if steps < 1:
        problems.append(f"flow {flow!r} needs flow_steps T >= 1 (--flow-steps T: the steps z_0 -> ... -> z_T), got {steps}")
    if flow == "iaf" and hidden < 1:
        problems.append(f"flow 'iaf' needs flow_hidden >= 1 (the width of each step's masked hidden layer "
                        f"and of the encoder's context), got {hidden}")
    if flow == "iaf" and 1 <= hidden < config.latent - 1:
        problems.append(f"flow 'iaf' needs flow_hidden >= latent - 1 = {config.latent - 1} (each step's masked "
                        f"hidden layer gives every degree 1 .. Z-1 a unit; one missing cuts dependencies), "
                        f"got {hidden}")
    if flow == "planar" and hidden:
        problems.append(f"flow_hidden sets the iaf's hidden width; a planar step has none, got flow_hidden {hidden}")
    wanted = {"model": "vae", "arch": "mlp", "stochastic_layers": 1}
    for name, value in wanted.items():
        if getattr(config, name) != value:
            reason = {"model": "a flow transforms the samples of q(z|x), which the autoencoder does not have",
                      "arch": "flows are built on the mlp encoder",
                      "stochastic_layers": "flows are built for one stochastic layer"}[name]
            problems.append(f"flow {flow!r} needs {name} {value!r} ({reason}), got {getattr(config, name)!r}")
    if config.likelihood == "continuous-bernoulli" or config.obs_var_mode != "fixed" or config.free_bits:
        problems.append(f"a flow samples every term of its bound, which tinyvae supports for the bernoulli and "
                        f"fixed-variance gaussian likelihoods without free bits; got likelihood "
                        f"{config.likelihood!r}, obs_var_mode {config.obs_var_mode!r}, free_bits {config.free_bits:g}")
    return problems


def context_width(config):
    """C, the width of the context h the encoder gives beside (μ, log σ²): the IAF's hidden width, else 0."""
    return config.flow_hidden if config.flow == "iaf" else 0


def parameter_count(config):
    """The flow's own parameters (T steps), from the sizes alone; the encoder's context is counted with
    the encoder (``ModelConfig.parameter_count``)."""
    z, h, k = config.latent, config.flow_hidden, config.flow_steps
    if config.flow == "planar":
        return k * (2 * z + 1)  # u, w (Z each) and b
    if config.flow == "iaf":
        return k * (z * h + h * h + h + 2 * (h * z + z))  # masked W1, context V, b1; the m and s heads
    return 0


def row_floats(config):
    """Numbers a flow keeps per decoder row through one training step, for the IWAE memory bound
    (``parts/iwae.py``, ``step_bytes``): counted from what each step caches and its backward's
    temporaries, not measured. Planar: z and four numbers per step, and z's gradient; IAF: z, m, σ(s)
    and their gradients per step, the hidden layer and its gradients, and the context once."""
    z, h, t = config.latent, config.flow_hidden, config.flow_steps
    if config.flow == "planar":
        return t * (2 * z + 6)
    if config.flow == "iaf":
        return t * (6 * z + 3 * h) + h
    return 0


def describe(config):
    """E.g. ' + planar flow, 10 steps' ('' without a flow)."""
    if config.flow == "none":
        return ""
    width = f", hidden {config.flow_hidden}" if config.flow == "iaf" else ""
    return f" + {config.flow} flow, {config.flow_steps} steps{width}"
