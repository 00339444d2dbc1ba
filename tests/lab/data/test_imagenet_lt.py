"""ImageNet-LT: the real OLTR val/test lists, and the protocol on a tiny synthetic ImageNet root."""

from __future__ import annotations

import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cdbloss.lab.data.base import load_protocol
from cdbloss.lab.data.imagenet_lt import (
    EXPECTED_COUNTS,
    LIST_FILES,
    map_oltr_path,
)
from cdbloss.lab.data.images import read_list_file
from cdbloss.lab.data.longtail import long_tail_counts
from cdbloss.lab.metrics import shot_groups
from tests.real_data import shared


@pytest.fixture(scope="module")
def real() -> Path:
    """../shared/data/imagenet_lt: skipped when absent, a failure under CI."""
    return shared("imagenet_lt")


# --- the real lists ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("split", "per_class", "folder"), [("val", 20, "train"), ("test", 50, "val")]
)
def test_real_lists_are_balanced_over_1000_classes(
    real: Path, split: str, per_class: int, folder: str
) -> None:
    entries = read_list_file(real / LIST_FILES[split], num_classes=1000)
    assert len(entries) == EXPECTED_COUNTS[split] == 1000 * per_class
    counts = Counter(e.label for e in entries)
    assert sorted(counts) == list(range(1000))
    assert set(counts.values()) == {per_class}
    # the val list holds out ImageNet training images, the test list is ImageNet's val set
    assert all(e.path.startswith(folder + "/") for e in entries)
    # one WordNet id per label, 1000 distinct ids
    wnid = {e.label: e.path.split("/")[1] for e in entries}
    assert all(e.path.split("/")[1] == wnid[e.label] for e in entries)
    assert len(set(wnid.values())) == 1000 and wnid[0] == "n01440764"


def test_real_val_and_test_share_class_ids_and_are_disjoint(real: Path) -> None:
    val = read_list_file(real / LIST_FILES["val"], 1000)
    test = read_list_file(real / LIST_FILES["test"], 1000)
    wv = {e.label: e.path.split("/")[1] for e in val}
    wt = {e.label: e.path.split("/")[1] for e in test}
    assert wv == wt
    assert not {e.path for e in val} & {e.path for e in test}


def test_protocol_over_real_lists_without_images(real: Path, tmp_path: Path) -> None:
    """Real val/test lists with a stand-in long-tailed train list, files not verified."""
    lists = tmp_path / "lists"
    lists.mkdir()
    for split in ("val", "test"):
        (lists / LIST_FILES[split]).write_bytes((real / LIST_FILES[split]).read_bytes())
    val = read_list_file(real / LIST_FILES["val"], 1000)
    wnid = {e.label: e.path.split("/")[1] for e in val}
    counts = long_tail_counts(1280, 1000, 256)
    lines = [
        f"train/{wnid[c]}/{wnid[c]}_{k}.JPEG {c}" for c in range(1000) for k in range(counts[c])
    ]
    (lists / LIST_FILES["train"]).write_text("\n".join(lines) + "\n")
    root = tmp_path / "imagenet"
    (root / "train").mkdir(parents=True)
    with pytest.warns(UserWarning, match="OLTR list has 115846"):
        s = load_protocol("imagenet-lt", root=root, lists_dir=lists, verify_files=False)
    assert s.num_classes == 1000 and len(s.class_names) == 1000
    assert s.class_names[0] == "n01440764" and s.class_names == [wnid[c] for c in range(1000)]
    assert (len(s.val), len(s.test)) == (20_000, 50_000)
    assert s.class_counts == counts
    assert s.info["max_per_class"] == 1280 and s.info["min_per_class"] == 5
    # but verifying files against the empty root fails, naming the list and the count
    with (
        pytest.warns(UserWarning),
        pytest.raises(FileNotFoundError, match=r"of \d+ images named by"),
    ):
        load_protocol("imagenet-lt", root=root, lists_dir=lists)


# --- a tiny synthetic ImageNet ----------------------------------------------------------------

WNIDS = ["n00000002", "n00000001", "n00000003"]  # label order is the lists', not sorted
TRAIN_N = [5, 3, 1]


def img(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((12, 16, 3), value, dtype=np.uint8)).save(path)


def make_imagenet(tmp_path: Path, layout: str = "imagenet") -> tuple[Path, Path]:
    """A root with ``TRAIN_N`` training, 2 val (held-out train) and 2 test images per class."""
    root, lists = tmp_path / "root", tmp_path / "lists"
    lists.mkdir()
    rows: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for c, w in enumerate(WNIDS):
        for k in range(TRAIN_N[c] + 2):
            rel = f"train/{w}/{w}_{k}.JPEG"
            rows["train" if k < TRAIN_N[c] else "val"].append(f"{rel} {c}")
            dest = rel if layout == "imagenet" else map_oltr_path(rel)
            img(root / dest, 10 * c)
        for k in range(2):
            rel = f"val/{w}/ILSVRC2012_val_{c}{k:07d}.JPEG"
            rows["test"].append(f"{rel} {c}")
            img(root / (rel if layout == "imagenet" else map_oltr_path(rel)), 10 * c)
    for split, lines in rows.items():
        (lists / LIST_FILES[split]).write_text("\n".join(lines) + "\n")
    return root, lists


def build(**kw: object):  # type: ignore[no-untyped-def]
    with pytest.warns(UserWarning, match="OLTR list has"):
        return load_protocol("imagenet-lt", image_size=8, resize_size=10, **kw)


@pytest.mark.parametrize("layout", ["imagenet", "oltr"])
def test_protocol_end_to_end(tmp_path: Path, layout: str) -> None:
    root, lists = make_imagenet(tmp_path, layout)
    s = build(root=root, lists_dir=lists)
    assert s.info["layout"] == layout
    assert s.class_counts[:3] == TRAIN_N and sum(s.class_counts) == 9
    assert s.class_names[:3] == WNIDS and s.class_names[3] == "class_3"
    assert (len(s.train), len(s.val), len(s.test)) == (9, 6, 6)
    for ds in (s.train, s.val, s.test):
        x, y = ds[len(ds) - 1]
        assert x.shape == (3, 8, 8) and y == 2
    assert s.info["shot_groups"]["few"][:3] == [0, 1, 2]


def test_protocol_reads_a_zipped_root(tmp_path: Path) -> None:
    root, lists = make_imagenet(tmp_path)
    zpath = tmp_path / "imagenet.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for p in root.rglob("*.JPEG"):
            zf.write(p, p.relative_to(root).as_posix())
    s = build(root=zpath, lists_dir=lists)
    x, y = s.test[0]
    assert x.shape == (3, 8, 8) and y == 0


def test_lists_found_inside_the_root(tmp_path: Path) -> None:
    root, lists = make_imagenet(tmp_path)
    for name in LIST_FILES.values():
        (root / name).write_bytes((lists / name).read_bytes())
    assert len(build(root=root).train) == 9


def test_missing_lists_say_which_files_and_where_to_get_them(tmp_path: Path) -> None:
    root, lists = make_imagenet(tmp_path)
    (lists / LIST_FILES["train"]).unlink()
    with pytest.raises(FileNotFoundError) as err:
        load_protocol("imagenet-lt", root=root, lists_dir=lists)
    msg = str(err.value)
    assert "ImageNet_LT_train.txt" in msg and str(lists) in msg
    assert "OLTR" in msg and "hitachi-rd-cv/CDB-loss" in msg


def test_missing_root_says_what_layout_is_expected(tmp_path: Path) -> None:
    _, lists = make_imagenet(tmp_path)
    with pytest.warns(UserWarning), pytest.raises(FileNotFoundError, match="needs root="):
        load_protocol("imagenet-lt", lists_dir=lists)
    (tmp_path / "wrong").mkdir()
    with pytest.warns(UserWarning), pytest.raises(FileNotFoundError, match=r"train/<wnid>"):
        load_protocol("imagenet-lt", root=tmp_path / "wrong", lists_dir=lists)
    with pytest.warns(UserWarning), pytest.raises(FileNotFoundError, match="does not exist"):
        load_protocol("imagenet-lt", root=tmp_path / "absent", lists_dir=lists)


def test_missing_image_is_named_with_its_line(tmp_path: Path) -> None:
    root, lists = make_imagenet(tmp_path)
    (root / "val" / WNIDS[1] / "ILSVRC2012_val_10000001.JPEG").unlink()
    with pytest.warns(UserWarning), pytest.raises(FileNotFoundError) as err:
        load_protocol("imagenet-lt", root=root, lists_dir=lists)
    msg = str(err.value)
    assert "1 of 6 images" in msg
    assert f"ImageNet_LT_test.txt:4: val/{WNIDS[1]}/ILSVRC2012_val_10000001.JPEG" in msg


def test_bad_labels_are_refused(tmp_path: Path) -> None:
    root, lists = make_imagenet(tmp_path)
    p = lists / LIST_FILES["val"]
    p.write_text(p.read_text() + f"train/{WNIDS[0]}/{WNIDS[0]}_9.JPEG 1000\n")
    with pytest.raises(ValueError, match=r"ImageNet_LT_val.txt:7: label 1000 .* outside"):
        load_protocol("imagenet-lt", root=root, lists_dir=lists)
    p.write_text(f"train/{WNIDS[0]}/{WNIDS[0]}_5.JPEG 1\n")  # wnid of class 0 labelled 1
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="lists disagree"):
        load_protocol("imagenet-lt", root=root, lists_dir=lists)


def test_helpers() -> None:
    assert map_oltr_path("val/n1/x.JPEG") == "ILSVRC2012_img_val/x.JPEG"
    assert map_oltr_path("train/n1/x.JPEG") == "ILSVRC2012_img_train/n1/x.JPEG"
    g = shot_groups([101, 100, 20, 19])  # the one definition, in cdbloss.lab.metrics
    assert {k: m.nonzero().flatten().tolist() for k, m in g.items()} == {
        "many": [0],
        "medium": [1, 2],
        "few": [3],
    }
