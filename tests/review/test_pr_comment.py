"""The pull-request comment the CI workflow posts: rendered from real reviews of every example stack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policies.review.comment import LIMIT, MARKER, render
from policies.review.run import REPO_ROOT, run_review

EXAMPLES = ("dev", "prod", "hospitals", "banks")


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reviews")
    for stack in EXAMPLES:
        assert run_review(REPO_ROOT, stack, out).exit_code == 0, stack
    return out


def test_comment_from_every_example(reviewed: Path) -> None:
    body = render(reviewed)
    assert body.startswith(MARKER + "\n## ccp review\n")
    table = [line for line in body.splitlines() if line.startswith("| `")]
    assert table == [f"| `{s}` | ✅ PASS | 0 | 0 | 0 |" for s in sorted(EXAMPLES)]
    assert "### Mandatory violations" not in body
    for stack in EXAMPLES:
        assert f"<summary>Full report: <code>{stack}</code></summary>" in body
    assert len(body) <= LIMIT


def test_a_failing_stack_is_spelled_out_and_the_comment_fits(reviewed: Path, tmp_path: Path) -> None:
    record = json.loads((reviewed / "review-dev.json").read_text())
    record["stack"] = "broken"
    record["violations"] = [
        {"policy": f"rule-{i}", "urn": f"urn:pulumi:broken::ccp::aws:kms/key:Key::key-{i}", "enforcement": "mandatory",
         "message": "line one\nline two"}
        for i in range(50)
    ] + [{"policy": "soft", "urn": "u::x", "enforcement": "advisory", "message": "m"}]
    record["key_release"] = [{"decision": "release", "expected": "deny"}]
    (tmp_path / "review-broken.json").write_text(json.dumps(record))
    (tmp_path / "review-broken.md").write_text("x" * (2 * LIMIT))  # a report far over GitHub's limit
    body = render(tmp_path)
    assert "| `broken` | ❌ FAIL | 50 | 1 | 1 |" in body
    assert "- `broken` **rule-0** on `key-0`: line one line two" in body
    assert "**rule-39**" in body and "**rule-40**" not in body and "… and 10 more" in body
    assert body.rstrip().endswith("</details>") and "full report is in the workflow's `review` artifact" in body
    assert len(body) <= LIMIT


def test_no_report_says_where_to_look(tmp_path: Path) -> None:
    assert render(tmp_path) == f"{MARKER}\n## ccp review\n\nNo review report was written: see the `review` job's log.\n"
