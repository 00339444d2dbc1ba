"""Hugging Face ``transformers``: update a CDB loss from ``Trainer`` evaluations.

``Trainer`` hands no predictions to callbacks, but it does hand every
evaluation's predictions and labels, gathered from all processes and with the
padding duplicates of distributed sampling removed, to ``compute_metrics``.
:class:`CDBTrainerCallback` therefore provides three functions for the
``Trainer`` and is itself the callback:

- ``compute_loss_func=cb.compute_loss``: the :class:`~cdbloss.CDBLoss` (or
  :class:`~cdbloss.MultiLabelCDBLoss`, labels ``(N, C)``) on the model's
  ``logits`` (the model returns a dict or ``ModelOutput``); without it
  training stops before the first optimizer step with a ``RuntimeError``
  (the ``Trainer`` would train with the model's own loss);
- ``compute_metrics=cb.compute_metrics``: counts per-class correct / total
  predictions into a :class:`~cdbloss.ClassDifficulty` (multi-label: per-label
  TP / FP / FN / TN into a :class:`~cdbloss.MultiLabelDifficulty`) and returns
  the per-class score, the resulting weights and tau as metrics;
- ``preprocess_logits_for_metrics=cb.preprocess_logits_for_metrics``
  (optional): keeps only the arg-max of each row, so evaluation holds ``N``
  labels in memory instead of ``N x C`` logits (multi-label: 0/1 ``int8``
  predictions at the tracker's threshold);
- ``callbacks=[cb]``: ``on_evaluate`` applies the accuracy of the evaluation
  that just ran, ``w_c = (1 - A_c) ** tau``, to the loss.

Every process sees the same gathered predictions, so every process computes
the same weights without a collective. Weights change only during
``trainer.train()``, from evaluations after the first optimizer step (so
``eval_on_start`` does not set them: the first epoch is plain cross-entropy,
as in the paper) and from the evaluation dataset chosen by
``eval_dataset_name`` when ``eval_dataset`` is a dict.

Example::

    model.cdb_loss = CDBLoss(num_classes=C)  # a submodule: checkpointed with the model
    cb = CDBTrainerCallback(model.cdb_loss)
    trainer = Trainer(
        model=model,
        args=TrainingArguments(..., eval_strategy="epoch", label_names=["labels"]),
        train_dataset=train_ds,
        eval_dataset=val_ds,
        compute_loss_func=cb.compute_loss,
        compute_metrics=cb.compute_metrics,
        preprocess_logits_for_metrics=cb.preprocess_logits_for_metrics,
        callbacks=[cb],
    )
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from cdbloss.integrations._common import (
    ACCEPTED,
    AnyCDBLoss,
    Tracker,
    is_cdb_loss,
    new_tracker,
    predictions,
    score_name,
    scores,
    update_weights,
    weighting_input,
)

try:
    from transformers import (
        EvalPrediction,
        TrainerCallback,
        TrainerControl,
        TrainerState,
        TrainingArguments,
    )
except ImportError as err:  # pragma: no cover - exercised only without transformers
    raise ImportError(
        "cdbloss.integrations.transformers needs the `transformers` package (and "
        'accelerate for its Trainer): pip install "cdb-loss[transformers]"'
    ) from err

__all__ = ["CDBTrainerCallback"]

MetricsFn = Callable[..., Mapping[str, Any]]


def _first(value: Any) -> Any:
    """The first element of a tuple/list of model outputs (the logits), else the value."""
    if isinstance(value, (tuple, list)):
        if not value:
            raise ValueError("CDBTrainerCallback: got an empty tuple of predictions")
        return value[0]
    return value


class CDBTrainerCallback(TrainerCallback):
    """Sets the weights of a :class:`~cdbloss.CDBLoss` or
    :class:`~cdbloss.MultiLabelCDBLoss` from ``Trainer`` evaluations.

    Args:
        loss: the CDB loss whose weights to update. Make it an attribute of the
            model (``model.cdb_loss = loss``) to have its weights saved in the
            model's checkpoints and moved with it; otherwise :meth:`compute_loss`
            moves it to the logits' device on first use.
        num_classes: ``C``; defaults to ``loss.num_classes``, and must match it.
        compute_metrics: your own ``compute_metrics``, called with the same
            ``EvalPrediction`` (and ``compute_result`` under
            ``batch_eval_metrics``); its metrics are returned with ours. With
            :meth:`preprocess_logits_for_metrics` its predictions are labels.
        eval_dataset_name: when the ``Trainer``'s ``eval_dataset`` is a dict,
            the key of the dataset whose accuracy sets the weights.
        logits_key: key of the logits in the model's output dict / ``ModelOutput``.
        log_metrics: return ``cdb_accuracy_{c}`` (multi-label: ``cdb_<measure>_{c}``,
            e.g. ``cdb_f1_0``), ``cdb_weight_{c}`` (the weights
            this evaluation gives) and ``cdb_tau`` from :meth:`compute_metrics`;
            ``Trainer`` logs them with its prefix (``eval_cdb_weight_0``, ...).

    Attributes:
        tracker: the :class:`~cdbloss.ClassDifficulty` or
            :class:`~cdbloss.MultiLabelDifficulty` (CPU) that counts an evaluation.
        accuracy: per-class accuracy (multi-label: the loss's ``measure``) of the
            last applied evaluation, or ``None``.
    """

    def __init__(
        self,
        loss: AnyCDBLoss,
        num_classes: int | None = None,
        *,
        compute_metrics: MetricsFn | None = None,
        eval_dataset_name: str | None = None,
        logits_key: str = "logits",
        log_metrics: bool = True,
    ) -> None:
        if not is_cdb_loss(loss):
            raise ValueError(
                f"CDBTrainerCallback needs {ACCEPTED}, got "
                f"{type(loss).__module__}.{type(loss).__qualname__}"
            )
        if num_classes is not None and num_classes != loss.num_classes:
            raise ValueError(
                f"CDBTrainerCallback(num_classes={num_classes!r}) but the loss has "
                f"num_classes={loss.num_classes}"
            )
        self.loss = loss
        self.num_classes = loss.num_classes
        self.user_compute_metrics = compute_metrics
        self.eval_dataset_name = eval_dataset_name
        self.logits_key = logits_key
        self.log_metrics = log_metrics
        self.tracker: Tracker = new_tracker(loss)
        self.accuracy: Tensor | None = None
        self._pending: Tracker | None = None
        self._in_train = False
        self._loss_calls = 0  # compute_loss calls since train began
        self._loss_checked = False

    # -- functions handed to the Trainer ---------------------------------------------------

    def _logits(self, outputs: Any) -> Tensor:
        if not isinstance(outputs, Mapping):
            raise ValueError(
                "CDBTrainerCallback.compute_loss needs the model to return a dict (or a "
                f"transformers ModelOutput) with the logits under {self.logits_key!r}; it "
                f"returned {type(outputs).__name__} (Trainer's evaluation slices a bare "
                "tensor or tuple output, so return {'logits': logits})"
            )
        logits = outputs.get(self.logits_key)
        if not isinstance(logits, Tensor):
            raise ValueError(
                f"CDBTrainerCallback: the model output has no tensor under {self.logits_key!r} "
                f"(keys: {sorted(map(str, outputs))}); set logits_key"
            )
        return logits

    def compute_loss(
        self,
        outputs: Any,
        labels: Tensor | None,
        num_items_in_batch: Tensor | int | None = None,
    ) -> Tensor:
        """``compute_loss_func`` for ``Trainer``: the CDB loss on ``outputs[logits_key]``.

        ``Trainer`` treats a ``compute_loss_func`` loss as already normalised
        over the whole accumulated batch of ``num_items_in_batch`` labels (all
        gradient-accumulation steps, all processes). The loss of this
        micro-batch is therefore scaled by its share of those labels,
        ``n / num_items_in_batch``: with one process and no accumulation that
        factor is 1, and with ``k`` equal accumulation steps it is the usual
        ``1 / k``. Only the reductions ``"mean"`` and ``"sample_mean"`` fit this
        (``"sample_mean"`` then is exactly the mean over the accumulated batch).
        """
        if self.loss.reduction not in ("mean", "sample_mean"):
            raise ValueError(
                "CDBTrainerCallback.compute_loss needs a CDB loss with reduction 'mean' or "
                f"'sample_mean' (Trainer wants a normalised scalar), got {self.loss.reduction!r}"
            )
        if labels is None:
            raise ValueError(
                "CDBTrainerCallback.compute_loss got no labels: name them with "
                "TrainingArguments(label_names=[...]) (a plain nn.Module's forward does not "
                "declare them) and keep them in the dataset's items"
            )
        logits = self._logits(outputs)
        self._loss_calls += 1
        if self.loss.weight.device != logits.device:
            self.loss.to(logits.device)
        value: Tensor = self.loss(logits, labels)
        if num_items_in_batch is not None:
            n = (labels != self.loss.ignore_index).sum()
            total = torch.as_tensor(num_items_in_batch, device=value.device)
            value = value * n.to(value.dtype) / total.to(value.dtype).clamp_min(1)
        return value

    def preprocess_logits_for_metrics(self, logits: Any, labels: Any) -> Tensor:
        """``preprocess_logits_for_metrics`` for ``Trainer``: ``(N, C)`` logits -> ``(N,)``
        labels (multi-label: ``(N, C)`` 0/1 ``int8`` at the tracker's threshold)."""
        first = _first(logits)
        if not isinstance(first, Tensor) or first.dim() != 2:
            raise ValueError(
                "CDBTrainerCallback.preprocess_logits_for_metrics expects logits (N, C), got "
                f"{type(first).__name__} of shape {tuple(getattr(first, 'shape', ()))}"
            )
        return predictions(self.tracker, first)

    def compute_metrics(
        self, eval_pred: EvalPrediction, compute_result: bool | None = None
    ) -> dict[str, Any]:
        """``compute_metrics`` for ``Trainer``: count per-class correct / total predictions
        (multi-label: per-label TP / FP / FN / TN).

        Accepts logits ``(N, C)`` or predicted labels ``(N,)`` (after
        :meth:`preprocess_logits_for_metrics`); multi-label: logits or 0/1
        predictions ``(N, C)``, labels ``(N, C)``. Under
        ``TrainingArguments(batch_eval_metrics=True)`` it is called per batch
        with ``compute_result``; the accuracy is taken when that is true (or
        not given, the default whole-set call) and applied in :meth:`on_evaluate`.
        """
        preds = torch.as_tensor(_first(eval_pred.predictions))
        labels_raw = eval_pred.label_ids
        if isinstance(labels_raw, (tuple, list)):
            raise ValueError(
                "CDBTrainerCallback.compute_metrics got several label tensors; the Trainer "
                "should have one label name (TrainingArguments(label_names=['labels']))"
            )
        if labels_raw is None:
            raise ValueError("CDBTrainerCallback.compute_metrics got no labels")
        labels = torch.as_tensor(labels_raw)
        self.tracker.update(preds, labels.long())

        metrics: dict[str, Any] = {}
        if self.user_compute_metrics is not None:
            if compute_result is None:
                metrics.update(self.user_compute_metrics(eval_pred))
            else:
                metrics.update(self.user_compute_metrics(eval_pred, compute_result=compute_result))
        if compute_result is False:
            return metrics

        acc = scores(self.loss, self.tracker, sync=False)  # predictions are already gathered
        pending = copy.deepcopy(self.tracker)  # the counts: the weighting's prior needs them
        self.tracker.reset()
        self._pending = pending
        if self.log_metrics and not bool(acc.isnan().all()):
            # exactly what on_evaluate will apply: the weighting previews its own update
            seen = weighting_input(self.loss, pending, sync=False)
            weights, tau = self.loss.weighting.preview(seen, sync=False)
            name = score_name(self.loss)
            for c in range(self.num_classes):
                if not math.isnan(float(acc[c])):
                    metrics[f"cdb_{name}_{c}"] = float(acc[c])
                metrics[f"cdb_weight_{c}"] = float(weights[c])
            metrics["cdb_tau"] = float(tau)
        return metrics

    # -- callback events ---------------------------------------------------------------

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        self._in_train = True
        self._pending = None
        self._loss_calls = 0
        self._loss_checked = False
        self.tracker.reset()

    def _check_loss_wired(self) -> None:
        """Refuse to train when the ``Trainer`` does not train with this callback's loss.

        Without ``compute_loss_func=cb.compute_loss`` the ``Trainer`` trains
        with the model's own loss while this callback would still set and log
        CDB weights that nothing uses. Checked before the first optimizer step.
        """
        if self._loss_checked or not self._in_train:
            return
        self._loss_checked = True
        if self._loss_calls == 0:
            raise RuntimeError(
                "CDBTrainerCallback: the Trainer computed its first training loss without "
                "cb.compute_loss, so it trains with the model's own loss and the CDB "
                "weights would change nothing; pass compute_loss_func=cb.compute_loss to "
                "Trainer(...)"
            )

    def on_pre_optimizer_step(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        self._check_loss_wired()

    def on_step_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        self._check_loss_wired()  # for a transformers without on_pre_optimizer_step

    def on_train_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        self._in_train = False

    def on_predict(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        # trainer.predict() runs compute_metrics too: its counts never set weights.
        self._pending = None
        self.tracker.reset()

    def _prefix(self, metrics: Mapping[str, Any] | None) -> str | None:
        for key in metrics or {}:
            if key.endswith("_runtime"):
                return key[: -len("_runtime")]
        return None

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        """Apply the accuracy of the evaluation that just ran to the loss's weights."""
        pending, self._pending = self._pending, None
        self.tracker.reset()
        if not self._in_train:
            return
        if pending is None:
            raise RuntimeError(
                "CDBTrainerCallback: the evaluation passed no predictions to "
                "CDBTrainerCallback.compute_metrics; pass compute_metrics=cb.compute_metrics "
                "to the Trainer, keep prediction_loss_only=False, and make sure the eval "
                "dataset has labels named in TrainingArguments(label_names=[...])"
            )
        prefix = self._prefix(metrics)
        expected = "eval" if self.eval_dataset_name is None else f"eval_{self.eval_dataset_name}"
        if prefix is not None and prefix != expected:
            if self.eval_dataset_name is None and prefix.startswith("eval_"):
                raise ValueError(
                    f"CDBTrainerCallback: the Trainer evaluates several datasets (metric prefix "
                    f"{prefix!r}); pass eval_dataset_name=<key of eval_dataset> to choose the "
                    "one whose accuracy sets the CDB weights"
                )
            return  # another dataset, or evaluate(metric_key_prefix=...) for a test set
        if state.global_step == 0:
            return  # eval_on_start: the first epoch stays plain cross-entropy
        acc = scores(self.loss, pending, sync=False)
        if bool(acc.isnan().all()):
            warnings.warn(
                "CDBTrainerCallback: the evaluation counted no labelled sample; the CDB "
                "weights are left unchanged",
                stacklevel=2,
            )
            return
        update_weights(self.loss, pending, sync=False)
        self.accuracy = acc

    def on_epoch_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        """Tell the weighting which epoch starts (ends a ``defer_until`` deferral)."""
        self.loss.set_epoch(int(state.epoch or 0))
