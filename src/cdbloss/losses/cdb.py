"""The Class-wise Difficulty-Balanced loss (Sinha, Ohashi & Nakamura, ACCV 2020)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from cdbloss.cdb import (
    PAPER_RULE,
    SETTINGS,
    CDBWeighting,
    allow_missing_settings,
    check_settings,
    settings_state,
)
from cdbloss.difficulty import ClassDifficulty
from cdbloss.losses._common import class_bias, is_soft
from cdbloss.losses.base import ClassWeightedLoss
from cdbloss.losses.cross_entropy import weighted_cross_entropy
from cdbloss.losses.focal import _check_gamma, focal_loss
from cdbloss.losses.logit_adjusted import log_prior
from cdbloss.losses.registry import register_loss
from cdbloss.weighting import TauSpec

__all__ = [
    "APPLY_MODES",
    "BASES",
    "CDB_BASES",
    "CDBLoss",
    "WeightingAccess",
    "cdb_cross_entropy",
    "cdb_loss",
    "difficulty_offset",
    "weighting_from",
]

Base = Literal["ce", "focal"]
BASES: tuple[str, ...] = ("ce", "focal")
#: the per-sample losses CDB weights: :data:`BASES` and Balanced Softmax (needs class counts)
CDB_BASES: tuple[str, ...] = ("ce", "focal", "balanced-softmax")
#: how the CDB weights act on the base loss: as per-class loss weights, or as logit offsets
APPLY_MODES: tuple[str, ...] = ("weight", "offset")

#: smallest weight whose log is taken (a weight of 0 would give an infinite offset)
_MIN_OFFSET_WEIGHT = 1e-6


def difficulty_offset(weight: Tensor, scale: float = 1.0) -> Tensor:
    r"""The training-time logit offset that acts like the class weights ``weight``.

    .. math:: b_c = -\lambda \log \frac{w_c}{\bar w}, \qquad \bar w = \frac{1}{C}\sum_k w_k

    Cross-entropy on :math:`z + b` is minimised by :math:`z_c = \log p(c \mid x) - b_c`
    (up to a constant), so the raw logits used at test time rank classes by
    :math:`p(c \mid x)\, (w_c / \bar w)^{\lambda}`: at :math:`\lambda = 1` the decision rule
    that a loss weighted by :math:`w` aims at (Menon et al. 2021 make the same
    argument for the class prior), reached by an additive, Fisher-consistent
    correction instead of a weight that rescales the gradients. A harder class
    (larger :math:`w_c`) gets a negative offset while training, so its raw logit
    is pushed up. Uniform weights give zero offsets.

    Args:
        weight: ``(C,)`` positive class weights (CDB weights; weights below 1e-6
            of their mean are taken as 1e-6 of it).
        scale: :math:`\lambda \ge 0`.

    Returns:
        ``(C,)`` offsets in the dtype of ``weight`` (softmax ignores a constant added to
        all of them, so only their differences matter).
    """
    rel = weight / weight.mean()
    return -scale * torch.log(rel.clamp_min(_MIN_OFFSET_WEIGHT))


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
    label_smoothing: float = 0.0,
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
        label_smoothing: :math:`\varepsilon` in ``[0, 1]``.

    Spatial logits ``(N, C, d1, ...)`` with targets ``(N, d1, ...)`` and
    probability targets of the logits' shape are taken as by the base loss
    (:func:`~cdbloss.losses.weighted_cross_entropy`, :func:`~cdbloss.losses.focal_loss`).
    """
    if base == "ce":
        return weighted_cross_entropy(
            logits,
            target,
            weight,
            reduction,
            ignore_index,
            weight_positive=weight_positive,
            label_smoothing=label_smoothing,
        )
    if base == "focal":
        return focal_loss(logits, target, weight, gamma, reduction, ignore_index, label_smoothing)
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


def weighting_from(scope: Mapping[str, Any]) -> CDBWeighting:
    """The :class:`~cdbloss.CDBWeighting` of a CDB loss's constructor: built from every
    weighting setting (:data:`cdbloss.cdb.SETTINGS`) that ``scope`` (its ``locals()``)
    names, so each loss passes its options on without listing them a second time."""
    return CDBWeighting(**{k: scope[k] for k in SETTINGS if k in scope})


class WeightingAccess:
    """The weighting's settings and state read through a CDB loss, and its epoch.

    Shared by :class:`CDBLoss` and :class:`~cdbloss.MultiLabelCDBLoss`: both
    keep a :class:`~cdbloss.CDBWeighting` at ``self.weighting``.
    """

    weighting: CDBWeighting

    @property
    def tau(self) -> TauSpec:
        return self.weighting.tau

    @property
    def eps(self) -> float:
        return self.weighting.eps

    @property
    def normalize(self) -> bool:
        return self.weighting.normalize

    @property
    def momentum(self) -> float:
        return self.weighting.momentum

    @property
    def tau_value(self) -> Tensor:
        """The tau of the last update (NaN before it)."""
        return self.weighting.tau_value

    @property
    def accuracy(self) -> Tensor:
        """The per-class score the weights came from (after prior and moving average):
        accuracy for :class:`CDBLoss`, the loss's ``measure`` for the multi-label loss."""
        return self.weighting.accuracy

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` (from 0): ends a deferral (``defer_until``)."""
        self.weighting.set_epoch(epoch)

    def options(self) -> dict[str, Any]:
        """The weighting's settings that differ from the paper's rule."""
        return self.weighting.options()


@register_loss("cdb-ce", description="CDB with cross-entropy (Sinha et al. 2020)", base="ce")
@register_loss(
    "cdb-ce-paper",
    description="CDB-CE as the paper writes it: Eq. 3 dynamic tau, eps 1e-4, weighted mean",
    **{**PAPER_RULE, "base": "ce", "reduction": "mean"},
)
@register_loss(
    "cdb-ce-authors",
    description="CDB-CE as the authors' CIFAR code runs it: sigmoid tau, eps 0.01, mean over N",
    **{
        **PAPER_RULE,
        "base": "ce",
        "tau": "dynamic-sigmoid",
        "eps": 0.01,
        "reduction": "sample_mean",
    },
)
@register_loss(
    "cdb-bs",
    needs_counts=True,
    description="CDB weights over the Balanced Softmax loss (not in the paper)",
    base="balanced-softmax",
)
@register_loss("cdb-focal", description="CDB with focal loss", base="focal")
@register_loss(
    "cdb-bs-offset",
    needs_counts=True,
    description="CDB difficulty as a logit offset beside Balanced Softmax's log prior (not in the paper)",
    base="balanced-softmax",
    apply_as="offset",
)
@register_loss(
    "cdb-ce-offset",
    description="CDB difficulty as a logit offset on cross-entropy (not in the paper)",
    base="ce",
    apply_as="offset",
)
class CDBLoss(WeightingAccess, ClassWeightedLoss):
    r"""Class-wise Difficulty-Balanced loss: a weighted loss plus a :class:`~cdbloss.CDBWeighting`.

    The weights live in ``loss.weighting`` (its buffers, so ``state_dict()``
    saves and restores them with every piece of their state). They start
    uniform (the first epoch is the plain base loss, as in the authors' code)
    and change only through :meth:`update_weights`, called after each
    validation pass, and :meth:`set_epoch` (deferral):

    .. math:: \ell_i = w_{y_i}\, \ell^{\text{base}}_i, \qquad w_c = (1 - A_c)^{\tau}

    rescaled to sum to ``C`` when ``normalize``. The defaults are the recipe
    the long-tail study measured (sigmoid tau, ``eps=0.01``, ``momentum=0.9``,
    ``max_ratio=10``; docs/results.md, section 6); ``build_loss("cdb-ce-paper")``
    is the paper's rule as written. Every option of the weights (``tau``,
    ``eps``, ``normalize``, ``momentum``, ``min_difficulty``, ``solved_accuracy``,
    ``max_ratio``, ``defer_until``, ``prior_strength``, ``source``,
    ``swing_patience``) is passed on to and documented at :class:`~cdbloss.CDBWeighting`.

    Args:
        num_classes: ``C``.
        base: the per-sample loss that is weighted: ``"ce"`` (CDB-CE),
            ``"focal"`` (CDB-focal, the weight as per-class alpha) or
            ``"balanced-softmax"`` (CE on :math:`z + \log n`; needs ``class_counts``).
        gamma: focal exponent for ``base="focal"``.
        reduction: ``"mean"`` | ``"sample_mean"`` | ``"sum"`` | ``"none"``
            (see :func:`cdb_loss`).
        ignore_index: targets to skip.
        class_counts: training samples per class ``(C,)``, for ``base="balanced-softmax"``.
        label_smoothing: :math:`\varepsilon` in ``[0, 1]`` (as ``nn.CrossEntropyLoss``).
        apply_as: how the CDB weights act: ``"weight"`` (the paper: each sample's
            loss times :math:`w_{y_i}`) or ``"offset"`` (the base loss, unweighted,
            on the logits plus :func:`difficulty_offset`:
            :math:`z_c - \lambda \log(w_c / \bar w)`, added beside Balanced Softmax's
            :math:`\log n_c`; ``build_loss("cdb-bs-offset")``).
        offset_scale: :math:`\lambda \ge 0` of ``apply_as="offset"``.

    Shape:
        logits ``(N, C)``, target ``(N,)`` -> scalar, or ``(N,)`` for ``reduction="none"``;
        spatial logits ``(N, C, d1, ...)`` with target ``(N, d1, ...)`` (each
        position a sample), or probability targets of the logits' shape, as
        ``nn.CrossEntropyLoss``.

    Example:
        >>> import torch
        >>> from cdbloss import CDBLoss, ClassDifficulty
        >>> loss_fn, tracker = CDBLoss(num_classes=2), ClassDifficulty(num_classes=2)
        >>> tracker.update(torch.tensor([0, 0, 0, 1]), torch.tensor([0, 0, 1, 1]))
        >>> loss_fn.update_weights(tracker)  # class 1 is harder: larger weight (capped at 10x)
        tensor([0.1818, 1.8182])
    """

    log_prior: Tensor

    def __init__(
        self,
        num_classes: int,
        tau: TauSpec = "dynamic-sigmoid",
        eps: float = 0.01,
        normalize: bool = True,
        base: str = "ce",
        gamma: float = 2.0,
        reduction: str = "mean",
        ignore_index: int = -100,
        momentum: float = 0.9,
        min_difficulty: float = 0.0,
        solved_accuracy: float = 1.0,
        max_ratio: float | None = 10.0,
        defer_until: int = 0,
        prior_strength: float = 0.0,
        source: str = "val",
        swing_patience: int = 3,
        class_counts: Sequence[int] | Tensor | None = None,
        label_smoothing: float = 0.0,
        apply_as: str = "weight",
        offset_scale: float = 1.0,
    ) -> None:
        super().__init__(
            num_classes,
            None,
            reduction,
            ignore_index,
            weight_buffer=False,
            label_smoothing=label_smoothing,
        )
        if base not in CDB_BASES:
            raise ValueError(f"base must be one of {CDB_BASES}, got {base!r}")
        _check_gamma(gamma)
        if apply_as not in APPLY_MODES:
            raise ValueError(f"apply_as must be one of {APPLY_MODES}, got {apply_as!r}")
        ok = isinstance(offset_scale, (int, float)) and not isinstance(offset_scale, bool)
        if not ok or not math.isfinite(offset_scale) or offset_scale < 0:
            raise ValueError(f"offset_scale must be a finite float >= 0, got {offset_scale!r}")
        self.apply_as = apply_as
        self.offset_scale = float(offset_scale)
        self.weighting = weighting_from(locals())
        self.base = base
        self.gamma = float(gamma)
        if base == "balanced-softmax":
            if class_counts is None:
                raise ValueError(
                    "CDBLoss(base='balanced-softmax') needs class_counts (training samples "
                    "per class) for the prior log n_c"
                )
            self.register_buffer("log_prior", log_prior(class_counts, num_classes).float())
        self.register_load_state_dict_post_hook(allow_missing_settings)  # type: ignore[no-untyped-call]

    def settings(self) -> dict[str, Any]:
        """The loss's own settings saved in ``state_dict()`` (the weighting saves its own)."""
        return {
            "num_classes": self.num_classes,
            "base": self.base,
            "gamma": self.gamma,
            "reduction": self.reduction,
            "ignore_index": self.ignore_index,
            "label_smoothing": self.label_smoothing,
            "apply_as": self.apply_as,
            "offset_scale": self.offset_scale,
        }

    def get_extra_state(self) -> Tensor:
        return settings_state(self.settings())

    def set_extra_state(self, state: Any) -> None:
        check_settings(state, self.settings(), "CDB loss")

    # the weighting's settings and state, read through the loss
    @property
    def weight(self) -> Tensor:
        """The applied class weights ``(C,)`` (the weighting's buffer)."""
        return self.weighting.weight

    @weight.setter
    def weight(self, value: Tensor) -> None:
        raise AttributeError(
            "CDBLoss.weight is the weighting's buffer; set it with update_weights(accuracy) "
            "or set_weight(weight)"
        )

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if self.weighting.source == "train" and self.training and torch.is_grad_enabled():
            self._observe(logits, target)
        base = self.base
        shaped = logits.dim() >= 2 and logits.shape[1] == self.num_classes
        if base == "balanced-softmax":
            base = "ce"
            if shaped:
                logits = class_bias(logits, self.log_prior)
        weight: Tensor | None = self.weight
        if self.apply_as == "offset":
            if shaped:
                logits = class_bias(logits, difficulty_offset(self.weight, self.offset_scale))
            weight = None
        return cdb_loss(
            logits,
            target,
            weight,
            base,
            self.gamma,
            self.reduction,
            self.ignore_index,
            weight_positive=True if weight is None else self.weight_positive(),
            label_smoothing=self.label_smoothing,
        )

    def _observe(self, logits: Tensor, target: Tensor) -> None:
        """Count a training batch (``source="train"``): probability targets by their argmax."""
        if is_soft(logits, target):
            target = target.argmax(dim=1)
            self.weighting.observe(logits.detach(), target)
            return
        if logits.dim() == 2 and target.dim() == 1:
            keep = target != self.ignore_index
            self.weighting.observe(logits.detach()[keep], target[keep])
            return
        self.weighting.observe(logits.detach(), target)  # the tracker skips ignore_index

    @torch.no_grad()
    def update_weights(
        self, accuracy: Tensor | ClassDifficulty | None = None, *, sync: bool = True
    ) -> Tensor:
        """Set the weights from per-class validation accuracy ``(C,)`` or a tracker.

        :meth:`CDBWeighting.update`: with a :class:`ClassDifficulty`, its counts
        (summed over ranks under ``torch.distributed``, so every rank gets the
        same weights). With ``source="train"`` the argument is not used.

        Returns:
            The new applied weights ``(C,)`` (a copy).
        """
        return self.weighting.update(accuracy, sync=sync)

    def extra_repr(self) -> str:
        gamma = f", gamma={self.gamma}" if self.base == "focal" else ""
        offset = (
            f", apply_as='offset', offset_scale={self.offset_scale:g}"
            if self.apply_as == "offset"
            else ""
        )
        return (
            f"num_classes={self.num_classes}, reduction={self.reduction!r}, "
            f"base={self.base!r}{gamma}{offset}"
        )
