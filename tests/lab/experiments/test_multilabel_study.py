"""The multi-label study script on a tiny synthetic split: runs, resumes, chooses on validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cdbloss.lab.data.yeast import YeastSplits
from cdbloss.lab.experiments import multilabel_study as study


def _data() -> YeastSplits:
    rng = np.random.default_rng(0)

    def part(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, 6)).astype(np.float32)
        y = (x[:, :3] + 0.5 * rng.normal(size=(n, 3)) > [0.0, 0.8, 1.5]).astype(np.int64)
        return x, y

    (a, b), (c, d), (e, f) = part(120), part(60), part(60)
    return YeastSplits(a, b, c, d, e, f)


CFG = study.StudyConfig(epochs=3, hidden=8, batch_size=32, head=40, tail=15)


def test_run_one_picks_the_best_validation_epoch_and_updates_cdb() -> None:
    rec = study.run_one(_data(), "cdb-bce[f1]", 0, CFG)
    assert 0 <= rec["best_epoch"] < 3
    assert rec["test"]["mAP"] > 0.3 and set(rec["test"]) >= {"macro_f1", "micro_f1", "mAP_tail"}
    assert rec["last_weights"] is not None and len(set(rec["last_weights"])) > 1
    assert study.run_one(_data(), "bce", 0, CFG)["last_weights"] is None


def test_study_resumes_and_tables_choose_cdb_on_validation(tmp_path: Path) -> None:
    variants = ["bce", "db-loss", "cdb-bce[f1]", "cdb-bce[balanced-accuracy]"]
    study.run_study(tmp_path, [0, 1], variants, CFG, _data())
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 8
    marker = files[0]
    rec = json.loads(marker.read_text())
    rec["test"]["mAP"] = 0.123456
    marker.write_text(json.dumps(rec))
    study.run_study(tmp_path, [0, 1], variants, CFG, _data())  # skips finished runs
    assert json.loads(marker.read_text())["test"]["mAP"] == 0.123456
    runs = study._load(tmp_path)
    chosen = study._chosen(runs)
    val = {v: np.mean([r["val"]["mAP"] for r in runs[v].values()]) for v in variants[2:]}
    assert chosen["cdb-bce"] == max(val, key=lambda v: val[v])
    table = study.summarize(tmp_path)
    assert table.count("\n| ") == 3 and "cdb-bce" in table and "(" in table


def test_a_single_label_loss_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(study.VARIANTS, "ce", ("ce", {}))
    with pytest.raises(ValueError, match="not a multi-label loss"):
        study.run_one(_data(), "ce", 0, CFG)
