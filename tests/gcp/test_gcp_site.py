"""The GCP Site under recording mocks: exact inputs, as CrossGuard and the review see them."""

from __future__ import annotations

import json

import copy
from dataclasses import replace
from typing import Any

import pytest

from components.attestation.gcp_condition import attribute_condition, digest_principal_set
from components.gcp.site import GcpSiteOptions, Site
from components.site import SiteArgs
from policies.review.fakes.gcp import PROJECT, PROJECT_NUMBER
from policies.review.mocks import Recording, RecordedResource, run, unwrap

from tests.support import read_stack, stack_site_args

DEV_DIGEST = "sha256:a0e2148f2794b7790dc9c775028636b025312d42873cff16847ef9ec0e42af08"
SA = f"ccp-cs-dev-demo@{PROJECT}.iam.gserviceaccount.com"
PRINCIPAL = digest_principal_set(PROJECT_NUMBER, "ccp-dev-demo", DEV_DIGEST)

INSTANCE = "gcp:compute/instance:Instance"
KEY = "gcp:kms/cryptoKey:CryptoKey"
KEY_MEMBER = "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"
BUCKET = "gcp:storage/bucket:Bucket"
PROVIDER = "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider"
LABELLED = {
    INSTANCE: "labels",
    "gcp:compute/instanceTemplate:InstanceTemplate": "labels",
    KEY: "labels",
    BUCKET: "labels",
    "gcp:dns/managedZone:ManagedZone": "labels",
    "gcp:monitoring/alertPolicy:AlertPolicy": "userLabels",
    "gcp:container/cluster:Cluster": "resourceLabels",
}
PLACED = {
    INSTANCE: "zone",
    "gcp:compute/instanceTemplate:InstanceTemplate": "region",
    "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager": "region",
    "gcp:compute/subnetwork:Subnetwork": "region",
    "gcp:kms/keyRing:KeyRing": "location",
    BUCKET: "location",
    "gcp:container/cluster:Cluster": "location",
    "gcp:container/nodePool:NodePool": "location",
}
REQUIRED_LABELS = {
    "collaboration",
    "environment",
    "managed-by",
    "measurements",
    "party",
    "data-classification",
}


def site_args(raw: dict[str, Any]) -> SiteArgs:
    return stack_site_args(raw, "gcp")


def build(raw: dict[str, Any] | None = None, options: GcpSiteOptions | None = None) -> tuple[Recording, Site]:
    args = site_args(raw if raw is not None else read_stack())
    built: dict[str, Site] = {}

    def program() -> None:
        built["site"] = Site(f"{args.collaboration.name}-gcp", replace(args, options=options) if options else args)

    recording = run(program)
    return recording, built["site"]


@pytest.fixture(scope="module")
def dev() -> tuple[Recording, Site]:
    return build()


def named(recording: Recording, type_: str, name: str) -> dict[str, Any]:
    """Inputs of the resource of `type_` called `name` (components share names with their main resource)."""
    found = [r for r in recording.of_type(type_) if r.name == name]
    assert len(found) == 1, (type_, name)
    return props(found[0])


def props(resource: RecordedResource) -> dict[str, Any]:
    return unwrap(resource.properties)


def gcp_host(raw: dict[str, Any], **host: Any) -> dict[str, Any]:
    """Replace the dev stack's GCP host with `host` (plus a Confidential Space host for the party key)."""
    hosts = [h for h in raw["collaboration"]["workload"]["hosts"] if h["cloud"] != "gcp"]
    hosts.append(
        {
            "cloud": "gcp",
            "region": "europe-west4",
            "tee": "confidential-space",
            "instanceType": "n2d-standard-4",
        }
    )
    hosts.append({"cloud": "gcp", "region": "europe-west1", **host})
    raw["collaboration"]["workload"]["hosts"] = hosts
    return raw


def test_site_from_dev_stack_declares_the_gcp_slice(dev: tuple[Recording, Site]) -> None:
    recording, site = dev
    types = [r.type for r in recording.resources]
    assert types.count("ccp:gcp:Site") == 1
    for component in (
        "Network",
        "WorkloadIdentity",
        "ConfidentialSpaceWorkload",
        "PartyDataKey",
        "PartyStorage",
        "Audit",
    ):
        assert types.count(f"ccp:gcp:{component}") == 1, component
    assert types.count(INSTANCE) == 1
    assert set(site.keys) == {"lab-gcp"}
    assert site.pool_id == "ccp-dev-demo"
    assert site.provider_id == "attestation-verifier"
    assert site.workload_service_account == SA
    # Nothing for the AWS or Azure parties.
    assert not [r for r in recording.resources if r.type.startswith(("aws:", "azure-native:"))]


def test_every_resource_is_inside_the_site(dev: tuple[Recording, Site]) -> None:
    recording, _ = dev
    by_urn = {r.urn: r for r in recording.resources}
    site = recording.one("ccp:gcp:Site")
    for resource in recording.resources:
        if resource is site:
            continue
        parent = resource.parent
        while parent in by_urn and parent != site.urn:
            parent = by_urn[parent].parent
        assert parent == site.urn, resource.name


def test_labels_and_placement_everywhere(dev: tuple[Recording, Site]) -> None:
    recording, _ = dev
    for resource in recording.resources:
        if resource.type in LABELLED:
            labels = props(resource).get(LABELLED[resource.type])
            assert isinstance(labels, dict) and REQUIRED_LABELS <= set(labels), resource.name
            assert all(v == v.lower() for v in labels.values()), resource.name
        if resource.type in PLACED:
            assert props(resource).get(PLACED[resource.type]), resource.name
    party_key = props(recording.named("dev-demo-gcp-lab-gcp-key-key"))
    assert party_key["labels"] == {
        "collaboration": "dev-demo",
        "environment": "dev",
        "managed-by": "ccp",
        "measurements": site_args(read_stack()).collaboration.measurements.fingerprint(),
        "party": "lab-gcp",
        "data-classification": "pii",
        "ccp-key-purpose": "party-data",
    }
    storage_key = props(recording.named("dev-demo-gcp-lab-gcp-storage-key-key"))
    assert storage_key["labels"] == {**party_key["labels"], "ccp-key-purpose": "party-storage"}
    purposes = {r.name: props(r)["labels"]["ccp-key-purpose"] for r in recording.of_type(KEY)}
    assert purposes == {
        "dev-demo-gcp-lab-gcp-key-key": "party-data",
        "dev-demo-gcp-lab-gcp-storage-key-key": "party-storage",
        "dev-demo-gcp-disks-europe-west4-key": "disk",
        "dev-demo-gcp-audit-key-key": "audit",
    }


def test_workload_identity_provider(dev: tuple[Recording, Site]) -> None:
    recording, _ = dev
    provider = props(recording.one(PROVIDER))
    measurements = site_args(read_stack()).collaboration.measurements
    assert provider["oidc"] == {
        "issuerUri": "https://confidentialcomputing.googleapis.com/",
        "allowedAudiences": ["https://sts.googleapis.com"],
    }
    assert provider["attributeCondition"] == attribute_condition(
        measurements, workload_service_account=SA, hardware_models=["GCP_AMD_SEV"]
    )
    assert provider["attributeCondition"].startswith(
        "assertion.swname == 'CONFIDENTIAL_SPACE' && assertion.dbgstat == 'disabled-since-boot' && "
        "'STABLE' in assertion.submods.confidential_space.support_attributes && "
        "assertion.hwmodel in ['GCP_AMD_SEV'] && assertion.secboot == true && "
        f"assertion.submods.container.image_digest in ['{DEV_DIGEST}'] && '{SA}' in"
    )
    assert (
        provider["attributeMapping"]["attribute.image_digest"] == "assertion.submods.container.image_digest"
    )
    assert provider["workloadIdentityPoolId"] == "ccp-dev-demo"
    assert provider["workloadIdentityPoolProviderId"] == "attestation-verifier"
    assert provider["disabled"] is False
    pool = props(recording.one("gcp:iam/workloadIdentityPool:WorkloadIdentityPool"))
    assert pool["workloadIdentityPoolId"] == "ccp-dev-demo" and pool["project"] == PROJECT


def test_party_key_decrypters_are_exactly_the_digest_principal_sets(dev: tuple[Recording, Site]) -> None:
    recording, site = dev
    key_id = site.party_keys["lab-gcp"].key_id
    assert key_id == (
        f"projects/{PROJECT}/locations/europe-west4/keyRings/dev-demo-gcp-lab-gcp-key/cryptoKeys/dev-demo-gcp-lab-gcp-key"
    )
    members = [props(r) for r in recording.of_type(KEY_MEMBER) if props(r)["cryptoKeyId"] == key_id]
    # Only the digest principal set decrypts; the party's owner may only wrap; no service agent is bound.
    assert sorted((m["role"], m["member"]) for m in members) == [
        ("roles/cloudkms.cryptoKeyDecrypter", PRINCIPAL),
        ("roles/cloudkms.cryptoKeyEncrypter", "group:data-owners@lab-gcp.example"),
    ]
    key = props(recording.named("dev-demo-gcp-lab-gcp-key-key"))
    assert key["rotationPeriod"] == "7776000s"
    assert key["purpose"] == "ENCRYPT_DECRYPT"
    assert key["versionTemplate"] == {"algorithm": "GOOGLE_SYMMETRIC_ENCRYPTION", "protectionLevel": "HSM"}
    ring = props(recording.named("dev-demo-gcp-lab-gcp-key-ring"))
    assert ring["location"] == "europe-west4"
    assert key["keyRing"] == f"projects/{PROJECT}/locations/europe-west4/keyRings/dev-demo-gcp-lab-gcp-key"


def test_party_storage_key_is_service_bound_to_the_gcs_agent(dev: tuple[Recording, Site]) -> None:
    recording, site = dev
    key_id = site.storage_keys["lab-gcp"].key_id
    assert key_id == (
        f"projects/{PROJECT}/locations/europe-west4/keyRings/dev-demo-gcp-lab-gcp-storage-key/"
        "cryptoKeys/dev-demo-gcp-lab-gcp-storage-key"
    )
    assert key_id != site.party_keys["lab-gcp"].key_id
    members = [props(r) for r in recording.of_type(KEY_MEMBER) if props(r)["cryptoKeyId"] == key_id]
    assert [(m["role"], m["member"]) for m in members] == [
        (
            "roles/cloudkms.cryptoKeyEncrypterDecrypter",
            f"serviceAccount:service-{PROJECT_NUMBER}@gs-project-accounts.iam.gserviceaccount.com",
        )
    ]
    key = props(recording.named("dev-demo-gcp-lab-gcp-storage-key-key"))
    assert key["rotationPeriod"] == "7776000s"
    assert key["versionTemplate"] == {"algorithm": "GOOGLE_SYMMETRIC_ENCRYPTION", "protectionLevel": "HSM"}
    # Both buckets wait for the agent's binding before naming the key.
    binding = next(r for r in recording.of_type(KEY_MEMBER) if props(r)["cryptoKeyId"] == key_id)
    for bucket in ("dev-demo-gcp-lab-gcp-storage-data", "dev-demo-gcp-lab-gcp-storage-logs"):
        assert binding.urn in recording.named(bucket).dependencies


def test_party_storage(dev: tuple[Recording, Site]) -> None:
    recording, site = dev
    key_id = site.storage_keys["lab-gcp"].key_id
    data = props(recording.named("dev-demo-gcp-lab-gcp-storage-data"))
    logs = props(recording.named("dev-demo-gcp-lab-gcp-storage-logs"))
    for bucket in (data, logs):
        assert bucket["location"] == "europe-west4"
        assert bucket["encryption"] == {"defaultKmsKeyName": key_id}
        assert bucket["uniformBucketLevelAccess"] is True
        assert bucket["publicAccessPrevention"] == "enforced"
        assert bucket["forceDestroy"] is False
    # Cloud Storage refuses Object Versioning with a retention policy: the log bucket keeps its objects by retention.
    assert data["versioning"] == {"enabled": True}
    assert logs["versioning"] == {"enabled": False}
    assert data["name"] == "ccp-dev-demo-lab-gcp"
    assert data["logging"] == {
        "logBucket": "ccp-dev-demo-lab-gcp-logs",
        "logObjectPrefix": "ccp-dev-demo-lab-gcp",
    }
    assert logs["retentionPolicy"] == {"retentionPeriod": 30 * 86400, "isLocked": False}
    readers = [props(r) for r in recording.of_type("gcp:storage/bucketIAMMember:BucketIAMMember") if "-audit-" not in props(r)["bucket"]]
    assert sorted((r["bucket"], r["role"], r["member"]) for r in readers) == [
        ("ccp-dev-demo-lab-gcp", "roles/storage.objectViewer", PRINCIPAL),
        (
            "ccp-dev-demo-lab-gcp-logs",
            "roles/storage.objectCreator",
            "group:cloud-storage-analytics@google.com",
        ),
    ]


def test_confidential_space_instance(dev: tuple[Recording, Site]) -> None:
    recording, site = dev
    instance = props(recording.one(INSTANCE))
    assert instance["zone"] == "europe-west4-a"
    assert instance["machineType"] == "n2d-standard-4"
    assert instance["confidentialInstanceConfig"] == {"confidentialInstanceType": "SEV"}
    assert "minCpuPlatform" not in instance
    assert instance["scheduling"] == {
        "onHostMaintenance": "TERMINATE",
        "automaticRestart": True,
        "preemptible": False,
    }
    assert instance["shieldedInstanceConfig"] == {
        "enableSecureBoot": True,
        "enableVtpm": True,
        "enableIntegrityMonitoring": True,
    }
    assert instance["bootDisk"]["initializeParams"]["image"] == (
        "projects/confidential-space-images/global/images/family/confidential-space"
    )
    assert instance["bootDisk"]["kmsKeySelfLink"] == site.disk_keys["europe-west4"].key_id
    assert instance["networkInterfaces"] == [
        {
            "subnetwork": "https://www.googleapis.com/compute/v1/projects/ccp-mock-project/regions/europe-west4/"
            "subnetworks/dev-demo-gcp-net-europe-west4"
        }
    ]
    assert instance["serviceAccount"] == {
        "email": SA,
        "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
    }
    assert instance["metadata"] == {
        "tee-image-reference": "europe-docker.pkg.dev/ccp-dev/workloads/fl-trainer@" + DEV_DIGEST,
        "tee-restart-policy": "Never",
        "tee-container-log-redirect": "true",
        "enable-oslogin": "TRUE",
        "block-project-ssh-keys": "TRUE",
        "serial-port-enable": "FALSE",
    }
    assert instance["canIpForward"] is False
    roles = sorted(
        (p["role"], p["member"]) for p in map(props, recording.of_type("gcp:projects/iAMMember:IAMMember"))
    )
    assert roles == [
        ("roles/confidentialcomputing.workloadUser", f"serviceAccount:{SA}"),
        ("roles/logging.logWriter", f"serviceAccount:{SA}"),
    ]
    account = props(recording.one("gcp:serviceaccount/account:Account"))
    assert account["accountId"] == "ccp-cs-dev-demo" and account["project"] == PROJECT
    disk_agent = [
        props(r)
        for r in recording.of_type(KEY_MEMBER)
        if props(r)["cryptoKeyId"] == site.disk_keys["europe-west4"].key_id
    ]
    assert [(m["role"], m["member"]) for m in disk_agent] == [
        (
            "roles/cloudkms.cryptoKeyEncrypterDecrypter",
            f"serviceAccount:service-{PROJECT_NUMBER}@compute-system.iam.gserviceaccount.com",
        )
    ]


def test_network(dev: tuple[Recording, Site]) -> None:
    recording, _ = dev
    vpc = props(recording.one("gcp:compute/network:Network"))
    assert vpc["autoCreateSubnetworks"] is False and vpc["deleteDefaultRoutesOnCreate"] is True
    subnet = props(recording.one("gcp:compute/subnetwork:Subnetwork"))
    assert subnet["region"] == "europe-west4"
    assert subnet["privateIpGoogleAccess"] is True
    assert subnet["logConfig"] == {
        "aggregationInterval": "INTERVAL_5_SEC",
        "flowSampling": 1.0,
        "metadata": "INCLUDE_ALL_METADATA",
    }
    routes = [props(r) for r in recording.of_type("gcp:compute/route:Route")]
    assert [(r["destRange"], r["nextHopGateway"]) for r in routes] == [
        ("199.36.153.8/30", "default-internet-gateway")
    ]
    firewalls = [props(r) for r in recording.of_type("gcp:compute/firewall:Firewall")]
    assert len(firewalls) == 1
    assert firewalls[0]["direction"] == "INGRESS"
    assert firewalls[0]["sourceRanges"] == ["0.0.0.0/0"]
    assert firewalls[0]["denies"] == [{"protocol": "all"}]
    assert "allows" not in firewalls[0]
    zones = sorted(props(r)["dnsName"] for r in recording.of_type("gcp:dns/managedZone:ManagedZone"))
    assert zones == ["googleapis.com.", "pkg.dev."]


def test_iap_ingress_only_when_asked() -> None:
    recording, _ = build(options=GcpSiteOptions(allow_iap_ssh=True))
    allows = [p for p in map(props, recording.of_type("gcp:compute/firewall:Firewall")) if "allows" in p]
    assert len(allows) == 1
    assert allows[0]["sourceRanges"] == ["35.235.240.0/20"]
    assert allows[0]["allows"] == [{"protocol": "tcp", "ports": ["22"]}]


def test_audit_and_alerts(dev: tuple[Recording, Site]) -> None:
    recording, _ = dev
    configs = sorted(
        (p["service"], tuple(c["logType"] for c in p["auditLogConfigs"]))
        for p in map(props, recording.of_type("gcp:projects/iAMAuditConfig:IAMAuditConfig"))
    )
    assert configs == [
        ("cloudkms.googleapis.com", ("ADMIN_READ", "DATA_READ", "DATA_WRITE")),
        ("sts.googleapis.com", ("ADMIN_READ", "DATA_READ", "DATA_WRITE")),
    ]
    metrics = {p["name"]: p["filter"] for p in map(props, recording.of_type("gcp:logging/metric:Metric"))}
    assert metrics == {
        "ccp-dev-demo-denied-token-exchange": 'protoPayload.serviceName="sts.googleapis.com" AND '
        'protoPayload.methodName="google.identity.sts.v1.SecurityTokenService.ExchangeToken" AND '
        "protoPayload.status.code>0",
        "ccp-dev-demo-kms-decrypt-denied": 'protoPayload.serviceName="cloudkms.googleapis.com" AND '
        'protoPayload.methodName="Decrypt" AND protoPayload.status.code=7',
        "ccp-dev-demo-use-to-decrypt-denied": 'protoPayload.serviceName="cloudkms.googleapis.com" AND '
        'protoPayload.authorizationInfo.permission="cloudkms.cryptoKeyVersions.useToDecrypt" AND '
        "protoPayload.authorizationInfo.granted=false",
        "ccp-dev-demo-key-release-granted": 'protoPayload.serviceName="cloudkms.googleapis.com" AND '
        'protoPayload.authorizationInfo.permission="cloudkms.cryptoKeyVersions.useToDecrypt" AND '
        "protoPayload.authorizationInfo.granted=true",
        "ccp-dev-demo-iam-policy-change": 'logName:"cloudaudit.googleapis.com%2Factivity" AND ('
        'protoPayload.methodName="SetIamPolicy" OR '
        'protoPayload.methodName:"UpdateWorkloadIdentityPoolProvider" OR '
        'protoPayload.methodName:"DeleteWorkloadIdentityPoolProvider")',
    }
    policies = {p["displayName"]: p for p in map(props, recording.of_type("gcp:monitoring/alertPolicy:AlertPolicy"))}
    filters = sorted(p["conditions"][0]["conditionThreshold"]["filter"] for p in policies.values())
    # A grant is the normal path: charted, never alerted. Sink export errors are the built-in metric.
    alerted = sorted(set(metrics) - {"ccp-dev-demo-key-release-granted"})
    assert filters == sorted(
        [f'metric.type="logging.googleapis.com/user/{name}"' for name in alerted]
        + ['metric.type="logging.googleapis.com/exports/error_count" AND resource.type="logging_sink"']
    )
    channels = list(GcpSiteOptions().notification_channels)
    assert all(p["notificationChannels"] == channels and p["severity"] == "CRITICAL" for p in policies.values())


def test_alert_policies_notify_the_stacks_channels() -> None:
    channel = "projects/ccp-dev-project/notificationChannels/1234567890"
    recording, _ = build(options=GcpSiteOptions(notification_channels=(channel,)))
    policies = [props(p) for p in recording.of_type("gcp:monitoring/alertPolicy:AlertPolicy")]
    assert len(policies) == 5 and all(p["notificationChannels"] == [channel] for p in policies)


def test_dashboard_charts_every_metric_and_the_export_errors(dev: tuple[Recording, Site]) -> None:
    recording, _ = dev
    board = json.loads(props(recording.one("gcp:monitoring/dashboard:Dashboard"))["dashboardJson"])
    charted = [t["widget"]["xyChart"]["dataSets"][0]["timeSeriesQuery"]["timeSeriesFilter"]["filter"] for t in board["mosaicLayout"]["tiles"]]
    metrics = sorted(props(m)["name"] for m in recording.of_type("gcp:logging/metric:Metric"))
    assert charted == [f'metric.type="logging.googleapis.com/user/{m}"' for m in metrics] + [
        'metric.type="logging.googleapis.com/exports/error_count"'
    ]


def test_audit_logs_are_exported_to_a_retained_cmek_bucket(dev: tuple[Recording, Site]) -> None:
    recording, site = dev
    (sink,) = [props(s) for s in recording.of_type("gcp:logging/projectSink:ProjectSink")]
    bucket = props(recording.named("dev-demo-gcp-audit-archive"))
    assert sink["destination"] == f"storage.googleapis.com/{bucket['name']}"
    assert sink["filter"] == (
        'logName:"cloudaudit.googleapis.com" AND '
        'protoPayload.serviceName=("cloudkms.googleapis.com" OR "sts.googleapis.com" OR "iam.googleapis.com")'
    )
    assert sink["uniqueWriterIdentity"] is True
    assert bucket["retentionPolicy"] == {"retentionPeriod": 30 * 86400, "isLocked": False}
    assert bucket["versioning"] == {"enabled": False} and bucket["publicAccessPrevention"] == "enforced"
    audit_key = props(recording.named("dev-demo-gcp-audit-key-key"))
    assert bucket["encryption"]["defaultKmsKeyName"].endswith(f"/cryptoKeys/{audit_key['name']}")
    writers = [props(m) for m in recording.of_type("gcp:storage/bucketIAMMember:BucketIAMMember") if props(m)["bucket"] == bucket["name"]]
    assert [(w["role"], w["member"]) for w in writers] == [
        ("roles/storage.objectCreator", f"serviceAccount:service-{site.project.number}@gcp-sa-logging.iam.gserviceaccount.com")
    ]


def test_prod_stack() -> None:
    recording, site = build(read_stack("prod"))
    instance = props(recording.one(INSTANCE))
    assert instance["metadata"]["tee-container-log-redirect"] == "false"
    assert instance["deletionProtection"] is True
    assert instance["bootDisk"]["initializeParams"]["image"].endswith("/family/confidential-space")
    for key in map(props, recording.of_type(KEY)):
        assert key["versionTemplate"]["protectionLevel"] == "HSM"
    principal = digest_principal_set(
        PROJECT_NUMBER,
        "ccp-prod-study",
        "sha256:60904cc3323bc0ae4cffe810b03710481e4fc7a07312ff12382dcd261a4505da",
    )
    decrypters = [
        p["member"]
        for p in map(props, recording.of_type(KEY_MEMBER))
        if p["role"] == "roles/cloudkms.cryptoKeyDecrypter"
    ]
    assert decrypters == [principal]
    assert props(recording.named("prod-study-gcp-lab-gcp-storage-logs"))["retentionPolicy"][
        "retentionPeriod"
    ] == (2557 * 86400)
    assert site.keys["lab-gcp"] is not None


def test_dev_options() -> None:
    recording, _ = build(options=GcpSiteOptions(debug_image_in_dev=True, software_keys_in_dev=True))
    instance = props(recording.one(INSTANCE))
    assert instance["bootDisk"]["initializeParams"]["image"] == (
        "projects/confidential-space-images/global/images/family/confidential-space-debug"
    )
    for key in map(props, recording.of_type(KEY)):
        assert key["versionTemplate"]["protectionLevel"] == "SOFTWARE"
    # The debug image's tokens still have to pass the same strict condition: they never do.
    assert (
        "assertion.dbgstat == 'disabled-since-boot'" in props(recording.one(PROVIDER))["attributeCondition"]
    )


def test_owner_decrypt_adds_exactly_the_owner() -> None:
    raw = read_stack()
    party = next(p for p in raw["collaboration"]["parties"] if p["cloud"] == "gcp")
    party.update(ownerDecrypt=True, ownerPrincipal="group:lab-data-owners@example.org")
    recording, _ = build(raw)
    decrypters = sorted(
        p["member"]
        for p in map(props, recording.of_type(KEY_MEMBER))
        if p["role"] == "roles/cloudkms.cryptoKeyDecrypter"
    )
    assert decrypters == ["group:lab-data-owners@example.org", PRINCIPAL]
    readers = [
        p["member"] for p in map(props, recording.of_type("gcp:storage/bucketIAMMember:BucketIAMMember"))
    ]
    assert "group:lab-data-owners@example.org" not in readers


def test_managed_group() -> None:
    recording, _ = build(options=GcpSiteOptions(managed_group=True, restart_policy="OnFailure"))
    assert recording.of_type(INSTANCE) == []
    template = props(recording.one("gcp:compute/instanceTemplate:InstanceTemplate"))
    assert template["region"] == "europe-west4"
    assert template["confidentialInstanceConfig"] == {"confidentialInstanceType": "SEV"}
    assert template["scheduling"]["onHostMaintenance"] == "TERMINATE"
    assert template["metadata"]["tee-restart-policy"] == "OnFailure"
    assert template["disks"][0]["sourceImage"].endswith(
        "confidential-space-images/global/images/family/confidential-space"
    )
    assert template["disks"][0]["diskEncryptionKey"]["kmsKeySelfLink"].endswith(
        "/cryptoKeys/dev-demo-gcp-disks-europe-west4"
    )
    assert "accessConfigs" not in template["networkInterfaces"][0]
    group = props(recording.one("gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager"))
    assert group["region"] == "europe-west4" and group["targetSize"] == 1


def test_sev_snp_confidential_vm() -> None:
    recording, _ = build(gcp_host(read_stack(), tee="sev-snp", instanceType="n2d-standard-4"))
    cvm = named(recording, INSTANCE, "dev-demo-gcp-cvm-0")
    assert cvm["zone"] == "europe-west1-a"
    assert cvm["confidentialInstanceConfig"] == {"confidentialInstanceType": "SEV_SNP"}
    assert cvm["minCpuPlatform"] == "AMD Milan"
    assert cvm["scheduling"]["onHostMaintenance"] == "TERMINATE"
    assert cvm["metadata"] == {
        "enable-oslogin": "TRUE",
        "block-project-ssh-keys": "TRUE",
        "serial-port-enable": "FALSE",
    }
    assert cvm["bootDisk"]["kmsKeySelfLink"].endswith(
        "/locations/europe-west1/keyRings/dev-demo-gcp-disks-europe-west1/cryptoKeys/dev-demo-gcp-disks-europe-west1"
    )
    assert cvm["serviceAccount"]["email"] == f"cvm-dev-demo-gcp-cvm-0@{PROJECT}.iam.gserviceaccount.com"
    assert "-compute@developer.gserviceaccount.com" not in cvm["serviceAccount"]["email"]
    assert "accessConfigs" not in cvm["networkInterfaces"][0]
    regions = sorted(props(r)["region"] for r in recording.of_type("gcp:compute/subnetwork:Subnetwork"))
    assert regions == ["europe-west1", "europe-west4"]


def test_tdx_gke_cluster() -> None:
    raw = gcp_host(read_stack(), tee="tdx", instanceType="c3-standard-4", kubernetes=True)
    raw["collaboration"]["measurements"]["tdx"] = {"mrtd": "ab" * 48}
    recording, _ = build(raw)
    cluster = props(recording.one("gcp:container/cluster:Cluster"))
    assert cluster["location"] == "europe-west1"
    assert cluster["privateClusterConfig"] == {
        "enablePrivateNodes": True,
        "enablePrivateEndpoint": True,
        "masterIpv4CidrBlock": "172.16.0.0/28",
    }
    assert cluster["confidentialNodes"] == {"enabled": True, "confidentialInstanceType": "TDX"}
    assert cluster["enableShieldedNodes"] is True
    assert cluster["workloadIdentityConfig"] == {"workloadPool": f"{PROJECT}.svc.id.goog"}
    assert cluster["databaseEncryption"] == {
        "state": "ENCRYPTED",
        "keyName": f"projects/{PROJECT}/locations/europe-west1/keyRings/dev-demo-gcp-gke-0-secrets/cryptoKeys/dev-demo-gcp-gke-0-secrets",
    }
    assert cluster["nodeConfig"]["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}
    pool = props(recording.one("gcp:container/nodePool:NodePool"))
    assert pool["location"] == "europe-west1"
    node = pool["nodeConfig"]
    assert node["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}
    assert node["confidentialNodes"] == {"enabled": True, "confidentialInstanceType": "TDX"}
    assert node["shieldedInstanceConfig"] == {"enableSecureBoot": True, "enableIntegrityMonitoring": True}
    assert node["serviceAccount"] == f"ccp-gke-dev-demo-0@{PROJECT}.iam.gserviceaccount.com"
    assert node["bootDiskKmsKey"].endswith("/cryptoKeys/dev-demo-gcp-disks-europe-west1")
    secrets_agent = [
        p["member"]
        for p in map(props, recording.of_type(KEY_MEMBER))
        if p["cryptoKeyId"].endswith("/cryptoKeys/dev-demo-gcp-gke-0-secrets")
    ]
    assert secrets_agent == [
        f"serviceAccount:service-{PROJECT_NUMBER}@container-engine-robot.iam.gserviceaccount.com"
    ]


def test_recorded_condition_admits_only_the_deployed_workload(dev: tuple[Recording, Site]) -> None:
    """End to end: the provider's recorded condition against what the deployed VM's token would carry."""
    from components.attestation.gcp_condition import evaluate_condition

    recording, _ = dev
    condition = props(recording.one(PROVIDER))["attributeCondition"]
    instance = props(recording.one(INSTANCE))
    token = {
        "swname": "CONFIDENTIAL_SPACE",
        "dbgstat": "disabled-since-boot",
        "hwmodel": "GCP_AMD_SEV",
        "secboot": True,
        "google_service_accounts": [instance["serviceAccount"]["email"]],
        "submods": {
            "confidential_space": {"support_attributes": ["LATEST", "STABLE", "USABLE"]},
            "container": {"image_digest": instance["metadata"]["tee-image-reference"].split("@", 1)[1]},
        },
    }
    assert evaluate_condition(condition, token) is True
    debug = copy.deepcopy(token)
    debug["dbgstat"] = "enabled"
    del debug["submods"]["confidential_space"]
    assert evaluate_condition(condition, debug) is False


def test_owner_without_decrypt_only_wraps_under_the_data_key() -> None:
    """The owner envelope-encrypts its content under the data key: encrypter only, never decrypter."""
    raw = read_stack()
    party = next(p for p in raw["collaboration"]["parties"] if p["cloud"] == "gcp")
    party.update(ownerPrincipal="group:lab-data-owners@example.org")
    recording, site = build(raw)
    key_id = site.party_keys["lab-gcp"].key_id
    members = sorted(
        (p["role"], p["member"]) for p in map(props, recording.of_type(KEY_MEMBER)) if p["cryptoKeyId"] == key_id
    )
    assert members == [
        ("roles/cloudkms.cryptoKeyDecrypter", PRINCIPAL),
        ("roles/cloudkms.cryptoKeyEncrypter", "group:lab-data-owners@example.org"),
    ]


def test_service_key_refuses_a_party_data_purpose() -> None:
    from components.gcp.kms import ServiceKey, ServiceKeyArgs

    args = ServiceKeyArgs(project=PROJECT, location="europe-west4", service_agents=["serviceAccount:a@b.iam.gserviceaccount.com"],
                          labels={}, purpose="party-data", prod=False)
    with pytest.raises(ValueError, match="service key's purpose"):
        ServiceKey("k", args)
