"""The report package's shape (issue 34): split by what it does, no function over 60 lines,
and every name the old ``report.py`` module offered still importable from the package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cdbloss.lab.experiments.report as report

PACKAGE = Path(report.__file__).parent
MODULES = ("__init__", "runs", "labels", "stats", "tables", "figures", "writer")
MAX_LINES = 60


def long_functions(source: str, limit: int = MAX_LINES) -> list[tuple[str, int]]:
    """(name, lines) of every function or method in ``source`` spanning more than ``limit``
    lines, counted from its ``def`` line to its last line (decorators not counted)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            span = (node.end_lineno or node.lineno) - node.lineno + 1
            if span > limit:
                found.append((node.name, span))
    return found


def test_the_package_has_its_modules() -> None:
    assert sorted(p.stem for p in PACKAGE.glob("*.py")) == sorted(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_no_function_is_over_60_lines(module: str) -> None:
    source = (PACKAGE / f"{module}.py").read_text(encoding="utf-8")
    assert long_functions(source) == [], f"{module}.py: split these into named helpers"


def test_the_length_check_sees_a_long_function_and_a_method() -> None:
    def body(indent: int) -> str:
        return "\n".join(" " * indent + f"x{i} = {i}" for i in range(60))

    source = (
        f"def f():\n{body(4)}\n\n"
        f"class C:\n    async def g(self):\n{body(8)}\n    def h(self):\n        pass\n"
    )
    assert long_functions(source) == [("f", 61), ("g", 61)]


@pytest.mark.parametrize(
    "name",
    [
        *report.__all__,
        "row_labels",
        "run_rows",
        "RUN_FIELDS",
        "SELECT_FIELDS",
    ],
)
def test_the_old_module_names_stay_importable(name: str) -> None:
    assert getattr(report, name) is not None
    assert name in dir(report)


def test_the_public_names_are_the_old_modules() -> None:
    old = "BEST_TAU_ROW Cell RunRecord best_fixed_tau default_reference load_runs method_label"
    assert sorted(report.__all__) == sorted(
        [*old.split(), "paired_advantage", "sign_test", "write_report"]
    )
