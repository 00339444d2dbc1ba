r"""3D-ResNeXt-101 for action recognition (Hara, Kataoka & Satoh, CVPR 2018).

"Can spatiotemporal 3D CNNs retrace the history of 2D CNNs and ImageNet?":
the network of the CDB paper's EGTEA Gaze+ experiment (Tables 6-7), on 10
frames of 224x224; the authors' code fine-tunes it from Hara's Kinetics
checkpoint (``model.pretrained``, configs/egtea_authors.yaml).

Layout with the defaults (Hara's ResNeXt-101, cardinality 32, shortcut B),
input ``(N, 3, T, H, W)``:

* stem: 7x7x7 conv, stride ``(1, 2, 2)``, padding 3, 64 maps, BN, ReLU;
  3x3x3 max-pool stride 2 -> ``(N, 64, T/2, H/4, W/4)``;
* ``layer1``: 3 bottlenecks, width 128, 256 out -> ``(N, 256, T/2, H/4, W/4)``;
* ``layer2``: 4 bottlenecks, width 256, 512 out, stride 2;
* ``layer3``: 23 bottlenecks, width 512, 1024 out, stride 2;
* ``layer4``: 3 bottlenecks, width 1024, 2048 out, stride 2 -> ``(N, 2048, T/16, H/32, W/32)``;
* global average pool (over time and space) -> ``(N, 2048)``; ``fc`` -> ``(N, C)``.

A bottleneck is ``1x1x1 conv (width) - BN - ReLU - 3x3x3 grouped conv (width,
cardinality groups, the stage's stride) - BN - ReLU - 1x1x1 conv (2 x width) -
BN``, plus the shortcut, then ReLU. Shortcuts are identities except where the
shape changes: there a strided 1x1x1 conv and BN (Hara's option B, the one
used by the Kinetics-pretrained ResNeXt-101).

Parameters: 47,521,216 without the head, so **48,340,816** for the 400
Kinetics classes and **47,560,147** for the 19 EGTEA verbs
(``47,521,216 + 2,049 C``); published figures for Hara's ResNeXt-101 are
quoted at about 47-48 M.

Shrinking for tests: ``layers`` (blocks per stage), ``cardinality``,
``base_width`` (width of ``layer1``, doubled per stage; a multiple of
``cardinality``) and ``stem_channels``. The defaults equal Hara's model; with
``cardinality = 32`` Hara's ``planes`` equals our width. Hara's code ties the
width to ``cardinality * planes / 32``; here width and cardinality are
independent, which is the same network at the defaults.

Initialisation as in Hara's code: Kaiming-normal with fan-out for the
convolutions, BN weight 1 and bias 0, PyTorch's default for ``fc``. Module
names follow Hara's code (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer1.0.downsample.0``, ``fc``), so the parameter names of that code's Kinetics
checkpoints match once the ``state_dict`` wrapper and the ``module.`` prefix are removed,
which :mod:`cdbloss.lab.models.pretrained` does (tested on a small checkpoint written in that
layout; not yet on the real file).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .registry import check_int, check_int_sequence, register_model

__all__ = ["ResNeXt3D", "resnext3d_101"]


class _Bottleneck3D(nn.Module):
    """ResNeXt bottleneck: 1x1x1 -> grouped 3x3x3 (strided) -> 1x1x1 (x2 width) + shortcut."""

    expansion = 2

    def __init__(self, in_planes: int, width: int, cardinality: int, stride: int) -> None:
        super().__init__()
        out_planes = width * self.expansion
        self.conv1 = nn.Conv3d(in_planes, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        self.conv2 = nn.Conv3d(
            width, width, kernel_size=3, stride=stride, padding=1, groups=cardinality, bias=False
        )
        self.bn2 = nn.BatchNorm3d(width)
        self.conv3 = nn.Conv3d(width, out_planes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(out_planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != out_planes:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm3d(out_planes),
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + identity)


class ResNeXt3D(nn.Module):
    """3D-ResNeXt with bottleneck blocks (ResNeXt-101, cardinality 32, by default).

    Args:
        num_classes: ``C``.
        layers: bottlenecks per stage, four ints ``>= 1`` (``(3, 4, 23, 3)``: ResNeXt-101;
            ``(3, 4, 6, 3)``: ResNeXt-50).
        cardinality: groups of the 3x3x3 convolutions (32).
        base_width: channels inside the ``layer1`` bottlenecks (128); stage ``i``
            uses ``base_width * 2**i`` and outputs twice that. Must be a multiple
            of ``cardinality``.
        stem_channels: maps of the stem convolution (64).
        in_channels: input channels (3 for RGB).

    Shape:
        - input: ``(N, in_channels, T, H, W)``, e.g. ``(N, 3, 10, 224, 224)`` for EGTEA.
        - output: ``(N, C)`` logits.

    Example:
        >>> import torch
        >>> tiny = ResNeXt3D(19, layers=(1, 1, 1, 1), cardinality=4, base_width=8,
        ...                  stem_channels=8)
        >>> tiny.eval()(torch.zeros(1, 3, 4, 32, 32)).shape
        torch.Size([1, 19])
    """

    def __init__(
        self,
        num_classes: int,
        layers: tuple[int, int, int, int] = (3, 4, 23, 3),
        cardinality: int = 32,
        base_width: int = 128,
        stem_channels: int = 64,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        check_int("num_classes", num_classes, minimum=1)
        blocks = check_int_sequence("layers", layers, 4, minimum=1)
        check_int("cardinality", cardinality, minimum=1)
        check_int("base_width", base_width, minimum=1)
        check_int("stem_channels", stem_channels, minimum=1)
        check_int("in_channels", in_channels, minimum=1)
        if base_width % cardinality != 0:
            raise ValueError(
                f"base_width must be a multiple of cardinality ({cardinality}), got {base_width}"
            )
        self.conv1 = nn.Conv3d(
            in_channels, stem_channels, kernel_size=7, stride=(1, 2, 2), padding=3, bias=False
        )
        self.bn1 = nn.BatchNorm3d(stem_channels)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        in_planes = stem_channels
        stages = []
        for i, n in enumerate(blocks):
            width = base_width * 2**i
            stride = 1 if i == 0 else 2
            stage = [_Bottleneck3D(in_planes, width, cardinality, stride)]
            in_planes = width * _Bottleneck3D.expansion
            stage += [_Bottleneck3D(in_planes, width, cardinality, 1) for _ in range(n - 1)]
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = in_planes
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: Tensor) -> Tensor:
        """Pooled features ``(N, 2 * base_width * 8)`` (2048 by default) before ``fc``."""
        out: Tensor = self.maxpool(F.relu(self.bn1(self.conv1(x))))  # (N, 64, T/2, H/4, W/4)
        out = self.layer1(out)  # (N, 256, T/2, H/4, W/4)
        out = self.layer2(out)  # (N, 512, T/4, H/8, W/8)
        out = self.layer3(out)  # (N, 1024, T/8, H/16, W/16)
        out = self.layer4(out)  # (N, 2048, T/16, H/32, W/32)
        return out.mean(dim=(2, 3, 4))  # (N, 2048)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(N, C)`` for clips ``(N, in_channels, T, H, W)``."""
        if x.dim() != 5 or x.shape[1] != self.conv1.in_channels:
            raise ValueError(
                f"ResNeXt3D expects input of shape (N, {self.conv1.in_channels}, T, H, W), "
                f"got {tuple(x.shape)}"
            )
        logits: Tensor = self.fc(self.features(x))
        return logits


@register_model("resnext3d_101")
def resnext3d_101(
    num_classes: int,
    layers: tuple[int, int, int, int] = (3, 4, 23, 3),
    cardinality: int = 32,
    base_width: int = 128,
    stem_channels: int = 64,
    in_channels: int = 3,
) -> ResNeXt3D:
    """3D-ResNeXt-101 (Hara et al. 2018): 47,560,147 parameters for 19 classes with the
    defaults; ``layers``/``cardinality``/``base_width``/``stem_channels`` shrink it for
    tests. See :class:`ResNeXt3D`."""
    return ResNeXt3D(
        num_classes,
        layers=layers,
        cardinality=cardinality,
        base_width=base_width,
        stem_channels=stem_channels,
        in_channels=in_channels,
    )
