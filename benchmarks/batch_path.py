"""The CIFAR batch path on the CPU: crop + flip + normalise of one epoch, one gather vs a loop.

``RandomCropFlip`` crops and mirrors a whole batch with one ``gather``; until
2026-11-28 it looped over the images of the batch, slicing and flipping one at
a time. Both take the same random draws, so they give the same images (this
script checks it on every batch). Times one factor-100 CIFAR-10-LT epoch of
batches (12,280 uint8 images 3x32x32 here drawn at random, 96 batches of
128: the pixel values do not change the cost), crop and flip then
``ScaleNormalize``, the two versions alternating; medians of the repeats.

Run: ``python benchmarks/batch_path.py [--repeats 5] [--threads 1]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import Tensor

from cdbloss.lab.data.tensor_dataset import RandomCropFlip, ScaleNormalize

N_IMAGES, BATCH, SIZE, PAD = 12_280, 128, 32, 4


def crop_flip_loop(x: Tensor, generator: torch.Generator) -> Tensor:
    """The former per-image implementation: the same draws, one image at a time."""
    padded = torch.nn.functional.pad(x, (PAD, PAD, PAD, PAD))
    b, _, hp, wp = padded.shape
    tops = torch.randint(0, hp - SIZE + 1, (b,), generator=generator)
    lefts = torch.randint(0, wp - SIZE + 1, (b,), generator=generator)
    flips = torch.rand(b, generator=generator) < 0.5
    out = torch.empty((b, padded.shape[1], SIZE, SIZE), dtype=padded.dtype)
    for i in range(b):
        t, le = int(tops[i]), int(lefts[i])
        crop = padded[i, :, t : t + SIZE, le : le + SIZE]
        out[i] = crop.flip(-1) if bool(flips[i]) else crop
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = torch.randint(
        0, 256, (N_IMAGES, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(0)
    ).to(torch.uint8)
    norm = ScaleNormalize((0.49, 0.48, 0.45), (0.25, 0.24, 0.26))
    perm = torch.randperm(N_IMAGES, generator=torch.Generator().manual_seed(1))

    def epoch(gather: bool, seed: int) -> tuple[float, list[Tensor]]:
        g = torch.Generator().manual_seed(seed)
        crop = RandomCropFlip(SIZE, PAD, generator=g)
        out = []
        t = time.perf_counter()
        for i in range(0, N_IMAGES, BATCH):
            x = images[perm[i : i + BATCH]]
            out.append(norm(crop(x) if gather else crop_flip_loop(x, g)))
        return time.perf_counter() - t, out

    times: dict[bool, list[float]] = {True: [], False: []}
    for r in range(args.repeats + 1):  # the first round warms up and is not counted
        (tg, a), (tl, b) = epoch(True, r), epoch(False, r)
        if not all(torch.equal(u, v) for u, v in zip(a, b, strict=True)):
            raise SystemExit("the gather and the loop gave different batches")
        if r:
            times[True].append(tg)
            times[False].append(tl)
    loop, gather = statistics.median(times[False]), statistics.median(times[True])
    print(f"threads {args.threads}, {args.repeats} repeats, medians; batches identical")
    print(f"per-image loop: {loop:.3f} s per epoch ({loop / 96 * 1e3:.2f} ms per batch)")
    print(f"one gather:     {gather:.3f} s per epoch ({gather / 96 * 1e3:.2f} ms per batch)")
    print(f"time ratio gather / loop: {gather / loop:.3f}")


if __name__ == "__main__":
    main()
