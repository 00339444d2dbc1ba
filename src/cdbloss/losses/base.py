"""The one base class of every loss module: per-class weights, a reduction, ``ignore_index``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from cdbloss.losses._common import check_label_smoothing, check_reduction, host_checks

__all__ = ["ClassWeightedLoss", "counts_tensor"]


def counts_tensor(class_counts: Sequence[int] | Tensor, num_classes: int) -> Tensor:
    """Validate per-class training counts: ``(C,)``, non-negative, length ``num_classes``."""
    counts = torch.as_tensor(class_counts)
    if counts.dim() != 1 or counts.shape[0] != num_classes:
        raise ValueError(
            f"class_counts must have one entry per class ({num_classes}), "
            f"got shape {tuple(counts.shape)}"
        )
    if counts.is_floating_point() and bool(torch.isnan(counts).any()):
        raise ValueError("class_counts must not contain NaN")
    if bool((counts < 0).any()):
        raise ValueError(f"class_counts must be >= 0, got {counts.tolist()}")
    return counts.to(torch.float64)


class ClassWeightedLoss(nn.Module):
    r"""A loss over ``logits (N, C)`` and ``target (N,)`` with per-class weights ``weight``.

    Every loss module of :mod:`cdbloss.losses` derives from it. The current
    weights are ``weight`` (``(C,)`` float32): a registered buffer of the loss
    (so ``state_dict()`` carries them and ``.to(device)`` moves them), or, with
    ``weight_buffer=False``, a property of a subclass that keeps them elsewhere
    (:class:`~cdbloss.CDBLoss` reads them from its :class:`~cdbloss.CDBWeighting`).
    Subclasses implement ``forward`` by delegating to their functional form.

    Args:
        num_classes: ``C``.
        weight: initial per-class weights ``(C,)``; default all ones.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` | ``"sample_mean"``
            (see :mod:`cdbloss.losses._common`).
        ignore_index: targets equal to it contribute nothing.
        weight_buffer: register the ``weight`` buffer (``False``: the subclass
            provides ``weight``, and ``weight`` must be ``None``).
        label_smoothing: :math:`\varepsilon` in ``[0, 1]``, as
            ``nn.CrossEntropyLoss(label_smoothing=...)``.

    Shape (as ``nn.CrossEntropyLoss``, where the loss has a meaning for it; see
    the table in docs/losses.md): logits ``(N, C)`` or ``(N, C, d1, ...)``;
    target ``(N,)`` / ``(N, d1, ...)`` class indices, or class probabilities of
    the logits' shape.
    """

    weight: Tensor

    def __init__(
        self,
        num_classes: int,
        weight: Tensor | None = None,
        reduction: str = "mean",
        ignore_index: int = -100,
        *,
        weight_buffer: bool = True,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
        check_reduction(reduction)
        self.num_classes = num_classes
        self.reduction = reduction
        self.ignore_index = ignore_index
        self.label_smoothing = check_label_smoothing(label_smoothing)
        if weight_buffer:
            init = torch.ones(num_classes) if weight is None else self._checked_weight(weight)
            self.register_buffer("weight", init.to(torch.float32).clone())
        elif weight is not None:
            raise ValueError(
                "weight must be None when the subclass provides it (weight_buffer=False)"
            )
        self._positive_key: tuple[int, int] | None = None
        self._positive = True

    def weight_positive(self) -> bool:
        """Whether every class weight is > 0, cached until the buffer changes.

        The cache key is the buffer's identity and its in-place version counter,
        so ``update_weights``, ``load_state_dict``, ``.to()`` and direct in-place
        edits all invalidate it. On accelerators this costs one host sync per
        change of the weights, not one per step. While ``torch.compile`` traces
        or a ``torch.func`` transform runs it answers ``False`` without a host
        read (the reductions are then NaN-free whatever the weights).
        """
        if not host_checks():
            return False
        w = self.weight
        key = (id(w), w._version)
        if key != self._positive_key:
            self._positive = bool((w > 0).all())
            self._positive_key = key
        return self._positive

    def _checked_weight(self, weight: Tensor) -> Tensor:
        weight = torch.as_tensor(weight)
        if weight.dim() != 1 or weight.shape[0] != self.num_classes:
            raise ValueError(
                f"weight must have shape (C,) = ({self.num_classes},), got {tuple(weight.shape)}"
            )
        if not bool(torch.isfinite(weight).all()) or bool((weight < 0).any()):
            raise ValueError(f"weight must be finite and >= 0, got {weight.tolist()}")
        return weight

    def set_weight(self, weight: Tensor) -> None:
        """Replace the per-class weights in place (keeps the buffer's device and dtype)."""
        self.weight.copy_(self._checked_weight(weight).to(self.weight))

    def extra_repr(self) -> str:
        smooth = f", label_smoothing={self.label_smoothing}" if self.label_smoothing else ""
        return f"num_classes={self.num_classes}, reduction={self.reduction!r}{smooth}"
