from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdbloss.lab.experiments.analysis.pack_pace import epoch_paces, main


def _write_run(root: Path, name: str, train_s: list[float], steps_per_epoch: int = 10) -> None:
    (root / name).mkdir(parents=True)
    lines = [
        json.dumps({"epoch": i + 1, "step": (i + 1) * steps_per_epoch, "train_s": t, "val_s": 0.0})
        for i, t in enumerate(train_s)
    ]
    (root / name / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def _record() -> dict[str, object]:
    # a: alone 0-20 s (1 s epochs), shares with b 20-60 s (2 s epochs), alone again 60-80 s
    return {
        "log": [
            {"t": 0.0, "event": "launch", "run": "a", "steps": 600},
            {"t": 20.0, "event": "launch", "run": "b", "steps": 200},
            {"t": 60.0, "event": "finished", "run": "b", "status": "done"},
            {"t": 80.0, "event": "finished", "run": "a", "status": "done"},
        ]
    }


def test_epochs_are_counted_by_how_many_runs_shared_them(tmp_path: Path) -> None:
    _write_run(tmp_path, "a", [1.0] * 20 + [2.0] * 20 + [1.0] * 20)
    _write_run(tmp_path, "b", [2.0] * 20)
    paces = epoch_paces(_record(), tmp_path, margin=2.5)
    assert set(paces["a"]) == {1, 2}
    assert paces["a"][1] == [1.0] * len(paces["a"][1])
    assert paces["a"][2] == [2.0] * len(paces["a"][2])
    # the first epoch (warm-up) and those within 2.5 s of an event are left out: of a's
    # epochs alone, 4-17 and 44-57; shared, 23-38 of a's and 3-18 of b's
    assert len(paces["a"][1]) == 28
    assert len(paces["a"][2]) == 16
    assert paces["b"] == {2: [2.0] * 16}


def test_a_stopped_run_counts_only_the_epochs_it_had_at_its_stop(tmp_path: Path) -> None:
    # the folder holds 60 epochs (a later call resumed it), the stop came after 20
    _write_run(tmp_path, "a", [1.0] * 20 + [9.0] * 40)
    record = {
        "log": [
            {"t": 0.0, "event": "launch", "run": "a", "steps": 600},
            {"t": 20.0, "event": "stop", "run": "a", "epochs": 20},
        ]
    }
    assert epoch_paces(record, tmp_path, margin=0.5)["a"] == {1: [1.0] * 18}


def test_the_command_prints_the_slowdown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_run(tmp_path, "a", [1.0] * 20 + [2.0] * 20 + [1.0] * 20)
    _write_run(tmp_path, "b", [2.0] * 20)
    log = tmp_path / "pack.json"
    log.write_text(json.dumps(_record()))
    assert main([str(log), "--runs", str(tmp_path), "--margin", "2.5"]) == 0
    assert (
        "slowdown against a run alone (1.000 s/epoch): 1: 1.00, 2: 2.00" in capsys.readouterr().out
    )


def test_a_file_that_is_no_pack_log_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("[1, 2]")
    assert main([str(bad), "--runs", str(tmp_path)]) == 2
    assert "holds no pack log" in capsys.readouterr().err
