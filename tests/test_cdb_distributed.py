"""CDBWeighting's training-stream source under torch.distributed: two gloo processes on CPU.

Each rank trains on its own, unequal share of the batches. The training counts
must be summed over the ranks, so both get the weights of one process that saw
every batch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.distributed as dist

from cdbloss import CDBLoss
from tests.processes import GLOO_TIMEOUT, spawn

C = 4


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for n in (16, 9, 23, 5):
        y = torch.randint(0, C, (n,), generator=g)
        z = torch.randn(n, C, generator=g)
        z[torch.arange(n), y] += torch.linspace(-1.0, 2.0, n)
        out.append((z, y))
    return out


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=GLOO_TIMEOUT
    )
    try:
        loss = CDBLoss(C, tau=1.0, momentum=0.5, source="train")
        mine = batches()[:1] if rank == 0 else batches()[1:]  # 16 samples vs 37
        for z, y in mine:
            loss(z.requires_grad_(True), y)
        weights = loss.update_weights()
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(weights.tolist()))
    finally:
        dist.destroy_process_group()


def test_training_counts_are_summed_over_ranks(tmp_path: Path) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    single = CDBLoss(C, tau=1.0, momentum=0.5, source="train")
    for z, y in batches():
        single(z.requires_grad_(True), y)
    expected = single.update_weights().tolist()
    assert ranks[0] == ranks[1] == expected
