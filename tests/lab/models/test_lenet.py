"""LeNet-5: layer list, parameter counts, shapes, gradients."""

from __future__ import annotations

import pytest
import torch

from cdbloss.lab.models import LeNet5, build_model, count_parameters


@pytest.mark.parametrize(
    ("num_classes", "in_channels", "expected"),
    [(2, 1, 61_026), (10, 1, 61_706), (10, 3, 62_006)],
)
def test_parameter_count(num_classes: int, in_channels: int, expected: int) -> None:
    model = build_model("lenet5", num_classes=num_classes, in_channels=in_channels)
    assert count_parameters(model) == expected
    # the documented formula: 60,706 + 150 k + 85 C
    assert expected == 60_706 + 150 * in_channels + 85 * num_classes


def test_layer_list() -> None:
    model = LeNet5(num_classes=2)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (1, 6, (5, 5), (2, 2)),
        (6, 16, (5, 5), (0, 0)),
        (16, 120, (5, 5), (0, 0)),
    ]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(120, 84), (84, 2)]


@pytest.mark.parametrize("input_size", [28, 32])
def test_output_shape_and_backward(input_size: int) -> None:
    torch.manual_seed(0)
    model = build_model("lenet5", num_classes=2, input_size=input_size)
    x = torch.randn(5, 1, input_size, input_size)
    logits = model(x)
    assert logits.shape == (5, 2)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 0, 1, 1])).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_padded_28_equals_unpadded_32_on_zero_padded_input() -> None:
    """C1's padding makes a 28x28 digit behave as the classic zero-padded 32x32 input."""
    torch.manual_seed(0)
    a = LeNet5(3, input_size=28)
    b = LeNet5(3, input_size=32)
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(a(x), b(torch.nn.functional.pad(x, (2, 2, 2, 2))))


def test_wrong_input_shape_is_explained() -> None:
    with pytest.raises(
        ValueError, match=r"expects input of shape \(N, 1, 28, 28\), got \(2, 1, 32, 32\)"
    ):
        LeNet5(2)(torch.zeros(2, 1, 32, 32))


def test_normed_linear_head_gives_cosine_logits_without_bias() -> None:
    torch.manual_seed(0)
    model = build_model("lenet5", num_classes=10, normed_linear=True)
    assert count_parameters(model) == 61_706 - 10  # the cosine head has no bias
    logits = model(torch.randn(6, 1, 28, 28) * 5)
    assert logits.shape == (6, 10)
    assert logits.abs().max() <= 1.0 + 1e-6
    with pytest.raises(ValueError, match="normed_linear must be a bool"):
        build_model("lenet5", num_classes=10, normed_linear=1)
