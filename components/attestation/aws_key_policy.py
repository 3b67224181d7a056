"""The AWS KMS key policy that releases a party's data key only to an attested Nitro enclave.

Pure: measurements and principals in, policy document (a dict) out, so the same function serves the
component, the tests and the offline review.

Facts it relies on (AWS KMS developer guide, "Condition keys for AWS Nitro Enclaves",
https://docs.aws.amazon.com/kms/latest/developerguide/conditions-nitro-enclave.html):
- `kms:RecipientAttestation:ImageSha384` is PCR0 of the signed attestation document and is effective
  for Decrypt, DeriveSharedSecret, GenerateDataKey, GenerateDataKeyPair and GenerateRandom only when
  the request's `Recipient` carries a signed Nitro attestation document. Every Nitro attestation
  document carries PCR0 (the image digest), so the key is present in *every* attested request and
  absent from every unattested one: that is why the Deny-if-`Null` checks ImageSha384 even when only
  PCR8 is pinned (a `Null` check on PCR8 alone would read the same, but ImageSha384 is the key the
  documentation ties to the attested-request definition).
- `kms:RecipientAttestation:PCR<n>` compares the other PCRs; values are lowercase hex SHA-384 and
  are compared with `StringEqualsIgnoreCase`.

Shape of the document (Sids are stable; reviews and rules key on them):
- `AllowDecryptByAttestedEnclave`: the enclave host role may Decrypt/GenerateDataKey only with the
  pinned measurements.
- `DenyDecryptWithoutAttestation`: every data-plane action is denied to every principal when the
  request has no attestation (closes the bypass through a parent-instance call without `Recipient`,
  grants or IAM). Only the opt-in owner is exempt (`ArnNotEquals aws:PrincipalArn`).
- `DenyDecryptByUnapprovedEnclave<PCRn>`: one Deny per pinned register for attested requests whose
  value differs. A Deny beats any Allow, so a grant or a future Allow cannot release the key to a
  different (or debug-mode, all-zero) enclave either.
- `KeyAdministration`: the party's named break-glass role only, and only in an MFA session
  (`Bool aws:MultiFactorAuthPresent = true`); administration only: no data-plane action, no `kms:*`,
  no CreateGrant (a grant is a way to hand out data-plane rights). Never the account root: per the
  KMS guide ("Default key policy") a statement naming `arn:aws:iam::<account>:root` delegates to IAM,
  so every identity of the account with an IAM allow of `kms:PutKeyPolicy` (AdministratorAccess,
  OrganizationAccountAccessRole) could replace the policy and drop the attestation conditions.
- `DenyPolicyChangeExceptBreakGlass`: an explicit Deny, to every principal whose `aws:PrincipalArn`
  is not the break-glass role (`ArnNotEquals`, the form the IAM User Guide recommends over
  `NotPrincipal`; for an assumed-role session `aws:PrincipalArn` is the role's ARN, and a caller
  without the key, e.g. a service principal, is denied too), of every call that changes who can use
  the key: PutKeyPolicy, CreateGrant, ReplicateKey (a multi-region replica is created with a policy
  the caller chooses), UpdateAlias/DeleteAlias (re-pointing `alias/ccp/<party>/data` at a key the
  caller controls would make owners seal their data under it). An IAM allow cannot override it. The
  break-glass role keeps PutKeyPolicy, so the key stays manageable and KMS' lockout safety check
  holds: that check requires the CreateKey/PutKeyPolicy caller to be able to call PutKeyPolicy
  under the new policy, so the party's key is created (and its policy changed) by its break-glass
  role in an MFA session, never with `BypassPolicyLockoutSafetyCheck`.
- `AllowOwnerEnvelopeEncrypt` (optional): `kms:Encrypt` lets the data owner wrap locally generated
  data keys for the enclave; Encrypt never returns plaintext.
- `AllowOwnerDecryptOutsideEnclave` (optional, off by default): the party's own principal may decrypt
  without attestation. It exists only when the party's config opts in.
"""

from __future__ import annotations

import re
from typing import Any, Final

from enclave_runtime.measurements import NitroMeasurements, is_all_zero

ATTESTATION_KEY_PREFIX: Final = "kms:RecipientAttestation:"
IMAGE_SHA384: Final = "kms:RecipientAttestation:ImageSha384"

SID_ALLOW_ENCLAVE: Final = "AllowDecryptByAttestedEnclave"
SID_DENY_UNATTESTED: Final = "DenyDecryptWithoutAttestation"
SID_DENY_UNAPPROVED_PREFIX: Final = "DenyDecryptByUnapprovedEnclave"
SID_ADMIN: Final = "KeyAdministration"
SID_DENY_POLICY_CHANGE: Final = "DenyPolicyChangeExceptBreakGlass"
SID_OWNER_ENCRYPT: Final = "AllowOwnerEnvelopeEncrypt"
SID_OWNER_DECRYPT: Final = "AllowOwnerDecryptOutsideEnclave"

# What the attested enclave may do: unwrap a data key, or create one for new results.
ENCLAVE_ACTIONS: Final[tuple[str, ...]] = ("kms:Decrypt", "kms:GenerateDataKey")

# Every action that yields key material or plaintext to the caller (or re-encrypts ciphertext under
# a key the caller may control). GenerateDataKeyWithoutPlaintext / GenerateDataKeyPairWithoutPlaintext
# and Encrypt return no plaintext and are not denied.
DATA_PLANE_ACTIONS: Final[tuple[str, ...]] = (
    "kms:Decrypt",
    "kms:DeriveSharedSecret",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyPair",
    "kms:ReEncryptFrom",
)

# Key administration (KMS developer guide, "Allows key administrators to administer the KMS key"),
# without CreateGrant/RetireGrant: grants would be a side door to data-plane rights.
ADMIN_ACTIONS: Final[tuple[str, ...]] = (
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
)


# Calls that change who can use the key; denied to everyone but the break-glass role.
POLICY_CHANGE_ACTIONS: Final[tuple[str, ...]] = (
    "kms:PutKeyPolicy",
    "kms:CreateGrant",
    "kms:ReplicateKey",
    "kms:UpdateAlias",
    "kms:DeleteAlias",
)
MFA_CONDITION: Final = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
ACCOUNT_ROOT: Final = re.compile(r"^(arn:[a-z-]+:iam::\d{12}:root|\d{12})$")
BREAK_GLASS_ROLE: Final = re.compile(r"^arn:([a-z-]+):iam::(\d{12}):role/[\w+=,.@/-]+$")


def check_admin_principal(admin_principal_arn: str) -> None:
    """Refuse an administrator that is not one named IAM role (an account root, a bare account id)."""
    if ACCOUNT_ROOT.match(admin_principal_arn) or not BREAK_GLASS_ROLE.match(admin_principal_arn):
        raise ValueError(
            f"admin_principal_arn {admin_principal_arn!r} is not an IAM role ARN: the key's administrator is "
            "the party's named break-glass role (arn:aws:iam::<account>:role/<name>), never the account root, "
            "which delegates kms:PutKeyPolicy to every IAM administrator of the account"
        )


def break_glass_statements(admin_principal_arn: str) -> list[dict[str, Any]]:
    """`KeyAdministration` (the break-glass role, MFA) and `DenyPolicyChangeExceptBreakGlass`.

    The administration model of every party key, attestation-bound (data) or service-bound
    (storage): the same two statements, so neither key can be re-policied by the account's IAM
    administrators. Neither grants nor exempts CreateGrant for AWS-resource grants: the party keys'
    services (S3 SSE-KMS for the storage key) call Encrypt/Decrypt/GenerateDataKey through
    `kms:ViaService` and create no grants.
    """
    check_admin_principal(admin_principal_arn)
    return [
        {
            "Sid": SID_ADMIN,
            "Effect": "Allow",
            "Principal": {"AWS": admin_principal_arn},
            "Action": list(ADMIN_ACTIONS),
            "Resource": "*",
            "Condition": {op: dict(keys) for op, keys in MFA_CONDITION.items()},
        },
        {
            "Sid": SID_DENY_POLICY_CHANGE,
            "Effect": "Deny",
            "Principal": "*",
            "Action": list(POLICY_CHANGE_ACTIONS),
            "Resource": "*",
            "Condition": {"ArnNotEquals": {"aws:PrincipalArn": admin_principal_arn}},
        },
    ]


def condition_key(pcr: str) -> str:
    """The KMS condition key for a pinned register: PCR0 is the image digest (ImageSha384)."""
    if pcr == "pcr0":
        return IMAGE_SHA384
    return f"{ATTESTATION_KEY_PREFIX}PCR{pcr.removeprefix('pcr')}"


def attestation_condition(measurements: NitroMeasurements) -> dict[str, str]:
    """Condition key -> required value for every pinned register; refuses debug-mode values."""
    pinned = measurements.pinned()
    zero = [name for name, value in pinned.items() if is_all_zero(value)]
    if zero:
        raise ValueError(
            f"refusing to bind a key to all-zero {', '.join(zero)}: that is what a debug-mode enclave "
            "reports, so the key would be released to any debug enclave; pin the release build's value"
        )
    return {condition_key(name): value for name, value in pinned.items()}


def key_policy(
    measurements: NitroMeasurements,
    *,
    account_id: str,
    enclave_role_arn: str,
    admin_principal_arn: str,
    owner_principal_arn: str | None = None,
    encrypt_principal_arn: str | None = None,
    partition: str = "aws",
) -> dict[str, Any]:
    """The key policy document for one party's data key.

    `owner_principal_arn` is passed only when the party opted in to decrypt outside the enclave;
    `encrypt_principal_arn` (usually the same owner) may wrap data keys with `kms:Encrypt`.
    `account_id` and `partition` scope the enclave Allow with `aws:PrincipalAccount`, so a
    look-alike role ARN in another partition or account never matches. `account_id` is the
    enclave role's (workload) account, which is not the key's account when the party's key lives in
    its own account: `aws:PrincipalAccount` is the account of the calling principal, so it must be
    the account in `enclave_role_arn` (refused otherwise: the Allow would never match).
    `admin_principal_arn` is the party's break-glass IAM role: an account root (or bare account id)
    is refused.
    """
    check_admin_principal(admin_principal_arn)
    role_account = enclave_role_arn.split(":")[4:5]
    if role_account != [account_id]:
        raise ValueError(
            f"account_id {account_id!r} is not the account of enclave_role_arn {enclave_role_arn!r}: "
            "aws:PrincipalAccount is the calling principal's account, so pass the enclave role's "
            "(workload) account, not the key's"
        )
    for what, arn in (
        ("enclave_role_arn", enclave_role_arn),
        ("admin_principal_arn", admin_principal_arn),
        ("owner_principal_arn", owner_principal_arn),
        ("encrypt_principal_arn", encrypt_principal_arn),
    ):
        if arn is not None and not arn.startswith(f"arn:{partition}:"):
            raise ValueError(f"{what} {arn!r} is not an ARN in partition {partition!r}")
    pinned = attestation_condition(measurements)
    unattested_condition: dict[str, Any] = {"Null": {IMAGE_SHA384: "true"}}
    if owner_principal_arn is not None:
        unattested_condition["ArnNotEquals"] = {"aws:PrincipalArn": owner_principal_arn}

    statements: list[dict[str, Any]] = [
        {
            "Sid": SID_ALLOW_ENCLAVE,
            "Effect": "Allow",
            "Principal": {"AWS": enclave_role_arn},
            "Action": list(ENCLAVE_ACTIONS),
            "Resource": "*",
            "Condition": {
                "StringEqualsIgnoreCase": dict(pinned),
                "StringEquals": {"aws:PrincipalAccount": account_id},
            },
        },
        {
            "Sid": SID_DENY_UNATTESTED,
            "Effect": "Deny",
            "Principal": "*",
            "Action": list(DATA_PLANE_ACTIONS),
            "Resource": "*",
            "Condition": unattested_condition,
        },
    ]
    for key, value in pinned.items():
        register = "PCR0" if key == IMAGE_SHA384 else key.removeprefix(ATTESTATION_KEY_PREFIX)
        statements.append(
            {
                "Sid": f"{SID_DENY_UNAPPROVED_PREFIX}{register}",
                "Effect": "Deny",
                "Principal": "*",
                "Action": list(DATA_PLANE_ACTIONS),
                "Resource": "*",
                "Condition": {
                    "Null": {IMAGE_SHA384: "false"},
                    "StringNotEqualsIgnoreCase": {key: value},
                },
            }
        )
    statements += break_glass_statements(admin_principal_arn)
    if encrypt_principal_arn is not None:
        statements.append(
            {
                "Sid": SID_OWNER_ENCRYPT,
                "Effect": "Allow",
                "Principal": {"AWS": encrypt_principal_arn},
                "Action": ["kms:Encrypt", "kms:DescribeKey"],
                "Resource": "*",
            }
        )
    if owner_principal_arn is not None:
        statements.append(
            {
                "Sid": SID_OWNER_DECRYPT,
                "Effect": "Allow",
                "Principal": {"AWS": owner_principal_arn},
                "Action": list(ENCLAVE_ACTIONS),
                "Resource": "*",
            }
        )
    return {"Version": "2012-10-17", "Id": "ccp-attested-data-key", "Statement": statements}
