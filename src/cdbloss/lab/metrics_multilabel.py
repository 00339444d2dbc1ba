"""Multi-label metrics: per-label AP, mAP, macro and micro F1, head/medium/tail groups.

NumPy only; every number matches scikit-learn's (``average_precision_score``,
``f1_score``), which the tests check.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["average_precision", "f1_scores", "frequency_groups", "multilabel_report"]

Array = NDArray[np.float64]


def _check(scores: NDArray[np.generic], target: NDArray[np.generic]) -> tuple[Array, Array]:
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(target)
    if s.ndim != 2 or s.shape != y.shape:
        raise ValueError(
            f"scores and target must both have shape (N, C), got {s.shape} and {y.shape}"
        )
    if not np.isin(y, (0, 1)).all():
        raise ValueError("target entries must be 0 or 1")
    return s, y.astype(np.float64)


def average_precision(scores: NDArray[np.generic], target: NDArray[np.generic]) -> Array:
    r"""Per-label average precision ``(C,)``, :math:`AP = \sum_k (R_k - R_{k-1}) P_k` over
    the distinct score thresholds (scikit-learn's definition); NaN for a label with no positive."""
    s, y = _check(scores, target)
    out = np.full(s.shape[1], np.nan)
    for c in range(s.shape[1]):
        pos = y[:, c].sum()
        if pos == 0:
            continue
        order = np.argsort(-s[:, c], kind="mergesort")
        sc, yc = s[order, c], y[order, c]
        last = np.r_[np.flatnonzero(np.diff(sc)), len(sc) - 1]  # end of each tie group
        tp = np.cumsum(yc)[last]
        precision = tp / (last + 1)
        recall_step = np.diff(np.r_[0.0, tp]) / pos
        out[c] = float((recall_step * precision).sum())
    return out


def f1_scores(pred: NDArray[np.generic], target: NDArray[np.generic]) -> tuple[Array, float]:
    """``(per-label F1 (C,), micro F1)`` of 0/1 predictions; a label with no positive
    and no predicted positive gets F1 0 (scikit-learn's ``zero_division=0``)."""
    p, y = _check(pred, target)
    tp, fp, fn = (p * y).sum(0), (p * (1 - y)).sum(0), ((1 - p) * y).sum(0)
    den = 2 * tp + fp + fn
    per = np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)
    micro_den = den.sum()
    return per, float(2 * tp.sum() / micro_den) if micro_den > 0 else 0.0


def frequency_groups(
    counts: NDArray[np.generic], head: int = 100, tail: int = 20
) -> dict[str, list[int]]:
    """Labels by training frequency: head ``> head`` positives, tail ``< tail``, medium between."""
    n = np.asarray(counts)
    return {
        "head": [int(i) for i in np.flatnonzero(n > head)],
        "medium": [int(i) for i in np.flatnonzero((n >= tail) & (n <= head))],
        "tail": [int(i) for i in np.flatnonzero(n < tail)],
    }


def multilabel_report(
    scores: NDArray[np.generic],
    target: NDArray[np.generic],
    train_counts: NDArray[np.generic] | None = None,
    threshold: float = 0.5,
    head: int = 100,
    tail: int = 20,
) -> dict[str, object]:
    """mAP (mean over labels with a positive), macro/micro F1 at ``sigmoid >= threshold``
    (``scores`` are logits), per-label AP and, with ``train_counts``, group mAPs."""
    s, y = _check(scores, target)
    ap = average_precision(s, y)
    pred = (1.0 / (1.0 + np.exp(-s)) >= threshold).astype(np.float64)
    per_f1, micro = f1_scores(pred, y)
    out: dict[str, object] = {
        "mAP": float(np.nanmean(ap)),
        "macro_f1": float(per_f1.mean()),
        "micro_f1": micro,
        "per_label_ap": [None if np.isnan(a) else float(a) for a in ap],
    }
    if train_counts is not None:
        for name, idx in frequency_groups(train_counts, head, tail).items():
            vals = ap[idx] if idx else np.array([np.nan])
            out[f"mAP_{name}"] = None if np.isnan(vals).all() else float(np.nanmean(vals))
    return out
