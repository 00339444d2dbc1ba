"""Long-tail building blocks, kept apart: how many per class, which samples, hold-outs.

* :func:`long_tail_counts` is a pure function (no data, no randomness): the
  per-class counts of Cui et al. (CVPR 2019).
* :func:`sample_per_class` chooses *which* samples to keep, given counts and an
  explicit seed.
* :func:`stratified_holdout` takes ``k`` per class (or a fraction) aside, e.g.
  a validation set, *before* the tail is cut.

Nothing here is random without a seed; the same seed gives the same indices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["class_counts", "long_tail_counts", "sample_per_class", "stratified_holdout"]

IntArray = npt.NDArray[np.int64]


def long_tail_counts(
    max_per_class: int,
    num_classes: int,
    imbalance_factor: float,
    profile: Literal["exp", "step"] = "exp",
) -> list[int]:
    r"""Per-class sample counts of a long-tailed split.

    ``"exp"`` (Cui et al. 2019): class ``c = 0..C-1`` keeps

    .. math:: n_c = \left\lfloor n_{\max} \cdot \rho^{-c/(C-1)} \right\rfloor

    with imbalance factor :math:`\rho = n_0 / n_{C-1}`. ``"step"`` (Cao et al.
    2019): the first :math:`\lfloor C/2 \rfloor` classes keep :math:`n_{\max}`, the others
    :math:`\lfloor n_{\max} / \rho \rfloor`.

    Rounding rule: always towards zero (``int()``), as in the public code of
    Cui et al. and Cao et al., and never below 1 sample. So the realised factor
    ``n_0 / n_{C-1}`` can exceed ``rho`` slightly (CIFAR-100 with 450 per class
    and ``rho = 100``: 450 down to ``floor(4.5) = 4``).

    Args:
        max_per_class: :math:`n_{\max}` (``>= 1``), the count of class 0.
        num_classes: ``C >= 1``.
        imbalance_factor: :math:`\rho >= 1` (1 = balanced).
        profile: ``"exp"`` or ``"step"``.

    Returns:
        ``C`` integer counts, non-increasing.

    Example:
        >>> long_tail_counts(5000, 10, 100)
        [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    """
    if isinstance(max_per_class, bool) or not isinstance(max_per_class, (int, np.integer)):
        raise ValueError(f"max_per_class must be an int >= 1, got {max_per_class!r}")
    if max_per_class < 1:
        raise ValueError(f"max_per_class must be >= 1, got {max_per_class}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if not (isinstance(imbalance_factor, (int, float)) and math.isfinite(imbalance_factor)):
        raise ValueError(f"imbalance_factor must be a finite number >= 1, got {imbalance_factor!r}")
    if imbalance_factor < 1:
        raise ValueError(
            f"imbalance_factor is largest / smallest class and must be >= 1, got {imbalance_factor}"
        )
    if profile == "exp":
        if num_classes == 1:
            return [int(max_per_class)]
        counts = [
            int(max_per_class * imbalance_factor ** (-c / (num_classes - 1)))
            for c in range(num_classes)
        ]
    elif profile == "step":
        half = num_classes // 2
        low = int(max_per_class / imbalance_factor)
        counts = [int(max_per_class)] * half + [low] * (num_classes - half)
    else:
        raise ValueError(f"profile must be 'exp' or 'step', got {profile!r}")
    return [max(1, n) for n in counts]


def _labels(labels: Sequence[int] | npt.ArrayLike) -> IntArray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"labels must be >= 0, got {int(arr.min())}")
    return arr.astype(np.int64, copy=False)


def class_counts(labels: Sequence[int] | npt.ArrayLike, num_classes: int) -> list[int]:
    """Samples per class ``(C,)`` of an integer label vector."""
    arr = _labels(labels)
    if arr.size and arr.max() >= num_classes:
        raise ValueError(f"labels must be < num_classes={num_classes}, got {int(arr.max())}")
    return [int(n) for n in np.bincount(arr, minlength=num_classes)]


def sample_per_class(
    labels: Sequence[int] | npt.ArrayLike,
    counts: Sequence[int],
    seed: int,
) -> IntArray:
    """Choose ``counts[c]`` samples of each class ``c`` uniformly at random, without replacement.

    Args:
        labels: ``(N,)`` integer labels in ``[0, C)``.
        counts: ``C`` non-negative counts to keep.
        seed: the seed of a ``numpy.random.Generator``; same seed, same indices.

    Returns:
        Sorted indices into ``labels``, ``sum(counts)`` of them.

    Raises:
        ValueError: if a class has fewer samples than asked for (names the class).
    """
    arr = _labels(labels)
    avail = np.bincount(arr, minlength=len(counts))
    if avail.size > len(counts):
        raise ValueError(
            f"labels hold class {avail.size - 1} but counts has only {len(counts)} entries"
        )
    rng = np.random.default_rng(seed)
    keep: list[IntArray] = []
    for c, n in enumerate(counts):
        if n < 0:
            raise ValueError(f"counts must be >= 0, got {n} for class {c}")
        if n > avail[c]:
            raise ValueError(f"class {c} has {int(avail[c])} samples, {n} were requested")
        idx = np.flatnonzero(arr == c)
        keep.append(rng.choice(idx, size=int(n), replace=False))
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def stratified_holdout(
    labels: Sequence[int] | npt.ArrayLike,
    per_class: int | float,
    seed: int,
    num_classes: int | None = None,
) -> tuple[IntArray, IntArray]:
    """Split off ``per_class`` samples of every class (e.g. a validation set).

    Args:
        labels: ``(N,)`` integer labels.
        per_class: an int ``k >= 0`` taken from each class, or a float in
            ``(0, 1)``: that fraction of each class, rounded half up, at least 1.
        seed: the seed; same seed, same split.
        num_classes: ``C``; default ``max(labels) + 1``.

    Returns:
        ``(held_out, rest)``: sorted, disjoint index arrays covering ``labels``.

    Raises:
        ValueError: if a class has fewer than ``k`` samples (names the class).
    """
    arr = _labels(labels)
    c_total = int(arr.max()) + 1 if num_classes is None and arr.size else (num_classes or 0)
    avail = np.bincount(arr, minlength=c_total)
    if isinstance(per_class, bool):
        raise ValueError(f"per_class must be an int >= 0 or a float in (0, 1), got {per_class!r}")
    if isinstance(per_class, (int, np.integer)):
        if per_class < 0:
            raise ValueError(f"per_class must be >= 0, got {per_class}")
        take = [int(per_class)] * c_total
    elif isinstance(per_class, float) and 0.0 < per_class < 1.0:
        take = [max(1, math.floor(n * per_class + 0.5)) if n else 0 for n in avail]
    else:
        raise ValueError(f"per_class must be an int >= 0 or a float in (0, 1), got {per_class!r}")
    held = sample_per_class(arr, take, seed)
    rest = np.setdiff1d(np.arange(arr.size, dtype=np.int64), held, assume_unique=True)
    return held, rest
