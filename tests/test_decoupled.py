"""The decoupled baselines' pieces: tau-normalisation, post-hoc logit adjustment, MaxNorm,
the LWS scales and class-balanced sampling, each against its formula."""

from __future__ import annotations

import math

import pytest
import torch

import cdbloss
from cdbloss import (
    ClassScale,
    MaxNorm,
    class_balanced_indices,
    max_norm_,
    posthoc_logit_adjust,
    tau_normalize,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tau_norm_at_zero_is_the_identity_and_at_one_gives_unit_rows(seed: int) -> None:
    w = torch.randn(7, 5, generator=torch.Generator().manual_seed(seed)) * 3
    assert torch.equal(tau_normalize(w, 0.0), w)
    assert torch.allclose(tau_normalize(w, 1.0).norm(dim=1), torch.ones(7), atol=1e-6)


def test_tau_norm_matches_the_formula_and_keeps_directions() -> None:
    w = torch.tensor([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]], dtype=torch.float64)
    out = tau_normalize(w, 0.5)
    expected = torch.stack([w[i] / w[i].norm() ** 0.5 for i in range(3)])
    assert torch.allclose(out, expected)
    assert torch.allclose(
        torch.nn.functional.cosine_similarity(out, w), torch.ones(3, dtype=torch.float64)
    )
    assert torch.equal(tau_normalize(torch.zeros(2, 3), 1.0), torch.zeros(2, 3))  # no NaN


def test_tau_norm_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match=r"shape \(C, D\)"):
        tau_normalize(torch.ones(3), 1.0)
    with pytest.raises(ValueError, match="tau must be a finite number >= 0"):
        tau_normalize(torch.ones(2, 2), -0.5)
    with pytest.raises(ValueError, match="floating-point"):
        tau_normalize(torch.ones(2, 2, dtype=torch.long), 1.0)


def test_posthoc_adjustment_at_zero_is_the_identity_and_otherwise_subtracts_the_log_prior() -> None:
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    counts = [100, 10, 1]
    assert torch.equal(posthoc_logit_adjust(z, counts, 0.0), z)
    prior = torch.tensor(counts, dtype=torch.float64) / 111
    expected = z - 1.5 * prior.log().float()
    assert torch.allclose(posthoc_logit_adjust(z, counts, 1.5), expected)
    # a tail class gains most: equal logits now pick the rarest class
    assert int(posthoc_logit_adjust(torch.zeros(1, 3), counts, 1.0).argmax()) == 2


def test_posthoc_adjustment_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match=r"shape \(N, C\)"):
        posthoc_logit_adjust(torch.zeros(3), [1, 2, 3])
    with pytest.raises(ValueError, match="3 classes, logits have 2"):
        posthoc_logit_adjust(torch.zeros(2, 2), [1, 2, 3])
    with pytest.raises(ValueError, match="> 0"):
        posthoc_logit_adjust(torch.zeros(2, 2), [0, 2])
    with pytest.raises(ValueError, match="tau must be"):
        posthoc_logit_adjust(torch.zeros(2, 2), [1, 2], math.nan)


def test_max_norm_clips_long_rows_only_and_keeps_short_ones_bit_equal() -> None:
    w = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    short = w[1].clone()
    max_norm_(w, 1.0)
    assert torch.allclose(w[0], torch.tensor([0.6, 0.8]))
    assert torch.equal(w[1], short) and torch.equal(w[2], torch.zeros(2))
    with pytest.raises(ValueError, match="max_norm must be a finite number > 0"):
        max_norm_(w, 0.0)


def test_max_norm_bound_holds_after_every_step_of_a_training_loop() -> None:
    torch.manual_seed(0)
    head = torch.nn.Linear(6, 4)
    x, y = torch.randn(64, 6) * 5, torch.randint(0, 4, (64,))
    opt = torch.optim.SGD(head.parameters(), lr=2.0)  # large steps push the rows out
    bound = MaxNorm([head.weight], max_norm=0.5)
    bound.step()
    grew = 0
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(head(x), y).backward()
        opt.step()
        grew += int(head.weight.norm(dim=1).max() > 0.5 * (1 + 1e-6))
        bound.step()
        assert bound.largest_norm() <= 0.5 * (1 + 1e-6)
    assert grew > 0  # the steps did leave the ball: the projection did the work
    with pytest.raises(ValueError, match="at least one"):
        MaxNorm([], 1.0)


def test_class_scale_starts_as_the_identity_and_scales_each_class() -> None:
    scale = ClassScale(3)
    z = torch.randn(5, 3)
    assert torch.equal(scale(z), z)
    with torch.no_grad():
        scale.scale.copy_(torch.tensor([1.0, 2.0, 0.5]))
    assert torch.allclose(scale(z), z * torch.tensor([1.0, 2.0, 0.5]))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        scale(torch.zeros(2, 4))


def test_class_balanced_indices_draw_classes_evenly_and_are_seeded() -> None:
    targets = torch.tensor([0] * 900 + [1] * 90 + [2] * 10)
    g = torch.Generator().manual_seed(0)
    idx = class_balanced_indices(targets, 3, num_samples=30000, generator=g)
    share = torch.bincount(targets[idx], minlength=3).float() / 30000
    assert torch.allclose(share, torch.full((3,), 1 / 3), atol=0.02)
    assert len(set(idx[targets[idx] == 2].tolist())) == 10  # every tail example drawn
    again = class_balanced_indices(targets, 3, 30000, torch.Generator().manual_seed(0))
    assert torch.equal(idx, again)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        class_balanced_indices(targets, 2)


def test_exported_from_the_package() -> None:
    for name in ("tau_normalize", "posthoc_logit_adjust", "max_norm_", "MaxNorm", "ClassScale"):
        assert name in cdbloss.__all__


def test_the_docs_example_runs_and_prints_what_the_page_says() -> None:
    import contextlib
    import io
    from pathlib import Path

    from tests.docs_blocks import example, printed

    page = Path(__file__).resolve().parents[1] / "docs" / "decoupled.md"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(example(page, "decoupled"), str(page), "exec"), {})
    assert out.getvalue().splitlines() == printed(page, "decoupled")
