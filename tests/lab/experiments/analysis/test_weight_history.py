from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cdbloss.lab.experiments.analysis.weight_history import main, summarise
from cdbloss.lab.experiments.store import pack


def _result(weights: list[list[float]], taus: list[float]) -> dict[str, object]:
    history = [
        {"epoch": 5 * (i + 1), "weights": w, "tau": t}
        for i, (w, t) in enumerate(zip(weights, taus, strict=True))
    ]
    return {"class_counts": [50, 5], "history": [{"epoch": 0}, *history]}


def test_counts_of_one_run() -> None:
    # epochs 5, 10 are early (<= 10); 15, 20, 25 late. Class 1 is the rarest.
    result = _result(
        [[1.0, 1.0], [0.0, 2.0], [0.5, 1.5], [2.0, 0.0], [0.0, 2.0]],
        [2.0, 1.8, 1.0, 1.9, 1.1],
    )
    s = summarise(result, after=10, high=1.5)
    assert s["epochs"] == 5  # the entry without weights is not counted
    assert s["tau_mean"] == pytest.approx((1.0 + 1.9 + 1.1) / 3)
    assert (s["high_early"], s["high_late"], s["late"]) == (2, 1, 3)
    assert s["zero"] == 3
    assert s["inverted"] == 1  # only [2, 0] puts the largest weight off the rarest class


def test_command_prints_totals_and_skips_unfinished(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, w in (("a", [0.0, 2.0]), ("b", [2.0, 0.0])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "result.json").write_text(json.dumps(_result([w] * 3, [1.0] * 3)))
    (tmp_path / "c").mkdir()
    assert main([str(tmp_path / n) for n in "abc"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == "all 2 runs | 6 | 1.00-1.00 | 0/0 of 2 late | 6 | 3"
    assert "no result.json" in err
    assert main([str(tmp_path / "c")]) == 1


def test_a_packed_run_is_read_from_its_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "result.json").write_text(json.dumps(_result([[0.0, 2.0]] * 3, [1.0] * 3)))
    assert main([str(tmp_path / "a")]) == 0
    folder = capsys.readouterr().out
    pack(tmp_path)
    shutil.rmtree(tmp_path / "a")
    assert main([str(tmp_path / "a")]) == 0
    assert capsys.readouterr().out == folder
