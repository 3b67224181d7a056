"""Azure answers: one subscription and tenant, ids and endpoints built the way ARM builds them.

Data sources answered (stand-ins, deterministic): azure-native authorization getClientConfig,
network getPublicIPAddress (static, an address in TEST-NET-3 203.0.113.0/24), resources
getResourceGroup (westeurope); classic azure core getClientConfig / getSubscription /
getResourceGroup and azuread getClientConfig (the same subscription, tenant and client).
"""

from __future__ import annotations

import uuid
from typing import Any, Callable

try:
    from components.attestation import maa_regions
except ImportError:  # shipped into a program's own environment (policies/review/sandbox.py) with a copy
    from . import maa_regions  # type: ignore[no-redef]

SUBSCRIPTION = "00000000-0000-4000-8000-000000000001"
TENANT = "00000000-0000-4000-8000-0000000000aa"
_NAMESPACE = uuid.UUID("6f1c5a43-2f0e-4e59-9d0b-0c2f5c1f7a11")


def _uuid(kind: str, name: str) -> str:
    """Deterministic GUIDs (principal ids, client ids) so tests can assert exact values."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}/{name}"))


def principal_id(name: str) -> str:
    """The principalId the fakes give a user-assigned identity named `name`."""
    return _uuid("principal", name)


def _identity(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "principalId": principal_id(name),
        "clientId": _uuid("client", name),
        "tenantId": TENANT,
    }


def _vault(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    vault = inputs.get("vaultName") or name
    return {"properties": {**inputs.get("properties", {}), "vaultUri": f"https://{vault}.vault.azure.net/"}}


def _managed_hsm(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    hsm = inputs.get("name") or name
    return {"properties": {**inputs.get("properties", {}), "hsmUri": f"https://{hsm}.managedhsm.azure.net/"}}


def _key(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    key = inputs.get("keyName") or name
    vault = inputs.get("vaultName", "vault")
    uri = f"https://{vault}.vault.azure.net/keys/{key}"
    return {"keyUri": uri, "keyUriWithVersion": f"{uri}/0123456789abcdef0123456789abcdef"}


def _attestation_provider(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    # Real hosts use Microsoft's short region code (`<name>.weu.attest.azure.net`), not the region
    # name; the table and its sources are in components/attestation/maa_regions.py.
    provider = inputs.get("providerName") or name
    return {"attestUri": maa_regions.attest_uri(provider, inputs.get("location", "westeurope"))}


def _storage_account(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    account = inputs.get("accountName") or name
    return {"primaryEndpoints": {"blob": f"https://{account}.blob.core.windows.net/"}}


def _workspace(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {"customerId": _uuid("workspace", name)}


def _managed_cluster(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {"oidcIssuerProfile": {"enabled": True, "issuerURL": f"https://oidc.example/{name}/"}}


_BY_TYPE: dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]] = {
    "azure-native:managedidentity:UserAssignedIdentity": _identity,
    "azure-native:keyvault:Vault": _vault,
    "azure-native:keyvault:ManagedHsm": _managed_hsm,
    "azure-native:keyvault:Key": _key,
    "azure-native:attestation:AttestationProvider": _attestation_provider,
    "azure-native:storage:StorageAccount": _storage_account,
    "azure-native:operationalinsights:Workspace": _workspace,
    "azure-native:containerservice:ManagedCluster": _managed_cluster,
}


def outputs(type_: str, name: str, inputs: dict[str, Any], resource_id: str) -> dict[str, Any]:
    group = inputs.get("resourceGroupName", "rg")
    resource_type = type_.split(":")[-1]
    result = {
        "id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/ccp.mock/{resource_type}/{name}",
        "name": inputs.get("name") or name,
    }
    identity = inputs.get("identity")
    if isinstance(identity, dict) and isinstance(identity.get("userAssignedIdentities"), list):
        # ARM answers the identity list of the request as a map: resource id -> identity details.
        result["identity"] = {
            **identity,
            "userAssignedIdentities": {
                uid: {"principalId": principal_id(uid), "clientId": _uuid("client", uid)}
                for uid in identity["userAssignedIdentities"]
                if isinstance(uid, str)
            },
        }
    extra = _BY_TYPE.get(type_)
    if extra is not None:
        result.update(extra(name, inputs))
    return result


INVOKES: dict[str, Any] = {
    "azure-native:authorization:getClientConfig": lambda args: {
        "clientId": "00000000-0000-4000-8000-0000000000c1",
        "objectId": "00000000-0000-4000-8000-0000000000d1",
        "subscriptionId": SUBSCRIPTION,
        "tenantId": TENANT,
    },
}


# --- Common data sources (stand-ins: deterministic, derived from the invoke's arguments) ----------

DEFAULT_LOCATION = "westeurope"


def _public_ip(args: dict[str, Any]) -> dict[str, Any]:
    """A static Standard public IP with an address from TEST-NET-3 (203.0.113.0/24, never routed)."""
    group, name = args.get("resourceGroupName", "rg"), args.get("publicIpAddressName", "ip")
    return {
        "id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/Microsoft.Network/publicIPAddresses/{name}",
        "name": name, "location": DEFAULT_LOCATION, "type": "Microsoft.Network/publicIPAddresses",
        "ipAddress": f"203.0.113.{int(_uuid('ip', f'{group}/{name}')[:2], 16) % 254 + 1}",
        "publicIPAllocationMethod": "Static", "publicIPAddressVersion": "IPv4",
        "sku": {"name": "Standard", "tier": "Regional"}, "provisioningState": "Succeeded",
        "resourceGuid": _uuid("ip-guid", f"{group}/{name}"), "idleTimeoutInMinutes": 4,
    }


def _resource_group(args: dict[str, Any]) -> dict[str, Any]:
    name = args.get("resourceGroupName") or args.get("name") or "rg"
    return {
        "id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{name}", "name": name, "location": DEFAULT_LOCATION,
        "type": "Microsoft.Resources/resourceGroups", "properties": {"provisioningState": "Succeeded"},
        "tags": {}, "managedBy": None,
    }


_CLIENT = {"clientId": "00000000-0000-4000-8000-0000000000c1", "objectId": "00000000-0000-4000-8000-0000000000d1",
           "tenantId": TENANT}

INVOKES.update({
    "azure-native:network:getPublicIPAddress": _public_ip,
    "azure-native:resources:getResourceGroup": _resource_group,
    # The classic `azure` (azurerm) provider and `azuread`: the same deploying identity.
    "azure:core/getClientConfig:getClientConfig": lambda args: {**_CLIENT, "subscriptionId": SUBSCRIPTION,
                                                                "id": SUBSCRIPTION},
    "azure:core/getSubscription:getSubscription": lambda args: {
        "subscriptionId": args.get("subscriptionId") or SUBSCRIPTION, "tenantId": TENANT,
        "displayName": "review stand-in subscription", "state": "Enabled",
        "id": f"/subscriptions/{args.get('subscriptionId') or SUBSCRIPTION}",
    },
    "azure:core/getResourceGroup:getResourceGroup": lambda args: {
        **_resource_group({"name": args.get("name")}), "tags": {},
    },
    "azuread:index/getClientConfig:getClientConfig": lambda args: {**_CLIENT, "id": _CLIENT["clientId"]},
})
