"""CDBTrainerCallback: real transformers Trainer runs on a tiny imbalanced 3-class problem.

No network: the model is a plain nn.Module, nothing comes from the hub, report_to=[].
"""

from __future__ import annotations

import functools
import itertools
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from transformers import (  # noqa: E402
    EvalPrediction,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from cdbloss import CDBLoss, cdb_weights  # noqa: E402
from cdbloss.cdb import PAPER_RULE  # noqa: E402
from cdbloss.integrations.transformers import CDBTrainerCallback  # noqa: E402
from tests.docs_blocks import example, matching, printed  # noqa: E402

# the paper's rule (these tests check its formulas; the recipe defaults have their own tests)
PaperCDBLoss = functools.partial(CDBLoss, **PAPER_RULE)

C = 3


class Blobs(Dataset[dict[str, Tensor]]):
    """Overlapping 2-D Gaussian blobs, ``counts[c]`` samples of class ``c``."""

    def __init__(self, counts: tuple[int, ...], seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        centers = torch.tensor([[0.0, 0.0], [1.5, 0.0], [0.0, 1.5]])
        self.x = torch.cat(
            [centers[c] + torch.randn(n, 2, generator=g) for c, n in enumerate(counts)]
        )
        self.y = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate(counts)])

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


class Classifier(nn.Module):
    """Starts out predicting class 0 everywhere (validation accuracy (1, 0, 0))."""

    def __init__(self, loss: CDBLoss) -> None:
        super().__init__()
        self.net = nn.Linear(2, C)
        with torch.no_grad():
            self.net.weight.zero_()
            self.net.bias.copy_(torch.tensor([0.5, 0.0, 0.0]))
        self.cdb_loss = loss  # a submodule: its weights are checkpointed with the model

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {"logits": self.net(x)}


class OwnLossClassifier(Classifier):
    """Returns its own cross-entropy, as a transformers model given labels does."""

    def forward(self, x: Tensor, labels: Tensor | None = None) -> dict[str, Tensor]:
        out = super().forward(x)
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(out["logits"], labels)
        return out


def per_class_accuracy(model: Classifier, data: Blobs) -> Tensor:
    with torch.no_grad():
        pred = model.net(data.x).argmax(1)
    return torch.stack(
        [(pred[data.y == c] == c).double().mean() for c in range(C)]
    )  # every class is present


class Probe(TrainerCallback):
    """Listed after the CDB callback: sees the weights it left after each event."""

    def __init__(self, val: Blobs) -> None:
        self.val = val
        self.evals: list[tuple[int, Tensor, Tensor]] = []  # (global step, weights, accuracy)
        self.epoch_weights: list[Tensor] = []

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.epoch_weights.append(kwargs["model"].cdb_loss.weight.clone())

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model = kwargs["model"]
        acc = per_class_accuracy(model, self.val)
        self.evals.append((state.global_step, model.cdb_loss.weight.clone(), acc))


def train_args(tmp_path: Path, **overrides: Any) -> TrainingArguments:
    options: dict[str, Any] = {
        "output_dir": str(tmp_path),
        "num_train_epochs": 2,
        "per_device_train_batch_size": 32,
        "per_device_eval_batch_size": 40,
        "learning_rate": 0.1,
        "optim": "sgd",
        "eval_strategy": "epoch",
        "save_strategy": "no",
        "logging_strategy": "no",
        "report_to": [],
        "label_names": ["labels"],
        "use_cpu": True,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "seed": 0,
        "lr_scheduler_type": "constant",
    }
    options.update(overrides)
    return TrainingArguments(**options)


def make_trainer(
    cb: CDBTrainerCallback,
    args: TrainingArguments,
    eval_dataset: Any,
    extra: list[TrainerCallback] | None = None,
    wire_metrics: bool = True,
    wire_loss: bool = True,
) -> Trainer:
    return Trainer(
        model=Classifier(cb.loss) if wire_loss else OwnLossClassifier(cb.loss),
        args=args,
        train_dataset=Blobs((240, 60, 20), seed=0),
        eval_dataset=eval_dataset,
        compute_loss_func=cb.compute_loss if wire_loss else None,
        compute_metrics=cb.compute_metrics if wire_metrics else None,
        preprocess_logits_for_metrics=cb.preprocess_logits_for_metrics if wire_metrics else None,
        callbacks=[cb, *(extra or [])],
    )


def run(trainer: Trainer) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        trainer.train()


def test_weights_follow_eval_accuracy_and_skip_eval_on_start(tmp_path: Path) -> None:
    val = Blobs((60, 30, 30), seed=1)
    cb = CDBTrainerCallback(PaperCDBLoss(num_classes=C), num_classes=C)
    probe = Probe(val)
    trainer = make_trainer(cb, train_args(tmp_path, eval_on_start=True), val, [probe])
    run(trainer)
    ones = torch.ones(C)

    # eval_on_start measured the untrained model, accuracy (1, 0, 0): had it been applied
    # the weights would be (0, 1.5, 1.5). They stay uniform until the first epoch's eval.
    assert [step for step, _, _ in probe.evals] == [0, 10, 20]
    _, w0, acc0 = probe.evals[0]
    assert acc0.tolist() == [1.0, 0.0, 0.0]
    assert torch.equal(w0, ones)

    for _, weights, acc in probe.evals[1:]:
        # the accuracy the callback applied is the model's, computed here independently
        assert cb.accuracy is not None
        assert len(set(acc.tolist())) > 1, acc
        torch.testing.assert_close(weights, cdb_weights(acc, "dynamic", 1e-4, True).float())
        assert not torch.allclose(weights, ones)
        for i, j in itertools.permutations(range(C), 2):
            if acc[i] < acc[j]:
                assert weights[i] > weights[j], (acc, weights)
        assert int(weights.argmax()) == int(acc.argmin())
    torch.testing.assert_close(cb.accuracy, probe.evals[-1][2])

    # Epoch 1 trained with uniform weights (plain CE), epoch 2 with the first eval's.
    assert len(probe.epoch_weights) == 2
    assert torch.equal(probe.epoch_weights[0], ones)
    assert torch.equal(probe.epoch_weights[1], probe.evals[1][1])

    # Logged by the Trainer from compute_metrics, with its prefix.
    logged = [h for h in trainer.state.log_history if "eval_cdb_tau" in h]
    assert len(logged) == 3
    for c in range(C):
        assert logged[-1][f"eval_cdb_weight_{c}"] == pytest.approx(float(probe.evals[-1][1][c]))
        assert logged[-1][f"eval_cdb_accuracy_{c}"] == pytest.approx(float(probe.evals[-1][2][c]))

    # The weights are a buffer of the model's loss submodule: they are in its checkpoints.
    assert trainer.model is not None
    torch.testing.assert_close(
        trainer.model.state_dict()["cdb_loss.weighting.weight"], probe.evals[-1][1]
    )

    # Evaluations and predictions after training do not touch the weights.
    final = cb.loss.weight.clone()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        trainer.evaluate(Blobs((5, 30, 30), seed=2))
        trainer.predict(Blobs((5, 30, 30), seed=3))
    assert torch.equal(cb.loss.weight, final)


def test_dict_eval_datasets_use_the_named_one(tmp_path: Path) -> None:
    val = Blobs((60, 30, 30), seed=1)
    other = Blobs((0, 40, 0), seed=4)  # one class only: its accuracy would give uniform weights
    cb = CDBTrainerCallback(PaperCDBLoss(num_classes=C), eval_dataset_name="val")
    probe = Probe(val)
    datasets = {"val": val, "other": other}  # "other" is evaluated last
    trainer = make_trainer(cb, train_args(tmp_path, num_train_epochs=1), datasets, [probe])
    run(trainer)
    assert len(probe.evals) == 2  # one on_evaluate per dataset
    _, weights, acc = probe.evals[-1]
    assert cb.accuracy is not None
    torch.testing.assert_close(cb.accuracy, acc)
    torch.testing.assert_close(weights, cdb_weights(acc, "dynamic", 1e-4, True).float())
    assert not torch.allclose(weights, torch.ones(C))

    # without a name the choice is ambiguous: a clear error
    cb2 = CDBTrainerCallback(PaperCDBLoss(num_classes=C))
    trainer2 = make_trainer(cb2, train_args(tmp_path, num_train_epochs=1), datasets)
    with pytest.raises(ValueError, match="eval_dataset_name"):
        run(trainer2)


def test_missing_compute_metrics_wiring_is_an_error(tmp_path: Path) -> None:
    cb = CDBTrainerCallback(PaperCDBLoss(num_classes=C))
    val = Blobs((60, 30, 30), seed=1)
    trainer = make_trainer(cb, train_args(tmp_path, num_train_epochs=1), val, wire_metrics=False)
    with pytest.raises(RuntimeError, match=r"compute_metrics=cb\.compute_metrics"):
        run(trainer)


def test_missing_compute_loss_wiring_stops_before_the_first_step(tmp_path: Path) -> None:
    cb = CDBTrainerCallback(PaperCDBLoss(num_classes=C))
    val = Blobs((60, 30, 30), seed=1)
    trainer = make_trainer(cb, train_args(tmp_path, num_train_epochs=1), val, wire_loss=False)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    with pytest.raises(RuntimeError, match=r"compute_loss_func=cb\.compute_loss"):
        run(trainer)
    after = list(trainer.model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))  # no step taken
    assert trainer.state.global_step == 0


def test_compute_loss_scaling_and_errors() -> None:
    cb = CDBTrainerCallback(PaperCDBLoss(num_classes=C))
    cb.loss.update_weights(torch.tensor([0.9, 0.5, 0.2], dtype=torch.float64))
    logits = torch.randn(8, C)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, -100])
    plain = cb.loss(logits, labels)
    out = {"logits": logits}
    torch.testing.assert_close(cb.compute_loss(out, labels), plain)
    torch.testing.assert_close(cb.compute_loss(out, labels, torch.tensor(7)), plain)
    # two equal accumulation steps (14 labels in all): each micro-batch counts half
    torch.testing.assert_close(cb.compute_loss(out, labels, 14), plain / 2)
    with pytest.raises(ValueError, match="returned Tensor"):
        cb.compute_loss(logits, labels)
    with pytest.raises(ValueError, match="no tensor under 'logits'"):
        cb.compute_loss({"scores": logits}, labels)
    with pytest.raises(ValueError, match="label_names"):
        cb.compute_loss(out, None)
    with pytest.raises(ValueError, match="reduction 'mean' or 'sample_mean'"):
        CDBTrainerCallback(PaperCDBLoss(C, reduction="sum")).compute_loss(out, labels)
    with pytest.raises(ValueError, match=r"needs a cdbloss\.CDBLoss"):
        CDBTrainerCallback(nn.CrossEntropyLoss())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_classes=4"):
        CDBTrainerCallback(PaperCDBLoss(C), num_classes=4)


def test_compute_metrics_batched_equals_whole_set() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, C, generator=g)
    labels = torch.randint(0, C, (50,), generator=g)
    seen: list[bool | None] = []

    def user_metrics(pred: EvalPrediction, compute_result: bool | None = None) -> dict[str, Any]:
        seen.append(compute_result)
        return {"n": len(pred.label_ids)}

    whole = CDBTrainerCallback(PaperCDBLoss(C), compute_metrics=user_metrics)
    m_whole = whole.compute_metrics(EvalPrediction(logits.numpy(), labels.numpy()))
    batched = CDBTrainerCallback(PaperCDBLoss(C))
    for k, (lo, hi) in enumerate([(0, 20), (20, 40), (40, 50)]):
        preds = batched.preprocess_logits_for_metrics((logits[lo:hi], None), labels[lo:hi])
        m = batched.compute_metrics(EvalPrediction(preds, labels[lo:hi]), compute_result=k == 2)
    expected = torch.stack([(logits.argmax(1)[labels == c] == c).double().mean() for c in range(C)])
    assert whole._pending is not None and batched._pending is not None
    torch.testing.assert_close(whole._pending.compute(sync=False), expected)
    torch.testing.assert_close(batched._pending.compute(sync=False), expected)
    assert m == {k: v for k, v in m_whole.items() if k != "n"} and m_whole["n"] == 50
    assert seen == [None]
    assert np.isclose(m["cdb_tau"], float(m_whole["cdb_tau"]))


def test_gradient_accumulation_matches_one_big_batch(tmp_path: Path) -> None:
    """compute_loss's n / num_items_in_batch scaling: with reduction="sample_mean", two
    accumulated micro-batches of 16 train exactly as one batch of 32 (weights non-uniform in
    epoch 2). Without the scaling, Trainer would double the accumulated gradient."""
    val = Blobs((60, 30, 30), seed=1)
    params = []
    for batch, steps in ((32, 1), (16, 2)):
        cb = CDBTrainerCallback(PaperCDBLoss(num_classes=C, reduction="sample_mean"))
        args = train_args(
            tmp_path, per_device_train_batch_size=batch, gradient_accumulation_steps=steps
        )
        trainer = make_trainer(cb, args, val)
        run(trainer)
        assert not torch.allclose(cb.loss.weight, torch.ones(C))
        params.append(torch.cat([p.detach().flatten() for p in trainer.model.parameters()]))  # type: ignore[union-attr]
    torch.testing.assert_close(params[0], params[1])


class Tokens(Dataset[dict[str, Tensor]]):
    """Token sequences of length 8; class ``c`` is marked by token ``c + 1``."""

    def __init__(self, counts: tuple[int, ...], seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.y = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate(counts)])
        self.ids = torch.randint(4, 12, (len(self.y), 8), generator=g)
        marked = torch.rand(len(self.y), 8, generator=g) < 0.5
        self.ids[marked] = (self.y + 1).unsqueeze(1).expand(-1, 8)[marked]

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"input_ids": self.ids[i], "labels": self.y[i]}


def test_hf_model_from_config_and_resume_restores_weights(tmp_path: Path) -> None:
    """A transformers model (built from a config: no download) returning a ModelOutput; the
    loss attached to it is saved in the Trainer's checkpoint and restored on resume."""
    from transformers import BertConfig, BertForSequenceClassification

    def build() -> tuple[Any, CDBTrainerCallback]:
        config = BertConfig(
            vocab_size=12,
            hidden_size=8,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=16,
            max_position_embeddings=16,
            num_labels=C,
        )
        torch.manual_seed(0)
        model = BertForSequenceClassification(config)
        model.cdb_loss = PaperCDBLoss(num_classes=C)
        return model, CDBTrainerCallback(model.cdb_loss)

    def trainer_for(model: Any, cb: CDBTrainerCallback) -> Trainer:
        args = train_args(
            tmp_path,
            label_names=None,
            save_strategy="epoch",
            num_train_epochs=1,
            optim="adamw_torch",
        )
        return Trainer(
            model=model,
            args=args,
            train_dataset=Tokens((96, 24, 8), seed=0),
            eval_dataset=Tokens((30, 15, 15), seed=1),
            compute_loss_func=cb.compute_loss,
            compute_metrics=cb.compute_metrics,
            preprocess_logits_for_metrics=cb.preprocess_logits_for_metrics,
            callbacks=[cb],
        )

    model, cb = build()
    trainer = trainer_for(model, cb)
    run(trainer)
    assert trainer.label_names == ["labels"]  # found from the model's forward signature
    assert cb.accuracy is not None
    expected = cdb_weights(cb.accuracy, "dynamic", 1e-4, True).float()
    torch.testing.assert_close(cb.loss.weight, expected)
    assert not torch.allclose(cb.loss.weight, torch.ones(C))

    model2, cb2 = build()
    assert torch.equal(cb2.loss.weight, torch.ones(C))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        trainer_for(model2, cb2).train(resume_from_checkpoint=True)
    torch.testing.assert_close(cb2.loss.weight, expected)


DOCS = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"


def test_docs_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(example(DOCS, "transformers"), str(DOCS), "exec"), namespace)
    out = capsys.readouterr().out
    # every line the page says the example prints, as it prints it
    assert matching(out, printed(DOCS, "transformers")) == printed(DOCS, "transformers")
    printed_epochs = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(printed_epochs) == 4  # one evaluation per epoch
    cb = namespace["cb"]
    assert cb.accuracy is not None
    torch.testing.assert_close(
        cb.loss.weight,
        cdb_weights(cb.loss.accuracy, "dynamic-sigmoid", 0.01, True, max_ratio=10.0).float(),
    )
    assert not torch.allclose(cb.loss.weight, torch.ones(C))
