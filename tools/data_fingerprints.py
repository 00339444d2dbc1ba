"""Fingerprints of the real data loads and draws, to compare two versions of the data layer.

Run it on each version and compare the outputs: every line must be the same.

    PYTHONPATH=<checkout>/src python tools/data_fingerprints.py > before.json   # old code
    PYTHONPATH=<checkout>/src python tools/data_fingerprints.py > after.json    # new code
    cmp before.json after.json

For each CIFAR-10 source present (``jpeg``, ``lossless``, the default) it prints the
sha256 (16 hex digits) of the four arrays and of the extra test sets, the class names,
the source record, and the fingerprint of the ``cifar-lt`` split at two settings
(``tests/lab/data/test_pinned_splits.py:fingerprint``: selected indices, image bytes,
labels, counts and ``info``); for MNIST and Fashion-MNIST, if they are in the cache, the
arrays, per-file checksums and the ``*-lt`` split. ``--folder`` adds, for the JPEG zip,
whether ``folder`` (``val_per_class=50, imbalance_factor=100``) draws the same
validation and training images as ``cifar-lt`` at seeds 0 and 1, and how many it shares.
Point ``$CDBLOSS_CACHE`` at a private folder to keep the shared cache untouched.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cdbloss.lab.data.base import load_protocol
from cdbloss.lab.data.cifar import CIFAR10_CLASSES, build_cifar_lt, load_cifar
from cdbloss.lab.data.mnist import build_mnist_lt, load_idx_dataset
from cdbloss.lab.io import jsonable
from tests.lab.data.test_pinned_splits import fingerprint


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
        h.update(str(a.shape).encode())
    return h.hexdigest()[:16]


def _cifar(out: dict[str, Any]) -> None:
    for src in ("jpeg", "lossless", None):
        try:
            a = load_cifar("cifar10", source=src)
        except FileNotFoundError as err:
            out[f"cifar10-{src}"] = f"absent: {err}"
            continue
        out[f"cifar10-{src}"] = {
            "arrays": _digest(a.train_images, a.train_labels, a.test_images, a.test_labels),
            "extra": {k: _digest(*v) for k, v in sorted(a.extra_test.items())},
            "names": a.class_names,
            "source": jsonable(a.source),
            "lt_seed0": fingerprint(build_cifar_lt(a, augment=False, seed=0)),
            "lt_seed2_f50": fingerprint(
                build_cifar_lt(a, augment=False, seed=2, imbalance_factor=50)
            ),
        }


def _idx(out: dict[str, Any]) -> None:
    for variant in ("mnist", "fashion-mnist"):
        try:
            a = load_idx_dataset(variant, download=False)
        except FileNotFoundError:
            out[variant] = "absent"
            continue
        split = build_mnist_lt(a, seed=1, protocol=f"{variant}-lt")
        out[variant] = {
            "arrays": _digest(a.train_images, a.train_labels, a.test_images, a.test_labels),
            "sources": a.sources,
            "lt": fingerprint(split),
        }


def _folder(out: dict[str, Any]) -> None:
    lt0 = load_protocol("cifar-lt", source="jpeg", augment=False)
    z = Path(str(lt0.info["source"]["path"]))
    with zipfile.ZipFile(z) as zf:  # cifar-lt's order: class (official), then file name
        names = sorted(
            (n for n in zf.namelist() if n.startswith("train/") and not n.endswith("/")),
            key=lambda n: (CIFAR10_CLASSES.index(n.split("/")[-2]), n),
        )
    for seed in (0, 1):
        lt = load_protocol("cifar-lt", source="jpeg", seed=seed, augment=False)
        f = load_protocol(
            "folder", root=z, seed=seed, val_per_class=50, imbalance_factor=100,
            image_size=32, augment="none",
        )  # fmt: skip
        train = [p for p, _ in f.train.samples]  # type: ignore[attr-defined]
        val = [p for p, _ in f.val.samples]  # type: ignore[attr-defined]
        lt_train = [names[i] for i in lt.train.source_indices]  # type: ignore[attr-defined]
        lt_val = [names[i] for i in lt.val.source_indices]  # type: ignore[attr-defined]
        out[f"folder-vs-cifar-lt-seed{seed}"] = {
            "same_counts": f.class_counts == lt.class_counts,
            "same_val": val == lt_val,
            "same_train": train == lt_train,
            "shared_train": f"{len(set(train) & set(lt_train))} of {len(lt_train)}",
            "shared_val": f"{len(set(val) & set(lt_val))} of {len(lt_val)}",
        }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", action="store_true", help="compare folder with cifar-lt")
    args = parser.parse_args(argv)
    out: dict[str, Any] = {}
    _cifar(out)
    _idx(out)
    if args.folder:
        _folder(out)
    print(json.dumps(out, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
