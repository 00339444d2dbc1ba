"""``cdbloss train``, ``cdbloss sweep`` and ``cdbloss report``."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser"]


def _train(args: argparse.Namespace) -> int:
    from cdbloss.lab.engine.config import load_config
    from cdbloss.lab.engine.trainer import Trainer

    cfg = load_config(args.config, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    result = Trainer(cfg, out).fit()
    test = result["test"]
    print(
        f"{cfg.name}: test top-1 {test['top1_accuracy']:.4f}, macro recall {test['macro_recall']:.4f}"
    )
    names = result.get("class_names") or []
    for c, acc in enumerate(test["per_class_accuracy"]):
        name = names[c] if c < len(names) else str(c)
        print(f"  class {name:>12}: {acc:.4f}  (train n={result['class_counts'][c]})")
    print(f"results in {out / 'result.json'}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from cdbloss.lab.engine.config import load_config
    from cdbloss.lab.experiments.sweep import run_sweep

    cfg = load_config(args.config, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    statuses = run_sweep(cfg, out, workers=args.workers, launcher=args.launcher)
    failed = [k for k, v in statuses.items() if v["status"] != "done"]
    if args.report:
        from cdbloss.lab.experiments.report import write_report

        print(f"report: {write_report(out)}")
    return 1 if failed else 0


def _report(args: argparse.Namespace) -> int:
    from cdbloss.lab.experiments.report import write_report

    path = write_report(
        args.dir,
        args.out,
        figures=not args.no_figures,
        paired_against=args.paired_against,
        seeds=args.seeds,
    )
    print(path.read_text())
    print(f"written: {path}")
    return 0


def seed_list(text: str) -> list[int]:
    """``"0,1,4"`` or ``"0-4"`` (or a mix, ``"0-2,5"``) -> the seeds, in order given."""
    seeds: list[int] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        try:
            seeds += list(range(int(first), int(last) + 1)) if dash else [int(first)]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected seeds like '0,1,4' or '0-4', got {text!r}"
            ) from None
    return seeds


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Attach the experiment commands to the ``cdbloss`` parser."""
    p = sub.add_parser("train", help="run one experiment from a config file")
    p.add_argument("config", help="YAML or JSON config (see configs/)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optim.lr=0.01 seed=3")
    p.add_argument("--out", help="run folder (default runs/<name>); resumed if it holds this run")
    p.set_defaults(func=_train)

    p = sub.add_parser("sweep", help="run the grid a config declares, in parallel, resumable")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    p.add_argument(
        "--launcher",
        choices=["local", "slurm", "submitit-local"],
        help="where the runs train: local worker processes (default), one SLURM job each "
        "(submitit; options under sweep.launcher in the config), or submitit's local "
        "executor (default: sweep.launcher.name, else local)",
    )
    p.add_argument("--out", help="sweep folder (default runs/<name>)")
    p.add_argument("--report", action="store_true", help="write the report when done")
    p.set_defaults(func=_sweep)

    p = sub.add_parser(
        "report", help="tables (Markdown, CSV) and figures (PNG) from a folder of runs"
    )
    p.add_argument(
        "dir", nargs="+", help="folder(s) holding runs (searched recursively for result.json)"
    )
    p.add_argument(
        "--out",
        help="where to write report.md/.csv and figures/ (default: DIR; needed for several)",
    )
    p.add_argument("--no-figures", action="store_true")
    p.add_argument(
        "--paired-against",
        metavar="ROW",
        help="the row label the paired-by-seed table compares every other row with "
        "(default: 'CDB-CE (dyn. tau)' if present, else the first CDB row)",
    )
    p.add_argument(
        "--seeds",
        type=seed_list,
        metavar="LIST",
        help="only the runs of these seeds, e.g. 0,1 or 0-4 (default: all)",
    )
    p.set_defaults(func=_report)
