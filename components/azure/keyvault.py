"""Party key stores: a Key Vault Premium (HSM-backed keys) reachable only on a private endpoint,
or, as a prod option, a Managed HSM pool; and the HSM keys ccp creates in them.

Hardening (CIS Azure 8.x; HIPAA 164.308(a)(7)): purge protection and soft delete (a deleted key
cannot be destroyed before retention ends), RBAC authorization (no vault access policies: every
grant is a reviewable role assignment), public network access disabled with a Deny default
action; `AzureServices` bypass keeps trusted services (storage CMK, disk encryption sets) working.

Managed HSM keys are data-plane objects with no ARM resource in azure-native 3.29, created after
the pool's security domain is activated by its administrators; ccp declares the pool, and party
data keys stay in Premium vaults (`KeyVault.vault`) until that ceremony exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import pulumi
from pulumi_azure_native import keyvault

from components.attestation.azure_release_policy import CONTENT_TYPE
from components.azure.common import child, placement
from components.key_purpose import ATTESTED, purpose_tags
from components.azure.network import PrivateDns, private_endpoint
from pulumi_azure_native import network

SOFT_DELETE_RETENTION_DAYS: Final = 90
KEY_SIZE: Final = 3072
# Rotate well inside the 90-day ceiling of the rotation rule; notify a month before expiry.
ROTATE_AFTER: Final = "P90D"
NOTIFY_BEFORE_EXPIRY: Final = "P30D"
KEY_EXPIRY: Final = "P180D"
# Trusted Microsoft services bypass the vault firewall (still with their own Entra token and role). Documented
# (https://learn.microsoft.com/azure/key-vault/general/overview-vnet-service-endpoints#trusted-services): "Azure
# Disk Storage | When configured with a Disk Encryption Set (DES)" and "Azure Storage" (CMK) are on the allowlist,
# and with publicNetworkAccess Disabled "allowlisted services still bypass and don't require a private endpoint";
# services not on the list are blocked. So a vault holding a disk encryption set's key (confidential or not) needs
# this bypass. UNCONFIRMED: the allowlist does not name the Confidential VM Orchestrator's release of a
# confidential OS-disk key at VM start separately; ccp assumes it comes in as Azure Disk Storage (the DES).
TRUSTED_SERVICES_BYPASS: Final = "AzureServices"


@dataclass(frozen=True)
class KeyVaultArgs:
    vault_name: str
    resource_group_name: pulumi.Input[str]
    location: str
    tenant_id: pulumi.Input[str]
    endpoint_subnet: network.Subnet
    dns: PrivateDns
    tags: dict[str, str]
    managed_hsm: bool = False
    hsm_admin_object_ids: list[pulumi.Input[str]] = field(default_factory=list)


class KeyVault(pulumi.ComponentResource):
    """`vault` (Premium) or `hsm` (Managed HSM), `id` and `uri` of whichever was declared."""

    vault: keyvault.Vault | None
    hsm: keyvault.ManagedHsm | None
    id: pulumi.Output[str]
    uri: pulumi.Output[str]

    def __init__(self, name: str, args: KeyVaultArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:azure:KeyVault", name, None, opts)
        self.location = args.location
        # What the vault's firewall lets through besides its private endpoint (checked by users that
        # need the trusted-services path, e.g. a confidential disk encryption set).
        self.network_bypass = TRUSTED_SERVICES_BYPASS
        self.resource_group_name = args.resource_group_name
        common = placement(args.resource_group_name, args.location, args.tags)
        if args.managed_hsm:
            if not args.hsm_admin_object_ids:
                raise ValueError(
                    f"Managed HSM {args.vault_name!r} needs at least one administrator object id "
                    "(they activate its security domain)"
                )
            self.vault = None
            self.hsm = keyvault.ManagedHsm(
                name,
                name=args.vault_name,
                sku=keyvault.ManagedHsmSkuArgs(family="B", name="Standard_B1"),
                properties=keyvault.ManagedHsmPropertiesArgs(
                    tenant_id=args.tenant_id,
                    initial_admin_object_ids=args.hsm_admin_object_ids,
                    enable_purge_protection=True,
                    enable_soft_delete=True,
                    soft_delete_retention_in_days=SOFT_DELETE_RETENTION_DAYS,
                    public_network_access="Disabled",
                    network_acls=keyvault.MHSMNetworkRuleSetArgs(default_action="Deny", bypass=TRUSTED_SERVICES_BYPASS),
                ),
                **common,
                opts=child(self),
            )
            self.id = self.hsm.id
            self.uri = self.hsm.properties.apply(lambda p: p.hsm_uri or "")
            group_id = "managedhsm"
        else:
            self.hsm = None
            self.vault = keyvault.Vault(
                name,
                vault_name=args.vault_name,
                properties=keyvault.VaultPropertiesArgs(
                    tenant_id=args.tenant_id,
                    sku=keyvault.SkuArgs(family="A", name="premium"),
                    enable_purge_protection=True,
                    enable_soft_delete=True,
                    soft_delete_retention_in_days=SOFT_DELETE_RETENTION_DAYS,
                    enable_rbac_authorization=True,
                    enabled_for_deployment=False,
                    enabled_for_disk_encryption=False,
                    enabled_for_template_deployment=False,
                    public_network_access="Disabled",
                    network_acls=keyvault.NetworkRuleSetArgs(default_action="Deny", bypass=TRUSTED_SERVICES_BYPASS),
                ),
                **common,
                opts=child(self),
            )
            self.id = self.vault.id
            self.uri = self.vault.properties.apply(lambda p: p.vault_uri or "")
            group_id = "vault"
        self.endpoint = private_endpoint(
            f"{name}-pe",
            parent=self,
            subnet=args.endpoint_subnet,
            target_id=self.id,
            group_id=group_id,
            dns=args.dns,
            **common,
        )
        self.register_outputs({"id": self.id, "uri": self.uri})

    def require_vault(self, purpose: str) -> keyvault.Vault:
        if self.vault is None:
            raise ValueError(
                f"{purpose} needs a Key Vault Premium: Managed HSM keys are data-plane objects "
                "that azure-native cannot declare"
            )
        return self.vault


def rotation_policy() -> keyvault.RotationPolicyArgs:
    return keyvault.RotationPolicyArgs(
        attributes=keyvault.KeyRotationPolicyAttributesArgs(expiry_time=KEY_EXPIRY),
        lifetime_actions=[
            keyvault.LifetimeActionArgs(
                action=keyvault.ActionArgs(type="rotate"),
                trigger=keyvault.TriggerArgs(time_after_create=ROTATE_AFTER),
            ),
            keyvault.LifetimeActionArgs(
                action=keyvault.ActionArgs(type="notify"),
                trigger=keyvault.TriggerArgs(time_before_expiry=NOTIFY_BEFORE_EXPIRY),
            ),
        ],
    )


def hsm_key(
    name: str,
    *,
    vault: KeyVault,
    key_name: str,
    key_ops: list[str],
    tags: dict[str, str],
    parent: pulumi.Resource,
    purpose: str,
    release_policy_data: pulumi.Input[str] | None = None,
) -> keyvault.Key:
    """An RSA-HSM key with a rotation policy, tagged with its `ccp-key-purpose`.

    Attested purposes (`party-data`, `confidential-disk`) are exportable with a release policy: the
    secure-key-release case. Service purposes (storage CMK, disks, cluster secrets) are never
    exportable and have no release policy: Azure services wrap/unwrap inside Key Vault. A purpose
    without the matching release policy is refused, so a key cannot drift into the other kind.
    """
    store = vault.require_vault(f"key {key_name!r}")
    exportable = release_policy_data is not None
    if exportable != (purpose in ATTESTED):
        raise ValueError(
            f"key {key_name!r} of purpose {purpose!r}: "
            + ("a service key is never exportable and has no release policy" if exportable
               else "an attested key needs a release policy (it is released only on attestation)")
        )
    return keyvault.Key(
        name,
        key_name=key_name,
        vault_name=store.name,
        resource_group_name=vault.resource_group_name,
        properties=keyvault.KeyPropertiesArgs(
            kty="RSA-HSM",
            key_size=KEY_SIZE,
            key_ops=key_ops,
            attributes=keyvault.KeyAttributesArgs(enabled=True, exportable=exportable),
            release_policy=keyvault.KeyReleasePolicyArgs(content_type=CONTENT_TYPE, data=release_policy_data)
            if exportable
            else None,
            rotation_policy=rotation_policy(),
        ),
        tags={**tags, **purpose_tags(purpose)},
        opts=child(parent),
    )
