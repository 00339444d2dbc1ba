"""Channel statistics that the image protocols normalise with.

A leaf module (no torchvision, no other lab module), so a protocol's signature can
name its defaults without importing its transforms.
"""

from __future__ import annotations

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD"]

#: ImageNet channel statistics (RGB, on [0, 1]), as used by the OLTR / CDB-loss code: the
#: normalisation of the image protocols (:mod:`cdbloss.lab.data.images` and
#: :mod:`cdbloss.lab.data.transforms` re-export them).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
