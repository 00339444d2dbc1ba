"""Run a sweep's grid on one GPU as several concurrent runs, inside a fixed time budget.

A ResNet-32 step on a CIFAR batch leaves most of a modern GPU idle, so one
run at a time wastes it, and a fixed ``--workers N`` either wastes it too or
starts so many runs that none finishes before the budget ends (a lent GPU
machine gives one call of about ten minutes). This script adds runs one by
one while the measured pace says every run, the new one included, still ends
before the deadline, and stops the newest run when the pace says they will
not all make it::

    python scripts/pack_gpu_runs.py configs/cifar10_lt.yaml --out results/cifar10_lt \\
        --budget 480 --first imbalance_factor=100

The pace of a run is read from its ``metrics.jsonl`` (one line per epoch, with
the optimiser ``step`` count and the epoch's ``train_s`` and ``val_s``): its
seconds per step over the epochs seen since the last launch, stop or finish,
never counting the first epoch after its own launch (the warm-up: cudnn
autotuning, and with ``train.compile`` the compile and CUDA graph capture).
A launch assumes the GPU is already full, so that ``n`` runs become ``n + 1``
at ``(n + 1) / n`` times their step time; the next measurements correct that.
Runs are launched in the grid's order, with the run ids holding a ``--first``
text ahead. Finished runs are the sweep's own folders (``result.json``), so
``cdbloss sweep`` and ``cdbloss report`` read them as usual; a run stopped at
the deadline keeps its checkpoint and resumes where it stopped. The log of
launches, stops and finishes is written to ``<out>/pack.json``. Runs too long
for one budget (CIFAR-10-LT at factor 10 on one call of a lent GPU) take
``--resumable``: ``--max-active`` runs are kept going, the deadline stops
them, and the next call, on the same machine or with their folders, resumes
them from their checkpoints.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
STARTUP_S = 25.0  # process start, CUDA context and data loading of a new run
# train_s + val_s leave out checkpoint writes and the final test pass: on the H100 CE run
# (results/cifar10_lt) they were 368 of its 391 s, so the pace is scaled up by this much
WALL_PER_TRAIN = 1.08


@dataclass
class Pace:
    """What the scheduler knows of one active run."""

    run_id: str
    launched: float  # monotonic seconds
    steps_done: int
    steps_total: int
    step_s: float | None  # wall seconds per step measured since the last change, if any

    def seconds_left(self) -> float:
        """Seconds to the run's end at its measured pace (``inf`` if not measured yet)."""
        if self.step_s is None:
            return math.inf
        return (self.steps_total - self.steps_done) * self.step_s


Action = tuple[Literal["wait", "launch", "stop"], str | None]


def decide(
    now: float,
    deadline: float,
    active: list[Pace],
    next_steps: int | None,
    max_active: int,
    startup_s: float = STARTUP_S,
    alone_step_s: float | None = None,
    join_slowdown: Sequence[float] | None = None,
) -> Action:
    """The next move: ``("launch", None)``, ``("stop", run_id)`` or ``("wait", None)``.

    Args:
        now: the current time; ``deadline``: when every run must have ended.
        active: the runs now training.
        next_steps: optimiser steps of the next queued run (``None``: queue empty).
        max_active: at most this many runs at once.
        startup_s: seconds a new run spends before its first step.
        alone_step_s: the fastest seconds per step measured so far (a run alone
            on the GPU), if any: a launch onto an idle GPU must fit at that pace.
        join_slowdown: the factor by which a launch is assumed to slow every
            run's steps: its ``n``-th value (from 1) when ``n`` runs are active,
            the last one beyond its end. ``None`` assumes a full GPU,
            ``(n + 1) / n``. Runs bound by the CPU's kernel launches (small
            models) slow far less; a wrong guess costs a stopped run, not a
            late one.
    """
    if not active:
        if next_steps is None:
            return ("wait", None)
        if alone_step_s is not None and now + startup_s + next_steps * alone_step_s > deadline:
            return ("wait", None)
        return ("launch", None)
    if any(p.step_s is None for p in active):
        return ("wait", None)  # decide only on a pace measured after the last change
    if len(active) > 1 and max(now + p.seconds_left() for p in active) > deadline:
        newest = max(active, key=lambda p: p.launched)
        return ("stop", newest.run_id)
    if next_steps is None or len(active) >= max_active:
        return ("wait", None)
    n = len(active)
    slow = (n + 1) / n if not join_slowdown else join_slowdown[min(n, len(join_slowdown)) - 1]
    if any(now + p.seconds_left() * slow > deadline for p in active):
        return ("wait", None)
    step_new = statistics.median(p.step_s for p in active if p.step_s is not None) * slow
    if now + startup_s + next_steps * step_new > deadline:
        return ("wait", None)
    return ("launch", None)


def read_epochs(run_dir: Path) -> list[dict[str, Any]]:
    """The epoch records of a run's ``metrics.jsonl`` (empty if none yet or mid-write)."""
    path = run_dir / "metrics.jsonl"
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return []


def steps_done(epochs: list[dict[str, Any]]) -> int:
    """Optimiser steps a run has logged (0 before its first epoch)."""
    return int(epochs[-1]["step"]) if epochs else 0


def step_seconds(epochs: list[dict[str, Any]], after_epoch: int) -> float | None:
    """Seconds per step over the epochs after ``after_epoch`` (needs two of them)."""
    recent = [e for e in epochs if e["epoch"] > after_epoch]
    if len(recent) < 2:
        return None
    by_epoch = {e["epoch"]: e for e in epochs}
    steps = 0
    seconds = 0.0
    for e in recent:
        before = by_epoch.get(e["epoch"] - 1, {"step": 0})
        steps += int(e["step"]) - int(before["step"])
        seconds += float(e["train_s"]) + float(e.get("val_s", 0.0))
    return seconds / steps if steps > 0 else None


def _scaled(x: float | None, factor: float) -> float | None:
    return None if x is None else x * factor


@dataclass
class _Active:
    run_id: str
    process: Any
    launched: float
    steps_total: int
    baseline_epoch: int = 0  # epochs seen at the last change; the pace counts later ones
    # a run's first epoch here holds its warm-up (cudnn autotuning, torch.compile and CUDA
    # graph capture: a minute with train.compile), so its pace never counts that epoch
    first_paced: int = 1

    def rebase(self, epochs_seen: int) -> None:
        """Count the pace from now on: epochs after ``epochs_seen``, never the warm-up one."""
        self.baseline_epoch = max(epochs_seen, self.first_paced)


def _steps_per_run(cfg: Any, cache: dict[str, int]) -> int:
    """Optimiser steps of a run: ``ceil(train size / batch) * epochs`` (data loaded once per split)."""
    from cdbloss.lab.engine.trainer import Trainer, _size

    key = json.dumps([cfg.data.protocol, cfg.data.options, cfg.seed], sort_keys=True, default=str)
    if key not in cache:
        cache[key] = _size(Trainer(cfg, ROOT / "runs" / "unused")._load_data().train)
    return int(math.ceil(cache[key] / cfg.train.batch_size) * cfg.train.epochs)


def pack(
    config: str,
    overrides: list[str],
    out: str,
    budget_s: float,
    first: list[str],
    max_active: int,
    threads: int,
    poll_s: float = 2.0,
    join_slowdown: Sequence[float] | None = None,
    resumable: bool = False,
) -> dict[str, Any]:
    """Run the grid of ``config`` into ``out`` until the budget ends; return the log.

    With ``resumable`` the runs need not finish inside the budget (a later
    call resumes them from their checkpoints): ``max_active`` runs are kept
    going, and the deadline stops whatever is still running.
    """
    from cdbloss.lab.engine.config import config_to_dict, load_config
    from cdbloss.lab.experiments.jobs import run_one as _run_one
    from cdbloss.lab.experiments.sweep import expand_grid, run_status

    start = time.monotonic()
    deadline = start + budget_s
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = expand_grid(load_config(config, overrides))
    runs.sort(key=lambda r: not any(text in r.run_id for text in first))  # stable
    queue = [r for r in runs if run_status(out_dir / r.run_id) != "done"]
    print(f"pack: {len(runs)} runs, {len(runs) - len(queue)} done, {len(queue)} queued", flush=True)
    sizes: dict[str, int] = {}
    fastest: float | None = None  # seconds per step, the lowest seen
    ctx = mp.get_context("spawn")
    active: list[_Active] = []
    log: list[dict[str, Any]] = []

    def event(kind: str, run_id: str, **extra: Any) -> None:
        t = time.monotonic() - start
        log.append({"t": round(t, 1), "event": kind, "run": run_id, **extra})
        print(f"[{t:6.1f} s] {kind} {run_id} {extra if extra else ''}", flush=True)

    def changed() -> None:
        for a in active:
            a.rebase(len(read_epochs(out_dir / a.run_id)))

    while True:
        now = time.monotonic()
        for a in list(active):
            if not a.process.is_alive():
                active.remove(a)
                status = run_status(out_dir / a.run_id)
                event("finished" if status == "done" else "ended", a.run_id, status=status)
                changed()
        if now >= deadline:
            for a in active:
                a.process.terminate()
                event("deadline", a.run_id, epochs=len(read_epochs(out_dir / a.run_id)))
            for a in active:
                a.process.join(30)
            break
        if not active and not queue:
            break
        paces = []
        for a in active:
            epochs = read_epochs(out_dir / a.run_id)
            paces.append(
                Pace(
                    a.run_id,
                    a.launched,
                    steps_done(epochs),
                    a.steps_total,
                    _scaled(step_seconds(epochs, a.baseline_epoch), WALL_PER_TRAIN),
                )
            )
        next_steps = None
        if queue:  # a run stopped earlier resumes from its checkpoint: only its steps left
            next_steps = _steps_per_run(queue[0].config, sizes) - steps_done(
                read_epochs(out_dir / queue[0].run_id)
            )
        measured = [p.step_s for p in paces if p.step_s is not None]
        if measured:
            fastest = min([fastest, *measured]) if fastest is not None else min(measured)
        step: Action
        if resumable and queue and len(active) < max_active:
            # cut at the deadline anyway: no pace to wait for before filling max_active
            step = ("launch", None)
        else:
            step = decide(
                now,
                math.inf if resumable else deadline,
                paces,
                next_steps,
                max_active,
                STARTUP_S,
                fastest,
                join_slowdown,
            )
        action, target = step
        if action == "wait" and not active:
            break  # the GPU is idle and the next run would not finish: end early
        if action == "launch":
            run = queue.pop(0)
            d = config_to_dict(run.config)
            d["train"]["progress"] = False
            proc = ctx.Process(target=_run_one, args=(d, str(out_dir / run.run_id), threads))
            proc.start()
            changed()
            total = _steps_per_run(run.config, sizes)
            # a resumed run's earlier epochs ran at another pace: count only its new ones
            earlier = len(read_epochs(out_dir / run.run_id))
            active.append(
                _Active(run.run_id, proc, time.monotonic(), total, earlier + 1, earlier + 1)
            )
            event("launch", run.run_id, active=len(active), steps=next_steps)
        elif action == "stop":
            victim = next(a for a in active if a.run_id == target)
            victim.process.terminate()
            victim.process.join(30)
            active.remove(victim)
            queue.insert(0, next(r for r in runs if r.run_id == target))
            event("stop", victim.run_id, epochs=len(read_epochs(out_dir / victim.run_id)))
            changed()
        time.sleep(poll_s)
    record = {
        "join_slowdown": list(join_slowdown) if join_slowdown else None,
        "resumable": resumable,
        "config": config,
        "overrides": overrides,
        "budget_s": budget_s,
        "seconds": time.monotonic() - start,
        "log": log,
    }
    (out_dir / "pack.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config", help="a sweep config (YAML)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, as for cdbloss sweep")
    p.add_argument("--out", required=True, help="the sweep folder")
    p.add_argument("--budget", type=float, required=True, help="seconds until every run must end")
    p.add_argument("--first", action="append", default=[], help="run-id text to launch first")
    p.add_argument("--max-active", type=int, default=8, help="most runs at once (default 8)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads per run (default 2)")
    p.add_argument(
        "--join-slowdown",
        type=float,
        nargs="+",
        default=None,
        metavar="F",
        help="assumed slowdown of every run when a second, third... run starts (the last value "
        "repeats; default: (n+1)/n, a full GPU)",
    )
    p.add_argument(
        "--resumable",
        action="store_true",
        help="keep --max-active runs going even if they cannot finish in the budget; "
        "a later call resumes them from their checkpoints",
    )
    args = p.parse_intermixed_args(argv)  # overrides may come after options
    if args.join_slowdown is not None and min(args.join_slowdown) < 1:
        p.error(f"--join-slowdown values must be >= 1, got {args.join_slowdown}")
    if args.budget <= 0 or args.max_active < 1 or args.threads < 1:
        p.error(
            f"--budget, --max-active and --threads must be positive, got "
            f"{args.budget}, {args.max_active}, {args.threads}"
        )
    sys.path.insert(0, str(ROOT / "src"))
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    record = pack(
        args.config,
        args.overrides,
        args.out,
        args.budget,
        args.first,
        args.max_active,
        args.threads,
        join_slowdown=args.join_slowdown,
        resumable=args.resumable,
    )
    finished = sum(1 for e in record["log"] if e["event"] == "finished")
    print(f"pack: {finished} run(s) finished in {record['seconds']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
