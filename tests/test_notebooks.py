"""The tutorial notebooks: sources, stored copies with outputs, and a fresh run of each.

Each notebook is a jupytext percent source ``notebooks/NN_name.py`` and its executed copy
``NN_name.ipynb``, written by ``python notebooks/build.py``. These tests check that every stored copy
has the source's cells and the outputs of one top-to-bottom run, with figures where the notebook
draws and no path of the machine that built it; that the notebooks link existing derivations and
use only the public API; and they execute every source again, as the build does (nbclient, kernel
``python3``, working directory ``notebooks/``, ``MPLBACKEND=Agg``, 900 s per cell, as the build allows). The run time of
each notebook is printed (``pytest -s tests/test_notebooks.py``) and collected in a summary at the
end of the session.
"""

import importlib.util
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
CELL_TIMEOUT = 900  # as notebooks/build.py: a loaded 2-core machine ran one conv cell past 300 s
RUN_TIMES = {}

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
jupytext = pytest.importorskip("jupytext")


def _load_build():
    spec = importlib.util.spec_from_file_location("notebook_build", NOTEBOOK_DIR / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _load_build()
SOURCES = build.sources()
IDS = [p.stem for p in SOURCES]
DRAWS = re.compile(r"\bplt\.|\bplots\.plot_|\.imshow\(")


def _stored(source):
    path = build.stored_path(source)
    assert path.exists(), f"{source.name} has no stored copy: run python notebooks/build.py {source.name[:2]}"
    return nbformat.read(path, as_version=4)


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_there_are_at_least_six_notebooks_each_with_a_stored_copy():
    assert len(SOURCES) >= 6, [p.name for p in SOURCES]
    missing = [p.name for p in SOURCES if not build.stored_path(p).exists()]
    assert not missing, f"no stored .ipynb for {missing}: run python notebooks/build.py"
    orphans = sorted({p.stem for p in NOTEBOOK_DIR.glob("*.ipynb")} - {p.stem for p in SOURCES})
    assert not orphans, f"stored notebooks without a source: {orphans}"


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_stored_notebook_has_the_cells_of_its_source(source):
    stored, expected = _stored(source), jupytext.read(source)
    assert [c.cell_type for c in stored.cells] == [c.cell_type for c in expected.cells], (
        f"{source.name}: cells added or removed since the last build: run python notebooks/build.py {source.name[:2]}")
    for index, (a, b) in enumerate(zip(stored.cells, expected.cells)):
        assert a.source == b.source and a.metadata == b.metadata, (
            f"{source.name}, cell {index}: stored copy differs from the source: "
            f"run python notebooks/build.py {source.name[:2]}")


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_stored_notebook_carries_the_outputs_of_one_run_with_figures_where_it_draws(source):
    stored = _stored(source)
    code = _code(stored)
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), (
        f"{source.name}: not the outputs of one top-to-bottom run")
    outputs = [o for c in code for o in c.outputs]
    assert outputs, f"{source.name}: stored without outputs"
    assert not [o for o in outputs if o.output_type == "error"]
    text = json.dumps([o for o in outputs if "image/png" not in o.get("data", {})])
    assert "IProgress not found" not in text, f"{source.name}: ipywidgets missing in the kernel that built it"
    if any(DRAWS.search(c.source) for c in code):
        pngs = [o for o in outputs if "image/png" in o.get("data", {})]
        assert pngs, f"{source.name} draws but stores no image/png output"
    for cell in stored.cells:
        assert "execution" not in cell.metadata, f"{source.name}: timing metadata stored"


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_each_stored_cell_shows_at_most_one_figure(source):
    # One picture per cell, right under the code that drew it: a second figure (or the same one shown
    # twice, as when a function both displays and returns it) belongs in a cell of its own.
    crowded = {i: n for i, c in enumerate(_code(_stored(source)))
               if (n := sum("image/png" in o.get("data", {}) for o in c.outputs)) > 1}
    assert not crowded, f"{source.name}: code cells (0-based) with more than one figure: {crowded}"


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_stored_outputs_show_no_absolute_path(source):
    assert build.machine_paths(_stored(source)) == []


def test_scrub_replaces_this_machines_paths_times_and_addresses():
    import tempfile
    scratch = Path(tempfile.mkdtemp(prefix="tinyvae-"))
    try:
        text = (f"run folder {scratch}/mnist\nfile {build.ROOT}/tinyvae/train.py:3: warning\n"
                f"home {Path.home()}/x/y\nepoch 1/5  12.3 s (+0.4 s eval) in 2 min\n<VAE object at 0x7f3a2b4c5d60>\n")
        scrubbed = build.scrub(text)
    finally:
        shutil.rmtree(scratch)
    assert "run folder <tmp>/mnist\n" in scrubbed
    assert "file <repo>/tinyvae/train.py:3" in scrubbed
    assert "epoch 1/5  … s (+… s eval) in … min" in scrubbed
    assert "at 0x…>" in scrubbed
    assert str(scratch) not in scrubbed and str(build.ROOT) not in scrubbed


def test_machine_paths_finds_a_path_and_not_a_fraction_or_an_address():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="epoch 1/5 in <tmp>/a/b, see https://x.org/a/b\n"),
        nbformat.v4.new_output("stream", name="stderr", text="/home/someone/venv/lib/x.py:3: Warning\n"),
        nbformat.v4.new_output("display_data", data={"text/plain": r"C:\Users\me"})])])
    assert build.machine_paths(nb) == [(0, "/home/someone"), (0, r"C:\Users")]


def test_build_check_passes_on_a_built_pair_and_fails_once_the_source_is_edited(tmp_path, capsys):
    source = tmp_path / SOURCES[0].name
    shutil.copy(SOURCES[0], source)
    nb = build.read_source(source)  # a stand-in for an executed copy: outputs are not compared
    for count, cell in enumerate(_code(nb), start=1):
        cell.execution_count = count
    build.stored_path(source).write_text(build.render(nb), encoding="utf-8")
    assert build.problems(source) == []
    assert build.main(["--check"], directory=tmp_path) == 0
    source.write_text(source.read_text(encoding="utf-8").replace("# %%\n", "# %%\nx = 1\n", 1), encoding="utf-8")
    found = build.problems(source)
    assert found and "the stored source differs" in found[0]
    assert build.main(["--check"], directory=tmp_path) == 1
    assert f"python notebooks/build.py {source.name[:2]}" in capsys.readouterr().out


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_stored_run_time_is_of_this_source_and_within_the_limits(source):
    # Every build stores the notebook's wall-clock seconds and each cell's (notebooks/timings.json):
    # at most 90 s a notebook (60 s the one-screen VAE) and 20 s a cell.
    assert build.timing_problems(source, build.read_timings()) == []


def test_readme_table_shows_the_stored_run_times():
    text = (NOTEBOOK_DIR / "README.md").read_text(encoding="utf-8")
    assert build.TABLE_START in text and build.TABLE_END in text, "notebooks/README.md has no run-time table"
    table = text.split(build.TABLE_START, 1)[1].split(build.TABLE_END, 1)[0].strip()
    assert table == build.timings_table(build.read_timings()), "rebuild a notebook to rewrite the table"


def test_timing_problems_names_a_slow_cell_a_slow_notebook_and_a_stale_source(tmp_path):
    source = tmp_path / "04_x.py"
    source.write_text("# %%\nx = 1\n", encoding="utf-8")
    record = {"source_sha256": build.source_digest(source), "total_s": 30.0, "max_cell_s": 3.0, "max_cell": 0,
              "cells_s": {"0": 3.0}, "load_average_1min": 1.0, "cpus": 2}
    assert build.timing_problems(source, {"04_x": record}) == []
    assert "no stored run time" in build.timing_problems(source, {})[0]
    slow = build.timing_problems(source, {"04_x": dict(record, total_s=95.0, cells_s={"0": 21.0})})
    assert len(slow) == 2 and "over its limit of 90 s" in slow[0] and "{'0': 21.0}" in slow[1]
    one_screen = tmp_path / "01_vae_on_one_screen.py"
    one_screen.write_text("# %%\nx = 1\n", encoding="utf-8")
    rec = dict(record, source_sha256=build.source_digest(one_screen), total_s=61.0)
    assert "limit of 60 s" in build.timing_problems(one_screen, {"01_vae_on_one_screen": rec})[0]
    source.write_text("# %%\nx = 2\n", encoding="utf-8")
    assert "older source" in build.timing_problems(source, {"04_x": record})[0]


def test_build_stores_each_cells_time_and_rewrites_the_readme_table(tmp_path):
    source = tmp_path / "01_sleep.py"
    source.write_text("# %%\nimport time\n\n# %%\ntime.sleep(0.3)\n", encoding="utf-8")
    (tmp_path / "README.md").write_text(f"# x\n{build.TABLE_START}\nold\n{build.TABLE_END}\ntail\n", encoding="utf-8")
    assert build.main(["01"], directory=tmp_path) == 0
    record = build.read_timings(tmp_path)["01_sleep"]
    assert record["max_cell"] == 1 and 0.3 <= record["max_cell_s"] < record["total_s"]
    assert record["source_sha256"] == build.source_digest(source)
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert "| 01_sleep | " in readme and "old" not in readme and readme.endswith(f"{build.TABLE_END}\ntail\n")


def test_jupyter_opens_each_pair_from_either_file_and_saving_leaves_the_source_unchanged(tmp_path):
    # JupyterLab reads notebooks through jupytext's contents manager (the notebooks extra installs it).
    # When the .ipynb of a pair is the newer file, as after a build or a fresh clone, jupytext opens the
    # pair only if the two files hold the same cells and notebook options.
    pytest.importorskip("jupyter_server")
    from jupytext import TextFileContentsManager
    shutil.copy(NOTEBOOK_DIR / "jupytext.toml", tmp_path)
    later = time.time() + 60
    for source in SOURCES:
        shutil.copy(source, tmp_path)
        shutil.copy(build.stored_path(source), tmp_path)
        os.utime(tmp_path / build.stored_path(source).name, (later, later))
    manager = TextFileContentsManager(root_dir=str(tmp_path))
    for source in SOURCES:
        stored = _stored(source)
        for name in (source.name, build.stored_path(source).name):
            nb = manager.get(name, type="notebook")["content"]
            assert [c.source for c in nb.cells] == [c.source for c in stored.cells], name
            assert [c.get("outputs") for c in nb.cells] == [c.get("outputs") for c in stored.cells], name
        manager.save(manager.get(source.name, type="notebook"), source.name)
        assert (tmp_path / source.name).read_text(encoding="utf-8") == source.read_text(encoding="utf-8"), (
            f"saving {source.name} from Jupyter rewrites it: keep the source in jupytext's own layout")


def test_sources_carry_no_jupytext_version():
    for source in SOURCES:
        assert "jupytext_version:" not in source.read_text(encoding="utf-8"), (
            f"{source.name}: the jupytext version changes with every release; notebooks/jupytext.toml keeps it out")


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_notebook_runs_top_to_bottom_without_error(source, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")  # the kernel inherits it: no window, no blocking
    nb = build.read_source(source)
    start = time.perf_counter()
    build.execute(nb, CELL_TIMEOUT)  # raises CellExecutionError on the first cell that fails
    seconds = time.perf_counter() - start
    RUN_TIMES[source.stem] = seconds
    print(f"\n{source.stem}: ran in {seconds:.1f} s")
    assert all(c.execution_count is not None for c in _code(nb))
    errors = [o for c in _code(nb) for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert build.machine_paths(build.tidy(nb)) == [], f"{source.name}: an absolute path survives the scrub"


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_notebook_links_its_derivations_and_they_exist(source):
    nb = jupytext.read(source)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    links = [part.split(")")[0] for part in text.split("](")[1:]]
    derivations = [link for link in links if link.startswith("../derivations/")]
    assert derivations, f"{source.name} links no derivation"
    for link in derivations:
        file, _, anchor = link.partition("#")
        target = (NOTEBOOK_DIR / file).resolve()
        assert target.is_file(), f"{source.name} links a missing page {file}"
        if anchor:
            assert f'id="{anchor}"' in target.read_text(encoding="utf-8"), f"{source.name}: no anchor {link}"


def test_notebooks_use_only_the_public_api():
    import tinyvae
    allowed_modules = {"data", "train", "evaluate", "plots", "exercises", "pretrained"}
    for source in SOURCES:
        nb = jupytext.read(source)
        for cell in _code(nb):
            src = cell.source
            for token in src.replace("(", " ").replace(",", " ").split():
                if token.startswith("tinyvae."):
                    name = re.match(r"\w*", token.split(".")[1]).group()  # "tinyvae.SemiConfig's" names SemiConfig
                    assert name in tinyvae.__all__ or name in allowed_modules, f"{source.name}: {token}"
            for line in src.splitlines():
                if line.startswith("from tinyvae import"):
                    names = {n.strip() for n in line.split("import", 1)[1].split(",")}
                    assert names <= set(tinyvae.__all__) | allowed_modules, f"{source.name}: {line}"


def teardown_module(module):
    if RUN_TIMES:
        print("\nnotebook run times: " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(RUN_TIMES.items())))
        if os.environ.get("TINYVAE_NOTEBOOK_TIMES"):
            Path(os.environ["TINYVAE_NOTEBOOK_TIMES"]).write_text(json.dumps(RUN_TIMES, indent=1))


def _stored_text(name):
    stored = json.loads((NOTEBOOK_DIR / name).read_text(encoding="utf-8"))
    return "".join("".join(o.get("text", "")) for c in stored["cells"] for o in c.get("outputs", []))


def test_flows_notebook_quotes_notebook_06s_stored_gap_figures():
    """Notebook 12 compares its approximation gap with notebook 06's stored one: the quoted figures are those runs'."""
    found = re.search(r"of the fitted q (-[\d.]+) \(after 150 steps -[\d.]+\); log p\(x\) ≈ (-[\d.]+)\s+"
                      r"amortization gap [\d.]+ nats, approximation gap ([\d.]+) nats", _stored_text("06_latent_space.ipynb"))
    assert found, "notebook 06's stored output has no gap line"
    fit06, logp06, approx06 = found.groups()
    text12 = _stored_text("12_flows.ipynb")
    found = re.search(r"log p\(x\) estimated with the Gaussian as the proposal (-[\d.]+), with the flow (-[\d.]+), "
                      r"the larger of the two per digit (-[\d.]+)", text12)
    assert found, "notebook 12's stored output has no log p(x) line"
    gauss12, flow12, max12 = (float(v) for v in found.groups())
    fit12 = re.search(r"of the fitted diagonal Gaussian (-[\d.]+);", text12).group(1)
    approx12 = re.search(r"approximation gap: diagonal Gaussian ([\d.]+) nats", text12).group(1)
    source = (NOTEBOOK_DIR / "12_flows.py").read_text(encoding="utf-8")
    page = " ".join(" ".join(line[2:] for line in source.splitlines() if line.startswith("# ")).split())
    assert f"approximation gap, {approx12} nats, is larger than notebook 06's {approx06} nats" in page
    assert f"(−{fit12.lstrip('-')} here, −{fit06.lstrip('-')} in notebook 06's stored run)" in page
    assert f"−{-max12:.2f} here against −{logp06.lstrip('-')} there" in page
    assert f"Of those {max12 - float(logp06):.2f} nats, the Gaussian proposal here gives {gauss12 - float(logp06):.2f}" in page
    assert f"the flow proposal {flow12 - gauss12:.2f} more (−{-flow12:.2f}), and the larger-of-two {max12 - flow12:.2f} more" in page
