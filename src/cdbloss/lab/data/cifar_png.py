"""The lossless CIFAR-10 copy: the official training images as PNG sprite sheets.

``shared/data/cifar10-png`` (see its ``SOURCE.md``) holds 51 sheets
``cifar10_batch_<b>.png`` of 1000 x 1024 8-bit RGB pixels (rows = images, each row a
32 x 32 image in row-major HWC order) and ``cifar10_labels.json``. Images 0-49,999 are
the official training set in the official order; images 50,000-50,999 are the first
1,000 official test images. Every file is checked against ``SHA256SUMS``, whose own
sha256 is pinned here (:data:`PNG_SUMS_SHA256`), before anything is decoded.

:func:`read_cifar10_png` returns the images as the project's CHW arrays:

* ``train_images (50000, 3, 32, 32)`` in **class-major order** (a stable sort of the
  official order by label), which is the order of the JPEG copy's ImageFolder
  (``train/<class>/NNNN.jpg``, NNNN = the image's index among its class in official
  order). The same seed therefore draws the same images from either copy, so a
  JPEG run and a lossless run of one seed are paired image by image;
* ``test_images (1000, 3, 32, 32)``: the lossless first 1,000 test images, in official
  order, with their positions ``test_ranks`` among their class (the JPEG copy's NNNN).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from cdbloss.lab.data.cache import file_digest, find_shared

__all__ = ["PNG_FOLDER", "PNG_SUMS_SHA256", "Cifar10Png", "find_cifar10_png", "read_cifar10_png"]

#: The folder's place under ``shared/data``.
PNG_FOLDER = "cifar10-png"
#: sha256 of the folder's ``SHA256SUMS`` (which lists every sheet's and the labels' sha256).
PNG_SUMS_SHA256 = "c3b20bd2e233ecd3a836b15eb349bc549bbf76de6537704c2a26403492a6a5d1"
_PER_SHEET = 1000
_TEST = 1000  # the last sheet: the first 1,000 official test images
_CLASSES = 10


@dataclass
class Cifar10Png:
    """The lossless copy in memory.

    Attributes:
        train_images: ``(50000, 3, 32, 32)`` uint8, class-major (see the module doc).
        train_labels: ``(50000,)`` int64, sorted.
        test_images: ``(1000, 3, 32, 32)`` uint8, the first 1,000 official test images.
        test_labels: ``(1000,)`` int64.
        test_ranks: ``(1000,)`` int64, each test image's index among its class in the
            official test order (the JPEG copy's file number).
        source: path, kind ``"png-sprites"``, the sha256 of ``SHA256SUMS``, verified.
    """

    train_images: npt.NDArray[np.uint8]
    train_labels: npt.NDArray[np.int64]
    test_images: npt.NDArray[np.uint8]
    test_labels: npt.NDArray[np.int64]
    test_ranks: npt.NDArray[np.int64]
    source: dict[str, object]


def find_cifar10_png() -> Path | None:
    """``shared/data/cifar10-png`` beside the checkout (or under ``$CDBLOSS_SHARED_DATA``)
    if it holds ``SHA256SUMS``, else ``None``."""
    found = find_shared(PNG_FOLDER)
    return found if found is not None and (found / "SHA256SUMS").is_file() else None


def _read_sums(folder: Path, verify: bool) -> dict[str, str]:
    sums_path = folder / "SHA256SUMS"
    if not sums_path.is_file():
        raise FileNotFoundError(f"{folder}: no SHA256SUMS (not the lossless CIFAR-10 copy)")
    data = sums_path.read_bytes()
    if verify and hashlib.sha256(data).hexdigest() != PNG_SUMS_SHA256:
        raise ValueError(
            f"{sums_path}: sha256 {hashlib.sha256(data).hexdigest()} is not the known "
            f"{PNG_SUMS_SHA256}; pass verify=False for a deliberately different copy"
        )
    sums: dict[str, str] = {}
    for line in data.decode().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.strip().lstrip("*")] = digest
    return sums


def _checked(folder: Path, name: str, sums: dict[str, str], verify: bool) -> Path:
    path = folder / name
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: {name} is missing")
    if verify:
        want = sums.get(name)
        got = file_digest(path)
        if want is None or got != want:
            raise ValueError(f"{path}: sha256 {got} does not match SHA256SUMS ({want})")
    return path


def _sheet(path: Path) -> npt.NDArray[np.uint8]:
    """One sheet as ``(1000, 3, 32, 32)`` uint8."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode != "RGB" or im.size != (1024, _PER_SHEET):
            raise ValueError(
                f"{path}: expected a 1024 x 1000 RGB sheet, got {im.size[0]} x {im.size[1]} "
                f"{im.mode}"
            )
        hwc = np.asarray(im, dtype=np.uint8).reshape(_PER_SHEET, 32, 32, 3)
    return np.ascontiguousarray(hwc.transpose(0, 3, 1, 2))


def _ranks(labels: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Each element's index among the earlier elements of its class."""
    ranks = np.empty_like(labels)
    seen = np.zeros(_CLASSES, dtype=np.int64)
    for i, y in enumerate(labels):
        ranks[i] = seen[y]
        seen[y] += 1
    return ranks


def read_cifar10_png(
    folder: str | os.PathLike[str] | None = None, verify: bool = True
) -> Cifar10Png:
    """Read and check the lossless copy (about 1 s: 51 PNG decodes).

    Args:
        folder: the ``cifar10-png`` folder; default the shared one (:func:`find_cifar10_png`).
        verify: check ``SHA256SUMS`` against :data:`PNG_SUMS_SHA256`, every file
            against ``SHA256SUMS``, 51 sheets and 5,000 training images a class.
            ``False`` reads any number of sheets (at least 2; the last one is the test
            set) and checks no checksum.

    Raises:
        FileNotFoundError: no folder, or a file is missing.
        ValueError: a checksum, a sheet's size or the labels do not match.
    """
    path = Path(folder) if folder is not None else find_cifar10_png()
    if path is None:
        raise FileNotFoundError(f"no shared/data/{PNG_FOLDER} beside the checkout")
    sums = _read_sums(path, verify)
    labels_file = _checked(path, "cifar10_labels.json", sums, verify)
    labels = np.asarray(json.loads(labels_file.read_text())["labels"], dtype=np.int64)
    # verified: the sheets SHA256SUMS lists (51 in the pinned copy); else as many as labels
    listed = sum(1 for n in sums if n.startswith("cifar10_batch_") and n.endswith(".png"))
    sheets = listed if verify else labels.shape[0] // _PER_SHEET
    if (
        labels.ndim != 1
        or labels.shape[0] != sheets * _PER_SHEET
        or sheets < 2
        or labels.min() < 0
        or labels.max() >= _CLASSES
    ):
        raise ValueError(
            f"{labels_file}: expected {sheets * _PER_SHEET} labels in 0..9 (1000 per sheet, "
            f"at least 2 sheets), got {labels.shape[0]} in {labels.min()}..{labels.max()}"
        )
    images = np.concatenate(
        [_sheet(_checked(path, f"cifar10_batch_{b}.png", sums, verify)) for b in range(sheets)]
    )
    n_train = labels.shape[0] - _TEST
    train_y, test_y = labels[:n_train], labels[n_train:]
    counts = np.bincount(train_y, minlength=_CLASSES)
    if verify and not (counts == n_train // _CLASSES).all():
        raise ValueError(f"{path}: training images per class {counts.tolist()}, expected 5000")
    order = np.argsort(train_y, kind="stable")
    return Cifar10Png(
        train_images=np.ascontiguousarray(images[:n_train][order]),
        train_labels=train_y[order],
        test_images=images[n_train:],
        test_labels=test_y,
        test_ranks=_ranks(test_y),
        source={
            "path": str(path),
            "kind": "png-sprites",
            "sha256": file_digest(path / "SHA256SUMS"),
            "verified": verify,
            "lossless": True,
        },
    )
