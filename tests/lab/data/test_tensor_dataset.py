"""In-memory datasets and the two uint8 tensor transforms."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.v2 import Compose

from cdbloss.lab.data.tensor_dataset import RandomCropFlip, ScaleNormalize, TensorImageDataset


def test_scale_normalize_values() -> None:
    x = torch.tensor([[[0, 255]], [[51, 102]]], dtype=torch.uint8)  # (2, 1, 2)
    out = ScaleNormalize([0.5, 0.2], [0.5, 0.1])(x)
    expected = torch.tensor([[[-1.0, 1.0]], [[0.0, 2.0]]])
    torch.testing.assert_close(out, expected)
    # a float input is taken as already in [0, 1]; a batch broadcasts
    torch.testing.assert_close(
        ScaleNormalize([0.5], [0.5])(torch.ones(4, 1, 2, 2)), torch.ones(4, 1, 2, 2)
    )


def test_scale_normalize_checks() -> None:
    with pytest.raises(ValueError, match="C=3"):
        ScaleNormalize([0.5] * 3, [0.5] * 3)(torch.zeros(1, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="std must be > 0"):
        ScaleNormalize([0.5], [0.0])


def _numbered(b: int = 1) -> torch.Tensor:
    """(b, 1, 4, 4) images with pixel values 1..16 (no zero, so padding is recognisable)."""
    return torch.arange(1, 17, dtype=torch.uint8).view(1, 1, 4, 4).repeat(b, 1, 1, 1)


def test_crop_is_a_window_of_the_zero_padded_image() -> None:
    img = _numbered()[0]
    padded = torch.nn.functional.pad(img, (1, 1, 1, 1))  # (1, 6, 6)
    windows = [padded[:, t : t + 4, le : le + 4] for t in range(3) for le in range(3)]
    g = torch.Generator().manual_seed(0)
    tf = RandomCropFlip(size=4, padding=1, flip_p=0.0, generator=g)
    seen = set()
    for _ in range(200):
        out = tf(img)
        assert out.shape == (1, 4, 4) and out.dtype == torch.uint8
        matches = [i for i, w in enumerate(windows) if torch.equal(out, w)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == set(range(9))  # every offset occurs


def test_flip_probability_one_and_zero() -> None:
    img = _numbered()[0]
    assert torch.equal(RandomCropFlip(4, 0, flip_p=1.0)(img), img.flip(-1))
    assert torch.equal(RandomCropFlip(4, 0, flip_p=0.0)(img), img)


def test_batch_gets_independent_draws_and_seed_repeats() -> None:
    batch = _numbered(64)
    a = RandomCropFlip(4, 2, generator=torch.Generator().manual_seed(1))(batch)
    b = RandomCropFlip(4, 2, generator=torch.Generator().manual_seed(1))(batch)
    assert a.shape == (64, 1, 4, 4)
    assert torch.equal(a, b)
    distinct = {tuple(x.flatten().tolist()) for x in a}
    assert len(distinct) > 10


def test_each_image_gets_the_window_and_flip_of_its_own_draws() -> None:
    # The batch is cropped in one gather; per image it must be exactly the window
    # at its drawn offset, mirrored where its flip was drawn (draw order: tops, lefts, flips).
    batch = torch.randint(0, 256, (32, 3, 10, 7), generator=torch.Generator().manual_seed(3))
    batch = batch.to(torch.uint8)
    out = RandomCropFlip(6, 2, flip_p=0.5, generator=torch.Generator().manual_seed(5))(batch)
    g = torch.Generator().manual_seed(5)
    padded = torch.nn.functional.pad(batch, (2, 2, 2, 2))  # (32, 3, 14, 11)
    tops = torch.randint(0, 14 - 6 + 1, (32,), generator=g)
    lefts = torch.randint(0, 11 - 6 + 1, (32,), generator=g)
    flips = torch.rand(32, generator=g) < 0.5
    assert 0 < int(flips.sum()) < 32
    for i in range(32):
        t, le = int(tops[i]), int(lefts[i])
        window = padded[i, :, t : t + 6, le : le + 6]
        assert torch.equal(out[i], window.flip(-1) if flips[i] else window)


def test_get_batch_on_a_device_gives_the_same_batch() -> None:
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    tf = Compose([RandomCropFlip(8, 2), ScaleNormalize([0.4] * 3, [0.2] * 3)])
    ds = TensorImageDataset(images, [0, 1, 2, 1, 0, 2], tf, 3)
    torch.manual_seed(0)
    x, y = ds.get_batch([5, 1, 3])
    torch.manual_seed(0)
    xd, yd = ds.get_batch([5, 1, 3], device="cpu")
    assert torch.equal(x, xd) and torch.equal(y, yd)


def test_dataset_items_and_batches() -> None:
    images = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    ds = TensorImageDataset(images, [0, 1, 2, 1, 0], ScaleNormalize([0.5] * 3, [0.5] * 3), 3)
    x, y = ds[2]
    assert x.dtype == torch.float32 and x.shape == (3, 8, 8) and y == 2 and isinstance(y, int)
    torch.testing.assert_close(x, images[2].float() / 127.5 - 1.0)
    xb, yb = ds.get_batch([4, 2])
    torch.testing.assert_close(xb, torch.stack([ds[4][0], ds[2][0]]))
    assert yb.tolist() == [0, 2]
    assert ds.class_counts() == [2, 2, 1]
    plain = TensorImageDataset(images, torch.zeros(5, dtype=torch.long))
    torch.testing.assert_close(plain[0][0], images[0].float() / 255.0)


def test_dataset_rejects_bad_input() -> None:
    img = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match="uint8"):
        TensorImageDataset(img.float(), [0, 1])
    with pytest.raises(ValueError, match="N=2"):
        TensorImageDataset(img, [0, 1, 1])
    with pytest.raises(ValueError, match=r"label 3 is outside the class range \[0, 3\)"):
        TensorImageDataset(img, [0, 3], num_classes=3)
    with pytest.raises(ValueError, match=">= 0"):
        TensorImageDataset(img, [0, -1])
    with pytest.raises(ValueError, match="integers"):
        TensorImageDataset(img, torch.tensor([0.0, 1.0]))


def test_chain_equals_torchvision_compose_and_needs_no_torchvision() -> None:
    from cdbloss.lab.data.tensor_dataset import Chain

    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    steps = [RandomCropFlip(8, 2), ScaleNormalize([0.4] * 3, [0.2] * 3)]
    torch.manual_seed(3)
    a = Chain(*steps)(images)
    torch.manual_seed(3)
    b = Compose(steps)(images)
    assert torch.equal(a, b)
    assert repr(Chain(*steps)).startswith("Chain(RandomCropFlip(")
    with pytest.raises(ValueError, match="at least one"):
        Chain()
    # the default cifar-lt pipeline imports no torchvision (a fresh interpreter shows it)
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from cdbloss.lab.data import cifar as cf\n"
        "a = cf.CifarArrays('cifar10', np.zeros((100, 3, 32, 32), np.uint8),"
        " np.repeat(np.arange(10), 10), np.zeros((10, 3, 32, 32), np.uint8), np.arange(10),"
        " list(cf.CIFAR10_CLASSES))\n"
        "s = cf.build_cifar_lt(a, 2, val_per_class=2)\n"
        "s.train[0]\n"
        "print('torchvision' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
