"""Cache root resolution, checksums and archive member names."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cdbloss.lab.data.cache import (
    bytes_digest,
    cache_root,
    file_digest,
    find_shared,
    safe_member_name,
    shared_data_dirs,
    verify_digest,
)


def test_cache_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CDBLOSS_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "cdbloss"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "cdbloss"
    monkeypatch.setenv("CDBLOSS_CACHE", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"


def test_digests(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"hello" * 300_000)  # more than one read chunk
    assert file_digest(p) == hashlib.sha256(b"hello" * 300_000).hexdigest()
    assert file_digest(p, "md5") == bytes_digest(b"hello" * 300_000, "md5")


def test_verify_digest_message() -> None:
    verify_digest("x", "ABC", "abc", "md5")  # case-insensitive
    with pytest.raises(
        ValueError, match=r"archive.tgz: sha256 checksum mismatch: expected 00, got ff"
    ):
        verify_digest("archive.tgz", "ff", "00", "sha256")


@pytest.mark.parametrize(
    "name", ["../evil", "a/../../evil", "/etc/passwd", "a\\b", "C:/x", "", "a\x00b"]
)
def test_unsafe_member_names_refused(name: str) -> None:
    with pytest.raises(ValueError, match=r"arch.zip: refusing unsafe member name"):
        safe_member_name(name, "arch.zip")


def test_safe_member_names_pass() -> None:
    assert safe_member_name("train/cat/0001.jpg", "z").parts == ("train", "cat", "0001.jpg")
    assert safe_member_name("./a/b", "z").parts == ("a", "b")


def test_shared_data_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "mydata"
    (d / "cifar10-jpeg").mkdir(parents=True)
    (d / "cifar10-jpeg" / "x.zip").write_bytes(b"z")
    monkeypatch.setenv("CDBLOSS_SHARED_DATA", str(d))
    assert shared_data_dirs()[0] == d.resolve()
    assert find_shared("cifar10-jpeg/x.zip") == d.resolve() / "cifar10-jpeg" / "x.zip"
    assert find_shared("nothing/here") is None
