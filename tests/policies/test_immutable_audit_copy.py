"""stack-audit-enforce-immutable-copy: every link from an audit source to its immutable copy, per cloud.

The compliant case is good_stack() (test_policy_servicer.py, with `immutable_audit_copies()`); each test
below breaks one link and expects the finding that names it, on the resource a waiver would name.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pulumi.runtime import proto

from policies.zero_trust import pack
from test_policy_servicer import analyze_stack, good_stack, messages, replace, urn

RULE = "stack-audit-enforce-immutable-copy"
LOCK = "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
ARCHIVE = "azure-native:storage:StorageAccount"


def without(*names: str) -> list[tuple]:
    return [r for r in good_stack() if r[1] not in names]


def test_compliant_three_cloud_stack() -> None:
    assert RULE not in analyze_stack(good_stack())


def test_metadata_maps_the_audit_protection_controls() -> None:
    rule = next(p for p in pack.POLICIES if p.name == RULE)
    assert {"nist:AU-9", "nist:AU-11", "hipaa:164.312(b)", "gdpr:art32"} <= set(rule.tags or [])
    assert pack.INITIAL_CONFIG[RULE].value == "mandatory"
    mapping = pack.controls()
    assert RULE in mapping["nist"]["AU-9"] and RULE in mapping["nist"]["AU-11"]
    assert RULE in mapping["hipaa"]["§164.312(b)"] and RULE in mapping["gdpr"]["Art. 32"]


# --- AWS: trail -> bucket -> Object Lock --------------------------------------------------------------


def test_trail_bucket_without_object_lock() -> None:
    found = analyze_stack(without("trail-bucket-lock"))
    assert messages(found, RULE) == [
        "trail trail: its bucket trail-bucket has no Object Lock configuration (COMPLIANCE or GOVERNANCE default "
        "retention): the trail's log files can be deleted or overwritten"
    ]
    assert found[RULE][0].urn == urn("aws:cloudtrail/trail:Trail", "trail")


def test_trail_bucket_not_declared_fails_closed() -> None:
    resources = [(t, n, p, {} if n == "trail" else d) for t, n, p, d in without("trail-bucket-lock")]
    resources = replace(resources, "trail", s3BucketName="org-trail-bucket")
    assert messages(analyze_stack(resources), RULE) == [
        "trail trail: its bucket 'org-trail-bucket' is not declared in this stack, so no Object Lock on it can be shown"
    ]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"objectLockEnabled": "Disabled"}, "objectLockEnabled is 'Disabled', not 'Enabled'"),
        ({"rule": {"defaultRetention": {"days": 2192}}}, "its default retention mode is None, not one of ['COMPLIANCE', 'GOVERNANCE']"),
        ({"rule": {"defaultRetention": {"mode": "COMPLIANCE", "days": 0}}}, "its default retention has no positive days or years"),
        ({"rule": None}, "its default retention mode is None, not one of ['COMPLIANCE', 'GOVERNANCE']"),
    ],
)
def test_object_lock_that_keeps_nothing(change: dict, problem: str) -> None:
    found = analyze_stack(replace(good_stack(), "trail-bucket-lock", **change))
    assert messages(found, RULE) == [f"trail trail: Object Lock trail-bucket-lock of bucket trail-bucket: {problem}"]
    assert found[RULE][0].urn == urn(LOCK, "trail-bucket-lock")


def test_governance_mode_and_years_are_accepted() -> None:
    governance = {"defaultRetention": {"mode": "GOVERNANCE", "years": 6}}
    assert RULE not in analyze_stack(replace(good_stack(), "trail-bucket-lock", rule=governance))


def test_links_by_name_without_dependencies() -> None:
    """A trail and a lock configuration naming the bucket as a plain string (no Output) still link."""
    resources = [(t, n, p, {} if n in ("trail", "trail-bucket-lock") else d) for t, n, p, d in good_stack()]
    resources = replace(resources, "trail-bucket", bucket="ccp-trail-bucket")
    assert RULE not in analyze_stack(resources)
    resources = replace(resources, "trail-bucket-lock", bucket="another-bucket")
    assert "has no Object Lock configuration" in messages(analyze_stack(resources), RULE)[0]


# --- Azure: party vault -> diagnostic setting -> locked archive account ----------------------------


def test_vault_without_archive_destination() -> None:
    resources = [(t, n, p, {k: v for k, v in d.items() if k != "storageAccountId"}) for t, n, p, d in good_stack()]
    resources = replace(resources, "vault-audit", storageAccountId=None)
    found = analyze_stack(resources)
    assert messages(found, RULE) == [
        "vault vault: no diagnostic setting sends its audit logs to a storage account (the immutable copy); a Log "
        "Analytics workspace alone can be purged"
    ]
    assert found[RULE][0].urn == urn("azure-native:keyvault:Vault", "vault")


def test_vault_without_any_audit_setting() -> None:
    assert messages(analyze_stack(without("vault-audit")), RULE) == [
        "vault vault: no diagnostic setting sends its audit logs to a storage account (the immutable copy); a Log "
        "Analytics workspace alone can be purged"
    ]


def test_archive_account_not_declared() -> None:
    found = analyze_stack(without("az-archive"))
    assert messages(found, RULE) == [
        "vault vault: diagnostic setting vault-audit writes to storage account "
        "'/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/ccparchive01', which is not "
        "declared in this stack"
    ]


UNLOCKED = (
    "vault vault: audit archive az-archive: its immutability policy is 'Unlocked', not 'Locked': it can still be "
    "shortened or deleted (Azure creates a policy Unlocked: waive this rule for the account, with that reason, for "
    "its first deployment only)"
)


def _archive(state: str | None = "Unlocked", enabled: bool = True) -> dict:
    policy = {"immutabilityPeriodSinceCreationInDays": 2192, "allowProtectedAppendWrites": True}
    return {"enabled": enabled, "immutabilityPolicy": {**policy, **({"state": state} if state else {})}}


def test_unlocked_archive_fails_in_prod_and_a_reasoned_waiver_covers_the_first_deployment() -> None:
    resources = replace(good_stack(), "az-archive", immutableStorageWithVersioning=_archive("Unlocked"))
    found = analyze_stack(resources)
    assert messages(found, RULE) == [UNLOCKED]
    assert found[RULE][0].urn == urn(ARCHIVE, "az-archive")
    assert found[RULE][0].enforcementLevel == proto.MANDATORY
    waiver = {RULE: {"excludeFor": [{"resource": "az-archive", "reason": "first deployment: Azure creates the policy Unlocked"}]}}
    assert RULE not in analyze_stack(resources, waiver)


@pytest.mark.parametrize(
    ("archive", "problem"),
    [
        (_archive(enabled=False), "it has no version-level immutability (immutableStorageWithVersioning.enabled is not true)"),
        (_archive(state=None), "its immutability policy is None, not 'Locked'"),
        (_archive("Disabled"), "its immutability policy is 'Disabled', not 'Locked'"),
    ],
)
def test_archive_without_a_locked_policy(archive: dict, problem: str) -> None:
    (message,) = messages(analyze_stack(replace(good_stack(), "az-archive", immutableStorageWithVersioning=archive)), RULE)
    assert message.startswith(f"vault vault: audit archive az-archive: {problem}")


def test_account_without_immutability_is_no_archive() -> None:
    (message,) = messages(analyze_stack(replace(good_stack(), "az-archive", immutableStorageWithVersioning=None)), RULE)
    assert message == "vault vault: audit archive az-archive: it has no version-level immutability (immutableStorageWithVersioning.enabled is not true)"


def test_only_vaults_holding_party_keys_need_the_copy() -> None:
    from test_policy_servicer import key_tags

    operator = replace(without("vault-audit"), "az-key", tags=key_tags("clinic-azure", "disk"))
    operator = replace(operator, "az-storage-key", tags=key_tags("clinic-azure", "audit"))
    assert RULE not in analyze_stack(operator)


# --- GCP: audited project -> sink -> bucket with locked retention ---------------------------------


def test_audited_project_without_sink() -> None:
    found = analyze_stack(without("gcp-audit-sink"))
    assert messages(found, RULE) == ["project lab-project: no logging sink exports its audit logs to a Cloud Storage bucket (the immutable copy)"]
    assert found[RULE][0].urn == urn("gcp:projects/iAMAuditConfig:IAMAuditConfig", "kms-audit")


@pytest.mark.parametrize(
    "change",
    [
        {"project": "other-project"},
        {"destination": "bigquery.googleapis.com/projects/lab-project/datasets/audit"},
        {"filter": 'logName:"run.googleapis.com"'},
        {"disabled": True},
    ],
)
def test_sink_that_is_not_the_audit_copy(change: dict) -> None:
    assert messages(analyze_stack(replace(good_stack(), "gcp-audit-sink", **change)), RULE) == [
        "project lab-project: no logging sink exports its audit logs to a Cloud Storage bucket (the immutable copy)"
    ]


def test_sink_bucket_not_declared() -> None:
    assert messages(analyze_stack(without("gcp-audit-archive")), RULE) == [
        "project lab-project: sink gcp-audit-sink exports to 'storage.googleapis.com/ccp-audit-lab', a bucket not declared in this stack"
    ]


@pytest.mark.parametrize(
    ("retention", "problem"),
    [
        ({"isLocked": False, "retentionPeriod": 2192 * 86400}, "its retention policy is not locked (retentionPolicy.isLocked is not true): it can be shortened or removed"),
        ({"isLocked": True, "retentionPeriod": 0}, "its retention policy has no positive retentionPeriod"),
        (None, "its retention policy is not locked (retentionPolicy.isLocked is not true): it can be shortened or removed"),
    ],
)
def test_sink_bucket_without_locked_retention(retention: dict | None, problem: str) -> None:
    found = analyze_stack(replace(good_stack(), "gcp-audit-archive", retentionPolicy=retention))
    assert messages(found, RULE) == [f"project lab-project: audit bucket gcp-audit-archive: {problem}"]
    assert found[RULE][0].urn == urn("gcp:storage/bucket:Bucket", "gcp-audit-archive")


def test_audit_config_without_project_fails_closed() -> None:
    assert messages(analyze_stack(replace(good_stack(), "kms-audit", project=None)), RULE) == [
        "kms-audit: `project` is not set: which project's audit logs need a copy is unknown"
    ]


# --- prod only: advisory in every other environment ------------------------------------------------


def _settings(environment: str) -> SimpleNamespace:
    from stacks import config
    from test_policy_servicer import REPO

    settings = config.parse(config.read_stack_file(REPO / "Pulumi.dev.yaml"))
    return SimpleNamespace(environment=SimpleNamespace(value=environment), collaboration=settings.collaboration)


def test_advisory_outside_prod_mandatory_in_prod() -> None:
    assert pack.config_for_stack(_settings("dev"))[RULE] == {"enforcementLevel": "advisory"}
    assert RULE not in pack.config_for_stack(_settings("prod"))
    found = analyze_stack(without("trail-bucket-lock"), {RULE: {"enforcementLevel": "advisory"}})
    assert [d.enforcementLevel for d in found[RULE]] == [proto.ADVISORY]


def _as_dev(resources: list[tuple]) -> list[tuple]:
    out = []
    for t, n, p, d in resources:
        p = {**p, **{k: {**p[k], "environment": "dev"} for k in ("tags", "labels") if isinstance(p.get(k), dict) and "environment" in p[k]}}
        out.append((t, n, p, d))
    return out


def test_a_dev_stack_is_not_judged() -> None:
    """The components build the copies only in prod: a dev stack (every resource tagged so) is not judged,
    the untaggable IAMAuditConfig included."""
    assert RULE not in analyze_stack(_as_dev(without("trail-bucket-lock", "vault-audit", "gcp-audit-sink")))


def test_a_resource_tagged_dev_in_a_prod_stack_is_skipped_an_untagged_one_judged() -> None:
    from test_policy_servicer import SHARED

    resources = replace(without("trail-bucket-lock"), "trail", tags={**SHARED, "environment": "dev"})
    assert RULE not in analyze_stack(resources)
    assert "has no Object Lock configuration" in messages(analyze_stack(replace(resources, "trail", tags={})), RULE)[0]


@pytest.mark.parametrize("rule", pack.PROD_ONLY)
def test_cli_config_files_keep_prod_only_rules_advisory_in_dev_only(rule: str) -> None:
    import json

    from test_policy_servicer import REPO

    config = REPO / "policies/zero_trust/config"
    assert json.loads((config / "dev.json").read_text())[rule] == {"enforcementLevel": "advisory"}
    assert rule not in json.loads((config / "prod.json").read_text())
