"""The attested query service on an AKS host (`cloud: azure`, `kubernetes: true`): exact properties.

Under the review's mocks: the Azure site declares the cluster with confidential system and workload pools
and customer-key node disks, builds the Kubernetes provider from the cluster's user kubeconfig (secret),
and declares `QueryService` on the confidential pool with `components.azure.aks.query_placement`; the
fixture stack `tests/kubernetes/program/Pulumi.aks.yaml` (dev + an AKS host) passes the review.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from components.azure.aks import (
    EMPTY_KUBECONFIG,
    READER,
    SYSTEM_POOL_SIZE,
    TEE_LABEL,
    WORKLOAD_NAMESPACE,
    WORKLOAD_SERVICE_ACCOUNT,
    system_pool_size,
    user_kubeconfig,
)
from components.azure.vm import STANDARD_DES_TYPE
from policies.review.mocks import Recording, RecordedResource, run, unwrap
from tests.kubernetes.fixture_stacks import assert_dev_plus_host
from policies.review.run import run_review
from policies.review.mocks import SECRET_SIG
from pulumi.runtime import rpc
from stacks.config import ConfigError, parse

from tests.support import read_stack, stack_site_args

PROGRAM = Path(__file__).parent / "program"
AKS_HOST = {"cloud": "azure", "region": "westeurope", "tee": "sev-snp", "instanceType": "Standard_DC4as_v5",
            "kubernetes": True}


def props(resource: RecordedResource) -> dict[str, Any]:
    return unwrap(resource.properties)


def aks_stack() -> dict[str, Any]:
    raw = read_stack()
    raw["collaboration"]["workload"]["hosts"].append(dict(AKS_HOST))
    return raw


@pytest.fixture(scope="module")
def recording() -> Recording:
    from components.azure.site import Site

    return run(lambda: Site("dev-demo-azure", stack_site_args(aks_stack(), "azure")))


def aks_resource(recording: Recording, type_: str) -> RecordedResource:
    found = [r for r in recording.of_type(type_) if "sev-snp" in r.name]
    assert len(found) == 1, [r.name for r in recording.of_type(type_)]
    return found[0]


def test_every_pool_is_confidential_and_private(recording: Recording) -> None:
    cluster = props(aks_resource(recording, "azure-native:containerservice:ManagedCluster"))
    (system,) = cluster["agentPoolProfiles"]
    assert (system["mode"], system["vmSize"]) == ("System", "Standard_DC4as_v5")
    assert system["nodeTaints"] == ["CriticalAddonsOnly=true:NoSchedule"]
    assert system["enableNodePublicIP"] is False
    pool = props(recording.one("azure-native:containerservice:AgentPool"))
    assert (pool["mode"], pool["vmSize"], pool["enableNodePublicIP"]) == ("User", "Standard_DC4as_v5", False)
    assert pool["nodeLabels"] == {TEE_LABEL: "sev-snp"}
    assert pool["nodeTaints"] == [f"{TEE_LABEL}=sev-snp:NoSchedule"]


def test_node_disks_use_a_customer_key_set_the_cluster_identity_can_read(recording: Recording) -> None:
    cluster_resource = aks_resource(recording, "azure-native:containerservice:ManagedCluster")
    cluster = props(cluster_resource)
    des = next(r for r in recording.of_type("azure-native:compute:DiskEncryptionSet") if "sev-snp" in r.name)
    assert props(des)["encryptionType"] == STANDARD_DES_TYPE
    assert cluster["diskEncryptionSetID"]
    assert des.urn in cluster_resource.property_dependencies["diskEncryptionSetID"]
    readers = [r for r in recording.of_type("azure-native:authorization:RoleAssignment")
               if props(r).get("roleDefinitionId", "").endswith(READER)]
    assert len(readers) == 1
    (reader,) = readers
    assert des.urn in reader.property_dependencies["scope"]
    control_plane = next(r for r in recording.of_type("azure-native:managedidentity:UserAssignedIdentity")
                         if r.name.endswith("-control-plane"))
    assert control_plane.urn in reader.property_dependencies["principalId"]
    reader_urn = reader.urn
    assert reader_urn in cluster_resource.dependencies  # the grant exists before the cluster creates disks


def test_provider_is_the_clusters_user_kubeconfig_kept_secret(recording: Recording) -> None:
    provider = recording.one("pulumi:providers:kubernetes")
    kubeconfig = provider.properties["kubeconfig"]
    assert isinstance(kubeconfig, dict) and kubeconfig.get(rpc._special_sig_key) == SECRET_SIG
    # The mocks answer the credentials invoke with a schema placeholder (no kubeconfig): the provider
    # gets an explicit empty kubeconfig, never the ambient one.
    assert unwrap(kubeconfig) == EMPTY_KUBECONFIG
    assert any(i["token"] == "azure-native:containerservice:listManagedClusterUserCredentials"
               for i in recording.placeholder_invokes)
    pool = recording.one("azure-native:containerservice:AgentPool")
    assert pool.urn in provider.dependencies


def test_query_service_runs_on_the_confidential_pool_through_the_cluster_provider(recording: Recording) -> None:
    provider = recording.one("pulumi:providers:kubernetes")
    pool = recording.one("azure-native:containerservice:AgentPool")
    workload = [r for r in recording.resources if r.type.startswith("kubernetes:")]
    assert len(workload) == 7 + 7  # the query service's and Flower's (the dev stack declares `federated`)
    for resource in workload:
        assert resource.provider and resource.provider.startswith(provider.urn), resource.name
        assert pool.urn in resource.dependencies, resource.name
    (deployment,) = [props(r) for r in recording.of_type("kubernetes:apps/v1:Deployment")
                     if r.name.endswith("-query-deployment")]
    spec = deployment["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {TEE_LABEL: "sev-snp"}
    assert spec["tolerations"] == [{"key": TEE_LABEL, "operator": "Equal", "value": "sev-snp", "effect": "NoSchedule"}]
    assert "runtimeClassName" not in spec
    assert spec["containers"][0]["image"] == read_stack()["collaboration"]["workload"]["image"]
    assert deployment["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert deployment["spec"]["replicas"] == 2
    (account_resource,) = [r for r in recording.of_type("kubernetes:core/v1:ServiceAccount")
                           if r.name.endswith("-query-service-account")]
    account = props(account_resource)["metadata"]
    assert (account["namespace"], account["name"]) == (WORKLOAD_NAMESPACE, WORKLOAD_SERVICE_ACCOUNT)
    identity = next(r for r in recording.of_type("azure-native:managedidentity:UserAssignedIdentity")
                    if r.name.endswith("sev-snp-westeurope-1-identity"))
    assert set(account["annotations"]) == {"azure.workload.identity/client-id"}
    assert identity.urn in account_resource.property_dependencies["metadata"]
    # the federated credential trusts exactly that service account
    federation = props(recording.one("azure-native:managedidentity:FederatedIdentityCredential"))
    assert federation["subject"] == f"system:serviceaccount:{WORKLOAD_NAMESPACE}:{WORKLOAD_SERVICE_ACCOUNT}"
    service = next(props(s) for s in recording.of_type("kubernetes:core/v1:Service")
                   if props(s)["spec"].get("type") == "LoadBalancer")
    assert service["metadata"]["annotations"] == {"service.beta.kubernetes.io/azure-load-balancer-internal": "true"}


def test_hosts_without_kubernetes_declare_no_query_service() -> None:
    from components.azure.site import Site

    recording = run(lambda: Site("dev-demo-azure", stack_site_args(read_stack(), "azure")))
    assert not [r for r in recording.resources if r.type.startswith(("kubernetes:", "pulumi:providers:kubernetes"))]


def test_user_kubeconfig_decodes_the_first_credential() -> None:
    text = "apiVersion: v1\nkind: Config\nclusters: []\n"
    encoded = base64.b64encode(text.encode()).decode()
    assert user_kubeconfig([{"name": "clusterUser", "value": encoded}]) == text
    assert user_kubeconfig([]) == EMPTY_KUBECONFIG
    assert user_kubeconfig(None) == EMPTY_KUBECONFIG
    assert user_kubeconfig([{"name": "x", "value": "placeholder-value"}]) == EMPTY_KUBECONFIG
    assert json.loads(EMPTY_KUBECONFIG)["clusters"] == []
    with pytest.raises(ValueError, match="not base64"):
        user_kubeconfig([{"name": "x", "value": "%%% not base64 %%%"}])


def test_system_pool_size_is_confidential_for_each_tee() -> None:
    from components.azure.sizes import size_family

    for tee, size in SYSTEM_POOL_SIZE.items():
        assert size_family(size, tee) is not None
        assert system_pool_size(tee) == size
    with pytest.raises(ValueError, match="not 'nitro'"):
        system_pool_size("nitro")


@pytest.mark.parametrize("image", [None, "europe-docker.pkg.dev/ccp-dev/workloads/fl-trainer:v1"])
def test_config_refuses_an_aks_host_without_a_pinned_image(image: str | None) -> None:
    raw = aks_stack()
    raw["collaboration"]["workload"].pop("image")
    if image:
        raw["collaboration"]["workload"]["image"] = image
    with pytest.raises(ConfigError) as error:
        parse(raw)
    text = str(error.value)
    assert "ccp:collaboration.workload.image: " in text and "workload.hosts[3]" in text


def test_aks_fixture_stack_is_the_dev_stack_plus_an_aks_host() -> None:
    assert_dev_plus_host("aks", AKS_HOST)


def test_review_of_a_stack_with_an_aks_host_passes(tmp_path: Path) -> None:
    result = run_review(PROGRAM, "aks", tmp_path)
    assert result.problems == []
    assert [(v.policy, v.message) for v in result.analysis.mandatory] == []  # type: ignore[union-attr]
    assert result.exit_code == 0
    types = [r["type"] for r in result.record["resources"]]  # type: ignore[index]
    # the query service's, Flower's SuperLink and clinic-azure's SuperNode (the stack declares `federated`)
    assert types.count("kubernetes:apps/v1:Deployment") == 3
    assert types.count("kubernetes:core/v1:Service") == 3
    assert types.count("pulumi:providers:kubernetes") == 1
    assert all(row["decision"] == row["expected"] for row in result.record["key_release"])  # type: ignore[index]
