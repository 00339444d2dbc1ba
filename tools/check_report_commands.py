"""Rerun every `cdbloss report` command the results pages give and compare with the committed report.

The command line of :mod:`cdbloss.lab.experiments.report_commands` (run ``--help``); the code lives
in the package so that the tests import it from there.
"""

import sys
from pathlib import Path

from cdbloss.lab.experiments.report_commands import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], root=Path(__file__).resolve().parents[1]))
