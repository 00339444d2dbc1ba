"""Image and clip transforms in plain torch + Pillow (no torchvision).

Every transform accepts three kinds of input and returns the same kind:

* one image: a ``PIL.Image.Image`` or a float tensor ``(C, H, W)``;
* a clip as a list of PIL frames (all the same size);
* a clip as a float tensor ``(T, C, H, W)``.

Random transforms draw their parameters **once per call**, so all frames of a
clip get the same crop, angle and flip (what a 3D CNN needs: the frames stay
aligned). Each random transform takes an optional ``torch.Generator``; without
one it draws from torch's global RNG, so ``torch.manual_seed`` makes a pipeline
repeatable (and DataLoader workers, which seed torch per worker, get different
streams). A generator passed explicitly is copied into every DataLoader worker
with the same state, so workers would repeat each other's draws: use explicit
generators for single-process use and tests.

Geometric conventions (tested against hand-made expectations):

* ``crop(x, top, left, h, w)`` keeps rows ``top:top+h`` and columns ``left:left+w``.
* :class:`CenterCrop` puts the crop at ``top = (H - h) // 2``, ``left = (W - w) // 2``.
* :func:`rotate` turns the content counter-clockwise by ``angle`` degrees about the
  image centre (Pillow's convention), filling uncovered pixels with ``fill``.

Example:
    >>> import torch
    >>> from PIL import Image
    >>> tf = Compose([RandomCrop(4, padding=1), RandomHorizontalFlip(), ToTensor()])
    >>> _ = torch.manual_seed(0)
    >>> tf(Image.new("RGB", (6, 5))).shape
    torch.Size([3, 4, 4])
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance
from torch import Tensor

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CenterCrop",
    "ColorJitter",
    "Compose",
    "Normalize",
    "PixelFormat",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "RandomRotation",
    "Resize",
    "ToTensor",
    "crop",
    "hflip",
    "image_size",
    "pad",
    "resize",
    "rotate",
]

#: ImageNet channel statistics (RGB, on [0, 1]), as used by the OLTR / CDB-loss code.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# One image (PIL or (C,H,W) tensor), or a clip (list of PIL frames or (T,C,H,W) tensor).
X = TypeVar("X", Image.Image, Tensor, list[Image.Image])
Size = int | tuple[int, int]


def _pair(size: Size, name: str) -> tuple[int, int]:
    if isinstance(size, bool):
        raise ValueError(f"{name} must be an int or (height, width), got {size!r}")
    if isinstance(size, int):
        h = w = size
    elif isinstance(size, (tuple, list)) and len(size) == 2:
        h, w = int(size[0]), int(size[1])
    else:
        raise ValueError(f"{name} must be an int or (height, width), got {size!r}")
    if h < 1 or w < 1:
        raise ValueError(f"{name} must be >= 1, got {size!r}")
    return h, w


def _check_tensor(x: Tensor) -> None:
    if x.ndim not in (3, 4):
        raise ValueError(
            f"expected an image tensor (C, H, W) or a clip (T, C, H, W), got shape {tuple(x.shape)}"
        )


def image_size(x: Image.Image | Tensor | Sequence[Image.Image]) -> tuple[int, int]:
    """``(height, width)`` of an image or clip; a list of frames must share one size."""
    if isinstance(x, Image.Image):
        return x.height, x.width
    if isinstance(x, Tensor):
        _check_tensor(x)
        return int(x.shape[-2]), int(x.shape[-1])
    if isinstance(x, (list, tuple)):
        if not x:
            raise ValueError("a clip needs at least one frame, got an empty list")
        sizes = {(f.height, f.width) for f in x}
        if len(sizes) != 1:
            raise ValueError(f"all frames of a clip must have one size, got {sorted(sizes)}")
        return sizes.pop()
    raise TypeError(
        "expected a PIL image, a tensor (C,H,W) / (T,C,H,W) or a list of PIL frames, "
        f"got {type(x).__name__}"
    )


def _each(x: X, fn: Callable[[Any], Any]) -> X:
    """Apply ``fn`` to every frame of a list, or once to an image / tensor."""
    if isinstance(x, list):
        return [fn(f) for f in x]
    out: X = fn(x)
    return out


def _uniform(lo: float, hi: float, generator: torch.Generator | None) -> float:
    return lo + (hi - lo) * float(torch.rand(1, generator=generator).item())


def _randint(lo: int, hi: int, generator: torch.Generator | None) -> int:
    """An integer uniform in ``[lo, hi]`` (both included)."""
    return int(torch.randint(lo, hi + 1, (1,), generator=generator).item())


# --------------------------------------------------------------------------------------------
# functional ops: one image or one clip, deterministic
# --------------------------------------------------------------------------------------------


def crop(x: X, top: int, left: int, height: int, width: int) -> X:
    """Rows ``top:top+height``, columns ``left:left+width`` of every frame.

    The window must lie inside the image (pad first otherwise).
    """
    h, w = image_size(x)
    if top < 0 or left < 0 or top + height > h or left + width > w or height < 1 or width < 1:
        raise ValueError(
            f"crop window top={top} left={left} {height}x{width} does not fit an image of "
            f"{h}x{w} (height x width)"
        )

    def one(f: Image.Image | Tensor) -> Image.Image | Tensor:
        if isinstance(f, Image.Image):
            return f.crop((left, top, left + width, top + height))
        return f[..., top : top + height, left : left + width]

    return _each(x, one)


def pad(x: X, padding: int, fill: int = 0) -> X:
    """Add ``padding`` pixels of value ``fill`` (0..255 for PIL, ``fill/255`` for tensors) on all sides."""
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    image_size(x)  # validates the input kind and shape
    if padding == 0:
        return x

    def one(f: Image.Image | Tensor) -> Image.Image | Tensor:
        if isinstance(f, Image.Image):
            fill_value: Any = (fill,) * len(f.getbands()) if len(f.getbands()) > 1 else fill
            out = Image.new(f.mode, (f.width + 2 * padding, f.height + 2 * padding), fill_value)
            out.paste(f, (padding, padding))
            return out
        return F.pad(f, (padding, padding, padding, padding), value=fill / 255.0)

    return _each(x, one)


def hflip(x: X) -> X:
    """Mirror left-right (column ``j`` goes to ``W - 1 - j``)."""
    image_size(x)  # validates the input kind and shape

    def one(f: Image.Image | Tensor) -> Image.Image | Tensor:
        if isinstance(f, Image.Image):
            return f.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return f.flip(-1)

    return _each(x, one)


def resize(x: X, size: tuple[int, int]) -> X:
    """Bilinear resize to ``size = (height, width)`` (antialiased when shrinking)."""
    h, w = _pair(size, "size")
    image_size(x)  # validates the input kind and shape

    def one(f: Image.Image | Tensor) -> Image.Image | Tensor:
        if isinstance(f, Image.Image):
            if (f.height, f.width) == (h, w):
                return f
            return f.resize((w, h), Image.Resampling.BILINEAR)
        if not f.is_floating_point():
            raise TypeError(f"resize needs a float tensor, got {f.dtype}; apply ToTensor first")
        if tuple(f.shape[-2:]) == (h, w):
            return f
        batch = f if f.ndim == 4 else f.unsqueeze(0)  # (T, C, H, W)
        out = F.interpolate(
            batch, size=(h, w), mode="bilinear", align_corners=False, antialias=True
        )
        return out if f.ndim == 4 else out.squeeze(0)

    return _each(x, one)


def rotate(x: X, angle: float, fill: int = 0) -> X:
    """Rotate the content ``angle`` degrees counter-clockwise about the centre; size unchanged.

    PIL frames use Pillow's bilinear ``rotate``; tensors use ``grid_sample`` with the same
    geometry. Uncovered pixels get ``fill`` (0..255; ``fill/255`` for tensors).
    """
    image_size(x)  # validates the input kind and shape
    if angle == 0:
        return x

    def one(f: Image.Image | Tensor) -> Image.Image | Tensor:
        if isinstance(f, Image.Image):
            fill_value: Any = (fill,) * len(f.getbands()) if len(f.getbands()) > 1 else fill
            return f.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=fill_value)
        if not f.is_floating_point():
            raise TypeError(f"rotate needs a float tensor, got {f.dtype}; apply ToTensor first")
        batch = f if f.ndim == 4 else f.unsqueeze(0)  # (T, C, H, W)
        t, _, h, w = batch.shape
        a = math.radians(angle)
        # Output pixel (x_o, y_o) in normalised coordinates samples the input at
        # R(-angle) (x_o, y_o); the H/W factors undo the anisotropic normalisation.
        theta = torch.tensor(
            [[math.cos(a), -math.sin(a) * h / w, 0.0], [math.sin(a) * w / h, math.cos(a), 0.0]],
            dtype=batch.dtype,
            device=batch.device,
        ).expand(t, 2, 3)
        grid = F.affine_grid(theta, [t, batch.shape[1], h, w], align_corners=False)
        # Sample with a ones channel to know which output pixels fall outside the input.
        ones = torch.ones_like(batch[:, :1])
        both = F.grid_sample(
            torch.cat([batch, ones], 1),
            grid,
            mode="bilinear",
            padding_mode="zeros",
            align_corners=False,
        )
        out, cover = both[:, :-1], both[:, -1:]
        out = out + (1.0 - cover) * (fill / 255.0)
        return out if f.ndim == 4 else out.squeeze(0)

    return _each(x, one)


# --------------------------------------------------------------------------------------------
# transform objects
# --------------------------------------------------------------------------------------------


class Compose:
    """Apply transforms in order.

    Example:
        >>> tf = Compose([Resize(8), CenterCrop(8), ToTensor()])
    """

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: Any) -> Any:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class ToTensor:
    """PIL image or ``(H, W, C)`` / ``(H, W)`` uint8 array -> float tensor ``(C, H, W)`` in ``[0, 1]``.

    A list of frames becomes a clip tensor ``(T, C, H, W)``; a float tensor passes through.

    Example:
        >>> ToTensor()(Image.new("RGB", (4, 2), (255, 0, 0))).shape
        torch.Size([3, 2, 4])
    """

    def __call__(
        self, x: Image.Image | np.ndarray[Any, Any] | Tensor | list[Image.Image]
    ) -> Tensor:
        if isinstance(x, list):
            if not x:
                raise ValueError("a clip needs at least one frame, got an empty list")
            return torch.stack([self(f) for f in x])  # (T, C, H, W)
        if isinstance(x, Tensor):
            if not x.is_floating_point():
                raise TypeError(
                    f"ToTensor expects a PIL image or an HWC uint8 array; got a {x.dtype} tensor"
                )
            return x
        if isinstance(x, Image.Image):
            if x.mode not in ("RGB", "L"):
                x = x.convert("RGB")
            arr = np.array(x, dtype=np.uint8)  # a writable copy: (H, W, C) or (H, W)
        elif isinstance(x, np.ndarray):
            if x.dtype != np.uint8:
                raise TypeError(f"ToTensor expects a uint8 array, got dtype {x.dtype}")
            arr = np.ascontiguousarray(x)
        else:
            raise TypeError(
                f"ToTensor expects a PIL image or a uint8 array, got {type(x).__name__}"
            )
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3:
            raise ValueError(f"ToTensor expects (H, W, C) or (H, W), got shape {arr.shape}")
        return torch.from_numpy(arr).permute(2, 0, 1).float().div_(255.0)  # (C, H, W)

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """``(x - mean[c]) / std[c]`` per channel, for ``(C, H, W)`` or ``(T, C, H, W)`` tensors.

    Example:
        >>> Normalize([0.5] * 3, [0.5] * 3)(torch.ones(3, 2, 2)).unique()
        tensor([1.])
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != len(std) or not mean:
            raise ValueError(
                f"mean and std need one value per channel, got {len(mean)} and {len(std)}"
            )
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be > 0, got {list(std)}")
        self.mean = torch.tensor(list(mean), dtype=torch.float32)
        self.std = torch.tensor(list(std), dtype=torch.float32)

    def __call__(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError("Normalize expects a float tensor; apply ToTensor first")
        _check_tensor(x)
        c = x.shape[-3]
        if c != self.mean.numel():
            raise ValueError(f"Normalize has {self.mean.numel()} channels, the input has {c}")
        mean = self.mean.to(x.dtype).view(-1, 1, 1)  # (C, 1, 1), broadcasts over T
        std = self.std.to(x.dtype).view(-1, 1, 1)
        return (x - mean) / std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class PixelFormat:
    """``[0, 1]`` RGB pixels -> the scale and channel order a network was trained on.

    Multiplies by ``scale`` (255 gives the raw 0..255 values) and, for
    ``channel_order="bgr"``, reverses the channels (OpenCV's order: the CDB
    authors' EGTEA code feeds ``cv2.imread`` frames, raw 0..255 BGR). Put it before
    :class:`Normalize`, whose mean and std are then in these units and this order.

    Args:
        scale: the value of a full-intensity pixel, > 0 (1 or 255).
        channel_order: ``"rgb"`` or ``"bgr"``.

    Shape:
        ``(C, H, W)`` or ``(T, C, H, W)`` float, unchanged.

    Example:
        >>> PixelFormat(255.0, "bgr")(torch.tensor([1.0, 0.5, 0.0]).view(3, 1, 1)).flatten()
        tensor([  0.0000, 127.5000, 255.0000])
    """

    def __init__(self, scale: float = 1.0, channel_order: str = "rgb") -> None:
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
            raise ValueError(f"pixel_scale must be a number > 0 (1 or 255), got {scale!r}")
        if channel_order not in ("rgb", "bgr"):
            raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
        self.scale = float(scale)
        self.channel_order = channel_order

    def __call__(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError("PixelFormat expects a float tensor; apply ToTensor first")
        _check_tensor(x)
        if self.channel_order == "bgr":
            x = x.flip(-3)  # (.., C, H, W): RGB -> BGR
        return x * self.scale if self.scale != 1.0 else x

    def __repr__(self) -> str:
        return f"PixelFormat(scale={self.scale:g}, channel_order={self.channel_order!r})"


class Resize:
    """Resize: an int sets the shorter side (aspect kept), ``(h, w)`` sets both.

    With an int ``s`` an image of ``H <= W`` becomes ``s x int(s * W / H)``.

    Example:
        >>> Resize(4)(Image.new("RGB", (8, 6))).size  # PIL sizes are (width, height)
        (5, 4)
    """

    def __init__(self, size: Size) -> None:
        self.size = size
        _pair(size, "size")

    def target(self, h: int, w: int) -> tuple[int, int]:
        """The output ``(height, width)`` for an input of ``h x w``."""
        if isinstance(self.size, int):
            s = self.size
            if h <= w:
                return s, max(1, int(s * w / h))
            return max(1, int(s * h / w)), s
        return _pair(self.size, "size")

    def __call__(self, x: X) -> X:
        return resize(x, self.target(*image_size(x)))

    def __repr__(self) -> str:
        return f"Resize({self.size!r})"


class CenterCrop:
    """Crop ``size`` at the centre: ``top = (H - h) // 2``, ``left = (W - w) // 2``."""

    def __init__(self, size: Size) -> None:
        self.size = _pair(size, "size")

    def __call__(self, x: X) -> X:
        h, w = image_size(x)
        ch, cw = self.size
        if ch > h or cw > w:
            raise ValueError(
                f"CenterCrop{self.size} is larger than the image ({h}x{w}); resize first"
            )
        return crop(x, (h - ch) // 2, (w - cw) // 2, ch, cw)

    def __repr__(self) -> str:
        return f"CenterCrop({self.size})"


class RandomCrop:
    """Zero-pad by ``padding`` then crop ``size`` at a uniformly random position.

    Example (CIFAR augmentation): ``RandomCrop(32, padding=4)``.
    """

    def __init__(
        self, size: Size, padding: int = 0, generator: torch.Generator | None = None
    ) -> None:
        self.size = _pair(size, "size")
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        self.padding = padding
        self.generator = generator

    def get_params(self, h: int, w: int) -> tuple[int, int]:
        """``(top, left)`` for a padded image of ``h x w``."""
        ch, cw = self.size
        if ch > h or cw > w:
            raise ValueError(
                f"RandomCrop{self.size} is larger than the (padded) image {h}x{w}; resize first"
            )
        return _randint(0, h - ch, self.generator), _randint(0, w - cw, self.generator)

    def __call__(self, x: X) -> X:
        x = pad(x, self.padding)
        top, left = self.get_params(*image_size(x))
        return crop(x, top, left, *self.size)

    def __repr__(self) -> str:
        return f"RandomCrop({self.size}, padding={self.padding})"


class RandomResizedCrop:
    """Crop a random area fraction and aspect ratio, then resize to ``size``.

    The usual ImageNet recipe: up to 10 tries draw an area in ``scale`` (fraction of
    the image) and a log-uniform aspect ratio in ``ratio``; the first window that fits
    is used, otherwise a centre crop with the ratio clamped to ``ratio``.
    """

    def __init__(
        self,
        size: Size,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
        generator: torch.Generator | None = None,
    ) -> None:
        self.size = _pair(size, "size")
        if not (0 < scale[0] <= scale[1] <= 1):
            raise ValueError(f"scale must satisfy 0 < lo <= hi <= 1, got {scale}")
        if not (0 < ratio[0] <= ratio[1]):
            raise ValueError(f"ratio must satisfy 0 < lo <= hi, got {ratio}")
        self.scale = scale
        self.ratio = ratio
        self.generator = generator

    def get_params(self, h: int, w: int) -> tuple[int, int, int, int]:
        """``(top, left, height, width)`` of the window in an ``h x w`` image."""
        area = h * w
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            target = area * _uniform(self.scale[0], self.scale[1], self.generator)
            aspect = math.exp(_uniform(log_lo, log_hi, self.generator))  # width / height
            cw = round(math.sqrt(target * aspect))
            ch = round(math.sqrt(target / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                return (
                    _randint(0, h - ch, self.generator),
                    _randint(0, w - cw, self.generator),
                    ch,
                    cw,
                )
        in_ratio = w / h
        if in_ratio < self.ratio[0]:
            cw, ch = w, round(w / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            ch, cw = h, round(h * self.ratio[1])
        else:
            ch, cw = h, w
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def __call__(self, x: X) -> X:
        top, left, ch, cw = self.get_params(*image_size(x))
        return resize(crop(x, top, left, ch, cw), self.size)

    def __repr__(self) -> str:
        return f"RandomResizedCrop({self.size}, scale={self.scale}, ratio={self.ratio})"


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p`` (one draw per image or clip)."""

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p = p
        self.generator = generator

    def __call__(self, x: X) -> X:
        flip = float(torch.rand(1, generator=self.generator).item()) < self.p
        return hflip(x) if flip else x

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomRotation:
    """Rotate by an angle uniform in ``[-degrees, degrees]`` (or ``[lo, hi]``), size unchanged."""

    def __init__(
        self,
        degrees: float | tuple[float, float],
        fill: int = 0,
        generator: torch.Generator | None = None,
    ) -> None:
        if isinstance(degrees, (int, float)):
            if degrees < 0:
                raise ValueError(f"degrees must be >= 0 when a single number, got {degrees}")
            self.degrees = (-float(degrees), float(degrees))
        else:
            lo, hi = degrees
            if lo > hi:
                raise ValueError(f"degrees range must have lo <= hi, got {degrees}")
            self.degrees = (float(lo), float(hi))
        self.fill = fill
        self.generator = generator

    def get_params(self) -> float:
        """The angle in degrees (counter-clockwise)."""
        return _uniform(self.degrees[0], self.degrees[1], self.generator)

    def __call__(self, x: X) -> X:
        return rotate(x, self.get_params(), fill=self.fill)

    def __repr__(self) -> str:
        return f"RandomRotation({self.degrees})"


class ColorJitter:
    """Random brightness, contrast and saturation factors in ``[1 - v, 1 + v]``, applied in random order.

    Brightness scales the pixels, contrast blends with the mean grey level, saturation
    blends with the grey image (ITU-R 601 luma), each clamped to the valid range. The
    public ImageNet-LT code of OLTR / CDB-loss trains with ``ColorJitter(0.4, 0.4, 0.4)``.
    """

    def __init__(
        self,
        brightness: float = 0.0,
        contrast: float = 0.0,
        saturation: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        for name, v in (
            ("brightness", brightness),
            ("contrast", contrast),
            ("saturation", saturation),
        ):
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {v}")
        self.amounts = (brightness, contrast, saturation)
        self.generator = generator

    def get_params(self) -> list[tuple[int, float]]:
        """``[(op, factor)]`` in the order to apply; op 0 brightness, 1 contrast, 2 saturation."""
        order = torch.randperm(3, generator=self.generator).tolist()
        return [
            (op, _uniform(1 - self.amounts[op], 1 + self.amounts[op], self.generator))
            for op in order
            if self.amounts[op] > 0
        ]

    @staticmethod
    def _apply(f: Image.Image | Tensor, op: int, factor: float) -> Image.Image | Tensor:
        if isinstance(f, Image.Image):
            enh = (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color)[op]
            return enh(f).enhance(factor)
        if op == 0:
            return (f * factor).clamp(0.0, 1.0)
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=f.dtype, device=f.device)
        grey = (f * weights.view(-1, 1, 1)).sum(-3, keepdim=True)  # (..., 1, H, W)
        if op == 1:
            grey = grey.mean(dim=(-3, -2, -1), keepdim=True)
        return (factor * f + (1 - factor) * grey).clamp(0.0, 1.0)

    def __call__(self, x: X) -> X:
        for op, factor in self.get_params():
            x = _each(x, functools.partial(self._apply, op=op, factor=factor))
        return x

    def __repr__(self) -> str:
        b, c, s = self.amounts
        return f"ColorJitter(brightness={b}, contrast={c}, saturation={s})"
