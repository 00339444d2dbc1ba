"""MNIST mosaics on small arrays made here: layout, labels, long tail, disjoint image pools."""

from __future__ import annotations

import numpy as np
import pytest

from cdbloss.lab.data.arrays import ImageArrays
from cdbloss.lab.data.mosaic import build_mnist_mosaic, digit_frequencies, mosaics


def _arrays(n_train: int = 600, n_test: int = 200) -> ImageArrays:
    """Fake digits that say where they came from: the first two 2x2 blocks of image ``i``
    hold ``i % 256`` and ``i // 256 + 1``, and test images carry 9 in the third block."""
    rng = np.random.default_rng(0)

    def part(n: int, test: bool) -> tuple[np.ndarray, np.ndarray]:
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        i = np.arange(n)
        images[:, :2, :2] = (i % 256)[:, None, None]
        images[:, :2, 2:4] = (i // 256 + 1)[:, None, None]
        images[:, :2, 4:6] = 9 if test else 0
        return images, rng.integers(0, 10, n).astype(np.int64)

    tr_im, tr_lb = part(n_train, False)
    te_im, te_lb = part(n_test, True)
    return ImageArrays("mnist", tr_im, tr_lb, te_im, te_lb, [str(d) for d in range(10)])


def _cells(x: np.ndarray) -> list[tuple[int, int]]:
    """(source image, is-test) of each cell of each mosaic, decoded from the pixels."""
    out = []
    for img in x[:, 0]:
        for r in (0, 14):
            for c in (0, 14):
                px = np.rint(img[r, c : c + 3] * 255).astype(int)
                out.append((int(px[0] + 256 * (px[1] - 1)), int(px[2] == 9)))
    return out


def test_digit_frequencies_follow_the_long_tail() -> None:
    p = digit_frequencies(100.0)
    assert p.sum() == pytest.approx(1.0)
    assert p[0] / p[9] == pytest.approx(100.0)
    assert np.all(np.diff(p) < 0)
    assert np.allclose(digit_frequencies(1.0), 0.1)
    with pytest.raises(ValueError, match="imbalance_factor"):
        digit_frequencies(0.5)


def test_a_mosaic_holds_four_downsampled_digits_and_their_label_set() -> None:
    images = np.zeros((4, 28, 28), dtype=np.uint8)
    for d in range(4):
        images[d] = 60 * (d + 1)  # digit d: a flat image of value 60 (d + 1)
    images[2, :2, :2] = [[0, 255], [255, 255]]  # one 2x2 block averages to 191.25
    labels = np.array([0, 1, 2, 3])
    freq = np.array([0.5, 0.0, 0.5, 0.0] + [0.0] * 6)
    x, y = mosaics(images, labels, 50, freq, np.random.default_rng(0))
    assert x.shape == (50, 1, 28, 28) and x.dtype == np.float32 and y.shape == (50, 10)
    for img, lab in zip(x[:, 0], y, strict=True):
        cells = [img[:14, :14], img[:14, 14:], img[14:, :14], img[14:, 14:]]
        digits = set()
        for cell in cells:
            d = 0 if np.allclose(cell, 60 / 255) else 2
            if d == 2:
                assert cell[0, 0] == pytest.approx(191.25 / 255)
                assert np.allclose(cell.reshape(-1)[1:], 180 / 255)
            digits.add(d)
        assert set(np.flatnonzero(lab)) == digits
    assert y[:, [1, 3]].sum() == 0 and y[:, [0, 2]].all(axis=1).any()
    with pytest.raises(ValueError, match=r"no image of digit\(s\) \[4, 5, 6, 7, 8, 9\]"):
        mosaics(images, labels, 5, digit_frequencies(1.0), np.random.default_rng(0))


def test_splits_long_tailed_train_balanced_val_test_disjoint_pools() -> None:
    arrays = _arrays()
    s = build_mnist_mosaic(
        arrays, n_train=800, n_val=300, n_test=300, val_pool=200, seed=3, normalize=False
    )
    assert s.x_train.shape == (800, 1, 28, 28) and s.y_val.shape == (300, 10)
    counts = s.y_train.sum(0)
    assert counts[0] > 5 * counts[9] and counts[0] == counts.max()
    val_counts = s.y_val.sum(0)
    assert val_counts.max() < 2 * val_counts.min()
    # every label set is the set of the source images' digits
    for x, y, test in ((s.x_train, s.y_train, 0), (s.x_val, s.y_val, 0), (s.x_test, s.y_test, 1)):
        cells = _cells(x)
        assert {t for _, t in cells} == {test}
        labels = arrays.test_labels if test else arrays.train_labels
        for k, row in enumerate(y):
            digits = {int(labels[i]) for i, _ in cells[4 * k : 4 * k + 4]}
            assert set(np.flatnonzero(row)) == digits
    # validation cells come from 200 held-out training images that no training cell uses
    train_src = {i for i, _ in _cells(s.x_train)}
    val_src = {i for i, _ in _cells(s.x_val)}
    assert train_src.isdisjoint(val_src) and len(val_src) <= 200
    again = build_mnist_mosaic(
        arrays, n_train=800, n_val=300, n_test=300, val_pool=200, seed=3, normalize=False
    )
    assert np.array_equal(again.x_train, s.x_train) and np.array_equal(again.y_test, s.y_test)
    normed = build_mnist_mosaic(arrays, n_train=10, n_val=10, n_test=10, val_pool=200, seed=3)
    assert normed.x_train.dtype == np.float32 and normed.x_train.min() < 0  # (0 - mean) / std
    with pytest.raises(ValueError, match="val_pool"):
        build_mnist_mosaic(arrays, val_pool=600)
    with pytest.raises(ValueError, match="n_train"):
        build_mnist_mosaic(arrays, n_train=0)
