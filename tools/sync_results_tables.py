"""Keep the tables that the results pages quote from `cdbloss report` equal to the reports.

The command line of :mod:`cdbloss.lab.experiments.table_sync` (run ``--help``); the code lives
in the package so that the tests import it from there.
"""

import sys
from pathlib import Path

from cdbloss.lab.experiments.table_sync import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], root=Path(__file__).resolve().parents[1]))
