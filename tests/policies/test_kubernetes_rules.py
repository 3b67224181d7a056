"""The Kubernetes rules beyond the generic cases (kubernetes_cases.py): each value check, the stack rules
on the query service's own objects, and what the component declares passing every rule."""

from __future__ import annotations

from typing import Any

import pytest

from tests.policies.kubernetes_cases import (
    BUDGET, C0, DEPLOYMENT, DOCS_SERVICE, INGRESS, LB, NAMESPACE, PDB, SERVICE, TEMPLATE, WITH_INIT, WORKLOAD,
    kubernetes_stack, with_,
)
from test_policy_rules import RESOURCE_RULES, violations

from policies.zero_trust import pack
from policies.zero_trust.rules._base import ZeroTrustStackPolicy

STACK_RULES = {p.name: p for p in pack.POLICIES if isinstance(p, ZeroTrustStackPolicy)}


def stack_findings(rule: ZeroTrustStackPolicy, resources: list[tuple]) -> list[str]:
    """A stack rule evaluated directly on (type, name, props, deps) tuples (as test_policy_promises does)."""
    import copy

    from pulumi_policy import StackValidationArgs
    from pulumi_policy.policy import PolicyResource, PolicyResourceOptions
    from pulumi_policy.proxy import unknown_checking_proxy

    built = [
        PolicyResource(type_, unknown_checking_proxy(copy.deepcopy(props)), f"urn:pulumi:prod::ccp::{type_}::{name}", name,
                       PolicyResourceOptions(False, [], None, [], None, []), None, None, [], {})
        for type_, name, props, _ in resources
    ]
    found: list[str] = []
    rule.validate(StackValidationArgs(built, {}, {}), lambda message, urn=None: found.append(message))
    return found


def resource(name: str, type_: str, props: dict[str, Any]) -> list[str]:
    return violations(RESOURCE_RULES[name], type_, props)


def stack(name: str, resources: list[tuple]) -> list[str]:
    return stack_findings(STACK_RULES[name], resources)


def replace(resources: list[tuple], name: str, props: dict[str, Any]) -> list[tuple]:
    return [(t, n, props if n == name else p, d) for t, n, p, d in resources]


INIT0 = f"{TEMPLATE}.initContainers[0]"


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (f"{INIT0}.securityContext.privileged", True, "initContainers[0].securityContext.privileged is not false"),
        (f"{INIT0}.securityContext.readOnlyRootFilesystem", False, "initContainers[0].securityContext.readOnlyRootFilesystem is not true"),
        (f"{INIT0}.securityContext.capabilities.drop", ["NET_RAW"], "initContainers[0].securityContext.capabilities.drop does not include 'ALL'"),
        (f"{INIT0}.resources.limits", {"cpu": "1"}, "initContainers[0].resources.limits has no memory limit"),
    ],
)
def test_init_containers_are_hardened_like_containers(path: str, value: Any, problem: str) -> None:
    rule = "kubernetes-apps-workload-enforce-resource-limits" if "resources" in path else "kubernetes-apps-workload-enforce-restricted-container"
    assert any(problem in m for m in resource(rule, DEPLOYMENT, with_(WITH_INIT, path, value)))


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (f"{C0}.securityContext.allowPrivilegeEscalation", True, "allowPrivilegeEscalation is not false"),
        (f"{C0}.securityContext.readOnlyRootFilesystem", False, "readOnlyRootFilesystem is not true"),
        (f"{C0}.securityContext.capabilities.drop", ["NET_RAW", "SYS_ADMIN"], "does not include 'ALL'"),
        (f"{C0}.securityContext.capabilities.drop", [], "does not include 'ALL'"),
    ],
)
def test_container_hardening_values(path: str, value: Any, problem: str) -> None:
    found = resource("kubernetes-apps-workload-enforce-restricted-container", DEPLOYMENT, with_(WORKLOAD, path, value))
    assert any(problem in m for m in found), found


@pytest.mark.parametrize("key", ["hostNetwork", "hostPID", "hostIPC"])
def test_host_namespaces_are_refused(key: str) -> None:
    found = resource("kubernetes-apps-workload-disallow-host-access", DEPLOYMENT, with_(WORKLOAD, f"{TEMPLATE}.{key}", True))
    assert found == [f"subject: {TEMPLATE}.{key} is True, not false"]


def test_token_automount_must_be_explicitly_off() -> None:
    rule = "kubernetes-apps-workload-disallow-token-automount"
    assert "is not set" in resource(rule, DEPLOYMENT, with_(WORKLOAD, f"{TEMPLATE}.automountServiceAccountToken", None))[0]
    assert resource(rule, DEPLOYMENT, with_(WORKLOAD, f"{TEMPLATE}.automountServiceAccountToken", True))


@pytest.mark.parametrize("replicas", [1, 0, 1.5, 2.5, "2", True, None])
def test_replicas_below_two_or_not_a_count_are_refused(replicas: Any) -> None:
    assert resource("kubernetes-apps-deployment-enforce-replicas", DEPLOYMENT, with_(WORKLOAD, "spec.replicas", replicas))


@pytest.mark.parametrize("replicas", [2, 2.0, 3])
def test_replicas_as_json_numbers_pass(replicas: Any) -> None:
    assert resource("kubernetes-apps-deployment-enforce-replicas", DEPLOYMENT, with_(WORKLOAD, "spec.replicas", replicas)) == []


@pytest.mark.parametrize("probe", ["readinessProbe", "livenessProbe"])
def test_each_probe_is_required(probe: str) -> None:
    found = resource("kubernetes-apps-deployment-enforce-health-probes", DEPLOYMENT, with_(WORKLOAD, f"{C0}.{probe}", None))
    assert found and probe in found[0], found


@pytest.mark.parametrize("kind", ["cpu", "memory"])
def test_each_limit_is_required(kind: str) -> None:
    limits = {"cpu": "2", "memory": "512Mi"}
    del limits[kind]
    found = resource("kubernetes-apps-workload-enforce-resource-limits", DEPLOYMENT, with_(WORKLOAD, f"{C0}.resources.limits", limits))
    assert found == [f"subject: {C0}.resources.limits has no {kind} limit"]


ANNOTATIONS = LB["metadata"]["annotations"]


@pytest.mark.parametrize(
    ("annotations", "problem"),
    [
        ({**ANNOTATIONS, "service.beta.kubernetes.io/aws-load-balancer-backend-protocol": "http"}, "backend-protocol makes the load balancer"),
        ({**ANNOTATIONS, "service.beta.kubernetes.io/aws-load-balancer-ssl-cert": "arn:aws:acm:c"}, "ssl-cert makes the load balancer"),
        ({**ANNOTATIONS, "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"}, "aws-load-balancer-scheme says otherwise"),
        ({"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}, "no internal load-balancer annotation"),
        ({}, "no internal load-balancer annotation"),
        ({"networking.gke.io/load-balancer-type": "External"}, "says otherwise"),
    ],
)
def test_load_balancer_must_be_internal_l4(annotations: dict[str, str], problem: str) -> None:
    found = resource("kubernetes-core-service-disallow-tls-termination", SERVICE, with_(LB, "metadata.annotations", annotations))
    assert any(problem in m for m in found), found


def test_cluster_ip_services_are_not_judged() -> None:
    headless = {"metadata": {"name": "r"}, "spec": {"clusterIP": "None"}}
    assert resource("kubernetes-core-service-disallow-tls-termination", SERVICE, headless) == []


PDB_RULE = "kubernetes-policy-poddisruptionbudget-enforce-deployment-coverage"
NS_RULE = "kubernetes-core-namespace-enforce-restricted-pss"
INGRESS_RULE = "kubernetes-networking-ingress-disallow-attested-workload"


def test_the_compliant_stack_passes_every_kubernetes_stack_rule() -> None:
    for name in (PDB_RULE, NS_RULE, INGRESS_RULE):
        assert stack(name, kubernetes_stack()) == [], name


def test_budget_in_another_namespace_does_not_cover() -> None:
    found = stack(PDB_RULE, replace(kubernetes_stack(), "pdb", with_(BUDGET, "metadata.namespace", "other")))
    assert found == ["deployment: no PodDisruptionBudget in namespace 'ccp' selects its pods"]


def test_budget_selecting_other_pods_does_not_cover() -> None:
    selector = {"app.kubernetes.io/name": "ccp-query-service", "app.kubernetes.io/instance": "other"}
    found = stack(PDB_RULE, replace(kubernetes_stack(), "pdb", with_(BUDGET, "spec.selector.matchLabels", selector)))
    assert found == ["deployment: no PodDisruptionBudget in namespace 'ccp' selects its pods"]


def test_budget_without_a_limit_is_refused() -> None:
    budget = with_(BUDGET, "spec.maxUnavailable", None)
    found = stack(PDB_RULE, replace(kubernetes_stack(), "pdb", budget))
    assert "pdb: sets neither spec.maxUnavailable nor spec.minAvailable" in found


def test_deployment_without_replicas_needs_a_budget_and_single_replica_does_not() -> None:
    no_budget = [r for r in kubernetes_stack() if r[0] != PDB]
    assert stack(PDB_RULE, replace(no_budget, "deployment", with_(WORKLOAD, "spec.replicas", None)))
    assert stack(PDB_RULE, no_budget)
    assert stack(PDB_RULE, replace(no_budget, "deployment", with_(WORKLOAD, "spec.replicas", 1))) == []


def test_namespace_must_be_declared_and_restricted() -> None:
    moved = replace(kubernetes_stack(), "deployment", with_(WORKLOAD, "metadata.namespace", "elsewhere"))
    assert stack(NS_RULE, moved) == ["deployment: its namespace 'elsewhere' is not declared in the stack (its Pod Security level is unknown)"]
    ns = next(p for t, n, p, _ in kubernetes_stack() if n == "ns")
    for level in ("baseline", "privileged"):
        weak = with_(ns, "metadata.labels", {"pod-security.kubernetes.io/enforce": level})
        assert stack(NS_RULE, replace(kubernetes_stack(), "ns", weak)) == [
            f"deployment: namespace 'ccp' enforces {level!r}, not 'restricted' (pod-security.kubernetes.io/enforce)"]


def test_ingress_in_the_workload_namespace_is_refused() -> None:
    ingress = next(p for t, n, p, _ in kubernetes_stack() if t == INGRESS)
    found = stack(INGRESS_RULE, replace(kubernetes_stack(), "docs-ingress", with_(ingress, "metadata.namespace", "ccp")))
    assert found and "fronts the attested workload" in found[0], found


@pytest.mark.parametrize("target", ["ccp-query-service.ccp.svc.cluster.local", "ccp-query-service.ccp"])
def test_external_name_into_the_workload_namespace_is_refused(target: str) -> None:
    found = stack(INGRESS_RULE, replace(kubernetes_stack(), "docs-service", with_(DOCS_SERVICE, "spec.externalName", target)))
    assert found == [f"docs-service: ExternalName {target!r} forwards into namespace 'ccp' of an attested workload"]


def test_the_query_service_component_passes_every_kubernetes_rule() -> None:
    """What components/kubernetes/query_service.py declares (under the SDK mocks) is compliant."""
    import pulumi_kubernetes as k8s

    from components.kubernetes.query_service import Placement, QueryService, QueryServiceArgs
    from policies.review.mocks import run, unwrap

    image = "europe-docker.pkg.dev/p/w/qs@sha256:" + "a0e2148f" * 8
    placement = Placement(node_selector={"ccp.io/tee": "sev-snp"},
                          service_annotations={"networking.gke.io/load-balancer-type": "Internal"})

    def program() -> None:
        QueryService("q", QueryServiceArgs(image=image, placement=placement, labels={"environment": "prod"}, collaboration="demo"),
                     provider=k8s.Provider("cluster", kubeconfig="{}"))

    recording = run(program)
    declared = [(r.type, r.name, unwrap(r.properties), {}) for r in recording.resources if r.type.startswith("kubernetes:")]
    assert {t for t, *_ in declared} >= {DEPLOYMENT, PDB, SERVICE, NAMESPACE}
    for name, rule in RESOURCE_RULES.items():
        if name.startswith("kubernetes-"):
            for type_, n, props, _ in declared:
                assert violations(rule, type_, props, name=n) == [], (name, n)
    for name in (PDB_RULE, NS_RULE, INGRESS_RULE):
        assert stack(name, declared) == [], name
