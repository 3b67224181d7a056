"""Flower's Deployment Engine on the declared clusters (components/kubernetes/flower.py): exact properties.

Under the review's mocks: the component on its own with an explicit provider; which cluster and parties a
collaboration's `federated` job gets; the GKE, AKS and EKS sites declaring it beside the query service; the
flags against the pinned flwr's own parsers (`.venv-ml`); and the review of the fixture stacks.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from components.kubernetes.flower import (
    SUPERLINK_ADDRESS,
    FlowerArgs,
    FlowerFederation,
    cluster_parties,
    flower_host,
)
from components.kubernetes.query_service import Placement
from enclave_runtime.ml.launcher import superlink_command, supernode_command
from enclave_runtime.policy import Policy
from policies.review.mocks import Recording, RecordedResource, run, unwrap
from policies.review.run import REPO_ROOT, run_review
from stacks.config import parse
from tests.kubernetes.test_query_service import IMAGE, PLACEMENT
from tests.support import read_stack, stack_site_args

PROGRAM = Path(__file__).parent / "program"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
LINK = {"app.kubernetes.io/name": "ccp-flower-superlink", "app.kubernetes.io/instance": "demo"}
NODES = {"app.kubernetes.io/name": "ccp-flower-supernode", "app.kubernetes.io/instance": "demo"}
RESTRICTED = {
    "runAsNonRoot": True, "runAsUser": 65532, "privileged": False, "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
}
IDENTITY_PLACEMENT = Placement(
    node_selector=PLACEMENT.node_selector,
    tolerations=PLACEMENT.tolerations,
    service_account_annotations={"azure.workload.identity/client-id": "00000000-0000-4000-8000-0000000000c1"},
    pod_labels={"azure.workload.identity/use": "true"},
)
MEASUREMENTS = {"version": "1", "nitro": {"pcr0": "ab" * 48}}
GKE_HOST = {"cloud": "gcp", "region": "europe-west4", "tee": "sev-snp", "instanceType": "n2d-standard-4",
            "kubernetes": True}


def props(resource: RecordedResource) -> dict[str, Any]:
    return unwrap(resource.properties)


def declare(**overrides: Any) -> Recording:
    args = dict(image=IMAGE, placement=PLACEMENT, labels={"party": "shared"}, collaboration="demo",
                parties=["clinic-azure", "lab-gcp"], measurements=MEASUREMENTS)
    args.update(overrides)

    def program() -> None:
        provider = k8s.Provider("cluster", kubeconfig="{}")
        pool = pulumi.CustomResource("test:index:NodePool", "pool")
        FlowerFederation("fl", FlowerArgs(**args), provider=provider, after=[pool])

    return run(program)


@pytest.fixture(scope="module")
def declared() -> Recording:
    return declare(placement=IDENTITY_PLACEMENT)


def deployments(recording: Recording) -> dict[str, dict[str, Any]]:
    return {props(d)["metadata"]["name"]: props(d) for d in recording.of_type(DEPLOYMENT)}


def pod(recording: Recording, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = deployments(recording)[name]["spec"]["template"]["spec"]
    return spec


def test_one_superlink_and_one_supernode_per_party_never_two_at_once(declared: Recording) -> None:
    found = deployments(declared)
    assert set(found) == {"ccp-flower-superlink", "ccp-flower-supernode-clinic-azure", "ccp-flower-supernode-lab-gcp"}
    for deployment in found.values():
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}
        assert deployment["metadata"]["namespace"] == "ccp"
    assert found["ccp-flower-supernode-lab-gcp"]["spec"]["selector"] == {"matchLabels": {**NODES, "ccp.io/party": "lab-gcp"}}
    assert found["ccp-flower-superlink"]["spec"]["selector"] == {"matchLabels": LINK}


def test_superlink_serves_tls_with_a_key_kept_in_memory(declared: Recording) -> None:
    spec = pod(declared, "ccp-flower-superlink")
    (container,) = spec["containers"]
    # the launcher makes the key in the TEE, binds it into the evidence it serves on 9097, then execs
    # flower-superlink on the files (test_superlink_flags_are_flwr_1_42_flags)
    assert container["command"] == [
        "python", "-m", "enclave_runtime", "flower", "superlink",
        "--tls-dir", "/run/ccp/tls",
        "--name", "ccp-flower-superlink.ccp.svc",
        "--evidence-port", "9097",
    ]
    assert container["ports"] == [{"name": "fleet", "containerPort": 9092, "protocol": "TCP"},
                                  {"name": "evidence", "containerPort": 9097, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "fleet", "scheme": "HTTPS"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "fleet", "scheme": "HTTPS"}
    assert {"name": "tls", "mountPath": "/run/ccp/tls"} in container["volumeMounts"]
    assert {"name": "tls", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}} in spec["volumes"]
    # the key is made in the TEE: no Secret, no other volume source carries it; the one ConfigMap holds
    # only the SuperNodes' approved measurements
    assert not declared.of_type("kubernetes:core/v1:Secret")
    assert all(set(v) == {"name", "emptyDir"} for v in spec["volumes"])


def test_supernode_trusts_only_the_attested_superlink_certificate(declared: Recording) -> None:
    spec = pod(declared, "ccp-flower-supernode-lab-gcp")
    (container,) = spec["containers"]
    # the launcher admits the SuperLink's evidence, writes its certificate, then execs flower-supernode
    assert container["command"] == [
        "python", "-m", "enclave_runtime", "flower", "supernode",
        "--superlink", "ccp-flower-superlink.ccp.svc:9092",
        "--evidence-url", "http://ccp-flower-superlink.ccp.svc:9097/evidence",
        "--party", "lab-gcp",
        "--policy", "/run/ccp/policy/policy.json",
        "--root-certificates", "/run/ccp/superlink/certificate.pem",
    ]
    assert pod(declared, "ccp-flower-supernode-clinic-azure")["containers"][0]["command"][9:11] == [
        "--party", "clinic-azure"]
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"},
                                         {"name": "tls", "mountPath": "/run/ccp/superlink"},
                                         {"name": "policy", "mountPath": "/run/ccp/policy", "readOnly": True}]
    assert spec["volumes"][-1] == {"name": "policy", "configMap": {"name": "ccp-flower-supernode-policy"}}
    assert container["readinessProbe"]["grpc"] == {"port": 9095}
    assert container["livenessProbe"]["grpc"] == {"port": 9095}


def test_no_plaintext_and_no_runtime_installs_anywhere(declared: Recording) -> None:
    commands = [pod(declared, name)["containers"][0]["command"] for name in deployments(declared)]
    assert len(commands) == 3
    for command in commands:
        assert "--insecure" not in command
        assert "--allow-runtime-dependency-installation" not in command
        # plain HTTP only for the SuperLink's evidence, which authenticates itself (enclave_runtime.ml.launcher)
        assert [arg for arg in command if arg.startswith("http://")] in (
            [], ["http://ccp-flower-superlink.ccp.svc:9097/evidence"])


def test_supernodes_read_only_the_approved_measurements_in_production_rules(declared: Recording) -> None:
    (config_map,) = [props(c) for c in declared.of_type("kubernetes:core/v1:ConfigMap")]
    assert config_map["metadata"]["name"] == "ccp-flower-supernode-policy"
    assert set(config_map["data"]) == {"policy.json"}
    document = json.loads(config_map["data"]["policy.json"])
    assert document == {"environment": "prod", "measurements": MEASUREMENTS}
    policy = Policy.load(document)
    assert (policy.environment, policy.allow_debug) == ("prod", False)
    digest = hashlib.sha256(config_map["data"]["policy.json"].encode()).hexdigest()
    node = deployments(declared)["ccp-flower-supernode-lab-gcp"]["spec"]["template"]
    assert node["metadata"]["annotations"] == {"ccp.io/policy-sha256": digest}  # a new policy rolls the pods
    assert "annotations" not in deployments(declared)["ccp-flower-superlink"]["spec"]["template"]["metadata"]


def test_least_privilege_on_the_confidential_pool(declared: Recording) -> None:
    for name in deployments(declared):
        spec = pod(declared, name)
        (container,) = spec["containers"]
        assert container["image"] == IMAGE
        assert container["securityContext"] == RESTRICTED
        assert spec["securityContext"] == {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                           "fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}}
        assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False
        assert spec["nodeSelector"] == {"ccp.io/tee": "sev-snp"}
        assert spec["tolerations"] == [{"key": "ccp.io/tee", "operator": "Equal", "value": "sev-snp", "effect": "NoSchedule"}]
        assert "hostNetwork" not in spec and "hostPID" not in spec
        assert set(container["resources"]["limits"]) == {"cpu", "memory"}


def test_only_supernodes_carry_the_workload_identity(declared: Recording) -> None:
    link = deployments(declared)["ccp-flower-superlink"]["spec"]["template"]
    node = deployments(declared)["ccp-flower-supernode-lab-gcp"]["spec"]["template"]
    assert link["spec"]["serviceAccountName"] == "flower-superlink"
    assert "azure.workload.identity/use" not in link["metadata"]["labels"]
    assert node["spec"]["serviceAccountName"] == "workload"
    assert node["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    (account,) = [props(a) for a in declared.of_type("kubernetes:core/v1:ServiceAccount")]
    assert account["metadata"]["name"] == "flower-superlink" and account["automountServiceAccountToken"] is False
    assert "annotations" not in account["metadata"]


def test_superlink_is_reachable_only_inside_the_cluster(declared: Recording) -> None:
    (service,) = [props(s) for s in declared.of_type("kubernetes:core/v1:Service")]
    assert service["spec"] == {
        "type": "ClusterIP", "selector": LINK,
        "ports": [{"name": "fleet", "port": 9092, "targetPort": "fleet", "protocol": "TCP"},
                  {"name": "evidence", "port": 9097, "targetPort": "evidence", "protocol": "TCP"}],
    }
    assert not [r for r in declared.resources if "Ingress" in r.type]


def test_network_policies_admit_only_supernodes_and_let_them_reach_only_the_superlink_and_key_services(
    declared: Recording,
) -> None:
    policies = {props(p)["metadata"]["name"]: props(p)["spec"] for p in declared.of_type(POLICY)}
    assert policies["ccp-flower-superlink-ingress"] == {
        "podSelector": {"matchLabels": LINK},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": NODES}}],
                     "ports": [{"protocol": "TCP", "port": 9092}, {"protocol": "TCP", "port": 9097}]}],
        "egress": [],
    }
    nodes = policies["ccp-flower-supernode-egress"]
    assert nodes["podSelector"] == {"matchLabels": NODES}
    assert (nodes["policyTypes"], nodes["ingress"]) == (["Ingress", "Egress"], [])
    assert nodes["egress"] == [
        {"to": [{"podSelector": {"matchLabels": LINK}}],
         "ports": [{"protocol": "TCP", "port": 9092}, {"protocol": "TCP", "port": 9097}]},
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                 "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
         "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 443}]},
        {"to": [{"ipBlock": {"cidr": "169.254.169.254/32"}}], "ports": [{"protocol": "TCP", "port": 80}]},
    ]


def test_every_object_goes_through_the_cluster_provider_after_the_pool(declared: Recording) -> None:
    provider = declared.one("pulumi:providers:kubernetes")
    pool = declared.one("test:index:NodePool")
    objects = [r for r in declared.resources if r.type.startswith("kubernetes:")]
    assert sorted(r.type for r in objects) == sorted(
        [DEPLOYMENT] * 3 + ["kubernetes:core/v1:ServiceAccount", "kubernetes:core/v1:Service",
                            "kubernetes:core/v1:ConfigMap", POLICY, POLICY]
    )
    for resource in objects:
        assert resource.provider and resource.provider.startswith(provider.urn), resource.name
        assert pool.urn in resource.dependencies, resource.name
        assert props(resource)["metadata"]["labels"]["party"] == "shared"


@pytest.mark.parametrize(("overrides", "message"), [
    ({"image": "europe-docker.pkg.dev/ccp/fl-trainer:latest"}, "not pinned by digest"),
    ({"image": "europe-docker.pkg.dev/ccp/fl-trainer@sha256:" + "0" * 64}, "all-zero digest"),
    ({"parties": []}, "at least one party"),
    ({"parties": ["lab-gcp", "lab-gcp"]}, "each named once"),
    ({"parties": ["Lab GCP"]}, "not a valid Kubernetes label value"),
    # a debug TEE's all-zero PCR0 (which a dev stack may approve) is refused by the SuperNodes' prod rules
    ({"measurements": {"version": "1", "nitro": {"pcr0": "00" * 48}}}, "(?s)SuperNodes' policy.*debug"),
])
def test_refuses_what_would_weaken_it(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        declare(**overrides)


# --- which cluster, which parties -------------------------------------------------------------------


def collaboration(raw: dict[str, Any]) -> Any:
    return parse(raw).collaboration


def test_the_first_kubernetes_host_with_a_party_runs_the_federation() -> None:
    raw = read_stack()
    assert flower_host(collaboration(raw)) is None  # dev: no Kubernetes host
    raw["collaboration"]["workload"]["hosts"].append(dict(GKE_HOST))
    collab = collaboration(raw)
    host = flower_host(collab)
    assert host is collab.workload.hosts[-1]
    assert cluster_parties(collab, host) == ["lab-gcp"]
    raw["collaboration"].pop("federated")
    raw["collaboration"].pop("privacy")
    assert flower_host(collaboration(raw)) is None  # no federated job: no Flower


def test_a_cluster_outside_every_party_region_runs_no_supernode() -> None:
    raw = read_stack()
    raw["collaboration"]["workload"]["hosts"].append({**GKE_HOST, "region": "us-central1"})
    collab = collaboration(raw)
    assert cluster_parties(collab, collab.workload.hosts[-1]) == []
    assert flower_host(collab) is None


# --- as the sites declare it ----------------------------------------------------------------------------


def site_recording(cloud: str, raw: dict[str, Any]) -> Recording:
    from importlib import import_module

    site = import_module(f"components.{cloud}.site").Site
    return run(lambda: site(f"dev-demo-{cloud}", stack_site_args(raw, cloud)))  # type: ignore[arg-type]


def flower_objects(recording: Recording) -> list[RecordedResource]:
    return [r for r in recording.resources if "ccp:kubernetes:FlowerFederation$" in r.urn]


def test_gke_site_runs_lab_gcp_supernode_beside_the_query_service() -> None:
    raw = read_stack()
    raw["collaboration"]["workload"]["hosts"].append(dict(GKE_HOST))
    recording = site_recording("gcp", raw)
    names = sorted(props(d)["metadata"]["name"] for d in recording.of_type(DEPLOYMENT))
    assert names == ["ccp-flower-superlink", "ccp-flower-supernode-lab-gcp", "ccp-query-service"]
    pool = recording.one("gcp:container/nodePool:NodePool")
    namespace = recording.one("kubernetes:core/v1:Namespace")
    (workload_account,) = [a for a in recording.of_type("kubernetes:core/v1:ServiceAccount")
                           if props(a)["metadata"]["name"] == "workload"]
    objects = flower_objects(recording)
    assert len(objects) == 7
    for resource in objects:
        assert {pool.urn, namespace.urn, workload_account.urn} <= set(resource.dependencies), resource.name
    node = next(props(d) for d in recording.of_type(DEPLOYMENT) if props(d)["metadata"]["name"].endswith("lab-gcp"))
    assert node["spec"]["template"]["spec"]["nodeSelector"] == {"cloud.google.com/gke-nodepool": "confidential"}
    assert node["spec"]["template"]["spec"]["containers"][0]["image"] == raw["collaboration"]["workload"]["image"]


def test_a_collaboration_without_federated_gets_no_flower() -> None:
    raw = read_stack()
    raw["collaboration"]["workload"]["hosts"].append(dict(GKE_HOST))
    raw["collaboration"].pop("federated")
    assert not flower_objects(site_recording("gcp", raw))


def test_aks_site_runs_clinic_azure_supernode_under_the_workload_identity() -> None:
    raw = read_stack()
    raw["collaboration"]["workload"]["hosts"].append(
        {"cloud": "azure", "region": "westeurope", "tee": "sev-snp", "instanceType": "Standard_DC4as_v5", "kubernetes": True}
    )
    found = {props(d)["metadata"]["name"]: props(d) for d in site_recording("azure", raw).of_type(DEPLOYMENT)}
    node = found["ccp-flower-supernode-clinic-azure"]["spec"]["template"]
    assert set(found) == {"ccp-query-service", "ccp-flower-superlink", "ccp-flower-supernode-clinic-azure"}
    assert node["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert node["spec"]["serviceAccountName"] == "workload"
    assert node["spec"]["nodeSelector"] == {"ccp.io/tee": "sev-snp"}


def test_eks_site_gives_each_flower_pod_its_enclave() -> None:
    raw = read_stack()
    raw["collaboration"]["workload"]["hosts"][0]["kubernetes"] = True
    found = {props(d)["metadata"]["name"]: props(d) for d in site_recording("aws", raw).of_type(DEPLOYMENT)}
    assert set(found) == {"ccp-query-service", "ccp-flower-superlink", "ccp-flower-supernode-clinic-aws"}
    for name in ("ccp-flower-superlink", "ccp-flower-supernode-clinic-aws"):
        spec = found[name]["spec"]["template"]["spec"]
        assert spec["nodeSelector"] == {"aws-nitro-enclaves-k8s-dp": "enabled"}
        assert spec["containers"][0]["resources"]["limits"]["aws.ec2.nitro/nitro_enclaves"] == "1"


# --- the flags, against the pinned flwr's own command-line parsers -------------------------------------

ML_PYTHON = REPO_ROOT / ".venv-ml" / "bin" / "python"
PARSE = """
import json, sys
from flwr.superlink.cli.flower_superlink import _parse_args_run_superlink
from flwr.supernode.cli.flower_supernode import _parse_args_run_supernode
parser = {"flower-superlink": _parse_args_run_superlink, "flower-supernode": _parse_args_run_supernode}[sys.argv[1]]()
print(json.dumps(vars(parser.parse_args(sys.argv[2:])), default=str))
"""


def parsed(command: list[str]) -> dict[str, Any]:
    if not ML_PYTHON.exists():
        pytest.skip("the ML environment (.venv-ml, `make test-ml`) is not built: flwr's parsers are not here")
    done = subprocess.run([str(ML_PYTHON), "-c", PARSE, *command], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_superlink_flags_are_flwr_1_42_flags() -> None:
    args = parsed(superlink_command())
    assert args["insecure"] is False
    assert (args["ssl_ca_certfile"], args["ssl_certfile"], args["ssl_keyfile"]) == (
        "/run/ccp/tls/ca.pem", "/run/ccp/tls/certificate.pem", "/run/ccp/tls/key.pem")
    assert (args["host"], args["port"], args["isolation"]) == ("0.0.0.0", 9092, "subprocess")
    assert args["runtime_dependency_install"] is False
    assert args["database"] == ":flwr-in-memory:"  # the federation's state never reaches a disk


def test_supernode_flags_are_flwr_1_42_flags() -> None:
    args = parsed(supernode_command(SUPERLINK_ADDRESS, "lab-gcp"))
    assert args["insecure"] is False
    assert args["superlink"] == "ccp-flower-superlink.ccp.svc:9092"
    assert args["root_certificates"] == "/run/ccp/superlink/certificate.pem"
    assert (args["isolation"], args["health_server_address"]) == ("subprocess", "0.0.0.0:9095")
    assert args["runtime_dependency_install"] is False
    assert args["node_config"] == 'party="lab-gcp"'
    # the runtime API the ClientApp subprocess uses stays on loopback
    assert args["host"] == "127.0.0.1"


# --- the review of the fixture stacks --------------------------------------------------------------------


@pytest.mark.parametrize(("stack", "party"), [("k8s", "lab-gcp"), ("aks", "clinic-azure")])
def test_review_passes_every_rule_on_flower_but_the_waived_replica_count(stack: str, party: str, tmp_path: Path) -> None:
    result = run_review(PROGRAM, stack, tmp_path)
    assert result.exit_code == 0 and result.problems == []
    assert [(v.policy, v.message) for v in result.analysis.mandatory] == []  # type: ignore[union-attr]
    record: dict[str, Any] = result.record  # type: ignore[assignment]
    flower = [r for r in record["resources"] if "FlowerFederation$kubernetes:" in r["urn"]]
    assert len(flower) == 7
    assert not [v for v in record["violations"] if "flower" in v["urn"].lower() or "flower" in v["message"].lower()]
    waived = sorted((w["policy"], w["name"].rsplit("-flower-", 1)[1]) for w in record["waivers"])
    assert waived == [("kubernetes-apps-deployment-enforce-replicas", "superlink"),
                      ("kubernetes-apps-deployment-enforce-replicas", f"supernode-{party}")]
