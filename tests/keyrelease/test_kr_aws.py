"""AWS IAM evaluation on cases from the IAM User Guide and the KMS Nitro Enclaves documentation."""

from __future__ import annotations

import pytest

from components.attestation.aws_key_policy import key_policy
from enclave_runtime.measurements import NitroMeasurements
from policies.review.key_release import aws
from policies.review.key_release.aws import PolicyError, Request, conditions_hold, evaluate

ROLE = "arn:aws:iam::111122223333:role/data-processing"
PCR0 = "9fedcba8abcdef7abcdef6abcdef5abcdef4abcdef3abcdef2abcdef1abcdef1abcdef1abcdef1abcdef1abcdef1abcdef"[:96]
IMAGE = "kms:RecipientAttestation:ImageSha384"


def doc_policy() -> dict:
    """The KMS guide's example: the data-processing role may decrypt only in the attested enclave."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Enable enclave data processing",
                "Effect": "Allow",
                "Principal": {"AWS": ROLE},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": "*",
                "Condition": {"StringEqualsIgnoreCase": {IMAGE: PCR0}},
            }
        ],
    }


def test_attested_request_with_the_image_digest_is_allowed_and_hex_case_is_ignored() -> None:
    assert evaluate(doc_policy(), Request(ROLE, "kms:Decrypt", {IMAGE: PCR0})) == "allow"
    assert evaluate(doc_policy(), Request(ROLE, "kms:Decrypt", {IMAGE: PCR0.upper()})) == "allow"


def test_string_equals_is_case_sensitive() -> None:
    condition = {"StringEquals": {IMAGE: PCR0}}
    assert conditions_hold(condition, {IMAGE: PCR0})
    assert not conditions_hold(condition, {IMAGE: PCR0.upper()})


def test_missing_condition_key_makes_the_condition_false_so_no_allow() -> None:
    # "If the request does not include a valid attestation document, permission is denied."
    assert evaluate(doc_policy(), Request(ROLE, "kms:Decrypt", {})) == "deny"


def test_explicit_deny_overrides_allow() -> None:
    policy = doc_policy()
    policy["Statement"].append(
        {
            "Sid": "DenyAll",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "kms:*",
            "Resource": "*",
        }
    )
    assert evaluate(policy, Request(ROLE, "kms:Decrypt", {IMAGE: PCR0})) == "deny"


def test_root_account_principal_delegates_to_iam_so_any_account_principal_matches() -> None:
    policy = {
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"}
        ]
    }
    assert evaluate(policy, Request(ROLE, "kms:Decrypt")) == "allow"
    assert evaluate(policy, Request("arn:aws:iam::444455556666:role/x", "kms:Decrypt")) == "deny"


def test_action_wildcards_match_case_insensitively() -> None:
    policy = {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "KMS:Generate*", "Resource": "*"}]}
    assert evaluate(policy, Request(ROLE, "kms:GenerateDataKeyPair")) == "allow"
    assert evaluate(policy, Request(ROLE, "kms:Decrypt")) == "deny"


@pytest.mark.parametrize(
    ("condition", "context", "expected"),
    [
        ({"Null": {IMAGE: "true"}}, {}, True),
        ({"Null": {IMAGE: "true"}}, {IMAGE: PCR0}, False),
        ({"Null": {IMAGE: "false"}}, {IMAGE: PCR0}, True),
        # Negated operators hold when the key is absent (IAM User Guide, condition operators).
        ({"StringNotEqualsIgnoreCase": {IMAGE: PCR0}}, {}, True),
        ({"StringNotEqualsIgnoreCase": {IMAGE: PCR0}}, {IMAGE: PCR0.upper()}, False),
        ({"StringEqualsIfExists": {IMAGE: PCR0}}, {}, True),
        ({"StringEqualsIfExists": {IMAGE: PCR0}}, {IMAGE: "0" * 96}, False),
        ({"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/data-*"}}, {"aws:PrincipalArn": ROLE}, True),
        ({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/*"}}, {"aws:PrincipalArn": ROLE}, True),
        ({"ArnEquals": {"aws:PrincipalArn": ROLE}}, {"aws:PrincipalArn": ROLE.upper()}, False),
        ({"ArnNotEquals": {"aws:PrincipalArn": ROLE}}, {}, True),
        ({"Bool": {"aws:SecureTransport": "TRUE"}}, {"aws:SecureTransport": "true"}, True),
        ({"Bool": {"aws:SecureTransport": "true"}}, {}, False),
        # Several values for one key: any of them (OR); several keys: all (AND); key names ignore case.
        ({"StringEquals": {"kms:CallerAccount": ["1", "2"]}}, {"KMS:callerAccount": "2"}, True),
        ({"StringEquals": {"kms:CallerAccount": "1", "aws:PrincipalAccount": "1"}}, {"kms:CallerAccount": "1"}, False),
        # Multivalued keys need set operators; ForAllValues is true on a missing key, ForAnyValue false.
        ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["a"]}}, {"aws:TagKeys": ["b", "a"]}, True),
        ({"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}, {"aws:TagKeys": ["b", "a"]}, False),
        ({"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}, {}, True),
        ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["a"]}}, {}, False),
    ],
)
def test_condition_operators(condition: dict, context: dict, expected: bool) -> None:
    assert conditions_hold(condition, context) is expected


def test_single_valued_operator_over_a_multivalued_key_is_refused_not_guessed() -> None:
    with pytest.raises(PolicyError, match="ForAnyValue/ForAllValues"):
        conditions_hold({"StringEquals": {"aws:TagKeys": "a"}}, {"aws:TagKeys": ["a", "b"]})


def test_unmodelled_operator_is_an_error() -> None:
    with pytest.raises(PolicyError, match="NumericLessThan"):
        conditions_hold({"NumericLessThan": {"x": "1"}}, {"x": "0"})


def _generated(owner: str | None = None) -> tuple[dict, dict[str, str]]:
    pcrs = {"pcr0": "a" * 96, "pcr8": "b" * 96}
    measurements = NitroMeasurements(pcr0=pcrs["pcr0"], pcr8=pcrs["pcr8"], pin=["pcr0", "pcr8"])
    policy = key_policy(
        measurements,
        account_id="111122223333",
        enclave_role_arn=ROLE,
        admin_principal_arn="arn:aws:iam::111122223333:role/key-admin",
        owner_principal_arn=owner,
    )
    full = {p: pcrs.get(p, "c" * 96) for p in ("pcr0", "pcr1", "pcr2", "pcr8")}
    return policy, full


def test_generated_policy_releases_only_to_the_attested_approved_enclave() -> None:
    policy, pcrs = _generated()
    assert aws.approved_release(policy, ROLE, pcrs)
    assert not aws.release(policy, ROLE, {p: "0" * 96 for p in pcrs})  # debug mode
    assert not aws.release(policy, ROLE, pcrs | {"pcr8": "d" * 96})  # another signer
    assert not aws.release(policy, ROLE, None)  # parent instance without Recipient
    assert not aws.release(policy, "arn:aws:iam::111122223333:role/key-admin", None)
    assert not aws.release(policy, "arn:aws:iam::444455556666:role/data-processing", pcrs)


def test_generated_owner_exemption_releases_to_the_owner_only() -> None:
    owner = "arn:aws:iam::111122223333:role/hospital-analyst"
    policy, _ = _generated(owner)
    assert aws.release(policy, owner, None)
    assert not aws.release(policy, ROLE, None)
