"""Engine iterations per second against a bare PyTorch loop, and the cost of CDB's validation pass.

Both train LeNet-5 with CDB-CE on the same in-memory tensors (5,000 training
images 28x28 as in MNIST 4-vs-9, batch 100, SGD momentum 0.9); the bare loop
is the minimum anyone would write: shuffle, slice, forward, loss, backward,
step. The engine adds its per-epoch validation pass (1,000 images, which CDB
needs), checkpointing, metrics and bookkeeping. Runs alternate so that machine
noise hits both. Target: engine training throughput within 10 % of the bare loop.

Both memory formats are measured: the default NCHW and ``channels_last``
(``train.channels_last``), which oneDNN's CPU convolutions prefer.

Run: ``python benchmarks/engine_overhead.py [--epochs 4] [--repeats 3] [--threads 1]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from cdbloss import CDBLoss
from cdbloss.lab.data.base import DataSplits
from cdbloss.lab.data.tensor_dataset import TensorImageDataset
from cdbloss.lab.engine.config import config_from_dict
from cdbloss.lab.engine.trainer import Trainer
from cdbloss.lab.models import build_model

N_TRAIN, N_VAL, BATCH = 5000, 1000, 100


def make_splits() -> DataSplits:
    g = torch.Generator().manual_seed(0)

    def split(n: int) -> TensorImageDataset:
        images = torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
        return TensorImageDataset(images, torch.randint(0, 2, (n,), generator=g), num_classes=2)

    train, val, test = split(N_TRAIN), split(N_VAL), split(N_VAL)
    return DataSplits(train, val, test, 2, train.class_counts(), ["a", "b"])


def bare_loop(splits: DataSplits, epochs: int, channels_last: bool = False) -> float:
    """Seconds per training iteration of the minimal loop (no validation)."""
    torch.manual_seed(0)
    model = build_model("lenet5", 2)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    loss_fn = CDBLoss(2)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    data: TensorImageDataset = splits.train  # type: ignore[assignment]
    iters = 0
    start = time.perf_counter()
    for epoch in range(epochs):
        perm = torch.randperm(N_TRAIN, generator=torch.Generator().manual_seed(epoch))
        for idx in perm.split(BATCH):
            x, y = data.get_batch(idx)
            x = x.contiguous(memory_format=fmt)
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()
            iters += 1
    return (time.perf_counter() - start) / iters


def engine(
    splits: DataSplits, epochs: int, channels_last: bool = False
) -> tuple[float, float, float]:
    """(seconds per training iteration, validation share of the epoch, seconds per epoch)."""
    cfg = config_from_dict(
        {
            "name": "bench",
            "data": {"protocol": "synthetic-lt"},  # replaced by the splits passed in
            "model": {"name": "lenet5"},
            "loss": {"name": "cdb-ce"},
            "optim": {"lr": 1e-3, "momentum": 0.9, "weight_decay": 5e-4},
            "train": {
                "epochs": epochs,
                "batch_size": BATCH,
                "eval_batch_size": 1000,
                "progress": False,
                "channels_last": channels_last,
            },
        }
    )
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = Trainer(cfg, out, splits=splits).fit()
        total = time.perf_counter() - start
    timing = result["timing"]
    iters = epochs * (N_TRAIN // BATCH)
    return (
        timing["train_s"] / iters,
        timing["val_s"] / (timing["train_s"] + timing["val_s"]),
        total / epochs,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    splits = make_splits()
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), LeNet-5, batch {BATCH}, "
        f"{N_TRAIN} train / {N_VAL} val images, {args.epochs} epochs x {args.repeats} repeats"
    )
    bare: dict[bool, list[float]] = {False: [], True: []}
    eng: dict[bool, list[float]] = {False: [], True: []}
    share: dict[bool, list[float]] = {False: [], True: []}
    per_epoch: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.repeats):
        for cl in (False, True):  # alternate, so that machine noise hits every variant
            bare[cl].append(bare_loop(splits, args.epochs, cl))
            e, sh, p = engine(splits, args.epochs, cl)
            eng[cl].append(e)
            share[cl].append(sh)
            per_epoch[cl].append(p)
    med = statistics.median
    for cl in (False, True):
        b, e = med(bare[cl]), med(eng[cl])
        print(f"memory format: {'channels_last' if cl else 'default (NCHW)'}")
        print(f"  bare loop:         {1 / b:8.1f} it/s")
        print(f"  engine (training): {1 / e:8.1f} it/s   ratio engine/bare time {e / b:.3f}")
        print(f"  validation pass:   {100 * med(share[cl]):.1f} % of each epoch (train + val)")
        print(f"  engine wall time per epoch, all included: {med(per_epoch[cl]):.2f} s")
    ratios = [c / d for c, d in zip(bare[True], bare[False], strict=True)]
    print(f"channels_last / default time per bare-loop step: {med(ratios):.3f} (median of pairs)")


if __name__ == "__main__":
    main()
