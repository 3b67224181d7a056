"""What a confidential cluster runs: the attested query service and, on the collaboration's Flower host, Flower's
federation. One declaration for the EKS, GKE and AKS sites, so the three clouds' clusters run the same objects
in the same order, through the cluster's own provider and after its confidential node pool."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import pulumi
import pulumi_kubernetes as k8s

from components.kubernetes.flower import FlowerFederation, federation_on
from components.kubernetes.query_service import Placement, QueryService, QueryServiceArgs
from components.model import Collaboration, WorkloadHost


@dataclass(frozen=True)
class ClusterWorkloads:
    query: QueryService
    federation: FlowerFederation | None  # None unless this host is the collaboration's Flower host


def cluster_workloads(
    name: str,
    collaboration: Collaboration,
    host: WorkloadHost,
    placement: Placement,
    labels: Mapping[str, str],
    provider: k8s.Provider,
    node_pool: pulumi.Resource,
    opts: pulumi.ResourceOptions,
) -> ClusterWorkloads:
    """`<name>-query` and `<name>-flower` on the cluster of `host`. The image is the attested workload image
    (checked pinned by each cloud's `checks`; QueryService and the federation refuse it again if not)."""
    query = QueryService(
        f"{name}-query",
        QueryServiceArgs(image=collaboration.workload.image or "", placement=placement, labels=labels,
                         collaboration=collaboration.name),
        provider=provider,
        after=[node_pool],
        opts=opts,
    )
    federation = federation_on(f"{name}-flower", collaboration, host, placement, labels, provider,
                               [node_pool, query.namespace, query.service_account], opts)
    return ClusterWorkloads(query, federation)
