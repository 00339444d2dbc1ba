"""EGTEA Gaze+ verbs: the real split lists (the paper's numbers), frame sampling, clip layout."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cdbloss.lab.data.base import load_protocol
from cdbloss.lab.data.egtea import (
    MAJORITY_VERBS,
    SPLIT_FILES,
    VERBS,
    EgteaClips,
    clip_dir,
    read_split_file,
    segment_indices,
    video_name,
)
from cdbloss.lab.data.transforms import to_tensor
from tests.real_data import shared


@pytest.fixture(scope="module")
def real() -> Path:
    """../shared/data/egtea: skipped when absent, a failure under CI."""
    return shared("egtea")


# --- the real split lists ---------------------------------------------------------------------


def test_real_split_sizes_and_classes(real: Path) -> None:
    splits = {s: read_split_file(real / f) for s, f in SPLIT_FILES.items()}
    assert {s: len(e) for s, e in splits.items()} == {"train": 6372, "val": 1927, "test": 2022}
    for entries in splits.values():
        assert {e.label for e in entries} == set(range(19))
    names = {s: {e.name for e in es} for s, es in splits.items()}
    assert not names["train"] & names["val"] and not names["test"] & (names["train"] | names["val"])


def test_real_majority_and_minority_averages_are_the_papers(real: Path) -> None:
    entries = read_split_file(real / "train_split.txt") + read_split_file(real / "val_split.txt")
    counts = Counter(e.label for e in entries)
    ranked = sorted(counts, key=lambda c: -counts[c])
    top, rest = ranked[:5], ranked[5:]
    assert np.mean([counts[c] for c in top]) == 1216.0
    assert np.mean([counts[c] for c in rest]) == 158.5
    # the paper's majority classes, in its order: Take, Put, Open, Cut, Read
    assert tuple(top) == MAJORITY_VERBS
    assert [VERBS[c] for c in top] == ["Take", "Put", "Open", "Cut", "Inspect/Read"]


def test_real_train_counts_match_the_public_codes_table(real: Path) -> None:
    # EGTEA_train.py of hitachi-rd-cv/CDB-loss hard-codes the training clips per verb
    counts = Counter(e.label for e in read_split_file(real / "train_split.txt"))
    public = [
        429,
        779,
        1421,
        822,
        129,
        1335,
        130,
        308,
        223,
        249,
        54,
        54,
        139,
        42,
        78,
        117,
        26,
        15,
        22,
    ]
    assert [counts[c] for c in range(19)] == public


def test_real_validation_is_subjects_p20_to_p26(real: Path) -> None:
    p20_26 = {f"P{i}" for i in range(20, 27)}
    val = {e.name.split("-")[0] for e in read_split_file(real / "val_split.txt")}
    train = {e.name.split("-")[0] for e in read_split_file(real / "train_split.txt")}
    assert val == p20_26
    assert not train & p20_26 and "OP01" in train  # the OP subjects stay in training


def test_protocol_on_real_lists_needs_the_frames(real: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        load_protocol("egtea", root=tmp_path / "frames", lists_dir=real)
    assert "<root>/<video>/<clip_name>/NNNNNN.jpg" in str(err.value)
    (tmp_path / "frames").mkdir()
    with pytest.raises(
        FileNotFoundError, match=r"(?s)6372 of 6372 clip folders .*train_split.txt:1: "
    ):
        load_protocol("egtea", root=tmp_path / "frames", lists_dir=real)
    s = load_protocol("egtea", root=tmp_path / "frames", lists_dir=real, verify_files=False)
    assert s.num_classes == 19 and s.class_names == list(VERBS)
    assert (len(s.train), len(s.val), len(s.test)) == (6372, 1927, 2022)
    assert sum(s.class_counts) == 6372
    assert tuple(s.info["majority_classes"]) == MAJORITY_VERBS
    assert s.info["clip_shape"] == [3, 10, 224, 224]


# --- names and sampling -----------------------------------------------------------------------


def test_video_name_and_clip_dir() -> None:
    clip = "P19-R03-BaconAndEggs-806419-820160-F019321-F019717"
    assert video_name(clip) == "P19-R03-BaconAndEggs"
    assert clip_dir("/x", clip) == Path("/x/P19-R03-BaconAndEggs") / clip
    with pytest.raises(ValueError, match="does not start with"):
        video_name("P19-R03")


def test_segment_centres_by_hand() -> None:
    assert segment_indices(100, 10, train=False) == [5, 15, 25, 35, 45, 55, 65, 75, 85, 95]
    # 25 frames: segment i is [2.5 i, 2.5 (i + 1)), centre floor(2.5 i + 1.25)
    assert segment_indices(25, 10, train=False) == [1, 3, 6, 8, 11, 13, 16, 18, 21, 23]
    assert segment_indices(4, 10, train=False) == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]
    assert segment_indices(1, 3, train=False) == [0, 0, 0]


def test_training_draws_one_frame_per_segment_and_covers_it() -> None:
    g = torch.Generator().manual_seed(0)
    seen: list[set[int]] = [set() for _ in range(10)]
    # 35 frames, segment i = time [3.5 i, 3.5 (i + 1)); a time t shows frame floor(t), so
    # segment i reaches the frames floor(3.5 i) .. ceil(3.5 (i + 1)) - 1
    reach = [list(range(math.floor(3.5 * i), math.ceil(3.5 * (i + 1)))) for i in range(10)]
    for _ in range(400):
        idx = segment_indices(35, 10, train=True, generator=g)
        for i, f in enumerate(idx):
            assert f in reach[i]
            seen[i].add(f)
    assert [sorted(s) for s in seen] == reach  # and every one of them is drawn


def test_training_draws_are_seeded() -> None:
    a = segment_indices(200, 10, True, torch.Generator().manual_seed(7))
    b = segment_indices(200, 10, True, torch.Generator().manual_seed(7))
    c = segment_indices(200, 10, True, torch.Generator().manual_seed(8))
    assert a == b and a != c
    torch.manual_seed(3)
    d = segment_indices(200, 10, True)
    torch.manual_seed(3)
    assert segment_indices(200, 10, True) == d


def test_segment_arguments() -> None:
    with pytest.raises(ValueError, match="at least one frame"):
        segment_indices(0, 10, train=False)


# --- a synthetic frames tree ------------------------------------------------------------------

CLIPS = [  # (clip name, verb id 1-based, number of frames)
    ("P01-R01-PastaSalad-1000-2000-F000024-F000048", 3, 30),
    ("P01-R01-PastaSalad-3000-4000-F000072-F000084", 6, 12),
    ("P02-R03-BaconAndEggs-10-20-F000001-F000025", 19, 25),
]


def grey_frame(value: int, size: tuple[int, int] = (20, 16)) -> Image.Image:
    """A frame whose grey level encodes its index (JPEG keeps flat areas nearly exact)."""
    return Image.fromarray(np.full((size[1], size[0], 3), value, dtype=np.uint8))


def make_frames(root: Path, clips: list[tuple[str, int, int]] = CLIPS) -> None:
    for name, _, n in clips:
        d = clip_dir(root, name)
        d.mkdir(parents=True)
        for i in range(n):
            grey_frame(8 * i).save(d / f"{i:06d}.jpg", quality=95)


def write_lists(lists: Path, clips: list[tuple[str, int, int]] = CLIPS) -> None:
    lists.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{name} 1 {verb} 2\n" for name, verb, _ in clips)
    for f in SPLIT_FILES.values():
        (lists / f).write_text(text)


def frame_values(clip: torch.Tensor) -> list[int]:
    """Per-frame grey level x 255 / 8 of a (T, C, H, W) clip in [0, 1] = the frame index."""
    return [round(float(f.mean()) * 255 / 8) for f in clip]


def test_clip_dataset_reads_segment_centres(tmp_path: Path) -> None:
    make_frames(tmp_path)
    entries = read_split_file(_lists(tmp_path) / "test_split.txt")
    ds = EgteaClips(tmp_path, entries, train=False, layout="TCHW")
    clip, label = ds[0]
    assert clip.shape == (10, 3, 16, 20) and label == 2  # verb 3 -> label 2
    assert frame_values(clip) == segment_indices(30, 10, train=False)
    assert frame_values(ds[1][0]) == segment_indices(12, 10, train=False)
    assert ds[2][1] == 18
    assert ds.sample_frames(0)[0] == clip_dir(tmp_path, CLIPS[0][0]) / "000001.jpg"


def test_clip_dataset_training_frames_are_random_and_seeded(tmp_path: Path) -> None:
    make_frames(tmp_path)
    entries = read_split_file(_lists(tmp_path) / "train_split.txt")
    ds = EgteaClips(tmp_path, entries, train=True, layout="TCHW")
    torch.manual_seed(0)
    a = frame_values(ds[0][0])
    torch.manual_seed(0)
    assert frame_values(ds[0][0]) == a
    draws = {tuple(frame_values(ds[0][0])) for _ in range(20)}
    assert len(draws) > 1
    for d in draws:
        assert all(3 * i <= f < 3 * (i + 1) for i, f in enumerate(d))  # 30 frames, 3 per segment


def test_frames_sorted_by_number_not_by_text(tmp_path: Path) -> None:
    name = "P03-R01-X-1-2-F1-F2"
    d = clip_dir(tmp_path, name)
    d.mkdir(parents=True)
    for i in (1, 2, 10, 11):  # unpadded names: text order would put 10 before 2
        grey_frame(8 * i).save(d / f"{i}.jpg", quality=95)
    ds = EgteaClips(
        tmp_path, [read_split_file(_one_list(tmp_path, name))[0]], train=False, num_segments=4
    )
    assert [p.name for p in ds.frame_files(0)] == ["1.jpg", "2.jpg", "10.jpg", "11.jpg"]


def _lists(tmp_path: Path) -> Path:
    lists = tmp_path / "lists"
    if not lists.exists():
        write_lists(lists)
    return lists


def _one_list(tmp_path: Path, name: str) -> Path:
    p = tmp_path / "one.txt"
    p.write_text(f"{name} 1 1 1\n")
    return p


def test_protocol_end_to_end_shapes_and_layout(tmp_path: Path) -> None:
    make_frames(tmp_path / "frames")
    lists = _lists(tmp_path)
    s = load_protocol("egtea", root=tmp_path / "frames", lists_dir=lists, image_size=12)
    clip, label = s.train[1]
    assert clip.shape == (3, 10, 12, 12) and label == 5  # (C, T, H, W)
    assert s.val[0][0].shape == (3, 10, 12, 12)
    assert s.class_counts == [0, 0, 1, 0, 0, 1] + [0] * 12 + [1]
    t = load_protocol(
        "egtea", root=tmp_path / "frames", lists_dir=lists, image_size=12, layout="TCHW"
    )
    torch.manual_seed(1)
    a = t.test[0][0]
    assert a.shape == (10, 3, 12, 12)
    torch.manual_seed(1)
    b = s.test[0][0]
    assert torch.equal(a.permute(1, 0, 2, 3), b)


def test_training_augmentation_is_shared_by_all_frames(tmp_path: Path) -> None:
    # every frame of the clip is the same asymmetric picture: after crop, rotation and
    # flip drawn once per clip, all output frames must still be equal
    rng = np.random.default_rng(0)
    pic = Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
    name = "P05-R02-Y-1-2-F1-F9"
    d = clip_dir(tmp_path / "frames", name)
    d.mkdir(parents=True)
    for i in range(9):
        pic.save(d / f"{i:06d}.png")
    lists = tmp_path / "lists"
    write_lists(lists, [(name, 4, 9)])
    s = load_protocol(
        "egtea", root=tmp_path / "frames", lists_dir=lists, image_size=10, crop_size=20
    )
    for seed in range(5):
        torch.manual_seed(seed)
        clip, _ = s.train[0]  # (C, T, H, W)
        assert all(torch.equal(clip[:, t], clip[:, 0]) for t in range(10))
    torch.manual_seed(0)
    one = s.train[0][0]
    torch.manual_seed(1)
    assert not torch.equal(s.train[0][0], one)  # but the draw changes between calls
    # evaluation is deterministic: centre crop, no rotation or flip
    assert torch.equal(s.val[0][0], s.val[0][0])


def test_crop_size_too_large_is_explained(tmp_path: Path) -> None:
    make_frames(tmp_path / "frames")
    s = load_protocol("egtea", root=tmp_path / "frames", lists_dir=_lists(tmp_path), crop_size=480)
    with pytest.raises(ValueError, match="crop_size 480 does not fit frames of 16x20"):
        s.val[0]


# --- bad input --------------------------------------------------------------------------------


def test_missing_lists_and_root(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"val_split.txt.*hitachi-rd-cv/CDB-loss"):
        lists = tmp_path / "lists"
        lists.mkdir()
        (lists / "train_split.txt").write_text(f"{CLIPS[0][0]} 1 1 1\n")
        load_protocol("egtea", root=tmp_path, lists_dir=lists)
    write_lists(lists)
    with pytest.raises(FileNotFoundError, match="root was not given"):
        load_protocol("egtea", lists_dir=lists)


def test_missing_clip_folder_is_named(tmp_path: Path) -> None:
    make_frames(tmp_path / "frames", CLIPS[:2])
    with pytest.raises(FileNotFoundError) as err:
        load_protocol("egtea", root=tmp_path / "frames", lists_dir=_lists(tmp_path))
    msg = str(err.value)
    assert "1 of 3 clip folders" in msg
    assert f"train_split.txt:3: {clip_dir(tmp_path / 'frames', CLIPS[2][0])}" in msg


def test_empty_clip_folder_fails_when_read(tmp_path: Path) -> None:
    make_frames(tmp_path / "frames")
    d = clip_dir(tmp_path / "frames", CLIPS[1][0])
    for f in d.iterdir():
        f.unlink()
    s = load_protocol("egtea", root=tmp_path / "frames", lists_dir=_lists(tmp_path))
    with pytest.raises(FileNotFoundError, match="holds no frames"):
        s.test[1]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("P01-R01-A-1-2-F1-F2 1 3\n", r"x.txt:2: expected '<clip_name> <action_id> <verb_id>"),
        ("P01-R01-A-1-2-F1-F2 1 x 2\n", r"x.txt:2: the ids must be integers"),
        ("P01-R01-A-1-2-F1-F2 1 20 2\n", r"x.txt:2: verb id 20 is outside 1..19"),
        ("P01-R01-A-1-2-F1-F2 1 0 2\n", r"x.txt:2: verb id 0 is outside 1..19"),
        ("clip 1 2 3\n", r"x.txt:2: clip name 'clip' does not start with"),
    ],
)
def test_bad_split_lines_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    p = tmp_path / "x.txt"
    p.write_text("P01-R01-A-1-2-F1-F2 1 3 2 5 7\n" + line)  # first line: several nouns, valid
    with pytest.raises(ValueError, match=message):
        read_split_file(p)


def test_default_transform_and_bad_layout(tmp_path: Path) -> None:
    make_frames(tmp_path)
    entries = read_split_file(_lists(tmp_path) / "test_split.txt")
    clip, _ = EgteaClips(tmp_path, entries, train=False, num_segments=4)[0]
    assert clip.shape == (3, 4, 16, 20)  # (C, T, H, W), default clip_to_tensor
    assert torch.allclose(clip[:, 0], to_tensor()(grey_frame(8 * 3)), atol=3 / 255)
    with pytest.raises(ValueError, match="layout"):
        EgteaClips(tmp_path, entries, train=False, layout="THWC")  # type: ignore[arg-type]


def test_channel_order_and_pixel_scale_of_the_authors_code(tmp_path: Path) -> None:
    """The authors' code feeds cv2.imread frames: raw 0..255 values in BGR order."""
    name = "P06-R01-Z-1-2-F1-F4"
    d = clip_dir(tmp_path / "frames", name)
    d.mkdir(parents=True)
    rgb = (200, 100, 20)
    for i in range(4):
        Image.fromarray(np.full((8, 8, 3), rgb, dtype=np.uint8)).save(d / f"{i:06d}.png")
    lists = tmp_path / "lists"
    write_lists(lists, [(name, 1, 4)])
    common = {"root": tmp_path / "frames", "lists_dir": lists, "image_size": 4, "num_frames": 2}
    authors = load_protocol(
        "egtea", **common, channel_order="bgr", pixel_scale=255, mean=[0, 0, 0], std=[1, 1, 1]
    )
    clip = authors.test[0][0]  # (C, T, H, W)
    assert [round(float(clip[c].mean())) for c in range(3)] == [20, 100, 200]
    assert authors.info["channel_order"] == "bgr" and authors.info["pixel_scale"] == 255.0
    default = load_protocol("egtea", **common, mean=[0, 0, 0], std=[1, 1, 1]).test[0][0]
    assert [round(float(default[c].mean()) * 255) for c in range(3)] == list(rgb)
    # mean and std are in the chosen units and order: 0..255 BGR statistics
    norm = load_protocol(
        "egtea", **common, channel_order="bgr", pixel_scale=255, mean=[20, 0, 0], std=[1, 1, 2]
    ).test[0][0]
    assert [round(float(norm[c].mean())) for c in range(3)] == [0, 100, 100]
    for bad, message in (
        ({"channel_order": "BGR"}, "channel_order must be 'rgb' or 'bgr'"),
        ({"pixel_scale": 0}, "pixel_scale must be 1 or 255, got 0"),
        ({"pixel_scale": 2.0}, r"pixel_scale must be 1 or 255, got 2\.0"),
        ({"mean": [0, 0]}, "mean and std need one value per channel"),
    ):
        with pytest.raises(ValueError, match=message):
            load_protocol("egtea", root=tmp_path / "nowhere", lists_dir=lists, **bad)
