"""Customer-managed keys for infrastructure (EBS volumes, storage SSE, audit logs, EKS secrets).

These are not party data keys: AWS services use them on a caller's behalf, so they cannot require
an attestation document. Each one is still scoped: administration by the account (IAM-delegated;
a party's storage key instead by the party's break-glass role, see `storage.py`), use only through the named AWS service (`kms:ViaService`) or by the named service principal with
its encryption context (the `aws-kms-key-enforce-via-service` rule checks exactly that). Each is
tagged with its service purpose (components/key_purpose.py). Party data keys live in `party_key.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Sequence

import pulumi
import pulumi_aws as aws

from components.attestation.aws_key_policy import ADMIN_ACTIONS
from components.aws.common import Account, child, to_json
from components.key_purpose import SERVICE, purpose_tags

USE_ACTIONS: Final[tuple[str, ...]] = (
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:DescribeKey",
)


def admin_statement(account: Account) -> dict[str, Any]:
    return {
        "Sid": "KeyAdministration",
        "Effect": "Allow",
        "Principal": {"AWS": account.root_arn},
        "Action": list(ADMIN_ACTIONS),
        "Resource": "*",
    }


def _via(service: str, region: str, account: Account) -> dict[str, str]:
    return {"kms:ViaService": f"{service}.{region}.amazonaws.com", "kms:CallerAccount": account.account_id}


def _principal(principals: Sequence[str]) -> dict[str, Any]:
    return {"AWS": sorted(principals) if len(principals) > 1 else principals[0]}


def via_service_statement(
    sid: str,
    principals: Sequence[str],
    service: str,
    region: str,
    account: Account,
    *,
    actions: Sequence[str] = USE_ACTIONS,
) -> dict[str, Any]:
    """Use of the key by `principals` only when `service` calls KMS for them in `region`."""
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": _principal(principals),
        "Action": list(actions),
        "Resource": "*",
        "Condition": {"StringEquals": _via(service, region, account)},
    }


def via_service_grant_statement(
    sid: str, principals: Sequence[str], service: str, region: str, account: Account
) -> dict[str, Any]:
    """Grants for AWS resources (EBS volumes, EKS), created through `service` only.

    A separate statement: `kms:GrantIsForAWSResource` exists only in grant requests, so in the use
    statement it would refuse every Decrypt/GenerateDataKey call.
    """
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": _principal(principals),
        "Action": ["kms:CreateGrant"],
        "Resource": "*",
        "Condition": {
            "StringEquals": _via(service, region, account),
            "Bool": {"kms:GrantIsForAWSResource": "true"},
        },
    }


@dataclass(frozen=True)
class ServiceKeyArgs:
    region: str
    description: str
    purpose: str
    policy: dict[str, Any]
    tags: dict[str, str]


class ServiceKey(pulumi.ComponentResource):
    key: aws.kms.Key

    def __init__(self, name: str, args: ServiceKeyArgs, opts: pulumi.ResourceOptions | None = None):
        if args.purpose not in SERVICE:
            raise ValueError(
                f"{name}: a service key's purpose is one of {sorted(SERVICE)}, not {args.purpose!r} "
                "(party data keys are PartyDataKey: released only to the attested enclave)"
            )
        super().__init__("ccp:aws:ServiceKey", name, None, opts)
        self.policy_document = args.policy
        self.key = aws.kms.Key(
            name,
            region=args.region,
            description=args.description,
            enable_key_rotation=True,
            rotation_period_in_days=90,
            deletion_window_in_days=30,
            multi_region=False,
            policy=to_json(args.policy),
            tags={**args.tags, **purpose_tags(args.purpose)},
            opts=child(self),
        )
        self.register_outputs({"arn": self.key.arn})
