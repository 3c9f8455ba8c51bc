"""The side-by-side view: each ``tinyvae`` module beside the equations its lines compute, and back.

Two directions, one click each:

* code to math: every line whose comment cites ``# [eq:id]`` gets, in a column beside it, the
  equation typeset (the TeX of the math block that follows ``<a id="eq:id"></a>`` in
  ``derivations/*.md``), linked to that anchor on the derivation's page;
* math to code: on the derivation's page, after each equation, links to every line that
  computes it ("computed in ``gaussian_kl`` (prob/losses.py:L42)").

No documentation tool pairs code with its equations, so this module does it, with Pygments for the
highlighting. It knows nothing of Sphinx: it reads Markdown and Python and writes HTML fragments and
Markdown, and ``docs/build_site.py`` puts them into the site. Paths are POSIX paths relative to the
repository root (``derivations/kl.md``, ``tinyvae/nn/dense.py``); a page's site path is its
source path with ``.html`` for its suffix.
"""

from __future__ import annotations

import ast
import html
import io
import posixpath
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

from pygments.lexers import PythonLexer
from pygments.token import STANDARD_TYPES

ANCHOR = re.compile(r'<a id="(eq:[a-z0-9-]+)"></a>')
CITATION = re.compile(r"\[(eq:[a-z0-9-]+)\]")
FENCE_OPEN = re.compile(r"^\s*(`{3,}|~{3,})\s*\{?math\}?\s*$")


@dataclass(frozen=True)
class Equation:
    id: str        # "eq:kl-closed-form"
    page: str      # "derivations/kl.md"
    line: int      # 1-based line of the anchor
    tex: str | None  # the display block right after the anchor; None when there is none
    end: int       # 1-based line after which the back-links go: the block's last line, else the anchor's


@dataclass(frozen=True)
class Citation:
    module: str    # "tinyvae/prob/losses.py"
    line: int      # 1-based
    ids: tuple     # the equation ids the line's comment cites, in order
    scope: str     # the innermost def or class around the line ("VAE.backward"), "" at module level


def site_path(source):
    """The site page of a source file: ``derivations/kl.md`` -> ``derivations/kl.html``."""
    return posixpath.splitext(source)[0] + ".html"


def relative_url(target, from_page):
    """A link from the page ``from_page`` to ``target`` (both site paths, fragments allowed)."""
    path, _, fragment = target.partition("#")
    url = posixpath.relpath(path, posixpath.dirname(from_page) or ".")
    return f"{url}#{fragment}" if fragment else url


# --- reading the derivations ---------------------------------------------------------------------

def _display_block(lines, start):
    """The display math starting at ``lines[start]`` (after blank lines): (tex, last line index) or None.

    Accepts a fenced block (three or more backquotes or tildes, info ``math``) and, during the move to
    fenced blocks, ``$$ ... $$`` (on one line or across lines).
    """
    i = start
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines):
        return None
    opening = FENCE_OPEN.match(lines[i])
    if opening:
        fence = opening.group(1)
        closing = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        for j in range(i + 1, len(lines)):
            if closing.match(lines[j]):
                return "\n".join(lines[i + 1:j]).strip(), j
        return None
    first = lines[i].strip()
    if first.startswith("$$"):
        rest = first[2:]
        if "$$" in rest:  # $$ ... $$ on one line
            return rest[:rest.index("$$")].strip(), i
        body = [rest]
        for j in range(i + 1, len(lines)):
            if "$$" in lines[j]:
                body.append(lines[j][:lines[j].index("$$")])
                return "\n".join(body).strip(), j
            body.append(lines[j])
    return None


def read_equations(root, pages):
    """Every anchored equation of the derivation pages ``pages`` (paths relative to ``root``), by id."""
    found = {}
    for page in pages:
        lines = (Path(root) / page).read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            for eq_id in ANCHOR.findall(line):
                if eq_id in found:
                    raise ValueError(f"{page}:{i + 1}: anchor {eq_id} is already defined in "
                                     f"{found[eq_id].page}:{found[eq_id].line}; each anchor must be defined once")
                block = _display_block(lines, i + 1)
                tex, end = block if block else (None, i)
                found[eq_id] = Equation(eq_id, page, i + 1, tex, end + 1)
    return found


# --- reading the code ----------------------------------------------------------------------------

def _scopes(tree):
    """(first line, last line, qualified name) of every def and class, outermost first."""
    spans = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                spans.append((child.lineno, child.end_lineno, name))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return spans


def read_citations(source, module):
    """The lines of one module's ``source`` whose comment cites equations (``# [eq:id]``).

    Only comments count: a docstring or message that mentions ``[eq:id]`` explains, it does not compute.
    """
    spans = _scopes(ast.parse(source))
    by_line = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            ids = CITATION.findall(token.string)
            if ids:
                by_line.setdefault(token.start[0], []).extend(ids)
    citations = []
    for line, ids in sorted(by_line.items()):
        inside = [name for first, last, name in spans if first <= line <= last]
        citations.append(Citation(module, line, tuple(dict.fromkeys(ids)), inside[-1] if inside else ""))
    return citations


def citations_by_equation(citations):
    """{equation id: [Citation, ...]} in module and line order."""
    by_eq = {}
    for citation in citations:
        for eq_id in citation.ids:
            by_eq.setdefault(eq_id, []).append(citation)
    return by_eq


# --- code to math --------------------------------------------------------------------------------

def display_tex(tex):
    """The TeX of a display block as Sphinx hands it to MathJax, so both pages show the same thing:
    ``\\[ ... \\]``, a block with row breaks ``\\\\`` wrapped in ``split``, blocks separated by blank
    lines aligned one under the other."""
    parts = [part.strip() for part in tex.split("\n\n") if part.strip()]
    body = [rf"\begin{{split}}{part}\end{{split}}" if r"\\" in part else part for part in parts]
    if len(body) > 1:
        return r"\[\begin{align}\begin{aligned}" + r"\\".join(body) + r"\end{aligned}\end{align}\]"
    return r"\[" + body[0] + r"\]"


def _css_class(ttype):
    while ttype not in STANDARD_TYPES:
        ttype = ttype.parent
    return STANDARD_TYPES[ttype]


def _highlighted_lines(source):
    """The source as HTML lines with Pygments' short CSS classes, one string per source line."""
    lines, current = [], []
    for ttype, value in PythonLexer(stripnl=False, ensurenl=True).get_tokens(source):
        css = _css_class(ttype)
        pieces = value.split("\n")
        for k, piece in enumerate(pieces):
            if k:
                lines.append("".join(current))
                current = []
            if piece:
                text = html.escape(piece, quote=False)
                current.append(f'<span class="{css}">{text}</span>' if css else text)
    if current:
        lines.append("".join(current))
    return lines


def _link_citations(line_html, equations, page):
    """Make each ``[eq:id]`` in a highlighted line (comment, docstring or message) a link to its anchor."""
    def link(match):
        eq = equations.get(match.group(1))
        if eq is None:
            return match.group(0)
        url = relative_url(f"{site_path(eq.page)}#{eq.id}", page)
        return f'[<a class="sbs-cite" href="{html.escape(url)}">{eq.id}</a>]'
    return CITATION.sub(link, line_html)


def _equation_cell(citation, equations, page):
    items = []
    for eq_id in citation.ids:
        eq = equations.get(eq_id)
        if eq is None or eq.tex is None:  # shown, so that the page says what is wrong; see problems()
            items.append(f'<span class="sbs-missing">[{html.escape(eq_id)}]: {html.escape(problem(eq_id, eq))}</span>')
            continue
        url = html.escape(relative_url(f"{site_path(eq.page)}#{eq.id}", page))
        label = f"{posixpath.splitext(posixpath.basename(eq.page))[0]} · {eq.id}"
        items.append(f'<a class="sbs-eq" href="{url}" data-eq="{eq.id}">'
                     f'<span class="sbs-eq-label">{html.escape(label)}</span>'
                     f'<div class="math notranslate nohighlight">{html.escape(display_tex(eq.tex), quote=False)}</div></a>')
    return "".join(items)


def problem(eq_id, eq):
    """Why a cited equation cannot be shown, or "" when it can."""
    if eq is None:
        return "no derivation defines this anchor"
    if eq.tex is None:
        return f"the anchor in {eq.page}:{eq.line} is not followed by a display block (```math)"
    return ""


def problems(citations, equations):
    """One line for each citation that the side-by-side view cannot show with its equation."""
    return [f"{c.module}:{c.line} cites [{eq_id}], but {problem(eq_id, equations.get(eq_id))}"
            for c in citations for eq_id in c.ids if problem(eq_id, equations.get(eq_id))]


def render_module(source, module, equations):
    """The side-by-side HTML of one module: a table of numbered, highlighted lines (row ids ``L1``,
    ``L2``, ...), each line that cites equations with them typeset in the column beside it.

    A citation of an equation that is missing or has no display block is shown as such (``problems``
    lists them).
    """
    page = site_path(module)
    cited = {c.line: c for c in read_citations(source, module)}
    rows = []
    for number, code in enumerate(_highlighted_lines(source), 1):
        citation = cited.get(number)
        math = _equation_cell(citation, equations, page) if citation else ""
        row_class = ' class="sbs-cited"' if citation else ""
        rows.append(f'<tr id="L{number}"{row_class}><td class="sbs-ln"><a href="#L{number}">{number}</a></td>'
                    f'<td class="sbs-code"><code>{_link_citations(code, equations, page)}</code></td>'
                    f'<td class="sbs-math">{math}</td></tr>')
    return ('<div class="sbs highlight"><table class="sbs-table">\n'
            '<colgroup><col class="sbs-col-ln"><col class="sbs-col-code"><col class="sbs-col-math"></colgroup>\n'
            + "\n".join(rows) + "\n</table></div>")


def module_page(source, module, equations):
    """The MyST Markdown page of one module: title, a line on what is shown, the side-by-side table."""
    citations = read_citations(source, module)
    cited_ids = {eq_id for c in citations for eq_id in c.ids}
    try:
        summary = (ast.get_docstring(ast.parse(source)) or "").strip().split("\n\n")[0].replace("\n", " ")
    except SyntaxError as err:
        raise ValueError(f"{module} is not valid Python: {err}") from err
    table = render_module(source, module, equations)
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", table)), default=0))
    count = (f"{len(citations)} lines compute {len(cited_ids)} derived equations; each is typeset beside "
             "its line and links to its derivation." if citations else
             "No line of this module cites a derivation.")
    summary_md = summary.replace("`", "")
    return ("---\nhide-toc: true\n---\n\n"
            f"# `{module}`\n\n{summary_md}\n\n{count}\n\n"
            f"{fence}{{raw}} html\n{table}\n{fence}\n")


# --- math to code --------------------------------------------------------------------------------

def backlinks_html(citations, page):
    """The "computed in" paragraph placed after an equation on the derivation page ``page``."""
    links = []
    for c in citations:
        url = html.escape(relative_url(f"{site_path(c.module)}#L{c.line}", page))
        where = f"{posixpath.relpath(c.module, 'tinyvae')}:L{c.line}"
        scope = f"<code>{html.escape(c.scope)}</code> " if c.scope else ""
        links.append(f'<a class="sbs-backlink" href="{url}">{scope}({html.escape(where)})</a>')
    return f'<p class="computed-in">Computed in {", ".join(links)}.</p>'


def add_backlinks(text, page, equations, by_equation):
    """The derivation page's Markdown ``text`` with a "computed in" paragraph after every equation
    of ``equations`` that a line of code computes (``by_equation`` from ``citations_by_equation``)."""
    lines = text.splitlines()
    after = {}
    for eq in equations.values():
        if eq.page == page and eq.id in by_equation:
            after.setdefault(eq.end, []).append(backlinks_html(by_equation[eq.id], site_path(page)))
    out = []
    for number, line in enumerate(lines, 1):
        out.append(line)
        for paragraph in after.get(number, []):
            out += ["", paragraph, ""]
    return "\n".join(out) + "\n"
