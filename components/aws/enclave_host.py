"""A Nitro Enclaves parent instance: launch template + instance, private, IMDSv2, encrypted, no SSH.

The enclave-enabled launch template is built by one helper (`enclave_launch_template`) that the EKS
node group uses too, so both kinds of host carry the same hardening:
- `enclaveOptions.enabled`, instance type validated (`instance_types.validate_enclave_instance_type`);
- the Nitro Enclaves allocator (`/etc/nitro_enclaves/allocator.yaml`: `memory_mib`, `cpu_count`)
  written by user data, which also installs the Nitro CLI and starts the allocator and vsock proxy
  (AWS Nitro Enclaves user guide, "Install the Nitro Enclaves CLI on Linux");
- the workload start (`workload_units`, plain hosts): systemd units that fetch the approved EIF from the
  region's image bucket (`enclave_image.EnclaveImageStore`), refuse it unless `nitro-cli describe-eif`
  reports the approved PCR0 baked into the user data, run it with `nitro-cli run-enclave` (never
  `--debug-mode`) with memory >= 4x the EIF, and start the parent relays: `vsock-proxy` to KMS (and S3)
  of the region, allow-listed to exactly those endpoints, and TCP 8443 -> the enclave's vsock 8443
  (`images/nitro/entrypoint.py`). The allocator's `memory_mib` is derived from the declared EIF size
  (`EnclaveHostArgs.eif_size_mib`, `enclave_memory_mib`), never a constant;
- IMDSv2 only (`httpTokens=required`), hop limit 1 for plain hosts, 2 for EKS nodes whose pods reach
  IMDS through one more hop;
- no public IP (explicitly false), no key pair, no inbound rule: access is SSM Session Manager;
- root and data volumes encrypted with a customer-managed key.
"""

from __future__ import annotations

import base64
import re
import textwrap
from dataclasses import dataclass, field
from typing import Final, Sequence

import pulumi
import pulumi_aws as aws

from components.aws.common import child
from components.aws.options import DEFAULT_EIF_SIZE_MIB
from components.aws.instance_types import architecture, validate_enclave_instance_type, vcpus
from components.aws.instance_types import memory_mib as instance_memory_mib

AMI_PARAMETERS: Final[dict[str, str]] = {
    "x86_64": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
    "arm64": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64",
}
ROOT_DEVICE: Final = "/dev/xvda"
DATA_DEVICE: Final = "/dev/sdf"
PARENT_VCPUS: Final = 2  # what the parent keeps (hyper-threaded: one full core)
# nitro-cli refuses an enclave whose memory is under 4x its EIF file
# (https://docs.aws.amazon.com/enclaves/latest/user/cmd-nitro-run-enclave.html, `--memory`).
EIF_MEMORY_FACTOR: Final = 4
# The EIF size ccp plans for when the stack declares none (`ccp-aws:enclaveImageSizeMib`):
# components.aws.options.DEFAULT_EIF_SIZE_MIB.
MEMORY_STEP_MIB: Final = 256  # allocator memory is rounded up to this (whole 2 MiB huge pages)
EIF_PATH: Final = "/opt/ccp/enclave.eif"
ENCLAVE_CID: Final = 16
ENCLAVE_PORT: Final = 8443  # images/nitro/entrypoint.py --vsock-port
KMS_VSOCK_PORT: Final = 8000
S3_VSOCK_PORT: Final = 8001
RUN_ENCLAVE_DOCS: Final = "https://docs.aws.amazon.com/enclaves/latest/user/cmd-nitro-run-enclave.html"


def enclave_memory_mib(eif_size_mib: int) -> int:
    """Enclave memory for an EIF of `eif_size_mib`: at least 4x the file, rounded up to 256 MiB."""
    if eif_size_mib <= 0:
        raise ValueError(f"enclave image size {eif_size_mib} MiB: must be positive")
    need = EIF_MEMORY_FACTOR * eif_size_mib
    return -(-need // MEMORY_STEP_MIB) * MEMORY_STEP_MIB


# What the parent instance keeps for its OS, the vsock proxies and the relay (ccp's choice: the
# allocator takes the rest at most).
PARENT_MEMORY_MIB: Final = 2048


class EnclaveMemoryError(ValueError):
    """The enclave memory does not fit the instance type (a problem of the image size, not the type)."""


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
    available = instance_memory_mib(instance_type) - PARENT_MEMORY_MIB
    if memory_mib > available:
        raise EnclaveMemoryError(
            f"enclave memory {memory_mib} MiB does not fit instance type {instance_type!r}: it has "
            f"{instance_memory_mib(instance_type)} MiB and the parent keeps {PARENT_MEMORY_MIB} MiB, so at most "
            f"{available} MiB can be reserved for the enclave (an image of at most "
            f"{available // EIF_MEMORY_FACTOR} MiB); use a smaller image or an instance type with more memory"
        )
    return cpus, memory_mib



_PCR = re.compile(r"^[0-9a-f]{96}$")
_SAFE = re.compile(r"^[A-Za-z0-9._/-]+$")


@dataclass(frozen=True)
class WorkloadLaunch:
    """What the parent's boot unit launches: the approved EIF, where it is, and its budget."""

    region: str
    bucket: str
    object_key: str
    pcr0: str  # the approved value (measurements.nitro): the EIF is refused unless describe-eif reports it
    cpu_count: int
    memory_mib: int
    # Which measurement is checked: PCR0 (the image) normally; PCR8 (the signing certificate) when the
    # stack approves signed images by certificate only.
    pcr: str = "PCR0"

    def __post_init__(self) -> None:
        if self.pcr not in ("PCR0", "PCR8"):
            raise ValueError(f"the parent checks PCR0 or PCR8 of the image, not {self.pcr!r}")
        if not _PCR.match(self.pcr0) or set(self.pcr0) == {"0"}:
            raise ValueError(
                f"approved {self.pcr} {self.pcr0!r} is not 96 lowercase hex (or is the all-zero debug value): "
                "the parent would launch an image nobody approved"
            )
        for label, value in (("region", self.region), ("bucket", self.bucket), ("object key", self.object_key)):
            if not _SAFE.match(value):
                raise ValueError(f"enclave image {label} {value!r} has characters ccp will not put in a shell script")


def launch_script(launch: WorkloadLaunch) -> str:
    """/opt/ccp/launch-enclave.sh: fetch, check PCR0 and size, run without debug mode."""
    return textwrap.dedent(
        f"""\
        #!/bin/bash
        # ccp: launch the approved enclave ({RUN_ENCLAVE_DOCS}). Never in debug mode: a debug
        # enclave reports all-zero PCRs, which no party key releases to.
        set -euo pipefail
        umask 077
        tmp=$(mktemp /opt/ccp/enclave.XXXXXX.eif)
        trap 'rm -f "$tmp"' EXIT
        aws s3api get-object --region {launch.region} --bucket {launch.bucket} --key {launch.object_key} "$tmp" >/dev/null
        approved={launch.pcr0}
        actual=$(nitro-cli describe-eif --eif-path "$tmp" | jq -r '.Measurements.{launch.pcr}')
        if [ "$actual" != "$approved" ]; then
          echo "ccp: refusing enclave image: {launch.pcr} $actual is not the approved $approved" >&2
          exit 1
        fi
        size_mib=$(( ($(stat -c %s "$tmp") + 1048575) / 1048576 ))
        if [ $(( {EIF_MEMORY_FACTOR} * size_mib )) -gt {launch.memory_mib} ]; then
          echo "ccp: enclave image of $size_mib MiB needs {EIF_MEMORY_FACTOR}x that; {launch.memory_mib} MiB reserved" >&2
          exit 1
        fi
        mv "$tmp" {EIF_PATH}
        trap - EXIT
        nitro-cli terminate-enclave --enclave-name ccp-workload >/dev/null 2>&1 || true
        nitro-cli run-enclave --enclave-name ccp-workload --eif-path {EIF_PATH} \\
          --cpu-count {launch.cpu_count} --memory {launch.memory_mib} --enclave-cid {ENCLAVE_CID}
        """
    )


def vsock_proxy_yaml(region: str) -> str:
    """The parent's vsock-proxy allowlist: the region's KMS and S3 endpoints, nothing else."""
    return (
        "allowlist:\n"
        f"- {{address: kms.{region}.amazonaws.com, port: 443}}\n"
        f"- {{address: s3.{region}.amazonaws.com, port: 443}}\n"
    )


def workload_units(launch: WorkloadLaunch) -> dict[str, str]:
    """systemd units of the parent (name -> unit text): the enclave launch and its relays."""
    proxy = "/usr/bin/vsock-proxy"
    config = "/etc/nitro_enclaves/ccp-vsock-proxy.yaml"
    return {
        "ccp-enclave.service": textwrap.dedent(
            """\
            [Unit]
            Description=ccp approved Nitro enclave (PCR0-checked, production mode)
            Requires=nitro-enclaves-allocator.service
            After=nitro-enclaves-allocator.service network-online.target
            Wants=network-online.target
            [Service]
            Type=oneshot
            RemainAfterExit=yes
            ExecStart=/opt/ccp/launch-enclave.sh
            Restart=on-failure
            RestartSec=30
            [Install]
            WantedBy=multi-user.target
            """
        ),
        "ccp-kms-proxy.service": _proxy_unit("KMS", KMS_VSOCK_PORT, f"kms.{launch.region}.amazonaws.com", proxy, config),
        "ccp-s3-proxy.service": _proxy_unit(
            "S3 (sealed data)", S3_VSOCK_PORT, f"s3.{launch.region}.amazonaws.com", proxy, config
        ),
        "ccp-enclave-relay.service": textwrap.dedent(
            f"""\
            [Unit]
            Description=ccp relay: TCP {ENCLAVE_PORT} -> enclave vsock {ENCLAVE_CID}:{ENCLAVE_PORT} (TLS ends in the enclave)
            After=ccp-enclave.service
            Requires=ccp-enclave.service
            [Service]
            ExecStart=/usr/bin/socat TCP-LISTEN:{ENCLAVE_PORT},fork,reuseaddr VSOCK-CONNECT:{ENCLAVE_CID}:{ENCLAVE_PORT}
            Restart=always
            [Install]
            WantedBy=multi-user.target
            """
        ),
    }


def _workload_section(launch: WorkloadLaunch) -> str:
    files = [
        f"mkdir -p /opt/ccp\ncat > /opt/ccp/launch-enclave.sh <<'LAUNCH'\n{launch_script(launch)}LAUNCH\n"
        "chmod 0700 /opt/ccp/launch-enclave.sh\n",
        f"cat > /etc/nitro_enclaves/ccp-vsock-proxy.yaml <<'PROXY'\n{vsock_proxy_yaml(launch.region)}PROXY\n",
    ]
    units = workload_units(launch)
    for unit, text in units.items():
        files.append(f"cat > /etc/systemd/system/{unit} <<'UNIT'\n{text}UNIT\n")
    return (
        "# ccp workload start: the approved enclave and its relays\n"
        + "".join(files)
        + "systemctl daemon-reload\n"
        + "systemctl disable --now nitro-enclaves-vsock-proxy.service || true\n"
        + "".join(f"systemctl enable --now --no-block {unit}\n" for unit in units)
    )


def bootstrap_script(
    cpu_count: int, memory_mib: int, *, mount_data_volume: bool, launch: WorkloadLaunch | None = None
) -> str:
    """Shell run at first boot: Nitro CLI, allocator, data volume; with `launch`, the workload start
    (the approved EIF and its relays); without it (EKS nodes, whose enclaves the device plugin starts
    for the pods), the packaged vsock proxy to KMS."""
    if launch is not None and (launch.cpu_count, launch.memory_mib) != (cpu_count, memory_mib):
        raise ValueError("the enclave launch must use exactly the allocator's cpu_count and memory_mib")
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
    packages = "aws-nitro-enclaves-cli aws-nitro-enclaves-cli-devel" + (" jq socat" if launch else "")
    return (
        "#!/bin/bash\nset -euo pipefail\n"
        f"dnf install -y {packages}\n"
        "cat > /etc/nitro_enclaves/allocator.yaml <<'ALLOCATOR'\n"
        f"{allocator_yaml(cpu_count, memory_mib)}"
        "ALLOCATOR\n"
        "systemctl enable --now nitro-enclaves-allocator.service\n"
        + (
            _workload_section(launch)
            if launch is not None
            else "# ccp-workload-start: kubernetes (the device plugin starts the pods' enclaves)\n"
            "systemctl enable --now nitro-enclaves-vsock-proxy.service\n"
        )
        + f"{mount}"
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
    # The approved image: the region's image bucket, the EIF object, and the PCR0 it must measure to.
    image_bucket: str
    image_object_key: str
    approved_pcr0: str
    approved_pcr: str = "PCR0"  # PCR8 when the stack approves by signing certificate only
    enclave_cpu_count: int | None = None
    # The EIF size the build reports (`ls -l enclave.eif`, rounded up to MiB): the allocator reserves
    # `enclave_memory_mib(eif_size_mib)` (>= 4x, what nitro-cli requires). An explicit
    # `enclave_memory_mib` must still be >= 4x the image.
    eif_size_mib: int = DEFAULT_EIF_SIZE_MIB
    enclave_memory_mib: int | None = None
    root_volume_gib: int = 30
    data_volume_gib: int = 100
    depends_on: list[pulumi.Resource] = field(default_factory=list)


class EnclaveHost(pulumi.ComponentResource):
    launch_template: aws.ec2.LaunchTemplate
    instance: aws.ec2.Instance

    def __init__(self, name: str, args: EnclaveHostArgs, opts: pulumi.ResourceOptions | None = None):
        # Validate before registering anything: a bad type is a config error, not a half-built host.
        needed = enclave_memory_mib(args.eif_size_mib)
        requested = args.enclave_memory_mib if args.enclave_memory_mib is not None else needed
        if requested < EIF_MEMORY_FACTOR * args.eif_size_mib:
            raise ValueError(
                f"enclave memory {requested} MiB is under {EIF_MEMORY_FACTOR}x the {args.eif_size_mib} MiB enclave "
                f"image: nitro-cli run-enclave refuses it; reserve at least {needed} MiB"
            )
        cpus, memory = enclave_resources(args.instance_type, args.enclave_cpu_count, requested)
        super().__init__("ccp:aws:EnclaveHost", name, None, opts)
        self.launch = WorkloadLaunch(
            region=args.region,
            bucket=args.image_bucket,
            object_key=args.image_object_key,
            pcr0=args.approved_pcr0,
            pcr=args.approved_pcr,
            cpu_count=cpus,
            memory_mib=memory,
        )
        self.user_data = bootstrap_script(cpus, memory, mount_data_volume=True, launch=self.launch)
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
            # Repeated from the launch template so a rule reading the instance sees the workload start.
            user_data_base64=b64(self.user_data),
            disable_api_termination=False,
            tags=args.tags,
            volume_tags=args.tags,
            opts=child(self, depends_on=args.depends_on),
        )
        self.register_outputs({"instanceId": self.instance.id, "launchTemplateId": self.launch_template.id})


def _proxy_unit(what: str, port: int, host: str, proxy: str, config: str) -> str:
    """A systemd unit running vsock-proxy from the enclave's `port` to `host:443` (the allowlist in `config`
    admits exactly the endpoints these units name)."""
    return textwrap.dedent(
        f"""\
        [Unit]
        Description=ccp vsock proxy: enclave -> {what} ({host})
        After=network-online.target
        [Service]
        ExecStart={proxy} {port} {host} 443 --config {config}
        Restart=always
        [Install]
        WantedBy=multi-user.target
        """
    )
