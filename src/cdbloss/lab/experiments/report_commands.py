"""Rerun every `cdbloss report` command the results pages give and compare with the committed report.

docs/results.md and the pages under docs/results/ give, for each table, the command that regenerates it. This
script reads those commands from the page's code blocks, runs each one again
on the committed result files (into a temporary folder, without figures) and
compares the ``report.md`` it writes with the one committed where the command
writes it (its ``--out``, else its single run folder). A command that now
gives a different report, for instance because more runs were committed to a
folder it reads and it lacks the ``--seeds`` that the committed report used,
is listed::

    python tools/check_report_commands.py            # exit 1 and list the commands that drifted
    python tools/check_report_commands.py -v         # and show the first differing lines

Figure links are left out of the comparison (the rerun draws none); every
table, count and label is compared. The test suite runs the check, so a page
whose command no longer regenerates its report fails CI.
"""

from __future__ import annotations

import argparse
import difflib
import shlex
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

PROMPT = "cdbloss report "


def results_pages(root: Path) -> list[Path]:
    """The results pages of the repository at ``root``: ``docs/results.md`` and
    ``docs/results/*.md`` (those that exist), in that order."""
    main = root / "docs" / "results.md"
    return ([main] if main.is_file() else []) + sorted((root / "docs" / "results").glob("*.md"))


@dataclass(frozen=True)
class ReportCommand:
    """One ``cdbloss report`` command of a page."""

    line: int  # 1-based line of the page
    argv: tuple[str, ...]  # the arguments after ``cdbloss``

    @property
    def text(self) -> str:
        return "cdbloss " + shlex.join(self.argv)


def report_commands(page: Path) -> list[ReportCommand]:
    """The ``cdbloss report`` commands in the fenced code blocks of ``page``.

    A line may chain several with ``&&``; a ``#`` starts a comment.
    """
    commands = []
    in_block = False
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        if line.startswith("```"):
            in_block = not in_block
            continue
        if not in_block:
            continue
        for part in line.split("&&"):
            words = shlex.split(part, comments=True)
            if words[:2] == ["cdbloss", "report"]:
                commands.append(ReportCommand(number, tuple(words[1:])))
    return commands


def _comparable(text: str) -> list[str]:
    """The report's lines without figure links and blank lines."""
    return [line for line in text.splitlines() if line.strip() and not line.startswith("![")]


def rerun(command: ReportCommand, root: Path, scratch: Path) -> tuple[Path, list[str], list[str]]:
    """Run ``command`` into ``scratch``; return the committed report's path and both line lists."""
    from cdbloss.lab.cli import build_parser
    from cdbloss.lab.experiments.report import write_report

    args = build_parser().parse_args(list(command.argv))
    dirs = [str(root / d) for d in args.dir]
    if args.out is not None:
        committed = root / args.out / "report.md"
    elif len(args.dir) == 1:
        only = root / args.dir[0]
        committed = (
            only if not only.is_file() else only.parent
        ) / "report.md"  # a store: its folder
    else:
        raise ValueError(
            f"line {command.line}: `{command.text}` reads several folders but has no --out"
        )
    if not committed.is_file():
        raise FileNotFoundError(
            f"line {command.line}: `{command.text}` writes {committed}, which is not committed"
        )
    fresh = write_report(
        dirs, scratch, figures=False, paired_against=args.paired_against, seeds=args.seeds
    )
    # the header names the folders as given on the command line
    text = fresh.read_text().replace(f"{root}/", "")
    return committed, _comparable(committed.read_text()), _comparable(text)


def check(page: Path, root: Path, verbose: bool = False) -> list[str]:
    """One message per command of ``page`` whose rerun differs from its committed report."""
    drifted = []
    commands = report_commands(page)
    if not commands:
        raise ValueError(f"{page} gives no `cdbloss report` command in a code block")
    for i, command in enumerate(commands):
        with tempfile.TemporaryDirectory() as tmp:
            committed, want, got = rerun(command, root, Path(tmp) / str(i))
        if want != got:
            message = f"{page}:{command.line}: `{command.text}` no longer gives {committed.relative_to(root)}"
            if verbose:
                diff = difflib.unified_diff(want, got, "committed", "rerun", n=0, lineterm="")
                message += "\n" + "\n".join(list(diff)[:12])
            drifted.append(message)
    return drifted


def main(argv: list[str] | None = None, root: Path | None = None) -> int:
    """Command line: check the pages given (default: every results page of ``root``, the
    repository, default the working folder); 1 if a command drifted."""
    base = Path.cwd() if root is None else root
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("pages", nargs="*", help="default: docs/results.md, docs/results/*.md")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the differing lines")
    args = parser.parse_args(argv)
    pages = [Path(p) for p in args.pages] or results_pages(base)
    if not pages:
        parser.error(f"no results page under {base / 'docs'}")
    drifted, checked = [], 0
    for page in pages:
        if args.pages or report_commands(page):  # a default page may quote no report
            drifted += check(page, base, verbose=args.verbose)
            checked += 1
    for message in drifted:
        print(message)
    if drifted:
        return 1
    print(f"every `cdbloss report` command of {checked} results page(s) regenerates its report")
    return 0


if __name__ == "__main__":
    sys.exit(main())
