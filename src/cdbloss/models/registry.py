"""The model registry: names -> factories, and the option checks they share.

Every factory has the signature ``factory(num_classes: int, **options) -> nn.Module``
and returns a module mapping a batch to logits ``(N, C)``. Factories are
registered with :func:`register_model` and built with :func:`build_model`::

    >>> from cdbloss.models import build_model
    >>> model = build_model("resnet32", num_classes=10)
    >>> sum(p.numel() for p in model.parameters())
    464154
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

__all__ = [
    "MODELS",
    "ModelFactory",
    "build_model",
    "check_bool",
    "check_int",
    "check_int_sequence",
    "count_parameters",
    "get_model",
    "register_model",
]

ModelFactory = Callable[..., nn.Module]

#: Registered model factories by name.
MODELS: dict[str, ModelFactory] = {}


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator: register ``fn`` as the factory of model ``name``.

    Raises:
        ValueError: if ``name`` is already registered.
    """

    def deco(fn: ModelFactory) -> ModelFactory:
        if name in MODELS:
            raise ValueError(f"model {name!r} is already registered")
        MODELS[name] = fn
        return fn

    return deco


def get_model(name: str) -> ModelFactory:
    """The factory registered as ``name``; an unknown name lists the known ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {sorted(MODELS)}") from None


def _accepted_options(factory: ModelFactory) -> list[str] | None:
    """Keyword options of ``factory`` other than ``num_classes`` (None: accepts any)."""
    params = inspect.signature(factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [
        p.name
        for p in params
        if p.name != "num_classes"
        and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]


def build_model(name: str, num_classes: int, **options: Any) -> nn.Module:
    """Build the model registered as ``name`` for ``num_classes`` classes.

    Args:
        name: a key of :data:`MODELS`, e.g. ``"lenet5"``, ``"resnet32"``,
            ``"resnet10"``, ``"resnext3d_101"``.
        num_classes: ``C``, the width of the logits; an ``int >= 1``.
        **options: the factory's keyword options (see each factory's docstring).

    Returns:
        An ``nn.Module`` whose forward returns logits of shape ``(N, C)``.

    Raises:
        ValueError: unknown ``name`` (the message lists the known ones), an
            option the factory does not take (the message lists the ones it
            takes), or an option of the wrong type or value.

    Example:
        >>> import torch
        >>> model = build_model("lenet5", num_classes=2)
        >>> model(torch.zeros(4, 1, 28, 28)).shape
        torch.Size([4, 2])
    """
    factory = get_model(name)
    check_int("num_classes", num_classes, minimum=1)
    accepted = _accepted_options(factory)
    if accepted is not None:
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise ValueError(
                f"model {name!r} got unknown option(s) {unknown}; it accepts {sorted(accepted)}"
            )
    return factory(num_classes=num_classes, **options)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``model`` (buffers such as BN statistics excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def check_int(name: str, value: object, minimum: int | None = None) -> int:
    """Return ``value`` if it is an ``int`` (not a ``bool``) ``>= minimum``, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a ``bool``, else raise ValueError."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


def check_int_sequence(
    name: str, value: object, length: int, minimum: int | None = None
) -> tuple[int, ...]:
    """Return ``value`` as a tuple if it is a sequence of ``length`` ints ``>= minimum``."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(
            f"{name} must be a sequence of {length} ints, got {type(value).__name__} {value!r}"
        )
    if len(value) != length:
        raise ValueError(f"{name} must have {length} entries, got {len(value)}: {list(value)!r}")
    return tuple(check_int(f"{name}[{i}]", v, minimum) for i, v in enumerate(value))
