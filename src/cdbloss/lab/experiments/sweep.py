"""Sweeps: the grid a config declares, run in parallel worker processes, resumable.

``sweep: {loss.name: [ce, cdb-ce], data.options.ratio: [0.9, 0.995], seed: [0, 1]}``
expands to the cross product (here 8 runs). The special key ``variants`` takes
a list of override mappings that belong together (a method = a loss plus a
training step, say) and crosses them with the other keys. Each run gets its own folder under
the sweep's output folder, named from its grid values. Re-running the sweep
skips runs whose ``result.json`` says done, resumes interrupted ones from their
checkpoints, and retries failed ones; a run that fails writes ``error.json``
with its error and does not stop the others.

The workers die with the sweep: each asks the kernel for a signal when its
parent dies (Linux) and also checks every second that its parent is alive, so
a sweep killed even with SIGKILL leaves no worker writing into its folders. A
worker told to stop leaves its run's checkpoint and releases its folder's lock.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdbloss.lab.engine.checkpoint import read_json
from cdbloss.lab.engine.config import (
    ExperimentConfig,
    Stage2Config,
    apply_overrides,
    config_from_dict,
    config_to_dict,
)
from cdbloss.lab.engine.lock import LOCK_NAME, SWEEP_LOCK_NAME, folder_lock
from cdbloss.lab.engine.trainer import _comparable, experiment_differences
from cdbloss.lab.experiments.jobs import RunTask
from cdbloss.lab.experiments.launch import Launcher, make_launcher
from cdbloss.lab.experiments.pack import read_epochs
from cdbloss.lab.io import atomic_write_json

__all__ = [
    "FUSE",
    "LAUNCHER",
    "VARIANTS",
    "SweepRun",
    "expand_grid",
    "link_stages",
    "pace_text",
    "plan_jobs",
    "run_sweep",
]

#: A sweep key whose values are mappings of overrides applied together, e.g.
#: ``variants: [{loss.name: ce}, {loss.name: ce, train.method: l2rw}]``.
VARIANTS = "variants"
#: A sweep key holding ``true`` or ``false``: train the grid's runs in fused groups
#: (``cdbloss sweep --fuse``); not a grid axis.
FUSE = "fuse"

#: The sweep key that chooses where the runs train, not a grid axis:
#: ``launcher: {name: slurm, partition: gpu, ...}`` (:mod:`cdbloss.lab.experiments.launch`).
LAUNCHER = "launcher"


@dataclass(frozen=True)
class SweepRun:
    """One point of the grid: its folder name, overrides and validated config."""

    run_id: str
    overrides: tuple[tuple[str, Any], ...]
    config: ExperimentConfig


def _slug(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_") or "x"


def expand_grid(cfg: ExperimentConfig) -> list[SweepRun]:
    """The runs of ``cfg.sweep`` (one run, the config itself, when there is no grid)."""
    base = config_to_dict(cfg)
    base.pop("sweep")
    grid = {k: v for k, v in cfg.sweep.items() if k not in (FUSE, LAUNCHER)}
    if not grid:
        return [SweepRun(cfg.name, (), config_from_dict(base))]
    axes: list[list[tuple[tuple[str, Any], ...]]] = []
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"sweep key {key!r} must map to a non-empty list, got {values!r}")
        if key == VARIANTS:
            for v in values:
                if not isinstance(v, dict) or not v:
                    raise ValueError(
                        f"each entry of sweep.{VARIANTS} must be a mapping of overrides, got {v!r}"
                    )
            axes.append([tuple(v.items()) for v in values])
        else:
            axes.append([((key, v),) for v in values])
    runs = []
    for combo in itertools.product(*axes):
        overrides = tuple(pair for group in combo for pair in group)
        run_id = "__".join(f"{k.split('.')[-1]}={_slug(v)}" for k, v in overrides)
        raw = apply_overrides(base, list(overrides))
        raw["name"] = f"{cfg.name}/{run_id}"
        runs.append(SweepRun(run_id, overrides, config_from_dict(raw)))
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        raise ValueError("sweep values give clashing run folder names; make the values distinct")
    return runs


def _stage1_key(cfg: ExperimentConfig) -> str:
    """What a stage-2 grid point shares with its stage-1 point: the config without
    ``stage2``, its name and the keys that change only how a run executes (JSON)."""
    plain = config_to_dict(dataclasses.replace(cfg, stage2=Stage2Config(), name=""))
    return json.dumps(_comparable(plain), sort_keys=True)


def link_stages(runs: list[SweepRun], out: Path) -> list[SweepRun]:
    """``runs`` with ``stage2.init_from`` filled in where a stage-2 point leaves it out:
    the folder (``out/<run_id>``) of the one-stage grid point whose config equals the
    stage-2 point's without its ``stage2`` section.

    Raises:
        ValueError: a stage-2 point without ``init_from`` whose stage-1 run is not in
            the grid (naming the run and what to add).
    """
    stage1: dict[str, str] = {}
    for run in runs:
        if run.config.stage2.method == "none":
            stage1.setdefault(_stage1_key(run.config), run.run_id)
    linked = []
    for run in runs:
        s = run.config.stage2
        if s.method != "none" and s.init_from is None:
            run_id = stage1.get(_stage1_key(run.config))
            if run_id is None:
                raise ValueError(
                    f"sweep run {run.run_id!r} (stage2.method {s.method!r}) has no stage-1 run "
                    "in the grid: no grid point equals its config without stage2; add that "
                    "point (e.g. a variant without the stage2 keys) or set stage2.init_from"
                )
            stage2 = dataclasses.replace(s, init_from=str(out / run_id))
            run = SweepRun(
                run.run_id, run.overrides, dataclasses.replace(run.config, stage2=stage2)
            )
        linked.append(run)
    return linked


def run_status(run_dir: Path) -> str:
    """``done``, ``failed``, ``partial`` (a checkpoint, no result) or ``new``."""
    result = run_dir / "result.json"
    if result.exists():
        try:
            if read_json(result).get("status") == "done":
                return "done"
        except (ValueError, AttributeError):  # unreadable: the run itself says so when it runs
            pass
    if (run_dir / "error.json").exists():
        return "failed"
    if (run_dir / "checkpoint.pt").exists():
        return "partial"
    return "new"


def check_sweep_folder(out_dir: str | Path) -> None:
    """Refuse, before any work, a sweep folder that is a file or that is one run's folder.

    Raises:
        ValueError: naming the folder and what it is.
    """
    out = Path(out_dir)
    for p in (out, *out.parents):
        if p.exists() and not p.is_dir():
            raise ValueError(
                f"sweep folder {str(out)!r}: {str(p)!r} is a file; a sweep needs a folder (--out)"
            )
    if any((out / f).exists() for f in ("config.json", "result.json", LOCK_NAME)):
        raise ValueError(
            f"sweep folder {str(out)!r} is one run's folder (it holds config.json); "
            "give the sweep a folder of its own"
        )


def run_sweep(
    cfg: ExperimentConfig,
    out_dir: str | Path,
    workers: int = 1,
    progress: bool = True,
    fuse: bool | None = None,
    launcher: Launcher | str | None = None,
) -> dict[str, dict[str, Any]]:
    """Run every point of ``cfg``'s grid into ``out_dir/<run_id>``.

    Args:
        cfg: a config with a ``sweep`` grid.
        out_dir: the sweep folder (holds ``sweep.json`` and one folder per run).
        workers: parallel worker processes; each gets ``cores // workers`` torch threads.
        progress: print a line per finished run.
        fuse: train the runs that can share a model's code, data stream and schedule as
            fused groups (:mod:`cdbloss.lab.engine.fused`); ``None``: as the config's
            ``sweep.fuse`` says (default false).
        launcher: where the runs train: a :class:`~cdbloss.lab.experiments.launch.Launcher`,
            or a name (``local``, ``slurm``, ``submitit-local``) set up from
            ``cfg.sweep["launcher"]``; by default the config's, else ``local``.

    Returns:
        ``run_id -> status record``; also written to ``out_dir/sweep.json``.
    """
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    out = Path(out_dir)
    check_sweep_folder(out)
    runs = link_stages(expand_grid(cfg), out)
    if not isinstance(launcher, Launcher):
        launcher = make_launcher(cfg.sweep.get(LAUNCHER), launcher, workers, out.absolute())
    # held while the launcher waits for its runs, wherever they train
    with folder_lock(out, SWEEP_LOCK_NAME, "sweep folder"):
        fused = bool(cfg.sweep.get(FUSE, False)) if fuse is None else fuse
        return _run_sweep(cfg, out, runs, launcher, progress, fused)


def _finished_and_todo(
    out: Path, runs: list[SweepRun]
) -> tuple[dict[str, dict[str, Any]], list[SweepRun]]:
    """The statuses of the runs already done in ``out``, and the runs left to train."""
    statuses: dict[str, dict[str, Any]] = {}
    todo = []
    for run in runs:
        state = run_status(out / run.run_id)
        # a finished run of another experiment (e.g. one from before a change of the
        # library's defaults) is not skipped: its worker reports the difference
        if state == "done" and not experiment_differences(out / run.run_id, run.config):
            statuses[run.run_id] = {"status": "done", "skipped": True}
        else:
            todo.append(run)
    return statuses, todo


def plan_jobs(out: Path, todo: list[SweepRun], fuse: bool) -> list[list[SweepRun]]:
    """The runs in jobs: one run each, or with ``fuse`` the runs that can train together
    (the same :func:`~cdbloss.lab.engine.fused.fuse_key` and resume epoch) as one job,
    placed where its first run stands in ``todo``."""
    if not fuse:
        return [[run] for run in todo]
    from cdbloss.lab.engine.fused import fuse_key, why_not_fusable

    groups: dict[str, list[SweepRun]] = {}
    jobs: list[list[SweepRun]] = []
    for run in todo:
        if why_not_fusable(run.config) is not None:
            jobs.append([run])
            continue
        key = f"{_saved_epochs(out / run.run_id)}:{fuse_key(run.config)}"
        if key not in groups:
            groups[key] = []
            jobs.append(groups[key])
        groups[key].append(run)
    return jobs


def _saved_epochs(run_dir: Path) -> int:
    """The epochs a run's checkpoint holds (its ``metrics.jsonl`` lines; 0 without one)."""
    return len(read_epochs(run_dir)) if (run_dir / "checkpoint.pt").exists() else 0


def _run_sweep(
    cfg: ExperimentConfig,
    out: Path,
    runs: list[SweepRun],
    launcher: Launcher,
    progress: bool,
    fuse: bool = False,
) -> dict[str, dict[str, Any]]:
    statuses, todo = _finished_and_todo(out, runs)
    jobs = plan_jobs(out, todo, fuse)
    if progress:
        fused = sum(len(j) for j in jobs if len(j) > 1)
        in_groups = (
            f" ({fused} of them in {sum(len(j) > 1 for j in jobs)} fused groups)" if fused else ""
        )
        print(
            f"sweep {cfg.name}: {len(runs)} runs, {len(runs) - len(todo)} already done, "
            f"{len(todo)} to run{in_groups}"
        )
    start = time.perf_counter()

    first_with: dict[str, str] = {}  # error -> the first run that failed with it

    def report(run_id: str) -> None:
        finished = len(statuses) - (len(runs) - len(todo))  # by this call, not skipped
        clock = pace_text(time.perf_counter() - start, finished, len(todo) - finished)
        status = statuses[run_id]
        if status["status"] == "failed":  # one error, printed once however many runs it stops
            error = str(status.get("error"))
            if error in first_with:
                status = {**status, "error": f"the same error as {first_with[error]}"}
            else:
                first_with[error] = run_id
        _report(progress, run_id, status, len(statuses), len(runs), clock)

    def stopped() -> KeyboardInterrupt:
        _write_status(out, cfg.name, runs, statuses, "interrupted")
        done = sum(1 for v in statuses.values() if v["status"] == "done")
        return KeyboardInterrupt(
            f"sweep {str(out)!r} stopped with {done} of {len(runs)} runs done; the same "
            "command resumes the others, each from its last checkpoint"
        )

    tasks = [_task(out, job) for job in jobs]

    def finished(run_id: str, status: dict[str, Any]) -> None:
        statuses[run_id] = status
        report(run_id)

    # stage-2 runs wait for every stage-1 run of the call (they start from their models)
    waves = [
        [t for t, j in zip(tasks, jobs, strict=True) if not _has_stage2(j)],
        [t for t, j in zip(tasks, jobs, strict=True) if _has_stage2(j)],
    ]
    try:
        for wave in waves:
            if wave:
                launcher.launch(wave, finished)
    except KeyboardInterrupt:
        raise stopped() from None
    ordered = _write_status(out, cfg.name, runs, statuses, "failed")
    failed = [k for k, v in ordered.items() if v["status"] == "failed"]
    left = [k for k, v in ordered.items() if v["status"] == "stopped"]
    if progress and failed:
        print(f"{len(failed)} run(s) failed: {failed} (see their error.json)")
    if progress and left:
        print(
            f"{len(left)} run(s) stopped for a later call: {left} (the same command resumes them)"
        )
    return ordered


def _has_stage2(job: list[SweepRun]) -> bool:
    return any(r.config.stage2.method != "none" for r in job)


def _quiet(run: SweepRun) -> dict[str, Any]:
    """The run's config as plain data, without progress bars (one console, many workers)."""
    d = config_to_dict(run.config)
    d["train"]["progress"] = False
    return d


def _task(out: Path, job: list[SweepRun]) -> RunTask:
    """A job for a launcher: its first run, with the rest of a fused group beside it."""
    first, *rest = (RunTask(r.run_id, _quiet(r), out / r.run_id) for r in job)
    return RunTask(first.run_id, first.config, first.run_dir, tuple(rest))


def _write_status(
    out: Path, name: str, runs: list[SweepRun], statuses: dict[str, dict[str, Any]], missing: str
) -> dict[str, dict[str, Any]]:
    """Write ``sweep.json`` (runs in grid order; a run without a status gets ``missing``)."""
    ordered = {r.run_id: statuses.get(r.run_id, {"status": missing}) for r in runs}
    atomic_write_json(out / "sweep.json", {"name": name, "runs": ordered})
    return ordered


def _clock(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def pace_text(elapsed_s: float, finished: int, remaining: int) -> str:
    """The wall time a sweep has taken and, from its pace so far, what is left.

    The projection is ``elapsed / finished * remaining``: the mean wall time per
    finished run (all workers together) times the runs still to go, so a grid
    whose slow runs come last (L2RW) is under-estimated until they start. Rounded
    to the minute.

    Example:
        >>> pace_text(600, 2, 8)
        'elapsed 10 min, about 40 min left'
        >>> pace_text(5400, 35, 0)
        'elapsed 1 h 30 min'
    """
    text = f"elapsed {_clock(elapsed_s)}"
    if finished > 0 and remaining > 0:
        text += f", about {_clock(elapsed_s / finished * remaining)} left"
    return text


def _report(
    enabled: bool, run_id: str, status: dict[str, Any], done: int, total: int, clock: str
) -> None:
    if not enabled:
        return
    if status["status"] == "done":
        acc = status.get("test")
        tail = (
            f"test top-1 {acc:.4f} in {status['seconds']:.0f} s" if acc is not None else "skipped"
        )
        print(f"[{done}/{total}] {run_id}: {tail} ({clock})", flush=True)
    else:
        what = str(status["status"]).upper()  # FAILED, or STOPPED (the pack launcher)
        print(f"[{done}/{total}] {run_id}: {what} {status.get('error')} ({clock})", flush=True)
