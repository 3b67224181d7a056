"""A bucket tagged from the program's own `config` module."""

import pulumi
import pulumi_aws as aws

import config

bucket = aws.s3.Bucket("artifacts", tags=config.TAGS)
aws.s3.BucketPublicAccessBlock(
    "artifacts-public-access", bucket=bucket.id, block_public_acls=True, block_public_policy=True,
    ignore_public_acls=True, restrict_public_buckets=True,
)
pulumi.export("bucket", bucket.id)
