"""Stack rules: properties of the collaboration as a whole, across resources and clouds.

- every party's data store is encrypted at rest with that party's own storage key, and the party
  has an attestation-bound data key (components/README.md, "Two keys per party");
- all party keys pin the same approved measurement set (tag and the values in the documents);
- data residency: every party resource lives in one of the party's allowed regions;
- every key's use is audit-logged;
- in prod, the audit logs have an immutable copy (S3 Object Lock on every trail's bucket, a locked
  immutability policy on the storage account each party vault's diagnostics write to, a locked
  retention policy on the bucket every audited GCP project's sink exports to);
- required tags/labels on every taggable resource.
"""

from __future__ import annotations

from typing import Any, Final, Iterable, Iterator

from pulumi_policy import Severity

from enclave_runtime.measurements import ApprovedMeasurements
from components.attestation.azure_guest_policy import pcr_set_digest
from components.key_purpose import PARTY_STORAGE, PURPOSE_TAG, PURPOSES
from components.site import SHARED_PARTY
from policies.zero_trust.rules import aws, azure, gcp
from policies.zero_trust.rules._base import (
    Finding,
    Stack,
    Subject,
    identifiers,
    is_map,
    plain,
    stack_rule,
    truthy,
)

KEY_TYPES: Final = (aws.KEY, azure.KEY, gcp.CRYPTO_KEY)
STORE_TYPES: Final = (aws.BUCKET, azure.STORAGE, gcp.BUCKET)
CLOUD_OF: Final = {"aws": "aws", "azure-native": "azure", "gcp": "gcp"}

# Taggable types the pack knows, with the property holding tags/labels (fail closed when absent).
TAGGABLE: Final[dict[str, str]] = {
    **{
        t: "tags"
        for t in (
            aws.KEY, aws.INSTANCE, aws.LAUNCH_TEMPLATE, aws.VOLUME, aws.SUBNET, aws.SECURITY_GROUP,
            aws.BUCKET, aws.TRAIL, aws.EKS_CLUSTER, aws.LOG_GROUP,
            azure.KEY, azure.VAULT, azure.VM, azure.DES, azure.NIC, azure.NSG, azure.STORAGE, azure.AKS,
        )
    },
    **{t: "labels" for t in (gcp.CRYPTO_KEY, gcp.INSTANCE, gcp.TEMPLATE, gcp.BUCKET)},
    gcp.CLUSTER: "resourceLabels",
}
DATA_TYPES: Final = frozenset(KEY_TYPES + STORE_TYPES)
DEFAULT_REQUIRED: Final = ("collaboration", "environment", "managed-by", "measurements")
DEFAULT_PARTY_REQUIRED: Final = ("party", "data-classification")


def cloud(subject: Subject) -> str:
    return CLOUD_OF.get(subject.type.split(":", 1)[0], "other")


def _tag_reads(types: Iterable[str]) -> dict[str, tuple[str, ...]]:
    return {t: (TAGGABLE[t],) for t in types}


# --- key helpers ---------------------------------------------------------------------------------


def party_data_keys(stack: Stack) -> list[Subject]:
    """Keys judged as party data keys: tagged `party-data`, untagged or unknown purpose (fail closed)."""
    return [k for k in stack.of_type(*KEY_TYPES) if k.party_data_key]


def _gcp_decrypt_bindings(stack: Stack, key: Subject) -> list[Subject]:
    bindings = stack.of_type(gcp.KMS_MEMBER, gcp.KMS_BINDING)
    return [b for b in bindings if stack.references(b, [key]) and b.get("role") in gcp.DECRYPT_ROLES]


def _gcp_members(binding: Subject) -> list[str]:
    if binding.type == gcp.KMS_MEMBER:
        return [str(binding.get("member", ""))]
    return [str(m) for m in binding.get("members") or []]


def _aws_policies(stack: Stack, key: Subject) -> list[Subject]:
    """The key itself (inline `policy`) and any KeyPolicy resource pointing at it."""
    return [key] + [p for p in stack.of_type(aws.KEY_POLICY) if stack.references(p, [key])]


def attestation_bound(stack: Stack, key: Subject) -> bool:
    """Is this key released only to attested workloads, by its cloud's own mechanism?"""
    if key.type == aws.KEY:
        return any(aws.is_attestation_bound(p) for p in _aws_policies(stack, key) if p.has("policy"))
    if key.type == azure.KEY:
        return azure.is_attestation_bound(key)
    members = [m for b in _gcp_decrypt_bindings(stack, key) for m in _gcp_members(b)]
    return bool(members) and all(gcp.principal_digest(m) for m in members)


def pinned_values(stack: Stack, key: Subject) -> set[str]:
    """Measurement values the key's release documents pin (lowercase hex / sha256 digests)."""
    if key.type == aws.KEY:
        return set().union(*(aws.key_measurements(p) for p in _aws_policies(stack, key) if p.has("policy")))
    if key.type == azure.KEY:
        return azure.key_measurements(key)
    digests = {
        d for b in _gcp_decrypt_bindings(stack, key) for m in _gcp_members(b) if (d := gcp.principal_digest(m))
    }
    for provider in stack.of_type(gcp.WIP_PROVIDER):
        digests.update(gcp.DIGEST.findall(str(provider.get("attributeCondition", ""))))
    return digests


def store_keys(stack: Stack, store: Subject, keys: list[Subject]) -> list[Subject]:
    """Keys encrypting a data store (S3: through its server-side encryption configuration)."""
    found = stack.references(store, keys)
    if store.type == aws.BUCKET:
        for config in stack.of_type(aws.BUCKET_SSE):
            if stack.references(config, [store]):
                found += stack.references(config, keys)
    unique = {k.urn: k for k in found}
    return list(unique.values())


# --- rules ---------------------------------------------------------------------------------------

PARTY_KEY_READS: Final = {
    aws.BUCKET: ("tags",),
    aws.BUCKET_LOGGING: ("targetBucket",),
    aws.BUCKET_SSE: ("bucket", "rules[*].applyServerSideEncryptionByDefault.kmsMasterKeyId"),
    aws.KEY: ("tags", "policy"),
    aws.KEY_POLICY: ("keyId", "policy"),
    azure.STORAGE: ("tags", "encryption.keyVaultProperties.keyName"),
    azure.KEY: ("tags", "keyName", azure.RELEASE_DATA),
    gcp.BUCKET: ("labels", "encryption.defaultKmsKeyName"),
    gcp.CRYPTO_KEY: ("labels",),
    gcp.KMS_MEMBER: ("cryptoKeyId", "role", "member"),
    gcp.KMS_BINDING: ("cryptoKeyId", "role", "members"),
}


@stack_rule(
    name="stack-kms-partykey-enforce-own-key",
    description=(
        "Every party's data store is encrypted at rest with that party's own storage key, and the party has an "
        "attestation-bound data key in the stack."
    ),
    reads=PARTY_KEY_READS,
    severity=Severity.CRITICAL,
    controls=("hipaa:164.312(a)(2)(iv)", "gdpr:art25", "gdpr:art32", "nist:SC-12", "nist:SC-28(1)", "nist:AC-3"),
    remediation=(
        "Encrypt each party's bucket/storage account with a key of that party (same `party` tag) whose "
        "ccp-key-purpose is party-storage, and declare the party's party-data key, released only on attestation "
        "(AWS key policy, Azure release policy, GCP digest principalSet), under which its content is enveloped. "
        "Stores serving every party (audit trails) carry `party: shared`."
    ),
    url="https://docs.aws.amazon.com/kms/latest/developerguide/services-s3.html",
    confidential=True,
)
def stack_kms_partykey_enforce_own_key(stack: Stack) -> Iterator[Finding]:
    """Two keys per party. S3, Cloud Storage and Azure Storage call the KMS without attestation, so the
    at-rest key is a service-bound storage key of the same party; the content itself is enveloped
    under the party's attestation-bound data key, which must exist. A store without a `party` tag
    fails closed; `party: shared` is the explicit marker of a store that holds no party's data."""
    keys = stack.of_type(*KEY_TYPES)
    data_keys = party_data_keys(stack)
    log_targets = aws.access_log_targets(stack)
    bound: dict[str, bool] = {}
    for store in stack.of_type(*STORE_TYPES):
        party = store.tags().get("party")
        if party == SHARED_PARTY or store.urn in log_targets:
            continue  # no party data: a shared store, or S3 access logs (SSE-S3 only, judged by the S3 rules)
        if not party:
            yield Finding(f"data store {store.name} has no `party` tag: whose data it holds is unknown", store.resource)
            continue
        used = store_keys(stack, store, keys)
        if not used:
            yield Finding(f"data store {store.name} of party {party} is not encrypted with a key of this stack", store.resource)
        for key in used:
            owner = key.tags().get("party")
            if owner != party:
                yield Finding(
                    f"data store {store.name} of party {party} is encrypted with key {key.name} of party {owner!r}",
                    store.resource,
                )
            elif key.purpose != PARTY_STORAGE:
                yield Finding(
                    f"data store {store.name}: its at-rest key {key.name} has ccp-key-purpose {key.purpose!r}, "
                    f"not {PARTY_STORAGE!r} (the storage service calls the KMS without attestation: use the "
                    "party's storage key and envelope the content under its data key)",
                    store.resource,
                )
        if party not in bound:
            bound[party] = any(
                k.tags().get("party") == party and attestation_bound(stack, k) for k in data_keys
            )
        if not bound[party]:
            yield Finding(
                f"data store {store.name}: party {party} has no attestation-bound party-data key in this stack "
                "to envelope its content",
                store.resource,
            )


@stack_rule(
    name="stack-kms-partykey-enforce-same-measurements",
    description="All party keys of a collaboration pin the same approved measurement set.",
    reads={
        **{t: PARTY_KEY_READS[t] for t in (aws.KEY, aws.KEY_POLICY, azure.KEY, gcp.CRYPTO_KEY, gcp.KMS_MEMBER, gcp.KMS_BINDING)},
        gcp.WIP_PROVIDER: ("attributeCondition",),
    },
    severity=Severity.CRITICAL,
    controls=("gdpr:art25", "nist:SI-7", "nist:CM-2", "hipaa:164.312(c)(1)"),
    remediation=(
        "Generate every party key's release document from the collaboration's one ApprovedMeasurements "
        "and tag it with its fingerprint (`measurements`); a party pinning other values is a separate deal."
    ),
    url="https://docs.aws.amazon.com/kms/latest/developerguide/conditions-nitro-enclaves.html",
    confidential=True,
    config={
        "approvedMeasurements": {
            "type": "object",
            "description": "The collaboration's ApprovedMeasurements (camelCase, as in ccp:collaboration.measurements).",
        }
    },
)
def stack_kms_partykey_enforce_same_measurements(stack: Stack) -> Iterator[Finding]:
    """Party data keys only (tagged `party-data`, or without a known purpose: fail closed); service
    keys release nothing and pin nothing."""
    keys = party_data_keys(stack)
    approved_raw = stack.config.get("approvedMeasurements")
    approved_values: set[str] | None = None
    expected: str | None = None
    if approved_raw:
        approved = ApprovedMeasurements.model_validate(plain(approved_raw), context={"environment": "dev"})
        approved_values = {v.lower() for _, v in approved.values()}
        if approved.azure_cvm is not None:
            # The CVM path pins the claim the collaboration's attestation policy issues for these PCRs.
            approved_values.add(pcr_set_digest(approved.azure_cvm))
        expected = approved.fingerprint()
    tags = {k.tags().get("measurements") for k in keys}
    for key in keys:
        tag = key.tags().get("measurements")
        if not tag:
            yield Finding(f"key {key.name} has no `measurements` tag", key.resource)
        elif expected is not None and tag != expected:
            yield Finding(f"key {key.name} is tagged with measurement set {tag}, not the approved {expected}", key.resource)
    if expected is None and len(tags - {None}) > 1:
        yield Finding(f"party keys are tagged with different measurement sets: {sorted(t for t in tags if t)}")
    by_cloud: dict[str, dict[str, set[str]]] = {}
    for key in keys:
        values = pinned_values(stack, key)
        if not values:
            yield Finding(f"key {key.name}: its release documents pin no measurement", key.resource)
            continue
        if approved_values is not None:
            stray = sorted(values - approved_values)
            if stray:
                yield Finding(f"key {key.name} pins values outside the approved set: {[s[:16] for s in stray]}", key.resource)
        by_cloud.setdefault(cloud(key), {})[key.name] = values
    for name, per_key in by_cloud.items():
        if len({frozenset(v) for v in per_key.values()}) > 1:
            yield Finding(f"{name} party keys pin different measurements: {sorted(per_key)}")


# Global by construction (no region exists to choose); they name networks or identities, never
# hold party data.
GLOBAL_TYPES: Final = frozenset(
    {
        "aws:iam/role:Role",
        "aws:iam/instanceProfile:InstanceProfile",
        "aws:iam/policy:Policy",
        "gcp:dns/managedZone:ManagedZone",
        "gcp:dns/recordSet:RecordSet",
        "gcp:compute/network:Network",
        "gcp:compute/firewall:Firewall",
        "gcp:compute/route:Route",
        "azure-native:privatedns:PrivateZone",
        "azure-native:privatedns:PrivateRecordSet",
        "azure-native:privatedns:VirtualNetworkLink",
    }
)


def _normalise(region: str) -> str:
    return region.lower().replace(" ", "")


def region_of(stack: Stack, subject: Subject, depth: int = 0) -> str | None:
    """Where a resource lives: its region/location/zone, its provider's region, else what it depends on."""
    for key in ("region", "location"):
        value = subject.get(key)
        if isinstance(value, str) and value:
            return _normalise(value)
    zone = subject.get("zone")
    if isinstance(zone, str) and zone.count("-") >= 2:
        return _normalise(zone.rsplit("-", 1)[0])
    res = subject.resource
    if res is not None and res.provider is not None:
        value = res.provider.props.get("region") or res.provider.props.get("location")
        if isinstance(value, str) and value:
            return _normalise(value)
    if res is not None and depth < 2:
        seen: list[Any] = [d for deps in res.property_dependencies.values() for d in deps] + list(res.dependencies)
        for dep in seen:
            found = region_of(stack, stack.subject(dep), depth + 1)
            if found:
                return found
    return None


@stack_rule(
    name="stack-residency-enforce-allowed-regions",
    description="Every party's resources (keys, storage, compute) stay in that party's allowed regions.",
    reads={
        **_tag_reads(TAGGABLE),
        aws.KEY: ("tags", "region"),
        aws.BUCKET: ("tags", "region"),
        azure.KEY: ("tags",),
        azure.STORAGE: ("tags", "location"),
        azure.VAULT: ("tags", "location"),
        gcp.BUCKET: ("labels", "location"),
        gcp.KEY_RING: ("location",),
        gcp.INSTANCE: ("labels", "zone"),
    },
    severity=Severity.CRITICAL,
    controls=("gdpr:art44", "gdpr:art32", "hipaa:164.312(a)(1)"),
    remediation=(
        "Declare each party resource in one of its allowedRegions; the review fills `allowedRegions` "
        "from ccp:collaboration.parties[].allowedRegions (CLI: config/<stack>.json)."
    ),
    url="https://commission.europa.eu/law/law-topic/data-protection/international-dimension-data-protection_en",
    config={
        "allowedRegions": {
            "type": "object",
            "description": "party name -> list of allowed regions; a party without an entry fails closed.",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        }
    },
)
def stack_residency_enforce_allowed_regions(stack: Stack) -> Iterator[Finding]:
    allowed = stack.config.get("allowedRegions") or {}
    for subject in stack.subjects():
        party = subject.tags().get("party")
        if not party or subject.type in GLOBAL_TYPES:
            continue
        regions = allowed.get(party) if is_map(allowed) else None
        if not regions:
            yield Finding(f"{subject.name}: party {party} has no allowedRegions in the policy config (fail closed)", subject.resource)
            continue
        region = region_of(stack, subject)
        if region is None:
            yield Finding(f"{subject.name}: its region cannot be determined (set region/location explicitly)", subject.resource)
        elif region not in {_normalise(str(r)) for r in regions}:
            yield Finding(
                f"{subject.name} of party {party} is in {region}, outside its allowed regions {list(regions)}",
                subject.resource,
            )


def _key_audited(stack: Stack, key: Subject) -> str | None:
    """None when the key's use is audit-logged, else why not."""
    if key.type == aws.KEY:
        trails = [t for t in stack.of_type(aws.TRAIL) if truthy(t.get("isMultiRegionTrail"))]
        return None if trails else "no multi-region CloudTrail trail records its use"
    if key.type == azure.KEY:
        vaults = stack.references(key, stack.of_type(azure.VAULT))
        if not vaults:
            return "its key vault is not declared in this stack"
        settings = stack.of_type(azure.DIAGNOSTIC)
        for vault in vaults:
            if not any(stack.references(s, [vault]) and _diag_ok(s) for s in settings):
                return f"vault {vault.name} has no diagnostic setting sending audit logs"
        return None
    for config in stack.of_type(gcp.AUDIT_CONFIG):
        types = {str(c.get("logType")) for c in config.all("auditLogConfigs[*]")}
        if config.get("service") in ("allServices", "cloudkms.googleapis.com") and {"DATA_READ", "DATA_WRITE"} <= types:
            return None
    return "no IAMAuditConfig logs DATA_READ and DATA_WRITE for cloudkms.googleapis.com"


def _diag_ok(setting: Subject) -> bool:
    try:
        return azure.audit_enabled(setting)
    except Exception:  # noqa: BLE001 - no logs: not audited
        return False


@stack_rule(
    name="stack-audit-enforce-key-logging",
    description="The use of every key is audit-logged (CloudTrail, Key Vault diagnostics, Cloud Audit Logs).",
    reads={
        aws.KEY: ("tags",),
        aws.TRAIL: ("isMultiRegionTrail",),
        azure.KEY: ("vaultName",),
        azure.VAULT: ("vaultName",),
        azure.DIAGNOSTIC: ("resourceUri", "logs[*].enabled", "logs[*].categoryGroup"),
        gcp.CRYPTO_KEY: ("labels",),
        gcp.AUDIT_CONFIG: ("service", "auditLogConfigs[*].logType"),
    },
    severity=Severity.HIGH,
    controls=("hipaa:164.312(b)", "gdpr:art30", "nist:AU-2", "nist:AU-12"),
    remediation="Declare a multi-region trail (AWS), a diagnostic setting on each Key Vault (Azure) and an IAMAuditConfig for cloudkms (GCP).",
    url="https://learn.microsoft.com/azure/key-vault/general/logging",
)
def stack_audit_enforce_key_logging(stack: Stack) -> Iterator[Finding]:
    for key in stack.of_type(*KEY_TYPES):
        problem = _key_audited(stack, key)
        if problem:
            yield Finding(f"key {key.name}: {problem}", key.resource)


@stack_rule(
    name="stack-tags-missing-required",
    description=(
        "Every taggable resource carries the collaboration tags; keys and data stores also party and "
        "classification, keys also a known ccp-key-purpose."
    ),
    reads=_tag_reads(TAGGABLE),
    severity=Severity.MEDIUM,
    controls=("gdpr:art30", "nist:CM-8"),
    remediation=(
        "Pass SiteArgs.tags(party) (or shared_tags()) as tags (AWS/Azure) or labels (GCP) on every resource, "
        "and components.key_purpose.purpose_tags(<purpose>) on every key."
    ),
    url="https://docs.aws.amazon.com/tag-editor/latest/userguide/best-practices-and-strats.html",
    config={
        "required": {"type": "array", "items": {"type": "string"}},
        "partyRequired": {"type": "array", "items": {"type": "string"}},
    },
)
def stack_tags_missing_required(stack: Stack) -> Iterator[Finding]:
    required = list(stack.config.get("required") or DEFAULT_REQUIRED)
    party_required = list(stack.config.get("partyRequired") or DEFAULT_PARTY_REQUIRED)
    for subject in stack.subjects():
        if subject.type not in TAGGABLE:
            continue
        tags = subject.tags()
        needed = required + (party_required if subject.type in DATA_TYPES else [])
        missing = [t for t in needed if not tags.get(t)]
        if missing:
            yield Finding(f"{subject.name} ({subject.tag_property}) lacks {', '.join(missing)}", subject.resource)
        # A key without a known purpose is judged as a party data key (fail closed); say so.
        if subject.type in KEY_TYPES and subject.purpose not in PURPOSES:
            yield Finding(
                f"{subject.name} ({subject.tag_property}) has {PURPOSE_TAG} {subject.purpose!r}, not one of "
                f"{sorted(PURPOSES)}: it is judged as a party-data key",
                subject.resource,
            )


# --- the immutable audit copy (issue 18) --------------------------------------------------------

GCS_DESTINATION: Final = "storage.googleapis.com/"
LOCKED_STATES: Final = ("Locked",)


def named_by(stack: Stack, subject: Subject, path: str, candidates: list[Subject]) -> list[Subject]:
    """The candidates the one property `path` of `subject` points at: by that property's Pulumi
    dependency, or by an id/name of the candidate as its value (not every dependency of `subject`:
    a trail also depends on its log group and bucket policy)."""
    res = subject.resource
    linked = {d.urn for d in res.property_dependencies.get(path.split(".")[0], [])} if res is not None else set()
    values = {str(v) for v in subject.all(path) if isinstance(v, str)}
    found = []
    for candidate in candidates:
        if candidate.urn == subject.urn:
            continue
        ids = identifiers(candidate)
        if candidate.urn in linked or values & ids or any(v.endswith("/" + i) for v in values for i in ids):
            found.append(candidate)
    return found


ENVIRONMENT_TYPES: Final = (aws.TRAIL, aws.BUCKET, azure.KEY, azure.VAULT, azure.STORAGE, gcp.BUCKET)


def _judged(stack: Stack, subject: Subject) -> bool:
    """Prod only: a resource's own `environment` tag (or the stack tag) decides; one that carries no tags
    (an IAMAuditConfig) is judged unless every tagged resource of these types says `dev` (fail closed)."""
    own = subject.tags().get("environment") or subject.stack_tags.get("environment")
    if own:
        return own != "dev"
    seen = {s.tags().get("environment") for s in stack.of_type(*ENVIRONMENT_TYPES)} - {None}
    return seen != {"dev"}


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _object_lock_problem(lock: Subject) -> str | None:
    """None when the Object Lock configuration keeps every new object version, else why not."""
    if lock.get("objectLockEnabled") != "Enabled":
        return f"objectLockEnabled is {lock.get('objectLockEnabled')!r}, not 'Enabled'"
    mode = lock.get("rule.defaultRetention.mode")
    if mode not in aws.LOCK_MODES:
        return f"its default retention mode is {mode!r}, not one of {list(aws.LOCK_MODES)}"
    if not (_positive(lock.get("rule.defaultRetention.days")) or _positive(lock.get("rule.defaultRetention.years"))):
        return "its default retention has no positive days or years"
    return None


def _aws_copies(stack: Stack) -> Iterator[Finding]:
    buckets = stack.of_type(aws.BUCKET)
    locks = stack.of_type(aws.BUCKET_OBJECT_LOCK)
    for trail in stack.of_type(aws.TRAIL):
        if not _judged(stack, trail):
            continue
        targets = named_by(stack, trail, "s3BucketName", buckets)
        if not targets:
            yield Finding(
                f"trail {trail.name}: its bucket {trail.get('s3BucketName')!r} is not declared in this stack, so no "
                "Object Lock on it can be shown",
                trail.resource,
            )
            continue
        for bucket in targets:
            configs = [lock for lock in locks if named_by(stack, lock, "bucket", [bucket])]
            if not configs:
                yield Finding(
                    f"trail {trail.name}: its bucket {bucket.name} has no Object Lock configuration (COMPLIANCE or "
                    "GOVERNANCE default retention): the trail's log files can be deleted or overwritten",
                    trail.resource,
                )
                continue
            problems = [(lock, _object_lock_problem(lock)) for lock in configs]
            if all(problem for _, problem in problems):
                for lock, problem in problems:
                    yield Finding(f"trail {trail.name}: Object Lock {lock.name} of bucket {bucket.name}: {problem}", lock.resource)


def _archive_problem(account: Subject) -> str | None:
    """None when the account keeps every blob version under a Locked immutability policy, else why not."""
    base = "immutableStorageWithVersioning"
    if not truthy(account.get(f"{base}.enabled")):
        return "it has no version-level immutability (immutableStorageWithVersioning.enabled is not true)"
    state = account.get(f"{base}.immutabilityPolicy.state")
    if state not in LOCKED_STATES:
        return (
            f"its immutability policy is {state!r}, not 'Locked': it can still be shortened or deleted (Azure creates "
            "a policy Unlocked: waive this rule for the account, with that reason, for its first deployment only)"
        )
    return None


def _azure_copies(stack: Stack) -> Iterator[Finding]:
    vaults = stack.of_type(azure.VAULT)
    accounts = stack.of_type(azure.STORAGE)
    settings = stack.of_type(azure.DIAGNOSTIC)
    holding: dict[str, Subject] = {}
    for key in stack.of_type(azure.KEY):
        if not (key.party_data_key or key.purpose == PARTY_STORAGE) or not _judged(stack, key):
            continue
        found = stack.references(key, vaults)
        if not found:
            yield Finding(f"key {key.name}: its key vault is not declared in this stack, so its audit copy cannot be shown", key.resource)
        holding.update({v.urn: v for v in found})
    for vault in holding.values():
        if not _judged(stack, vault):
            continue
        audited = [s for s in settings if stack.references(s, [vault]) and _diag_ok(s)]
        archived = [(s, named_by(stack, s, "storageAccountId", accounts)) for s in audited if s.has("storageAccountId")]
        if not archived:
            yield Finding(
                f"vault {vault.name}: no diagnostic setting sends its audit logs to a storage account (the immutable copy); "
                "a Log Analytics workspace alone can be purged",
                vault.resource,
            )
            continue
        if any(_archive_problem(a) is None for _, targets in archived for a in targets):
            continue
        for setting, targets in archived:
            if not targets:
                yield Finding(
                    f"vault {vault.name}: diagnostic setting {setting.name} writes to storage account "
                    f"{setting.get('storageAccountId')!r}, which is not declared in this stack",
                    setting.resource,
                )
            for account in targets:
                yield Finding(f"vault {vault.name}: audit archive {account.name}: {_archive_problem(account)}", account.resource)


def _project(subject: Subject) -> str | None:
    """The GCP project a resource is in: its own `project`, else its provider's."""
    value = subject.get("project")
    if isinstance(value, str) and value:
        return value
    res = subject.resource
    if res is not None and res.provider is not None:
        found = res.provider.props.get("project")
        if isinstance(found, str) and found:
            return found
    return None


def _sink_exports_audit(sink: Subject) -> bool:
    """An enabled sink whose filter (none: every entry) selects the Cloud Audit Logs."""
    if truthy(sink.get("disabled")):
        return False
    log_filter = sink.get("filter")
    return not log_filter or "cloudaudit.googleapis.com" in str(log_filter)


def _locked_retention_problem(bucket: Subject) -> str | None:
    if not truthy(bucket.get("retentionPolicy.isLocked")):
        return "its retention policy is not locked (retentionPolicy.isLocked is not true): it can be shortened or removed"
    if not _positive(bucket.get("retentionPolicy.retentionPeriod")):
        return "its retention policy has no positive retentionPeriod"
    return None


def _gcp_copies(stack: Stack) -> Iterator[Finding]:
    buckets = stack.of_type(gcp.BUCKET)
    sinks = [s for s in stack.of_type(gcp.PROJECT_SINK) if _sink_exports_audit(s)]
    projects: dict[str, Subject] = {}
    for config in stack.of_type(gcp.AUDIT_CONFIG):
        if not _judged(stack, config):
            continue
        project = _project(config)
        if project is None:
            yield Finding(f"{config.name}: `project` is not set: which project's audit logs need a copy is unknown", config.resource)
        else:
            projects.setdefault(project, config)
    for project, config in sorted(projects.items()):
        exported = [s for s in sinks if _project(s) == project and str(s.get("destination", "")).startswith(GCS_DESTINATION)]
        if not exported:
            yield Finding(
                f"project {project}: no logging sink exports its audit logs to a Cloud Storage bucket (the immutable copy)",
                config.resource,
            )
            continue
        targets: list[tuple[Subject, list[Subject]]] = []
        for sink in exported:
            name = str(sink.get("destination"))[len(GCS_DESTINATION):]
            linked = {b.urn for b in named_by(stack, sink, "destination", buckets)}
            targets.append((sink, [b for b in buckets if b.get("name") == name or b.urn in linked]))
        if any(_locked_retention_problem(b) is None for _, found in targets for b in found):
            continue
        for sink, found in targets:
            if not found:
                yield Finding(
                    f"project {project}: sink {sink.name} exports to {sink.get('destination')!r}, a bucket not declared "
                    "in this stack",
                    sink.resource,
                )
            for bucket in found:
                yield Finding(f"project {project}: audit bucket {bucket.name}: {_locked_retention_problem(bucket)}", bucket.resource)


@stack_rule(
    name="stack-audit-enforce-immutable-copy",
    description=(
        "In prod the audit logs have an immutable copy: every CloudTrail trail's bucket has S3 Object Lock, every "
        "party key vault's diagnostics write to a storage account with a locked immutability policy, every audited "
        "GCP project's sink exports to a bucket with a locked retention policy."
    ),
    reads={
        aws.TRAIL: ("s3BucketName", "tags"),
        aws.BUCKET: ("bucket", "tags"),
        aws.BUCKET_OBJECT_LOCK: (
            "bucket", "objectLockEnabled", "rule.defaultRetention.mode", "rule.defaultRetention.days",
            "rule.defaultRetention.years",
        ),
        azure.KEY: ("tags", "vaultName"),
        azure.VAULT: ("vaultName", "tags"),
        azure.DIAGNOSTIC: ("resourceUri", "storageAccountId", "logs[*].enabled", "logs[*].categoryGroup"),
        azure.STORAGE: ("immutableStorageWithVersioning.enabled", "immutableStorageWithVersioning.immutabilityPolicy.state", "tags"),
        gcp.AUDIT_CONFIG: ("project",),
        gcp.PROJECT_SINK: ("project", "destination", "filter", "disabled"),
        gcp.BUCKET: ("name", "retentionPolicy.isLocked", "retentionPolicy.retentionPeriod", "labels"),
    },
    severity=Severity.HIGH,
    controls=("nist:AU-9", "nist:AU-11", "hipaa:164.312(b)", "gdpr:art32"),
    remediation=(
        "Keep a copy of the audit logs nobody can delete or shorten before the retention period ends: an "
        "aws.s3.BucketObjectLockConfiguration (COMPLIANCE or GOVERNANCE, days/years) on the trail bucket "
        "(components/aws/audit.py does so in prod); a diagnostic setting on each vault holding party keys with "
        "storage_account_id of an account with immutable_storage_with_versioning and a Locked immutability policy "
        "(components/azure/monitoring.py `archive`; a new archive is created Unlocked: waive this rule for that account "
        "with that reason for its first deployment); a logging ProjectSink of every audited project to a bucket with "
        "a locked retention_policy (components/gcp/audit.py `archive`). Advisory outside prod."
    ),
    url="https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock.html",
)
def stack_audit_enforce_immutable_copy(stack: Stack) -> Iterator[Finding]:
    """Each link must exist: trail -> bucket -> Object Lock; party vault -> diagnostic setting -> locked
    archive account; audited project -> sink -> bucket with locked retention. An undeclared target
    fails closed (nothing shows it is immutable). Prod only: a trail, vault, party key or audit config
    tagged `environment: dev` is not judged (the components build the copies in prod); an untagged one is
    (fail closed), and outside prod the rule is advisory (pack.config_for_stack, config/dev.json). The settings of each lock are judged by the
    per-resource rules (aws-s3-bucketobjectlockconfiguration-enforce-retention,
    azure-storage-storageaccount-enforce-immutable-audit, gcp-storage-bucket-enforce-locked-retention)."""
    yield from _aws_copies(stack)
    yield from _azure_copies(stack)
    yield from _gcp_copies(stack)


POLICIES = [
    stack_kms_partykey_enforce_own_key,
    stack_kms_partykey_enforce_same_measurements,
    stack_residency_enforce_allowed_regions,
    stack_audit_enforce_key_logging,
    stack_audit_enforce_immutable_copy,
    stack_tags_missing_required,
]
