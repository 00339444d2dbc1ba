from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdbloss.lab.experiments.analysis.val_swings import count_swings, main


def _epochs(accs: list[list[float]]) -> list[dict[str, object]]:
    return [{"epoch": i + 1, "val_per_class_accuracy": a} for i, a in enumerate(accs)]


def test_a_swing_is_a_jump_above_the_threshold_in_a_watched_class() -> None:
    epochs = _epochs([[0.9, 0.1], [0.2, 0.1], [0.8, 0.9], [0.7, 0.0]])
    # class 0 jumps 0.7 and 0.6, then moves 0.1; class 1 is not watched
    assert count_swings(epochs, [0]) == (3, 2, 0)
    # watching class 1 too, the last step (0.9 -> 0.0) counts as well
    assert count_swings(epochs, [0, 1]) == (3, 3, 0)
    # a jump of exactly the threshold is not a swing
    assert count_swings(_epochs([[0.0], [0.5]]), [0]) == (1, 0, 0)


def test_swings_are_split_by_the_later_epoch_of_the_step() -> None:
    epochs = _epochs([[0.0], [1.0], [0.0], [1.0], [0.0]])
    assert count_swings(epochs, [0], split=2) == (4, 1, 3)
    assert count_swings(epochs, [0], split=4) == (4, 3, 1)


def _write_run(root: Path, name: str, counts: list[int], accs: list[list[float]]) -> Path:
    run = root / name
    run.mkdir()
    (run / "result.json").write_text(json.dumps({"class_counts": counts}))
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(e) for e in _epochs(accs)) + "\n")
    return run


def test_the_command_watches_the_most_frequent_classes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # class 1 is the frequent one and swings; class 0, rare, swings more but is not watched
    run = _write_run(tmp_path, "r", [10, 500], [[0.0, 1.0], [1.0, 0.0], [0.0, 0.1], [1.0, 0.2]])
    assert main([str(run), "--classes", "1", "--split", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "r | 3 | 1 | 0"


def test_the_command_skips_a_folder_without_metrics_and_fails_with_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 1
    assert "needs result.json and metrics.jsonl" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "empty"), "--threshold", "1.5"])
