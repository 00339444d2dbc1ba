r"""Classification metrics computed from integer counts.

Everything here derives from two kinds of integer counts, so results are exact
and combine across processes by summation (counts, not ratios, cross process
boundaries):

* the confusion matrix ``M`` of shape ``(C, C)``, ``M[i, j]`` = number of
  samples of true class ``i`` predicted as ``j`` (rows: truth, columns:
  prediction; scikit-learn's convention);
* top-k correct counts: for each ``k``, the number of samples whose true class
  is among the ``k`` highest scores.

From ``M``, with support ``n_i = sum_j M[i, j]`` and predicted count
``p_j = sum_i M[i, j]``:

.. math::
    \text{accuracy} = \frac{\operatorname{tr} M}{\sum_{ij} M_{ij}}, \quad
    \text{recall}_c = \frac{M_{cc}}{n_c}, \quad
    \text{precision}_c = \frac{M_{cc}}{p_c}, \quad
    \text{macro recall} = \frac{1}{|S|} \sum_{c \in S} \text{recall}_c

Conventions (all as scikit-learn with ``labels=range(C)``):

* **per-class vectors** (:func:`per_class_accuracy`, :func:`per_class_precision`)
  hold NaN where the ratio is ``0/0`` (a class absent from the targets, or
  never predicted), the same "no measurement" marker as :mod:`cdbloss.weighting`.
* **macro averages** (:func:`macro_recall`, :func:`macro_precision`) replace
  ``0/0`` by ``zero_division`` before averaging, 0 by default: a class that is
  never predicted has precision 0, exactly scikit-learn's ``zero_division=0``;
  with ``zero_division=nan`` such classes are left out of the average (also as
  scikit-learn). They average over all ``C`` classes unless a ``mask`` picks a
  subset; ``mask = (n > 0) | (p > 0)`` reproduces scikit-learn's default
  ``labels=None`` (the classes seen in either targets or predictions).
* **top-k**: a sample is top-k correct when fewer than ``k`` classes beat its
  true class, where class ``j`` beats ``y`` if ``z_j > z_y`` or ``z_j == z_y``
  and ``j < y``. This breaks ties like ``torch.argmax`` (first index wins), so
  top-1 always equals the confusion-matrix accuracy. With ``k >= C`` every
  sample is correct.
* **groups** (:func:`group_accuracy`): the mean of per-class accuracies over
  the group's classes that occur in the targets (the OLTR convention for
  many/medium/few-shot accuracy), or, with ``weighting="sample"``, the group's
  correct samples over its samples. A group with no samples gives NaN.

Example:
    >>> import torch
    >>> cm = ConfusionMatrix(num_classes=3, topk=(1, 2))
    >>> cm.update(torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]]), torch.tensor([0, 1]))
    >>> cm.counts.tolist()
    [[1, 0, 0], [0, 0, 1], [0, 0, 0]]
    >>> round(summarize(cm)["top2_accuracy"], 3)
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "ConfusionMatrix",
    "MetricValue",
    "accuracy",
    "confusion_counts",
    "group_accuracy",
    "macro_precision",
    "macro_recall",
    "majority_minority_groups",
    "per_class_accuracy",
    "per_class_precision",
    "shot_groups",
    "summarize",
    "topk_accuracy",
    "topk_correct",
]

#: A value of :func:`summarize`'s dict: a float (NaN where undefined), an int
#: count, a per-class list, or the confusion matrix as nested lists of ints.
MetricValue: TypeAlias = float | int | list[float] | list[list[int]]


# --------------------------------------------------------------------------- checks


def _check_num_classes(num_classes: object) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    return num_classes


def _check_counts(counts: Tensor) -> Tensor:
    """A ``(C, C)`` integer confusion matrix with non-negative entries."""
    if not isinstance(counts, Tensor):
        raise ValueError(f"counts must be a (C, C) integer tensor, got {type(counts).__name__}")
    if counts.dim() != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        raise ValueError(f"counts must have shape (C, C) with C >= 1, got {tuple(counts.shape)}")
    if counts.is_floating_point() or counts.is_complex() or counts.dtype == torch.bool:
        raise ValueError(f"counts must be an integer tensor, got dtype {counts.dtype}")
    if bool((counts < 0).any()):
        raise ValueError("counts must be non-negative")
    return counts.to(torch.int64)


def _check_target(target: Tensor, num_classes: int, n: int | None = None) -> None:
    if not isinstance(target, Tensor):
        raise ValueError(f"target must be a tensor, got {type(target).__name__}")
    if target.dim() != 1 or target.is_floating_point() or target.dtype == torch.bool:
        raise ValueError(
            f"target must be a 1-D integer tensor of class indices (N,), "
            f"got shape {tuple(target.shape)} and dtype {target.dtype}"
        )
    if n is not None and target.shape[0] != n:
        raise ValueError(f"target has {target.shape[0]} entries but the output has {n} rows")
    if target.numel() and bool(((target < 0) | (target >= num_classes)).any()):
        bad = target[(target < 0) | (target >= num_classes)][0].item()
        raise ValueError(f"target values must lie in [0, {num_classes}), got {bad}")


def _check_mask(mask: Tensor | None, num_classes: int) -> Tensor | None:
    if mask is None:
        return None
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != (num_classes,):
        shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a bool tensor of shape ({num_classes},), got {shape}")
    return mask


def _as_train_counts(train_counts: Tensor | Sequence[int], num_classes: int | None) -> Tensor:
    counts = torch.as_tensor(train_counts)
    if counts.dim() != 1 or counts.is_floating_point() or counts.dtype == torch.bool:
        raise ValueError(
            f"train_counts must be a 1-D sequence of integer per-class training counts, "
            f"got shape {tuple(counts.shape)} and dtype {counts.dtype}"
        )
    if num_classes is not None and counts.numel() != num_classes:
        raise ValueError(f"train_counts must have {num_classes} entries, got {counts.numel()}")
    if bool((counts < 0).any()):
        raise ValueError("train_counts must be non-negative")
    return counts.to(torch.int64).cpu()


# ---------------------------------------------------------------- counts from batches


def confusion_counts(preds: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """Confusion matrix of one batch of hard predictions.

    Args:
        preds: ``(N,)`` predicted class indices in ``[0, C)``.
        target: ``(N,)`` true class indices in ``[0, C)``.
        num_classes: ``C``.

    Returns:
        ``(C, C)`` int64 tensor on the inputs' device, ``M[i, j]`` = samples of
        class ``i`` predicted as ``j``.

    Example:
        >>> confusion_counts(torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), 2).tolist()
        [[1, 1], [0, 1]]
    """
    num_classes = _check_num_classes(num_classes)
    _check_target(target, num_classes)
    if not isinstance(preds, Tensor) or preds.shape != target.shape:
        got = tuple(preds.shape) if isinstance(preds, Tensor) else type(preds).__name__
        raise ValueError(f"preds must be a tensor of shape {tuple(target.shape)}, got {got}")
    _check_target(preds, num_classes)
    flat = target.to(torch.int64) * num_classes + preds.to(torch.int64)  # (N,)
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def topk_correct(scores: Tensor, target: Tensor, ks: Sequence[int]) -> Tensor:
    """Number of samples whose true class is among the ``k`` best scores, for each ``k``.

    Class ``j`` beats the true class ``y`` when ``z_j > z_y``, or ``z_j == z_y``
    and ``j < y`` (``torch.argmax``'s tie rule); a sample is top-k correct when
    fewer than ``k`` classes beat ``y``.

    Args:
        scores: ``(N, C)`` logits or probabilities (any monotone score), no NaN.
        target: ``(N,)`` class indices in ``[0, C)``.
        ks: the ``k`` values, each ``>= 1``.

    Returns:
        ``(len(ks),)`` int64 tensor on the inputs' device.

    Example:
        >>> topk_correct(torch.tensor([[0.1, 0.7, 0.2]]), torch.tensor([2]), (1, 2)).tolist()
        [0, 1]
    """
    if not isinstance(scores, Tensor) or scores.dim() != 2 or not scores.is_floating_point():
        got = (
            f"shape {tuple(scores.shape)}, dtype {scores.dtype}"
            if isinstance(scores, Tensor)
            else type(scores).__name__
        )
        raise ValueError(f"scores must be a floating (N, C) tensor, got {got}")
    n, c = scores.shape
    _check_target(target, c, n)
    if bool(torch.isnan(scores).any()):
        raise ValueError("scores contain NaN; top-k and argmax are undefined for NaN scores")
    k = torch.as_tensor([_check_k(v) for v in ks], dtype=torch.int64, device=scores.device)
    y = target.to(torch.int64)
    true_score = scores.gather(1, y[:, None])  # (N, 1)
    index = torch.arange(c, device=scores.device)  # (C,)
    beats = (scores > true_score) | ((scores == true_score) & (index[None, :] < y[:, None]))
    rank = beats.sum(dim=1)  # (N,) classes ranked above the true one
    return (rank[None, :] < k[:, None]).sum(dim=1)  # (K,)


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"every k in topk must be an int >= 1, got {k!r}")
    return k


# ---------------------------------------------------------------- metrics from counts


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` in float64 with NaN where ``den == 0``."""
    num64, den64 = num.to(torch.float64), den.to(torch.float64)
    return torch.where(den64 > 0, num64 / den64.clamp_min(1), torch.full_like(num64, math.nan))


def accuracy(counts: Tensor) -> float:
    """Top-1 (micro) accuracy ``tr(M) / sum(M)``; NaN when ``M`` is empty.

    Example:
        >>> accuracy(torch.tensor([[3, 1], [0, 4]]))
        0.875
    """
    counts = _check_counts(counts)
    total = int(counts.sum())
    return int(counts.diagonal().sum()) / total if total else math.nan


def topk_accuracy(correct: Tensor | int, total: Tensor | int) -> float:
    """``correct / total`` as a float; NaN when ``total == 0``.

    Example:
        >>> topk_accuracy(9, 10)
        0.9
    """
    c, t = int(correct), int(total)
    if c < 0 or t < 0 or c > t:
        raise ValueError(f"need 0 <= correct <= total, got correct={c}, total={t}")
    return c / t if t else math.nan


def per_class_accuracy(counts: Tensor) -> Tensor:
    """Per-class accuracy (recall) ``M[c, c] / n_c``, shape ``(C,)`` float64; NaN where ``n_c = 0``.

    Example:
        >>> per_class_accuracy(torch.tensor([[3, 1], [0, 0]])).tolist()
        [0.75, nan]
    """
    counts = _check_counts(counts)
    return _ratio(counts.diagonal(), counts.sum(dim=1))


def per_class_precision(counts: Tensor) -> Tensor:
    """Per-class precision ``M[c, c] / p_c``, shape ``(C,)`` float64; NaN where never predicted.

    Example:
        >>> per_class_precision(torch.tensor([[3, 0], [1, 0]])).tolist()
        [0.75, nan]
    """
    counts = _check_counts(counts)
    return _ratio(counts.diagonal(), counts.sum(dim=0))


def _macro(values: Tensor, mask: Tensor | None, zero_division: float) -> float:
    values = values.clone()
    values[torch.isnan(values)] = zero_division
    if mask is not None:
        values = values[mask.to(values.device)]
    values = values[~torch.isnan(values)]  # zero_division=nan: leave those classes out
    return float(values.mean()) if values.numel() else math.nan


def macro_recall(counts: Tensor, mask: Tensor | None = None, zero_division: float = 0.0) -> float:
    r"""Macro-averaged recall :math:`\frac{1}{|S|}\sum_{c \in S} M_{cc} / n_c`.

    Args:
        counts: ``(C, C)`` confusion matrix.
        mask: optional ``(C,)`` bool selecting the classes ``S`` to average (all by default).
        zero_division: recall of a class with no samples (0, as scikit-learn's
            ``zero_division=0``; NaN leaves it out of the average).

    Returns:
        A float; NaN when nothing is left to average.

    Example:
        >>> macro_recall(torch.tensor([[3, 1], [2, 2]]))
        0.625
    """
    counts = _check_counts(counts)
    return _macro(per_class_accuracy(counts), _check_mask(mask, counts.shape[0]), zero_division)


def macro_precision(
    counts: Tensor, mask: Tensor | None = None, zero_division: float = 0.0
) -> float:
    r"""Macro-averaged precision :math:`\frac{1}{|S|}\sum_{c \in S} M_{cc} / p_c`.

    A class that is never predicted (``p_c = 0``) counts as ``zero_division``:
    0 by default, matching scikit-learn's ``precision_score(..., average="macro",
    zero_division=0)`` and the CDB authors' EGTEA evaluation.

    Args:
        counts: ``(C, C)`` confusion matrix.
        mask: optional ``(C,)`` bool selecting the classes ``S`` to average.
        zero_division: precision of a never-predicted class (NaN: left out).

    Example:
        >>> macro_precision(torch.tensor([[3, 0], [1, 0]]))
        0.375
    """
    counts = _check_counts(counts)
    return _macro(per_class_precision(counts), _check_mask(mask, counts.shape[0]), zero_division)


def group_accuracy(
    counts: Tensor, mask: Tensor, weighting: Literal["class", "sample"] = "class"
) -> float:
    r"""Accuracy of a group of classes.

    * ``weighting="class"`` (default, the OLTR many/medium/few-shot
      convention): the mean of per-class accuracies over the group's classes
      that have samples, :math:`\operatorname{mean}_{c \in G, n_c > 0} M_{cc}/n_c`.
    * ``weighting="sample"``: the group's correct samples over its samples,
      :math:`\sum_{c \in G} M_{cc} / \sum_{c \in G} n_c`.

    Args:
        counts: ``(C, C)`` confusion matrix.
        mask: ``(C,)`` bool, the group's classes.
        weighting: ``"class"`` or ``"sample"``.

    Returns:
        A float; NaN when the group has no samples.

    Example:
        >>> m = torch.tensor([[9, 1, 0], [0, 1, 0], [0, 1, 1]])
        >>> group_accuracy(m, torch.tensor([False, True, True]))
        0.75
        >>> group_accuracy(m, torch.tensor([False, True, True]), weighting="sample")
        0.6666666666666666
    """
    counts = _check_counts(counts)
    _check_mask(mask, counts.shape[0])
    mask = mask.to(counts.device)
    if weighting == "class":
        return _macro(per_class_accuracy(counts), mask, math.nan)
    if weighting == "sample":
        total = int(counts.sum(dim=1)[mask].sum())
        return int(counts.diagonal()[mask].sum()) / total if total else math.nan
    raise ValueError(f"weighting must be one of ('class', 'sample'), got {weighting!r}")


def shot_groups(
    train_counts: Tensor | Sequence[int], many: int = 100, few: int = 20
) -> dict[str, Tensor]:
    """Many/medium/few-shot class masks from training counts (Liu et al. 2019, OLTR).

    ``many``: more than ``many`` (100) training samples; ``medium``: from
    ``few`` (20) to ``many`` inclusive; ``few``: fewer than ``few``.

    Returns:
        ``{"many": mask, "medium": mask, "few": mask}``, each ``(C,)`` bool on the CPU.

    Example:
        >>> {k: v.tolist() for k, v in shot_groups([500, 100, 20, 19]).items()}
        {'many': [True, False, False, False], 'medium': [False, True, True, False], \
'few': [False, False, False, True]}
    """
    counts = _as_train_counts(train_counts, None)
    if not 0 <= few <= many:
        raise ValueError(f"need 0 <= few <= many, got few={few}, many={many}")
    return {
        "many": counts > many,
        "medium": (counts >= few) & (counts <= many),
        "few": counts < few,
    }


def majority_minority_groups(
    train_counts: Tensor | Sequence[int], num_majority: int
) -> dict[str, Tensor]:
    """The ``num_majority`` most frequent training classes vs the rest (EGTEA, Table 7).

    Ties in the training counts go to the lower class index, so the split is
    deterministic.

    Returns:
        ``{"majority": mask, "minority": mask}``, each ``(C,)`` bool on the CPU.

    Example:
        >>> g = majority_minority_groups([10, 50, 30, 5], num_majority=2)
        >>> g["majority"].tolist()
        [False, True, True, False]
    """
    counts = _as_train_counts(train_counts, None)
    if isinstance(num_majority, bool) or not isinstance(num_majority, int):
        raise ValueError(f"num_majority must be an int, got {num_majority!r}")
    if not 0 <= num_majority <= counts.numel():
        raise ValueError(f"num_majority must lie in [0, {counts.numel()}], got {num_majority}")
    order = torch.sort(-counts, stable=True).indices  # most frequent first, ties by index
    majority = torch.zeros(counts.numel(), dtype=torch.bool)
    majority[order[:num_majority]] = True
    return {"majority": majority, "minority": ~majority}


# ------------------------------------------------------------------------ accumulator


class ConfusionMatrix:
    """Accumulates a confusion matrix and top-k correct counts over batches.

    State (all int64, on the device of the last inputs): ``counts`` ``(C, C)``,
    ``topk_correct`` ``(K,)`` and ``topk_total`` (samples that came with
    scores; top-k needs scores, hard predictions only feed ``counts``).
    Ratios are computed only from the counts; :meth:`sync` sums the counts
    over all ``torch.distributed`` ranks.

    Args:
        num_classes: ``C``.
        topk: the ``k`` of the top-k counts (``(1, 5)``).
        ignore_index: targets equal to it are skipped (``None``: none are).

    Example:
        >>> cm = ConfusionMatrix(3)
        >>> cm.update(torch.tensor([0, 2, 2]), torch.tensor([0, 1, 2]))  # hard predictions
        >>> cm.counts.tolist()
        [[1, 0, 0], [0, 0, 1], [0, 0, 1]]
        >>> round(accuracy(cm.counts), 4)
        0.6667
    """

    def __init__(
        self, num_classes: int, topk: Sequence[int] = (1, 5), ignore_index: int | None = -100
    ) -> None:
        self.num_classes = _check_num_classes(num_classes)
        if isinstance(topk, (str, bytes)) or not isinstance(topk, Sequence):
            raise ValueError(f"topk must be a sequence of ints >= 1, got {topk!r}")
        self.topk: tuple[int, ...] = tuple(_check_k(k) for k in topk)
        if len(set(self.topk)) != len(self.topk):
            raise ValueError(f"topk must not repeat a value, got {list(self.topk)}")
        if ignore_index is not None and (
            isinstance(ignore_index, bool) or not isinstance(ignore_index, int)
        ):
            raise ValueError(f"ignore_index must be an int or None, got {ignore_index!r}")
        self.ignore_index = ignore_index
        self.counts = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        self.topk_correct = torch.zeros(len(self.topk), dtype=torch.int64)
        self.topk_total = torch.zeros((), dtype=torch.int64)

    # -- state -------------------------------------------------------------------------

    @property
    def num_samples(self) -> int:
        """Samples counted so far (on this process)."""
        return int(self.counts.sum())

    def reset(self) -> None:
        """Zero all counts (keeps the device)."""
        self.counts.zero_()
        self.topk_correct.zero_()
        self.topk_total.zero_()

    def to(self, device: torch.device | str) -> ConfusionMatrix:
        """Move the counts to ``device`` (in place); returns ``self``."""
        self.counts = self.counts.to(device)
        self.topk_correct = self.topk_correct.to(device)
        self.topk_total = self.topk_total.to(device)
        return self

    def state_dict(self) -> dict[str, Any]:
        """Counts and configuration, for checkpoints (tensors are copies on the CPU)."""
        return {
            "num_classes": self.num_classes,
            "topk": list(self.topk),
            "counts": self.counts.detach().cpu().clone(),
            "topk_correct": self.topk_correct.detach().cpu().clone(),
            "topk_total": self.topk_total.detach().cpu().clone(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore counts saved by :meth:`state_dict` (same ``num_classes`` and ``topk``)."""
        if state.get("num_classes") != self.num_classes or list(state.get("topk", ())) != list(
            self.topk
        ):
            raise ValueError(
                f"state is for num_classes={state.get('num_classes')!r}, "
                f"topk={state.get('topk')!r}; this accumulator has "
                f"num_classes={self.num_classes}, topk={list(self.topk)}"
            )
        device = self.counts.device
        self.counts = _check_counts(state["counts"]).to(device).clone()
        self.topk_correct = torch.as_tensor(state["topk_correct"], dtype=torch.int64).to(device)
        self.topk_total = torch.as_tensor(state["topk_total"], dtype=torch.int64).to(device)

    def _compatible(self, other: ConfusionMatrix) -> None:
        if not isinstance(other, ConfusionMatrix):
            raise ValueError(f"can only merge a ConfusionMatrix, got {type(other).__name__}")
        if other.num_classes != self.num_classes or other.topk != self.topk:
            raise ValueError(
                f"cannot merge num_classes={other.num_classes}, topk={list(other.topk)} into "
                f"num_classes={self.num_classes}, topk={list(self.topk)}"
            )

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add ``other``'s counts to this one (in place); returns ``self``."""
        self._compatible(other)
        device = self.counts.device
        self.counts += other.counts.to(device)
        self.topk_correct += other.topk_correct.to(device)
        self.topk_total += other.topk_total.to(device)
        return self

    def __add__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """A new accumulator with the summed counts."""
        out = ConfusionMatrix(self.num_classes, self.topk, self.ignore_index)
        out.to(self.counts.device)
        return out.merge(self).merge(other)

    # -- accumulation ------------------------------------------------------------------

    def update(self, output: Tensor, target: Tensor) -> None:
        """Count one batch.

        Args:
            output: ``(N, C)`` floating scores (logits or probabilities; the
                prediction is their argmax and the top-k counts are updated),
                or ``(N,)`` integer hard predictions (top-k counts untouched).
            target: ``(N,)`` integer class indices in ``[0, C)`` or ``ignore_index``.

        Raises:
            ValueError: shapes, dtypes or class indices out of range, with what was
                expected and what came.
        """
        if not isinstance(output, Tensor) or not isinstance(target, Tensor):
            raise ValueError(
                f"output and target must be tensors, got {type(output).__name__} "
                f"and {type(target).__name__}"
            )
        if target.dim() != 1:
            raise ValueError(f"target must have shape (N,), got {tuple(target.shape)}")
        if output.shape[0] != target.shape[0]:
            raise ValueError(
                f"output has {output.shape[0]} rows but target has {target.shape[0]} entries"
            )
        scores: Tensor | None
        if output.dim() == 2 and output.is_floating_point():
            if output.shape[1] != self.num_classes:
                raise ValueError(
                    f"scores must have shape (N, {self.num_classes}), got {tuple(output.shape)}"
                )
            scores = output.detach()
        elif output.dim() == 1 and not output.is_floating_point() and output.dtype != torch.bool:
            scores = None
        else:
            raise ValueError(
                f"output must be floating scores (N, {self.num_classes}) or integer predictions "
                f"(N,), got shape {tuple(output.shape)} and dtype {output.dtype}"
            )
        if self.ignore_index is not None:
            keep = target != self.ignore_index
            if not bool(keep.all()):
                target = target[keep]
                output = output[keep]
                scores = None if scores is None else scores[keep]
        if self.counts.device != target.device:
            self.to(target.device)
        if scores is None:
            preds = output
        else:
            _check_target(target, self.num_classes)
            self.topk_correct += topk_correct(scores, target, self.topk)
            self.topk_total += target.shape[0]
            preds = scores.argmax(dim=1)  # (N,), first maximum on ties
        self.counts += confusion_counts(preds, target, self.num_classes)

    # -- results -----------------------------------------------------------------------

    def sync(self, group: Any = None) -> ConfusionMatrix:
        """A new accumulator whose counts are summed over all ranks of ``group``.

        When ``torch.distributed`` is not initialised this is a copy of ``self``.
        ``self`` is left unchanged, so calling it again never double-counts.
        Every rank must call it (it is a collective) with the same
        ``num_classes`` and ``topk``. With the NCCL backend, CPU counts are
        reduced on the current CUDA device and brought back.
        """
        out = self + ConfusionMatrix(self.num_classes, self.topk, self.ignore_index)
        if not (dist.is_available() and dist.is_initialized()):
            return out
        device = out.counts.device
        packed = torch.cat(
            [out.counts.flatten(), out.topk_correct, out.topk_total.reshape(1)]
        )  # (C*C + K + 1,)
        if dist.get_backend(group) == "nccl" and packed.device.type != "cuda":
            packed = packed.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(packed, op=dist.ReduceOp.SUM, group=group)
        packed = packed.to(device)
        c2, k = self.num_classes**2, len(self.topk)
        out.counts = packed[:c2].view(self.num_classes, self.num_classes).clone()
        out.topk_correct = packed[c2 : c2 + k].clone()
        out.topk_total = packed[c2 + k].clone()
        return out

    def compute(
        self,
        train_counts: Tensor | Sequence[int] | None = None,
        num_majority: int | None = None,
        sync: bool = True,
    ) -> dict[str, MetricValue]:
        """:func:`summarize` of the counts summed over all ranks (``sync=False``: local only)."""
        return summarize(self.sync() if sync else self, train_counts, num_majority)


# -------------------------------------------------------------------------- summary


def _floats(values: Tensor) -> list[float]:
    return [float(v) for v in values.tolist()]


def summarize(
    metrics: ConfusionMatrix,
    train_counts: Tensor | Sequence[int] | None = None,
    num_majority: int | None = None,
    many: int = 100,
    few: int = 20,
) -> dict[str, MetricValue]:
    """Every metric of the paper's tables, as plain Python values for a JSON file.

    Keys:

    * ``num_samples`` (int);
    * ``top1_accuracy`` (micro, from the confusion matrix) and ``top{k}_accuracy``
      for every other ``k`` of ``metrics.topk`` (NaN unless every sample came with scores);
    * ``macro_recall``, ``macro_precision`` (over all ``C`` classes, ``0/0`` counted as 0);
    * ``per_class_accuracy``, ``per_class_precision`` (lists, NaN where undefined);
    * ``confusion_matrix`` (list of rows of ints; rows are true classes);
    * with ``train_counts``: ``{many,medium,few}_shot_accuracy`` (mean of per-class
      accuracies, OLTR), ``{...}_shot_accuracy_micro`` (sample-weighted) and
      ``{...}_shot_classes`` (how many classes fall in the group);
    * with ``train_counts`` and ``num_majority``: ``majority_recall``,
      ``majority_precision``, ``majority_accuracy_micro`` and the same for
      ``minority`` (Table 7: macro recall and precision within each group).

    Undefined values are NaN (``json.dump`` writes them as ``NaN``).

    Args:
        metrics: the accumulator (pass ``metrics.sync()`` for all ranks).
        train_counts: ``(C,)`` training samples per class, for the groups.
        num_majority: how many of the most frequent training classes are majority
            (5 for EGTEA).
        many, few: the shot thresholds (100, 20).

    Example:
        >>> cm = ConfusionMatrix(2, topk=(1,))
        >>> cm.update(torch.tensor([0, 1, 1, 1]), torch.tensor([0, 0, 1, 1]))
        >>> s = summarize(cm, train_counts=[200, 10], num_majority=1)
        >>> s["top1_accuracy"], s["macro_recall"], s["few_shot_accuracy"], s["majority_recall"]
        (0.75, 0.75, 1.0, 0.5)
    """
    if not isinstance(metrics, ConfusionMatrix):
        raise ValueError(f"metrics must be a ConfusionMatrix, got {type(metrics).__name__}")
    counts = metrics.counts.detach().cpu()
    total = int(counts.sum())
    out: dict[str, MetricValue] = {"num_samples": total, "top1_accuracy": accuracy(counts)}
    complete = int(metrics.topk_total) == total and total > 0
    for k, correct in zip(metrics.topk, metrics.topk_correct.tolist(), strict=True):
        if k != 1:
            out[f"top{k}_accuracy"] = correct / total if complete else math.nan
    out["macro_recall"] = macro_recall(counts)
    out["macro_precision"] = macro_precision(counts)
    out["per_class_accuracy"] = _floats(per_class_accuracy(counts))
    out["per_class_precision"] = _floats(per_class_precision(counts))
    out["confusion_matrix"] = [[int(v) for v in row] for row in counts.tolist()]
    if train_counts is not None:
        train = _as_train_counts(train_counts, metrics.num_classes)
        for name, mask in shot_groups(train, many=many, few=few).items():
            out[f"{name}_shot_accuracy"] = group_accuracy(counts, mask, "class")
            out[f"{name}_shot_accuracy_micro"] = group_accuracy(counts, mask, "sample")
            out[f"{name}_shot_classes"] = int(mask.sum())
        if num_majority is not None:
            for name, mask in majority_minority_groups(train, num_majority).items():
                out[f"{name}_recall"] = macro_recall(counts, mask)
                out[f"{name}_precision"] = macro_precision(counts, mask)
                out[f"{name}_accuracy_micro"] = group_accuracy(counts, mask, "sample")
    elif num_majority is not None:
        raise ValueError("num_majority needs train_counts (the groups come from training counts)")
    return out
