"""CDBCallback: a real Lightning fit on a tiny imbalanced 3-class problem (CPU, seconds)."""

from __future__ import annotations

import functools
import itertools
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("lightning.pytorch")

from cdbloss import CDBLoss, cdb_weights  # noqa: E402
from cdbloss.cdb import PAPER_RULE  # noqa: E402
from cdbloss.integrations.lightning import CDBCallback  # noqa: E402
from tests.docs_blocks import example, matching, printed  # noqa: E402
from tests.processes import run_group  # noqa: E402

# the paper's rule (these tests check its formulas; the recipe defaults have their own tests)
PaperCDBLoss = functools.partial(CDBLoss, **PAPER_RULE)

C = 3


def blobs(counts: tuple[int, ...], seed: int) -> TensorDataset:
    """Overlapping 2-D Gaussian blobs, ``counts[c]`` samples of class ``c``."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[0.0, 0.0], [1.5, 0.0], [0.0, 1.5]])
    x = torch.cat([centers[c] + torch.randn(n, 2, generator=g) for c, n in enumerate(counts)])
    y = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate(counts)])
    return TensorDataset(x, y)


def loaders() -> tuple[DataLoader[tuple[Tensor, ...]], DataLoader[tuple[Tensor, ...]]]:
    train = DataLoader(blobs((240, 60, 20), seed=0), batch_size=32, shuffle=True)
    val = DataLoader(blobs((60, 30, 30), seed=1), batch_size=40)
    return train, val


class Classifier(pl.LightningModule):  # type: ignore[misc]
    def __init__(self, returns: str = "dict") -> None:
        super().__init__()
        self.net = nn.Linear(2, C)
        with torch.no_grad():  # untrained model predicts class 0 everywhere: accuracy (1, 0, 0)
            self.net.weight.zero_()
            self.net.bias.copy_(torch.tensor([3.0, 0.0, 0.0]))
        self.loss_fn = PaperCDBLoss(num_classes=C)
        self.returns = returns
        self.train_weights: list[Tensor] = []

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # type: ignore[no-any-return]

    def on_train_epoch_start(self) -> None:
        self.train_weights.append(self.loss_fn.weight.clone())

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        return self.loss_fn(self(x), y)  # type: ignore[no-any-return]

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Any:
        x, y = batch
        logits = self(x)
        if self.returns == "tensor":
            return logits
        return {"logits": logits, "target": y, "loss": self.loss_fn(logits, y)}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Probe(pl.Callback):  # type: ignore[misc]
    """Records what the CDBCallback (listed before it) left after each hook."""

    def __init__(self, cdb: CDBCallback) -> None:
        self.cdb = cdb
        self.sanity_batches = 0
        self.at_train_start: tuple[Tensor, int] | None = None
        self.after_val: list[tuple[Tensor, Tensor]] = []

    def on_validation_batch_end(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
        self.sanity_batches += int(trainer.sanity_checking)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        assert self.cdb.tracker is not None
        total = int(self.cdb.tracker.total.sum())
        self.at_train_start = (pl_module.loss_fn.weight.clone(), total)

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        assert self.cdb.tracker is not None
        acc = self.cdb.tracker.compute(sync=False).clone()
        self.after_val.append((pl_module.loss_fn.weight.clone(), acc))


def make_trainer(callbacks: list[Any], max_epochs: int = 2, **kwargs: Any) -> Any:
    options: dict[str, Any] = {
        "max_epochs": max_epochs,
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 2,
    }
    options.update(kwargs)
    return pl.Trainer(callbacks=callbacks, **options)


def fit(module: Classifier, callbacks: list[Any], **kwargs: Any) -> Any:
    trainer = make_trainer(callbacks, **kwargs)
    train, val = loaders()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*number of training batches.*")
        trainer.fit(module, train, val)
    return trainer


def test_weights_follow_validation_accuracy_and_skip_sanity_check(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = Classifier()
    cdb = CDBCallback(loss_attr="loss_fn")
    probe = Probe(cdb)
    trainer = fit(module, [cdb, probe])
    ones = torch.ones(C)

    # The sanity check ran on an untrained model whose accuracy is (1, 0, 0): had it been
    # counted, the weights at train start would be (0, 1.5, 1.5). They are still uniform.
    assert probe.sanity_batches == 2
    assert probe.at_train_start is not None
    w0, counted = probe.at_train_start
    assert torch.equal(w0, ones) and counted == 0

    # One update per validation pass of fit; each equals the formula applied to the
    # accuracy the tracker measured, differs from uniform, and ranks the classes by difficulty.
    assert len(probe.after_val) == 2
    for weights, acc in probe.after_val:
        assert not torch.isnan(acc).any()
        assert len(set(acc.tolist())) > 1, acc
        torch.testing.assert_close(weights, cdb_weights(acc, "dynamic", 1e-4, True).float())
        assert not torch.allclose(weights, ones)
        for i, j in itertools.permutations(range(C), 2):
            if acc[i] < acc[j]:
                assert weights[i] > weights[j], (acc, weights)
        assert int(weights.argmax()) == int(acc.argmin())

    # Epoch 1 trained with uniform weights (plain CE); epoch 2 with those of the first pass.
    assert len(module.train_weights) == 2
    assert torch.equal(module.train_weights[0], ones)
    assert torch.equal(module.train_weights[1], probe.after_val[0][0])

    # The tracker holds the counts of the last pass: the whole validation set (60, 30, 30).
    assert cdb.tracker is not None
    assert cdb.tracker.total.tolist() == [60, 30, 30]
    torch.testing.assert_close(module.loss_fn.accuracy, probe.after_val[-1][1])

    # Logged with pl_module.log.
    final_w = probe.after_val[-1][0]
    for c in range(C):
        assert float(trainer.callback_metrics[f"cdb/weight_{c}"]) == pytest.approx(
            float(final_w[c])
        )
    assert float(trainer.callback_metrics["cdb/tau"]) == pytest.approx(
        float(module.loss_fn.tau_value)
    )

    # Checkpoint: tracker counts in the callback state, weights in the module's state_dict.
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    ckpt = torch.load(path, weights_only=False)
    state = ckpt["callbacks"][cdb.state_key]
    assert state["total"].tolist() == [60, 30, 30]
    torch.testing.assert_close(ckpt["state_dict"]["loss_fn.weighting.weight"], final_w)

    # Restoring into a fresh callback before setup (as Lightning does on resume).
    restored = CDBCallback(loss_attr="loss_fn")
    restored.load_state_dict(state)
    restored.setup(trainer, Classifier(), "fit")
    assert restored.tracker is not None
    assert torch.equal(restored.tracker.correct, cdb.tracker.correct)
    assert torch.equal(restored.tracker.total, cdb.tracker.total)


def test_validate_outside_fit_leaves_weights_alone() -> None:
    module = Classifier()
    trainer = make_trainer([CDBCallback()])
    _, val = loaders()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        trainer.validate(module, val, verbose=False)
    assert torch.equal(module.loss_fn.weight, torch.ones(C))


class NoLoss(Classifier):
    def __init__(self) -> None:
        super().__init__()
        del self.loss_fn


class WrongLoss(Classifier):
    def __init__(self) -> None:
        super().__init__()
        self.criterion = nn.CrossEntropyLoss()


def test_errors_name_what_was_found() -> None:
    with pytest.raises(ValueError, match="NoLoss has no attribute 'loss_fn'"):
        CDBCallback().setup(make_trainer([]), NoLoss(), "fit")
    with pytest.raises(ValueError, match=r"WrongLoss\.criterion is a .*CrossEntropyLoss, not a"):
        CDBCallback(loss_attr="criterion").setup(make_trainer([]), WrongLoss(), "fit")
    with pytest.raises(ValueError, match="num_classes=4"):
        CDBCallback(num_classes=4).setup(make_trainer([]), Classifier(), "fit")
    with pytest.raises(ValueError, match="loss_attr"):
        CDBCallback(loss_attr="")
    with pytest.raises(ValueError, match="returned Tensor"):
        fit(Classifier(returns="tensor"), [CDBCallback()], max_epochs=1, num_sanity_val_steps=0)
    with pytest.raises(ValueError, match=r"no tensor under 'y'"):
        fit(Classifier(), [CDBCallback(target_key="y")], max_epochs=1, num_sanity_val_steps=0)


def test_nested_loss_attr_and_non_submodule_warning() -> None:
    module = Classifier()
    holder = nn.Module()
    holder.cdb = module.loss_fn
    module.criteria = holder
    cdb = CDBCallback(loss_attr="criteria.cdb")
    cdb.setup(make_trainer([]), module, "fit")
    assert cdb.loss is module.loss_fn

    class Plain:
        pass

    outside = Classifier()
    box = Plain()
    box.cdb = PaperCDBLoss(C)  # type: ignore[attr-defined]
    del outside.loss_fn
    outside.box = box
    with pytest.warns(UserWarning, match="not a submodule"):
        CDBCallback(loss_attr="box.cdb").setup(make_trainer([]), outside, "fit")


DOCS = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"


def test_docs_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(example(DOCS, "lightning"), str(DOCS), "exec"), namespace)
    out = capsys.readouterr().out
    # every line the page says the example prints, as it prints it
    assert matching(out, printed(DOCS, "lightning")) == printed(DOCS, "lightning")
    printed_epochs = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(printed_epochs) == 4  # one update per epoch, none from the sanity check
    loss = namespace["module"].loss_fn
    torch.testing.assert_close(
        loss.weight,
        cdb_weights(loss.accuracy, "dynamic-sigmoid", 0.01, True, max_ratio=10.0).float(),
    )
    assert not torch.allclose(loss.weight, torch.ones(C))


def test_package_imports_no_framework() -> None:
    """``import cdbloss.integrations`` imports neither framework; names resolve lazily."""
    code = (
        "import sys, cdbloss.integrations\n"
        "assert not {'lightning', 'pytorch_lightning', 'transformers'} & set(sys.modules)\n"
    )
    proc = run_group([sys.executable, "-c", code], timeout=120)
    assert proc.returncode == 0, proc.stderr
    import cdbloss.integrations as integrations

    assert integrations.CDBCallback is CDBCallback
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        integrations.Nope  # noqa: B018
