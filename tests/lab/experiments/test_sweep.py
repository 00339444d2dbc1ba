"""Sweeps: the grid, parallel workers, a failing run, re-running skips finished runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cdbloss.lab.engine.config import config_from_dict
from cdbloss.lab.experiments.sweep import expand_grid, run_sweep
from tests.lab.engine.conftest import tiny_config


def test_grid_expansion() -> None:
    cfg = config_from_dict(
        tiny_config(
            sweep={
                "loss.name": ["ce", "cdb-ce"],
                "seed": [0, 1, 2],
                "loss.options.label_smoothing": [0.1],
            }
        )
    )
    runs = expand_grid(cfg)
    assert len(runs) == 6
    assert runs[0].run_id == "name=ce__seed=0__label_smoothing=0.1"
    assert {r.config.seed for r in runs} == {0, 1, 2}
    assert runs[-1].config.loss.name == "cdb-ce"
    assert runs[-1].config.loss.options == {"label_smoothing": 0.1}
    # an option one of the grid's losses does not take fails at expansion, before any run
    bad = tiny_config(sweep={"loss.name": ["ce", "cdb-ce"], "loss.options.tau": [1.0]})
    with pytest.raises(ValueError, match=r"loss 'ce' got unknown options \['tau'\]"):
        expand_grid(config_from_dict(bad))
    with pytest.raises(ValueError, match="non-empty list"):
        expand_grid(config_from_dict(tiny_config(sweep={"seed": []})))


def test_sweep_with_a_failing_run_finishes_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # hidden = 0 is rejected by the model when the run starts, not when the config loads
    cfg = config_from_dict(
        tiny_config(train__epochs=2, sweep={"model.options.hidden": [16, 0], "seed": [0, 1]})
    )
    statuses = run_sweep(cfg, tmp_path, workers=2)
    assert [s["status"] for s in statuses.values()] == ["done", "done", "failed", "failed"]
    failed = tmp_path / "hidden=0__seed=0"
    error = json.loads((failed / "error.json").read_text())
    assert "hidden must be >= 1" in error["error"]
    summary = json.loads((tmp_path / "sweep.json").read_text())
    assert summary["runs"]["hidden=16__seed=1"]["status"] == "done"
    out = capsys.readouterr().out
    assert "2 run(s) failed" in out
    # one error, printed once: the second run it stops refers to the first
    assert out.count("hidden must be >= 1") == 1
    assert re.search(r"hidden=0__seed=(0|1): FAILED the same error as hidden=0__seed=(1|0)", out)
    lines = [line for line in out.splitlines() if line.startswith("[")]
    assert [line[:5] for line in lines] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert all("(elapsed 0 min" in line for line in lines)
    assert "left)" in lines[0] and "left" not in lines[-1]  # nothing to project after the last

    done = tmp_path / "hidden=16__seed=0" / "result.json"
    mtime = done.stat().st_mtime_ns
    again = run_sweep(cfg, tmp_path, workers=1, progress=False)
    assert again["hidden=16__seed=0"] == {"status": "done", "skipped": True}
    assert done.stat().st_mtime_ns == mtime  # not redone
    assert again["hidden=0__seed=1"]["status"] == "failed"  # retried, fails again


def test_pace_projects_the_mean_wall_time_per_run_onto_the_rest() -> None:
    from cdbloss.lab.experiments.sweep import pace_text

    assert pace_text(0.0, 0, 10) == "elapsed 0 min"  # no pace yet
    assert pace_text(3 * 3600 + 29, 30, 10) == "elapsed 3 h 00 min, about 1 h 00 min left"
    assert pace_text(89, 1, 1) == "elapsed 1 min, about 1 min left"  # rounded to the minute


def test_interrupted_run_is_resumed(tmp_path: Path) -> None:
    from cdbloss.lab.engine.trainer import Trainer

    cfg = config_from_dict(tiny_config(train__epochs=3, sweep={"seed": [0]}))
    (run,) = expand_grid(cfg)
    with pytest.raises(KeyboardInterrupt):
        Trainer(run.config, tmp_path / run.run_id, fail_after_batches=12).fit()  # mid epoch 2
    statuses = run_sweep(cfg, tmp_path, workers=1, progress=False)
    assert statuses[run.run_id]["status"] == "done"
    result = json.loads((tmp_path / run.run_id / "result.json").read_text())
    straight = Trainer(run.config, tmp_path / "straight").fit()
    assert result["test"] == json.loads(json.dumps(straight["test"]))


def test_a_finished_run_of_another_experiment_is_not_skipped(tmp_path: Path) -> None:
    cfg = config_from_dict(tiny_config(train__epochs=1, sweep={"seed": [0]}))
    run_sweep(cfg, tmp_path, workers=1, progress=False)
    saved = tmp_path / "seed=0" / "config.json"
    old = json.loads(saved.read_text())
    old["loss"]["options"] = {"momentum": 0.5}  # as if the run had trained with other settings
    saved.write_text(json.dumps(old))
    again = run_sweep(cfg, tmp_path, workers=1, progress=False)
    assert again["seed=0"]["status"] == "failed"
    assert "holds a different experiment" in again["seed=0"]["error"]
    assert "loss.options.momentum" in again["seed=0"]["error"]
