"""The decoupled baselines' tables: choices read validation only, pairs by seed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cdbloss.lab.experiments.decoupled_tables import chosen, collect, main

ROOT = Path(__file__).resolve().parents[3]


def _run(folder: Path, run: str, seed: int, wd: float, val: float, test: float, **s2: Any) -> None:
    stage2 = {k: v for k, v in s2.items() if k in ("method", "max_norm")}
    record = {k: v for k, v in s2.items() if k not in ("method", "max_norm")}
    config: dict[str, Any] = {
        "seed": seed,
        "data": {"options": {"imbalance_factor": 100}},
        "loss": {"name": "ce"},
        "optim": {"weight_decay": wd},
    }
    result: dict[str, Any] = {"config": config, "test": {"top1_accuracy": test}}
    if stage2:
        config["stage2"] = stage2
        result["stage2"] = {"selected_val_top1_accuracy": val, **record}
    else:
        result["val"] = {"val_top1_accuracy": val}
    (folder / run).mkdir(parents=True)
    (folder / run / "result.json").write_text(json.dumps(result))


def test_weight_balancing_and_weight_decay_are_chosen_on_validation_not_test(
    tmp_path: Path,
) -> None:
    _run(tmp_path, "a", 0, 0.0005, val=0.80, test=0.90)
    _run(tmp_path, "b", 0, 0.005, val=0.85, test=0.70)  # better on validation, worse on test
    _run(tmp_path, "c", 0, 0.0005, 0.81, 0.95, method="wb", max_norm=1.0, selected_epoch=3)
    _run(tmp_path, "d", 0, 0.005, 0.86, 0.60, method="wb", max_norm=0.5, selected_epoch=2)
    _run(tmp_path, "e", 0, 0.0005, 0.83, 0.88, method="tau-norm", tau=0.7)
    _run(tmp_path, "f", 0, 0.005, 0.99, 0.99, method="crt", selected_epoch=1)  # not cRT's row
    runs = collect(tmp_path)
    assert chosen(runs["weight balancing"])[(0, 100)] == pytest.approx(
        (86.0, 60.0, "wd 0.005, max-norm 0.5")
    )
    assert chosen(runs["CE, weight decay chosen on validation"])[(0, 100)][1] == pytest.approx(70)
    assert chosen(runs["CE (stage 1, this grid)"])[(0, 100)][1] == pytest.approx(90)
    assert chosen(runs["tau-norm"])[(0, 100)][2] == "tau 0.7"
    assert "cRT" not in runs  # cRT starts from the CE baseline's weight decay only


def test_the_committed_tables_are_what_the_script_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--check", "results/decoupled_study/tables.md"], ROOT) == 0, capsys.readouterr()
    (tmp_path / "stale.md").write_text("old\n")
    assert main(["--check", str(tmp_path / "stale.md")], ROOT) == 1
    assert "stale.md is stale" in capsys.readouterr().err


def test_report_labels_name_the_second_stage() -> None:
    from cdbloss.lab.experiments.report import method_label

    assert method_label({"loss": {"name": "ce"}}) == "CE"
    assert method_label({"loss": {"name": "ce"}, "stage2": {"method": "crt"}}) == "CE + cRT"
    assert method_label({"loss": {"name": "ce"}, "stage2": {"method": "wb"}}).endswith(
        "+ weight balancing"
    )
