from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdbloss.lab.experiments.longtail_tables import main, tables
from cdbloss.lab.experiments.store import pack

ROOT = Path(__file__).resolve().parents[3]


def _result(
    root: Path, folder: str, name: str, seed: int, factor: int, val: float, test: float
) -> None:
    run = root / folder / f"seed={seed}__{name}__f={factor}"
    run.mkdir(parents=True)
    config = {
        "seed": seed,
        "loss": {"name": name, "options": {}},
        "data": {"options": {"imbalance_factor": factor}},
    }
    (run / "result.json").write_text(
        json.dumps(
            {
                "config": config,
                "val": {"val_macro_recall": val},
                "test": {"top1_accuracy": test},
            }
        )
    )


def _targets(out: str) -> list[str]:
    """The lines of the targets table."""
    section = out.split("### The targets")[1].split("###")[0]
    return [line for line in section.splitlines() if line.startswith("|")]


def test_paired_differences_and_the_targets_are_computed_from_the_runs(tmp_path: Path) -> None:
    for seed, (ce, bs, cdb) in enumerate([(0.50, 0.60, 0.62), (0.40, 0.55, 0.54)]):
        for name, test in (("ce", ce), ("balanced-softmax", bs), ("cdb-bs", cdb)):
            _result(tmp_path, "mnist_lt", name, seed, 100, val=test, test=test)
    out = tables(tmp_path, {0, 1})
    # CDB-BS against CE: +12 and +14 points -> +13.00 (2-0); against BS: +2, -1 -> +0.50 (1-1)
    assert "| CDB-BS (dyn. tau) | 2 | 58.00 | 58.00 | +13.00 (2-0) | +0.50 (1-1) | - |" in out
    assert "| CDB-BS (dyn. tau) | +13.00 (2-0-0, p=0.5) | +0.50 (1-1-0, p=1) | - |" in out
    # one cell with two seeds is not enough for the targets table
    assert _targets(out)[2:] == []


def test_the_targets_need_every_cell_on_three_seeds(tmp_path: Path) -> None:
    for folder in ("mnist_lt", "fashion_mnist_lt", "cifar10_lt_cpu"):
        for factor in (100, 10):
            # below Balanced Softmax only on Fashion-MNIST-LT at factor 100
            cdb = 0.59 if (folder, factor) == ("fashion_mnist_lt", 100) else 0.61
            for seed in range(3):
                for name, test in (("ce", 0.5), ("balanced-softmax", 0.6), ("cdb-bs", cdb)):
                    _result(tmp_path, folder, name, seed, factor, val=test, test=test)
    out = tables(tmp_path, {0, 1, 2})
    pack(tmp_path / "mnist_lt")  # the same runs from a store give the same tables
    for run in (tmp_path / "mnist_lt").glob("seed=*"):
        (run / "result.json").unlink()
    assert tables(tmp_path, {0, 1, 2}) == out
    assert _targets(out)[2:] == ["| CDB-BS (dyn. tau) | +9.00 | yes | 2 of 3 | yes | not run | - |"]


def test_the_committed_tables_are_what_the_script_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--check", "results/longtail_study/tables.md"], ROOT) == 0, capsys.readouterr()
    (tmp_path / "stale.md").write_text("old\n")
    assert main(["--check", str(tmp_path / "stale.md")], ROOT) == 1
    assert "stale.md is stale: rerun tools/longtail_choose.py" in capsys.readouterr().err
