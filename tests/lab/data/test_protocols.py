"""The protocol registry: every protocol module registers; only absent modules are skipped."""

from __future__ import annotations

import sys
import typing
from pathlib import Path

import pytest

import cdbloss.lab.data.base as pr
import cdbloss.lab.data.cifar as cf
from cdbloss.lab.data.base import check_protocol_options


def test_known_protocols_are_registered() -> None:
    registry = pr.import_protocols()
    for name in ("mnist-4v9", "mnist-lt", "fashion-mnist-lt", "cifar-lt"):
        assert name in registry


def test_absent_module_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        pr, "PROTOCOL_MODULES", ("cdbloss.lab.data.mnist", "cdbloss.lab.data.not_written_yet")
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


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("cifar-lt", {"imbalance_factr": 100}, r"'cifar-lt' has no option 'imbalance_factr'; its"),
        ("cifar-lt", {"profile": "linear"}, r"'profile' must be one of \['exp', 'step'\]"),
        ("cifar-lt", {"val_per_class": "50"}, r"'val_per_class' must be int, got '50'"),
        ("cifar-lt", {"val_per_class": 50.0}, r"'val_per_class' must be int, got 50.0"),
        ("cifar-lt", {"augment": 1}, r"'augment' must be bool, got 1"),
        ("mnist-4v9", {"seed": 1}, r"'mnist-4v9' needs the option 'ratio'"),
        ("mnist-lt", {"imbalance_factor": "100"}, r"'imbalance_factor' must be float, got '100'"),
        ("egtea", {"mean": [0.5, "x", 0.5]}, r"'mean' must be a list of float, got \[0.5, 'x'"),
        ("folder", {"val_per_class": True}, r"'val_per_class' must be int or float, got True"),
    ],
)
def test_protocol_options_are_checked_against_the_signature(
    name: str, options: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        check_protocol_options(name, options)


def test_options_that_fit_pass_without_reading_data(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_data(*args: object, **kwargs: object) -> None:
        raise AssertionError("the check read data")

    monkeypatch.setattr(cf, "load_cifar", no_data)
    check_protocol_options(
        "cifar-lt",
        {"dataset": "cifar100", "imbalance_factor": 50, "profile": "step", "root": "/x"},
    )
    check_protocol_options("mnist-4v9", {"ratio": 0.995, "root": None, "verify": False})
    check_protocol_options("egtea", {"mean": [0.5, 0.5, 0.5], "layout": "TCHW"})
    for protocol in pr.import_protocols():  # every protocol's annotations resolve
        typing.get_type_hints(pr.import_protocols()[protocol])


def test_the_registry_is_complete_on_first_read_in_a_fresh_process() -> None:
    # no import_protocols() call: reading PROTOCOLS imports the protocol modules
    import subprocess

    code = (
        "from cdbloss.lab.data.base import PROTOCOLS, get_protocol\n"
        "assert {'mnist-4v9', 'cifar-lt', 'synthetic-lt'} <= set(PROTOCOLS), sorted(PROTOCOLS)\n"
        "try:\n    get_protocol('svhn')\nexcept ValueError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("unknown data protocol 'svhn'; known: [")
    assert "'mnist-4v9'" in out


def test_the_protocols_module_only_re_exports_the_loader() -> None:
    import cdbloss.lab.data.protocols as shim

    assert shim.import_protocols is pr.import_protocols
    assert shim.import_protocols() is pr.PROTOCOLS
