"""Build the tinyvae website into ``site/`` (open ``site/index.html``), offline.

    python docs/build_site.py [--out site] [--lite]

The site is made with Sphinx, MyST (Markdown) and MyST-NB (notebooks, shown with their stored
outputs, never executed here), MathJax served from the site itself, and ``docs/sidebyside.py`` for
the one thing no tool does: each ``tinyvae`` module beside the equations its lines compute.

It has the repository's layout, so a link between pages is the link between files with ``.html`` for
the suffix: ``derivations/kl.md`` becomes ``derivations/kl.html`` (``#eq:kl-closed-form`` included),
``notebooks/02_autoencoder_vs_vae.ipynb`` becomes ``notebooks/02_autoencoder_vs_vae.html`` and
``tinyvae/prob/losses.py`` becomes the side-by-side page ``tinyvae/prob/losses.html``. Steps:

1. stage: write the Markdown Sphinx reads into ``build/site-src/`` (links rewritten; "computed in"
   links after each equation; one page per module; the landing page ``index.md``);
2. run Sphinx (configuration ``docs/conf.py``) into ``--out``.

Any attempt to open a network connection during the build is an error: nothing is downloaded.

``--lite`` also builds the browser edition (``docs/lite.py``): every notebook in JupyterLite, in
``--out``'s ``lite/`` folder, each notebook page linking to its copy there. It needs the ``lite`` extra
and ``python docs/lite.py fetch`` (once, with a network), and fails saying which piece is missing;
without ``--lite`` the rest of the site is built and the build says that it skipped the app.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import posixpath
import re
import shutil
import socket
import sys
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS))

import lite  # noqa: E402  (docs/ is not a package)
import sidebyside  # noqa: E402

LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(([^()\s]+)\)")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


# --- the offline guard ---------------------------------------------------------------------------

def _is_local(host):
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def forbid_network():
    """From now on, any connection or name lookup beyond this machine raises RuntimeError.

    The site must build offline, so a tool that tries to download a theme, a template or a script
    fails loudly here instead of working only where there is a network.
    """
    def hook(event, args):
        if event == "socket.connect":
            sock, address = args
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
                raise RuntimeError(f"the site build must not use the network: it tried to connect to {address}")
        elif event == "socket.getaddrinfo" and not _is_local(args[0]):
            raise RuntimeError(f"the site build must not use the network: it tried to look up {args[0]!r}")
    sys.addaudithook(hook)


# --- what becomes a page -------------------------------------------------------------------------

class Sources:
    """The repository files that become pages, and where each one's page is."""

    def __init__(self, root):
        self.root = Path(root)
        self.derivations = sorted(p.relative_to(self.root).as_posix() for p in (self.root / "derivations").glob("*.md"))
        self.notebooks = sorted(p.relative_to(self.root).as_posix() for p in (self.root / "notebooks").glob("*.ipynb"))
        self.notebook_readme = ["notebooks/README.md"] if (self.root / "notebooks/README.md").is_file() else []
        docs = sorted(p.relative_to(self.root).as_posix() for p in (self.root / "docs").glob("*.md"))
        self.docs = sorted(docs, key=lambda p: p != "docs/start-here.md")  # Start here first
        self.modules = sorted(p.relative_to(self.root).as_posix() for p in (self.root / "tinyvae").rglob("*.py")
                              if "__pycache__" not in p.parts)
        self.pages = {path: sidebyside.site_path(path)
                      for path in self.docs + self.derivations + self.notebook_readme + self.notebooks + self.modules}
        self.pages["README.md"] = "index.html"
        # a link to a folder goes to the page that introduces it
        self.folders = {"derivations": "derivations/README.html", "notebooks": "notebooks/README.html",
                        "tinyvae": "tinyvae/__init__.html", "": "index.html"}
        self.files = {"docs/images"}  # copied into the site as they are (pictures)

    def target(self, resolved):
        """The site path of the repository path ``resolved``, or None when the site does not hold it."""
        resolved = resolved.rstrip("/")
        if resolved in self.pages:
            return self.pages[resolved]
        if resolved in self.folders and self.folders[resolved] in self.pages.values():
            return self.folders[resolved]
        if any(resolved.startswith(folder + "/") for folder in self.files) and (self.root / resolved).is_file():
            return resolved
        return None


def rewrite_links(text, source, page, sources, unlinked=None):
    """Markdown ``text`` written at ``source`` (a repository path), moved to the site page ``page``.

    A relative link to a file or folder that the site holds points at its page there; one to a file
    the site does not hold (a test, a benchmark result) keeps its words and loses the link, recorded
    in ``unlinked``. Links in code (fenced blocks, code spans), web links and ``#fragment`` links are
    left alone.
    """
    def fix(match):
        bang, words, url = match.groups()
        if SCHEME.match(url) or url.startswith("#"):
            return match.group(0)
        path, _, fragment = url.partition("#")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(source), path))
        resolved = "" if resolved == "." else resolved
        target = sources.target(resolved)
        if target is None:
            if unlinked is not None:
                unlinked.append(f"{source}: {url}")
            return words if not bang else f"({words})"
        if bang:  # a picture: Sphinx copies it, the path is relative to the staged page
            return f"![{words}]({sidebyside.relative_url(target, page)})"
        return f"[{words}]({sidebyside.relative_url(target + ('#' + fragment if fragment else ''), page)})"

    def fix_prose(chunk):  # code spans are protected from the link pattern, then put back
        spans = []
        protected = CODE_SPAN.sub(lambda m: spans.append(m.group(0)) or f"\x00{len(spans) - 1}\x00", chunk)
        return re.sub(r"\x00(\d+)\x00", lambda m: spans[int(m.group(1))], LINK.sub(fix, protected))

    out, prose, fence = [], [], None
    for line in text.split("\n"):
        opening = FENCE.match(line)
        if fence is None and opening:
            if prose:
                out.append(fix_prose("\n".join(prose)))
            prose, fence = [], opening.group(1)
            out.append(line)
        elif fence is not None:
            if line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
                fence = None
            out.append(line)
        else:
            prose.append(line)
    if prose:
        out.append(fix_prose("\n".join(prose)))
    return "\n".join(out)


# --- the landing page ----------------------------------------------------------------------------

def section(text, heading, source):
    """The body of the Markdown section whose heading matches the regex ``heading`` (up to the next
    heading of the same or a higher level)."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        m = re.match(r"^(#+)\s+(.*)$", line)
        if m and re.search(heading, m.group(2), re.I):
            level = len(m.group(1))
            end = next((j for j in range(i + 1, len(lines))
                        if re.match(rf"^#{{1,{level}}}\s", lines[j])), len(lines))
            return "\n".join(lines[i + 1:end]).strip()
    raise ValueError(f"{source} has no section whose heading matches {heading!r}; the landing page quotes it")


def first_paragraph(text):
    body = re.sub(r"^#[^\n]*\n", "", text.lstrip(), count=1).lstrip()
    return body.split("\n\n")[0].strip()


def reading_order(text):
    """The derivation pages in the order of the derivations README's "Reading order" list."""
    order = []
    for name in re.findall(r"\]\(([a-z0-9_-]+\.md)\)", section(text, r"^reading order", "derivations/README.md")):
        if name not in order:
            order.append(name)
    return order


def in_the_browser(lite_summary):
    """The landing page's section on the browser edition (None when this build has none)."""
    if not lite_summary:
        return None
    return ("## Run it in your browser\n\n"
            "Every notebook page has a link **Open in the browser**: the notebook opens in JupyterLite, "
            "Python compiled to WebAssembly (Pyodide), served from this site, with nothing to install "
            "and no account. Expect the first load to take tens of seconds (the Python runtime, NumPy, "
            "Matplotlib and tinyvae with its MNIST copy are "
            f"{lite_summary['bytes'] / 1e6:.0f} MB), and training to run many times slower than "
            "on your own machine: the browser's NumPy has no optimized matrix library. Some notebooks "
            "run a shorter version there, and say what they change. "
            "[The browser edition](docs/browser.html) gives the times measured per notebook and the "
            "packages it redistributes.")


def landing_page(sources, equations, citations, unlinked, lite_summary=None):
    root = sources.root
    readme = (root / "README.md").read_text(encoding="utf-8")
    deriv_readme = (root / "derivations/README.md").read_text(encoding="utf-8")
    nb_readme = (root / "notebooks/README.md").read_text(encoding="utf-8") if sources.notebook_readme else ""

    def moved(text, source):
        return rewrite_links(text, source, "index.html", sources, unlinked)

    order = [f"derivations/{name}" for name in reading_order(deriv_readme)]
    derivation_list = []
    for page in [p for p in order if p in sources.derivations] + \
            [p for p in sources.derivations if p not in order and not p.endswith("README.md")]:
        text = (root / page).read_text(encoding="utf-8")
        title = next((line[2:].strip() for line in text.split("\n") if line.startswith("# ")), page)
        anchors = [eq for eq in equations.values() if eq.page == page]
        computed = sum(1 for eq in anchors if any(eq.id in c.ids for c in citations))
        derivation_list.append(f"- [{title}]({sidebyside.site_path(page)}): {len(anchors)} anchored equations, "
                               f"{computed} computed by the code")
    modules = []
    for module in sources.modules:
        cited = [c for c in citations if c.module == module]
        ids = {eq_id for c in cited for eq_id in c.ids}
        note = f"{len(cited)} lines, {len(ids)} equations" if cited else "no derived equation"
        modules.append(f"- [`{module}`]({sidebyside.site_path(module)}): {note}")
    table = [line for line in nb_readme.split("\n") if line.startswith("|")]
    exercises = ""
    if nb_readme:
        try:
            exercises = moved(section(nb_readme, r"exercises", "notebooks/README.md"), "notebooks/README.md")
        except ValueError:
            exercises = ""
    exercise_nb = next((nb for nb in sources.notebooks if "exercise" in nb), None)
    exercise_link = (f"[{posixpath.basename(exercise_nb)[:-6]}]({sidebyside.site_path(exercise_nb)})"
                     if exercise_nb else "the exercises notebook")
    start = ("**New here? [Start here](docs/start-here.html)**: the first hour, the core course and the "
             "electives, each page with its reading time and what to read first."
             if "docs/start-here.md" in sources.docs else "")
    parts = [
        "# tinyvae: the math beside the code",
        moved(first_paragraph(readme), "README.md"),
        start,
        "This site holds the [derivations](derivations/README.html), each equation with the lines of "
        "code that compute it; every module of the package side by side with its equations; and the "
        "[notebooks](notebooks/README.html) with their outputs. Built by `python docs/build_site.py`.",
        in_the_browser(lite_summary),
        "## Reading order",
        moved(section(deriv_readme, r"^reading order", "derivations/README.md"), "derivations/README.md"),
        "## All derivations",
        "\n".join(derivation_list),
        "## The code beside its derivations",
        "Each line that computes a derived formula cites it as `# [eq:id]`; its page shows the equation "
        "beside the line, linked to its derivation, and the derivation links back to the line. "
        f"{len(citations)} lines of code cite {len({i for c in citations for i in c.ids})} of the "
        f"{len(equations)} anchored equations.",
        "\n".join(modules),
        "## Notebooks",
        moved("\n".join(table), "notebooks/README.md") if table else "",
        "## Exercises",
        f"Write the backward passes yourself in {exercise_link}; `tinyvae.exercises.check` says which "
        "gradient is wrong and the usual cause. The checker is "
        "[`tinyvae/learn/exercises/checker.py`](tinyvae/learn/exercises/checker.html), one file per exercise beside it, "
        "the reference answers [`tinyvae/learn/solutions.py`](tinyvae/learn/solutions.html).",
        exercises,
        "## Results",
        moved(section(readme, r"^results$", "README.md"), "README.md"),
    ]
    toc = []
    derivation_docs = ["derivations/README"] + [p[:-3] for p in order if p in sources.derivations] + \
        [p[:-3] for p in sources.derivations if p not in order and not p.endswith("README.md")]
    for caption, docs in (("Start here", [p[:-3] for p in sources.docs]),
                          ("Derivations", derivation_docs),
                          ("Notebooks", [p[:-3] for p in sources.notebook_readme] + [p[:-6] for p in sources.notebooks]),
                          ("Code beside the math", [p[:-3] for p in sources.modules])):
        toc.append(f"```{{toctree}}\n:hidden:\n:caption: {caption}\n\n" + "\n".join(docs) + "\n```")
    return "\n\n".join(p for p in parts + toc if p) + "\n"


# --- staging -------------------------------------------------------------------------------------

def _write(path, text, written):
    """Write only what changed, so that Sphinx rereads only the pages that changed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    written.add(path)


def open_in_browser_cell(page):
    """A Markdown cell linking the notebook page ``page`` (notebooks/NAME.ipynb) to its JupyterLite copy."""
    name = posixpath.basename(page)
    return {"cell_type": "markdown", "metadata": {}, "id": "open-in-the-browser",
            "source": f"[Open in the browser](../lite/notebooks/index.html?path={name}): run this notebook "
                      "in JupyterLite, with nothing to install (the first load takes tens of seconds; it runs "
                      "only where the site is served, not opened as a file; see "
                      "[the browser edition](../docs/browser.html))."}


def stage(root, staging, lite_summary=None):
    """Write every page's source into ``staging``; return (page count, warnings).

    ``lite_summary`` (docs/lite.build's summary, or None): the browser edition this site holds."""
    sources = Sources(root)
    equations = sidebyside.read_equations(root, sources.derivations)
    citations = []
    for module in sources.modules:
        citations += sidebyside.read_citations((root / module).read_text(encoding="utf-8"), module)
    by_equation = sidebyside.citations_by_equation(citations)
    warnings, unlinked, written = sidebyside.problems(citations, equations), [], set()

    for page in sources.docs + sources.derivations + sources.notebook_readme:
        text = (root / page).read_text(encoding="utf-8")
        if page.startswith("derivations/"):
            text = sidebyside.add_backlinks(text, page, equations, by_equation)
        if page == "docs/browser.md":
            text = lite.fill_page(text, lite_summary)
        _write(staging / page, rewrite_links(text, page, sidebyside.site_path(page), sources, unlinked), written)
    for page in sources.notebooks:
        notebook = json.loads((root / page).read_text(encoding="utf-8"))
        for cell in notebook["cells"]:
            if cell["cell_type"] == "markdown":
                text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                cell["source"] = rewrite_links(text, page, sidebyside.site_path(page), sources, unlinked)
        if lite_summary:
            notebook["cells"].insert(0, open_in_browser_cell(page))
        _write(staging / page, json.dumps(notebook, indent=1, ensure_ascii=False), written)
    for module in sources.modules:
        source = (root / module).read_text(encoding="utf-8")
        _write(staging / (module[:-3] + ".md"), sidebyside.module_page(source, module, equations), written)
    _write(staging / "index.md", landing_page(sources, equations, citations, unlinked, lite_summary), written)
    for picture in sorted((root / "docs/images").glob("*.png")):
        target = staging / "docs/images" / picture.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_bytes() != picture.read_bytes():
            shutil.copyfile(picture, target)
        written.add(target)
    for stale in [p for p in staging.rglob("*") if p.is_file() and p not in written]:
        stale.unlink()  # a page whose source is gone
    warnings += [f"link to a file the site does not hold, kept as plain words: {u}" for u in unlinked]
    return len(sources.pages), warnings


def build(out, *, staging=None, doctrees=None, quiet=False, lite_summary=None):
    """Stage and run Sphinx; return (seconds, warnings). Raises SystemExit when Sphinx fails."""
    from sphinx.cmd.build import build_main

    start = time.perf_counter()
    out = Path(out).resolve()
    staging = Path(staging or ROOT / "build/site-src").resolve()
    doctrees = Path(doctrees or ROOT / "build/site-doctrees").resolve()
    pages, warnings = stage(ROOT, staging, lite_summary)
    for warning in warnings:
        print(f"build_site: warning: {warning}", file=sys.stderr)
    args = ["-b", "html", "-c", str(DOCS), "-d", str(doctrees), "-j", "auto", str(staging), str(out)]
    # MyST-NB writes the notebooks' outputs into a folder beside the output folder (for site/, a
    # jupyter_execute/ at the repository's root); the pages get their own copies, so a scratch folder
    # that this build created is removed again.
    scratch = out.parent / "jupyter_execute"
    scratch_existed = scratch.exists()
    status = build_main((["-q"] if quiet else []) + args)
    if not scratch_existed:
        shutil.rmtree(scratch, ignore_errors=True)
    if status:
        raise SystemExit(f"build_site: Sphinx failed (exit status {status})")
    seconds = time.perf_counter() - start
    print(f"build_site: {pages} source pages into {out / 'index.html'} in {seconds:.1f} s")
    return seconds, warnings


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "site"), help="output folder (default: site/)")
    parser.add_argument("--work", default=str(ROOT / "build"),
                        help="folder for the staged sources and Sphinx's cache (default: build/)")
    parser.add_argument("--quiet", action="store_true", help="print warnings and errors only")
    parser.add_argument("--lite", action="store_true",
                        help="also build the browser edition (JupyterLite) into OUT/lite; needs pip install "
                             "-e '.[lite]' and python docs/lite.py fetch")
    args = parser.parse_args(argv)
    forbid_network()
    work = Path(args.work)
    summary = None
    if args.lite:
        notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
        summary = lite.build(Path(args.out) / "lite", work, notebooks)
    else:
        lacking = lite.missing_pieces(lite.cache_dir())
        print("build_site: skipped the browser edition (--lite builds it" +
              (f"; it lacks: {'; '.join(lacking)})" if lacking else ")"))
    build(args.out, staging=work / "site-src", doctrees=work / "site-doctrees", quiet=args.quiet,
          lite_summary=summary)


if __name__ == "__main__":
    main()
