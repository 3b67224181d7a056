"""Microsoft Azure Attestation policy evaluation (version 1.2) for the rule shapes an Azure CVM workload
policy uses, so the review judges the attestation policy a stack recorded, not the one it meant.

Grammar ("Attestation policy version 1.2", https://learn.microsoft.com/azure/attestation/policy-version-1-2;
sample "Attestation policy to authorize only those TPMs that match known PCR hashes",
https://learn.microsoft.com/azure/attestation/tpm-attestation-sample-policies): a policy is
`version=1.2;` followed by `authorizationrules { ... };` and `issuancerules { ... };`; each rule is
`conditions => action;`. Understood here, exactly:

- `c:[type == "pcrs", issuer=="AttestationService"] => add(type="T", value=JsonToClaimValue(JmesPath(c.value,
  "PCRs[? Index == `N`].Digests.SHA256 | @[0] == '<hex>'")));` adds T = whether PCR N's SHA-256 equals <hex>;
- `[type=="T", value==true(, issuer=="AttestationPolicy")?] && ... => permit();` / `=> issue(type="C",
  value="V");` (an empty condition list is unconditional).

Semantics kept (fail closed): attestation is refused (no token) unless an authorization rule permits; a
PCR the evidence does not carry compares false; any other statement raises `PolicyError`, so a policy the
review cannot read is never assumed to check something.
"""

from __future__ import annotations

import re
from typing import Any, Final, Mapping

from policies.review.key_release.aws import PolicyError

_VERSION: Final = re.compile(r"^\s*version\s*=\s*1\.2\s*;")
_SECTION: Final = re.compile(r"(authorizationrules|issuancerules)\s*\{(.*?)\n\s*\};", re.DOTALL)
_PCR_ADD: Final = re.compile(
    r'^c:\[type\s*==\s*"pcrs",\s*issuer\s*==\s*"AttestationService"\]\s*=>\s*add\(type="([^"]+)",\s*'
    r'value=JsonToClaimValue\(JmesPath\(c\.value,\s*"PCRs\[\?\s*Index\s*==\s*`(\d+)`\]\.Digests\.SHA256\s*\|\s*@\[0\]\s*==\s*'
    r"'([0-9a-fA-F]+)'\s*\"\)\)\)$"
)
_RULE: Final = re.compile(r'^(.*?)\s*=>\s*(permit\(\)|issue\(type="([^"]+)",\s*value="([^"]*)"\))$')
_CONDITION: Final = re.compile(r'^\[type\s*==\s*"([^"]+)",\s*value\s*==\s*true(?:,\s*issuer\s*==\s*"AttestationPolicy")?\]$')


def _conditions(text: str) -> list[str]:
    text = text.strip()
    if not text:
        return []
    found: list[str] = []
    for part in text.split("&&"):
        match = _CONDITION.match(part.strip())
        if match is None:
            raise PolicyError(f"MAA policy condition {part.strip()!r} is not one the review evaluates")
        found.append(match.group(1))
    return found


def _run(section: str, pcrs: Mapping[str, str]) -> tuple[bool, dict[str, Any]]:
    """(permitted, issued claims) of one section's rules over the evidence's SHA-256 PCR bank."""
    added: dict[str, bool] = {}
    issued: dict[str, Any] = {}
    permitted = False
    body = "\n".join(line for line in section.splitlines() if not line.strip().startswith("//"))
    for statement in (" ".join(part.split()) for part in body.split(";")):
        if not statement:
            continue
        pcr = _PCR_ADD.match(statement)
        if pcr is not None:
            claim, index, digest = pcr.groups()
            added[claim] = pcrs.get(index, "").lower() == digest.lower()
            continue
        rule = _RULE.match(statement)
        if rule is None:
            raise PolicyError(f"MAA policy rule {statement!r} is not one the review evaluates")
        conditions, action, claim, value = rule.groups()
        if all(added.get(name) is True for name in _conditions(conditions)):
            if action == "permit()":
                permitted = True
            else:
                issued[claim] = value
    return permitted, issued


def evaluate(policy: str, pcrs: Mapping[str, str]) -> dict[str, Any] | None:
    """The claims the policy issues for a guest whose vTPM reports `pcrs` (index -> SHA-256 hex), or None
    when its authorization rules do not permit attestation (MAA issues no token)."""
    if not _VERSION.match(policy):
        raise PolicyError("MAA policy does not start with version=1.2;")
    sections = dict((name, body) for name, body in _SECTION.findall(policy))
    if set(sections) != {"authorizationrules", "issuancerules"}:
        raise PolicyError(f"MAA policy needs authorizationrules and issuancerules, has {sorted(sections)}")
    permitted, _ = _run(sections["authorizationrules"], pcrs)
    if not permitted:
        return None
    return _run(sections["issuancerules"], pcrs)[1]
