"""A CIFAR-10 run saved before source keywords existed read the JPEG copy, and counts so."""

from __future__ import annotations

import json
from pathlib import Path

from cdbloss.lab.engine.config import config_from_dict, config_to_dict, load_config
from cdbloss.lab.engine.trainer import experiment_differences

ROOT = Path(__file__).resolve().parents[3]


def _saved(tmp_path: Path, options: dict[str, object]) -> tuple[Path, dict[str, object]]:
    cfg = config_to_dict(load_config(ROOT / "configs/cifar10_lt_cpu.yaml"))
    cfg["data"]["options"] = options  # as an older run saved it
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(cfg))
    return run, cfg


def test_saved_run_without_source_is_a_jpeg_run(tmp_path: Path) -> None:
    old = {"dataset": "cifar10", "imbalance_factor": 100, "val_per_class": 50}
    run, cfg = _saved(tmp_path, old)
    jpeg = config_from_dict({**cfg, "data": {**cfg["data"], "options": {**old, "source": "jpeg"}}})
    assert experiment_differences(run, jpeg) == []  # the committed grids resume
    default = config_from_dict({**cfg, "data": {**cfg["data"], "options": dict(old)}})
    assert experiment_differences(run, default) == ["data.options.source"]  # not lossless
    lossless = config_from_dict(
        {**cfg, "data": {**cfg["data"], "options": {**old, "source": "lossless"}}}
    )
    assert experiment_differences(run, lossless) == ["data.options.source"]
