"""The long-tail study's tables: every method's validation and test scores, paired by seed.

The command line of :mod:`cdbloss.lab.experiments.longtail_tables` (run ``--help``); the code lives
in the package so that the tests import it from there.
"""

import sys
from pathlib import Path

from cdbloss.lab.experiments.longtail_tables import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], root=Path(__file__).resolve().parents[1]))
