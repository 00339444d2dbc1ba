"""Seconds per SGD training step of the project's models on CPU, in both memory formats.

What a CPU schedule costs: one forward + backward + step of cross-entropy on a
random batch, the median of ``--steps`` timed steps after two warm-up steps;
the two memory formats alternate per repeat so that machine noise hits both.
Multiply by the steps of an epoch to price a schedule (docs/benchmarks.md).

Run: ``python benchmarks/model_step.py [--models lenet5 resnet32] [--batch 128] [--threads 1]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from cdbloss.lab.models import build_model

SHAPES = {"lenet5": (1, 28, 28)}  # the rest are CIFAR-sized


def step_times(name: str, batch: int, channels_last: bool, steps: int) -> list[float]:
    torch.manual_seed(0)
    model = build_model(name, 10)
    x = torch.randn(batch, *SHAPES.get(name, (3, 32, 32)))
    y = torch.randint(0, 10, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["lenet5", "resnet20", "resnet32"])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}")
    print(f"{'model':>10} {'NCHW s/step':>12} {'channels_last s/step':>21} {'ratio':>6}")
    for name in args.models:
        runs: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.repeats):
            for cl in (False, True):
                runs[cl] += step_times(name, args.batch, cl, args.steps)
        a, b = statistics.median(runs[False]), statistics.median(runs[True])
        print(f"{name:>10} {a:12.4f} {b:21.4f} {b / a:6.3f}")


if __name__ == "__main__":
    main()
