"""Loading finished runs: :class:`RunRecord`, :func:`load_runs`, and what a run's
config and result say (its column, its metric, its seconds); :class:`Cell` holds
one metric over seeds."""

from __future__ import annotations

import json
import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdbloss.lab.engine.checkpoint import read_json
from cdbloss.lab.engine.config import VOLATILE_KEYS, flatten_keys
from cdbloss.lab.experiments.store import result_sources


def _column_order(value: Any) -> tuple[bool, Any]:
    """Columns left to right: numbers ascending, then other values by name."""
    numeric = isinstance(value, (int, float))
    return (not numeric, value if numeric else str(value))


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


def _run_seconds(run: RunRecord) -> float | None:
    """Seconds of training + validation of one run (None where the run did not time them)."""
    timing = run.result.get("timing") or {}
    if "train_s" not in timing:
        return None
    return float(timing["train_s"]) + float(timing.get("val_s", 0.0))
