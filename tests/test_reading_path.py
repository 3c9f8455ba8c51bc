"""The learner's path (docs/reading.py): every page and notebook on it once, each after what it needs,
with reading times computed from word counts and stated as computed, on the "Start here" page, below
each derivation's title and in the reading orders of derivations/README.md and notebooks/README.md."""

import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))

import reading  # noqa: E402  (docs/ is not a package)

DERIVATIONS = sorted(p.stem for p in (ROOT / "derivations").glob("*.md") if p.name != "README.md")
NOTEBOOKS = sorted(re.sub(r"^\d+_", "", p.stem) for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def test_reading_time_is_words_at_200_a_minute_rounded_up():
    assert reading.WORDS_PER_MINUTE == 200
    assert [reading.minutes(n) for n in (0, 1, 200, 201, 400, 401)] == [1, 1, 1, 2, 2, 3]


def test_a_derivations_own_reading_time_line_is_not_counted():
    page = "# Title\n\n*Reading time: about 9 min (words at 200 a minute). Read first: nothing.*\n\nfive words of prose here\n"
    assert reading.words(page) == len("# Title".split()) + 5


def test_a_notebooks_header_cell_markers_and_comment_signs_are_not_counted():
    source = ("# ---\n# jupyter:\n#   kernelspec:\n#     name: python3\n# ---\n\n"
              "# %% [markdown]\n# # A title\n# three more words\n\n# %%\nx = 1\n")
    assert reading.words(source, notebook=True) == len("A title three more words x = 1".split())


def test_stored_pages_state_what_the_path_and_the_word_counts_give():
    assert reading.stale() == [], "run python docs/reading.py --write"


def test_every_derivation_page_is_on_the_path_once():
    on_path = [page for _, page, _ in reading.steps() if not page.startswith("nb:")]
    assert sorted(on_path) == DERIVATIONS


def test_every_notebook_is_on_the_path_once():
    on_path = [page[3:] for _, page, _ in reading.steps() if page.startswith("nb:")]
    assert len(on_path) == len(set(on_path))
    assert set(NOTEBOOKS) <= set(on_path), f"notebooks not on the path: {sorted(set(NOTEBOOKS) - set(on_path))}"


def test_every_notebook_the_path_names_exists():
    """The first hour opens with the one-screen VAE notebook; the path names notebooks without numbers."""
    missing = [page for _, page, _ in reading.steps() if page.startswith("nb:") and reading.source(page) is None]
    assert not missing, f"the path names notebooks that are not in notebooks/: {missing}"


def test_what_to_read_first_comes_earlier_on_the_path():
    seen, late = set(), []
    for route, page, prereqs in reading.steps():
        late += [f"{page} ({route}) needs {p}, which comes later or not at all" for p in prereqs if p not in seen]
        seen.add(page)
    assert not late, "\n".join(late)


def test_the_first_hour_reads_in_under_an_hour():
    assert reading.total(reading.FIRST_HOUR) <= 50  # leaves ten minutes for running the notebook


def test_the_derivation_index_follows_the_path_and_labels_links_by_page_title():
    index = (ROOT / "derivations/README.md").read_text(encoding="utf-8")
    order = re.search(r"^## Reading order\n(.*?)^## ", index, flags=re.S | re.M).group(1)
    numbered = re.findall(r"^\d+\. \[([^\]]+)\]\(([a-z0-9-]+)\.md\)", order, flags=re.M)
    assert [page for _, page in numbered] == [p for p in reading.derivation_pages()]
    assert all(label == reading.title(page) for label, page in numbered), numbered
    pages = re.findall(r"^- \[([a-z0-9-]+)\.md\]\(", re.search(r"^## Pages\n(.*?)^## ", index, flags=re.S | re.M)
                       .group(1), flags=re.M)
    assert pages == reading.derivation_pages()


def test_each_derivation_states_its_time_and_what_to_read_first_below_its_title():
    for _, page, prereqs in reading.steps():
        if page.startswith("nb:"):
            continue
        lines = (ROOT / f"derivations/{page}.md").read_text(encoding="utf-8").split("\n")
        assert lines[0].startswith("# ") and lines[1] == ""
        assert lines[2] == reading.time_line(page, prereqs), page
        assert f"about {reading.page_minutes(page)} min" in lines[2]


def test_the_start_here_page_says_how_reading_times_are_counted():
    text = (ROOT / "docs/start-here.md").read_text(encoding="utf-8")
    assert f"nominal {reading.WORDS_PER_MINUTE} words a minute" in text and "rounded up to a whole minute" in text
    words = {2: "two", 3: "three"}
    low, high = reading.WORKING_FACTOR
    assert f"typically takes {words[low]} to {words[high]} times as long" in " ".join(text.split())
    for heading in ("## The first hour", "## The core course", "## Electives"):
        assert heading in text
    for group in reading.ELECTIVES:
        assert f"### {group}" in text


def test_an_edited_page_makes_its_stated_time_stale(tmp_path):
    for folder in ("derivations", "notebooks", "docs"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("*.ipynb", "_static", "images"))
    assert reading.stale(tmp_path) == []
    page = tmp_path / "derivations/kl.md"
    page.write_text(page.read_text(encoding="utf-8") + "\nword " * 400, encoding="utf-8")
    assert set(reading.stale(tmp_path)) == {"derivations/kl.md", "derivations/README.md", "docs/start-here.md"}
