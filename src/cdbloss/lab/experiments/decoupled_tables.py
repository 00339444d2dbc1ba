"""Tables of the decoupled and two-stage baselines (tools/decoupled_study.sh), paired by seed.

The code of ``tools/decoupled_table.py``.

For each data set and imbalance factor: every method's mean test top-1 over the seeds
it has, the validation value its choice read, and its paired test difference against
CE and Balanced Softmax of the long-tail study (same data set, factor and seed; mean
with wins-ties-losses). Every knob is chosen on the validation split, per seed:

* tau-norm and logit adjustment: tau from the grid 0..2 (inside each run).
* cRT, LWS, weight balancing: the stage-2 epoch (inside each run, ``select: best``).
* weight balancing: the stage-1 weight decay and the MaxNorm threshold, the run with
  the best validation top-1 of the final model among its grid.
* "CE, weight decay chosen on validation": the stage-1 run with the best validation
  top-1 among the weight-decay grid (weight balancing's stage 1 alone).

The test split is read only for the chosen model of each method and seed.

    python tools/decoupled_table.py                                 # Markdown on stdout
    python tools/decoupled_table.py --out results/decoupled_study/tables.md
    python tools/decoupled_table.py --check results/decoupled_study/tables.md   # exit 1 if stale
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from statistics import mean
from typing import Any

from cdbloss.lab.experiments.longtail_tables import DATASETS, load
from cdbloss.lab.experiments.store import result_sources
from cdbloss.lab.io import atomic_write_text

STUDY = {  # folder under results/decoupled_study -> the long-tail study's data set name
    "mnist_lt": "MNIST-LT",
    "fashion_mnist_lt": "Fashion-MNIST-LT",
    "cifar10_lt_cpu": "CIFAR-10-LT (CPU)",
}
FACTORS = (100, 10)
DEFAULT_WD = 0.0005
METHODS = (
    "CE (stage 1, this grid)",
    "CE, weight decay chosen on validation",
    "cRT",
    "LWS",
    "tau-norm",
    "logit adjustment (post hoc)",
    "weight balancing",
)
#: BagofTricks-LT (Zhang et al. 2021), CIFAR-10-LT factor 100, ResNet-32 CE backbone: test top-1 %
PUBLISHED = {"CE": 70.36, "cRT": 74.99, "LWS": 72.63, "tau-norm": 72.70}

#: (seed, factor) -> candidate list of (choice value on validation, test top-1, what was chosen)
Cell = dict[tuple[int, int], list[tuple[float, float, str]]]


def _results(folder: Path) -> list[dict[str, Any]]:
    if not folder.exists():
        return []
    return [
        json.loads(path.read_text()) if result is None else result
        for path, result in result_sources(folder)
        if path.parent.parent == folder
    ]


def _method(r: dict[str, Any]) -> tuple[str, str] | None:
    """The table row of a run and what its knob was (``None``: not a row of its own)."""
    cfg = r["config"]
    wd = float(cfg["optim"]["weight_decay"])
    stage2 = cfg.get("stage2", {}).get("method", "none")
    if cfg["loss"]["name"] != "ce":
        return None
    if stage2 == "none":
        return ("CE, weight decay chosen on validation", f"wd {wd:g}")
    s = r["stage2"]
    if stage2 == "wb":
        return ("weight balancing", f"wd {wd:g}, max-norm {cfg['stage2']['max_norm']:g}")
    if wd != DEFAULT_WD:
        return None
    name = {"crt": "cRT", "lws": "LWS", "tau-norm": "tau-norm"}.get(
        stage2, "logit adjustment (post hoc)"
    )
    if "tau" in s:
        return (name, f"tau {s['tau']:g}")
    return (name, f"epoch {s['selected_epoch']}")


def collect(folder: Path) -> dict[str, Cell]:
    """method -> (seed, factor) -> candidates (validation, test, knob), in percent, from the
    runs of ``folder`` (run folders and its store)."""
    out: dict[str, Cell] = defaultdict(lambda: defaultdict(list))
    for r in _results(folder):
        cfg = r["config"]
        key = (int(cfg["seed"]), int(cfg["data"]["options"]["imbalance_factor"]))
        row = _method(r)
        if row is None:
            continue
        name, knob = row
        if name.startswith("CE,"):
            val = float(r["val"]["val_top1_accuracy"])
            if float(cfg["optim"]["weight_decay"]) == DEFAULT_WD:
                out["CE (stage 1, this grid)"][key].append(
                    (100 * val, 100 * float(r["test"]["top1_accuracy"]), "")
                )
        else:
            val = float(r["stage2"]["selected_val_top1_accuracy"])
        out[name][key].append((100 * val, 100 * float(r["test"]["top1_accuracy"]), knob))
    return out


def chosen(cell: Cell) -> dict[tuple[int, int], tuple[float, float, str]]:
    """The candidate of each (seed, factor) with the best validation value (the first on a tie)."""
    return {k: max(v, key=lambda c: c[0]) for k, v in cell.items()}


def _pair(mine: dict[int, float], theirs: dict[int, float]) -> str:
    seeds = sorted(set(mine) & set(theirs))
    if not seeds:
        return "-"
    d = [mine[s] - theirs[s] for s in seeds]
    w, lo = sum(x > 0 for x in d), sum(x < 0 for x in d)
    return f"{mean(d):+.2f} ({w}-{len(d) - w - lo}-{lo})"


def tables(root: Path, folders: list[str]) -> str:
    """The Markdown tables of ``folders`` (keys of :data:`STUDY`) of the repository at ``root``."""
    lines = [
        "# Decoupled and two-stage baselines: tables",
        "",
        "Made by `python tools/decoupled_table.py --out results/decoupled_study/tables.md` from "
        "the runs of `tools/decoupled_study.sh` and the long-tail study's CE and Balanced "
        "Softmax runs. Test top-1 % (the test split is balanced, so this is also the mean "
        "per-class accuracy); `val` is the validation top-1 % the choice read; pairs are "
        "mean test difference in points (wins-ties-losses over seeds). Knobs chosen on "
        "validation per seed, listed as seed: choice (seeds split by `;`).",
        "",
    ]
    for folder in folders:
        name = STUDY[folder]
        runs = collect(root / "results" / "decoupled_study" / folder)
        if not runs:
            continue
        study = load(root / "results", DATASETS[name], None)
        for factor in FACTORS:
            rows = []
            ce = {s: t for s, (_, t) in study.get("CE", {}).get(factor, {}).items()}
            bs = {s: t for s, (_, t) in study.get("Balanced Softmax", {}).get(factor, {}).items()}
            for method in METHODS:
                picks = {
                    seed: c for (seed, f), c in chosen(runs.get(method, {})).items() if f == factor
                }
                if not picks:
                    continue
                test = {s: c[1] for s, c in picks.items()}
                knobs = "; ".join(f"{s}: {c[2]}" for s, c in sorted(picks.items()) if c[2])
                rows.append(
                    f"| {method} | {len(picks)} | {mean(c[0] for c in picks.values()):.2f} | "
                    f"{mean(test.values()):.2f} | {_pair(test, ce)} | {_pair(test, bs)} | "
                    f"{knobs or '-'} |"
                )
            if not rows:
                continue
            lines += [
                f"## {name}, imbalance factor {factor}",
                "",
                "| method | seeds | val | test | vs CE | vs Balanced Softmax | chosen on validation |",
                "|---|---|---|---|---|---|---|",
            ]
            for label, scores in (("CE (study)", ce), ("Balanced Softmax (study)", bs)):
                if scores:
                    rows.append(
                        f"| {label} | {len(scores)} | | {mean(scores.values()):.2f} | | | - |"
                    )
            lines += [*sorted(rows, key=_row_order), ""]
    lines += [
        "Published relative gains, as issue 32 quotes them (BagofTricks-LT, CIFAR-10-LT "
        "factor 100, ResNet-32, CE backbone, test top-1 %; not re-checked here): "
        + ", ".join(f"{k} {v:.2f}" for k, v in PUBLISHED.items())
        + ".",
        "",
    ]
    return "\n".join(lines)


def _row_order(row: str) -> int:
    label = row.split("|")[1].strip()
    order = ["CE (study)", "Balanced Softmax (study)", *METHODS]
    return order.index(label) if label in order else len(order)


def main(argv: list[str] | None = None, root: Path | None = None) -> int:
    """Command line: print the tables, write them (``--out``) or check a file (``--check``)."""
    root = Path.cwd() if root is None else root
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the Markdown here (else stdout)")
    parser.add_argument("--check", type=Path, help="exit 1 if this file differs from the tables")
    parser.add_argument("--data", nargs="*", default=list(STUDY), choices=list(STUDY))
    args = parser.parse_args(argv)
    text = tables(root, args.data)
    if args.check:
        if args.check.read_text(encoding="utf-8") != text:
            print(
                f"{args.check} is stale: rerun tools/decoupled_table.py --out {args.check}",
                file=sys.stderr,
            )
            return 1
        return 0
    if args.out:
        atomic_write_text(args.out, text)
    else:
        sys.stdout.write(text)
    return 0
