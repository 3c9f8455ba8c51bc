"""Execute the notebooks' sources and store each as an .ipynb with its outputs.

    python notebooks/build.py             # run every notebooks/NN_name.py, write NN_name.ipynb
    python notebooks/build.py 04 07       # only these (by number or by name)
    python notebooks/build.py --check     # exit 1 if a stored .ipynb is not the executed copy of its source

The sources ``NN_name.py`` (jupytext percent format) are what people edit; the ``.ipynb`` beside
them are build products, stored with their outputs so that the figures show on a code-hosting site.
Each source runs top to bottom in a fresh ``python3`` kernel (nbclient), with the working directory
``notebooks/``, ``MPLBACKEND=Agg`` and inline figures as PNG. What is written does not depend on
when it was built, nor on the paths of the machine, so rebuilding an unchanged notebook on the same
machine rewrites the same bytes:

* keys sorted, nbformat 4.5, cell ids made of the notebook's number and the cell's index
  (``nb04-07``), no execution timing, consecutive stream outputs merged into one;
* the notebook metadata is the kernel spec, the source's jupytext options and the language, without
  the Python version;
* PNGs carry no software-version text; widget outputs (a progress bar's) are dropped;
* in text outputs, this machine's paths become placeholders: a temporary directory (what
  ``tempfile.mkdtemp`` made) ``<tmp>``, the Python environment ``<venv>``, the Python installation
  ``<python>``, the repository ``<repo>``, the home directory ``~``; durations (a number followed
  by s, ms, min or seconds) lose their number (``… s``); object addresses ``0x…``. A path that survives this is an error.

Every build also stores the notebook's run time and each code cell's in ``timings.json``, with the
machine's load, and rewrites the run-time table of ``README.md`` (between ``TABLE_START`` and
``TABLE_END``); ``tests/test_notebooks.py`` holds them to ``NOTEBOOK_LIMIT``, ``ONE_SCREEN_LIMIT`` and
``CELL_LIMIT``.

``--check`` does not execute anything: it compares each stored notebook's cells, kernel spec and
jupytext options with its source's and checks that the code cells carry the outputs of one
top-to-bottom run with no error and no absolute path.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import jupytext
import nbclient
import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SOURCE_GLOB = "[0-9][0-9]_*.py"
KERNEL = "python3"
CELL_TIMEOUT = 900  # seconds one cell may take before the build gives up on its notebook (a busy machine is slow)

# Inline figures as PNG without the "Software: Matplotlib version ..." text, so that the bytes do not
# change with the matplotlib release.
KERNEL_ARGS = ['--InlineBackend.figure_formats={"png"}',
               '--InlineBackend.print_figure_kwargs={"bbox_inches": "tight", "metadata": {"Software": None}}']

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
NOISE_LINES = re.compile(r"^Matplotlib is building the font cache; this may take a moment\.\n", re.M)
DURATION = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?=\s?(?:s|ms|us|µs|min|sec|seconds?)\b)")
ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")
# A path with at least two components that starts at a root (/a/b) or a drive letter (C:\a).
ABSOLUTE_PATH = re.compile(r"(?<![\w/.:~<>\\-])(?:/[\w.+-]+/[\w.+-]+|[A-Za-z]:\\[\w.+-]+)")


# Run times. Every build stores each notebook's wall-clock seconds and each code cell's in timings.json, with
# the machine's load, and rewrites the table in README.md between these two lines; tests/test_notebooks.py
# fails where a stored figure is over its limit or was measured on an older source.
TIMINGS_NAME = "timings.json"
NOTEBOOK_LIMIT = 90.0  # seconds a notebook may take, kernel start included
CELL_LIMIT = 20.0  # seconds one cell may take
ONE_SCREEN = "vae_on_one_screen"  # the notebook that writes a VAE out by hand (NN_vae_on_one_screen) ...
ONE_SCREEN_LIMIT = 60.0  # ... may take this long at most
# Variables that set how many threads the kernel's BLAS and tinyvae use: stored with the times when set.
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "TINYVAE_THREADS")
TABLE_START = "<!-- run times: written by build.py from timings.json -->"
TABLE_END = "<!-- end of run times -->"


def sources(directory=HERE):
    """The notebook sources NN_name.py, in order."""
    return sorted(Path(directory).glob(SOURCE_GLOB))


def stored_path(source):
    return Path(source).with_suffix(".ipynb")


def read_source(source):
    """The notebook of ``source`` (a jupytext percent file), no outputs, with the stored ids and metadata."""
    nb = jupytext.read(source, fmt="py:percent")
    nb.nbformat, nb.nbformat_minor = 4, 5
    number = Path(source).name.split("_")[0]
    for index, cell in enumerate(nb.cells):
        cell.id = f"nb{number}-{index:02d}"
    # Keep the source's jupytext options (its metadata filter) but not the text file's own format
    # description: jupytext compares the two files of a pair through them when Jupyter opens one.
    options = {k: v for k, v in nb.metadata.get("jupytext", {}).items() if k != "text_representation"}
    kernelspec = nb.metadata.get("kernelspec") or {"display_name": "Python 3", "language": "python", "name": KERNEL}
    nb.metadata = {"kernelspec": dict(kernelspec), **({"jupytext": options} if options else {})}
    return nb


def execute(nb, timeout=CELL_TIMEOUT):
    """Run ``nb`` top to bottom in place, in a fresh kernel in notebooks/; raises CellExecutionError.

    Each code cell's metadata gets nbclient's timestamps (``cell_seconds`` reads them; ``tidy`` drops them)
    and the notebook's metadata the run's wall-clock seconds, kernel start included, under ``build_seconds``,
    and the CPU seconds the kernel used (all its threads) under ``build_cpu_seconds``.
    """
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONHASHSEED="0")
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name=KERNEL, record_timing=True,
                                     extra_arguments=KERNEL_ARGS, resources={"metadata": {"path": str(HERE)}})
    began, cpu = time.perf_counter(), os.times()
    client.execute(env=env)
    nb.metadata["build_seconds"] = time.perf_counter() - began
    after = os.times()  # the kernel has exited: its CPU time is counted among this process's children
    nb.metadata["build_cpu_seconds"] = (after.children_user + after.children_system
                                        - cpu.children_user - cpu.children_system)
    return nb


def _placeholders():
    """(pattern, replacement) for this machine's paths, the most specific first."""
    tmp = tempfile.gettempdir()
    pairs = []
    prefixes = [(sys.prefix, "<venv>"), (sys.base_prefix, "<python>"), (str(ROOT), "<repo>"),
                (str(Path.home()), "~")]
    # A folder that holds the temporary directory (the home folder, say) is replaced after it; any
    # other (the repository or a venv that may lie inside the temporary directory, as in CI) before.
    for ancestors_of_tmp in (False, True):
        if ancestors_of_tmp:
            pairs.append((re.escape(tmp) + r"[/\\][^/\\\s'\"]+", "<tmp>"))
        for prefix, name in sorted(prefixes, key=lambda p: -len(p[0])):
            is_ancestor = Path(tmp).is_relative_to(prefix)
            if len(Path(prefix).parts) > 1 and is_ancestor == ancestors_of_tmp:  # never replace a bare "/"
                pairs.append((re.escape(prefix) + r"(?=[/\\\s'\"),:;\]]|$)", name))
    return [(re.compile(p), r) for p, r in pairs]


def scrub(text):
    """``text`` with this machine's paths, durations and object addresses replaced by placeholders."""
    for pattern, replacement in _placeholders():
        text = pattern.sub(replacement, text)
    text = DURATION.sub("…", text)
    return ADDRESS.sub("0x…", text)


def _text_fields(output):
    """(container, key) of every text field of an output that a reader sees as text."""
    if output.output_type == "stream":
        yield output, "text"
    elif output.output_type == "error":
        yield output, "evalue"
    else:
        for mime, value in output.get("data", {}).items():
            if mime.startswith("text/") and isinstance(value, str):
                yield output["data"], mime


def tidy(nb):
    """Make an executed notebook independent of the machine and the moment it ran on (in place)."""
    language = dict(nb.metadata.get("language_info", {"name": "python"}))
    language.pop("version", None)
    nb.metadata = {key: nb.metadata[key] for key in ("kernelspec", "jupytext") if key in nb.metadata}  # no timing
    nb.metadata["language_info"] = language
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.outputs:
            if WIDGET_MIME in output.get("data", {}):
                continue
            if output.output_type == "stream":
                output.text = NOISE_LINES.sub("", output.text)
                if not output.text:
                    continue
                if outputs and outputs[-1].output_type == "stream" and outputs[-1].name == output.name:
                    outputs[-1].text += output.text
                    continue
            outputs.append(output)
        for output in outputs:
            for container, key in _text_fields(output):
                container[key] = scrub(container[key])
        cell.outputs = outputs
    return nb


def machine_paths(nb):
    """Every absolute path shown in a text output of ``nb``, as (cell index, path)."""
    found = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            for container, key in _text_fields(output):
                found += [(index, m) for m in ABSOLUTE_PATH.findall(container[key])]
            found += [(index, m) for line in output.get("traceback", []) for m in ABSOLUTE_PATH.findall(line)]
    return found


def cell_seconds(nb):
    """{index: seconds} of every code cell of an executed ``nb``, from nbclient's timestamps."""
    from datetime import datetime  # noqa: PLC0415

    def moment(text):
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    found = {}
    for index, cell in enumerate(nb.cells):
        stamps = cell.metadata.get("execution", {})
        if cell.cell_type == "code" and "iopub.execute_input" in stamps and "shell.execute_reply" in stamps:
            found[index] = (moment(stamps["shell.execute_reply"]) - moment(stamps["iopub.execute_input"])).total_seconds()
    return found


def source_digest(source):
    return hashlib.sha256(Path(source).read_bytes()).hexdigest()


def timing_record(source, nb):
    """What the build stores of one executed notebook's run: its time, each code cell's, and the machine's load."""
    cells = cell_seconds(nb)
    slowest = max(cells, key=cells.get) if cells else None
    return {"source_sha256": source_digest(source),
            "total_s": round(float(nb.metadata.get("build_seconds", sum(cells.values()))), 1),
            "max_cell_s": round(cells[slowest], 1) if cells else 0.0, "max_cell": slowest,
            "cells_s": {str(i): round(t, 1) for i, t in cells.items()},
            "cpu_s": round(float(nb.metadata.get("build_cpu_seconds", 0.0)), 1),
            "load_average_1min": round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None,
            "cpus": os.cpu_count(),
            "environment": {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ}}


def read_timings(directory=HERE):
    path = Path(directory) / TIMINGS_NAME
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def store_timing(source, record, directory=HERE):
    """Put ``record`` under the source's name in timings.json (atomically) and rewrite README.md's table."""
    timings = read_timings(directory)
    timings[Path(source).stem] = record
    timings = {k: timings[k] for k in sorted(timings)}
    path = Path(directory) / TIMINGS_NAME
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(timings, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    partial.replace(path)
    write_readme_table(directory)


def limit_of(source):
    return ONE_SCREEN_LIMIT if Path(source).stem.endswith(ONE_SCREEN) else NOTEBOOK_LIMIT


def timing_problems(source, timings):
    """Why the stored run time of ``source`` is missing, stale or over its limits; [] when it is fine."""
    name = Path(source).stem
    record = timings.get(name)
    if record is None:
        return [f"{name}: no stored run time; build it: python notebooks/build.py {name[:2]}"]
    found = []
    if record["source_sha256"] != source_digest(source):
        found.append(f"{name}: the stored run time is of an older source; rebuild it")
    if record["total_s"] > limit_of(source):
        found.append(f"{name}: ran {record['total_s']} s, over its limit of {limit_of(source):g} s")
    slow = {i: t for i, t in record["cells_s"].items() if t > CELL_LIMIT}
    if slow:
        found.append(f"{name}: cells (index: seconds) over {CELL_LIMIT:g} s: {slow}")
    return found


def timings_table(timings, directory=HERE):
    """The README's table of the stored run times, one row per notebook source."""
    rows = ["| notebook | run time (s) | limit (s) | slowest cell (s) | kernel's CPU time (s) "
            "| load average when built (cores) | threads set |", "| --- | ---: | ---: | --- | ---: | ---: | --- |"]
    for source in sources(directory):
        record = timings.get(source.stem)
        if record is None:
            rows.append(f"| {source.stem} | not measured | {limit_of(source):g} | | | | |")
            continue
        number = source.stem.split("_")[0]
        cell = f"{record['max_cell_s']} (cell `nb{number}-{record['max_cell']:02d}`)" if record["max_cell"] is not None else ""
        load = f"{record['load_average_1min']} ({record['cpus']})" if record.get("load_average_1min") is not None else ""
        cpu = record.get("cpu_s", "")
        threads = ", ".join(f"`{k}={v}`" for k, v in record.get("environment", {}).items()) or "none"
        rows.append(f"| {source.stem} | {record['total_s']} | {limit_of(source):g} | {cell} | {cpu} | {load} | {threads} |")
    return "\n".join(rows)


def write_readme_table(directory=HERE):
    """Replace the table between TABLE_START and TABLE_END in README.md (if it has them) with the stored times."""
    readme = Path(directory) / "README.md"
    if not readme.exists():
        return
    text = readme.read_text(encoding="utf-8")
    if TABLE_START not in text or TABLE_END not in text:
        return
    head, rest = text.split(TABLE_START, 1)
    tail = rest.split(TABLE_END, 1)[1]
    readme.write_text(f"{head}{TABLE_START}\n{timings_table(read_timings(directory), directory)}\n{TABLE_END}{tail}",
                      encoding="utf-8")


def render(nb):
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def build(source, timeout=CELL_TIMEOUT):
    """Execute ``source``; return the text of its stored notebook and the record of its run time."""
    nb = execute(read_source(source), timeout)
    record = timing_record(source, nb)
    nb = tidy(nb)
    paths = machine_paths(nb)
    if paths:
        raise ValueError(f"{Path(source).name}: outputs show absolute paths (cell index, path) {paths}; "
                         "print paths relative to a folder, or add the folder to build.py's placeholders")
    return render(nb), record


def problems(source):
    """Why the stored notebook of ``source`` is not the executed copy of the source; [] when it is."""
    path = stored_path(source)
    if not path.exists():
        return [f"{path.name} is missing"]
    stored = nbformat.read(path, as_version=4)
    expected = read_source(source)
    found = []
    for key in ("kernelspec", "jupytext"):
        if stored.metadata.get(key) != expected.metadata.get(key):
            found.append(f"the notebook's {key} metadata differs from the source's")
    if len(stored.cells) != len(expected.cells):
        found.append(f"{len(stored.cells)} cells stored, the source has {len(expected.cells)}")
    for index, (a, b) in enumerate(zip(stored.cells, expected.cells)):
        for key in ("cell_type", "source", "metadata", "id"):
            if a.get(key) != b.get(key):
                found.append(f"cell {index}: the stored {key} differs from the source's")
                break
    code = [c for c in stored.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    if counts != list(range(1, len(code) + 1)):
        found.append(f"not one top-to-bottom run: execution counts {counts}")
    errors = [i for i, c in enumerate(stored.cells) if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    if errors:
        found.append(f"error outputs in cells {errors}")
    paths = machine_paths(stored)
    if paths:
        found.append(f"absolute paths in outputs (cell index, path): {paths}")
    return found


def select(names, directory=None):
    """The sources named by number (05) or name (05_training_mnist, with or without an extension)."""
    every = sources(HERE if directory is None else directory)
    if not names:
        return every
    chosen = []
    for name in names:
        stem = Path(name).name.split(".")[0]
        matches = [s for s in every if s.stem == stem or s.stem.split("_")[0] == stem]
        if not matches:
            raise SystemExit(f"no notebook source matches {name!r}; the sources are "
                             f"{', '.join(s.name for s in every)}")
        chosen += [m for m in matches if m not in chosen]
    return chosen


def main(argv=None, directory=None):
    """The command line; ``directory`` (default: this folder) holds the sources."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebooks to build, by number (04) or name; default: all")
    parser.add_argument("--check", action="store_true",
                        help="execute nothing; exit 1 if a stored notebook does not match its source")
    parser.add_argument("--timeout", type=float, default=CELL_TIMEOUT, metavar="SECONDS",
                        help=f"the most one cell may take (default {CELL_TIMEOUT})")
    args = parser.parse_args(argv)
    chosen = select(args.names, directory)
    if args.check:
        stale = {s.name: problems(s) for s in chosen}
        stale = {name: found for name, found in stale.items() if found}
        for name, found in stale.items():
            print(f"{name}: " + "; ".join(found))
        if stale:
            print(f"out of date: rebuild with  python notebooks/build.py {' '.join(n[:2] for n in stale)}")
            return 1
        print(f"{len(chosen)} stored notebooks match their sources")
        return 0
    failed, start = [], time.perf_counter()
    for source in chosen:
        began = time.perf_counter()
        try:
            text, record = build(source, args.timeout)
        except Exception as error:  # a failing cell, a dead or missing kernel, a path in an output: go on
            failed.append(source.name)
            print(f"{source.name}: FAILED, {stored_path(source).name} left as it was\n{error}", file=sys.stderr)
            continue
        target = stored_path(source)
        unchanged = target.exists() and target.read_text(encoding="utf-8") == text
        if not unchanged:
            partial = target.with_name(target.name + ".partial")
            partial.write_text(text, encoding="utf-8")
            partial.replace(target)  # atomic: a reader never sees half a notebook
        store_timing(source, record, source.parent)
        over = timing_problems(source, read_timings(source.parent))
        print(f"{target.name}: {'unchanged' if unchanged else 'written'} "
              f"({time.perf_counter() - began:.1f} s; slowest cell {record['max_cell_s']} s)"
              + "".join(f"\n  over a limit: {p}" for p in over), flush=True)
    print(f"{len(chosen) - len(failed)} of {len(chosen)} notebooks built in {time.perf_counter() - start:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
