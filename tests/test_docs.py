"""The README and docs/: a short front door, links that reach their target, pointers that hold."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
import yaml

from collector.k8s.labels import DEFAULT_LABELS, parse_label_mapping
from tests.support.require import REPO

README = REPO / "README.md"
PAGES = sorted([README, *(REPO / "docs").glob("*.md")])
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# A page named in a comment or a help text, and the heading it may point to, in quotes after it.
# Built or generated files, and fixtures (command lines that name a README of their own).
_SKIPPED = frozenset({"fixtures", "_proto", "__pycache__", "bin", "out"})
_POINTER = re.compile(r"\b(README\.md|docs/[\w-]+\.md)(?:,\s*(?:#\s*)?\"([^\"]+)\")?")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes."""
    text = _CODE_SPAN.sub(lambda m: m.group(0)[1:-1], heading.strip()).lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def headings(page: Path) -> list[str]:
    text = _FENCE.sub("", page.read_text())
    return [line.lstrip("#").strip() for line in text.splitlines() if re.match(r"#{1,6} ", line)]


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out: set[str] = set()
    for heading in headings(page):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(page: Path) -> list[str]:
    text = _CODE_SPAN.sub("", _FENCE.sub("", page.read_text()))
    return _LINK.findall(text)


def test_slugs_are_githubs() -> None:
    assert slug("The gRPC stream's certificates") == "the-grpc-streams-certificates"
    assert slug("A rate limit's summary: `exec_suppressed`") == "a-rate-limits-summary-exec_suppressed"
    assert slug("What each manifest does, and why") == "what-each-manifest-does-and-why"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_reaches_a_file_and_a_heading(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with that anchor in {dest.name}")
    assert broken == []


def test_the_link_check_sees_a_broken_anchor(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## A heading\n\n[ok](#a-heading) [bad](#no-heading) `[code](#x)`\n")
    assert links(page) == ["#a-heading", "#no-heading"]
    assert anchors(page) == {"title", "a-heading"}


def pointers() -> list[tuple[str, str, str | None]]:
    found = []
    for tree in ("collector", "manifests", "tests", "bench", "scripts", "Makefile", "Dockerfile"):
        root = REPO / tree
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in files:
            if _SKIPPED.intersection(path.relative_to(REPO).parts) or path.suffix in (".o", ".pyc"):
                continue
            text = path.read_text(errors="replace")
            for page, heading in _POINTER.findall(text):
                found.append((str(path.relative_to(REPO)), page, heading or None))
    return found


def test_pointers_in_code_and_manifests_name_existing_pages_and_headings() -> None:
    found = pointers()
    assert any(page.startswith("docs/") and heading for _, page, heading in found)
    broken = [
        f"{where}: {page}" + (f', "{heading}"' if heading else "")
        for where, page, heading in found
        if not (REPO / page).exists() or (heading is not None and heading not in headings(REPO / page))
    ]
    assert broken == []


def test_the_readme_is_a_short_front_door() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) < 200
    opening = "\n".join(lines[:40])
    assert "make run" in opening and "make test" in opening
    assert "## Install on a cluster" in lines


def test_the_labels_example_is_the_default_mapping() -> None:
    page = (REPO / "docs" / "kubernetes.md").read_text()
    [block] = [b.split("```", 1)[0] for b in page.split("```yaml\n")[1:] if b.startswith("labels:")]
    assert parse_label_mapping(yaml.safe_load(block)["labels"]) == DEFAULT_LABELS
