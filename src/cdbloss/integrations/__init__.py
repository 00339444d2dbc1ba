"""Integrations with training frameworks that are not the cdbloss engine.

Each integration lives in its own module and imports its framework only when
that module is imported, so ``import cdbloss.integrations`` needs nothing
beyond cdbloss itself:

- :mod:`cdbloss.integrations.lightning`: :class:`CDBCallback`, a PyTorch
  Lightning callback (``pip install "cdb-loss[lightning]"``).
- :mod:`cdbloss.integrations.transformers`: :class:`CDBTrainerCallback`, a
  Hugging Face ``transformers`` ``TrainerCallback``
  (``pip install "cdb-loss[transformers]"``).

Both drive a :class:`~cdbloss.CDBLoss` or a :class:`~cdbloss.MultiLabelCDBLoss`
(what they share, importing no framework, is in ``_common``).

Both names can also be read from this package (``from cdbloss.integrations
import CDBCallback``); the framework is then imported on that first access.
See ``docs/integrations.md`` for the wiring and complete examples.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cdbloss.integrations.lightning import CDBCallback
    from cdbloss.integrations.transformers import CDBTrainerCallback

__all__ = ["CDBCallback", "CDBTrainerCallback"]

_LAZY = {
    "CDBCallback": "cdbloss.integrations.lightning",
    "CDBTrainerCallback": "cdbloss.integrations.transformers",
}


def __getattr__(name: str) -> Any:
    """Import an integration's module on first access to its class."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
