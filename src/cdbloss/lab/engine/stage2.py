"""The second stage of the decoupled and two-stage baselines, started from a finished run.

A stage-2 run's config is its stage-1 run's config plus a ``stage2`` section
(:class:`~cdbloss.lab.engine.config.Stage2Config`): the top level says how the model in
``stage2.init_from`` was trained (checked against that folder's ``config.json`` before
any work), ``stage2`` what happens next. The methods:

========================  ==============================================================
``crt``                   classifier re-training (Kang et al., ICLR 2020): the backbone
                          frozen (parameters and batch-norm statistics), the classifier
                          re-initialised and re-learnt with class-balanced sampling
``lws``                   learnable weight scaling (Kang et al.): only one factor per
                          class on the logits learnt (:class:`~cdbloss.ClassScale`),
                          class-balanced sampling
``wb``                    weight balancing's stage 2 (Alshammari et al., CVPR 2022): the
                          model fine-tuned with a class-balanced loss, weight decay and
                          MaxNorm on the classifier's rows (:class:`~cdbloss.MaxNorm`)
``tau-norm``              no training: rows ``w_c / ||w_c|| ** tau`` (bias kept)
``logit-adjust``          no training: logits ``z - tau log pi`` (Menon et al., ICLR 2021)
========================  ==============================================================

The trained methods run the engine's usual loop on :func:`training_config` (own
schedule, checkpoint after every epoch, resume after a kill); the post-hoc ones
evaluate the stage-1 model on the validation split for every tau of ``stage2.taus``,
keep the best and test it once. No choice is made on the test split.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cdbloss.decoupled import ClassScale, MaxNorm, posthoc_logit_adjust, tau_normalize
from cdbloss.lab.engine.checkpoint import load_checkpoint, read_json
from cdbloss.lab.engine.config import (
    POSTHOC_METHODS,
    ExperimentConfig,
    LossConfig,
    OptimConfig,
    Stage2Config,
)

__all__ = [
    "Stage1Error",
    "Stage2Model",
    "check_stage1_run",
    "is_posthoc",
    "is_stage2",
    "posthoc_model",
    "prepare_model",
    "stage1_config",
    "stage1_model_state",
    "training_config",
]


class Stage1Error(ValueError):
    """The stage-1 run a stage-2 config names is missing, unfinished or another experiment."""


def is_stage2(cfg: ExperimentConfig) -> bool:
    """Whether ``cfg`` is a second stage (``stage2.method`` other than ``none``)."""
    return cfg.stage2.method != "none"


def is_posthoc(cfg: ExperimentConfig) -> bool:
    """Whether ``cfg``'s second stage trains nothing (``tau-norm``, ``logit-adjust``)."""
    return cfg.stage2.method in POSTHOC_METHODS


def stage1_config(cfg: ExperimentConfig) -> ExperimentConfig:
    """The stage-1 run's config: ``cfg`` without its ``stage2`` section."""
    return dataclasses.replace(cfg, stage2=Stage2Config())


def check_stage1_run(
    cfg: ExperimentConfig, differences: Callable[[Path, ExperimentConfig], list[str]]
) -> Path:
    """The stage-1 run folder of ``cfg``, after checking that it can start stage 2.

    ``differences(folder, config)`` lists the config keys in which a run folder's saved
    config differs from ``config`` (the engine's
    :func:`~cdbloss.lab.engine.trainer.experiment_differences`; passed in, so this module
    does not import the trainer that imports it).

    Raises:
        Stage1Error: ``stage2.init_from`` unset, the folder missing, its run not
            finished (no ``result.json`` saying done, or no ``checkpoint.pt``), or its
            saved config differing from ``cfg`` without ``stage2`` (the keys named).
    """
    where = cfg.stage2.init_from
    if where is None:
        raise Stage1Error(
            f"stage2.method {cfg.stage2.method!r} starts from a finished run: set "
            "stage2.init_from to its run folder (a sweep fills it in from its own grid)"
        )
    folder = Path(where)
    if not folder.is_dir():
        raise Stage1Error(f"stage2.init_from {where!r}: no such run folder")
    result_path = folder / "result.json"
    status = (
        read_json(result_path, "the stage-1 result").get("status") if result_path.exists() else None
    )
    if status != "done":
        raise Stage1Error(
            f"stage2.init_from {where!r}: the stage-1 run has not finished (no result.json "
            "with status done); finish it first (the same train or sweep command resumes it)"
        )
    if not (folder / "checkpoint.pt").exists():
        raise Stage1Error(
            f"stage2.init_from {where!r}: the run finished but its checkpoint.pt is gone; "
            "stage 2 needs the stage-1 model (rerun stage 1 into a fresh folder)"
        )
    if not (folder / "config.json").exists():
        raise Stage1Error(f"stage2.init_from {where!r}: no config.json in the run folder")
    diff = differences(folder, stage1_config(cfg))
    diff = [k for k in diff if k != "name"]
    if diff:
        raise Stage1Error(
            f"stage2.init_from {where!r} was trained with another config (it differs in "
            f"{diff}); a stage-2 config is its stage-1 config plus the stage2 section"
        )
    return folder


def stage1_model_state(folder: Path) -> dict[str, Tensor]:
    """The model that gave the stage-1 run's test result: the best one on validation
    when it ran with ``train.select: best``, else the last epoch's."""
    state = load_checkpoint(folder / "checkpoint.pt")
    config = read_json(folder / "config.json", "the stage-1 config")
    best = state.get("best") or {}
    if config.get("train", {}).get("select") == "best" and best.get("state") is not None:
        return dict(best["state"])
    return dict(state["model"])


def _default_loss(method: str) -> LossConfig:
    return LossConfig(name="cb-ce") if method == "wb" else LossConfig(name="ce")


def training_config(cfg: ExperimentConfig) -> ExperimentConfig:
    """The config the engine's loop trains stage 2 with: stage 2's loss, SGD settings,
    schedule, epochs, batch size, sampler and selection in place of stage 1's."""
    s = cfg.stage2
    sampler = s.sampler
    if sampler == "auto":
        sampler = "uniform" if s.method == "wb" else "class-balanced"
    loss = copy.deepcopy(s.loss) if s.loss is not None else _default_loss(s.method)
    optim = OptimConfig(
        lr=cfg.optim.lr if s.lr is None else s.lr,
        momentum=s.momentum,
        weight_decay=cfg.optim.weight_decay if s.weight_decay is None else s.weight_decay,
        schedule=s.schedule,
        milestones=[],
        warmup_epochs=0,
    )
    train = dataclasses.replace(
        cfg.train,
        epochs=s.epochs,
        batch_size=cfg.train.batch_size if s.batch_size is None else s.batch_size,
        sampler=sampler,
        sampler_options={},
        select=s.select,
        val_every=1,
        checkpoint_every=1,
        compile="off",
    )
    return dataclasses.replace(cfg, loss=loss, optim=optim, train=train)


def _classifier(model: nn.Module) -> tuple[str, nn.Module]:
    from cdbloss.lab.models.pretrained import classifier_name

    name = classifier_name(model)
    return name, model.get_submodule(name)


class Stage2Model(nn.Module):
    """A stage-1 model with what stage 2 adds and freezes.

    ``net`` is the stage-1 model; ``scale`` the LWS factors (``None`` otherwise). With
    ``frozen_backbone``, ``train()`` keeps every module of ``net`` outside the
    classifier in eval mode, so batch-norm statistics and dropout stay as stage 1 left
    them (a frozen backbone computes the same features every epoch).

    Shape:
        - Input: what ``net`` takes.
        - Output: logits ``(N, C)``.
    """

    def __init__(
        self, net: nn.Module, head_name: str, scale: ClassScale | None, frozen_backbone: bool
    ) -> None:
        super().__init__()
        self.net = net
        self.scale = scale
        self.head_name = head_name
        self.frozen_backbone = frozen_backbone

    def train(self, mode: bool = True) -> Stage2Model:
        super().train(mode)
        if self.frozen_backbone:
            self.net.eval()
            if self.scale is None:  # cRT (or wb on the head): the classifier learns
                self.net.get_submodule(self.head_name).train(mode)
        return self

    def forward(self, x: Tensor) -> Tensor:
        logits: Tensor = self.net(x)
        return logits if self.scale is None else self.scale(logits)


def _reinit(head: nn.Module, head_name: str) -> None:
    reset = getattr(head, "reset_parameters", None)
    if callable(reset):
        reset()
        return
    weight = getattr(head, "weight", None)
    if isinstance(weight, Tensor) and weight.dim() == 2:  # the cosine head: random unit rows
        with torch.no_grad():
            weight.uniform_(-1.0, 1.0)
            weight.div_(weight.norm(dim=1, keepdim=True).clamp_min(1e-12))
        return
    raise ValueError(f"stage2.method 'crt': cannot re-initialise the classifier {head_name!r}")


def prepare_model(
    cfg: ExperimentConfig, net: nn.Module, state: dict[str, Tensor] | None
) -> tuple[Stage2Model, Callable[[], None] | None]:
    """The stage-2 model around ``net`` (loaded from ``state``, the stage-1 model, when
    given; a resumed run loads its own checkpoint afterwards) and the step to call after
    every optimiser step (MaxNorm; ``None`` without ``stage2.max_norm``).

    Parameters that stage 2 does not learn get ``requires_grad = False``.
    """
    s = cfg.stage2
    if state is not None:
        net.load_state_dict(state)
    head_name, head = _classifier(net)
    scale = None
    trainable: str = s.trainable  # auto | head | all, or none (LWS: the scales only)
    if s.method == "crt":
        _reinit(head, head_name)
        trainable = "head"
    elif s.method == "lws":
        logits_width = getattr(head, "out_features", None)
        if not isinstance(logits_width, int):
            raise ValueError(
                f"stage2.method 'lws': the classifier {head_name!r} has no out_features"
            )
        scale = ClassScale(logits_width).to(next(net.parameters()).device)
        trainable = "none"
    elif trainable == "auto":  # wb
        trainable = "all"
    for name, p in net.named_parameters():
        learn = trainable == "all" or (trainable == "head" and name.startswith(head_name + "."))
        p.requires_grad_(learn)
    model = Stage2Model(net, head_name, scale, frozen_backbone=trainable != "all")
    after_step = None
    if s.max_norm is not None:
        weight = getattr(head, "weight", None)
        if not isinstance(weight, Tensor):
            raise ValueError(f"stage2.max_norm: the classifier {head_name!r} has no weight")
        after_step = MaxNorm([weight], s.max_norm).step
    return model, after_step


class _Adjusted(nn.Module):
    """``net``'s logits minus ``tau log pi`` (:func:`~cdbloss.posthoc_logit_adjust`)."""

    def __init__(self, net: nn.Module, class_counts: list[int], tau: float) -> None:
        super().__init__()
        self.net, self.class_counts, self.tau = net, class_counts, tau

    def forward(self, x: Tensor) -> Tensor:
        return posthoc_logit_adjust(self.net(x), self.class_counts, self.tau)


def posthoc_model(method: str, net: nn.Module, tau: float, class_counts: list[int]) -> nn.Module:
    """The stage-1 model ``net`` re-balanced post hoc with ``tau`` (``net`` not changed):
    ``tau-norm`` a copy with rows ``w_c / ||w_c|| ** tau``, ``logit-adjust`` a wrapper
    subtracting ``tau log pi`` from the logits."""
    if method == "logit-adjust":
        return _Adjusted(net, class_counts, tau)
    if method != "tau-norm":
        raise ValueError(f"unknown post-hoc method {method!r}; known: {list(POSTHOC_METHODS)}")
    out = copy.deepcopy(net)
    head_name, head = _classifier(out)
    weight = getattr(head, "weight", None)
    if not isinstance(weight, Tensor):
        raise ValueError(f"stage2.method 'tau-norm': the classifier {head_name!r} has no weight")
    with torch.no_grad():
        weight.copy_(tau_normalize(weight, tau))
    return out


def posthoc_choice(grid: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """The grid point with the highest validation ``metric`` (the smallest tau on a tie)."""
    key = f"val_{metric}"
    return max(grid, key=lambda g: (g[key], -g["tau"]))
