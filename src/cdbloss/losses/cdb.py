"""The Class-wise Difficulty-Balanced loss (Sinha, Ohashi & Nakamura, ACCV 2020)."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from cdbloss.difficulty import ClassDifficulty
from cdbloss.losses._common import check_reduction
from cdbloss.losses.base import ClassWeightedLoss
from cdbloss.losses.cross_entropy import weighted_cross_entropy
from cdbloss.losses.focal import _check_gamma, focal_loss
from cdbloss.weighting import (
    TauSpec,
    _as_accuracy,
    cdb_weights,
    check_difficulty_options,
    check_unit_interval,
    resolve_tau,
)

__all__ = ["BASES", "BaseWeightedLoss", "CDBLoss", "cdb_cross_entropy", "cdb_loss"]

Base = Literal["ce", "focal"]
BASES: tuple[str, ...] = ("ce", "focal")


def cdb_loss(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None,
    base: str = "ce",
    gamma: float = 2.0,
    reduction: str = "mean",
    ignore_index: int = -100,
    *,
    weight_positive: bool | None = None,
) -> Tensor:
    r"""CDB loss for given class weights (from :func:`cdbloss.cdb_weights`).

    ``base="ce"`` (CDB-CE, paper Eq. 5):

    .. math:: \ell_i = -w_{y_i} \log \operatorname{softmax}(z_i)_{y_i}

    ``base="focal"`` (CDB-focal): :math:`\ell_i = -w_{y_i} (1 - p_{i,y_i})^\gamma \log p_{i,y_i}`.

    Args:
        logits: ``(N, C)``; target: ``(N,)`` int64.
        weight: ``(C,)`` CDB weights, or ``None`` (all ones: the first epoch).
        base: ``"ce"`` or ``"focal"``.
        gamma: focal exponent (``base="focal"`` only).
        reduction: ``"mean"`` (``sum w_y l / sum w_y``, as
            ``nn.CrossEntropyLoss(weight=w)``; the default because it keeps
            training alive at extreme imbalance), ``"sample_mean"`` (``sum w_y l / N``,
            the authors' CIFAR code), ``"sum"`` or ``"none"``.
        weight_positive: performance hint for ``base="ce"``, see
            :func:`~cdbloss.losses.cross_entropy.weighted_cross_entropy`.
    """
    if base == "ce":
        return weighted_cross_entropy(
            logits, target, weight, reduction, ignore_index, weight_positive=weight_positive
        )
    if base == "focal":
        return focal_loss(logits, target, weight, gamma, reduction, ignore_index)
    raise ValueError(f"base must be one of {BASES}, got {base!r}")


def cdb_cross_entropy(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> Tensor:
    """CDB-CE: :func:`cdb_loss` with ``base="ce"``."""
    return cdb_loss(logits, target, weight, "ce", reduction=reduction, ignore_index=ignore_index)


class BaseWeightedLoss(ClassWeightedLoss):
    """Cross-entropy or softmax focal loss with the per-class weights of the ``weight`` buffer.

    What CDB and class-balanced losses share: :func:`cdb_loss` over the buffer.
    Subclasses decide where the weights come from (fixed from class counts,
    or updated from validation accuracy).
    """

    def __init__(
        self,
        num_classes: int,
        weight: Tensor | None,
        base: str,
        gamma: float,
        reduction: str,
        ignore_index: int,
    ) -> None:
        if base not in BASES:
            raise ValueError(f"base must be one of {BASES}, got {base!r}")
        _check_gamma(gamma)
        super().__init__(num_classes, weight, reduction, ignore_index)
        self.base = base
        self.gamma = float(gamma)

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
        )


class CDBLoss(BaseWeightedLoss):
    r"""Class-wise Difficulty-Balanced loss as a module.

    Holds the current class weights in the buffer ``weight`` (so they are saved
    and restored with ``state_dict()``). They start uniform (the first epoch is
    plain cross-entropy, as in the authors' code) and change only through
    :meth:`update_weights`, called after each validation pass:

    .. math:: w_c = (1 - A_c)^{\tau}, \quad \tau = \frac{2}{1 + e^{-b}}, \quad
        b = \frac{\max A}{\min A + \epsilon} - 1 \ (\text{dynamic})

    rescaled to sum to ``C`` when ``normalize``.

    With ``momentum = m > 0`` (not in the paper) the weights come from an
    exponential moving average of the validation accuracies instead of the
    last epoch's alone, :math:`\bar A_c \leftarrow m \bar A_c + (1 - m) A_c`
    (the first update takes :math:`A_c` as it is), so one epoch's swing moves
    the weights by only ``1 - m`` of it. ``m = 0`` is the paper's rule.

    With ``min_difficulty = delta > 0`` (not in the paper) the difficulty is
    floored, :math:`d_c = \max(1 - A_c, \delta)`, so a class that is perfect
    on validation keeps a small weight instead of dropping out of the loss.
    ``solved_accuracy = s < 1`` (not in the paper) goes the other way: a class
    with :math:`A_c \ge s` gets weight 0 as if it were perfect.

    Args:
        num_classes: ``C``.
        tau: float ``>= 0``, ``"dynamic"`` (paper) or ``"dynamic-sigmoid"`` (authors' CIFAR code).
        eps: ``epsilon`` of the dynamic tau (paper 1e-4; authors' code 0.01).
        normalize: rescale the weights to sum to ``C``.
        base: ``"ce"`` (CDB-CE) or ``"focal"`` (CDB-focal, the weight as per-class alpha).
        gamma: focal exponent for ``base="focal"``.
        reduction: ``"mean"`` | ``"sample_mean"`` | ``"sum"`` | ``"none"``
            (see :func:`cdb_loss`).
        ignore_index: targets to skip.
        momentum: ``m`` in ``[0, 1)``, the weight of the past in the moving
            average of the accuracies (0: the paper, no averaging).
        min_difficulty: floor ``delta`` in ``[0, 1)`` on the difficulty,
            ``d_c = max(1 - A_c, delta)`` (0: the paper, where a class that is
            perfect on validation gets weight 0; see :func:`cdbloss.cdb_weights`).
        solved_accuracy: in ``(0, 1]``; a class at or above this validation
            accuracy gets weight 0 (1.0: the paper, only a perfect class).

    Shape:
        logits ``(N, C)``, target ``(N,)`` -> scalar, or ``(N,)`` for ``reduction="none"``.

    Example:
        >>> import torch
        >>> from cdbloss import CDBLoss, ClassDifficulty
        >>> loss_fn, tracker = CDBLoss(num_classes=2), ClassDifficulty(num_classes=2)
        >>> tracker.update(torch.tensor([0, 0, 0, 1]), torch.tensor([0, 0, 1, 1]))
        >>> loss_fn.update_weights(tracker)  # class 1 is harder: larger weight
        tensor([0., 2.])
    """

    tau_value: Tensor
    accuracy: Tensor

    def __init__(
        self,
        num_classes: int,
        tau: TauSpec = "dynamic",
        eps: float = 1e-4,
        normalize: bool = True,
        base: str = "ce",
        gamma: float = 2.0,
        reduction: str = "mean",
        ignore_index: int = -100,
        momentum: float = 0.0,
        min_difficulty: float = 0.0,
        solved_accuracy: float = 1.0,
    ) -> None:
        check_reduction(reduction)
        check_unit_interval(momentum, "momentum")
        check_difficulty_options(min_difficulty, solved_accuracy)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise ValueError(f"eps must be a float > 0, got {eps!r}")
        resolve_tau(tau, [1.0], eps)  # validates tau before any work
        super().__init__(num_classes, None, base, gamma, reduction, ignore_index)
        self.tau = tau
        self.eps = float(eps)
        self.normalize = normalize
        self.momentum = float(momentum)
        self.min_difficulty = float(min_difficulty)
        self.solved_accuracy = float(solved_accuracy)
        # The last tau and the accuracy the weights came from (the moving average when
        # momentum > 0), for logging and for that average; NaN before the first update.
        self.register_buffer("tau_value", torch.tensor(math.nan, dtype=torch.float64))
        self.register_buffer("accuracy", torch.full((num_classes,), math.nan, dtype=torch.float64))

    @torch.no_grad()
    def update_weights(self, accuracy: Tensor | ClassDifficulty) -> Tensor:
        """Set the weights from per-class validation accuracy ``(C,)`` or a tracker.

        With a :class:`ClassDifficulty`, its ``compute()`` is used (summed over
        ranks under ``torch.distributed``, so every rank gets the same weights).
        With ``momentum > 0`` the accuracy is first folded into the moving
        average held in the ``accuracy`` buffer; a class that is NaN on either
        side (no validation samples) takes the side that is not.

        Returns:
            The new weights ``(C,)`` (a copy).
        """
        acc = (
            accuracy.compute()
            if isinstance(accuracy, ClassDifficulty)
            else torch.as_tensor(accuracy)
        )
        if acc.dim() != 1 or acc.shape[0] != self.num_classes:
            raise ValueError(
                f"accuracy must have shape (C,) = ({self.num_classes},), got {tuple(acc.shape)}"
            )
        acc = acc.detach().to(device="cpu", dtype=torch.float64)
        if self.momentum > 0:
            _as_accuracy(acc)  # reject a bad value before it enters the average
            prev = self.accuracy.to(device="cpu")
            mixed = self.momentum * prev + (1.0 - self.momentum) * acc
            acc = torch.where(prev.isnan(), acc, torch.where(acc.isnan(), prev, mixed))
        weights = cdb_weights(
            acc, self.tau, self.eps, self.normalize, self.min_difficulty, self.solved_accuracy
        )
        self.weight.copy_(weights)
        self.accuracy.copy_(acc)
        self.tau_value.fill_(resolve_tau(self.tau, acc, self.eps))
        return self.weight.detach().clone()

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, tau={self.tau!r}, eps={self.eps}, "
            f"normalize={self.normalize}, base={self.base!r}"
            + (f", momentum={self.momentum}" if self.momentum else "")
            + (f", min_difficulty={self.min_difficulty}" if self.min_difficulty else "")
            + (f", solved_accuracy={self.solved_accuracy}" if self.solved_accuracy < 1 else "")
        )
