"""CIFAR readers (python pickles, ImageFolder zip/folder), the decoded cache, and cifar-lt.

The synthetic batches are written the way the official files were: Python 2
pickles (protocol 2, strings as BINSTRING) whose ``data`` array references
``numpy.core.multiarray._reconstruct``, ``numpy.ndarray`` and ``numpy.dtype``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pickle
import pickletools
import random
import re
import struct
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from PIL import Image

import cdbloss.lab.data.cifar as cf
import cdbloss.lab.data.cifar_sources as cs
from tests.real_data import shared

# --- writing the official format ------------------------------------------------


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined,misc]
    """Pickles str and bytes as Python 2's str (SHORT_BINSTRING / BINSTRING)."""

    dispatch: ClassVar[dict[type, Any]] = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def save_py2str(self, obj: str | bytes) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2str
    dispatch[bytes] = save_py2str


def py2_dumps(obj: Any) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    # numpy >= 2 names the module numpy._core; the 2009 files say numpy.core.
    return buf.getvalue().replace(
        b"cnumpy._core.multiarray\n_reconstruct\n", b"cnumpy.core.multiarray\n_reconstruct\n"
    )


def _globals(data: bytes) -> list[str]:
    return [str(arg) for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"]


def cifar10_members(
    train_per_class: int = 5, test_per_class: int = 2, seed: int = 0
) -> dict[str, Any]:
    """Member name -> (bytes, images (N,3072), labels) of a small CIFAR-10 python version."""
    rng = np.random.default_rng(seed)
    tr_labels = rng.permutation(np.repeat(np.arange(10), train_per_class)).tolist()
    te_labels = rng.permutation(np.repeat(np.arange(10), test_per_class)).tolist()
    tr = rng.integers(0, 256, (len(tr_labels), 3072), dtype=np.uint8)
    te = rng.integers(0, 256, (len(te_labels), 3072), dtype=np.uint8)
    out: dict[str, Any] = {}
    chunks = np.array_split(np.arange(len(tr_labels)), 5)
    for i, idx in enumerate(chunks, start=1):
        batch = {
            "batch_label": f"training batch {i} of 5",
            "labels": [tr_labels[j] for j in idx],
            "data": tr[idx],
            "filenames": [f"img_{j}.png" for j in idx],
        }
        out[f"data_batch_{i}"] = py2_dumps(batch)
    out["test_batch"] = py2_dumps(
        {"batch_label": "testing batch 1 of 1", "labels": te_labels, "data": te, "filenames": []}
    )
    out["batches.meta"] = py2_dumps(
        {"num_cases_per_batch": 10000, "label_names": list(cf.CIFAR10_CLASSES), "num_vis": 3072}
    )
    out["_expected"] = (tr, np.asarray(tr_labels), te, np.asarray(te_labels))
    return out


def write_tar(path: Path, folder: str, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            if name.startswith("_"):
                continue
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def patch_md5(
    monkeypatch: pytest.MonkeyPatch, dataset: str, members: dict[str, Any], **more: Any
) -> None:
    """Declare the synthetic batches 'official' by patching the published MD5s."""
    spec = cf.CIFAR_SPECS[dataset]

    def md5(name: str) -> tuple[str, str]:
        return (name, hashlib.md5(members[name]).hexdigest())

    new = dataclasses.replace(
        spec,
        train_members=tuple(md5(n) for n, _ in spec.train_members),
        test_members=tuple(md5(n) for n, _ in spec.test_members),
        meta_member=md5(spec.meta_member[0]),
        **more,
    )
    monkeypatch.setitem(cf.CIFAR_SPECS, dataset, new)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDBLOSS_CACHE", str(tmp_path / "cache"))


# --- the restricted unpickler ---------------------------------------------------


def test_official_format_needs_exactly_three_globals() -> None:
    m = cifar10_members()
    assert _globals(m["data_batch_1"]) == [
        "numpy.core.multiarray _reconstruct",
        "numpy ndarray",
        "numpy dtype",
    ]
    batch = cf.restricted_unpickle(m["data_batch_1"], "data_batch_1")
    assert set(batch) == {"batch_label", "labels", "data", "filenames"}
    np.testing.assert_array_equal(batch["data"], m["_expected"][0][:10])


class _RunsShell:
    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.cmd,))


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_pickle_calling_os_system_is_refused_and_never_runs(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"data": _RunsShell(f"echo pwned > {marker}")}, protocol=protocol)
    # Control: an ordinary unpickler would run the command.
    pickle.loads(payload)
    assert marker.exists()
    marker.unlink()
    with pytest.raises(
        ValueError, match=r"evil_batch: refusing to load global (posix|os|nt)\.system"
    ):
        cf.restricted_unpickle(payload, "evil_batch")
    assert not marker.exists()


@pytest.mark.parametrize(
    "target", [(eval, ("1+1",)), (exec, ("x = 1",)), (subprocess.Popen, (["true"],))]
)
def test_other_callables_refused(target: tuple[Any, Any]) -> None:
    class R:
        def __reduce__(self) -> tuple[Any, ...]:
            return target

    with pytest.raises(ValueError, match="refusing to load global"):
        cf.restricted_unpickle(pickle.dumps(R(), protocol=2), "x")


def test_malicious_batch_inside_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "pwned"
    m = cifar10_members()
    m["data_batch_3"] = pickle.dumps(
        {"labels": [0], "data": _RunsShell(f"touch {marker}")}, protocol=2
    )
    patch_md5(monkeypatch, "cifar10", m)
    arch = write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", m)
    with pytest.raises(ValueError, match=r"data_batch_3: refusing to load global"):
        cf.read_cifar_python(arch)
    assert not marker.exists()


def test_object_array_and_bad_types_refused(tmp_path: Path) -> None:
    spec = cf.CIFAR_SPECS["cifar10"]
    obj = cf.restricted_unpickle(
        pickle.dumps({"labels": [0], "data": np.array([[1] * 3072], dtype=object)}, protocol=3), "b"
    )
    with pytest.raises(ValueError, match=r"'data' must be \(N, 3072\) uint8"):
        cs._parse_batch(obj, spec, "b")
    with pytest.raises(ValueError, match="'labels' must be a list of ints"):
        cs._parse_batch({"labels": ["0"], "data": np.zeros((1, 3072), np.uint8)}, spec, "b")
    with pytest.raises(ValueError, match="expected a dict at the top level, got list"):
        cf.restricted_unpickle(pickle.dumps([1, 2], protocol=2), "b")
    with pytest.raises(ValueError, match="not a valid CIFAR pickle"):
        cf.restricted_unpickle(b"\x80\x02}q\x00(U", "b")


# --- python archive / folder ----------------------------------------------------


def test_archive_and_folder_read_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = cifar10_members()
    patch_md5(monkeypatch, "cifar10", m)
    arch = write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", m)
    folder = tmp_path / "x" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for n, b in m.items():
        if not n.startswith("_"):
            (folder / n).write_bytes(b)
    a = cf.read_cifar_python(arch)
    f = cf.read_cifar_python(folder)
    tr, tr_y, te, te_y = m["_expected"]
    for arr in (a, f):
        assert arr.train_images.shape == (50, 3, 32, 32)
        # rows are 1024 R, 1024 G, 1024 B values: pixel (row 0, col 1) of the green plane
        assert arr.train_images[0, 1, 0, 1] == tr[0, 1024 + 1]
        np.testing.assert_array_equal(arr.train_images.reshape(50, -1), tr)
        np.testing.assert_array_equal(arr.train_labels, tr_y)
        np.testing.assert_array_equal(arr.test_images.reshape(20, -1), te)
        np.testing.assert_array_equal(arr.test_labels, te_y)
        assert arr.class_names == list(cf.CIFAR10_CLASSES)
    assert a.source["kind"] == "python-archive" and f.source["kind"] == "python-folder"


def test_md5_mismatch_names_member(tmp_path: Path) -> None:
    arch = write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", cifar10_members())
    with pytest.raises(ValueError, match=r"data_batch_1: md5 checksum mismatch: expected c99cafc1"):
        cf.read_cifar_python(arch)
    assert cf.read_cifar_python(arch, verify=False).train_images.shape[0] == 50


def test_label_outside_class_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = cifar10_members()
    bad = cf.restricted_unpickle(m["test_batch"], "t")
    bad["labels"][3] = 10
    m["test_batch"] = py2_dumps(bad)
    patch_md5(monkeypatch, "cifar10", m)
    arch = write_tar(tmp_path / "c.tar.gz", "cifar-10-batches-py", m)
    with pytest.raises(
        ValueError, match=r"test_batch: label 10 at position 3 is outside the class range \[0, 10\)"
    ):
        cf.read_cifar_python(arch)


def test_truncated_archive_and_missing_member(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = cifar10_members()
    patch_md5(monkeypatch, "cifar10", m)
    arch = write_tar(tmp_path / "c.tar.gz", "cifar-10-batches-py", m)
    arch.write_bytes(arch.read_bytes()[: arch.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"c.tar.gz: (corrupted or truncated|not a readable)"):
        cf.read_cifar_python(arch)
    del m["test_batch"]
    arch2 = write_tar(tmp_path / "d.tar.gz", "cifar-10-batches-py", m)
    with pytest.raises(ValueError, match="has no cifar-10-batches-py/test_batch"):
        cf.read_cifar_python(arch2)


def test_archive_member_escaping_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = cifar10_members()
    patch_md5(monkeypatch, "cifar10", m)
    with tarfile.open(tmp_path / "e.tar", "w") as tar:
        for name, data in m.items():
            if name.startswith("_"):
                continue
            prefix = "x/../cifar-10-batches-py" if name == "test_batch" else "cifar-10-batches-py"
            info = tarfile.TarInfo(f"{prefix}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(
        ValueError, match=re.escape("unsafe member name 'x/../cifar-10-batches-py/")
    ):
        cf.read_cifar_python(tmp_path / "e.tar")


def cifar100_members() -> tuple[dict[str, bytes], list[int]]:
    """The members of a small archive in the official CIFAR-100 python format (200
    training images, 2 per class; 100 test images), and its training fine labels."""
    rng = np.random.default_rng(1)
    fine = rng.permutation(np.repeat(np.arange(100), 2)).tolist()
    data = rng.integers(0, 256, (200, 3072), dtype=np.uint8)
    m = {
        "train": py2_dumps({"fine_labels": fine, "coarse_labels": [0] * 200, "data": data}),
        "test": py2_dumps(
            {"fine_labels": list(range(100)), "coarse_labels": [0] * 100, "data": data[:100]}
        ),
        "meta": py2_dumps(
            {"fine_label_names": list(cf.CIFAR100_CLASSES), "coarse_label_names": ["x"] * 20}
        ),
    }
    return m, fine


def test_cifar100_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m, fine = cifar100_members()
    patch_md5(monkeypatch, "cifar100", m)
    arch = write_tar(tmp_path / "cifar-100-python.tar.gz", "cifar-100-python", m)
    a = cf.read_cifar_python(arch, "cifar100")
    assert (
        a.train_labels.tolist() == fine
        and a.class_names[0] == "apple"
        and len(a.class_names) == 100
    )


# --- ImageFolder zip / folder ---------------------------------------------------


def _png(rng: np.random.Generator, size: tuple[int, int] = (32, 32)) -> tuple[bytes, np.ndarray]:
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue(), arr


def imagefolder_members(
    classes: tuple[str, ...] = cf.CIFAR10_CLASSES, train: int = 3, test: int = 2, prefix: str = ""
) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    rng = np.random.default_rng(5)
    files: dict[str, bytes] = {}
    pixels: dict[str, np.ndarray] = {}
    for split, n in (("train", train), ("test", test)):
        for c in classes:
            for i in range(n):
                data, arr = _png(rng)
                name = f"{prefix}{split}/{c}/{i:04d}.png"
                files[name], pixels[name] = data, arr
    return files, pixels


def write_zip(path: Path, files: dict[str, bytes], shuffle: bool = True) -> Path:
    names = list(files)
    if shuffle:
        random.Random(0).shuffle(names)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for n in names:
            z.writestr(n, files[n])
    return path


def test_zip_decodes_in_class_then_name_order(tmp_path: Path) -> None:
    files, pixels = imagefolder_members(prefix="cifar10/")
    files["cifar10/README.txt"] = b"not an image, ignored"
    z = write_zip(tmp_path / "c.zip", files)
    a = cf.read_cifar_imagefolder(z, verify=False)
    assert a.train_images.shape == (30, 3, 32, 32) and a.test_images.shape == (20, 3, 32, 32)
    assert a.train_labels.tolist() == [c for c in range(10) for _ in range(3)]
    first_bird = "cifar10/train/bird/0000.png"  # bird = label 2 -> position 6
    np.testing.assert_array_equal(a.train_images[6], pixels[first_bird].transpose(2, 0, 1))
    assert a.source["kind"] == "imagefolder-zip" and a.source["known_release"] is False


def test_folder_equals_zip(tmp_path: Path) -> None:
    files, _ = imagefolder_members()
    z = write_zip(tmp_path / "c.zip", files)
    root = tmp_path / "tree"
    for n, b in files.items():
        (root / n).parent.mkdir(parents=True, exist_ok=True)
        (root / n).write_bytes(b)
    a, b = cf.read_cifar_imagefolder(z, verify=False), cf.read_cifar_imagefolder(root, verify=False)
    np.testing.assert_array_equal(a.train_images, b.train_images)
    np.testing.assert_array_equal(a.test_labels, b.test_labels)


def test_verify_requires_official_counts_and_classes(tmp_path: Path) -> None:
    files, _ = imagefolder_members()
    z = write_zip(tmp_path / "c.zip", files)
    with pytest.raises(ValueError, match=r"train/airplane has 3 images, cifar10 has 5000"):
        cf.read_cifar_imagefolder(z)
    files2, _ = imagefolder_members(classes=("cats", "dogs"))
    z2 = write_zip(tmp_path / "d.zip", files2)
    with pytest.raises(ValueError, match="expected the 10 cifar10 classes"):
        cf.read_cifar_imagefolder(z2)
    assert cf.read_cifar_imagefolder(z2, verify=False).class_names == ["cats", "dogs"]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("../evil/train/cat/1.png", None, "refusing unsafe member name"),
        ("train/cat/big.png", "33x32", "expected a 32x32 image, got 33x32"),
        ("train/cat/garbage.jpg", b"\xff\xd8 definitely not a jpeg", "not a readable image"),
        ("cat/1.png", None, r"not under \[prefix/\]train/<class>/"),
    ],
)
def test_bad_members(tmp_path: Path, name: str, data: object, message: str) -> None:
    files, _ = imagefolder_members()
    rng = np.random.default_rng(0)
    if data is None:
        files[name] = _png(rng)[0]
    elif data == "33x32":
        files[name] = _png(rng, (33, 32))[0]
    else:
        assert isinstance(data, bytes)
        files[name] = data
    z = write_zip(tmp_path / "c.zip", files)
    with pytest.raises(ValueError, match=message):
        cf.read_cifar_imagefolder(z, verify=False)


def test_not_a_zip(tmp_path: Path) -> None:
    p = tmp_path / "c.zip"
    p.write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(ValueError, match="not a readable zip"):
        cf.read_cifar_imagefolder(p, verify=False)


# --- cache and source search ----------------------------------------------------


def _small_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small ImageFolder zip, with CIFAR-10's expected counts patched to match it."""
    files, _ = imagefolder_members()
    monkeypatch.setitem(
        cf.CIFAR_SPECS,
        "cifar10",
        dataclasses.replace(cf.CIFAR_SPECS["cifar10"], train_per_class=3, test_per_class=2),
    )
    return write_zip(tmp_path / "mine.zip", files)


def test_decoded_once_then_served_from_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    z = _small_zip(tmp_path, monkeypatch)
    first = cf.load_cifar("cifar10", source=z)
    cache_file = Path(first.source["cache"])
    assert cache_file.is_file() and cache_file.parent == tmp_path / "cache" / "cifar10"
    assert hashlib.sha256(z.read_bytes()).hexdigest()[:16] in cache_file.name

    def no_decoding(*_a: Any, **_k: Any) -> None:
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(cs, "read_cifar_imagefolder", no_decoding)
    second = cf.load_cifar("cifar10", source=z)
    np.testing.assert_array_equal(first.train_images, second.train_images)
    np.testing.assert_array_equal(first.test_labels, second.test_labels)
    assert second.class_names == first.class_names and second.source["kind"] == "imagefolder-zip"


def test_unverified_data_is_not_cached(tmp_path: Path) -> None:
    files, _ = imagefolder_members()
    z = write_zip(tmp_path / "mine.zip", files)
    a = cf.load_cifar("cifar10", source=z, verify=False)
    assert "cache" not in a.source
    assert not (tmp_path / "cache").exists()


def test_damaged_cache_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = cifar10_members()
    patch_md5(monkeypatch, "cifar10", m)
    root = tmp_path / "root"
    root.mkdir()
    write_tar(root / "cifar-10-python.tar.gz", "cifar-10-batches-py", m)
    a = cf.load_cifar("cifar10", root=root)
    assert a.source["kind"] == "python-archive"
    Path(a.source["cache"]).write_bytes(b"garbage")
    b = cf.load_cifar("cifar10", root=root)
    np.testing.assert_array_equal(a.train_images, b.train_images)


def test_missing_cifar100_says_what_and_where(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as e:
        cf.load_cifar("cifar100", root=tmp_path / "r")
    msg = str(e.value)
    assert str(tmp_path / "r" / "cifar-100-python.tar.gz") in msg
    assert str(tmp_path / "r" / "cifar100" / "cifar-100-python") in msg
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in msg


def test_dataset_and_num_classes_must_agree() -> None:
    with pytest.raises(ValueError, match="has 10 classes, num_classes=100"):
        cf.cifar_lt(dataset="cifar10", num_classes=100)
    with pytest.raises(ValueError, match="num_classes must be 10 or 100"):
        cf.cifar_lt(num_classes=20)


# --- cifar-lt -------------------------------------------------------------------


def _arrays(per_class: int = 60) -> cf.CifarArrays:
    rng = np.random.default_rng(0)
    y = rng.permutation(np.repeat(np.arange(10), per_class)).astype(np.int64)
    x = rng.integers(0, 256, (len(y), 3, 32, 32), dtype=np.uint8)
    te_y = np.repeat(np.arange(10), 4).astype(np.int64)
    te_x = rng.integers(0, 256, (40, 3, 32, 32), dtype=np.uint8)
    return cf.CifarArrays(
        "cifar10", x, y, te_x, te_y, list(cf.CIFAR10_CLASSES), {"path": "synthetic"}
    )


def test_cifar_lt_counts_and_splits() -> None:
    # 60 per class, 10 held out -> n_max 50; factor 10: floor(50 * 10 ** (-c / 9))
    # = 50, 38.7, 29.97, 23.2, 17.97, 13.9, 10.8, 8.3, 6.46, 5.0
    s = cf.build_cifar_lt(_arrays(), imbalance_factor=10, val_per_class=10, seed=0)
    assert s.class_counts == [50, 38, 29, 23, 17, 13, 10, 8, 6, 5]
    assert s.train.class_counts() == s.class_counts
    assert s.val.class_counts() == [10] * 10
    assert len(s.test) == 40
    assert np.intersect1d(s.train.source_indices, s.val.source_indices).size == 0
    assert s.info["max_per_class"] == 50 and s.info["val_per_class"] == 10


def test_cifar_lt_transforms() -> None:
    arrays = _arrays()
    s = cf.build_cifar_lt(arrays, imbalance_factor=10, val_per_class=10, seed=0)
    x, y = s.test[3]
    mean = torch.tensor(cf.CIFAR_SPECS["cifar10"].mean).view(3, 1, 1)
    std = torch.tensor(cf.CIFAR_SPECS["cifar10"].std).view(3, 1, 1)
    torch.testing.assert_close(
        x, (torch.from_numpy(arrays.test_images[3]).float() / 255 - mean) / std
    )
    assert y == int(arrays.test_labels[3])
    torch.manual_seed(0)
    xs = torch.stack([s.train[0][0] for _ in range(20)])
    assert xs.shape == (20, 3, 32, 32)
    assert len({tuple(v.flatten()[:50].tolist()) for v in xs}) > 1  # augmentation varies
    no_aug = cf.build_cifar_lt(arrays, imbalance_factor=10, val_per_class=10, seed=0, augment=False)
    i = int(no_aug.train.source_indices[0])  # without augmentation: the normalised source image
    torch.testing.assert_close(
        no_aug.train[0][0], (torch.from_numpy(arrays.train_images[i]).float() / 255 - mean) / std
    )


def test_cifar_lt_separate_train_and_test_normalisation() -> None:
    """The authors' CIFAR code: ImageNet statistics for training and validation
    (cifar_train.py), CIFAR-10 constants for the test (cifar_test.py)."""
    arrays = _arrays()
    imagenet = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    cifar_test = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
    s = cf.build_cifar_lt(
        arrays, imbalance_factor=10, val_per_class=10, seed=0, augment=False,
        mean=imagenet[0], std=imagenet[1], test_mean=cifar_test[0], test_std=cifar_test[1],
    )  # fmt: skip

    def expect(raw: np.ndarray, stats: tuple[tuple[float, ...], tuple[float, ...]]) -> torch.Tensor:
        m, sd = (torch.tensor(v).view(3, 1, 1) for v in stats)
        return (torch.from_numpy(raw).float() / 255 - m) / sd

    torch.testing.assert_close(s.test[3][0], expect(arrays.test_images[3], cifar_test))
    val_idx = int(s.val.source_indices[0])
    torch.testing.assert_close(s.val[0][0], expect(arrays.train_images[val_idx], imagenet))
    train_idx = int(s.train.source_indices[0])
    torch.testing.assert_close(s.train[0][0], expect(arrays.train_images[train_idx], imagenet))
    assert s.info["test_normalize"] == {"mean": list(cifar_test[0]), "std": list(cifar_test[1])}
    # the batch path (transform_on_device) uses the same statistics
    x, _ = s.test.get_batch(torch.tensor([3]))
    torch.testing.assert_close(x[0], s.test[3][0])
    # one pair for all splits when only mean/std are given
    same = cf.build_cifar_lt(
        arrays, 10, val_per_class=10, augment=False, mean=imagenet[0], std=imagenet[1]
    )
    torch.testing.assert_close(same.test[3][0], expect(arrays.test_images[3], imagenet))
    with pytest.raises(ValueError, match=r"test_std must be > 0"):
        cf.cifar_lt(test_std=[0.2, 0.2, 0.0])
    with pytest.raises(ValueError, match=r"option mean must be 3 numbers"):
        cf.cifar_lt(mean=[0.5, 0.5])


# --- the real CIFAR-10 JPEG zip (../shared/data; required under CI) -------------------------


@pytest.fixture(scope="module")
def real_zip() -> Path:
    """../shared/data/cifar10-jpeg/cifar10-jpeg.zip: skipped when absent, a failure under CI."""
    return shared("cifar10-jpeg/cifar10-jpeg.zip")


def test_real_zip_checksum_layout_and_members(real_zip: Path) -> None:
    spec = cf.CIFAR_SPECS["cifar10"]
    assert hashlib.sha256(real_zip.read_bytes()).hexdigest() in spec.jpeg_zip_sha256
    with zipfile.ZipFile(real_zip) as z:
        names = [i.filename for i in z.infolist() if not i.is_dir()]
        groups = cs._layout(names, str(real_zip))
        assert sorted(groups["train"]) == list(cf.CIFAR10_CLASSES)
        assert {c: len(v) for c, v in groups["train"].items()} == dict.fromkeys(
            cf.CIFAR10_CLASSES, 5000
        )
        assert {c: len(v) for c, v in groups["test"].items()} == dict.fromkeys(
            cf.CIFAR10_CLASSES, 1000
        )
        for n in random.Random(0).sample(names, 20):
            img = cs._decode(z.read(n), n)
            assert img.shape == (3, 32, 32) and img.dtype == np.uint8


@pytest.mark.slow
def test_real_cifar10_lt_counts(real_zip: Path, tmp_path: Path) -> None:
    """Decodes the 60,000 JPEGs of the shared zip once (about 17 s on 2 cores) into a
    temporary cache, then reads them back from it."""
    s = cf.cifar_lt(
        dataset="cifar10",
        imbalance_factor=100,
        val_per_class=50,
        seed=0,
        root=str(tmp_path),
        source=str(real_zip),
    )
    assert s.class_counts == [4950, 2967, 1778, 1066, 639, 383, 229, 137, 82, 49]
    assert (len(s.train), len(s.val), len(s.test)) == (12280, 500, 10000)
    assert s.train.class_counts() == s.class_counts
    assert s.val.class_counts() == [50] * 10 and s.test.class_counts() == [1000] * 10
    assert np.intersect1d(s.train.source_indices, s.val.source_indices).size == 0
    assert s.info["source"]["sha256"].startswith("05b4c8c8")
    assert Path(s.info["source"]["cache"]).is_file()
    again = cf.cifar_lt(
        dataset="cifar10", imbalance_factor=100, seed=0, root=str(tmp_path), source="jpeg"
    )
    assert torch.equal(again.train.images, s.train.images)


def test_a_placed_archive_is_md5_checked_by_fetch(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    (root / "cifar100").mkdir(parents=True)
    (root / "cifar100" / "cifar-100-python.tar.gz").write_bytes(b"not the release")
    with pytest.raises(ValueError, match=r"cifar-100-python.tar.gz: md5 checksum mismatch"):
        cf.fetch_cifar("cifar100", root)


def test_cache_key_names_the_decoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new decoder layout (or Pillow) makes a new cache file instead of reusing the old."""
    z = _small_zip(tmp_path, monkeypatch)
    first = Path(cf.load_cifar("cifar10", source=z).source["cache"])
    assert f"-v{cf.DECODED_LAYOUT}-pil" in first.name
    monkeypatch.setattr(cs, "DECODED_LAYOUT", cs.DECODED_LAYOUT + 1)
    second = Path(cf.load_cifar("cifar10", source=z).source["cache"])
    assert second != first and first.is_file() and second.is_file()
