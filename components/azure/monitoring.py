"""Audit for a vault's keys and, for a party, its data on Azure (HIPAA 164.312(b); NIST AU-2/AU-12):
a Log Analytics workspace in the vault's region, diagnostic settings on the vault (AuditEvent:
every key release, wrap and unwrap, granted or refused) and, for a party's storage, on blob
storage; log alerts on failed key releases and on refused (401/403) access. The operator vaults
(disk and cluster keys) get the same, without storage.

Diagnostic settings are delivered over the Azure backbone, so the workspace refuses public
ingestion; queries stay Entra-authenticated. Interactive retention is capped at 730 days by Log
Analytics; longer retention is kept as the tables' total (archive) retention.

Operations (README "Operations"): every alert notifies the site's action group (the stack's
notification channel, `ccp-azure:alertEmails`); besides refused releases and 401/403 access, an alert
on audit ingestion errors of the workspace (`_LogOperation`, category Ingestion: diagnostic delivery
failures). One Azure Monitor workbook per workspace charts key releases granted and refused, key
changes and ingestion errors.

Immutable audit copy (prod, `archive`): the vault's diagnostic setting also delivers to a storage
account with version-level immutability (a time-based policy for the log retention period, Locked by
default, append writes allowed: diagnostic logs are append blobs), encrypted with a customer key,
reachable only by trusted Azure services (Azure Monitor delivers through that path).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import json
import uuid

import pulumi
from pulumi_azure_native import applicationinsights, monitor, operationalinsights, storage

from components.azure.common import child, hardened_storage_account

MAX_INTERACTIVE_DAYS: Final = 730
MAX_TOTAL_DAYS: Final = 4383
VAULT_LOGS: Final = ["AuditEvent"]
BLOB_LOGS: Final = ["StorageRead", "StorageWrite", "StorageDelete"]
KEY_RELEASE_FAILURES: Final = (
    'AzureDiagnostics\n| where ResourceProvider == "MICROSOFT.KEYVAULT"\n'
    '| where OperationName == "KeyRelease" and ResultType != "Success"'
)
VAULT_UNAUTHORIZED_ACCESS: Final = (
    'AzureDiagnostics\n| where ResourceProvider == "MICROSOFT.KEYVAULT" and httpStatusCode_d in (401, 403)'
)
KEY_RELEASES: Final = (
    'AzureDiagnostics\n| where ResourceProvider == "MICROSOFT.KEYVAULT" and OperationName == "KeyRelease"\n'
    '| summarize count() by ResultType, bin(TimeGenerated, 1h)'
)
# Data-plane changes of a key (its release policy is part of the key: an update replaces it).
KEY_CHANGES: Final = (
    'AzureDiagnostics\n| where ResourceProvider == "MICROSOFT.KEYVAULT"\n'
    '| where OperationName in ("KeyCreate", "KeyUpdate", "KeyImport", "KeyDelete", "KeyRotate", '
    '"KeyRotationPolicyUpdate", "KeyPurge")'
)
# The workspace's own health log: failed or throttled ingestion of diagnostic data.
INGESTION_ERRORS: Final = '_LogOperation\n| where Category == "Ingestion" and Level in ("Warning", "Error")'
UNAUTHORIZED_ACCESS: Final = (
    "union isfuzzy=true\n"
    '(AzureDiagnostics | where ResourceProvider == "MICROSOFT.KEYVAULT" and httpStatusCode_d in (401, 403)),\n'
    "(StorageBlobLogs | where StatusCode in (401, 403))"
)


@dataclass(frozen=True)
class MonitoringArgs:
    resource_group_name: pulumi.Input[str]
    location: str
    retention_days: int
    vault_id: pulumi.Input[str]
    storage_account_id: pulumi.Input[str] | None  # None: a vault without storage (operator vault)
    tags: dict[str, str]
    action_group_id: pulumi.Input[str] | None = None  # the stack's notification channel
    archive: "ArchiveArgs | None" = None  # prod: the immutable copy of the vault's audit logs


@dataclass(frozen=True)
class ArchiveArgs:
    """The immutable audit copy: a storage account encrypted with `cmk_name` of the vault at
    `vault_uri`, through `identity_id` (which already holds the key's service-encryption role)."""

    account_name: str
    cmk_name: str
    vault_uri: pulumi.Input[str]
    identity_id: pulumi.Input[str]
    retention_days: int
    lock_state: str = "Locked"
    after: tuple[pulumi.Resource, ...] = ()


class Monitoring(pulumi.ComponentResource):
    workspace: operationalinsights.Workspace
    alerts: dict[str, monitor.ScheduledQueryRule]

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:azure:Monitoring", name, None, opts)
        if args.retention_days < 1:
            raise ValueError(f"log retention {args.retention_days} days: audit logs must be kept")
        interactive = min(args.retention_days, MAX_INTERACTIVE_DAYS)
        self.workspace = operationalinsights.Workspace(
            f"{name}-logs",
            resource_group_name=args.resource_group_name,
            location=args.location,
            sku=operationalinsights.WorkspaceSkuArgs(name="PerGB2018"),
            retention_in_days=interactive,
            public_network_access_for_ingestion="Disabled",
            public_network_access_for_query="Enabled",
            features=operationalinsights.WorkspaceFeaturesArgs(disable_local_auth=True),
            tags=args.tags,
            opts=child(self),
        )
        self.archive: storage.StorageAccount | None = None
        if args.archive is not None:
            self.archive = self._archive(name, args, args.archive)
        self.settings = [
            self._diagnostics(
                f"{name}-vault-audit", args.vault_id, VAULT_LOGS,
                storage_account_id=self.archive.id if self.archive is not None else None,
            )
        ]
        tables = ["AzureDiagnostics"]
        if args.storage_account_id is not None:
            self.settings.append(
                self._diagnostics(
                    f"{name}-blob-audit",
                    pulumi.Output.from_input(args.storage_account_id).apply(lambda i: f"{i}/blobServices/default"),
                    BLOB_LOGS,
                )
            )
            tables.append("StorageBlobLogs")
        if args.retention_days > MAX_INTERACTIVE_DAYS:
            for table in tables:
                operationalinsights.Table(
                    f"{name}-{table.lower()}",
                    table_name=table,
                    workspace_name=self.workspace.name,
                    resource_group_name=args.resource_group_name,
                    retention_in_days=interactive,
                    total_retention_in_days=min(args.retention_days, MAX_TOTAL_DAYS),
                    opts=child(self),
                )
        self.alerts = {
            "key-release-failures": self._alert(
                f"{name}-key-release-failures", args,
                "A key release from this vault was refused (attestation or policy mismatch)",
                KEY_RELEASE_FAILURES, severity=1,
            ),
            "unauthorized-access": self._alert(
                f"{name}-unauthorized-access", args,
                "A caller was refused access (401/403) to this vault"
                + (" or its party's storage" if args.storage_account_id is not None else ""),
                UNAUTHORIZED_ACCESS if args.storage_account_id is not None else VAULT_UNAUTHORIZED_ACCESS,
                severity=2,
            ),
            "audit-ingestion-errors": self._alert(
                f"{name}-audit-ingestion-errors", args,
                "The audit workspace reported ingestion warnings or errors: diagnostic logs may be missing",
                INGESTION_ERRORS, severity=2,
            ),
        }
        self.workbook = applicationinsights.Workbook(
            f"{name}-workbook",
            resource_name_=str(uuid.uuid5(uuid.NAMESPACE_URL, f"ccp:{name}:workbook")),
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="shared",
            category="workbook",
            display_name=f"ccp key release: {name}",
            source_id=self.workspace.id,
            serialized_data=json.dumps(workbook(), sort_keys=True),
            tags=args.tags,
            opts=child(self),
        )
        self.register_outputs({"workspaceId": self.workspace.id})

    def _archive(self, name: str, args: MonitoringArgs, archive: ArchiveArgs) -> storage.StorageAccount:
        account = storage.StorageAccount(
            f"{name}-archive",
            account_name=archive.account_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="StorageV2",
            sku=storage.SkuArgs(name="Standard_ZRS"),
            identity=storage.IdentityArgs(type="UserAssigned", user_assigned_identities=[archive.identity_id]),
            encryption=storage.EncryptionArgs(
                key_source="Microsoft.Keyvault",
                key_vault_properties=storage.KeyVaultPropertiesArgs(key_name=archive.cmk_name, key_vault_uri=archive.vault_uri),
                encryption_identity=storage.EncryptionIdentityArgs(encryption_user_assigned_identity=archive.identity_id),
                require_infrastructure_encryption=True,
                services=storage.EncryptionServicesArgs(blob=storage.EncryptionServiceArgs(enabled=True, key_type="Account")),
            ),
            immutable_storage_with_versioning=storage.ImmutableStorageAccountArgs(
                enabled=True,
                immutability_policy=storage.AccountImmutabilityPolicyPropertiesArgs(
                    immutability_period_since_creation_in_days=archive.retention_days,
                    state=archive.lock_state,
                    allow_protected_append_writes=True,
                ),
            ),
            **hardened_storage_account(bypass="AzureServices"),
            tags=args.tags,
            opts=child(self, *archive.after),
        )
        storage.BlobServiceProperties(
            f"{name}-archive-blob",
            account_name=account.name,
            resource_group_name=args.resource_group_name,
            blob_services_name="default",
            is_versioning_enabled=True,
            opts=child(self),
        )
        return account

    def _diagnostics(
        self, name: str, resource_uri: pulumi.Input[str], categories: list[str],
        storage_account_id: pulumi.Input[str] | None = None,
    ) -> monitor.DiagnosticSetting:
        return monitor.DiagnosticSetting(
            name,
            name=name,
            resource_uri=resource_uri,
            workspace_id=self.workspace.id,
            storage_account_id=storage_account_id,
            logs=[monitor.DiagnosticsLogSettingsArgs(category=c, enabled=True) for c in categories],
            metrics=[monitor.DiagnosticsMetricSettingsArgs(category="AllMetrics", enabled=True)],
            opts=child(self),
        )

    def _alert(self, name: str, args: MonitoringArgs, description: str, query: str, *, severity: int) -> monitor.ScheduledQueryRule:
        return monitor.ScheduledQueryRule(
            name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="LogAlert",
            description=description,
            display_name=name,
            enabled=True,
            severity=severity,
            scopes=[self.workspace.id],
            evaluation_frequency="PT5M",
            window_size="PT5M",
            criteria=monitor.ScheduledQueryRuleCriteriaArgs(
                all_of=[
                    monitor.ConditionArgs(
                        query=query,
                        time_aggregation="Count",
                        operator="GreaterThan",
                        threshold=0,
                        failing_periods=monitor.ConditionFailingPeriodsArgs(
                            min_failing_periods_to_alert=1, number_of_evaluation_periods=1
                        ),
                    )
                ]
            ),
            auto_mitigate=False,
            actions=monitor.ActionsArgs(action_groups=[args.action_group_id]) if args.action_group_id is not None else None,
            tags=args.tags,
            opts=child(self),
        )


def workbook() -> dict[str, object]:
    """The Azure Monitor workbook (schema Notebook/1.0): one query chart per signal."""
    def query(title: str, kql: str, visualization: str) -> dict[str, object]:
        return {
            "type": 3,
            "name": title,
            "content": {
                "version": "KqlItem/1.0",
                "title": title,
                "query": kql,
                "size": 0,
                "timeContext": {"durationMs": 604800000},
                "queryType": 0,
                "resourceType": "microsoft.operationalinsights/workspaces",
                "visualization": visualization,
            },
        }

    return {
        "version": "Notebook/1.0",
        "items": [
            query("Key releases (granted and refused)", KEY_RELEASES, "barchart"),
            query("Refused key releases (attestation or policy mismatch)", KEY_RELEASE_FAILURES, "table"),
            query("Key and release-policy changes", KEY_CHANGES, "table"),
            query("Refused access (401/403)", VAULT_UNAUTHORIZED_ACCESS, "table"),
            query("Audit ingestion errors", INGESTION_ERRORS, "table"),
        ],
        "isLocked": False,
    }
