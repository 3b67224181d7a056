"""Uses a data source the review's fakes do not answer; the program answers it in ccp-review-invokes.json."""

import pulumi_aws as aws

kind = aws.ec2.get_instance_type(instance_type="m6i.xlarge")
aws.ec2.Instance("vm", ami="ami-0123456789abcdef0", instance_type=kind.instance_type,
                 tags={"vcpus": str(kind.default_vcpus)})
