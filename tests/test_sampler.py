"""CDBSampler (CDB-S): class frequencies follow the weights, resume, shards, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.utils.data import Subset, TensorDataset

from cdbloss import CDBSampler, CDBWeighting, ClassDifficulty
from cdbloss.cdb import PAPER_RULE
from cdbloss.sampler import dataset_targets
from tests.processes import GLOO_TIMEOUT, spawn

TARGETS = [0] * 60 + [1] * 30 + [2] * 10
PAPER = {k: v for k, v in PAPER_RULE.items() if k != "tau"}  # the formulas below, by hand


def test_uniform_before_the_first_update_means_class_balanced() -> None:
    s = CDBSampler(TARGETS, seed=0, num_samples=30000)
    counts = torch.bincount(torch.tensor(TARGETS)[s.plan()], minlength=3).double()
    torch.testing.assert_close(
        counts / counts.sum(), torch.full((3,), 1 / 3).double(), atol=0.02, rtol=0
    )


def test_class_frequencies_follow_difficulty_to_the_tau() -> None:
    s = CDBSampler(TARGETS, tau=2.0, seed=1, num_samples=40000, **PAPER)
    acc = torch.tensor([0.9, 0.6, 0.2])
    probs = s.update(acc)
    d = (1 - acc.double()) ** 2
    torch.testing.assert_close(probs, d / d.sum())
    counts = torch.bincount(torch.tensor(TARGETS)[s.plan()], minlength=3).double()
    torch.testing.assert_close(counts / counts.sum(), d / d.sum(), atol=0.01, rtol=0)


def test_within_a_class_samples_are_used_evenly() -> None:
    s = CDBSampler(TARGETS, seed=2, num_samples=300)  # 100 draws a class
    plan = s.plan()
    minority = plan[torch.tensor(TARGETS)[plan] == 2]
    per_sample = torch.bincount(minority - 90, minlength=10)
    assert int(per_sample.max()) - int(per_sample.min()) <= 1  # 10 samples, cycled


def test_class_without_samples_is_never_drawn() -> None:
    s = CDBSampler([0, 0, 2, 2], num_classes=4, tau=1.0)
    probs = s.update(torch.tensor([0.5, 0.0, 0.5, 0.0]))  # classes 1 and 3 have no samples
    assert probs[1] == 0 and probs[3] == 0
    assert set(torch.tensor([0, 0, 2, 2])[s.plan()].tolist()) <= {0, 2}


def test_same_epoch_same_plan_and_resume() -> None:
    a = CDBSampler(TARGETS, tau=1.0, momentum=0.5, seed=3)
    a.update(torch.tensor([0.9, 0.5, 0.1]))
    a.set_epoch(4)
    b = CDBSampler(TARGETS, tau=1.0, momentum=0.5, seed=3)
    b.load_state_dict(a.state_dict())
    assert list(a) == list(b)
    a.set_epoch(5)
    assert list(a) != list(b)
    b.set_epoch(5)
    acc = torch.tensor([0.3, 0.5, 0.9])
    torch.testing.assert_close(a.update(acc), b.update(acc))


def test_shards_are_disjoint_and_cover_the_plan() -> None:
    full = CDBSampler(TARGETS, seed=5, num_samples=101, num_replicas=1, rank=0)
    shards = [
        list(CDBSampler(TARGETS, seed=5, num_samples=101, num_replicas=3, rank=r)) for r in range(3)
    ]
    assert [len(x) for x in shards] == [34, 34, 34]  # ceil(101 / 3), as DistributedSampler
    plan = CDBSampler(TARGETS, seed=5, num_samples=101, num_replicas=3, rank=0).plan()
    assert sorted(i for shard in shards for i in shard) == sorted(plan.tolist())
    assert len(full) == 101


def test_targets_from_datasets_and_subsets() -> None:
    class WithTargets(TensorDataset):
        targets = torch.tensor(TARGETS)

    ds = WithTargets(torch.zeros(100, 2))
    assert dataset_targets(ds).tolist() == TARGETS
    assert dataset_targets(Subset(ds, [0, 95, 61])).tolist() == [0, 2, 1]
    assert CDBSampler(ds).num_classes == 3


def test_bad_input_is_refused_with_what_came() -> None:
    with pytest.raises(ValueError, match="has no 'targets' attribute"):
        CDBSampler(TensorDataset(torch.zeros(3, 2)))
    with pytest.raises(ValueError, match="integer labels"):
        CDBSampler([0.5, 1.0])
    with pytest.raises(ValueError, match="num_classes must be an int > the largest label 2"):
        CDBSampler(TARGETS, num_classes=2)
    with pytest.raises(ValueError, match="either a weighting or its options"):
        CDBSampler(TARGETS, weighting=CDBWeighting(3), tau=1.0)
    with pytest.raises(ValueError, match="num_samples must be an int >= 1"):
        CDBSampler(TARGETS, num_samples=0)
    with pytest.raises(ValueError, match="max_ratio"):
        CDBSampler(TARGETS, max_ratio=1.0)


# ---------------------------------------------------------------------- two gloo ranks


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=GLOO_TIMEOUT
    )
    try:
        tracker = ClassDifficulty(3)
        # each rank sees a different part of the validation set: the weights must agree
        preds = torch.tensor([0, 0, 1, 2, 2, 1]) if rank == 0 else torch.tensor([0, 2, 2])
        target = torch.tensor([0, 1, 1, 2, 2, 2]) if rank == 0 else torch.tensor([0, 1, 2])
        tracker.update(preds, target)
        s = CDBSampler(TARGETS, tau=1.0, seed=7, num_samples=50, **PAPER)  # rank, world: dist
        s.update(tracker)
        s.set_epoch(2)
        Path(out_dir, f"rank{rank}.json").write_text(
            json.dumps({"indices": list(s), "probs": s.probabilities().tolist()})
        )
    finally:
        dist.destroy_process_group()


def test_ranks_draw_one_plan_and_take_disjoint_shards(tmp_path: Path) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["probs"] == ranks[1]["probs"]
    # all nine samples counted together: class accuracies 2/2, 1/3, 3/4
    acc = torch.tensor([1.0, 1 / 3, 3 / 4], dtype=torch.float64)
    expected = (1 - acc) / (1 - acc).sum()
    torch.testing.assert_close(torch.tensor(ranks[0]["probs"], dtype=torch.float64), expected)
    one = CDBSampler(TARGETS, tau=1.0, seed=7, num_samples=50, num_replicas=2, rank=0, **PAPER)
    one.update(acc)
    one.set_epoch(2)
    plan = one.plan().tolist()
    assert ranks[0]["indices"] == plan[0::2] and ranks[1]["indices"] == plan[1::2]
