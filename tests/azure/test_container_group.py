"""The Azure confidential container group (the default Azure workload host): its exact security
properties, as the analyzer sees them (wire-form keys)."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from components.azure.container_group import CONTAINER_GROUP_DELEGATION
from components.azure.options import AzureOptions
from components.azure.site import Site
from policies.review.mocks import Recording, run, unwrap

from tests.support import read_stack, stack_site_args

SITE = "t-azure"
HOST = "confidential-containers-westeurope-0"


def build(raw: dict[str, Any]) -> Recording:
    args = stack_site_args(raw, "azure")
    return run(lambda: Site(SITE, replace(args, options=AzureOptions())))


@pytest.fixture(scope="module")
def dev() -> Recording:
    return build(read_stack("dev"))


def group(rec: Recording) -> dict[str, Any]:
    return unwrap(rec.one("azure-native:containerinstance:ContainerGroup").properties)


def test_sku_is_confidential_with_the_approved_cce_policy(dev: Recording) -> None:
    props = group(dev)
    assert props["sku"] == "Confidential"
    cce = read_stack("dev")["collaboration"]["measurements"]["sevSnp"]["ccePolicy"]
    assert props["confidentialComputeProperties"] == {"ccePolicy": cce}
    assert props["osType"] == "Linux" and props["location"] == "westeurope"


def test_no_public_ip_and_a_delegated_private_subnet(dev: Recording) -> None:
    props = group(dev)
    assert "ipAddress" not in props  # no IP block at all: no public IP, no DNS label
    (subnet_ref,) = props["subnetIds"]
    subnet = next(r for r in dev.of_type("azure-native:network:Subnet") if r.name.endswith("-containers"))
    assert subnet_ref == {"id": f"{subnet.name}-id"}
    subnet_props = unwrap(subnet.properties)
    assert [d["serviceName"] for d in subnet_props["delegations"]] == [CONTAINER_GROUP_DELEGATION]
    assert subnet_props["defaultOutboundAccess"] is False


def test_workload_image_by_digest_unprivileged_with_its_identity_only(dev: Recording) -> None:
    props = group(dev)
    (container,) = props["containers"]
    assert container["image"] == read_stack("dev")["collaboration"]["workload"]["image"]
    assert "@sha256:" in container["image"]
    assert container["securityContext"] == {"privileged": False, "allowPrivilegeEscalation": False}
    # The runtime starts at boot by the declared command: exactly the image's ENTRYPOINT + CMD
    # (images/aci/Dockerfile), which the CCE policy generated from this template pins.
    assert container["command"] == ["python", "-m", "enclave_runtime", "serve", "--host", "0.0.0.0", "--port", "8443"]
    assert "ports" not in container
    assert props["identity"] == {"type": "UserAssigned", "userAssignedIdentities": [f"{SITE}-{HOST}-identity-id"]}
    assert "imageRegistryCredentials" not in props  # no registry password in the template


def test_no_virtual_machine_is_the_azure_host(dev: Recording) -> None:
    assert dev.of_type("azure-native:compute:VirtualMachine") == []
    assert dev.of_type("azure-native:network:NetworkInterface") == []


@pytest.mark.parametrize("extra", [{"kubernetes": True}, {"instanceType": "Standard_DC4as_v5"}])
def test_a_container_group_host_has_no_vm_size_or_cluster(extra: dict[str, Any]) -> None:
    from stacks import config

    raw = copy.deepcopy(read_stack("dev"))
    for host in raw["collaboration"]["workload"]["hosts"]:
        if host["tee"] == "confidential-containers":
            host.update(extra)
    with pytest.raises(config.ConfigError, match="is an Azure Container Instances confidential container group"):
        config.parse(raw)
