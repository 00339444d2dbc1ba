"""Plumbing every loss shares: input checks and the weighted reductions.

All losses in :mod:`cdbloss.losses` take ``logits (N, C)`` and ``target (N,)``
and reduce per-sample losses ``l_i`` with per-class weights ``w``:

* ``"none"``: the vector ``w_{y_i} l_i`` of shape ``(N,)`` (0 where ignored);
* ``"sum"``: :math:`\\sum_i w_{y_i} l_i`;
* ``"mean"``: :math:`\\sum_i w_{y_i} l_i / \\sum_i w_{y_i}`, exactly
  ``torch.nn.CrossEntropyLoss(weight=w)``; when the denominator is 0 (every
  sample's class has weight 0, or every target is ignored) the loss is 0 with
  zero gradients instead of NaN;
* ``"sample_mean"``: :math:`\\sum_i w_{y_i} l_i / N'` with ``N'`` the number of
  non-ignored samples: the reduction of the CDB authors' CIFAR and EGTEA code.
  At extreme imbalance it can starve training (see docs/losses.md).

Without class weights ``"mean"`` and ``"sample_mean"`` coincide.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

Reduction = Literal["none", "mean", "sum", "sample_mean"]
REDUCTIONS: tuple[str, ...] = get_args(Reduction)

__all__ = [
    "REDUCTIONS",
    "Reduction",
    "check_inputs",
    "check_reduction",
    "normalize_total",
    "reduce_weighted",
    "sample_weights",
]


def check_reduction(reduction: str) -> None:
    """Raise ``ValueError`` unless ``reduction`` is one of :data:`REDUCTIONS`."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def check_inputs(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    name: str = "loss",
) -> bool:
    """Check shapes, dtypes and (on CPU) the target range before any work.

    Args:
        logits: ``(N, C)`` floating point.
        target: ``(N,)`` integer class indices in ``[0, C)`` or ``ignore_index``.
        weight: optional ``(C,)`` per-class weights.

    Returns:
        ``True`` when every target is known to be a class index and none is
        ignored (so reductions may skip masking); ``False`` when some may be
        ignored, or when this could not be checked without a device sync.

    Raises:
        ValueError: with what was expected and what came.
    """
    if not isinstance(logits, Tensor) or not isinstance(target, Tensor):
        raise ValueError(
            f"{name}: logits and target must be tensors, got "
            f"{type(logits).__name__} and {type(target).__name__}"
        )
    if logits.dim() != 2:
        raise ValueError(f"{name}: logits must have shape (N, C), got {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"{name}: logits must be floating point, got dtype {logits.dtype}")
    n, c = logits.shape
    if c == 0:
        raise ValueError(f"{name}: logits must have at least one class, got shape {(n, c)}")
    if target.dim() != 1 or target.shape[0] != n:
        raise ValueError(
            f"{name}: target must have shape (N,) = ({n},) to match logits {tuple(logits.shape)}, "
            f"got {tuple(target.shape)}"
        )
    if target.dtype != torch.long:  # torch's kernels take int64 indices only
        hint = "; convert with target.long()" if not target.is_floating_point() else ""
        raise ValueError(
            f"{name}: target must hold integer class indices as int64 (torch.long), got dtype "
            f"{target.dtype}{hint}"
        )
    if weight is not None:
        if not isinstance(weight, Tensor) or weight.dim() != 1 or weight.shape[0] != c:
            shape = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
            raise ValueError(
                f"{name}: weight must have shape (C,) = ({c},) to match logits, got {shape}"
            )
    # A device-side check would force a host sync on accelerators; there the
    # kernels' own asserts catch bad targets. On CPU one aminmax settles it.
    if target.device.type != "cpu" or n == 0:
        return False
    lo, hi = (int(v) for v in torch.aminmax(target))
    if lo >= 0 and hi < c:
        # Every target is a class index; none is ignored unless ignore_index is one.
        return not (0 <= ignore_index < c)
    valid = target[target != ignore_index]
    if valid.numel():
        lo, hi = (int(v) for v in torch.aminmax(valid))
        if lo < 0 or hi >= c:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"{name}: target values must lie in [0, {c}) or equal ignore_index="
                f"{ignore_index}, got {bad}"
            )
    return False


def sample_weights(
    target: Tensor,
    weight: Tensor | None,
    ignore_index: int,
    dtype: torch.dtype,
    all_kept: bool = False,
) -> tuple[Tensor | None, Tensor]:
    """``(keep, w)``: the non-ignored mask ``(N,)`` and ``w_{y_i}`` ``(N,)`` (0 where ignored).

    With ``all_kept`` (see :func:`check_inputs`) no mask is built and ``keep`` is None.
    """
    if all_kept:
        if weight is None:
            return None, torch.ones(target.shape, dtype=dtype, device=target.device)
        return None, weight.to(dtype)[target]
    keep = target != ignore_index
    if weight is None:
        return keep, keep.to(dtype)
    safe_target = torch.where(keep, target, torch.zeros_like(target))
    return keep, weight.to(dtype)[safe_target] * keep


def normalize_total(total: Tensor, keep: Tensor | None, w: Tensor, reduction: str) -> Tensor:
    """Divide a weighted sum by the denominator that ``reduction`` names.

    ``"mean"`` divides by ``sum(w)``, ``"sample_mean"`` by the number of kept
    samples, ``"sum"`` by nothing. A zero denominator implies ``total == 0``
    (every term carries a zero weight), and ``0 / tiny`` is 0 with zero
    gradients, so neither the value nor the gradient can become NaN.
    """
    if reduction == "sum":
        return total
    if reduction == "mean":
        denom = w.sum()
    elif reduction == "sample_mean":
        if keep is None:  # nothing ignored: N itself
            return total / max(w.shape[0], 1)
        denom = keep.sum().to(total.dtype)
    else:
        check_reduction(reduction)
        raise ValueError(f"reduction {reduction!r} does not reduce to a scalar")
    return total / denom.clamp_min(torch.finfo(total.dtype).tiny)


def reduce_weighted(
    per_sample: Tensor,
    target: Tensor,
    weight: Tensor | None,
    reduction: str,
    ignore_index: int = -100,
    all_kept: bool = False,
) -> Tensor:
    """Apply per-class weights and a reduction to unweighted per-sample losses.

    Args:
        per_sample: ``(N,)`` unweighted losses ``l_i``; entries of ignored
            samples may hold anything finite (they are zeroed).
        target: ``(N,)`` class indices or ``ignore_index``.
        weight: ``(C,)`` class weights or ``None`` (all ones).
        reduction: one of :data:`REDUCTIONS` (see the module docstring).
        all_kept: what :func:`check_inputs` returned (skips the masking).

    Returns:
        ``(N,)`` for ``"none"``, else a scalar.
    """
    check_reduction(reduction)
    keep, w = sample_weights(target, weight, ignore_index, per_sample.dtype, all_kept)
    if keep is not None:
        per_sample = torch.where(keep, per_sample, torch.zeros_like(per_sample))
    weighted = per_sample * w  # (N,)
    if reduction == "none":
        return weighted
    return normalize_total(weighted.sum(), keep, w, reduction)
