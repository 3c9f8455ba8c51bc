"""The derivations and the code point at each other, and the derivations' numeric checks run.

* every ``# [eq:id]`` cited in the package exists as an anchor ``<a id="eq:id"></a>``;
* every anchor is cited from the package or a notebook, except the few steps of an argument that
  no code computes (listed below, each with its reason);
* every function named in a derivation's "In the code" list exists;
* every ```python block of a derivation runs (one namespace per file, blocks in order).
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DERIVATIONS = ROOT / "derivations"
PAGES = sorted(p for p in DERIVATIONS.glob("*.md") if p.name != "README.md")

ANCHOR = re.compile(r'<a id="(eq:[a-z0-9-]+)"></a>')
# A code comment "# [eq:id]" or a link "...md#eq:id" from a notebook.
CITATION = re.compile(r"(?:\[|\.md#)(eq:[a-z0-9-]+)")
CODE_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)

# Steps of an argument, not formulas that any code computes.
NOT_COMPUTED = {
    "eq:elbo-jensen": "the inequality log p(x) >= ELBO, a step of the ELBO's derivation",
    "eq:elbo-gap": "the identity log p(x) - ELBO = KL(q || posterior), explains the bound's slack",
    "eq:aggregate-kl": "a decomposition of the average KL, for the AE-versus-VAE discussion",
    "eq:fd-error": "the error bound that motivates float64 and the step h of the gradient checker",
    "eq:conv-adjoint-full": "the textbook rotated-kernel form of the transposed convolution; the code computes "
                            "it with col2im, and tests/test_conv.py plants the unrotated form as a bug",
    "eq:checkerboard": "counts the taps per output pixel to explain checkerboard artifacts; shown by the page's "
                       "numeric check and notebook 08",
    "eq:iwae-snr": "a theorem on the gradient estimators' signal-to-noise ratios, shown numerically on iwae.md",
    "eq:adam-step-bound": "the largest step Adam can take, a property of the update, measured on optimizers.md",
    "eq:rounding-model": "the model of floating-point rounding that the float32 error bounds start from",
    "eq:best-diagonal-gap": "the approximation gap of the linear Gaussian model in closed form, checked on amortization.md",
    "eq:reverse-kl-diagonal": "the best diagonal Gaussian under each KL direction, a property of the ELBO's optimum",
    "eq:iw-second-moment": "when importance weights have finite variance, explains evaluation with a narrow q",
    "eq:rate-distortion-bounds": "information bounds that interpret the ELBO's two terms; no code computes I(x; z)",
    "eq:beta-slope": "the slope of the rate-distortion frontier at a beta optimum, checked on rate-distortion.md",
    "eq:linear-rate-distortion": "the linear VAE's frontier in closed form, checked against tinyvae's linear VAE",
    "eq:ppca-grad-w": "the likelihood's gradient in W, a step of the pPCA derivation (its stationary points)",
    "eq:ppca-fixed-noise": "the maximum with a fixed noise variance, which explains posterior collapse; "
                           "checked against gradient ascent on ppca.md",
    "eq:sigma-vae-implied-var": "reads a loss recipe ('SSE + beta KL') as a Gaussian decoder's sigma^2; checked on "
                                "sigma-vae.md",
    "eq:sigma-vae-shrinkage": "the linear decoder's shrinkage, which explains why a large sigma^2 blurs; checked on "
                              "sigma-vae.md",
    "eq:cvae-kl-conditional-prior": "the KL to a prior network p(z|c), which tinyvae does not build; checked on "
                                    "conditional.md",
    "eq:m2-unlabelled-min": "the minimum of M2's unlabelled bound over q(y|x), which explains what the classifier "
                            "learns from unlabelled data; checked on semi-supervised.md and in tests/test_m2.py",
    "eq:iw-bias-rate": "the large-K bias of the importance-weighted bound, which says how far K = 5000 is from "
                       "log p(x); checked by sampling on importance-sampling.md",
}


def anchors():
    found = {}
    for page in PAGES:
        for anchor in ANCHOR.findall(page.read_text(encoding="utf-8")):
            found.setdefault(anchor, []).append(page.name)
    return found


def citations(paths):
    cited = {}
    for path in paths:
        for eq in CITATION.findall(path.read_text(encoding="utf-8")):
            cited.setdefault(eq, set()).add(path.relative_to(ROOT).as_posix())
    return cited


def package_files():
    return sorted((ROOT / "tinyvae").rglob("*.py"))  # subpackages too (tinyvae/layers/)


def notebook_files():
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))  # the jupytext sources, not the built .ipynb


def test_every_anchor_is_defined_once():
    doubled = {a: pages for a, pages in anchors().items() if len(pages) > 1}
    assert not doubled, f"anchors defined more than once: {doubled}"


def test_every_equation_cited_in_the_code_exists_in_a_derivation():
    defined = anchors()
    cited = citations(package_files() + notebook_files())
    missing = {eq: sorted(where) for eq, where in cited.items() if eq not in defined}
    assert not missing, f"the code or a notebook cites equations that no derivation defines: {missing}"


def test_every_derived_result_is_cited_by_the_code():
    cited = citations(package_files() + notebook_files())
    uncited = sorted(a for a in anchors() if a not in cited and a not in NOT_COMPUTED)
    assert not uncited, f"derived results that no code or notebook cites: {uncited}"


def test_the_not_computed_list_names_real_anchors():
    assert set(NOT_COMPUTED) <= set(anchors())


def test_every_derivation_has_anchors_and_an_in_the_code_list():
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert ANCHOR.search(text), f"{page.name} defines no equation anchor"
        assert "## In the code" in text, f"{page.name} lacks an 'In the code' section"


def in_the_code_names(page):
    text = page.read_text(encoding="utf-8")
    section = text.split("## In the code", 1)[1]
    return re.findall(r"^- `(tinyvae\.[A-Za-z0-9_.]+)`", section, re.M)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_functions_named_by_a_derivation_exist(page):
    names = in_the_code_names(page)
    assert names, f"{page.name}: its 'In the code' list names no function"
    for dotted in names:
        module_name, _, attr = dotted.rpartition(".")
        module = importlib.import_module(module_name)
        assert hasattr(module, attr), f"{page.name} names {dotted}, which does not exist"


ANCHOR_TABLE_ROW = re.compile(r"^\| `(eq:[a-z0-9-]+)` \| \[[^]]+\]\(([a-z0-9-]+\.md)#(eq:[a-z0-9-]+)\)", re.M)


def anchor_table(index_text):
    """{anchor: page} of the rows of derivations/README.md's anchor table that link the anchor they name."""
    return {eq: page for eq, page, linked in ANCHOR_TABLE_ROW.findall(index_text) if eq == linked}


def missing_from_table(index_text, defined):
    """The anchors of ``defined`` that have no row in the anchor table of ``index_text``."""
    table = anchor_table(index_text)
    return sorted(a for a in defined if a not in table)


def test_the_anchor_table_lists_every_anchor_on_its_page():
    index = (DERIVATIONS / "README.md").read_text(encoding="utf-8")
    table, defined = anchor_table(index), anchors()
    missing = missing_from_table(index, defined)
    assert not missing, f"anchors missing from the table in derivations/README.md: {missing}"
    misplaced = {a: (table[a], pages) for a, pages in defined.items() if table[a] not in pages}
    assert not misplaced, f"table rows that link the wrong page (table page, defining page): {misplaced}"
    stale = sorted(a for a in table if a not in defined)
    assert not stale, f"table rows for anchors that no page defines: {stale}"


def test_an_anchor_missing_from_the_table_is_caught():
    table = "| `eq:kl-closed-form` | [kl.md](kl.md#eq:kl-closed-form) | KL |\n| `eq:x` | [a.md](a.md#eq:y) | x |\n"
    assert anchor_table(table) == {"eq:kl-closed-form": "kl.md"}   # a row whose link names another anchor is no row
    assert missing_from_table(table, {"eq:kl-closed-form", "eq:kl-grad-mu", "eq:y"}) == ["eq:kl-grad-mu", "eq:y"]


def test_index_links_every_page():
    index = (DERIVATIONS / "README.md").read_text(encoding="utf-8")
    for page in PAGES:
        assert f"({page.name}" in index, f"derivations/README.md does not link {page.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_numeric_check_of_derivation_runs(page):
    blocks = CODE_BLOCK.findall(page.read_text(encoding="utf-8"))
    assert blocks, f"{page.name} has no numeric check"
    namespace = {"__name__": f"derivation_{page.stem}"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{page.name}[block {i}]", "exec"), namespace)  # noqa: S102


def test_a_citation_of_a_missing_equation_is_caught(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("y = x  # [eq:kl-closed-form] [eq:no-such-equation]\n", encoding="utf-8")
    found = {eq for eq in CITATION.findall(planted.read_text(encoding="utf-8"))}
    assert found - set(anchors()) == {"eq:no-such-equation"}


def test_amortization_page_quotes_the_stored_notebook_run():
    """amortization.md's MNIST paragraph quotes notebook 06's stored section-6 output."""
    stored = json.loads((ROOT / "notebooks" / "06_latent_space.ipynb").read_text(encoding="utf-8"))
    text = "".join("".join(o.get("text", "")) for c in stored["cells"] for o in c.get("outputs", []))
    found = re.search(r"ELBO of the encoder's q (-[\d.]+), of the fitted q (-[\d.]+) \(after 150 steps (-[\d.]+)\); "
                      r"log p\(x\) ≈ (-[\d.]+)\s+amortization gap ([\d.]+) nats, approximation gap ([\d.]+) nats", text)
    assert found, "notebook 06's stored output has no gap line"
    enc, fit, fit150, logp, amort, approx = (v.lstrip("-") for v in found.groups())
    page = " ".join((ROOT / "derivations" / "amortization.md").read_text(encoding="utf-8").split())
    assert f"ELBO of −{enc} nats per digit on average, the fitted $q$ −{fit} (−{fit150} after the first 150 steps)" in page
    assert f"$\\log p(x)$ is about −{logp}: an amortization gap of {amort} nats and an approximation gap of {approx} nats" in page


@pytest.mark.parametrize("page, starts", [("semi-supervised.md", "worst relative gradient error"),
                                         ("conditional.md", "regressor 2.77 nats, latent mixture 0.69")])
def test_page_shows_what_its_numeric_check_prints(page, starts, capsys):
    """The text block under the page's numeric check is the line the check prints."""
    text = (DERIVATIONS / page).read_text(encoding="utf-8")
    check = next(b for b in CODE_BLOCK.findall(text) if "print(" in b)  # the first block that prints
    block = compile(check, f"{page}[numeric check]", "exec")
    exec(block, {"__name__": page.replace("-", "_").replace(".md", "_page")})  # noqa: S102
    printed = capsys.readouterr().out.strip()
    assert printed.startswith(starts)
    assert f"It prints\n\n```none\n{printed}\n```" in text
