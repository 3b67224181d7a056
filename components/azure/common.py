"""Small helpers every Azure component shares: global-unique names, built-in roles, role
assignments, child resource options. One place, so every component names and grants alike."""

from __future__ import annotations

import hashlib
import re
from typing import Any, Final

import pulumi
from pulumi_azure_native import authorization

from components.common import child as child  # the one shape, re-exported for the Azure components

# Built-in role definition ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
KEY_VAULT_CRYPTO_SERVICE_RELEASE_USER: Final = "08bbd89e-9f13-488c-ac41-acfcb10c90ab"
KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER: Final = "e147488a-f6f5-4113-8e2d-b22465e65bf6"
KEY_VAULT_CRYPTO_USER: Final = "12338af0-0e69-4776-bea7-57ae8d297424"
KEY_VAULT_CONTRIBUTOR: Final = "f25e0fa2-a7c8-4377-a976-54943a77a395"


def global_name(*parts: str, max_length: int = 24, alphanumeric: bool = False) -> str:
    """A deterministic, globally-unique-enough name for vaults and storage accounts.

    Those names are DNS labels shared by every Azure customer; a readable prefix plus a hash of
    all parts keeps names stable across runs and distinct across collaborations and parties.
    """
    digest = hashlib.sha256("/".join(parts).encode()).hexdigest()[:6]
    readable = "-".join(parts).lower()
    readable = re.sub(r"[^a-z0-9]" if alphanumeric else r"[^a-z0-9-]", "", readable)
    readable = readable[: max_length - len(digest) - (0 if alphanumeric else 1)].rstrip("-")
    name = f"{readable}{digest}" if alphanumeric else f"{readable}-{digest}"
    if not name[0].isalpha():
        name = "c" + name[1:]
    return name


def role_definition_id(role: str) -> pulumi.Output[str]:
    """The subscription-scoped id of a built-in role, as RoleAssignment.roleDefinitionId expects."""
    client = authorization.get_client_config_output()
    return client.subscription_id.apply(
        lambda subscription: f"/subscriptions/{subscription}/providers/Microsoft.Authorization/"
        f"roleDefinitions/{role}"
    )


def assign_role(
    name: str,
    *,
    scope: pulumi.Input[str],
    role: str,
    principal_id: pulumi.Input[str],
    parent: pulumi.Resource,
    description: str,
    principal_type: str | None = "ServicePrincipal",
) -> authorization.RoleAssignment:
    """Grant one built-in role to one principal at one scope (a managed identity unless told)."""
    return authorization.RoleAssignment(
        name,
        scope=scope,
        role_definition_id=role_definition_id(role),
        principal_id=principal_id,
        principal_type=principal_type,
        description=description,
        opts=pulumi.ResourceOptions(parent=parent),
    )


def placement(resource_group_name: pulumi.Input[str], location: str, tags: dict[str, str]) -> dict[str, Any]:
    """The resource group, region and tags a component's regional ARM resources all carry, as
    keyword arguments: one place, so none of them lands untagged or in another group or region."""
    return {"resource_group_name": resource_group_name, "location": location, "tags": tags}


def hardened_storage_account(bypass: str) -> dict[str, Any]:
    """The settings every storage account here carries (party data and audit archives alike): HTTPS and
    TLS 1.2 only, no public blobs, Entra ID only (no shared keys), no cross-tenant replication, no public
    network. `bypass`: which Azure services may pass the firewall ("None", or "AzureServices" where a
    platform service such as diagnostic settings must write)."""
    from pulumi_azure_native import storage

    return {
        "enable_https_traffic_only": True,
        "minimum_tls_version": "TLS1_2",
        "allow_blob_public_access": False,
        "allow_shared_key_access": False,
        "default_to_o_auth_authentication": True,
        "allow_cross_tenant_replication": False,
        "public_network_access": "Disabled",
        "network_rule_set": storage.NetworkRuleSetArgs(default_action="Deny", bypass=bypass),
    }
