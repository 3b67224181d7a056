"""A party's bucket: encrypted at rest with the party's storage key, never public, versioned, with access logs.

CMEK on Cloud Storage works through the project's Cloud Storage service agent, which must hold
`roles/cloudkms.cryptoKeyEncrypterDecrypter` on the key before the bucket refers to it
(https://cloud.google.com/storage/docs/encryption/using-customer-managed-keys). Cloud Storage calls
Cloud KMS without an attestation token, so that key is the party's *storage* key (a `ServiceKey`
of purpose `party-storage`, whose only user is that agent), never the party's attestation-bound
data key: the objects' content is envelope-encrypted under the data key by the owner, and only the
attested workload unwraps it (components/README.md, "Two keys per party"). Usage logs are written
by `cloud-storage-analytics@google.com`, which needs `roles/storage.objectCreator` on the log
bucket (https://cloud.google.com/storage/docs/access-logs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_gcp as gcp

from components.gcp.common import bounded, check_member
from components.gcp.kms import ServiceKey

ANALYTICS_WRITER: Final = "group:cloud-storage-analytics@google.com"
READER: Final = "roles/storage.objectViewer"
DAY: Final = 86400


@dataclass(frozen=True)
class PartyStorageArgs:
    project: str
    location: str
    bucket_name: str
    storage_key: ServiceKey  # the party's `party-storage` key, bound to the Cloud Storage agent
    readers: list[str]  # the digest principal sets: who may read the party's objects
    labels: dict[str, str]
    log_retention_days: int
    prod: bool


def _bucket(
    resource_name: str,
    bucket_name: str,
    args: PartyStorageArgs,
    opts: pulumi.ResourceOptions,
    **extra: object,
) -> gcp.storage.Bucket:
    """The settings every ccp bucket has: CMEK, uniform access, public access prevention, and versioning
    unless a retention policy keeps the objects (Cloud Storage refuses the two together)."""
    versioned = "retention_policy" not in extra
    return gcp.storage.Bucket(
        resource_name,
        name=bucket_name,
        project=args.project,
        location=args.location,
        storage_class="STANDARD",
        uniform_bucket_level_access=True,
        public_access_prevention="enforced",
        versioning=gcp.storage.BucketVersioningArgs(enabled=versioned),
        encryption=gcp.storage.BucketEncryptionArgs(default_kms_key_name=args.storage_key.key_id),
        force_destroy=False,
        labels=args.labels,
        opts=opts,
        **extra,  # type: ignore[arg-type]
    )


class PartyStorage(pulumi.ComponentResource):
    """The party's data bucket and its access-log bucket, both with the party's storage key (CMEK)."""

    bucket: gcp.storage.Bucket
    log_bucket: gcp.storage.Bucket

    def __init__(self, name: str, args: PartyStorageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:gcp:PartyStorage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # The agent's encrypter/decrypter binding must exist before a bucket names the key.
        after_agent = pulumi.ResourceOptions(parent=self, depends_on=list(args.storage_key.bindings))
        retention = args.log_retention_days * DAY
        self.log_bucket = _bucket(
            f"{name}-logs",
            bounded(f"{args.bucket_name}-logs", 63),
            args,
            after_agent,
            retention_policy=gcp.storage.BucketRetentionPolicyArgs(
                retention_period=retention, is_locked=args.prod
            ),
            lifecycle_rules=[
                gcp.storage.BucketLifecycleRuleArgs(
                    action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
                    condition=gcp.storage.BucketLifecycleRuleConditionArgs(age=args.log_retention_days + 1),
                )
            ],
        )
        self.log_writer = gcp.storage.BucketIAMMember(
            f"{name}-logs-writer",
            bucket=self.log_bucket.name,
            role="roles/storage.objectCreator",
            member=ANALYTICS_WRITER,
            opts=child,
        )
        self.bucket = _bucket(
            f"{name}-data",
            bounded(args.bucket_name, 63),
            args,
            after_agent,
            logging=gcp.storage.BucketLoggingArgs(
                log_bucket=self.log_bucket.name, log_object_prefix=args.bucket_name
            ),
            soft_delete_policy=gcp.storage.BucketSoftDeletePolicyArgs(
                retention_duration_seconds=7 * DAY if not args.prod else 30 * DAY
            ),
        )
        self.readers = [
            gcp.storage.BucketIAMMember(
                f"{name}-reader-{i}",
                bucket=self.bucket.name,
                role=READER,
                member=check_member(member),
                opts=child,
            )
            for i, member in enumerate(args.readers)
        ]
        self.register_outputs({"bucket": self.bucket.name, "logBucket": self.log_bucket.name})
