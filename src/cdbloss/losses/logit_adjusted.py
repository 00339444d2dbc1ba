"""Logit-adjusted cross-entropy (Menon et al., ICLR 2021) and Balanced Softmax (Ren et al., 2020)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from cdbloss.losses._common import check_inputs, class_bias, spatial
from cdbloss.losses.base import ClassWeightedLoss, counts_tensor
from cdbloss.losses.cross_entropy import weighted_cross_entropy
from cdbloss.losses.registry import register_loss

__all__ = [
    "BalancedSoftmaxLoss",
    "LogitAdjustedLoss",
    "balanced_softmax_loss",
    "log_prior",
    "logit_adjusted_loss",
]


def log_prior(class_counts: Sequence[int] | Tensor, num_classes: int) -> Tensor:
    r""":math:`\log \pi_c = \log (n_c / \sum_k n_k)` as float64 ``(C,)``.

    A class with no training samples would give :math:`-\infty`; it is given the
    log-prior of half a sample instead, so the adjusted logits stay finite.
    """
    counts = counts_tensor(class_counts, num_classes)
    if float(counts.sum()) <= 0:
        raise ValueError("class_counts must not be all zero")
    counts = torch.where(counts > 0, counts, torch.full_like(counts, 0.5))
    return torch.log(counts / counts.sum())


@spatial
def logit_adjusted_loss(
    logits: Tensor,
    target: Tensor,
    class_counts: Sequence[int] | Tensor,
    tau: float = 1.0,
    weight: Tensor | None = None,
    reduction: str = "mean",
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Logit-adjusted cross-entropy: cross-entropy on :math:`z + \tau \log \pi`.

    .. math:: \ell_i = -\log \frac{e^{z_{y_i} + \tau \log \pi_{y_i}}}
        {\sum_k e^{z_k + \tau \log \pi_k}}

    At test time the raw logits :math:`z` are used (the adjustment is a
    training-time loss). ``tau=1`` is Balanced Softmax.

    Args:
        logits: ``(N, C)``; target: ``(N,)``.
        class_counts: training samples per class ``(C,)`` (the prior :math:`\pi`).
        tau: adjustment strength (Menon et al. use 1).
        weight: optional ``(C,)`` class weights.
        label_smoothing: :math:`\varepsilon` in ``[0, 1]``.

    Spatial logits and probability targets are taken as by
    :func:`~cdbloss.losses.weighted_cross_entropy` (the prior shifts the logits only).
    """
    if not math.isfinite(tau):
        raise ValueError(f"tau must be finite, got {tau!r}")
    check_inputs(logits, target, weight, ignore_index, name="logit_adjusted_loss")
    prior = log_prior(class_counts, logits.shape[1])
    adjusted = logits + tau * prior.to(device=logits.device, dtype=logits.dtype)  # (N, C)
    return weighted_cross_entropy(
        adjusted, target, weight, reduction, ignore_index, label_smoothing=label_smoothing
    )


def balanced_softmax_loss(
    logits: Tensor,
    target: Tensor,
    class_counts: Sequence[int] | Tensor,
    reduction: str = "mean",
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Balanced Softmax (Ren et al., NeurIPS 2020): CE on :math:`z + \log n`.

    Equal to :func:`logit_adjusted_loss` with ``tau=1`` (adding :math:`\log n_c`
    or :math:`\log \pi_c` differs by a constant that softmax cancels).
    """
    return logit_adjusted_loss(
        logits, target, class_counts, 1.0, None, reduction, ignore_index, label_smoothing
    )


@register_loss("logit-adjusted", description="logit-adjusted CE (Menon et al. 2021)")
class LogitAdjustedLoss(ClassWeightedLoss):
    """Logit-adjusted cross-entropy as a module. See :func:`logit_adjusted_loss`."""

    log_prior: Tensor

    def __init__(
        self,
        num_classes: int,
        class_counts: Sequence[int] | Tensor,
        tau: float = 1.0,
        reduction: str = "mean",
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(
            num_classes, None, reduction, ignore_index, label_smoothing=label_smoothing
        )
        if not math.isfinite(tau):
            raise ValueError(f"tau must be finite, got {tau!r}")
        self.tau = float(tau)
        self.register_buffer("log_prior", log_prior(class_counts, num_classes))
        self.class_counts = counts_tensor(class_counts, num_classes).tolist()

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        adjusted = class_bias(logits, self.tau * self.log_prior.to(logits.dtype))  # (N, C, ...)
        return weighted_cross_entropy(
            adjusted,
            target,
            self.weight,
            self.reduction,
            self.ignore_index,
            label_smoothing=self.label_smoothing,
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, tau={self.tau}"


@register_loss("balanced-softmax", description="Balanced Softmax (Ren et al. 2020)")
class BalancedSoftmaxLoss(LogitAdjustedLoss):
    """Balanced Softmax as a module: :class:`LogitAdjustedLoss` with ``tau=1``."""

    def __init__(
        self,
        num_classes: int,
        class_counts: Sequence[int] | Tensor,
        reduction: str = "mean",
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(num_classes, class_counts, 1.0, reduction, ignore_index, label_smoothing)
