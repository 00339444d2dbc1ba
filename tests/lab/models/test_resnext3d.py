"""3D-ResNeXt-101 (Hara et al. 2018): full-size parameter count, tiny forward/backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cdbloss.lab.models import ResNeXt3D, build_model, count_parameters

TINY = {"layers": (1, 1, 1, 1), "cardinality": 4, "base_width": 8, "stem_channels": 8}


def test_full_model_parameter_count_without_a_forward_pass() -> None:
    # built on the meta device: shapes only, no memory, no forward
    with torch.device("meta"):
        egtea = build_model("resnext3d_101", num_classes=19)
    assert count_parameters(egtea) == 47_560_147
    assert count_parameters(egtea) - egtea.fc.weight.numel() - egtea.fc.bias.numel() == 47_521_216
    # the 400-class Kinetics model: published at about 47-48 M
    assert 47_521_216 + 2049 * 400 == 48_340_816
    assert [len(s) for s in (egtea.layer1, egtea.layer2, egtea.layer3, egtea.layer4)] == [
        3,
        4,
        23,
        3,
    ]
    assert egtea.layer1[0].conv2.groups == 32
    assert egtea.layer1[0].conv2.out_channels == 128
    assert egtea.fc.in_features == 2048
    # the EGTEA input, 10 frames of 224x224, shape-checked on the meta device (no compute)
    with torch.device("meta"):
        assert egtea(torch.empty(2, 3, 10, 224, 224)).shape == (2, 19)


def test_tiny_version_shapes_and_backward() -> None:
    torch.manual_seed(0)
    model = build_model("resnext3d_101", num_classes=19, **TINY)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 4, 32, 32)).shape == (1, 19)
    model.train()  # batch 2: BN in training mode needs more than one value per channel
    logits = model(torch.randn(2, 3, 4, 32, 32))
    assert logits.shape == (2, 19)
    F.cross_entropy(logits, torch.tensor([0, 18])).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.conv1.weight.grad is not None and model.conv1.weight.grad.abs().sum() > 0


def test_widths_follow_the_options() -> None:
    model = ResNeXt3D(5, **TINY)  # type: ignore[arg-type]
    widths = [
        stage[0].conv2.out_channels
        for stage in (model.layer1, model.layer2, model.layer3, model.layer4)
    ]
    assert widths == [8, 16, 32, 64]
    assert model.fc.in_features == 128
    assert all(stage[0].downsample is not None for stage in (model.layer1, model.layer2))


def test_kaiming_fan_out_init() -> None:
    torch.manual_seed(0)
    model = ResNeXt3D(5, layers=(1, 1, 1, 1), cardinality=8, base_width=64, stem_channels=16)
    w = model.layer4[0].conv3.weight  # 1x1x1, fan-out = 1024
    assert w.std().item() == pytest.approx((2 / 1024) ** 0.5, rel=0.05)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match=r"\(N, 3, T, H, W\), got \(1, 3, 32, 32\)"):
        ResNeXt3D(5, **TINY)(torch.zeros(1, 3, 32, 32))  # type: ignore[arg-type]
