r"""Long-tailed MNIST mosaics: a multi-label image task built from real MNIST digits.

Each sample is a 28x28 image made of a 2x2 grid of MNIST digits, each digit
downsampled to 14x14 (the mean of each 2x2 pixel block). Its label is the set
of digits present, multi-hot over the 10 digits: ``y[d] = 1`` when at least
one of the four cells shows digit ``d``.

The four cells of a training mosaic draw their digits independently with a
long-tailed frequency, digit ``d`` with probability

.. math:: p_d \propto \rho^{-d / 9}

(``rho`` = ``imbalance_factor``; digit 0 is the most frequent, digit 9 the
rarest), so label ``d`` is present with probability :math:`1 - (1 - p_d)^4`.
At ``rho = 100`` and 4,000 training mosaics that gives about 3,500 positives
for digit 0 and about 65 for digit 9. Validation and test mosaics draw every
digit with probability 1/10 (balanced, as the single-label long-tail
protocols' validation and test sets), so every label has enough positives
for its AP to be measured.

Images: the validation mosaics come from a held-out part of MNIST's training
set (``val_pool`` images, disjoint from those of the training mosaics), the
test mosaics from MNIST's test set. The split is seeded and fixed per seed;
each cell picks a random image of its digit (with replacement across mosaics).
Pixels are scaled to ``[0, 1]`` and standardised with MNIST's mean and std.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cdbloss.lab.data.arrays import ImageArrays
from cdbloss.lab.data.idx_sources import VARIANTS, load_idx_dataset
from cdbloss.lab.data.yeast import MultiLabelSplits

__all__ = ["NUM_DIGITS", "build_mnist_mosaic", "digit_frequencies", "mnist_mosaic", "mosaics"]

NUM_DIGITS = 10


def digit_frequencies(imbalance_factor: float) -> npt.NDArray[np.float64]:
    r"""The per-cell digit probabilities ``(10,)``, :math:`p_d \propto \rho^{-d/9}` (1: uniform)."""
    if not isinstance(imbalance_factor, (int, float)) or imbalance_factor < 1:
        raise ValueError(f"imbalance_factor must be a number >= 1, got {imbalance_factor!r}")
    p = float(imbalance_factor) ** (-np.arange(NUM_DIGITS) / (NUM_DIGITS - 1))
    out: npt.NDArray[np.float64] = p / p.sum()
    return out


def _tiles(images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """``(N, 28, 28)`` uint8 -> ``(N, 14, 14)`` float32 in ``[0, 1]`` (2x2 block means)."""
    n, h, w = images.shape
    blocks = images.reshape(n, h // 2, 2, w // 2, 2).astype(np.float32)
    out: npt.NDArray[np.float32] = blocks.mean(axis=(2, 4)) / 255.0
    return out


def mosaics(
    images: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64],
    count: int,
    freq: npt.NDArray[np.float64],
    rng: np.random.Generator,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """``count`` mosaics from ``images`` (``(M, 28, 28)``) and their digit ``labels`` ``(M,)``.

    Returns:
        ``x`` ``(count, 1, 28, 28)`` float32 in ``[0, 1]`` and ``y`` ``(count, 10)``
        int64 multi-hot.

    Raises:
        ValueError: when a digit with non-zero probability has no image.
    """
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise ValueError(
            f"expected images (M, 28, 28) with M labels, got {images.shape} and {labels.shape}"
        )
    by_digit = [np.flatnonzero(labels == d) for d in range(NUM_DIGITS)]
    missing = [d for d in range(NUM_DIGITS) if freq[d] > 0 and len(by_digit[d]) == 0]
    if missing:
        raise ValueError(f"no image of digit(s) {missing} to draw mosaics from")
    digits = rng.choice(NUM_DIGITS, size=(count, 4), p=freq)
    picked = np.empty((count, 4), dtype=np.int64)
    for d in range(NUM_DIGITS):
        where = digits == d
        if where.any():
            picked[where] = rng.choice(by_digit[d], size=int(where.sum()))
    tiles = _tiles(images[picked.reshape(-1)]).reshape(count, 2, 2, 14, 14)
    x = tiles.transpose(0, 1, 3, 2, 4).reshape(count, 1, 28, 28)  # rows of cells, then pixels
    y = np.zeros((count, NUM_DIGITS), dtype=np.int64)
    np.put_along_axis(y, digits, 1, axis=1)
    return np.ascontiguousarray(x), y


def build_mnist_mosaic(
    arrays: ImageArrays,
    n_train: int = 4000,
    n_val: int = 1000,
    n_test: int = 2000,
    imbalance_factor: float = 100.0,
    val_pool: int = 10000,
    seed: int = 0,
    normalize: bool = True,
) -> MultiLabelSplits:
    """The mosaic splits from MNIST arrays in memory (see the module docstring).

    Args:
        arrays: MNIST (:func:`cdbloss.lab.data.idx_sources.load_idx_dataset`).
        n_train: training mosaics.
        n_val: validation mosaics.
        n_test: test mosaics.
        imbalance_factor: ``rho`` of the training digit frequencies.
        val_pool: MNIST training images held out for the validation mosaics.
        seed: the split and the draws.
        normalize: standardise with MNIST's mean and std (else ``[0, 1]``).
    """
    for name, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    n_images = len(arrays.train_labels)
    if not 0 < val_pool < n_images:
        raise ValueError(f"val_pool must lie in (0, {n_images}), got {val_pool!r}")
    rng = np.random.default_rng(seed)
    freq = digit_frequencies(imbalance_factor)
    uniform = digit_frequencies(1.0)
    order = rng.permutation(n_images)
    held, rest = order[:val_pool], order[val_pool:]
    im, lb = arrays.train_images, arrays.train_labels
    x_tr, y_tr = mosaics(im[rest], lb[rest], n_train, freq, rng)
    x_va, y_va = mosaics(im[held], lb[held], n_val, uniform, rng)
    x_te, y_te = mosaics(arrays.test_images, arrays.test_labels, n_test, uniform, rng)
    if normalize:
        v = VARIANTS["mnist"]
        x_tr, x_va, x_te = ((x - v.mean) / v.std for x in (x_tr, x_va, x_te))
    return MultiLabelSplits(
        x_tr.astype(np.float32),
        y_tr,
        x_va.astype(np.float32),
        y_va,
        x_te.astype(np.float32),
        y_te,
    )


def mnist_mosaic(
    n_train: int = 4000,
    n_val: int = 1000,
    n_test: int = 2000,
    imbalance_factor: float = 100.0,
    val_pool: int = 10000,
    seed: int = 0,
    root: str | None = None,
    download: bool = True,
) -> MultiLabelSplits:
    """Load (or fetch) real MNIST and build the mosaic splits (:func:`build_mnist_mosaic`)."""
    arrays = load_idx_dataset("mnist", root, download)
    return build_mnist_mosaic(arrays, n_train, n_val, n_test, imbalance_factor, val_pool, seed)
