"""The cloud sites' config checks (`components/<cloud>/checks.py`), run by `stacks.config.parse`.

They used to raise a ValueError inside each cloud `Site` while resources were being declared, one
problem per run and without a `ccp:` path. Each check has a compliant case (the shipped stack) and a
non-compliant one whose problems are asserted exactly, path and message; several problems of
different clouds are all reported by one `parse`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest

from components.site import Deployment
from policies.review.run import REVIEW_DEPLOYMENT
from stacks.config import ConfigError, StackConfig, parse, read_stack_file

ROOT = Path(__file__).resolve().parents[2]
WORKLOAD = "111122223333"
SOUTH = "444455556677"
SIGNER_PEM = (ROOT / "tests" / "azure" / "policy_signer.pem").read_text()
ORCHESTRATOR_COMMAND = "az ad sp show --id bf7b6499-ff71-4aa2-97a4-f372087be7f0 --query id -o tsv"
Edit = Callable[[dict[str, Any]], None]


def stack(name: str) -> dict[str, Any]:
    return read_stack_file(ROOT / f"Pulumi.{name}.yaml")


def edited(name: str, edit: Edit) -> dict[str, Any]:
    raw = copy.deepcopy(stack(name))
    edit(raw)
    return raw


def problems(raw: dict[str, Any], deployment: Deployment = REVIEW_DEPLOYMENT) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(raw, deployment)
    return caught.value.problems


def valid(raw: dict[str, Any], deployment: Deployment = REVIEW_DEPLOYMENT) -> StackConfig:
    return parse(raw, deployment)


def party(raw: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in raw["collaboration"]["parties"] if p["name"] == name)


def host(raw: dict[str, Any], cloud: str) -> dict[str, Any]:
    return next(h for h in raw["collaboration"]["workload"]["hosts"] if h["cloud"] == cloud)


@pytest.mark.parametrize("name", ["dev", "prod", "hospitals", "banks"])
def test_shipped_stacks_pass_every_site_check(name: str) -> None:
    valid(stack(name))


# --- three distinct site-level problems, one run --------------------------------------------------

THREE_PROBLEMS = [
    "ccp:collaboration.parties[0].region: party clinic-aws: its key is in eu-central-1 but no AWS Nitro host "
    "runs there (hosts: eu-west-1); the enclave reaches KMS through its own region's VPC endpoint, so add a "
    "host in eu-central-1 or move the party to a host region",
    "ccp:collaboration.parties[1].ownerPrincipal: party clinic-azure: ownerPrincipal 'alice@example.org' must "
    "be the Entra object id (GUID) of the principal allowed to decrypt outside the enclave "
    "(`az ad user show --id <upn> --query id -o tsv`)",
    "ccp:collaboration.workload.hosts[2].instanceType: machine type 'e2-standard-4' cannot run Confidential "
    "Space: use n2d-* / c2d-* / c3d-* / c4d-* (SEV) or c3-standard-* (TDX), e.g. 'n2d-standard-2'",
]


def three_problems(raw: dict[str, Any]) -> None:
    party(raw, "clinic-aws")["region"] = "eu-central-1"
    party(raw, "clinic-azure").update(ownerDecrypt=True, ownerPrincipal="alice@example.org")
    host(raw, "gcp")["instanceType"] = "e2-standard-4"


def test_three_site_problems_of_three_clouds_are_reported_in_one_parse() -> None:
    assert problems(edited("dev", three_problems)) == THREE_PROBLEMS


# --- AWS (components/aws/checks.py) ---------------------------------------------------------------


def test_aws_party_key_region_without_a_host_is_refused() -> None:
    raw = edited("dev", lambda r: party(r, "clinic-aws").update(region="eu-central-1"))
    assert problems(raw) == THREE_PROBLEMS[:1]


def test_aws_instance_type_that_cannot_host_an_enclave_is_refused() -> None:
    raw = edited("dev", lambda r: host(r, "aws").update(instanceType="t3.large"))
    assert problems(raw) == [
        "ccp:collaboration.workload.hosts[0].instanceType: instance type 't3.large' cannot host a Nitro enclave: "
        "burstable T-family instances do not support Nitro Enclaves "
        "(https://docs.aws.amazon.com/enclaves/latest/user/nitro-enclave.html#nitro-enclave-reqs); "
        "use e.g. m6i.xlarge or c7g.xlarge"
    ]


def test_foreign_account_without_deploy_role_is_refused() -> None:
    raw = edited("banks", lambda r: party(r, "bank-south").pop("deployRole"))
    assert problems(raw) == [
        f"ccp:collaboration.parties[1].deployRole: party bank-south: deployRole is not set but account {SOUTH} is "
        f"not the deploying account {WORKLOAD}: set deployRole to the IAM role of account {SOUTH} that declares "
        f"this party's keys there (e.g. arn:aws:iam::{SOUTH}:role/bank-south-key-deployer), or remove account to "
        "keep the keys in the deploying account"
    ]


def test_deploy_role_for_the_deploying_account_is_refused() -> None:
    def edit(raw: dict[str, Any]) -> None:
        party(raw, "bank-south").update(
            account=WORKLOAD, deployRole=f"arn:aws:iam::{WORKLOAD}:role/d",
            breakGlassPrincipal=f"arn:aws:iam::{WORKLOAD}:role/bank-south-key-break-glass",
        )

    assert problems(edited("banks", edit)) == [
        f"ccp:collaboration.parties[1].deployRole: party bank-south: deployRole 'arn:aws:iam::{WORKLOAD}:role/d' "
        f"is set but the party's account is the deploying account {WORKLOAD}: remove deployRole (the default "
        "provider deploys there), or set account to the party's own AWS account id"
    ]


def test_break_glass_role_outside_the_deploying_account_is_refused() -> None:
    glass = "arn:aws:iam::999988887777:role/clinic-aws-key-break-glass"
    raw = edited("dev", lambda r: party(r, "clinic-aws").update(breakGlassPrincipal=glass))
    assert problems(raw) == [
        f"ccp:collaboration.parties[0].breakGlassPrincipal: party clinic-aws: breakGlassPrincipal {glass!r} is not "
        f"a role of account {WORKLOAD} (partition aws), where the party's keys live: KMS creates the key in the "
        "caller's account and its lockout safety check requires the creator to hold PutKeyPolicy, so the key is "
        "created by that role; name a role of the account the key lives in"
    ]
    # Without the deploying account (a unit test parsing a file), only that comparison is skipped.
    assert valid(raw, Deployment()).collaboration.parties[0].break_glass_principal == glass


def test_break_glass_role_in_another_partition_is_refused() -> None:
    raw = stack("dev")
    assert problems(raw, Deployment(aws_account_id=WORKLOAD, aws_partition="aws-us-gov"))[0].startswith(
        "ccp:collaboration.parties[0].breakGlassPrincipal: party clinic-aws: breakGlassPrincipal "
        f"'arn:aws:iam::{WORKLOAD}:role/clinic-aws-key-break-glass' is not a role of account {WORKLOAD} "
        "(partition aws-us-gov)"
    )


# --- Azure (components/azure/checks.py) -----------------------------------------------------------


def with_azure_host(raw: dict[str, Any], new_host: dict[str, Any], drop_parties: bool = False) -> None:
    collab = raw["collaboration"]
    collab["workload"]["hosts"] = [h for h in collab["workload"]["hosts"] if h["cloud"] != "azure"] + [new_host]
    collab["measurements"].update(tdx={"mrtd": "d8" * 48}, sgx={"mrenclave": "e9" * 32})
    if drop_parties:
        gone = {p["name"] for p in collab["parties"] if p["cloud"] == "azure"}
        collab["parties"] = [p for p in collab["parties"] if p["name"] not in gone]
        for output in collab.get("outputs", []):
            output["recipients"] = [r for r in output["recipients"] if r not in gone]
        collab.pop("federated", None)  # secure aggregation needs 3 parties (tests/config/test_federated.py)


@pytest.mark.parametrize(
    ("size", "tee", "families", "example", "why"),
    [
        ("Standard_D4s_v5", "sev-snp", "DCasv5, ECasv5, DCadsv5, ECadsv5", "Standard_DC4as_v5",
         "it is a general-purpose Intel size without TDX (the confidential Intel sizes are DC/EC..es_v5) "
         "(Dsv5/Ddsv5/Esv5/Edsv5); "),
        ("Standard_DC4as_v5", "tdx", "DCesv5, DCedsv5, ECesv5, ECedsv5", "Standard_DC4es_v5", ""),
        ("Standard_DC4es_v5", "sgx", "DCsv2, DCsv3, DCdsv3", "Standard_DC4s_v3", ""),
    ],
)
def test_azure_vm_size_without_its_tee_is_refused(size: str, tee: str, families: str, example: str, why: str) -> None:
    new_host = {"cloud": "azure", "region": "westeurope", "tee": tee, "instanceType": size}
    raw = edited("dev", lambda r: with_azure_host(r, new_host, drop_parties=tee in ("sev-snp", "tdx")))
    assert problems(raw) == [
        f"ccp:collaboration.workload.hosts[2].instanceType: VM size '{size}' does not provide {tee}: {why}use a size "
        f"of the {families} families (e.g. {example})"
    ]
    fixed = copy.deepcopy(raw)
    fixed["collaboration"]["workload"]["hosts"][2]["instanceType"] = example
    valid(fixed)


def test_an_image_by_tag_is_refused_for_every_host_that_runs_it() -> None:
    image = "europe-docker.pkg.dev/ccp-dev/workloads/fl-trainer:latest"
    raw = edited("dev", lambda r: r["collaboration"]["workload"].update(image=image))
    assert problems(raw) == [
        f"ccp:collaboration.workload.image: workload.image {image!r} is not pinned by digest: a confidential "
        "container group runs <registry>/<name>@sha256:<64 hex> (the CCE policy pins its layers)",
        f"ccp:collaboration.workload.image: workload.image {image!r} is not pinned by digest: use "
        "'<registry>/<repository>@sha256:<64 hex>' so the VM runs exactly the attested image",
    ]


def test_azure_owner_principal_must_be_an_object_id() -> None:
    raw = edited("dev", lambda r: party(r, "clinic-azure").update(ownerDecrypt=True, ownerPrincipal="alice@example.org"))
    assert problems(raw) == [THREE_PROBLEMS[1]]
    fixed = edited("dev", lambda r: party(r, "clinic-azure").update(
        ownerDecrypt=True, ownerPrincipal="5f1c3a2e-8d4b-4e6f-9a7c-2b1d0e3f4a5b"))
    valid(fixed)


def test_prod_provider_without_certificates_is_refused_naming_the_key() -> None:
    raw = edited("prod", lambda r: r["ccp-azure"].pop("attestationPolicySigningCertificates"))
    assert problems(raw) == [
        "ccp-azure:attestationPolicySigningCertificates: is empty: a prod attestation provider without policy "
        "signing certificates runs in AAD mode, where anyone with Azure RBAC write on it can replace its "
        "attestation policy; set the PEM certificates of the parties' policy signers (isolated mode), or use "
        "ccp-azure:sharedAttestationEndpoint"
    ]
    shared = copy.deepcopy(raw)
    shared["ccp-azure"]["sharedAttestationEndpoint"] = "https://shareddewc.dewc.attest.azure.net"
    assert valid(shared).azure.shared_attestation_endpoint == "https://shareddewc.dewc.attest.azure.net"


def test_dev_provider_may_stay_in_aad_mode() -> None:
    assert valid(stack("dev")).azure.attestation_policy_signing_certificates == ()


def cvm_prod(raw: dict[str, Any]) -> None:
    """The prod stack with its Azure host as a TDX confidential VM (its OS disk needs the orchestrator) and
    no Azure party (an Azure data key released to a TDX CVM is refused: see the test below)."""
    with_azure_host(raw, {"cloud": "azure", "region": "germanywestcentral", "tee": "tdx",
                          "instanceType": "Standard_DC8es_v5"}, drop_parties=True)


@pytest.mark.parametrize("stack", ["dev", "prod"])
@pytest.mark.parametrize("kubernetes", [False, True])
def test_an_azure_data_key_released_to_a_tdx_cvm_is_refused_with_the_fix(stack: str, kubernetes: bool) -> None:
    """A TDX CVM's only pin, MRTD, measures Microsoft's firmware and paravisor, not the workload."""
    host = {"cloud": "azure", "region": "germanywestcentral", "tee": "tdx", "instanceType": "Standard_DC8es_v5"}
    if kubernetes:
        host["kubernetes"] = True
    raw = edited(stack, lambda r: with_azure_host(r, host))
    index = len(raw["collaboration"]["workload"]["hosts"]) - 1
    (found,) = [p for p in problems(raw) if "TDX" in p]
    assert found.startswith(f"ccp:collaboration.workload.hosts[{index}].tee: an Azure TDX confidential VM cannot "
                            "be the release target of an Azure data key")
    for part in ("tdx_mrtd", "Microsoft's firmware and paravisor, not the guest or the workload",
                 "tee 'confidential-containers'", "measurements.sevSnp.hostData", "tee 'sgx'"):
        assert part in found
    # the fix: the CVM stays a host with no Azure party's key released to it
    fixed = edited(stack, lambda r: with_azure_host(r, host, drop_parties=True))
    valid(fixed)


@pytest.mark.parametrize("oid", ["00000000-0000-0000-0000-000000000000", "00000000-0000-4000-8000-00000000c0de"])
def test_prod_refuses_a_placeholder_orchestrator_id_with_the_command(oid: str) -> None:
    raw = edited("prod", cvm_prod)
    raw["ccp-azure"]["cvmOrchestratorObjectId"] = oid
    assert problems(raw) == [
        f"ccp-azure:cvmOrchestratorObjectId: '{oid}' is a placeholder, not the object id of the Confidential VM "
        "Orchestrator in your tenant (the platform could not release the confidential OS-disk key and the VM "
        f"would not start): set the output of `{ORCHESTRATOR_COMMAND}`"
    ]


def test_prod_without_orchestrator_gives_the_command() -> None:
    raw = edited("prod", cvm_prod)
    raw["ccp-azure"].pop("cvmOrchestratorObjectId")
    assert problems(raw) == [
        "ccp-azure:cvmOrchestratorObjectId: is required in prod with a confidential VM: prod confidential VMs "
        "encrypt their OS disk with a customer key that the Confidential VM Orchestrator releases; set "
        f"ccp-azure:cvmOrchestratorObjectId to the output of `{ORCHESTRATOR_COMMAND}`"
    ]
    valid(edited("prod", cvm_prod))  # the shipped, real-looking id


@pytest.mark.parametrize("value", ["not a certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"])
def test_a_certificate_that_does_not_parse_is_refused_with_key_value_and_fix(value: str) -> None:
    raw = edited("prod", lambda r: r["ccp-azure"].update(attestationPolicySigningCertificates=[SIGNER_PEM, value]))
    assert problems(raw) == [
        f"ccp-azure:attestationPolicySigningCertificates[1]: {value.splitlines()[0]!r} is not a PEM X.509 "
        "certificate: give each party signer's certificate ('-----BEGIN CERTIFICATE-----' ... "
        "'-----END CERTIFICATE-----'), e.g. `openssl req -x509 -newkey rsa:3072 -keyout signer.key -out signer.pem`"
    ]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("addressSpace", "8.8.0.0/16", "'8.8.0.0/16' must be a private /16 network, e.g. 10.40.0.0/16"),
        ("sharedAttestationEndpoint", "https://example.org",
         "'https://example.org' is not a regional shared MAA endpoint"),
        ("adminSshPublicKey", "hunter2", "'hunter2' is not an OpenSSH public key"),
        ("cvmOrchestratorObjectId", "ABC", "'ABC' is not a lowercase GUID"),
        ("attestationPolicySigningCertificates", "one pem", "'one pem' is not a list of PEM certificates"),
    ],
)
def test_each_azure_option_names_key_value_and_fix(key: str, value: Any, expected: str) -> None:
    raw = edited("prod", lambda r: r["ccp-azure"].update({key: value}))
    (found,) = problems(raw)
    assert found.startswith(f"ccp-azure:{key}: {expected}"), found


# --- GCP (components/gcp/checks.py) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("softwareKeysInDev", "ccp-gcp:softwareKeysInDev: true is a dev-only option and this is a prod stack: "
         "production keys are HSM-backed; remove it"),
        ("debugImageInDev", "ccp-gcp:debugImageInDev: true is a dev-only option and this is a prod stack: the "
         "confidential-space-debug image lets the operator into the VM and never receives production keys; "
         "remove it"),
    ],
)
def test_dev_only_gcp_options_are_refused_in_prod(key: str, expected: str) -> None:
    assert problems(edited("prod", lambda r: r.update({"ccp-gcp": {key: True}}))) == [expected]
    assert getattr(valid(edited("dev", lambda r: r.update({"ccp-gcp": {key: True}}))).gcp,
                   "software_keys_in_dev" if key == "softwareKeysInDev" else "debug_image_in_dev") is True


def gcp_host(raw: dict[str, Any], **extra: Any) -> None:
    raw["collaboration"]["workload"]["hosts"].append({"cloud": "gcp", "region": "europe-west1", **extra})


def test_gcp_confidential_vm_machine_type_is_validated() -> None:
    raw = edited("dev", lambda r: gcp_host(r, tee="sev-snp", instanceType="c3-standard-4"))
    assert problems(raw) == [
        "ccp:collaboration.workload.hosts[3].instanceType: machine type 'c3-standard-4' (family c3) cannot run "
        "SEV_SNP confidential VMs: use a n2d-* machine type, e.g. 'n2d-standard-2'"
    ]
    valid(edited("dev", lambda r: gcp_host(r, tee="sev-snp", instanceType="n2d-standard-4")))


def test_confidential_space_is_not_gke() -> None:
    raw = edited("dev", lambda r: gcp_host(r, tee="confidential-space", instanceType="n2d-standard-4", kubernetes=True))
    assert problems(raw) == [
        "ccp:collaboration.workload.hosts[3].kubernetes: host in europe-west1: Confidential Space runs on Compute "
        "Engine VMs, not GKE; set kubernetes: false or use tee sev-snp/tdx for Confidential GKE Nodes"
    ]


def test_gcp_workload_image_must_be_an_approved_digest() -> None:
    image = "europe-docker.pkg.dev/ccp-dev/workloads/fl-trainer@sha256:" + "1" * 64
    raw = edited("dev", lambda r: r["collaboration"]["workload"].update(image=image))
    assert problems(raw) == [
        f"ccp:collaboration.workload.image: workload.image digest sha256:{'1' * 64} is not in "
        "measurements.confidentialSpace.imageDigests "
        "['sha256:a0e2148f2794b7790dc9c775028636b025312d42873cff16847ef9ec0e42af08']: the workload could never "
        "obtain a key; approve it or fix the image"
    ]


# --- component namespaces: typed sections, unknown keys refused -----------------------------------


def test_component_options_are_typed_sections_of_the_one_model() -> None:
    settings = valid(stack("prod"))
    assert settings.azure.cvm_orchestrator_object_id == "5f1c3a2e-8d4b-4e6f-9a7c-2b1d0e3f4a5b"
    assert len(settings.azure.attestation_policy_signing_certificates) == 1
    options = valid(edited("dev", lambda r: r.update({"ccp-gcp": {"allowIapSsh": True, "restartPolicy": "OnFailure"}})))
    assert options.site_options()["gcp"].allow_iap_ssh is True
    assert options.site_options()["gcp"].restart_policy == "OnFailure"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda r: r["ccp-azure"].update(cvmOrchestratorObjectID="x"),
         "ccp-azure:cvmOrchestratorObjectID: unknown key (value 'x'); check its spelling (keys are camelCase)"),
        (lambda r: r.update({"ccp-gcp": {"allowIapSSH": True}}),
         "ccp-gcp:allowIapSSH: unknown key (value True); check its spelling (keys are camelCase)"),
        (lambda r: r.update({"ccp-azur": {"addressSpace": "10.1.0.0/16"}}),
         "ccp-azur:addressSpace: unknown config namespace 'ccp-azur'; check its spelling (component namespaces: "
         "ccp-aws, ccp-azure, ccp-gcp)"),
        (lambda r: r.update(azure={"addressSpace": "10.1.0.0/16"}),
         "ccp:azure: unknown key (value {'addressSpace': '10.1.0.0/16'}); check its spelling (keys are camelCase)"),
        (lambda r: r.update({"ccp-gcp": {"restartPolicy": "Sometimes"}}),
         "ccp-gcp:restartPolicy: 'Sometimes' is not allowed: 'Never', 'OnFailure' or 'Always'"),
    ],
    ids=["azure-key", "gcp-key", "namespace", "section-under-ccp", "gcp-value"],
)
def test_unknown_component_keys_are_refused(edit: Edit, expected: str) -> None:
    assert problems(edited("prod", edit)) == [expected]
