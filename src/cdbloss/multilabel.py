"""Multi-label difficulty: per-label TP / FP / FN / TN counts and the scores CDB reads.

For multi-label (sigmoid) training each of the ``C`` labels is its own binary
problem, so each label has its own difficulty. :class:`MultiLabelDifficulty`
keeps four ``int64`` buffers of shape ``(C,)``: true positives, false
positives, false negatives and true negatives, counted at a decision
threshold. Counts, not ratios, cross process boundaries: under
``torch.distributed`` they are summed over ranks in one ``all_reduce`` before
any score is formed, so every rank gets the same scores and so the same weights.

Targets are ``(N, C)`` in ``{0, 1}``; an entry equal to ``ignore_index`` marks
an unknown label of that sample, which is skipped (as the multi-label losses skip it).
"""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from cdbloss.difficulty import sum_over_ranks

__all__ = ["MEASURES", "Measure", "MultiLabelDifficulty", "check_multilabel_target"]

#: per-label scores in ``[0, 1]`` (higher is better) that :meth:`MultiLabelDifficulty.compute` gives
Measure = Literal["balanced-accuracy", "f1", "recall"]
MEASURES: tuple[str, ...] = get_args(Measure)


def check_multilabel_target(
    target: Tensor, shape: tuple[int, int], ignore_index: int, name: str = "target"
) -> Tensor:
    """Check a multi-label target ``(N, C)`` and return its mask of known entries ``(N, C)``.

    Every entry must be 0, 1 or ``ignore_index`` (integer, bool or float dtype).

    Raises:
        ValueError: with the expected and the given shape or the first bad value.
    """
    if not isinstance(target, Tensor):
        raise ValueError(f"{name} must be a tensor (N, C), got {type(target).__name__}")
    if tuple(target.shape) != tuple(shape):
        raise ValueError(
            f"{name} must have shape (N, C) = {tuple(shape)} to match the logits, "
            f"got {tuple(target.shape)}"
        )
    keep = target != ignore_index
    if target.device.type == "cpu" and target.numel():
        known = target[keep]
        bad = known[(known != 0) & (known != 1)]
        if bad.numel():
            raise ValueError(
                f"{name} entries must be 0, 1 or ignore_index={ignore_index}, got {bad[0].item()!r}"
            )
    return keep


class MultiLabelDifficulty(nn.Module):
    r"""Per-label confusion counts over a validation pass; gives per-label scores.

    With :math:`TP_c, FP_c, FN_c, TN_c` the counts of label ``c``:

    .. math::
        \text{balanced-accuracy}_c = \tfrac12\Big(\frac{TP_c}{TP_c + FN_c}
            + \frac{TN_c}{TN_c + FP_c}\Big), \quad
        F1_c = \frac{2 TP_c}{2 TP_c + FP_c + FN_c}, \quad
        \text{recall}_c = \frac{TP_c}{TP_c + FN_c}

    and the difficulty is :math:`d_c = 1 - \text{score}_c`. A score whose
    denominator is 0 (a label with no positive, or no negative, validation
    entry for balanced accuracy) is NaN: :func:`cdbloss.cdb_weights` then
    gives that label the mean weight.

    Args:
        num_labels: ``C``.
        threshold: the probability at or above which a logit counts as a
            positive prediction (``sigmoid(z) >= threshold``), in ``(0, 1)``.
        ignore_index: target entries equal to it are not counted.

    Shape:
        - ``update(logits_or_preds, target)``: float logits ``(N, C)``, or 0/1
          predictions ``(N, C)`` of integer or bool dtype; target ``(N, C)``.
        - ``compute(measure)``: ``(C,)`` float64 scores.

    Example:
        >>> t = MultiLabelDifficulty(num_labels=2)
        >>> t.update(torch.tensor([[1, 0], [1, 1]]), torch.tensor([[1, 0], [0, 1]]))
        >>> t.compute("balanced-accuracy")
        tensor([0.5000, 1.0000], dtype=torch.float64)
    """

    tp: Tensor
    fp: Tensor
    fn: Tensor
    tn: Tensor

    def __init__(self, num_labels: int, threshold: float = 0.5, ignore_index: int = -100) -> None:
        super().__init__()
        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
            raise ValueError(f"num_labels must be an int >= 1, got {num_labels!r}")
        ok = isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
        if not ok or not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be a probability in (0, 1), got {threshold!r}")
        self.num_labels = num_labels
        self.threshold = float(threshold)
        self.ignore_index = ignore_index
        for key in ("tp", "fp", "fn", "tn"):
            self.register_buffer(key, torch.zeros(num_labels, dtype=torch.int64))

    @property
    def num_classes(self) -> int:
        """``C``, under the name the single-label tracker uses."""
        return self.num_labels

    def extra_repr(self) -> str:
        return f"num_labels={self.num_labels}, threshold={self.threshold}"

    def reset(self) -> None:
        """Zero the counts (call before each validation pass)."""
        for buf in (self.tp, self.fp, self.fn, self.tn):
            buf.zero_()

    @torch.no_grad()
    def update(self, logits_or_preds: Tensor, target: Tensor) -> None:
        """Count one batch (see the class docstring for the shapes)."""
        if not isinstance(logits_or_preds, Tensor) or logits_or_preds.dim() != 2:
            shape = getattr(logits_or_preds, "shape", type(logits_or_preds).__name__)
            raise ValueError(f"expected logits or 0/1 predictions of shape (N, C), got {shape}")
        n, c = logits_or_preds.shape
        if c != self.num_labels:
            raise ValueError(
                f"expected (N, C) with C = {self.num_labels} labels, got {tuple((n, c))}"
            )
        keep = check_multilabel_target(target, (n, c), self.ignore_index)
        if logits_or_preds.is_floating_point():
            cut = math.log(self.threshold / (1.0 - self.threshold))
            pred = logits_or_preds >= cut  # a NaN logit predicts negative
        else:
            pred = logits_or_preds != 0
            if bool(((logits_or_preds != 0) & (logits_or_preds != 1)).any()):
                raise ValueError("integer predictions must be 0 or 1 (or pass float logits)")
        dev = self.tp.device
        pred, keep, pos = pred.to(dev), keep.to(dev), (target == 1).to(dev)
        self.tp += (pred & pos & keep).sum(0)
        self.fp += (pred & ~pos & keep).sum(0)
        self.fn += (~pred & pos & keep).sum(0)
        self.tn += (~pred & ~pos & keep).sum(0)

    def counts(self, sync: bool = True) -> Tensor:
        """``(4, C)`` int64: TP, FP, FN, TN, summed over ranks when ``sync`` (one collective).

        The local buffers are never modified. Every rank must call it.
        """
        stacked = torch.stack([self.tp, self.fp, self.fn, self.tn])
        return sum_over_ranks(stacked) if sync else stacked

    def compute(self, measure: str = "balanced-accuracy", sync: bool = True) -> Tensor:
        """Per-label score ``(C,)`` float64 in ``[0, 1]``; NaN where it is undefined."""
        if measure not in MEASURES:
            raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
        tp, fp, fn, tn = self.counts(sync).double().cpu()
        if measure == "f1":
            return _ratio(2 * tp, 2 * tp + fp + fn)
        recall = _ratio(tp, tp + fn)
        if measure == "recall":
            return recall
        return 0.5 * (recall + _ratio(tn, tn + fp))

    def difficulty(self, measure: str = "balanced-accuracy", sync: bool = True) -> Tensor:
        """``1 - compute(measure)``: per-label difficulty ``(C,)``; NaN where unmeasured."""
        return 1.0 - self.compute(measure, sync)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        for key in ("tp", "fp", "fn", "tn"):
            value = state_dict.get(prefix + key)
            if isinstance(value, Tensor) and value.shape != (self.num_labels,):
                raise ValueError(
                    f"checkpoint holds {key} counts of shape {tuple(value.shape)}, this "
                    f"tracker has {self.num_labels} labels"
                )
        super()._load_from_state_dict(state_dict, prefix, *args)


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    return torch.where(den > 0, num / den.clamp_min(1.0), torch.full_like(num, math.nan))
