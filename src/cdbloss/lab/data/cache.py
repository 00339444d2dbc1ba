"""Where data lives, and how it gets there safely: cache root, checksums, member names.

* :func:`cache_root` is the one place that decides the cache directory: an
  explicit ``root`` argument, else ``$CDBLOSS_CACHE``, else
  ``$XDG_CACHE_HOME/cdbloss``, else ``~/.cache/cdbloss``.
* :func:`shared_data_dirs` lists the read-only ``shared/data`` folders that sit
  beside a checkout of this project (``$CDBLOSS_SHARED_DATA`` first); nothing
  here knows an absolute machine path.
* :func:`file_digest` / :func:`verify_digest` compute and check checksums, with
  an error that names the file, the expected and the actual value.
* every cache entry is written with :func:`cdbloss.lab.io.atomic_write` (a
  temporary file in the target folder and ``os.replace``), so a crash never
  leaves a half-written entry.
* :func:`safe_member_name` refuses archive member names that would escape the
  folder they are extracted into.
* :data:`IMAGE_EXTENSIONS` / :func:`is_image_file`: the one list of file endings that
  every reader of image files (ImageFolder trees, zips, CSVs, frame folders, CIFAR's
  ImageFolder copy) takes as images.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "x.bin").write_bytes(b"abc")
    >>> file_digest(d / "x.bin", "md5")
    '900150983cd24fb0d6963f7d28e17f72'
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import TypeVar

__all__ = [
    "CACHE_ENV",
    "IMAGE_EXTENSIONS",
    "SHARED_ENV",
    "bytes_digest",
    "cache_root",
    "file_digest",
    "find_lists_dir",
    "find_shared",
    "is_image_file",
    "safe_member_name",
    "shared_data_dirs",
    "split_files",
    "verify_digest",
]

CACHE_ENV = "CDBLOSS_CACHE"
SHARED_ENV = "CDBLOSS_SHARED_DATA"

_T = TypeVar("_T")

#: File endings taken as images (case-insensitive), as in torchvision's ImageFolder.
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".ppm",
    ".bmp",
    ".pgm",
    ".tif",
    ".tiff",
    ".webp",
)


def is_image_file(name: str) -> bool:
    """True for a visible file name with one of :data:`IMAGE_EXTENSIONS`."""
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and base.lower().endswith(IMAGE_EXTENSIONS)


def cache_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The cache directory (not created here).

    Args:
        root: an explicit directory; wins over everything else.

    Returns:
        ``root``, else ``$CDBLOSS_CACHE``, else ``$XDG_CACHE_HOME/cdbloss``,
        else ``~/.cache/cdbloss``; ``~`` expanded.
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "cdbloss"


def _repo_root() -> Path | None:
    """The checkout this module lives in (a folder with pyproject.toml), if any."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    return None


def shared_data_dirs() -> list[Path]:
    """Existing ``shared/data`` folders to search, most specific first.

    ``$CDBLOSS_SHARED_DATA`` (one or more folders separated by ``os.pathsep``),
    then ``../shared/data`` relative to the current directory and to the
    checkout that holds this package. Only folders that exist are returned.
    """
    candidates: list[Path] = []
    env = os.environ.get(SHARED_ENV)
    if env:
        candidates += [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    candidates.append(Path.cwd().parent / "shared" / "data")
    repo = _repo_root()
    if repo is not None:
        candidates.append(repo.parent / "shared" / "data")
    seen: set[Path] = set()
    out: list[Path] = []
    for c in candidates:
        try:
            r = c.resolve()
        except OSError:
            continue
        if r in seen or not r.is_dir():
            continue
        seen.add(r)
        out.append(r)
    return out


def find_shared(relative: str) -> Path | None:
    """The first ``<shared data dir>/<relative>`` that exists, else ``None``."""
    for d in shared_data_dirs():
        p = d / relative
        if p.exists():
            return p
    return None


def bytes_digest(data: bytes, algorithm: str = "sha256") -> str:
    """Hex digest of ``data`` (``algorithm``: any name :mod:`hashlib` knows)."""
    return hashlib.new(algorithm, data).hexdigest()


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_digest(what: str | os.PathLike[str], actual: str, expected: str, algorithm: str) -> None:
    """Raise ``ValueError`` naming ``what`` unless ``actual == expected`` (case-insensitive)."""
    if actual.lower() != expected.lower():
        raise ValueError(
            f"{what}: {algorithm} checksum mismatch: expected {expected.lower()}, got "
            f"{actual.lower()} (the file is corrupted, truncated or not the expected release)"
        )


def safe_member_name(name: str, archive: str | os.PathLike[str]) -> PurePosixPath:
    """Validate an archive member name; return it as a relative POSIX path.

    Raises:
        ValueError: for an absolute name, a drive letter, a backslash or any
            ``..`` component, i.e. a name that could write outside the folder
            it is extracted into.
    """
    if not name or "\\" in name or "\x00" in name:
        raise ValueError(f"{archive}: refusing unsafe member name {name!r}")
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise ValueError(f"{archive}: refusing unsafe member name {name!r} (escapes its folder)")
    return p


def find_lists_dir(
    lists_dir: str | os.PathLike[str] | None,
    protocol: str,
    shared_name: str,
    files: Iterable[str],
    hint: str,
    *also: Path,
    also_text: str = "",
) -> Path:
    """The folder of a protocol's list files: ``lists_dir`` when given, else the first of
    ``also``, else ``shared/data/<shared_name>`` (see :func:`find_shared`) if it is a folder.

    Raises:
        FileNotFoundError: none of them; the message names ``files``, the places tried
            (``also_text`` describes ``also``, e.g. ``"the lists inside root, or "``) and
            ends with ``hint`` (how to get the lists).
    """
    if lists_dir is not None:
        return Path(lists_dir)
    for folder in also:
        return folder
    shared = find_shared(shared_name)
    if shared is not None and shared.is_dir():
        return shared
    raise FileNotFoundError(
        f"{protocol} needs lists_dir=<folder holding {', '.join(files)}> (or {also_text}"
        f"{shared_name}/ in a shared data folder: $CDBLOSS_SHARED_DATA or ../shared/data "
        "beside the checkout). " + hint
    )


def split_files(
    folder: Path, names: Mapping[str, str], what: str, hint: str = ""
) -> dict[str, Path]:
    """``{split: folder / name}`` for a protocol's split files, every one present.

    Raises:
        FileNotFoundError: ``"<what>(s) <missing files> (expected <names> in <folder>). <hint>"``,
            e.g. ``what="egtea: missing split file"``.
    """
    paths = {split: folder / name for split, name in names.items()}
    absent = [str(p) for p in paths.values() if not p.is_file()]
    if absent:
        raise FileNotFoundError(
            f"{what}(s) " + ", ".join(absent) + f" (expected "
            f"{', '.join(names.values())} in {folder}). " + hint
        )
    return paths
