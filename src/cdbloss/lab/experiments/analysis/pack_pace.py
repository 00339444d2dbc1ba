"""How much runs sharing a GPU slowed each other, read back from a packed call's own runs.

The pack launcher (``cdbloss sweep --launcher pack``) logs when each job
was launched, stopped or finished (``pack.json``), and every run logs each
epoch's ``train_s`` in its ``metrics.jsonl``. This script puts the two together: it places each epoch
in time by spreading the run's logged ``train_s + val_s`` over its span from
launch to end (its ``finished``, ``stop`` or ``deadline`` event), so the time
that no epoch logs (start-up, checkpoint writes, the test pass; about a
tenth) is shared out evenly, counts how many runs were active over the whole
epoch, and prints, per run and per number of active runs, the median seconds
of training per epoch::

    python tools/pack_pace.py results/cifar10_lt/packs/2026-11-28_h200_call1.json \\
        --runs results/cifar10_lt

Epochs within ``--margin`` seconds of a launch or an end (default 5) are left
out, as is each run's first epoch in the call (its warm-up: cudnn autotuning,
``torch.compile``); the margin also covers the spreading's error. The last line
gives the slowdown: the median epoch with ``k`` runs active over the median
epoch of a run alone, across runs. Runs of different methods share one
ResNet-32, so their epochs cost the same alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from cdbloss.lab.experiments.store import find_run_file

_ENDS = ("finished", "stop", "deadline", "ended")


def _active_at(log: list[dict[str, Any]], t: float) -> int:
    """Runs active at time ``t`` by the log's launches and ends."""
    n = 0
    for e in log:
        if e["t"] > t:
            break
        n += 1 if e["event"] == "launch" else -1 if e["event"] in _ENDS else 0
    return n


def epoch_paces(
    record: dict[str, Any], runs_dir: Path, margin: float = 5.0
) -> dict[str, dict[int, list[float]]]:
    """``{run: {active runs: [train_s of each epoch spent wholly at that count]}}``.

    Args:
        record: a ``pack.json`` record (its ``log`` of launch and end events).
        runs_dir: the sweep folder holding each run's ``metrics.jsonl``.
        margin: seconds around every event inside which an epoch is not counted.
    """
    log = sorted(record["log"], key=lambda e: e["t"])
    events = [e["t"] for e in log if e["event"] == "launch" or e["event"] in _ENDS]
    out: dict[str, dict[int, list[float]]] = {}
    for launch in (e for e in log if e["event"] == "launch"):
        run = launch["run"]
        end = next((e for e in log if e["run"] == run and e["event"] in _ENDS), None)
        text = find_run_file(runs_dir / run, "metrics.jsonl")
        if end is None or text is None:
            continue
        epochs = [json.loads(line) for line in text.splitlines() if line.strip()]
        # a run resumed in this call logged its earlier epochs in another: keep this call's
        steps_left = int(launch.get("steps") or 0)
        total = int(epochs[-1]["step"]) if epochs else 0
        first_step = total - steps_left if steps_left else 0
        if "epochs" in end:  # stopped: the folder may since hold a later call's epochs too
            epochs = epochs[: int(end["epochs"])]
        epochs = [e for e in epochs if int(e["step"]) > first_step]
        seconds = [float(e["train_s"]) + float(e.get("val_s", 0.0)) for e in epochs]
        if not epochs or sum(seconds) <= 0:
            continue
        scale = (float(end["t"]) - float(launch["t"])) / sum(seconds)
        by_count: dict[int, list[float]] = defaultdict(list)
        t_start = float(launch["t"])
        for i, e in enumerate(epochs):
            t_end = t_start + seconds[i] * scale
            near = any(t_start - margin < t < t_end + margin for t in events)
            same = _active_at(log, t_start) == _active_at(log, t_end)
            if i > 0 and not near and same:  # never the call's first epoch (warm-up)
                by_count[_active_at(log, t_start)].append(float(e["train_s"]))
            t_start = t_end
        out[run] = dict(by_count)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pack_log", help="a pack.json written by cdbloss sweep --launcher pack")
    p.add_argument("--runs", required=True, help="the sweep folder the runs wrote to")
    p.add_argument("--margin", type=float, default=5.0, help="seconds around events (5)")
    args = p.parse_args(argv)
    record = json.loads(Path(args.pack_log).read_text())
    if not isinstance(record, dict) or "log" not in record:
        print(f"error: {args.pack_log} holds no pack log (expected a 'log' list)", file=sys.stderr)
        return 2
    paces = epoch_paces(record, Path(args.runs), args.margin)
    if not paces:
        print("error: no run of the log has a metrics.jsonl under --runs", file=sys.stderr)
        return 2
    counts = sorted({k for v in paces.values() for k in v})
    print("| run | " + " | ".join(f"{k} active: s/epoch (epochs)" for k in counts) + " |")
    print("|---|" + "---|" * len(counts))
    for run, by in paces.items():
        cells = [
            f"{statistics.median(by[k]):.3f} ({len(by[k])})" if k in by else "-" for k in counts
        ]
        print(f"| {run} | " + " | ".join(cells) + " |")
    pooled = {k: [x for v in paces.values() for x in v.get(k, [])] for k in counts}
    if pooled.get(1):
        alone = statistics.median(pooled[1])
        ratios = [f"{k}: {statistics.median(pooled[k]) / alone:.2f}" for k in counts if pooled[k]]
        print(f"slowdown against a run alone ({alone:.3f} s/epoch): " + ", ".join(ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
