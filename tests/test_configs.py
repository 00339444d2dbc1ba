"""Every paper config in configs/ loads, and a tiny version of each of its variants trains.

The real data of most configs is not on these machines (and tests never
download), so each tiny run gets synthetic images of the protocol's input
shape and class count; models are shrunk where the full one would take minutes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from cdbloss.data.base import DataSplits
from cdbloss.data.tensor_dataset import TensorImageDataset
from cdbloss.engine.config import apply_overrides, config_from_dict, config_to_dict, load_config
from cdbloss.engine.trainer import Trainer
from cdbloss.experiments.sweep import expand_grid
from cdbloss.models import build_model

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


def fake_splits(protocol: str, options: dict[str, Any]) -> DataSplits:
    c, shape = SHAPES[protocol]
    if protocol == "cifar-lt" and options.get("dataset") == "cifar100":
        c = 100
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
        cfg = load_config(path)
        seen = set()
        for run in expand_grid(cfg):
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
        assert len(expand_grid(cfg)) >= 1


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
    assert 0.0 <= result["test"]["top1_accuracy"] <= 1.0
    if tiny.loss.name.startswith("cdb") and tiny.loss.options.get("tau") != 0:
        if splits.num_classes <= 100:  # larger weight vectors are not kept in the history
            assert result["history"][0]["weights"] != [1.0] * splits.num_classes
        assert result["history"][0]["tau"] > 0


def test_full_size_models_of_the_configs_build() -> None:
    for name, c in (("lenet5", 2), ("resnet32", 100), ("resnet10", 1000)):
        model = build_model(name, c)
        assert sum(p.numel() for p in model.parameters()) > 0
