"""Every tutorial notebook runs top to bottom without error, headless, on the CPU.

Each notebook is executed with nbclient in a python3 kernel, in the notebooks/ folder, with
MPLBACKEND=Agg; a cell may take up to 300 s. The run time of each notebook is printed (see it with
``pytest -s tests/test_notebooks.py``) and collected in a summary at the end of the session.
The stored notebooks must also be exactly what ``notebooks/build_notebooks.py`` writes: no outputs,
no execution counts, so diffs stay small.
"""

import importlib.util
import json
import os
import time
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT = 300
RUN_TIMES = {}

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def _build_script():
    spec = importlib.util.spec_from_file_location("build_notebooks", NOTEBOOK_DIR / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_are_at_least_six_notebooks():
    assert len(NOTEBOOKS) >= 6, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom_without_error(path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")  # the kernel inherits it: no window, no blocking
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first cell that fails
    seconds = time.perf_counter() - start
    RUN_TIMES[path.name] = seconds
    print(f"\n{path.name}: ran in {seconds:.1f} s")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_notebook_has_no_outputs_and_matches_the_build_script(path):
    raw = json.loads(path.read_text(encoding="utf-8"))
    for cell in raw["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{path.name}: clear the outputs"
    build = _build_script()
    assert path.name in build.NOTEBOOKS, f"{path.name} is not written by build_notebooks.py"
    assert path.read_text(encoding="utf-8") == build.render(path.name, build.NOTEBOOKS[path.name]), (
        f"{path.name} differs from what build_notebooks.py writes: edit the script and rebuild")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_links_its_derivations_and_they_exist(path):
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    links = [part.split(")")[0] for part in text.split("](")[1:]]
    derivations = [link for link in links if link.startswith("../derivations/")]
    assert derivations, f"{path.name} links no derivation"
    for link in derivations:
        file, _, anchor = link.partition("#")
        target = (NOTEBOOK_DIR / file).resolve()
        assert target.is_file(), f"{path.name} links a missing page {file}"
        if anchor:
            assert f'id="{anchor}"' in target.read_text(encoding="utf-8"), f"{path.name}: no anchor {link}"


def test_notebooks_use_only_the_public_api():
    import tinyvae
    allowed_modules = {"data", "train", "evaluate", "plots", "exercises"}
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            src = cell.source
            for token in src.replace("(", " ").replace(",", " ").split():
                if token.startswith("tinyvae."):
                    name = token.split(".")[1]
                    assert name in tinyvae.__all__ or name in allowed_modules, f"{path.name}: {token}"
            for line in src.splitlines():
                if line.startswith("from tinyvae import"):
                    names = {n.strip() for n in line.split("import", 1)[1].split(",")}
                    assert names <= set(tinyvae.__all__) | allowed_modules, f"{path.name}: {line}"


def teardown_module(module):
    if RUN_TIMES:
        print("\nnotebook run times: " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(RUN_TIMES.items())))
        if os.environ.get("TINYVAE_NOTEBOOK_TIMES"):
            Path(os.environ["TINYVAE_NOTEBOOK_TIMES"]).write_text(json.dumps(RUN_TIMES, indent=1))
