"""AKS for Kubernetes workload hosts: a private cluster whose workload node pool runs on
confidential VM sizes (SEV-SNP / TDX) or SGX sizes with the confidential-computing add-on.

Hardening: private API server (no public FQDN, run-command disabled), Entra ID with Azure RBAC
and local accounts disabled, Kubernetes secrets envelope-encrypted with a Key Vault key reached
privately (KMS), Azure network policy, nodes without public IPs (egress via the subnet's NAT
gateway), workload identity so the workload pod uses the host's managed identity (the identity
party keys are released to) through a federated credential, never a stored secret.

Every node is confidential: the system pool too runs a confidential size of the host's TEE
(`SYSTEM_POOL_SIZE`; CriticalAddonsOnly-tainted, so workload pods never land there), and every node's
OS disk is encrypted under a customer key through the cluster's disk encryption set
(`diskEncryptionSetID`, type EncryptionAtRestWithCustomerKey; the control plane's identity reads it,
https://learn.microsoft.com/azure/aks/aks-service-permissions, and it can be set only when the
cluster is created, https://learn.microsoft.com/azure/aks/azure-disk-customer-managed-keys).

The attested query service (`components.kubernetes.query_service`) is declared on the confidential
pool through an explicit Kubernetes provider built from the cluster's user kubeconfig
(`listManagedClusterUserCredentials`, exec format: Entra ID through kubelogin, no static token since
local accounts are disabled), kept secret in the state. The API server is private: `pulumi up` must
run from a network that reaches it (the VNet, a peered network or a jump host).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Final, Sequence

import pulumi
import pulumi_kubernetes as k8s
from pulumi_azure_native import compute, containerservice, keyvault, managedidentity, network

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

# The system pool (CoreDNS, konnectivity, CSI, ...; tainted CriticalAddonsOnly) on a confidential size of
# the host's TEE as well: its nodes see the cluster's secrets and service traffic. AKS requires >= 4 vCPUs
# and 4 GiB for a system pool (https://learn.microsoft.com/azure/aks/use-system-pools).
SYSTEM_POOL_SIZE: Final[dict[str, str]] = {
    "sev-snp": "Standard_DC4as_v5",
    "tdx": "Standard_DC4es_v5",
    "sgx": "Standard_DC4s_v3",
}
READER: Final = "acdd72a7-3385-48ef-bd42-f606fba81ae7"  # built-in "Reader"
KUBECONFIG_FORMAT: Final = "exec"  # kubelogin (Entra ID); "azure" is the deprecated auth-provider form
# What the provider gets when the credentials answer carries no kubeconfig (the offline review's
# placeholder answer): explicit and empty, so it reaches no cluster, never an ambient ~/.kube/config.
EMPTY_KUBECONFIG: Final = json.dumps(
    {"apiVersion": "v1", "kind": "Config", "clusters": [], "contexts": [], "users": [], "current-context": ""}
)


def user_kubeconfig(kubeconfigs: Sequence[Any] | None) -> str:
    """The first credential's kubeconfig (base64 in the answer) as text; `EMPTY_KUBECONFIG` when there
    is none. A value that is not base64 UTF-8 text is refused (never passed on as a kubeconfig)."""
    for credential in kubeconfigs or ():
        value = credential.get("value") if isinstance(credential, dict) else getattr(credential, "value", None)
        if not value:
            continue
        try:
            return base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            if str(value).startswith("placeholder-"):
                return EMPTY_KUBECONFIG  # the offline review's schema placeholder, not a credential
            raise ValueError("the AKS user credentials answer carries a kubeconfig that is not base64 UTF-8 text") from None
    return EMPTY_KUBECONFIG


def system_pool_size(tee: str) -> str:
    if tee not in SYSTEM_POOL_SIZE:
        raise ValueError(f"AKS hosts run tee {', '.join(SYSTEM_POOL_SIZE)}, not {tee!r}")
    return SYSTEM_POOL_SIZE[tee]
# The SGX device plugin + quote helper ("confcom" add-on).
SGX_ADDON: Final = "ACCSGXDevicePlugin"
WORKLOAD_NAMESPACE: Final = "ccp"
WORKLOAD_SERVICE_ACCOUNT: Final = "workload"
TEE_LABEL: Final = "ccp.io/tee"  # label and taint of the confidential pool


def query_placement(tee: str, workload_client_id: pulumi.Input[str]) -> Placement:
    """The confidential pool (its label, tolerating its taint), the workload identity the federated
    credential trusts (service account `ccp/workload`, no stored secret), behind an internal Azure load
    balancer (L4: TLS ends in the pod). Declared by `ConfidentialAks` as `self.query_placement`, used by
    the Azure site for the host's `QueryService`. No RuntimeClass: the pool runs confidential VM nodes, not Kata confidential
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
    # Customer-key OS disks of every node (EncryptionAtRestWithCustomerKey; set at creation only).
    disk_encryption_set: compute.DiskEncryptionSet | None = None


class ConfidentialAks(pulumi.ComponentResource):
    cluster: containerservice.ManagedCluster
    pool: containerservice.AgentPool
    provider: k8s.Provider
    query_placement: Placement

    def __init__(self, name: str, args: AksArgs, opts: pulumi.ResourceOptions | None = None):
        size = host_size(args.host)
        system_size = system_pool_size(args.host.tee)
        if args.disk_encryption_set is None:
            raise ValueError(
                "an AKS host needs a customer-key disk encryption set for its nodes' OS disks "
                "(diskEncryptionSetID can be set only when the cluster is created)"
            )
        super().__init__("ccp:azure:ConfidentialAks", name, None, opts)
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
            # The cluster identity reads the disk encryption set it creates node OS disks with
            # (Microsoft.Compute/diskEncryptionSets/read).
            assign_role(
                f"{name}-des-reader",
                scope=args.disk_encryption_set.id,
                role=READER,
                principal_id=control_plane.principal_id,
                parent=self,
                description="AKS creates node OS disks with this customer-key disk encryption set",
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
                    vm_size=system_size,
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
            disk_encryption_set_id=args.disk_encryption_set.id,
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
        self.query_placement = query_placement(args.host.tee, args.workload_identity.client_id)
        credentials = containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=args.resource_group_name,
            resource_name=self.cluster.name,
            format=KUBECONFIG_FORMAT,
            opts=pulumi.InvokeOutputOptions(parent=self, depends_on=[self.cluster]),
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            # The cluster's CA and endpoint (exec: kubelogin with Entra ID); secret in the state.
            kubeconfig=pulumi.Output.secret(credentials.kubeconfigs.apply(user_kubeconfig)),
            enable_server_side_apply=True,
            opts=child(self, self.pool),
        )
        self.register_outputs({"clusterId": self.cluster.id})
