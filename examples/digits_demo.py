"""CE vs CDB-CE on a long-tailed split of scikit-learn's bundled digits (no download).

The digits set (1,797 8x8 images, 10 classes) is split per class into test
(30 per class), validation (15 per class, the set CDB measures difficulty on)
and a training set cut to a long tail: class 0 keeps all its remaining images,
class 9 about 1/imbalance of them. A small MLP is trained twice with the same
seed, once with plain cross-entropy and once with CDB-CE, whose weights are
recomputed from validation accuracy after every epoch. Per-class test accuracy
of both is printed.

Run: ``python examples/digits_demo.py [--imbalance 50] [--epochs 60] [--seed 0]``
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from cdbloss import CDBLoss, ClassDifficulty, CrossEntropyLoss
from cdbloss.cdb import PAPER_RULE
from cdbloss.lab.data.longtail import long_tail_counts, sample_per_class, stratified_holdout


def load_splits(imbalance: float, seed: int):  # type: ignore[no-untyped-def]
    from sklearn.datasets import load_digits

    x_all, y_all = load_digits(return_X_y=True)
    x_all = torch.tensor(x_all / 16.0, dtype=torch.float32)
    y_all = torch.tensor(y_all, dtype=torch.long)
    test_idx, rest = stratified_holdout(y_all.numpy(), 30, seed=seed)
    val_rel, train_pool = stratified_holdout(y_all[rest].numpy(), 15, seed=seed + 1)
    val_idx, pool = rest[val_rel], rest[train_pool]
    smallest_class = int(torch.bincount(y_all[pool]).min())
    counts = long_tail_counts(smallest_class, 10, imbalance)
    train_idx = pool[sample_per_class(y_all[pool].numpy(), counts, seed=seed + 2)]
    pick = lambda idx: (x_all[idx], y_all[idx])  # noqa: E731
    return pick(train_idx), pick(val_idx), pick(test_idx), counts


def per_class_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    tracker = ClassDifficulty(10)
    with torch.no_grad():
        tracker.update(model(x), y)
    return tracker.compute()


def train(
    loss_fn: nn.Module, data, epochs: int, seed: int, lr: float
) -> tuple[nn.Module, list[float]]:  # type: ignore[no-untyped-def]
    (xtr, ytr), (xva, yva), _, _ = data
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(seed)
    taus: list[float] = []
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(ytr), generator=gen).split(32):
            opt.zero_grad()
            loss_fn(model(xtr[batch]), ytr[batch]).backward()
            opt.step()
        if isinstance(loss_fn, CDBLoss):  # the CDB step: difficulty from validation
            model.eval()
            loss_fn.update_weights(per_class_accuracy(model, xva, yva))
            taus.append(float(loss_fn.tau_value))
    model.eval()
    return model, taus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imbalance", type=float, default=50.0)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1, each a new split")
    args = parser.parse_args()

    overall: dict[str, list[float]] = {"CE": [], "CDB-CE": []}
    tail: dict[str, list[float]] = {"CE": [], "CDB-CE": []}
    for seed in range(args.seeds):
        data = load_splits(args.imbalance, seed)
        xte, yte = data[2]
        ce_model, _ = train(CrossEntropyLoss(10), data, args.epochs, seed, args.lr)
        cdb_loss = CDBLoss(10, **PAPER_RULE)  # the paper's rule, as the README's numbers
        cdb_model, taus = train(cdb_loss, data, args.epochs, seed, args.lr)
        acc = {
            "CE": per_class_accuracy(ce_model, xte, yte),
            "CDB-CE": per_class_accuracy(cdb_model, xte, yte),
        }
        for name, a in acc.items():
            overall[name].append(float(a.mean()))
            tail[name].append(float(a[5:].mean()))
        if seed == 0:
            print(f"training images per class (imbalance {args.imbalance:g}): {data[3]}")
            print(
                f"\nseed 0: per-class test accuracy (30 test images per class), {args.epochs} epochs"
            )
            print(f"{'class':>5} {'train n':>8} {'CE':>7} {'CDB-CE':>7} {'CDB w':>6}")
            for c in range(10):
                print(
                    f"{c:>5} {data[3][c]:>8} {acc['CE'][c]:>7.3f} {acc['CDB-CE'][c]:>7.3f} "
                    f"{float(cdb_loss.weight[c]):>6.2f}"
                )
            print(f"dynamic tau after the last epoch: {taus[-1]:.3f}\n")
        print(
            f"seed {seed}: test accuracy CE {overall['CE'][-1]:.3f}  CDB-CE {overall['CDB-CE'][-1]:.3f}"
            f"   tail half (classes 5-9) CE {tail['CE'][-1]:.3f}  CDB-CE {tail['CDB-CE'][-1]:.3f}"
        )
    t = torch.tensor
    print(f"\nmean +- std over {args.seeds} seeds:")
    for name in overall:
        o, f = t(overall[name]), t(tail[name])
        print(
            f"  {name:>6}: overall {o.mean():.3f} +- {o.std():.3f}   tail half {f.mean():.3f} +- {f.std():.3f}"
        )
    wins = sum(b > a for a, b in zip(overall["CE"], overall["CDB-CE"], strict=True))
    print(f"CDB-CE beat CE on overall test accuracy in {wins} of {args.seeds} seeds.")


if __name__ == "__main__":
    main()
