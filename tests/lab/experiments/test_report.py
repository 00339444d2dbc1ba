"""The report of a tiny sweep: rows, columns, CSV and PNG figures."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from cdbloss.lab.engine.config import config_from_dict, config_to_dict
from cdbloss.lab.experiments.report import BEST_TAU_ROW, method_label, write_report
from cdbloss.lab.experiments.sweep import run_sweep
from tests.lab.engine.conftest import tiny_config


def test_report_of_a_tiny_sweep(tmp_path: Path) -> None:
    cfg = config_from_dict(
        tiny_config(
            train__epochs=2,
            sweep={
                "loss.name": ["ce", "cdb-ce-paper"],
                "data.options.imbalance_factor": [5, 20],
                "seed": [0, 1],
            },
        )
    )
    run_sweep(cfg, tmp_path / "runs", workers=2, progress=False)
    report = write_report(tmp_path / "runs")
    text = report.read_text()
    assert "| method | 5 | 20 |" in text
    assert "| CE | " in text and "| CDB-CE (dyn. tau) | " in text
    assert text.count("(n=2)") == 4  # 2 methods x 2 factors, 2 seeds each
    compute = text[text.index("## Compute") :]
    assert "| CE | 4 | " in compute and "| CDB-CE (dyn. tau) | 4 | " in compute
    assert "All 8 runs: " in compute
    rows = list(csv.DictReader((tmp_path / "runs" / "report.csv").open()))
    main = [r for r in rows if r["metric"] == "test top-1 %"]
    assert {(r["method"], r["value"]) for r in main} == {
        (m, v) for m in ("CE", "CDB-CE (dyn. tau)") for v in ("5", "20")
    }
    figs = sorted(p.name for p in (tmp_path / "runs" / "figures").iterdir())
    assert figs == ["synthetic-lt_cdb_weights_tau.png", "synthetic-lt_per_class_vs_count.png"]
    for name in figs:
        assert (tmp_path / "runs" / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_draws_the_smoothed_weights_beside_the_paper_ones(tmp_path: Path) -> None:
    cfg = config_from_dict(
        tiny_config(
            train__epochs=3,
            sweep={
                "variants": [
                    {"loss.name": "cdb-ce-paper", "loss.options": {"tau": "dynamic"}},
                    {
                        "loss.name": "cdb-ce-paper",
                        "loss.options": {"tau": "dynamic", "momentum": 0.5},
                    },
                    {"loss.name": "cdb-ce-paper", "loss.options": {"tau": 1.0}},
                    {"loss.name": "cdb-ce-paper", "loss.options": {"tau": 2.0}},
                ],
            },
        )
    )
    run_sweep(cfg, tmp_path / "runs", workers=1, progress=False)
    text = write_report(tmp_path / "runs").read_text()
    assert "| CDB-CE (dyn. tau, momentum 0.5) | " in text
    figs = sorted(p.name for p in (tmp_path / "runs" / "figures").iterdir())
    assert "synthetic-lt_cdb_weights_tau_momentum.png" in figs
    assert "synthetic-lt_cdb_weights_tau.png" in figs
    assert "synthetic-lt_metric_vs_tau.png" in figs
    # The option reached the loss: the second update is an average, not the last epoch.
    hist = {
        json.loads((d / "config.json").read_text())["loss"]["options"].get(
            "momentum", 0
        ): json.loads((d / "result.json").read_text())["history"]
        for d in (tmp_path / "runs").iterdir()
        if (d / "result.json").exists() and "dynamic" in d.name
    }
    assert hist[0][0]["weights"] == hist[0.5][0]["weights"]  # the first update: as the paper
    assert hist[0][1]["weights"] != hist[0.5][1]["weights"]


def test_report_of_an_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no finished runs"):
        write_report(tmp_path)


def test_method_labels() -> None:
    assert method_label({"loss": {"name": "cdb-ce", "options": {"tau": 1.5}}}) == "CDB-CE (tau=1.5)"
    assert method_label({"loss": {"name": "cdb-ce", "options": {}}}) == "CDB-CE (dyn. tau)"
    assert (
        method_label({"loss": {"name": "cdb-ce", "options": {"reduction": "sample_mean"}}})
        == "CDB-CE (dyn. tau) [sample_mean]"
    )
    assert method_label({"loss": {"name": "ce"}, "train": {"method": "l2rw"}}) == "L2RW"
    assert method_label({"loss": {"name": "cb-ce"}}) == "CB"
    smoothed = {"name": "cdb-ce", "options": {"tau": "dynamic", "momentum": 0.9}}
    assert method_label({"loss": smoothed}) == "CDB-CE (dyn. tau, momentum 0.9)"
    smoothed = {"name": "cdb-ce", "options": {"tau": 0.5, "momentum": 0.5}}
    assert method_label({"loss": smoothed}) == "CDB-CE (tau=0.5, momentum 0.5)"
    floored = {"name": "cdb-ce", "options": {"tau": "dynamic", "min_difficulty": 0.002}}
    assert method_label({"loss": floored}) == "CDB-CE (dyn. tau, min. difficulty 0.002)"
    solved = {"name": "cdb-ce", "options": {"tau": "dynamic", "solved_accuracy": 0.99}}
    assert method_label({"loss": solved}) == "CDB-CE (dyn. tau, solved at 0.99)"
    paper = {"name": "cdb-ce", "options": {"tau": 1.0, "solved_accuracy": 1.0}}
    assert method_label({"loss": paper}) == "CDB-CE (tau=1)"


def test_runs_with_other_settings_are_never_averaged_together(tmp_path: Path) -> None:
    from cdbloss.lab.experiments.report import RunRecord, row_labels

    def run(name: str, epochs: int, seed: int, ratio: float) -> RunRecord:
        config = {
            "seed": seed,
            "data": {"protocol": "mnist-4v9", "options": {"ratio": ratio}},
            "loss": {"name": "ce", "options": {}},
            "train": {"epochs": epochs},
        }
        return RunRecord(tmp_path / name, config, {})

    runs = [run("a", 80, 0, 0.9), run("b", 80, 1, 0.99), run("c", 160, 0, 0.9)]
    labels = row_labels(runs, "ratio")
    assert labels[tmp_path / "a"] == labels[tmp_path / "b"] == "CE (epochs=80)"
    assert labels[tmp_path / "c"] == "CE (epochs=160)"
    assert row_labels(runs[:2], "ratio")[tmp_path / "a"] == "CE"  # seeds and ratios never split
    # settings of how a run executes, not what it computes, never split either
    a, b = run("d", 80, 0, 0.9), run("e", 80, 1, 0.9)
    a.config["train"].update(device="cuda", transform_on_device=True, threads=2)
    assert set(row_labels([a, b], "ratio").values()) == {"CE"}


def _fake_run(
    folder: Path,
    tau: Any,
    factor: int,
    seed: int,
    val: float,
    test: float,
    momentum: float = 0.0,
    min_difficulty: float = 0.0,
) -> None:
    """A finished run's files, as the trainer writes them, with chosen scores."""
    from cdbloss.lab.io import atomic_write_json

    config = config_to_dict(
        config_from_dict(
            tiny_config(
                seed=seed,
                loss={
                    "name": "cdb-ce",
                    "options": {
                        "tau": tau,
                        **({"momentum": momentum} if momentum else {}),
                        **({"min_difficulty": min_difficulty} if min_difficulty else {}),
                    },
                },
                data__options={"num_classes": 3, "imbalance_factor": factor},
            )
        )
    )
    test_summary = {"top1_accuracy": test, "per_class_accuracy": [test] * 3, "macro_recall": test}
    result = {
        "status": "done",
        "config": config,
        "class_counts": [20, 5, 1],
        "val": {"val_top1_accuracy": val, "val_macro_recall": val},
        "test": test_summary,
        "history": [],
    }
    name = f"tau={tau}__m={momentum}__d={min_difficulty}__f={factor}__s={seed}"
    atomic_write_json(folder / name / "result.json", result)


def test_best_fixed_tau_row_is_chosen_on_validation_not_on_test(tmp_path: Path) -> None:
    # factor 10: tau 1 is best on validation, tau 2 on test -> the row must show tau 1
    # factor 50: tau 2 is best on validation (mean over two seeds)
    for seed, (v1, v2) in enumerate([(0.80, 0.60), (0.78, 0.62)]):
        _fake_run(tmp_path, 1.0, 10, seed, val=v1, test=0.50)
        _fake_run(tmp_path, 2.0, 10, seed, val=v2, test=0.90)
    for seed, (v1, v2) in enumerate([(0.50, 0.70), (0.90, 0.71)]):  # means 0.70 vs 0.705
        _fake_run(tmp_path, 1.0, 50, seed, val=v1, test=0.40)
        _fake_run(tmp_path, 2.0, 50, seed, val=v2, test=0.30)
    _fake_run(tmp_path, "dynamic", 10, 0, val=0.99, test=0.10)  # not a fixed tau: never chosen
    _fake_run(tmp_path, 1.0, 10, 0, val=0.99, test=0.10, momentum=0.9)  # nor a smoothed one
    _fake_run(tmp_path, 1.0, 10, 0, val=0.99, test=0.10, min_difficulty=0.01)  # nor a floored one
    text = write_report(tmp_path, figures=False).read_text()
    row = next(line for line in text.splitlines() if line.startswith(f"| {BEST_TAU_ROW} |"))
    assert row == f"| {BEST_TAU_ROW} | 50.00 +- 0.00 (n=2) tau=1 | 30.00 +- 0.00 (n=2) tau=2 |"
    assert "chosen without looking at the test set" in text


def test_no_best_fixed_tau_row_without_a_choice(tmp_path: Path) -> None:
    _fake_run(tmp_path, 1.0, 10, 0, val=0.8, test=0.5)
    _fake_run(tmp_path, "dynamic", 10, 0, val=0.9, test=0.6)
    assert BEST_TAU_ROW not in write_report(tmp_path, figures=False).read_text()


def test_one_report_from_several_folders(tmp_path: Path) -> None:
    _fake_run(tmp_path / "table2", 1.0, 10, 0, val=0.8, test=0.5)
    _fake_run(tmp_path / "table1", "dynamic", 10, 0, val=0.9, test=0.6)
    with pytest.raises(ValueError, match="needs out_dir"):
        write_report([tmp_path / "table2", tmp_path / "table1"])
    out = write_report([tmp_path / "table2", tmp_path / "table1"], tmp_path / "both", figures=False)
    text = out.read_text()
    assert "| CDB-CE (tau=1) | 50.00 (n=1) |" in text
    assert "| CDB-CE (dyn. tau) | 60.00 (n=1) |" in text
    assert out.parent == tmp_path / "both"


def test_paired_table_compares_each_row_with_cdb_seed_by_seed(tmp_path: Path) -> None:
    # top-1 per seed: dynamic 0.60/0.70/0.80, tau 1 0.50/0.75/0.80 -> advantage +10, -5, 0 points
    for seed, (dyn, fixed) in enumerate([(0.60, 0.50), (0.70, 0.75), (0.80, 0.80)]):
        _fake_run(tmp_path, "dynamic", 10, seed, val=0.5, test=dyn)
        _fake_run(tmp_path, 1.0, 10, seed, val=0.5, test=fixed)
    _fake_run(tmp_path, 1.0, 10, 3, val=0.5, test=0.99)  # no dynamic run on seed 3: unpaired
    text = write_report(tmp_path, figures=False).read_text()
    assert "Paired by seed against CDB-CE (dyn. tau)" in text
    assert "| CDB-CE (tau=1) | +1.67 (1/3, 1 tie) | 1/3, 1 tie, p = 1.000 |" in text
    rows = list(csv.DictReader((tmp_path / "report.csv").open()))
    paired = [r for r in rows if r["metric"].startswith("advantage of CDB-CE (dyn. tau)")]
    assert len(paired) == 1 and paired[0]["method"] == "CDB-CE (tau=1)"
    assert float(paired[0]["mean"]) == pytest.approx(5 / 3) and paired[0]["n"] == "3"

    # the other way round, on request: the fixed tau is 1.67 points behind
    text = write_report(tmp_path, figures=False, paired_against="CDB-CE (tau=1)").read_text()
    assert "| CDB-CE (dyn. tau) | -1.67 (1/3, 1 tie) | 1/3, 1 tie, p = 1.000 |" in text


def test_report_command_takes_the_paired_row(tmp_path: Path, capsys: Any) -> None:
    from cdbloss.lab.cli import main

    for seed, (dyn, fixed) in enumerate([(0.60, 0.50), (0.70, 0.75)]):
        _fake_run(tmp_path, "dynamic", 10, seed, val=0.5, test=dyn)
        _fake_run(tmp_path, 1.0, 10, seed, val=0.5, test=fixed)
    args = ["report", str(tmp_path), "--no-figures", "--paired-against", "CDB-CE (tau=1)"]
    assert main(args) == 0
    assert "| CDB-CE (dyn. tau) | -2.50 (1/2) | 1/2, p = 1.000 |" in capsys.readouterr().out


def test_paired_table_needs_two_seeds_and_a_known_row(tmp_path: Path) -> None:
    _fake_run(tmp_path, "dynamic", 10, 0, val=0.5, test=0.6)
    _fake_run(tmp_path, 1.0, 10, 0, val=0.5, test=0.5)
    assert "Paired by seed" not in write_report(tmp_path, figures=False).read_text()
    (tmp_path / "report.md").unlink()
    with pytest.raises(ValueError, match=r"'CE' is not a row.*'CDB-CE \(dyn\. tau\)'"):
        write_report(tmp_path, figures=False, paired_against="CE")
    assert not (tmp_path / "report.md").exists()  # refused before anything was written


def test_sign_test_matches_counting_every_outcome() -> None:
    import itertools

    from cdbloss.lab.experiments.report import sign_test

    for n in range(0, 9):
        outcomes = list(itertools.product([0, 1], repeat=n))  # 1: the reference wins the pair
        for wins in range(n + 1):
            uneven = abs(2 * wins - n)
            brute = sum(abs(2 * sum(o) - n) >= uneven for o in outcomes) / len(outcomes)
            assert sign_test(wins, n - wins) == pytest.approx(brute)
    assert sign_test(10, 0) == pytest.approx(2 / 1024)
    assert sign_test(26, 4) < 0.001 < sign_test(10, 2) < 0.05
    with pytest.raises(ValueError, match="must be >= 0"):
        sign_test(-1, 3)


def test_paired_advantage_is_positive_when_the_reference_is_better() -> None:
    from cdbloss.lab.experiments.report import paired_advantage

    assert paired_advantage({0: 5.0, 1: 3.0}, {0: 4.0, 1: 3.5, 2: 1.0}, "error") == [1.0, -0.5]
    assert paired_advantage({0: 90.0}, {0: 92.0}, "top1") == [2.0]
    assert paired_advantage({0: 90.0}, {1: 92.0}, "top1") == []


def test_runs_csv_lists_every_run_behind_the_table(tmp_path: Path) -> None:
    for seed, (dyn, fixed) in enumerate([(0.60, 0.50), (0.70, 0.75)]):
        _fake_run(tmp_path / "runs", "dynamic", 10, seed, val=0.5, test=dyn)
        _fake_run(tmp_path / "runs", 1.0, 50, seed, val=0.5, test=fixed)
    write_report(tmp_path / "runs", figures=False)
    rows = list(csv.DictReader((tmp_path / "runs" / "runs.csv").open()))
    got = [(r["method"], r["value"], r["seed"], float(r["result"])) for r in rows]
    assert got == [
        ("CDB-CE (dyn. tau)", "10", "0", pytest.approx(60.0)),
        ("CDB-CE (dyn. tau)", "10", "1", pytest.approx(70.0)),
        ("CDB-CE (tau=1)", "50", "0", pytest.approx(50.0)),
        ("CDB-CE (tau=1)", "50", "1", pytest.approx(75.0)),
    ]  # the table's row order, then column, then seed
    assert {r["column"] for r in rows} == {"imbalance_factor"}
    assert {r["metric"] for r in rows} == {"test top-1 %"}
    # each row names its run's folder, so a per-seed number can be traced to its file
    for r in rows:
        assert (Path(r["run"]) / "result.json").is_file()


def test_report_keeps_only_the_seeds_asked_for(tmp_path: Path, capsys: Any) -> None:
    from cdbloss.lab.cli import main

    for seed, test in enumerate([0.60, 0.70, 0.80]):
        _fake_run(tmp_path, "dynamic", 10, seed, val=0.5, test=test)
    text = write_report(tmp_path, figures=False, seeds=[0, 2]).read_text()
    assert "(seeds 0, 2 only)" in text
    assert "| CDB-CE (dyn. tau) | 70.00 +- 14.14 (n=2) |" in text
    rows = list(csv.DictReader((tmp_path / "runs.csv").open()))
    assert [r["seed"] for r in rows] == ["0", "2"]
    assert "(seed 1 only)" in write_report(tmp_path, figures=False, seeds=[1]).read_text()

    assert main(["report", str(tmp_path), "--no-figures", "--seeds", "1-2"]) == 0
    assert "| CDB-CE (dyn. tau) | 75.00 +- 7.07 (n=2) |" in capsys.readouterr().out

    (tmp_path / "report.md").unlink()
    with pytest.raises(ValueError, match=r"no finished run has seed\(s\) \[5\].*seeds \[0, 1, 2\]"):
        write_report(tmp_path, figures=False, seeds=[0, 5])
    assert not (tmp_path / "report.md").exists()  # refused before anything was written
    with pytest.raises(ValueError, match="keeps no run"):
        write_report(tmp_path, figures=False, seeds=[])
    with pytest.raises(SystemExit):
        main(["report", str(tmp_path), "--seeds", "zero"])
    assert "expected seeds like '0,1,4' or '0-4', got 'zero'" in capsys.readouterr().err


def test_a_report_of_one_run_speaks_of_it_in_the_singular(tmp_path: Path) -> None:
    _fake_run(tmp_path, 1.0, 10, 0, val=0.8, test=0.7)
    (path,) = tmp_path.glob("*/result.json")
    result = json.loads(path.read_text())
    result["timing"] = {"train_s": 10.0, "val_s": 1.0}
    path.write_text(json.dumps(result))
    text = write_report(tmp_path, figures=False).read_text()
    assert text.startswith(f"# Report: 1 finished run under `{tmp_path}`")
    assert "The one run: 11 s (0.00 h)." in text


def test_new_cdb_settings_and_presets_get_their_own_labels() -> None:
    def label(name: str, **opts: Any) -> str:
        return method_label({"loss": {"name": name, "options": opts}})

    assert label("cdb-ce-authors") == "CDB-CE authors' code"
    assert label("cdb-ce-paper", max_ratio=10) == "CDB-CE (dyn. tau, cap 10)"  # as legacy cdb-ce
    assert label("cdb-ce", tau="dynamic-sigmoid", eps=0.01, momentum=0.9, max_ratio=10) == (
        "CDB-CE (dynamic-sigmoid, eps 0.01, momentum 0.9, cap 10)"
    )
    assert label("cdb-ce", tau=1.0, defer_until=13) == "CDB-CE (tau=1, from epoch 13)"
    assert label("cdb-ce", source="train", prior_strength=5) == (
        "CDB-CE (dyn. tau, prior 5, train accuracy)"
    )
    assert label("cdb-bs", tau="dynamic-sigmoid") == "CDB-BS (dynamic-sigmoid)"
    # the prior study's forms: the offset, the CDB-S sampler, DBM's margins
    assert label("cdb-bs-offset", offset_scale=2.0) == "CDB-BS offset (dyn. tau, offset x2)"
    assert label("dbm-bs") == "DBM-BS"
    assert label("dbm-bs", max_margin=0.001, instance_scale=0.0) == (
        "DBM-BS (max margin 0.001, instance scale 0)"
    )
    sampled = {"loss": {"name": "balanced-softmax"}, "train": {"sampler": "cdb"}}
    assert method_label(sampled) == "Balanced Softmax + CDB-S"


def test_runs_csv_gives_the_last_epoch_beside_a_best_on_validation_choice(tmp_path: Path) -> None:
    _fake_run(tmp_path / "runs", 1.0, 10, 0, val=0.5, test=0.6)
    write_report(tmp_path / "runs", figures=False)
    header = (tmp_path / "runs" / "runs.csv").read_text().splitlines()[0]
    assert "top1_accuracy_last" not in header  # every run kept its last epoch
    result_file = next((tmp_path / "runs").glob("*/result.json"))
    result = json.loads(result_file.read_text())
    result.update(select="best", best_epoch=3, test_last={"top1_accuracy": 0.55})
    result_file.write_text(json.dumps(result))
    write_report(tmp_path / "runs", figures=False)
    row = next(csv.DictReader((tmp_path / "runs" / "runs.csv").open()))
    assert (row["selected_epoch"], row["top1_accuracy_last"], row["top1_accuracy"]) == (
        "3",
        "0.55",
        "0.6",
    )
