"""LeNet-5 for MNIST (the imbalanced 4-vs-9 experiment, Tables 1-2).

The form is the one common in PyTorch re-implementations of the L2RW MNIST
setup (Ren et al. 2018) that the CDB paper follows: LeCun's LeNet-5 with ReLU
and max pooling in place of the scaled tanh and trainable subsampling:

======  ===========================================  ==============  ===========
layer   operation                                    output (28x28)  parameters
======  ===========================================  ==============  ===========
C1      conv 5x5, 6 maps, padding 2 (28x28 input)    6 x 28 x 28     150 k + 6
S2      ReLU, max-pool 2x2 stride 2                  6 x 14 x 14     0
C3      conv 5x5, 16 maps                            16 x 10 x 10    2,416
S4      ReLU, max-pool 2x2 stride 2                  16 x 5 x 5      0
C5      conv 5x5, 120 maps, ReLU                     120 x 1 x 1     48,120
F6      linear 120 -> 84, ReLU                       84              10,164
out     linear 84 -> C                               C               85 C
======  ===========================================  ==============  ===========

(``k`` = ``in_channels``.) Total ``60,706 + 150 k + 85 C``: **61,026** for one
input channel and two classes (the 4-vs-9 task), **61,706** for ten classes.
The padding of C1 makes a 28x28 MNIST digit behave exactly as the classic
32x32 zero-padded input; ``input_size=32`` drops the padding for inputs that
are already 32x32 (some re-implementations resize MNIST to 32x32).

Initialisation: PyTorch's default (Kaiming-uniform with ``a = sqrt(5)``), as in
the PyTorch L2RW re-implementations; LeNet-5 predates Kaiming initialisation.
"""

from __future__ import annotations

from torch import Tensor, nn

from .layers import NormedLinear
from .registry import check_bool, check_int, register_model

__all__ = ["LeNet5", "lenet5"]


class LeNet5(nn.Module):
    """LeNet-5 (ReLU, max pooling) returning logits.

    Args:
        num_classes: ``C``.
        in_channels: image channels (1 for MNIST).
        input_size: 28 (C1 padded by 2, the default) or 32 (no padding).
        normed_linear: cosine output layer (:class:`NormedLinear`, logits in
            ``[-1, 1]``, no bias) as LDAM-DRW expects.

    Shape:
        - input: ``(N, in_channels, input_size, input_size)``
        - output: ``(N, C)`` logits.

    Example:
        >>> import torch
        >>> LeNet5(num_classes=2)(torch.zeros(3, 1, 28, 28)).shape
        torch.Size([3, 2])
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 1,
        input_size: int = 28,
        normed_linear: bool = False,
    ) -> None:
        super().__init__()
        check_int("num_classes", num_classes, minimum=1)
        check_int("in_channels", in_channels, minimum=1)
        check_int("input_size", input_size)
        check_bool("normed_linear", normed_linear)
        if input_size not in (28, 32):
            raise ValueError(f"input_size must be 28 or 32, got {input_size}")
        self.in_channels = in_channels
        self.input_size = input_size
        padding = (32 - input_size) // 2
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=padding),  # C1: (N, 6, 28, 28)
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),  # S2: (N, 6, 14, 14)
            nn.Conv2d(6, 16, kernel_size=5),  # C3: (N, 16, 10, 10)
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),  # S4: (N, 16, 5, 5)
            nn.Conv2d(16, 120, kernel_size=5),  # C5: (N, 120, 1, 1)
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Sequential(
            nn.Linear(120, 84),  # F6
            nn.ReLU(inplace=True),
            NormedLinear(84, num_classes) if normed_linear else nn.Linear(84, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(N, C)`` for images ``(N, in_channels, input_size, input_size)``."""
        expected = (self.in_channels, self.input_size, self.input_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"LeNet5 expects input of shape (N, {', '.join(map(str, expected))}), "
                f"got {tuple(x.shape)}"
            )
        features = self.features(x).flatten(1)  # (N, 120)
        logits: Tensor = self.classifier(features)  # (N, C)
        return logits


@register_model("lenet5")
def lenet5(
    num_classes: int, in_channels: int = 1, input_size: int = 28, normed_linear: bool = False
) -> LeNet5:
    """LeNet-5 for MNIST-sized images; see :class:`LeNet5`."""
    return LeNet5(
        num_classes, in_channels=in_channels, input_size=input_size, normed_linear=normed_linear
    )
