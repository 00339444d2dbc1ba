"""The lab's shared file and terminal helpers (cdbloss.lab.io): one of each."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from cdbloss.lab.io import (
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    byte_progress,
    jsonable,
    progress,
)


def test_atomic_write_success_creates_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.bin"
    with atomic_write(target) as f:
        f.write(b"data")
    assert target.read_bytes() == b"data"
    assert [p.name for p in target.parent.iterdir()] == ["out.bin"]
    assert target.stat().st_mode & 0o777 == 0o644


def test_atomic_write_failure_keeps_old_content(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"), atomic_write(target) as f:
        f.write(b"partial new content")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no temp file left


def test_atomic_write_text_and_json(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "t.txt", "é\n")
    assert (tmp_path / "t.txt").read_bytes() == "é\n".encode()
    atomic_write_json(tmp_path / "j.json", {"a": math.nan, "b": [1]})
    assert (tmp_path / "j.json").read_text() == '{\n  "a": NaN,\n  "b": [\n    1\n  ]\n}\n'


def test_jsonable_makes_what_json_takes() -> None:
    value = {
        1: (np.int64(3), np.float32(0.5), np.bool_(True)),
        "arr": np.arange(3).reshape(1, 3),
        "path": Path("/x/y"),
        "nan": float("nan"),
        "set": {1},
    }
    out = jsonable(value)
    assert out["1"] == [3, 0.5, True] and type(out["1"][0]) is int
    assert out["arr"] == [[0, 1, 2]] and out["path"] == "/x/y" and out["set"] == "{1}"
    assert math.isnan(out["nan"])
    strict = jsonable(value, finite=True)
    assert strict["nan"] == "nan" and jsonable([np.float64("-inf")], finite=True) == ["-inf"]
    json.dumps(strict, allow_nan=False)  # strict JSON


def test_progress_only_when_wanted(monkeypatch: pytest.MonkeyPatch) -> None:
    items = [1, 2, 3]
    assert progress(items, enabled=False) is items
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert progress(items) is items  # default: a terminal only
    pytest.importorskip("tqdm")
    bar = progress(items, enabled=True, unit="img")
    assert bar is not items and list(bar) == items
    with byte_progress(10, 2, "x", enabled=False) as update:
        update(5)  # a no-op without a bar
    with byte_progress(10, 2, "x", enabled=True) as update:
        update(5)
