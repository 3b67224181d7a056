"""Security properties of every AWS component, asserted on the inputs the engine would record."""

from __future__ import annotations

import base64
import json
from typing import Any

import pulumi
import pytest

from components.attestation.aws_key_policy import IMAGE_SHA384
from enclave_runtime.measurements import NitroMeasurements
from components.aws.common import Account
from components.aws.party_key import HsmBacking, PartyDataKey, PartyDataKeyArgs
from components.aws.site import Site
from components.site import SiteArgs
from policies.review.mocks import Recording, RecordedResource, run, unwrap

from tests.support import read_stack, stack_site_args

ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/ccp-dev-demo-dev-enclave"
OWNER = f"arn:aws:iam::{ACCOUNT}:role/clinic-aws-data-owner"  # the dev party's ownerPrincipal (uploads sealed data)


def site_args(raw: dict[str, Any]) -> SiteArgs:
    return stack_site_args(raw, "aws")


def build(raw: dict[str, Any]) -> Recording:
    return run(lambda: Site("dev-demo-aws", site_args(raw)))


def props(resource: RecordedResource) -> dict[str, Any]:
    return unwrap(resource.properties)


@pytest.fixture(scope="module")
def dev() -> Recording:
    return build(read_stack())


def data_key(recording: Recording) -> RecordedResource:
    return next(r for r in recording.of_type("aws:kms/key:Key") if props(r)["tags"]["ccp-key-purpose"] == "party-data")


# --- PartyDataKey -------------------------------------------------------------------------------


def test_data_key_policy_binds_the_configured_pcrs(dev: Recording) -> None:
    key = props(data_key(dev))
    assert key["enableKeyRotation"] is True
    assert key["rotationPeriodInDays"] == 90
    assert key["multiRegion"] is False
    assert key["region"] == "eu-west-1"
    document = json.loads(key["policy"])
    statements = {s["Sid"]: s for s in document["Statement"]}
    nitro = read_stack()["collaboration"]["measurements"]["nitro"]
    assert statements["AllowDecryptByAttestedEnclave"]["Principal"] == {"AWS": ROLE}
    assert statements["AllowDecryptByAttestedEnclave"]["Condition"]["StringEqualsIgnoreCase"] == {
        IMAGE_SHA384: nitro["pcr0"],
        "kms:RecipientAttestation:PCR8": nitro["pcr8"],
    }
    assert statements["DenyDecryptWithoutAttestation"]["Condition"] == {"Null": {IMAGE_SHA384: "true"}}
    assert "AllowOwnerDecryptOutsideEnclave" not in statements
    assert not any(
        "kms:*" in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]) for s in document["Statement"]
    )


def test_data_key_alias_and_tags(dev: Recording) -> None:
    alias = props(dev.one("aws:kms/alias:Alias"))
    assert alias["name"] == "alias/ccp/clinic-aws/data"
    tags = props(data_key(dev))["tags"]
    assert tags["party"] == "clinic-aws"
    assert tags["data-classification"] == "phi"
    assert tags["collaboration"] == "dev-demo"


def test_owner_opt_in_appears_in_the_key_policy() -> None:
    raw = read_stack()
    party = raw["collaboration"]["parties"][0]
    party.update(ownerDecrypt=True, ownerPrincipal=f"arn:aws:iam::{ACCOUNT}:role/clinic-owner")
    document = json.loads(props(data_key(build(raw)))["policy"])
    statements = {s["Sid"]: s for s in document["Statement"]}
    assert statements["AllowOwnerDecryptOutsideEnclave"]["Principal"] == {
        "AWS": f"arn:aws:iam::{ACCOUNT}:role/clinic-owner"
    }
    assert statements["DenyDecryptWithoutAttestation"]["Condition"]["ArnNotEquals"] == {
        "aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/clinic-owner"
    }


def test_hsm_backed_key_uses_a_cloudhsm_custom_key_store() -> None:
    def program() -> None:
        PartyDataKey(
            "prod-key",
            PartyDataKeyArgs(
                party="clinic-aws",
                region="eu-central-1",
                account=Account(ACCOUNT),
                measurements=NitroMeasurements(pcr0="ab" * 48),
                enclave_role_arn=ROLE,
                tags={"party": "clinic-aws"},
                break_glass_principal_arn=f"arn:aws:iam::{ACCOUNT}:role/clinic-aws-key-break-glass",
                hsm=HsmBacking(
                    subnet_ids=["subnet-a", "subnet-b"],
                    availability_zones=["eu-central-1a", "eu-central-1b"],
                    trust_anchor_certificate="-----BEGIN CERTIFICATE-----",
                    key_store_password=pulumi.Output.secret("kmsuser-password"),
                ),
            ),
        )

    recording = run(program)
    cluster = props(recording.one("aws:cloudhsmv2/cluster:Cluster"))
    assert cluster["mode"] == "FIPS" and cluster["region"] == "eu-central-1"
    assert len(recording.of_type("aws:cloudhsmv2/hsm:Hsm")) == 2
    store = recording.one("aws:kms/customKeyStore:CustomKeyStore")
    assert props(store)["customKeyStoreType"] == "AWS_CLOUDHSM"
    assert store.inputs["keyStorePassword"] == "[secret]"
    key = props(recording.one("aws:kms/key:Key"))
    assert key["customKeyStoreId"] == "prod-key-keystore-id"
    assert key["enableKeyRotation"] is False  # KMS cannot rotate keys in custom key stores


# --- EnclaveHost ----------------------------------------------------------------------------------


def test_enclave_instance_is_private_imdsv2_encrypted_without_key_pair(dev: Recording) -> None:
    instance = props(dev.one("aws:ec2/instance:Instance"))
    assert instance["instanceType"] == "m6i.xlarge"
    assert instance["region"] == "eu-west-1"
    assert instance["enclaveOptions"] == {"enabled": True}
    assert instance["associatePublicIpAddress"] is False
    assert instance["metadataOptions"]["httpTokens"] == "required"
    assert instance["metadataOptions"]["httpPutResponseHopLimit"] == 1
    assert "keyName" not in instance
    assert instance["rootBlockDevice"]["encrypted"] is True
    ebs_key_arn = instance["rootBlockDevice"]["kmsKeyId"]
    assert ebs_key_arn.startswith(f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/")
    assert [(d["deviceName"], d["encrypted"], d["kmsKeyId"]) for d in instance["ebsBlockDevices"]] == [
        ("/dev/sdf", True, ebs_key_arn)
    ]
    assert instance["iamInstanceProfile"] == "ccp-dev-demo-dev-enclave"


def test_launch_template_enables_enclaves_and_writes_the_allocator(dev: Recording) -> None:
    template = props(dev.one("aws:ec2/launchTemplate:LaunchTemplate"))
    assert template["enclaveOptions"] == {"enabled": True}
    assert template["metadataOptions"]["httpTokens"] == "required"
    assert template["metadataOptions"]["httpPutResponseHopLimit"] == 1
    assert template["imageId"] == "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    assert "keyName" not in template
    assert {m["deviceName"]: (m["ebs"]["encrypted"], bool(m["ebs"]["kmsKeyId"])) for m in template["blockDeviceMappings"]} == {
        "/dev/xvda": ("true", True),
        "/dev/sdf": ("true", True),
    }
    user_data = base64.b64decode(template["userData"]).decode()
    assert "cat > /etc/nitro_enclaves/allocator.yaml" in user_data
    assert "memory_mib: 4096\ncpu_count: 2\n" in user_data
    assert "systemctl enable --now nitro-enclaves-allocator.service" in user_data


def test_enclave_role_only_touches_data_keys_with_attestation(dev: Recording) -> None:
    role = props(next(r for r in dev.of_type("aws:iam/role:Role") if props(r).get("name") == "ccp-dev-demo-dev-enclave"))
    trust = json.loads(role["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    access = next(r for r in dev.of_type("aws:iam/rolePolicy:RolePolicy") if r.name.endswith("enclave-access"))
    statements = json.loads(props(access)["policy"])["Statement"]
    key_arn = data_key(dev).outputs["arn"]
    on_data_key = [s for s in statements if key_arn in s["Resource"]]
    assert on_data_key == [
        {
            "Sid": "AttestedDataKeyUse",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": [key_arn],
            "Condition": {"Null": {IMAGE_SHA384: "false"}},
        }
    ]
    assert not any(a in ("*", "kms:*") for s in statements for a in s["Action"])
    attachments = [props(r)["policyArn"] for r in dev.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")]
    assert attachments == ["arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"]


# --- Network --------------------------------------------------------------------------------------


def test_network_is_private_with_service_endpoints(dev: Recording) -> None:
    subnets = [props(s) for s in dev.of_type("aws:ec2/subnet:Subnet")]
    assert len(subnets) == 2 and all(s["mapPublicIpOnLaunch"] is False for s in subnets)
    assert not dev.of_type("aws:ec2/internetGateway:InternetGateway")
    assert not dev.of_type("aws:ec2/natGateway:NatGateway")
    assert props(dev.one("aws:ec2/routeTable:RouteTable"))["routes"] == []
    endpoints = {props(e)["serviceName"]: props(e) for e in dev.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")}
    services = {f"com.amazonaws.eu-west-1.{s}" for s in ("kms", "ssm", "ssmmessages", "ec2messages", "logs", "sts")}
    assert set(endpoints) == services | {"com.amazonaws.eu-west-1.s3"}
    assert endpoints["com.amazonaws.eu-west-1.s3"]["vpcEndpointType"] == "Gateway"
    assert all(endpoints[s]["vpcEndpointType"] == "Interface" and endpoints[s]["privateDnsEnabled"] for s in services)


def test_no_security_group_admits_the_internet(dev: Recording) -> None:
    groups = [props(g) for g in dev.of_type("aws:ec2/securityGroup:SecurityGroup")]
    assert groups
    for group in groups:
        for rule in group.get("ingress", []):
            assert "0.0.0.0/0" not in rule.get("cidrBlocks", [])
            assert rule["fromPort"] == 443 and rule["cidrBlocks"] == ["10.20.0.0/16"]
    workload = next(g for g in groups if g["description"].startswith("Enclave hosts"))
    assert workload["ingress"] == []
    assert all("0.0.0.0/0" not in r.get("cidrBlocks", []) for r in workload["egress"])
    default = props(dev.one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"))
    assert default["ingress"] == [] and default["egress"] == []


# --- PartyStorage ---------------------------------------------------------------------------------


def _for_bucket(recording: Recording, type_: str, bucket: RecordedResource) -> dict[str, Any]:
    return next(props(r) for r in recording.of_type(type_) if props(r)["bucket"] == bucket.outputs["id"])


def test_party_bucket_is_private_versioned_and_kms_encrypted(dev: Recording) -> None:
    bucket = next(b for b in dev.of_type("aws:s3/bucket:Bucket") if props(b)["bucket"].endswith("-data-111122223333-eu-west-1"))
    assert props(bucket)["region"] == "eu-west-1"
    assert props(bucket)["tags"]["party"] == "clinic-aws"
    sse = _for_bucket(dev, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", bucket)
    rule = sse["rules"][0]
    assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    storage_key = next(r for r in dev.of_type("aws:kms/key:Key") if props(r)["tags"]["ccp-key-purpose"] == "party-storage")
    assert rule["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"] == storage_key.outputs["arn"]
    assert rule["bucketKeyEnabled"] is True
    block = _for_bucket(dev, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", bucket)
    assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    versioning = _for_bucket(dev, "aws:s3/bucketVersioning:BucketVersioning", bucket)
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    lifecycle = _for_bucket(dev, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", bucket)
    assert lifecycle["rules"][0]["noncurrentVersionExpiration"]["noncurrentDays"] == 90
    logging = _for_bucket(dev, "aws:s3/bucketLogging:BucketLogging", bucket)
    assert "access-logs" in logging["targetBucket"]


def test_party_bucket_policy_denies_plain_http_and_other_principals(dev: Recording) -> None:
    bucket = next(b for b in dev.of_type("aws:s3/bucket:Bucket") if props(b)["bucket"].endswith("-data-111122223333-eu-west-1"))
    name = props(bucket)["bucket"]
    policy = json.loads(_for_bucket(dev, "aws:s3/bucketPolicy:BucketPolicy", bucket)["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    tls = statements["DenyInsecureTransport"]
    assert tls["Effect"] == "Deny" and tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert tls["Resource"] == [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"]
    others = statements["DenyOtherPrincipals"]
    assert others["Effect"] == "Deny" and others["Principal"] == "*"
    assert others["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": [ROLE, OWNER]}}


# A minimal key-policy evaluator written from the documented semantics (KMS Developer Guide "Key
# policies" / "Default key policy"; IAM User Guide "Policy evaluation logic", "Condition operators"):
# an explicit Deny wins; a statement naming the account root (`arn:aws:iam::<account>:root`)
# delegates to IAM, i.e. admits every identity of the account that an IAM policy allows (here: an
# account administrator with AdministratorAccess); `...IfExists` matches when the key is absent; a
# non-IfExists operator does not match when the key is absent.
def _action_matches(pattern: str, action: str) -> bool:
    pattern, action = pattern.lower(), action.lower()
    return pattern in ("*", "kms:*") or pattern == action or (pattern.endswith("*") and action.startswith(pattern[:-1]))


def _condition_holds(condition: dict[str, Any], context: dict[str, str]) -> bool:
    for operator, clauses in condition.items():
        base, if_exists = operator.removesuffix("IfExists"), operator.endswith("IfExists")
        for key, wanted in clauses.items():
            values = [str(v).lower() for v in (wanted if isinstance(wanted, list) else [wanted])]
            actual = context.get(key)
            if actual is None:
                if base == "Null":
                    if values != ["true"]:
                        return False
                    continue
                if if_exists:
                    continue
                return False
            actual = actual.lower()
            if base in ("StringEquals", "StringEqualsIgnoreCase", "ArnEquals", "Bool") and actual not in values:
                return False
            if base in ("StringNotEquals", "ArnNotEquals") and actual in values:
                return False
            if base == "Null" and values != ["false"]:
                return False
    return True


def _principal_matches(statement: dict[str, Any], principal_arn: str, iam_allows: bool) -> bool:
    principal = statement["Principal"]
    if principal == "*":
        return True
    named = principal.get("AWS", [])
    for arn in named if isinstance(named, list) else [named]:
        if arn == principal_arn:
            return True
        if arn.endswith(":root") and iam_allows and arn.split(":")[4] == principal_arn.split(":")[4]:
            return True
    return False


def kms_allows(policy: dict[str, Any], action: str, principal_arn: str, context: dict[str, str], *, iam_allows: bool = True) -> bool:
    context = {"aws:PrincipalArn": principal_arn, **context}
    verdict = False
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if not any(_action_matches(a, action) for a in actions):
            continue
        if not _principal_matches(statement, principal_arn, iam_allows):
            continue
        if not _condition_holds(statement.get("Condition", {}), context):
            continue
        if statement["Effect"] == "Deny":
            return False
        verdict = True
    return verdict


STORAGE_BREAK_GLASS = f"arn:aws:iam::{ACCOUNT}:role/clinic-aws-key-break-glass"
ACCOUNT_ADMIN = f"arn:aws:iam::{ACCOUNT}:role/OrganizationAccountAccessRole"
VIA_S3 = {"kms:ViaService": "s3.eu-west-1.amazonaws.com", "kms:CallerAccount": ACCOUNT}


def storage_policy(recording: Recording) -> dict[str, Any]:
    key = next(r for r in recording.of_type("aws:kms/key:Key") if props(r)["tags"]["ccp-key-purpose"] == "party-storage")
    return json.loads(props(key)["policy"])


def test_storage_key_policy_names_no_account_root(dev: Recording) -> None:
    policy = storage_policy(dev)
    principals = [json.dumps(s.get("Principal")) for s in policy["Statement"]]
    assert not any(f"arn:aws:iam::{ACCOUNT}:root" in p or f'"{ACCOUNT}"' in p for p in principals), principals


def test_storage_key_is_administered_like_the_data_key(dev: Recording) -> None:
    storage = {s["Sid"]: s for s in storage_policy(dev)["Statement"]}
    data = {s["Sid"]: s for s in json.loads(props(data_key(dev))["policy"])["Statement"]}
    for sid in ("KeyAdministration", "DenyPolicyChangeExceptBreakGlass"):
        assert storage[sid] == data[sid], sid
    assert storage["KeyAdministration"]["Principal"] == {"AWS": STORAGE_BREAK_GLASS}
    assert storage["KeyAdministration"]["Condition"] == {"Bool": {"aws:MultiFactorAuthPresent": "true"}}


def test_storage_key_policy_change_by_an_account_principal_is_denied(dev: Recording) -> None:
    policy = storage_policy(dev)
    # an IAM administrator of the account (AdministratorAccess), with or without MFA
    for mfa in ("true", "false"):
        assert not kms_allows(policy, "kms:PutKeyPolicy", ACCOUNT_ADMIN, {"aws:MultiFactorAuthPresent": mfa})
    assert not kms_allows(policy, "kms:CreateGrant", ACCOUNT_ADMIN, {"aws:MultiFactorAuthPresent": "true"})
    # the break-glass role only in an MFA session
    assert kms_allows(policy, "kms:PutKeyPolicy", STORAGE_BREAK_GLASS, {"aws:MultiFactorAuthPresent": "true"})
    assert not kms_allows(policy, "kms:PutKeyPolicy", STORAGE_BREAK_GLASS, {"aws:MultiFactorAuthPresent": "false"})


def test_storage_key_keeps_the_s3_path_only(dev: Recording) -> None:
    policy = storage_policy(dev)
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        assert kms_allows(policy, action, ROLE, VIA_S3)
        assert not kms_allows(policy, action, ROLE, {"kms:CallerAccount": ACCOUNT})  # direct call
        assert not kms_allows(policy, action, ACCOUNT_ADMIN, VIA_S3)  # no longer delegated to IAM


def test_ebs_grant_path_survives_the_documented_exemption() -> None:
    """A party storage key that EBS uses: EBS creates a grant per volume (CreateGrant with
    kms:GrantIsForAWSResource=true, sent by EC2 on the caller's behalf; Amazon EBS User Guide,
    "Requirements for Amazon EBS encryption"). The pack accepts the Deny only with exactly that
    exemption (`BoolIfExists ... false`), which still denies PutKeyPolicy and direct grants."""
    from components.attestation.aws_key_policy import SID_DENY_POLICY_CHANGE, break_glass_statements
    from components.aws.keys import via_service_grant_statement
    from tests.policies.test_policy_rules import RESOURCE_RULES, purpose, violations

    account = Account(ACCOUNT)
    statements = break_glass_statements(STORAGE_BREAK_GLASS)
    deny = next(st for st in statements if st["Sid"] == SID_DENY_POLICY_CHANGE)
    deny["Condition"]["BoolIfExists"] = {"kms:GrantIsForAWSResource": "false"}
    policy = {"Version": "2012-10-17", "Statement": [
        *statements, via_service_grant_statement("GrantsThroughEc2", [ROLE], "ec2", "eu-west-1", account),
    ]}
    via_ec2 = {"kms:ViaService": "ec2.eu-west-1.amazonaws.com", "kms:CallerAccount": ACCOUNT}
    assert kms_allows(policy, "kms:CreateGrant", ROLE, {**via_ec2, "kms:GrantIsForAWSResource": "true"})
    assert not kms_allows(policy, "kms:CreateGrant", ROLE, {**via_ec2, "kms:GrantIsForAWSResource": "false"})
    assert not kms_allows(policy, "kms:PutKeyPolicy", ACCOUNT_ADMIN, {"aws:MultiFactorAuthPresent": "true"})
    key = {"tags": purpose("party-storage"), "policy": json.dumps(policy)}
    rule = RESOURCE_RULES["aws-kms-key-enforce-policy-change-deny"]
    assert violations(rule, "aws:kms/key:Key", key) == []
    # a plain Bool would not match PutKeyPolicy (no such key in that request): the Deny would not apply
    deny["Condition"]["Bool"] = deny["Condition"].pop("BoolIfExists")
    assert kms_allows(policy, "kms:PutKeyPolicy", ACCOUNT_ADMIN, {}, iam_allows=True) is False  # no Allow left
    assert violations(rule, "aws:kms/key:Key", {**key, "policy": json.dumps(policy)})
    # the exemption is for service keys only: a data key's Deny stays unconditional
    deny["Condition"]["BoolIfExists"] = deny["Condition"].pop("Bool")
    assert violations(rule, "aws:kms/key:Key", {"tags": purpose("party-data"), "policy": json.dumps(policy)})


def test_storage_key_is_usable_through_s3_only(dev: Recording) -> None:
    storage_key = next(r for r in dev.of_type("aws:kms/key:Key") if props(r)["tags"]["ccp-key-purpose"] == "party-storage")
    statements = {s["Sid"]: s for s in json.loads(props(storage_key)["policy"])["Statement"]}
    use = statements["UseThroughS3"]
    assert use["Principal"] == {"AWS": [ROLE, OWNER]}
    assert use["Condition"]["StringEquals"]["kms:ViaService"] == "s3.eu-west-1.amazonaws.com"


# --- Audit ----------------------------------------------------------------------------------------


def test_trail_is_multi_region_validated_encrypted_and_logs_kms(dev: Recording) -> None:
    trail = props(dev.one("aws:cloudtrail/trail:Trail"))
    assert trail["isMultiRegionTrail"] is True
    assert trail["enableLogFileValidation"] is True
    assert trail["kmsKeyId"].startswith(f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/")
    selectors = {s["name"]: s["fieldSelectors"] for s in trail["advancedEventSelectors"]}
    assert selectors["ManagementEventsIncludingKms"] == [{"field": "eventCategory", "equals": ["Management"]}]
    bucket_arn = "arn:aws:s3:::dev-demo-dev-clinic-aws-data-111122223333-eu-west-1/"
    assert {"field": "resources.ARN", "startsWiths": [bucket_arn]} in selectors["PartyDataObjects"]


def test_log_groups_encrypted_with_configured_retention(dev: Recording) -> None:
    groups = [props(g) for g in dev.of_type("aws:cloudwatch/logGroup:LogGroup")]
    assert {g["name"] for g in groups} == {"/ccp/dev-demo/dev/cloudtrail", "/ccp/dev-demo/dev/runtime"}
    assert all(g["retentionInDays"] == 30 and g["kmsKeyId"] for g in groups)


def test_alarms_on_denied_and_unattested_decrypt(dev: Recording) -> None:
    filters = {props(f)["name"]: props(f) for f in dev.of_type("aws:cloudwatch/logMetricFilter:LogMetricFilter")}
    assert '($.eventName = "Decrypt")' in filters["ccp-denied-decrypt"]["pattern"]
    assert "AccessDenied" in filters["ccp-denied-decrypt"]["pattern"]
    unattested = filters["ccp-unattested-decrypt"]["pattern"]
    assert "attestationDocumentModuleId NOT EXISTS" in unattested
    assert f'($.resources[0].ARN = "{data_key(dev).outputs["arn"]}")' in unattested
    topic = dev.one("aws:sns/topic:Topic")
    assert props(topic)["kmsMasterKeyId"]
    alarms = [props(a) for a in dev.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")]
    assert sorted(a["metricName"] for a in alarms) == [
        "AttestedDecryptDenied", "AuditEventsDelivered", "DecryptWithoutAttestation", "DeniedDecrypt",
        "EnclaveRoleChange", "KeyAdministration-clinic-aws", "KeyAdministration-clinic-aws-storage", "TrailChange",
    ]
    # Every alarm notifies the stack's channel (the encrypted SNS topic), and only it.
    assert all(a["alarmActions"] == [topic.outputs["arn"]] and a["threshold"] == 1 for a in alarms)


# --- Operations: dashboard and the alarms of issue 18 ---------------------------------------------------


def _filters(recording: Recording) -> dict[str, dict[str, Any]]:
    return {props(f)["name"]: props(f) for f in recording.of_type("aws:cloudwatch/logMetricFilter:LogMetricFilter")}


def _alarms(recording: Recording) -> dict[str, dict[str, Any]]:
    return {props(a)["metricName"]: props(a) for a in recording.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}


def test_key_release_grants_and_attestation_failures_are_counted_on_the_party_data_keys(dev: Recording) -> None:
    from components.aws.audit import attested_denied_pattern, key_release_pattern

    arn = data_key(dev).outputs["arn"]
    filters = _filters(dev)
    granted = filters["ccp-key-release-granted"]
    assert granted["pattern"] == key_release_pattern([arn]) == (
        '{ ($.eventSource = "kms.amazonaws.com") && ($.eventName = "Decrypt") && ($.errorCode NOT EXISTS) && '
        '($.additionalEventData.recipient.attestationDocumentModuleId = "*") && '
        f'(($.resources[0].ARN = "{arn}")) }}'
    )
    assert granted["metricTransformation"] == {"name": "KeyReleaseGranted", "namespace": "ccp/KeyRelease", "value": "1", "defaultValue": "0"}
    denied = filters["ccp-attested-decrypt-denied"]["pattern"]
    assert denied == attested_denied_pattern([arn])
    assert '($.errorCode = "*")' in denied and 'attestationDocumentModuleId = "*"' in denied
    # A grant is not an alarm (it is the normal path); a refused attested request is.
    alarms = _alarms(dev)
    assert "KeyReleaseGranted" not in alarms
    assert alarms["AttestedDecryptDenied"]["comparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_enclave_role_and_trail_changes_raise_alarms(dev: Recording) -> None:
    filters = _filters(dev)
    role = filters["ccp-enclave-role-change"]["pattern"]
    assert '($.eventSource = "iam.amazonaws.com")' in role
    for event in ("PutRolePolicy", "AttachRolePolicy", "UpdateAssumeRolePolicy", "DetachRolePolicy"):
        assert f'($.eventName = "{event}")' in role
    assert '($.requestParameters.roleName = "ccp-dev-demo-dev-enclave")' in role
    trail = filters["ccp-trail-change"]["pattern"]
    assert '($.eventSource = "cloudtrail.amazonaws.com")' in trail
    for event in ("StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors"):
        assert f'($.eventName = "{event}")' in trail


def test_audit_delivery_failure_alarm_breaches_on_silence(dev: Recording) -> None:
    assert _filters(dev)["ccp-audit-events"]["pattern"] == '{ $.eventVersion = "*" }'
    topic = dev.one("aws:sns/topic:Topic").outputs["arn"]
    alarm = _alarms(dev)["AuditEventsDelivered"]
    assert alarm["comparisonOperator"] == "LessThanThreshold" and alarm["threshold"] == 1
    assert alarm["treatMissingData"] == "breaching" and alarm["period"] == 3600
    assert alarm["alarmActions"] == [topic] and alarm["okActions"] == [topic]


def test_dashboard_shows_every_metric_and_every_alarm(dev: Recording) -> None:
    dashboard = props(dev.one("aws:cloudwatch/dashboard:Dashboard"))
    assert dashboard["dashboardName"] == "ccp-dev-demo-dev-key-release" and dashboard["region"] == "eu-west-1"
    body = json.loads(dashboard["dashboardBody"])
    graphed = {w["properties"]["metrics"][0][1] for w in body["widgets"] if w["type"] == "metric"}
    assert graphed == {props(f)["metricTransformation"]["name"] for f in dev.of_type("aws:cloudwatch/logMetricFilter:LogMetricFilter")}
    (alarm_widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    names = {props(a)["name"] for a in dev.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert alarm_widget["properties"]["alarms"] == sorted(f"arn:aws:cloudwatch:eu-west-1:{ACCOUNT}:alarm:{n}" for n in names)


def test_dev_trail_bucket_has_no_object_lock(dev: Recording) -> None:
    assert not dev.of_type("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")
    assert all(props(b).get("objectLockEnabled") is False for b in dev.of_type("aws:s3/bucket:Bucket"))


def test_prod_trail_bucket_is_worm_for_the_log_retention() -> None:
    recording = run(lambda: Site("prod-aws", site_args(read_stack("prod"))))
    (lock,) = [props(c) for c in recording.of_type("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")]
    assert lock["objectLockEnabled"] == "Enabled"
    assert lock["rule"] == {"defaultRetention": {"mode": "COMPLIANCE", "days": 2557}}
    trail_bucket = props(recording.one("aws:cloudtrail/trail:Trail"))["s3BucketName"]
    locked = [props(b) for b in recording.of_type("aws:s3/bucket:Bucket") if props(b).get("objectLockEnabled")]
    assert [b["bucket"] for b in locked] == [trail_bucket.removesuffix("-id")] or len(locked) == 1
    keys = [props(k) for k in recording.of_type("aws:kms/key:Key")]
    assert keys and all(k["deletionWindowInDays"] == 30 for k in keys)


# --- Site-wide --------------------------------------------------------------------------------------


def test_every_child_is_parented_and_regional_resources_carry_the_region(dev: Recording) -> None:
    urns = {r.urn for r in dev.resources}
    site = dev.one("ccp:aws:Site")
    for resource in dev.resources:
        if resource is not site:
            assert resource.parent in urns, resource.name
        if resource.custom and not resource.type.startswith("aws:iam/"):
            assert props(resource).get("region") == "eu-west-1", resource.type


def test_every_taggable_resource_has_the_required_tags(dev: Recording) -> None:
    required = {"collaboration", "environment", "managed-by", "measurements"}
    for resource in dev.resources:
        tags = props(resource).get("tags")
        if resource.custom and tags is not None:
            assert required <= set(tags), resource.type


# --- Key purposes (components/key_purpose.py) -------------------------------------------------------


def _key_tags(recording: Recording) -> dict[str, dict[str, str]]:
    return {r.name: props(r)["tags"] for r in recording.of_type("aws:kms/key:Key")}


def test_every_key_carries_its_purpose_and_owner(dev: Recording) -> None:
    tags = _key_tags(dev)
    assert {name: (t["ccp-key-purpose"], t["party"]) for name, t in tags.items()} == {
        "dev-demo-aws-clinic-aws-key": ("party-data", "clinic-aws"),
        "dev-demo-aws-clinic-aws-storage-key": ("party-storage", "clinic-aws"),
        "dev-demo-aws-audit-key": ("audit", "shared"),
        "dev-demo-aws-ebs-eu-west-1": ("disk", "shared"),
        "dev-demo-aws-eif-eu-west-1-key": ("disk", "shared"),
    }
    # Shared keys carry the most sensitive classification of the collaboration.
    assert tags["dev-demo-aws-ebs-eu-west-1"]["data-classification"] == "phi"


def _statements(resource: RecordedResource) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in json.loads(props(resource)["policy"])["Statement"]}


def _key(recording: Recording, name: str) -> RecordedResource:
    return next(r for r in recording.of_type("aws:kms/key:Key") if r.name == name)


def test_ebs_key_grants_are_a_separate_statement(dev: Recording) -> None:
    """kms:GrantIsForAWSResource exists only in grant requests: in the use statement it would refuse
    every Decrypt/GenerateDataKey EC2 makes for the volume."""
    statements = _statements(_key(dev, "dev-demo-aws-ebs-eu-west-1"))
    via = {"kms:ViaService": "ec2.eu-west-1.amazonaws.com", "kms:CallerAccount": ACCOUNT}
    use, grants = statements["UseThroughEc2"], statements["GrantsThroughEc2"]
    assert use["Condition"] == {"StringEquals": via}
    assert "kms:CreateGrant" not in use["Action"]
    assert grants["Action"] == ["kms:CreateGrant"]
    assert grants["Condition"] == {"StringEquals": via, "Bool": {"kms:GrantIsForAWSResource": "true"}}


def test_trail_logs_are_read_only_through_s3(dev: Recording) -> None:
    read = _statements(_key(dev, "dev-demo-aws-audit-key"))["AccountReadsTrailLogs"]
    assert read["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    assert read["Condition"]["StringEquals"] == {"kms:CallerAccount": ACCOUNT, "kms:ViaService": "s3.eu-west-1.amazonaws.com"}


def test_eks_secrets_key_is_usable_through_eks_only() -> None:
    raw = read_stack()
    raw["collaboration"]["workload"]["hosts"][0]["kubernetes"] = True
    recording = build(raw)
    key = next(r for r in recording.of_type("aws:kms/key:Key") if props(r)["tags"]["ccp-key-purpose"] == "cluster-secrets")
    statements = _statements(key)
    via = {"kms:ViaService": "eks.eu-west-1.amazonaws.com", "kms:CallerAccount": ACCOUNT}
    assert statements["EksControlPlaneEnvelope"]["Action"] == ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"]
    assert statements["EksControlPlaneEnvelope"]["Condition"] == {"StringEquals": via}
    assert statements["EksControlPlaneGrants"]["Condition"]["StringEquals"] == via


def test_service_key_refuses_a_party_data_purpose() -> None:
    from components.aws.keys import ServiceKey, ServiceKeyArgs

    args = ServiceKeyArgs(region="eu-west-1", description="d", purpose="party-data", policy={}, tags={})
    with pytest.raises(ValueError, match="service key's purpose"):
        ServiceKey("k", args)
