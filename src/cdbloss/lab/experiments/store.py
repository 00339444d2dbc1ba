"""A grid's finished runs in one compressed file: the results store.

A sweep writes one folder per run, each with ``config.json`` and ``result.json``
(see :mod:`cdbloss.lab.engine.trainer`). Committing a thousand such folders is
heavy; the store keeps the same content in one file, ``runs.jsonl.gz``, in the
grid's folder. It is gzip-compressed JSON Lines, one run a line, sorted by run::

    {"run": "seed=0__name=ce__ratio=0.9", "config": {...}, "result": {...}}

``run`` is the run's folder relative to the store's folder (``/``-separated);
``config`` and ``result`` are the parsed ``config.json`` and ``result.json``
(``config`` is absent where the folder had none). An optional ``text`` maps a
file name to its exact text: other files kept with the run (``--also
metrics.jsonl``), and a ``config.json`` or ``result.json`` whose bytes are not
what :func:`json_text` writes for its content. So :func:`expand` gives back
every packed file byte for byte. The gzip stream carries no time stamp or
file name: packing the same runs again gives the same bytes (with the same
zlib).

``cdbloss report`` reads stores as well as run folders (:func:`stored_runs`);
``cdbloss results pack`` and ``cdbloss results expand`` convert between the two.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise
from pathlib import Path, PurePosixPath
from typing import Any

from cdbloss.lab.io import atomic_write_bytes

__all__ = [
    "STORE_NAME",
    "StoreError",
    "StoredRun",
    "expand",
    "find_run_file",
    "find_stored_run",
    "json_text",
    "pack",
    "read_run_file",
    "read_store",
    "result_sources",
    "store_bytes",
    "stored_runs",
    "write_store",
]

#: the store's file name inside a grid folder
STORE_NAME = "runs.jsonl.gz"

#: the files of a run folder that are parsed into the store's ``config`` / ``result``
_PARSED = {"config.json": "config", "result.json": "result"}


class StoreError(ValueError):
    """A store that cannot be read or written; the message names the file and says why."""


def json_text(obj: Any) -> str:
    """The text a run's JSON file holds: ``json.dumps(obj, indent=2) + "\\n"``, as the
    trainer writes ``config.json`` and ``result.json``."""
    return json.dumps(obj, indent=2) + "\n"


@dataclass(frozen=True)
class StoredRun:
    """One run of a store.

    Attributes:
        run: the run's folder relative to the store's folder, ``/``-separated.
        result: the parsed ``result.json``.
        config: the parsed ``config.json``; None where the folder had none.
        text: file name -> exact text, for files kept verbatim (see the module docstring).
    """

    run: str
    result: dict[str, Any]
    config: dict[str, Any] | None = None
    text: Mapping[str, str] = field(default_factory=dict)

    def files(self) -> dict[str, str]:
        """File name -> the exact text :func:`expand` writes into the run's folder."""
        out = {}
        for name, key in _PARSED.items():
            obj = getattr(self, key)
            if obj is not None:
                out[name] = self.text.get(name, json_text(obj))
        out.update({k: v for k, v in self.text.items() if k not in out})
        return out

    def line(self) -> str:
        """The run's line in the store (compact JSON, without the newline)."""
        obj: dict[str, Any] = {"run": self.run}
        if self.config is not None:
            obj["config"] = self.config
        obj["result"] = self.result
        if self.text:
            obj["text"] = dict(sorted(self.text.items()))
        return json.dumps(obj, separators=(",", ":"))

    @classmethod
    def from_folder(cls, folder: Path, run: str, also: Sequence[str] = ()) -> StoredRun:
        """Read the run folder ``folder`` (holding ``result.json``) as the store's ``run``.

        ``also`` names further files kept verbatim where the folder has them.
        """
        parsed: dict[str, Any] = {}
        text: dict[str, str] = {}
        for name, key in _PARSED.items():
            path = folder / name
            if not path.exists():
                continue
            raw = _read_text(path)
            try:
                parsed[key] = json.loads(raw)
            except json.JSONDecodeError as err:
                raise StoreError(f"run file {str(path)!r} is not valid JSON ({err})") from None
            if not isinstance(parsed[key], dict):
                raise StoreError(f"run file {str(path)!r} is not a JSON object")
            if json_text(parsed[key]) != raw:
                text[name] = raw
        for name in also:
            if name not in _PARSED and (folder / name).is_file():
                text[name] = _read_text(folder / name)
        return cls(run, parsed["result"], parsed.get("config"), text)


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise StoreError(f"run file {str(path)!r} is not UTF-8 text") from None


def store_bytes(runs: Iterable[StoredRun]) -> bytes:
    """The store's bytes for ``runs``: sorted by run, gzip level 9, no time stamp.

    Raises:
        StoreError: two runs with the same ``run``.
    """
    ordered = sorted(runs, key=lambda r: r.run)
    for a, b in pairwise(ordered):
        if a.run == b.run:
            raise StoreError(f"run {a.run!r} appears twice; a store holds each run once")
    data = "".join(r.line() + "\n" for r in ordered).encode("utf-8")
    return gzip.compress(data, compresslevel=9, mtime=0)


def write_store(path: str | Path, runs: Iterable[StoredRun]) -> None:
    """Write ``runs`` to the store ``path`` atomically (see :func:`store_bytes`)."""
    atomic_write_bytes(path, store_bytes(runs))


def _check_run_path(run: Any, where: str) -> str:
    """``run`` if it is a relative ``/``-path inside the store's folder, else StoreError."""
    if not isinstance(run, str) or not run:
        raise StoreError(f"{where}: 'run' must be a non-empty string, got {run!r}")
    parts = PurePosixPath(run).parts
    if run.startswith("/") or "\\" in run or any(p in ("", ".", "..") for p in parts):
        raise StoreError(f"{where}: 'run' must be a relative path below the store, got {run!r}")
    return run


def _parse_line(line: str, where: str) -> StoredRun:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        raise StoreError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(obj, dict):
        raise StoreError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    run = _check_run_path(obj.get("run"), where)
    result, config, text = obj.get("result"), obj.get("config"), obj.get("text", {})
    if not isinstance(result, dict):
        raise StoreError(f"{where}: 'result' must be a JSON object, got {result!r:.40}")
    if config is not None and not isinstance(config, dict):
        raise StoreError(f"{where}: 'config' must be a JSON object, got {config!r:.40}")
    if not isinstance(text, dict) or not all(isinstance(v, str) for v in text.values()):
        raise StoreError(f"{where}: 'text' must map file names to strings")
    for name in text:
        _check_run_path(f"{run}/{name}", where)
        if "/" in name:
            raise StoreError(f"{where}: 'text' names a file in a subfolder: {name!r}")
    return StoredRun(run, result, config, text)


def read_store(path: str | Path) -> list[StoredRun]:
    """Every run of the store ``path``, in the store's order.

    Raises:
        FileNotFoundError: no such file.
        StoreError: not gzip, cut short, not UTF-8, a line that is not a run, or a run
            twice; the one-line message names the file (and line) and says what is wrong.
    """
    p = Path(path)
    raw = p.read_bytes()
    try:
        data = gzip.decompress(raw)
    except EOFError:
        raise StoreError(f"run store {str(p)!r} is cut short (truncated gzip stream)") from None
    except (OSError, zlib.error) as err:
        raise StoreError(f"run store {str(p)!r} is not a readable gzip file ({err})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise StoreError(f"run store {str(p)!r} is unreadable: not UTF-8 text") from None
    if text and not text.endswith("\n"):
        raise StoreError(f"run store {str(p)!r} is cut short: its last line has no newline")
    runs, seen = [], set()
    for number, line in enumerate(text.splitlines(), start=1):
        run = _parse_line(line, f"run store {str(p)!r}, line {number}")
        if run.run in seen:
            raise StoreError(f"run store {str(p)!r}, line {number}: run {run.run!r} twice")
        seen.add(run.run)
        runs.append(run)
    return runs


def stored_runs(folder: str | Path) -> Iterator[tuple[Path, StoredRun]]:
    """(run folder, run) for every run of every store at or below ``folder``.

    ``folder`` may also be a store file itself. The run folder is the store's
    folder joined with ``run``: the path the run had before it was packed.
    """
    root = Path(folder)
    stores = [root] if root.is_file() else sorted(root.rglob(STORE_NAME))
    for store in stores:
        for run in read_store(store):
            yield store.parent.joinpath(*run.run.split("/")), run


def result_sources(folder: str | Path) -> list[tuple[Path, dict[str, Any] | None]]:
    """Every run under ``folder`` as (its ``result.json`` path, the parsed result or None).

    None stands for a run folder's own ``result.json``, for the caller to read
    (and to judge if unreadable); a parsed result comes from a store at or below
    ``folder``, for a run that no folder holds (a folder expanded from the store
    wins). Sorted by path, so a packed grid lists its runs in the order its
    folders had. ``folder`` may be a store file.

    Raises:
        FileNotFoundError: ``folder`` is neither a folder nor a store file.
        StoreError: a store is unreadable.
    """
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"run folder {str(root)!r} does not exist")
    if not root.is_dir() and not root.name.endswith(".jsonl.gz"):
        raise FileNotFoundError(f"run folder {str(root)!r} is not a folder (nor a run store)")
    files = sorted(root.rglob("result.json")) if root.is_dir() else []
    sources: list[tuple[Path, dict[str, Any] | None]] = [(path, None) for path in files]
    on_disk = set(files)
    for run_dir, run in stored_runs(root):
        if run_dir / "result.json" not in on_disk:
            sources.append((run_dir / "result.json", run.result))
    return sorted(sources, key=lambda source: source[0])


def _run_folders(folder: Path) -> list[Path]:
    """Every folder at or below ``folder`` that holds a ``result.json``, sorted."""
    return sorted(p.parent for p in folder.rglob("result.json"))


@dataclass(frozen=True)
class PackSummary:
    """What :func:`pack` did: the store, runs read from folders, runs in the store now."""

    store: Path
    packed: int
    total: int


def pack(
    folder: str | Path, store: str | Path | None = None, also: Sequence[str] = ()
) -> PackSummary:
    """Put every run folder (one with a ``result.json``) under ``folder`` into a store.

    The store (default ``folder/runs.jsonl.gz``) keeps the runs it already
    holds; a run folder replaces the stored run of the same path. The folders
    are left as they are.

    Args:
        folder: the grid folder (what ``cdbloss sweep --out`` wrote).
        store: the store file; runs are named relative to its folder, which
            must be ``folder`` or above it.
        also: further files to keep verbatim where a run has them, e.g. ``metrics.jsonl``.
    """
    root = Path(folder)
    if not root.is_dir():
        kind = "is not a folder" if root.exists() else "does not exist"
        raise FileNotFoundError(f"run folder {str(root)!r} {kind}")
    target = Path(store) if store is not None else root / STORE_NAME
    base = target.parent.resolve()
    if not (root.resolve() == base or base in root.resolve().parents):
        raise StoreError(f"store {str(target)!r} must sit in {str(root)!r} or a folder above it")
    kept = {r.run: r for r in read_store(target)} if target.exists() else {}
    folders = _run_folders(root)
    for run_dir in folders:
        name = run_dir.resolve().relative_to(base).as_posix()
        kept[name] = StoredRun.from_folder(run_dir, name, also)
    if not kept:
        raise StoreError(f"no run folder (one with a result.json) under {str(root)!r}")
    write_store(target, kept.values())
    return PackSummary(target, len(folders), len(kept))


def expand(store: str | Path, out: str | Path | None = None) -> int:
    """Write every run of ``store`` back as a run folder under ``out`` (default: the
    store's folder); return the number of files written.

    A file that is already there with the same bytes is left alone; one that
    differs stops the expansion before anything is written.

    Raises:
        StoreError: the store is unreadable, or a file in the way differs.
    """
    src = Path(store)
    dest = Path(out) if out is not None else src.parent
    todo = []
    for run in read_store(src):
        for name, text in run.files().items():
            path = dest.joinpath(*run.run.split("/"), name)
            data = text.encode("utf-8")
            if path.exists():
                if path.read_bytes() != data:
                    raise StoreError(
                        f"{str(path)!r} already exists and differs from run {run.run!r} of "
                        f"{str(src)!r}; move it away or expand into another folder"
                    )
                continue
            todo.append((path, data))
    for path, data in todo:
        atomic_write_bytes(path, data)
    return len(todo)


@lru_cache(maxsize=8)
def _store_index(path: Path, mtime_ns: int) -> dict[str, StoredRun]:
    return {r.run: r for r in read_store(path)}


def find_stored_run(run_dir: str | Path) -> StoredRun | None:
    """The run whose folder was ``run_dir``, from the nearest store in a folder above it.

    None where no store above ``run_dir`` holds it.
    """
    run_path = Path(run_dir)
    for parent in run_path.parents:
        store = parent / STORE_NAME
        if store.is_file():
            name = run_path.relative_to(parent).as_posix()
            found = _store_index(store.resolve(), store.stat().st_mtime_ns).get(name)
            if found is not None:
                return found
    return None


def find_run_file(run_dir: str | Path, name: str) -> str | None:
    """:func:`read_run_file`, or None where neither the folder nor a store has the file."""
    try:
        return read_run_file(run_dir, name)
    except FileNotFoundError:
        return None


def read_run_file(run_dir: str | Path, name: str) -> str:
    """The text of the file ``name`` of a run: from ``run_dir`` where it is there, else
    from the store that holds the run (:func:`find_stored_run`).

    Raises:
        FileNotFoundError: neither the folder nor a store above it has the file.
    """
    path = Path(run_dir) / name
    if path.is_file():
        return path.read_text(encoding="utf-8")
    run = find_stored_run(run_dir)
    text = run.files().get(name) if run is not None else None
    if text is None:
        where = "no store above it holds the run" if run is None else "its stored run lacks it"
        raise FileNotFoundError(f"run file {str(path)!r} does not exist and {where}")
    return text
