"""shard_indices: how one list of sample indices is split over DDP ranks.

Evaluation (``pad=False``) must count every sample exactly once, or the summed
per-class counts (and so the CDB weights) are wrong; training (``pad=True``)
must give every rank the same number of samples, or one rank waits forever
for another's gradients.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from cdbloss.lab.engine.distributed import shard_indices


def _shares(indices: torch.Tensor, world: int, pad: bool) -> list[list[int]]:
    return [shard_indices(indices, r, world, pad=pad).tolist() for r in range(world)]


@pytest.mark.parametrize(("n", "world"), [(10, 3), (11, 4), (7, 2), (3, 5), (0, 3), (1, 1)])
def test_evaluation_shares_hold_every_index_exactly_once(n: int, world: int) -> None:
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    shares = _shares(perm, world, pad=False)
    assert Counter(i for s in shares for i in s) == Counter(perm.tolist())
    sizes = [len(s) for s in shares]
    assert sum(sizes) == n and max(sizes) - min(sizes) <= 1  # uneven sizes differ by one
    for r, share in enumerate(shares):
        assert share == perm.tolist()[r::world]  # each rank keeps the order it was given


def test_uneven_evaluation_split_of_ten_over_three_ranks() -> None:
    assert _shares(torch.arange(10), 3, pad=False) == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]


def test_uneven_training_split_wraps_around_to_equal_shares() -> None:
    assert _shares(torch.arange(10), 4, pad=True) == [[0, 4, 8], [1, 5, 9], [2, 6, 0], [3, 7, 1]]


def test_shorter_than_the_padding_still_gives_every_rank_a_share() -> None:
    # 2 samples over 5 ranks: the list wraps around more than once
    assert _shares(torch.arange(2), 5, pad=True) == [[0], [1], [0], [1], [0]]


# every size up to 40 on 1 to 9 ranks: the sizes where n < world or n % world != 0 are the point
@pytest.mark.parametrize("world", range(1, 10))
def test_every_index_once_for_evaluation_and_equal_shares_for_training(world: int) -> None:
    for n in range(41):
        _check_sizes(n, world)


def _check_sizes(n: int, world: int) -> None:
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(n * 31 + world))
    evaluation = _shares(perm, world, pad=False)
    assert sorted(i for s in evaluation for i in s) == list(range(n))  # each exactly once
    sizes = [len(s) for s in evaluation]
    assert max(sizes) - min(sizes) <= 1
    training = _shares(perm, world, pad=True)
    size = math.ceil(n / world)
    assert [len(s) for s in training] == [size] * world  # DDP needs the same count on every rank
    seen = Counter(i for s in training for i in s)
    assert set(seen) == set(range(n))  # nothing dropped, and the padding repeats evenly
    assert max(seen.values(), default=1) - min(seen.values(), default=1) <= 1
