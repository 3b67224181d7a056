"""The simulation over real recordings of the dev, hospitals and banks stacks, and over edited ones."""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

import pytest

from components.attestation.azure_release_policy import decode_release_policy, encode_release_policy
from policies.review import project
from policies.review.key_release import markdown_table, mismatches, simulate
from policies.review.key_release.simulate import cases, expected
from policies.review.mocks import Recording, run_directory
from stacks import config

ROOT = Path(__file__).resolve().parents[2]
STACKS = ("dev", "hospitals", "banks")


@lru_cache(maxsize=None)
def _recorded(stack: str) -> tuple[Recording, config.StackConfig]:
    proj = project.load(ROOT, stack)
    settings = config.parse(config.from_config_texts(proj.config))
    recording = run_directory(proj.main, project=proj.name, stack=stack, config=proj.config)
    return recording, settings


def recorded(stack: str) -> tuple[Recording, config.StackConfig]:
    """A private copy, so that a test editing a recording cannot affect another test."""
    recording, settings = _recorded(stack)
    return copy.deepcopy(recording), settings


def rows_by(rows: list[dict], party: str) -> dict[str, str]:
    return {row["case"]: row["decision"] for row in rows if row["party"] == party}


@pytest.mark.parametrize("stack", STACKS)
def test_every_party_key_behaves_as_expected_in_every_case(stack: str) -> None:
    recording, settings = recorded(stack)
    rows = simulate(recording, settings)
    assert mismatches(rows) == []
    parties = {p.name: p.cloud for p in settings.collaboration.parties}
    assert {(row["party"], row["cloud"]) for row in rows} == set(parties.items())
    for party in parties:
        assert rows_by(rows, party) == {case: expected(case) for case in cases(parties[party])}
        if parties[party] == "aws":
            assert rows_by(rows, party)["operator-repolicies-key"] == "deny"
    assert all(row["key_urn"].startswith("urn:pulumi:") for row in rows)
    assert set(rows[0]) == {"party", "cloud", "key_urn", "key_account", "case", "expected", "decision"}


def test_no_ccp_settings_no_rows() -> None:
    recording, _ = recorded("banks")
    assert simulate(recording, None) == []


def _party_key(recording: Recording, type_: str, party: str):
    for resource in recording.of_type(type_):
        tags = resource.properties.get("labels" if type_.startswith("gcp:") else "tags") or {}
        if tags.get("party") == party and "PartyDataKey" in resource.urn:
            return resource
    raise AssertionError(f"no {type_} for {party}")


def test_azure_policy_edited_to_check_only_the_attestation_type_is_caught() -> None:
    recording, settings = recorded("hospitals")
    key = _party_key(recording, "azure-native:keyvault:Key", "hospital-azure")
    release = key.properties["properties"]["releasePolicy"]
    authority = decode_release_policy(release["data"])["anyOf"][0]["authority"]
    release["data"] = encode_release_policy(
        {
            "version": "1.0.0",
            "anyOf": [
                {
                    "authority": authority,
                    # The hospitals' Azure host is a confidential container group: top-level claims.
                    "allOf": [{"claim": "x-ms-attestation-type", "equals": "sevsnpvm"}],
                }
            ],
        }
    )
    rows = simulate(recording, settings)
    decisions = rows_by(rows, "hospital-azure")
    assert decisions["approved-production"] == "release"
    assert decisions["other-collaboration"] == "release"
    assert decisions["unapproved-image"] == "release"
    assert decisions["debug-mode"] == "release"
    assert {(r["party"], r["case"]) for r in mismatches(rows)} == {
        ("hospital-azure", "other-collaboration"),
        ("hospital-azure", "unapproved-image"),
        ("hospital-azure", "debug-mode"),
        # a token of a group with another CCE policy (exec enabled) is accepted too
        ("hospital-azure", "operator-runs-code-on-host"),
    }
    assert "**MISMATCH**" in markdown_table(rows)


def test_aws_policy_without_the_attestation_deny_and_with_a_root_grant_is_caught() -> None:
    recording, settings = recorded("banks")
    key = _party_key(recording, "aws:kms/key:Key", "bank-north")
    policy = json.loads(key.properties["policy"])
    policy["Statement"] = [s for s in policy["Statement"] if s["Effect"] != "Deny"] + [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"}
    ]
    key.properties["policy"] = json.dumps(policy)
    rows = simulate(recording, settings)
    assert {(r["party"], r["case"]) for r in mismatches(rows)} == {
        ("bank-north", "no-attestation"),
        ("bank-north", "debug-mode"),
        ("bank-north", "unapproved-image"),
        ("bank-north", "other-collaboration"),
        ("bank-north", "operator-repolicies-key"),
        ("bank-north", "operator-runs-code-on-host"),
    }


def test_aws_key_administered_by_the_account_root_is_caught_as_operator_repolicy() -> None:
    # The KMS guide's default key policy: the account root may administer the key (IAM-delegated).
    recording, settings = recorded("banks")
    key = _party_key(recording, "aws:kms/key:Key", "bank-south")
    policy = json.loads(key.properties["policy"])
    policy["Statement"] = [
        s for s in policy["Statement"] if s.get("Sid") != "DenyPolicyChangeExceptBreakGlass"
    ] + [{"Sid": "EnableIAMUserPermissions", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"}]
    key.properties["policy"] = json.dumps(policy)
    rows = simulate(recording, settings)
    assert rows_by(rows, "bank-south")["operator-repolicies-key"] == "release"
    assert ("bank-south", "operator-repolicies-key") in {(r["party"], r["case"]) for r in mismatches(rows)}
    assert rows_by(rows, "bank-south")["no-attestation"] == "deny"


def test_gcp_condition_without_debug_clauses_is_caught() -> None:
    recording, settings = recorded("dev")
    (provider,) = recording.of_type("gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider")
    digest = settings.collaboration.measurements.confidential_space.image_digests[0]
    provider.properties["attributeCondition"] = (
        f"assertion.swname == 'CONFIDENTIAL_SPACE' && assertion.submods.container.image_digest == '{digest}'"
    )
    rows = simulate(recording, settings)
    assert {(r["party"], r["case"]) for r in mismatches(rows)} == {
        ("lab-gcp", "debug-mode"),
        ("lab-gcp", "other-collaboration"),
    }


def test_a_party_without_a_recorded_key_is_a_mismatch() -> None:
    recording, settings = recorded("dev")
    recording.resources = [r for r in recording.resources if not (r.type == "gcp:kms/cryptoKey:CryptoKey" and "lab-gcp" in r.name)]
    rows = simulate(recording, settings)
    assert mismatches(rows) == [
        {
            "party": "lab-gcp",
            "cloud": "gcp",
            "key_urn": None,
            "key_account": None,
            "case": "approved-production",
            "expected": "release",
            "decision": "missing-key",
        }
    ]


def test_markdown_table_lists_every_row() -> None:
    recording, settings = recorded("banks")
    rows = simulate(recording, settings)
    table = markdown_table(rows)
    assert table.count("\n") == len(rows) + 2
    assert "| bank-north | aws | approved-production | release | release |" in table
    assert markdown_table([]).startswith("_No party keys")


@pytest.mark.parametrize("stack", STACKS)
def test_only_party_data_keys_are_judged(stack: str) -> None:
    """Service keys (storage at rest, disks, audit, cluster secrets) release nothing to a workload."""
    recording, settings = recorded(stack)
    judged = {row["key_urn"] for row in simulate(recording, settings)}
    party_data = {
        r.urn
        for t in ("aws:kms/key:Key", "azure-native:keyvault:Key", "gcp:kms/cryptoKey:CryptoKey")
        for r in recording.of_type(t)
        if (r.properties.get("labels" if t.startswith("gcp:") else "tags") or {}).get("ccp-key-purpose") == "party-data"
    }
    assert judged == party_data
    assert len(party_data) == len(settings.collaboration.parties)


def test_a_party_key_without_a_purpose_is_judged_fail_closed() -> None:
    """Strip the purpose label from the GCP storage key: it is then judged as a party data key, and
    its service-agent binding releases nothing to the approved workload (a mismatch, never silence)."""
    recording, settings = recorded("dev")
    storage_key = next(r for r in recording.of_type("gcp:kms/cryptoKey:CryptoKey") if "storage-key" in r.name)
    del storage_key.properties["labels"]["ccp-key-purpose"]
    rows = [row for row in simulate(recording, settings) if row["key_urn"] == storage_key.urn]
    assert {row["case"] for row in rows} == set(cases("gcp"))
    assert {(row["case"], row["decision"]) for row in mismatches(rows)} == {("approved-production", "deny")}
