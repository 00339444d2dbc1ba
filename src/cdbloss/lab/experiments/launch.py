"""Launchers: where a sweep's runs train.

A sweep (:func:`cdbloss.lab.experiments.sweep.run_sweep`) decides which runs
are left to train; a :class:`Launcher` trains them and hands back each run's
status as it ends. Three kinds:

* :class:`LocalLauncher` (``local``, the default): worker processes on this
  machine, ``--workers`` of them (one: in the sweep's own process).
* :class:`SubmititLauncher` (``slurm``, ``submitit-local``): each run a job of
  `submitit <https://github.com/facebookincubator/submitit>`_, one SLURM job
  array for the sweep (``slurm``), or processes on this machine through
  submitit's local executor (``submitit-local``, for trying a cluster config
  out). Needs the ``slurm`` extra; ``import cdbloss`` never imports submitit.
* :class:`PackLauncher` (``pack``): as many jobs at once on this machine's GPU
  as their measured pace lets end inside a time budget; the jobs still going
  at the deadline stop with their checkpoints (:mod:`cdbloss.lab.experiments.pack`).

A config chooses and sets up its launcher under ``sweep.launcher``; the grid
itself is the rest of ``sweep``::

    sweep:
      launcher: {name: slurm, partition: gpu, timeout_min: 120, gpus_per_node: 1,
                 cpus_per_task: 8, mem_gb: 32, array_parallelism: 16}
      seed: [0, 1, 2]

``cdbloss sweep --launcher NAME`` overrides the name; ``sweep.launcher.KEY=VALUE``
overrides any key. Whatever the launcher, a run is the same function
(:func:`cdbloss.lab.experiments.jobs.run_one`), so its folder, its
``result.json`` and, when it fails, its ``error.json`` are the same.
"""

from __future__ import annotations

import abc
import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from cdbloss.lab.experiments.jobs import (
    Finished,
    RunTask,
    job_args,
    job_died,
    run_in_pool,
    run_job,
)
from cdbloss.lab.experiments.pack import PackOptions, pack_options, run_packed

__all__ = [
    "LAUNCHERS",
    "SLURM_OPTIONS",
    "Launcher",
    "LocalLauncher",
    "PackLauncher",
    "RunTask",
    "SubmititLauncher",
    "make_launcher",
]

#: The launcher names ``--launcher`` and ``sweep.launcher.name`` take.
LAUNCHERS = ("local", "slurm", "submitit-local", "pack")

#: ``sweep.launcher`` keys of the submitit launchers -> submitit's parameter names
#: (``AutoExecutor.update_parameters``; ``slurm_*`` ones only reach SLURM).
SLURM_OPTIONS: dict[str, str] = {
    "partition": "slurm_partition",
    "account": "slurm_account",
    "qos": "slurm_qos",
    "constraint": "slurm_constraint",
    "setup": "slurm_setup",
    "timeout_min": "timeout_min",
    "gpus_per_node": "gpus_per_node",
    "cpus_per_task": "cpus_per_task",
    "mem_gb": "mem_gb",
    "array_parallelism": "slurm_array_parallelism",
}


class Launcher(abc.ABC):
    """Trains a sweep's runs and reports each one's status as it ends."""

    name: ClassVar[str]

    @abc.abstractmethod
    def launch(self, tasks: Sequence[RunTask], finished: Finished) -> None:
        """Train ``tasks``; call ``finished(run_id, status)`` in this process as each ends.

        A status is the record of :func:`cdbloss.lab.experiments.jobs.run_one`
        (``{"status": "done", "seconds", "test"}`` or ``{"status": "failed", "error",
        ...}``); a run whose process or job died is reported failed, with its
        ``error.json`` written here. On ``KeyboardInterrupt`` the runs still going
        are stopped (each keeps its last checkpoint) and the interrupt goes on.
        """


class LocalLauncher(Launcher):
    """Worker processes on this machine: the sweep's behaviour before launchers.

    Args:
        workers: parallel processes, each with ``cores // workers`` torch threads;
            1 trains the runs one after the other in the calling process.
    """

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"--workers must be >= 1, got {workers}")
        self.workers = workers

    def launch(self, tasks: Sequence[RunTask], finished: Finished) -> None:
        if self.workers == 1:
            for task in tasks:
                records = run_job(*job_args(task), 0)
                for run, record in zip(task.runs, records, strict=True):
                    finished(run.run_id, record)
            return
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        run_in_pool(list(tasks), self.workers, threads, finished)


class PackLauncher(Launcher):
    """Jobs packed onto this machine's GPU inside a time budget, by their measured pace.

    Args:
        out: the sweep folder (``pack.json``, the log of launches and stops, goes there).
        options: the budget and the rest (:class:`~cdbloss.lab.experiments.pack.PackOptions`).
    """

    name = "pack"

    def __init__(self, out: Path, options: PackOptions) -> None:
        self.out = Path(out)
        self.options = options

    def launch(self, tasks: Sequence[RunTask], finished: Finished) -> None:
        run_packed(tasks, finished, self.out, self.options)


def _submitit() -> Any:
    """The submitit module, or a one-line error naming the extra that installs it."""
    try:
        import submitit
    except ImportError:
        raise ValueError(
            "the slurm and submitit-local launchers need submitit: "
            "pip install 'cdb-loss[slurm]' (or pip install submitit)"
        ) from None
    return submitit


class TrainJob:
    """The body of one submitit job: train one run (or one fused group), in the job's process.

    On a time limit or a preemption, submitit asks :meth:`checkpoint` for the
    job to queue again: the same call, which resumes the run from its last
    ``checkpoint.pt``. submitit requeues a job that reaches its time limit at
    most 3 times; then the run fails with submitit's reason in its ``error.json``.
    """

    def __call__(
        self, configs: list[dict[str, Any]], run_dirs: list[str], threads: int
    ) -> list[dict[str, Any]]:
        return run_job(configs, run_dirs, threads)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """The resubmission submitit queues when the job is stopped early."""
        return _submitit().helpers.DelayedSubmission(self, *args, **kwargs)


@contextlib.contextmanager
def _quiet_stderr(enabled: bool) -> Iterator[None]:
    """While on, processes started here write their stderr to the null device.

    submitit's local executor starts a controller per job that inherits the
    console, and a Ctrl-C or a cancel would print its traceback there; the
    jobs' own output goes to their logs either way.
    """
    if not enabled:
        yield
        return
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(null)
        os.close(saved)


class SubmititLauncher(Launcher):
    """Each run a submitit job: a SLURM job array, or local processes.

    Args:
        cluster: ``"slurm"`` or ``"local"`` (submitit's local executor).
        folder: submitit's folder for its pickles and the jobs' logs (``%j`` is
            the job id).
        options: ``sweep.launcher`` keys (:data:`SLURM_OPTIONS`).
        parallelism: with ``cluster="local"``, the most jobs running at once
            (SLURM takes ``array_parallelism`` from ``options``).
        poll_s: seconds between looks at the jobs' states (default 0.5 for local
            jobs; 10 on SLURM, where each look reads the shared filesystem, and
            submitit asks ``sacct`` less often still).

    Raises:
        ValueError: submitit is missing, or an option is unknown or has the wrong type.
    """

    name = "submitit"

    def __init__(
        self,
        cluster: str,
        folder: str | Path,
        options: dict[str, Any] | None = None,
        parallelism: int = 1,
        poll_s: float | None = None,
    ) -> None:
        options = dict(options or {})
        unknown = sorted(set(options) - set(SLURM_OPTIONS))
        if unknown:
            raise ValueError(
                f"unknown sweep.launcher key(s) {unknown}; known: {sorted(SLURM_OPTIONS)}"
            )
        if parallelism < 1:
            raise ValueError(f"launcher parallelism must be >= 1, got {parallelism}")
        submitit = _submitit()
        self.cluster = cluster
        self.parallelism = parallelism
        self.poll_s = poll_s if poll_s is not None else (10.0 if cluster == "slurm" else 0.5)
        try:
            self.executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
        except RuntimeError as err:  # no srun here: not a SLURM machine
            raise ValueError(
                f"launcher {cluster!r}: {err} (run the sweep where SLURM's srun and sbatch are)"
            ) from None
        params = {SLURM_OPTIONS[k]: v for k, v in options.items()}
        params.setdefault("timeout_min", 60 if cluster == "slurm" else 24 * 60)
        try:
            self.executor.update_parameters(**params)
        except (AssertionError, NameError, TypeError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"sweep.launcher: submitit refused the options: {first}") from None
        cpus = options.get("cpus_per_task")
        self.threads = int(cpus) if isinstance(cpus, int) and cpus > 0 else 0

    def launch(self, tasks: Sequence[RunTask], finished: Finished) -> None:
        pending = list(tasks)
        running: dict[Any, RunTask] = {}
        try:
            while pending or running:
                room = len(pending) if self.cluster == "slurm" else self.parallelism - len(running)
                if room > 0 and pending:
                    batch, pending = pending[:room], pending[room:]
                    running.update(zip(self._submit(batch), batch, strict=True))
                for job in [j for j in running if j.done()]:
                    task = running.pop(job)
                    for run, record in zip(task.runs, self._status(job, task), strict=True):
                        finished(run.run_id, record)
                if running:
                    time.sleep(self.poll_s)
        except KeyboardInterrupt:
            for job in running:
                job.cancel(check=False)
            raise

    def _submit(self, batch: list[RunTask]) -> list[Any]:
        """One job per run, submitted together (one job array on SLURM)."""
        threads = self.threads or (
            max(1, (os.cpu_count() or 1) // self.parallelism) if self.cluster == "local" else 0
        )
        args = (
            [[r.config for r in t.runs] for t in batch],
            [[str(r.run_dir.absolute()) for r in t.runs] for t in batch],
        )
        with _quiet_stderr(self.cluster == "local"):
            jobs: list[Any] = self.executor.map_array(TrainJob(), *args, [threads] * len(batch))
        return jobs

    @staticmethod
    def _status(job: Any, task: RunTask) -> list[dict[str, Any]]:
        """The job's runs' records, or failures naming the job and its log when it died."""
        try:
            records: list[dict[str, Any]] = job.result()
            return records
        except Exception as err:  # the job died: time limit, memory, node, cancelled
            lines = str(err).strip().splitlines()
            reason = lines[0] if lines else type(err).__name__
            return job_died(
                task, f"job {job.job_id} died: {reason[:200]} (log: {job.paths.stderr})"
            )


def make_launcher(spec: object, name: str | None, workers: int, out: Path) -> Launcher:
    """The launcher a sweep uses: ``name`` (the CLI's ``--launcher``) or ``spec["name"]``.

    Args:
        spec: the config's ``sweep.launcher``: a mapping (``name`` plus
            :data:`SLURM_OPTIONS` keys and ``folder``, or for ``pack`` the
            :data:`~cdbloss.lab.experiments.pack.PACK_OPTIONS` keys), or ``None``.
        name: the launcher's name from the command line; wins over ``spec``.
        workers: ``--workers``: the processes on this machine, the local launcher's
            and ``submitit-local``'s (SLURM takes ``array_parallelism`` instead, and
            ``pack`` ``max_active``).
        out: the sweep folder; submitit's folder defaults to ``out/.submitit/%j``.

    Raises:
        ValueError: an unknown name or key, or submitit missing for its launchers.
    """
    if spec is not None and not isinstance(spec, dict):
        raise ValueError(f"sweep.launcher must be a mapping, got {spec!r}")
    spec = dict(spec or {})
    chosen = spec.pop("name", "local")
    chosen = name or chosen
    if chosen not in LAUNCHERS:
        raise ValueError(f"unknown launcher {chosen!r}; known: {list(LAUNCHERS)}")
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if chosen != "pack" and set(spec) & {"budget", "first", "max_active"}:
        raise ValueError(
            f"--budget, --first and --max-active (sweep.launcher.budget, first, max_active) "
            f"belong to the pack launcher, not {chosen!r}: add --launcher pack"
        )
    if chosen == "local":
        return LocalLauncher(workers)
    if chosen == "pack":
        return PackLauncher(out, pack_options(spec))
    folder = spec.pop("folder", None) or str(out / ".submitit" / "%j")
    cluster = "slurm" if chosen == "slurm" else "local"
    return SubmititLauncher(cluster, folder, spec, parallelism=workers)
