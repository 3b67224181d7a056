"""The one helper every zero-trust rule is built with: metadata, fail-closed property reads, waivers.

Why one module: each rule is a small `check` function plus declared metadata. Everything else
(type filtering, the `excludeFor` waiver config, turning a missing property into a violation,
compliance tags, the framework, the config schema) is done here once, so no rule can forget it.

Property reads go through `Subject`, which wraps the `unknown_checking_proxy` props the analyzer
passes: an unknown value raises `UnknownValueError` (the analyzer reports "can't run during
preview" as advisory), a missing value raises `MissingProperty` (reported as a violation: providers
apply defaults in `Check`, which CrossGuard never sees, so absent is not safe).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Final, Iterable, Iterator

from pulumi_policy import (
    EnforcementLevel,
    PolicyComplianceFramework,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import Policy, PolicyResource

from components import key_purpose
from enclave_runtime.measurements import is_all_zero as is_all_zero  # the one check, re-exported for the rules
from policies.review.tokens import canonical_type

CONFIDENTIAL: Final = "confidential-computing"
_MISSING: Final = object()

# Compliance frameworks, keyed by tag prefix: (name, version, reference URL). The first control tag
# of a rule selects its primary `framework`; every control stays in `tags`.
FRAMEWORKS: Final[dict[str, tuple[str, str, str]]] = {
    "hipaa": (
        "HIPAA Security Rule",
        "45 CFR 164 Subpart C",
        "https://www.ecfr.gov/current/title-45/subtitle-A/subchapter-C/part-164/subpart-C",
    ),
    "gdpr": ("GDPR", "2016/679", "https://eur-lex.europa.eu/eli/reg/2016/679/oj"),
    "nist": (
        "NIST SP 800-53",
        "Rev. 5",
        "https://csrc.nist.gov/pubs/sp/800/53/r5/upd1/final",
    ),
    "cis-aws": (
        "CIS Amazon Web Services Foundations Benchmark",
        "3.0.0",
        "https://www.cisecurity.org/benchmark/amazon_web_services",
    ),
    "cis-azure": (
        "CIS Microsoft Azure Foundations Benchmark",
        "2.1.0",
        "https://www.cisecurity.org/benchmark/azure",
    ),
    "cis-gcp": (
        "CIS Google Cloud Platform Foundation Benchmark",
        "3.0.0",
        "https://www.cisecurity.org/benchmark/google_cloud_computing_platform",
    ),
    "cis-k8s": (
        "CIS Kubernetes Benchmark",
        "1.9.0",
        "https://www.cisecurity.org/benchmark/kubernetes",
    ),
    "ccp": (
        "ccp zero-trust confidential computing",
        "1",
        "https://github.com/ccp/ccp/blob/main/policies/zero_trust/README.md",
    ),
}

# Where each provider keeps tags/labels. Types not listed use `tags`, else `labels`.
TAG_PROPERTY: Final[dict[str, str]] = {
    "gcp:container/cluster:Cluster": "resourceLabels",
}

WAIVER_SCHEMA: Final[dict[str, Any]] = {
    "type": "array",
    "description": "Reviewed exceptions: resources (name, glob or URN) this policy skips, each with a reason.",
    "items": {
        "type": "object",
        "properties": {
            "resource": {"type": "string", "minLength": 1},
            "reason": {"type": "string", "minLength": 1},
        },
        "required": ["resource", "reason"],
    },
}


class MissingProperty(Exception):
    """A property a rule needs is absent: fail closed (the rule reports it as a violation)."""

    def __init__(self, path: str):
        super().__init__(path)
        self.path = path


def is_map(value: Any) -> bool:
    return isinstance(value, Mapping)


def is_list(value: Any) -> bool:
    """Lists arrive as `_ListProxy` (a Sequence), never `list`; strings are not lists."""
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+|\*)\]")


def _segments(path: str) -> list[str]:
    return [m.group(1) or f"[{m.group(2)}]" for m in _SEGMENT.finditer(path)]


def lookup(value: Any, path: str) -> list[Any]:
    """Every value at `path` ("a.b[*].c", "a.b[0]"), through proxies; absent branches yield nothing.

    `[*]` fans out over a list. Reading a key goes through `__getitem__`, so an unknown value raises
    the analyzer's `UnknownValueError` exactly where the rule depends on it.
    """
    current = [value]
    for segment in _segments(path):
        nxt: list[Any] = []
        for item in current:
            if segment == "[*]":
                if is_list(item):
                    nxt.extend(item[i] for i in range(len(item)))
            elif segment.startswith("["):
                index = int(segment[1:-1])
                if is_list(item) and index < len(item):
                    nxt.append(item[index])
            elif is_map(item) and segment in item.keys():
                found = item[segment]
                if found is not None:
                    nxt.append(found)
        current = nxt
    return current


def truthy(value: Any) -> bool:
    """Booleans as providers send them: `True` or the string "true" (launch-template EBS flags)."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def falsy(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.lower() == "false")


@dataclass
class Subject:
    """One resource as a rule sees it: type, name, URN, proxied props, config and stack tags."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    config: Mapping[str, Any] = field(default_factory=dict)
    stack_tags: Mapping[str, str] = field(default_factory=dict)
    resource: PolicyResource | None = None

    def __post_init__(self) -> None:
        self.type = canonical_type(self.type)

    def get(self, path: str, default: Any = None) -> Any:
        found = lookup(self.props, path)
        return found[0] if found else default

    def need(self, path: str) -> Any:
        """The value at `path`, or `MissingProperty` (a violation): absent is never compliant."""
        found = lookup(self.props, path)
        if not found:
            raise MissingProperty(path)
        return found[0]

    def all(self, path: str) -> list[Any]:
        return lookup(self.props, path)

    def need_all(self, path: str) -> list[Any]:
        found = lookup(self.props, path)
        if not found:
            raise MissingProperty(path)
        return found

    def has(self, path: str) -> bool:
        return bool(lookup(self.props, path))

    @property
    def tag_property(self) -> str:
        if self.type in TAG_PROPERTY:
            return TAG_PROPERTY[self.type]
        if self.type.startswith("gcp:"):
            return "labels"
        if self.type.startswith("kubernetes:"):
            return "metadata.labels"
        return "tags"

    def tags(self) -> dict[str, str]:
        found = lookup(self.props, self.tag_property)
        if not found or not is_map(found[0]):
            return {}
        return {str(k): str(found[0][k]) for k in found[0].keys()}

    @property
    def purpose(self) -> str | None:
        """The key's `ccp-key-purpose` tag/label (components/key_purpose.py), None when absent."""
        return self.tags().get(key_purpose.PURPOSE_TAG)

    @property
    def service_key(self) -> bool:
        """Explicitly tagged with a service purpose (storage at rest, disks, audit, cluster secrets)."""
        return key_purpose.is_service(self.purpose)

    @property
    def party_data_key(self) -> bool:
        """Judged as a party data key: tagged so, untagged or with an unknown purpose (fail closed)."""
        return key_purpose.is_party_data(self.purpose)

    @property
    def environment(self) -> str:
        """The resource's `environment` tag, else the stack tag; unknown means prod (fail closed)."""
        return self.tags().get("environment") or self.stack_tags.get("environment") or "prod"

    @property
    def prod(self) -> bool:
        return self.environment != "dev"


Check = Callable[[Subject], Iterable[str]]


@dataclass(frozen=True)
class Finding:
    """A stack-rule violation, attached to a resource (for waivers and the report) when there is one."""

    message: str
    resource: PolicyResource | None = None


@dataclass
class Stack:
    """The stack as a stack rule sees it, with the lookups every stack rule needs."""

    resources: list[PolicyResource]
    config: Mapping[str, Any]
    stack_tags: Mapping[str, str]

    def subject(self, resource: PolicyResource) -> Subject:
        return Subject(
            resource.resource_type,
            resource.name,
            resource.urn,
            resource.props,
            self.config,
            self.stack_tags,
            resource,
        )

    def of_type(self, *types: str) -> list[Subject]:
        return [self.subject(r) for r in self.resources if canonical_type(r.resource_type) in types]

    def subjects(self) -> list[Subject]:
        return [self.subject(r) for r in self.resources]

    def references(self, subject: Subject, candidates: list[Subject]) -> list[Subject]:
        """The candidates `subject` points at: by dependency, or by an id/ARN/name in its props.

        Pulumi records property dependencies for every Output passed as an input, which is how a
        bucket's encryption config names its key; value matching also covers ids passed as plain strings.
        """
        res = subject.resource
        linked: set[str] = set()
        if res is not None:
            linked.update(d.urn for d in res.dependencies)
            for deps in res.property_dependencies.values():
                linked.update(d.urn for d in deps)
        text = _flatten_strings(subject.props)
        found = []
        for candidate in candidates:
            if candidate.urn == subject.urn:
                continue
            suffixes = name_suffixes(candidate)
            if (
                candidate.urn in linked
                or any(ident in text for ident in identifiers(candidate))
                or any(value.endswith(suffix) for value in text for suffix in suffixes)
            ):
                found.append(candidate)
        return found


# Outputs (ids, ARNs, URIs) and the name inputs other resources reference a resource by.
IDENTIFIER_KEYS: Final = (
    "id", "arn", "selfLink", "keyId", "keyUri", "keyUriWithVersion", "vaultUri",
    "bucket", "keyName", "vaultName", "accountName",
)


def identifiers(subject: Subject) -> set[str]:
    """Values other resources use to point at `subject` (ids, ARNs, self links, key URIs)."""
    ids: set[str] = set()
    for key in IDENTIFIER_KEYS:
        for value in lookup(subject.props, key):
            if isinstance(value, str) and len(value) > 6:
                ids.add(value)
    return ids


# Resource-name path segments other resources build as plain strings (GCP: the key's resource name
# `projects/p/locations/l/keyRings/r/cryptoKeys/<name>` is often composed from config, not an Output).
NAME_SUFFIXES: Final[dict[str, str]] = {
    "gcp:kms/cryptoKey:CryptoKey": "/cryptoKeys/{}",
    "gcp:kms/keyRing:KeyRing": "/keyRings/{}",
}


def name_suffixes(subject: Subject) -> set[str]:
    template = NAME_SUFFIXES.get(subject.type)
    name = lookup(subject.props, "name")
    if template is None or not name or not isinstance(name[0], str):
        return set()
    return {template.format(name[0])}


def _flatten_strings(value: Any) -> set[str]:
    out: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.add(item)
        elif is_map(item):
            for key in item.keys():
                try:
                    stack.append(item[key])
                except Exception:  # noqa: BLE001 - an unknown id cannot match; skip it
                    continue
        elif is_list(item):
            for i in range(len(item)):
                try:
                    stack.append(item[i])
                except Exception:  # noqa: BLE001
                    continue
    return out


# --- waivers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Waiver:
    resource: str
    reason: str

    def matches(self, name: str, urn: str) -> bool:
        return (
            self.resource == urn
            or fnmatch.fnmatchcase(name, self.resource)
            or fnmatch.fnmatchcase(urn, self.resource)
        )


def read_waivers(config: Mapping[str, Any]) -> tuple[list[Waiver], list[str]]:
    """Valid waivers, and one problem per entry that cannot be honoured (no resource or no reason)."""
    entries = config.get("excludeFor") or []
    waivers: list[Waiver] = []
    problems: list[str] = []
    if not is_list(entries):
        return [], [f"excludeFor must be a list of {{resource, reason}} objects, got {entries!r}"]
    for i in range(len(entries)):
        entry = entries[i]
        resource = entry.get("resource") if is_map(entry) else None
        reason = entry.get("reason") if is_map(entry) else None
        if not isinstance(resource, str) or not resource.strip():
            problems.append(f"excludeFor[{i}] names no resource: the waiver is ignored")
        elif not isinstance(reason, str) or not reason.strip():
            problems.append(
                f"excludeFor[{i}] waives {resource!r} without a reason: the waiver is ignored; every "
                "exception needs a reason reviewers can read"
            )
        else:
            waivers.append(Waiver(resource, reason.strip()))
    return waivers, problems


# --- policies ------------------------------------------------------------------------------------


def _framework(controls: tuple[str, ...]) -> PolicyComplianceFramework:
    prefix, _, control = controls[0].partition(":")
    name, version, reference = FRAMEWORKS[prefix]
    return PolicyComplianceFramework(
        name=name, version=version, reference=reference, specification=control
    )


@dataclass(frozen=True)
class RuleMetadata:
    """What every rule declares, resource or stack alike, validated once when the rule is built.

    Why one record: both policy classes hand CrossGuard the same framework, tags, remediation and
    config schema; building them here keeps a resource rule and a stack rule from drifting apart.
    """

    name: str
    description: str
    severity: Severity
    controls: tuple[str, ...]
    remediation: str
    url: str
    confidential: bool = False
    config: Mapping[str, dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if not re.match(r"^(aws|azure|gcp|kubernetes|stack)-[a-z0-9]+(-[a-z0-9]+){2,}$", self.name):
            raise ValueError(
                f"policy name {self.name!r} is not <provider>-<service>-<resource>-<verb>-<object>"
            )
        if not self.controls:
            raise ValueError(f"policy {self.name!r} maps to no control")
        for tag in self.controls:
            if tag.partition(":")[0] not in FRAMEWORKS:
                raise ValueError(f"policy {self.name!r}: unknown framework in control tag {tag!r}")
        if not self.url.startswith("https://"):
            raise ValueError(f"policy {self.name!r}: url must be https")

    def policy_args(self) -> dict[str, Any]:
        """The keyword arguments `ResourceValidationPolicy`/`StackValidationPolicy` share."""
        return {
            "name": self.name,
            "description": self.description,
            "severity": self.severity,
            "framework": _framework(self.controls),
            "tags": list(self.controls) + ([CONFIDENTIAL] if self.confidential else []),
            "remediation_steps": self.remediation,
            "url": self.url,
            "config_schema": PolicyConfigSchema(
                properties={"excludeFor": WAIVER_SCHEMA, **dict(self.config or {})}
            ),
        }


def reported_waivers(config: Mapping[str, Any], report: ReportViolation) -> list[Waiver]:
    """The honoured waivers; each entry that cannot be honoured is itself reported (fail closed)."""
    waivers, problems = read_waivers(config)
    for problem in problems:
        report(problem, None)
    return waivers


class _Rule:
    """What resource and stack rules keep alike: the types they read (only those carry their
    findings and waivers), the property paths (the property-name test builds each one) and
    whether they guard confidential computing (the review's key-release section)."""

    types: tuple[str, ...]
    reads: tuple[tuple[str, str], ...]
    confidential: bool

    def _declare(
        self, meta: RuleMetadata, types: tuple[str, ...], reads: tuple[tuple[str, str], ...]
    ) -> dict[str, Any]:
        """Keep the rule's own fields; return the policy arguments CrossGuard reads."""
        self.types, self.reads, self.confidential = types, reads, meta.confidential
        return meta.policy_args()

    def applies_to(self, resource_type: str) -> bool:
        return canonical_type(resource_type) in self.types


class ZeroTrustResourcePolicy(_Rule, ResourceValidationPolicy):
    """A resource rule: `check` runs for each resource of `types` that no waiver excludes."""

    def __init__(
        self,
        meta: RuleMetadata,
        *,
        types: tuple[str, ...],
        reads: tuple[tuple[str, str], ...],
        check: Check,
    ):
        self.check = check
        super().__init__(validate=self._validate, **self._declare(meta, types, reads))

    def _validate(self, args: ResourceValidationArgs, report: ReportViolation) -> None:
        if not self.applies_to(args.resource_type):
            return
        config = args.get_config() or {}
        waivers = reported_waivers(config, report)
        if any(w.matches(args.name, args.urn) for w in waivers):
            return
        subject = Subject(
            args.resource_type, args.name, args.urn, args.props, config, args.stack_tags
        )
        for message in run_check(self.check, subject):
            report(message, None)


def run_check(check: Check, subject: Subject) -> Iterator[str]:
    """Messages of a check, turning the first missing property into its own violation."""
    messages: list[str] = []
    try:
        for message in check(subject):
            messages.append(message)
    except MissingProperty as missing:
        messages.append(
            f"{subject.name}: `{missing.path}` is not set. Policies fail closed: provider defaults "
            "are not visible to the review, so set it explicitly."
        )
    return iter(messages)


StackCheck = Callable[[Stack], Iterable[Finding]]


class ZeroTrustStackPolicy(_Rule, StackValidationPolicy):
    """A stack rule: findings on waived resources are dropped; the rest become violations."""

    def __init__(
        self,
        meta: RuleMetadata,
        *,
        reads: tuple[tuple[str, str], ...],
        check: StackCheck,
    ):
        self.check = check
        types = tuple(sorted({t for t, _ in reads}))
        super().__init__(validate=self._validate, **self._declare(meta, types, reads))

    def _validate(self, args: StackValidationArgs, report: ReportViolation) -> None:
        config = args.get_config() or {}
        waivers = reported_waivers(config, report)
        stack = Stack(list(args.resources), config, args.stack_tags)
        for finding in self.check(stack):
            res = finding.resource
            if res is not None and any(w.matches(res.name, res.urn) for w in waivers):
                continue
            report(finding.message, res.urn if res is not None else None)


def resource_rule(
    *,
    types: tuple[str, ...],
    reads: tuple[str, ...] | dict[str, tuple[str, ...]],
    **metadata: Any,
) -> Callable[[Check], ZeroTrustResourcePolicy]:
    """Decorator: turn `check(subject) -> messages` into a policy with the full metadata.

    `reads` lists the camelCase property paths the check reads (the same paths for every type, or
    per type); the property-name test builds each real resource with each path under mocks.
    `metadata` are the `RuleMetadata` fields (name, description, severity, controls, remediation,
    url, confidential, config), validated when the module is imported.
    """
    meta = RuleMetadata(**metadata)
    pairs = _pairs(types, reads)

    def build(check: Check) -> ZeroTrustResourcePolicy:
        return ZeroTrustResourcePolicy(meta, types=types, reads=pairs, check=check)

    return build


def stack_rule(
    *, reads: dict[str, tuple[str, ...]], **metadata: Any
) -> Callable[[StackCheck], ZeroTrustStackPolicy]:
    """Decorator: turn `check(stack) -> findings` into a stack policy with the full metadata.

    `reads` maps each type the rule reads to its property paths (those types also carry its
    findings and waivers); `metadata` are the `RuleMetadata` fields, as for `resource_rule`.
    """
    meta = RuleMetadata(**metadata)
    pairs = _pairs(tuple(reads), reads)

    def build(check: StackCheck) -> ZeroTrustStackPolicy:
        return ZeroTrustStackPolicy(meta, reads=pairs, check=check)

    return build


def _pairs(
    types: tuple[str, ...], reads: tuple[str, ...] | dict[str, tuple[str, ...]]
) -> tuple[tuple[str, str], ...]:
    if isinstance(reads, dict):
        return tuple((t, p) for t, paths in reads.items() for p in paths)
    return tuple((t, p) for t in types for p in reads)


def default_level(policy: Policy) -> EnforcementLevel:
    """Mandatory for critical/high findings, advisory for the rest."""
    if policy.severity in (Severity.CRITICAL, Severity.HIGH):
        return EnforcementLevel.MANDATORY
    return EnforcementLevel.ADVISORY


def plain(value: Any) -> Any:
    """Python dicts/lists from the analyzer's proxies, for parsers (json, pydantic) that need them."""
    if is_map(value):
        return {k: plain(value[k]) for k in value.keys()}
    if is_list(value):
        return [plain(value[i]) for i in range(len(value))]
    return value


# Shared checks of single properties: the same requirement reads and reports the same way in
# every cloud's rules, and a missing property still fails closed through `Subject.need`.


def require_true(subject: Subject, *paths: str) -> Iterator[str]:
    """`<path> is not true` for each hardening switch that is not explicitly on."""
    for path in paths:
        if not truthy(subject.need(path)):
            yield f"{subject.name}: {path} is not true"


def require_false(subject: Subject, *paths: str) -> Iterator[str]:
    """`<path> is not false` for each exposure switch that is not explicitly off."""
    for path in paths:
        if not falsy(subject.need(path)):
            yield f"{subject.name}: {path} is not false"


def require_set(subject: Subject, *paths: str) -> Iterator[str]:
    """`<path> is empty` for each reference (a key, a pool, a disk set) that is not filled in."""
    for path in paths:
        if not subject.need(path):
            yield f"{subject.name}: {path} is empty"


# Shared value checks (used by several clouds' rules).

OPEN_CIDRS: Final = frozenset({"0.0.0.0/0", "::/0", "*", "internet", "any", "0.0.0.0"})


_ISO_DURATION = re.compile(
    r"^P(?:(?P<y>\d+)Y)?(?:(?P<m>\d+)M)?(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<min>\d+)M)?(?:(?P<s>\d+)S)?)?$"
)


def iso_duration_days(value: str) -> float | None:
    """ISO 8601 duration in days (a month counts 31 days, a year 366: never under-estimated)."""
    match = _ISO_DURATION.match(value.strip().upper()) if isinstance(value, str) else None
    if not match or value.strip().upper() in {"P", "PT"}:
        return None
    g = {k: int(v) if v else 0 for k, v in match.groupdict().items()}
    return (
        g["y"] * 366 + g["m"] * 31 + g["w"] * 7 + g["d"] + g["h"] / 24 + g["min"] / 1440 + g["s"] / 86400
    )
