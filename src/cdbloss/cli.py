"""The ``cdbloss`` command line: thin; it parses and calls the library.

Sub-command groups live beside the code they drive and register themselves
here through an ``add_parser(subparsers)`` function.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every sub-command group attached."""
    from cdbloss import __version__

    parser = argparse.ArgumentParser(
        prog="cdbloss",
        description="Class-wise Difficulty-Balanced loss: data, training and reports.",
    )
    parser.add_argument("--version", action="version", version=f"cdbloss {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Each group registers itself; a group whose optional extras are missing
    # still registers and explains what to install when it runs.
    for group in _GROUPS:
        group(sub)
    return parser


def _add_data(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    try:
        from cdbloss.data.cli import add_parser
    except ImportError:  # the data package is not there yet
        return
    add_parser(sub)


def _add_experiments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from cdbloss.experiments.cli import add_parser

    add_parser(sub)


_GROUPS = [_add_data, _add_experiments]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cdbloss`` script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"cdbloss: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
