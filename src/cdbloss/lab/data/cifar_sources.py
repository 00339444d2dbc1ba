"""CIFAR-10 / CIFAR-100 sources: safe readers for both published forms, the lossless copy, a decoded cache.

:func:`fetch_cifar` (``cdbloss data fetch cifar10`` / ``cifar100``) gets a
source into the cache: one already there, else the official archive from
Krizhevsky's page (:attr:`CifarSpec.urls`, checked against its published MD5,
resumable, see :mod:`cdbloss.lab.data.download`), else, for CIFAR-10, the
ImageFolder zip in ``shared/data`` beside the checkout.

Sources that a load reads (the first found wins; ``source=`` names one explicitly):

* the official python archive ``cifar-10-python.tar.gz`` /
  ``cifar-100-python.tar.gz``, or its extracted folder ``cifar-10-batches-py/`` /
  ``cifar-100-python/``. The batches are Python pickles; they are read with a
  restricted unpickler that resolves only the three globals the real files
  need (``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``,
  ``numpy.dtype``), so a crafted file cannot run code. Each batch's MD5 is
  checked against the published one.
* an ImageFolder tree ``[prefix/]{train,test}/<class>/<image>``, as a folder or
  a zip (the form of ``shared/data/cifar10-jpeg/cifar10-jpeg.zip``, whose
  sha256 is known). Images are decoded once with Pillow.

Searched in ``root`` (or the cache, see :func:`cdbloss.lab.data.cache.cache_root`)
and ``root/<dataset>/``: the archive, the extracted folder,
``<dataset>-jpeg.zip``, ``<dataset>-jpeg/``; then, for CIFAR-10,
``shared/data/cifar10-jpeg/cifar10-jpeg.zip`` beside the checkout.

Whatever the source, the decoded arrays are written once to
``<cache>/<dataset>/decoded-<kind>-<decoder>-<sha256 of the source>.npz``
(atomically, and only after verification), and later loads read that file. The
decoder part is :data:`DECODED_LAYOUT` and, for images, Pillow's version, so a new
decoder or sample order never reads a stale cache.

Example:
    >>> from cdbloss.lab.data.base import load_protocol            # doctest: +SKIP
    >>> s = load_protocol("cifar-lt", dataset="cifar10", imbalance_factor=100)  # doctest: +SKIP
    >>> s.class_counts                                         # doctest: +SKIP
    [4950, 2967, 1778, 1066, 639, 383, 229, 137, 82, 49]
"""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import pickle
import sys
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from cdbloss.lab.data.arrays import ImageArrays, check_label_range
from cdbloss.lab.data.cache import (
    cache_root,
    file_digest,
    find_shared,
    is_image_file,
    safe_member_name,
    verify_digest,
)
from cdbloss.lab.data.cifar_png import Cifar10Png, find_cifar10_png, read_cifar10_png
from cdbloss.lab.data.download import Fetched, NetSettings, download_file, first_source
from cdbloss.lab.io import atomic_write, progress

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR100_CLASSES",
    "CIFAR_PAGE",
    "CIFAR_SPECS",
    "DECODED_LAYOUT",
    "SOURCE_KEYWORDS",
    "CifarArrays",
    "CifarSpec",
    "fetch_cifar",
    "find_cifar_source",
    "load_cifar",
    "read_cifar_imagefolder",
    "read_cifar_python",
    "restricted_unpickle",
    "spec_of",
]

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
CIFAR100_CLASSES: tuple[str, ...] = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
    "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom",
    "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
    "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake",
    "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle",
    "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)  # fmt: skip

_MAX_MEMBER_BYTES = 1 << 20  # a 32x32 image is a few KiB; refuse anything huge


@dataclass(frozen=True)
class CifarSpec:
    """What is known about one CIFAR dataset and its files."""

    name: str
    class_names: tuple[str, ...]
    archive: str
    folder: str
    train_members: tuple[tuple[str, str], ...]  # (file name, md5)
    test_members: tuple[tuple[str, str], ...]
    meta_member: tuple[str, str]
    meta_key: str
    label_key: str
    train_per_class: int
    test_per_class: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    jpeg_zip_sha256: tuple[str, ...] = ()  # ImageFolder zips known byte for byte
    shared_zip: str | None = None  # its place under shared/data
    urls: tuple[str, ...] = ()  # where the official archive is published, in order
    archive_md5: str = ""  # the published MD5 of the archive

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


CIFAR_SPECS: dict[str, CifarSpec] = {
    "cifar10": CifarSpec(
        "cifar10", CIFAR10_CLASSES, "cifar-10-python.tar.gz", "cifar-10-batches-py",
        urls=("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
        archive_md5="c58f30108f718f92721af3b95e74349a",
        train_members=(
            ("data_batch_1", "c99cafc152244af753f735de768cd75f"),
            ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
            ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
            ("data_batch_4", "634d18415352ddfa80567beed471001a"),
            ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
        ),
        test_members=(("test_batch", "40351d587109b95175f43aff81a1287e"),),
        meta_member=("batches.meta", "5ff9c542aee3614f3951f8cda6e48888"),
        meta_key="label_names", label_key="labels",
        train_per_class=5000, test_per_class=1000,
        mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
        jpeg_zip_sha256=("05b4c8c8bf43c21250b5d4abc4621c4fed6837d691555b00c9215bfc6b363d11",),
        shared_zip="cifar10-jpeg/cifar10-jpeg.zip",
    ),
    "cifar100": CifarSpec(
        "cifar100", CIFAR100_CLASSES, "cifar-100-python.tar.gz", "cifar-100-python",
        urls=("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
        archive_md5="eb9058c3a382ffc7106e4002c42a8d85",
        train_members=(("train", "16019d7e3df5f24257cddd939b257f8d"),),
        test_members=(("test", "f0ef6b0ae62326f3e7ffdfab6717acfc"),),
        meta_member=("meta", "7973b15100ade9c7d40fb424638fde48"),
        meta_key="fine_label_names", label_key="fine_labels",
        train_per_class=500, test_per_class=100,
        mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762),
    ),
}  # fmt: skip


def spec_of(dataset: str) -> CifarSpec:
    """The :class:`CifarSpec` of ``dataset``; an unknown name lists the known ones."""
    try:
        return CIFAR_SPECS[dataset]
    except KeyError:
        raise ValueError(
            f"unknown CIFAR dataset {dataset!r}; known: {sorted(CIFAR_SPECS)}"
        ) from None


#: The arrays of a CIFAR source: an :class:`~cdbloss.lab.data.arrays.ImageArrays` with
#: ``(N, 3, 32, 32)`` images; ``source`` records the path, kind, checksums, cache file
#: and ``pixels``; ``extra_test`` the ``lossless-1000`` and ``jpeg-1000`` sets of CIFAR-10.
CifarArrays = ImageArrays


def _source_digest(path: Path) -> str:
    """sha256 of a file; of a folder: over every file's relative name and sha256, in name order."""
    if path.is_file():
        return file_digest(path)
    h = hashlib.sha256()
    for f in sorted((x for x in path.rglob("*") if x.is_file()), key=lambda x: x.as_posix()):
        rel = f.relative_to(path).as_posix().encode()
        h.update(rel + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


# ---------------------------------------------------------------------------
# The official python archive


def _numpy_reconstruct() -> Callable[..., Any]:
    # numpy >= 2 moved the module to numpy._core; the files name numpy.core.
    for mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            fn = getattr(importlib.import_module(mod), "_reconstruct", None)
        except ImportError:
            continue
        if fn is not None:
            return fn  # type: ignore[no-any-return]
    raise ImportError("numpy's multiarray._reconstruct was not found")  # pragma: no cover


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that can build dicts, lists, str/bytes, numbers and numpy arrays, nothing else.

    The CIFAR batches reference exactly three globals (to rebuild the ``data``
    array): ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray`` and
    ``numpy.dtype``. ``numpy._core.multiarray._reconstruct`` (the same
    function under numpy >= 2's name) is the only addition. Every other global,
    including ``os.system``, ``builtins.eval`` or ``subprocess.Popen``, raises.
    """

    def __init__(self, file: io.BytesIO, name: str) -> None:
        super().__init__(file, encoding="bytes")
        self._name = name
        rec = _numpy_reconstruct()
        self._allowed: dict[tuple[str, str], Any] = {
            ("numpy.core.multiarray", "_reconstruct"): rec,
            ("numpy._core.multiarray", "_reconstruct"): rec,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
        }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"{self._name}: refusing to load global {module}.{name}: a CIFAR batch holds "
                "only dicts, lists, strings, ints and numpy arrays "
                f"(allowed globals: {sorted('.'.join(k) for k in self._allowed)})"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError(f"{self._name}: persistent ids are not allowed")


def restricted_unpickle(data: bytes, name: str = "<bytes>") -> dict[str, Any]:
    """Unpickle a CIFAR batch or meta file safely; keys come back as ``str``.

    Raises:
        ValueError: a forbidden global, a malformed pickle, or a top level
            that is not a dict (names ``name``).
    """
    try:
        obj = _CifarUnpickler(io.BytesIO(data), name).load()
    except pickle.UnpicklingError as err:
        if str(err).startswith(name):  # our own refusal, already names the file
            raise ValueError(str(err)) from None
        raise ValueError(f"{name}: not a valid CIFAR pickle ({err})") from None
    except (
        EOFError, AttributeError, ImportError, IndexError, KeyError, TypeError, ValueError,
        OverflowError, MemoryError,
    ) as err:  # fmt: skip
        raise ValueError(
            f"{name}: not a valid CIFAR pickle ({type(err).__name__}: {err})"
        ) from None
    if not isinstance(obj, dict):
        raise ValueError(f"{name}: expected a dict at the top level, got {type(obj).__name__}")
    out: dict[str, Any] = {}
    for k, v in obj.items():
        if not isinstance(k, (bytes, str)):
            raise ValueError(f"{name}: expected str keys, got {type(k).__name__}")
        out[k.decode("latin1") if isinstance(k, bytes) else k] = v
    return out


def _text(x: object, name: str) -> str:
    if isinstance(x, bytes):
        return x.decode("utf-8")
    if isinstance(x, str):
        return x
    raise ValueError(f"{name}: expected a string, got {type(x).__name__}")


def _parse_batch(
    batch: dict[str, Any], spec: CifarSpec, name: str
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    data = batch.get("data")
    labels = batch.get(spec.label_key)
    if not isinstance(data, np.ndarray) or type(data) is not np.ndarray:
        raise ValueError(f"{name}: 'data' must be a numpy array, got {type(data).__name__}")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{name}: 'data' must be (N, 3072) uint8, got {data.shape} {data.dtype}")
    if isinstance(labels, np.ndarray) and np.issubdtype(labels.dtype, np.integer):
        lab = labels.astype(np.int64).ravel()
    elif isinstance(labels, list) and all(type(v) is int for v in labels):
        lab = np.asarray(labels, dtype=np.int64)
    else:
        raise ValueError(f"{name}: {spec.label_key!r} must be a list of ints")
    if lab.shape[0] != data.shape[0]:
        raise ValueError(f"{name}: {lab.shape[0]} labels for {data.shape[0]} images")
    check_label_range(lab, spec.num_classes, name)
    # Each row: 1024 red, 1024 green, 1024 blue values, row-major -> (N, 3, 32, 32).
    return data.reshape(-1, 3, 32, 32), lab


def _read_python_members(
    p: Path, spec: CifarSpec, wanted: set[str]
) -> tuple[dict[str, bytes], str]:
    """The bytes of the ``wanted`` batch files of the python version, from its folder or
    its tar archive, and which of the two ``p`` was (``"python-folder"``/``"python-archive"``)."""
    raw: dict[str, bytes] = {}
    if p.is_dir():
        for n in wanted:
            f = p / n
            if not f.is_file():
                raise FileNotFoundError(
                    f"{p}: missing {n} (expected {', '.join(sorted(wanted))} in this folder)"
                )
            raw[n] = f.read_bytes()
        kind = "python-folder"
    elif p.is_file():
        try:
            tar = tarfile.open(p, "r:*")
        except (tarfile.TarError, OSError, EOFError) as err:
            raise ValueError(f"{p}: not a readable tar archive ({err})") from None
        with tar:
            try:
                for m in tar:
                    mp = PurePosixPath(m.name)
                    if m.isfile() and mp.name in wanted and mp.parent.name == spec.folder:
                        safe_member_name(m.name, p)
                        fh = tar.extractfile(m)
                        if fh is not None:
                            raw[mp.name] = fh.read()
            except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
                raise ValueError(f"{p}: corrupted or truncated archive ({err})") from None
        missing = sorted(wanted - set(raw))
        if missing:
            raise ValueError(
                f"{p}: the archive has no {spec.folder}/{missing[0]} (missing: {missing})"
            )
        kind = "python-archive"
    else:
        raise FileNotFoundError(f"CIFAR source not found: {p}")
    return raw, kind


def read_cifar_python(
    path: str | os.PathLike[str], dataset: str = "cifar10", verify: bool = True, *,
    digest: str | None = None,
) -> CifarArrays:  # fmt: skip
    """Read the official python version: the ``.tar.gz`` or its extracted folder.

    Args:
        path: ``cifar-10-python.tar.gz`` (any tar compression) or a folder
            holding ``data_batch_1``... (or ``train``/``test``/``meta``).
        dataset: ``"cifar10"`` or ``"cifar100"``.
        verify: check each batch's MD5 against the published value.
        digest: the source's sha256 if already known (saves reading it twice).

    Raises:
        FileNotFoundError: a batch is missing (names it).
        ValueError: checksum mismatch, forbidden pickle content, wrong types or
            shapes, or a label outside the class range (names the member).
    """
    spec = spec_of(dataset)
    p = Path(path)
    members = (*spec.train_members, *spec.test_members, spec.meta_member)
    raw, kind = _read_python_members(p, spec, {n for n, _ in members})
    md5s = {n: hashlib.md5(b).hexdigest() for n, b in raw.items()}
    if verify:
        for n, want in members:
            verify_digest(f"{p}:{n}", md5s[n], want, "md5")
    meta = restricted_unpickle(raw[spec.meta_member[0]], f"{p}:{spec.meta_member[0]}")
    names_raw = meta.get(spec.meta_key)
    if not isinstance(names_raw, list) or len(names_raw) != spec.num_classes:
        raise ValueError(
            f"{p}:{spec.meta_member[0]}: {spec.meta_key!r} must list {spec.num_classes} names"
        )
    names = [_text(x, f"{p}:{spec.meta_member[0]}") for x in names_raw]
    if verify and tuple(names) != spec.class_names:
        raise ValueError(f"{p}: class names {names[:5]}... differ from {spec.name}'s")

    def split(
        ms: tuple[tuple[str, str], ...],
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
        xs, ys = [], []
        for n, _ in ms:
            x, y = _parse_batch(restricted_unpickle(raw[n], f"{p}:{n}"), spec, f"{p}:{n}")
            xs.append(x)
            ys.append(y)
        return np.concatenate(xs), np.concatenate(ys)

    tr_x, tr_y = split(spec.train_members)
    te_x, te_y = split(spec.test_members)
    source = {
        "path": str(p),
        "kind": kind,
        "sha256": digest or _source_digest(p),
        "md5": md5s,
        "verified": verify,
    }
    return CifarArrays(spec.name, tr_x, tr_y, te_x, te_y, names, source)


# ---------------------------------------------------------------------------
# ImageFolder trees (folder or zip)


def _layout(names: list[str], where: str) -> dict[str, dict[str, list[str]]]:
    """Group image member names as split -> class -> [names]; check the layout."""
    out: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    prefix: tuple[str, ...] | None = None
    for n in names:
        p = safe_member_name(n, where)
        if (p.parts and p.parts[0] == "__MACOSX") or p.name.startswith("."):
            continue
        if not is_image_file(p.name):
            continue
        if len(p.parts) < 3 or p.parts[-3] not in out:
            raise ValueError(
                f"{where}: image {n!r} is not under [prefix/]train/<class>/ or "
                "[prefix/]test/<class>/"
            )
        pre = p.parts[:-3]
        if prefix is None:
            prefix = pre
        elif pre != prefix:
            raise ValueError(f"{where}: images under two different roots: {prefix} and {pre}")
        out[p.parts[-3]].setdefault(p.parts[-2], []).append(n)
    for split in out:
        if not out[split]:
            raise ValueError(f"{where}: no images under {split}/<class>/")
    return out


def _class_order(
    groups: dict[str, dict[str, list[str]]], spec: CifarSpec, where: str, verify: bool
) -> list[str]:
    train_cls, test_cls = sorted(groups["train"]), sorted(groups["test"])
    if train_cls != test_cls:
        raise ValueError(
            f"{where}: train/ and test/ hold different classes: "
            f"{sorted(set(train_cls) ^ set(test_cls))}"
        )
    if set(train_cls) == set(spec.class_names):
        return list(spec.class_names)  # the official label order
    if verify:
        raise ValueError(
            f"{where}: expected the {spec.num_classes} {spec.name} classes "
            f"({', '.join(spec.class_names[:4])}, ...), found {len(train_cls)}: "
            f"{', '.join(train_cls[:6])}{', ...' if len(train_cls) > 6 else ''}"
        )
    return train_cls


def _decode(data: bytes, name: str) -> npt.NDArray[np.uint8]:
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover - Pillow is in the images extra
        raise RuntimeError(
            "decoding CIFAR images from an ImageFolder needs Pillow: "
            "pip install 'cdb-loss[images]' (or pillow)"
        ) from None

    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.size != (32, 32):
                raise ValueError(f"{name}: expected a 32x32 image, got {im.size[0]}x{im.size[1]}")
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)  # (32, 32, 3)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"{name}: not a readable image ({err})") from None
    return arr.transpose(2, 0, 1)  # (3, 32, 32)


def _dir_reader(p: Path) -> Callable[[str], bytes]:
    """``read(member)`` for a folder: the file's bytes."""
    return lambda n: (p / n).read_bytes()


def _zip_reader(
    zf: zipfile.ZipFile, infos: dict[str, zipfile.ZipInfo], p: Path
) -> Callable[[str], bytes]:
    """``read(member)`` for a zip, refusing members too large to be a 32x32 image."""

    def read(n: str) -> bytes:
        if infos[n].file_size > _MAX_MEMBER_BYTES:
            raise ValueError(f"{p}:{n}: {infos[n].file_size} bytes is too large for a 32x32 image")
        try:
            return zf.read(n)
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise ValueError(f"{p}:{n}: corrupted zip member ({err})") from None

    return read


def _check_counts(
    groups: dict[str, dict[str, list[str]]], order: Sequence[str], spec: CifarSpec, where: str
) -> None:
    """Every class must have the official number of train and test images."""
    for split, want in (("train", spec.train_per_class), ("test", spec.test_per_class)):
        for c in order:
            got = len(groups[split][c])
            if got != want:
                raise ValueError(
                    f"{where}: {split}/{c} has {got} images, {spec.name} has {want}; "
                    "pass verify=False for a deliberately different set"
                )


def _decode_splits(
    groups: dict[str, dict[str, list[str]]],
    order: Sequence[str],
    read: Callable[[str], bytes],
    p: Path,
) -> dict[str, tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]]:
    """Decode every image: ``{split: (images (N, 3, 32, 32) uint8, labels (N,) int64)}``,
    ordered by class (``order``), then member name."""
    arrays: dict[str, tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]] = {}
    total = sum(len(ns) for g in groups.values() for ns in g.values())
    t0 = time.perf_counter()
    print(f"decoding {total} images from {p} (once; the result is cached)", file=sys.stderr)
    bar = iter(progress(range(total), total, f"decoding {p.name}", unit="img"))
    for split in ("train", "test"):
        members = [(n, y) for y, c in enumerate(order) for n in sorted(groups[split][c])]
        x = np.empty((len(members), 3, 32, 32), dtype=np.uint8)
        for i, (n, _) in enumerate(members):
            x[i] = _decode(read(n), f"{p}:{n}")
            next(bar, None)
        arrays[split] = (x, np.asarray([y for _, y in members], dtype=np.int64))
    print(f"decoded {total} images in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return arrays


def read_cifar_imagefolder(
    path: str | os.PathLike[str], dataset: str = "cifar10", verify: bool = True, *,
    digest: str | None = None,
) -> CifarArrays:  # fmt: skip
    """Decode an ImageFolder tree of 32x32 images, a folder or a zip, into arrays.

    Layout: ``[prefix/]train/<class>/<image>`` and ``[prefix/]test/<class>/<image>``.
    Class ``c`` is the ``c``-th official name when the folders are the
    official classes (CIFAR's own order, which is alphabetical), else the
    ``c``-th folder name in sorted order (only with ``verify=False``).
    Samples are ordered by split, class, then member name, whatever the order
    inside the zip.

    Args:
        path: a ``.zip`` or a folder.
        dataset: ``"cifar10"`` or ``"cifar100"``.
        verify: a zip whose sha256 is a known release is accepted as is; any
            other source must hold exactly the official classes and
            per-class counts (5,000 / 1,000 for CIFAR-10, 500 / 100 for
            CIFAR-100). ``False`` accepts any classes and counts.
        digest: the source's sha256 if already known (saves reading it twice).

    Raises:
        FileNotFoundError: no such path.
        ValueError: bad layout, an unsafe member name, a member that is not a
            32x32 image, classes or counts that do not match (names the file).
    """
    spec = spec_of(dataset)
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"CIFAR source not found: {p}")
    zf: zipfile.ZipFile | None = None
    digest = digest or _source_digest(p)
    if p.is_dir():
        files = sorted(f.relative_to(p).as_posix() for f in p.rglob("*") if f.is_file())
        groups = _layout(files, str(p))
        kind, known = "imagefolder-dir", False
        read = _dir_reader(p)
    else:
        kind = "imagefolder-zip"
        try:
            zf = zipfile.ZipFile(p)
        except (zipfile.BadZipFile, OSError) as err:
            raise ValueError(f"{p}: not a readable zip ({err})") from None
        infos = {i.filename: i for i in zf.infolist() if not i.is_dir()}
        groups = _layout(sorted(infos), str(p))
        known = digest in spec.jpeg_zip_sha256
        read = _zip_reader(zf, infos, p)

    try:
        order = _class_order(groups, spec, str(p), verify)
        if verify and not known:
            _check_counts(groups, order, spec, str(p))
        arrays = _decode_splits(groups, order, read, p)
    finally:
        if zf is not None:
            zf.close()
    source = {
        "path": str(p),
        "kind": kind,
        "sha256": digest,
        "known_release": known,
        "verified": verify,
    }
    return CifarArrays(
        spec.name, arrays["train"][0], arrays["train"][1], arrays["test"][0], arrays["test"][1],
        list(order), source,
    )  # fmt: skip


# ---------------------------------------------------------------------------
# Finding a source and caching the decoded arrays


def _candidates(spec: CifarSpec, d: Path) -> list[Path]:
    return [
        d / spec.archive,
        d / spec.folder,
        d / f"{spec.name}-jpeg.zip",
        d / f"{spec.name}-jpeg",
    ]


CIFAR_PAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"


def fetch_cifar(
    dataset: str = "cifar10",
    root: str | os.PathLike[str] | None = None,
    *,
    net: NetSettings | None = None,
) -> Fetched:
    """Get a source of ``dataset`` into the cache; return its path and where it came from.

    In order: a source already in ``root`` (or the cache) or ``root/<dataset>/``
    (see :func:`find_cifar_source`; nothing is downloaded); the official
    archive from each of :attr:`CifarSpec.urls` into
    ``<cache>/<dataset>/<archive>``, checked against its published MD5 before
    it is kept, resumed when a ``.part`` file is there; then, for CIFAR-10, the
    ImageFolder zip in ``shared/data``. Decoding and the batch checks are
    :func:`load_cifar`'s.

    Raises:
        FetchError: no source worked; the message lists each and why, and how
            to get the archive by hand.
    """
    spec = spec_of(dataset)
    net = net if net is not None else NetSettings.from_env()
    base = cache_root(root)
    for d in (base, base / spec.name):
        for c in _candidates(spec, d):
            if c.exists():
                if c.name == spec.archive and c.is_file() and spec.archive_md5:
                    # a user-placed archive is checked like a downloaded one
                    verify_digest(c, file_digest(c, "md5"), spec.archive_md5, "md5")
                return Fetched(c, f"already there ({c})")
    target = base / spec.name / spec.archive
    sources: list[tuple[str, Callable[[], Path]]] = [
        (url, partial(download_file, url, target, md5=spec.archive_md5, net=net))
        for url in spec.urls
    ]
    if spec.shared_zip is not None:
        sources.append((f"shared/data/{spec.shared_zip}", partial(_shared, spec.shared_zip)))
    label, path = first_source(
        spec.name,
        sources,
        hint=f"Download {spec.archive} from {CIFAR_PAGE} and put it in {base / spec.name}, "
        "or pass --source <archive, folder or ImageFolder zip>.",
    )
    return Fetched(path, label)


def _shared(relative: str) -> Path:
    found = find_shared(relative)
    if found is None:
        raise FileNotFoundError(
            f"no shared/data/{relative} beside the checkout or in $CDBLOSS_SHARED_DATA"
        )
    return found


def find_cifar_source(dataset: str = "cifar10", root: str | os.PathLike[str] | None = None) -> Path:
    """The first existing source of ``dataset`` (see the module doc for the order).

    Raises:
        FileNotFoundError: none found; the message lists every path tried and
            how to get the data.
    """
    spec = spec_of(dataset)
    base = cache_root(root)
    tried: list[Path] = []
    for d in (base, base / spec.name):
        for c in _candidates(spec, d):
            tried.append(c)
            if c.exists():
                return c
    if spec.shared_zip is not None:
        shared = find_shared(spec.shared_zip)
        if shared is not None:
            return shared
        tried.append(Path("shared/data") / spec.shared_zip)
    raise FileNotFoundError(
        f"{spec.name}: no source found. Tried: {', '.join(str(t) for t in tried)}. "
        f"Run `cdbloss data fetch {spec.name}` (it downloads the official archive), or "
        f"download {spec.archive} from {CIFAR_PAGE} (the CIFAR page of Krizhevsky) and put it in "
        f"{base} (or {base / spec.name}), or pass source=<archive, extracted "
        f"{spec.folder}/ folder, or ImageFolder zip/folder>, or root=<folder holding it>; "
        f"$CDBLOSS_CACHE sets the default folder."
    )


def _source_kind(path: Path, spec: CifarSpec) -> Literal["python", "imagefolder"]:
    if path.is_dir():
        return "python" if (path / spec.meta_member[0]).is_file() else "imagefolder"
    return "imagefolder" if zipfile.is_zipfile(path) else "python"


_CACHE_KEYS = ("train_images", "train_labels", "test_images", "test_labels", "class_names")


def _read_cache(path: Path, spec: CifarSpec) -> CifarArrays | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if set(_CACHE_KEYS) - set(z.files):
                return None
            arrs = {k: z[k] for k in _CACHE_KEYS}
    except (OSError, ValueError, zipfile.BadZipFile):
        return None  # a damaged cache entry is rebuilt, never trusted
    for k in ("train_images", "test_images"):
        a = arrs[k]
        if a.dtype != np.uint8 or a.ndim != 4 or a.shape[1:] != (3, 32, 32):
            return None
    return CifarArrays(
        spec.name,
        arrs["train_images"],
        arrs["train_labels"].astype(np.int64),
        arrs["test_images"],
        arrs["test_labels"].astype(np.int64),
        [str(s) for s in arrs["class_names"]],
    )


#: ``source=`` keywords that name a kind of copy instead of a path.
SOURCE_KEYWORDS = ("lossless", "jpeg", "archive")


def _keyword_source(spec: CifarSpec, keyword: str, root: str | os.PathLike[str] | None) -> Path:
    """The path a ``source=`` keyword names (``jpeg`` / ``archive``; ``lossless`` is
    handled by :func:`load_cifar`)."""
    base = cache_root(root)
    found: list[Path] = []
    for d in (base, base / spec.name):
        for c in _candidates(spec, d):
            is_jpeg = c.name.startswith(f"{spec.name}-jpeg")
            if c.exists() and is_jpeg == (keyword == "jpeg"):
                found.append(c)
    if keyword == "jpeg" and spec.shared_zip is not None:
        shared = find_shared(spec.shared_zip)
        if shared is not None:
            found.append(shared)
    if not found:
        raise FileNotFoundError(
            f"{spec.name}: source={keyword!r} but no such copy was found in {base}"
            + (" or shared/data" if keyword == "jpeg" else "")
            + f"; `cdbloss data fetch {spec.name}` gets one"
        )
    return found[0]


def _auto_source(spec: CifarSpec, root: str | os.PathLike[str] | None) -> str | Path:
    """The default source: the official archive if it is in the cache (lossless and
    complete), else the lossless PNG copy (CIFAR-10), else the JPEG copy."""
    base = cache_root(root)
    for d in (base, base / spec.name):
        for c in (d / spec.archive, d / spec.folder):
            if c.exists():
                return c
    if spec.name == "cifar10" and find_cifar10_png() is not None:
        return "lossless"
    return find_cifar_source(spec.name, root)


def load_cifar(
    dataset: str = "cifar10",
    root: str | os.PathLike[str] | None = None,
    source: str | os.PathLike[str] | None = None,
    verify: bool = True,
) -> CifarArrays:
    """Find, verify, decode (once) and return CIFAR-10 or CIFAR-100.

    Args:
        dataset: ``"cifar10"`` or ``"cifar100"``.
        root: where to look for sources and where the decoded cache goes;
            default ``$CDBLOSS_CACHE`` or ``~/.cache/cdbloss``.
        source: an explicit archive, folder or zip (skips the search), or a keyword:
            ``"lossless"`` (CIFAR-10's PNG copy in ``shared/data/cifar10-png`` for the
            training images; the test set is the JPEG copy's 10,000, the only complete
            one here), ``"jpeg"`` (the JPEG ImageFolder zip) or ``"archive"`` (the
            official archive or its folder, in the cache). Default: the official
            archive if it is in the cache, else the lossless copy, else the JPEG copy.
        verify: checksums / structure checks (see :func:`read_cifar_python`,
            :func:`read_cifar_imagefolder`, :func:`~cdbloss.lab.data.cifar_png.read_cifar10_png`).
            Unverified data is never cached.

    Returns:
        :class:`CifarArrays`; ``source`` records the path, its sha256, the cache file
        and ``pixels`` (``"lossless"`` or ``"jpeg"`` for the training images). For
        CIFAR-10 with the lossless copy present, ``extra_test`` holds the
        ``lossless-1000`` and ``jpeg-1000`` evaluation sets.
    """
    spec = spec_of(dataset)
    if source is None:
        source = _auto_source(spec, root)
    if isinstance(source, str) and source in SOURCE_KEYWORDS:
        if source == "lossless":
            if spec.name != "cifar10":
                raise ValueError(f"source='lossless' exists for cifar10 only, not {spec.name}")
            return _load_lossless(spec, root, verify)
        source = _keyword_source(spec, source, root)
    arrays = _load_path(spec, Path(source).expanduser(), root, verify)
    _attach_lossless_tests(arrays, None, verify)
    return arrays


def _load_lossless(
    spec: CifarSpec, root: str | os.PathLike[str] | None, verify: bool
) -> CifarArrays:
    """Training images from the PNG copy; the test set from the JPEG copy."""
    png = read_cifar10_png(verify=verify)
    jpeg = _load_path(spec, _keyword_source(spec, "jpeg", root), root, verify)
    arrays = CifarArrays(
        spec.name,
        png.train_images,
        png.train_labels,
        jpeg.test_images,
        jpeg.test_labels,
        jpeg.class_names,
        {**png.source, "pixels": "lossless", "test_source": jpeg.source},
    )
    _attach_lossless_tests(arrays, png, verify, jpeg_test=jpeg)
    return arrays


def _attach_lossless_tests(
    arrays: CifarArrays,
    png: Cifar10Png | None,
    verify: bool,
    jpeg_test: CifarArrays | None = None,
) -> None:
    """Add ``lossless-1000`` and ``jpeg-1000`` to a CIFAR-10 load when both copies exist.

    The JPEG test images are ordered class by class and, within a class, by file number
    (the image's index among its class in the official order), so official test image
    ``i`` of class ``y`` and in-class rank ``r`` is JPEG test image ``1000 y + r``.
    """
    if arrays.dataset != "cifar10":
        return
    if png is None:
        if find_cifar10_png() is None:
            return
        png = read_cifar10_png(verify=verify)
    if jpeg_test is None:
        if arrays.source.get("kind", "").startswith("imagefolder"):
            jpeg_test = arrays
        else:
            shared = find_shared(CIFAR_SPECS["cifar10"].shared_zip or "")
            if shared is None:
                return
            jpeg_test = _load_path(spec_of("cifar10"), shared, None, verify)
    per_class = 1000  # the official CIFAR-10 test set, whatever a spec says
    if jpeg_test.test_labels.shape[0] != per_class * 10:
        return  # not the full ImageFolder test set: the positions would not hold
    idx = png.test_labels * per_class + png.test_ranks
    jpeg_imgs = jpeg_test.test_images[idx]
    if not np.array_equal(jpeg_test.test_labels[idx], png.test_labels):
        raise ValueError("the JPEG and lossless CIFAR-10 test images do not pair by label")
    gap = float(np.abs(jpeg_imgs.astype(np.int16) - png.test_images.astype(np.int16)).mean())
    if gap > 20.0:  # JPEG error is about 6 grey levels; unrelated images about 50
        raise ValueError(
            f"the JPEG and lossless CIFAR-10 test images do not pair image by image "
            f"(mean absolute difference {gap:.1f}, expected about 6)"
        )
    arrays.extra_test = {
        "lossless-1000": (png.test_images, png.test_labels),
        "jpeg-1000": (np.ascontiguousarray(jpeg_imgs), png.test_labels.copy()),
    }
    arrays.source = {
        **arrays.source,
        "extra_test": {"lossless-1000": png.source["path"], "jpeg_vs_lossless_mean_abs_diff": gap},
    }


#: Bumped whenever the decoded arrays of a source change (decoding, sample order): part of
#: the cache file's name, so a change never reuses a stale cache.
DECODED_LAYOUT = 2


def _decoder_key(kind: str) -> str:
    """The cache key's decoder part: the layout version, and Pillow's version for images."""
    if kind != "imagefolder":
        return f"v{DECODED_LAYOUT}"
    import PIL

    return f"v{DECODED_LAYOUT}-pil{PIL.__version__}"


def _load_path(
    spec: CifarSpec, path: Path, root: str | os.PathLike[str] | None, verify: bool
) -> CifarArrays:
    """Read one archive, folder or zip (through the decoded cache)."""
    if not path.exists():
        raise FileNotFoundError(f"{spec.name}: source {path} does not exist")
    kind = _source_kind(path, spec)
    digest = _source_digest(path)
    pixels = "jpeg" if kind == "imagefolder" else "lossless"
    cache_file = (
        cache_root(root) / spec.name / f"decoded-{kind}-{_decoder_key(kind)}-{digest[:16]}.npz"
    )
    if verify and cache_file.is_file():
        cached = _read_cache(cache_file, spec)
        if cached is not None:
            detail = {
                ("python", True): "python-folder",
                ("python", False): "python-archive",
                ("imagefolder", True): "imagefolder-dir",
                ("imagefolder", False): "imagefolder-zip",
            }[(kind, path.is_dir())]
            cached.source = {
                "path": str(path),
                "kind": detail,
                "sha256": digest,
                "verified": True,
                "cache": str(cache_file),
                "pixels": pixels,
            }
            return cached
    if kind == "python":
        arrays = read_cifar_python(path, spec.name, verify, digest=digest)
    else:
        arrays = read_cifar_imagefolder(path, spec.name, verify, digest=digest)
    arrays.source["pixels"] = pixels
    if verify:
        with atomic_write(cache_file) as f:
            np.savez(
                f,
                train_images=arrays.train_images,
                train_labels=arrays.train_labels,
                test_images=arrays.test_images,
                test_labels=arrays.test_labels,
                class_names=np.asarray(arrays.class_names, dtype=np.str_),
            )
        arrays.source["cache"] = str(cache_file)
    return arrays
