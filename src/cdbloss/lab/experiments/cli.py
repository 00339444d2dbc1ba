"""``cdbloss train``, ``cdbloss sweep``, ``cdbloss report`` and ``cdbloss results``."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cdbloss.lab.engine.config import ExperimentConfig

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
    cfg = _with_pack_flags(cfg, args)
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    statuses = run_sweep(
        cfg,
        out,
        workers=args.workers,
        fuse=True if args.fuse else None,
        launcher=args.launcher,
    )
    failed = [k for k, v in statuses.items() if v["status"] != "done"]
    if args.report:
        from cdbloss.lab.experiments.report import write_report

        print(f"report: {write_report(out)}")
    return 1 if failed else 0


def _with_pack_flags(cfg: ExperimentConfig, args: argparse.Namespace) -> ExperimentConfig:
    """``cfg`` with the pack launcher's flags (``--budget``...) put into ``sweep.launcher``."""
    given = {
        "budget": args.budget,
        "first": args.first or None,
        "max_active": args.max_active,
        "join_slowdown": args.join_slowdown,
        "resumable": True if args.resumable else None,
    }
    flags = {k: v for k, v in given.items() if v is not None}
    if not flags:
        return cfg
    spec = cfg.sweep.get("launcher")
    spec = dict(spec) if isinstance(spec, dict) else {}
    return dataclasses.replace(cfg, sweep={**cfg.sweep, "launcher": {**spec, **flags}})


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


def _pack(args: argparse.Namespace) -> int:
    from cdbloss.lab.experiments.store import pack

    done = pack(args.folder, args.store, also=args.also)
    print(f"packed {done.packed} run folders into {done.store} ({done.total} runs in all)")
    return 0


def _expand(args: argparse.Namespace) -> int:
    from cdbloss.lab.experiments.store import expand

    out = args.out if args.out is not None else str(Path(args.store).parent)
    print(f"wrote {expand(args.store, out)} files under {out}")
    return 0


def _add_results_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("results", help="pack run folders into a run store, or expand one")
    results = p.add_subparsers(dest="results_command", metavar="ACTION", required=True)
    q = results.add_parser("pack", help="put every run folder under FOLDER into its store")
    q.add_argument("folder", help="grid folder (what `cdbloss sweep --out` wrote)")
    q.add_argument("--store", help="the store file (default FOLDER/runs.jsonl.gz); kept runs stay")
    q.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="FILE",
        help="also keep this file of each run verbatim, e.g. metrics.jsonl (repeatable)",
    )
    q.set_defaults(func=_pack)
    q = results.add_parser("expand", help="write a store's runs back as run folders")
    q.add_argument("store", help="a runs.jsonl.gz store")
    q.add_argument("--out", help="where the run folders go (default: the store's folder)")
    q.set_defaults(func=_expand)


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


def _add_pack_flags(p: argparse.ArgumentParser) -> None:
    """The pack launcher's flags (each also a ``sweep.launcher`` key; docs/engine.md)."""
    g = p.add_argument_group("the pack launcher (--launcher pack)")
    g.add_argument(
        "--budget", type=float, metavar="SECONDS", help="seconds until every run must end"
    )
    g.add_argument(
        "--first",
        action="append",
        metavar="TEXT",
        help="start the runs whose folder name holds TEXT first (repeatable)",
    )
    g.add_argument("--max-active", type=int, metavar="N", help="most jobs at once (default 8)")
    g.add_argument(
        "--join-slowdown",
        type=float,
        nargs="+",
        metavar="F",
        help="assumed slowdown of every job when a second, third... starts (the last value "
        "repeats; default (n+1)/n, a full GPU)",
    )
    g.add_argument(
        "--resumable",
        action="store_true",
        help="keep --max-active jobs going even if they cannot finish in the budget; "
        "the next call resumes them from their checkpoints",
    )


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
        choices=["local", "slurm", "submitit-local", "pack"],
        help="where the runs train: local worker processes (default), one SLURM job each "
        "(submitit; options under sweep.launcher in the config), submitit's local "
        "executor, or packed onto this machine's GPU inside --budget seconds "
        "(default: sweep.launcher.name, else local)",
    )
    _add_pack_flags(p)
    p.add_argument("--out", help="sweep folder (default runs/<name>)")
    p.add_argument("--report", action="store_true", help="write the report when done")
    p.add_argument(
        "--fuse",
        action="store_true",
        help="train runs that differ only in loss and optimiser settings as one vmapped "
        "model (as sweep.fuse: true; docs/engine.md)",
    )
    p.set_defaults(func=_sweep)

    p = sub.add_parser(
        "report", help="tables (Markdown, CSV) and figures (PNG) from a folder of runs"
    )
    p.add_argument(
        "dir",
        nargs="+",
        help="folder(s) holding runs (searched recursively for result.json and runs.jsonl.gz "
        "stores), or store files",
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
    _add_results_parser(sub)
