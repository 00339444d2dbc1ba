"""The ``cdbloss`` command line: thin; it parses and calls the library.

Sub-command groups live beside the code they drive and register themselves
here through an ``add_parser(subparsers)`` function.
"""

from __future__ import annotations

import argparse
import os
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
        from cdbloss.lab.data.cli import add_parser
    except ImportError:  # the data package is not there yet
        return
    add_parser(sub)


def _add_experiments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from cdbloss.lab.experiments.cli import add_parser

    add_parser(sub)


_GROUPS = [_add_data, _add_experiments]


def one_line(err: BaseException) -> str:
    """An exception's message on one line (an OS error as its reason and file)."""
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        text = f"{err.strerror}: {str(err.filename)!r}"
    else:
        text = str(err)
        if isinstance(err, KeyError) and err.args:
            text = f"missing key {err.args[0]!r}"
    return " ".join(text.split()) or type(err).__name__


def _say(text: str) -> None:
    print(f"cdbloss: {text}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cdbloss`` script; returns the exit status.

    Exit status: 0 done; 1 a run failed (a NaN loss, a failed sweep run, an internal
    error); 2 a usage or data error (a bad config key or value, a missing or unreadable
    file), found before any work starts wherever it can be; 130 interrupted (Ctrl-C).
    Every error is one line on stderr, never a traceback; ``CDBLOSS_TRACEBACK=1``
    shows the traceback of an unexpected one.
    """
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        func = getattr(args, "func", None)
        if func is None:
            parser.print_help()
            return 2
        return int(func(args) or 0)
    except KeyboardInterrupt as err:
        _say(f"interrupted; {one_line(err)}" if str(err) else "interrupted")
        return 130
    except (ValueError, OSError) as err:  # usage and data errors
        _say(f"error: {one_line(err)}")
        return 2
    except RuntimeError as err:  # a run that failed
        _say(f"error: {one_line(err)}")
        return 1
    except Exception as err:
        if os.environ.get("CDBLOSS_TRACEBACK"):
            raise
        _say(
            f"internal error: {type(err).__name__}: {one_line(err)} "
            "(CDBLOSS_TRACEBACK=1 shows where; please report it)"
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
