"""EGTEA Gaze+ verbs (split 1), the video experiment of the CDB-loss paper (Tables 6, 7).

Split files (``train_split.txt`` 6,372 clips, ``val_split.txt`` 1,927 - the training
clips of subjects P20..P26 - and ``test_split.txt`` 2,022), one clip per line::

    <clip_name> <action_id> <verb_id> <noun_id> [<noun_id> ...]      (ids 1-based)

The task is the 19-way verb classification: label = ``verb_id - 1``.

Frames are read from a folder tree extracted from the trimmed clips::

    <root>/<video>/<clip_name>/000000.jpg, 000001.jpg, ...

where ``<video>`` is the first three dash-separated fields of the clip name
(``P19-R03-BaconAndEggs-806419-820160-F019321-F019717`` is in ``P19-R03-BaconAndEggs``),
the layout the public CDB-loss code reads. The frames of a clip are its image files
sorted by number (the digits of the name), so 0- or 1-based numbering both work.

Sampling (paper, section 4.1): a clip of ``n`` frames, frame ``k`` showing the time
``[k, k + 1)``, is cut into ``T = 10`` equal segments of time
``[i n / T, (i + 1) n / T)``; training takes the frame ``floor(t)`` at a uniformly
random time ``t`` of each segment, validation and test the frame at each segment's
centre, ``floor((i + 0.5) n / T)``. (The public code cuts ``[0, n - 1]`` instead, so it never
picks the last frame and fails on clips shorter than ``T + 1`` frames; here a clip of
fewer than ``T`` frames repeats frames.)

Output: a float tensor ``(C, T, H, W) = (3, 10, 224, 224)`` per clip - the layout of
3D CNNs (``Conv3d`` takes ``(N, C, T, H, W)``; the paper writes the input as
``10 x 3 x 224 x 224``, frames first); ``layout="TCHW"`` gives ``(T, C, H, W)``.

Augmentation (paper: "random cropping, random rotating and horizontal flipping"),
the same parameters for every frame of a clip: training takes a random square crop
of side ``crop_size`` (default: the frame's shorter side, 480 for EGTEA's 640 x 480
clips, as the public code's ``RandomCrop(480)``), a rotation uniform in
``[-rotation, rotation]`` degrees (10 in the public code), a flip with probability
0.5, then resizes to ``image_size``; evaluation takes the centre square and
resizes (a ``torchvision.transforms.v2`` pipeline, :func:`egtea_transforms`). Pixels
are scaled to ``[0, pixel_scale]`` (1 by default; 255 keeps the raw values) in
``channel_order`` (RGB by default) and normalised with ``mean`` / ``std`` in those
units and that order (ImageNet statistics by default). The public code feeds raw
0..255 BGR values (``cv2.imread``, no normalisation): ``channel_order="bgr"``,
``pixel_scale=255``, ``mean=[0, 0, 0]``, ``std=[1, 1, 1]`` (configs/egtea_authors.yaml).
Match whatever the pretrained weights expect.

Class names: the 19 verbs of EGTEA Gaze+'s ``verb_idx.txt``, in id order (see
:data:`VERBS`). The five largest classes over train + val are Take, Put, Open,
Cut and Inspect/Read (the paper's "majority classes", averaging 1216.0 clips;
the other 14 average 158.5).

Example:
    >>> from cdbloss.lab.data.base import load_protocol
    >>> splits = load_protocol("egtea", root="/data/egtea/frames",
    ...                        lists_dir="/data/egtea/lists")  # doctest: +SKIP
    >>> clip, verb = splits.train[0]  # clip: (3, 10, 224, 224) float32  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from .base import DataSplits, register_protocol
from .cache import find_lists_dir, split_files
from .images import IMAGE_EXTENSIONS, IMAGENET_MEAN, IMAGENET_STD, is_image_file, numbered_lines
from .longtail import class_counts

if TYPE_CHECKING:
    from torchvision.transforms import v2

__all__ = [
    "MAJORITY_VERBS",
    "SPLIT_FILES",
    "VERBS",
    "ClipEntry",
    "EgteaClips",
    "clip_dir",
    "egtea",
    "egtea_transforms",
    "read_split_file",
    "segment_indices",
    "video_name",
]

#: EGTEA Gaze+ verb names, verb id ``i + 1`` = ``VERBS[i]`` (the dataset's verb_idx.txt,
#: as reproduced by two independent public repositories; consistent with the paper,
#: whose five most frequent verbs in order are Take, Put, Open, Cut, Read, and whose
#: Fig. 1 names Clean and Spread among the small classes).
VERBS: tuple[str, ...] = (
    "Inspect/Read",
    "Open",
    "Take",
    "Cut",
    "Turn on",
    "Put",
    "Operate",
    "Close",
    "Move Around",
    "Wash",
    "Spread",
    "Turn off",
    "Divide/Pull Apart",
    "Clean/Wipe",
    "Mix",
    "Pour",
    "Compress",
    "Crack",
    "Squeeze",
)
NUM_CLASSES = len(VERBS)
#: the paper's majority classes (the five most frequent over train + val), by label
MAJORITY_VERBS: tuple[int, ...] = (2, 5, 1, 3, 0)  # Take, Put, Open, Cut, Inspect/Read
SPLIT_FILES: dict[str, str] = {
    "train": "train_split.txt",
    "val": "val_split.txt",
    "test": "test_split.txt",
}
_GET_LISTS = (
    "The split files are those of the CDB-loss paper (EGTEA Gaze+ split 1, validation = "
    "the training clips of subjects P20..P26): hitachi-rd-cv/CDB-loss, EGTEA/data/; the "
    "project's shared data folder egtea/ holds a copy."
)
_GET_FRAMES = (
    "EGTEA Gaze+ (trimmed action clips) comes from "
    "https://cbs.ic.gatech.edu/fpv/ after accepting its terms; extract every clip's "
    "frames to <root>/<video>/<clip_name>/NNNNNN.jpg (video = the first three "
    "dash-separated fields of the clip name)."
)


class ClipEntry(NamedTuple):
    """One clip of a split file: ``name``, 0-based verb ``label``, 1-based ``line``."""

    name: str
    label: int
    line: int


def video_name(clip: str) -> str:
    """The video a clip was cut from: its first three dash-separated fields.

    Example:
        >>> video_name("P19-R03-BaconAndEggs-806419-820160-F019321-F019717")
        'P19-R03-BaconAndEggs'
    """
    parts = clip.split("-")
    if len(parts) < 4 or not all(parts[:3]):
        raise ValueError(
            f"clip name {clip!r} does not start with <subject>-<recipe id>-<recipe>-..."
        )
    return "-".join(parts[:3])


def clip_dir(root: str | os.PathLike[str], clip: str) -> Path:
    """``<root>/<video>/<clip>``, the folder of a clip's frames."""
    return Path(root) / video_name(clip) / clip


def read_split_file(path: str | os.PathLike[str]) -> list[ClipEntry]:
    """Parse an EGTEA split file; label = verb id - 1.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a line with fewer than four fields, non-integer ids, a verb id outside
            ``1..19`` or a clip name without the video prefix (file and line named).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"EGTEA split file {str(p)!r} does not exist. " + _GET_LISTS)
    out: list[ClipEntry] = []
    for lineno, text in numbered_lines(p):
        fields = text.split()
        if len(fields) < 4:
            raise ValueError(
                f"{p}:{lineno}: expected '<clip_name> <action_id> <verb_id> <noun_id> "
                f"[<noun_id> ...]', got {text!r}"
            )
        try:
            _, verb, *_ = (int(f) for f in fields[1:])
        except ValueError:
            raise ValueError(f"{p}:{lineno}: the ids must be integers, got {text!r}") from None
        if not 1 <= verb <= NUM_CLASSES:
            raise ValueError(
                f"{p}:{lineno}: verb id {verb} is outside 1..{NUM_CLASSES} in {text!r}"
            )
        try:
            video_name(fields[0])
        except ValueError as e:
            raise ValueError(f"{p}:{lineno}: {e}") from None
        out.append(ClipEntry(fields[0], verb - 1, lineno))
    if not out:
        raise ValueError(f"{p}: no clips")
    return out


def segment_indices(
    num_frames: int,
    num_segments: int,
    train: bool,
    generator: torch.Generator | None = None,
) -> list[int]:
    """Frame indices, one per equal segment ``[i n / T, (i + 1) n / T)`` of a clip's time.

    Training takes frame ``floor(t)`` at a uniformly random time ``t`` of each segment
    (a frame straddling two segments can be drawn by either); otherwise each
    segment's centre ``floor((i + 0.5) n / T)``. With ``n < T`` segments share frames.

    Example:
        >>> segment_indices(100, 10, train=False)
        [5, 15, 25, 35, 45, 55, 65, 75, 85, 95]
    """
    if num_frames < 1:
        raise ValueError(f"a clip needs at least one frame, got {num_frames}")
    if num_segments < 1:
        raise ValueError(f"num_segments must be >= 1, got {num_segments}")
    n, t = num_frames, num_segments
    if not train:
        return [min(n - 1, math.floor((i + 0.5) * n / t)) for i in range(t)]
    u = torch.rand(t, generator=generator, dtype=torch.float64).tolist()
    out = []
    for i in range(t):
        lo, hi = i * n / t, (i + 1) * n / t
        out.append(min(n - 1, math.floor(lo + u[i] * (hi - lo))))
    return out


def _frame_key(name: str) -> tuple[int, int | str, str]:
    digits = re.findall(r"\d+", name.rsplit(".", 1)[0])
    return (0, int(digits[-1]), name) if digits else (1, name, name)


def egtea_transforms(
    train: bool,
    image_size: int = 224,
    crop_size: int | None = None,
    rotation: float = 10.0,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    channel_order: Literal["rgb", "bgr"] = "rgb",
    pixel_scale: float = 1.0,
) -> v2.Compose:
    """List of ``T`` PIL frames -> float tensor ``(T, 3, image_size, image_size)``.

    A ``torchvision.transforms.v2`` pipeline. The geometric steps act on the list of
    PIL frames and draw their parameters once per clip
    (:mod:`cdbloss.lab.data.transforms`); then the clip becomes one uint8 Video,
    scaled to ``[0, 1]`` (``pixel_scale=1``) or kept as raw 0..255 values (255),
    put in ``channel_order`` and normalised with ``mean`` / ``std`` in those units and
    that order.
    """
    from torchvision.transforms import v2

    from . import transforms as T

    T.check_normalization(mean, std)
    T.check_pixel_format(pixel_scale, channel_order)
    steps: list[object] = [T.SquareCrop(crop_size, random=train)]
    if train:
        if rotation > 0:
            steps.append(v2.RandomRotation(rotation, interpolation=v2.InterpolationMode.BILINEAR))
        steps.append(v2.RandomHorizontalFlip())
    steps += [
        v2.Resize((image_size, image_size)),
        T.FramesToVideo(),
        v2.ToDtype(torch.float32, scale=pixel_scale == 1),
    ]
    if channel_order == "bgr":
        steps.append(T.RGBToBGR())
    steps += [v2.Normalize(list(mean), list(std)), v2.ToPureTensor()]
    return v2.Compose(steps)


class EgteaClips(Dataset[tuple[Tensor, int]]):
    """Clips of one split: ``(clip tensor, verb label)``.

    Args:
        root: the frames root ``<root>/<video>/<clip>/<frame>.jpg``.
        entries: the clips (:func:`read_split_file`).
        train: random frame per segment (True) or segment centres (False).
        transform: list of PIL frames -> ``(T, C, H, W)`` tensor; default
            :func:`~cdbloss.lab.data.transforms.clip_to_tensor` (``[0, 1]`` pixels).
        num_segments: ``T`` frames per clip (10 in the paper).
        layout: ``"CTHW"`` (default, for 3D CNNs) or ``"TCHW"``.
        generator: draws the training frame choice (default: torch's global RNG).

    Attributes:
        targets: the labels, a list of ints.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        entries: Sequence[ClipEntry],
        train: bool,
        transform: Callable[[list[Image.Image]], Tensor] | None = None,
        num_segments: int = 10,
        layout: Literal["CTHW", "TCHW"] = "CTHW",
        generator: torch.Generator | None = None,
    ) -> None:
        if layout not in ("CTHW", "TCHW"):
            raise ValueError(f"layout must be 'CTHW' or 'TCHW', got {layout!r}")
        if num_segments < 1:
            raise ValueError(f"num_segments must be >= 1, got {num_segments}")
        self.root = Path(root)
        self.entries = list(entries)
        self.targets = [e.label for e in self.entries]
        self.train = train
        if transform is None:
            from .transforms import clip_to_tensor

            transform = clip_to_tensor()
        self.transform: Callable[[list[Image.Image]], Tensor] = transform
        self.num_segments = num_segments
        self.layout = layout
        self.generator = generator

    def __len__(self) -> int:
        return len(self.entries)

    def frame_files(self, index: int) -> list[Path]:
        """The frame files of clip ``index``, in temporal order."""
        folder = clip_dir(self.root, self.entries[index].name)
        try:
            names = [n for n in os.listdir(folder) if is_image_file(n)]
        except FileNotFoundError:
            raise FileNotFoundError(f"clip folder {str(folder)!r} does not exist") from None
        if not names:
            raise FileNotFoundError(
                f"clip folder {str(folder)!r} holds no frames (endings {IMAGE_EXTENSIONS})"
            )
        return [folder / n for n in sorted(names, key=_frame_key)]

    def sample_frames(self, index: int) -> list[Path]:
        """The ``T`` frame files chosen for clip ``index`` (random in training)."""
        files = self.frame_files(index)
        idx = segment_indices(len(files), self.num_segments, self.train, self.generator)
        return [files[i] for i in idx]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        frames = []
        for path in self.sample_frames(index):
            with Image.open(path) as img:
                frames.append(img.convert("RGB"))
        clip = self.transform(frames)  # (T, C, H, W)
        if clip.ndim != 4:
            raise ValueError(f"the transform must return (T, C, H, W), got {tuple(clip.shape)}")
        if self.layout == "CTHW":
            clip = clip.permute(1, 0, 2, 3).contiguous()  # (C, T, H, W)
        return clip, self.entries[index].label

    def __repr__(self) -> str:
        return f"EgteaClips({str(self.root)!r}, {len(self)} clips, train={self.train})"


def _check_clip_folders(root: Path, entries: Sequence[ClipEntry], source: str) -> None:
    """Every clip folder must exist; one listing per video folder."""
    by_video: dict[str, set[str] | None] = {}
    missing: list[ClipEntry] = []
    for e in entries:
        video = video_name(e.name)
        if video not in by_video:
            try:
                with os.scandir(root / video) as it:
                    by_video[video] = {d.name for d in it if d.is_dir()}
            except (FileNotFoundError, NotADirectoryError):
                by_video[video] = None
        clips = by_video[video]
        if clips is None or e.name not in clips:
            missing.append(e)
    if missing:
        shown = "\n".join(f"  {source}:{e.line}: {clip_dir(root, e.name)}" for e in missing[:5])
        more = f"\n  ... and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise FileNotFoundError(
            f"{len(missing)} of {len(entries)} clip folders of {source} are missing under "
            f"{root}:\n{shown}{more}\n" + _GET_FRAMES
        )


def _read_splits(
    root: str | os.PathLike[str] | None,
    lists_dir: str | os.PathLike[str] | None,
    verify_files: bool,
) -> tuple[str | os.PathLike[str], dict[str, Path], dict[str, list[ClipEntry]]]:
    """``(root, {split: file}, {split: entries})``: the frames root must be a folder,
    and with ``verify_files`` hold every listed clip."""
    lists = find_lists_dir(lists_dir, "egtea", "egtea", SPLIT_FILES.values(), _GET_LISTS)
    paths = split_files(lists, SPLIT_FILES, "egtea: missing split file", _GET_LISTS)
    entries = {s: read_split_file(p) for s, p in paths.items()}
    if root is None or not Path(root).is_dir():
        where = "root was not given" if root is None else f"{str(root)!r} is not a directory"
        raise FileNotFoundError(f"egtea needs the frames root: {where}. " + _GET_FRAMES)
    if verify_files:
        for s, es in entries.items():
            _check_clip_folders(Path(root), es, str(paths[s]))
    return root, paths, entries


def _verb_counts(entries: dict[str, list[ClipEntry]]) -> tuple[list[int], list[int]]:
    """Clips per verb in train, and in train + val (whose five largest are the paper's
    majority verbs)."""
    counts = class_counts([e.label for e in entries["train"]], NUM_CLASSES)
    trainval = class_counts([e.label for e in entries["train"] + entries["val"]], NUM_CLASSES)
    return counts, trainval


def _clip_shape(layout: str, num_frames: int, image_size: int) -> list[int]:
    """One clip's shape: ``(C, T, S, S)`` for ``"CTHW"``, else ``(T, C, S, S)``."""
    if layout == "CTHW":
        return [3, num_frames, image_size, image_size]
    return [num_frames, 3, image_size, image_size]


def _check_formats(
    pixel_scale: float, channel_order: str, mean: Sequence[float], std: Sequence[float]
) -> None:
    """The pixel format and normalisation options, checked before any file is read."""
    from .transforms import check_normalization, check_pixel_format

    check_pixel_format(pixel_scale, channel_order)
    check_normalization(mean, std)


@register_protocol("egtea")
def egtea(
    root: str | os.PathLike[str] | None = None,
    *,
    lists_dir: str | os.PathLike[str] | None = None,
    num_frames: int = 10,
    image_size: int = 224,
    crop_size: int | None = None,
    rotation: float = 10.0,
    layout: Literal["CTHW", "TCHW"] = "CTHW",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    channel_order: Literal["rgb", "bgr"] = "rgb",
    pixel_scale: float = 1.0,
    verify_files: bool = True,
) -> DataSplits:
    """EGTEA Gaze+ verb classification, split 1, as in the CDB-loss paper.

    Args:
        root: the frames root (module doc for the layout).
        lists_dir: folder of ``train_split.txt``, ``val_split.txt``, ``test_split.txt``;
            default ``egtea/`` of the shared data folder
            (:func:`cdbloss.lab.data.cache.find_shared`).
        num_frames: frames per clip ``T`` (10).
        image_size: output side (224).
        crop_size: side of the square crop before resizing; None = the frame's
            shorter side.
        rotation: maximum training rotation in degrees (10; 0 = none).
        layout: ``"CTHW"`` (default) or ``"TCHW"`` per clip.
        mean, std: per-channel normalisation, in the units of ``pixel_scale`` and the
            order of ``channel_order`` (ImageNet statistics by default).
        channel_order: ``"rgb"`` (default) or ``"bgr"`` (the authors' code, OpenCV).
        pixel_scale: 1 (pixels in ``[0, 1]``, default) or 255 (raw 0..255 values, the
            authors' code).
        verify_files: check that every clip folder exists before returning.

    Returns:
        :class:`DataSplits` with 19 classes (:data:`VERBS`); ``class_counts`` are the
        training clips per verb; ``info["majority_classes"]`` the paper's five.

    Raises:
        FileNotFoundError: a split file, the frames root or clip folders are missing.
        ValueError: malformed split lines.
    """
    _check_formats(pixel_scale, channel_order, mean, std)  # before any file is read
    root, paths, entries = _read_splits(root, lists_dir, verify_files)

    def make(split: str) -> EgteaClips:
        train = split == "train"
        tf = egtea_transforms(
            train, image_size, crop_size, rotation, mean, std, channel_order, pixel_scale
        )
        return EgteaClips(root, entries[split], train, tf, num_frames, layout)

    counts, trainval = _verb_counts(entries)
    return DataSplits(
        train=make("train"),
        val=make("val"),
        test=make("test"),
        num_classes=NUM_CLASSES,
        class_counts=counts,
        class_names=list(VERBS),
        info={
            "protocol": "egtea",
            "root": str(root),
            "lists": {s: str(p) for s, p in paths.items()},
            "sizes": {s: len(es) for s, es in entries.items()},
            "num_frames": num_frames,
            "image_size": image_size,
            "crop_size": crop_size,
            "rotation": rotation,
            "layout": layout,
            "channel_order": channel_order,
            "pixel_scale": float(pixel_scale),
            "mean": list(mean),
            "std": list(std),
            "clip_shape": _clip_shape(layout, num_frames, image_size),
            "trainval_counts": trainval,
            "majority_classes": sorted(range(NUM_CLASSES), key=lambda c: -trainval[c])[:5],
        },
    )
