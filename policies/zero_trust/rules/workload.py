"""Workload start: every TEE host declares what it boots, in production mode (issue 14, item 3).

A TEE host that starts nothing is not harmless: after `pulumi up` an operator has to log in and start
"something", which is exactly the path the design closes. Each host type says what it boots:
- AWS instance / launch template with Nitro Enclaves enabled: the user data runs
  `nitro-cli run-enclave` (never with `--debug-mode`: a debug enclave reports all-zero PCRs). An EKS
  node launch template instead declares `ccp-workload-start: kubernetes` (its enclaves are started for
  the pods by the Nitro Enclaves device plugin; the pod spec is judged by the Kubernetes rules);
- Azure VM: `osProfile.customData` (cloud-init starting the runtime); confidential container group:
  a `command` on every container;
- GCP Confidential Space VM (boot image from `confidential-space-images`): `tee-image-reference`
  metadata (the launcher's workload); the image family and digest are judged by the GCP rules.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final, Iterable

from pulumi_policy import Severity

from components.collaboration import COLLABORATION_TYPE as COLLABORATION
from components.model import PERSONAL_DATA
from policies.zero_trust.rules import aws, azure, gcp
from policies.zero_trust.rules._base import Subject, resource_rule, truthy

RUN_ENCLAVE: Final = "nitro-cli run-enclave"
DEBUG_MODE: Final = "--debug-mode"
KUBERNETES_START: Final = "ccp-workload-start: kubernetes"
CONFIDENTIAL_SPACE_PROJECT: Final = "confidential-space-images"


def decoded(value: Any) -> str:
    """User data / custom data as text: base64 when it decodes to UTF-8, else the value itself."""
    text = str(value)
    try:
        return base64.b64decode(text, validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return text


def _aws(subject: Subject) -> Iterable[str]:
    if not truthy(subject.get("enclaveOptions.enabled")):
        return  # not an enclave host (aws-ec2-instance-enable-enclave judges that)
    if subject.type == aws.INSTANCE and subject.has("userData"):
        script = decoded(subject.need("userData"))
    else:
        script = decoded(subject.need("userDataBase64" if subject.type == aws.INSTANCE else "userData"))
    kubernetes = subject.type == aws.LAUNCH_TEMPLATE and KUBERNETES_START in script
    if RUN_ENCLAVE not in script and not kubernetes:
        yield (
            f"{subject.name}: Nitro Enclaves are enabled but the userData never runs `{RUN_ENCLAVE}`: "
            "the host boots no approved enclave"
        )
    commands = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    if DEBUG_MODE in commands:
        yield f"{subject.name}: the userData runs an enclave with {DEBUG_MODE} (all-zero PCRs, console open)"


def _azure(subject: Subject) -> Iterable[str]:
    if subject.type == azure.VM:
        if not str(subject.need("osProfile.customData")).strip():
            yield f"{subject.name}: osProfile.customData is empty: the VM starts no workload at boot"
        return
    containers = subject.need_all("containers[*]")
    for i, container in enumerate(containers):
        if not container.get("command"):
            subject.need(f"containers[{i}].command")
            yield f"{subject.name}: containers[{i}].command is empty: the group declares no workload start"


def _gcp(subject: Subject) -> Iterable[str]:
    path = "bootDisk.initializeParams.image" if subject.type == gcp.INSTANCE else "disks[*].sourceImage"
    images = [str(i) for i in subject.all(path)]
    if not any(CONFIDENTIAL_SPACE_PROJECT in image for image in images):
        return  # not a Confidential Space VM
    subject.need("metadata")
    if not subject.get("metadata.tee-image-reference"):
        yield (
            f"{subject.name}: Confidential Space VM without metadata tee-image-reference: the launcher "
            "has no workload to run"
        )


@resource_rule(
    name="stack-compute-host-enforce-workload-start",
    description="Every TEE host declares the workload it starts at boot, in production mode.",
    types=(aws.INSTANCE, aws.LAUNCH_TEMPLATE, azure.VM, azure.CONTAINER_GROUP, gcp.INSTANCE, gcp.TEMPLATE),
    reads={
        aws.INSTANCE: ("enclaveOptions.enabled", "userData", "userDataBase64"),
        aws.LAUNCH_TEMPLATE: ("enclaveOptions.enabled", "userData"),
        azure.VM: ("osProfile.customData",),
        azure.CONTAINER_GROUP: ("containers[*].command",),
        gcp.INSTANCE: ("bootDisk.initializeParams.image", "metadata"),
        gcp.TEMPLATE: ("disks[*].sourceImage", "metadata"),
    },
    severity=Severity.HIGH,
    controls=("nist:CM-7", "nist:SI-7", "nist:AC-6", "hipaa:164.312(c)(1)", "gdpr:art32"),
    remediation=(
        "Declare the start: AWS user data that runs `nitro-cli run-enclave` on the PCR0-checked EIF without "
        "--debug-mode (components/aws/enclave_host.py); Azure cloud-init custom data / a container command; "
        "GCP tee-image-reference metadata on the Confidential Space VM."
    ),
    url="https://docs.aws.amazon.com/enclaves/latest/user/cmd-nitro-run-enclave.html",
    confidential=True,
)
def stack_compute_host_enforce_workload_start(subject: Subject) -> Iterable[str]:
    if subject.type in (aws.INSTANCE, aws.LAUNCH_TEMPLATE):
        yield from _aws(subject)
    elif subject.type in (azure.VM, azure.CONTAINER_GROUP):
        yield from _azure(subject)
    else:
        yield from _gcp(subject)


@resource_rule(
    name="stack-collaboration-output-enforce-dp",
    description=(
        "A collaboration over personal data (PHI, PII, PCI) releases only differentially private outputs: every "
        "declared output is charged to the collaboration's privacy budget."
    ),
    types=(COLLABORATION,),
    reads=("dataClassifications", "outputs", "privacy.outputs"),
    severity=Severity.HIGH,
    controls=("nist:SI-19", "gdpr:art25", "gdpr:art89"),
    remediation=(
        "Declare ccp:collaboration.privacy {epsilon, delta, outputs} naming every output computed on the parties' "
        "data; the runtime then charges each release to the budget and refuses one that would exceed it "
        "(enclave_runtime/ml/dp.py). An output that cannot be DP does not belong in a prod collaboration over "
        "personal data. Advisory outside prod."
    ),
    url="https://doi.org/10.6028/NIST.SP.800-226",
    confidential=True,
)
def stack_collaboration_output_enforce_dp(subject: Subject) -> Iterable[str]:
    personal = sorted(set(subject.need_all("dataClassifications[*]")) & set(PERSONAL_DATA))
    if not personal:
        return
    charged = set(subject.all("privacy.outputs[*]"))
    for output in subject.need("outputs"):  # absent is not "releases nothing": fail closed
        if output not in charged:
            yield (
                f"{subject.name}: output {output!r} is released from {'/'.join(personal)} data but no privacy budget "
                "charges it (not in privacy.outputs): its releases are not differentially private"
            )


POLICIES = [stack_compute_host_enforce_workload_start, stack_collaboration_output_enforce_dp]
