"""The site's own code, without a browser: the side-by-side view (docs/sidebyside.py) and the staging
of pages (docs/build_site.py): equations read from the derivations, citations read from the code,
links both ways, links between pages, the offline guard."""

from __future__ import annotations

import html
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))

pytest.importorskip("pygments")
import build_site  # noqa: E402
import sidebyside  # noqa: E402

DERIVATION = textwrap.dedent("""\
    # A page

    <a id="eq:fenced"></a>

    ```math
    a = b \\\\
    c = d
    ```

    <a id="eq:tilde"></a>

    ~~~~math
    e = f
    ~~~~

    <a id="eq:dollars"></a>
    $$
    g = h
    $$

    <a id="eq:inline-dollars"></a>

    $$ i = j $$

    <a id="eq:no-block"></a>

    Just words.
""")

MODULE = textwrap.dedent('''\


    """A module that mentions [eq:fenced] in its docstring: that explains, it does not compute."""

    class K:
        def f(self, x):
            """Also [eq:tilde] here."""
            message = "see [eq:dollars]"
            y = x + 1  # [eq:fenced] [eq:tilde]
            # the next line computes [eq:dollars]
            return y


    def g(x):
        return x  # [eq:unknown]
''')


@pytest.fixture
def equations(tmp_path):
    (tmp_path / "derivations").mkdir()
    (tmp_path / "derivations/page.md").write_text(DERIVATION, encoding="utf-8")
    return sidebyside.read_equations(tmp_path, ["derivations/page.md"])


def test_equation_tex_is_the_display_block_after_its_anchor(equations):
    assert equations["eq:fenced"].tex == "a = b \\\\\nc = d"
    assert equations["eq:tilde"].tex == "e = f"
    assert equations["eq:dollars"].tex == "g = h"            # $$ right under the anchor, old style
    assert equations["eq:inline-dollars"].tex == "i = j"
    assert equations["eq:no-block"].tex is None
    fenced = equations["eq:fenced"]
    assert (fenced.page, fenced.line, fenced.end) == ("derivations/page.md", 3, 8)  # end: the closing fence


def test_an_anchor_defined_twice_is_an_error(tmp_path):
    (tmp_path / "a.md").write_text('<a id="eq:x"></a>\n\n$$ 1 $$\n', encoding="utf-8")
    (tmp_path / "b.md").write_text('<a id="eq:x"></a>\n\n$$ 2 $$\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"b.md:1: anchor eq:x is already defined in a.md:1"):
        sidebyside.read_equations(tmp_path, ["a.md", "b.md"])


def test_only_comments_cite_and_each_citation_knows_its_function():
    citations = sidebyside.read_citations(MODULE, "tinyvae/mod.py")
    assert [(c.line, c.ids, c.scope) for c in citations] == [
        (9, ("eq:fenced", "eq:tilde"), "K.f"),
        (10, ("eq:dollars",), "K.f"),
        (15, ("eq:unknown",), "g"),
    ]


def rows(table):
    """{line number: (code text, math cell html)} of a rendered side-by-side table."""
    found = {}
    for number, code, math in re.findall(
            r'<tr id="L(\d+)"[^>]*><td class="sbs-ln">.*?</td><td class="sbs-code"><code>(.*?)</code></td>'
            r'<td class="sbs-math">(.*?)</td></tr>', table, re.S):
        found[int(number)] = (html.unescape(re.sub(r"<[^>]+>", "", code)), math)
    return found


def test_every_cited_line_has_its_equations_beside_it_linked_to_their_anchors(equations):
    table = sidebyside.render_module(MODULE, "tinyvae/sub/mod.py", equations)
    shown = rows(table)
    math = shown[9][1]
    assert 'href="../../derivations/page.html#eq:fenced"' in math
    assert 'href="../../derivations/page.html#eq:tilde"' in math
    # the TeX as Sphinx hands it to MathJax: a block with a row break goes inside split
    assert "\\[\\begin{split}a = b \\\\\nc = d\\end{split}\\]" in math and "\\[e = f\\]" in math
    assert "../../derivations/page.html#eq:dollars" in shown[10][1]
    assert 'class="sbs-missing"' in shown[15][1] and "no derivation defines this anchor" in shown[15][1]
    assert all(not math for line, (_, math) in shown.items() if line not in (9, 10, 15))
    assert sidebyside.problems(sidebyside.read_citations(MODULE, "m.py"), equations) == [
        "m.py:15 cites [eq:unknown], but no derivation defines this anchor"]


def test_a_citation_in_a_docstring_or_string_is_a_link_without_an_equation(equations):
    shown = rows(sidebyside.render_module(MODULE, "tinyvae/mod.py", equations))
    raw = sidebyside.render_module(MODULE, "tinyvae/mod.py", equations)
    assert 'class="sbs-cite" href="../derivations/page.html#eq:fenced"' in raw  # the docstring's mention
    assert shown[3][1] == "" and shown[7][1] == "" and shown[8][1] == ""


@pytest.mark.parametrize("module", sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "tinyvae").rglob("*.py")
                                          if "__pycache__" not in p.parts))
def test_the_side_by_side_page_shows_every_line_of_the_module_unchanged(module):
    source = (ROOT / module).read_text(encoding="utf-8")
    shown = rows(sidebyside.render_module(source, module, {}))
    assert [shown[n][0] for n in sorted(shown)] == source.splitlines()
    assert sorted(shown) == list(range(1, len(source.splitlines()) + 1))


def test_display_tex_wraps_blocks_as_sphinx_does():
    assert sidebyside.display_tex("x = 1") == "\\[x = 1\\]"
    assert sidebyside.display_tex("x \\\\ y") == "\\[\\begin{split}x \\\\ y\\end{split}\\]"
    assert sidebyside.display_tex("x\n\ny") == "\\[\\begin{align}\\begin{aligned}x\\\\y\\end{aligned}\\end{align}\\]"


def test_the_derivation_links_back_to_each_computing_line_after_the_equation(equations):
    citations = sidebyside.read_citations(MODULE, "tinyvae/layers/mod.py")
    text = sidebyside.add_backlinks(DERIVATION, "derivations/page.md", equations,
                                    sidebyside.citations_by_equation(citations))
    lines = text.split("\n")
    after_fence = lines[lines.index("c = d") + 1:lines.index("c = d") + 4]
    assert after_fence[0] == "```" and after_fence[1] == ""
    assert after_fence[2] == ('<p class="computed-in">Computed in <a class="sbs-backlink" '
                              'href="../tinyvae/layers/mod.html#L9"><code>K.f</code> (layers/mod.py:L9)</a>.</p>')
    assert text.count('class="computed-in"') == 3  # fenced, tilde, dollars; nothing cites the other two
    dollars = text.index('<a id="eq:dollars"></a>')
    assert text.index("#L10", dollars) > text.index("g = h", dollars)


def test_links_between_pages_point_at_their_html_pages(tmp_path):
    for path in ("derivations/kl.md", "derivations/README.md", "notebooks/README.md", "notebooks/01_a.ipynb",
                 "tinyvae/__init__.py", "tinyvae/layers/dense.py", "docs/images/a.png", "README.md"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x", encoding="utf-8")
    sources = build_site.Sources(tmp_path)
    text = textwrap.dedent("""\
        See [the KL](../derivations/kl.md#eq:kl-closed-form), [a
        notebook](01_a.ipynb), [dense](../tinyvae/layers/dense.py), [the package](../tinyvae/),
        [derivations](../derivations/), ![pic](../docs/images/a.png), [a test](../tests/test_x.py),
        [web](https://example.org/a.md), [here](#top), `[not](a.md)`.

        ```python
        fns[k](x)  # [not a link](kl.md)
        ```
        """)
    unlinked = []
    out = build_site.rewrite_links(text, "notebooks/README.md", "notebooks/README.html", sources, unlinked)
    assert "[the KL](../derivations/kl.html#eq:kl-closed-form)" in out
    assert "[a\nnotebook](01_a.html)" in out
    assert "[dense](../tinyvae/layers/dense.html)" in out and "[the package](../tinyvae/__init__.html)" in out
    assert "[derivations](../derivations/README.html)" in out and "![pic](../docs/images/a.png)" in out
    assert "a test," in out and unlinked == ["notebooks/README.md: ../tests/test_x.py"]
    assert "[web](https://example.org/a.md)" in out and "[here](#top)" in out and "`[not](a.md)`" in out
    assert "fns[k](x)  # [not a link](kl.md)" in out
    moved = build_site.rewrite_links("[x](derivations/kl.md)", "README.md", "index.html", sources)
    assert moved == "[x](derivations/kl.html)"


def test_the_site_build_refuses_the_network():
    script = textwrap.dedent("""\
        import socket, sys
        sys.path.insert(0, "docs")
        import build_site
        build_site.forbid_network()
        for attempt in (lambda: socket.getaddrinfo("example.org", 80),
                        lambda: socket.create_connection(("192.0.2.1", 80), timeout=5)):
            try:
                attempt()
            except RuntimeError as err:
                print("refused:", err)
        """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.count("refused: the site build must not use the network") == 2, done.stdout + done.stderr
