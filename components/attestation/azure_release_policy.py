"""Azure Key Vault secure key release (SKR) policies, generated from the approved measurements.

Key Vault releases an exportable HSM key only to a caller presenting a Microsoft Azure Attestation
(MAA) token that satisfies the key's release policy. The policy is therefore the whole security
boundary of a party's data key on Azure, and it is generated here from the one reviewed input
(`ApprovedMeasurements`), never written by hand.

Rules the generator enforces (fail closed):
- every policy pins the workload (container policy hash, MRENCLAVE/MRSIGNER, MRTD, or for an Azure CVM
  the claim and policy hash of the collaboration's own vTPM-PCR attestation policy), never the TEE type
  alone (a type-only policy releases the key to any confidential VM in the region) and never an Azure
  CVM's launch measurement alone (it measures Microsoft's paravisor);
- every policy requires the TEE to be non-debuggable;
- `x-ms-runtime.*` claims are never used: the attested caller chooses them (client payload);
- a TEE whose measurement section is absent gets no policy at all (ValueError), not a wildcard.

Claim names (MAA token formats):
- Confidential VMs (guest attestation) nest the hardware claims under `x-ms-isolation-tee`:
  `x-ms-attestation-type` (`sevsnpvm` | `tdxvm`), `x-ms-compliance-status`
  (`azure-compliant-cvm`), `x-ms-sevsnpvm-is-debuggable`, with top-level `x-ms-attestation-type`
  `azurevm`, `secureboot` and `x-ms-azurevm-*` flags
  (https://learn.microsoft.com/azure/confidential-computing/guest-attestation-confidential-vms); the
  workload is pinned through the collaboration's own attestation policy (azure_guest_policy.py).
- TDX: MAA's TDX token is an EAT whose claims are all top level: `tdx_mrtd`,
  `tdx_td_attributes_debug` (TDX claims) next to `x-ms-attestation-type` (Microsoft-specific claims),
  with no `x-ms-isolation-tee` wrapper ("Azure Attestation EAT profile for Intel TDX",
  https://learn.microsoft.com/azure/attestation/trust-domain-extensions-eat-profile). The top-level
  `x-ms-attestation-type` = `tdxvm` and `x-ms-compliance-status` = `azure-compliant-cvm` of a TDX CVM
  are those of Microsoft's published release policy
  (https://github.com/Azure/confidential-computing-cvm/blob/main/cvm_deployment/key/skr-policy.json).
  Note: an Azure CVM's MRTD, like its SNP launch measurement, measures Microsoft's firmware and
  paravisor, not the guest (https://learn.microsoft.com/azure/confidential-computing/guest-attestation-confidential-virtual-machines-design).
- Confidential containers (ACI / AKS Kata) carry top-level `x-ms-attestation-type`,
  `x-ms-compliance-status` (`azure-compliant-uvm`), `x-ms-sevsnpvm-hostdata`,
  `x-ms-sevsnpvm-is-debuggable` and `x-ms-sevsnpvm-vmpl`.
- SGX enclaves: `x-ms-sgx-mrenclave`, `x-ms-sgx-mrsigner`, `x-ms-sgx-product-id`, `x-ms-sgx-svn`,
  `x-ms-sgx-is-debuggable` (https://learn.microsoft.com/azure/attestation/claim-sets). The product
  id is compared with `equals`: it is how an author segments the enclaves signed with one MRSIGNER
  ("if the product ID of the enclave doesn't match the value published by the enclave author,
  attestation fails", claim-sets), so a range would admit the signer's other products. Only the
  SVN is a floor (`greaterOrEquals`).
"""

from __future__ import annotations

import base64
import json
from typing import Any, Callable, Final

from components.attestation.azure_guest_policy import release_claims
from enclave_runtime.measurements import ApprovedMeasurements

POLICY_VERSION: Final = "1.0.0"
# What Key Vault expects in KeyReleasePolicy.contentType for a JSON policy.
CONTENT_TYPE: Final = "application/json; charset=utf-8"

ISOLATION_TEE: Final = "x-ms-isolation-tee"
FORBIDDEN_CLAIM_PREFIXES: Final = ("x-ms-runtime", f"{ISOLATION_TEE}.x-ms-runtime")

Claim = dict[str, Any]


def _equals(claim: str, value: Any) -> Claim:
    return {"claim": claim, "equals": value}


def _at_least(claim: str, value: int) -> Claim:
    return {"claim": claim, "greaterOrEquals": value}


def _missing(tee: str, section: str, need: str) -> ValueError:
    return ValueError(
        f"no release policy for tee {tee!r}: the approved measurements have no {section} "
        f"({need}); a key is never released on the TEE type alone"
    )


def _sev_snp(measurements: ApprovedMeasurements, container: bool) -> list[Claim]:
    snp = measurements.sev_snp
    if not container and measurements.azure_cvm is not None:
        # An Azure SEV-SNP confidential VM: the guest's vTPM PCRs, checked by the collaboration's own
        # MAA policy (components/attestation/azure_guest_policy.py), never the paravisor's launch measurement.
        return release_claims(measurements.azure_cvm)
    if snp is None or snp.host_data is None:
        raise _missing(
            "sev-snp",
            "sevSnp.hostData (confidential containers) or azureCvm.pcrs (a confidential VM's measured image)",
            "a launch measurement alone measures Microsoft's paravisor and firmware, not the workload",
        )
    # Confidential containers: the UVM's claims are top level; hostdata pins the container
    # security policy, vmpl 0 is the guest's most privileged level (the UVM itself).
    return [
        _equals("x-ms-attestation-type", "sevsnpvm"),
        _equals("x-ms-compliance-status", "azure-compliant-uvm"),
        _equals("x-ms-sevsnpvm-hostdata", snp.host_data),
        _equals("x-ms-sevsnpvm-is-debuggable", False),
        _equals("x-ms-sevsnpvm-vmpl", 0),
    ]


def _tdx(measurements: ApprovedMeasurements, container: bool) -> list[Claim]:
    if measurements.tdx is None:
        raise _missing("tdx", "tdx section", "mrtd")
    if container:
        raise ValueError(
            "no release policy for tee 'tdx' with container=True: Azure confidential containers "
            "run on SEV-SNP; use tee 'sev-snp' with sevSnp.hostData"
        )
    # Top-level claims: the MAA TDX EAT profile
    # (https://learn.microsoft.com/azure/attestation/trust-domain-extensions-eat-profile) puts
    # tdx_mrtd / tdx_td_attributes_debug and x-ms-attestation-type at the top of the token;
    # attestation type and compliance status values as in Microsoft's published policy
    # (https://github.com/Azure/confidential-computing-cvm/blob/main/cvm_deployment/key/skr-policy.json).
    return [
        _equals("x-ms-attestation-type", "tdxvm"),
        _equals("x-ms-compliance-status", "azure-compliant-cvm"),
        _equals("tdx_mrtd", measurements.tdx.mrtd),
        _equals("tdx_td_attributes_debug", False),
    ]


def _sgx(measurements: ApprovedMeasurements, container: bool) -> list[Claim]:
    sgx = measurements.sgx
    if sgx is None:
        raise _missing("sgx", "sgx section", "mrenclave or mrsigner")
    if container:
        raise ValueError(
            "no release policy for tee 'sgx' with container=True: SGX enclaves are attested by "
            "MRENCLAVE/MRSIGNER, not by a container policy"
        )
    claims: list[Claim] = []
    if sgx.mrenclave is not None:
        claims.append(_equals("x-ms-sgx-mrenclave", sgx.mrenclave))
    if sgx.mrsigner is not None:
        claims.append(_equals("x-ms-sgx-mrsigner", sgx.mrsigner))
    claims += [
        # Exact: a range admits every other product signed with the same MRSIGNER (claim-sets).
        _equals("x-ms-sgx-product-id", sgx.product_id),
        _at_least("x-ms-sgx-svn", sgx.min_svn),
        _equals("x-ms-sgx-is-debuggable", False),
    ]
    return claims


def _confidential_containers(measurements: ApprovedMeasurements, container: bool) -> list[Claim]:
    """An Azure confidential container group: always the container (UVM) claims, pinned by hostdata
    (https://learn.microsoft.com/azure/container-instances/container-instances-confidential-overview)."""
    snp = measurements.sev_snp
    if snp is None or snp.host_data is None:
        raise _missing(
            "confidential-containers", "sevSnp.hostData", "the SHA-256 of the confidential container policy"
        )
    return _sev_snp(measurements, True)


_GENERATORS: Final[dict[str, Callable[[ApprovedMeasurements, bool], list[Claim]]]] = {
    "confidential-containers": _confidential_containers,
    "sev-snp": _sev_snp,
    "tdx": _tdx,
    "sgx": _sgx,
}
AZURE_RELEASE_TEES: Final = frozenset(_GENERATORS)


def _check_authority(authority: str) -> None:
    if not isinstance(authority, str) or not authority.startswith("https://") or len(authority) <= 8:
        raise ValueError(
            f"release policy authority {authority!r} is not an https URL: use the attestation "
            "provider's attestUri (e.g. https://<name>.<short region code>.attest.azure.net, such as https://sharedweu.weu.attest.azure.net)"
        )


def release_policy(
    measurements: ApprovedMeasurements,
    *,
    tee: str,
    authority: str,
    container: bool = False,
) -> dict[str, Any]:
    """The SKR policy releasing a key only to the approved, non-debug workload on `tee`.

    `authority` is the MAA instance whose tokens Key Vault accepts (the attestation provider's
    `attestUri`). `container=True` (or a sevSnp section with only `hostData`) selects the
    confidential-container claims instead of the confidential-VM ones.
    """
    generator = _GENERATORS.get(tee)
    if generator is None:
        raise ValueError(
            f"tee {tee!r} has no Azure secure key release: Key Vault accepts MAA tokens of "
            f"{', '.join(sorted(AZURE_RELEASE_TEES))} only"
        )
    _check_authority(authority)
    claims = generator(measurements, container)
    for claim in claims:
        if claim["claim"].startswith(FORBIDDEN_CLAIM_PREFIXES):  # pragma: no cover - invariant
            raise AssertionError(f"caller-chosen claim {claim['claim']!r} in a release policy")
    return {
        "version": POLICY_VERSION,
        "anyOf": [{"authority": authority.rstrip("/"), "allOf": claims}],
    }


# The platform's release policy for a confidential VM's OS-disk key, as Microsoft publishes it
# (https://github.com/Azure/confidential-computing-cvm/blob/main/cvm_deployment/key/skr-policy.json):
# the disk key is released by the platform at VM start (Confidential VM Orchestrator), with a
# platform token whose claims are top level, issued by Microsoft's shared regional authority. It
# is NOT a data-key policy: no `x-ms-isolation-tee.*` claim, no launch measurement (the platform
# token carries none), no collaboration-owned provider (the platform never attests against it).
CVM_DISK_ATTESTATION_TYPES: Final = ("tdxvm", "sevsnpvm")
CVM_DISK_COMPLIANCE_STATUS: Final = "azure-compliant-cvm"


def cvm_disk_release_policy(locations: list[str] | tuple[str, ...] | str) -> dict[str, Any]:
    """Microsoft's platform release policy for a confidential OS-disk key, for the shared
    authorities of `locations` (the regions of the CVMs whose disk encryption set uses the key).

    One authority entry per region, each exactly Microsoft's published entry (trailing slash
    included): `x-ms-compliance-status` = `azure-compliant-cvm` and `x-ms-attestation-type` in
    {`tdxvm`, `sevsnpvm`}. A region without a documented short code is refused (maa_regions).
    """
    from components.attestation.maa_regions import shared_endpoint

    regions = [locations] if isinstance(locations, str) else list(locations)
    if not regions:
        raise ValueError("a confidential disk key needs the region of at least one confidential VM")
    entries: list[dict[str, Any]] = []
    for region in regions:
        entry = {
            "allOf": [
                _equals("x-ms-compliance-status", CVM_DISK_COMPLIANCE_STATUS),
                {"anyOf": [_equals("x-ms-attestation-type", kind) for kind in CVM_DISK_ATTESTATION_TYPES]},
            ],
            "authority": shared_endpoint(region) + "/",
        }
        if entry not in entries:
            entries.append(entry)
    return {"version": POLICY_VERSION, "anyOf": entries}


def combine_release_policies(policies: list[dict[str, Any]]) -> dict[str, Any]:
    """One policy admitting any of several approved workloads (e.g. an SEV-SNP and an SGX host).

    Each alternative keeps its own complete `allOf`; duplicates are dropped so that the same
    host declared twice does not change the document.
    """
    if not policies:
        raise ValueError("no release policies to combine: a key with no policy is never exportable")
    alternatives: list[dict[str, Any]] = []
    for policy in policies:
        if policy.get("version") != POLICY_VERSION:
            raise ValueError(f"release policy version {policy.get('version')!r} is not {POLICY_VERSION}")
        for alternative in policy["anyOf"]:
            if alternative not in alternatives:
                alternatives.append(alternative)
    return {"version": POLICY_VERSION, "anyOf": alternatives}


def encode_release_policy(policy: dict[str, Any]) -> str:
    """base64url (no padding) of the compact JSON, the form KeyReleasePolicy.data carries."""
    compact = json.dumps(policy, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return base64.urlsafe_b64encode(compact).decode("ascii").rstrip("=")


def decode_release_policy(data: str) -> dict[str, Any]:
    """Inverse of `encode_release_policy` (accepts padded or unpadded base64url)."""
    padded = data + "=" * (-len(data) % 4)
    try:
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"release policy data is not base64url-encoded JSON: {error}") from None
    if not isinstance(decoded, dict):
        raise ValueError("release policy data does not decode to a JSON object")
    return decoded
