"""cdbloss: the Class-wise Difficulty-Balanced loss (Sinha et al., ACCV 2020) for PyTorch."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
