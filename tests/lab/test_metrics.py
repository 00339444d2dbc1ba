"""Tests of cdbloss.lab.metrics against scikit-learn, plus the distributed property."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_score,
    recall_score,
    top_k_accuracy_score,
)

from cdbloss.lab.metrics import (
    ConfusionMatrix,
    accuracy,
    confusion_counts,
    group_accuracy,
    macro_precision,
    macro_recall,
    majority_minority_groups,
    per_class_accuracy,
    per_class_precision,
    shot_groups,
    summarize,
    topk_accuracy,
    topk_correct,
)

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def labelled(draw: st.DrawFn, min_classes: int = 1) -> tuple[int, list[int], list[int]]:
    """(C, targets, predictions); classes may be absent from either side."""
    c = draw(st.integers(min_classes, 7))
    n = draw(st.integers(1, 40))
    y = draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n))
    p = draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n))
    return c, y, p


@st.composite
def scored(draw: st.DrawFn) -> tuple[int, list[int], np.ndarray]:
    """(C, targets, scores) with C >= 3 and no ties within a row (sklearn breaks ties its own way)."""
    c = draw(st.integers(3, 8))
    n = draw(st.integers(1, 30))
    y = draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n))
    rows = [draw(st.permutations(list(range(c)))) for _ in range(n)]
    scale = draw(st.floats(0.01, 100.0))
    return c, y, np.asarray(rows, dtype=np.float64) * scale - 3.0


def _cm(c: int, y: list[int], p: list[int]) -> torch.Tensor:
    return confusion_counts(torch.tensor(p), torch.tensor(y), c)


# ------------------------------------------------------------------ against sklearn


@SETTINGS
@given(labelled())
@example((4, [0, 0, 1], [0, 1, 1]))  # classes 2, 3 absent from targets and never predicted
@example((3, [0, 1, 2], [0, 0, 0]))  # classes 1, 2 never predicted
def test_confusion_and_macro_metrics_match_sklearn(data: tuple[int, list[int], list[int]]) -> None:
    c, y, p = data
    labels = list(range(c))
    counts = _cm(c, y, p)
    assert counts.dtype == torch.int64
    np.testing.assert_array_equal(counts.numpy(), confusion_matrix(y, p, labels=labels))
    assert accuracy(counts) == pytest.approx(accuracy_score(y, p), abs=1e-12)
    for zd in (0.0, 1.0, np.nan):
        for ours, theirs in (
            (macro_recall(counts, zero_division=zd), recall_score),
            (macro_precision(counts, zero_division=zd), precision_score),
        ):
            ref = theirs(y, p, labels=labels, average="macro", zero_division=zd)
            assert ours == pytest.approx(ref, abs=1e-12, nan_ok=True)


@SETTINGS
@given(labelled())
def test_observed_mask_matches_sklearn_default_labels(
    data: tuple[int, list[int], list[int]],
) -> None:
    c, y, p = data
    counts = _cm(c, y, p)
    observed = (counts.sum(0) > 0) | (counts.sum(1) > 0)
    assert macro_recall(counts, observed) == pytest.approx(
        recall_score(y, p, average="macro", zero_division=0), abs=1e-12
    )
    assert macro_precision(counts, observed) == pytest.approx(
        precision_score(y, p, average="macro", zero_division=0), abs=1e-12
    )


@SETTINGS
@given(labelled())
def test_per_class_vectors_match_sklearn_and_mark_undefined_with_nan(
    data: tuple[int, list[int], list[int]],
) -> None:
    c, y, p = data
    counts = _cm(c, y, p)
    labels = list(range(c))
    rec = per_class_accuracy(counts).numpy()
    prec = per_class_precision(counts).numpy()
    support = np.bincount(y, minlength=c)
    predicted = np.bincount(p, minlength=c)
    np.testing.assert_array_equal(np.isnan(rec), support == 0)
    np.testing.assert_array_equal(np.isnan(prec), predicted == 0)
    ref_rec = recall_score(y, p, labels=labels, average=None, zero_division=np.nan)
    ref_prec = precision_score(y, p, labels=labels, average=None, zero_division=np.nan)
    np.testing.assert_allclose(rec, ref_rec, atol=1e-12)
    np.testing.assert_allclose(prec, ref_prec, atol=1e-12)


@SETTINGS
@given(scored())
def test_topk_matches_sklearn(data: tuple[int, list[int], np.ndarray]) -> None:
    c, y, scores = data
    correct = topk_correct(torch.from_numpy(scores), torch.tensor(y), (1, 2, 5, c))
    for k, got in zip((1, 2, 5, c), correct.tolist(), strict=True):
        ref = top_k_accuracy_score(y, scores, k=k, labels=list(range(c)), normalize=False)
        assert got == int(ref)


@SETTINGS
@given(labelled(min_classes=2), st.data())
def test_group_metrics_match_sklearn_on_the_group(
    data: tuple[int, list[int], list[int]], draw: st.DataObject
) -> None:
    c, y, p = data
    counts = _cm(c, y, p)
    group = draw.draw(st.lists(st.booleans(), min_size=c, max_size=c))
    mask = torch.tensor(group)
    members = [i for i in range(c) if group[i]]
    present = [i for i in members if i in y]
    # class-weighted (OLTR): mean recall over the group's classes that occur in the targets
    expected = (
        recall_score(y, p, labels=present, average="macro", zero_division=0)
        if present
        else math.nan
    )
    assert group_accuracy(counts, mask) == pytest.approx(expected, abs=1e-12, nan_ok=True)
    # sample-weighted: plain accuracy on the group's samples
    idx = [i for i, t in enumerate(y) if group[t]]
    expected_micro = accuracy_score([y[i] for i in idx], [p[i] for i in idx]) if idx else math.nan
    assert group_accuracy(counts, mask, weighting="sample") == pytest.approx(
        expected_micro, abs=1e-12, nan_ok=True
    )
    # Table 7's group recall / precision: sklearn restricted to the group's labels
    if members:
        for ours, theirs in (
            (macro_recall(counts, mask), recall_score),
            (macro_precision(counts, mask), precision_score),
        ):
            ref = theirs(y, p, labels=members, average="macro", zero_division=0)
            assert ours == pytest.approx(ref, abs=1e-12)


# -------------------------------------------------------------------- accumulator


@SETTINGS
@given(scored(), st.integers(0, 30))
def test_accumulator_over_batches_equals_sklearn_on_all(
    data: tuple[int, list[int], np.ndarray], split: int
) -> None:
    c, y, scores = data
    split = min(split, len(y))
    s, t = torch.from_numpy(scores).float(), torch.tensor(y)
    cm = ConfusionMatrix(c, topk=(1, 3))
    cm.update(s[:split], t[:split])
    cm.update(s[split:], t[split:])
    preds = scores.argmax(1)
    np.testing.assert_array_equal(cm.counts.numpy(), confusion_matrix(y, preds, labels=range(c)))
    assert cm.topk_total.item() == len(y)
    top3 = top_k_accuracy_score(y, scores, k=3, labels=list(range(c)), normalize=False)
    assert cm.topk_correct.tolist() == [int(np.trace(cm.counts.numpy())), int(top3)]
    summary = summarize(cm)
    assert summary["top1_accuracy"] == pytest.approx(accuracy_score(y, preds))
    assert summary["top3_accuracy"] == pytest.approx(top3 / len(y))


@SETTINGS
@given(labelled(), st.integers(0, 40))
def test_summed_accumulators_equal_one_over_all_data(
    data: tuple[int, list[int], list[int]], split: int
) -> None:
    """The distributed property: counts of disjoint shards add up to the whole."""
    c, y, p = data
    t, q = torch.tensor(y), torch.tensor(p)
    a, b, whole = ConfusionMatrix(c), ConfusionMatrix(c), ConfusionMatrix(c)
    a.update(q[:split], t[:split])
    b.update(q[split:], t[split:])
    whole.update(q, t)
    both = a + b
    assert torch.equal(both.counts, whole.counts)
    assert json.dumps(summarize(both)) == json.dumps(summarize(whole))  # exact, NaN included
    assert torch.equal(a.merge(b).counts, whole.counts)


def test_ties_follow_argmax_so_top1_equals_confusion_accuracy() -> None:
    scores = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [3.0, 3.0, 3.0], [0.0, 0.0, 0.0]])
    target = torch.tensor([1, 1, 2, 0])
    # rank of the true class: 1 (class 0 ties and comes first), 0, 2, 0
    assert topk_correct(scores, target, (1, 2, 3)).tolist() == [2, 3, 4]
    cm = ConfusionMatrix(3, topk=(1, 2))
    cm.update(scores, target)
    assert cm.counts.diagonal().sum().item() == cm.topk_correct[0].item() == 2


def test_topk_with_k_at_least_c_is_always_correct_and_c_one_works() -> None:
    assert topk_correct(torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2]), (3, 5)).tolist() == [
        6,
        6,
    ]
    cm = ConfusionMatrix(1)
    cm.update(torch.zeros(4, 1), torch.zeros(4, dtype=torch.long))
    s = summarize(cm)
    assert s["top1_accuracy"] == s["top5_accuracy"] == s["macro_precision"] == 1.0


def test_hard_predictions_leave_topk_undefined_and_ignore_index_is_skipped() -> None:
    cm = ConfusionMatrix(3, topk=(1, 2))
    cm.update(torch.tensor([0, 2, 1]), torch.tensor([0, -100, 1]))
    assert cm.num_samples == 2
    assert cm.topk_total.item() == 0
    s = summarize(cm)
    assert s["top1_accuracy"] == 1.0
    assert math.isnan(s["top2_accuracy"])  # type: ignore[arg-type]
    cm.update(torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([1]))  # a mix: still undefined
    assert math.isnan(summarize(cm)["top2_accuracy"])  # type: ignore[arg-type]


def test_reset_state_dict_roundtrip_and_json() -> None:
    cm = ConfusionMatrix(4)
    cm.update(torch.randn(10, 4), torch.randint(0, 4, (10,)))
    state = cm.state_dict()
    other = ConfusionMatrix(4)
    other.load_state_dict(state)
    assert torch.equal(other.counts, cm.counts) and torch.equal(other.topk_correct, cm.topk_correct)
    assert other.topk_total.item() == 10
    text = json.dumps(summarize(other, train_counts=[300, 50, 5, 0], num_majority=2))
    assert json.loads(text)["num_samples"] == 10
    cm.reset()
    assert cm.num_samples == 0 and cm.topk_total.item() == 0 and cm.topk_correct.sum() == 0
    with pytest.raises(ValueError, match="num_classes=4"):
        ConfusionMatrix(3).load_state_dict(state)


def test_sync_without_process_group_is_an_independent_copy() -> None:
    cm = ConfusionMatrix(2)
    cm.update(torch.tensor([0, 1]), torch.tensor([0, 0]))
    copy = cm.sync()
    copy.update(torch.tensor([1]), torch.tensor([1]))
    assert cm.num_samples == 2 and copy.num_samples == 3


# ------------------------------------------------------------------------- groups


def test_shot_groups_thresholds_are_inclusive_for_medium() -> None:
    groups = shot_groups([101, 100, 20, 19, 0, 1280])
    assert groups["many"].tolist() == [True, False, False, False, False, True]
    assert groups["medium"].tolist() == [False, True, True, False, False, False]
    assert groups["few"].tolist() == [False, False, False, True, True, False]


def test_egtea_majority_classes_are_the_five_most_frequent() -> None:
    # training clips per verb of EGTEA split 1, as in the authors' training script
    counts = [429, 779, 1421, 822, 129, 1335, 130, 308, 223, 249, 54, 54, 139, 42, 78, 117, 26, 15]
    counts.append(22)
    groups = majority_minority_groups(counts, num_majority=5)
    assert torch.nonzero(groups["majority"]).flatten().tolist() == [0, 1, 2, 3, 5]
    assert int(groups["minority"].sum()) == 14
    # ties go to the lower index
    assert majority_minority_groups([5, 7, 7, 1], 2)["majority"].tolist() == [
        False,
        True,
        True,
        False,
    ]
    assert majority_minority_groups([7, 5, 7, 7], 2)["majority"].tolist() == [
        True,
        False,
        True,
        False,
    ]


def test_summarize_groups_hand_computed() -> None:
    # classes: 0 many (500 train), 1 medium (50), 2 few (5), 3 few (3) but absent from test
    y = [0, 0, 0, 0, 1, 1, 2]
    p = [0, 0, 0, 1, 1, 0, 1]
    cm = ConfusionMatrix(4, topk=(1,))
    cm.update(torch.tensor(p), torch.tensor(y))
    s = summarize(cm, train_counts=[500, 50, 5, 3], num_majority=1)
    assert s["many_shot_accuracy"] == 0.75
    assert s["medium_shot_accuracy"] == 0.5
    assert s["few_shot_accuracy"] == 0.0  # class 3 has no test samples: left out, not NaN
    assert s["few_shot_classes"] == 2
    assert s["medium_shot_accuracy_micro"] == 0.5
    assert s["majority_recall"] == 0.75
    assert s["majority_precision"] == 0.75
    # minority = classes 1, 2, 3: recalls 1/2, 0, 0 (absent -> 0); precisions 1/3, 0, 0
    assert s["minority_recall"] == pytest.approx(1 / 6)
    assert s["minority_precision"] == pytest.approx(1 / 9)
    assert s["minority_accuracy_micro"] == pytest.approx(1 / 3)
    assert s["macro_recall"] == pytest.approx((0.75 + 0.5 + 0 + 0) / 4)
    assert s["confusion_matrix"][0] == [3, 1, 0, 0]  # type: ignore[index]
    assert math.isnan(s["per_class_accuracy"][3])  # type: ignore[index,arg-type]


# ------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("output", "target", "message"),
    [
        (torch.randn(3, 4), torch.tensor([0, 1, 2]), r"shape \(N, 3\)"),
        (torch.randn(3, 3), torch.tensor([0, 1]), "3 rows but target has 2"),
        (torch.tensor([0, 1, 5]), torch.tensor([0, 1, 2]), r"\[0, 3\), got 5"),
        (torch.tensor([0, 1, 2]), torch.tensor([0, 1, 3]), r"\[0, 3\), got 3"),
        (torch.randn(3), torch.tensor([0, 1, 2]), "floating scores"),
        (torch.randn(2, 3), torch.tensor([0.0, 1.0]), "integer"),
        (torch.tensor([[0.0, math.nan, 1.0]]), torch.tensor([0]), "NaN"),
    ],
)
def test_update_errors_say_what_was_expected(
    output: torch.Tensor, target: torch.Tensor, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ConfusionMatrix(3).update(output, target)


def test_argument_errors() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        ConfusionMatrix(0)
    with pytest.raises(ValueError, match="topk"):
        ConfusionMatrix(3, topk=(0,))
    with pytest.raises(ValueError, match="shape"):
        accuracy(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        macro_recall(torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"bool tensor of shape \(2,\)"):
        macro_precision(torch.zeros(2, 2, dtype=torch.long), torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="weighting"):
        group_accuracy(torch.eye(2, dtype=torch.long), torch.tensor([True, False]), "micro")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_majority"):
        majority_minority_groups([1, 2], 3)
    with pytest.raises(ValueError, match="3 entries"):
        summarize(ConfusionMatrix(3), train_counts=[1, 2])
    with pytest.raises(ValueError, match="train_counts"):
        summarize(ConfusionMatrix(3), num_majority=1)
    with pytest.raises(ValueError, match="correct <= total"):
        topk_accuracy(3, 2)
