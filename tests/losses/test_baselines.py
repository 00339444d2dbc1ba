"""Each baseline loss against its formula written out by hand, and its special cases."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cdbloss import (
    balanced_softmax_loss,
    class_balanced_loss,
    drw_weights,
    equalization_loss,
    focal_loss,
    inverse_frequency_cross_entropy,
    ldam_loss,
    ldam_margins,
    logit_adjusted_loss,
)
from cdbloss.losses import LDAMLoss
from cdbloss.losses.equalization import tail_mask

C = 4
COUNTS = [400, 100, 20, 5]


def batch(seed: int = 0, n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, C, generator=g, dtype=torch.float64) * 2, torch.randint(
        0, C, (n,), generator=g
    )


def value_and_grad(fn, z):  # type: ignore[no-untyped-def]
    z = z.clone().requires_grad_(True)
    out = fn(z)
    out.backward()
    return out.detach(), z.grad


def assert_same(fn_a, fn_b, z) -> None:  # type: ignore[no-untyped-def]
    va, ga = value_and_grad(fn_a, z)
    vb, gb = value_and_grad(fn_b, z)
    torch.testing.assert_close(va, vb)
    torch.testing.assert_close(ga, gb)


def test_focal_by_hand() -> None:
    z, y = batch()
    alpha = torch.tensor([0.25, 1.0, 2.0, 0.5], dtype=torch.float64)
    p = F.softmax(z, dim=1)[torch.arange(len(y)), y]
    per = -alpha[y] * (1 - p) ** 2 * torch.log(p)
    torch.testing.assert_close(focal_loss(z, y, alpha, 2.0, "none"), per)
    torch.testing.assert_close(focal_loss(z, y, alpha, 2.0), per.sum() / alpha[y].sum())
    torch.testing.assert_close(
        focal_loss(z, y, None, 0.5, "sum"), (-((1 - p) ** 0.5) * torch.log(p)).sum()
    )


def test_focal_gamma_zero_is_cross_entropy_and_focal_is_smaller() -> None:
    z, y = batch(1)
    w = torch.tensor([0.5, 1.0, 3.0, 2.0], dtype=torch.float64)
    assert_same(lambda t: focal_loss(t, y, w, 0.0), lambda t: F.cross_entropy(t, y, weight=w), z)
    assert torch.all(focal_loss(z, y, None, 2.0, "none") <= F.cross_entropy(z, y, reduction="none"))


def test_ifw_by_hand() -> None:
    z, y = batch(2)
    w = torch.tensor([1 / n for n in COUNTS], dtype=torch.float64)
    assert_same(
        lambda t: inverse_frequency_cross_entropy(t, y, COUNTS),
        lambda t: F.cross_entropy(t, y, weight=w),
        z,
    )
    ws = torch.tensor([n**-0.5 for n in COUNTS], dtype=torch.float64)
    assert_same(
        lambda t: inverse_frequency_cross_entropy(t, y, COUNTS, power=0.5),
        lambda t: F.cross_entropy(t, y, weight=ws),
        z,
    )


def test_class_balanced_by_hand_and_beta_zero() -> None:
    z, y = batch(3)
    beta = 0.999
    w = torch.tensor([(1 - beta) / (1 - beta**n) for n in COUNTS], dtype=torch.float64)
    w = w * C / w.sum()
    torch.testing.assert_close(
        class_balanced_loss(z, y, COUNTS, beta, reduction="none"),
        F.cross_entropy(z, y, weight=w, reduction="none"),
        rtol=1e-6,
        atol=1e-7,
    )
    assert_same(
        lambda t: class_balanced_loss(t, y, COUNTS, 0.0), lambda t: F.cross_entropy(t, y), z
    )
    assert_same(
        lambda t: class_balanced_loss(t, y, COUNTS, 0.0, base="focal", gamma=1.5),
        lambda t: focal_loss(t, y, None, 1.5),
        z,
    )


def test_ldam_by_hand() -> None:
    z, y = batch(4)
    raw = [n**-0.25 for n in COUNTS]
    m = torch.tensor([0.5 * r / max(raw) for r in raw], dtype=torch.float64)
    torch.testing.assert_close(ldam_margins(COUNTS), m)
    s = 30.0
    shifted = z.clone()
    shifted[torch.arange(len(y)), y] -= m[y]
    assert_same(
        lambda t: ldam_loss(t, y, m, s),
        lambda t: F.cross_entropy(s * (t - (t - shifted).detach()), y),
        z,
    )
    assert_same(
        lambda t: ldam_loss(t, y, torch.zeros(C, dtype=torch.float64), 1.0),
        lambda t: F.cross_entropy(t, y),
        z,
    )


def test_drw_schedule() -> None:
    assert drw_weights(COUNTS, 159, 160).tolist() == [1.0] * C
    after = drw_weights(COUNTS, 160, 160, beta=0.9999)
    assert after[3] > after[0] and float(after.sum()) == pytest.approx(C)
    loss = LDAMLoss(C, COUNTS, drw_epoch=2)
    loss.set_epoch(1)
    assert loss.weight.tolist() == [1.0] * C
    loss.set_epoch(2)
    torch.testing.assert_close(loss.weight, after)


def test_logit_adjustment_by_hand() -> None:
    z, y = batch(5)
    prior = torch.tensor(COUNTS, dtype=torch.float64) / sum(COUNTS)
    assert_same(
        lambda t: logit_adjusted_loss(t, y, COUNTS, tau=0.7),
        lambda t: F.cross_entropy(t + 0.7 * torch.log(prior), y),
        z,
    )
    assert_same(
        lambda t: balanced_softmax_loss(t, y, COUNTS),
        lambda t: F.cross_entropy(t + torch.log(torch.tensor(COUNTS, dtype=torch.float64)), y),
        z,
    )


def test_equalization_by_hand() -> None:
    z, y = batch(6)
    tail = tail_mask(COUNTS)  # frequency below 1/C: classes 1, 2, 3 (100/525 < 0.25)
    assert tail.tolist() == [False, True, True, True]
    # gamma = 1: the tail classes' negative logits leave the softmax denominator
    expected = []
    for i in range(len(y)):
        keep = [k for k in range(C) if k == y[i] or not tail[k]]
        expected.append(-(z[i, y[i]] - torch.logsumexp(z[i, keep], dim=0)))
    torch.testing.assert_close(
        equalization_loss(z, y, COUNTS, gamma=1.0, reduction="none"), torch.stack(expected)
    )
    assert_same(
        lambda t: equalization_loss(t, y, COUNTS, gamma=0.0), lambda t: F.cross_entropy(t, y), z
    )
    assert_same(
        lambda t: equalization_loss(t, y, [10, 10, 10, 10], gamma=1.0),
        lambda t: F.cross_entropy(t, y),
        z,
    )


def test_equalization_randomness_is_seeded() -> None:
    z, y = batch(7, n=200)
    a = equalization_loss(z, y, COUNTS, gamma=0.5, generator=torch.Generator().manual_seed(3))
    b = equalization_loss(z, y, COUNTS, gamma=0.5, generator=torch.Generator().manual_seed(3))
    c = equalization_loss(z, y, COUNTS, gamma=0.5, generator=torch.Generator().manual_seed(4))
    assert a == b and a != c
    lo = equalization_loss(z, y, COUNTS, gamma=1.0)
    hi = equalization_loss(z, y, COUNTS, gamma=0.0)
    assert lo < a < hi  # dropping negatives can only lower the loss


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda z, y: class_balanced_loss(z, y, COUNTS[:3]), "one entry per class"),
        (lambda z, y: class_balanced_loss(z, y, COUNTS, beta=1.5), "beta"),
        (lambda z, y: class_balanced_loss(z, y, COUNTS, base="hinge"), "base must be one of"),
        (lambda z, y: inverse_frequency_cross_entropy(z, y, [1, 2, -3, 4]), ">= 0"),
        (lambda z, y: ldam_loss(z, y, torch.zeros(3)), "margins"),
        (lambda z, y: ldam_loss(z, y, torch.zeros(C), scale=0.0), "scale"),
        (lambda z, y: logit_adjusted_loss(z, y, [0, 0, 0, 0]), "all zero"),
        (lambda z, y: logit_adjusted_loss(z, y, COUNTS, tau=math.inf), "finite"),
        (lambda z, y: equalization_loss(z, y, COUNTS, gamma=1.5), "probability"),
        (lambda z, y: equalization_loss(z, y, COUNTS, threshold=2.0), "threshold"),
        (lambda z, y: focal_loss(z, y, gamma=-1.0), "gamma"),
    ],
)
def test_bad_arguments(call, match: str) -> None:  # type: ignore[no-untyped-def]
    z, y = batch(8)
    with pytest.raises(ValueError, match=match):
        call(z, y)
