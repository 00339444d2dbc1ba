"""Softmax focal loss with per-class alpha (Lin et al., ICCV 2017)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from cdbloss.losses._common import (
    autocast_fp32,
    check_inputs,
    check_label_smoothing,
    check_reduction,
    is_soft,
    reduce_rows,
    reduce_weighted,
    soft_targets,
    spatial,
)
from cdbloss.losses.base import ClassWeightedLoss
from cdbloss.losses.registry import register_loss

__all__ = ["FocalLoss", "focal_loss", "focal_matrix", "focal_term"]


def _focal_weight(logp: Tensor, gamma: float) -> Tensor:
    r""":math:`(1 - p)^\gamma` from ``log p`` (exact near ``p = 1``, finite gradient at 0)."""
    one_minus_p = -torch.expm1(logp)  # 1 - p in [0, 1]
    if gamma < 1:
        one_minus_p = one_minus_p.clamp_min(torch.finfo(logp.dtype).tiny)
    return one_minus_p.pow(gamma)


def _check_gamma(gamma: float) -> None:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)):
        raise ValueError(f"gamma must be a float >= 0, got {gamma!r}")
    if not math.isfinite(gamma) or gamma < 0:
        raise ValueError(f"gamma must be a finite float >= 0, got {gamma!r}")


def focal_term(logits: Tensor, target: Tensor, gamma: float, ignore_index: int = -100) -> Tensor:
    r"""Unweighted per-sample focal loss ``(N,)``: :math:`-(1 - p_y)^\gamma \log p_y`.

    Computed from ``log_softmax`` so it stays finite at logits of ``+-1e4``;
    :math:`1 - p_y` comes from ``-expm1(log p_y)`` (exact near :math:`p_y = 1`), and
    for ``0 < gamma < 1`` it is clamped to the smallest normal number so the
    gradient of :math:`x^\gamma` at :math:`x = 0` is finite. Ignored samples give 0.
    """
    keep = target != ignore_index
    safe_target = torch.where(keep, target, torch.zeros_like(target))
    logp = F.log_softmax(logits, dim=1).gather(1, safe_target.unsqueeze(1)).squeeze(1)  # (N,)
    loss = -logp
    if gamma != 0:
        loss = _focal_weight(logp, gamma) * loss
    return torch.where(keep, loss, torch.zeros_like(loss))


def focal_matrix(logits: Tensor, gamma: float) -> Tensor:
    r"""The focal term of every class ``(N, C)``: :math:`-(1 - p_{ic})^\gamma \log p_{ic}`.

    What probability targets and label smoothing weigh: :math:`\ell_i = \sum_c
    w_c\, t_{ic}\, (-(1 - p_{ic})^\gamma \log p_{ic})` for a target distribution
    :math:`t_i`; with ``gamma=0`` this is ``F.cross_entropy`` with the same targets.
    """
    logp = F.log_softmax(logits, dim=1)  # (N, C)
    loss = -logp
    if gamma != 0:
        loss = _focal_weight(logp, gamma) * loss
    return loss


@spatial
def focal_loss(
    logits: Tensor,
    target: Tensor,
    alpha: Tensor | None = None,
    gamma: float = 2.0,
    reduction: str = "mean",
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Softmax focal loss with per-class :math:`\alpha`.

    .. math:: \ell_i = -\alpha_{y_i} (1 - p_{i,y_i})^{\gamma} \log p_{i,y_i},
        \qquad p_i = \operatorname{softmax}(z_i)

    ``gamma=0`` is (weighted) cross-entropy. Under ``"mean"`` the sum is
    divided by :math:`\sum_i \alpha_{y_i}` (by ``N`` when ``alpha`` is None), the
    meaning every loss in this package gives ``"mean"``.

    Probability targets :math:`t` (the logits' shape) and label smoothing
    :math:`\varepsilon` (:math:`t = (1-\varepsilon)\,\text{onehot}(y) + \varepsilon/C`)
    use :func:`focal_matrix`: :math:`\ell_i = \sum_c \alpha_c t_{ic}
    (-(1 - p_{ic})^\gamma \log p_{ic})`, reduced as ``F.cross_entropy`` reduces
    (``gamma=0`` equals it). Spatial logits ``(N, C, d1, ...)`` count each
    position as a sample. Half-precision logits under autocast are computed in
    float32.

    Args:
        logits: ``(N, C)`` or ``(N, C, d1, ...)``; target: ``(N,)`` /
            ``(N, d1, ...)`` int64, or probabilities of the logits' shape.
        alpha: ``(C,)`` per-class weights or ``None``.
        gamma: focusing parameter ``>= 0``.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` | ``"sample_mean"``.
        label_smoothing: :math:`\varepsilon` in ``[0, 1]``.

    Example:
        >>> import torch
        >>> z, y = torch.tensor([[2.0, 0.0]]), torch.tensor([0])
        >>> bool(focal_loss(z, y, gamma=2.0) < focal_loss(z, y, gamma=0.0))
        True
    """
    _check_gamma(gamma)
    check_reduction(reduction)
    all_kept = check_inputs(logits, target, alpha, ignore_index, name="focal_loss")
    logits = autocast_fp32(logits)
    soft = is_soft(logits, target)
    if not soft and label_smoothing == 0:
        per_sample = focal_term(logits, target, gamma, ignore_index)
        return reduce_weighted(per_sample, target, alpha, reduction, ignore_index, all_kept)
    smoothing = check_label_smoothing(label_smoothing)
    c = logits.shape[1]
    if soft:
        probs = target.to(logits.dtype)
        if smoothing:
            probs = probs * (1.0 - smoothing) + smoothing / c
    else:
        probs = soft_targets(target, c, smoothing, ignore_index, logits.dtype)
    if alpha is not None:
        probs = probs * alpha.to(logits.dtype)
    per_sample = (probs * focal_matrix(logits, gamma)).sum(dim=1)  # (N,)
    w = None if alpha is None else alpha.to(logits.dtype)
    return reduce_rows(per_sample, target, w, reduction, ignore_index, soft)


@register_loss("focal", description="softmax focal loss (Lin et al. 2017)")
class FocalLoss(ClassWeightedLoss):
    """Softmax focal loss as a module; ``alpha`` lives in the ``weight`` buffer.

    See :func:`focal_loss`.
    """

    def __init__(
        self,
        num_classes: int,
        gamma: float = 2.0,
        alpha: Tensor | None = None,
        reduction: str = "mean",
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
    ) -> None:
        _check_gamma(gamma)
        super().__init__(
            num_classes, alpha, reduction, ignore_index, label_smoothing=label_smoothing
        )
        self.gamma = float(gamma)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return focal_loss(
            logits,
            target,
            self.weight,
            self.gamma,
            self.reduction,
            self.ignore_index,
            self.label_smoothing,
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, gamma={self.gamma}"
