"""Diagnostics of committed runs that docs/results.md quotes (each has a ``main``; tools/ wraps them)."""
