"""How much runs sharing a GPU slowed each other, read back from a packed call's own runs.

The command line of :mod:`cdbloss.lab.experiments.analysis.pack_pace` (run ``--help``); the code lives
in the package so that the tests import it from there.
"""

import sys

from cdbloss.lab.experiments.analysis.pack_pace import main

if __name__ == "__main__":
    sys.exit(main())
