"""Image and clip transforms on torchvision.transforms.v2.

What the lab's own transforms (before torchvision) did is written out here by hand,
with Pillow and numpy: the deterministic steps must give the same output, and the
random steps the same output given the same parameters, drawn from the same
distribution. Clips: one draw per clip, whether a list of PIL frames or a Video.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from cdbloss.lab.data.egtea import egtea_transforms
from cdbloss.lab.data.folder import folder_transforms
from cdbloss.lab.data.imagenet_lt import imagenet_lt_transforms
from cdbloss.lab.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FramesToVideo,
    RGBToBGR,
    SquareCrop,
    check_normalization,
    check_pixel_format,
    clip_to_tensor,
    to_normalized_tensor,
    to_tensor,
)

BILINEAR = Image.Resampling.BILINEAR
#: one float32 step at 1.0: ``k * (1 / 255)`` (v2.ToDtype) and ``k / 255`` differ by at most this
ULP = 2.0**-23


def coded_image(h: int, w: int, t: int = 0) -> tuple[Image.Image, np.ndarray]:
    """An RGB image whose pixel (i, j) encodes its position: R = i, G = j, B = t (a frame index)."""
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    ii, jj = np.mgrid[0:h, 0:w]
    arr[..., 0] = ii
    arr[..., 1] = jj
    arr[..., 2] = t
    return Image.fromarray(arr), arr


def smooth_image(h: int = 40, w: int = 60, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([(xx * 4) % 256, (yy * 6) % 256, ((xx + yy) * 2) % 256], -1)
    arr = (arr + rng.integers(0, 3, arr.shape)).clip(0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def unit(img: Image.Image) -> torch.Tensor:
    """The old ToTensor: ``(C, H, W)`` float32, ``uint8 / 255``."""
    return torch.from_numpy(np.array(img)).permute(2, 0, 1).float().div(255.0)


def recorded(tf: Any) -> list[tuple[str, dict[str, Any]]]:
    """Record the parameters every step of the pipeline ``tf`` draws: ``[(class name, params)]``.

    A random flip records only when it flips (v2 draws it before asking for parameters).
    """
    log: list[tuple[str, dict[str, Any]]] = []
    for step in getattr(tf, "transforms", []):
        log_steps(step, log)
    return log


def log_steps(step: Any, log: list[tuple[str, dict[str, Any]]]) -> None:
    for inner in getattr(step, "transforms", []):
        log_steps(inner, log)
    if isinstance(step, v2.Transform) and not isinstance(step, v2.Compose):
        make: Callable[[list[Any]], dict[str, Any]] = step.make_params

        def wrapped(flat: list[Any], make: Any = make, name: str = type(step).__name__) -> Any:
            params = make(flat)
            log.append((name, params))
            return params

        step.make_params = wrapped


# --- to tensor, normalisation: the deterministic steps ------------------------------------------


def test_to_tensor_is_uint8_over_255_in_chw() -> None:
    img, _ = coded_image(3, 5, t=255)
    t = to_tensor()(img)
    assert type(t) is torch.Tensor and t.dtype == torch.float32 and t.shape == (3, 3, 5)
    # v2.ToDtype multiplies by 1/255, the old ToTensor divided by 255: one float32 ulp apart
    assert (t - unit(img)).abs().max() <= ULP
    assert t[2].eq(1.0).all() and t[0, 2, 0] == pytest.approx(2 / 255, abs=ULP)


def test_normalized_tensor_by_hand_and_bad_statistics() -> None:
    img, _ = coded_image(4, 6, t=200)
    out = to_normalized_tensor([0.5, 0.0, 0.5], [0.5, 0.25, 0.25])(img)
    ref = (unit(img) - torch.tensor([0.5, 0.0, 0.5]).view(3, 1, 1)) / torch.tensor(
        [0.5, 0.25, 0.25]
    ).view(3, 1, 1)
    assert type(out) is torch.Tensor and torch.allclose(out, ref, atol=1e-6)
    with pytest.raises(ValueError, match="one value per channel, got 2 and 3"):
        check_normalization([0.5, 0.5], [1, 1, 1])
    with pytest.raises(ValueError, match="std must be > 0"):
        to_normalized_tensor([0.5], [0.0])


def test_resize_is_pillows_bilinear_and_keeps_the_shorter_side_rule() -> None:
    img = smooth_image(30, 47)  # H=30, W=47
    out = v2.Resize(12)(img)
    # shorter side 12, the other int(12 * 47 / 30) = 18, as the lab's Resize
    assert out.size == (18, 12)
    assert np.array_equal(np.asarray(out), np.asarray(img.resize((18, 12), BILINEAR)))
    assert np.array_equal(
        np.asarray(v2.Resize((7, 9))(img)), np.asarray(img.resize((9, 7), BILINEAR))
    )
    tall = v2.Resize(2)(Image.new("RGB", (4, 10)))
    assert tall.size == (2, 5)


def test_center_crop_rounds_the_margin_half_to_even() -> None:
    """torchvision's window: top = round((H - h) / 2); the lab's was (H - h) // 2.

    They agree unless the margin is 3 modulo 4: then torchvision's window is one pixel
    further down (or right). The OLTR / CDB-loss code uses torchvision's.
    """
    for size, crop, top in (((7, 7), 3, 2), ((8, 8), 3, 2), ((9, 9), 3, 3), ((10, 10), 3, 4)):
        img, arr = coded_image(*size)
        out = np.asarray(v2.CenterCrop(crop)(img))
        margin = size[0] - crop
        assert top == round(margin / 2)
        assert (top == margin // 2) == (margin % 4 != 3)
        assert np.array_equal(out, arr[top : top + crop, top : top + crop])


# --- random steps: the same output given the same parameters, the same distribution --------------


def test_random_crop_with_padding_at_fixed_offsets() -> None:
    img, arr = coded_image(5, 6, t=9)
    padded = np.pad(arr, ((1, 1), (1, 1), (0, 0)))
    tf = v2.RandomCrop(4, padding=1)
    params = tf.make_params([img])
    for top in range(7 - 4 + 1):
        for left in range(8 - 4 + 1):
            out = tf.transform(img, {**params, "needs_crop": True, "top": top, "left": left})
            assert np.array_equal(np.asarray(out), padded[top : top + 4, left : left + 4])


def test_random_crop_offsets_are_uniform() -> None:
    img = Image.new("RGB", (6, 5))  # padded to 7 x 8: tops 0..3, lefts 0..4
    tf = v2.RandomCrop(4, padding=1)
    torch.manual_seed(0)
    draws = [tf.make_params([img]) for _ in range(2000)]
    for key, n in (("top", 4), ("left", 5)):
        counts = np.bincount([d[key] for d in draws], minlength=n)
        assert len(counts) == n
        expected = 2000 / n
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < 20.0  # p < 0.001 for 3 or 4 degrees of freedom


def test_flip_reverses_columns_with_probability_p() -> None:
    img, arr = coded_image(2, 4)
    assert np.array_equal(np.asarray(v2.RandomHorizontalFlip(1.0)(img)), arr[:, ::-1])
    assert np.array_equal(np.asarray(v2.RandomHorizontalFlip(0.0)(img)), arr)
    tf = v2.RandomHorizontalFlip(0.5)
    torch.manual_seed(1)
    flips = sum(np.array_equal(np.asarray(tf(img)), arr[:, ::-1]) for _ in range(400))
    assert 150 < flips < 250


def test_rotation_is_pillows_at_a_given_angle_and_uniform_in_its_range() -> None:
    img = smooth_image()
    tf = v2.RandomRotation(10, interpolation=v2.InterpolationMode.BILINEAR)
    for angle in (7.5, -3.25, 90.0):
        out = tf.transform(img, {"angle": angle})
        ref = img.rotate(angle, resample=BILINEAR, fillcolor=(0, 0, 0))
        assert np.array_equal(np.asarray(out), np.asarray(ref))
    coded, arr = coded_image(7, 7)
    assert np.array_equal(np.asarray(tf.transform(coded, {"angle": 90.0})), np.rot90(arr))
    torch.manual_seed(2)
    angles = np.array([tf.make_params([img])["angle"] for _ in range(4000)])
    assert angles.min() >= -10 and angles.max() <= 10
    assert abs(angles.mean()) < 0.3 and abs(angles.var() - 100 / 3) < 2.0  # uniform on [-10, 10]


def old_resized_crop_params(h: int, w: int, g: torch.Generator) -> tuple[int, int, int, int]:
    """The lab's RandomResizedCrop draw (scale 0.08..1, log-uniform ratio 3/4..4/3, 10 tries)."""
    for _ in range(10):
        target = h * w * (0.08 + 0.92 * float(torch.rand(1, generator=g)))
        lo, hi = math.log(3 / 4), math.log(4 / 3)
        aspect = math.exp(lo + (hi - lo) * float(torch.rand(1, generator=g)))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, (1,), generator=g))
            return top, int(torch.randint(0, w - cw + 1, (1,), generator=g)), ch, cw
    return (h - min(h, w)) // 2, (w - min(h, w)) // 2, min(h, w), min(h, w)


def test_random_resized_crop_draws_as_the_lab_did_and_crops_then_resizes() -> None:
    img = smooth_image(30, 40)
    tf = v2.RandomResizedCrop(12)
    torch.manual_seed(3)
    new = np.array([list(tf.make_params([img]).values())[:4] for _ in range(4000)], dtype=float)
    g = torch.Generator().manual_seed(3)
    old = np.array([old_resized_crop_params(30, 40, g) for _ in range(4000)], dtype=float)
    for draws in (new, old):
        top, left, h, w = draws.T
        assert (
            (top >= 0).all()
            and (left >= 0).all()
            and (top + h <= 30).all()
            and (left + w <= 40).all()
        )
    # the same distribution: mean area, log aspect and position agree within 5 standard errors
    for stat in (
        lambda d: d[:, 2] * d[:, 3],
        lambda d: np.log(d[:, 3] / d[:, 2]),
        lambda d: d[:, 0] + d[:, 2] / 2,
    ):
        a, b = stat(new), stat(old)
        assert abs(a.mean() - b.mean()) < 5 * math.sqrt(a.var() / len(a) + b.var() / len(b))
    p = {"top": 3, "left": 5, "height": 20, "width": 25}
    out = tf.transform(img, p)
    ref = img.crop((5, 3, 30, 23)).resize((12, 12), BILINEAR)
    assert np.array_equal(np.asarray(out), np.asarray(ref))


def test_color_jitter_factors_and_brightness_by_hand() -> None:
    tf = v2.ColorJitter(0.4, 0.4, 0.4)
    torch.manual_seed(4)
    params = [tf.make_params([]) for _ in range(500)]
    for key in ("brightness_factor", "contrast_factor", "saturation_factor"):
        f = np.array([p[key] for p in params])
        assert f.min() >= 0.6 and f.max() <= 1.4 and abs(f.mean() - 1) < 0.03
    assert {tuple(p["fn_idx"].tolist()) for p in params} != {(0, 1, 2, 3)}  # a random order
    x = torch.full((3, 2, 2), 0.4)
    one = {**params[0], "contrast_factor": None, "saturation_factor": None, "hue_factor": None}
    out = tf.transform(x, one)
    assert torch.allclose(out, (x * params[0]["brightness_factor"]).clamp(0, 1))


# --- clips: one draw per clip --------------------------------------------------------------------

GEOMETRIC = [
    v2.RandomCrop(20, padding=2),
    v2.RandomResizedCrop(16),
    v2.RandomHorizontalFlip(),
    v2.RandomRotation(30, interpolation=v2.InterpolationMode.BILINEAR),
    SquareCrop(14),
]


def coded_clip(n: int = 4, h: int = 24, w: int = 30) -> list[Image.Image]:
    """Frames that differ (B = 40 t) on one geometry (R = row, G = column)."""
    return [coded_image(h, w, t=40 * t)[0] for t in range(n)]


@pytest.mark.parametrize("tf", GEOMETRIC, ids=lambda t: type(t).__name__)
def test_every_frame_gets_the_same_geometry(tf: v2.Transform) -> None:
    frames = coded_clip()
    video = FramesToVideo()(frames)
    for seed in range(4):
        torch.manual_seed(seed)
        out = [np.asarray(f) for f in tf(frames)]
        assert all(np.array_equal(o[..., :2], out[0][..., :2]) for o in out)  # R, G: one geometry
        torch.manual_seed(seed)
        vid = tf(video)  # (T, C, H, W)
        assert isinstance(vid, tv_tensors.Video) and vid.shape[0] == 4
        assert all(torch.equal(vid[t, :2], vid[0, :2]) for t in range(4))
        if not isinstance(tf, v2.RandomRotation):  # PIL and tensor rotations differ at edges
            got = torch.stack([torch.from_numpy(o.copy()).permute(2, 0, 1) for o in out])
            assert torch.equal(vid.as_subclass(torch.Tensor), got)  # the same draw


def test_color_jitter_is_one_draw_per_clip() -> None:
    frame = smooth_image(24, 30)
    tf = v2.ColorJitter(0.4, 0.4, 0.4)
    torch.manual_seed(0)
    outs = [np.asarray(o) for o in tf([frame] * 4)]
    assert all(np.array_equal(o, outs[0]) for o in outs)
    torch.manual_seed(0)
    vid = tf(FramesToVideo()([frame] * 4))
    assert all(torch.equal(vid[t], vid[0]) for t in range(4))


def test_frames_to_video_and_clip_to_tensor() -> None:
    frames = coded_clip(3, 4, 6)
    vid = FramesToVideo()(frames)
    assert (
        isinstance(vid, tv_tensors.Video) and vid.dtype == torch.uint8 and vid.shape == (3, 3, 4, 6)
    )
    out = clip_to_tensor()(frames)
    assert type(out) is torch.Tensor and out.shape == (3, 3, 4, 6)
    assert (out - torch.stack([unit(f) for f in frames])).abs().max() <= ULP
    with pytest.raises(ValueError, match="at least one frame"):
        FramesToVideo()([])
    with pytest.raises(ValueError, match=r"one size, got \[\(4, 4\), \(4, 5\)\]"):
        FramesToVideo()([Image.new("RGB", (4, 4)), Image.new("RGB", (5, 4))])
    with pytest.raises(TypeError, match="list of PIL frames"):
        FramesToVideo()(frames[0])  # type: ignore[arg-type]


def test_square_crop_centre_random_and_errors() -> None:
    img, arr = coded_image(6, 10)
    assert np.array_equal(np.asarray(SquareCrop(random=False)(img)), arr[:, 2:8])
    assert np.array_equal(np.asarray(SquareCrop(4, random=False)(img)), arr[1:5, 3:7])
    torch.manual_seed(0)
    corners = {np.asarray(SquareCrop(4)(img))[0, 0, :2].tobytes() for _ in range(600)}
    assert len(corners) == 3 * 7  # every position reached
    with pytest.raises(ValueError, match="crop_size 8 does not fit frames of 6x10"):
        SquareCrop(8)(img)
    with pytest.raises(ValueError, match="one size"):
        SquareCrop(2)([Image.new("RGB", (4, 4)), Image.new("RGB", (5, 4))])
    with pytest.raises(ValueError, match="size must be >= 1"):
        SquareCrop(0)


def test_rgb_to_bgr_and_pixel_format_checks() -> None:
    x = torch.arange(12.0).view(3, 2, 2)
    assert torch.equal(RGBToBGR()(x), x.flip(0))
    video = tv_tensors.Video(torch.arange(24).view(2, 3, 2, 2))
    out = RGBToBGR()(video)
    assert isinstance(out, tv_tensors.Video) and torch.equal(out[1, 0], video[1, 2])
    check_pixel_format(255.0, "bgr")
    with pytest.raises(ValueError, match=r"pixel_scale must be 1 or 255, got 0\.5"):
        check_pixel_format(0.5, "rgb")
    with pytest.raises(ValueError, match="channel_order must be 'rgb' or 'bgr', got 'BGR'"):
        check_pixel_format(1, "BGR")


# --- the protocols' pipelines against Pillow by hand ---------------------------------------------


def pillow_clip(
    frames: list[Image.Image], box: tuple[int, int, int], size: int
) -> list[Image.Image]:
    top, left, side = box
    return [
        f.crop((left, top, left + side, top + side)).resize((size, size), BILINEAR) for f in frames
    ]


def test_egtea_evaluation_pipeline_is_the_labs() -> None:
    frames = [smooth_image(30, 44, seed=s) for s in range(3)]
    ref = pillow_clip(frames, (0, 7, 30), 12)  # the centre square: left (44 - 30) // 2 = 7
    raw = egtea_transforms(
        False, 12, channel_order="bgr", pixel_scale=255, mean=[0] * 3, std=[1] * 3
    )
    out = raw(frames)  # (T, C, H, W)
    assert type(out) is torch.Tensor and out.shape == (3, 3, 12, 12)
    expect = torch.stack([torch.from_numpy(np.array(f)).permute(2, 0, 1).float() for f in ref])
    assert torch.equal(out, expect.flip(1))  # raw 0..255 values in BGR order, exactly
    norm = egtea_transforms(False, 12)(frames)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    expect = torch.stack([(unit(f) - mean) / std for f in ref])
    assert (norm - expect).abs().max() < 1e-5


def test_egtea_training_pipeline_given_its_draws_is_pillows() -> None:
    frames = [smooth_image(30, 44, seed=s) for s in range(3)]
    flipped = set()
    for seed in range(12):
        tf = egtea_transforms(
            True, 12, rotation=10, channel_order="bgr", pixel_scale=255, mean=[0] * 3, std=[1] * 3
        )
        draws = recorded(tf)
        torch.manual_seed(seed)
        out = tf(frames)
        log = dict(draws)
        crop, angle = log["SquareCrop"], log["RandomRotation"]["angle"]
        assert crop["side"] == 30 and abs(angle) <= 10
        ref = []
        for f in frames:
            x = f.crop((crop["left"], crop["top"], crop["left"] + 30, crop["top"] + 30))
            x = x.rotate(angle, resample=BILINEAR, fillcolor=(0, 0, 0))
            if "RandomHorizontalFlip" in log:
                x = x.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            ref.append(torch.from_numpy(np.array(x.resize((12, 12), BILINEAR))).permute(2, 0, 1))
        flipped.add("RandomHorizontalFlip" in log)
        assert torch.equal(out, torch.stack(ref).flip(1).float())
    assert flipped == {True, False}


def test_imagenet_and_folder_pipelines_given_their_draws() -> None:
    img = smooth_image(30, 44)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    evaluation = imagenet_lt_transforms(False, image_size=16, resize_size=20)(img)
    # Resize(20): 20 x int(20 * 44 / 30) = 20 x 29; CenterCrop(16): top 2, left round(6.5) = 6
    ref = img.resize((29, 20), BILINEAR).crop((6, 2, 22, 18))
    assert (evaluation - (unit(ref) - mean) / std).abs().max() < 1e-5
    for make, step in (
        (lambda: imagenet_lt_transforms(True, image_size=16), "RandomResizedCrop"),
        (lambda: folder_transforms(True, 16, "cifar"), "RandomCrop"),
    ):
        for seed in range(6):
            tf = make()
            draws = recorded(tf)
            torch.manual_seed(seed)
            out = tf(img)
            log = dict(draws)
            p = log[step]
            if step == "RandomResizedCrop":
                x = img.crop((p["left"], p["top"], p["left"] + p["width"], p["top"] + p["height"]))
                x = x.resize((16, 16), BILINEAR)
            else:  # folder's cifar recipe: Resize(16) + CenterCrop(16), pad 2, crop 16
                base = np.pad(
                    np.asarray(img.resize((23, 16), BILINEAR))[:, 4:20], ((2, 2), (2, 2), (0, 0))
                )
                x = Image.fromarray(base[p["top"] : p["top"] + 16, p["left"] : p["left"] + 16])
            if "RandomHorizontalFlip" in log:
                x = x.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            assert (out - (unit(x) - mean) / std).abs().max() < 1e-5


def test_seeding_torch_makes_a_pipeline_repeatable() -> None:
    img = smooth_image()
    tf = v2.Compose(
        [
            v2.RandomResizedCrop(16),
            v2.RandomRotation(15),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(0.3, 0.3, 0.3),
            v2.RandomCrop(12, padding=2),
            to_normalized_tensor([0.5] * 3, [0.25] * 3),
        ]
    )
    torch.manual_seed(11)
    a = [tf(img) for _ in range(3)]
    torch.manual_seed(11)
    b = [tf(img) for _ in range(3)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert a[0].shape == (3, 12, 12) and not torch.equal(a[0], a[1])


def test_registering_and_checking_protocols_does_not_import_torchvision() -> None:
    """torchvision's import (about 2 s here) is paid by the runs that build a pipeline only."""
    probe = (
        "import sys\n"
        "from cdbloss.lab.data.base import check_protocol_options\n"
        "check_protocol_options('egtea', {'mean': [0, 0, 0], 'pixel_scale': 255})\n"
        "check_protocol_options('imagenet-lt', {'root': 'x'})\n"
        "print(sorted(m for m in sys.modules if m.startswith('torchvision')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"
