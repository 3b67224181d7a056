"""Config checks of the Azure slice of a collaboration: pure functions over the config model.

Run by the config validation (`stacks.config.parse`) before any resource is declared, so every
problem is reported in one run with its `ccp:` (or `ccp-azure:`) path; `components.azure.site.Site`
then only declares. What they refuse, and why:
- a confidential container group host without a digest-pinned image or a CCE policy (the data key
  pins the policy's hash, and the policy pins the image's layers);
- a VM host whose size does not provide its TEE (ARM refuses it only at deployment time);
- Azure parties without a host Key Vault can release their key to (an Azure SEV-SNP CVM is one only with
  `measurements.azureCvm`, and then only with the collaboration's own provider in isolated mode);
- an Azure data key released to a TDX confidential VM (TDX_CVM_REFUSED): its only pin, MRTD, measures
  Microsoft's firmware and paravisor, not the workload; the CVM may stay a host when no Azure party
  releases a key to it;
- measurements the release policy cannot be built from;
- in prod: no Confidential VM Orchestrator id (or a placeholder one) for confidential VM disks, and an
  attestation provider without policy signing certificates (AAD mode);
- an `ownerPrincipal` with `ownerDecrypt` that is not an Entra object id (GUID);
- an AKS host (`kubernetes: true`) without a digest-pinned workload image: its pods run the attested
  query service from that image (`components.kubernetes.query_service`).
"""

from __future__ import annotations

import re
from typing import Final

from components.attestation.azure_release_policy import AZURE_RELEASE_TEES, release_policy
from components.azure.container_group import validate_container_group
from components.azure.options import NAMESPACE, NO_ACCESS_SSH_PUBLIC_KEY, AzureOptions
from components.azure.vm import host_size
from components.kubernetes.query_service import image_problems
from components.model import GUEST_ATTESTATION_DOCS, azure_cvm_host, releases_key
from components.site import SiteArgs, problem

CONTAINER_GROUP_TEE: Final = "confidential-containers"
# Any https URL serves to validate the measurements before the provider's URI is known.
VALIDATION_AUTHORITY: Final = "https://validation.attest.azure.net"
TDX_CVM_REFUSED: Final = (
    "an Azure TDX confidential VM cannot be the release target of an Azure data key: its release policy "
    "could pin only tdx_mrtd (measurements.tdx.mrtd), which on an Azure confidential VM measures Microsoft's "
    "firmware and paravisor, not the guest or the workload (" + GUEST_ATTESTATION_DOCS + "), so any code "
    "running in the VM with its identity (VM agent, extensions, Run Command, an admin login) would get the "
    "key, and the value changes when Microsoft services the paravisor; use tee 'confidential-containers' "
    "(an Azure confidential container group) with measurements.sevSnp.ccePolicy (from `az confcom "
    "acipolicygen`) and measurements.sevSnp.hostData (its SHA-256), or tee 'sgx' with measurements.sgx "
    "(MRENCLAVE/MRSIGNER measure the enclave itself)"
)
_GUID: Final = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def options_of(args: SiteArgs) -> AzureOptions:
    """The `ccp-azure` section the site was given (defaults when the stack sets none)."""
    return args.options if isinstance(args.options, AzureOptions) else AzureOptions()


def release_targets(args: SiteArgs) -> list[tuple[str, bool]]:
    """(tee, container) of the hosts an Azure data key is released to: `container` for a confidential
    container group or AKS confidential containers (hostData), not for a VM. An Azure SEV-SNP CVM is one
    only on the measured-guest path (components.model.CVM_REFUSED)."""
    measurements = args.collaboration.measurements
    return sorted({
        (h.tee, h.tee == CONTAINER_GROUP_TEE or (h.tee == "sev-snp" and h.kubernetes))
        for h in args.hosts
        if h.tee in AZURE_RELEASE_TEES and releases_key("azure", h, measurements)
    })


def problems(args: SiteArgs) -> list[str]:
    """Every config problem of the Azure slice (empty when the site can be declared)."""
    return (
        _hosts(args) + _release(args) + _prod(args) + _owners(args)
        + image_problems(args.indexed_hosts(), args.collaboration.workload.image)
    )


def _hosts(args: SiteArgs) -> list[str]:
    found: list[str] = []
    snp = args.collaboration.measurements.sev_snp
    for index, host in args.indexed_hosts():
        path = f"collaboration.workload.hosts[{index}]"
        if host.tee == CONTAINER_GROUP_TEE:
            # Each problem names the field it is about (`workload.image`, `measurements.sevSnp.ccePolicy`).
            found += [
                problem(f"collaboration.{text.split(' ', 1)[0]}", text)
                for text in validate_container_group(args.collaboration.workload.image, snp.cce_policy if snp else None)
            ]
            continue
        try:
            host_size(host)
        except ValueError as error:
            found.append(problem(f"{path}.instanceType", str(error)))
    return found


def _release(args: SiteArgs) -> list[str]:
    targets = release_targets(args)
    if args.parties and not targets:
        return [problem(
            "collaboration.workload.hosts",
            "Azure parties need an Azure workload host with tee confidential-containers or sgx (or sev-snp "
            "on AKS, or an Azure SEV-SNP CVM with measurements.azureCvm.pcrs): Key Vault releases keys only "
            "against Azure Attestation tokens that identify the workload; add one",
        )]
    # Old configs (an Azure data key bound to a TDX CVM's MRTD) fail loudly here, like an Azure SEV-SNP
    # CVM pinned by its launch measurement does in the model (components.model.CVM_REFUSED).
    found: list[str] = [
        problem(f"collaboration.workload.hosts[{index}].tee", TDX_CVM_REFUSED)
        for index, host in args.indexed_hosts()
        if args.parties and host.tee == "tdx"
    ]
    for tee, container in targets:
        try:
            release_policy(
                args.collaboration.measurements, tee=tee, authority=VALIDATION_AUTHORITY, container=container
            )
        except ValueError as error:
            found.append(problem("collaboration.measurements", str(error)))
    return found + _measured_guest(args)


def _measured_guest(args: SiteArgs) -> list[str]:
    """The Azure CVM path needs the collaboration's own provider in isolated mode, in every environment:
    its attestation policy is what checks the guest's PCRs, so whoever could replace it (AAD mode: anyone with
    RBAC write on the provider) could release the keys to any guest, and a shared endpoint runs Microsoft's
    default policy, which checks no PCR (components/attestation/azure_guest_policy.py)."""
    if not args.parties or args.collaboration.measurements.azure_cvm is None:
        return []
    if not any(azure_cvm_host(h) for h in args.hosts):
        return []
    options = options_of(args)
    found: list[str] = []
    if options.shared_attestation_endpoint is not None:
        found.append(problem(
            "sharedAttestationEndpoint",
            f"{options.shared_attestation_endpoint!r} cannot attest an Azure CVM workload host "
            "(measurements.azureCvm): a shared endpoint runs Microsoft's default policy, which checks no vTPM PCR; "
            "remove it so the stack declares the collaboration's own attestation provider",
            namespace=NAMESPACE,
        ))
    if options.admin_ssh_public_key != NO_ACCESS_SSH_PUBLIC_KEY:
        found.append(problem(
            "adminSshPublicKey",
            "is an operator key but measurements.azureCvm makes an Azure CVM a workload host: a login runs code in "
            "the guest after the measured boot, which its PCRs do not see; remove it (the default key has no private "
            "half, so the VM has no login)",
            namespace=NAMESPACE,
        ))
    if not options.attestation_policy_signing_certificates:
        found.append(problem(
            "attestationPolicySigningCertificates",
            "is empty but measurements.azureCvm makes the collaboration's attestation policy the check of the "
            "guest's PCRs: give the parties' policy-signing certificates (PEM) so the provider runs in isolated mode "
            "and only a policy signed by one of them replaces it "
            "(https://learn.microsoft.com/azure/attestation/policy-signer-examples)",
            namespace=NAMESPACE,
        ))
    return found


def _prod(args: SiteArgs) -> list[str]:
    """Orchestrator id (never a placeholder), isolated-mode provider: components/azure/options.py."""
    if not args.prod:
        return []
    options = options_of(args)
    return options.prod_problems(
        confidential_vms=any(h.tee in ("sev-snp", "tdx") and not h.kubernetes for h in args.hosts),
        attestation_provider=options.shared_attestation_endpoint is None,
    )


def _owners(args: SiteArgs) -> list[str]:
    return [
        problem(
            f"collaboration.parties[{index}].ownerPrincipal",
            f"party {party.name}: ownerPrincipal {party.owner_principal!r} must be the Entra object id (GUID) of "
            "the principal allowed to decrypt outside the enclave (`az ad user show --id <upn> --query id -o tsv`)",
        )
        for index, party in args.indexed_parties()
        if party.owner_decrypt and not _GUID.match(party.owner_principal or "")
    ]
