"""Cross-entropy with per-class weights, and inverse-frequency weighting (IFW)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from cdbloss.losses._common import (
    autocast_fp32,
    check_inputs,
    check_label_smoothing,
    check_reduction,
    host_checks,
    is_soft,
    normalize_total,
    reduce_rows,
    sample_weights,
    spatial,
)
from cdbloss.losses.base import ClassWeightedLoss, counts_tensor
from cdbloss.losses.registry import register_loss
from cdbloss.weighting import inverse_frequency_weights

__all__ = [
    "CrossEntropyLoss",
    "InverseFrequencyLoss",
    "inverse_frequency_cross_entropy",
    "weighted_cross_entropy",
]


@spatial
def weighted_cross_entropy(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    reduction: str = "mean",
    ignore_index: int = -100,
    *,
    weight_positive: bool | None = None,
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Class-weighted cross-entropy, NaN-free.

    .. math:: \ell_i = -w_{y_i} \log \operatorname{softmax}(z_i)_{y_i}

    ``reduction="mean"`` equals ``F.cross_entropy(logits, target, weight=w)``
    (divide by :math:`\sum_i w_{y_i}`), but gives 0 with zero gradients where
    that sum is 0 (all weights of the batch's classes 0, or every target
    ignored) instead of NaN; ``"sample_mean"`` divides by the number of
    non-ignored samples (the CDB authors' CIFAR code).

    As ``F.cross_entropy`` it takes spatial logits ``(N, C, d1, ...)`` with
    targets ``(N, d1, ...)``, class-probability targets of the logits' shape
    (:math:`\ell_i = -\sum_c w_c\, p_{ic} \log q_{ic}`, ``"mean"`` divides by
    ``N``) and ``label_smoothing`` :math:`\varepsilon` (the target becomes
    :math:`(1-\varepsilon)\,\text{onehot}(y) + \varepsilon / C`, ``"mean"``
    still divides by :math:`\sum_i w_{y_i}`), equal to
    ``F.cross_entropy(weight=w, label_smoothing=...)`` in every case.

    Args:
        logits: ``(N, C)`` or ``(N, C, d1, ...)`` unnormalised scores.
        target: ``(N,)`` (``(N, d1, ...)``) int64 class indices in ``[0, C)`` or
            ``ignore_index``, or class probabilities of the logits' shape.
        weight: ``(C,)`` non-negative class weights; ``None`` for all ones.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` | ``"sample_mean"``.
        ignore_index: targets to skip.
        weight_positive: a hint that every weight is > 0 (modules pass it, see
            :meth:`ClassWeightedLoss.weight_positive`); ``None`` checks on CPU.
        label_smoothing: :math:`\varepsilon` in ``[0, 1]``.

    Returns:
        A scalar, or ``(N,)`` (``(N, d1, ...)``) for ``reduction="none"``.

    Example:
        >>> import torch
        >>> logits, target = torch.zeros(4, 3), torch.tensor([0, 1, 2, 2])
        >>> weighted_cross_entropy(logits, target, torch.tensor([1.0, 0.0, 0.0]))
        tensor(1.0986)
    """
    check_reduction(reduction)
    all_kept = check_inputs(logits, target, weight, ignore_index, name="weighted_cross_entropy")
    logits = autocast_fp32(logits)  # the weights too then stay float32
    w = None if weight is None else weight.to(logits.dtype)
    soft = is_soft(logits, target)
    if soft or label_smoothing != 0:
        return _smoothed_cross_entropy(logits, target, w, reduction, ignore_index, label_smoothing)
    if reduction in ("none", "sum"):
        return F.cross_entropy(
            logits, target, weight=w, reduction=reduction, ignore_index=ignore_index
        )
    if w is None or reduction == "mean":
        positive = w is None or (
            weight_positive
            if weight_positive is not None
            else (w.device.type == "cpu" and host_checks() and bool((w > 0).all()))
        )
        if positive:
            # Every weight > 0: the denominator is 0 only when every target is
            # ignored, where torch's mean gives NaN in value but zero gradients.
            # So torch's own (fastest) mean is exact here, made finite if needed.
            # Without weights, "sample_mean" == "mean".
            out = F.cross_entropy(logits, target, weight=w, ignore_index=ignore_index)
            return out if all_kept else torch.nan_to_num(out, nan=0.0)
    total = F.cross_entropy(logits, target, weight=w, reduction="sum", ignore_index=ignore_index)
    keep, w_i = sample_weights(target, w, ignore_index, logits.dtype, all_kept)
    return normalize_total(total, keep, w_i, reduction)


def _smoothed_cross_entropy(
    logits: Tensor,
    target: Tensor,
    w: Tensor | None,
    reduction: str,
    ignore_index: int,
    label_smoothing: float,
) -> Tensor:
    """Probability targets or label smoothing: torch's per-sample losses, torch's normalisers."""
    per_sample = F.cross_entropy(
        logits,
        target,
        weight=w,
        reduction="none",
        ignore_index=ignore_index,
        label_smoothing=check_label_smoothing(label_smoothing),
    )
    return reduce_rows(per_sample, target, w, reduction, ignore_index, is_soft(logits, target))


@register_loss("ce", description="unweighted cross-entropy")
class CrossEntropyLoss(ClassWeightedLoss):
    """Cross-entropy as a module; see :func:`weighted_cross_entropy`.

    With the default ``weight=None`` this is plain, unweighted cross-entropy
    (the ``"ce"`` baseline).

    Shape:
        logits ``(N, C)``, target ``(N,)`` -> scalar, or ``(N,)`` if ``reduction="none"``.
    """

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return weighted_cross_entropy(
            logits,
            target,
            self.weight,
            self.reduction,
            self.ignore_index,
            label_smoothing=self.label_smoothing,
        )


def inverse_frequency_cross_entropy(
    logits: Tensor,
    target: Tensor,
    class_counts: Sequence[int] | Tensor,
    power: float = 1.0,
    reduction: str = "mean",
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Inverse-frequency-weighted cross-entropy (IFW): :math:`w_c \propto n_c^{-p}`.

    ``power=1`` is IFW, ``power=0.5`` its square-root variant. Weights are
    normalised to sum to ``C`` (irrelevant under ``"mean"``).

    Args:
        logits: ``(N, C)``; target: ``(N,)``.
        class_counts: training samples per class ``(C,)``.
        power: exponent ``p >= 0``.
    """
    weight = inverse_frequency_weights(counts_tensor(class_counts, logits.shape[1]), power=power)
    return weighted_cross_entropy(
        logits,
        target,
        weight.to(logits.device),
        reduction,
        ignore_index,
        label_smoothing=label_smoothing,
    )


@register_loss("ifw", description="inverse-frequency-weighted CE", power=1.0)
@register_loss("ifw-sqrt", description="square-root inverse-frequency CE", power=0.5)
class InverseFrequencyLoss(ClassWeightedLoss):
    """IFW cross-entropy as a module; weights fixed at construction from ``class_counts``.

    See :func:`inverse_frequency_cross_entropy`.
    """

    def __init__(
        self,
        num_classes: int,
        class_counts: Sequence[int] | Tensor,
        power: float = 1.0,
        reduction: str = "mean",
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
    ) -> None:
        weight = inverse_frequency_weights(counts_tensor(class_counts, num_classes), power=power)
        super().__init__(
            num_classes, weight, reduction, ignore_index, label_smoothing=label_smoothing
        )
        self.power = power

    forward = CrossEntropyLoss.forward  # the same weighted CE, with the fixed IFW weights
