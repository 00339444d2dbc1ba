"""Every paper config in configs/ loads, its data options fit its protocol, and a tiny
version of each of its variants trains.

The data options of every run of every grid are checked against the protocol's
signature without reading any data. The real data of most configs is not on
these machines, so each tiny run gets synthetic images of the protocol's input
shape and class count; models are shrunk where the full one would take minutes.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from cdbloss.lab.data.base import DataSplits, check_protocol_options
from cdbloss.lab.data.tensor_dataset import TensorImageDataset
from cdbloss.lab.engine.checkpoint import load_checkpoint
from cdbloss.lab.engine.config import apply_overrides, config_from_dict, config_to_dict, load_config
from cdbloss.lab.engine.trainer import Trainer, seed_everything
from cdbloss.lab.experiments.sweep import SweepRun, expand_grid
from cdbloss.lab.models import build_model

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))

# protocol -> (classes, input shape of one sample)
SHAPES: dict[str, tuple[int, tuple[int, ...]]] = {
    "mnist-4v9": (2, (1, 28, 28)),
    "mnist-lt": (10, (1, 28, 28)),
    "fashion-mnist-lt": (10, (1, 28, 28)),
    "cifar-lt": (10, (3, 32, 32)),
    "imagenet-lt": (1000, (3, 32, 32)),  # ResNet-10 pools adaptively: a small input is enough
    "egtea": (19, (3, 2, 16, 16)),  # (C, T, H, W)
}
TINY_MODELS: dict[str, dict[str, Any]] = {
    "resnext3d_101": {
        "layers": [1, 1, 1, 1],
        "cardinality": 2,
        "base_width": 4,
        "stem_channels": 4,
    },
}


class TinyClips(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], int(self.y[i])


def classes_and_shape(protocol: str, options: dict[str, Any]) -> tuple[int, tuple[int, ...]]:
    c, shape = SHAPES[protocol]
    if protocol == "cifar-lt" and options.get("dataset") == "cifar100":
        c = 100
    return c, shape


def fake_splits(protocol: str, options: dict[str, Any]) -> DataSplits:
    c, shape = classes_and_shape(protocol, options)
    g = torch.Generator().manual_seed(0)
    n = max(c, 24) if c <= 100 else 24  # unsampled classes are allowed: accuracy NaN

    def split() -> torch.utils.data.Dataset[Any]:
        y = torch.arange(n) % c
        if len(shape) == 3:
            images = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
            return TensorImageDataset(images, y, num_classes=c)
        return TinyClips(torch.randn(n, *shape, generator=g), y)

    counts = [1] * c
    counts[0] = 20  # some imbalance for the count-based losses
    return DataSplits(split(), split(), split(), c, counts, [str(i) for i in range(c)])


@functools.cache
def grid(path: Path) -> list[SweepRun]:
    """The runs of the config's grid (expanded once per session; read, never changed)."""
    return expand_grid(load_config(path))


def pretrained_stand_in(model: dict[str, Any], options: dict[str, Any], folder: Path) -> Path:
    """A small checkpoint in the layout of the file a config names: for the EGTEA config, the
    Kinetics ResNeXt of 3D-ResNets-PyTorch ({'state_dict': module.-prefixed}, 400 classes)."""
    torch.manual_seed(0)  # the run's result must not depend on the tests before it
    src = build_model(model["name"], 400 if model["reinit_head"] else 19, **options)
    path = folder / Path(model["pretrained"]).name
    state = {"module." + k: v for k, v in src.state_dict().items()}
    torch.save({"epoch": 200, "arch": model["name"], "state_dict": state}, path)
    return path


def cases() -> list[Any]:
    out = []
    for path in CONFIGS:
        seen = set()
        try:
            runs = grid(path)
        except ValueError:  # test_every_config_loads_and_declares_a_grid names it and why
            continue
        for run in runs:
            # one tiny run per kind of run: loss, training step and model options
            # (tau values and data options change numbers, not code paths)
            c = run.config
            key = (c.loss.name, c.train.method, str(c.model.options))
            if key in seen:
                continue
            seen.add(key)
            out.append(pytest.param(path, run.overrides, id=f"{path.stem}:{run.run_id}"))
    return out


def test_every_config_loads_and_declares_a_grid() -> None:
    assert len(CONFIGS) >= 7
    for path in CONFIGS:
        cfg = load_config(path)
        assert cfg.sweep, f"{path.name} declares no sweep"
        assert len(grid(path)) >= 1


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_data_options_of_every_run_fit_the_protocol(path: Path, tmp_path: Path) -> None:
    """Every run of the grid names only options its protocol takes, of the right types;
    a misspelt option stops the config from loading. No data is read."""
    for run in grid(path):
        check_protocol_options(run.config.data.protocol, run.config.data.options)
    raw = yaml.safe_load(path.read_text())
    options = dict(raw["data"].get("options") or {"root": "x"})
    key = next(iter(options))
    options[key[:-1]] = options.pop(key)  # imbalance_factor -> imbalance_facto
    raw["data"]["options"] = options
    (tmp_path / path.name).write_text(yaml.safe_dump(raw))
    with pytest.raises(
        ValueError,
        match=rf"'data.options': data protocol '{raw['data']['protocol']}' has no option '{key[:-1]}'",
    ):
        load_config(tmp_path / path.name)


@pytest.mark.parametrize(("path", "overrides"), cases())
def test_tiny_version_trains(
    path: Path, overrides: tuple[tuple[str, Any], ...], tmp_path: Path
) -> None:
    cfg = load_config(path)
    raw = config_to_dict(cfg)
    raw.pop("sweep")
    raw = apply_overrides(raw, list(overrides))
    model_opts = {**raw["model"]["options"], **TINY_MODELS.get(raw["model"]["name"], {})}
    raw = apply_overrides(
        raw,
        [
            ("model.options", model_opts),
            ("train.epochs", 1),
            ("train.batch_size", 8),
            ("train.eval_batch_size", 16),
            ("train.val_batch_size", 4),
            ("train.num_workers", 0),
            ("train.progress", False),
            ("train.threads", 1),  # tiny models: a second thread only waits on a busy machine
            ("optim.milestones", []),
            ("optim.warmup_epochs", min(raw["optim"]["warmup_epochs"], 1)),
        ],
    )
    if raw["loss"]["name"] == "ldam-drw":
        raw["loss"]["options"] = {**raw["loss"]["options"], "drw_epoch": 0}
    if raw["model"].get("pretrained"):
        raw["model"]["pretrained"] = str(pretrained_stand_in(raw["model"], model_opts, tmp_path))
    tiny = config_from_dict(raw)
    splits = fake_splits(tiny.data.protocol, tiny.data.options)
    result = Trainer(tiny, tmp_path / "run", splits=splits).fit()
    assert result["status"] == "done" and len(result["history"]) == 1
    assert math.isfinite(result["history"][0]["train_loss"])
    assert result["test"]["num_samples"] == len(splits.test)  # type: ignore[arg-type]
    # the optimiser stepped: the run's seed builds the same initial model, and the run moved
    # its parameters (BatchNorm's running statistics change without a step)
    seed_everything(tiny.seed)
    initial = build_model(tiny.model.name, splits.num_classes, **tiny.model.options)
    trained = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["model"]
    assert any(not torch.equal(p, trained[n]) for n, p in initial.named_parameters())
    if tiny.loss.name.startswith("cdb") and tiny.loss.options.get("tau") != 0:
        deferred = bool(tiny.loss.options.get("defer_until"))  # uniform until then, by design
        if splits.num_classes <= 100 and not deferred:  # larger vectors are not kept in history
            assert result["history"][0]["weights"] != [1.0] * splits.num_classes
        assert result["history"][0]["tau"] > 0


def test_full_size_models_of_the_configs_build() -> None:
    """Each model a grid run names, with its options, at full size: one logit per class of
    the run's protocol (parameter counts are in tests/models)."""
    models = {}
    for path in CONFIGS:
        for run in grid(path):
            c, shape = classes_and_shape(run.config.data.protocol, run.config.data.options)
            m = run.config.model
            models[(m.name, str(m.options), c, shape)] = m.options
    assert {key[0] for key in models} >= {"lenet5", "resnet32", "resnet10", "resnext3d_101"}
    for (name, _, c, shape), options in models.items():
        model = build_model(name, c, **options).eval()
        with torch.no_grad():
            assert model(torch.randn(1, *shape)).shape == (1, c), name
