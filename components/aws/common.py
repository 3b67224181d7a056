"""Small helpers every AWS component shares: child options, deterministic names and ARNs, JSON docs.

Names and ARNs are computed from config (not from provider outputs) wherever AWS lets us choose them,
so that the policies that reference them are known at `pulumi preview` and the review can read them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi_aws as aws

from components.common import bounded
from components.common import child as child  # the one shape, re-exported for the AWS components


def to_json(document: dict[str, Any]) -> str:
    """Policy documents are serialised one way everywhere, so rules parse one shape."""
    return json.dumps(document, sort_keys=False, separators=(",", ":"))


def short_name(*parts: str, limit: int = 63) -> str:
    """Parts joined with '-', bounded to `limit` (S3 bucket and IAM names allow 63/64)."""
    return bounded("-".join(p for p in parts if p), limit)


@dataclass(frozen=True)
class Account:
    """Where the stack deploys: the ARNs we build must name this account and partition."""

    account_id: str
    partition: str = "aws"

    @classmethod
    def current(cls) -> "Account":
        """The deploying credentials' account (an invoke, answered at preview too)."""
        identity = aws.get_caller_identity()
        partition = aws.get_partition()
        return cls(account_id=identity.account_id, partition=partition.partition)

    @property
    def root_arn(self) -> str:
        return f"arn:{self.partition}:iam::{self.account_id}:root"

    def role_arn(self, role_name: str) -> str:
        return f"arn:{self.partition}:iam::{self.account_id}:role/{role_name}"

    def bucket_arn(self, bucket_name: str) -> str:
        return f"arn:{self.partition}:s3:::{bucket_name}"

    def service(self, name: str, region: str) -> str:
        """A regional service endpoint name, e.g. `com.amazonaws.eu-west-1.kms`."""
        return f"com.amazonaws.{region}.{name}"


def deny_insecure_transport(bucket_arn: str) -> dict[str, Any]:
    """Bucket policy statement refusing any request not made over TLS."""
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
