"""CDBWeighting: each option against a hand-written formula, state and resume, errors, the guard."""

from __future__ import annotations

import functools
import json
import math
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from cdbloss import CDBLoss, CDBWeighting, ClassDifficulty, SwingWarning
from cdbloss.cdb import PAPER_RULE

# the paper's rule (these tests check its formulas; the recipe defaults have their own tests)
PaperCDBLoss = functools.partial(CDBLoss, **PAPER_RULE)
PaperWeighting = functools.partial(CDBWeighting, **PAPER_RULE)

RESULTS = Path(__file__).resolve().parents[1] / "results"


def tracker_from(correct: list[int], total: list[int]) -> ClassDifficulty:
    t = ClassDifficulty(len(total))
    t.correct.copy_(torch.tensor(correct))
    t.total.copy_(torch.tensor(total))
    return t


def normalized(w: list[float]) -> list[float]:
    s = sum(w)
    return [len(w) * x / s for x in w]


# ---------------------------------------------------------------------- formulas


def test_paper_rule_by_hand() -> None:
    acc = [0.9, 0.5, 0.2]
    w = PaperWeighting(3, tau=2.0).update(torch.tensor(acc))
    torch.testing.assert_close(w, torch.tensor(normalized([(1 - a) ** 2 for a in acc])))


def test_dynamic_tau_eq3_and_the_authors_sigmoid_by_hand() -> None:
    acc = [0.9, 0.5, 0.2]
    b = 0.9 / (0.2 + 1e-4) - 1
    tau = 2 / (1 + math.exp(-b))
    eq3 = PaperWeighting(3, tau="dynamic")
    torch.testing.assert_close(
        eq3.update(torch.tensor(acc)), torch.tensor(normalized([(1 - a) ** tau for a in acc]))
    )
    assert float(eq3.tau_value) == pytest.approx(tau)
    sig = PaperWeighting(3, tau="dynamic-sigmoid", eps=0.01)
    tau_s = 1 / (1 + math.exp(-0.9 / (0.2 + 0.01)))
    torch.testing.assert_close(
        sig.update(torch.tensor(acc)), torch.tensor(normalized([(1 - a) ** tau_s for a in acc]))
    )


def test_cap_by_hand() -> None:
    acc = [1.0, 0.95, 0.5, 0.0]
    raw = [(1 - a) for a in acc]  # tau 1: [0, 0.05, 0.5, 1]
    capped = [max(x, max(raw) / 5.0) for x in raw]  # floor 0.2
    w = CDBWeighting(4, tau=1.0, max_ratio=5.0).update(torch.tensor(acc))
    torch.testing.assert_close(w, torch.tensor(normalized(capped)))
    assert float(w.max() / w.min()) == pytest.approx(5.0)


def test_momentum_by_hand() -> None:
    m = 0.9
    a1, a2 = [0.2, 0.8], [0.8, 0.2]
    w = CDBWeighting(2, tau=1.0, momentum=m)
    w.update(torch.tensor(a1))
    avg = [m * x + (1 - m) * y for x, y in zip(a1, a2, strict=True)]
    torch.testing.assert_close(
        w.update(torch.tensor(a2)), torch.tensor(normalized([1 - a for a in avg]))
    )
    torch.testing.assert_close(w.accuracy, torch.tensor(avg, dtype=torch.float64))


def test_prior_shrinks_small_classes_towards_the_pooled_accuracy() -> None:
    correct, total, s = [90, 1, 0], [100, 2, 1], 4.0
    pooled = sum(correct) / sum(total)
    acc = [(k + s * pooled) / (n + s) for k, n in zip(correct, total, strict=True)]
    w = CDBWeighting(3, tau=1.0, prior_strength=s)
    got = w.update(tracker_from(correct, total))
    torch.testing.assert_close(got, torch.tensor(normalized([1 - a for a in acc])))
    torch.testing.assert_close(w.accuracy, torch.tensor(acc, dtype=torch.float64))
    # without the prior the one-sample class would take weight 1 against the others' 0.1, 0.5
    assert float(got[2] / got[0]) < (1 - 0.0) / (1 - 0.9)


def test_deferral_keeps_uniform_weights_until_the_epoch_and_keeps_the_state() -> None:
    w = CDBWeighting(2, tau=1.0, momentum=0.5, defer_until=3)
    for epoch, acc in enumerate([[0.2, 0.8], [0.4, 0.6], [0.6, 0.4]]):
        w.set_epoch(epoch)
        assert w.update(torch.tensor(acc)).tolist() == [1.0, 1.0]
    # the moving average ran all along: 0.5 * (0.5 * 0.2 + 0.5 * 0.4) + 0.5 * 0.6 = 0.45
    torch.testing.assert_close(w.accuracy, torch.tensor([0.45, 0.55], dtype=torch.float64))
    w.set_epoch(3)
    torch.testing.assert_close(w.weight, torch.tensor(normalized([0.55, 0.45])))


def test_training_stream_counts_predictions_in_training_mode_only() -> None:
    loss = PaperCDBLoss(2, tau=1.0, source="train")
    logits = torch.tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 0.0]], requires_grad=True)
    target = torch.tensor([0, 0, 1, 1])
    loss(logits, target)  # class 0: 2/2, class 1: 1/2
    loss.eval()
    loss(logits, target)  # not counted
    loss.train()
    with torch.no_grad():
        loss(logits, target)  # not counted either
    weights = loss.update_weights(torch.tensor([0.0, 0.0]))  # the argument is not used
    torch.testing.assert_close(weights, torch.tensor([0.0, 2.0]))
    assert loss.weighting.train_counts is not None
    assert int(loss.weighting.train_counts.total.sum()) == 0  # read and reset


def test_training_stream_skips_ignored_targets() -> None:
    loss = PaperCDBLoss(2, tau=1.0, source="train", ignore_index=-1)
    loss(torch.tensor([[2.0, 0.0], [2.0, 0.0]]), torch.tensor([0, -1]))
    assert loss.weighting.train_counts is not None
    assert loss.weighting.train_counts.total.tolist() == [1, 0]


def test_balanced_softmax_base_by_hand() -> None:
    counts = [100, 10, 1]
    loss = PaperCDBLoss(3, tau=1.0, base="balanced-softmax", class_counts=counts)
    loss.update_weights(torch.tensor([0.9, 0.5, 0.0]))
    z = torch.randn(6, 3, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    adjusted = z + torch.log(torch.tensor(counts, dtype=torch.float64) / sum(counts))
    per = -torch.log_softmax(adjusted, dim=1)[torch.arange(6), y]
    w = loss.weight.double()[y]
    torch.testing.assert_close(loss.double()(z, y), (w * per).sum() / w.sum())


def test_preview_is_what_update_applies_for_every_option() -> None:
    settings: list[dict[str, Any]] = [
        {},
        {"momentum": 0.5},
        {"min_difficulty": 0.05},
        {"solved_accuracy": 0.9},
        {"max_ratio": 3.0},
        {"prior_strength": 2.0},
        {"tau": "dynamic-sigmoid", "eps": 0.01, "momentum": 0.9, "max_ratio": 10.0},
    ]
    for opts in settings:
        w = CDBWeighting(3, **opts)
        for correct in ([5, 9, 1], [9, 2, 10], [10, 10, 3]):
            t = tracker_from(correct, [10, 10, 10])
            expected, tau = w.preview(t)
            assert torch.equal(w.update(t), expected), opts
            assert float(w.tau_value) == tau


# ---------------------------------------------------------------------- state


def test_state_dict_resumes_to_the_same_weights() -> None:
    opts: dict[str, Any] = {"tau": "dynamic", "momentum": 0.7, "max_ratio": 8.0, "defer_until": 2}
    seq = [[0.1, 0.9, 0.5], [0.9, 0.1, 0.5], [0.2, 0.8, 0.6], [0.7, 0.3, 0.4], [0.5, 0.5, 0.9]]
    a = CDBWeighting(3, **opts)
    for epoch, acc in enumerate(seq[:3]):
        a.set_epoch(epoch)
        a.update(torch.tensor(acc))
    b = CDBWeighting(3, **opts)
    b.load_state_dict(a.state_dict())
    for epoch, acc in enumerate(seq[3:], start=3):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        assert torch.equal(a.update(torch.tensor(acc)), b.update(torch.tensor(acc)))
    assert torch.equal(a.accuracy, b.accuracy) and int(a.swing_run) == int(b.swing_run)


def test_training_counts_are_in_the_state_dict() -> None:
    loss = PaperCDBLoss(2, source="train")
    loss(torch.tensor([[2.0, 0.0]]), torch.tensor([0]))
    fresh = PaperCDBLoss(2, source="train")
    fresh.load_state_dict(loss.state_dict())
    assert fresh.weighting.train_counts is not None
    assert fresh.weighting.train_counts.total.tolist() == [1, 0]


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("opts", "match"),
    [
        ({"tau": "eq3"}, "tau must be"),
        ({"tau": -1.0}, "tau must be"),
        ({"source": "test"}, "source must be one of"),
        ({"defer_until": -1}, "defer_until must be an int >= 0"),
        ({"defer_until": 1.5}, "defer_until must be an int >= 0"),
        ({"max_ratio": 1.0}, "max_ratio must be None or a finite number > 1"),
        ({"max_ratio": 0.5}, "max_ratio must be None or a finite number > 1"),
        ({"momentum": 1.0}, r"momentum must be a float in \[0, 1\)"),
        ({"momentum": -0.1}, r"momentum must be a float in \[0, 1\)"),
        ({"prior_strength": -1.0}, "prior_strength must be a finite number >= 0"),
        ({"eps": 0.0}, "eps must be a finite number > 0"),
        ({"normalize": "yes"}, "normalize must be True or False"),
    ],
)
def test_bad_settings_are_refused_with_what_came(opts: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CDBWeighting(3, **opts)


def test_unknown_base_and_missing_counts() -> None:
    with pytest.raises(ValueError, match="base must be one of"):
        PaperCDBLoss(3, base="ldam")
    with pytest.raises(ValueError, match="needs class_counts"):
        PaperCDBLoss(3, base="balanced-softmax")


def test_prior_needs_counts_and_deferral_needs_set_epoch() -> None:
    with pytest.raises(ValueError, match="prior_strength needs per-class counts"):
        CDBWeighting(2, prior_strength=1.0).update(torch.tensor([0.5, 0.5]))
    with pytest.raises(RuntimeError, match="needs set_epoch"):
        CDBWeighting(2, defer_until=1).update(torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="resolved by the training engine"):
        CDBWeighting(2, defer_until="first-decay")  # type: ignore[arg-type]


def test_wrong_shapes_name_what_came() -> None:
    w = CDBWeighting(3)
    with pytest.raises(ValueError, match=r"shape \(C,\) = \(3,\), got \(2,\)"):
        w.update(torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="tracker counts 2 classes"):
        w.update(ClassDifficulty(2))


def test_options_and_repr_list_what_differs_from_the_paper() -> None:
    w = CDBWeighting(3, tau=1.0, max_ratio=None, defer_until=5)
    assert w.options() == {"tau": 1.0, "eps": 0.01, "momentum": 0.9, "defer_until": 5}
    assert "defer_until=5" in repr(w)
    assert PaperWeighting(3).options() == {}


def test_the_defaults_are_the_studied_recipe() -> None:
    recipe = {"tau": "dynamic-sigmoid", "eps": 0.01, "momentum": 0.9, "max_ratio": 10.0}
    assert CDBWeighting(3).options() == recipe
    assert CDBLoss(3).options() == recipe
    # by hand: tau = sigmoid(0.9 / (0.2 + 0.01)), first update as measured, floor 1/10 of the top
    acc = [0.9, 0.5, 0.2]
    tau = 1 / (1 + math.exp(-0.9 / 0.21))
    raw = [(1 - a) ** tau for a in acc]
    capped = [max(x, max(raw) / 10) for x in raw]
    torch.testing.assert_close(
        CDBLoss(3).update_weights(torch.tensor(acc)), torch.tensor(normalized(capped))
    )


# ---------------------------------------------------------------------- the guard


def _run_file(run: Path, name: str) -> str | None:
    """A committed run's file: from its folder, else from its grid's store (``runs.jsonl.gz``)."""
    from cdbloss.lab.experiments.store import read_run_file

    try:
        return read_run_file(run, name)
    except FileNotFoundError:
        return None


def _replay(run: Path, **opts: Any) -> tuple[int | None, float]:
    """Feed a committed run's validation accuracies to a weighting with its own settings.

    Returns the epoch at which the guard warned (None if never) and the largest
    difference between the recomputed and the logged weights.
    """
    metrics = _run_file(run, "metrics.jsonl")
    result = json.loads(_run_file(run, "result.json") or "{}")
    if metrics is not None:
        history = [json.loads(line) for line in metrics.splitlines()]
    else:
        history = result["history"]
    cfg = result["config"]
    keep = ("tau", "eps", "momentum", "normalize", "min_difficulty", "solved_accuracy")
    # these runs predate the recipe defaults: their settings are the paper's rule plus their options
    settings = PAPER_RULE | {k: v for k, v in cfg["loss"]["options"].items() if k in keep} | opts
    w = CDBWeighting(len(history[0]["val_per_class_accuracy"]), **settings)
    warned, diff = None, 0.0
    for h in history:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = w.update(torch.tensor(h["val_per_class_accuracy"], dtype=torch.float64))
        if any(issubclass(c.category, SwingWarning) for c in caught) and warned is None:
            warned = h["epoch"]
        diff = max(diff, float((out - torch.tensor(h["weights"])).abs().max()))
    return warned, diff


COLLAPSED = [
    "cifar10_lt/name=cdb-ce-paper__options=tau_dynamic__imbalance_factor=100__seed=0",
    "cifar10_lt_cpu/seed=0__name=cdb-ce__options=tau_dynamic__imbalance_factor=100",
    "cifar10_lt_cpu_extra_seeds/seed=1__name=cdb-ce__options=tau_dynamic__imbalance_factor=100",
    "mnist_lt/seed=0__name=cdb-ce__options=tau_dynamic__imbalance_factor=100",
    "fashion_mnist_lt/seed=0__name=cdb-ce__options=tau_dynamic__imbalance_factor=200",
]
SMOOTHED = [
    "mnist_lt/seed=0__name=cdb-ce__options=tau_dynamic_momentum_0.5__imbalance_factor=100",
    "fashion_mnist_lt/seed=0__name=cdb-ce__options=tau_dynamic_momentum_0.9__imbalance_factor=100",
    "cifar10_lt_cpu/seed=0__name=cdb-ce__options=tau_dynamic_momentum_0.5__imbalance_factor=100",
]


@pytest.mark.parametrize("run", COLLAPSED)
def test_guard_fires_on_the_committed_eq3_collapses(run: str) -> None:
    if _run_file(RESULTS / run, "result.json") is None:
        pytest.skip(f"results/{run} is not in this checkout")
    warned, diff = _replay(RESULTS / run)
    assert diff < 1e-5  # the weighting recomputes exactly the weights the run trained with
    assert warned is not None and warned <= 6


@pytest.mark.parametrize("run", SMOOTHED)
def test_guard_stays_quiet_on_the_committed_smoothed_runs(run: str) -> None:
    if _run_file(RESULTS / run, "result.json") is None:
        pytest.skip(f"results/{run} is not in this checkout")
    warned, diff = _replay(RESULTS / run)
    assert diff < 1e-5
    assert warned is None


def test_guard_warns_once_and_can_be_turned_off() -> None:
    flip = [torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0])]
    w = PaperWeighting(2, tau=1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for k in range(10):
            w.update(flip[k % 2])
    assert sum(issubclass(c.category, SwingWarning) for c in caught) == 1
    off = PaperWeighting(2, tau=1.0, swing_patience=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for k in range(10):
            off.update(flip[k % 2])


def _study_runs(*names: str) -> list[Path]:
    """The long-tail study's committed runs of these losses whose weights came from validation.

    Only runs whose ``result.json`` keeps every epoch's history (a long run's is thinned).
    """
    from cdbloss.lab.experiments.store import result_sources

    runs = []
    study = RESULTS / "longtail_study"
    for path, stored in result_sources(study) if study.exists() else []:
        result = json.loads(path.read_text()) if stored is None else stored
        loss = result["config"]["loss"]
        whole = len(result["history"]) == result["config"]["train"]["epochs"]
        if whole and loss["name"] in names and loss["options"].get("source", "val") == "val":
            runs.append(path.parent)
    return runs


def _replay_study_run(run: Path) -> tuple[int | None, float]:
    """Replay a study run through the weighting its own config builds (with the deferral)."""
    from cdbloss.losses import build_loss

    result = json.loads(_run_file(run, "result.json") or "{}")
    loss = result["config"]["loss"]
    num_classes = len(result["class_counts"])
    built = build_loss(
        loss["name"], num_classes, class_counts=result["class_counts"], **loss["options"]
    )
    w = built.weighting
    warned, diff = None, 0.0
    for h in result["history"]:
        w.set_epoch(h["epoch"] - 1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            w.update(torch.tensor(h["val_per_class_accuracy"], dtype=torch.float64))
        if any(issubclass(c.category, SwingWarning) for c in caught) and warned is None:
            warned = h["epoch"]
        diff = max(diff, float((w.weight - torch.tensor(h["weights"])).abs().max()))
    return warned, diff


def test_guard_is_silent_on_every_study_run_of_the_recipe_and_fires_on_the_authors_preset() -> None:
    recipe = _study_runs("cdb-ce", "cdb-bs")
    recipe = [r for r in recipe if "tau_dynamic-sigmoid" in r.name]
    authors = _study_runs("cdb-ce-authors")
    if not recipe or not authors:
        pytest.skip("results/longtail_study is not in this checkout")
    assert len(recipe) >= 60
    for run in recipe:
        warned, diff = _replay_study_run(run)
        assert diff < 1e-5, run  # the weights the run logged are the ones its config builds
        assert warned is None, run
    fired = [_replay_study_run(run)[0] for run in authors]
    assert all(epoch is not None for epoch in fired), fired


def test_swing_advice_on_two_classes_does_not_advise_the_cap() -> None:
    """README: keep the paper's uncapped rule for two classes; the warning must not say otherwise."""
    two = [torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0])]
    three = [torch.tensor([0.0, 1.0, 1.0]), torch.tensor([1.0, 0.0, 0.0])]
    messages = {}
    for flip in (two, three):
        w = PaperWeighting(len(flip[0]), tau=1.0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for k in range(10):
                w.update(flip[k % 2])
        (msg,) = [str(c.message) for c in caught if issubclass(c.category, SwingWarning)]
        messages[len(flip[0])] = msg
    assert "max_ratio=10" not in messages[2] and "uncapped rule best" in messages[2]
    assert "max_ratio=10" in messages[3]
