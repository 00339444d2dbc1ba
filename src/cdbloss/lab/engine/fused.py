r"""Fused runs: several runs of one sweep trained as one vmapped model in one process.

A ResNet-32 on batches of 128 leaves a large GPU mostly idle: its step costs kernel
launches and Python, not arithmetic. Runs that differ only in their loss and their
optimiser's hyper-parameters can share everything else, so ``K`` of them train as one
model whose parameters and buffers carry a leading member axis ``K``
(:func:`torch.func.stack_module_state`), called with
:func:`torch.func.functional_call` under :func:`torch.vmap`:

* one data stream: every member sees the same split, order and augmentation (so their
  comparison is paired), one forward of shape ``(K, B, C)``, one backward;
* each member's own loss object on its own logits ``(B, C)`` (CDB weights and their
  updates, the DRW switch, LDAM margins, Balanced Softmax priors, focal), summed for
  the backward: member ``k``'s parameters get exactly the gradient of its own loss;
* BatchNorm running statistics per member (the stacked buffers are updated in place
  under ``vmap``);
* SGD with each member's learning rate, momentum, weight decay and Nesterov switch
  (:class:`StackedSGD`, the update of ``torch.optim.SGD``);
* each member's own validation counts, weight updates, checkpoint, ``metrics.jsonl``
  and ``result.json`` in the format of an unfused run (the pieces of
  :mod:`cdbloss.lab.engine.trainer`), plus ``result["fused_with"]``: the other members.

Members must agree on everything but :data:`MEMBER_KEYS` (:func:`fuse_key`); the meta
steps (L2RW, Meta-Weight-Net), the CDB-S sampler and TensorBoard logging do not fuse
(:func:`why_not_fusable`). A member whose loss becomes NaN/inf leaves the group with the
error an unfused run would raise (its last good checkpoint kept); the others go on.

Equality with unfused runs: the same computations in another order. A vmapped
convolution or matmul sums in another order than the unfused one (logits differ by
about 1e-6 relative after one ResNet-8 forward), so results agree to floating-point
rounding, amplified by training like any change of summation order (docs/engine.md).

Resume: every member's checkpoint of an epoch is first written beside its folder's
``checkpoint.pt`` as ``checkpoint.pt.next``; once all members hold theirs, each is
renamed over ``checkpoint.pt``. A group killed between the two phases resumes from the
old checkpoints (some members lack ``.next``) or finishes the renames (all hold it), so
the members always resume from the same epoch and the same RNG state.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state

from cdbloss.lab.data.base import DataSplits
from cdbloss.lab.engine.checkpoint import (
    CheckpointError,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
    signals_deferred,
)
from cdbloss.lab.engine.config import VOLATILE_KEYS, ExperimentConfig, config_to_dict, flatten_keys
from cdbloss.lab.engine.distributed import DistInfo, resolve_device
from cdbloss.lab.engine.lock import folder_lock
from cdbloss.lab.engine.trainer import (
    NonFiniteLossError,
    RunLog,
    Trainer,
    _build_model,
    _check_finite,
    _finite_check_every,
    _param_groups,
    build_run_loss,
    check_run_folder,
    checkpoint_due,
    epoch_record,
    learn_from_validation,
    lr_factor,
    progress_line,
    run_result,
    sgd_options,
    update_due,
    validation_due,
    with_resolved_loss,
    write_metrics,
)
from cdbloss.lab.io import atomic_write_json
from cdbloss.losses import wants_epoch

__all__ = [
    "MEMBER_KEYS",
    "FusedModel",
    "FusedTrainer",
    "StackedSGD",
    "fuse_key",
    "why_not_fusable",
]

#: Config keys (dotted; a key ending in ``.`` covers everything under it) in which the
#: members of one fused group may differ. Everything else (model, data, seed, batch
#: size, epochs, schedule shape, validation and checkpoint cadence...) they share.
MEMBER_KEYS = (
    "name",
    "loss.",
    "optim.lr",
    "optim.momentum",
    "optim.weight_decay",
    "optim.nesterov",
    "optim.no_weight_decay",
    "train.select",
    "train.select_metric",
    "train.num_majority",
    "sweep.",
)

#: Beside ``checkpoint.pt``: a member's checkpoint of the epoch the group is writing.
NEXT_SUFFIX = ".next"


def why_not_fusable(cfg: ExperimentConfig) -> str | None:
    """Why ``cfg`` cannot train in a fused group (``None``: it can), in one phrase."""
    t = cfg.train
    if cfg.stage2.method != "none":
        return f"stage2.method={cfg.stage2.method!r} starts from its own stage-1 model"
    if t.method != "standard":
        return f"train.method={t.method!r} takes its own meta steps"
    if t.sampler != "uniform":
        return f"train.sampler={t.sampler!r} draws each run's own data order"
    if t.tensorboard:
        return "train.tensorboard writes one run's scalars"
    return None


def fuse_key(cfg: ExperimentConfig) -> str:
    """What members of one group share: the resolved config without :data:`MEMBER_KEYS`
    and the keys that only change how a run prints (JSON, sorted)."""
    flat = flatten_keys(config_to_dict(with_resolved_loss(cfg)))
    quiet = {"train.progress", "train.threads"} & VOLATILE_KEYS

    def member(key: str) -> bool:
        return key in quiet or any(
            key == m or (m.endswith(".") and key.startswith(m)) for m in MEMBER_KEYS
        )

    return json.dumps({k: v for k, v in flat.items() if not member(k)}, sort_keys=True)


# --------------------------------------------------------------------------- the model


class FusedModel:
    """``K`` models of one architecture as one: stacked parameters and buffers.

    Args:
        models: the members' models (same architecture, same device).

    Shape:
        - ``self(x)``: input ``(B, ...)`` shared by all members -> logits ``(K, B, C)``.
    """

    def __init__(self, models: list[nn.Module]) -> None:
        if not models:
            raise ValueError("a fused model needs at least one member, got none")
        self.base = copy.deepcopy(models[0]).to("meta")  # the code; its tensors come per call
        self.keys = list(models[0].state_dict())  # a member's state dict, in its order
        params, buffers = stack_module_state(models)
        self.params: dict[str, Tensor] = dict(params)
        self.buffers: dict[str, Tensor] = dict(buffers)
        self._vmapped = torch.vmap(self._one, in_dims=(0, 0, None), randomness="different")
        self.forward: Callable[[dict[str, Tensor], dict[str, Tensor], Tensor], Tensor] = (
            self._vmapped
        )

    def _one(self, params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor) -> Tensor:
        return cast(Tensor, functional_call(self.base, (params, buffers), (x,)))

    @property
    def size(self) -> int:
        """``K``: the number of members."""
        return next(iter(self.params.values())).shape[0]

    def compile(self, mode: str | None) -> None:
        """Compile the vmapped forward (and so its backward) with ``torch.compile``."""
        self.forward = cast(Any, torch.compile(self._vmapped, mode=mode))

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(self.params, self.buffers, x)

    def train(self, mode: bool = True) -> None:
        """Training (batch statistics, running statistics updated) or evaluation mode."""
        self.base.train(mode)

    def eval(self) -> None:
        """Evaluation mode (running statistics used, not updated)."""
        self.base.eval()

    def zero_grad(self) -> None:
        """Forget the parameters' gradients."""
        for p in self.params.values():
            p.grad = None

    def member_state(self, k: int) -> dict[str, Tensor]:
        """Member ``k``'s state dict, as its unfused model's ``state_dict()`` would be."""
        out: dict[str, Tensor] = OrderedDict()
        for key in self.keys:
            stacked = self.params.get(key, self.buffers.get(key))
            assert stacked is not None
            out[key] = stacked[k].detach().clone()
        return out

    @torch.no_grad()
    def load_member_state(self, k: int, state: dict[str, Tensor]) -> None:
        """Copy an unfused model's ``state`` into member ``k``.

        Raises:
            KeyError: ``state`` lacks a key of the model, or holds one it does not have.
        """
        extra = sorted(set(state) - set(self.keys))
        if extra:
            raise KeyError(f"unexpected key {extra[0]!r} in the model's state")
        for key in self.keys:
            stacked = self.params.get(key, self.buffers.get(key))
            assert stacked is not None
            stacked[k].copy_(state[key])

    def keep(self, members: list[int]) -> None:
        """Keep only ``members`` (indices), in that order (the others leave the group)."""
        index = torch.tensor(members, device=next(iter(self.params.values())).device)
        self.params = {
            n: p.detach().index_select(0, index).requires_grad_(p.requires_grad)
            for n, p in self.params.items()
        }
        self.buffers = {n: b.index_select(0, index) for n, b in self.buffers.items()}


# --------------------------------------------------------------------------- the optimiser


class StackedSGD:
    r"""``torch.optim.SGD`` (no dampening) over stacked parameters, with per-member settings.

    For member ``k`` with learning rate :math:`\eta_k`, momentum :math:`\mu_k`, weight
    decay :math:`\lambda_k` (0 for its ``no_weight_decay`` parameters) and gradient
    :math:`g`:

    .. math::
        d = g + \lambda_k p, \quad b \leftarrow \mu_k b + d \ (b_0 = 0), \quad
        p \leftarrow p - \eta_k \,(d + \mu_k b \text{ if Nesterov, else } b)

    which is ``torch.optim.SGD``'s step (its first step sets ``b = d``, the same value).

    Args:
        params: the stacked parameters ``name -> (K, ...)``.
        cfgs: the members' configs (``optim`` section), in member order.
        base: the members' model (any device): its parameter names and groups.
    """

    def __init__(
        self, params: dict[str, Tensor], cfgs: list[ExperimentConfig], base: nn.Module
    ) -> None:
        self.params = params
        # one real torch optimizer per member over the meta-device model: its checks of
        # the options, and the layout of an unfused run's optimizer state
        self.templates = [
            torch.optim.SGD(_param_groups(base, c.optim.no_weight_decay), **sgd_options(c))
            for c in cfgs
        ]
        names = {id(p): n for n, p in base.named_parameters()}
        self.order = [names[id(p)] for g in self.templates[0].param_groups for p in g["params"]]
        self.cfgs = list(cfgs)
        self.buffers: dict[str, Tensor] = {}
        self.steps = 0
        self._settings()

    def _settings(self) -> None:
        dev = next(iter(self.params.values())).device
        o = [c.optim for c in self.cfgs]
        self.lr = torch.tensor([c.lr for c in o], device=dev)
        self.momentum = torch.tensor([c.momentum for c in o], device=dev)
        self.nesterov = torch.tensor([c.nesterov for c in o], device=dev)
        self.decay = {
            n: torch.tensor(
                [0.0 if n in c.no_weight_decay else c.weight_decay for c in o], device=dev
            )
            for n in self.params
        }

    def set_lr(self, lrs: list[float]) -> None:
        """Each member's learning rate for the next steps."""
        self.lr = torch.tensor(lrs, device=self.lr.device)
        for template, lr in zip(self.templates, lrs, strict=True):
            for group in template.param_groups:
                group["lr"] = lr

    @torch.no_grad()
    def step(self) -> None:
        """One SGD step of every member from the parameters' ``.grad``."""
        for name, p in self.params.items():
            if p.grad is None:
                continue
            shape = (-1,) + (1,) * (p.dim() - 1)
            d = p.grad + self.decay[name].view(shape) * p
            buf = self.buffers.get(name)
            buf = d.clone() if buf is None else buf.mul_(self.momentum.view(shape)).add_(d)
            self.buffers[name] = buf
            nest = self.nesterov.view(shape)
            update = torch.where(nest, d + self.momentum.view(shape) * buf, buf)
            p.add_(-self.lr.view(shape) * update)
        self.steps += 1

    def member_state(self, k: int) -> dict[str, Any]:
        """Member ``k``'s state in the layout of its unfused run's ``SGD.state_dict()``."""
        state = self.templates[k].state_dict()
        if self.cfgs[k].optim.momentum != 0 and self.buffers:
            state["state"] = {
                i: {"momentum_buffer": self.buffers[n][k].detach().clone()}
                for i, n in enumerate(self.order)
                if n in self.buffers
            }
        return state

    @torch.no_grad()
    def load_member_state(self, k: int, state: dict[str, Any]) -> None:
        """Take member ``k``'s momentum buffers from an unfused run's ``SGD.state_dict()``."""
        groups = state["param_groups"]
        n_params = sum(len(g["params"]) for g in groups)
        if n_params != len(self.order) or len(groups) != len(self.templates[k].param_groups):
            raise ValueError(
                f"optimizer state for {n_params} parameters in {len(groups)} groups, "
                f"the model has {len(self.order)} in {len(self.templates[k].param_groups)}"
            )
        for i, name in enumerate(self.order):
            buf = state["state"].get(i, {}).get("momentum_buffer")
            if buf is None:
                continue
            if name not in self.buffers:
                self.buffers[name] = torch.zeros_like(self.params[name]).detach()
            self.buffers[name][k].copy_(buf)

    def keep(self, members: list[int], params: dict[str, Tensor]) -> None:
        """Keep only ``members`` (as :meth:`FusedModel.keep`); ``params``: the new stacks."""
        self.params = params
        self.templates = [self.templates[i] for i in members]
        self.cfgs = [self.cfgs[i] for i in members]
        index = torch.tensor(members, device=self.lr.device)
        self.buffers = {n: b.index_select(0, index) for n, b in self.buffers.items()}
        lrs = self.lr.index_select(0, index)
        self._settings()
        self.lr = lrs


# --------------------------------------------------------------------------- the group


@dataclass
class _Member:
    """One run of a fused group: its config, folder, loss and log."""

    cfg: ExperimentConfig
    out_dir: Path
    loss_fn: nn.Module
    log: RunLog

    @property
    def ckpt_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"


@dataclass
class _Group:
    """The live members of a fused group and what they train with."""

    splits: DataSplits
    members: list[_Member]
    model: FusedModel
    opt: StackedSGD


class FusedTrainer(Trainer):
    """Trains the runs ``cfgs`` (one fused group, see :func:`fuse_key`) into ``out_dirs``.

    :meth:`fit_all` returns one entry per run, in order: its ``result.json`` content, or
    the exception that stopped it (a NaN loss: that member left the group, the others
    went on). A member whose folder already holds its finished result is not trained.

    Args:
        cfgs: the members' validated configs (at least one).
        out_dirs: one run folder per member.
        splits: data to use instead of loading the shared ``cfg.data`` (tests).
        fail_after_batches: testing hook: ``KeyboardInterrupt`` after this many batches.
    """

    def __init__(
        self,
        cfgs: Sequence[ExperimentConfig],
        out_dirs: Sequence[str | Path],
        splits: DataSplits | None = None,
        fail_after_batches: int | None = None,
    ) -> None:
        if not cfgs or len(cfgs) != len(out_dirs):
            raise ValueError(
                f"a fused group needs one run folder per config (at least one); "
                f"got {len(cfgs)} configs and {len(out_dirs)} folders"
            )
        super().__init__(cfgs[0], out_dirs[0], splits, fail_after_batches)
        self.cfgs = [with_resolved_loss(c) for c in cfgs]
        self.out_dirs = [Path(d) for d in out_dirs]
        if len(set(self.out_dirs)) != len(self.out_dirs):
            raise ValueError("the runs of a fused group need distinct folders")
        _check_group(self.cfgs)
        self.names = [c.name for c in self.cfgs]
        self.outcome: list[dict[str, Any] | BaseException | None] = [None] * len(cfgs)

    def fit_all(self) -> list[dict[str, Any] | BaseException]:
        """Train the group; one result or exception per member (see the class)."""
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError("fused runs train in one process; run them without torchrun")
        for d in self.out_dirs:
            check_run_folder(d)
        self.dist = DistInfo(0, 1, 0, resolve_device(self.cfg.train.device))
        try:
            with contextlib.ExitStack() as stack:
                for d in self.out_dirs:
                    stack.enter_context(folder_lock(d))
                self._fit_group()
        except KeyboardInterrupt:
            raise KeyboardInterrupt(self._resume_note()) from None
        return [o if o is not None else RuntimeError("not trained") for o in self.outcome]

    def _resume_note(self) -> str:
        where = f"{len(self.out_dirs)} fused runs (first {str(self.out_dirs[0])!r})"
        if self._saved_epoch is not None:
            return (
                f"{where} stopped; their checkpoints of epoch {self._saved_epoch} are kept "
                "and the same command resumes them from there"
            )
        return f"{where} stopped before their first checkpoint; the same command starts over"

    # ------------------------------------------------------------------ set-up

    def _fit_group(self) -> None:
        todo = []
        for i, (cfg, d) in enumerate(zip(self.cfgs, self.out_dirs, strict=True)):
            self.cfg, self.out_dir = cfg, d
            finished = self._check_out_dir()
            if finished is not None:
                self.outcome[i] = finished
            else:
                todo.append(i)
        if not todo:
            return
        self.cfg, self.out_dir = self.cfgs[todo[0]], self.out_dirs[todo[0]]
        _settle_checkpoints([self.out_dirs[i] / "checkpoint.pt" for i in todo])
        group, index = self._setup_group(todo)
        self._train(group, index)

    def _setup_group(self, todo: list[int]) -> tuple[_Group, list[int]]:
        """Data once; each member's model (from the same RNG state, as its unfused run
        would build it), loss, folder config and checkpoint; the stacked model and SGD."""
        info = self.dist
        assert info is not None
        fresh = [i for i in todo if not (self.out_dirs[i] / "checkpoint.pt").exists()]
        self.out_dir = self.out_dirs[fresh[0] if fresh else todo[0]]  # pretrained: if any is fresh
        splits, pretrained = self._prepare()
        rng = get_rng_state()
        models, members = [], []
        for i in todo:
            set_rng_state(rng)
            cfg = self.cfgs[i]
            models.append(_build_model(cfg, splits.num_classes, pretrained, info.device, False))
            loss_fn = build_run_loss(cfg, splits).to(info.device)
            members.append(_Member(cfg, self.out_dirs[i], loss_fn, RunLog()))
            self.out_dirs[i].mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.out_dirs[i] / "config.json", config_to_dict(cfg))
        model = FusedModel(models)
        opt = StackedSGD(model.params, [m.cfg for m in members], model.base)
        group = _Group(splits, members, model, opt)
        self._restore_group(group)
        if self.cfg.train.compile != "off":
            model.compile(None if self.cfg.train.compile == "default" else self.cfg.train.compile)
        return group, list(todo)

    def _restore_group(self, group: _Group) -> None:
        """Load each member's checkpoint (all of the same epoch) and the RNG state."""
        states: list[dict[str, Any] | None] = []
        for k, m in enumerate(group.members):
            if not m.ckpt_path.exists():
                states.append(None)
                continue
            state = load_checkpoint(m.ckpt_path)
            try:
                group.model.load_member_state(k, state["model"])
                group.opt.load_member_state(k, state["optimizer"])
                m.loss_fn.load_state_dict(state["loss"])
                m.log = RunLog.from_checkpoint(state)
            except (KeyError, TypeError, ValueError, RuntimeError) as err:
                reason = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
                raise CheckpointError(
                    f"checkpoint {str(m.ckpt_path)!r} does not fit this run ({reason[:200]}); "
                    "deleting it restarts the run from scratch"
                ) from None
            states.append(state)
        epochs = {m.log.start_epoch for m in group.members}
        if len(epochs) > 1:
            raise ValueError(
                f"the fused runs resume from different epochs {sorted(epochs)} "
                f"({[str(m.out_dir) for m in group.members]}); run them unfused"
            )
        saved = next((s for s in states if s is not None), None)
        if saved is not None:
            set_rng_state(saved["rng"])
            self._saved_epoch = group.members[0].log.start_epoch

    # ------------------------------------------------------------------ training

    def _train(self, group: _Group, index: list[int]) -> None:
        """Every epoch left: train, validate, record and checkpoint each member; then test."""
        cfg = self.cfg
        for epoch in range(group.members[0].log.start_epoch, cfg.train.epochs):
            t0 = time.perf_counter()
            losses = self._train_epoch_fused(group, index, epoch)
            t1 = time.perf_counter()
            vals = self._validate_group(group, epoch)
            seconds = (t1 - t0, time.perf_counter() - t1)
            for k, m in enumerate(group.members):
                val, weights = vals[k]
                record = epoch_record(
                    m.cfg,
                    epoch,
                    m.log.step,
                    m.cfg.optim.lr * lr_factor(m.cfg, epoch),
                    losses[k],
                    seconds,
                    val,
                    weights,
                    m.loss_fn,
                    None,
                    group.splits.num_classes,
                )
                m.log.close_epoch(
                    record,
                    val,
                    m.cfg.train.select_metric,
                    functools.partial(group.model.member_state, k),
                )
                if m.cfg.train.progress:
                    print(progress_line(m.cfg, record), flush=True)
            if checkpoint_due(cfg, epoch):
                self._save_group(group, epoch)
            if not group.members:
                return
        self._finish_group(group, index)

    def _train_epoch_fused(self, group: _Group, index: list[int], epoch: int) -> list[Tensor]:
        """One pass over the shared batches; each member's batch losses ``(batches,)``.

        The losses are checked as an unfused run checks them; a member whose loss became
        NaN/inf leaves the group then (:meth:`_drop_nonfinite`). Until that check its
        non-finite losses are left out of the backward (the others' gradients never mix
        with its own: each member's slice of the stacked tensors has its own graph).
        """
        info = self.dist
        assert info is not None
        group.opt.set_lr([m.cfg.optim.lr * lr_factor(m.cfg, epoch) for m in group.members])
        for m in group.members:
            if wants_epoch(m.loss_fn):
                cast(Any, m.loss_fn).set_epoch(epoch)
        batches, n_total = self._epoch_batches(group.splits, epoch, None)
        group.model.train()
        losses = torch.zeros(len(group.members), n_total, device=info.device)
        checked, check_every, b = 0, _finite_check_every(info.device), -1
        for b, (x, y) in enumerate(batches):
            group.model.zero_grad()
            logits = group.model(x)  # (K, B, C)
            per_member = torch.stack([m.loss_fn(logits[k], y) for k, m in enumerate(group.members)])
            losses[:, b] = per_member.detach()
            cast(Any, torch.where(torch.isfinite(per_member), per_member, 0.0).sum()).backward()
            group.opt.step()
            for m in group.members:
                m.log.step += 1
            self._count_batch()
            if (b + 1) % check_every == 0:  # and at the end of the epoch (below)
                losses = self._drop_nonfinite(group, index, losses, checked, b + 1, epoch)
                checked = b + 1
                if not group.members:
                    return []
            self._update_mid_epoch(group)
        losses = self._drop_nonfinite(group, index, losses, checked, b + 1, epoch)
        return list(losses[:, : b + 1])

    def _drop_nonfinite(
        self, group: _Group, index: list[int], losses: Tensor, start: int, stop: int, epoch: int
    ) -> Tensor:
        """Members whose ``losses[k, start:stop]`` hold a NaN/inf leave the group with the
        :class:`NonFiniteLossError` an unfused run would raise; returns the others' rows."""
        keep = []
        for k, m in enumerate(group.members):
            try:
                _check_finite(losses[k], start, stop, epoch, m.ckpt_path)
                keep.append(k)
            except NonFiniteLossError as err:
                err.add_note(traceback.format_exc())
                self.outcome[index[k]] = err
        if len(keep) == len(group.members):
            return losses
        group.members = [group.members[k] for k in keep]
        index[:] = [index[k] for k in keep]
        if keep:
            group.model.keep(keep)
            group.opt.keep(keep, group.model.params)
        return losses[keep]

    def _update_mid_epoch(self, group: _Group) -> None:
        """The CDB weights' update every ``train.weight_update_every`` steps (one fused pass)."""
        step = group.members[0].log.step
        due = [k for k, m in enumerate(group.members) if update_due(m.cfg, step, m.loss_fn)]
        if not due:
            return
        trackers = self._evaluate_group(group, group.splits.val)
        for k in due:
            cast(Any, group.members[k].loss_fn).update_weights(trackers[k][1])
        group.model.train()

    def _evaluate_group(self, group: _Group, dataset: Any) -> list[tuple[dict[str, Any], Any]]:
        """One fused pass over ``dataset``: each member's summary and tracker."""
        group.model.eval()
        splits = group.splits
        cms = self._eval_counts(group.model, dataset, splits.num_classes, len(group.members))
        return [
            self._summary(cm, splits.class_counts, m.cfg.train.num_majority)
            for m, cm in zip(group.members, cms, strict=True)
        ]

    def _validate_group(
        self, group: _Group, epoch: int
    ) -> list[tuple[dict[str, Any] | None, Tensor | None]]:
        """Each member's validation summary after ``epoch`` (``None`` when its unfused run
        would not validate then) and its class weights after learning from it."""
        due = [validation_due(m.cfg, epoch, m.loss_fn, None) for m in group.members]
        passes = self._evaluate_group(group, group.splits.val) if any(due) else []
        out: list[tuple[dict[str, Any] | None, Tensor | None]] = []
        for k, m in enumerate(group.members):
            weights = getattr(m.loss_fn, "weight", None)
            if not due[k]:
                out.append((None, weights))
                continue
            val, tracker = passes[k]
            out.append((val, learn_from_validation(m.loss_fn, None, tracker, weights)))
        return out

    # ------------------------------------------------------------------ files

    def _save_group(self, group: _Group, epoch: int) -> None:
        """Every member's checkpoint of ``epoch`` and ``metrics.jsonl``, in two phases:
        all ``checkpoint.pt.next`` first, then each renamed over ``checkpoint.pt``; a stop
        signal waits for the whole save (the members' files stay at one epoch)."""
        with signals_deferred():
            self._save_members(group, epoch)
        self._saved_epoch = epoch + 1

    def _save_members(self, group: _Group, epoch: int) -> None:
        paths = []
        for k, m in enumerate(group.members):
            state = m.log.checkpoint(
                epoch,
                model=group.model.member_state(k),
                optimizer=group.opt.member_state(k),
                loss=m.loss_fn.state_dict(),
                meta=None,
                sampler=None,
            )
            path = m.ckpt_path.with_name(m.ckpt_path.name + NEXT_SUFFIX)
            save_checkpoint(path, state)
            paths.append(path)
        for path, m in zip(paths, group.members, strict=True):
            os.replace(path, m.ckpt_path)
            write_metrics(m.out_dir, m.log.history)

    def _finish_group(self, group: _Group, index: list[int]) -> None:
        """Test each member's last model, and its best one where it selects by validation;
        write each ``result.json`` (with ``fused_with``)."""
        splits = group.splits
        tests = self._evaluate_group(group, splits.test)
        best = [
            k
            for k, m in enumerate(group.members)
            if m.cfg.train.select == "best" and m.log.best["state"] is not None
        ]
        for k in best:
            group.model.load_member_state(k, group.members[k].log.best["state"])
        tests_best = self._evaluate_group(group, splits.test) if best else []
        for k, m in enumerate(group.members):
            test_best = tests_best[k][0] if k in best else None
            result = run_result(m.cfg, splits, 1, m.log, tests[k][0], test_best)
            result["fused_with"] = [n for n in self.names if n != m.cfg.name]
            atomic_write_json(m.out_dir / "result.json", result)
            self.outcome[index[k]] = result


def _check_group(cfgs: list[ExperimentConfig]) -> None:
    """Refuse members that cannot train together, naming the first run and key at fault."""
    for cfg in cfgs:
        why = why_not_fusable(cfg)
        if why is not None:
            raise ValueError(f"run {cfg.name!r} cannot be fused: {why}")
    first = flatten_keys(json.loads(fuse_key(cfgs[0])))
    for cfg in cfgs[1:]:
        mine = flatten_keys(json.loads(fuse_key(cfg)))
        diff = sorted(k for k in set(first) | set(mine) if first.get(k) != mine.get(k))
        if diff:
            raise ValueError(
                f"runs {cfgs[0].name!r} and {cfg.name!r} cannot be fused: they differ in "
                f"{diff[:5]}; fused runs may differ only in {list(MEMBER_KEYS)}"
            )


def _settle_checkpoints(paths: list[Path]) -> None:
    """Finish or undo a group's interrupted checkpoint write (see the module): with every
    ``.next`` present they replace the checkpoints, otherwise they are removed."""
    nexts = [p.with_name(p.name + NEXT_SUFFIX) for p in paths]
    present = [n.exists() for n in nexts]
    for path, nxt, there in zip(paths, nexts, present, strict=True):
        if there and all(present):
            os.replace(nxt, path)
        elif there:
            nxt.unlink()
