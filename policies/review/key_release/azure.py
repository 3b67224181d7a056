"""Azure Key Vault secure key release (SKR): the release-policy grammar evaluated over MAA claims.

Grammar ("Azure Key Vault secure key release policy grammar",
https://learn.microsoft.com/azure/key-vault/keys/policy-grammar): a policy is
`{"version": "1.0.0", "anyOf": [authority, ...]}`; an authority is
`{"authority": <MAA URL>, "anyOf"|"allOf": [condition, ...]}`; a condition is a claim condition
`{"claim": <dotted path>, <operator>: <value>}` with one of `equals`, `notEquals`, `less`,
`lessOrEquals`, `greater`, `greaterOrEquals`, `exists`, or a nested `anyOf`/`allOf`.

Semantics kept here (fail closed):
- the token's issuer (`iss`) must be the authority (scheme and host compared case-insensitively,
  a trailing slash ignored): a token from another attestation instance never satisfies it;
- a claim that is absent makes its condition false (only `exists: false` holds on a missing claim);
- `equals`/`notEquals` compare JSON values exactly (type included: `false` is not `"false"`);
  the ordering operators compare numbers only;
- no token (a release request without attestation) is never released;
- anything outside the grammar raises `PolicyError`.
"""

from __future__ import annotations

from typing import Any, Final, Mapping
from urllib.parse import urlsplit

from enclave_runtime.attest.snp.report import POLICY_DEBUG, SnpReport

from policies.review.key_release.aws import PolicyError

VERSIONS: Final = frozenset({"1.0.0"})
_ORDERING: Final = {
    "less": lambda a, b: a < b,
    "lessOrEquals": lambda a, b: a <= b,
    "greater": lambda a, b: a > b,
    "greaterOrEquals": lambda a, b: a >= b,
}
_OPERATORS: Final = frozenset({"equals", "notEquals", "exists", *_ORDERING})
_MISSING: Final = object()


def claim_value(token: Mapping[str, Any], path: str) -> Any:
    """Follow a dotted claim path (`x-ms-isolation-tee.x-ms-attestation-type`); `_MISSING` if absent."""
    current: Any = token
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return _MISSING
        current = current[part]
    return current


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _group_key(node: Mapping[str, Any]) -> tuple[str, list[Any]] | None:
    """The `anyOf`/`allOf` of a node (the grammar spells them in lower case, examples camelCase)."""
    found = [(k, v) for k, v in node.items() if k.lower() in {"anyof", "allof"}]
    if len(found) > 1:
        raise PolicyError(f"a condition has both anyOf and allOf: {sorted(node)}")
    if not found:
        return None
    key, conditions = found[0]
    if not isinstance(conditions, list) or not conditions:
        raise PolicyError(f"{key} must be a non-empty list of conditions")
    return key.lower(), conditions


def condition_holds(node: Mapping[str, Any], token: Mapping[str, Any]) -> bool:
    if not isinstance(node, Mapping):
        raise PolicyError(f"condition {node!r} is not an object")
    group = _group_key(node)
    if group is not None:
        if "claim" in node:
            raise PolicyError("a condition is either a claim condition or anyOf/allOf, not both")
        kind, conditions = group
        results = (condition_holds(c, token) for c in conditions)
        return any(results) if kind == "anyof" else all(results)
    claim = node.get("claim")
    operators = [k for k in node if k != "claim"]
    if not isinstance(claim, str) or len(operators) != 1 or operators[0] not in _OPERATORS:
        raise PolicyError(f"claim condition {dict(node)!r} is not claim + one of {sorted(_OPERATORS)}")
    operator = operators[0]
    expected = node[operator]
    actual = claim_value(token, claim)
    if operator == "exists":
        return (actual is not _MISSING) == bool(expected)
    if actual is _MISSING:
        return False
    if operator == "equals":
        return type(actual) is type(expected) and actual == expected
    if operator == "notEquals":
        return not (type(actual) is type(expected) and actual == expected)
    if not (_number(actual) and _number(expected)):
        return False
    return bool(_ORDERING[operator](actual, expected))


def _same_authority(authority: str, issuer: Any) -> bool:
    if not isinstance(issuer, str):
        return False
    a, b = urlsplit(authority.rstrip("/")), urlsplit(issuer.rstrip("/"))
    return (a.scheme.lower(), a.netloc.lower(), a.path) == (b.scheme.lower(), b.netloc.lower(), b.path)


def evaluate(policy: Mapping[str, Any], token: Mapping[str, Any] | None) -> bool:
    """Would Key Vault release the key to the holder of this MAA token?"""
    if policy.get("version") not in VERSIONS:
        raise PolicyError(f"release policy version {policy.get('version')!r} is not one of {sorted(VERSIONS)}")
    authorities = policy.get("anyOf")
    if not isinstance(authorities, list) or not authorities:
        raise PolicyError("a release policy needs a non-empty anyOf of authorities")
    if token is None:
        return False
    for entry in authorities:
        authority = entry.get("authority") if isinstance(entry, Mapping) else None
        if not isinstance(authority, str):
            raise PolicyError(f"authority entry {entry!r} has no authority URL")
        group = _group_key(entry)
        if group is None:
            raise PolicyError(f"authority {authority!r} has no anyOf/allOf conditions")
        if not _same_authority(authority, token.get("iss")):
            continue
        kind, conditions = group
        results = (condition_holds(c, token) for c in conditions)
        if any(results) if kind == "anyof" else all(results):
            return True
    return False


def authorities(policy: Mapping[str, Any]) -> list[str]:
    """The MAA instances a policy accepts (the simulated tokens are issued by the first)."""
    return [e["authority"] for e in policy.get("anyOf", []) if isinstance(e, Mapping) and "authority" in e]


# Guest policy bits (AMD SEV-SNP Firmware ABI, GUEST_POLICY) that MAA reports as booleans.
SMT_ALLOWED: Final = 1 << 16
MIGRATE_MA: Final = 1 << 18


def sev_snp_vm_claims(verified: Any, report: bytes, runtime: Mapping[str, Any], authority: str) -> dict[str, Any]:
    """The claims MAA puts in a token for a verified SEV-SNP report (`attest/SevSnpVm`, the confidential
    containers' SKR sidecar), without the token's times: top level, as in Microsoft's published
    examples ("Examples of an attestation token", "Claim sets"). `verified` is the SNP verifier's claims,
    `runtime` the runtime data the report binds. The MAA stand-in issues these and the review's simulation
    judges them, so both meet the release policy with the same claim names and values.

    `x-ms-compliance-status` is asserted for every verified report: real MAA asserts
    `azure-compliant-uvm` only when the utility VM's reference info verifies (UNCONFIRMED what it emits
    without one).
    """
    tcb = verified.reported_tcb
    return {
        "iss": authority.rstrip("/"),
        "x-ms-attestation-type": "sevsnpvm",
        "x-ms-compliance-status": "azure-compliant-uvm",
        "x-ms-runtime": dict(runtime),
        "x-ms-sevsnpvm-authorkeydigest": verified.author_key_digest.hex(),
        "x-ms-sevsnpvm-bootloader-svn": tcb.get("bl_spl"),
        "x-ms-sevsnpvm-familyId": verified.family_id.hex().upper(),
        "x-ms-sevsnpvm-guestsvn": verified.guest_svn,
        "x-ms-sevsnpvm-hostdata": verified.host_data.hex(),
        "x-ms-sevsnpvm-idkeydigest": verified.id_key_digest.hex(),
        "x-ms-sevsnpvm-imageId": verified.image_id.hex().upper(),
        "x-ms-sevsnpvm-is-debuggable": bool(verified.policy & POLICY_DEBUG),
        "x-ms-sevsnpvm-launchmeasurement": verified.measurement.hex(),
        "x-ms-sevsnpvm-microcode-svn": tcb.get("ucode_spl"),
        "x-ms-sevsnpvm-migration-allowed": bool(verified.policy & MIGRATE_MA),
        "x-ms-sevsnpvm-reportdata": verified.report_data.hex(),
        "x-ms-sevsnpvm-reportid": SnpReport.parse(report).report_id.hex(),
        "x-ms-sevsnpvm-smt-allowed": bool(verified.policy & SMT_ALLOWED),
        "x-ms-sevsnpvm-snpfw-svn": tcb.get("snp_spl"),
        "x-ms-sevsnpvm-tee-svn": tcb.get("tee_spl"),
        "x-ms-sevsnpvm-vmpl": verified.vmpl,
        "x-ms-ver": "1.0",
    }


def sgx_claims(verified: Any, authority: str) -> dict[str, Any]:
    """The claims MAA puts in a token for a verified SGX quote (Microsoft, "Claim sets": SGX claims are
    top level; measurements lowercase hex). Debuggable is the enclave's ATTRIBUTES.DEBUG bit."""
    return {
        "iss": authority.rstrip("/"),
        "x-ms-attestation-type": "sgx",
        "x-ms-sgx-mrenclave": verified.mrenclave.hex(),
        "x-ms-sgx-mrsigner": verified.mrsigner.hex(),
        "x-ms-sgx-product-id": verified.isvprodid,
        "x-ms-sgx-svn": verified.isvsvn,
        "x-ms-sgx-is-debuggable": verified.debug,
        "x-ms-ver": "1.0",
    }


def tdx_claims(verified: Any, authority: str) -> dict[str, Any]:
    """The claims of MAA's TDX EAT profile for a verified TDX quote: every claim top level
    (https://learn.microsoft.com/azure/attestation/trust-domain-extensions-eat-profile), with the
    attestation type and compliance status of Microsoft's published SKR policy."""
    return {
        "iss": authority.rstrip("/"),
        "x-ms-attestation-type": "tdxvm",
        "x-ms-compliance-status": "azure-compliant-cvm",
        "tdx_mrtd": verified.mrtd.hex(),
        "tdx_td_attributes_debug": verified.debug,
        "x-ms-ver": "1.0",
    }
