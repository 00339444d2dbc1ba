"""Fused runs (cdbloss.lab.engine.fused): each member ends where its unfused run ends.

Tolerances: a vmapped matmul or convolution sums in another order than the unfused
one, so the members agree with their unfused runs to float32 rounding, grown a little
by a few epochs of SGD (docs/engine.md, "Fused sweeps"): losses and weights to 1e-5
relative, parameters to 1e-5 absolute; the accuracy counts of these tiny problems match
exactly. A resumed group repeats the same computations in the same order: exact.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor
from torch.utils.data import Dataset

from cdbloss.lab.data.base import DataSplits
from cdbloss.lab.engine.config import ConfigError, ExperimentConfig, config_from_dict
from cdbloss.lab.engine.fused import FusedTrainer, StackedSGD, fuse_key
from cdbloss.lab.engine.trainer import NonFiniteLossError, Trainer
from cdbloss.lab.experiments.sweep import plan_jobs, run_sweep

from .conftest import tiny_config

#: The members of the equality test: four losses, three learning rates, two weight
#: decays, Nesterov on one.
MEMBERS: dict[str, dict[str, Any]] = {
    "ce": {"loss__name": "ce"},
    "cdb": {"loss__name": "cdb-ce-paper"},
    "bs": {"loss__name": "balanced-softmax", "optim__lr": 0.03},
    "focal": {
        "loss__name": "focal",
        "loss__options": {"gamma": 1.0},
        "optim__lr": 0.08,
        "optim__weight_decay": 0.001,
        "optim__nesterov": True,
    },
}


def _cfgs(members: dict[str, dict[str, Any]], **shared: Any) -> list[ExperimentConfig]:
    return [config_from_dict(tiny_config(name=k, **v, **shared)) for k, v in members.items()]


def _losses(result: dict[str, Any]) -> list[float]:
    return [h["train_loss"] for h in result["history"]]


def _close_to_unfused(fused: dict[str, Any], plain: dict[str, Any]) -> None:
    assert _losses(fused) == pytest.approx(_losses(plain), rel=1e-5)
    for a, b in zip(fused["history"], plain["history"], strict=True):
        assert a.keys() == b.keys()
        assert a.get("weights", []) == pytest.approx(b.get("weights", []), rel=1e-5)
        assert a.get("val_per_class_accuracy") == b.get("val_per_class_accuracy")
    assert fused["test"]["confusion_matrix"] == plain["test"]["confusion_matrix"]
    assert fused["best_epoch"] == plain["best_epoch"]


def test_members_equal_their_unfused_runs(tmp_path: Path) -> None:
    cfgs = _cfgs(MEMBERS)
    outs = [tmp_path / "fused" / c.name for c in cfgs]
    fused = FusedTrainer(cfgs, outs).fit_all()
    for cfg, out, got in zip(cfgs, outs, fused, strict=True):
        assert isinstance(got, dict)
        plain = Trainer(cfg, tmp_path / "plain" / cfg.name).fit()
        _close_to_unfused(got, plain)
        # the files an unfused run writes, in its format, plus fused_with
        assert got["fused_with"] == [c.name for c in cfgs if c is not cfg]
        on_disk = json.loads((out / "result.json").read_text())
        assert list(on_disk) == [*plain, "fused_with"]
        lines = (out / "metrics.jsonl").read_text().splitlines()
        assert [list(json.loads(line)) for line in lines] == [list(h) for h in plain["history"]]
        mine = torch.load(out / "checkpoint.pt", weights_only=True)
        theirs = torch.load(tmp_path / "plain" / cfg.name / "checkpoint.pt", weights_only=True)
        assert list(mine) == list(theirs)
        assert mine["optimizer"]["param_groups"] == theirs["optimizer"]["param_groups"]
        for key, value in theirs["model"].items():
            torch.testing.assert_close(mine["model"][key], value, rtol=0, atol=1e-5)
        for i, s in theirs["optimizer"]["state"].items():
            buf = mine["optimizer"]["state"][i]["momentum_buffer"]
            torch.testing.assert_close(buf, s["momentum_buffer"], rtol=0, atol=1e-5)


class _Images(Dataset[tuple[Tensor, int]]):
    """Tiny random images; training batches flip at random (the global RNG): augmentation
    that every member must see the same of, and that a resumed run must repeat."""

    def __init__(self, n: int, seed: int, augment: bool = False) -> None:
        self.augment = augment
        g = torch.Generator().manual_seed(seed)
        self.y = torch.arange(n) % 3
        self.x = torch.randn(n, 3, 6, 6, generator=g) + self.y.view(-1, 1, 1, 1) * 0.5

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.x[i], int(self.y[i])

    def get_batch(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        x = self.x[idx]
        if not self.augment:
            return x, self.y[idx]
        flip = torch.rand(len(idx)) < 0.5
        return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x), self.y[idx]


def _image_splits() -> DataSplits:
    return DataSplits(
        _Images(48, 0, augment=True),
        _Images(24, 1),
        _Images(24, 2),
        3,
        [16, 16, 16],
        ["a", "b", "c"],
    )


def _image_cfgs() -> list[ExperimentConfig]:
    shared = {"model": {"name": "resnet8"}, "train__epochs": 2, "train__batch_size": 16}
    return _cfgs({k: MEMBERS[k] for k in ("ce", "cdb", "focal")}, **shared)


def test_batchnorm_statistics_are_kept_per_member(tmp_path: Path) -> None:
    cfgs = _image_cfgs()
    outs = [tmp_path / "fused" / c.name for c in cfgs]
    fused = FusedTrainer(cfgs, outs, splits=_image_splits()).fit_all()
    key = "layer1.0.bn1.running_mean"
    means = []
    for cfg, out, got in zip(cfgs, outs, fused, strict=True):
        assert isinstance(got, dict)
        plain = Trainer(cfg, tmp_path / "plain" / cfg.name, splits=_image_splits()).fit()
        _close_to_unfused(got, plain)
        mine = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
        theirs = torch.load(tmp_path / "plain" / cfg.name / "checkpoint.pt", weights_only=True)
        torch.testing.assert_close(mine[key], theirs["model"][key], rtol=0, atol=1e-5)
        assert int(mine["bn1.num_batches_tracked"]) == 2 * 3  # 2 epochs of 3 batches
        means.append(mine[key])
    assert not torch.equal(means[0], means[1])  # each member's own statistics


def test_a_killed_group_resumes_to_the_same_results(tmp_path: Path) -> None:
    cfgs = _image_cfgs()
    straight = FusedTrainer(cfgs, [tmp_path / "a" / c.name for c in cfgs], _image_splits())
    want = straight.fit_all()
    outs = [tmp_path / "b" / c.name for c in cfgs]
    with pytest.raises(KeyboardInterrupt, match="epoch 1 are kept"):
        FusedTrainer(cfgs, outs, _image_splits(), fail_after_batches=5).fit_all()  # in epoch 2
    assert all((o / "checkpoint.pt").exists() and not (o / "result.json").exists() for o in outs)
    got = FusedTrainer(cfgs, outs, _image_splits()).fit_all()
    for a, b in zip(got, want, strict=True):
        assert isinstance(a, dict) and isinstance(b, dict)
        assert _losses(a) == _losses(b)
        assert a["test"]["confusion_matrix"] == b["test"]["confusion_matrix"]
        assert a["history"][-1]["weights"] == b["history"][-1]["weights"]


def test_an_interrupted_checkpoint_write_is_finished_or_undone(tmp_path: Path) -> None:
    cfgs = _cfgs({k: MEMBERS[k] for k in ("ce", "cdb")}, train__epochs=2)
    outs = [tmp_path / c.name for c in cfgs]
    with pytest.raises(KeyboardInterrupt):
        FusedTrainer(cfgs, outs, fail_after_batches=12).fit_all()  # in epoch 2 (8 a epoch)
    # a kill between the phases: one member's epoch-2 checkpoint written, not renamed
    ckpt = torch.load(outs[0] / "checkpoint.pt", weights_only=True)
    torch.save({**ckpt, "epoch": 1}, outs[0] / "checkpoint.pt.next")
    got = FusedTrainer(cfgs, outs).fit_all()  # undone: both resume from epoch 1
    assert not (outs[0] / "checkpoint.pt.next").exists()
    assert all(isinstance(g, dict) and len(g["history"]) == 2 for g in got)


def test_a_nan_member_leaves_and_the_others_finish(tmp_path: Path) -> None:
    members = {**{k: MEMBERS[k] for k in ("ce", "cdb")}, "wild": {"optim__lr": 1e30}}
    cfgs = _cfgs(members)
    outs = [tmp_path / "fused" / c.name for c in cfgs]
    ce, cdb, wild = FusedTrainer(cfgs, outs).fit_all()
    assert isinstance(wild, NonFiniteLossError)
    with pytest.raises(NonFiniteLossError) as alone:
        Trainer(cfgs[2], tmp_path / "plain" / "wild").fit()
    assert str(wild) == str(alone.value).replace("plain", "fused")  # the same failure
    assert not (outs[2] / "result.json").exists()
    for cfg, got in zip(cfgs[:2], (ce, cdb), strict=True):
        assert isinstance(got, dict)
        _close_to_unfused(got, Trainer(cfg, tmp_path / "plain" / cfg.name).fit())
        assert got["fused_with"] == [n for n in ("ce", "cdb", "wild") if n != cfg.name]


def test_stacked_sgd_is_torch_sgd_per_member() -> None:
    torch.manual_seed(0)
    settings = [
        {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "nesterov": False},
        {"lr": 0.02, "momentum": 0.0, "weight_decay": 0.0, "nesterov": False},
        {"lr": 0.05, "momentum": 0.5, "weight_decay": 1e-3, "nesterov": True},
    ]
    cfgs = [config_from_dict(tiny_config(optim=s)) for s in settings]
    models = [torch.nn.Linear(4, 3) for _ in settings]
    stacked = {
        n: torch.stack([dict(m.named_parameters())[n].detach() for m in models])
        for n in ("weight", "bias")
    }
    stacked = {n: p.clone().requires_grad_() for n, p in stacked.items()}
    opt = StackedSGD(stacked, cfgs, torch.nn.Linear(4, 3).to("meta"))
    refs = [torch.optim.SGD(m.parameters(), **s) for m, s in zip(models, settings, strict=True)]
    for _ in range(3):
        grads = {n: torch.randn_like(p) for n, p in stacked.items()}
        for n, p in stacked.items():
            p.grad = grads[n]
        opt.step()
        for k, (m, ref) in enumerate(zip(models, refs, strict=True)):
            for n, p in m.named_parameters():
                p.grad = grads[n][k].clone()
            ref.step()
    for k, m in enumerate(models):
        for n, p in m.named_parameters():
            torch.testing.assert_close(stacked[n][k], p.detach(), rtol=0, atol=1e-7)
        want = refs[k].state_dict()
        assert opt.member_state(k)["param_groups"] == want["param_groups"]
        assert opt.member_state(k)["state"].keys() == want["state"].keys()


def test_runs_that_cannot_fuse_are_refused_clearly(tmp_path: Path) -> None:
    a = config_from_dict(tiny_config(name="a"))
    other_seed = config_from_dict(tiny_config(name="b", seed=1))
    with pytest.raises(ValueError, match=r"'a' and 'b' cannot be fused: they differ in \['seed'\]"):
        FusedTrainer([a, other_seed], [tmp_path / "a", tmp_path / "b"])
    meta = config_from_dict(tiny_config(name="m", train__method="l2rw"))
    with pytest.raises(
        ValueError, match=re.escape("'m' cannot be fused: train.method='l2rw' takes its own")
    ):
        FusedTrainer([a, meta], [tmp_path / "a", tmp_path / "m"])
    with pytest.raises(
        ConfigError, match=re.escape("'sweep.fuse' must be true or false, got 'yes'")
    ):
        config_from_dict(tiny_config(sweep={"fuse": "yes", "seed": [0]}))
    # what members may differ in does not split a group; everything else does
    assert fuse_key(a) == fuse_key(config_from_dict(tiny_config(**MEMBERS["focal"])))
    assert fuse_key(a) != fuse_key(config_from_dict(tiny_config(train__epochs=5)))


def test_sweep_fuse_groups_what_can_share_and_runs_the_rest_as_today(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # in one process (the worker pool takes the same jobs: 20 s more to spawn here)
    variants = [
        {"loss.name": "ce"},
        {"loss.name": "cdb-ce-paper"},
        {"loss.name": "focal", "optim.lr": 0.02},
        {"loss.name": "ce", "train.method": "l2rw"},  # meta steps: alone
        {"loss.name": "ce", "model.options.hidden": 8},  # another architecture: alone
    ]
    raw = tiny_config(train__epochs=2, sweep={"variants": variants, "fuse": True})
    cfg = config_from_dict(raw)
    statuses = run_sweep(cfg, tmp_path / "sweep")
    assert [v["status"] for v in statuses.values()] == ["done"] * 5
    printed = capsys.readouterr().out
    assert "5 to run (3 of them in 1 fused groups)" in printed
    assert sorted(line[:5] for line in printed.splitlines()[1:]) == [
        f"[{i}/5]" for i in range(1, 6)
    ]
    fused_with = {
        run: json.loads((tmp_path / "sweep" / run / "result.json").read_text()).get("fused_with")
        for run in statuses
    }
    assert [len(v) if v is not None else None for v in fused_with.values()] == [2, 2, 2, None, None]
    assert math.isfinite(statuses[next(iter(statuses))]["test"])
    # resumed: all done, nothing to plan
    again = run_sweep(cfg, tmp_path / "sweep", progress=False)
    assert all(v.get("skipped") for v in again.values())
    assert plan_jobs(tmp_path / "x", [], fuse=True) == []


def test_a_stop_signal_waits_for_a_groups_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a SIGTERM (the pack launcher's deadline) while the first member's files are written
    # stops the group only once every member's checkpoint and metrics hold the epoch
    import os
    import signal

    import cdbloss.lab.engine.fused as fused_module

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt("stopped")

    calls = []

    def write_then_signal(out_dir: Path, history: list[Any]) -> None:
        calls.append(out_dir.name)
        write_metrics(out_dir, history)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    from cdbloss.lab.engine.trainer import write_metrics

    monkeypatch.setattr(fused_module, "write_metrics", write_then_signal)
    cfgs = [config_from_dict(tiny_config(name=n, loss={"name": n})) for n in ("ce", "focal")]
    old = signal.signal(signal.SIGTERM, stop)
    try:
        with pytest.raises(KeyboardInterrupt):
            FusedTrainer(cfgs, [tmp_path / c.name for c in cfgs]).fit_all()
    finally:
        signal.signal(signal.SIGTERM, old)
    assert calls == ["ce", "focal"]
    for c in cfgs:
        assert len((tmp_path / c.name / "metrics.jsonl").read_text().splitlines()) == 1
