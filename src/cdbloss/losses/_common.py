"""Plumbing every loss shares: input checks and the weighted reductions.

All losses in :mod:`cdbloss.losses` take ``logits (N, C)`` and ``target (N,)``
(or, as ``nn.CrossEntropyLoss``, spatial ``logits (N, C, d1, ...)`` with
``target (N, d1, ...)``, each position one sample: :func:`spatial`; or
class-probability targets of the logits' shape where the loss has a meaning
for them: :func:`is_soft`) and reduce per-sample losses ``l_i`` with per-class
weights ``w``:

* ``"none"``: the vector ``w_{y_i} l_i`` of shape ``(N,)`` (0 where ignored);
* ``"sum"``: :math:`\\sum_i w_{y_i} l_i`;
* ``"mean"``: :math:`\\sum_i w_{y_i} l_i / \\sum_i w_{y_i}`, exactly
  ``torch.nn.CrossEntropyLoss(weight=w)``; when the denominator is 0 (every
  sample's class has weight 0, or every target is ignored) the loss is 0 with
  zero gradients instead of NaN;
* ``"sample_mean"``: :math:`\\sum_i w_{y_i} l_i / N'` with ``N'`` the number of
  non-ignored samples: the reduction of the CDB authors' CIFAR and EGTEA code.
  At extreme imbalance it can starve training (see docs/losses.md).

Without class weights ``"mean"`` and ``"sample_mean"`` coincide. With
probability targets ``"mean"`` divides by the number of samples, as torch does.

The checks that need the host (the target range on CPU) are skipped while
``torch.compile`` traces or a ``torch.func`` transform runs (:func:`host_checks`),
so the hot path has no graph break and works under ``vmap(grad(...))``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Literal, TypeVar, cast, get_args

import torch
from torch import Tensor

Reduction = Literal["none", "mean", "sum", "sample_mean"]
REDUCTIONS: tuple[str, ...] = get_args(Reduction)

__all__ = [
    "REDUCTIONS",
    "Reduction",
    "autocast_fp32",
    "check_inputs",
    "check_label_smoothing",
    "check_number",
    "check_reduction",
    "class_bias",
    "host_checks",
    "is_soft",
    "normalize_total",
    "reduce_rows",
    "reduce_weighted",
    "refuse_soft",
    "sample_weights",
    "soft_targets",
    "spatial",
]

Fn = TypeVar("Fn", bound=Callable[..., Tensor])


def autocast_fp32(logits: Tensor) -> Tensor:
    """Half-precision logits as float32 under autocast, so a loss's maths run in float32.

    Outside autocast (or for float32/float64 logits) the logits pass unchanged.
    """
    if logits.dtype in (torch.float16, torch.bfloat16) and torch.is_autocast_enabled(
        logits.device.type
    ):
        return logits.float()
    return logits


def host_checks() -> bool:
    """Whether checks that read tensor values on the host may run now.

    False while ``torch.compile`` traces (a host read is a graph break) or a
    ``torch.func`` transform (``vmap``, ``grad``) is active (a batched tensor
    has no single value to read). The shape and dtype checks always run.
    """
    if torch.compiler.is_compiling():
        return False
    return torch._C._functorch.peek_interpreter_stack() is None


def is_soft(logits: Tensor, target: Tensor) -> bool:
    """True when ``target`` holds class probabilities: floating, with the logits' shape."""
    return target.is_floating_point() and target.dim() == logits.dim() and target.dim() >= 2


def check_number(name: str, value: float, *, positive: bool) -> float:
    """``value`` as a float, or ``ValueError`` unless it is finite and ``> 0`` (``positive``) or ``>= 0``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= 0 if positive else value < 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite float {bound}, got {value!r}")
    return float(value)


def check_label_smoothing(label_smoothing: float) -> float:
    """Raise ``ValueError`` unless ``label_smoothing`` is a float in ``[0, 1]``."""
    ok = isinstance(label_smoothing, (int, float)) and not isinstance(label_smoothing, bool)
    if not ok or not math.isfinite(label_smoothing) or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be a float in [0, 1], got {label_smoothing!r}")
    return float(label_smoothing)


def refuse_soft(logits: Tensor, target: Tensor, name: str, why: str) -> None:
    """Raise ``ValueError`` for probability targets on a loss that needs a class index."""
    if isinstance(logits, Tensor) and isinstance(target, Tensor) and is_soft(logits, target):
        raise ValueError(
            f"{name}: probability targets (shape {tuple(target.shape)}) are not supported: "
            f"{why}; pass class indices (N,)"
        )


def flatten_spatial(
    logits: Tensor, target: Tensor, name: str
) -> tuple[Tensor, Tensor, tuple[int, ...]]:
    """``(N, C, d1, ...)`` logits to ``(N * d1 * ..., C)`` rows, the target to match.

    Returns ``(logits (M, C), target (M,) or (M, C), shape)`` with ``shape`` =
    ``(N, d1, ...)``, the shape of the per-sample losses.
    """
    n, c = logits.shape[:2]
    spatial_shape = tuple(logits.shape[2:])
    rows = logits.movedim(1, -1).reshape(-1, c)
    if is_soft(logits, target):
        if target.shape != logits.shape:
            raise ValueError(
                f"{name}: probability target must have the shape of logits "
                f"{tuple(logits.shape)}, got {tuple(target.shape)}"
            )
        return rows, target.movedim(1, -1).reshape(-1, c), (n, *spatial_shape)
    if tuple(target.shape) != (n, *spatial_shape):
        raise ValueError(
            f"{name}: logits must have shape (N, C) or (N, C, d1, ...) with target (N, d1, ...); "
            f"got logits {tuple(logits.shape)} and target {tuple(target.shape)} "
            f"(expected target {(n, *spatial_shape)})"
        )
    return rows, target.reshape(-1), (n, *spatial_shape)


def spatial(fn: Fn) -> Fn:
    """Make a loss over ``(N, C)`` rows accept ``(N, C, d1, ...)`` logits, as torch's losses do.

    Each position is one sample: the logits are moved to rows ``(N * d1 * ..., C)``,
    the target flattened alike, and a ``(M,)`` result of ``reduction="none"``
    comes back as ``(N, d1, ...)``. ``(N, C)`` input passes through untouched.
    """

    @functools.wraps(fn)
    def wrapper(logits: Tensor, target: Tensor, *args: object, **kwargs: object) -> Tensor:
        if isinstance(logits, Tensor) and isinstance(target, Tensor) and logits.dim() > 2:
            rows, flat, shape = flatten_spatial(logits, target, fn.__name__)
            out = fn(rows, flat, *args, **kwargs)
            return out.reshape(shape) if out.dim() == 1 else out
        return fn(logits, target, *args, **kwargs)

    return cast(Fn, wrapper)


def class_bias(logits: Tensor, bias: Tensor) -> Tensor:
    """``logits + bias`` with a per-class ``bias (C,)`` added along dim 1 (any layout)."""
    bias = bias.to(device=logits.device, dtype=logits.dtype)
    if logits.dim() > 2:
        bias = bias.reshape(-1, *([1] * (logits.dim() - 2)))
    return logits + bias


def soft_targets(
    target: Tensor, num_classes: int, label_smoothing: float, ignore_index: int, dtype: torch.dtype
) -> Tensor:
    r"""Class-index targets ``(N,)`` as smoothed probabilities ``(N, C)``.

    :math:`(1 - \varepsilon)\, \text{onehot}(y_i) + \varepsilon / C`; rows of
    ignored samples are 0.
    """
    keep = target != ignore_index
    safe = torch.where(keep, target, torch.zeros_like(target))
    onehot = torch.nn.functional.one_hot(safe, num_classes).to(dtype)
    probs = onehot * (1.0 - label_smoothing) + label_smoothing / num_classes
    return probs * keep.unsqueeze(1)


def reduce_rows(
    per_sample: Tensor,
    target: Tensor,
    weight: Tensor | None,
    reduction: str,
    ignore_index: int,
    soft: bool,
) -> Tensor:
    r"""Reduce per-sample losses that already carry their class weights (0 where ignored).

    The normalisers of ``F.cross_entropy``: for class-index targets ``"mean"``
    divides by :math:`\sum_i w_{y_i}` (NaN-free, see :func:`normalize_total`),
    for probability targets by ``N``; ``"sample_mean"`` by the kept samples.
    """
    if reduction == "none":
        return per_sample
    total = per_sample.sum()
    if reduction == "sum":
        return total
    if soft:
        return total / max(per_sample.shape[0], 1)
    keep, w = sample_weights(target, weight, ignore_index, per_sample.dtype)
    return normalize_total(total, keep, w, reduction)


def check_reduction(reduction: str) -> None:
    """Raise ``ValueError`` unless ``reduction`` is one of :data:`REDUCTIONS`."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _check_weight(logits: Tensor, weight: Tensor | None, name: str) -> None:
    """Raise ``ValueError`` unless ``weight`` is ``None`` or ``(C,)`` for ``logits (N, C)``."""
    c = logits.shape[1]
    if weight is None:
        return
    if not isinstance(weight, Tensor) or weight.dim() != 1 or weight.shape[0] != c:
        shape = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(
            f"{name}: logits {tuple(logits.shape)} have C = {c} classes but the class "
            f"weights have shape {shape}; weight must have shape (C,) = ({c},) to match "
            "logits (is the loss built for another num_classes?)"
        )


def check_inputs(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    name: str = "loss",
) -> bool:
    """Check shapes, dtypes and (on CPU) the target range before any work.

    Args:
        logits: ``(N, C)`` floating point (spatial input is flattened first, :func:`spatial`).
        target: ``(N,)`` integer class indices in ``[0, C)`` or ``ignore_index``,
            or class probabilities ``(N, C)`` (floating, :func:`is_soft`).
        weight: optional ``(C,)`` per-class weights.

    Returns:
        ``True`` when every target is known to be a class index and none is
        ignored (so reductions may skip masking), or the target holds
        probabilities (nothing is ignored); ``False`` when some may be
        ignored, or when this could not be checked without a device sync
        (accelerators, ``torch.compile``, ``torch.func``).

    Raises:
        ValueError: with what was expected and what came.
    """
    if not isinstance(logits, Tensor) or not isinstance(target, Tensor):
        raise ValueError(
            f"{name}: logits and target must be tensors, got "
            f"{type(logits).__name__} and {type(target).__name__}"
        )
    if logits.dim() != 2:
        raise ValueError(
            f"{name}: logits must have shape (N, C) (or (N, C, d1, ...) with target "
            f"(N, d1, ...)), got {tuple(logits.shape)}"
        )
    if not logits.is_floating_point():
        raise ValueError(f"{name}: logits must be floating point, got dtype {logits.dtype}")
    n, c = logits.shape
    if c == 0:
        raise ValueError(f"{name}: logits must have at least one class, got shape {(n, c)}")
    _check_weight(logits, weight, name)
    if is_soft(logits, target):
        if target.shape != logits.shape:
            raise ValueError(
                f"{name}: probability target must have the shape of logits "
                f"{tuple(logits.shape)}, got {tuple(target.shape)}"
            )
        return True
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
    # A device-side check would force a host sync on accelerators; there the
    # kernels' own asserts catch bad targets. On CPU one aminmax settles it.
    if target.device.type != "cpu" or n == 0 or not host_checks():
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
