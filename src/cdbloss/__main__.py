"""``python -m cdbloss`` runs the command line."""

import sys

try:
    from cdbloss.lab.cli import main
except KeyboardInterrupt:  # Ctrl-C while torch is still being imported
    print("cdbloss: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
