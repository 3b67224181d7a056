"""The AWS slice of a collaboration: network, audit, enclave hosts, and each AWS party's key and storage.

One enclave role serves the site: every AWS party's data key is released to it, and only with an
attestation document matching the approved Nitro measurements. Every regional resource carries an
explicit `region` (pulumi-aws v7 per-resource region) so residency rules read it from the inputs.

The config it is given has passed `components.aws.checks` (run by `stacks.config.parse` before any
resource is declared): an AWS party has Nitro measurements to bind to, every party key region has an
enclave host (the enclave reaches KMS only through its own region's VPC endpoint), `deployRole` is set
exactly when a party's account is not the deploying account, every break-glass role is in the account
its keys live in, and every host's instance type can run enclaves. The site only declares.

Each party's data key and storage key are administered by that party's break-glass role only (config
`breakGlassPrincipal`, MFA), never the account root; PutKeyPolicy/CreateGrant are denied to every
other principal, and the audit alarms on PutKeyPolicy/CreateGrant/ScheduleKeyDeletion/DisableKey per
party key (data and storage). Keys of parties sharing one account are still exposed to whoever administers IAM in that
account (they can change the break-glass role's trust policy): a party's own account is the stronger
setting. A party whose `account` is not the deploying account names `deployRole` (an IAM role of its
account): its data key, storage key, alias and audit (trail, key-administration alarms) are declared
with an explicit `aws.Provider` that assumes that role (region = the party's region,
`allowedAccountIds` = its account); its break-glass role must be in that account. The enclave role
stays in the deploying (workload) account: the key policy names it cross-account and scopes
`aws:PrincipalAccount` to the workload account, and the role's own IAM policy allows the key ARN
(cross-account KMS use needs both).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.aws.audit import Audit, AuditArgs
from components.aws.checks import DEFAULT_INSTANCE_TYPE, options_of
from components.aws.common import Account, child, short_name
from components.aws.eks import EksCluster, EksClusterArgs
from components.aws.enclave_host import EnclaveHost, EnclaveHostArgs, enclave_memory_mib
from components.aws.enclave_image import EnclaveImageStore, EnclaveImageStoreArgs, eif_object_key
from components.aws.enclave_role import EnclaveRole, EnclaveRoleArgs
from components.aws.keys import (
    ServiceKey,
    ServiceKeyArgs,
    admin_statement,
    via_service_grant_statement,
    via_service_statement,
)
from components.aws.network import EKS_INTERFACE_SERVICES, Network, NetworkArgs
from components.aws.party_key import PartyDataKey, PartyDataKeyArgs
from components.aws.storage import PartyStorage, PartyStorageArgs
from components.key_purpose import DISK
from components.kubernetes.flower import FlowerFederation
from components.kubernetes.query_service import QueryService
from components.kubernetes.workloads import cluster_workloads
from components.model import WorkloadHost
from components.site import SiteArgs



def ebs_key_policy(account: Account, region: str, kubernetes: bool) -> dict:
    """EBS volumes: used through EC2 only; EKS node groups launch through the Auto Scaling
    service-linked role, which then needs the same use and grant rights."""
    principals = [account.root_arn]
    if kubernetes:
        principals.append(
            f"arn:{account.partition}:iam::{account.account_id}:role/aws-service-role/"
            "autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
        )
    return {
        "Version": "2012-10-17",
        "Statement": [
            admin_statement(account),
            via_service_statement("UseThroughEc2", principals, "ec2", region, account),
            via_service_grant_statement("GrantsThroughEc2", principals, "ec2", region, account),
        ],
    }


class Site(pulumi.ComponentResource):
    keys: dict[str, aws.kms.Key]
    enclave_role_arn: str

    def __init__(self, name: str, args: SiteArgs, opts: pulumi.ResourceOptions | None = None):
        if args.cloud != "aws":
            raise ValueError(f"components.aws.site.Site builds the AWS slice, not {args.cloud!r}")
        hosts = [h for h in args.hosts if h.tee == "nitro"]
        parties = args.parties
        nitro = args.collaboration.measurements.nitro
        host_regions = sorted({h.region for h in hosts})

        super().__init__("ccp:aws:Site", name, None, opts)
        account = Account.current()
        # `components.aws.checks` (run by the config validation) has made `deployRole` set exactly when
        # the party's `account` is not the deploying account: then its keys live in that account.
        key_accounts = {
            party.name: Account(account_id=party.account, partition=account.partition)
            if party.deploy_role is not None and party.account is not None
            else account
            for party in parties
        }
        collab, env = args.collaboration.name, args.environment
        # Site-wide resources (role, network, audit, EBS keys, hosts) serve every party: `party: shared`.
        site_tags = args.shared_tags()
        kubernetes = any(h.kubernetes for h in hosts)

        role = EnclaveRole(
            f"{name}-enclave",
            EnclaveRoleArgs(
                role_name=short_name("ccp", collab, env, "enclave", limit=64),
                account=account,
                tags=site_tags,
                kubernetes_nodes=kubernetes,
            ),
            opts=child(self),
        )
        self.enclave_role = role
        self.enclave_role_arn = role.arn

        self.keys = {}
        self.storage: dict[str, PartyStorage] = {}
        # One explicit provider per party whose keys live in its own account (assumes its deployRole).
        self.party_providers: dict[str, aws.Provider] = {}
        for party in parties:
            if key_accounts[party.name] == account:
                continue
            assert party.deploy_role is not None and party.account is not None
            self.party_providers[party.name] = aws.Provider(
                f"{name}-{party.name}-provider",
                region=party.region,
                allowed_account_ids=[party.account],
                assume_roles=[
                    aws.ProviderAssumeRoleArgs(
                        role_arn=party.deploy_role,
                        session_name=short_name("ccp", collab, env, party.name, limit=64),
                    )
                ],
                opts=child(self),
            )
        for party in parties:
            tags = args.tags(party)
            assert nitro is not None
            provider = self.party_providers.get(party.name)
            data_key = PartyDataKey(
                f"{name}-{party.name}-key",
                PartyDataKeyArgs(
                    party=party.name,
                    region=party.region,
                    account=account,
                    measurements=nitro,
                    enclave_role_arn=role.arn,
                    break_glass_principal_arn=party.break_glass_principal or "",
                    owner_principal_arn=party.owner_principal if party.owner_decrypt else None,
                    encrypt_principal_arn=party.owner_principal,
                    tags=tags,
                ),
                # The party's provider (when its keys live in its own account) reaches every child.
                opts=child(self, depends_on=[role.role], provider=provider),
            )
            self.keys[party.name] = data_key.key
            self.storage[party.name] = PartyStorage(
                f"{name}-{party.name}-storage",
                PartyStorageArgs(
                    party=party.name,
                    collaboration=collab,
                    environment=env,
                    region=party.region,
                    account=account,
                    enclave_role_arn=role.arn,
                    break_glass_principal_arn=party.break_glass_principal or "",
                    owner_principal_arn=party.owner_principal,
                    tags=tags,
                    key_provider=provider,
                ),
                opts=child(self, depends_on=[role.role]),
            )

        home_region = parties[0].region if parties else (host_regions[0] if host_regions else None)
        own_account = [p.name for p in parties if p.name not in self.party_providers]
        # A party key in its own account is administered (and its PutKeyPolicy/CreateGrant/... logged)
        # there: its administration alarms need that account's trail, declared with its provider.
        self.party_audits: dict[str, Audit] = {}
        for party in parties:
            provider = self.party_providers.get(party.name)
            if provider is None:
                continue
            self.party_audits[party.name] = Audit(
                f"{name}-{party.name}-audit",
                AuditArgs(
                    collaboration=collab,
                    environment=env,
                    region=party.region,
                    account=key_accounts[party.name],
                    tags=site_tags,
                    log_retention_days=args.log_retention_days,
                    data_key_arns=[self.keys[party.name].arn],
                    party_key_arns={party.name: self.keys[party.name].arn},
                    party_storage_key_arns={party.name: self.storage[party.name].storage_key.arn},
                    party_bucket_arns=[],
                    runtime_logs=False,
                    prod=args.prod,
                ),
                opts=child(self, provider=provider),
            )
        self.audit: Audit | None = None
        if home_region is not None:
            self.audit = Audit(
                f"{name}-audit",
                AuditArgs(
                    collaboration=collab,
                    environment=env,
                    region=home_region,
                    account=account,
                    tags=site_tags,
                    log_retention_days=args.log_retention_days,
                    data_key_arns=[k.arn for k in self.keys.values()],
                    party_key_arns={party: self.keys[party].arn for party in own_account},
                    party_storage_key_arns={party: self.storage[party].storage_key.arn for party in own_account},
                    party_bucket_arns=[s.bucket_arn for s in self.storage.values()],
                    prod=args.prod,
                    enclave_role_name=short_name("ccp", collab, env, "enclave", limit=64),
                ),
                opts=child(self),
            )

        self.networks: dict[str, Network] = {}
        ebs_keys: dict[str, ServiceKey] = {}
        # Where the plain enclave hosts of each region fetch the approved EIF (EKS nodes get theirs
        # from the pods' device plugin, not from user data).
        self.image_stores: dict[str, EnclaveImageStore] = {}
        for region in sorted({h.region for h in hosts if not h.kubernetes}):
            self.image_stores[region] = EnclaveImageStore(
                f"{name}-eif-{region}",
                EnclaveImageStoreArgs(
                    region=region, collaboration=collab, environment=env, account=account, tags=site_tags
                ),
                opts=child(self),
            )
        for region in host_regions:
            regional_k8s = any(h.kubernetes for h in hosts if h.region == region)
            self.networks[region] = Network(
                f"{name}-net-{region}",
                NetworkArgs(
                    region=region,
                    tags=site_tags,
                    extra_interface_services=EKS_INTERFACE_SERVICES if regional_k8s else (),
                ),
                opts=child(self),
            )
            ebs_keys[region] = ServiceKey(
                f"{name}-ebs-{region}",
                ServiceKeyArgs(
                    region=region,
                    description=f"ccp EBS key of {collab}/{env} in {region}",
                    purpose=DISK,
                    policy=ebs_key_policy(account, region, regional_k8s),
                    tags=site_tags,
                ),
                opts=child(self),
            )

        role_policy = role.allow_access(
            f"{name}-enclave-access",
            data_key_arns=[k.arn for k in self.keys.values()],
            storage_key_arns=[
                *(s.storage_key.arn for s in self.storage.values()),
                *(i.key.key.arn for i in self.image_stores.values()),
            ],
            bucket_arns=[
                *(s.bucket_arn for s in self.storage.values()),
                *(i.bucket_arn for i in self.image_stores.values()),
            ],
            log_group_arns=[self.audit.runtime_log_group.arn] if self.audit and self.audit.runtime_log_group else [],
            regions=sorted({p.region for p in parties} | set(self.image_stores)),
        )

        self.hosts: list[EnclaveHost] = []
        self.clusters: list[EksCluster] = []
        self.query_services: list[QueryService] = []
        self.federation: FlowerFederation | None = None
        for index, host in enumerate(hosts):
            self._host(name, index, host, args, account, role, role_policy, ebs_keys[host.region])

        self.register_outputs(
            {
                "enclaveRoleArn": self.enclave_role_arn,
                "keys": {party: key.arn for party, key in self.keys.items()},
                "buckets": {party: s.bucket_name for party, s in self.storage.items()},
            }
        )

    def _host(
        self,
        name: str,
        index: int,
        host: WorkloadHost,
        args: SiteArgs,
        account: Account,
        role: EnclaveRole,
        role_policy: aws.iam.RolePolicy,
        ebs_key: ServiceKey,
    ) -> None:
        network = self.networks[host.region]
        nitro = args.collaboration.measurements.nitro
        assert nitro is not None  # checked by the config validation for every nitro host
        instance_type = host.instance_type or DEFAULT_INSTANCE_TYPE
        workload = args.collaboration.workload.name
        host_name = f"{name}-{workload}-{index}"
        if host.kubernetes:
            if self.audit is None:
                raise ValueError("an EKS host needs the site's audit key for its control-plane logs")
            cluster = EksCluster(
                host_name,
                EksClusterArgs(
                    cluster_name=short_name("ccp", args.collaboration.name, args.environment, str(index), limit=100),
                    region=host.region,
                    account=account,
                    subnet_ids=[s.id for s in network.private_subnets],
                    workload_security_group_id=network.workload_security_group.id,
                    node_role_arn=role.arn,
                    instance_type=instance_type,
                    ebs_kms_key_arn=ebs_key.key.arn,
                    log_kms_key_arn=self.audit.key.arn,
                    log_retention_days=args.log_retention_days,
                    tags=args.shared_tags(),
                    # The allocator and each pod's hugepages: >= 4x the image (`ccp-aws:enclaveImageSizeMib`).
                    enclave_memory_mib=enclave_memory_mib(options_of(args).enclave_image_size_mib),
                ),
                opts=child(self, depends_on=[role_policy, *network.interface_endpoints.values()]),
            )
            self.clusters.append(cluster)
            # The attested query service on the enclave nodes, and Flower's federation on the Flower host.
            workloads = cluster_workloads(
                host_name, args.collaboration, host, cluster.query_placement, args.shared_tags(), cluster.provider,
                cluster.node_group, child(cluster),
            )
            self.query_services.append(workloads.query)
            self.federation = self.federation or workloads.federation
            return
        self.hosts.append(
            EnclaveHost(
                host_name,
                EnclaveHostArgs(
                    region=host.region,
                    instance_type=instance_type,
                    subnet_id=network.private_subnets[index % len(network.private_subnets)].id,
                    security_group_ids=[network.workload_security_group.id],
                    instance_profile_name=role.instance_profile.name,
                    ebs_kms_key_arn=ebs_key.key.arn,
                    tags=args.shared_tags(),
                    image_bucket=self.image_stores[host.region].bucket_name,
                    image_object_key=eif_object_key(args.collaboration.measurements.version),
                    approved_pcr0=nitro.pcr0 or nitro.pcr8 or "",
                    approved_pcr="PCR0" if nitro.pcr0 else "PCR8",
                    # The allocator reserves >= 4x the image the build reports (`ccp-aws:enclaveImageSizeMib`).
                    eif_size_mib=options_of(args).enclave_image_size_mib,
                    depends_on=[role_policy, *network.interface_endpoints.values()],
                ),
                opts=child(self),
            )
        )
