from __future__ import annotations

from pathlib import Path

import pytest

from cdbloss.lab.experiments.report_commands import results_pages
from cdbloss.lab.experiments.table_sync import find_quotes, main, markdown_tables, sync

ROOT = Path(__file__).resolve().parents[3]

REPORT = """# Report

| method | 0.9 |
|---|---|
| CE | 1.50 (n=2) |
| CDB-CE (dyn. tau) | 0.90 (n=2) |
| CDB-CE (tau=1) | 1.00 (n=2) |

Paired:

| method | 0.9 | all |
|---|---|---|
| CE | +0.60 (2/2) | 2/2 |
"""


def _page(tmp_path: Path, body: str) -> Path:
    (tmp_path / "r").mkdir(exist_ok=True)
    (tmp_path / "r" / "report.md").write_text(REPORT)
    page = tmp_path / "results.md"
    page.write_text(body)
    return page


def test_tables_are_blocks_of_pipe_lines() -> None:
    tables = markdown_tables(REPORT)
    assert [len(t) for t in tables] == [5, 3]
    assert tables[1][2] == "| CE | +0.60 (2/2) | 2/2 |"


def test_a_stale_quote_is_rewritten_and_the_rest_of_the_page_kept(tmp_path: Path) -> None:
    page = _page(
        tmp_path,
        "intro\n<!-- table: r/report.md #2 -->\n| method | old |\n|---|---|\n\nafter\n"
        "<!-- table: r/report.md #1 rows: CDB-CE -->\n| stale |\nend\n",
    )
    assert len(sync(page, tmp_path, check=True)) == 2
    assert "| stale |" in page.read_text()  # --check changes nothing
    assert len(sync(page, tmp_path)) == 2
    text = page.read_text()
    assert text.startswith("intro\n<!-- table: r/report.md #2 -->\n| method | 0.9 | all |\n")
    assert "| CE | +0.60 (2/2) | 2/2 |\n\nafter\n" in text
    assert "| CDB-CE (dyn. tau) | 0.90 (n=2) |\n| CDB-CE (tau=1) | 1.00 (n=2) |\nend\n" in text
    assert "| CE | 1.50" not in text  # the row filter kept the CDB-CE rows only
    assert sync(page, tmp_path, check=True) == []  # now in line


def test_several_prefixes_keep_their_rows_in_the_report_order(tmp_path: Path) -> None:
    page = _page(tmp_path, "<!-- table: r/report.md #1 rows: CDB-CE (tau; CE -->\n| old |\n")
    sync(page, tmp_path)
    assert page.read_text().splitlines()[3:] == [
        "| CE | 1.50 (n=2) |",
        "| CDB-CE (tau=1) | 1.00 (n=2) |",
    ]


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("<!-- table: r/missing.md #1 -->", "does not exist"),
        ("<!-- table: r/report.md #3 -->", "has 2 tables, not a #3"),
        ("<!-- table: r/report.md #1 rows: EQL -->", "no row of table #1.*'EQL'"),
        ("<!-- table: r/report.md #1 rows: CE; EQL -->", "no row of table #1.*'EQL'"),
        ("<!-- table: r/report.md -->", "malformed marker"),
    ],
)
def test_bad_markers_are_refused_and_nothing_is_written(
    tmp_path: Path, marker: str, message: str
) -> None:
    page = _page(tmp_path, f"{marker}\n| old |\n")
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        sync(page, tmp_path)
    assert page.read_text() == f"{marker}\n| old |\n"


def test_check_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = _page(tmp_path, "<!-- table: r/report.md #2 -->\n| old |\n")
    # main() resolves the marker's path from the repo root (``root``)
    assert main([str(page), "--check"], tmp_path) == 1
    assert "differs" in capsys.readouterr().out
    assert main([str(page)], tmp_path) == 0
    assert main([str(page), "--check"], tmp_path) == 0


def test_every_results_page_is_synced_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "docs" / "results").mkdir(parents=True)
    _page(tmp_path, "")
    marker = "<!-- table: r/report.md #2 -->\n| old |\n"
    (tmp_path / "docs" / "results.md").write_text(marker)
    (tmp_path / "docs" / "results" / "one.md").write_text("no table\n")
    (tmp_path / "docs" / "results" / "two.md").write_text(marker)
    assert main(["--check"], tmp_path) == 1
    out = capsys.readouterr().out
    assert "results.md:1:" in out and "two.md:1:" in out and "one.md" not in out


def test_the_results_page_quotes_the_committed_reports() -> None:
    """The results pages must show what `cdbloss report` wrote, not a stale copy."""
    pages = results_pages(ROOT)
    quotes = [q for page in pages for q in find_quotes(page.read_text().splitlines(), ROOT)]
    assert len(quotes) >= 3  # Tables 1 and 2 quoted
    stale = [line for page in pages for line in sync(page, ROOT, check=True)]
    assert stale == [], "run `python tools/sync_results_tables.py` after regenerating the reports"
