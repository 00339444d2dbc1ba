"""Networks of the paper's experiments, registered by name.

================  ==============================================  =====================
name              network                                         experiment
================  ==============================================  =====================
``lenet5``        LeNet-5 (ReLU, max pooling), 28x28 inputs       MNIST 4 vs 9
``mlp``           a small MLP on flattened inputs                 synthetic, tests
``resnet32``      CIFAR ResNet-32 (He et al. 2016, option A)      CIFAR-LT
``resnet8``       CIFAR ResNet-8 (one block per stage)            CIFAR-10-LT on a CPU
``resnet20/44/``  the other CIFAR ResNets of the same family
``56/110``
``resnet10``      ImageNet ResNet-10 (basic blocks, 1 per stage)  ImageNet-LT
``resnet18``      ImageNet ResNet-18 (torchvision's names)        fine-tuning
``resnext3d_101`` 3D-ResNeXt-101, cardinality 32 (Hara et al.)    EGTEA Gaze+
================  ==============================================  =====================

Every model maps a batch to logits ``(N, C)``; the device follows the module
(move it with ``.to(device)``), nothing is pinned to CUDA. ``torchvision.<arch>``
builds any torchvision architecture (``torchvision.resnet50``,
``torchvision.r3d_18``; needs torchvision), and :func:`load_pretrained` starts any
of them from a local checkpoint (:mod:`cdbloss.lab.models.pretrained`).

Example:
    >>> import torch
    >>> from cdbloss.lab.models import build_model
    >>> model = build_model("resnet32", num_classes=100, normed_linear=True)
    >>> model(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 100])
"""

from __future__ import annotations

from .layers import NormedLinear
from .lenet import LeNet5, lenet5
from .mlp import MLP, mlp
from .pretrained import LoadReport, PretrainedError, load_pretrained, read_state_dict
from .registry import (
    MODELS,
    ModelFactory,
    build_model,
    count_parameters,
    get_model,
    is_model_name,
    register_model,
)
from .resnet import ImageNetResNet, resnet10, resnet18
from .resnet_cifar import (
    CifarResNet,
    resnet8,
    resnet20,
    resnet32,
    resnet44,
    resnet56,
    resnet110,
)
from .resnext3d import ResNeXt3D, resnext3d_101

__all__ = [
    "MLP",
    "MODELS",
    "CifarResNet",
    "ImageNetResNet",
    "LeNet5",
    "LoadReport",
    "ModelFactory",
    "NormedLinear",
    "PretrainedError",
    "ResNeXt3D",
    "build_model",
    "count_parameters",
    "get_model",
    "is_model_name",
    "lenet5",
    "load_pretrained",
    "mlp",
    "read_state_dict",
    "register_model",
    "resnet8",
    "resnet10",
    "resnet18",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "resnext3d_101",
]
