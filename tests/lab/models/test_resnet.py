"""ResNet-10 for ImageNet-LT: parameter count, shapes, gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cdbloss.lab.models import ImageNetResNet, build_model, count_parameters


def test_parameter_count() -> None:
    assert count_parameters(build_model("resnet10", num_classes=1000)) == 5_418_792
    assert count_parameters(build_model("resnet10", num_classes=10)) == 4_905_792 + 513 * 10
    # ResNet-18 through the same class: the well-known 11,689,512 with 1,000 classes
    assert count_parameters(ImageNetResNet(1000, layers=(2, 2, 2, 2))) == 11_689_512


def test_output_shape_on_224_and_backward_on_64() -> None:
    torch.manual_seed(0)
    model = build_model("resnet10", num_classes=1000)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 224, 224)).shape == (1, 1000)
    model.train()
    logits = model(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 1000)
    F.cross_entropy(logits, torch.tensor([3, 999])).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_layout_and_normed_head() -> None:
    model = ImageNetResNet(7)
    assert [len(s) for s in (model.layer1, model.layer2, model.layer3, model.layer4)] == [1] * 4
    assert model.conv1.kernel_size == (7, 7) and model.conv1.stride == (2, 2)
    cos = build_model("resnet10", num_classes=7, normed_linear=True).eval()
    assert cos(torch.randn(1, 3, 64, 64)).abs().max() <= 1 + 1e-6


def test_bad_input() -> None:
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        ImageNetResNet(5)(torch.zeros(3, 64, 64))
