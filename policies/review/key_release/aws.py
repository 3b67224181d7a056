"""AWS IAM policy evaluation for KMS key policies, as AWS documents it.

The review judges the key policy the program *generated* (the `policy` input of `aws:kms/key:Key`)
against requests an attested enclave, a debug enclave, another workload or an unattested caller
would make. Only what decides those requests is implemented, and every part follows the IAM User
Guide ("Policy evaluation logic", "IAM JSON policy elements: Condition operators",
"Single-valued vs. multivalued context keys"):

- An explicit Deny in any matching statement wins; otherwise a matching Allow allows; otherwise the
  request is implicitly denied.
- Within a `Condition` block every operator must hold (AND), within an operator every key must
  hold (AND), and a key given several policy values holds if any value matches (OR).
- A key absent from the request context makes the condition false, except for negated operators
  (`StringNotEquals`, `ArnNotEquals`, ...) which are then true, `...IfExists` operators which are
  then true, and `Null`, which tests presence. `ForAllValues:` is true on a missing key,
  `ForAnyValue:` false.
- Multivalued context keys (a list in the request context) require a set operator; a single-valued
  operator over one is refused rather than guessed.
- Condition key names are case-insensitive; `StringEquals`/`StringLike`/`Arn*` values are
  case-sensitive, `...IgnoreCase` are not; `Bool` compares `true`/`false` case-insensitively.
- `Principal {"AWS": "<account id>"}` or `...:root` names the account: KMS then lets IAM policies in
  that account grant access, so any principal of the account is treated as matching (the worst
  case, because IAM policies are not part of the recording).

Anything else (an operator not listed, policy variables) raises `PolicyError`: the simulation reports
it as an error, never as a decision.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Mapping

Decision = Literal["allow", "deny"]
ContextValue = str | bool | list[str]

_NEGATED: Final[dict[str, str]] = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}
_POSITIVE: Final = frozenset(
    {"StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike", "Bool"}
)


class PolicyError(ValueError):
    """The document uses something this evaluator does not model; no decision is made."""


@dataclass(frozen=True)
class Request:
    """One KMS API call as IAM sees it: who, which action, and the request context keys."""

    principal_arn: str
    action: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)

    @property
    def account(self) -> str:
        return self.principal_arn.split(":")[4]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _text(value: Any) -> str:
    """Policy values are JSON scalars; IAM compares their string form (`true`, not `True`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        text = str(value)
        if "${" in text:
            raise PolicyError(f"policy variable in condition value {text!r} is not modelled")
        return text
    raise PolicyError(f"condition value {value!r} is not a string, number or boolean")


def _glob(pattern: str, value: str) -> bool:
    """IAM wildcards: `*` any run of characters, `?` one character; nothing else is special."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def _arn_match(pattern: str, value: str) -> bool:
    """ArnEquals/ArnLike: each of the six colon-separated parts is matched on its own, with wildcards."""
    pattern_parts = pattern.split(":", 5)
    value_parts = value.split(":", 5)
    if len(pattern_parts) != 6 or len(value_parts) != 6:
        return False
    return all(_glob(p, v) for p, v in zip(pattern_parts, value_parts))


def _match_one(operator: str, policy_value: str, context_value: str) -> bool:
    if operator == "StringEquals":
        return context_value == policy_value
    if operator == "StringEqualsIgnoreCase":
        return context_value.lower() == policy_value.lower()
    if operator == "StringLike":
        return _glob(policy_value, context_value)
    if operator in {"ArnEquals", "ArnLike"}:
        return _arn_match(policy_value, context_value)
    if operator == "Bool":
        return context_value.lower() == policy_value.lower()
    raise PolicyError(f"condition operator {operator!r} is not modelled")  # pragma: no cover


def _parse_operator(name: str) -> tuple[str | None, str, bool]:
    """`ForAnyValue:StringLikeIfExists` -> ("ForAnyValue", "StringLike", True)."""
    qualifier: str | None = None
    if ":" in name:
        qualifier, name = name.split(":", 1)
        if qualifier not in {"ForAnyValue", "ForAllValues"}:
            raise PolicyError(f"set operator {qualifier!r} is not ForAnyValue or ForAllValues")
    if_exists = name.endswith("IfExists")
    base = name.removesuffix("IfExists")
    if base != "Null" and base not in _POSITIVE and base not in _NEGATED:
        raise PolicyError(f"condition operator {name!r} is not modelled")
    if base == "Null" and (if_exists or qualifier):
        raise PolicyError(f"condition operator {name!r} is not valid IAM")
    return qualifier, base, if_exists


def _lookup(context: Mapping[str, ContextValue], key: str) -> ContextValue | None:
    wanted = key.lower()
    for name, value in context.items():
        if name.lower() == wanted:
            return value
    return None


def _key_holds(operator: str, key: str, values: list[Any], context: Mapping[str, ContextValue]) -> bool:
    qualifier, base, if_exists = _parse_operator(operator)
    present = _lookup(context, key)
    if base == "Null":
        wanted = [_text(v).lower() for v in values]
        return any((present is None) == (w == "true") for w in wanted if w in {"true", "false"})
    if present is None:
        if qualifier == "ForAllValues":
            return True
        if qualifier == "ForAnyValue":
            return False
        return if_exists or base in _NEGATED
    policy_values = [_text(v) for v in values]
    negated = base in _NEGATED
    positive = _NEGATED.get(base, base)

    def matches(one: ContextValue) -> bool:
        hit = any(_match_one(positive, pv, _text(one)) for pv in policy_values)
        return not hit if negated else hit

    if qualifier is None:
        if isinstance(present, list):
            raise PolicyError(
                f"{operator} over multivalued context key {key!r} needs ForAnyValue/ForAllValues"
            )
        return matches(present)
    items = _as_list(present)
    if qualifier == "ForAllValues":
        return all(matches(item) for item in items)
    return any(matches(item) for item in items)


def conditions_hold(condition: Mapping[str, Any] | None, context: Mapping[str, ContextValue]) -> bool:
    """Every operator, every key within it (AND); any value of a key (OR)."""
    if not condition:
        return True
    for operator, keys in condition.items():
        if not isinstance(keys, Mapping):
            raise PolicyError(f"condition {operator!r} is not an object of keys")
        for key, values in keys.items():
            if not _key_holds(operator, key, _as_list(values), context):
                return False
    return True


def _principal_matches(principal: Any, request: Request) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, Mapping):
        raise PolicyError(f"Principal {principal!r} is neither '*' nor an object")
    for arn in _as_list(principal.get("AWS", [])):
        if arn == "*" or arn == request.principal_arn:
            return True
        # The account itself (id or root ARN): KMS delegates to IAM policies of that account.
        if arn == request.account or re.fullmatch(rf"arn:[a-z-]+:iam::{request.account}:root", str(arn)):
            return True
    return False


def _action_matches(patterns: Any, action: str) -> bool:
    return any(_glob(str(p).lower(), action.lower()) for p in _as_list(patterns))


def statement_applies(statement: Mapping[str, Any], request: Request, key_arn: str = "*") -> bool:
    """Principal, action, resource and condition of one statement all match the request."""
    if "NotPrincipal" in statement:
        if _principal_matches(statement["NotPrincipal"], request):
            return False
    elif not _principal_matches(statement.get("Principal"), request):
        return False
    if "NotAction" in statement:
        if _action_matches(statement["NotAction"], request.action):
            return False
    elif not _action_matches(statement.get("Action", []), request.action):
        return False
    # In a key policy "*" means "this key"; a named resource must match the key's ARN.
    resources = statement.get("Resource", statement.get("NotResource", "*"))
    hit = any(r == "*" or key_arn == "*" or fnmatch.fnmatchcase(key_arn, str(r)) for r in _as_list(resources))
    if hit == ("NotResource" in statement):
        return False
    return conditions_hold(statement.get("Condition"), request.context)


def evaluate(policy: Mapping[str, Any], request: Request, key_arn: str = "*") -> Decision:
    """Explicit Deny > Allow > implicit deny."""
    statements = policy.get("Statement")
    if statements is None:
        raise PolicyError("the policy has no Statement")
    allowed = False
    for statement in _as_list(statements):
        effect = statement.get("Effect")
        if effect not in {"Allow", "Deny"}:
            raise PolicyError(f"statement effect {effect!r} is neither Allow nor Deny")
        if statement_applies(statement, request, key_arn):
            if effect == "Deny":
                return "deny"
            allowed = True
    return "allow" if allowed else "deny"


# --- the requests of the simulation -------------------------------------------------------------

# KMS operations that accept `Recipient` (an attestation document) and therefore carry the
# kms:RecipientAttestation:* keys (KMS developer guide, "Condition keys for AWS Nitro Enclaves").
ATTESTED_ACTIONS: Final[tuple[str, ...]] = (
    "kms:Decrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyPair",
    "kms:DeriveSharedSecret",
)
# Everything that returns key material or plaintext, or re-encrypts it elsewhere; unattested
# callers try all of them.
RELEASING_ACTIONS: Final[tuple[str, ...]] = ATTESTED_ACTIONS + ("kms:ReEncryptFrom",)
NITRO_PCRS: Final[tuple[str, ...]] = ("pcr0", "pcr1", "pcr2", "pcr3", "pcr4", "pcr8")


def attestation_context(pcrs: Mapping[str, str]) -> dict[str, str]:
    """The condition keys KMS adds for a request whose `Recipient` holds a Nitro attestation document:
    ImageSha384 (= PCR0) and PCR<n> for each register in the document."""
    context = {"kms:RecipientAttestation:ImageSha384": pcrs["pcr0"]}
    for name, value in pcrs.items():
        context[f"kms:RecipientAttestation:PCR{name.removeprefix('pcr')}"] = value
    return context


def base_context(principal_arn: str) -> dict[str, str]:
    """Global keys every authenticated KMS call carries."""
    account = principal_arn.split(":")[4]
    return {
        "aws:PrincipalArn": principal_arn,
        "aws:PrincipalAccount": account,
        "kms:CallerAccount": account,
        "aws:SecureTransport": "true",
    }


def release(policy: Mapping[str, Any], principal_arn: str, pcrs: Mapping[str, str] | None) -> bool:
    """Would any releasing action succeed for this caller (with or without an attestation document)?"""
    actions = ATTESTED_ACTIONS if pcrs is not None else RELEASING_ACTIONS
    context = base_context(principal_arn)
    if pcrs is not None:
        context.update(attestation_context(pcrs))
    return any(
        evaluate(policy, Request(principal_arn, action, context)) == "allow" for action in actions
    )


def approved_release(policy: Mapping[str, Any], principal_arn: str, pcrs: Mapping[str, str]) -> bool:
    """The approved enclave needs Decrypt with its attestation document to unwrap a party's data."""
    context = base_context(principal_arn) | attestation_context(pcrs)
    return evaluate(policy, Request(principal_arn, "kms:Decrypt", context)) == "allow"


# Calls that would let an operator take the key away from attestation: replace its policy, or hand
# out data-plane rights through a grant (KMS developer guide, "Default key policy" and "Grants").
POLICY_CHANGE_ACTIONS: Final[tuple[str, ...]] = ("kms:PutKeyPolicy", "kms:CreateGrant")


def operator_principals(account: str, partition: str = "aws") -> list[str]:
    """IAM principals of the key's account an operator holds: the role AWS Organizations creates in
    every member account, an administrator role, an IAM user, and the account's root user."""
    return [
        f"arn:{partition}:iam::{account}:role/OrganizationAccountAccessRole",
        f"arn:{partition}:iam::{account}:role/ccp-administrator",
        f"arn:{partition}:iam::{account}:user/operator",
        f"arn:{partition}:iam::{account}:root",
    ]


def policy_change(policy: Mapping[str, Any], principal_arn: str) -> bool:
    """Would this principal (in an MFA session: the strongest an operator has) change the key's
    policy or grants? A key-policy statement naming the account lets IAM decide, and an operator's
    IAM policy allows everything (the worst case), so such a statement counts as an Allow."""
    context = base_context(principal_arn) | {"aws:MultiFactorAuthPresent": "true"}
    return any(
        evaluate(policy, Request(principal_arn, action, context)) == "allow" for action in POLICY_CHANGE_ACTIONS
    )
