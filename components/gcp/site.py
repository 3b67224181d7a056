"""The GCP site of a collaboration: everything the collaboration declares on Google Cloud.

One `Site` per collaboration declares the network, the Confidential Space workload identity (pool,
provider with the strict attestation condition), one workload per GCP host (Confidential Space VM,
Confidential VM or private confidential GKE cluster, whose confidential pool runs the attested query
service's replicas), and for each GCP party its two keys (the data
key, released only to the approved image digests, and the storage key, the buckets' CMEK used only
by the Cloud Storage service agent) and its buckets; plus data-access audit logs and alerts.

Its config has passed `components.gcp.checks` (run by `stacks.config.parse` before any resource is
declared); its `ccp-gcp` options (`GcpSiteOptions`) arrive as `SiteArgs.options`. The site only declares.
"""

from __future__ import annotations

from typing import Final

import pulumi
import pulumi_gcp as gcp

from components.attestation.gcp_condition import (
    HWMODEL_BY_CONFIDENTIAL_TYPE,
    approved_digests,
    attribute_condition,
)
from components.gcp.audit import Audit, AuditArchiveArgs, AuditArgs
from components.gcp.checks import options_of
from components.gcp.common import Project, bounded, service_account_email, service_account_id, service_agent
from components.gcp.compute import (
    LOG_WRITER,
    WORKLOAD_USER,
    ConfidentialSpaceWorkload,
    ImagePullGrant,
    ImagePullPrecondition,
    image_repository,
    ConfidentialSpaceWorkloadArgs,
    ConfidentialVm,
    ConfidentialVmArgs,
    WorkloadServiceAccount,
    WorkloadServiceAccountArgs,
    pinned_image,
)
from components.gcp.gke import NODE_SERVICE_ACCOUNT_ROLE, GkeCluster, GkeClusterArgs
from components.gcp.identity import WorkloadIdentity, WorkloadIdentityArgs
from components.gcp.kms import PartyDataKey, PartyDataKeyArgs, ServiceKey, ServiceKeyArgs
from components.gcp.machines import DEFAULT_MACHINE_TYPE, TYPE_BY_TEE, confidential_space_type
from components.gcp.network import Network, NetworkArgs, plan_subnets
from components.gcp.options import GcpSiteOptions
from components.gcp.storage import PartyStorage, PartyStorageArgs
from components.key_purpose import AUDIT, CLUSTER_SECRETS, DISK, PARTY_STORAGE
from components.kubernetes.flower import FlowerFederation
from components.kubernetes.query_service import QueryService
from components.kubernetes.workloads import cluster_workloads
from components.model import Party, WorkloadHost
from components.site import SiteArgs

PROVIDER_ID: Final = "attestation-verifier"
COMPUTE_AGENT: Final = "compute-system"
GKE_AGENT: Final = "container-engine-robot"
__all__ = ["GcpSiteOptions", "Site"]


class Site(pulumi.ComponentResource):
    keys: dict[str, gcp.kms.CryptoKey]
    pool_id: str | None
    provider_id: str | None
    condition: str | None
    workload_service_account: str | None

    def __init__(self, name: str, args: SiteArgs, opts: pulumi.ResourceOptions | None = None):
        if args.cloud != "gcp":
            raise ValueError(f"components.gcp.site.Site got SiteArgs for cloud {args.cloud!r}")
        super().__init__("ccp:gcp:Site", name, None, opts)
        self.options = options_of(args)
        self.args = args
        self._child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOptions(parent=self)
        self.project = Project.lookup(opts=invoke)
        self.labels = args.shared_tags()
        collab = args.collaboration.name

        hosts = args.hosts
        space_hosts = [h for h in hosts if h.tee == "confidential-space"]
        gke_regions = {h.region for h in hosts if h.kubernetes}
        subnets = plan_subnets([h.region for h in hosts], gke_regions)
        self.subnet_plans = {plan.region: plan for plan in subnets}

        self.network = Network(
            f"{name}-net",
            NetworkArgs(
                project=self.project.id,
                subnets=subnets,
                allow_iap_ssh=self.options.allow_iap_ssh,
                labels=self.labels,
            ),
            opts=self._child,
        )
        self.disk_keys = {
            region: self._service_key(f"{name}-disks-{region}", region, [COMPUTE_AGENT], DISK)
            for region in sorted({h.region for h in hosts})
        }

        # Confidential Space: one workload identity, one workload service account.
        self.pool_id = self.provider_id = self.condition = self.workload_service_account = None
        self.identity: WorkloadIdentity | None = None
        self.image_pull_grant: ImagePullGrant | None = None
        self.image_pull_precondition: ImagePullPrecondition | None = None
        self.workloads: list[pulumi.ComponentResource] = []
        digests: list[str] = []
        if space_hosts:
            digests = approved_digests(args.collaboration.measurements)
            image = pinned_image(args.collaboration.workload.image, digests)
            account_id = service_account_id("ccp-cs", collab)
            self.workload_service_account = service_account_email(account_id, self.project.id)
            space_sa = WorkloadServiceAccount(
                f"{name}-cs-sa",
                WorkloadServiceAccountArgs(
                    project=self.project.id,
                    account_id=account_id,
                    display_name=f"ccp Confidential Space workload of {collab}",
                    roles=[WORKLOAD_USER, LOG_WRITER],
                ),
                opts=self._child,
            )
            # The launcher pulls the image as the workload service account: it needs read access to the
            # image's repository (often in another project), granted on that repository only.
            repository = image_repository(image)
            if repository is not None and self.options.image_repository_grant == "precondition":
                # The repository's project is not administered by this stack: its owner grants the read
                # (ccp-gcp:imageRepositoryGrant), recorded here for the review and the operator.
                self.image_pull_precondition = ImagePullPrecondition(
                    f"{name}-cs-image-pull", repository, self.workload_service_account, opts=self._child
                )
            elif repository is not None:
                self.image_pull_grant = ImagePullGrant(
                    f"{name}-cs-image-pull",
                    repository,
                    self.workload_service_account,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[space_sa]),
                )
            types = {h.region: confidential_space_type(self._machine_type(h, "SEV")) for h in space_hosts}
            self.condition = attribute_condition(
                args.collaboration.measurements,
                workload_service_account=self.workload_service_account,
                hardware_models=sorted({HWMODEL_BY_CONFIDENTIAL_TYPE[t] for t in types.values()}),
            )
            self.pool_id = bounded(f"ccp-{collab}", 32)
            self.provider_id = PROVIDER_ID
            self.identity = WorkloadIdentity(
                f"{name}-wif",
                WorkloadIdentityArgs(
                    project=self.project.id,
                    pool_id=self.pool_id,
                    provider_id=self.provider_id,
                    condition=self.condition,
                    description=f"ccp {collab}: approved Confidential Space images only",
                ),
                opts=self._child,
            )
            for i, host in enumerate(space_hosts):
                self.workloads.append(
                    ConfidentialSpaceWorkload(
                        f"{name}-cs-{i}",
                        ConfidentialSpaceWorkloadArgs(
                            project=self.project.id,
                            region=host.region,
                            zone=self._zone(host.region),
                            machine_type=self._machine_type(host, "SEV"),
                            confidential_type=types[host.region],
                            image_reference=image,
                            service_account=self.workload_service_account,
                            subnetwork=self.network.subnets[host.region].self_link,
                            disk_key=self.disk_keys[host.region].key_id,
                            labels=self.labels,
                            prod=args.prod,
                            restart_policy=self.options.restart_policy,
                            debug_image=self.options.debug_image_in_dev,
                            managed_group=self.options.managed_group,
                            after=[
                                space_sa,
                                self.disk_keys[host.region],
                                *([self.image_pull_grant] if self.image_pull_grant else []),
                            ],
                        ),
                        opts=self._child,
                    )
                )
        self.query_services: list[QueryService] = []
        self.federation: FlowerFederation | None = None
        for i, host in enumerate(h for h in hosts if h.tee in TYPE_BY_TEE):
            workload = self._confidential_host(name, i, host)
            self.workloads.append(workload)
            if isinstance(workload, GkeCluster):
                # The attested query service on the confidential pool, and Flower's federation on the Flower host.
                workloads = cluster_workloads(
                    f"{name}-gke-{i}", args.collaboration, host, workload.query_placement, self.labels,
                    workload.provider, workload.node_pool, pulumi.ResourceOptions(parent=workload),
                )
                self.query_services.append(workloads.query)
                self.federation = self.federation or workloads.federation

        # Parties: a key released only to the approved digests, and a CMEK bucket.
        self.keys: dict[str, gcp.kms.CryptoKey] = {}
        self.party_keys: dict[str, PartyDataKey] = {}
        self.storage_keys: dict[str, ServiceKey] = {}
        self.storage: dict[str, PartyStorage] = {}
        party_projects: set[str] = set()
        numbers = {self.project.id: self.project.number}
        for party in args.parties:
            project = Project.lookup(party.account, opts=invoke) if party.account else self.project
            party_projects.add(project.id)
            numbers[project.id] = project.number
            self._party(name, party, project, digests)
        archive = self._audit_archive(name, hosts[0].region if hosts else (args.parties[0].region if args.parties else None))

        self.audit = Audit(
            f"{name}-audit",
            AuditArgs(
                project=self.project.id,
                audited_projects=sorted({self.project.id, *party_projects}),
                metric_prefix=bounded(f"ccp-{collab}", 40),
                labels=self.labels,
                notification_channels=list(self.options.notification_channels),
                project_numbers=numbers,
                archive=archive,
            ),
            opts=self._child,
        )
        self.register_outputs(
            {
                "poolId": self.pool_id,
                "providerId": self.provider_id,
                "attributeCondition": self.condition,
                "workloadServiceAccount": self.workload_service_account,
                "keys": {party: key.key_id for party, key in self.party_keys.items()},
                "buckets": {party: s.bucket.name for party, s in self.storage.items()},
            }
        )

    # -- helpers -------------------------------------------------------------------------------

    def _audit_archive(self, name: str, region: str | None) -> AuditArchiveArgs | None:
        """The audit bucket's CMEK (purpose `audit`, used only by this project's Cloud Storage agent)
        and where it lives: where the workload runs (a shared resource), else the first party's region."""
        if region is None:
            return None
        agent = gcp.storage.get_project_service_account(
            project=self.project.id, opts=pulumi.InvokeOptions(parent=self)
        ).email_address
        key = ServiceKey(
            f"{name}-audit-key",
            ServiceKeyArgs(
                project=self.project.id,
                location=region,
                service_agents=[f"serviceAccount:{agent}"],
                labels=self.labels,
                purpose=AUDIT,
                prod=self.args.prod,
                allow_software_key=self.options.software_keys_in_dev,
            ),
            opts=self._child,
        )
        return AuditArchiveArgs(
            bucket_name=bounded(f"ccp-{self.args.collaboration.name}-audit-{self.project.id}", 63),
            location=region,
            key_id=key.key_id,
            after=list(key.bindings),
            retention_days=self.args.log_retention_days,
            locked=self.args.prod,
        )

    def _machine_type(self, host: WorkloadHost, confidential_type: str) -> str:
        return host.instance_type or DEFAULT_MACHINE_TYPE[confidential_type]

    def _zone(self, region: str) -> str:
        zones = gcp.compute.get_zones(
            project=self.project.id, region=region, status="UP", opts=pulumi.InvokeOptions(parent=self)
        ).names
        if not zones:
            raise ValueError(f"no zone is UP in {region}")
        return sorted(zones)[0]

    def _service_key(self, name: str, region: str, agents: list[str], purpose: str) -> ServiceKey:
        return ServiceKey(
            name,
            ServiceKeyArgs(
                project=self.project.id,
                location=region,
                service_agents=[service_agent(self.project.number, a) for a in agents],
                labels=self.labels,
                purpose=purpose,
                prod=self.args.prod,
                allow_software_key=self.options.software_keys_in_dev,
            ),
            opts=self._child,
        )

    def _confidential_host(self, name: str, i: int, host: WorkloadHost) -> pulumi.ComponentResource:
        confidential_type = TYPE_BY_TEE[host.tee]
        machine_type = self._machine_type(host, confidential_type)
        subnet = self.network.subnets[host.region]
        disk_key = self.disk_keys[host.region].key_id
        if not host.kubernetes:
            return ConfidentialVm(
                f"{name}-cvm-{i}",
                ConfidentialVmArgs(
                    project=self.project.id,
                    region=host.region,
                    zone=self._zone(host.region),
                    machine_type=machine_type,
                    confidential_type=confidential_type,
                    subnetwork=subnet.self_link,
                    disk_key=disk_key,
                    labels=self.labels,
                    prod=self.args.prod,
                    after=[self.disk_keys[host.region]],
                ),
                opts=self._child,
            )
        node_sa = WorkloadServiceAccount(
            f"{name}-gke-{i}-sa",
            WorkloadServiceAccountArgs(
                project=self.project.id,
                account_id=service_account_id("ccp-gke", self.args.collaboration.name, str(i)),
                display_name=f"ccp GKE nodes {i}",
                roles=[NODE_SERVICE_ACCOUNT_ROLE],
            ),
            opts=self._child,
        )
        secrets_key = self._service_key(f"{name}-gke-{i}-secrets", host.region, [GKE_AGENT], CLUSTER_SECRETS)
        plan = self.subnet_plans[host.region]
        return GkeCluster(
            f"{name}-gke-{i}",
            GkeClusterArgs(
                project=self.project.id,
                region=host.region,
                network=self.network.network.self_link,
                subnetwork=subnet.self_link,
                subnet_cidr=plan.cidr,
                master_cidr=f"172.16.{i}.0/28",
                machine_type=machine_type,
                confidential_type=confidential_type,
                node_service_account=node_sa.email,
                secrets_key=secrets_key.key_id,
                disk_key=disk_key,
                labels=self.labels,
                prod=self.args.prod,
                after=[node_sa, secrets_key, self.disk_keys[host.region]],
            ),
            opts=self._child,
        )

    def _party(self, name: str, party: Party, project: Project, digests: list[str]) -> None:
        """The party's two keys (components/README.md, "Two keys per party") and its buckets.

        The data key is released only to the approved digests; the owner may only wrap content
        keys under it. The storage key is the buckets' CMEK, used only by the party project's Cloud
        Storage service agent, which calls Cloud KMS without attestation and so must never be
        bound to the data key.
        """
        assert self.pool_id is not None
        labels = self.args.tags(party)
        key = PartyDataKey(
            f"{name}-{party.name}-key",
            PartyDataKeyArgs(
                project=project.id,
                location=party.region,
                pool_project_number=self.project.number,
                pool_id=self.pool_id,
                image_digests=digests,
                labels=labels,
                prod=self.args.prod,
                allow_software_key=self.options.software_keys_in_dev,
                owner_principal=party.owner_principal if party.owner_decrypt else None,
                encrypt_principal=party.owner_principal,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.identity] if self.identity else []),
        )
        self.party_keys[party.name] = key
        self.keys[party.name] = key.key
        agent = gcp.storage.get_project_service_account(
            project=project.id, opts=pulumi.InvokeOptions(parent=self)
        ).email_address
        storage_key = ServiceKey(
            f"{name}-{party.name}-storage-key",
            ServiceKeyArgs(
                project=project.id,
                location=party.region,
                service_agents=[f"serviceAccount:{agent}"],
                labels=labels,
                purpose=PARTY_STORAGE,
                prod=self.args.prod,
                allow_software_key=self.options.software_keys_in_dev,
            ),
            opts=self._child,
        )
        self.storage_keys[party.name] = storage_key
        self.storage[party.name] = PartyStorage(
            f"{name}-{party.name}-storage",
            PartyStorageArgs(
                project=project.id,
                location=party.region,
                bucket_name=bounded(f"ccp-{self.args.collaboration.name}-{party.name}", 58),
                storage_key=storage_key,
                readers=[m for m, suffix in key.decrypters.items() if suffix != "owner"],
                labels=labels,
                log_retention_days=self.args.log_retention_days,
                prod=self.args.prod,
            ),
            opts=self._child,
        )
