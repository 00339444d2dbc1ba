"""ClassDifficulty: counts, accuracy, checkpoints, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from hypothesis import given
from hypothesis import strategies as st

from cdbloss import ClassDifficulty


def test_counts_from_labels_and_logits() -> None:
    t = ClassDifficulty(3)
    t.update(torch.tensor([0, 1, 1, 2, 0]), torch.tensor([0, 1, 2, 2, 1]))
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 9.0]])
    t.update(logits, torch.tensor([0, 0]))
    assert t.total.tolist() == [3, 2, 2]
    assert t.correct.tolist() == [2, 1, 1]
    assert t.compute().tolist() == pytest.approx([2 / 3, 0.5, 0.5])
    assert t.difficulty().tolist() == pytest.approx([1 / 3, 0.5, 0.5])
    t.reset()
    assert t.total.sum() == 0 and t.correct.sum() == 0


def test_unseen_class_is_nan_and_ignore_index_skipped() -> None:
    t = ClassDifficulty(3)
    t.update(torch.tensor([0, 2, 1]), torch.tensor([0, -100, 1]))
    acc = t.compute()
    assert acc[0] == 1.0 and acc[1] == 1.0 and torch.isnan(acc[2])
    assert t.total.tolist() == [1, 1, 0]


def test_a_row_of_nan_logits_is_a_miss_not_a_prediction_of_class_0() -> None:
    t = ClassDifficulty(2)
    nan = float("nan")
    logits = torch.tensor([[nan, nan], [1.0, nan], [2.0, 0.0], [0.0, 2.0]])
    t.update(logits, torch.tensor([0, 1, 0, 1]))
    assert t.total.tolist() == [2, 2]
    assert t.correct.tolist() == [1, 1]  # the NaN rows count as wrong for either class


@given(
    st.integers(1, 6).flatmap(
        lambda c: st.tuples(
            st.just(c),
            st.lists(st.tuples(st.integers(0, c - 1), st.integers(0, c - 1)), max_size=60),
        )
    )
)
def test_matches_counting_by_hand(case: tuple[int, list[tuple[int, int]]]) -> None:
    c, pairs = case
    t = ClassDifficulty(c)
    if pairs:
        preds, target = zip(*pairs, strict=True)
        # split into two unequal batches: counts must not depend on batching
        k = len(pairs) // 3
        t.update(
            torch.tensor(preds[:k], dtype=torch.long), torch.tensor(target[:k], dtype=torch.long)
        )
        t.update(
            torch.tensor(preds[k:], dtype=torch.long), torch.tensor(target[k:], dtype=torch.long)
        )
    for cls in range(c):
        total = sum(1 for p, y in pairs if y == cls)
        correct = sum(1 for p, y in pairs if y == cls and p == cls)
        assert int(t.total[cls]) == total and int(t.correct[cls]) == correct


def test_state_dict_round_trip() -> None:
    t = ClassDifficulty(4)
    t.update(torch.tensor([0, 1, 3, 3]), torch.tensor([0, 2, 3, 1]))
    fresh = ClassDifficulty(4)
    fresh.load_state_dict(t.state_dict())
    assert torch.equal(fresh.correct, t.correct) and torch.equal(fresh.total, t.total)
    with pytest.raises(ValueError, match="4 classes"):
        ClassDifficulty(5).load_state_dict(t.state_dict())


def test_compute_twice_does_not_double_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under torch.distributed each compute() sums the other ranks' counts into a copy:
    a second call must not count them again. A stand-in collective adds the counts of
    one other rank (correct (3, 1), total (4, 2)) to whatever it is given."""
    other = torch.tensor([[3, 1], [4, 2]])  # (2, C): correct, total

    def all_reduce(tensor: torch.Tensor, op: object = None) -> None:
        tensor += other

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 2)
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "gloo")
    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    t = ClassDifficulty(2)
    t.update(torch.tensor([0, 1]), torch.tensor([0, 0]))  # this rank: 1 of 2 right in class 0
    expected = [(1 + 3) / (2 + 4), 1 / 2]
    assert t.compute().tolist() == pytest.approx(expected)
    assert t.compute().tolist() == pytest.approx(expected)  # not (1 + 3 + 3) / (2 + 4 + 4)
    assert t.total.tolist() == [2, 0] and t.correct.tolist() == [1, 0]  # local counts kept
    assert t.compute(sync=False).tolist()[0] == 0.5


@pytest.mark.parametrize(
    ("preds", "target", "match"),
    [
        (torch.zeros(3, 4), torch.zeros(3, dtype=torch.long), r"\(N, C\) = \(3, 3\)"),
        (torch.zeros(3), torch.zeros(3, dtype=torch.long), "integer labels"),
        (torch.zeros(2, dtype=torch.long), torch.zeros(3, dtype=torch.long), r"shape \(3,\)"),
        (torch.zeros(3, dtype=torch.long), torch.zeros(3), "integer tensor"),
        (torch.zeros(1, 1, 1), torch.zeros(1, dtype=torch.long), "logits"),
        (torch.tensor([0, 1]), torch.tensor([0, 3]), r"\[0, 3\), got 3"),
        (torch.tensor([0, 1]), torch.tensor([0, -2]), "got -2"),
    ],
)
def test_bad_input(preds: torch.Tensor, target: torch.Tensor, match: str) -> None:
    t = ClassDifficulty(3)
    with pytest.raises(ValueError, match=match):
        t.update(preds, target)
    assert t.total.sum() == 0  # nothing half-counted


def test_bad_num_classes() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        ClassDifficulty(0)
