"""Flower's own Deployment Engine (SuperLink + one SuperNode per party) on a confidential cluster.

Why this shape (enclave_runtime/ml/README.md, "A real deployment"):
- No scheduler of ours: Kubernetes keeps one SuperLink and one SuperNode per party running, and Flower
  schedules the ClientApps over them. The SuperLink runs the ServerApp in a subprocess of its own
  container (`--isolation subprocess`), so the aggregator and its unmasked sum stay in that one TEE pod.
- Exactly one of each: a second SuperLink replica would split the federation's in-memory state between
  two processes, and a second SuperNode of a party would enrol that party twice (SecAgg+ and the DP
  accountant count parties). So one replica each, replaced with `Recreate` (never two at once), and no
  PodDisruptionBudget (a drain restarts the round; Flower's SuperNodes reconnect by themselves).
- TLS ends in the SuperLink's TEE with a key generated there (`flower-superlink --ssl-*` read from a
  memory volume; never a Secret, never `--insecure`), and the SuperNode trusts only the certificate its
  gate attested (`--root-certificates`), not the system CAs. flwr 1.42 serves the Fleet, Control and
  ServerAppIo APIs on one HTTPS port, so the port cannot separate them: the Service is ClusterIP (nothing
  outside the cluster reaches it) and the NetworkPolicy admits only this collaboration's SuperNodes.
- SuperNodes accept no connection (their runtime API stays on loopback; the kubelet's gRPC health probe
  comes from the node, which NetworkPolicies always allow) and may connect only to the SuperLink's port,
  to cluster DNS, and over HTTPS or the instance metadata service to the key services (KMS, Key Vault,
  attestation): their addresses are cloud endpoints, not fixed in-cluster peers. The SuperLink connects
  nowhere.
- Least privilege and placement as the query service (`components/kubernetes/query_service.py`, whose
  namespace and helpers this reuses): the confidential pool only, the attested image pinned by digest,
  non-root, read-only root filesystem, no capabilities, RuntimeDefault seccomp, no API token. SuperNodes
  run under the workload service account (the identity party keys are released to); the SuperLink, which
  releases no key, under its own account without any cloud identity.
- Apps are never installed at run time (`--disable-runtime-dependency-installation` on the SuperLink; the
  SuperNode's installation stays off by default): every package is in the measured image.

Not built yet (README, "A real deployment"): the in-TEE launcher that writes the SuperLink's key and
certificate into `TLS_DIR` and binds the key into its evidence, and the SuperNode gate that runs
`AttestationGate.admit` and writes the admitted certificate to `SUPERLINK_CERT`. Until they exist the
containers run Flower's commands directly and neither can start (Flower exits without those files):
fail closed, never an unattested channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.kubernetes.query_service import (
    NAMESPACE,
    SERVICE_ACCOUNT,
    Placement,
    check_labels,
    confidential_pod,
    container_resources,
    container_security_context,
    https_probe,
    image_problem,
    memory_volume,
)
from components.model import Collaboration, WorkloadHost

SUPERLINK_APP: Final = "ccp-flower-superlink"
SUPERNODE_APP: Final = "ccp-flower-supernode"
SUPERLINK_ACCOUNT: Final = "flower-superlink"
PARTY_LABEL: Final = "ccp.io/party"
# The SuperLink's one HTTPS port (Fleet, Control and ServerAppIo APIs in flwr 1.42: `--host`/`--port`);
# 9092 is Flower's Fleet API port.
FLEET_PORT: Final = 9092
HEALTH_PATH: Final = "/health"  # flwr's health route on that port
SUPERNODE_HEALTH_PORT: Final = 9095  # `flower-supernode --health-server-address` (gRPC health, no data)
TLS_DIR: Final = "/run/ccp/tls"  # in memory: the SuperLink's key never reaches a disk
SUPERLINK_CERT_DIR: Final = "/run/ccp/superlink"  # in memory: written by the party's gate
SUPERLINK_CERT: Final = f"{SUPERLINK_CERT_DIR}/certificate.pem"  # the certificate the gate attested
DNS_PORT: Final = 53
METADATA_SERVICE: Final = "169.254.169.254/32"  # every cloud's instance metadata (workload credentials)


# host:port the SuperNodes dial: the SuperLink's in-cluster Service (the name its certificate must carry).
SUPERLINK_ADDRESS: Final = f"{SUPERLINK_APP}.{NAMESPACE}.svc:{FLEET_PORT}"


SUPERLINK_COMMAND: Final[tuple[str, ...]] = (
    "flower-superlink",
    "--ssl-ca-certfile", f"{TLS_DIR}/ca.pem",
    "--ssl-certfile", f"{TLS_DIR}/certificate.pem",
    "--ssl-keyfile", f"{TLS_DIR}/key.pem",
    "--host", "0.0.0.0",
    "--port", str(FLEET_PORT),
    "--isolation", "subprocess",
    "--disable-runtime-dependency-installation",
)


def supernode_command(party: str) -> list[str]:
    """`flower-supernode` for `party`: HTTPS to the SuperLink, trusting only the attested certificate.
    The party's name reaches its ClientApp as Flower node config, which tells the ClientApp which sealed
    dataset and key are its own. `fl.py`'s ClientApp does not read it yet: `LocalGrid` names each party
    itself."""
    return [
        "flower-supernode",
        "--superlink", SUPERLINK_ADDRESS,
        "--root-certificates", SUPERLINK_CERT,
        "--isolation", "subprocess",
        "--health-server-address", f"0.0.0.0:{SUPERNODE_HEALTH_PORT}",
        "--node-config", f'party="{party}"',
    ]


def flower_host(collaboration: Collaboration) -> WorkloadHost | None:
    """The cluster the federation runs on: the first `kubernetes: true` host holding a party's data, when the
    collaboration declares `federated`. One SuperLink per collaboration: SuperNodes of parties on other
    hosts would need a cross-cluster address this template does not declare."""
    if collaboration.federated is None:
        return None
    return next((h for h in collaboration.workload.hosts if h.kubernetes and cluster_parties(collaboration, h)), None)


def cluster_parties(collaboration: Collaboration, host: WorkloadHost) -> list[str]:
    """The parties whose data may be processed on `host`'s cluster (same cloud, a region the party allows):
    each gets one SuperNode there."""
    return [p.name for p in collaboration.parties if p.cloud == host.cloud and host.region in p.regions]


@dataclass(frozen=True)
class FlowerArgs:
    image: str
    placement: Placement
    labels: Mapping[str, str]
    collaboration: str
    parties: Sequence[str]
    superlink_cpu: tuple[str, str] = ("500m", "2")
    superlink_memory: tuple[str, str] = ("512Mi", "1Gi")
    supernode_cpu: tuple[str, str] = ("500m", "2")
    supernode_memory: tuple[str, str] = ("512Mi", "1Gi")


def superlink_labels(collaboration: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": SUPERLINK_APP, "app.kubernetes.io/instance": collaboration}


def supernode_labels(collaboration: str, party: str | None = None) -> dict[str, str]:
    """Every SuperNode of the collaboration, or (with `party`) that party's one SuperNode."""
    labels = {"app.kubernetes.io/name": SUPERNODE_APP, "app.kubernetes.io/instance": collaboration}
    return {**labels, PARTY_LABEL: party} if party is not None else labels


def _container(name: str, image: str, command: Sequence[str], placement: Placement, cpu: tuple[str, str],
               memory: tuple[str, str], mount: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(command),
        "resources": container_resources(placement, cpu, memory),
        "securityContext": container_security_context(),
        # /tmp: flwr's subprocess apps need scratch space; `mount`: the TLS material, in memory.
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "tls", "mountPath": mount}],
    }


def _volumes() -> list[dict[str, Any]]:
    return [memory_volume("tmp", "64Mi"), memory_volume("tls", "1Mi")]


def superlink_pod_spec(args: FlowerArgs) -> dict[str, Any]:
    """The SuperLink pod (pure: the tests read exactly this)."""
    container = {
        **_container("superlink", args.image, SUPERLINK_COMMAND, args.placement, args.superlink_cpu,
                     args.superlink_memory, TLS_DIR),
        "ports": [{"name": "fleet", "containerPort": FLEET_PORT, "protocol": "TCP"}],
        "readinessProbe": https_probe(HEALTH_PATH, period=5, failures=2, port="fleet"),
        "livenessProbe": https_probe(HEALTH_PATH, period=10, failures=3, port="fleet"),
    }
    return {**confidential_pod(args.placement, SUPERLINK_ACCOUNT), "containers": [container], "volumes": _volumes()}


def supernode_pod_spec(args: FlowerArgs, party: str) -> dict[str, Any]:
    """`party`'s SuperNode pod (pure). Its probes ask flwr's gRPC health service, the only port it opens."""
    probe = {"grpc": {"port": SUPERNODE_HEALTH_PORT}, "timeoutSeconds": 2}
    container = {
        **_container("supernode", args.image, supernode_command(party), args.placement, args.supernode_cpu,
                     args.supernode_memory, SUPERLINK_CERT_DIR),
        "ports": [{"name": "health", "containerPort": SUPERNODE_HEALTH_PORT, "protocol": "TCP"}],
        "readinessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 3},
        "livenessProbe": {**probe, "periodSeconds": 20, "failureThreshold": 3},
    }
    return {**confidential_pod(args.placement, SERVICE_ACCOUNT), "containers": [container], "volumes": _volumes()}


def superlink_ingress(collaboration: str) -> dict[str, Any]:
    """The SuperLink accepts only this collaboration's SuperNodes, only on its port, and connects nowhere."""
    return {
        "podSelector": {"matchLabels": superlink_labels(collaboration)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{
            "from": [{"podSelector": {"matchLabels": supernode_labels(collaboration)}}],
            "ports": [{"protocol": "TCP", "port": FLEET_PORT}],
        }],
        "egress": [],
    }


def supernode_egress(collaboration: str) -> dict[str, Any]:
    """SuperNodes accept nothing and reach only the SuperLink's port, cluster DNS and the key services."""
    return {
        "podSelector": {"matchLabels": supernode_labels(collaboration)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [],
        "egress": [
            {"to": [{"podSelector": {"matchLabels": superlink_labels(collaboration)}}],
             "ports": [{"protocol": "TCP", "port": FLEET_PORT}]},
            {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                     "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
             "ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}]},
            # Key release: the cloud's KMS / Key Vault / attestation endpoints (HTTPS, addresses not fixed)
            # and the instance metadata service the workload credentials come from.
            {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 443}]},
            {"to": [{"ipBlock": {"cidr": METADATA_SERVICE}}], "ports": [{"protocol": "TCP", "port": 80}]},
        ],
    }


def _validate(args: FlowerArgs) -> None:
    problem = image_problem(args.image)
    if problem:
        raise ValueError(f"Flower image {problem}")
    if not args.parties:
        raise ValueError("a Flower federation on a cluster needs at least one party whose data is there (one SuperNode each)")
    if len(set(args.parties)) != len(args.parties):
        raise ValueError(f"parties {list(args.parties)}: one SuperNode per party, each named once")
    check_labels({**args.labels, **superlink_labels(args.collaboration)})
    for party in args.parties:
        check_labels(supernode_labels(args.collaboration, party))


class FlowerFederation(pulumi.ComponentResource):
    """The SuperLink (Deployment, service account, Service) and each party's SuperNode (Deployment) with their
    NetworkPolicies, in the query service's namespace, through the cluster's explicit `provider`."""

    superlink: k8s.apps.v1.Deployment
    supernodes: dict[str, k8s.apps.v1.Deployment]

    def __init__(self, name: str, args: FlowerArgs, provider: k8s.Provider, after: Sequence[pulumi.Resource] = (),
                 opts: pulumi.ResourceOptions | None = None) -> None:
        """`after`: the cluster's node pool and the query service's namespace and workload service account
        (created there); every object depends on them, and the review locates each object through the pool."""
        _validate(args)
        super().__init__("ccp:kubernetes:FlowerFederation", name, None, opts)
        in_namespace = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=list(after))

        def meta(object_name: str, selector: Mapping[str, str]) -> dict[str, Any]:
            return {"name": object_name, "namespace": NAMESPACE, "labels": {**args.labels, **selector}}

        def deployment(resource: str, object_name: str, selector: dict[str, str], spec: dict[str, Any],
                       pod_labels: Mapping[str, str], depends_on: Sequence[pulumi.Resource] = ()) -> k8s.apps.v1.Deployment:
            return k8s.apps.v1.Deployment(
                resource,
                metadata=meta(object_name, selector),
                spec={
                    "replicas": 1,
                    "selector": {"matchLabels": selector},
                    "strategy": {"type": "Recreate"},
                    "revisionHistoryLimit": 5,
                    "template": {"metadata": {"labels": {**args.labels, **selector, **pod_labels}}, "spec": spec},
                },
                opts=pulumi.ResourceOptions.merge(in_namespace, pulumi.ResourceOptions(depends_on=list(depends_on))),
            )

        link = superlink_labels(args.collaboration)
        account = k8s.core.v1.ServiceAccount(
            f"{name}-superlink-account",
            metadata=meta(SUPERLINK_ACCOUNT, link),
            automount_service_account_token=False,
            opts=in_namespace,
        )
        # No cloud workload identity on the SuperLink's pods (placement.pod_labels): it releases no key.
        self.superlink = deployment(f"{name}-superlink", SUPERLINK_APP, link, superlink_pod_spec(args), {}, [account])
        self.service = k8s.core.v1.Service(
            f"{name}-superlink-service",
            metadata=meta(SUPERLINK_APP, link),
            spec={
                # ClusterIP: L4 inside the cluster only; TLS passes through to the SuperLink's TEE.
                "type": "ClusterIP",
                "selector": link,
                "ports": [{"name": "fleet", "port": FLEET_PORT, "targetPort": "fleet", "protocol": "TCP"}],
            },
            opts=in_namespace,
        )
        self.supernodes = {
            party: deployment(f"{name}-supernode-{party}", f"{SUPERNODE_APP}-{party}",
                              supernode_labels(args.collaboration, party), supernode_pod_spec(args, party),
                              args.placement.pod_labels)
            for party in args.parties
        }
        self.superlink_policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-superlink-policy",
            metadata=meta(f"{SUPERLINK_APP}-ingress", link),
            spec=superlink_ingress(args.collaboration),
            opts=in_namespace,
        )
        self.supernode_policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-supernode-policy",
            metadata=meta(f"{SUPERNODE_APP}-egress", supernode_labels(args.collaboration)),
            spec=supernode_egress(args.collaboration),
            opts=in_namespace,
        )
        self.register_outputs({"superlink": self.superlink.metadata["name"], "service": self.service.metadata["name"]})


def federation_on(name: str, collaboration: Collaboration, host: WorkloadHost, placement: Placement,
                  labels: Mapping[str, str], provider: k8s.Provider, after: Sequence[pulumi.Resource],
                  opts: pulumi.ResourceOptions) -> FlowerFederation | None:
    """The federation when `host` is the collaboration's Flower host (`flower_host`), else None. Each cloud's
    site calls it right after the host's QueryService, with that service's placement and provider; `after`
    must hold the node pool and the QueryService's namespace and service account."""
    if host is not flower_host(collaboration):
        return None
    return FlowerFederation(
        name,
        FlowerArgs(image=collaboration.workload.image or "", placement=placement, labels=labels,
                   collaboration=collaboration.name, parties=cluster_parties(collaboration, host)),
        provider=provider,
        after=after,
        opts=opts,
    )
