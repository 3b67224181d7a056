"""The stand-ins enforce what a review recorded: one review of each stack per test session (and xdist worker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies.review.mocks import Recording
from policies.review.run import REPO_ROOT, run_review
from standins.stack import load


def _report(tmp_path_factory: pytest.TempPathFactory, stack: str) -> Path:
    out = tmp_path_factory.mktemp(f"review-{stack}")
    result = run_review(REPO_ROOT, stack, out, packs=[])
    assert result.exit_code == 0, result.problems
    return out / f"review-{stack}.json"


@pytest.fixture(scope="session")
def dev_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`review-dev.json` of this checkout's dev stack, written for this session."""
    return _report(tmp_path_factory, "dev")


@pytest.fixture(scope="session")
def dev_recording(dev_report: Path) -> Recording:
    return load(dev_report)
