"""The Azure confidential VM workload path: the collaboration's own MAA attestation policy over the guest's
vTPM PCRs, and the release-policy claims that pin it. Both are generated from one input,
`measurements.azureCvm.pcrs` (PCR index -> SHA-256 hex of a measured image).

Why a custom policy: an Azure CVM's hardware report measures Microsoft's paravisor and UEFI only; the guest
OS is covered by the vTPM quote's PCRs ("What are being covered by a vTPM Evidence?",
https://learn.microsoft.com/azure/confidential-computing/guest-attestation-confidential-virtual-machines-design).
Key Vault's release policy can only compare token claims, and MAA's default guest policy emits no PCR
values, so the collaboration's own attestation provider (isolated mode: only a policy signed by one of
the parties' keys replaces it) runs this policy at `attest/AzureGuest`:

- `authorizationrules` compare each approved PCR with the documented policy-1.2 rule shape
  (`c:[type == "pcrs", issuer=="AttestationService"] => add(type=..., value=JsonToClaimValue(JmesPath(c.value,
  "PCRs[? Index == `N`].Digests.SHA256 | @[0] == '<hex>'")))`, "Attestation policy to authorize only those
  TPMs that match known PCR hashes", https://learn.microsoft.com/azure/attestation/tpm-attestation-sample-policies)
  and permit only when all match: any other guest gets no token at all;
- `issuancerules` repeat the comparison and issue `ccp-azurevm-pcrs` = the digest of the approved PCR set.

The release policy pins that claim, MAA's `x-ms-policy-hash` of exactly this policy text (computed as
BASE64URL(SHA256(UTF8(BASE64URL(UTF8(policy text))))), "Claim sets",
https://learn.microsoft.com/azure/attestation/claim-sets; BASE64URL unpadded as in JWS, RFC 7515), and the
guest-token claims Microsoft documents for a confidential VM ("JSON web token",
https://learn.microsoft.com/azure/confidential-computing/guest-attestation-confidential-vms): top-level
`x-ms-attestation-type` `azurevm`, `secureboot`, the `x-ms-azurevm-*` debug/signing flags, and the SNP
claims nested under `x-ms-isolation-tee`. Pinning the policy hash means a replaced attestation policy
(another PCR set, or one that issues the claim unconditionally) gets no key even if the provider's mode
were changed. The PCRs pin the boot chain only: code the operator runs later (VM agent, extensions, Run
Command, an admin login) is not measured, so the workload VM has none (components/azure/vm.py) and the
policy pack refuses a CVM workload host that keeps one (`azure-compute-vm-disallow-operator-access`).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Final

from enclave_runtime.jcs import canonicalize
from enclave_runtime.measurements import AzureCvmMeasurements

POLICY_VERSION: Final = "1.2"
# MAA attestation type of the vTPM guest attestation endpoint (`POST {instance}/attest/AzureGuest`,
# https://learn.microsoft.com/rest/api/attestation/attestation/attest-azure-guest).
ATTESTATION_TYPE: Final = "AzureGuest"
# The claim this policy issues and every CVM release policy pins.
PCR_CLAIM: Final = "ccp-azurevm-pcrs"
POLICY_HASH_CLAIM: Final = "x-ms-policy-hash"
ISOLATION_TEE: Final = "x-ms-isolation-tee"
GUEST_TOKEN_DOCS: Final = "https://learn.microsoft.com/azure/confidential-computing/guest-attestation-confidential-vms"
# The documented guest-token hardening claims and the value the approved VM reports for each.
HARDENING_CLAIMS: Final[tuple[tuple[str, bool], ...]] = (
    ("secureboot", True),
    ("x-ms-azurevm-debuggersdisabled", True),
    ("x-ms-azurevm-bootdebug-enabled", False),
    ("x-ms-azurevm-kerneldebug-enabled", False),
    ("x-ms-azurevm-hypervisordebug-enabled", False),
    ("x-ms-azurevm-testsigning-enabled", False),
)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def pcr_set_digest(pcrs: AzureCvmMeasurements) -> str:
    """`sha256:<hex>` of the canonical JSON of the approved PCR set: the value of `ccp-azurevm-pcrs`."""
    return "sha256:" + hashlib.sha256(canonicalize({"pcrs": pcrs.pcrs})).hexdigest()


def _validated(index: str) -> str:
    return f"ccp-pcr{index}-validated"


def _pcr_rules(pcrs: AzureCvmMeasurements) -> list[str]:
    return [
        f'c:[type == "pcrs", issuer=="AttestationService"] => add(type="{_validated(index)}", '
        f"value=JsonToClaimValue(JmesPath(c.value, \"PCRs[? Index == `{index}`].Digests.SHA256 | @[0] == "
        f"'{digest}'\")));"
        for index, digest in pcrs.pcrs.items()
    ]


def _all_validated(pcrs: AzureCvmMeasurements, issuer: str | None) -> str:
    suffix = f', issuer=="{issuer}"' if issuer else ""
    return " && ".join(f'[type=="{_validated(index)}", value==true{suffix}]' for index in pcrs.pcrs)


def maa_policy(pcrs: AzureCvmMeasurements) -> str:
    """The MAA attestation policy (version 1.2, type AzureGuest) for the approved PCRs: exact text, whose
    hash the release policy pins (the parties sign and upload exactly this)."""
    rules = "\n    ".join(_pcr_rules(pcrs))
    return (
        f"version={POLICY_VERSION};\n"
        "authorizationrules\n{\n"
        f"    {rules}\n"
        f"    {_all_validated(pcrs, None)} => permit();\n"
        "};\n"
        "issuancerules\n{\n"
        f"    {rules}\n"
        f'    {_all_validated(pcrs, "AttestationPolicy")} => issue(type="{PCR_CLAIM}", value="{pcr_set_digest(pcrs)}");\n'
        "};\n"
    )


def policy_hash(text: str) -> str:
    """MAA's `x-ms-policy-hash` of a policy: BASE64URL(SHA256(UTF8(BASE64URL(UTF8(policy text)))))."""
    return _b64url(hashlib.sha256(_b64url(text.encode("utf-8")).encode("utf-8")).digest())


def release_claims(pcrs: AzureCvmMeasurements) -> list[dict[str, Any]]:
    """The `allOf` of a data key's release policy for an Azure CVM running the measured image."""
    tee = ISOLATION_TEE
    return [
        {"claim": "x-ms-attestation-type", "equals": "azurevm"},
        {"claim": f"{tee}.x-ms-attestation-type", "equals": "sevsnpvm"},
        {"claim": f"{tee}.x-ms-compliance-status", "equals": "azure-compliant-cvm"},
        {"claim": f"{tee}.x-ms-sevsnpvm-is-debuggable", "equals": False},
        *({"claim": claim, "equals": value} for claim, value in HARDENING_CLAIMS),
        {"claim": POLICY_HASH_CLAIM, "equals": policy_hash(maa_policy(pcrs))},
        {"claim": PCR_CLAIM, "equals": pcr_set_digest(pcrs)},
    ]
