"""A private GKE cluster of Confidential GKE Nodes.

Private nodes and a private endpoint (reachable only from the workload subnet), Confidential GKE
Nodes of the host's confidential type, Shielded GKE Nodes, Workload Identity with the GKE metadata
server (`GKE_METADATA` hides the node's credentials from pods), and application-layer secrets
encryption with a CMEK (`databaseEncryption.state = ENCRYPTED`), whose encrypter/decrypter is the
GKE service agent (https://cloud.google.com/kubernetes-engine/docs/how-to/encrypting-secrets).

The cluster's explicit Kubernetes provider authenticates with `gke-gcloud-auth-plugin` (short-lived
tokens of the deploying identity, no static credential) and verifies the API server against the
cluster's own CA; through it the attested query service's replicas are declared on the confidential
pool (`query_placement`, `components.kubernetes.query_service`).
"""

from __future__ import annotations

from dataclasses import dataclass
import json
from typing import Final, Sequence

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from components.gcp.common import CLOUD_PLATFORM_SCOPE, HARDENED_METADATA, bounded
from components.gcp.machines import MIN_CPU_PLATFORM, validate_machine_type
from components.kubernetes.query_service import Placement

NODE_SERVICE_ACCOUNT_ROLE: Final = "roles/container.defaultNodeServiceAccount"
NODE_POOL: Final = "confidential"
NODE_POOL_LABEL: Final = "cloud.google.com/gke-nodepool"  # set by GKE on every node of a pool


def kubeconfig(cluster_name: str, endpoint: str, ca_data: str) -> str:
    """A kubeconfig for the private endpoint that authenticates with `gke-gcloud-auth-plugin`."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": cluster_name, "cluster": {"server": f"https://{endpoint}", "certificate-authority-data": ca_data}}
            ],
            "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
            "current-context": cluster_name,
            "users": [
                {
                    "name": cluster_name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "gke-gcloud-auth-plugin",
                            "provideClusterInfo": True,
                            "installHint": "gcloud components install gke-gcloud-auth-plugin",
                        }
                    },
                }
            ],
        }
    )


def query_placement() -> Placement:
    """The confidential pool (on Confidential GKE Nodes every node is a confidential VM, so no
    RuntimeClass is needed), behind an internal passthrough Network Load Balancer (L4: TLS ends in the pod)."""
    return Placement(
        node_selector={NODE_POOL_LABEL: NODE_POOL},
        service_annotations={"networking.gke.io/load-balancer-type": "Internal"},
    )


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
            name=NODE_POOL,
            project=args.project,
            location=args.region,
            cluster=self.cluster.name,
            node_count=args.node_count,
            node_config=nodes,
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            opts=child,
        )
        ca_data = self.cluster.master_auth.apply(lambda auth: (auth.cluster_ca_certificate if auth else None) or "")
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(self.cluster.name, self.cluster.endpoint, ca_data).apply(
                lambda v: kubeconfig(v[0] or "", v[1] or "", v[2])
            )
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.node_pool]),
        )
        self.query_placement = query_placement()
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
