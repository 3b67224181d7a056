"""AWS answers: account 111122223333, ARNs built the way AWS builds them."""

from __future__ import annotations

import json
from typing import Any

ACCOUNT = "111122223333"
DEFAULT_REGION = "eu-west-1"


def _region(inputs: dict[str, Any]) -> str:
    return inputs.get("region") or DEFAULT_REGION


def provider_account(inputs: dict[str, Any]) -> str | None:
    """The account an explicit `aws` provider deploys to: its `allowedAccountIds` (one), else the
    account of the role it assumes. Provider inputs of nested types arrive JSON-encoded."""

    def decoded(value: Any) -> Any:
        if isinstance(value, str) and value[:1] in "[{":
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    allowed = decoded(inputs.get("allowedAccountIds"))
    if isinstance(allowed, list) and len(allowed) == 1 and isinstance(allowed[0], str):
        return allowed[0]
    roles = decoded(inputs.get("assumeRoles"))
    for role in roles if isinstance(roles, list) else []:
        arn = role.get("roleArn") if isinstance(role, dict) else None
        if isinstance(arn, str) and len(arn.split(":")) > 4 and arn.split(":")[4].isdigit():
            return arn.split(":")[4]
    return None


def outputs(
    type_: str, name: str, inputs: dict[str, Any], resource_id: str, account: str | None = None
) -> dict[str, Any]:
    """`account`: the account of the resource's explicit provider, else the deploying ACCOUNT."""
    owner = account or ACCOUNT
    service = type_.split(":")[1].split("/")[0]
    region = "" if service in {"iam", "s3"} else _region(inputs)
    arn_account = "" if service == "s3" else owner
    computed: dict[str, Any] = {
        "arn": f"arn:aws:{service}:{region}:{arn_account}:{name}",
        "id": resource_id,
    }
    extra = _TYPE_OUTPUTS.get(type_)
    if extra is not None:
        computed.update(extra(name, inputs, resource_id, owner))
    return computed


def _eks_cluster(name: str, inputs: dict[str, Any], resource_id: str, account: str = ACCOUNT) -> dict[str, Any]:
    region = _region(inputs)
    return {
        "name": inputs.get("name") or name,
        "endpoint": f"https://{name.upper()}.gr7.{region}.eks.amazonaws.com",
        "certificateAuthority": {"data": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="},
        "vpcConfig": {**(inputs.get("vpcConfig") or {}), "clusterSecurityGroupId": f"sg-{name}-cluster"},
    }


# Computed outputs some resources need for their dependants, keyed by type token.
_TYPE_OUTPUTS: dict[str, Any] = {
    "aws:ec2/vpcEndpoint:VpcEndpoint": lambda name, inputs, rid, account: (
        {"prefixListId": f"pl-{rid}"} if inputs.get("vpcEndpointType") == "Gateway" else {}
    ),
    "aws:iam/role:Role": lambda name, inputs, rid, account: {
        "name": inputs.get("name") or name,
        "arn": f"arn:aws:iam::{account}:role/{inputs.get('name') or name}",
    },
    "aws:iam/instanceProfile:InstanceProfile": lambda name, inputs, rid, account: {"name": inputs.get("name") or name},
    "aws:cloudwatch/logGroup:LogGroup": lambda name, inputs, rid, account: {"name": inputs.get("name") or name},
    "aws:sns/topic:Topic": lambda name, inputs, rid, account: {"name": inputs.get("name") or name},
    "aws:eks/cluster:Cluster": _eks_cluster,
    "aws:ec2/launchTemplate:LaunchTemplate": lambda name, inputs, rid, account: {"latestVersion": 1},
    "aws:kms/key:Key": lambda name, inputs, rid, account: {
        "keyId": f"{rid}",
        "arn": f"arn:aws:kms:{_region(inputs)}:{account}:key/{rid}",
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
