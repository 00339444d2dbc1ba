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


CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "multilabel"


def test_the_yeast_config_states_the_defaults_the_committed_runs_used() -> None:
    cfg, given = study.load_study_config(CONFIGS / "yeast.yaml")
    assert cfg == study.StudyConfig()
    assert given == {"out": "results/multilabel_yeast", "seeds": [0, 1, 2, 3, 4]}
    committed = Path(__file__).resolve().parents[3] / "results" / "multilabel_yeast"
    rec = json.loads(next(committed.glob("bce__seed0.json")).read_text())
    assert {k: getattr(cfg, k) for k in rec["config"]} == rec["config"]


def test_the_mosaic_config_loads_and_bad_configs_are_refused(tmp_path: Path) -> None:
    cfg, given = study.load_study_config(CONFIGS / "mnist_mosaic.yaml")
    assert cfg.task == "mnist-mosaic" and cfg.model == "lenet5"
    assert given["out"] == "results/multilabel_mosaic"
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: yeast\nepoch: 3\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['epoch'\]"):
        study.load_study_config(bad)
    bad.write_text('variants: [bce, "cdb-bce[nope]"]\n')
    with pytest.raises(ValueError, match=r"unknown variant\(s\) \['cdb-bce\[nope\]'\]"):
        study.load_study_config(bad)
    bad.write_text("task: coco\n")
    with pytest.raises(ValueError, match="task must be one of"):
        study.load_study_config(bad)
    bad.write_text("model: resnet\n")
    with pytest.raises(ValueError, match="model must be one of"):
        study.load_study_config(bad)


def test_lenet5_runs_on_image_splits() -> None:
    rng = np.random.default_rng(0)

    def part(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = (rng.random((n, 3)) < [0.6, 0.3, 0.1]).astype(np.int64)
        x = rng.normal(size=(n, 1, 28, 28)).astype(np.float32)
        x[:, 0, :3, :3] += 3.0 * y[:, :, None]  # a visible mark per label
        return x, y

    (a, b), (c, d), (e, f) = part(96), part(48), part(48)
    cfg = study.StudyConfig(epochs=2, batch_size=32, head=40, tail=15, model="lenet5")
    rec = study.run_one(YeastSplits(a, b, c, d, e, f), "cdb-bce[f1]", 0, cfg)
    assert rec["config"]["model"] == "lenet5" and 0 <= rec["best_epoch"] < 2
    assert rec["last_weights"] is not None and len(rec["last_weights"]) == 3


@pytest.mark.parametrize(
    "folder", ["multilabel_yeast", "multilabel_mosaic", "multilabel_mosaic_20ep"]
)
def test_committed_tables_are_what_the_committed_runs_give(folder: str) -> None:
    out = Path(__file__).resolve().parents[3] / "results" / folder
    expected = study.summarize(out) + "\n" + study.variants_table(out)
    assert (out / "table.md").read_text() == expected
