"""Import every module that registers a data protocol, so the registry is complete.

A protocol registers itself when its module is imported
(``@register_protocol``). :func:`import_protocols` imports the known modules
and skips only those not present in this installation, so
``load_protocol(name)`` and ``cdbloss data info`` see every protocol.

Example:
    >>> from cdbloss.lab.data.protocols import import_protocols
    >>> "mnist-4v9" in import_protocols()
    True
"""

from __future__ import annotations

import importlib

from cdbloss.lab.data.base import PROTOCOLS, ProtocolFactory

__all__ = ["PROTOCOL_MODULES", "import_protocols"]

#: Modules that define protocols (the ones not installed are skipped).
PROTOCOL_MODULES: tuple[str, ...] = (
    "cdbloss.lab.data.mnist",
    "cdbloss.lab.data.cifar",
    "cdbloss.lab.data.imagenet_lt",
    "cdbloss.lab.data.egtea",
    "cdbloss.lab.data.folder",
    "cdbloss.lab.data.synthetic",
)


def import_protocols() -> dict[str, ProtocolFactory]:
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
