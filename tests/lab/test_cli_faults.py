"""Bad input and faults on the command line (issue 23): one clear line, never a traceback.

Each numbered item of the issue runs ``python -m cdbloss`` as a subprocess (about 2 s
each, the torch import) and checks the exit status, that no traceback is printed, and
that the message names the culprit. Variants of an item run in-process through
:func:`cdbloss.lab.cli.main`. Item 8 (a damaged MNIST cache) is in tests/lab/data/test_mnist.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cdbloss.lab.cli import main
from cdbloss.lab.engine.config import config_from_dict
from cdbloss.lab.engine.lock import LOCK_NAME, folder_lock
from cdbloss.lab.engine.trainer import Trainer
from cdbloss.lab.experiments.sweep import run_sweep
from tests.lab.engine.conftest import tiny_config

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "CDBLOSS_CACHE": str(cwd / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "cdbloss", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def one_line(err: str, rc: int, want_rc: int, *culprits: str) -> str:
    """The one ``cdbloss:`` line of ``err``, checked: exit status, no traceback, culprits."""
    assert rc == want_rc, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("cdbloss:")]
    assert len(lines) == 1, err
    for culprit in culprits:
        assert culprit in lines[0], lines[0]
    return lines[0]


def write_config(folder: Path, text: str | None = None, **overrides: Any) -> Path:
    path = folder / "cfg.yaml"
    if text is None:
        import yaml

        text = yaml.safe_dump(tiny_config(**{"train__epochs": 1, **overrides}))
    path.write_text(text)
    return path


def test_1_scientific_notation_in_files_and_overrides(tmp_path: Path) -> None:
    raw = tiny_config(train__epochs=1)
    raw["optim"]["lr"] = "LR"
    import yaml

    cfg = write_config(tmp_path, yaml.safe_dump(raw).replace("LR", "1e-3"))
    proc = cli(
        "train", cfg, "optim.weight_decay=5e-4", "loss.options.eps=1e-4", "--out", "r", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["optim"]["lr"] == 0.001 and saved["optim"]["weight_decay"] == 0.0005
    assert saved["loss"]["options"]["eps"] == 0.0001


def test_2_malformed_yaml_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, "name: x\noptim: {lr: 0.1\n  momentum: [\n")
    proc = cli("train", cfg, cwd=tmp_path)
    one_line(proc.stderr, proc.returncode, 2, str(cfg), "not valid YAML at line 3")
    bad_json = tmp_path / "cfg.json"
    bad_json.write_text('{"name": "x",}')
    assert main(["sweep", str(bad_json)]) == 2
    one_line(capsys.readouterr().err, 2, 2, "cfg.json", "not valid JSON at line 1")
    assert main(["train", str(write_config(tmp_path)), "optim.lr=[0.1"]) == 2
    one_line(capsys.readouterr().err, 2, 2, "override 'optim.lr=[0.1'", "not valid YAML")


def test_3_unknown_data_option_is_refused_before_any_data(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    for command in ("train", "sweep"):
        proc = cli(command, cfg, "data.options.ratoi=0.9", "--out", command, cwd=tmp_path)
        one_line(
            proc.stderr,
            proc.returncode,
            2,
            "'data.options'",
            "has no option 'ratoi'",
            "num_classes",
        )
        assert not (tmp_path / command).exists()  # no run folder, no run started


def _finished_run(folder: Path, epochs: int = 1) -> Path:
    Trainer(config_from_dict(tiny_config(train__epochs=epochs)), folder).fit()
    return folder


def test_4_damaged_checkpoints_name_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _finished_run(tmp_path / "r")
    (run / "result.json").unlink()  # so that the next call resumes from the checkpoint
    ckpt = run / "checkpoint.pt"
    good = ckpt.read_bytes()
    cfg = write_config(tmp_path)
    ckpt.write_bytes(good[: len(good) // 2])  # truncated
    proc = cli("train", cfg, "--out", run, cwd=tmp_path)
    line = one_line(proc.stderr, proc.returncode, 2, str(ckpt), "is unreadable", "deleting it")
    assert "weights_only" not in proc.stderr
    for damaged in (b"", os.urandom(4096)):  # empty, random bytes
        ckpt.write_bytes(damaged)
        assert main(["train", str(cfg), "--out", str(run)]) == 2
        line = one_line(capsys.readouterr().err, 2, 2, str(ckpt), "is unreadable", "deleting it")
        assert "weights_only" not in line
    ckpt.unlink()  # as the message says: the run restarts from scratch
    assert main(["train", str(cfg), "--out", str(run)]) == 0


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie of this test process' own children still answers; ours are not children
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z"


#: a run long enough to be stopped from outside while it trains
LONG_RUN: dict[str, Any] = {
    "train__epochs": 500,
    "train__batch_size": 8,
    "data__options": {"num_classes": 3, "imbalance_factor": 20, "max_per_class": 2000},
}


def test_5_sweep_workers_die_with_their_parent(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path,
        **LONG_RUN,
        sweep={"seed": [0, 1]},
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-m", "cdbloss", "sweep", str(cfg), "--workers", "2", "--out", "sw"]
    parent = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    locks = [tmp_path / "sw" / f"seed={s}" / LOCK_NAME for s in (0, 1)]
    deadline = time.time() + 120
    while time.time() < deadline and not all(p.exists() and p.read_text() for p in locks):
        time.sleep(0.1)
    workers = [int(p.read_text()) for p in locks]
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=30)
    deadline = time.time() + 30
    while time.time() < deadline and not all(_pid_gone(pid) for pid in workers):
        time.sleep(0.1)
    assert all(_pid_gone(pid) for pid in workers), "orphaned sweep workers still run"
    assert not any(p.exists() for p in locks)  # each worker released its run's lock


def test_one_writer_per_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    run = tmp_path / "r"
    with folder_lock(run):  # a live process (this one) writes the folder
        assert main(["train", str(cfg), "--out", str(run)]) == 1
        one_line(capsys.readouterr().err, 1, 1, f"is in use by process {os.getpid()}")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / LOCK_NAME).write_text(f"{dead.pid}\n")  # left behind by a killed process
    assert main(["train", str(cfg), "--out", str(run)]) == 0
    err = capsys.readouterr().err
    assert f"taking over the stale lock of process {dead.pid}" in err
    assert not (run / LOCK_NAME).exists()


@pytest.fixture
def sweep_folder(tmp_path: Path) -> Path:
    """A finished sweep of two one-epoch runs."""
    out = tmp_path / "sw"
    cfg = config_from_dict(tiny_config(train__epochs=1, sweep={"seed": [0, 1]}))
    run_sweep(cfg, out, workers=1, progress=False)
    return out


def test_6_report_names_and_skips_unreadable_and_duplicate_runs(sweep_folder: Path) -> None:
    bad = sweep_folder / "seed=0" / "result.json"
    bad.write_text('{"status": "done", "config"')  # cut short
    shutil.copytree(sweep_folder / "seed=1", sweep_folder / "seed=1 copy")
    proc = cli("report", sweep_folder, "--no-figures", cwd=sweep_folder.parent)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, proc.stderr
    assert str(bad) in warnings[0] and "not valid JSON" in warnings[0]
    assert "is the same run and seed as" in warnings[1]
    header = (sweep_folder / "report.md").read_text().splitlines()[0]
    assert "1 finished run under" in header and "2 result files skipped" in header


def test_7_train_into_a_sweep_folder_is_refused(
    sweep_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(sweep_folder.parent)
    proc = cli("train", cfg, "--out", sweep_folder, cwd=sweep_folder.parent)
    one_line(proc.stderr, proc.returncode, 2, f"{str(sweep_folder)!r} is a sweep's folder")
    assert not (sweep_folder / "config.json").exists()
    assert main(["sweep", str(cfg), "--out", str(sweep_folder / "seed=0")]) == 2
    one_line(capsys.readouterr().err, 2, 2, "is one run's folder")


def test_9_small_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    # a NaN in epoch 1 names no checkpoint that does not exist
    proc = cli("train", cfg, "optim.lr=1e9", "--out", "nan", cwd=tmp_path)
    one_line(proc.stderr, proc.returncode, 1, "loss became nan at epoch 1", "no checkpoint")
    # --out on a file, or under one
    (tmp_path / "file").write_text("x")
    for out in ("file", "file/run"):
        assert main(["train", str(cfg), "--out", str(tmp_path / out)]) == 2
        one_line(capsys.readouterr().err, 2, 2, f"{str(tmp_path / 'file')!r} is a file")
    # data info PROTOCOL --help lists the protocol's options
    assert main(["data", "info", "synthetic-lt", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--imbalance-factor" in out and "default 20.0" in out


def test_9_ctrl_c_says_where_the_run_resumes(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path,
        **LONG_RUN,
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cdbloss", "train", str(cfg), "--out", "r"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = tmp_path / "r" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not metrics.exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    line = one_line(err, proc.returncode, 130, "interrupted", "'r'", "the same command resumes")
    assert "checkpoint of epoch" in line
    assert not (tmp_path / "r" / LOCK_NAME).exists()
