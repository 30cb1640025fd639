"""Hypothesis settings of the fuzzing suites (tests/test_fuzz_*.py).

Default ("ci"): a fixed, bounded set of examples (derandomized: the same ones on every run, so CI is stable)
that keeps each suite within a few seconds. SOUNDBENCH_FUZZ=long draws fresh random examples, 40 times as
many: `make fuzz` (SOUNDBENCH_FUZZ=long over every tests/test_fuzz_*.py; about 15-25 minutes on 2 cores).
No example database is written (nothing to clean up); a failure prints its example.
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("SOUNDBENCH_FUZZ", "ci")
if PROFILE not in ("ci", "long"):
    raise ValueError(f"SOUNDBENCH_FUZZ must be 'ci' or 'long', got {PROFILE!r}")
SCALE = 40 if PROFILE == "long" else 1


def fuzz_settings(examples: int) -> settings:
    """`examples` in the ci profile, SCALE times as many in the long one."""
    return settings(max_examples=examples * SCALE, deadline=None, database=None, derandomize=PROFILE == "ci",
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much], print_blob=True)
