"""The measurement contract in the review: prod fails (exit 1) naming every party whose valid
signature does not cover the stack's measurements; other environments only warn."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest

from components.attestation import contract
from policies.review.run import run_review

ROOT = Path(__file__).resolve().parents[2]
PARTIES = ["clinic-aws", "clinic-azure", "lab-gcp"]


def program_copy(tmp_path: Path, stack: str, stack_edit: Callable[[str], str] = lambda t: t,
                 contract_edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """The repository's program and one stack file (edited) with its contract (edited), in tmp."""
    program = tmp_path / "prog"
    program.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", program / "Pulumi.yaml")
    # The program is the repository's, whatever directory and interpreter the review runs it from.
    (program / "__main__.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nfrom stacks.program import main\nmain()\n"
    )
    text = (ROOT / f"Pulumi.{stack}.yaml").read_text()
    edited = stack_edit(text)
    assert edited != text or stack_edit.__name__ == "<lambda>"
    (program / f"Pulumi.{stack}.yaml").write_text(edited)
    target = contract.contract_path(program, stack)
    target.parent.mkdir(parents=True)
    document = json.loads(contract.contract_path(ROOT, stack).read_text())
    if contract_edit is not None:
        contract_edit(document)
    target.write_text(json.dumps(document, indent=2))
    return program


def review(program: Path, stack: str, out: Path) -> tuple[int, dict[str, Any], str]:
    result = run_review(program, stack, out, packs=[])
    assert result.exit_code in (0, 1), result.problems
    return result.exit_code, json.loads((out / f"review-{stack}.json").read_text()), (out / f"review-{stack}.md").read_text()


def contract_violations(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in record["violations"] if v["policy"] == "ccp-measurement-contract"]


def change_pcr0(text: str) -> str:
    old = "pcr0: c28c5a1e280a5d74d20e3aaac3f9d9323b3c628cdd4c81c50ea060868195fac82327db2f2eceef623722102def266bfd"
    assert old in text
    return text.replace(old, old[:-1] + "e")  # one hex digit of one PCR


def test_changed_prod_measurement_without_resigning_fails_naming_every_party(tmp_path: Path) -> None:
    code, record, markdown = review(program_copy(tmp_path, "prod", change_pcr0), "prod", tmp_path / "out")
    assert code == 1
    violations = contract_violations(record)
    assert {v["enforcement"] for v in violations} == {"mandatory"}
    for party in PARTIES:
        assert any(v["message"].startswith(f"party {party}: ") and "stale signature" in v["message"] for v in violations)
    assert record["contract"]["digest"] != json.loads(contract.contract_path(ROOT, "prod").read_text())["digest"]
    assert [(p["party"], p["signed"], p["valid"]) for p in record["contract"]["parties"]] == [(p, True, False) for p in PARTIES]
    assert "## Measurement contract" in markdown
    assert "**Not (validly) signed: clinic-aws, clinic-azure, lab-gcp.**" in markdown


def _without(party: str) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.update(signatures=[s for s in d["signatures"] if s["party"] != party])


def _forged(party: str) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        other = next(s for s in document["signatures"] if s["party"] != party)
        next(s for s in document["signatures"] if s["party"] == party)["signature"] = other["signature"]
    return change


@pytest.mark.parametrize(
    ("contract_edit", "party", "signed", "reason"),
    [(_without("clinic-azure"), "clinic-azure", False, "has not signed"),
     (_forged("lab-gcp"), "lab-gcp", True, "does not verify")],
    ids=["missing", "invalid"],
)
def test_prod_with_a_missing_or_invalid_signature_fails_naming_the_party(
    tmp_path: Path, contract_edit: Any, party: str, signed: bool, reason: str
) -> None:
    code, record, markdown = review(program_copy(tmp_path, "prod", contract_edit=contract_edit), "prod", tmp_path / "out")
    assert code == 1
    (violation,) = contract_violations(record)
    assert violation["enforcement"] == "mandatory" and violation["message"].startswith(f"party {party}: ")
    assert reason in violation["message"]
    rows = {p["party"]: (p["signed"], p["valid"]) for p in record["contract"]["parties"]}
    assert rows == {p: (signed, False) if p == party else (True, True) for p in PARTIES}
    assert f"**Not (validly) signed: {party}.**" in markdown


def test_dev_with_a_stale_contract_only_warns(tmp_path: Path) -> None:
    def change_dev(text: str) -> str:
        assert "version: dev-2026.11.1" in text
        return text.replace("version: dev-2026.11.1", "version: dev-2026.11.2")

    code, record, _ = review(program_copy(tmp_path, "dev", change_dev), "dev", tmp_path / "out")
    assert code == 0
    violations = contract_violations(record)
    assert len(violations) == 3 and {v["enforcement"] for v in violations} == {"advisory"}
    assert record["contract"]["version"] == "dev-2026.11.2"
    assert not any(p["valid"] for p in record["contract"]["parties"])
