"""One shared suite: every registered loss through the same checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from cdbloss import (
    LOSSES,
    REDUCTIONS,
    balanced_softmax_loss,
    build_loss,
    cdb_loss,
    class_balanced_loss,
    dbm_loss,
    equalization_loss,
    focal_loss,
    inverse_frequency_cross_entropy,
    ldam_loss,
    logit_adjusted_loss,
    weighted_cross_entropy,
)
from cdbloss.losses import wants_difficulty, wants_epoch

C = 4
COUNTS = [500, 60, 12, 3]
#: the single-label losses; the multi-label ones (targets (N, C)) are tested in test_multilabel.py
NAMES = sorted(n for n, spec in LOSSES.items() if spec.task == "single-label")
ACC = torch.tensor([1.0, 0.6, 0.25, 0.0])


def make(name: str, reduction: str = "mean") -> nn.Module:
    loss = build_loss(name, C, class_counts=COUNTS, reduction=reduction).double()
    if wants_difficulty(loss):
        loss.update_weights(ACC)  # type: ignore[operator]
    if wants_epoch(loss):
        loss.set_epoch(1000)  # type: ignore[operator]  # past any DRW switch
    return loss


# How each module's forward is written with its public function.
Functional = Callable[[nn.Module, Tensor, Tensor], Tensor]
FUNCTIONAL: dict[str, Functional] = {
    "ce": lambda m, z, y: weighted_cross_entropy(z, y, None, m.reduction),
    "ifw": lambda m, z, y: inverse_frequency_cross_entropy(z, y, COUNTS, 1.0, m.reduction),
    "ifw-sqrt": lambda m, z, y: inverse_frequency_cross_entropy(z, y, COUNTS, 0.5, m.reduction),
    "focal": lambda m, z, y: focal_loss(z, y, None, 2.0, m.reduction),
    "cb-ce": lambda m, z, y: class_balanced_loss(z, y, COUNTS, 0.9999, "ce", reduction=m.reduction),
    "cb-focal": lambda m, z, y: class_balanced_loss(
        z, y, COUNTS, 0.9999, "focal", 2.0, m.reduction
    ),
    "ldam": lambda m, z, y: ldam_loss(z, y, m.margins, 30.0, None, m.reduction),
    "ldam-drw": lambda m, z, y: ldam_loss(z, y, m.margins, 30.0, m.weight, m.reduction),
    "balanced-softmax": lambda m, z, y: balanced_softmax_loss(z, y, COUNTS, m.reduction),
    "logit-adjusted": lambda m, z, y: logit_adjusted_loss(z, y, COUNTS, 1.0, None, m.reduction),
    "eql": lambda m, z, y: equalization_loss(z, y, COUNTS, None, 0.9, None, None, m.reduction),
    "cdb-ce": lambda m, z, y: cdb_loss(z, y, m.weight, "ce", reduction=m.reduction),
    "cdb-focal": lambda m, z, y: cdb_loss(z, y, m.weight, "focal", 2.0, m.reduction),
    "cdb-ce-paper": lambda m, z, y: cdb_loss(z, y, m.weight, "ce", reduction=m.reduction),
    "cdb-ce-authors": lambda m, z, y: cdb_loss(z, y, m.weight, "ce", reduction=m.reduction),
    "cdb-bs": lambda m, z, y: logit_adjusted_loss(z, y, COUNTS, 1.0, m.weight, m.reduction),
    "cdb-bs-offset": lambda m, z, y: logit_adjusted_loss(
        z - torch.log(m.weight / m.weight.mean()), y, COUNTS, 1.0, None, m.reduction
    ),
    "cdb-ce-offset": lambda m, z, y: weighted_cross_entropy(
        z - torch.log(m.weight / m.weight.mean()), y, None, m.reduction
    ),
    "dbm": lambda m, z, y: dbm_loss(z, y, m.class_margins, 30.0, 1.0, None, None, m.reduction),
    "dbm-bs": lambda m, z, y: dbm_loss(
        z, y, m.class_margins, 30.0, 1.0, m.log_prior, None, m.reduction
    ),
}
#: losses on a cosine classifier: their logits are cosines in [-1, 1]
COSINE = {"dbm", "dbm-bs"}


def logits_for(name: str, z: Tensor) -> Tensor:
    """``z`` as the logits loss ``name`` takes: squashed into [-1, 1] for the cosine losses."""
    return torch.tanh(z) if name in COSINE else z


def batch(seed: int = 0, n: int = 16) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, C, generator=g, dtype=torch.float64), torch.randint(
        0, C, (n,), generator=g
    )


def seeded(fn: Callable[[], Tensor]) -> Tensor:
    torch.manual_seed(1234)  # EQL draws its Bernoulli mask from the global RNG
    return fn()


def test_every_registered_loss_has_a_functional_form_here() -> None:
    assert set(FUNCTIONAL) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_module_equals_function(name: str, reduction: str) -> None:
    z, y = batch(1)
    z = logits_for(name, z)
    m = make(name, reduction)
    za, zb = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    a = seeded(lambda: m(za, y))
    b = seeded(lambda: FUNCTIONAL[name](m, zb, y))
    torch.testing.assert_close(a, b)
    a.sum().backward()
    b.sum().backward()
    torch.testing.assert_close(za.grad, zb.grad)


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_float64(name: str) -> None:
    z, y = batch(2, n=6)
    z = logits_for(name, z)
    m = make(name)
    if name == "eql":
        m.gamma = 1.0  # deterministic mask: gradcheck evaluates the loss many times
    z.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: m(t, y), (z,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_reductions_agree(name: str) -> None:
    z, y = batch(3)
    z = logits_for(name, z)
    none = seeded(lambda: make(name, "none")(z, y))
    assert none.shape == (len(y),)
    total = seeded(lambda: make(name, "sum")(z, y))
    torch.testing.assert_close(none.sum(), total)
    mean = seeded(lambda: make(name, "sample_mean")(z, y))
    torch.testing.assert_close(mean, total / len(y))


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip(name: str) -> None:
    z, y = batch(4)
    z = logits_for(name, z)
    m = make(name)
    fresh = build_loss(name, C, class_counts=COUNTS, reduction="mean").double()
    fresh.load_state_dict(m.state_dict())
    torch.testing.assert_close(seeded(lambda: fresh(z, y)), seeded(lambda: m(z, y)))


@pytest.mark.parametrize("name", NAMES)
def test_ignore_index_drops_samples(name: str) -> None:
    z, y = batch(5)
    z = logits_for(name, z)
    m = make(name, "sum")
    y_ign = y.clone()
    y_ign[::2] = -100
    full = seeded(lambda: make(name, "none")(z, y))
    got = seeded(lambda: m(z, y_ign))
    if name != "eql":  # EQL's random mask shifts with the rows kept; values differ by design
        torch.testing.assert_close(got, full[1::2].sum())
    assert seeded(lambda: make(name, "none")(z, y_ign))[::2].abs().sum() == 0


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_is_a_clear_value_error(name: str) -> None:
    m = make(name)
    z, y = batch(6)
    z = logits_for(name, z)
    with pytest.raises(ValueError, match="target values must lie in"):
        m(z, torch.full_like(y, C))
    with pytest.raises(ValueError, match="logits must have shape"):
        m(z[:, :, None], y)
    with pytest.raises(ValueError, match="target must have shape"):
        m(z, y[:-1])
    with pytest.raises(ValueError, match="reduction must be one of"):
        build_loss(name, C, class_counts=COUNTS, reduction="avg")


@pytest.mark.parametrize("name", NAMES)
def test_every_loss_module_derives_from_the_one_base_class(name: str) -> None:
    from cdbloss.losses import ClassWeightedLoss

    m = make(name)
    assert isinstance(m, ClassWeightedLoss)
    assert m.weight.shape == (C,) and m.num_classes == C and m.reduction == "mean"
    assert m.weight_positive() == bool((m.weight > 0).all())
    # one copy of the weights in the state: CDB keeps them in its weighting only
    keys = set(m.state_dict())
    assert ("weight" in keys) != ("weighting.weight" in keys)


def test_a_subclass_that_provides_weight_takes_none() -> None:
    from cdbloss.losses import ClassWeightedLoss

    with pytest.raises(ValueError, match="weight must be None"):
        ClassWeightedLoss(2, torch.ones(2), weight_buffer=False)
    loss = build_loss("cdb-ce", C)
    with pytest.raises(AttributeError, match="update_weights"):
        loss.weight = torch.ones(C)


def test_needs_counts_is_read_from_the_constructors() -> None:
    # the decorator derives it from a required class_counts argument; cdb-bs sets it
    needs = {name for name in NAMES if LOSSES[name].needs_counts}
    assert needs == {
        "ifw",
        "ifw-sqrt",
        "cb-ce",
        "cb-focal",
        "ldam",
        "ldam-drw",
        "balanced-softmax",
        "logit-adjusted",
        "eql",
        "cdb-bs",
        "cdb-bs-offset",
        "dbm",
        "dbm-bs",
    }
    for name in needs:
        with pytest.raises(ValueError, match=f"loss '{name}' needs class_counts"):
            build_loss(name, C)


def test_registry_errors() -> None:
    with pytest.raises(ValueError, match="unknown loss 'dice'; known: "):
        build_loss("dice", C)
    with pytest.raises(ValueError, match="needs class_counts"):
        build_loss("ifw", C)
    with pytest.raises(ValueError, match=r"unknown options \['alpha'\]"):
        build_loss("cdb-ce", C, alpha=1.0)


# Finite logits that pass the checks never give a NaN or inf loss or gradient,
# including logits of +-1e4 and classes with accuracy exactly 0 and 1.
extreme = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=32)
logit_rows = st.lists(st.one_of(extreme, st.sampled_from([-1e4, 1e4, 0.0])), min_size=C, max_size=C)


@pytest.mark.parametrize("name", NAMES)
@given(
    rows=st.lists(logit_rows, min_size=1, max_size=6),
    data=st.data(),
    acc=st.lists(st.sampled_from([0.0, 1.0, 0.5, float("nan")]), min_size=C, max_size=C),
    reduction=st.sampled_from(REDUCTIONS),
)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_no_nan_or_inf(
    name: str, rows: list[list[float]], data: st.DataObject, acc: list[float], reduction: str
) -> None:
    target = data.draw(st.lists(st.integers(0, C - 1), min_size=len(rows), max_size=len(rows)))
    m = build_loss(name, C, class_counts=COUNTS, reduction=reduction)
    if wants_difficulty(m):
        m.update_weights(torch.tensor(acc))  # type: ignore[operator]
    if wants_epoch(m):
        m.set_epoch(10_000)  # type: ignore[operator]
    z = logits_for(name, torch.tensor(rows, dtype=torch.float32)).requires_grad_(True)
    out = m(z, torch.tensor(target))
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_resolved_options_name_the_cdb_defaults_that_are_not_the_papers() -> None:
    from cdbloss.losses import LOSSES
    from cdbloss.losses.cdb import CDBLoss
    from cdbloss.losses.registry import register_loss, resolved_options

    @register_loss("cdb-smoothed")
    class Smoothed(CDBLoss):  # a CDB loss whose own defaults leave the paper's rule
        def __init__(self, num_classes: int, momentum: float = 0.9, **kw: Any) -> None:
            super().__init__(num_classes, momentum=momentum, **kw)

    assert resolved_options("ce", {"x": 1}) == {"x": 1}
    assert resolved_options("cdb-ce-paper", {}) == {}
    assert resolved_options("cdb-ce", {}) == {
        "tau": "dynamic-sigmoid",
        "eps": 0.01,
        "momentum": 0.9,
        "max_ratio": 10.0,
    }
    try:
        recipe = {"tau": "dynamic-sigmoid", "eps": 0.01, "max_ratio": 10.0}  # CDBLoss's own
        assert resolved_options("cdb-smoothed", {"tau": 1.0}) == {
            **recipe,
            "tau": 1.0,
            "momentum": 0.9,
        }
        assert resolved_options("cdb-smoothed", {"momentum": 0.0}) == {"momentum": 0.0, **recipe}
    finally:
        LOSSES.remove("cdb-smoothed")
    with pytest.raises(ValueError, match="unknown loss 'nope'"):
        resolved_options("nope", {})
