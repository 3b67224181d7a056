"""The review's privacy section: the collaboration's differential-privacy budget and what is planned to spend it.

Read from what the program declared (the `ccp:index:Collaboration` component's inputs,
`components.collaboration.release_declaration`), so reviewers see the same declaration the rule
`stack-collaboration-output-enforce-dp` judges. Planned spends are the ones fixed in the stack (DP-FedAvg's
epsilon); the rest of the budget is what the runtime's ledger lets later DP queries spend
(enclave_runtime/ml/dp.py refuses any job that would exceed it).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from components.collaboration import COLLABORATION_TYPE as COLLABORATION
from policies.review.mocks import Recording


def _exact(value: Any) -> Decimal:
    return Decimal(str(value))


def summary(recording: Recording) -> dict[str, Any] | None:
    """{classifications, outputs, budget, planned, unplanned_epsilon, uncharged}; None without a collaboration."""
    found = recording.of_type(COLLABORATION)
    if not found:
        return None
    props = found[0].properties
    budget = props.get("privacy")
    planned = list(props.get("plannedSpends") or [])
    charged = set(budget["outputs"]) if budget else set()
    result: dict[str, Any] = {
        "classifications": list(props.get("dataClassifications") or []),
        "outputs": list(props.get("outputs") or []),
        "budget": budget,
        "planned": planned,
        "uncharged": [o for o in props.get("outputs") or [] if o not in charged],
    }
    if budget:
        fixed = [_exact(p["epsilon"]) for p in planned if p.get("epsilon") is not None]
        result["unplanned_epsilon"] = str(_exact(budget["epsilon"]) - sum(fixed, Decimal(0)))
    return result


def markdown(summary: dict[str, Any]) -> str:
    lines = ["## Privacy budget", ""]
    budget = summary["budget"]
    if budget is None:
        lines.append(
            f"No differential-privacy budget is declared (`ccp:collaboration.privacy`); the data is "
            f"{', '.join(summary['classifications']) or 'unclassified'}, so no release is DP."
        )
    else:
        lines.append(
            f"Total: epsilon {budget['epsilon']}, delta {budget['delta']}, spent by releases to "
            f"{', '.join(f'`{o}`' for o in budget['outputs'])} (the runtime's ledger refuses a job that would exceed it)."
        )
        lines += ["", "| planned spend | output | epsilon | delta |", "|---|---|---|---|"]
        for spend in summary["planned"]:
            epsilon = spend.get("epsilon")
            shown = epsilon if epsilon is not None else f"from noise multiplier {spend.get('noiseMultiplier')} at run time"
            lines.append(f"| {spend['mechanism']} | `{spend['output']}` | {shown} | {spend['delta']} |")
        lines += ["", f"Left for the DP queries the job runs against the ledger: epsilon {summary['unplanned_epsilon']}."]
    if summary["uncharged"]:
        lines += ["", "Outputs no budget charges (not DP): " + ", ".join(f"`{o}`" for o in summary["uncharged"]) + "."]
    return "\n".join(lines) + "\n"
