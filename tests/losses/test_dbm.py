"""DBM (Son et al. 2025): the class and instance margins, the Balanced Softmax stacking, the checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cdbloss import DBMLoss, build_loss, dbm_loss
from cdbloss.losses import dbm_class_margins

COUNTS = [400, 100, 25, 4]


def test_class_margins_grow_as_the_class_gets_rarer() -> None:
    m = dbm_class_margins(COUNTS, max_margin=0.4, power=0.5)
    want = torch.tensor([0.4 * (4 / n) ** 0.5 for n in COUNTS], dtype=torch.float64)
    torch.testing.assert_close(m, want)
    assert float(m[-1]) == pytest.approx(0.4)  # the rarest class gets K
    assert torch.equal(
        dbm_class_margins(COUNTS, 0.4, 0.0), torch.full((4,), 0.4, dtype=torch.float64)
    )


def by_hand(cos: torch.Tensor, y: torch.Tensor, m: torch.Tensor, s: float, lam: float,
            prior: torch.Tensor | None) -> torch.Tensor:  # fmt: skip
    """Per-sample DBM losses written out row by row."""
    out = []
    for i in range(len(y)):
        c = int(y[i])
        theta = math.acos(float(cos[i, c]))
        wrong = int(cos[i].argmax()) != c
        margin = float(m[c]) * (1 + lam * 0.5 * (1 - float(cos[i, c])) * wrong)
        row = s * cos[i].clone()
        row[c] = s * math.cos(min(theta + margin, math.pi))
        if prior is not None:
            row = row + prior
        out.append(-torch.log_softmax(row, dim=0)[c])
    return torch.stack(out)


@pytest.mark.parametrize("base", ["ce", "balanced-softmax"])
def test_loss_is_the_margined_cross_entropy(base: str) -> None:
    g = torch.Generator().manual_seed(0)
    cos = torch.rand(12, 4, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.randint(0, 4, (12,), generator=g)
    loss = DBMLoss(4, COUNTS, base=base, max_margin=0.5, power=0.25, scale=16.0).double()
    prior = loss.log_prior.double() if base == "balanced-softmax" else None
    want = by_hand(cos, y, loss.class_margins, 16.0, 1.0, prior)
    torch.testing.assert_close(loss.__class__(4, COUNTS, base=base, max_margin=0.5, scale=16.0,
                                              reduction="none").double()(cos, y), want)  # fmt: skip
    torch.testing.assert_close(loss(cos, y), want.mean())
    # with the Balanced Softmax base the prior is added: the two bases differ
    other = DBMLoss(4, COUNTS, base="ce" if base != "ce" else "balanced-softmax").double()
    assert not torch.allclose(other(cos, y), loss(cos, y))


def test_instance_margin_only_for_misclassified_samples() -> None:
    cos = torch.tensor([[0.9, 0.1, 0.0, -0.2], [0.1, 0.8, 0.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 0])  # row 0 right, row 1 wrong
    kw = {"class_margins": torch.full((4,), 0.2, dtype=torch.float64), "scale": 10.0,
          "reduction": "none"}  # fmt: skip
    without = dbm_loss(cos, y, instance_scale=0.0, **kw)
    with_inst = dbm_loss(cos, y, instance_scale=3.0, **kw)
    assert with_inst[0] == without[0]  # correctly classified: class margin only
    assert with_inst[1] > without[1]  # misclassified: a wider margin, a larger loss


def test_zero_margin_is_scaled_cosine_cross_entropy() -> None:
    cos = torch.rand(8, 4, dtype=torch.float64) * 2 - 1
    y = torch.randint(0, 4, (8,))
    got = dbm_loss(cos, y, torch.zeros(4, dtype=torch.float64), scale=30.0)
    torch.testing.assert_close(got, F.cross_entropy(30.0 * cos, y), atol=1e-4, rtol=1e-4)


def test_angle_is_capped_at_pi_and_gradients_stay_finite() -> None:
    cos = torch.tensor([[-1.0, 1.0], [1.0, -1.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 0])
    out = dbm_loss(cos, y, torch.full((2,), 3.0, dtype=torch.float64), scale=5.0,
                   reduction="none")  # fmt: skip
    # target at angle pi plus a margin: the widened cosine stays at -1 (no wrap-around)
    want = -torch.log_softmax(torch.tensor([-5.0, 5.0], dtype=torch.float64), 0)[0]
    torch.testing.assert_close(out[0], want, atol=1e-4, rtol=1e-5)
    out.sum().backward()
    assert cos.grad is not None and torch.isfinite(cos.grad).all()


def test_plain_logits_are_refused_naming_the_cosine_head() -> None:
    loss = build_loss("dbm-bs", 4, class_counts=COUNTS)
    with pytest.raises(ValueError, match="normed_linear"):
        loss(torch.randn(5, 4) * 10, torch.zeros(5, dtype=torch.long))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"base": "focal"}, "base must be one of"),
        ({"max_margin": 0.0}, "max_margin must be"),
        ({"power": -1.0}, "power must be"),
        ({"scale": 0.0}, "scale must be"),
        ({"instance_scale": -0.5}, "instance_scale must be"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DBMLoss(4, COUNTS, **kwargs)  # type: ignore[arg-type]


def test_registry_names() -> None:
    assert build_loss("dbm-bs", 4, class_counts=COUNTS).base == "balanced-softmax"
    assert build_loss("dbm", 4, class_counts=COUNTS).base == "ce"
    with pytest.raises(ValueError, match="needs class_counts"):
        build_loss("dbm-bs", 4)
