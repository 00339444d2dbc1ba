from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from tools.pack_gpu_runs import Pace, _Active, decide, main, read_epochs, step_seconds


def _pace(run: str, launched: float, done: int, total: int, step_s: float | None) -> Pace:
    return Pace(run, launched, done, total, step_s)


def test_an_idle_gpu_takes_the_first_run_unless_it_cannot_finish() -> None:
    assert decide(0.0, 100.0, [], next_steps=50, max_active=4) == ("launch", None)
    assert decide(0.0, 100.0, [], next_steps=None, max_active=4) == ("wait", None)
    # 50 steps at 1 s each after a 25 s start do not fit in 100 s; at 0.5 s they do
    assert decide(0.0, 100.0, [], 50, 4, alone_step_s=2.0) == ("wait", None)
    assert decide(0.0, 100.0, [], 50, 4, alone_step_s=0.5) == ("launch", None)


def test_no_decision_before_every_run_has_a_pace() -> None:
    active = [_pace("a", 0, 10, 100, 0.1), _pace("b", 5, 0, 100, None)]
    assert decide(10.0, 1000.0, active, 100, 4) == ("wait", None)


def test_a_second_run_is_added_only_if_both_fit_at_double_the_step_time() -> None:
    one = [_pace("a", 0, 100, 1000, 0.1)]  # 90 s left alone, 180 s with a second run
    # new run: 25 s start + 1000 steps * 0.2 s = 225 s
    assert decide(0.0, 230.0, one, 1000, 4) == ("launch", None)
    assert decide(0.0, 220.0, one, 1000, 4) == ("wait", None)
    # the running one would not fit at double its step time
    assert decide(0.0, 170.0, one, 10, 4) == ("wait", None)
    assert decide(0.0, 1e9, one, 1000, max_active=1) == ("wait", None)


def test_the_newest_run_is_stopped_when_the_pace_says_not_all_finish() -> None:
    active = [_pace("old", 0, 500, 1000, 0.2), _pace("new", 50, 100, 1000, 0.2)]
    # new needs 900 * 0.2 = 180 s more
    assert decide(100.0, 250.0, active, None, 4) == ("stop", "new")
    assert decide(100.0, 300.0, active, None, 4) == ("wait", None)
    # a run alone is never stopped: stopping it frees nothing
    assert decide(100.0, 110.0, active[:1], None, 4) == ("wait", None)


def test_seconds_left_is_infinite_until_measured() -> None:
    assert math.isinf(_pace("a", 0, 0, 10, None).seconds_left())
    assert _pace("a", 0, 4, 10, 0.5).seconds_left() == 3.0


def _epoch(epoch: int, step: int, train_s: float, val_s: float = 0.0) -> dict[str, float]:
    return {"epoch": epoch, "step": step, "train_s": train_s, "val_s": val_s}


def test_step_seconds_counts_only_epochs_after_the_last_change() -> None:
    epochs = [_epoch(1, 10, 100.0), _epoch(2, 20, 2.0, 0.5), _epoch(3, 30, 1.5, 0.5)]
    assert step_seconds(epochs, after_epoch=0) == (100.0 + 2.5 + 2.0) / 30
    assert step_seconds(epochs, after_epoch=1) == (2.5 + 2.0) / 20
    assert step_seconds(epochs, after_epoch=2) is None  # one epoch is not a pace yet


def test_a_new_runs_warm_up_epoch_never_enters_its_pace() -> None:
    # launched fresh: epoch 1 (a minute of torch.compile, say) is not counted
    a = _Active("r", None, 0.0, 100, baseline_epoch=1, first_paced=1)
    a.rebase(0)  # another run launched before r's first epoch ended
    assert a.baseline_epoch == 1
    epochs = [_epoch(1, 10, 60.0), _epoch(2, 20, 1.0), _epoch(3, 30, 1.0)]
    assert step_seconds(epochs, a.baseline_epoch) == 2.0 / 20
    a.rebase(3)  # later changes count from the epochs seen then
    assert a.baseline_epoch == 3
    # resumed from a checkpoint after 5 epochs: its sixth is the warm-up one
    b = _Active("s", None, 0.0, 100, baseline_epoch=6, first_paced=6)
    b.rebase(5)
    assert b.baseline_epoch == 6


def test_read_epochs_tolerates_a_missing_or_partial_file(tmp_path: Path) -> None:
    assert read_epochs(tmp_path) == []
    (tmp_path / "metrics.jsonl").write_text(json.dumps(_epoch(1, 5, 1.0)) + "\n{half")
    assert read_epochs(tmp_path) == []
    (tmp_path / "metrics.jsonl").write_text(json.dumps(_epoch(1, 5, 1.0)) + "\n")
    assert read_epochs(tmp_path) == [_epoch(1, 5, 1.0)]


def test_packs_a_tiny_grid_into_sweep_folders(tmp_path: Path) -> None:
    cfg = tmp_path / "grid.yaml"
    cfg.write_text(
        "name: tiny\n"
        "data: {protocol: synthetic-lt, options: {num_classes: 3, max_per_class: 60}}\n"
        "model: {name: mlp, options: {in_features: 8, hidden: 16}}\n"
        "train: {epochs: 3, batch_size: 32, progress: false}\n"
        "sweep:\n"
        "  loss.name: [ce, cdb-ce]\n"
    )
    out = tmp_path / "out"
    rc = main([str(cfg), "--out", str(out), "--budget", "120", "--first", "cdb-ce"])
    assert rc == 0
    record = json.loads((out / "pack.json").read_text())
    launched = [e["run"] for e in record["log"] if e["event"] == "launch"]
    assert launched[0] == "name=cdb-ce"  # --first moved it ahead of the grid's order
    for run in ("name=ce", "name=cdb-ce"):
        result = json.loads((out / run / "result.json").read_text())
        assert result["status"] == "done" and result["epochs"] == 3


def test_a_given_join_slowdown_replaces_the_full_gpu_guess() -> None:
    one = [_pace("a", 0, 100, 1000, 0.1)]
    # full-GPU guess: new run 25 + 1000 * 0.2 = 225 s > 200 s; at 1.2x: 25 + 120 = 145 s
    assert decide(0.0, 200.0, one, 1000, 4) == ("wait", None)
    assert decide(0.0, 200.0, one, 1000, 4, join_slowdown=[1.2]) == ("launch", None)


def test_the_join_slowdown_is_read_per_number_of_active_runs() -> None:
    one = [_pace("a", 0, 0, 1000, 0.1)]
    three = [_pace(r, 0, 0, 1000, 0.1) for r in "abc"]
    # one run active: factor 1.05 (fits 25 + 105 s); three or more: the last value, 2.0
    assert decide(0.0, 131.0, one, 1000, 8, join_slowdown=[1.05, 1.5, 2.0]) == ("launch", None)
    assert decide(0.0, 199.0, three, 10, 8, join_slowdown=[1.05, 1.5, 2.0]) == ("wait", None)
    assert decide(0.0, 226.0, three, 1000, 8, join_slowdown=[1.05, 1.5, 2.0]) == ("launch", None)


def test_a_slowdown_below_one_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["c.yaml", "--out", "o", "--budget", "10", "--join-slowdown", "0.5"])
    assert "--join-slowdown values must be >= 1, got [0.5]" in capsys.readouterr().err


def test_resumable_runs_are_packed_to_max_active_then_cut_at_the_deadline(tmp_path: Path) -> None:
    cfg = tmp_path / "grid.yaml"
    cfg.write_text(
        "name: tiny\n"
        "data: {protocol: synthetic-lt, options: {num_classes: 3, max_per_class: 60}}\n"
        "model: {name: mlp, options: {in_features: 8, hidden: 16}}\n"
        "train: {epochs: 100000, batch_size: 32, progress: false}\n"
        "sweep:\n"
        "  loss.name: [ce, cdb-ce, focal]\n"
    )
    out = tmp_path / "out"
    main([str(cfg), "--out", str(out), "--budget", "20", "--resumable", "--max-active", "2"])
    log = json.loads((out / "pack.json").read_text())["log"]
    assert [e["event"] for e in log].count("launch") == 2  # max-active, though none can finish
    assert [e["event"] for e in log].count("deadline") == 2


def test_overrides_may_follow_options(monkeypatch: pytest.MonkeyPatch) -> None:
    import tools.pack_gpu_runs as pack_module

    seen: dict[str, object] = {}

    def fake_pack(config: str, overrides: list[str], *args: object, **kwargs: object) -> dict:
        seen.update(config=config, overrides=overrides, **kwargs)
        return {"log": [], "seconds": 0.0}

    monkeypatch.setattr(pack_module, "pack", fake_pack)
    argv = ["c.yaml", "a.b=1", "--resumable", "sweep.x=[10]", "--out", "o", "--budget", "5"]
    assert main(argv) == 0
    assert seen == {
        "config": "c.yaml",
        "overrides": ["a.b=1", "sweep.x=[10]"],
        "join_slowdown": None,
        "resumable": True,
    }
