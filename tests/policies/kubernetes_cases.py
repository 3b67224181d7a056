"""The Kubernetes rules' fixtures, shared by the generic rule tests (test_policy_rules.CASES), the promise
tests (test_policy_promises: extra fixtures, named problems, reasoned safe absences, the compliant stack of
the Kubernetes stack rules) and test_kubernetes_rules.py.

The compliant shapes are the query service's own (components/kubernetes/query_service.py): what the
component declares is what the rules must accept.
"""

from __future__ import annotations

import copy
from typing import Any

DIGEST = "sha256:" + "a1" * 32
IMAGE = f"europe-docker.pkg.dev/p/w/qs@{DIGEST}"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
DAEMONSET = "kubernetes:apps/v1:DaemonSet"
STATEFULSET = "kubernetes:apps/v1:StatefulSet"
WORKLOADS = (DEPLOYMENT, DAEMONSET, STATEFULSET)
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
SERVICE = "kubernetes:core/v1:Service"
NAMESPACE = "kubernetes:core/v1:Namespace"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
TEMPLATE = "spec.template.spec"
SELECTOR = {"app.kubernetes.io/name": "ccp-query-service", "app.kubernetes.io/instance": "demo"}
LABELS = {**SELECTOR, "environment": "prod"}

SECURITY_CONTEXT = {
    "runAsNonRoot": True, "runAsUser": 65532, "privileged": False, "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
}
PROBE = {"httpGet": {"path": "/readyz", "port": "https", "scheme": "HTTPS"}, "periodSeconds": 5}
CONTAINER = {
    "name": "query-service", "image": IMAGE,
    "readinessProbe": PROBE, "livenessProbe": {**PROBE, "httpGet": {**PROBE["httpGet"], "path": "/healthz"}},
    "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"cpu": "2", "memory": "512Mi"}},
    "securityContext": SECURITY_CONTEXT,
}
INIT_CONTAINER = {**copy.deepcopy(CONTAINER), "name": "init"}
POD = {
    "automountServiceAccountToken": False,
    "hostNetwork": False, "hostPID": False, "hostIPC": False,
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [CONTAINER],
    "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory"}}],
}
WORKLOAD = {
    "metadata": {"name": "ccp-query-service", "namespace": "ccp", "labels": LABELS},
    "spec": {"replicas": 2, "selector": {"matchLabels": SELECTOR}, "template": {"metadata": {"labels": LABELS}, "spec": POD}},
}
WITH_INIT = copy.deepcopy(WORKLOAD)
WITH_INIT["spec"]["template"]["spec"]["initContainers"] = [INIT_CONTAINER]
LB = {
    "metadata": {"name": "ccp-query-service", "namespace": "ccp", "labels": LABELS, "annotations": {
        "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
        "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
        "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
    }},
    "spec": {"type": "LoadBalancer", "selector": SELECTOR, "ports": [{"port": 443, "targetPort": "https", "protocol": "TCP"}]},
}


def with_(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `base` with the dotted `path` (`[n]` for list items) set, or removed when value is DROP."""
    out = copy.deepcopy(base)
    node: Any = out
    parts = path.replace("[", ".[").split(".")
    for part in parts[:-1]:
        node = node[int(part[1:-1])] if part.startswith("[") else node.setdefault(part, {})
    last = parts[-1]
    key: Any = int(last[1:-1]) if last.startswith("[") else last
    if value is DROP:
        if isinstance(node, dict):
            node.pop(key, None)
        else:
            del node[key]
    else:
        node[key] = value
    return out


DROP = object()
C0 = f"{TEMPLATE}.containers[0]"

# rule -> (resource type, compliant props, non-compliant props, missing-property props)
CASES: dict[str, tuple[str, dict, dict, dict]] = {
    "kubernetes-apps-workload-enforce-restricted-container": (
        DEPLOYMENT, WORKLOAD, with_(WORKLOAD, f"{C0}.securityContext.allowPrivilegeEscalation", True),
        with_(WORKLOAD, f"{C0}.securityContext.readOnlyRootFilesystem", DROP)),
    "kubernetes-apps-workload-disallow-host-access": (
        DEPLOYMENT, WORKLOAD, with_(WORKLOAD, f"{TEMPLATE}.volumes", [{"name": "h", "hostPath": {"path": "/"}}]),
        with_(WORKLOAD, TEMPLATE, DROP)),
    "kubernetes-apps-workload-disallow-token-automount": (
        DEPLOYMENT, WORKLOAD, with_(WORKLOAD, f"{TEMPLATE}.automountServiceAccountToken", True),
        with_(WORKLOAD, f"{TEMPLATE}.automountServiceAccountToken", DROP)),
    "kubernetes-apps-deployment-enforce-health-probes": (
        DEPLOYMENT, WORKLOAD, with_(WORKLOAD, f"{C0}.readinessProbe", {}), with_(WORKLOAD, f"{C0}.livenessProbe", DROP)),
    "kubernetes-apps-deployment-enforce-replicas": (
        DEPLOYMENT, WORKLOAD, with_(WORKLOAD, "spec.replicas", 1), with_(WORKLOAD, "spec.replicas", DROP)),
    "kubernetes-apps-workload-enforce-resource-limits": (
        DEPLOYMENT, WORKLOAD, with_(WORKLOAD, f"{C0}.resources.limits", {"cpu": "2"}), with_(WORKLOAD, f"{C0}.resources.limits", DROP)),
    "kubernetes-core-service-disallow-tls-termination": (
        SERVICE, LB,
        with_(LB, "metadata.annotations", {**LB["metadata"]["annotations"], "service.beta.kubernetes.io/aws-load-balancer-ssl-cert": "arn:aws:acm:eu-west-1:1:certificate/c"}),
        with_(LB, "metadata.annotations", DROP)),
}

PROBLEM: dict[str, str] = {
    "kubernetes-apps-workload-enforce-restricted-container": "containers[0].securityContext.allowPrivilegeEscalation is not false",
    "kubernetes-apps-workload-disallow-host-access": "volumes[0] mounts a hostPath",
    "kubernetes-apps-workload-disallow-token-automount": "automountServiceAccountToken is not false",
    "kubernetes-apps-deployment-enforce-health-probes": "containers[0].readinessProbe is empty",
    "kubernetes-apps-deployment-enforce-replicas": "spec.replicas 1 is under 2",
    "kubernetes-apps-workload-enforce-resource-limits": "resources.limits has no memory limit",
    "kubernetes-core-service-disallow-tls-termination": "aws-load-balancer-ssl-cert makes the load balancer terminate TLS",
}

_PER_WORKLOAD = ("kubernetes-apps-workload-enforce-restricted-container", "kubernetes-apps-workload-disallow-host-access",
                 "kubernetes-apps-workload-disallow-token-automount", "kubernetes-apps-workload-enforce-resource-limits")
# (rule, type) -> more compliant props: every workload kind, and init containers.
EXTRA: dict[tuple[str, str], list[dict[str, Any]]] = {
    **{(r, t): [WORKLOAD, WITH_INIT] if t != DEPLOYMENT else [WITH_INIT] for r in _PER_WORKLOAD for t in WORKLOADS},
    ("kubernetes-core-service-disallow-tls-termination", SERVICE): [
        with_(LB, "metadata.annotations", {"networking.gke.io/load-balancer-type": "Internal"}),
        with_(LB, "metadata.annotations", {"service.beta.kubernetes.io/azure-load-balancer-internal": "true"}),
        {"metadata": {"name": "replicas"}, "spec": {"clusterIP": "None", "selector": SELECTOR}},
    ],
}

_HOST_DEFAULT = "the API server defaults an absent host namespace flag to false (shares nothing); true is refused"
_NO_INIT = "a pod without init containers runs only its containers, which are judged (absent, none to judge)"
SAFE_ABSENCE: dict[tuple[str, str], str] = {
    **{("kubernetes-apps-workload-disallow-host-access", f"{TEMPLATE}.{k}"): _HOST_DEFAULT for k in ("hostNetwork", "hostPID", "hostIPC")},
    ("kubernetes-apps-workload-disallow-host-access", f"{TEMPLATE}.volumes[*].hostPath"): "a volume without hostPath is another kind (emptyDir, configMap): no host path is the compliant state",
    ("kubernetes-core-service-disallow-tls-termination", "spec.type"): "the API server defaults an absent type to ClusterIP: reachable only inside the cluster, no cloud load balancer",
}
# Dropping an init container's field fails closed like a container's; dropping the whole list is safe.
NAMED_AS: dict[str, str] = {}


# --- the compliant stack the Kubernetes stack rules are judged on ----------------------------------

NS = {"metadata": {"name": "ccp", "labels": {"environment": "prod", "pod-security.kubernetes.io/enforce": "restricted"}}}
BUDGET = {"metadata": {"name": "ccp-query-service", "namespace": "ccp", "labels": LABELS},
          "spec": {"maxUnavailable": 1, "selector": {"matchLabels": SELECTOR}}}
DOCS_NS = {"metadata": {"name": "docs", "labels": {"environment": "prod", "pod-security.kubernetes.io/enforce": "restricted"}}}
DOCS_SERVICE = {"metadata": {"name": "docs", "namespace": "docs"}, "spec": {"type": "ExternalName", "externalName": "docs.example.org"}}
DOCS_INGRESS = {"metadata": {"name": "docs", "namespace": "docs"},
                "spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "docs", "port": {"number": 80}}}}]}}]}}


def kubernetes_stack() -> list[tuple[str, str, dict[str, Any], dict[str, list[str]]]]:
    """(type, name, props, deps by property): the query service's objects, plus an Ingress in another
    namespace in front of an external docs site (allowed: it fronts no attested workload)."""
    ns = f"{NAMESPACE}::ns"
    return [
        (NAMESPACE, "ns", copy.deepcopy(NS), {}),
        (DEPLOYMENT, "deployment", copy.deepcopy(WORKLOAD), {"metadata": [ns]}),
        (PDB, "pdb", copy.deepcopy(BUDGET), {"metadata": [ns]}),
        (SERVICE, "service", copy.deepcopy(LB), {"metadata": [ns]}),
        (NAMESPACE, "docs-ns", copy.deepcopy(DOCS_NS), {}),
        (SERVICE, "docs-service", copy.deepcopy(DOCS_SERVICE), {}),
        (INGRESS, "docs-ingress", copy.deepcopy(DOCS_INGRESS), {}),
    ]


STACK_SAFE_ABSENCE: dict[tuple[str, str], str] = {
    ("kubernetes-policy-poddisruptionbudget-enforce-deployment-coverage", "spec.replicas"):
        "a Deployment without replicas is judged as multi-replica (it still needs a budget, which it has); kubernetes-apps-deployment-enforce-replicas refuses it",
    ("kubernetes-policy-poddisruptionbudget-enforce-deployment-coverage", "spec.maxUnavailable"):
        "alternative to spec.minAvailable; dropping both is refused (test_budget_without_a_limit_is_refused)",
    ("kubernetes-policy-poddisruptionbudget-enforce-deployment-coverage", "spec.minAvailable"):
        "alternative to spec.maxUnavailable; dropping both is refused (test_budget_without_a_limit_is_refused)",
    ("kubernetes-networking-ingress-disallow-attested-workload", "spec.externalName"):
        "a Service without externalName forwards to no other namespace; one pointing into the workload's is refused",
}
