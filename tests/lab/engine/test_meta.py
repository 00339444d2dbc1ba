"""L2RW and Meta-Weight-Net training steps (cdbloss.lab.engine.meta).

References are computed independently of the torch.func path: closed-form
gradients of a linear softmax model, per-example autograd loops, and an
explicit-tensor re-implementation of the Meta-Weight-Net step.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cdbloss import build_loss
from cdbloss.lab.engine.meta import L2RWStep, MetaStep, MetaWeightNet, MetaWeightNetStep
from cdbloss.lab.models import build_model

DT = torch.float64


def _linear(d: int, c: int, seed: int) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(d, c).to(DT)


def _data(n: int, d: int, c: int, seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=DT), torch.randint(0, c, (n,), generator=g)


def _closed_form_dots(
    model: nn.Linear, x: Tensor, y: Tensor, xv: Tensor, yv: Tensor, lr_w: float, lr_b: float
) -> Tensor:
    """``alpha <grad l_i, grad L_val>`` for a linear softmax model, without autograd.

    For ``z = W x + b``: ``d l_i / d W = (p_i - e_{y_i}) x_i^T``, ``d l_i / d b = p_i - e_{y_i}``.
    """
    with torch.no_grad():
        c = model.out_features
        g = F.softmax(x @ model.weight.T + model.bias, dim=1) - F.one_hot(y, c).to(DT)  # (N, C)
        gv = (F.softmax(xv @ model.weight.T + model.bias, dim=1) - F.one_hot(yv, c).to(DT)) / len(
            yv
        )
        val_w = gv.T @ xv  # (C, D): gradient of the mean validation CE w.r.t. W
        val_b = gv.sum(0)  # (C,)
        return lr_w * ((g @ val_w) * x).sum(1) + lr_b * (g @ val_b)


def _normalised(w_tilde: Tensor) -> Tensor:
    w = w_tilde.clamp(min=0)
    return w / w.sum()


# -- (a) L2RW weights against independent references ------------------------------------------


@pytest.mark.parametrize("two_groups", [False, True])
def test_l2rw_weights_match_closed_form_linear_softmax(two_groups: bool) -> None:
    model = _linear(5, 3, seed=0)
    x, y = _data(16, 5, 3, seed=1)
    xv, yv = _data(12, 5, 3, seed=2)
    lr_w, lr_b = (0.3, 0.05) if two_groups else (0.3, 0.3)
    groups = [{"params": [model.weight], "lr": lr_w}, {"params": [model.bias], "lr": lr_b}]
    opt = torch.optim.SGD(groups)
    expected = _normalised(_closed_form_dots(model, x, y, xv, yv, lr_w, lr_b))
    # some kept, some dropped: the comparison covers both branches of max(-g, 0)
    assert 0 < int((expected == 0).sum()) < len(expected)

    w0, b0 = model.weight.detach().clone(), model.bias.detach().clone()
    step = L2RWStep(model)
    stats = step(x, y, xv, yv, opt)
    assert step.last_weights is not None
    torch.testing.assert_close(step.last_weights, expected, rtol=0, atol=1e-10)

    # the real step is plain SGD on sum_i w_i l_i(theta), at the old theta
    with torch.no_grad():
        g = F.softmax(x @ w0.T + b0, dim=1) - F.one_hot(y, 3).to(DT)
        grad_w = (expected[:, None] * g).T @ x
        grad_b = (expected[:, None] * g).sum(0)
    torch.testing.assert_close(model.weight.detach(), w0 - lr_w * grad_w, rtol=0, atol=1e-12)
    torch.testing.assert_close(model.bias.detach(), b0 - lr_b * grad_b, rtol=0, atol=1e-12)

    losses0 = F.cross_entropy(x @ w0.T + b0, y, reduction="none")
    assert stats["loss"] == pytest.approx(float((expected * losses0).sum()), abs=1e-12)
    assert stats["loss_mean"] == pytest.approx(float(losses0.mean()), abs=1e-12)
    assert stats["weight_mean"] == pytest.approx(1 / 16)
    assert stats["weights_zero_frac"] == pytest.approx(float((expected == 0).double().mean()))
    assert stats["skipped"] == 0.0


class _BNNet(nn.Module):
    """MLP with BatchNorm: per-example losses of a batch are coupled through the batch statistics."""

    def __init__(self, d: int = 4, c: int = 3) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d, 8)
        self.bn = nn.BatchNorm1d(8)
        self.fc2 = nn.Linear(8, c)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.fc2(torch.tanh(self.bn(self.fc1(x))))
        return out


def test_l2rw_weights_match_per_example_gradients_with_batchnorm() -> None:
    """Reference: alpha <grad l_i, grad L_val>, by one backward per example on copies of the model."""
    torch.manual_seed(3)
    model = _BNNet().to(DT).train()
    x, y = _data(10, 4, 3, seed=4)
    xv, yv = _data(7, 4, 3, seed=5)
    lr = 0.2

    ref = copy.deepcopy(model)
    params = list(ref.parameters())
    losses = F.cross_entropy(ref(x), y, reduction="none")
    per_example = [
        torch.cat([g.flatten() for g in torch.autograd.grad(losses[i], params, retain_graph=True)])
        for i in range(len(y))
    ]
    ref_val = copy.deepcopy(model)  # train mode: validation batch statistics, own buffers
    val_grad = torch.cat(
        [
            g.flatten()
            for g in torch.autograd.grad(F.cross_entropy(ref_val(xv), yv), ref_val.parameters())
        ]
    )
    expected = _normalised(lr * torch.stack([gi @ val_grad for gi in per_example]))
    assert 0 < int((expected == 0).sum()) < len(expected)

    step = L2RWStep(model)
    w, _, _ = step.weights(x, y, xv, yv, torch.optim.SGD(model.parameters(), lr=lr))
    torch.testing.assert_close(w, expected, rtol=0, atol=1e-10)


def test_l2rw_weights_do_not_depend_on_a_single_lookahead_lr() -> None:
    model = _linear(5, 3, seed=6)
    x, y = _data(20, 5, 3, seed=7)
    xv, yv = _data(10, 5, 3, seed=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    small, _, _ = L2RWStep(model, lookahead_lr=1e-3).weights(x, y, xv, yv, opt)
    large, _, _ = L2RWStep(model, lookahead_lr=10.0).weights(x, y, xv, yv, opt)
    default, _, _ = L2RWStep(model).weights(x, y, xv, yv, opt)
    torch.testing.assert_close(small, large, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(small, default, rtol=1e-9, atol=1e-12)


def test_l2rw_all_zero_weights_give_no_update() -> None:
    """Every training example contradicts the validation batch: no step at all, even with momentum."""
    model = _linear(2, 2, seed=9)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    step = L2RWStep(model)
    x = torch.tensor([[1.0, 2.0]], dtype=DT).repeat(6, 1)
    xv = x[:4].clone()
    yv = torch.zeros(4, dtype=torch.long)
    # a normal step first, so that momentum and weight decay would move the parameters
    first = step(x, torch.zeros(6, dtype=torch.long), xv, yv, opt)
    assert first["skipped"] == 0.0
    before = [p.detach().clone() for p in model.parameters()]
    stats = step(x, torch.ones(6, dtype=torch.long), xv, yv, opt)  # all labels contradict
    assert stats["skipped"] == 1.0
    assert stats["weights_zero_frac"] == 1.0
    assert stats["loss"] == 0.0
    assert step.last_weights is not None and not bool(step.last_weights.any())
    for p, b in zip(model.parameters(), before, strict=True):
        assert torch.equal(p.detach(), b)


# -- (b) L2RW gives lower weight to mislabeled examples -----------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_l2rw_downweights_mislabeled_examples(seed: int) -> None:
    """Two Gaussian blobs, 30 % of the training labels flipped, clean validation set.

    Averaged over all the weights L2RW gives in 3 epochs (90 steps), a flipped
    example gets much less weight than a clean one. Weights blind to the
    labels would give a ratio of 1 (+- about 0.05 with ~360 flipped examples);
    over seeds 0..9 this setting gave 0.16 to 0.43 (0.2 to 0.5 with centres
    at +-1.5, where the classes overlap). A flipped example is not always
    dropped: on a confident linear model the validation gradient is dominated
    by a few examples near the boundary and by the bias, so examples of the
    class the bias is pushed towards can align with it whatever their label.
    """
    g = torch.Generator().manual_seed(seed)
    n, n_val, d = 1200, 60, 2

    def blobs(m: int) -> tuple[Tensor, Tensor]:
        y = torch.randint(0, 2, (m,), generator=g)
        x = torch.randn(m, d, generator=g) + (2.0 * y - 1.0)[:, None] * torch.tensor([2.5, 0.0])
        return x, y

    x, y_clean = blobs(n)
    flipped = torch.rand(n, generator=g) < 0.3
    y = torch.where(flipped, 1 - y_clean, y_clean)
    xv, yv = blobs(n_val)

    torch.manual_seed(seed)
    model = nn.Linear(d, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    step = L2RWStep(model)
    total = torch.zeros(n)
    count = torch.zeros(n)
    for _ in range(3):
        perm = torch.randperm(n, generator=g)
        for idx in perm.split(40):
            step(x[idx], y[idx], xv, yv, opt)
            assert step.last_weights is not None
            total[idx] += step.last_weights * len(idx)  # 1 = an average weight
            count[idx] += 1
    mean_w = total / count
    noisy, clean = float(mean_w[flipped].mean()), float(mean_w[~flipped].mean())
    assert noisy < 0.6 * clean, (noisy, clean)
    with torch.no_grad():
        accuracy = float((model(xv).argmax(1) == yv).double().mean())
    assert accuracy > 0.95


# -- (c) Meta-Weight-Net ------------------------------------------------------------------------


def _mwn_reference(
    w: Tensor,
    b: Tensor,
    vnet: MetaWeightNet,
    x: Tensor,
    y: Tensor,
    xv: Tensor,
    yv: Tensor,
    alpha: float,
    meta_lr: float,
    normalize: bool,
) -> tuple[list[Tensor], Tensor]:
    """One MWN meta step on a linear model held as explicit tensors (no nn.Module, no torch.func).

    Returns the meta-net parameters after plain SGD(meta_lr) and the weights of the real step.
    """
    w = w.detach().clone().requires_grad_(True)
    b = b.detach().clone().requires_grad_(True)
    phi = [p.detach().clone().requires_grad_(True) for p in vnet.parameters()]

    def v_of(losses: Tensor, params: list[Tensor]) -> Tensor:
        h = torch.relu(losses[:, None] @ params[0].T + params[1])
        return torch.sigmoid(h @ params[2].T + params[3]).squeeze(1)

    def coef(v: Tensor) -> Tensor:
        return v / v.sum() if normalize else v / len(v)

    losses = F.cross_entropy(x @ w.T + b, y, reduction="none")
    c = coef(v_of(losses.detach(), phi))
    gw, gb = torch.autograd.grad((c * losses).sum(), (w, b), create_graph=True)
    w2, b2 = w - alpha * gw, b - alpha * gb
    meta_loss = F.cross_entropy(xv @ w2.T + b2, yv)
    grads = torch.autograd.grad(meta_loss, phi)
    new_phi = [(p - meta_lr * gp).detach() for p, gp in zip(phi, grads, strict=True)]
    return new_phi, coef(v_of(losses.detach(), new_phi)).detach()


@pytest.mark.parametrize("normalize", [True, False])
def test_mwn_step_matches_explicit_reference(normalize: bool) -> None:
    model = _linear(5, 3, seed=10)
    x, y = _data(16, 5, 3, seed=11)
    xv, yv = _data(12, 5, 3, seed=12)
    alpha, meta_lr, lr = 0.5, 50.0, 0.2
    step = MetaWeightNetStep(
        model,
        lookahead_lr=alpha,
        meta_optimizer=lambda ps: torch.optim.SGD(ps, lr=meta_lr),
        normalize=normalize,
    )
    step.meta_net.to(DT)
    vnet0 = copy.deepcopy(step.meta_net)
    w0, b0 = model.weight.detach().clone(), model.bias.detach().clone()
    new_phi, w_ref = _mwn_reference(w0, b0, vnet0, x, y, xv, yv, alpha, meta_lr, normalize)

    opt = torch.optim.SGD(model.parameters(), lr=lr)
    stats = step(x, y, xv, yv, opt)

    # (b) phi moved, by exactly the meta-optimizer's step on the meta gradient
    for p, p0, pr in zip(step.meta_net.parameters(), vnet0.parameters(), new_phi, strict=True):
        assert not torch.equal(p.detach(), p0.detach())
        torch.testing.assert_close(p.detach(), pr, rtol=0, atol=1e-10)

    # (c) the real step used the weights of the *updated* net
    assert step.last_weights is not None
    torch.testing.assert_close(step.last_weights, w_ref, rtol=0, atol=1e-12)
    with torch.no_grad():
        v_old = vnet0(F.cross_entropy(x @ w0.T + b0, y, reduction="none"))
        w_old = v_old / v_old.sum() if normalize else v_old / len(v_old)
    assert float((w_ref - w_old).abs().max()) > 1e-6  # the test tells old from new V apart

    with torch.no_grad():
        g = F.softmax(x @ w0.T + b0, dim=1) - F.one_hot(y, 3).to(DT)
        expected_w = w0 - lr * (w_ref[:, None] * g).T @ x
        expected_b = b0 - lr * (w_ref[:, None] * g).sum(0)
    torch.testing.assert_close(model.weight.detach(), expected_w, rtol=0, atol=1e-12)
    torch.testing.assert_close(model.bias.detach(), expected_b, rtol=0, atol=1e-12)
    assert set(stats) == {"loss", "loss_mean", "meta_loss", "weight_mean", "weights_zero_frac"}
    assert 0 < stats["weight_mean"] < 1


def test_mwn_default_meta_optimizer_is_the_class_imbalance_setting() -> None:
    step = MetaWeightNetStep(nn.Linear(3, 2))
    opt = step.meta_optimizer
    assert isinstance(opt, torch.optim.SGD)
    group = opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (
        1e-5,
        0.9,
        True,
        5e-4,
    )
    adam = MetaWeightNetStep(nn.Linear(3, 2), meta_optimizer="adam").meta_optimizer
    assert isinstance(adam, torch.optim.Adam)
    assert (adam.param_groups[0]["lr"], adam.param_groups[0]["weight_decay"]) == (1e-3, 1e-4)
    sizes = [tuple(p.shape) for p in step.meta_net.parameters()]
    assert sizes == [(100, 1), (100,), (1, 100), (1,)]


def test_mwn_state_dict_round_trip() -> None:
    torch.manual_seed(13)
    model = nn.Linear(4, 3)
    x, y = torch.randn(12, 4), torch.randint(0, 3, (12,))
    xv, yv = torch.randn(8, 4), torch.randint(0, 3, (8,))
    step = MetaWeightNetStep(model, meta_optimizer="adam", meta_lr=1e-2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        step(x, y, xv, yv, opt)
    state = copy.deepcopy(step.state_dict())
    model_copy = copy.deepcopy(model)

    torch.manual_seed(99)  # a different fresh meta-net
    restored = MetaWeightNetStep(model_copy, meta_optimizer="adam", meta_lr=1e-2)
    assert not torch.equal(restored.meta_net.fc1.weight, step.meta_net.fc1.weight)
    restored.load_state_dict(state)
    for a, b in zip(restored.meta_net.parameters(), step.meta_net.parameters(), strict=True):
        assert torch.equal(a, b)
    assert restored.meta_optimizer.state_dict()["state"][0]["step"] == 2

    opt_copy = torch.optim.SGD(model_copy.parameters(), lr=0.1)
    s1 = step(x, y, xv, yv, opt)
    s2 = restored(x, y, xv, yv, opt_copy)
    assert s1 == s2
    for a, b in zip(restored.meta_net.parameters(), step.meta_net.parameters(), strict=True):
        assert torch.equal(a, b)

    with pytest.raises(ValueError, match="'meta_net' and 'meta_optimizer'"):
        restored.load_state_dict({"meta_net": state["meta_net"]})
    l2rw = L2RWStep(model)
    assert l2rw.state_dict() == {}
    l2rw.load_state_dict({})
    with pytest.raises(ValueError, match="no state"):
        l2rw.load_state_dict({"x": 1})


def test_both_steps_satisfy_the_protocol() -> None:
    model = nn.Linear(3, 2)
    assert isinstance(L2RWStep(model), MetaStep)
    assert isinstance(MetaWeightNetStep(model), MetaStep)


# -- (d) BatchNorm running statistics -----------------------------------------------------------


class _SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)
        self.bn_out = nn.BatchNorm1d(3)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn(self.conv(x))).mean(dim=(2, 3))
        out: Tensor = self.bn_out(self.fc(h))
        return out


Factory = Callable[..., L2RWStep | MetaWeightNetStep]


@pytest.mark.parametrize("make", [L2RWStep, MetaWeightNetStep], ids=["l2rw", "mwn"])
def test_batchnorm_buffers_see_only_the_training_forward(make: Factory) -> None:
    """After a step, every buffer equals what ONE plain training-mode forward of x gives."""
    torch.manual_seed(14)
    model = _SmallCNN().train()
    x, y = torch.randn(6, 1, 5, 5), torch.randint(0, 3, (6,))
    xv = 5.0 * torch.randn(4, 1, 5, 5) + 10.0  # statistics far from the training batch's
    yv = torch.randint(0, 3, (4,))
    reference = copy.deepcopy(model)
    with torch.no_grad():
        reference(x)
    step = make(model)
    step(x, y, xv, yv, torch.optim.SGD(model.parameters(), lr=0.1))
    buffers = dict(model.named_buffers())
    expected = dict(reference.named_buffers())
    assert set(buffers) == set(expected) and len(buffers) == 6
    for name, buf in buffers.items():
        assert torch.equal(buf, expected[name]), name
    assert int(buffers["bn.num_batches_tracked"]) == 1
    assert model.training


@pytest.mark.parametrize("make", [L2RWStep, MetaWeightNetStep], ids=["l2rw", "mwn"])
@pytest.mark.parametrize(("name", "shape"), [("lenet5", (1, 28, 28)), ("resnet32", (3, 32, 32))])
def test_runs_on_the_paper_models(make: Factory, name: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(15)
    model = build_model(name, num_classes=4).train()
    reference = copy.deepcopy(model)
    x, y = torch.randn(4, *shape), torch.randint(0, 4, (4,))
    xv, yv = torch.randn(4, *shape) + 3.0, torch.randint(0, 4, (4,))
    with torch.no_grad():
        reference(x)
    before = [p.detach().clone() for p in model.parameters()]
    stats = make(model)(x, y, xv, yv, torch.optim.SGD(model.parameters(), lr=0.05))
    assert all(math.isfinite(v) for v in stats.values())
    for (n, buf), ref in zip(model.named_buffers(), reference.buffers(), strict=True):
        assert torch.equal(buf, ref), n
    if stats.get("skipped", 0.0) == 0.0:
        assert any(
            not torch.equal(p.detach(), b) for p, b in zip(model.parameters(), before, strict=True)
        )


@pytest.mark.parametrize("make", [L2RWStep, MetaWeightNetStep], ids=["l2rw", "mwn"])
@pytest.mark.parametrize("loss_name", ["focal", "cdb-ce", "ifw"])
def test_registered_losses_with_reduction_none(make: Factory, loss_name: str) -> None:
    """The step weights and trains on the registered loss's own per-sample values."""
    torch.manual_seed(16)
    model = nn.Linear(4, 3).to(DT)
    loss_fn = build_loss(loss_name, 3, class_counts=[10, 5, 1], reduction="none")
    if loss_name == "cdb-ce":  # weights away from uniform, so CDB-CE is not plain CE
        loss_fn.update_weights(torch.tensor([0.9, 0.5, 0.2], dtype=DT))
    x, y = _data(9, 4, 3, seed=17)
    xv, yv = _data(6, 4, 3, seed=18)
    reference = copy.deepcopy(model)
    with torch.no_grad():
        losses = loss_fn(reference(x), y)  # (9,)
    assert not torch.allclose(losses, F.cross_entropy(reference(x), y, reduction="none"))

    step = make(model, loss_fn)
    stats = step(x, y, xv, yv, torch.optim.SGD(model.parameters(), lr=0.1))
    w = step.last_weights
    assert w is not None and w.shape == (9,) and float(w.sum()) > 0
    assert stats["loss_mean"] == pytest.approx(float(losses.mean()), rel=1e-9)
    assert stats["loss"] == pytest.approx(float((w * losses).sum()), rel=1e-9)
    # the real step: plain SGD on sum_i w_i l_i(theta) of the registered loss
    opt = torch.optim.SGD(reference.parameters(), lr=0.1)
    (w * loss_fn(reference(x), y)).sum().backward()
    opt.step()
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_device_follows_the_model() -> None:
    model = nn.Linear(4, 3).cuda()
    x, y = torch.randn(8, 4).cuda(), torch.randint(0, 3, (8,)).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for make in (L2RWStep, MetaWeightNetStep):
        step = make(model)
        step(x, y, x, y, opt)
        assert step.last_weights is not None and step.last_weights.is_cuda
    assert next(MetaWeightNetStep(model).meta_net.parameters()).is_cuda


# -- (e) bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [L2RWStep, MetaWeightNetStep], ids=["l2rw", "mwn"])
def test_bad_batches_raise(make: Factory) -> None:
    model = nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    step = make(model)
    x, y = torch.randn(5, 4), torch.randint(0, 3, (5,))
    with pytest.raises(ValueError, match=r"training batch: .*disagree on the batch size"):
        step(x, y[:4], x, y, opt)
    with pytest.raises(ValueError, match=r"validation batch: .*disagree on the batch size"):
        step(x, y, x[:3], y, opt)
    with pytest.raises(ValueError, match=r"targets must have shape \(N,\)"):
        step(x, y[:, None], x, y, opt)
    with pytest.raises(ValueError, match="integer class indices"):
        step(x, y.float(), x, y, opt)
    with pytest.raises(ValueError, match="empty batch"):
        step(x[:0], y[:0], x, y, opt)
    with pytest.raises(ValueError, match=r"torch\.optim\.Optimizer"):
        step(x, y, x, y, "sgd")  # type: ignore[arg-type]
    other = torch.optim.SGD(nn.Linear(4, 3).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="holds none of the model's trainable parameters"):
        step(x, y, x, y, other)
    with pytest.raises(ValueError, match=r"one row per sample"):
        bad = nn.Sequential(nn.Linear(4, 3), nn.Flatten(0))  # (N, 3) -> (3 N,)
        make(bad)(x, y, x, y, torch.optim.SGD(bad.parameters(), lr=0.1))


@pytest.mark.parametrize("make", [L2RWStep, MetaWeightNetStep], ids=["l2rw", "mwn"])
def test_losses_that_are_not_per_sample_raise(make: Factory) -> None:
    model = nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(5, 4), torch.randint(0, 3, (5,))
    with pytest.raises(ValueError, match=r"reduction='none'.*got reduction='mean'"):
        make(model, build_loss("ce", 3))
    with pytest.raises(ValueError, match=r"reduction='none'.*got reduction='mean'"):
        make(model, nn.CrossEntropyLoss())
    with pytest.raises(ValueError, match=r"per-sample losses of shape \(N,\) = \(5,\), got \(\)"):
        make(model, lambda z, t: F.cross_entropy(z, t))(x, y, x, y, opt)
    with pytest.raises(ValueError, match=r"shape \(N,\) = \(5,\), got \(5, 1\)"):
        make(model, lambda z, t: F.cross_entropy(z, t, reduction="none")[:, None])(x, y, x, y, opt)
    with pytest.raises(ValueError, match="does not depend on the model's parameters"):
        make(model, lambda z, t: F.cross_entropy(z.detach(), t, reduction="none"))(x, y, x, y, opt)
    with pytest.raises(ValueError, match="val_loss_fn must return a scalar"):
        make(model, val_loss_fn=lambda z, t: F.cross_entropy(z, t, reduction="none"))(
            x, y, x, y, opt
        )


def test_bad_options_raise() -> None:
    model = nn.Linear(4, 3)
    for lr in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="lookahead_lr must be finite and > 0"):
            L2RWStep(model, lookahead_lr=lr)
    with pytest.raises(ValueError, match=r"model must be an nn\.Module"):
        L2RWStep(lambda t: t)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="model has no parameters"):
        MetaWeightNetStep(nn.ReLU())
    with pytest.raises(ValueError, match="meta_optimizer must be 'sgd', 'adam'"):
        MetaWeightNetStep(model, meta_optimizer="rmsprop")
    with pytest.raises(ValueError, match="meta_lr must be finite and > 0"):
        MetaWeightNetStep(model, meta_lr=0.0)
    with pytest.raises(ValueError, match="hidden must be an int >= 1"):
        MetaWeightNetStep(model, hidden=0)
    with pytest.raises(ValueError, match="normalize must be a bool"):
        MetaWeightNetStep(model, normalize="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"MetaWeightNet expects losses of shape \(N,\)"):
        MetaWeightNet()(torch.ones(3, 1))
