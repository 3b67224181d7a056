"""Operations on Azure (issue 18): the stack's action group, the alerts that notify it, the workbook,
the control-plane activity-log alert and, in prod, the immutable audit copy of each vault."""

from __future__ import annotations

import json

import pytest

from components.azure import monitoring
from components.azure.options import AzureOptions
from components.azure.site import WATCHED_OPERATIONS
from policies.review.mocks import Recording

from tests.azure.test_azure_site import build, props, resource_id
from tests.support import read_stack

EMAIL = "oncall@example.org"


@pytest.fixture(scope="module")
def dev() -> Recording:
    return build(read_stack(), AzureOptions(alert_emails=(EMAIL,)))


def test_action_group_is_the_stacks_channel_and_every_alert_notifies_it(dev: Recording) -> None:
    (group,) = dev.of_type("azure-native:monitor:ActionGroup")
    p = props(group)
    assert p["location"] == "global" and p["enabled"] is True and len(p["groupShortName"]) <= 12
    assert p["emailReceivers"] == [{"name": "email-0", "emailAddress": EMAIL, "useCommonAlertSchema": True}]
    rules = [props(r) for r in dev.of_type("azure-native:monitor:ScheduledQueryRule")]
    assert rules and all(r["actions"] == {"actionGroups": [resource_id(group)]} for r in rules)
    (activity,) = [props(a) for a in dev.of_type("azure-native:monitor:ActivityLogAlert")]
    assert activity["actions"] == {"actionGroups": [{"actionGroupId": resource_id(group)}]}


def test_alert_queries_match_the_key_vault_events(dev: Recording) -> None:
    queries = {props(r)["description"]: props(r)["criteria"]["allOf"][0]["query"] for r in dev.of_type("azure-native:monitor:ScheduledQueryRule")}
    assert monitoring.KEY_RELEASE_FAILURES in queries.values()
    assert 'OperationName == "KeyRelease" and ResultType != "Success"' in monitoring.KEY_RELEASE_FAILURES
    assert monitoring.INGESTION_ERRORS in queries.values()
    assert monitoring.INGESTION_ERRORS == '_LogOperation\n| where Category == "Ingestion" and Level in ("Warning", "Error")'


def test_control_plane_changes_alert_on_keys_policies_roles_and_diagnostics(dev: Recording) -> None:
    (activity,) = [props(a) for a in dev.of_type("azure-native:monitor:ActivityLogAlert")]
    assert activity["location"] == "global" and activity["enabled"] is True
    groups = {resource_id(g) for g in dev.of_type("azure-native:resources:ResourceGroup")}
    assert set(activity["scopes"]) == groups
    category, operations = activity["condition"]["allOf"]
    assert category == {"field": "category", "equals": "Administrative"}
    assert [o["equals"] for o in operations["anyOf"]] == list(WATCHED_OPERATIONS)
    for operation in ("Microsoft.KeyVault/vaults/keys/write", "Microsoft.Authorization/roleAssignments/write",
                      "Microsoft.Insights/diagnosticSettings/delete", "Microsoft.Attestation/attestationProviders/write"):
        assert operation in WATCHED_OPERATIONS


def test_workbook_charts_releases_changes_and_ingestion_on_the_workspace(dev: Recording) -> None:
    (workbook,) = [props(w) for w in dev.of_type("azure-native:applicationinsights:Workbook")]
    (workspace,) = dev.of_type("azure-native:operationalinsights:Workspace")
    assert workbook["kind"] == "shared" and workbook["category"] == "workbook"
    assert workbook["sourceId"] == resource_id(workspace)
    items = {i["name"]: i["content"]["query"] for i in json.loads(workbook["serializedData"])["items"]}
    assert items["Key releases (granted and refused)"] == monitoring.KEY_RELEASES
    assert items["Key and release-policy changes"] == monitoring.KEY_CHANGES
    assert items["Audit ingestion errors"] == monitoring.INGESTION_ERRORS


def test_dev_has_no_audit_archive(dev: Recording) -> None:
    accounts = [props(a) for a in dev.of_type("azure-native:storage:StorageAccount")]
    assert len(accounts) == 1 and "immutableStorageWithVersioning" not in accounts[0]
    assert all("storageAccountId" not in props(d) or "blob" in d.name for d in dev.of_type("azure-native:monitor:DiagnosticSetting"))


def test_prod_vault_audit_goes_to_a_locked_immutable_cmk_archive() -> None:
    rec = build(read_stack("prod"))
    accounts = {r.name: r for r in rec.of_type("azure-native:storage:StorageAccount")}
    archives = {n: props(a) for n, a in accounts.items() if "immutableStorageWithVersioning" in props(a)}
    (name, archive), = archives.items()
    assert archive["immutableStorageWithVersioning"] == {
        "enabled": True,
        "immutabilityPolicy": {"immutabilityPeriodSinceCreationInDays": 2557, "state": "Locked", "allowProtectedAppendWrites": True},
    }
    assert archive["allowSharedKeyAccess"] is False and archive["publicNetworkAccess"] == "Disabled"
    assert archive["networkRuleSet"] == {"defaultAction": "Deny", "bypass": "AzureServices"}
    assert archive["encryption"]["keySource"] == "Microsoft.Keyvault"
    assert archive["encryption"]["keyVaultProperties"]["keyName"] == "clinic-azure-storage"
    assert archive["tags"]["party"] == "clinic-azure"
    vault_audit = [props(d) for d in rec.of_type("azure-native:monitor:DiagnosticSetting") if d.name.endswith("-vault-audit")]
    assert [d["storageAccountId"] for d in vault_audit] == [resource_id(accounts[name])]
    blob = [props(b) for b in rec.of_type("azure-native:storage:BlobServiceProperties")]
    assert blob == [{"accountName": blob[0]["accountName"], "resourceGroupName": blob[0]["resourceGroupName"],
                     "blobServicesName": "default", "isVersioningEnabled": True}]
