"""The generated KMS key policy: attested release only, no bypass, no debug PCRs."""

from __future__ import annotations

from typing import Any

import pytest

from components.attestation.aws_key_policy import (
    ADMIN_ACTIONS,
    DATA_PLANE_ACTIONS,
    IMAGE_SHA384,
    key_policy,
)
from enclave_runtime.measurements import NitroMeasurements

PCR0 = "eecef00a5261e0bff06cafee3b679a74b1fd018983c924a5ee535aba84408d02d2b3d5d161d0c16afaccffc90a5c14a0"
PCR8 = "9520d2eb58ca9ccfefeed1a3d4ead0af897f14114c18f47bf99fdad448b1c2472f970ad64028c43d010ab2aaf9b67df0"
ROLE = "arn:aws:iam::111122223333:role/ccp-dev-demo-dev-enclave"
ADMIN = "arn:aws:iam::111122223333:role/clinic-aws-key-break-glass"
OWNER = "arn:aws:iam::111122223333:role/clinic-data-owner"


def policy(pin: list[str], **kwargs: Any) -> dict[str, Any]:
    measurements = NitroMeasurements(pcr0=PCR0, pcr8=PCR8, pin=pin)
    return key_policy(
        measurements, account_id="111122223333", enclave_role_arn=ROLE, admin_principal_arn=ADMIN, **kwargs
    )


def by_sid(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in document["Statement"]}


def actions(statement: dict[str, Any]) -> set[str]:
    value = statement["Action"]
    return {value} if isinstance(value, str) else set(value)


def test_pcr0_only_allow_pins_image_digest() -> None:
    allow = by_sid(policy(["pcr0"]))["AllowDecryptByAttestedEnclave"]
    assert allow["Effect"] == "Allow"
    assert allow["Principal"] == {"AWS": ROLE}
    assert allow["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert allow["Condition"]["StringEqualsIgnoreCase"] == {IMAGE_SHA384: PCR0}


def test_pcr0_and_pcr8_allow_pins_both() -> None:
    statements = by_sid(policy(["pcr0", "pcr8"]))
    assert statements["AllowDecryptByAttestedEnclave"]["Condition"]["StringEqualsIgnoreCase"] == {
        IMAGE_SHA384: PCR0,
        "kms:RecipientAttestation:PCR8": PCR8,
    }
    assert statements["DenyDecryptByUnapprovedEnclavePCR0"]["Condition"] == {
        "Null": {IMAGE_SHA384: "false"},
        "StringNotEqualsIgnoreCase": {IMAGE_SHA384: PCR0},
    }
    assert statements["DenyDecryptByUnapprovedEnclavePCR8"]["Condition"] == {
        "Null": {IMAGE_SHA384: "false"},
        "StringNotEqualsIgnoreCase": {"kms:RecipientAttestation:PCR8": PCR8},
    }


def test_pcr8_only_still_denies_unattested_on_image_digest_key() -> None:
    statements = by_sid(policy(["pcr8"]))
    assert statements["AllowDecryptByAttestedEnclave"]["Condition"]["StringEqualsIgnoreCase"] == {
        "kms:RecipientAttestation:PCR8": PCR8
    }
    deny = statements["DenyDecryptWithoutAttestation"]
    assert deny["Condition"] == {"Null": {IMAGE_SHA384: "true"}}
    assert "DenyDecryptByUnapprovedEnclavePCR0" not in statements


def test_deny_without_attestation_covers_every_data_plane_action_for_everyone() -> None:
    deny = by_sid(policy(["pcr0"]))["DenyDecryptWithoutAttestation"]
    assert deny["Effect"] == "Deny"
    assert deny["Principal"] == "*"
    assert actions(deny) == {
        "kms:Decrypt",
        "kms:DeriveSharedSecret",
        "kms:GenerateDataKey",
        "kms:GenerateDataKeyPair",
        "kms:ReEncryptFrom",
    }
    assert deny["Condition"] == {"Null": {IMAGE_SHA384: "true"}}


def test_admin_has_no_data_plane_action_and_no_wildcard() -> None:
    admin = by_sid(policy(["pcr0"]))["KeyAdministration"]
    assert admin["Principal"] == {"AWS": ADMIN}
    assert actions(admin) == set(ADMIN_ACTIONS)
    assert not actions(admin) & set(DATA_PLANE_ACTIONS)
    assert not any("*" in a for a in actions(admin))
    assert "kms:CreateGrant" not in actions(admin)
    assert admin["Condition"] == {"Bool": {"aws:MultiFactorAuthPresent": "true"}}


@pytest.mark.parametrize("admin", ["arn:aws:iam::111122223333:root", "111122223333", "arn:aws:iam::111122223333:role/*"])
def test_account_root_or_wildcard_admin_is_refused(admin: str) -> None:
    with pytest.raises(ValueError, match="break-glass role"):
        key_policy(NitroMeasurements(pcr0=PCR0), account_id="111122223333", enclave_role_arn=ROLE, admin_principal_arn=admin)


def test_pcr3_pin_compares_the_parent_role_register() -> None:
    pcr3 = "3c" * 48
    allow = by_sid(key_policy(
        NitroMeasurements(pcr0=PCR0, pcr3=pcr3, pin=["pcr0", "pcr3"]), account_id="111122223333", enclave_role_arn=ROLE, admin_principal_arn=ADMIN
    ))["AllowDecryptByAttestedEnclave"]
    assert allow["Condition"]["StringEqualsIgnoreCase"]["kms:RecipientAttestation:PCR3"] == pcr3


def test_owner_decrypt_is_off_by_default() -> None:
    statements = by_sid(policy(["pcr0"]))
    assert "AllowOwnerDecryptOutsideEnclave" not in statements
    assert "ArnNotEquals" not in statements["DenyDecryptWithoutAttestation"]["Condition"]


def test_owner_opt_in_is_the_only_exemption() -> None:
    statements = by_sid(policy(["pcr0"], owner_principal_arn=OWNER))
    owner = statements["AllowOwnerDecryptOutsideEnclave"]
    assert owner["Principal"] == {"AWS": OWNER}
    assert owner["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert statements["DenyDecryptWithoutAttestation"]["Condition"] == {
        "Null": {IMAGE_SHA384: "true"},
        "ArnNotEquals": {"aws:PrincipalArn": OWNER},
    }


@pytest.mark.parametrize("owner", [None, OWNER])
def test_no_allow_grants_data_plane_without_attestation_except_opt_in_owner(owner: str | None) -> None:
    document = policy(["pcr0", "pcr8"], owner_principal_arn=owner, encrypt_principal_arn=OWNER)
    for statement in document["Statement"]:
        if statement["Effect"] != "Allow" or not actions(statement) & set(DATA_PLANE_ACTIONS):
            continue
        if statement["Sid"] == "AllowOwnerDecryptOutsideEnclave":
            assert owner is not None
            continue
        condition = statement.get("Condition", {}).get("StringEqualsIgnoreCase", {})
        assert condition.get(IMAGE_SHA384) == PCR0, statement["Sid"]


def test_envelope_encrypt_statement_returns_no_plaintext() -> None:
    encrypt = by_sid(policy(["pcr0"], encrypt_principal_arn=OWNER))["AllowOwnerEnvelopeEncrypt"]
    assert encrypt["Action"] == ["kms:Encrypt", "kms:DescribeKey"]


def test_all_zero_pcr_is_refused() -> None:
    debug = NitroMeasurements(pcr0="0" * 96, pin=["pcr0"])
    with pytest.raises(ValueError, match="all-zero pcr0.*debug-mode enclave"):
        key_policy(debug, account_id="111122223333", enclave_role_arn=ROLE, admin_principal_arn=ADMIN)


def test_principal_in_other_partition_is_refused() -> None:
    with pytest.raises(ValueError, match="not an ARN in partition 'aws'"):
        policy(["pcr0"], owner_principal_arn="arn:aws-cn:iam::111122223333:root")


def test_sids_are_stable_and_ordered() -> None:
    assert [s["Sid"] for s in policy(["pcr0", "pcr8"], owner_principal_arn=OWNER, encrypt_principal_arn=OWNER)["Statement"]] == [
        "AllowDecryptByAttestedEnclave",
        "DenyDecryptWithoutAttestation",
        "DenyDecryptByUnapprovedEnclavePCR0",
        "DenyDecryptByUnapprovedEnclavePCR8",
        "KeyAdministration",
        "DenyPolicyChangeExceptBreakGlass",
        "AllowOwnerEnvelopeEncrypt",
        "AllowOwnerDecryptOutsideEnclave",
    ]
