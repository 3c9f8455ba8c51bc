"""The conditional models as a config sees them: which conditions exist, what is allowed, how wide the
condition vector c is, how many parameters, how the model is described. The models themselves are
in ``models/conditional.py``, the condition parts in ``models/parts/conditions.py``.

* ``cvae`` with condition ``label``: q(z|x, y) and p(x|z, y), y one-hot over ``classes`` (Kingma,
  Rezende, Mohamed & Welling 2014: their M2's generative model with y observed);
* ``cvae`` with condition ``quadrants``: Sohn, Lee & Yan (2015), their MNIST experiment: given ``quadrants`` of
  the four quadrants of each image (1, 2 or 3), q(z|x, c) and p(x_u|z, c) of the unseen pixels x_u,
  c = [observed pixels | mask];
* ``quadrant-regressor``: their deterministic baseline, one network from c to the unseen pixels'
  Bernoulli means.

Which quadrants are seen follows Pyro's CVAE example (``examples/cvae/mnist.py``): 1 = the
bottom-left quadrant, 2 = the left half, 3 = all but the bottom-right quadrant.

This module imports nothing of the models, so that ``ModelConfig`` and ``TrainConfig`` can ask it
about their fields.
"""

from __future__ import annotations

CONDITIONAL_MODELS = ("cvae", "quadrant-regressor")
CONDITIONS = ("label", "quadrants")
QUADRANT_COUNTS = (1, 2, 3)
FIELDS = ("condition", "classes", "quadrants")
DEFAULTS = {"condition": "none", "classes": 10, "quadrants": 0}


def is_conditional(config):
    return config.model in CONDITIONAL_MODELS


def stored_fields(config, d):
    """``d`` (a config's dict) as stored: an unconditional config leaves the three condition fields out, so
    that its config.json and checkpoints read exactly as those of a version without conditional models."""
    if not is_conditional(config) and all(getattr(config, k) == v for k, v in DEFAULTS.items()):
        return {k: v for k, v in d.items() if k not in FIELDS}
    return d


def evaluation_call(config, checkpoint, binarize="none"):
    """The complete Python call that scores a conditional run's test digits, for the messages that point to it:
    with the test labels for the label condition, with the run's own quadrants otherwise."""
    images = "d.test_x" if binarize == "none" else "tinyvae.data.binarize_static(d.test_x, 2014)"
    labels = ", labels=d.test_y" if config.condition == "label" else ""
    k = ", k=100" if config.model == "cvae" else ""  # the regressor's figure is exact: nothing is sampled
    return (f"d = tinyvae.data.load_dataset(); tinyvae.conditional_nll(tinyvae.load_model('{checkpoint}'), "
            f"{images}{labels}{k}).mean()")


def condition_width(config):
    """C, the width of the condition vector c: the classes of a one-hot label, or 2D for the quadrant
    condition's observed pixels and mask."""
    return config.classes if config.condition == "label" else 2 * config.input_dim


def condition_problems(config):
    """What is wrong with a config's condition (``model``, ``condition``, ``classes``, ``quadrants``), one
    sentence each ([] when nothing is). Works on a ModelConfig and on a TrainConfig."""
    model, condition, quadrants = config.model, config.condition, config.quadrants
    if not is_conditional(config):
        given = [f"--{k} {getattr(config, k)}" for k in FIELDS if getattr(config, k) != DEFAULTS[k]]
        if given:
            return [f"{' '.join(given)} sets a condition, which only a conditional model reads: add --model cvae "
                    f"(or --model quadrant-regressor, for --condition quadrants), or drop "
                    f"{'it' if len(given) == 1 else 'them'}; got model {model!r}"]
        return []
    problems = []
    if condition == DEFAULTS["condition"]:
        return [f"model {model!r} needs a condition, and no --condition was given: add --condition label or "
                f"--condition quadrants (with --quadrants 1, 2 or 3)"]
    if condition not in CONDITIONS:
        return [f"model {model!r} needs a condition, one of {CONDITIONS} (--condition), got {condition!r}"]
    if model == "quadrant-regressor" and condition != "quadrants":
        problems.append(f"the quadrant regressor predicts unseen quadrants and reads no label, got --condition "
                        f"{condition}: drop --condition (or pass --condition quadrants) and give --quadrants 1, 2 "
                        f"or 3")
    elif condition == "quadrants" and quadrants == DEFAULTS["quadrants"]:
        problems.append("condition 'quadrants' needs the number of quadrants seen, and no --quadrants was given: "
                        "add --quadrants 1 (bottom left), 2 (left half) or 3 (all but bottom right)")
    elif condition == "quadrants" and quadrants not in QUADRANT_COUNTS:
        problems.append(f"--quadrants: expected 1, 2 or 3 quadrants seen, got {quadrants!r}")
    if condition == "label" and quadrants:
        problems.append(f"--quadrants sets the quadrant condition; condition 'label' has none, got --quadrants "
                        f"{quadrants}")
    if condition == "quadrants" and config.classes != DEFAULTS["classes"]:
        problems.append(f"--classes sets the label condition; condition 'quadrants' reads no label, got classes "
                        f"{config.classes}")
    if condition == "label" and (isinstance(config.classes, bool) or not config.classes >= 2):
        problems.append(f"classes must be an integer >= 2 for a one-hot label, got {config.classes!r}")
    wanted = {"arch": "mlp", "stochastic_layers": 1, "flow": "none"}  # the objective: objective_problems
    for name, value in wanted.items():
        if getattr(config, name, value) != value:
            problems.append(f"the conditional models are built for {name} {value!r}, got {getattr(config, name)!r}")
    likelihood = getattr(config, "likelihood", "bernoulli")
    if (condition == "quadrants" or model == "quadrant-regressor") and likelihood != "bernoulli":
        problems.append(f"the quadrant condition scores the unseen pixels with a Bernoulli (eq:cvae-unseen-nll), "
                        f"got likelihood {likelihood!r}: drop --likelihood (the label condition takes any)")
    shape = tuple(getattr(config, "image_shape", None) or ())
    if condition == "quadrants" and len(shape) == 2 and shape[0] * shape[1] != config.input_dim:
        problems.append(f"the quadrant condition cuts each image into quadrants: image_shape {shape} must have "
                        f"input_dim = {config.input_dim} pixels, got {shape[0] * shape[1]}")
    return problems


def network_sizes(config):
    """{network: [input, *hidden, output]}: the encoder reads [x | c] and gives [μ | log σ²], the decoder reads
    [z | c]; the regressor's one network reads c and gives the pixels' logits."""
    d, z, c, hidden = config.input_dim, config.latent, condition_width(config), list(config.hidden)
    if config.model == "quadrant-regressor":
        return {"decoder": [c, *hidden, d]}
    return {"encoder": [d + c, *hidden, 2 * z], "decoder": [z + c, *reversed(hidden), d]}


def parameter_count(config):
    """Weights and biases of the networks, from the sizes alone."""
    return sum(a * b + b for sizes in network_sizes(config).values() for a, b in zip(sizes[:-1], sizes[1:]))


def describe(config):
    """E.g. 'cvae [x|c] 794-400-20 relu bernoulli, condition label (10 classes)': the true input widths of
    the encoder (x and c) or of the regressor's network (c alone)."""
    what = (f"condition label ({config.classes} classes)" if config.condition == "label"
            else f"condition quadrants ({config.quadrants} seen)")
    sizes = network_sizes(config)
    if config.model == "quadrant-regressor":
        widths = "c " + "-".join(map(str, sizes["decoder"]))
    else:
        widths = "[x|c] " + "-".join(map(str, (*sizes["encoder"][:-1], config.latent)))
    return f"{config.model} {widths} {config.activation} {config.likelihood}, {what}"
