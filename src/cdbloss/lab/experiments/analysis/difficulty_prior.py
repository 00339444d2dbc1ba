"""Why difficulty adds little on top of Balanced Softmax: what the per-class difficulty tracks.

For the CE, Balanced Softmax and CDB-BS runs of the long-tail study's cells
(MNIST-LT, Fashion-MNIST-LT, the CPU CIFAR-10-LT; factors 100 and 10; seeds
0-2), per cell and loss, the mean over seeds of:

- ``rho(d, log n)``: Spearman correlation between the per-class validation
  difficulty ``d_c = 1 - acc_c`` and the log training count ``log n_c``, over
  the epochs after the first (how much of the difficulty is the class's
  rarity; strongly negative means the rare classes are the hard ones);
- ``rho(d_val, d_test)``: Spearman correlation between the last epoch's
  validation difficulty and the test difficulty (how well 50 validation images
  per class predict which classes are hard);
- ``mis-predicted``: half the L1 distance between the predicted and the true
  test class counts, as a fraction of the test set (the share of predictions
  that would have to change class for every class to be predicted as often as
  it occurs: what a per-class logit offset or weight can move at best);
- ``rho(d, r - p)``: Spearman correlation, over classes, between the test
  difficulty and recall minus precision. Negative: the hard classes are
  under-predicted (recall below precision), which a raised logit mends;
  near zero: the hard classes are confused both ways, and raising their
  logits trades one class's errors for another's.

    python -m cdbloss.lab.experiments.analysis.difficulty_prior --out results/prior_study/why.md
    python -m cdbloss.lab.experiments.analysis.difficulty_prior --check results/prior_study/why.md
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from statistics import mean
from typing import Any

import numpy as np

from cdbloss.lab.experiments.longtail_tables import (
    DATASETS,
    FACTORS,
    _results,
    label_of,
    tables_cli,
)

#: the losses compared: label prefix -> short name
LOSSES = {
    "CE": "CE",
    "Balanced Softmax": "Balanced Softmax",
    "CDB-BS (dynamic-sigmoid, eps 0.01, momentum 0.9, cap 10)": "CDB-BS",
}


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when a side is constant or NaN."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return float("nan")  # a class without validation samples has no accuracy
    ra, rb = _ranks(x), _ranks(y)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    order = x.argsort(kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    for v in np.unique(x):  # ties share their average rank
        tied = x == v
        ranks[tied] = ranks[tied].mean()
    return ranks


def run_stats(result: dict[str, Any]) -> dict[str, float]:
    """The four statistics of one finished run (see the module docstring)."""
    log_n = np.log(np.maximum(np.asarray(result["class_counts"], dtype=float), 1.0))
    history = result["history"][1:] or result["history"]
    rho_freq = [
        spearman([1 - a for a in h["val_per_class_accuracy"]], log_n.tolist()) for h in history
    ]
    test = result["test"]
    d_test = [1 - a for a in test["per_class_accuracy"]]
    d_val = [1 - a for a in result["history"][-1]["val_per_class_accuracy"]]
    conf = np.asarray(test["confusion_matrix"], dtype=float)  # rows: true class, columns: predicted
    total = conf.sum()
    mispredicted = 0.5 * float(np.abs(conf.sum(axis=0) - conf.sum(axis=1)).sum()) / total
    recall = np.asarray(test["per_class_accuracy"], dtype=float)
    precision = np.asarray(test["per_class_precision"], dtype=float)
    return {
        "rho_freq": float(np.nanmean(rho_freq)) if not np.isnan(rho_freq).all() else float("nan"),
        "rho_val_test": spearman(d_val, d_test),
        "mispredicted": 100 * mispredicted,
        "rho_gap": spearman(d_test, (recall - precision).tolist()),
    }


def _fmt(values: list[float], digits: int = 2) -> str:
    kept = [v for v in values if not np.isnan(v)]
    return f"{mean(kept):+.{digits}f}" if kept else "-"


def tables(results: Path, seeds: set[int] | None) -> str:
    """The table, as Markdown, from the runs under ``results``."""
    lines = [
        "| data set | factor | loss | seeds | rho(d, log n) | rho(d_val, d_test) |"
        " mis-predicted % | rho(d, r - p) | test top-1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, folders in DATASETS.items():
        stats: dict[tuple[int, str], dict[int, dict[str, float]]] = defaultdict(dict)
        for folder in folders:
            for r in _results(results / folder):
                cfg = r["config"]
                factor, seed = int(cfg["data"]["options"]["imbalance_factor"]), int(cfg["seed"])
                short = LOSSES.get(label_of(cfg))
                if short is None or factor not in FACTORS or (seeds and seed not in seeds):
                    continue
                if "confusion_matrix" not in r["test"] or not r.get("history"):
                    continue
                s = run_stats(r)
                s["top1"] = 100 * float(r["test"]["top1_accuracy"])
                stats[(factor, short)][seed] = s
        for factor in FACTORS:
            for short in LOSSES.values():
                runs = stats.get((factor, short))
                if not runs:
                    continue
                col = {k: [s[k] for s in runs.values()] for k in next(iter(runs.values()))}
                lines.append(
                    f"| {name} | {factor} | {short} | {len(runs)} | {_fmt(col['rho_freq'])} |"
                    f" {_fmt(col['rho_val_test'])} | {mean(col['mispredicted']):.2f} |"
                    f" {_fmt(col['rho_gap'])} | {mean(col['top1']):.2f} |"
                )
    return "".join(line + "\n" for line in lines)


def main(argv: list[str] | None = None, root: Path | None = None) -> int:
    """Command line: print the table, write it (``--out``) or check a file (``--check``)."""
    rerun = "python -m cdbloss.lab.experiments.analysis.difficulty_prior"
    return tables_cli(tables, __doc__, rerun, argv, root)


if __name__ == "__main__":
    sys.exit(main())
