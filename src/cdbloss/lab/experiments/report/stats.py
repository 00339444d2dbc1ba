"""The statistics behind the tables: paired differences by seed, the exact sign
test, and the fixed tau chosen on validation."""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cdbloss.lab.experiments.report.labels import BEST_TAU_ROW, _fixed_tau
from cdbloss.lab.experiments.report.runs import RunRecord


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
