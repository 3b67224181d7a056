"""Azure answers: one subscription and tenant, ids built the way ARM builds them."""

from __future__ import annotations

from typing import Any

SUBSCRIPTION = "00000000-0000-4000-8000-000000000001"
TENANT = "00000000-0000-4000-8000-0000000000aa"


def outputs(type_: str, name: str, inputs: dict[str, Any], resource_id: str) -> dict[str, Any]:
    group = inputs.get("resourceGroupName", "rg")
    resource_type = type_.split(":")[-1]
    return {
        "id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/ccp.mock/{resource_type}/{name}",
        "name": inputs.get("name") or name,
    }


INVOKES: dict[str, Any] = {
    "azure-native:authorization:getClientConfig": lambda args: {
        "clientId": "00000000-0000-4000-8000-0000000000c1",
        "objectId": "00000000-0000-4000-8000-0000000000d1",
        "subscriptionId": SUBSCRIPTION,
        "tenantId": TENANT,
    },
}
