"""``model.pretrained``: every model family, every public key layout, every failure in one line.

Real checkpoints are not downloaded: each layout is a small synthetic file written the
way its code writes it (torchvision's flat ``state_dict()``, 3D-ResNets-PyTorch's
``{"state_dict": module.-prefixed}``, the OLTR / classifier-balancing two-network
dict, a cdbloss ``checkpoint.pt``), with the key names written out here from those
codes, so a renamed module of ours fails the test.
"""

from __future__ import annotations

import collections
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from cdbloss.lab.cli import main
from cdbloss.lab.engine.config import ConfigError, apply_overrides, config_from_dict, config_to_dict
from cdbloss.lab.engine.trainer import Trainer
from cdbloss.lab.models import (
    MODELS,
    PretrainedError,
    build_model,
    is_model_name,
    load_pretrained,
)
from cdbloss.lab.models.pretrained import classifier_name
from tests.lab.engine.conftest import tiny_config

# small options per family, so that every registered model builds in milliseconds
TINY: dict[str, dict[str, Any]] = {
    "resnext3d_101": {
        "layers": (1, 1, 1, 1),
        "cardinality": 2,
        "base_width": 4,
        "stem_channels": 4,
    },
    "mlp": {"in_features": 6, "hidden": 5},
}
TINY_HARA = TINY["resnext3d_101"]


def same(a: nn.Module, b: nn.Module, skip: str = "") -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        torch.equal(sa[k], sb[k]) for k in sa if not (skip and k.startswith(skip + "."))
    )


def fresh(name: str, c: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(name, c, **TINY.get(name, {}))


# one name per model class (the CIFAR ResNets of other depths are the same code)
FAMILIES = ["lenet5", "mlp", "resnet8", "resnet10", "resnet18", "resnext3d_101"]


def test_the_families_cover_every_registered_model() -> None:
    classes = {type(build_model(n, 2, **TINY.get(n, {}))) for n in FAMILIES}
    for name in MODELS:
        assert type(build_model(name, 2, **TINY.get(name, {}))) in classes, name


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_round_trips_through_its_own_and_the_dataparallel_layout(
    name: str, tmp_path: Path
) -> None:
    src, dst = fresh(name, 5, 0), fresh(name, 5, 1)
    assert not same(src, dst)
    torch.save(src.state_dict(), tmp_path / "plain.pth")
    report = load_pretrained(dst, tmp_path / "plain.pth")
    assert same(src, dst) and report.loaded == len(src.state_dict()) and not report.stripped
    # nn.DataParallel's own state dict (CPU: it only wraps), in a training script's wrapper
    dp = {"epoch": 3, "arch": name, "state_dict": nn.DataParallel(src).state_dict()}
    assert all(k.startswith("module.") for k in dp["state_dict"])
    torch.save(dp, tmp_path / "dp.pth")
    dst = fresh(name, 5, 2)
    report = load_pretrained(dst, tmp_path / "dp.pth")
    assert same(src, dst) and report.stripped == ["module."] and report.wrapper == "state_dict"


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_reinitialises_its_head_for_another_class_count(
    name: str, tmp_path: Path
) -> None:
    src = fresh(name, 7, 0)
    torch.save(src.state_dict(), tmp_path / "w.pth")
    dst = fresh(name, 3, 1)
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    head = classifier_name(dst)
    with pytest.raises(PretrainedError, match=r"7 outputs in the file and 3 .*reinit_head: true"):
        load_pretrained(dst, tmp_path / "w.pth")
    report = load_pretrained(dst, tmp_path / "w.pth", reinit_head=True)
    assert report.head == head and report.skipped
    after = dst.state_dict()
    for k, v in after.items():
        if k.startswith(head + "."):
            assert torch.equal(v, before[k])  # the head as built, not from the file
        else:
            assert torch.equal(v, src.state_dict()[k])


def hara_resnext_keys(layers: tuple[int, ...]) -> list[str]:
    """Parameter and buffer names of 3D-ResNets-PyTorch's ResNeXt (models/resnext.py):
    conv1/bn1 stem, bottlenecks conv1-3/bn1-3, shortcut B as downsample.0 (conv) and
    downsample.1 (BN) in the first block of each stage, fc."""
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    keys = ["conv1.weight", *(f"bn1.{b}" for b in bn)]
    for stage, blocks in enumerate(layers, start=1):
        for i in range(blocks):
            p = f"layer{stage}.{i}"
            for j in (1, 2, 3):
                keys += [f"{p}.conv{j}.weight", *(f"{p}.bn{j}.{b}" for b in bn)]
            if i == 0:
                keys += [f"{p}.downsample.0.weight", *(f"{p}.downsample.1.{b}" for b in bn)]
    return [*keys, "fc.weight", "fc.bias"]


def test_kinetics_resnext_checkpoint_of_3d_resnets_pytorch(tmp_path: Path) -> None:
    """The EGTEA start: resnext-101-kinetics.pth holds {'epoch', 'arch', 'state_dict':
    module.-prefixed, 'optimizer'}, written by PyTorch 0.3 (no num_batches_tracked), 400
    Kinetics classes; the authors' code then replaces fc by a fresh 19-class layer."""
    kinetics = build_model("resnext3d_101", 400, **TINY_HARA)
    assert sorted(kinetics.state_dict()) == sorted(hara_resnext_keys((1, 1, 1, 1)))
    state = collections.OrderedDict(
        ("module." + k, v)
        for k, v in kinetics.state_dict().items()
        if not k.endswith("num_batches_tracked")
    )
    optimizer = {"state": {}, "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": [0, 1]}]}
    torch.save(
        {"epoch": 200, "arch": "resnext-101", "state_dict": state, "optimizer": optimizer},
        tmp_path / "resnext-101-kinetics.pth",
    )
    egtea = build_model("resnext3d_101", 19, **TINY_HARA)
    report = load_pretrained(egtea, tmp_path / "resnext-101-kinetics.pth", reinit_head=True)
    assert report.head == "fc" and report.stripped == ["module."]
    assert report.skipped == ["fc.bias", "fc.weight"]
    assert same(kinetics, egtea, skip="fc") and egtea.fc.weight.shape == (19, 64)
    assert "re-initialised" in report.summary() and "'state_dict'" in report.summary()


def torchvision_resnet_keys(layers: tuple[int, ...]) -> list[str]:
    """Names of torchvision's basic-block ResNet (torchvision/models/resnet.py: conv1, bn1,
    layerN.i.conv1/bn1/conv2/bn2, downsample.0/.1 where the shape changes, fc)."""
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    keys = ["conv1.weight", *(f"bn1.{b}" for b in bn)]
    for stage, blocks in enumerate(layers, start=1):
        for i in range(blocks):
            p = f"layer{stage}.{i}"
            for j in (1, 2):
                keys += [f"{p}.conv{j}.weight", *(f"{p}.bn{j}.{b}" for b in bn)]
            if i == 0 and stage > 1:
                keys += [f"{p}.downsample.0.weight", *(f"{p}.downsample.1.{b}" for b in bn)]
    return [*keys, "fc.weight", "fc.bias"]


@pytest.mark.parametrize(("name", "layers"), [("resnet10", (1, 1, 1, 1)), ("resnet18", (2,) * 4)])
def test_torchvision_resnet_layout(name: str, layers: tuple[int, ...], tmp_path: Path) -> None:
    imagenet = build_model(name, 1000)
    assert list(imagenet.state_dict()) == torchvision_resnet_keys(layers)
    torch.save(imagenet.state_dict(), tmp_path / f"{name}.pth")  # as torch.save(tv.state_dict())
    mine = build_model(name, 10)
    report = load_pretrained(mine, tmp_path / f"{name}.pth", reinit_head=True)
    assert report.head == "fc" and same(imagenet, mine, skip="fc")


def test_oltr_two_network_checkpoint_of_the_authors_imagenet_lt_code(tmp_path: Path) -> None:
    """run_networks.py saves {'state_dict_best': {'feat_model': ..., 'classifier': ...}}, each
    a DataParallel state dict; the classifier is DotProductClassifier's fc."""
    src = build_model("resnet10", 1000)
    sd = nn.DataParallel(src).state_dict()
    feat = {k: v for k, v in sd.items() if not k.startswith("module.fc.")}
    head = {k: v for k, v in sd.items() if k.startswith("module.fc.")}
    torch.save(
        {
            "epoch": 90,
            "best_epoch": 88,
            "state_dict_best": {"feat_model": feat, "classifier": head},
        },
        tmp_path / "final_model_checkpoint.pth",
    )
    dst = build_model("resnet10", 1000)
    report = load_pretrained(dst, tmp_path / "final_model_checkpoint.pth")
    assert same(src, dst) and report.wrapper == "state_dict_best/feat_model+classifier"


def test_a_cdbloss_run_checkpoint_starts_another_run(tmp_path: Path) -> None:
    src = fresh("resnet8", 10, 0)
    torch.save({"model": src.state_dict(), "epoch": 3, "step": 9}, tmp_path / "checkpoint.pt")
    dst = fresh("resnet8", 10, 1)
    assert load_pretrained(dst, tmp_path / "checkpoint.pt").wrapper == "model"
    assert same(src, dst)


class NotAllowed:
    pass


def test_missing_unreadable_and_unsafe_files_are_one_line_naming_the_file(tmp_path: Path) -> None:
    model = fresh("resnet8", 10, 0)
    cases: dict[str, str] = {
        "absent.pth": "does not exist",
        "garbage.pth": r"unreadable \(truncated, empty or not a torch checkpoint\)",
        "empty.pth": "unreadable",
        "unsafe.pth": "refused for safety",
        "tensor.pth": "no state dict found .it holds a Tensor",
        "config.pth": r"no state dict found .it holds a mapping with keys \['lr'\]",
        "folder": "unreadable",
    }
    (tmp_path / "garbage.pth").write_bytes(b"\x00not a checkpoint" * 10)
    (tmp_path / "empty.pth").write_bytes(b"")
    torch.save({"state_dict": {"w": NotAllowed()}}, tmp_path / "unsafe.pth")
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    torch.save({"lr": 0.1}, tmp_path / "config.pth")
    (tmp_path / "folder").mkdir()
    for file, message in cases.items():
        with pytest.raises(PretrainedError, match=message) as err:
            load_pretrained(model, tmp_path / file)
        text = str(err.value)
        assert "\n" not in text and str(tmp_path / file) in text, text


def test_keys_that_do_not_fit_are_reported_in_one_message(tmp_path: Path) -> None:
    torch.save(fresh("lenet5", 10, 0).state_dict(), tmp_path / "lenet.pth")
    with pytest.raises(PretrainedError) as err:
        load_pretrained(fresh("resnet8", 10, 0), tmp_path / "lenet.pth")
    text = str(err.value)
    assert "\n" not in text and "lenet.pth" in text and "does not fit CifarResNet" in text
    assert "missing from the file (conv1.weight, bn1.weight" in text and "more)" in text
    assert "not in CifarResNet (classifier.0.bias" in text
    # a trunk of another width: shapes named with both sides
    torch.save(fresh("resnet8", 10, 0).state_dict(), tmp_path / "rgb.pth")
    gray = build_model("resnet8", 10, in_channels=1)
    with pytest.raises(PretrainedError, match=r"conv1.weight: file \(16, 3, 3, 3\), model \(16, 1"):
        load_pretrained(gray, tmp_path / "rgb.pth")


# --------------------------------------------------------------------- torchvision by name


@pytest.fixture
def fake_torchvision(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """A stand-in for torchvision.models.get_model (the real package is not installed here:
    PyPI's builds need a CUDA torch): records its calls, builds our ResNet-10."""
    calls: list[dict[str, Any]] = []

    def get_model(name: str, **kwargs: Any) -> nn.Module:
        calls.append({"name": name, **kwargs})
        if name not in ("resnet50", "r3d_18"):
            raise ValueError(f"Unknown model {name}")
        return build_model("resnet10", kwargs["num_classes"])

    package = types.ModuleType("torchvision")
    models = types.ModuleType("torchvision.models")
    models.get_model = get_model  # type: ignore[attr-defined]
    package.models = models  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.models", models)
    return calls


def test_torchvision_architectures_by_name(
    fake_torchvision: list[dict[str, Any]], tmp_path: Path
) -> None:
    model = build_model("torchvision.resnet50", 7)
    assert fake_torchvision == [{"name": "resnet50", "weights": None, "num_classes": 7}]
    assert model.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 7)
    build_model("torchvision.r3d_18", 3)
    assert fake_torchvision[-1]["name"] == "r3d_18"
    # their own checkpoints (flat, torchvision names) load with model.pretrained
    torch.save(build_model("resnet10", 400).state_dict(), tmp_path / "tv.pth")
    assert load_pretrained(model, tmp_path / "tv.pth", reinit_head=True).head == "fc"
    with pytest.raises(ValueError, match=r"model 'torchvision.vgg99': Unknown model vgg99"):
        build_model("torchvision.vgg99", 3)
    with pytest.raises(ValueError, match="not downloaded here; give a local file"):
        build_model("torchvision.resnet50", 3, weights="IMAGENET1K_V2")
    assert is_model_name("torchvision.r3d_18") and not is_model_name("torchvision.")
    assert not is_model_name("torchvision.resnet-50") and not is_model_name("resnet51")
    cfg = config_from_dict(tiny_config(model__name="torchvision.resnet50", model__options={}))
    assert cfg.model.name == "torchvision.resnet50"


def test_without_torchvision_the_name_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import fails
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    with pytest.raises(ValueError, match=r"needs torchvision, which failed to import") as err:
        build_model("torchvision.resnet50", 3)
    assert "\n" not in str(err.value) and "cdb-loss[torchvision]" in str(err.value)


# --------------------------------------------------------------------- the config and the engine


def test_config_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model.reinit_head.*set model.pretrained"):
        config_from_dict(tiny_config(model__reinit_head=True))
    plain = config_from_dict(tiny_config())
    # runs made before these keys existed compare equal: defaults are not written
    assert "pretrained" not in config_to_dict(plain)["model"]
    raw = apply_overrides(tiny_config(), [("model.pretrained", "w.pth")])
    cfg = config_from_dict(apply_overrides(raw, [("model.reinit_head", True)]))
    assert config_to_dict(cfg)["model"] == {
        "name": "mlp",
        "options": {"in_features": 8, "hidden": 16},
        "pretrained": "w.pth",
        "reinit_head": True,
    }


def test_a_run_starts_from_the_file_and_a_bad_file_stops_it_before_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = build_model("mlp", 5, in_features=8, hidden=16)  # another class count: a new head
    torch.save({"state_dict": nn.DataParallel(src).state_dict()}, tmp_path / "w.pth")
    raw = tiny_config(model__pretrained=str(tmp_path / "w.pth"), model__reinit_head=True)
    raw["train"].update(epochs=1, progress=True)
    seen: dict[str, torch.Tensor] = {}
    real_load = load_pretrained

    def spy(model: nn.Module, *args: Any, **kwargs: Any) -> Any:
        report = real_load(model, *args, **kwargs)
        seen.update({k: v.clone() for k, v in model.state_dict().items()})
        return report

    monkeypatch.setattr("cdbloss.lab.engine.trainer.load_pretrained", spy)
    result = Trainer(config_from_dict(raw), tmp_path / "run").fit()
    assert result["status"] == "done"
    assert torch.equal(seen["net.0.weight"], src.state_dict()["net.0.weight"])
    assert seen["net.2.weight"].shape == (3, 16)  # the head as built for 3 classes
    assert "pretrained: 2 tensors from" in capsys.readouterr().out
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["model"]["pretrained"] == str(tmp_path / "w.pth")

    # the command line: a missing file is exit status 2 and one line, before any data
    def no_data(self: Trainer) -> Any:
        raise AssertionError("the data was loaded before the pretrained file was read")

    monkeypatch.setattr(Trainer, "_load_data", no_data)
    bad = tiny_config(model__pretrained=str(tmp_path / "gone.pth"))
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    capsys.readouterr()
    assert main(["train", str(tmp_path / "bad.json"), "--out", str(tmp_path / "run2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "gone.pth' does not exist" in err, err
