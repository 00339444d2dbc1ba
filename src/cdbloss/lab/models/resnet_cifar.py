r"""The CIFAR ResNets of He et al. (CVPR 2016, section 4.2): ResNet-8/20/32/44/56/110.

Layout for depth ``6n + 2`` (ResNet-32: ``n = 5``), input ``(N, 3, 32, 32)``:

* ``conv1``: 3x3 conv, 16 maps, BN, ReLU -> ``(N, 16, 32, 32)``;
* ``layer1``: ``n`` basic blocks, 16 maps -> ``(N, 16, 32, 32)``;
* ``layer2``: ``n`` basic blocks, 32 maps, the first with stride 2 -> ``(N, 32, 16, 16)``;
* ``layer3``: ``n`` basic blocks, 64 maps, the first with stride 2 -> ``(N, 64, 8, 8)``;
* global average pool -> ``(N, 64)``; ``linear`` -> ``(N, C)``.

A basic block is ``conv3x3-BN-ReLU-conv3x3-BN``, plus the shortcut, then ReLU.
Shortcuts are the paper's option A: parameter-free identity; where the shape
changes the input is subsampled with stride 2 and the new channels are zeros.
So the only parameters are the convolutions, the BN affine pairs and the head:

============  ==========  ===========
model         C = 10      C = 100
============  ==========  ===========
ResNet-8      75,290      81,140
ResNet-20     269,722     275,572
ResNet-32     464,154     470,004
ResNet-44     658,586     664,436
ResNet-56     853,018     858,868
ResNet-110    1,727,962   1,733,812
============  ==========  ===========

(The paper's "0.46M" for ResNet-32 is the 10-class count.) With
``normed_linear=True`` the head has no bias: ``C`` fewer parameters.

Initialisation as in He et al. and in the LDAM-DRW code that later CIFAR-LT
work (including CDB) builds on: Kaiming-normal (fan-in, ReLU gain) for the
convolutions and the linear weight, BN weight 1 and bias 0.

Module names (``conv1``, ``bn1``, ``layer1.0.conv1``, ..., ``linear``) follow the
widely used CIFAR ResNet code (LDAM-DRW, the CDB authors' CIFAR code), so its
checkpoints load with ``model.pretrained`` (:mod:`cdbloss.lab.models.pretrained`; not yet
tried on a real checkpoint).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .layers import NormedLinear
from .registry import check_bool, check_int, register_model

__all__ = [
    "CifarResNet",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
]


class _ZeroPadShortcut(nn.Module):
    """Option A shortcut: subsample by ``stride`` and append ``extra`` all-zero channels."""

    def __init__(self, stride: int, extra: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra = extra

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]  # (N, C_in, H/s, W/s)
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))  # (N, C_in + extra, H/s, W/s)


class _BasicBlock(nn.Module):
    """``conv3x3-BN-ReLU-conv3x3-BN`` + option-A shortcut, then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = _ZeroPadShortcut(stride, planes - in_planes)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet of depth ``6n + 2`` for 32x32 images (He et al. 2016, option A shortcuts).

    Args:
        num_classes: ``C``.
        depth: ``6n + 2`` with ``n >= 1``: 8, 20, 32, 44, 56, 110, ...
        normed_linear: use :class:`NormedLinear` (cosine logits in ``[-1, 1]``,
            needed by the LDAM loss) instead of ``nn.Linear``.
        in_channels: image channels (3).

    Shape:
        - input: ``(N, in_channels, H, W)``, 32x32 for CIFAR (any size works:
          the head follows a global average pool).
        - output: ``(N, C)`` logits.

    Example:
        >>> import torch
        >>> CifarResNet(10, depth=20)(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self, num_classes: int, depth: int = 32, normed_linear: bool = False, in_channels: int = 3
    ) -> None:
        super().__init__()
        check_int("num_classes", num_classes, minimum=1)
        check_int("depth", depth)
        check_bool("normed_linear", normed_linear)
        check_int("in_channels", in_channels, minimum=1)
        if depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(
                f"depth must be 6n + 2 with n >= 1 (8, 20, 32, 44, 56, 110), got {depth}"
            )
        n = (depth - 2) // 6
        self.depth = depth
        self.conv1 = nn.Conv2d(in_channels, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._stage(16, 16, n, stride=1)
        self.layer2 = self._stage(16, 32, n, stride=2)
        self.layer3 = self._stage(32, 64, n, stride=2)
        self.linear: nn.Module = (
            NormedLinear(64, num_classes) if normed_linear else nn.Linear(64, num_classes)
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _stage(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [_BasicBlock(in_planes, planes, stride)]
        layers += [_BasicBlock(planes, planes, 1) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def features(self, x: Tensor) -> Tensor:
        """Pooled features ``(N, 64)`` before the head."""
        out: Tensor = F.relu(self.bn1(self.conv1(x)))  # (N, 16, 32, 32)
        out = self.layer1(out)  # (N, 16, 32, 32)
        out = self.layer2(out)  # (N, 32, 16, 16)
        out = self.layer3(out)  # (N, 64, 8, 8)
        return out.mean(dim=(2, 3))  # (N, 64)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(N, C)`` for images ``(N, in_channels, H, W)``."""
        if x.dim() != 4 or x.shape[1] != self.conv1.in_channels:
            raise ValueError(
                f"CifarResNet expects input of shape (N, {self.conv1.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        logits: Tensor = self.linear(self.features(x))
        return logits


def _build(depth: int, num_classes: int, normed_linear: bool, in_channels: int) -> CifarResNet:
    return CifarResNet(
        num_classes, depth=depth, normed_linear=normed_linear, in_channels=in_channels
    )


@register_model("resnet8")
def resnet8(num_classes: int, normed_linear: bool = False, in_channels: int = 3) -> CifarResNet:
    """CIFAR ResNet-8 (75,290 parameters for 10 classes): one block per stage; see
    :class:`CifarResNet`. Not in the paper: the reduced network this project's CPU-only
    CIFAR-10-LT runs use, about a fifth of ResNet-32's work per image."""
    return _build(8, num_classes, normed_linear, in_channels)


@register_model("resnet20")
def resnet20(num_classes: int, normed_linear: bool = False, in_channels: int = 3) -> CifarResNet:
    """CIFAR ResNet-20 (269,722 parameters for 10 classes); see :class:`CifarResNet`."""
    return _build(20, num_classes, normed_linear, in_channels)


@register_model("resnet32")
def resnet32(num_classes: int, normed_linear: bool = False, in_channels: int = 3) -> CifarResNet:
    """CIFAR ResNet-32 (464,154 parameters for 10 classes, 470,004 for 100); see
    :class:`CifarResNet`. The network of the CIFAR-LT experiments (Tables 3-4)."""
    return _build(32, num_classes, normed_linear, in_channels)


@register_model("resnet44")
def resnet44(num_classes: int, normed_linear: bool = False, in_channels: int = 3) -> CifarResNet:
    """CIFAR ResNet-44; see :class:`CifarResNet`."""
    return _build(44, num_classes, normed_linear, in_channels)


@register_model("resnet56")
def resnet56(num_classes: int, normed_linear: bool = False, in_channels: int = 3) -> CifarResNet:
    """CIFAR ResNet-56; see :class:`CifarResNet`."""
    return _build(56, num_classes, normed_linear, in_channels)


@register_model("resnet110")
def resnet110(num_classes: int, normed_linear: bool = False, in_channels: int = 3) -> CifarResNet:
    """CIFAR ResNet-110; see :class:`CifarResNet`."""
    return _build(110, num_classes, normed_linear, in_channels)
