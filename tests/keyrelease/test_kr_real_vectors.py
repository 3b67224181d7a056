"""Real vendor evidence against the policies the stack generates, through the same derivations the key
services' stand-ins use: a genuine Nitro enclave that is not ours, and a genuine Azure SEV-SNP report,
must be refused; the same documents with only the bound value replaced by the approved one are
released, so the refusal is the binding's doing (and the test can fail)."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest

from components.attestation.azure_release_policy import decode_release_policy
from enclave_runtime.attest import Collateral, verify
from enclave_runtime.attest.collateral import AMD_SERIAL_ZERO_WARNING
from policies.review.key_release import aws, azure
from policies.review.mocks import Recording, unwrapped
from policies.review.run import REPO_ROOT, run_review
from tests.runtime.vectors import path, read, when

ENCLAVE_ROLE = "arn:aws:iam::111122223333:role/ccp-dev-demo-dev-enclave"


@pytest.fixture(scope="module")
def dev() -> Recording:
    result = run_review(REPO_ROOT, "dev", None, packs=[])
    assert result.exit_code == 0, result.problems
    assert result.recording is not None
    return result.recording


def _party_key(recording: Recording, type_: str, party: str) -> dict[str, Any]:
    return next(
        unwrapped(r) for r in recording.of_type(type_)
        if unwrapped(r).get("tags", {}).get("party") == party and unwrapped(r).get("tags", {}).get("ccp-key-purpose") == "party-data"
    )


def _real_nitro_pcrs(name: str, at: str) -> dict[str, str]:
    claims = verify("aws-nitro", read(name), at=when(at))
    return {f"pcr{i}": value.hex() for i, value in claims.pcrs.items()}  # type: ignore[attr-defined]


def _decrypt(policy: dict[str, Any], pcrs: dict[str, str]) -> str:
    context = aws.base_context(ENCLAVE_ROLE) | aws.attestation_context(pcrs)
    return aws.evaluate(policy, aws.Request(ENCLAVE_ROLE, "kms:Decrypt", context))


@pytest.mark.parametrize(
    ("name", "at"),
    [
        ("aws-nitro/nitro_evervault_beta_20221013.cbor", "2022-10-13T08:58:02.136+00:00"),
        ("aws-nitro/nitro_evervault_ga_debugmode_20230918.b64", "2023-09-18T15:03:30.860+00:00"),
    ],
    ids=["production-enclave-not-ours", "debug-mode-enclave"],
)
def test_a_genuine_nitro_enclave_that_is_not_the_approved_build_is_refused(dev: Recording, name: str, at: str) -> None:
    policy = json.loads(_party_key(dev, "aws:kms/key:Key", "clinic-aws")["policy"])
    real = _real_nitro_pcrs(name, at)
    assert _decrypt(policy, real) == "deny"
    # Control: the same genuine document with the pinned registers replaced by the approved values.
    allow = next(s for s in policy["Statement"] if s.get("Sid") == "AllowDecryptByAttestedEnclave")
    pinned = allow["Condition"]["StringEqualsIgnoreCase"]
    approved = {"pcr0": pinned["kms:RecipientAttestation:ImageSha384"], "pcr8": pinned["kms:RecipientAttestation:PCR8"]}
    assert _decrypt(policy, real | approved) == "allow"


def test_a_genuine_azure_snp_report_is_refused_by_the_container_binding(dev: Recording) -> None:
    key = _party_key(dev, "azure-native:keyvault:Key", "clinic-azure")
    policy = decode_release_policy(key["properties"]["releasePolicy"]["data"])
    [authority] = azure.authorities(policy)
    report = read("amd-sev-snp/snp_azure_genoa_v3_report.bin")
    collateral = Collateral.from_files([path("amd-sev-snp/snp_azure_genoa_vcek.pem"), path("amd-sev-snp/ask_ark_genoa.pem")])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=AMD_SERIAL_ZERO_WARNING)
        verified = verify("amd-sev-snp", report, collateral=collateral, at=when("2025-06-01T00:00:00+00:00"))
    claims = azure.sev_snp_vm_claims(verified, report, {"keys": []}, authority)
    assert claims["x-ms-sevsnpvm-hostdata"] == verified.host_data.hex()  # type: ignore[attr-defined]
    assert azure.evaluate(policy, claims) is False
    # Control: only the host data (the CCE policy hash the policy pins) replaced; VMPL and debug as the policy wants.
    pinned = next(c["equals"] for c in policy["anyOf"][0]["allOf"] if c["claim"] == "x-ms-sevsnpvm-hostdata")
    fixed = claims | {"x-ms-sevsnpvm-hostdata": pinned, "x-ms-sevsnpvm-vmpl": 0, "x-ms-sevsnpvm-is-debuggable": False}
    assert azure.evaluate(policy, fixed) is True
