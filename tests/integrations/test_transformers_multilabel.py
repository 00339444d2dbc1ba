"""CDBTrainerCallback with the multi-label loss: real Trainer runs on a tiny 3-label problem.

No network: the model is a plain nn.Module, nothing comes from the hub, report_to=[].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from transformers import EvalPrediction, Trainer, TrainerCallback  # noqa: E402

from cdbloss import MultiLabelCDBLoss, cdb_weights  # noqa: E402
from cdbloss.cdb import PAPER_RULE  # noqa: E402
from cdbloss.integrations.transformers import CDBTrainerCallback  # noqa: E402
from tests.integrations.test_transformers import run, train_args  # noqa: E402

C = 3
RULE = {k: v for k, v in PAPER_RULE.items() if k not in ("prior_strength", "source")}


class Tags(Dataset[dict[str, Tensor]]):
    """2-D inputs; label c is on when a projection passes a threshold (rarer as c grows)."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 2, generator=g)
        score = torch.stack([self.x[:, 0], self.x[:, 1], self.x[:, 0] + self.x[:, 1]], 1)
        noise = 0.5 * torch.randn(n, C, generator=g)
        self.y = (score + noise > torch.tensor([0.0, 0.8, 1.6])).float()

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


class Tagger(nn.Module):
    """Starts out predicting label 0 on everything and the others never."""

    def __init__(self, loss: MultiLabelCDBLoss) -> None:
        super().__init__()
        self.net = nn.Linear(2, C)
        with torch.no_grad():
            self.net.weight.zero_()
            self.net.bias.copy_(torch.tensor([0.5, -0.5, -0.5]))
        self.cdb_loss = loss

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {"logits": self.net(x)}


def balanced_accuracy(model: Tagger, data: Tags) -> Tensor:
    with torch.no_grad():
        pred = (model.net(data.x) >= 0).numpy()
    y = data.y.numpy() == 1
    tpr = (pred & y).sum(0) / y.sum(0)
    tnr = (~pred & ~y).sum(0) / (~y).sum(0)
    return torch.tensor(0.5 * (tpr + tnr), dtype=torch.float64)


class Probe(TrainerCallback):
    def __init__(self, val: Tags) -> None:
        self.val = val
        self.evals: list[tuple[int, Tensor, Tensor]] = []
        self.epoch_weights: list[Tensor] = []

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.epoch_weights.append(kwargs["model"].cdb_loss.weight.clone())

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model = kwargs["model"]
        acc = balanced_accuracy(model, self.val)
        self.evals.append((state.global_step, model.cdb_loss.weight.clone(), acc))


def test_multilabel_weights_follow_eval_balanced_accuracy(tmp_path: Path) -> None:
    val = Tags(150, seed=1)
    cb = CDBTrainerCallback(MultiLabelCDBLoss(C, measure="balanced-accuracy", **RULE))
    probe = Probe(val)
    trainer = Trainer(
        model=Tagger(cb.loss),  # type: ignore[arg-type]
        args=train_args(tmp_path, learning_rate=0.5, per_device_eval_batch_size=40),
        train_dataset=Tags(320, seed=0),
        eval_dataset=val,
        compute_loss_func=cb.compute_loss,
        compute_metrics=cb.compute_metrics,
        preprocess_logits_for_metrics=cb.preprocess_logits_for_metrics,
        callbacks=[cb, probe],
    )
    run(trainer)

    assert [step for step, _, _ in probe.evals] == [10, 20]
    for _, weights, acc in probe.evals:
        assert len(set(acc.tolist())) > 1, acc
        torch.testing.assert_close(weights, cdb_weights(acc, "dynamic", 1e-4, True).float())
        assert int(weights.argmax()) == int(acc.argmin())
    assert cb.accuracy is not None
    torch.testing.assert_close(cb.accuracy, probe.evals[-1][2])
    assert torch.equal(probe.epoch_weights[0], torch.ones(C))
    assert torch.equal(probe.epoch_weights[1], probe.evals[0][1])

    logged = [h for h in trainer.state.log_history if "eval_cdb_tau" in h][-1]
    for c in range(C):
        assert logged[f"eval_cdb_weight_{c}"] == pytest.approx(float(probe.evals[-1][1][c]))
        got = logged[f"eval_cdb_balanced_accuracy_{c}"]
        assert got == pytest.approx(float(probe.evals[-1][2][c]))


def test_multilabel_compute_loss_preprocess_and_metrics() -> None:
    cb = CDBTrainerCallback(MultiLabelCDBLoss(C, measure="f1", **RULE))
    cb.loss.update_weights(torch.tensor([0.9, 0.5, 0.2], dtype=torch.float64))
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(8, C, generator=g)
    labels = (torch.rand(8, C, generator=g) < 0.4).float()
    labels[0, 1] = -100.0  # an unknown label: skipped by the loss and the counts
    plain = cb.loss(logits, labels)
    out = {"logits": logits}
    torch.testing.assert_close(cb.compute_loss(out, labels), plain)
    # 23 known entries; two equal accumulation steps hold 46: this micro-batch counts half
    torch.testing.assert_close(cb.compute_loss(out, labels, 46), plain / 2)

    preds = cb.preprocess_logits_for_metrics((logits, None), labels)
    assert preds.dtype == torch.int8 and preds.shape == (8, C)
    assert torch.equal(preds.bool(), logits >= 0)
    m = cb.compute_metrics(EvalPrediction(preds.numpy(), labels.numpy()))
    from_logits = CDBTrainerCallback(MultiLabelCDBLoss(C, measure="f1", **RULE))
    m_logits = from_logits.compute_metrics(EvalPrediction(logits.numpy(), labels.numpy()))
    assert m == m_logits
    y, p = labels.numpy(), (logits >= 0).numpy()
    for c in range(C):
        keep = y[:, c] != -100
        t, q = y[keep, c] == 1, p[keep, c]
        f1 = 2 * (t & q).sum() / (2 * (t & q).sum() + (~t & q).sum() + (t & ~q).sum())
        if np.isfinite(f1):
            assert m[f"cdb_f1_{c}"] == pytest.approx(float(f1))
    assert "cdb_accuracy_0" not in m
