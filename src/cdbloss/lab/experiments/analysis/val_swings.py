"""Count how often a run's per-class validation accuracy jumped between epochs.

A "swing" is an epoch-to-epoch step in which one of the ``--classes`` most
frequent training classes (by ``class_counts`` in the run's ``result.json``)
moved by more than ``--threshold`` in validation accuracy. CDB's weights are
set from those accuracies, so runs whose weights over-correct swing far more
often than plain CE. Reads each run's ``metrics.jsonl`` (every epoch; the
``history`` in ``result.json`` may be thinned, which would hide a swing of
period two) and prints one line per run: the steps, and the swings up to and
after epoch ``--split`` (e.g. the first learning-rate decay):

    python tools/val_swings.py results/cifar10_lt/name=* --split 160

The swing counts on docs/results/cifar10_lt.md come from this script.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

from cdbloss.lab.experiments.store import find_run_file


def count_swings(
    epochs: list[dict[str, Any]],
    classes: list[int],
    threshold: float = 0.5,
    split: int | None = None,
) -> tuple[int, int, int]:
    """Swings in ``epochs`` (``metrics.jsonl`` rows, in order) among ``classes``.

    Returns ``(steps, before, after)``: the epoch-to-epoch steps seen and the
    swings whose later epoch is ``<= split`` and ``> split`` (all in ``before``
    when ``split`` is None). A step is a swing when
    ``max_c |acc_c(e) - acc_c(e-1)| > threshold`` over ``c in classes``.
    """
    rows = [e for e in epochs if e.get("val_per_class_accuracy") is not None]
    before = after = 0
    for prev, cur in itertools.pairwise(rows):
        a, b = prev["val_per_class_accuracy"], cur["val_per_class_accuracy"]
        if max(abs(b[c] - a[c]) for c in classes) > threshold:
            if split is None or cur["epoch"] <= split:
                before += 1
            else:
                after += 1
    return max(len(rows) - 1, 0), before, after


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "runs",
        nargs="+",
        help="run folders (result.json and metrics.jsonl; a packed run is read from its store)",
    )
    parser.add_argument("--classes", type=int, default=4, help="most frequent classes watched (4)")
    parser.add_argument("--threshold", type=float, default=0.5, help="accuracy jump counted (0.5)")
    parser.add_argument("--split", type=int, default=None, help="epoch that ends 'before'")
    args = parser.parse_args(argv)
    if args.classes < 1 or not 0.0 < args.threshold < 1.0:
        parser.error(
            f"expected --classes >= 1 and 0 < --threshold < 1, got {args.classes}"
            f" and {args.threshold}"
        )
    print("run | steps | swings up to split | after")
    shown = 0
    for run in args.runs:
        folder = Path(run)
        result, metrics = (
            find_run_file(folder, "result.json"),
            find_run_file(folder, "metrics.jsonl"),
        )
        if result is None or metrics is None:
            print(f"{run}: needs result.json and metrics.jsonl, skipped", file=sys.stderr)
            continue
        counts = json.loads(result)["class_counts"]
        watched = sorted(range(len(counts)), key=lambda c: -counts[c])[: args.classes]
        epochs = [json.loads(line) for line in metrics.splitlines() if line.strip()]
        steps, before, after = count_swings(epochs, watched, args.threshold, args.split)
        print(f"{folder.name} | {steps} | {before} | {after}")
        shown += 1
    if not shown:
        print("no run with result.json and metrics.jsonl", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
