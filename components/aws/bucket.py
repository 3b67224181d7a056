"""One private, encrypted, versioned S3 bucket with its v7 side resources, declared one way.

pulumi-aws v7 keeps each bucket setting in its own resource (`BucketServerSideEncryptionConfiguration`,
`BucketPublicAccessBlock`, `BucketVersioning`, ...); rules pair them with the bucket at stack level.
Party data, access logs and CloudTrail logs all use this component, so none can drift from the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import pulumi
import pulumi_aws as aws

from components.aws.common import child, deny_insecure_transport, to_json

# S3 server access logs can only be delivered to a target bucket encrypted with SSE-S3
# (https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html).
SSE_S3 = "AES256"
SSE_KMS = "aws:kms"


@dataclass(frozen=True)
class PrivateBucketArgs:
    """`bucket_name` is chosen by ccp (deterministic), so the policy naming it is known at preview.

    `kms_key_arn` None means SSE-S3, which only access-log target buckets may use.
    `statements(bucket_arn)` adds bucket-policy statements after the TLS-only deny.
    """

    region: str
    bucket_name: str
    bucket_arn: str
    tags: dict[str, str]
    kms_key_arn: pulumi.Input[str] | None = None
    statements: Callable[[str], list[dict[str, Any]]] = lambda _arn: []
    access_log_bucket: pulumi.Input[str] | None = None
    noncurrent_version_days: int = 90
    force_destroy: bool = False
    # S3 Object Lock (WORM): every object version is kept for `object_lock_days` in `object_lock_mode`
    # (COMPLIANCE: nobody, not even the account root, can shorten it or delete the version). Set only at
    # bucket creation; None: no lock.
    object_lock_days: int | None = None
    object_lock_mode: str = "COMPLIANCE"
    depends_on: list[pulumi.Resource] = field(default_factory=list)


class PrivateBucket(pulumi.ComponentResource):
    bucket: aws.s3.Bucket

    def __init__(self, name: str, args: PrivateBucketArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:aws:PrivateBucket", name, None, opts)
        region = args.region
        self.bucket = aws.s3.Bucket(
            name,
            bucket=args.bucket_name,
            region=region,
            force_destroy=args.force_destroy,
            object_lock_enabled=args.object_lock_days is not None,
            tags=args.tags,
            opts=child(self),
        )
        bucket_id = self.bucket.id
        ownership = aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket_id,
            region=region,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child(self),
        )
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket_id,
            region=region,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child(self),
        )
        by_default = (
            aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                sse_algorithm=SSE_KMS, kms_master_key_id=args.kms_key_arn
            )
            if args.kms_key_arn is not None
            else aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                sse_algorithm=SSE_S3
            )
        )
        self.encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket_id,
            region=region,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=by_default,
                    bucket_key_enabled=args.kms_key_arn is not None,
                )
            ],
            opts=child(self),
        )
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket_id,
            region=region,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=child(self),
        )
        self.object_lock: aws.s3.BucketObjectLockConfiguration | None = None
        if args.object_lock_days is not None:
            if args.object_lock_mode not in ("COMPLIANCE", "GOVERNANCE"):
                raise ValueError(f"{name}: Object Lock mode is COMPLIANCE or GOVERNANCE, not {args.object_lock_mode!r}")
            self.object_lock = aws.s3.BucketObjectLockConfiguration(
                f"{name}-object-lock",
                bucket=bucket_id,
                region=region,
                object_lock_enabled="Enabled",
                rule=aws.s3.BucketObjectLockConfigurationRuleArgs(
                    default_retention=aws.s3.BucketObjectLockConfigurationRuleDefaultRetentionArgs(
                        mode=args.object_lock_mode, days=args.object_lock_days
                    )
                ),
                opts=child(self, depends_on=[versioning]),
            )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket_id,
            region=region,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-noncurrent-versions",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=args.noncurrent_version_days
                    ),
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=7
                    ),
                )
            ],
            opts=child(self, depends_on=[versioning]),
        )
        if args.access_log_bucket is not None:
            aws.s3.BucketLogging(
                f"{name}-access-logging",
                bucket=bucket_id,
                region=region,
                target_bucket=args.access_log_bucket,
                target_prefix=f"{args.bucket_name}/",
                opts=child(self),
            )
        self.policy_document: dict[str, Any] = {
            "Version": "2012-10-17",
            "Statement": [deny_insecure_transport(args.bucket_arn), *args.statements(args.bucket_arn)],
        }
        self.policy = aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=bucket_id,
            region=region,
            policy=to_json(self.policy_document),
            opts=child(self, depends_on=[public_access, ownership, *args.depends_on]),
        )
        self.register_outputs({"bucket": self.bucket.id, "arn": self.bucket.arn})
