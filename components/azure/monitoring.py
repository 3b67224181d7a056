"""Audit for a vault's keys and, for a party, its data on Azure (HIPAA 164.312(b); NIST AU-2/AU-12):
a Log Analytics workspace in the vault's region, diagnostic settings on the vault (AuditEvent:
every key release, wrap and unwrap, granted or refused) and, for a party's storage, on blob
storage; log alerts on failed key releases and on refused (401/403) access. The operator vaults
(disk and cluster keys) get the same, without storage.

Diagnostic settings are delivered over the Azure backbone, so the workspace refuses public
ingestion; queries stay Entra-authenticated. Interactive retention is capped at 730 days by Log
Analytics; longer retention is kept as the tables' total (archive) retention.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pulumi
from pulumi_azure_native import monitor, operationalinsights

from components.azure.common import child

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
        self.settings = [self._diagnostics(f"{name}-vault-audit", args.vault_id, VAULT_LOGS)]
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
        }
        self.register_outputs({"workspaceId": self.workspace.id})

    def _diagnostics(self, name: str, resource_uri: pulumi.Input[str], categories: list[str]) -> monitor.DiagnosticSetting:
        return monitor.DiagnosticSetting(
            name,
            name=name,
            resource_uri=resource_uri,
            workspace_id=self.workspace.id,
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
            tags=args.tags,
            opts=child(self),
        )
