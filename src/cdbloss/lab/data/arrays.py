"""One arrays type and one long-tail builder for the in-memory datasets (MNIST, Fashion, CIFAR).

The sources (IDX files and their mirrors, :mod:`~cdbloss.lab.data.idx_sources`; CIFAR
pickles, JPEG ImageFolders and the lossless PNG copy,
:mod:`~cdbloss.lab.data.cifar_sources`) each return an :class:`ImageArrays`; the
protocols (:mod:`~cdbloss.lab.data.mnist`, :mod:`~cdbloss.lab.data.cifar`) take one and
cut their splits from it. The long-tailed protocols (``mnist-lt``, ``fashion-mnist-lt``,
``cifar-lt``) all go through :func:`build_long_tail`:

1. the split rule of :func:`cdbloss.lab.data.splits.long_tail_split` (a balanced
   validation hold-out, then the tail, ``n_max`` = the smallest remaining class);
2. the whole official test set, and every extra test set the source carries;
3. :class:`~cdbloss.lab.data.tensor_dataset.TensorImageDataset` splits, images
   ``(N, C, H, W)`` uint8, with the protocol's transforms.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(np.arange(3), 20)
    >>> a = ImageArrays("toy", rng.integers(0, 256, (60, 4, 4), np.uint8), y,
    ...                 np.zeros((6, 4, 4), np.uint8), np.repeat(np.arange(3), 2), ["a", "b", "c"])
    >>> s = build_long_tail(a, "toy-lt", imbalance_factor=4, val_per_class=5, seed=0)
    >>> s.class_counts, len(s.val), len(s.test), tuple(s.train[0][0].shape)
    ([15, 7, 3], 15, 6, (1, 4, 4))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import Dataset

from cdbloss.lab.data.base import DataSplits
from cdbloss.lab.data.splits import add_label_noise, check_seed, long_tail_split
from cdbloss.lab.data.tensor_dataset import ImageTransform, TensorImageDataset

__all__ = ["ImageArrays", "build_long_tail", "channels_first", "check_label_range", "subset"]

UInt8Array = npt.NDArray[np.uint8]
IntArray = npt.NDArray[np.int64]


@dataclass
class ImageArrays:
    """A dataset's official training and test sets in memory, as one source delivered them.

    Attributes:
        dataset: ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"``, ``"cifar100"``.
        train_images: ``(N, H, W)`` (one channel: MNIST, Fashion) or ``(N, C, H, W)``
            (CIFAR: ``(50000, 3, 32, 32)``) uint8.
        train_labels: ``(N,)`` int64 in ``[0, K)``, ``K = len(class_names)``.
        test_images, test_labels: the same for the test set.
        class_names: ``K`` names, index = label.
        source: where the arrays came from (path, kind, checksums, verified, cache
            file; for IDX files ``files``: role -> ``{"path", "sha256", "md5"}``).
        extra_test: further evaluation sets, name -> ``(images (M, ...) uint8, labels
            (M,) int64)``: for CIFAR-10 with the lossless copy present,
            ``lossless-1000`` (the first 1,000 official test images, lossless) and
            ``jpeg-1000`` (the JPEG copy's versions of the same images, in the same order).
    """

    dataset: str
    train_images: UInt8Array
    train_labels: IntArray
    test_images: UInt8Array
    test_labels: IntArray
    class_names: list[str]
    source: dict[str, Any] = field(default_factory=dict)
    extra_test: dict[str, tuple[UInt8Array, IntArray]] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        """``K``."""
        return len(self.class_names)

    @property
    def variant(self) -> str:
        """The dataset's name (the name :class:`MnistArrays` used)."""
        return self.dataset

    @property
    def sources(self) -> dict[str, dict[str, str]]:
        """Per-file checksums of an IDX dataset: role -> ``{"path", "sha256", "md5"}``."""
        files: dict[str, dict[str, str]] = self.source.get("files", {})
        return files


def check_label_range(labels: IntArray, num_classes: int, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` and the position of the first label outside ``[0, K)``."""
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = int(np.flatnonzero((labels < 0) | (labels >= num_classes))[0])
        raise ValueError(
            f"{where}: label {int(labels[bad])} at position {bad} is outside the class range "
            f"[0, {num_classes})"
        )


def channels_first(images: UInt8Array) -> UInt8Array:
    """``(N, H, W)`` -> ``(N, 1, H, W)`` (a view); ``(N, C, H, W)`` as it is."""
    return images[:, None] if images.ndim == 3 else images


def subset(
    images: UInt8Array,
    idx: IntArray,
    labels: IntArray,
    transform: ImageTransform | None,
    num_classes: int,
) -> TensorImageDataset:
    """The samples ``images[idx]`` (copied, ``(n, C, H, W)``) with ``labels`` ``(n,)``,
    remembering ``idx`` as their source positions."""
    return TensorImageDataset(
        torch.from_numpy(np.ascontiguousarray(channels_first(images)[idx])),
        torch.from_numpy(labels.astype(np.int64)),
        transform=transform,
        num_classes=num_classes,
        source_indices=idx.astype(np.int64),
    )


def build_long_tail(
    arrays: ImageArrays, protocol: str, imbalance_factor: float = 100.0,
    profile: Literal["exp", "step"] = "exp", val_per_class: int = 50, seed: int = 0, *,
    train_transform: ImageTransform | None = None, eval_transform: ImageTransform | None = None,
    test_transform: ImageTransform | None = None, where: str | None = None,
    info: Mapping[str, Any] | None = None, max_per_class: int | None = None,
    class_order: Sequence[int] | None = None, label_noise: float = 0.0,
    noisy_classes: Sequence[int] = (),
) -> DataSplits:  # fmt: skip
    """The long-tailed splits of ``arrays`` (the CIFAR-LT procedure), for any protocol.

    Args:
        arrays: the official sets.
        protocol: the name recorded in ``info["protocol"]``.
        imbalance_factor, profile, val_per_class, seed: see
            :func:`~cdbloss.lab.data.splits.long_tail_split`.
        train_transform: applied to training images (``None``: ``x / 255``).
        eval_transform: validation images.
        test_transform: test and extra test images.
        where: names the training labels in error messages (default the source path).
        info: protocol-specific entries appended to the common ``info``.
        max_per_class, class_order: the cap on ``n_max`` and the classes' order along the
            profile, head first (:func:`~cdbloss.lab.data.splits.cut_long_tail`).
        label_noise, noisy_classes: symmetric noise on the training labels of those
            classes (:func:`~cdbloss.lab.data.splits.add_label_noise`); validation and
            test keep the true labels, and ``class_counts`` counts the observed ones.

    Returns:
        :class:`DataSplits`; ``info`` holds ``protocol``, ``dataset``,
        ``imbalance_factor``, ``profile``, ``val_per_class``, ``seed``, ``max_per_class``
        (``n_max``), ``realised_imbalance`` (``n_0 / n_{K-1}``), then ``info``.
    """
    seed = check_seed(seed)
    k = arrays.num_classes
    if where is None:
        where = str(arrays.source.get("path", f"{arrays.dataset} training set"))
    s = long_tail_split(
        arrays.train_labels, k, imbalance_factor, val_per_class, seed, profile,
        arrays.class_names, where, max_per_class=max_per_class, class_order=class_order,
    )  # fmt: skip
    train_y = arrays.train_labels
    observed = train_y[s.train]
    counts = list(s.counts)
    shape: dict[str, Any] = {}
    if max_per_class is not None or class_order is not None:
        shape = {"max_per_class_cap": max_per_class, "class_order": class_order}
    if label_noise or noisy_classes:
        observed = add_label_noise(observed, k, label_noise, noisy_classes, seed)
        flipped = int((observed != train_y[s.train]).sum())
        counts = np.bincount(observed, minlength=k).astype(int).tolist()
        shape |= {"label_noise": label_noise, "noisy_classes": list(noisy_classes),
                  "flipped_labels": flipped, "clean_counts": list(s.counts)}  # fmt: skip
    all_test = np.arange(arrays.test_labels.shape[0], dtype=np.int64)
    extra: dict[str, Dataset[Any]] = {
        name: subset(x, np.arange(y.shape[0], dtype=np.int64), y, test_transform, k)
        for name, (x, y) in arrays.extra_test.items()
    }
    return DataSplits(
        train=subset(arrays.train_images, s.train, observed, train_transform, k),
        val=subset(arrays.train_images, s.val, train_y[s.val], eval_transform, k),
        test=subset(arrays.test_images, all_test, arrays.test_labels, test_transform, k),
        num_classes=k,
        class_counts=counts,
        class_names=list(arrays.class_names),
        info={
            "protocol": protocol,
            "dataset": arrays.dataset,
            "imbalance_factor": imbalance_factor,
            "profile": profile,
            "val_per_class": val_per_class,
            "seed": seed,
            "max_per_class": s.max_per_class,
            "realised_imbalance": max(s.counts) / min(s.counts),
            **shape,
            **(info or {}),
        },
        extra_test=extra,
    )
