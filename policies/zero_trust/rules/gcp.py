"""GCP rules: Confidential Space attestation (WIF provider CEL + KMS bindings), confidential VMs,
KMS, network, storage, GKE, audit logs.

The provider's attribute condition is evaluated, not pattern-matched: with cel-python (the CEL
language Google STS evaluates) the rule checks that the condition accepts a production token for
its own image digests and rejects a debug token, a token without STABLE support, a non
Confidential Space token and a token of an unapproved image.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final, Iterable, Iterator

from pulumi_policy import Severity

from components.attestation.gcp_condition import CONFIDENTIAL_SPACE_HWMODELS, compile_cel, evaluate_condition
from components.gcp.compute import ARTIFACT_REGISTRY_READER, IMAGE_PULL_PRECONDITION, image_repository
from enclave_runtime.simulate.tokens import confidential_space_payload
from policies.zero_trust.rules._base import (
    OPEN_CIDRS,
    Finding,
    Stack,
    Subject,
    is_all_zero,
    plain,
    require_set,
    require_true,
    resource_rule,
    run_check,
    stack_rule,
    truthy,
)

WIP_PROVIDER: Final = "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider"
KMS_MEMBER: Final = "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"
KMS_BINDING: Final = "gcp:kms/cryptoKeyIAMBinding:CryptoKeyIAMBinding"
CRYPTO_KEY: Final = "gcp:kms/cryptoKey:CryptoKey"
KEY_RING: Final = "gcp:kms/keyRing:KeyRing"
INSTANCE: Final = "gcp:compute/instance:Instance"
TEMPLATE: Final = "gcp:compute/instanceTemplate:InstanceTemplate"
FIREWALL: Final = "gcp:compute/firewall:Firewall"
BUCKET: Final = "gcp:storage/bucket:Bucket"
BUCKET_MEMBER: Final = "gcp:storage/bucketIAMMember:BucketIAMMember"
BUCKET_BINDING: Final = "gcp:storage/bucketIAMBinding:BucketIAMBinding"
CLUSTER: Final = "gcp:container/cluster:Cluster"
AUDIT_CONFIG: Final = "gcp:projects/iAMAuditConfig:IAMAuditConfig"
PROJECT_SINK: Final = "gcp:logging/projectSink:ProjectSink"

CS_DOCS: Final = "https://cloud.google.com/confidential-computing/confidential-space/docs/create-grant-access-confidential-resources"
DIGEST: Final = re.compile(r"sha256:[0-9a-f]{64}")
DIGEST_PRINCIPAL: Final = re.compile(
    r"^principalSet://iam\.googleapis\.com/projects/\d+/locations/global/workloadIdentityPools/"
    r"[a-z0-9-]+/attribute\.image_digest/(sha256:[0-9a-f]{64})$"
)
DECRYPT_ROLES: Final = frozenset(
    {
        "roles/cloudkms.cryptoKeyDecrypter",
        "roles/cloudkms.cryptoKeyEncrypterDecrypter",
        "roles/cloudkms.cryptoKeyDecrypterViaDelegation",
    }
)
PUBLIC_MEMBERS: Final = frozenset({"allUsers", "allAuthenticatedUsers"})
KEY_CONTROLS: Final = (
    "hipaa:164.312(a)(2)(iv)",
    "gdpr:art25",
    "gdpr:art32",
    "nist:AC-3",
    "nist:SC-12",
    "nist:SC-28(1)",
)

# --- Confidential Space attribute condition ------------------------------------------------------

# Matching the image digest by pattern (CEL string functions, or a partial / wildcard digest literal)
# is not a pinned measurement, even where a token of an unapproved test digest happens to fail it.
_DIGEST_FUNCTION: Final = re.compile(
    r"image_digest\s*\)?\s*\.\s*(startsWith|endsWith|matches|contains)\s*\("
    r"|\b(startsWith|endsWith|matches|contains)\s*\(\s*[^,()]*image_digest"
)
_SHA256_LITERAL: Final = re.compile(r"""['"](sha256:[^'"]*)['"]""")


# Claims of a token the condition must refuse although every other clause holds (token-claims reference):
# Shielded VM is not confidential computing; an account no condition names is not the operator's VM.
NON_CONFIDENTIAL_HWMODEL: Final = "GCP_SHIELDED_VM"
OTHER_SERVICE_ACCOUNT: Final = "not-the-workload@another-project.iam.gserviceaccount.com"


def digest_pattern_problems(condition: str) -> list[str]:
    """How the condition matches the image digest by pattern instead of equality ([] if it does not)."""
    problems = [
        f"matches the image digest with {m.group(1) or m.group(2)}(), a pattern, not equality"
        for m in _DIGEST_FUNCTION.finditer(condition)
    ]
    problems += [
        f"compares the image digest with {literal!r}, a partial or wildcard digest, not a full sha256 digest"
        for literal in _SHA256_LITERAL.findall(condition)
        if not DIGEST.fullmatch(literal)
    ]
    return problems


def condition_problems(condition: str) -> list[str]:
    """What an attribute condition fails to exclude; empty when it is strict."""
    return digest_pattern_problems(condition) + _evaluated_problems(condition)


def _evaluated_problems(condition: str) -> list[str]:
    """What the condition admits when evaluated against Confidential Space tokens."""
    digests = sorted(set(DIGEST.findall(condition)))
    if not digests:
        return ["pins no image digest (assertion.submods.container.image_digest in ['sha256:...'])"]
    problems = [f"pins an all-zero image digest {d}" for d in digests if is_all_zero(d)]
    try:
        compile_cel(condition)
    except Exception as error:  # noqa: BLE001 - an unparsable condition admits nobody, but is a bug
        return problems + [f"is not valid CEL ({str(error).splitlines()[0]})"]
    emails = re.findall(r"[A-Za-z0-9._-]+@[A-Za-z0-9.-]+\.iam\.gserviceaccount\.com", condition)
    hwmodel = next((m for m in re.findall(r"GCP_[A-Z_]+", condition) if m in CONFIDENTIAL_SPACE_HWMODELS), "GCP_AMD_SEV")
    if not evaluate_condition(condition, confidential_space_payload(digests[0], emails, hwmodel)):
        return problems + ["rejects a production token of its own approved image: cannot verify it is strict"]
    unapproved = "sha256:" + "f" * 64 if "sha256:" + "f" * 64 not in digests else "sha256:" + "e" * 64

    def variant(path: tuple[str, ...], value: Any) -> dict[str, Any]:
        token = confidential_space_payload(digests[0], emails, hwmodel)
        node: Any = token
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return token

    cases = {
        "a debug image (dbgstat 'enabled')": variant(("dbgstat",), "enabled"),
        "an image without STABLE support": variant(("submods", "confidential_space", "support_attributes"), []),
        "software other than CONFIDENTIAL_SPACE": variant(("swname",), "GCE"),
        "an unapproved image digest": variant(("submods", "container", "image_digest"), unapproved),
        # The remediation's other clauses: each one excludes a token the ones above admit.
        f"a non-confidential hardware model (hwmodel {NON_CONFIDENTIAL_HWMODEL!r})": variant(("hwmodel",), NON_CONFIDENTIAL_HWMODEL),
        "a token without secure boot (secboot false)": variant(("secboot",), False),
        "a VM running as another service account": variant(("google_service_accounts",), [OTHER_SERVICE_ACCOUNT]),
    }
    problems += [f"admits {what}" for what, token in cases.items() if evaluate_condition(condition, token)]
    return problems


@resource_rule(
    name="gcp-iam-workloadidentitypoolprovider-enforce-attestation-condition",
    description="Workload identity providers admit only production Confidential Space tokens of approved image digests.",
    types=(WIP_PROVIDER,),
    reads=("attributeCondition",),
    severity=Severity.CRITICAL,
    controls=KEY_CONTROLS,
    remediation=(
        "Use assertion.swname == 'CONFIDENTIAL_SPACE' && assertion.dbgstat == 'disabled-since-boot' && "
        "'STABLE' in assertion.submods.confidential_space.support_attributes && "
        "assertion.hwmodel in ['GCP_AMD_SEV', 'GCP_INTEL_TDX'] && assertion.secboot == true && "
        "assertion.submods.container.image_digest in ['sha256:<approved>'] && "
        "'<workload service account>' in assertion.google_service_accounts (components/attestation/gcp_condition.py "
        "generates it); the rule evaluates the condition against tokens missing each of these."
    ),
    url=CS_DOCS,
    confidential=True,
)
def gcp_iam_workloadidentitypoolprovider_enforce_attestation_condition(subject: Subject) -> Iterable[str]:
    for problem in condition_problems(str(subject.need("attributeCondition"))):
        yield f"{subject.name}: attribute condition {problem}"


@resource_rule(
    name="gcp-iam-workloadidentitypoolprovider-configure-attestation-issuer",
    description="Workload identity providers trust only the Confidential Computing attestation issuer for STS.",
    types=(WIP_PROVIDER,),
    reads=("oidc.issuerUri", "oidc.allowedAudiences"),
    severity=Severity.HIGH,
    controls=("nist:IA-9", "nist:AC-3", "hipaa:164.312(d)"),
    remediation="Set oidc.issuer_uri='https://confidentialcomputing.googleapis.com/' and allowed_audiences=['https://sts.googleapis.com'].",
    url=CS_DOCS,
    confidential=True,
)
def gcp_iam_workloadidentitypoolprovider_configure_attestation_issuer(subject: Subject) -> Iterable[str]:
    issuer = str(subject.need("oidc.issuerUri")).rstrip("/")
    if issuer != "https://confidentialcomputing.googleapis.com":
        yield f"{subject.name}: issuer {issuer!r} is not the Confidential Computing attestation service"
    audiences = list(subject.need("oidc.allowedAudiences"))
    if audiences != ["https://sts.googleapis.com"]:
        yield f"{subject.name}: allowedAudiences {audiences} is not exactly ['https://sts.googleapis.com']"


def _members(subject: Subject) -> list[str]:
    if subject.type in (KMS_MEMBER, BUCKET_MEMBER):
        return [str(subject.need("member"))]
    return [str(m) for m in subject.need("members")]


def principal_digest(member: str) -> str | None:
    match = DIGEST_PRINCIPAL.match(member)
    return match.group(1) if match else None


# --- KMS IAM: who may use each key, by the key's purpose -------------------------------------------

KEY_USE_ROLES: Final = DECRYPT_ROLES | frozenset(
    {"roles/cloudkms.cryptoKeyEncrypter", "roles/cloudkms.cryptoKeyEncrypterViaDelegation"}
)
# Google-managed service agents (https://cloud.google.com/iam/docs/service-agents): the identities
# Cloud Storage, Compute Engine, GKE and other services use to call Cloud KMS for CMEK.
SERVICE_AGENT: Final = re.compile(
    r"^serviceAccount:(service-\d+@(gs-project-accounts|compute-system|container-engine-robot|gcp-sa-[a-z0-9-]+)"
    r"|bq-\d+@bigquery-encryption)\.iam\.gserviceaccount\.com$"
)
KMS_IAM_READS: Final = {
    KMS_MEMBER: ("cryptoKeyId", "role", "member"),
    KMS_BINDING: ("cryptoKeyId", "role", "members"),
    CRYPTO_KEY: ("name", "labels"),
}


def member_keys(stack: Stack, binding: Subject) -> list[Subject]:
    """The crypto keys of this stack an IAM member/binding grants on (by dependency, id or name)."""
    return stack.references(binding, stack.of_type(CRYPTO_KEY))


def on_service_key(stack: Stack, binding: Subject) -> bool:
    """Only when every key it names is explicitly a service key; an unresolved key is a data key."""
    keys = member_keys(stack, binding)
    return bool(keys) and all(key.service_key for key in keys)


def _digest_principalset(subject: Subject) -> Iterable[str]:
    if subject.need("role") not in DECRYPT_ROLES:
        return
    for member in _members(subject):
        digest = principal_digest(member)
        if digest is None:
            yield f"{subject.name}: {subject.get('role')} granted to {member!r}, not an image-digest principalSet"
        elif is_all_zero(digest):
            yield f"{subject.name}: {member!r} binds an all-zero image digest"


@stack_rule(
    name="gcp-kms-cryptokeyiammember-enforce-digest-principalset",
    description="Decrypt roles on party data keys are granted only to workload identity principalSets by image digest.",
    reads=KMS_IAM_READS,
    severity=Severity.CRITICAL,
    controls=KEY_CONTROLS,
    remediation=(
        "Grant roles/cloudkms.cryptoKeyDecrypter to principalSet://iam.googleapis.com/projects/<number>/"
        "locations/global/workloadIdentityPools/<pool>/attribute.image_digest/sha256:<approved digest>. A Google "
        "service (Cloud Storage, Compute Engine, GKE) gets its own service key (ccp-key-purpose party-storage, "
        "disk or cluster-secrets), never the data key."
    ),
    url=CS_DOCS,
    confidential=True,
)
def gcp_kms_cryptokeyiammember_enforce_digest_principalset(stack: Stack) -> Iterator[Finding]:
    """Judges every member/binding except those on keys explicitly labelled with a service purpose:
    a key without a purpose label, with an unknown one, or not declared in this stack is a data key."""
    for binding in stack.of_type(KMS_MEMBER, KMS_BINDING):
        if on_service_key(stack, binding):
            continue
        for message in run_check(_digest_principalset, binding):
            yield Finding(message, binding.resource)


def _service_agents_only(subject: Subject) -> Iterable[str]:
    role = subject.need("role")
    if role not in KEY_USE_ROLES:
        return
    for member in _members(subject):
        if not SERVICE_AGENT.match(member):
            yield f"{subject.name}: {role} on a service key granted to {member!r}, not a Google service agent"


@stack_rule(
    name="gcp-kms-cryptokeyiammember-enforce-service-agent",
    description="Encrypt/decrypt roles on service keys (bucket, disk, cluster CMEK) go only to Google service agents.",
    reads=KMS_IAM_READS,
    severity=Severity.HIGH,
    controls=("nist:AC-6", "nist:SC-12", "hipaa:164.312(a)(1)", "gdpr:art32"),
    remediation=(
        "Grant roles/cloudkms.cryptoKeyEncrypterDecrypter on a service key only to the service agent that uses it "
        "(service-<number>@gs-project-accounts / compute-system / container-engine-robot / gcp-sa-<service>"
        ".iam.gserviceaccount.com). People and workloads never use a CMEK directly; a workload's data key is a "
        "party-data key bound to digest principalSets."
    ),
    url="https://cloud.google.com/iam/docs/service-agents",
    confidential=True,
)
def gcp_kms_cryptokeyiammember_enforce_service_agent(stack: Stack) -> Iterator[Finding]:
    for binding in stack.of_type(KMS_MEMBER, KMS_BINDING):
        if not on_service_key(stack, binding):
            continue
        for message in run_check(_service_agents_only, binding):
            yield Finding(message, binding.resource)


@resource_rule(
    name="gcp-iam-member-disallow-public-principal",
    description="KMS and storage IAM never grant to allUsers or allAuthenticatedUsers.",
    types=(KMS_MEMBER, KMS_BINDING, BUCKET_MEMBER, BUCKET_BINDING),
    reads={
        KMS_MEMBER: ("member",),
        KMS_BINDING: ("members",),
        BUCKET_MEMBER: ("member",),
        BUCKET_BINDING: ("members",),
    },
    severity=Severity.CRITICAL,
    controls=("cis-gcp:5.1", "nist:AC-3", "hipaa:164.312(a)(1)", "gdpr:art32"),
    remediation="Remove allUsers/allAuthenticatedUsers; grant to named identities or digest principalSets.",
    url="https://cloud.google.com/iam/docs/principal-identifiers",
)
def gcp_iam_member_disallow_public_principal(subject: Subject) -> Iterable[str]:
    for member in _members(subject):
        if member in PUBLIC_MEMBERS:
            yield f"{subject.name}: grants to {member}"


# --- KMS -----------------------------------------------------------------------------------------


def _seconds(value: Any) -> float | None:
    match = re.match(r"^(\d+(?:\.\d+)?)s$", str(value))
    return float(match.group(1)) if match else None


@resource_rule(
    name="gcp-kms-cryptokey-enable-rotation",
    description="KMS keys rotate at most every 90 days (7776000s).",
    types=(CRYPTO_KEY,),
    reads=("rotationPeriod",),
    severity=Severity.HIGH,
    controls=("cis-gcp:1.10", "hipaa:164.312(a)(2)(iv)", "nist:SC-12"),
    remediation="Set rotation_period='7776000s' (or shorter).",
    url="https://cloud.google.com/kms/docs/key-rotation",
)
def gcp_kms_cryptokey_enable_rotation(subject: Subject) -> Iterable[str]:
    seconds = _seconds(subject.need("rotationPeriod"))
    if seconds is None or seconds > 7776000:
        yield f"{subject.name}: rotationPeriod {subject.get('rotationPeriod')!r} exceeds 7776000s"


@resource_rule(
    name="gcp-kms-cryptokey-enforce-hsm",
    description="KMS keys are HSM-protected in prod.",
    types=(CRYPTO_KEY,),
    reads=("versionTemplate.protectionLevel", "labels"),
    severity=Severity.HIGH,
    controls=("nist:SC-12", "hipaa:164.312(a)(2)(iv)", "gdpr:art32"),
    remediation="Set version_template={'algorithm': 'GOOGLE_SYMMETRIC_ENCRYPTION', 'protection_level': 'HSM'}.",
    url="https://cloud.google.com/kms/docs/hsm",
)
def gcp_kms_cryptokey_enforce_hsm(subject: Subject) -> Iterable[str]:
    if subject.prod and subject.need("versionTemplate.protectionLevel") != "HSM":
        yield f"{subject.name}: protectionLevel is {subject.get('versionTemplate.protectionLevel')!r}, not HSM (prod)"


# --- compute -------------------------------------------------------------------------------------

_HOSTS: Final = (INSTANCE, TEMPLATE)


@resource_rule(
    name="gcp-compute-instance-enforce-confidential",
    description="Workload VMs are Confidential VMs (SEV, SEV-SNP or TDX) that terminate on host maintenance.",
    types=_HOSTS,
    reads=(
        "confidentialInstanceConfig.enableConfidentialCompute",
        "confidentialInstanceConfig.confidentialInstanceType",
        "scheduling.onHostMaintenance",
    ),
    severity=Severity.CRITICAL,
    controls=("cis-gcp:4.11", "hipaa:164.312(a)(2)(iv)", "nist:SC-39", "gdpr:art32"),
    remediation="Set confidential_instance_config (confidential_instance_type 'SEV_SNP' or 'TDX') and scheduling.on_host_maintenance='TERMINATE'.",
    url="https://cloud.google.com/confidential-computing/confidential-vm/docs/create-a-confidential-vm-instance",
    confidential=True,
)
def gcp_compute_instance_enforce_confidential(subject: Subject) -> Iterable[str]:
    kind = subject.get("confidentialInstanceConfig.confidentialInstanceType")
    enabled = truthy(subject.get("confidentialInstanceConfig.enableConfidentialCompute"))
    if kind not in ("SEV", "SEV_SNP", "TDX") and not enabled:
        subject.need("confidentialInstanceConfig")
        yield f"{subject.name}: confidential computing is not enabled"
    if subject.need("scheduling.onHostMaintenance") != "TERMINATE":
        yield f"{subject.name}: scheduling.onHostMaintenance is not TERMINATE"


@resource_rule(
    name="gcp-compute-instance-enable-shielded-vm",
    description="VMs use secure boot, vTPM and integrity monitoring.",
    types=_HOSTS,
    reads=(
        "shieldedInstanceConfig.enableSecureBoot",
        "shieldedInstanceConfig.enableVtpm",
        "shieldedInstanceConfig.enableIntegrityMonitoring",
    ),
    severity=Severity.HIGH,
    controls=("cis-gcp:4.8", "nist:SI-7", "hipaa:164.312(c)(1)"),
    remediation="Set shielded_instance_config with enable_secure_boot, enable_vtpm and enable_integrity_monitoring True.",
    url="https://cloud.google.com/compute/shielded-vm/docs/shielded-vm",
    confidential=True,
)
def gcp_compute_instance_enable_shielded_vm(subject: Subject) -> Iterable[str]:
    yield from require_true(subject, "shieldedInstanceConfig.enableSecureBoot", "shieldedInstanceConfig.enableVtpm", "shieldedInstanceConfig.enableIntegrityMonitoring")


def _images(subject: Subject) -> list[str]:
    if subject.type == INSTANCE:
        return [str(subject.need("bootDisk.initializeParams.image"))]
    return [str(i) for i in subject.need_all("disks[*].sourceImage")]


@resource_rule(
    name="gcp-compute-instance-disallow-debug-image",
    description="Production VMs never boot the Confidential Space debug image.",
    types=_HOSTS,
    reads={INSTANCE: ("bootDisk.initializeParams.image", "labels"), TEMPLATE: ("disks[*].sourceImage", "labels")},
    severity=Severity.CRITICAL,
    controls=("nist:SI-7", "nist:CM-7", "hipaa:164.312(c)(1)", "gdpr:art32"),
    remediation="Boot projects/confidential-space-images/global/images/family/confidential-space in prod.",
    url="https://cloud.google.com/confidential-computing/confidential-space/docs/confidential-space-images",
    confidential=True,
)
def gcp_compute_instance_disallow_debug_image(subject: Subject) -> Iterable[str]:
    for image in _images(subject):
        if subject.prod and "debug" in image.lower():
            yield f"{subject.name}: boots the debug image {image!r} in prod (SSH, dbgstat 'enabled')"


@resource_rule(
    name="gcp-compute-instance-enforce-image-digest",
    description="Confidential Space VMs launch the workload container by digest (tee-image-reference).",
    types=_HOSTS,
    reads=("metadata",),
    severity=Severity.HIGH,
    controls=("nist:CM-2", "nist:SI-7", "hipaa:164.312(c)(1)"),
    remediation="Set metadata 'tee-image-reference' to '<registry>/<image>@sha256:<digest>' (never a tag).",
    url="https://cloud.google.com/confidential-computing/confidential-space/docs/deploy-workloads",
    confidential=True,
)
def gcp_compute_instance_enforce_image_digest(subject: Subject) -> Iterable[str]:
    metadata = subject.need("metadata")
    reference = metadata.get("tee-image-reference") if hasattr(metadata, "get") else None
    if not reference:
        yield f"{subject.name}: metadata has no tee-image-reference"
        return
    digest = DIGEST.search(str(reference))
    if not digest or "@sha256:" not in str(reference):
        yield f"{subject.name}: tee-image-reference {reference!r} is not pinned by digest"
    elif is_all_zero(digest.group(0)):
        yield f"{subject.name}: tee-image-reference pins an all-zero digest"


@resource_rule(
    name="gcp-compute-instance-disallow-public-ip",
    description="VMs have no external IP (no access configs).",
    types=_HOSTS,
    reads=("networkInterfaces[*].accessConfigs", "networkInterfaces[*].network"),
    severity=Severity.HIGH,
    controls=("cis-gcp:4.9", "nist:SC-7", "hipaa:164.312(a)(1)"),
    remediation="Remove access_configs from every network interface; use Cloud NAT for egress.",
    url="https://cloud.google.com/compute/docs/ip-addresses/reserve-static-external-ip-address",
)
def gcp_compute_instance_disallow_public_ip(subject: Subject) -> Iterable[str]:
    for i, nic in enumerate(subject.need_all("networkInterfaces[*]")):
        configs = nic.get("accessConfigs")
        if configs is not None and len(configs) > 0:
            yield f"{subject.name}: networkInterfaces[{i}] has an access config (external IP)"


@resource_rule(
    name="gcp-compute-instance-enforce-cmk-disk",
    description="Boot disks are encrypted with a Cloud KMS key.",
    types=_HOSTS,
    reads={INSTANCE: ("bootDisk.kmsKeySelfLink",), TEMPLATE: ("disks[*].diskEncryptionKey.kmsKeySelfLink",)},
    severity=Severity.HIGH,
    controls=("cis-gcp:4.7", "hipaa:164.312(a)(2)(iv)", "nist:SC-28(1)", "gdpr:art32"),
    remediation="Set boot_disk.kms_key_self_link (templates: disks[].disk_encryption_key.kms_key_self_link).",
    url="https://cloud.google.com/compute/docs/disks/customer-managed-encryption",
)
def gcp_compute_instance_enforce_cmk_disk(subject: Subject) -> Iterable[str]:
    if subject.type == INSTANCE:
        yield from require_set(subject, "bootDisk.kmsKeySelfLink")
        return
    for i, disk in enumerate(subject.need_all("disks[*]")):
        if not (disk.get("diskEncryptionKey") or {}).get("kmsKeySelfLink"):
            yield f"{subject.name}: disks[{i}] has no diskEncryptionKey.kmsKeySelfLink"


@resource_rule(
    name="gcp-compute-instance-disallow-default-service-account",
    description="VMs run as a dedicated service account, never the default compute service account.",
    types=_HOSTS,
    reads=("serviceAccount.email",),
    severity=Severity.HIGH,
    controls=("cis-gcp:4.1", "nist:AC-6", "hipaa:164.312(a)(1)"),
    remediation="Create a workload service account (roles/confidentialcomputing.workloadUser) and set service_account.email.",
    url="https://cloud.google.com/compute/docs/access/service-accounts#default_service_account",
)
def gcp_compute_instance_disallow_default_service_account(subject: Subject) -> Iterable[str]:
    email = str(subject.need("serviceAccount.email"))
    if email == "default" or email.endswith("-compute@developer.gserviceaccount.com"):
        yield f"{subject.name}: runs as the default compute service account"


@resource_rule(
    name="gcp-compute-firewall-disallow-open-ingress",
    description="Ingress firewall rules never allow 0.0.0.0/0 (or omit sources, which means the same).",
    types=(FIREWALL,),
    reads=("direction", "sourceRanges", "sourceTags", "sourceServiceAccounts", "allows"),
    severity=Severity.HIGH,
    controls=("cis-gcp:3.6", "nist:SC-7", "hipaa:164.312(a)(1)"),
    remediation="Restrict source_ranges to internal ranges (e.g. IAP 35.235.240.0/20) or use source tags/service accounts.",
    url="https://cloud.google.com/firewall/docs/firewalls",
)
def gcp_compute_firewall_disallow_open_ingress(subject: Subject) -> Iterable[str]:
    if str(subject.get("direction", "INGRESS")).upper() != "INGRESS" or not subject.has("allows"):
        return
    ranges = [str(r) for r in subject.get("sourceRanges") or []]
    if not ranges and not subject.get("sourceTags") and not subject.get("sourceServiceAccounts"):
        subject.need("sourceRanges")
    for source in ranges:
        if source in OPEN_CIDRS:
            yield f"{subject.name}: allows ingress from {source}"


# --- storage, GKE, audit -------------------------------------------------------------------------


@resource_rule(
    name="gcp-storage-bucket-enforce-cmk",
    description="Buckets encrypt with a Cloud KMS default key.",
    types=(BUCKET,),
    reads=("encryption.defaultKmsKeyName",),
    severity=Severity.HIGH,
    controls=("hipaa:164.312(a)(2)(iv)", "gdpr:art32", "nist:SC-28(1)"),
    remediation="Set encryption={'default_kms_key_name': party_key.id}.",
    url="https://cloud.google.com/storage/docs/encryption/customer-managed-keys",
)
def gcp_storage_bucket_enforce_cmk(subject: Subject) -> Iterable[str]:
    yield from require_set(subject, "encryption.defaultKmsKeyName")


@resource_rule(
    name="gcp-storage-bucket-disallow-public-access",
    description="Buckets enforce public access prevention and uniform bucket-level access.",
    types=(BUCKET,),
    reads=("publicAccessPrevention", "uniformBucketLevelAccess"),
    severity=Severity.HIGH,
    controls=("cis-gcp:5.1", "cis-gcp:5.2", "hipaa:164.312(a)(1)", "gdpr:art32", "nist:AC-3"),
    remediation="Set public_access_prevention='enforced' and uniform_bucket_level_access=True.",
    url="https://cloud.google.com/storage/docs/public-access-prevention",
)
def gcp_storage_bucket_disallow_public_access(subject: Subject) -> Iterable[str]:
    if subject.need("publicAccessPrevention") != "enforced":
        yield f"{subject.name}: publicAccessPrevention is not 'enforced'"
    yield from require_true(subject, "uniformBucketLevelAccess")


GKE_DOCS: Final = "https://cloud.google.com/kubernetes-engine/docs/"


@resource_rule(
    name="gcp-container-cluster-enforce-private-cluster",
    description="GKE clusters have private nodes and a private control-plane endpoint.",
    types=(CLUSTER,),
    reads=("privateClusterConfig.enablePrivateNodes", "privateClusterConfig.enablePrivateEndpoint"),
    severity=Severity.HIGH,
    controls=("nist:SC-7", "hipaa:164.312(a)(1)"),
    remediation="Set private_cluster_config enable_private_nodes=True and enable_private_endpoint=True.",
    url=GKE_DOCS + "concepts/private-cluster-concept",
)
def gcp_container_cluster_enforce_private_cluster(subject: Subject) -> Iterable[str]:
    yield from require_true(subject, "privateClusterConfig.enablePrivateNodes", "privateClusterConfig.enablePrivateEndpoint")


@resource_rule(
    name="gcp-container-cluster-enable-secrets-encryption",
    description="GKE encrypts secrets at the application layer with a Cloud KMS key.",
    types=(CLUSTER,),
    reads=("databaseEncryption.state", "databaseEncryption.keyName"),
    severity=Severity.HIGH,
    controls=("nist:SC-28", "hipaa:164.312(a)(2)(iv)"),
    remediation="Set database_encryption={'state': 'ENCRYPTED', 'key_name': key.id}.",
    url=GKE_DOCS + "how-to/encrypting-secrets",
)
def gcp_container_cluster_enable_secrets_encryption(subject: Subject) -> Iterable[str]:
    if subject.need("databaseEncryption.state") != "ENCRYPTED":
        yield f"{subject.name}: databaseEncryption.state is not ENCRYPTED"
    yield from require_set(subject, "databaseEncryption.keyName")


@resource_rule(
    name="gcp-container-cluster-enforce-confidential-nodes",
    description="GKE nodes are Confidential GKE Nodes.",
    types=(CLUSTER,),
    reads=("confidentialNodes.enabled",),
    severity=Severity.HIGH,
    controls=("cis-gcp:4.11", "hipaa:164.312(a)(2)(iv)", "nist:SC-39"),
    remediation="Set confidential_nodes={'enabled': True} with an N2D/C2D/C3 machine type.",
    url=GKE_DOCS + "how-to/confidential-gke-nodes",
    confidential=True,
)
def gcp_container_cluster_enforce_confidential_nodes(subject: Subject) -> Iterable[str]:
    yield from require_true(subject, "confidentialNodes.enabled")


@resource_rule(
    name="gcp-container-cluster-enforce-workload-identity",
    description="GKE uses Workload Identity and hides node metadata (GKE_METADATA).",
    types=(CLUSTER,),
    reads=("workloadIdentityConfig.workloadPool", "nodeConfig.workloadMetadataConfig.mode"),
    severity=Severity.MEDIUM,
    controls=("nist:AC-6", "hipaa:164.312(a)(1)"),
    remediation="Set workload_identity_config.workload_pool and node_config.workload_metadata_config.mode='GKE_METADATA'.",
    url=GKE_DOCS + "how-to/workload-identity",
)
def gcp_container_cluster_enforce_workload_identity(subject: Subject) -> Iterable[str]:
    yield from require_set(subject, "workloadIdentityConfig.workloadPool")
    if subject.need("nodeConfig.workloadMetadataConfig.mode") != "GKE_METADATA":
        yield f"{subject.name}: node metadata is exposed (mode is not GKE_METADATA)"


AUDITED_SERVICES: Final = ("allServices", "cloudkms.googleapis.com", "sts.googleapis.com")


@resource_rule(
    name="gcp-projects-iamauditconfig-enable-data-access",
    description="Data Access audit logs (DATA_READ, DATA_WRITE, ADMIN_READ) are on for KMS and STS.",
    types=(AUDIT_CONFIG,),
    reads=("service", "auditLogConfigs[*].logType", "auditLogConfigs[*].exemptedMembers"),
    severity=Severity.MEDIUM,
    controls=("cis-gcp:2.1", "hipaa:164.312(b)", "gdpr:art30", "nist:AU-2", "nist:AU-12"),
    remediation="Declare IAMAuditConfig(service='cloudkms.googleapis.com' or 'allServices') with all three log types and no exemptions.",
    url="https://cloud.google.com/logging/docs/audit/configure-data-access",
)
def gcp_projects_iamauditconfig_enable_data_access(subject: Subject) -> Iterable[str]:
    service = subject.need("service")  # fail closed: which service's logs this configures is part of the promise
    configs = subject.need_all("auditLogConfigs[*]")
    types = {str(c.get("logType")) for c in configs}
    for needed in ("DATA_READ", "DATA_WRITE", "ADMIN_READ"):
        if needed not in types:
            yield f"{subject.name}: {service} does not log {needed}"
    for c in configs:
        if c.get("exemptedMembers"):
            yield f"{subject.name}: {c.get('logType')} exempts {list(c.get('exemptedMembers'))}"


RESOURCE_POLICIES = [
    gcp_iam_workloadidentitypoolprovider_enforce_attestation_condition,
    gcp_iam_workloadidentitypoolprovider_configure_attestation_issuer,
    gcp_iam_member_disallow_public_principal,
    gcp_kms_cryptokey_enable_rotation,
    gcp_kms_cryptokey_enforce_hsm,
    gcp_compute_instance_enforce_confidential,
    gcp_compute_instance_enable_shielded_vm,
    gcp_compute_instance_disallow_debug_image,
    gcp_compute_instance_enforce_image_digest,
    gcp_compute_instance_disallow_public_ip,
    gcp_compute_instance_enforce_cmk_disk,
    gcp_compute_instance_disallow_default_service_account,
    gcp_compute_firewall_disallow_open_ingress,
    gcp_storage_bucket_enforce_cmk,
    gcp_storage_bucket_disallow_public_access,
    gcp_container_cluster_enforce_private_cluster,
    gcp_container_cluster_enable_secrets_encryption,
    gcp_container_cluster_enforce_confidential_nodes,
    gcp_container_cluster_enforce_workload_identity,
    gcp_projects_iamauditconfig_enable_data_access,
]
STACK_POLICIES = [
    gcp_kms_cryptokeyiammember_enforce_digest_principalset,
    gcp_kms_cryptokeyiammember_enforce_service_agent,
]
POLICIES = RESOURCE_POLICIES + STACK_POLICIES


# --- who else can decrypt: key, key ring and project IAM (issue 12, item 5) ------------------------

KMS_POLICY: Final = "gcp:kms/cryptoKeyIAMPolicy:CryptoKeyIAMPolicy"
RING_MEMBER: Final = "gcp:kms/keyRingIAMMember:KeyRingIAMMember"
RING_BINDING: Final = "gcp:kms/keyRingIAMBinding:KeyRingIAMBinding"
RING_POLICY: Final = "gcp:kms/keyRingIAMPolicy:KeyRingIAMPolicy"
PROJECT_MEMBER: Final = "gcp:projects/iAMMember:IAMMember"
PROJECT_BINDING: Final = "gcp:projects/iAMBinding:IAMBinding"
PROJECT_POLICY: Final = "gcp:projects/iAMPolicy:IAMPolicy"
HMAC_KEY: Final = "gcp:storage/hmacKey:HmacKey"
# Roles whose permissions include cloudkms.cryptoKeyVersions.useToDecrypt (Cloud KMS roles and
# permissions, https://cloud.google.com/kms/docs/reference/permissions-and-roles; the basic roles
# Owner and Editor include it). Granted on a key, its key ring or its project they reach the key.
PLAINTEXT_ROLES: Final = DECRYPT_ROLES | frozenset({"roles/cloudkms.cryptoOperator", "roles/owner", "roles/editor"})
KMS_ROLES_DOCS: Final = "https://cloud.google.com/kms/docs/reference/permissions-and-roles"
_SCOPE_OF: Final = {
    KMS_MEMBER: "cryptoKeyId", KMS_BINDING: "cryptoKeyId", KMS_POLICY: "cryptoKeyId",
    RING_MEMBER: "keyRingId", RING_BINDING: "keyRingId", RING_POLICY: "keyRingId",
    PROJECT_MEMBER: "project", PROJECT_BINDING: "project", PROJECT_POLICY: "project",
}
_POLICY_TYPES: Final = (KMS_POLICY, RING_POLICY, PROJECT_POLICY)
_RING_TYPES: Final = (RING_MEMBER, RING_BINDING, RING_POLICY)
_PROJECT_TYPES: Final = (PROJECT_MEMBER, PROJECT_BINDING, PROJECT_POLICY)


def granted(subject: Subject) -> list[tuple[str, str]]:
    """(role, member) pairs a member, binding or whole IAM policy (policyData JSON) grants."""
    if subject.type in _POLICY_TYPES:
        raw = subject.need("policyData")
        try:
            data = json.loads(raw) if isinstance(raw, str) else plain(raw)
        except json.JSONDecodeError:
            return [("policyData", "<not valid JSON>")]
        bindings = data.get("bindings") if isinstance(data, dict) else None
        return [
            (str(b.get("role")), str(m))
            for b in bindings or []
            if isinstance(b, dict)
            for m in b.get("members") or []
        ]
    if subject.type.endswith("IAMMember"):
        return [(str(subject.need("role")), str(subject.need("member")))]
    return [(str(subject.need("role")), str(m)) for m in subject.need("members")]


def reaches_data_key(stack: Stack, subject: Subject) -> bool:
    """Does this grant's scope hold a party data key? Fails closed: an undeclared key or ring counts."""
    subject.need(_SCOPE_OF[subject.type])
    data_keys = [k for k in stack.of_type(CRYPTO_KEY) if k.party_data_key]
    if subject.type in _PROJECT_TYPES:
        return bool(data_keys)  # a project grant reaches every key of the project
    if subject.type in _RING_TYPES:
        rings = stack.references(subject, stack.of_type(KEY_RING))
        if not rings:
            return True
        return any(stack.references(key, rings) for key in data_keys)
    keys = member_keys(stack, subject)
    return not keys or any(key.party_data_key for key in keys)


def _unattested_plaintext_roles(subject: Subject) -> Iterable[str]:
    for role, member in granted(subject):
        if role == "policyData":
            yield f"{subject.name}: policyData is {member}"
        elif role in PLAINTEXT_ROLES and principal_digest(member) is None:
            yield (
                f"{subject.name}: {role} granted to {member!r} on a {_SCOPE_OF[subject.type].removesuffix('Id')} "
                "holding a party data key: it can decrypt without attestation (only an image-digest principalSet may)"
            )


@stack_rule(
    name="gcp-kms-keyringiammember-disallow-unattested-decrypt",
    description=(
        "No key, key ring or project IAM grant gives a party data key's decrypt rights (decrypter, crypto operator, "
        "owner, editor) to anyone but an image-digest workload identity principalSet."
    ),
    reads={
        KMS_MEMBER: ("cryptoKeyId", "role", "member"),
        KMS_BINDING: ("cryptoKeyId", "role", "members"),
        KMS_POLICY: ("cryptoKeyId", "policyData"),
        RING_MEMBER: ("keyRingId", "role", "member"),
        RING_BINDING: ("keyRingId", "role", "members"),
        RING_POLICY: ("keyRingId", "policyData"),
        PROJECT_MEMBER: ("project", "role", "member"),
        PROJECT_BINDING: ("project", "role", "members"),
        PROJECT_POLICY: ("project", "policyData"),
        CRYPTO_KEY: ("name", "labels", "keyRing"),
        KEY_RING: ("name",),
    },
    severity=Severity.CRITICAL,
    controls=KEY_CONTROLS,
    remediation=(
        "Grant roles/cloudkms.cryptoKeyDecrypter on the party data key itself, only to principalSet://iam.googleapis"
        ".com/projects/<number>/locations/global/workloadIdentityPools/<pool>/attribute.image_digest/sha256:<digest>. "
        "Keep owners, editors, crypto operators and service agents off the data key, its key ring and its project "
        "(put the party data keys in a project of their own); service agents use the party's storage key."
    ),
    url=KMS_ROLES_DOCS,
    confidential=True,
)
def gcp_kms_keyringiammember_disallow_unattested_decrypt(stack: Stack) -> Iterator[Finding]:
    """Key-level decrypter members/bindings are judged by gcp-kms-cryptokeyiammember-enforce-digest-principalset;
    this rule adds the other plaintext roles on keys, whole key IAM policies, key rings and projects."""
    for subject in stack.of_type(*_SCOPE_OF):
        if subject.type in (KMS_MEMBER, KMS_BINDING) and subject.get("role") in DECRYPT_ROLES:
            continue

        def check(s: Subject) -> Iterable[str]:
            if reaches_data_key(stack, s):
                yield from _unattested_plaintext_roles(s)

        for message in run_check(check, subject):
            yield Finding(message, subject.resource)


@resource_rule(
    name="gcp-storage-hmackey-disallow-active-key",
    description="No active Cloud Storage HMAC key: a long-lived shared secret reaching the service account's buckets.",
    types=(HMAC_KEY,),
    reads=("serviceAccountEmail", "state"),
    severity=Severity.HIGH,
    controls=("nist:IA-5", "nist:AC-3", "hipaa:164.312(d)", "gdpr:art32"),
    remediation=(
        "Delete the HMAC key (or set state INACTIVE) and reach Cloud Storage with short-lived OAuth tokens of a "
        "workload identity. An HMAC key signs XML API requests as its service account without any attestation or "
        "token expiry, so whoever holds the secret reads every bucket the account can."
    ),
    url="https://cloud.google.com/storage/docs/authentication/hmackeys",
)
def gcp_storage_hmackey_disallow_active_key(subject: Subject) -> Iterable[str]:
    if str(subject.need("state")).upper() != "INACTIVE":
        yield (
            f"{subject.name}: HMAC key of {subject.need('serviceAccountEmail')} is active: a shared secret that reads "
            "its buckets without attestation"
        )


RESOURCE_POLICIES += [gcp_storage_hmackey_disallow_active_key]
STACK_POLICIES += [gcp_kms_keyringiammember_disallow_unattested_decrypt]
POLICIES = RESOURCE_POLICIES + STACK_POLICIES


# --- backup and recovery (issue 18): scheduled-destruction delay and locked audit retention in prod --

_BACKUP_CONTROLS: Final = ("hipaa:164.308(a)(7)", "nist:CP-9", "nist:AU-9", "gdpr:art32")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s$")


@resource_rule(
    name="gcp-kms-cryptokey-enforce-destroy-scheduled-duration",
    description="Key versions scheduled for destruction stay restorable for at least 30 days in prod.",
    types=(CRYPTO_KEY,),
    reads=("destroyScheduledDuration", "labels"),
    severity=Severity.HIGH,
    controls=("hipaa:164.308(a)(7)", "nist:CP-9", "nist:SC-12"),
    remediation="Set destroy_scheduled_duration='2592000s' (prod minimum minDestroyScheduledDays, default 30; Cloud KMS allows up to 120).",
    url="https://cloud.google.com/kms/docs/key-destruction",
    config={"minDestroyScheduledDays": {"type": "integer", "minimum": 1, "maximum": 120}},
)
def gcp_kms_cryptokey_enforce_destroy_scheduled_duration(subject: Subject) -> Iterable[str]:
    value = subject.need("destroyScheduledDuration")
    match = _DURATION.match(str(value))
    minimum = subject.config.get("minDestroyScheduledDays", 30) if subject.prod else 1
    if match is None:
        yield f"{subject.name}: destroyScheduledDuration {value!r} is not a duration in seconds ('2592000s')"
    elif float(match.group(1)) < minimum * 86400:
        yield f"{subject.name}: destroyScheduledDuration {value!r} is under {minimum} days ({subject.environment})"


@resource_rule(
    name="gcp-storage-bucket-enforce-locked-retention",
    description="A bucket with a retention policy (audit or access logs) keeps objects for the audit period, locked, in prod.",
    types=(BUCKET,),
    reads=("retentionPolicy.isLocked", "retentionPolicy.retentionPeriod", "labels"),
    severity=Severity.HIGH,
    controls=_BACKUP_CONTROLS,
    remediation=(
        "Set retention_policy is_locked=True and retention_period >= minRetentionDays * 86400 (default 2192 days) on "
        "log buckets in prod; a locked policy cannot be shortened or removed."
    ),
    url="https://cloud.google.com/storage/docs/bucket-lock",
    config={"minRetentionDays": {"type": "integer", "minimum": 1}},
)
def gcp_storage_bucket_enforce_locked_retention(subject: Subject) -> Iterable[str]:
    if not subject.has("retentionPolicy") or not subject.prod:
        return  # a data bucket (versioned, no retention policy), or dev
    if not truthy(subject.need("retentionPolicy.isLocked")):
        yield f"{subject.name}: retentionPolicy.isLocked is not true in prod"
    period = subject.need("retentionPolicy.retentionPeriod")
    minimum = subject.config.get("minRetentionDays", 2192)
    if not isinstance(period, (int, float)) or isinstance(period, bool) or period < minimum * 86400:
        yield f"{subject.name}: retentionPolicy.retentionPeriod {period!r} is under {minimum} days in prod"


RESOURCE_POLICIES += [gcp_kms_cryptokey_enforce_destroy_scheduled_duration, gcp_storage_bucket_enforce_locked_retention]
POLICIES = RESOURCE_POLICIES + STACK_POLICIES


# --- conditional IAM bindings on party data keys (issue 12) ----------------------------------------

IAM_CONDITIONS_DOCS: Final = "https://cloud.google.com/iam/docs/conditions-overview"


def _conditional_binding(subject: Subject) -> Iterable[str]:
    condition = subject.get("condition")
    if not condition:
        return
    expression = condition.get("expression") if hasattr(condition, "get") else condition
    for member in _members(subject):
        if principal_digest(member) is None:
            yield (
                f"{subject.name}: {subject.need('role')} granted to {member!r} under IAM condition {expression!r} on a "
                "party data key: a condition (time, request attributes, resource names) decides who reaches the key "
                "outside the attestation principalSet; only the image-digest principalSet's binding may carry one"
            )


@stack_rule(
    name="gcp-kms-cryptokeyiammember-disallow-conditional-binding",
    description=(
        "No IAM condition on a party data key's binding except on the workload's image-digest principalSet: a "
        "conditional grant to anyone else is a path to the key that the review cannot read as attested."
    ),
    reads={
        KMS_MEMBER: ("cryptoKeyId", "role", "member", "condition"),
        KMS_BINDING: ("cryptoKeyId", "role", "members", "condition"),
        CRYPTO_KEY: ("name", "labels"),
    },
    severity=Severity.CRITICAL,
    controls=KEY_CONTROLS,
    remediation=(
        "Remove the conditional binding from the party data key. The key's only data-plane member is principalSet://"
        "iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/<pool>/attribute.image_digest/"
        "sha256:<digest>, whose attestation is the workload identity provider's condition; IAM conditions on other "
        "members (request.time, resource.name, access levels) widen or narrow access by attributes that are not the "
        "workload's measurement (" + IAM_CONDITIONS_DOCS + ")."
    ),
    url=IAM_CONDITIONS_DOCS,
    confidential=True,
)
def gcp_kms_cryptokeyiammember_disallow_conditional_binding(stack: Stack) -> Iterator[Finding]:
    for binding in stack.of_type(KMS_MEMBER, KMS_BINDING):
        if on_service_key(stack, binding):
            continue
        for message in run_check(_conditional_binding, binding):
            yield Finding(message, binding.resource)


STACK_POLICIES += [gcp_kms_cryptokeyiammember_disallow_conditional_binding]
POLICIES = RESOURCE_POLICIES + STACK_POLICIES


# --- the Confidential Space launcher can pull the workload image (issue 14, item 3) ----------------------

AR_MEMBER: Final = "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember"
AR_BINDING: Final = "gcp:artifactregistry/repositoryIamBinding:RepositoryIamBinding"
_PULL_GRANT_READS: Final = ("project", "location", "repository", "role", "member")


def _pull_grants(stack: Stack) -> set[tuple[str, str, str, str]]:
    """(project, location, repository, member) of every Artifact Registry reader grant the stack declares,
    and of every grant it declares as a precondition for the repository's owner."""
    grants: set[tuple[str, str, str, str]] = set()
    for grant in stack.of_type(AR_MEMBER, AR_BINDING, IMAGE_PULL_PRECONDITION):
        if grant.get("role") != ARTIFACT_REGISTRY_READER:
            continue
        members = grant.all("members[*]") if grant.type == AR_BINDING else [grant.get("member")]
        where = tuple(str(grant.get(key)) for key in ("project", "location", "repository"))
        grants.update((*where, str(member)) for member in members)  # type: ignore[misc]
    return grants


def _pullable(subject: Subject, grants: set[tuple[str, str, str, str]]) -> Iterable[str]:
    metadata = subject.get("metadata")
    reference = metadata.get("tee-image-reference") if hasattr(metadata, "get") else None
    repository = image_repository(str(reference)) if reference else None
    if repository is None:
        return  # not a Confidential Space workload, or an image outside Artifact Registry
    member = f"serviceAccount:{subject.need('serviceAccount.email')}"
    if (repository.project, repository.location, repository.repository, member) not in grants:
        yield (
            f"{subject.name}: the launcher pulls {reference!r} as {member}, but no {ARTIFACT_REGISTRY_READER} on "
            f"projects/{repository.project}/locations/{repository.location}/repositories/{repository.repository} "
            "is declared, nor declared as a precondition: the workload never starts"
        )


@stack_rule(
    name="gcp-artifactregistry-enforce-image-pull",
    description=(
        "Each Confidential Space workload's service account may pull its image: a reader grant on the image's "
        "repository is declared, or declared as a precondition for the repository's owner."
    ),
    reads={
        INSTANCE: ("metadata", "serviceAccount.email"),
        TEMPLATE: ("metadata", "serviceAccount.email"),
        AR_MEMBER: _PULL_GRANT_READS,
        AR_BINDING: ("project", "location", "repository", "role", "members[*]"),
        IMAGE_PULL_PRECONDITION: _PULL_GRANT_READS,
    },
    severity=Severity.HIGH,
    controls=("nist:CM-7", "nist:AC-6"),
    remediation=(
        "Grant roles/artifactregistry.reader on the image's repository to the workload service account "
        "(ccp-gcp:imageRepositoryGrant: declare), or, when the repository's project is not administered by this "
        "stack, set ccp-gcp:imageRepositoryGrant: precondition and have the repository's owner run the command "
        "the ccp:gcp:ImagePullPrecondition resource records."
    ),
    url="https://docs.cloud.google.com/confidential-computing/confidential-space/docs/deploy-workloads",
)
def gcp_artifactregistry_enforce_image_pull(stack: Stack) -> Iterator[Finding]:
    grants = _pull_grants(stack)
    for host in stack.of_type(INSTANCE, TEMPLATE):
        for message in run_check(lambda subject: _pullable(subject, grants), host):
            yield Finding(message, host.resource)


STACK_POLICIES += [gcp_artifactregistry_enforce_image_pull]
POLICIES = RESOURCE_POLICIES + STACK_POLICIES
