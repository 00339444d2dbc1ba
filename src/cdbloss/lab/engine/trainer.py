"""The training engine every experiment shares.

One run = one :class:`~cdbloss.lab.engine.config.ExperimentConfig` and one output
folder. The folder holds::

    config.json      the resolved config (a different config in the same folder is an error)
    run.lock         while a process writes the folder: its pid (one writer per folder)
    checkpoint.pt    after every epoch, written atomically: model, optimizer, loss
                     weights, tracker, RNG states, history, best model
    metrics.jsonl    one line per epoch (rewritten atomically from the checkpoint's history)
    result.json      when the run finishes: test metrics, validation metrics, history
    error.json       when the run stops on an error (e.g. a NaN loss)

Data flows one way: dataset -> model -> logits -> loss (weights from the
tracker) -> optimizer; after each validation pass, tracker -> weights -> loss.
A run killed at any moment resumes from its last checkpoint to the result it
would have had: the order of the training data comes from a generator seeded
by (seed, epoch), and the global RNG states (augmentation, dropout, EQL's
draws) are restored from the checkpoint.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import json
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from cdbloss.cdb import FIRST_DECAY
from cdbloss.decoupled import class_balanced_indices
from cdbloss.difficulty import ClassDifficulty
from cdbloss.lab.data.base import DataSplits, load_protocol
from cdbloss.lab.data.protocols import import_protocols
from cdbloss.lab.engine.checkpoint import (
    CheckpointError,
    get_rng_state,
    load_checkpoint,
    read_json,
    save_checkpoint,
    set_rng_state,
)
from cdbloss.lab.engine.config import (
    VOLATILE_KEYS,
    ExperimentConfig,
    config_from_dict,
    config_to_dict,
    flatten_keys,
)
from cdbloss.lab.engine.distributed import (
    DistInfo,
    cleanup_distributed,
    setup_distributed,
    shard_indices,
)
from cdbloss.lab.engine.lock import LOCK_NAME, SWEEP_LOCK_NAME, folder_lock
from cdbloss.lab.engine.stage2 import (
    check_stage1_run,
    is_posthoc,
    is_stage2,
    posthoc_choice,
    posthoc_model,
    prepare_model,
    stage1_model_state,
    training_config,
)
from cdbloss.lab.io import atomic_write_json, atomic_write_text, jsonable, progress
from cdbloss.lab.metrics import ConfusionMatrix, summarize
from cdbloss.lab.models import build_model, load_pretrained, read_state_dict
from cdbloss.losses import build_loss, wants_difficulty, wants_epoch
from cdbloss.losses.registry import resolved_options
from cdbloss.sampler import CDBSampler, dataset_targets

__all__ = ["NonFiniteLossError", "Trainer", "check_run_folder", "lr_factor", "train"]

#: result.json keeps at most this many epochs of history (evenly spaced, always the
#: last); metrics.jsonl keeps every epoch. Result files stay small enough for git.
_MAX_HISTORY_IN_RESULT = 100
#: Per-epoch weight and accuracy vectors are kept in the history up to this many classes.
_MAX_CLASSES_IN_HISTORY = 100
#: Off the CPU, the losses are checked for NaN/inf every this many batches (and at the
#: end of each epoch) rather than after every batch: each check waits for the device.
_FINITE_CHECK_EVERY = 50


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


def with_resolved_loss(cfg: ExperimentConfig) -> ExperimentConfig:
    """``cfg`` with the loss options resolved (:func:`cdbloss.losses.resolved_options`).

    CDB defaults that differ from the paper's rule are written into the config,
    so the saved config names every setting a run trained with, and
    ``defer_until: first-decay`` becomes the epoch of the schedule's first
    learning-rate decay (``optim.milestones``, rounded up to a whole epoch).

    Raises:
        ValueError: ``first-decay`` with a schedule that has no milestone.
    """
    options = dict(cfg.loss.options)
    if options.get("defer_until") == FIRST_DECAY:
        o = cfg.optim
        if o.schedule != "multistep" or not o.milestones:
            raise ValueError(
                f"loss.options.defer_until={FIRST_DECAY!r} needs optim.schedule 'multistep' "
                f"with milestones; got schedule {o.schedule!r}, milestones {list(o.milestones)}"
            )
        options["defer_until"] = math.ceil(min(o.milestones))
    resolved = resolved_options(cfg.loss.name, options)
    if resolved == cfg.loss.options:
        return cfg
    return dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, options=resolved))


def experiment_differences(run_dir: Path, cfg: ExperimentConfig) -> list[str]:
    """The config keys in which ``run_dir``'s saved config differs from ``cfg`` (resolved).

    Keys that change how a run executes but not what it computes
    (:data:`~cdbloss.lab.engine.config.VOLATILE_KEYS`) and the sweep grid are left
    out; a folder without a config differs in nothing. A key that the saved config lacks
    (it was written before the key existed) counts at its default value.
    """
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        return []
    theirs = read_json(cfg_path, "the run's saved config")
    try:  # fill the keys added since the run was saved with their defaults
        theirs = config_to_dict(config_from_dict(theirs))
    except (ValueError, TypeError, KeyError):  # unreadable as a config: compare as saved
        pass
    mine = config_to_dict(with_resolved_loss(cfg))
    _legacy_cifar_source(theirs)
    a, b = flatten_keys(_comparable(theirs)), flatten_keys(_comparable(mine))
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def lr_factor(cfg: ExperimentConfig, epoch: int) -> float:
    """The learning-rate multiplier of ``epoch`` (0-based); see :class:`OptimConfig`."""
    o, total = cfg.optim, cfg.train.epochs
    if o.schedule == "multistep":
        factor = o.gamma ** sum(1 for m in o.milestones if epoch >= m)
    elif o.schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * epoch / total))
    else:
        factor = 1.0
    if epoch < o.warmup_epochs:
        factor *= (epoch + 1) / o.warmup_epochs
    return factor


def _legacy_cifar_source(saved: dict[str, Any]) -> None:
    """A CIFAR-10 ``cifar-lt`` run saved before ``data.options.source`` had keywords read
    the JPEG copy (the only one these machines had; its result's ``data_info`` says so),
    so its missing ``source`` counts as ``"jpeg"``, not as today's lossless default."""
    data = saved.get("data")
    if not isinstance(data, dict) or data.get("protocol") != "cifar-lt":
        return
    options = data.setdefault("options", {})
    if isinstance(options, dict) and options.get("dataset", "cifar10") == "cifar10":
        if options.get("num_classes") in (None, 10):
            options.setdefault("source", "jpeg")


def _comparable(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(cfg_dict)
    out.pop("sweep", None)
    for dotted in VOLATILE_KEYS:
        section, key = dotted.split(".")
        out.get(section, {}).pop(key, None)
    return out


def _epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    # Independent of the global RNG, so the data order survives a resume.
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 101 + stream)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002  (the legacy global state user code may use)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- run pieces
# The steps of a run that do not depend on how its model is held: the fused trainer
# (cdbloss.lab.engine.fused) calls the same ones for each of its members.


@dataclass
class RunLog:
    """What a run carries from epoch to epoch, and keeps in its checkpoint.

    Attributes:
        start_epoch: the first epoch (0-based) still to train.
        step: optimiser steps taken so far.
        history: one record per finished epoch (:func:`epoch_record`).
        best: ``{"value", "epoch", "state"}``: the best validation value of
            ``train.select_metric`` so far, its epoch (1-based) and the model's state
            dict then (``None`` before any validation).
        timing: seconds spent training (``train_s``) and validating (``val_s``).
    """

    start_epoch: int = 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(
        default_factory=lambda: {"value": -math.inf, "epoch": -1, "state": None}
    )
    timing: dict[str, float] = field(default_factory=lambda: {"train_s": 0.0, "val_s": 0.0})

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any]) -> RunLog:
        """The log a checkpoint holds (training resumes after its epoch)."""
        timing = dict(state.get("timing", {"train_s": 0.0, "val_s": 0.0}))
        return cls(state["epoch"] + 1, state["step"], state["history"], state["best"], timing)

    def close_epoch(
        self,
        record: dict[str, Any],
        val: dict[str, Any] | None,
        select_metric: str,
        model_state: Callable[[], dict[str, Tensor]],
    ) -> None:
        """Add the epoch's ``record`` and its time; keep a copy of ``model_state()`` when
        the validation summary ``val`` beats the best so far on ``select_metric``."""
        self.timing["train_s"] += record["train_s"]
        self.timing["val_s"] += record["val_s"]
        self.history.append(record)
        metric = math.nan if val is None else float(val.get(select_metric, math.nan))
        if metric > self.best["value"]:
            state = copy.deepcopy(model_state())
            self.best = {"value": metric, "epoch": record["epoch"], "state": state}

    def checkpoint(self, epoch: int, **states: Any) -> dict[str, Any]:
        """The checkpoint of ``epoch`` (0-based): the log, ``states`` (model, optimizer,
        loss, meta, sampler) and the global RNG states."""
        return {
            "epoch": epoch,
            "step": self.step,
            **states,
            "history": self.history,
            "best": self.best,
            "timing": self.timing,
            "rng": get_rng_state(),
        }


@dataclass
class _Run:
    """The objects of one unfused run."""

    splits: DataSplits
    model: nn.Module
    train_model: nn.Module  # ``model``, or it wrapped in DDP / compiled
    loss_fn: nn.Module
    opt: torch.optim.Optimizer
    meta_step: Any
    sampler: CDBSampler | None
    log: RunLog
    ckpt_path: Path
    after_step: Callable[[], None] | None = None  # MaxNorm's projection, after each step


def build_run_loss(cfg: ExperimentConfig, splits: DataSplits) -> nn.Module:
    """The config's loss for the data's classes (on the CPU); per-sample under the meta
    steps, which weight each example themselves (the same module keeps receiving
    ``update_weights`` / ``set_epoch``)."""
    options = dict(cfg.loss.options)
    if cfg.train.method != "standard":
        options["reduction"] = "none"
    return build_loss(
        cfg.loss.name, splits.num_classes, class_counts=splits.class_counts, **options
    )


def sgd_options(cfg: ExperimentConfig) -> dict[str, Any]:
    """``torch.optim.SGD``'s keyword options from ``cfg.optim``."""
    o = cfg.optim
    return {
        "lr": o.lr,
        "momentum": o.momentum,
        "weight_decay": o.weight_decay,
        "nesterov": o.nesterov,
    }


def update_due(cfg: ExperimentConfig, step: int, loss_fn: nn.Module) -> bool:
    """Whether the CDB weights update after optimiser step ``step`` (``weight_update_every``)."""
    k = cfg.train.weight_update_every
    return bool(k) and step % k == 0 and wants_difficulty(loss_fn)


def validation_due(
    cfg: ExperimentConfig, epoch: int, loss_fn: nn.Module, sampler: CDBSampler | None
) -> bool:
    """Whether a validation pass follows ``epoch`` (0-based): after the last epoch, every
    ``val_every``-th, and after each one when something learns from it or picks by it."""
    return (
        epoch + 1 == cfg.train.epochs
        or (epoch + 1) % cfg.train.val_every == 0
        or wants_difficulty(loss_fn)
        or sampler is not None
        or cfg.train.select == "best"
    )


def checkpoint_due(cfg: ExperimentConfig, epoch: int) -> bool:
    """Whether the checkpoint is written after ``epoch`` (0-based)."""
    return epoch + 1 == cfg.train.epochs or (epoch + 1) % cfg.train.checkpoint_every == 0


def learn_from_validation(
    loss_fn: nn.Module,
    sampler: CDBSampler | None,
    tracker: ClassDifficulty,
    weights: Tensor | None,
) -> Tensor | None:
    """Update the CDB weights and the CDB-S sampler from a validation ``tracker``;
    return the loss's class weights after it (``weights`` if the loss does not learn)."""
    if wants_difficulty(loss_fn):
        weights = cast(Any, loss_fn).update_weights(tracker)
    if sampler is not None:
        sampler.update(tracker)
    return weights


def tracker_from_counts(counts: Tensor) -> ClassDifficulty:
    """A :class:`~cdbloss.ClassDifficulty` holding a confusion matrix's per-class counts:
    ``correct = diag(M)``, ``total = M.sum(1)`` (``M`` of shape ``(C, C)``)."""
    tracker = ClassDifficulty(counts.shape[0]).to(counts.device)
    tracker.correct.copy_(counts.diagonal())
    tracker.total.copy_(counts.sum(dim=1))
    return tracker


def epoch_record(
    cfg: ExperimentConfig,
    epoch: int,
    step: int,
    lr: float,
    losses: Tensor,
    seconds: tuple[float, float],
    val: dict[str, Any] | None,
    weights: Tensor | None,
    loss_fn: nn.Module,
    sampler: CDBSampler | None,
    num_classes: int,
) -> dict[str, Any]:
    """One line of ``metrics.jsonl``: the epoch (1-based), step, learning rate, mean
    batch loss of ``losses`` ``(batches,)``, the ``(train, val)`` seconds, and, where
    they exist, validation metrics, class weights, sampler probabilities and tau."""
    record: dict[str, Any] = {
        "epoch": epoch + 1,
        "step": step,
        "lr": lr,
        "train_loss": float(losses.sum()) / max(losses.numel(), 1),
        "train_s": seconds[0],
        "val_s": seconds[1],
    }
    small = num_classes <= _MAX_CLASSES_IN_HISTORY  # per-class vectors only up to this many
    if val is not None:
        record["val_top1_accuracy"] = val["top1_accuracy"]
        record["val_macro_recall"] = val["macro_recall"]
        if small:
            record["val_per_class_accuracy"] = val["per_class_accuracy"]
    if small and weights is not None:
        record["weights"] = [float(v) for v in weights.tolist()]
    if small and sampler is not None:
        record["sampler_probabilities"] = [float(p) for p in sampler.probabilities()]
    tau = getattr(loss_fn, "tau_value", None)
    if tau is not None:
        record["tau"] = float(tau)
    return record


def write_metrics(out_dir: Path, history: list[dict[str, Any]]) -> None:
    """``metrics.jsonl``: one JSON line per epoch of ``history`` (written atomically)."""
    atomic_write_text(out_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))


def progress_line(cfg: ExperimentConfig, record: dict[str, Any]) -> str:
    """The console line of one epoch."""
    val_s = (
        f" val acc {record['val_top1_accuracy']:.4f} macro recall {record['val_macro_recall']:.4f}"
        if "val_top1_accuracy" in record
        else ""
    )
    tau_s = f" tau {record['tau']:.3f}" if "tau" in record else ""
    return (
        f"[{cfg.name}] epoch {record['epoch']}/{cfg.train.epochs} "
        f"loss {record['train_loss']:.4f}{val_s}{tau_s}"
    )


def _log_scalars(writer: Any, record: dict[str, Any]) -> None:
    if writer is None:
        return
    for key in ("train_loss", "val_top1_accuracy", "val_macro_recall", "lr", "tau"):
        if key in record:
            writer.add_scalar(key, record[key], record["epoch"])


def run_result(
    cfg: ExperimentConfig,
    splits: DataSplits,
    world_size: int,
    log: RunLog,
    test_last: dict[str, Any],
    test_best: dict[str, Any] | None,
) -> dict[str, Any]:
    """``result.json``'s content: the run, its last validation record, its test metrics
    (of the best model too when ``test_best`` is given), the thinned history, its time."""
    result: dict[str, Any] = {
        "status": "done",
        "name": cfg.name,
        "config": config_to_dict(cfg),
        "num_classes": splits.num_classes,
        "class_names": splits.class_names,
        "class_counts": splits.class_counts,
        "data_info": _portable(jsonable(splits.info)),
        "epochs": cfg.train.epochs,
        "world_size": world_size,
        "select": cfg.train.select,
        "best_epoch": log.best["epoch"],
        "val": _drop_matrix(log.history[-1] if log.history else {}),
        "test_last": test_last,
    }
    if test_best is not None:
        result["test_best"] = test_best
        result["test"] = test_best
    else:
        result["test"] = test_last
    result["history"] = _thin(log.history, _MAX_HISTORY_IN_RESULT)
    result["timing"] = log.timing
    return result


class Trainer:
    """Runs one experiment into ``out_dir``; :meth:`fit` returns the result dict.

    Args:
        cfg: the validated experiment config.
        out_dir: the run's folder (created; resumed if it holds this run's checkpoint).
        splits: data to use instead of loading ``cfg.data`` (tests, notebooks).
        fail_after_batches: testing hook: raise ``KeyboardInterrupt`` after this many
            training batches of this process (to exercise resumption).
    """

    def __init__(
        self,
        cfg: ExperimentConfig,
        out_dir: str | Path,
        splits: DataSplits | None = None,
        fail_after_batches: int | None = None,
    ) -> None:
        # A stage-2 run saves and compares its whole config (``full_cfg``: stage 1's plus
        # the stage2 section) and trains with stage 2's settings (``cfg``).
        self.full_cfg = with_resolved_loss(cfg)
        self.cfg = (
            with_resolved_loss(training_config(self.full_cfg))
            if is_stage2(self.full_cfg)
            else self.full_cfg
        )
        self._stage1: Path | None = None  # the stage-1 run folder of a stage-2 run
        self.out_dir = Path(out_dir)
        self._splits = splits
        self._fail_after = fail_after_batches
        self._batches_seen = 0
        self._saved_epoch: int | None = None  # the epoch (1-based) the checkpoint holds
        self.dist: DistInfo | None = None

    # ------------------------------------------------------------------ setup

    def _check_out_dir(self) -> dict[str, Any] | None:
        """Refuse a folder holding a different experiment; return a finished result if any."""
        diff = experiment_differences(self.out_dir, self._saved_config())
        if diff:
            raise ValueError(
                f"output folder {str(self.out_dir)!r} holds a different experiment "
                f"(it differs in {diff}); choose another --out or remove the folder"
            )
        result_path = self.out_dir / "result.json"
        if result_path.exists():
            done: dict[str, Any] = read_json(result_path, "the run's result")
            if done.get("status") == "done":
                return done
        return None

    def _saved_config(self) -> ExperimentConfig:
        """The config the folder keeps and compares: a stage-2 run's whole config (stage 1's
        plus ``stage2``), else the one it trains with (a fused group sets it per member)."""
        return self.full_cfg if is_stage2(self.full_cfg) else self.cfg

    def _load_data(self) -> DataSplits:
        if self._splits is not None:
            return self._splits
        options = dict(self.cfg.data.options)
        factory = import_protocols()[self.cfg.data.protocol]
        if "seed" in inspect.signature(factory).parameters and "seed" not in options:
            options["seed"] = self.cfg.seed  # a new random split per seed
        return load_protocol(self.cfg.data.protocol, **options)

    # ------------------------------------------------------------------ batches

    def _batches(
        self, dataset: Dataset[Any], indices: Tensor, batch_size: int, device: torch.device
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Batches of ``dataset[indices]`` in that order, moved to ``device``."""
        nw = self.cfg.train.num_workers
        get_batch: Callable[[Tensor], tuple[Tensor, Tensor]] | None = getattr(
            dataset, "get_batch", None
        )
        channels_last = self.cfg.train.channels_last
        on_device = self.cfg.train.transform_on_device and device.type != "cpu"

        def move(x: Tensor, y: Any) -> tuple[Tensor, Tensor]:
            x = x.to(device, non_blocking=True)
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            return x, torch.as_tensor(y).to(device, non_blocking=True)

        if nw == 0 and get_batch is not None:
            for chunk in torch.split(indices, batch_size):  # the in-memory fast path
                yield move(
                    *(cast(Any, get_batch)(chunk, device) if on_device else get_batch(chunk))
                )
            return
        loader = DataLoader(
            Subset(dataset, indices.tolist()),
            batch_size=batch_size,
            shuffle=False,
            num_workers=nw,
            pin_memory=device.type == "cuda",
        )
        for x, y in loader:
            yield move(x, y)

    def _eval_counts(
        self,
        forward: Callable[[Tensor], Tensor],
        dataset: Dataset[Any],
        num_classes: int,
        members: int | None = None,
    ) -> list[ConfusionMatrix]:
        """This rank's counts of one pass over ``dataset`` (split over ranks without padding).

        ``forward`` maps a batch to logits ``(B, C)``, or, with ``members = K``, to the
        logits of ``K`` fused models ``(K, B, C)``; one confusion matrix per model.
        """
        assert self.dist is not None
        device = self.dist.device
        topk = (1, 5) if num_classes > 5 else (1,)
        cms = [ConfusionMatrix(num_classes, topk=topk) for _ in range(members or 1)]
        idx = shard_indices(
            torch.arange(_size(dataset)), self.dist.rank, self.dist.world_size, pad=False
        )
        with torch.no_grad():
            for x, y in self._batches(dataset, idx, self.cfg.train.eval_batch_size, device):
                logits = forward(x)
                if members is None:
                    cms[0].update(logits, y)
                else:
                    for cm, member_logits in zip(cms, logits, strict=True):
                        cm.update(member_logits, y)
        return cms

    @staticmethod
    def _summary(
        cm: ConfusionMatrix, train_counts: list[int], num_majority: int | None
    ) -> tuple[dict[str, Any], ClassDifficulty]:
        """The summary of ``cm``'s counts summed over ranks, and a tracker holding this
        rank's per-class counts (its ``counts()`` sums them over ranks when asked)."""
        summary = summarize(cm.sync(), train_counts, num_majority)
        return summary, tracker_from_counts(cm.counts)

    def evaluate(
        self, model: nn.Module, dataset: Dataset[Any], num_classes: int, train_counts: list[int]
    ) -> tuple[dict[str, Any], ClassDifficulty]:
        """One pass over ``dataset``: its summary (counts summed over ranks) and the
        per-class tracker the weights learn from, both from one confusion matrix."""
        model.eval()
        (cm,) = self._eval_counts(model, dataset, num_classes)
        return self._summary(cm, train_counts, self.cfg.train.num_majority)

    # ------------------------------------------------------------------ the run

    def fit(self) -> dict[str, Any]:
        """Train, validate after every epoch, test at the end; return ``result.json``'s content."""
        check_run_folder(self.out_dir)
        self.dist = setup_distributed(self.cfg.train.device)
        try:
            if not self.dist.is_main:  # rank 0 holds the folder for all ranks
                return self._fit()
            created = not self.out_dir.exists()
            try:
                with folder_lock(self.out_dir):
                    return self._fit()
            finally:
                if created:  # a run that stopped before writing anything leaves no folder
                    with contextlib.suppress(OSError):
                        self.out_dir.rmdir()
        except KeyboardInterrupt:
            raise KeyboardInterrupt(self._resume_note()) from None
        finally:
            cleanup_distributed()

    def _resume_note(self) -> str:
        """Where an interrupted run resumes from, in one line."""
        if self._saved_epoch is not None:
            return (
                f"run {str(self.out_dir)!r} stopped; its checkpoint of epoch {self._saved_epoch} "
                "is kept and the same command resumes from there"
            )
        return (
            f"run {str(self.out_dir)!r} stopped before its first checkpoint; "
            "the same command starts it from scratch"
        )

    def _fit(self) -> dict[str, Any]:
        """The run: set up (or resume), then per epoch train, validate, record, checkpoint;
        then test and write ``result.json``."""
        cfg, info = self.cfg, self.dist
        assert info is not None
        _check_method(cfg, info)
        finished = self._check_out_dir()
        if finished is not None:
            return finished
        if is_stage2(cfg):  # before any data is read: the stage-1 run must be finished
            self._stage1 = check_stage1_run(self.full_cfg, experiment_differences)
        if is_posthoc(cfg):
            return self._fit_posthoc()
        splits, pretrained = self._prepare()
        run = self._setup(splits, pretrained)
        writer = self._tensorboard() if info.is_main else None
        for epoch in range(run.log.start_epoch, cfg.train.epochs):
            t0 = time.perf_counter()
            losses = self._train_epoch(run, epoch)
            t1 = time.perf_counter()
            val, weights = self._validate(run, epoch)
            record = epoch_record(
                cfg,
                epoch,
                run.log.step,
                run.opt.param_groups[0]["lr"],
                losses,
                (t1 - t0, time.perf_counter() - t1),
                val,
                weights,
                run.loss_fn,
                run.sampler,
                run.splits.num_classes,
            )
            run.log.close_epoch(record, val, cfg.train.select_metric, run.model.state_dict)
            if info.is_main and checkpoint_due(cfg, epoch):
                self._save(run, epoch)
            _log_scalars(writer, record)
            if info.is_main and cfg.train.progress:
                print(progress_line(cfg, record), flush=True)
        if writer is not None:
            writer.close()
        return self._finish(run)

    # ------------------------------------------------------------------ steps of the run

    def _prepare(self) -> tuple[DataSplits, tuple[dict[str, Tensor], str] | None]:
        """Threads and seeds; the pretrained weights (a fresh run only) and the data."""
        cfg = self.cfg
        if cfg.train.threads > 0:
            torch.set_num_threads(cfg.train.threads)
        seed_everything(cfg.seed)
        pretrained = None
        if cfg.model.pretrained is not None and not (self.out_dir / "checkpoint.pt").exists():
            # read before the data, so a missing or unreadable file stops the run at once;
            # a resumed run takes its weights from its checkpoint
            pretrained = read_state_dict(cfg.model.pretrained)
        splits = self._load_data()
        if cfg.train.transform_on_device:
            _check_transform_on_device(splits, cfg.train.num_workers)
        return splits, pretrained

    def _setup(self, splits: DataSplits, pretrained: tuple[dict[str, Tensor], str] | None) -> _Run:
        """The run's objects, its folder's config, its checkpoint's states (if any) and
        the training wrappers (DDP, ``torch.compile``)."""
        cfg, info = self.cfg, self.dist
        assert info is not None
        c = splits.num_classes
        model = _build_model(cfg, c, pretrained, info.device, verbose=info.is_main)
        after_step = None
        ckpt_path = self.out_dir / "checkpoint.pt"
        if self._stage1 is not None:  # stage 2: the stage-1 model, frozen where the method says
            stage1 = None if ckpt_path.exists() else stage1_model_state(self._stage1)
            model, after_step = prepare_model(cfg, model, stage1)
            model = model.to(info.device)
            if after_step is not None and stage1 is not None:
                after_step()  # the first step starts inside MaxNorm's bound
        loss_fn = build_run_loss(cfg, splits).to(info.device)
        opt = torch.optim.SGD(_param_groups(model, cfg.optim.no_weight_decay), **sgd_options(cfg))
        meta_step = self._make_meta_step(model, loss_fn) if cfg.train.method != "standard" else None
        sampler = (
            CDBSampler(
                dataset_targets(splits.train),
                c,
                seed=cfg.seed,
                num_replicas=1,  # the plan is sharded over ranks below, as the permutation is
                rank=0,
                **cfg.train.sampler_options,
            )
            if cfg.train.sampler == "cdb"
            else None
        )
        if info.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.out_dir / "config.json", config_to_dict(self._saved_config()))
        log = RunLog()
        if ckpt_path.exists():
            log = RunLog.from_checkpoint(
                _restore(ckpt_path, model, opt, loss_fn, meta_step, sampler)
            )
            self._saved_epoch = log.start_epoch
        run = _Run(
            splits, model, model, loss_fn, opt, meta_step, sampler, log, ckpt_path, after_step
        )
        run.train_model = self._wrap(model)
        return run

    def _wrap(self, model: nn.Module) -> nn.Module:
        """The module the training forward calls: ``model`` under DDP and/or compiled;
        validation, test and checkpoints use ``model`` itself (the same parameters)."""
        info, mode = self.dist, self.cfg.train.compile
        assert info is not None
        train_model = model
        if info.distributed:
            ddp_ids = [info.device.index] if info.device.type == "cuda" else None
            train_model = nn.parallel.DistributedDataParallel(model, device_ids=ddp_ids)
        if mode != "off":
            compile_mode = None if mode == "default" else mode
            train_model = cast(nn.Module, torch.compile(train_model, mode=compile_mode))
        return train_model

    def _epoch_order(self, splits: DataSplits, epoch: int, sampler: CDBSampler | None) -> Tensor:
        """This rank's training indices for ``epoch``: the sampler's plan or a permutation
        seeded by ``(seed, epoch)``, sharded over ranks."""
        assert self.dist is not None
        if sampler is not None:
            sampler.set_epoch(epoch)
            perm = sampler.plan()
        elif self.cfg.train.sampler == "class-balanced":
            perm = class_balanced_indices(
                dataset_targets(splits.train),
                splits.num_classes,
                generator=_epoch_generator(self.cfg.seed, epoch),
            )
        else:
            perm = torch.randperm(
                _size(splits.train), generator=_epoch_generator(self.cfg.seed, epoch)
            )
        return shard_indices(perm, self.dist.rank, self.dist.world_size, pad=True)

    def _epoch_batches(
        self, splits: DataSplits, epoch: int, sampler: CDBSampler | None
    ) -> tuple[Iterable[tuple[Tensor, Tensor]], int]:
        """The training batches of ``epoch`` (with a progress bar if asked) and their count."""
        assert self.dist is not None
        cfg, info = self.cfg, self.dist
        mine = self._epoch_order(splits, epoch, sampler)
        per_rank_batch = cfg.train.batch_size // info.world_size
        n_total = math.ceil(len(mine) / per_rank_batch)
        batches = progress(
            self._batches(splits.train, mine, per_rank_batch, info.device),
            total=n_total,
            desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
            enabled=cfg.train.progress and info.is_main,
            dynamic_ncols=True,
        )
        return batches, n_total

    def _count_batch(self) -> None:
        """Count one training batch of this process (and stop there if the test hook says so)."""
        self._batches_seen += 1
        if self._fail_after is not None and self._batches_seen >= self._fail_after:
            raise KeyboardInterrupt(f"stopped after {self._batches_seen} batches (test hook)")

    def _train_epoch(self, run: _Run, epoch: int) -> Tensor:
        """One pass over the training data; returns the batch losses ``(batches,)``.

        Raises:
            NonFiniteLossError: a batch loss became NaN/inf (checked every
                :func:`_finite_check_every` batches and at the end).
        """
        cfg, info = self.cfg, self.dist
        assert info is not None
        for group in run.opt.param_groups:
            group["lr"] = cfg.optim.lr * lr_factor(cfg, epoch)
        if wants_epoch(run.loss_fn):
            cast(Any, run.loss_fn).set_epoch(epoch)
        batches, n_total = self._epoch_batches(run.splits, epoch, run.sampler)
        run.train_model.train()
        val_iter = self._val_batches(run.splits, epoch) if run.meta_step is not None else None
        losses = torch.zeros(n_total, device=info.device)  # this epoch's batch losses
        checked, check_every, b = 0, _finite_check_every(info.device), -1  # losses[:checked] finite
        for b, (x, y) in enumerate(batches):
            if val_iter is not None:
                xv, yv = next(val_iter)
                loss = torch.as_tensor(
                    run.meta_step(x, y, xv, yv, run.opt)["loss"], device=info.device
                )
            else:
                run.opt.zero_grad(set_to_none=True)
                loss = run.loss_fn(run.train_model(x), y)
            losses[b] = loss.detach()
            if (b + 1) % check_every == 0:  # and at the end of the epoch (below)
                checked = _check_finite(losses, checked, b + 1, epoch, run.ckpt_path)
            if val_iter is None:  # the meta steps have already stepped
                cast(Any, loss).backward()
                run.opt.step()
                if run.after_step is not None:
                    run.after_step()
            run.log.step += 1
            self._count_batch()
            if update_due(cfg, run.log.step, run.loss_fn):
                _, tracker = self.evaluate(
                    run.model, run.splits.val, run.splits.num_classes, run.splits.class_counts
                )
                cast(Any, run.loss_fn).update_weights(tracker)
                run.train_model.train()
        _check_finite(losses, checked, b + 1, epoch, run.ckpt_path)
        return losses[: b + 1]

    def _validate(self, run: _Run, epoch: int) -> tuple[dict[str, Any] | None, Tensor | None]:
        """The validation pass after ``epoch`` when one is due (:func:`validation_due`), and
        what learns from it (CDB weights, the CDB-S sampler); returns the summary (``None``
        without a pass) and the loss's class weights after it."""
        info, splits = self.dist, run.splits
        assert info is not None
        val: dict[str, Any] | None = None
        weights = getattr(run.loss_fn, "weight", None)
        if validation_due(self.cfg, epoch, run.loss_fn, run.sampler):
            val, tracker = self.evaluate(
                run.model, splits.val, splits.num_classes, splits.class_counts
            )
            weights = learn_from_validation(run.loss_fn, run.sampler, tracker, weights)
        if info.distributed and weights is not None:
            _check_same_on_all_ranks(
                weights.to(info.device), f"class weights after epoch {epoch + 1}"
            )
        return val, weights

    def _save(self, run: _Run, epoch: int) -> None:
        """Write the checkpoint of ``epoch`` and ``metrics.jsonl``."""
        state = run.log.checkpoint(
            epoch,
            model=run.model.state_dict(),
            optimizer=run.opt.state_dict(),
            loss=run.loss_fn.state_dict(),
            meta=run.meta_step.state_dict() if run.meta_step is not None else None,
            sampler=run.sampler.state_dict() if run.sampler is not None else None,
        )
        save_checkpoint(run.ckpt_path, state)
        write_metrics(self.out_dir, run.log.history)
        self._saved_epoch = epoch + 1

    def _finish(self, run: _Run) -> dict[str, Any]:
        """Test the last model (and the best, with ``select: best``); write ``result.json``."""
        assert self.dist is not None
        cfg, splits = self.cfg, run.splits
        c = splits.num_classes
        best = cfg.train.select == "best" and run.log.best["state"] is not None
        if best and self._stage1 is not None:  # stage 2 tests its final model only
            run.model.load_state_dict(run.log.best["state"])
        test_last, _ = self.evaluate(run.model, splits.test, c, splits.class_counts)
        test_best = None
        if best and self._stage1 is not None:
            test_best = test_last
        elif best:
            run.model.load_state_dict(run.log.best["state"])
            test_best, _ = self.evaluate(run.model, splits.test, c, splits.class_counts)
        result = run_result(cfg, splits, self.dist.world_size, run.log, test_last, test_best)
        if self._stage1 is not None:
            metric = cfg.train.select_metric
            result["stage2"] = {  # the final model's validation value, for choices between runs
                "selected_epoch": run.log.best["epoch"] if best else cfg.train.epochs,
                f"selected_val_{metric}": run.log.best["value"]
                if best
                else result["val"].get(f"val_{metric}"),
            }
            result = self._stage2_result(result)
            if test_best is not None:
                del result["test_last"]  # the last epoch's model was never tested
        if splits.extra_test:  # the model that gave result["test"]
            result["extra_test"] = {
                name: self.evaluate(run.model, dataset, c, splits.class_counts)[0]
                for name, dataset in splits.extra_test.items()
            }
        if self.dist.is_main:
            atomic_write_json(self.out_dir / "result.json", result)
        return result

    def _stage2_result(self, result: dict[str, Any]) -> dict[str, Any]:
        """``result`` of a stage-2 run: its whole config, and its stage-1 run (folder and
        test and validation accuracy there)."""
        assert self._stage1 is not None
        stage1 = read_json(self._stage1 / "result.json", "the stage-1 result")
        result["config"] = config_to_dict(self.full_cfg)
        result["stage2"] = {
            "method": self.full_cfg.stage2.method,
            "stage1_run": str(self._stage1),
            "stage1_test_top1_accuracy": stage1.get("test", {}).get("top1_accuracy"),
            "stage1_val_top1_accuracy": stage1.get("val", {}).get("val_top1_accuracy"),
            **result.get("stage2", {}),
        }
        return result

    def _fit_posthoc(self) -> dict[str, Any]:
        """tau-normalisation or post-hoc logit adjustment of the stage-1 model: every tau
        of ``stage2.taus`` on the validation split, the best one tested once."""
        cfg, info = self.cfg, self.dist
        assert info is not None and self._stage1 is not None
        splits, _ = self._prepare()
        c = splits.num_classes
        net = _build_model(cfg, c, None, info.device, verbose=False)
        net.load_state_dict(stage1_model_state(self._stage1))
        if info.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.out_dir / "config.json", config_to_dict(self.full_cfg))
        method, metric = cfg.stage2.method, cfg.train.select_metric
        t0 = time.perf_counter()
        grid = []
        for tau in cfg.stage2.taus:
            val, _ = self.evaluate(
                posthoc_model(method, net, tau, splits.class_counts),
                splits.val,
                c,
                splits.class_counts,
            )
            if metric not in val:
                raise ValueError(
                    f"train.select_metric {metric!r} is not a validation metric; "
                    f"known: {sorted(k for k, v in val.items() if isinstance(v, float))}"
                )
            keys = dict.fromkeys([metric, "top1_accuracy", "macro_recall"])  # ordered, unique
            grid.append({"tau": tau, **{f"val_{k}": val[k] for k in keys}})
        chosen = posthoc_choice(grid, metric)
        val_s = time.perf_counter() - t0
        final = posthoc_model(method, net, chosen["tau"], splits.class_counts)
        test, _ = self.evaluate(final, splits.test, c, splits.class_counts)  # once
        log = RunLog(timing={"train_s": 0.0, "val_s": val_s})
        log.history.append(
            {
                "epoch": 0,
                "val_top1_accuracy": chosen["val_top1_accuracy"],
                "val_macro_recall": chosen["val_macro_recall"],
            }
        )
        result = run_result(cfg, splits, info.world_size, log, test, None)
        result["epochs"] = 0
        result["stage2"] = {
            "tau": chosen["tau"],
            f"selected_val_{metric}": chosen[f"val_{metric}"],
            "tau_grid": grid,
        }
        result = self._stage2_result(result)
        if splits.extra_test:
            result["extra_test"] = {
                name: self.evaluate(final, dataset, c, splits.class_counts)[0]
                for name, dataset in splits.extra_test.items()
            }
        if info.is_main:
            atomic_write_json(self.out_dir / "result.json", result)
        return result

    # ------------------------------------------------------------------ helpers

    def _val_batches(self, splits: DataSplits, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Endless random validation batches for the meta steps (seeded per epoch)."""
        assert self.dist is not None
        g = _epoch_generator(self.cfg.seed, epoch, stream=1)
        n = _size(splits.val)
        while True:
            perm = torch.randperm(n, generator=g)
            yield from self._batches(
                splits.val, perm, self.cfg.train.val_batch_size, self.dist.device
            )

    def _make_meta_step(self, model: nn.Module, per_sample_loss: nn.Module) -> Any:
        from cdbloss.lab.engine.meta import L2RWStep, MetaWeightNetStep

        if self.cfg.train.method == "l2rw":
            return L2RWStep(model, per_sample_loss)
        return MetaWeightNetStep(model, per_sample_loss)

    def _tensorboard(self) -> Any:
        if not self.cfg.train.tensorboard:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise RuntimeError(
                "train.tensorboard=true needs the tensorboard package: pip install tensorboard"
            ) from err
        return SummaryWriter(log_dir=str(self.out_dir / "tensorboard"))


def _check_method(cfg: ExperimentConfig, info: DistInfo) -> None:
    """Refuse, before any work, a training method that the process layout cannot run."""
    if info.distributed and cfg.train.method != "standard":
        raise ValueError(f"train.method={cfg.train.method!r} runs on one process only")
    if cfg.train.compile != "off" and cfg.train.method != "standard":
        raise ValueError(
            f"train.compile={cfg.train.compile!r} compiles the standard training step; "
            f"the meta steps of train.method={cfg.train.method!r} need train.compile: off"
        )
    if cfg.train.batch_size % info.world_size:
        raise ValueError(
            f"train.batch_size={cfg.train.batch_size} must divide evenly over {info.world_size} ranks"
        )


def _build_model(
    cfg: ExperimentConfig,
    num_classes: int,
    pretrained: tuple[dict[str, Tensor], str] | None,
    device: torch.device,
    verbose: bool,
) -> nn.Module:
    """The config's model, started from ``pretrained`` when given, on ``device``."""
    model = build_model(cfg.model.name, num_classes, **cfg.model.options)
    if pretrained is not None:
        loaded = load_pretrained(
            model, pretrained, cfg.model.reinit_head, name=cfg.model.pretrained
        )
        if verbose and cfg.train.progress:
            print(f"[{cfg.name}] {loaded.summary()}", flush=True)
    model = model.to(device)
    if cfg.train.channels_last:
        # 4-D weights only; torch's stubs lack the memory_format overload of Module.to
        model = cast(Any, model).to(memory_format=torch.channels_last)
    return model


def _restore(
    ckpt_path: Path,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    loss_fn: nn.Module,
    meta_step: Any,
    sampler: CDBSampler | None,
) -> dict[str, Any]:
    """Load a checkpoint's states into the run's objects (and the RNGs); return the checkpoint.

    Raises:
        CheckpointError: the checkpoint does not fit this run (names the file).
    """
    state = load_checkpoint(ckpt_path)
    try:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        loss_fn.load_state_dict(state["loss"])
        if meta_step is not None and "meta" in state:
            meta_step.load_state_dict(state["meta"])
        if sampler is not None and state.get("sampler") is not None:
            sampler.load_state_dict(state["sampler"])
        missing = [k for k in ("epoch", "step", "history", "best") if k not in state]
        if missing:  # a checkpoint of another kind of run
            raise KeyError(missing[0])
        set_rng_state(state["rng"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"checkpoint {str(ckpt_path)!r} does not fit this run ({reason[:200]}); "
            "deleting it restarts the run from scratch"
        ) from None
    return state


def check_run_folder(out_dir: str | Path) -> None:
    """Refuse, before any work, a run folder that is a file (or lies under one), or that
    is a sweep's folder or otherwise holds other runs' folders: the run's files would
    mix with theirs, and a report of the sweep would list it as a stray run.

    Raises:
        ValueError: naming the folder, what it is and what a run needs.
    """
    out = Path(out_dir)
    for p in (out, *out.parents):
        if p.exists() and not p.is_dir():
            raise ValueError(
                f"run folder {str(out)!r}: {str(p)!r} is a file; a run needs a folder (--out)"
            )
    if not out.is_dir():
        return
    if (out / "sweep.json").exists() or (out / SWEEP_LOCK_NAME).exists():
        raise ValueError(
            f"run folder {str(out)!r} is a sweep's folder (it holds sweep.json); "
            f"give the run a folder of its own, e.g. {str(out / 'NAME')!r}"
        )
    try:
        children = sorted(p for p in out.iterdir() if p.is_dir())
    except OSError:  # unreadable: the writes below will say so
        return
    for child in children:
        if any((child / f).exists() for f in ("config.json", "result.json", LOCK_NAME)):
            raise ValueError(
                f"run folder {str(out)!r} holds other runs' folders (e.g. {str(child)!r}); "
                f"give the run a folder of its own, e.g. {str(out / 'NAME')!r}"
            )


def _finite_check_every(device: torch.device) -> int:
    """Batches between NaN/inf checks of the loss: 1 on the CPU (each check is free
    there, and a bad loss stops before its step), ``_FINITE_CHECK_EVERY`` elsewhere
    (each check waits for the device to finish its queue)."""
    return 1 if device.type == "cpu" else _FINITE_CHECK_EVERY


def _check_finite(losses: Tensor, start: int, stop: int, epoch: int, ckpt_path: Path) -> int:
    """Raise :class:`NonFiniteLossError` at the first NaN/inf in ``losses[start:stop]``.

    Returns ``stop``: the batch losses up to it are known to be finite.
    """
    bad = ~torch.isfinite(losses[start:stop])
    if bool(bad.any()):  # the one point where a GPU run waits for its device
        i = start + int(bad.nonzero()[0, 0])
        kept = (
            f"the last good checkpoint ({str(ckpt_path)!r}) is kept"
            if ckpt_path.exists()
            else "no checkpoint had been written yet"
        )
        raise NonFiniteLossError(
            f"loss became {float(losses[i])} at epoch {epoch + 1}, batch {i + 1}; {kept}"
        )
    return stop


def _check_transform_on_device(splits: DataSplits, num_workers: int) -> None:
    """``train.transform_on_device`` needs the in-memory path and datasets whose
    ``get_batch`` takes a ``device``; say so before any work starts."""
    if num_workers:
        raise ValueError(
            f"train.transform_on_device transforms the in-memory batches of get_batch; "
            f"it needs train.num_workers: 0, got {num_workers}"
        )
    for name in ("train", "val", "test"):
        dataset = getattr(splits, name)
        get_batch = getattr(dataset, "get_batch", None)
        if get_batch is None or "device" not in inspect.signature(get_batch).parameters:
            raise ValueError(
                f"train.transform_on_device needs datasets with get_batch(indices, device) "
                f"(TensorImageDataset, FeatureDataset); the {name} split is a "
                f"{type(dataset).__name__}, which has none"
            )


def _check_same_on_all_ranks(values: Tensor, what: str) -> None:
    """Raise if ``values`` differ between ranks (one small all-reduce of max and -min)."""
    import torch.distributed as dist

    both = torch.stack([values.float(), -values.float()])  # (2, C)
    dist.all_reduce(both, op=dist.ReduceOp.MAX)
    if not torch.equal(both[0], values.float()) or not torch.equal(-both[1], values.float()):
        raise RuntimeError(f"{what} differ between ranks; the run would diverge")


def _thin(records: list[dict[str, Any]], most: int) -> list[dict[str, Any]]:
    """At most ``most`` records, evenly spaced, first and last included."""
    if len(records) <= most:
        return records
    step = (len(records) - 1) / (most - 1)
    return [records[round(i * step)] for i in range(most)]


def _param_groups(model: nn.Module, no_decay: list[str]) -> list[dict[str, Any]]:
    """One parameter group, or two when some parameters train without weight decay."""
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}  # stage 2 freezes
    unknown = sorted(set(no_decay) - set(named))
    if unknown:
        raise ValueError(
            f"optim.no_weight_decay names parameters the model does not have: {unknown}; "
            f"its parameters end with {sorted(named)[-4:]}"
        )
    if not no_decay:
        return [{"params": list(named.values())}]
    return [
        {"params": [p for n, p in named.items() if n not in no_decay]},
        {"params": [named[n] for n in no_decay], "weight_decay": 0.0},
    ]


def _size(dataset: Dataset[Any]) -> int:
    """``len(dataset)``, with a clear error for datasets without a length."""
    try:
        return len(dataset)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"datasets must have a length, got {type(dataset).__name__}") from None


def _drop_matrix(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "confusion_matrix"}


def _portable(obj: Any) -> Any:
    """``obj`` with machine-specific folders rewritten in every string: a path in a
    shared data folder as ``../shared/data/...`` and this machine's home folder as
    ``~``, so result files (which are committed) name no absolute path."""
    from ..data.cache import shared_data_dirs

    roots = [(str(d), "../shared/data") for d in shared_data_dirs()]
    home = str(Path.home())
    if home != "/":
        roots.append((home, "~"))

    def walk(o: Any) -> Any:
        if isinstance(o, str):
            for root, short in roots:
                if o.startswith(root + "/"):
                    return short + o[len(root) :]
            return o
        if isinstance(o, dict):
            return {k: walk(v) for k, v in o.items()}
        if isinstance(o, list):
            return [walk(v) for v in o]
        return o

    return walk(obj)


def train(
    cfg: ExperimentConfig, out_dir: str | Path, splits: DataSplits | None = None
) -> dict[str, Any]:
    """Run ``cfg`` into ``out_dir`` (resuming if possible) and return its result."""
    return Trainer(cfg, out_dir, splits).fit()
