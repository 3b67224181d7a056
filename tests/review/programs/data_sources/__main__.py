"""A web server per availability zone on the latest Amazon Linux AMI, in the default VPC."""

import json

import pulumi
import pulumi_aws as aws

ami = aws.ec2.get_ami(
    most_recent=True,
    owners=["amazon"],
    filters=[
        aws.ec2.GetAmiFilterArgs(name="name", values=["al2023-ami-*-x86_64"]),
        aws.ec2.GetAmiFilterArgs(name="architecture", values=["x86_64"]),
    ],
)
zones = aws.get_availability_zones(state="available")
vpc = aws.ec2.get_vpc(default=True)
identity = aws.get_caller_identity()
region = aws.get_region()

group = aws.ec2.SecurityGroup(
    "web", vpc_id=vpc.id, description=f"web in {vpc.cidr_block}",
    ingress=[aws.ec2.SecurityGroupIngressArgs(protocol="tcp", from_port=443, to_port=443, cidr_blocks=[vpc.cidr_block])],
)
for zone in zones.names[:2]:
    aws.ec2.Instance(
        f"web-{zone}", ami=ami.id, instance_type="t3.micro", availability_zone=zone,
        vpc_security_group_ids=[group.id], tags={"Name": f"web-{zone}", "image": ami.name},
    )

assume = aws.iam.get_policy_document(statements=[aws.iam.GetPolicyDocumentStatementArgs(
    actions=["sts:AssumeRole"],
    principals=[aws.iam.GetPolicyDocumentStatementPrincipalArgs(type="Service", identifiers=["ec2.amazonaws.com"])],
)])
aws.iam.Role("web-instances", assume_role_policy=assume.json,
             tags={"account": identity.account_id, "region": region.name})
pulumi.export("zones", zones.names)
pulumi.export("policy", json.loads(assume.json))
