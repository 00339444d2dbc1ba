"""MultiLabelDifficulty: per-label counts by hand, masking, scores, state, and two gloo ranks."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from cdbloss import MultiLabelCDBLoss, MultiLabelDifficulty
from tests.processes import GLOO_TIMEOUT, spawn

TARGET = torch.tensor([[1, 0, 1], [1, 1, 0], [0, 0, 1], [1, 0, -100]])
PRED = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 1, 1], [1, 0, 1]])


def test_counts_by_hand_with_mask() -> None:
    t = MultiLabelDifficulty(3)
    t.update(PRED, TARGET)
    # label 0: tp 2 (rows 0, 3), fn 1 (row 1), tn 1 (row 2); label 1: tp 1, fp 1, tn 2;
    # label 2: tp 1 (row 2), fn 1 (row 0), tn 1 (row 1); row 3 is unknown
    assert t.counts().tolist() == [[2, 1, 1], [0, 1, 0], [1, 0, 1], [1, 2, 1]]
    ba = t.compute("balanced-accuracy")
    assert ba.tolist() == pytest.approx([0.5 * (2 / 3 + 1), 0.5 * (1 + 2 / 3), 0.5 * (0.5 + 1)])
    assert t.compute("f1").tolist() == pytest.approx([4 / 5, 2 / 3, 2 / 3])
    assert t.compute("recall").tolist() == pytest.approx([2 / 3, 1.0, 0.5])
    assert t.difficulty("f1").tolist() == pytest.approx([1 / 5, 1 / 3, 1 / 3])


def test_logits_are_thresholded_at_the_probability() -> None:
    logits = torch.tensor([[0.1, -0.1], [2.0, 0.5]])
    t = MultiLabelDifficulty(2, threshold=0.6)  # logit cut log(1.5) = 0.405
    t.update(logits, torch.tensor([[1, 1], [1, 1]]))
    assert t.tp.tolist() == [1, 1]
    assert t.fn.tolist() == [1, 1]


def test_undefined_score_is_nan_and_state_round_trips() -> None:
    t = MultiLabelDifficulty(2)
    t.update(torch.tensor([[1, 0]]), torch.tensor([[1, 0]]))  # label 0 has no negative
    ba = t.compute()
    assert math.isnan(ba[0]) and math.isnan(ba[1])
    assert t.compute("f1")[0] == 1.0 and math.isnan(t.compute("f1")[1])
    u = MultiLabelDifficulty(2)
    u.load_state_dict(t.state_dict())
    assert torch.equal(u.counts(), t.counts())
    with pytest.raises(ValueError, match="3 labels"):
        MultiLabelDifficulty(3).load_state_dict(t.state_dict())


def test_bad_input_is_refused() -> None:
    t = MultiLabelDifficulty(2)
    with pytest.raises(ValueError, match="must be 0, 1 or ignore_index"):
        t.update(torch.zeros(2, 2), torch.tensor([[0, 2], [1, 0]]))
    with pytest.raises(ValueError, match=r"shape \(N, C\)"):
        t.update(torch.zeros(2, 2), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="C = 2"):
        t.update(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="measure"):
        t.compute("auc")
    with pytest.raises(ValueError, match="threshold"):
        MultiLabelDifficulty(2, threshold=1.0)


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    target = (torch.rand(57, 4, generator=g) < torch.tensor([0.6, 0.3, 0.1, 0.05])).long()
    logits = torch.randn(57, 4, generator=g) + 1.5 * (2 * target - 1)
    return logits, target


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=GLOO_TIMEOUT
    )
    try:
        logits, target = _data()
        part = slice(0, 40) if rank == 0 else slice(40, None)
        t = MultiLabelDifficulty(4)
        t.update(logits[part], target[part])
        loss = MultiLabelCDBLoss(4, momentum=0.0)
        w = loss.update_weights(t)
        out = {"counts": t.counts().tolist(), "local": t.tp.tolist(), "w": w.tolist()}
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(out))
    finally:
        dist.destroy_process_group()


def test_two_ranks_agree_with_one_process(tmp_path: Path) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    logits, target = _data()
    whole = MultiLabelDifficulty(4)
    whole.update(logits, target)
    w = MultiLabelCDBLoss(4, momentum=0.0).update_weights(whole)
    for r in ranks:
        assert r["counts"] == whole.counts().tolist()
        assert r["w"] == pytest.approx(w.tolist())
    assert ranks[0]["local"] != whole.tp.tolist()  # each rank saw only its part
