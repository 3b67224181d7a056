"""The container-group hostdata binding, judged against Microsoft's documented shapes (not the
generator's own output).

Sources:
- the release policy of the SKR sidecar for confidential containers on ACI (microsoft/confidential-sidecar-containers,
  examples/skr; Microsoft Learn "Secure Key Release with Confidential containers on Azure Container Instance"):
  top-level `x-ms-attestation-type` = `sevsnpvm`, `x-ms-compliance-status` = `azure-compliant-uvm`,
  `x-ms-sevsnpvm-hostdata` = the SHA-256 of the CCE policy, `x-ms-sevsnpvm-is-debuggable` = false;
- the MAA token of a confidential container group: those claims at the top level of the token (no
  `x-ms-isolation-tee` wrapper, which is the confidential-VM guest layout);
- hostdata = SHA-256 of the decoded `ccePolicy` (the container group's security policy).

Each stack's Azure data key, as the program records it, must release to the approved container group and to
nothing else: another policy hash, a debuggable group, and a confidential VM presenting the same values.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from typing import Any

import pytest

from components.attestation.azure_release_policy import decode_release_policy
from policies.review.key_release import azure
from policies.review.mocks import Recording, RecordedResource
from stacks import config

from tests.keyrelease.test_kr_simulate import recorded
from tests.support import read_stack

AZURE_PARTY = {"dev": "clinic-azure", "prod": "clinic-azure", "hospitals": "hospital-azure"}
OTHER_HOSTDATA = hashlib.sha256(b"package policy\n# another container group's policy\n").hexdigest()


def documented_conditions(host_data: str) -> list[dict[str, Any]]:
    """The conditions of Microsoft's documented SKR policy for a confidential container group."""
    return [
        {"claim": "x-ms-attestation-type", "equals": "sevsnpvm"},
        {"claim": "x-ms-compliance-status", "equals": "azure-compliant-uvm"},
        {"claim": "x-ms-sevsnpvm-hostdata", "equals": host_data},
        {"claim": "x-ms-sevsnpvm-is-debuggable", "equals": False},
    ]


def container_token(issuer: str, host_data: str, *, debuggable: bool = False) -> dict[str, Any]:
    """An MAA token of a confidential container group: the SNP claims at the top level."""
    return {
        "iss": issuer.rstrip("/"),
        "x-ms-ver": "1.0",
        "x-ms-attestation-type": "sevsnpvm",
        "x-ms-compliance-status": "azure-compliant-uvm",
        "x-ms-sevsnpvm-hostdata": host_data,
        "x-ms-sevsnpvm-is-debuggable": debuggable,
        "x-ms-sevsnpvm-vmpl": 0,
    }


def cvm_token(issuer: str, host_data: str) -> dict[str, Any]:
    """A confidential VM's guest token with the same SNP values: nested under x-ms-isolation-tee."""
    return {
        "iss": issuer.rstrip("/"),
        "x-ms-ver": "1.0",
        "x-ms-attestation-type": "azurevm",
        "x-ms-isolation-tee": {
            "x-ms-attestation-type": "sevsnpvm",
            "x-ms-compliance-status": "azure-compliant-cvm",
            "x-ms-sevsnpvm-hostdata": host_data,
            "x-ms-sevsnpvm-is-debuggable": False,
            "x-ms-sevsnpvm-vmpl": 0,
        },
    }


def _data_key(recording: Recording, party: str) -> RecordedResource:
    for resource in recording.of_type("azure-native:keyvault:Key"):
        tags = resource.properties.get("tags") or {}
        if tags.get("party") == party and tags.get("ccp-key-purpose") == "party-data":
            return resource
    raise AssertionError(f"no Azure data key for {party}")


def _approved(stack: str) -> tuple[dict[str, Any], str]:
    recording, settings = recorded(stack)
    key = _data_key(recording, AZURE_PARTY[stack])
    policy = decode_release_policy(key.properties["properties"]["releasePolicy"]["data"])
    # The approved hash is what the stack's CCE policy hashes to, computed here from the policy itself.
    snp = read_stack(stack)["collaboration"]["measurements"]["sevSnp"]
    return policy, hashlib.sha256(base64.b64decode(snp["ccePolicy"])).hexdigest()


@pytest.mark.parametrize("stack", sorted(AZURE_PARTY))
def test_the_data_key_policy_has_microsofts_container_group_conditions(stack: str) -> None:
    policy, host_data = _approved(stack)
    assert len(policy["anyOf"]) == 1
    conditions = policy["anyOf"][0]["allOf"]
    for condition in documented_conditions(host_data):
        assert condition in conditions, condition
    # nothing nested under the confidential-VM wrapper, no launch measurement
    assert not any(c["claim"].startswith("x-ms-isolation-tee") for c in conditions)
    assert not any("launchmeasurement" in c["claim"] for c in conditions)


@pytest.mark.parametrize("stack", sorted(AZURE_PARTY))
def test_only_the_approved_container_group_gets_the_key(stack: str) -> None:
    policy, host_data = _approved(stack)
    issuer = policy["anyOf"][0]["authority"]
    assert azure.evaluate(policy, container_token(issuer, host_data)) is True
    assert azure.evaluate(policy, container_token(issuer, OTHER_HOSTDATA)) is False
    assert azure.evaluate(policy, container_token(issuer, host_data, debuggable=True)) is False
    assert azure.evaluate(policy, cvm_token(issuer, host_data)) is False
    assert azure.evaluate(policy, None) is False


@pytest.mark.parametrize("stack", sorted(AZURE_PARTY))
def test_the_review_simulation_presents_the_container_group_cases(stack: str) -> None:
    from policies.review.key_release.simulate import simulate

    recording, settings = recorded(stack)
    rows = [r for r in simulate(recording, settings) if r["party"] == AZURE_PARTY[stack]]
    assert {r["case"]: r["decision"] for r in rows} == {
        "approved-production": "release",
        "debug-mode": "deny",
        "unapproved-image": "deny",
        "other-collaboration": "deny",
        "no-attestation": "deny",
        "operator-repolicies-key": "deny",
        "operator-runs-code-on-host": "deny",
    }


# --- config: one source of truth, and old CVM configs fail loudly -----------------------------------


def _problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(config.ConfigError) as error:
        config.parse(raw)
    return error.value.problems


def test_host_data_must_be_the_sha256_of_the_cce_policy() -> None:
    raw = copy.deepcopy(read_stack("prod"))
    raw["collaboration"]["measurements"]["sevSnp"]["hostData"] = OTHER_HOSTDATA
    (problem,) = _problems(raw)
    assert problem.startswith("ccp:collaboration.measurements.sevSnp: sevSnp.hostData")
    assert "is not the SHA-256 of sevSnp.ccePolicy" in problem


def test_an_azure_cvm_pinned_by_its_launch_measurement_is_refused_with_the_reason() -> None:
    """The pre-container-group config: an Azure SEV-SNP CVM host, sevSnp.launchMeasurement only."""
    raw = copy.deepcopy(read_stack("prod"))
    collab = raw["collaboration"]
    for host in collab["workload"]["hosts"]:
        if host["cloud"] == "azure":
            host.update({"tee": "sev-snp", "instanceType": "Standard_DC8as_v5"})
    collab["measurements"]["sevSnp"] = {"launchMeasurement": "a8" * 48}
    problems = _problems(raw)
    refused = [p for p in problems if p.startswith("ccp:collaboration.workload.hosts[1].tee:")]
    assert len(refused) == 1
    for part in ("paravisor", "not the guest or the workload",
                 "https://learn.microsoft.com/azure/confidential-computing/guest-attestation-confidential-virtual-machines-design",
                 "tee 'confidential-containers'", "ccePolicy", "hostData"):
        assert part in refused[0], part


def test_a_container_group_without_its_cce_policy_is_refused() -> None:
    raw = copy.deepcopy(read_stack("prod"))
    raw["collaboration"]["measurements"]["sevSnp"].pop("ccePolicy")
    problems = _problems(raw)
    assert any("measurements.sevSnp: an Azure confidential container group needs ccePolicy" in p for p in problems)
