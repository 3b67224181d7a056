"""AWS answers: account 111122223333, ARNs built the way AWS builds them."""

from __future__ import annotations

from typing import Any

ACCOUNT = "111122223333"
DEFAULT_REGION = "eu-west-1"


def _region(inputs: dict[str, Any]) -> str:
    return inputs.get("region") or DEFAULT_REGION


def outputs(type_: str, name: str, inputs: dict[str, Any], resource_id: str) -> dict[str, Any]:
    service = type_.split(":")[1].split("/")[0]
    region = "" if service in {"iam", "s3"} else _region(inputs)
    account = "" if service == "s3" else ACCOUNT
    computed: dict[str, Any] = {
        "arn": f"arn:aws:{service}:{region}:{account}:{name}",
        "id": resource_id,
    }
    extra = _TYPE_OUTPUTS.get(type_)
    if extra is not None:
        computed.update(extra(name, inputs, resource_id))
    return computed


def _eks_cluster(name: str, inputs: dict[str, Any], resource_id: str) -> dict[str, Any]:
    region = _region(inputs)
    return {
        "name": inputs.get("name") or name,
        "endpoint": f"https://{name.upper()}.gr7.{region}.eks.amazonaws.com",
        "certificateAuthority": {"data": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="},
        "vpcConfig": {**(inputs.get("vpcConfig") or {}), "clusterSecurityGroupId": f"sg-{name}-cluster"},
    }


# Computed outputs some resources need for their dependants, keyed by type token.
_TYPE_OUTPUTS: dict[str, Any] = {
    "aws:ec2/vpcEndpoint:VpcEndpoint": lambda name, inputs, rid: (
        {"prefixListId": f"pl-{rid}"} if inputs.get("vpcEndpointType") == "Gateway" else {}
    ),
    "aws:iam/role:Role": lambda name, inputs, rid: {
        "name": inputs.get("name") or name,
        "arn": f"arn:aws:iam::{ACCOUNT}:role/{inputs.get('name') or name}",
    },
    "aws:iam/instanceProfile:InstanceProfile": lambda name, inputs, rid: {"name": inputs.get("name") or name},
    "aws:cloudwatch/logGroup:LogGroup": lambda name, inputs, rid: {"name": inputs.get("name") or name},
    "aws:sns/topic:Topic": lambda name, inputs, rid: {"name": inputs.get("name") or name},
    "aws:eks/cluster:Cluster": _eks_cluster,
    "aws:ec2/launchTemplate:LaunchTemplate": lambda name, inputs, rid: {"latestVersion": 1},
    "aws:kms/key:Key": lambda name, inputs, rid: {
        "keyId": f"{rid}",
        "arn": f"arn:aws:kms:{_region(inputs)}:{ACCOUNT}:key/{rid}",
    },
}


INVOKES: dict[str, Any] = {
    "aws:index/getCallerIdentity:getCallerIdentity": lambda args: {
        "accountId": ACCOUNT,
        "arn": f"arn:aws:iam::{ACCOUNT}:role/ccp-deployer",
        "userId": "AROAEXAMPLEDEPLOYER",
        "id": ACCOUNT,
    },
    "aws:index/getRegion:getRegion": lambda args: {
        "name": args.get("region") or DEFAULT_REGION,
        "region": args.get("region") or DEFAULT_REGION,
        "id": args.get("region") or DEFAULT_REGION,
    },
    "aws:index/getPartition:getPartition": lambda args: {
        "partition": "aws",
        "dnsSuffix": "amazonaws.com",
        "id": "aws",
    },
}


def _availability_zones(args: dict[str, Any]) -> dict[str, Any]:
    """Three zones named as AWS names them in every commercial region (`<region>a`..`c`)."""
    region = args.get("region") or DEFAULT_REGION
    return {
        "id": region,
        "region": region,
        "names": [f"{region}{letter}" for letter in "abc"],
        "zoneIds": [f"{region[:2]}{region.split('-')[1][0]}{region[-1]}-az{i}" for i in (1, 2, 3)],
        "groupNames": [region],
        "state": args.get("state"),
    }


INVOKES["aws:index/getAvailabilityZones:getAvailabilityZones"] = _availability_zones
