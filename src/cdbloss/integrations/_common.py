"""What the Lightning and transformers callbacks share: the losses they drive and the trackers.

A callback drives either loss that keeps a :class:`~cdbloss.CDBWeighting`:

- :class:`~cdbloss.CDBLoss` (single-label): a :class:`~cdbloss.ClassDifficulty`
  counts correct / total per class; the score is per-class accuracy.
- :class:`~cdbloss.MultiLabelCDBLoss` (multi-label, targets ``(N, C)``): a
  :class:`~cdbloss.MultiLabelDifficulty` counts TP / FP / FN / TN per label at
  its threshold; the score is the loss's ``measure`` (balanced accuracy, F1 or recall).

Imports no framework.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from cdbloss.difficulty import ClassDifficulty
from cdbloss.losses.cdb import CDBLoss
from cdbloss.losses.multilabel import MultiLabelCDBLoss
from cdbloss.multilabel import MultiLabelDifficulty

__all__ = [
    "ACCEPTED",
    "AnyCDBLoss",
    "Tracker",
    "fits",
    "is_cdb_loss",
    "load_tracker_state",
    "new_tracker",
    "predictions",
    "score_name",
    "scores",
    "tracker_state",
    "update_weights",
    "weighting_input",
]

AnyCDBLoss = CDBLoss | MultiLabelCDBLoss
Tracker = ClassDifficulty | MultiLabelDifficulty

#: what the error messages call the losses a callback accepts
ACCEPTED = "a cdbloss.CDBLoss or cdbloss.MultiLabelCDBLoss"


def is_cdb_loss(obj: object) -> bool:
    """True for a loss a callback can drive (:data:`AnyCDBLoss`)."""
    return isinstance(obj, (CDBLoss, MultiLabelCDBLoss))


def new_tracker(loss: AnyCDBLoss) -> Tracker:
    """The tracker that feeds ``loss``: per-class accuracy, or per-label confusion counts."""
    if isinstance(loss, MultiLabelCDBLoss):
        return MultiLabelDifficulty(loss.num_classes, ignore_index=loss.ignore_index)
    return ClassDifficulty(loss.num_classes, ignore_index=loss.ignore_index)


def fits(tracker: Tracker | None, loss: AnyCDBLoss) -> bool:
    """Whether ``tracker`` is the kind and width that ``loss`` needs."""
    if tracker is None or tracker.num_classes != loss.num_classes:
        return False
    return isinstance(tracker, MultiLabelDifficulty) == isinstance(loss, MultiLabelCDBLoss)


def score_name(loss: AnyCDBLoss) -> str:
    """The name under which the per-class score is logged: ``accuracy``, ``f1``, ..."""
    if isinstance(loss, MultiLabelCDBLoss):
        return loss.measure.replace("-", "_")
    return "accuracy"


def scores(loss: AnyCDBLoss, tracker: Tracker, sync: bool) -> Tensor:
    """The per-class score ``(C,)`` float64 the weights come from; NaN where unmeasured.

    With ``sync`` the counts are summed over ranks (a collective: every rank calls it).
    """
    if isinstance(tracker, MultiLabelDifficulty):
        measure = loss.measure if isinstance(loss, MultiLabelCDBLoss) else "balanced-accuracy"
        return tracker.compute(measure, sync=sync)
    return tracker.compute(sync=sync)


def update_weights(loss: AnyCDBLoss, tracker: Tracker, sync: bool) -> Tensor:
    """``loss.update_weights(tracker)``; returns the applied weights ``(C,)``.

    Raises:
        TypeError: the tracker is not the kind the loss reads (see :func:`new_tracker`).
    """
    if isinstance(loss, MultiLabelCDBLoss) and isinstance(tracker, MultiLabelDifficulty):
        return loss.update_weights(tracker, sync=sync)
    if isinstance(loss, CDBLoss) and isinstance(tracker, ClassDifficulty):
        return loss.update_weights(tracker, sync=sync)
    raise TypeError(f"a {type(tracker).__name__} cannot feed a {type(loss).__name__}")


def weighting_input(loss: AnyCDBLoss, tracker: Tracker, sync: bool) -> Tensor | ClassDifficulty:
    """What :meth:`CDBWeighting.preview` takes for this tracker: a single-label tracker
    itself (its counts feed the prior), the multi-label tracker's per-label scores."""
    if isinstance(tracker, MultiLabelDifficulty):
        return scores(loss, tracker, sync)
    return tracker


def predictions(tracker: Tracker, logits: Tensor) -> Tensor:
    """Logits ``(N, C)`` -> what ``tracker`` counts, in less memory: labels ``(N,)`` for a
    :class:`ClassDifficulty`, 0/1 ``int8`` ``(N, C)`` at a :class:`MultiLabelDifficulty`'s
    threshold."""
    if isinstance(tracker, MultiLabelDifficulty):
        cut = math.log(tracker.threshold / (1.0 - tracker.threshold))
        return (logits >= cut).to(torch.int8)
    return logits.argmax(dim=-1)


def tracker_state(tracker: Tracker) -> dict[str, Any]:
    """The tracker's counts as CPU tensors, with ``num_classes`` (a callback's checkpoint state).

    Single-label: ``correct`` and ``total``; multi-label: ``tp``, ``fp``, ``fn``, ``tn``.
    """
    state: dict[str, Any] = {"num_classes": tracker.num_classes}
    for key, value in tracker.state_dict().items():
        state[key] = value.detach().cpu().clone()
    return state


def load_tracker_state(tracker: Tracker, state: dict[str, Any], who: str) -> None:
    """Restore :func:`tracker_state` into ``tracker``.

    Raises:
        ValueError: the state is for another number of classes, or for the other
            kind of tracker (naming the counts it holds and those expected).
    """
    if state.get("num_classes") != tracker.num_classes:
        raise ValueError(
            f"{who} checkpoint holds counts for {state.get('num_classes')} classes, "
            f"the loss has {tracker.num_classes}"
        )
    keys = list(tracker.state_dict())
    missing = [k for k in keys if k not in state]
    if missing:
        held = sorted(k for k in state if k != "num_classes")
        raise ValueError(
            f"{who} checkpoint holds the counts {held}, this loss's "
            f"{type(tracker).__name__} needs {keys} (a single-label checkpoint loaded into "
            "a multi-label run, or the other way round)"
        )
    tracker.load_state_dict({k: state[k] for k in keys})
