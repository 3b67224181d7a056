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
    return {
        "arn": f"arn:aws:{service}:{region}:{account}:{name}",
        "id": resource_id,
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
