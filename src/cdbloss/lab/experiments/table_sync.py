"""Keep the tables that the results pages quote from `cdbloss report` equal to the reports.

A quoted table is announced by a comment on the line before it (invisible once
rendered)::

    <!-- table: results/mnist_4v9_table1/report.md #2 -->
    <!-- table: results/mnist_4v9_table2_report/report.md #1 rows: CDB-CE -->

``#N`` is the N-th Markdown table of that report (1-based); ``rows: PREFIX``
keeps the header and the rows whose first cell starts with ``PREFIX``, and
``rows: A; B; C`` those that start with any of them (in the report's order;
every prefix must match a row, so a renamed row is caught)::

    <!-- table: results/mnist_lt/report.md #1 rows: CE; Balanced Softmax; CDB-CE (dyn. tau -->

    python tools/sync_results_tables.py            # rewrite the quoted tables
    python tools/sync_results_tables.py --check    # exit 1 and list the stale ones

Regenerate the reports first (the commands are on the results pages); this
script copies, it never computes. The test suite runs the check, so a results
page that disagrees with a committed report fails CI.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from cdbloss.lab.experiments.report_commands import results_pages
from cdbloss.lab.io import atomic_write_text

MARKER = re.compile(r"^<!-- table: (?P<path>\S+) #(?P<index>\d+)(?: rows: (?P<rows>.+?))? -->$")


@dataclass
class Quote:
    """One quoted table: where it sits in the page and where it comes from."""

    marker_line: int  # 0-based line of the marker
    start: int  # first line of the quoted table (== end when the table is missing)
    end: int  # one past its last line
    source: Path
    index: int
    rows: str | None


def markdown_tables(text: str) -> list[list[str]]:
    """Every block of consecutive lines starting with ``|``, in order."""
    tables: list[list[str]] = []
    current: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


def _table_end(lines: list[str], start: int) -> int:
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return end


def find_quotes(lines: list[str], root: Path) -> list[Quote]:
    """The marked tables of a page, with the line span each one occupies now."""
    quotes = []
    for i, line in enumerate(lines):
        match = MARKER.match(line.strip())
        if not match:
            if line.strip().startswith("<!-- table:"):
                raise ValueError(
                    f"line {i + 1}: malformed marker {line.strip()!r}; expected "
                    "'<!-- table: PATH #N -->' or '<!-- table: PATH #N rows: PREFIX -->'"
                )
            continue
        start = i + 1
        quotes.append(
            Quote(
                i,
                start,
                _table_end(lines, start),
                root / match["path"],
                int(match["index"]),
                match["rows"],
            )
        )
    return quotes


def expected_table(quote: Quote) -> list[str]:
    """The lines the quote should hold, read from its report."""
    if not quote.source.is_file():
        raise FileNotFoundError(
            f"line {quote.marker_line + 1}: report {quote.source} does not exist; run its "
            "`cdbloss report` command first"
        )
    tables = markdown_tables(quote.source.read_text())
    if not 1 <= quote.index <= len(tables):
        raise ValueError(
            f"line {quote.marker_line + 1}: {quote.source} has {len(tables)} tables, "
            f"not a #{quote.index}"
        )
    table = tables[quote.index - 1]
    if quote.rows is None:
        return table
    prefixes = [f"| {p.strip()}" for p in quote.rows.split(";")]
    for prefix in prefixes:
        if not any(row.startswith(prefix) for row in table[2:]):
            raise ValueError(
                f"line {quote.marker_line + 1}: no row of table #{quote.index} in {quote.source} "
                f"starts with {prefix[2:]!r}"
            )
    return table[:2] + [row for row in table[2:] if row.startswith(tuple(prefixes))]


def sync(page: Path, root: Path, check: bool = False) -> list[str]:
    """Bring every quoted table of ``page`` in line with its report.

    Returns a description of each table that was (or, with ``check``, would
    be) changed; the page is rewritten atomically, and only when not ``check``.
    """
    lines = page.read_text().splitlines()
    stale = []
    # from the bottom up, so that replacing one table leaves the others' spans valid
    for quote in reversed(find_quotes(lines, root)):
        want = expected_table(quote)
        if lines[quote.start : quote.end] != want:
            stale.append(
                f"{page}:{quote.marker_line + 1}: table #{quote.index} of {quote.source} differs"
            )
            lines[quote.start : quote.end] = want
    if stale and not check:
        atomic_write_text(page, "\n".join(lines) + "\n")
    return stale[::-1]


def main(argv: list[str] | None = None, root: Path | None = None) -> int:
    """Command line: sync (or ``--check``) the pages given, default every results page of
    ``root`` (the repository; default the working folder)."""
    base = Path.cwd() if root is None else root
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("pages", nargs="*", help="default: docs/results.md, docs/results/*.md")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    pages = [Path(p) for p in args.pages] or results_pages(base)
    stale = [line for page in pages for line in sync(page, base, check=args.check)]
    for line in stale:
        print(line)
    if args.check:
        return 1 if stale else 0
    print(f"{len(stale)} table(s) rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
