"""The ``folder`` protocol: the user's own labelled images.

Accepted sources (``root``):

* an ImageFolder tree ``<root>/<class>/<image>``;
* the same with splits: ``<root>/train/<class>/<image>`` plus, when present,
  ``<root>/val/`` (or ``valid/``, ``validation/``) and ``<root>/test/``;
* a ``.zip`` of either (a single wrapping top-level folder is looked through);
* a CSV of ``path,label`` rows (optionally ``split`` = train/val/test), paths
  relative to ``image_root`` (a directory or zip; default the CSV's folder).

Classes are sorted by name, as torchvision's ImageFolder does (class ``i`` is the
``i``-th name). In a CSV, integer labels are used as they are (class names
``"0"``, ``"1"`` ...), anything else is a class name.

Missing splits are made from the training images, per class and seeded
(:func:`~cdbloss.lab.data.longtail.stratified_holdout`): first the test split
(``test_per_class``), then the validation split (``val_per_class``), each an int
``k`` per class or a fraction. Every class must keep at least one training image.
An optional long-tail cut (``imbalance_factor``) then subsamples the training
images with the profile of Cui et al. (class 0 the largest), for experiments.

Seeds and ``n_max`` follow the one rule of :mod:`cdbloss.lab.data.splits`, the rule of
``cifar-lt``: the test hold-out draws with ``derive_seed(seed, SEED_TEST)``, the
validation hold-out with ``derive_seed(seed, SEED_VAL)``, the tail with
``derive_seed(seed, SEED_TRAIN)`` and ``n_max`` = the smallest class left
(:func:`~cdbloss.lab.data.splits.cut_long_tail`). So ``folder`` on CIFAR-10's
ImageFolder zip (``train/`` and ``test/`` present) with the same ``seed``,
``val_per_class`` and ``imbalance_factor`` draws exactly the images ``cifar-lt`` draws.
(Before issue 33, ``folder`` used the purposes 1, 2, 3 and the largest class as
``n_max``, capped by what each class had: the same seed drew other images.)

Transforms (``augment``): ``"imagenet"`` - random resized crop + flip in training,
resize to ``image_size * 256/224`` + centre crop otherwise; ``"cifar"`` - resize to
``image_size``, then a padded random crop (padding ``image_size // 8``) + flip;
``"none"`` - resize + centre crop everywhere. Pixels normalised with ImageNet
statistics.

Example:
    >>> from cdbloss.lab.data.base import load_protocol
    >>> splits = load_protocol("folder", root="cifar10-jpeg.zip", image_size=32,
    ...                        augment="cifar", val_per_class=50,
    ...                        imbalance_factor=100)  # doctest: +SKIP
    >>> splits.class_names[:2], splits.class_counts[:2]  # doctest: +SKIP
    (['airplane', 'automobile'], [4950, 2967])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from .base import DataSplits, register_protocol
from .images import (
    ImageDataset,
    ImageStore,
    ListEntry,
    check_exists,
    open_store,
    read_csv_file,
    scan_image_folder,
)
from .longtail import class_counts, stratified_holdout
from .splits import SEED_TEST, SEED_VAL, check_seed, cut_long_tail, derive_seed

if TYPE_CHECKING:
    from torchvision.transforms import v2

__all__ = ["folder", "folder_transforms"]

_SPLIT_DIRS: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "val": ("val", "valid", "validation"),
    "test": ("test",),
}
Samples = list[tuple[str, int]]


def folder_transforms(
    train: bool,
    image_size: int,
    augment: Literal["imagenet", "cifar", "none"] = "imagenet",
) -> v2.Compose:
    """PIL RGB image -> normalised tensor ``(3, image_size, image_size)`` (``torchvision.transforms.v2``)."""
    if augment not in ("imagenet", "cifar", "none"):
        raise ValueError(f"augment must be 'imagenet', 'cifar' or 'none', got {augment!r}")
    from torchvision.transforms import v2

    from .transforms import to_normalized_tensor

    norm = to_normalized_tensor()
    if augment == "imagenet":
        if train:
            return v2.Compose([v2.RandomResizedCrop(image_size), v2.RandomHorizontalFlip(), norm])
        resize = round(image_size * 256 / 224)
        return v2.Compose([v2.Resize(resize), v2.CenterCrop(image_size), norm])
    fixed = [v2.Resize(image_size), v2.CenterCrop(image_size)]
    if augment == "cifar" and train:
        pad = max(1, image_size // 8)
        crop = v2.RandomCrop(image_size, padding=pad)
        return v2.Compose([*fixed, crop, v2.RandomHorizontalFlip(), norm])
    return v2.Compose([*fixed, norm])


def _unwrap(store: ImageStore) -> str:
    """The folder inside ``store`` that holds the data: look through one wrapping folder."""
    dirs, files = store.listdir("")
    images_at_top = [f for f in files if not f.startswith(".")]
    if len(dirs) == 1 and not images_at_top and dirs[0] not in sum(_SPLIT_DIRS.values(), ()):
        if store.listdir(dirs[0])[0]:
            return dirs[0]  # one folder holding folders: a wrapper, not a class
    return ""


def _from_tree(
    store: ImageStore,
) -> tuple[list[str], dict[str, Samples | None], str]:
    base = _unwrap(store)
    where = f"{store.location}/{base}" if base else store.location
    present = {
        split: next((_j(base, d) for d in names if store.isdir(_j(base, d))), None)
        for split, names in _SPLIT_DIRS.items()
    }
    if present["train"] is None:
        if present["val"] or present["test"]:
            raise ValueError(
                f"{where} has val/ or test/ but no train/ folder; expected "
                "<root>/train/<class>/<image> (or <root>/<class>/<image> without splits)"
            )
        classes, samples = scan_image_folder(store, base)
        return classes, {"train": samples, "val": None, "test": None}, "tree"
    classes, train = scan_image_folder(store, present["train"])
    out: dict[str, Samples | None] = {"train": train, "val": None, "test": None}
    for split in ("val", "test"):
        rel = present[split]
        if rel is None:
            continue
        names, samples = scan_image_folder(store, rel)
        extra = sorted(set(names) - set(classes))
        if extra:
            raise ValueError(
                f"{store.location}/{rel} has class folders absent from {present['train']}/: "
                f"{extra[:5]}; every class needs training images"
            )
        index = {n: i for i, n in enumerate(classes)}
        out[split] = [(p, index[names[y]]) for p, y in samples]
    return classes, out, "split-tree"


def _j(a: str, b: str) -> str:
    return f"{a}/{b}" if a else b


def _from_csv(
    csv_path: Path, image_root: str | os.PathLike[str] | None, verify: bool
) -> tuple[list[str], dict[str, Samples | None], ImageStore]:
    rows = read_csv_file(csv_path)
    store = open_store(image_root if image_root is not None else csv_path.parent)
    labels = [r.label for r in rows]
    if all(_is_int(v) for v in labels):
        ints = [int(v) for v in labels]
        bad = next((r for r, v in zip(rows, ints, strict=True) if v < 0), None)
        if bad is not None:
            raise ValueError(f"{csv_path}:{bad.line}: label {bad.label} is negative")
        classes = [str(c) for c in range(max(ints) + 1)]
        index = {str(c): c for c in range(len(classes))}
        keyed = [str(v) for v in ints]
    else:
        classes = sorted(set(labels))
        index = {n: i for i, n in enumerate(classes)}
        keyed = labels
    entries = [ListEntry(r.path, index[k], r.line) for r, k in zip(rows, keyed, strict=True)]
    if verify:
        check_exists(store, entries, str(csv_path))
    has_split = rows[0].split is not None
    out: dict[str, Samples | None] = {"train": [], "val": None, "test": None}
    if has_split:
        for split in ("val", "test"):
            if any(r.split == split for r in rows):
                out[split] = []
    for r, e in zip(rows, entries, strict=True):
        split = r.split if has_split and r.split is not None else "train"
        bucket = out[split]
        assert bucket is not None  # created above for every split present
        bucket.append((e.path, e.label))
    if not out["train"]:
        raise ValueError(f"{csv_path}: no rows with split 'train'")
    return classes, out, store


def _is_int(v: str) -> bool:
    try:
        int(v)
    except ValueError:
        return False
    return True


def _holdout(
    samples: Samples,
    per_class: int | float,
    seed: int,
    classes: Sequence[str],
    what: str,
) -> tuple[Samples, Samples]:
    """Split ``per_class`` of every class off ``samples``: ``(held out, rest)``."""
    labels = np.array([y for _, y in samples], dtype=np.int64)
    avail = np.bincount(labels, minlength=len(classes))
    if isinstance(per_class, bool) or not isinstance(per_class, (int, float)):
        raise ValueError(f"{what}_per_class must be an int >= 1 or a fraction in (0, 1)")
    if isinstance(per_class, int):
        if per_class < 1:
            raise ValueError(f"{what}_per_class must be >= 1, got {per_class}")
        need = np.full(len(classes), per_class)
    elif 0.0 < per_class < 1.0:
        need = np.maximum(1, np.floor(avail * per_class + 0.5)).astype(np.int64)
    else:
        raise ValueError(
            f"{what}_per_class must be an int >= 1 or a fraction in (0, 1), got {per_class}"
        )
    short = [(classes[c], int(avail[c])) for c in range(len(classes)) if avail[c] <= need[c]]
    if short:
        shown = ", ".join(f"{n!r} has {k} training images left" for n, k in short[:8])
        raise ValueError(
            f"cannot hold out a {what} split of {per_class} per class and keep a training image: "
            f"{shown}{' ...' if len(short) > 8 else ''} (each class needs more than "
            f"{what}_per_class images; pass a smaller {what}_per_class or a {what}/ folder)"
        )
    held, rest = stratified_holdout(labels, per_class, seed, num_classes=len(classes))
    return [samples[i] for i in held], [samples[i] for i in rest]


def _load_source(
    path: Path, image_root: str | os.PathLike[str] | None, verify_files: bool
) -> tuple[list[str], dict[str, Samples | None], ImageStore, str]:
    """Classes, the splits found (``None`` where absent), the image store and the
    source kind (``"csv"`` or the tree's layout) of a folder, zip or CSV root."""
    if path.is_file() and path.suffix.lower() == ".csv":
        classes, splits, store = _from_csv(path, image_root, verify_files)
        source = "csv"
    else:
        if image_root is not None:
            raise ValueError("image_root is only for a CSV root")
        store = open_store(path)
        classes, splits, source = _from_tree(store)
    if len(classes) < 2:
        raise ValueError(f"{path}: found {len(classes)} class(es) {classes}; need at least 2")
    return classes, splits, store, source


def _complete_splits(
    splits: dict[str, Samples | None],
    classes: list[str],
    seed: int,
    val_per_class: int | float,
    test_per_class: int | float,
) -> tuple[Samples, Samples, Samples, list[str]]:
    """``(train, val, test, made)``: a missing test split, then a missing validation split,
    held out of train (``made`` names them); every class must keep a training image."""
    train = splits["train"]
    assert train is not None
    made: list[str] = []
    test = splits["test"]
    if test is None:
        test, train = _holdout(train, test_per_class, derive_seed(seed, SEED_TEST), classes, "test")
        made.append("test")
    val = splits["val"]
    if val is None:
        val, train = _holdout(train, val_per_class, derive_seed(seed, SEED_VAL), classes, "val")
        made.append("val")
    avail = class_counts([y for _, y in train], len(classes))
    empty = [classes[c] for c, n in enumerate(avail) if n == 0]
    if empty:
        raise ValueError(f"classes without training images: {empty[:8]}")
    return train, val, test, made


def _long_tail_cut(
    train: Samples,
    num_classes: int,
    imbalance_factor: float,
    profile: Literal["exp", "step"],
    seed: int,
) -> Samples:
    """``train`` cut to a long tail (class order = class index), ``n_max`` the smallest
    class (:func:`~cdbloss.lab.data.splits.cut_long_tail`, as ``cifar-lt``)."""
    labels = np.array([y for _, y in train], dtype=np.int64)
    keep, _, _ = cut_long_tail(labels, num_classes, float(imbalance_factor), seed, profile)
    return [train[i] for i in keep]


@register_protocol("folder")
def folder(
    root: str | os.PathLike[str] | None = None,
    *,
    image_root: str | os.PathLike[str] | None = None,
    image_size: int = 224,
    augment: Literal["imagenet", "cifar", "none"] = "imagenet",
    seed: int = 0,
    val_per_class: int | float = 0.1,
    test_per_class: int | float = 0.2,
    imbalance_factor: float | None = None,
    lt_profile: Literal["exp", "step"] = "exp",
    verify_files: bool = True,
) -> DataSplits:
    """The user's own images as train / val / test (module doc for the accepted layouts).

    Args:
        root: an ImageFolder directory or zip (with or without ``train/val/test``), or a CSV.
        image_root: for a CSV: where its paths start (directory or zip; default its folder).
        image_size: output side ``S``.
        augment: ``"imagenet"``, ``"cifar"`` or ``"none"`` (module doc).
        seed: seeds the held-out splits and the long-tail cut.
        val_per_class: the validation split made when there is none: ``k`` per class or
            a fraction of each class.
        test_per_class: the same for a missing test split (taken first).
        imbalance_factor: if given (``>= 1``), cut the training split to a long tail
            with this largest / smallest ratio (class order = class index), ``n_max``
            the smallest class left (the rule of ``cifar-lt``).
        lt_profile: ``"exp"`` (Cui et al.) or ``"step"`` (Cao et al.).
        verify_files: for a CSV, check every named image exists before returning.

    Returns:
        :class:`DataSplits` yielding ``(float tensor (3, S, S), label)``.

    Raises:
        FileNotFoundError: ``root``, a CSV's images or ``image_root`` are missing.
        ValueError: malformed CSV rows, a class too small for the requested hold-out,
            class folders in val/test absent from train, no class folders.
    """
    if root is None:
        raise FileNotFoundError(
            "folder needs root=<an ImageFolder directory (<root>/<class>/<image> or "
            "<root>/train/<class>/<image>), a .zip of one, or a CSV of path,label>"
        )
    seed = check_seed(seed)  # before any work
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be an int >= 1, got {image_size!r}")
    classes, splits, store, source = _load_source(Path(root), image_root, verify_files)
    train, val, test, made = _complete_splits(splits, classes, seed, val_per_class, test_per_class)
    if imbalance_factor is not None:
        train = _long_tail_cut(train, len(classes), imbalance_factor, lt_profile, seed)
    counts = class_counts([y for _, y in train], len(classes))

    def make(samples: Samples, is_train: bool) -> ImageDataset:
        tf = folder_transforms(is_train, image_size, augment)
        return ImageDataset(store, samples, tf, len(classes))

    info = {
        "protocol": "folder",
        "root": str(root),
        "source": source,
        "store": store.location,
        "made_splits": made,
        "seed": seed,
        "val_per_class": val_per_class if "val" in made else None,
        "test_per_class": test_per_class if "test" in made else None,
        "imbalance_factor": imbalance_factor,
        "lt_profile": lt_profile if imbalance_factor is not None else None,
        "image_size": image_size,
        "augment": augment,
        "sizes": {"train": len(train), "val": len(val), "test": len(test)},
    }
    return DataSplits(
        make(train, True), make(val, False), make(test, False), len(classes), counts, classes, info
    )
