"""What the per-class difficulty tracks: the statistics, on runs built by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdbloss.lab.experiments.analysis.difficulty_prior import main, run_stats, spearman

ROOT = Path(__file__).resolve().parents[3]


def test_spearman_matches_the_textbook_cases() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2, 2], [1, 2, 3, 4]) == pytest.approx(0.8944, abs=1e-4)  # ties
    assert spearman([1, 1, 1], [1, 2, 3]) != spearman([1, 1, 1], [1, 2, 3])  # NaN: constant


def test_run_stats_of_a_run_whose_rare_class_is_hard_and_under_predicted() -> None:
    # three classes; class 2 is rare, hard on validation and on test, and under-predicted
    history = [
        {"val_per_class_accuracy": [0.9, 0.8, 0.1]},
        {"val_per_class_accuracy": [0.9, 0.7, 0.2]},
        {"val_per_class_accuracy": [0.95, 0.75, 0.3]},
    ]
    confusion = [[9, 1, 0], [1, 8, 1], [3, 3, 4]]  # rows true, columns predicted
    recall = [0.9, 0.8, 0.4]
    precision = [9 / 13, 8 / 12, 4 / 5]
    result = {
        "class_counts": [1000, 100, 10],
        "history": history,
        "test": {
            "per_class_accuracy": recall,
            "per_class_precision": precision,
            "confusion_matrix": confusion,
        },
    }
    s = run_stats(result)
    assert s["rho_freq"] == pytest.approx(-1.0)  # the rarer, the harder, at every epoch
    assert s["rho_val_test"] == pytest.approx(1.0)
    # predicted counts (13, 12, 5) against true (10, 10, 10): half of 3 + 2 + 5 over 30
    assert s["mispredicted"] == pytest.approx(100 * 5 / 30)
    assert s["rho_gap"] == pytest.approx(-1.0)  # the harder, the more under-predicted


def test_the_committed_table_is_what_the_script_prints(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check", "results/prior_study/why.md"], ROOT) == 0, capsys.readouterr()
