"""The one registry style (cdbloss.registry.Registry) and the registries built on it."""

from __future__ import annotations

import pytest

from cdbloss.registry import Registry


def test_decorator_registers_and_returns_the_object() -> None:
    reg: Registry[object] = Registry("widget")

    @reg.register("a")
    def a() -> int:
        return 1

    assert a() == 1 and reg["a"] is a and reg.lookup("a") is a
    assert list(reg) == ["a"] and len(reg) == 1 and "a" in reg and "b" not in reg


def test_duplicates_and_bad_names_are_refused() -> None:
    reg: Registry[int] = Registry("widget")
    reg.add("a", 1)
    with pytest.raises(ValueError, match=r"^widget 'a' is already registered$"):
        reg.add("a", 2)
    with pytest.raises(ValueError, match="non-empty str"):
        reg.add("", 3)
    assert reg["a"] == 1


def test_unknown_name_is_one_line_listing_the_known_ones() -> None:
    reg: Registry[int] = Registry("widget", hint=", or x.<name>")
    reg.add("b", 2)
    reg.add("a", 1)
    with pytest.raises(ValueError) as info:
        reg.lookup("c")
    assert str(info.value) == "unknown widget 'c'; known: ['a', 'b'], or x.<name>"
    with pytest.raises(KeyError):  # the Mapping protocol: [] raises KeyError
        reg["c"]
    assert reg.get("c") is None


def test_remove() -> None:
    reg: Registry[int] = Registry("widget")
    reg.add("a", 1)
    assert reg.remove("a") == 1 and "a" not in reg
    with pytest.raises(ValueError, match="unknown widget 'a'"):
        reg.remove("a")


def test_loader_runs_before_the_first_read_until_it_succeeds() -> None:
    calls: list[int] = []
    reg: Registry[int] = Registry("widget", loader=lambda: _load(reg, calls))
    reg.add("early", 0)  # registering does not load
    assert calls == []
    with pytest.raises(RuntimeError, match="first try fails"):
        len(reg)
    assert sorted(reg) == ["early", "late"]  # the second read loads again, and succeeds
    assert reg.lookup("late") == 1 and "late" in reg and len(reg) == 2
    assert calls == [1, 2]  # never again once it succeeded


def _load(reg: Registry[int], calls: list[int]) -> None:
    calls.append(len(calls) + 1)
    if len(calls) == 1:
        raise RuntimeError("first try fails")
    assert "late" not in reg  # a read inside the loader does not recurse
    reg.add("late", 1)


def test_the_library_and_lab_registries_share_the_style() -> None:
    from cdbloss.lab.data.base import PROTOCOLS
    from cdbloss.lab.models import MODELS
    from cdbloss.losses import LOSSES

    for reg, kind, known in (
        (LOSSES, "loss", "cdb-ce"),
        (MODELS, "model", "resnet32"),
        (PROTOCOLS, "data protocol", "mnist-4v9"),
    ):
        assert isinstance(reg, Registry) and known in reg
        with pytest.raises(ValueError, match=rf"^unknown {kind} 'nope'; known: \[.*'{known}'"):
            reg.lookup("nope")
