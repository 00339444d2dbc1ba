"""Count how often a run's per-class validation accuracy jumped between epochs.

The command line of :mod:`cdbloss.lab.experiments.analysis.val_swings` (run ``--help``); the code lives
in the package so that the tests import it from there.
"""

import sys

from cdbloss.lab.experiments.analysis.val_swings import main

if __name__ == "__main__":
    sys.exit(main())
