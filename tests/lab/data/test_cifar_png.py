"""The lossless CIFAR-10 copy (PNG sprite sheets): reader, checks, default source, pairing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cdbloss.lab.data import cifar as cf
from cdbloss.lab.data import cifar_png as cp
from tests.real_data import shared


def _write_copy(folder: Path, rng: np.random.Generator, sheets: int = 2) -> np.ndarray:
    """A small copy in the real layout: ``sheets`` sheets of 1000 images, the last the test
    sheet; returns the HWC images in file order."""
    folder.mkdir()
    n = sheets * 1000
    hwc = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).tolist()
    for b in range(sheets):
        sheet = hwc[1000 * b : 1000 * (b + 1)].reshape(1000, 1024, 3)
        Image.fromarray(sheet, "RGB").save(folder / f"cifar10_batch_{b}.png")
    (folder / "cifar10_labels.json").write_text(json.dumps({"labels": labels}))
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}" for p in sorted(folder.iterdir())
    ]
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return hwc


def test_sheets_become_chw_in_class_major_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    hwc = _write_copy(tmp_path / "png", rng)
    labels = np.asarray(json.loads((tmp_path / "png/cifar10_labels.json").read_text())["labels"])
    got = cp.read_cifar10_png(tmp_path / "png", verify=False)
    order = np.argsort(labels[:1000], kind="stable")
    assert got.train_images.shape == (1000, 3, 32, 32) and got.train_images.dtype == np.uint8
    np.testing.assert_array_equal(got.train_images, hwc[:1000][order].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(got.train_labels, labels[:1000][order])
    assert (np.diff(got.train_labels) >= 0).all()
    np.testing.assert_array_equal(got.test_images, hwc[1000:].transpose(0, 3, 1, 2))
    test_y = labels[1000:]
    for i in (0, 5, 999):  # the rank of image i among its class in file order
        assert got.test_ranks[i] == int((test_y[:i] == test_y[i]).sum())
    assert got.source["kind"] == "png-sprites" and got.source["verified"] is False


def test_checksums_are_checked(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    _write_copy(tmp_path / "png", rng)
    with pytest.raises(ValueError, match=r"SHA256SUMS: sha256 .* is not the known"):
        cp.read_cifar10_png(tmp_path / "png")  # a copy other than the pinned one
    # a sheet that no longer matches its listed sha256
    folder = tmp_path / "png"
    sums = (folder / "SHA256SUMS").read_text()
    img = np.asarray(Image.open(folder / "cifar10_batch_0.png")).copy()
    img[0, 0, 0] ^= 1
    Image.fromarray(img, "RGB").save(folder / "cifar10_batch_0.png")
    (folder / "SHA256SUMS").write_text(sums)
    monkey = pytest.MonkeyPatch()
    monkey.setattr(cp, "PNG_SUMS_SHA256", hashlib.sha256(sums.encode()).hexdigest())
    try:
        with pytest.raises(ValueError, match=r"cifar10_batch_0.png: sha256 .* does not match"):
            cp.read_cifar10_png(folder)
    finally:
        monkey.undo()


def test_bad_sheet_and_labels_are_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    _write_copy(tmp_path / "png", rng)
    folder = tmp_path / "png"
    Image.fromarray(np.zeros((999, 1024, 3), np.uint8), "RGB").save(folder / "cifar10_batch_1.png")
    with pytest.raises(ValueError, match=r"expected a 1024 x 1000 RGB sheet, got 1024 x 999"):
        cp.read_cifar10_png(folder, verify=False)
    (folder / "cifar10_labels.json").write_text(json.dumps({"labels": [0] * 1500}))
    with pytest.raises(ValueError, match=r"1000 per sheet"):
        cp.read_cifar10_png(folder, verify=False)
    with pytest.raises(FileNotFoundError, match=r"no SHA256SUMS"):
        cp.read_cifar10_png(tmp_path)


# --- the real copy (../shared/data/cifar10-png; required under CI) ---------------------------


@pytest.fixture(scope="module")
def real_png() -> Path:
    return shared("cifar10-png/SHA256SUMS").parent


def test_real_copy_is_the_official_training_set(real_png: Path) -> None:
    got = cp.read_cifar10_png(real_png)
    assert got.train_images.shape == (50000, 3, 32, 32)
    assert np.bincount(got.train_labels).tolist() == [5000] * 10
    assert np.bincount(got.test_labels).tolist() == [103, 89, 100, 103, 90, 86, 112, 102, 106, 109]
    means = got.train_images.reshape(50000, 3, -1).mean(axis=(0, 2)) / 255
    np.testing.assert_allclose(means, [0.4914, 0.4822, 0.4465], atol=6e-5)
    assert got.source["sha256"] == cp.PNG_SUMS_SHA256


@pytest.mark.slow
def test_real_default_is_lossless_and_pairs_with_jpeg(real_png: Path, tmp_path: Path) -> None:
    """The default source is the lossless copy; a seed draws the same images from the JPEG
    copy; both loads carry the lossless-1000 and jpeg-1000 sets, paired image by image."""
    shared("cifar10-jpeg/cifar10-jpeg.zip")
    lossless = cf.cifar_lt(dataset="cifar10", imbalance_factor=100, seed=3, root=str(tmp_path))
    jpeg = cf.cifar_lt(
        dataset="cifar10", imbalance_factor=100, seed=3, root=str(tmp_path), source="jpeg"
    )
    assert lossless.info["pixels"] == "lossless" and jpeg.info["pixels"] == "jpeg"
    assert lossless.info["source"]["kind"] == "png-sprites"
    np.testing.assert_array_equal(lossless.train.source_indices, jpeg.train.source_indices)
    np.testing.assert_array_equal(lossless.train.targets, jpeg.train.targets)
    gap = (lossless.train.images.float() - jpeg.train.images.float()).abs().mean().item()
    assert 3.0 < gap < 10.0  # JPEG error on the same images, not different images (~50)
    assert torch.equal(lossless.test.images, jpeg.test.images)  # the JPEG 10,000 for both
    for s in (lossless, jpeg):
        assert sorted(s.extra_test) == ["jpeg-1000", "lossless-1000"]
        assert len(s.extra_test["lossless-1000"]) == 1000
    a, b = lossless.extra_test["lossless-1000"], lossless.extra_test["jpeg-1000"]
    assert torch.equal(a.targets, b.targets)
    pair_gap = (a.images.float() - b.images.float()).abs().mean().item()
    assert 3.0 < pair_gap < 10.0
    with pytest.raises(ValueError, match=r"cifar10 only"):
        cf.load_cifar("cifar100", root=str(tmp_path), source="lossless")
