"""The long-tail study's tables: every method's validation and test scores, paired by seed.

Reads the finished runs of the study (results/longtail_study/<data set>) and of
the older grids of the same data sets, and prints, per data set and imbalance
factor, each method's mean validation macro recall (what the choice reads), its
mean test top-1, and its paired test difference against CE, Balanced Softmax
and LDAM-DRW (mean over the seeds both have, with wins-losses). A final table
ranks the CDB candidates by their mean paired validation gain over CE across
every data set and factor: the choice, made on validation only.

    python scripts/longtail_choose.py                 # Markdown on stdout
    python scripts/longtail_choose.py --seeds 0 1 2   # only these seeds
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path
from statistics import mean

from cdbloss.experiments.report import method_label, sign_test

DATASETS = {
    "MNIST-LT": ["mnist_lt", "mnist_lt_extra_seeds", "longtail_study/mnist_lt"],
    "Fashion-MNIST-LT": [
        "fashion_mnist_lt",
        "fashion_mnist_lt_extra_seeds",
        "longtail_study/fashion_mnist_lt",
    ],
    "CIFAR-10-LT (CPU)": [
        "cifar10_lt_cpu",
        "cifar10_lt_cpu_extra_seeds",
        "longtail_study/cifar10_lt_cpu",
        "longtail_study/cifar10_lt_cpu_default",
    ],
}
BASELINES = ("CE", "Balanced Softmax", "LDAM-DRW")
FACTORS = (100, 10)

Scores = dict[
    str, dict[int, dict[int, tuple[float, float]]]
]  # method -> factor -> seed -> (val, test)


def load(root: Path, folders: list[str], seeds: set[int] | None) -> Scores:
    out: Scores = defaultdict(lambda: defaultdict(dict))
    for folder in folders:
        for path in sorted((root / folder).glob("*/result.json")):
            r = json.loads(path.read_text())
            cfg = r["config"]
            factor = int(cfg["data"]["options"]["imbalance_factor"])
            seed = int(cfg["seed"])
            if factor not in FACTORS or (seeds is not None and seed not in seeds):
                continue
            val = float(r["val"].get("val_macro_recall", math.nan))
            test = float(r["test"]["top1_accuracy"])
            out[method_label(cfg)][factor][seed] = (100 * val, 100 * test)
    return out


def paired(a: dict[int, tuple[float, float]], b: dict[int, tuple[float, float]], k: int) -> str:
    common = sorted(set(a) & set(b))
    if not common:
        return "-"
    diffs = [a[s][k] - b[s][k] for s in common]
    wins, losses = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    return f"{mean(diffs):+.2f} ({wins}-{losses})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    args = ap.parse_args()
    seeds = set(args.seeds) if args.seeds else None
    gains: dict[str, list[float]] = defaultdict(list)
    cells: dict[str, int] = defaultdict(int)
    # method -> baseline -> every paired test difference over data sets, factors and seeds
    pairs: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for name, folders in DATASETS.items():
        scores = load(Path(args.results), folders, seeds)
        print(f"\n### {name}\n")
        for factor in FACTORS:
            print(
                f"\nFactor {factor}: val = mean validation macro recall %, test = mean test top-1 %,"
                " vs X = paired mean test difference (wins-losses)\n"
            )
            print("| method | n | val | test | vs CE | vs Balanced Softmax | vs LDAM-DRW |")
            print("|---|---|---|---|---|---|---|")
            rows = sorted(m for m in scores if factor in scores[m] and scores[m][factor])
            for m in rows:
                runs = scores[m][factor]
                vs = [paired(runs, scores.get(b, {}).get(factor, {}), 1) for b in BASELINES]
                val = mean(v for v, _ in runs.values())
                test = mean(t for _, t in runs.values())
                print(f"| {m} | {len(runs)} | {val:.2f} | {test:.2f} | " + " | ".join(vs) + " |")
                for b in BASELINES:
                    ref = scores.get(b, {}).get(factor, {})
                    pairs[m][b] += [runs[s][1] - ref[s][1] for s in sorted(set(runs) & set(ref))]
                ce = scores.get("CE", {}).get(factor, {})
                common = sorted(set(runs) & set(ce))
                if m.startswith("CDB") and common:
                    gains[m].append(mean(runs[s][0] - ce[s][0] for s in common))
                    cells[m] += 1
    print("\n### The choice, on validation only\n")
    print(
        "Mean over data sets and factors of the paired validation macro-recall gain over CE"
        " (points); cells = data set x factor combinations the method has run in.\n"
    )
    print("| CDB method | cells | mean validation gain over CE |")
    print("|---|---|---|")
    for m in sorted(gains, key=lambda k: -mean(gains[k])):
        print(f"| {m} | {cells[m]} | {mean(gains[m]):+.2f} |")
    print("\n### Every pair at once (test top-1)\n")
    print(
        "Over every data set, factor and seed a method shares with the baseline: the mean paired"
        " difference in points, wins-losses-ties, and the two-sided sign test.\n"
    )
    print("| method | " + " | ".join(f"vs {b}" for b in BASELINES) + " |")
    print("|---|" + "---|" * len(BASELINES))
    for m in sorted(pairs, key=lambda k: -mean(pairs[k]["CE"]) if pairs[k]["CE"] else 0):
        if m in BASELINES:
            continue
        cols = []
        for b in BASELINES:
            d = pairs[m][b]
            if not d:
                cols.append("-")
                continue
            w, lo = sum(x > 0 for x in d), sum(x < 0 for x in d)
            cols.append(f"{mean(d):+.2f} ({w}-{lo}-{len(d) - w - lo}, p={sign_test(w, lo):.2g})")
        print(f"| {m} | " + " | ".join(cols) + " |")


if __name__ == "__main__":
    main()
