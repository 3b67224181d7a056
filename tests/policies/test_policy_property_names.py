"""Every property path a zero-trust rule reads is a real camelCase input of the real provider SDK.

For each declared (resource type, path), the real SDK resource class is built under the recording
mocks with that argument (snake_case, as a program would write it) and the recorded wire properties
must contain the path's camelCase keys. A misspelt key (e.g. `diskEncryptionSetId` for azure-native's
`diskEncryptionSetID`) turns into a snake_case argument the SDK either rejects or records under
another name, and this test fails.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

import pytest

from policies.review.mocks import run
from policies.zero_trust.pack import POLICIES
from policies.zero_trust.rules._base import _segments, lookup

PACKAGES = {
    "aws": "pulumi_aws",
    "azure-native": "pulumi_azure_native",
    "gcp": "pulumi_gcp",
    "kubernetes": "pulumi_kubernetes",
}

# Required constructor arguments per type (values are irrelevant to the rules).
REQUIRED: dict[str, dict[str, Any]] = {
    "aws:kms/keyPolicy:KeyPolicy": {"key_id": "k", "policy": "{}"},
    "aws:ec2/subnet:Subnet": {"vpc_id": "vpc"},
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": {"security_group_id": "sg", "ip_protocol": "tcp"},
    "aws:ebs/volume:Volume": {"availability_zone": "eu-west-1a"},
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": {"bucket": "b", "rules": []},
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": {"bucket": "b"},
    "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration": {"bucket": "b"},
    "aws:s3/bucketLogging:BucketLogging": {"bucket": "b", "target_prefix": "p/"},
    "aws:s3/bucketPolicy:BucketPolicy": {"bucket": "b", "policy": "{}"},
    "aws:cloudtrail/trail:Trail": {"s3_bucket_name": "b"},
    "aws:iam/policy:Policy": {"policy": "{}"},
    "aws:iam/rolePolicy:RolePolicy": {"role": "r", "policy": "{}"},
    "aws:eks/cluster:Cluster": {"role_arn": "arn", "vpc_config": {"subnet_ids": ["s"]}},
    "aws:ec2/instance:Instance": {},
    "azure-native:keyvault:Key": {"resource_group_name": "rg", "vault_name": "v", "properties": {}},
    "azure-native:keyvault:Vault": {"resource_group_name": "rg", "properties": {"tenant_id": "t", "sku": {"family": "A", "name": "premium"}}},
    "azure-native:compute:VirtualMachine": {"resource_group_name": "rg"},
    "azure-native:compute:DiskEncryptionSet": {"resource_group_name": "rg"},
    "azure-native:attestation:AttestationProvider": {"resource_group_name": "rg", "properties": {}},
    "azure-native:network:NetworkInterface": {"resource_group_name": "rg"},
    "azure-native:network:NetworkSecurityGroup": {"resource_group_name": "rg"},
    "azure-native:network:SecurityRule": {"resource_group_name": "rg", "network_security_group_name": "n", "protocol": "Tcp", "access": "Allow", "direction": "Inbound", "priority": 100},
    "azure-native:storage:StorageAccount": {"resource_group_name": "rg", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}},
    "azure-native:containerservice:ManagedCluster": {"resource_group_name": "rg"},
    "azure-native:authorization:RoleAssignment": {"principal_id": "p", "role_definition_id": "r", "scope": "s"},
    "azure-native:monitor:DiagnosticSetting": {"resource_uri": "u"},
    "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider": {"workload_identity_pool_id": "p", "workload_identity_pool_provider_id": "q"},
    "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember": {"crypto_key_id": "k", "role": "r", "member": "m"},
    "gcp:kms/cryptoKeyIAMBinding:CryptoKeyIAMBinding": {"crypto_key_id": "k", "role": "r", "members": ["m"]},
    "gcp:kms/cryptoKey:CryptoKey": {"key_ring": "kr"},
    "gcp:kms/keyRing:KeyRing": {"location": "europe-west4"},
    "gcp:compute/instance:Instance": {"machine_type": "n2d-standard-4", "boot_disk": {}, "network_interfaces": [{"network": "n"}]},
    "gcp:compute/instanceTemplate:InstanceTemplate": {"machine_type": "n2d-standard-4", "disks": [{"source_image": "i"}]},
    "gcp:compute/firewall:Firewall": {"network": "n"},
    "gcp:storage/bucket:Bucket": {"location": "EUROPE-WEST4"},
    "gcp:storage/bucketIAMMember:BucketIAMMember": {"bucket": "b", "role": "r", "member": "m"},
    "gcp:storage/bucketIAMBinding:BucketIAMBinding": {"bucket": "b", "role": "r", "members": ["m"]},
    "gcp:projects/iAMAuditConfig:IAMAuditConfig": {"project": "p", "service": "allServices", "audit_log_configs": [{"log_type": "DATA_READ"}]},
    "gcp:logging/projectSink:ProjectSink": {"destination": "storage.googleapis.com/b"},
    "aws:kms/grant:Grant": {"key_id": "k", "grantee_principal": "arn:aws:iam::111122223333:role/r", "operations": ["Encrypt"]},
    "azure-native:containerinstance:ContainerGroup": {
        "resource_group_name": "rg", "os_type": "Linux",
        "containers": [{"name": "w", "image": "i", "resources": {"requests": {"cpu": 1, "memory_in_gb": 1}}}],
    },
    "gcp:kms/cryptoKeyIAMPolicy:CryptoKeyIAMPolicy": {"crypto_key_id": "k", "policy_data": "{}"},
    "gcp:kms/keyRingIAMMember:KeyRingIAMMember": {"key_ring_id": "kr", "role": "r", "member": "m"},
    "gcp:kms/keyRingIAMBinding:KeyRingIAMBinding": {"key_ring_id": "kr", "role": "r", "members": ["m"]},
    "gcp:kms/keyRingIAMPolicy:KeyRingIAMPolicy": {"key_ring_id": "kr", "policy_data": "{}"},
    "gcp:projects/iAMMember:IAMMember": {"project": "p", "role": "r", "member": "m"},
    "gcp:projects/iAMBinding:IAMBinding": {"project": "p", "role": "r", "members": ["m"]},
    "gcp:projects/iAMPolicy:IAMPolicy": {"project": "p", "policy_data": "{}"},
    "gcp:storage/hmacKey:HmacKey": {"service_account_email": "sa@p.iam.gserviceaccount.com"},
    "aws:iam/accessKey:AccessKey": {"user": "u"},
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": {"repository": "r", "role": "r", "member": "m"},
    "gcp:artifactregistry/repositoryIamBinding:RepositoryIamBinding": {"repository": "r", "role": "r", "members": ["m"]},
    **{t: {"spec": {"selector": {}, "template": {}}} for t in (
        "kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:DaemonSet", "kubernetes:apps/v1:StatefulSet")},
}


def _snake(name: str) -> str:
    """camelCase -> snake_case the way the SDKs name arguments (runs of capitals are one word)."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _resource_class(type_: str) -> type:
    package, middle, cls = type_.split(":")
    module = ".".join([PACKAGES[package], *middle.split("/")[:-1]]) if package != "azure-native" else f"{PACKAGES[package]}.{middle}"
    if package == "kubernetes":
        group, version = middle.split("/")
        module = f"{PACKAGES[package]}.{group.split('.')[0]}.{version}"  # networking.k8s.io/v1 -> networking.v1
    return getattr(importlib.import_module(module), cls)


def _nest(segments: list[str], leaf: Any, top: bool) -> Any:
    """Build the argument for `segments`: dict keys in snake_case, lists for `[*]`, the leaf last.

    Keys inside a map-typed input (tags, labels, metadata) are never reached: paths stop at the map.
    """
    if not segments:
        return leaf
    head, rest = segments[0], segments[1:]
    if head.startswith("["):
        return [_nest(rest, leaf, False)]
    return {_snake(head): _nest(rest, leaf, False)}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif isinstance(value, list) and isinstance(out.get(key), list) and value and out[key] and isinstance(value[0], dict):
            out[key] = [_merge(out[key][0], value[0])] + out[key][1:]
        else:
            out[key] = value
    return out


def _reads() -> list[tuple[str, str]]:
    pairs = {pair for policy in POLICIES for pair in policy.reads}  # type: ignore[attr-defined]
    return sorted(pairs)


def _leaf(path: str) -> Any:
    last = path.rsplit(".", 1)[-1]
    if last in ("tags", "labels", "resourceLabels", "metadata"):
        return {"collaboration": "x"}
    return "x-value"


def _image_pull_precondition() -> None:
    from components.gcp.compute import ImagePullPrecondition, ImageRepository

    ImagePullPrecondition("subject", ImageRepository("p-project", "europe", "r"), "sa@p.iam.gserviceaccount.com")


def _collaboration() -> None:
    """The dev stack's collaboration, as the program builds it."""
    from pathlib import Path

    from components.collaboration import Collaboration, CollaborationArgs
    from stacks.config import parse, read_stack_file

    settings = parse(read_stack_file(Path(__file__).resolve().parents[2] / "Pulumi.dev.yaml"))
    Collaboration("subject", CollaborationArgs(settings.environment, settings.collaboration, options=settings.site_options()))


# ccp's own component types a rule reads: the real component, built as the program builds it.
COMPONENTS: dict[str, Any] = {
    "ccp:gcp:ImagePullPrecondition": _image_pull_precondition,
    "ccp:index:Collaboration": _collaboration,
}


@pytest.mark.parametrize("type_,path", _reads(), ids=lambda v: str(v))
def test_rule_property_is_a_real_sdk_input(type_: str, path: str) -> None:
    if type_ in COMPONENTS:
        recorded = run(COMPONENTS[type_]).one(type_)
        assert lookup(recorded.properties, path), f"{type_}: did not record `{path}`; recorded {recorded.properties}"
        return
    segments = _segments(path)
    args = _merge(REQUIRED.get(type_, {}), _nest(segments, _leaf(path), True))
    cls = _resource_class(type_)

    def program() -> None:
        cls("subject", **args)

    recording = run(program)
    recorded = recording.one(type_)
    assert lookup(recorded.properties, path), (
        f"{type_}: building with {args} did not record `{path}`; recorded {recorded.properties}"
    )


def test_every_rule_declares_what_it_reads() -> None:
    for policy in POLICIES:
        assert policy.reads, policy.name  # type: ignore[attr-defined]
