"""Data sources no hand-written fake answers (an instance type, a KMS alias, a GCP storage bucket),
beside one whose value matters (the region, answered by the stand-in)."""

import pulumi
import pulumi_aws as aws
import pulumi_gcp as gcp

kind = aws.ec2.get_instance_type(instance_type="m7g.large")
alias = aws.kms.get_alias(name="alias/shared-data")
region = aws.get_region()
artifacts = gcp.storage.get_bucket(name="shared-artifacts")

aws.ec2.Instance(
    "batch", ami="ami-0fedcba9876543210", instance_type="m7g.large",
    tags={"vcpus": str(kind.default_vcpus), "arm": str(kind.bare_metal), "region": region.name},
)
aws.s3.BucketServerSideEncryptionConfiguration(
    "results-sse", bucket="results",
    rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
        apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
            sse_algorithm="aws:kms", kms_master_key_id=alias.target_key_arn,
        ),
    )],
)
pulumi.export("artifacts", {"url": artifacts.url, "versioning": len(artifacts.versionings)})
