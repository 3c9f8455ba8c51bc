"""The learner's path through tinyvae: three routes, and every page's reading time and prerequisites.

    python docs/reading.py            # check: exit 1, naming the files, if one no longer matches
    python docs/reading.py --write    # rewrite them

The path below (``FIRST_HOUR``, ``CORE``, ``ELECTIVES``) is the one place that orders the material.
From it and from the pages' word counts this script writes:

* ``docs/start-here.md``, the "Start here" page: the three routes, each step with its reading time
  and what to read first;
* below each derivation's title, one line with its reading time and what to read first;
* the reading order of ``derivations/README.md`` (labelled by page title), with its list of pages
  in the same order, and the reading order of ``notebooks/README.md``.

Reading time: the words a reader reads, at a nominal ``WORDS_PER_MINUTE`` = 200 words a minute (an
average pace for prose; working through derivations takes ``WORKING_FACTOR``, two to three times as
long), rounded up to a whole minute. Words are the whitespace-separated tokens of
a derivation page's Markdown (prose, equations and the code of its numeric check alike; its own
reading-time line left out), or of a notebook's source (Markdown and code cells; the jupytext
header, cell markers and comment signs left out). A notebook's run time comes on top (the table in
``notebooks/README.md``). Notebooks are named without their numbers (``"nb:latent_space"``), so that
renumbering them needs only a rewrite.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS_PER_MINUTE = 200
WORKING_FACTOR = (2, 3)  # working through the derivations with pen and paper: this many times the reading time
TIME_LINE = re.compile(r"^\*Reading time: .*\*$", re.M)

# Each step: (page, what to read first). A page is a derivation ("elbo") or a notebook ("nb:name").
FIRST_HOUR = [
    ("nb:vae_on_one_screen", []),
    ("elbo", []),
    ("reparameterization", ["elbo"]),
    ("kl", ["elbo"]),
]
CORE = [
    ("notation", []),
    ("nb:autoencoder_vs_vae", ["nb:vae_on_one_screen", "kl"]),
    ("autoencoder", ["elbo", "kl"]),
    ("nb:reparameterization", ["reparameterization"]),
    ("bernoulli", ["notation", "elbo"]),
    ("gaussian", ["bernoulli"]),
    ("nb:elbo_and_losses", ["bernoulli", "gaussian", "kl"]),
    ("dense", ["notation"]),
    ("activations", ["dense"]),
    ("optimizers", ["dense"]),
    ("importance-sampling", ["elbo", "gaussian"]),
    ("nb:training_mnist", ["nb:elbo_and_losses", "dense", "optimizers", "importance-sampling"]),
    ("nb:latent_space", ["nb:training_mnist", "autoencoder"]),
    ("gradcheck", ["reparameterization", "dense"]),
    ("nb:gradient_check_exercises", ["gradcheck", "activations", "nb:reparameterization"]),
]
ELECTIVES = {
    "Numerics": [
        ("float32-loss", ["bernoulli"]),
    ],
    "Likelihoods": [
        ("ppca", ["gaussian", "elbo"]),
        ("sigma-vae", ["gaussian", "ppca"]),
        ("continuous-bernoulli", ["bernoulli"]),
    ],
    "IWAE and amortization": [
        ("iwae", ["importance-sampling", "reparameterization"]),
        ("kl-direction", ["importance-sampling", "kl"]),
        ("amortization", ["importance-sampling", "ppca", "nb:latent_space"]),
        ("flows", ["iwae", "amortization"]),
        ("nb:flows", ["flows", "nb:latent_space"]),
        ("two-layer", ["iwae", "autoencoder"]),
        ("nb:two_layers", ["two-layer", "nb:training_mnist"]),
    ],
    "Convolution": [
        ("convolution", ["dense"]),
        ("nb:conv_vae", ["convolution", "nb:training_mnist"]),
    ],
    "Conditional models": [
        ("conditional", ["notation", "dense", "reparameterization", "elbo", "kl", "bernoulli", "importance-sampling"]),
        ("semi-supervised", ["conditional", "reparameterization"]),
        ("nb:conditional_and_semi_supervised", ["conditional", "semi-supervised", "nb:training_mnist"]),
    ],
    "Rate–distortion": [
        ("rate-distortion", ["elbo", "autoencoder", "ppca"]),
        ("free-bits", ["kl"]),
        ("nb:questions", ["continuous-bernoulli", "sigma-vae", "free-bits", "rate-distortion"]),
    ],
}


def steps():
    """Every step in path order: (route, page, prerequisites)."""
    out = [("first hour", p, r) for p, r in FIRST_HOUR] + [("core", p, r) for p, r in CORE]
    for group, items in ELECTIVES.items():
        out += [(group, p, r) for p, r in items]
    return out


# --- pages and their words -------------------------------------------------------------------------

def source(page, root=ROOT):
    """The repository path of a page: derivations/elbo.md, or the numbered notebook source (None if absent)."""
    if not page.startswith("nb:"):
        return f"derivations/{page}.md"
    found = sorted((root / "notebooks").glob(f"[0-9][0-9]_{page[3:]}.py"))
    if len(found) > 1:
        raise ValueError(f"two notebooks are named {page[3:]!r}: {[p.name for p in found]}")
    return found[0].relative_to(root).as_posix() if found else None


def words(text, notebook=False):
    """The words a reader reads (see the module docstring)."""
    if notebook:
        text = re.sub(r"\A# ---\n.*?\n# ---\n", "", text, flags=re.S)  # the jupytext header
        return sum(1 for token in text.split() if not re.fullmatch(r"#+|%%|\[markdown\]", token))
    return len(TIME_LINE.sub("", text).split())


def minutes(n_words):
    return max(1, math.ceil(n_words / WORDS_PER_MINUTE))


def title(page, root=ROOT):
    if source(page, root) is None:
        return f"`{page[3:]}` (a notebook not yet in the repository)"
    text = (root / source(page, root)).read_text(encoding="utf-8")
    heading = "# # " if page.startswith("nb:") else "# "  # a notebook's title is in its first Markdown cell
    line = next(line for line in text.splitlines() if line.startswith(heading))
    return re.sub(r"^\d+ · ", "", line[len(heading):]).strip()  # a notebook's title without its number


def short_title(page, root=ROOT):
    """The title up to its colon: "The dense layer" for "The dense layer: forward, backward and ..."."""
    return title(page, root).split(": ")[0]


def page_minutes(page, root=ROOT):
    """Reading time in minutes, or None for a notebook that is not in the repository."""
    path = source(page, root)
    if path is None:
        return None
    return minutes(words((root / path).read_text(encoding="utf-8"), notebook=page.startswith("nb:")))


def link(page, from_folder, root=ROOT, label=None):
    """A Markdown link to ``page`` from a file in ``from_folder`` (a notebook's link goes to its .ipynb)."""
    path = source(page, root)
    if path is None:
        return label or title(page, root)
    if page.startswith("nb:"):
        path = path[:-3] + ".ipynb"
    rel = Path(path).relative_to(from_folder).as_posix() if path.startswith(from_folder + "/") else \
        "../" * len(Path(from_folder).parts) + path
    return f"[{label or title(page, root)}]({rel})"


def needs(prereqs, from_folder, root=ROOT):
    return ", ".join(link(p, from_folder, root, short_title(p, root)) for p in prereqs) if prereqs else "nothing"


# --- what is written -------------------------------------------------------------------------------

def time_line(page, prereqs, root=ROOT):
    """The line below a derivation's title."""
    return (f"*Reading time: about {page_minutes(page, root)} min, at {WORDS_PER_MINUTE} words a minute "
            f"([how it is counted](../docs/start-here.md#how-the-reading-times-are-counted)). "
            f"Read first: {needs(prereqs, 'derivations', root)}.*")


def with_time_line(text, line):
    text = TIME_LINE.sub("", text)
    head, _, rest = text.partition("\n")
    return f"{head}\n\n{line}\n\n{rest.lstrip(chr(10))}"


def route_table(items, root=ROOT):
    rows = ["| page | reading time | read first |", "| --- | --- | --- |"]
    for page, prereqs in items:
        kind = "Notebook: " if page.startswith("nb:") else ""
        rows.append(f"| {kind}{link(page, 'docs', root)} | {shown(page_minutes(page, root))} "
                    f"| {needs(prereqs, 'docs', root)} |")
    return "\n".join(rows)


def shown(n):
    return "—" if n is None else f"{n} min"


def total(items, root=ROOT):
    return sum(page_minutes(p, root) or 0 for p, _ in items)


def hours(n):
    return f"{n} min" if n < 60 else f"{n // 60} h {n % 60:02d} min"


def missing_note(items, root=ROOT):
    absent = [p[3:] for p, _ in items if page_minutes(p, root) is None]
    return f" (not counting {', '.join(absent)}, not yet in the repository)" if absent else ""


def start_here(text, root=ROOT):
    """docs/start-here.md with its three route sections written from the path."""
    minutes = total(FIRST_HOUR, root)
    low, high = (minutes * f for f in WORKING_FACTOR)
    first = (f"Reading time: {hours(minutes)}{missing_note(FIRST_HOUR, root)} at the nominal pace below, plus "
             f"the notebook's run time. Working through the derivations typically takes {WORKING_FACTOR[0]} to "
             f"{WORKING_FACTOR[1]} times "
             f"as long ({hours(low)} to {hours(high)}).\n\n" + route_table(FIRST_HOUR, root))
    core = (f"Reading time: {hours(total(CORE, root))}{missing_note(CORE, root)}. Running the notebooks and "
            "working the exercises come on top.\n\n" + route_table(CORE, root))
    electives = ["Independent groups, in any order once the core course is done; within a group, in the order "
                 "given."]
    for group, items in ELECTIVES.items():
        electives += [f"### {group}", f"Reading time: {hours(total(items, root))}{missing_note(items, root)}.",
                      route_table(items, root)]
    text = replace_section(text, "The first hour", first)
    text = replace_section(text, "The core course", core)
    return replace_section(text, "Electives", "\n\n".join(electives))


def derivation_pages():
    return [p for _, p, _ in steps() if not p.startswith("nb:")]


def derivations_index(text, root=ROOT):
    """derivations/README.md with its page list in path order and its reading order rewritten."""
    order = derivation_pages()
    lines = text.split("\n")
    bullets = [i for i, line in enumerate(lines) if re.match(r"^- \[[a-z0-9-]+\.md\]\([a-z0-9-]+\.md\): ", line)]
    by_page = {re.match(r"^- \[([a-z0-9-]+)\.md\]", lines[i]).group(1): lines[i] for i in bullets}
    for i, page in zip(bullets, [p for p in order if p in by_page] + [p for p in by_page if p not in order]):
        lines[i] = by_page[page]
    text = "\n".join(lines)
    reading = ["The path of [Start here](../docs/start-here.md), derivation pages only; reading times are "
               f"words at {WORDS_PER_MINUTE} a minute."]
    route = None
    for n, (where, page, prereqs) in enumerate([s for s in steps() if not s[1].startswith("nb:")], 1):
        if where != route:
            route = where
            name = {"first hour": "The first hour", "core": "The core course"}.get(where, f"Elective: {where}")
            reading += ["", f"**{name}**", ""]
        first = [p for p in prereqs if not p.startswith("nb:")]
        reading.append(f"{n}. {link(page, 'derivations', root)}, {page_minutes(page, root)} min; read first: "
                       f"{needs(first, 'derivations', root)}.")
    return replace_section(text, "Reading order", "\n".join(reading))


def notebooks_index(text, root=ROOT):
    reading = [f"The notebooks in the order of [Start here](../docs/start-here.md); reading times are words at "
               f"{WORDS_PER_MINUTE} a minute, without the time a notebook takes to run.", ""]
    for n, (where, page, prereqs) in enumerate([s for s in steps() if s[1].startswith("nb:")], 1):
        route = {"first hour": "the first hour", "core": "the core course"}.get(where, f"elective: {where.lower()}")
        reading.append(f"{n}. {link(page, 'notebooks', root)} ({route}), {shown(page_minutes(page, root))}; "
                       f"read first: {needs(prereqs, 'notebooks', root)}.")
    return replace_section(text, "Reading order", "\n".join(reading))


def replace_section(text, heading, body):
    """``text`` with the body of its ``## heading`` section replaced by ``body``."""
    match = re.search(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
    if match is None:
        raise ValueError(f"no '## {heading}' section")
    return text[:match.start()] + f"## {heading}\n\n{body.strip()}\n\n" + text[match.end():]


def expected(root=ROOT):
    """{repository path: the text this script writes there}."""
    out = {"docs/start-here.md": start_here((root / "docs/start-here.md").read_text(encoding="utf-8"), root)}
    for _, page, prereqs in steps():
        if not page.startswith("nb:"):
            path = source(page, root)
            out[path] = with_time_line((root / path).read_text(encoding="utf-8"), time_line(page, prereqs, root))
    out["derivations/README.md"] = derivations_index((root / "derivations/README.md").read_text(encoding="utf-8"), root)
    out["notebooks/README.md"] = notebooks_index((root / "notebooks/README.md").read_text(encoding="utf-8"), root)
    return out


def stale(root=ROOT):
    """The files whose stored text differs from what this script writes."""
    return [path for path, text in expected(root).items()
            if not (root / path).is_file() or (root / path).read_text(encoding="utf-8") != text]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the files instead of checking them")
    args = parser.parse_args(argv)
    if args.write:
        for path, text in expected().items():
            if not (ROOT / path).is_file() or (ROOT / path).read_text(encoding="utf-8") != text:
                (ROOT / path).write_text(text, encoding="utf-8")
                print(f"wrote {path}")
        return 0
    behind = stale()
    for path in behind:
        print(f"{path} does not match the path and its reading times: run python docs/reading.py --write")
    return 1 if behind else 0


if __name__ == "__main__":
    sys.exit(main())
