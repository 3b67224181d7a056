"""Hypothesis profiles: `make test` runs a bounded number of examples, `make test-full` the full count.

Locally every run draws new examples (each run explores more of the input space); under CI (`CI=true`)
the examples are derived from the test itself, so CI's verdict is reproducible on any machine.
"""

import os

from hypothesis import HealthCheck, settings

_common = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow],
    "derandomize": os.environ.get("CI") == "true",
}
settings.register_profile("bounded", max_examples=200, **_common)
settings.register_profile("full", max_examples=10_000, **_common)
settings.load_profile(os.environ.get("CCP_HYPOTHESIS_PROFILE", "bounded"))
