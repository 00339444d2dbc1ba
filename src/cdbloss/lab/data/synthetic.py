"""A synthetic long-tailed problem: Gaussian classes in feature space, no download.

For tests, examples and quick checks of the engine: every class is a Gaussian
blob around its own random centre; the training split follows the long-tail
profile of :func:`~cdbloss.lab.data.longtail.long_tail_counts`; validation and test
are balanced.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from cdbloss.lab.data.base import DataSplits, register_protocol
from cdbloss.lab.data.longtail import long_tail_counts

__all__ = ["FeatureDataset", "synthetic_lt"]


class FeatureDataset(Dataset[tuple[Tensor, int]]):
    """Feature vectors ``(N, D)`` float32 and labels ``(N,)`` int64 held in memory.

    Besides ``dataset[i]``, :meth:`get_batch` returns a whole batch at once
    (the engine's fast path).
    """

    def __init__(self, features: Tensor, targets: Tensor) -> None:
        if features.dim() != 2 or targets.shape != (features.shape[0],):
            raise ValueError(
                f"expected features (N, D) and targets (N,), got {tuple(features.shape)} "
                f"and {tuple(targets.shape)}"
            )
        self.features, self.targets = features.float(), targets.long()

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.features[index], int(self.targets[index])

    def get_batch(
        self, indices: Tensor | Sequence[int], device: torch.device | str | None = None
    ) -> tuple[Tensor, Tensor]:
        """Features ``(B, D)`` and labels ``(B,)`` for ``indices`` (on ``device`` if given)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        x, y = self.features[idx], self.targets[idx]
        if device is not None:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        return x, y


@register_protocol("synthetic-lt")
def synthetic_lt(
    num_classes: int = 3,
    dim: int = 8,
    max_per_class: int = 200,
    imbalance_factor: float = 20.0,
    val_per_class: int = 30,
    test_per_class: int = 100,
    separation: float = 2.0,
    seed: int = 0,
) -> DataSplits:
    """Gaussian classes with a long-tailed training split.

    Args:
        num_classes: ``C``.
        dim: feature dimension ``D``.
        max_per_class: training samples of class 0 (the head).
        imbalance_factor: head / tail training count.
        val_per_class, test_per_class: balanced validation and test sizes.
        separation: distance scale of the class centres (unit-variance noise).
        seed: same seed, same data.
    """
    if num_classes < 2 or dim < 1 or val_per_class < 1 or test_per_class < 1:
        raise ValueError(
            "synthetic-lt needs num_classes >= 2, dim >= 1, val_per_class >= 1, test_per_class >= 1; "
            f"got {num_classes}, {dim}, {val_per_class}, {test_per_class}"
        )
    counts = long_tail_counts(max_per_class, num_classes, imbalance_factor)
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dim, generator=g)
    centres = separation * centres / centres.norm(dim=1, keepdim=True)  # (C, D)

    def draw(per_class: Sequence[int]) -> FeatureDataset:
        labels = torch.cat([torch.full((n,), c, dtype=torch.long) for c, n in enumerate(per_class)])
        x = centres[labels] + torch.randn(len(labels), dim, generator=g)  # (N, D)
        return FeatureDataset(x, labels)

    return DataSplits(
        train=draw(counts),
        val=draw([val_per_class] * num_classes),
        test=draw([test_per_class] * num_classes),
        num_classes=num_classes,
        class_counts=counts,
        class_names=[f"class_{c}" for c in range(num_classes)],
        info={"protocol": "synthetic-lt", "seed": seed, "imbalance_factor": imbalance_factor},
    )
