"""Weight formulas against the formulas written out by hand."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cdbloss import (
    cdb_weights,
    class_balanced_weights,
    dynamic_tau,
    inverse_frequency_weights,
    normalize_weights,
)
from cdbloss.weighting import resolve_tau

accuracies = st.lists(
    st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 1.0])), min_size=1, max_size=12
)


def hand_dynamic_tau(acc: list[float], eps: float) -> float:
    b = max(acc) / (min(acc) + eps) - 1.0
    return 2.0 / (1.0 + math.exp(-b))


@given(accuracies, st.sampled_from([1e-4, 1e-2]))
def test_dynamic_tau_matches_eq_3_4(acc: list[float], eps: float) -> None:
    assert dynamic_tau(acc, eps) == pytest.approx(hand_dynamic_tau(acc, eps), rel=1e-12)


def test_dynamic_tau_values() -> None:
    assert dynamic_tau([0.5, 0.5]) == pytest.approx(2 / (1 + math.exp(1 - 0.5 / 0.5001)))
    assert dynamic_tau([1.0, 0.0]) == 2.0  # b = 1e4 - 1: exp underflows, tau saturates at 2
    assert dynamic_tau([0.9, 0.3], eps=0.01) == pytest.approx(hand_dynamic_tau([0.9, 0.3], 0.01))
    # the authors' CIFAR variant: sigmoid(max / (min + eps))
    assert dynamic_tau([0.9, 0.3], eps=0.01, variant="sigmoid") == pytest.approx(
        1 / (1 + math.exp(-0.9 / 0.31))
    )


def test_dynamic_tau_skips_unmeasured_classes() -> None:
    assert dynamic_tau([0.9, float("nan"), 0.3]) == pytest.approx(dynamic_tau([0.9, 0.3]))
    assert dynamic_tau([float("nan")] * 3) == 1.0


@given(accuracies, st.one_of(st.floats(0.0, 8.0), st.just("dynamic")))
@settings(max_examples=200)
def test_cdb_weights_formula(acc: list[float], tau: float | str) -> None:
    t = hand_dynamic_tau(acc, 1e-4) if tau == "dynamic" else float(tau)
    raw = [(1.0 - a) ** t for a in acc]  # Python's 0.0 ** 0 == 1
    if sum(raw) == 0:
        expected = [1.0] * len(acc)
    else:
        expected = [r * len(acc) / sum(raw) for r in raw]
    got = cdb_weights(torch.tensor(acc, dtype=torch.float64), tau=tau)
    assert torch.isfinite(got).all()
    assert got.tolist() == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert float(got.sum()) == pytest.approx(len(acc))


def test_cdb_weights_unnormalized_and_edge_cases() -> None:
    got = cdb_weights([0.75, 0.5, 1.0], tau=2.0, normalize=False)
    assert got.tolist() == pytest.approx([0.0625, 0.25, 0.0])
    assert cdb_weights([1.0, 1.0], tau=1.0).tolist() == [1.0, 1.0]  # all perfect: uniform
    assert cdb_weights([1.0, 1.0], tau=1.0, normalize=False).tolist() == [1.0, 1.0]
    assert cdb_weights([0.2, 0.9], tau=0.0).tolist() == [1.0, 1.0]  # tau 0 = plain CE
    # a class without validation samples gets the mean weight of the measured ones
    got = cdb_weights([0.5, float("nan"), 0.0], tau=1.0, normalize=False)
    assert got.tolist() == pytest.approx([0.5, 0.75, 1.0])
    assert cdb_weights([float("nan")] * 2).tolist() == [1.0, 1.0]
    assert cdb_weights(torch.tensor([0.5, 0.25], dtype=torch.float64)).dtype == torch.float64
    assert cdb_weights([0.5, 0.25]).dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"accuracy": [0.5, 1.2]}, r"\[0, 1\]"),
        ({"accuracy": [-0.1, 0.5]}, r"\[0, 1\]"),
        ({"accuracy": [[0.5]]}, "1-D"),
        ({"accuracy": []}, "non-empty"),
        ({"accuracy": [0.5], "tau": -1.0}, ">= 0"),
        ({"accuracy": [0.5], "tau": "fixed"}, "dynamic"),
        ({"accuracy": [0.5], "tau": float("inf")}, "finite"),
        ({"accuracy": [0.5], "eps": 0.0}, "eps"),
    ],
)
def test_cdb_weights_bad_input(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cdb_weights(**kwargs)  # type: ignore[arg-type]


def test_resolve_tau() -> None:
    assert resolve_tau(1.5, [0.1]) == 1.5
    assert resolve_tau("dynamic", [0.9, 0.3]) == pytest.approx(hand_dynamic_tau([0.9, 0.3], 1e-4))
    with pytest.raises(ValueError):
        resolve_tau(True, [0.1])  # type: ignore[arg-type]


def test_frequency_weights_by_hand() -> None:
    counts = [100, 10, 1]
    inv = [1 / 100, 1 / 10, 1.0]
    assert inverse_frequency_weights(counts, normalize=False).tolist() == pytest.approx(inv)
    s = sum(inv)
    assert inverse_frequency_weights(counts).tolist() == pytest.approx([3 * v / s for v in inv])
    sq = [100**-0.5, 10**-0.5, 1.0]
    got = inverse_frequency_weights(counts, power=0.5, normalize=False)
    assert got.tolist() == pytest.approx(sq)
    assert inverse_frequency_weights([5, 0], normalize=False).tolist() == pytest.approx([0.2, 0.0])


def test_class_balanced_weights_by_hand() -> None:
    beta, counts = 0.99, [500, 50, 5]
    raw = [(1 - beta) / (1 - beta**n) for n in counts]
    got = class_balanced_weights(counts, beta=beta, normalize=False)
    assert got.tolist() == pytest.approx(raw, rel=1e-6)
    got = class_balanced_weights(counts, beta=beta)
    assert got.tolist() == pytest.approx([3 * r / sum(raw) for r in raw], rel=1e-6)
    assert class_balanced_weights(counts, beta=0.0).tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        class_balanced_weights(counts, beta=1.0)
    with pytest.raises(ValueError, match=">= 0"):
        class_balanced_weights([3, -1])


def test_normalize_weights() -> None:
    assert normalize_weights(torch.tensor([1.0, 3.0])).tolist() == [0.5, 1.5]
    assert normalize_weights(torch.zeros(3)).tolist() == [1.0, 1.0, 1.0]
