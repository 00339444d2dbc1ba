"""Image stores (directory, zip), ImageFolder scans, list and CSV files, ImageDataset."""

from __future__ import annotations

import pickle
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from cdbloss.lab.data.images import (
    DirectoryStore,
    ImageDataset,
    ListEntry,
    ZipStore,
    check_exists,
    is_image_file,
    open_store,
    read_csv_file,
    read_list_file,
    scan_image_folder,
)

CLASSES = {"dog": 3, "cat": 2, "emu": 4}  # deliberately not in sorted order


def colour(label: int, k: int) -> tuple[int, int, int]:
    return (40 * label + 10, 7 * k + 3, 200 - 30 * label)


def write_image(path: Path, rgb: tuple[int, int, int], size: tuple[int, int] = (6, 5)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    arr[...] = rgb
    arr[0, 0] = (255, 255, 255)  # one marked corner, to see orientation survive
    Image.fromarray(arr).save(path)


def make_tree(root: Path, ext: str = ".png") -> Path:
    """``root/<class>/<k><ext>`` with a stray text file and a hidden file."""
    for ci, name in enumerate(sorted(CLASSES)):
        for k in range(CLASSES[name]):
            write_image(root / name / f"{k:02d}{ext}", colour(ci, k))
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "cat" / ".hidden.png").write_bytes(b"junk")
    return root


def zip_tree(src: Path, dest: Path, dir_entries: bool = True, prefix: str = "") -> Path:
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED) as zf:
        for p in sorted(src.rglob("*")):
            arc = prefix + p.relative_to(src).as_posix()
            if p.is_dir():
                if dir_entries:
                    zf.writestr(arc + "/", b"")
            else:
                zf.write(p, arc)
    return dest


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "pets")


# --- scanning ---------------------------------------------------------------------------------


def test_scan_sorts_classes_and_files_and_skips_non_images(tree: Path) -> None:
    classes, samples = scan_image_folder(DirectoryStore(tree))
    assert classes == ["cat", "dog", "emu"]
    assert len(samples) == 9
    assert samples[0] == ("cat/00.png", 0) and samples[-1] == ("emu/03.png", 2)
    assert [y for _, y in samples] == [0, 0, 1, 1, 1, 2, 2, 2, 2]
    assert not any("notes" in p or "hidden" in p for p, _ in samples)


@pytest.mark.parametrize("dir_entries", [True, False])
def test_zip_scan_equals_directory_scan(tree: Path, tmp_path: Path, dir_entries: bool) -> None:
    z = ZipStore(zip_tree(tree, tmp_path / "pets.zip", dir_entries=dir_entries))
    assert scan_image_folder(z) == scan_image_folder(DirectoryStore(tree))


def test_zip_prefix_selects_a_folder(tree: Path, tmp_path: Path) -> None:
    path = zip_tree(tree, tmp_path / "wrapped.zip", prefix="data/pets/")
    assert ZipStore(path).listdir("") == (["data"], [])
    assert scan_image_folder(ZipStore(path, prefix="data/pets")) == scan_image_folder(
        DirectoryStore(tree)
    )
    assert scan_image_folder(ZipStore(path), "data/pets")[0] == ["cat", "dog", "emu"]
    with pytest.raises(FileNotFoundError, match="no folder 'nope'"):
        ZipStore(path, prefix="nope").listdir()


def test_scan_errors(tmp_path: Path, tree: Path) -> None:
    store = DirectoryStore(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        scan_image_folder(store, "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no class folders"):
        scan_image_folder(store, "empty")
    (tmp_path / "empty" / "a").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        scan_image_folder(store, "empty")
    # a root one level too high: class folders hold folders
    with pytest.raises(ValueError, match="one level too high"):
        scan_image_folder(store, "")


def test_is_image_file() -> None:
    assert is_image_file("a/b/C.JPEG") and is_image_file("x.png")
    assert not is_image_file("x.txt") and not is_image_file("a/.x.jpg")


# --- decoding ---------------------------------------------------------------------------------


def test_directory_and_zip_decode_the_same_pixels(tree: Path, tmp_path: Path) -> None:
    d = DirectoryStore(tree)
    z = ZipStore(zip_tree(tree, tmp_path / "pets.zip"))
    _, samples = scan_image_folder(d)
    for store in (d, z):
        ds = ImageDataset(store, samples, num_classes=3)
        x, y = ds[2]  # dog/00.png (cat has two images)
        assert isinstance(y, int) and y == 1
        assert x.shape == (3, 5, 6) and x.dtype == torch.float32
        expected = torch.tensor(colour(1, 0), dtype=torch.float32) / 255
        assert torch.allclose(x[:, 2, 3], expected)  # PNG is lossless
        assert torch.allclose(x[:, 0, 0], torch.ones(3))  # marked corner still top-left
    assert ds.targets == [y for _, y in samples]


def test_jpeg_and_greyscale_are_decoded_to_rgb(tmp_path: Path) -> None:
    write_image(tmp_path / "a" / "x.jpg", (100, 150, 200), size=(16, 16))
    Image.new("L", (4, 3), 90).save(tmp_path / "a" / "g.png")
    store = DirectoryStore(tmp_path)
    rgb = store.open_image("a/x.jpg")
    assert rgb.mode == "RGB" and rgb.size == (16, 16)
    assert np.abs(np.asarray(rgb)[8, 8].astype(int) - [100, 150, 200]).max() <= 4
    g = store.open_image("a/g.png")
    assert g.mode == "RGB" and tuple(np.asarray(g)[1, 1]) == (90, 90, 90)


def test_corrupt_image_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "bad.jpg").write_bytes(b"not a jpeg at all")
    ds = ImageDataset(DirectoryStore(tmp_path), [("c/bad.jpg", 0)])
    with pytest.raises(ValueError, match=r"cannot decode image 'c/bad\.jpg'"):
        ds[0]


def test_missing_file_at_read_time_is_named(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"cat/zz\.png"):
        DirectoryStore(tree).read_bytes("cat/zz.png")
    z = ZipStore(zip_tree(tree, tmp_path / "p.zip"))
    with pytest.raises(FileNotFoundError, match=r"has no member 'cat/zz\.png'"):
        z.read_bytes("cat/zz.png")


def test_dataset_checks_labels() -> None:
    with pytest.raises(ValueError, match="outside"):
        ImageDataset(DirectoryStore("."), [("a.png", 3)], num_classes=3)


# --- zip stores across threads and processes --------------------------------------------------


def test_zip_store_pickles_without_a_handle(tree: Path, tmp_path: Path) -> None:
    z = ZipStore(zip_tree(tree, tmp_path / "p.zip"))
    before = np.asarray(z.open_image("emu/01.png"))  # opens a handle and the member table
    z2 = pickle.loads(pickle.dumps(z))
    assert z2._files is None and not hasattr(z2._local, "zf")
    assert np.array_equal(np.asarray(z2.open_image("emu/01.png")), before)


def test_zip_store_is_thread_safe(tree: Path, tmp_path: Path) -> None:
    z = ZipStore(zip_tree(tree, tmp_path / "p.zip"))
    _, samples = scan_image_folder(z)
    serial = [np.asarray(z.open_image(p)) for p, _ in samples]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            par = list(pool.map(lambda s: np.asarray(z.open_image(s[0])), samples))
            assert all(np.array_equal(a, b) for a, b in zip(serial, par, strict=True))


def _child_fileno(z: ZipStore) -> int:
    z.open_image("cat/00.png")
    fp = z._local.zf.fp
    assert fp is not None
    return int(fp.fileno())


def test_forked_process_opens_its_own_zip_handle(tree: Path, tmp_path: Path) -> None:
    import multiprocessing as mp

    z = ZipStore(zip_tree(tree, tmp_path / "p.zip"))
    parent_fd = _child_fileno(z)  # the parent opens a handle before forking
    # the forked child inherits the store object, handle included, without pickling
    ctx = mp.get_context("fork")
    q = ctx.SimpleQueue()
    proc = ctx.Process(target=lambda: q.put(_child_fileno(z)))
    proc.start()
    proc.join(10)
    assert proc.exitcode == 0
    assert q.get() != parent_fd  # a fresh descriptor, not the inherited one


def test_zip_dataset_in_dataloader_workers(tree: Path, tmp_path: Path) -> None:
    z = ZipStore(zip_tree(tree, tmp_path / "p.zip"))
    _, samples = scan_image_folder(z)
    ds = ImageDataset(z, samples * 4)
    serial = torch.stack([ds[i][0] for i in range(len(ds))])  # the parent now holds a handle
    loader = DataLoader(ds, batch_size=5, num_workers=2, shuffle=False)
    batches = torch.cat([x for x, _ in loader])
    assert torch.equal(batches, serial)


# --- list files -------------------------------------------------------------------------------


def test_read_list_file(tmp_path: Path) -> None:
    p = tmp_path / "list.txt"
    p.write_text("train/a/1.JPEG 0\n\ntrain/b/my file.JPEG 2\n./val/c/3.JPEG\t1\n")
    assert read_list_file(p, num_classes=3) == [
        ListEntry("train/a/1.JPEG", 0, 1),
        ListEntry("train/b/my file.JPEG", 2, 3),
        ListEntry("val/c/3.JPEG", 1, 4),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a.jpg 0\nb.jpg\n", r"list.txt:2: expected '<relative/path> <label>'"),
        ("a.jpg 0\nb.jpg x\n", r"list.txt:2: the label must be an integer, got 'x'"),
        ("a.jpg 0\nb.jpg 1\nc.jpg 5\n", r"list.txt:3: label 5 of 'c.jpg' is outside .*\[0, 5\)"),
        ("a.jpg -1\n", r"list.txt:1: label -1"),
    ],
)
def test_bad_list_lines_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "list.txt"
    p.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_list_file(p, num_classes=5)


def test_missing_list_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.txt"):
        read_list_file(tmp_path / "nope.txt")


def test_check_exists_names_the_missing_lines(tree: Path, tmp_path: Path) -> None:
    p = tmp_path / "l.txt"
    p.write_text("cat/00.png 0\ncat/07.png 0\ndog/01.png 1\nyak/00.png 2\n")
    entries = read_list_file(p)
    for store in (DirectoryStore(tree), ZipStore(zip_tree(tree, tmp_path / "p.zip"))):
        with pytest.raises(FileNotFoundError) as err:
            check_exists(store, entries, str(p))
        msg = str(err.value)
        assert "2 of 4 images" in msg
        assert f"{p}:2: cat/07.png" in msg and f"{p}:4: yak/00.png" in msg
        check_exists(store, entries[:1] + entries[2:3], str(p))  # all present: no error


def test_check_exists_on_many_entries_and_summarises(tmp_path: Path) -> None:
    entries = [
        ListEntry(f"train/n{c:04d}/{k}.JPEG", c, c * 60 + k + 1)
        for c in range(50)
        for k in range(60)
    ]
    with pytest.raises(
        FileNotFoundError, match=r"3000 of 3000 .*\n(.*\n){5}  \.\.\. and 2995 more"
    ):
        check_exists(DirectoryStore(tmp_path), entries, "big.txt")


# --- CSV --------------------------------------------------------------------------------------


def test_csv_with_header_in_any_column_order(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    p.write_text("Label,Split,Path\ncat,train,a/1.png\ndog,TEST,b/2.png\n")
    rows = read_csv_file(p)
    assert [(r.path, r.label, r.split, r.line) for r in rows] == [
        ("a/1.png", "cat", "train", 2),
        ("b/2.png", "dog", "test", 3),
    ]


def test_csv_without_header(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    p.write_text("a/1.png,0\n\nb/2.png,1\n")
    rows = read_csv_file(p)
    assert [(r.path, r.label, r.split, r.line) for r in rows] == [
        ("a/1.png", "0", None, 1),
        ("b/2.png", "1", None, 3),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty CSV"),
        ("path,label\n", "no data rows"),
        ("path,label\na.png,1\nb.png\n", r"d.csv:3: expected 2 cells, got 1"),
        ("path,label,split\na.png,1,holdout\n", r"d.csv:2: split must be train, val or test"),
        ("path,label\na.png,\n", r"d.csv:2: empty path or label"),
        ("a.png\n", r"d.csv:1: expected 'path,label'"),
    ],
)
def test_bad_csv_rows_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "d.csv"
    p.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_csv_file(p)


# --- open_store -------------------------------------------------------------------------------


def test_open_store_kinds(tree: Path, tmp_path: Path) -> None:
    assert isinstance(open_store(tree), DirectoryStore)
    assert isinstance(open_store(zip_tree(tree, tmp_path / "p.zip")), ZipStore)
    (tmp_path / "plain.txt").write_text("x")
    with pytest.raises(ValueError, match="not a zip archive"):
        open_store(tmp_path / "plain.txt")
    with pytest.raises(FileNotFoundError, match=r"expected a directory of images or a \.zip"):
        open_store(tmp_path / "nothing")
