"""Who may change an attestation-bound AWS data key, judged against AWS's documented semantics.

Built from the KMS developer guide and the IAM User Guide, not from the generator's own output:
- "Default key policy": a statement whose Principal is the account (`arn:aws:iam::<account>:root`)
  delegates to IAM, so any identity of the account with an IAM allow of `kms:PutKeyPolicy`
  (AdministratorAccess, OrganizationAccountAccessRole) could replace the policy and drop the
  attestation conditions;
- IAM policy evaluation: an explicit Deny wins; `ArnNotEquals` on `aws:PrincipalArn` (the role ARN
  for an assumed-role session) excludes exactly the named role; `Bool aws:MultiFactorAuthPresent`
  is false when the key is absent;
- the lockout safety check: the key policy must let the key's administrator call PutKeyPolicy.

Every stack's party keys are built through the AWS `Site` (the program's own wiring) and each
request is decided by the review's IAM evaluator (`policies.review.key_release.aws`).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from components.aws.site import Site
from policies.review.key_release.aws import Request, base_context, evaluate
from policies.review.mocks import Recording, run, unwrap
from stacks.config import ConfigError, parse

from tests.support import read_stack, stack_site_args

ACCOUNT = "111122223333"  # the review fakes' deploying account
ROOT = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:root$|^\d{12}$")
OPERATOR = f"arn:aws:iam::{ACCOUNT}:role/OrganizationAccountAccessRole"
ROOT_USER = f"arn:aws:iam::{ACCOUNT}:root"


# Parties whose keys live in their own account (`account` + `deployRole` in the shipped files).
PARTY_ACCOUNTS = {"bank-south": "444455556677"}


def break_glass(party: str) -> str:
    """The illustrative break-glass role the shipped stack files name for an AWS party."""
    return f"arn:aws:iam::{PARTY_ACCOUNTS.get(party, ACCOUNT)}:role/{party}-key-break-glass"


def with_break_glass(stack: str) -> dict[str, Any]:
    """The shipped stack, every AWS party naming its break-glass role (as the shipped files do)."""
    raw = read_stack(stack)
    for party in raw["collaboration"]["parties"]:
        if party["cloud"] == "aws":
            party.setdefault("breakGlassPrincipal", break_glass(party["name"]))
    return raw


def aws_site(stack: str) -> Recording:
    raw = with_break_glass(stack)
    return run(lambda: Site(f"{stack}-aws", stack_site_args(raw, "aws")))


def party_keys(recording: Recording) -> dict[str, dict[str, Any]]:
    """party -> key policy document of its data key (tagged `ccp-key-purpose: party-data`)."""
    found = {}
    for key in recording.of_type("aws:kms/key:Key"):
        props = unwrap(key.properties)
        if props["tags"].get("ccp-key-purpose") == "party-data":
            found[props["tags"]["party"]] = json.loads(props["policy"])
    return found


def principals(statement: dict[str, Any]) -> list[str]:
    principal = statement.get("Principal")
    if principal == "*":
        return ["*"]
    values = (principal or {}).get("AWS", [])
    return values if isinstance(values, list) else [values]


STACKS = ["dev", "banks", "hospitals", "prod"]


@pytest.fixture(scope="module", params=STACKS)
def keys(request: pytest.FixtureRequest) -> dict[str, dict[str, Any]]:
    found = party_keys(aws_site(request.param))
    assert found, f"{request.param}: no AWS party data key"
    return found


def test_no_statement_names_the_account_root(keys: dict[str, dict[str, Any]]) -> None:
    for party, policy in keys.items():
        rooted = [s.get("Sid") for s in policy["Statement"] if any(ROOT.match(p) for p in principals(s))]
        assert not rooted, f"{party}: statements {rooted} name the account root (delegates to IAM)"


@pytest.mark.parametrize("caller", [OPERATOR, ROOT_USER, f"arn:aws:iam::{ACCOUNT}:user/admin"])
@pytest.mark.parametrize("action", ["kms:PutKeyPolicy", "kms:CreateGrant", "kms:ReplicateKey"])
def test_an_account_principal_other_than_break_glass_cannot_change_the_key(
    keys: dict[str, dict[str, Any]], caller: str, action: str
) -> None:
    # With MFA, the strongest session an account administrator can have.
    context = base_context(caller) | {"aws:MultiFactorAuthPresent": "true"}
    for party, policy in keys.items():
        assert evaluate(policy, Request(caller, action, context)) == "deny", (party, caller, action)


def test_policy_change_is_denied_by_an_explicit_deny_to_everyone_but_break_glass(
    keys: dict[str, dict[str, Any]],
) -> None:
    for party, policy in keys.items():
        denies = [
            s
            for s in policy["Statement"]
            if s["Effect"] == "Deny"
            and principals(s) == ["*"]
            and {"kms:PutKeyPolicy", "kms:CreateGrant"} <= set(s["Action"])
        ]
        assert len(denies) == 1, party
        condition = denies[0]["Condition"]
        assert condition == {"ArnNotEquals": {"aws:PrincipalArn": break_glass(party)}}


def test_break_glass_can_put_the_key_policy_only_with_mfa(keys: dict[str, dict[str, Any]]) -> None:
    for party, policy in keys.items():
        role = break_glass(party)
        with_mfa = base_context(role) | {"aws:MultiFactorAuthPresent": "true"}
        assert evaluate(policy, Request(role, "kms:PutKeyPolicy", with_mfa)) == "allow", party
        assert evaluate(policy, Request(role, "kms:PutKeyPolicy", base_context(role))) == "deny", party
        # The break-glass role administers; it never decrypts outside the enclave.
        assert evaluate(policy, Request(role, "kms:Decrypt", with_mfa)) == "deny", party


def test_key_administration_calls_on_each_party_key_are_alarmed() -> None:
    recording = aws_site("banks")
    keys = {
        unwrap(k.properties)["tags"]["party"]: k.outputs["arn"]
        for k in recording.of_type("aws:kms/key:Key")
        if unwrap(k.properties)["tags"].get("ccp-key-purpose") == "party-data"
    }
    filters = [unwrap(f.properties) for f in recording.of_type("aws:cloudwatch/logMetricFilter:LogMetricFilter")]
    alarms = [unwrap(a.properties) for a in recording.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")]
    for party, arn in keys.items():
        matching = [f for f in filters if arn in f["pattern"]]
        events = {"PutKeyPolicy", "CreateGrant", "ScheduleKeyDeletion", "DisableKey"}
        assert any(all(f'"{e}"' in f["pattern"] for e in events) for f in matching), party
        metrics = {f["metricTransformation"]["name"] for f in matching if "PutKeyPolicy" in f["pattern"]}
        alarmed = [a for a in alarms if a["metricName"] in metrics]
        assert alarmed and all(a["alarmActions"] for a in alarmed), party


def _config_problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as error:
        parse(raw)
    return error.value.problems


@pytest.mark.parametrize("stack", ["dev", "banks"])
def test_an_aws_party_without_break_glass_is_refused_naming_the_field(stack: str) -> None:
    raw = read_stack(stack)
    for party in raw["collaboration"]["parties"]:
        party.pop("breakGlassPrincipal", None)
    problems = _config_problems(raw)
    assert any("breakGlassPrincipal" in p and "is required" in p for p in problems), problems


def test_the_account_root_as_break_glass_is_refused_with_the_value_and_fix() -> None:
    raw = with_break_glass("banks")
    raw["collaboration"]["parties"][0]["breakGlassPrincipal"] = ROOT_USER
    problems = _config_problems(raw)
    assert any(
        "parties[0].breakGlassPrincipal" in p and ROOT_USER in p and "role/" in p for p in problems
    ), problems
