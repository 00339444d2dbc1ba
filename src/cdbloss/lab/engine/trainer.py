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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from cdbloss.cdb import FIRST_DECAY
from cdbloss.difficulty import ClassDifficulty
from cdbloss.lab.data.base import DataSplits, load_protocol
from cdbloss.lab.data.protocols import import_protocols
from cdbloss.lab.engine.checkpoint import (
    CheckpointError,
    atomic_write_json,
    atomic_write_text,
    get_rng_state,
    load_checkpoint,
    read_json,
    save_checkpoint,
    set_rng_state,
)
from cdbloss.lab.engine.config import VOLATILE_KEYS, ExperimentConfig, config_to_dict, flatten_keys
from cdbloss.lab.engine.distributed import (
    DistInfo,
    cleanup_distributed,
    setup_distributed,
    shard_indices,
)
from cdbloss.lab.engine.lock import LOCK_NAME, SWEEP_LOCK_NAME, folder_lock
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
    out; a folder without a config differs in nothing.
    """
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        return []
    theirs = read_json(cfg_path, "the run's saved config")
    mine = config_to_dict(with_resolved_loss(cfg))
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


def _comparable(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(cfg_dict)
    out.pop("sweep", None)
    for dotted in VOLATILE_KEYS:
        section, key = dotted.split(".")
        out.get(section, {}).pop(key, None)
    return out


def _progress(iterable: Any, enabled: bool, **kwargs: Any) -> Any:
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, leave=False, dynamic_ncols=True, **kwargs)


def _epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    # Independent of the global RNG, so the data order survives a resume.
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 101 + stream)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002  (the legacy global state user code may use)
    torch.manual_seed(seed)


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
        self.cfg = with_resolved_loss(cfg)
        self.out_dir = Path(out_dir)
        self._splits = splits
        self._fail_after = fail_after_batches
        self._batches_seen = 0
        self._saved_epoch: int | None = None  # the epoch (1-based) the checkpoint holds
        self.dist: DistInfo | None = None

    # ------------------------------------------------------------------ setup

    def _check_out_dir(self) -> dict[str, Any] | None:
        """Refuse a folder holding a different experiment; return a finished result if any."""
        diff = experiment_differences(self.out_dir, self.cfg)
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

    @torch.no_grad()
    def evaluate(
        self, model: nn.Module, dataset: Dataset[Any], num_classes: int, train_counts: list[int]
    ) -> tuple[dict[str, Any], ClassDifficulty]:
        """One pass over ``dataset`` (split over ranks without padding); summed counts."""
        assert self.dist is not None
        device = self.dist.device
        model.eval()
        cm = ConfusionMatrix(num_classes, topk=(1, 5) if num_classes > 5 else (1,))
        tracker = ClassDifficulty(num_classes).to(device)
        idx = shard_indices(
            torch.arange(_size(dataset)), self.dist.rank, self.dist.world_size, pad=False
        )
        for x, y in self._batches(dataset, idx, self.cfg.train.eval_batch_size, device):
            logits = model(x)  # (B, C)
            cm.update(logits, y)
            tracker.update(logits, y)
        summary = summarize(cm.sync(), train_counts, self.cfg.train.num_majority)
        return summary, tracker

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
        cfg, info = self.cfg, self.dist
        assert info is not None
        _check_method(cfg, info)
        finished = self._check_out_dir()
        if finished is not None:
            return finished
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
        c = splits.num_classes
        device = info.device
        model = _build_model(cfg, c, pretrained, device, verbose=info.is_main)
        loss_options = dict(cfg.loss.options)
        if cfg.train.method != "standard":
            # The meta steps weight each example themselves: they need per-sample
            # losses. The same module keeps receiving update_weights / set_epoch.
            loss_options["reduction"] = "none"
        loss_fn = build_loss(cfg.loss.name, c, class_counts=splits.class_counts, **loss_options).to(
            device
        )
        opt = torch.optim.SGD(
            _param_groups(model, cfg.optim.no_weight_decay),
            lr=cfg.optim.lr,
            momentum=cfg.optim.momentum,
            weight_decay=cfg.optim.weight_decay,
            nesterov=cfg.optim.nesterov,
        )
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
            atomic_write_json(self.out_dir / "config.json", config_to_dict(cfg))
        writer = self._tensorboard() if info.is_main else None

        start_epoch, step, history = 0, 0, []
        timing = {"train_s": 0.0, "val_s": 0.0}
        best: dict[str, Any] = {"value": -math.inf, "epoch": -1, "state": None}
        ckpt_path = self.out_dir / "checkpoint.pt"
        if ckpt_path.exists():
            state = _restore(ckpt_path, model, opt, loss_fn, meta_step, sampler)
            start_epoch, step, history = state["epoch"] + 1, state["step"], state["history"]
            best = state["best"]
            timing = dict(state.get("timing", timing))
            self._saved_epoch = start_epoch
        train_model: nn.Module = model
        if info.distributed:
            ddp_ids = [device.index] if device.type == "cuda" else None
            train_model = nn.parallel.DistributedDataParallel(model, device_ids=ddp_ids)
        if cfg.train.compile != "off":
            # only the training forward (and so its backward) is compiled; validation,
            # test and checkpoints use ``model`` itself, which shares the parameters
            mode = None if cfg.train.compile == "default" else cfg.train.compile
            train_model = cast(nn.Module, torch.compile(train_model, mode=mode))

        per_rank_batch = cfg.train.batch_size // info.world_size
        check_every = _finite_check_every(device)
        for epoch in range(start_epoch, cfg.train.epochs):
            for group in opt.param_groups:
                group["lr"] = cfg.optim.lr * lr_factor(cfg, epoch)
            if wants_epoch(loss_fn):
                cast(Any, loss_fn).set_epoch(epoch)
            t0 = time.perf_counter()
            if sampler is not None:
                sampler.set_epoch(epoch)
                perm = sampler.plan()
            else:
                perm = torch.randperm(
                    _size(splits.train), generator=_epoch_generator(cfg.seed, epoch)
                )
            mine = shard_indices(perm, info.rank, info.world_size, pad=True)
            train_model.train()
            n_batches = 0
            val_iter = self._val_batches(splits, epoch) if meta_step is not None else None
            batches = self._batches(splits.train, mine, per_rank_batch, device)
            n_total = math.ceil(len(mine) / per_rank_batch)
            losses = torch.zeros(n_total, device=device)  # this epoch's batch losses
            checked = 0  # losses[:checked] are known to be finite
            for b, (x, y) in enumerate(
                _progress(
                    batches,
                    cfg.train.progress and info.is_main,
                    total=n_total,
                    desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
                )
            ):
                if meta_step is not None:
                    assert val_iter is not None
                    xv, yv = next(val_iter)
                    stats = meta_step(x, y, xv, yv, opt)
                    loss = torch.as_tensor(stats["loss"], device=device)
                else:
                    opt.zero_grad(set_to_none=True)
                    loss = loss_fn(train_model(x), y)
                losses[b] = loss.detach()
                if (b + 1) % check_every == 0:  # and at the end of the epoch (below)
                    checked = _check_finite(losses, checked, b + 1, epoch, ckpt_path)
                if meta_step is None:  # the meta steps have already stepped
                    cast(Any, loss).backward()
                    opt.step()
                n_batches += 1
                step += 1
                self._batches_seen += 1
                if self._fail_after is not None and self._batches_seen >= self._fail_after:
                    raise KeyboardInterrupt(
                        f"stopped after {self._batches_seen} batches (test hook)"
                    )
                k = cfg.train.weight_update_every
                if k and step % k == 0 and wants_difficulty(loss_fn):
                    _, tracker = self.evaluate(model, splits.val, c, splits.class_counts)
                    cast(Any, loss_fn).update_weights(tracker)
                    train_model.train()
            _check_finite(losses, checked, n_batches, epoch, ckpt_path)
            t1 = time.perf_counter()
            last = epoch + 1 == cfg.train.epochs
            validate = (
                last
                or (epoch + 1) % cfg.train.val_every == 0
                or wants_difficulty(loss_fn)
                or sampler is not None
                or cfg.train.select == "best"
            )
            val: dict[str, Any] | None = None
            weights = getattr(loss_fn, "weight", None)
            if validate:
                val, tracker = self.evaluate(model, splits.val, c, splits.class_counts)
                if wants_difficulty(loss_fn):
                    weights = cast(Any, loss_fn).update_weights(tracker)
                if sampler is not None:
                    sampler.update(tracker)
            if info.distributed and weights is not None:
                _check_same_on_all_ranks(
                    weights.to(device), f"class weights after epoch {epoch + 1}"
                )
            t2 = time.perf_counter()
            timing["train_s"] += t1 - t0
            timing["val_s"] += t2 - t1
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "step": step,
                "lr": opt.param_groups[0]["lr"],
                "train_loss": float(losses[:n_batches].sum()) / max(n_batches, 1),
                "train_s": t1 - t0,
                "val_s": t2 - t1,
            }
            if val is not None:
                record["val_top1_accuracy"] = val["top1_accuracy"]
                record["val_macro_recall"] = val["macro_recall"]
                if c <= _MAX_CLASSES_IN_HISTORY:
                    record["val_per_class_accuracy"] = val["per_class_accuracy"]
            if c <= _MAX_CLASSES_IN_HISTORY and weights is not None:
                record["weights"] = [float(v) for v in weights.tolist()]
            if c <= _MAX_CLASSES_IN_HISTORY and sampler is not None:
                record["sampler_probabilities"] = [float(p) for p in sampler.probabilities()]
            tau = getattr(loss_fn, "tau_value", None)
            if tau is not None:
                record["tau"] = float(tau)
            history.append(record)
            metric = math.nan if val is None else float(val.get(cfg.train.select_metric, math.nan))
            if metric > best["value"]:
                best = {
                    "value": metric,
                    "epoch": epoch + 1,
                    "state": copy.deepcopy(model.state_dict()),
                }
            if info.is_main and (last or (epoch + 1) % cfg.train.checkpoint_every == 0):
                save_checkpoint(
                    ckpt_path,
                    {
                        "epoch": epoch,
                        "step": step,
                        "model": model.state_dict(),
                        "optimizer": opt.state_dict(),
                        "loss": loss_fn.state_dict(),
                        "meta": meta_step.state_dict() if meta_step is not None else None,
                        "sampler": sampler.state_dict() if sampler is not None else None,
                        "history": history,
                        "best": best,
                        "timing": timing,
                        "rng": get_rng_state(),
                    },
                )
                atomic_write_text(
                    self.out_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history)
                )
                self._saved_epoch = epoch + 1
            if writer is not None:
                for key in ("train_loss", "val_top1_accuracy", "val_macro_recall", "lr", "tau"):
                    if key in record:
                        writer.add_scalar(key, record[key], epoch + 1)
            if info.is_main and cfg.train.progress:
                val_s = (
                    f" val acc {val['top1_accuracy']:.4f} macro recall {val['macro_recall']:.4f}"
                    if val is not None
                    else ""
                )
                tau_s = f" tau {record['tau']:.3f}" if "tau" in record else ""
                print(
                    f"[{cfg.name}] epoch {epoch + 1}/{cfg.train.epochs} "
                    f"loss {record['train_loss']:.4f}{val_s}{tau_s}",
                    flush=True,
                )
        if writer is not None:
            writer.close()

        test_last, _ = self.evaluate(model, splits.test, c, splits.class_counts)
        result: dict[str, Any] = {
            "status": "done",
            "name": cfg.name,
            "config": config_to_dict(cfg),
            "num_classes": c,
            "class_names": splits.class_names,
            "class_counts": splits.class_counts,
            "data_info": _portable(_jsonable(splits.info)),
            "epochs": cfg.train.epochs,
            "world_size": info.world_size,
            "select": cfg.train.select,
            "best_epoch": best["epoch"],
            "val": _drop_matrix(history[-1] if history else {}),
            "test_last": test_last,
        }
        if cfg.train.select == "best" and best["state"] is not None:
            model.load_state_dict(best["state"])
            result["test_best"], _ = self.evaluate(model, splits.test, c, splits.class_counts)
            result["test"] = result["test_best"]
        else:
            result["test"] = test_last
        result["history"] = _thin(history, _MAX_HISTORY_IN_RESULT)
        result["timing"] = timing
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
    named = dict(model.named_parameters())
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


def _jsonable(obj: Any) -> Any:
    """``obj`` with anything JSON cannot hold turned into a string."""
    try:
        json.dumps(obj)
        return obj
    except TypeError:
        if isinstance(obj, dict):
            return {str(k): _jsonable(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [_jsonable(v) for v in obj]
        return str(obj)


def train(
    cfg: ExperimentConfig, out_dir: str | Path, splits: DataSplits | None = None
) -> dict[str, Any]:
    """Run ``cfg`` into ``out_dir`` (resuming if possible) and return its result."""
    return Trainer(cfg, out_dir, splits).fit()
