"""Processes a test starts, with deadlines: a deadlock fails its test instead of hanging CI.

* :func:`spawn` runs ``torch.multiprocessing.spawn`` workers and waits at most
  ``timeout`` seconds for all of them; past it, or when the test stops for any
  other reason, every worker still alive is killed.
* :func:`run_group` runs a command (``torchrun``, ``cdbloss train``) as the
  leader of a new process group and kills the whole group (``torchrun``'s
  workers included) when it outlives ``timeout`` or the test stops.
* :data:`GLOO_TIMEOUT` bounds every collective of the workers' gloo process
  groups, so a rank waiting for a peer that never comes raises.

Each deadline is shorter than the per-test limit (``timeout`` in
pyproject.toml's pytest options, pytest-timeout), which ends the whole run
if anything else hangs.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch.multiprocessing as mp

#: Timeout of the gloo process groups the spawned workers create.
GLOO_TIMEOUT = datetime.timedelta(seconds=60)
#: How long spawned workers may take, all together.
SPAWN_TIMEOUT_S = 120.0


def spawn(
    fn: Callable[..., None], args: tuple[Any, ...], nprocs: int, timeout: float = SPAWN_TIMEOUT_S
) -> None:
    """``torch.multiprocessing.spawn(fn, args, nprocs)`` with a deadline.

    A worker that raises fails the test with its traceback (as ``mp.spawn``
    does); workers still running after ``timeout`` seconds are killed and the
    test fails.
    """
    context = mp.spawn(fn, args=args, nprocs=nprocs, join=False)
    assert context is not None
    deadline = time.monotonic() + timeout
    try:
        while not context.join(timeout=max(0.1, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                pytest.fail(
                    f"{nprocs} spawned workers of {fn.__name__} still running after "
                    f"{timeout:.0f} s (a deadlock?); killed",
                    pytrace=False,
                )
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
            process.join(10)


def run_group(
    cmd: Sequence[str], timeout: float, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in a new process group; return its result (text output captured).

    Past ``timeout`` seconds, or when the test stops while it runs, the whole
    group is killed; a timeout fails the test with the end of its output.
    """
    proc = subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: children included in the kill
        **kwargs,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        pytest.fail(
            f"{' '.join(cmd[:6])} ... still running after {timeout:.0f} s; its process group "
            f"was killed. stderr ends: {err[-2000:]}",
            pytrace=False,
        )
    finally:
        if proc.poll() is None:  # the test stopped while it ran (pytest-timeout, Ctrl-C)
            kill_group(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL the process group that ``proc`` leads (started with ``start_new_session``):
    the leader and every child it started. Call it while the leader is still running, so
    the group is surely this test's."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
