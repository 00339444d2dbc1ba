"""The cifar-lt shapes beyond the profile: a capped balanced subset, a class order, label noise."""

from __future__ import annotations

import numpy as np
import pytest

from cdbloss.lab.data import cifar as cf
from cdbloss.lab.data.splits import add_label_noise, cut_long_tail


def _arrays(per_class: int = 60) -> cf.CifarArrays:
    spec = cf.CIFAR_SPECS["cifar10"]
    rng = np.random.default_rng(5)
    y = rng.permutation(np.repeat(np.arange(10), per_class)).astype(np.int64)
    x = rng.integers(0, 256, (y.size, 3, 32, 32), dtype=np.uint8)
    te_y = np.repeat(np.arange(10), 3).astype(np.int64)
    te_x = rng.integers(0, 256, (te_y.size, 3, 32, 32), dtype=np.uint8)
    return cf.CifarArrays("cifar10", x, y, te_x, te_y, list(spec.class_names), {"path": "memory"})


def _labels(dataset: object) -> np.ndarray:
    return np.asarray([int(dataset[i][1]) for i in range(len(dataset))])  # type: ignore[index, arg-type]


def test_a_capped_factor_one_tail_is_a_balanced_subset() -> None:
    s = cf.build_cifar_lt(_arrays(), 1.0, val_per_class=5, max_per_class=20)
    assert s.class_counts == [20] * 10
    assert s.info["max_per_class"] == 20 and s.info["max_per_class_cap"] == 20
    # a cap above what is left changes nothing
    assert (
        cf.build_cifar_lt(_arrays(), 1.0, val_per_class=5, max_per_class=999).class_counts
        == [55] * 10
    )


def test_class_order_puts_the_named_classes_in_the_head() -> None:
    order = [3, 5, 2, 4, 0, 1, 6, 7, 8, 9]
    plain = cf.build_cifar_lt(_arrays(), 10.0, val_per_class=5)
    hard = cf.build_cifar_lt(_arrays(), 10.0, val_per_class=5, class_order=order)
    assert [hard.class_counts[c] for c in order] == plain.class_counts  # the profile, permuted
    assert hard.class_counts[3] == max(hard.class_counts)  # cat is the head
    assert np.bincount(_labels(hard.train), minlength=10).tolist() == hard.class_counts
    # the identity order is the default draw, image for image
    same = cf.build_cifar_lt(_arrays(), 10.0, val_per_class=5, class_order=list(range(10)))
    assert plain.train.source_indices is not None  # type: ignore[attr-defined]
    assert np.array_equal(same.train.source_indices, plain.train.source_indices)  # type: ignore[attr-defined]


def test_label_noise_flips_only_the_noisy_classes_and_never_to_themselves() -> None:
    y = np.repeat(np.arange(4), 2500)
    noisy = add_label_noise(y, 4, 0.3, [0, 1], seed=7)
    flipped = noisy != y
    assert not flipped[y >= 2].any()  # the other classes keep their labels
    for c in (0, 1):
        assert abs(flipped[y == c].mean() - 0.3) < 0.03
    assert np.array_equal(add_label_noise(y, 4, 0.3, [0, 1], seed=7), noisy)  # seeded
    assert np.array_equal(add_label_noise(y, 4, 0.0, [0, 1], seed=7), y)
    # a flipped label goes to each other class about equally often
    moved = noisy[flipped & (y == 0)]
    assert set(moved.tolist()) == {1, 2, 3}
    assert np.bincount(moved, minlength=4)[1:].min() > 0.25 * moved.size


def test_noisy_training_labels_with_clean_validation_and_test() -> None:
    clean = cf.build_cifar_lt(_arrays(), 10.0, val_per_class=5)
    noisy = cf.build_cifar_lt(
        _arrays(), 10.0, val_per_class=5, label_noise=0.5, noisy_classes=[0, 1]
    )
    assert np.array_equal(noisy.train.source_indices, clean.train.source_indices)  # type: ignore[attr-defined]
    got, true = _labels(noisy.train), _labels(clean.train)
    changed = got != true
    assert changed.any() and set(true[changed].tolist()) <= {0, 1}
    assert noisy.info["flipped_labels"] == int(changed.sum())
    assert noisy.info["clean_counts"] == clean.class_counts
    assert noisy.class_counts == np.bincount(got, minlength=10).tolist()  # the observed counts
    assert np.array_equal(_labels(noisy.val), _labels(clean.val))
    assert np.array_equal(_labels(noisy.test), _labels(clean.test))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"class_order": [0, 1, 2]}, "class_order must list every class 0..9 once"),
        ({"class_order": [0] * 10}, "class_order must list every class"),
        ({"max_per_class": 0}, "max_per_class must be an int >= 1"),
        ({"label_noise": 1.5, "noisy_classes": [0]}, r"label_noise must be a float in \[0, 1\]"),
        (
            {"label_noise": 0.3, "noisy_classes": [10]},
            r"noisy_classes must be distinct classes in \[0, 10\)",
        ),
        ({"label_noise": 0.3}, "label_noise > 0 needs noisy_classes"),
    ],
)
def test_bad_shapes_fail_before_the_data_is_read(options: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cf.cifar_lt(dataset="cifar10", root="/nonexistent", **options)  # type: ignore[arg-type]


def test_cut_long_tail_with_an_order_and_a_cap() -> None:
    labels = np.repeat(np.arange(3), 50)
    picked, counts, n_max = cut_long_tail(
        labels, 3, 4.0, 0, class_order=[2, 0, 1], max_per_class=40
    )
    assert n_max == 40 and counts == [20, 10, 40]
    assert np.bincount(labels[picked], minlength=3).tolist() == counts
