"""Tables of the decoupled and two-stage baselines, every knob chosen on validation.

The command line of :mod:`cdbloss.lab.experiments.decoupled_tables` (run ``--help``); the code
lives in the package so that the tests import it from there.
"""

import sys
from pathlib import Path

from cdbloss.lab.experiments.decoupled_tables import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], root=Path(__file__).resolve().parents[1]))
