"""Diagnostics of committed runs that the results pages (docs/results/) quote (each has a ``main``; tools/ wraps them)."""
