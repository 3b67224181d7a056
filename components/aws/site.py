"""The AWS slice of a collaboration: network, audit, enclave hosts, and each AWS party's key and storage.

One enclave role serves the site: every AWS party's data key is released to it, and only with an
attestation document matching the approved Nitro measurements. Every regional resource carries an
explicit `region` (pulumi-aws v7 per-resource region) so residency rules read it from the inputs.

Fails closed before declaring anything when: an AWS party has no Nitro measurements to bind to, a
party's key would live in a region without an enclave host (the enclave reaches KMS only through its
own region's VPC endpoint), a party's configured account is not the deploying account, a party's
break-glass role is not in the deploying account, or a host's instance type cannot run enclaves.

Each party's data key and storage key are administered by that party's break-glass role only (config
`breakGlassPrincipal`, MFA), never the account root; PutKeyPolicy/CreateGrant are denied to every
other principal, and the audit alarms on PutKeyPolicy/CreateGrant/ScheduleKeyDeletion/DisableKey per
party key (data and storage). Keys of parties sharing one account are still exposed to whoever administers IAM in that
account (they can change the break-glass role's trust policy): a party's own account is the stronger
setting, and one provider per party account is not built yet.
"""

from __future__ import annotations

from typing import Final

import pulumi
import pulumi_aws as aws

from components.aws.audit import Audit, AuditArgs
from components.aws.common import Account, child, short_name
from components.aws.eks import EksCluster, EksClusterArgs
from components.aws.enclave_host import EnclaveHost, EnclaveHostArgs, enclave_resources
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
from components.model import WorkloadHost
from components.site import SiteArgs

DEFAULT_INSTANCE_TYPE: Final = "m6i.xlarge"


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
        if parties and nitro is None:
            raise ValueError(
                "AWS parties need measurements.nitro: their keys are released only to attested Nitro enclaves"
            )
        host_regions = sorted({h.region for h in hosts})
        for party in parties:
            if party.region not in host_regions:
                raise ValueError(
                    f"party {party.name}: its key is in {party.region} but no AWS Nitro host runs there "
                    f"(hosts: {', '.join(host_regions) or 'none'}); the enclave reaches KMS through its own "
                    "region's VPC endpoint, so add a host in that region"
                )
        for host in hosts:
            enclave_resources(host.instance_type or DEFAULT_INSTANCE_TYPE, None, 4096)

        super().__init__("ccp:aws:Site", name, None, opts)
        account = Account.current()
        for party in parties:
            if party.account is not None and party.account != account.account_id:
                raise ValueError(
                    f"party {party.name}: account {party.account} is not the deploying account "
                    f"{account.account_id}; deploy this party's slice with that account's credentials"
                )
            glass = party.break_glass_principal or ""
            if glass.split(":")[4:5] != [account.account_id] or glass.split(":")[1:2] != [account.partition]:
                raise ValueError(
                    f"party {party.name}: breakGlassPrincipal {glass!r} is not a role of the deploying account "
                    f"{account.account_id} (partition {account.partition}): KMS creates the key in the caller's "
                    "account and its lockout safety check requires the creator to hold PutKeyPolicy, so the key "
                    "is created by that role; name a role of the account the key lives in"
                )
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
        for party in parties:
            tags = args.tags(party)
            assert nitro is not None
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
                opts=child(self, depends_on=[role.role]),
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
                ),
                opts=child(self, depends_on=[role.role]),
            )

        home_region = parties[0].region if parties else (host_regions[0] if host_regions else None)
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
                    party_key_arns={party: k.arn for party, k in self.keys.items()},
                    party_storage_key_arns={party: s.storage_key.arn for party, s in self.storage.items()},
                    party_bucket_arns=[s.bucket_arn for s in self.storage.values()],
                ),
                opts=child(self),
            )

        self.networks: dict[str, Network] = {}
        ebs_keys: dict[str, ServiceKey] = {}
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
            storage_key_arns=[s.storage_key.arn for s in self.storage.values()],
            bucket_arns=[s.bucket_arn for s in self.storage.values()],
            log_group_arns=[self.audit.runtime_log_group.arn] if self.audit else [],
            regions=sorted({p.region for p in parties}),
        )

        self.hosts: list[EnclaveHost] = []
        self.clusters: list[EksCluster] = []
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
        instance_type = host.instance_type or DEFAULT_INSTANCE_TYPE
        workload = args.collaboration.workload.name
        host_name = f"{name}-{workload}-{index}"
        if host.kubernetes:
            if self.audit is None:
                raise ValueError("an EKS host needs the site's audit key for its control-plane logs")
            self.clusters.append(
                EksCluster(
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
                    ),
                    opts=child(self, depends_on=[role_policy, *network.interface_endpoints.values()]),
                )
            )
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
                    depends_on=[role_policy, *network.interface_endpoints.values()],
                ),
                opts=child(self),
            )
        )
