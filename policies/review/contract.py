"""The measurement contract in the review: who has and has not signed the measurements the key
policies are generated from (`components/attestation/contract.py`).

In prod every party's valid signature must cover exactly the stack's `ccp:collaboration.measurements`
(its digest is recomputed here from the typed config the program declares the key policies from):
each party that has not, and each problem with the contract file, is a mandatory violation naming
it. In other environments the same findings are advisory, so a dev change shows who still has to sign.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.attestation.contract import ContractStatus
from policies.review.analyzer import Violation

POLICY = "ccp-measurement-contract"


def status(settings: Any, root: Path, stack: str) -> ContractStatus | None:
    """The contract status of a ccp stack (None for other programs)."""
    if settings is None:
        return None
    from stacks.contract import status as stack_status

    return stack_status(settings, Path(root), stack)


def violations(result: ContractStatus | None, stack: str, enforce: bool) -> list[Violation]:
    if result is None:
        return []
    fix = f"python -m stacks.contract sign --stack {stack} --party <party> --key <its private key>"
    covering = f"measurements {result.version} ({result.digest})"
    found = [
        Violation(
            policy=POLICY,
            pack="ccp-review",
            urn="",
            enforcement="mandatory" if enforce else "advisory",
            severity="critical",
            message=(
                f"party {p.party}: no valid signature on {covering} in {result.path}: {p.reason}; "
                f"re-sign with `{fix.replace('<party>', p.party)}`"
            ),
        )
        for p in result.parties
        if not p.valid
    ]
    found += [
        Violation(
            policy=POLICY, pack="ccp-review", urn="", enforcement="mandatory" if enforce else "advisory",
            severity="critical", message=f"measurement contract: {problem}",
        )
        for problem in result.problems
        # "no contract file" is already said once per party above
        if not problem.endswith("no party has signed the measurements") or not result.parties
    ]
    return found


def record(result: ContractStatus | None) -> dict[str, Any] | None:
    """The review JSON's `contract`: {version, digest, parties: [{party, signed, valid}], ...}."""
    return None if result is None else result.record()


def markdown(result: ContractStatus | None) -> str:
    if result is None:
        return ""
    lines = [
        "## Measurement contract",
        "",
        f"`{result.path}`: measurements **{result.version}**, digest `{result.digest}` "
        "(recomputed from the stack's `ccp:collaboration.measurements`, which the key policies are generated from).",
        "",
        "| party | signed | valid | note |",
        "|---|---|---|---|",
    ]
    for p in result.parties:
        note = p.reason.replace("|", "\\|")
        lines.append(f"| {p.party} | {'yes' if p.signed else 'no'} | {'✅ yes' if p.valid else '❌ no'} | {note} |")
    lines.append("")
    if result.problems:
        lines += [f"- {problem}" for problem in result.problems] + [""]
    signed = [p.party for p in result.parties if p.valid]
    missing = [p.party for p in result.parties if not p.valid]
    if missing:
        lines.append(
            f"Signed: {', '.join(signed) or 'nobody'}. **Not (validly) signed: {', '.join(missing)}.**"
        )
    else:
        lines.append("Every party has signed exactly these measurements.")
    return "\n".join(lines) + "\n"
