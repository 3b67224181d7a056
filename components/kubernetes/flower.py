"""Flower's own Deployment Engine (SuperLink + one SuperNode per party) on a confidential cluster.

Why this shape (enclave_runtime/ml/README.md, "A real deployment"):
- No scheduler of ours: Kubernetes keeps one SuperLink and one SuperNode per party running, and Flower
  schedules the ClientApps over them. The SuperLink runs the ServerApp in a subprocess of its own
  container (`--isolation subprocess`), so the aggregator and its unmasked sum stay in that one TEE pod.
- Exactly one of each: a second SuperLink replica would split the federation's in-memory state between
  two processes, and a second SuperNode of a party would enrol that party twice (SecAgg+ and the DP
  accountant count parties). So one replica each, replaced with `Recreate` (never two at once), and no
  PodDisruptionBudget (a drain restarts the round; Flower's SuperNodes reconnect by themselves).
- TLS ends in the SuperLink's TEE with a key generated there, never a Secret, never `--insecure`: the
  launcher (`python -m enclave_runtime flower superlink`, `enclave_runtime.ml.launcher`) writes the key and
  certificate into a memory volume, binds SHA-256 of the key into the TEE's evidence, serves that evidence
  on a port of its own (plain HTTP: the evidence authenticates itself) and execs `flower-superlink --ssl-*`.
  Each SuperNode's launcher (`flower supernode`) fetches it, admits it (`AttestationGate`: the approved
  measurements, read from a ConfigMap holding only the stack's `ccp:collaboration.measurements`, with a
  prod policy: no debug TEE, no simulation), and only then writes the certificate and execs
  `flower-supernode --root-certificates` on it: Flower trusts that one attested key, not the system CAs.
  flwr 1.42 serves the Fleet, Control and ServerAppIo APIs on one HTTPS port, so the port cannot separate
  them: the Service is ClusterIP (nothing outside the cluster reaches it) and the NetworkPolicy admits only
  this collaboration's SuperNodes (to that port and the evidence port).
- SuperNodes accept no connection (their runtime API stays on loopback; the kubelet's gRPC health probe
  comes from the node, which NetworkPolicies always allow) and may connect only to the SuperLink's two
  ports, to cluster DNS, and over HTTPS or the instance metadata service to the key services (KMS, Key
  Vault, attestation): their addresses are cloud endpoints, not fixed in-cluster peers. The SuperLink connects
  nowhere.
- Least privilege and placement as the query service (`components/kubernetes/query_service.py`, whose
  namespace and helpers this reuses): the confidential pool only, the attested image pinned by digest,
  non-root, read-only root filesystem, no capabilities, RuntimeDefault seccomp, no API token. SuperNodes
  run under the workload service account (the identity party keys are released to); the SuperLink, which
  releases no key, under its own account without any cloud identity.
- Apps are never installed at run time (`--disable-runtime-dependency-installation` on the SuperLink; the
  SuperNode's installation stays off by default): every package is in the measured image.
- The pod spec (command, the policy ConfigMap) is the operator's: it is only as trustworthy as what the
  TEE measures of it (README, "A real deployment", what remains).
"""

from __future__ import annotations

import hashlib
import json
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
from enclave_runtime.ml.launcher import (
    EVIDENCE_PATH,
    EVIDENCE_PORT,
    FLEET_PORT,
    SUPERLINK_CERT,
    SUPERLINK_CERT_DIR,
    SUPERNODE_HEALTH_PORT,
    TLS_DIR,
)

SUPERLINK_APP: Final = "ccp-flower-superlink"
SUPERNODE_APP: Final = "ccp-flower-supernode"
SUPERLINK_ACCOUNT: Final = "flower-superlink"
PARTY_LABEL: Final = "ccp.io/party"
POLICY_ANNOTATION: Final = "ccp.io/policy-sha256"  # a changed policy rolls the SuperNodes (read at start)
HEALTH_PATH: Final = "/health"  # flwr's health route on the Fleet port
POLICY_DIR: Final = "/run/ccp/policy"  # the SuperNodes' approved measurements (a read-only ConfigMap)
POLICY_FILE: Final = "policy.json"
POLICY_CONFIG_MAP: Final = f"{SUPERNODE_APP}-policy"
DNS_PORT: Final = 53
METADATA_SERVICE: Final = "169.254.169.254/32"  # every cloud's instance metadata (workload credentials)


# The SuperLink's in-cluster Service: the name its certificate carries and the SuperNodes dial.
SUPERLINK_HOST: Final = f"{SUPERLINK_APP}.{NAMESPACE}.svc"
SUPERLINK_ADDRESS: Final = f"{SUPERLINK_HOST}:{FLEET_PORT}"
EVIDENCE_URL: Final = f"http://{SUPERLINK_HOST}:{EVIDENCE_PORT}{EVIDENCE_PATH}"
LAUNCHER: Final = ("python", "-m", "enclave_runtime", "flower")

# The launcher writes the key into TLS_DIR, binds it into the evidence it serves on EVIDENCE_PORT, then
# execs `flower-superlink` (enclave_runtime.ml.launcher.superlink_command).
SUPERLINK_COMMAND: Final[tuple[str, ...]] = (
    *LAUNCHER, "superlink",
    "--tls-dir", TLS_DIR,
    "--name", SUPERLINK_HOST,
    "--evidence-port", str(EVIDENCE_PORT),
)


def supernode_command(party: str) -> list[str]:
    """`party`'s launcher: it admits the SuperLink's evidence against the approved measurements, writes the
    admitted certificate to SUPERLINK_CERT and only then execs `flower-supernode` for `party`
    (enclave_runtime.ml.launcher.supernode_command)."""
    return [
        *LAUNCHER, "supernode",
        "--superlink", SUPERLINK_ADDRESS,
        "--evidence-url", EVIDENCE_URL,
        "--party", party,
        "--policy", f"{POLICY_DIR}/{POLICY_FILE}",
        "--root-certificates", SUPERLINK_CERT,
    ]


def policy_document(measurements: Mapping[str, Any]) -> str:
    """The SuperNodes' policy: the stack's approved measurements, in production rules (no debug TEE, no
    simulated one) whatever the stack's environment: these pods run on real confidential hardware."""
    return json.dumps({"environment": "prod", "measurements": dict(measurements)}, sort_keys=True, indent=2)


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
    measurements: Mapping[str, Any]  # ccp:collaboration.measurements, as the stack writes them
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
               memory: tuple[str, str], mount: str, extra_mounts: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(command),
        "resources": container_resources(placement, cpu, memory),
        "securityContext": container_security_context(),
        # /tmp: flwr's subprocess apps need scratch space; `mount`: the TLS material, in memory.
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "tls", "mountPath": mount}, *extra_mounts],
    }


def _volumes() -> list[dict[str, Any]]:
    return [memory_volume("tmp", "64Mi"), memory_volume("tls", "1Mi")]


def superlink_pod_spec(args: FlowerArgs) -> dict[str, Any]:
    """The SuperLink pod (pure: the tests read exactly this)."""
    container = {
        **_container("superlink", args.image, SUPERLINK_COMMAND, args.placement, args.superlink_cpu,
                     args.superlink_memory, TLS_DIR),
        "ports": [{"name": "fleet", "containerPort": FLEET_PORT, "protocol": "TCP"},
                  {"name": "evidence", "containerPort": EVIDENCE_PORT, "protocol": "TCP"}],
        "readinessProbe": https_probe(HEALTH_PATH, period=5, failures=2, port="fleet"),
        "livenessProbe": https_probe(HEALTH_PATH, period=10, failures=3, port="fleet"),
    }
    return {**confidential_pod(args.placement, SUPERLINK_ACCOUNT), "containers": [container], "volumes": _volumes()}


def supernode_pod_spec(args: FlowerArgs, party: str) -> dict[str, Any]:
    """`party`'s SuperNode pod (pure). Its probes ask flwr's gRPC health service, the only port it opens."""
    probe = {"grpc": {"port": SUPERNODE_HEALTH_PORT}, "timeoutSeconds": 2}
    container = {
        **_container("supernode", args.image, supernode_command(party), args.placement, args.supernode_cpu,
                     args.supernode_memory, SUPERLINK_CERT_DIR,
                     [{"name": "policy", "mountPath": POLICY_DIR, "readOnly": True}]),
        "ports": [{"name": "health", "containerPort": SUPERNODE_HEALTH_PORT, "protocol": "TCP"}],
        "readinessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 3},
        "livenessProbe": {**probe, "periodSeconds": 20, "failureThreshold": 3},
    }
    policy = {"name": "policy", "configMap": {"name": POLICY_CONFIG_MAP}}
    return {**confidential_pod(args.placement, SERVICE_ACCOUNT), "containers": [container],
            "volumes": [*_volumes(), policy]}


def _superlink_ports() -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": FLEET_PORT}, {"protocol": "TCP", "port": EVIDENCE_PORT}]


def superlink_ingress(collaboration: str) -> dict[str, Any]:
    """The SuperLink accepts only this collaboration's SuperNodes, only on its Fleet and evidence ports, and
    connects nowhere."""
    return {
        "podSelector": {"matchLabels": superlink_labels(collaboration)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{
            "from": [{"podSelector": {"matchLabels": supernode_labels(collaboration)}}],
            "ports": _superlink_ports(),
        }],
        "egress": [],
    }


def supernode_egress(collaboration: str) -> dict[str, Any]:
    """SuperNodes accept nothing and reach only the SuperLink's two ports, cluster DNS and the key services."""
    return {
        "podSelector": {"matchLabels": supernode_labels(collaboration)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [],
        "egress": [
            {"to": [{"podSelector": {"matchLabels": superlink_labels(collaboration)}}], "ports": _superlink_ports()},
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
    from enclave_runtime.policy import Policy

    problem = image_problem(args.image)
    if problem:
        raise ValueError(f"Flower image {problem}")
    try:
        Policy.load(json.loads(policy_document(args.measurements)))
    except ValueError as exc:
        raise ValueError(f"the SuperNodes' policy (ccp:collaboration.measurements, prod rules) is unusable: {exc}") from None
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
                       pod_labels: Mapping[str, str], depends_on: Sequence[pulumi.Resource] = (),
                       pod_annotations: Mapping[str, str] | None = None) -> k8s.apps.v1.Deployment:
            template_meta: dict[str, Any] = {"labels": {**args.labels, **selector, **pod_labels}}
            if pod_annotations:
                template_meta["annotations"] = dict(pod_annotations)
            return k8s.apps.v1.Deployment(
                resource,
                metadata=meta(object_name, selector),
                spec={
                    "replicas": 1,
                    "selector": {"matchLabels": selector},
                    "strategy": {"type": "Recreate"},
                    "revisionHistoryLimit": 5,
                    "template": {"metadata": template_meta, "spec": spec},
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
                "ports": [{"name": "fleet", "port": FLEET_PORT, "targetPort": "fleet", "protocol": "TCP"},
                          {"name": "evidence", "port": EVIDENCE_PORT, "targetPort": "evidence", "protocol": "TCP"}],
            },
            opts=in_namespace,
        )
        document = policy_document(args.measurements)
        nodes = supernode_labels(args.collaboration)
        # Only the approved measurements: no key material is ever in a ConfigMap.
        self.policy = k8s.core.v1.ConfigMap(
            f"{name}-supernode-policy-document",
            metadata=meta(POLICY_CONFIG_MAP, nodes),
            data={POLICY_FILE: document},
            opts=in_namespace,
        )
        digest = {POLICY_ANNOTATION: hashlib.sha256(document.encode()).hexdigest()}
        self.supernodes = {
            party: deployment(f"{name}-supernode-{party}", f"{SUPERNODE_APP}-{party}",
                              supernode_labels(args.collaboration, party), supernode_pod_spec(args, party),
                              args.placement.pod_labels, [self.policy], digest)
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
            metadata=meta(f"{SUPERNODE_APP}-egress", nodes),
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
                   collaboration=collaboration.name, parties=cluster_parties(collaboration, host),
                   measurements=collaboration.measurements.model_dump(mode="json", by_alias=True, exclude_none=True)),
        provider=provider,
        after=after,
        opts=opts,
    )
