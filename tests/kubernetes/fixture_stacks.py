"""The Kubernetes fixture stacks are Pulumi.dev.yaml plus one host: one check that they have not drifted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from policies.review.run import REPO_ROOT

PROGRAM = Path(__file__).parent / "program"


def assert_dev_plus_host(stack: str, host: dict[str, Any]) -> None:
    """`Pulumi.<stack>.yaml` must be the dev stack's config with `host` appended (regenerate it when dev changes)."""
    fixture = yaml.safe_load((PROGRAM / f"Pulumi.{stack}.yaml").read_text())["config"]
    dev = yaml.safe_load((REPO_ROOT / "Pulumi.dev.yaml").read_text())["config"]
    hosts = fixture["ccp:collaboration"]["workload"]["hosts"]
    assert hosts[-1] == host
    fixture["ccp:collaboration"]["workload"]["hosts"] = hosts[:-1]
    assert fixture == dev
