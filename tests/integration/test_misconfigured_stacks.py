"""Deliberately misconfigured copies of the prod stack's components are caught by the review.

Each case edits one recorded resource of the real prod program (the exact wire-form inputs the
analyzer sees) the way a careless or hostile pull request could, then runs the same evaluation as
`make review`: the expected mandatory violation must appear on that resource and must not be there
before the edit. The prod stack's Azure host is a confidential container group; the VM and NIC cases
edit a prod variant with a TDX confidential VM host added and no Azure party (no Azure data key may be
released to a CVM), so that they have a VM to edit.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any, Callable

import pytest

from policies.review import analyzer, project
from policies.review.mocks import Recording, RecordedResource, run_directory
from policies.review.run import KEY_RELEASE_POLICY, REPO_ROOT, ccp_settings, evaluate

from tests.support import with_tdx_cvm_host

STACK = "prod"
Edit = Callable[[dict[str, Any]], None]


def _record(edit: Callable[[dict[str, Any]], Any] | None = None) -> tuple[Recording, Any, list[analyzer.Pack]]:
    proj = project.load(REPO_ROOT, STACK)
    if edit is not None:
        collaboration = json.loads(proj.config["ccp:collaboration"])
        edit(collaboration)
        proj.config["ccp:collaboration"] = json.dumps(collaboration)
    recording = run_directory(proj.main, project=proj.name, stack=STACK, config=proj.config,
                              secret_keys=proj.secret_keys)
    return recording, ccp_settings(proj), analyzer.discover_packs()


@pytest.fixture(scope="module")
def prod() -> tuple[Recording, Any, list[analyzer.Pack]]:
    return _record()


@pytest.fixture(scope="module")
def cvm() -> tuple[Recording, Any, list[analyzer.Pack]]:
    """Prod with a TDX confidential VM added as an Azure host and no Azure party (an Azure data key is
    never released to a CVM pinned by MRTD: components/azure/checks.TDX_CVM_REFUSED)."""
    return _record(lambda collaboration: with_tdx_cvm_host(collaboration, replace=False))


def _find(recording: Recording, type_: str, predicate: Callable[[RecordedResource], bool]) -> RecordedResource:
    found = [r for r in recording.of_type(type_) if predicate(r)]
    assert found, f"the prod stack has no {type_} matching the case"
    return found[0]


def _tag(name: str, value: str) -> Callable[[RecordedResource], bool]:
    return lambda r: (r.properties.get("tags") or r.properties.get("labels") or {}).get(name) == value


def _name_has(part: str) -> Callable[[RecordedResource], bool]:
    return lambda r: part in r.name


def _key_policy(edit: Callable[[dict[str, Any]], None]) -> Edit:
    def apply(props: dict[str, Any]) -> None:
        policy = json.loads(props["policy"])
        edit(policy)
        props["policy"] = json.dumps(policy)

    return apply


def _drop_attestation(policy: dict[str, Any]) -> None:
    policy["Statement"] = [s for s in policy["Statement"] if s["Effect"] != "Deny"]
    for statement in policy["Statement"]:
        if statement.get("Sid") == "AllowDecryptByAttestedEnclave":
            statement.pop("Condition")


def _zero_pcrs(policy: dict[str, Any]) -> None:
    for statement in policy["Statement"]:
        for operator in statement.get("Condition", {}).values():
            for key in list(operator):
                if key.startswith("kms:RecipientAttestation:") and isinstance(operator[key], str):
                    operator[key] = "0" * 96


def _type_only_release_policy(props: dict[str, Any]) -> None:
    authority = json.loads(
        base64.urlsafe_b64decode(props["properties"]["releasePolicy"]["data"] + "==")
    )["anyOf"][0]["authority"]
    policy = {"version": "1.0.0", "anyOf": [{"authority": authority, "allOf": [
        {"claim": "x-ms-isolation-tee.x-ms-attestation-type", "equals": "sevsnpvm"},
    ]}]}
    props["properties"]["releasePolicy"]["data"] = (
        base64.urlsafe_b64encode(json.dumps(policy).encode()).decode().rstrip("=")
    )


def _wildcard_measurement(props: dict[str, Any]) -> None:
    """The data key's release policy with its measurement replaced by a wildcard (not a pin)."""
    policy = json.loads(base64.urlsafe_b64decode(props["properties"]["releasePolicy"]["data"] + "=="))
    for entry in policy["anyOf"]:
        for condition in entry["allOf"]:
            if condition["claim"].endswith(("x-ms-sevsnpvm-launchmeasurement", "x-ms-sevsnpvm-hostdata")):
                condition["equals"] = "*"
    props["properties"]["releasePolicy"]["data"] = (
        base64.urlsafe_b64encode(json.dumps(policy).encode()).decode().rstrip("=")
    )


def _set(path: str, value: Any) -> Edit:
    def apply(props: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = props
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        node[int(last) if last.isdigit() else last] = value

    return apply


def _delete(path: str) -> Edit:
    def apply(props: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = props
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]

    return apply


CASES: list[tuple[str, str, Callable[[RecordedResource], bool], Edit, set[str]]] = [
    ("enclave host with a public IP", "aws:ec2/instance:Instance", _name_has("fl-trainer"),
     _set("associatePublicIpAddress", True), {"aws-ec2-instance-disallow-public-ip"}),
    ("launch template without IMDS options (missing property)", "aws:ec2/launchTemplate:LaunchTemplate",
     _name_has("fl-trainer"), _delete("metadataOptions"), {"aws-ec2-instance-enforce-imdsv2"}),
    ("security group open to the internet", "aws:ec2/securityGroup:SecurityGroup", _name_has("workload"),
     _set("ingress", [{"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}]),
     {"aws-ec2-securitygroup-disallow-open-ingress"}),
    ("party key policy without attestation", "aws:kms/key:Key", _tag("ccp-key-purpose", "party-data"),
     _key_policy(_drop_attestation),
     {"aws-kms-key-enforce-attestation", "aws-kms-key-missing-unattested-deny", "ccp-key-release-simulation"}),
    ("party key policy pinning debug (all-zero) PCRs", "aws:kms/key:Key", _tag("ccp-key-purpose", "party-data"),
     _key_policy(_zero_pcrs), {"aws-kms-key-disallow-debug-pcr"}),
    ("bucket encryption switched to S3-managed keys",
     "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
     _name_has("storage-data"), _set("rules.0.applyServerSideEncryptionByDefault", {"sseAlgorithm": "AES256"}),
     {"aws-s3-bucket-enforce-cmk-encryption"}),
    ("Azure release policy checking only the TEE type", "azure-native:keyvault:Key", _name_has("data-key"),
     _type_only_release_policy, {"azure-keyvault-key-enforce-workload-claim", "ccp-key-release-simulation"}),
    ("Azure release policy matching the measurement with a wildcard", "azure-native:keyvault:Key",
     _name_has("data-key"), _wildcard_measurement, {"azure-keyvault-key-disallow-measurement-pattern"}),
    ("Azure NIC with a public IP", "azure-native:network:NetworkInterface", _name_has("nic"),
     _set("ipConfigurations.0.publicIPAddress", {"id": "/subscriptions/x/publicIPAddresses/pip"}),
     {"azure-network-networkinterface-disallow-public-ip"}),
    ("Azure storage allowing public blobs", "azure-native:storage:StorageAccount", _name_has("storage"),
     _set("allowBlobPublicAccess", True), {"azure-storage-storageaccount-disallow-public-access"}),
    ("Azure CVM without secure boot", "azure-native:compute:VirtualMachine", _name_has("vm"),
     _set("securityProfile.uefiSettings.secureBootEnabled", False), {"azure-compute-vm-enable-secure-boot-vtpm"}),
    ("Azure VM that is not confidential", "azure-native:compute:VirtualMachine", _name_has("vm"),
     _set("securityProfile.securityType", "TrustedLaunch"), {"azure-compute-vm-enforce-confidential"}),
    ("Confidential Space debug image in prod", "gcp:compute/instance:Instance", _name_has("cs-"),
     _set("bootDisk.initializeParams.image",
          "projects/confidential-space-images/global/images/family/confidential-space-debug"),
     {"gcp-compute-instance-disallow-debug-image"}),
    ("GCP VM without confidential computing", "gcp:compute/instance:Instance", _name_has("cs-"),
     _delete("confidentialInstanceConfig"), {"gcp-compute-instance-enforce-confidential"}),
    ("GCP VM with an external IP", "gcp:compute/instance:Instance", _name_has("cs-"),
     _set("networkInterfaces.0.accessConfigs", [{"networkTier": "PREMIUM"}]),
     {"gcp-compute-instance-disallow-public-ip"}),
    ("WIF provider condition that admits debug images",
     "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider", lambda r: True,
     lambda props: props.update(attributeCondition=props["attributeCondition"]
                                .replace("assertion.dbgstat == 'disabled-since-boot' && ", "")
                                .replace("'STABLE' in assertion.submods.confidential_space.support_attributes && ",
                                         "")),
     {"gcp-iam-workloadidentitypoolprovider-enforce-attestation-condition", "ccp-key-release-simulation"}),
    ("GCS bucket without public access prevention", "gcp:storage/bucket:Bucket", _name_has("storage-data"),
     _set("publicAccessPrevention", "inherited"), {"gcp-storage-bucket-disallow-public-access"}),
]


# Cases that edit the confidential VM (the `cvm` variant); the others edit the prod stack itself.
CVM_CASES = frozenset({"Azure NIC with a public IP", "Azure CVM without secure boot", "Azure VM that is not confidential"})


def _mandatory(analysis: analyzer.Analysis) -> set[tuple[str, str]]:
    return {(v.policy, v.urn) for v in analysis.mandatory}


_BASELINES: dict[str, set[tuple[str, str]]] = {}


@pytest.mark.parametrize(("case", "type_", "select", "edit", "expected"), CASES, ids=[c[0] for c in CASES])
def test_misconfiguration_is_caught(
    request: pytest.FixtureRequest,
    case: str,
    type_: str,
    select: Callable[[RecordedResource], bool],
    edit: Edit,
    expected: set[str],
) -> None:
    variant = "cvm" if case in CVM_CASES else "prod"
    recording, settings, packs = request.getfixturevalue(variant)
    if variant not in _BASELINES:
        _BASELINES[variant] = _mandatory(evaluate(recording, settings, STACK, packs)[0])
    baseline = _BASELINES[variant]
    target = _find(recording, type_, select)
    resources = []
    for resource in recording.resources:
        if resource is target:
            resource = copy.deepcopy(resource)
            edit(resource.properties)
        resources.append(resource)
    mutated = Recording(recording.stack_urn, resources)

    found = _mandatory(evaluate(mutated, settings, STACK, packs)[0]) - baseline
    # The simulation reports on the key whose release the edited document governs.
    caught = {policy for policy, urn in found if urn == target.urn or policy == KEY_RELEASE_POLICY}
    assert expected <= caught, f"{case}: expected {sorted(expected)}, new violations {sorted(found)}"
