"""The default Azure workload host: an Azure Container Instances confidential container group.

Why not a confidential VM: an Azure CVM's attestation pins Microsoft's paravisor and UEFI firmware
(`x-ms-isolation-tee.x-ms-sevsnpvm-launchmeasurement`), not the guest or the workload
(https://learn.microsoft.com/azure/confidential-computing/guest-attestation-confidential-virtual-machines-design).
A confidential container group runs in a SEV-SNP utility VM that enforces a confidential computing
enforcement (CCE) policy, and the hardware reports the policy's SHA-256 as HOST_DATA; MAA puts it at
the top level of the token as `x-ms-sevsnpvm-hostdata` next to `x-ms-attestation-type` `sevsnpvm`
and `x-ms-compliance-status` `azure-compliant-uvm`
(https://learn.microsoft.com/azure/container-instances/container-instances-confidential-overview).
The party data keys pin that hash, so the key goes only to the containers the policy allows.

What the group declares, and why:
- `sku: Confidential` with `confidentialComputeProperties.ccePolicy` = the approved policy
  (`measurements.sevSnp.ccePolicy`, whose SHA-256 is `hostData`, validated in config);
- the workload image pinned by digest (`name@sha256:...`): the policy also pins the layers;
- the host's user-assigned identity only (the principal its party keys are released to);
- private networking: a subnet delegated to `Microsoft.ContainerInstance/containerGroups`, no IP
  address block at all (so no public IP), egress through the site's NAT gateway;
- the workload started at boot by an explicit `command` (`RUNTIME_COMMAND`, the same as the image's
  ENTRYPOINT + CMD in images/aci/Dockerfile, so the policy `az confcom acipolicygen` derives from the
  template pins exactly it) and restarted on failure; no operator path in: no privileged container, no
  privilege escalation, no exec (see below), no public IP; interactive exec is
  governed by the CCE policy (`az confcom acipolicygen` denies exec unless the template asks for it),
  and a policy that allows it is a different policy with a different hash.

Key release: no SKR sidecar. The group runs one container, the workload, whose runtime releases the party
keys itself (`enclave_runtime/keyrelease/azure.py`: the flow of Microsoft's SKR sidecar,
https://github.com/microsoft/confidential-sidecar-containers — the SNP report with its runtime data to MAA
`attest/SevSnpVm`, then Key Vault `release` with the token). The sidecar would be a second container the
CCE policy must admit, serving released keys over HTTP on the group's shared localhost to every container
of the group; in-process release keeps the key in the one attested process and the policy to one container.

Logs: no Log Analytics. Whatever the workload writes to stdout/stderr can carry party data, and ACI's
`diagnostics.logAnalytics` ships container output out of the TEE to a workspace the operator reads; the group
declares no `diagnostics` (the policy pack refuses a collaboration container group with a Log Analytics
workspace: `azure-containerinstance-containergroup-enforce-confidential`), and the CCE policy from
`az confcom acipolicygen` denies stdio access unless the template asks for it. Audit evidence leaves the TEE
only as the runtime's signed, hash-chained audit log (`enclave_runtime/audit.py`), which holds no data rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import pulumi
from pulumi_azure_native import containerinstance, managedidentity, network

from components.azure.common import child
from components.model import WorkloadHost

CONFIDENTIAL_SKU: Final = "Confidential"
CONTAINER_GROUP_DELEGATION: Final = "Microsoft.ContainerInstance/containerGroups"
_BY_DIGEST: Final = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
# Per-container resources of the workload (ACI confidential groups: up to 4 vCPU / 16 GB).
WORKLOAD_CPU: Final = 4.0
WORKLOAD_MEMORY_GB: Final = 16.0
# What the group runs at boot: the enclave runtime's attested service (images/aci/Dockerfile).
RUNTIME_COMMAND: Final[tuple[str, ...]] = (
    "python", "-m", "enclave_runtime", "serve", "--host", "0.0.0.0", "--port", "8443",
)


@dataclass(frozen=True)
class ContainerGroupArgs:
    host: WorkloadHost
    resource_group_name: pulumi.Input[str]
    subnet: network.Subnet
    identity: managedidentity.UserAssignedIdentity
    image: str | None
    cce_policy: str | None
    tags: dict[str, str]
    workload_name: str = "workload"


def validate_container_group(image: str | None, cce_policy: str | None) -> list[str]:
    """Config problems of a confidential container group host (empty when it can be declared)."""
    problems: list[str] = []
    if not image or not _BY_DIGEST.match(image):
        problems.append(
            f"workload.image {image!r} is not pinned by digest: a confidential container group runs "
            "<registry>/<name>@sha256:<64 hex> (the CCE policy pins its layers)"
        )
    if not cce_policy:
        problems.append(
            "measurements.sevSnp.ccePolicy is required for a confidential container group (base64 Rego from "
            "`az confcom acipolicygen`; hostData is its SHA-256)"
        )
    return problems


class ConfidentialContainerGroup(pulumi.ComponentResource):
    """One ACI confidential container group running the approved workload."""

    container_group: containerinstance.ContainerGroup

    def __init__(self, name: str, args: ContainerGroupArgs, opts: pulumi.ResourceOptions | None = None):
        problems = validate_container_group(args.image, args.cce_policy)
        if problems:
            raise ValueError("invalid confidential container group:\n" + "\n".join(f"  - {p}" for p in problems))
        super().__init__("ccp:azure:ConfidentialContainerGroup", name, None, opts)
        self.container_group = containerinstance.ContainerGroup(
            name,
            resource_group_name=args.resource_group_name,
            location=args.host.region,
            sku=CONFIDENTIAL_SKU,
            confidential_compute_properties=containerinstance.ConfidentialComputePropertiesArgs(
                cce_policy=args.cce_policy,
            ),
            os_type="Linux",
            restart_policy="OnFailure",
            identity=containerinstance.ContainerGroupIdentityArgs(
                type="UserAssigned",
                user_assigned_identities=[args.identity.id],
            ),
            subnet_ids=[containerinstance.ContainerGroupSubnetIdArgs(id=args.subnet.id)],
            containers=[
                containerinstance.ContainerArgs(
                    name=args.workload_name,
                    image=args.image,  # type: ignore[arg-type]
                    command=list(RUNTIME_COMMAND),
                    resources=containerinstance.ResourceRequirementsArgs(
                        requests=containerinstance.ResourceRequestsArgs(
                            cpu=WORKLOAD_CPU, memory_in_gb=WORKLOAD_MEMORY_GB
                        ),
                    ),
                    security_context=containerinstance.SecurityContextDefinitionArgs(
                        privileged=False,
                        allow_privilege_escalation=False,
                    ),
                )
            ],
            tags=args.tags,
            opts=child(self),
        )
        self.register_outputs({"containerGroupId": self.container_group.id})
