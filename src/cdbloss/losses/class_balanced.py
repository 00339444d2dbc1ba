"""Class-balanced loss with effective numbers (Cui et al., CVPR 2019), over CE or focal."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from cdbloss.losses.base import ClassWeightedLoss, counts_tensor
from cdbloss.losses.cdb import BASES, cdb_loss
from cdbloss.losses.focal import _check_gamma
from cdbloss.losses.registry import register_loss
from cdbloss.weighting import class_balanced_weights

__all__ = ["ClassBalancedLoss", "class_balanced_loss"]


def class_balanced_loss(
    logits: Tensor,
    target: Tensor,
    class_counts: Sequence[int] | Tensor,
    beta: float = 0.9999,
    base: str = "ce",
    gamma: float = 2.0,
    reduction: str = "mean",
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Class-balanced loss: the base loss weighted by inverse effective numbers.

    .. math:: w_c = \frac{1 - \beta}{1 - \beta^{n_c}}, \ \text{rescaled to sum to } C

    ``base="ce"`` is CB-CE, ``base="focal"`` CB-focal (softmax focal with the
    class-balanced weight as alpha). ``beta=0`` is the unweighted base loss.

    Args:
        logits: ``(N, C)``; target: ``(N,)``.
        class_counts: training samples per class ``(C,)``.
        beta: in ``[0, 1)``; Cui et al. use 0.9, 0.99, 0.999, 0.9999.
        base: ``"ce"`` or ``"focal"``; gamma: focal exponent.
    """
    weight = class_balanced_weights(counts_tensor(class_counts, logits.shape[1]), beta=beta)
    return cdb_loss(
        logits,
        target,
        weight.to(logits.device),
        base,
        gamma,
        reduction,
        ignore_index,
        label_smoothing=label_smoothing,
    )


@register_loss("cb-ce", description="class-balanced CE (Cui et al. 2019)", base="ce")
@register_loss("cb-focal", description="class-balanced focal", base="focal")
class ClassBalancedLoss(ClassWeightedLoss):
    """Class-balanced loss as a module; weights fixed from ``class_counts``.

    See :func:`class_balanced_loss`.
    """

    def __init__(
        self,
        num_classes: int,
        class_counts: Sequence[int] | Tensor,
        beta: float = 0.9999,
        base: str = "ce",
        gamma: float = 2.0,
        reduction: str = "mean",
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
    ) -> None:
        if base not in BASES:
            raise ValueError(f"base must be one of {BASES}, got {base!r}")
        _check_gamma(gamma)
        weight = class_balanced_weights(counts_tensor(class_counts, num_classes), beta=beta)
        super().__init__(
            num_classes, weight, reduction, ignore_index, label_smoothing=label_smoothing
        )
        self.base = base
        self.gamma = float(gamma)
        self.beta = beta

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return cdb_loss(
            logits,
            target,
            self.weight,
            self.base,
            self.gamma,
            self.reduction,
            self.ignore_index,
            weight_positive=self.weight_positive(),
            label_smoothing=self.label_smoothing,
        )
