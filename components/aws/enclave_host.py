"""A Nitro Enclaves parent instance: launch template + instance, private, IMDSv2, encrypted, no SSH.

The enclave-enabled launch template is built by one helper (`enclave_launch_template`) that the EKS
node group uses too, so both kinds of host carry the same hardening:
- `enclaveOptions.enabled`, instance type validated (`instance_types.validate_enclave_instance_type`);
- the Nitro Enclaves allocator (`/etc/nitro_enclaves/allocator.yaml`: `memory_mib`, `cpu_count`)
  written by user data, which also installs the Nitro CLI and starts the allocator and vsock proxy
  (AWS Nitro Enclaves user guide, "Install the Nitro Enclaves CLI on Linux");
- IMDSv2 only (`httpTokens=required`), hop limit 1 for plain hosts, 2 for EKS nodes whose pods reach
  IMDS through one more hop;
- no public IP (explicitly false), no key pair, no inbound rule: access is SSM Session Manager;
- root and data volumes encrypted with a customer-managed key.
"""

from __future__ import annotations

import base64
import textwrap
from dataclasses import dataclass, field
from typing import Final, Sequence

import pulumi
import pulumi_aws as aws

from components.aws.common import child
from components.aws.instance_types import architecture, validate_enclave_instance_type, vcpus

AMI_PARAMETERS: Final[dict[str, str]] = {
    "x86_64": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
    "arm64": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64",
}
ROOT_DEVICE: Final = "/dev/xvda"
DATA_DEVICE: Final = "/dev/sdf"
PARENT_VCPUS: Final = 2  # what the parent keeps (hyper-threaded: one full core)


def allocator_yaml(cpu_count: int, memory_mib: int) -> str:
    """The Nitro Enclaves allocator configuration (reserved at boot for enclaves)."""
    return f"---\nmemory_mib: {memory_mib}\ncpu_count: {cpu_count}\n"


def enclave_resources(instance_type: str, cpu_count: int | None, memory_mib: int) -> tuple[int, int]:
    """Validated (cpu_count, memory_mib) for the allocator on this instance type."""
    validate_enclave_instance_type(instance_type)
    total = vcpus(instance_type)
    cpus = cpu_count if cpu_count is not None else total - PARENT_VCPUS
    if cpus < 2 or cpus > total - PARENT_VCPUS:
        raise ValueError(
            f"instance type {instance_type!r} has {total} vCPUs: the enclave may take 2 to "
            f"{total - PARENT_VCPUS} of them (the parent keeps {PARENT_VCPUS}), not {cpus}"
        )
    if architecture(instance_type) == "x86_64" and cpus % 2:
        raise ValueError(
            f"enclave cpu_count {cpus} on {instance_type!r}: enclaves take whole cores, so on "
            "hyper-threaded x86 instances the count must be even"
        )
    if memory_mib < 64:
        raise ValueError(f"enclave memory {memory_mib} MiB is too small")
    return cpus, memory_mib


def bootstrap_script(cpu_count: int, memory_mib: int, *, mount_data_volume: bool) -> str:
    """Shell run at first boot: Nitro CLI, allocator, vsock proxy (to KMS), data volume."""
    mount = (
        textwrap.dedent(
            f"""\
            # Encrypted data volume (EBS, CMK): created by the launch template, formatted once.
            if ! blkid {DATA_DEVICE}; then mkfs -t xfs {DATA_DEVICE}; fi
            mkdir -p /data
            echo '{DATA_DEVICE} /data xfs defaults,nofail 0 2' >> /etc/fstab
            mount -a
            """
        )
        if mount_data_volume
        else ""
    )
    return (
        "#!/bin/bash\nset -euo pipefail\n"
        "dnf install -y aws-nitro-enclaves-cli aws-nitro-enclaves-cli-devel\n"
        "cat > /etc/nitro_enclaves/allocator.yaml <<'ALLOCATOR'\n"
        f"{allocator_yaml(cpu_count, memory_mib)}"
        "ALLOCATOR\n"
        "systemctl enable --now nitro-enclaves-allocator.service\n"
        "systemctl enable --now nitro-enclaves-vsock-proxy.service\n"
        f"{mount}"
    )


def mime_user_data(script: str) -> str:
    """EKS managed node groups merge their bootstrap with launch-template user data in MIME form."""
    boundary = "==CCPBOUNDARY=="
    return (
        f'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="{boundary}"\n\n'
        f"--{boundary}\nContent-Type: text/x-shellscript; charset=\"us-ascii\"\n\n{script}\n--{boundary}--\n"
    )


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def metadata_options(hop_limit: int) -> dict[str, object]:
    if not 1 <= hop_limit <= 2:
        raise ValueError(f"IMDS hop limit {hop_limit}: must be 1 or 2")
    return {
        "http_endpoint": "enabled",
        "http_tokens": "required",
        "http_put_response_hop_limit": hop_limit,
        "instance_metadata_tags": "disabled",
    }


@dataclass(frozen=True)
class LaunchTemplateSpec:
    region: str
    instance_type: str
    ebs_kms_key_arn: pulumi.Input[str]
    user_data: str
    tags: dict[str, str]
    iam_instance_profile_name: pulumi.Input[str] | None = None
    security_group_ids: Sequence[pulumi.Input[str]] = ()
    network_interface_security_groups: Sequence[pulumi.Input[str]] | None = None
    image_id: str | None = None
    hop_limit: int = 1
    root_volume_gib: int = 30
    data_volume_gib: int | None = 100


def ebs(kms_key_arn: pulumi.Input[str], size: int) -> aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs:
    return aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
        encrypted="true",
        kms_key_id=kms_key_arn,
        volume_size=size,
        volume_type="gp3",
        delete_on_termination="true",
    )


def enclave_launch_template(
    name: str, spec: LaunchTemplateSpec, parent: pulumi.Resource
) -> aws.ec2.LaunchTemplate:
    """The one enclave-enabled launch template shape (plain hosts and EKS nodes)."""
    validate_enclave_instance_type(spec.instance_type)
    mappings = [
        aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
            device_name=ROOT_DEVICE, ebs=ebs(spec.ebs_kms_key_arn, spec.root_volume_gib)
        )
    ]
    if spec.data_volume_gib:
        mappings.append(
            aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name=DATA_DEVICE, ebs=ebs(spec.ebs_kms_key_arn, spec.data_volume_gib)
            )
        )
    interfaces = None
    if spec.network_interface_security_groups is not None:
        interfaces = [
            aws.ec2.LaunchTemplateNetworkInterfaceArgs(
                device_index=0,
                associate_public_ip_address="false",
                delete_on_termination="true",
                security_groups=list(spec.network_interface_security_groups),
            )
        ]
    return aws.ec2.LaunchTemplate(
        name,
        region=spec.region,
        description="ccp Nitro Enclaves parent: IMDSv2, no public IP, encrypted volumes, no key pair",
        image_id=spec.image_id,
        instance_type=spec.instance_type,
        enclave_options=aws.ec2.LaunchTemplateEnclaveOptionsArgs(enabled=True),
        metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(**metadata_options(spec.hop_limit)),
        iam_instance_profile=(
            aws.ec2.LaunchTemplateIamInstanceProfileArgs(name=spec.iam_instance_profile_name)
            if spec.iam_instance_profile_name is not None
            else None
        ),
        vpc_security_group_ids=list(spec.security_group_ids) or None,
        network_interfaces=interfaces,
        block_device_mappings=mappings,
        ebs_optimized="true",
        monitoring=aws.ec2.LaunchTemplateMonitoringArgs(enabled=True),
        user_data=b64(spec.user_data),
        update_default_version=True,
        tag_specifications=[
            aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=spec.tags)
            for kind in ("instance", "volume", "network-interface")
        ],
        tags=spec.tags,
        opts=child(parent),
    )


@dataclass(frozen=True)
class EnclaveHostArgs:
    region: str
    instance_type: str
    subnet_id: pulumi.Input[str]
    security_group_ids: list[pulumi.Input[str]]
    instance_profile_name: pulumi.Input[str]
    ebs_kms_key_arn: pulumi.Input[str]
    tags: dict[str, str]
    enclave_cpu_count: int | None = None
    enclave_memory_mib: int = 4096
    root_volume_gib: int = 30
    data_volume_gib: int = 100
    depends_on: list[pulumi.Resource] = field(default_factory=list)


class EnclaveHost(pulumi.ComponentResource):
    launch_template: aws.ec2.LaunchTemplate
    instance: aws.ec2.Instance

    def __init__(self, name: str, args: EnclaveHostArgs, opts: pulumi.ResourceOptions | None = None):
        # Validate before registering anything: a bad type is a config error, not a half-built host.
        cpus, memory = enclave_resources(args.instance_type, args.enclave_cpu_count, args.enclave_memory_mib)
        super().__init__("ccp:aws:EnclaveHost", name, None, opts)
        self.user_data = bootstrap_script(cpus, memory, mount_data_volume=True)
        self.launch_template = enclave_launch_template(
            name,
            LaunchTemplateSpec(
                region=args.region,
                instance_type=args.instance_type,
                ebs_kms_key_arn=args.ebs_kms_key_arn,
                user_data=self.user_data,
                tags=args.tags,
                iam_instance_profile_name=args.instance_profile_name,
                security_group_ids=args.security_group_ids,
                image_id=f"resolve:ssm:{AMI_PARAMETERS[architecture(args.instance_type)]}",
                hop_limit=1,
                root_volume_gib=args.root_volume_gib,
                data_volume_gib=args.data_volume_gib,
            ),
            self,
        )
        # The instance repeats the security settings explicitly, so a rule reading the instance
        # alone sees them (the launch template is not merged into instance inputs).
        self.instance = aws.ec2.Instance(
            name,
            region=args.region,
            launch_template=aws.ec2.InstanceLaunchTemplateArgs(
                id=self.launch_template.id, version="$Latest"
            ),
            instance_type=args.instance_type,
            subnet_id=args.subnet_id,
            vpc_security_group_ids=args.security_group_ids,
            associate_public_ip_address=False,
            iam_instance_profile=args.instance_profile_name,
            enclave_options=aws.ec2.InstanceEnclaveOptionsArgs(enabled=True),
            metadata_options=aws.ec2.InstanceMetadataOptionsArgs(**metadata_options(1)),
            root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
                encrypted=True,
                kms_key_id=args.ebs_kms_key_arn,
                volume_size=args.root_volume_gib,
                volume_type="gp3",
                delete_on_termination=True,
            ),
            ebs_block_devices=[
                aws.ec2.InstanceEbsBlockDeviceArgs(
                    device_name=DATA_DEVICE,
                    encrypted=True,
                    kms_key_id=args.ebs_kms_key_arn,
                    volume_size=args.data_volume_gib,
                    volume_type="gp3",
                    delete_on_termination=True,
                )
            ],
            ebs_optimized=True,
            monitoring=True,
            disable_api_termination=False,
            tags=args.tags,
            volume_tags=args.tags,
            opts=child(self, depends_on=args.depends_on),
        )
        self.register_outputs({"instanceId": self.instance.id, "launchTemplateId": self.launch_template.id})
