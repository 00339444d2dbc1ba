"""Both integrations log exactly the weights the loss applies, for every CDB option.

The callbacks are driven through their hooks with stand-ins for the frameworks'
trainer objects (the full training loops are tested in test_lightning.py and
test_transformers.py); after each evaluation the logged weights must equal
``loss.weight``, the weights the next epoch trains with.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

from cdbloss import CDBLoss

C = 3
OPTIONS: list[dict[str, Any]] = [
    {},  # the default recipe
    {"tau": "dynamic", "eps": 1e-4, "momentum": 0.0, "max_ratio": None},  # the paper's rule
    {"tau": 1.5, "max_ratio": None},
    {"tau": 1.0, "solved_accuracy": 0.9, "max_ratio": None},
    {"tau": 1.0, "min_difficulty": 0.05},
    {"momentum": 0.5, "max_ratio": 3.0},
    {"defer_until": 2},
    {"prior_strength": 4.0},
    {"normalize": False, "tau": 2.0},
]
# per-class accuracy pattern of each evaluation: swings, a perfect class, a class at 0
PATTERNS = [
    [0.9, 0.5, 0.0],
    [0.95, 0.2, 0.6],
    [1.0, 0.7, 0.3],
    [0.5, 0.9, 0.95],
]


def _eval_batch(pattern: list[float], per_class: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(N, C)`` and labels ``(N,)`` whose per-class accuracy is ``pattern``."""
    labels, preds = [], []
    for c, acc in enumerate(pattern):
        right = round(acc * per_class)
        labels += [c] * per_class
        preds += [c] * right + [(c + 1) % C] * (per_class - right)
    logits = torch.nn.functional.one_hot(torch.tensor(preds), C).float()
    return logits, torch.tensor(labels)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "default")
def test_lightning_logs_the_applied_weights(options: dict[str, Any]) -> None:
    pytest.importorskip("lightning.pytorch")
    from lightning.pytorch.trainer.states import TrainerFn

    from cdbloss.integrations.lightning import CDBCallback

    logged: dict[str, float] = {}
    module = torch.nn.Module()
    module.loss_fn = CDBLoss(C, **options)
    module.log = lambda name, value, **kw: logged.__setitem__(name, value)  # type: ignore[assignment]
    module.device = torch.device("cpu")  # type: ignore[assignment]
    trainer = SimpleNamespace(
        state=SimpleNamespace(fn=TrainerFn.FITTING), sanity_checking=False, current_epoch=0
    )
    cb = CDBCallback()
    cb.setup(trainer, module, "fit")  # type: ignore[arg-type]
    for epoch, pattern in enumerate(PATTERNS):
        trainer.current_epoch = epoch
        cb.on_train_epoch_start(trainer, module)  # type: ignore[arg-type]
        cb.on_validation_start(trainer, module)  # type: ignore[arg-type]
        logits, labels = _eval_batch(pattern)
        cb.on_validation_batch_end(trainer, module, {"logits": logits, "target": labels}, None, 0)  # type: ignore[arg-type]
        cb.on_validation_epoch_end(trainer, module)  # type: ignore[arg-type]
        weights = [logged[f"cdb/weight_{c}"] for c in range(C)]
        assert weights == pytest.approx(module.loss_fn.weight.tolist(), abs=1e-6), epoch
        assert logged["cdb/tau"] == pytest.approx(float(module.loss_fn.tau_value))
    assert module.loss_fn.weight.tolist() != [1.0] * C  # the options changed the weights


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "default")
def test_transformers_logs_the_applied_weights(options: dict[str, Any]) -> None:
    pytest.importorskip("transformers")
    from transformers import EvalPrediction

    from cdbloss.integrations.transformers import CDBTrainerCallback

    loss = CDBLoss(C, **options)
    cb = CDBTrainerCallback(loss)
    args = control = None
    cb.on_train_begin(args, SimpleNamespace(), control)  # type: ignore[arg-type]
    for epoch, pattern in enumerate(PATTERNS):
        state = SimpleNamespace(epoch=float(epoch), global_step=10 * (epoch + 1))
        cb.on_epoch_begin(args, state, control)  # type: ignore[arg-type]
        logits, labels = _eval_batch(pattern)
        metrics = cb.compute_metrics(EvalPrediction(logits.numpy(), labels.numpy()))
        cb.on_evaluate(args, state, control, metrics={"eval_loss": 0.0})  # type: ignore[arg-type]
        weights = [metrics[f"cdb_weight_{c}"] for c in range(C)]
        assert weights == pytest.approx(loss.weight.tolist(), abs=1e-6), epoch
        assert metrics["cdb_tau"] == pytest.approx(float(loss.tau_value))
    assert loss.weight.tolist() != [1.0] * C
