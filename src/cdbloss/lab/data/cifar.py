"""CIFAR-10 / CIFAR-100: the ``cifar-lt`` protocol.

The sources (the official archive or its folder, the JPEG ImageFolder zip, the
lossless PNG copy, and the decoded cache) are :mod:`cdbloss.lab.data.cifar_sources`,
whose names are importable from here too; :func:`load_cifar` returns an
:class:`~cdbloss.lab.data.arrays.ImageArrays` (:data:`CifarArrays` is its old name).
The splits are :func:`cdbloss.lab.data.arrays.build_long_tail`, the one long-tail
builder, shared with ``mnist-lt`` and ``fashion-mnist-lt``.

Example:
    >>> from cdbloss.lab.data.base import load_protocol            # doctest: +SKIP
    >>> s = load_protocol("cifar-lt", dataset="cifar10", imbalance_factor=100)  # doctest: +SKIP
    >>> s.class_counts                                         # doctest: +SKIP
    [4950, 2967, 1778, 1066, 639, 383, 229, 137, 82, 49]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from cdbloss.lab.data import cifar_sources as _sources
from cdbloss.lab.data.arrays import ImageArrays, build_long_tail
from cdbloss.lab.data.base import DataSplits, register_protocol
from cdbloss.lab.data.cifar_sources import *  # noqa: F403  (re-exported, as before)
from cdbloss.lab.data.cifar_sources import CifarSpec, load_cifar, spec_of
from cdbloss.lab.data.splits import check_class_order, check_label_noise, check_max_per_class
from cdbloss.lab.data.tensor_dataset import Chain, ImageTransform, RandomCropFlip, ScaleNormalize

__all__ = [*_sources.__all__, "build_cifar_lt", "cifar_lt"]


def _resolve_dataset(dataset: str | None, num_classes: int | None) -> CifarSpec:
    by_classes = {10: "cifar10", 100: "cifar100"}
    if num_classes is not None and num_classes not in by_classes:
        raise ValueError(f"num_classes must be 10 or 100 for CIFAR, got {num_classes!r}")
    if dataset is None:
        dataset = by_classes[num_classes] if num_classes is not None else "cifar10"
    spec = spec_of(dataset)
    if num_classes is not None and num_classes != spec.num_classes:
        raise ValueError(
            f"dataset={dataset!r} has {spec.num_classes} classes, num_classes={num_classes}"
        )
    return spec


def build_cifar_lt(
    arrays: ImageArrays, imbalance_factor: float = 100.0, profile: Literal["exp", "step"] = "exp",
    val_per_class: int = 50, seed: int = 0, augment: bool = True,
    mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
    test_mean: Sequence[float] | None = None, test_std: Sequence[float] | None = None,
    *, max_per_class: int | None = None, class_order: Sequence[int] | None = None,
    label_noise: float = 0.0, noisy_classes: Sequence[int] = (),
) -> DataSplits:  # fmt: skip
    """The CIFAR-LT splits from arrays already in memory (see :func:`cifar_lt`)."""
    spec = spec_of(arrays.dataset)
    mean = tuple(mean) if mean is not None else spec.mean
    std = tuple(std) if std is not None else spec.std
    test_norm_given = test_mean is not None or test_std is not None
    test_mean = tuple(test_mean) if test_mean is not None else mean
    test_std = tuple(test_std) if test_std is not None else std
    norm = ScaleNormalize(mean, std)  # training and validation (as the authors' train script)
    test_norm = ScaleNormalize(test_mean, test_std) if test_norm_given else norm
    train_tf: ImageTransform = Chain(RandomCropFlip(32, 4), norm) if augment else norm
    return build_long_tail(
        arrays, "cifar-lt", imbalance_factor, profile, val_per_class, seed,
        train_transform=train_tf, eval_transform=norm, test_transform=test_norm,
        where=str(arrays.source.get("path", f"{spec.name} training set")),
        max_per_class=max_per_class, class_order=class_order, label_noise=label_noise,
        noisy_classes=noisy_classes,
        info={
            "augment": "random crop 32, padding 4, horizontal flip" if augment else None,
            "normalize": {"mean": list(mean), "std": list(std)},
            "test_normalize": {"mean": list(test_mean), "std": list(test_std)},
            "source": arrays.source,
            "pixels": arrays.source.get("pixels"),
            "extra_test": sorted(arrays.extra_test),
        },
    )  # fmt: skip


@register_protocol("cifar-lt")
def cifar_lt(
    dataset: str | None = None,
    num_classes: int | None = None,
    imbalance_factor: float = 100.0,
    profile: Literal["exp", "step"] = "exp",
    val_per_class: int = 50,
    seed: int = 0,
    root: str | None = None,
    source: str | None = None,
    verify: bool = True,
    augment: bool = True,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    test_mean: Sequence[float] | None = None,
    test_std: Sequence[float] | None = None,
    max_per_class: int | None = None,
    class_order: Sequence[int] | None = None,
    label_noise: float = 0.0,
    noisy_classes: Sequence[int] = (),
) -> DataSplits:
    """Long-tailed CIFAR-10 / CIFAR-100 (Cui et al. 2019; CDB paper, Tables 3 and 4).

    1. ``val_per_class`` images of every class are held out at random from the
       official training set (50 in the paper; the authors' code kept 25);
    2. class ``c`` keeps ``floor(n_max * factor ** (-c / (C - 1)))`` of the rest
       (``profile="exp"``; ``"step"`` halves the classes), ``n_max`` = 4,950
       (CIFAR-10) or 450 (CIFAR-100) with the default 50;
    3. test: the balanced official test set (10,000 images).

    Args:
        dataset: ``"cifar10"`` or ``"cifar100"``; default from ``num_classes``,
            else ``"cifar10"``.
        num_classes: 10 or 100, an alternative to ``dataset``.
        imbalance_factor: largest / smallest training class (200, 100, 50, 20, 10).
        profile: ``"exp"`` or ``"step"``.
        val_per_class: validation images per class.
        seed: one seed for the validation draw and the tail.
        root, source, verify: see :func:`load_cifar`.
        augment: random crop 32 with padding 4 and a horizontal flip on the
            training set.
        mean, std: normalisation of the training and validation images (pixels in
            ``[0, 1]``); default the dataset's own statistics.
        test_mean, test_std: normalisation of the test images; default the same as
            training. The authors' code trains and validates with the ImageNet
            statistics and tests with ``(0.4914, 0.4822, 0.4465)``,
            ``(0.2023, 0.1994, 0.2010)`` (``cifar_test.py``), a mismatch these options
            reproduce (configs/cifar10_lt_authors.yaml says how).
        max_per_class: a cap on ``n_max``; with ``imbalance_factor=1`` a balanced subset
            of that many images per class.
        class_order: the classes along the profile, head first (default ``0..C-1``);
            e.g. ``[3, 5, 2, 4, 0, 1, 6, 7, 8, 9]`` puts cat, dog, bird and deer, the
            hardest CIFAR-10 classes, in the head.
        label_noise, noisy_classes: each training label of ``noisy_classes`` is, with
            probability ``label_noise``, replaced by one of the other classes drawn
            uniformly (seeded); validation and test keep the true labels, and
            ``class_counts`` counts the observed training labels (``info`` has the
            clean counts and how many labels flipped).

    Returns:
        :class:`DataSplits` of :class:`TensorImageDataset`; items are
        ``(float32 (3, 32, 32), int)``.
    """
    spec = _resolve_dataset(dataset, num_classes)
    if max_per_class is not None:
        check_max_per_class(max_per_class)
    check_class_order(class_order, spec.num_classes)
    check_label_noise(label_noise, noisy_classes, spec.num_classes)
    for name, value in (
        ("mean", mean),
        ("std", std),
        ("test_mean", test_mean),
        ("test_std", test_std),
    ):
        _check_channels(name, value)
    arrays = load_cifar(spec.name, root, source, verify)
    return build_cifar_lt(
        arrays, imbalance_factor, profile, val_per_class, seed, augment,
        mean, std, test_mean, test_std, max_per_class=max_per_class, class_order=class_order,
        label_noise=label_noise, noisy_classes=noisy_classes,
    )  # fmt: skip


def _check_channels(name: str, value: Sequence[float] | None) -> None:
    """Three numbers (std > 0), checked before the data is read."""
    if value is None:
        return
    if (
        isinstance(value, (str, bytes))
        or not isinstance(value, Sequence)
        or len(value) != 3
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise ValueError(f"cifar-lt option {name} must be 3 numbers (R, G, B), got {value!r}")
    if name.endswith("std") and any(v <= 0 for v in value):
        raise ValueError(f"cifar-lt option {name} must be > 0, got {list(value)}")
