"""Image and clip transforms: ``torchvision.transforms.v2``, plus the three parts it lacks.

The image protocols (``imagenet-lt``, ``folder``) and the clip protocol (``egtea``)
build their pipelines from ``torchvision.transforms.v2``; this module adds:

* :class:`SquareCrop`: a square crop (default side: the shorter side) at a random
  position or at the centre, EGTEA's crop;
* :class:`RGBToBGR`: OpenCV's channel order, in which the CDB authors' EGTEA code
  feeds its frames;
* :class:`FramesToVideo`: a clip given as a list of frames -> one
  ``tv_tensors.Video`` ``(T, C, H, W)`` uint8;

and the pipelines' last steps :func:`to_tensor`, :func:`to_normalized_tensor` (an
image) and :func:`clip_to_tensor` (a clip).

**One set of random parameters per clip.** A v2 transform draws its parameters
once per call and applies them to every image in its input, so a clip given as a
list of PIL frames, or as one ``tv_tensors.Video``, gets one crop, angle and flip
for all of its frames (what a 3D CNN needs: the frames stay aligned). The egtea
protocol passes the list of PIL frames through the geometric steps (Pillow's
kernels, the ones the lab used before torchvision) and turns it into a Video for
the pixel steps (dtype, channel order, normalisation: one operation per clip).

**Randomness.** v2 transforms draw from torch's global RNG (they take no
generator), so ``torch.manual_seed`` makes a pipeline repeatable, and DataLoader
workers, which torch seeds per worker, draw different parameters.

**Conventions** (torchvision's; tests/lab/data/test_transforms.py checks each):
``v2.CenterCrop`` puts the window at ``round((H - h) / 2)`` (Python's rounding, half
to even), as the OLTR / CDB-loss ImageNet-LT code, which uses torchvision, does;
rotation turns the content counter-clockwise; ``v2.ToDtype(torch.float32,
scale=True)`` maps a uint8 ``k`` to ``k * (1 / 255)``.

torchvision is imported with this module: the protocol modules import it only
when they build a pipeline, so the protocols that need none (MNIST, CIFAR,
synthetic) start without torchvision's import time.

Example:
    >>> import torch
    >>> from PIL import Image
    >>> from torchvision.transforms import v2
    >>> tf = v2.Compose([v2.RandomCrop(4, padding=1), v2.RandomHorizontalFlip(), to_tensor()])
    >>> _ = torch.manual_seed(0)
    >>> tf(Image.new("RGB", (6, 5))).shape
    torch.Size([3, 4, 4])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from .normalization import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "FramesToVideo",
    "RGBToBGR",
    "SquareCrop",
    "check_normalization",
    "check_pixel_format",
    "clip_to_tensor",
    "to_normalized_tensor",
    "to_tensor",
]


def check_normalization(mean: Sequence[float], std: Sequence[float]) -> None:
    """Refuse a ``mean`` / ``std`` pair ``v2.Normalize`` would only reject at the first image."""
    if len(mean) != len(std) or not mean:
        raise ValueError(f"mean and std need one value per channel, got {len(mean)} and {len(std)}")
    if any(s <= 0 for s in std):
        raise ValueError(f"std must be > 0, got {list(std)}")


def check_pixel_format(scale: float, channel_order: str) -> None:
    """``scale`` must be 1 (pixels in ``[0, 1]``) or 255 (raw values), ``channel_order`` rgb or bgr."""
    if isinstance(scale, bool) or scale not in (1, 255):
        raise ValueError(f"pixel_scale must be 1 or 255, got {scale!r}")
    if channel_order not in ("rgb", "bgr"):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")


def to_tensor() -> v2.Compose:
    """PIL image -> float tensor ``(C, H, W)`` in ``[0, 1]`` (a plain tensor).

    Example:
        >>> to_tensor()(Image.new("RGB", (4, 2), (255, 0, 0)))[:, 0, 0]
        tensor([1., 0., 0.])
    """
    return v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.ToPureTensor()])


def to_normalized_tensor(
    mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> v2.Compose:
    """PIL image -> ``(x - mean[c]) / std[c]`` of its ``[0, 1]`` pixels, a float tensor ``(C, H, W)``."""
    check_normalization(mean, std)
    return v2.Compose(
        [
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(mean), list(std)),
            v2.ToPureTensor(),
        ]
    )


def clip_to_tensor() -> v2.Compose:
    """List of ``T`` PIL frames -> float tensor ``(T, C, H, W)`` in ``[0, 1]`` (a plain tensor)."""
    return v2.Compose([FramesToVideo(), v2.ToDtype(torch.float32, scale=True), v2.ToPureTensor()])


class FramesToVideo:
    """A clip as a list of PIL frames (one size) -> ``tv_tensors.Video`` ``(T, C, H, W)`` uint8.

    A plain callable, not a ``v2.Transform``: a v2 transform maps the frames of a list
    one by one, this one joins them.

    Example:
        >>> FramesToVideo()([Image.new("RGB", (4, 2))] * 3).shape
        torch.Size([3, 3, 2, 4])
    """

    def __call__(self, frames: Sequence[Image.Image]) -> tv_tensors.Video:
        if isinstance(frames, Image.Image) or not isinstance(frames, Sequence):
            raise TypeError(f"expected a list of PIL frames, got {type(frames).__name__}")
        if not frames:
            raise ValueError("a clip needs at least one frame, got an empty list")
        sizes = sorted({f.size[::-1] for f in frames})
        if len(sizes) != 1:
            raise ValueError(
                f"all frames of a clip must have one size, got {sizes} (height, width)"
            )
        return tv_tensors.Video(torch.stack([F.pil_to_tensor(f) for f in frames]))

    def __repr__(self) -> str:
        return "FramesToVideo()"


class RGBToBGR(v2.Transform):  # type: ignore[misc]  # torchvision ships no type hints
    """Reverse the channel order, RGB -> BGR (OpenCV's, what ``cv2.imread`` gives).

    Shape:
        ``(..., 3, H, W)`` tensors, Images and Videos; PIL images.

    Example:
        >>> RGBToBGR()(torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1)).flatten()
        tensor([3., 2., 1.])
    """

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(F.permute_channels, inpt, permutation=[2, 1, 0])


class SquareCrop(v2.Transform):  # type: ignore[misc]  # torchvision ships no type hints
    """Crop a square of side ``size`` (default: the shorter side) at random or at the centre.

    One position per call, shared by every image of the input (all frames of a clip,
    which must have one size). The centre is ``v2.CenterCrop``'s.

    Args:
        size: the side; None = ``min(H, W)``.
        random: a uniformly random position (training) or the centre (evaluation).

    Example:
        >>> SquareCrop(random=False)(Image.new("RGB", (8, 6))).size
        (6, 6)
    """

    def __init__(self, size: int | None = None, random: bool = True) -> None:
        super().__init__()
        if size is not None and (isinstance(size, bool) or size < 1):
            raise ValueError(f"size must be >= 1 or None, got {size!r}")
        self.size = size
        self.random = random

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        sizes = sorted({tuple(F.get_size(x)) for x in flat_inputs})
        if len(sizes) != 1:
            raise ValueError(
                f"all frames of a clip must have one size, got {sizes} (height, width)"
            )
        h, w = sizes[0]
        s = min(h, w) if self.size is None else self.size
        if s > h or s > w:
            raise ValueError(
                f"crop_size {s} does not fit frames of {h}x{w}; pass a smaller crop_size "
                "(or None for the shorter side)"
            )
        if not self.random:
            return {"side": s, "top": None, "left": None}
        top = int(torch.randint(0, h - s + 1, ()))
        left = int(torch.randint(0, w - s + 1, ()))
        return {"side": s, "top": top, "left": left}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        s = params["side"]
        if params["top"] is None:
            return self._call_kernel(F.center_crop, inpt, output_size=[s, s])
        return self._call_kernel(F.crop, inpt, params["top"], params["left"], s, s)
