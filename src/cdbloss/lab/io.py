"""Files and terminal output the whole lab shares: atomic writes, JSON-ready values, progress.

* :func:`atomic_write` writes through a temporary file in the target folder,
  fsync and ``os.replace``, so a reader (or a crash) never sees a half-written
  file; :func:`atomic_write_bytes`, :func:`atomic_write_text` and
  :func:`atomic_write_json` are its one-call forms.
* :func:`jsonable` turns what protocols and runs record (numpy scalars and
  arrays, paths, tuples, non-string keys) into values ``json.dumps`` takes.
* :func:`progress` wraps an iterable in a tqdm bar and :func:`byte_progress`
  counts bytes, each only when tqdm is installed and the bar is wanted (by
  default: stderr is a terminal); otherwise they cost nothing.

Example:
    >>> import json, pathlib, tempfile
    >>> import numpy as np
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write_json(d / "x.json", jsonable({"n": np.int64(3), 1: (d.name, 0.5)}))
    >>> json.loads((d / "x.json").read_text())["n"]
    3
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "byte_progress",
    "jsonable",
    "progress",
]

_T = TypeVar("_T")


# ------------------------------------------------------------------ atomic writes


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Open a temporary file beside ``path`` for binary writing; on success move it to ``path``.

    The parent folder is created. On any exception the temporary file is
    removed and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these are ordinary data files
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part."""
    with atomic_write(path) as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Atomic text write (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Atomic JSON write (indented, NaN written as ``NaN``)."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


# ------------------------------------------------------------------ JSON


def jsonable(obj: Any, *, finite: bool = False) -> Any:
    """``obj`` with everything ``json.dumps`` cannot take turned into what it can.

    Dicts keep their order with ``str`` keys; tuples become lists; numpy
    scalars and arrays become Python numbers and lists; paths become strings;
    anything else unknown becomes ``str(obj)``. With ``finite``, NaN and
    infinities become the strings ``"nan"``, ``"inf"``, ``"-inf"`` (for strict
    JSON readers); otherwise they stay floats (``json`` writes ``NaN``).

    Example:
        >>> jsonable({1: (np.float32(0.5), float("inf"))}, finite=True)
        {'1': [0.5, 'inf']}
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v, finite=finite) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, finite=finite) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist(), finite=finite)
    if isinstance(obj, np.generic):
        return jsonable(obj.item(), finite=finite)
    if isinstance(obj, float) and finite and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return str(obj)


# ------------------------------------------------------------------ progress bars


def _tqdm(enabled: bool | None) -> Any:
    """The tqdm class when a bar is wanted and tqdm is installed, else None."""
    if not (sys.stderr.isatty() if enabled is None else enabled):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def progress(
    items: Iterable[_T],
    total: int | None = None,
    desc: str = "",
    *,
    enabled: bool | None = None,
    **options: Any,
) -> Iterable[_T]:
    """``items`` in a tqdm bar (that disappears when done), or ``items`` itself.

    Args:
        items: what to iterate.
        total: the number of items when ``len(items)`` does not tell it.
        desc: the bar's label.
        enabled: ``True``/``False`` to force the bar on/off; ``None``: on when
            stderr is a terminal. Without tqdm there is never a bar.
        **options: more tqdm options (``unit="img"``, ``dynamic_ncols=True``...).
    """
    tqdm = _tqdm(enabled)
    if tqdm is None:
        return items
    return tqdm(items, total=total, desc=desc, leave=False, **options)  # type: ignore[no-any-return]


@contextlib.contextmanager
def byte_progress(
    total: int | None, initial: int = 0, desc: str = "", *, enabled: bool | None = None
) -> Iterator[Callable[[int], object]]:
    """A byte-counting bar; yields ``update(n)`` to call with each chunk's size.

    ``total`` and ``initial`` are in bytes (``initial``: already there, as when
    a download resumes). ``enabled`` as in :func:`progress`; without a bar,
    ``update`` does nothing.
    """
    tqdm = _tqdm(enabled)
    if tqdm is None:
        yield lambda _n: None
        return
    bar = tqdm(
        total=total, initial=initial, desc=desc, unit="B", unit_scale=True,
        unit_divisor=1024, leave=False,
    )  # fmt: skip
    try:
        yield bar.update
    finally:
        bar.close()
