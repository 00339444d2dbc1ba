"""A small multi-layer perceptron, for feature vectors and quick experiments."""

from __future__ import annotations

from torch import Tensor, nn

from cdbloss.lab.models.registry import check_int, register_model

__all__ = ["MLP", "mlp"]


class MLP(nn.Module):
    """``in_features -> hidden (ReLU) x depth -> num_classes``; inputs are flattened.

    Shape:
        ``(N, *)`` with ``prod(*) = in_features`` -> logits ``(N, C)``.
    """

    def __init__(
        self, num_classes: int, in_features: int, hidden: int = 64, depth: int = 1
    ) -> None:
        super().__init__()
        check_int("num_classes", num_classes, 1)
        check_int("in_features", in_features, 1)
        check_int("hidden", hidden, 1)
        check_int("depth", depth, 0)
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        logits: Tensor = self.net(x.flatten(1))  # (N, C)
        return logits


@register_model("mlp")
def mlp(num_classes: int, in_features: int = 64, hidden: int = 64, depth: int = 1) -> MLP:
    """An MLP; see :class:`MLP`."""
    return MLP(num_classes, in_features, hidden, depth)
