"""Audit and monitoring: data-access logs for Cloud KMS and STS, and alerts on denied key access.

Data-access audit logs are off by default on GCP; without them a denied (or granted) decrypt or
token exchange leaves no trace. Two log-based metrics count the failures that matter here, and an
alert policy fires on the first one:
- STS `ExchangeToken` failures: a token the provider's attestation condition rejected (wrong image,
  debug image, wrong service account) or a malformed exchange;
- Cloud KMS `Decrypt` PERMISSION_DENIED (gRPC code 7): a principal without the decrypter binding.

Operations (README "Operations"): more log-based metrics, each with an alert policy notifying the
stack's `ccp-gcp:notificationChannels` unless it is the normal path:
- key releases granted (`cloudkms.cryptoKeyVersions.useToDecrypt` granted): dashboard only;
- Cloud KMS `useToDecrypt` denied (the IAM authorization check itself, whatever the method);
- IAM policy changes (`SetIamPolicy` on keys, key rings, buckets, service accounts; workload identity
  pool provider updates: the attestation condition);
- audit export failures: the built-in `logging.googleapis.com/exports/error_count` of the audit sinks.
One Cloud Monitoring dashboard charts them all.

Immutable audit storage: each audited project exports its Cloud Audit Logs (KMS, STS, IAM) with a
sink to one audit bucket (CMEK with the site's `audit` key, no public access). Its retention policy
keeps every object for the log retention period and, in prod, is *locked*: nobody can shorten or
remove it (Object Versioning is off: Cloud Storage refuses it together with a retention policy).
"""

from __future__ import annotations

import json
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


KEY_RELEASE_GRANTED_FILTER: Final = (
    'protoPayload.serviceName="cloudkms.googleapis.com" AND '
    'protoPayload.authorizationInfo.permission="cloudkms.cryptoKeyVersions.useToDecrypt" AND '
    "protoPayload.authorizationInfo.granted=true"
)
USE_TO_DECRYPT_DENIED_FILTER: Final = (
    'protoPayload.serviceName="cloudkms.googleapis.com" AND '
    'protoPayload.authorizationInfo.permission="cloudkms.cryptoKeyVersions.useToDecrypt" AND '
    "protoPayload.authorizationInfo.granted=false"
)
IAM_POLICY_CHANGE_FILTER: Final = (
    'logName:"cloudaudit.googleapis.com%2Factivity" AND ('
    'protoPayload.methodName="SetIamPolicy" OR '
    'protoPayload.methodName:"UpdateWorkloadIdentityPoolProvider" OR '
    'protoPayload.methodName:"DeleteWorkloadIdentityPoolProvider")'
)
# What the audit sinks export: the audit logs of the services that release keys and grant access.
AUDIT_SINK_FILTER: Final = (
    'logName:"cloudaudit.googleapis.com" AND '
    'protoPayload.serviceName=("cloudkms.googleapis.com" OR "sts.googleapis.com" OR "iam.googleapis.com")'
)
SINK_ERRORS_METRIC: Final = "logging.googleapis.com/exports/error_count"
LOGGING_AGENT: Final = "gcp-sa-logging"
DAY: Final = 86400


@dataclass(frozen=True)
class AuditArchiveArgs:
    """Where the audit sinks export: one bucket in the project of the metrics (`AuditArgs.project`)."""

    bucket_name: str
    location: str
    key_id: str  # the site's `audit` ServiceKey (CMEK), bound to the Cloud Storage service agent
    after: list[pulumi.Resource]
    retention_days: int
    locked: bool  # prod: the retention policy is locked


@dataclass(frozen=True)
class AuditArgs:
    project: str  # where metrics and alerts live
    audited_projects: list[str]  # every project holding ccp keys or pools
    metric_prefix: str
    labels: dict[str, str]
    notification_channels: list[str] = field(default_factory=list)
    # audited project id -> its number (its sink's writer is its Cloud Logging service agent)
    project_numbers: dict[str, str] = field(default_factory=dict)
    archive: AuditArchiveArgs | None = None


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
        self.metrics: dict[str, gcp.logging.Metric] = {}
        self.alerts = {
            kind: self._alert(name, args, kind, log_filter, child)
            for kind, log_filter in (
                ("denied-token-exchange", DENIED_TOKEN_EXCHANGE_FILTER),
                ("kms-decrypt-denied", KMS_DECRYPT_DENIED_FILTER),
                ("use-to-decrypt-denied", USE_TO_DECRYPT_DENIED_FILTER),
                ("iam-policy-change", IAM_POLICY_CHANGE_FILTER),
            )
        }
        self._log_metric(name, args, "key-release-granted", KEY_RELEASE_GRANTED_FILTER, child)
        self.sinks: list[gcp.logging.ProjectSink] = []
        self.archive_bucket: gcp.storage.Bucket | None = None
        if args.archive is not None:
            self._archive(name, args, args.archive)
            self.alerts["audit-export-errors"] = self._policy(
                name, args, "audit-export-errors",
                f'metric.type="{SINK_ERRORS_METRIC}" AND resource.type="logging_sink"',
                "An audit sink failed to export log entries to the audit bucket: the immutable copy of the "
                "audit logs is incomplete. Check the sink's writer identity and the bucket.",
                [],
            )
        self.dashboard = gcp.monitoring.Dashboard(
            f"{name}-dashboard",
            project=args.project,
            dashboard_json=json.dumps(dashboard(args.metric_prefix, sorted(self.metrics), args.archive is not None), sort_keys=True),
            opts=child,
        )
        self.register_outputs({"alerts": [a.name for a in self.alerts.values()]})

    def _archive(self, name: str, args: AuditArgs, archive: AuditArchiveArgs) -> None:
        self.archive_bucket = gcp.storage.Bucket(
            f"{name}-archive",
            name=archive.bucket_name,
            project=args.project,
            location=archive.location,
            storage_class="STANDARD",
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            # Cloud Storage refuses Object Versioning together with a retention policy: the retention
            # policy is what keeps every object (an overwrite or delete is refused until it expires).
            versioning=gcp.storage.BucketVersioningArgs(enabled=False),
            retention_policy=gcp.storage.BucketRetentionPolicyArgs(
                retention_period=archive.retention_days * DAY, is_locked=archive.locked
            ),
            encryption=gcp.storage.BucketEncryptionArgs(default_kms_key_name=archive.key_id),
            force_destroy=False,
            labels=args.labels,
            opts=pulumi.ResourceOptions(parent=self, depends_on=archive.after, protect=archive.locked),
        )
        for project in sorted(set(args.audited_projects)):
            number = args.project_numbers.get(project)
            if number is None:
                continue
            writer = f"serviceAccount:service-{number}@{LOGGING_AGENT}.iam.gserviceaccount.com"
            grant = gcp.storage.BucketIAMMember(
                f"{name}-{project}-sink-writer",
                bucket=self.archive_bucket.name,
                role="roles/storage.objectCreator",
                member=writer,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.sinks.append(
                gcp.logging.ProjectSink(
                    f"{name}-{project}-sink",
                    name=f"{args.metric_prefix}-audit",
                    project=project,
                    destination=f"storage.googleapis.com/{archive.bucket_name}",
                    filter=AUDIT_SINK_FILTER,
                    unique_writer_identity=True,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[grant]),
                )
            )

    def _log_metric(
        self, name: str, args: AuditArgs, kind: str, log_filter: str, child: pulumi.ResourceOptions
    ) -> tuple[str, gcp.logging.Metric]:
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
        self.metrics[metric_name] = metric
        return metric_name, metric

    def _alert(
        self, name: str, args: AuditArgs, kind: str, log_filter: str, child: pulumi.ResourceOptions
    ) -> gcp.monitoring.AlertPolicy:
        metric_name, metric = self._log_metric(name, args, kind, log_filter, child)
        return self._policy(
            name, args, kind, f'metric.type="logging.googleapis.com/user/{metric_name}"',
            f"A {kind.replace('-', ' ')} was logged: a workload or principal tried to reach a party key without the "
            "approved attestation, or changed who may. Check the audit log entry.",
            [metric],
        )

    def _policy(
        self, name: str, args: AuditArgs, kind: str, metric_filter: str, content: str, after: list[pulumi.Resource]
    ) -> gcp.monitoring.AlertPolicy:
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
                        filter=metric_filter,
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
            documentation=gcp.monitoring.AlertPolicyDocumentationArgs(content=content, mime_type="text/markdown"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=after),
        )


def dashboard(prefix: str, metric_names: list[str], exports: bool) -> dict[str, object]:
    """The Cloud Monitoring dashboard: one chart per ccp log-based metric (and the sinks' export errors)."""
    types = [f"logging.googleapis.com/user/{m}" for m in metric_names]
    if exports:
        types.append(SINK_ERRORS_METRIC)
    tiles = []
    for index, metric_type in enumerate(types):
        tiles.append(
            {
                "xPos": (index % 2) * 24,
                "yPos": (index // 2) * 16,
                "width": 24,
                "height": 16,
                "widget": {
                    "title": metric_type.rsplit("/", 1)[-1],
                    "xyChart": {
                        "dataSets": [
                            {
                                "plotType": "STACKED_BARS",
                                "timeSeriesQuery": {
                                    "timeSeriesFilter": {
                                        "filter": f'metric.type="{metric_type}"',
                                        "aggregation": {"alignmentPeriod": "300s", "perSeriesAligner": "ALIGN_SUM"},
                                    }
                                },
                            }
                        ]
                    },
                },
            }
        )
    return {"displayName": f"ccp {prefix}: key release and audit", "mosaicLayout": {"columns": 48, "tiles": tiles}}
