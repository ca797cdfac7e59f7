"""The README and the chapters in docs/ hold together: every link and picture resolves, every file they name
exists, and each stays short enough to read (the README in five minutes, a chapter in one sitting)."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CHAPTERS = PAGES[1:]

# [text](target) and ![alt](target); a target has no spaces here, and may end in #anchor.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# Paths of this repository's own files, wherever a page names one: in prose, a table or a command.
FILE_PATH = re.compile(r"\b(?:graph_nn|tests|scripts)/[\w/]*\w\.py\b")


def page_id(page):
    return str(page.relative_to(ROOT))


def prose(text):
    """The page without its fenced code blocks: a `#` there is a shell comment, a `[x](y)` is code."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def anchors(page):
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces made hyphens, and a
    -1, -2 suffix on a repeated one."""
    seen = {}
    for heading in re.findall(r"^#{1,6} (.+)$", prose(page.read_text()), flags=re.M):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors on its text
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        yield slug if count == 0 else f"{slug}-{count}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_link_and_picture_resolves(page):
    broken = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"[a-z]+:", target):  # https:, mailto: - outside this repository
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no file {linked.relative_to(ROOT)}")
        elif anchor and anchor not in set(anchors(linked)):
            broken.append(f"{target}: no heading #{anchor} in {page_id(linked)}")
    assert not broken, broken


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_file_named_exists(page):
    missing = sorted({path for path in FILE_PATH.findall(page.read_text()) if not (ROOT / path).is_file()})
    assert not missing, missing


def test_the_readme_is_read_in_five_minutes():
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= 300, f"README.md has {lines} lines"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=page_id)
def test_each_chapter_is_short_and_leads_back_to_the_readme(chapter):
    text = chapter.read_text()
    lines = len(text.splitlines())
    assert lines < 400, f"{page_id(chapter)} has {lines} lines"
    assert re.search(r"\]\(\.\./README\.md(#[^)]*)?\)", text), "no link back to the README"


def test_every_chapter_is_linked_from_the_readme():
    readme_links = {target.partition("#")[0] for target in LINK.findall(prose((ROOT / "README.md").read_text()))}
    assert {f"docs/{chapter.name}" for chapter in CHAPTERS} <= readme_links
