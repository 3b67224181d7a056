"""AWS rules: attestation-gated KMS keys (Nitro Enclaves), enclave hosts, network, storage, audit.

Property names are pulumi-aws 7.x camelCase inputs; every path a rule reads is declared in its
`reads` and checked against the real SDK under mocks (tests/policies/test_policy_property_names.py).
"""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any, Callable, Final, Iterable, Iterator

from pulumi_policy import Severity

from components.aws.instance_types import exclusion as enclave_exclusion
from components.key_purpose import PARTY_STORAGE
from policies.zero_trust.rules._base import (
    OPEN_CIDRS,
    Finding,
    Stack,
    Subject,
    falsy,
    identifiers,
    is_all_zero,
    is_map,
    plain,
    require_set,
    require_true,
    resource_rule,
    run_check,
    stack_rule,
    truthy,
)

KEY: Final = "aws:kms/key:Key"
KEY_POLICY: Final = "aws:kms/keyPolicy:KeyPolicy"
INSTANCE: Final = "aws:ec2/instance:Instance"
LAUNCH_TEMPLATE: Final = "aws:ec2/launchTemplate:LaunchTemplate"
VOLUME: Final = "aws:ebs/volume:Volume"
SUBNET: Final = "aws:ec2/subnet:Subnet"
SECURITY_GROUP: Final = "aws:ec2/securityGroup:SecurityGroup"
INGRESS_RULE: Final = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
BUCKET: Final = "aws:s3/bucket:Bucket"
BUCKET_SSE: Final = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
BUCKET_LOGGING: Final = "aws:s3/bucketLogging:BucketLogging"
BUCKET_PAB: Final = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_POLICY: Final = "aws:s3/bucketPolicy:BucketPolicy"
TRAIL: Final = "aws:cloudtrail/trail:Trail"
IAM_POLICY: Final = "aws:iam/policy:Policy"
ROLE_POLICY: Final = "aws:iam/rolePolicy:RolePolicy"
EKS_CLUSTER: Final = "aws:eks/cluster:Cluster"
LOG_GROUP: Final = "aws:cloudwatch/logGroup:LogGroup"

KMS_DOCS: Final = "https://docs.aws.amazon.com/kms/latest/developerguide/conditions-nitro-enclaves.html"
ATTESTATION_PREFIX: Final = "kms:recipientattestation:"
OWNER_DECRYPT_SID: Final = "AllowOwnerDecryptOutsideEnclave"
# Actions that return or re-wrap key material: what an attacker outside the enclave wants.
DATA_PLANE: Final = (
    "kms:decrypt",
    "kms:generatedatakey",
    "kms:generatedatakeypair",
    "kms:generatedatakeywithoutplaintext",
    "kms:generatedatakeypairwithoutplaintext",
    "kms:derivesharedsecret",
    "kms:reencryptfrom",
)
# Service keys: every use of the key, including wrapping and grants (a grant hands out use rights).
SERVICE_USE: Final = DATA_PLANE + ("kms:encrypt", "kms:reencryptto", "kms:creategrant")
# Operators that require kms:ViaService to be present and equal. `...IfExists` would admit a direct
# call (the key is absent then), and set operators (`ForAllValues:`) are true when it is absent.
VIA_SERVICE_OPERATORS: Final = frozenset({"StringEquals", "StringEqualsIgnoreCase", "StringLike"})
SERVICE_ENDPOINT: Final = re.compile(r"^[a-z0-9-]+\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
SERVICE_PRINCIPAL: Final = re.compile(r"^[a-z0-9.-]+\.amazonaws\.com(\.cn)?$")
# What the Deny-if-Null statement must cover: every action whose response can carry plaintext.
BYPASS_ACTIONS: Final = (
    "kms:decrypt",
    "kms:generatedatakey",
    "kms:generatedatakeypair",
    "kms:derivesharedsecret",
    "kms:reencryptfrom",
)


# --- IAM / key policy documents -------------------------------------------------------------------


class BadDocument(Exception):
    pass


def policy_statements(subject: Subject, path: str = "policy") -> list[dict[str, Any]]:
    """The statements of a JSON policy property (string or object); missing is `MissingProperty`."""
    raw = subject.need(path)
    try:
        doc = json.loads(raw) if isinstance(raw, str) else plain(raw)
    except json.JSONDecodeError as error:
        raise BadDocument(f"`{path}` is not valid JSON ({error.msg})") from None
    statements = doc.get("Statement") if isinstance(doc, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise BadDocument(f"`{path}` has no Statement")
    return [s for s in statements if isinstance(s, dict)]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def covers(statement: dict[str, Any], action: str) -> bool:
    """Does the statement's Action (or NotAction) include `action` (lowercase, wildcards honoured)?"""
    if "NotAction" in statement:
        return not any(fnmatch.fnmatchcase(action, a.lower()) for a in _as_list(statement["NotAction"]))
    return any(fnmatch.fnmatchcase(action, str(a).lower()) for a in _as_list(statement.get("Action")))


def attestation_values(statement: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(operator, condition key, value) for each `kms:RecipientAttestation:*` condition value."""
    found = []
    condition = statement.get("Condition") or {}
    for operator, clauses in condition.items():
        if not isinstance(clauses, dict):
            continue
        for key, values in clauses.items():
            if key.lower().startswith(ATTESTATION_PREFIX):
                found.extend((operator, key, str(v)) for v in _as_list(values))
    return found


def requires_attestation(statement: dict[str, Any]) -> bool:
    """An Allow is gated when it compares a RecipientAttestation key (a Null test gates nothing)."""
    return any(op != "Null" and value for op, _, value in attestation_values(statement))


def ungated_allows(statements: list[dict[str, Any]]) -> list[str]:
    """Sids of Allow statements granting a data-plane action without an attestation condition."""
    bad = []
    for i, statement in enumerate(statements):
        if statement.get("Effect") != "Allow" or statement.get("Sid") == OWNER_DECRYPT_SID:
            continue
        if any(covers(statement, a) for a in DATA_PLANE) and not requires_attestation(statement):
            bad.append(str(statement.get("Sid") or f"Statement[{i}]"))
    return bad


def has_null_deny(statements: list[dict[str, Any]]) -> bool:
    """A Deny to everyone of every bypass action when the request carries no attestation document."""
    for statement in statements:
        principal = statement.get("Principal")
        everyone = principal == "*" or (is_map(principal) and principal.get("AWS") in ("*", ["*"]))
        null = (statement.get("Condition") or {}).get("Null") or {}
        unattested = any(
            k.lower().startswith(ATTESTATION_PREFIX) and str(v).lower() == "true" for k, v in null.items()
        )
        if (
            statement.get("Effect") == "Deny"
            and everyone
            and unattested
            and all(covers(statement, a) for a in BYPASS_ACTIONS)
        ):
            return True
    return False


def is_attestation_bound(subject: Subject) -> bool:
    """The key policy gates every data-plane Allow on attestation and closes the bypass."""
    try:
        statements = policy_statements(subject)
    except Exception:  # noqa: BLE001 - missing/invalid policy is not bound
        return False
    return not ungated_allows(statements) and has_null_deny(statements) and any(
        requires_attestation(s) for s in statements if s.get("Effect") == "Allow"
    )


def key_measurements(subject: Subject) -> set[str]:
    """The PCR values a key policy pins (lowercase), for the cross-party comparison."""
    try:
        statements = policy_statements(subject)
    except Exception:  # noqa: BLE001
        return set()
    return {
        value.lower()
        for s in statements
        if s.get("Effect") == "Allow"
        for op, _, value in attestation_values(s)
        if op != "Null"
    }


def _document_rule(check):
    """Adapter: a document check gets the statements; invalid JSON is itself a violation."""

    def run(subject: Subject) -> Iterator[str]:
        try:
            statements = policy_statements(subject)
        except BadDocument as error:
            yield f"{subject.name}: {error}"
            return
        yield from check(subject, statements)

    return run


def _keys_where(applies: Callable[[Subject], bool]):
    """Adapter: run the check only on keys of the purposes it governs (decided before any parsing)."""

    def wrap(check):
        def run(subject: Subject) -> Iterator[str]:
            if applies(subject):
                yield from check(subject)

        return run

    return wrap


# The attestation rules: a key explicitly tagged with a service purpose is judged by
# `aws-kms-key-enforce-via-service` instead. Untagged keys, unknown purposes and `KeyPolicy`
# resources (which carry no tags) stay under the attestation rules: fail closed.
_attested_keys_only = _keys_where(lambda subject: not subject.service_key)
_service_keys_only = _keys_where(lambda subject: subject.service_key)
# The key-administration rules judge every party key: the attestation-bound ones and a party's
# storage key (`party-storage`), administered alike by the party's break-glass role. Shared service
# keys (disk, audit, cluster-secrets) serve every party and stay with `aws-kms-key-enforce-via-service`.
_party_keys_only = _keys_where(lambda subject: not subject.service_key or subject.purpose == PARTY_STORAGE)


def service_principal_only(statement: dict[str, Any]) -> bool:
    """The statement names only AWS service principals (cloudtrail.amazonaws.com, logs.<region>...)."""
    if "NotPrincipal" in statement:
        return False
    principal = statement.get("Principal")
    if not is_map(principal) or set(principal.keys()) != {"Service"}:
        return False
    services = _as_list(principal["Service"])
    return bool(services) and all(isinstance(s, str) and SERVICE_PRINCIPAL.match(s.lower()) for s in services)


def via_service_values(statement: dict[str, Any]) -> list[str]:
    """The `kms:ViaService` values a statement requires (only operators that require presence)."""
    values: list[str] = []
    for operator, clauses in (statement.get("Condition") or {}).items():
        if operator not in VIA_SERVICE_OPERATORS or not isinstance(clauses, dict):
            continue
        for key, value in clauses.items():
            if key.lower() == "kms:viaservice":
                values.extend(str(v) for v in _as_list(value))
    return values


def unscoped_service_allows(statements: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(Sid, why) of Allow statements letting a non-service principal use the key directly."""
    bad: list[tuple[str, str]] = []
    for i, statement in enumerate(statements):
        if statement.get("Effect") != "Allow" or not any(covers(statement, a) for a in SERVICE_USE):
            continue
        if service_principal_only(statement):
            continue
        sid = str(statement.get("Sid") or f"Statement[{i}]")
        values = via_service_values(statement)
        if not values:
            bad.append((sid, "has no kms:ViaService condition"))
        elif any(not SERVICE_ENDPOINT.match(v.lower()) for v in values):
            bad.append((sid, f"has kms:ViaService {values}, not exact service endpoints (<service>.<region>.amazonaws.com)"))
    return bad


# --- KMS -----------------------------------------------------------------------------------------

KMS_CONTROLS: Final = (
    "hipaa:164.312(a)(2)(iv)",
    "gdpr:art25",
    "gdpr:art32",
    "nist:AC-3",
    "nist:SC-12",
    "nist:SC-28(1)",
)


_ATTESTED_READS: Final = {KEY: ("policy", "tags"), KEY_POLICY: ("policy",)}


@resource_rule(
    name="aws-kms-key-enforce-attestation",
    description="KMS key policies allow data-plane actions only to attested Nitro Enclaves.",
    types=(KEY, KEY_POLICY),
    reads=_ATTESTED_READS,
    severity=Severity.CRITICAL,
    controls=KMS_CONTROLS,
    remediation=(
        "Add a `kms:RecipientAttestation:ImageSha384` / `PCR<n>` condition (StringEqualsIgnoreCase) to "
        "every Allow statement that grants kms:Decrypt, kms:GenerateDataKey*, kms:DeriveSharedSecret, "
        "kms:ReEncryptFrom or kms:*; keep administration in a separate statement without data-plane actions."
    ),
    url=KMS_DOCS,
    confidential=True,
)
@_attested_keys_only
@_document_rule
def aws_kms_key_enforce_attestation(subject: Subject, statements: list[dict[str, Any]]) -> Iterable[str]:
    for sid in ungated_allows(statements):
        yield (
            f"{subject.name}: statement {sid!r} allows a data-plane KMS action without a "
            "kms:RecipientAttestation condition: anyone it names can decrypt outside an enclave"
        )


@resource_rule(
    name="aws-kms-key-missing-unattested-deny",
    description="KMS key policies deny data-plane actions to requests without an attestation document.",
    types=(KEY, KEY_POLICY),
    reads=_ATTESTED_READS,
    severity=Severity.CRITICAL,
    controls=KMS_CONTROLS,
    remediation=(
        'Add {"Effect":"Deny","Principal":"*","Action":["kms:Decrypt","kms:GenerateDataKey",'
        '"kms:GenerateDataKeyPair","kms:ReEncryptFrom","kms:DeriveSharedSecret"],"Resource":"*",'
        '"Condition":{"Null":{"kms:RecipientAttestation:ImageSha384":"true"}}}: IAM grants and the '
        "default root statement otherwise let the parent instance decrypt without the enclave."
    ),
    url=KMS_DOCS,
    confidential=True,
)
@_attested_keys_only
@_document_rule
def aws_kms_key_missing_unattested_deny(subject: Subject, statements: list[dict[str, Any]]) -> Iterable[str]:
    if not has_null_deny(statements):
        yield (
            f"{subject.name}: no Deny-if-Null statement closes the unattested path (Principal '*', "
            f"actions {', '.join(BYPASS_ACTIONS)}, Null kms:RecipientAttestation:ImageSha384 = true)"
        )


@resource_rule(
    name="aws-kms-key-enforce-via-service",
    description="Service keys (storage at rest, disks, audit, cluster secrets) are usable only through an AWS service.",
    types=(KEY,),
    reads=("policy", "tags"),
    severity=Severity.HIGH,
    controls=("nist:AC-6", "nist:SC-12", "hipaa:164.312(a)(1)", "gdpr:art32"),
    remediation=(
        "Give every Allow of kms:Decrypt/Encrypt/GenerateDataKey*/ReEncrypt*/CreateGrant to an account, role or "
        "user a StringEquals kms:ViaService condition naming the service endpoint (e.g. s3.eu-west-1.amazonaws.com); "
        "AWS service principals (cloudtrail.amazonaws.com, logs.<region>.amazonaws.com) are scoped by "
        "aws:SourceArn/encryption context instead. A key holding party content is a party-data key instead "
        "(attestation-bound)."
    ),
    url="https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-via-service",
    confidential=True,
)
@_service_keys_only
@_document_rule
def aws_kms_key_enforce_via_service(subject: Subject, statements: list[dict[str, Any]]) -> Iterable[str]:
    for sid, why in unscoped_service_allows(statements):
        yield (
            f"{subject.name}: {subject.purpose} key statement {sid!r} lets a principal use the key directly: "
            f"it {why}"
        )


@resource_rule(
    name="aws-kms-key-disallow-debug-pcr",
    description="KMS key policies never compare an all-zero PCR (what a debug-mode enclave reports).",
    types=(KEY, KEY_POLICY),
    reads=("policy",),
    severity=Severity.CRITICAL,
    controls=("nist:SI-7", "hipaa:164.312(c)(1)", "gdpr:art32", "nist:SC-12"),
    remediation="Pin the PCRs of the release enclave image (`nitro-cli describe-eif`), never the zeros of --debug-mode.",
    url="https://docs.aws.amazon.com/enclaves/latest/user/set-up-attestation.html",
    confidential=True,
)
@_document_rule
def aws_kms_key_disallow_debug_pcr(subject: Subject, statements: list[dict[str, Any]]) -> Iterable[str]:
    for statement in statements:
        for _, key, value in attestation_values(statement):
            if is_all_zero(value):
                yield (
                    f"{subject.name}: statement {statement.get('Sid', '?')!r} compares {key} with an "
                    "all-zero value: a debug-mode enclave would receive the key"
                )


@resource_rule(
    name="aws-kms-key-disallow-owner-decrypt",
    description="Owner decryption outside the enclave is an explicit, reviewed opt-in.",
    types=(KEY, KEY_POLICY),
    reads=("policy",),
    severity=Severity.MEDIUM,
    controls=("gdpr:art25", "nist:AC-6", "hipaa:164.312(a)(1)"),
    remediation=(
        f"Remove the {OWNER_DECRYPT_SID} statement (ownerDecrypt: false) unless the party decided to read "
        "its own data outside the enclave; waive it here with the decision as the reason."
    ),
    url=KMS_DOCS,
    confidential=True,
)
@_document_rule
def aws_kms_key_disallow_owner_decrypt(subject: Subject, statements: list[dict[str, Any]]) -> Iterable[str]:
    for statement in statements:
        if statement.get("Sid") == OWNER_DECRYPT_SID and statement.get("Effect") == "Allow":
            yield (
                f"{subject.name}: {OWNER_DECRYPT_SID} lets {statement.get('Principal')} decrypt without "
                "attestation (owner opt-in)"
            )


# Calls that change who may use a key: confined by an explicit Deny to one named principal.
POLICY_CHANGE: Final = ("kms:putkeypolicy", "kms:creategrant")
ACCOUNT_PRINCIPAL: Final = re.compile(r"^(arn:[a-z-]+:iam::\d{12}:root|\d{12})$")
NAMED_PRINCIPAL: Final = re.compile(r"^arn:[a-z-]+:iam::\d{12}:(role|user)/[\w+=,.@/-]+$")
KEY_ADMIN_DOCS: Final = "https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html"


def _aws_principals(statement: dict[str, Any]) -> list[str]:
    principal = statement.get("Principal")
    if principal == "*":
        return ["*"]
    if not is_map(principal):
        return []
    return [str(p) for p in _as_list(principal.get("AWS"))]


def root_principal_allows(statements: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(Sid, principal) of Allow statements naming an account (root ARN or bare account id)."""
    found = []
    for i, statement in enumerate(statements):
        if statement.get("Effect") != "Allow":
            continue
        for principal in _aws_principals(statement):
            if ACCOUNT_PRINCIPAL.match(principal):
                found.append((str(statement.get("Sid") or f"Statement[{i}]"), principal))
    return found


# The one further exemption a service key's Deny may carry: grants an AWS service creates for an AWS
# resource on the caller's behalf. EBS creates a grant per volume (CreateGrant with
# `kms:GrantIsForAWSResource` = true, Amazon EBS User Guide, "Requirements for Amazon EBS encryption";
# KMS Developer Guide, "kms:GrantIsForAWSResource"), so a Deny of CreateGrant to everyone would break
# EBS encryption with that key. `BoolIfExists ... false` keeps the Deny on every other call: a
# request without the key (PutKeyPolicy, ReplicateKey, ...) matches IfExists, and a caller's own
# CreateGrant carries false. A plain `Bool` would not match requests lacking the key, i.e. it would
# lift the Deny of PutKeyPolicy, so it is refused.
AWS_RESOURCE_GRANT_EXEMPTION: Final = ("BoolIfExists", "kms:grantisforawsresource", "false")


def _aws_resource_grant_exemption(operator: str, clauses: Any) -> bool:
    if operator != AWS_RESOURCE_GRANT_EXEMPTION[0] or not is_map(clauses) or len(clauses) != 1:
        return False
    key, value = next(iter(clauses.items()))
    values = _as_list(value)
    return (
        str(key).lower() == AWS_RESOURCE_GRANT_EXEMPTION[1]
        and len(values) == 1
        and str(values[0]).lower() == AWS_RESOURCE_GRANT_EXEMPTION[2]
    )


def policy_change_exception(statement: dict[str, Any], service_key: bool = False) -> tuple[str | None, str]:
    """For a Deny to everyone of PutKeyPolicy and CreateGrant: (the one principal it exempts, "") or
    (None, why it does not confine them to one named principal). On a service key the Deny may also
    exempt AWS-resource grants (AWS_RESOURCE_GRANT_EXEMPTION)."""
    condition = statement.get("Condition") or {}
    if is_map(condition) and service_key and len(condition) == 2:
        condition = {op: c for op, c in condition.items() if not _aws_resource_grant_exemption(op, c)}
    if not is_map(condition) or len(condition) != 1:
        return None, "its Condition is not exactly one ArnNotEquals/StringNotEquals on aws:PrincipalArn"
    operator, clauses = next(iter(condition.items()))
    if operator not in ("ArnNotEquals", "StringNotEquals") or not is_map(clauses) or len(clauses) != 1:
        return None, f"its Condition uses {operator!r}, not one ArnNotEquals/StringNotEquals on aws:PrincipalArn"
    key, values = next(iter(clauses.items()))
    values = _as_list(values)
    if str(key).lower() != "aws:principalarn":
        return None, f"it exempts by {key!r}, not aws:PrincipalArn"
    if len(values) != 1:
        return None, f"it exempts {len(values)} principals, not one"
    value = str(values[0])
    if ACCOUNT_PRINCIPAL.match(value):
        return None, f"it exempts the account root {value!r}, which delegates to every IAM administrator"
    if not NAMED_PRINCIPAL.match(value):
        return None, f"it exempts {value!r}, which is not one named IAM role or user (no wildcards)"
    return value, ""


def policy_change_problems(statements: list[dict[str, Any]], service_key: bool = False) -> list[str]:
    """Why kms:PutKeyPolicy/kms:CreateGrant are not confined to one named principal ([] if they are)."""
    reasons = []
    for i, statement in enumerate(statements):
        if statement.get("Effect") != "Deny" or "NotPrincipal" in statement:
            continue
        if _aws_principals(statement) not in (["*"],) or not all(covers(statement, a) for a in POLICY_CHANGE):
            continue
        if "NotResource" in statement or any(r != "*" for r in _as_list(statement.get("Resource", "*"))):
            reasons.append(f"statement {statement.get('Sid') or f'Statement[{i}]'!r} does not cover the key (Resource)")
            continue
        exempt, why = policy_change_exception(statement, service_key)
        if exempt is not None:
            return []
        reasons.append(f"statement {statement.get('Sid') or f'Statement[{i}]'!r}: {why}")
    return reasons or ["no explicit Deny to Principal '*' of kms:PutKeyPolicy and kms:CreateGrant"]


_KEY_ADMIN_CONTROLS: Final = ("hipaa:164.312(a)(1)", "gdpr:art32", "nist:AC-3", "nist:AC-6(5)", "cis-aws:1.16")


@resource_rule(
    name="aws-kms-key-disallow-root-admin",
    description="Party KMS keys (attestation-bound and party storage) never name the account root: it delegates key administration to IAM.",
    types=(KEY, KEY_POLICY),
    reads=_ATTESTED_READS,
    severity=Severity.CRITICAL,
    controls=_KEY_ADMIN_CONTROLS,
    remediation=(
        "Replace the account principal (arn:aws:iam::<account>:root or the bare account id) by the party's "
        "named break-glass role, with Condition Bool aws:MultiFactorAuthPresent=true on its administrative "
        "statement: a root principal lets every identity with an IAM allow of kms:PutKeyPolicy "
        "(AdministratorAccess, OrganizationAccountAccessRole) replace the policy and drop the attestation conditions."
    ),
    url=KEY_ADMIN_DOCS,
    confidential=True,
)
@_party_keys_only
@_document_rule
def aws_kms_key_disallow_root_admin(subject: Subject, statements: list[dict[str, Any]]) -> Iterable[str]:
    for sid, principal in root_principal_allows(statements):
        yield (
            f"{subject.name}: statement {sid!r} names the account root {principal}: KMS delegates it to IAM, so "
            "any IAM administrator of the account can re-policy this party key"
        )


@resource_rule(
    name="aws-kms-key-enforce-policy-change-deny",
    description="Only one named principal may change a party KMS key's policy or grants (explicit Deny).",
    types=(KEY, KEY_POLICY),
    reads=_ATTESTED_READS,
    severity=Severity.CRITICAL,
    controls=_KEY_ADMIN_CONTROLS,
    remediation=(
        'Add {"Effect":"Deny","Principal":"*","Action":["kms:PutKeyPolicy","kms:CreateGrant",'
        '"kms:ReplicateKey"],"Resource":"*","Condition":{"ArnNotEquals":{"aws:PrincipalArn":'
        '"<break-glass role ARN>"}}} and allow that role kms:PutKeyPolicy (with MFA) so the key stays '
        "manageable: a Deny wins over any IAM or key-policy Allow. A party storage key used by EBS may add "
        '"BoolIfExists":{"kms:GrantIsForAWSResource":"false"} to that Condition (grants EBS creates for a volume).'
    ),
    url="https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-principalarn",
    confidential=True,
)
@_party_keys_only
@_document_rule
def aws_kms_key_enforce_policy_change_deny(subject: Subject, statements: list[dict[str, Any]]) -> Iterable[str]:
    problems = policy_change_problems(statements, subject.service_key)
    if problems:
        yield (
            f"{subject.name}: kms:PutKeyPolicy/kms:CreateGrant are not confined to one named principal "
            f"({'; '.join(problems)}): whoever IAM or the policy allows could replace the policy and drop the "
            "attestation conditions"
        )


@resource_rule(
    name="aws-kms-key-enable-rotation",
    description="KMS keys rotate automatically at most every 90 days.",
    types=(KEY,),
    reads=("enableKeyRotation", "rotationPeriodInDays"),
    severity=Severity.HIGH,
    controls=("cis-aws:3.6", "hipaa:164.312(a)(2)(iv)", "nist:SC-12"),
    remediation="Set enable_key_rotation=True and rotation_period_in_days=90.",
    url="https://docs.aws.amazon.com/kms/latest/developerguide/rotate-keys.html",
)
def aws_kms_key_enable_rotation(subject: Subject) -> Iterable[str]:
    yield from require_true(subject, "enableKeyRotation")
    period = subject.need("rotationPeriodInDays")
    if not isinstance(period, (int, float)) or period > 90:
        yield f"{subject.name}: rotationPeriodInDays is {period}, more than 90"


# --- EC2 -----------------------------------------------------------------------------------------

_HOSTS: Final = (INSTANCE, LAUNCH_TEMPLATE)


@resource_rule(
    name="aws-ec2-instance-enable-enclave",
    description="Workload hosts run a TEE: Nitro Enclaves enabled (or AMD SEV-SNP).",
    types=_HOSTS,
    reads=("enclaveOptions.enabled", "cpuOptions.amdSevSnp"),
    severity=Severity.CRITICAL,
    controls=("hipaa:164.312(a)(2)(iv)", "nist:SC-39", "gdpr:art32"),
    remediation="Set enclave_options={'enabled': True} on the instance or launch template.",
    url="https://docs.aws.amazon.com/enclaves/latest/user/create-enclave.html",
    confidential=True,
)
def aws_ec2_instance_enable_enclave(subject: Subject) -> Iterable[str]:
    if truthy(subject.get("enclaveOptions.enabled")) or subject.get("cpuOptions.amdSevSnp") == "enabled":
        return
    subject.need("enclaveOptions.enabled")
    yield f"{subject.name}: enclaveOptions.enabled is not true and cpuOptions.amdSevSnp is not 'enabled'"


_NITRO_SMALL: Final = {"nano", "micro", "small", "medium", "large"}


@resource_rule(
    name="aws-ec2-instance-enforce-enclave-capable-type",
    description="Enclave hosts use Nitro instance types with at least 4 vCPUs (not burstable, not metal).",
    types=_HOSTS,
    reads=("instanceType",),
    severity=Severity.HIGH,
    controls=("nist:SC-39", "hipaa:164.312(a)(2)(iv)"),
    remediation="Use e.g. m6i.xlarge, c6i.2xlarge or r6i.xlarge (see Nitro Enclaves requirements).",
    url="https://docs.aws.amazon.com/enclaves/latest/user/nitro-enclave.html#nitro-enclave-reqs",
    confidential=True,
)
def aws_ec2_instance_enforce_enclave_capable_type(subject: Subject) -> Iterable[str]:
    instance_type = str(subject.need("instanceType"))
    family, _, size = instance_type.partition(".")
    # The guide's named exclusions first, so e.g. trn1 is refused for being excluded, not as a "t" type.
    if reason := enclave_exclusion(instance_type):
        yield f"{subject.name}: {instance_type!r} cannot run Nitro Enclaves ({reason})"
    elif family.startswith(("t", "a1", "mac")) or size in _NITRO_SMALL or size.startswith("metal") or not size:
        yield f"{subject.name}: {instance_type!r} cannot run Nitro Enclaves (needs >= 4 vCPUs, Nitro, not metal)"


@resource_rule(
    name="aws-ec2-instance-enforce-imdsv2",
    description="Instance metadata requires IMDSv2 tokens with a hop limit of at most 2.",
    types=_HOSTS,
    reads=("metadataOptions.httpTokens", "metadataOptions.httpPutResponseHopLimit"),
    severity=Severity.HIGH,
    controls=("cis-aws:5.6", "nist:AC-6", "hipaa:164.312(a)(1)"),
    remediation="Set metadata_options={'http_tokens': 'required', 'http_put_response_hop_limit': 1}.",
    url="https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-IMDS-new-instances.html",
)
def aws_ec2_instance_enforce_imdsv2(subject: Subject) -> Iterable[str]:
    if subject.need("metadataOptions.httpTokens") != "required":
        yield f"{subject.name}: metadataOptions.httpTokens is not 'required' (IMDSv1 allowed)"
    hops = subject.need("metadataOptions.httpPutResponseHopLimit")
    if not isinstance(hops, (int, float)) or hops > 2:
        yield f"{subject.name}: metadataOptions.httpPutResponseHopLimit is {hops}, more than 2"


@resource_rule(
    name="aws-ec2-instance-disallow-public-ip",
    description="Instances and launch templates never associate a public IP address.",
    types=_HOSTS,
    reads={
        INSTANCE: ("associatePublicIpAddress",),
        LAUNCH_TEMPLATE: ("networkInterfaces[*].associatePublicIpAddress",),
    },
    severity=Severity.HIGH,
    controls=("hipaa:164.312(a)(1)", "nist:SC-7", "gdpr:art32"),
    remediation="Set associate_public_ip_address=False (launch templates: 'false' on every network interface); use SSM.",
    url="https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-instance-addressing.html",
)
def aws_ec2_instance_disallow_public_ip(subject: Subject) -> Iterable[str]:
    """Instances must say false. A launch template without interfaces leaves the choice to the
    instance/subnet (each checked by its own rule); every interface it does declare must say false."""
    if subject.type == INSTANCE:
        value = subject.need("associatePublicIpAddress")
        if not falsy(value):
            yield f"{subject.name}: associatePublicIpAddress is {value!r}, not false"
        return
    for i, nic in enumerate(subject.all("networkInterfaces[*]")):
        value = nic.get("associatePublicIpAddress")
        if value is None:
            subject.need(f"networkInterfaces[{i}].associatePublicIpAddress")
        if not falsy(value):
            yield f"{subject.name}: networkInterfaces[{i}].associatePublicIpAddress is {value!r}, not false"


@resource_rule(
    name="aws-ec2-volume-enforce-cmk-encryption",
    description="EBS volumes (root, attached, templates) are encrypted with a customer-managed KMS key.",
    types=(INSTANCE, LAUNCH_TEMPLATE, VOLUME),
    reads={
        INSTANCE: ("rootBlockDevice.encrypted", "rootBlockDevice.kmsKeyId", "ebsBlockDevices[*].encrypted"),
        LAUNCH_TEMPLATE: ("blockDeviceMappings[*].ebs.encrypted", "blockDeviceMappings[*].ebs.kmsKeyId"),
        VOLUME: ("encrypted", "kmsKeyId"),
    },
    severity=Severity.HIGH,
    controls=("cis-aws:2.2.1", "hipaa:164.312(a)(2)(iv)", "nist:SC-28(1)", "gdpr:art32"),
    remediation="Set encrypted=True and kms_key_id to the site's CMK on every block device.",
    url="https://docs.aws.amazon.com/ebs/latest/userguide/ebs-encryption.html",
)
def aws_ec2_volume_enforce_cmk_encryption(subject: Subject) -> Iterable[str]:
    if subject.type == VOLUME:
        devices = [subject.props]
    elif subject.type == INSTANCE:
        devices = [subject.need("rootBlockDevice")] + subject.all("ebsBlockDevices[*]")
    else:
        devices = subject.need_all("blockDeviceMappings[*].ebs")
    for i, device in enumerate(devices):
        if not truthy(device.get("encrypted")):
            yield f"{subject.name}: block device {i} is not encrypted"
        if not device.get("kmsKeyId"):
            yield f"{subject.name}: block device {i} has no kmsKeyId (AWS-managed key instead of the CMK)"


@resource_rule(
    name="aws-ec2-subnet-disallow-public-ip-on-launch",
    description="Subnets never assign public IPs on launch.",
    types=(SUBNET,),
    reads=("mapPublicIpOnLaunch",),
    severity=Severity.HIGH,
    controls=("nist:SC-7", "hipaa:164.312(a)(1)"),
    remediation="Set map_public_ip_on_launch=False explicitly.",
    url="https://docs.aws.amazon.com/vpc/latest/userguide/subnet-public-ip.html",
)
def aws_ec2_subnet_disallow_public_ip_on_launch(subject: Subject) -> Iterable[str]:
    if not falsy(subject.need("mapPublicIpOnLaunch")):
        yield f"{subject.name}: mapPublicIpOnLaunch is true"


@resource_rule(
    name="aws-ec2-securitygroup-disallow-open-ingress",
    description="Security groups admit no ingress from 0.0.0.0/0 or ::/0.",
    types=(SECURITY_GROUP, INGRESS_RULE),
    reads={
        SECURITY_GROUP: ("ingress[*].cidrBlocks", "ingress[*].ipv6CidrBlocks"),
        INGRESS_RULE: ("cidrIpv4", "cidrIpv6", "referencedSecurityGroupId", "prefixListId"),
    },
    severity=Severity.HIGH,
    controls=("cis-aws:5.2", "nist:SC-7", "hipaa:164.312(a)(1)"),
    remediation="Admit only VPC CIDRs, prefix lists or security groups; reach hosts through SSM.",
    url="https://docs.aws.amazon.com/vpc/latest/userguide/security-group-rules.html",
)
def aws_ec2_securitygroup_disallow_open_ingress(subject: Subject) -> Iterable[str]:
    if subject.type == SECURITY_GROUP:
        sources = subject.all("ingress[*].cidrBlocks[*]") + subject.all("ingress[*].ipv6CidrBlocks[*]")
    else:
        sources = [subject.get(k) for k in ("cidrIpv4", "cidrIpv6") if subject.get(k)]
        if not sources and not subject.get("referencedSecurityGroupId") and not subject.get("prefixListId"):
            subject.need("cidrIpv4")
    for source in sources:
        if str(source).lower() in OPEN_CIDRS:
            yield f"{subject.name}: ingress from {source} (the whole internet)"


# --- S3 ------------------------------------------------------------------------------------------


SSE_S3: Final = "AES256"


def access_log_targets(stack: Stack) -> set[str]:
    """URNs of the buckets S3 server access logging delivers to.

    AWS supports only SSE-S3 default encryption on a log target bucket
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html), and such
    a bucket holds request logs, not party data. It is recognised by structure (the `targetBucket`
    of a `BucketLogging`), never by name, so no naming convention can exempt a data bucket.
    """
    buckets = stack.of_type(BUCKET)
    urns: set[str] = set()
    for logging in stack.of_type(BUCKET_LOGGING):
        res = logging.resource
        if res is not None:
            urns.update(d.urn for d in res.property_dependencies.get("targetBucket", []))
        target = logging.get("targetBucket")
        urns.update(b.urn for b in buckets if target and target in identifiers(b))
    return urns


def sse_problems(subject: Subject, log_target: bool) -> list[str]:
    """What is wrong with a bucket's default encryption: SSE-KMS with a CMK, or SSE-S3 on a log target."""
    problems = []
    rules = subject.all("rules[*].applyServerSideEncryptionByDefault")
    if not rules:
        return [f"{subject.name}: no default encryption rule"]
    for i, rule in enumerate(rules):
        algorithm = rule.get("sseAlgorithm")
        if log_target:
            if algorithm != SSE_S3:
                problems.append(
                    f"{subject.name}: rule {i} uses {algorithm!r} on an access-log target bucket, where AWS "
                    f"supports only {SSE_S3!r} (SSE-S3)"
                )
        elif algorithm not in ("aws:kms", "aws:kms:dsse"):
            problems.append(f"{subject.name}: rule {i} uses {algorithm!r}, not aws:kms")
        elif not rule.get("kmsMasterKeyId"):
            problems.append(f"{subject.name}: rule {i} has no kmsMasterKeyId (the AWS-managed aws/s3 key)")
    return problems


@stack_rule(
    name="aws-s3-bucket-enforce-cmk-encryption",
    description=(
        "S3 default encryption is SSE-KMS with a customer-managed key (SSE-S3 only on server access log "
        "targets, the one setting AWS supports there)."
    ),
    reads={
        BUCKET_SSE: (
            "bucket",
            "rules[*].applyServerSideEncryptionByDefault.sseAlgorithm",
            "rules[*].applyServerSideEncryptionByDefault.kmsMasterKeyId",
        ),
        BUCKET_LOGGING: ("targetBucket",),
    },
    severity=Severity.HIGH,
    controls=("hipaa:164.312(a)(2)(iv)", "gdpr:art32", "nist:SC-28(1)"),
    remediation="Use sse_algorithm='aws:kms' with kms_master_key_id set to the party's storage key.",
    url="https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html",
)
def aws_s3_bucket_enforce_cmk_encryption(stack: Stack) -> Iterator[Finding]:
    targets = access_log_targets(stack)
    buckets = stack.of_type(BUCKET)
    for config in stack.of_type(BUCKET_SSE):
        log_target = any(b.urn in targets for b in stack.references(config, buckets))
        for problem in sse_problems(config, log_target):
            yield Finding(problem, config.resource)


_PAB_FLAGS: Final = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


@resource_rule(
    name="aws-s3-bucketpublicaccessblock-enable-all",
    description="S3 public access blocks set all four flags.",
    types=(BUCKET_PAB,),
    reads=_PAB_FLAGS,
    severity=Severity.HIGH,
    controls=("cis-aws:2.1.4", "hipaa:164.312(a)(1)", "gdpr:art32", "nist:AC-3"),
    remediation="Set block_public_acls, block_public_policy, ignore_public_acls and restrict_public_buckets to True.",
    url="https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html",
)
def aws_s3_bucketpublicaccessblock_enable_all(subject: Subject) -> Iterable[str]:
    yield from require_true(subject, *_PAB_FLAGS)


def denies_insecure_transport(statements: list[dict[str, Any]]) -> bool:
    for statement in statements:
        bool_cond = (statement.get("Condition") or {}).get("Bool") or {}
        value = bool_cond.get("aws:SecureTransport")
        if statement.get("Effect") == "Deny" and str(value).lower() == "false" and covers(statement, "s3:getobject"):
            return True
    return False


@resource_rule(
    name="aws-s3-bucketpolicy-enforce-tls",
    description="S3 bucket policies deny requests that do not use TLS.",
    types=(BUCKET_POLICY,),
    reads=("policy",),
    severity=Severity.HIGH,
    controls=("cis-aws:2.1.1", "hipaa:164.312(e)(1)", "nist:SC-8", "gdpr:art32"),
    remediation='Add a Deny of "s3:*" to "*" with Condition {"Bool": {"aws:SecureTransport": "false"}}.',
    url="https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices.html",
)
@_document_rule
def aws_s3_bucketpolicy_enforce_tls(subject: Subject, statements: list[dict[str, Any]]) -> Iterable[str]:
    if not denies_insecure_transport(statements):
        yield f"{subject.name}: no Deny statement with aws:SecureTransport = false"


def _bucket_companions(stack: Stack, companion_type: str) -> Iterator[tuple[Subject, list[Subject]]]:
    companions = stack.of_type(companion_type)
    for bucket in stack.of_type(BUCKET):
        paired = [c for c in companions if stack.references(c, [bucket])]
        yield bucket, paired


def _companion_rule(companion_type: str, label: str, good: Callable[[Subject, bool], bool]) -> Any:
    """Every bucket has a compliant companion; `good(companion, bucket_is_access_log_target)`."""

    def check(stack: Stack) -> Iterator[Finding]:
        targets = access_log_targets(stack)
        for bucket, paired in _bucket_companions(stack, companion_type):
            if not paired:
                yield Finding(f"bucket {bucket.name} has no {label}", bucket.resource)
            elif not any(good(c, bucket.urn in targets) for c in paired):
                yield Finding(f"bucket {bucket.name}: its {label} is not compliant", bucket.resource)

    return check


def _sse_ok(subject: Subject, log_target: bool) -> bool:
    return not sse_problems(subject, log_target)


def _pab_ok(subject: Subject, _log_target: bool) -> bool:
    return all(truthy(subject.get(flag)) for flag in _PAB_FLAGS)


def _tls_ok(subject: Subject, _log_target: bool) -> bool:
    try:
        return denies_insecure_transport(policy_statements(subject))
    except Exception:  # noqa: BLE001 - missing/invalid policy: not compliant
        return False


aws_s3_bucket_missing_encryption = stack_rule(
    name="aws-s3-bucket-missing-encryption",
    description="Every S3 bucket has a server-side encryption configuration with a CMK (pulumi-aws v7 splits it out).",
    reads={BUCKET: ("bucket",), BUCKET_SSE: ("bucket",), BUCKET_LOGGING: ("targetBucket",)},
    severity=Severity.HIGH,
    controls=("hipaa:164.312(a)(2)(iv)", "gdpr:art32", "nist:SC-28(1)"),
    remediation="Declare aws.s3.BucketServerSideEncryptionConfiguration(bucket=bucket.id, rules=[SSE-KMS with the party key]).",
    url="https://www.pulumi.com/registry/packages/aws/api-docs/s3/bucketserversideencryptionconfiguration/",
)(_companion_rule(BUCKET_SSE, "default encryption configuration", _sse_ok))

aws_s3_bucket_missing_public_access_block = stack_rule(
    name="aws-s3-bucket-missing-public-access-block",
    description="Every S3 bucket has a public access block with all four flags.",
    reads={BUCKET_PAB: ("bucket",)},
    severity=Severity.HIGH,
    controls=("cis-aws:2.1.4", "hipaa:164.312(a)(1)", "gdpr:art32", "nist:AC-3"),
    remediation="Declare aws.s3.BucketPublicAccessBlock(bucket=bucket.id, all four flags True).",
    url="https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html",
)(_companion_rule(BUCKET_PAB, "public access block", _pab_ok))

aws_s3_bucket_missing_tls_policy = stack_rule(
    name="aws-s3-bucket-missing-tls-policy",
    description="Every S3 bucket has a bucket policy denying non-TLS requests.",
    reads={BUCKET_POLICY: ("bucket", "policy")},
    severity=Severity.HIGH,
    controls=("cis-aws:2.1.1", "hipaa:164.312(e)(1)", "nist:SC-8"),
    remediation="Declare aws.s3.BucketPolicy(bucket=bucket.id) with a Deny on aws:SecureTransport=false.",
    url="https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices.html",
)(_companion_rule(BUCKET_POLICY, "TLS-only bucket policy", _tls_ok))


# --- audit, identity, EKS, logs -------------------------------------------------------------------


@resource_rule(
    name="aws-cloudtrail-trail-enforce-integrity",
    description="CloudTrail trails are multi-region, validate log files and encrypt with a CMK.",
    types=(TRAIL,),
    reads=("isMultiRegionTrail", "enableLogFileValidation", "kmsKeyId"),
    severity=Severity.HIGH,
    controls=("hipaa:164.312(b)", "gdpr:art30", "nist:AU-2", "nist:AU-9", "cis-aws:3.1", "cis-aws:3.2", "cis-aws:3.5"),
    remediation="Set is_multi_region_trail=True, enable_log_file_validation=True and kms_key_id.",
    url="https://docs.aws.amazon.com/awscloudtrail/latest/userguide/best-practices-security.html",
)
def aws_cloudtrail_trail_enforce_integrity(subject: Subject) -> Iterable[str]:
    yield from require_true(subject, "isMultiRegionTrail", "enableLogFileValidation")
    yield from require_set(subject, "kmsKeyId")


@resource_rule(
    name="aws-iam-policy-disallow-wildcard-kms",
    description="IAM policies grant no wildcard actions and no KMS data-plane action on every key.",
    types=(IAM_POLICY, ROLE_POLICY),
    reads=("policy",),
    severity=Severity.HIGH,
    controls=("nist:AC-6", "hipaa:164.312(a)(1)", "cis-aws:1.16"),
    remediation="Name the actions and the key ARNs; key use is granted by the key policy with attestation.",
    url="https://docs.aws.amazon.com/IAM/latest/UserGuide/best-practices.html#grant-least-privilege",
)
@_document_rule
def aws_iam_policy_disallow_wildcard_kms(subject: Subject, statements: list[dict[str, Any]]) -> Iterable[str]:
    for i, statement in enumerate(statements):
        if statement.get("Effect") != "Allow":
            continue
        sid = statement.get("Sid") or f"Statement[{i}]"
        actions = [str(a) for a in _as_list(statement.get("Action"))]
        if "NotAction" in statement or any(a in ("*", "kms:*") for a in actions):
            yield f"{subject.name}: {sid} allows a wildcard action ({actions or 'NotAction'})"
        elif any(covers(statement, a) for a in DATA_PLANE) and "*" in _as_list(statement.get("Resource")):
            yield f"{subject.name}: {sid} allows KMS data-plane actions on Resource '*'"


@resource_rule(
    name="aws-eks-cluster-disallow-public-endpoint",
    description="EKS API endpoints are private only.",
    types=(EKS_CLUSTER,),
    reads=("vpcConfig.endpointPublicAccess", "vpcConfig.endpointPrivateAccess"),
    severity=Severity.HIGH,
    controls=("nist:SC-7", "hipaa:164.312(a)(1)"),
    remediation="Set vpc_config endpoint_public_access=False and endpoint_private_access=True.",
    url="https://docs.aws.amazon.com/eks/latest/userguide/cluster-endpoint.html",
)
def aws_eks_cluster_disallow_public_endpoint(subject: Subject) -> Iterable[str]:
    if not falsy(subject.need("vpcConfig.endpointPublicAccess")):
        yield f"{subject.name}: the EKS API endpoint is public"
    if not truthy(subject.need("vpcConfig.endpointPrivateAccess")):
        yield f"{subject.name}: the EKS private endpoint is disabled"


@resource_rule(
    name="aws-eks-cluster-enable-secrets-encryption",
    description="EKS envelope-encrypts Kubernetes secrets with a KMS key.",
    types=(EKS_CLUSTER,),
    reads=("encryptionConfig.resources", "encryptionConfig.provider.keyArn"),
    severity=Severity.HIGH,
    controls=("nist:SC-28", "hipaa:164.312(a)(2)(iv)"),
    remediation="Set encryption_config={'resources': ['secrets'], 'provider': {'key_arn': key.arn}}.",
    url="https://docs.aws.amazon.com/eks/latest/userguide/envelope-encryption.html",
)
def aws_eks_cluster_enable_secrets_encryption(subject: Subject) -> Iterable[str]:
    if "secrets" not in list(subject.need("encryptionConfig.resources")):
        yield f"{subject.name}: encryptionConfig.resources does not include 'secrets'"
    yield from require_set(subject, "encryptionConfig.provider.keyArn")


@resource_rule(
    name="aws-eks-cluster-enable-audit-logging",
    description="EKS control-plane audit and authenticator logs are enabled.",
    types=(EKS_CLUSTER,),
    reads=("enabledClusterLogTypes",),
    severity=Severity.MEDIUM,
    controls=("hipaa:164.312(b)", "nist:AU-12", "gdpr:art30"),
    remediation="Set enabled_cluster_log_types=['api', 'audit', 'authenticator'].",
    url="https://docs.aws.amazon.com/eks/latest/userguide/control-plane-logs.html",
)
def aws_eks_cluster_enable_audit_logging(subject: Subject) -> Iterable[str]:
    enabled = set(subject.need("enabledClusterLogTypes"))
    for kind in ("audit", "authenticator"):
        if kind not in enabled:
            yield f"{subject.name}: control-plane log type {kind!r} is not enabled"


_RETENTION_VALUES: Final = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)


@resource_rule(
    name="aws-cloudwatch-loggroup-enforce-cmk-retention",
    description="Log groups are encrypted with a CMK and, in prod, kept for the audit retention period.",
    types=(LOG_GROUP,),
    reads=("kmsKeyId", "retentionInDays"),
    severity=Severity.MEDIUM,
    controls=("hipaa:164.312(b)", "nist:AU-9", "nist:AU-11", "gdpr:art30"),
    remediation="Set kms_key_id and, in prod, retention_in_days >= minRetentionDays (default 2192, six years).",
    url="https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html",
    config={"minRetentionDays": {"type": "integer", "enum": list(_RETENTION_VALUES)}},
)
def aws_cloudwatch_loggroup_enforce_cmk_retention(subject: Subject) -> Iterable[str]:
    yield from require_set(subject, "kmsKeyId")
    days = subject.need("retentionInDays")
    minimum = subject.config.get("minRetentionDays", 2192)
    if subject.prod and isinstance(days, (int, float)) and 0 < days < minimum:
        yield f"{subject.name}: retentionInDays {days} is under {minimum} in prod"


RESOURCE_POLICIES = [
    aws_kms_key_enforce_attestation,
    aws_kms_key_missing_unattested_deny,
    aws_kms_key_enforce_via_service,
    aws_kms_key_disallow_debug_pcr,
    aws_kms_key_disallow_owner_decrypt,
    aws_kms_key_disallow_root_admin,
    aws_kms_key_enforce_policy_change_deny,
    aws_kms_key_enable_rotation,
    aws_ec2_instance_enable_enclave,
    aws_ec2_instance_enforce_enclave_capable_type,
    aws_ec2_instance_enforce_imdsv2,
    aws_ec2_instance_disallow_public_ip,
    aws_ec2_volume_enforce_cmk_encryption,
    aws_ec2_subnet_disallow_public_ip_on_launch,
    aws_ec2_securitygroup_disallow_open_ingress,
    aws_s3_bucket_enforce_cmk_encryption,
    aws_s3_bucketpublicaccessblock_enable_all,
    aws_s3_bucketpolicy_enforce_tls,
    aws_cloudtrail_trail_enforce_integrity,
    aws_iam_policy_disallow_wildcard_kms,
    aws_eks_cluster_disallow_public_endpoint,
    aws_eks_cluster_enable_secrets_encryption,
    aws_eks_cluster_enable_audit_logging,
    aws_cloudwatch_loggroup_enforce_cmk_retention,
]
STACK_POLICIES = [
    aws_s3_bucket_missing_encryption,
    aws_s3_bucket_missing_public_access_block,
    aws_s3_bucket_missing_tls_policy,
]
POLICIES = RESOURCE_POLICIES + STACK_POLICIES


# --- paths to a key's plaintext that bypass attestation (issue 12, item 5) ------------------------

# Operators that compare a RecipientAttestation value exactly (what the KMS guide uses for PCRs and
# ImageSha384). Pattern operators (`StringLike`), set operators (`ForAnyValue:`/`ForAllValues:`, true
# for a missing key), negations and `...IfExists` (true when the request carries no attestation
# document) are not a pinned measurement.
EXACT_ATTESTATION_OPERATORS: Final = frozenset({"StringEquals", "StringEqualsIgnoreCase"})
CONDITION_OPERATORS_DOCS: Final = (
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html"
)
_ATTESTATION_DIGEST: Final = re.compile(r"^[0-9a-fA-F]{64,128}$")


def attestation_pattern_problems(statements: list[dict[str, Any]]) -> list[str]:
    """Why an Allow statement's RecipientAttestation conditions are not exact pins ([] if they are)."""
    problems = []
    for i, statement in enumerate(statements):
        if statement.get("Effect") != "Allow":
            continue
        sid = str(statement.get("Sid") or f"Statement[{i}]")
        for operator, key, value in attestation_values(statement):
            if operator == "Null":
                continue  # a presence test pins nothing; aws-kms-key-enforce-attestation judges it
            if operator.endswith("IfExists"):
                problems.append(
                    f"statement {sid!r} compares {key} with {operator}: it is true when the request carries no "
                    "attestation document"
                )
            elif operator not in EXACT_ATTESTATION_OPERATORS:
                problems.append(f"statement {sid!r} compares {key} with {operator}, a pattern or set operator, not an exact match")
            elif "*" in value or "?" in value:
                problems.append(f"statement {sid!r} compares {key} with the wildcard value {value!r}")
            elif not _ATTESTATION_DIGEST.match(value):
                problems.append(f"statement {sid!r} compares {key} with {value!r}, not a full hex measurement")
    return problems


@resource_rule(
    name="aws-kms-key-disallow-attestation-pattern",
    description=(
        "Attestation conditions of a KMS key policy pin measurements exactly (StringEquals/StringEqualsIgnoreCase a "
        "full hex digest), never by pattern, wildcard, set operator or ...IfExists."
    ),
    types=(KEY, KEY_POLICY),
    reads=_ATTESTED_READS,
    severity=Severity.CRITICAL,
    controls=KMS_CONTROLS,
    remediation=(
        "Compare every kms:RecipientAttestation:ImageSha384 / PCR<n> key with StringEqualsIgnoreCase and the full "
        "lowercase hex SHA-384 of the approved enclave image (nitro-cli describe-eif). StringLike or a '*'/'?' "
        "admits other images; ForAnyValue:/ForAllValues: and any ...IfExists operator evaluate to true when the "
        "request has no attestation document (" + CONDITION_OPERATORS_DOCS + ")."
    ),
    url=KMS_DOCS,
    confidential=True,
)
@_attested_keys_only
@_document_rule
def aws_kms_key_disallow_attestation_pattern(subject: Subject, statements: list[dict[str, Any]]) -> Iterable[str]:
    for problem in attestation_pattern_problems(statements):
        yield f"{subject.name}: {problem}: a pattern is not a pinned measurement"


GRANT: Final = "aws:kms/grant:Grant"
# Grant operations that return or re-wrap plaintext key material. KMS grants carry no
# kms:RecipientAttestation condition, so any of them on an attestation-bound key bypasses attestation.
GRANT_DATA_PLANE: Final = frozenset(
    {
        "Decrypt",
        "ReEncryptFrom",
        "ReEncryptTo",
        "GenerateDataKey",
        "GenerateDataKeyPair",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateDataKeyPairWithoutPlaintext",
        "DeriveSharedSecret",
    }
)
GRANTS_DOCS: Final = "https://docs.aws.amazon.com/kms/latest/developerguide/grants.html"


def grant_keys(stack: Stack, grant: Subject) -> list[Subject]:
    return stack.references(grant, stack.of_type(KEY))


def _grant_problems(subject: Subject) -> Iterable[str]:
    operations = [str(o) for o in subject.need("operations")]
    exposed = sorted(o for o in operations if o in GRANT_DATA_PLANE)
    if exposed:
        yield (
            f"{subject.name}: grant gives {subject.need('granteePrincipal')} {', '.join(exposed)} on an "
            "attestation-bound key: grants carry no attestation condition, so the grantee gets plaintext without "
            "an enclave"
        )


@stack_rule(
    name="aws-kms-grant-disallow-unattested-data-plane",
    description="No KMS grant gives Decrypt, ReEncrypt* or GenerateDataKey* on a key that is not explicitly a service key.",
    reads={GRANT: ("keyId", "operations", "granteePrincipal"), KEY: ("tags",)},
    severity=Severity.CRITICAL,
    controls=KMS_CONTROLS,
    remediation=(
        "Delete the grant, or limit it to Encrypt/DescribeKey (a data owner sealing data under the attested key). "
        "Grants are checked before the key policy's conditions and cannot require kms:RecipientAttestation, so "
        "the only path to a party data key's plaintext is the attested enclave statement of the key policy. A key "
        "used by an AWS service on a caller's behalf is a service key (ccp-key-purpose party-storage, disk, audit, "
        "cluster-secrets)."
    ),
    url=GRANTS_DOCS,
    confidential=True,
)
def aws_kms_grant_disallow_unattested_data_plane(stack: Stack) -> Iterator[Finding]:
    """Grants on keys of this stack explicitly tagged with a service purpose are left to the service
    rules; a grant on an untagged key, a key of unknown purpose or a key not declared here is judged."""
    for grant in stack.of_type(GRANT):
        keys = grant_keys(stack, grant)
        if keys and all(key.service_key for key in keys):
            continue
        for message in run_check(_grant_problems, grant):
            yield Finding(message, grant.resource)


RESOURCE_POLICIES += [aws_kms_key_disallow_attestation_pattern]
STACK_POLICIES += [aws_kms_grant_disallow_unattested_data_plane]
POLICIES = RESOURCE_POLICIES + STACK_POLICIES


# --- backup and recovery (issue 18): deletion protection and WORM audit storage in prod -------------

BUCKET_OBJECT_LOCK: Final = "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
_BACKUP_CONTROLS: Final = ("hipaa:164.308(a)(7)", "nist:CP-9", "nist:AU-9", "gdpr:art32")
LOCK_MODES: Final = ("COMPLIANCE", "GOVERNANCE")


@resource_rule(
    name="aws-kms-key-enforce-deletion-window",
    description="KMS keys wait the longest deletion window (30 days in prod) before a scheduled deletion destroys them.",
    types=(KEY,),
    reads=("deletionWindowInDays", "tags"),
    severity=Severity.HIGH,
    controls=("hipaa:164.308(a)(7)", "nist:CP-9", "nist:SC-12"),
    remediation=(
        "Set deletion_window_in_days=30 (prod minimum minDeletionWindowDays, default 30: a ScheduleKeyDeletion "
        "can be noticed by the key-administration alarm and cancelled before the key and every sealed dataset under it are lost)."
    ),
    url="https://docs.aws.amazon.com/kms/latest/developerguide/deleting-keys.html",
    config={"minDeletionWindowDays": {"type": "integer", "minimum": 7, "maximum": 30}},
)
def aws_kms_key_enforce_deletion_window(subject: Subject) -> Iterable[str]:
    days = subject.need("deletionWindowInDays")
    minimum = subject.config.get("minDeletionWindowDays", 30) if subject.prod else 7
    if not isinstance(days, (int, float)) or isinstance(days, bool) or days < minimum:
        yield f"{subject.name}: deletionWindowInDays {days!r} is under {minimum} ({subject.environment})"


@resource_rule(
    name="aws-s3-bucketobjectlockconfiguration-enforce-retention",
    description="S3 Object Lock default retention is COMPLIANCE (or GOVERNANCE) for at least the audit retention period in prod.",
    types=(BUCKET_OBJECT_LOCK,),
    reads=("objectLockEnabled", "rule.defaultRetention.mode", "rule.defaultRetention.days"),
    severity=Severity.HIGH,
    controls=_BACKUP_CONTROLS,
    remediation=(
        "Set object_lock_enabled='Enabled' and rule.default_retention mode='COMPLIANCE' with days >= minRetentionDays "
        "(default 2192, six years) on the trail bucket (created with object_lock_enabled=True)."
    ),
    url="https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock.html",
    config={"minRetentionDays": {"type": "integer", "minimum": 1}, "modes": {"type": "array", "items": {"enum": list(LOCK_MODES)}}},
)
def aws_s3_bucketobjectlockconfiguration_enforce_retention(subject: Subject) -> Iterable[str]:
    if subject.need("objectLockEnabled") != "Enabled":
        yield f"{subject.name}: objectLockEnabled is {subject.get('objectLockEnabled')!r}, not 'Enabled'"
    mode = subject.need("rule.defaultRetention.mode")
    modes = tuple(subject.config.get("modes") or LOCK_MODES)
    if mode not in modes:
        yield f"{subject.name}: defaultRetention.mode {mode!r} is not one of {list(modes)}"
    days = subject.need("rule.defaultRetention.days")
    minimum = subject.config.get("minRetentionDays", 2192)
    if subject.prod and (not isinstance(days, (int, float)) or isinstance(days, bool) or days < minimum):
        yield f"{subject.name}: defaultRetention.days {days!r} is under {minimum} in prod"


RESOURCE_POLICIES += [aws_kms_key_enforce_deletion_window, aws_s3_bucketobjectlockconfiguration_enforce_retention]
POLICIES = RESOURCE_POLICIES + STACK_POLICIES


# --- long-lived IAM user credentials (issue 12) ----------------------------------------------------

ACCESS_KEY: Final = "aws:iam/accessKey:AccessKey"
ACCESS_KEY_DOCS: Final = "https://docs.aws.amazon.com/IAM/latest/UserGuide/best-practices.html#bp-workloads-use-roles"


@resource_rule(
    name="aws-iam-accesskey-disallow-long-lived-key",
    description=(
        "No active IAM user access key in a collaboration account: a long-lived secret that acts as its user "
        "(including any kms:PutKeyPolicy or IAM rights it holds) from anywhere, without attestation or expiry."
    ),
    types=(ACCESS_KEY,),
    reads=("user", "status"),
    severity=Severity.HIGH,
    controls=("nist:IA-5", "nist:AC-2", "cis-aws:1.14", "hipaa:164.312(d)", "gdpr:art32"),
    remediation=(
        "Delete the access key (status Inactive only while it is being retired) and use short-lived credentials: an "
        "IAM role (the enclave host's instance profile, IAM Identity Center for people, the break-glass role with MFA). "
        "An access key has no attestation and no expiry: whoever copies it is the user until someone deletes it."
    ),
    url=ACCESS_KEY_DOCS,
)
def aws_iam_accesskey_disallow_long_lived_key(subject: Subject) -> Iterable[str]:
    # The provider's default status is Active: a missing status fails closed (need).
    if str(subject.need("status")) != "Inactive":
        yield (
            f"{subject.name}: access key of IAM user {subject.need('user')!r} is {subject.get('status')!r}: a long-lived "
            "secret that acts as the user without attestation or expiry"
        )


RESOURCE_POLICIES += [aws_iam_accesskey_disallow_long_lived_key]
POLICIES = RESOURCE_POLICIES + STACK_POLICIES
