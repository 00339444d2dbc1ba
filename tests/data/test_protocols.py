"""import_protocols: every protocol module registers; only absent modules are skipped."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import cdbloss.data.protocols as pr


def test_known_protocols_are_registered() -> None:
    registry = pr.import_protocols()
    for name in ("mnist-4v9", "mnist-lt", "fashion-mnist-lt", "cifar-lt"):
        assert name in registry


def test_absent_module_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        pr, "PROTOCOL_MODULES", ("cdbloss.data.mnist", "cdbloss.data.not_written_yet")
    )
    assert "mnist-4v9" in pr.import_protocols()


def test_broken_module_is_not_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a protocol module that exists but needs a missing dependency must raise, not vanish
    (tmp_path / "cdbloss_test_broken_protocol.py").write_text("import cdbloss_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "cdbloss_test_broken_protocol", raising=False)
    monkeypatch.setattr(pr, "PROTOCOL_MODULES", ("cdbloss_test_broken_protocol",))
    with pytest.raises(ModuleNotFoundError, match="cdbloss_no_such_dependency"):
        pr.import_protocols()
