"""The pack launcher: jobs admitted by their measured pace inside a time budget."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from cdbloss.lab.cli import main
from cdbloss.lab.experiments.jobs import RunTask
from cdbloss.lab.experiments.launch import PackLauncher, make_launcher
from cdbloss.lab.experiments.pack import (
    Pace,
    PackOptions,
    _Active,
    _Packer,
    decide,
    job_epochs,
    read_epochs,
    step_seconds,
)
from tests.lab.engine.conftest import tiny_config


def _pace(run: str, launched: float, done: int, total: int, step_s: float | None) -> Pace:
    return Pace(run, launched, done, total, step_s)


# ---------------------------------------------------------------- the decisions


def test_an_idle_gpu_takes_the_first_job_unless_it_cannot_finish() -> None:
    assert decide(0.0, 100.0, [], next_steps=50, max_active=4) == ("launch", None)
    assert decide(0.0, 100.0, [], next_steps=None, max_active=4) == ("wait", None)
    # with less than a job's start-up left, no pace can say it fits: it waits for a later call
    assert decide(80.0, 100.0, [], next_steps=50, max_active=4, startup_s=25.0) == ("wait", None)
    assert decide(70.0, 100.0, [], next_steps=50, max_active=4, startup_s=25.0) == ("launch", None)
    # 50 steps at 1 s each after a 25 s start do not fit in 100 s; at 0.5 s they do
    assert decide(0.0, 100.0, [], 50, 4, alone_step_s=2.0) == ("wait", None)
    assert decide(0.0, 100.0, [], 50, 4, alone_step_s=0.5) == ("launch", None)


def test_no_decision_before_every_job_has_a_pace() -> None:
    active = [_pace("a", 0, 10, 100, 0.1), _pace("b", 5, 0, 100, None)]
    assert decide(10.0, 1000.0, active, 100, 4) == ("wait", None)


def test_a_second_job_is_admitted_only_if_both_fit_at_double_the_step_time() -> None:
    one = [_pace("a", 0, 100, 1000, 0.1)]  # 90 s left alone, 180 s with a second job
    # new job: 25 s start + 1000 steps * 0.2 s = 225 s
    assert decide(0.0, 230.0, one, 1000, 4) == ("launch", None)
    assert decide(0.0, 220.0, one, 1000, 4) == ("wait", None)
    # the running one would not fit at double its step time
    assert decide(0.0, 170.0, one, 10, 4) == ("wait", None)
    assert decide(0.0, 1e9, one, 1000, max_active=1) == ("wait", None)


def test_the_newest_job_is_stopped_when_the_pace_says_not_all_finish() -> None:
    active = [_pace("old", 0, 500, 1000, 0.2), _pace("new", 50, 100, 1000, 0.2)]
    # new needs 900 * 0.2 = 180 s more
    assert decide(100.0, 250.0, active, None, 4) == ("stop", "new")
    assert decide(100.0, 300.0, active, None, 4) == ("wait", None)
    # a job alone is never stopped: stopping it frees nothing
    assert decide(100.0, 110.0, active[:1], None, 4) == ("wait", None)


def test_seconds_left_is_infinite_until_measured() -> None:
    assert math.isinf(_pace("a", 0, 0, 10, None).seconds_left())
    assert _pace("a", 0, 4, 10, 0.5).seconds_left() == 3.0


def test_a_given_join_slowdown_replaces_the_full_gpu_guess() -> None:
    one = [_pace("a", 0, 100, 1000, 0.1)]
    # full-GPU guess: new job 25 + 1000 * 0.2 = 225 s > 200 s; at 1.2x: 25 + 120 = 145 s
    assert decide(0.0, 200.0, one, 1000, 4) == ("wait", None)
    assert decide(0.0, 200.0, one, 1000, 4, join_slowdown=[1.2]) == ("launch", None)


def test_the_join_slowdown_is_read_per_number_of_active_jobs() -> None:
    one = [_pace("a", 0, 0, 1000, 0.1)]
    three = [_pace(r, 0, 0, 1000, 0.1) for r in "abc"]
    # one job active: factor 1.05 (fits 25 + 105 s); three or more: the last value, 2.0
    assert decide(0.0, 131.0, one, 1000, 8, join_slowdown=[1.05, 1.5, 2.0]) == ("launch", None)
    assert decide(0.0, 199.0, three, 10, 8, join_slowdown=[1.05, 1.5, 2.0]) == ("wait", None)
    assert decide(0.0, 226.0, three, 1000, 8, join_slowdown=[1.05, 1.5, 2.0]) == ("launch", None)


# ---------------------------------------------------------------- the pace


def _epoch(epoch: int, step: int, train_s: float, val_s: float = 0.0) -> dict[str, float]:
    return {"epoch": epoch, "step": step, "train_s": train_s, "val_s": val_s}


def test_step_seconds_counts_only_epochs_after_the_last_change() -> None:
    epochs = [_epoch(1, 10, 100.0), _epoch(2, 20, 2.0, 0.5), _epoch(3, 30, 1.5, 0.5)]
    assert step_seconds(epochs, after_epoch=0) == (100.0 + 2.5 + 2.0) / 30
    assert step_seconds(epochs, after_epoch=1) == (2.5 + 2.0) / 20
    assert step_seconds(epochs, after_epoch=2) is None  # one epoch is not a pace yet


def _task(tmp_path: Path, *names: str) -> RunTask:
    first, *rest = (RunTask(n, {}, tmp_path / n) for n in names)
    return RunTask(first.run_id, first.config, first.run_dir, tuple(rest))


def test_a_new_jobs_warm_up_epoch_never_enters_its_pace(tmp_path: Path) -> None:
    # launched fresh: epoch 1 (a minute of torch.compile, say) is not counted
    a = _Active(_task(tmp_path, "r"), None, None, 0.0, 100, baseline_epoch=1, first_paced=1)
    a.rebase(0)  # another job launched before r's first epoch ended
    assert a.baseline_epoch == 1
    epochs = [_epoch(1, 10, 60.0), _epoch(2, 20, 1.0), _epoch(3, 30, 1.0)]
    assert step_seconds(epochs, a.baseline_epoch) == 2.0 / 20
    a.rebase(3)  # later changes count from the epochs seen then
    assert a.baseline_epoch == 3
    # resumed from a checkpoint after 5 epochs: its sixth is the warm-up one
    b = _Active(_task(tmp_path, "s"), None, None, 0.0, 100, baseline_epoch=6, first_paced=6)
    b.rebase(5)
    assert b.baseline_epoch == 6


def test_read_epochs_tolerates_a_missing_or_partial_file(tmp_path: Path) -> None:
    assert read_epochs(tmp_path) == []
    (tmp_path / "metrics.jsonl").write_text(json.dumps(_epoch(1, 5, 1.0)) + "\n{half")
    assert read_epochs(tmp_path) == []
    (tmp_path / "metrics.jsonl").write_text(json.dumps(_epoch(1, 5, 1.0)) + "\n")
    assert read_epochs(tmp_path) == [_epoch(1, 5, 1.0)]


def test_a_fused_jobs_pace_is_read_from_the_member_with_most_epochs(tmp_path: Path) -> None:
    task = _task(tmp_path, "a", "b", "c")
    for name, n in (("a", 1), ("b", 3), ("c", 2)):  # a left the group early (NaN, say)
        (tmp_path / name).mkdir()
        lines = [json.dumps(_epoch(e, 10 * e, 1.0)) + "\n" for e in range(1, n + 1)]
        (tmp_path / name / "metrics.jsonl").write_text("".join(lines))
    assert [e["epoch"] for e in job_epochs(task)] == [1, 2, 3]
    assert job_epochs(_task(tmp_path, "x", "y")) == []  # none logged yet


class _Proc:
    """A job's process that ends when terminated."""

    def __init__(self) -> None:
        self.alive = True
        self.exitcode: int | None = None

    def is_alive(self) -> bool:
        return self.alive

    def terminate(self) -> None:
        self.alive, self.exitcode = False, -15

    def join(self, timeout: float | None = None) -> None:
        pass

    kill = terminate


class _Conn:
    def poll(self) -> bool:
        return False

    def close(self) -> None:
        pass


def test_a_job_the_pace_stops_goes_back_to_the_queue_head(tmp_path: Path) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    tasks = [_task(tmp_path, "old"), _task(tmp_path, "new", "new2"), _task(tmp_path, "next")]
    packer = _Packer(
        tasks[2:], lambda r, s: seen.append((r, s)), tmp_path, PackOptions(10.0), lambda: 0.0
    )
    packer.active = [_Active(t, _Proc(), _Conn(), i, 100) for i, t in enumerate(tasks[:2])]
    packer.stop(packer.active[1])
    assert [t.run_id for t in packer.queue] == ["new", "next"] and seen == []
    assert packer.log[-1] == {
        "t": 0.0,
        "event": "stop",
        "run": "new",
        "runs": ["new", "new2"],
        "epochs": 0,
    }
    packer.stop_all()  # the deadline: the rest is reported stopped, checkpoints kept
    assert [r for r, s in seen] == ["old"] and seen[0][1]["status"] == "stopped"
    assert "deadline after 0 epoch(s)" in seen[0][1]["error"]


# ---------------------------------------------------------------- sweeps


def _config(tmp_path: Path, **overrides: Any) -> str:
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(tiny_config(**overrides)))
    return str(path)


def test_packs_a_tiny_grid_into_sweep_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, train__epochs=3, sweep={"loss.name": ["ce", "cdb-ce"]})
    out = tmp_path / "out"
    argv = ["sweep", config, "sweep.launcher.poll_s=0.2", "--out", str(out)]
    assert main([*argv, "--launcher", "pack", "--budget", "120", "--first", "cdb-ce"]) == 0
    record = json.loads((out / "pack.json").read_text())
    assert record["budget_s"] == 120 and record["first"] == ["cdb-ce"]
    launched = [e["run"] for e in record["log"] if e["event"] == "launch"]
    assert launched == ["name=cdb-ce", "name=ce"]  # --first moved it ahead of the grid's order
    assert [e["event"] for e in record["log"]].count("finished") == 2
    for run in ("name=ce", "name=cdb-ce"):
        result = json.loads((out / run / "result.json").read_text())
        assert result["status"] == "done" and result["epochs"] == 3
    statuses = json.loads((out / "sweep.json").read_text())["runs"]
    assert [s["status"] for s in statuses.values()] == ["done", "done"]
    assert "[2/2]" in capsys.readouterr().out


def test_the_deadline_stops_a_fused_job_keeping_checkpoints_and_the_next_call_resumes(
    tmp_path: Path,
) -> None:
    # a fused group (ce, focal) and a run of another model: two jobs, one at a time
    variants = [{"loss.name": "ce"}, {"loss.name": "focal"}, {"model.options.hidden": 8}]
    config = _config(tmp_path, train__epochs=100000, sweep={"variants": variants, "fuse": True})
    out = tmp_path / "out"
    pack = ["--launcher", "pack", "--budget", "8", "--resumable", "--max-active", "1"]
    argv = ["sweep", config, "sweep.launcher.poll_s=0.2", "--out", str(out), *pack]
    assert main(argv) == 1  # runs are left for a later call
    log = json.loads((out / "pack.json").read_text())["log"]
    assert [e["event"] for e in log] == ["launch", "deadline"]
    assert log[0]["runs"] == ["name=ce", "name=focal"]  # one unit of admission
    statuses = json.loads((out / "sweep.json").read_text())["runs"]
    assert {k: v["status"] for k, v in statuses.items()} == dict.fromkeys(statuses, "stopped")
    assert "not started" in statuses["hidden=8"]["error"]
    done = {}
    for run in ("name=ce", "name=focal"):
        assert (out / run / "checkpoint.pt").exists() and not (out / run / "result.json").exists()
        done[run] = len(read_epochs(out / run))
        assert done[run] >= 1 and "deadline" in statuses[run]["error"]
        assert not (out / run / "run.lock").exists()  # released as the job stopped

    assert main(argv) == 1  # the next call resumes the group from its checkpoints
    log = json.loads((out / "pack.json").read_text())["log"]
    steps_per_epoch = read_epochs(out / "name=ce")[0]["step"]
    assert log[0]["steps"] == (100000 - done["name=ce"]) * steps_per_epoch
    for run in ("name=ce", "name=focal"):
        epochs = [e["epoch"] for e in read_epochs(out / run)]
        assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) > done[run]


def test_pack_settings_are_checked_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    launcher = make_launcher({"name": "pack", "budget": 60, "first": "x"}, None, 1, tmp_path)
    assert isinstance(launcher, PackLauncher) and launcher.options.first == ("x",)
    bad = [
        ({"name": "pack"}, "the pack launcher needs a time budget: --budget SECONDS"),
        (
            {"name": "pack", "budget": -5},
            r"budget \(--budget\) must be a number of seconds > 0, got -5",
        ),
        ({"name": "pack", "budget": "8m"}, "must be a number of seconds > 0, got '8m'"),
        ({"name": "pack", "budget": 9, "max_active": 0}, "max_active must be an integer >= 1"),
        (
            {"name": "pack", "budget": 9, "join_slowdown": [0.5]},
            r"values must be >= 1, got \[0.5\]",
        ),
        ({"name": "pack", "budget": 9, "resumable": "yes"}, "resumable must be true or false"),
        (
            {"name": "pack", "budget": 9, "partition": "gpu"},
            r"key\(s\) \['partition'\] for the pack",
        ),
        ({"budget": 9}, "belong to the pack launcher, not 'local': add --launcher pack"),
    ]
    for spec, message in bad:
        with pytest.raises(ValueError, match=message):
            make_launcher(spec, None, 1, tmp_path)
    config = _config(tmp_path, sweep={"seed": [0]})
    out = tmp_path / "s"
    assert main(["sweep", config, "--budget", "10", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "add --launcher pack" in err[0]
    assert main(["sweep", config, "--launcher", "pack", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs a time budget" in err[0]
    assert not (out / "pack.json").exists()  # refused before any work
