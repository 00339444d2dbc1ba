"""Launchers: a sweep through submitit (its local executor) gives what the local pool gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cdbloss.lab.engine.config import apply_overrides, config_from_dict
from cdbloss.lab.experiments.launch import (
    LocalLauncher,
    RunTask,
    SubmititLauncher,
    make_launcher,
)
from cdbloss.lab.experiments.sweep import expand_grid, run_sweep
from tests.lab.engine.conftest import tiny_config

pytest.importorskip("submitit")

#: Two runs: one trains, one fails on purpose (hidden = 0 is refused when its run starts).
#: Each submitit job is two fresh processes (its controller and the task, which imports
#: torch), so the grid is as small as shows both outcomes.
GRID = {"variants": [{"seed": 1}, {"model.options.hidden": 0}]}


def _untimed(tree: Any) -> Any:
    """``tree`` without its wall times (the keys ``train_s``, ``val_s``...)."""
    if isinstance(tree, dict):
        return {k: _untimed(v) for k, v in tree.items() if not k.endswith("_s")}
    return [_untimed(v) for v in tree] if isinstance(tree, list) else tree


def _results(folder: Path) -> dict[str, str]:
    """Every run's result.json (or error) without its timings, as JSON text (NaN == NaN)."""
    out: dict[str, str] = {}
    for run in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (run / "result.json").exists():
            result = _untimed(json.loads((run / "result.json").read_text()))
            out[run.name] = json.dumps(result, sort_keys=True)
        else:
            out[run.name] = json.loads((run / "error.json").read_text())["error"]
    return out


def test_submitit_local_sweep_equals_the_local_pool_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config_from_dict(tiny_config(train__epochs=2, sweep=GRID))
    local = run_sweep(cfg, tmp_path / "local", progress=False)
    capsys.readouterr()
    jobs = run_sweep(cfg, tmp_path / "jobs", workers=2, launcher="submitit-local")
    out = capsys.readouterr().out
    assert {k: v["status"] for k, v in jobs.items()} == {k: v["status"] for k, v in local.items()}
    assert list(jobs.values())[-1]["status"] == "failed"
    assert _results(tmp_path / "jobs") == _results(tmp_path / "local")
    assert "hidden must be >= 1" in _results(tmp_path / "jobs")["hidden=0"]
    # the same summary as the local pool: one line per run, the failure named at the end
    lines = [line for line in out.splitlines() if line.startswith("[")]
    assert sorted(line[:5] for line in lines) == ["[1/2]", "[2/2]"]
    assert "1 run(s) failed: ['hidden=0']" in out
    summary = json.loads((tmp_path / "jobs" / "sweep.json").read_text())
    assert summary["runs"] == jobs and jobs["seed=1"]["status"] == "done"
    assert not (tmp_path / "jobs" / "sweep.lock").exists()  # released after the wait

    # resume: a finished run is skipped, not resubmitted (here the grid of it alone)
    done = tmp_path / "jobs" / "seed=1" / "result.json"
    mtime = done.stat().st_mtime_ns
    jobs_folder = tmp_path / "jobs" / ".submitit"
    submitted = sorted(jobs_folder.glob("*/*_submitted.pkl"))
    assert len(submitted) == 2
    cfg = config_from_dict(tiny_config(train__epochs=2, sweep={"variants": GRID["variants"][:1]}))
    again = run_sweep(cfg, tmp_path / "jobs", launcher="submitit-local", progress=False)
    assert again == {"seed=1": {"status": "done", "skipped": True}}
    assert done.stat().st_mtime_ns == mtime
    assert sorted(jobs_folder.glob("*/*_submitted.pkl")) == submitted


def test_a_missing_submitit_is_one_line_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cdbloss.lab.cli import main

    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit -> ImportError
    with pytest.raises(ValueError, match=r"pip install 'cdb-loss\[slurm\]'"):
        make_launcher({"name": "slurm"}, None, 1, tmp_path)
    config = tmp_path / "c.json"
    config.write_text(json.dumps(tiny_config(sweep={"seed": [0]})))
    assert main(["sweep", str(config), "--launcher", "slurm", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cdb-loss[slurm]" in err[0]
    assert not (tmp_path / "s").exists()  # refused before any work
    assert isinstance(make_launcher(None, None, 2, tmp_path), LocalLauncher)  # no need of it


@pytest.fixture
def fake_srun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ``srun`` on PATH: submitit's SLURM executor is then built (nothing is submitted)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")


def test_slurm_needs_srun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ValueError, match="launcher 'slurm': Could not detect \"srun\""):
        make_launcher({"name": "slurm"}, None, 1, tmp_path)


@pytest.mark.usefixtures("fake_srun")
def test_launcher_choice_and_options(tmp_path: Path) -> None:
    raw = apply_overrides(
        tiny_config(sweep={"seed": [0, 1], "launcher": {"name": "slurm"}}),
        [("sweep.launcher.partition", "gpu"), ("sweep.launcher.timeout_min", 30)],
    )
    cfg = config_from_dict(raw)
    assert [r.run_id for r in expand_grid(cfg)] == ["seed=0", "seed=1"]  # not a grid axis
    spec = cfg.sweep["launcher"]
    assert spec == {"name": "slurm", "partition": "gpu", "timeout_min": 30}
    assert isinstance(make_launcher(spec, "local", 2, tmp_path), LocalLauncher)  # CLI wins
    launcher = make_launcher({**spec, "array_parallelism": 2}, None, 1, tmp_path)
    assert isinstance(launcher, SubmititLauncher) and launcher.cluster == "slurm"
    params = launcher.executor._executor.parameters
    assert params["partition"] == "gpu" and params["time"] == 30
    assert params["array_parallelism"] == 2
    with pytest.raises(ValueError, match="unknown launcher 'pbs'"):
        make_launcher({"name": "pbs"}, None, 1, tmp_path)
    with pytest.raises(ValueError, match=r"unknown sweep.launcher key\(s\) \['partion'\]"):
        make_launcher({"name": "slurm", "partion": "gpu"}, None, 1, tmp_path)
    with pytest.raises(ValueError, match="submitit refused the options"):
        make_launcher({"name": "slurm", "timeout_min": "1h"}, None, 1, tmp_path)
    with pytest.raises(ValueError, match="must be a mapping"):
        make_launcher(["slurm"], None, 1, tmp_path)


class _Job:
    """A stand-in submitit job: done after ``polls`` looks; its result, or an error."""

    def __init__(self, run_dir: str, polls: int, error: str | None = None) -> None:
        self.run_dir, self.polls, self.error = run_dir, polls, error
        self.cancelled = False
        self.job_id = f"job-{Path(run_dir).name}"
        self.paths = type("Paths", (), {"stderr": Path(run_dir) / "log.err"})()

    def done(self) -> bool:
        self.polls -= 1
        return self.polls < 0

    def result(self) -> list[dict[str, Any]]:  # one record per run of the job
        if self.error:
            raise RuntimeError(f"{self.error}\nmore lines of the job's log")
        return [{"status": "done", "seconds": 0.0, "test": 1.0}]

    def cancel(self, check: bool = True) -> None:
        self.cancelled = True


class _Executor:
    """A stand-in executor: its n-th job is done after ``polls[n]`` looks (the last repeats)."""

    def __init__(self, polls: tuple[int, ...] = (0,), error: str | None = None) -> None:
        self.batches: list[int] = []
        self.jobs: list[_Job] = []
        self.polls, self.error = polls, error

    def map_array(
        self, fn: Any, configs: list[Any], dirs: list[list[str]], threads: list[int]
    ) -> list[Any]:
        self.batches.append(len(dirs))
        for job_dirs in dirs:  # each job: its runs' folders (one run here)
            polls = self.polls[min(len(self.jobs), len(self.polls) - 1)]
            self.jobs.append(_Job(job_dirs[0], polls, self.error))
        return self.jobs[-len(dirs) :]


def _fake(tmp_path: Path, cluster: str, executor: _Executor, parallelism: int) -> SubmititLauncher:
    launcher = SubmititLauncher(cluster, tmp_path / "sub", parallelism=parallelism, poll_s=0.0)
    launcher.executor = executor
    return launcher


def _tasks(tmp_path: Path, n: int) -> list[RunTask]:
    tasks = [RunTask(f"r{i}", {}, tmp_path / f"r{i}") for i in range(n)]
    for task in tasks:
        task.run_dir.mkdir()
    return tasks


@pytest.mark.usefixtures("fake_srun")
def test_submitit_launcher_throttles_local_jobs_and_submits_one_slurm_array(
    tmp_path: Path,
) -> None:
    seen: list[str] = []
    local = _Executor(polls=(1,))
    _fake(tmp_path, "local", local, 2).launch(_tasks(tmp_path, 5), lambda r, s: seen.append(r))
    assert sorted(seen) == ["r0", "r1", "r2", "r3", "r4"]
    assert max(local.batches) <= 2 and sum(local.batches) == 5
    slurm = _Executor(polls=(1,))
    _fake(tmp_path / "r0", "slurm", slurm, 1).launch(_tasks(tmp_path / "r0", 5), lambda r, s: None)
    assert slurm.batches == [5]  # one job array; SLURM's %array_parallelism throttles it


@pytest.mark.usefixtures("fake_srun")
def test_a_dead_job_is_a_failed_run_with_its_error_json(tmp_path: Path) -> None:
    statuses: dict[str, dict[str, Any]] = {}
    executor = _Executor(error="Job (task=0) failed during processing with trace")
    launcher = _fake(tmp_path, "slurm", executor, 1)
    launcher.launch(_tasks(tmp_path, 1), lambda r, s: statuses.setdefault(r, s))
    error = statuses["r0"]["error"]
    assert statuses["r0"]["status"] == "failed" and "more lines" not in error
    assert error.startswith("job job-r0 died: Job (task=0) failed") and "log.err" in error
    assert json.loads((tmp_path / "r0" / "error.json").read_text())["error"] == error


def test_ctrl_c_cancels_the_jobs_still_running(tmp_path: Path) -> None:
    executor = _Executor(polls=(0, 10**6))  # the first job ends, the second never

    def interrupted(run_id: str, status: dict[str, Any]) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _fake(tmp_path, "local", executor, 2).launch(_tasks(tmp_path, 3), interrupted)
    assert [j.cancelled for j in executor.jobs] == [False, True]  # the third never started


def test_the_lab_imports_submitit_only_for_its_launchers() -> None:
    probe = (
        "import sys, cdbloss.lab.experiments.sweep, cdbloss.lab.cli; "
        "cdbloss.lab.cli.build_parser(); print('submitit' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "False"


def test_a_job_stopped_at_its_time_limit_is_queued_again_as_the_same_call() -> None:
    import submitit

    from cdbloss.lab.experiments.launch import TrainJob

    job = TrainJob()
    # submitit's signal handler requeues a job only when its function has `checkpoint`
    assert hasattr(job, "checkpoint")
    call = ([{"seed": 0}], ["runs/x"], 2)  # a job: its runs' configs and folders, threads
    again = submitit.helpers.DelayedSubmission(job, *call)._checkpoint_function()
    assert isinstance(again.function, TrainJob) and again.args == call


@pytest.mark.usefixtures("fake_srun")
def test_the_example_cluster_config_loads_and_sets_up_slurm(tmp_path: Path) -> None:
    from cdbloss.lab.engine.config import load_config

    example = Path(__file__).resolve().parents[3] / "examples" / "sweep_slurm.yaml"
    cfg = load_config(example, ["sweep.launcher.partition=short"])
    assert len(expand_grid(cfg)) == 4
    launcher = make_launcher(cfg.sweep["launcher"], None, 1, tmp_path)
    assert isinstance(launcher, SubmititLauncher) and launcher.threads == 2
    params = launcher.executor._executor.parameters
    assert params["partition"] == "short" and params["array_parallelism"] == 8


def test_a_fused_group_trains_as_one_job_through_submitit_local(tmp_path: Path) -> None:
    # sweep --fuse with a launcher: a fused group is one job, each run reported by itself
    variants = [{"loss.name": "ce"}, {"loss.name": "focal", "optim.lr": 0.02}]
    raw = tiny_config(train__epochs=2, sweep={"variants": variants, "fuse": True})
    cfg = config_from_dict(raw)
    here = run_sweep(cfg, tmp_path / "here", progress=False)
    jobs = run_sweep(cfg, tmp_path / "jobs", launcher="submitit-local", progress=False)
    assert [v["status"] for v in jobs.values()] == ["done", "done"]
    assert {k: v["test"] for k, v in jobs.items()} == {k: v["test"] for k, v in here.items()}
    assert _results(tmp_path / "jobs") == _results(tmp_path / "here")
    assert len(sorted((tmp_path / "jobs" / ".submitit").glob("*/*_submitted.pkl"))) == 1
    for run in jobs:
        result = json.loads((tmp_path / "jobs" / run / "result.json").read_text())
        assert len(result["fused_with"]) == 1
