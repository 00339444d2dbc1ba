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
from typing import Any

from torch import Tensor, nn

from cdbloss.cdb import PAPER_RULE
from cdbloss.losses.cdb import CDBLoss
from cdbloss.losses.class_balanced import ClassBalancedLoss
from cdbloss.losses.cross_entropy import CrossEntropyLoss, InverseFrequencyLoss
from cdbloss.losses.equalization import EqualizationLoss
from cdbloss.losses.focal import FocalLoss
from cdbloss.losses.ldam import LDAMLoss
from cdbloss.losses.logit_adjusted import BalancedSoftmaxLoss, LogitAdjustedLoss

__all__ = [
    "LOSSES",
    "LossSpec",
    "build_loss",
    "register_loss",
    "resolved_options",
    "wants_difficulty",
    "wants_epoch",
]

Counts = Sequence[int] | Tensor | None


@dataclass(frozen=True)
class LossSpec:
    """A registered loss: how to build it, and what it needs."""

    name: str
    cls: type[nn.Module]
    needs_counts: bool
    defaults: dict[str, Any]
    description: str


LOSSES: dict[str, LossSpec] = {}


def register_loss(
    name: str,
    cls: type[nn.Module],
    *,
    needs_counts: bool = False,
    description: str = "",
    **defaults: Any,
) -> None:
    """Register ``cls`` under ``name`` with default keyword options."""
    if name in LOSSES:
        raise ValueError(f"loss {name!r} is already registered")
    LOSSES[name] = LossSpec(name, cls, needs_counts, dict(defaults), description)


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
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; known: {sorted(LOSSES)}")
    spec = LOSSES[name]
    kwargs = {**spec.defaults, **options}
    accepted = _accepted(spec.cls)
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        valid = sorted(accepted - {"num_classes", "class_counts"} - set(spec.defaults))
        raise ValueError(f"loss {name!r} got unknown options {unknown}; it accepts {valid}")
    if spec.needs_counts:
        if class_counts is None:
            raise ValueError(f"loss {name!r} needs class_counts (training samples per class)")
        kwargs["class_counts"] = class_counts
    elif class_counts is not None and "class_counts" in accepted:
        kwargs.setdefault("class_counts", class_counts)  # optional: used by some settings
    return spec.cls(num_classes=num_classes, **kwargs)


def resolved_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` plus the CDB defaults of loss ``name`` that differ from the paper's rule.

    A run's config then names every CDB setting that is not the paper's, so a
    config written before a change of the library's defaults keeps its meaning:
    it no longer matches a run of the new defaults (the engine refuses to mix
    them), and the report labels each run by what it trained with. Other
    losses' options come back unchanged.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; known: {sorted(LOSSES)}")
    spec = LOSSES[name]
    out = dict(options)
    if not issubclass(spec.cls, CDBLoss):
        return out
    for key, paper in PAPER_RULE.items():
        if key in out or key in spec.defaults:
            continue
        default = _default_of(spec.cls, key)
        if default != paper:
            out[key] = default
    return out


def _default_of(cls: type, key: str) -> Any:
    """The default of constructor argument ``key``, from the first class in the MRO naming it."""
    for klass in cls.__mro__:
        param = inspect.signature(klass.__init__).parameters.get(key)  # type: ignore[misc]
        if param is not None and param.default is not inspect.Parameter.empty:
            return param.default
    raise KeyError(key)


def wants_difficulty(loss: nn.Module) -> bool:
    """True if ``loss`` updates its weights from validation accuracy (``update_weights``)."""
    return callable(getattr(loss, "update_weights", None))


def wants_epoch(loss: nn.Module) -> bool:
    """True if ``loss`` follows an epoch schedule (``set_epoch``)."""
    return callable(getattr(loss, "set_epoch", None))


_REGISTRATIONS: list[tuple[str, type[nn.Module], bool, str, dict[str, Any]]] = [
    ("ce", CrossEntropyLoss, False, "unweighted cross-entropy", {}),
    ("ifw", InverseFrequencyLoss, True, "inverse-frequency-weighted CE", {"power": 1.0}),
    ("ifw-sqrt", InverseFrequencyLoss, True, "square-root inverse-frequency CE", {"power": 0.5}),
    ("focal", FocalLoss, False, "softmax focal loss (Lin et al. 2017)", {}),
    ("cb-ce", ClassBalancedLoss, True, "class-balanced CE (Cui et al. 2019)", {"base": "ce"}),
    ("cb-focal", ClassBalancedLoss, True, "class-balanced focal", {"base": "focal"}),
    ("ldam", LDAMLoss, True, "LDAM (Cao et al. 2019)", {}),
    ("ldam-drw", LDAMLoss, True, "LDAM with deferred re-weighting", {"drw_epoch": 160}),
    ("balanced-softmax", BalancedSoftmaxLoss, True, "Balanced Softmax (Ren et al. 2020)", {}),
    ("logit-adjusted", LogitAdjustedLoss, True, "logit-adjusted CE (Menon et al. 2021)", {}),
    ("eql", EqualizationLoss, True, "softmax equalization loss (Tan et al. 2020)", {}),
    ("cdb-ce", CDBLoss, False, "CDB with cross-entropy (Sinha et al. 2020)", {"base": "ce"}),
    (
        "cdb-ce-paper",
        CDBLoss,
        False,
        "CDB-CE as the paper writes it: Eq. 3 dynamic tau, eps 1e-4, weighted mean",
        {**PAPER_RULE, "base": "ce", "reduction": "mean"},
    ),
    (
        "cdb-ce-authors",
        CDBLoss,
        False,
        "CDB-CE as the authors' CIFAR code runs it: sigmoid tau, eps 0.01, mean over N",
        {
            **PAPER_RULE,
            "base": "ce",
            "tau": "dynamic-sigmoid",
            "eps": 0.01,
            "reduction": "sample_mean",
        },
    ),
    (
        "cdb-bs",
        CDBLoss,
        True,
        "CDB weights over the Balanced Softmax loss (not in the paper)",
        {"base": "balanced-softmax"},
    ),
    ("cdb-focal", CDBLoss, False, "CDB with focal loss", {"base": "focal"}),
]
for _name, _cls, _needs, _desc, _defaults in _REGISTRATIONS:
    register_loss(_name, _cls, needs_counts=_needs, description=_desc, **_defaults)

LossFactory = Callable[..., nn.Module]
