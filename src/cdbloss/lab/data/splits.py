"""The CIFAR-LT split procedure on label vectors, shared by cifar-lt, mnist-lt and fashion-mnist-lt.

Order of operations (paper, section 4.2; Cui et al. 2019):

1. hold out ``val_per_class`` images of every class from the official
   training set at random (the validation set, balanced);
2. ``n_max`` = the smallest remaining class size (5,000 - 50 = 4,950 for
   CIFAR-10, 450 for CIFAR-100);
3. class ``c`` keeps ``long_tail_counts(n_max, C, factor, profile)[c]`` of its
   remaining images, chosen at random.

The split-seed rule, one for every protocol that draws its own splits (``cifar-lt``,
``mnist-lt``, ``fashion-mnist-lt``, ``mnist-4v9``, ``folder``): each draw has its own
stream, ``derive_seed(seed, purpose)``, with the purposes :data:`SEED_VAL` (0, the
validation hold-out), :data:`SEED_TRAIN` (1, the training draw: the tail) and
:data:`SEED_TEST` (2, a test hold-out), so changing the validation size does not
silently reuse the same random stream for the tail. The tail's ``n_max`` is the
smallest class left after the hold-outs (:func:`cut_long_tail`).

Example:
    >>> import numpy as np
    >>> labels = np.repeat(np.arange(3), 100)
    >>> s = long_tail_split(labels, 3, imbalance_factor=10, val_per_class=10, seed=0)
    >>> s.counts, len(s.val), s.max_per_class
    ([90, 28, 9], 30, 90)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from cdbloss.lab.data.longtail import long_tail_counts, sample_per_class, stratified_holdout

__all__ = [
    "SEED_NOISE",
    "SEED_TEST",
    "SEED_TRAIN",
    "SEED_VAL",
    "LongTailIndices",
    "add_label_noise",
    "check_class_order",
    "check_label_noise",
    "check_max_per_class",
    "check_seed",
    "cut_long_tail",
    "derive_seed",
    "long_tail_split",
]

IntArray = npt.NDArray[np.int64]


#: ``derive_seed`` purposes: the validation hold-out, the training draw (the tail), a
#: test hold-out. Fixed: the committed results were drawn with them.
SEED_VAL, SEED_TRAIN, SEED_TEST = 0, 1, 2
#: the purpose of the label-noise draw (:func:`add_label_noise`)
SEED_NOISE = 3


def check_seed(seed: object) -> int:
    """``seed`` as an ``int``; ``ValueError`` unless it is an int ``>= 0``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return int(seed)


def derive_seed(seed: int, *keys: int) -> int:
    """A 32-bit seed derived from ``seed`` and ``keys`` (independent streams per purpose).

    ``SeedSequence([seed, *keys]).generate_state(1)[0]``; the keys of the split draws
    are :data:`SEED_VAL`, :data:`SEED_TRAIN` and :data:`SEED_TEST`.
    """
    return int(np.random.SeedSequence([check_seed(seed), *keys]).generate_state(1)[0])


def cut_long_tail(
    labels: npt.ArrayLike,
    num_classes: int,
    imbalance_factor: float,
    seed: int,
    profile: Literal["exp", "step"] = "exp",
    *,
    max_per_class: int | None = None,
    class_order: Sequence[int] | None = None,
) -> tuple[IntArray, list[int], int]:
    """The long tail drawn from ``labels`` (what is left after the hold-outs).

    ``n_max`` is the smallest class in ``labels`` (at most ``max_per_class``); the
    ``k``-th class of ``class_order`` (default ``0, 1, ..., K-1``: class 0 is the head)
    keeps ``long_tail_counts(n_max, K, imbalance_factor, profile)[k]`` of its samples,
    drawn with ``derive_seed(seed, SEED_TRAIN)``. So no class is asked for more than it has.

    Args:
        labels: ``(N,)`` integer labels in ``[0, K)``, every class present.
        max_per_class: a cap on ``n_max`` (``imbalance_factor=1`` with a cap: a
            balanced subset of that size per class).
        class_order: a permutation of ``0..K-1``, head first.

    Returns:
        ``(picked, counts, n_max)``: sorted positions into ``labels``, the ``K`` counts
        (by class index).
    """
    arr = np.asarray(labels, dtype=np.int64)
    n_max = int(np.bincount(arr, minlength=num_classes).min())
    if max_per_class is not None:
        n_max = min(n_max, check_max_per_class(max_per_class))
    profile_counts = long_tail_counts(n_max, num_classes, imbalance_factor, profile)
    order = check_class_order(class_order, num_classes)
    counts = [0] * num_classes
    for rank, c in enumerate(order):
        counts[c] = profile_counts[rank]
    return sample_per_class(arr, counts, derive_seed(seed, SEED_TRAIN)), counts, n_max


def check_max_per_class(max_per_class: object) -> int:
    """``max_per_class`` as an int >= 1, or ``ValueError`` saying what came."""
    if isinstance(max_per_class, bool) or not isinstance(max_per_class, (int, np.integer)):
        raise ValueError(f"max_per_class must be an int >= 1 or None, got {max_per_class!r}")
    if int(max_per_class) < 1:
        raise ValueError(f"max_per_class must be an int >= 1 or None, got {max_per_class!r}")
    return int(max_per_class)


def check_class_order(class_order: Sequence[int] | None, num_classes: int) -> list[int]:
    """``class_order`` as a list, checked to be a permutation of ``0..C-1`` (default the identity)."""
    if class_order is None:
        return list(range(num_classes))
    order = list(class_order)
    if sorted(order) != list(range(num_classes)) or any(isinstance(c, bool) for c in order):
        raise ValueError(
            f"class_order must list every class 0..{num_classes - 1} once (head first), "
            f"got {order!r}"
        )
    return [int(c) for c in order]


def add_label_noise(
    labels: npt.ArrayLike,
    num_classes: int,
    rate: float,
    classes: Sequence[int],
    seed: int,
) -> IntArray:
    """Symmetric label noise on some classes: each of their labels, with probability ``rate``,
    replaced by one of the other ``C - 1`` classes drawn uniformly (``derive_seed(seed, SEED_NOISE)``).

    Args:
        labels: ``(N,)`` true labels in ``[0, C)``.
        rate: in ``[0, 1]``.
        classes: the classes whose samples may be relabelled.

    Returns:
        a new ``(N,)`` int64 array of observed labels.
    """
    check_label_noise(rate, classes, num_classes)
    y: IntArray = np.array(labels, dtype=np.int64)
    n = int(y.shape[0])
    rng = np.random.default_rng(derive_seed(seed, SEED_NOISE))
    flip = np.isin(y, list(classes)) & (rng.random(n) < rate)
    shift = rng.integers(1, num_classes, size=n)  # 1..C-1: never the true class
    y[flip] = (y[flip] + shift[flip]) % num_classes
    return y


def check_label_noise(rate: object, classes: Sequence[int], num_classes: int) -> None:
    """``rate`` in ``[0, 1]`` and ``classes`` distinct classes of ``[0, C)``, or ``ValueError``."""
    ok = isinstance(rate, (int, float)) and not isinstance(rate, bool)
    if not ok or not 0.0 <= float(rate) <= 1.0:  # type: ignore[arg-type]
        raise ValueError(f"label_noise must be a float in [0, 1], got {rate!r}")
    cls = list(classes)
    bad = [c for c in cls if isinstance(c, bool) or not isinstance(c, (int, np.integer))]
    if bad or len(set(cls)) != len(cls) or any(not 0 <= int(c) < num_classes for c in cls):
        raise ValueError(
            f"noisy_classes must be distinct classes in [0, {num_classes}), got {cls!r}"
        )
    if float(rate) > 0 and not cls:  # type: ignore[arg-type]
        raise ValueError("label_noise > 0 needs noisy_classes (the classes whose labels flip)")


@dataclass(frozen=True)
class LongTailIndices:
    """Indices into the official training set.

    Attributes:
        train: sorted indices of the long-tailed training images.
        val: sorted indices of the balanced validation images (disjoint from ``train``).
        counts: training images per class, length ``C``.
        max_per_class: ``n_max`` used for the profile.
    """

    train: IntArray
    val: IntArray
    counts: list[int]
    max_per_class: int


def long_tail_split(
    labels: Sequence[int] | npt.ArrayLike,
    num_classes: int,
    imbalance_factor: float,
    val_per_class: int,
    seed: int,
    profile: Literal["exp", "step"] = "exp",
    class_names: Sequence[str] | None = None,
    source: str = "the training set",
    *,
    max_per_class: int | None = None,
    class_order: Sequence[int] | None = None,
) -> LongTailIndices:
    """Hold out a balanced validation set, then cut a long tail from the rest.

    Args:
        labels: ``(N,)`` labels of the official training set, in ``[0, C)``.
        num_classes: ``C``.
        imbalance_factor: largest / smallest class, ``>= 1``.
        val_per_class: images per class held out for validation, ``>= 0``.
        seed: one seed for the whole split.
        profile: ``"exp"`` or ``"step"`` (see :func:`long_tail_counts`).
        class_names: for error messages.
        source: what ``labels`` belong to, for error messages.
        max_per_class, class_order: see :func:`cut_long_tail`.

    Raises:
        ValueError: a class too small for the validation size (names the
            class and both numbers), labels outside ``[0, C)``, bad factor.
    """
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{source}: labels must be 1-D, got shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(
            f"{source}: labels must lie in [0, {num_classes}), got range "
            f"[{int(arr.min())}, {int(arr.max())}]"
        )
    if isinstance(val_per_class, bool) or not isinstance(val_per_class, (int, np.integer)):
        raise ValueError(f"val_per_class must be an int >= 0, got {val_per_class!r}")
    if val_per_class < 0:
        raise ValueError(f"val_per_class must be >= 0, got {val_per_class}")
    avail = np.bincount(arr.astype(np.int64), minlength=num_classes)
    names = list(class_names) if class_names is not None else [str(c) for c in range(num_classes)]
    for c in range(num_classes):
        if avail[c] <= val_per_class:
            raise ValueError(
                f"{source}: class {c} ({names[c]}) has {int(avail[c])} images; "
                f"val_per_class={val_per_class} would leave {max(0, int(avail[c]) - val_per_class)} "
                "for training (at least 1 is needed)"
            )
    val, rest = stratified_holdout(
        arr, int(val_per_class), derive_seed(seed, SEED_VAL), num_classes
    )
    picked, counts, n_max = cut_long_tail(
        arr[rest], num_classes, imbalance_factor, seed, profile,
        max_per_class=max_per_class, class_order=class_order,
    )  # fmt: skip
    train = np.sort(rest[picked])
    return LongTailIndices(train=train, val=val, counts=counts, max_per_class=n_max)
