"""The ccp-zero-trust pack: its policies, levels and the hooks the offline review calls.

`__main__.py` builds the `PolicyPack` from these names for the Pulumi CLI; the review
(`policies/review/analyzer.py`) loads this module directly and drives pulumi-policy's analyzer.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Final, Mapping

from pulumi_policy import EnforcementLevel
from pulumi_policy.policy import Policy

from components.site import SHARED_PARTY
from policies.zero_trust.rules import aws, azure, gcp, kubernetes, stack, workload
from policies.zero_trust.rules._base import (
    CONFIDENTIAL,
    ZeroTrustResourcePolicy,
    default_level,
    read_waivers,
)

NAME: Final = "ccp-zero-trust"
VERSION: Final = "0.1.0"
ENFORCEMENT_LEVEL: Final = EnforcementLevel.ADVISORY

POLICIES: list[Policy] = [
    *aws.POLICIES,
    *azure.POLICIES,
    *gcp.POLICIES,
    *kubernetes.POLICIES,
    *stack.POLICIES,
    *workload.POLICIES,
]

# Mandatory for critical/high, advisory otherwise; config/<stack>.json may change any of them.
INITIAL_CONFIG: dict[str, Any] = {p.name: default_level(p) for p in POLICIES}

_BY_NAME: Final = {p.name: p for p in POLICIES}


def applied_waivers(policy_config: Mapping[str, Mapping[str, Any]], resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every (policy, resource) an `excludeFor` waiver with a reason exempts, for the review report.

    A waiver applies only to resources of the types the rule reads.
    Waivers without a reason are not applied (the rule reports them as violations instead).
    """
    applied = []
    for name, config in policy_config.items():
        policy = _BY_NAME.get(name)
        if policy is None or not isinstance(config, Mapping):
            continue
        if str(config.get("enforcementLevel", "")).lower() == "disabled":
            continue
        waivers, _ = read_waivers(config)
        for resource in resources:
            if not policy.applies_to(resource["type"]):  # type: ignore[attr-defined]
                continue
            for waiver in waivers:
                if waiver.matches(resource["name"], resource["urn"]):
                    applied.append(
                        {
                            "policy": name,
                            "urn": resource["urn"],
                            "name": resource["name"],
                            "type": resource["type"],
                            "reason": waiver.reason,
                        }
                    )
                    break
    return applied


def allowed_regions(collaboration: Any) -> dict[str, list[str]]:
    """Each party's allowed regions; resources tagged `party: shared` (workload hosts' keys and
    disks) may live only where the workload runs."""
    regions = {p.name: list(p.regions) for p in collaboration.parties}
    regions[SHARED_PARTY] = sorted({h.region for h in collaboration.workload.hosts})
    return regions


# Rules whose promise is a prod one (the components build what they check only in prod): mandatory in
# prod, advisory in every other environment (the review from ccp:environment; the CLI from config/dev.json).
PROD_ONLY: Final = ("stack-audit-enforce-immutable-copy", "stack-collaboration-output-enforce-dp")


def is_prod(settings: Any) -> bool:
    environment = getattr(settings, "environment", None)
    return str(getattr(environment, "value", environment)) == "prod"


def config_for_stack(settings: Any) -> dict[str, dict[str, Any]]:
    """Policy properties derived from the typed ccp stack config (`stacks.config.StackConfig`)."""
    collaboration = settings.collaboration
    levels = {} if is_prod(settings) else {name: {"enforcementLevel": "advisory"} for name in PROD_ONLY}
    return {
        **levels,
        "stack-residency-enforce-allowed-regions": {"allowedRegions": allowed_regions(collaboration)},
        "stack-kms-partykey-enforce-same-measurements": {
            "approvedMeasurements": collaboration.measurements.model_dump(
                by_alias=True, exclude_none=True, mode="json"
            )
        },
    }


# --- compliance mapping --------------------------------------------------------------------------

FRAMEWORK_TITLES: Final = {
    "hipaa": "HIPAA Security Rule (45 CFR §164.308/§164.312)",
    "gdpr": "GDPR (Art. 25, 30, 32, 44)",
    "nist": "NIST SP 800-53 Rev. 5",
    "cis": "CIS Foundations Benchmarks (AWS 3.0, Azure 2.1, GCP 3.0)",
}


def _control(tag: str) -> tuple[str, str] | None:
    prefix, _, control = tag.partition(":")
    if prefix == "hipaa":
        return "hipaa", f"§{control}"
    if prefix == "gdpr":
        return "gdpr", f"Art. {control.removeprefix('art')}"
    if prefix == "nist":
        return "nist", control
    if prefix.startswith("cis-"):
        return "cis", f"{prefix.removeprefix('cis-').upper()} {control}"
    return None


def controls(policies: list[Policy] | None = None) -> dict[str, dict[str, list[str]]]:
    """framework -> control -> names of the rules covering it, derived from the policies' tags."""
    mapping: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for policy in policies if policies is not None else POLICIES:
        for tag in policy.tags or []:
            found = _control(tag)
            if found:
                mapping[found[0]][found[1]].append(policy.name)
    return {fw: {c: sorted(names) for c, names in sorted(ctrls.items())} for fw, ctrls in sorted(mapping.items())}


def _status(names: list[str], levels: Mapping[str, str], violated: Mapping[str, set[str]]) -> str:
    active = [n for n in names if levels.get(n, "advisory") != "disabled"]
    if not active:
        return "not evaluated (disabled)"
    levels_hit = set().union(*(violated.get(n, set()) for n in active))
    if levels_hit & {"mandatory", "remediate"}:
        return "**fail**"
    if levels_hit:
        return "warn (advisory findings)"
    return "pass"


def compliance_markdown(policies: list[dict[str, Any]], violations: list[Any]) -> str:
    """The review's compliance section: per framework, each control, its rules, pass/fail here."""
    ours = {p["name"] for p in policies if p.get("pack") == NAME}
    levels = {p["name"]: p.get("enforcement", "advisory") for p in policies if p.get("pack") == NAME}
    violated: dict[str, set[str]] = defaultdict(set)
    for v in violations:
        if getattr(v, "pack", NAME) == NAME and v.policy in ours:
            violated[v.policy].add(v.enforcement)
    lines = ["## Compliance (ccp-zero-trust)", ""]
    confidential = sorted(p.name for p in POLICIES if CONFIDENTIAL in (p.tags or []))
    lines.append(f"{len(POLICIES)} rules, {len(confidential)} confidential-computing rules.")
    for framework, ctrls in controls().items():
        lines += ["", f"### {FRAMEWORK_TITLES[framework]}", "", "| control | rules | result |", "|---|---|---|"]
        for control, names in ctrls.items():
            lines.append(f"| {control} | {', '.join(f'`{n}`' for n in names)} | {_status(names, levels, violated)} |")
    return "\n".join(lines) + "\n"


def rule_counts() -> dict[str, int]:
    """Rules per cloud/topic (by name prefix), for reports and the README."""
    counts: dict[str, int] = defaultdict(int)
    for policy in POLICIES:
        counts[policy.name.split("-", 1)[0]] += 1
    counts["resource rules"] = sum(isinstance(p, ZeroTrustResourcePolicy) for p in POLICIES)
    counts["stack rules"] = len(POLICIES) - counts["resource rules"]
    counts[CONFIDENTIAL] = sum(CONFIDENTIAL in (p.tags or []) for p in POLICIES)
    return dict(counts)
