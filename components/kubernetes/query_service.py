"""The attested query service (`python -m enclave_runtime serve`) as replicas on a confidential cluster.

Why each piece (README, "Query the collaboration"):
- TLS ends inside the TEE: the service's TLS key is generated in the TEE and bound to its evidence, and
  clients check that binding on the very connection they send data over. So nothing in front of the pods
  may terminate TLS: the Service is an internal L4 (TCP) load balancer, never an Ingress or an HTTPS
  listener with a certificate, and a headless Service lists the replicas for clients that fail over
  between them themselves (`enclave_runtime.client.FailoverClient`). A TLS-terminating proxy would be
  refused by every client anyway (`tls-binding`), so it could only ever break availability.
- Availability (99.9 %): at least two replicas, never two on one node (required anti-affinity on the
  hostname, preferred across zones), a PodDisruptionBudget so drains and upgrades take one replica at a
  time, readiness on `/readyz` and liveness on `/healthz` over HTTPS (the kubelet does not verify the
  self-generated certificate; the probes carry no data), and a preStop pause so endpoints are removed
  before the server stops accepting; the server then drains in-flight requests (its graceful timeout,
  30 s, is below the pod's termination grace period).
- Least privilege: non-root, read-only root filesystem (a small in-memory /tmp), no privilege
  escalation, every capability dropped, RuntimeDefault seccomp, no Kubernetes API token mounted (the
  service never calls the API server), the namespace enforcing the `restricted` Pod Security Standard,
  and a NetworkPolicy that admits only the service port.
- Placement: the confidential node pool of the cloud (`Placement`, built by each cloud's cluster
  component from its node pool's labels/taints and devices), and a RuntimeClass where the pool has one.
- The image is the attested workload image, pinned by digest (what attestation and key release check).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final, Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s

NAMESPACE: Final = "ccp"
SERVICE_ACCOUNT: Final = "workload"
APP: Final = "ccp-query-service"
PORT: Final = 8443  # the container's port (non-root: above 1024)
SERVICE_PORT: Final = 443
READY_PATH: Final = "/readyz"
HEALTH_PATH: Final = "/healthz"
MIN_REPLICAS: Final = 2
RUN_AS: Final = 65532  # the conventional "nonroot" uid/gid of distroless images
# Above the server's graceful shutdown (enclave_runtime.serve.server.Settings.graceful_timeout = 30 s)
# plus the preStop pause, so in-flight requests finish before the kubelet kills the container.
PRESTOP_PAUSE_S: Final = 5
TERMINATION_GRACE_S: Final = 45
SERVE_COMMAND: Final[tuple[str, ...]] = (
    "python", "-m", "enclave_runtime", "serve", "--host", "0.0.0.0", "--port", str(PORT),
)
PINNED_IMAGE: Final = re.compile(r"^[a-z0-9.-]+(:[0-9]+)?/[A-Za-z0-9._/-]+@sha256:([0-9a-f]{64})$")
_LABEL_VALUE: Final = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def image_problem(image: str | None) -> str | None:
    """Why `image` cannot run as the query service (None: it can). A tag can move to other code than
    the measured build, so only a digest-pinned reference, never an all-zero digest, is accepted."""
    if not image:
        return ("is not set: a Kubernetes host runs the attested query service from the workload image; "
                "set workload.image to '<registry>/<repository>@sha256:<64 lowercase hex>'")
    match = PINNED_IMAGE.fullmatch(image)
    if match is None:
        return (f"{image!r} is not pinned by digest: use '<registry>/<repository>@sha256:<64 lowercase hex>' "
                "so the pods run exactly the attested image")
    if set(match.group(2)) == {"0"}:
        return f"{image!r} pins an all-zero digest (a placeholder, not a build)"
    return None


@dataclass(frozen=True)
class Placement:
    """Where on a cloud's cluster the confidential pods may run, as that cloud's node pool defines it.

    `resources` are extra requests (= limits) the TEE needs, e.g. a Nitro Enclaves device and the
    hugepages the enclave allocator reserved; `runtime_class` a sandboxed/confidential RuntimeClass when
    the pool runs one (Kata confidential containers); `service_annotations` make the load balancer an
    internal L4 one on that cloud; `service_account_annotations` / `pod_labels` bind the pods to the
    cloud's workload identity (what party keys are released to) without any stored secret."""

    node_selector: Mapping[str, str]
    tolerations: Sequence[Mapping[str, str]] = ()
    runtime_class: str | None = None
    resources: Mapping[str, str] = field(default_factory=dict)
    service_annotations: Mapping[str, str] = field(default_factory=dict)
    service_account_annotations: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    pod_labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.node_selector:
            raise ValueError("a Placement needs a node selector: attested workload pods run only on the "
                             "confidential node pool, never on a system or general-purpose node")


@dataclass(frozen=True)
class QueryServiceArgs:
    image: str
    placement: Placement
    labels: Mapping[str, str]
    collaboration: str
    replicas: int = MIN_REPLICAS
    cpu_request: str = "500m"
    cpu_limit: str = "2"
    memory_request: str = "256Mi"
    memory_limit: str = "512Mi"
    extra_args: Sequence[str] = ()


def selector_labels(collaboration: str) -> dict[str, str]:
    """The labels the Deployment, PDB, Services, NetworkPolicy and anti-affinity all select on."""
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/instance": collaboration}


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "privileged": False,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def https_probe(path: str, period: int, failures: int, port: str = "https") -> dict[str, Any]:
    """A kubelet probe over HTTPS on the pod's named `port`: the kubelet does not verify the certificate the
    TEE generated, and the probe carries no data, so TLS still ends only inside the TEE."""
    return {
        "httpGet": {"path": path, "port": port, "scheme": "HTTPS"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def container_resources(placement: Placement, cpu: tuple[str, str], memory: tuple[str, str]) -> dict[str, Any]:
    """Requests and limits ((request, limit) each) plus what the TEE needs per pod (`placement.resources`,
    e.g. a Nitro Enclaves device and its hugepages), requested and limited alike as Kubernetes requires of
    extended resources and hugepages."""
    extra = dict(placement.resources)
    return {
        "requests": {"cpu": cpu[0], "memory": memory[0], **extra},
        "limits": {"cpu": cpu[1], "memory": memory[1], **extra},
    }


def memory_volume(name: str, size: str) -> dict[str, Any]:
    """A writable scratch volume in memory (the root filesystem is read-only): nothing reaches the node's disk."""
    return {"name": name, "emptyDir": {"medium": "Memory", "sizeLimit": size}}


def confidential_pod(placement: Placement, service_account: str) -> dict[str, Any]:
    """The pod-level settings every attested workload pod shares: the confidential pool only, non-root with
    RuntimeDefault seccomp, no Kubernetes API token and no service-link environment (it calls no API)."""
    spec: dict[str, Any] = {
        "serviceAccountName": service_account,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        "nodeSelector": dict(placement.node_selector),
        "tolerations": [dict(t) for t in placement.tolerations],
    }
    if placement.runtime_class:
        spec["runtimeClassName"] = placement.runtime_class
    return spec


def anti_affinity(selector: Mapping[str, str]) -> dict[str, Any]:
    """Never two replicas on one node (a node loss takes at most one); spread over zones when the pool
    has several (preferred: a single-zone pool must still schedule)."""
    match = {"labelSelector": {"matchLabels": dict(selector)}}
    return {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [{**match, "topologyKey": "kubernetes.io/hostname"}],
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": {**match, "topologyKey": "topology.kubernetes.io/zone"}}
            ],
        }
    }


def pod_spec(args: QueryServiceArgs) -> dict[str, Any]:
    """The pod template's spec (pure: the tests and the policy recommendations read exactly this)."""
    container = {
        "name": "query-service",
        "image": args.image,
        "imagePullPolicy": "IfNotPresent",
        "command": [*SERVE_COMMAND, *args.extra_args],
        "ports": [{"name": "https", "containerPort": PORT, "protocol": "TCP"}],
        "readinessProbe": https_probe(READY_PATH, period=5, failures=2),
        "livenessProbe": https_probe(HEALTH_PATH, period=10, failures=3),
        # Evidence collection at start can take seconds on hardware: liveness waits for it.
        "startupProbe": https_probe(HEALTH_PATH, period=2, failures=30),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_PAUSE_S}}},
        "resources": container_resources(args.placement, (args.cpu_request, args.cpu_limit),
                                         (args.memory_request, args.memory_limit)),
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        **confidential_pod(args.placement, SERVICE_ACCOUNT),
        "affinity": anti_affinity(selector_labels(args.collaboration)),
        "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
        "containers": [container],
        "volumes": [memory_volume("tmp", "16Mi")],
    }


def _validate(args: QueryServiceArgs) -> None:
    problem = image_problem(args.image)
    if problem:
        raise ValueError(f"query service image {problem}")
    if args.replicas < MIN_REPLICAS:
        raise ValueError(f"query service replicas {args.replicas}: at least {MIN_REPLICAS}, so losing a node or "
                         "draining one for an upgrade never takes the service down")
    check_labels({**args.labels, **selector_labels(args.collaboration)})


def check_labels(labels: Mapping[str, str]) -> None:
    """Refuse a label value the API server would reject, before any object is declared (a failed apply
    halfway would leave some of a workload's objects without the others)."""
    for key, value in labels.items():
        if len(str(value)) > 63 or not _LABEL_VALUE.fullmatch(str(value)):
            raise ValueError(f"label {key}={value!r} is not a valid Kubernetes label value")


class QueryService(pulumi.ComponentResource):
    """The query service's namespace, service account, Deployment, PDB, Services and NetworkPolicy, all
    declared through the cluster's explicit Kubernetes `provider` (never an ambient kubeconfig)."""

    namespace: k8s.core.v1.Namespace
    service_account: k8s.core.v1.ServiceAccount
    deployment: k8s.apps.v1.Deployment
    service: k8s.core.v1.Service

    def __init__(self, name: str, args: QueryServiceArgs, provider: k8s.Provider,
                 after: Sequence[pulumi.Resource] = (), opts: pulumi.ResourceOptions | None = None) -> None:
        """`after`: the cluster's node pool/group. Every object depends on it explicitly: the pods need its
        nodes, and the review locates each object (data residency) through it."""
        _validate(args)
        super().__init__("ccp:kubernetes:QueryService", name, None, opts)
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=list(after))
        selector = selector_labels(args.collaboration)
        labels = {**args.labels, **selector}

        def meta(object_name: str, **extra: Any) -> dict[str, Any]:
            return {"name": object_name, "namespace": NAMESPACE, "labels": labels, **extra}

        self.namespace = namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": NAMESPACE,
                "labels": {
                    **args.labels,
                    # The restricted Pod Security Standard: the API server refuses any pod in the
                    # namespace that is privileged, root, escalating or keeps capabilities.
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                    "pod-security.kubernetes.io/audit": "restricted",
                    "pod-security.kubernetes.io/warn": "restricted",
                },
            },
            opts=k8s_opts,
        )
        in_namespace = pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[namespace, *after]))
        # The workload identity party keys are released to (AKS: the federated credential's subject): the
        # federation's SuperNodes run under it too (components/kubernetes/flower.py).
        self.service_account = account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata=meta(SERVICE_ACCOUNT, annotations=dict(args.placement.service_account_annotations)),
            automount_service_account_token=False,
            opts=in_namespace,
        )
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=meta(APP),
            spec={
                "replicas": args.replicas,
                "selector": {"matchLabels": selector},
                # maxSurge 0: with one replica per node (required anti-affinity) and as many nodes as
                # replicas, a surge pod could never schedule; the PDB allows this one-at-a-time.
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                "minReadySeconds": 5,
                "revisionHistoryLimit": 5,
                "template": {
                    "metadata": {"labels": {**labels, **args.placement.pod_labels}},
                    "spec": pod_spec(args),
                },
            },
            opts=pulumi.ResourceOptions.merge(in_namespace, pulumi.ResourceOptions(depends_on=[account, namespace, *after])),
        )
        self.disruption_budget = k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=meta(f"{APP}"),
            spec={
                "maxUnavailable": 1,
                "selector": {"matchLabels": selector},
                # A crash-looping pod must not block node drains (it serves nothing anyway).
                "unhealthyPodEvictionPolicy": "AlwaysAllow",
            },
            opts=in_namespace,
        )
        ports = [{"name": "https", "port": SERVICE_PORT, "targetPort": "https", "protocol": "TCP"}]
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=meta(APP, annotations=dict(args.placement.service_annotations)),
            spec={
                # L4 only: TCP passes through to the pod, where TLS ends inside the TEE.
                "type": "LoadBalancer",
                "selector": selector,
                "ports": ports,
                "sessionAffinity": "None",
                "externalTrafficPolicy": "Local",
            },
            opts=in_namespace,
        )
        self.replica_service = k8s.core.v1.Service(
            f"{name}-replicas",
            metadata=meta(f"{APP}-replicas"),
            spec={
                # Headless: DNS lists each ready replica's address, for clients that attest each replica
                # and fail over between them (enclave_runtime.client.FailoverClient).
                "clusterIP": "None",
                "selector": selector,
                "ports": [{"name": "https", "port": PORT, "targetPort": "https", "protocol": "TCP"}],
                "publishNotReadyAddresses": False,
            },
            opts=in_namespace,
        )
        self.network_policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-ingress",
            metadata=meta(f"{APP}-ingress"),
            spec={
                "podSelector": {"matchLabels": selector},
                "policyTypes": ["Ingress"],
                "ingress": [{"ports": [{"protocol": "TCP", "port": PORT}]}],
            },
            opts=in_namespace,
        )
        self.register_outputs({"deployment": self.deployment.metadata["name"], "service": self.service.metadata["name"]})


def image_problems(hosts: Sequence[tuple[int, Any]], image: str | None) -> list[str]:
    """The config problem (with its `ccp:` path) when a cloud's `kubernetes: true` hosts would run the
    query service from an unpinned image; called by each wired cloud's config checks (`hosts`: that
    cloud's `SiteArgs.indexed_hosts()`), so it is reported before any resource is declared."""
    from components.site import problem

    kubernetes = [i for i, host in hosts if host.kubernetes]
    reason = image_problem(image) if kubernetes else None
    if reason is None:
        return []
    return [problem("collaboration.workload.image", f"{reason} (Kubernetes host(s) workload.hosts{kubernetes})")]
