"""Pair CDB runs' zero-weight epochs with their test error against other methods.

The command line of :mod:`cdbloss.lab.experiments.analysis.zero_weight_margin` (run ``--help``); the code lives
in the package so that the tests import it from there.
"""

import sys

from cdbloss.lab.experiments.analysis.zero_weight_margin import main

if __name__ == "__main__":
    sys.exit(main())
