"""The yeast multi-label data set (2,417 genes, 103 features, 14 labels).

Source: the MULAN copy of Elisseeff & Weston (NeurIPS 2001), the one OpenML
holds as data set 40597. It is fetched from the copy that the ``river`` wheel
on PyPI bundles (``river/datasets/yeast.csv.gz`` in river 0.26.1), through
pip with ``--require-hashes``: pip checks the wheel's sha256
(:data:`RIVER_WHEEL_SHA256`) before it is kept, and the CSV inside is checked
again against :data:`YEAST_SHA256` before it is cached as
``<cache>/yeast/yeast.csv.gz``. A cached file with the right sha256 is used
without any network access.

:func:`yeast_splits` gives a fixed, seeded train / validation / test split
(60 / 20 / 20) with the features standardised by the training mean and std.
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from cdbloss.lab.data.cache import bytes_digest, cache_root, file_digest, verify_digest
from cdbloss.lab.data.download import DownloadError, NetSettings
from cdbloss.lab.io import atomic_write_bytes

__all__ = [
    "RIVER_WHEEL",
    "RIVER_WHEEL_SHA256",
    "YEAST_SHA256",
    "MultiLabelSplits",
    "YeastSplits",
    "fetch_yeast",
    "parse_yeast_csv",
    "yeast_splits",
]

RIVER_WHEEL = "river-0.26.1-cp311-cp311-manylinux_2_28_x86_64.whl"
RIVER_WHEEL_SHA256 = "6a11e1a9749beec3ea138efeb0205b2c5cea8d424e9deee306c8980faec01bef"
YEAST_MEMBER = "river/datasets/yeast.csv.gz"
#: sha256 of ``yeast.csv.gz`` as river 0.26.1 bundles it (the gzip bytes)
YEAST_SHA256 = "2969cb4bab877a27adcbe17871fa0b378a1e54b98816cd6106b542ee450a1c09"
N_FEATURES, N_LABELS = 103, 14


def parse_yeast_csv(data: bytes) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Parse the CSV (gzip or plain): header ``Att1..Att103, Class1..Class14``.

    Returns:
        ``(x (N, 103) float32, y (N, 14) int64 in {0, 1})``.

    Raises:
        ValueError: a header, width or label value other than expected.
    """
    text = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode("utf-8")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    want = [f"Att{i}" for i in range(1, N_FEATURES + 1)] + [
        f"Class{i}" for i in range(1, N_LABELS + 1)
    ]
    if not lines or lines[0].split(",") != want:
        got = lines[0][:60] if lines else "an empty file"
        raise ValueError(
            f"yeast CSV: expected the header Att1..Att103,Class1..Class14, got {got!r}"
        )
    table = np.loadtxt(io.StringIO("\n".join(lines[1:])), delimiter=",", ndmin=2)
    if table.shape[1] != len(want):
        raise ValueError(f"yeast CSV: expected {len(want)} columns, got {table.shape[1]}")
    y = table[:, N_FEATURES:]
    if not np.isin(y, (0, 1)).all():
        raise ValueError("yeast CSV: label columns must hold 0 or 1")
    return table[:, :N_FEATURES].astype(np.float32), y.astype(np.int64)


def fetch_yeast(
    dest: str | os.PathLike[str] | None = None, *, net: NetSettings | None = None
) -> Path:
    """The checked ``yeast.csv.gz`` in ``dest`` (default ``<cache>/yeast``), fetched if needed."""
    net = net if net is not None else NetSettings.from_env()
    d = Path(dest) if dest is not None else cache_root() / "yeast"
    target = d / "yeast.csv.gz"
    if target.is_file() and file_digest(target) == YEAST_SHA256:
        return target
    if net.offline:
        raise DownloadError("PyPI", f"offline: {target} is missing and pip was not run")
    atomic_write_bytes(target, _from_river_wheel())
    return target


def _from_river_wheel() -> bytes:
    """Download the pinned river wheel with pip (hash-checked) and read the CSV out of it."""
    with tempfile.TemporaryDirectory(prefix="cdbloss-yeast-") as tmp:
        req = Path(tmp, "requirements.txt")
        req.write_text(f"river==0.26.1 --hash=sha256:{RIVER_WHEEL_SHA256}\n")
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
            "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
            "--implementation", "cp", "--require-hashes", "--disable-pip-version-check",
            "-r", str(req), "-d", tmp,
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        wheel = Path(tmp, RIVER_WHEEL)
        if not wheel.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"pip did not fetch {RIVER_WHEEL}: " + " | ".join(tail))
        verify_digest(wheel, file_digest(wheel), RIVER_WHEEL_SHA256, "sha256")
        data = zipfile.ZipFile(wheel).read(YEAST_MEMBER)
    verify_digest(YEAST_MEMBER, bytes_digest(data), YEAST_SHA256, "sha256")
    return data


@dataclass(frozen=True)
class MultiLabelSplits:
    """Features and 0/1 labels ``(N, C)`` of the three parts of a multi-label task.

    The features are ``(N, F)`` vectors (yeast) or ``(N, 1, H, W)`` images
    (:mod:`cdbloss.lab.data.mosaic`); float32, already standardised.
    """

    x_train: npt.NDArray[np.float32]
    y_train: npt.NDArray[np.int64]
    x_val: npt.NDArray[np.float32]
    y_val: npt.NDArray[np.int64]
    x_test: npt.NDArray[np.float32]
    y_test: npt.NDArray[np.int64]


def yeast_splits(
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.int64],
    seed: int = 0,
    val: float = 0.2,
    test: float = 0.2,
) -> MultiLabelSplits:
    """A seeded random split (``val`` and ``test`` fractions); features standardised on train."""
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise ValueError(f"val and test must be fractions with val + test < 1, got {val}, {test}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have as many rows, got {x.shape[0]} and {y.shape[0]}")
    order = np.random.default_rng(seed).permutation(x.shape[0])
    n_val, n_test = round(val * len(order)), round(test * len(order))
    te, va, tr = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    mean, std = x[tr].mean(0), x[tr].std(0)
    std = np.where(std > 0, std, 1.0)

    def z(idx: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        out: npt.NDArray[np.float32] = ((x[idx] - mean) / std).astype(np.float32)
        return out

    return MultiLabelSplits(z(tr), y[tr], z(va), y[va], z(te), y[te])


#: the yeast protocol's splits (the generic :class:`MultiLabelSplits`)
YeastSplits = MultiLabelSplits
