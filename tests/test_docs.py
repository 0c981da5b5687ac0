"""The documentation a user reads: the README stays short, and every relative link in it, in docs/ and in
benchmarks/README.md points to a file that exists (and, with a #fragment into Markdown, to a heading there)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code (a link there is an example, not a link)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def anchors(page: Path) -> set[str]:
    """GitHub's ids of a Markdown page's headings."""
    out = set()
    for line in prose(page.read_text(encoding="utf-8")).splitlines():
        if m := re.match(r"#{1,6}\s+(.*)", line):
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(slug)
    return out


def links(page: Path) -> list[str]:
    return LINK.findall(prose(page.read_text(encoding="utf-8")))


def test_the_readme_is_at_most_150_lines():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 150


def test_the_docs_exist_and_the_readme_links_them():
    assert (ROOT / "docs" / "extending.md").is_file()
    linked = {target.split("#")[0] for target in links(ROOT / "README.md")}
    assert {"docs/results.md", "benchmarks/README.md", "docs/extending.md"} <= linked


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not checked here
            continue
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(target)
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {broken}"


def sync_docs_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("sync_docs", ROOT / "scripts" / "sync_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generated_tables_in_the_docs_match_their_sources():
    """Tables copied from result files into the docs (scripts/sync_docs.py) are never edited by hand or stale."""
    assert not sync_docs_module().sync(check=True), "run: python scripts/sync_docs.py"


def test_sync_docs_copies_a_section_with_its_links_and_headings_moved(tmp_path, monkeypatch):
    sync = sync_docs_module()
    monkeypatch.setattr(sync, "ROOT", tmp_path)
    (tmp_path / "res" / "a").mkdir(parents=True)
    (tmp_path / "docs").mkdir()
    (tmp_path / "res" / "a" / "suite.md").write_text(
        "# Suite\n\n## Tables 2-4 beside the paper\n\n### Table 2\n\n| a |\n|---|\n| 1 |\n\n[run](x/results.md)\n\n"
        "## Compute\n\nnot copied\n")
    page = tmp_path / "docs" / "results.md"
    page.write_text("Intro.\n\n<!-- generated: res/a/suite.md#tables-2-4-beside-the-paper shift=1 -->\nold\n"
                    "<!-- end generated -->\n\nAfter.\n")
    assert sync.sync(check=True) == ["docs/results.md: res/a/suite.md#tables-2-4-beside-the-paper"]
    assert "old" in page.read_text()  # --check writes nothing
    sync.sync(check=False)
    text = page.read_text()
    assert "#### Table 2" in text and "| 1 |" in text and "not copied" not in text
    assert "[run](../res/a/x/results.md)" in text and text.endswith("<!-- end generated -->\n\nAfter.\n")
    assert sync.sync(check=True) == []
    page.write_text("<!-- generated: res/a/suite.md#no-such-heading -->\n<!-- end generated -->\n")
    with pytest.raises(ValueError, match="no heading with id 'no-such-heading'"):
        sync.sync(check=True)
