"""A party's storage on Azure: blob containers per dataset in an account encrypted with a
customer-managed key from the party's own vault (plus infrastructure encryption), HTTPS and
TLS 1.2 only, no public blobs, no shared keys (Entra ID only), reachable only on a private
endpoint (CIS Azure 4.x; HIPAA 164.312(a)(2)(iv), (e)(1)).

The account's CMK is the party's *storage* key (`party-storage`): non-exportable, no release
policy, usable only by the account's identity ("Key Vault Crypto Service Encryption User" on that
key alone). Azure Storage wraps its account key without any attestation, so it can never use the
party's attestation-bound data key; the blobs' content is envelope-encrypted under the data key
instead (components/README.md, "Two keys per party")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pulumi
from pulumi_azure_native import managedidentity, network, storage

from components.azure.common import (
    KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
    assign_role,
    child,
    hardened_storage_account,
    placement,
)
from components.azure.keyvault import KeyVault, hsm_key
from components.azure.network import PrivateDns, private_endpoint
from components.key_purpose import PARTY_STORAGE
from components.model import Party

STORAGE_KEY_OPS: Final = ["wrapKey", "unwrapKey"]


@dataclass(frozen=True)
class PartyStorageArgs:
    party: Party
    account_name: str
    resource_group_name: pulumi.Input[str]
    location: str
    vault: KeyVault
    endpoint_subnet: network.Subnet
    dns: PrivateDns
    tags: dict[str, str]
    prod: bool


class PartyStorage(pulumi.ComponentResource):
    account: storage.StorageAccount
    identity: managedidentity.UserAssignedIdentity

    def __init__(self, name: str, args: PartyStorageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:azure:PartyStorage", name, None, opts)
        common = placement(args.resource_group_name, args.location, args.tags)
        self.identity = managedidentity.UserAssignedIdentity(f"{name}-identity", **common, opts=child(self))
        cmk_name = f"{args.party.name}-storage"
        self.cmk = hsm_key(
            f"{name}-cmk",
            vault=args.vault,
            key_name=cmk_name,
            key_ops=STORAGE_KEY_OPS,
            tags=args.tags,
            parent=self,
            purpose=PARTY_STORAGE,
        )
        grant = assign_role(
            f"{name}-cmk-encryption",
            scope=self.cmk.id,
            role=KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
            principal_id=self.identity.principal_id,
            parent=self,
            description=f"storage account {args.account_name} wraps its account key with {args.party.name}'s CMK",
        )
        self.account = storage.StorageAccount(
            f"{name}-account",
            account_name=args.account_name,
            kind="StorageV2",
            sku=storage.SkuArgs(name="Standard_ZRS" if args.prod else "Standard_LRS"),
            identity=storage.IdentityArgs(type="UserAssigned", user_assigned_identities=[self.identity.id]),
            encryption=storage.EncryptionArgs(
                key_source="Microsoft.Keyvault",
                key_vault_properties=storage.KeyVaultPropertiesArgs(
                    key_name=cmk_name, key_vault_uri=args.vault.uri
                ),
                encryption_identity=storage.EncryptionIdentityArgs(
                    encryption_user_assigned_identity=self.identity.id
                ),
                require_infrastructure_encryption=True,
                services=storage.EncryptionServicesArgs(
                    blob=storage.EncryptionServiceArgs(enabled=True, key_type="Account"),
                    file=storage.EncryptionServiceArgs(enabled=True, key_type="Account"),
                ),
            ),
            **hardened_storage_account(bypass="None"),
            **common,
            opts=child(self, grant),
        )
        self.endpoint = private_endpoint(
            f"{name}-pe",
            parent=self,
            subnet=args.endpoint_subnet,
            target_id=self.account.id,
            group_id="blob",
            dns=args.dns,
            **common,
        )
        self.containers = [
            storage.BlobContainer(
                f"{name}-{dataset.name}",
                account_name=self.account.name,
                container_name=dataset.name,
                resource_group_name=args.resource_group_name,
                public_access="None",
                metadata={"classification": dataset.classification},
                opts=child(self),
            )
            for dataset in args.party.datasets
        ]
        self.register_outputs({"accountId": self.account.id})
