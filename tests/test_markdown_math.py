r"""The math in every Markdown page survives a code-hosting site that runs Markdown before its math renderer.

On such a site the Markdown parser sees the page first and only then hands what is left of the math to
the renderer. So a construct is safe only if Markdown leaves it alone:

* ``$$ ... $$`` display blocks are paragraphs to Markdown, which rewrites their contents (a line right
  after an anchor ``<a id="eq:..."></a>`` even joins the anchor's paragraph). Display math goes in a
  fenced block, an opening line of three backquotes and ``math``, which Markdown passes through verbatim;
* a fenced math block sits after a blank line when an anchor line precedes it;
* Markdown turns a backslash before ASCII punctuation into the bare character: ``\\`` becomes ``\``
  (a lost row break), ``\,`` a comma, ``\{`` a brace, ``\|`` a bar. Outside a fenced math block (where
  nothing is rewritten) such an escape must not appear inside inline math ``$...$``, and ``\\`` must not
  appear at all;
* inside inline math, ``<`` followed by a letter reads as the start of an HTML tag (write ``\lt``);
* inline math ``$...$`` stays on one line: split across a line break it is two half-formulas to a
  renderer that looks for math line by line, and a line that starts with ``-``, ``+`` or ``=`` inside
  it can turn into a list item or a heading underline.

Scanned: every Markdown file under derivations/, notebooks/ and docs/, the top-level README.md, and the
Markdown cells of the notebooks' jupytext sources (notebooks/NN_*.py). Inline code spans and non-math
fenced code blocks are not math and are skipped. A failure names the file, the line and the construct.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

ANCHOR_LINE = re.compile(r'^\s*<a id="[^"]+"></a>\s*$')
FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([A-Za-z0-9_+-]*)")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
# $...$ not preceded by a backslash, the content not starting or ending with a space.
INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\$)(?! )((?:\\.|[^$\\])+?)(?<! )\$(?!\$)", re.S)
ESCAPED_PUNCTUATION = re.compile(r"\\[!-/:-@\[-`{-~]")  # a backslash before ASCII punctuation
HTML_LIKE = re.compile(r"<[A-Za-z/!?]")


def markdown_files():
    files = [ROOT / "README.md"]
    for folder in ("derivations", "notebooks", "docs"):
        files += sorted((ROOT / folder).rglob("*.md"))
    files += sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))  # the notebooks' jupytext sources
    return [f for f in files if f.is_file() and "_build" not in f.parts and ".ipynb_checkpoints" not in f.parts]


def markdown_lines(path, text=None):
    """(line number in the file, Markdown text) of each Markdown line of ``path``.

    A .py file is a jupytext percent notebook: its Markdown lines are the lines of ``# %% [markdown]``
    cells without their leading ``# ``; a blank line is put between cells so that they stay apart.
    """
    text = path.read_text(encoding="utf-8") if text is None else text
    lines = text.splitlines()
    if path.suffix != ".py":
        return list(enumerate(lines, 1))
    out, in_markdown = [], False
    for number, line in enumerate(lines, 1):
        if line.startswith("# %%"):
            in_markdown = "[markdown]" in line
            out.append((number, ""))
        elif in_markdown:
            if line.strip() and not line.startswith("#"):
                in_markdown = False
                continue
            out.append((number, line[2:] if line.startswith("# ") else line[1:]))
    return out


def _blank_code_spans(text):
    """``text`` with every inline code span replaced by spaces (newlines kept), so positions still map."""
    return CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def violations(path, text=None):
    """Every construct that breaks on the site: a list of "file:line: construct" strings."""
    name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    found = []

    def report(number, what):
        found.append(f"{name}:{number}: {what}")

    lines = markdown_lines(path, text)
    fence, fence_kind = None, None
    paragraph = []  # (number, line) of the current run of prose lines outside fences
    previous = (None, "")  # the previous line outside fences, or the line before a fence opens

    def check_paragraph():
        if not paragraph:
            return
        joined = _blank_code_spans("\n".join(line for _, line in paragraph))
        starts = [0]
        for _, line in paragraph[:-1]:
            starts.append(starts[-1] + len(line) + 1)

        def line_of(offset):
            index = max(i for i, s in enumerate(starts) if s <= offset)
            return paragraph[index][0]

        for m in re.finditer(r"\$\$", joined):
            report(line_of(m.start()), "a $$ display block (use a fenced math block)")
        if "$$" not in joined:
            for m in INLINE_MATH.finditer(joined):
                body = m.group(1)
                if "\n" in body:
                    report(line_of(m.start(1)),
                           f"inline math split across lines (keep it on one line): ${' '.join(body.split())[:40]}$")
                for e in ESCAPED_PUNCTUATION.finditer(body):
                    report(line_of(m.start(1) + e.start()),
                           f"backslash before punctuation {e.group(0)!r} in inline math ${body.strip()[:40]}$")
                for e in HTML_LIKE.finditer(body):
                    report(line_of(m.start(1) + e.start()),
                           f"'<' before a letter in inline math (reads as an HTML tag; use \\lt): ${body.strip()[:40]}$")
        for m in re.finditer(r"\\\\", joined):
            if not any(m.start() >= im.start() and m.end() <= im.end() for im in INLINE_MATH.finditer(joined)):
                report(line_of(m.start()), "'\\\\' outside a fenced math block (Markdown makes it one backslash)")
        paragraph.clear()

    for number, line in lines:
        if fence is not None:
            closing = FENCE.match(line)
            if closing and closing.group(1)[0] == fence[0] and len(closing.group(1)) >= len(fence) \
                    and not closing.group(2) and line.strip() == closing.group(1):
                fence = None
            continue
        opening = FENCE.match(line)
        if opening:
            check_paragraph()
            fence, fence_kind = opening.group(1), opening.group(2)
            if fence_kind == "math" and ANCHOR_LINE.match(previous[1]):
                report(number, "a math block right after an anchor line (put a blank line between them)")
            fence_line = number
            previous = (number, line)
            continue
        if line.strip().startswith("$$") and ANCHOR_LINE.match(previous[1]):
            report(number, "a display block right after an anchor line (put a blank line between them)")
        if line.strip():
            paragraph.append((number, line))
        else:
            check_paragraph()
        previous = (number, line)
    check_paragraph()
    if fence is not None:
        report(fence_line, f"a fenced block ({fence}{fence_kind}) that is never closed")
    return found


FILES = markdown_files()


def test_the_scan_covers_the_derivations_the_notebook_sources_and_the_readme():
    names = {f.relative_to(ROOT).as_posix() for f in FILES}
    assert "README.md" in names and "derivations/kl.md" in names and "notebooks/03_reparameterization.py" in names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_markdown_math_survives_the_markdown_pass(path):
    found = violations(path)
    assert not found, "math that a Markdown-first renderer breaks:\n" + "\n".join(found)


# --------------------------------------------------------------------------- the scanner catches each construct

PLANTED = [
    ("$$\nx = 1\n$$\n", "a $$ display block"),
    ('<a id="eq:x"></a>\n```math\nx\n```\n', "right after an anchor line"),
    ('<a id="eq:x"></a>\n$$\nx\n$$\n', "right after an anchor line"),
    ("Text $a\\,b$ more.\n", "backslash before punctuation '\\\\,'"),
    ("Text $\\{ a \\}$ more.\n", "backslash before punctuation '\\\\{'"),
    ("Text $a\\|b$ more.\n", "backslash before punctuation '\\\\|'"),
    ("A line that spans\n$a +\n\\;b$ two lines.\n", "backslash before punctuation '\\\\;'"),
    ("Cases: \\begin{cases} 1 \\\\ 2 \\end{cases}\n", "'\\\\' outside a fenced math block"),
    ("Text $a<b$ more.\n", "'<' before a letter"),
    ("A formula $a +\nb$ across two lines.\n", "inline math split across lines"),
    ("- a list item with $\\mathbb{E}[x]/y\n  = z$ continued\n", "inline math split across lines"),
    ("```math\nx\n", "never closed"),
]


@pytest.mark.parametrize("text, construct", PLANTED, ids=[c for _, c in PLANTED])
def test_the_scanner_names_each_construct_that_breaks(text, construct, tmp_path):
    page = tmp_path / "page.md"
    found = violations(page, text)
    assert found and all(f.startswith("page.md:") for f in found), found
    assert any(construct in f for f in found), found


def test_the_scanner_reports_the_line_of_the_construct(tmp_path):
    text = "Title\n\nSome prose.\nMore prose with $x\\!y$ here.\n"
    assert violations(tmp_path / "page.md", text) == [
        "page.md:4: backslash before punctuation '\\\\!' in inline math $x\\!y$"]


def test_safe_forms_pass_the_scanner(tmp_path):
    text = ('Prose with $\\lbrace a \\rbrace$, $\\Vert x \\Vert$, $a \\mid b$, $a \\lt b$ and `$$` in code.\n\n'
            '<a id="eq:x"></a>\n\n```math\n\\begin{cases} a, & x \\\\ b,\\; c & y \\end{cases}\n```\n\n'
            '```python\nprint("\\\\, $$")\n```\n')
    assert violations(tmp_path / "page.md", text) == []


def test_notebook_sources_are_scanned_in_their_markdown_cells_only(tmp_path):
    source = ('# %% [markdown]\n# # Title\n#\n# Text $a\\,b$.\n\n'
              '# %%\nx = "$a\\\\,b$"  # code is not Markdown\n')
    path = tmp_path / "nb.py"
    assert violations(path, source) == ["nb.py:4: backslash before punctuation '\\\\,' in inline math $a\\,b$"]
