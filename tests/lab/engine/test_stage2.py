"""Second stages (cRT, LWS, weight balancing, tau-norm, post-hoc logit adjustment) end to
end on the tiny synthetic problem: what each freezes, learns and records."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from cdbloss.lab.engine.checkpoint import load_checkpoint
from cdbloss.lab.engine.config import ConfigError, config_from_dict
from cdbloss.lab.engine.stage2 import Stage1Error
from cdbloss.lab.engine.trainer import Trainer
from cdbloss.lab.experiments.sweep import run_sweep
from tests.lab.engine.conftest import tiny_config

HEAD = "net.net.2."  # the MLP's classifier inside the stage-2 wrapper


def _stage1(tmp_path: Path) -> tuple[dict[str, Any], Path]:
    raw = tiny_config(loss__name="ce", train__epochs=3)
    folder = tmp_path / "stage1"
    Trainer(config_from_dict(raw), folder).fit()
    return raw, folder


def _stage2(raw: dict[str, Any], folder: Path, **stage2: Any) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    out["stage2"] = {"init_from": str(folder), "epochs": 3, **stage2}
    return out


@pytest.fixture(scope="module")
def stage1(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    return _stage1(tmp_path_factory.mktemp("s1"))


def _final_state(run_dir: Path) -> dict[str, torch.Tensor]:
    """The model stage 2 tested: the best on validation (select: best)."""
    return dict(load_checkpoint(run_dir / "checkpoint.pt")["best"]["state"])


def _stage1_state(folder: Path) -> dict[str, torch.Tensor]:
    return dict(load_checkpoint(folder / "checkpoint.pt")["model"])


def test_the_mlp_head_is_where_the_tests_look(stage1: tuple[dict[str, Any], Path]) -> None:
    state = _stage1_state(stage1[1])
    assert {"net.2.weight", "net.2.bias"} <= set(state)
    assert max(k for k in state if k.endswith(".weight")) == "net.2.weight"


def test_crt_leaves_every_backbone_parameter_bit_equal_and_relearns_the_head(
    stage1: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    raw, folder = stage1
    result = Trainer(config_from_dict(_stage2(raw, folder, method="crt")), tmp_path / "crt").fit()
    before = _stage1_state(folder)
    for state in (
        _final_state(tmp_path / "crt"),
        load_checkpoint(tmp_path / "crt" / "checkpoint.pt")["model"],
    ):
        backbone = [k for k in before if not k.startswith("net.2.")]
        assert backbone
        for key in backbone:  # parameters and buffers alike
            assert torch.equal(state["net." + key], before[key]), key
        assert not torch.equal(state[HEAD + "weight"], before["net.2.weight"])
    assert result["stage2"]["method"] == "crt"
    assert result["stage2"]["stage1_run"] == str(folder)
    assert result["config"]["stage2"]["init_from"] == str(folder)
    assert result["config"]["loss"]["name"] == "ce" and result["config"]["train"]["epochs"] == 3
    assert "test_last" not in result  # only the final (best-on-validation) model is tested
    history = [h["train_loss"] for h in result["history"]]
    assert len(history) == 3


def test_lws_changes_only_the_scales(stage1: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    raw, folder = stage1
    Trainer(config_from_dict(_stage2(raw, folder, method="lws", lr=0.5)), tmp_path / "lws").fit()
    before = _stage1_state(folder)
    after = load_checkpoint(tmp_path / "lws" / "checkpoint.pt")["model"]
    assert set(after) == {"net." + k for k in before} | {"scale.scale"}
    for key, value in before.items():
        assert torch.equal(after["net." + key], value), key
    assert not torch.equal(after["scale.scale"], torch.ones(3))


def test_weight_balancing_keeps_the_max_norm_bound_after_every_step(
    stage1: tuple[dict[str, Any], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw, folder = stage1
    before = _stage1_state(folder)["net.2.weight"].norm(dim=1)
    bound = float(before.min()) * 0.5  # under every stage-1 row: the projection must act
    norms: list[float] = []
    sgd_step = torch.optim.SGD.step

    def watched(self: torch.optim.SGD, *args: Any, **kwargs: Any) -> Any:
        out = sgd_step(self, *args, **kwargs)
        norms.append(-1.0)  # marks a step; the bound is read after the projection below
        return out

    import cdbloss.decoupled as decoupled

    project = decoupled.max_norm_

    def projected(weight: torch.Tensor, max_norm: float) -> torch.Tensor:
        out = project(weight, max_norm)
        norms.append(float(weight.detach().norm(dim=1).max()))
        return out

    monkeypatch.setattr(torch.optim.SGD, "step", watched)
    monkeypatch.setattr(decoupled, "max_norm_", projected)
    cfg = _stage2(raw, folder, method="wb", max_norm=bound, weight_decay=0.01)
    result = Trainer(config_from_dict(cfg), tmp_path / "wb").fit()
    steps = norms.count(-1.0)
    measured = [n for n in norms if n >= 0]
    assert steps == result["history"][-1]["step"] and len(measured) == steps + 1  # + the start
    assert all(n <= bound * (1 + 1e-6) for n in measured)
    after = load_checkpoint(tmp_path / "wb" / "checkpoint.pt")["model"]
    assert float(after[HEAD + "weight"].norm(dim=1).max()) <= bound * (1 + 1e-6)
    # the whole model learns (the default), with the class-balanced loss
    assert not torch.equal(after["net.net.0.weight"], _stage1_state(folder)["net.0.weight"])
    assert result["config"]["stage2"]["method"] == "wb"


@pytest.mark.parametrize("method", ["tau-norm", "logit-adjust"])
def test_posthoc_at_tau_zero_is_the_stage1_model(
    stage1: tuple[dict[str, Any], Path], tmp_path: Path, method: str
) -> None:
    raw, folder = stage1
    stage1_result = Trainer(config_from_dict(raw), folder).fit()  # finished: read back
    result = Trainer(
        config_from_dict(_stage2(raw, folder, method=method, taus=[0.0])), tmp_path / method
    ).fit()
    assert result["test"]["confusion_matrix"] == stage1_result["test"]["confusion_matrix"]
    assert result["stage2"]["tau"] == 0.0


@pytest.mark.parametrize("method", ["tau-norm", "logit-adjust"])
def test_posthoc_chooses_tau_on_validation_and_tests_once(
    stage1: tuple[dict[str, Any], Path],
    tmp_path: Path,
    method: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw, folder = stage1
    passes: list[int] = []
    evaluate = Trainer.evaluate

    def counted(self: Trainer, model: Any, dataset: Any, *args: Any) -> Any:
        passes.append(len(dataset))
        return evaluate(self, model, dataset, *args)

    monkeypatch.setattr(Trainer, "evaluate", counted)
    result = Trainer(config_from_dict(_stage2(raw, folder, method=method)), tmp_path / "p").fit()
    grid = result["stage2"]["tau_grid"]
    assert [g["tau"] for g in grid] == [round(0.1 * i, 1) for i in range(21)]
    best = max(g["val_top1_accuracy"] for g in grid)
    chosen = next(g for g in grid if g["tau"] == result["stage2"]["tau"])
    assert chosen["val_top1_accuracy"] == best
    assert passes == [90] * 21 + [300]  # 21 validation passes (3 x 30), one test pass


def test_a_stage2_run_resumes_after_being_stopped_to_the_same_result(
    stage1: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    raw, folder = stage1
    cfg = _stage2(raw, folder, method="crt", epochs=4)
    straight = Trainer(config_from_dict(cfg), tmp_path / "straight").fit()
    # 8 class-balanced batches an epoch: stop in epoch 3
    with pytest.raises(KeyboardInterrupt):
        Trainer(config_from_dict(cfg), tmp_path / "cut", fail_after_batches=2 * 8 + 3).fit()
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["epoch"] == 1
    resumed = Trainer(config_from_dict(cfg), tmp_path / "cut").fit()
    assert resumed["test"] == straight["test"]
    assert [h["train_loss"] for h in resumed["history"]] == [
        h["train_loss"] for h in straight["history"]
    ]


def test_a_stage2_run_killed_with_sigkill_resumes(
    stage1: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    raw, folder = stage1
    cfg = _stage2(raw, folder, method="crt", epochs=200)
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    out = tmp_path / "killed"
    repo = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(repo / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cdbloss", "train", str(path), "--out", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out / "checkpoint.pt").exists():
            time.sleep(0.2)
        assert (out / "checkpoint.pt").exists()
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = load_checkpoint(out / "checkpoint.pt")["epoch"] + 1
    assert done < 200
    resumed = Trainer(config_from_dict(cfg), out).fit()  # the lock of the killed run is stale
    assert resumed["status"] == "done" and resumed["history"][-1]["epoch"] == 200
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 200


def test_a_missing_or_unfinished_or_different_stage1_run_fails_before_work(
    stage1: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    raw, folder = stage1
    out = tmp_path / "out"
    with pytest.raises(Stage1Error, match="no such run folder"):
        Trainer(config_from_dict(_stage2(raw, tmp_path / "nowhere", method="crt")), out).fit()
    unfinished = tmp_path / "unfinished"
    with pytest.raises(KeyboardInterrupt):
        Trainer(config_from_dict(raw), unfinished, fail_after_batches=9).fit()
    with pytest.raises(Stage1Error, match="has not finished"):
        Trainer(config_from_dict(_stage2(raw, unfinished, method="lws")), out).fit()
    other = copy.deepcopy(raw)
    other["optim"]["lr"] = 0.01
    with pytest.raises(Stage1Error, match=r"differs in \['optim.lr'\]"):
        Trainer(config_from_dict(_stage2(other, folder, method="crt")), out).fit()
    no_from = copy.deepcopy(raw)
    no_from["stage2"] = {"method": "tau-norm"}
    with pytest.raises(Stage1Error, match=r"set stage2\.init_from"):
        Trainer(config_from_dict(no_from), out).fit()
    assert not out.exists()  # nothing was written


def test_stage2_config_errors_name_the_key(stage1: tuple[dict[str, Any], Path]) -> None:
    raw, folder = stage1
    with pytest.raises(ConfigError, match="needs a MaxNorm threshold"):
        config_from_dict(_stage2(raw, folder, method="wb"))
    with pytest.raises(ConfigError, match=r"stage2\.method is .none."):
        config_from_dict(_stage2(raw, folder))
    with pytest.raises(ConfigError, match=r"stage2\.trainable"):
        config_from_dict(_stage2(raw, folder, method="crt", trainable="all"))
    with pytest.raises(ConfigError, match=r"stage2\.max_norm"):
        config_from_dict(_stage2(raw, folder, method="lws", max_norm=1.0))
    with pytest.raises(ConfigError, match=r"stage2\.loss\.name"):
        config_from_dict(_stage2(raw, folder, method="crt", loss={"name": "nope"}))


def test_a_one_stage_config_saves_no_stage2_section(tmp_path: Path) -> None:
    from cdbloss.lab.engine.config import config_to_dict

    assert "stage2" not in config_to_dict(config_from_dict(tiny_config()))


def test_a_sweep_runs_stage2_variants_after_their_stage1_runs(tmp_path: Path) -> None:
    raw = tiny_config(loss__name="ce", train__epochs=2)
    raw["sweep"] = {
        "seed": [0, 1],
        "variants": [  # the stage-2 variants first: the sweep still trains stage 1 first
            {"stage2.method": "crt", "stage2.epochs": 2},
            {"stage2.method": "logit-adjust"},
            {"loss.name": "ce"},
        ],
    }
    statuses = run_sweep(config_from_dict(raw), tmp_path / "sweep", progress=False)
    assert all(s["status"] == "done" for s in statuses.values()), statuses
    import json

    for seed in (0, 1):
        for run_id in (f"seed={seed}__method=crt__epochs=2", f"seed={seed}__method=logit-adjust"):
            result = json.loads((tmp_path / "sweep" / run_id / "result.json").read_text())
            assert result["stage2"]["stage1_run"] == str(
                tmp_path / "sweep" / f"seed={seed}__name=ce"
            )
    again = run_sweep(config_from_dict(raw), tmp_path / "sweep", progress=False)
    assert all(s.get("skipped") for s in again.values())  # resumable: nothing reruns


def test_a_sweep_refuses_a_stage2_point_without_its_stage1_point(tmp_path: Path) -> None:
    raw = tiny_config(loss__name="ce")
    raw["sweep"] = {"variants": [{"stage2.method": "crt"}]}
    with pytest.raises(ValueError, match="has no stage-1 run in the grid"):
        run_sweep(config_from_dict(raw), tmp_path / "sweep", progress=False)
