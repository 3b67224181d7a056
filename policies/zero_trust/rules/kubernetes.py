"""Kubernetes rules: what runs in the clusters is the attested, digest-pinned image, hardened as the
restricted Pod Security Standard requires, highly available, and reachable only through an internal L4
load balancer (TLS ends inside the TEE)."""

from __future__ import annotations

import re
from typing import Any, Callable, Final, Iterable, Iterator

from pulumi_policy import Severity

from policies.zero_trust.rules._base import (
    Finding,
    MissingProperty,
    Stack,
    Subject,
    falsy,
    is_all_zero,
    is_list,
    is_map,
    lookup,
    require_false,
    resource_rule,
    run_check,
    stack_rule,
    truthy,
)

WORKLOADS: Final = (
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:DaemonSet",
    "kubernetes:apps/v1:StatefulSet",
)
POD: Final = "kubernetes:core/v1:Pod"
_DIGEST: Final = re.compile(r"@sha256:([0-9a-f]{64})$")


@resource_rule(
    name="kubernetes-apps-workload-enforce-image-digest",
    description="Pods run container images pinned by digest: the digest is what attestation and key release check.",
    types=WORKLOADS + (POD,),
    reads={
        **{t: ("spec.template.spec.containers[*].image",) for t in WORKLOADS},
        POD: ("spec.containers[*].image",),
    },
    severity=Severity.HIGH,
    controls=("nist:CM-2", "nist:SI-7", "hipaa:164.312(c)(1)"),
    remediation="Reference every container image as <repository>@sha256:<digest>, never by tag.",
    url="https://kubernetes.io/docs/concepts/containers/images/#image-names",
    confidential=True,
)
def kubernetes_apps_workload_enforce_image_digest(subject: Subject) -> Iterable[str]:
    path = "spec.containers[*].image" if subject.type == POD else "spec.template.spec.containers[*].image"
    for image in subject.need_all(path):
        match = _DIGEST.search(str(image))
        if not match:
            yield f"{subject.name}: image {image!r} is not pinned by digest"
        elif is_all_zero(match.group(1)):
            yield f"{subject.name}: image {image!r} pins an all-zero digest"


# --- the attested query service's pods, Services and namespaces (components/kubernetes/query_service.py) ---
#
# Each rule reads the objects exactly as declared: the API server's own defaults (a pod without
# hostNetwork shares no host network, a Service without type is ClusterIP) are the only absences read
# as their safe value; every hardening switch the restricted Pod Security Standard requires must be set
# explicitly (fail closed).

DEPLOYMENT: Final = "kubernetes:apps/v1:Deployment"
PDB: Final = "kubernetes:policy/v1:PodDisruptionBudget"
SERVICE: Final = "kubernetes:core/v1:Service"
NAMESPACE: Final = "kubernetes:core/v1:Namespace"
INGRESS: Final = "kubernetes:networking.k8s.io/v1:Ingress"
TEMPLATE: Final = "spec.template.spec"
CONTAINER_KINDS: Final = ("containers", "initContainers")
MIN_REPLICAS: Final = 2
PSS_ENFORCE: Final = "pod-security.kubernetes.io/enforce"
# Annotations that make a cloud load balancer terminate TLS (or speak HTTP) in front of the pods: TLS must
# end inside the TEE, where the key is bound to the evidence (README, "Query the collaboration").
TLS_TERMINATING: Final = (
    "service.beta.kubernetes.io/aws-load-balancer-ssl-cert",
    "service.beta.kubernetes.io/aws-load-balancer-backend-protocol",
    "service.beta.kubernetes.io/aws-load-balancer-ssl-ports",
    "service.beta.kubernetes.io/aws-load-balancer-ssl-negotiation-policy",
    "cloud.google.com/app-protocols",
)
# (annotation, value meaning internal); the same annotation with another value means internet-facing.
INTERNAL: Final = (
    ("service.beta.kubernetes.io/aws-load-balancer-scheme", "internal"),
    ("service.beta.kubernetes.io/aws-load-balancer-internal", "true"),
    ("networking.gke.io/load-balancer-type", "internal"),
    ("cloud.google.com/load-balancer-type", "internal"),
    ("service.beta.kubernetes.io/azure-load-balancer-internal", "true"),
)


def _container_reads(*paths: str) -> dict[str, tuple[str, ...]]:
    return {t: tuple(f"{TEMPLATE}.{kind}[*].{p}" for kind in CONTAINER_KINDS for p in paths) for t in WORKLOADS}


def replica_count(value: Any) -> int | None:
    """A replica count as it arrives (JSON numbers: 2 or 2.0), None when it is not a whole number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        return None
    return int(value)


def containers(subject: Subject) -> Iterator[tuple[str, Any]]:
    """(path, container) for every container and init container; no container at all fails closed."""
    for kind in CONTAINER_KINDS:
        found = subject.need_all(f"{TEMPLATE}.{kind}") if kind == "containers" else subject.all(f"{TEMPLATE}.{kind}")
        for items in found:
            if not is_list(items) or (kind == "containers" and len(items) == 0):
                raise MissingProperty(f"{TEMPLATE}.{kind}[0]")
            for i in range(len(items)):
                yield f"{TEMPLATE}.{kind}[{i}]", items[i]


def need_in(item: Any, prefix: str, path: str) -> Any:
    found = lookup(item, path)
    if not found:
        raise MissingProperty(f"{prefix}.{path}")
    return found[0]


@resource_rule(
    name="kubernetes-apps-workload-enforce-restricted-container",
    description="Every container runs as non-root on a read-only root filesystem, unprivileged, without privilege escalation and with every capability dropped.",
    types=WORKLOADS,
    reads=_container_reads(
        "securityContext.runAsNonRoot", "securityContext.readOnlyRootFilesystem",
        "securityContext.allowPrivilegeEscalation", "securityContext.privileged", "securityContext.capabilities.drop",
    ),
    severity=Severity.HIGH,
    controls=("nist:AC-6", "nist:CM-7", "hipaa:164.312(a)(1)", "gdpr:art32", "cis-k8s:5.2.2", "cis-k8s:5.2.6", "cis-k8s:5.2.7", "cis-k8s:5.2.9"),
    remediation="Set each container's securityContext: runAsNonRoot true, readOnlyRootFilesystem true, privileged false, "
                "allowPrivilegeEscalation false, capabilities.drop ['ALL'] (components/kubernetes/query_service.py).",
    url="https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted",
    confidential=True,
)
def kubernetes_apps_workload_enforce_restricted_container(subject: Subject) -> Iterable[str]:
    for prefix, container in containers(subject):
        for path in ("securityContext.runAsNonRoot", "securityContext.readOnlyRootFilesystem"):
            if not truthy(need_in(container, prefix, path)):
                yield f"{subject.name}: {prefix}.{path} is not true"
        for path in ("securityContext.allowPrivilegeEscalation", "securityContext.privileged"):
            if not falsy(need_in(container, prefix, path)):
                yield f"{subject.name}: {prefix}.{path} is not false"
        drop = need_in(container, prefix, "securityContext.capabilities.drop")
        dropped = {str(drop[i]).upper() for i in range(len(drop))} if is_list(drop) else set()
        if "ALL" not in dropped:
            yield f"{subject.name}: {prefix}.securityContext.capabilities.drop does not include 'ALL'"


@resource_rule(
    name="kubernetes-apps-workload-disallow-host-access",
    description="Pods share no host namespace (network, PID, IPC) and mount no host path: the node is outside the attested boundary.",
    types=WORKLOADS,
    reads={t: (f"{TEMPLATE}.hostNetwork", f"{TEMPLATE}.hostPID", f"{TEMPLATE}.hostIPC", f"{TEMPLATE}.volumes[*].hostPath") for t in WORKLOADS},
    severity=Severity.HIGH,
    controls=("nist:AC-6", "nist:SC-39", "hipaa:164.312(a)(1)", "gdpr:art32", "cis-k8s:5.2.3", "cis-k8s:5.2.4", "cis-k8s:5.2.5", "cis-k8s:5.2.12"),
    remediation="Remove hostNetwork/hostPID/hostIPC (or set them false) and hostPath volumes; use emptyDir for scratch space.",
    url="https://kubernetes.io/docs/concepts/security/pod-security-standards/#baseline",
    confidential=True,
)
def kubernetes_apps_workload_disallow_host_access(subject: Subject) -> Iterable[str]:
    subject.need(TEMPLATE)  # no pod spec at all: nothing to judge, fail closed
    # Absent flags mean false: the API server's default, not a provider's (the review sees the object as sent).
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        value = subject.get(f"{TEMPLATE}.{key}", False)
        if not falsy(value):
            yield f"{subject.name}: {TEMPLATE}.{key} is {value!r}, not false"
    volumes = subject.all(f"{TEMPLATE}.volumes[*]")
    for i, volume in enumerate(volumes):
        if lookup(volume, "hostPath"):
            yield f"{subject.name}: {TEMPLATE}.volumes[{i}] mounts a hostPath"


@resource_rule(
    name="kubernetes-apps-workload-disallow-token-automount",
    description="Pods mount no Kubernetes API token: the attested service never calls the API server.",
    types=WORKLOADS,
    reads={t: (f"{TEMPLATE}.automountServiceAccountToken",) for t in WORKLOADS},
    severity=Severity.MEDIUM,
    controls=("nist:AC-6", "nist:IA-5", "hipaa:164.312(a)(1)", "gdpr:art32", "cis-k8s:5.1.6"),
    remediation="Set automountServiceAccountToken: false in the pod template.",
    url="https://kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/#opt-out-of-api-credential-automounting",
)
def kubernetes_apps_workload_disallow_token_automount(subject: Subject) -> Iterable[str]:
    return require_false(subject, f"{TEMPLATE}.automountServiceAccountToken")


@resource_rule(
    name="kubernetes-apps-deployment-enforce-health-probes",
    description="Every container of an attested-service Deployment has a readiness and a liveness probe.",
    types=(DEPLOYMENT,),
    reads=(f"{TEMPLATE}.containers[*].readinessProbe", f"{TEMPLATE}.containers[*].livenessProbe"),
    severity=Severity.MEDIUM,
    controls=("nist:SC-5", "nist:CP-10", "hipaa:164.308(a)(7)", "gdpr:art32"),
    remediation="Give each container a readinessProbe (/readyz) and a livenessProbe (/healthz).",
    url="https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/",
)
def kubernetes_apps_deployment_enforce_health_probes(subject: Subject) -> Iterable[str]:
    items = subject.need(f"{TEMPLATE}.containers")
    if not is_list(items) or len(items) == 0:
        raise MissingProperty(f"{TEMPLATE}.containers[0]")
    for i in range(len(items)):
        for probe in ("readinessProbe", "livenessProbe"):
            if not need_in(items[i], f"{TEMPLATE}.containers[{i}]", probe):
                yield f"{subject.name}: {TEMPLATE}.containers[{i}].{probe} is empty"


@resource_rule(
    name="kubernetes-apps-deployment-enforce-replicas",
    description="An attested-service Deployment runs at least two replicas: losing or draining a node never takes the service down.",
    types=(DEPLOYMENT,),
    reads=("spec.replicas",),
    severity=Severity.MEDIUM,
    controls=("nist:CP-10", "nist:SC-5", "hipaa:164.308(a)(7)", "gdpr:art32"),
    remediation=f"Set spec.replicas to at least {MIN_REPLICAS} (with required anti-affinity on the hostname).",
    url="https://kubernetes.io/docs/concepts/workloads/controllers/deployment/",
)
def kubernetes_apps_deployment_enforce_replicas(subject: Subject) -> Iterable[str]:
    replicas = subject.need("spec.replicas")
    count = replica_count(replicas)
    if count is None or count < MIN_REPLICAS:
        yield f"{subject.name}: spec.replicas {replicas!r} is under {MIN_REPLICAS}"


@resource_rule(
    name="kubernetes-apps-workload-enforce-resource-limits",
    description="Every container declares CPU and memory limits: one workload cannot starve the node's other replicas.",
    types=WORKLOADS,
    reads=_container_reads("resources.limits"),
    severity=Severity.LOW,
    controls=("nist:SC-6", "nist:SC-5", "hipaa:164.308(a)(7)", "gdpr:art32"),
    remediation="Set resources.limits.cpu and resources.limits.memory on every container.",
    url="https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/",
)
def kubernetes_apps_workload_enforce_resource_limits(subject: Subject) -> Iterable[str]:
    for prefix, container in containers(subject):
        limits = need_in(container, prefix, "resources.limits")
        keys = set(limits.keys()) if is_map(limits) else set()
        for resource in ("cpu", "memory"):
            if resource not in keys:
                yield f"{subject.name}: {prefix}.resources.limits has no {resource} limit"


@resource_rule(
    name="kubernetes-core-service-disallow-tls-termination",
    description="A LoadBalancer Service is an internal L4 load balancer that terminates no TLS: TLS ends inside the TEE.",
    types=(SERVICE,),
    reads=("spec.type", "metadata.annotations"),
    severity=Severity.HIGH,
    controls=("nist:SC-8", "nist:SC-7", "hipaa:164.312(e)(1)", "gdpr:art32"),
    remediation="Annotate the Service as an internal load balancer of its cloud and remove every TLS/HTTP listener "
                f"annotation ({', '.join(TLS_TERMINATING)}).",
    url="https://kubernetes.io/docs/concepts/services-networking/service/#loadbalancer",
    confidential=True,
)
def kubernetes_core_service_disallow_tls_termination(subject: Subject) -> Iterable[str]:
    # Absent type is ClusterIP (the API server's default): reachable only inside the cluster.
    if str(subject.get("spec.type", "ClusterIP")) != "LoadBalancer":
        return
    annotations = subject.need("metadata.annotations")
    values = {str(k): str(annotations[k]) for k in annotations.keys()} if is_map(annotations) else {}
    for key in TLS_TERMINATING:
        if key in values:
            yield f"{subject.name}: annotation {key} makes the load balancer terminate TLS or speak HTTP"
    marks = [(key, values[key].lower() == internal) for key, internal in INTERNAL if key in values]
    if not marks or not all(internal for _, internal in marks):
        public = [key for key, internal in marks if not internal]
        yield (f"{subject.name}: the load balancer is not internal"
               + (f" ({', '.join(public)} says otherwise)" if public else " (no internal load-balancer annotation)"))


# --- stack rules: what a workload needs beside it --------------------------------------------------


def _namespace_of(subject: Subject) -> str:
    return str(subject.need("metadata.namespace"))


def _findings(subject: Subject, check: Callable[[], Iterable[str]]) -> Iterator[Finding]:
    """A stack rule's messages for `subject`, a missing property becoming its own finding (fail closed)."""
    for message in run_check(lambda _: check(), subject):
        yield Finding(message, subject.resource)


def _labels(value: Any) -> dict[str, str]:
    return {str(k): str(value[k]) for k in value.keys()} if is_map(value) else {}


@stack_rule(
    name="kubernetes-policy-poddisruptionbudget-enforce-deployment-coverage",
    description="Every multi-replica Deployment has a PodDisruptionBudget in its namespace selecting its pods, so drains take one replica at a time.",
    reads={
        DEPLOYMENT: ("metadata.namespace", "spec.replicas", "spec.template.metadata.labels"),
        PDB: ("metadata.namespace", "spec.selector.matchLabels", "spec.maxUnavailable", "spec.minAvailable"),
    },
    severity=Severity.MEDIUM,
    controls=("nist:CP-10", "nist:SC-5", "hipaa:164.308(a)(7)", "gdpr:art32"),
    remediation="Declare a policy/v1 PodDisruptionBudget (maxUnavailable 1) whose selector.matchLabels match the Deployment's pod labels.",
    url="https://kubernetes.io/docs/tasks/run-application/configure-pdb/",
)
def kubernetes_policy_poddisruptionbudget_enforce_deployment_coverage(stack: Stack) -> Iterator[Finding]:
    budgets: list[tuple[str, dict[str, str]]] = []
    for pdb in stack.of_type(PDB):
        def read(pdb: Subject = pdb) -> Iterator[str]:
            selector = _labels(pdb.need("spec.selector.matchLabels"))
            if not selector:
                yield f"{pdb.name}: spec.selector.matchLabels is empty (selects nothing)"
            if not pdb.has("spec.maxUnavailable") and not pdb.has("spec.minAvailable"):
                yield f"{pdb.name}: sets neither spec.maxUnavailable nor spec.minAvailable"
                return
            budgets.append((_namespace_of(pdb), selector))
        yield from _findings(pdb, read)
    for deployment in stack.of_type(DEPLOYMENT):
        def check(d: Subject = deployment) -> Iterator[str]:
            count = replica_count(d.get("spec.replicas"))  # missing/invalid: judged as multi-replica (fail closed)
            if count is not None and count < MIN_REPLICAS:
                return
            namespace = _namespace_of(d)
            labels = _labels(d.need("spec.template.metadata.labels"))
            if not any(ns == namespace and selector and selector.items() <= labels.items() for ns, selector in budgets):
                yield f"{d.name}: no PodDisruptionBudget in namespace {namespace!r} selects its pods"
        yield from _findings(deployment, check)


@stack_rule(
    name="kubernetes-core-namespace-enforce-restricted-pss",
    description="Every namespace that runs a workload is declared in the stack and enforces the restricted Pod Security Standard.",
    reads={
        **{t: ("metadata.namespace",) for t in WORKLOADS},
        NAMESPACE: ("metadata.name", "metadata.labels"),
    },
    severity=Severity.HIGH,
    controls=("nist:CM-7", "nist:AC-6", "hipaa:164.312(a)(1)", "gdpr:art32", "cis-k8s:5.2.1"),
    remediation=f"Declare the workload's Namespace with the label {PSS_ENFORCE}: restricted.",
    url="https://kubernetes.io/docs/concepts/security/pod-security-admission/",
    confidential=True,
)
def kubernetes_core_namespace_enforce_restricted_pss(stack: Stack) -> Iterator[Finding]:
    enforced: dict[str, str | None] = {}
    for namespace in stack.of_type(NAMESPACE):
        def read(ns: Subject = namespace) -> Iterator[str]:
            name = str(ns.need("metadata.name"))
            enforced[name] = _labels(ns.need("metadata.labels")).get(PSS_ENFORCE)
            return iter(())
        yield from _findings(namespace, read)
    for workload in stack.of_type(*WORKLOADS):
        def check(w: Subject = workload) -> Iterator[str]:
            namespace = _namespace_of(w)
            if namespace not in enforced:
                yield f"{w.name}: its namespace {namespace!r} is not declared in the stack (its Pod Security level is unknown)"
            elif enforced[namespace] != "restricted":
                yield f"{w.name}: namespace {namespace!r} enforces {enforced[namespace]!r}, not 'restricted' ({PSS_ENFORCE})"
        yield from _findings(workload, check)


@stack_rule(
    name="kubernetes-networking-ingress-disallow-attested-workload",
    description="No Ingress fronts an attested workload: an Ingress controller terminates TLS outside the TEE.",
    reads={
        INGRESS: ("metadata.namespace",),
        SERVICE: ("spec.externalName",),
        **{t: ("metadata.namespace",) for t in WORKLOADS},
    },
    severity=Severity.HIGH,
    controls=("nist:SC-8", "nist:SC-7", "hipaa:164.312(e)(1)", "gdpr:art32"),
    remediation="Remove the Ingress (and any ExternalName Service pointing into the workload's namespace); "
                "clients reach the service through its internal L4 LoadBalancer and check the TLS binding themselves.",
    url="https://kubernetes.io/docs/concepts/services-networking/ingress/",
    confidential=True,
)
def kubernetes_networking_ingress_disallow_attested_workload(stack: Stack) -> Iterator[Finding]:
    # An Ingress reaches only Services of its own namespace, and an ExternalName Service can forward into
    # another: every namespace running a workload (each runs the attested image) is off limits to both.
    attested: set[str] = set()
    for workload in stack.of_type(*WORKLOADS):
        def read(w: Subject = workload) -> Iterator[str]:
            attested.add(_namespace_of(w))
            return iter(())
        yield from _findings(workload, read)
    for ingress in stack.of_type(INGRESS):
        def check(i: Subject = ingress) -> Iterator[str]:
            namespace = _namespace_of(i)
            if namespace in attested:
                yield f"{i.name}: an Ingress in namespace {namespace!r} fronts the attested workload there (TLS would end outside the TEE)"
        yield from _findings(ingress, check)
    for service in stack.of_type(SERVICE):
        target = str(service.get("spec.externalName") or "").lower().rstrip(".")
        hit = sorted(ns for ns in attested if f".{ns}.svc" in f"{target}." or target.endswith(f".{ns}"))
        if hit:
            yield Finding(f"{service.name}: ExternalName {target!r} forwards into namespace {hit[0]!r} of an attested workload", service.resource)


POLICIES = [
    kubernetes_apps_workload_enforce_image_digest,
    kubernetes_apps_workload_enforce_restricted_container,
    kubernetes_apps_workload_disallow_host_access,
    kubernetes_apps_workload_disallow_token_automount,
    kubernetes_apps_deployment_enforce_health_probes,
    kubernetes_apps_deployment_enforce_replicas,
    kubernetes_apps_workload_enforce_resource_limits,
    kubernetes_core_service_disallow_tls_termination,
    kubernetes_policy_poddisruptionbudget_enforce_deployment_coverage,
    kubernetes_core_namespace_enforce_restricted_pss,
    kubernetes_networking_ingress_disallow_attested_workload,
]
