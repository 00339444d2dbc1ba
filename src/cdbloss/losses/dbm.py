"""The Difficulty-aware Balancing Margin loss (Son, Koo, Park & Kim, AAAI 2025).

DBM is the published answer to "can a difficulty signal add to a prior
correction?": an additive angular margin on a cosine classifier, made of a
class margin that grows as the class gets rarer and an instance margin that
grows with how far a misclassified sample sits from its class, stacked on
Balanced Softmax (``build_loss("dbm-bs")``) or on plain cross-entropy
(``build_loss("dbm")``). It is here as the anchor the CDB recipes over Balanced
Softmax are measured against (docs/results/prior_study.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from cdbloss.losses._common import (
    check_inputs,
    check_number,
    class_bias,
    host_checks,
    refuse_soft,
    spatial,
)
from cdbloss.losses.base import ClassWeightedLoss, counts_tensor
from cdbloss.losses.cross_entropy import weighted_cross_entropy
from cdbloss.losses.ldam import margin_counts
from cdbloss.losses.logit_adjusted import log_prior
from cdbloss.losses.registry import register_loss

__all__ = ["DBM_BASES", "DBMLoss", "dbm_class_margins", "dbm_loss"]

#: the losses DBM's margined logits feed: cross-entropy, or Balanced Softmax (needs counts)
DBM_BASES: tuple[str, ...] = ("ce", "balanced-softmax")

#: cosines are kept this far inside [-1, 1], where acos has a finite gradient
_COS_EPS = 1e-6


def dbm_class_margins(
    class_counts: Sequence[int] | Tensor, max_margin: float = 0.3, power: float = 0.25
) -> Tensor:
    r"""DBM's class-wise margins: :math:`m_c = K (n_{\min} / n_c)^{p}`, largest ``K`` on the rarest class.

    .. math:: m_c = K \left(\frac{\min_k n_k}{n_c}\right)^{p}

    (the paper writes :math:`K \rho_c^{-p}` with :math:`\rho_c` the class
    frequency, scaled so that the rarest class gets :math:`K`). A class with no
    samples is taken as having one.

    Args:
        class_counts: training samples per class ``(C,)``.
        max_margin: :math:`K > 0`, an angle in radians.
        power: :math:`p \ge 0` (0 gives every class the margin ``K``).

    Returns:
        float64 ``(C,)``.
    """
    counts = margin_counts(class_counts, max_margin)
    check_number("power", power, positive=False)
    return max_margin * (counts.min() / counts).pow(power)


@spatial
def dbm_loss(
    cosine: Tensor,
    target: Tensor,
    class_margins: Tensor,
    scale: float = 30.0,
    instance_scale: float = 1.0,
    prior: Tensor | None = None,
    weight: Tensor | None = None,
    reduction: str = "mean",
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""DBM: cross-entropy on scaled cosines whose target angle is widened by a margin.

    With :math:`\theta_{ic} = \arccos z_{ic}` the angle between sample
    :math:`i`'s feature and class :math:`c`'s weight (``cosine`` = :math:`z`):

    .. math::

        d_i &= \tfrac{1}{2}(1 - z_{i y_i}), \qquad
            h_i = [\arg\max_c z_{ic} \ne y_i] \\
        m_i &= m_{y_i} (1 + \lambda\, d_i\, h_i) \\
        \ell_i &= -\log \frac{e^{s \cos(\min(\theta_{i y_i} + m_i, \pi)) + b_{y_i}}}
            {e^{s \cos(\min(\theta_{i y_i} + m_i, \pi)) + b_{y_i}}
             + \sum_{c \ne y_i} e^{s z_{ic} + b_c}}

    with the class margins :math:`m_c` (:func:`dbm_class_margins`), the instance
    margin :math:`m_{y_i} \lambda d_i` for misclassified samples only, and
    :math:`b = \log \pi` over Balanced Softmax (``prior``), else 0; the angle is
    capped at :math:`\pi`.

    Args:
        cosine: ``(N, C)`` cosine logits in ``[-1, 1]`` (a normalised linear head:
            ``model.options.normed_linear: true`` in a config).
        target: ``(N,)`` class indices.
        class_margins: ``(C,)`` :math:`m_c` in radians.
        scale: :math:`s > 0`.
        instance_scale: :math:`\lambda \ge 0` (0: class margins only).
        prior: optional ``(C,)`` log prior :math:`b` added after scaling (Balanced Softmax).
        weight: optional ``(C,)`` class weights.
        reduction: as :func:`~cdbloss.losses.weighted_cross_entropy`.
        ignore_index: targets to skip.
        label_smoothing: :math:`\varepsilon` of the CE on the margined logits.

    Raises:
        ValueError: cosines outside ``[-1, 1]`` (a plain linear head), probability targets.
    """
    refuse_soft(cosine, target, "dbm_loss", "DBM widens the angle of the one target class")
    check_inputs(cosine, target, weight, ignore_index, name="dbm_loss")
    num_classes = cosine.shape[1]
    if class_margins.dim() != 1 or class_margins.shape[0] != num_classes:
        raise ValueError(
            f"class_margins must have shape (C,) = ({num_classes},), "
            f"got {tuple(class_margins.shape)}"
        )
    check_number("scale", scale, positive=True)
    check_number("instance_scale", instance_scale, positive=False)
    if host_checks() and cosine.numel() and float(cosine.detach().abs().max()) > 1.0 + 1e-4:
        raise ValueError(
            "dbm_loss needs cosine logits in [-1, 1] (a normalised linear head, e.g. "
            "model.options.normed_linear: true); got values up to "
            f"{float(cosine.detach().abs().max()):.3g}"
        )
    keep = target != ignore_index
    safe = torch.where(keep, target, torch.zeros_like(target))  # (N,)
    cos = cosine.clamp(-1.0 + _COS_EPS, 1.0 - _COS_EPS)
    cos_y = cos.gather(1, safe.unsqueeze(1)).squeeze(1)  # (N,)
    wrong = (cosine.argmax(dim=1) != safe).to(cos.dtype)  # (N,)
    margin = class_margins.to(device=cos.device, dtype=cos.dtype)[safe]  # (N,)
    margin = margin * (1.0 + instance_scale * 0.5 * (1.0 - cos_y) * wrong)
    widened = torch.cos((torch.acos(cos_y) + margin).clamp(max=math.pi))  # (N,)
    onehot = torch.zeros_like(cos).scatter_(1, safe.unsqueeze(1), 1.0)  # (N, C)
    logits = scale * torch.lerp(cos, widened.unsqueeze(1).expand_as(cos), onehot)  # (N, C)
    if prior is not None:
        logits = class_bias(logits, prior)
    return weighted_cross_entropy(
        logits, target, weight, reduction, ignore_index, label_smoothing=label_smoothing
    )


@register_loss("dbm", description="DBM margins on a cosine classifier (Son et al. 2025)", base="ce")
@register_loss(
    "dbm-bs",
    description="DBM stacked on Balanced Softmax (Son et al. 2025)",
    base="balanced-softmax",
)
class DBMLoss(ClassWeightedLoss):
    r"""The DBM loss as a module, over cross-entropy or Balanced Softmax. See :func:`dbm_loss`.

    The model must end in a cosine classifier
    (:class:`cdbloss.lab.models.layers.NormedLinear`, ``normed_linear=True``).
    The defaults are this library's (the paper's exact values were not at
    hand): ``scale=30`` as LDAM's, ``max_margin=0.3`` rad, ``power=0.25`` (the
    exponent of LDAM's margins) and ``instance_scale=1``.

    Args:
        num_classes: ``C``.
        class_counts: training samples per class ``(C,)`` (the margins, and the prior of
            ``base="balanced-softmax"``).
        base: ``"ce"`` or ``"balanced-softmax"``.
        max_margin: :math:`K` of :func:`dbm_class_margins`.
        power: :math:`p` of :func:`dbm_class_margins`.
        scale: :math:`s` of :func:`dbm_loss`.
        instance_scale: :math:`\lambda` of :func:`dbm_loss`.
        reduction: ``"mean"`` | ``"sample_mean"`` | ``"sum"`` | ``"none"``.
        ignore_index: targets to skip.
        label_smoothing: :math:`\varepsilon` in ``[0, 1]``.
    """

    class_margins: Tensor
    log_prior: Tensor

    def __init__(
        self,
        num_classes: int,
        class_counts: Sequence[int] | Tensor,
        base: str = "balanced-softmax",
        max_margin: float = 0.3,
        power: float = 0.25,
        scale: float = 30.0,
        instance_scale: float = 1.0,
        reduction: str = "mean",
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(
            num_classes, None, reduction, ignore_index, label_smoothing=label_smoothing
        )
        if base not in DBM_BASES:
            raise ValueError(f"base must be one of {DBM_BASES}, got {base!r}")
        check_number("scale", scale, positive=True)
        check_number("instance_scale", instance_scale, positive=False)
        counts = counts_tensor(class_counts, num_classes)
        self.register_buffer("class_margins", dbm_class_margins(counts, max_margin, power))
        self.register_buffer("log_prior", log_prior(counts, num_classes).float())
        self.base = base
        self.scale = float(scale)
        self.instance_scale = float(instance_scale)

    def forward(self, cosine: Tensor, target: Tensor) -> Tensor:
        prior = self.log_prior if self.base == "balanced-softmax" else None
        return dbm_loss(
            cosine,
            target,
            self.class_margins,
            self.scale,
            self.instance_scale,
            prior,
            self.weight,
            self.reduction,
            self.ignore_index,
            self.label_smoothing,
        )

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, base={self.base!r}, scale={self.scale:g}, "
            f"instance_scale={self.instance_scale:g}"
        )
