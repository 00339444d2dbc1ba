"""Forward + backward time of CDBLoss against F.cross_entropy(weight=w), and tracker throughput.

Both sides run on the same tensors in the same process, alternating call by
call, and the reported figure is the ratio of the medians of single calls, so machine noise
largely cancels. Target: CDBLoss within 5 % of F.cross_entropy(weight=w).

Run: ``python benchmarks/loss_overhead.py [--n 512] [--classes 10 100 1000] [--repeats 30]``
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from cdbloss import CDBLoss, ClassDifficulty


def time_call(fn: Callable[[], None], inner: int) -> float:
    """Seconds per call, averaged over ``inner`` calls."""
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - start) / inner


def bench_loss(n: int, c: int, repeats: int, inner: int) -> tuple[float, float]:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(n, c, generator=g).requires_grad_(True)
    target = torch.randint(0, c, (n,), generator=g)
    loss = CDBLoss(c)
    loss.update_weights(torch.rand(c, generator=g, dtype=torch.float64))
    w = loss.weight.clone()

    def ours() -> None:
        logits.grad = None
        loss(logits, target).backward()

    def reference() -> None:
        logits.grad = None
        F.cross_entropy(logits, target, weight=w).backward()

    for fn in (ours, reference):  # warm-up
        time_call(fn, inner)
    t_ours, t_ref = [], []
    # Alternate single calls, many times, and compare medians: a burst of noise
    # from the machine lands on both sides instead of on one block of calls.
    # The order flips every round: the second call of a pair finds warm caches.
    for i in range(repeats * inner):
        first, second = (ours, reference) if i % 2 == 0 else (reference, ours)
        start = time.perf_counter_ns()
        first()
        mid = time.perf_counter_ns()
        second()
        end = time.perf_counter_ns()
        a, b = mid - start, end - mid
        t_ours.append(a if i % 2 == 0 else b)
        t_ref.append(b if i % 2 == 0 else a)
    return statistics.median(t_ours) * 1e-9, statistics.median(t_ref) * 1e-9


def bench_tracker(n: int, c: int, repeats: int) -> float:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(n, c, generator=g)
    target = torch.randint(0, c, (n,), generator=g)
    tracker = ClassDifficulty(c)
    times = [time_call(lambda: tracker.update(logits, target), 50) for _ in range(repeats)]
    return n / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{args.threads} thread(s), N = {args.n}, CPU"
    )
    print(f"{'C':>6} {'CDBLoss us':>11} {'F.cross_entropy us':>19} {'ratio':>7}")
    for c in args.classes:
        inner = max(10, 20000 // c)
        ours, ref = bench_loss(args.n, c, args.repeats, inner)
        print(f"{c:>6} {ours * 1e6:>11.1f} {ref * 1e6:>19.1f} {ours / ref:>7.3f}")
    for c in args.classes:
        rate = bench_tracker(args.n, c, args.repeats)
        print(f"ClassDifficulty.update, C = {c}: {rate:,.0f} samples/s")


if __name__ == "__main__":
    main()
