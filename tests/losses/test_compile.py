"""The hot path compiles with ``fullgraph=True`` and runs under ``torch.func``."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from cdbloss import CDBLoss, build_loss

C = 3
COUNTS = [40, 9, 2]
#: a spread of the registered losses: the CDB ones, focal, a shifted CE, a margin loss
NAMES = ["cdb-ce", "cdb-ce-paper", "cdb-focal", "cb-focal", "ce", "focal", "balanced-softmax"]


def model_and_loss(name: str, **options: object) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    loss = build_loss(name, C, class_counts=COUNTS, **options)
    if hasattr(loss, "update_weights"):
        loss.update_weights(torch.tensor([0.9, 0.5, 0.2]))
    return nn.Linear(6, C), loss


def data(n: int = 8) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 6, generator=g), torch.randint(0, C, (n,), generator=g)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.1}])
def test_model_plus_loss_step_has_no_graph_break(name: str, options: dict[str, float]) -> None:
    model, loss = model_and_loss(name, **options)

    def step(x: Tensor, y: Tensor) -> Tensor:
        return loss(model(x), y)

    x, y = data()
    explained = torch._dynamo.explain(step)(x, y)
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1


def test_fullgraph_compile_of_a_training_step_matches_eager() -> None:
    model, loss = model_and_loss("cdb-ce")
    x, y = data()
    torch._dynamo.reset()
    compiled = torch.compile(lambda a, b: loss(model(a), b), fullgraph=True, backend="aot_eager")
    out = compiled(x, y)
    out.backward()
    assert model.weight.grad is not None
    torch.testing.assert_close(out, loss(model(x), y))


def test_spatial_and_probability_targets_compile_without_break() -> None:
    loss = CDBLoss(C)
    loss.update_weights(torch.tensor([0.9, 0.5, 0.2]))
    z = torch.randn(2, C, 4, 4)
    y = torch.randint(0, C, (2, 4, 4))
    p = torch.rand(2, C, 4, 4).softmax(dim=1)
    for target in (y, p):
        explained = torch._dynamo.explain(loss)(z, target)
        assert explained.graph_break_count == 0, explained.break_reasons


@pytest.mark.parametrize("name", NAMES)
def test_per_sample_gradients_under_vmap_grad(name: str) -> None:
    model, loss = model_and_loss(name)
    params = {k: v.detach() for k, v in model.named_parameters()}
    x, y = data()

    def one(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        return loss(functional_call(model, p, (xi.unsqueeze(0),)), yi.unsqueeze(0))

    per_sample = vmap(grad(one), in_dims=(None, 0, 0))(params, x, y)
    assert per_sample["weight"].shape == (8, C, 6)
    for i in (0, 5):  # each equals the gradient of that sample alone
        want = grad(one)(params, x[i], y[i])
        torch.testing.assert_close(per_sample["weight"][i], want["weight"])


def test_bad_targets_are_still_refused_outside_tracing() -> None:
    _, loss = model_and_loss("cdb-ce")
    with pytest.raises(ValueError, match=r"target values must lie in \[0, 3\)"):
        loss(torch.randn(2, C), torch.tensor([0, 3]))


@pytest.mark.parametrize("name", ["focal", "cdb-focal", "cb-focal", "cdb-ce", "ce"])
@pytest.mark.parametrize("soft", [False, True])
def test_fp32_maths_under_cpu_bf16_autocast(name: str, soft: bool) -> None:
    model, loss = model_and_loss(name)
    x, y = data(32)
    target: Tensor = torch.nn.functional.one_hot(y, C).float() * 0.9 + 0.1 / C if soft else y
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
        assert logits.dtype == torch.bfloat16
        out = loss(logits, target)
    assert out.dtype == torch.float32
    # the same bf16 logits through fp32 maths outside autocast
    torch.testing.assert_close(out, loss(logits.float(), target))
