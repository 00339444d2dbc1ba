"""Where the data protocols come from: kept so existing imports keep working.

The registry and its loader live in :mod:`cdbloss.lab.data.base`
(:data:`~cdbloss.lab.data.base.PROTOCOLS` imports every protocol module
before its first read); this module re-exports the loader. It imports
:mod:`~cdbloss.lab.data.base` and never the other way round.

Example:
    >>> from cdbloss.lab.data.protocols import import_protocols
    >>> "mnist-4v9" in import_protocols()
    True
"""

from __future__ import annotations

from cdbloss.lab.data.base import PROTOCOL_MODULES, import_protocols

__all__ = ["PROTOCOL_MODULES", "import_protocols"]
