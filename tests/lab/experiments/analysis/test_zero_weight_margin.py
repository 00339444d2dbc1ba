from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cdbloss.lab.experiments.analysis.zero_weight_margin import main

FIELDS = ["protocol", "method", "column", "value", "seed", "metric", "result", "run"]


def _runs(tmp_path: Path) -> Path:
    """Two splits at one ratio: on seed 0 the CDB run has a zero weight in 3 of 4 logged
    epochs and beats IFW by 2 points; on seed 1 in 1 of 4 and by 0.5."""
    rows = []
    for seed, zeros, cdb, ifw in ((0, 3, 1.0, 3.0), (1, 1, 2.0, 2.5)):
        run = tmp_path / f"cdb{seed}"
        run.mkdir()
        weights = [[2.0, 0.0]] * zeros + [[1.9, 0.1]] * (4 - zeros)
        history = [{"epoch": i + 1, "weights": w, "tau": 1.0} for i, w in enumerate(weights)]
        (run / "result.json").write_text(json.dumps({"class_counts": [5, 50], "history": history}))
        for method, value, folder in (("CDB-CE (dyn. tau)", cdb, run), ("IFW", ifw, "x")):
            rows.append(
                {
                    "protocol": "p",
                    "method": method,
                    "column": "ratio",
                    "value": "0.99",
                    "seed": str(seed),
                    "metric": "test error %",
                    "result": str(value),
                    "run": str(folder),
                }
            )
    path = tmp_path / "runs.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_pairs_each_cdb_run_with_its_split_and_groups_by_zero_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(_runs(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "| 0.99 | 0 | 3 of 4 | 1.00 | 3.00 | +2.00 |" in out
    assert "| 0.99 | 1 | 1 of 4 | 2.00 | 2.50 | +0.50 |" in out
    assert "| 0.99 | +2.00 (n=1) | +0.50 (n=1) |" in out


def test_unknown_label_is_refused_with_the_labels_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(_runs(tmp_path)), "--versus", "CB"]) == 2
    err = capsys.readouterr().err
    assert "no runs labelled ['CB']" in err and "'IFW'" in err
    assert main([str(tmp_path / "missing.csv")]) == 2
