"""Where a ResNet-32 CIFAR-10-LT epoch's time goes on a GPU: data, model steps, or both.

Times, on CUDA, one epoch of factor-100 CIFAR-10-LT batches (12,280 images,
96 batches of 128): the in-memory batch path alone (crop, flip, normalise on
the CPU, copy to the GPU), 96 SGD steps of cross-entropy on one fixed batch,
the two together, then the batch path and the epoch again with the transform
run on the GPU (``get_batch(idx, device)``, the engine's
``train.transform_on_device``), then the 96 steps again with
``cudnn.benchmark`` and under bf16 autocast, and, with ``--compile MODE``,
with the model compiled (``torch.compile(mode=MODE)``, the engine's
``train.compile``; the compile time is printed apart). Two timings of each,
after a warm-up. If bf16 and
``cudnn.benchmark`` barely change the step time, the GPU's arithmetic is not
what bounds it: the CPU's kernel launches are, and several runs can share
one GPU (``cdbloss sweep --launcher pack``).

Run on a GPU machine (needs the CIFAR-10 JPEG copy, see tools/device_cifar10_lt.sh):
``python benchmarks/gpu_epoch_profile.py [--compile reduce-overhead]``. The numbers in docs/benchmarks.md
were measured with this code (its SGD step then written out in both loops),
run as one inline script of the `device` tool.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from cdbloss.lab.data.cifar import cifar_lt
from cdbloss.lab.models import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--compile", choices=["default", "reduce-overhead", "max-autotune"], default=None
    )
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_epoch_profile.py needs a CUDA device; none is visible here")
    tr = cifar_lt(dataset="cifar10", imbalance_factor=100).train
    n = len(tr)
    dev = torch.device("cuda")
    torch.set_num_threads(2)
    m = build_model("resnet32", 10).to(dev)
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    perm = torch.randperm(n)

    def data_only() -> float:
        t = time.perf_counter()
        for i in range(0, n, 128):
            x, _ = tr.get_batch(perm[i : i + 128])
            x = x.to(dev, non_blocking=True)
        torch.cuda.synchronize()
        return time.perf_counter() - t

    net: torch.nn.Module = m  # what the steps run: the model, or it compiled

    def sgd_step(x: torch.Tensor, y: torch.Tensor) -> None:
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def step_only(k: int = 96) -> float:
        x, y = tr.get_batch(perm[:128])
        x, y = x.to(dev), y.to(dev)
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(k):
            sgd_step(x, y)
        torch.cuda.synchronize()
        return time.perf_counter() - t

    def full() -> float:
        t = time.perf_counter()
        for i in range(0, n, 128):
            x, y = tr.get_batch(perm[i : i + 128])
            sgd_step(x.to(dev, non_blocking=True), y.to(dev))
        torch.cuda.synchronize()
        return time.perf_counter() - t

    def data_only_on_device() -> float:
        t = time.perf_counter()
        for i in range(0, n, 128):
            tr.get_batch(perm[i : i + 128], dev)
        torch.cuda.synchronize()
        return time.perf_counter() - t

    def full_on_device() -> float:
        t = time.perf_counter()
        for i in range(0, n, 128):
            sgd_step(*tr.get_batch(perm[i : i + 128], dev))
        torch.cuda.synchronize()
        return time.perf_counter() - t

    step_only(10)
    data_only()
    print("epoch data-only s", [round(data_only(), 3) for _ in range(2)])
    print("96 model steps s", [round(step_only(), 3) for _ in range(2)])
    print("full epoch s", [round(full(), 3) for _ in range(2)])
    data_only_on_device()
    print(
        "epoch data-only, transform on GPU s", [round(data_only_on_device(), 3) for _ in range(2)]
    )
    print("full epoch, transform on GPU s", [round(full_on_device(), 3) for _ in range(2)])
    torch.backends.cudnn.benchmark = True
    step_only(10)
    print("96 steps cudnn.benchmark s", [round(step_only(), 3) for _ in range(2)])
    with torch.autocast("cuda", dtype=torch.bfloat16):
        step_only(10)
        print("96 steps bf16 s", [round(step_only(), 3) for _ in range(2)])
    if args.compile:
        torch.backends.cudnn.benchmark = False
        net = torch.compile(m, mode=None if args.compile == "default" else args.compile)
        t = time.perf_counter()
        step_only(3)  # compiles forward and backward
        print(f"compile ({args.compile}) s", round(time.perf_counter() - t, 1))
        step_only(10)
        print(f"96 steps compiled ({args.compile}) s", [round(step_only(), 3) for _ in range(2)])
        full_on_device()
        print(
            f"full epoch, transform on GPU, compiled ({args.compile}) s",
            [round(full_on_device(), 3) for _ in range(2)],
        )


if __name__ == "__main__":
    main()
