"""What the JPEG copy of CIFAR-10 costs: the table of ``configs/cifar10_lt_cpu_jpeg_cost.yaml``.

Each run of that grid is one loss, one seed and one training source (``jpeg`` or
``lossless``); each was tested on the JPEG 10,000-image test set and on two extra sets,
the first 1,000 official test images losslessly (``lossless-1000``) and the JPEG
copy's versions of the same images (``jpeg-1000``). The table pairs runs by loss and
seed: the effect of the training pixels (lossless minus JPEG training, on each test
set) and of the test pixels (lossless minus JPEG test images, for each training source).

Command line: ``python -m cdbloss.lab.experiments.jpeg_cost STORE_OR_FOLDER [--out FILE]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cdbloss.lab.engine.checkpoint import read_json
from cdbloss.lab.experiments.store import result_sources
from cdbloss.lab.io import atomic_write_text

__all__ = ["collect", "main", "table"]

_SETS = ("test", "lossless-1000", "jpeg-1000")


def _top1(result: dict[str, Any], which: str) -> float:
    if which == "test":
        return 100.0 * float(result["test"]["top1_accuracy"])
    return 100.0 * float(result["extra_test"][which]["top1_accuracy"])


def collect(folder: str | Path) -> dict[tuple[str, int, str], dict[str, float]]:
    """``(loss, seed, source) -> {test set: top-1 %}`` for every finished run under ``folder``.

    Raises:
        ValueError: a run lacks the extra test sets or its source option.
    """
    out: dict[tuple[str, int, str], dict[str, float]] = {}
    for path, parsed in result_sources(folder):
        result = parsed if parsed is not None else read_json(path, "a run's result")
        if result.get("status") != "done":
            continue
        cfg = result["config"]
        source = cfg["data"]["options"].get("source")
        if source not in ("jpeg", "lossless") or "extra_test" not in result:
            raise ValueError(
                f"{path}: expected a run of the JPEG-cost grid (data.options.source jpeg or "
                f"lossless, and extra_test in its result), got source={source!r}"
            )
        key = (str(cfg["loss"]["name"]), int(cfg["seed"]), str(source))
        out[key] = {s: _top1(result, s) for s in _SETS}
    return out


def _mean_sd(values: Sequence[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:+.2f}" if values else "-"
    return f"{statistics.mean(values):+.2f} +- {statistics.stdev(values):.2f}"


def table(runs: dict[tuple[str, int, str], dict[str, float]]) -> str:
    """Markdown: mean top-1 per loss, training source and test set; then the paired
    differences (mean +- sd over seeds), each from seeds that have both runs."""
    losses = sorted({k[0] for k in runs})
    lines = [
        "| loss | trained on | seeds | test (JPEG, 10,000) | lossless-1000 | jpeg-1000 |",
        "|---|---|---|---|---|---|",
    ]
    for loss in losses:
        for source in ("jpeg", "lossless"):
            rows = [v for k, v in sorted(runs.items()) if k[0] == loss and k[2] == source]
            if rows:
                cells = " | ".join(f"{statistics.mean(r[s] for r in rows):.2f}" for s in _SETS)
                lines.append(f"| {loss} | {source} | {len(rows)} | {cells} |")
    lines += [
        "",
        "Paired differences, points of top-1 (mean +- sd over seeds):",
        "",
        "| loss | seeds | lossless minus JPEG training, on the JPEG test set | "
        "the same, on lossless-1000 | lossless-1000 minus jpeg-1000, JPEG-trained | "
        "the same, lossless-trained |",
        "|---|---|---|---|---|---|",
    ]
    for loss in losses:
        seeds = sorted(
            k[1]
            for k in runs
            if k[0] == loss and k[2] == "jpeg" and (loss, k[1], "lossless") in runs
        )
        if not seeds:
            continue
        j = [runs[(loss, s, "jpeg")] for s in seeds]
        p = [runs[(loss, s, "lossless")] for s in seeds]
        train_test = [b["test"] - a["test"] for a, b in zip(j, p, strict=True)]
        train_l = [b["lossless-1000"] - a["lossless-1000"] for a, b in zip(j, p, strict=True)]
        test_j = [a["lossless-1000"] - a["jpeg-1000"] for a in j]
        test_p = [b["lossless-1000"] - b["jpeg-1000"] for b in p]
        cells = " | ".join(_mean_sd(v) for v in (train_test, train_l, test_j, test_p))
        lines.append(f"| {loss} | {len(seeds)} | {cells} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Print (or write with ``--out``) the table of the runs under a folder or store."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", help="the grid's folder or its runs.jsonl.gz")
    parser.add_argument("--out", help="write the table to this file (atomically)")
    args = parser.parse_args(argv)
    text = table(collect(args.runs))
    if args.out:
        atomic_write_text(Path(args.out), text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
