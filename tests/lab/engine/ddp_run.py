"""Train one experiment under ``torchrun`` and record what each rank evaluated.

``torchrun --nproc-per-node 2 tests/lab/engine/ddp_run.py CONFIG OUT`` runs the
config into ``OUT`` (as ``cdbloss train`` does) and each rank writes
``OUT/rank<r>.json``: for every evaluation pass (validation after each epoch,
then test), the dataset's size, the global sample count of the pass and this
rank's own per-class counts (the tracker's local buffers, before any sum over
ranks). tests/lab/engine/test_trainer.py reads them to check that the ranks split
each set without overlap.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from cdbloss.difficulty import ClassDifficulty
from cdbloss.lab.engine.config import load_config
from cdbloss.lab.engine.trainer import Trainer


class RecordingTrainer(Trainer):
    """A :class:`Trainer` that keeps this rank's counts of every evaluation pass."""

    passes: list[dict[str, Any]]

    def evaluate(
        self, model: nn.Module, dataset: Dataset[Any], num_classes: int, train_counts: list[int]
    ) -> tuple[dict[str, Any], ClassDifficulty]:
        summary, tracker = super().evaluate(model, dataset, num_classes, train_counts)
        self.passes.append(
            {
                "size": len(dataset),  # type: ignore[arg-type]
                "num_samples": summary["num_samples"],
                "local_total": tracker.total.tolist(),
            }
        )
        return summary, tracker


def main(config: str, out: str) -> None:
    trainer = RecordingTrainer(load_config(config), out)
    trainer.passes = []
    trainer.fit()
    assert trainer.dist is not None
    Path(out, f"rank{trainer.dist.rank}.json").write_text(json.dumps(trainer.passes))


if __name__ == "__main__":
    main(*sys.argv[1:])
