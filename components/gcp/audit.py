"""Audit and monitoring: data-access logs for Cloud KMS and STS, and alerts on denied key access.

Data-access audit logs are off by default on GCP; without them a denied (or granted) decrypt or
token exchange leaves no trace. Two log-based metrics count the failures that matter here, and an
alert policy fires on the first one:
- STS `ExchangeToken` failures: a token the provider's attestation condition rejected (wrong image,
  debug image, wrong service account) or a malformed exchange;
- Cloud KMS `Decrypt` PERMISSION_DENIED (gRPC code 7): a principal without the decrypter binding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import pulumi
import pulumi_gcp as gcp

AUDITED_SERVICES: Final = ("cloudkms.googleapis.com", "sts.googleapis.com")
LOG_TYPES: Final = ("ADMIN_READ", "DATA_READ", "DATA_WRITE")
DENIED_TOKEN_EXCHANGE_FILTER: Final = (
    'protoPayload.serviceName="sts.googleapis.com" AND '
    'protoPayload.methodName="google.identity.sts.v1.SecurityTokenService.ExchangeToken" AND '
    "protoPayload.status.code>0"
)
KMS_DECRYPT_DENIED_FILTER: Final = (
    'protoPayload.serviceName="cloudkms.googleapis.com" AND '
    'protoPayload.methodName="Decrypt" AND '
    "protoPayload.status.code=7"
)


@dataclass(frozen=True)
class AuditArgs:
    project: str  # where metrics and alerts live
    audited_projects: list[str]  # every project holding ccp keys or pools
    metric_prefix: str
    labels: dict[str, str]
    notification_channels: list[str] = field(default_factory=list)


class Audit(pulumi.ComponentResource):
    def __init__(self, name: str, args: AuditArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:gcp:Audit", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.audit_configs = [
            gcp.projects.IAMAuditConfig(
                f"{name}-{project}-{service.split('.')[0]}",
                project=project,
                service=service,
                audit_log_configs=[
                    gcp.projects.IAMAuditConfigAuditLogConfigArgs(log_type=log_type) for log_type in LOG_TYPES
                ],
                opts=child,
            )
            for project in sorted(set(args.audited_projects))
            for service in AUDITED_SERVICES
        ]
        self.alerts = {
            kind: self._alert(name, args, kind, log_filter, child)
            for kind, log_filter in (
                ("denied-token-exchange", DENIED_TOKEN_EXCHANGE_FILTER),
                ("kms-decrypt-denied", KMS_DECRYPT_DENIED_FILTER),
            )
        }
        self.register_outputs({"alerts": [a.name for a in self.alerts.values()]})

    def _alert(
        self, name: str, args: AuditArgs, kind: str, log_filter: str, child: pulumi.ResourceOptions
    ) -> gcp.monitoring.AlertPolicy:
        metric_name = f"{args.metric_prefix}-{kind}"
        metric = gcp.logging.Metric(
            f"{name}-{kind}",
            name=metric_name,
            project=args.project,
            filter=log_filter,
            description=f"ccp: {kind.replace('-', ' ')}",
            metric_descriptor=gcp.logging.MetricMetricDescriptorArgs(
                metric_kind="DELTA", value_type="INT64", unit="1"
            ),
            opts=child,
        )
        return gcp.monitoring.AlertPolicy(
            f"{name}-{kind}-alert",
            project=args.project,
            display_name=f"ccp {args.metric_prefix}: {kind.replace('-', ' ')}",
            combiner="OR",
            severity="CRITICAL",
            enabled=True,
            notification_channels=args.notification_channels,
            user_labels=args.labels,
            conditions=[
                gcp.monitoring.AlertPolicyConditionArgs(
                    display_name=f"{kind} > 0",
                    condition_threshold=gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
                        filter=f'metric.type="logging.googleapis.com/user/{metric_name}"',
                        comparison="COMPARISON_GT",
                        threshold_value=0,
                        duration="0s",
                        aggregations=[
                            gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
                                alignment_period="300s", per_series_aligner="ALIGN_SUM"
                            )
                        ],
                    ),
                )
            ],
            documentation=gcp.monitoring.AlertPolicyDocumentationArgs(
                content=(
                    f"A {kind.replace('-', ' ')} was logged: a workload or principal tried to reach a "
                    "party key without the approved attestation. Check the audit log entry."
                ),
                mime_type="text/markdown",
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[metric]),
        )
