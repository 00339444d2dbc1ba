"""Losses by name, so an experiment config can pick any of them.

``build_loss(name, num_classes, class_counts=None, **options)`` returns an
``nn.Module`` taking ``(logits (N, C), target (N,))``. Losses that need the
training class counts (IFW, class-balanced, LDAM, logit adjustment, EQL)
raise a ``ValueError`` when ``class_counts`` is missing.

Two optional hooks tell a training loop what a loss wants, see
:func:`wants_difficulty` and :func:`wants_epoch`:

* ``update_weights(accuracy_or_tracker)``: called after each validation pass
  (CDB losses);
* ``set_epoch(epoch)``: called at the start of each epoch (LDAM-DRW).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import Tensor, nn

from cdbloss.cdb import PAPER_RULE
from cdbloss.registry import Registry

__all__ = [
    "LOSSES",
    "TASKS",
    "LossSpec",
    "build_loss",
    "check_loss_options",
    "is_multilabel",
    "register_loss",
    "resolved_options",
    "wants_difficulty",
    "wants_epoch",
]

Counts = Sequence[int] | Tensor | None

#: what a loss trains: ``"single-label"`` (logits ``(N, C)``, target ``(N,)``,
#: softmax) or ``"multi-label"`` (logits ``(N, C)``, target ``(N, C)`` in {0, 1}, sigmoid)
TASKS: tuple[str, ...] = ("single-label", "multi-label")
L = TypeVar("L", bound=type[nn.Module])


@dataclass(frozen=True)
class LossSpec:
    """A registered loss: how to build it, and what it needs."""

    name: str
    cls: type[nn.Module]
    needs_counts: bool
    defaults: dict[str, Any]
    description: str
    task: str = "single-label"


#: Registered losses by name (filled by :func:`register_loss` on each loss class).
LOSSES: Registry[LossSpec] = Registry("loss")


def register_loss(
    name: str,
    *,
    needs_counts: bool | None = None,
    description: str = "",
    task: str = "single-label",
    **defaults: Any,
) -> Callable[[L], L]:
    """Class decorator: register the loss class as ``name`` with default keyword options.

    Stack it to register one class under several names (``"ifw"`` and
    ``"ifw-sqrt"`` are :class:`~cdbloss.losses.InverseFrequencyLoss` with two
    ``power`` defaults).

    Args:
        name: the key of :data:`LOSSES`.
        needs_counts: whether :func:`build_loss` must get ``class_counts``;
            by default, whether the constructor requires ``class_counts``.
        description: one line for listings.
        task: one of :data:`TASKS`, the targets the loss takes.
        **defaults: constructor options this name fixes (the caller may override them).

    Raises:
        ValueError: if ``name`` is already registered.
    """

    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")

    def deco(cls: L) -> L:
        needs = _requires_counts(cls) if needs_counts is None else needs_counts
        LOSSES.add(name, LossSpec(name, cls, needs, dict(defaults), description, task))
        return cls

    return deco


def _requires_counts(cls: type[nn.Module]) -> bool:
    param = inspect.signature(cls.__init__).parameters.get("class_counts")
    return param is not None and param.default is inspect.Parameter.empty


def _accepted(cls: type[nn.Module]) -> set[str]:
    return {p for p in inspect.signature(cls.__init__).parameters if p not in ("self",)}


def build_loss(
    name: str, num_classes: int, class_counts: Counts = None, **options: Any
) -> nn.Module:
    """Build the loss registered as ``name``.

    Args:
        name: a key of :data:`LOSSES` (unknown names list the known ones).
        num_classes: ``C``.
        class_counts: training samples per class ``(C,)``, for the losses that need it.
        **options: constructor options, overriding the registered defaults.

    Example:
        >>> loss = build_loss("cdb-ce", num_classes=10, tau=1.5)
        >>> type(loss).__name__
        'CDBLoss'
    """
    spec = LOSSES.lookup(name)
    check_loss_options(name, options)
    kwargs = {**spec.defaults, **options}
    accepted = _accepted(spec.cls)
    if spec.needs_counts:
        if class_counts is None:
            raise ValueError(f"loss {name!r} needs class_counts (training samples per class)")
        kwargs["class_counts"] = class_counts
    elif class_counts is not None and "class_counts" in accepted:
        kwargs.setdefault("class_counts", class_counts)  # optional: used by some settings
    return spec.cls(num_classes=num_classes, **kwargs)


def check_loss_options(name: str, options: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the valid options when loss ``name`` does not take one of ``options``.

    Needs no data: a config's ``loss.options`` are checked with it before anything loads.
    ``num_classes`` and ``class_counts`` come from the data, not from the options.
    """
    spec = LOSSES.lookup(name)
    accepted = _accepted(spec.cls)
    unknown = sorted(set(options) - (accepted - {"num_classes", "class_counts"}))
    if unknown:
        valid = sorted(accepted - {"num_classes", "class_counts"} - set(spec.defaults))
        raise ValueError(f"loss {name!r} got unknown options {unknown}; it accepts {valid}")


def resolved_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` plus the CDB defaults of loss ``name`` that differ from the paper's rule.

    A run's config then names every CDB setting that is not the paper's, so a
    config written before a change of the library's defaults keeps its meaning:
    it no longer matches a run of the new defaults (the engine refuses to mix
    them), and the report labels each run by what it trained with. Other
    losses' options come back unchanged.
    """
    spec = LOSSES.lookup(name)
    out = dict(options)
    if not all(_param(spec.cls, key) is not None for key in PAPER_RULE):
        return out  # not a loss that takes the CDB settings
    for key, paper in PAPER_RULE.items():
        if key in out or key in spec.defaults:
            continue
        default = _default_of(spec.cls, key)
        if default != paper:
            out[key] = default
    return out


def _param(cls: type, key: str) -> inspect.Parameter | None:
    """Constructor argument ``key`` with a default, from the first class in the MRO naming it."""
    for klass in cls.__mro__:
        param = inspect.signature(klass.__init__).parameters.get(key)  # type: ignore[misc]
        if param is not None and param.default is not inspect.Parameter.empty:
            return param
    return None


def _default_of(cls: type, key: str) -> Any:
    """The default of constructor argument ``key`` (see :func:`_param`)."""
    param = _param(cls, key)
    if param is None:
        raise KeyError(key)
    return param.default


def is_multilabel(name: str) -> bool:
    """True if the loss registered as ``name`` takes multi-label targets ``(N, C)``."""
    return LOSSES.lookup(name).task == "multi-label"


def wants_difficulty(loss: nn.Module) -> bool:
    """True if ``loss`` updates its weights from validation accuracy (``update_weights``)."""
    return callable(getattr(loss, "update_weights", None))


def wants_epoch(loss: nn.Module) -> bool:
    """True if ``loss`` follows an epoch schedule (``set_epoch``)."""
    return callable(getattr(loss, "set_epoch", None))
