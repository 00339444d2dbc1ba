"""CDBWeighting: every setting, check and piece of state of the CDB class weights.

One object owns the rule that turns per-class accuracy into class weights, so
the loss (:class:`~cdbloss.CDBLoss`), the sampler
(:class:`~cdbloss.CDBSampler`), the Lightning and ``transformers`` callbacks and
the reports all read the same weights from the same place.

The defaults are the recipe the long-tail study measured (docs/results.md,
section 6): the authors' sigmoid tau with ``eps = 0.01``, a moving average of
the accuracies with ``momentum = 0.9`` and a cap ``max_ratio = 10``; the
paper's rule as written is :data:`PAPER_RULE` (``build_loss("cdb-ce-paper")``).

The pipeline of one update, each step an option (all off gives the paper's rule):

1. **accuracy**: from a validation tracker, a given ``(C,)`` tensor, or the
   training stream (``source="train"``);
2. **prior** (``prior_strength = s``): each class's accuracy shrunk towards the
   pooled accuracy, :math:`A_c = (k_c + s \\bar A) / (n_c + s)`, so a class with
   few validation samples cannot swing its weight alone;
3. **moving average** (``momentum = m``): :math:`\\bar A_c \\leftarrow m \\bar A_c + (1 - m) A_c`;
4. **weights** (:func:`~cdbloss.cdb_weights`): :math:`w_c = d_c^{\\tau}`,
   :math:`d_c = 1 - A_c`, with ``tau`` fixed or dynamic, the floor
   ``min_difficulty`` or the ``solved_accuracy`` threshold, the cap
   ``max_ratio`` (:math:`w_c \\ge \\max_k w_k / r`) and the rescaling to sum ``C``;
5. **deferral** (``defer_until = E``): the weights applied stay uniform until
   :meth:`CDBWeighting.set_epoch` reaches epoch ``E`` (counted from 0, as
   LDAM-DRW's ``drw_epoch``); the state above keeps updating meanwhile.

A guard watches the applied weights for the period-two swing that made the
paper's Eq. 3 rule collapse on long tails here: when some class's weight jumps
by more than half the largest weight, up then down (or down then up), in
``swing_patience`` consecutive updates, it warns once and names the fix.
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any, Literal

import torch
from torch import Tensor, nn

from cdbloss.difficulty import ClassDifficulty
from cdbloss.weighting import (
    TauSpec,
    _as_accuracy,
    cdb_weights,
    check_difficulty_options,
    check_max_ratio,
    check_unit_interval,
    resolve_tau,
)

__all__ = [
    "PAPER_RULE",
    "SETTINGS",
    "SOURCES",
    "CDBWeighting",
    "EmptyTrackerWarning",
    "SwingWarning",
]

#: The paper's rule (Eq. 2-4 as written): every weighting setting at the value the paper uses.
PAPER_RULE: dict[str, Any] = {
    "tau": "dynamic",
    "eps": 1e-4,
    "normalize": True,
    "momentum": 0.0,
    "min_difficulty": 0.0,
    "solved_accuracy": 1.0,
    "max_ratio": None,
    "defer_until": 0,
    "prior_strength": 0.0,
    "source": "val",
}

Source = Literal["val", "train"]
SOURCES: tuple[str, ...] = ("val", "train")

#: what the swing warning advises (the study in docs/results.md measured it)
SWING_FIX = (
    "a moving average of the accuracies (momentum=0.9) and a cap on the weight ratio "
    "(max_ratio=10) keep them steady; see docs/losses.md, 'Which CDB settings to use'"
)
#: on two classes the study found the paper's uncapped rule best despite the swing
SWING_TWO_CLASSES = (
    "on two classes at a strong imbalance the study measured the paper's uncapped rule best "
    "all the same (a cap forbids the large weight ratios such a task needs; docs/losses.md, "
    "'Which CDB settings to use'), so this is expected there"
)

#: jump of a class's relative weight (w_c / max w) that counts as one half of a swing
_SWING_JUMP = 0.5


class SwingWarning(UserWarning):
    """The CDB weights swing between classes from one update to the next."""


#: float64 buffers that a dtype cast (``.half()``) leaves alone
_AVERAGING_STATE: tuple[str, ...] = ("accuracy", "tau_value", "prev_rel")


class EmptyTrackerWarning(UserWarning):
    """A CDB update read a tracker that counted no validation sample."""


#: the constructor settings a state_dict carries (a load into other settings is refused)
SETTINGS: tuple[str, ...] = (
    "num_classes",
    *PAPER_RULE,
    "swing_patience",
)


def settings_state(settings: dict[str, Any]) -> Tensor:
    """Settings as a ``uint8`` tensor of their JSON, so safetensors files can hold them too."""
    return torch.tensor(list(json.dumps(settings, sort_keys=True).encode()), dtype=torch.uint8)


def check_settings(saved: Any, mine: dict[str, Any], what: str) -> None:
    """Refuse a checkpoint whose settings differ from this module's, naming each difference."""
    if isinstance(saved, Tensor) and saved.dtype == torch.uint8:
        saved = {"settings": json.loads(bytes(saved.tolist()).decode())}
    if not isinstance(saved, dict) or "settings" not in saved:
        return  # not ours (or an older checkpoint without settings): nothing to compare
    theirs = saved["settings"]
    # through JSON a tuple becomes a list: compare the JSON forms
    mine = json.loads(json.dumps(mine))
    diff = {k: (theirs[k], mine[k]) for k in mine if k in theirs and theirs[k] != mine[k]}
    if diff:
        named = ", ".join(f"{k}: checkpoint {a!r} != this {b!r}" for k, (a, b) in diff.items())
        raise ValueError(
            f"the {what} state was saved with other settings ({named}); build the {what} "
            "with the checkpoint's settings to load it"
        )


def allow_missing_settings(module: nn.Module, incompatible: Any) -> None:
    """Post-load hook: a checkpoint written before settings were saved still loads."""
    missing = incompatible.missing_keys
    for key in [k for k in missing if k.endswith("_extra_state")]:
        missing.remove(key)


def _check_real(value: Any, name: str, *, low: float, strict: bool) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= low if strict else value < low):
        cmp = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {cmp} {low:g}, got {value!r}")
    return float(value)


#: ``defer_until`` value that the engine replaces by its schedule's first decay epoch.
FIRST_DECAY = "first-decay"


def _check_int(value: Any, name: str, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


class CDBWeighting(nn.Module):
    r"""The CDB class weights: settings, their checks, state and computation.

    Args:
        num_classes: ``C``.
        tau: ``"dynamic-sigmoid"`` (default; the authors' CIFAR code,
            :math:`\tau = 1 / (1 + e^{-\max A / (\min A + \epsilon)})`), a float
            ``>= 0``, or ``"dynamic"`` (the paper's Eq. 3-4,
            :math:`\tau = 2 / (1 + e^{-b})`, :math:`b = \max A / (\min A + \epsilon) - 1`).
        eps: :math:`\epsilon` of the dynamic tau (default 0.01 as the authors'
            code; the paper writes 1e-4).
        normalize: rescale the weights to sum to ``C``.
        momentum: ``m`` in ``[0, 1)``: the weight of the past in the moving
            average of the accuracies (default 0.9; 0: no averaging, the paper).
        min_difficulty: floor :math:`\delta` in ``[0, 1)``, :math:`d_c = \max(1 - A_c, \delta)`.
        solved_accuracy: in ``(0, 1]``; a class at or above it counts as solved (weight 0).
        max_ratio: ``r > 1`` or ``None``: the largest weight is at most ``r``
            times the smallest, :math:`w_c \leftarrow \max(w_c, \max_k w_k / r)`
            (default 10; ``None``: no cap, the paper).
        defer_until: epoch ``E >= 0`` (from 0) before which the applied weights
            are uniform (0: from the first update, the paper). Needs
            :meth:`set_epoch` at the start of every epoch (the engine and the
            callbacks call it). In an engine config, ``"first-decay"`` stands
            for the first learning-rate milestone of ``optim``.
        prior_strength: ``s >= 0`` pseudo-counts of the pooled accuracy added
            to each class (0: none). Needs counts: a :class:`ClassDifficulty`,
            not a bare accuracy tensor.
        source: ``"val"`` (the paper: the accuracy passed to :meth:`update`) or
            ``"train"``: the accuracy of the training stream, counted by
            :meth:`observe` from the predictions made before each optimiser
            step (:class:`~cdbloss.CDBLoss` calls it in training mode); the
            argument of :meth:`update` is then not used.
        swing_patience: consecutive swinging updates before the guard warns
            (``0`` turns the guard off).

    State (buffers, so ``state_dict()`` saves and restores it): ``weight`` (the
    applied weights), ``computed`` (the difficulty weights before deferral),
    ``accuracy`` (after prior and moving average), ``tau_value``, ``epoch``,
    the guard's counters and, for ``source="train"``, the training counts.

    Example:
        >>> w = CDBWeighting(num_classes=3, tau=1.0, momentum=0.0, max_ratio=4.0)
        >>> w.update(torch.tensor([0.9, 0.5, 0.0]))
        tensor([0.4286, 0.8571, 1.7143])
    """

    weight: Tensor
    computed: Tensor
    accuracy: Tensor
    tau_value: Tensor
    epoch: Tensor
    swing_run: Tensor
    warned: Tensor
    prev_rel: Tensor
    prev_step: Tensor

    def __init__(
        self,
        num_classes: int,
        tau: TauSpec = "dynamic-sigmoid",
        eps: float = 0.01,
        normalize: bool = True,
        momentum: float = 0.9,
        min_difficulty: float = 0.0,
        solved_accuracy: float = 1.0,
        max_ratio: float | None = 10.0,
        defer_until: int = 0,
        prior_strength: float = 0.0,
        source: str = "val",
        swing_patience: int = 3,
    ) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
        self.eps = _check_real(eps, "eps", low=0.0, strict=True)
        resolve_tau(tau, [1.0], self.eps)  # validates tau before any work
        check_unit_interval(momentum, "momentum")
        check_difficulty_options(min_difficulty, solved_accuracy)
        check_max_ratio(max_ratio)
        if not isinstance(normalize, bool):
            raise ValueError(f"normalize must be True or False, got {normalize!r}")
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        self.num_classes = num_classes
        self.tau = tau
        self.normalize = normalize
        self.momentum = float(momentum)
        self.min_difficulty = float(min_difficulty)
        self.solved_accuracy = float(solved_accuracy)
        self.max_ratio = None if max_ratio is None else float(max_ratio)
        if str(defer_until) == FIRST_DECAY:
            raise ValueError(
                f"defer_until={FIRST_DECAY!r} is resolved by the training engine from the "
                "config's optim.milestones; in your own loop pass the epoch of your first "
                "learning-rate decay (an int >= 0)"
            )
        self.defer_until = _check_int(defer_until, "defer_until", low=0)
        self.prior_strength = _check_real(prior_strength, "prior_strength", low=0.0, strict=False)
        self.source: Source = "train" if source == "train" else "val"
        self.swing_patience = _check_int(swing_patience, "swing_patience", low=0)
        c = num_classes
        self.register_buffer("weight", torch.ones(c, dtype=torch.float32))
        self.register_buffer("computed", torch.ones(c, dtype=torch.float32))
        self.register_buffer("accuracy", torch.full((c,), math.nan, dtype=torch.float64))
        self.register_buffer("tau_value", torch.tensor(math.nan, dtype=torch.float64))
        self.register_buffer("epoch", torch.tensor(-1, dtype=torch.int64))
        # the guard: last relative weights, the sign of the last big jump per class,
        # the number of consecutive updates with a reversal, and whether it has warned
        self.register_buffer("prev_rel", torch.full((c,), math.nan, dtype=torch.float64))
        self.register_buffer("prev_step", torch.zeros(c, dtype=torch.int64))
        self.register_buffer("swing_run", torch.tensor(0, dtype=torch.int64))
        self.register_buffer("warned", torch.tensor(False))
        self.train_counts = ClassDifficulty(c) if self.source == "train" else None
        self.register_load_state_dict_post_hook(allow_missing_settings)  # type: ignore[no-untyped-call]

    # ------------------------------------------------------------------ settings

    def settings(self) -> dict[str, Any]:
        """Every constructor setting (:data:`SETTINGS`), as saved in ``state_dict()``."""
        return {k: getattr(self, k) for k in SETTINGS}

    def get_extra_state(self) -> Tensor:
        return settings_state(self.settings())

    def set_extra_state(self, state: Any) -> None:
        check_settings(state, self.settings(), "CDB weighting")

    def _apply(self, fn: Any, recurse: bool = True) -> CDBWeighting:
        """``.to(device)`` moves the state; ``.half()`` leaves the averaging state float64.

        The averaged accuracy, tau and the guard's relative weights
        (:data:`_AVERAGING_STATE`) stay float64 (a half-precision average would
        round 0.9001 to 0.8984 and carry that error into every later update);
        the applied weights follow the module's dtype, as any buffer.
        """
        kept = {id(getattr(self, name)) for name in _AVERAGING_STATE}

        def keep_dtype(t: Tensor) -> Tensor:
            out: Tensor = fn(t)
            if id(t) in kept and out.dtype != t.dtype:
                return t.to(device=out.device)
            return out

        super()._apply(keep_dtype, recurse)  # type: ignore[no-untyped-call]
        return self

    def options(self) -> dict[str, Any]:
        """The settings that differ from the paper's rule, as constructor keywords."""
        return {k: getattr(self, k) for k, v in PAPER_RULE.items() if getattr(self, k) != v}

    def extra_repr(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"num_classes={self.num_classes}" + (f", {opts}" if opts else "")

    @property
    def deferred(self) -> bool:
        """True while :meth:`set_epoch` has not yet reached ``defer_until``."""
        return self.defer_until > 0 and int(self.epoch) < self.defer_until

    # ------------------------------------------------------------------ inputs

    def _counts(
        self, source: Tensor | ClassDifficulty | None, sync: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """The accuracy ``(C,)`` float64 on CPU and, when known, the counts ``(2, C)``."""
        if self.source == "train":
            assert self.train_counts is not None
            source = self.train_counts
        if isinstance(source, ClassDifficulty):
            if source.num_classes != self.num_classes:
                raise ValueError(
                    f"the tracker counts {source.num_classes} classes, this weighting "
                    f"has {self.num_classes}"
                )
            correct, total = source.counts(sync)
            correct, total = correct.cpu(), total.cpu()
            if int(total.sum()) == 0:
                warnings.warn(
                    "CDB update from a ClassDifficulty tracker that counted no sample (was "
                    "update() called in the validation loop, or reset() after it?): every "
                    "class's accuracy is unknown (NaN), so the weights keep their average "
                    "(uniform before the first measured pass)",
                    EmptyTrackerWarning,
                    stacklevel=3,
                )
            acc = correct.double() / total.double()
            acc = torch.where(total > 0, acc, torch.full_like(acc, math.nan))
            return acc, torch.stack([correct, total])
        if source is None:
            raise ValueError(
                "update() needs the per-class accuracy (C,) or a ClassDifficulty tracker"
            )
        acc = torch.as_tensor(source)
        if acc.dim() != 1 or acc.shape[0] != self.num_classes:
            raise ValueError(
                f"accuracy must have shape (C,) = ({self.num_classes},), got {tuple(acc.shape)}"
            )
        acc = _as_accuracy(acc.detach().to(device="cpu"))
        if self.prior_strength > 0:
            raise ValueError(
                "prior_strength needs per-class counts: pass the ClassDifficulty tracker "
                "to update(), not an accuracy tensor"
            )
        return acc.to(torch.float64), None

    def _smoothed(self, acc: Tensor, counts: Tensor | None) -> Tensor:
        """Apply the prior and the moving average to a fresh accuracy (pure)."""
        if self.prior_strength > 0 and counts is not None:
            correct, total = counts[0].double(), counts[1].double()
            seen = float(total.sum())
            if seen > 0:
                pooled = float(correct.sum()) / seen
                s = self.prior_strength
                acc = (correct + s * pooled) / (total + s)
        if self.momentum > 0:
            prev = self.accuracy.to(device="cpu")
            mixed = self.momentum * prev + (1.0 - self.momentum) * acc
            acc = torch.where(prev.isnan(), acc, torch.where(acc.isnan(), prev, mixed))
        return acc

    def _weights(self, acc: Tensor) -> tuple[Tensor, float]:
        tau = resolve_tau(self.tau, acc, self.eps)
        w = cdb_weights(
            acc,
            tau,
            self.eps,
            self.normalize,
            self.min_difficulty,
            self.solved_accuracy,
            max_ratio=self.max_ratio,
        )
        return w.to(torch.float32), tau

    # ------------------------------------------------------------------ API

    @torch.no_grad()
    def preview(
        self, accuracy: Tensor | ClassDifficulty | None = None, *, sync: bool = True
    ) -> tuple[Tensor, float]:
        """The weights and tau that :meth:`update` would apply now, changing nothing.

        Returns:
            ``(weights (C,) float32, tau)``; the weights are uniform while deferred.
        """
        acc, counts = self._counts(accuracy, sync)
        w, tau = self._weights(self._smoothed(acc, counts))
        return (torch.ones_like(w) if self.deferred else w), tau

    def update(
        self, accuracy: Tensor | ClassDifficulty | None = None, *, sync: bool = True
    ) -> Tensor:
        """Take one measurement of per-class accuracy and set the weights from it.

        Args:
            accuracy: per-class accuracy ``(C,)`` in ``[0, 1]`` (NaN: no
                samples), or a :class:`ClassDifficulty` (its counts, summed over
                ranks under ``torch.distributed``). Not used with
                ``source="train"``, whose training counts are read and reset.
            sync: sum a tracker's counts over ranks (``False`` when the
                counts are already global, as after ``transformers``' gather).

        Returns:
            The applied weights ``(C,)`` (a copy).
        """
        if self.defer_until > 0 and int(self.epoch) < 0:
            raise RuntimeError(
                f"CDBWeighting(defer_until={self.defer_until}) needs set_epoch(epoch) at the "
                "start of every epoch, and it was never called"
            )
        with torch.no_grad():
            acc, counts = self._counts(accuracy, sync)
            acc = self._smoothed(acc, counts)
            w, tau = self._weights(acc)
            self.accuracy.copy_(acc)
            self.tau_value.fill_(tau)
            self.computed.copy_(w)
            self._set_applied()
            if self.train_counts is not None:
                self.train_counts.reset()
            swinging = self._watch(self.weight.detach().cpu().double())
        if swinging:
            warnings.warn(
                f"CDB weights swing between classes: for {int(self.swing_run)} updates in a "
                "row a class's weight jumped up then down by over half the largest weight "
                f"(tau={self.tau!r}). The weights over-correct from one update to the next; "
                f"{SWING_TWO_CLASSES if self.num_classes == 2 else SWING_FIX}",
                SwingWarning,
                stacklevel=2,
            )
        return self.weight.detach().clone()

    def set_epoch(self, epoch: int) -> None:
        """Tell the weighting which epoch starts (from 0); ends the deferral at ``defer_until``."""
        _check_int(epoch, "epoch", low=0)
        self.epoch.fill_(epoch)
        self._set_applied()

    @torch.no_grad()
    def observe(self, logits_or_preds: Tensor, target: Tensor) -> None:
        """Count a training batch's predictions (``source="train"`` only; else a no-op)."""
        if self.train_counts is not None:
            self.train_counts.update(logits_or_preds.detach(), target)

    def _set_applied(self) -> None:
        if self.deferred:
            self.weight.fill_(1.0)
        else:
            self.weight.copy_(self.computed)

    # ------------------------------------------------------------------ the guard

    def _watch(self, w: Tensor) -> bool:
        """Count consecutive updates in which some class's weight reverses a big jump.

        Returns True once: when the count first reaches ``swing_patience``.
        """
        top = float(w.max())
        if self.swing_patience == 0 or self.deferred or top <= 0:
            return False
        rel = w / top
        prev = self.prev_rel.cpu()
        step = torch.zeros_like(self.prev_step.cpu())
        if not bool(prev.isnan().any()):
            delta = rel - prev
            step = torch.where(delta > _SWING_JUMP, 1, torch.where(delta < -_SWING_JUMP, -1, 0))
            reversed_ = bool(((step * self.prev_step.cpu()) < 0).any())
            self.swing_run.fill_(int(self.swing_run) + 1 if reversed_ else 0)
        self.prev_rel.copy_(rel)
        self.prev_step.copy_(step)
        if int(self.swing_run) >= self.swing_patience and not bool(self.warned):
            self.warned.fill_(True)
            return True
        return False
