"""The docs site (mkdocs.yml, docs/hooks.py, docs/griffe_sphinx_roles.py).

``make docs`` builds the real site with ``--strict``; these tests check what that
build cannot check about itself: that a broken link, anchor or nav entry does fail
it (a softer ``validation`` setting would pass silently), and the two rewrites.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")

ROOT = Path(__file__).resolve().parents[1]


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sphinx_markup_becomes_markdown() -> None:
    to_markdown = _module("griffe_sphinx_roles").to_markdown
    text = (
        "Uses :class:`~cdbloss.CDBWeighting`, :func:`cdb_weights` and :math:`w_c = d_c^\\tau`.\n"
        "\n"
        ".. math:: \\ell_i = -\\log p\n"
        "    {\\sum_k e^{z_k}}\n"
        "\n"
        "After.\n"
        "\n"
        "Example:\n"
        "    >>> 1 + 1\n"
        "    2\n"
    )
    assert to_markdown(text) == (
        "Uses `CDBWeighting`, `cdb_weights` and `w_c = d_c^\\tau`.\n"
        "\n"
        "```text\n\\ell_i = -\\log p\n{\\sum_k e^{z_k}}\n```\n"
        "\n"
        "After.\n"
        "\n"
        "Examples:\n"
        "    >>> 1 + 1\n"
        "    2\n"
    )


def test_readme_links_are_rewritten_for_docs_and_code_blocks_are_left_alone() -> None:
    hooks = _module("hooks")
    readme = (
        "[a](docs/losses.md#x) [b](results/t.md) [c](https://e.org/a.md) [d](#top)\n"
        "```python\nlayers[0](x.md)\n```\n"
        "[e]: examples/demo.py\n"
    )
    assert hooks._rewrite_links(readme, hooks._readme_target) == (
        "[a](losses.md#x) [b](../results/t.md) [c](https://e.org/a.md) [d](#top)\n"
        "```python\nlayers[0](x.md)\n```\n"
        "[e]: ../examples/demo.py\n"
    )


def test_readme_is_a_short_front_page() -> None:
    """At most 150 lines: what it is, install, quickstart, settings, the two commands, next."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    headings = [line for line in readme.splitlines() if line.startswith("## ")]
    for section in ("## Quickstart", "## Which CDB settings to use", "## The two commands"):
        assert any(h.startswith(section) for h in headings), (section, headings)
    assert "## Documentation" in headings and "docs/api/index.md" in readme
    for command in ("pip install", "make demo", "make test"):
        assert command in readme, command


BREAKAGES = {
    "docs/engine.md": "\n[a](nope.md) [b](losses.md#no-such-heading) [c](../configs/nope.yaml)\n",
    "docs/orphan.md": "# Not in the nav\n",
    "README.md": "\n[d](docs/also-nope.md)\n",
}


@pytest.mark.slow
def test_strict_build_fails_on_each_broken_link_anchor_and_nav_entry(tmp_path: Path) -> None:
    """A copy of the site, broken on purpose: the build fails and names every breakage.

    The copy also gets a page under docs/results/ that links back up and out of
    docs/: the nav glob takes it in, and those links resolve (no warning for them).
    """
    for name in ("mkdocs.yml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    for name in ("src", "results", "examples", "configs"):
        (tmp_path / name).symlink_to(ROOT / name)
    sub = tmp_path / "docs" / "results" / "zz_new_page.md"
    sub.parent.mkdir(exist_ok=True)
    sub.write_text(
        "# New\n\n[up](../results.md) [home](../../README.md#the-two-commands) "
        "[config](../../configs/mnist_4v9_table1.yaml)\n"
    )
    for name, extra in BREAKAGES.items():
        with open(tmp_path / name, "a") as fh:
            fh.write(extra)
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    log = out.stdout + out.stderr
    assert out.returncode != 0, log
    warnings = [line for line in log.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 5, log
    for needle in ("'nope.md'", "#no-such-heading", "'../configs/nope.yaml'", "also-nope"):
        assert any(needle in w for w in warnings), (needle, log)
    assert 'not included in the "nav"' in log and "orphan.md" in log, log
    assert "zz_new_page" not in log, log  # in the nav, its links resolve
