"""The model registry: names -> factories, and the option checks they share.

Every factory has the signature ``factory(num_classes: int, **options) -> nn.Module``
and returns a module mapping a batch to logits ``(N, C)``. Factories are
registered with :func:`register_model` and built with :func:`build_model`::

    >>> from cdbloss.lab.models import build_model
    >>> model = build_model("resnet32", num_classes=10)
    >>> sum(p.numel() for p in model.parameters())
    464154

Beside the registered names, ``torchvision.<arch>`` names any architecture of
``torchvision.models`` (``torchvision.resnet50``, ``torchvision.r3d_18``...),
built with ``weights=None`` and ``num_classes``; torchvision is imported only
then (``pip install 'cdb-loss[torchvision]'``, the build that matches your
torch). Pretrained weights come from a local file (:mod:`cdbloss.lab.models.pretrained`),
never from a download.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from cdbloss.registry import Registry

__all__ = [
    "MODELS",
    "TORCHVISION_PREFIX",
    "ModelFactory",
    "build_model",
    "check_bool",
    "check_int",
    "check_int_sequence",
    "count_parameters",
    "get_model",
    "is_model_name",
    "register_model",
]

ModelFactory = Callable[..., nn.Module]

#: Names starting with this build ``torchvision.models.<arch>`` (see the module doc).
TORCHVISION_PREFIX = "torchvision."
_ARCH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Registered model factories by name.
MODELS: Registry[ModelFactory] = Registry(
    "model", hint=", or torchvision.<arch> (e.g. torchvision.resnet50)"
)


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator: register ``fn`` as the factory of model ``name``.

    Raises:
        ValueError: if ``name`` is already registered.
    """
    return MODELS.register(name)


def is_model_name(name: str) -> bool:
    """True if ``name`` is registered or is ``torchvision.<arch>`` with a valid identifier
    (whether torchvision has that architecture is checked when the model is built)."""
    if name in MODELS:
        return True
    arch = name[len(TORCHVISION_PREFIX) :] if name.startswith(TORCHVISION_PREFIX) else ""
    return bool(_ARCH.match(arch))


def get_model(name: str) -> ModelFactory:
    """The factory registered as ``name`` (or for ``torchvision.<arch>``); an unknown name
    lists the known ones."""
    if name not in MODELS and is_model_name(name):
        return _torchvision_factory(name[len(TORCHVISION_PREFIX) :])
    return MODELS.lookup(name)


def _torchvision_factory(arch: str) -> ModelFactory:
    """A factory for ``torchvision.models.get_model(arch, weights=None, num_classes=C)``."""

    def factory(num_classes: int, **options: Any) -> nn.Module:
        if "weights" in options or "pretrained" in options:
            raise ValueError(
                f"model 'torchvision.{arch}': weights are not downloaded here; give a local "
                "file with model.pretrained: PATH (cdbloss.lab.models.pretrained)"
            )
        try:
            models = importlib.import_module("torchvision.models")
        except Exception as err:  # ImportError, or a build that does not match torch
            reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise ValueError(
                f"model 'torchvision.{arch}' needs torchvision, which failed to import "
                f"({type(err).__name__}: {reason[:160]}); install the torchvision build that "
                "matches your torch (pip install 'cdb-loss[torchvision]')"
            ) from None
        try:
            model: nn.Module = models.get_model(
                arch, weights=None, num_classes=num_classes, **options
            )
        except (ValueError, TypeError) as err:
            raise ValueError(f"model 'torchvision.{arch}': {err}") from None
        return model

    factory.__name__ = f"torchvision_{arch}"
    return factory


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
