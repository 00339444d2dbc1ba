"""Every loss takes what ``nn.CrossEntropyLoss`` takes where it has a meaning for it.

Spatial logits ``(N, C, d1, ...)``, class-probability targets and
``label_smoothing``, each checked against ``F.cross_entropy(weight=w, ...)``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cdbloss import LOSSES, ClassDifficulty, build_loss, focal_loss, weighted_cross_entropy
from cdbloss.losses import is_multilabel, wants_difficulty, wants_epoch

C = 4
COUNTS = [500, 60, 12, 3]
ACC = torch.tensor([1.0, 0.6, 0.25, 0.0])
#: the single-label losses (the multi-label ones, targets (N, C), have tests/losses/test_multilabel.py)
NAMES = sorted(n for n in LOSSES if not is_multilabel(n))
#: losses whose every class term is a cross-entropy: equal to F.cross_entropy on (shifted) logits
CE_FAMILY = ["ce", "ifw", "ifw-sqrt", "cb-ce", "cdb-ce", "cdb-ce-paper", "cdb-ce-authors"]
#: losses on a cosine classifier (their logits are cosines in [-1, 1])
COSINE = ("dbm", "dbm-bs")
#: the losses that take probability targets (LDAM, DBM and EQL need a class index)
SOFT_OK = [n for n in NAMES if n not in ("ldam", "ldam-drw", "eql", *COSINE)]
TORCH_REDUCTIONS = ["none", "sum", "mean"]


def make(name: str, reduction: str = "mean", **options: object) -> nn.Module:
    loss = build_loss(name, C, class_counts=COUNTS, reduction=reduction, **options).double()
    if wants_epoch(loss):
        loss.set_epoch(200)  # type: ignore[operator]
    if wants_difficulty(loss):
        loss.update_weights(ACC)  # type: ignore[operator]
    return loss


def spatial_batch(seed: int = 0, ignore: bool = True) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(3, C, 5, 2, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (3, 5, 2), generator=g)
    if ignore:
        y[0, 0, 0] = y[2, 4, 1] = -100
    return z, y


def probs_like(z: Tensor, seed: int = 1) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(z.shape, generator=g, dtype=z.dtype).softmax(dim=1)


def rows(z: Tensor) -> Tensor:
    return z.movedim(1, -1).reshape(-1, z.shape[1])


def torch_form(loss: nn.Module, name: str, z: Tensor) -> tuple[Tensor, Tensor]:
    """The logits and class weights with which ``F.cross_entropy`` equals ``loss``."""
    shape = (-1, *([1] * (z.dim() - 2)))
    weight = loss.weight.double()
    shift = getattr(loss, "log_prior", None)
    if shift is not None:  # logit adjustment / Balanced Softmax: CE on z + tau log prior
        tau = getattr(loss, "tau", 1.0) if not name.startswith("cdb-bs") else 1.0
        z = z + tau * shift.double().reshape(shape)
    if getattr(loss, "apply_as", "weight") == "offset":  # the weights as logit offsets
        z = z - torch.log(weight / weight.mean()).reshape(shape)
        weight = torch.ones_like(weight)
    return z, weight


def seeded(loss: nn.Module, z: Tensor, y: Tensor) -> Tensor:
    torch.manual_seed(7)  # EQL draws its Bernoulli masks from the global RNG
    return loss(z, y)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "sample_mean"])
def test_spatial_logits_count_every_position_as_a_sample(name: str, reduction: str) -> None:
    loss = make(name, reduction)
    z, y = spatial_batch()
    if name in COSINE:
        z = torch.tanh(z)
    z.requires_grad_(True)
    out = seeded(loss, z, y)
    flat = seeded(loss, rows(z), y.reshape(-1))
    if reduction == "none":
        assert out.shape == y.shape
        flat = flat.reshape(y.shape)
    torch.testing.assert_close(out, flat)
    out.sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


@pytest.mark.parametrize("name", CE_FAMILY)
@pytest.mark.parametrize("reduction", TORCH_REDUCTIONS)
def test_spatial_ce_family_equals_torch(name: str, reduction: str) -> None:
    loss = make(name, reduction)
    z, y = spatial_batch()
    want = F.cross_entropy(z, y, weight=loss.weight.double(), reduction=reduction)
    torch.testing.assert_close(loss(z, y), want)


def test_spatial_shape_mismatch_is_a_clear_error() -> None:
    loss = make("cdb-ce")
    z, y = spatial_batch()
    with pytest.raises(ValueError, match=r"target \(N, d1, \.\.\.\).*expected target \(3, 5, 2\)"):
        loss(z, y[:, :4])


@pytest.mark.parametrize("name", SOFT_OK)
@pytest.mark.parametrize("reduction", TORCH_REDUCTIONS)
@pytest.mark.parametrize("layout", ["rows", "spatial"])
def test_probability_targets_equal_torch(name: str, reduction: str, layout: str) -> None:
    gamma = {"gamma": 0.0} if "focal" in name else {}
    loss = make(name, reduction, **gamma)
    z, _ = spatial_batch()
    if layout == "rows":
        z = rows(z)
    p = probs_like(z)
    zz, weight = torch_form(loss, name, z)
    want = F.cross_entropy(zz, p, weight=weight, reduction=reduction)
    torch.testing.assert_close(loss(z, p), want)


@pytest.mark.parametrize("name", SOFT_OK)
@pytest.mark.parametrize("reduction", TORCH_REDUCTIONS)
def test_label_smoothing_equals_torch(name: str, reduction: str) -> None:
    gamma = {"gamma": 0.0} if "focal" in name else {}
    loss = make(name, reduction, label_smoothing=0.15, **gamma)
    z, y = spatial_batch()
    zz, weight = torch_form(loss, name, z)
    want = F.cross_entropy(zz, y, weight=weight, reduction=reduction, label_smoothing=0.15)
    torch.testing.assert_close(loss(z, y), want)
    # and on (N, C) rows
    want_rows = F.cross_entropy(
        rows(zz),
        y.reshape(-1),
        weight=weight,
        reduction=reduction,
        label_smoothing=0.15,
    )
    got_rows = loss(rows(z), y.reshape(-1))
    torch.testing.assert_close(got_rows, want_rows)


def test_label_smoothing_and_probabilities_combine_as_torch() -> None:
    z, _ = spatial_batch()
    p = probs_like(z)
    w = torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=torch.float64)
    want = F.cross_entropy(z, p, weight=w, label_smoothing=0.2)
    torch.testing.assert_close(weighted_cross_entropy(z, p, w, label_smoothing=0.2), want)
    torch.testing.assert_close(focal_loss(z, p, w, gamma=0.0, label_smoothing=0.2), want)


def test_ldam_label_smoothing_smooths_the_shifted_cross_entropy() -> None:
    loss = make("ldam", "sum", label_smoothing=0.1)
    z, y = spatial_batch(ignore=False)
    zr, yr = rows(z), y.reshape(-1)
    shifted = loss.scale * (zr - F.one_hot(yr, C) * loss.margins[yr].unsqueeze(1))
    want = F.cross_entropy(shifted, yr, reduction="sum", label_smoothing=0.1)
    torch.testing.assert_close(loss(z, y), want)


def test_focal_with_probability_targets_weighs_every_class_term() -> None:
    z, _ = spatial_batch()
    z = rows(z)
    p = probs_like(z)
    alpha = torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=torch.float64)
    q = z.softmax(dim=1)
    per = -(alpha * p * (1 - q) ** 2 * q.log()).sum(dim=1)
    torch.testing.assert_close(focal_loss(z, p, alpha, gamma=2.0, reduction="none"), per)
    torch.testing.assert_close(focal_loss(z, p, alpha, gamma=2.0), per.mean())
    # gamma > 0 differs from cross-entropy: the focal factor is applied
    assert not torch.allclose(focal_loss(z, p, alpha, 2.0), F.cross_entropy(z, p, weight=alpha))


@pytest.mark.parametrize("name", ["ldam", "ldam-drw", "eql", *COSINE])
def test_losses_that_need_a_class_index_refuse_probabilities(name: str) -> None:
    loss = make(name)
    z, _ = spatial_batch()
    z = torch.tanh(z) if name in COSINE else z
    with pytest.raises(ValueError, match=r"probability targets .* are not supported"):
        loss(z, probs_like(z))


def test_eql_refuses_label_smoothing() -> None:
    with pytest.raises(ValueError, match="label_smoothing"):
        build_loss("eql", C, class_counts=COUNTS, label_smoothing=0.1)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), True])
def test_bad_label_smoothing_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match=r"label_smoothing must be a float in \[0, 1\]"):
        build_loss("ce", C, label_smoothing=bad)


def test_probability_target_of_another_shape_is_refused() -> None:
    z = torch.randn(6, C)
    with pytest.raises(ValueError, match="probability target must have the shape of logits"):
        weighted_cross_entropy(z, torch.rand(6, C + 1).softmax(dim=1))


def test_tracker_counts_every_pixel() -> None:
    z, y = spatial_batch()
    spatial, flat = ClassDifficulty(C), ClassDifficulty(C)
    spatial.update(z, y)
    flat.update(rows(z), y.reshape(-1))
    assert torch.equal(spatial.total, flat.total) and torch.equal(spatial.correct, flat.correct)
    assert int(spatial.total.sum()) == y.numel() - 2  # two ignored pixels
    preds = ClassDifficulty(C)
    preds.update(z.argmax(dim=1), y)
    assert torch.equal(preds.correct, spatial.correct)
    with pytest.raises(ValueError, match=r"logits must have shape \(N, C, d1, \.\.\.\)"):
        spatial.update(z[:, :3], y)


def test_cdb_train_source_counts_pixels_and_probability_argmax() -> None:
    loss = build_loss("cdb-ce", C, source="train")
    z, y = spatial_batch()
    loss(z.float(), y)
    counts = loss.weighting.train_counts
    assert counts is not None and int(counts.total.sum()) == y.numel() - 2
    counts.reset()
    p = probs_like(z).float()
    loss(z.float(), p)
    want = torch.bincount(p.argmax(dim=1).reshape(-1), minlength=C)
    assert torch.equal(counts.total, want)


def test_four_class_logits_on_a_three_class_loss_name_both_shapes() -> None:
    loss = build_loss("cdb-ce", 3)
    with pytest.raises(ValueError, match=r"logits \(2, 4\) have C = 4 classes .* shape \(3,\)"):
        loss(torch.randn(2, 4), torch.tensor([0, 1]))
