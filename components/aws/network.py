"""A private-only VPC: the enclave hosts reach AWS APIs through VPC endpoints, never the internet.

No internet gateway, no NAT, no route other than the VPC-local one; interface endpoints (private DNS)
for the services the host needs (KMS for key release, SSM Session Manager instead of SSH, CloudWatch
Logs, STS) and an S3 gateway endpoint (party data, and the Amazon Linux 2023 package repositories,
which are served from S3). Security groups never admit 0.0.0.0/0; the default security group of
the VPC is emptied (CIS AWS 5.4).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
import pulumi_aws as aws

from components.aws.common import child

# The services every enclave host calls (all interface endpoints support private DNS).
BASE_INTERFACE_SERVICES: Final[tuple[str, ...]] = (
    "kms",
    "ssm",
    "ssmmessages",
    "ec2messages",
    "logs",
    "sts",
)
# What private EKS worker nodes additionally need without internet access
# (https://docs.aws.amazon.com/eks/latest/userguide/private-clusters.html).
EKS_INTERFACE_SERVICES: Final[tuple[str, ...]] = ("ec2", "ecr.api", "ecr.dkr", "eks", "eks-auth")
HTTPS: Final = 443
# The only traffic any security group here admits: TCP 443 (to or from the endpoints and S3).
HTTPS_ONLY: Final[dict[str, Any]] = {"protocol": "tcp", "from_port": HTTPS, "to_port": HTTPS}


@dataclass(frozen=True)
class NetworkArgs:
    region: str
    tags: dict[str, str]
    cidr_block: str = "10.20.0.0/16"
    zone_count: int = 2
    extra_interface_services: tuple[str, ...] = field(default_factory=tuple)


class Network(pulumi.ComponentResource):
    vpc: aws.ec2.Vpc
    private_subnets: list[aws.ec2.Subnet]
    workload_security_group: aws.ec2.SecurityGroup
    endpoint_security_group: aws.ec2.SecurityGroup

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:aws:Network", name, None, opts)
        region = args.region
        cidr = ipaddress.ip_network(args.cidr_block)
        zones = aws.get_availability_zones(state="available", region=region).names[: args.zone_count]
        if len(zones) < args.zone_count:
            raise ValueError(f"region {region} has {len(zones)} available zones, {args.zone_count} needed")

        self.vpc = aws.ec2.Vpc(
            name,
            cidr_block=args.cidr_block,
            region=region,
            enable_dns_support=True,  # private DNS of interface endpoints needs both
            enable_dns_hostnames=True,
            tags={**args.tags, "Name": name},
            opts=child(self),
        )
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            ingress=[],
            egress=[],
            **self._in_vpc(args, f"{name}-default-closed"),
        )
        # Local route only: the table has no route to an internet or NAT gateway.
        route_table = aws.ec2.RouteTable(
            f"{name}-private",
            routes=[],
            **self._in_vpc(args, f"{name}-private"),
        )
        subnet_cidrs = list(cidr.subnets(new_prefix=min(cidr.prefixlen + 4, 28)))
        self.private_subnets = []
        for index, zone in enumerate(zones):
            subnet = aws.ec2.Subnet(
                f"{name}-private-{zone}",
                availability_zone=zone,
                cidr_block=str(subnet_cidrs[index]),
                map_public_ip_on_launch=False,
                **self._in_vpc(args, f"{name}-private-{zone}", tier="private"),
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{zone}",
                subnet_id=subnet.id,
                route_table_id=route_table.id,
                region=region,
                opts=child(self),
            )
            self.private_subnets.append(subnet)

        self.endpoint_security_group = aws.ec2.SecurityGroup(
            f"{name}-endpoints",
            description="HTTPS from inside the VPC to the AWS service endpoints",
            ingress=[
                aws.ec2.SecurityGroupIngressArgs(
                    description="HTTPS from the VPC",
                    **HTTPS_ONLY,
                    cidr_blocks=[args.cidr_block],
                )
            ],
            egress=[],
            **self._in_vpc(args, f"{name}-endpoints"),
        )
        s3_endpoint = aws.ec2.VpcEndpoint(
            f"{name}-s3",
            service_name=f"com.amazonaws.{region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[route_table.id],
            **self._in_vpc(args, f"{name}-s3"),
        )
        self.interface_endpoints: dict[str, aws.ec2.VpcEndpoint] = {}
        for service in (*BASE_INTERFACE_SERVICES, *args.extra_interface_services):
            self.interface_endpoints[service] = aws.ec2.VpcEndpoint(
                f"{name}-{service.replace('.', '-')}",
                service_name=f"com.amazonaws.{region}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=[s.id for s in self.private_subnets],
                security_group_ids=[self.endpoint_security_group.id],
                **self._in_vpc(args, f"{name}-{service}"),
            )
        # Hosts accept no inbound connection at all (SSM sessions are outbound); they may only
        # reach the endpoints and S3.
        self.workload_security_group = aws.ec2.SecurityGroup(
            f"{name}-workload",
            description="Enclave hosts: no ingress; HTTPS egress to VPC endpoints and S3 only",
            ingress=[],
            egress=[
                aws.ec2.SecurityGroupEgressArgs(
                    description="HTTPS to the interface endpoints",
                    **HTTPS_ONLY,
                    cidr_blocks=[args.cidr_block],
                ),
                aws.ec2.SecurityGroupEgressArgs(
                    description="HTTPS to S3 through the gateway endpoint",
                    **HTTPS_ONLY,
                    prefix_list_ids=[s3_endpoint.prefix_list_id],
                ),
            ],
            **self._in_vpc(args, f"{name}-workload"),
        )
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in self.private_subnets])
        self.register_outputs(
            {
                "vpcId": self.vpc.id,
                "privateSubnetIds": self.private_subnet_ids,
                "workloadSecurityGroupId": self.workload_security_group.id,
            }
        )

    def _in_vpc(self, args: NetworkArgs, label: str, **extra_tags: str) -> dict[str, Any]:
        """What every resource inside this VPC carries: the VPC, its region, a `Name` tag on top of
        the required tags, and this component as parent (one place, so none lands elsewhere)."""
        return {
            "vpc_id": self.vpc.id,
            "region": args.region,
            "tags": {**args.tags, "Name": label, **extra_tags},
            "opts": child(self),
        }
