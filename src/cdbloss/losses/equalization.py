"""Softmax equalization loss (Tan et al., CVPR 2020), the form for image classification."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from cdbloss.losses._common import check_inputs, refuse_soft, spatial
from cdbloss.losses.base import ClassWeightedLoss, counts_tensor
from cdbloss.losses.cross_entropy import weighted_cross_entropy
from cdbloss.losses.registry import register_loss

__all__ = ["EqualizationLoss", "equalization_loss", "tail_mask"]


def tail_mask(class_counts: Sequence[int] | Tensor, threshold: float | None = None) -> Tensor:
    r""":math:`T_\lambda(f_c) = [f_c < \lambda]` with :math:`f_c = n_c / \sum_k n_k`, as a bool ``(C,)``.

    ``threshold=None`` uses :math:`\lambda = 1 / C`: a class is "tail" when it
    has fewer samples than the average class (no class is tail on balanced data).
    """
    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    if counts.dim() != 1 or counts.numel() == 0 or bool((counts < 0).any()):
        raise ValueError(
            f"class_counts must be a non-empty (C,) vector >= 0, got {counts.tolist()}"
        )
    if float(counts.sum()) <= 0:
        raise ValueError("class_counts must not be all zero")
    lam = 1.0 / counts.numel() if threshold is None else threshold
    if not (0.0 <= lam <= 1.0):
        raise ValueError(f"threshold must lie in [0, 1] (a class frequency), got {threshold!r}")
    return (counts / counts.sum()) < lam


def equalization_loss(
    logits: Tensor,
    target: Tensor,
    class_counts: Sequence[int] | Tensor,
    threshold: float | None = None,
    gamma: float = 0.9,
    generator: torch.Generator | None = None,
    weight: Tensor | None = None,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> Tensor:
    r"""Softmax equalization loss (SEQL).

    .. math::
        \ell_i = -\log \frac{e^{z_{y_i}}}{\sum_k \tilde w_{ik} e^{z_k}}, \qquad
        \tilde w_{ik} = 1 - \beta_{ik}\, T_\lambda(f_k)\, (1 - [k = y_i])

    with :math:`\beta_{ik} \sim \text{Bernoulli}(\gamma)`. The negative (non-target)
    logits of tail classes are left out of the softmax with probability
    ``gamma``, so tail classes are not pushed down by every head-class sample.

    Args:
        logits: ``(N, C)``; target: ``(N,)``.
        class_counts: training samples per class ``(C,)``.
        threshold: :math:`\lambda`, a class-frequency threshold; ``None`` = ``1/C``.
        gamma: probability that :math:`\beta = 1`; ``gamma=0`` is plain CE,
            ``gamma=1`` removes tail negatives deterministically.
        generator: random generator for :math:`\beta` (default: torch's global RNG).
        weight: optional ``(C,)`` class weights.

    Spatial logits ``(N, C, d1, ...)`` count each position as a sample.
    Probability targets and label smoothing are refused: which logits are
    dropped depends on the one target class (and a smoothed target would put
    mass on a dropped class, an infinite loss).
    """
    if not (0.0 <= gamma <= 1.0) or not math.isfinite(gamma):
        raise ValueError(f"gamma must be a probability in [0, 1], got {gamma!r}")
    if not isinstance(logits, Tensor) or logits.dim() < 2:
        check_inputs(logits, target, weight, ignore_index, name="equalization_loss")
    tail = tail_mask(counts_tensor(class_counts, logits.shape[1]), threshold).to(logits.device)
    return _seql(logits, target, tail, gamma, generator, weight, reduction, ignore_index)


#: why EQL takes class indices only
_EQL_INDEX = "EQL drops the tail classes' negative logits, which needs the one target class"


@spatial
def _seql(
    logits: Tensor,
    target: Tensor,
    tail: Tensor,
    gamma: float,
    generator: torch.Generator | None,
    weight: Tensor | None,
    reduction: str,
    ignore_index: int,
) -> Tensor:
    refuse_soft(logits, target, "equalization_loss", _EQL_INDEX)
    check_inputs(logits, target, weight, ignore_index, name="equalization_loss")
    n, c = logits.shape
    safe_target = torch.where(target != ignore_index, target, torch.zeros_like(target))
    is_target = torch.zeros(n, c, dtype=torch.bool, device=logits.device)
    is_target.scatter_(1, safe_target.unsqueeze(1), True)  # (N, C)
    if gamma >= 1.0:
        beta = torch.ones(n, c, dtype=torch.bool, device=logits.device)
    elif gamma <= 0.0:
        beta = torch.zeros(n, c, dtype=torch.bool, device=logits.device)
    else:
        dev = generator.device if generator is not None else logits.device
        beta = (torch.rand(n, c, generator=generator, device=dev) < gamma).to(logits.device)
    drop = beta & tail.unsqueeze(0) & ~is_target  # (N, C): w~ = 0
    # w~ = 0 removes e^{z_k} from the denominator: the same as a logit of -inf.
    masked = logits.masked_fill(drop, float("-inf"))
    return weighted_cross_entropy(masked, target, weight, reduction, ignore_index)


@register_loss("eql", description="softmax equalization loss (Tan et al. 2020)")
class EqualizationLoss(ClassWeightedLoss):
    """Softmax equalization loss as a module. See :func:`equalization_loss`.

    The Bernoulli draws use torch's global RNG (seed it for repeatable runs).
    """

    tail: Tensor

    def __init__(
        self,
        num_classes: int,
        class_counts: Sequence[int] | Tensor,
        threshold: float | None = None,
        gamma: float = 0.9,
        reduction: str = "mean",
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(num_classes, None, reduction, ignore_index)
        if label_smoothing != 0:
            raise ValueError(
                f"EqualizationLoss does not take label_smoothing (got {label_smoothing!r}): "
                f"{_EQL_INDEX}, and a smoothed target on a dropped class has infinite loss"
            )
        if not (0.0 <= gamma <= 1.0) or not math.isfinite(gamma):
            raise ValueError(f"gamma must be a probability in [0, 1], got {gamma!r}")
        self.register_buffer("tail", tail_mask(counts_tensor(class_counts, num_classes), threshold))
        self.class_counts = counts_tensor(class_counts, num_classes).tolist()
        self.threshold, self.gamma = threshold, float(gamma)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return _seql(
            logits,
            target,
            self.tail,
            self.gamma,
            None,
            self.weight,
            self.reduction,
            self.ignore_index,
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, threshold={self.threshold}, gamma={self.gamma}"
