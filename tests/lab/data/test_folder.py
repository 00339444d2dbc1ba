"""The ``folder`` protocol: ImageFolder trees, zips, CSVs, made splits, long-tail cut."""

from __future__ import annotations

import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cdbloss.lab.data import folder as _folder  # noqa: F401  (registers the protocol)
from cdbloss.lab.data.base import DataSplits, load_protocol
from cdbloss.lab.data.cifar import CIFAR10_CLASSES
from cdbloss.lab.data.longtail import long_tail_counts
from tests.lab.data.test_pinned_splits import write_cifar_zip
from tests.real_data import shared


def write(path: Path, value: int, ext: str = ".png") -> None:
    path = path.with_suffix(ext)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((10, 12, 3), value, dtype=np.uint8)).save(path)


SIZES = {"zebra": 12, "ant": 10, "mole": 8}  # sorted classes: ant, mole, zebra


def make_tree(root: Path, sizes: dict[str, int] = SIZES) -> Path:
    for c, (name, n) in enumerate(sorted(sizes.items())):
        for k in range(n):
            write(root / name / f"{name}_{k:03d}", 20 * c + k, ".jpg" if k % 2 else ".png")
    return root


def make_split_tree(root: Path, val: bool = True, test: bool = True) -> Path:
    make_tree(root / "train")
    if val:
        make_tree(root / "val", {n: 2 for n in SIZES})
    if test:
        make_tree(root / "test", {n: 3 for n in SIZES})
    return root


def zipdir(src: Path, dest: Path, wrapper: str = "") -> Path:
    with zipfile.ZipFile(dest, "w") as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                zf.write(p, wrapper + p.relative_to(src).as_posix())
    return dest


def paths(ds: object) -> list[str]:
    return [p for p, _ in ds.samples]  # type: ignore[attr-defined]


def build(root: Path, **kw: object) -> DataSplits:
    kw.setdefault("image_size", 8)
    return load_protocol("folder", root=root, **kw)


# --- trees ------------------------------------------------------------------------------------


def test_plain_tree_gets_seeded_stratified_val_and_test(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "d")
    s = build(root, val_per_class=2, test_per_class=3, seed=1)
    assert s.class_names == ["ant", "mole", "zebra"]
    assert s.class_counts == [10 - 5, 8 - 5, 12 - 5]
    assert Counter(s.val.targets) == {0: 2, 1: 2, 2: 2}  # type: ignore[attr-defined]
    assert Counter(s.test.targets) == {0: 3, 1: 3, 2: 3}  # type: ignore[attr-defined]
    all_paths = paths(s.train) + paths(s.val) + paths(s.test)
    assert len(all_paths) == len(set(all_paths)) == 30  # disjoint and complete
    assert s.info["made_splits"] == ["test", "val"]
    again = build(root, val_per_class=2, test_per_class=3, seed=1)
    assert paths(again.val) == paths(s.val) and paths(again.test) == paths(s.test)
    other = build(root, val_per_class=2, test_per_class=3, seed=2)
    assert paths(other.val) != paths(s.val) or paths(other.test) != paths(s.test)
    # labels follow the class folders
    for p, y in s.train.samples:  # type: ignore[attr-defined]
        assert p.startswith(s.class_names[y] + "/")


def test_fraction_hold_outs(tmp_path: Path) -> None:
    s = build(make_tree(tmp_path / "d"), val_per_class=0.1, test_per_class=0.25)
    # test: round(0.25 n) = 3, 2, 3; then val: round(0.1 rest) at least 1 = 1, 1, 1
    assert Counter(s.test.targets) == {0: 3, 1: 2, 2: 3}  # type: ignore[attr-defined]
    assert Counter(s.val.targets) == {0: 1, 1: 1, 2: 1}  # type: ignore[attr-defined]


def test_split_tree_is_used_as_given(tmp_path: Path) -> None:
    s = build(make_split_tree(tmp_path / "d"))
    assert s.info["made_splits"] == [] and s.info["source"] == "split-tree"
    assert (len(s.train), len(s.val), len(s.test)) == (30, 6, 9)
    assert s.class_counts == [10, 8, 12]
    assert all(p.startswith("val/") for p in paths(s.val))


def test_split_tree_without_val_makes_one_from_train(tmp_path: Path) -> None:
    s = build(make_split_tree(tmp_path / "d", val=False), val_per_class=4)
    assert s.info["made_splits"] == ["val"]
    assert s.class_counts == [6, 4, 8] and len(s.test) == 9
    assert all(p.startswith("train/") for p in paths(s.val))


def test_val_folder_named_validation(tmp_path: Path) -> None:
    root = make_split_tree(tmp_path / "d", val=False)
    make_tree(root / "validation", {"ant": 1, "mole": 1})  # a subset of the classes is fine
    s = build(root)
    assert sorted(s.val.targets) == [0, 1]  # type: ignore[attr-defined]


def test_zip_with_wrapper_folder_equals_the_directory(tmp_path: Path) -> None:
    root = make_split_tree(tmp_path / "d", val=False)
    z = build(zipdir(root, tmp_path / "d.zip", wrapper="mydata/"), seed=3)
    d = build(root, seed=3)
    assert z.class_names == d.class_names and z.class_counts == d.class_counts
    assert [p.removeprefix("mydata/") for p in paths(z.val)] == paths(d.val)
    xz, yz = z.test[4]
    xd, yd = d.test[4]
    assert yz == yd and torch.equal(xz, xd)


def test_outputs_and_augment_modes(tmp_path: Path) -> None:
    root = make_split_tree(tmp_path / "d")
    for augment in ("imagenet", "cifar", "none"):
        s = build(root, image_size=6, augment=augment)
        for ds in (s.train, s.val, s.test):
            x, y = ds[0]
            assert x.shape == (3, 6, 6) and x.dtype == torch.float32 and isinstance(y, int)
    with pytest.raises(ValueError, match="augment must be"):
        build(root, augment="heavy")


# --- long tail --------------------------------------------------------------------------------


def test_long_tail_cut_follows_the_profile(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "d", {"a": 20, "b": 20, "c": 20, "d": 20})
    s = build(root, val_per_class=2, test_per_class=2, imbalance_factor=8, seed=0)
    assert s.class_counts == long_tail_counts(16, 4, 8) == [16, 8, 4, 2]
    assert s.info["imbalance_factor"] == 8
    step = build(root, val_per_class=2, test_per_class=2, imbalance_factor=4, lt_profile="step")
    assert step.class_counts == [16, 16, 4, 4]
    # n_max is the smallest class left (4 here), as in cifar-lt: no class is short
    uneven = make_tree(tmp_path / "u", {"a": 6, "b": 14, "c": 14})
    s = build(uneven, val_per_class=1, test_per_class=1, imbalance_factor=2)
    assert s.class_counts == long_tail_counts(4, 3, 2) == [4, 2, 2]


def test_folder_draws_what_cifar_lt_draws(tmp_path: Path) -> None:
    """One split-seed rule: the same zip, seed, validation size and factor give
    ``folder`` and ``cifar-lt`` the same validation and training images."""
    z = write_cifar_zip(tmp_path / "cifar10-jpeg.zip")
    with zipfile.ZipFile(z) as zf:  # cifar-lt's order: class (official), then name
        names = sorted(
            (n for n in zf.namelist() if "/train/" in n),
            key=lambda n: (CIFAR10_CLASSES.index(n.split("/")[-2]), n),
        )
    for seed, val, factor in ((0, 3, 10.0), (5, 2, 4.0)):
        lt = load_protocol(
            "cifar-lt", source=str(z), root=str(tmp_path / "cache"), verify=False,
            augment=False, seed=seed, val_per_class=val, imbalance_factor=factor,
        )  # fmt: skip
        f = build(z, seed=seed, val_per_class=val, imbalance_factor=factor, augment="none")
        assert f.info["made_splits"] == ["val"] and f.class_counts == lt.class_counts
        assert paths(f.val) == [names[i] for i in lt.val.source_indices]  # type: ignore[attr-defined]
        assert paths(f.train) == [names[i] for i in lt.train.source_indices]  # type: ignore[attr-defined]


# --- CSV --------------------------------------------------------------------------------------


def test_csv_with_class_names_and_splits(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "imgs")
    rows = ["file,class,split"]
    for p in sorted(root.rglob("*.*")):
        rel = p.relative_to(root).as_posix()
        k = int(p.stem.rsplit("_", 1)[1])
        rows.append(f"{rel},{p.parent.name},{'test' if k < 2 else 'train'}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    s = build(root / "labels.csv", val_per_class=1)
    assert s.info["source"] == "csv" and s.info["made_splits"] == ["val"]
    assert s.class_names == ["ant", "mole", "zebra"]
    assert len(s.test) == 6 and s.class_counts == [7, 5, 9]
    assert s.train[0][0].shape == (3, 8, 8)


def test_csv_with_integer_labels_and_a_zip_image_root(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "imgs")
    z = zipdir(root, tmp_path / "imgs.zip")
    lines = [
        f"{p.relative_to(root).as_posix()},{sorted(SIZES).index(p.parent.name)}"
        for p in sorted(root.rglob("*.*"))
    ]
    csv = tmp_path / "meta" / "l.csv"
    csv.parent.mkdir()
    csv.write_text("\n".join(lines) + "\n")
    s = build(csv, image_root=z, val_per_class=1, test_per_class=1)
    assert s.class_names == ["0", "1", "2"]
    assert s.class_counts == [8, 6, 10]
    assert s.val[0][0].shape == (3, 8, 8)


def test_csv_naming_a_missing_image(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "imgs")
    csv = root / "l.csv"
    csv.write_text("path,label\nant/ant_000.png,ant\nant/ant_099.png,ant\nmole/mole_000.png,mole\n")
    with pytest.raises(FileNotFoundError, match=r"l\.csv:3: ant/ant_099\.png"):
        build(csv)
    zcsv = tmp_path / "z.csv"
    zcsv.write_text("path,label\nant/ant_000.png,ant\nmole/mole_404.png,mole\n")
    with pytest.raises(FileNotFoundError, match=r"z\.csv:3: mole/mole_404\.png"):
        build(zcsv, image_root=zipdir(root, tmp_path / "i.zip"))


def test_csv_negative_label(tmp_path: Path) -> None:
    csv = tmp_path / "l.csv"
    csv.write_text("a.png,0\nb.png,-1\n")
    with pytest.raises(ValueError, match=r"l\.csv:2: label -1 is negative"):
        build(csv)


# --- bad input --------------------------------------------------------------------------------


def test_too_few_images_for_the_hold_out_names_the_class(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "d", {"big": 10, "tiny": 3})
    with pytest.raises(ValueError, match=r"'tiny' has 2 training images left.*val_per_class"):
        build(root, test_per_class=1, val_per_class=2)  # tiny: 3 - 1 = 2 left, 2 asked
    with pytest.raises(ValueError, match=r"'tiny' has 3 training images left.*test_per_class"):
        build(root, test_per_class=3)


def test_val_class_absent_from_train(tmp_path: Path) -> None:
    root = make_split_tree(tmp_path / "d", val=False)
    make_tree(root / "val", {"ant": 1, "yak": 1})
    with pytest.raises(ValueError, match=r"absent from train/: \['yak'\]"):
        build(root)


def test_missing_and_malformed_roots(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="needs root="):
        load_protocol("folder")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build(tmp_path / "absent")
    (tmp_path / "e" / "test" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="no train/ folder"):
        build(tmp_path / "e")
    make_tree(tmp_path / "one", {"only": 4})
    with pytest.raises(ValueError, match="need at least 2"):
        build(tmp_path / "one", test_per_class=1, val_per_class=1)
    with pytest.raises(ValueError, match="seed must be"):
        build(make_tree(tmp_path / "d"), seed=-1)


# --- real data --------------------------------------------------------------------------------


def test_real_cifar10_zip_as_a_folder_dataset() -> None:
    s = build(
        shared("cifar10-jpeg/cifar10-jpeg.zip"), image_size=32, augment="cifar", val_per_class=50
    )
    assert s.class_names == [
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ]  # fmt: skip
    assert s.class_counts == [4950] * 10
    assert Counter(s.test.targets) == dict.fromkeys(range(10), 1000)  # type: ignore[attr-defined]
    assert len(s.val) == 500
    x, y = s.test[0]
    assert x.shape == (3, 32, 32) and y == 0
