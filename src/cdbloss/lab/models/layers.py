"""Layers the networks share.

:class:`NormedLinear` is the cosine classifier head that LDAM is trained with
(``normed_linear=True`` of the CIFAR and ImageNet ResNets and of LeNet-5). It lives with the
models, not in the library, because it is part of a network: the library
(``import cdbloss``) holds losses and weightings, and an LDAM user with a
network of their own imports the head from here (torch only).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import check_int

__all__ = ["NormedLinear"]


class NormedLinear(nn.Module):
    r"""Cosine classifier: the linear head LDAM is trained with (Cao et al. 2019).

    .. math::
        z_c = \frac{x^\top w_c}{\lVert x \rVert_2 \, \lVert w_c \rVert_2} \in [-1, 1]

    Both the feature and each class's weight vector are L2-normalised; there is
    no bias and no scale (the LDAM loss multiplies by its own ``s``).

    Args:
        in_features: feature width ``D``.
        out_features: number of classes ``C``.

    Shape:
        - input: ``(N, D)``
        - output: ``(N, C)``, each entry in ``[-1, 1]``.

    Example:
        >>> import torch
        >>> head = NormedLinear(64, 10)
        >>> bool(head(torch.randn(4, 64)).abs().max() <= 1 + 1e-6)
        True
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        check_int("in_features", in_features, minimum=1)
        check_int("out_features", out_features, minimum=1)
        self.in_features = in_features
        self.out_features = out_features
        # (C, D), one row per class like nn.Linear; rows start as random unit vectors.
        weight = torch.empty(out_features, in_features).uniform_(-1.0, 1.0)
        self.weight = nn.Parameter(F.normalize(weight, dim=1))

    def forward(self, x: Tensor) -> Tensor:
        """Cosine similarities ``(N, C)`` between the features ``(N, D)`` and the class rows."""
        return F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"
