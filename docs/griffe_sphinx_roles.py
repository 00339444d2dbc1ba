"""Griffe extension for the API reference: Sphinx markup in docstrings as Markdown.

The docstrings are Google style with reST inline markup, readable in ``help()``:
``:class:`~cdbloss.CDBLoss```, ``:math:`w_c = d_c^\\tau```, and ``.. math::`` blocks.
mkdocstrings renders Markdown, where those come out as stray colons, so before
parsing this rewrites each role to a code span (``~a.b.C`` -> ``C``), each
``.. math::`` block to a fenced code block, and ``Example:`` to ``Examples:`` (the
section that renders doctests). No cross-reference links are made:
a role naming an object that the reference does not render would then fail the
strict build.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from griffe import Extension, Object, ObjectNode

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|data|mod|attr|exc|obj|const|math):`([^`]+)`")
_MATH = re.compile(r"^(?P<indent> *)\.\. math::[ \t]*(?P<first>.*)$")
# Google style names the section "Examples:"; griffe reads "Example:" as a note, doctest as prose
_EXAMPLE = re.compile(r"^(?P<indent> *)Example:[ \t]*$", re.MULTILINE)


def _role(match: re.Match[str]) -> str:
    text = match.group(1)
    if "<" in text and text.endswith(">"):  # "title <target>"
        text = text[: text.index("<")].strip()
    elif text.startswith("~"):
        text = text[1:].rsplit(".", 1)[-1]
    return f"`{text}`"


def _math_blocks(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _MATH.match(lines[i])
        if match is None:
            out.append(lines[i])
            i += 1
            continue
        indent = match.group("indent")
        body = [match.group("first")] if match.group("first") else []
        i += 1
        while i < len(lines) and lines[i].strip() and lines[i].startswith(indent + " "):
            body.append(lines[i].strip())  # continuation lines: indented, up to a blank line
            i += 1
        out += [f"{indent}```text", *(f"{indent}{b}" for b in body), f"{indent}```"]
    return "\n".join(out)


def to_markdown(text: str) -> str:
    """``text`` with its Sphinx roles as code spans, ``.. math::`` blocks fenced and
    ``Example:`` sections named ``Examples:``."""
    text = _EXAMPLE.sub(r"\g<indent>Examples:", text)
    return _ROLE.sub(_role, _math_blocks(text))


class SphinxRoles(Extension):
    """Rewrite each docstring before mkdocstrings parses it."""

    def on_instance(
        self, *, node: ast.AST | ObjectNode, obj: Object, agent: Any, **kwargs: Any
    ) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
