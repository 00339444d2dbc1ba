"""The JPEG-cost table: runs paired by loss and seed, differences per training / test pixels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdbloss.lab.experiments import jpeg_cost


def _run(
    root: Path, loss: str, seed: int, source: str, test: float, lossless: float, jpeg: float
) -> None:
    d = root / f"seed={seed}__name={loss}__source={source}"
    d.mkdir(parents=True)
    result = {
        "status": "done",
        "config": {"seed": seed, "loss": {"name": loss}, "data": {"options": {"source": source}}},
        "test": {"top1_accuracy": test},
        "extra_test": {
            "lossless-1000": {"top1_accuracy": lossless},
            "jpeg-1000": {"top1_accuracy": jpeg},
        },
    }
    (d / "result.json").write_text(json.dumps(result))


def test_table_pairs_by_seed(tmp_path: Path) -> None:
    _run(tmp_path, "ce", 0, "jpeg", 0.40, 0.41, 0.40)
    _run(tmp_path, "ce", 0, "lossless", 0.42, 0.44, 0.41)
    _run(tmp_path, "ce", 1, "jpeg", 0.50, 0.51, 0.50)
    _run(tmp_path, "ce", 1, "lossless", 0.51, 0.52, 0.50)
    _run(tmp_path, "ce", 2, "jpeg", 0.30, 0.30, 0.30)  # unpaired: in the means, not the pairs
    runs = jpeg_cost.collect(tmp_path)
    assert runs[("ce", 1, "lossless")]["lossless-1000"] == pytest.approx(52.0)
    text = jpeg_cost.table(runs)
    assert "| ce | jpeg | 3 | 40.00 | 40.67 | 40.00 |" in text
    # lossless minus JPEG training on the test set: +2 and +1 -> +1.50 +- 0.71
    assert "| ce | 2 | +1.50 +- 0.71 | +2.00 +- 1.41 | +1.00 +- 0.00 | +2.50 +- 0.71 |" in text
    out = tmp_path / "t.md"
    assert jpeg_cost.main([str(tmp_path), "--out", str(out)]) == 0
    assert out.read_text() == text


def test_other_runs_are_refused(tmp_path: Path) -> None:
    _run(tmp_path, "ce", 0, "jpeg", 0.4, 0.4, 0.4)
    bad = tmp_path / "seed=0__name=ce__source=jpeg" / "result.json"
    r = json.loads(bad.read_text())
    del r["extra_test"]
    bad.write_text(json.dumps(r))
    with pytest.raises(ValueError, match=r"expected a run of the JPEG-cost grid"):
        jpeg_cost.collect(tmp_path)
