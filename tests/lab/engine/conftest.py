"""Shared pieces of the engine tests: a tiny synthetic experiment."""

from __future__ import annotations

from typing import Any

import pytest

from cdbloss.lab.engine.config import ExperimentConfig, config_from_dict


def tiny_config(**overrides: Any) -> dict[str, Any]:
    """A 3-class synthetic long-tail problem with an MLP: a few epochs take about a second."""
    raw: dict[str, Any] = {
        "name": "tiny",
        "seed": 0,
        "data": {"protocol": "synthetic-lt", "options": {"num_classes": 3, "imbalance_factor": 20}},
        "model": {"name": "mlp", "options": {"in_features": 8, "hidden": 16}},
        "loss": {"name": "cdb-ce-paper"},
        "optim": {"lr": 0.05, "milestones": [3]},
        "train": {"epochs": 4, "batch_size": 32, "progress": False, "threads": 1},
    }
    for key, value in overrides.items():
        node = raw
        parts = key.split("__")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return raw


@pytest.fixture
def tiny() -> ExperimentConfig:
    return config_from_dict(tiny_config())
