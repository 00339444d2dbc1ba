"""Test-suite settings shared by every test module."""

from __future__ import annotations

from hypothesis import settings

# No per-example time limit: these machines are noisy (a sweep on both cores can
# slow one example past hypothesis' default 200 ms), and speed belongs in
# benchmarks/, never in a test's pass/fail.
settings.register_profile("cdbloss", deadline=None)
settings.load_profile("cdbloss")
