r"""Multi-label (sigmoid) losses: BCE, focal BCE, class-balanced BCE, the
Distribution-Balanced loss, the Asymmetric Loss and CDB over BCE and focal BCE.

Every loss here takes ``logits (N, C)`` and ``target (N, C)`` with entries in
``{0, 1}``, or ``ignore_index`` for an unknown label of a sample (skipped).
With :math:`p = \sigma(z)` and per-label weights :math:`w^+_c` (positive term)
and :math:`w^-_c` (negative term), the elementwise loss of the BCE family is

.. math::
    \ell_{ic} = -\,w^+_c\, y_{ic}\, (1 - p_{ic})^{\gamma} \log p_{ic}
                -\,w^-_c\, (1 - y_{ic})\, p_{ic}^{\gamma} \log (1 - p_{ic})

(``gamma = 0``: weighted BCE). Reductions: ``"none"`` gives ``(N, C)`` (0 at
unknown entries), ``"sum"`` the sum, ``"mean"`` the sum over the number of
known entries (``F.binary_cross_entropy_with_logits``'s mean when nothing is
unknown). See docs/losses.md, "Multi-label losses", for every formula.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cdbloss.losses.base import counts_tensor
from cdbloss.losses.cdb import WeightingAccess, weighting_from
from cdbloss.losses.focal import _check_gamma
from cdbloss.losses.registry import register_loss
from cdbloss.multilabel import MEASURES, MultiLabelDifficulty, check_multilabel_target
from cdbloss.weighting import TauSpec, class_balanced_weights

__all__ = [
    "ML_REDUCTIONS",
    "AsymmetricLoss",
    "BCELoss",
    "ClassBalancedBCELoss",
    "DistributionBalancedLoss",
    "FocalBCELoss",
    "MultiLabelCDBLoss",
    "MultiLabelLoss",
    "asymmetric_loss",
    "binary_focal_loss",
    "distribution_balanced_loss",
    "rebalanced_weights",
]

ML_REDUCTIONS: tuple[str, ...] = ("none", "mean", "sum")
Counts = Sequence[int] | Tensor


def _checked(logits: Tensor, target: Tensor, ignore_index: int, name: str) -> tuple[Tensor, Tensor]:
    """``(y, keep)``: the target as floats (0 at unknown entries) and the mask of known ones."""
    if not isinstance(logits, Tensor) or logits.dim() != 2 or not logits.is_floating_point():
        shape = getattr(logits, "shape", type(logits).__name__)
        raise ValueError(f"{name}: logits must be a float tensor (N, C), got {shape}")
    keep = check_multilabel_target(target, tuple(logits.shape), ignore_index)  # type: ignore[arg-type]
    y = torch.where(keep, target, torch.zeros_like(target)).to(logits.dtype)
    return y, keep


def _reduce(loss: Tensor, keep: Tensor, reduction: str) -> Tensor:
    loss = torch.where(keep, loss, torch.zeros_like(loss))
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() / keep.sum().clamp_min(1).to(loss.dtype)
    raise ValueError(f"reduction must be one of {ML_REDUCTIONS}, got {reduction!r}")


def _term_weight(weight: Tensor | None, like: Tensor) -> Tensor | float:
    if weight is None:
        return 1.0
    if weight.shape != (like.shape[1],):
        raise ValueError(
            f"label weights must have shape (C,) = ({like.shape[1]},), got {tuple(weight.shape)}"
        )
    return weight.to(device=like.device, dtype=like.dtype)


def binary_focal_loss(
    logits: Tensor,
    target: Tensor,
    gamma: float = 0.0,
    weight_pos: Tensor | None = None,
    weight_neg: Tensor | None = None,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> Tensor:
    r"""Weighted (focal) BCE over ``(N, C)``: the formula of the module docstring.

    Args:
        logits: ``(N, C)`` float.
        target: ``(N, C)`` in ``{0, 1}`` or ``ignore_index``.
        gamma: focal exponent :math:`\gamma \ge 0` (0: BCE).
        weight_pos: :math:`w^+` ``(C,)`` or ``None`` (ones).
        weight_neg: :math:`w^-` ``(C,)`` or ``None`` (ones).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        ignore_index: target value of unknown entries.
    """
    _check_gamma(gamma)
    y, keep = _checked(logits, target, ignore_index, "binary_focal_loss")
    pos = F.softplus(-logits)  # -log p
    neg = F.softplus(logits)  # -log(1 - p)
    if gamma > 0:
        pos = pos * torch.sigmoid(-logits).pow(gamma)
        neg = neg * torch.sigmoid(logits).pow(gamma)
    wp, wn = _term_weight(weight_pos, logits), _term_weight(weight_neg, logits)
    return _reduce(wp * y * pos + wn * (1.0 - y) * neg, keep, reduction)


def asymmetric_loss(
    logits: Tensor,
    target: Tensor,
    gamma_pos: float = 0.0,
    gamma_neg: float = 4.0,
    clip: float = 0.05,
    eps: float = 1e-8,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> Tensor:
    r"""The Asymmetric Loss (Ridnik et al., ICCV 2021).

    .. math::
        p_m = \max(p - m, 0), \qquad
        \ell = -\,y (1 - p)^{\gamma_+} \log p \;-\; (1 - y)\, p_m^{\gamma_-} \log (1 - p_m)

    with the probability margin ``clip`` = :math:`m` (0: no shift) and the
    logarithms clamped at ``eps`` as in the authors' code.
    """
    _check_gamma(gamma_pos)
    _check_gamma(gamma_neg)
    if not 0.0 <= clip < 1.0:
        raise ValueError(f"clip must lie in [0, 1), got {clip!r}")
    y, keep = _checked(logits, target, ignore_index, "asymmetric_loss")
    p = torch.sigmoid(logits)
    p_m = (p - clip).clamp_min(0.0)
    pos = -torch.log(p.clamp_min(eps)) * (1.0 - p).pow(gamma_pos)
    neg = -torch.log((1.0 - p_m).clamp_min(eps)) * p_m.pow(gamma_neg)
    return _reduce(y * pos + (1.0 - y) * neg, keep, reduction)


def rebalanced_weights(
    target: Tensor, class_counts: Tensor, alpha: float = 0.1, beta: float = 10.0, mu: float = 0.2
) -> Tensor:
    r"""The Distribution-Balanced loss's re-balanced weights ``(N, C)`` (Wu et al. 2020, Eq. 3-5).

    .. math::
        r_{ic} = \frac{1 / n_c}{\sum_{j:\, y_{ij} = 1} 1 / n_j}, \qquad
        \hat r_{ic} = \alpha + \sigma\big(\beta\, (r_{ic} - \mu)\big)

    :math:`r_{ic}` is the ratio of the class-level to the instance-level
    sampling probability of class-aware re-sampling; a sample with no positive
    label (denominator 0) has :math:`r = \infty`, :math:`\hat r = \alpha + 1`.
    ``target`` is the 0/1 target (unknown entries already 0).
    """
    inv = 1.0 / class_counts.to(target).clamp_min(1.0)  # (C,)
    rate = (target * inv).sum(dim=1, keepdim=True)  # (N, 1)
    r = torch.where(rate > 0, inv / rate.clamp_min(1e-30), torch.full_like(rate, math.inf))
    return alpha + torch.sigmoid(beta * (r - mu))


def distribution_balanced_loss(
    logits: Tensor,
    target: Tensor,
    class_counts: Tensor,
    num_samples: int,
    alpha: float = 0.1,
    beta: float = 10.0,
    mu: float = 0.2,
    kappa: float = 0.05,
    lam: float = 2.0,
    gamma: float = 2.0,
    balance: float = 2.0,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> Tensor:
    r"""The Distribution-Balanced loss (Wu et al., ECCV 2020): re-balanced weights plus
    negative-tolerant regularisation (NTR), with the focal term of the authors' code.

    .. math::
        s_{ic} = z_{ic} + \kappa\, \hat b_c, \quad \hat b_c = -\log\Big(\frac{N}{n_c} - 1\Big),
        \qquad
        \ell_{ic} = \hat r_{ic}\Big[\, y\, \log(1 + e^{-s}) + \frac{1 - y}{\lambda}
            \log(1 + e^{\lambda s}) \Big]\, (1 - q_{ic})^{\gamma}\, \beta_f

    with :math:`\hat r` from :func:`rebalanced_weights`, :math:`q_{ic}` the
    probability the (scaled) logit gives the true value, ``gamma`` the focal
    exponent (0: none) and ``balance`` = :math:`\beta_f` (2 in the authors'
    code). :math:`\hat b_c` is the prior log-odds of class ``c`` in the
    ``num_samples`` = :math:`N` training samples; the shift makes rare labels'
    logits fit lower, so their raw logits come out higher.
    """
    _check_gamma(gamma)
    if lam <= 0:
        raise ValueError(f"lam (the negative scale lambda) must be > 0, got {lam!r}")
    y, keep = _checked(logits, target, ignore_index, "distribution_balanced_loss")
    counts = class_counts.to(logits).clamp(1.0, max(num_samples - 1.0, 1.0))
    bias = -torch.log(num_samples / counts - 1.0)
    s = logits + kappa * bias
    s = torch.where(y > 0, s, lam * s)
    weight = rebalanced_weights(y, class_counts, alpha, beta, mu)
    weight = torch.where(y > 0, weight, weight / lam)
    bce = F.binary_cross_entropy_with_logits(s, y, reduction="none")
    if gamma > 0:
        bce = bce * (1.0 - torch.exp(-bce)).pow(gamma) * balance
    return _reduce(weight * bce, keep, reduction)


class MultiLabelLoss(nn.Module):
    """Base of the multi-label loss modules: ``C``, the reduction and ``ignore_index``.

    Shape:
        logits ``(N, C)``, target ``(N, C)`` -> scalar, or ``(N, C)`` for ``reduction="none"``.
    """

    def __init__(self, num_classes: int, reduction: str = "mean", ignore_index: int = -100):
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
        if reduction not in ML_REDUCTIONS:
            raise ValueError(f"reduction must be one of {ML_REDUCTIONS}, got {reduction!r}")
        self.num_classes = num_classes
        self.reduction = reduction
        self.ignore_index = ignore_index

    def _check_width(self, logits: Tensor) -> None:
        if logits.dim() != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(
                f"logits must have shape (N, C) with C = {self.num_classes}, "
                f"got {tuple(logits.shape)}"
            )

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, reduction={self.reduction!r}"


@register_loss("focal-bce", description="sigmoid focal loss", task="multi-label", gamma=2.0)
class FocalBCELoss(MultiLabelLoss):
    r"""Focal BCE, :func:`binary_focal_loss` with unit weights (``gamma=0``: BCE)."""

    def __init__(
        self,
        num_classes: int,
        gamma: float = 0.0,
        reduction: str = "mean",
        ignore_index: int = -100,
    ) -> None:
        super().__init__(num_classes, reduction, ignore_index)
        _check_gamma(gamma)
        self.gamma = float(gamma)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        self._check_width(logits)
        return binary_focal_loss(
            logits, target, self.gamma, None, None, self.reduction, self.ignore_index
        )


@register_loss("bce", description="binary cross-entropy per label", task="multi-label")
class BCELoss(FocalBCELoss):
    """BCE per label: :class:`FocalBCELoss` with ``gamma = 0`` (``build_loss("bce")``)."""

    def __init__(self, num_classes: int, reduction: str = "mean", ignore_index: int = -100):
        super().__init__(num_classes, 0.0, reduction, ignore_index)


@register_loss("cb-bce", description="class-balanced BCE (Cui et al. 2019)", task="multi-label")
class ClassBalancedBCELoss(MultiLabelLoss):
    r"""Class-balanced (focal) BCE: :math:`w^+_c = w^-_c = (1 - \beta) / (1 - \beta^{n_c})`,
    rescaled to mean 1 (:func:`cdbloss.class_balanced_weights`), ``n_c`` the
    training positives of label ``c``."""

    weight: Tensor

    def __init__(
        self,
        num_classes: int,
        class_counts: Counts,
        beta: float = 0.9999,
        gamma: float = 0.0,
        reduction: str = "mean",
        ignore_index: int = -100,
    ) -> None:
        super().__init__(num_classes, reduction, ignore_index)
        _check_gamma(gamma)
        self.gamma, self.beta = float(gamma), float(beta)
        counts = counts_tensor(class_counts, num_classes)
        self.register_buffer("weight", class_balanced_weights(counts, beta))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        self._check_width(logits)
        w = self.weight
        return binary_focal_loss(
            logits, target, self.gamma, w, w, self.reduction, self.ignore_index
        )


@register_loss(
    "db-loss", description="Distribution-Balanced loss (Wu et al. 2020)", task="multi-label"
)
class DistributionBalancedLoss(MultiLabelLoss):
    """The Distribution-Balanced loss, :func:`distribution_balanced_loss` (defaults: the
    authors' COCO/VOC settings, ``alpha=0.1, beta=10, mu=0.2, kappa=0.05, lam=2, gamma=2``).

    Args:
        class_counts: training positives per label ``(C,)``.
        num_samples: training samples ``N`` (for the prior log-odds).
    """

    class_counts: Tensor

    def __init__(
        self,
        num_classes: int,
        class_counts: Counts,
        num_samples: int,
        alpha: float = 0.1,
        beta: float = 10.0,
        mu: float = 0.2,
        kappa: float = 0.05,
        lam: float = 2.0,
        gamma: float = 2.0,
        balance: float = 2.0,
        reduction: str = "mean",
        ignore_index: int = -100,
    ) -> None:
        super().__init__(num_classes, reduction, ignore_index)
        counts = counts_tensor(class_counts, num_classes)
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 2:
            raise ValueError(f"num_samples must be an int >= 2, got {num_samples!r}")
        if bool((counts > num_samples).any()):
            raise ValueError(f"class_counts cannot exceed num_samples={num_samples}")
        _check_gamma(gamma)
        self.register_buffer("class_counts", counts.float())
        self.num_samples = num_samples
        self.params = dict(
            alpha=alpha, beta=beta, mu=mu, kappa=kappa, lam=lam, gamma=gamma, balance=balance
        )

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        self._check_width(logits)
        return distribution_balanced_loss(
            logits,
            target,
            self.class_counts,
            self.num_samples,
            **self.params,
            reduction=self.reduction,
            ignore_index=self.ignore_index,
        )


@register_loss("asl", description="Asymmetric Loss (Ridnik et al. 2021)", task="multi-label")
class AsymmetricLoss(MultiLabelLoss):
    """The Asymmetric Loss, :func:`asymmetric_loss` (defaults: the authors',
    ``gamma_pos=1, gamma_neg=4, clip=0.05``)."""

    def __init__(
        self,
        num_classes: int,
        gamma_pos: float = 1.0,
        gamma_neg: float = 4.0,
        clip: float = 0.05,
        eps: float = 1e-8,
        reduction: str = "mean",
        ignore_index: int = -100,
    ) -> None:
        super().__init__(num_classes, reduction, ignore_index)
        asymmetric_loss(torch.zeros(1, 1), torch.zeros(1, 1), gamma_pos, gamma_neg, clip, eps)
        self.gamma_pos, self.gamma_neg, self.clip, self.eps = gamma_pos, gamma_neg, clip, eps

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        self._check_width(logits)
        return asymmetric_loss(
            logits,
            target,
            self.gamma_pos,
            self.gamma_neg,
            self.clip,
            self.eps,
            self.reduction,
            self.ignore_index,
        )


#: which terms of the BCE the CDB weights scale
TERMS: tuple[str, ...] = ("both", "positive")


@register_loss("cdb-bce", description="CDB over BCE (per-label difficulty)", task="multi-label")
@register_loss("cdb-focal-bce", description="CDB over focal BCE", task="multi-label", gamma=2.0)
class MultiLabelCDBLoss(WeightingAccess, MultiLabelLoss):
    r"""CDB for multi-label targets: per-label difficulty weights on the BCE terms.

    After each validation pass, :meth:`update_weights` reads a per-label
    score :math:`A_c` (``measure`` of a :class:`~cdbloss.MultiLabelDifficulty`,
    balanced accuracy by default) and sets :math:`w_c = (1 - A_c)^{\tau}` with
    the same rule as the single-label loss (a :class:`~cdbloss.CDBWeighting`,
    with its moving average, cap and rescaling to mean 1). Then
    :math:`w^+_c = w_c` and, with ``terms="both"``, :math:`w^-_c = w_c`
    (``terms="positive"``: :math:`w^-_c = 1`) in :func:`binary_focal_loss`.
    The weights start uniform: the first epoch is the plain base loss. The
    weighting's settings (``tau``, ``eps``, ``normalize``, ``momentum``,
    ``min_difficulty``, ``solved_accuracy``, ``max_ratio``, ``defer_until``,
    ``swing_patience``) are passed on to and documented at :class:`~cdbloss.CDBWeighting`.

    Args:
        num_classes: ``C``.
        gamma: focal exponent (0: CDB-BCE; ``build_loss("cdb-focal-bce")``: 2).
        measure: the per-label score, one of :data:`cdbloss.multilabel.MEASURES`.
        terms: ``"both"`` or ``"positive"``.
    """

    def __init__(
        self,
        num_classes: int,
        gamma: float = 0.0,
        measure: str = "balanced-accuracy",
        terms: str = "both",
        tau: TauSpec = "dynamic-sigmoid",
        eps: float = 0.01,
        normalize: bool = True,
        momentum: float = 0.9,
        min_difficulty: float = 0.0,
        solved_accuracy: float = 1.0,
        max_ratio: float | None = 10.0,
        defer_until: int = 0,
        swing_patience: int = 3,
        reduction: str = "mean",
        ignore_index: int = -100,
    ) -> None:
        super().__init__(num_classes, reduction, ignore_index)
        _check_gamma(gamma)
        if measure not in MEASURES:
            raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
        if terms not in TERMS:
            raise ValueError(f"terms must be one of {TERMS}, got {terms!r}")
        self.gamma, self.measure, self.terms = float(gamma), measure, terms
        self.weighting = weighting_from(locals())

    @property
    def weight(self) -> Tensor:
        """The applied per-label weights ``(C,)`` (the weighting's buffer)."""
        return self.weighting.weight

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        self._check_width(logits)
        w = self.weight
        w_neg = w if self.terms == "both" else None
        return binary_focal_loss(
            logits, target, self.gamma, w, w_neg, self.reduction, self.ignore_index
        )

    @torch.no_grad()
    def update_weights(self, score: Tensor | MultiLabelDifficulty, *, sync: bool = True) -> Tensor:
        """Set the weights from a tracker (its ``measure``, counts summed over ranks
        when ``sync``) or a per-label score ``(C,)`` in ``[0, 1]`` (NaN: unmeasured).

        Returns:
            The applied weights ``(C,)`` (a copy).
        """
        if isinstance(score, MultiLabelDifficulty):
            if score.num_labels != self.num_classes:
                raise ValueError(
                    f"the tracker counts {score.num_labels} labels, this loss has "
                    f"{self.num_classes}"
                )
            score = score.compute(self.measure, sync=sync)
        return self.weighting.update(score, sync=sync)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, gamma={self.gamma}, measure={self.measure!r}"
