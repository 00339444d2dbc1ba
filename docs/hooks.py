"""MkDocs hooks for the docs site (mkdocs.yml names this file; it is not a page).

Three things plain MkDocs does not do for this repo:

1. **The README is the home page.** ``index.md`` is generated from ``README.md``,
   its links rewritten from the repo root to ``docs/`` (``docs/losses.md`` ->
   ``losses.md``, ``results/x.md`` -> ``../results/x.md``); a docs page's link to
   ``../README.md`` points at that home page.
2. **Links out of docs/ resolve.** A link from a page to an existing file of the
   repo outside ``docs/`` (``../results/<grid>/report.md``, a figure, a config)
   adds that file to the site under ``_repo/``; a Markdown file there becomes a
   page (outside the nav) whose own links are followed the same way. MkDocs then
   checks every link as usual, so a link to a missing file, inside docs/ or out,
   still fails ``mkdocs build --strict``.
3. **Nav globs.** A nav entry with ``*`` (``results/*.md``) stands for the
   matching pages under ``docs/``, sorted, so a new page joins the nav unedited.
"""

from __future__ import annotations

import glob
import os
import posixpath
import re
from collections.abc import Callable
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files, InclusionLevel
from mkdocs.structure.pages import Page

#: where the files from outside docs/ go in the built site
REPO_PREFIX = "_repo"

# [text](target "title") and ![alt](target); reference definitions: [id]: target
_INLINE = re.compile(r'(\]\(\s*<?)([^)\s>]+)(>?(?:\s+"[^"]*")?\s*\))')
_REFDEF = re.compile(r"^( {0,3}\[[^\]]+\]:\s*<?)(\S+?)(>?(?:\s.*)?)$", re.MULTILINE)
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def _rewrite_links(text: str, fn: Callable[[str], str]) -> str:
    """Apply ``fn`` to every link target of ``text`` outside fenced code blocks."""
    out: list[str] = []
    fence: str | None = None
    for line in text.splitlines(keepends=True):
        mark = _FENCE.match(line)
        if mark and (fence is None or mark.group(1) == fence):
            fence = mark.group(1) if fence is None else None
        elif fence is None:
            line = _INLINE.sub(lambda m: m.group(1) + fn(m.group(2)) + m.group(3), line)
            line = _REFDEF.sub(lambda m: m.group(1) + fn(m.group(2)) + m.group(3), line)
        out.append(line)
    return "".join(out)


def _link_targets(text: str) -> list[str]:
    found: list[str] = []

    def keep(target: str) -> str:
        found.append(target)
        return target

    _rewrite_links(text, keep)
    return found


def _local_path(target: str) -> str | None:
    """The path part of a relative link (no scheme, not absolute, not a bare anchor)."""
    if "://" in target or target.startswith(("/", "#", "mailto:")):
        return None
    path = target.split("#", 1)[0].split("?", 1)[0]
    return path or None


def _root(config: MkDocsConfig) -> str:
    assert config.config_file_path is not None
    return os.path.dirname(os.path.abspath(config.config_file_path))


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Expand nav entries that contain ``*`` into the sorted pages they match."""

    def expand(items: list[Any]) -> list[Any]:
        out: list[Any] = []
        for item in items:
            if isinstance(item, str) and "*" in item:
                hits = glob.glob(os.path.join(config.docs_dir, item))
                out += sorted(
                    os.path.relpath(h, config.docs_dir).replace(os.sep, "/") for h in hits
                )
            elif isinstance(item, dict):
                out.append({k: expand(v) if isinstance(v, list) else v for k, v in item.items()})
            else:
                out.append(item)
        return out

    if config.nav:
        config.nav = expand(config.nav)
    return config


def _readme_target(target: str) -> str:
    """A README link (relative to the repo root) as seen from ``docs/index.md``."""
    path = _local_path(target)
    if path is None:
        return target
    return target[len("docs/") :] if target.startswith("docs/") else "../" + target


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the README as ``index.md`` and every repo file that a page links to."""
    with open(os.path.join(_root(config), "README.md"), encoding="utf-8") as fh:
        readme = _rewrite_links(fh.read(), _readme_target)
    files.append(File.generated(config, "index.md", content=readme))
    todo = [f for f in files if f.is_documentation_page()]
    while todo:
        page = todo.pop()
        for target in _link_targets(page.content_string):
            added = _add_outside_file(page, target, files, config)
            if added is not None and added.is_documentation_page():
                todo.append(added)
    return files


def _add_outside_file(page: File, target: str, files: Files, config: MkDocsConfig) -> File | None:
    """Add the existing repo file outside docs/ that ``target`` names; None otherwise."""
    path = _local_path(target)
    if path is None:
        return None
    src_uri = posixpath.normpath(posixpath.join(posixpath.dirname(page.src_uri), path))
    abs_path = os.path.normpath(os.path.join(config.docs_dir, src_uri))
    repo_rel = os.path.relpath(abs_path, _root(config)).replace(os.sep, "/")
    outside = src_uri.startswith("../") and not repo_rel.startswith("../")
    if not outside or repo_rel == "README.md" or not os.path.isfile(abs_path):
        return None  # inside docs/, the home page, or missing: MkDocs checks it
    if files.get_file_from_path(src_uri) is not None:
        return None
    dest = File(f"{REPO_PREFIX}/{repo_rel}", None, config.site_dir, config.use_directory_urls)
    added = File(
        src_uri,
        config.docs_dir,
        config.site_dir,
        config.use_directory_urls,
        dest_uri=dest.dest_uri,
        inclusion=InclusionLevel.NOT_IN_NAV,
    )
    files.append(added)
    return added


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Point a docs page's links to ``../README.md`` at the home page."""
    readme = os.path.join(_root(config), "README.md")
    here = posixpath.dirname(page.file.src_uri)

    def to_home(target: str) -> str:
        path = _local_path(target)
        if path is None:
            return target
        resolved = os.path.normpath(os.path.join(config.docs_dir, here, path))
        if resolved != readme:
            return target
        return posixpath.relpath("index.md", here or ".") + target[len(target.split("#")[0]) :]

    return _rewrite_links(markdown, to_home)
