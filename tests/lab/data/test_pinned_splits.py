"""The committed protocols draw the same images for the same seed, whatever the code's shape.

Every result under ``results/`` was made with the mnist-4v9, mnist-lt, fashion-mnist-lt
and cifar-lt draws as they were before the data layer was merged into one (issue 33),
and the experiment grids resume from those results. So the fingerprints below (a
sha256 over the selected source indices, the image bytes and labels of every split, the
class counts and names, and the protocol's ``info`` less its file paths) were computed
from the code on ``main`` *before* that refactor and are pinned here: a change that
draws other images, orders them otherwise, or records other ``info`` fails this test.

The data are small and made here from fixed seeds: IDX files for the MNIST-style
protocols, an official-format pickle folder and an ImageFolder zip of PNGs for
``cifar-lt``, and CIFAR arrays in memory. A last test trains a tiny model for four
epochs on the mnist-lt split and pins its metrics.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cdbloss.lab.data.cifar as cf
from cdbloss.lab.data.base import DataSplits, load_protocol
from cdbloss.lab.data.idx import write_idx
from cdbloss.lab.io import jsonable

#: Training images per class ``c`` of the IDX stand-in: uneven, so n_max is a real choice.
_IDX_TRAIN = [40 + 9 * c for c in range(10)]
_IDX_TEST = 25


def _write_idx_set(folder: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    tr = rng.permutation(np.repeat(np.arange(10, dtype=np.uint8), _IDX_TRAIN))
    te = rng.permutation(np.repeat(np.arange(10, dtype=np.uint8), _IDX_TEST))
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, labels in (("train", tr), ("t10k", te)):
        # noise plus 15 grey levels per class: learnable, so the pinned run learns something
        noise = rng.integers(0, 100, (labels.size, 4, 4), dtype=np.uint8)
        images = noise + (15 * labels).astype(np.uint8)[:, None, None]
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels)


@pytest.fixture(scope="module")
def idx_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pinned-idx")
    _write_idx_set(root / "mnist", 11)
    _write_idx_set(root / "fashion-mnist", 12)
    return root


def _cifar_python_folder(folder: Path) -> Path:
    """``cifar-10-batches-py/`` in the official layout: 5 x 24 training, 30 test images."""
    rng = np.random.default_rng(21)
    folder.mkdir(parents=True)
    for name, n in [*((f"data_batch_{b}", 24) for b in range(1, 6)), ("test_batch", 30)]:
        labels = [int(v) for v in rng.integers(0, 10, n)]
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        (folder / name).write_bytes(pickle.dumps({"data": data, "labels": labels}, protocol=4))
    meta = {"label_names": list(cf.CIFAR10_CLASSES)}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=4))
    return folder


def _png(rng: np.random.Generator) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def write_cifar_zip(path: Path) -> Path:
    """An ImageFolder zip: class ``c`` has ``8 + c`` training and 3 test images, stored shuffled."""
    rng = np.random.default_rng(22)
    files: dict[str, bytes] = {}
    for c, name in enumerate(cf.CIFAR10_CLASSES):
        for i in range(8 + c):
            files[f"cifar10/train/{name}/{i:04d}.png"] = _png(rng)
        for i in range(3):
            files[f"cifar10/test/{name}/{i:04d}.png"] = _png(rng)
    order = rng.permutation(len(files))
    names = list(files)
    with zipfile.ZipFile(path, "w") as zf:
        for i in order:
            zf.writestr(names[i], files[names[i]])
    return path


def _memory_arrays(dataset: str, per_class: int) -> cf.CifarArrays:
    spec = cf.CIFAR_SPECS[dataset]
    c = spec.num_classes
    rng = np.random.default_rng(23 + c)
    y = rng.permutation(np.repeat(np.arange(c), per_class)).astype(np.int64)
    x = rng.integers(0, 256, (y.size, 3, 32, 32), dtype=np.uint8)
    te_y = np.repeat(np.arange(c), 2).astype(np.int64)
    te_x = rng.integers(0, 256, (te_y.size, 3, 32, 32), dtype=np.uint8)
    return cf.CifarArrays(dataset, x, y, te_x, te_y, list(spec.class_names), {"path": "memory"})


def fingerprint(s: DataSplits) -> str:
    """sha256 (first 16 hex digits) of what a protocol selected and how it describes it."""
    h = hashlib.sha256()
    named = [("train", s.train), ("val", s.val), ("test", s.test), *sorted(s.extra_test.items())]
    for name, ds in named:
        h.update(name.encode() + b"\0")
        h.update(np.asarray(ds.source_indices, dtype=np.int64).tobytes())
        h.update(str(tuple(ds.images.shape)).encode())
        h.update(ds.images.numpy().tobytes())
        h.update(ds.targets.numpy().astype(np.int64).tobytes())
        x, _ = ds[0]  # the item as a model sees it (normalised floats)
        h.update(f"{float(x.double().sum()):.4f}".encode())
    h.update(json.dumps([s.num_classes, s.class_counts, s.class_names]).encode())
    info = {k: v for k, v in s.info.items() if k not in ("source", "sources")}
    h.update(json.dumps(jsonable(info), sort_keys=True).encode())
    return h.hexdigest()[:16]


# (protocol, options, fingerprint computed on main before the merge of the data layer)
IDX_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("mnist-4v9", {"ratio": 0.9, "seed": 5, "total": 100, "val_per_class": 10,
                   "test_per_class": 20}, "c8ff54c176fc2481"),
    ("mnist-4v9", {"ratio": 0.95, "seed": 0, "total": 60, "val_per_class": 8,
                   "test_per_class": 25, "normalize": False}, "905c6afd1ae20765"),
    ("mnist-lt", {"imbalance_factor": 10, "val_per_class": 5, "seed": 7}, "44fdf73cc1996361"),
    ("mnist-lt", {"imbalance_factor": 100, "val_per_class": 10, "seed": 0}, "ecd4d3fddc17a6d8"),
    ("fashion-mnist-lt", {"imbalance_factor": 20, "profile": "step", "val_per_class": 4,
                          "seed": 2}, "a4da1dbd2249c789"),
    ("fashion-mnist-lt", {"imbalance_factor": 100, "val_per_class": 10, "seed": 1}, "0c1eb50b85e21c11"),
]  # fmt: skip


@pytest.mark.parametrize(("protocol", "options", "expected"), IDX_CASES)
def test_idx_protocol_draws_are_pinned(
    idx_root: Path, protocol: str, options: dict[str, Any], expected: str
) -> None:
    s = load_protocol(protocol, root=str(idx_root), download=False, verify=False, **options)
    assert fingerprint(s) == expected


CIFAR_FILE_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("python", {"imbalance_factor": 10, "val_per_class": 2, "seed": 0}, "0bedf47f98a34966"),
    (
        "python",
        {"imbalance_factor": 5, "val_per_class": 1, "seed": 4, "profile": "step"},
        "fdef7e324b6dbca1",
    ),
    ("zip", {"imbalance_factor": 10, "val_per_class": 3, "seed": 0}, "8ac1fea181437955"),
    ("zip", {"imbalance_factor": 100, "val_per_class": 2, "seed": 9}, "70d7edf994ba21b7"),
]


@pytest.mark.parametrize(("kind", "options", "expected"), CIFAR_FILE_CASES)
def test_cifar_lt_draws_from_files_are_pinned(
    tmp_path: Path, kind: str, options: dict[str, Any], expected: str
) -> None:
    if kind == "python":
        src = _cifar_python_folder(tmp_path / "cifar-10-batches-py")
    else:
        src = write_cifar_zip(tmp_path / "cifar10-jpeg.zip")
    s = load_protocol(
        "cifar-lt", source=str(src), root=str(tmp_path / "cache"), verify=False, augment=False,
        **options,
    )  # fmt: skip
    assert fingerprint(s) == expected


CIFAR_MEMORY_CASES: list[tuple[str, int, dict[str, Any], str]] = [
    ("cifar10", 60, {"imbalance_factor": 10, "val_per_class": 10, "seed": 0}, "2c86f7780e878a96"),
    ("cifar10", 60, {"imbalance_factor": 100, "val_per_class": 10, "seed": 3}, "71cf798134106ed3"),
    ("cifar100", 12, {"imbalance_factor": 10, "val_per_class": 2, "seed": 1}, "69023b365d5655d8"),
]


@pytest.mark.parametrize(("dataset", "per_class", "options", "expected"), CIFAR_MEMORY_CASES)
def test_cifar_lt_draws_in_memory_are_pinned(
    dataset: str, per_class: int, options: dict[str, Any], expected: str
) -> None:
    s = cf.build_cifar_lt(_memory_arrays(dataset, per_class), augment=False, **options)
    assert fingerprint(s) == expected


def test_tiny_seeded_run_on_mnist_lt_is_pinned(idx_root: Path, tmp_path: Path) -> None:
    from cdbloss.lab.engine.config import config_from_dict
    from cdbloss.lab.engine.trainer import Trainer

    options = {"imbalance_factor": 10, "val_per_class": 5, "seed": 7, "root": str(idx_root),
               "download": False, "verify": False}  # fmt: skip
    raw = {
        "name": "pinned",
        "seed": 0,
        "data": {"protocol": "mnist-lt", "options": options},
        "model": {"name": "mlp", "options": {"in_features": 16, "hidden": 16}},
        "loss": {"name": "cdb-ce-paper"},
        "optim": {"lr": 0.05, "milestones": [3]},
        "train": {"epochs": 4, "batch_size": 32, "progress": False, "threads": 1},
    }
    result = Trainer(config_from_dict(raw), tmp_path / "run").fit()
    last = result["history"][-1]
    assert result["class_counts"] == [35, 27, 20, 16, 12, 9, 7, 5, 4, 3]
    assert result["test"]["top1_accuracy"] == 0.136  # 34 of the 250 test images
    assert last["val_per_class_accuracy"] == [0.0, 0.0, 0.2, 0.2, 0.0, 0.2, 0.0, 0.0, 0.0, 0.0]
    assert last["train_loss"] == pytest.approx(2.193733978271484, rel=1e-4)
    assert last["weights"] == pytest.approx([1.121076226234436] * 2 + [0.7174887657165527] * 2
                                            + [1.121076226234436, 0.7174887657165527]
                                            + [1.121076226234436] * 4, rel=1e-4)  # fmt: skip
