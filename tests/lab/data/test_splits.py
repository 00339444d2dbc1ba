"""The CIFAR-LT split procedure: counts against hand-computed values, disjointness, seeds."""

from __future__ import annotations

import numpy as np
import pytest

from cdbloss.lab.data.splits import derive_seed, long_tail_split


def _labels(num_classes: int, per_class: int) -> np.ndarray:
    rng = np.random.default_rng(123)
    return rng.permutation(np.repeat(np.arange(num_classes), per_class))


def test_cifar100_shape_factor_100_floor_rounding() -> None:
    # CIFAR-100: 500 per class, 50 held out -> n_max = 450; factor 100.
    # n_c = floor(450 * 100 ** (-c / 99)):
    #   c=1: 450 * 0.954548... = 429.55 -> 429;  c=50: 43.97 -> 43;
    #   c=98: 4.71 -> 4;  c=99: 450 / 100 = 4.5 -> 4 (floor, not round).
    labels = _labels(100, 500)
    s = long_tail_split(labels, 100, imbalance_factor=100, val_per_class=50, seed=0)
    assert s.max_per_class == 450
    assert s.counts[:5] == [450, 429, 410, 391, 373]
    assert s.counts[50] == 43
    assert s.counts[98] == 4
    assert s.counts[99] == 4
    assert sum(s.counts) == 9754
    assert len(s.val) == 100 * 50
    assert np.bincount(labels[s.train], minlength=100).tolist() == s.counts
    assert np.bincount(labels[s.val], minlength=100).tolist() == [50] * 100


@pytest.mark.parametrize(
    ("factor", "smallest", "total"),
    [(200, 2, 8548), (50, 9, 11349), (20, 22, 14315), (10, 45, 17614)],
)
def test_cifar100_other_factors(factor: int, smallest: int, total: int) -> None:
    # 450 / factor, floored: 2.25 -> 2, 9, 22.5 -> 22, 45.
    s = long_tail_split(_labels(100, 500), 100, factor, 50, seed=1)
    assert s.counts[0] == 450
    assert s.counts[-1] == smallest
    assert sum(s.counts) == total


def test_cifar10_factor_100() -> None:
    # 4950 * 100 ** (-c / 9): 4950, 2967.4, 1778.9, 1066.4, 639.3, 383.2, 229.8, 137.7, 82.6, 49.5
    s = long_tail_split(_labels(10, 5000), 10, 100, 50, seed=0)
    assert s.counts == [4950, 2967, 1778, 1066, 639, 383, 229, 137, 82, 49]
    assert len(s.train) == 12280


def test_step_profile() -> None:
    s = long_tail_split(_labels(10, 5000), 10, 100, 50, seed=0, profile="step")
    assert s.counts == [4950] * 5 + [49] * 5


def test_disjoint_sorted_and_seeded() -> None:
    labels = _labels(10, 300)
    a = long_tail_split(labels, 10, 10, 25, seed=7)
    b = long_tail_split(labels, 10, 10, 25, seed=7)
    c = long_tail_split(labels, 10, 10, 25, seed=8)
    assert np.intersect1d(a.train, a.val).size == 0
    assert (np.diff(a.train) > 0).all() and (np.diff(a.val) > 0).all()
    np.testing.assert_array_equal(a.train, b.train)
    np.testing.assert_array_equal(a.val, b.val)
    assert not np.array_equal(a.val, c.val)
    assert not np.array_equal(a.train, c.train)


def test_n_max_is_smallest_remaining_class() -> None:
    labels = np.concatenate([np.repeat(0, 100), np.repeat(1, 80), np.repeat(2, 120)])
    s = long_tail_split(labels, 3, 4, 10, seed=0)
    assert s.max_per_class == 70  # class 1: 80 - 10
    assert s.counts == [70, 35, 17]


def test_validation_larger_than_a_class_is_refused() -> None:
    labels = np.concatenate([np.repeat(0, 100), np.repeat(1, 30)])
    with pytest.raises(
        ValueError, match=r"mnist.idx: class 1 \(cat\) has 30 images; val_per_class=30"
    ):
        long_tail_split(labels, 2, 10, 30, seed=0, class_names=["dog", "cat"], source="mnist.idx")


def test_labels_out_of_range_and_bad_options() -> None:
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        long_tail_split(np.array([0, 1, 2]), 2, 10, 0, seed=0)
    with pytest.raises(ValueError, match="imbalance_factor"):
        long_tail_split(_labels(2, 10), 2, 0.5, 1, seed=0)
    with pytest.raises(ValueError, match="val_per_class"):
        long_tail_split(_labels(2, 10), 2, 2, -1, seed=0)
    with pytest.raises(ValueError, match="seed"):
        long_tail_split(_labels(2, 10), 2, 2, 1, seed=-3)


def test_derive_seed_is_stable_and_distinct() -> None:
    assert derive_seed(0, 1) == derive_seed(0, 1)
    assert len({derive_seed(0, 0), derive_seed(0, 1), derive_seed(1, 0)}) == 3
