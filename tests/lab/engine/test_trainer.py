"""The training engine end to end on a tiny synthetic imbalanced problem."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

import cdbloss.lab.engine.trainer as trainer_module
from cdbloss import CDBLoss, ClassDifficulty, cdb_weights
from cdbloss.lab.engine.checkpoint import load_checkpoint
from cdbloss.lab.engine.config import config_from_dict
from cdbloss.lab.engine.trainer import NonFiniteLossError, Trainer, lr_factor
from cdbloss.lab.models import build_model
from tests.lab.engine.conftest import tiny_config
from tests.processes import kill_group, run_group

REPO = Path(__file__).resolve().parents[3]


def test_cdb_weights_change_every_epoch_and_favour_the_harder_class(tmp_path: Path) -> None:
    cfg = config_from_dict(tiny_config())
    result = Trainer(cfg, tmp_path / "run").fit()
    hist = result["history"]
    assert len(hist) == 4
    weights = [h["weights"] for h in hist]
    for before, after in zip([[1.0, 1.0, 1.0], *weights[:-1]], weights, strict=True):
        assert before != after  # recomputed after every epoch
    for h in hist:  # the least accurate class on validation gets the largest weight
        acc = h["val_per_class_accuracy"]
        assert h["weights"][acc.index(min(acc))] == max(h["weights"])
        assert h["weights"] == pytest.approx(
            cdb_weights(torch.tensor(acc, dtype=torch.float64)).tolist(), rel=1e-6
        )
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.json", "checkpoint.pt", "metrics.jsonl", "result.json"} <= files
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 4
    test = result["test"]  # the whole test split (3 x 100), not the validation set (3 x 30)
    assert test["num_samples"] == 300 and sum(map(sum, test["confusion_matrix"])) == 300


def test_plain_losses_ignore_the_tracker(tmp_path: Path) -> None:
    cfg = config_from_dict(tiny_config(loss__name="ce", train__epochs=2))
    result = Trainer(cfg, tmp_path / "run").fit()
    assert all(h["weights"] == [1.0, 1.0, 1.0] for h in result["history"])
    assert "tau" not in result["history"][0]


def test_weight_update_every_k_iterations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trained_with: list[list[float]] = []  # the weights in force at each training batch
    updates: list[tuple[int, list[float], int]] = []  # (batches so far, weights, samples counted)
    forward, update_weights = CDBLoss.forward, CDBLoss.update_weights

    def spy_forward(self: CDBLoss, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        trained_with.append(self.weight.tolist())
        return forward(self, logits, target)

    def spy_update(self: CDBLoss, tracker: ClassDifficulty, **kwargs: Any) -> torch.Tensor:
        weights = update_weights(self, tracker, **kwargs)
        updates.append((len(trained_with), weights.tolist(), int(tracker.total.sum())))
        return weights

    monkeypatch.setattr(CDBLoss, "forward", spy_forward)
    monkeypatch.setattr(CDBLoss, "update_weights", spy_update)
    cfg = config_from_dict(tiny_config(train__epochs=1, train__weight_update_every=3))
    result = Trainer(cfg, tmp_path / "run").fit()
    # 8 batches: new weights after batches 3 and 6 (k = 3), then after the epoch's validation
    assert [u[0] for u in updates] == [3, 6, 8]
    assert all(u[2] == 90 for u in updates)  # each from a whole validation pass (3 x 30)
    uniform = [1.0, 1.0, 1.0]
    assert updates[0][1] != uniform
    assert trained_with == [uniform] * 3 + [updates[0][1]] * 3 + [updates[1][1]] * 2
    assert result["history"][0]["weights"] == pytest.approx(updates[2][1])


def test_finished_run_is_not_redone_and_another_experiment_is_refused(tmp_path: Path) -> None:
    cfg = config_from_dict(tiny_config(train__epochs=1))
    first = Trainer(cfg, tmp_path / "run").fit()
    mtime = (tmp_path / "run" / "result.json").stat().st_mtime_ns
    again = Trainer(cfg, tmp_path / "run").fit()
    assert json.dumps(again, sort_keys=True) == json.dumps(first, sort_keys=True)  # NaN-safe
    assert (tmp_path / "run" / "result.json").stat().st_mtime_ns == mtime
    other = config_from_dict(tiny_config(train__epochs=1, optim__lr=0.5))
    with pytest.raises(
        ValueError, match=r"holds a different experiment \(it differs in \['optim.lr'\]\)"
    ):
        Trainer(other, tmp_path / "run").fit()


def test_a_run_saved_before_a_config_key_existed_is_the_same_experiment(tmp_path: Path) -> None:
    # committed runs predate keys such as optim.no_weight_decay: missing means the default
    from cdbloss.lab.engine.trainer import experiment_differences

    cfg = config_from_dict(tiny_config(train__epochs=1))
    Trainer(cfg, tmp_path / "run").fit()
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    del saved["optim"]["no_weight_decay"], saved["train"]["sampler"]
    (tmp_path / "run" / "config.json").write_text(json.dumps(saved))
    assert experiment_differences(tmp_path / "run", cfg) == []
    changed = config_from_dict(tiny_config(train__epochs=1, optim__no_weight_decay=["bias"]))
    assert experiment_differences(tmp_path / "run", changed) == ["optim.no_weight_decay"]


def _poison_loss(
    monkeypatch: pytest.MonkeyPatch, bad_calls: set[int], value: float
) -> dict[str, int]:
    """Make ``CDBLoss`` return ``loss * value`` on the given calls (1-based, counted
    over the run: 8 batches an epoch in ``tiny_config``); returns the call counter."""
    calls = {"n": 0}
    forward = CDBLoss.forward

    def poisoned(self: CDBLoss, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        out = forward(self, logits, target)
        return out * value if calls["n"] in bad_calls else out

    monkeypatch.setattr(CDBLoss, "forward", poisoned)
    return calls


def test_nan_loss_stops_with_epoch_and_batch_and_keeps_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config_from_dict(tiny_config(train__epochs=3))
    _poison_loss(monkeypatch, {8 + 3}, float("nan"))  # epoch 2, batch 3
    with pytest.raises(NonFiniteLossError, match="epoch 2, batch 3"):
        Trainer(cfg, tmp_path / "run").fit()
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["epoch"] == 0  # the last good checkpoint: after epoch 1
    assert not (tmp_path / "run" / "result.json").exists()


def test_off_the_cpu_a_nan_loss_is_found_at_the_next_check_with_its_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A GPU run checks every few batches (each check waits for the device); the
    # error still names the first bad batch and the last good checkpoint stays.
    monkeypatch.setattr(trainer_module, "_finite_check_every", lambda device: 5)
    cfg = config_from_dict(tiny_config(train__epochs=3))
    calls = _poison_loss(monkeypatch, {8 + 2, 8 + 3}, float("inf"))
    with pytest.raises(NonFiniteLossError, match="epoch 2, batch 2"):
        Trainer(cfg, tmp_path / "run").fit()
    assert calls["n"] == 8 + 5  # found at the check after batch 5, not later
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["epoch"] == 0


def test_the_end_of_epoch_check_catches_a_nan_after_the_last_periodic_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trainer_module, "_finite_check_every", lambda device: 5)
    cfg = config_from_dict(tiny_config(train__epochs=2))
    calls = _poison_loss(monkeypatch, {7}, float("nan"))  # epoch 1 has 8 batches
    with pytest.raises(NonFiniteLossError, match="epoch 1, batch 7"):
        Trainer(cfg, tmp_path / "run").fit()
    assert calls["n"] == 8
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_deferred_checks_leave_a_finite_run_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config_from_dict(tiny_config(train__epochs=2))
    every_batch = Trainer(cfg, tmp_path / "a").fit()
    monkeypatch.setattr(trainer_module, "_finite_check_every", lambda device: 3)
    deferred = Trainer(cfg, tmp_path / "b").fit()
    assert json.dumps(deferred["test"]) == json.dumps(every_batch["test"])  # NaN-safe
    assert [h["train_loss"] for h in deferred["history"]] == [
        h["train_loss"] for h in every_batch["history"]
    ]


def test_transform_on_device_is_refused_where_it_cannot_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"needs train.num_workers: 0, got 2"):
        Trainer(
            config_from_dict(tiny_config(train__transform_on_device=True, train__num_workers=2)),
            tmp_path / "a",
        ).fit()
    assert not (tmp_path / "a").exists()  # refused before any work


def test_transform_on_device_needs_get_batch_with_a_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cdbloss.lab.data.synthetic import FeatureDataset

    def old_style(self: FeatureDataset, indices: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features[indices], self.targets[indices]

    monkeypatch.setattr(FeatureDataset, "get_batch", old_style)
    cfg = config_from_dict(tiny_config(train__transform_on_device=True))
    with pytest.raises(ValueError, match=r"the train split is a FeatureDataset, which has none"):
        Trainer(cfg, tmp_path / "a").fit()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_transform_on_device_gives_the_same_batches_on_a_gpu() -> None:
    from torchvision.transforms.v2 import Compose

    from cdbloss.lab.data.tensor_dataset import RandomCropFlip, ScaleNormalize, TensorImageDataset

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (96, 3, 8, 8), generator=g, dtype=torch.uint8)
    labels = torch.arange(96) % 3
    tf = Compose([RandomCropFlip(8, 2), ScaleNormalize([0.5] * 3, [0.25] * 3)])
    ds = TensorImageDataset(images, labels, tf, 3)
    torch.manual_seed(1)
    x_cpu, y_cpu = ds.get_batch(torch.arange(40))
    torch.manual_seed(1)
    x_gpu, y_gpu = ds.get_batch(torch.arange(40), "cuda")
    assert x_gpu.device.type == "cuda"
    torch.testing.assert_close(x_gpu.cpu(), x_cpu)
    assert torch.equal(y_gpu.cpu(), y_cpu)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_gpu_run_with_deferred_checks_and_transform_on_device(tmp_path: Path) -> None:
    runs = [
        Trainer(
            config_from_dict(tiny_config(train__device="cuda", train__transform_on_device=flag)),
            tmp_path / str(flag),
        ).fit()
        for flag in (False, True)
    ]
    assert runs[0]["test"]["top1_accuracy"] == pytest.approx(runs[1]["test"]["top1_accuracy"])
    assert all(math.isfinite(h["train_loss"]) for h in runs[1]["history"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_compiled_gpu_run_with_cuda_graphs_gives_the_plain_one(tmp_path: Path) -> None:
    # reduce-overhead replays CUDA graphs whose outputs the next replay overwrites: a step
    # that kept one past its replay would train on stale logits and drift from the plain run
    plain, graphed = (
        Trainer(
            config_from_dict(tiny_config(train__device="cuda", train__epochs=3, train__compile=m)),
            tmp_path / m,
        ).fit()
        for m in ("off", "reduce-overhead")
    )
    for a, b in zip(plain["history"], graphed["history"], strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-3)
    assert graphed["test"]["top1_accuracy"] == pytest.approx(
        plain["test"]["top1_accuracy"], abs=0.02
    )


def test_a_compiled_training_step_gives_the_uncompiled_run(tmp_path: Path) -> None:
    plain = Trainer(config_from_dict(tiny_config(train__epochs=2)), tmp_path / "plain").fit()
    cfg = config_from_dict(tiny_config(train__epochs=2, train__compile="default"))
    compiled = Trainer(cfg, tmp_path / "compiled").fit()
    for a, b in zip(plain["history"], compiled["history"], strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["weights"] == pytest.approx(a["weights"], rel=1e-4, abs=1e-6)
    assert compiled["test"]["top1_accuracy"] == pytest.approx(plain["test"]["top1_accuracy"])
    # the checkpoint holds the plain model's keys, so a compiled run resumes uncompiled
    state = load_checkpoint(tmp_path / "compiled" / "checkpoint.pt")
    assert not any(k.startswith("_orig_mod") for k in state["model"])


def test_compile_is_refused_for_the_meta_steps(tmp_path: Path) -> None:
    cfg = config_from_dict(tiny_config(train__method="l2rw", train__compile="default"))
    with pytest.raises(ValueError, match=r"need train.compile: off"):
        Trainer(cfg, tmp_path / "a").fit()
    assert not (tmp_path / "a").exists()


def test_lr_schedules() -> None:
    cfg = config_from_dict(
        tiny_config(optim__milestones=[2, 3], optim__gamma=0.1, optim__warmup_epochs=2)
    )
    assert [round(lr_factor(cfg, e), 6) for e in range(4)] == [0.5, 1.0, 0.1, 0.01]
    cos = config_from_dict(tiny_config(optim__schedule="cosine", train__epochs=4))
    assert [round(lr_factor(cos, e), 6) for e in range(3)] == [1.0, 0.853553, 0.5]


def _train_cmd(cfg_path: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "cdbloss", "train", str(cfg_path), "--out", str(out)]


def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_result(tmp_path: Path) -> None:
    raw = tiny_config(
        train__epochs=12,
        train__batch_size=8,
        data__options={"num_classes": 3, "imbalance_factor": 20, "max_per_class": 400},
    )
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(raw))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}

    straight = tmp_path / "straight"
    done = run_group(_train_cmd(cfg_path, straight), timeout=90, env=env)
    assert done.returncode == 0, done.stderr[-3000:]

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _train_cmd(cfg_path, killed),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        metrics = killed / "metrics.jsonl"
        deadline = time.time() + 90
        while time.time() < deadline:
            if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
                break
            time.sleep(0.01)
        time.sleep(0.05)  # into the next epoch
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "result.json").exists(), "the run finished before it could be killed"
    done_epochs = len(metrics.read_text().splitlines())
    assert 3 <= done_epochs < 12

    resumed = run_group(_train_cmd(cfg_path, killed), timeout=90, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = json.loads((straight / "result.json").read_text())
    b = json.loads((killed / "result.json").read_text())
    assert b["test"] == a["test"]
    assert b["history"][-1]["weights"] == a["history"][-1]["weights"]
    assert [h["train_loss"] for h in b["history"]] == [h["train_loss"] for h in a["history"]]


def test_two_process_ddp_matches_one_process_counts_and_weights(tmp_path: Path) -> None:
    # odd validation and test sizes (93, 99): the ranks' shares differ by one
    data = {"num_classes": 3, "imbalance_factor": 20, "val_per_class": 31, "test_per_class": 33}
    raw = tiny_config(
        train__epochs=2, train__batch_size=32, train__device="cpu", data__options=data
    )
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(raw))
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
        "--master-port", "0", "--rdzv-backend", "c10d", "--rdzv-endpoint", "localhost:0",
        str(REPO / "tests" / "lab" / "engine" / "ddp_run.py"), str(cfg_path), str(out),
    ]  # fmt: skip
    proc = run_group(cmd, timeout=180, env=env)  # torchrun and both ranks, killed together
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["world_size"] == 2

    # One process, the same final model, each whole set.
    cfg = config_from_dict(raw)
    splits = Trainer(cfg, tmp_path / "unused")._load_data()
    model = build_model("mlp", 3, in_features=8, hidden=16)
    model.load_state_dict(load_checkpoint(out / "checkpoint.pt")["model"])
    model.eval()
    one_process = {}
    for name in ("val", "test"):
        dataset = getattr(splits, name)
        tracker = ClassDifficulty(3)
        with torch.no_grad():
            x, y = dataset.get_batch(torch.arange(len(dataset)))
            tracker.update(model(x), y)
        one_process[name] = tracker
    last = result["history"][-1]
    val = one_process["val"]
    assert last["val_per_class_accuracy"] == pytest.approx(val.compute().tolist(), abs=0)
    assert last["weights"] == pytest.approx(cdb_weights(val.compute()).tolist(), rel=1e-6)
    assert result["test"]["num_samples"] == len(splits.test) == 99
    assert result["test"]["per_class_accuracy"] == one_process["test"].compute().tolist()

    # Each rank evaluated its own share: validation after each epoch, then the test set.
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    assert [p["size"] for p in ranks[0]] == [p["size"] for p in ranks[1]] == [93, 93, 99]
    for a, b, name in zip(ranks[0], ranks[1], ["val", "val", "test"], strict=True):
        n = a["size"]
        assert (sum(a["local_total"]), sum(b["local_total"])) == (n - n // 2, n // 2)
        summed = [i + j for i, j in zip(a["local_total"], b["local_total"], strict=True)]
        assert summed == one_process[name].total.tolist()  # every sample counted once
        assert a["num_samples"] == b["num_samples"] == n


@pytest.mark.parametrize("method", ["l2rw", "mwn"])
def test_meta_methods_run_and_still_feed_the_cdb_weights(tmp_path: Path, method: str) -> None:
    cfg = config_from_dict(
        tiny_config(train__epochs=2, train__method=method, train__val_batch_size=16)
    )
    result = Trainer(cfg, tmp_path / "run").fit()
    for h in result["history"]:  # the loss the meta step uses received every update
        expected = cdb_weights(torch.tensor(h["val_per_class_accuracy"], dtype=torch.float64))
        assert h["weights"] == pytest.approx(expected.tolist(), rel=1e-6)
        assert h["weights"] != [1.0, 1.0, 1.0]


def test_tensorboard_scalars_are_written(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = config_from_dict(tiny_config(train__epochs=2, train__tensorboard=True))
    Trainer(cfg, tmp_path / "run").fit()
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train_loss", "val_top1_accuracy", "val_macro_recall", "lr", "tau"} <= tags
    assert [e.step for e in events.Scalars("tau")] == [1, 2]


def test_result_files_name_no_home_folder() -> None:
    from cdbloss.lab.engine.trainer import _portable

    home = str(Path.home())
    info = {"sources": [{"path": f"{home}/.cache/cdbloss/mnist/x", "md5": "ab"}], "n": 3}
    assert _portable(info) == {
        "sources": [{"path": "~/.cache/cdbloss/mnist/x", "md5": "ab"}],
        "n": 3,
    }


def test_result_files_name_shared_data_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cdbloss.lab.engine.trainer import _portable

    shared = tmp_path / "elsewhere" / "data"
    shared.mkdir(parents=True)
    monkeypatch.setenv("CDBLOSS_SHARED_DATA", str(shared))
    path = str(shared.resolve() / "cifar10-jpeg" / "cifar10-jpeg.zip")
    assert _portable({"path": path}) == {"path": "../shared/data/cifar10-jpeg/cifar10-jpeg.zip"}


def test_val_every_thins_validation_for_plain_losses_but_not_for_cdb(tmp_path: Path) -> None:
    ce = Trainer(
        config_from_dict(tiny_config(loss__name="ce", train__epochs=5, train__val_every=2)),
        tmp_path / "ce",
    ).fit()
    validated = [h["epoch"] for h in ce["history"] if "val_top1_accuracy" in h]
    assert validated == [2, 4, 5]  # every 2nd epoch and the last
    assert ce["val"]["val_top1_accuracy"] == ce["history"][-1]["val_top1_accuracy"]
    cdb = Trainer(
        config_from_dict(tiny_config(train__epochs=3, train__val_every=2)), tmp_path / "cdb"
    ).fit()
    assert all("val_top1_accuracy" in h for h in cdb["history"])  # CDB learns from each pass
    assert len({tuple(h["weights"]) for h in cdb["history"]}) == 3


def test_checkpoint_every_k_epochs_and_an_interrupted_run_resumes_to_the_same_result(
    tmp_path: Path,
) -> None:
    raw = tiny_config(train__epochs=5, train__checkpoint_every=2)
    straight = Trainer(config_from_dict(raw), tmp_path / "straight").fit()
    # 8 batches an epoch: stop in epoch 4, after the checkpoint of epoch 2
    with pytest.raises(KeyboardInterrupt):
        Trainer(config_from_dict(raw), tmp_path / "cut", fail_after_batches=3 * 8 + 2).fit()
    state = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert state["epoch"] == 1  # saved after epoch 2 only, not after epoch 3
    assert len((tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()) == 2
    resumed = Trainer(config_from_dict(raw), tmp_path / "cut").fit()
    assert resumed["test"] == straight["test"]
    assert [h["train_loss"] for h in resumed["history"]] == [
        h["train_loss"] for h in straight["history"]
    ]


def _image_splits() -> Any:
    from cdbloss.lab.data.base import DataSplits
    from cdbloss.lab.data.tensor_dataset import TensorImageDataset

    g = torch.Generator().manual_seed(0)

    def split(n: int) -> TensorImageDataset:
        images = torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
        return TensorImageDataset(images, torch.arange(n) % 2, num_classes=2)

    train = split(64)
    return DataSplits(train, split(16), split(16), 2, train.class_counts(), ["a", "b"])


def test_channels_last_trains_the_same_model_in_the_other_memory_format(tmp_path: Path) -> None:
    results = {}
    for flag in (False, True):
        raw = tiny_config(
            model={"name": "lenet5", "options": {}},
            train__epochs=2,
            train__batch_size=16,
            train__channels_last=flag,
        )
        trainer = Trainer(config_from_dict(raw), tmp_path / str(flag), splits=_image_splits())
        results[flag] = trainer.fit()
        state = load_checkpoint(tmp_path / str(flag) / "checkpoint.pt")["model"]
        conv = state["features.3.weight"]  # (16, 6, 5, 5): the formats differ
        assert conv.is_contiguous(memory_format=torch.channels_last) == flag
    a, b = ([h["train_loss"] for h in results[flag]["history"]] for flag in (False, True))
    assert b == pytest.approx(a, rel=1e-4)
    assert (
        results[True]["test"]["per_class_accuracy"] == results[False]["test"]["per_class_accuracy"]
    )


def test_deferred_cdb_trains_with_uniform_weights_until_the_epoch(tmp_path: Path) -> None:
    raw = tiny_config(train__epochs=4, loss__options={"tau": 1.0, "defer_until": 2})
    result = Trainer(config_from_dict(raw), tmp_path / "run").fit()
    hist = result["history"]
    # weights logged after an epoch are the ones in force then: uniform through epoch 2 ...
    assert hist[0]["weights"] == [1.0, 1.0, 1.0] and hist[1]["weights"] == [1.0, 1.0, 1.0]
    # ... and from the third epoch on, the difficulty weights of the last validation pass
    for h in hist[2:]:
        acc = torch.tensor(h["val_per_class_accuracy"], dtype=torch.float64)
        assert h["weights"] == pytest.approx(cdb_weights(acc, tau=1.0).tolist(), rel=1e-6)


def test_first_decay_deferral_is_the_first_milestone_written_into_the_config(
    tmp_path: Path,
) -> None:
    from cdbloss.lab.engine.trainer import with_resolved_loss

    raw = tiny_config(
        train__epochs=4,
        optim__milestones=[2.5, 3],
        loss__options={"tau": 1.0, "defer_until": "first-decay"},
    )
    cfg = with_resolved_loss(config_from_dict(raw))
    assert cfg.loss.options["defer_until"] == 3  # the decay takes effect from epoch ceil(2.5)
    result = Trainer(config_from_dict(raw), tmp_path / "run").fit()
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["loss"]["options"]["defer_until"] == 3
    assert [h["weights"] for h in result["history"][:3]] == [[1.0, 1.0, 1.0]] * 3
    assert result["history"][3]["weights"] != [1.0, 1.0, 1.0]
    cosine = tiny_config(
        optim__schedule="cosine", loss__options={"tau": 1.0, "defer_until": "first-decay"}
    )
    with pytest.raises(ValueError, match=r"needs optim.schedule 'multistep' with milestones"):
        Trainer(config_from_dict(cosine), tmp_path / "cosine")
    assert not (tmp_path / "cosine").exists()


def test_cdb_sampler_draws_by_difficulty_and_resumes_to_the_same_result(tmp_path: Path) -> None:
    raw = tiny_config(
        loss__name="ce",
        train__epochs=4,
        train__checkpoint_every=1,
        train__sampler="cdb",
        train__sampler_options={"tau": 1.0, "momentum": 0.5},
    )
    straight = Trainer(config_from_dict(raw), tmp_path / "straight").fit()
    for h in straight["history"]:
        assert sum(h["sampler_probabilities"]) == pytest.approx(1.0)
    late = straight["history"][-1]
    uniform = tiny_config(loss__name="ce", train__epochs=4)
    plain = Trainer(config_from_dict(uniform), tmp_path / "plain").fit()
    assert plain["history"][0]["train_loss"] != straight["history"][0]["train_loss"]
    assert late["sampler_probabilities"] != [1 / 3] * 3
    with pytest.raises(KeyboardInterrupt):
        Trainer(config_from_dict(raw), tmp_path / "cut", fail_after_batches=2 * 8 + 3).fit()
    resumed = Trainer(config_from_dict(raw), tmp_path / "cut").fit()
    assert resumed["test"] == straight["test"]
    assert [h["sampler_probabilities"] for h in resumed["history"]] == [
        h["sampler_probabilities"] for h in straight["history"]
    ]


def test_training_stream_difficulty_needs_no_validation_accuracy(tmp_path: Path) -> None:
    raw = tiny_config(train__epochs=3, loss__options={"tau": 1.0, "source": "train"})
    result = Trainer(config_from_dict(raw), tmp_path / "run").fit()
    weights = [h["weights"] for h in result["history"]]
    assert weights[0] != [1.0, 1.0, 1.0]
    # the weights are not the validation accuracy's: they come from the training batches
    acc = torch.tensor(result["history"][0]["val_per_class_accuracy"], dtype=torch.float64)
    assert weights[0] != pytest.approx(cdb_weights(acc, tau=1.0).tolist(), rel=1e-6)


def test_no_weight_decay_exempts_the_named_parameters(tmp_path: Path) -> None:
    from cdbloss.lab.engine.trainer import _param_groups

    model = build_model("mlp", 3, in_features=8, hidden=16)
    groups = _param_groups(model, ["net.2.bias"])
    assert groups[1] == {"params": [model.net[2].bias], "weight_decay": 0.0}
    assert len(groups[0]["params"]) == 3
    # one SGD step on zero gradients: decay shrinks every parameter but the exempt bias
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD(groups, lr=0.1, weight_decay=1.0)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) == (n == "net.2.bias"), n
    raw = tiny_config(loss__name="ce", train__epochs=1, optim__no_weight_decay=["fc.bias"])
    with pytest.raises(ValueError, match=r"does not have: \['fc.bias'\]"):
        Trainer(config_from_dict(raw), tmp_path / "bad").fit()
