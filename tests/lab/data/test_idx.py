"""The IDX reader on files written here in the real format, good and bad."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from cdbloss.lab.data.idx import idx_bytes, parse_idx, read_idx, write_idx


def _raw_idx(code: int, shape: tuple[int, ...], body: bytes) -> bytes:
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + body


def test_header_written_by_hand_is_parsed() -> None:
    # 2 images of 2x3 pixels, uint8: magic 0x00000803, dims 2, 2, 3.
    body = bytes(range(12))
    data = b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02" + b"\x00\x00\x00\x02" + b"\x00\x00\x00\x03"
    arr = parse_idx(data + body)
    assert arr.shape == (2, 2, 3)
    assert arr.dtype == np.uint8
    assert arr[1, 1, 2] == 11


def test_big_endian_int32_and_float32() -> None:
    ints = parse_idx(_raw_idx(0x0C, (2,), struct.pack(">2i", -5, 70000)))
    assert ints.tolist() == [-5, 70000]
    assert ints.dtype.isnative
    floats = parse_idx(_raw_idx(0x0D, (1,), struct.pack(">f", 1.5)))
    assert floats.tolist() == [1.5]


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip(tmp_path: Path, suffix: str, dtype: type) -> None:
    rng = np.random.default_rng(0)
    arr = (rng.normal(size=(3, 4, 5)) * 50).astype(dtype)
    p = tmp_path / f"x-idx3{suffix}"
    write_idx(p, arr)
    assert (p.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    out = read_idx(p)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, arr)


def test_gzip_detected_by_content_not_name(tmp_path: Path) -> None:
    p = tmp_path / "labels-idx1-ubyte"  # no .gz suffix, gzip content
    p.write_bytes(gzip.compress(_raw_idx(0x08, (3,), b"\x01\x02\x03")))
    assert read_idx(p).tolist() == [1, 2, 3]


def test_truncated_data_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(_raw_idx(0x08, (2, 28, 28), bytes(2 * 28 * 28 - 1)))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*truncated.*1584.*1583"):
        read_idx(p)


def test_trailing_bytes_refused(tmp_path: Path) -> None:
    p = tmp_path / "l"
    p.write_bytes(_raw_idx(0x08, (2,), b"\x00\x01\x02"))
    with pytest.raises(ValueError, match="trailing bytes"):
        read_idx(p)


def test_truncated_header(tmp_path: Path) -> None:
    p = tmp_path / "h"
    p.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(ValueError, match="truncated IDX header"):
        read_idx(p)
    p.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(p)


def test_bad_magic_and_type_code() -> None:
    with pytest.raises(ValueError, match="magic"):
        parse_idx(b"\x01\x00\x08\x01\x00\x00\x00\x00", "f")
    with pytest.raises(ValueError, match="unknown IDX type code 0x07"):
        parse_idx(b"\x00\x00\x07\x01\x00\x00\x00\x00", "f")
    with pytest.raises(ValueError, match="0 dimensions"):
        parse_idx(b"\x00\x00\x08\x00", "f")


def test_truncated_gzip(tmp_path: Path) -> None:
    full = gzip.compress(_raw_idx(0x08, (1000,), bytes(1000)))
    p = tmp_path / "t10k-labels-idx1-ubyte.gz"
    p.write_bytes(full[: len(full) // 2])
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte.gz: corrupted or truncated gzip"):
        read_idx(p)


def test_corrupted_gzip_crc(tmp_path: Path) -> None:
    full = bytearray(gzip.compress(_raw_idx(0x08, (4,), b"abcd")))
    full[-8] ^= 0xFF  # the CRC32 of the uncompressed data
    p = tmp_path / "c.gz"
    p.write_bytes(bytes(full))
    with pytest.raises(ValueError, match="corrupted or truncated gzip"):
        read_idx(p)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        read_idx(tmp_path / "nothing-here")
    with pytest.raises(FileNotFoundError):
        idx_bytes(tmp_path / "nothing-here")


def test_write_refuses_unsupported(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dtype"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.uint16))
    with pytest.raises(ValueError, match="at least 1 dimension"):
        write_idx(tmp_path / "x", np.uint8(3))
