"""The model registry: names, option checks, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cdbloss.lab.models import MODELS, build_model, count_parameters, get_model, register_model


def test_all_paper_models_are_registered() -> None:
    for name in ("lenet5", "resnet8", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110"):
        assert name in MODELS
    assert {"resnet10", "resnext3d_101"} <= set(MODELS)


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'resnet33'.*'lenet5'.*'resnet32'"):
        build_model("resnet33", num_classes=10)
    with pytest.raises(ValueError, match=r"unknown model 'vgg16'; known: \[.*\], or torchvision"):
        get_model("vgg16")


def test_unknown_option_lists_the_accepted_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['depth'\].*normed_linear"):
        build_model("resnet32", num_classes=10, depth=20)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("lenet5", {"num_classes": 0}, "num_classes must be >= 1, got 0"),
        ("lenet5", {"num_classes": 2.0}, "num_classes must be an int, got float"),
        ("lenet5", {"num_classes": True}, "num_classes must be an int, got bool"),
        ("lenet5", {"num_classes": 2, "input_size": 30}, "input_size must be 28 or 32, got 30"),
        ("lenet5", {"num_classes": 2, "in_channels": "1"}, "in_channels must be an int"),
        ("resnet32", {"num_classes": 10, "normed_linear": 1}, "normed_linear must be a bool"),
        ("resnext3d_101", {"num_classes": 5, "layers": (1, 1, 1)}, "layers must have 4 entries"),
        ("resnext3d_101", {"num_classes": 5, "layers": 3}, "layers must be a sequence"),
        ("resnext3d_101", {"num_classes": 5, "layers": (1, 0, 1, 1)}, r"layers\[1\] must be >= 1"),
        (
            "resnext3d_101",
            {"num_classes": 5, "cardinality": 3, "base_width": 8},
            "multiple of cardinality",
        ),
    ],
)
def test_wrong_option_types_and_values_raise_value_error(
    name: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_model(name, **options)  # type: ignore[arg-type]


def test_register_rejects_duplicates_and_new_models_build() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("lenet5")(lambda num_classes: nn.Linear(1, num_classes))

    name = "_test_linear_probe"

    @register_model(name)
    def probe(num_classes: int, width: int = 3) -> nn.Module:
        return nn.Linear(width, num_classes)

    try:
        model = build_model(name, num_classes=4, width=5)
        assert model(torch.zeros(2, 5)).shape == (2, 4)
        assert count_parameters(model) == 24
    finally:
        MODELS.remove(name)
    assert name not in MODELS


def test_count_parameters_trainable_only() -> None:
    model = build_model("lenet5", num_classes=2)
    for p in model.features.parameters():  # type: ignore[union-attr]
        p.requires_grad_(False)
    assert count_parameters(model) == 61_026
    assert count_parameters(model, trainable_only=True) == 10_164 + 170
