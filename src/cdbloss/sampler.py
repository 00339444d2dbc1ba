r"""CDB-S: a sampler whose class probabilities follow the CDB weights.

Sinha, Ohashi & Nakamura, "Class-Difficulty Based Methods for Long-Tailed
Visual Recognition" (IJCV 2022) move the difficulty weights from the loss to the
sampler: each draw picks class :math:`c` with probability

.. math:: p_c = \frac{w_c}{\sum_{k : n_k > 0} w_k}, \qquad w_c = d_c^{\tau}

(0 for a class with no training samples), then one of that class's samples.
The weights come from a :class:`~cdbloss.CDBWeighting`, so every option of the
CDB loss (tau, moving average, cap, deferral, prior) applies here too; they are
updated from the same validation tracker after each epoch with :meth:`CDBSampler.update`.

Within a class the samples are taken in a fresh random order, cycling when a
class is drawn more often than it has samples, so a class's samples are used
as evenly as its draws allow.

Under ``torch.distributed`` every rank draws the same plan for an epoch (the
generator is seeded by ``seed + epoch``) and takes every ``num_replicas``-th
entry from its rank on, as :class:`torch.utils.data.DistributedSampler` does:
the ranks' shards are disjoint, and together they are the whole plan of
``ceil(num_samples / num_replicas) * num_replicas`` draws.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import Sampler

from cdbloss.cdb import CDBWeighting
from cdbloss.difficulty import ClassDifficulty

__all__ = ["CDBSampler", "dataset_targets"]


def dataset_targets(dataset: Any) -> Tensor:
    """The integer labels ``(N,)`` of a dataset, from its ``targets`` attribute.

    Follows :class:`torch.utils.data.Subset` to its parent's targets. Raises
    ``ValueError`` for a dataset that does not expose its labels.
    """
    if isinstance(dataset, torch.utils.data.Subset):
        parent = dataset_targets(dataset.dataset)
        return parent[torch.as_tensor(list(dataset.indices), dtype=torch.long)]
    targets = getattr(dataset, "targets", None)
    if targets is None:
        raise ValueError(
            f"CDBSampler needs the labels of the training set: {type(dataset).__name__} has no "
            "'targets' attribute; pass the labels (a sequence of ints) instead of the dataset"
        )
    return _as_targets(targets)


def _as_targets(targets: Any) -> Tensor:
    t = torch.as_tensor(targets)
    if t.dim() != 1 or t.is_floating_point() or t.dtype == torch.bool or t.numel() == 0:
        raise ValueError(
            f"targets must be a non-empty 1-D sequence of integer labels (N,), got dtype "
            f"{t.dtype} and shape {tuple(t.shape)}"
        )
    if int(t.min()) < 0:
        raise ValueError(f"targets must be labels >= 0, got {int(t.min())}")
    return t.long()


class CDBSampler(Sampler[int]):
    """Class-difficulty sampling (CDB-S), resumable and DDP-aware.

    Args:
        targets: the training labels ``(N,)`` (ints), or a dataset with a
            ``targets`` attribute.
        num_classes: ``C`` (default: ``max(targets) + 1``).
        weighting: the :class:`~cdbloss.CDBWeighting` that sets the class
            weights; default ``CDBWeighting(C, **weighting_options)``.
        num_samples: draws per epoch over all ranks (default ``N``).
        seed: the plan of epoch ``e`` is drawn from a generator seeded ``seed + e``.
        num_replicas: the DDP world size (default: from ``torch.distributed``
            when it is initialised, else 1).
        rank: this process's rank (default: from ``torch.distributed``, else 0).
        **weighting_options: settings of the default weighting (``tau``, ``momentum``...).

    Example:
        >>> s = CDBSampler([0, 0, 0, 1], tau=1.0, seed=0)
        >>> _ = s.update(torch.tensor([1.0, 0.0]))  # class 0 solved: all draws go to class 1
        >>> sorted(set(s))
        [3]
    """

    def __repr__(self) -> str:
        ddp = f", rank={self.rank}/{self.num_replicas}" if self.num_replicas > 1 else ""
        return (
            f"{type(self).__name__}(num_classes={self.num_classes}, "
            f"num_samples={self.num_samples}, seed={self.seed}, epoch={self.epoch}{ddp}, "
            f"weighting=CDBWeighting({self.weighting.extra_repr()}))"
        )

    def __init__(
        self,
        targets: Sequence[int] | Tensor | Any,
        num_classes: int | None = None,
        weighting: CDBWeighting | None = None,
        *,
        num_samples: int | None = None,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        **weighting_options: Any,
    ) -> None:
        t = (
            _as_targets(targets)
            if isinstance(targets, (Tensor, Sequence))
            else dataset_targets(targets)
        )
        c = int(t.max()) + 1 if num_classes is None else num_classes
        if isinstance(c, bool) or not isinstance(c, int) or c < int(t.max()) + 1:
            raise ValueError(
                f"num_classes must be an int > the largest label {int(t.max())}, got {num_classes!r}"
            )
        if weighting is not None and weighting_options:
            raise ValueError(
                f"pass either a weighting or its options, got both ({sorted(weighting_options)})"
            )
        self.weighting = (
            weighting if weighting is not None else CDBWeighting(c, **weighting_options)
        )
        if self.weighting.num_classes != c:
            raise ValueError(
                f"the weighting has {self.weighting.num_classes} classes, the targets {c}"
            )
        if num_replicas is None:
            ddp = dist.is_available() and dist.is_initialized()
            num_replicas = dist.get_world_size() if ddp else 1
            rank = dist.get_rank() if ddp and rank is None else (rank or 0)
        rank = 0 if rank is None else rank
        if not (isinstance(num_replicas, int) and num_replicas >= 1 and 0 <= rank < num_replicas):
            raise ValueError(
                f"need num_replicas >= 1 and 0 <= rank < num_replicas, got {num_replicas}, {rank}"
            )
        n = int(t.numel()) if num_samples is None else num_samples
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"num_samples must be an int >= 1, got {num_samples!r}")
        self.targets = t
        self.num_classes = c
        self.num_samples = n
        self.seed = int(seed)
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.per_rank = math.ceil(n / num_replicas)
        self.total_size = self.per_rank * num_replicas
        order = torch.argsort(t, stable=True)
        counts = torch.bincount(t, minlength=c)
        self._members = list(torch.split(order, counts.tolist()))
        self.class_counts = counts

    def probabilities(self) -> Tensor:
        """The class probabilities ``(C,)`` float64 of the current weights."""
        w = self.weighting.weight.detach().cpu().double()
        w = torch.where(self.class_counts > 0, w, torch.zeros_like(w))
        if float(w.sum()) <= 0:  # every class with samples has weight 0: uniform over them
            w = (self.class_counts > 0).double()
        return w / w.sum()

    def update(self, accuracy: Tensor | ClassDifficulty | None = None) -> Tensor:
        """Update the weights (:meth:`CDBWeighting.update`); returns the new probabilities."""
        self.weighting.update(accuracy)
        return self.probabilities()

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose plan :meth:`__iter__` draws (and end a deferral)."""
        self.epoch = int(epoch)
        self.weighting.set_epoch(int(epoch))

    def plan(self) -> Tensor:
        """The whole epoch's draws over all ranks, ``(total_size,)`` sample indices."""
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        classes = torch.multinomial(
            self.probabilities().float(), self.total_size, replacement=True, generator=g
        )
        out = torch.empty(self.total_size, dtype=torch.long)
        for c in torch.unique(classes).tolist():
            slots = (classes == c).nonzero().squeeze(1)
            members = self._members[c]
            rounds = math.ceil(len(slots) / len(members))
            picks = torch.cat(
                [members[torch.randperm(len(members), generator=g)] for _ in range(rounds)]
            )
            out[slots] = picks[: len(slots)]
        return out

    def __iter__(self) -> Iterator[int]:
        return iter(self.plan()[self.rank : self.total_size : self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.per_rank

    def state_dict(self) -> dict[str, Any]:
        """The epoch and the weighting's state (for resuming)."""
        return {"epoch": self.epoch, "weighting": self.weighting.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.weighting.load_state_dict(state["weighting"])
        self.epoch = int(state["epoch"])
