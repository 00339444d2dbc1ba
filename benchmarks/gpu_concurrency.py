"""How much do ResNet-32 CIFAR runs slow each other when k of them share one GPU?

Each of k processes (spawned together, timed from a shared barrier) trains a
ResNet-32 on CIFAR-sized batches through the trainer's in-memory batch path:
random uint8 images (12,280, the size of CIFAR-10-LT at factor 100) cropped,
flipped and normalised on the CPU (``RandomCropFlip``, ``ScaleNormalize``),
copied to the device, then one SGD step of cross-entropy. It reports the
seconds per step of each group size, the slowdown against k = 1 and the
steps per second of the whole GPU. ``cdbloss sweep --launcher pack
--join-slowdown`` takes the per-run slowdown of adding one run.
``--on-device`` transforms the batches on the GPU instead (the engine's
``train.transform_on_device``) and ``--compile MODE`` compiles the model
(``train.compile``; each process compiles before the shared start).

Run: ``python benchmarks/gpu_concurrency.py [--ks 1 2 4 8] [--steps 150] [--threads 2]
[--on-device] [--compile reduce-overhead]`` (``--device cpu`` for a quick try without a GPU).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
import torch.multiprocessing as mp
import torch.nn.functional as F


def _worker(
    rank: int,
    device: str,
    steps: int,
    threads: int,
    on_device: bool,
    compile_mode: str | None,
    barrier: Any,
    out: Any,
) -> None:
    from cdbloss.lab.data.tensor_dataset import RandomCropFlip, ScaleNormalize, TensorImageDataset
    from cdbloss.lab.models import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(rank)
    n = 12_280
    tf = lambda x: ScaleNormalize((0.49, 0.48, 0.45), (0.25, 0.24, 0.26))(RandomCropFlip(32, 4)(x))  # noqa: E731
    data = TensorImageDataset(
        torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8),
        torch.randint(0, 10, (n,)),
        transform=tf,
        num_classes=10,
    )
    dev = torch.device(device)
    model = build_model("resnet32", 10).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    net: Any = model
    if compile_mode:
        net = torch.compile(model, mode=None if compile_mode == "default" else compile_mode)

    def run(k: int) -> None:
        for _ in range(k):
            idx = torch.randint(0, n, (128,))
            if on_device:
                x, y = data.get_batch(idx, dev)
            else:
                x, y = data.get_batch(idx)
                x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()

    run(10)  # warm-up (and the compiler's work, with --compile)
    barrier.wait()
    start = time.perf_counter()
    run(steps)
    out.put((time.perf_counter() - start) / steps)


def measure(
    k: int,
    device: str,
    steps: int,
    threads: int,
    on_device: bool = False,
    compile_mode: str | None = None,
) -> list[float]:
    """Seconds per step of each of ``k`` runs sharing the device."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(k)
    out = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(r, device, steps, threads, on_device, compile_mode, barrier, out),
        )
        for r in range(k)
    ]
    for p in procs:
        p.start()
    times = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    return sorted(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cuda")
    p.add_argument("--on-device", action="store_true")
    p.add_argument("--compile", choices=["default", "reduce-overhead", "max-autotune"])
    args = p.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device is visible; pass --device cpu for a quick try")
    print("| runs sharing the device | s/step, mean of runs | slowdown vs 1 | steps/s in all |")
    print("|---|---|---|---|")
    base = None
    for k in args.ks:
        times = measure(k, args.device, args.steps, args.threads, args.on_device, args.compile)
        mean = sum(times) / len(times)
        base = base if base is not None else mean
        print(f"| {k} | {mean:.4f} | {mean / base:.2f} | {k / mean:.1f} |", flush=True)


if __name__ == "__main__":
    main()
