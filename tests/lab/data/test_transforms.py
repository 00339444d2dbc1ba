"""Transforms: shapes, hand-made crop/flip/pad expectations, PIL == tensor, clips, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cdbloss.lab.data.transforms import (
    CenterCrop,
    ColorJitter,
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRotation,
    Resize,
    ToTensor,
    crop,
    hflip,
    image_size,
    pad,
    resize,
    rotate,
)


def coded_image(h: int, w: int) -> tuple[Image.Image, np.ndarray]:
    """An RGB image whose pixel (i, j) encodes its position: R = i, G = j, B = i * w + j."""
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    ii, jj = np.mgrid[0:h, 0:w]
    arr[..., 0] = ii
    arr[..., 1] = jj
    arr[..., 2] = (ii * w + jj) % 256
    return Image.fromarray(arr), arr


def smooth_image(h: int = 40, w: int = 60, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([(xx * 4) % 256, (yy * 6) % 256, ((xx + yy) * 2) % 256], -1)
    arr = (arr + rng.integers(0, 3, arr.shape)).clip(0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def as_array(img: Image.Image) -> np.ndarray:
    return np.asarray(img)


# --- ToTensor / Normalize --------------------------------------------------------------------


def test_to_tensor_hwc_uint8_to_chw_unit_range() -> None:
    img, arr = coded_image(3, 5)
    t = ToTensor()(img)
    assert t.shape == (3, 3, 5) and t.dtype == torch.float32
    assert torch.allclose(t, torch.from_numpy(arr).permute(2, 0, 1).float() / 255)
    assert torch.equal(ToTensor()(arr), t)  # a numpy HWC array gives the same
    grey = ToTensor()(np.full((2, 4), 255, dtype=np.uint8))
    assert grey.shape == (1, 2, 4) and grey.max() == 1.0


def test_to_tensor_clip_and_errors() -> None:
    img, _ = coded_image(4, 6)
    clip = ToTensor()([img, img, img])
    assert clip.shape == (3, 3, 4, 6)  # (T, C, H, W)
    with pytest.raises(TypeError, match="uint8"):
        ToTensor()(np.zeros((2, 2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="at least one frame"):
        ToTensor()([])


def test_normalize_by_hand_and_on_clips() -> None:
    x = torch.stack([torch.full((2, 2), v) for v in (0.5, 0.25, 1.0)])  # (3, 2, 2)
    out = Normalize([0.5, 0.0, 0.5], [0.5, 0.25, 0.25])(x)
    assert torch.allclose(out[:, 0, 0], torch.tensor([0.0, 1.0, 2.0]))
    clip = torch.stack([x, x])  # (T=2, C, H, W)
    assert torch.allclose(Normalize([0.5, 0.0, 0.5], [0.5, 0.25, 0.25])(clip)[1], out)
    with pytest.raises(ValueError, match="3 channels, the input has 1"):
        Normalize([0.5] * 3, [0.5] * 3)(torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="std must be > 0"):
        Normalize([0.5], [0.0])


# --- deterministic geometry against hand-made expectations -----------------------------------


def test_crop_picks_rows_and_columns_pil_and_tensor() -> None:
    img, _ = coded_image(6, 8)
    out = as_array(crop(img, 1, 2, 3, 4))
    assert out.shape == (3, 4, 3)
    assert out[0, 0, 0] == 1 and out[0, 0, 1] == 2  # top-left pixel is (row 1, col 2)
    assert out[2, 3, 0] == 3 and out[2, 3, 1] == 5  # bottom-right is (row 3, col 5)
    t = crop(ToTensor()(img), 1, 2, 3, 4)
    assert torch.equal(t, ToTensor()(Image.fromarray(out)))
    with pytest.raises(ValueError, match="does not fit"):
        crop(img, 4, 0, 3, 3)


def test_hflip_reverses_columns() -> None:
    img, arr = coded_image(3, 5)
    assert np.array_equal(as_array(hflip(img)), arr[:, ::-1])
    t = ToTensor()(img)
    assert torch.equal(hflip(t), ToTensor()(Image.fromarray(np.ascontiguousarray(arr[:, ::-1]))))


def test_pad_adds_a_zero_ring() -> None:
    img, arr = coded_image(2, 3)
    out = as_array(pad(img, 2))
    assert out.shape == (6, 7, 3)
    assert out[:2].sum() == 0 and out[:, :2].sum() == 0 and out[-2:].sum() == 0
    assert np.array_equal(out[2:4, 2:5], arr)
    assert torch.equal(pad(ToTensor()(img), 2), ToTensor()(Image.fromarray(out)))


def test_center_crop_position() -> None:
    img, arr = coded_image(5, 7)
    out = as_array(CenterCrop((2, 3))(img))
    # top = (5 - 2) // 2 = 1, left = (7 - 3) // 2 = 2
    assert np.array_equal(out, arr[1:3, 2:5])
    with pytest.raises(ValueError, match="larger than the image"):
        CenterCrop(8)(img)


def test_random_crop_matches_its_drawn_window() -> None:
    img, arr = coded_image(5, 6)
    padded = np.pad(arr, ((1, 1), (1, 1), (0, 0)))
    g = torch.Generator().manual_seed(3)
    ref = torch.Generator().manual_seed(3)
    for _ in range(20):
        out = as_array(RandomCrop(4, padding=1, generator=g)(img))
        top = int(torch.randint(0, 7 - 4 + 1, (1,), generator=ref).item())
        left = int(torch.randint(0, 8 - 4 + 1, (1,), generator=ref).item())
        assert np.array_equal(out, padded[top : top + 4, left : left + 4])


def test_random_crop_reaches_every_window() -> None:
    img, arr = coded_image(3, 3)
    padded = np.pad(arr, ((1, 1), (1, 1), (0, 0)))
    windows = {padded[t : t + 3, s : s + 3].tobytes() for t in range(3) for s in range(3)}
    tf = RandomCrop(3, padding=1, generator=torch.Generator().manual_seed(0))
    seen = {as_array(tf(img)).tobytes() for _ in range(300)}
    assert seen == windows


def test_flip_probability() -> None:
    img, arr = coded_image(2, 4)
    assert np.array_equal(as_array(RandomHorizontalFlip(1.0)(img)), arr[:, ::-1])
    assert np.array_equal(as_array(RandomHorizontalFlip(0.0)(img)), arr)
    tf = RandomHorizontalFlip(0.5, generator=torch.Generator().manual_seed(1))
    flips = sum(np.array_equal(as_array(tf(img)), arr[:, ::-1]) for _ in range(400))
    assert 150 < flips < 250


def test_resize_shorter_side_and_exact() -> None:
    img = Image.new("RGB", (8, 6))  # PIL size is (W, H): H=6, W=8
    assert image_size(Resize(3)(img)) == (3, 4)
    assert image_size(Resize((5, 2))(img)) == (5, 2)
    tall = torch.zeros(3, 10, 4)
    assert image_size(Resize(2)(tall)) == (5, 2)
    # PIL and tensor bilinear resizes agree closely
    s = smooth_image()
    a, b = ToTensor()(resize(s, (20, 30))), resize(ToTensor()(s), (20, 30))
    assert (a - b).abs().mean() < 0.01


def test_rotation_by_90_is_rot90_and_pil_equals_tensor() -> None:
    img, arr = coded_image(7, 7)
    # counter-clockwise, as numpy's rot90 of an image
    assert np.array_equal(as_array(rotate(img, 90)), np.rot90(arr))
    t = ToTensor()(img)
    assert torch.allclose(rotate(t, 90), torch.rot90(t, 1, dims=(-2, -1)), atol=1e-5)
    s = smooth_image()
    for angle in (7.5, -20.0):
        a, b = ToTensor()(rotate(s, angle)), rotate(ToTensor()(s), angle)
        assert (a - b)[:, 6:-6, 6:-6].abs().mean() < 0.01


def test_rotation_fills_corners() -> None:
    t = torch.ones(3, 9, 9)
    out = rotate(t, 45, fill=0)
    assert out[:, 0, 0].max() < 0.05 and out[:, 4, 4].min() > 0.99
    out = rotate(t * 0, 45, fill=255)
    assert out[:, 0, 0].min() > 0.95


# --- random-resized crop ---------------------------------------------------------------------


def test_random_resized_crop_window_and_size() -> None:
    tf = RandomResizedCrop(12, generator=torch.Generator().manual_seed(0))
    for _ in range(50):
        top, left, h, w = tf.get_params(30, 40)
        assert 0 <= top and top + h <= 30 and 0 <= left and left + w <= 40
        assert 0.08 * 1200 * 0.9 <= h * w <= 1200
    assert image_size(tf(smooth_image(30, 40))) == (12, 12)
    assert ToTensor()(tf(smooth_image(30, 40))).shape == (3, 12, 12)


def test_random_resized_crop_falls_back_to_a_centre_crop() -> None:
    # ratio 2 with the whole area never fits a square: centre crop of full width, half height
    tf = RandomResizedCrop(4, scale=(1.0, 1.0), ratio=(2.0, 2.0))
    assert tf.get_params(10, 10) == ((10 - 5) // 2, 0, 5, 10)


# --- clips: one draw per clip ----------------------------------------------------------------

RANDOM_TFS = [
    RandomCrop(20, padding=2),
    RandomResizedCrop(16),
    RandomHorizontalFlip(),
    RandomRotation(30),
    ColorJitter(0.4, 0.4, 0.4),
]


@pytest.mark.parametrize("tf", RANDOM_TFS, ids=lambda t: type(t).__name__)
def test_same_parameters_for_every_frame(tf: object) -> None:
    frame = smooth_image(24, 30)
    torch.manual_seed(0)
    outs = tf([frame] * 4)  # type: ignore[operator]
    assert len(outs) == 4
    assert all(np.array_equal(as_array(o), as_array(outs[0])) for o in outs)
    clip = ToTensor()([frame] * 4)  # (T, C, H, W)
    torch.manual_seed(0)
    out_t = tf(clip)  # type: ignore[operator]
    assert out_t.ndim == 4 and out_t.shape[0] == 4
    assert all(torch.allclose(out_t[i], out_t[0]) for i in range(4))


@pytest.mark.parametrize("tf", RANDOM_TFS[:3], ids=lambda t: type(t).__name__)
def test_pil_clip_and_tensor_clip_get_the_same_draw(tf: object) -> None:
    frames = [smooth_image(24, 30, seed=s) for s in range(3)]
    torch.manual_seed(5)
    a = ToTensor()(tf(frames))  # type: ignore[operator]
    torch.manual_seed(5)
    b = tf(ToTensor()(frames))  # type: ignore[operator]
    assert a.shape == b.shape
    assert (a - b).abs().mean() < 0.01


def test_clip_frames_of_different_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="one size"):
        RandomCrop(2)([Image.new("RGB", (4, 4)), Image.new("RGB", (5, 4))])


# --- determinism -----------------------------------------------------------------------------


def pipeline(g: torch.Generator | None = None) -> Compose:
    return Compose(
        [
            RandomResizedCrop(16, generator=g),
            RandomRotation(15, generator=g),
            RandomHorizontalFlip(generator=g),
            ColorJitter(0.3, 0.3, 0.3, generator=g),
            RandomCrop(12, padding=2, generator=g),
            ToTensor(),
            Normalize([0.5] * 3, [0.25] * 3),
        ]
    )


def test_seeding_torch_makes_the_global_rng_path_repeatable() -> None:
    img = smooth_image()
    tf = pipeline()
    torch.manual_seed(11)
    a = [tf(img) for _ in range(3)]
    torch.manual_seed(11)
    b = [tf(img) for _ in range(3)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert a[0].shape == (3, 12, 12)
    assert not torch.equal(a[0], a[1])  # successive draws differ


def test_explicit_generator_is_repeatable_and_leaves_global_rng_alone() -> None:
    img = smooth_image()
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a = pipeline(torch.Generator().manual_seed(4))(img)
    assert torch.equal(torch.get_rng_state(), before)
    b = pipeline(torch.Generator().manual_seed(4))(img)
    c = pipeline(torch.Generator().manual_seed(5))(img)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_color_jitter_brightness_by_hand() -> None:
    x = torch.full((3, 2, 2), 0.4)
    g = torch.Generator().manual_seed(2)
    (op, factor), *_ = ColorJitter(brightness=0.5, generator=g).get_params()
    assert op == 0 and 0.5 <= factor <= 1.5
    out = ColorJitter(brightness=0.5, generator=torch.Generator().manual_seed(2))(x)
    assert torch.allclose(out, (x * factor).clamp(0, 1))
    assert torch.equal(ColorJitter()(x), x)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="size"):
        RandomCrop(0)
    with pytest.raises(ValueError, match="padding"):
        RandomCrop(3, padding=-1)
    with pytest.raises(ValueError, match="p must be"):
        RandomHorizontalFlip(1.5)
    with pytest.raises(ValueError, match="scale"):
        RandomResizedCrop(3, scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="image tensor"):
        hflip(torch.zeros(2, 2))
    with pytest.raises(TypeError, match="ToTensor first"):
        Normalize([0.5], [0.5])(Image.new("L", (2, 2)))  # type: ignore[arg-type]
