"""Issue 14 item 3: every declared host boots the approved workload in production mode.

Over the resources each site records under mocks (the same recording the review judges):
- AWS: the parent's user data fetches the EIF from the versioned SSE-KMS image bucket, refuses it unless
  `nitro-cli describe-eif` reports the stack's approved PCR0, runs it without `--debug-mode`, with the
  allocator's and run-enclave's memory >= 4x the image size, and starts the vsock relays;
- Azure: the container group starts the runtime by its command, no debug container policy; a CVM has
  cloud-init custom data starting it and no operator path (no VM agent, no extensions, sshd masked);
- GCP: the Confidential Space VM boots the production family with the approved image reference, and the
  workload service account may pull it (Artifact Registry reader on that repository);
- the review rule flags each kind of host that declares no start.
"""

from __future__ import annotations

import base64
import copy
import re
from dataclasses import replace
from typing import Any

import pytest

from components.aws.enclave_host import (
    EIF_MEMORY_FACTOR,
    EnclaveHost,
    EnclaveHostArgs,
    WorkloadLaunch,
    enclave_memory_mib,
)
from components.aws.site import Site as AwsSite
from components.azure.options import AzureOptions
from components.azure.site import Site as AzureSite
from components.gcp.compute import ARTIFACT_REGISTRY_READER, image_repository
from components.gcp.site import Site as GcpSite
from policies.review.mocks import Recording, RecordedResource, run, unwrap
from policies.zero_trust import pack
from policies.zero_trust.rules._base import ZeroTrustResourcePolicy
from tests.support import read_stack, stack_site_args

RULE = next(p for p in pack.POLICIES if p.name == "stack-compute-host-enforce-workload-start")


def props(resource: RecordedResource) -> dict[str, Any]:
    return unwrap(resource.properties)


def judged(resource: RecordedResource | tuple[str, dict[str, Any]]) -> list[str]:
    from pulumi_policy import ResourceValidationArgs
    from pulumi_policy.proxy import unknown_checking_proxy

    assert isinstance(RULE, ZeroTrustResourcePolicy)
    type_, name, properties = (
        (resource[0], "host", resource[1]) if isinstance(resource, tuple) else (resource.type, resource.name, props(resource))
    )
    found: list[str] = []
    args = ResourceValidationArgs(
        type_, unknown_checking_proxy(copy.deepcopy(properties)),
        f"urn:pulumi:dev::ccp::{type_}::{name}", name, None, None, {}, {},
    )
    RULE.validate(args, lambda message, urn=None: found.append(message))
    return found


# --- AWS --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aws_dev() -> Recording:
    return run(lambda: AwsSite("dev-demo-aws", stack_site_args(read_stack("dev"), "aws")))


def user_data(recording: Recording) -> str:
    (template,) = recording.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    text = base64.b64decode(props(template)["userData"]).decode()
    (instance,) = recording.of_type("aws:ec2/instance:Instance")
    assert base64.b64decode(props(instance)["userDataBase64"]).decode() == text  # the instance repeats it
    return text


def test_aws_host_launches_the_approved_eif_in_production_mode(aws_dev: Recording) -> None:
    script = user_data(aws_dev)
    nitro = read_stack("dev")["collaboration"]["measurements"]["nitro"]
    assert f"approved={nitro['pcr0']}" in script
    assert "nitro-cli describe-eif" in script and ".Measurements.PCR0" in script
    run_line = next(line for line in script.splitlines() if "nitro-cli run-enclave" in line)
    assert "--eif-path /opt/ccp/enclave.eif" in run_line
    assert "--debug-mode" not in script and "--attach-console" not in script
    # fetched from the region's image bucket, object named by the measurement version
    version = read_stack("dev")["collaboration"]["measurements"]["version"]
    (bucket,) = [b for b in aws_dev.of_type("aws:s3/bucket:Bucket") if "-eif-" in props(b)["bucket"]]
    assert f"--bucket {props(bucket)['bucket']} --key nitro/{version}/enclave.eif" in script


def test_aws_image_bucket_is_versioned_and_kms_encrypted(aws_dev: Recording) -> None:
    (bucket,) = [b for b in aws_dev.of_type("aws:s3/bucket:Bucket") if "-eif-" in props(b)["bucket"]]
    name = bucket.name
    versioning = [r for r in aws_dev.of_type("aws:s3/bucketVersioning:BucketVersioning") if r.name == f"{name}-versioning"]
    assert props(versioning[0])["versioningConfiguration"]["status"] == "Enabled"
    (sse,) = [r for r in aws_dev.of_type(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration") if r.name == f"{name}-encryption"]
    rule = props(sse)["rules"][0]["applyServerSideEncryptionByDefault"]
    assert rule["sseAlgorithm"] == "aws:kms" and rule["kmsMasterKeyId"]


def test_aws_enclave_memory_is_at_least_four_times_the_image(aws_dev: Recording) -> None:
    script = user_data(aws_dev)
    allocator = int(re.search(r"memory_mib: (\d+)", script).group(1))  # type: ignore[union-attr]
    run_memory = int(re.search(r"--memory (\d+)", script).group(1))  # type: ignore[union-attr]
    assert allocator == run_memory
    assert allocator >= EIF_MEMORY_FACTOR * 1024  # the declared (default) EIF size
    # and the boot script re-checks the fetched file against the reservation before launch
    assert f"$(( {EIF_MEMORY_FACTOR} * size_mib )) -gt {run_memory}" in script


@pytest.mark.parametrize(("eif", "memory"), [(1, 256), (1024, 4096), (1500, 6144), (3000, 12032)])
def test_enclave_memory_is_derived_from_the_image_size(eif: int, memory: int) -> None:
    assert enclave_memory_mib(eif) == memory >= EIF_MEMORY_FACTOR * eif


def test_an_explicit_memory_under_four_times_the_image_is_refused() -> None:
    args = EnclaveHostArgs(
        region="eu-west-1", instance_type="m6i.2xlarge", subnet_id="s", security_group_ids=[], instance_profile_name="p",
        ebs_kms_key_arn="k", tags={}, image_bucket="b", image_object_key="nitro/v1/enclave.eif",
        approved_pcr0="ab" * 48, eif_size_mib=2048, enclave_memory_mib=4096,
    )
    with pytest.raises(ValueError, match="under 4x the 2048 MiB enclave image"):
        run(lambda: EnclaveHost("h", args))


def test_a_bigger_image_grows_the_allocator() -> None:
    args = EnclaveHostArgs(
        region="eu-west-1", instance_type="m6i.2xlarge", subnet_id="s", security_group_ids=[], instance_profile_name="p",
        ebs_kms_key_arn="k", tags={}, image_bucket="b", image_object_key="nitro/v1/enclave.eif",
        approved_pcr0="ab" * 48, eif_size_mib=2000,
    )
    recording = run(lambda: EnclaveHost("h", args))
    assert "memory_mib: 8192\n" in user_data(recording)


@pytest.mark.parametrize("pcr0", ["0" * 96, "AB" * 48, "ab" * 47])
def test_launch_refuses_an_unusable_approved_pcr0(pcr0: str) -> None:
    with pytest.raises(ValueError, match="approved PCR0"):
        WorkloadLaunch(region="eu-west-1", bucket="b", object_key="k", pcr0=pcr0, cpu_count=2, memory_mib=4096)


def test_aws_parent_relays_kms_and_the_service_over_vsock(aws_dev: Recording) -> None:
    script = user_data(aws_dev)
    assert "vsock-proxy 8000 kms.eu-west-1.amazonaws.com 443 --config /etc/nitro_enclaves/ccp-vsock-proxy.yaml" in script
    assert "socat TCP-LISTEN:8443,fork,reuseaddr VSOCK-CONNECT:16:8443" in script  # images/nitro/entrypoint.py
    assert "--enclave-cid 16" in script
    allowlist = script.split("ccp-vsock-proxy.yaml <<'PROXY'\n")[1].split("PROXY\n")[0]
    assert allowlist == (
        "allowlist:\n- {address: kms.eu-west-1.amazonaws.com, port: 443}\n- {address: s3.eu-west-1.amazonaws.com, port: 443}\n"
    )


def test_aws_hosts_pass_the_workload_start_rule(aws_dev: Recording) -> None:
    for resource in [*aws_dev.of_type("aws:ec2/instance:Instance"), *aws_dev.of_type("aws:ec2/launchTemplate:LaunchTemplate")]:
        assert judged(resource) == [], resource.name


def test_eks_node_template_declares_the_kubernetes_start() -> None:
    raw = read_stack("dev")
    raw["collaboration"]["workload"]["hosts"][0]["kubernetes"] = True
    recording = run(lambda: AwsSite("dev-demo-aws", stack_site_args(raw, "aws")))
    (template,) = recording.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    assert "ccp-workload-start: kubernetes" in base64.b64decode(props(template)["userData"]).decode()
    assert judged(template) == []


# --- Azure ------------------------------------------------------------------------------------------


def test_azure_container_group_starts_the_runtime_without_a_debug_policy() -> None:
    raw = read_stack("dev")
    recording = run(lambda: AzureSite("dev-demo-azure", replace(stack_site_args(raw, "azure"), options=AzureOptions())))
    (group,) = recording.of_type("azure-native:containerinstance:ContainerGroup")
    container = props(group)["containers"][0]
    assert container["command"][:4] == ["python", "-m", "enclave_runtime", "serve"]
    policy = base64.b64decode(props(group)["confidentialComputeProperties"]["ccePolicy"]).decode()
    for debug in ("allow_properties_access", "allow_dump_stacks", "allow_runtime_logging"):
        assert f"{debug} := false" in policy
    assert '"exec_processes": []' in policy
    assert judged(group) == []


# --- GCP --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gcp_dev() -> Recording:
    return run(lambda: GcpSite("dev-demo-gcp", stack_site_args(read_stack("dev"), "gcp")))


def test_gcp_confidential_space_boots_the_production_family_with_the_approved_image(gcp_dev: Recording) -> None:
    image = read_stack("dev")["collaboration"]["workload"]["image"]
    (vm,) = [r for r in gcp_dev.of_type("gcp:compute/instance:Instance") if "tee-image-reference" in props(r).get("metadata", {})]
    p = props(vm)
    assert p["bootDisk"]["initializeParams"]["image"] == (
        "projects/confidential-space-images/global/images/family/confidential-space"
    )
    assert p["metadata"]["tee-image-reference"] == image
    assert judged(vm) == []


def test_gcp_workload_account_may_pull_the_image(gcp_dev: Recording) -> None:
    image = read_stack("dev")["collaboration"]["workload"]["image"]
    repository = image_repository(image)
    assert repository is not None and (repository.project, repository.location, repository.repository) == (
        "ccp-dev", "europe", "workloads")
    (grant,) = gcp_dev.of_type("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")
    p = props(grant)
    assert p["role"] == ARTIFACT_REGISTRY_READER
    assert (p["project"], p["location"], p["repository"]) == ("ccp-dev", "europe", "workloads")
    (vm,) = [r for r in gcp_dev.of_type("gcp:compute/instance:Instance") if "tee-image-reference" in props(r).get("metadata", {})]
    assert p["member"] == f"serviceAccount:{props(vm)['serviceAccount']['email']}"


PULL_RULE = next(p for p in pack.POLICIES if p.name == "gcp-artifactregistry-enforce-image-pull")


def pull_findings(recording: Recording, drop: str | None = None) -> list[str]:
    """The image-pull stack rule over a site's recorded resources (without those of type `drop`)."""
    from pulumi_policy import StackValidationArgs
    from pulumi_policy.policy import PolicyResource, PolicyResourceOptions
    from pulumi_policy.proxy import unknown_checking_proxy

    built = [
        PolicyResource(r.type, unknown_checking_proxy(copy.deepcopy(props(r))), f"urn:pulumi:dev::ccp::{r.type}::{r.name}",
                       r.name, PolicyResourceOptions(False, [], None, [], None, []), None, None, [], {})
        for r in recording.resources if r.type != drop
    ]
    found: list[str] = []
    PULL_RULE.validate(StackValidationArgs(built, {}, {}), lambda message, urn=None: found.append(message))
    return found


def test_gcp_pull_rule_accepts_the_declared_grant_and_flags_its_absence(gcp_dev: Recording) -> None:
    assert pull_findings(gcp_dev) == []
    (finding,) = pull_findings(gcp_dev, drop="gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")
    assert "no roles/artifactregistry.reader on projects/ccp-dev/locations/europe/repositories/workloads" in finding


def test_gcp_cross_project_repository_is_a_declared_precondition() -> None:
    from components.gcp.compute import IMAGE_PULL_PRECONDITION
    from components.gcp.options import GcpSiteOptions

    recording = run(lambda: GcpSite("dev-demo-gcp", stack_site_args(
        read_stack("dev"), "gcp", GcpSiteOptions(image_repository_grant="precondition"))))
    assert recording.of_type("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember") == []
    (precondition,) = recording.of_type(IMAGE_PULL_PRECONDITION)
    (vm,) = [r for r in recording.of_type("gcp:compute/instance:Instance") if "tee-image-reference" in props(r).get("metadata", {})]
    member = f"serviceAccount:{props(vm)['serviceAccount']['email']}"
    p = props(precondition)
    assert (p["project"], p["location"], p["repository"], p["role"], p["member"]) == (
        "ccp-dev", "europe", "workloads", ARTIFACT_REGISTRY_READER, member)
    assert p["command"] == (
        "gcloud artifacts repositories add-iam-policy-binding workloads --project=ccp-dev --location=europe "
        f"--member={member} --role=roles/artifactregistry.reader")
    assert pull_findings(recording) == []
    assert len(pull_findings(recording, drop=IMAGE_PULL_PRECONDITION)) == 1


@pytest.mark.parametrize(
    "image",
    ["docker.io/library/python@sha256:" + "a" * 64, "europe-docker.pkg.dev/p/r/i:latest", "gcr.io/p/i@sha256:" + "a" * 64],
)
def test_images_outside_artifact_registry_get_no_grant(image: str) -> None:
    assert image_repository(image) is None


# --- the rule flags a host without a start ----------------------------------------------------------


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("type_", "properties", "problem"),
    [
        ("aws:ec2/instance:Instance", {"enclaveOptions": {"enabled": True}, "userDataBase64": _b64("#!/bin/bash\n")}, "never runs `nitro-cli run-enclave`"),
        ("aws:ec2/launchTemplate:LaunchTemplate", {"enclaveOptions": {"enabled": True}, "userData": _b64("#!/bin/bash\n")}, "never runs"),
        ("aws:ec2/launchTemplate:LaunchTemplate", {"enclaveOptions": {"enabled": True}, "userData": _b64("nitro-cli run-enclave --eif-path e --memory 4096 --debug-mode\n")}, "--debug-mode"),
        ("aws:ec2/instance:Instance", {"enclaveOptions": {"enabled": True}, "userData": "# ccp-workload-start: kubernetes\n"}, "never runs"),
        ("azure-native:compute:VirtualMachine", {"osProfile": {"customData": ""}}, "customData is empty"),
        ("azure-native:compute:VirtualMachine", {"osProfile": {"adminUsername": "a"}}, "customData` is not set"),
        ("azure-native:containerinstance:ContainerGroup", {"containers": [{"name": "w", "image": "r/w@sha256:" + "a" * 64}]}, "containers[0].command"),
        ("gcp:compute/instance:Instance", {"bootDisk": {"initializeParams": {"image": "projects/confidential-space-images/global/images/family/confidential-space"}}, "metadata": {"tee-restart-policy": "Never"}}, "without metadata tee-image-reference"),
        ("gcp:compute/instanceTemplate:InstanceTemplate", {"disks": [{"sourceImage": "projects/confidential-space-images/global/images/family/confidential-space"}], "metadata": {}}, "tee-image-reference"),
    ],
)
def test_rule_flags_a_tee_host_without_a_workload_start(type_: str, properties: dict[str, Any], problem: str) -> None:
    found = judged((type_, properties))
    assert any(problem in m for m in found), found
