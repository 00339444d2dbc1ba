"""Config loading: types, unknown keys and names, overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdbloss.lab.engine.config import ConfigError, config_from_dict, load_config, parse_override
from tests.lab.engine.conftest import tiny_config


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
        (
            tiny_config(loss__name="dice"),
            r"unknown loss 'dice'; known: \['asl', 'balanced-softmax'",
        ),
        (tiny_config(model__name="vgg"), r"unknown model 'vgg'; known: \[.*\], or torchvision"),
        (tiny_config(data__protocol="svhn"), r"unknown data protocol 'svhn'; known: \["),
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


# ------------------------------------------------------------------ fuzz (issue 23)

_KEYS = [
    "name", "seed", "optim.lr", "optim.milestones", "optim.schedule", "train.epochs",
    "train.progress", "data.protocol", "data.options.imbalance_factor", "data.options.x",
    "loss.name", "loss.options.tau", "model.options.hidden", "sweep.seed", "sweep",
    "train", "optim.lr.x", "", "a..b", "sweep.variants",
]  # fmt: skip
_VALUES = st.one_of(
    st.sampled_from(
        ["1e-3", "5E4", ".5e-2", "-1", "0", "true", "[1, 2]", "{a: 1}", "[", "{", ":", "'", "!!python/object:os.system", ".nan", ".inf", "~", "", "1e400", "0x10", "- a"]
    ),
    st.text(max_size=12),
)  # fmt: skip


@settings(max_examples=150)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.sampled_from(_KEYS), _VALUES).map(lambda kv: f"{kv[0]}={kv[1]}"),
            st.text(max_size=16),
        ),
        max_size=4,
    )
)
def test_fuzz_overrides_give_a_config_or_a_config_error(overrides: list[str]) -> None:
    """No override, however odd, gets past load_config as anything but a ConfigError."""
    path = _fuzz_dir() / "cfg.json"
    try:
        cfg = load_config(path, overrides)
    except ConfigError:
        return
    assert cfg.optim.lr > 0 and cfg.train.epochs >= 1


@settings(max_examples=150)
@given(
    st.one_of(
        st.text(max_size=80),
        st.recursive(
            st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5)),
            lambda inner: st.one_of(
                st.lists(inner, max_size=3),
                st.dictionaries(
                    st.one_of(
                        st.sampled_from(["name", "optim", "lr", "data", "options"]), st.integers()
                    ),
                    inner,
                    max_size=3,
                ),
            ),
            max_leaves=8,
        ).map(lambda tree: json.dumps(tree).replace('"', "")),  # JSON-ish flow YAML
    )
)
def test_fuzz_yaml_files_give_a_config_or_a_config_error(text: str) -> None:
    path = _fuzz_dir() / "cfg.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path)
    except ConfigError:
        pass


_FUZZ: list[Path] = []


def _fuzz_dir() -> Path:
    """One folder for every example (hypothesis and function-scoped tmp_path do not mix)."""
    if not _FUZZ:
        import tempfile

        d = Path(tempfile.mkdtemp(prefix="cdbloss-fuzz-"))
        (d / "cfg.json").write_text(json.dumps(tiny_config()))
        _FUZZ.append(d)
    return _FUZZ[0]


def test_a_misspelt_loss_option_fails_at_load_naming_the_valid_ones() -> None:
    """load_config reads no data: a misspelt option fails there, before a run starts."""
    path = Path(__file__).resolve().parents[3] / "configs" / "fashion_mnist_lt.yaml"
    with pytest.raises(
        ConfigError, match=r"unknown options \['momentm'\]; it accepts \[.*'momentum'"
    ):
        load_config(path, ["loss.name=cdb-bs", "loss.options={momentm: 0.5}"])
    cfg = load_config(path, ["loss.name=cdb-bs", "loss.options={momentum: 0.5}"])
    assert cfg.loss.options == {"momentum": 0.5}
