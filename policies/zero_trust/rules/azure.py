"""Azure rules: secure key release (MAA claims), confidential VMs, Key Vault, network, storage, AKS.

Property names are azure-native 3.x camelCase inputs, which are irregular (`vTpmEnabled`,
`diskEncryptionSetID`, `enableNodePublicIP`, `publicIPAddress`): each one is hard-coded in `reads`
and checked against the real SDK under mocks.
"""

from __future__ import annotations

import itertools
import re
from typing import Any, Final, Iterable, Iterator

from pulumi_policy import Severity

from components.attestation.azure_guest_policy import GUEST_TOKEN_DOCS
from components.attestation.azure_release_policy import (
    CVM_DISK_ATTESTATION_TYPES,
    CVM_DISK_COMPLIANCE_STATUS,
    decode_release_policy,
)
from components.azure.options import opens_login
from components.key_purpose import CONFIDENTIAL_DISK
from components.site import SHARED_PARTY

from policies.zero_trust.rules._base import (
    OPEN_CIDRS,
    Finding,
    MissingProperty,
    Stack,
    Subject,
    falsy,
    is_all_zero,
    iso_duration_days,
    require_false,
    require_set,
    require_true,
    resource_rule,
    run_check,
    stack_rule,
    truthy,
)

KEY: Final = "azure-native:keyvault:Key"
VAULT: Final = "azure-native:keyvault:Vault"
VM: Final = "azure-native:compute:VirtualMachine"
DES: Final = "azure-native:compute:DiskEncryptionSet"
NIC: Final = "azure-native:network:NetworkInterface"
NSG: Final = "azure-native:network:NetworkSecurityGroup"
SECURITY_RULE: Final = "azure-native:network:SecurityRule"
STORAGE: Final = "azure-native:storage:StorageAccount"
AKS: Final = "azure-native:containerservice:ManagedCluster"
ROLE_ASSIGNMENT: Final = "azure-native:authorization:RoleAssignment"
DIAGNOSTIC: Final = "azure-native:monitor:DiagnosticSetting"
ATTESTATION_PROVIDER: Final = "azure-native:attestation:AttestationProvider"

SKR_DOCS: Final = "https://learn.microsoft.com/azure/confidential-computing/concept-skr-attestation"
RELEASE_DATA: Final = "properties.releasePolicy.data"
HSM_KTY: Final = frozenset({"RSA-HSM", "EC-HSM", "oct-HSM"})
# Claims that identify the workload itself, not just the TEE type (suffix after the last '.').
WORKLOAD_CLAIMS: Final = (
    "x-ms-sevsnpvm-launchmeasurement",
    "x-ms-sevsnpvm-hostdata",
    "x-ms-sgx-mrenclave",
    "x-ms-sgx-mrsigner",
    "tdx_mrtd",
)
DEBUG_CLAIMS: Final = ("is-debuggable", "td_attributes_debug")
CALLER_CHOSEN: Final = "x-ms-runtime"
CONFIDENTIAL_SIZE: Final = re.compile(
    r"^standard_(dc|ec)\d+(as|ads|es|eds)(_cc)?_v[56]$|^standard_dc\d+d?s_v[23]$", re.IGNORECASE
)

KEY_CONTROLS: Final = (
    "hipaa:164.312(a)(2)(iv)",
    "gdpr:art25",
    "gdpr:art32",
    "nist:AC-3",
    "nist:SC-12",
    "nist:SC-28(1)",
)


class BadReleasePolicy(Exception):
    pass


def release_policy_of(data: str) -> dict[str, Any]:
    """The JSON of a Key Vault release policy, or `BadReleasePolicy` saying why it cannot release."""
    if not isinstance(data, str) or not data:
        raise BadReleasePolicy("releasePolicy.data is empty")
    try:
        policy = decode_release_policy(data)
    except ValueError as error:
        raise BadReleasePolicy(f"releasePolicy.data is not base64url JSON ({error})") from None
    if not policy.get("anyOf"):
        raise BadReleasePolicy("release policy has no anyOf")
    return policy


Claim = tuple[str, str, Any]


def branches(node: Any) -> list[list[Claim]]:
    """The policy as alternatives of conjunctions: each inner list must all hold to release."""
    if not isinstance(node, dict):
        return [[]]
    if "claim" in node:
        op = next((k for k in ("equals", "greaterOrEquals", "notEquals") if k in node), "?")
        return [[(str(node["claim"]), op, node.get(op))]]
    if "anyOf" in node:
        out: list[list[Claim]] = []
        for child in node["anyOf"] or []:
            out.extend(branches(child))
        return out or [[]]
    if "allOf" in node:
        parts = [branches(child) for child in node["allOf"] or []]
        return [sum(combo, []) for combo in itertools.product(*parts)] if parts else [[]]
    return [[]]


def _leaf(claim: str) -> str:
    return claim.rsplit(".", 1)[-1].lower()


def workload_values(claims: list[Claim]) -> list[str]:
    """The values a branch pins the workload by: hardware workload claims, or a claim of the collaboration's
    own attestation policy (an Azure CVM's vTPM PCR check, judged by
    `azure-keyvault-key-enforce-measured-guest-release`)."""
    return [
        str(value).lower()
        for claim, op, value in claims
        if op == "equals"
        and (_leaf(claim) in WORKLOAD_CLAIMS or _custom_claim(_leaf(claim)))
        and isinstance(value, str)
        and value
    ]


def release_branches(subject: Subject) -> list[list[Claim]] | None:
    """The key's release alternatives, or None for a key that is explicitly never exportable.

    Raises MissingProperty when neither a policy nor `exportable=false` says how the key is released.
    """
    if subject.has(RELEASE_DATA):
        return branches(release_policy_of(subject.need(RELEASE_DATA)))
    if falsy(subject.need("properties.attributes.exportable")):
        return None
    raise BadReleasePolicy("key is exportable but has no release policy: anyone with release rights gets it")


def _release_rule(check, read=release_branches):
    """Adapter for the release-policy rules: `check` gets what `read` takes from the key (by default its
    release branches; `_policy_rule` hands over the whole decoded policy). Keys explicitly tagged with a
    service purpose are judged by `azure-keyvault-key-disallow-service-release` instead; untagged keys,
    unknown purposes, party data keys and confidential OS disk keys (exportable by Azure's design) stay
    here."""

    def run(subject: Subject) -> Iterable[str]:
        if subject.service_key:
            return
        try:
            found = read(subject)
            if subject.purpose == CONFIDENTIAL_DISK and is_platform_disk_policy(_policy_of(subject)):
                return
        except BadReleasePolicy as error:
            yield f"{subject.name}: {error}"
            return
        if found is not None:
            yield from check(subject, found)

    return run


# Microsoft's shared regional MAA endpoints (`shared<code>.<code>.attest.azure.net`).
SHARED_AUTHORITY: Final = re.compile(r"^https://shared[a-z0-9]+\.[a-z0-9]+\.attest\.azure\.net/?$", re.IGNORECASE)


def is_platform_disk_policy(policy: dict[str, Any] | None) -> bool:
    """Exactly Microsoft's published platform release policy of a confidential OS-disk key
    (https://github.com/Azure/confidential-computing-cvm/blob/main/cvm_deployment/key/skr-policy.json): every
    authority a shared regional MAA endpoint, each requiring compliance status azure-compliant-cvm and an
    attestation type in {tdxvm, sevsnpvm}. The platform releases such a key to a compliant CVM's paravisor at VM
    start; the platform token carries no workload claim, so the workload rules cannot judge it (the key holds
    the OS disk, never party data; the disk encryption set rules judge its use)."""
    if not policy or not policy.get("anyOf"):
        return False
    shape = {
        "allOf": [
            {"claim": "x-ms-compliance-status", "equals": CVM_DISK_COMPLIANCE_STATUS},
            {"anyOf": [{"claim": "x-ms-attestation-type", "equals": kind} for kind in CVM_DISK_ATTESTATION_TYPES]},
        ]
    }
    return all(
        isinstance(entry, dict)
        and isinstance(entry.get("authority"), str)
        and SHARED_AUTHORITY.match(entry["authority"]) is not None
        and {k: v for k, v in entry.items() if k != "authority"} == shape
        for entry in policy["anyOf"]
    )


def is_attestation_bound(subject: Subject) -> bool:
    try:
        found = release_branches(subject)
    except Exception:  # noqa: BLE001
        return False
    return bool(found) and all(
        [v for v in workload_values(b) if not is_all_zero(v)] and _not_debuggable(b) for b in found
    ) and not _caller_chosen(found)


def key_measurements(subject: Subject) -> set[str]:
    try:
        found = release_branches(subject) or []
    except Exception:  # noqa: BLE001
        return set()
    return {v for b in found for v in workload_values(b)}


def _not_debuggable(claims: list[Claim]) -> bool:
    return any(
        _leaf(claim).endswith(DEBUG_CLAIMS) and op == "equals" and value is False for claim, op, value in claims
    )


def _caller_chosen(found: list[list[Claim]]) -> list[str]:
    return sorted({c for b in found for c, _, _ in b if c.lower().startswith(CALLER_CHOSEN) or ".x-ms-runtime" in c.lower()})


@resource_rule(
    name="azure-keyvault-key-enforce-workload-claim",
    description="Secure key release policies pin the workload (launch measurement, host data, MRENCLAVE/MRSIGNER, MRTD), not the TEE type alone.",
    types=(KEY,),
    reads=(RELEASE_DATA, "properties.attributes.exportable", "tags"),
    severity=Severity.CRITICAL,
    controls=KEY_CONTROLS,
    remediation=(
        "In every anyOf branch add an `equals` claim on x-ms-sevsnpvm-launchmeasurement, "
        "x-ms-sevsnpvm-hostdata, x-ms-sgx-mrenclave/mrsigner or tdx_mrtd with the approved value; "
        "the attestation type and compliance status alone release to any CVM in the region."
    ),
    url=SKR_DOCS,
    confidential=True,
)
@_release_rule
def azure_keyvault_key_enforce_workload_claim(subject: Subject, found: list[list[Claim]]) -> Iterable[str]:
    for i, claims in enumerate(found):
        values = workload_values(claims)
        if not values:
            yield f"{subject.name}: release branch {i} pins no workload claim (only {[c for c, _, _ in claims]})"
        for value in values:
            if is_all_zero(value):
                yield f"{subject.name}: release branch {i} pins an all-zero (debug) measurement"


@resource_rule(
    name="azure-keyvault-key-disallow-debuggable-release",
    description="Secure key release requires the TEE to be non-debuggable.",
    types=(KEY,),
    reads=(RELEASE_DATA, "properties.attributes.exportable", "tags"),
    severity=Severity.CRITICAL,
    controls=("nist:SI-7", "hipaa:164.312(c)(1)", "gdpr:art32", "nist:SC-12"),
    remediation="Add {claim: '<tee>.x-ms-sevsnpvm-is-debuggable' (or x-ms-sgx-is-debuggable / tdx_td_attributes_debug), equals: false} to every branch.",
    url="https://learn.microsoft.com/azure/attestation/claim-sets",
    confidential=True,
)
@_release_rule
def azure_keyvault_key_disallow_debuggable_release(subject: Subject, found: list[list[Claim]]) -> Iterable[str]:
    for i, claims in enumerate(found):
        if not _not_debuggable(claims):
            yield f"{subject.name}: release branch {i} does not require is-debuggable == false"


@resource_rule(
    name="azure-keyvault-key-disallow-client-payload-claim",
    description="Release policies never rely on x-ms-runtime claims (the attested caller chooses them).",
    types=(KEY,),
    reads=(RELEASE_DATA, "properties.attributes.exportable", "tags"),
    severity=Severity.CRITICAL,
    controls=("nist:AC-3", "hipaa:164.312(a)(1)", "gdpr:art32"),
    remediation="Remove every x-ms-runtime.* claim (client-payload, keys) from the release policy.",
    url="https://learn.microsoft.com/azure/attestation/claim-sets",
    confidential=True,
)
@_release_rule
def azure_keyvault_key_disallow_client_payload_claim(subject: Subject, found: list[list[Claim]]) -> Iterable[str]:
    for claim in _caller_chosen(found):
        yield f"{subject.name}: release policy uses caller-chosen claim {claim!r}"


# --- what a release policy's pins actually identify ----------------------------------------------

CLAIM_SETS_DOCS: Final = "https://learn.microsoft.com/azure/attestation/claim-sets"
GUEST_ATTESTATION_DOCS: Final = (
    "https://learn.microsoft.com/azure/confidential-computing/guest-attestation-confidential-virtual-machines-design"
)
SGX_PRODUCT_ID: Final = "x-ms-sgx-product-id"
# Hardware measurements MAA reports (leaf claim names; claim-sets, the TDX EAT profile
# https://learn.microsoft.com/azure/attestation/trust-domain-extensions-eat-profile and the CVM / container
# token examples). A measurement is only ever pinned exactly: `equals` a hex digest.
MEASUREMENT_CLAIMS: Final = frozenset(
    {
        "x-ms-sevsnpvm-launchmeasurement",
        "x-ms-sevsnpvm-hostdata",
        "x-ms-sevsnpvm-idkeydigest",
        "x-ms-sgx-mrenclave",
        "x-ms-sgx-mrsigner",
        "tdx_mrtd",
        "tdx_mrseam",
        "tdx_mrsignerseam",
        "tdx_mrconfigid",
        "tdx_mrowner",
        "tdx_mrownerconfig",
        "tdx_rtmr0",
        "tdx_rtmr1",
        "tdx_rtmr2",
        "tdx_rtmr3",
    }
)
# On an Azure confidential VM these measure Microsoft's paravisor (HCL) and UEFI firmware, not the guest
# OS or the workload ("Guest attestation design detail"); in a confidential container group the launch
# measurement is that of Microsoft's utility VM. Pinned alone, they bind a key to no workload.
PLATFORM_MEASUREMENTS: Final = frozenset({"x-ms-sevsnpvm-launchmeasurement", "tdx_mrtd"})
# Pins that do identify the workload: the confidential container policy hash, the SGX enclave / signer.
WORKLOAD_IDENTITY_CLAIMS: Final = frozenset({"x-ms-sevsnpvm-hostdata", "x-ms-sgx-mrenclave", "x-ms-sgx-mrsigner"})
# Claims of the JWT/EAT envelope and MAA's legacy SGX names (token examples): never a workload identity.
ENVELOPE_CLAIMS: Final = frozenset(
    {"iss", "iat", "exp", "nbf", "jti", "ver", "eat_profile", "dbgstat", "intuse", "tee", "is-debuggable", "svn", "product-id"}
)
_HEX: Final = re.compile(r"^[0-9a-fA-F]+$")


def claim_conditions(node: Any) -> Iterable[tuple[str, list[str], Any]]:
    """Every claim condition of a release policy, at any nesting: (claim, operators, first value).

    Unlike `branches`, this keeps each condition's real operator(s), whatever they are (a pattern
    operator outside the grammar included), so the comparison itself can be judged.
    """
    if isinstance(node, dict):
        if "claim" in node:
            operators = [k for k in node if k != "claim"]
            yield str(node["claim"]), operators, node.get(operators[0]) if operators else None
            return
        for key, child in node.items():
            if key.lower() in ("anyof", "allof") and isinstance(child, list):
                for item in child:
                    yield from claim_conditions(item)


def _custom_claim(leaf: str) -> bool:
    """A claim the collaboration's own MAA attestation policy emits (not Microsoft's, not the EAT's)."""
    return not leaf.startswith(("x-ms-", "tdx_")) and leaf not in ENVELOPE_CLAIMS


def _identifies_workload(claim: str, op: str, value: Any) -> bool:
    leaf = _leaf(claim)
    if op != "equals" or not isinstance(value, str) or not value or is_all_zero(value):
        return False
    return leaf in WORKLOAD_IDENTITY_CLAIMS or _custom_claim(leaf)


def _policy_of(subject: Subject) -> dict[str, Any] | None:
    """The decoded release policy (None for a key explicitly never exportable); fails closed."""
    if subject.has(RELEASE_DATA):
        return release_policy_of(subject.need(RELEASE_DATA))
    if falsy(subject.need("properties.attributes.exportable")):
        return None
    raise BadReleasePolicy("key is exportable but has no release policy: anyone with release rights gets it")


def _policy_rule(check):
    """`_release_rule` handing the check the whole decoded policy."""
    return _release_rule(check, read=_policy_of)


@resource_rule(
    name="azure-keyvault-key-disallow-product-id-range",
    description="Release policies compare the SGX product id exactly (equals), never as a range.",
    types=(KEY,),
    reads=(RELEASE_DATA, "properties.attributes.exportable", "tags"),
    severity=Severity.CRITICAL,
    controls=KEY_CONTROLS,
    remediation=(
        "Compare x-ms-sgx-product-id with `equals` and the enclave's own product id. The product id is how an "
        "enclave author segments the enclaves signed with one MRSIGNER: a greaterOrEquals/lessOrEquals (or any "
        "other operator) on it releases the key to every other product of the same signer when only MRSIGNER is "
        "pinned. Keep x-ms-sgx-svn as the greaterOrEquals floor (" + CLAIM_SETS_DOCS + ")."
    ),
    url=CLAIM_SETS_DOCS,
    confidential=True,
)
@_policy_rule
def azure_keyvault_key_disallow_product_id_range(subject: Subject, policy: dict[str, Any]) -> Iterable[str]:
    for claim, operators, value in claim_conditions(policy):
        if _leaf(claim) != SGX_PRODUCT_ID:
            continue
        if operators != ["equals"]:
            yield (
                f"{subject.name}: release policy compares {claim!r} by range ({'/'.join(operators) or 'no operator'}), "
                "not equals: it admits every other product of the same SGX signer"
            )
        elif not isinstance(value, int) or isinstance(value, bool):
            yield f"{subject.name}: release policy compares {claim!r} with {value!r}, not an exact integer product id"


@resource_rule(
    name="azure-keyvault-key-disallow-paravisor-only-binding",
    description=(
        "A party data key's release policy pins the workload itself (container policy hash, SGX enclave/signer, or a "
        "claim of the collaboration's own attestation policy), not only a CVM launch measurement or MRTD."
    ),
    types=(KEY,),
    reads=(RELEASE_DATA, "properties.attributes.exportable", "tags"),
    severity=Severity.CRITICAL,
    controls=KEY_CONTROLS,
    remediation=(
        "On an Azure confidential VM, x-ms-isolation-tee.x-ms-sevsnpvm-launchmeasurement and the TDX MRTD measure "
        "Microsoft's paravisor (HCL) and UEFI firmware, not the guest OS or the workload (" + GUEST_ATTESTATION_DOCS
        + "): any code running in the VM with its identity gets the key, and the value changes when Microsoft "
        "services the paravisor. Bind the key to the workload instead: run it in a confidential container group and "
        "pin top-level x-ms-sevsnpvm-hostdata (the CCE policy hash) with x-ms-attestation-type sevsnpvm, "
        "x-ms-compliance-status azure-compliant-uvm and is-debuggable false; or keep the CVM and pin a claim your own "
        "(isolated-mode) MAA attestation policy emits after checking the vTPM PCRs of a measured image, plus the "
        "x-ms-azurevm-* hardening claims."
    ),
    url=GUEST_ATTESTATION_DOCS,
    confidential=True,
    config={
        "reason": {
            "type": "string",
            "description": "Why a stack runs this rule below its default (mandatory) level, and what removes the exception.",
        }
    },
)
@_release_rule
def azure_keyvault_key_disallow_paravisor_only_binding(subject: Subject, found: list[list[Claim]]) -> Iterable[str]:
    # The confidential OS-disk key is released by the platform to the CVM's paravisor by design
    # (Microsoft's published disk policy); every other key that can be released is judged here.
    if not subject.party_data_key:
        return
    for i, claims in enumerate(found):
        platform = sorted({c for c, op, _ in claims if op == "equals" and _leaf(c) in PLATFORM_MEASUREMENTS})
        if platform and not any(_identifies_workload(c, op, v) for c, op, v in claims):
            yield (
                f"{subject.name}: release branch {i} pins only {', '.join(platform)}, which measures Microsoft's "
                "paravisor/firmware (or the container UVM), not the workload: any code in that TEE gets the key"
            )


@resource_rule(
    name="azure-keyvault-key-disallow-measurement-pattern",
    description="Attestation measurement claims are pinned exactly (equals a hex digest), never by a pattern, wildcard or other operator.",
    types=(KEY,),
    reads=(RELEASE_DATA, "properties.attributes.exportable", "tags"),
    severity=Severity.CRITICAL,
    controls=KEY_CONTROLS,
    remediation=(
        "Compare every measurement claim (launch measurement, host data, MRENCLAVE/MRSIGNER, MRTD, RTMRs, ...) with "
        "`equals` and the full approved hex digest. The Key Vault release policy grammar has no pattern matching "
        "(https://learn.microsoft.com/azure/key-vault/keys/policy-grammar): a '*' or '?' is not a pinned measurement, "
        "and notEquals/exists/ordering operators admit other builds."
    ),
    url="https://learn.microsoft.com/azure/key-vault/keys/policy-grammar",
    confidential=True,
)
@_policy_rule
def azure_keyvault_key_disallow_measurement_pattern(subject: Subject, policy: dict[str, Any]) -> Iterable[str]:
    for claim, operators, value in claim_conditions(policy):
        if _leaf(claim) not in MEASUREMENT_CLAIMS:
            continue
        if operators != ["equals"]:
            yield (
                f"{subject.name}: release policy matches measurement {claim!r} with "
                f"{'/'.join(operators) or 'no operator'}, not equals: a pattern is not a pinned measurement"
            )
        elif not isinstance(value, str) or not _HEX.match(value):
            yield (
                f"{subject.name}: release policy pins measurement {claim!r} to {value!r}, not an exact hex digest "
                "(wildcard or pattern): a pattern is not a pinned measurement"
            )


@resource_rule(
    name="azure-keyvault-key-disallow-service-release",
    description="Service keys (storage CMK, disk encryption, cluster secrets) are never exportable and have no release policy.",
    types=(KEY,),
    reads=("tags", "properties.attributes.exportable", RELEASE_DATA),
    severity=Severity.HIGH,
    controls=("nist:SC-12", "nist:AC-6", "hipaa:164.312(a)(2)(iv)", "gdpr:art32"),
    remediation=(
        "Declare service keys with attributes.exportable=False and no release_policy: Azure Storage, disk "
        "encryption sets and AKS KMS wrap and unwrap inside Key Vault through their identity's 'Key Vault Crypto "
        "Service Encryption User' role. A key that must be released belongs to an attested workload: tag it "
        "party-data (or confidential-disk for a confidential OS disk) and give it a strict release policy."
    ),
    url="https://learn.microsoft.com/azure/storage/common/customer-managed-keys-overview",
    confidential=True,
)
def azure_keyvault_key_disallow_service_release(subject: Subject) -> Iterable[str]:
    if not subject.service_key:
        return
    if not falsy(subject.need("properties.attributes.exportable")):
        yield f"{subject.name}: {subject.purpose} key is exportable: a service key never leaves the HSM"
    if subject.has("properties.releasePolicy"):
        yield f"{subject.name}: {subject.purpose} key has a release policy: service keys are never released"


@resource_rule(
    name="azure-keyvault-key-enforce-hsm-release",
    description="Keys are HSM-backed in prod, and exportable keys are always HSM-backed with a release policy.",
    types=(KEY,),
    reads=("properties.kty", "properties.attributes.exportable", RELEASE_DATA),
    severity=Severity.HIGH,
    controls=("hipaa:164.312(a)(2)(iv)", "nist:SC-12", "nist:SC-28(1)", "gdpr:art32"),
    remediation="Use kty RSA-HSM (Key Vault Premium or Managed HSM); exportable keys need a release_policy.",
    url="https://learn.microsoft.com/azure/key-vault/keys/about-keys",
    confidential=True,
)
def azure_keyvault_key_enforce_hsm_release(subject: Subject) -> Iterable[str]:
    kty = subject.need("properties.kty")
    exportable = truthy(subject.need("properties.attributes.exportable"))
    if (exportable or subject.prod) and kty not in HSM_KTY:
        yield f"{subject.name}: kty {kty!r} is not HSM-backed ({'exportable' if exportable else 'prod'})"
    if exportable and not subject.has(RELEASE_DATA):
        yield f"{subject.name}: exportable key without a release policy"


@resource_rule(
    name="azure-keyvault-key-enable-rotation",
    description="Key Vault keys have a rotation policy rotating at most every 90 days.",
    types=(KEY,),
    reads=(
        "properties.rotationPolicy.lifetimeActions[*].action.type",
        "properties.rotationPolicy.lifetimeActions[*].trigger.timeAfterCreate",
    ),
    severity=Severity.HIGH,
    controls=("hipaa:164.312(a)(2)(iv)", "nist:SC-12"),
    remediation="Add rotation_policy.lifetime_actions=[{action: {type: 'rotate'}, trigger: {time_after_create: 'P90D'}}].",
    url="https://learn.microsoft.com/azure/key-vault/keys/how-to-configure-key-rotation",
)
def azure_keyvault_key_enable_rotation(subject: Subject) -> Iterable[str]:
    actions = subject.need_all("properties.rotationPolicy.lifetimeActions[*]")
    days = [
        iso_duration_days(str(a.get("trigger", {}).get("timeAfterCreate", "")))
        for a in actions
        if str(a.get("action", {}).get("type", "")).lower() == "rotate"
    ]
    if not any(d is not None and d <= 90 for d in days):
        yield f"{subject.name}: no 'rotate' lifetime action with timeAfterCreate <= P90D"


# --- Key Vault -----------------------------------------------------------------------------------

VAULT_CONTROLS: Final = ("cis-azure:8.3", "hipaa:164.308(a)(7)", "nist:SC-12")


@resource_rule(
    name="azure-keyvault-vault-enable-purge-protection",
    description="Key vaults have soft delete and purge protection.",
    types=(VAULT,),
    reads=("properties.enablePurgeProtection", "properties.enableSoftDelete"),
    severity=Severity.HIGH,
    controls=VAULT_CONTROLS,
    remediation="Set enable_purge_protection=True and enable_soft_delete=True.",
    url="https://learn.microsoft.com/azure/key-vault/general/soft-delete-overview",
)
def azure_keyvault_vault_enable_purge_protection(subject: Subject) -> Iterable[str]:
    yield from require_true(subject, "properties.enablePurgeProtection", "properties.enableSoftDelete")


@resource_rule(
    name="azure-keyvault-vault-enforce-rbac",
    description="Key vaults use Azure RBAC (data-plane roles such as Crypto Service Release User), not access policies.",
    types=(VAULT,),
    reads=("properties.enableRbacAuthorization",),
    severity=Severity.HIGH,
    controls=("nist:AC-6", "hipaa:164.312(a)(1)", "cis-azure:8.3"),
    remediation="Set enable_rbac_authorization=True and grant 'Key Vault Crypto Service Release User' only.",
    url="https://learn.microsoft.com/azure/key-vault/general/rbac-guide",
)
def azure_keyvault_vault_enforce_rbac(subject: Subject) -> Iterable[str]:
    if not truthy(subject.need("properties.enableRbacAuthorization")):
        yield f"{subject.name}: enableRbacAuthorization is not true"


@resource_rule(
    name="azure-keyvault-vault-disallow-public-network",
    description="Key vaults are not reachable from public networks.",
    types=(VAULT,),
    reads=("properties.publicNetworkAccess", "properties.networkAcls.defaultAction"),
    severity=Severity.HIGH,
    controls=("nist:SC-7", "hipaa:164.312(a)(1)", "cis-azure:8.3"),
    remediation="Set public_network_access='Disabled' (private endpoint), or network_acls default_action='Deny'.",
    url="https://learn.microsoft.com/azure/key-vault/general/network-security",
)
def azure_keyvault_vault_disallow_public_network(subject: Subject) -> Iterable[str]:
    if subject.get("properties.publicNetworkAccess") == "Disabled":
        return
    if subject.get("properties.networkAcls.defaultAction") == "Deny":
        return
    subject.need("properties.publicNetworkAccess")
    yield f"{subject.name}: public network access is enabled and the network ACL does not default to Deny"


@resource_rule(
    name="azure-keyvault-vault-enforce-premium-sku",
    description="Key vaults holding release keys are Premium (HSM-backed keys).",
    types=(VAULT,),
    reads=("properties.sku.name",),
    severity=Severity.HIGH,
    controls=("nist:SC-12", "hipaa:164.312(a)(2)(iv)"),
    remediation="Set sku={'family': 'A', 'name': 'premium'} (or use Managed HSM).",
    url="https://learn.microsoft.com/azure/key-vault/keys/about-keys",
    confidential=True,
)
def azure_keyvault_vault_enforce_premium_sku(subject: Subject) -> Iterable[str]:
    if str(subject.need("properties.sku.name")).lower() != "premium":
        yield f"{subject.name}: sku {subject.get('properties.sku.name')!r} cannot hold HSM keys for secure key release"


# --- compute -------------------------------------------------------------------------------------

_OS_SECURITY: Final = "storageProfile.osDisk.managedDisk.securityProfile"


@resource_rule(
    name="azure-compute-vm-enforce-confidential",
    description="Workload VMs are confidential VMs (DCas/ECas/DCes sizes) with encrypted guest state.",
    types=(VM,),
    reads=("securityProfile.securityType", f"{_OS_SECURITY}.securityEncryptionType", "hardwareProfile.vmSize"),
    severity=Severity.CRITICAL,
    controls=("hipaa:164.312(a)(2)(iv)", "nist:SC-39", "gdpr:art32"),
    remediation=(
        "Set security_profile.security_type='ConfidentialVM', a confidential size (e.g. Standard_DC4as_v5) "
        "and os_disk.managed_disk.security_profile.security_encryption_type='DiskWithVMGuestState' "
        "(VMGuestStateOnly is accepted outside prod)."
    ),
    url="https://learn.microsoft.com/azure/confidential-computing/confidential-vm-overview",
    confidential=True,
)
def azure_compute_vm_enforce_confidential(subject: Subject) -> Iterable[str]:
    if subject.need("securityProfile.securityType") != "ConfidentialVM":
        yield f"{subject.name}: securityType is {subject.get('securityProfile.securityType')!r}, not ConfidentialVM"
    size = str(subject.need("hardwareProfile.vmSize"))
    if not CONFIDENTIAL_SIZE.match(size):
        yield f"{subject.name}: {size!r} is not a confidential VM size"
    allowed = {"DiskWithVMGuestState"} if subject.prod else {"DiskWithVMGuestState", "VMGuestStateOnly"}
    encryption = subject.need(f"{_OS_SECURITY}.securityEncryptionType")
    if encryption not in allowed:
        yield f"{subject.name}: securityEncryptionType {encryption!r} not in {sorted(allowed)}"


@resource_rule(
    name="azure-compute-vm-enable-secure-boot-vtpm",
    description="VMs boot with UEFI secure boot and a vTPM.",
    types=(VM,),
    reads=("securityProfile.uefiSettings.secureBootEnabled", "securityProfile.uefiSettings.vTpmEnabled"),
    severity=Severity.HIGH,
    controls=("cis-azure:8.11", "nist:SI-7", "hipaa:164.312(c)(1)"),
    remediation="Set security_profile.uefi_settings={'secure_boot_enabled': True, 'v_tpm_enabled': True}.",
    url="https://learn.microsoft.com/azure/virtual-machines/trusted-launch",
    confidential=True,
)
def azure_compute_vm_enable_secure_boot_vtpm(subject: Subject) -> Iterable[str]:
    for flag in ("secureBootEnabled", "vTpmEnabled"):
        if not truthy(subject.need(f"securityProfile.uefiSettings.{flag}")):
            yield f"{subject.name}: uefiSettings.{flag} is not true"


@resource_rule(
    name="azure-compute-vm-enforce-cmk-disk",
    description="VM OS disks are encrypted with a customer-managed disk encryption set.",
    types=(VM,),
    reads=(
        "storageProfile.osDisk.managedDisk.diskEncryptionSet.id",
        f"{_OS_SECURITY}.diskEncryptionSet.id",
    ),
    severity=Severity.HIGH,
    controls=("hipaa:164.312(a)(2)(iv)", "nist:SC-28(1)", "gdpr:art32"),
    remediation="Reference a DiskEncryptionSet (ConfidentialVmEncryptedWithCustomerKey for CVMs) from the OS disk.",
    url="https://learn.microsoft.com/azure/virtual-machines/disk-encryption",
)
def azure_compute_vm_enforce_cmk_disk(subject: Subject) -> Iterable[str]:
    if subject.get("storageProfile.osDisk.managedDisk.diskEncryptionSet.id") or subject.get(
        f"{_OS_SECURITY}.diskEncryptionSet.id"
    ):
        return
    subject.need(f"{_OS_SECURITY}.diskEncryptionSet.id")
    yield f"{subject.name}: the OS disk's disk encryption set id is empty"


_DES_TYPES: Final = {
    "ConfidentialVmEncryptedWithCustomerKey",
    "EncryptionAtRestWithCustomerKey",
    "EncryptionAtRestWithPlatformAndCustomerKeys",
}


@resource_rule(
    name="azure-compute-diskencryptionset-configure-cmk",
    description="Disk encryption sets use a customer key and follow its rotation.",
    types=(DES,),
    reads=("encryptionType", "activeKey.keyUrl", "rotationToLatestKeyVersionEnabled"),
    severity=Severity.HIGH,
    controls=("hipaa:164.312(a)(2)(iv)", "nist:SC-28(1)", "nist:SC-12"),
    remediation="Set encryption_type (ConfidentialVmEncryptedWithCustomerKey for CVMs), active_key.key_url and rotation_to_latest_key_version_enabled=True.",
    url="https://learn.microsoft.com/azure/virtual-machines/disk-encryption",
)
def azure_compute_diskencryptionset_configure_cmk(subject: Subject) -> Iterable[str]:
    encryption_type = subject.need("encryptionType")
    if encryption_type not in _DES_TYPES:
        yield f"{subject.name}: encryptionType {subject.get('encryptionType')!r} is not customer-managed"
    yield from require_set(subject, "activeKey.keyUrl")
    if encryption_type != CONFIDENTIAL_DES:
        # Confidential sets cannot auto-rotate: azure-compute-diskencryptionset-disallow-confidential-auto-rotation.
        yield from require_true(subject, "rotationToLatestKeyVersionEnabled")


CONFIDENTIAL_DES: Final = "ConfidentialVmEncryptedWithCustomerKey"


@resource_rule(
    name="azure-compute-diskencryptionset-disallow-confidential-auto-rotation",
    description="Confidential VM disk encryption sets do not auto-rotate their key (Azure does not support it).",
    types=(DES,),
    reads=("encryptionType", "rotationToLatestKeyVersionEnabled"),
    severity=Severity.HIGH,
    controls=("hipaa:164.312(a)(2)(iv)", "nist:SC-12", "nist:SC-28(1)", "gdpr:art32"),
    remediation=(
        "Set rotation_to_latest_key_version_enabled=False on a ConfidentialVmEncryptedWithCustomerKey disk "
        "encryption set and rotate by hand: stop every CVM using the set, point active_key at the new key "
        "version (with the platform release policy), start the VMs."
    ),
    url="https://learn.microsoft.com/azure/confidential-computing/key-rotation-offline",
    confidential=True,
)
def azure_compute_diskencryptionset_disallow_confidential_auto_rotation(subject: Subject) -> Iterable[str]:
    if subject.need("encryptionType") != CONFIDENTIAL_DES:
        return
    if subject.need("rotationToLatestKeyVersionEnabled") is not False:
        yield (
            f"{subject.name}: a confidential VM disk encryption set has rotationToLatestKeyVersionEnabled "
            f"{subject.get('rotationToLatestKeyVersionEnabled')!r}: auto-rotation is not supported for "
            "confidential OS-disk keys; set it to false and rotate manually"
        )


@resource_rule(
    name="azure-attestation-attestationprovider-require-policy-signing-certificates",
    description="In prod, attestation providers run in isolated mode (policy signing certificates).",
    types=(ATTESTATION_PROVIDER,),
    reads=("properties.policySigningCertificates.keys",),
    severity=Severity.HIGH,
    controls=("nist:AC-3", "nist:CM-5", "nist:SC-12", "hipaa:164.312(a)(1)", "gdpr:art32"),
    remediation=(
        "Set properties.policy_signing_certificates.keys to the certificates of the policy signers the parties "
        "agreed on (isolated mode); in ccp: ccp-azure:attestationPolicySigningCertificates."
    ),
    url="https://learn.microsoft.com/azure/attestation/basic-concepts#attestation-provider",
    confidential=True,
)
def azure_attestation_attestationprovider_require_policy_signing_certificates(subject: Subject) -> Iterable[str]:
    if not subject.prod:
        return
    keys = subject.need("properties.policySigningCertificates.keys")
    if not keys:
        yield (
            f"{subject.name}: attestation provider has no policy signing certificates: it runs in AAD mode, "
            "where anyone with Azure RBAC write on it can replace the attestation policy every release trusts"
        )


# --- Azure confidential VM workload hosts (the measured-guest path) -------------------------------

TPM_POLICY_DOCS: Final = "https://learn.microsoft.com/azure/attestation/tpm-attestation-sample-policies"
# Guest-token claims (documented sample token, GUEST_TOKEN_DOCS) and the value a hardened, non-debug guest shows.
GUEST_HARDENING: Final[dict[str, bool]] = {
    "secureboot": True,
    "x-ms-azurevm-debuggersdisabled": True,
    "x-ms-azurevm-kerneldebug-enabled": False,
    "x-ms-azurevm-bootdebug-enabled": False,
}


def _guest_branch(claims: list[Claim]) -> bool:
    """A branch that accepts an Azure CVM guest (vTPM) token: `azurevm`, or claims only such a token carries."""
    return any(
        (c.lower() == "x-ms-attestation-type" and v == "azurevm")
        or c.lower().startswith(("x-ms-isolation-tee.", "x-ms-azurevm-"))
        for c, _, v in claims
    )


def _guest_problems(authority: Any, claims: list[Claim]) -> Iterable[str]:
    pinned = {c.lower(): v for c, op, v in claims if op == "equals"}
    if not isinstance(authority, str) or SHARED_AUTHORITY.match(authority):
        yield (
            f"authority {authority!r} is a shared MAA endpoint (Microsoft's default policy checks no vTPM PCR): name "
            "the collaboration's own isolated-mode attestation provider"
        )
    policy_hash = pinned.get("x-ms-policy-hash")
    if not isinstance(policy_hash, str) or not policy_hash:
        yield "does not pin x-ms-policy-hash: any attestation policy of the provider (one checking no PCR) is accepted"
    if not any(_custom_claim(_leaf(c)) and isinstance(v, str) and v for c, v in pinned.items()):
        yield "pins no claim of the collaboration's own attestation policy (the result of its vTPM PCR check)"
    for claim, value in GUEST_HARDENING.items():
        if pinned.get(claim, None) is not value:
            yield f"does not pin {claim} = {str(value).lower()}"


@resource_rule(
    name="azure-keyvault-key-enforce-measured-guest-release",
    description=(
        "A key released to an Azure confidential VM guest (vTPM token) is released only on a token of a custom MAA "
        "provider whose pinned attestation policy (x-ms-policy-hash) checks the guest's vTPM PCRs and issues the "
        "claim the key pins, with the documented secure-boot and no-debugger claims."
    ),
    types=(KEY,),
    reads=(RELEASE_DATA, "properties.attributes.exportable", "tags"),
    severity=Severity.CRITICAL,
    controls=KEY_CONTROLS + ("nist:SI-7", "cis-azure:8.11"),
    remediation=(
        "An Azure CVM's hardware claims measure Microsoft's paravisor, not the guest; the guest OS is in the vTPM "
        "PCRs (" + GUEST_ATTESTATION_DOCS + "). Declare your own attestation provider with the parties' "
        "policy-signing certificates (isolated mode), set an AzureGuest policy (version 1.2) that compares each PCR "
        "of the measured image (`PCRs[? Index == `N`].Digests.SHA256`, " + TPM_POLICY_DOCS + ") and issues a claim, "
        "and in the release policy name that provider's attestUri, pin that claim, x-ms-policy-hash of that policy "
        "(claim-sets), secureboot true, x-ms-azurevm-debuggersdisabled true and x-ms-azurevm-kerneldebug-enabled / "
        "bootdebug-enabled false (" + GUEST_TOKEN_DOCS + "). In ccp: measurements.azureCvm.pcrs."
    ),
    url=GUEST_TOKEN_DOCS,
    confidential=True,
)
@_policy_rule
def azure_keyvault_key_enforce_measured_guest_release(subject: Subject, policy: dict[str, Any]) -> Iterable[str]:
    # A confidential OS-disk key's platform policy (top-level sevsnpvm/tdxvm claims) has no guest branch.
    for i, entry in enumerate(policy.get("anyOf") or []):
        if not isinstance(entry, dict):
            continue
        for claims in branches({k: v for k, v in entry.items() if k != "authority"}):
            if _guest_branch(claims):
                for problem in _guest_problems(entry.get("authority"), claims):
                    yield f"{subject.name}: release branch {i} accepts an Azure CVM guest token but {problem}"


@resource_rule(
    name="azure-compute-vm-disallow-operator-access",
    description=(
        "Confidential VMs that run a collaboration workload have no VM agent, no extension operations (so no "
        "extensions or Run Command) and no password login."
    ),
    types=(VM,),
    reads=(
        "tags",
        "securityProfile.securityType",
        "osProfile.allowExtensionOperations",
        "osProfile.linuxConfiguration.provisionVMAgent",
        "osProfile.linuxConfiguration.disablePasswordAuthentication",
        "osProfile.linuxConfiguration.ssh.publicKeys[*].keyData",
    ),
    severity=Severity.CRITICAL,
    controls=("hipaa:164.312(a)(1)", "gdpr:art32", "nist:AC-6", "nist:CM-7", "nist:SI-7", "cis-azure:7.4"),
    remediation=(
        "Set os_profile.allow_extension_operations=False and os_profile.linux_configuration.provision_vm_agent=False "
        "and disable_password_authentication=True, with no SSH key but ccp's no-access one (components/azure/options.py). The vTPM PCRs a key release pins measure the "
        "boot chain only: code the operator runs later through the VM agent (extensions, Run Command) or a login "
        "runs inside the attested guest and gets its token (" + GUEST_ATTESTATION_DOCS + ")."
    ),
    url="https://learn.microsoft.com/azure/virtual-machines/extensions/agent-linux",
    confidential=True,
)
def azure_compute_vm_disallow_operator_access(subject: Subject) -> Iterable[str]:
    if not runs_collaboration_workload(subject) or subject.need("securityProfile.securityType") != "ConfidentialVM":
        return
    if not falsy(subject.need("osProfile.allowExtensionOperations")):
        yield f"{subject.name}: allowExtensionOperations is not false: extensions and Run Command execute in the guest"
    if not falsy(subject.need("osProfile.linuxConfiguration.provisionVMAgent")):
        yield f"{subject.name}: provisionVMAgent is not false: the VM agent runs operator commands in the guest"
    if not truthy(subject.need("osProfile.linuxConfiguration.disablePasswordAuthentication")):
        yield f"{subject.name}: disablePasswordAuthentication is not true: an admin password logs in to the guest"
    if keys := [k for k in subject.all("osProfile.linuxConfiguration.ssh.publicKeys[*].keyData") if opens_login(k)]:
        yield f"{subject.name}: {len(keys)} SSH key(s) other than ccp's no-access key log in to the guest"


# --- network -------------------------------------------------------------------------------------


@resource_rule(
    name="azure-network-networkinterface-disallow-public-ip",
    description="Network interfaces have no public IP address.",
    types=(NIC,),
    reads=("ipConfigurations[*].publicIPAddress", "ipConfigurations[*].name"),
    severity=Severity.HIGH,
    controls=("nist:SC-7", "hipaa:164.312(a)(1)", "gdpr:art32"),
    remediation="Remove public_ip_address from every ip configuration; reach VMs through Bastion or a private network.",
    url="https://learn.microsoft.com/azure/virtual-network/ip-services/public-ip-addresses",
)
def azure_network_networkinterface_disallow_public_ip(subject: Subject) -> Iterable[str]:
    for i, config in enumerate(subject.need_all("ipConfigurations[*]")):
        if config.get("publicIPAddress"):
            yield f"{subject.name}: ipConfigurations[{i}] has a public IP address"


def _open_inbound(rule: Any) -> list[str]:
    if str(rule.get("direction", "")).lower() != "inbound" or str(rule.get("access", "")).lower() != "allow":
        return []
    sources = [rule.get("sourceAddressPrefix")] + list(rule.get("sourceAddressPrefixes") or [])
    return [str(s) for s in sources if s is not None and str(s).lower() in OPEN_CIDRS]


@resource_rule(
    name="azure-network-networksecuritygroup-disallow-open-ingress",
    description="Network security rules allow no inbound traffic from * / Internet / 0.0.0.0/0.",
    types=(NSG, SECURITY_RULE),
    reads={
        NSG: (
            "securityRules[*].direction",
            "securityRules[*].access",
            "securityRules[*].sourceAddressPrefix",
            "securityRules[*].sourceAddressPrefixes",
        ),
        SECURITY_RULE: ("direction", "access", "sourceAddressPrefix", "sourceAddressPrefixes"),
    },
    severity=Severity.HIGH,
    controls=("nist:SC-7", "hipaa:164.312(a)(1)"),
    remediation="Restrict inbound sources to virtual network ranges or service tags of the collaboration.",
    url="https://learn.microsoft.com/azure/virtual-network/network-security-groups-overview",
)
def azure_network_networksecuritygroup_disallow_open_ingress(subject: Subject) -> Iterable[str]:
    if subject.type == SECURITY_RULE:
        subject.need("direction")
        subject.need("access")
        if not subject.has("sourceAddressPrefix") and not subject.has("sourceAddressPrefixes"):
            subject.need("sourceAddressPrefix")
        rules = [subject.props]
    else:
        rules = subject.all("securityRules[*]")
        # Fail closed as for a SecurityRule: an inline rule without direction, access or a source is not
        # judged "not inbound" or "not open" by default.
        for i, rule in enumerate(rules):
            for key in ("direction", "access"):
                if rule.get(key) is None:
                    raise MissingProperty(f"securityRules[{i}].{key}")
            if rule.get("sourceAddressPrefix") is None and not rule.get("sourceAddressPrefixes"):
                raise MissingProperty(f"securityRules[{i}].sourceAddressPrefix")
    for rule in rules:
        for source in _open_inbound(rule):
            yield f"{subject.name}: rule {rule.get('name', '?')!r} allows inbound from {source}"


# --- storage -------------------------------------------------------------------------------------


@resource_rule(
    name="azure-storage-storageaccount-enforce-cmk",
    description="Storage accounts encrypt with a Key Vault key and infrastructure encryption.",
    types=(STORAGE,),
    reads=("encryption.keySource", "encryption.keyVaultProperties.keyName", "encryption.requireInfrastructureEncryption"),
    severity=Severity.HIGH,
    controls=("hipaa:164.312(a)(2)(iv)", "gdpr:art32", "nist:SC-28(1)"),
    remediation="Set encryption.key_source='Microsoft.Keyvault', key_vault_properties (the party key) and require_infrastructure_encryption=True.",
    url="https://learn.microsoft.com/azure/storage/common/customer-managed-keys-overview",
)
def azure_storage_storageaccount_enforce_cmk(subject: Subject) -> Iterable[str]:
    if subject.need("encryption.keySource") != "Microsoft.Keyvault":
        yield f"{subject.name}: encryption.keySource is {subject.get('encryption.keySource')!r}, not Microsoft.Keyvault"
    yield from require_set(subject, "encryption.keyVaultProperties.keyName")
    if not truthy(subject.need("encryption.requireInfrastructureEncryption")):
        yield f"{subject.name}: requireInfrastructureEncryption is not true"


@resource_rule(
    name="azure-storage-storageaccount-disallow-public-access",
    description="Storage accounts forbid public blob access and deny network access by default.",
    types=(STORAGE,),
    reads=("allowBlobPublicAccess", "networkRuleSet.defaultAction"),
    severity=Severity.HIGH,
    controls=("cis-azure:4.7", "hipaa:164.312(a)(1)", "gdpr:art32", "nist:AC-3"),
    remediation="Set allow_blob_public_access=False and network_rule_set.default_action='Deny'.",
    url="https://learn.microsoft.com/azure/storage/blobs/anonymous-read-access-prevent",
)
def azure_storage_storageaccount_disallow_public_access(subject: Subject) -> Iterable[str]:
    yield from require_false(subject, "allowBlobPublicAccess")
    if subject.need("networkRuleSet.defaultAction") != "Deny":
        yield f"{subject.name}: networkRuleSet.defaultAction is not Deny"


@resource_rule(
    name="azure-storage-storageaccount-enforce-tls",
    description="Storage accounts accept HTTPS only, TLS 1.2 or later.",
    types=(STORAGE,),
    reads=("enableHttpsTrafficOnly", "minimumTlsVersion"),
    severity=Severity.HIGH,
    controls=("hipaa:164.312(e)(1)", "nist:SC-8", "gdpr:art32"),
    remediation="Set enable_https_traffic_only=True and minimum_tls_version='TLS1_2'.",
    url="https://learn.microsoft.com/azure/storage/common/transport-layer-security-configure-minimum-version",
)
def azure_storage_storageaccount_enforce_tls(subject: Subject) -> Iterable[str]:
    yield from require_true(subject, "enableHttpsTrafficOnly")
    if subject.need("minimumTlsVersion") not in ("TLS1_2", "TLS1_3"):
        yield f"{subject.name}: minimumTlsVersion is {subject.get('minimumTlsVersion')!r}"


@resource_rule(
    name="azure-storage-storageaccount-disallow-shared-key",
    description="Storage accounts refuse shared-key (account key) authorization: Entra ID only.",
    types=(STORAGE,),
    reads=("allowSharedKeyAccess",),
    severity=Severity.MEDIUM,
    controls=("nist:AC-6", "nist:IA-2", "hipaa:164.312(d)"),
    remediation="Set allow_shared_key_access=False and grant data roles to identities.",
    url="https://learn.microsoft.com/azure/storage/common/shared-key-authorization-prevent",
)
def azure_storage_storageaccount_disallow_shared_key(subject: Subject) -> Iterable[str]:
    if holds_party_data(subject):
        return  # judged by azure-storage-storageaccount-disallow-party-shared-key (critical, mandatory)
    yield from require_false(subject, "allowSharedKeyAccess")


# --- AKS -----------------------------------------------------------------------------------------

AKS_DOCS: Final = "https://learn.microsoft.com/azure/aks/"


@resource_rule(
    name="azure-containerservice-managedcluster-enforce-private-cluster",
    description="AKS API servers are private.",
    types=(AKS,),
    reads=("apiServerAccessProfile.enablePrivateCluster",),
    severity=Severity.HIGH,
    controls=("nist:SC-7", "hipaa:164.312(a)(1)"),
    remediation="Set api_server_access_profile.enable_private_cluster=True.",
    url=AKS_DOCS + "private-clusters",
)
def azure_containerservice_managedcluster_enforce_private_cluster(subject: Subject) -> Iterable[str]:
    if not truthy(subject.need("apiServerAccessProfile.enablePrivateCluster")):
        yield f"{subject.name}: the API server is public"


@resource_rule(
    name="azure-containerservice-managedcluster-enforce-confidential-nodes",
    description="AKS node pools run on confidential VM sizes without node public IPs.",
    types=(AKS,),
    reads=("agentPoolProfiles[*].vmSize", "agentPoolProfiles[*].enableNodePublicIP"),
    severity=Severity.HIGH,
    controls=("hipaa:164.312(a)(2)(iv)", "nist:SC-39", "nist:SC-7"),
    remediation="Use DCasv5/DCas_cc_v5 sizes and enable_node_public_ip=False on every agent pool.",
    url=AKS_DOCS + "use-cvm",
    confidential=True,
)
def azure_containerservice_managedcluster_enforce_confidential_nodes(subject: Subject) -> Iterable[str]:
    for i, pool in enumerate(subject.need_all("agentPoolProfiles[*]")):
        size = pool.get("vmSize")
        if not size or not CONFIDENTIAL_SIZE.match(str(size)):
            yield f"{subject.name}: agent pool {i} size {size!r} is not confidential"
        if not falsy(pool.get("enableNodePublicIP")):
            yield f"{subject.name}: agent pool {i} enableNodePublicIP is not false"


@resource_rule(
    name="azure-containerservice-managedcluster-enable-kms-secrets",
    description="AKS encrypts secrets with a Key Vault KMS key and OS disks with a disk encryption set.",
    types=(AKS,),
    reads=(
        "securityProfile.azureKeyVaultKms.enabled",
        "securityProfile.azureKeyVaultKms.keyId",
        "diskEncryptionSetID",
    ),
    severity=Severity.HIGH,
    controls=("nist:SC-28", "hipaa:164.312(a)(2)(iv)"),
    remediation="Set security_profile.azure_key_vault_kms (enabled, key_id) and disk_encryption_set_id.",
    url=AKS_DOCS + "use-kms-etcd-encryption",
)
def azure_containerservice_managedcluster_enable_kms_secrets(subject: Subject) -> Iterable[str]:
    if not truthy(subject.need("securityProfile.azureKeyVaultKms.enabled")):
        yield f"{subject.name}: Key Vault KMS secrets encryption is disabled"
    if not subject.need("securityProfile.azureKeyVaultKms.keyId"):
        yield f"{subject.name}: azureKeyVaultKms.keyId is empty"
    yield from require_set(subject, "diskEncryptionSetID")


# --- identity and audit --------------------------------------------------------------------------

# Built-in role definition GUIDs (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
BROAD_ROLES: Final = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "00482a5a-887f-4fb3-b363-3b7fe8e74483": "Key Vault Administrator",
    "14b46e9e-c2b7-41b4-b07b-48a6ebf60603": "Key Vault Crypto Officer",
}


@resource_rule(
    name="azure-authorization-roleassignment-disallow-broad-role",
    description="Role assignments grant narrow data-plane roles (e.g. Crypto Service Release User), never Owner/Contributor/Key Vault admin.",
    types=(ROLE_ASSIGNMENT,),
    reads=("roleDefinitionId",),
    severity=Severity.HIGH,
    controls=("nist:AC-6", "hipaa:164.312(a)(1)", "gdpr:art25"),
    remediation="Assign 'Key Vault Crypto Service Release User' (08bbd89e-9f13-488c-ac41-acfcb10c90ab) scoped to the key.",
    url="https://learn.microsoft.com/azure/key-vault/general/rbac-guide",
)
def azure_authorization_roleassignment_disallow_broad_role(subject: Subject) -> Iterable[str]:
    role = str(subject.need("roleDefinitionId")).rsplit("/", 1)[-1].lower()
    if role in BROAD_ROLES:
        yield f"{subject.name}: assigns the broad role {BROAD_ROLES[role]!r}"


@resource_rule(
    name="azure-monitor-diagnosticsetting-enable-audit-logs",
    description="Diagnostic settings send audit logs to a workspace or storage account.",
    types=(DIAGNOSTIC,),
    reads=("logs[*].enabled", "logs[*].category", "logs[*].categoryGroup", "workspaceId", "storageAccountId"),
    severity=Severity.MEDIUM,
    controls=("hipaa:164.312(b)", "gdpr:art30", "nist:AU-2", "nist:AU-12"),
    remediation="Enable logs with category_group 'audit' (or 'allLogs' / category 'AuditEvent') to a Log Analytics workspace.",
    url="https://learn.microsoft.com/azure/key-vault/general/logging",
)
def azure_monitor_diagnosticsetting_enable_audit_logs(subject: Subject) -> Iterable[str]:
    if not audit_enabled(subject):
        yield (
            f"{subject.name}: no enabled audit log category (AuditEvent, category group audit or allLogs, "
            "or all of StorageRead/StorageWrite/StorageDelete)"
        )
    if not subject.get("workspaceId") and not subject.get("storageAccountId"):
        subject.need("workspaceId")


# Storage services have no AuditEvent category: their resource logs are these three, and only all of
# them together record every data access (https://learn.microsoft.com/azure/storage/blobs/monitor-blob-storage-reference).
STORAGE_AUDIT_CATEGORIES: Final = frozenset({"StorageRead", "StorageWrite", "StorageDelete"})


def audit_enabled(subject: Subject) -> bool:
    """An audit category group, Key Vault's AuditEvent, or every storage access category is on."""
    enabled = [log for log in subject.need_all("logs[*]") if truthy(log.get("enabled"))]
    categories = {log.get("category") for log in enabled}
    return (
        "AuditEvent" in categories
        or STORAGE_AUDIT_CATEGORIES <= categories
        or any(str(log.get("categoryGroup", "")).lower() in ("audit", "alllogs") for log in enabled)
    )


RESOURCE_POLICIES = [
    azure_keyvault_key_enforce_workload_claim,
    azure_keyvault_key_disallow_debuggable_release,
    azure_keyvault_key_disallow_client_payload_claim,
    azure_keyvault_key_disallow_product_id_range,
    azure_keyvault_key_disallow_paravisor_only_binding,
    azure_keyvault_key_disallow_measurement_pattern,
    azure_keyvault_key_disallow_service_release,
    azure_keyvault_key_enforce_hsm_release,
    azure_keyvault_key_enable_rotation,
    azure_keyvault_vault_enable_purge_protection,
    azure_keyvault_vault_enforce_rbac,
    azure_keyvault_vault_disallow_public_network,
    azure_keyvault_vault_enforce_premium_sku,
    azure_compute_vm_enforce_confidential,
    azure_compute_vm_enable_secure_boot_vtpm,
    azure_compute_vm_enforce_cmk_disk,
    azure_compute_diskencryptionset_configure_cmk,
    azure_compute_diskencryptionset_disallow_confidential_auto_rotation,
    azure_attestation_attestationprovider_require_policy_signing_certificates,
    azure_keyvault_key_enforce_measured_guest_release,
    azure_compute_vm_disallow_operator_access,
    azure_network_networkinterface_disallow_public_ip,
    azure_network_networksecuritygroup_disallow_open_ingress,
    azure_storage_storageaccount_enforce_cmk,
    azure_storage_storageaccount_disallow_public_access,
    azure_storage_storageaccount_enforce_tls,
    azure_storage_storageaccount_disallow_shared_key,
    azure_containerservice_managedcluster_enforce_private_cluster,
    azure_containerservice_managedcluster_enforce_confidential_nodes,
    azure_containerservice_managedcluster_enable_kms_secrets,
    azure_authorization_roleassignment_disallow_broad_role,
    azure_monitor_diagnosticsetting_enable_audit_logs,
]
POLICIES = RESOURCE_POLICIES


# --- paths to a key's plaintext that bypass attestation (issue 12, item 5) ------------------------

ROLE_DOCS: Final = "https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/security"
# Key Vault data-plane roles that use a key's material without secure key release (role definition ids
# from the built-in roles reference, ROLE_DOCS). "Key Vault Crypto Service Release User"
# (08bbd89e-9f13-488c-ac41-acfcb10c90ab) is the attested release path: release is gated by the key's
# release policy. Owner / Contributor / Key Vault Contributor are control plane (no data actions on an
# RBAC vault) and are judged by azure-authorization-roleassignment-disallow-broad-role.
DATA_PLANE_ROLES: Final = {
    "12338af0-0e69-4776-bea7-57ae8d297424": "Key Vault Crypto User",  # keys/decrypt, unwrapKey, sign
    "14b46e9e-c2b7-41b4-b07b-48a6ebf60603": "Key Vault Crypto Officer",  # keys/* incl. decrypt, release
    "e147488a-f6f5-4113-8e2d-b22465e65bf6": "Key Vault Crypto Service Encryption User",  # wrap/unwrapKey
    "00482a5a-887f-4fb3-b363-3b7fe8e74483": "Key Vault Administrator",  # every data action on the vault
}
_KEYVAULT_SCOPE: Final = "/providers/microsoft.keyvault/"


def holds_party_data(subject: Subject) -> bool:
    """A store of a party's data: tagged with a party other than `shared`, or untagged (fail closed)."""
    return subject.tags().get("party") != SHARED_PARTY


def _role_of(subject: Subject) -> str:
    return str(subject.need("roleDefinitionId")).rsplit("/", 1)[-1].lower()


def _data_keys_in_scope(stack: Stack, assignment: Subject) -> list[Subject] | None:
    """The party data keys this assignment's scope reaches; None when the scope is not resolvable here."""
    scope = str(assignment.need("scope"))
    data_keys = [k for k in stack.of_type(KEY) if k.party_data_key]
    keys = stack.references(assignment, stack.of_type(KEY))
    vaults = stack.references(assignment, stack.of_type(VAULT))
    if keys or vaults:
        reached = [k for k in keys if k.party_data_key]
        reached += [k for k in data_keys if vaults and stack.references(k, vaults)]
        return reached
    if _KEYVAULT_SCOPE in scope.lower():
        return None  # a vault or key not declared in this stack: judged as holding a data key
    # A resource group, subscription or management group scope covers every vault below it.
    return data_keys


def _data_role_problems(stack: Stack, assignment: Subject) -> Iterable[str]:
    role = _role_of(assignment)
    if role not in DATA_PLANE_ROLES:
        return
    reached = _data_keys_in_scope(stack, assignment)
    if reached == []:
        return
    what = f"party data key {', '.join(sorted(k.name for k in reached))}" if reached else "a key or vault not declared in this stack"
    yield (
        f"{assignment.name}: assigns {DATA_PLANE_ROLES[role]!r} to principal {assignment.need('principalId')} at a scope "
        f"reaching {what}: it can use the key without attestation (only Key Vault Crypto Service Release User, gated "
        "by the release policy, may)"
    )


@stack_rule(
    name="azure-authorization-roleassignment-disallow-data-plane-role",
    description=(
        "No Key Vault data-plane role (Crypto User, Crypto Officer, Crypto Service Encryption User, Key Vault "
        "Administrator) on a party data key, its vault or an enclosing scope: only secure key release reaches it."
    ),
    reads={
        ROLE_ASSIGNMENT: ("roleDefinitionId", "scope", "principalId"),
        KEY: ("tags", "keyName", "vaultName"),
        VAULT: ("vaultName",),
    },
    severity=Severity.CRITICAL,
    controls=KEY_CONTROLS,
    remediation=(
        "Give the attested workload's identity only 'Key Vault Crypto Service Release User' "
        "(08bbd89e-9f13-488c-ac41-acfcb10c90ab) on the party data key, and keep every data-plane role off the key, "
        "its vault and the enclosing resource group/subscription: those roles decrypt or unwrap inside Key Vault "
        "without the release policy's attestation. Services (storage, disks, AKS KMS) use the party's service keys, "
        "in a vault without data keys or scoped to those keys (" + ROLE_DOCS + ")."
    ),
    url=ROLE_DOCS,
    confidential=True,
)
def azure_authorization_roleassignment_disallow_data_plane_role(stack: Stack) -> Iterator[Finding]:
    for assignment in stack.of_type(ROLE_ASSIGNMENT):
        for message in run_check(lambda s: _data_role_problems(stack, s), assignment):
            yield Finding(message, assignment.resource)


@resource_rule(
    name="azure-storage-storageaccount-disallow-party-shared-key",
    description="Storage accounts holding party data refuse shared-key (account key and account SAS) authorization.",
    types=(STORAGE,),
    reads=("allowSharedKeyAccess", "tags"),
    severity=Severity.CRITICAL,
    controls=("hipaa:164.312(a)(1)", "hipaa:164.312(d)", "gdpr:art32", "nist:AC-3", "nist:IA-5"),
    remediation=(
        "Set allow_shared_key_access=False on every account holding a party's data (tag `party` other than shared): "
        "an account key or account SAS reads every blob in plaintext (the service decrypts with the CMK) without "
        "Entra ID, attestation or per-request audit of the caller. Grant data roles to identities instead."
    ),
    url="https://learn.microsoft.com/azure/storage/common/shared-key-authorization-prevent",
    confidential=True,
)
def azure_storage_storageaccount_disallow_party_shared_key(subject: Subject) -> Iterable[str]:
    if not holds_party_data(subject):
        return
    if not falsy(subject.need("allowSharedKeyAccess")):
        yield (
            f"{subject.name}: allowSharedKeyAccess is not false on an account holding party data: the account keys "
            "and account SAS reach it without attestation"
        )


CONTAINER_GROUP: Final = "azure-native:containerinstance:ContainerGroup"
ACI_DOCS: Final = "https://learn.microsoft.com/azure/container-instances/container-instances-confidential-overview"


def runs_collaboration_workload(subject: Subject) -> bool:
    """Tagged as a ccp resource (`collaboration`), or untagged (fail closed)."""
    tags = subject.get("tags")
    return tags is None or "collaboration" in subject.tags()


@resource_rule(
    name="azure-containerinstance-containergroup-enforce-confidential",
    description=(
        "Container groups running a collaboration workload are confidential (sku Confidential with a CCE policy), "
        "have no public IP, no privileged container and send no container logs to Log Analytics."
    ),
    types=(CONTAINER_GROUP,),
    reads=(
        "tags",
        "sku",
        "confidentialComputeProperties.ccePolicy",
        "ipAddress.type",
        "containers[*].securityContext.privileged",
        "initContainers[*].securityContext.privileged",
        "diagnostics.logAnalytics.workspaceId",
    ),
    severity=Severity.CRITICAL,
    controls=("hipaa:164.312(a)(2)(iv)", "gdpr:art32", "nist:SC-39", "nist:SC-7", "nist:AC-6"),
    remediation=(
        "Set sku='Confidential' and confidential_compute_properties.cce_policy to the approved policy (`az confcom "
        "acipolicygen`; its SHA-256 is the x-ms-sevsnpvm-hostdata the party keys pin), put the group in a delegated "
        "subnet without an ip_address (never type Public), and set security_context.privileged=False on every "
        "container: a standard group runs outside a TEE, a public IP exposes the workload, and a privileged "
        "container escapes the policy. Declare no diagnostics.log_analytics: container output can carry party data "
        "and Log Analytics takes it out of the TEE to a workspace the operator reads."
    ),
    url=ACI_DOCS,
    confidential=True,
)
def azure_containerinstance_containergroup_enforce_confidential(subject: Subject) -> Iterable[str]:
    if not runs_collaboration_workload(subject):
        return
    if subject.need("sku") != "Confidential":
        yield f"{subject.name}: sku is {subject.get('sku')!r}, not Confidential: the workload runs outside a TEE"
    if not subject.need("confidentialComputeProperties.ccePolicy"):
        yield f"{subject.name}: confidentialComputeProperties.ccePolicy is empty: no policy is enforced or attested"
    if subject.has("ipAddress") and str(subject.need("ipAddress.type")).lower() == "public":
        yield f"{subject.name}: ipAddress.type is Public: the workload is reachable from the internet"
    for kind in ("containers", "initContainers"):
        for i, container in enumerate(subject.all(f"{kind}[*]")):
            context = container.get("securityContext") if hasattr(container, "get") else None
            privileged = context.get("privileged") if hasattr(context, "get") else None
            if privileged is None:
                raise MissingProperty(f"{kind}[{i}].securityContext.privileged")
            if not falsy(privileged):
                yield f"{subject.name}: {kind}[{i}] is privileged: it can escape the confidential container policy"
    if not subject.all("containers[*]"):
        subject.need("containers")
    workspace = subject.get("diagnostics.logAnalytics.workspaceId")
    if workspace:
        yield (
            f"{subject.name}: container logs go to Log Analytics workspace {workspace!r}: the workload's output "
            "(which can carry party data) leaves the TEE"
        )


RESOURCE_POLICIES += [
    azure_storage_storageaccount_disallow_party_shared_key,
    azure_containerinstance_containergroup_enforce_confidential,
]
STACK_POLICIES = [azure_authorization_roleassignment_disallow_data_plane_role]
POLICIES = RESOURCE_POLICIES + STACK_POLICIES


# --- backup and recovery (issue 18): soft-delete retention and immutable audit copies in prod -------

_BACKUP_CONTROLS: Final = ("hipaa:164.308(a)(7)", "nist:CP-9", "nist:AU-9", "gdpr:art32")


@resource_rule(
    name="azure-keyvault-vault-enforce-soft-delete-retention",
    description="Deleted vaults and keys stay recoverable for at least 90 days in prod (soft-delete retention).",
    types=(VAULT,),
    reads=("properties.softDeleteRetentionInDays", "tags"),
    severity=Severity.HIGH,
    controls=VAULT_CONTROLS,
    remediation="Set soft_delete_retention_in_days=90 (prod minimum minSoftDeleteDays, default 90; with purge protection).",
    url="https://learn.microsoft.com/azure/key-vault/general/soft-delete-overview",
    config={"minSoftDeleteDays": {"type": "integer", "minimum": 7, "maximum": 90}},
)
def azure_keyvault_vault_enforce_soft_delete_retention(subject: Subject) -> Iterable[str]:
    days = subject.need("properties.softDeleteRetentionInDays")
    minimum = subject.config.get("minSoftDeleteDays", 90) if subject.prod else 7
    if not isinstance(days, (int, float)) or isinstance(days, bool) or days < minimum:
        yield f"{subject.name}: softDeleteRetentionInDays {days!r} is under {minimum} ({subject.environment})"


@resource_rule(
    name="azure-storage-storageaccount-enforce-immutable-audit",
    description=(
        "An account with version-level immutability (an audit archive) keeps every blob for at least the audit "
        "retention period, Locked in prod, with append writes allowed for diagnostic logs."
    ),
    types=(STORAGE,),
    reads=(
        "immutableStorageWithVersioning.enabled",
        "immutableStorageWithVersioning.immutabilityPolicy.state",
        "immutableStorageWithVersioning.immutabilityPolicy.immutabilityPeriodSinceCreationInDays",
        "tags",
    ),
    severity=Severity.HIGH,
    controls=_BACKUP_CONTROLS,
    remediation=(
        "Set immutable_storage_with_versioning enabled=True with immutability_policy state='Locked', "
        "immutability_period_since_creation_in_days >= minRetentionDays (default 2192) and allow_protected_append_writes=True "
        "(a new archive is created Unlocked: waive this rule with that reason for its first deployment)."
    ),
    url="https://learn.microsoft.com/azure/storage/blobs/immutable-policy-configure-version-scope",
    config={"minRetentionDays": {"type": "integer", "minimum": 1}},
)
def azure_storage_storageaccount_enforce_immutable_audit(subject: Subject) -> Iterable[str]:
    if not subject.has("immutableStorageWithVersioning"):
        return  # not an archive: a party data account (its own rules)
    if not truthy(subject.need("immutableStorageWithVersioning.enabled")):
        yield f"{subject.name}: immutableStorageWithVersioning.enabled is not true"
    policy = "immutableStorageWithVersioning.immutabilityPolicy"
    state = subject.need(f"{policy}.state")
    days = subject.need(f"{policy}.immutabilityPeriodSinceCreationInDays")
    if subject.prod:
        if state != "Locked":
            yield f"{subject.name}: immutabilityPolicy.state is {state!r}, not 'Locked' in prod"
        minimum = subject.config.get("minRetentionDays", 2192)
        if not isinstance(days, (int, float)) or isinstance(days, bool) or days < minimum:
            yield f"{subject.name}: immutabilityPeriodSinceCreationInDays {days!r} is under {minimum} in prod"


RESOURCE_POLICIES += [azure_keyvault_vault_enforce_soft_delete_retention, azure_storage_storageaccount_enforce_immutable_audit]
POLICIES = RESOURCE_POLICIES + STACK_POLICIES


# --- who can grant themselves a party key (issue 12) -----------------------------------------------

# "Key Vault Data Access Administrator" manages role assignments on Key Vault: it can assign itself (or
# anyone) Key Vault Crypto Officer or Crypto Service Release User on the party data key and so decrypt or
# release it without the workload's attestation (role id from the built-in roles reference, ROLE_DOCS).
DATA_ACCESS_ADMINISTRATOR: Final = "8b54135c-b56d-4d72-a534-26097cfdc8d8"
MANAGEMENT_GROUP_SCOPE: Final = "/providers/microsoft.management/managementgroups/"
RBAC_SCOPE_DOCS: Final = "https://learn.microsoft.com/azure/role-based-access-control/scope-overview"


def _data_access_admin_problems(stack: Stack, assignment: Subject) -> Iterable[str]:
    if _role_of(assignment) != DATA_ACCESS_ADMINISTRATOR:
        return
    reached = _data_keys_in_scope(stack, assignment)
    if reached == []:
        return
    what = f"party data key {', '.join(sorted(k.name for k in reached))}" if reached else "a key or vault not declared in this stack"
    yield (
        f"{assignment.name}: assigns 'Key Vault Data Access Administrator' to principal {assignment.need('principalId')} "
        f"at a scope reaching {what}: it can grant itself Crypto Officer or Crypto Service Release User on the key "
        "and so decrypt it or change who may release it, without attestation"
    )


@stack_rule(
    name="azure-authorization-roleassignment-disallow-data-access-administrator",
    description=(
        "No 'Key Vault Data Access Administrator' on a party data key, its vault or an enclosing scope: it can assign "
        "itself the roles that decrypt or release the key."
    ),
    reads={
        ROLE_ASSIGNMENT: ("roleDefinitionId", "scope", "principalId"),
        KEY: ("tags", "keyName", "vaultName"),
        VAULT: ("vaultName",),
    },
    severity=Severity.CRITICAL,
    controls=KEY_CONTROLS + ("nist:AC-6(5)",),
    remediation=(
        "Remove the assignment. The stack declares the only role assignments on a party data key (the attested "
        "workload's Crypto Service Release User); a person who must manage access gets it through the party's declared, "
        "alarmed break-glass process, never a standing role that can grant itself key access (" + ROLE_DOCS + ")."
    ),
    url=ROLE_DOCS,
    confidential=True,
)
def azure_authorization_roleassignment_disallow_data_access_administrator(stack: Stack) -> Iterator[Finding]:
    for assignment in stack.of_type(ROLE_ASSIGNMENT):
        for message in run_check(lambda s: _data_access_admin_problems(stack, s), assignment):
            yield Finding(message, assignment.resource)


@resource_rule(
    name="azure-authorization-roleassignment-disallow-management-group-scope",
    description=(
        "No role assignment at management-group scope from a collaboration stack: it reaches every subscription, "
        "vault and key below the group, including the party vaults, and outlives the collaboration."
    ),
    types=(ROLE_ASSIGNMENT,),
    reads=("scope",),
    severity=Severity.HIGH,
    controls=("nist:AC-6", "nist:AC-3", "hipaa:164.312(a)(1)", "gdpr:art25"),
    remediation=(
        "Scope the assignment to the resource it is for (the key, the vault, at most the collaboration's resource "
        "group). A management-group assignment is inherited by every subscription below it (" + RBAC_SCOPE_DOCS + ")."
    ),
    url=RBAC_SCOPE_DOCS,
)
def azure_authorization_roleassignment_disallow_management_group_scope(subject: Subject) -> Iterable[str]:
    scope = str(subject.need("scope"))
    if MANAGEMENT_GROUP_SCOPE in scope.lower():
        yield f"{subject.name}: scope {scope!r} is a management group: the role reaches every subscription and key below it"


RESOURCE_POLICIES += [azure_authorization_roleassignment_disallow_management_group_scope]
STACK_POLICIES += [azure_authorization_roleassignment_disallow_data_access_administrator]
POLICIES = RESOURCE_POLICIES + STACK_POLICIES
