"""The browser edition's notebook models: trained natively at build time, shipped as one wheel.

``notebooks/browser_models.py`` declares the models that notebooks train (the notebooks import it from
their folder). Here every declaration is trained natively (``Models.make``) and the module with its
checkpoints is packed into the wheel ``tinyvae-notebook-models``, which ``lite.build`` lists in the app's
lock like every other package: in the browser, a notebook's ``import browser_models`` loads it, and
``fit`` there loads each checkpoint instead of training. Nothing binary is stored in the repository, and
a checkpoint can never be older than the declaration it was made from. Any model that cannot be made
stops the build.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import shutil
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "notebooks" / "browser_models.py"
NAME, VERSION = "tinyvae_notebook_models", "1.0"
LICENCE = "MIT"  # the project's


def declarations():
    """notebooks/browser_models.py, imported from its file (notebooks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("browser_models", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_checkpoints(folder, log=print):
    """Every declared model of every notebook, trained natively into ``folder``; returns the paths."""
    module = declarations()
    paths = []
    for notebook in module.NOTEBOOKS:
        start = time.perf_counter()
        try:
            paths += module.models(notebook).make(folder, log=lambda *_: None)
        except Exception as err:  # the build must not ship an app that lacks a model: say which, and stop
            raise SystemExit(f"build_site --lite: the models of {notebook} (notebooks/browser_models.py) could not "
                             f"be trained: {type(err).__name__}: {err}") from err
        log(f"build_site: trained {notebook}'s models for the browser in {time.perf_counter() - start:.0f} s")
    return paths


def build_wheel(dest, work, log=print):
    """Train the models into ``work`` and write the wheel into ``dest``; returns its path."""
    staging = Path(work) / "notebook-models"
    shutil.rmtree(staging, ignore_errors=True)
    checkpoints = staging / "tinyvae_notebook_checkpoints"
    make_checkpoints(checkpoints, log)
    files = {"browser_models.py": MODULE.read_bytes()}
    files |= {p.relative_to(staging).as_posix(): p.read_bytes() for p in sorted(checkpoints.rglob("*.npz"))}
    info = f"{NAME}-{VERSION}.dist-info"
    files[f"{info}/METADATA"] = (f"Metadata-Version: 2.1\nName: {NAME.replace('_', '-')}\nVersion: {VERSION}\n"
                                 f"Summary: the notebooks' models, trained natively for the browser edition\n"
                                 f"License-Expression: {LICENCE}\nRequires-Dist: tinyvae\nRequires-Dist: numpy\n").encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: tinyvae docs/lite_models.py\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = [f"{name},sha256={_digest(content)},{len(content)}" for name, content in files.items()]
    files[f"{info}/RECORD"] = ("\n".join(record + [f"{info}/RECORD,,"]) + "\n").encode()
    wheel = Path(dest) / f"{NAME}-{VERSION}-py3-none-any.whl"
    tmp = wheel.with_name(f".{wheel.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), content,
                             compress_type=zipfile.ZIP_DEFLATED)
    tmp.replace(wheel)
    return wheel


def _digest(content):
    return base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()


if __name__ == "__main__":  # python docs/lite_models.py OUT: the checkpoints alone, e.g. to inspect them
    if len(sys.argv) != 2:
        raise SystemExit("usage: python docs/lite_models.py OUT_FOLDER")
    for path in make_checkpoints(Path(sys.argv[1])):
        print(path)
