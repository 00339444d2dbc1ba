"""The multi-label losses against hand computations and torch's BCE."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cdbloss import MultiLabelDifficulty, cdb_weights, class_balanced_weights
from cdbloss.losses import LOSSES, build_loss, is_multilabel, wants_difficulty
from cdbloss.losses.multilabel import (
    asymmetric_loss,
    binary_focal_loss,
    distribution_balanced_loss,
    rebalanced_weights,
)

ML = ["bce", "focal-bce", "cb-bce", "db-loss", "asl", "cdb-bce", "cdb-focal-bce"]
COUNTS = [40, 10, 2]


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randint(
        0, 2, (6, 3), generator=g
    )


def _sig(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def test_bce_matches_torch_with_and_without_mask() -> None:
    z, y = _batch()
    ref = F.binary_cross_entropy_with_logits(z, y.double())
    assert float(build_loss("bce", 3)(z, y)) == pytest.approx(float(ref), rel=1e-12)
    masked = y.clone()
    masked[0, 1] = masked[4, 2] = -100
    keep = masked != -100
    ref_el = F.binary_cross_entropy_with_logits(z, y.double(), reduction="none")
    got = build_loss("bce", 3)(z, masked)
    assert float(got) == pytest.approx(float(ref_el[keep].mean()), rel=1e-12)
    none = build_loss("bce", 3, reduction="none")(z, masked)
    assert none[0, 1] == 0 and none.shape == (6, 3)


def test_weighted_focal_by_hand() -> None:
    z = torch.tensor([[0.3, -1.2]], dtype=torch.float64)
    y = torch.tensor([[1, 0]])
    wp, wn = torch.tensor([2.0, 3.0]), torch.tensor([0.5, 4.0])
    p0, p1 = _sig(0.3), _sig(-1.2)
    hand = 2.0 * (1 - p0) ** 2 * -math.log(p0) + 4.0 * p1**2 * -math.log(1 - p1)
    got = binary_focal_loss(z, y, 2.0, wp, wn, reduction="sum")
    assert float(got) == pytest.approx(hand, rel=1e-12)


def test_class_balanced_bce_weights_both_terms() -> None:
    z, y = _batch(1)
    w = class_balanced_weights(COUNTS, 0.99).double()
    el = F.binary_cross_entropy_with_logits(z, y.double(), reduction="none") * w
    got = build_loss("cb-bce", 3, class_counts=COUNTS, beta=0.99)(z, y)
    assert float(got) == pytest.approx(float(el.mean()), rel=1e-6)


def test_asymmetric_loss_by_hand() -> None:
    z = torch.tensor([[1.0, 0.2, -3.0]], dtype=torch.float64)
    y = torch.tensor([[1, 0, 0]])
    p = [_sig(v) for v in (1.0, 0.2, -3.0)]
    pm1, pm2 = max(p[1] - 0.05, 0.0), max(p[2] - 0.05, 0.0)
    hand = (1 - p[0]) * -math.log(p[0]) + pm1**4 * -math.log(1 - pm1) + pm2**4 * -math.log(1 - pm2)
    got = asymmetric_loss(z, y, gamma_pos=1.0, gamma_neg=4.0, clip=0.05, reduction="sum")
    assert float(got) == pytest.approx(hand, rel=1e-9)
    assert pm2 == 0.0  # the margin discards an easy negative entirely


def test_rebalanced_weights_by_hand() -> None:
    y = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    w = rebalanced_weights(y, torch.tensor([40.0, 10.0, 2.0]))
    rate = 1 / 40 + 1 / 10
    hand = [0.1 + _sig(10 * ((1 / n) / rate - 0.2)) for n in (40, 10, 2)]
    assert w[0].tolist() == pytest.approx(hand)
    assert w[1].tolist() == pytest.approx([1.1, 1.1, 1.1])  # no positive: r = inf


def test_distribution_balanced_loss_by_hand() -> None:
    z = torch.tensor([[0.4, -0.7, 0.1]], dtype=torch.float64)
    y = torch.tensor([[1, 0, 0]])
    counts, n = [40, 10, 2], 100
    r_hat = [0.1 + _sig(10 * ((1 / c) / (1 / 40) - 0.2)) for c in counts]
    total = 0.0
    for c in range(3):
        s = z[0, c].item() - 0.05 * math.log(n / counts[c] - 1)
        if y[0, c]:
            bce, w = math.log1p(math.exp(-s)), r_hat[c]
        else:
            bce, w = math.log1p(math.exp(2 * s)), r_hat[c] / 2
        total += w * bce * (1 - math.exp(-bce)) ** 2 * 2
    got = distribution_balanced_loss(z, y, torch.tensor(counts), n, reduction="sum")
    assert float(got) == pytest.approx(total, rel=1e-9)
    no_focal = distribution_balanced_loss(
        z, y, torch.tensor(counts), n, gamma=0.0, kappa=0.0, lam=1.0
    )
    ref = (
        F.binary_cross_entropy_with_logits(z, y.double(), reduction="none")
        * torch.tensor(r_hat, dtype=torch.float64)
    ).mean()
    assert float(no_focal) == pytest.approx(float(ref), rel=1e-9)


def test_cdb_bce_weights_come_from_the_tracker_via_the_cdb_rule() -> None:
    z, y = _batch(2)
    tracker = MultiLabelDifficulty(3)
    tracker.update(z, y)
    loss = build_loss("cdb-bce", 3, momentum=0.0, tau=1.0, max_ratio=None)
    assert wants_difficulty(loss)
    assert torch.equal(loss.weight, torch.ones(3))  # uniform before the first update
    w = loss.update_weights(tracker)
    expected = cdb_weights(tracker.compute("balanced-accuracy"), tau=1.0, eps=0.01)
    assert w.tolist() == pytest.approx(expected.tolist())
    el = F.binary_cross_entropy_with_logits(z, y.double(), reduction="none")
    assert float(loss(z, y)) == pytest.approx(float((el * w.double()).mean()), rel=1e-6)
    pos_only = build_loss("cdb-bce", 3, momentum=0.0, tau=1.0, max_ratio=None, terms="positive")
    pos_only.update_weights(tracker)
    yd = y.double()
    ref = (el * (yd * w.double() + (1 - yd))).mean()
    assert float(pos_only(z, y)) == pytest.approx(float(ref), rel=1e-6)


def test_cdb_bce_state_round_trips() -> None:
    a = build_loss("cdb-focal-bce", 3, measure="f1")
    a.update_weights(torch.tensor([0.9, 0.5, 0.2]))
    b = build_loss("cdb-focal-bce", 3, measure="f1")
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.weight, b.weight)
    assert torch.equal(a.weighting.accuracy, b.weighting.accuracy)
    assert a.gamma == 2.0


def test_registry_tells_tasks_apart() -> None:
    assert [n for n in LOSSES if is_multilabel(n)] == sorted(ML, key=list(LOSSES).index)
    assert set(ML) <= {n for n in LOSSES if is_multilabel(n)}
    assert not is_multilabel("cdb-ce")
    with pytest.raises(ValueError, match="needs class_counts"):
        build_loss("db-loss", 3, num_samples=100)


def test_bad_input_is_refused() -> None:
    loss = build_loss("bce", 3)
    with pytest.raises(ValueError, match=r"C = 3"):
        loss(torch.zeros(2, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="0, 1 or ignore_index"):
        loss(torch.zeros(2, 3), torch.full((2, 3), 2))
    with pytest.raises(ValueError, match=r"shape \(N, C\)"):
        loss(torch.zeros(2, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="num_samples"):
        build_loss("db-loss", 3, class_counts=COUNTS, num_samples=1)
    with pytest.raises(ValueError, match="terms"):
        build_loss("cdb-bce", 3, terms="negative")
    with pytest.raises(ValueError, match="4 labels"):
        build_loss("cdb-bce", 3).update_weights(MultiLabelDifficulty(4))
