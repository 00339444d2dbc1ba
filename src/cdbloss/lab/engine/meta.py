r"""Training steps that learn per-example weights from a validation batch: L2RW and Meta-Weight-Net.

Both baselines of the CDB paper (Tables 1 and 3) replace the ordinary training
step. Each is a callable object the training engine calls once per batch with
a training batch, a validation (meta) batch and the real optimizer; it
performs the real optimizer step itself and returns scalars to log::

    step = L2RWStep(model, loss_fn=build_loss("ce", C, reduction="none"))
    for (x, y), (x_val, y_val) in zip(train_loader, cycle(val_loader)):
        stats = step(x, y, x_val, y_val, optimizer)   # {"loss": ..., "weight_mean": ..., ...}

**L2RW** (Ren, Zeng, Yang, Urtasun, ICML 2018, Algorithm 1). With per-sample
training losses :math:`l_i(\theta)` and example weights :math:`\epsilon = 0`:

.. math::

    \theta'(\epsilon) &= \theta - \alpha \nabla_\theta \textstyle\sum_i \epsilon_i l_i(\theta) \\
    g &= \nabla_\epsilon \tfrac{1}{M} \textstyle\sum_j l^{val}_j(\theta'(\epsilon)) \big|_{\epsilon=0} \\
    \tilde w_i &= \max(-g_i, 0), \qquad
    w_i = \tilde w_i / \textstyle\sum_k \tilde w_k \quad (w = 0 \text{ if } \textstyle\sum_k \tilde w_k = 0)

then the real step on :math:`\sum_i w_i l_i(\theta)`. Because
:math:`\theta'(0) = \theta`, :math:`g_i = -\alpha \langle \nabla_\theta l_i(\theta),
\nabla_\theta L^{val}(\theta) \rangle`: an example is kept when its gradient
agrees with the validation gradient, and a single positive :math:`\alpha`
cancels in the normalisation.

**Meta-Weight-Net** (Shu et al., NeurIPS 2019). A net :math:`V(\cdot;\phi)`
(1 -> 100 -> 1, ReLU, sigmoid) maps each example's loss to a weight. Each step:

.. math::

    v_i &= V(l_i(\theta); \phi), \qquad c_i = v_i / \textstyle\sum_k v_k
          \ (\text{normalize=True}) \text{ or } v_i / N \\
    \theta'(\phi) &= \theta - \alpha \nabla_\theta \textstyle\sum_i c_i\, l_i(\theta) \\
    \phi &\leftarrow \text{meta-optimizer step on }
          \nabla_\phi \tfrac{1}{M} \textstyle\sum_j l^{val}_j(\theta'(\phi)) \\
    w_i &= \text{the same } c_i \text{ with the updated } \phi \text{ (no gradient)},
          \quad \text{real step on } \textstyle\sum_i w_i l_i(\theta).

The loss fed to :math:`V` is detached (the paper's Eq. 6 differentiates only
:math:`l_i`). See docs/meta.md for the choices made where the papers and
their code leave things open, and for the measured cost.

Implementation notes (both steps):

* The training batch is forwarded **once**, through the real module: the
  per-sample losses feed the look-ahead gradient (``create_graph=True``) and,
  with the final weights detached, the real backward. BatchNorm running
  statistics are therefore updated exactly once per step, by the training
  batch, as in a plain step.
* The look-ahead forward on the validation batch runs through
  :func:`torch.func.functional_call` with the look-ahead parameters and
  **clones** of the module's buffers: the module stays in its current mode (in
  training mode BatchNorm normalises with the validation batch's statistics,
  as in both reference codes, whose look-ahead runs on a copy of the model),
  and any running-statistics update lands in the clones, which are discarded.
  The model's buffers are untouched by the look-ahead.
* Only parameters with ``requires_grad`` that the optimizer holds take part in
  the look-ahead; the look-ahead step is plain gradient descent (no momentum,
  no weight decay), as in both papers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from torch.optim import Optimizer

__all__ = [
    "L2RWStep",
    "MetaStep",
    "MetaWeightNet",
    "MetaWeightNetStep",
    "PerSampleLoss",
    "ValLoss",
]

#: ``loss_fn(logits (N, C), target (N,)) -> (N,)`` per-sample losses.
PerSampleLoss = Callable[[Tensor, Tensor], Tensor]
#: ``val_loss_fn(logits (M, C), target (M,)) -> scalar`` validation loss.
ValLoss = Callable[[Tensor, Tensor], Tensor]
#: Builds the Meta-Weight-Net optimizer from its parameters.
MetaOptimizerFactory = Callable[[list[nn.Parameter]], Optimizer]


@runtime_checkable
class MetaStep(Protocol):
    """What the training engine calls per batch (both :class:`L2RWStep` and :class:`MetaWeightNetStep`)."""

    def __call__(
        self, x: Tensor, y: Tensor, x_val: Tensor, y_val: Tensor, optimizer: Optimizer
    ) -> dict[str, float]:
        """Compute the weights, take the real optimizer step, return scalars to log."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint besides the model and its optimizer."""
        ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        ...


def _plain_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Unweighted cross-entropy per sample, ``(N, C), (N,) -> (N,)``."""
    return F.cross_entropy(logits, target, reduction="none")


def _mean_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Mean unweighted cross-entropy, ``(M, C), (M,) -> scalar``: both papers' validation loss."""
    return F.cross_entropy(logits, target)


def _check_loss_fn(loss_fn: PerSampleLoss | None) -> PerSampleLoss:
    if loss_fn is None:
        return _plain_cross_entropy
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    reduction = getattr(loss_fn, "reduction", "none")
    if reduction != "none":
        raise ValueError(
            "loss_fn must return one loss per sample: build it with reduction='none' "
            f"(e.g. build_loss(name, num_classes, reduction='none')), got reduction={reduction!r}"
        )
    return loss_fn


def _check_batch(x: Tensor, y: Tensor, name: str) -> int:
    """Check a batch ``x (N, ...)``, ``y (N,)`` integer; return ``N``."""
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise ValueError(
            f"{name}: inputs and targets must be tensors, got "
            f"{type(x).__name__} and {type(y).__name__}"
        )
    if x.dim() == 0:
        raise ValueError(f"{name}: inputs must have a batch dimension, got a scalar")
    if y.dim() != 1:
        raise ValueError(f"{name}: targets must have shape (N,), got {tuple(y.shape)}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"{name}: targets must be integer class indices, got dtype {y.dtype}")
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError(
            f"{name}: inputs and targets disagree on the batch size: "
            f"inputs {tuple(x.shape)}, targets {tuple(y.shape)}"
        )
    if n == 0:
        raise ValueError(f"{name}: empty batch")
    return int(n)


def _check_lr(lookahead_lr: float | None) -> float | None:
    if lookahead_lr is None:
        return None
    if isinstance(lookahead_lr, bool) or not isinstance(lookahead_lr, (int, float)):
        raise ValueError(f"lookahead_lr must be a float or None, got {lookahead_lr!r}")
    if not math.isfinite(lookahead_lr) or lookahead_lr <= 0:
        raise ValueError(f"lookahead_lr must be finite and > 0, got {lookahead_lr!r}")
    return float(lookahead_lr)


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    raise ValueError("model has no parameters: there is nothing to train")


class _LookaheadStep:
    """What L2RW and Meta-Weight-Net share: checks, the forward and the look-ahead."""

    def __init__(
        self,
        model: nn.Module,
        loss_fn: PerSampleLoss | None,
        lookahead_lr: float | None,
        val_loss_fn: ValLoss | None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be an nn.Module, got {type(model).__name__}")
        _model_device(model)
        if val_loss_fn is not None and not callable(val_loss_fn):
            raise ValueError(f"val_loss_fn must be callable, got {type(val_loss_fn).__name__}")
        self.model = model
        self.loss_fn = _check_loss_fn(loss_fn)
        self.val_loss_fn: ValLoss = _mean_cross_entropy if val_loss_fn is None else val_loss_fn
        self.lookahead_lr = _check_lr(lookahead_lr)
        #: The final per-example weights of the last call, ``(N,)``, detached.
        self.last_weights: Tensor | None = None

    # -- pieces -------------------------------------------------------------------------------

    def _check_call(
        self, x: Tensor, y: Tensor, x_val: Tensor, y_val: Tensor, optimizer: Optimizer
    ) -> int:
        n = _check_batch(x, y, "training batch")
        _check_batch(x_val, y_val, "validation batch")
        if not isinstance(optimizer, Optimizer):
            raise ValueError(
                f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        return n

    def _lookahead_params(
        self, optimizer: Optimizer
    ) -> tuple[list[str], list[Tensor], list[float]]:
        """Names, tensors and look-ahead step sizes of the parameters that take part.

        A parameter takes part when it requires grad and the optimizer holds it;
        its step size is ``lookahead_lr`` if set, else its param group's current lr.
        """
        group_lr: dict[int, float] = {}
        for group in optimizer.param_groups:
            lr = float(group["lr"])
            for p in group["params"]:
                group_lr[id(p)] = lr
        names: list[str] = []
        params: list[Tensor] = []
        lrs: list[float] = []
        for name, p in self.model.named_parameters():
            if p.requires_grad and id(p) in group_lr:
                names.append(name)
                params.append(p)
                lrs.append(group_lr[id(p)] if self.lookahead_lr is None else self.lookahead_lr)
        if not params:
            raise ValueError(
                "the optimizer holds none of the model's trainable parameters; "
                "build it from model.parameters()"
            )
        return names, params, lrs

    def _per_sample_losses(self, x: Tensor, y: Tensor, n: int) -> Tensor:
        """Forward the training batch through the real module: ``(N,)`` losses with a graph."""
        logits = self.model(x)
        if not isinstance(logits, Tensor) or logits.dim() == 0 or logits.shape[0] != n:
            shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ValueError(f"model must return one row per sample, (N={n}, C); got {shape}")
        losses = self.loss_fn(logits, y)
        if not isinstance(losses, Tensor) or tuple(losses.shape) != (n,):
            shape = tuple(losses.shape) if isinstance(losses, Tensor) else type(losses).__name__
            raise ValueError(
                f"loss_fn must return per-sample losses of shape (N,) = ({n},), got {shape}; "
                "build the loss with reduction='none'"
            )
        if not losses.is_floating_point():
            raise ValueError(f"loss_fn must return floating point losses, got {losses.dtype}")
        if not losses.requires_grad:
            raise ValueError(
                "loss_fn's output does not depend on the model's parameters (no gradient); "
                "is the model frozen, or does loss_fn detach its input?"
            )
        return losses

    def _validation_loss(
        self,
        names: list[str],
        params: list[Tensor],
        lrs: list[float],
        weighted_loss: Tensor,
        x_val: Tensor,
        y_val: Tensor,
    ) -> Tensor:
        r"""Validation loss at the look-ahead parameters, differentiable back to the weights.

        ``theta'_k = theta_k - lr_k * d weighted_loss / d theta_k`` (``create_graph``);
        the validation batch is forwarded with ``theta'`` and clones of the buffers.
        """
        # materialize_grads: a parameter the loss does not use gets a zero step.
        grads = torch.autograd.grad(
            weighted_loss, params, create_graph=True, allow_unused=True, materialize_grads=True
        )
        lookahead: dict[str, Tensor] = {
            name: p - lr * g for name, p, g, lr in zip(names, params, grads, lrs, strict=True)
        }
        # Clones: a BatchNorm in training mode updates its running statistics in
        # place, and those updates must not reach the real module.
        buffers = {name: b.clone() for name, b in self.model.named_buffers()}
        logits_val = functional_call(self.model, (lookahead, buffers), (x_val,))
        val_loss = self.val_loss_fn(logits_val, y_val)
        if not isinstance(val_loss, Tensor) or val_loss.dim() != 0:
            shape = tuple(val_loss.shape) if isinstance(val_loss, Tensor) else type(val_loss)
            raise ValueError(f"val_loss_fn must return a scalar, got {shape}")
        return val_loss

    @staticmethod
    def _real_step(optimizer: Optimizer, losses: Tensor, weights: Tensor) -> Tensor:
        """``optimizer`` step on ``sum_i weights_i * losses_i`` (weights detached); the loss."""
        loss = (weights.detach().to(losses.dtype) * losses).sum()
        optimizer.zero_grad()
        torch.autograd.backward(loss)
        optimizer.step()
        return loss.detach()


class L2RWStep(_LookaheadStep):
    r"""One L2RW training step per call (Ren et al., ICML 2018, Algorithm 1).

    Per batch: example weights from a one-step look-ahead on the validation
    batch (module docstring), then the real optimizer step on
    :math:`\sum_i w_i l_i(\theta)` with :math:`w \ge 0`, :math:`\sum_i w_i = 1`.
    When every :math:`\tilde w_i = \max(-g_i, 0)` is 0 (no example's gradient
    agrees with the validation gradient) the batch gives **no update**: the
    optimizer step is skipped entirely (no momentum, no weight decay), and
    ``"skipped"`` is 1.

    Args:
        model: any ``nn.Module`` mapping inputs ``(N, ...)`` to logits ``(N, C)``.
        loss_fn: per-sample training loss, ``(logits (N, C), target (N,)) -> (N,)``;
            any registered loss built with ``reduction="none"``
            (``build_loss(name, C, reduction="none")``). Default: plain cross-entropy.
        lookahead_lr: :math:`\alpha` of the look-ahead. Default ``None``: each
            parameter's current learning rate in the optimizer. With a single
            :math:`\alpha > 0` the weights do not depend on its value.
        val_loss_fn: validation loss ``(logits (M, C), target (M,)) -> scalar``;
            default mean unweighted cross-entropy (the paper's).

    Call:
        ``step(x (N, ...), y (N,), x_val (M, ...), y_val (M,), optimizer)`` ->
        ``{"loss": sum_i w_i l_i, "loss_mean": mean_i l_i, "val_loss": validation
        loss at theta (= theta' at eps = 0), "weight_mean": mean_i w_i (1/N or 0),
        "weight_max": max_i w_i, "weights_zero_frac": fraction of w_i == 0,
        "skipped": 1.0 if no update else 0.0}``. ``last_weights`` holds ``w (N,)``.

    Raises:
        ValueError: mismatched batch sizes, targets not ``(N,)`` integers, a loss
            that does not return ``(N,)``, an optimizer that holds none of the
            model's parameters, a non-positive ``lookahead_lr``.

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(3, 2)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> step = L2RWStep(model)
        >>> x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
        >>> stats = step(x, y, torch.randn(4, 3), torch.randint(0, 2, (4,)), opt)
        >>> sorted(stats)
        ['loss', 'loss_mean', 'skipped', 'val_loss', 'weight_max', 'weight_mean', 'weights_zero_frac']
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: PerSampleLoss | None = None,
        lookahead_lr: float | None = None,
        val_loss_fn: ValLoss | None = None,
    ) -> None:
        super().__init__(model, loss_fn, lookahead_lr, val_loss_fn)

    def weights(
        self, x: Tensor, y: Tensor, x_val: Tensor, y_val: Tensor, optimizer: Optimizer
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The L2RW weights of a batch without stepping.

        Returns:
            ``(w (N,) detached, losses (N,) with their graph, validation loss (scalar))``.
            The forward of ``x`` goes through the real module (BatchNorm
            statistics are updated as by any training-mode forward).
        """
        n = self._check_call(x, y, x_val, y_val, optimizer)
        names, params, lrs = self._lookahead_params(optimizer)
        losses = self._per_sample_losses(x, y, n)
        eps = torch.zeros(n, dtype=losses.dtype, device=losses.device, requires_grad=True)
        val_loss = self._validation_loss(names, params, lrs, (eps * losses).sum(), x_val, y_val)
        # retain_graph: the training forward's graph is needed by the real step.
        # materialize_grads: zeros if the validation loss does not reach eps.
        (g,) = torch.autograd.grad(
            val_loss, eps, retain_graph=True, allow_unused=True, materialize_grads=True
        )
        w = torch.clamp(-g.detach(), min=0.0)
        total = w.sum()
        w = torch.where(total > 0, w / torch.where(total > 0, total, 1.0), torch.zeros_like(w))
        return w, losses, val_loss.detach()

    def __call__(
        self, x: Tensor, y: Tensor, x_val: Tensor, y_val: Tensor, optimizer: Optimizer
    ) -> dict[str, float]:
        """Weights from the look-ahead, then the real step on ``sum_i w_i l_i``; see the class."""
        w, losses, val_loss = self.weights(x, y, x_val, y_val, optimizer)
        self.last_weights = w
        skipped = not bool((w > 0).any())
        if skipped:
            optimizer.zero_grad()
            loss = torch.zeros((), dtype=losses.dtype, device=losses.device)
        else:
            loss = self._real_step(optimizer, losses, w)
        return {
            "loss": float(loss),
            "loss_mean": float(losses.detach().mean()),
            "val_loss": float(val_loss),
            "weight_mean": float(w.mean()),
            "weight_max": float(w.max()),
            "weights_zero_frac": float((w == 0).to(torch.float32).mean()),
            "skipped": float(skipped),
        }

    def state_dict(self) -> dict[str, Any]:
        """L2RW keeps no state between steps: ``{}`` (for the engine's uniform checkpointing)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Accept the empty state of :meth:`state_dict`."""
        if len(state) != 0:
            raise ValueError(f"L2RWStep has no state, got keys {sorted(state)}")


class MetaWeightNet(nn.Module):
    r"""The weighting function :math:`V(l; \phi)` of Meta-Weight-Net: an MLP 1 -> hidden -> 1.

    ``Linear(1, hidden)``, ReLU, ``Linear(hidden, 1)``, sigmoid, with PyTorch's
    default initialisation (as the authors' ``VNet(1, 100, 1)``).

    Shape:
        losses ``(N,)`` -> weights ``(N,)`` in ``(0, 1)``.
    """

    def __init__(self, hidden: int = 100) -> None:
        super().__init__()
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"hidden must be an int >= 1, got {hidden!r}")
        self.fc1 = nn.Linear(1, hidden)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, losses: Tensor) -> Tensor:
        """Weights ``(N,)`` for per-sample losses ``(N,)``."""
        if losses.dim() != 1:
            raise ValueError(
                f"MetaWeightNet expects losses of shape (N,), got {tuple(losses.shape)}"
            )
        h = F.relu(self.fc1(losses.unsqueeze(1)))  # (N, hidden)
        return torch.sigmoid(self.fc2(h)).squeeze(1)  # (N,)


def _meta_optimizer(
    spec: str | MetaOptimizerFactory, params: list[nn.Parameter], meta_lr: float | None
) -> Optimizer:
    """The Meta-Weight-Net optimizer: ``"sgd"`` / ``"adam"`` presets of the authors' code, or a factory."""
    if meta_lr is not None and (
        isinstance(meta_lr, bool)
        or not isinstance(meta_lr, (int, float))
        or not math.isfinite(meta_lr)
        or meta_lr <= 0
    ):
        raise ValueError(f"meta_lr must be finite and > 0, got {meta_lr!r}")
    if spec == "sgd":  # class-imbalance code: SGD 1e-5, momentum 0.9, Nesterov, wd 5e-4
        lr = 1e-5 if meta_lr is None else float(meta_lr)
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    if spec == "adam":  # noisy-label code: Adam 1e-3, wd 1e-4
        lr = 1e-3 if meta_lr is None else float(meta_lr)
        return torch.optim.Adam(params, lr=lr, weight_decay=1e-4)
    if isinstance(spec, str):
        raise ValueError(f"meta_optimizer must be 'sgd', 'adam' or a callable, got {spec!r}")
    if not callable(spec):
        raise ValueError(f"meta_optimizer must be 'sgd', 'adam' or a callable, got {spec!r}")
    if meta_lr is not None:
        raise ValueError("meta_lr applies to the 'sgd'/'adam' presets; set the lr in your factory")
    optimizer = spec(params)
    if not isinstance(optimizer, Optimizer):
        raise ValueError(
            f"meta_optimizer factory must return a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    return optimizer


class MetaWeightNetStep(_LookaheadStep):
    r"""One Meta-Weight-Net training step per call (Shu et al., NeurIPS 2019, Algorithm 1).

    Per batch: (a) virtual step :math:`\theta'(\phi)`, (b) one step of the
    meta-optimizer on the validation loss at :math:`\theta'(\phi)`, (c) the real
    step of the model with the weights of the *updated* net, detached (module
    docstring for the formulas).

    Args:
        model: any ``nn.Module`` mapping inputs ``(N, ...)`` to logits ``(N, C)``.
        loss_fn: per-sample training loss (``reduction="none"``); default plain CE.
        lookahead_lr: :math:`\alpha` of the virtual step; default each
            parameter's current lr in the optimizer (the authors' code uses
            the model's scheduled lr).
        hidden: hidden width of :class:`MetaWeightNet` (100 in the paper).
        meta_optimizer: ``"sgd"`` (default; the authors' class-imbalance code:
            SGD lr 1e-5, momentum 0.9, Nesterov, weight decay 5e-4), ``"adam"``
            (their noisy-label code: Adam lr 1e-3, weight decay 1e-4), or a
            factory ``params -> Optimizer``.
        meta_lr: overrides the preset's learning rate.
        normalize: ``True`` (default; class-imbalance code): weights
            :math:`v_i / \sum_k v_k` in both the virtual and the real step (left
            as :math:`v_i` if the sum is 0); ``False`` (noisy-label code and the
            paper's Eq. 6): :math:`v_i / N`.
        val_loss_fn: meta loss ``(logits (M, C), target (M,)) -> scalar``;
            default mean unweighted cross-entropy.

    The net is built on the model's device at construction (build the step
    after ``model.to(device)``); ``meta_net`` and ``meta_optimizer`` are
    checkpointed by :meth:`state_dict`.

    Call:
        ``step(x, y, x_val, y_val, optimizer)`` -> ``{"loss": sum_i w_i l_i,
        "loss_mean": mean_i l_i, "meta_loss": validation loss at theta'(phi),
        "weight_mean": mean_i V(l_i) (updated net, before normalising),
        "weights_zero_frac": fraction of V(l_i) == 0 (the sigmoid is 0 only on
        underflow)}``. ``last_weights`` holds the final ``w (N,)``.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: PerSampleLoss | None = None,
        lookahead_lr: float | None = None,
        *,
        hidden: int = 100,
        meta_optimizer: str | MetaOptimizerFactory = "sgd",
        meta_lr: float | None = None,
        normalize: bool = True,
        val_loss_fn: ValLoss | None = None,
    ) -> None:
        super().__init__(model, loss_fn, lookahead_lr, val_loss_fn)
        if not isinstance(normalize, bool):
            raise ValueError(f"normalize must be a bool, got {normalize!r}")
        self.normalize = normalize
        self.meta_net = MetaWeightNet(hidden).to(_model_device(model))
        self.meta_optimizer = _meta_optimizer(
            meta_optimizer, list(self.meta_net.parameters()), meta_lr
        )

    def _coefficients(self, v: Tensor) -> Tensor:
        """``v / sum(v)`` (``normalize``; ``v`` unchanged if the sum is 0) or ``v / N``."""
        if not self.normalize:
            return v / v.shape[0]
        total = v.sum()
        return torch.where(total != 0, v / torch.where(total != 0, total, 1.0), v)

    def __call__(
        self, x: Tensor, y: Tensor, x_val: Tensor, y_val: Tensor, optimizer: Optimizer
    ) -> dict[str, float]:
        """Virtual step, meta step on ``phi``, real step with the updated net; see the class."""
        n = self._check_call(x, y, x_val, y_val, optimizer)
        meta_device = next(self.meta_net.parameters()).device
        names, params, lrs = self._lookahead_params(optimizer)
        losses = self._per_sample_losses(x, y, n)
        if losses.device != meta_device:
            raise ValueError(
                f"the model's outputs are on {losses.device} but meta_net is on {meta_device}; "
                "build MetaWeightNetStep after moving the model"
            )
        meta_dtype = next(self.meta_net.parameters()).dtype
        v_in = losses.detach().to(meta_dtype)  # V's input is a constant (paper, Eq. 6)

        # (a) virtual step theta'(phi) and (b) the meta step on phi.
        coef = self._coefficients(self.meta_net(v_in)).to(losses.dtype)
        meta_loss = self._validation_loss(names, params, lrs, (coef * losses).sum(), x_val, y_val)
        meta_params = list(self.meta_net.parameters())
        meta_grads = torch.autograd.grad(
            meta_loss, meta_params, retain_graph=True, allow_unused=True, materialize_grads=True
        )
        self.meta_optimizer.zero_grad()
        for p, g in zip(meta_params, meta_grads, strict=True):
            p.grad = g.detach()
        self.meta_optimizer.step()
        del coef, meta_grads

        # (c) the real step with the updated net's weights (no gradient to phi).
        with torch.no_grad():
            v = self.meta_net(v_in)
            w = self._coefficients(v)
        self.last_weights = w
        loss = self._real_step(optimizer, losses, w)
        return {
            "loss": float(loss),
            "loss_mean": float(losses.detach().mean()),
            "meta_loss": float(meta_loss.detach()),
            "weight_mean": float(v.mean()),
            "weights_zero_frac": float((v == 0).to(torch.float32).mean()),
        }

    def state_dict(self) -> dict[str, Any]:
        """``{"meta_net": ..., "meta_optimizer": ...}`` for the engine's checkpoint."""
        return {
            "meta_net": self.meta_net.state_dict(),
            "meta_optimizer": self.meta_optimizer.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (meta-net weights and meta-optimizer state)."""
        missing = {"meta_net", "meta_optimizer"} - set(state)
        extra = set(state) - {"meta_net", "meta_optimizer"}
        if missing or extra:
            raise ValueError(
                "MetaWeightNetStep state must have keys 'meta_net' and 'meta_optimizer'; "
                f"missing {sorted(missing)}, unexpected {sorted(extra)}"
            )
        self.meta_net.load_state_dict(state["meta_net"])
        self.meta_optimizer.load_state_dict(state["meta_optimizer"])
