"""Multi-label metrics against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

from cdbloss.lab.metrics_multilabel import (
    average_precision,
    f1_scores,
    frequency_groups,
    multilabel_report,
)

metrics = pytest.importorskip("sklearn.metrics")


def _data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random((80, 5)) < [0.5, 0.3, 0.1, 0.05, 0.2]).astype(int)
    y[0, :] = 1
    s = rng.normal(size=(80, 5)) + y
    s[:, 4] = np.round(s[:, 4])  # ties
    return s, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_precision_matches_sklearn(seed: int) -> None:
    s, y = _data(seed)
    ours = average_precision(s, y)
    ref = [metrics.average_precision_score(y[:, c], s[:, c]) for c in range(5)]
    assert ours.tolist() == pytest.approx(ref, rel=1e-12)


def test_f1_matches_sklearn() -> None:
    s, y = _data(3)
    pred = (s > 0.5).astype(int)
    pred[:, 3] = 0
    per, micro = f1_scores(pred, y)
    ref = metrics.f1_score(y, pred, average=None, zero_division=0)
    assert per.tolist() == pytest.approx(ref.tolist())
    assert micro == pytest.approx(metrics.f1_score(y, pred, average="micro"))


def test_report_and_groups() -> None:
    s, y = _data(4)
    rep = multilabel_report(s, y, train_counts=np.array([500, 150, 50, 5, 19]))
    assert rep["mAP"] == pytest.approx(metrics.average_precision_score(y, s, average="macro"))
    pred = (s >= 0).astype(int)
    assert rep["macro_f1"] == pytest.approx(metrics.f1_score(y, pred, average="macro"))
    assert frequency_groups(np.array([500, 150, 50, 5, 19])) == {
        "head": [0, 1],
        "medium": [2],
        "tail": [3, 4],
    }
    ap = average_precision(s, y)
    assert rep["mAP_tail"] == pytest.approx(float(np.mean(ap[[3, 4]])))
    with pytest.raises(ValueError, match="0 or 1"):
        multilabel_report(s, y * 2)
