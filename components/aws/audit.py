"""Audit and monitoring for an AWS site: who used which key, and an alarm when it looks wrong.

- CloudTrail: multi-region, log file validation, KMS-encrypted (audit key), delivered to a private
  bucket and to a CloudWatch log group. AWS KMS API calls (Decrypt, GenerateDataKey, ...) are
  CloudTrail *management* events
  (https://docs.aws.amazon.com/kms/latest/developerguide/logging-using-cloudtrail.html); the
  `ManagementEventsIncludingKms` advanced selector records every management event and
  excludes no source (in particular not `kms.amazonaws.com`), and `PartyDataObjects` records S3 data events on the party buckets.
- For requests that carry a Nitro attestation document, CloudTrail adds
  `additionalEventData.recipient.attestationDocumentModuleId` (and the image digest and PCRs)
  (https://docs.aws.amazon.com/kms/latest/developerguide/ct-nitro-enclave.html): the metric filter
  for "decrypt without attestation" is a Decrypt on a party data key whose event lacks that field.
- Alarms on denied `kms:Decrypt` and on decrypts without attestation publish to an SNS topic
  encrypted with the audit key.
- One alarm per party key (the data key and the storage key, one metric filter each) on its
  administration: `PutKeyPolicy`, `CreateGrant`, `ScheduleKeyDeletion` and `DisableKey` (the
  CloudTrail `eventName`s of those KMS management calls; the key's ARN is `resources[0].ARN` of the
  event), successful or not: only the party's break-glass role may make them, so any occurrence is a
  break-glass use (or an attempt) the parties must see.
- The runtime log group (enclave host logs) is KMS-encrypted, retention from config.
- Operations (README "Operations"): metric filters for key releases granted (a Decrypt on a party data
  key whose event carries `additionalEventData.recipient`, i.e. answered to an attested enclave),
  attested requests refused (the attestation document did not match the key policy), IAM changes to
  the enclave role, and trail tampering (`StopLogging`, `DeleteTrail`, `UpdateTrail`,
  `PutEventSelectors`); an alarm on each failure/change metric and an "audit delivery stopped" alarm
  (no CloudTrail event reached the log group for an hour: missing data is breaching); all alarms
  notify the stack's SNS topic (`alarmTopicArn`, the notification channel: subscribe on-call to it).
  One CloudWatch dashboard shows every metric and the alarms' states.
- Backup (prod): the trail bucket has S3 Object Lock in COMPLIANCE mode for the log retention period,
  so no principal (the account root included) can delete or overwrite a delivered log file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Sequence

import pulumi
import pulumi_aws as aws

from components.aws.bucket import PrivateBucket, PrivateBucketArgs
from components.aws.common import Account, child, short_name, to_json
from components.aws.keys import ServiceKey, ServiceKeyArgs, admin_statement
from components.key_purpose import AUDIT

METRIC_NAMESPACE: Final = "ccp/KeyRelease"
DENIED_DECRYPT_METRIC: Final = "DeniedDecrypt"
UNATTESTED_DECRYPT_METRIC: Final = "DecryptWithoutAttestation"
KEY_ADMIN_METRIC: Final = "KeyAdministration"
# The KMS management calls that change, hand out or destroy a party key (data or storage).
KEY_ADMIN_EVENTS: Final[tuple[str, ...]] = ("PutKeyPolicy", "CreateGrant", "ScheduleKeyDeletion", "DisableKey")

KEY_RELEASE_METRIC: Final = "KeyReleaseGranted"
ATTESTED_DENIED_METRIC: Final = "AttestedDecryptDenied"
ENCLAVE_ROLE_CHANGE_METRIC: Final = "EnclaveRoleChange"
TRAIL_CHANGE_METRIC: Final = "TrailChange"
AUDIT_EVENTS_METRIC: Final = "AuditEventsDelivered"
# IAM calls that change what the enclave role may do or who may assume it.
ROLE_CHANGE_EVENTS: Final[tuple[str, ...]] = (
    "PutRolePolicy", "DeleteRolePolicy", "AttachRolePolicy", "DetachRolePolicy", "UpdateAssumeRolePolicy",
    "PutRolePermissionsBoundary", "DeleteRolePermissionsBoundary",
)
# CloudTrail calls that stop or narrow the audit trail (CIS AWS 4.5).
TRAIL_CHANGE_EVENTS: Final[tuple[str, ...]] = ("StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors")
# Every CloudTrail event has an eventVersion: the heartbeat of delivery into the log group.
ALL_EVENTS_PATTERN: Final = '{ $.eventVersion = "*" }'
AUDIT_SILENCE_PERIOD: Final = 3600

DENIED_DECRYPT_PATTERN: Final = (
    '{ ($.eventSource = "kms.amazonaws.com") && ($.eventName = "Decrypt") && '
    '(($.errorCode = "*AccessDenied*") || ($.errorCode = "*UnauthorizedOperation*")) }'
)


def unattested_decrypt_pattern(data_key_arns: Sequence[str]) -> str:
    """Decrypt / GenerateDataKey on a party data key without an attestation document in the event."""
    keys = " || ".join(f'($.resources[0].ARN = "{arn}")' for arn in sorted(data_key_arns))
    return (
        '{ ($.eventSource = "kms.amazonaws.com") && '
        '(($.eventName = "Decrypt") || ($.eventName = "GenerateDataKey*") || '
        '($.eventName = "ReEncrypt*") || ($.eventName = "DeriveSharedSecret")) && '
        "($.additionalEventData.recipient.attestationDocumentModuleId NOT EXISTS) && "
        f"({keys}) }}"
    )


def _key_clause(data_key_arns: Sequence[str]) -> str:
    return " || ".join(f'($.resources[0].ARN = "{arn}")' for arn in sorted(data_key_arns))


def key_release_pattern(data_key_arns: Sequence[str]) -> str:
    """A granted Decrypt on a party data key answered to an attested enclave (the event carries
    `additionalEventData.recipient`; `= "*"` is the filter syntax for "exists")."""
    return (
        '{ ($.eventSource = "kms.amazonaws.com") && ($.eventName = "Decrypt") && ($.errorCode NOT EXISTS) && '
        '($.additionalEventData.recipient.attestationDocumentModuleId = "*") && '
        f"({_key_clause(data_key_arns)}) }}"
    )


def attested_denied_pattern(data_key_arns: Sequence[str]) -> str:
    """A Decrypt on a party data key with an attestation document that KMS refused: the enclave's
    measurements (or role) do not match the key policy, i.e. an attestation failure."""
    return (
        '{ ($.eventSource = "kms.amazonaws.com") && ($.eventName = "Decrypt") && ($.errorCode = "*") && '
        '($.additionalEventData.recipient.attestationDocumentModuleId = "*") && '
        f"({_key_clause(data_key_arns)}) }}"
    )


def role_change_pattern(role_name: str) -> str:
    events = " || ".join(f'($.eventName = "{event}")' for event in ROLE_CHANGE_EVENTS)
    return f'{{ ($.eventSource = "iam.amazonaws.com") && ({events}) && ($.requestParameters.roleName = "{role_name}") }}'


def trail_change_pattern() -> str:
    events = " || ".join(f'($.eventName = "{event}")' for event in TRAIL_CHANGE_EVENTS)
    return f'{{ ($.eventSource = "cloudtrail.amazonaws.com") && ({events}) }}'


def key_administration_pattern(key_arn: str) -> str:
    """Any of KEY_ADMIN_EVENTS on one party key (allowed or denied)."""
    events = " || ".join(f'($.eventName = "{event}")' for event in KEY_ADMIN_EVENTS)
    return f'{{ ($.eventSource = "kms.amazonaws.com") && ({events}) && ($.resources[0].ARN = "{key_arn}") }}'


def audit_key_policy(account: Account, region: str, trail_arn: str) -> dict[str, Any]:
    """The audit key: CloudTrail encrypts the trail, CloudWatch Logs the log groups, CloudWatch
    alarms publish to the encrypted topic; account principals (IAM-delegated) may read trail logs."""
    partition, acct = account.partition, account.account_id
    return {
        "Version": "2012-10-17",
        "Statement": [
            admin_statement(account),
            {
                "Sid": "CloudTrailEncryptLogs",
                "Effect": "Allow",
                "Principal": {"Service": "cloudtrail.amazonaws.com"},
                "Action": "kms:GenerateDataKey*",
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"aws:SourceArn": trail_arn},
                    "StringLike": {
                        "kms:EncryptionContext:aws:cloudtrail:arn": f"arn:{partition}:cloudtrail:*:{acct}:trail/*"
                    },
                },
            },
            {
                "Sid": "CloudTrailDescribeKey",
                "Effect": "Allow",
                "Principal": {"Service": "cloudtrail.amazonaws.com"},
                "Action": "kms:DescribeKey",
                "Resource": "*",
            },
            {
                # Trail log files are SSE-KMS objects: reading them is an S3 GetObject, for which
                # S3 calls Decrypt on the reader's behalf; nothing else may decrypt them.
                "Sid": "AccountReadsTrailLogs",
                "Effect": "Allow",
                "Principal": {"AWS": account.root_arn},
                "Action": ["kms:Decrypt", "kms:ReEncryptFrom"],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"kms:CallerAccount": acct, "kms:ViaService": f"s3.{region}.amazonaws.com"},
                    "StringLike": {
                        "kms:EncryptionContext:aws:cloudtrail:arn": f"arn:{partition}:cloudtrail:*:{acct}:trail/*"
                    },
                },
            },
            {
                "Sid": "CloudWatchLogsEncrypt",
                "Effect": "Allow",
                "Principal": {"Service": f"logs.{region}.amazonaws.com"},
                "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                "Resource": "*",
                "Condition": {
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": f"arn:{partition}:logs:{region}:{acct}:log-group:*"
                    }
                },
            },
            {
                "Sid": "CloudWatchAlarmsPublish",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": acct}},
            },
        ],
    }


def trail_bucket_statements(bucket_arn: str, trail_arn: str, account: Account) -> list[dict[str, Any]]:
    condition = {"StringEquals": {"aws:SourceArn": trail_arn}}
    return [
        {
            "Sid": "CloudTrailAclCheck",
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": "s3:GetBucketAcl",
            "Resource": bucket_arn,
            "Condition": condition,
        },
        {
            "Sid": "CloudTrailWrite",
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": f"{bucket_arn}/AWSLogs/{account.account_id}/*",
            "Condition": {"StringEquals": {**condition["StringEquals"], "s3:x-amz-acl": "bucket-owner-full-control"}},
        },
    ]


@dataclass(frozen=True)
class AuditArgs:
    collaboration: str
    environment: str
    region: str
    account: Account
    tags: dict[str, str]
    log_retention_days: int
    data_key_arns: list[pulumi.Input[str]]
    party_bucket_arns: list[str]
    party_key_arns: dict[str, pulumi.Input[str]] = field(default_factory=dict)  # party -> data key ARN
    party_storage_key_arns: dict[str, pulumi.Input[str]] = field(default_factory=dict)  # party -> storage key ARN
    # The enclave hosts' log group; an audit that only watches a party's keys in its own account has none.
    runtime_logs: bool = True
    # Prod: the trail bucket is WORM (S3 Object Lock, COMPLIANCE, for log_retention_days).
    prod: bool = False
    # The enclave role whose IAM changes raise an alarm (None: an audit of a party's own account).
    enclave_role_name: str | None = None


class Audit(pulumi.ComponentResource):
    trail: aws.cloudtrail.Trail
    runtime_log_group: aws.cloudwatch.LogGroup | None
    alarm_topic: aws.sns.Topic
    key: aws.kms.Key

    def __init__(self, name: str, args: AuditArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:aws:Audit", name, None, opts)
        self.metrics: set[str] = set()
        self.alarm_names: list[str] = []
        account, region = args.account, args.region
        prefix = short_name("ccp", args.collaboration, args.environment)
        trail_name = short_name(prefix, "trail", limit=128)
        self.trail_arn = f"arn:{account.partition}:cloudtrail:{region}:{account.account_id}:trail/{trail_name}"
        audit_key = ServiceKey(
            f"{name}-key",
            ServiceKeyArgs(
                region=region,
                description=f"ccp audit key of {args.collaboration}/{args.environment}: trail, logs, alarms",
                purpose=AUDIT,
                policy=audit_key_policy(account, region, self.trail_arn),
                tags=args.tags,
            ),
            opts=child(self),
        )
        self.key = audit_key.key
        bucket_name = short_name(prefix, "trail", account.account_id, region)
        trail_bucket = PrivateBucket(
            f"{name}-trail",
            PrivateBucketArgs(
                region=region,
                bucket_name=bucket_name,
                bucket_arn=account.bucket_arn(bucket_name),
                tags=args.tags,
                kms_key_arn=self.key.arn,
                statements=lambda arn: trail_bucket_statements(arn, self.trail_arn, account),
                noncurrent_version_days=max(args.log_retention_days, 1),
                object_lock_days=args.log_retention_days if args.prod else None,
            ),
            opts=child(self),
        )
        trail_logs = self._log_group(f"{name}-trail", "cloudtrail", args)
        self.runtime_log_group = self._log_group(f"{name}-runtime", "runtime", args) if args.runtime_logs else None
        delivery_role = aws.iam.Role(
            f"{name}-trail-delivery",
            assume_role_policy=to_json(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "cloudtrail.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                            "Condition": {"StringEquals": {"aws:SourceArn": self.trail_arn}},
                        }
                    ],
                }
            ),
            tags=args.tags,
            opts=child(self),
        )
        aws.iam.RolePolicy(
            f"{name}-trail-delivery",
            role=delivery_role.name,
            policy=trail_logs.arn.apply(
                lambda arn: to_json(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                                "Resource": f"{arn}:log-stream:*",
                            }
                        ],
                    }
                )
            ),
            opts=child(self),
        )
        self.trail = aws.cloudtrail.Trail(
            name,
            name=trail_name,
            region=region,
            s3_bucket_name=trail_bucket.bucket.id,
            kms_key_id=self.key.arn,
            is_multi_region_trail=True,
            include_global_service_events=True,
            enable_log_file_validation=True,
            enable_logging=True,
            cloud_watch_logs_group_arn=trail_logs.arn.apply(lambda arn: f"{arn}:*"),
            cloud_watch_logs_role_arn=delivery_role.arn,
            advanced_event_selectors=self._selectors(args.party_bucket_arns),
            tags=args.tags,
            opts=child(self, depends_on=[trail_bucket.policy]),
        )
        self.alarm_topic = aws.sns.Topic(
            f"{name}-alarms",
            name=short_name(prefix, "key-release-alarms", limit=256),
            region=region,
            kms_master_key_id=self.key.arn,
            tags=args.tags,
            opts=child(self),
        )
        self._alarm(
            name, "denied-decrypt", trail_logs, DENIED_DECRYPT_PATTERN, DENIED_DECRYPT_METRIC,
            "kms:Decrypt was denied: someone tried to use a key without the right attestation or rights",
            args,
        )
        self.unattested_pattern = pulumi.Output.all(*args.data_key_arns).apply(
            lambda arns: unattested_decrypt_pattern(list(arns))
        )
        self._alarm(
            name, "unattested-decrypt", trail_logs, self.unattested_pattern, UNATTESTED_DECRYPT_METRIC,
            "a party data key was used without a Nitro attestation document",
            args,
        )
        self.release_pattern = pulumi.Output.all(*args.data_key_arns).apply(
            lambda arns: key_release_pattern(list(arns))
        )
        self._metric(name, "key-release-granted", trail_logs, self.release_pattern, KEY_RELEASE_METRIC, args)
        self.attested_denied_pattern = pulumi.Output.all(*args.data_key_arns).apply(
            lambda arns: attested_denied_pattern(list(arns))
        )
        self._alarm(
            name, "attested-decrypt-denied", trail_logs, self.attested_denied_pattern, ATTESTED_DENIED_METRIC,
            "an enclave presented an attestation document that the party key policy refused (attestation failure)",
            args,
        )
        if args.enclave_role_name is not None:
            self._alarm(
                name, "enclave-role-change", trail_logs, role_change_pattern(args.enclave_role_name),
                ENCLAVE_ROLE_CHANGE_METRIC,
                f"the IAM policies or trust of the enclave role {args.enclave_role_name} changed",
                args,
            )
        self._alarm(
            name, "trail-change", trail_logs, trail_change_pattern(), TRAIL_CHANGE_METRIC,
            f"{', '.join(TRAIL_CHANGE_EVENTS)}: the audit trail was stopped, deleted or narrowed",
            args,
        )
        self._metric(name, "audit-events", trail_logs, ALL_EVENTS_PATTERN, AUDIT_EVENTS_METRIC, args)
        delivery_alarm_name = short_name("ccp", args.collaboration, args.environment, "audit-delivery-stopped", limit=255)
        self.alarm_names.append(delivery_alarm_name)
        self.delivery_alarm = aws.cloudwatch.MetricAlarm(
            f"{name}-audit-delivery-stopped",
            name=delivery_alarm_name,
            region=args.region,
            alarm_description="no CloudTrail event reached the trail log group for an hour: audit delivery failed",
            namespace=METRIC_NAMESPACE,
            metric_name=AUDIT_EVENTS_METRIC,
            statistic="Sum",
            period=AUDIT_SILENCE_PERIOD,
            evaluation_periods=1,
            threshold=1,
            comparison_operator="LessThanThreshold",
            treat_missing_data="breaching",
            alarm_actions=[self.alarm_topic.arn],
            ok_actions=[self.alarm_topic.arn],
            tags=args.tags,
            opts=child(self),
        )
        party_keys = [(party, "", "data", arn) for party, arn in args.party_key_arns.items()] + [
            (party, "-storage", "storage", arn) for party, arn in args.party_storage_key_arns.items()
        ]
        for party, suffix, which, key_arn in sorted(party_keys, key=lambda k: (k[0], k[1])):
            self._alarm(
                name, f"key-admin-{party}{suffix}", trail_logs,
                pulumi.Output.from_input(key_arn).apply(key_administration_pattern),
                f"{KEY_ADMIN_METRIC}-{party}{suffix}",
                f"{', '.join(KEY_ADMIN_EVENTS)} on the {which} key of party {party}: only its break-glass role "
                "may do that",
                args,
            )
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=short_name("ccp", args.collaboration, args.environment, "key-release", limit=255),
            region=args.region,
            dashboard_body=to_json(
                dashboard_body(
                    args.region,
                    sorted(self.metrics),
                    [f"arn:{account.partition}:cloudwatch:{region}:{account.account_id}:alarm:{n}" for n in self.alarm_names],
                )
            ),
            opts=child(self),
        )
        self.register_outputs(
            {
                "trailArn": self.trail.arn,
                "runtimeLogGroup": self.runtime_log_group.name if self.runtime_log_group else None,
                "alarmTopicArn": self.alarm_topic.arn,
            }
        )

    def _log_group(self, resource_name: str, stream: str, args: AuditArgs) -> aws.cloudwatch.LogGroup:
        """A log group under the audit key with the stack's retention: CloudTrail and the runtime
        logs get the same protection, so neither can be the weaker copy of the evidence."""
        return aws.cloudwatch.LogGroup(
            resource_name,
            name=f"/ccp/{args.collaboration}/{args.environment}/{stream}",
            region=args.region,
            kms_key_id=self.key.arn,
            retention_in_days=args.log_retention_days,
            tags=args.tags,
            opts=child(self),
        )

    @staticmethod
    def _selectors(bucket_arns: list[str]) -> list[aws.cloudtrail.TrailAdvancedEventSelectorArgs]:
        field = aws.cloudtrail.TrailAdvancedEventSelectorFieldSelectorArgs
        # One management selector, excluding nothing: KMS calls are management events, and
        # management selectors can only *exclude* kms.amazonaws.com, never select it alone.
        selectors = [
            aws.cloudtrail.TrailAdvancedEventSelectorArgs(
                name="ManagementEventsIncludingKms",
                field_selectors=[field(field="eventCategory", equals=["Management"])],
            ),
        ]
        if bucket_arns:
            selectors.append(
                aws.cloudtrail.TrailAdvancedEventSelectorArgs(
                    name="PartyDataObjects",
                    field_selectors=[
                        field(field="eventCategory", equals=["Data"]),
                        field(field="resources.type", equals=["AWS::S3::Object"]),
                        field(field="resources.ARN", starts_withs=sorted(f"{arn}/" for arn in bucket_arns)),
                    ],
                )
            )
        return selectors

    def _metric(
        self,
        name: str,
        suffix: str,
        log_group: aws.cloudwatch.LogGroup,
        pattern: pulumi.Input[str],
        metric: str,
        args: AuditArgs,
    ) -> aws.cloudwatch.LogMetricFilter:
        self.metrics.add(metric)
        return aws.cloudwatch.LogMetricFilter(
            f"{name}-{suffix}",
            name=f"ccp-{suffix}",
            log_group_name=log_group.name,
            region=args.region,
            pattern=pattern,
            metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
                name=metric, namespace=METRIC_NAMESPACE, value="1", default_value="0"
            ),
            opts=child(self),
        )

    def _alarm(
        self,
        name: str,
        suffix: str,
        log_group: aws.cloudwatch.LogGroup,
        pattern: pulumi.Input[str],
        metric: str,
        description: str,
        args: AuditArgs,
    ) -> aws.cloudwatch.MetricAlarm:
        self._metric(name, suffix, log_group, pattern, metric, args)
        alarm_name = short_name("ccp", args.collaboration, args.environment, suffix, limit=255)
        alarm = aws.cloudwatch.MetricAlarm(
            f"{name}-{suffix}",
            name=alarm_name,
            region=args.region,
            alarm_description=description,
            namespace=METRIC_NAMESPACE,
            metric_name=metric,
            statistic="Sum",
            period=300,
            evaluation_periods=1,
            threshold=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=[self.alarm_topic.arn],
            tags=args.tags,
            opts=child(self),
        )
        self.alarm_names.append(alarm_name)
        return alarm


def dashboard_body(region: str, metrics: Sequence[str], alarm_arns: Sequence[str]) -> dict[str, Any]:
    """The CloudWatch dashboard: one graph per ccp metric (5-minute sums) and the alarms' states."""
    widgets: list[dict[str, Any]] = [
        {
            "type": "alarm",
            "x": 0, "y": 0, "width": 24, "height": 4,
            "properties": {"title": "ccp alarms", "alarms": sorted(alarm_arns)},
        }
    ]
    for index, metric in enumerate(metrics):
        widgets.append(
            {
                "type": "metric",
                "x": (index % 3) * 8, "y": 4 + (index // 3) * 6, "width": 8, "height": 6,
                "properties": {
                    "title": metric,
                    "region": region,
                    "stat": "Sum",
                    "period": 300,
                    "view": "timeSeries",
                    "metrics": [[METRIC_NAMESPACE, metric]],
                },
            }
        )
    return {"widgets": widgets}
