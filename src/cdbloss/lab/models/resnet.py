"""ResNet-10 for ImageNet-LT (Liu et al. 2019, OLTR; the CDB paper's Table 5).

The ImageNet ResNet of He et al. (CVPR 2016) with basic blocks and one block
per stage, as in the OLTR code that the ImageNet-LT literature shares.
Input ``(N, 3, 224, 224)``:

* stem: 7x7 conv stride 2, 64 maps, BN, ReLU, 3x3 max-pool stride 2 -> ``(N, 64, 56, 56)``;
* ``layer1``: 64 maps -> ``(N, 64, 56, 56)``;
* ``layer2``: 128 maps, stride 2 -> ``(N, 128, 28, 28)``;
* ``layer3``: 256 maps, stride 2 -> ``(N, 256, 14, 14)``;
* ``layer4``: 512 maps, stride 2 -> ``(N, 512, 7, 7)``;
* global average pool -> ``(N, 512)``; ``fc`` -> ``(N, C)``.

A basic block is ``conv3x3-BN-ReLU-conv3x3-BN`` + shortcut, then ReLU; where
the shape changes the shortcut is a 1x1 conv with the block's stride and BN
(option B). Parameters: 4,905,792 without the head, so **5,418,792** for
ImageNet-LT's 1,000 classes (``4,905,792 + 513 C``).

Initialisation as in the OLTR / torchvision code: Kaiming-normal with fan-out
for convolutions, BN weight 1 and bias 0, PyTorch's default for ``fc``.
Module names follow torchvision's ResNet (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer2.0.downsample.0``, ``fc``), so torchvision's ``resnet18`` state dict loads
into ``resnet18`` and the trunk of OLTR-style ResNet-10 checkpoints into ``resnet10``
with no renaming (``model.pretrained``; tested with synthetic checkpoints in those
layouts, ``tests/lab/models/test_pretrained.py``).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .layers import NormedLinear
from .registry import check_bool, check_int, check_int_sequence, register_model

__all__ = ["ImageNetResNet", "resnet10", "resnet18"]


class _BasicBlock(nn.Module):
    """``conv3x3-BN-ReLU-conv3x3-BN`` + (projection) shortcut, then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class ImageNetResNet(nn.Module):
    """ImageNet-style ResNet with basic blocks (ResNet-10 by default).

    Args:
        num_classes: ``C``.
        layers: blocks per stage, four ints ``>= 1``; ``(1, 1, 1, 1)`` is ResNet-10,
            ``(2, 2, 2, 2)`` ResNet-18.
        normed_linear: cosine head (:class:`~cdbloss.lab.models.layers.NormedLinear`,
            for LDAM) instead of ``nn.Linear``.
        in_channels: image channels (3).

    Shape:
        - input: ``(N, in_channels, H, W)``; 224x224 for ImageNet-LT, any size
          ``>= 32`` works (global average pool before the head).
        - output: ``(N, C)`` logits.

    Example:
        >>> import torch
        >>> ImageNetResNet(1000).eval()(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 1000])
    """

    def __init__(
        self,
        num_classes: int,
        layers: tuple[int, int, int, int] = (1, 1, 1, 1),
        normed_linear: bool = False,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        check_int("num_classes", num_classes, minimum=1)
        blocks = check_int_sequence("layers", layers, 4, minimum=1)
        check_bool("normed_linear", normed_linear)
        check_int("in_channels", in_channels, minimum=1)
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._stage(64, 64, blocks[0], stride=1)
        self.layer2 = self._stage(64, 128, blocks[1], stride=2)
        self.layer3 = self._stage(128, 256, blocks[2], stride=2)
        self.layer4 = self._stage(256, 512, blocks[3], stride=2)
        self.fc: nn.Module = (
            NormedLinear(512, num_classes) if normed_linear else nn.Linear(512, num_classes)
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _stage(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [_BasicBlock(in_planes, planes, stride)]
        layers += [_BasicBlock(planes, planes, 1) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def features(self, x: Tensor) -> Tensor:
        """Pooled features ``(N, 512)`` before the head."""
        out: Tensor = self.maxpool(F.relu(self.bn1(self.conv1(x))))  # (N, 64, H/4, W/4)
        out = self.layer1(out)  # (N, 64, H/4, W/4)
        out = self.layer2(out)  # (N, 128, H/8, W/8)
        out = self.layer3(out)  # (N, 256, H/16, W/16)
        out = self.layer4(out)  # (N, 512, H/32, W/32)
        return out.mean(dim=(2, 3))  # (N, 512)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(N, C)`` for images ``(N, in_channels, H, W)``."""
        if x.dim() != 4 or x.shape[1] != self.conv1.in_channels:
            raise ValueError(
                f"ImageNetResNet expects input of shape (N, {self.conv1.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        logits: Tensor = self.fc(self.features(x))
        return logits


@register_model("resnet10")
def resnet10(num_classes: int, normed_linear: bool = False, in_channels: int = 3) -> ImageNetResNet:
    """ResNet-10 for ImageNet-LT (5,418,792 parameters for 1,000 classes); see
    :class:`ImageNetResNet`."""
    return ImageNetResNet(
        num_classes, layers=(1, 1, 1, 1), normed_linear=normed_linear, in_channels=in_channels
    )


@register_model("resnet18")
def resnet18(num_classes: int, normed_linear: bool = False, in_channels: int = 3) -> ImageNetResNet:
    """ImageNet ResNet-18 (11,689,512 parameters for 1,000 classes, as torchvision's), with
    torchvision's module names, so its checkpoints load as they are; see :class:`ImageNetResNet`."""
    return ImageNetResNet(
        num_classes, layers=(2, 2, 2, 2), normed_linear=normed_linear, in_channels=in_channels
    )
