"""The Markdown and CSV tables of a report: the main table (the paper's number in
brackets), the paired-by-seed table, the extra metrics, compute, and ``runs.csv``."""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdbloss.lab.experiments.paper import paper_table_for
from cdbloss.lab.experiments.report.labels import BEST_TAU_ROW, _row_order, method_label, row_labels
from cdbloss.lab.experiments.report.runs import (
    _EXTRA,
    Cell,
    RunRecord,
    _column_key,
    _column_order,
    _fmt_col,
    _metric,
    _run_seconds,
    _value,
)
from cdbloss.lab.experiments.report.stats import (
    _paired_text,
    best_fixed_tau,
    default_reference,
    paired_advantage,
)


def _csv_row(
    protocol: str, label: str, col_key: str | None, col: Any, metric: str, cell: Cell
) -> dict[str, Any]:
    return {
        "protocol": protocol,
        "method": label,
        "column": col_key or "",
        "value": col,
        "metric": metric,
        "mean": cell.mean,
        "std": cell.std,
        "n": len(cell.values),
    }


@dataclass
class _Grid:
    """One protocol's runs as its tables show them: row labels by columns, cells of seeds."""

    protocol: str
    col_key: str | None
    metric_name: str
    how: str
    labels: dict[Path, str]
    rows: list[str] = field(default_factory=list)
    cols: list[Any] = field(default_factory=list)
    cells: dict[tuple[str, Any], Cell] = field(default_factory=lambda: defaultdict(Cell))
    #: (metric name of :data:`_EXTRA`, row, column) -> cell
    extra: dict[tuple[str, str, Any], Cell] = field(default_factory=lambda: defaultdict(Cell))
    #: column -> (row whose fixed tau won on validation, that tau)
    chosen_tau: dict[Any, tuple[str, float]] = field(default_factory=dict)


def _grid(runs: list[RunRecord]) -> _Grid:
    """Arrange ``runs`` (one protocol) into cells; rows and columns in table order."""
    col_key = _column_key(runs)
    metric_name, how = _metric(runs[0].protocol)
    g = _Grid(runs[0].protocol, col_key, metric_name, how, row_labels(runs, col_key))
    for r in runs:
        label = g.labels[r.path]
        col = r.data_options.get(col_key) if col_key else "all"
        if col not in g.cols:
            g.cols.append(col)
        if label not in g.rows:
            g.rows.append(label)
        g.cells[(label, col)].values.append(_value(r.result, how))
        g.cells[(label, col)].seeds.append(r.config["seed"])
        for name, key in _EXTRA:
            v = r.result["test"].get(key)
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                g.extra[(name, label, col)].values.append(100.0 * float(v))
    g.rows.sort(key=_row_order)
    g.chosen_tau = best_fixed_tau(runs, g.labels, col_key)
    for col, (label, _) in g.chosen_tau.items():
        g.cells[(BEST_TAU_ROW, col)] = g.cells[(label, col)]
        for name, _key in _EXTRA:
            if (name, label, col) in g.extra:
                g.extra[(name, BEST_TAU_ROW, col)] = g.extra[(name, label, col)]
    if g.chosen_tau:
        g.rows.append(BEST_TAU_ROW)
    g.cols.sort(key=_column_order)
    return g


def _header_row(cols: list[Any], last: str = "") -> list[str]:
    """A Markdown table's header and rule: ``method``, the columns, and ``last`` if given."""
    names = [_fmt_col(c) for c in cols] + ([last] if last else [])
    return ["| method | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]


def _tables(
    runs: list[RunRecord], paired_against: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """Markdown for one protocol's runs, and long-format CSV rows."""
    g = _grid(runs)
    paper = paper_table_for(g.protocol, runs[0].config["data"].get("options", {}))
    seeds = sorted({r.config["seed"] for r in runs})
    head = f"## {g.protocol}" + (f" (columns: {g.col_key})" if g.col_key else "")
    lines = [
        head,
        "",
        f"{g.metric_name}, mean +- std over seeds ({len(seeds)} seed{'s' if len(seeds) != 1 else ''} seen: {seeds}); n = runs per cell.",
    ]
    if paper:
        lines.append(f"In brackets: the paper's {paper[0]}.")
    if g.chosen_tau:
        lines.append(
            f"{BEST_TAU_ROW}: per column, the fixed tau whose runs had the highest mean "
            "validation macro recall (chosen without looking at the test set)."
        )
    lines += ["", *_header_row(g.cols)]
    base_of = {g.labels[r.path]: method_label(r.config) for r in runs}
    main_lines, csv_rows = _main_table(g, paper, base_of)
    lines += main_lines
    reference = paired_against if paired_against is not None else default_reference(g.rows)
    if reference in g.rows:
        paired_lines, paired_csv = _paired_table(
            g.rows, g.cols, g.cells, reference, g.how, g.protocol, g.col_key
        )
        lines += paired_lines
        csv_rows += paired_csv
    extra_lines, extra_csv = _extra_tables(g)
    return "\n".join(lines + extra_lines) + "\n", csv_rows + extra_csv


def _main_table(
    g: _Grid, paper: tuple[str, Any] | None, base_of: dict[str, str]
) -> tuple[list[str], list[dict[str, Any]]]:
    """The main table's Markdown rows (the paper's number in brackets) and CSV rows."""
    lines: list[str] = []
    csv_rows: list[dict[str, Any]] = []
    for label in g.rows:
        out = []
        base = base_of.get(label, label)  # the paper's row for "CE (epochs=160)" is "CE"
        for col in g.cols:
            cell = g.cells.get((label, col), Cell())
            text = cell.text() + (f" (n={len(cell.values)})" if cell.values else "")
            if label == BEST_TAU_ROW and col in g.chosen_tau:
                text += f" tau={g.chosen_tau[col][1]:g}"
            if (
                paper
                and base in paper[1]
                and isinstance(col, (int, float))
                and float(col) in paper[1][base]
            ):
                mean, std = paper[1][base][float(col)]
                text += f" [{mean:.2f}" + (f" +- {std:.2f}]" if std is not None else "]")
            out.append(text)
            if cell.values:
                csv_rows.append(_csv_row(g.protocol, label, g.col_key, col, g.metric_name, cell))
        lines.append(f"| {label} | " + " | ".join(out) + " |")
    return lines, csv_rows


def _extra_tables(g: _Grid) -> tuple[list[str], list[dict[str, Any]]]:
    """One table per metric of :data:`_EXTRA` that some run recorded, and its CSV rows."""
    lines: list[str] = []
    csv_rows: list[dict[str, Any]] = []
    for name, _ in _EXTRA:
        present = [label for label in g.rows if any((name, label, c) in g.extra for c in g.cols)]
        if not present:
            continue
        lines += ["", f"{name} (test), mean +- std over seeds:", "", *_header_row(g.cols)]
        for label in present:
            lines.append(
                f"| {label} | "
                + " | ".join(g.extra.get((name, label, c), Cell()).text() for c in g.cols)
                + " |"
            )
            for c in g.cols:
                found = g.extra.get((name, label, c))
                if found is not None and found.values:
                    csv_rows.append(_csv_row(g.protocol, label, g.col_key, c, name, found))
    return lines, csv_rows


def _paired_table(
    rows: list[str],
    cols: list[Any],
    cells: dict[tuple[str, Any], Cell],
    reference: str,
    how: str,
    protocol: str,
    col_key: str | None,
) -> tuple[list[str], list[dict[str, Any]]]:
    """Markdown lines and CSV rows: each row against ``reference``, seed by seed.

    Empty when no cell has two pairs (one seed says nothing a paired reading adds).
    """
    others = [r for r in rows if r not in (reference, BEST_TAU_ROW)]
    diffs = {
        (label, c): paired_advantage(
            cells.get((label, c), Cell()).by_seed(),
            cells.get((reference, c), Cell()).by_seed(),
            how,
        )
        for label in others
        for c in cols
    }
    if not any(len(d) >= 2 for d in diffs.values()):
        return [], []
    if how == "error":
        unit, side = "points of test error", "below"
    else:
        unit, side = "points of test top-1", "above"
    lines = [
        "",
        f"Paired by seed against {reference} (every seed draws one split that all methods "
        f"share). Per cell: the mean, over the seeds both rows have, of how many {unit} "
        f"{reference} is {side} the row (positive: {reference} is better), and in how many "
        "of those seeds it is better; `all`: every column's pairs together, with the "
        "two-sided sign test's p over them (ties left out: how likely a split at least "
        "this uneven would be if each row were as likely to win any pair).",
        "",
        *_header_row(cols, "all"),
    ]
    metric = f"advantage of {reference} (paired, {unit})"
    csv_rows: list[dict[str, Any]] = []
    for label in others:
        texts, pooled = [], []
        for c in cols:
            d = diffs[(label, c)]
            pooled += d
            texts.append(f"{statistics.fmean(d):+.2f} ({_paired_text(d)})" if d else "-")
            if d:
                csv_rows.append(_csv_row(protocol, label, col_key, c, metric, Cell(d)))
        if pooled:
            lines.append(
                f"| {label} | " + " | ".join(texts) + f" | {_paired_text(pooled, test=True)} |"
            )
    return lines, csv_rows


def _compute_table(runs: list[RunRecord]) -> str:
    """Markdown: training + validation seconds per run, by method, and the total."""
    seconds: dict[str, list[float]] = defaultdict(list)
    for r in runs:
        spent = _run_seconds(r)
        if spent is not None:
            seconds[method_label(r.config)].append(spent)
    if not seconds:
        return ""
    total = sum(sum(v) for v in seconds.values())
    lines = [
        "## Compute",
        "",
        "Seconds of training + validation per run (each run on its own worker; loading "
        "and testing not counted):",
        "",
        "| method | runs | mean s/run | total s |",
        "|---|---|---|---|",
    ]
    for label in sorted(seconds, key=_row_order):
        v = seconds[label]
        lines.append(f"| {label} | {len(v)} | {statistics.fmean(v):.0f} | {sum(v):.0f} |")
    count = sum(len(v) for v in seconds.values())
    lines += [
        "",
        f"{'The one run' if count == 1 else f'All {count} runs'}: {total:.0f} s ({total / 3600:.2f} h).",
        "",
    ]
    return "\n".join(lines)


#: The columns of ``runs.csv``, one row per finished run.
RUN_FIELDS = (
    "protocol",
    "method",
    "column",
    "value",
    "seed",
    "metric",
    "result",
    "top1_accuracy",
    "macro_recall",
    "train_val_s",
    "run",
)


#: Added to runs.csv when some run kept its best-on-validation checkpoint
#: (``train.select: best``): the epoch it kept and the last epoch's top-1, beside it.
SELECT_FIELDS = ("selected_epoch", "top1_accuracy_last")


def run_rows(runs: list[RunRecord]) -> list[dict[str, Any]]:
    """One row per run of one protocol: the values behind every cell of the main table.

    ``method`` is the run's row in the table (:func:`row_labels`), ``value``
    its column (e.g. the majority ratio), ``result`` its main metric as the
    table shows it (test error % for ``mnist-4v9``, top-1 % otherwise), and
    ``run`` the run's folder as it was found (relative where the folder given
    was relative). Rows come sorted by table row, column, seed.
    """
    if not runs:
        return []
    protocol = runs[0].protocol
    col_key = _column_key(runs)
    metric_name, how = _metric(protocol)
    labels = row_labels(runs, col_key)
    rows = []
    for r in runs:
        seconds = _run_seconds(r)
        rows.append(
            {
                "protocol": protocol,
                "method": labels[r.path],
                "column": col_key or "",
                "value": r.data_options.get(col_key) if col_key else "all",
                "seed": r.config["seed"],
                "metric": metric_name,
                "result": round(_value(r.result, how), 4),
                "top1_accuracy": round(float(r.result["test"]["top1_accuracy"]), 6),
                "macro_recall": round(float(r.result["test"].get("macro_recall", math.nan)), 6),
                "train_val_s": round(seconds, 1) if seconds is not None else math.nan,
                "run": r.path.as_posix(),
                "selected_epoch": r.result.get("best_epoch", r.result.get("epochs")),
                "top1_accuracy_last": round(
                    float(r.result.get("test_last", r.result["test"])["top1_accuracy"]), 6
                ),
            }
        )
    return sorted(
        rows, key=lambda row: (_row_order(row["method"]), _column_order(row["value"]), row["seed"])
    )


def _csv_text(rows: list[dict[str, Any]], fields: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
