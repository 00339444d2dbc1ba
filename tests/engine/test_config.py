"""Config loading: types, unknown keys and names, overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdbloss.engine.config import config_from_dict, load_config, parse_override
from tests.engine.conftest import tiny_config


def write(tmp_path: Path, raw: object, name: str = "cfg.yaml") -> Path:
    import yaml

    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def test_load_with_overrides(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, tiny_config()), ["optim.lr=0.2", "loss.options.tau=1.5", "seed=3"]
    )
    assert cfg.optim.lr == 0.2 and cfg.loss.options == {"tau": 1.5} and cfg.seed == 3
    assert cfg.train.epochs == 4 and cfg.model.options["hidden"] == 16


def test_sweep_overrides_replace_whole_grid_keys(tmp_path: Path) -> None:
    raw = tiny_config(sweep={"seed": [0, 1], "loss.options.tau": [0.5, 1.0]})
    cfg = load_config(write(tmp_path, raw), ["sweep.seed=[2]", "sweep.loss.options.tau=[2.0, 5.0]"])
    assert cfg.sweep == {"seed": [2], "loss.options.tau": [2.0, 5.0]}
    with pytest.raises(ValueError, match=r"unknown config key 'optim\.lrx'"):
        load_config(write(tmp_path, raw), ["sweep.optim.lrx=[1]"])


def test_json_config(tmp_path: Path) -> None:
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(tiny_config()))
    assert load_config(path).name == "tiny"


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (tiny_config(optim__lrr=0.1), r"unknown config key 'optim.lrr'"),
        (tiny_config(train__epochs="ten"), r"'train.epochs' must be an integer"),
        (tiny_config(train__epochs=1.5), r"'train.epochs' must be an integer"),
        (tiny_config(train__progress="yes"), r"'train.progress' must be true or false"),
        (tiny_config(optim__schedule="step"), r"'optim.schedule' must be one of"),
        (tiny_config(loss__name="dice"), r"unknown loss 'dice'; known: \['balanced-softmax'"),
        (tiny_config(model__name="vgg"), r"unknown model 'vgg'; known: \["),
        (tiny_config(data__protocol="svhn"), r"unknown protocol 'svhn'; known: \["),
        (tiny_config(train__epochs=0), r"'train.epochs' must be >= 1"),
        (tiny_config(optim__lr=-1), r"'optim.lr' must be > 0"),
        (tiny_config(sweep={"optim.lrx": [1]}), r"unknown config key 'optim.lrx'"),
        ({"name": "x", "data": [1]}, r"config section 'data' must be a mapping"),
    ],
)
def test_bad_configs_name_the_key(raw: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        config_from_dict(raw)


def test_bad_override_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"key\.path=value"):
        parse_override("optim.lr")
    with pytest.raises(ValueError, match=r"unknown config key 'optim\.foo'"):
        load_config(write(tmp_path, tiny_config()), ["optim.foo=1"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
