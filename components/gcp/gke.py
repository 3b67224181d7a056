"""A private GKE cluster of Confidential GKE Nodes.

Private nodes and a private endpoint (reachable only from the workload subnet), Confidential GKE
Nodes of the host's confidential type, Shielded GKE Nodes, Workload Identity with the GKE metadata
server (`GKE_METADATA` hides the node's credentials from pods), and application-layer secrets
encryption with a CMEK (`databaseEncryption.state = ENCRYPTED`), whose encrypter/decrypter is the
GKE service agent (https://cloud.google.com/kubernetes-engine/docs/how-to/encrypting-secrets).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Sequence

import pulumi
import pulumi_gcp as gcp

from components.gcp.common import CLOUD_PLATFORM_SCOPE, HARDENED_METADATA, bounded
from components.gcp.machines import MIN_CPU_PLATFORM, validate_machine_type

NODE_SERVICE_ACCOUNT_ROLE: Final = "roles/container.defaultNodeServiceAccount"


@dataclass(frozen=True)
class GkeClusterArgs:
    project: str
    region: str
    network: pulumi.Input[str]
    subnetwork: pulumi.Input[str]
    subnet_cidr: str
    master_cidr: str
    machine_type: str
    confidential_type: str
    node_service_account: str
    secrets_key: pulumi.Input[str]
    disk_key: pulumi.Input[str]
    labels: dict[str, str]
    prod: bool
    node_count: int = 1
    after: Sequence[pulumi.Resource] = ()  # node service account, key bindings


def node_config(args: GkeClusterArgs) -> gcp.container.NodePoolNodeConfigArgs:
    return gcp.container.NodePoolNodeConfigArgs(
        machine_type=args.machine_type,
        min_cpu_platform=MIN_CPU_PLATFORM.get(args.confidential_type),
        confidential_nodes=gcp.container.NodePoolNodeConfigConfidentialNodesArgs(
            enabled=True, confidential_instance_type=args.confidential_type
        ),
        service_account=args.node_service_account,
        oauth_scopes=[CLOUD_PLATFORM_SCOPE],
        shielded_instance_config=gcp.container.NodePoolNodeConfigShieldedInstanceConfigArgs(
            enable_secure_boot=True, enable_integrity_monitoring=True
        ),
        workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
            mode="GKE_METADATA"
        ),
        boot_disk_kms_key=args.disk_key,
        disk_type="pd-balanced",
        image_type="COS_CONTAINERD",
        metadata={"disable-legacy-endpoints": "true", **HARDENED_METADATA},
        resource_labels=args.labels,
        labels=args.labels,
    )


class GkeCluster(pulumi.ComponentResource):
    cluster: gcp.container.Cluster
    node_pool: gcp.container.NodePool

    def __init__(self, name: str, args: GkeClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:gcp:GkeCluster", name, None, opts)
        validate_machine_type(args.machine_type, args.confidential_type)
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.after))
        nodes = node_config(args)
        self.cluster = gcp.container.Cluster(
            name,
            name=bounded(name, 40),
            project=args.project,
            location=args.region,
            network=args.network,
            subnetwork=args.subnetwork,
            networking_mode="VPC_NATIVE",
            ip_allocation_policy=gcp.container.ClusterIpAllocationPolicyArgs(
                cluster_secondary_range_name="pods", services_secondary_range_name="services"
            ),
            private_cluster_config=gcp.container.ClusterPrivateClusterConfigArgs(
                enable_private_nodes=True,
                enable_private_endpoint=True,
                master_ipv4_cidr_block=args.master_cidr,
            ),
            master_authorized_networks_config=gcp.container.ClusterMasterAuthorizedNetworksConfigArgs(
                cidr_blocks=[
                    gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(
                        cidr_block=args.subnet_cidr, display_name="workload subnet"
                    )
                ],
                gcp_public_cidrs_access_enabled=False,
            ),
            confidential_nodes=gcp.container.ClusterConfidentialNodesArgs(
                enabled=True, confidential_instance_type=args.confidential_type
            ),
            enable_shielded_nodes=True,
            workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
                workload_pool=f"{args.project}.svc.id.goog"
            ),
            database_encryption=gcp.container.ClusterDatabaseEncryptionArgs(
                state="ENCRYPTED", key_name=args.secrets_key
            ),
            # The default pool is created with the same hardened node config, then removed.
            node_config=gcp.container.ClusterNodeConfigArgs(**_as_kwargs(nodes)),
            remove_default_node_pool=True,
            initial_node_count=1,
            enable_legacy_abac=False,
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel="REGULAR"),
            deletion_protection=args.prod,
            resource_labels=args.labels,
            opts=child,
        )
        self.node_pool = gcp.container.NodePool(
            f"{name}-nodes",
            name="confidential",
            project=args.project,
            location=args.region,
            cluster=self.cluster.name,
            node_count=args.node_count,
            node_config=nodes,
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            opts=child,
        )
        self.register_outputs({"cluster": self.cluster.id, "nodePool": self.node_pool.id})


def _as_kwargs(config: gcp.container.NodePoolNodeConfigArgs) -> dict[str, object]:
    """The same node settings for the cluster's default pool (its nested arg classes differ by name)."""
    args = gcp.container
    return {
        "machine_type": config.machine_type,
        "min_cpu_platform": config.min_cpu_platform,
        "confidential_nodes": args.ClusterNodeConfigConfidentialNodesArgs(
            enabled=True, confidential_instance_type=config.confidential_nodes.confidential_instance_type
        ),
        "service_account": config.service_account,
        "oauth_scopes": config.oauth_scopes,
        "shielded_instance_config": args.ClusterNodeConfigShieldedInstanceConfigArgs(
            enable_secure_boot=True, enable_integrity_monitoring=True
        ),
        "workload_metadata_config": args.ClusterNodeConfigWorkloadMetadataConfigArgs(mode="GKE_METADATA"),
        "boot_disk_kms_key": config.boot_disk_kms_key,
        "disk_type": config.disk_type,
        "image_type": config.image_type,
        "metadata": config.metadata,
        "resource_labels": config.resource_labels,
        "labels": config.labels,
    }
