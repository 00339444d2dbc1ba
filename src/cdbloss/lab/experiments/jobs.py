"""How a sweep's jobs train: one run, or a fused group of runs, in this process or in a
pool of worker processes.

The sweep (:mod:`cdbloss.lab.experiments.sweep`) plans the jobs and a launcher
(:mod:`cdbloss.lab.experiments.launch`) decides where they train; both call what is
here, so a run's folder, ``result.json``, ``error.json`` and status record are the
same wherever it trains.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from cdbloss.lab.engine.config import config_from_dict
from cdbloss.lab.io import atomic_write_json

__all__ = [
    "Finished",
    "RunTask",
    "job_args",
    "job_died",
    "run_in_pool",
    "run_in_worker",
    "run_job",
    "run_one",
    "worker_init",
]

#: Called with ``(run_id, status record)`` in the sweep's process as each run ends.
Finished = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class RunTask:
    """One job to train: a run (its folder name, its config as a plain mapping, its
    folder) and, with ``sweep --fuse``, the other runs of its fused group, which train
    in the same job as one vmapped model (:mod:`cdbloss.lab.engine.fused`)."""

    run_id: str
    config: dict[str, Any]
    run_dir: Path
    fused_with: tuple[RunTask, ...] = ()

    @property
    def runs(self) -> tuple[RunTask, ...]:
        """The job's runs: this one, then the rest of its fused group."""
        return (self, *self.fused_with)


def run_one(cfg_dict: dict[str, Any], out_dir: str, threads: int) -> dict[str, Any]:
    """Worker body: train one run; record an error instead of raising."""
    import torch

    from cdbloss.lab.engine.trainer import Trainer

    if threads > 0:
        torch.set_num_threads(threads)
    run_dir = Path(out_dir)
    start = time.time()
    try:
        cfg = config_from_dict(cfg_dict)
        result = Trainer(cfg, run_dir).fit()
        (run_dir / "error.json").unlink(missing_ok=True)
        return _done_record(result, start)
    except Exception as err:  # a failed run must not stop the sweep
        return _failed_record(run_dir, err, traceback.format_exc(), start)


def _done_record(result: dict[str, Any], start: float) -> dict[str, Any]:
    return {
        "status": "done",
        "seconds": time.time() - start,
        "test": result["test"]["top1_accuracy"],
    }


def _failed_record(run_dir: Path, err: BaseException, trace: str, start: float) -> dict[str, Any]:
    """A failed run's status, also written to its ``error.json``."""
    record = {
        "status": "failed",
        "error": f"{type(err).__name__}: {err}",
        "traceback": trace,
        "seconds": time.time() - start,
    }
    atomic_write_json(run_dir / "error.json", record)
    return record


def run_fused(
    cfg_dicts: list[dict[str, Any]], out_dirs: list[str], threads: int
) -> list[dict[str, Any]]:
    """Worker body of a fused group (:mod:`cdbloss.lab.engine.fused`): one status per run,
    each failed one recorded in its ``error.json`` as :func:`run_one` records it."""
    import torch

    from cdbloss.lab.engine.fused import FusedTrainer

    if threads > 0:
        torch.set_num_threads(threads)
    dirs = [Path(d) for d in out_dirs]
    start = time.time()
    try:
        outcomes = FusedTrainer([config_from_dict(d) for d in cfg_dicts], dirs).fit_all()
    except Exception as err:  # the whole group failed: each run records it
        trace = traceback.format_exc()
        return [_failed_record(d, err, trace, start) for d in dirs]
    records = []
    for run_dir, outcome in zip(dirs, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            trace = "".join(getattr(outcome, "__notes__", [])) or repr(outcome)
            records.append(_failed_record(run_dir, outcome, trace, start))
        else:
            (run_dir / "error.json").unlink(missing_ok=True)
            records.append(_done_record(outcome, start))
    return records


def run_job(
    cfg_dicts: list[dict[str, Any]], out_dirs: list[str], threads: int
) -> list[dict[str, Any]]:
    """One run (:func:`run_one`) or a fused group of them (:func:`run_fused`)."""
    if len(cfg_dicts) == 1:
        return [run_one(cfg_dicts[0], out_dirs[0], threads)]
    return run_fused(cfg_dicts, out_dirs, threads)


#: Set in a worker while it trains a run: a stop request then unwinds the run (its
#: checkpoint stays, its lock is released); between runs the worker just exits.
_IN_RUN = False


def _on_stop(signum: int, frame: FrameType | None) -> None:
    if _IN_RUN:
        raise KeyboardInterrupt("stopped by its sweep")
    os._exit(128 + signum)


def worker_init(parent_pid: int) -> None:
    """First thing in each worker process: Ctrl-C is the parent's to handle (it stops the
    workers); SIGTERM stops a worker cleanly; the worker stops when its parent dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_stop)
    try:  # Linux: the kernel sends SIGTERM when the parent dies
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux: the watchdog below
        pass

    def watch() -> None:  # everywhere: an orphan is re-parented, so its parent pid changes
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(60.0)  # the run did not unwind in a minute (stuck in native code)
        os._exit(1)

    threading.Thread(target=watch, name="cdbloss-parent-watch", daemon=True).start()


def run_in_worker(
    cfg_dicts: list[dict[str, Any]], out_dirs: list[str], threads: int
) -> list[dict[str, Any]]:
    """:func:`run_job` in a pool worker: a stopped run ends the worker process."""
    global _IN_RUN
    _IN_RUN = True
    try:
        return run_job(cfg_dicts, out_dirs, threads)
    except KeyboardInterrupt:
        os._exit(143)
    finally:
        _IN_RUN = False


def _stop_workers(pool: cf.ProcessPoolExecutor) -> None:
    """Cancel the runs not started and stop the running ones (SIGTERM: they leave their
    checkpoints and release their locks); wait for the workers to end."""
    procs = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout=60)
        if proc.is_alive():  # pragma: no cover - stuck in native code
            proc.kill()
            proc.join(timeout=10)


def run_in_pool(
    tasks: list[RunTask],
    workers: int,
    threads: int,
    finished: Callable[[str, dict[str, Any]], None],
) -> None:
    """Train ``tasks`` (each one run or a fused group) in ``workers`` spawned processes,
    calling ``finished`` for each run as its job ends.

    On Ctrl-C the workers are stopped (each keeps its last checkpoint) and the
    ``KeyboardInterrupt`` goes on to the caller.
    """
    pool = cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=mp.get_context("spawn"),
        initializer=worker_init,
        initargs=(os.getpid(),),
    )
    try:
        futures = {pool.submit(run_in_worker, *job_args(task), threads): task for task in tasks}
        for fut in cf.as_completed(futures):
            task = futures[fut]
            try:
                records = fut.result()
            except Exception as err:  # the worker process itself died
                records = job_died(task, f"worker died: {err}")
            for run, record in zip(task.runs, records, strict=True):
                finished(run.run_id, record)  # one at a time: the count printed goes up by one
    except KeyboardInterrupt:
        _stop_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def job_died(task: RunTask, error: str) -> list[dict[str, Any]]:
    """The records of a job whose process or cluster job ended without its own: the same
    failure for each of its runs, also written to each run's ``error.json``."""
    record = {"status": "failed", "error": error}
    for run in task.runs:
        atomic_write_json(run.run_dir / "error.json", record)
    return [record for _ in task.runs]


def job_args(task: RunTask) -> tuple[list[dict[str, Any]], list[str]]:
    """The configs and folders of a job's runs, as :func:`run_job` takes them."""
    return [r.config for r in task.runs], [str(r.run_dir) for r in task.runs]
