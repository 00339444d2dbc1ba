"""ClassDifficulty: per-class validation accuracy from integer counts.

The tracker keeps two ``int64`` buffers, ``correct`` and ``total``, of shape
``(C,)``. Counts, not ratios, cross process boundaries: under
``torch.distributed`` :meth:`ClassDifficulty.compute` sums the counts of all
ranks before dividing, so every rank gets the same accuracy (and so the same
CDB weights) whatever share of the validation set it saw. Nothing assumes a
fixed number of samples per class.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["ClassDifficulty", "sum_over_ranks"]


def sum_over_ranks(counts: Tensor) -> Tensor:
    """``counts`` summed over the ranks of ``torch.distributed`` in one ``all_reduce``.

    Outside a process group of more than one rank, ``counts`` itself. The
    result lies on ``counts``' device (NCCL reduces a CPU tensor on the GPU).
    Every rank must call it (a collective).
    """
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return counts
    out = counts.clone()
    if dist.get_backend() == "nccl" and out.device.type != "cuda":
        out = out.cuda()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.to(counts.device)


class ClassDifficulty(nn.Module):
    r"""Accumulates per-class correct / total counts; gives accuracy and difficulty.

    .. math::
        A_c = \frac{\#\{i : y_i = c,\ \hat y_i = c\}}{\#\{i : y_i = c\}}, \qquad d_c = 1 - A_c

    Args:
        num_classes: ``C``.
        ignore_index: targets equal to it are skipped (as in the losses).

    Shape:
        - ``update(preds_or_logits, target)``: logits ``(N, C)`` (arg-maxed) or
          predicted labels ``(N,)``, and target ``(N,)``; or spatial logits
          ``(N, C, d1, ...)`` / labels ``(N, d1, ...)`` with target ``(N, d1, ...)``,
          every position counted as one sample (per pixel for segmentation).
        - ``compute()``: ``(C,)`` float64 accuracy; NaN for a class with no samples.

    Example:
        >>> tracker = ClassDifficulty(num_classes=3)
        >>> tracker.update(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]))
        >>> tracker.compute()
        tensor([1.0000, 1.0000, 0.5000], dtype=torch.float64)
    """

    correct: Tensor
    total: Tensor

    def __init__(self, num_classes: int, ignore_index: int = -100) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.register_buffer("correct", torch.zeros(num_classes, dtype=torch.int64))
        self.register_buffer("total", torch.zeros(num_classes, dtype=torch.int64))

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}"

    def reset(self) -> None:
        """Zero the counts (call before each validation pass)."""
        self.correct.zero_()
        self.total.zero_()

    @torch.no_grad()
    def update(self, preds_or_logits: Tensor, target: Tensor) -> None:
        """Count one batch.

        Args:
            preds_or_logits: logits ``(N, C)`` or integer predictions ``(N,)``
                (or ``(N, C, d1, ...)`` / ``(N, d1, ...)``).
            target: integer labels ``(N,)`` (``(N, d1, ...)``) in ``[0, C)`` (or ``ignore_index``).
        """
        c = self.num_classes
        if not isinstance(preds_or_logits, Tensor) or not isinstance(target, Tensor):
            raise ValueError("update() expects tensors (preds or logits, target)")
        preds_or_logits, target = self._per_position(preds_or_logits, target)
        if target.dim() != 1 or target.is_floating_point() or target.dtype == torch.bool:
            raise ValueError(
                f"target must be an integer tensor of shape (N,), got dtype {target.dtype} "
                f"and shape {tuple(target.shape)}"
            )
        n = target.shape[0]
        if preds_or_logits.dim() == 2:
            if preds_or_logits.shape != (n, c):
                raise ValueError(
                    f"logits must have shape (N, C) = ({n}, {c}), got {tuple(preds_or_logits.shape)}"
                )
            preds = preds_or_logits.argmax(dim=1)
            if preds_or_logits.is_floating_point():
                # argmax puts a row with a NaN on that NaN's class (class 0 for an all-NaN
                # row): such a row predicts no class, so it counts as a miss
                preds = preds.masked_fill(preds_or_logits.isnan().any(dim=1), -1)
        elif preds_or_logits.dim() == 1:
            if preds_or_logits.shape[0] != n or preds_or_logits.is_floating_point():
                raise ValueError(
                    f"predictions must be integer labels of shape ({n},), got dtype "
                    f"{preds_or_logits.dtype} and shape {tuple(preds_or_logits.shape)}"
                )
            preds = preds_or_logits
        else:
            raise ValueError(
                f"expected logits (N, C) or predicted labels (N,), got shape "
                f"{tuple(preds_or_logits.shape)}"
            )
        keep = target != self.ignore_index
        target = target[keep].to(self.total.device)
        preds = preds[keep].to(self.total.device)
        if target.device.type == "cpu" and target.numel():
            lo, hi = torch.aminmax(target)
            if int(lo) < 0 or int(hi) >= c:
                bad = int(lo) if int(lo) < 0 else int(hi)
                raise ValueError(f"target values must lie in [0, {c}), got {bad}")
        self.total += torch.bincount(target, minlength=c)[:c]
        self.correct += torch.bincount(target[preds == target], minlength=c)[:c]

    def _per_position(self, preds_or_logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """Spatial input as rows: every position of ``(N, d1, ...)`` is one counted sample.

        Logits ``(N, C, d1, ...)`` become ``(N * d1 * ..., C)``, predictions
        ``(N, d1, ...)`` and the target ``(N * d1 * ...,)``; other shapes pass unchanged.
        """
        if target.dim() < 2:
            return preds_or_logits, target
        spatial = tuple(target.shape)
        if preds_or_logits.dim() == target.dim() + 1:
            if preds_or_logits.shape[1] != self.num_classes or (
                (preds_or_logits.shape[0], *preds_or_logits.shape[2:]) != spatial
            ):
                raise ValueError(
                    f"logits must have shape (N, C, d1, ...) = ({spatial[0]}, {self.num_classes}"
                    f", {', '.join(map(str, spatial[1:]))}) to match target {spatial}, got "
                    f"{tuple(preds_or_logits.shape)}"
                )
            rows = preds_or_logits.movedim(1, -1).reshape(-1, self.num_classes)
            return rows, target.reshape(-1)
        if preds_or_logits.shape == target.shape:
            return preds_or_logits.reshape(-1), target.reshape(-1)
        raise ValueError(
            f"expected logits (N, C, d1, ...) or predicted labels (N, d1, ...) for target "
            f"{spatial}, got shape {tuple(preds_or_logits.shape)}"
        )

    def counts(self, sync: bool = True) -> tuple[Tensor, Tensor]:
        """``(correct, total)`` as ``int64 (C,)``, summed over ranks when ``sync``.

        The local buffers are never modified, so calling this twice does not
        double-count. Every rank of the process group must call it (a collective).
        """
        correct, total = self.correct.clone(), self.total.clone()
        if sync:
            stacked = sum_over_ranks(torch.stack([correct, total]))  # one collective, not two
            correct, total = stacked[0], stacked[1]
        return correct, total

    def compute(self, sync: bool = True) -> Tensor:
        """Per-class accuracy ``(C,)`` float64; NaN where a class had no samples."""
        correct, total = self.counts(sync)
        acc = correct.double() / total.double()
        return torch.where(total > 0, acc, torch.full_like(acc, float("nan")))

    def difficulty(self, sync: bool = True) -> Tensor:
        """``1 - compute()``: per-class difficulty ``(C,)``; NaN where unmeasured."""
        return 1.0 - self.compute(sync)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        for key in ("correct", "total"):
            value = state_dict.get(prefix + key)
            if isinstance(value, Tensor) and value.shape != (self.num_classes,):
                raise ValueError(
                    f"checkpoint holds {key} counts for {value.shape[0] if value.dim() else 0} "
                    f"classes, this tracker has {self.num_classes}"
                )
        super()._load_from_state_dict(state_dict, prefix, *args)
