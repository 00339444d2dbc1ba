"""Time per training step on CPU: plain CE vs L2RWStep vs MetaWeightNetStep.

Run: ``python benchmarks/meta_overhead.py [threads]``; results in docs/meta.md.
"""

import statistics
import sys
import time

import torch
import torch.nn.functional as F

from cdbloss.lab.engine.meta import L2RWStep, MetaWeightNetStep
from cdbloss.lab.models import build_model

threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
torch.set_num_threads(threads)
torch.manual_seed(0)
for name, shape, batch, reps in [
    ("lenet5", (1, 28, 28), 100, 30),
    ("resnet32", (3, 32, 32), 128, 7),
]:
    x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
    xv, yv = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
    steps = {}
    for method in ("plain", "l2rw", "mwn"):
        model = build_model(name, num_classes=10).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        if method == "plain":

            def step(model=model, opt=opt, x=x, y=y):  # type: ignore[no-untyped-def]
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
        else:
            meta = (L2RWStep if method == "l2rw" else MetaWeightNetStep)(model)

            def step(meta=meta, opt=opt, x=x, y=y, xv=xv, yv=yv):  # type: ignore[no-untyped-def]
                meta(x, y, xv, yv, opt)

        steps[method] = step
    for _ in range(3):
        for step in steps.values():
            step()
    times = {m: [] for m in steps}
    for _ in range(reps):
        for m, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[m].append(time.perf_counter() - t0)
    med = {m: statistics.median(t) for m, t in times.items()}
    print(
        f"{name}, batch {batch} + val batch {batch}, {threads} thread(s): "
        + ", ".join(f"{m} {1000 * t:.0f} ms ({t / med['plain']:.1f}x)" for m, t in med.items())
    )
