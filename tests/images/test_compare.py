"""tools/compare_measurements.py: the CI step that checks the image build against the signed contract.

The computed files are written by `tools.measurements.render`, exactly as `make measurements` writes them:
equal -> 0, a differing field -> 1 naming it, a value not computed (or a refused build) -> 2, never a match.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from tools import compare_measurements as compare
from tools import measurements as tool

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "stacks/contracts/prod.json"


def _contract() -> dict:
    return json.loads(CONTRACT.read_text())


def _computed(tmp_path: Path, values: dict, missing: list[str] = (), problems: list[str] = ()) -> Path:  # type: ignore[assignment]
    """A file as `make measurements` writes it: complete, or partial with what was not computed and why."""
    result = tool.Result(values=copy.deepcopy(values), missing=list(missing), problems=list(problems))
    complete = not missing and not problems
    path = tmp_path / ("measurements-prod.yaml" if complete else "measurements-prod.partial.yaml")
    path.write_text(tool.render(result, "build-0123456789ab", "prod", complete))
    return path


def _signed_values() -> dict:
    return {k: v for k, v in _contract()["measurements"].items() if k != "version"}


def _claims_match(out: str) -> bool:
    return any(line.startswith("MATCH:") for line in out.splitlines())


def _run(tmp_path: Path, computed: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = compare.main(["--stack", "prod", "--contract", str(CONTRACT), "--computed", str(computed), *extra])
    return code, capsys.readouterr().out


def test_equal_build_matches_the_signed_digest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(tmp_path, _computed(tmp_path, _signed_values()), capsys)
    assert code == 0, out
    assert f"MATCH: every signed measurement was recomputed from the build; digest {_contract()['digest']}" in out
    assert "  equal          nitro.pcr0" in out and "  equal          confidentialSpace.imageDigests" in out


def test_the_version_label_is_not_a_measurement(tmp_path: Path) -> None:
    """The build names itself build-<commit>; the contract its release: only the values are compared."""
    computed, _, _ = compare.read_computed(_computed(tmp_path, _signed_values()))
    assert computed["version"] == "build-0123456789ab"
    assert compare.compare(_contract(), computed).status == compare.EQUAL


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("nitro", "pcr0", "ab" * 48),
        ("confidentialSpace", "imageDigests", ["sha256:" + "cd" * 32]),
        ("sevSnp", "hostData", "ef" * 32),
        ("nitro", "pin", ["pcr0"]),
    ],
)
def test_a_differing_field_fails_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str, key: str, value: object
) -> None:
    values = _signed_values()
    values[section][key] = value
    code, out = _run(tmp_path, _computed(tmp_path, values), capsys, "--github")
    assert code == 1, out
    (line,) = [x for x in out.splitlines() if x.startswith("  DIFFERENT")]
    assert line.startswith(f"  DIFFERENT      {section}.{key}: the contract has ")
    assert f"::error title=measurements differ (prod)::{section}.{key}: " in out
    assert "MISMATCH" in out and not _claims_match(out)


def test_a_value_not_computed_is_a_notice_not_a_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    values = _signed_values()
    del values["nitro"]
    missing = ["nitro.pcr0/pcr1/pcr2: nitro-cli is not installed (the AWS Nitro Enclaves CLI)",
               "nitro.pcr8: the stack pins pcr8 but no signing certificate was given"]
    code, out = _run(tmp_path, _computed(tmp_path, values, missing), capsys, "--github")
    assert code == 2, out
    assert "  NOT COMPUTED   nitro.pcr0: nitro-cli is not installed (the AWS Nitro Enclaves CLI)" in out
    assert "  NOT COMPUTED   nitro.pcr8: the stack pins pcr8 but no signing certificate was given" in out
    assert "::notice title=measurement not computed (prod)::nitro.pcr0: nitro-cli is not installed" in out
    assert "NOT VERIFIED" in out and not _claims_match(out)
    assert "  equal          confidentialSpace.imageDigests" in out


def test_a_placeholder_refusal_is_never_a_match(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The tool refused the build (placeholder base-image digest): even equal values are not a match."""
    problems = ["unpinned build input (placeholder refused): images/nitro/Dockerfile:22: ARG BASE_IMAGE=python@sha256:REPLACE_ME"]
    code, out = _run(tmp_path, _computed(tmp_path, _signed_values(), problems=problems), capsys, "--github")
    assert code == 2, out
    assert "  REFUSED BUILD  unpinned build input (placeholder refused)" in out
    assert "::notice title=measurement not computed (prod)::refused: unpinned build input" in out
    assert not _claims_match(out)


def test_a_difference_outweighs_what_was_not_computed(tmp_path: Path) -> None:
    values = _signed_values()
    del values["sevSnp"]
    values["nitro"]["pcr8"] = "00" * 47 + "01"
    computed, missing, refused = compare.read_computed(_computed(tmp_path, values, ["sevSnp.ccePolicy/hostData: az confcom is not available"]))
    result = compare.compare(_contract(), computed, missing, refused)
    assert result.status == compare.DIFFERENT
    assert [d.split(":")[0] for d in result.different] == ["nitro.pcr8"]
    assert "sevSnp.hostData: az confcom is not available" in result.not_computed
    assert ("sevSnp.launchMeasurement: its section was not computed (sevSnp.ccePolicy/hostData: az confcom is not "
            "available)") in result.not_computed


def test_fields_the_contract_does_not_list_are_not_compared(tmp_path: Path) -> None:
    values = _signed_values()
    values["nitro"]["pcr1"] = "11" * 48
    computed, _, _ = compare.read_computed(_computed(tmp_path, values))
    result = compare.compare(_contract(), computed)
    assert result.status == compare.EQUAL and result.extra == ["nitro.pcr1"]


def test_a_contract_whose_digest_is_not_its_own_fails(tmp_path: Path) -> None:
    contract = _contract()
    contract["measurements"]["nitro"]["pcr0"] = "ab" * 48  # edited without re-signing
    computed, _, _ = compare.read_computed(_computed(tmp_path, _signed_values()))
    result = compare.compare(contract, computed)
    assert result.status == compare.DIFFERENT
    assert "is not the digest of its own measurements" in result.errors[0]


def test_a_field_of_a_section_not_computed_at_all_has_a_default_reason(tmp_path: Path) -> None:
    values = _signed_values()
    del values["sevSnp"]
    computed, _, _ = compare.read_computed(_computed(tmp_path, values, ["nitro.pcr3: the parent's IAM role"]))
    result = compare.compare(_contract(), computed, [], [])
    assert "sevSnp.hostData: not in the computed set (see the `make measurements` output)" in result.not_computed
    assert result.status == compare.NOT_COMPUTED


def test_no_computed_file_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(tmp_path, tmp_path / "measurements-prod.yaml", capsys)
    assert code == 1 and "no such file (run `make measurements STACK=prod` first)" in out


@pytest.mark.parametrize("stack", sorted(p.stem for p in (ROOT / "stacks/contracts").glob("*.json")))
def test_every_shipped_contract_matches_its_own_values(tmp_path: Path, stack: str) -> None:
    contract = json.loads((ROOT / f"stacks/contracts/{stack}.json").read_text())
    values = {k: v for k, v in contract["measurements"].items() if k != "version"}
    computed, _, _ = compare.read_computed(_computed(tmp_path, values))
    assert compare.compare(contract, computed).status == compare.EQUAL
