"""The review's privacy section: the budget and its planned spends, as the program declared them."""

from __future__ import annotations

from pathlib import Path

from policies.review import privacy
from policies.review.run import REPO_ROOT, run_review


def test_hospitals_review_shows_the_budget_and_the_planned_spends(tmp_path: Path) -> None:
    result = run_review(REPO_ROOT, "hospitals", tmp_path, packs=[])
    assert result.exit_code == 0, result.problems
    assert result.record["privacy"] == {
        "classifications": ["phi"],
        "outputs": ["sepsis-model", "validation-metrics"],
        "budget": {"epsilon": 10.0, "delta": 1e-6, "outputs": ["validation-metrics", "sepsis-model"]},
        "planned": [
            {"mechanism": "dp-standardizer", "output": "sepsis-model", "epsilon": 1.0, "delta": 0.0},
            {"mechanism": "dp-fedavg", "output": "sepsis-model", "epsilon": 8.0, "delta": 1e-6},
        ],
        "uncharged": [],
        "unplanned_epsilon": "1.0",
    }
    text = (tmp_path / "review-hospitals.md").read_text()
    assert "## Privacy budget" in text
    assert "| dp-fedavg | `sepsis-model` | 8.0 | 1e-06 |" in text
    assert "Left for the DP queries the job runs against the ledger: epsilon 1.0." in text


def test_an_output_no_budget_charges_is_named() -> None:
    summary = {"classifications": ["pci"], "outputs": ["fraud-model"], "budget": None, "planned": [],
               "uncharged": ["fraud-model"]}
    text = privacy.markdown(summary)
    assert "No differential-privacy budget is declared" in text and "the data is pci, so no release is DP" in text
    assert "Outputs no budget charges (not DP): `fraud-model`." in text
