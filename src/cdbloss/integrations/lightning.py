"""PyTorch Lightning: update a LightningModule's CDB loss from its validation loop.

Contract
--------
- The :class:`~lightning.pytorch.LightningModule` holds a
  :class:`~cdbloss.CDBLoss` or a :class:`~cdbloss.MultiLabelCDBLoss` at the
  attribute named by ``loss_attr`` (default
  ``"loss_fn"``; a dotted path such as ``"criterion.cdb"`` is followed). Make it
  a submodule (assign it in ``__init__``) so its weights move with the module
  and are saved in its ``state_dict`` and in checkpoints.
- ``validation_step`` returns a dict holding the batch's logits ``(N, C)`` (or
  predicted labels ``(N,)``) under ``logits_key`` (default ``"logits"``) and
  its targets ``(N,)`` under ``target_key`` (default ``"target"``). For the
  multi-label loss: logits (or 0/1 predictions) ``(N, C)`` and targets ``(N, C)``.

At each validation pass of ``trainer.fit`` the callback resets a tracker (a
:class:`~cdbloss.ClassDifficulty` for the single-label loss, a
:class:`~cdbloss.MultiLabelDifficulty` for the multi-label one), counts every
batch of the validation dataloader ``dataloader_idx``, and at the end of the
pass calls ``update_weights`` on the loss: ``w_c = (1 - A_c) ** tau``, with
``A_c`` the per-class accuracy or the per-label ``measure`` of the multi-label loss. The sanity-check
validation that Lightning runs before training is skipped, so the first
training epoch is plain cross-entropy as in the paper. Under DDP the tracker
sums its counts over all ranks, so every rank gets the same weights.

Example::

    import lightning.pytorch as pl
    from cdbloss.integrations.lightning import CDBCallback

    trainer = pl.Trainer(max_epochs=10, callbacks=[CDBCallback(loss_attr="loss_fn")])
    trainer.fit(module, train_loader, val_loader)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from cdbloss.integrations._common import (
    ACCEPTED,
    AnyCDBLoss,
    Tracker,
    fits,
    is_cdb_loss,
    load_tracker_state,
    new_tracker,
    score_name,
    scores,
    tracker_state,
    update_weights,
)

try:
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.trainer.states import TrainerFn
    from lightning.pytorch.utilities import rank_zero_warn
    from lightning.pytorch.utilities.types import STEP_OUTPUT
except ImportError as err:  # pragma: no cover - exercised only without lightning
    raise ImportError(
        "cdbloss.integrations.lightning needs the `lightning` package: "
        'pip install "cdb-loss[lightning]" (or pip install lightning)'
    ) from err

__all__ = ["CDBCallback"]


class CDBCallback(Callback):
    """Feeds a tracker from the validation loop and sets the CDB weights of the
    module's loss after each validation pass.

    Args:
        loss_attr: attribute of the LightningModule holding the
            :class:`~cdbloss.CDBLoss` or :class:`~cdbloss.MultiLabelCDBLoss`
            (dots follow nested attributes).
        num_classes: ``C``; defaults to the loss's ``num_classes``. When given
            it must match the loss (a check against a misconfigured loss).
        logits_key: key of the logits ``(N, C)`` or predicted labels ``(N,)`` in
            the dict returned by ``validation_step`` (multi-label: logits or 0/1
            predictions ``(N, C)``).
        target_key: key of the targets ``(N,)`` in that dict (multi-label: ``(N, C)``).
        dataloader_idx: the validation dataloader whose accuracy sets the
            weights (others are ignored); ``None`` counts every dataloader.
        log_weights: log ``{log_prefix}/weight_{c}``, ``{log_prefix}/accuracy_{c}``
            (multi-label: ``{log_prefix}/<measure>_{c}``, e.g. ``cdb/f1_0``) and
            ``{log_prefix}/tau`` with ``pl_module.log`` after each update.
        log_prefix: prefix of the logged names.

    Attributes:
        tracker: the :class:`~cdbloss.ClassDifficulty` or
            :class:`~cdbloss.MultiLabelDifficulty` (created at ``setup``, moved
            to the module's device at each validation start). Its counts are
            the callback's checkpoint state.
        loss: the loss found at ``loss_attr`` (set at ``setup``).

    Raises:
        ValueError: at ``setup``, when ``loss_attr`` names no attribute or
            something that is not a CDB loss, or ``num_classes`` disagrees
            with the loss; during validation, when ``validation_step`` does not
            return a dict with ``logits_key`` and ``target_key`` tensors.
    """

    def __init__(
        self,
        loss_attr: str = "loss_fn",
        num_classes: int | None = None,
        *,
        logits_key: str = "logits",
        target_key: str = "target",
        dataloader_idx: int | None = 0,
        log_weights: bool = True,
        log_prefix: str = "cdb",
    ) -> None:
        super().__init__()
        if not isinstance(loss_attr, str) or not loss_attr:
            raise ValueError(f"loss_attr must be a non-empty attribute name, got {loss_attr!r}")
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1
        ):
            raise ValueError(f"num_classes must be an int >= 1 or None, got {num_classes!r}")
        self.loss_attr = loss_attr
        self.num_classes = num_classes
        self.logits_key = logits_key
        self.target_key = target_key
        self.dataloader_idx = dataloader_idx
        self.log_weights = log_weights
        self.log_prefix = log_prefix
        self.tracker: Tracker | None = None
        self.loss: AnyCDBLoss | None = None
        self._pending_state: dict[str, Any] | None = None

    @property
    def state_key(self) -> str:
        return self._generate_state_key(loss_attr=self.loss_attr)

    # -- resolving the loss ------------------------------------------------------------

    def _find_loss(self, pl_module: pl.LightningModule) -> AnyCDBLoss:
        obj: Any = pl_module
        walked = type(pl_module).__name__
        for part in self.loss_attr.split("."):
            if not hasattr(obj, part):
                raise ValueError(
                    f"CDBCallback(loss_attr={self.loss_attr!r}): {walked} has no attribute "
                    f"{part!r}; set loss_attr to the attribute of your LightningModule that "
                    f"holds {ACCEPTED}"
                )
            obj = getattr(obj, part)
            walked = f"{walked}.{part}"
        if not is_cdb_loss(obj):
            raise ValueError(
                f"CDBCallback(loss_attr={self.loss_attr!r}): {walked} is a "
                f"{type(obj).__module__}.{type(obj).__qualname__}, not {ACCEPTED}"
            )
        found: AnyCDBLoss = obj
        return found

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Find the loss and create the tracker (restoring checkpointed counts if any)."""
        loss = self._find_loss(pl_module)
        if self.num_classes is not None and self.num_classes != loss.num_classes:
            raise ValueError(
                f"CDBCallback(num_classes={self.num_classes}) but the loss at "
                f"{self.loss_attr!r} has num_classes={loss.num_classes}"
            )
        if not any(m is loss for m in pl_module.modules()):
            rank_zero_warn(
                f"CDBCallback: the loss at {self.loss_attr!r} is not a submodule of "
                f"{type(pl_module).__name__}; its weights are then neither moved with the "
                "module nor saved in its checkpoints. Assign it as an attribute in __init__."
            )
        self.loss = loss
        if not fits(self.tracker, loss):
            self.tracker = new_tracker(loss)
        if self._pending_state is not None:
            self._load_tracker(self._pending_state)
            self._pending_state = None

    # -- validation loop -----------------------------------------------------------------

    def _active(self, trainer: pl.Trainer) -> bool:
        """Count and update only in the validation passes of ``fit``, not the sanity check."""
        return bool(trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking)

    def _ready(self) -> tuple[AnyCDBLoss, Tracker]:
        if self.loss is None or self.tracker is None:
            raise RuntimeError(
                "CDBCallback used before setup(); pass it to pl.Trainer(callbacks=...)"
            )
        return self.loss, self.tracker

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Tell the weighting which epoch starts (ends a ``defer_until`` deferral)."""
        loss, _ = self._ready()
        loss.set_epoch(int(trainer.current_epoch))

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Zero the counts and put the tracker on the module's device."""
        if not self._active(trainer):
            return
        _, tracker = self._ready()
        tracker.to(pl_module.device)
        tracker.reset()

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: STEP_OUTPUT,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Count the batch's predictions from ``validation_step``'s returned dict."""
        if not self._active(trainer):
            return
        if self.dataloader_idx is not None and dataloader_idx != self.dataloader_idx:
            return
        _, tracker = self._ready()
        logits, target = self._extract(outputs)
        tracker.update(logits.detach(), target.detach())

    def _extract(self, outputs: STEP_OUTPUT) -> tuple[Tensor, Tensor]:
        if not isinstance(outputs, Mapping):
            raise ValueError(
                "CDBCallback needs validation_step to return a dict with the batch's logits "
                f"under {self.logits_key!r} and its targets under {self.target_key!r}, e.g. "
                f"`return {{{self.logits_key!r}: logits, {self.target_key!r}: y}}`; "
                f"it returned {type(outputs).__name__}"
            )
        found = []
        for key in (self.logits_key, self.target_key):
            value = outputs.get(key)
            if not isinstance(value, Tensor):
                raise ValueError(
                    f"CDBCallback: the dict returned by validation_step has no tensor under "
                    f"{key!r} (keys: {sorted(map(str, outputs))}); return the logits under "
                    f"{self.logits_key!r} and the targets under {self.target_key!r}, or set "
                    "logits_key / target_key"
                )
            found.append(value)
        return found[0], found[1]

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Set the loss's weights from this pass's per-class score (summed over ranks)."""
        if not self._active(trainer):
            return
        loss, tracker = self._ready()
        accuracy = scores(loss, tracker, sync=True)  # a collective: every rank calls it
        if bool(accuracy.isnan().all()):
            rank_zero_warn(
                "CDBCallback: the validation pass counted no sample (no batch of validation "
                f"dataloader {self.dataloader_idx}, or every target ignored); the CDB weights "
                "are left unchanged"
            )
            return
        weights = update_weights(loss, tracker, sync=True)  # counts: the prior needs them
        if self.log_weights:
            p, name = self.log_prefix, score_name(loss)
            for c, (w, a) in enumerate(zip(weights.tolist(), accuracy.tolist(), strict=True)):
                pl_module.log(f"{p}/weight_{c}", w, on_step=False, on_epoch=True)
                if not math.isnan(a):
                    pl_module.log(f"{p}/{name}_{c}", a, on_step=False, on_epoch=True)
            pl_module.log(f"{p}/tau", float(loss.tau_value), on_step=False, on_epoch=True)

    # -- checkpointing -------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The tracker's counts of the last validation pass (CPU tensors) and ``num_classes``:
        ``correct`` and ``total``, or (multi-label) ``tp``, ``fp``, ``fn`` and ``tn``."""
        if self.tracker is None:
            return dict(self._pending_state) if self._pending_state is not None else {}
        return tracker_state(self.tracker)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the counts (kept until ``setup`` if the tracker does not exist yet)."""
        if not state_dict:
            return
        if self.tracker is None:
            self._pending_state = dict(state_dict)
        else:
            self._load_tracker(state_dict)

    def _load_tracker(self, state: dict[str, Any]) -> None:
        _, tracker = self._ready()
        load_tracker_state(tracker, state, "CDBCallback")
