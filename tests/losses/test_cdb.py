"""CDBLoss and its functional form: equivalences, reductions, checkpoints, bad input."""

from __future__ import annotations

import functools
import io

import pytest
import torch
import torch.nn.functional as F

from cdbloss import (
    CDBLoss,
    ClassDifficulty,
    build_loss,
    cdb_cross_entropy,
    cdb_loss,
    cdb_weights,
    focal_loss,
)
from cdbloss.cdb import PAPER_RULE
from cdbloss.weighting import resolve_tau

# the paper's rule (these tests check its formulas; the recipe defaults have their own tests)
PaperCDBLoss = functools.partial(CDBLoss, **PAPER_RULE)

C = 5


def batch(
    seed: int = 0, n: int = 32, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, C, generator=g, dtype=dtype) * 3
    y = torch.randint(0, C, (n,), generator=g)
    return z, y


def grads(fn, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[no-untyped-def]
    z = z.clone().requires_grad_(True)
    out = fn(z)
    out.backward()
    assert z.grad is not None
    return out.detach(), z.grad


def test_starts_as_plain_cross_entropy() -> None:
    z, y = batch()
    loss = PaperCDBLoss(C)
    v1, g1 = grads(lambda t: loss(t, y), z)
    v2, g2 = grads(lambda t: F.cross_entropy(t, y), z)
    torch.testing.assert_close(v1, v2)
    torch.testing.assert_close(g1, g2)


@pytest.mark.parametrize("tau", ["dynamic", 0.5, 1.0, 2.0, 5.0])
def test_update_weights_then_loss_equals_weighted_cross_entropy(tau: float | str) -> None:
    z, y = batch(1)
    acc = torch.tensor([0.95, 0.5, 0.1, 0.7, 0.0], dtype=torch.float64)
    loss = PaperCDBLoss(C, tau=tau)
    loss.update_weights(acc)
    w = cdb_weights(acc, tau=tau)
    torch.testing.assert_close(loss.weight, w.float())
    v1, g1 = grads(lambda t: loss(t, y), z)
    v2, g2 = grads(lambda t: F.cross_entropy(t, y, weight=w), z)
    torch.testing.assert_close(v1, v2)
    torch.testing.assert_close(g1, g2)


def test_update_from_tracker_favours_the_harder_class() -> None:
    tracker = ClassDifficulty(2)
    tracker.update(torch.tensor([0, 0, 0, 0, 1, 0]), torch.tensor([0, 0, 0, 1, 1, 1]))
    loss = PaperCDBLoss(2)
    w = loss.update_weights(tracker)
    assert w[1] > w[0]
    assert float(loss.tau_value) == pytest.approx(2 / (1 + torch.e ** -(1.0 / (1 / 3 + 1e-4) - 1)))
    assert loss.accuracy.tolist() == pytest.approx([1.0, 1 / 3])


def test_reductions_by_hand() -> None:
    z, y = batch(2)
    w = torch.tensor([0.0, 0.5, 1.0, 2.0, 1.5], dtype=torch.float64)
    per = -F.log_softmax(z, dim=1).gather(1, y[:, None]).squeeze(1)
    wy = w[y]
    torch.testing.assert_close(cdb_cross_entropy(z, y, w, "none"), wy * per)
    torch.testing.assert_close(cdb_cross_entropy(z, y, w, "sum"), (wy * per).sum())
    torch.testing.assert_close(cdb_cross_entropy(z, y, w, "mean"), (wy * per).sum() / wy.sum())
    torch.testing.assert_close(cdb_cross_entropy(z, y, w, "sample_mean"), (wy * per).sum() / len(y))


def test_zero_total_weight_gives_zero_loss_and_zero_gradients() -> None:
    z, y = batch(3)
    y = torch.ones_like(y)  # every sample in class 1
    w = torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    for reduction in ("mean", "sample_mean", "sum"):
        v, g = grads(lambda t, r=reduction: cdb_cross_entropy(t, y, w, r), z)
        assert v.item() == 0.0 and torch.count_nonzero(g) == 0
    # all targets ignored, with zero and with positive weights, module and function
    y_ign = torch.full_like(y, -100)
    positive = torch.rand(C, dtype=torch.float64) + 0.1
    loss = PaperCDBLoss(C).double()
    for fn in (
        lambda t: cdb_cross_entropy(t, y_ign, w),
        lambda t: cdb_cross_entropy(t, y_ign, positive),
        lambda t: cdb_cross_entropy(t, y_ign, None),
        lambda t: loss(t, y_ign),
    ):
        v, g = grads(fn, z)
        assert v.item() == 0.0 and torch.count_nonzero(g) == 0


def test_cached_positivity_follows_every_change_of_the_weights() -> None:
    z, y = batch(9)
    y = torch.ones_like(y)
    loss = PaperCDBLoss(C).double()
    assert loss(z, y) > 0 and loss.weight_positive()
    loss.weight[1] = 0.0  # an in-place edit behind the module's back
    v, g = grads(lambda t: loss(t, y), z)
    assert v.item() == 0.0 and torch.count_nonzero(g) == 0
    loss.update_weights(torch.tensor([0.5, 0.5, 0.5, 0.5, 0.5]))
    assert loss.weight_positive()
    loss.load_state_dict(
        {**loss.state_dict(), "weighting.weight": torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0])}
    )
    assert not loss.weight_positive()


def test_every_class_perfect_gives_uniform_weights() -> None:
    loss = PaperCDBLoss(C, tau=1.0)
    assert loss.update_weights(torch.ones(C)).tolist() == [1.0] * C


def test_ignore_index() -> None:
    z, y = batch(4)
    y[::3] = 7
    w = torch.rand(C, dtype=torch.float64)
    got = cdb_cross_entropy(z, y, w, ignore_index=7)
    torch.testing.assert_close(got, F.cross_entropy(z, y, weight=w, ignore_index=7))


def test_focal_base_uses_weight_as_alpha() -> None:
    z, y = batch(5)
    loss = PaperCDBLoss(C, base="focal", gamma=2.0, tau=1.0)
    acc = torch.tensor([0.9, 0.8, 0.3, 0.5, 0.6])
    w = loss.update_weights(acc)
    torch.testing.assert_close(loss(z, y), focal_loss(z, y, w.double(), gamma=2.0))
    torch.testing.assert_close(loss(z, y), cdb_loss(z, y, loss.weight, base="focal", gamma=2.0))


def test_state_dict_round_trip_through_a_checkpoint_file() -> None:
    z, y = batch(6)
    loss = PaperCDBLoss(C, tau="dynamic")
    loss.update_weights(torch.tensor([0.99, 0.2, 0.6, 0.4, 0.8]))
    buf = io.BytesIO()
    torch.save({"loss": loss.state_dict()}, buf)
    buf.seek(0)
    fresh = PaperCDBLoss(C, tau="dynamic")
    assert not torch.equal(fresh.weight, loss.weight)
    fresh.load_state_dict(torch.load(buf)["loss"])
    assert torch.equal(fresh.weight, loss.weight)
    assert torch.equal(fresh.tau_value, loss.tau_value)
    torch.testing.assert_close(fresh(z, y), loss(z, y))


def test_weights_follow_the_module_device_and_dtype() -> None:
    loss = PaperCDBLoss(C).double()
    loss.update_weights(torch.tensor([0.9, 0.8, 0.3, 0.5, 0.6]))
    assert loss.weight.dtype == torch.float64
    z, y = batch(7, dtype=torch.float32)
    assert loss(z, y).dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"base": "dice"}, "base must be one of"),
        ({"reduction": "avg"}, "reduction must be one of"),
        ({"tau": -0.5}, ">= 0"),
        ({"tau": "auto"}, "dynamic"),
        ({"eps": 0}, "eps"),
        ({"gamma": -1.0}, "gamma"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PaperCDBLoss(C, **kwargs)  # type: ignore[arg-type]


def test_bad_update_and_forward_input() -> None:
    loss = PaperCDBLoss(C)
    with pytest.raises(ValueError, match=r"\(C,\) = \(5,\)"):
        loss.update_weights(torch.rand(4))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        loss.update_weights(torch.tensor([0.1, 0.2, 1.5, 0.3, 0.4]))
    z, y = batch(8)
    with pytest.raises(ValueError, match=r"weight must have shape \(C,\) = \(5,\)"):
        cdb_cross_entropy(z, y, torch.ones(3))
    with pytest.raises(ValueError, match=r"target values must lie in \[0, 5\)"):
        loss(z, torch.full_like(y, 5))
    with pytest.raises(ValueError, match="logits must have shape"):
        loss(z[0], y[:1])
    with pytest.raises(ValueError, match="integer class indices"):
        loss(z, y.double())
    with pytest.raises(ValueError, match=r"int64 \(torch.long\), got dtype torch.int32; convert"):
        loss(z, y.int())  # torch's kernels would refuse it later, less clearly
    with pytest.raises(ValueError, match=r"target must have shape \(N,\) = \(32,\)"):
        loss(z, y[:3])


def test_momentum_averages_the_accuracies_before_the_weights() -> None:
    loss = PaperCDBLoss(C, tau=1.0, momentum=0.75)
    a1 = torch.tensor([0.9, 0.2, 0.6, 0.4, 0.8], dtype=torch.float64)
    a2 = torch.tensor([0.1, 0.8, 0.6, 0.4, 0.0], dtype=torch.float64)
    # The first update takes the accuracy as it is: the paper's weights.
    torch.testing.assert_close(loss.update_weights(a1), cdb_weights(a1, tau=1.0).float())
    avg = 0.75 * a1 + 0.25 * a2
    torch.testing.assert_close(loss.update_weights(a2), cdb_weights(avg, tau=1.0).float())
    torch.testing.assert_close(loss.accuracy, avg)
    # The dynamic tau is read from the average too.
    dyn = PaperCDBLoss(C, tau="dynamic", momentum=0.75)
    dyn.update_weights(a1)
    dyn.update_weights(a2)
    assert float(dyn.tau_value) == pytest.approx(resolve_tau("dynamic", avg))


def test_momentum_damps_a_period_two_swing() -> None:
    # Accuracies that flip every epoch (the failure seen on the long tails):
    # without momentum the weights flip with them; with it they settle near even.
    flip = [torch.tensor([0.95, 0.05]), torch.tensor([0.05, 0.95])]
    plain, damped = PaperCDBLoss(2, tau=1.0), PaperCDBLoss(2, tau=1.0, momentum=0.9)
    for epoch in range(20):
        w_plain = plain.update_weights(flip[epoch % 2])
        w_damped = damped.update_weights(flip[epoch % 2])
    assert float(w_plain.max() / w_plain.min()) > 15
    assert float(w_damped.max() / w_damped.min()) < 1.6


def test_momentum_skips_classes_without_validation_samples() -> None:
    nan = float("nan")
    loss = PaperCDBLoss(3, tau=1.0, momentum=0.5)
    loss.update_weights(torch.tensor([0.2, nan, 0.6]))
    loss.update_weights(torch.tensor([0.4, 0.8, nan]))
    torch.testing.assert_close(loss.accuracy, torch.tensor([0.3, 0.8, 0.6], dtype=torch.float64))


def test_momentum_continues_after_a_checkpoint() -> None:
    a = [torch.tensor([0.9, 0.2, 0.6, 0.4, 0.8]), torch.tensor([0.3, 0.9, 0.5, 0.7, 0.1])]
    loss = PaperCDBLoss(C, momentum=0.9)
    loss.update_weights(a[0])
    buf = io.BytesIO()
    torch.save(loss.state_dict(), buf)
    buf.seek(0)
    fresh = PaperCDBLoss(C, momentum=0.9)
    fresh.load_state_dict(torch.load(buf))
    torch.testing.assert_close(fresh.update_weights(a[1]), loss.update_weights(a[1]))


@pytest.mark.parametrize("momentum", [1.0, -0.1, True, "0.9"])
def test_bad_momentum(momentum: object) -> None:
    with pytest.raises(ValueError, match=r"momentum must be a float in \[0, 1\)"):
        PaperCDBLoss(C, momentum=momentum)  # type: ignore[arg-type]


def test_momentum_checks_the_accuracy_before_averaging() -> None:
    loss = PaperCDBLoss(C, momentum=0.5)
    loss.update_weights(torch.full((C,), 0.5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        loss.update_weights(torch.tensor([0.1, 0.2, 1.5, 0.3, 0.4]))


def test_min_difficulty_keeps_a_perfect_class_in_the_loss() -> None:
    # The paper's rule drops a class that is perfect on validation (weight 0);
    # the floor gives it the weight of difficulty delta instead.
    acc = torch.tensor([0.9, 1.0], dtype=torch.float64)
    paper = PaperCDBLoss(2, tau=1.0)
    torch.testing.assert_close(paper.update_weights(acc), torch.tensor([2.0, 0.0]))
    floored = PaperCDBLoss(2, tau=1.0, min_difficulty=0.002)
    # d = (0.1, 0.002) -> w = 2 d / sum(d)
    expected = torch.tensor([2 * 0.1 / 0.102, 2 * 0.002 / 0.102])
    torch.testing.assert_close(floored.update_weights(acc), expected)
    # Above the floor nothing changes, and the dynamic tau is the paper's.
    acc = torch.tensor([0.9, 0.95], dtype=torch.float64)
    dyn, dyn_floored = PaperCDBLoss(2), PaperCDBLoss(2, min_difficulty=0.002)
    torch.testing.assert_close(dyn_floored.update_weights(acc), dyn.update_weights(acc))
    assert float(dyn_floored.tau_value) == float(dyn.tau_value)
    assert "min_difficulty=0.002" in repr(floored)
    assert "min_difficulty" not in repr(paper)


@pytest.mark.parametrize("value", [1.0, -0.01, float("nan"), True, "0.1"])
def test_bad_min_difficulty(value: object) -> None:
    with pytest.raises(ValueError, match=r"min_difficulty must be a float in \[0, 1\)"):
        PaperCDBLoss(C, min_difficulty=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"min_difficulty must be a float in \[0, 1\)"):
        cdb_weights([0.5, 1.0], min_difficulty=value)  # type: ignore[arg-type]


def test_solved_accuracy_takes_a_nearly_perfect_class_out_of_the_loss() -> None:
    acc = torch.tensor([0.9, 0.998, float("nan")], dtype=torch.float64)
    paper = PaperCDBLoss(3, tau=1.0).update_weights(acc)
    assert float(paper[1]) > 0  # one validation mistake in 500: still in the loss
    solved = PaperCDBLoss(3, tau=1.0, solved_accuracy=0.99).update_weights(acc)
    # d = (0.1, 0, NaN -> the mean weight of the measured classes, 0.05), normalised to 3
    torch.testing.assert_close(solved, torch.tensor([2.0, 0.0, 1.0]))
    # every class solved: uniform, as when every class is perfect
    all_solved = PaperCDBLoss(2, tau=1.0, solved_accuracy=0.9).update_weights(
        torch.tensor([0.95, 0.91])
    )
    torch.testing.assert_close(all_solved, torch.ones(2))
    assert "solved_accuracy=0.99" in repr(PaperCDBLoss(3, solved_accuracy=0.99))


@pytest.mark.parametrize("value", [0.0, 1.5, float("nan"), False, "0.99"])
def test_bad_solved_accuracy(value: object) -> None:
    with pytest.raises(ValueError, match=r"solved_accuracy must be a float in \(0, 1\]"):
        PaperCDBLoss(C, solved_accuracy=value)  # type: ignore[arg-type]


def test_floor_and_solved_threshold_are_not_combined() -> None:
    with pytest.raises(ValueError, match="set one of them"):
        PaperCDBLoss(C, min_difficulty=0.002, solved_accuracy=0.99)
    with pytest.raises(ValueError, match="set one of them"):
        cdb_weights([0.5, 1.0], min_difficulty=0.002, solved_accuracy=0.99)


# --- the difficulty as a logit offset (apply_as="offset") ------------------------------------


def test_offset_is_minus_log_relative_weight() -> None:
    from cdbloss import difficulty_offset

    w = torch.tensor([0.5, 1.0, 2.5])
    torch.testing.assert_close(difficulty_offset(w), -torch.log(w / w.mean()))
    torch.testing.assert_close(difficulty_offset(w, 2.0), -2.0 * torch.log(w / w.mean()))
    assert torch.equal(difficulty_offset(torch.ones(3)), torch.zeros(3))
    assert torch.isfinite(difficulty_offset(torch.tensor([0.0, 1.0, 2.0]))).all()


def test_offset_loss_is_the_unweighted_base_on_shifted_logits() -> None:
    counts = [90, 9, 1]
    loss = build_loss("cdb-bs-offset", 3, class_counts=counts, offset_scale=0.7)
    loss.update_weights(torch.tensor([0.9, 0.5, 0.1]))
    w = loss.weight
    z, y = torch.randn(10, 3), torch.randint(0, 3, (10,))
    prior = torch.log(torch.tensor(counts, dtype=torch.float32) / sum(counts))
    want = F.cross_entropy(z + prior - 0.7 * torch.log(w / w.mean()), y)
    torch.testing.assert_close(loss(z, y), want)
    # the harder class gets the lower training logit (its raw logit is pushed up)
    offset = -torch.log(w / w.mean())
    assert offset[2] < offset[1] < offset[0]


def test_offset_at_zero_scale_or_uniform_weights_is_the_base_loss() -> None:
    z, y = torch.randn(10, 3), torch.randint(0, 3, (10,))
    fresh = build_loss("cdb-ce-offset", 3)  # uniform weights before the first update
    torch.testing.assert_close(fresh(z, y), F.cross_entropy(z, y))
    off = build_loss("cdb-ce-offset", 3, offset_scale=0.0)
    off.update_weights(torch.tensor([0.9, 0.5, 0.1]))
    torch.testing.assert_close(off(z, y), F.cross_entropy(z, y))
    deferred = build_loss("cdb-ce-offset", 3, defer_until=5)
    deferred.set_epoch(0)
    deferred.update_weights(torch.tensor([0.9, 0.5, 0.1]))
    torch.testing.assert_close(deferred(z, y), F.cross_entropy(z, y))  # not switched on yet
    deferred.set_epoch(5)
    assert not torch.allclose(deferred(z, y), F.cross_entropy(z, y))


def test_offset_settings_are_checked_and_saved() -> None:
    with pytest.raises(ValueError, match="apply_as must be one of"):
        CDBLoss(3, apply_as="margin")
    with pytest.raises(ValueError, match="offset_scale must be"):
        CDBLoss(3, apply_as="offset", offset_scale=-1.0)
    saved = build_loss("cdb-ce-offset", 3).state_dict()
    with pytest.raises(ValueError, match="apply_as: checkpoint 'offset' != this 'weight'"):
        CDBLoss(3).load_state_dict(saved)
    CDBLoss(3, apply_as="offset").load_state_dict(saved)
