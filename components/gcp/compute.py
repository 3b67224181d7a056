"""Confidential VMs and Confidential Space workloads on Compute Engine.

Both share one hardened shape (`VmShape`): the confidential type, on-host-maintenance TERMINATE
(confidential VMs cannot live-migrate in general), Shielded VM secure boot + vTPM + integrity
monitoring, no access configs (no external IP), a boot disk encrypted with a CMEK, a dedicated
service account (never the Compute Engine default one), OS Login, project SSH keys blocked and the
serial port off. Confidential Space adds the `confidential-space` image family of project
`confidential-space-images` and the `tee-*` launcher metadata
(https://cloud.google.com/confidential-computing/confidential-space/docs/deploy-workloads).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final, Sequence

import pulumi
import pulumi_gcp as gcp

from components.attestation.gcp_condition import check_digest
from components.gcp.common import (
    CLOUD_PLATFORM_SCOPE,
    HARDENED_METADATA,
    bounded,
    service_account_email,
    service_account_id,
)
from components.gcp.machines import MIN_CPU_PLATFORM, validate_machine_type
from components.gcp.options import RestartPolicy

CONFIDENTIAL_SPACE_PROJECT: Final = "confidential-space-images"
CONFIDENTIAL_SPACE_FAMILY: Final = "confidential-space"
CONFIDENTIAL_SPACE_DEBUG_FAMILY: Final = "confidential-space-debug"
DEFAULT_CVM_IMAGE: Final = "projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64"
WORKLOAD_USER: Final = "roles/confidentialcomputing.workloadUser"
LOG_WRITER: Final = "roles/logging.logWriter"
METRIC_WRITER: Final = "roles/monitoring.metricWriter"
# The same on a single VM and on a group's template, so neither can be the weaker host: confidential
# VMs cannot live-migrate (they stop for maintenance), and every boot is measured and verified.
CONFIDENTIAL_SCHEDULING: Final[dict[str, Any]] = {
    "on_host_maintenance": "TERMINATE",
    "automatic_restart": True,
    "preemptible": False,
}
SHIELDED_BOOT: Final[dict[str, bool]] = {
    "enable_secure_boot": True,
    "enable_vtpm": True,
    "enable_integrity_monitoring": True,
}

_PINNED_IMAGE = re.compile(r"^[a-z0-9.-]+(:[0-9]+)?/[A-Za-z0-9._/-]+@(sha256:[0-9a-f]{64})$")


ARTIFACT_REGISTRY_READER: Final = "roles/artifactregistry.reader"
_ARTIFACT_REGISTRY = re.compile(
    r"^(?P<location>[a-z0-9-]+)-docker\.pkg\.dev/(?P<project>[a-z][a-z0-9-]{4,28}[a-z0-9])/"
    r"(?P<repository>[a-z0-9][a-z0-9._-]*)/[^@\s]+@sha256:[0-9a-f]{64}$"
)


@dataclass(frozen=True)
class ImageRepository:
    """The Artifact Registry repository a workload image is pulled from."""

    project: str
    location: str
    repository: str

    def reader_binding(self, service_account: str) -> dict[str, str]:
        """The one grant the launcher needs: `roles/artifactregistry.reader` on this repository for the
        workload's service account (as `RepositoryIamMember` arguments; declared or left as a precondition)."""
        return {"project": self.project, "location": self.location, "repository": self.repository,
                "role": ARTIFACT_REGISTRY_READER, "member": f"serviceAccount:{service_account}"}


def image_repository(image: str) -> ImageRepository | None:
    """The Artifact Registry repository of `<location>-docker.pkg.dev/<project>/<repo>/<image>@sha256:...`,
    or None for an image elsewhere (a public registry needs no grant; anything else is the operator's
    precondition, reported by the site)."""
    match = _ARTIFACT_REGISTRY.match(image)
    if match is None:
        return None
    return ImageRepository(match["project"], match["location"], match["repository"])


class ImagePullGrant(pulumi.ComponentResource):
    """`roles/artifactregistry.reader` for the workload service account on the image's repository only
    (not the project): the Confidential Space launcher pulls the container as that account
    (https://cloud.google.com/confidential-computing/confidential-space/docs/create-your-first-confidential-space-environment)."""

    def __init__(
        self,
        name: str,
        repository: ImageRepository,
        service_account: str,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("ccp:gcp:ImagePullGrant", name, None, opts)
        self.member = gcp.artifactregistry.RepositoryIamMember(
            name, **repository.reader_binding(service_account), opts=pulumi.ResourceOptions(parent=self)
        )
        self.register_outputs({"repository": repository.repository})


IMAGE_PULL_PRECONDITION: Final = "ccp:gcp:ImagePullPrecondition"


class ImagePullPrecondition(pulumi.ComponentResource):
    """The image reader grant this stack cannot declare (`ccp-gcp:imageRepositoryGrant: precondition`): the
    repository lives in a project the stack does not administer, so its owner makes the grant. Declared,
    with no cloud effect, so that the grant the launcher depends on is part of the reviewed stack: its
    inputs name the exact binding (and the owner's command), and `gcp-artifactregistry-enforce-image-pull`
    accepts it in place of a declared `RepositoryIamMember`."""

    def __init__(
        self,
        name: str,
        repository: ImageRepository,
        service_account: str,
        opts: pulumi.ResourceOptions | None = None,
    ):
        binding = repository.reader_binding(service_account)
        command = (
            f"gcloud artifacts repositories add-iam-policy-binding {repository.repository} "
            f"--project={repository.project} --location={repository.location} --member={binding['member']} "
            f"--role={binding['role']}"
        )
        super().__init__(IMAGE_PULL_PRECONDITION, name, {**binding, "command": command}, opts)
        self.register_outputs({"command": command})


def confidential_space_image(debug: bool = False) -> str:
    family = CONFIDENTIAL_SPACE_DEBUG_FAMILY if debug else CONFIDENTIAL_SPACE_FAMILY
    return f"projects/{CONFIDENTIAL_SPACE_PROJECT}/global/images/family/{family}"


def pinned_image(image: str | None, approved_digests: Sequence[str]) -> str:
    """The workload image reference, which must be pinned by an approved digest (tags can move)."""
    if not image or "@sha256:" not in image:
        raise ValueError(
            f"workload.image {image!r} is not pinned by digest: use "
            "'<registry>/<repository>@sha256:<64 hex>' so the VM runs exactly the attested image"
        )
    match = _PINNED_IMAGE.fullmatch(image)
    if match is None:
        raise ValueError(
            f"workload.image {image!r} is not '<registry>/<repository>@sha256:<64 lowercase hex>'"
        )
    digest = check_digest(match.group(2))
    if digest not in approved_digests:
        raise ValueError(
            f"workload.image digest {digest} is not in measurements.confidentialSpace.imageDigests "
            f"{list(approved_digests)}: the workload could never obtain a key; approve it or fix the image"
        )
    return image


@dataclass(frozen=True)
class WorkloadServiceAccountArgs:
    project: str
    account_id: str
    display_name: str
    roles: list[str]


class WorkloadServiceAccount(pulumi.ComponentResource):
    """A dedicated service account holding only the named project roles."""

    def __init__(
        self, name: str, args: WorkloadServiceAccountArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("ccp:gcp:WorkloadServiceAccount", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.email = service_account_email(args.account_id, args.project)
        self.account = gcp.serviceaccount.Account(
            name,
            account_id=args.account_id,
            display_name=args.display_name,
            project=args.project,
            opts=child,
        )
        after = pulumi.ResourceOptions(parent=self, depends_on=[self.account])
        self.roles = [
            gcp.projects.IAMMember(
                f"{name}-{role.rsplit('.', 1)[-1].lower()}",
                project=args.project,
                role=role,
                member=f"serviceAccount:{self.email}",
                opts=after,
            )
            for role in args.roles
        ]
        self.register_outputs({"email": self.email})


@dataclass(frozen=True)
class VmShape:
    """What every ccp VM is, whether declared as an instance or as a template."""

    project: str
    machine_type: str
    confidential_type: str
    image: str
    subnetwork: pulumi.Input[str]
    service_account: str
    disk_key: pulumi.Input[str]
    labels: dict[str, str]
    metadata: dict[str, str] = field(default_factory=dict)
    disk_size_gb: int = 20

    def __post_init__(self) -> None:
        validate_machine_type(self.machine_type, self.confidential_type)

    @property
    def all_metadata(self) -> dict[str, str]:
        return {**self.metadata, **HARDENED_METADATA}

    @property
    def min_cpu_platform(self) -> str | None:
        return MIN_CPU_PLATFORM.get(self.confidential_type)


def _instance(
    name: str, shape: VmShape, zone: str, prod: bool, opts: pulumi.ResourceOptions
) -> gcp.compute.Instance:
    return gcp.compute.Instance(
        name,
        name=bounded(name, 63),
        project=shape.project,
        zone=zone,
        machine_type=shape.machine_type,
        min_cpu_platform=shape.min_cpu_platform,
        confidential_instance_config=gcp.compute.InstanceConfidentialInstanceConfigArgs(
            confidential_instance_type=shape.confidential_type,
        ),
        scheduling=gcp.compute.InstanceSchedulingArgs(**CONFIDENTIAL_SCHEDULING),
        shielded_instance_config=gcp.compute.InstanceShieldedInstanceConfigArgs(**SHIELDED_BOOT),
        boot_disk=gcp.compute.InstanceBootDiskArgs(
            auto_delete=True,
            kms_key_self_link=shape.disk_key,
            initialize_params=gcp.compute.InstanceBootDiskInitializeParamsArgs(
                image=shape.image, size=shape.disk_size_gb, type="pd-balanced", labels=shape.labels
            ),
        ),
        network_interfaces=[gcp.compute.InstanceNetworkInterfaceArgs(subnetwork=shape.subnetwork)],
        service_account=gcp.compute.InstanceServiceAccountArgs(
            email=shape.service_account, scopes=[CLOUD_PLATFORM_SCOPE]
        ),
        metadata=shape.all_metadata,
        labels=shape.labels,
        can_ip_forward=False,
        deletion_protection=prod,
        allow_stopping_for_update=True,
        opts=opts,
    )


def _template(
    name: str, shape: VmShape, region: str, opts: pulumi.ResourceOptions
) -> gcp.compute.InstanceTemplate:
    return gcp.compute.InstanceTemplate(
        name,
        name_prefix=bounded(name, 37) + "-",
        project=shape.project,
        region=region,
        machine_type=shape.machine_type,
        min_cpu_platform=shape.min_cpu_platform,
        confidential_instance_config=gcp.compute.InstanceTemplateConfidentialInstanceConfigArgs(
            confidential_instance_type=shape.confidential_type,
        ),
        scheduling=gcp.compute.InstanceTemplateSchedulingArgs(**CONFIDENTIAL_SCHEDULING),
        shielded_instance_config=gcp.compute.InstanceTemplateShieldedInstanceConfigArgs(**SHIELDED_BOOT),
        disks=[
            gcp.compute.InstanceTemplateDiskArgs(
                boot=True,
                auto_delete=True,
                source_image=shape.image,
                disk_size_gb=shape.disk_size_gb,
                disk_type="pd-balanced",
                disk_encryption_key=gcp.compute.InstanceTemplateDiskDiskEncryptionKeyArgs(
                    kms_key_self_link=shape.disk_key
                ),
                labels=shape.labels,
            )
        ],
        network_interfaces=[gcp.compute.InstanceTemplateNetworkInterfaceArgs(subnetwork=shape.subnetwork)],
        service_account=gcp.compute.InstanceTemplateServiceAccountArgs(
            email=shape.service_account, scopes=[CLOUD_PLATFORM_SCOPE]
        ),
        metadata=shape.all_metadata,
        labels=shape.labels,
        can_ip_forward=False,
        opts=opts,
    )


@dataclass(frozen=True)
class ConfidentialVmArgs:
    project: str
    region: str
    zone: str
    machine_type: str
    confidential_type: str  # SEV, SEV_SNP or TDX
    subnetwork: pulumi.Input[str]
    disk_key: pulumi.Input[str]
    labels: dict[str, str]
    prod: bool
    image: str = DEFAULT_CVM_IMAGE
    after: Sequence[pulumi.Resource] = ()  # e.g. the disk key and its service-agent binding


class ConfidentialVm(pulumi.ComponentResource):
    """A Confidential VM (SEV, SEV-SNP or TDX) with its own least-privilege service account."""

    instance: gcp.compute.Instance

    def __init__(self, name: str, args: ConfidentialVmArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:gcp:ConfidentialVm", name, None, opts)
        validate_machine_type(args.machine_type, args.confidential_type)
        child = pulumi.ResourceOptions(parent=self)
        self.identity = WorkloadServiceAccount(
            f"{name}-sa",
            WorkloadServiceAccountArgs(
                project=args.project,
                account_id=service_account_id("cvm", name),
                display_name=f"ccp confidential VM {name}",
                roles=[LOG_WRITER, METRIC_WRITER],
            ),
            opts=child,
        )
        shape = VmShape(
            project=args.project,
            machine_type=args.machine_type,
            confidential_type=args.confidential_type,
            image=args.image,
            subnetwork=args.subnetwork,
            service_account=self.identity.email,
            disk_key=args.disk_key,
            labels=args.labels,
        )
        self.instance = _instance(
            name,
            shape,
            args.zone,
            args.prod,
            pulumi.ResourceOptions(parent=self, depends_on=[self.identity, *args.after]),
        )
        self.register_outputs({"instance": self.instance.self_link, "serviceAccount": self.identity.email})


@dataclass(frozen=True)
class ConfidentialSpaceWorkloadArgs:
    project: str
    region: str
    zone: str
    machine_type: str
    confidential_type: str  # SEV or TDX (Confidential Space)
    image_reference: str  # pinned by an approved digest (see `pinned_image`)
    service_account: str  # the workload service account named in the attribute condition
    subnetwork: pulumi.Input[str]
    disk_key: pulumi.Input[str]
    labels: dict[str, str]
    prod: bool
    restart_policy: RestartPolicy = "Never"
    debug_image: bool = False  # dev only: boots confidential-space-debug (never gets prod keys)
    managed_group: bool = False  # template + regional managed instance group instead of one instance
    after: Sequence[pulumi.Resource] = ()  # e.g. the service account and the disk key binding


class ConfidentialSpaceWorkload(pulumi.ComponentResource):
    """A Confidential Space VM (or managed group) running the approved image by digest."""

    instance: gcp.compute.Instance | None
    template: gcp.compute.InstanceTemplate | None
    group: gcp.compute.RegionInstanceGroupManager | None

    def __init__(
        self,
        name: str,
        args: ConfidentialSpaceWorkloadArgs,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("ccp:gcp:ConfidentialSpaceWorkload", name, None, opts)
        if args.confidential_type not in ("SEV", "TDX"):
            raise ValueError(f"Confidential Space runs on SEV or TDX, not {args.confidential_type!r}")
        if args.debug_image and args.prod:
            raise ValueError(
                "the confidential-space-debug image is refused in prod: debug images let the operator "
                "into the VM and never receive production keys"
            )
        if "@sha256:" not in args.image_reference:
            raise ValueError(f"tee-image-reference {args.image_reference!r} is not pinned by digest")
        shape = VmShape(
            project=args.project,
            machine_type=args.machine_type,
            confidential_type=args.confidential_type,
            image=confidential_space_image(args.debug_image),
            subnetwork=args.subnetwork,
            service_account=args.service_account,
            disk_key=args.disk_key,
            labels=args.labels,
            metadata={
                "tee-image-reference": args.image_reference,
                "tee-restart-policy": args.restart_policy,
                "tee-container-log-redirect": "false" if args.prod else "true",
            },
        )
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.after))
        self.instance = self.template = self.group = None
        if args.managed_group:
            self.template = _template(name, shape, args.region, child)
            self.group = gcp.compute.RegionInstanceGroupManager(
                f"{name}-group",
                name=bounded(f"{name}-group", 63),
                project=args.project,
                region=args.region,
                base_instance_name=bounded(name, 50),
                versions=[
                    gcp.compute.RegionInstanceGroupManagerVersionArgs(
                        name="approved", instance_template=self.template.self_link_unique
                    )
                ],
                target_size=1,
                opts=child,
            )
            self.register_outputs({"group": self.group.self_link})
        else:
            self.instance = _instance(name, shape, args.zone, args.prod, child)
            self.register_outputs({"instance": self.instance.self_link})
