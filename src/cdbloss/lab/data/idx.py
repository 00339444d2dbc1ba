"""Reader and writer for the IDX format of MNIST and Fashion-MNIST, gzipped or raw.

Format (LeCun et al.): a 4-byte magic ``0x00 0x00 <dtype code> <ndim>``, then
``ndim`` big-endian uint32 dimension sizes, then the data, big-endian, C order.
Type codes: ``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32,
``0x0D`` float32, ``0x0E`` float64. The files hold exactly the bytes the
header announces: anything shorter is truncated, anything longer is refused.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "labels-idx1-ubyte.gz"
    >>> write_idx(p, np.array([4, 9, 9], dtype=np.uint8))
    >>> read_idx(p)
    array([4, 9, 9], dtype=uint8)
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt

from cdbloss.lab.io import atomic_write

__all__ = ["IDX_DTYPES", "idx_bytes", "maybe_gunzip", "parse_idx", "read_idx", "write_idx"]

#: IDX type code -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype[np.generic]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def parse_idx(data: bytes, name: str = "<bytes>") -> npt.NDArray[np.generic]:
    """Decode the bytes of one (uncompressed) IDX file.

    Args:
        data: the whole file content.
        name: used in error messages (a file name).

    Returns:
        An array of the header's shape, e.g. ``(N, 28, 28)`` uint8 images or
        ``(N,)`` uint8 labels, in native byte order.

    Raises:
        ValueError: bad magic, unknown type code, or a size that does not
            match the header exactly (truncated or trailing bytes).
    """
    if len(data) < 4:
        raise ValueError(f"{name}: not an IDX file: {len(data)} bytes, a header needs at least 4")
    zero, code, ndim = data[:2], data[2], data[3]
    if zero != b"\x00\x00":
        raise ValueError(
            f"{name}: not an IDX file: magic starts with {zero.hex()}, expected 0000"
            + (" (it is gzip-compressed data)" if zero == _GZIP_MAGIC else "")
        )
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(f"{name}: unknown IDX type code 0x{code:02X}; known: {known}")
    if ndim == 0:
        raise ValueError(f"{name}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(
            f"{name}: truncated IDX header: {ndim} dimensions need {header} bytes, got {len(data)}"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = IDX_DTYPES[code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "has trailing bytes"
        raise ValueError(
            f"{name}: IDX file {problem}: header says shape {tuple(shape)} of {dtype.name} "
            f"= {expected} bytes in all, the file has {len(data)}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def maybe_gunzip(data: bytes, name: str = "<bytes>") -> bytes:
    """Uncompress ``data`` when it starts with the gzip magic, else return it unchanged.

    Raises:
        ValueError: a corrupted or truncated gzip stream (names ``name``).
    """
    if data[:2] != _GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as err:
        raise ValueError(f"{name}: corrupted or truncated gzip data ({err})") from None


def _read_bytes(path: Path) -> bytes:
    return maybe_gunzip(path.read_bytes(), str(path))


def read_idx(path: str | os.PathLike[str]) -> npt.NDArray[np.generic]:
    """Read an IDX file; gzip is recognised by its magic bytes, not the file name.

    Args:
        path: the file (``train-images-idx3-ubyte``, ``...-idx1-ubyte.gz``...).

    Returns:
        The array; see :func:`parse_idx`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: corrupted gzip stream, or an invalid IDX file (names the file).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"IDX file not found: {p}")
    return parse_idx(_read_bytes(p), str(p))


def idx_bytes(path: str | os.PathLike[str]) -> bytes:
    """The uncompressed content of an IDX file (for checksums of the data itself)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"IDX file not found: {p}")
    return _read_bytes(p)


def write_idx(
    path: str | os.PathLike[str], array: npt.ArrayLike, compress: bool | None = None
) -> None:
    """Write ``array`` as an IDX file (atomically).

    Args:
        path: target file; gzip-compressed when ``compress`` is true, or when it
            is ``None`` and the name ends in ``.gz``.
        array: any array of a dtype IDX supports (uint8, int8, int16, int32,
            float32, float64), at least 1-D.
        compress: see ``path``.
    """
    arr = np.asarray(array)
    if arr.ndim == 0:
        raise ValueError("IDX needs an array of at least 1 dimension")
    code = next(
        (c for c, dt in IDX_DTYPES.items() if dt.newbyteorder("=") == arr.dtype.newbyteorder("=")),
        None,
    )
    if code is None:
        raise ValueError(f"IDX cannot store dtype {arr.dtype}")
    body = np.ascontiguousarray(arr, dtype=IDX_DTYPES[code]).tobytes()
    data = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + body
    p = Path(path)
    if compress is None:
        compress = p.suffix == ".gz"
    if compress:
        data = gzip.compress(data, mtime=0)
    with atomic_write(p) as f:
        f.write(data)
