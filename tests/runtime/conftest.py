"""Hypothesis profiles: `make test` runs a bounded number of examples, `make test-full` the full count."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "bounded", max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "full", max_examples=10_000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("CCP_HYPOTHESIS_PROFILE", "bounded"))
