"""The contract every data protocol returns, and the protocol registry.

A protocol registers itself when its module is imported
(``@register_protocol``). The registry :data:`PROTOCOLS` imports every module of
:data:`PROTOCOL_MODULES` before its first read, skipping only those not present
in this installation, so ``load_protocol(name)`` and ``cdbloss data info`` see
every protocol without importing its module by hand.

Example:
    >>> "mnist-4v9" in PROTOCOLS
    True
"""

from __future__ import annotations

import collections.abc
import importlib
import inspect
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin

from torch.utils.data import Dataset

from cdbloss.registry import Registry

__all__ = [
    "PROTOCOLS",
    "PROTOCOL_MODULES",
    "DataSplits",
    "check_protocol_options",
    "get_protocol",
    "import_protocols",
    "load_protocol",
    "register_protocol",
]


@dataclass
class DataSplits:
    """Train / validation / test datasets of one protocol, plus what losses need.

    Attributes:
        train, val, test: map-style datasets yielding ``(input, label:int)``.
        num_classes: ``C``.
        class_counts: training samples per class, length ``C`` (IFW,
            class-balanced, LDAM, logit adjustment and the many/medium/few
            groups read it).
        class_names: length ``C``.
        info: protocol parameters and anything else worth saving with a run
            (seed, imbalance factor, sources and their checksums...).
        extra_test: further evaluation sets, name -> dataset, tested once at the end
            of a run beside ``test`` (CIFAR-10: ``lossless-1000`` and ``jpeg-1000``).
    """

    train: Dataset[Any]
    val: Dataset[Any]
    test: Dataset[Any]
    num_classes: int
    class_counts: list[int]
    class_names: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    extra_test: dict[str, Dataset[Any]] = field(default_factory=dict)


ProtocolFactory = Callable[..., DataSplits]

#: Modules that define protocols (the ones not installed are skipped).
PROTOCOL_MODULES: tuple[str, ...] = (
    "cdbloss.lab.data.mnist",
    "cdbloss.lab.data.cifar",
    "cdbloss.lab.data.imagenet_lt",
    "cdbloss.lab.data.egtea",
    "cdbloss.lab.data.folder",
    "cdbloss.lab.data.synthetic",
)


def import_protocols() -> Registry[ProtocolFactory]:
    """Import :data:`PROTOCOL_MODULES`; return the registry (name -> factory).

    A module that does not exist is skipped; a module that exists but fails to
    import (a bug, a missing dependency) raises, so the failure is not hidden.
    """
    for mod in PROTOCOL_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as err:
            if err.name != mod:
                raise
    return PROTOCOLS


#: Registered protocol factories by name (complete on first read, see the module doc).
PROTOCOLS: Registry[ProtocolFactory] = Registry("data protocol", loader=import_protocols)


def register_protocol(name: str) -> Callable[[ProtocolFactory], ProtocolFactory]:
    """Decorator: register a protocol factory under ``name``."""
    return PROTOCOLS.register(name)


def get_protocol(name: str) -> ProtocolFactory:
    """The factory registered as ``name``; an unknown name lists the known ones."""
    return PROTOCOLS.lookup(name)


def load_protocol(name: str, **options: Any) -> DataSplits:
    """Build the splits of protocol ``name`` with keyword ``options``."""
    return get_protocol(name)(**options)


def check_protocol_options(name: str, options: Mapping[str, Any]) -> None:
    """Check ``options`` against protocol ``name``'s signature, reading no data.

    Every option must be a parameter of the protocol's factory and fit its
    annotation (``Literal`` choices, ``bool``, ``int``, ``float``, ``str``,
    ``None``, lists of these; other annotations, such as paths, are not
    checked), and every parameter without a default must be given. Configs
    call this when they are loaded, so a misspelt option stops the command
    before any data is read.

    Raises:
        ValueError: naming the protocol and the option, and listing the
            protocol's options.

    Example:
        >>> check_protocol_options("synthetic-lt", {"num_classes": 3})
        >>> check_protocol_options("synthetic-lt", {"num_clases": 3})
        Traceback (most recent call last):
        ...
        ValueError: data protocol 'synthetic-lt' has no option 'num_clases'; its options: ['dim', 'imbalance_factor', 'max_per_class', 'num_classes', 'seed', 'separation', 'test_per_class', 'val_per_class']
    """
    factory = get_protocol(name)
    params = inspect.signature(factory).parameters
    named = {
        n: p
        for n, p in params.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(named))
        if unknown:
            raise ValueError(
                f"data protocol {name!r} has no option {unknown[0]!r}; its options: {sorted(named)}"
            )
    missing = [n for n, p in named.items() if p.default is p.empty and n not in options]
    if missing:
        raise ValueError(f"data protocol {name!r} needs the option {missing[0]!r}")
    hints = typing.get_type_hints(factory)
    for key, value in options.items():
        if key in hints and not _fits(value, hints[key]):
            raise ValueError(
                f"data protocol {name!r}: option {key!r} must be "
                f"{_describe(hints[key])}, got {value!r}"
            )


def _fits(value: Any, tp: Any) -> bool:
    """Whether ``value`` (from a YAML/JSON config) fits the annotation ``tp``."""
    origin = get_origin(tp)
    if origin is Literal:
        return any(type(value) is type(c) and value == c for c in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, option) for option in get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin in (list, tuple, collections.abc.Sequence):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            return False
        args = [a for a in get_args(tp) if a is not Ellipsis]
        return len(args) != 1 or all(_fits(v, args[0]) for v in value)
    if origin is os.PathLike or tp is os.PathLike:
        return isinstance(value, os.PathLike)
    return True  # an annotation this check does not know: left to the protocol


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return f"one of {list(get_args(tp))}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp))
    if tp is type(None):
        return "null"
    if origin in (list, tuple, collections.abc.Sequence):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        return f"a list of {_describe(args[0])}" if len(args) == 1 else "a list"
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
