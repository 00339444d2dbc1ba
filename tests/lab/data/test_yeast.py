"""The yeast parser and split on small files made here; the fetch only with the network opt-in."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from cdbloss.lab.data import yeast
from cdbloss.lab.data.yeast import YEAST_SHA256, fetch_yeast, parse_yeast_csv, yeast_splits

HEADER = ",".join([f"Att{i}" for i in range(1, 104)] + [f"Class{i}" for i in range(1, 15)])


def _csv(rows: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    lines = [HEADER]
    for _ in range(rows):
        feats = ",".join(f"{v:.6f}" for v in rng.normal(size=103))
        labels = ",".join(str(int(v)) for v in rng.random(14) < 0.3)
        lines.append(f"{feats},{labels}")
    return ("\n".join(lines) + "\n").encode()


def test_parse_plain_and_gzip() -> None:
    data = _csv(7)
    x, y = parse_yeast_csv(data)
    assert x.shape == (7, 103) and y.shape == (7, 14)
    assert x.dtype == np.float32 and set(np.unique(y)) <= {0, 1}
    first = data.decode().splitlines()[1].split(",")
    assert x[0, 0] == pytest.approx(float(first[0]))
    assert y[0].tolist() == [int(v) for v in first[103:]]
    x2, y2 = parse_yeast_csv(gzip.compress(data))
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


def test_parse_refuses_bad_files() -> None:
    with pytest.raises(ValueError, match="header"):
        parse_yeast_csv(b"a,b\n1,2\n")
    rows = _csv(2).decode().splitlines()
    rows[1] = rows[1][:-1] + "2"  # a label value of 2
    with pytest.raises(ValueError, match="0 or 1"):
        parse_yeast_csv("\n".join(rows).encode())
    short = _csv(2).decode().splitlines()
    short[1] = ",".join(short[1].split(",")[:-1])
    with pytest.raises(ValueError):
        parse_yeast_csv("\n".join(short).encode())


def test_split_is_seeded_disjoint_and_standardised() -> None:
    x, y = parse_yeast_csv(_csv(50))
    a, b = yeast_splits(x, y, seed=3), yeast_splits(x, y, seed=3)
    assert np.array_equal(a.x_val, b.x_val)
    assert (len(a.x_train), len(a.x_val), len(a.x_test)) == (30, 10, 10)
    assert np.allclose(a.x_train.mean(0), 0, atol=1e-5)
    assert not np.array_equal(yeast_splits(x, y, seed=4).y_test, a.y_test)
    with pytest.raises(ValueError, match="fractions"):
        yeast_splits(x, y, val=0.6, test=0.5)


def test_a_cached_file_with_the_right_sha_is_used_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = gzip.compress(_csv(3))
    (tmp_path / "yeast.csv.gz").write_bytes(data)
    monkeypatch.setattr(yeast, "YEAST_SHA256", yeast.bytes_digest(data))
    monkeypatch.setenv("CDBLOSS_OFFLINE", "1")
    assert fetch_yeast(tmp_path) == tmp_path / "yeast.csv.gz"
    monkeypatch.setattr(yeast, "YEAST_SHA256", "0" * 64)  # damaged copy: refetch, offline refuses
    with pytest.raises(OSError, match="offline"):
        fetch_yeast(tmp_path)


@pytest.mark.skipif(os.environ.get("CDBLOSS_NETWORK_TESTS") != "1", reason="network opt-in")
def test_fetch_from_pypi(tmp_path: Path) -> None:
    path = fetch_yeast(tmp_path)
    assert yeast.file_digest(path) == YEAST_SHA256
    x, y = parse_yeast_csv(path.read_bytes())
    assert x.shape == (2417, 103) and y.sum(0).min() == 34 and y.sum(0).max() == 1816
