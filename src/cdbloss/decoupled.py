"""Re-balancing a trained classifier: the decoupled and two-stage baselines' pieces.

Pure functions of tensors plus two small modules, usable in any training loop:

* :func:`tau_normalize`: tau-normalisation of the classifier's rows (Kang et al., ICLR 2020),
  ``w_c / ||w_c|| ** tau``; no training.
* :func:`posthoc_logit_adjust`: post-hoc logit adjustment (Menon et al., ICLR 2021),
  ``z - tau log pi``; no training.
* :func:`max_norm_` and :class:`MaxNorm`: the MaxNorm projection of weight balancing
  (Alshammari et al., CVPR 2022): after every optimiser step each class row's norm is
  clipped to at most a threshold.
* :class:`ClassScale`: learnable weight scaling (LWS, Kang et al.): one learnt factor per
  class on the logits, ``f_c z_c``.
* :func:`class_balanced_indices`: the class-balanced sampling of classifier re-training
  (cRT) and LWS: each draw picks a class uniformly, then an example of it.

Example:
    >>> import torch
    >>> w = torch.tensor([[3.0, 4.0], [0.6, 0.8]])   # rows of norm 5 and 1
    >>> tau_normalize(w, 1.0).norm(dim=1)
    tensor([1., 1.])
    >>> _ = max_norm_(w, 2.0); w.norm(dim=1)
    tensor([2., 1.])
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "ClassScale",
    "MaxNorm",
    "class_balanced_indices",
    "log_prior",
    "max_norm_",
    "posthoc_logit_adjust",
    "tau_normalize",
]


def _check_rows(weight: Tensor, what: str) -> None:
    if not isinstance(weight, Tensor):
        raise TypeError(f"{what} must be a tensor, got {type(weight).__name__}")
    if weight.dim() != 2:
        raise ValueError(
            f"{what} must have shape (C, D): one row per class, got shape {tuple(weight.shape)}"
        )
    if not weight.is_floating_point():
        raise ValueError(f"{what} must be a floating-point tensor, got {weight.dtype}")


def _check_number(value: float, what: str, low: float, strict: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < low or (strict and value == low):
        sign = ">" if strict else ">="
        raise ValueError(f"{what} must be a finite number {sign} {low:g}, got {value!r}")
    return value


def tau_normalize(weight: Tensor, tau: float, eps: float = 1e-12) -> Tensor:
    r"""Tau-normalised classifier rows (Kang et al., ICLR 2020, Sec. 4).

    .. math:: \tilde w_c = \frac{w_c}{\max(\lVert w_c \rVert_2, \epsilon)^{\tau}}

    ``tau = 0`` returns the rows unchanged, ``tau = 1`` gives rows of unit norm; values in
    between shrink the long rows of the head classes more than the tail's. A bias is not
    touched (keep or drop it yourself). The result is a new tensor (no gradient flows
    into ``weight`` beyond autograd's usual rules).

    Args:
        weight: classifier rows, shape ``(C, D)`` (``nn.Linear(D, C).weight``).
        tau: the exponent, a finite number ``>= 0``.
        eps: floor on a row's norm, so a zero row stays zero.

    Returns:
        Tensor of shape ``(C, D)``, same dtype and device.

    Raises:
        ValueError: ``weight`` not 2-D floating point, or ``tau`` negative / not finite.
    """
    _check_rows(weight, "weight")
    tau = _check_number(tau, "tau", 0.0, strict=False)
    _check_number(eps, "eps", 0.0, strict=True)
    if tau == 0.0:
        return weight.clone()
    norms = weight.norm(dim=1, keepdim=True).clamp_min(eps)  # (C, 1)
    out: Tensor = weight / norms.pow(tau)
    return out


def log_prior(class_counts: Sequence[int] | Tensor) -> Tensor:
    r"""``log pi_c`` with ``pi_c = n_c / sum_k n_k``, shape ``(C,)`` float32.

    Raises:
        ValueError: a count negative, or all counts zero, or not 1-D. A class of zero
            count gets ``-inf`` (post-hoc adjustment then pushes it to ``+inf``), so zero
            counts are refused too.
    """
    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    if counts.dim() != 1 or counts.numel() == 0:
        raise ValueError(
            f"class_counts must be a non-empty 1-D sequence, got shape {tuple(counts.shape)}"
        )
    if bool((counts <= 0).any()) or not bool(torch.isfinite(counts).all()):
        raise ValueError(
            f"class_counts must all be finite and > 0 (a prior of 0 has no logarithm), "
            f"got {counts.tolist()}"
        )
    return (counts / counts.sum()).log().float()


def posthoc_logit_adjust(
    logits: Tensor, class_counts: Sequence[int] | Tensor, tau: float = 1.0
) -> Tensor:
    r"""Post-hoc logit adjustment (Menon et al., ICLR 2021, Eq. 9).

    .. math:: \tilde z_{ic} = z_{ic} - \tau \log \pi_c,
              \qquad \pi_c = n_c / \textstyle\sum_k n_k

    The arg-max of the adjusted logits estimates the balanced-error Bayes classifier
    when the model's softmax estimates ``p(y | x)`` of the long-tailed training set
    (``tau = 1``); ``tau = 0`` is the identity.

    Args:
        logits: shape ``(N, C)``.
        class_counts: training examples per class ``n_c``, shape ``(C,)``, all ``> 0``.
        tau: the adjustment's strength, a finite number ``>= 0``.

    Returns:
        Tensor of shape ``(N, C)``, dtype and device of ``logits``.

    Raises:
        ValueError: ``logits`` not ``(N, C)``, counts of another length or not ``> 0``,
            or ``tau`` negative / not finite.
    """
    if not isinstance(logits, Tensor) or logits.dim() != 2:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"logits must have shape (N, C), got {shape}")
    tau = _check_number(tau, "tau", 0.0, strict=False)
    prior = log_prior(class_counts)
    if prior.numel() != logits.shape[1]:
        raise ValueError(
            f"class_counts has {prior.numel()} classes, logits have {logits.shape[1]} (N, C)"
        )
    if tau == 0.0:
        return logits.clone()
    return logits - tau * prior.to(device=logits.device, dtype=logits.dtype)  # (N, C)


@torch.no_grad()
def max_norm_(weight: Tensor, max_norm: float) -> Tensor:
    r"""Project ``weight``'s rows, in place, onto the ball of radius ``max_norm``.

    .. math:: w_c \leftarrow w_c \cdot \min\!\left(1, \frac{m}{\lVert w_c \rVert_2}\right)

    Rows already inside the ball are left bit-for-bit unchanged; longer rows keep their
    direction and get norm ``m`` (up to rounding: the bound holds to a relative ``1e-6``
    in float32). This is the projection step of projected gradient descent that weight
    balancing's MaxNorm uses; call it after every optimiser step.

    Args:
        weight: classifier rows, shape ``(C, D)``; modified in place (also a parameter).
        max_norm: the threshold ``m``, a finite number ``> 0``.

    Returns:
        ``weight`` itself.

    Raises:
        ValueError: ``weight`` not 2-D floating point, or ``max_norm`` not ``> 0``.
    """
    _check_rows(weight, "weight")
    m = _check_number(max_norm, "max_norm", 0.0, strict=True)
    norms = weight.norm(dim=1, keepdim=True)  # (C, 1)
    over = norms > m
    if bool(over.any()):
        factor = torch.where(over, m / norms.clamp_min(torch.finfo(weight.dtype).tiny), 1.0)
        weight.mul_(factor.to(weight.dtype))
    return weight


class MaxNorm:
    """MaxNorm for a training loop: keeps each row of the given weights at norm ``<= max_norm``.

    Call :meth:`step` after every ``optimizer.step()`` (and once at the start, so the first
    step starts inside the bound)::

        maxnorm = cdbloss.MaxNorm([model.fc.weight], max_norm=1.0)
        maxnorm.step()
        for x, y in loader:
            opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
            maxnorm.step()

    Args:
        weights: the 2-D ``(C, D)`` weights to bound (usually the classifier's ``weight``).
        max_norm: the threshold, a finite number ``> 0``.

    Raises:
        ValueError: no weights, a weight that is not 2-D floating point, or a bad threshold.
    """

    def __init__(self, weights: Iterable[Tensor], max_norm: float) -> None:
        self.weights = list(weights)
        if not self.weights:
            raise ValueError("MaxNorm needs at least one (C, D) weight to bound")
        for i, w in enumerate(self.weights):
            _check_rows(w, f"weights[{i}]")
        self.max_norm = _check_number(max_norm, "max_norm", 0.0, strict=True)

    def step(self) -> None:
        """Project every weight's rows onto the ball (:func:`max_norm_`)."""
        for w in self.weights:
            max_norm_(w, self.max_norm)

    def largest_norm(self) -> float:
        """The largest row norm over the weights (``<= max_norm`` after :meth:`step`)."""
        with torch.no_grad():
            return max(float(w.norm(dim=1).max()) for w in self.weights)

    def __repr__(self) -> str:
        return f"MaxNorm({len(self.weights)} weight(s), max_norm={self.max_norm:g})"


class ClassScale(nn.Module):
    r"""Learnable weight scaling (LWS, Kang et al., ICLR 2020): one factor per class.

    .. math:: \tilde z_{ic} = f_c \, z_{ic}

    Scaling the logit ``z_c = w_c^T x + b_c`` by ``f_c`` scales the row ``w_c`` (and its
    bias) by ``f_c``, so only the rows' norms change, not their directions. The factors
    start at 1 (the identity); in LWS they are the only parameters learnt in stage 2,
    with class-balanced sampling.

    Args:
        num_classes: ``C``.

    Shape:
        - Input: logits ``(N, C)``.
        - Output: ``(N, C)``.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.scale = nn.Parameter(torch.ones(num_classes))  # (C,)

    def forward(self, logits: Tensor) -> Tensor:
        """``logits * scale``, shape ``(N, C)``."""
        if logits.dim() != 2 or logits.shape[1] != self.scale.numel():
            raise ValueError(
                f"ClassScale expects logits of shape (N, {self.scale.numel()}), "
                f"got {tuple(logits.shape)}"
            )
        return logits * self.scale


def class_balanced_indices(
    targets: Sequence[int] | Tensor,
    num_classes: int,
    num_samples: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Indices drawn with class-balanced sampling: a class uniformly, then one of its examples.

    .. math:: P(i) = \frac{1}{C_{>0}} \cdot \frac{1}{n_{y_i}}

    where ``C_{>0}`` counts the classes present in ``targets``. Draws are with
    replacement (a tail class of 5 examples repeats them). Seeded by ``generator``.

    Args:
        targets: the class of every training example, shape ``(N,)``, in ``[0, C)``.
        num_classes: ``C``.
        num_samples: how many indices (default ``N``: one epoch's worth).
        generator: the source of randomness (default: torch's global one).

    Returns:
        int64 tensor of shape ``(num_samples,)`` of indices into ``targets``.

    Raises:
        ValueError: empty or out-of-range targets, or ``num_samples < 1``.
    """
    y = torch.as_tensor(targets, dtype=torch.long)
    if y.dim() != 1 or y.numel() == 0:
        raise ValueError(f"targets must be a non-empty 1-D sequence, got shape {tuple(y.shape)}")
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise ValueError(
            f"targets must lie in [0, {num_classes}), got values {int(y.min())}..{int(y.max())}"
        )
    n = y.numel() if num_samples is None else num_samples
    if n < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    counts = torch.bincount(y, minlength=num_classes)  # (C,)
    present = (counts > 0).nonzero().flatten()  # (C',)
    order = torch.argsort(y, stable=True)  # example indices grouped by class
    starts = torch.cumsum(counts, 0) - counts  # (C,) where each class begins in ``order``
    cls = present[torch.randint(len(present), (n,), generator=generator)]  # (n,)
    within = (torch.rand(n, generator=generator, dtype=torch.float64) * counts[cls]).long()
    within = torch.minimum(within, counts[cls] - 1)  # rounding at the top end
    return order[starts[cls] + within]
