"""Summarise how the CDB weights and tau moved during finished runs.

The command line of :mod:`cdbloss.lab.experiments.analysis.weight_history` (run ``--help``); the code lives
in the package so that the tests import it from there.
"""

import sys

from cdbloss.lab.experiments.analysis.weight_history import main

if __name__ == "__main__":
    sys.exit(main())
