"""Value checks of the backup-and-recovery rules the generic cases do not reach (tools/mutations.py)."""

from __future__ import annotations

from typing import Any

import pytest

from test_policy_rules import PROD, RESOURCE_RULES, violations


@pytest.mark.parametrize("days", ["30", True, None])
def test_deletion_window_that_is_not_a_number_is_refused(days: Any) -> None:
    found = violations(RESOURCE_RULES["aws-kms-key-enforce-deletion-window"], "aws:kms/key:Key", {"tags": PROD, "deletionWindowInDays": days})
    assert found, days
