"""One writer per folder: an advisory lock file that holds its owner's pid.

A run folder (and a sweep's folder) is written by one process at a time. The
lock is an ``flock`` on ``run.lock`` (``sweep.lock``) in the folder, and the
file holds the owner's process id for the messages. The kernel drops an
``flock`` when its process dies, however it dies, so a lock file left behind by
a killed process is stale by construction: the next owner takes it over and
says so. A live owner makes the next one stop at once, naming its pid.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with folder_lock(d) as lock:
    ...     lock.read_text().strip() == str(os.getpid())
    True
    >>> (d / LOCK_NAME).exists()  # removed on release
    False
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LOCK_NAME", "SWEEP_LOCK_NAME", "FolderLockedError", "folder_lock"]

LOCK_NAME = "run.lock"
SWEEP_LOCK_NAME = "sweep.lock"


class FolderLockedError(RuntimeError):
    """Another live process holds the folder's lock."""


def _read_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


@contextlib.contextmanager
def folder_lock(
    folder: str | Path, name: str = LOCK_NAME, what: str = "run folder"
) -> Iterator[Path]:
    """Hold ``folder/name`` for this process (the folder is created); yield its path.

    Raises:
        FolderLockedError: a live process holds it; the message names its pid.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by a live process
            owner = _read_pid(fd)
            os.close(fd)
            who = f"process {owner}" if owner else "another process"
            raise FolderLockedError(
                f"{what} {str(folder)!r} is in use by {who} (lock file {str(path)!r}); "
                "two processes never write one folder: wait for it to end or stop it"
            ) from None
        # Its previous owner may have removed the file between our open and our flock:
        # then we hold a lock on a name no one else sees; open the file again.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        previous = _read_pid(fd)
        if previous is not None and previous != os.getpid():
            print(
                f"note: {what} {str(folder)!r}: taking over the stale lock of process "
                f"{previous}, which ended without releasing it",
                file=sys.stderr,
                flush=True,
            )
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        path.unlink(missing_ok=True)  # while still locked: a waiter re-checks the inode
        os.close(fd)  # drops the flock
