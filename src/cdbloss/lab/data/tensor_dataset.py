"""In-memory image datasets: one uint8 tensor for all images, one int64 tensor of labels.

MNIST, Fashion-MNIST and CIFAR fit in memory many times over (CIFAR-10's
50,000 training images are 150 MiB as uint8), so the protocols keep each split
as one ``(N, C, H, W)`` uint8 tensor and convert on access. Besides
``dataset[i]`` the engine can ask for a whole batch with
:meth:`TensorImageDataset.get_batch`, which applies the transform to
``(B, C, H, W)`` at once.

The two transforms here are deliberately minimal and pure torch (CIFAR's random
crop with zero padding plus horizontal flip, and uint8 -> normalised float);
unlike the PIL-or-float transforms of :mod:`cdbloss.lab.data.transforms` they take
the stored uint8 tensors, one image ``(C, H, W)`` or a batch ``(B, C, H, W)``
(chain them with :class:`Chain`, which needs no torchvision, or with
``torchvision.transforms.v2.Compose``, which calls any callable: the two give the same
images for the same random state).

Example:
    >>> import torch
    >>> images = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    >>> ds = TensorImageDataset(images, torch.tensor([0, 1, 1, 0]),
    ...                         transform=ScaleNormalize([0.5] * 3, [0.25] * 3))
    >>> x, y = ds[1]
    >>> tuple(x.shape), y, float(x[0, 0, 0])
    ((3, 32, 32), 1, -2.0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = [
    "Chain",
    "ImageTransform",
    "RandomCropFlip",
    "ScaleNormalize",
    "TensorImageDataset",
]

#: A transform maps uint8 or float images ``(C, H, W)`` or ``(B, C, H, W)`` to float.
ImageTransform = Callable[[Tensor], Tensor]


class Chain:
    """Apply transforms in order: ``Chain(f, g)(x) == g(f(x))``, for images ``(C, H, W)``
    or batches ``(B, C, H, W)``; the pure-torch pipelines need no torchvision for it."""

    def __init__(self, *transforms: ImageTransform) -> None:
        if not transforms:
            raise ValueError("Chain needs at least one transform")
        self.transforms = transforms

    def __call__(self, x: Tensor) -> Tensor:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        return f"Chain({', '.join(repr(t) for t in self.transforms)})"


class ScaleNormalize:
    """``(x / 255 - mean) / std`` per channel for uint8 input; float input is taken as in [0, 1].

    Unlike :class:`cdbloss.lab.data.transforms.Normalize` it takes the uint8
    tensors these datasets store, one image or a whole batch.

    Args:
        mean, std: one value per channel (``C`` each).

    Shape:
        ``(C, H, W)`` or ``(B, C, H, W)`` in, float32 of the same shape out.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != len(std) or not mean:
            raise ValueError(f"mean and std need one value per channel, got {mean} and {std}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be > 0, got {std}")
        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(-1, 1, 1)
        self._on_device: dict[torch.device, tuple[Tensor, Tensor]] = {}

    def __call__(self, x: Tensor) -> Tensor:
        if x.dim() not in (3, 4) or x.shape[-3] != self.mean.shape[0]:
            raise ValueError(
                f"ScaleNormalize expects (C, H, W) or (B, C, H, W) with C={self.mean.shape[0]}, "
                f"got shape {tuple(x.shape)}"
            )
        xf = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        mean, std = self.mean, self.std
        if x.device != mean.device:  # copied to another device once, then reused
            if x.device not in self._on_device:
                self._on_device[x.device] = (mean.to(x.device), std.to(x.device))
            mean, std = self._on_device[x.device]
        return (xf - mean) / std

    def __repr__(self) -> str:
        return f"ScaleNormalize(mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()})"


class RandomCropFlip:
    """Random ``size x size`` crop after zero padding, then a horizontal flip with probability p.

    The CIFAR augmentation of He et al. (crop 32, padding 4, flip 0.5).
    Each image of a batch gets its own crop offset and flip.

    Args:
        size: output height and width.
        padding: zeros added on every side before cropping.
        flip_p: probability of a horizontal flip.
        generator: a seeded ``torch.Generator``; ``None`` uses torch's global
            generator (which a ``DataLoader`` seeds per worker).

    Shape:
        ``(C, H, W)`` or ``(B, C, H, W)`` in (any dtype), ``(..., C, size, size)`` out,
        same dtype.
    """

    def __init__(
        self,
        size: int = 32,
        padding: int = 4,
        flip_p: float = 0.5,
        generator: torch.Generator | None = None,
    ) -> None:
        if size < 1 or padding < 0 or not 0.0 <= flip_p <= 1.0:
            raise ValueError(
                f"need size >= 1, padding >= 0, 0 <= flip_p <= 1; got {size}, {padding}, {flip_p}"
            )
        self.size, self.padding, self.flip_p, self.generator = size, padding, flip_p, generator

    def __call__(self, x: Tensor) -> Tensor:
        single = x.dim() == 3
        if x.dim() not in (3, 4):
            raise ValueError(f"RandomCropFlip expects (C,H,W) or (B,C,H,W), got {tuple(x.shape)}")
        xb = x.unsqueeze(0) if single else x
        p = self.padding
        padded = torch.nn.functional.pad(xb, (p, p, p, p)) if p else xb  # (B, C, H+2p, W+2p)
        b, _, hp, wp = padded.shape
        if hp < self.size or wp < self.size:
            raise ValueError(f"cannot crop {self.size}x{self.size} from padded {hp}x{wp} images")
        g = self.generator
        # The draws stay on the CPU (same generator, same order on any device), so a
        # batch gets the same crops and flips whether it is transformed here or on a GPU.
        tops = torch.randint(0, hp - self.size + 1, (b,), generator=g)
        lefts = torch.randint(0, wp - self.size + 1, (b,), generator=g)
        flips = torch.rand(b, generator=g) < self.flip_p
        # One gather instead of a loop over images: the flat position in the padded
        # image of every output pixel, columns read right to left where flipped.
        ar = torch.arange(self.size)
        cols = lefts[:, None] + torch.where(flips[:, None], self.size - 1 - ar, ar)  # (B, S)
        rows = tops[:, None] + ar  # (B, S)
        flat = (rows[:, :, None] * wp + cols[:, None, :]).view(b, 1, -1).to(padded.device)
        c = padded.shape[1]
        out = padded.reshape(b, c, hp * wp).gather(2, flat.expand(b, c, flat.shape[-1]))
        out = out.view(b, c, self.size, self.size)
        return out[0] if single else out

    def __repr__(self) -> str:
        return f"RandomCropFlip(size={self.size}, padding={self.padding}, flip_p={self.flip_p})"


class TensorImageDataset(Dataset[tuple[Tensor, int]]):
    """A split held in memory: ``images (N, C, H, W)`` uint8 and ``targets (N,)`` int64.

    Args:
        images: ``(N, C, H, W)`` uint8 tensor (stored as given, not copied).
        targets: ``(N,)`` integer labels in ``[0, num_classes)``.
        transform: applied to each image on access; ``None`` gives ``x / 255``
            as float32.
        num_classes: ``C``; labels are checked against it.
        source_indices: ``(N,)`` positions of these samples in the source split
            (e.g. MNIST's 60,000 training images), kept for audits and to prove
            that splits are disjoint.

    Item:
        ``(image, label)``: float32 ``(C, H, W)`` and a Python int.
    """

    def __init__(
        self,
        images: Tensor,
        targets: Tensor | Sequence[int] | npt.NDArray[np.integer[Any]],
        transform: ImageTransform | None = None,
        num_classes: int | None = None,
        source_indices: npt.NDArray[np.int64] | None = None,
    ) -> None:
        if images.dim() != 4 or images.dtype != torch.uint8:
            raise ValueError(
                f"images must be a (N, C, H, W) uint8 tensor, got {tuple(images.shape)} "
                f"{images.dtype}"
            )
        t = torch.as_tensor(np.asarray(targets) if not isinstance(targets, Tensor) else targets)
        if t.dim() != 1 or t.shape[0] != images.shape[0]:
            raise ValueError(
                f"targets must be (N,) with N={images.shape[0]}, got shape {tuple(t.shape)}"
            )
        if t.numel() and (t.is_floating_point() or t.is_complex()):
            raise ValueError(f"targets must be integers, got {t.dtype}")
        t = t.long()
        if t.numel() and int(t.min()) < 0:
            raise ValueError(f"labels must be >= 0, got {int(t.min())}")
        if num_classes is not None and t.numel() and int(t.max()) >= num_classes:
            raise ValueError(f"label {int(t.max())} is outside the class range [0, {num_classes})")
        if source_indices is not None and len(source_indices) != images.shape[0]:
            raise ValueError(
                f"source_indices has {len(source_indices)} entries for {images.shape[0]} images"
            )
        self.images = images
        self.targets = t
        self.transform = transform
        self.num_classes = num_classes
        self.source_indices = source_indices

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def _apply(self, x: Tensor) -> Tensor:
        if self.transform is None:
            return x.float() / 255.0
        return self.transform(x)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self._apply(self.images[index]), int(self.targets[index])

    def get_batch(
        self, indices: Tensor | Sequence[int], device: torch.device | str | None = None
    ) -> tuple[Tensor, Tensor]:
        """Images ``(B, C, H, W)`` float32 and labels ``(B,)`` int64 for ``indices``, in one go.

        With ``device``, the uint8 images are copied there first and the
        transform runs on that device (a GPU crops, flips and normalises a
        batch in a few kernels instead of the CPU doing it image by image).
        The transform must then accept tensors on ``device``, as the two
        above do; their random draws stay on the CPU, so the batch is the same.
        """
        idx = torch.as_tensor(indices, dtype=torch.long)
        x, y = self.images[idx], self.targets[idx]
        if device is not None:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        return self._apply(x), y

    def class_counts(self) -> list[int]:
        """Samples per class, length ``num_classes`` (or ``max label + 1``)."""
        if self.num_classes is not None:
            c = self.num_classes
        else:
            c = int(self.targets.max()) + 1 if len(self.targets) else 0
        return [int(n) for n in torch.bincount(self.targets, minlength=c)]

    def __repr__(self) -> str:
        return (
            f"TensorImageDataset(n={len(self)}, image={tuple(self.images.shape[1:])}, "
            f"transform={self.transform!r})"
        )
