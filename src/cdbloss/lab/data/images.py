"""Reading labelled images: ImageFolder trees, zips of them, list files and CSVs.

Two kinds of *store* hold the image files; both name files by a relative POSIX
path (``"train/cat/001.jpg"``):

* :class:`DirectoryStore` - a directory on disk;
* :class:`ZipStore` - a zip archive, read member by member without unpacking.
  The archive is opened lazily, once per process and thread, so a store built in
  the main process can be handed to DataLoader workers (forked or spawned): no
  file handle is ever shared between processes.

Three ways to say which image has which label:

* an ImageFolder tree ``<root>/<class>/<file>`` (:func:`scan_image_folder`; classes
  sorted by name, class ``i`` = the ``i``-th name, as torchvision's ImageFolder);
* an OLTR-style list file, one ``<relative/path> <label>`` per line
  (:func:`read_list_file`), as ImageNet-LT ships;
* a CSV of ``path,label`` rows, optionally with a ``split`` column (:func:`read_csv_file`).

Every check that can be made before training is made when the dataset is built:
malformed lines and labels outside ``[0, C)`` name the file and line; images named
by a list must exist (:func:`check_exists`, which lists each directory once, or
looks names up in the zip's member table, so a 100k-line list is checked in
seconds). Only a file that exists but cannot be decoded is found late, when read.

Example:
    >>> store = open_store("data/pets")                       # doctest: +SKIP
    >>> classes, samples = scan_image_folder(store, "train")  # doctest: +SKIP
    >>> ds = ImageDataset(store, samples, num_classes=len(classes))  # doctest: +SKIP
    >>> x, y = ds[0]  # x: float tensor (3, H, W) in [0, 1], y: int  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import os
import threading
import zipfile
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from .cache import IMAGE_EXTENSIONS, is_image_file
from .normalization import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "CsvEntry",
    "DirectoryStore",
    "ImageDataset",
    "ImageStore",
    "ListEntry",
    "ZipStore",
    "check_exists",
    "check_labels",
    "is_image_file",
    "numbered_lines",
    "open_store",
    "read_csv_file",
    "read_list_file",
    "scan_image_folder",
]


def _norm(rel: str) -> str:
    """A relative POSIX path without ``./`` or leading/trailing slashes."""
    if "\\" not in rel and not rel.startswith(("/", "./")) and not rel.endswith("/"):
        return rel  # the common case, kept fast for 100k-line lists
    rel = rel.replace("\\", "/").strip("/")
    while rel.startswith("./"):
        rel = rel[2:]
    return rel


def _join(*parts: str) -> str:
    return "/".join(p for p in (_norm(p) for p in parts) if p)


# --------------------------------------------------------------------------------------------
# stores
# --------------------------------------------------------------------------------------------


class ImageStore(ABC):
    """Where the image files of a dataset live; paths are relative POSIX strings."""

    #: the directory or archive, for messages
    location: str

    @abstractmethod
    def read_bytes(self, rel: str) -> bytes:
        """The raw bytes of file ``rel``; ``FileNotFoundError`` naming it if absent."""

    @abstractmethod
    def listdir(self, rel: str = "") -> tuple[list[str], list[str]]:
        """``(sub-directories, files)`` directly under ``rel``, each sorted by name."""

    @abstractmethod
    def isdir(self, rel: str) -> bool:
        """True if ``rel`` is a directory of the store (``""`` is the root)."""

    @abstractmethod
    def missing(self, rels: Sequence[str]) -> list[int]:
        """Indices of the paths in ``rels`` that are not files of the store."""

    def open_image(self, rel: str) -> Image.Image:
        """Decode file ``rel`` to an RGB ``PIL.Image`` (fully loaded)."""
        data = self.read_bytes(rel)
        try:
            with Image.open(io.BytesIO(data)) as img:
                return img.convert("RGB")
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(f"cannot decode image {rel!r} in {self.location}: {e}") from e

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"


class DirectoryStore(ImageStore):
    """Images in a directory tree on disk.

    Example:
        >>> store = DirectoryStore("data/pets")  # doctest: +SKIP
        >>> store.open_image("train/cat/1.jpg").size  # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image directory {str(self.root)!r} does not exist")
        self.location = str(self.root)

    def _path(self, rel: str) -> Path:
        return self.root / _norm(rel)

    def read_bytes(self, rel: str) -> bytes:
        path = self._path(rel)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"image {rel!r} not found: {str(path)!r} does not exist"
            ) from None

    def listdir(self, rel: str = "") -> tuple[list[str], list[str]]:
        path = self._path(rel)
        if not path.is_dir():
            raise FileNotFoundError(f"{str(path)!r} is not a directory")
        dirs: list[str] = []
        files: list[str] = []
        with os.scandir(path) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                (dirs if entry.is_dir() else files).append(entry.name)
        return sorted(dirs), sorted(files)

    def isdir(self, rel: str) -> bool:
        return self._path(rel).is_dir()

    def missing(self, rels: Sequence[str]) -> list[int]:
        # One directory listing per parent instead of one stat per file: a 100k-image
        # list over ImageNet's 1,000 class folders costs 1,000 listings.
        by_parent: dict[str, list[int]] = defaultdict(list)
        names: list[str] = []
        for i, rel in enumerate(rels):
            parent, _, name = _norm(rel).rpartition("/")
            by_parent[parent].append(i)
            names.append(name)
        out: list[int] = []
        for parent, idx in by_parent.items():
            try:
                with os.scandir(self._path(parent)) as it:
                    present = {e.name for e in it if not e.is_dir()}
            except (FileNotFoundError, NotADirectoryError):
                present = set()
            out.extend(i for i in idx if names[i] not in present)
        return sorted(out)


class ZipStore(ImageStore):
    """Images inside a zip archive, read straight from it (members stored or deflated).

    ``prefix`` selects a folder inside the archive as the store's root.

    The archive handle is opened on first use and kept per process and per thread:
    a forked DataLoader worker sees a different process id and opens its own handle,
    a pickled store (spawned workers) travels without one.

    Example:
        >>> store = ZipStore("cifar10-jpeg.zip")  # doctest: +SKIP
        >>> store.listdir("train")[0][:2]  # doctest: +SKIP
        ['airplane', 'automobile']
    """

    def __init__(self, path: str | os.PathLike[str], prefix: str = "") -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"zip archive {str(self.path)!r} does not exist")
        if not zipfile.is_zipfile(self.path):
            raise ValueError(f"{str(self.path)!r} is not a zip archive")
        self.prefix = _norm(prefix)
        self.location = str(self.path) + (f"!/{self.prefix}" if self.prefix else "")
        self._local = threading.local()
        self._files: frozenset[str] | None = None
        self._dirs: dict[str, tuple[list[str], list[str]]] | None = None

    # pickling: no open handle, no cached member table (cheap to send to workers)
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_local")
        state["_files"] = None
        state["_dirs"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def _zip(self) -> zipfile.ZipFile:
        zf: zipfile.ZipFile | None = getattr(self._local, "zf", None)
        if zf is None or getattr(self._local, "pid", None) != os.getpid():
            # A handle inherited through fork shares its file offset with the parent:
            # never reuse it, open a fresh one for this process.
            zf = zipfile.ZipFile(self.path)
            self._local.zf = zf
            self._local.pid = os.getpid()
        return zf

    def _member(self, rel: str) -> str:
        return _join(self.prefix, rel)

    def _table(self) -> tuple[frozenset[str], dict[str, tuple[list[str], list[str]]]]:
        if self._files is None or self._dirs is None:
            files: set[str] = set()
            tree: dict[str, tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
            tree[""]  # the root exists even in an empty archive
            pre = self.prefix + "/" if self.prefix else ""
            for raw in self._zip().namelist():
                is_dir = raw.endswith("/")
                name = raw.rstrip("/")
                if pre and not name.startswith(pre):
                    continue
                name = name[len(pre) :]
                if not name:
                    continue
                parts = name.split("/")
                # every ancestor is a directory, whether or not the zip lists it
                for depth in range(len(parts) if is_dir else len(parts) - 1):
                    tree["/".join(parts[:depth])][0].add(parts[depth])
                    tree["/".join(parts[: depth + 1])]
                if not is_dir:
                    tree["/".join(parts[:-1])][1].add(parts[-1])
                    files.add(name)
            if self.prefix and len(tree) == 1 and not tree[""][0] and not tree[""][1]:
                raise FileNotFoundError(f"{str(self.path)!r} has no folder {self.prefix!r}")
            self._files = frozenset(files)
            self._dirs = {k: (sorted(d), sorted(f)) for k, (d, f) in tree.items()}
        return self._files, self._dirs

    def read_bytes(self, rel: str) -> bytes:
        try:
            return self._zip().read(self._member(rel))
        except KeyError:
            raise FileNotFoundError(
                f"image {rel!r} not found: {str(self.path)!r} has no member {self._member(rel)!r}"
            ) from None

    def listdir(self, rel: str = "") -> tuple[list[str], list[str]]:
        _, tree = self._table()
        key = _norm(rel)
        if key not in tree and key != "":
            raise FileNotFoundError(f"{self.location!r} has no folder {key!r}")
        dirs, files = tree.get(key, ([], []))
        return (
            [d for d in dirs if not d.startswith(".")],
            [f for f in files if not f.startswith(".")],
        )

    def isdir(self, rel: str) -> bool:
        _, tree = self._table()
        return _norm(rel) in tree

    def missing(self, rels: Sequence[str]) -> list[int]:
        files, _ = self._table()
        return [i for i, rel in enumerate(rels) if _norm(rel) not in files]


def open_store(path: str | os.PathLike[str], prefix: str = "") -> ImageStore:
    """A :class:`ZipStore` for a ``.zip`` file, a :class:`DirectoryStore` for a directory.

    Raises:
        FileNotFoundError: if ``path`` is neither (the message says what was expected).
    """
    p = Path(path)
    if p.is_dir():
        store: ImageStore = DirectoryStore(p / prefix if prefix else p)
        return store
    if p.is_file():
        if zipfile.is_zipfile(p):
            return ZipStore(p, prefix)
        raise ValueError(
            f"{str(p)!r} is a file but not a zip archive; expected a directory or a .zip"
        )
    raise FileNotFoundError(
        f"{str(p)!r} does not exist; expected a directory of images or a .zip of one"
    )


# --------------------------------------------------------------------------------------------
# label sources
# --------------------------------------------------------------------------------------------


class ListEntry(NamedTuple):
    """One labelled image of a list or CSV: relative ``path``, integer ``label``, 1-based ``line``."""

    path: str
    label: int
    line: int


class CsvEntry(NamedTuple):
    """One CSV row: ``path``, ``label`` as written (a class name or an integer), ``split`` or None."""

    path: str
    label: str
    split: str | None
    line: int


def scan_image_folder(store: ImageStore, rel: str = "") -> tuple[list[str], list[tuple[str, int]]]:
    """Classes and samples of the ImageFolder tree ``<rel>/<class>/<file>`` in ``store``.

    Classes are the sub-folders of ``rel`` sorted by name; samples are
    ``(relative path, class index)`` for every image file (:func:`is_image_file`) of
    each class folder, sorted by path. Files directly under ``rel`` and deeper
    folders are ignored, as by torchvision's ImageFolder (which also walks deeper
    folders; here a nested folder is an error, to catch a wrong ``root``).

    Raises:
        FileNotFoundError: ``rel`` is not a folder of the store.
        ValueError: no class folders, a class folder without images, or nested folders.
    """
    where = f"{store.location}/{_norm(rel)}" if _norm(rel) else store.location
    if not store.isdir(rel):
        raise FileNotFoundError(f"{where!r} is not a folder; expected <root>/<class>/<image>")
    classes, _ = store.listdir(rel)
    if not classes:
        raise ValueError(f"{where!r} has no class folders; expected <root>/<class>/<image>")
    samples: list[tuple[str, int]] = []
    for idx, name in enumerate(classes):
        sub, files = store.listdir(_join(rel, name))
        if sub:
            raise ValueError(
                f"class folder {where}/{name} holds sub-folders ({sub[:3]}...); expected image "
                "files only - is the root one level too high?"
            )
        images = [f for f in files if is_image_file(f)]
        if not images:
            raise ValueError(
                f"class folder {where}/{name} holds no images (endings {IMAGE_EXTENSIONS})"
            )
        samples.extend((_join(rel, name, f), idx) for f in images)
    return classes, samples


def read_list_file(path: str | os.PathLike[str], num_classes: int | None = None) -> list[ListEntry]:
    """Parse an OLTR-style list: one ``<relative/path> <label>`` per line.

    Blank lines are skipped. The label is the last whitespace-separated field, so a
    path may itself contain spaces.

    Args:
        path: the list file.
        num_classes: if given, labels must lie in ``[0, num_classes)``.

    Returns:
        One :class:`ListEntry` per image, in file order.

    Raises:
        FileNotFoundError: the list does not exist.
        ValueError: a malformed line or a label out of range (file and line named).

    Example:
        >>> read_list_file("ImageNet_LT_val.txt", num_classes=1000)[0]  # doctest: +SKIP
        ListEntry(path='train/n01440764/n01440764_762.JPEG', label=0, line=1)
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"list file {str(p)!r} does not exist")
    out: list[ListEntry] = []
    for lineno, text in numbered_lines(p):
        parts = text.rsplit(None, 1)
        if len(parts) != 2:
            raise ValueError(f"{p}:{lineno}: expected '<relative/path> <label>', got {text!r}")
        rel, lab = parts
        try:
            label = int(lab)
        except ValueError:
            raise ValueError(
                f"{p}:{lineno}: the label must be an integer, got {lab!r} in {text!r}"
            ) from None
        out.append(ListEntry(_norm(rel), label, lineno))
    check_labels(out, num_classes, str(p))
    return out


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number from 1, stripped text)`` of every non-blank line of a UTF-8 text file."""
    with path.open("r", encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, start=1):
            text = raw.strip()
            if text:
                yield lineno, text


def check_labels(entries: Iterable[ListEntry], num_classes: int | None, source: str) -> None:
    """Raise ``ValueError`` naming ``source`` and the line of the first label outside ``[0, C)``."""
    for e in entries:
        if e.label < 0 or (num_classes is not None and e.label >= num_classes):
            bound = f"[0, {num_classes})" if num_classes is not None else ">= 0"
            raise ValueError(
                f"{source}:{e.line}: label {e.label} of {e.path!r} is outside the class range {bound}"
            )


_PATH_COLS = ("path", "file", "filename", "image")
_LABEL_COLS = ("label", "class", "target")


def read_csv_file(path: str | os.PathLike[str]) -> list[CsvEntry]:
    """Parse a CSV of ``path,label`` rows, with an optional ``split`` column.

    With a header row (one cell among ``path/file/filename/image`` and one among
    ``label/class/target``, case-insensitive), the columns are found by name and a
    ``split`` column is read if present. Without a header the columns are
    ``path,label[,split]``. Labels are returned as written; see the ``folder``
    protocol for how they become class indices.

    Raises:
        FileNotFoundError: the CSV does not exist.
        ValueError: an empty file, a row with the wrong number of cells, an empty path
            or label, or a split outside ``train/val/test`` (file and line named).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"CSV file {str(p)!r} does not exist")
    with p.open("r", encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    numbered = [(i, r) for i, r in enumerate(rows, start=1) if any(c.strip() for c in r)]
    if not numbered:
        raise ValueError(f"{p}: empty CSV; expected rows of path,label")
    first = [c.strip().lower() for c in numbered[0][1]]
    path_col, label_col, split_col = 0, 1, 2 if len(first) >= 3 else None
    if any(c in _PATH_COLS for c in first) and any(c in _LABEL_COLS for c in first):
        path_col = next(i for i, c in enumerate(first) if c in _PATH_COLS)
        label_col = next(i for i, c in enumerate(first) if c in _LABEL_COLS)
        split_col = first.index("split") if "split" in first else None
        numbered = numbered[1:]
        width = len(first)
    else:
        width = len(first)
        if width not in (2, 3):
            raise ValueError(
                f"{p}:{numbered[0][0]}: expected 'path,label' or 'path,label,split' (or a header "
                f"row naming the columns), got {numbered[0][1]!r}"
            )
    out: list[CsvEntry] = []
    for lineno, row in numbered:
        if len(row) != width:
            raise ValueError(f"{p}:{lineno}: expected {width} cells, got {len(row)}: {row!r}")
        rel, label = row[path_col].strip(), row[label_col].strip()
        if not rel or not label:
            raise ValueError(f"{p}:{lineno}: empty path or label in {row!r}")
        split = row[split_col].strip().lower() if split_col is not None else None
        if split is not None and split not in ("train", "val", "test"):
            raise ValueError(f"{p}:{lineno}: split must be train, val or test, got {split!r}")
        out.append(CsvEntry(_norm(rel), label, split, lineno))
    if not out:
        raise ValueError(f"{p}: no data rows after the header")
    return out


def check_exists(store: ImageStore, entries: Sequence[ListEntry], source: str) -> None:
    """Raise ``FileNotFoundError`` if any entry's image is not in ``store``.

    The message names ``source`` and the line of up to five missing images and the
    total missing, so a wrong root is told apart from a few absent files.
    """
    miss = store.missing([e.path for e in entries])
    if not miss:
        return
    shown = "\n".join(f"  {source}:{entries[i].line}: {entries[i].path}" for i in miss[:5])
    more = f"\n  ... and {len(miss) - 5} more" if len(miss) > 5 else ""
    raise FileNotFoundError(
        f"{len(miss)} of {len(entries)} images named by {source} are missing from "
        f"{store.location}:\n{shown}{more}"
    )


# --------------------------------------------------------------------------------------------
# dataset
# --------------------------------------------------------------------------------------------


class ImageDataset(Dataset[tuple[Tensor, int]]):
    """A map-style dataset of ``(transform(image), label)`` over a store.

    Args:
        store: where the files are.
        samples: ``(relative path, label)`` pairs.
        transform: PIL RGB image -> tensor; default :func:`~cdbloss.lab.data.transforms.to_tensor`
            (a ``(3, H, W)`` float tensor in ``[0, 1]``).
        num_classes: if given, labels are checked to lie in ``[0, num_classes)``.

    Attributes:
        targets: the labels, a list of ints (for samplers and class counts).

    Example:
        >>> ds = ImageDataset(open_store("pets.zip"), [("cat/1.jpg", 0)])  # doctest: +SKIP
        >>> x, y = ds[0]  # x: (3, H, W) float32, y: 0  # doctest: +SKIP
    """

    def __init__(
        self,
        store: ImageStore,
        samples: Sequence[tuple[str, int]],
        transform: Callable[[Image.Image], Tensor] | None = None,
        num_classes: int | None = None,
    ) -> None:
        self.store = store
        self.samples = [(str(p), int(y)) for p, y in samples]
        self.targets = [y for _, y in self.samples]
        if transform is None:
            from .transforms import to_tensor

            transform = to_tensor()
        self.transform: Callable[[Image.Image], Tensor] = transform
        for p, y in self.samples:
            if y < 0 or (num_classes is not None and y >= num_classes):
                raise ValueError(f"label {y} of {p!r} is outside [0, {num_classes})")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        rel, label = self.samples[index]
        return self.transform(self.store.open_image(rel)), label

    def __repr__(self) -> str:
        return f"ImageDataset({self.store.location!r}, {len(self)} images)"
