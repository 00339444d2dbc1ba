"""The top level: :func:`write_report` turns folders of runs into ``report.md``,
``report.csv``, ``runs.csv`` and figures."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cdbloss.lab.experiments.report.figures import _figures
from cdbloss.lab.experiments.report.labels import row_labels
from cdbloss.lab.experiments.report.runs import RunRecord, _column_key, _drop_duplicates, load_runs
from cdbloss.lab.experiments.report.tables import (
    RUN_FIELDS,
    SELECT_FIELDS,
    _compute_table,
    _csv_text,
    _tables,
    run_rows,
)
from cdbloss.lab.io import atomic_write_text


def write_report(
    folder: str | Path | Sequence[str | Path],
    out_dir: str | Path | None = None,
    figures: bool = True,
    paired_against: str | None = None,
    seeds: Sequence[int] | None = None,
) -> Path:
    """Write ``report.md``, ``report.csv``, ``runs.csv`` and ``figures/*.png`` for the runs
    under ``folder``.

    ``report.csv`` holds the tables' cells (mean, std, n); ``runs.csv`` one
    row per run (:func:`run_rows`), the per-seed values behind them.

    Args:
        folder: a folder of runs, or several whose runs make one report (e.g.
            Table 2's fixed tau values beside Table 1's dynamic-tau runs).
        out_dir: where to write; defaults to ``folder`` (a store's folder for a store) and
            is required for several.
        figures: also draw the PNG figures (needs matplotlib).
        paired_against: the row label that the paired-by-seed table compares
            every other row with; default :func:`default_reference` (the
            paper's CDB-CE). The table appears where a cell has two or more
            seeds.
        seeds: keep only the runs of these seeds (default: every run), e.g. to
            set a grid's complete seeds beside each other while another seed
            is still running, or to match the seeds of two folders. A seed
            with no finished run is refused before anything is written.

    Returns:
        The path of ``report.md``.
    """
    folders = [Path(folder)] if isinstance(folder, (str, Path)) else [Path(f) for f in folder]
    if not folders:
        raise ValueError("no run folder given")
    if out_dir is None and len(folders) > 1:
        raise ValueError(f"a report of {len(folders)} folders needs out_dir (--out)")
    skipped: list[str] = []
    runs = _drop_duplicates([r for f in folders for r in load_runs(f, skipped)], skipped)
    where = ", ".join(str(f) for f in folders)
    if not runs:
        raise ValueError(f"no finished runs (result.json with status done) under {where!r}")
    runs, kept = _keep_seeds(runs, seeds, where)
    first = folders[0] if folders[0].is_dir() else folders[0].parent  # a store: its folder
    out = Path(out_dir) if out_dir is not None else first
    by_protocol: dict[str, list[RunRecord]] = defaultdict(list)
    for r in runs:
        by_protocol[r.protocol].append(r)
    if paired_against is not None:
        _check_row(paired_against, by_protocol)
    md = [_title(len(runs), where, kept, len(skipped)), ""]
    all_rows: list[dict[str, Any]] = []
    for protocol, group in sorted(by_protocol.items()):
        text, rows = _tables(group, paired_against)
        md.append(text)
        all_rows += rows
        if figures:
            for path in _figures(group, out / "figures", protocol):
                md.append(f"![{path.stem}](figures/{path.name})\n")
    md.append(_compute_table(runs))
    return _write_files(out, md, all_rows, by_protocol)


def _keep_seeds(
    runs: list[RunRecord], seeds: Sequence[int] | None, where: str
) -> tuple[list[RunRecord], str]:
    """The runs of ``seeds`` (all runs for None) and the title's note on them (``" (seeds 0, 1 only)"``).

    Refuses, before anything is written, an empty ``seeds`` and a seed with no finished run.
    """
    if seeds is None:
        return runs, ""
    wanted = sorted(set(seeds))
    found = {r.config["seed"] for r in runs}
    missing = [s for s in wanted if s not in found]
    if not wanted:
        raise ValueError("seeds=[] keeps no run; give at least one seed, or None for all")
    if missing:
        raise ValueError(
            f"seeds={list(seeds)!r}: no finished run has seed(s) {missing}; "
            f"the runs under {where!r} have seeds {sorted(found)}"
        )
    noun = "seed" if len(wanted) == 1 else "seeds"
    kept = f" ({noun} {', '.join(str(s) for s in wanted)} only)"
    return [r for r in runs if r.config["seed"] in wanted], kept


def _title(n_runs: int, where: str, kept: str, n_skipped: int) -> str:
    """The report's first line: how many runs, from where, which seeds, how many files left out."""
    noun = "run" if n_runs == 1 else "runs"
    left_out = ""
    if n_skipped:
        files = "file" if n_skipped == 1 else "files"
        left_out = f"; {n_skipped} result {files} skipped (unreadable or duplicate)"
    return f"# Report: {n_runs} finished {noun} under `{where}`{kept}{left_out}"


def _check_row(label: str, by_protocol: dict[str, list[RunRecord]]) -> None:
    """Refuse a ``paired_against`` that is no row of the report; the message lists the rows."""
    known = sorted(
        {
            row
            for group in by_protocol.values()
            for row in row_labels(group, _column_key(group)).values()
        }
    )
    if label not in known:
        raise ValueError(
            f"paired_against={label!r} is not a row of this report; its rows: "
            + ", ".join(repr(k) for k in known)
        )


def _write_files(
    out: Path,
    md: list[str],
    cells: list[dict[str, Any]],
    by_protocol: dict[str, list[RunRecord]],
) -> Path:
    """Write ``report.csv`` (the tables' cells), ``runs.csv`` (one row per run) and
    ``report.md`` (``md``'s parts) into ``out``; return the path of ``report.md``."""
    fields = ["protocol", "method", "column", "value", "metric", "mean", "std", "n"]
    atomic_write_text(out / "report.csv", _csv_text(cells, fields))
    groups = [group for _, group in sorted(by_protocol.items())]
    per_run = [row for group in groups for row in run_rows(group)]
    selected = any(r.result.get("select") == "best" for group in groups for r in group)
    run_fields = (*RUN_FIELDS, *SELECT_FIELDS) if selected else RUN_FIELDS
    atomic_write_text(out / "runs.csv", _csv_text(per_run, run_fields))
    report = out / "report.md"
    atomic_write_text(report, "\n".join(md))
    return report
