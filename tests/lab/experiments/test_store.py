"""The results store: pack and expand round trip, reports from a store, bad stores."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from cdbloss.lab.cli import main
from cdbloss.lab.engine.config import config_from_dict
from cdbloss.lab.experiments.report import load_runs, write_report
from cdbloss.lab.experiments.store import (
    STORE_NAME,
    StoredRun,
    StoreError,
    expand,
    find_stored_run,
    json_text,
    pack,
    read_run_file,
    read_store,
    store_bytes,
    write_store,
)
from cdbloss.lab.experiments.sweep import run_sweep
from tests.lab.engine.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[3]
TABLE1 = ROOT / "results" / "mnist_4v9_table1"


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def _grid(root: Path) -> Path:
    """A grid of run folders: standard files, a file without its final newline, a run one
    level deeper, a metrics.jsonl, a run without config.json and a folder without a result."""
    grid = root / "grid"
    runs = {
        "seed=0__name=ce": {"status": "done", "x": [1.5, float("nan")], "é": "ü"},
        "seed=1__name=ce": {"status": "done", "x": 1e-7},
        "sub/seed=0__name=cdb-ce": {"status": "failed"},
    }
    for name, result in runs.items():
        run = grid / name
        run.mkdir(parents=True)
        (run / "config.json").write_text(json_text({"name": name, "lr": 0.1}))
        (run / "result.json").write_text(json_text(result))
    (grid / "seed=1__name=ce" / "result.json").write_text(json.dumps({"status": "done"}, indent=1))
    (grid / "seed=0__name=ce" / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    (grid / "sub/seed=0__name=cdb-ce" / "config.json").unlink()
    (grid / "unfinished").mkdir()
    (grid / "unfinished" / "config.json").write_text("{}\n")
    return grid


def test_pack_then_expand_gives_every_file_back_byte_for_byte(tmp_path: Path) -> None:
    grid = _grid(tmp_path)
    before = _files(grid)
    done = pack(grid, also=["metrics.jsonl"])
    assert (done.store, done.packed, done.total) == (grid / STORE_NAME, 3, 3)
    assert [r.run for r in read_store(done.store)] == [
        "seed=0__name=ce",
        "seed=1__name=ce",
        "sub/seed=0__name=cdb-ce",
    ]
    assert expand(done.store, tmp_path / "out") == 6
    after = _files(tmp_path / "out")
    assert after == {k: v for k, v in before.items() if not k.startswith("unfinished/")}
    # expanding over the same files writes nothing and raises nothing
    assert expand(done.store, tmp_path / "out") == 0


def test_the_store_bytes_depend_on_the_runs_only(tmp_path: Path) -> None:
    grid = _grid(tmp_path)
    first = pack(grid).store.read_bytes()
    assert first[4:8] == b"\0\0\0\0"  # no time stamp in the gzip header
    assert store_bytes(reversed(read_store(grid / STORE_NAME))) == first  # order is the store's
    (grid / STORE_NAME).unlink()
    shutil.copytree(grid, tmp_path / "copy")
    assert pack(tmp_path / "copy").store.read_bytes() == first  # same runs elsewhere, same bytes
    pack(grid)
    write_store(tmp_path / "again.jsonl.gz", read_store(grid / STORE_NAME))
    assert (tmp_path / "again.jsonl.gz").read_bytes() == first


def test_pack_keeps_stored_runs_and_replaces_those_in_folders(tmp_path: Path) -> None:
    grid = _grid(tmp_path)
    pack(grid)
    shutil.rmtree(grid / "seed=0__name=ce")
    (grid / "seed=1__name=ce" / "result.json").write_text(json_text({"status": "done", "x": 2}))
    done = pack(grid)
    assert (done.packed, done.total) == (2, 3)
    runs = {r.run: r for r in read_store(done.store)}
    assert runs["seed=1__name=ce"].result == {"status": "done", "x": 2}
    assert runs["seed=0__name=ce"].result["x"][0] == 1.5


def test_a_report_from_a_store_is_the_report_from_its_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    grid = Path("results/grid")
    names = [
        f"seed={s}__name={n}__ratio=0.9"
        for s in (0, 1)
        for n in ("ce", "cdb-ce__options=tau_dynamic")
    ]
    for name in names:
        (grid / name).mkdir(parents=True)
        (grid / name / "result.json").write_text(read_run_file(TABLE1 / name, "result.json"))
    write_report(grid, figures=False)
    want = {n: (grid / n).read_text() for n in ("report.md", "report.csv", "runs.csv")}
    assert "4 finished runs" in want["report.md"]
    pack(grid)
    for name in names:
        shutil.rmtree(grid / name)
    for source in (grid, grid / STORE_NAME):  # the grid folder, or the store itself
        write_report(source, tmp_path / "out", figures=False)
        got = {n: (tmp_path / "out" / n).read_text() for n in want}
        assert got["report.csv"] == want["report.csv"]
        assert got["runs.csv"] == want["runs.csv"]  # the same run paths, in the same order
        assert got["report.md"] == want["report.md"].replace(str(grid), str(source))
    # a folder expanded from the store counts once, not twice
    expand(grid / STORE_NAME)
    assert len(load_runs(grid)) == 4
    assert write_report(grid, figures=False).read_text() == want["report.md"]


def test_a_packed_grid_expanded_again_is_resumed_not_retrained(tmp_path: Path) -> None:
    cfg = config_from_dict(tiny_config(train__epochs=1, sweep={"seed": [0, 1]}))
    run_sweep(cfg, tmp_path / "grid", progress=False)
    pack(tmp_path / "grid")
    for run in (tmp_path / "grid").glob("seed=*"):
        shutil.rmtree(run)
    expand(tmp_path / "grid" / STORE_NAME)
    statuses = run_sweep(cfg, tmp_path / "grid", progress=False)
    assert [s.get("skipped") for s in statuses.values()] == [True, True]


def _store_with(tmp_path: Path, text: str) -> Path:
    path = tmp_path / STORE_NAME
    path.write_bytes(gzip.compress(text.encode(), mtime=0))
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"run": "a", "result": {}}\n{"run": "b", "result": {}\n', "line 2: not valid JSON"),
        ('{"run": "a", "result": {}}', "cut short: its last line has no newline"),
        ('["a"]\n', "line 1: expected a JSON object, got list"),
        ('{"run": "a"}\n', "line 1: 'result' must be a JSON object"),
        ('{"run": "../a", "result": {}}\n', "'run' must be a relative path below the store"),
        ('{"run": "/etc", "result": {}}\n', "'run' must be a relative path below the store"),
        ('{"run": "a", "result": {}, "text": {"../x": ""}}\n', "relative path below the store"),
        ('{"run": "a", "result": {}}\n{"run": "a", "result": {}}\n', "line 2: run 'a' twice"),
    ],
)
def test_a_bad_line_is_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        read_store(_store_with(tmp_path, text))


def test_a_truncated_or_corrupt_store_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid = _grid(tmp_path)
    store = pack(grid).store
    data = store.read_bytes()
    store.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match="is cut short"):
        read_store(store)
    for args in (["results", "expand", str(store)], ["report", str(grid), "--no-figures"]):
        assert main(args) == 2  # a report refuses a grid whose store it cannot read
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith("cdbloss: error: run store ") and "cut short" in line
    store.write_bytes(b"not gzip at all")
    with pytest.raises(StoreError, match="is not a readable gzip file"):
        read_store(store)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    store.write_bytes(bytes(flipped))
    with pytest.raises(StoreError, match=r"run store .* (is not a readable gzip file|cut short)"):
        read_store(store)


def test_expand_refuses_a_different_file_in_the_way(tmp_path: Path) -> None:
    store = pack(_grid(tmp_path)).store
    out = tmp_path / "out"
    (out / "seed=1__name=ce").mkdir(parents=True)
    (out / "seed=1__name=ce" / "result.json").write_text("{}")
    with pytest.raises(StoreError, match="already exists and differs from run 'seed=1__name=ce'"):
        expand(store, out)
    assert _files(out) == {"seed=1__name=ce/result.json": b"{}"}  # nothing written


def test_a_run_file_is_read_from_its_folder_or_else_from_the_store(tmp_path: Path) -> None:
    grid = _grid(tmp_path)
    pack(grid, also=["metrics.jsonl"])
    run = grid / "seed=0__name=ce"
    on_disk = (run / "result.json").read_text()
    shutil.rmtree(run)
    assert read_run_file(run, "result.json") == on_disk
    assert read_run_file(run, "metrics.jsonl") == '{"epoch": 1}\n{"epoch": 2}\n'
    assert isinstance(find_stored_run(grid / "sub" / "seed=0__name=cdb-ce"), StoredRun)
    assert find_stored_run(grid / "nothing") is None
    with pytest.raises(FileNotFoundError, match="its stored run lacks it"):
        read_run_file(grid / "seed=1__name=ce", "metrics.jsonl")


def test_the_cli_packs_and_expands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid = _grid(tmp_path)
    assert main(["results", "pack", str(grid), "--also", "metrics.jsonl"]) == 0
    assert "packed 3 run folders into" in capsys.readouterr().out
    assert main(["results", "expand", str(grid / STORE_NAME), "--out", str(tmp_path / "o")]) == 0
    assert f"wrote 6 files under {tmp_path / 'o'}" in capsys.readouterr().out
    assert main(["results", "pack", str(tmp_path / "empty")]) == 2
    assert "does not exist" in capsys.readouterr().err
