"""Read a docs page's runnable examples and the output they print, for the tests."""

from __future__ import annotations

from pathlib import Path


def example(page: Path, name: str) -> str:
    """The python block after ``<!-- example: name -->`` on ``page``."""
    text = page.read_text(encoding="utf-8")
    marker = f"<!-- example: {name} -->\n```python\n"
    start = text.index(marker) + len(marker)
    return text[start : text.index("```", start)]


def printed(page: Path, name: str) -> list[str]:
    """The lines of the first plain ````` block after example ``name``: what it prints."""
    text = page.read_text(encoding="utf-8")
    marker = f"<!-- example: {name} -->\n```python\n"
    start = text.index(marker) + len(marker)
    after_code = text.index("```", start) + 3
    opening = text.index("\n```\n", after_code) + len("\n```\n")
    return text[opening : text.index("```", opening)].splitlines()


def matching(output: str, expected: list[str]) -> list[str]:
    """The lines of ``output`` that start as some ``expected`` line does (its first word)."""
    heads = {line.split()[0] for line in expected if line.strip()}
    return [line for line in output.splitlines() if line.split() and line.split()[0] in heads]
