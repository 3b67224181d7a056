"""An AWS party's keys in the party's own account (`account` + `deployRole`: one provider per party;
issue 12, item 3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.attestation.aws_key_policy import SID_ALLOW_ENCLAVE, key_policy
from policies.review import key_release, project
from policies.review.key_release import aws as kms
from policies.review.key_release import claims
from policies.review.key_release.simulate import cases, expected
from policies.review.mocks import Recording, run_directory, unwrap
from policies.review.run import REPO_ROOT, ccp_settings
from stacks.config import ConfigError, parse, read_stack_file


ROOT = Path(__file__).resolve().parents[2]
WORKLOAD = "111122223333"
SOUTH = "444455556677"
ENCLAVE = f"arn:aws:iam::{WORKLOAD}:role/ccp-banks-fraud-prod-enclave"
DEPLOY_ROLE = f"arn:aws:iam::{SOUTH}:role/bank-south-key-deployer"
SOUTH_GLASS = f"arn:aws:iam::{SOUTH}:role/bank-south-key-break-glass"


def banks() -> dict[str, Any]:
    return read_stack_file(ROOT / "Pulumi.banks.yaml")


@pytest.fixture(scope="module")
def recorded() -> tuple[Recording, Any]:
    proj = project.load(REPO_ROOT, "banks")
    recording = run_directory(proj.main, project=proj.name, stack="banks", config=proj.config,
                              secret_keys=proj.secret_keys)
    return recording, ccp_settings(proj)


def _south(raw: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in raw["collaboration"]["parties"] if p["name"] == "bank-south")


def _provider_urn(resource: Any) -> str:
    return (resource.provider or "").rsplit("::", 1)[0]


def test_party_keys_alias_and_alarms_use_the_party_provider(recorded: tuple[Recording, Any]) -> None:
    recording, _ = recorded
    provider = recording.one("pulumi:providers:aws")
    props = unwrap(provider.properties)
    assert provider.name == "banks-fraud-aws-bank-south-provider"
    assert props["region"] == "eu-west-1"
    assert json.loads(props["allowedAccountIds"]) == [SOUTH]
    assert [r["roleArn"] for r in json.loads(props["assumeRoles"])] == [DEPLOY_ROLE]
    by_name = {r.name: r for r in recording.resources}
    for name in (
        "banks-fraud-aws-bank-south-key",  # data key (and its alias, same name, other type)
        "banks-fraud-aws-bank-south-storage-key",
        "banks-fraud-aws-bank-south-audit-key-admin-bank-south",
        "banks-fraud-aws-bank-south-audit-key-admin-bank-south-storage",
    ):
        assert _provider_urn(by_name[name]) == provider.urn, name
    alias = next(r for r in recording.of_type("aws:kms/alias:Alias") if "bank-south" in r.name)
    assert _provider_urn(alias) == provider.urn
    alarms = [r for r in recording.of_type("aws:cloudwatch/metricAlarm:MetricAlarm") if "key-admin-bank-south" in r.name]
    assert len(alarms) == 2 and all(_provider_urn(a) == provider.urn for a in alarms)
    # Children of the party's components, not of the site.
    parents = {r.urn: r for r in recording.resources}
    data_key = next(r for r in recording.of_type("aws:kms/key:Key") if r.name == "banks-fraud-aws-bank-south-key")
    assert parents[data_key.parent].type == "ccp:aws:PartyDataKey"
    storage_key = by_name["banks-fraud-aws-bank-south-storage-key"]
    assert storage_key.type == "aws:kms/key:Key"
    assert parents[parents[storage_key.parent].parent].type == "ccp:aws:PartyStorage"
    # bank-north (deploying account) and every shared resource keep the default provider.
    north = next(r for r in recording.of_type("aws:kms/key:Key") if r.name == "banks-fraud-aws-bank-north-key")
    assert north.provider is None or "bank-south" not in north.provider
    assert data_key.outputs["arn"].split(":")[4] == SOUTH
    assert north.outputs["arn"].split(":")[4] == WORKLOAD


def test_the_party_account_audit_watches_keys_only(recorded: tuple[Recording, Any]) -> None:
    """The party account runs no enclave host: its audit has a trail but no runtime log group."""
    recording, _ = recorded
    groups = [r.name for r in recording.of_type("aws:cloudwatch/logGroup:LogGroup")]
    assert "banks-fraud-aws-bank-south-audit-runtime" not in groups
    assert "banks-fraud-aws-bank-south-audit-trail" in groups
    assert "banks-fraud-aws-audit-runtime" in groups


def test_key_policy_names_the_cross_account_enclave_role(recorded: tuple[Recording, Any]) -> None:
    recording, _ = recorded
    key = next(r for r in recording.of_type("aws:kms/key:Key") if r.name == "banks-fraud-aws-bank-south-key")
    policy = json.loads(unwrap(key.properties)["policy"])
    allow = next(s for s in policy["Statement"] if s["Sid"] == SID_ALLOW_ENCLAVE)
    assert allow["Principal"] == {"AWS": ENCLAVE}
    assert allow["Condition"]["StringEquals"] == {"aws:PrincipalAccount": WORKLOAD}
    admin = next(s for s in policy["Statement"] if s["Sid"] == "KeyAdministration")
    assert admin["Principal"] == {"AWS": SOUTH_GLASS}


def test_key_policy_refuses_the_key_account_as_principal_account() -> None:
    settings = parse(banks())
    with pytest.raises(ValueError, match="aws:PrincipalAccount is the calling principal's account"):
        key_policy(
            settings.collaboration.measurements.nitro,
            account_id=SOUTH,  # the key's account: the enclave's calls would never match
            enclave_role_arn=ENCLAVE,
            admin_principal_arn=SOUTH_GLASS,
        )


def test_simulation_judges_the_cross_account_key(recorded: tuple[Recording, Any]) -> None:
    recording, settings = recorded
    rows = key_release.simulate(recording, settings)
    assert key_release.mismatches(rows) == []
    accounts = {row["party"]: row["key_account"] for row in rows}
    assert accounts == {"bank-north": WORKLOAD, "bank-south": SOUTH}
    south = {row["case"]: row["decision"] for row in rows if row["party"] == "bank-south"}
    assert south == {case: expected(case) for case in cases("aws")}
    key = next(r for r in recording.of_type("aws:kms/key:Key") if r.name == "banks-fraud-aws-bank-south-key")
    policy = json.loads(unwrap(key.properties)["policy"])
    approved = claims.nitro_pcrs(settings.collaboration.measurements, "approved")
    assert kms.approved_release(policy, ENCLAVE, approved)  # workload-account role, valid attestation
    assert not kms.release(policy, ENCLAVE, None)
    for principal in kms.operator_principals(SOUTH) + kms.operator_principals(WORKLOAD):
        assert not kms.policy_change(policy, principal), principal
    assert kms.policy_change(policy, SOUTH_GLASS)
    table = key_release.markdown_table(rows)
    assert f"`banks-fraud-aws-bank-south-key` | {SOUTH} |" in table
    assert f"`banks-fraud-aws-bank-north-key` | {WORKLOAD} |" in table


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ({"deployRole": f"arn:aws:iam::{SOUTH}:root"}, f"deployRole: 'arn:aws:iam::{SOUTH}:root' is not an IAM role ARN"),
        ({"deployRole": f"arn:aws:iam::{WORKLOAD}:role/x"}, f"is not in the party's account {SOUTH}"),
        ({"account": None}, "deployRole: '" + DEPLOY_ROLE + "' is set but account is not"),
    ],
)
def test_deploy_role_config_errors_name_the_field(edit: dict[str, Any], expected: str) -> None:
    raw = banks()
    south = _south(raw)
    for key, value in edit.items():
        if value is None:
            south.pop(key)
        else:
            south[key] = value
    if "account" in edit:
        south["breakGlassPrincipal"] = SOUTH_GLASS
    with pytest.raises(ConfigError) as caught:
        parse(raw)
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


def test_deploy_role_on_a_non_aws_party_is_refused() -> None:
    raw = read_stack_file(ROOT / "Pulumi.prod.yaml")
    azure = next(p for p in raw["collaboration"]["parties"] if p["cloud"] == "azure")
    azure["deployRole"] = DEPLOY_ROLE
    with pytest.raises(ConfigError) as caught:
        parse(raw)
    assert any("deployRole:" in p and "for AWS parties" in p for p in caught.value.problems)
