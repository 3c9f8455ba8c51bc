"""The browser edition of the site: every notebook in JupyterLite, run by Pyodide (Python in WebAssembly).

    python docs/lite.py fetch          # once, with a network: the Pyodide core (npm) and the wheels (pip)
    python docs/build_site.py --lite   # offline: the site, with the app in site/lite/

What the app is made of, and where each piece comes from:

* JupyterLite itself: the Python packages ``jupyterlite-core`` and ``jupyterlite-pyodide-kernel``
  (``pip install -e ".[lite]"``), which build the app from the notebooks.
* The Pyodide core (the interpreter, its standard library): the npm package ``pyodide@314.0.6``,
  fetched by ``npm pack`` into the cache folder and checked against its sha256 here.
* WebAssembly wheels of NumPy, Matplotlib and Matplotlib's compiled dependencies: NumPy and Matplotlib
  publish none on PyPI. The one registry source found is the PyPI wheel of ``open-webui==0.12.4``,
  which bundles Pyodide's own wheels (built for Pyodide 314, ABI ``pyemscripten_2026_0``); it is
  fetched by hash and only the wheels named in ``FROM_BUNDLE`` are taken out of it.
* Pure-Python wheels for the kernel (IPython and its dependencies) and for tinyvae (tqdm): PyPI, at the
  versions Pyodide 314.0.6 lists, pinned by hash in ``docs/lite/requirements.txt``.
* tinyvae: a wheel built here from the checkout (it carries MNIST; the app holds no other copy).
* The notebooks' models (``tinyvae-notebook-models``): trained natively by this build from
  ``notebooks/browser_models.py`` and shipped with it (``docs/lite_models.py``).

The app's ``pyodide-lock.json`` lists exactly the wheels shipped, under Pyodide's own package names;
the kernel loads packages from it only (its PyPI fallback is off) and preloads tinyvae at start.
The cache folder is ``build/lite-cache/`` (``TINYVAE_LITE_CACHE`` to move it).
"""

from __future__ import annotations

import argparse
import email.parser
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

import lite_models  # the notebooks' models, trained natively by the build

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
REQUIREMENTS = DOCS / "lite" / "requirements.txt"
PYODIDE_NPM = "pyodide@314.0.6"
PYODIDE_TGZ = ("pyodide-314.0.6.tgz", "d78ac549b28a2a58600cd06f44e017024151775f8c6b2d73fab1475400d38ea2")
PYODIDE_CORE = ["pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide.js"]
BUNDLE = "open_webui-0.12.4-py3-none-any.whl"
BUNDLE_FOLDER = "open_webui/frontend/pyodide/"
FROM_BUNDLE = [  # the bundle's wheels that NumPy, Matplotlib, the kernel (micropip) and tinyvae need
    "numpy-2.4.3-cp314-cp314-pyemscripten_2026_0_wasm32.whl",
    "matplotlib-3.10.8-cp314-cp314-pyemscripten_2026_0_wasm32.whl",
    "contourpy-1.3.3-cp314-cp314-pyemscripten_2026_0_wasm32.whl",
    "kiwisolver-1.5.0-cp314-cp314-pyemscripten_2026_0_wasm32.whl",
    "pillow-12.2.0-cp314-cp314-pyemscripten_2026_0_wasm32.whl",
    "cycler-0.12.1-py3-none-any.whl",
    "fonttools-4.62.1-py3-none-any.whl",
    "packaging-26.1-py3-none-any.whl",
    "pyparsing-3.3.2-py3-none-any.whl",
    "python_dateutil-2.9.0.post0-py2.py3-none-any.whl",
    "pytz-2026.1.post1-py2.py3-none-any.whl",
    "six-1.17.0-py2.py3-none-any.whl",
    "micropip-0.11.1-py3-none-any.whl",
    "threadpoolctl-3.6.0-py3-none-any.whl",
]
# Packages the kernel loads at start (besides its own shims, which JupyterLite serves): preloaded
# together with tinyvae, in one round of downloads.
PRELOAD = ["micropip", "tinyvae", "ipython", "jedi", "comm", "matplotlib-inline"]
KERNEL_PLUGIN = "@jupyterlite/pyodide-kernel-extension:kernel"


def cache_dir():
    return Path(os.environ.get("TINYVAE_LITE_CACHE") or ROOT / "build" / "lite-cache")


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pinned():
    """{wheel project name (normalized): (version, sha256)} from docs/lite/requirements.txt."""
    pins = {}
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)\s+--hash=sha256:([0-9a-f]{64})", line)
        if m:
            pins[normalize(m.group(1))] = (m.group(2), m.group(3))
    return pins


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


# --- fetching (the only step that uses the network) ------------------------------------------------

def fetch(cache):
    """npm pack the Pyodide core and pip download the pinned wheels into ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["npm", "pack", PYODIDE_NPM, "--pack-destination", str(cache)],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"lite fetch: npm pack {PYODIDE_NPM} failed:\n{done.stderr[-4000:]}")
    # --ignore-requires-python: the wheels are for the browser's Python (3.14), not this one
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
                    "--only-binary=:all:", "--ignore-requires-python", "-r", str(REQUIREMENTS),
                    "-d", str(cache / "wheels")], check=True)
    problems = missing_pieces(cache)
    if problems:
        raise SystemExit("lite fetch: " + "; ".join(problems))
    print(f"lite fetch: the Pyodide core and {len(pinned())} wheels are in {cache}")


def missing_pieces(cache):
    """What the browser build lacks, one sentence each (empty when it can build)."""
    problems = []
    for module, extra in (("jupyterlite_core", "lite"), ("jupyterlite_pyodide_kernel", "lite")):
        try:
            __import__(module)
        except ImportError:
            problems.append(f"{module} is not installed (pip install -e '.[{extra}]')")
    if not (cache / PYODIDE_TGZ[0]).is_file():
        problems.append(f"{cache / PYODIDE_TGZ[0]} is missing (python docs/lite.py fetch)")
    for name, (version, _) in pinned().items():
        if not _cached_wheel(cache, name, version):
            problems.append(f"the wheel {name}=={version} is not in {cache / 'wheels'} (python docs/lite.py fetch)")
    return problems


def _cached_wheel(cache, name, version):
    for path in (cache / "wheels").glob("*.whl"):
        parts = path.name.split("-")
        if normalize(parts[0]) == name and parts[1] == version:
            return path
    return None


def _checked(path, expected):
    got = sha256(path)
    if got != expected:
        raise SystemExit(f"build_site --lite: {path} has sha256 {got}, expected {expected}; "
                         f"delete it and run python docs/lite.py fetch")
    return path


# --- the wheels and their lock ---------------------------------------------------------------------

def collect_wheels(cache, dest):
    """Copy every shipped wheel into ``dest``; return their paths. Each is checked against its pin."""
    dest.mkdir(parents=True, exist_ok=True)
    pins = pinned()
    wheels = []
    bundle_pin = pins.pop("open-webui")
    bundle = _checked(_cached_wheel(cache, "open-webui", bundle_pin[0]), bundle_pin[1])
    with zipfile.ZipFile(bundle) as archive:
        for name in FROM_BUNDLE:
            target = dest / name
            with archive.open(BUNDLE_FOLDER + name) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            wheels.append(target)
    for name, (version, digest) in pins.items():
        source = _checked(_cached_wheel(cache, name, version), digest)
        wheels.append(Path(shutil.copy2(source, dest / source.name)))
    return wheels


def build_tinyvae_wheel(dest):
    """``pip wheel`` of the checkout, offline (no build isolation: setuptools comes from this environment)."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                               "--no-index", "-w", tmp, str(ROOT)], capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"build_site --lite: the tinyvae wheel did not build:\n{done.stderr[-4000:]}")
        built = next(Path(tmp).glob("tinyvae-*.whl"))
        return Path(shutil.copy2(built, dest / built.name))


def metadata(wheel):
    """The wheel's METADATA headers (name, version, requirements, licence)."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if re.match(r"^[^/]+\.dist-info/METADATA$", n))
        return email.parser.Parser().parsestr(archive.read(name).decode("utf-8"))


def licence(meta):
    """The licence a wheel declares: its License-Expression, its License field, or its classifiers."""
    expression = meta.get("License-Expression")
    if expression:
        return expression.strip()
    text = (meta.get("License") or "").strip()
    if text and "\n" not in text and len(text) < 60:
        return text
    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    return ", ".join(classifiers)


def licence_of(wheel):
    """``licence(metadata)``, or the first line of the licence file the wheel carries."""
    declared = licence(metadata(wheel))
    if declared:
        return declared
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if re.match(r"^[^/]+\.dist-info/(licenses/)?(LICEN[CS]E|COPYING)[^/]*$", name):
                first = next((line.strip() for line in archive.read(name).decode("utf-8", "replace").splitlines()
                              if line.strip()), "")
                return f"{first} ({name.split('/')[-1]} in the wheel)"
    return "none declared"


def _imports(wheel):
    with zipfile.ZipFile(wheel) as archive:
        tops = {n.split("/")[0] for n in archive.namelist() if "/" in n and not n.split("/")[0].endswith((".dist-info", ".data"))}
        tops |= {n[:-3] for n in archive.namelist() if "/" not in n and n.endswith(".py")}
    return sorted(t for t in tops if t.isidentifier())


def write_lock(wheels, core_lock, dest):
    """``pyodide-lock.json`` for exactly ``wheels``: keys are Pyodide's package names, and each
    dependency names such a key (Pyodide's lock writes ``prompt_toolkit`` where its key is
    ``prompt-toolkit``, which leaves the kernel waiting for ever)."""
    known = {normalize(name): name for name in core_lock["packages"]}
    entries = {}
    for wheel in wheels:
        meta = metadata(wheel)
        name = known.get(normalize(meta["Name"]), normalize(meta["Name"]))
        entries[name] = {"name": name, "version": meta["Version"], "file_name": wheel.name,
                         "install_dir": "site", "sha256": sha256(wheel), "package_type": "package",
                         "imports": _imports(wheel), "unvendored_tests": False,
                         "depends": _requirements(meta)}
    keys = {normalize(k): k for k in entries}
    for entry in entries.values():
        missing = [d for d in entry["depends"] if normalize(d) not in keys]
        if missing:
            raise SystemExit(f"build_site --lite: {entry['name']} needs {missing}, which the app does not ship")
        entry["depends"] = sorted(keys[normalize(d)] for d in entry["depends"])
    lock = {"info": core_lock["info"], "packages": dict(sorted(entries.items()))}
    (dest / "pyodide-lock.json").write_text(json.dumps(lock, indent=1) + "\n", encoding="utf-8")
    return lock


def _requirements(meta):
    """The wheel's unconditional requirements, and those for the browser (sys_platform == "emscripten")."""
    names = []
    for requirement in meta.get_all("Requires-Dist") or []:
        spec, _, marker = requirement.partition(";")
        name = re.match(r"\s*([A-Za-z0-9_.-]+)", spec).group(1)
        if marker.strip() and not _marker_holds(marker):
            continue
        if normalize(name) not in {normalize(n) for n in names}:
            names.append(name)
    return names


def _marker_holds(marker):
    """Whether an environment marker holds in the browser (Pyodide 314: Python 3.14, emscripten)."""
    from packaging.markers import Marker  # noqa: PLC0415 (pip's and setuptools' dependency, always there)

    environment = {"sys_platform": "emscripten", "platform_system": "Emscripten", "os_name": "posix",
                   "python_version": "3.14", "python_full_version": "3.14.2", "platform_machine": "wasm32",
                   "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
    return Marker(marker).evaluate(environment)


# --- the app ---------------------------------------------------------------------------------------

def build(out, work, notebooks, *, cache=None):
    """Build the app into ``out`` (e.g. site/lite); return a summary dict (size, seconds, packages)."""
    cache = cache or cache_dir()
    problems = missing_pieces(cache)
    if problems:
        raise SystemExit("build_site --lite: the browser edition cannot be built: " + "; ".join(problems))
    start = time.perf_counter()
    out, lite_dir = Path(out).resolve(), Path(work).resolve() / "lite-src"
    shutil.rmtree(lite_dir, ignore_errors=True)
    pyodide = lite_dir / "static" / "pyodide"
    pyodide.mkdir(parents=True)
    with tarfile.open(_checked(cache / PYODIDE_TGZ[0], PYODIDE_TGZ[1])) as tgz:
        core_lock = json.load(tgz.extractfile("package/pyodide-lock.json"))
        core_licence = json.load(tgz.extractfile("package/package.json"))["license"]
        for name in PYODIDE_CORE:
            with tgz.extractfile(f"package/{name}") as src, open(pyodide / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
    wheels = collect_wheels(cache, pyodide) + [build_tinyvae_wheel(pyodide), lite_models.build_wheel(pyodide, work)]
    lock = write_lock(wheels, core_lock, pyodide)
    contents = lite_dir / "notebooks"
    contents.mkdir()
    for notebook in notebooks:
        shutil.copy2(notebook, contents / Path(notebook).name)
    settings = {KERNEL_PLUGIN: {"disablePyPIFallback": True,
                                "loadPyodideOptions": {"packages": PRELOAD}}}
    config = {"jupyter-lite-schema-version": 0,
              "jupyter-config-data": {"appName": "tinyvae in the browser", "litePluginSettings": settings,
                                      "disabledExtensions": ["@jupyterlite/application-extension:service-worker"]}}
    (lite_dir / "jupyter-lite.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    done = subprocess.run([_jupyter_lite(), "build", "--lite-dir", str(lite_dir), "--contents", str(contents),
                           "--output-dir", str(out), "--no-sourcemaps", "--apps", "lab", "--apps", "notebooks",
                           "--no-unused-shared-packages"],
                          cwd=lite_dir, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"build_site --lite: jupyter lite build failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    seconds = time.perf_counter() - start
    ours = {"tinyvae": "this checkout", "tinyvae-notebook-models": "trained by this build (notebooks/browser_models.py)"}
    packages = [{"name": e["name"], "version": e["version"], "file": e["file_name"],
                 "licence": licence_of(pyodide / e["file_name"]),
                 "source": "open-webui 0.12.4's bundle" if e["file_name"] in FROM_BUNDLE else ours.get(e["name"], "PyPI")}
                for e in lock["packages"].values()]
    apps = [{"name": name, "version": importlib.metadata.version(name), "licence": licence(importlib.metadata.metadata(name))}
            for name in ("jupyterlite-core", "jupyterlite-pyodide-kernel")]
    summary = {"seconds": round(seconds, 1), "bytes": size, "packages": packages, "apps": apps,
               "pyodide": PYODIDE_NPM.split("@")[1], "pyodide_licence": core_licence,
               "notebooks": [Path(n).name for n in notebooks]}
    (out / "tinyvae-lite.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(f"build_site: the browser edition ({len(notebooks)} notebooks, {len(packages)} wheels, "
          f"{size / 1e6:.0f} MB) into {out} in {seconds:.1f} s")
    return summary


RESULTS = ROOT / "benchmarks" / "results"  # tests/test_lite.py's all-notebooks command writes DATE-browser-times.json
LIMITS = {"01_vae_on_one_screen": 90}  # seconds a notebook may take in the browser, its first load included
LIMIT = 180                             # ... for every other notebook


def limit(notebook):
    """The seconds ``notebook`` may take in the browser, from opening its page to its last cell."""
    return LIMITS.get(notebook, LIMIT)


def browser_times():
    """The newest ``benchmarks/results/*-browser-times.json`` (None where none was measured)."""
    found = sorted(RESULTS.glob("*-browser-times.json"))
    return json.loads(found[-1].read_text(encoding="utf-8")) if found else None


def timings_table(timings):
    """The browser-edition page's table of the times measured per notebook, under the run's note."""
    rows = ["| notebook | first cell done (s) | whole notebook (s) | limit (s) | result |",
            "| --- | ---: | ---: | ---: | --- |"]
    for t in timings["runs"]:
        if not t["ok"]:
            result = f"failed: {t.get('failed', 'see the run')}"
        elif t["total_s"] <= t["limit_s"]:
            result = "ran to the end within the limit"
        else:
            result = f"ran to the end, {t['total_s'] - t['limit_s']:.0f} s over the limit"
        first = "—" if t["first_cell_s"] is None else f"{t['first_cell_s']:.0f}"
        total = "—" if t["total_s"] is None else f"{t['total_s']:.0f}"
        rows.append(f"| {t['notebook']} | {first} | {total} | {t['limit_s']:.0f} | {result} |")
    return f"{timings['note']}\n\n" + "\n".join(rows)


def fill_page(text, summary):
    """docs/browser.md with its two generated tables: the packages the app redistributes (from the
    build's ``summary``) and the browser times measured per notebook (``browser_times()``)."""
    if summary:
        rows = ["| package | version | licence | from |", "| --- | --- | --- | --- |",
                f"| Pyodide (the Python runtime) | {summary['pyodide']} | {summary.get('pyodide_licence', '')} | npm |"]
        rows += [f"| {a['name']} (the app) | {a['version']} | {a['licence']} | PyPI |" for a in summary.get("apps", [])]
        rows += [f"| {p['name']} | {p['version']} | {p['licence']} | {p['source']} |" for p in summary["packages"]]
        packages = (f"This site's browser edition is {summary['bytes'] / 1e6:.0f} MB; it took "
                    f"{summary['seconds']:.0f} s to build. It redistributes the packages below, each "
                    "licence as the package's own metadata declares it; the app's front end lists the "
                    "JavaScript packages it bundles, with theirs, in its `third-party-licenses.json` files."
                    "\n\n" + "\n".join(rows))
    else:
        packages = ("This copy of the site was built without the browser edition "
                    "(`python docs/build_site.py --lite` builds it).")
    timings = browser_times()
    table = timings_table(timings) if timings else "No browser times have been measured yet."
    return text.replace("<!-- lite: packages -->", packages).replace("<!-- lite: timings -->", table)


def _jupyter_lite():
    here = Path(sys.executable).parent / "jupyter-lite"
    return str(here) if here.exists() else (shutil.which("jupyter-lite") or "jupyter-lite")


def main(argv=None):
    parser = argparse.ArgumentParser(description="The browser edition's pieces: python docs/lite.py fetch")
    parser.add_argument("command", choices=["fetch", "check"],
                        help="fetch: npm pack the Pyodide core and pip download the wheels (network); "
                             "check: say what the browser build lacks")
    args = parser.parse_args(argv)
    cache = cache_dir()
    if args.command == "fetch":
        fetch(cache)
    else:
        problems = missing_pieces(cache)
        print("\n".join(problems) or f"lite: every piece is in {cache}")
        raise SystemExit(1 if problems else 0)


if __name__ == "__main__":
    main()
