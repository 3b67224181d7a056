"""The Azure slice of a collaboration, as one ComponentResource.

Declares, for the parties and workload hosts on Azure:
- a resource group per region used (parties' and hosts' regions: data stays where it may live);
- a private network per region (peered when there are several) and the private DNS zones;
- the collaboration's attestation provider (its attest URI is every release policy's authority);
- per workload host: a user-assigned identity and an ACI confidential container group
  (`confidential-containers`, the default: the data keys pin its CCE policy hash), a confidential VM
  (sev-snp/tdx; an Azure SEV-SNP CVM is a data-key release target only with `measurements.azureCvm`, through
  the collaboration's own attestation policy over its vTPM PCRs, `GuestAttestationPolicy`), an SGX VM, or a
  private AKS cluster with confidential node pools (`host.kubernetes`; every node's OS disk under a
  customer key in every environment) and the attested query service's replicas on it; in prod the OS disks are
  encrypted with customer keys held in an operator vault of the host's region, whose use is
  audit-logged like the party vaults';
- per party: a hardened Key Vault Premium with the party's two keys (components/README.md): the
  data key (exportable RSA-HSM, released only against the approved measurements and only to the
  workload identities) and the storage key (non-exportable, the storage account's CMK), the
  storage account and monitoring.

Everything that can be wrong in config (sizes, missing measurement sections, missing prod
settings) is checked by `components.azure.checks`, run by the config validation before the first
resource is declared; the site only declares. Its `ccp-azure` options arrive as `SiteArgs.options`.
"""

from __future__ import annotations


import pulumi
from pulumi_azure_native import authorization, keyvault, managedidentity, monitor, resources

from components.attestation.azure_release_policy import (
    AZURE_RELEASE_TEES,
    combine_release_policies,
    cvm_disk_release_policy,
    encode_release_policy,
    release_policy,
)
from components.azure.aks import AksArgs, ConfidentialAks
from components.azure.attestation import AttestationArgs, AttestationProvider, GuestAttestationPolicy
from components.azure.common import (
    KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
    KEY_VAULT_CRYPTO_USER,
    assign_role,
    child,
    global_name,
)
from components.azure.container_group import ContainerGroupArgs, ConfidentialContainerGroup
from components.azure.data_key import PartyDataKey, PartyDataKeyArgs
from components.azure.keyvault import KeyVault, KeyVaultArgs, hsm_key
from components.azure.monitoring import ArchiveArgs, Monitoring, MonitoringArgs
from components.azure.network import Network, NetworkArgs, PrivateDns, PrivateDnsArgs, peer
from components.azure.checks import CONTAINER_GROUP_TEE, options_of, release_targets
from components.azure.storage import PartyStorage, PartyStorageArgs
from components.azure.vm import (
    CONFIDENTIAL_DES_TYPE,
    STANDARD_DES_TYPE,
    ConfidentialVm,
    DiskEncryption,
    DiskEncryptionArgs,
    SgxVm,
    VmArgs,
)
from components.key_purpose import AUDIT, CLUSTER_SECRETS
from components.kubernetes.flower import FlowerFederation
from components.kubernetes.query_service import QueryService
from components.kubernetes.workloads import cluster_workloads
from components.model import Party, WorkloadHost, azure_cvm_host, releases_key
from components.site import SiteArgs

ACTION_GROUP_SHORT_NAME = "ccp-alerts"  # at most 12 characters (shown in SMS and email subjects)
# Control-plane operations (Azure Activity Log `operationName`) the parties must see.
WATCHED_OPERATIONS = (
    "Microsoft.KeyVault/vaults/write",
    "Microsoft.KeyVault/vaults/delete",
    "Microsoft.KeyVault/vaults/keys/write",
    "Microsoft.Authorization/roleAssignments/write",
    "Microsoft.Authorization/roleAssignments/delete",
    "Microsoft.Insights/diagnosticSettings/write",
    "Microsoft.Insights/diagnosticSettings/delete",
    "Microsoft.Attestation/attestationProviders/write",
)


def _ordered_regions(args: SiteArgs) -> list[str]:
    regions: list[str] = []
    for region in [p.region for p in args.parties] + [h.region for h in args.hosts]:
        if region not in regions:
            regions.append(region)
    return regions


def host_label(index: int, host: WorkloadHost) -> str:
    return f"{host.tee}-{host.region}-{index}"


class Site(pulumi.ComponentResource):
    """`keys`: party name -> that party's data key (`azure-native:keyvault:Key`)."""

    keys: dict[str, keyvault.Key]

    def __init__(self, name: str, args: SiteArgs, opts: pulumi.ResourceOptions | None = None):
        if args.cloud != "azure":
            raise ValueError(f"components.azure.site.Site declares the Azure slice, not {args.cloud!r}")
        options = options_of(args)
        super().__init__("ccp:azure:Site", name, None, opts)
        self._name = name
        self._args = args
        self._options = options
        self._collab = args.collaboration
        self._site_tags = args.tags()
        # Workload hosts and the operator vault (disk and cluster keys) serve every party and live
        # only where the workload runs: `party: shared`.
        self._host_tags = args.shared_tags()
        self._tenant_id = authorization.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=self)).tenant_id

        regions = _ordered_regions(args)
        self.resource_groups = {
            region: resources.ResourceGroup(
                f"{name}-{region}",
                resource_group_name=f"ccp-{self._collab.name}-{region}",
                location=region,
                tags=self._site_tags,
                opts=child(self),
            )
            for region in regions
        }
        self._group_names = {region: group.name for region, group in self.resource_groups.items()}
        self.networks = {
            region: Network(
                f"{name}-{region}",
                NetworkArgs(
                    resource_group_name=self._group_names[region],
                    location=region,
                    address_space=options.region_address_space(index),
                    tags=self._site_tags,
                    kubernetes=any(h.kubernetes and h.region == region for h in args.hosts),
                    container_groups=any(h.tee == CONTAINER_GROUP_TEE and h.region == region for h in args.hosts),
                ),
                opts=child(self),
            )
            for index, region in enumerate(regions)
        }
        nets = list(self.networks.values())
        for i, a in enumerate(nets):
            for b in nets[i + 1:]:
                peer(f"{name}-peer", a, b, self._group_names, self)
        self.dns = PrivateDns(
            f"{name}-dns",
            PrivateDnsArgs(resource_group_name=self._group_names[regions[0]], networks=nets, tags=self._site_tags),
            opts=child(self),
        )
        attestation_region = args.hosts[0].region if args.hosts else regions[0]
        self.attestation = AttestationProvider(
            f"{name}-attestation",
            AttestationArgs(
                collaboration=self._collab.name,
                resource_group_name=self._group_names[attestation_region],
                location=attestation_region,
                tags=self._site_tags,
                shared_endpoint=options.shared_attestation_endpoint,
                policy_signing_certificates=options.attestation_policy_signing_certificates,
            ),
            opts=child(self),
        )
        self._ops_vaults: dict[str, KeyVault] = {}
        self.action_group, self.activity_alert = self._notifications(regions)

        releasers: dict[str, pulumi.Output[str]] = {}
        self.hosts: dict[str, pulumi.ComponentResource] = {}
        self.query_services: list[QueryService] = []
        self.federation: FlowerFederation | None = None
        for index, host in enumerate(args.hosts):
            label = host_label(index, host)
            identity, component = self._host(label, host)
            self.hosts[label] = component
            if host.tee in AZURE_RELEASE_TEES and releases_key("azure", host, self._collab.measurements):
                releasers[label] = identity.principal_id
        pcrs = self._collab.measurements.azure_cvm
        if pcrs is not None and any(azure_cvm_host(h) for h in args.hosts):
            # The CVM hosts' keys name the provider whose policy checks the guest's PCRs (checks: isolated mode).
            GuestAttestationPolicy(f"{name}-guest-policy", self.attestation, pcrs, opts=child(self.attestation))

        # Every key's use is audit-logged: the operator vaults (disk and cluster keys) too.
        self.ops_monitoring = {
            region: Monitoring(
                f"{name}-ops-{region}-monitoring",
                MonitoringArgs(
                    resource_group_name=self._group_names[region],
                    location=region,
                    retention_days=args.log_retention_days,
                    vault_id=vault.id,
                    storage_account_id=None,
                    tags=self._host_tags,
                    action_group_id=self.action_group.id,
                    archive=self._ops_archive(region, vault) if args.prod else None,
                ),
                opts=child(self),
            )
            for region, vault in self._ops_vaults.items()
        }

        targets = release_targets(args)
        # No release target (e.g. only an Azure CVM host without azureCvm, no Azure party): no data key, no policy.
        self.release_policy = self.attestation.authority.apply(
            lambda authority: combine_release_policies(
                [
                    release_policy(self._collab.measurements, tee=tee, authority=authority, container=container)
                    for tee, container in targets
                ]
            )
        ) if targets else None
        self.keys = {}
        for party in args.parties:
            self.keys[party.name] = self._party(party, releasers)
        self.register_outputs({
            "keys": {party: key.id for party, key in self.keys.items()},
            "authority": self.attestation.authority,
        })

    # -- operations ------------------------------------------------------------------------
    def _notifications(self, regions: list[str]) -> tuple[monitor.ActionGroup, monitor.ActivityLogAlert]:
        """The stack's notification channel (one action group) and one activity-log alert on the
        control-plane changes that matter: vaults, keys (their release policies), role assignments,
        diagnostic settings (audit delivery) and the attestation provider (its policy)."""
        group = self._group_names[regions[0]]
        action_group = monitor.ActionGroup(
            f"{self._name}-alerts",
            action_group_name=f"ccp-{self._collab.name}-alerts",
            resource_group_name=group,
            location="global",
            group_short_name=ACTION_GROUP_SHORT_NAME,
            enabled=True,
            email_receivers=[
                monitor.MicrosoftCommonEmailReceiverArgs(name=f"email-{i}", email_address=email, use_common_alert_schema=True)
                for i, email in enumerate(self._options.alert_emails)
            ],
            tags=self._site_tags,
            opts=child(self),
        )
        alert = monitor.ActivityLogAlert(
            f"{self._name}-control-plane-changes",
            activity_log_alert_name=f"ccp-{self._collab.name}-control-plane-changes",
            resource_group_name=group,
            location="global",
            description="A key vault, key (release policy), role assignment, diagnostic setting or attestation provider "
            "of the collaboration was written or deleted",
            enabled=True,
            scopes=[g.id for g in self.resource_groups.values()],
            condition=monitor.AlertRuleAllOfConditionArgs(
                all_of=[
                    monitor.AlertRuleAnyOfOrLeafConditionArgs(field="category", equals="Administrative"),
                    monitor.AlertRuleAnyOfOrLeafConditionArgs(
                        any_of=[
                            monitor.AlertRuleLeafConditionArgs(field="operationName", equals=operation)
                            for operation in WATCHED_OPERATIONS
                        ]
                    ),
                ]
            ),
            actions=monitor.ActionListArgs(action_groups=[monitor.ActionGroupArgs(action_group_id=action_group.id)]),
            tags=self._site_tags,
            opts=child(self),
        )
        return action_group, alert

    def _ops_archive(self, region: str, vault: KeyVault) -> ArchiveArgs:
        """The operator vault's immutable audit copy, under an `audit` key of that vault."""
        name = f"{self._name}-ops-{region}-archive"
        key_name = f"ops-{region}-audit"
        key = hsm_key(f"{name}-key", vault=vault, key_name=key_name, key_ops=["wrapKey", "unwrapKey"],
                      tags=self._host_tags, parent=self, purpose=AUDIT)
        identity = managedidentity.UserAssignedIdentity(
            f"{name}-identity", resource_group_name=self._group_names[region], location=region,
            tags=self._host_tags, opts=child(self),
        )
        grant = assign_role(
            f"{name}-encryption", scope=key.id, role=KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
            principal_id=identity.principal_id, parent=self,
            description=f"the audit archive of the operator vault in {region} wraps its account key",
        )
        return ArchiveArgs(
            account_name=global_name("ccp", self._collab.name, "ops", region, "audit", alphanumeric=True),
            cmk_name=key_name,
            vault_uri=vault.uri,
            identity_id=identity.id,
            retention_days=self._args.log_retention_days,
            lock_state=self._options.audit_archive_lock,
            after=(grant,),
        )

    # -- workload hosts -------------------------------------------------------------------
    def _host_policy_data(self, host: WorkloadHost) -> pulumi.Output[str]:
        """The confidential OS-disk key's release policy: Microsoft's platform policy for the
        host's region (top-level claims, the shared regional authority), never the data-key
        policy: the platform releases this key at VM start, not the workload."""
        return pulumi.Output.from_input(encode_release_policy(cvm_disk_release_policy([host.region])))

    def _ops_vault(self, region: str) -> KeyVault:
        """The operator's vault in `region`: disk-encryption and KMS keys, never party data keys."""
        if region not in self._ops_vaults:
            self._ops_vaults[region] = KeyVault(
                f"{self._name}-ops-{region}",
                KeyVaultArgs(
                    vault_name=global_name("ccp", self._collab.name, "ops", region),
                    resource_group_name=self._group_names[region],
                    location=region,
                    tenant_id=self._tenant_id,
                    endpoint_subnet=self.networks[region].subnets["endpoints"],
                    dns=self.dns,
                    tags=self._host_tags,
                ),
                opts=child(self),
            )
        return self._ops_vaults[region]

    def _host(self, label: str, host: WorkloadHost) -> tuple[managedidentity.UserAssignedIdentity, pulumi.ComponentResource]:
        name = f"{self._name}-{label}"
        group = self._group_names[host.region]
        identity = managedidentity.UserAssignedIdentity(
            f"{name}-identity",
            resource_group_name=group,
            location=host.region,
            tags=self._host_tags,
            opts=child(self),
        )
        if host.tee == CONTAINER_GROUP_TEE:
            snp = self._collab.measurements.sev_snp
            container_group = ConfidentialContainerGroup(
                name,
                ContainerGroupArgs(
                    host=host,
                    resource_group_name=group,
                    subnet=self.networks[host.region].subnets["containers"],
                    identity=identity,
                    image=self._collab.workload.image,
                    cce_policy=snp.cce_policy if snp else None,
                    tags=self._host_tags,
                    workload_name=self._collab.workload.name,
                ),
                opts=child(self),
            )
            return identity, container_group
        if host.kubernetes:
            vault = self._ops_vault(host.region)
            kms_key = hsm_key(
                f"{name}-kms",
                vault=vault,
                key_name=f"{label}-kms",
                key_ops=["encrypt", "decrypt"],
                tags=self._host_tags,
                parent=self,
                purpose=CLUSTER_SECRETS,
            )
            # Node OS disks under a customer key in every environment (the cluster's DES is fixed at
            # creation); a standard set: AKS nodes do not use confidential OS-disk encryption.
            aks_disks = DiskEncryption(
                f"{name}-disk",
                DiskEncryptionArgs(
                    resource_group_name=group,
                    location=host.region,
                    vault=vault,
                    key_name=f"{label}-disk",
                    encryption_type=STANDARD_DES_TYPE,
                    tags=self._host_tags,
                ),
                opts=child(self),
            ).disk_encryption_set
            aks = ConfidentialAks(
                name,
                AksArgs(
                    host=host,
                    resource_group_name=group,
                    subnet=self.networks[host.region].subnets["aks"],
                    workload_identity=identity,
                    kms_vault=vault,
                    kms_key=kms_key,
                    tenant_id=self._tenant_id,
                    admin_ssh_public_key=self._options.admin_ssh_public_key,
                    tags=self._host_tags,
                    prod=self._args.prod,
                    disk_encryption_set=aks_disks,
                ),
                opts=child(self),
            )
            # The attested query service on the confidential pool, and Flower's federation on the Flower host
            # (its SuperNodes run under the workload identity the federated credential trusts).
            workloads = cluster_workloads(
                name, self._collab, host, aks.query_placement, self._host_tags, aks.provider, aks.pool, child(aks),
            )
            self.query_services.append(workloads.query)
            self.federation = self.federation or workloads.federation
            return identity, aks
        sgx = host.tee == "sgx"
        des = None
        if self._args.prod:
            des = DiskEncryption(
                f"{name}-disk",
                DiskEncryptionArgs(
                    resource_group_name=group,
                    location=host.region,
                    vault=self._ops_vault(host.region),
                    key_name=f"{label}-disk",
                    encryption_type=STANDARD_DES_TYPE if sgx else CONFIDENTIAL_DES_TYPE,
                    tags=self._host_tags,
                    release_policy_data=None if sgx else self._host_policy_data(host),
                    orchestrator_object_id=None if sgx else self._options.cvm_orchestrator_object_id,
                ),
                opts=child(self),
            ).disk_encryption_set
        vm_args = VmArgs(
            host=host,
            resource_group_name=group,
            subnet=self.networks[host.region].subnets["workload"],
            identity=identity,
            admin_ssh_public_key=self._options.admin_ssh_public_key,
            tags=self._host_tags,
            prod=self._args.prod,
            disk_encryption_set=des,
        )
        vm_class = SgxVm if sgx else ConfidentialVm
        return identity, vm_class(name, vm_args, opts=child(self))

    # -- parties --------------------------------------------------------------------------
    def _party(self, party: Party, releasers: dict[str, pulumi.Output[str]]) -> keyvault.Key:
        name = f"{self._name}-{party.name}"
        tags = self._args.tags(party)
        region = party.region
        group = self._group_names[region]
        endpoints = self.networks[region].subnets["endpoints"]
        vault = KeyVault(
            f"{name}-vault",
            KeyVaultArgs(
                vault_name=global_name("ccp", self._collab.name, party.name),
                resource_group_name=group,
                location=region,
                tenant_id=self._tenant_id,
                endpoint_subnet=endpoints,
                dns=self.dns,
                tags=tags,
            ),
            opts=child(self),
        )
        data_key = PartyDataKey(
            f"{name}-data-key",
            PartyDataKeyArgs(
                vault=vault,
                key_name=f"{party.name}-data",
                release_policy=self.release_policy,
                releasers=releasers,
                tags=tags,
            ),
            opts=child(self),
        )
        if party.owner_decrypt:
            # Explicit, per-party opt-in (validated above): shown in review as its own grant.
            assign_role(
                f"{name}-owner-decrypt",
                scope=data_key.key.id,
                role=KEY_VAULT_CRYPTO_USER,
                principal_id=party.owner_principal,  # type: ignore[arg-type]
                parent=data_key,
                description=f"ownerDecrypt: {party.name}'s owner may use its data key outside the enclave",
                principal_type=None,
            )
        store = PartyStorage(
            f"{name}-storage",
            PartyStorageArgs(
                party=party,
                account_name=global_name("ccp", self._collab.name, party.name, alphanumeric=True),
                resource_group_name=group,
                location=region,
                vault=vault,
                endpoint_subnet=endpoints,
                dns=self.dns,
                tags=tags,
                prod=self._args.prod,
            ),
            opts=child(self),
        )
        Monitoring(
            f"{name}-monitoring",
            MonitoringArgs(
                resource_group_name=group,
                location=region,
                retention_days=self._args.log_retention_days,
                vault_id=vault.id,
                storage_account_id=store.account.id,
                tags=tags,
                action_group_id=self.action_group.id,
                # The party's immutable audit copy: its storage key (party-storage) through its storage identity.
                archive=ArchiveArgs(
                    account_name=global_name("ccp", self._collab.name, party.name, "audit", alphanumeric=True),
                    cmk_name=f"{party.name}-storage",
                    vault_uri=vault.uri,
                    identity_id=store.identity.id,
                    retention_days=self._args.log_retention_days,
                    lock_state=self._options.audit_archive_lock,
                    after=(store.account,),
                ) if self._args.prod else None,
            ),
            opts=child(self),
        )
        return data_key.key
