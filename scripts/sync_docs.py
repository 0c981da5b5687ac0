"""Copy tables that commands generate into the docs, so no figure in them is written by hand.

A docs page marks a block with two comments::

    <!-- generated: benchmarks/results/llama4rec/suite.md#tables-2-4-beside-the-paper shift=1 -->
    ...
    <!-- end generated -->

and this script replaces what lies between them with that section of the source file (repository-relative path;
the fragment is the heading's GitHub id): everything under the heading up to the next heading of the same or a
higher level, its sub-headings moved down ``shift`` levels, its relative links rewritten to resolve from the
page. ``tests/test_docs.py`` fails while a block differs from its source.

    python scripts/sync_docs.py           # rewrite every stale block
    python scripts/sync_docs.py --check   # list the stale blocks, exit 1 if any
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("README.md", "benchmarks/README.md", "docs/*.md")
BLOCK = re.compile(r"(<!-- generated: (?P<source>[^#\s]+)#(?P<anchor>[\w-]+)(?: shift=(?P<shift>\d))? -->\n)"
                   r"(?P<body>.*?)(?P<end><!-- end generated -->)", re.S)
HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
LINK = re.compile(r"(\]\()([^)\s#]+)")


def slug(heading: str) -> str:
    """GitHub's id of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def section(source: Path, anchor: str) -> str:
    """The text under the heading with id ``anchor`` in ``source``."""
    lines = source.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        m = HEADING.match(line)
        if m and slug(m.group(2)) == anchor:
            level = len(m.group(1))
            end = next((j for j in range(i + 1, len(lines))
                        if (h := HEADING.match(lines[j])) and len(h.group(1)) <= level), len(lines))
            return "\n".join(lines[i + 1:end]).strip("\n")
    raise ValueError(f"{source.relative_to(ROOT)}: no heading with id {anchor!r}")


def rendered(page: Path, source_name: str, anchor: str, shift: int) -> str:
    """A block's text as the page should hold it."""
    source = ROOT / source_name
    if not source.is_file():
        raise ValueError(f"{page.relative_to(ROOT)}: the generated block's source {source_name} does not exist")
    text = section(source, anchor)
    text = "\n".join(f"{'#' * min(6, len(m.group(1)) + shift)} {m.group(2)}" if (m := HEADING.match(line)) else line
                     for line in text.splitlines())

    def relink(m: re.Match[str]) -> str:
        target = m.group(2)
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("/"):
            return m.group(0)
        return m.group(1) + os.path.relpath(source.parent / target, page.parent).replace(os.sep, "/")

    return LINK.sub(relink, text) + "\n"


def sync(check: bool) -> list[str]:
    """Rewrite (or, with ``check``, only list) the pages' stale blocks; returns 'page: source#anchor' of each."""
    stale = []
    for pattern in PAGES:
        for page in sorted(ROOT.glob(pattern)):
            text = page.read_text(encoding="utf-8")

            def replace(m: re.Match[str]) -> str:
                body = rendered(page, m.group("source"), m.group("anchor"), int(m.group("shift") or 0))
                if body != m.group("body"):
                    stale.append(f"{page.relative_to(ROOT)}: {m.group('source')}#{m.group('anchor')}")
                return m.group(1) + body + m.group("end")

            new = BLOCK.sub(replace, text)
            if new != text and not check:
                page.write_text(new, encoding="utf-8")
    return stale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only list the stale blocks; exit 1 if any")
    args = parser.parse_args()
    stale = sync(args.check)
    for name in stale:
        print(("stale: " if args.check else "rewrote: ") + name)
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
