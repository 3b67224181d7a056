"""A program that fails while declaring resources."""

import pulumi_aws as aws

key = aws.kms.Key("k")
key.arn.apply(lambda arn: arn.not_a_method())
