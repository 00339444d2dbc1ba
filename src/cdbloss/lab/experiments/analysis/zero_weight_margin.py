"""Pair CDB runs' zero-weight epochs with their test error against other methods.

Under the paper's rule a class that is perfect on validation gets weight
exactly 0 and leaves the loss. This script asks whether the runs where that
happened in most logged epochs did better, on the same split, than the runs
where it did not. It reads a ``runs.csv`` written by ``cdbloss report`` (one
row per run) and each CDB run's ``result.json`` history, and prints two
markdown tables:

- per CDB run: column value, seed, epochs with a zero weight (of those
  logged), its test error and each ``--versus`` method's on the same split
  (same column value and seed), and the margin over the first of them
  (positive: the CDB run has the lower error);
- per column value: the mean margin over the runs with a zero weight in more
  than half of their logged epochs ("mostly zero") and over the others.

    cdbloss report results/mnist_4v9_table1 --seeds 0-4
    python tools/zero_weight_margin.py results/mnist_4v9_table1/runs.csv --versus IFW CB

It only reads; a CDB run without a partner on its split is listed with "-".
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from cdbloss.lab.experiments.analysis.weight_history import summarise
from cdbloss.lab.experiments.store import read_run_file


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs_csv", help="runs.csv from `cdbloss report`")
    parser.add_argument(
        "--cdb", default="CDB-CE (dyn. tau)", help="row label of the CDB runs (CDB-CE (dyn. tau))"
    )
    parser.add_argument(
        "--versus", nargs="+", default=["IFW"], help="row labels to pair with (IFW)"
    )
    args = parser.parse_args(argv)
    path = Path(args.runs_csv)
    if not path.is_file():
        print(f"{path}: no such file (run `cdbloss report` first)", file=sys.stderr)
        return 2
    rows = list(csv.DictReader(path.open(newline="")))
    labels = {r["method"] for r in rows}
    missing = [m for m in [args.cdb, *args.versus] if m not in labels]
    if missing:
        print(
            f"{path}: no runs labelled {missing}; the labels there: {sorted(labels)}",
            file=sys.stderr,
        )
        return 2
    error = {(r["method"], r["value"], r["seed"]): float(r["result"]) for r in rows}
    metric = rows[0]["metric"]
    cdb = sorted(
        (r for r in rows if r["method"] == args.cdb),
        key=lambda r: (float(r["value"]), int(r["seed"])),
    )
    column = cdb[0]["column"]
    print(f"| {column} | seed | zero-w epochs | {args.cdb} | {' | '.join(args.versus)} | margin |")
    print("|---" * (5 + len(args.versus)) + "|")
    groups: dict[str, dict[bool, list[float]]] = defaultdict(lambda: {True: [], False: []})
    for r in cdb:
        result = json.loads(read_run_file(r["run"], "result.json"))
        s = summarise(result)
        key = (r["value"], r["seed"])
        others = [error.get((m, *key)) for m in args.versus]
        own = float(r["result"])
        margin = None if others[0] is None else others[0] - own
        print(
            f"| {r['value']} | {r['seed']} | {s['zero']} of {s['epochs']} | {own:.2f} | "
            + " | ".join(_fmt(o) for o in others)
            + f" | {'-' if margin is None else f'{margin:+.2f}'} |"
        )
        if margin is not None:
            groups[r["value"]][s["zero"] * 2 > s["epochs"]].append(margin)
    print()
    print(f"{metric}: mean margin of {args.cdb} over {args.versus[0]} (n runs)")
    print()
    print(f"| {column} | mostly zero | others |")
    print("|---|---|---|")
    for value, g in sorted(groups.items(), key=lambda kv: float(kv[0])):
        cells = [
            f"{statistics.fmean(g[flag]):+.2f} (n={len(g[flag])})" if g[flag] else "- (n=0)"
            for flag in (True, False)
        ]
        print(f"| {value} | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
