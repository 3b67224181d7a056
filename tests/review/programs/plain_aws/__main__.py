"""A plain pulumi-aws program (no ccp components), as a user might bring to the review."""

import pulumi
import pulumi_aws as aws

config = pulumi.Config()
key = aws.kms.Key("data-key", enable_key_rotation=True, description="plain program key")
bucket = aws.s3.Bucket("data", tags={"owner": "team"}, opts=pulumi.ResourceOptions(depends_on=[key]))
if config.get_bool("public"):
    aws.s3.BucketPublicAccessBlock("data-pab", bucket=bucket.id, block_public_acls=False)
aws.ssm.Parameter("token", type="SecureString", value=config.require_secret("apiToken"))
pulumi.export("bucket", bucket.id)
