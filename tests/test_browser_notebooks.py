"""The browser branches of the notebooks, run here with the browser's platform name.

A notebook that does less in the browser (JupyterLite, Pyodide: ``sys.platform == "emscripten"``) says
so in a Markdown cell and prints a line starting ``in the browser:`` there, and checks the figures it
prints with the same ``assert``s as the full run. These tests run each such source top to bottom in this
process with the platform name set as Pyodide sets it and no thread allowed to start (as there), so
the browser run's asserts are checked on every test run; ``tests/test_lite.py`` runs them in Chromium.
A notebook whose models ``notebooks/browser_models.py`` declares loads them in the browser: here, as in
the site's build, they are first trained natively into a scratch folder, and the notebook loads them there.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
import threading
import warnings
from pathlib import Path

import jupytext
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
BROWSER_TEST = 'sys.platform == "emscripten"'
BRANCHED = sorted(p for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.py") if BROWSER_TEST in p.read_text(encoding="utf-8"))


def test_the_notebooks_that_need_it_have_a_browser_branch():
    needed = {"01_vae_on_one_screen", "02_autoencoder_vs_vae", "06_latent_space", "09_questions",
              "11_conditional_and_semi_supervised", "12_flows"}
    assert needed <= {p.stem for p in BRANCHED}


def browser_models():
    """notebooks/browser_models.py, as the notebooks import it from their folder."""
    spec = importlib.util.spec_from_file_location("browser_models", NOTEBOOK_DIR / "browser_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("source", BRANCHED, ids=[p.stem for p in BRANCHED])
def test_browser_branch_says_what_it_changes_and_its_asserts_hold(source, monkeypatch, tmp_path):
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 (imported before the platform name changes)
    from tinyvae import backend  # noqa: PLC0415

    def refuse(self):
        raise RuntimeError("can't start new thread")

    models = browser_models()
    if source.stem in models.NOTEBOOKS:  # the checkpoints the site's build makes, trained natively here
        models.models(source.stem).make(tmp_path, log=lambda *_: None)
    monkeypatch.setattr(models, "FOLDER", tmp_path)
    monkeypatch.setitem(sys.modules, "browser_models", models)
    nb = jupytext.read(source)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "**In the browser**" in markdown, f"{source.name}: no Markdown cell says what the browser run changes"
    monkeypatch.setattr(sys, "platform", "emscripten")
    monkeypatch.setattr(threading.Thread, "start", refuse)
    monkeypatch.setattr(backend, "_workers", [])  # workers started earlier in this process are live threads
    monkeypatch.chdir(NOTEBOOK_DIR)
    monkeypatch.delenv("TINYVAE_RETRAIN", raising=False)
    namespace, printed = {"__name__": "__main__"}, io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            code = "\n".join(line for line in cell.source.split("\n") if not line.startswith("%"))
            exec(compile(code, f"{source.name}, cell {index}", "exec"), namespace)  # an assert that fails raises here
            plt.close("all")
    assert any(line.startswith("in the browser:") for line in printed.getvalue().split("\n")), \
        f"{source.name} printed no line saying what the browser run changes"
