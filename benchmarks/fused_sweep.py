"""Images per second of K fused runs (one vmapped model) against one unfused run.

Each configuration trains CIFAR-sized batches (random uint8 images, flipped at random
and normalised on the training device, as ``train.transform_on_device`` does) for
``--steps`` steps:

* ``unfused``: one run as :class:`~cdbloss.lab.engine.trainer.Trainer` steps it (the
  model, ``torch.optim.SGD``, its loss);
* ``fused K``: K runs as :class:`~cdbloss.lab.engine.fused.FusedTrainer` steps them
  (:class:`~cdbloss.lab.engine.fused.FusedModel`, :class:`~cdbloss.lab.engine.fused.StackedSGD`,
  one loss per member, cycling through the CIFAR-10-LT grid's losses: CE, CDB-CE,
  Balanced Softmax, CDB-CE with tau 0.5, class-balanced focal, focal).

Images per second counts each member's images (K x batch per fused step). The rounds
interleave the configurations and each reports its best round, so a noisy shared
machine slows them alike; compare the ratios of one invocation, not numbers across runs.

Run: ``python benchmarks/fused_sweep.py [--model resnet8] [--ks 1 2 4] [--steps 20]
[--rounds 3] [--batch 128] [--device cpu|cuda] [--threads 2] [--compile MODE]
[--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from cdbloss.lab.engine.config import ExperimentConfig, config_from_dict
from cdbloss.lab.engine.fused import FusedModel, StackedSGD
from cdbloss.lab.models import build_model
from cdbloss.losses import build_loss

#: The losses of the CIFAR-10-LT grid that fuse (LDAM-DRW's cosine head is another model).
LOSSES: list[tuple[str, dict[str, Any]]] = [
    ("ce", {}),
    ("cdb-ce-paper", {"tau": "dynamic"}),
    ("balanced-softmax", {}),
    ("cdb-ce-paper", {"tau": 0.5}),
    ("cb-focal", {"beta": 0.9999, "gamma": 1.0}),
    ("focal", {"gamma": 1.0}),
]
#: CIFAR-10-LT's training class counts at imbalance factor 100 (50 held out per class).
COUNTS = [4950, 2947, 1755, 1045, 622, 370, 220, 131, 78, 46]


def _batches(n: int, batch: int, device: torch.device) -> Callable[[], tuple[Tensor, Tensor]]:
    """A batch source: uint8 images on the device, flipped and normalised there."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g).to(device)
    labels = torch.randint(0, 10, (n,), generator=g).to(device)
    mean = torch.tensor([0.49, 0.48, 0.45], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.25, 0.24, 0.26], device=device).view(1, 3, 1, 1)

    def draw() -> tuple[Tensor, Tensor]:
        idx = torch.randint(0, n, (batch,), device=device)
        x = images[idx].float().div_(255)
        flip = torch.rand(batch, device=device) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        return (x - mean) / std, labels[idx]

    return draw


def _cfg(lr: float) -> ExperimentConfig:
    return config_from_dict(
        {"optim": {"lr": lr, "momentum": 0.9, "weight_decay": 5e-4}}, check_names=False
    )


def _unfused_step(model_name: str, device: torch.device, mode: str | None) -> Callable[..., Any]:
    model = build_model(model_name, 10).to(device)
    loss_fn = build_loss("cdb-ce-paper", 10, class_counts=COUNTS, tau="dynamic").to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    net: Any = torch.compile(model, mode=mode) if mode is not None else model
    model.train()

    def step(x: Tensor, y: Tensor) -> Tensor:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def _fused_step(
    model_name: str, k: int, device: torch.device, mode: str | None
) -> Callable[..., Any]:
    torch.manual_seed(0)
    models = [build_model(model_name, 10).to(device) for _ in range(k)]
    fused = FusedModel(models)
    if mode is not None:
        fused.compile(mode)
    opt = StackedSGD(fused.params, [_cfg(0.1 * (1 + i % 3)) for i in range(k)], fused.base)
    losses = [
        build_loss(name, 10, class_counts=COUNTS, **options).to(device)
        for name, options in (LOSSES[i % len(LOSSES)] for i in range(k))
    ]
    fused.train()

    def step(x: Tensor, y: Tensor) -> Tensor:
        fused.zero_grad()
        logits = fused(x)  # (K, B, C)
        per_member = torch.stack([fn(logits[i], y) for i, fn in enumerate(losses)])
        per_member.sum().backward()
        opt.step()
        return per_member.detach()

    return step


def _time(
    step: Callable[..., Any], draw: Callable[[], Any], steps: int, device: torch.device
) -> float:
    for _ in range(2):  # warm-up (and compilation)
        step(*draw())
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step(*draw())
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet8")
    p.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--compile", default=None, help="torch.compile mode of both steps")
    p.add_argument("--json", default=None, help="also write the numbers to this file")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    mode = (
        None
        if args.compile in (None, "off")
        else (None if args.compile == "default" else args.compile)
    )
    compiled = args.compile not in (None, "off")
    draw = _batches(4096, args.batch, device)
    steps: dict[str, Callable[..., Any]] = {
        "unfused": _unfused_step(args.model, device, mode if compiled else None)
    }
    for k in args.ks:
        steps[f"fused {k}"] = _fused_step(args.model, k, device, mode if compiled else None)
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, step in steps.items():
            seconds = _time(step, draw, args.steps, device)
            best[name] = min(best.get(name, float("inf")), seconds)
    name_of = (
        torch.cuda.get_device_name(0)
        if device.type == "cuda"
        else f"cpu, {torch.get_num_threads()} threads"
    )
    print(
        f"{args.model}, batch {args.batch}, {args.steps} steps x best of {args.rounds} rounds, {name_of}, compile {args.compile or 'off'}"
    )
    base = args.batch * args.steps / best["unfused"]
    rows = []
    for name, seconds in best.items():
        k = 1 if name == "unfused" else int(name.split()[1])
        rate = k * args.batch * args.steps / seconds
        rows.append(
            {
                "config": name,
                "members": k,
                "seconds": seconds,
                "images_per_s": rate,
                "vs_one_run": rate / base,
            }
        )
        print(
            f"{name:>10}: {seconds / args.steps * 1000:8.1f} ms a step, {rate:9.0f} images/s, {rate / base:5.2f} x one run"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(
                {
                    "model": args.model,
                    "batch": args.batch,
                    "device": name_of,
                    "compile": args.compile,
                    "rows": rows,
                },
                fh,
                indent=2,
            )


if __name__ == "__main__":
    main()
