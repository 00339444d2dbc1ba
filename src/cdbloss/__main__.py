"""``python -m cdbloss`` runs the command line."""

import sys

from cdbloss.cli import main

sys.exit(main())
