"""The website, built by ``python docs/build_site.py`` and read in a real browser (headless Chromium).

Built once per session into a temporary folder, offline (the build refuses network connections);
then every page is loaded from ``file://`` as a reader opening ``site/index.html`` would, and the
tests fail on:

* a console error, or any request that leaves the machine;
* math left as raw TeX, a MathJax error node, or a math element that MathJax did not typeset;
* a link into the site to a missing file, or a ``#fragment`` that its page does not hold;
* a side-by-side page where a line citing ``# [eq:id]`` has no typeset equation beside it, or whose
  equation's derivation does not link back to that line;
* a notebook page without the figures its stored notebook holds.

The site is built into ``build/site-test/site/`` (git-ignored, replaced by each run); one test saves
screenshots of a side-by-side page and a notebook page into its ``_screenshots/`` (the path is printed). Chromium: Debian's ``chromium`` and ``chromium-driver``. Where they are
missing the tests are skipped, saying how to install them, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tokenize
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL = "apt-get update && apt-get install -y chromium chromium-driver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,1000"]
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
CITATION = re.compile(r"\[(eq:[a-z0-9-]+)\]")
RAW_TEX = re.compile(r"\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|\\(?:frac|sum|mathbb|mathrm|mathcal|operatorname|sigma|mu|log)\b")


def unavailable(reason):
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the browser tests ({INSTALL})")
    pytest.skip(reason)


# --- fixtures: the build, the browser, one visit of every page -------------------------------------

@dataclass
class Site:
    root: Path        # the built site
    seconds: float    # how long the build took
    stderr: str       # what the build printed as warnings
    modules: dict     # {"tinyvae/prob/losses.py": source} as the build read them
    derivations: list  # ["kl", ...]: the derivation pages the build read
    notebooks: dict   # {"02_autoencoder_vs_vae": stored notebook JSON} as the build read them


def snapshot():
    """The sources the build reads, read just before it: others may edit the tree during the tests."""
    modules = {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8")
               for p in sorted((ROOT / "tinyvae").rglob("*.py")) if "__pycache__" not in p.parts}
    derivations = sorted(p.stem for p in (ROOT / "derivations").glob("*.md"))
    notebooks = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted((ROOT / "notebooks").glob("*.ipynb"))}
    return modules, derivations, notebooks


@pytest.fixture(scope="session")
def site():
    """Build the site with the README's command into a fresh folder."""
    for module in ("sphinx", "myst_nb", "selenium"):
        try:
            __import__(module)
        except ImportError:
            unavailable(f"{module} is not installed: pip install -e '.[dev]'")
    # Not a pytest temporary folder: pytest deletes old ones when other sessions start, and the
    # screenshots are meant to stay for a person to look at.
    work = ROOT / "build/site-test"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    sources = snapshot()
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "docs/build_site.py", "--out", str(work / "site"),
                           "--work", str(work), "--quiet"], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, f"the site build failed:\n{done.stdout}\n{done.stderr}"
    return Site(work / "site", seconds, done.stderr, *sources)


@pytest.fixture(scope="session")
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        unavailable(f"headless Chromium is not installed ({CHROMIUM}, {CHROMEDRIVER}); install it with: {INSTALL}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="tinyvae-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    driver.get("about:blank")
    time.sleep(0.5)
    drain(driver)  # the browser's own start-up pages (chrome://new-tab-page)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def drain(driver):
    """(console errors, URLs requested) since the last call."""
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    requests = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requests.append(message["params"]["request"]["url"])
    return errors, requests


def wait_until_typeset(driver, page):
    """Every page loads MathJax; docs/_static/site.js marks the page once it has been typeset."""
    deadline = time.monotonic() + 90
    while not driver.execute_script("return document.documentElement.dataset.typeset === 'done'"):
        assert time.monotonic() < deadline, f"{page}: MathJax never finished typesetting the page"
        time.sleep(0.05)


COLLECT = r"""
const text = (el) => (el.getAttribute("aria-label") || el.textContent || "").trim().slice(0, 120);
const out = {ids: [...document.querySelectorAll("[id]")].map(e => e.id)
                   .concat([...document.querySelectorAll("a[name]")].map(e => e.name))};
out.links = [...document.querySelectorAll("a[href], link[href], img[src], script[src]")]
  .map(e => e.href || e.src);
// math: every element Sphinx or the side-by-side view marks as math holds a typeset container
const maths = [...document.querySelectorAll(".math")];
out.mathCount = document.querySelectorAll("mjx-container").length;
out.untypeset = maths.filter(m => !m.querySelector("mjx-container")).map(text)
  // a math block that fell through as a code block (a ```math fence not read as math)
  .concat([...document.querySelectorAll('[class*="highlight-math"], [class*="highlight-tex"], [class*="highlight-latex"]')]
    .map(e => "code block: " + text(e)));
out.mathErrors = [...document.querySelectorAll('mjx-merror, [data-mml-node="merror"]')]
  .map(e => e.getAttribute("data-mjx-error") || text(e));
const clone = document.body.cloneNode(true);
clone.querySelectorAll("pre, code, script, style, textarea, mjx-container, .highlight").forEach(e => e.remove());
out.prose = clone.textContent;
// notebooks: pictures in cell outputs, and whether each has loaded
out.figures = [...document.querySelectorAll(".cell_output img")]
  .map(img => ({src: img.src.slice(0, 80), loaded: img.complete && img.naturalWidth > 0}));
// side by side: what stands beside each line
out.rows = [...document.querySelectorAll(".sbs tr[id^=L]")].filter(r => r.querySelector(".sbs-math *")).map(r => {
  const row = r.getBoundingClientRect(), code = r.querySelector(".sbs-code").getBoundingClientRect();
  return {line: Number(r.id.slice(1)), missing: [...r.querySelectorAll(".sbs-missing")].map(text),
          eqs: [...r.querySelectorAll("a.sbs-eq")].map(a => {
            const svg = a.querySelector("mjx-container svg");
            const box = svg ? svg.getBoundingClientRect() : null;
            return {id: a.dataset.eq, href: a.href,
                    typeset: !!box && box.width > 0 && box.height > 0,
                    beside: !!box && box.left >= code.right - 1 && box.top < row.bottom && box.bottom > row.top};
          })};
});
out.sbsRows = document.querySelectorAll(".sbs tr[id^=L]").length;
// displayed equations: each fits its box, or scrolls inside it with the cue that it does; the box stays
// inside its column (the article, or the side-by-side page's equation cell)
out.displayed = [...document.querySelectorAll("mjx-container[display='true'], .sbs-eq mjx-container")].map(c => {
  const svg = c.querySelector(":scope > svg");
  if (!svg) return null;
  const s = svg.getBoundingClientRect(), b = c.getBoundingClientRect();
  const column = (c.closest(".sbs-math") || c.closest("article") || document.body).getBoundingClientRect();
  const block = c.closest("div.math-wrapper") || c.closest("div.math");  // after the <p> holding its anchor
  const before = block && block.previousElementSibling;
  const anchor = c.closest("[data-eq]") ? c.closest("[data-eq]").dataset.eq
    : ((before && before.querySelector('a[id^="eq:"]')) || {}).id || null;
  return {anchor, text: text(c).slice(0, 60), width: Math.round(s.width), box: Math.round(b.width),
          fits: s.left >= b.left - 1 && s.right <= b.right + 1,
          scrolls: ["auto", "scroll"].includes(getComputedStyle(c).overflowX) && c.scrollWidth > c.clientWidth
                   && c.scrollWidth >= s.width - 1 && c.classList.contains("eq-scrolls"),
          inColumn: b.left >= column.left - 1 && b.right <= column.right + 1};
}).filter(Boolean);
// derivations: the code links after each anchor, up to the next anchor
out.backlinks = {};
let anchor = null;
for (const e of document.querySelectorAll('a[id^="eq:"], p.computed-in')) {
  if (e.matches('a[id^="eq:"]')) { anchor = e.id; out.backlinks[anchor] = []; }
  else if (anchor) out.backlinks[anchor].push(...[...e.querySelectorAll("a")].map(a => a.href));
}
return out;
"""


@pytest.fixture(scope="session")
def crawl(site, browser):
    """Visit every page once: (site root, {site path: what the page holds})."""
    root = site.root
    pages = sorted(p for p in root.rglob("*.html") if not p.relative_to(root).parts[0].startswith("_"))
    report = {}
    for path in pages:
        name = path.relative_to(root).as_posix()
        browser.get(path.as_uri())
        wait_until_typeset(browser, name)
        data = browser.execute_script(COLLECT)
        data["errors"], data["requests"] = drain(browser)
        report[name] = data
    return root, report


def site_path(url, root):
    """The site path (``derivations/kl.html``) and fragment of a file:// URL, or (None, None) outside."""
    parts = urlsplit(url)
    if parts.scheme != "file":
        return None, None
    path = Path(unquote(parts.path))
    try:
        return path.relative_to(root).as_posix(), unquote(parts.fragment)
    except ValueError:
        return path.as_posix(), None


# --- the tests -----------------------------------------------------------------------------------

def test_site_builds_offline_without_sphinx_warnings(site):
    assert (site.root / "index.html").is_file()
    sphinx_warnings = [line for line in site.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    assert not sphinx_warnings, "the site build warned:\n" + "\n".join(sphinx_warnings)
    print(f"\nsite built in {site.seconds:.1f} s")


def test_every_page_loads_without_console_errors(crawl):
    root, report = crawl
    errors = {page: data["errors"] for page, data in report.items() if data["errors"]}
    assert not errors, f"console errors: {errors}"
    assert len(report) >= 30, f"only {len(report)} pages found in {root}"


def test_no_page_requests_anything_beyond_the_site(crawl):
    root, report = crawl
    remote = {page: [u for u in data["requests"] if not u.startswith(LOCAL_SCHEMES)]
              for page, data in report.items()}
    remote = {page: urls for page, urls in remote.items() if urls}
    assert not remote, f"pages that request something beyond the site: {remote}"
    assert all(data["requests"] for data in report.values()), "the request log is empty"


def test_all_math_is_typeset_without_errors(crawl):
    _, report = crawl
    problems = []
    for page, data in sorted(report.items()):
        problems += [f"{page}: not typeset: {m!r}" for m in data["untypeset"]]
        problems += [f"{page}: MathJax error: {m!r}" for m in data["mathErrors"]]
        for match in RAW_TEX.finditer(data["prose"]):
            context = data["prose"][max(0, match.start() - 60):match.end() + 60].replace("\n", " ")
            problems.append(f"{page}: raw TeX in the text: ...{context}...")
    assert not problems, "\n".join(problems[:40])
    total = sum(data["mathCount"] for data in report.values())
    derivations = [p for p in report if p.startswith("derivations/") and not p.endswith("README.html")]
    assert all(report[p]["mathCount"] > 0 for p in derivations), "a derivation page shows no math"
    print(f"\n{total} typeset equations on {len(report)} pages")


def test_every_internal_link_and_anchor_resolves(crawl):
    root, report = crawl
    broken, checked = [], 0
    for page, data in sorted(report.items()):
        for url in data["links"]:
            target, fragment = site_path(url, root)
            if target is None:
                continue  # a web link (not followed: there is no network) or a data: URL
            checked += 1
            if target.startswith("/"):
                broken.append(f"{page}: link leaves the site: {url}")
            elif not (root / target).is_file():
                broken.append(f"{page}: missing file: {target}")
            elif fragment and (target not in report or fragment not in report[target]["ids"]):
                broken.append(f"{page}: no #{fragment} in {target}")
    assert not broken, "\n".join(broken[:40])
    assert checked > 1000
    print(f"\n{checked} internal links checked")


def test_wide_equations_fit_or_scroll_inside_their_box(crawl):
    """At 1400 px, no displayed equation is cut: it fits its box (scaled down to 60 % at most), or it
    scrolls inside it with a visible cue, and the box stays inside its column."""
    _, report = crawl
    problems, scaled = [], 0
    for page, data in sorted(report.items()):
        for eq in data["displayed"]:
            if not eq["inColumn"]:
                problems.append(f"{page}: {eq['anchor'] or eq['text']!r}: its box sticks out of its column ({eq})")
            elif not (eq["fits"] or eq["scrolls"]):
                problems.append(f"{page}: {eq['anchor'] or eq['text']!r} is cut: {eq['width']} px wide in a "
                                f"{eq['box']} px box, and it does not scroll")
            scaled += eq["scrolls"]
    assert not problems, "\n".join(problems[:40])
    kl = [eq for eq in report["derivations/kl.html"]["displayed"] if eq["anchor"] == "eq:kl-closed-form"]
    assert kl and kl[0]["fits"], f"the KL page's closed form does not fit its box at 1400 px: {kl}"
    per_dim = [eq for eq in report["tinyvae/prob/losses.html"]["displayed"] if eq["anchor"] == "eq:kl-per-dim"]
    assert per_dim and all(eq["fits"] or eq["scrolls"] for eq in per_dim), per_dim
    print(f"\n{sum(len(d['displayed']) for d in report.values())} displayed equations, {scaled} scroll in their box")


def comment_citations(source):
    """{line: [eq ids]} of the lines whose comment cites equations (read here, not by the site code)."""
    cited = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and CITATION.search(token.string):
            cited.setdefault(token.start[0], []).extend(CITATION.findall(token.string))
    return cited


def test_every_cited_line_has_its_equation_beside_it_and_the_derivation_links_back(site, crawl):
    root, report = crawl
    problems, links = [], 0
    for module, source in site.modules.items():
        page = module[:-3] + ".html"
        assert page in report, f"no side-by-side page for {module}"
        data = report[page]
        assert data["sbsRows"] == len(source.splitlines()), f"{page} does not show every line of {module}"
        rows = {row["line"]: row for row in data["rows"]}
        for line, ids in comment_citations(source).items():
            row = rows.get(line, {"eqs": [], "missing": []})
            shown = {eq["id"]: eq for eq in row["eqs"]}
            for eq_id in dict.fromkeys(ids):
                eq = shown.get(eq_id)
                if eq is None:
                    problems.append(f"{module}:{line} cites [{eq_id}], no equation beside it {row['missing']}")
                    continue
                links += 1
                target, fragment = site_path(eq["href"], root)
                if not (eq["typeset"] and eq["beside"]):
                    problems.append(f"{module}:{line}: [{eq_id}] is not typeset beside the line ({eq})")
                if fragment != eq_id or not target.startswith("derivations/"):
                    problems.append(f"{module}:{line}: [{eq_id}] links to {eq['href']}")
                    continue
                back = [site_path(u, root) for u in report[target]["backlinks"].get(eq_id, [])]
                if (page, f"L{line}") not in back:
                    problems.append(f"{target}#{eq_id} does not link back to {page}#L{line}")
    assert not problems, "\n".join(problems[:40])
    assert links > 50
    print(f"\n{links} code-to-math links checked, each typeset beside its line and linked back")


def stored_figures(notebook):
    """How many pictures a stored notebook's outputs hold, and how many outputs it has."""
    cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    outputs = [o for c in cells for o in c.get("outputs", [])]
    figures = sum(1 for o in outputs if any(k.startswith("image/") for k in o.get("data", {})))
    return figures, len(outputs)


def test_every_notebook_page_shows_its_figures(site, crawl):
    _, report = crawl
    assert site.notebooks
    problems, total = [], 0
    for name, notebook in site.notebooks.items():
        figures, outputs = stored_figures(notebook)
        page = f"notebooks/{name}.html"
        if outputs == 0:
            problems.append(f"{name}.ipynb is stored without outputs: run python notebooks/build.py (notebooks/README.md)")
            continue
        shown = report[page]["figures"]
        loaded = sum(1 for f in shown if f["loaded"])
        if loaded != figures:
            problems.append(f"{page} shows {loaded} loaded pictures of the {figures} in {name}.ipynb: {shown}")
        total += figures
    assert not problems, "\n".join(problems)
    assert total > 0, "no notebook holds a single figure"
    print(f"\n{total} notebook figures shown")


def test_landing_page_links_every_part_of_the_site(site, crawl):
    root, report = crawl
    index = report["index.html"]
    targets = {site_path(u, root)[0] for u in index["links"]}
    for heading in ("reading-order", "the-code-beside-its-derivations", "notebooks", "exercises", "results"):
        assert heading in index["ids"], f"the landing page has no section #{heading}"
    expected = (["docs/start-here.html"] + [f"derivations/{name}.html" for name in site.derivations]
                + [f"notebooks/{name}.html" for name in site.notebooks]
                + [module[:-3] + ".html" for module in site.modules])
    missing = sorted(set(expected) - targets)
    assert not missing, f"the landing page does not link to: {missing}"


def test_screenshots_of_a_side_by_side_page_and_a_notebook(browser, crawl):
    """Saved for a person to look at (not committed); the README's picture is made from the first."""
    root, report = crawl
    out = root / "_screenshots"
    out.mkdir(exist_ok=True)
    sbs_page = "tinyvae/prob/losses.html"
    cited = [row for row in report[sbs_page]["rows"] if row["eqs"]]
    kl = [row["line"] for row in cited if any(eq["id"] == "eq:kl-closed-form" for eq in row["eqs"])]
    top = max(1, (kl or [cited[0]["line"]])[0] - 12)  # the KL term's function, from its first lines
    notebooks = [p for p in sorted(report) if p.startswith("notebooks/0")]
    notebook = next((p for p in notebooks if report[p]["figures"]), notebooks[0])
    shots = {}
    for name, page, script in (
            ("side-by-side.png", f"{sbs_page}#L{top}", None),
            ("notebook.png", notebook,
             "const img = document.querySelector('.cell_output img'); if (img) img.scrollIntoView({block: 'center'})")):
        browser.get((root / page.split("#")[0]).as_uri() + ("#" + page.split("#")[1] if "#" in page else ""))
        wait_until_typeset(browser, page)
        if script:
            browser.execute_script(script)
        time.sleep(0.3)
        browser.save_screenshot(str(out / name))
        shots[name] = (out / name).stat().st_size
    drain(browser)
    assert all(size > 20_000 for size in shots.values()), shots
    print(f"\nscreenshots: {out}/side-by-side.png ({sbs_page} from line {top}), {out}/notebook.png ({notebook})")
