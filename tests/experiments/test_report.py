"""The report of a tiny sweep: rows, columns, CSV and PNG figures."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cdbloss.engine.config import config_from_dict
from cdbloss.experiments.report import method_label, write_report
from cdbloss.experiments.sweep import run_sweep
from tests.engine.conftest import tiny_config


def test_report_of_a_tiny_sweep(tmp_path: Path) -> None:
    cfg = config_from_dict(
        tiny_config(
            train__epochs=2,
            sweep={
                "loss.name": ["ce", "cdb-ce"],
                "data.options.imbalance_factor": [5, 20],
                "seed": [0, 1],
            },
        )
    )
    run_sweep(cfg, tmp_path / "runs", workers=2, progress=False)
    report = write_report(tmp_path / "runs")
    text = report.read_text()
    assert "| method | 5 | 20 |" in text
    assert "| CE | " in text and "| CDB-CE (dyn. tau) | " in text
    assert text.count("(n=2)") == 4  # 2 methods x 2 factors, 2 seeds each
    rows = list(csv.DictReader((tmp_path / "runs" / "report.csv").open()))
    main = [r for r in rows if r["metric"] == "test top-1 %"]
    assert {(r["method"], r["value"]) for r in main} == {
        (m, v) for m in ("CE", "CDB-CE (dyn. tau)") for v in ("5", "20")
    }
    figs = sorted(p.name for p in (tmp_path / "runs" / "figures").iterdir())
    assert figs == ["synthetic-lt_cdb_weights_tau.png", "synthetic-lt_per_class_vs_count.png"]
    for name in figs:
        assert (tmp_path / "runs" / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_of_an_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no finished runs"):
        write_report(tmp_path)


def test_method_labels() -> None:
    assert method_label({"loss": {"name": "cdb-ce", "options": {"tau": 1.5}}}) == "CDB-CE (tau=1.5)"
    assert method_label({"loss": {"name": "cdb-ce", "options": {}}}) == "CDB-CE (dyn. tau)"
    assert (
        method_label({"loss": {"name": "cdb-ce", "options": {"reduction": "sample_mean"}}})
        == "CDB-CE (dyn. tau) [sample_mean]"
    )
    assert method_label({"loss": {"name": "ce"}, "train": {"method": "l2rw"}}) == "L2RW"
    assert method_label({"loss": {"name": "cb-ce"}}) == "CB"


def test_runs_with_other_settings_are_never_averaged_together(tmp_path: Path) -> None:
    from cdbloss.experiments.report import RunRecord, row_labels

    def run(name: str, epochs: int, seed: int, ratio: float) -> RunRecord:
        config = {
            "seed": seed,
            "data": {"protocol": "mnist-4v9", "options": {"ratio": ratio}},
            "loss": {"name": "ce", "options": {}},
            "train": {"epochs": epochs},
        }
        return RunRecord(tmp_path / name, config, {})

    runs = [run("a", 80, 0, 0.9), run("b", 80, 1, 0.99), run("c", 160, 0, 0.9)]
    labels = row_labels(runs, "ratio")
    assert labels[tmp_path / "a"] == labels[tmp_path / "b"] == "CE (epochs=80)"
    assert labels[tmp_path / "c"] == "CE (epochs=160)"
    assert row_labels(runs[:2], "ratio")[tmp_path / "a"] == "CE"  # seeds and ratios never split
