"""Several jobs on one GPU at once, inside a time budget: the ``pack`` launcher's scheduler.

A ResNet-32 step on a CIFAR batch leaves most of a modern GPU idle, so one
job at a time wastes it, and a fixed ``--workers N`` either wastes it too or
starts so many jobs that none finishes before the budget ends (a lent GPU
machine gives one call of about ten minutes). The ``pack`` launcher
(``cdbloss sweep CONFIG --launcher pack --budget 480``) adds jobs one by one
while the measured pace says every job, the new one included, still ends
before the deadline, and stops the newest job when the pace says they will
not all make it. A job is one run, or with ``--fuse`` one fused group: a
group trains in one process and is admitted, paced and stopped as one unit.

The pace of a job is read from its runs' ``metrics.jsonl`` (one line per
epoch, with the optimiser ``step`` count and the epoch's ``train_s`` and
``val_s``; a fused group's members log the same steps, so the member with the
most epochs stands for the group): seconds per step over the epochs seen
since the last launch, stop or finish, never counting the first epoch after
the job's own launch (its warm-up: cudnn autotuning, and with
``train.compile`` the compile and CUDA graph capture). A launch assumes the
GPU is already full, so that ``n`` jobs become ``n + 1`` at ``(n + 1) / n``
times their step time (``join_slowdown`` replaces that guess); the next
measurements correct it. Jobs start in the sweep's order, those whose runs'
folder names hold a ``first`` text ahead. A job stopped by the pace goes back
to the queue's head and resumes from its checkpoint when it fits again; at
the deadline the jobs still going are stopped the same way (SIGTERM: each
keeps its last checkpoint and releases its folder's lock) and reported
``stopped``, so the same command resumes them. The log of launches, stops and
ends goes to ``<sweep folder>/pack.json``. Jobs too long for one budget take
``resumable``: ``max_active`` jobs are kept going, the deadline stops them,
and the next call resumes them.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cdbloss.lab.experiments.jobs import (
    Finished,
    RunTask,
    job_args,
    job_died,
    run_in_worker,
    worker_init,
)
from cdbloss.lab.io import atomic_write_json

__all__ = [
    "PACK_OPTIONS",
    "STARTUP_S",
    "WALL_PER_TRAIN",
    "Pace",
    "PackOptions",
    "decide",
    "pack_options",
    "read_epochs",
    "run_packed",
    "step_seconds",
    "steps_done",
]

#: Seconds a new job spends before its first step: process start, CUDA context, data.
STARTUP_S = 25.0
#: ``train_s + val_s`` leave out checkpoint writes and the final test pass: on the H100
#: CE run (results/cifar10_lt) they were 368 of its 391 s, so the pace is scaled by this.
WALL_PER_TRAIN = 1.08

#: ``sweep.launcher`` keys of the pack launcher (besides ``name``).
PACK_OPTIONS = ("budget", "first", "max_active", "join_slowdown", "resumable", "threads", "poll_s")


@dataclass(frozen=True)
class PackOptions:
    """The pack launcher's settings (``sweep.launcher`` keys, or ``cdbloss sweep`` flags).

    Attributes:
        budget: seconds until every job must have ended (``--budget``).
        first: jobs whose run folder names hold one of these texts start first.
        max_active: at most this many jobs at once (``--max-active``).
        join_slowdown: the factor a launch is assumed to slow every job's steps by:
            its ``n``-th value (from 1) when ``n`` jobs are active, the last one
            beyond its end; empty: ``(n + 1) / n``, a GPU already full.
        resumable: keep ``max_active`` jobs going whether or not they can finish.
        threads: torch threads of each job (0: ``cores // max_active``).
        poll_s: seconds between looks at the jobs.
    """

    budget: float
    first: tuple[str, ...] = ()
    max_active: int = 8
    join_slowdown: tuple[float, ...] = ()
    resumable: bool = False
    threads: int = 0
    poll_s: float = 2.0


def _number(spec: dict[str, Any], key: str, default: float, low: float, kind: type) -> Any:
    """``spec[key]`` as ``kind`` (int or float) at least ``low``, or a one-line error."""
    value = spec.get(key, default)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= low
    if not ok or (kind is int and value != int(value)):
        what = "an integer" if kind is int else "a number"
        raise ValueError(f"sweep.launcher.{key} must be {what} >= {low:g}, got {value!r}")
    return kind(value)


def pack_options(spec: dict[str, Any]) -> PackOptions:
    """Check a ``sweep.launcher`` mapping of the pack launcher (its ``name`` removed).

    Raises:
        ValueError: a missing budget, an unknown key or a bad value, in one line.
    """
    unknown = sorted(set(spec) - set(PACK_OPTIONS))
    if unknown:
        raise ValueError(
            f"unknown sweep.launcher key(s) {unknown} for the pack launcher; "
            f"known: {list(PACK_OPTIONS)}"
        )
    if spec.get("budget") is None:
        raise ValueError(
            "the pack launcher needs a time budget: --budget SECONDS or sweep.launcher.budget"
        )
    budget = spec["budget"]
    if not isinstance(budget, (int, float)) or isinstance(budget, bool) or not budget > 0:
        raise ValueError(
            f"sweep.launcher.budget (--budget) must be a number of seconds > 0, got {budget!r}"
        )
    first = spec.get("first") or ()
    first = (first,) if isinstance(first, str) else tuple(first)
    if not all(isinstance(t, str) and t for t in first):
        raise ValueError(f"sweep.launcher.first must be texts of run names, got {first!r}")
    slow = spec.get("join_slowdown") or ()
    slow = (slow,) if isinstance(slow, (int, float)) else tuple(slow)
    if not all(isinstance(f, (int, float)) and not isinstance(f, bool) and f >= 1 for f in slow):
        raise ValueError(f"sweep.launcher.join_slowdown values must be >= 1, got {list(slow)}")
    resumable = spec.get("resumable", False)
    if not isinstance(resumable, bool):
        raise ValueError(f"sweep.launcher.resumable must be true or false, got {resumable!r}")
    return PackOptions(
        budget=float(budget),
        first=first,
        max_active=_number(spec, "max_active", 8, 1, int),
        join_slowdown=tuple(float(f) for f in slow),
        resumable=resumable,
        threads=_number(spec, "threads", 0, 0, int),
        poll_s=_number(spec, "poll_s", 2.0, 0.01, float),
    )


# ------------------------------------------------------------------ the pace


@dataclass
class Pace:
    """What the scheduler knows of one active job."""

    run_id: str
    launched: float  # monotonic seconds
    steps_done: int
    steps_total: int
    step_s: float | None  # wall seconds per step measured since the last change, if any

    def seconds_left(self) -> float:
        """Seconds to the job's end at its measured pace (``inf`` if not measured yet)."""
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
        now: the current time; ``deadline``: when every job must have ended.
        active: the jobs now training.
        next_steps: optimiser steps of the next queued job (``None``: queue empty).
        max_active: at most this many jobs at once.
        startup_s: seconds a new job spends before its first step.
        alone_step_s: the fastest seconds per step measured so far (a job alone
            on the GPU), if any: a launch onto an idle GPU must fit at that pace.
        join_slowdown: the factor by which a launch is assumed to slow every
            job's steps: its ``n``-th value (from 1) when ``n`` jobs are active,
            the last one beyond its end. ``None`` or empty assumes a full GPU,
            ``(n + 1) / n``. Jobs bound by the CPU's kernel launches (small
            models) slow far less; a wrong guess costs a stopped job, not a
            late one.
    """
    if not active:
        if next_steps is None or now + startup_s > deadline:  # could not reach its first step
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
    try:
        text = (run_dir / "metrics.jsonl").read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except (OSError, ValueError):
        return []


def job_epochs(task: RunTask) -> list[dict[str, Any]]:
    """A job's epoch records: its run's, or a fused group's member with the most epochs
    (the members log the same steps; one that left the group stops logging)."""
    return max((read_epochs(run.run_dir) for run in task.runs), key=len)


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


def job_steps(task: RunTask, cache: dict[str, int]) -> int:
    """Optimiser steps of a job: ``ceil(train size / batch) * epochs`` of its first run
    (a fused group's members share data, batch and epochs); data loaded once per split."""
    from cdbloss.lab.engine.config import config_from_dict
    from cdbloss.lab.engine.trainer import Trainer, _size

    cfg = config_from_dict(task.config)
    key = json.dumps([cfg.data.protocol, cfg.data.options, cfg.seed], sort_keys=True, default=str)
    if key not in cache:
        cache[key] = _size(Trainer(cfg, task.run_dir)._load_data().train)
    return int(math.ceil(cache[key] / cfg.train.batch_size) * cfg.train.epochs)


# ------------------------------------------------------------------ the jobs


def _pack_worker(
    conn: Any, parent_pid: int, cfg_dicts: list[dict[str, Any]], out_dirs: list[str], threads: int
) -> None:
    """A job's process: the pool worker's signals (SIGTERM stops the run, which keeps its
    checkpoint), then the job; its status records go back through ``conn``."""
    worker_init(parent_pid)
    conn.send(run_in_worker(cfg_dicts, out_dirs, threads))
    conn.close()


@dataclass
class _Active:
    task: RunTask
    process: Any
    conn: Any
    launched: float
    steps_total: int
    baseline_epoch: int = 0  # epochs seen at the last change; the pace counts later ones
    # a job's first epoch here holds its warm-up (cudnn autotuning, torch.compile and CUDA
    # graph capture: a minute with train.compile), so its pace never counts that epoch
    first_paced: int = 1
    records: list[dict[str, Any]] | None = field(default=None)

    def rebase(self, epochs_seen: int) -> None:
        """Count the pace from now on: epochs after ``epochs_seen``, never the warm-up one."""
        self.baseline_epoch = max(epochs_seen, self.first_paced)

    def poll(self) -> bool:
        """Collect the job's records if sent; whether its process has ended."""
        if self.records is None and self.conn.poll():
            try:
                self.records = self.conn.recv()
            except EOFError:  # ended without sending: stopped or died
                pass
        return not self.process.is_alive()

    def stop(self) -> None:
        """SIGTERM: the run unwinds (its checkpoint stays, its lock is released)."""
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(60)
        if self.process.is_alive():  # pragma: no cover - stuck in native code
            self.process.kill()
            self.process.join(10)
        self.poll()  # it may have sent its records just before
        self.conn.close()


def _died(item: _Active) -> list[dict[str, Any]]:
    """Failure records of a job whose process ended without its records."""
    return job_died(item.task, f"worker died: exit code {item.process.exitcode}")


def _stopped(task: RunTask, at_deadline: bool) -> list[dict[str, Any]]:
    """The records of a job left for a later call (its checkpoint, if any, kept)."""
    epochs = len(job_epochs(task))
    if at_deadline:
        why = f"stopped at the pack budget's deadline after {epochs} epoch(s)"
    elif epochs:
        why = f"stopped by the pack's pace after {epochs} epoch(s), not resumed in the budget"
    else:
        why = "not started: the pack budget would end before it finished"
    return [
        {"status": "stopped", "error": f"{why}; the same command resumes it"} for _ in task.runs
    ]


def run_packed(
    tasks: Sequence[RunTask],
    finished: Finished,
    out: Path,
    options: PackOptions,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Train ``tasks`` as the pack launcher does (module docs); return the ``pack.json`` record.

    Each run's status goes to ``finished`` as its job ends, a job stopped at the
    deadline or never started included (``{"status": "stopped", "error": why}``).
    On ``KeyboardInterrupt`` (or any error here) the jobs going are stopped, each
    keeping its checkpoint, ``pack.json`` is written and the exception goes on.
    """
    packer = _Packer(list(tasks), finished, out, options, clock)
    try:
        packer.loop()
    except BaseException:
        for item in packer.active:
            item.stop()
        packer.write()
        raise
    return packer.write()


class _Packer:
    """The state of one pack call: its queue, its active jobs and its log."""

    def __init__(
        self,
        tasks: list[RunTask],
        finished: Finished,
        out: Path,
        options: PackOptions,
        clock: Callable[[], float],
    ) -> None:
        first = options.first
        # stable: the jobs holding a --first text move ahead, in the sweep's order
        self.queue = sorted(
            tasks, key=lambda t: not any(x in r.run_id for r in t.runs for x in first)
        )
        self.finished, self.out, self.options, self.clock = finished, out, options, clock
        self.start = clock()
        self.deadline = self.start + options.budget
        self.active: list[_Active] = []
        self.log: list[dict[str, Any]] = []
        self.sizes: dict[str, int] = {}
        self.fastest: float | None = None  # seconds per step, the lowest seen
        self.threads = options.threads or max(1, (os.cpu_count() or 1) // options.max_active)
        self.ctx = mp.get_context("spawn")

    def event(self, kind: str, task: RunTask, **extra: Any) -> None:
        t = self.clock() - self.start
        runs = {"runs": [r.run_id for r in task.runs]} if task.fused_with else {}
        self.log.append({"t": round(t, 1), "event": kind, "run": task.run_id, **runs, **extra})
        print(f"pack [{t:6.1f} s] {kind} {task.run_id} {extra if extra else ''}", flush=True)

    def changed(self) -> None:
        for item in self.active:
            item.rebase(len(job_epochs(item.task)))

    def report(self, task: RunTask, records: list[dict[str, Any]]) -> None:
        for run, record in zip(task.runs, records, strict=True):
            self.finished(run.run_id, record)

    def loop(self) -> None:
        """Launch, stop and collect jobs until the queue is empty or the deadline comes."""
        while True:
            self.reap()
            if self.clock() >= self.deadline:
                self.stop_all()
                break
            if not self.active and not self.queue:
                break
            action, target = self.next_action()
            if action == "wait" and not self.active:
                break  # the GPU is idle and the next job would not finish: end early
            if action == "launch":
                self.launch(self.queue.pop(0))
            elif action == "stop":
                self.stop(next(a for a in self.active if a.task.run_id == target))
            time.sleep(self.options.poll_s)
        for task in self.queue:  # never started, or stopped by the pace and not again
            self.report(task, _stopped(task, at_deadline=False))
        self.queue = []

    def reap(self) -> None:
        """Report the jobs whose process has ended."""
        for item in [a for a in self.active if a.poll()]:
            item.process.join()
            self.active.remove(item)
            records = item.records if item.records is not None else _died(item)
            self.report(item.task, records)
            states = [r["status"] for r in records]
            done = all(s == "done" for s in states)
            self.event("finished" if done else "ended", item.task, status=states)
            self.changed()

    def next_action(self) -> Action:
        """What :func:`decide` says now (in ``resumable`` mode: fill ``max_active`` first)."""
        opts = self.options
        if opts.resumable and self.queue and len(self.active) < opts.max_active:
            return ("launch", None)  # cut at the deadline anyway: no pace to wait for
        paces = []
        for item in self.active:
            epochs = job_epochs(item.task)
            step_s = step_seconds(epochs, item.baseline_epoch)
            scaled = None if step_s is None else step_s * WALL_PER_TRAIN
            paces.append(
                Pace(item.task.run_id, item.launched, steps_done(epochs), item.steps_total, scaled)
            )
        measured = [p.step_s for p in paces if p.step_s is not None]
        if measured:
            self.fastest = min(measured + ([self.fastest] if self.fastest is not None else []))
        next_steps = self.steps_left(self.queue[0]) if self.queue else None
        deadline = math.inf if opts.resumable else self.deadline
        return decide(
            self.clock(),
            deadline,
            paces,
            next_steps,
            opts.max_active,
            STARTUP_S,
            self.fastest,
            opts.join_slowdown,
        )

    def steps_left(self, task: RunTask) -> int:
        """A queued job's steps; one stopped earlier resumes from its checkpoint."""
        return job_steps(task, self.sizes) - steps_done(job_epochs(task))

    def launch(self, task: RunTask) -> None:
        steps = self.steps_left(task)
        receive, send = self.ctx.Pipe(duplex=False)
        args = (send, os.getpid(), *job_args(task), self.threads)
        process = self.ctx.Process(target=_pack_worker, args=args, daemon=False)
        process.start()
        send.close()  # the child holds its end: EOF here once it ends
        self.changed()
        # a resumed job's earlier epochs ran at another pace: count only its new ones
        earlier = len(job_epochs(task))
        total = job_steps(task, self.sizes)
        item = _Active(task, process, receive, self.clock(), total, earlier + 1, earlier + 1)
        self.active.append(item)
        self.event("launch", task, active=len(self.active), steps=steps)

    def stop(self, item: _Active) -> None:
        """Stop a job the pace says will not finish; it goes back to the queue's head."""
        item.stop()
        self.active.remove(item)
        if item.records is not None:  # it ended just now after all
            self.report(item.task, item.records)
            self.event("finished", item.task, status=[r["status"] for r in item.records])
        else:
            self.queue.insert(0, item.task)
            self.event("stop", item.task, epochs=len(job_epochs(item.task)))
        self.changed()

    def stop_all(self) -> None:
        """The deadline: stop every job going (checkpoints kept) and report it stopped."""
        for item in self.active:
            if item.process.is_alive():
                item.process.terminate()
        for item in self.active:
            item.stop()
            self.event("deadline", item.task, epochs=len(job_epochs(item.task)))
            self.report(item.task, item.records or _stopped(item.task, at_deadline=True))
        self.active = []

    def write(self) -> dict[str, Any]:
        """Write ``pack.json`` (the settings and the log) into the sweep folder."""
        opts = self.options
        record = {
            "budget_s": opts.budget,
            "first": list(opts.first),
            "max_active": opts.max_active,
            "join_slowdown": list(opts.join_slowdown) or None,
            "resumable": opts.resumable,
            "threads": self.threads,
            "seconds": round(self.clock() - self.start, 1),
            "log": self.log,
        }
        atomic_write_json(self.out / "pack.json", record)
        return record
