"""CDBCallback with the multi-label loss: a real Lightning fit on a tiny 3-label problem (CPU)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("lightning.pytorch")

from cdbloss import CDBLoss, MultiLabelCDBLoss, cdb_weights  # noqa: E402
from cdbloss.cdb import PAPER_RULE  # noqa: E402
from cdbloss.integrations.lightning import CDBCallback  # noqa: E402
from tests.integrations.test_lightning import Classifier, make_trainer  # noqa: E402

C = 3
# the paper's rule, less the settings the multi-label loss does not take
RULE = {k: v for k, v in PAPER_RULE.items() if k not in ("prior_strength", "source")}


def labelled(n: int, seed: int, unknown: float = 0.0) -> TensorDataset:
    """2-D inputs; label c is on when a projection passes a threshold (rarer as c grows).

    A fraction ``unknown`` of the target entries is set to ``ignore_index`` (-100).
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    score = torch.stack([x[:, 0], x[:, 1], x[:, 0] + x[:, 1]], 1)
    y = (score + 0.5 * torch.randn(n, C, generator=g) > torch.tensor([0.0, 0.8, 1.6])).float()
    if unknown:
        y[torch.rand(n, C, generator=g) < unknown] = -100.0
    return TensorDataset(x, y)


VAL = labelled(150, seed=1, unknown=0.1)


def f1_of(module: Tagger) -> Tensor:
    """Per-label F1 of the module's 0.5-threshold predictions on VAL, unknown entries skipped."""
    with torch.no_grad():
        pred = (module.net(VAL.tensors[0]) >= 0).numpy()
    y = VAL.tensors[1].numpy()
    out = []
    for c in range(C):
        keep = y[:, c] != -100
        t, p = y[keep, c] == 1, pred[keep, c]
        tp, fp, fn = (t & p).sum(), (~t & p).sum(), (t & ~p).sum()
        out.append(2 * tp / (2 * tp + fp + fn))
    return torch.tensor(np.array(out), dtype=torch.float64)


class Tagger(Classifier):
    """The single-label tests' module with the multi-label loss and a 3-label start."""

    def __init__(self) -> None:
        super().__init__()
        with torch.no_grad():  # untrained: predicts label 0 on everything, the others never
            self.net.bias.copy_(torch.tensor([3.0, -3.0, -3.0]))
        self.loss_fn = MultiLabelCDBLoss(C, measure="f1", **RULE)  # type: ignore[assignment]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.5)


class Probe(pl.Callback):  # type: ignore[misc]
    """Listed after the CDBCallback: the weights it set and the F1 measured here independently."""

    def __init__(self) -> None:
        self.after_val: list[tuple[Tensor, Tensor]] = []

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self.after_val.append((pl_module.loss_fn.weight.clone(), f1_of(pl_module)))


def fit(module: Tagger, callbacks: list[Any], **kwargs: Any) -> Any:
    trainer = make_trainer(callbacks, **kwargs)
    train = DataLoader(labelled(320, seed=0), batch_size=32, shuffle=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*number of training batches.*")
        trainer.fit(module, train, DataLoader(VAL, batch_size=40))
    return trainer


def test_multilabel_weights_follow_validation_f1(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = Tagger()
    cdb = CDBCallback(loss_attr="loss_fn")
    probe = Probe()
    trainer = fit(module, [cdb, probe])
    ones = torch.ones(C)

    # the tracker is the multi-label one, and the sanity check did not set weights
    assert type(cdb.tracker).__name__ == "MultiLabelDifficulty"
    assert torch.equal(module.train_weights[0], ones)

    # each pass's weights are the formula on the per-label F1 (unknown entries skipped)
    assert len(probe.after_val) == 2
    for weights, f1 in probe.after_val:
        assert len(set(f1.tolist())) > 1, f1
        torch.testing.assert_close(weights, cdb_weights(f1, "dynamic", 1e-4, True).float())
        assert int(weights.argmax()) == int(f1.argmin())
    assert torch.equal(module.train_weights[1], probe.after_val[0][0])

    # the counts of the last pass cover the known entries of the whole validation set
    assert cdb.tracker is not None
    known = (VAL.tensors[1] != -100).sum(0)
    counts = cdb.tracker.counts(sync=False)
    assert counts.sum(0).tolist() == known.tolist()

    # logged under the measure's name
    final_w, final_f1 = probe.after_val[-1]
    for c in range(C):
        assert float(trainer.callback_metrics[f"cdb/weight_{c}"]) == pytest.approx(
            float(final_w[c])
        )
        assert float(trainer.callback_metrics[f"cdb/f1_{c}"]) == pytest.approx(float(final_f1[c]))
    assert "cdb/accuracy_0" not in trainer.callback_metrics

    # checkpoint: the four counts in the callback state, restored before setup
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    state = torch.load(path, weights_only=False)["callbacks"][cdb.state_key]
    assert set(state) == {"num_classes", "tp", "fp", "fn", "tn"}
    restored = CDBCallback(loss_attr="loss_fn")
    restored.load_state_dict(state)
    restored.setup(trainer, Tagger(), "fit")
    assert restored.tracker is not None
    assert torch.equal(restored.tracker.counts(sync=False), counts)


class SingleLabel(Tagger):
    def __init__(self) -> None:
        super().__init__()
        self.loss_fn = CDBLoss(C)  # type: ignore[assignment]


def test_a_checkpoint_of_the_other_kind_is_refused() -> None:
    multi = CDBCallback()
    multi.setup(make_trainer([]), Tagger(), "fit")
    single = CDBCallback()
    single.setup(make_trainer([]), SingleLabel(), "fit")
    with pytest.raises(ValueError, match=r"holds the counts \['correct', 'total'\].*needs"):
        multi.load_state_dict(single.state_dict())
    with pytest.raises(ValueError, match=r"holds the counts \['fn', 'fp', 'tn', 'tp'\]"):
        single.load_state_dict(multi.state_dict())
    # a callback reused with the other kind of loss gets the other kind of tracker
    multi.setup(make_trainer([]), SingleLabel(), "fit")
    assert type(multi.tracker).__name__ == "ClassDifficulty"


def test_wrong_loss_names_both_kinds() -> None:
    class Plain(Tagger):
        def __init__(self) -> None:
            super().__init__()
            self.loss_fn = nn.BCEWithLogitsLoss()  # type: ignore[assignment]

    with pytest.raises(ValueError, match=r"not a cdbloss\.CDBLoss or cdbloss\.MultiLabelCDBLoss"):
        CDBCallback().setup(make_trainer([]), Plain(), "fit")
