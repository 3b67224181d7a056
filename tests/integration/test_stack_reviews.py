"""The project's own stacks pass their review: no mandatory violation, every key-release case as expected."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from policies.review.run import REPO_ROOT, run_review
from stacks.config import parse, read_stack_file

STACKS = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in REPO_ROOT.glob("Pulumi.*.yaml"))


@pytest.mark.parametrize("stack", STACKS)
def test_stack_review_passes(stack: str, tmp_path: Path) -> None:
    result = run_review(REPO_ROOT, stack, tmp_path)
    assert result.problems == []
    assert [(v.policy, v.urn, v.message) for v in result.analysis.mandatory] == []
    assert result.exit_code == 0
    record = result.record
    clouds = Counter(r["type"].split(":")[0] for r in record["resources"])
    parties = {p.cloud for p in parse(read_stack_file(REPO_ROOT / f"Pulumi.{stack}.yaml")).collaboration.parties}
    for cloud in parties:
        assert clouds[{"azure": "azure-native"}.get(cloud, cloud)] > 0, cloud
    assert record["key_release"], "every ccp stack simulates key release"
    assert all(row["decision"] == row["expected"] for row in record["key_release"])
    assert {row["case"] for row in record["key_release"]} >= {
        "approved-production", "debug-mode", "unapproved-image", "other-collaboration", "no-attestation",
    }
