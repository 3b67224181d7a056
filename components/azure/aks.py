"""AKS for Kubernetes workload hosts: a private cluster whose workload node pool runs on
confidential VM sizes (SEV-SNP / TDX) or SGX sizes with the confidential-computing add-on.

Hardening: private API server (no public FQDN, run-command disabled), Entra ID with Azure RBAC
and local accounts disabled, Kubernetes secrets envelope-encrypted with a Key Vault key reached
privately (KMS), Azure network policy, nodes without public IPs (egress via the subnet's NAT
gateway), workload identity so the workload pod uses the host's managed identity (the identity
party keys are released to) through a federated credential, never a stored secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pulumi
from pulumi_azure_native import containerservice, keyvault, managedidentity, network

from components.azure.common import (
    KEY_VAULT_CONTRIBUTOR,
    KEY_VAULT_CRYPTO_USER,
    assign_role,
    child,
    placement,
)
from components.azure.keyvault import KeyVault
from components.azure.vm import ADMIN_USERNAME, host_size
from components.kubernetes.query_service import Placement
from components.model import WorkloadHost

SYSTEM_POOL_SIZE: Final = "Standard_D4ds_v5"
# The SGX device plugin + quote helper ("confcom" add-on).
SGX_ADDON: Final = "ACCSGXDevicePlugin"
WORKLOAD_NAMESPACE: Final = "ccp"
WORKLOAD_SERVICE_ACCOUNT: Final = "workload"
TEE_LABEL: Final = "ccp.io/tee"  # label and taint of the confidential pool


def query_placement(tee: str, workload_client_id: pulumi.Input[str]) -> Placement:
    """The confidential pool (its label, tolerating its taint), the workload identity the federated
    credential trusts (service account `ccp/workload`, no stored secret), behind an internal Azure load
    balancer (L4: TLS ends in the pod). Not wired into the site yet: the cluster's Kubernetes provider
    needs its user kubeconfig (`listManagedClusterUserCredentials`, an invoke the offline review does
    not answer yet). No RuntimeClass: the pool runs confidential VM nodes, not Kata confidential
    containers (`kata-cc-isolation` would need `workloadRuntime: KataCcIsolation` on the pool)."""
    return Placement(
        node_selector={TEE_LABEL: tee},
        tolerations=({"key": TEE_LABEL, "operator": "Equal", "value": tee, "effect": "NoSchedule"},),
        service_annotations={"service.beta.kubernetes.io/azure-load-balancer-internal": "true"},
        service_account_annotations={"azure.workload.identity/client-id": workload_client_id},
        pod_labels={"azure.workload.identity/use": "true"},
    )


@dataclass(frozen=True)
class AksArgs:
    host: WorkloadHost
    resource_group_name: pulumi.Input[str]
    subnet: network.Subnet
    workload_identity: managedidentity.UserAssignedIdentity
    kms_vault: KeyVault
    kms_key: keyvault.Key
    tenant_id: pulumi.Input[str]
    admin_ssh_public_key: str
    tags: dict[str, str]
    prod: bool


class ConfidentialAks(pulumi.ComponentResource):
    cluster: containerservice.ManagedCluster
    pool: containerservice.AgentPool

    def __init__(self, name: str, args: AksArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:azure:ConfidentialAks", name, None, opts)
        size = host_size(args.host)
        common = placement(args.resource_group_name, args.host.region, args.tags)
        control_plane = managedidentity.UserAssignedIdentity(f"{name}-control-plane", **common, opts=child(self))
        grants = [
            assign_role(
                f"{name}-kms-crypto",
                scope=args.kms_key.id,
                role=KEY_VAULT_CRYPTO_USER,
                principal_id=control_plane.principal_id,
                parent=self,
                description="AKS envelope-encrypts Kubernetes secrets with this key (KMS v2)",
            ),
            # Documented requirement of KMS with a private vault (the API server reaches it via
            # a private link it manages).
            assign_role(
                f"{name}-kms-vault",
                scope=args.kms_vault.id,
                role=KEY_VAULT_CONTRIBUTOR,
                principal_id=control_plane.principal_id,
                parent=self,
                description="AKS KMS with a private key vault manages its private link to the vault",
            ),
        ]
        no_public_ip = {"enable_node_public_ip": False, "vnet_subnet_id": args.subnet.id, "os_type": "Linux"}
        self.cluster = containerservice.ManagedCluster(
            f"{name}-cluster",
            dns_prefix=name[:54],
            sku=containerservice.ManagedClusterSKUArgs(name="Base", tier="Standard" if args.prod else "Free"),
            identity=containerservice.ManagedClusterIdentityArgs(
                type="UserAssigned", user_assigned_identities=[control_plane.id]
            ),
            agent_pool_profiles=[
                containerservice.ManagedClusterAgentPoolProfileArgs(
                    name="system",
                    mode="System",
                    vm_size=SYSTEM_POOL_SIZE,
                    count=2,
                    type="VirtualMachineScaleSets",
                    node_taints=["CriticalAddonsOnly=true:NoSchedule"],
                    **no_public_ip,
                )
            ],
            api_server_access_profile=containerservice.ManagedClusterAPIServerAccessProfileArgs(
                enable_private_cluster=True,
                enable_private_cluster_public_fqdn=False,
                disable_run_command=True,
            ),
            aad_profile=containerservice.ManagedClusterAADProfileArgs(
                managed=True, enable_azure_rbac=True, tenant_id=args.tenant_id
            ),
            enable_rbac=True,
            disable_local_accounts=True,
            network_profile=containerservice.ContainerServiceNetworkProfileArgs(
                network_plugin="azure",
                network_policy="azure",
                outbound_type="userAssignedNATGateway",
                load_balancer_sku="standard",
            ),
            security_profile=containerservice.ManagedClusterSecurityProfileArgs(
                azure_key_vault_kms=containerservice.AzureKeyVaultKmsArgs(
                    enabled=True,
                    key_id=args.kms_key.key_uri_with_version,
                    key_vault_network_access="Private",
                    key_vault_resource_id=args.kms_vault.id,
                ),
                workload_identity=containerservice.ManagedClusterSecurityProfileWorkloadIdentityArgs(enabled=True),
            ),
            oidc_issuer_profile=containerservice.ManagedClusterOIDCIssuerProfileArgs(enabled=True),
            addon_profiles={
                SGX_ADDON: containerservice.ManagedClusterAddonProfileArgs(
                    enabled=True, config={"ACCSGXQuoteHelperEnabled": "true"}
                )
            }
            if args.host.tee == "sgx"
            else None,
            linux_profile=containerservice.ContainerServiceLinuxProfileArgs(
                admin_username=ADMIN_USERNAME,
                ssh=containerservice.ContainerServiceSshConfigurationArgs(
                    public_keys=[containerservice.ContainerServiceSshPublicKeyArgs(key_data=args.admin_ssh_public_key)]
                ),
            ),
            **common,
            opts=child(self, *grants),
        )
        self.pool = containerservice.AgentPool(
            f"{name}-tee",
            agent_pool_name="tee",
            resource_group_name=args.resource_group_name,
            resource_name_=self.cluster.name,
            mode="User",
            vm_size=size,
            count=2,
            type="VirtualMachineScaleSets",
            os_sku="Ubuntu",
            node_labels={TEE_LABEL: args.host.tee},
            node_taints=[f"{TEE_LABEL}={args.host.tee}:NoSchedule"],
            tags=args.tags,
            **no_public_ip,
            opts=child(self),
        )
        issuer = self.cluster.oidc_issuer_profile.apply(lambda p: (p.issuer_url if p else None) or "")
        self.federation = managedidentity.FederatedIdentityCredential(
            f"{name}-workload-federation",
            resource_group_name=args.resource_group_name,
            resource_name_=args.workload_identity.name,
            issuer=issuer,
            subject=f"system:serviceaccount:{WORKLOAD_NAMESPACE}:{WORKLOAD_SERVICE_ACCOUNT}",
            audiences=["api://AzureADTokenExchange"],
            opts=child(self),
        )
        self.register_outputs({"clusterId": self.cluster.id})
