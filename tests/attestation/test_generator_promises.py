"""Every security statement the key-release generators' docstrings promise, one test each.

`components/attestation/{aws_key_policy,azure_release_policy,gcp_condition}.py` document what the
documents they generate guarantee ("denies decrypt without attestation", "debug false", "dbgstat",
"support attributes STABLE", ...). Each promise is checked on the generated document itself, by value,
so deleting or weakening the statement that keeps it fails a test here.
"""

from __future__ import annotations

from typing import Any

import pytest

from components.attestation import aws_key_policy as aws
from components.attestation import azure_release_policy as azure
from components.attestation import gcp_condition as gcp
from components.attestation import azure_guest_policy as guest
from enclave_runtime.measurements import ApprovedMeasurements, AzureCvmMeasurements, NitroMeasurements
from enclave_runtime.simulate.tokens import confidential_space_payload

PCR0, PCR8 = "ab" * 48, "cd" * 48
ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/enclave"
BREAK_GLASS = f"arn:aws:iam::{ACCOUNT}:role/key-break-glass"
OWNER = f"arn:aws:iam::{ACCOUNT}:role/owner"


def aws_doc(**over: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"account_id": ACCOUNT, "enclave_role_arn": ROLE, "admin_principal_arn": BREAK_GLASS}
    measurements = over.pop("measurements", NitroMeasurements(pcr0=PCR0, pcr8=PCR8, pin=["pcr0", "pcr8"]))
    return aws.key_policy(measurements, **{**args, **over})


def by_sid(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    statements = doc["Statement"]
    sids = [s["Sid"] for s in statements]
    assert len(sids) == len(set(sids)), sids
    return {s["Sid"]: s for s in statements}


# --- AWS: aws_key_policy.py -------------------------------------------------------------------------


def test_aws_enclave_allow_is_gated_on_every_pinned_register_and_the_account() -> None:
    allow = by_sid(aws_doc())[aws.SID_ALLOW_ENCLAVE]
    assert allow["Effect"] == "Allow" and allow["Principal"] == {"AWS": ROLE}
    assert allow["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert allow["Condition"] == {
        "StringEqualsIgnoreCase": {"kms:RecipientAttestation:ImageSha384": PCR0, "kms:RecipientAttestation:PCR8": PCR8},
        "StringEquals": {"aws:PrincipalAccount": ACCOUNT},
    }


def test_aws_denies_decrypt_without_attestation_to_everyone() -> None:
    """"every data-plane action is denied to every principal when the request has no attestation"."""
    deny = by_sid(aws_doc())[aws.SID_DENY_UNATTESTED]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Resource"] == "*"
    assert sorted(deny["Action"]) == sorted(
        ["kms:Decrypt", "kms:DeriveSharedSecret", "kms:GenerateDataKey", "kms:GenerateDataKeyPair", "kms:ReEncryptFrom"]
    )
    # Null on ImageSha384 even when only PCR8 is pinned, and no exemption without the owner opt-in.
    assert deny["Condition"] == {"Null": {"kms:RecipientAttestation:ImageSha384": "true"}}
    pcr8_only = aws_doc(measurements=NitroMeasurements(pcr8=PCR8, pin=["pcr8"]))
    assert by_sid(pcr8_only)[aws.SID_DENY_UNATTESTED]["Condition"] == {"Null": {"kms:RecipientAttestation:ImageSha384": "true"}}


def test_aws_only_the_opted_in_owner_is_exempt_from_the_unattested_deny() -> None:
    doc = by_sid(aws_doc(owner_principal_arn=OWNER))
    assert doc[aws.SID_DENY_UNATTESTED]["Condition"] == {
        "Null": {"kms:RecipientAttestation:ImageSha384": "true"},
        "ArnNotEquals": {"aws:PrincipalArn": OWNER},
    }
    owner = doc[aws.SID_OWNER_DECRYPT]
    assert owner["Principal"] == {"AWS": OWNER} and owner["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert aws.SID_OWNER_DECRYPT not in by_sid(aws_doc()), "owner decrypt is off by default"


def test_aws_denies_every_unapproved_enclave_per_pinned_register() -> None:
    doc = by_sid(aws_doc())
    for register, key, value in (("PCR0", "kms:RecipientAttestation:ImageSha384", PCR0), ("PCR8", "kms:RecipientAttestation:PCR8", PCR8)):
        deny = doc[f"{aws.SID_DENY_UNAPPROVED_PREFIX}{register}"]
        assert deny["Effect"] == "Deny" and deny["Principal"] == "*"
        assert sorted(deny["Action"]) == sorted(aws.DATA_PLANE_ACTIONS)
        assert deny["Condition"] == {"Null": {"kms:RecipientAttestation:ImageSha384": "false"}, "StringNotEqualsIgnoreCase": {key: value}}
    single = by_sid(aws_doc(measurements=NitroMeasurements(pcr0=PCR0)))
    assert [s for s in single if s.startswith(aws.SID_DENY_UNAPPROVED_PREFIX)] == [f"{aws.SID_DENY_UNAPPROVED_PREFIX}PCR0"]


def test_aws_refuses_debug_mode_all_zero_pcrs() -> None:
    with pytest.raises(ValueError, match="all-zero pcr0"):
        aws_doc(measurements=NitroMeasurements(pcr0="0" * 96))
    with pytest.raises(ValueError, match="all-zero pcr8"):
        aws_doc(measurements=NitroMeasurements(pcr0=PCR0, pcr8="0" * 96, pin=["pcr0", "pcr8"]))


def test_aws_administration_is_the_break_glass_role_with_mfa_and_no_data_plane() -> None:
    admin = by_sid(aws_doc())[aws.SID_ADMIN]
    assert admin["Principal"] == {"AWS": BREAK_GLASS}
    assert admin["Condition"] == {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
    actions = set(admin["Action"])
    assert "kms:PutKeyPolicy" in actions, "the break-glass role keeps the key manageable"
    forbidden = {"kms:*", "kms:CreateGrant", "kms:RetireGrant", "kms:Encrypt", *aws.DATA_PLANE_ACTIONS}
    assert not actions & forbidden, actions & forbidden


@pytest.mark.parametrize("admin", [f"arn:aws:iam::{ACCOUNT}:root", ACCOUNT, f"arn:aws:iam::{ACCOUNT}:user/alice", "*"])
def test_aws_administrator_is_never_the_account_root_or_a_non_role(admin: str) -> None:
    with pytest.raises(ValueError, match="is not an IAM role ARN"):
        aws_doc(admin_principal_arn=admin)
    with pytest.raises(ValueError, match="is not an IAM role ARN"):
        aws.break_glass_statements(admin)


def test_aws_policy_changes_are_denied_except_to_the_break_glass_role() -> None:
    deny = by_sid(aws_doc())[aws.SID_DENY_POLICY_CHANGE]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Resource"] == "*"
    assert sorted(deny["Action"]) == sorted(["kms:PutKeyPolicy", "kms:CreateGrant", "kms:ReplicateKey", "kms:UpdateAlias", "kms:DeleteAlias"])
    assert deny["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": BREAK_GLASS}}


def test_aws_owner_envelope_encrypt_returns_no_plaintext() -> None:
    encrypt = by_sid(aws_doc(encrypt_principal_arn=OWNER))[aws.SID_OWNER_ENCRYPT]
    assert encrypt["Effect"] == "Allow" and encrypt["Action"] == ["kms:Encrypt", "kms:DescribeKey"]
    assert aws.SID_OWNER_ENCRYPT not in by_sid(aws_doc())


def test_aws_refuses_an_account_that_is_not_the_enclave_roles_and_foreign_partitions() -> None:
    with pytest.raises(ValueError, match="is not the account of enclave_role_arn"):
        aws_doc(account_id="444455556666")
    with pytest.raises(ValueError, match="not an ARN in partition 'aws'"):
        aws_doc(owner_principal_arn=f"arn:aws-cn:iam::{ACCOUNT}:role/owner")


def test_aws_only_allows_are_the_enclave_the_admin_and_the_opt_ins() -> None:
    """No other statement grants anything: every Allow is one the docstring lists."""
    doc = aws_doc(owner_principal_arn=OWNER, encrypt_principal_arn=OWNER)
    allows = sorted(s["Sid"] for s in doc["Statement"] if s["Effect"] == "Allow")
    assert allows == sorted([aws.SID_ALLOW_ENCLAVE, aws.SID_ADMIN, aws.SID_OWNER_ENCRYPT, aws.SID_OWNER_DECRYPT])


# --- Azure: azure_release_policy.py ----------------------------------------------------------------

AUTHORITY = "https://sharedweu.weu.attest.azure.net"
LAUNCH, HOST, MRTD, MRENCLAVE = "ab" * 48, "c7" * 32, "de" * 48, "9f" * 32


def measurements(**sections: Any) -> ApprovedMeasurements:
    return ApprovedMeasurements.model_validate({"version": "1", **sections})


PCRS = {"4": "4a" * 32, "7": "7b" * 32}
SECTIONS = {
    "sev-snp": ({"azureCvm": {"pcrs": PCRS}}, False),
    "confidential-containers": ({"sevSnp": {"hostData": HOST}}, True),
    "tdx": ({"tdx": {"mrtd": MRTD}}, False),
    "sgx": ({"sgx": {"mrenclave": MRENCLAVE, "productId": 3, "minSvn": 2}}, False),
}


def claims_of(tee: str) -> list[dict[str, Any]]:
    section, _ = SECTIONS[tee]
    policy = azure.release_policy(measurements(**section), tee=tee, authority=AUTHORITY)
    assert policy["version"] == "1.0.0" and len(policy["anyOf"]) == 1
    assert policy["anyOf"][0]["authority"] == AUTHORITY
    return policy["anyOf"][0]["allOf"]


EXPECTED = {
    # An Azure CVM: the documented guest-token claims
    # (https://learn.microsoft.com/azure/confidential-computing/guest-attestation-confidential-vms), the hash of the
    # collaboration's own attestation policy, and the claim that policy issues once the vTPM PCRs match.
    "sev-snp": [
        {"claim": "x-ms-attestation-type", "equals": "azurevm"},
        {"claim": "x-ms-isolation-tee.x-ms-attestation-type", "equals": "sevsnpvm"},
        {"claim": "x-ms-isolation-tee.x-ms-compliance-status", "equals": "azure-compliant-cvm"},
        {"claim": "x-ms-isolation-tee.x-ms-sevsnpvm-is-debuggable", "equals": False},
        {"claim": "secureboot", "equals": True},
        {"claim": "x-ms-azurevm-debuggersdisabled", "equals": True},
        {"claim": "x-ms-azurevm-bootdebug-enabled", "equals": False},
        {"claim": "x-ms-azurevm-kerneldebug-enabled", "equals": False},
        {"claim": "x-ms-azurevm-hypervisordebug-enabled", "equals": False},
        {"claim": "x-ms-azurevm-testsigning-enabled", "equals": False},
        {"claim": "x-ms-policy-hash", "equals": guest.policy_hash(guest.maa_policy(AzureCvmMeasurements(pcrs=PCRS)))},
        {"claim": "ccp-azurevm-pcrs", "equals": guest.pcr_set_digest(AzureCvmMeasurements(pcrs=PCRS))},
    ],
    "confidential-containers": [
        {"claim": "x-ms-attestation-type", "equals": "sevsnpvm"},
        {"claim": "x-ms-compliance-status", "equals": "azure-compliant-uvm"},
        {"claim": "x-ms-sevsnpvm-hostdata", "equals": HOST},
        {"claim": "x-ms-sevsnpvm-is-debuggable", "equals": False},
        {"claim": "x-ms-sevsnpvm-vmpl", "equals": 0},
    ],
    "tdx": [
        {"claim": "x-ms-attestation-type", "equals": "tdxvm"},
        {"claim": "x-ms-compliance-status", "equals": "azure-compliant-cvm"},
        {"claim": "tdx_mrtd", "equals": MRTD},
        {"claim": "tdx_td_attributes_debug", "equals": False},
    ],
    "sgx": [
        {"claim": "x-ms-sgx-mrenclave", "equals": MRENCLAVE},
        {"claim": "x-ms-sgx-product-id", "equals": 3},
        {"claim": "x-ms-sgx-svn", "greaterOrEquals": 2},
        {"claim": "x-ms-sgx-is-debuggable", "equals": False},
    ],
}


@pytest.mark.parametrize("tee", sorted(SECTIONS))
def test_azure_policy_is_exactly_the_documented_claims(tee: str) -> None:
    assert claims_of(tee) == EXPECTED[tee]


@pytest.mark.parametrize("tee", sorted(SECTIONS))
def test_azure_every_policy_requires_debug_false(tee: str) -> None:
    """"every policy requires the TEE to be non-debuggable": the boolean false, never absent or true."""
    debug = [c for c in claims_of(tee) if c["claim"].endswith(("is-debuggable", "td_attributes_debug"))]
    assert debug and all(c == {"claim": c["claim"], "equals": False} for c in debug), debug


@pytest.mark.parametrize("tee", sorted(SECTIONS))
def test_azure_every_policy_pins_the_workload_and_never_runtime_claims(tee: str) -> None:
    claims = claims_of(tee)
    pins = [c for c in claims if c["claim"].rsplit(".", 1)[-1] in ("ccp-azurevm-pcrs", "x-ms-sevsnpvm-hostdata", "tdx_mrtd", "x-ms-sgx-mrenclave", "x-ms-sgx-mrsigner")]
    assert pins and all("equals" in c and c["equals"] for c in pins), claims
    assert not [c for c in claims if "x-ms-runtime" in c["claim"]]


@pytest.mark.parametrize(
    ("tee", "section", "container", "match"),
    [
        ("sev-snp", {"tdx": {"mrtd": MRTD}}, False, "azureCvm.pcrs"),
        # An Azure CVM's launch measurement measures Microsoft's paravisor and firmware: never a release on it.
        ("sev-snp", {"sevSnp": {"launchMeasurement": LAUNCH}}, False, "launch measurement alone measures Microsoft's paravisor"),
        ("tdx", {"sevSnp": {"launchMeasurement": LAUNCH}}, False, "no tdx section"),
        ("sgx", {"tdx": {"mrtd": MRTD}}, False, "no sgx section"),
        ("confidential-containers", {"sevSnp": {"launchMeasurement": LAUNCH}}, False, "sevSnp.hostData"),
        ("sev-snp", {"sevSnp": {"launchMeasurement": LAUNCH}}, True, "sevSnp.hostData"),
        ("tdx", {"tdx": {"mrtd": MRTD}}, True, "confidential containers"),
        ("sgx", {"sgx": {"mrsigner": MRENCLAVE}}, True, "MRENCLAVE/MRSIGNER"),
        ("nitro", {"tdx": {"mrtd": MRTD}}, False, "has no Azure secure key release"),
    ],
)
def test_azure_a_missing_measurement_gets_no_policy(tee: str, section: dict[str, Any], container: bool, match: str) -> None:
    """"a TEE whose measurement section is absent gets no policy at all (ValueError), not a wildcard"."""
    with pytest.raises(ValueError, match=match):
        azure.release_policy(measurements(**section), tee=tee, authority=AUTHORITY, container=container)


@pytest.mark.parametrize("authority", ["http://sharedweu.weu.attest.azure.net", "https://", "", "sharedweu.weu.attest.azure.net"])
def test_azure_authority_must_be_https(authority: str) -> None:
    with pytest.raises(ValueError, match="is not an https URL"):
        azure.release_policy(measurements(**SECTIONS["sev-snp"][0]), tee="sev-snp", authority=authority)


def test_azure_sgx_signer_pin_keeps_product_exact_and_svn_a_floor() -> None:
    policy = azure.release_policy(measurements(sgx={"mrsigner": MRENCLAVE, "productId": 7, "minSvn": 4}), tee="sgx", authority=AUTHORITY)
    claims = policy["anyOf"][0]["allOf"]
    assert {"claim": "x-ms-sgx-mrsigner", "equals": MRENCLAVE} in claims
    assert {"claim": "x-ms-sgx-product-id", "equals": 7} in claims and {"claim": "x-ms-sgx-svn", "greaterOrEquals": 4} in claims


def test_azure_cvm_disk_policy_is_microsofts_and_needs_a_region() -> None:
    policy = azure.cvm_disk_release_policy(["westeurope", "westeurope"])
    assert len(policy["anyOf"]) == 1
    entry = policy["anyOf"][0]
    assert entry["authority"].endswith(".attest.azure.net/")
    assert entry["allOf"] == [
        {"claim": "x-ms-compliance-status", "equals": "azure-compliant-cvm"},
        {"anyOf": [{"claim": "x-ms-attestation-type", "equals": "tdxvm"}, {"claim": "x-ms-attestation-type", "equals": "sevsnpvm"}]},
    ]
    with pytest.raises(ValueError, match="at least one confidential VM"):
        azure.cvm_disk_release_policy([])


def test_azure_combined_policy_keeps_each_alternative_whole_and_refuses_none() -> None:
    snp = azure.release_policy(measurements(**SECTIONS["sev-snp"][0]), tee="sev-snp", authority=AUTHORITY)
    sgx = azure.release_policy(measurements(**SECTIONS["sgx"][0]), tee="sgx", authority=AUTHORITY)
    combined = azure.combine_release_policies([snp, sgx, snp])
    assert combined["anyOf"] == snp["anyOf"] + sgx["anyOf"]
    with pytest.raises(ValueError, match="never exportable"):
        azure.combine_release_policies([])
    with pytest.raises(ValueError, match="is not 1.0.0"):
        azure.combine_release_policies([{**snp, "version": "0.9"}])


def test_azure_release_policy_encoding_round_trips_and_refuses_garbage() -> None:
    policy = azure.release_policy(measurements(**SECTIONS["tdx"][0]), tee="tdx", authority=AUTHORITY)
    data = azure.encode_release_policy(policy)
    assert "=" not in data and azure.decode_release_policy(data) == policy
    with pytest.raises(ValueError, match="not base64url-encoded JSON"):
        azure.decode_release_policy("!!!")
    with pytest.raises(ValueError, match="does not decode to a JSON object"):
        azure.decode_release_policy(azure.encode_release_policy([1]))  # type: ignore[arg-type]


# --- GCP: gcp_condition.py -------------------------------------------------------------------------

DIGEST = "sha256:" + "a1" * 32
SA = "ccp-workload@ccp-dev-project.iam.gserviceaccount.com"
CS = measurements(confidentialSpace={"imageDigests": [DIGEST]})


def condition(**over: Any) -> str:
    return gcp.attribute_condition(over.pop("measurements", CS), workload_service_account=SA, **over)


def token(**changes: Any) -> dict[str, Any]:
    claims = confidential_space_payload(DIGEST, [SA], "GCP_AMD_SEV")
    for path, value in changes.items():
        node = claims
        keys = path.split("__")
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return claims


def test_gcp_condition_has_every_documented_clause() -> None:
    assert condition().split(" && ") == [
        "assertion.swname == 'CONFIDENTIAL_SPACE'",
        "assertion.dbgstat == 'disabled-since-boot'",
        "'STABLE' in assertion.submods.confidential_space.support_attributes",
        "assertion.hwmodel in ['GCP_AMD_SEV', 'GCP_INTEL_TDX']",
        "assertion.secboot == true",
        f"assertion.submods.container.image_digest in ['{DIGEST}']",
        f"'{SA}' in assertion.google_service_accounts",
    ]


def test_gcp_condition_accepts_the_approved_production_token() -> None:
    assert gcp.evaluate_condition(condition(), token())
    assert gcp.evaluate_condition(condition(), token(hwmodel="GCP_INTEL_TDX"))


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"dbgstat": "enabled"}, "dbgstat excludes debug images"),
        ({"submods__confidential_space__support_attributes": ["LATEST", "USABLE"]}, "support attributes STABLE"),
        ({"swname": "GCE"}, "swname CONFIDENTIAL_SPACE"),
        ({"hwmodel": "GCP_SHIELDED_VM"}, "GCP_SHIELDED_VM is not confidential computing"),
        ({"hwmodel": "GCP_AMD_SEV_ES"}, "only the models asked for"),
        ({"secboot": False}, "secboot requires measured secure boot"),
        ({"submods__container__image_digest": "sha256:" + "f" * 64}, "the digest list pins the approved images"),
        ({"google_service_accounts": ["other@ccp-dev-project.iam.gserviceaccount.com"]}, "the service account pins the operator's VM identity"),
    ],
)
def test_gcp_condition_refuses_a_token_missing_any_promise(change: dict[str, Any], why: str) -> None:
    assert not gcp.evaluate_condition(condition(), token(**change)), why


def test_gcp_debug_token_without_support_attributes_is_refused() -> None:
    debug = confidential_space_payload(DIGEST, [SA], "GCP_AMD_SEV", debug=True)
    assert not gcp.evaluate_condition(condition(), debug)
    assert not gcp.evaluate_condition(condition(), {"swname": "CONFIDENTIAL_SPACE"}), "a missing claim is not accepted"


@pytest.mark.parametrize("models", [[], ["GCP_SHIELDED_VM"], ["GCP_AMD_SEV", "GCP_SHIELDED_VM"], ["GCP_AMD_SEV_SNP"]])
def test_gcp_refuses_non_confidential_or_no_hardware_models(models: list[str]) -> None:
    with pytest.raises(ValueError, match="hardware_models is empty|not confidential hardware models"):
        condition(hardware_models=models)


@pytest.mark.parametrize(
    "account",
    [
        "123456789012-compute@developer.gserviceaccount.com",
        "service-123456789012@gs-project-accounts.iam.gserviceaccount.com",
        "service-123456789012@gcp-sa-aiplatform.iam.gserviceaccount.com",
        "wl@p.iam.gserviceaccount.com",
        "ccp-workload@ccp-dev-project.iam.gserviceaccount.com' || true || '",
        "",
    ],
)
def test_gcp_refuses_default_agent_or_malformed_service_accounts(account: str) -> None:
    with pytest.raises(ValueError, match="is not a user-managed service account email"):
        gcp.attribute_condition(CS, workload_service_account=account)


@pytest.mark.parametrize("digest", ["sha256:" + "A1" * 32, "sha256:" + "a1" * 31, "a1" * 32, "sha256:*", "sha256:" + "a1" * 32 + "'"])
def test_gcp_refuses_anything_but_a_full_lowercase_digest(digest: str) -> None:
    with pytest.raises(ValueError):
        measurements(confidentialSpace={"imageDigests": [digest]})
    with pytest.raises(ValueError, match="is not an image digest"):
        gcp.check_digest(digest)


def test_gcp_no_confidential_space_section_means_no_condition() -> None:
    with pytest.raises(ValueError, match="measurements.confidentialSpace is absent"):
        condition(measurements=measurements(tdx={"mrtd": MRTD}))


def test_gcp_digests_are_sorted_and_deduplicated() -> None:
    other = "sha256:" + "b2" * 32
    assert gcp.approved_digests(measurements(confidentialSpace={"imageDigests": [other, DIGEST, other]})) == [DIGEST, other]


def test_gcp_condition_length_is_bounded() -> None:
    many = [f"sha256:{i:064x}" for i in range(1, 60)]
    with pytest.raises(ValueError, match="over the provider limit of 4096"):
        condition(measurements=measurements(confidentialSpace={"imageDigests": many}))


def test_gcp_cel_string_cannot_close_the_literal() -> None:
    assert gcp.cel_string("a'b\\c\nd\re") == "'a\\'b\\\\c\\nd\\re'"
    evil = "x' || true || '"
    assert gcp.evaluate_cel(f"{gcp.cel_string(evil)} == 'x'", {}) is not True


def test_gcp_subject_mapping_is_bounded_and_never_the_instance_link() -> None:
    mapping = gcp.attribute_mapping()
    assert mapping["attribute.image_digest"] == "assertion.submods.container.image_digest"
    assert "assertion.sub" not in mapping["google.subject"].replace("assertion.submods", "")
    subject = gcp.evaluate_cel(mapping["google.subject"], token())
    assert subject.startswith("gcpcs::" + DIGEST) and len(str(subject).encode()) <= gcp.MAX_SUBJECT_BYTES


@pytest.mark.parametrize(
    ("number", "pool", "match"),
    [("my-project", "ccp", "project number"), ("123", "CCP!", "workload identity pool id"), ("0123", "ccp-pool", "project number")],
)
def test_gcp_principal_set_refuses_bad_parts(number: str, pool: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        gcp.digest_principal_set(number, pool, DIGEST)


def test_gcp_principal_set_pins_the_digest_in_the_global_pool() -> None:
    assert gcp.digest_principal_set("123456789012", "ccp-pool", DIGEST) == (
        f"principalSet://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/ccp-pool/attribute.image_digest/{DIGEST}"
    )
