from __future__ import annotations

from pathlib import Path

import pytest

from cdbloss.lab.experiments.report import write_report
from cdbloss.lab.experiments.report_commands import check, main, report_commands
from cdbloss.lab.experiments.store import pack, read_run_file

ROOT = Path(__file__).resolve().parents[3]
TABLE1 = ROOT / "results" / "mnist_4v9_table1"


def _copy_run(name: str, dest: Path) -> None:
    """A committed Table 1 run's result file (from the grid's store), copied under ``dest``."""
    (dest / name).mkdir(parents=True)
    (dest / name / "result.json").write_text(read_run_file(TABLE1 / name, "result.json"))


def test_commands_are_read_from_code_blocks_only(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Prose: cdbloss report not/a/command\n"
        "```\n"
        "cdbloss sweep c.yaml --out a\n"
        "cdbloss report a --seeds 0-2   # the complete seeds\n"
        "cdbloss report b && cdbloss report 'c d' --out e\n"
        "```\n"
        "cdbloss report outside/again\n"
    )
    commands = report_commands(page)
    assert [(c.line, c.argv) for c in commands] == [
        (4, ("report", "a", "--seeds", "0-2")),
        (5, ("report", "b")),
        (5, ("report", "c d", "--out", "e")),
    ]
    assert commands[2].text == "cdbloss report 'c d' --out e"


def test_a_command_that_no_longer_gives_its_report_is_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the committed report was made from seed 0; then a seed-1 run is committed
    # to the same folder: the command without --seeds now averages both.
    monkeypatch.chdir(tmp_path)  # the reports name their folders as the command gave them
    runs = tmp_path / "results" / "grid"
    _copy_run("seed=0__name=ce__ratio=0.9", runs)
    write_report("results/grid", figures=False)
    committed = (runs / "report.md").read_text()
    page = tmp_path / "page.md"
    page.write_text("```\ncdbloss report results/grid\n```\n")
    assert check(page, tmp_path) == []

    _copy_run("seed=1__name=ce__ratio=0.9", runs)
    (drifted,) = check(page, tmp_path, verbose=True)
    assert (
        "page.md:2: `cdbloss report results/grid` no longer gives results/grid/report.md" in drifted
    )
    assert "+# Report: 2 finished runs under `results/grid`" in drifted  # the diff, paths relative
    assert (runs / "report.md").read_text() == committed  # the check writes nothing there

    page.write_text("```\ncdbloss report results/grid --seeds 0 --out results/grid\n```\n")
    write_report("results/grid", figures=False, seeds=[0])
    assert check(page, tmp_path) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("no command here\n", "gives no `cdbloss report` command"),
        (
            "```\ncdbloss report results/a results/b\n```\n",
            "reads several folders but has no --out",
        ),
        ("```\ncdbloss report results/a --out results/x\n```\n", "which is not committed"),
    ],
)
def test_bad_pages_are_refused(tmp_path: Path, body: str, message: str) -> None:
    page = tmp_path / "page.md"
    page.write_text(body)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        check(page, tmp_path)


def test_every_report_command_of_the_results_page_regenerates_its_committed_report(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([], ROOT) == 0, capsys.readouterr().out


def test_every_results_page_is_checked_and_a_store_names_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "results" / "grid"
    _copy_run("seed=0__name=ce__ratio=0.9", runs)
    write_report("results/grid", figures=False)
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "results.md").write_text("No command on the summary page.\n")
    (tmp_path / "docs" / "results" / "a.md").write_text("```\ncdbloss report results/grid\n```\n")
    assert main([], tmp_path) == 0
    assert "of 1 results page(s)" in capsys.readouterr().out
    _copy_run("seed=1__name=ce__ratio=0.9", runs)  # the report is now stale ...
    (tmp_path / "docs" / "results" / "b.md").write_text(
        "```\ncdbloss report results/grid/runs.jsonl.gz\n```\n"  # ... as a store's report too
    )
    pack(runs)
    assert main([], tmp_path) == 1
    out = capsys.readouterr().out
    assert "a.md:2:" in out and "b.md:2:" in out and "gives results/grid/report.md" in out
