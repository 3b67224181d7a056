"""AWS answers: account 111122223333, ARNs built the way AWS builds them.

Data sources answered (stand-ins, deterministic: the same arguments give the same answer):
getCallerIdentity (account 111122223333), getRegion / getAvailabilityZones (eu-west-1 unless asked,
zones `<region>a..c`), getPartition (aws), ec2 getAmi (`ami-<hash of the arguments>`, name from the
`name` filter with `*` -> 20240101), getVpc (the default VPC 172.31.0.0/16), getSubnets (three),
getSubnet; iam getPolicyDocument is computed (the IAM JSON of its statements), not a stand-in.
"""

from __future__ import annotations

import hashlib
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


# --- Common data sources (stand-ins: deterministic, derived from the invoke's arguments) ----------


def _stand_in_id(prefix: str, args: dict[str, Any], length: int = 17) -> str:
    """`prefix-<hex>`: the same arguments give the same id, different ones (most likely) another."""
    digest = hashlib.sha256(json.dumps(args, sort_keys=True, default=str).encode()).hexdigest()
    return f"{prefix}-{digest[:length]}"


def _filter_values(args: dict[str, Any], name: str) -> list[str]:
    for entry in args.get("filters") or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return [str(v) for v in entry.get("values") or []]
    return []


def _ami(args: dict[str, Any]) -> dict[str, Any]:
    """An AMI matching the filters as far as they say: the first `name` pattern with `*` read as
    `20240101`, the `architecture` filter (else x86_64), the first numeric owner (else Amazon's)."""
    image = _stand_in_id("ami", args)
    owners = [o for o in args.get("owners") or [] if isinstance(o, str) and o.isdigit()]
    names = _filter_values(args, "name")
    name = names[0].replace("*", "20240101") if names else "stand-in-image-20240101"
    architecture = (_filter_values(args, "architecture") or ["x86_64"])[0]
    return {
        "id": image, "imageId": image, "name": name, "architecture": architecture,
        "ownerId": owners[0] if owners else "137112412989", "imageOwnerAlias": "amazon",
        "description": "review stand-in image (policies/review/fakes/aws.py)",
        "state": "available", "public": True, "platformDetails": "Linux/UNIX",
        "rootDeviceName": "/dev/xvda", "rootDeviceType": "ebs", "virtualizationType": "hvm",
        "hypervisor": "xen", "imageType": "machine", "enaSupport": True, "creationDate": "2024-01-01T00:00:00.000Z",
        "blockDeviceMappings": [], "mostRecent": bool(args.get("mostRecent")),
        "owners": list(args.get("owners") or []), "tags": {}, "arn": f"arn:aws:ec2:{DEFAULT_REGION}::image/{image}",
    }


def _vpc(args: dict[str, Any]) -> dict[str, Any]:
    """The default VPC (172.31.0.0/16, as AWS makes it) unless the arguments name an id or CIDR."""
    vpc = args.get("id") or _stand_in_id("vpc", args)
    region = args.get("region") or DEFAULT_REGION
    cidr = args.get("cidrBlock") or "172.31.0.0/16"
    return {
        "id": vpc, "arn": f"arn:aws:ec2:{region}:{ACCOUNT}:vpc/{vpc}", "cidrBlock": cidr,
        "default": bool(args.get("default", not args.get("id"))), "ownerId": ACCOUNT, "state": "available",
        "enableDnsHostnames": True, "enableDnsSupport": True, "enableNetworkAddressUsageMetrics": False,
        "instanceTenancy": "default", "dhcpOptionsId": _stand_in_id("dopt", {"vpc": vpc}),
        "mainRouteTableId": _stand_in_id("rtb", {"vpc": vpc}), "ipv6AssociationId": "", "ipv6CidrBlock": "",
        "cidrBlockAssociations": [{"associationId": _stand_in_id("vpc-cidr-assoc", {"vpc": vpc}),
                                   "cidrBlock": cidr, "state": "associated"}],
        "tags": dict(args.get("tags") or {}), "region": region,
    }


def _subnets(args: dict[str, Any]) -> dict[str, Any]:
    """Three subnets (one per zone of `_availability_zones`)."""
    return {"id": args.get("region") or DEFAULT_REGION,
            "ids": [_stand_in_id("subnet", {**args, "zone": i}) for i in range(3)],
            "filters": args.get("filters"), "tags": args.get("tags")}


def _subnet(args: dict[str, Any]) -> dict[str, Any]:
    subnet = args.get("id") or _stand_in_id("subnet", args)
    region = args.get("region") or DEFAULT_REGION
    return {
        "id": subnet, "arn": f"arn:aws:ec2:{region}:{ACCOUNT}:subnet/{subnet}",
        "vpcId": args.get("vpcId") or _stand_in_id("vpc", {}), "cidrBlock": args.get("cidrBlock") or "172.31.0.0/20",
        "availabilityZone": args.get("availabilityZone") or f"{region}a", "availabilityZoneId": "euw1-az1",
        "defaultForAz": bool(args.get("defaultForAz")), "mapPublicIpOnLaunch": False, "ownerId": ACCOUNT,
        "state": "available", "tags": dict(args.get("tags") or {}), "availableIpAddressCount": 4091,
    }


def _policy_document(args: dict[str, Any]) -> dict[str, Any]:
    """The IAM JSON the provider renders from `statements` (what a policy then checks), computed
    here, not a stand-in: Effect (default Allow), Action/NotAction, Resource/NotResource, Principal/
    NotPrincipal ({type: identifiers}; `*` for `{"type": "*", "identifiers": ["*"]}`), Condition."""

    def one_or_list(values: list[Any]) -> Any:
        return values[0] if len(values) == 1 else sorted(values)

    def principals(entries: list[dict[str, Any]]) -> Any:
        if any(p.get("type") == "*" for p in entries):
            return "*"
        merged: dict[str, list[str]] = {}
        for p in entries:
            merged.setdefault(p.get("type"), []).extend(p.get("identifiers") or [])
        return {kind: one_or_list(ids) for kind, ids in merged.items()}

    statements = []
    for s in args.get("statements") or []:
        out: dict[str, Any] = {}
        if s.get("sid"):
            out["Sid"] = s["sid"]
        out["Effect"] = s.get("effect") or "Allow"
        for key, field in (("actions", "Action"), ("notActions", "NotAction"),
                           ("resources", "Resource"), ("notResources", "NotResource")):
            if s.get(key):
                out[field] = one_or_list(list(s[key]))
        for key, field in (("principals", "Principal"), ("notPrincipals", "NotPrincipal")):
            if s.get(key):
                out[field] = principals(s[key])
        conditions: dict[str, dict[str, Any]] = {}
        for c in s.get("conditions") or []:
            conditions.setdefault(c["test"], {})[c["variable"]] = one_or_list(list(c.get("values") or []))
        if conditions:
            out["Condition"] = conditions
        statements.append(out)
    document: dict[str, Any] = {"Version": args.get("version") or "2012-10-17", "Statement": statements}
    if args.get("policyId"):
        document = {"Id": args["policyId"], **document}
    text = json.dumps(document, indent=2)
    return {"id": hashlib.sha256(text.encode()).hexdigest()[:10], "json": text, "minifiedJson": json.dumps(document, separators=(",", ":"))}


INVOKES.update({
    "aws:ec2/getAmi:getAmi": _ami,
    "aws:ec2/getVpc:getVpc": _vpc,
    "aws:ec2/getSubnets:getSubnets": _subnets,
    "aws:ec2/getSubnet:getSubnet": _subnet,
    "aws:iam/getPolicyDocument:getPolicyDocument": _policy_document,
})
