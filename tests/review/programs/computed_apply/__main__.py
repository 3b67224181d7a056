"""Formats outputs the provider computes (a domain name, an ARN): in a real preview the ones not yet
known are unknown and their callbacks do not run; with the mocks' empty value (None) they would crash."""

import pulumi
import pulumi_aws as aws

site = aws.s3.Bucket("site")
# bucket_regional_domain_name is computed by AWS: no fake answers it, so a preview does not know it.
origin = site.bucket_regional_domain_name.apply(lambda name: name.upper())
# The ARN is answered by the fakes (a stand-in), so this callback runs.
service = site.arn.apply(lambda arn: arn.split(":")[2])
aws.sns.Topic("site-events", tags={"origin": origin, "service": service})
pulumi.export("origin", origin)
