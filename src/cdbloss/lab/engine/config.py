"""Typed experiment configs: dataclasses, loaded from YAML or JSON, validated on load.

A config file mirrors :class:`ExperimentConfig`::

    name: mnist-4v9-cdb
    seed: 0
    data: {protocol: mnist-4v9, options: {ratio: 0.995}}
    model: {name: lenet5}
    loss: {name: cdb-ce, options: {tau: dynamic}}
    optim: {lr: 0.001, momentum: 0.9, weight_decay: 0.0005, milestones: [60], gamma: 0.1}
    train: {epochs: 80, batch_size: 100}
    sweep: {loss.name: [ce, cdb-ce], seed: [0, 1, 2]}

Unknown keys, wrong types, unknown loss/model/protocol names and data options
that the protocol does not take (:func:`cdbloss.lab.data.base.check_protocol_options`)
are errors that name the key, raised before any data is read. Command-line overrides use
dotted keys: ``optim.lr=0.01 loss.options.tau=1.5``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

__all__ = [
    "VOLATILE_KEYS",
    "ConfigError",
    "DataConfig",
    "ExperimentConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "Stage2Config",
    "TrainConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "parse_override",
]


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the key or file,
    what was expected and what came (one line, no traceback on the command line)."""


@dataclass
class DataConfig:
    """Which data protocol and its options (see ``cdbloss data info``)."""

    protocol: str = "mnist-4v9"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    """Which model and its options, and where its starting weights come from.

    Attributes:
        name: a registered model (``cdbloss.lab.models.MODELS``) or ``torchvision.<arch>``.
        options: the factory's keyword options.
        pretrained: a local state-dict file to start from (``None``: the model's own
            initialisation). Read with ``torch.load(weights_only=True)``; the key layouts
            of public checkpoints are mapped (:mod:`cdbloss.lab.models.pretrained`). Read
            before the data, so a missing or unreadable file stops the run at once; a
            resumed run takes its weights from its checkpoint instead.
        reinit_head: keep the classifier freshly initialised instead of loading it
            (needed when the file's class count differs, e.g. Kinetics' 400 classes
            for EGTEA's 19).
    """

    name: str = "lenet5"
    options: dict[str, Any] = field(default_factory=dict)
    pretrained: str | None = None
    reinit_head: bool = False


#: Keys written into a saved config only when they differ from their default, so the
#: configs of runs made before the keys existed compare equal to today's.
_OMITTED_AT_DEFAULT: dict[tuple[str, str], Any] = {
    ("model", "pretrained"): None,
    ("model", "reinit_head"): False,
}


@dataclass
class LossConfig:
    """Which registered loss (``cdbloss.LOSSES``) and its options."""

    name: str = "ce"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """SGD with momentum and the paper's learning-rate schedules.

    The schedule is a factor on ``lr`` per epoch ``e`` (counted from 0):
    ``multistep``: ``gamma ** #(milestones <= e)``; ``cosine``:
    ``0.5 (1 + cos(pi e / epochs))``; ``constant``: 1. With ``warmup_epochs = k``
    the factor is multiplied by ``(e + 1) / k`` while ``e < k`` (linear warm-up).
    ``no_weight_decay`` names parameters (as ``model.named_parameters()`` does,
    e.g. ``linear.bias``) trained without weight decay (the CDB authors' CIFAR
    code exempts the classifier bias).
    """

    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: Literal["multistep", "cosine", "constant"] = "multistep"
    milestones: list[float] = field(default_factory=list)
    gamma: float = 0.1
    warmup_epochs: int = 0
    no_weight_decay: list[str] = field(default_factory=list)


#: Config keys (dotted) that change how a run executes but not what it computes: they
#: may differ between a run and its resumption, and never split a report's rows.
VOLATILE_KEYS = frozenset(
    {
        "train.progress",
        "train.device",
        "train.threads",
        "train.tensorboard",
        "train.transform_on_device",
        "train.compile",
    }
)


@dataclass
class TrainConfig:
    """The training loop.

    Attributes:
        epochs: passes over the training set.
        batch_size: global batch size (split evenly over DDP ranks).
        eval_batch_size: batch size of validation and test passes.
        num_workers: DataLoader workers; 0 uses the in-memory fast path when
            the dataset offers ``get_batch``.
        weight_update_every: 0 updates the CDB weights once per epoch (after
            the validation pass); ``k > 0`` also every ``k`` iterations.
        method: ``standard``, or ``l2rw`` / ``mwn`` (meta re-weighting steps).
        val_batch_size: validation batch of the meta steps (``l2rw``/``mwn``).
        select: report test metrics of the ``last`` epoch's model or of the
            ``best`` one on validation (``select_metric``).
        select_metric: a key of the validation summary (e.g. ``top1_accuracy``).
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda``, ``cuda:1``...
        threads: torch intra-op threads on CPU (0 = torch's default).
        progress: progress bars on the console.
        tensorboard: also write TensorBoard scalars (needs ``tensorboard``).
        num_majority: majority classes for the majority/minority report (EGTEA: 5).
        val_every: validate after every ``k``-th epoch and after the last one.
            Losses that learn from validation (CDB) and ``select: best`` are
            validated after every epoch regardless; ``k > 1`` saves the pass for
            the others (CE, focal...), where it only feeds the history.
        checkpoint_every: write the checkpoint (and ``metrics.jsonl``) after
            every ``k``-th epoch and the last one; a resumed run repeats at most
            ``k - 1`` epochs, with the same result (the RNG state is saved).
        channels_last: train image models in ``torch.channels_last`` memory
            format (faster convolutions on CPU with oneDNN; same model, results
            equal up to floating-point summation order).
        transform_on_device: off the CPU, copy each in-memory batch to the
            device as stored (uint8 images) and run the dataset's transform
            there (CIFAR's crop, flip and normalisation become a few GPU kernels
            instead of CPU work in every step). The random draws stay on the
            CPU, so the batches are the same. Needs ``num_workers: 0`` and
            datasets whose ``get_batch`` takes ``device`` (the built-in ones);
            no effect on the CPU.
        sampler: ``uniform`` (each epoch a random permutation of the training
            set), ``cdb`` (CDB-S, :class:`~cdbloss.CDBSampler`: classes drawn
            with probabilities that follow the CDB weights, updated from each
            validation pass) or ``class-balanced`` (each draw a class uniformly,
            then one of its examples, with replacement; an epoch is as many draws as
            the training set has examples: :func:`~cdbloss.class_balanced_indices`).
        sampler_options: the CDB-S weighting's settings
            (:class:`~cdbloss.CDBWeighting`: ``tau``, ``momentum``, ...).
        compile: ``off``, or a ``torch.compile`` mode for the training forward
            and backward: ``default``, ``reduce-overhead`` (CUDA graphs: one
            launch replays a whole step, for small models whose step the CPU's
            kernel launches bound), ``max-autotune``. The first steps wait for
            the compiler; results equal uncompiled ones up to floating-point
            rounding. Standard training only (not ``l2rw``/``mwn``).
    """

    epochs: int = 1
    batch_size: int = 128
    eval_batch_size: int = 1000
    num_workers: int = 0
    weight_update_every: int = 0
    method: Literal["standard", "l2rw", "mwn"] = "standard"
    val_batch_size: int = 100
    select: Literal["last", "best"] = "last"
    select_metric: str = "top1_accuracy"
    device: str = "auto"
    threads: int = 0
    progress: bool = True
    tensorboard: bool = False
    num_majority: int | None = None
    val_every: int = 1
    checkpoint_every: int = 1
    channels_last: bool = False
    transform_on_device: bool = False
    compile: Literal["off", "default", "reduce-overhead", "max-autotune"] = "off"
    sampler: Literal["uniform", "cdb", "class-balanced"] = "uniform"
    sampler_options: dict[str, Any] = field(default_factory=dict)


#: The stage-2 methods that train (:mod:`cdbloss.lab.engine.stage2`) and those evaluated
#: post hoc from the stage-1 model, with tau chosen on validation.
TRAINED_METHODS = ("crt", "lws", "wb")
POSTHOC_METHODS = ("tau-norm", "logit-adjust")


def _default_taus() -> list[float]:
    return [round(0.1 * i, 1) for i in range(21)]  # 0, 0.1, ..., 2.0


@dataclass
class Stage2Config:
    """A second stage started from a finished run's model (:mod:`cdbloss.lab.engine.stage2`).

    The rest of the config describes stage 1: it must equal the config of the run in
    ``init_from`` (data, model, loss, schedule, seed), which is checked before any work.
    The keys here describe stage 2 only.

    Attributes:
        method: ``none`` (a plain one-stage run), or
            ``crt``: classifier re-training (Kang et al. 2020): backbone frozen (also its
            batch-norm statistics), the classifier re-initialised and re-learnt;
            ``lws``: learnable weight scaling: everything frozen but one factor per
            class on the logits (:class:`~cdbloss.ClassScale`);
            ``wb``: weight balancing's stage 2 (Alshammari et al. 2022): the model
            (``trainable``) fine-tuned with a class-balanced loss, weight decay and
            MaxNorm on the classifier's rows;
            ``tau-norm``: no training; classifier rows ``w_c / ||w_c|| ** tau``;
            ``logit-adjust``: no training; logits ``z - tau log pi``. The two
            post-hoc methods try every tau of ``taus`` on the validation split and
            test the chosen one once.
        init_from: the finished stage-1 run's folder (its ``checkpoint.pt`` and
            ``result.json``). In a sweep it may be left out: the sweep fills in the grid
            point whose config equals this one without ``stage2``.
        epochs: stage-2 epochs (``crt``, ``lws``, ``wb``).
        lr: stage-2 learning rate (``null``: stage 1's ``optim.lr``).
        momentum: SGD momentum.
        weight_decay: stage-2 weight decay (``null``: stage 1's ``optim.weight_decay``).
        schedule: ``cosine`` (over the stage-2 epochs) or ``constant``.
        batch_size: stage-2 batch size (``null``: stage 1's ``train.batch_size``).
        sampler: ``auto`` (class-balanced for ``crt`` and ``lws``, uniform for
            ``wb``, whose loss balances the classes), ``uniform`` or ``class-balanced``.
        loss: the stage-2 loss (``null``: ``ce`` for ``crt`` and ``lws``, ``cb-ce``
            for ``wb``), as the ``loss`` section.
        max_norm: MaxNorm's threshold on each classifier row's norm, applied after
            every step (``null``: none; ``wb`` needs one).
        trainable: ``auto`` (what the method says: the head for ``crt``, the scales
            for ``lws``, ``all`` for ``wb``), ``head`` or ``all`` (``wb`` only).
        select: ``best``: the stage-2 epoch with the best validation
            ``train.select_metric`` is the final model (the stage-2 length chosen on
            validation); ``last``: the last epoch's. Only the final model is tested.
        taus: the grid the post-hoc methods choose tau from on validation.
    """

    method: Literal["none", "crt", "lws", "wb", "tau-norm", "logit-adjust"] = "none"
    init_from: str | None = None
    epochs: int = 10
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    schedule: Literal["cosine", "constant"] = "cosine"
    batch_size: int | None = None
    sampler: Literal["auto", "uniform", "class-balanced"] = "auto"
    loss: LossConfig | None = None
    max_norm: float | None = None
    trainable: Literal["auto", "head", "all"] = "auto"
    select: Literal["best", "last"] = "best"
    taus: list[float] = field(default_factory=_default_taus)


@dataclass
class ExperimentConfig:
    """One experiment: data, model, loss, optimiser, loop, seed, and an optional sweep grid.

    ``stage2`` (method ``none`` by default) makes the run a second stage started from a
    finished run's model (:class:`Stage2Config`). ``sweep`` maps dotted keys to lists of values; ``cdbloss sweep`` runs the
    cross product (``cdbloss train`` ignores it). Its key ``fuse: true`` trains the
    runs that can share a model's code and data stream as fused groups.
    """

    name: str = "experiment"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    stage2: Stage2Config = field(default_factory=Stage2Config)
    sweep: dict[str, Any] = field(default_factory=dict)  # key -> list; fuse -> bool


# --------------------------------------------------------------------------- checking


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted for floats."""
    origin = get_origin(tp)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"config key {key!r} must be one of {list(choices)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ValueError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"config key {key!r}: bad value {value!r}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(
                f"config key {key!r} must be a list, got {type(value).__name__} {value!r}"
            )
        (item,) = get_args(tp) or (Any,)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} must be a mapping, got {type(value).__name__}")
        for k in value:
            if not isinstance(k, str):
                raise ConfigError(f"config key {key!r}: keys must be strings, got {k!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"config key {key!r} must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {key!r} must be a string, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    raise TypeError(
        f"unsupported config annotation {_type_name(tp)} for {key!r}"
    )  # pragma: no cover


def _build(cls: Any, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        where = f"config section {prefix!r}" if prefix else "a config"
        raise ConfigError(f"{where} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(repr(k) if not isinstance(k, str) else k for k in set(raw) - fields)
    if unknown:
        name = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(f"unknown config key {name!r}; valid keys here: {sorted(fields)}")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in raw.items()}
    return cls(**kwargs)


def _check_semantics(cfg: ExperimentConfig) -> None:
    """Names and ranges, checked against the registries; errors list the known names."""
    from cdbloss.lab.data.base import PROTOCOLS, check_protocol_options
    from cdbloss.lab.models import MODELS, is_model_name
    from cdbloss.losses import LOSSES
    from cdbloss.losses.registry import check_loss_options

    if cfg.loss.name not in LOSSES:
        raise ConfigError(f"config key 'loss.name': {LOSSES.unknown(cfg.loss.name)}")
    if LOSSES[cfg.loss.name].task != "single-label":
        raise ConfigError(
            f"config key 'loss.name': {cfg.loss.name!r} is a multi-label loss (targets (N, C)); "
            "the trainer trains single-label runs, use cdbloss.lab.experiments.multilabel_study"
        )
    try:
        check_loss_options(cfg.loss.name, cfg.loss.options)
    except ValueError as err:
        raise ConfigError(f"config key 'loss.options': {err}") from None
    if not is_model_name(cfg.model.name):
        raise ConfigError(f"config key 'model.name': {MODELS.unknown(cfg.model.name)}")
    if cfg.model.reinit_head and cfg.model.pretrained is None:
        raise ConfigError(
            "config key 'model.reinit_head' re-initialises the classifier of a pretrained "
            "model; set model.pretrained: PATH too, or drop reinit_head"
        )
    if cfg.model.pretrained is not None and not cfg.model.pretrained.strip():
        raise ConfigError("config key 'model.pretrained' must be a file path or null, got ''")
    if cfg.data.protocol not in PROTOCOLS:
        raise ConfigError(f"config key 'data.protocol': {PROTOCOLS.unknown(cfg.data.protocol)}")
    try:
        check_protocol_options(cfg.data.protocol, cfg.data.options)
    except ValueError as err:
        raise ConfigError(f"config key 'data.options': {err}") from None
    t, o = cfg.train, cfg.optim
    for key, value, low in (
        ("train.epochs", t.epochs, 1),
        ("train.batch_size", t.batch_size, 1),
        ("train.eval_batch_size", t.eval_batch_size, 1),
        ("train.val_batch_size", t.val_batch_size, 1),
        ("train.num_workers", t.num_workers, 0),
        ("train.weight_update_every", t.weight_update_every, 0),
        ("train.threads", t.threads, 0),
        ("train.val_every", t.val_every, 1),
        ("train.checkpoint_every", t.checkpoint_every, 1),
        ("optim.warmup_epochs", o.warmup_epochs, 0),
    ):
        if value < low:
            raise ConfigError(f"config key {key!r} must be >= {low}, got {value}")
    if o.lr <= 0:
        raise ConfigError(f"config key 'optim.lr' must be > 0, got {o.lr}")
    if o.momentum < 0 or o.weight_decay < 0 or o.gamma <= 0:
        raise ConfigError(
            "config keys optim.momentum and optim.weight_decay must be >= 0, optim.gamma > 0"
        )
    _check_stage2(cfg)
    for key, values in cfg.sweep.items():
        if key == "launcher":  # where the runs train (cdbloss.lab.experiments.launch)
            continue
        if key == "fuse":  # a switch, not a grid axis (cdbloss.lab.experiments.sweep)
            if not isinstance(values, bool):
                raise ConfigError(f"config key 'sweep.fuse' must be true or false, got {values!r}")
        elif key == "variants":  # lists of override mappings, see cdbloss.lab.experiments.sweep
            for variant in values if isinstance(values, list) else []:
                for inner in variant if isinstance(variant, dict) else {}:
                    _split_key(cfg, inner)
        else:
            _split_key(cfg, key)  # raises for an unknown dotted key


def _check_stage2(cfg: ExperimentConfig) -> None:
    """The ``stage2`` section's ranges and combinations (the stage-1 run is checked when
    the run starts: :func:`cdbloss.lab.engine.stage2.check_stage1_run`)."""
    from cdbloss.losses import LOSSES

    s = cfg.stage2
    if s.method == "none":
        if s != Stage2Config():
            raise ConfigError(
                "config section 'stage2' sets keys but stage2.method is 'none'; set "
                f"stage2.method to one of {[*TRAINED_METHODS, *POSTHOC_METHODS]} or drop them"
            )
        return
    if cfg.train.method != "standard":
        raise ConfigError(
            f"config key 'stage2.method' ({s.method!r}) needs train.method 'standard', "
            f"got {cfg.train.method!r}"
        )
    if s.init_from is not None and not s.init_from.strip():
        raise ConfigError("config key 'stage2.init_from' must be a run folder or null, got ''")
    if s.epochs < 1:
        raise ConfigError(f"config key 'stage2.epochs' must be >= 1, got {s.epochs}")
    if s.batch_size is not None and s.batch_size < 1:
        raise ConfigError(f"config key 'stage2.batch_size' must be >= 1, got {s.batch_size}")
    if s.lr is not None and s.lr <= 0:
        raise ConfigError(f"config key 'stage2.lr' must be > 0, got {s.lr}")
    if s.momentum < 0 or (s.weight_decay is not None and s.weight_decay < 0):
        raise ConfigError("config keys stage2.momentum and stage2.weight_decay must be >= 0")
    if s.max_norm is not None and s.max_norm <= 0:
        raise ConfigError(f"config key 'stage2.max_norm' must be > 0, got {s.max_norm}")
    if s.max_norm is not None and s.method not in ("crt", "wb"):
        raise ConfigError(
            f"config key 'stage2.max_norm' bounds the classifier rows that 'crt' or 'wb' "
            f"learn; stage2.method {s.method!r} learns none"
        )
    if s.method == "wb" and s.max_norm is None:
        raise ConfigError(
            "config key 'stage2.max_norm': weight balancing (stage2.method 'wb') needs a "
            "MaxNorm threshold, e.g. stage2.max_norm: 1.0 (choose it on validation)"
        )
    if s.trainable != "auto" and s.method != "wb":
        raise ConfigError(
            f"config key 'stage2.trainable' chooses what 'wb' fine-tunes; stage2.method "
            f"{s.method!r} fixes it (crt: the classifier, lws: the scales); leave it 'auto'"
        )
    if s.loss is not None and s.loss.name not in LOSSES:
        raise ConfigError(f"config key 'stage2.loss.name': {LOSSES.unknown(s.loss.name)}")
    if s.method in POSTHOC_METHODS:
        if not s.taus or any(t < 0 for t in s.taus):
            raise ConfigError(
                f"config key 'stage2.taus' must be a non-empty list of numbers >= 0, got {s.taus}"
            )


# --------------------------------------------------------------------------- public


def flatten_keys(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping to dotted keys: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (empty mappings kept)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flatten_keys(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_from_dict(raw: dict[str, Any], check_names: bool = True) -> ExperimentConfig:
    """Build and validate an :class:`ExperimentConfig` from a plain mapping."""
    cfg: ExperimentConfig = _build(ExperimentConfig, raw, "")
    if check_names:
        _check_semantics(cfg)
    return cfg


def config_to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """The config as plain data (JSON/YAML serialisable); the keys of
    ``_OMITTED_AT_DEFAULT`` are left out while they hold their default, and so is
    ``stage2`` while it is all defaults (method ``none``)."""
    out = dataclasses.asdict(cfg)
    for (section, key), default in _OMITTED_AT_DEFAULT.items():
        if out[section].get(key, default) == default:
            out[section].pop(key, None)
    if cfg.stage2 == Stage2Config():  # a one-stage run: configs saved before stage2 existed
        out.pop("stage2")
    return out


#: YAML 1.2 floats that YAML 1.1 (PyYAML) reads as strings: ``1e-3``, ``5E4``, ``.5e-2``
#: (1.1 wants a dot and a signed exponent, ``1.0e-3``). The configs write the paper's values so.
_FLOAT_1_2 = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


@functools.lru_cache(maxsize=1)
def _yaml_loader() -> Any:
    """PyYAML's safe loader, reading YAML 1.2 exponent floats as numbers."""
    import yaml

    class Loader(yaml.SafeLoader):  # type: ignore[misc]  # the resolver is added to it alone
        pass

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_1_2, list("-+.0123456789"))
    return Loader


def load_yaml(text: str, what: str) -> Any:
    """Parse YAML ``text`` safely; a syntax error is one :class:`ConfigError` line naming
    ``what`` (a file or an override), the line and column, and the parser's complaint."""
    try:
        import yaml
    except ImportError as err:  # pragma: no cover - the experiments extra installs it
        raise RuntimeError(
            "YAML configs need PyYAML: pip install 'cdb-loss[lab]' (or use a .json config)"
        ) from err
    try:
        return yaml.load(text, Loader=_yaml_loader())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{what}: not valid YAML{where}: {problem}") from None


def _read_mapping(path: Path) -> dict[str, Any]:
    if path.is_dir():
        raise ConfigError(f"config file {str(path)!r} is a folder; expected a YAML or JSON file")
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"config file {str(path)!r} is not UTF-8 text (byte {err.start}); expected YAML or JSON"
        ) from None
    what = f"config file {str(path)!r}"
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(
                f"{what}: not valid JSON at line {err.lineno}, column {err.colno}: {err.msg}"
            ) from None
    else:
        data = load_yaml(text, what)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{what} must hold a mapping (key: value lines) at the top level, "
            f"got {type(data).__name__}"
        )
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """``"optim.lr=0.01"`` -> ``("optim.lr", 0.01)``; values are parsed as YAML scalars/lists.

    Example:
        >>> parse_override("optim.lr=1e-3")
        ('optim.lr', 0.001)
    """
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.path=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: expected a dotted key like optim.lr, got {key!r}")
    if not raw.strip():
        return key, ""
    try:
        value = load_yaml(raw, f"override {text!r}")
    except RuntimeError:  # pragma: no cover - no PyYAML: JSON values, else the text
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
    return key, value


def _split_key(cfg_or_raw: Any, key: str) -> list[str]:
    parts = key.split(".")
    if parts[:2] == ["sweep", "launcher"]:  # sweep.launcher.partition=gpu: a launcher option
        return parts
    if parts[0] == "sweep" and len(parts) > 2:
        # a grid key is itself dotted: sweep.data.options.ratio=[0.9] sets the grid key
        # "data.options.ratio" (checked against the config when the grid is built)
        return ["sweep", ".".join(parts[1:])]
    node: Any = (
        dataclasses.asdict(cfg_or_raw) if isinstance(cfg_or_raw, ExperimentConfig) else cfg_or_raw
    )
    for i, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
            continue
        parent = ".".join(parts[:i])
        # free-form option mappings accept any key
        if parent.endswith("options") or parent == "sweep":
            return parts
        raise ConfigError(
            f"unknown config key {key!r} (no {part!r} under {parent or 'the top level'!r})"
        )
    return parts


def apply_overrides(raw: dict[str, Any], overrides: list[tuple[str, Any]]) -> dict[str, Any]:
    """A copy of ``raw`` with dotted-key ``overrides`` applied (defaults filled in first)."""
    out = dataclasses.asdict(_build(ExperimentConfig, raw, ""))  # every key, defaults too
    out = copy.deepcopy(out)
    for key, value in overrides:
        parts = _split_key(out, key)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML/JSON config, apply ``key=value`` overrides, validate, return it."""
    raw = _read_mapping(Path(path))
    parsed = [parse_override(o) for o in overrides or []]
    return config_from_dict(apply_overrides(raw, parsed))
