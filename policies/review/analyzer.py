"""Run CrossGuard policy packs over recorded resources through pulumi-policy's own analyzer.

`_PolicyAnalyzerServicer` is what the Pulumi CLI talks to over gRPC; calling it in-process gives
engine-faithful enforcement levels, config handling, unknown-value handling and messages. It is a
private API of pulumi-policy (pinned to 1.21.0), so this is the only module that touches it.
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from google.protobuf import json_format, struct_pb2
from pulumi.runtime import proto
from pulumi_policy import EnforcementLevel
from pulumi_policy.policy import _normalize_config, _PolicyAnalyzerServicer

from policies.review.fakes.schema import PLACEHOLDER_PREFIX
from policies.review.mocks import UNKNOWN, RecordedResource
from policies.review.tokens import canonical_type

POLICIES_DIR = Path(__file__).resolve().parents[1]

_LEVEL_NAMES = {
    proto.analyzer_pb2.ADVISORY: "advisory",
    proto.analyzer_pb2.MANDATORY: "mandatory",
    proto.analyzer_pb2.DISABLED: "disabled",
    proto.analyzer_pb2.REMEDIATE: "remediate",
}
_LEVEL_PROTO = {name: value for value, name in _LEVEL_NAMES.items()}
_SEVERITY_NAMES = {
    proto.analyzer_pb2.POLICY_SEVERITY_UNSPECIFIED: "unspecified",
    proto.analyzer_pb2.POLICY_SEVERITY_LOW: "low",
    proto.analyzer_pb2.POLICY_SEVERITY_MEDIUM: "medium",
    proto.analyzer_pb2.POLICY_SEVERITY_HIGH: "high",
    proto.analyzer_pb2.POLICY_SEVERITY_CRITICAL: "critical",
}


@dataclass
class Pack:
    """A policy pack as `policies/<dir>/pack.py` describes it (see policies/README.md)."""

    directory: Path
    module: ModuleType

    @property
    def name(self) -> str:
        return self.module.NAME

    def config_path(self, stack: str) -> Path:
        return self.directory / "config" / f"{stack}.json"

    def stack_config(self, stack: str) -> dict[str, Any]:
        """The pack's `--policy-pack-config` file for this stack, if it has one, checked entry by entry.

        A bad file is a `PackConfigError` naming the file, line, policy and fix: a typo must neither
        crash the review nor be skipped (a misspelt policy would keep its default enforcement)."""
        path = self.config_path(stack)
        if not path.exists():
            return {}
        text = _read_config_text(path)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise PackConfigError(
                f"{_shown(path)}:{error.lineno}:{error.colno}: not valid JSON ({error.msg}); fix the syntax there"
            ) from None
        if not isinstance(data, dict):
            raise PackConfigError(
                f"{_shown(path)}: must be a JSON object of policy name -> enforcement level or settings, "
                f"got {type(data).__name__}"
            )
        problems = [p for key, value in data.items() for p in self._entry_problems(path, text, key, value)]
        if problems:
            raise PackConfigError(*problems)
        return data

    def _entry_problems(self, path: Path, text: str, key: str, value: Any) -> list[str]:
        where = f"{_shown(path)}{_json_key_line(text, key)}"
        names = [p.name for p in self.module.POLICIES]
        if key != "all" and key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"see the policy names in pack {self.name!r}"
            return [f"{where}: {key!r} is not a policy of pack {self.name!r}; {hint}"]
        level = value if isinstance(value, str) else value.get("enforcementLevel") if isinstance(value, dict) else None
        if not isinstance(value, (str, dict)):
            return [f"{where}: {key}: {value!r} must be an enforcement level or an object of settings"]
        if level is not None and level not in _LEVEL_PROTO:
            return [f"{where}: {key}: enforcement level {level!r} is not one of {', '.join(sorted(_LEVEL_PROTO))}"]
        return []

    def servicer(self) -> _PolicyAnalyzerServicer:
        return _PolicyAnalyzerServicer(
            name=self.module.NAME,
            version=self.module.VERSION,
            policies=list(self.module.POLICIES),
            enforcement_level=self.module.ENFORCEMENT_LEVEL,
            initial_config=getattr(self.module, "INITIAL_CONFIG", None),
        )


class PackConfigError(ValueError):
    """A policy pack's stack config file is unusable; `problems` holds one message per entry, with its file."""

    def __init__(self, *problems: str):
        self.problems = list(problems)
        super().__init__("\n".join(problems))


def _shown(path: Path) -> str:
    try:
        return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd()) else str(path)
    except (OSError, ValueError):
        return str(path)


def _read_config_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PackConfigError(f"{_shown(path)}: cannot be read ({error}); it must be a UTF-8 JSON file") from None


def _json_key_line(text: str, key: str) -> str:
    """`:line` of the first `"key":` in a JSON text (where a user would fix it), or ""."""
    at = text.find(json.dumps(key))
    return f":{text.count(chr(10), 0, at) + 1}" if at >= 0 else ""


def discover_packs(root: Path = POLICIES_DIR) -> list[Pack]:
    """Every directory under policies/ with a PulumiPolicy.yaml is a pack."""
    packs = []
    for manifest in sorted(root.glob("*/PulumiPolicy.yaml")):
        module = importlib.import_module(f"policies.{manifest.parent.name}.pack")
        packs.append(Pack(manifest.parent, module))
    return packs


def covered_types(packs: list[Pack]) -> set[str]:
    """Resource types some policy of `packs` declares it reads: each policy's `types` (ccp's rules,
    `policies/zero_trust/rules/_base.py`) and a pack's optional `RESOURCE_TYPES`. A policy that declares
    no types covers none for this report (it may read anything, but nothing says it checks a given type)."""
    types: set[str] = set()
    for pack in packs:
        types.update(getattr(pack.module, "RESOURCE_TYPES", ()) or ())
        for policy in pack.module.POLICIES:
            types.update(getattr(policy, "types", ()) or ())
    return types


def uncovered(resources: list[RecordedResource], packs: list[Pack]) -> list[dict[str, Any]]:
    """[{type, count}] of the program's cloud resources whose type no policy declares: recorded and
    reported as "not covered by any policy", never dropped. Component resources (`custom` false, no
    cloud settings of their own) and provider resources (their settings reach the rules through the
    resources declared with them) are not listed."""
    covered = covered_types(packs)
    counts: dict[str, int] = {}
    for resource in resources:
        if (not resource.custom or resource.type.startswith("pulumi:providers:")
                or canonical_type(resource.type) in covered):
            continue
        counts[resource.type] = counts.get(resource.type, 0) + 1
    return [{"type": t, "count": n} for t, n in sorted(counts.items())]


@dataclass
class Violation:
    policy: str
    pack: str
    urn: str
    enforcement: str
    severity: str
    message: str


@dataclass
class Analysis:
    policies: list[dict[str, Any]] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    waivers: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def mandatory(self) -> list[Violation]:
        return [v for v in self.violations if v.enforcement in {"mandatory", "remediate"}]


def effective_config(pack: Pack, overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Merge the pack's initial config with the stack's config file, as the CLI does before Configure.

    Values are either an enforcement level string or an object with an optional `enforcementLevel`
    and properties; the key `all` sets the level of every policy.
    """
    names = [p.name for p in pack.module.POLICIES]
    merged: dict[str, dict[str, Any]] = {name: {} for name in names}
    initial = _normalize_config(getattr(pack.module, "INITIAL_CONFIG", None) or {})
    for name, value in initial.items():
        if name not in merged:
            raise ValueError(f"INITIAL_CONFIG of pack {pack.name!r} names unknown policy {name!r}")
        merged[name].update(value.properties or {})
        if value.enforcement_level is not None:
            merged[name]["enforcementLevel"] = EnforcementLevel(value.enforcement_level).value
    for key, value in overrides.items():
        targets = names if key == "all" else [key]
        if key != "all" and key not in names:
            raise ValueError(
                f"policy config for pack {pack.name!r} names unknown policy {key!r}; known: {', '.join(names)}"
            )
        for name in targets:
            if isinstance(value, str):
                merged[name]["enforcementLevel"] = value
            else:
                merged[name].update(value)
    return merged


def _configure(
    servicer: _PolicyAnalyzerServicer, config: dict[str, dict[str, Any]], defaults: dict[str, int]
) -> None:
    request = proto.ConfigureAnalyzerRequest()
    for name, entry in config.items():
        props = {k: v for k, v in entry.items() if k != "enforcementLevel"}
        policy_config = proto.PolicyConfig()
        level = entry.get("enforcementLevel")
        if level is not None:
            policy_config.enforcementLevel = _LEVEL_PROTO[level]
        else:
            # An entry without a level must not silently disable the policy (proto default 0 is advisory).
            policy_config.enforcementLevel = defaults[name]
        policy_config.properties.update(props)
        request.policyConfig[name].CopyFrom(policy_config)
    servicer.Configure(request, None)


def _struct(props: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    json_format.ParseDict(_without_placeholders(props), message)
    return message


def _without_placeholders(value: Any) -> Any:
    """A data-source placeholder (`fakes.schema`: a value the review made up for an invoke it could not
    answer) reaches the policies as an unknown, never as a setting: a rule that only checks "is set" must
    not pass on a made-up key id. Unknowns are reported as "can't run during preview", not as compliant."""
    if isinstance(value, str) and value.startswith(PLACEHOLDER_PREFIX):
        return UNKNOWN
    if isinstance(value, dict):
        return {k: _without_placeholders(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_placeholders(v) for v in value]
    return value


def _providers(resources: list[RecordedResource], structs: list[struct_pb2.Struct]) -> dict[str, Any]:
    """Provider reference (`<urn>::<id>`, as a resource records it) -> the engine's provider message.

    Explicit providers are resources of the program too (`pulumi:providers:<pkg>`); a resource
    declared with one carries it, so rules read its region (residency) the way the engine sends it."""
    by_urn = {
        r.urn: proto.AnalyzerProviderResource(type=r.type, properties=s, urn=r.urn, name=r.name)
        for r, s in zip(resources, structs)
        if r.type.startswith("pulumi:providers:")
    }
    found: dict[str, Any] = {}
    for resource in resources:
        reference = resource.provider or ""
        provider = by_urn.get(reference.rsplit("::", 1)[0]) if reference else None
        if provider is not None:
            found[reference] = provider
    return found


def _analyzer_resource(
    resource: RecordedResource, properties: struct_pb2.Struct, provider: Any | None = None
) -> Any:
    return proto.AnalyzerResource(
        urn=resource.urn,
        type=resource.type,
        name=resource.name,
        properties=properties,
        parent=resource.parent or "",
        dependencies=resource.dependencies,
        propertyDependencies={
            k: proto.AnalyzerPropertyDependencies(urns=v)
            for k, v in resource.property_dependencies.items()
        },
        provider=provider,
    )


def analyze(
    resources: list[RecordedResource],
    packs: list[Pack],
    *,
    stack: str,
    extra_config: dict[str, dict[str, Any]] | None = None,
) -> Analysis:
    """Analyze every resource (`Analyze`) and the whole stack (`AnalyzeStack`) with each pack.

    `extra_config` adds per-policy properties computed by the caller (e.g. allowed regions from the
    stack config) under the stack's config file, which keeps the final word.
    """
    result = Analysis()
    structs = [_struct(r.properties) for r in resources]  # the wire form, built once for every pack
    providers = _providers(resources, structs)
    for pack in packs:
        servicer = pack.servicer()
        info = servicer.GetAnalyzerInfo(None, None)
        overrides: dict[str, Any] = {}
        for name, props in (extra_config or {}).items():
            if name in {p.name for p in pack.module.POLICIES}:
                overrides[name] = dict(props)
        for key, value in pack.stack_config(stack).items():
            if isinstance(value, dict) and isinstance(overrides.get(key), dict):
                overrides[key] = {**overrides[key], **value}
            else:
                overrides[key] = value
        config = effective_config(pack, overrides)
        _configure(servicer, config, {p.name: p.enforcementLevel for p in info.policies})
        result.config.update(config)

        for policy in info.policies:
            result.policies.append(
                {
                    "pack": pack.name,
                    "name": policy.name,
                    "severity": _SEVERITY_NAMES[policy.severity],
                    "enforcement": config.get(policy.name, {}).get(
                        "enforcementLevel", _LEVEL_NAMES[policy.enforcementLevel]
                    ),
                    "tags": list(policy.tags),
                    "description": policy.description,
                }
            )

        severities = {p["name"]: p["severity"] for p in result.policies if p["pack"] == pack.name}
        responses = []
        for resource, properties in zip(resources, structs):
            request = proto.AnalyzeRequest(
                type=resource.type,
                properties=properties,
                urn=resource.urn,
                name=resource.name,
                provider=providers.get(resource.provider or ""),
            )
            responses.append((resource.urn, servicer.Analyze(request, None)))
        stack_request = proto.AnalyzeStackRequest(
            resources=[
                _analyzer_resource(r, s, providers.get(r.provider or "")) for r, s in zip(resources, structs)
            ]
        )
        responses.append(("", servicer.AnalyzeStack(stack_request, None)))

        for urn, response in responses:
            for diagnostic in response.diagnostics:
                result.violations.append(
                    Violation(
                        policy=diagnostic.policyName,
                        pack=pack.name,
                        urn=diagnostic.urn or urn,
                        enforcement=_LEVEL_NAMES[diagnostic.enforcementLevel],
                        severity=severities.get(diagnostic.policyName, "unspecified"),
                        message=diagnostic.message,
                    )
                )
        waivers = getattr(pack.module, "applied_waivers", None)
        if waivers is not None:
            result.waivers.extend(
                waivers(config, [{"urn": r.urn, "type": r.type, "name": r.name} for r in resources])
            )
    return result
