"""The attested query service on the declared Kubernetes clusters: exact security and availability properties.

Under the SDK's mocks (the review's `CcpMocks`): the component on its own with an explicit provider, as the
AWS (EKS, Nitro Enclaves) and GCP (Confidential GKE Nodes) sites declare it for `kubernetes: true` hosts,
the config check that refuses an unpinned image, and the review of a stack with a GKE host.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi_kubernetes as k8s
import pytest

from components.kubernetes.query_service import (
    HEALTH_PATH,
    PORT,
    READY_PATH,
    Placement,
    QueryService,
    QueryServiceArgs,
    image_problem,
)
from policies.review.mocks import Recording, RecordedResource, run, unwrap
from tests.kubernetes.fixture_stacks import assert_dev_plus_host
from policies.review.run import run_review
from stacks.config import ConfigError, parse

from tests.support import read_stack, stack_site_args

PROGRAM = Path(__file__).parent / "program"
IMAGE = "europe-docker.pkg.dev/ccp-dev/workloads/fl-trainer@sha256:" + "a0e2148f" * 8
SELECTOR = {"app.kubernetes.io/name": "ccp-query-service", "app.kubernetes.io/instance": "demo"}
PLACEMENT = Placement(
    node_selector={"ccp.io/tee": "sev-snp"},
    tolerations=({"key": "ccp.io/tee", "operator": "Equal", "value": "sev-snp", "effect": "NoSchedule"},),
    runtime_class="kata-cc-isolation",
    service_annotations={"service.beta.kubernetes.io/azure-load-balancer-internal": "true"},
)
WORKLOAD_TYPES = {
    "kubernetes:core/v1:Namespace", "kubernetes:core/v1:ServiceAccount", "kubernetes:apps/v1:Deployment",
    "kubernetes:policy/v1:PodDisruptionBudget", "kubernetes:core/v1:Service",
    "kubernetes:networking.k8s.io/v1:NetworkPolicy",
}


def props(resource: RecordedResource) -> dict[str, Any]:
    return unwrap(resource.properties)


def declare(**overrides: Any) -> Recording:
    args = dict(image=IMAGE, placement=PLACEMENT, labels={"party": "shared", "environment": "dev"},
                collaboration="demo")
    args.update(overrides)

    def program() -> None:
        provider = k8s.Provider("cluster", kubeconfig="{}")
        QueryService("demo-query", QueryServiceArgs(**args), provider=provider)

    return run(program)


@pytest.fixture(scope="module")
def declared() -> Recording:
    return declare()


def pod(recording: Recording) -> dict[str, Any]:
    spec: dict[str, Any] = props(recording.one("kubernetes:apps/v1:Deployment"))["spec"]["template"]["spec"]
    return spec


def query_deployment(recording: Recording) -> RecordedResource:
    """The query service's Deployment in a site's recording (a federated collaboration's cluster also runs
    Flower's, tests/kubernetes/test_flower.py)."""
    (found,) = [r for r in recording.of_type("kubernetes:apps/v1:Deployment") if r.name.endswith("-query-deployment")]
    return found


def test_two_replicas_rolled_one_at_a_time(declared: Recording) -> None:
    spec = props(declared.one("kubernetes:apps/v1:Deployment"))["spec"]
    assert spec["replicas"] == 2
    assert spec["selector"] == {"matchLabels": SELECTOR}
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert spec["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "ccp-query-service"


def test_probes_are_https_on_readyz_and_healthz(declared: Recording) -> None:
    container = pod(declared)["containers"][0]
    assert container["ports"] == [{"name": "https", "containerPort": 8443, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    assert (READY_PATH, HEALTH_PATH, PORT) == ("/readyz", "/healthz", 8443)
    assert container["command"] == ["python", "-m", "enclave_runtime", "serve", "--host", "0.0.0.0", "--port", "8443"]
    assert container["image"] == IMAGE
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    # longer than the server's 30 s graceful drain plus the preStop pause
    assert pod(declared)["terminationGracePeriodSeconds"] == 45


def test_resources_are_bounded(declared: Recording) -> None:
    resources = pod(declared)["containers"][0]["resources"]
    assert resources == {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"cpu": "2", "memory": "512Mi"}}


def test_replicas_never_share_a_node_and_spread_over_zones(declared: Recording) -> None:
    anti = pod(declared)["affinity"]["podAntiAffinity"]
    assert anti["requiredDuringSchedulingIgnoredDuringExecution"] == [
        {"labelSelector": {"matchLabels": SELECTOR}, "topologyKey": "kubernetes.io/hostname"}
    ]
    assert anti["preferredDuringSchedulingIgnoredDuringExecution"] == [
        {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": SELECTOR},
                                            "topologyKey": "topology.kubernetes.io/zone"}}
    ]


def test_runs_only_on_the_confidential_pool(declared: Recording) -> None:
    spec = pod(declared)
    assert spec["nodeSelector"] == {"ccp.io/tee": "sev-snp"}
    assert spec["tolerations"] == [{"key": "ccp.io/tee", "operator": "Equal", "value": "sev-snp", "effect": "NoSchedule"}]
    assert spec["runtimeClassName"] == "kata-cc-isolation"


def test_least_privilege(declared: Recording) -> None:
    spec = pod(declared)
    assert spec["securityContext"] == {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                       "fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}}
    assert spec["containers"][0]["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 65532, "privileged": False, "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert spec["serviceAccountName"] == "workload"
    account = props(declared.one("kubernetes:core/v1:ServiceAccount"))
    assert account["automountServiceAccountToken"] is False
    assert account["metadata"]["namespace"] == "ccp"
    # the only writable path: a small in-memory /tmp
    assert spec["volumes"] == [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}]
    assert spec["containers"][0]["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    namespace = props(declared.one("kubernetes:core/v1:Namespace"))["metadata"]
    assert namespace["name"] == "ccp"
    assert {k: v for k, v in namespace["labels"].items() if k.startswith("pod-security")} == {
        "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/audit": "restricted", "pod-security.kubernetes.io/warn": "restricted",
    }
    policy = props(declared.one("kubernetes:networking.k8s.io/v1:NetworkPolicy"))["spec"]
    assert policy == {"podSelector": {"matchLabels": SELECTOR}, "policyTypes": ["Ingress"],
                      "ingress": [{"ports": [{"protocol": "TCP", "port": 8443}]}]}


def test_disruption_budget_keeps_one_replica(declared: Recording) -> None:
    spec = props(declared.one("kubernetes:policy/v1:PodDisruptionBudget"))["spec"]
    assert spec == {"maxUnavailable": 1, "selector": {"matchLabels": SELECTOR}, "unhealthyPodEvictionPolicy": "AlwaysAllow"}


def test_services_pass_tls_through_to_the_tee(declared: Recording) -> None:
    services = {props(s)["metadata"]["name"]: props(s) for s in declared.of_type("kubernetes:core/v1:Service")}
    assert set(services) == {"ccp-query-service", "ccp-query-service-replicas"}
    balanced = services["ccp-query-service"]
    assert balanced["spec"] == {
        "type": "LoadBalancer", "selector": SELECTOR, "sessionAffinity": "None", "externalTrafficPolicy": "Local",
        "ports": [{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}],
    }
    # internal L4 only: no certificate, no TLS/HTTPS listener on the load balancer
    assert balanced["metadata"]["annotations"] == {"service.beta.kubernetes.io/azure-load-balancer-internal": "true"}
    headless = services["ccp-query-service-replicas"]["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is False
    assert headless["ports"] == [{"name": "https", "port": 8443, "targetPort": "https", "protocol": "TCP"}]
    # TLS terminates in the pod: nothing declares an Ingress
    assert not [r for r in declared.resources if r.type.startswith("kubernetes:networking.k8s.io/v1:Ingress")]


def test_every_object_goes_through_the_cluster_provider(declared: Recording) -> None:
    provider = declared.one("pulumi:providers:kubernetes")
    objects = [r for r in declared.resources if r.type.startswith("kubernetes:")]
    assert {r.type for r in objects} == WORKLOAD_TYPES
    assert len(objects) == 7
    assert all(r.provider and r.provider.startswith(provider.urn) for r in objects)
    assert all(props(r)["metadata"]["labels"]["party"] == "shared" for r in objects)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"image": "europe-docker.pkg.dev/ccp/fl-trainer:latest"}, "not pinned by digest"),
    ({"image": "europe-docker.pkg.dev/ccp/fl-trainer@sha256:" + "0" * 64}, "all-zero digest"),
    ({"image": ""}, "is not set"),
    ({"replicas": 1}, "at least 2"),
    ({"labels": {"party": "Not A Label!"}}, "not a valid Kubernetes label value"),
])
def test_refuses_what_would_weaken_it(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        declare(**overrides)


def test_placement_needs_a_node_selector() -> None:
    with pytest.raises(ValueError, match="node selector"):
        Placement(node_selector={})


def test_image_problem_accepts_only_a_real_digest() -> None:
    assert image_problem(IMAGE) is None
    assert image_problem("registry.example:5000/team/app@sha256:" + "ab" * 32) is None
    assert "not pinned" in str(image_problem("app@sha256:" + "ab" * 32))  # no registry
    assert "not pinned" in str(image_problem(IMAGE.upper()))


# --- as the sites declare it ------------------------------------------------------------------------------


def _hosts(raw: dict[str, Any], host: dict[str, Any]) -> dict[str, Any]:
    raw["collaboration"]["workload"]["hosts"].append(host)
    return raw


def test_eks_host_runs_replicas_on_the_enclave_nodes() -> None:
    from components.aws.site import Site

    raw = read_stack()
    raw["collaboration"]["workload"]["hosts"][0]["kubernetes"] = True
    recording = run(lambda: Site("dev-demo-aws", stack_site_args(raw, "aws")))
    provider = recording.one("pulumi:providers:kubernetes")
    assert json.loads(unwrap(provider.properties)["kubeconfig"])["users"][0]["user"]["exec"]["command"] == "aws"
    deployment = query_deployment(recording)
    assert deployment.provider and deployment.provider.startswith(provider.urn)
    spec = props(deployment)["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"aws-nitro-enclaves-k8s-dp": "enabled"}
    assert "runtimeClassName" not in spec and spec["tolerations"] == []
    resources = spec["containers"][0]["resources"]
    assert resources["limits"] == {"cpu": "2", "memory": "512Mi", "aws.ec2.nitro/nitro_enclaves": "1",
                                   "hugepages-2Mi": "4096Mi"}
    assert resources["requests"]["aws.ec2.nitro/nitro_enclaves"] == "1"
    assert resources["requests"]["hugepages-2Mi"] == "4096Mi"
    assert spec["containers"][0]["image"] == read_stack()["collaboration"]["workload"]["image"]
    service = next(props(s) for s in recording.of_type("kubernetes:core/v1:Service")
                   if props(s)["spec"].get("type") == "LoadBalancer")
    annotations = service["metadata"]["annotations"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-type"] == "nlb"
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-internal"] == "true"
    assert not [k for k in annotations if "ssl" in k or "backend-protocol" in k]  # no TLS listener
    node_group = recording.one("aws:eks/nodeGroup:NodeGroup")
    assert node_group.urn in deployment.dependencies


def test_gke_host_runs_replicas_on_the_confidential_pool() -> None:
    from components.gcp.site import Site

    raw = _hosts(read_stack(), {"cloud": "gcp", "region": "europe-west4", "tee": "sev-snp",
                                "instanceType": "n2d-standard-4", "kubernetes": True})
    recording = run(lambda: Site("dev-demo-gcp", stack_site_args(raw, "gcp")))
    provider = recording.one("pulumi:providers:kubernetes")
    kubeconfig = json.loads(unwrap(provider.properties)["kubeconfig"])
    assert kubeconfig["users"][0]["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"
    assert kubeconfig["clusters"][0]["cluster"]["server"].startswith("https://")
    assert "insecure-skip-tls-verify" not in kubeconfig["clusters"][0]["cluster"]
    deployment = query_deployment(recording)
    assert deployment.provider and deployment.provider.startswith(provider.urn)
    spec = props(deployment)["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"cloud.google.com/gke-nodepool": "confidential"}
    assert props(recording.one("gcp:container/nodePool:NodePool"))["name"] == "confidential"
    service = next(props(s) for s in recording.of_type("kubernetes:core/v1:Service")
                   if props(s)["spec"].get("type") == "LoadBalancer")
    assert service["metadata"]["annotations"] == {"networking.gke.io/load-balancer-type": "Internal"}
    assert recording.one("gcp:container/nodePool:NodePool").urn in deployment.dependencies


def test_hosts_without_kubernetes_declare_no_query_service() -> None:
    from components.aws.site import Site

    recording = run(lambda: Site("dev-demo-aws", stack_site_args(read_stack(), "aws")))
    assert not [r for r in recording.resources if r.type.startswith("kubernetes:")]


def test_aks_placement_targets_the_tainted_confidential_pool_with_workload_identity() -> None:
    from components.azure.aks import WORKLOAD_NAMESPACE, WORKLOAD_SERVICE_ACCOUNT, query_placement

    recording = declare(placement=query_placement("sev-snp", "00000000-0000-4000-8000-0000000000c1"))
    spec = pod(recording)
    assert spec["nodeSelector"] == {"ccp.io/tee": "sev-snp"}
    assert spec["tolerations"] == [{"key": "ccp.io/tee", "operator": "Equal", "value": "sev-snp", "effect": "NoSchedule"}]
    labels = props(recording.one("kubernetes:apps/v1:Deployment"))["spec"]["template"]["metadata"]["labels"]
    assert labels["azure.workload.identity/use"] == "true"
    account = props(recording.one("kubernetes:core/v1:ServiceAccount"))["metadata"]
    assert account["annotations"] == {"azure.workload.identity/client-id": "00000000-0000-4000-8000-0000000000c1"}
    # the subject the AKS federated credential trusts
    assert (account["namespace"], account["name"]) == (WORKLOAD_NAMESPACE, WORKLOAD_SERVICE_ACCOUNT)


@pytest.mark.parametrize("image", [None, "europe-docker.pkg.dev/ccp-dev/workloads/fl-trainer:v1"])
def test_config_refuses_a_kubernetes_host_without_a_pinned_image(image: str | None) -> None:
    raw = read_stack()
    raw["collaboration"]["workload"]["hosts"][0]["kubernetes"] = True
    raw["collaboration"]["workload"].pop("image")
    if image:
        raw["collaboration"]["workload"]["image"] = image
    with pytest.raises(ConfigError) as error:
        parse(raw)
    text = str(error.value)
    assert "ccp:collaboration.workload.image: " in text and "workload.hosts[0]" in text
    assert ("is not set" if image is None else "not pinned by digest") in text


# --- the review of a stack with a Kubernetes host ----------------------------------------------------------


def test_fixture_stack_is_the_dev_stack_plus_a_gke_host() -> None:
    assert_dev_plus_host("k8s", {"cloud": "gcp", "region": "europe-west4", "tee": "sev-snp",
                                 "instanceType": "n2d-standard-4", "kubernetes": True})


def test_review_of_a_stack_with_a_kubernetes_host_passes(tmp_path: Path) -> None:
    result = run_review(PROGRAM, "k8s", tmp_path)
    assert result.problems == []
    assert [(v.policy, v.message) for v in result.analysis.mandatory] == []  # type: ignore[union-attr]
    assert result.exit_code == 0
    types = [r["type"] for r in result.record["resources"]]  # type: ignore[index]
    # the query service's, Flower's SuperLink and lab-gcp's SuperNode (the stack declares `federated`)
    assert types.count("kubernetes:apps/v1:Deployment") == 3
    assert types.count("kubernetes:policy/v1:PodDisruptionBudget") == 1
    assert types.count("kubernetes:core/v1:Service") == 3
    assert all(row["decision"] == row["expected"] for row in result.record["key_release"])  # type: ignore[index]
