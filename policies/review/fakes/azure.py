"""Azure answers: one subscription and tenant, ids and endpoints built the way ARM builds them."""

from __future__ import annotations

import uuid
from typing import Any, Callable

from components.attestation import maa_regions

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
