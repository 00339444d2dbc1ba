"""A real two-process run of ConfusionMatrix.sync over gloo.

Kept apart from test_metrics.py so that the spawned processes, which import
this module, do not also import scikit-learn and hypothesis (seconds each).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from cdbloss.lab.metrics import ConfusionMatrix, summarize
from tests.processes import GLOO_TIMEOUT, spawn


def _dist_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=world_size,
        timeout=GLOO_TIMEOUT,
    )
    try:
        scores, target = _dist_data()
        shard = slice(rank, None, world_size)  # every sample on exactly one rank
        cm = ConfusionMatrix(5, topk=(1, 3))
        cm.update(scores[shard], target[shard])
        local = cm.num_samples
        assert local == len(range(rank, 37, world_size))  # a true shard, not all the data
        synced = cm.sync()
        assert cm.num_samples == local  # the local state is untouched
        torch.save(synced.state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _dist_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(37, 5, generator=g), torch.randint(0, 5, (37,), generator=g)


def test_two_process_gloo_sync_equals_single_process(tmp_path: Path) -> None:
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    init_file = tmp_path / "init"
    spawn(_dist_worker, args=(2, str(init_file), str(tmp_path)), nprocs=2)
    scores, target = _dist_data()
    single = ConfusionMatrix(5, topk=(1, 3))
    single.update(scores, target)
    for rank in range(2):
        state = torch.load(tmp_path / f"rank{rank}.pt")
        assert torch.equal(state["counts"], single.counts)
        assert torch.equal(state["topk_correct"], single.topk_correct)
        assert int(state["topk_total"]) == 37
        merged = ConfusionMatrix(5, topk=(1, 3))
        merged.load_state_dict(state)
        assert json.dumps(summarize(merged)) == json.dumps(summarize(single))
