"""A program on the previous azure-native major version (v2), with an explicit API-version module v3 no
longer has, is reviewed in its own environment and gets the same rules as the default module.

It installs pulumi-azure-native 2.x (a 108 MB wheel, about 1.9 GB and 1.5 min installed, once per
machine: the environment is cached by the requirement set's hash), so it runs in `make test-full`
(which sets CCP_TEST_FULL=1), not in `make test`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from policies.review import sandbox
from tests.review.test_review_programs import PROGRAMS, review

pytestmark = pytest.mark.skipif(
    os.environ.get("CCP_TEST_FULL") != "1", reason="installs pulumi-azure-native 2.x; runs in make test-full"
)
VERSIONED = "azure-native:storage/v20230101:StorageAccount"


def test_azure_native_v2_program_is_reviewed_with_the_default_modules_rules(tmp_path: Path) -> None:
    program = PROGRAMS / "azure_native_v2"
    result = review(program, tmp_path / "out", timeout=1800)
    if result.code == 2 and "offline?" in result.output:
        pytest.skip(f"the package index cannot be reached: {result.output}")
    assert result.code == 1, result.output  # violations, not a failure to review
    record = json.loads((tmp_path / "out" / "review-dev.json").read_text())
    env = record["program_environment"]
    lines = sandbox.requirements(program)[1]  # type: ignore[index]
    assert env["python"].startswith(str(sandbox.cache_root() / sandbox.requirement_hash(lines)))
    account = next(r for r in record["resources"] if r["name"] == "legacydata")
    assert account["type"] == VERSIONED  # the v2-only module loaded: the program ran on its own SDK
    assert account["inputs"]["allowBlobPublicAccess"] is True
    # Same rules as azure-native:storage:StorageAccount, so it is covered, and its settings are flagged.
    assert VERSIONED not in {u["type"] for u in record["uncovered"]}
    flagged = {v["policy"] for v in record["violations"] if v["urn"].endswith("::legacydata")}
    assert {
        "azure-storage-storageaccount-disallow-public-access",
        "azure-storage-storageaccount-enforce-tls",
    } <= flagged, flagged
