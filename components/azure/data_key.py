"""A party's data key on Azure: an exportable RSA-HSM key that Key Vault releases only against an
attestation token satisfying a release policy generated from the approved measurements, and only
to the workload's managed identities ("Key Vault Crypto Service Release User" on this key alone;
nothing broader, no other principal)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import pulumi
from pulumi_azure_native import authorization, keyvault

from components.attestation.azure_release_policy import encode_release_policy
from components.azure.common import KEY_VAULT_CRYPTO_SERVICE_RELEASE_USER, assign_role
from components.azure.keyvault import KeyVault, hsm_key
from components.key_purpose import PARTY_DATA

# What the released key is for: wrapping the party's data-encryption keys inside the TEE.
DATA_KEY_OPS: Final = ["wrapKey", "unwrapKey", "encrypt", "decrypt"]


@dataclass(frozen=True)
class PartyDataKeyArgs:
    vault: KeyVault
    key_name: str
    # The complete SKR policy document (an Output when its authority is a provider's attestUri).
    release_policy: pulumi.Input[dict[str, Any]]
    # label -> principal id of each workload identity allowed to request the release.
    releasers: dict[str, pulumi.Input[str]]
    tags: dict[str, str]


class PartyDataKey(pulumi.ComponentResource):
    key: keyvault.Key
    grants: list[authorization.RoleAssignment]

    def __init__(self, name: str, args: PartyDataKeyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:azure:PartyDataKey", name, None, opts)
        if not args.releasers:
            raise ValueError(
                f"data key {args.key_name!r} has no workload identity to release to: add an Azure "
                "workload host with tee confidential-containers or sgx (or sev-snp on AKS, or an Azure CVM with "
                "measurements.azureCvm.pcrs)"
            )
        self.key = hsm_key(
            f"{name}-key",
            vault=args.vault,
            key_name=args.key_name,
            key_ops=DATA_KEY_OPS,
            tags=args.tags,
            parent=self,
            purpose=PARTY_DATA,
            release_policy_data=pulumi.Output.from_input(args.release_policy).apply(encode_release_policy),
        )
        self.grants = [
            assign_role(
                f"{name}-release-{label}",
                scope=self.key.id,
                role=KEY_VAULT_CRYPTO_SERVICE_RELEASE_USER,
                principal_id=principal,
                parent=self,
                description=f"secure key release of {args.key_name} to attested workload {label}",
            )
            for label, principal in sorted(args.releasers.items())
        ]
        self.register_outputs({"keyId": self.key.id, "keyUri": self.key.key_uri})
