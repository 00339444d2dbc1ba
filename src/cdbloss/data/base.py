"""The contract every data protocol returns, and the protocol registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import Dataset

__all__ = ["PROTOCOLS", "DataSplits", "get_protocol", "load_protocol", "register_protocol"]


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
    """

    train: Dataset[Any]
    val: Dataset[Any]
    test: Dataset[Any]
    num_classes: int
    class_counts: list[int]
    class_names: list[str]
    info: dict[str, Any] = field(default_factory=dict)


ProtocolFactory = Callable[..., DataSplits]
PROTOCOLS: dict[str, ProtocolFactory] = {}


def register_protocol(name: str) -> Callable[[ProtocolFactory], ProtocolFactory]:
    """Decorator: register a protocol factory under ``name``."""

    def deco(fn: ProtocolFactory) -> ProtocolFactory:
        if name in PROTOCOLS:
            raise ValueError(f"data protocol {name!r} is already registered")
        PROTOCOLS[name] = fn
        return fn

    return deco


def get_protocol(name: str) -> ProtocolFactory:
    """The factory registered as ``name``; an unknown name lists the known ones.

    Every built-in protocol module is imported first, so a name works without
    importing its module by hand.
    """
    from cdbloss.data.protocols import import_protocols

    import_protocols()
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown data protocol {name!r}; known: {sorted(PROTOCOLS)}") from None


def load_protocol(name: str, **options: Any) -> DataSplits:
    """Build the splits of protocol ``name`` with keyword ``options``."""
    return get_protocol(name)(**options)
