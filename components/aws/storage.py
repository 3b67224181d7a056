"""A party's storage: a private bucket only the enclave role and the party's owner can touch.

Two layers of encryption, on purpose:
- Content: objects are envelope-encrypted by the owner under the party's attestation-bound data key
  (`PartyDataKey`), so what S3 hands to the parent instance is ciphertext only the enclave can open.
- At rest: SSE-KMS with a per-party *storage* key (bucket key on). It cannot be the attestation-bound
  data key: S3 calls KMS Decrypt/GenerateDataKey for the requester without an attestation document,
  which that key's `DenyDecryptWithoutAttestation` refuses, so neither the owner's upload nor the
  parent's download would work. The storage key is usable only through S3 (`kms:ViaService`) by
  the same two principals the bucket policy admits, and administered like the data key: by the
  party's break-glass role in an MFA session, never the account root, with PutKeyPolicy/CreateGrant/
  ReplicateKey/alias changes explicitly denied to everyone else (`aws_key_policy.break_glass_statements`).
  S3 SSE-KMS calls GenerateDataKey/Decrypt for the requester and creates no grants, so the Deny of
  CreateGrant costs it nothing (EBS, which does create grants, uses the shared `disk` key).
  When the party's keys live in its own account (`deployRole`), the storage key is declared there
  with the party's provider; the buckets stay in the deploying (workload) account, whose callers
  (`kms:CallerAccount`) reach the key through S3 cross-account.

The bucket policy denies non-TLS requests and every object or listing request from any principal
other than the enclave role and the owner; access is logged to a separate SSE-S3 bucket (S3 server
access logging cannot deliver to SSE-KMS buckets); noncurrent versions expire.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_aws as aws

from components.aws.bucket import PrivateBucket, PrivateBucketArgs
from components.aws.common import Account, child, short_name
from components.attestation.aws_key_policy import break_glass_statements
from components.aws.keys import ServiceKey, ServiceKeyArgs, via_service_statement
from components.key_purpose import PARTY_STORAGE

DATA_ACTIONS: Final[tuple[str, ...]] = (
    "s3:*Object*",
    "s3:ListBucket*",
    "s3:*MultipartUpload*",
)


def restrict_principals(bucket_arn: str, allowed_principal_arns: list[str]) -> dict[str, Any]:
    return {
        "Sid": "DenyOtherPrincipals",
        "Effect": "Deny",
        "Principal": "*",
        "Action": list(DATA_ACTIONS),
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"ArnNotEquals": {"aws:PrincipalArn": sorted(allowed_principal_arns)}},
    }


def allow_access_log_delivery(log_bucket_arn: str, source_bucket_arn: str, account: Account) -> dict[str, Any]:
    return {
        "Sid": "S3ServerAccessLogsDelivery",
        "Effect": "Allow",
        "Principal": {"Service": "logging.s3.amazonaws.com"},
        "Action": "s3:PutObject",
        "Resource": f"{log_bucket_arn}/*",
        "Condition": {
            "ArnLike": {"aws:SourceArn": source_bucket_arn},
            "StringEquals": {"aws:SourceAccount": account.account_id},
        },
    }


@dataclass(frozen=True)
class PartyStorageArgs:
    party: str
    collaboration: str
    environment: str
    region: str
    account: Account
    enclave_role_arn: str
    tags: dict[str, str]
    # The party's break-glass IAM role: the storage key's only administrator (MFA), as for its data key.
    break_glass_principal_arn: str
    owner_principal_arn: str | None = None
    noncurrent_version_days: int = 90
    # The party's own-account provider (`deployRole`) when its keys live outside the deploying
    # account: the storage key is declared with it; the buckets stay with the enclave (`account`).
    key_provider: pulumi.ProviderResource | None = None


class PartyStorage(pulumi.ComponentResource):
    bucket: aws.s3.Bucket
    bucket_name: str
    bucket_arn: str
    storage_key: aws.kms.Key

    def __init__(self, name: str, args: PartyStorageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:aws:PartyStorage", name, None, opts)
        account = args.account
        principals = [args.enclave_role_arn, *([args.owner_principal_arn] if args.owner_principal_arn else [])]
        storage_key = ServiceKey(
            f"{name}-key",
            ServiceKeyArgs(
                region=args.region,
                description=f"ccp storage (SSE-KMS) key of party {args.party}: usable through S3 only",
                purpose=PARTY_STORAGE,
                policy={
                    "Version": "2012-10-17",
                    "Statement": [
                        *break_glass_statements(args.break_glass_principal_arn),
                        via_service_statement("UseThroughS3", principals, "s3", args.region, account),
                    ],
                },
                tags=args.tags,
            ),
            opts=child(self, provider=args.key_provider),
        )
        self.storage_key = storage_key.key
        base = (args.collaboration, args.environment, args.party)
        self.bucket_name = short_name(*base, "data", account.account_id, args.region)
        self.bucket_arn = account.bucket_arn(self.bucket_name)
        log_name = short_name(*base, "access-logs", account.account_id, args.region)
        log_arn = account.bucket_arn(log_name)
        logs = PrivateBucket(
            f"{name}-access-logs",
            PrivateBucketArgs(
                region=args.region,
                bucket_name=log_name,
                bucket_arn=log_arn,
                tags=args.tags,
                kms_key_arn=None,
                statements=lambda arn: [allow_access_log_delivery(arn, self.bucket_arn, account)],
                noncurrent_version_days=args.noncurrent_version_days,
            ),
            opts=child(self),
        )
        data = PrivateBucket(
            f"{name}-data",
            PrivateBucketArgs(
                region=args.region,
                bucket_name=self.bucket_name,
                bucket_arn=self.bucket_arn,
                tags=args.tags,
                kms_key_arn=storage_key.key.arn,
                statements=lambda arn: [restrict_principals(arn, principals)],
                access_log_bucket=logs.bucket.id,
                noncurrent_version_days=args.noncurrent_version_days,
            ),
            opts=child(self),
        )
        self.bucket = data.bucket
        self.bucket_policy_document = data.policy_document
        self.register_outputs({"bucket": self.bucket_name, "storageKeyArn": storage_key.key.arn})
