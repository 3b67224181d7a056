"""The operator cases of the key-release matrix: `operator-repolicies-key` and
`operator-runs-code-on-host`, for every party key of both examples, and weakened documents that
each case must catch (these fail if the case is removed from the matrix)."""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

import pytest

from components.attestation.aws_key_policy import SID_ALLOW_ENCLAVE, SID_DENY_UNATTESTED
from components.attestation.azure_release_policy import decode_release_policy, encode_release_policy
from policies.review import project
from policies.review.key_release import claims, mismatches, operator, simulate
from policies.review.key_release.simulate import azure_workloads, cases
from policies.review.mocks import Recording, RecordedResource, run_directory
from stacks import config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ("banks", "hospitals")
OPERATOR_CASES = ("operator-repolicies-key", "operator-runs-code-on-host")


@lru_cache(maxsize=None)
def _recorded(stack: str) -> tuple[Recording, config.StackConfig]:
    proj = project.load(ROOT, stack)
    settings = config.parse(config.from_config_texts(proj.config))
    return run_directory(proj.main, project=proj.name, stack=stack, config=proj.config), settings


def recorded(stack: str) -> tuple[Recording, config.StackConfig]:
    recording, settings = _recorded(stack)
    return copy.deepcopy(recording), settings


def row(rows: list[dict], party: str, case: str) -> dict:
    (found,) = [r for r in rows if r["party"] == party and r["case"] == case]
    return found


def party_key(recording: Recording, type_: str, party: str) -> RecordedResource:
    for resource in recording.of_type(type_):
        tags = resource.properties.get("labels" if type_.startswith("gcp:") else "tags") or {}
        if tags.get("party") == party and "PartyDataKey" in resource.urn:
            return resource
    raise AssertionError(f"no {type_} for {party}")


def added(recording: Recording, type_: str, name: str, properties: dict, deps: dict | None = None) -> None:
    recording.resources.append(
        RecordedResource(
            urn=f"urn:pulumi:test::ccp::{type_}::{name}",
            type=type_,
            name=name,
            custom=True,
            parent=None,
            dependencies=[],
            property_dependencies=deps or {},
            provider=None,
            properties=properties,
        )
    )


@pytest.mark.parametrize("stack", EXAMPLES)
def test_operator_cases_are_denied_for_every_party_key(stack: str) -> None:
    recording, settings = recorded(stack)
    rows = simulate(recording, settings)
    assert mismatches(rows) == []
    for party in settings.collaboration.parties:
        assert set(OPERATOR_CASES) <= set(cases(party.cloud))
        for case in OPERATOR_CASES:
            found = row(rows, party.name, case)
            assert (found["cloud"], found["expected"], found["decision"]) == (party.cloud, "deny", "deny")


def test_hospitals_cover_every_cloud() -> None:
    _, settings = recorded("hospitals")
    assert {p.cloud for p in settings.collaboration.parties} == {"aws", "azure", "gcp"}


# --- operator runs code on the host --------------------------------------------------------------


def test_aws_parent_instance_without_the_deny_if_null_is_released() -> None:
    """Without the Deny-if-Null statement, an Allow for the enclave role that a convenience edit left
    without attestation conditions lets the parent instance (SSM/SSH: the same role) decrypt."""
    recording, settings = recorded("banks")
    key = party_key(recording, "aws:kms/key:Key", "bank-north")
    policy = json.loads(key.properties["policy"])
    enclave = next(s for s in policy["Statement"] if s.get("Sid") == SID_ALLOW_ENCLAVE)
    policy["Statement"] = [s for s in policy["Statement"] if s.get("Sid") != SID_DENY_UNATTESTED] + [{"Sid": "ParentHealthCheck", "Effect": "Allow", "Principal": enclave["Principal"], "Action": "kms:Decrypt", "Resource": "*"}]
    key.properties["policy"] = json.dumps(policy)
    rows = simulate(recording, settings)
    assert row(rows, "bank-north", "operator-runs-code-on-host")["decision"] == "release"
    assert ("bank-north", "operator-runs-code-on-host") in {(r["party"], r["case"]) for r in mismatches(rows)}
    assert row(rows, "bank-south", "operator-runs-code-on-host")["decision"] == "deny"


def test_aws_policy_pinning_only_the_parent_registers_releases_to_the_operators_enclave() -> None:
    """PCR3 (role) and PCR4 (instance) identify the parent, not the image: an operator's own EIF on
    the same parent carries both."""
    recording, settings = recorded("banks")
    key = party_key(recording, "aws:kms/key:Key", "bank-south")
    policy = json.loads(key.properties["policy"])
    approved = claims.nitro_pcrs(settings.collaboration.measurements, "approved")
    parent_only = {
        "kms:RecipientAttestation:PCR3": approved["pcr3"],
        "kms:RecipientAttestation:PCR4": approved["pcr4"],
    }
    kept = []
    for statement in policy["Statement"]:
        if statement.get("Sid") == SID_ALLOW_ENCLAVE:
            statement["Condition"]["StringEqualsIgnoreCase"] = parent_only
        if statement["Effect"] == "Deny" and "StringNotEqualsIgnoreCase" in statement.get("Condition", {}):
            continue
        kept.append(statement)
    policy["Statement"] = kept
    key.properties["policy"] = json.dumps(policy)
    decisions = {r["case"]: r["decision"] for r in simulate(recording, settings) if r["party"] == "bank-south"}
    assert decisions["operator-runs-code-on-host"] == "release"


def test_azure_release_policy_pinning_no_hostdata_is_released_to_another_cce_policy() -> None:
    recording, settings = recorded("hospitals")
    key = party_key(recording, "azure-native:keyvault:Key", "hospital-azure")
    release = key.properties["properties"]["releasePolicy"]
    policy = decode_release_policy(release["data"])
    for authority in policy["anyOf"]:
        group = "allOf" if "allOf" in authority else "anyOf"
        authority[group] = [c for c in authority[group] if c.get("claim") != "x-ms-sevsnpvm-hostdata"]
    release["data"] = encode_release_policy(policy)
    rows = simulate(recording, settings)
    assert row(rows, "hospital-azure", "operator-runs-code-on-host")["decision"] == "release"
    assert ("hospital-azure", "operator-runs-code-on-host") in {(r["party"], r["case"]) for r in mismatches(rows)}


def test_gcp_condition_and_binding_without_the_digest_release_to_an_operator_container() -> None:
    """The digest is pinned twice (provider condition and the key's principalSet): drop both."""
    recording, settings = recorded("hospitals")
    (provider,) = recording.of_type("gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider")
    condition = provider.properties["attributeCondition"]
    head, _, _ = condition.partition(" && assertion.submods.container.image_digest in [")
    assert head != condition
    provider.properties["attributeCondition"] = head
    key = party_key(recording, "gcp:kms/cryptoKey:CryptoKey", "hospital-gcp")
    for member in recording.of_type("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"):
        if key.urn in member.property_dependencies.get("cryptoKeyId", []) or "hospital-gcp-key" in member.name:
            if "/attribute.image_digest/" in member.properties["member"]:
                member.properties["member"] = member.properties["member"].split("/attribute.image_digest/")[0] + "/*"
    rows = simulate(recording, settings)
    assert row(rows, "hospital-gcp", "operator-runs-code-on-host")["decision"] == "release"
    assert ("hospital-gcp", "operator-runs-code-on-host") in {(r["party"], r["case"]) for r in mismatches(rows)}


def test_gcp_condition_without_the_digest_alone_is_still_denied_by_the_binding() -> None:
    recording, settings = recorded("hospitals")
    (provider,) = recording.of_type("gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider")
    provider.properties["attributeCondition"] = provider.properties["attributeCondition"].partition(
        " && assertion.submods.container.image_digest in ["
    )[0]
    assert row(simulate(recording, settings), "hospital-gcp", "operator-runs-code-on-host")["decision"] == "deny"


# --- operator re-policies the key ----------------------------------------------------------------


def _vault_of(recording: Recording, key: RecordedResource) -> RecordedResource:
    (urn,) = key.property_dependencies["vaultName"]
    return next(r for r in recording.resources if r.urn == urn)


@pytest.mark.parametrize(
    ("role_id", "decision"),
    [
        ("14b46e9e-c2b7-41b4-b07b-48a6ebf60603", "release"),  # Key Vault Crypto Officer: keys/*
        ("00482a5a-887f-4fb3-b363-3b7fe8e74483", "release"),  # Key Vault Administrator: vaults/*
        ("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "release"),  # Owner: grants itself Crypto Officer
        ("f25e0fa2-a7c8-4377-a976-54943a77a395", "deny"),  # Key Vault Contributor: control plane only
        ("b24988ac-6180-42a0-ab88-20f7382dd24c", "deny"),  # Contributor: no data actions
    ],
)
def test_azure_role_on_the_vault_decides_who_re_policies_the_key(role_id: str, decision: str) -> None:
    recording, settings = recorded("hospitals")
    key = party_key(recording, "azure-native:keyvault:Key", "hospital-azure")
    vault = _vault_of(recording, key)
    added(
        recording,
        "azure-native:authorization:RoleAssignment",
        "operator-on-vault",
        {
            "roleDefinitionId": f"/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/{role_id}",
            "principalId": "11111111-2222-3333-4444-555555555555",
            "principalType": "User",
            "scope": "vault-id",
        },
        {"scope": [vault.urn]},
    )
    assert row(simulate(recording, settings), "hospital-azure", "operator-repolicies-key")["decision"] == decision


def test_azure_vault_with_access_policies_is_re_policied_by_key_vault_contributor() -> None:
    recording, settings = recorded("hospitals")
    key = party_key(recording, "azure-native:keyvault:Key", "hospital-azure")
    _vault_of(recording, key).properties["properties"]["enableRbacAuthorization"] = False
    rows = simulate(recording, settings)
    assert row(rows, "hospital-azure", "operator-repolicies-key")["decision"] == "release"
    paths = operator.azure_repolicy_paths(key, recording)
    assert any("access policies" in p for p in paths)


def test_azure_role_on_another_key_is_not_a_path() -> None:
    recording, _ = recorded("hospitals")
    key = party_key(recording, "azure-native:keyvault:Key", "hospital-azure")
    other = next(r for r in recording.of_type("azure-native:keyvault:Key") if r.urn != key.urn)
    added(
        recording,
        "azure-native:authorization:RoleAssignment",
        "officer-on-other-key",
        {"roleDefinitionId": "14b46e9e-c2b7-41b4-b07b-48a6ebf60603", "principalId": "x", "scope": "k"},
        {"scope": [other.urn]},
    )
    assert operator.azure_repolicy_paths(key, recording) == []


@pytest.mark.parametrize(
    ("type_", "props", "decision"),
    [
        ("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember", {"role": "roles/cloudkms.admin"}, "release"),
        ("gcp:projects/iAMMember:IAMMember", {"role": "roles/owner", "project": "ccp-mock-project"}, "release"),
        (
            "gcp:projects/iAMMember:IAMMember",
            {"role": "roles/iam.workloadIdentityPoolAdmin", "project": "ccp-mock-project"},
            "release",
        ),
        ("gcp:projects/iAMMember:IAMMember", {"role": "roles/viewer", "project": "ccp-mock-project"}, "deny"),
    ],
)
def test_gcp_bindings_that_re_policy_the_key_or_the_provider(type_: str, props: dict, decision: str) -> None:
    recording, settings = recorded("hospitals")
    key = party_key(recording, "gcp:kms/cryptoKey:CryptoKey", "hospital-gcp")
    deps = {"cryptoKeyId": [key.urn]} if "cryptoKey" in type_ else {}
    added(recording, type_, "operator-binding", {"member": "user:operator@example.com", **props}, deps)
    rows = simulate(recording, settings)
    assert row(rows, "hospital-gcp", "operator-repolicies-key")["decision"] == decision
    if decision == "release":
        assert ("hospital-gcp", "operator-repolicies-key") in {(r["party"], r["case"]) for r in mismatches(rows)}


# --- the Azure CVM path: a measured guest (vTPM PCRs) released through the collaboration's own policy ------

CVM_PCRS = {"4": "a4" * 32, "7": "a7" * 32, "11": "b1" * 32}
GUEST_POLICY = "ccp:azure:AttestationPolicy"


@lru_cache(maxsize=None)
def _recorded_cvm() -> tuple[Recording, config.StackConfig]:
    """The hospitals example with an Azure SEV-SNP confidential VM host added on the measured-guest path."""
    proj = project.load(ROOT, "hospitals")
    texts = dict(proj.config)
    collaboration = json.loads(texts["ccp:collaboration"])
    collaboration["workload"]["hosts"].append(
        {"cloud": "azure", "region": "westeurope", "tee": "sev-snp", "instanceType": "Standard_DC4as_v5"}
    )
    collaboration["measurements"]["azureCvm"] = {"pcrs": CVM_PCRS}
    texts["ccp:collaboration"] = json.dumps(collaboration)
    texts["ccp-azure:cvmOrchestratorObjectId"] = "3f1c8a52-6b0e-4d7a-9c11-2e5f0a7b9d44"
    settings = config.parse(config.from_config_texts(texts))
    return run_directory(proj.main, project=proj.name, stack="hospitals", config=texts), settings


def recorded_cvm() -> tuple[Recording, config.StackConfig]:
    recording, settings = _recorded_cvm()
    return copy.deepcopy(recording), settings


def test_cvm_path_is_in_the_matrix_and_every_case_holds() -> None:
    recording, settings = recorded_cvm()
    assert any(w.measured_guest for w in azure_workloads(settings))
    assert recording.of_type(GUEST_POLICY)
    rows = simulate(recording, settings)
    assert mismatches(rows) == []
    for case in cases("azure"):
        found = row(rows, "hospital-azure", case)
        assert found["decision"] == found["expected"], found
    assert {row(rows, "hospital-azure", c)["decision"] for c in OPERATOR_CASES} == {"deny"}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("linuxConfiguration.provisionVMAgent", True),
        ("allowExtensionOperations", True),
        ("linuxConfiguration.disablePasswordAuthentication", False),
    ],
)
def test_a_way_into_the_measured_guest_lets_the_operator_run_code_there(path: str, value: bool) -> None:
    recording, settings = recorded_cvm()
    (vm,) = recording.of_type("azure-native:compute:VirtualMachine")
    node = vm.properties["osProfile"]
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    assert operator.azure_guest_entry_paths(recording)
    assert row(simulate(recording, settings), "hospital-azure", "operator-runs-code-on-host")["decision"] == "release"


def test_an_ssh_key_other_than_the_no_access_one_lets_the_operator_run_code_there() -> None:
    recording, settings = recorded_cvm()
    (vm,) = recording.of_type("azure-native:compute:VirtualMachine")
    keys = vm.properties["osProfile"]["linuxConfiguration"]["ssh"]["publicKeys"]
    assert not operator.azure_guest_entry_paths(recording)  # ccp's own key: no login
    keys.append({"path": "/home/ccp/.ssh/authorized_keys", "keyData": "ssh-ed25519 AAAAC3Nza operator"})
    assert operator.azure_guest_entry_paths(recording) == [f"{vm.name}: an SSH key login"]
    assert row(simulate(recording, settings), "hospital-azure", "operator-runs-code-on-host")["decision"] == "release"


@pytest.mark.parametrize("type_", [
    "azure-native:compute:VirtualMachineRunCommandByVirtualMachine",
    "azure-native:compute/v20230301:VirtualMachineRunCommandByVirtualMachine",  # pinned to an API version
])
def test_a_run_command_resource_is_a_way_into_the_guest(type_: str) -> None:
    recording, settings = recorded_cvm()
    added(recording, type_, "operator-shell", {})
    assert row(simulate(recording, settings), "hospital-azure", "operator-runs-code-on-host")["decision"] == "release"


def test_the_recorded_attestation_policy_is_what_is_judged() -> None:
    """A recorded policy that no longer checks the PCRs has another x-ms-policy-hash: the approved guest gets
    nothing (the key pins the hash of the approved policy); with that pin removed too, another image gets the key."""
    recording, settings = recorded_cvm()
    (policy,) = recording.of_type(GUEST_POLICY)
    text = policy.properties["policy"]
    permit = next(line for line in text.splitlines() if line.strip().endswith("=> permit();"))
    issue = next(line for line in text.splitlines() if "=> issue(" in line)
    claim = issue.split("=> ", 1)[1]
    policy.properties["policy"] = text.replace(permit, "    => permit();").replace(issue, f"    => {claim}")
    rows = simulate(recording, settings)
    assert row(rows, "hospital-azure", "approved-production")["decision"] == "deny"

    key = party_key(recording, "azure-native:keyvault:Key", "hospital-azure")
    release_policy = decode_release_policy(key.properties["properties"]["releasePolicy"]["data"])
    for entry in release_policy["anyOf"]:
        entry["allOf"] = [c for c in entry["allOf"] if c.get("claim") != "x-ms-policy-hash"]
    key.properties["properties"]["releasePolicy"]["data"] = encode_release_policy(release_policy)
    rows = simulate(recording, settings)
    assert row(rows, "hospital-azure", "unapproved-image")["decision"] == "release"


def test_every_policy_pack_passes_the_cvm_path() -> None:
    """The whole zero-trust pack and the simulation over the CVM recording: the measured-guest release, the
    platform's disk key (Microsoft's policy), the approved set with the PCR claim and the closed VM pass."""
    from policies.review import analyzer
    from policies.review.run import evaluate

    recording, settings = recorded_cvm()
    analysis, rows, _ = evaluate(recording, settings, "hospitals", analyzer.discover_packs())
    assert [(v.policy, v.message) for v in analysis.violations if v.enforcement == "mandatory"] == []
    assert mismatches(rows) == []

    (vm,) = recording.of_type("azure-native:compute:VirtualMachine")
    vm.properties["osProfile"]["linuxConfiguration"]["provisionVMAgent"] = True
    analysis, rows, _ = evaluate(recording, settings, "hospitals", analyzer.discover_packs())
    assert {v.policy for v in analysis.violations if v.enforcement == "mandatory"} >= {
        "azure-compute-vm-disallow-operator-access"
    }
    assert row(rows, "hospital-azure", "operator-runs-code-on-host")["decision"] == "release"
