"""Links between our Markdown files point at files and headings that exist.

Headings are turned into anchors the way GitHub does (lower case, punctuation dropped,
spaces to hyphens, ``-1``, ``-2`` for repeats); fenced code blocks are skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = sorted([*REPO.glob("*.md"), *(REPO / "docs").rglob("*.md"), *(REPO / "k8s").rglob("*.md")])
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
_LINK = re.compile(r"\]\(([^)\s]*?)(?:#([^)\s]+))?\)")


def _prose(page: Path) -> str:
    return _FENCE.sub("", page.read_text(encoding="utf-8"))


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors: set[str] = set()
    for heading in _HEADING.findall(_prose(page)):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _links(page: Path) -> list[tuple[Path, str | None, str]]:
    found = []
    for target, anchor in _LINK.findall(_prose(page)):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        if target and not target.endswith(".md"):
            continue  # source files and directories: not ours to check here
        path = (page.parent / target).resolve() if target else page.resolve()
        found.append((path, anchor or None, f"]({target}{'#' + anchor if anchor else ''})"))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_links_reach_existing_pages_and_headings(page: Path) -> None:
    broken = []
    for path, anchor, text in _links(page):
        if not path.is_file():
            broken.append(f"{text}: no such page")
        elif anchor is not None and anchor not in _anchors(path):
            broken.append(f"{text}: no such heading in {path.relative_to(REPO)}")
    assert not broken, "\n".join(broken)
