"""Pure weighting functions: accuracy -> difficulty -> class weights.

Everything here is a pure function of tensors: no state, no randomness. The
formulas follow Sinha, Ohashi & Nakamura, "Class-Wise Difficulty-Balanced Loss
for Solving Class-Imbalance" (ACCV 2020), and, for the frequency-based
weights, Cui et al. (CVPR 2019) and the usual inverse-frequency schemes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "TauSpec",
    "cdb_weights",
    "class_balanced_weights",
    "dynamic_tau",
    "inverse_frequency_weights",
    "normalize_weights",
    "resolve_tau",
]

#: ``tau`` accepted by :func:`cdb_weights` and :class:`~cdbloss.CDBLoss`: a float
#: ``>= 0``, ``"dynamic"`` (the paper's Eq. 3-4) or ``"dynamic-sigmoid"`` (the
#: variant in the authors' CIFAR and EGTEA scripts, ``sigmoid(max A / (min A + eps))``).
TauSpec = float | Literal["dynamic", "dynamic-sigmoid"]

_DYNAMIC_MODES = ("dynamic", "dynamic-sigmoid")

ArrayLike = Tensor | Sequence[float]


def _as_accuracy(accuracy: ArrayLike, name: str = "accuracy") -> Tensor:
    """Validate a per-class accuracy vector: 1-D, non-empty, values in [0, 1] or NaN."""
    # Python sequences are read in float64 so no precision is lost before the formula.
    acc = (
        torch.as_tensor(accuracy)
        if isinstance(accuracy, Tensor)
        else torch.tensor(accuracy, dtype=torch.float64)
    )
    if not (acc.is_floating_point() or acc.dtype in (torch.int64, torch.int32)):
        raise ValueError(
            f"{name} must be a float tensor of per-class accuracies, got dtype {acc.dtype}"
        )
    acc = acc.to(torch.float64) if not acc.is_floating_point() else acc
    if acc.dim() != 1 or acc.numel() == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D tensor of shape (C,), got shape {tuple(acc.shape)}"
        )
    finite = acc[~torch.isnan(acc)]
    if finite.numel() and (bool((finite < 0).any()) or bool((finite > 1).any())):
        bad = finite[(finite < 0) | (finite > 1)]
        raise ValueError(
            f"{name} must lie in [0, 1] (NaN marks a class with no samples), "
            f"got values such as {bad[0].item()!r}"
        )
    return acc


def dynamic_tau(
    accuracy: ArrayLike, eps: float = 1e-4, variant: Literal["paper", "sigmoid"] = "paper"
) -> float:
    r"""The dynamic exponent of CDB (paper Eq. 3-4).

    .. math::
        b = \frac{\max_c A_c}{\min_c A_c + \epsilon} - 1, \qquad
        \tau = \frac{2}{1 + e^{-b}}

    ``tau`` lies in ``(0.5, 2]``: it is (just under) 1 when every class is
    equally accurate and approaches 2 as the gap between the best and the worst
    class grows. The formula is applied as written, so equal accuracies give
    ``b = A / (A + eps) - 1``, slightly below 0.

    Args:
        accuracy: per-class accuracy ``(C,)`` in ``[0, 1]``. Classes whose
            accuracy is NaN (no validation samples) are left out of the max and min.
        eps: the paper's ``epsilon`` (1e-4; the authors' code uses 0.01).
        variant: ``"paper"`` for Eq. 3-4, or ``"sigmoid"`` for the authors'
            CIFAR/EGTEA scripts, ``tau = 1 / (1 + exp(-max A / (min A + eps)))``
            (range 0.5..1).

    Returns:
        ``tau`` as a Python float. With no measured class at all, the value for
        equal accuracies (1.0 for the paper, sigmoid(1) for the variant).

    Example:
        >>> round(dynamic_tau([0.9, 0.9]), 3)
        1.0
        >>> dynamic_tau([1.0, 0.0]) > 1.99
        True
    """
    if eps <= 0 or not math.isfinite(eps):
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
    if variant not in ("paper", "sigmoid"):
        raise ValueError(f"variant must be 'paper' or 'sigmoid', got {variant!r}")
    acc = _as_accuracy(accuracy)
    measured = acc[~torch.isnan(acc)].to(torch.float64)
    if measured.numel() == 0:
        ratio = 1.0
    else:
        ratio = float(measured.max()) / (float(measured.min()) + eps)
    if variant == "sigmoid":
        return 1.0 / (1.0 + math.exp(-ratio))
    b = ratio - 1.0
    # b >= -1 always; exp(-b) may overflow only for b < -709, which cannot happen.
    return 2.0 / (1.0 + math.exp(-b)) if b < 700 else 2.0


def resolve_tau(tau: TauSpec, accuracy: ArrayLike, eps: float = 1e-4) -> float:
    """Turn a ``tau`` spec into the number used for these accuracies.

    ``"dynamic"`` -> :func:`dynamic_tau` (paper), ``"dynamic-sigmoid"`` -> its
    code variant, a number -> itself (checked ``>= 0`` and finite).
    """
    if isinstance(tau, str):
        if tau not in _DYNAMIC_MODES:
            raise ValueError(f"tau must be a float >= 0 or one of {_DYNAMIC_MODES}, got {tau!r}")
        variant: Literal["paper", "sigmoid"] = "paper" if tau == "dynamic" else "sigmoid"
        return dynamic_tau(accuracy, eps=eps, variant=variant)
    if isinstance(tau, bool) or not isinstance(tau, (int, float)):
        raise ValueError(f"tau must be a float >= 0 or one of {_DYNAMIC_MODES}, got {tau!r}")
    if not math.isfinite(tau) or tau < 0:
        raise ValueError(f"tau must be a finite float >= 0, got {tau!r}")
    return float(tau)


def normalize_weights(weights: Tensor) -> Tensor:
    r"""Rescale non-negative weights ``(C,)`` to sum to ``C`` (mean 1).

    .. math:: w_c \leftarrow C \, w_c / \sum_k w_k

    All-zero input gives uniform ones instead of ``0/0``.
    """
    if weights.dim() != 1 or weights.numel() == 0:
        raise ValueError(f"weights must have shape (C,), got {tuple(weights.shape)}")
    total = weights.sum()
    if float(total) <= 0:
        return torch.ones_like(weights)
    return weights * (weights.numel() / total)


def cdb_weights(
    accuracy: ArrayLike,
    tau: TauSpec = "dynamic",
    eps: float = 1e-4,
    normalize: bool = True,
    min_difficulty: float = 0.0,
    solved_accuracy: float = 1.0,
    max_ratio: float | None = None,
) -> Tensor:
    r"""Class-wise difficulty-balanced weights (paper Eq. 2).

    .. math::
        d_c = \max(1 - A_c, \delta), \qquad w_c = d_c^{\tau}

    with the floor :math:`\delta` = ``min_difficulty`` (0 in the paper, where a
    class that is perfect on validation gets weight 0 and so drops out of the loss).
    A class with :math:`A_c \ge` ``solved_accuracy`` counts as solved:
    :math:`d_c = 0` (the paper: only :math:`A_c = 1`).

    With ``max_ratio = r`` (not in the paper) the weights are capped from
    below, :math:`w_c \leftarrow \max(w_c, \max_k w_k / r)`, so the largest
    weight is at most ``r`` times the smallest (a solved class keeps ``1/r`` of
    the largest weight instead of 0).

    With ``normalize=True`` (the authors' code), :math:`w \leftarrow C w / \sum_k w_k`.

    Edge cases, chosen so the result is always finite:

    * every class perfect (all :math:`d_c = 0`, so all :math:`w_c = 0`): uniform ones;
    * ``tau = 0``: every weight is 1 (``0 ** 0 = 1``), i.e. plain cross-entropy;
    * a class with accuracy NaN (no validation samples, see
      :meth:`ClassDifficulty.compute`) gets the mean of the measured classes'
      weights, i.e. it is treated as a class of average difficulty; if no
      class was measured the result is uniform ones.

    Args:
        accuracy: per-class validation accuracy ``(C,)``, values in ``[0, 1]`` or NaN.
        tau: a float ``>= 0``, ``"dynamic"`` or ``"dynamic-sigmoid"`` (see :data:`TauSpec`).
        eps: ``epsilon`` of the dynamic tau.
        normalize: rescale to sum to ``C``.
        min_difficulty: the floor :math:`\delta` in ``[0, 1)`` (not in the paper;
            ``1 / n_val`` makes a perfect class weigh what one validation
            mistake would give it instead of 0). The dynamic tau is unchanged.
        solved_accuracy: in ``(0, 1]``; a class at or above it gets weight 0
            (not in the paper, whose rule is ``1.0``: a class with one
            validation mistake keeps a small weight). It and ``min_difficulty``
            pull in opposite directions, so at most one may differ from its default.
        max_ratio: ``r > 1`` or ``None`` (no cap, the paper).

    Returns:
        Tensor ``(C,)`` of float weights, on the device of ``accuracy``, in its
        floating dtype (float32 for integer or list input).

    Example:
        >>> cdb_weights([0.5, 1.0], tau=1.0, normalize=False)
        tensor([0.5000, 0.0000])
        >>> cdb_weights([0.5, 1.0], tau=1.0)
        tensor([2., 0.])
    """
    check_difficulty_options(min_difficulty, solved_accuracy)
    check_max_ratio(max_ratio)
    acc = _as_accuracy(accuracy)
    out_dtype = (
        acc.dtype if acc.is_floating_point() and torch.is_tensor(accuracy) else torch.float32
    )
    t = resolve_tau(tau, acc, eps=eps)
    acc64 = acc.to(torch.float64)
    nan = torch.isnan(acc64)
    difficulty = (1.0 - acc64).clamp_min(float(min_difficulty))
    if solved_accuracy < 1.0:
        difficulty = torch.where(acc64 >= solved_accuracy, 0.0, difficulty)  # NaN stays NaN
    weights = _finite_weights(difficulty.pow(t), nan)  # pow(0, 0) == 1: tau = 0 gives ones
    if max_ratio is not None:
        weights = weights.clamp_min(float(weights.max()) / max_ratio)
    if normalize:
        weights = normalize_weights(weights)
    return weights.to(out_dtype)


def _finite_weights(weights: Tensor, nan: Tensor) -> Tensor:
    """:func:`cdb_weights`'s edge cases: a class whose accuracy is NaN (mask ``nan``) gets
    the mean weight of the measured classes; no measured class, or all weights 0: ones."""
    if bool(nan.all()):
        return torch.ones_like(weights)
    if bool(nan.any()):
        weights = torch.where(nan, weights[~nan].mean(), weights)
    if float(weights.sum()) <= 0:
        return torch.ones_like(weights)
    return weights


def check_unit_interval(value: float, name: str, *, upper_closed: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is a real number (not a bool) in ``[0, 1)``.

    With ``upper_closed`` the interval is ``(0, 1]`` instead.
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (0.0 < value <= 1.0 if upper_closed else 0.0 <= value < 1.0)
    if not ok:
        interval = "(0, 1]" if upper_closed else "[0, 1)"
        raise ValueError(f"{name} must be a float in {interval}, got {value!r}")


def check_max_ratio(max_ratio: float | None) -> None:
    """Raise ``ValueError`` unless ``max_ratio`` is ``None`` or a finite number ``> 1``."""
    if max_ratio is None:
        return
    ok = isinstance(max_ratio, (int, float)) and not isinstance(max_ratio, bool)
    if not ok or not math.isfinite(max_ratio) or max_ratio <= 1:
        raise ValueError(
            f"max_ratio must be None or a finite number > 1 (largest over smallest weight), "
            f"got {max_ratio!r}"
        )


def check_difficulty_options(min_difficulty: float, solved_accuracy: float) -> None:
    """Raise ``ValueError`` for a bad floor or solved threshold, or for both set at once."""
    check_unit_interval(min_difficulty, "min_difficulty")
    check_unit_interval(solved_accuracy, "solved_accuracy", upper_closed=True)
    if min_difficulty > 0 and solved_accuracy < 1.0:
        raise ValueError(
            "min_difficulty keeps a perfect class in the loss and solved_accuracy < 1 takes "
            "nearly perfect ones out: set one of them, got "
            f"min_difficulty={min_difficulty!r}, solved_accuracy={solved_accuracy!r}"
        )


def _as_counts(class_counts: ArrayLike) -> Tensor:
    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    if counts.dim() != 1 or counts.numel() == 0:
        raise ValueError(
            f"class_counts must be a non-empty 1-D sequence (C,), got shape {tuple(counts.shape)}"
        )
    if bool((counts < 0).any()) or bool(torch.isnan(counts).any()):
        raise ValueError(f"class_counts must be >= 0, got {counts.tolist()}")
    return counts


def inverse_frequency_weights(
    class_counts: ArrayLike, power: float = 1.0, normalize: bool = True
) -> Tensor:
    r"""Inverse-frequency class weights (IFW): :math:`w_c = n_c^{-p}`.

    ``power=1`` is plain inverse frequency, ``power=0.5`` its square-root
    variant. A class with zero training samples gets weight 0 (it never
    appears as a target). With ``normalize=True`` the weights sum to ``C``.

    Args:
        class_counts: training samples per class ``(C,)``.
        power: the exponent ``p >= 0``.
        normalize: rescale to sum to ``C``.

    Returns:
        float32 tensor ``(C,)``.
    """
    if power < 0 or not math.isfinite(power):
        raise ValueError(f"power must be a finite float >= 0, got {power!r}")
    counts = _as_counts(class_counts)
    weights = torch.where(counts > 0, counts.clamp_min(1.0).pow(-power), torch.zeros_like(counts))
    if normalize:
        weights = normalize_weights(weights)
    return weights.float()


def class_balanced_weights(
    class_counts: ArrayLike, beta: float = 0.9999, normalize: bool = True
) -> Tensor:
    r"""Class-balanced weights from the effective number of samples (Cui et al. 2019).

    .. math::
        E_c = \frac{1 - \beta^{n_c}}{1 - \beta}, \qquad w_c = \frac{1}{E_c}
            = \frac{1 - \beta}{1 - \beta^{n_c}}

    ``beta = 0`` gives ``w_c = 1`` (no re-weighting); ``beta -> 1`` tends to
    inverse frequency. A class with zero samples gets weight 0. With
    ``normalize=True`` (Cui et al.'s code) the weights sum to ``C``.

    Args:
        class_counts: training samples per class ``(C,)``.
        beta: in ``[0, 1)``.
        normalize: rescale to sum to ``C``.

    Returns:
        float32 tensor ``(C,)``.
    """
    if not (0.0 <= beta < 1.0):
        raise ValueError(f"beta must lie in [0, 1), got {beta!r}")
    counts = _as_counts(class_counts)
    # 1 - beta**n computed as -expm1(n * log(beta)) for accuracy near beta = 1.
    if beta == 0.0:
        effective = torch.ones_like(counts)
    else:
        effective = -torch.expm1(counts * math.log(beta)) / (1.0 - beta)
    weights = torch.where(counts > 0, 1.0 / effective.clamp_min(1e-300), torch.zeros_like(counts))
    if normalize:
        weights = normalize_weights(weights)
    return weights.float()
