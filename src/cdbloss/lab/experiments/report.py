"""Turn a folder of finished runs into the paper's tables (Markdown, CSV) and figures (PNG).

Reads every ``result.json`` under a folder; plots are a leaf: they read saved
results and never train. Runs that differ only in their seed are one cell:
mean +- std over seeds. Rows are methods, columns the data option that varies
(majority ratio, imbalance factor). Where the protocol matches one of the
paper's tables, the paper's number stands beside ours.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdbloss.lab.engine.checkpoint import read_json
from cdbloss.lab.engine.config import VOLATILE_KEYS, flatten_keys
from cdbloss.lab.experiments.paper import paper_table_for
from cdbloss.lab.experiments.store import result_sources
from cdbloss.lab.io import atomic_write_bytes, atomic_write_text

__all__ = [
    "BEST_TAU_ROW",
    "Cell",
    "RunRecord",
    "best_fixed_tau",
    "default_reference",
    "load_runs",
    "method_label",
    "paired_advantage",
    "sign_test",
    "write_report",
]

_LABELS = {
    "ce": "CE",
    "ifw": "IFW",
    "ifw-sqrt": "IFW (sqrt)",
    "focal": "Focal",
    "cb-ce": "CB",
    "cb-focal": "CB-Focal",
    "ldam": "LDAM",
    "ldam-drw": "LDAM-DRW",
    "balanced-softmax": "Balanced Softmax",
    "logit-adjusted": "Logit adjustment",
    "eql": "EQL",
    "cdb-ce": "CDB-CE",
    "cdb-focal": "CDB-Focal",
    "cdb-ce-paper": "CDB-CE",  # the paper's rule: what "cdb-ce" named before 2026-12-02
    "cdb-ce-authors": "CDB-CE authors' code",
    "cdb-bs": "CDB-BS",
    "cdb-bs-offset": "CDB-BS offset",
    "cdb-ce-offset": "CDB-CE offset",
    "dbm": "DBM",
    "dbm-bs": "DBM-BS",
}

#: names of CDB-CE under the paper's rule: ``cdb-ce`` in runs before 2026-12-02
_PAPER_NAMES = ("cdb-ce", "cdb-ce-paper")

#: registered CDB forms whose name already fixes tau and the reduction
_CDB_PRESETS = ("cdb-ce-authors",)


_ORDER = ["CE", "IFW", "IFW (sqrt)", "Focal", "CB", "CB-Focal", "EQL", "L2RW", "MWN", "LDAM", "LDAM-DRW",
          "Balanced Softmax", "Logit adjustment", "DBM", "DBM-BS", "CDB-CE authors' code", "CDB-CE",
          "CDB-Focal", "CDB-BS", "CDB-CE offset", "CDB-BS offset"]  # fmt: skip


def _row_order(label: str) -> tuple[int, list[Any]]:
    """The paper's row order: baselines first, CDB last; unknown labels after;
    then by name with numbers compared as numbers (epochs=80 before epochs=160)."""
    base = label.split(" (")[0].split(" [")[0]
    parts = [
        float(p) if p.replace(".", "", 1).isdigit() else p
        for p in re.split(r"(\d+(?:\.\d+)?)", label)
    ]
    natural = [(0, p, "") if isinstance(p, float) else (1, 0.0, p) for p in parts]
    return (_ORDER.index(base) if base in _ORDER else len(_ORDER), natural)


def _column_order(value: Any) -> tuple[bool, Any]:
    """Columns left to right: numbers ascending, then other values by name."""
    numeric = isinstance(value, (int, float))
    return (not numeric, value if numeric else str(value))


def method_label(config: dict[str, Any]) -> str:
    """A row label: the loss (and tau for CDB, the reduction if not the default, the meta method)."""
    loss, opts = config["loss"]["name"], config["loss"].get("options", {})
    method = config.get("train", {}).get("method", "standard")
    if method == "l2rw":
        return "L2RW" if loss == "ce" else f"L2RW ({_LABELS.get(loss, loss)})"
    if method == "mwn":
        return "MWN" if loss == "ce" else f"MWN ({_LABELS.get(loss, loss)})"
    label = str(_LABELS.get(loss, loss))
    if loss in _CDB_PRESETS:
        parts = _rule_changes(opts)
        if "tau" in opts:
            parts.insert(0, _tau_label(opts["tau"]))
        label += f" ({', '.join(parts)})" if parts else ""
    elif loss.startswith("cdb"):
        what = _tau_label(opts.get("tau", "dynamic"))
        label += f" ({', '.join([what, *_rule_changes(opts)])})"
    elif loss.startswith("dbm"):  # the margins' settings, where not the defaults
        parts = [f"{k.replace('_', ' ')} {float(opts[k]):g}" for k in _DBM_OPTIONS if k in opts]
        label += f" ({', '.join(parts)})" if parts else ""
    reduction = opts.get("reduction")
    if reduction and reduction != "mean":
        label += f" [{reduction}]"
    if config.get("train", {}).get("sampler", "uniform") == "cdb":
        label += " + CDB-S"
    stage2 = config.get("stage2", {}).get("method", "none")
    if stage2 != "none":  # a second stage started from this loss's run
        label += f" + {_STAGE2_LABELS.get(stage2, stage2)}"
    return label


#: DBM options a row label names (``max margin 0.1``)
_DBM_OPTIONS = ("max_margin", "power", "scale", "instance_scale")

#: Row-label suffixes of the second stages (:mod:`cdbloss.lab.engine.stage2`).
_STAGE2_LABELS = {
    "crt": "cRT",
    "lws": "LWS",
    "wb": "weight balancing",
    "tau-norm": "tau-norm",
    "logit-adjust": "post-hoc logit adjustment",
}


def _tau_label(tau: Any) -> str:
    if tau == "dynamic":
        return "dyn. tau"
    return str(tau) if isinstance(tau, str) else f"tau={tau:g}"


@dataclass
class RunRecord:
    """What the report needs from one finished run."""

    path: Path
    config: dict[str, Any]
    result: dict[str, Any]

    @property
    def protocol(self) -> str:
        return str(self.config["data"]["protocol"])

    @property
    def data_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.config["data"].get("options", {}).items() if k != "seed"}


@dataclass
class Cell:
    """Values of one metric over the seeds of one (method, column).

    ``seeds[i]`` is the seed of ``values[i]`` where the table records it (the
    main metric, which the paired table reads); empty otherwise.
    """

    values: list[float] = field(default_factory=list)
    seeds: list[Any] = field(default_factory=list)

    def by_seed(self) -> dict[Any, float]:
        """Seed -> value, for pairing with another cell over the same seeds."""
        return dict(zip(self.seeds, self.values, strict=True))

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else math.nan

    def text(self, digits: int = 2) -> str:
        if not self.values:
            return "-"
        if len(self.values) == 1:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} +- {self.std:.{digits}f}"


def load_runs(folder: str | Path, skipped: list[str] | None = None) -> list[RunRecord]:
    """Every finished run (``result.json`` with status done) under ``folder``, sorted by path.

    ``folder`` is a folder of runs, whose run stores (``runs.jsonl.gz``) count as
    their runs' folders, or a store file. A ``result.json`` that cannot be read
    (not JSON, cut short, without a config or test metrics) is left out with a
    warning on stderr that names it and says why; ``skipped`` (when given)
    collects those warnings. An unreadable store is an error (:class:`.store.StoreError`).
    """
    runs = []
    for path, stored in result_sources(folder):
        try:
            result = read_json(path, "result file") if stored is None else stored
            if not isinstance(result, dict):
                raise ValueError(f"result file {str(path)!r} is unreadable: not a JSON object")
            if result.get("status") != "done":
                continue
            record = RunRecord(path.parent, result["config"], result)
            _ = (record.protocol, float(result["test"]["top1_accuracy"]))  # what every table reads
        except (ValueError, OSError, KeyError, TypeError) as err:
            if isinstance(err, ValueError):
                why = str(err)
            elif isinstance(err, KeyError):
                why = f"result file {str(path)!r} is unreadable: it has no {err.args[0]!r}"
            else:
                why = f"result file {str(path)!r} is unreadable: {type(err).__name__}: {err}"
            print(f"warning: {why}; skipped", file=sys.stderr, flush=True)
            if skipped is not None:
                skipped.append(why)
            continue
        runs.append(record)
    return runs


def _drop_duplicates(runs: list[RunRecord], skipped: list[str]) -> list[RunRecord]:
    """Keep one run of each (config, seed): a run copied to a second folder, or two
    folders given that hold the same run, must count once in a cell's n."""
    ignore = {"name", "sweep", *VOLATILE_KEYS}
    first: dict[str, Path] = {}
    kept = []
    for r in runs:
        flat = {k: v for k, v in flatten_keys(r.config).items() if k not in ignore}
        key = json.dumps(flat, sort_keys=True, default=str)
        if key in first:
            why = f"run {str(r.path)!r} is the same run and seed as {str(first[key])!r}"
            print(f"warning: {why}; skipped", file=sys.stderr, flush=True)
            skipped.append(why)
            continue
        first[key] = r.path
        kept.append(r)
    return kept


def _column_key(runs: list[RunRecord]) -> str | None:
    """The data option that varies across ``runs``; else the imbalance itself; else None.

    The imbalance (``ratio``, ``imbalance_factor``) is a column even when all
    runs share one value, so that a one-column table still says which it is
    and still stands beside the paper's number.
    """
    keys = sorted({k for r in runs for k in r.data_options})
    varying = [k for k in keys if len({json.dumps(r.data_options.get(k)) for r in runs}) > 1]
    for preferred in ("ratio", "imbalance_factor"):
        if preferred in varying:
            return preferred
    if varying:
        return varying[0]
    for preferred in ("ratio", "imbalance_factor"):
        if all(preferred in r.data_options for r in runs):
            return preferred
    return None


def _metric(protocol: str) -> tuple[str, str]:
    """(name shown, how to read it) for the main table."""
    if protocol == "mnist-4v9":
        return "test error %", "error"
    return "test top-1 %", "top1"


def _value(result: dict[str, Any], how: str) -> float:
    top1 = float(result["test"]["top1_accuracy"])
    return 100.0 * (1.0 - top1) if how == "error" else 100.0 * top1


_EXTRA = (
    ("macro recall %", "macro_recall"),
    ("many-shot %", "many_shot_accuracy"),
    ("medium-shot %", "medium_shot_accuracy"),
    ("few-shot %", "few_shot_accuracy"),
)


def _fmt_col(v: Any) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) else str(v)


def row_labels(runs: list[RunRecord], col_key: str | None) -> dict[Path, str]:
    """A row label per run: :func:`method_label`, plus the settings that tell apart
    runs which share a label (e.g. ``CE (epochs=160, milestones=[120])``).

    Seeds and the column's data option never split rows; all else does, so
    runs with different settings are never averaged together.
    """
    ignore = {"seed", "name", "sweep", *VOLATILE_KEYS}
    if col_key:
        ignore.add(f"data.options.{col_key}")
    groups: dict[str, list[RunRecord]] = defaultdict(list)
    for r in runs:
        groups[method_label(r.config)].append(r)
    labels: dict[Path, str] = {}
    for label, group in groups.items():
        flats = {
            r.path: {k: json.dumps(v, sort_keys=True) for k, v in flatten_keys(r.config).items()}
            for r in group
        }
        keys = sorted({k for f in flats.values() for k in f} - ignore)
        varying = [k for k in keys if len({f.get(k) for f in flats.values()}) > 1]
        for r in group:
            if varying:
                extra = ", ".join(
                    f"{k.split('.')[-1]}={flats[r.path].get(k, '-')}" for k in varying
                )
                labels[r.path] = f"{label} ({extra})"
            else:
                labels[r.path] = label
    return labels


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


#: The row that picks, per column, the fixed tau with the best validation score.
BEST_TAU_ROW = "CDB-CE (best fixed tau on val)"


def _fixed_tau(config: dict[str, Any]) -> float | None:
    """The fixed tau of a plain CDB-CE run (None for dynamic tau, a variant, another method)."""
    method = config.get("train", {}).get("method", "standard")
    if config["loss"]["name"] not in _PAPER_NAMES or method != "standard":
        return None
    opts = config["loss"].get("options", {})
    tau = opts.get("tau", "dynamic")
    if not _paper_rule(opts) or isinstance(tau, bool) or not isinstance(tau, (int, float)):
        return None
    return float(tau)


def _rule_changes(loss_options: dict[str, Any]) -> list[str]:
    """How CDB loss options change the paper's weight rule, as label parts (none: the paper's).

    The moving average of the accuracies (``momentum``), the floor on the
    difficulty (``min_difficulty``), the solved threshold (``solved_accuracy``),
    the cap (``max_ratio``), the deferral (``defer_until``), the prior
    (``prior_strength``), the training-stream source and another base loss
    are this library's, not the paper's.
    """
    parts = []
    if loss_options.get("eps", 1e-4) != 1e-4:
        parts.append(f"eps {float(loss_options['eps']):g}")
    if loss_options.get("momentum"):
        parts.append(f"momentum {float(loss_options['momentum']):g}")
    if loss_options.get("min_difficulty"):
        parts.append(f"min. difficulty {float(loss_options['min_difficulty']):g}")
    if loss_options.get("solved_accuracy", 1.0) != 1.0:
        parts.append(f"solved at {float(loss_options['solved_accuracy']):g}")
    if loss_options.get("max_ratio") is not None:
        parts.append(f"cap {float(loss_options['max_ratio']):g}")
    if loss_options.get("defer_until"):
        parts.append(f"from epoch {int(loss_options['defer_until'])}")
    if loss_options.get("prior_strength"):
        parts.append(f"prior {float(loss_options['prior_strength']):g}")
    if loss_options.get("source", "val") != "val":
        parts.append(f"{loss_options['source']} accuracy")
    if loss_options.get("base", "ce") not in ("ce", "focal"):
        parts.append(f"over {loss_options['base']}")
    if loss_options.get("apply_as", "weight") != "weight":
        parts.append(f"as {loss_options['apply_as']}")
    if loss_options.get("offset_scale", 1.0) != 1.0:
        parts.append(f"offset x{float(loss_options['offset_scale']):g}")
    return parts


def _paper_rule(loss_options: dict[str, Any]) -> bool:
    """Whether CDB loss options keep the paper's weight rule (no momentum, floor or threshold)."""
    return not _rule_changes(loss_options)


def best_fixed_tau(
    runs: list[RunRecord], labels: dict[Path, str], col_key: str | None
) -> dict[Any, tuple[str, float]]:
    """Per column, the fixed-tau CDB-CE row with the highest mean validation macro recall.

    The choice reads only the validation split (``result["val"]``), never the
    test set, so the row it feeds is a fair "best fixed tau" for a table. A
    column needs at least two fixed tau values to have a choice.

    Returns:
        ``column -> (row label, tau)``.
    """
    scores: dict[Any, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    taus: dict[str, float] = {}
    for r in runs:
        tau = _fixed_tau(r.config)
        value = r.result.get("val", {}).get("val_macro_recall")
        if tau is None or value is None or math.isnan(float(value)):
            continue
        col = r.data_options.get(col_key) if col_key else "all"
        scores[json.dumps(col)][labels[r.path]].append(float(value))
        taus[labels[r.path]] = tau
    best: dict[Any, tuple[str, float]] = {}
    for col, by_label in scores.items():
        if len(by_label) >= 2:
            label = max(sorted(by_label), key=lambda lab: statistics.fmean(by_label[lab]))
            best[json.loads(col)] = (label, taus[label])
    return best


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


def default_reference(rows: Sequence[str]) -> str | None:
    """The row the paired table compares against: the paper's CDB-CE (dynamic
    tau) if present, else the first other CDB row, else None (no paired table)."""
    if "CDB-CE (dyn. tau)" in rows:
        return "CDB-CE (dyn. tau)"
    return next((r for r in rows if r.startswith("CDB") and r != BEST_TAU_ROW), None)


def paired_advantage(row: dict[Any, float], reference: dict[Any, float], how: str) -> list[float]:
    """Per seed both have, how many points better ``reference`` is than ``row``.

    ``row`` and ``reference`` map seed -> value of the table's metric. For an
    error (``how="error"``) better is lower, so the advantage is
    ``row - reference``; for an accuracy it is ``reference - row``. Seeds are
    paired because every seed draws one data split that all methods share.
    """
    sign = 1.0 if how == "error" else -1.0
    return [sign * (row[s] - reference[s]) for s in sorted(row) if s in reference]


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test: the p-value of ``wins`` against ``losses``.

    The chance, if each untied pair were a fair coin, of a split at least as
    lopsided as the one seen: ``p = min(1, 2 * sum_{i <= k} C(n, i) / 2^n)``
    with ``n = wins + losses`` and ``k = min(wins, losses)``. Ties are left
    out before calling. ``n = 0`` gives 1.

    Example:
        >>> round(sign_test(9, 1), 4)
        0.0215
        >>> sign_test(3, 3)
        1.0
    """
    if wins < 0 or losses < 0:
        raise ValueError(f"wins and losses must be >= 0, got {wins} and {losses}")
    n, k = wins + losses, min(wins, losses)
    tail: float = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2.0 * tail)


def _p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _paired_text(diffs: list[float], test: bool = False) -> str:
    """``wins/pairs`` of the reference, with ties named; with ``test`` the sign test's p."""
    wins, ties = sum(d > 0 for d in diffs), sum(d == 0 for d in diffs)
    text = f"{wins}/{len(diffs)}" + (f", {ties} tie{'s' if ties != 1 else ''}" if ties else "")
    if test:
        text += ", " + _p_text(sign_test(wins, len(diffs) - wins - ties))
    return text


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


def _figures(runs: list[RunRecord], fig_dir: Path, tag: str) -> list[Path]:
    """Fig. 1 style per-class accuracy vs training count; CDB weights and tau; error vs tau.

    Written to ``fig_dir/{tag}_{name}.png``; returns the paths in drawing order.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        path = fig_dir / f"{tag}_{name}.png"
        atomic_write_bytes(path, buf.getvalue())
        written.append(path)

    col_key = _column_key(runs)
    # the figures of one column read the most imbalanced one
    target = max(_hardness(r, col_key) for r in runs)
    chosen = [r for r in runs if _hardness(r, col_key) == target]
    save(_per_class_figure(runs, chosen, col_key, target), "per_class_vs_count")
    plain, smoothed = _cdb_weight_runs(chosen)
    for group, name in ((plain, "cdb_weights_tau"), (smoothed, "cdb_weights_tau_momentum")):
        if group:
            save(_weights_figure(group[0], col_key, target), name)
    fig = _tau_figure(runs, col_key)
    if fig is not None:
        save(fig, "metric_vs_tau")
    return written


def _hardness(r: RunRecord, col_key: str | None) -> float:
    """The run's column value where it is a number (higher: more imbalanced), else 0."""
    v = r.data_options.get(col_key) if col_key else None
    if not isinstance(v, (int, float)):
        return 0.0
    return float(v)


def _mean_class_accuracy(group: list[RunRecord], c: int) -> float:
    """Mean test accuracy of class ``c`` over the runs that measured it (NaN if none did)."""
    values = [float(g.result["test"]["per_class_accuracy"][c]) for g in group]
    seen = [v for v in values if not math.isnan(v)]
    return statistics.fmean(seen) if seen else math.nan


def _per_class_figure(
    runs: list[RunRecord], chosen: list[RunRecord], col_key: str | None, target: float
) -> Any:
    """Per-class test accuracy against training count (paper Fig. 1), one line per row."""
    import matplotlib.pyplot as plt

    by_label: dict[str, list[RunRecord]] = defaultdict(list)
    labels = row_labels(runs, col_key)
    for r in chosen:
        by_label[labels[r.path]].append(r)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, group in sorted(by_label.items(), key=lambda kv: _row_order(kv[0])):
        counts = group[0].result["class_counts"]
        per_class = [_mean_class_accuracy(group, c) for c in range(len(counts))]
        order = sorted(range(len(counts)), key=lambda c: -counts[c])
        ax.plot(
            [counts[c] for c in order],
            [100 * per_class[c] for c in order],
            marker="o",
            ms=3,
            label=label,
        )
    ax.set_xscale("log")
    ax.set_xlabel("training images of the class")
    ax.set_ylabel("test accuracy of the class (%)")
    protocol = runs[0].protocol
    title = f"{protocol}" + (f", {col_key} = {_fmt_col(target)}" if col_key else "")
    ax.set_title(f"Per-class accuracy vs training count ({title})")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def _cdb_weight_runs(chosen: list[RunRecord]) -> tuple[list[RunRecord], list[RunRecord]]:
    """The CDB runs that logged weights: under the paper's rule, and with momentum.

    Each list comes the paper's dynamic tau first, then the others in path
    order; the figures draw the first run of each.
    """

    def momentum(r: RunRecord) -> float:
        return float(r.config["loss"].get("options", {}).get("momentum") or 0.0)

    cdb = sorted(
        (
            r
            for r in chosen
            if r.config["loss"]["name"].startswith("cdb")
            and r.result.get("history")
            and "weights" in r.result["history"][0]
        ),
        key=lambda r: (
            r.config["loss"].get("options", {}).get("tau", "dynamic") != "dynamic",
            momentum(r) > 0,
        ),
    )
    plain = [r for r in cdb if _paper_rule(r.config["loss"].get("options", {}))]
    return plain, [r for r in cdb if momentum(r) > 0]


def _tau_figure(runs: list[RunRecord], col_key: str | None) -> Any:
    """The metric against fixed tau, one line per column (Table 2 / 4 as a plot); dotted:
    dynamic tau. None unless some column has two fixed tau values."""
    import matplotlib.pyplot as plt

    metric_name, how = _metric(runs[0].protocol)
    points: dict[Any, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    dynamic: dict[Any, list[float]] = defaultdict(list)
    for r in runs:
        if r.config["loss"]["name"] not in _PAPER_NAMES:
            continue
        opts = r.config["loss"].get("options", {})
        col = r.data_options.get(col_key) if col_key else "all"
        fixed_tau = _fixed_tau(r.config)
        if fixed_tau is not None:
            points[col][fixed_tau].append(_value(r.result, how))
        elif opts.get("tau", "dynamic") == "dynamic" and _paper_rule(opts):
            dynamic[col].append(_value(r.result, how))
    if not any(len(p) >= 2 for p in points.values()):
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for col, pts in sorted(points.items(), key=lambda kv: str(kv[0])):
        taus = sorted(pts)
        line = ax.plot(
            taus,
            [statistics.fmean(pts[t]) for t in taus],
            marker="o",
            label=f"{col_key}={_fmt_col(col)}",
        )
        if dynamic.get(col):
            ax.axhline(statistics.fmean(dynamic[col]), color=line[0].get_color(), ls=":", lw=1)
    ax.set_xlabel("fixed tau (dotted: dynamic tau)")
    ax.set_ylabel(metric_name)
    ax.set_title(f"CDB-CE: {metric_name} against tau ({runs[0].protocol})")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def _weights_figure(run: RunRecord, col_key: str | None, column: Any) -> Any:
    """The CDB class weights (and tau, dashed) of one run over its epochs."""
    import matplotlib.pyplot as plt

    hist = run.result["history"]
    epochs = [h["epoch"] for h in hist]
    weights = [h["weights"] for h in hist]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    names = run.result.get("class_names") or [str(c) for c in range(len(weights[0]))]
    for c in range(len(weights[0])):
        ax.plot(epochs, [w[c] for w in weights], lw=1, label=str(names[c]))
    ax.set_xlabel("epoch")
    ax.set_ylabel("CDB class weight")
    if "tau" in hist[0]:
        ax2 = ax.twinx()
        ax2.plot(epochs, [h["tau"] for h in hist], "k--", lw=1.5, label="tau")
        ax2.set_ylabel("tau (dashed)")
    ax.set_title(
        f"CDB weights over training: {method_label(run.config)}, seed {run.config['seed']}"
        + (f", {col_key} = {_fmt_col(column)}" if col_key else ""),
        fontsize=10,
    )
    if len(weights[0]) <= 20:
        ax.legend(fontsize=6, ncol=2)
    return fig


def _run_seconds(run: RunRecord) -> float | None:
    """Seconds of training + validation of one run (None where the run did not time them)."""
    timing = run.result.get("timing") or {}
    if "train_s" not in timing:
        return None
    return float(timing["train_s"]) + float(timing.get("val_s", 0.0))


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
    kept = ""
    if seeds is not None:
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
        runs = [r for r in runs if r.config["seed"] in wanted]
        noun = "seed" if len(wanted) == 1 else "seeds"
        kept = f" ({noun} {', '.join(str(s) for s in wanted)} only)"
    first = folders[0] if folders[0].is_dir() else folders[0].parent  # a store: its folder
    out = Path(out_dir) if out_dir is not None else first
    by_protocol: dict[str, list[RunRecord]] = defaultdict(list)
    for r in runs:
        by_protocol[r.protocol].append(r)
    if paired_against is not None:
        _check_row(paired_against, by_protocol)
    noun = "run" if len(runs) == 1 else "runs"
    left_out = ""
    if skipped:
        files = "file" if len(skipped) == 1 else "files"
        left_out = f"; {len(skipped)} result {files} skipped (unreadable or duplicate)"
    md = [f"# Report: {len(runs)} finished {noun} under `{where}`{kept}{left_out}", ""]
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
