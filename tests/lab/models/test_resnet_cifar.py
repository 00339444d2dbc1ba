"""CIFAR ResNets (He et al. 2016, option A): parameter counts, shapes, gradients, heads."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cdbloss.lab.models import CifarResNet, NormedLinear, build_model, count_parameters


@pytest.mark.parametrize(
    ("name", "c10", "c100"),
    [
        ("resnet8", 75_290, 81_140),
        ("resnet20", 269_722, 275_572),
        ("resnet32", 464_154, 470_004),
        ("resnet44", 658_586, 664_436),
        ("resnet56", 853_018, 858_868),
        ("resnet110", 1_727_962, 1_733_812),
    ],
)
def test_parameter_counts(name: str, c10: int, c100: int) -> None:
    assert count_parameters(build_model(name, num_classes=10)) == c10
    assert count_parameters(build_model(name, num_classes=100)) == c100
    # the cosine head drops the bias
    assert count_parameters(build_model(name, num_classes=100, normed_linear=True)) == c100 - 100


def test_resnet32_layout_option_a_has_no_shortcut_parameters() -> None:
    model = CifarResNet(10, depth=32)
    assert [len(s) for s in (model.layer1, model.layer2, model.layer3)] == [5, 5, 5]
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 31  # 1 + 2 * 15, no 1x1 projections
    assert {c.out_channels for c in convs} == {16, 32, 64}
    assert all(c.kernel_size == (3, 3) for c in convs)


def test_zero_padding_shortcut_is_subsampled_identity_plus_zeros() -> None:
    block = CifarResNet(10, depth=20).layer2[0]
    x = torch.randn(2, 16, 8, 8)
    out = block.shortcut(x)
    assert out.shape == (2, 32, 4, 4)
    torch.testing.assert_close(out[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(out[:, 16:]) == 0


def test_output_shape_and_backward() -> None:
    torch.manual_seed(0)
    model = build_model("resnet20", num_classes=10)
    logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10)
    F.cross_entropy(logits, torch.tensor([1, 7])).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.conv1.weight.grad is not None and model.conv1.weight.grad.abs().sum() > 0


def test_normed_linear_gives_cosine_logits() -> None:
    torch.manual_seed(0)
    model = build_model("resnet32", num_classes=100, normed_linear=True)
    logits = model.eval()(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 100)
    assert logits.abs().max() <= 1 + 1e-6
    head = NormedLinear(8, 3)
    x = torch.randn(5, 8)
    expected = F.cosine_similarity(x[:, None, :], head.weight[None, :, :], dim=2)
    torch.testing.assert_close(head(x), expected)
    # invariant to the feature's scale
    torch.testing.assert_close(head(7.0 * x), head(x))


def test_every_normed_head_is_the_shared_layer() -> None:
    # one NormedLinear, in models/layers.py; every model with normed_linear=True uses it
    assert NormedLinear.__module__ == "cdbloss.lab.models.layers"
    for name, shape in (("resnet8", (1, 3, 32, 32)), ("resnet10", (1, 3, 64, 64))):
        model = build_model(name, num_classes=3, normed_linear=True)
        assert sum(isinstance(m, NormedLinear) for m in model.modules()) == 1
        assert model.eval()(torch.randn(shape)).abs().max() <= 1 + 1e-6
    lenet = build_model("lenet5", num_classes=3, normed_linear=True)
    assert sum(isinstance(m, NormedLinear) for m in lenet.modules()) == 1


def test_kaiming_init() -> None:
    torch.manual_seed(0)
    model = CifarResNet(10, depth=110)
    w = torch.cat(
        [
            m.weight.flatten()
            for m in model.modules()
            if isinstance(m, torch.nn.Conv2d) and m.in_channels == 64
        ]
    )
    # Kaiming-normal, fan-in 64 * 9, ReLU gain: std = sqrt(2 / 576)
    assert w.std().item() == pytest.approx((2 / 576) ** 0.5, rel=0.02)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(torch.all(b.weight == 1) and torch.all(b.bias == 0) for b in bns)


def test_bad_depth_and_input() -> None:
    with pytest.raises(ValueError, match="6n \\+ 2"):
        CifarResNet(10, depth=33)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\), got \(2, 1, 32, 32\)"):
        CifarResNet(10, depth=20)(torch.zeros(2, 1, 32, 32))
