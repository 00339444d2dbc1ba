"""LDAM loss and the deferred re-weighting (DRW) schedule (Cao et al., NeurIPS 2019)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from cdbloss.losses._common import check_inputs, check_number, refuse_soft, spatial
from cdbloss.losses.base import ClassWeightedLoss, counts_tensor
from cdbloss.losses.cross_entropy import weighted_cross_entropy
from cdbloss.losses.registry import register_loss
from cdbloss.weighting import class_balanced_weights

__all__ = ["LDAMLoss", "drw_weights", "ldam_loss", "ldam_margins"]


def ldam_margins(class_counts: Sequence[int] | Tensor, max_margin: float = 0.5) -> Tensor:
    r"""Label-distribution-aware margins: :math:`\Delta_c \propto n_c^{-1/4}`, largest = ``max_margin``.

    .. math:: \Delta_c = \text{max\_margin} \cdot \frac{n_c^{-1/4}}{\max_k n_k^{-1/4}}

    A class with zero samples is treated as having one (the largest margin).

    Returns:
        float64 ``(C,)``.
    """
    counts = margin_counts(class_counts, max_margin)
    raw = counts.pow(-0.25)
    return raw * (max_margin / raw.max())


def margin_counts(class_counts: Sequence[int] | Tensor, max_margin: float) -> Tensor:
    """Checked counts for a margin rule: float64 ``(C,)``, a class with none taken as one.

    Raises ``ValueError`` for counts that are not a non-empty ``(C,)`` vector ``>= 0`` or a
    ``max_margin`` that is not a finite float ``> 0``.
    """
    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    if counts.dim() != 1 or counts.numel() == 0 or bool((counts < 0).any()):
        raise ValueError(
            f"class_counts must be a non-empty (C,) vector >= 0, got {counts.tolist()}"
        )
    check_number("max_margin", max_margin, positive=True)
    return counts.clamp_min(1.0)


def drw_weights(
    class_counts: Sequence[int] | Tensor, epoch: int, start_epoch: int, beta: float = 0.9999
) -> Tensor:
    """Deferred re-weighting: all ones before ``start_epoch``, class-balanced weights from it on.

    Cao et al. switch at epoch 160 of 200 with ``beta=0.9999`` (weights
    rescaled to sum to ``C``). Epochs count from 0.

    Returns:
        float32 ``(C,)``.
    """
    counts = torch.as_tensor(class_counts)
    if epoch < start_epoch:
        return torch.ones(counts.numel())
    return class_balanced_weights(counts, beta=beta)


@spatial
def ldam_loss(
    logits: Tensor,
    target: Tensor,
    margins: Tensor,
    scale: float = 30.0,
    weight: Tensor | None = None,
    reduction: str = "mean",
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""LDAM: cross-entropy after subtracting the class margin from the target logit and scaling.

    .. math:: \ell_i = -\log \frac{e^{s (z_{y_i} - \Delta_{y_i})}}
        {e^{s (z_{y_i} - \Delta_{y_i})} + \sum_{k \ne y_i} e^{s z_k}}

    Cao et al. apply it to cosine logits in ``[-1, 1]`` (a normalised linear
    head: :class:`cdbloss.lab.models.layers.NormedLinear`, e.g. ``resnet32``
    with ``normed_linear=True``) with ``s = 30``.

    Args:
        logits: ``(N, C)``; target: ``(N,)``.
        margins: ``(C,)`` from :func:`ldam_margins`.
        scale: ``s > 0``.
        weight: optional ``(C,)`` class weights (DRW).
        label_smoothing: :math:`\varepsilon` of the cross-entropy on the shifted logits.

    Spatial logits ``(N, C, d1, ...)`` count each position as a sample.
    Probability targets are refused: the margin belongs to one target class.
    """
    refuse_soft(logits, target, "ldam_loss", "LDAM subtracts the margin of the one target class")
    check_inputs(logits, target, weight, ignore_index, name="ldam_loss")
    if margins.dim() != 1 or margins.shape[0] != logits.shape[1]:
        raise ValueError(
            f"margins must have shape (C,) = ({logits.shape[1]},), got {tuple(margins.shape)}"
        )
    check_number("scale", scale, positive=True)
    keep = target != ignore_index
    safe_target = torch.where(keep, target, torch.zeros_like(target))
    m = margins.to(device=logits.device, dtype=logits.dtype)[safe_target] * keep  # (N,)
    onehot = torch.zeros_like(logits).scatter_(1, safe_target.unsqueeze(1), 1.0)  # (N, C)
    shifted = scale * (logits - onehot * m.unsqueeze(1))  # (N, C)
    return weighted_cross_entropy(
        shifted, target, weight, reduction, ignore_index, label_smoothing=label_smoothing
    )


@register_loss("ldam", description="LDAM (Cao et al. 2019)")
@register_loss("ldam-drw", description="LDAM with deferred re-weighting", drw_epoch=160)
class LDAMLoss(ClassWeightedLoss):
    """LDAM as a module, with optional deferred re-weighting (LDAM-DRW).

    The margins are fixed from ``class_counts``; the class weights in the
    ``weight`` buffer are ones until :meth:`set_epoch` reaches ``drw_epoch``,
    then the class-balanced weights with ``drw_beta``. Call ``set_epoch(e)`` at
    the start of every epoch (the training engine does).

    Args:
        num_classes: ``C``.
        class_counts: training samples per class ``(C,)``.
        max_margin: the largest margin (0.5 in Cao et al.).
        scale: ``s`` (30 in Cao et al.).
        drw_epoch: epoch at which re-weighting starts (160 of 200 in Cao et
            al.); ``None`` for plain LDAM.
        drw_beta: ``beta`` of the class-balanced weights after the switch.
    """

    margins: Tensor

    def __init__(
        self,
        num_classes: int,
        class_counts: Sequence[int] | Tensor,
        max_margin: float = 0.5,
        scale: float = 30.0,
        drw_epoch: int | None = None,
        drw_beta: float = 0.9999,
        reduction: str = "mean",
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(
            num_classes, None, reduction, ignore_index, label_smoothing=label_smoothing
        )
        counts = counts_tensor(class_counts, num_classes)
        check_number("scale", scale, positive=True)
        if drw_epoch is not None and (isinstance(drw_epoch, bool) or drw_epoch < 0):
            raise ValueError(f"drw_epoch must be an int >= 0 or None, got {drw_epoch!r}")
        self.register_buffer("margins", ldam_margins(counts, max_margin))
        self.class_counts = counts.tolist()
        self.scale = float(scale)
        self.drw_epoch = drw_epoch
        self.drw_beta = drw_beta
        class_balanced_weights(counts, beta=drw_beta)  # validate beta now, not at epoch 160

    def set_epoch(self, epoch: int) -> None:
        """Apply the DRW schedule for ``epoch`` (counted from 0)."""
        if self.drw_epoch is not None:
            self.set_weight(drw_weights(self.class_counts, epoch, self.drw_epoch, self.drw_beta))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return ldam_loss(
            logits,
            target,
            self.margins,
            self.scale,
            self.weight,
            self.reduction,
            self.ignore_index,
            self.label_smoothing,
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale={self.scale}, drw_epoch={self.drw_epoch}"
