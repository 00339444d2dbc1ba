"""ImageNet-LT (Liu et al., OLTR, CVPR 2019), the split of the CDB-loss paper's Table 5.

Three list files, one ``<relative/path> <label>`` per line, over an ImageNet root:

=========================  =========  ===============================================
list                       images     per class
=========================  =========  ===============================================
``ImageNet_LT_train.txt``  115,846    1,280 down to 5 (long-tailed), 1,000 classes
``ImageNet_LT_val.txt``    20,000     20 (taken from ImageNet's training images)
``ImageNet_LT_test.txt``   50,000     50 (ImageNet's official validation images)
=========================  =========  ===============================================

Paths in the lists start with ``train/<wnid>/`` or ``val/<wnid>/``. Two layouts of
the ImageNet root are understood (``layout="auto"`` picks the one present):

* ``"imagenet"``: ``<root>/train/<wnid>/<file>.JPEG`` and ``<root>/val/<wnid>/<file>.JPEG``
  (the validation images sorted into class folders, as PyTorch's ImageNet example
  expects) - the list paths are used as they are;
* ``"oltr"``: ``<root>/ILSVRC2012_img_train/<wnid>/<file>`` and a flat
  ``<root>/ILSVRC2012_img_val/<file>`` (the mapping the OLTR / CDB-loss code applies).

The root may also be a zip of either layout. Class names are the WordNet ids
(``n01440764`` ...), read from the list paths; label ``i`` must always sit in the
same ``<wnid>`` folder.

Transforms (those of the OLTR / CDB-loss code): training ``RandomResizedCrop(224)``
+ horizontal flip (+ ``ColorJitter(0.4, 0.4, 0.4)`` in the public code; here an
option, off by default because the paper does not mention it); evaluation
``Resize(256)`` + ``CenterCrop(224)``; ImageNet mean / std.

Example:
    >>> from cdbloss.lab.data.base import load_protocol
    >>> splits = load_protocol("imagenet-lt", root="/data/imagenet",
    ...                        lists_dir="/data/ImageNet_LT")  # doctest: +SKIP
    >>> x, y = splits.train[0]  # x: (3, 224, 224) float32, y: int in [0, 1000)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from cdbloss.lab.metrics import shot_groups

from .base import DataSplits, register_protocol
from .cache import find_lists_dir, split_files
from .images import (
    ImageDataset,
    ImageStore,
    ListEntry,
    check_exists,
    open_store,
    read_list_file,
)
from .longtail import class_counts

if TYPE_CHECKING:
    from torchvision.transforms import v2

__all__ = [
    "EXPECTED_COUNTS",
    "LIST_FILES",
    "NUM_CLASSES",
    "imagenet_lt",
    "imagenet_lt_transforms",
    "map_oltr_path",
]

NUM_CLASSES = 1000
LIST_FILES: dict[str, str] = {
    "train": "ImageNet_LT_train.txt",
    "val": "ImageNet_LT_val.txt",
    "test": "ImageNet_LT_test.txt",
}
#: lines in the OLTR lists
EXPECTED_COUNTS: dict[str, int] = {"train": 115_846, "val": 20_000, "test": 50_000}

_GET_LISTS = (
    "The lists are those of Liu et al., 'Large-Scale Long-Tailed Recognition in an Open "
    "World' (OLTR, CVPR 2019): download them from the OLTR repository "
    "(zhmiao/OpenLongTailRecognition-OLTR, data link in its README) or copy "
    "ImageNet-LT/data/ImageNet_LT/ of hitachi-rd-cv/CDB-loss; the project's shared data "
    "folder imagenet_lt/ holds the val and test lists only."
)
_GET_IMAGES = (
    "ImageNet (ILSVRC2012) itself comes from https://image-net.org after registration; "
    "this project cannot download it."
)


def map_oltr_path(rel: str) -> str:
    """A list path (``train/<wnid>/<f>`` or ``val/<wnid>/<f>``) in the ``"oltr"`` root layout.

    Example:
        >>> map_oltr_path("val/n01440764/ILSVRC2012_val_00029930.JPEG")
        'ILSVRC2012_img_val/ILSVRC2012_val_00029930.JPEG'
        >>> map_oltr_path("train/n01440764/n01440764_762.JPEG")
        'ILSVRC2012_img_train/n01440764/n01440764_762.JPEG'
    """
    head, _, rest = rel.partition("/")
    if head == "train":
        return "ILSVRC2012_img_train/" + rest
    if head == "val":
        return "ILSVRC2012_img_val/" + rest.rsplit("/", 1)[-1]
    return rel


def imagenet_lt_transforms(
    train: bool,
    image_size: int = 224,
    resize_size: int = 256,
    color_jitter: float = 0.0,
) -> v2.Compose:
    """The ImageNet-LT pipeline: PIL RGB image -> normalised tensor ``(3, image_size, image_size)``.

    ``torchvision.transforms.v2``, as the OLTR / CDB-loss code's torchvision transforms.
    """
    from torchvision.transforms import v2

    from .transforms import to_normalized_tensor

    if train:
        aug: list[v2.Transform] = [v2.RandomResizedCrop(image_size), v2.RandomHorizontalFlip()]
        if color_jitter > 0:
            aug.append(v2.ColorJitter(color_jitter, color_jitter, color_jitter))
        return v2.Compose([*aug, to_normalized_tensor()])
    return v2.Compose([v2.Resize(resize_size), v2.CenterCrop(image_size), to_normalized_tensor()])


def _resolve_lists_dir(lists_dir: str | os.PathLike[str] | None, root: Path | None) -> Path:
    inside = [root] if root is not None and (root / LIST_FILES["train"]).is_file() else []
    return find_lists_dir(
        lists_dir, "imagenet-lt", "imagenet_lt", LIST_FILES.values(), _GET_LISTS, *inside,
        also_text="the lists inside root, or ",
    )  # fmt: skip


def _detect_layout(store: ImageStore, layout: str) -> str:
    if layout in ("imagenet", "oltr"):
        return layout
    if layout != "auto":
        raise ValueError(f"layout must be 'auto', 'imagenet' or 'oltr', got {layout!r}")
    if store.isdir("train") or store.isdir("val"):
        return "imagenet"
    if store.isdir("ILSVRC2012_img_train") or store.isdir("ILSVRC2012_img_val"):
        return "oltr"
    raise FileNotFoundError(
        f"{store.location} holds neither train/ and val/ (class folders of ImageNet's "
        "training and validation images: <root>/train/<wnid>/<file>.JPEG, "
        "<root>/val/<wnid>/<file>.JPEG) nor ILSVRC2012_img_train/<wnid>/ and a flat "
        "ILSVRC2012_img_val/. " + _GET_IMAGES
    )


def _class_names(split_entries: dict[str, list[ListEntry]], sources: dict[str, str]) -> list[str]:
    """WordNet id of every label, from the folder of its images; one wnid per label."""
    names: dict[int, tuple[str, str]] = {}
    for split, entries in split_entries.items():
        for e in entries:
            parts = e.path.split("/")
            if len(parts) < 3:
                continue  # a flat path says nothing about the class folder
            wnid = parts[-2]
            seen = names.get(e.label)
            if seen is None:
                names[e.label] = (wnid, f"{sources[split]}:{e.line}")
            elif seen[0] != wnid:
                raise ValueError(
                    f"{sources[split]}:{e.line}: label {e.label} is in folder {wnid!r}, but "
                    f"{seen[1]} puts it in {seen[0]!r}; the lists disagree on the classes"
                )
    return [names[c][0] if c in names else f"class_{c}" for c in range(NUM_CLASSES)]


def _read_lists(
    lists_dir: str | os.PathLike[str] | None, root: str | os.PathLike[str] | None
) -> tuple[dict[str, list[ListEntry]], dict[str, str]]:
    """The split lists' entries and files, ``{split: entries}``, ``{split: path}``; a list
    whose length is not the OLTR list's gets a warning."""
    lists = _resolve_lists_dir(lists_dir, Path(root) if root is not None else None)
    paths = split_files(lists, LIST_FILES, "imagenet-lt: missing split list", _GET_LISTS)
    entries = {s: read_list_file(p, num_classes=NUM_CLASSES) for s, p in paths.items()}
    sources = {s: str(p) for s, p in paths.items()}
    for split, want in EXPECTED_COUNTS.items():
        if len(entries[split]) != want:
            warnings.warn(
                f"{sources[split]} has {len(entries[split])} lines; the OLTR list has {want}",
                stacklevel=3,
            )
    return entries, sources


def _open_images(
    root: str | os.PathLike[str] | None,
    layout: str,
    entries: dict[str, list[ListEntry]],
    sources: dict[str, str],
    verify_files: bool,
) -> tuple[ImageStore, str, dict[str, list[ListEntry]]]:
    """The image store, the layout used, and the entries with paths in that layout
    (every listed image checked to exist with ``verify_files``)."""
    if root is None:
        raise FileNotFoundError(
            "imagenet-lt needs root=<ImageNet root> holding train/<wnid>/*.JPEG and "
            "val/<wnid>/*.JPEG (or ILSVRC2012_img_train/ and ILSVRC2012_img_val/), a "
            "directory or a zip. " + _GET_IMAGES
        )
    store = open_store(root)
    used = _detect_layout(store, layout)
    if used == "oltr":
        entries = {
            s: [e._replace(path=map_oltr_path(e.path)) for e in es] for s, es in entries.items()
        }
    if verify_files:
        for split, es in entries.items():
            check_exists(store, es, sources[split])
    return store, used, entries


@register_protocol("imagenet-lt")
def imagenet_lt(
    root: str | os.PathLike[str] | None = None,
    *,
    lists_dir: str | os.PathLike[str] | None = None,
    layout: Literal["auto", "imagenet", "oltr"] = "auto",
    image_size: int = 224,
    resize_size: int = 256,
    color_jitter: float = 0.0,
    verify_files: bool = True,
) -> DataSplits:
    """ImageNet-LT train / val / test, as in the CDB-loss paper (Table 5).

    Args:
        root: the ImageNet root, a directory or a zip (layouts in the module doc).
        lists_dir: the folder with ``ImageNet_LT_{train,val,test}.txt``; default: ``root``
            if it holds them, else ``imagenet_lt/`` of the shared data folder
            (:func:`cdbloss.lab.data.cache.find_shared`).
        layout: ``"auto"``, ``"imagenet"`` or ``"oltr"``.
        image_size: crop size (224 in the paper).
        resize_size: shorter side before the evaluation centre crop (256).
        color_jitter: brightness / contrast / saturation jitter of training images;
            0 (default) = off, 0.4 = the public OLTR / CDB-loss code.
        verify_files: check that every listed image exists before returning (one
            directory listing per class folder, or the zip's member table). Turn off
            only to inspect the lists without the images.

    Returns:
        :class:`DataSplits` whose datasets yield ``(float tensor (3, S, S), label)``;
        ``info`` holds the list files, per-split counts and the many / medium / few
        shot groups (by training counts).

    Raises:
        FileNotFoundError: a list, the root or listed images are missing; the message
            names the files expected and where to get them.
        ValueError: malformed list lines, labels outside ``[0, 1000)``, or a label whose
            images sit in two class folders.
    """
    entries, sources = _read_lists(lists_dir, root)
    names = _class_names(entries, sources)  # before any path mapping: needs <wnid>/ folders
    store, used, entries = _open_images(root, layout, entries, sources, verify_files)

    train_tf = imagenet_lt_transforms(True, image_size, resize_size, color_jitter)
    eval_tf = imagenet_lt_transforms(False, image_size, resize_size)

    def make(split: str, tf: v2.Compose) -> ImageDataset:
        return ImageDataset(store, [(e.path, e.label) for e in entries[split]], tf, NUM_CLASSES)

    counts = class_counts([e.label for e in entries["train"]], NUM_CLASSES)
    return DataSplits(
        train=make("train", train_tf),
        val=make("val", eval_tf),
        test=make("test", eval_tf),
        num_classes=NUM_CLASSES,
        class_counts=counts,
        class_names=names,
        info={
            "protocol": "imagenet-lt",
            "root": str(root),
            "layout": used,
            "lists": sources,
            "sizes": {s: len(es) for s, es in entries.items()},
            "image_size": image_size,
            "resize_size": resize_size,
            "color_jitter": color_jitter,
            "max_per_class": max(counts),
            "min_per_class": min(counts),
            "shot_groups": {  # class indices of each group (metrics.shot_groups's masks)
                group: mask.nonzero().flatten().tolist()
                for group, mask in shot_groups(counts).items()
            },
        },
    )
