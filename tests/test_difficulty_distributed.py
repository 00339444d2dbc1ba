"""ClassDifficulty and CDBLoss under torch.distributed: two gloo processes on CPU.

Each rank sees a different, unequal part of one validation set. Both must get
the accuracy (and so the CDB weights) of a single process that saw all of it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.distributed as dist

from cdbloss import CDBLoss, ClassDifficulty
from tests.processes import GLOO_TIMEOUT, spawn

C = 5


def validation_set() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, C - 1, (103,), generator=g)  # class 4 never appears
    logits = torch.randn(103, C, generator=g)
    logits[torch.arange(103), target] += torch.linspace(-1.0, 3.0, 103)  # varied accuracy
    return logits, target


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=GLOO_TIMEOUT
    )
    try:
        logits, target = validation_set()
        part = slice(0, 71) if rank == 0 else slice(71, None)  # 71 vs 32 samples
        tracker = ClassDifficulty(C)
        for chunk in torch.split(torch.arange(103)[part], 10):
            tracker.update(logits[chunk], target[chunk])
        local_total = tracker.total.tolist()
        acc = tracker.compute()
        loss = CDBLoss(C)
        weights = loss.update_weights(tracker)
        result = {
            "acc": [None if torch.isnan(a) else float(a) for a in acc],
            "weights": weights.tolist(),
            "local_total": local_total,
            "total_after": tracker.total.tolist(),
        }
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def test_two_ranks_agree_with_one_process(tmp_path: Path) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]

    logits, target = validation_set()
    single = ClassDifficulty(C)
    single.update(logits, target)
    expected_acc = single.compute()
    expected_w = CDBLoss(C).update_weights(single)

    for r in ranks:
        got = torch.tensor(
            [float("nan") if a is None else a for a in r["acc"]], dtype=torch.float64
        )
        torch.testing.assert_close(got, expected_acc, equal_nan=True, rtol=0, atol=0)
        torch.testing.assert_close(torch.tensor(r["weights"]), expected_w)
        # the local counts were not overwritten by the collective
        assert r["total_after"] == r["local_total"]
    assert ranks[0]["local_total"] != ranks[1]["local_total"]
    assert [
        a + b for a, b in zip(ranks[0]["local_total"], ranks[1]["local_total"], strict=True)
    ] == single.total.tolist()
