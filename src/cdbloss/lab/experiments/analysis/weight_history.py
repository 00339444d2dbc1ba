"""Summarise how the CDB weights and tau moved during finished runs.

Reads the ``history`` of each run's ``result.json`` (the epochs it logged)
and prints one line per run, then the totals:

- ``tau mean``: mean of the logged tau after epoch ``--after`` (dynamic tau);
- ``tau>high early/late``: logged epochs with tau above ``--high`` up to and
  after epoch ``--after``;
- ``zero-w``: logged epochs where some class has weight exactly 0;
- ``inverted``: logged epochs where the rarest training class (by
  ``class_counts``) does not have the largest weight.

    python tools/weight_history.py results/mnist_4v9_table1/seed=*__name=cdb-ce__*

The numbers on docs/results.md about tau and the weights' swings come from
this script; it only reads, and a run without logged weights is skipped
with a note.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any

from cdbloss.lab.experiments.store import find_run_file


def summarise(result: dict[str, Any], after: int = 10, high: float = 1.5) -> dict[str, Any]:
    """The counts above for one run's ``result.json`` content."""
    rows = [e for e in result.get("history", []) if e.get("weights")]
    rarest = min(range(len(result["class_counts"])), key=lambda c: result["class_counts"][c])
    early_tau = [float(e["tau"]) for e in rows if e.get("tau") is not None and e["epoch"] <= after]
    late_tau = [float(e["tau"]) for e in rows if e.get("tau") is not None and e["epoch"] > after]
    return {
        "epochs": len(rows),
        "tau_mean": statistics.fmean(late_tau) if late_tau else float("nan"),
        "high_early": sum(t > high for t in early_tau),
        "high_late": sum(t > high for t in late_tau),
        "late": sum(1 for e in rows if e["epoch"] > after),
        "zero": sum(1 for e in rows if min(e["weights"]) == 0.0),
        "inverted": sum(1 for e in rows if max(e["weights"]) > e["weights"][rarest]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "runs", nargs="+", help="run folders (each with a result.json, or packed in a store above)"
    )
    parser.add_argument("--after", type=int, default=10, help="epoch that ends 'early' (10)")
    parser.add_argument("--high", type=float, default=1.5, help="tau counted as high (1.5)")
    args = parser.parse_args(argv)
    totals: dict[str, float] = {}
    means = []
    print("run | logged | tau mean | tau>high early/late | zero-w | inverted")
    for run in args.runs:
        text = find_run_file(run, "result.json")
        if text is None:
            print(f"{run}: no result.json (unfinished?), skipped", file=sys.stderr)
            continue
        s = summarise(json.loads(text), args.after, args.high)
        if not s["epochs"]:
            print(f"{run}: no logged weights (not a CDB run?), skipped", file=sys.stderr)
            continue
        print(
            f"{run} | {s['epochs']} | {s['tau_mean']:.2f} | {s['high_early']}/{s['high_late']}"
            f" of {s['late']} late | {s['zero']} | {s['inverted']}"
        )
        means.append(s["tau_mean"])
        for key in ("epochs", "high_early", "high_late", "late", "zero", "inverted"):
            totals[key] = totals.get(key, 0) + s[key]
    if not means:
        print("no run with logged weights", file=sys.stderr)
        return 1
    print(
        f"all {len(means)} runs | {totals['epochs']:.0f} | {min(means):.2f}-{max(means):.2f}"
        f" | {totals['high_early']:.0f}/{totals['high_late']:.0f} of {totals['late']:.0f} late"
        f" | {totals['zero']:.0f} | {totals['inverted']:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
