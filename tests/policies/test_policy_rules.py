"""Layer 1: every zero-trust resource rule called directly with `unknown_checking_proxy` props.

Each rule has a compliant case (no violation), a non-compliant case (a violation whose message
names the problem) and a missing-property case (fail closed: a violation, never silence).
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
from pulumi_policy import ResourceValidationArgs
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy, UNKNOWN_STRING_VALUE

from policies.zero_trust.pack import POLICIES
from policies.zero_trust.rules._base import ZeroTrustResourcePolicy

from tests.policies import kubernetes_cases

PCR0 = "ab" * 48
ZERO = "0" * 96
DIGEST = "sha256:" + "a1" * 32
ROLE = "arn:aws:iam::111122223333:role/enclave"
ADMIN = "arn:aws:iam::111122223333:role/admin"
BYPASS = ["kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyPair", "kms:ReEncryptFrom", "kms:DeriveSharedSecret"]
DEV = {"environment": "dev"}
PROD = {"environment": "prod"}


def kms_policy(*, pcr: str = PCR0, deny: bool = True, extra: list[dict] | None = None) -> str:
    statements = [
        {
            "Sid": "AllowDecryptByAttestedEnclave",
            "Effect": "Allow",
            "Principal": {"AWS": ROLE},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": "*",
            "Condition": {"StringEqualsIgnoreCase": {"kms:RecipientAttestation:ImageSha384": pcr}},
        },
        {
            "Sid": "AllowKeyAdministration",
            "Effect": "Allow",
            "Principal": {"AWS": ADMIN},
            "Action": ["kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:DescribeKey"],
            "Resource": "*",
        },
    ]
    if deny:
        statements.append(
            {
                "Sid": "DenyDecryptWithoutAttestation",
                "Effect": "Deny",
                "Principal": "*",
                "Action": BYPASS,
                "Resource": "*",
                "Condition": {"Null": {"kms:RecipientAttestation:ImageSha384": "true"}},
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements + (extra or [])})


def purpose(value: str) -> dict[str, str]:
    return {**PROD, "ccp-key-purpose": value}


def service_policy(*statements: dict[str, Any]) -> str:
    admin = {"Sid": "KeyAdministration", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": ["kms:PutKeyPolicy", "kms:DescribeKey"], "Resource": "*"}
    return json.dumps({"Version": "2012-10-17", "Statement": [admin, *statements]})


VIA_S3 = {
    "Sid": "UseThroughS3", "Effect": "Allow", "Principal": {"AWS": ROLE},
    "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"], "Resource": "*",
    "Condition": {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com", "kms:CallerAccount": "111122223333"}},
}
DIRECT_USE = {"Sid": "DirectUse", "Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*"}
SERVICE_KEY = {"tags": purpose("party-storage"), "policy": service_policy(VIA_S3)}
ROOT_ALL = {"Sid": "EnableRoot", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"}
# The KMS guide's "Default key policy" root statement, and the IAM User Guide's recommended
# "deny everyone except one principal" shape (ArnNotEquals on aws:PrincipalArn, not NotPrincipal).
ROOT_ADMIN = {"Sid": "KeyAdministration", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": ["kms:PutKeyPolicy", "kms:ScheduleKeyDeletion"], "Resource": "*"}
BREAK_GLASS = "arn:aws:iam::111122223333:role/key-break-glass"
DENY_CHANGE = {"Sid": "DenyPolicyChange", "Effect": "Deny", "Principal": "*", "Action": ["kms:PutKeyPolicy", "kms:CreateGrant"], "Resource": "*", "Condition": {"ArnNotEquals": {"aws:PrincipalArn": BREAK_GLASS}}}
OWNER = {"Sid": "AllowOwnerDecryptOutsideEnclave", "Effect": "Allow", "Principal": {"AWS": ADMIN}, "Action": ["kms:Decrypt"], "Resource": "*"}


def release(claims: list[dict[str, Any]]) -> dict[str, Any]:
    policy = {"version": "1.0.0", "anyOf": [{"authority": "https://shared.weu.attest.azure.net", "allOf": claims}]}
    data = base64.urlsafe_b64encode(json.dumps(policy).encode()).decode().rstrip("=")
    return {"contentType": "application/json; charset=utf-8", "data": data}


TEE = "x-ms-isolation-tee"
GOOD_CLAIMS = [
    {"claim": f"{TEE}.x-ms-attestation-type", "equals": "sevsnpvm"},
    {"claim": f"{TEE}.x-ms-compliance-status", "equals": "azure-compliant-cvm"},
    {"claim": f"{TEE}.x-ms-sevsnpvm-launchmeasurement", "equals": PCR0},
    {"claim": f"{TEE}.x-ms-sevsnpvm-is-debuggable", "equals": False},
]


# Documented release-policy shapes (SKR policy grammar, https://learn.microsoft.com/azure/key-vault/keys/policy-grammar;
# claim names from https://learn.microsoft.com/azure/attestation/claim-sets and the confidential containers docs).
HOST_DATA = "c7" * 32
SIGNER = "9fa48b1629bd246a1de3d38fb7df97f6554cd65d6b3b72e85b86848ae6b578ba"
CONTAINER_CLAIMS = [
    {"claim": "x-ms-attestation-type", "equals": "sevsnpvm"},
    {"claim": "x-ms-compliance-status", "equals": "azure-compliant-uvm"},
    {"claim": "x-ms-sevsnpvm-hostdata", "equals": HOST_DATA},
    {"claim": "x-ms-sevsnpvm-is-debuggable", "equals": False},
]
SGX_CLAIMS = [
    {"claim": "x-ms-sgx-mrsigner", "equals": SIGNER},
    {"claim": "x-ms-sgx-product-id", "equals": 1},
    {"claim": "x-ms-sgx-svn", "greaterOrEquals": 2},
    {"claim": "x-ms-sgx-is-debuggable", "equals": False},
]
SGX_PRODUCT_RANGE = [dict(c) for c in SGX_CLAIMS]
SGX_PRODUCT_RANGE[1] = {"claim": "x-ms-sgx-product-id", "greaterOrEquals": 1}
WILDCARD_HOST_DATA = [dict(c) for c in CONTAINER_CLAIMS]
WILDCARD_HOST_DATA[2] = {"claim": "x-ms-sevsnpvm-hostdata", "equals": "*"}


def azure_key(claims: list[dict[str, Any]] | None = GOOD_CLAIMS, **over: Any) -> dict[str, Any]:
    props: dict[str, Any] = {"kty": "RSA-HSM", "attributes": {"exportable": True}}
    if claims is not None:
        props["releasePolicy"] = release(claims)
    props.update(over)
    return {"properties": props, "tags": PROD}


GOOD_CEL = (
    "assertion.swname == 'CONFIDENTIAL_SPACE' && assertion.dbgstat == 'disabled-since-boot' && "
    "'STABLE' in assertion.submods.confidential_space.support_attributes && "
    "assertion.hwmodel in ['GCP_AMD_SEV', 'GCP_INTEL_TDX'] && assertion.secboot == true && "
    f"assertion.submods.container.image_digest in ['{DIGEST}'] && "
    "'wl@p.iam.gserviceaccount.com' in assertion.google_service_accounts"
)
PRINCIPAL = f"principalSet://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/ccp/attribute.image_digest/{DIGEST}"

GCP_VM = {
    "labels": PROD,
    "confidentialInstanceConfig": {"confidentialInstanceType": "SEV_SNP"},
    "scheduling": {"onHostMaintenance": "TERMINATE"},
    "shieldedInstanceConfig": {"enableSecureBoot": True, "enableVtpm": True, "enableIntegrityMonitoring": True},
    "bootDisk": {"initializeParams": {"image": "projects/confidential-space-images/global/images/family/confidential-space"}, "kmsKeySelfLink": "projects/p/locations/l/keyRings/r/cryptoKeys/k"},
    "metadata": {"tee-image-reference": f"europe-docker.pkg.dev/p/w/fl@{DIGEST}"},
    "networkInterfaces": [{"network": "n"}],
    "serviceAccount": {"email": "wl@p.iam.gserviceaccount.com"},
}
AZ_VM = {
    "tags": PROD,
    "hardwareProfile": {"vmSize": "Standard_DC4as_v5"},
    "securityProfile": {"securityType": "ConfidentialVM", "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True}},
    "storageProfile": {"osDisk": {"managedDisk": {"securityProfile": {"securityEncryptionType": "DiskWithVMGuestState", "diskEncryptionSet": {"id": "/des"}}}}},
}
STORAGE = {
    "encryption": {"keySource": "Microsoft.Keyvault", "keyVaultProperties": {"keyName": "k"}, "requireInfrastructureEncryption": True},
    "allowBlobPublicAccess": False,
    "networkRuleSet": {"defaultAction": "Deny"},
    "enableHttpsTrafficOnly": True,
    "minimumTlsVersion": "TLS1_2",
    "allowSharedKeyAccess": False,
}
SHARED_STORAGE = {**STORAGE, "tags": {"party": "shared"}}
AKS = {
    "apiServerAccessProfile": {"enablePrivateCluster": True},
    "agentPoolProfiles": [{"name": "cc", "vmSize": "Standard_DC4as_cc_v5", "enableNodePublicIP": False}],
    "securityProfile": {"azureKeyVaultKms": {"enabled": True, "keyId": "https://v/keys/k/1"}},
    "diskEncryptionSetID": "/des",
}
GKE = {
    "privateClusterConfig": {"enablePrivateNodes": True, "enablePrivateEndpoint": True},
    "databaseEncryption": {"state": "ENCRYPTED", "keyName": "projects/p/locations/l/keyRings/r/cryptoKeys/k"},
    "confidentialNodes": {"enabled": True},
    "workloadIdentityConfig": {"workloadPool": "p.svc.id.goog"},
    "nodeConfig": {"workloadMetadataConfig": {"mode": "GKE_METADATA"}},
}
EC2 = {
    "instanceType": "m6i.xlarge",
    "enclaveOptions": {"enabled": True},
    "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1},
    "associatePublicIpAddress": False,
    "rootBlockDevice": {"encrypted": True, "kmsKeyId": "arn:key"},
}
LT = {
    "instanceType": "m6i.xlarge",
    "enclaveOptions": {"enabled": True},
    "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 2},
    "networkInterfaces": [{"associatePublicIpAddress": "false"}],
    "blockDeviceMappings": [{"ebs": {"encrypted": "true", "kmsKeyId": "arn:key"}}],
}


RUN_ENCLAVE_SCRIPT = "#!/bin/bash\nnitro-cli run-enclave --eif-path /opt/ccp/enclave.eif --cpu-count 2 --memory 4096\n"


def b64text(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


def with_(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `base` with `path` (dotted, `[n]` for list items) set, or removed if value is DROP."""
    out = copy.deepcopy(base)
    node: Any = out
    parts = path.replace("[", ".[").split(".")
    for part in parts[:-1]:
        node = node[int(part[1:-1])] if part.startswith("[") else node.setdefault(part, {})
    last = parts[-1]
    if value is DROP:
        if last.startswith("["):
            del node[int(last[1:-1])]
        else:
            node.pop(last, None)
    elif last.startswith("["):
        node[int(last[1:-1])] = value
    else:
        node[last] = value
    return out


DROP = object()

# rule -> (resource type, compliant props, non-compliant props, missing-property props)
CASES: dict[str, tuple[str, dict, dict, dict]] = {
    "aws-kms-key-enforce-attestation": ("aws:kms/key:Key", {"policy": kms_policy()}, {"policy": kms_policy(extra=[ROOT_ALL])}, {}),
    "aws-kms-key-missing-unattested-deny": ("aws:kms/keyPolicy:KeyPolicy", {"policy": kms_policy()}, {"policy": kms_policy(deny=False)}, {}),
    "aws-kms-key-enforce-via-service": ("aws:kms/key:Key", SERVICE_KEY, {**SERVICE_KEY, "policy": service_policy(VIA_S3, DIRECT_USE)}, {"tags": purpose("disk")}),
    "aws-kms-key-disallow-debug-pcr": ("aws:kms/key:Key", {"policy": kms_policy()}, {"policy": kms_policy(pcr=ZERO)}, {}),
    "aws-kms-key-disallow-owner-decrypt": ("aws:kms/key:Key", {"policy": kms_policy()}, {"policy": kms_policy(extra=[OWNER])}, {}),
    "aws-kms-key-disallow-root-admin": ("aws:kms/key:Key", {"policy": kms_policy(extra=[DENY_CHANGE])}, {"policy": kms_policy(extra=[ROOT_ADMIN, DENY_CHANGE])}, {}),
    "aws-kms-key-enforce-policy-change-deny": ("aws:kms/keyPolicy:KeyPolicy", {"policy": kms_policy(extra=[DENY_CHANGE])}, {"policy": kms_policy()}, {}),
    "aws-kms-key-enable-rotation": ("aws:kms/key:Key", {"enableKeyRotation": True, "rotationPeriodInDays": 90}, {"enableKeyRotation": True, "rotationPeriodInDays": 365}, {"enableKeyRotation": True}),
    "aws-ec2-instance-enable-enclave": ("aws:ec2/instance:Instance", EC2, with_(EC2, "enclaveOptions.enabled", False), with_(EC2, "enclaveOptions", DROP)),
    "aws-ec2-instance-enforce-enclave-capable-type": ("aws:ec2/launchTemplate:LaunchTemplate", LT, with_(LT, "instanceType", "t3.large"), with_(LT, "instanceType", DROP)),
    "aws-ec2-instance-enforce-imdsv2": ("aws:ec2/instance:Instance", EC2, with_(EC2, "metadataOptions.httpTokens", "optional"), with_(EC2, "metadataOptions.httpPutResponseHopLimit", DROP)),
    "aws-ec2-instance-disallow-public-ip": ("aws:ec2/launchTemplate:LaunchTemplate", LT, with_(LT, "networkInterfaces[0].associatePublicIpAddress", "true"), with_(LT, "networkInterfaces[0].associatePublicIpAddress", DROP)),
    "aws-ec2-volume-enforce-cmk-encryption": ("aws:ec2/instance:Instance", EC2, with_(EC2, "rootBlockDevice.kmsKeyId", DROP), with_(EC2, "rootBlockDevice", DROP)),
    "aws-ec2-subnet-disallow-public-ip-on-launch": ("aws:ec2/subnet:Subnet", {"mapPublicIpOnLaunch": False}, {"mapPublicIpOnLaunch": True}, {}),
    "aws-ec2-securitygroup-disallow-open-ingress": ("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", {"cidrIpv4": "10.0.0.0/16"}, {"cidrIpv4": "0.0.0.0/0"}, {"ipProtocol": "tcp"}),
    "aws-s3-bucketpublicaccessblock-enable-all": (
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        {"blockPublicAcls": True, "blockPublicPolicy": True, "ignorePublicAcls": True, "restrictPublicBuckets": True},
        {"blockPublicAcls": True, "blockPublicPolicy": False, "ignorePublicAcls": True, "restrictPublicBuckets": True},
        {"blockPublicAcls": True},
    ),
    "aws-s3-bucketpolicy-enforce-tls": (
        "aws:s3/bucketPolicy:BucketPolicy",
        {"policy": json.dumps({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})},
        {"policy": json.dumps({"Statement": [{"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "s3:GetObject", "Resource": "*"}]})},
        {},
    ),
    "aws-cloudtrail-trail-enforce-integrity": ("aws:cloudtrail/trail:Trail", {"isMultiRegionTrail": True, "enableLogFileValidation": True, "kmsKeyId": "arn:key"}, {"isMultiRegionTrail": False, "enableLogFileValidation": True, "kmsKeyId": "arn:key"}, {"isMultiRegionTrail": True, "enableLogFileValidation": True}),
    "aws-iam-policy-disallow-wildcard-kms": (
        "aws:iam/rolePolicy:RolePolicy",
        {"policy": json.dumps({"Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::b/*"}]})},
        {"policy": json.dumps({"Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]})},
        {},
    ),
    "aws-eks-cluster-disallow-public-endpoint": ("aws:eks/cluster:Cluster", {"vpcConfig": {"endpointPublicAccess": False, "endpointPrivateAccess": True}}, {"vpcConfig": {"endpointPublicAccess": True, "endpointPrivateAccess": True}}, {"vpcConfig": {}}),
    "aws-eks-cluster-enable-secrets-encryption": ("aws:eks/cluster:Cluster", {"encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": "arn:key"}}}, {"encryptionConfig": {"resources": [], "provider": {"keyArn": "arn:key"}}}, {}),
    "aws-eks-cluster-enable-audit-logging": ("aws:eks/cluster:Cluster", {"enabledClusterLogTypes": ["api", "audit", "authenticator"]}, {"enabledClusterLogTypes": ["api"]}, {}),
    "aws-cloudwatch-loggroup-enforce-cmk-retention": ("aws:cloudwatch/logGroup:LogGroup", {"kmsKeyId": "arn:key", "retentionInDays": 2557, "tags": PROD}, {"kmsKeyId": "arn:key", "retentionInDays": 30, "tags": PROD}, {"retentionInDays": 2557}),
    # Azure
    "azure-keyvault-key-enforce-workload-claim": ("azure-native:keyvault:Key", azure_key(), azure_key(GOOD_CLAIMS[:2] + GOOD_CLAIMS[3:]), {"properties": {"kty": "RSA-HSM"}}),
    "azure-keyvault-key-disallow-debuggable-release": ("azure-native:keyvault:Key", azure_key(), azure_key(GOOD_CLAIMS[:3]), {"properties": {"kty": "RSA-HSM"}}),
    "azure-keyvault-key-disallow-client-payload-claim": ("azure-native:keyvault:Key", azure_key(), azure_key(GOOD_CLAIMS + [{"claim": "x-ms-runtime.client-payload.nonce", "equals": "n"}]), {"properties": {"kty": "RSA-HSM"}}),
    "azure-keyvault-key-disallow-product-id-range": ("azure-native:keyvault:Key", azure_key(SGX_CLAIMS), azure_key(SGX_PRODUCT_RANGE), {"properties": {"kty": "RSA-HSM"}}),
    "azure-keyvault-key-disallow-paravisor-only-binding": ("azure-native:keyvault:Key", azure_key(CONTAINER_CLAIMS), azure_key(GOOD_CLAIMS), {"properties": {"kty": "RSA-HSM"}}),
    "azure-keyvault-key-disallow-measurement-pattern": ("azure-native:keyvault:Key", azure_key(), azure_key(WILDCARD_HOST_DATA), {"properties": {"kty": "RSA-HSM"}}),
    "azure-keyvault-key-disallow-service-release": (
        "azure-native:keyvault:Key",
        {"tags": purpose("party-storage"), "properties": {"kty": "RSA-HSM", "attributes": {"exportable": False}}},
        {**azure_key(), "tags": purpose("party-storage")},
        {"tags": purpose("disk"), "properties": {"kty": "RSA-HSM"}},
    ),
    "azure-keyvault-key-enforce-hsm-release": ("azure-native:keyvault:Key", azure_key(), azure_key(kty="RSA"), {"properties": {"attributes": {"exportable": True}}}),
    "azure-keyvault-key-enable-rotation": (
        "azure-native:keyvault:Key",
        {"properties": {"rotationPolicy": {"lifetimeActions": [{"action": {"type": "rotate"}, "trigger": {"timeAfterCreate": "P90D"}}]}}},
        {"properties": {"rotationPolicy": {"lifetimeActions": [{"action": {"type": "rotate"}, "trigger": {"timeAfterCreate": "P1Y"}}]}}},
        {"properties": {}},
    ),
    "azure-keyvault-vault-enable-purge-protection": ("azure-native:keyvault:Vault", {"properties": {"enablePurgeProtection": True, "enableSoftDelete": True}}, {"properties": {"enablePurgeProtection": False, "enableSoftDelete": True}}, {"properties": {"enableSoftDelete": True}}),
    "azure-keyvault-vault-enforce-rbac": ("azure-native:keyvault:Vault", {"properties": {"enableRbacAuthorization": True}}, {"properties": {"enableRbacAuthorization": False}}, {"properties": {}}),
    "azure-keyvault-vault-disallow-public-network": ("azure-native:keyvault:Vault", {"properties": {"publicNetworkAccess": "Disabled"}}, {"properties": {"publicNetworkAccess": "Enabled", "networkAcls": {"defaultAction": "Allow"}}}, {"properties": {}}),
    "azure-keyvault-vault-enforce-premium-sku": ("azure-native:keyvault:Vault", {"properties": {"sku": {"family": "A", "name": "premium"}}}, {"properties": {"sku": {"family": "A", "name": "standard"}}}, {"properties": {}}),
    "azure-compute-vm-enforce-confidential": ("azure-native:compute:VirtualMachine", AZ_VM, with_(AZ_VM, "hardwareProfile.vmSize", "Standard_D4s_v5"), with_(AZ_VM, "securityProfile.securityType", DROP)),
    "azure-compute-vm-enable-secure-boot-vtpm": ("azure-native:compute:VirtualMachine", AZ_VM, with_(AZ_VM, "securityProfile.uefiSettings.vTpmEnabled", False), with_(AZ_VM, "securityProfile.uefiSettings", DROP)),
    "azure-compute-vm-enforce-cmk-disk": ("azure-native:compute:VirtualMachine", AZ_VM, with_(AZ_VM, "storageProfile.osDisk.managedDisk.securityProfile.diskEncryptionSet.id", ""), with_(AZ_VM, "storageProfile", DROP)),
    "azure-compute-diskencryptionset-configure-cmk": (
        "azure-native:compute:DiskEncryptionSet",
        {"encryptionType": "EncryptionAtRestWithCustomerKey", "activeKey": {"keyUrl": "https://v/keys/k/1"}, "rotationToLatestKeyVersionEnabled": True},
        {"encryptionType": "EncryptionAtRestWithPlatformKey", "activeKey": {"keyUrl": "https://v/keys/k/1"}, "rotationToLatestKeyVersionEnabled": True},
        {"encryptionType": "EncryptionAtRestWithCustomerKey", "activeKey": {"keyUrl": "https://v/keys/k/1"}},
    ),
    "azure-compute-diskencryptionset-disallow-confidential-auto-rotation": (
        "azure-native:compute:DiskEncryptionSet",
        {"encryptionType": "ConfidentialVmEncryptedWithCustomerKey", "rotationToLatestKeyVersionEnabled": False},
        {"encryptionType": "ConfidentialVmEncryptedWithCustomerKey", "rotationToLatestKeyVersionEnabled": True},
        {"encryptionType": "ConfidentialVmEncryptedWithCustomerKey"},
    ),
    "azure-attestation-attestationprovider-require-policy-signing-certificates": (
        "azure-native:attestation:AttestationProvider",
        {"properties": {"policySigningCertificates": {"keys": [{"kty": "EC", "x5C": ["MIIB"]}]}}, "tags": PROD},
        {"properties": {"policySigningCertificates": {"keys": []}}, "tags": PROD},
        {"properties": {"publicNetworkAccess": "Enabled"}, "tags": PROD},
    ),
    "azure-network-networkinterface-disallow-public-ip": ("azure-native:network:NetworkInterface", {"ipConfigurations": [{"name": "ip"}]}, {"ipConfigurations": [{"name": "ip", "publicIPAddress": {"id": "/pip"}}]}, {}),
    "azure-network-networksecuritygroup-disallow-open-ingress": (
        "azure-native:network:SecurityRule",
        {"direction": "Inbound", "access": "Allow", "sourceAddressPrefix": "VirtualNetwork"},
        {"direction": "Inbound", "access": "Allow", "sourceAddressPrefix": "Internet"},
        {"direction": "Inbound", "access": "Allow"},
    ),
    "azure-storage-storageaccount-enforce-cmk": ("azure-native:storage:StorageAccount", STORAGE, with_(STORAGE, "encryption.keySource", "Microsoft.Storage"), with_(STORAGE, "encryption", DROP)),
    "azure-storage-storageaccount-disallow-public-access": ("azure-native:storage:StorageAccount", STORAGE, with_(STORAGE, "allowBlobPublicAccess", True), with_(STORAGE, "networkRuleSet", DROP)),
    "azure-storage-storageaccount-enforce-tls": ("azure-native:storage:StorageAccount", STORAGE, with_(STORAGE, "minimumTlsVersion", "TLS1_0"), with_(STORAGE, "enableHttpsTrafficOnly", DROP)),
    "azure-storage-storageaccount-disallow-shared-key": ("azure-native:storage:StorageAccount", SHARED_STORAGE, with_(SHARED_STORAGE, "allowSharedKeyAccess", True), with_(SHARED_STORAGE, "allowSharedKeyAccess", DROP)),
    "azure-containerservice-managedcluster-enforce-private-cluster": ("azure-native:containerservice:ManagedCluster", AKS, with_(AKS, "apiServerAccessProfile.enablePrivateCluster", False), with_(AKS, "apiServerAccessProfile", DROP)),
    "azure-containerservice-managedcluster-enforce-confidential-nodes": ("azure-native:containerservice:ManagedCluster", AKS, with_(AKS, "agentPoolProfiles[0].vmSize", "Standard_D4s_v5"), with_(AKS, "agentPoolProfiles", DROP)),
    "azure-containerservice-managedcluster-enable-kms-secrets": ("azure-native:containerservice:ManagedCluster", AKS, with_(AKS, "securityProfile.azureKeyVaultKms.enabled", False), with_(AKS, "diskEncryptionSetID", DROP)),
    "azure-authorization-roleassignment-disallow-broad-role": (
        "azure-native:authorization:RoleAssignment",
        {"roleDefinitionId": "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/08bbd89e-9f13-488c-ac41-acfcb10c90ab"},
        {"roleDefinitionId": "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635"},
        {},
    ),
    "azure-monitor-diagnosticsetting-enable-audit-logs": (
        "azure-native:monitor:DiagnosticSetting",
        {"logs": [{"categoryGroup": "audit", "enabled": True}], "workspaceId": "/ws"},
        {"logs": [{"category": "AzurePolicyEvaluationDetails", "enabled": True}], "workspaceId": "/ws"},
        {"workspaceId": "/ws"},
    ),
    # GCP
    "gcp-iam-workloadidentitypoolprovider-enforce-attestation-condition": (
        "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider",
        {"attributeCondition": GOOD_CEL},
        {"attributeCondition": GOOD_CEL.replace("assertion.dbgstat == 'disabled-since-boot' && ", "")},
        {},
    ),
    "gcp-iam-workloadidentitypoolprovider-configure-attestation-issuer": (
        "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider",
        {"oidc": {"issuerUri": "https://confidentialcomputing.googleapis.com/", "allowedAudiences": ["https://sts.googleapis.com"]}},
        {"oidc": {"issuerUri": "https://accounts.google.com", "allowedAudiences": ["https://sts.googleapis.com"]}},
        {"oidc": {"allowedAudiences": ["https://sts.googleapis.com"]}},
    ),
    "gcp-iam-member-disallow-public-principal": ("gcp:storage/bucketIAMBinding:BucketIAMBinding", {"role": "roles/storage.objectViewer", "members": [PRINCIPAL]}, {"role": "roles/storage.objectViewer", "members": ["allUsers"]}, {"role": "roles/storage.objectViewer"}),
    "gcp-kms-cryptokey-enable-rotation": ("gcp:kms/cryptoKey:CryptoKey", {"rotationPeriod": "7776000s"}, {"rotationPeriod": "31536000s"}, {}),
    "gcp-kms-cryptokey-enforce-hsm": ("gcp:kms/cryptoKey:CryptoKey", {"labels": PROD, "versionTemplate": {"protectionLevel": "HSM"}}, {"labels": PROD, "versionTemplate": {"protectionLevel": "SOFTWARE"}}, {"labels": PROD}),
    "gcp-compute-instance-enforce-confidential": ("gcp:compute/instance:Instance", GCP_VM, with_(GCP_VM, "scheduling.onHostMaintenance", "MIGRATE"), with_(GCP_VM, "confidentialInstanceConfig", DROP)),
    "gcp-compute-instance-enable-shielded-vm": ("gcp:compute/instance:Instance", GCP_VM, with_(GCP_VM, "shieldedInstanceConfig.enableVtpm", False), with_(GCP_VM, "shieldedInstanceConfig", DROP)),
    "gcp-compute-instance-disallow-debug-image": ("gcp:compute/instance:Instance", GCP_VM, with_(GCP_VM, "bootDisk.initializeParams.image", "projects/confidential-space-images/global/images/family/confidential-space-debug"), with_(GCP_VM, "bootDisk.initializeParams", DROP)),
    "gcp-compute-instance-enforce-image-digest": ("gcp:compute/instance:Instance", GCP_VM, with_(GCP_VM, "metadata", {"tee-image-reference": "europe-docker.pkg.dev/p/w/fl:latest"}), with_(GCP_VM, "metadata", DROP)),
    "gcp-compute-instance-disallow-public-ip": ("gcp:compute/instance:Instance", GCP_VM, with_(GCP_VM, "networkInterfaces[0].accessConfigs", [{"natIp": ""}]), with_(GCP_VM, "networkInterfaces", DROP)),
    "gcp-compute-instance-enforce-cmk-disk": ("gcp:compute/instance:Instance", GCP_VM, with_(GCP_VM, "bootDisk.kmsKeySelfLink", ""), with_(GCP_VM, "bootDisk.kmsKeySelfLink", DROP)),
    "gcp-compute-instance-disallow-default-service-account": ("gcp:compute/instance:Instance", GCP_VM, with_(GCP_VM, "serviceAccount.email", "123456789012-compute@developer.gserviceaccount.com"), with_(GCP_VM, "serviceAccount", DROP)),
    "gcp-compute-firewall-disallow-open-ingress": ("gcp:compute/firewall:Firewall", {"direction": "INGRESS", "sourceRanges": ["35.235.240.0/20"], "allows": [{"protocol": "tcp"}]}, {"direction": "INGRESS", "sourceRanges": ["0.0.0.0/0"], "allows": [{"protocol": "tcp"}]}, {"allows": [{"protocol": "tcp"}]}),
    "gcp-storage-bucket-enforce-cmk": ("gcp:storage/bucket:Bucket", {"encryption": {"defaultKmsKeyName": "projects/p/locations/l/keyRings/r/cryptoKeys/k"}}, {"encryption": {"defaultKmsKeyName": ""}}, {}),
    "gcp-storage-bucket-disallow-public-access": ("gcp:storage/bucket:Bucket", {"publicAccessPrevention": "enforced", "uniformBucketLevelAccess": True}, {"publicAccessPrevention": "inherited", "uniformBucketLevelAccess": True}, {"uniformBucketLevelAccess": True}),
    "gcp-container-cluster-enforce-private-cluster": ("gcp:container/cluster:Cluster", GKE, with_(GKE, "privateClusterConfig.enablePrivateEndpoint", False), with_(GKE, "privateClusterConfig", DROP)),
    "gcp-container-cluster-enable-secrets-encryption": ("gcp:container/cluster:Cluster", GKE, with_(GKE, "databaseEncryption.state", "DECRYPTED"), with_(GKE, "databaseEncryption", DROP)),
    "gcp-container-cluster-enforce-confidential-nodes": ("gcp:container/cluster:Cluster", GKE, with_(GKE, "confidentialNodes.enabled", False), with_(GKE, "confidentialNodes", DROP)),
    "gcp-container-cluster-enforce-workload-identity": ("gcp:container/cluster:Cluster", GKE, with_(GKE, "nodeConfig.workloadMetadataConfig.mode", "GCE_METADATA"), with_(GKE, "nodeConfig", DROP)),
    "gcp-projects-iamauditconfig-enable-data-access": (
        "gcp:projects/iAMAuditConfig:IAMAuditConfig",
        {"service": "cloudkms.googleapis.com", "auditLogConfigs": [{"logType": t} for t in ("DATA_READ", "DATA_WRITE", "ADMIN_READ")]},
        {"service": "cloudkms.googleapis.com", "auditLogConfigs": [{"logType": "ADMIN_READ"}]},
        {"service": "cloudkms.googleapis.com"},
    ),
    # Workload start (issue 14 item 3): the host boots the approved workload, in production mode.
    "stack-compute-host-enforce-workload-start": (
        "aws:ec2/instance:Instance",
        {**EC2, "userDataBase64": b64text(RUN_ENCLAVE_SCRIPT)},
        {**EC2, "userDataBase64": b64text("#!/bin/bash\ndnf install -y aws-nitro-enclaves-cli\n")},
        EC2,
    ),
    # Kubernetes
    "kubernetes-apps-workload-enforce-image-digest": (
        "kubernetes:apps/v1:Deployment",
        {"spec": {"template": {"spec": {"containers": [{"name": "w", "image": f"r/w@{DIGEST}"}]}}}},
        {"spec": {"template": {"spec": {"containers": [{"name": "w", "image": "r/w:1.0"}]}}}},
        {"spec": {"template": {"spec": {}}}},
    ),
}

# Issue 12 item 5: paths to a key's plaintext that bypass attestation. Shapes from the vendors' docs:
# IAM condition operators (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html),
# the ACI confidential container group ARM shape (sku Confidential, confidentialComputeProperties.ccePolicy),
# the Cloud Storage HMAC key resource (state ACTIVE/INACTIVE).
def attestation_condition(operator: str, value: str = PCR0) -> dict[str, Any]:
    return {
        "Sid": "AllowDecryptByAttestedEnclave", "Effect": "Allow", "Principal": {"AWS": ROLE},
        "Action": ["kms:Decrypt"], "Resource": "*",
        "Condition": {operator: {"kms:RecipientAttestation:ImageSha384": value}},
    }


ACI = {
    "tags": {**PROD, "collaboration": "study"},
    "sku": "Confidential",
    "confidentialComputeProperties": {"ccePolicy": "cGFja2FnZSBwb2xpY3k="},
    "containers": [{"name": "w", "image": f"r/w@{DIGEST}", "securityContext": {"privileged": False}}],
}
PARTY_STORAGE_ACCOUNT = with_(STORAGE, "tags", {**PROD, "party": "clinic-azure"})

CASES.update(
    {
        "aws-kms-key-disallow-attestation-pattern": (
            "aws:kms/key:Key",
            {"policy": kms_policy()},
            {"policy": kms_policy(extra=[attestation_condition("StringLike", PCR0[:-4] + "*")])},
            {},
        ),
        "azure-storage-storageaccount-disallow-party-shared-key": (
            "azure-native:storage:StorageAccount",
            PARTY_STORAGE_ACCOUNT,
            with_(PARTY_STORAGE_ACCOUNT, "allowSharedKeyAccess", True),
            with_(PARTY_STORAGE_ACCOUNT, "allowSharedKeyAccess", DROP),
        ),
        "azure-containerinstance-containergroup-enforce-confidential": (
            "azure-native:containerinstance:ContainerGroup",
            ACI,
            with_(ACI, "sku", "Standard"),
            with_(ACI, "confidentialComputeProperties", DROP),
        ),
        "gcp-storage-hmackey-disallow-active-key": (
            "gcp:storage/hmacKey:HmacKey",
            {"serviceAccountEmail": "sa@p.iam.gserviceaccount.com", "state": "INACTIVE"},
            {"serviceAccountEmail": "sa@p.iam.gserviceaccount.com", "state": "ACTIVE"},
            {"serviceAccountEmail": "sa@p.iam.gserviceaccount.com"},
        ),
    }
)

# Backup and recovery (issue 18): compliant prod settings, the weakened prod value, the property dropped.
LOCK = {"objectLockEnabled": "Enabled", "rule": {"defaultRetention": {"mode": "COMPLIANCE", "days": 2557}}}
ARCHIVE = {"tags": PROD, "immutableStorageWithVersioning": {"enabled": True, "immutabilityPolicy": {
    "state": "Locked", "immutabilityPeriodSinceCreationInDays": 2557, "allowProtectedAppendWrites": True}}}
AUDIT_BUCKET = {"labels": PROD, "retentionPolicy": {"isLocked": True, "retentionPeriod": 2557 * 86400}}
CASES.update(
    {
        "aws-kms-key-enforce-deletion-window": ("aws:kms/key:Key", {"tags": PROD, "deletionWindowInDays": 30}, {"tags": PROD, "deletionWindowInDays": 7}, {"tags": PROD}),
        "aws-s3-bucketobjectlockconfiguration-enforce-retention": (
            "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration", LOCK,
            with_(LOCK, "rule.defaultRetention.days", 30), with_(LOCK, "rule.defaultRetention", DROP)),
        "azure-keyvault-vault-enforce-soft-delete-retention": (
            "azure-native:keyvault:Vault", {"tags": PROD, "properties": {"softDeleteRetentionInDays": 90}},
            {"tags": PROD, "properties": {"softDeleteRetentionInDays": 7}}, {"tags": PROD, "properties": {}}),
        "azure-storage-storageaccount-enforce-immutable-audit": (
            "azure-native:storage:StorageAccount", ARCHIVE,
            with_(ARCHIVE, "immutableStorageWithVersioning.immutabilityPolicy.state", "Unlocked"),
            with_(ARCHIVE, "immutableStorageWithVersioning.immutabilityPolicy", DROP)),
        "gcp-kms-cryptokey-enforce-destroy-scheduled-duration": (
            "gcp:kms/cryptoKey:CryptoKey", {"labels": PROD, "destroyScheduledDuration": "2592000s"},
            {"labels": PROD, "destroyScheduledDuration": "86400s"}, {"labels": PROD}),
        "gcp-storage-bucket-enforce-locked-retention": (
            "gcp:storage/bucket:Bucket", AUDIT_BUCKET, with_(AUDIT_BUCKET, "retentionPolicy.isLocked", False),
            with_(AUDIT_BUCKET, "retentionPolicy.isLocked", DROP)),
    }
)

# Issue 12: long-lived credentials and who can grant themselves a party key.
ACCESS_KEY = {"user": "ops-deployer", "status": "Inactive"}
MG_SCOPE = "/providers/Microsoft.Management/managementGroups/corp"
CASES.update(
    {
        "aws-iam-accesskey-disallow-long-lived-key": (
            "aws:iam/accessKey:AccessKey", ACCESS_KEY, with_(ACCESS_KEY, "status", "Active"), with_(ACCESS_KEY, "status", DROP)),
        "azure-authorization-roleassignment-disallow-management-group-scope": (
            "azure-native:authorization:RoleAssignment",
            {"scope": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v/keys/k"},
            {"scope": MG_SCOPE}, {}),
    }
)

# Azure CVM workload hosts (issue 12, item 1): the measured-guest release and no operator path into the guest.
# Claim names and the x-ms-policy-hash value are those of Microsoft's documented guest token
# (https://learn.microsoft.com/azure/confidential-computing/guest-attestation-confidential-vms, "JSON web token";
# the hash from the CVM attestation sample's token); the custom claim is the collaboration policy's own.
OWN_MAA = "https://ccpcollabwesteurope.weu.attest.azure.net"
GUEST_CLAIMS = [
    {"claim": "x-ms-attestation-type", "equals": "azurevm"},
    {"claim": f"{TEE}.x-ms-attestation-type", "equals": "sevsnpvm"},
    {"claim": f"{TEE}.x-ms-compliance-status", "equals": "azure-compliant-cvm"},
    {"claim": f"{TEE}.x-ms-sevsnpvm-is-debuggable", "equals": False},
    {"claim": "secureboot", "equals": True},
    {"claim": "x-ms-azurevm-debuggersdisabled", "equals": True},
    {"claim": "x-ms-azurevm-kerneldebug-enabled", "equals": False},
    {"claim": "x-ms-azurevm-bootdebug-enabled", "equals": False},
    {"claim": "x-ms-policy-hash", "equals": "wm9mHlvTU82e8UqoOy1Yj1FBRSNkfe99-69IYDq9eWs"},
    {"claim": "measured-image", "equals": "sha256:" + "5e" * 32},
]


def guest_key(claims: list[dict[str, Any]], authority: str = OWN_MAA) -> dict[str, Any]:
    key = azure_key(claims)
    policy = {"version": "1.0.0", "anyOf": [{"authority": authority, "allOf": claims}]}
    key["properties"]["releasePolicy"]["data"] = base64.urlsafe_b64encode(json.dumps(policy).encode()).decode().rstrip("=")
    return key


GUEST_VM = {
    **AZ_VM,
    "tags": {**PROD, "collaboration": "c"},
    "osProfile": {
        "allowExtensionOperations": False,
        "linuxConfiguration": {"provisionVMAgent": False, "disablePasswordAuthentication": True},
    },
}
CASES.update(
    {
        "azure-keyvault-key-enforce-measured-guest-release": (
            "azure-native:keyvault:Key", guest_key(GUEST_CLAIMS), guest_key(GUEST_CLAIMS[:8] + GUEST_CLAIMS[9:]),
            {"properties": {"kty": "RSA-HSM"}}),
        "azure-compute-vm-disallow-operator-access": (
            "azure-native:compute:VirtualMachine", GUEST_VM,
            with_(GUEST_VM, "osProfile.linuxConfiguration.provisionVMAgent", True),
            with_(GUEST_VM, "osProfile.allowExtensionOperations", DROP)),
    }
)

# The query service's hardening, availability and exposure (tests/policies/kubernetes_cases.py).
CASES.update(kubernetes_cases.CASES)

# What a collaboration releases (components.collaboration.release_declaration): over personal data, only outputs
# the privacy budget charges.
RELEASES = {"dataClassifications": ["phi", "pii"], "outputs": ["global-model"],
            "privacy": {"epsilon": 3.0, "delta": 1e-6, "outputs": ["global-model"]}}
CASES["stack-collaboration-output-enforce-dp"] = (
    "ccp:index:Collaboration", RELEASES, with_(RELEASES, "outputs", ["global-model", "per-site-rows"]),
    {"outputs": ["global-model"]},
)


@pytest.mark.parametrize(
    ("name", "type_", "props"),
    [
        ("aws-kms-key-enforce-deletion-window", "aws:kms/key:Key", {"tags": DEV, "deletionWindowInDays": 7}),
        ("azure-keyvault-vault-enforce-soft-delete-retention", "azure-native:keyvault:Vault", {"tags": DEV, "properties": {"softDeleteRetentionInDays": 7}}),
        ("azure-storage-storageaccount-enforce-immutable-audit", "azure-native:storage:StorageAccount",
         {**with_(ARCHIVE, "immutableStorageWithVersioning.immutabilityPolicy.state", "Unlocked"), "tags": DEV}),
        ("azure-storage-storageaccount-enforce-immutable-audit", "azure-native:storage:StorageAccount", {"tags": PROD, "allowBlobPublicAccess": False}),
        ("gcp-kms-cryptokey-enforce-destroy-scheduled-duration", "gcp:kms/cryptoKey:CryptoKey", {"labels": DEV, "destroyScheduledDuration": "86400s"}),
        ("gcp-storage-bucket-enforce-locked-retention", "gcp:storage/bucket:Bucket", {**with_(AUDIT_BUCKET, "retentionPolicy.isLocked", False), "labels": DEV}),
        ("gcp-storage-bucket-enforce-locked-retention", "gcp:storage/bucket:Bucket", {"labels": PROD, "versioning": {"enabled": True}}),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 80 else "",
)
def test_backup_settings_relaxed_outside_prod_or_not_applicable(name: str, type_: str, props: dict[str, Any]) -> None:
    """Dev keeps short windows and unlocked retention (it is torn down); accounts/buckets without an
    immutability or retention policy are data stores, judged by their own rules."""
    policy = next(p for p in POLICIES if p.name == name)
    assert violations(policy, type_, props) == []  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "type_", "props", "problem"),
    [
        ("aws-kms-key-enforce-deletion-window", "aws:kms/key:Key", {"tags": PROD, "deletionWindowInDays": 29}, "deletionWindowInDays 29 is under 30"),
        ("aws-kms-key-enforce-deletion-window", "aws:kms/key:Key", {"tags": DEV, "deletionWindowInDays": 0}, "is under 7"),
        ("aws-s3-bucketobjectlockconfiguration-enforce-retention", "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
         with_(LOCK, "rule.defaultRetention.mode", "NONE"), "mode 'NONE' is not one of"),
        ("aws-s3-bucketobjectlockconfiguration-enforce-retention", "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
         with_(LOCK, "objectLockEnabled", "Disabled"), "objectLockEnabled is 'Disabled'"),
        ("azure-storage-storageaccount-enforce-immutable-audit", "azure-native:storage:StorageAccount",
         with_(ARCHIVE, "immutableStorageWithVersioning.immutabilityPolicy.immutabilityPeriodSinceCreationInDays", 30), "is under 2192 in prod"),
        ("azure-storage-storageaccount-enforce-immutable-audit", "azure-native:storage:StorageAccount",
         with_(ARCHIVE, "immutableStorageWithVersioning.enabled", False), "enabled is not true"),
        ("gcp-kms-cryptokey-enforce-destroy-scheduled-duration", "gcp:kms/cryptoKey:CryptoKey", {"labels": PROD, "destroyScheduledDuration": "30d"}, "not a duration in seconds"),
        ("gcp-storage-bucket-enforce-locked-retention", "gcp:storage/bucket:Bucket", with_(AUDIT_BUCKET, "retentionPolicy.retentionPeriod", 30 * 86400), "is under 2192 days in prod"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 80 else "",
)
def test_backup_settings_refused_in_prod(name: str, type_: str, props: dict[str, Any], problem: str) -> None:
    policy = next(p for p in POLICIES if p.name == name)
    found = violations(policy, type_, props)  # type: ignore[arg-type]
    assert any(problem in m for m in found), (problem, found)


RESOURCE_RULES = {p.name: p for p in POLICIES if isinstance(p, ZeroTrustResourcePolicy)}


def violations(policy: ZeroTrustResourcePolicy, type_: str, props: dict[str, Any], config: dict | None = None, stack_tags: dict | None = None, name: str = "subject") -> list[str]:
    found: list[str] = []
    args = ResourceValidationArgs(
        type_, unknown_checking_proxy(copy.deepcopy(props)), f"urn:pulumi:dev::ccp::{type_}::{name}", name, None, None, config, stack_tags
    )
    policy.validate(args, lambda message, urn=None: found.append(message))
    return found


def test_every_resource_rule_has_cases() -> None:
    assert sorted(RESOURCE_RULES) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_compliant(name: str) -> None:
    type_, good, _, _ = CASES[name]
    assert violations(RESOURCE_RULES[name], type_, good) == []


@pytest.mark.parametrize("name", sorted(CASES))
def test_non_compliant(name: str) -> None:
    type_, _, bad, _ = CASES[name]
    found = violations(RESOURCE_RULES[name], type_, bad)
    assert found and all(m.startswith("subject") for m in found), found
    assert not any("is not set" in m for m in found), found


@pytest.mark.parametrize("name", sorted(CASES))
def test_missing_property_fails_closed(name: str) -> None:
    type_, _, _, missing = CASES[name]
    found = violations(RESOURCE_RULES[name], type_, missing)
    assert any("is not set" in m and "fail closed" in m for m in found), found


@pytest.mark.parametrize("name", sorted(CASES))
def test_rule_ignores_other_types(name: str) -> None:
    assert violations(RESOURCE_RULES[name], "random:index/randomId:RandomId", {}) == []


AZURE_CASES = sorted(n for n, case in CASES.items() if case[0].startswith("azure-native:"))


@pytest.mark.parametrize("name", AZURE_CASES)
def test_azure_api_version_module_gets_the_same_rule(name: str) -> None:
    """`pulumi_azure_native.<module>.v20230101` declares the same resource as `azure-native:<module>/v20230101:T`;
    the rule must judge it as it judges `azure-native:<module>:T` (otherwise pinning an API version escapes it)."""
    type_, good, bad, _ = CASES[name]
    module, resource = type_.split(":")[1:]
    for versioned in (f"azure-native:{module}/v20230101:{resource}", f"azure-native:{module}/v20240501preview:{resource}"):
        assert violations(RESOURCE_RULES[name], versioned, good) == []
        assert violations(RESOURCE_RULES[name], versioned, bad) == violations(RESOURCE_RULES[name], type_, bad) != []


def test_unknown_decisive_value_raises_for_the_analyzer() -> None:
    policy = RESOURCE_RULES["aws-kms-key-enforce-attestation"]
    with pytest.raises(UnknownValueError):
        violations(policy, "aws:kms/key:Key", {"policy": UNKNOWN_STRING_VALUE})


# --- details the table cannot show ---------------------------------------------------------------


def test_kms_messages_name_the_statement() -> None:
    found = violations(RESOURCE_RULES["aws-kms-key-enforce-attestation"], "aws:kms/key:Key", {"policy": kms_policy(extra=[ROOT_ALL])})
    assert found == [
        "subject: statement 'EnableRoot' allows a data-plane KMS action without a kms:RecipientAttestation "
        "condition: anyone it names can decrypt outside an enclave"
    ]


def test_kms_owner_opt_in_is_not_an_attestation_violation() -> None:
    assert violations(RESOURCE_RULES["aws-kms-key-enforce-attestation"], "aws:kms/key:Key", {"policy": kms_policy(extra=[OWNER])}) == []


def test_kms_null_condition_alone_does_not_gate_an_allow() -> None:
    sneaky = {"Sid": "S", "Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "kms:Decrypt", "Resource": "*", "Condition": {"Null": {"kms:RecipientAttestation:ImageSha384": "false"}}}
    assert violations(RESOURCE_RULES["aws-kms-key-enforce-attestation"], "aws:kms/key:Key", {"policy": kms_policy(extra=[sneaky])})


def test_kms_invalid_json_is_a_violation() -> None:
    assert violations(RESOURCE_RULES["aws-kms-key-missing-unattested-deny"], "aws:kms/key:Key", {"policy": "{not json"}) == [
        "subject: `policy` is not valid JSON (Expecting property name enclosed in double quotes)"
    ]


def test_generated_key_policy_passes_every_kms_rule() -> None:
    from components.attestation.aws_key_policy import key_policy
    from enclave_runtime.measurements import NitroMeasurements

    doc = key_policy(NitroMeasurements(pcr0=PCR0, pcr8="cd" * 48, pin=["pcr0", "pcr8"]), account_id="111122223333", enclave_role_arn=ROLE, admin_principal_arn=ADMIN)
    for name in ("aws-kms-key-enforce-attestation", "aws-kms-key-missing-unattested-deny", "aws-kms-key-disallow-debug-pcr", "aws-kms-key-disallow-owner-decrypt", "aws-kms-key-disallow-attestation-pattern"):
        assert violations(RESOURCE_RULES[name], "aws:kms/key:Key", {"policy": json.dumps(doc)}) == [], name


def test_azure_type_only_policy_is_refused() -> None:
    found = violations(RESOURCE_RULES["azure-keyvault-key-enforce-workload-claim"], "azure-native:keyvault:Key", azure_key(GOOD_CLAIMS[:2]))
    assert found == ["subject: release branch 0 pins no workload claim (only ['x-ms-isolation-tee.x-ms-attestation-type', 'x-ms-isolation-tee.x-ms-compliance-status'])"]


def test_azure_all_zero_measurement_is_refused() -> None:
    claims = [dict(c) for c in GOOD_CLAIMS]
    claims[2]["equals"] = ZERO
    assert violations(RESOURCE_RULES["azure-keyvault-key-enforce-workload-claim"], "azure-native:keyvault:Key", azure_key(claims)) == [
        "subject: release branch 0 pins an all-zero (debug) measurement"
    ]


def test_azure_non_exportable_key_without_policy_is_fine() -> None:
    props = {"properties": {"kty": "RSA-HSM", "attributes": {"exportable": False}}, "tags": PROD}
    for name in ("azure-keyvault-key-enforce-workload-claim", "azure-keyvault-key-disallow-debuggable-release", "azure-keyvault-key-enforce-hsm-release"):
        assert violations(RESOURCE_RULES[name], "azure-native:keyvault:Key", props) == [], name


def test_azure_sgx_product_id_range_is_refused() -> None:
    rule = RESOURCE_RULES["azure-keyvault-key-disallow-product-id-range"]
    assert violations(rule, "azure-native:keyvault:Key", azure_key(SGX_PRODUCT_RANGE)) == [
        "subject: release policy compares 'x-ms-sgx-product-id' by range (greaterOrEquals), not equals: it admits "
        "every other product of the same SGX signer"
    ]
    nested = [{"anyOf": [{"claim": "x-ms-sgx-product-id", "lessOrEquals": 4}, SGX_CLAIMS[0]]}, *SGX_CLAIMS[2:]]
    assert "by range (lessOrEquals)" in violations(rule, "azure-native:keyvault:Key", azure_key(nested))[0]
    assert violations(rule, "azure-native:keyvault:Key", azure_key(GOOD_CLAIMS)) == []


def test_azure_cvm_launch_measurement_or_mrtd_alone_is_refused() -> None:
    rule = RESOURCE_RULES["azure-keyvault-key-disallow-paravisor-only-binding"]
    assert violations(rule, "azure-native:keyvault:Key", azure_key(GOOD_CLAIMS)) == [
        "subject: release branch 0 pins only x-ms-isolation-tee.x-ms-sevsnpvm-launchmeasurement, which measures "
        "Microsoft's paravisor/firmware (or the container UVM), not the workload: any code in that TEE gets the key"
    ]
    tdx = [
        {"claim": "x-ms-attestation-type", "equals": "tdxvm"},
        {"claim": "tdx_mrtd", "equals": PCR0},
        {"claim": "tdx_td_attributes_debug", "equals": False},
    ]
    assert "pins only tdx_mrtd" in violations(rule, "azure-native:keyvault:Key", azure_key(tdx))[0]
    # A claim the collaboration's own attestation policy emits (measured image) identifies the workload.
    custom = GOOD_CLAIMS + [{"claim": "ccp-measured-image", "equals": "a1" * 32}]
    assert violations(rule, "azure-native:keyvault:Key", azure_key(custom)) == []
    assert violations(rule, "azure-native:keyvault:Key", azure_key(SGX_CLAIMS)) == []
    # The confidential OS-disk key is released to the paravisor by the platform, by design.
    disk = azure_key(GOOD_CLAIMS)
    disk["tags"] = purpose("confidential-disk")
    assert violations(rule, "azure-native:keyvault:Key", disk) == []
    assert "guest-attestation-confidential-virtual-machines-design" in rule.remediation_steps


@pytest.mark.parametrize(
    ("condition", "problem"),
    [
        ({"claim": "x-ms-sevsnpvm-hostdata", "equals": "*"}, "not an exact hex digest (wildcard or pattern)"),
        ({"claim": "x-ms-sevsnpvm-hostdata", "equals": "c7c7?"}, "not an exact hex digest (wildcard or pattern)"),
        ({"claim": "x-ms-sevsnpvm-hostdata", "notEquals": "00"}, "with notEquals, not equals"),
        ({"claim": "x-ms-sevsnpvm-hostdata", "exists": True}, "with exists, not equals"),
        ({"claim": "x-ms-sevsnpvm-hostdata", "matches": "c7.*"}, "with matches, not equals"),
    ],
)
def test_azure_measurement_pattern_is_refused(condition: dict[str, Any], problem: str) -> None:
    claims = [dict(c) for c in CONTAINER_CLAIMS]
    claims[2] = condition
    found = violations(RESOURCE_RULES["azure-keyvault-key-disallow-measurement-pattern"], "azure-native:keyvault:Key", azure_key(claims))
    assert len(found) == 1 and "'x-ms-sevsnpvm-hostdata'" in found[0] and problem in found[0], found


def test_azure_exportable_key_without_policy_is_refused() -> None:
    props = {"properties": {"kty": "RSA-HSM", "attributes": {"exportable": True}}, "tags": PROD}
    assert violations(RESOURCE_RULES["azure-keyvault-key-enforce-workload-claim"], "azure-native:keyvault:Key", props) == [
        "subject: key is exportable but has no release policy: anyone with release rights gets it"
    ]


def test_azure_vmguest_state_only_allowed_in_dev_not_prod() -> None:
    vm = with_(AZ_VM, "storageProfile.osDisk.managedDisk.securityProfile.securityEncryptionType", "VMGuestStateOnly")
    rule = RESOURCE_RULES["azure-compute-vm-enforce-confidential"]
    assert violations(rule, "azure-native:compute:VirtualMachine", with_(vm, "tags", DEV)) == []
    assert violations(rule, "azure-native:compute:VirtualMachine", vm) == [
        "subject: securityEncryptionType 'VMGuestStateOnly' not in ['DiskWithVMGuestState']"
    ]


@pytest.mark.parametrize(
    "mutation,problem",
    [
        (("assertion.dbgstat == 'disabled-since-boot' && ", ""), "admits a debug image (dbgstat 'enabled')"),
        (("'STABLE' in assertion.submods.confidential_space.support_attributes && ", ""), "admits an image without STABLE support"),
        (("assertion.swname == 'CONFIDENTIAL_SPACE' && ", ""), "admits software other than CONFIDENTIAL_SPACE"),
        ((f"assertion.submods.container.image_digest in ['{DIGEST}']", f"!(assertion.submods.container.image_digest in ['{DIGEST}'])"), "rejects a production token of its own approved image: cannot verify it is strict"),
        ((f"&& assertion.submods.container.image_digest in ['{DIGEST}'] ", f"|| assertion.submods.container.image_digest in ['{DIGEST}'] "), "admits a debug image (dbgstat 'enabled')"),
    ],
)
def test_gcp_condition_is_evaluated_not_pattern_matched(mutation: tuple[str, str], problem: str) -> None:
    condition = GOOD_CEL.replace(*mutation)
    assert condition != GOOD_CEL
    found = violations(RESOURCE_RULES["gcp-iam-workloadidentitypoolprovider-enforce-attestation-condition"], "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider", {"attributeCondition": condition})
    assert f"subject: attribute condition {problem}" in found, found


def test_gcp_generated_condition_passes() -> None:
    """The component's generator and this rule agree (independently written: the rule evaluates CEL)."""
    from components.attestation.gcp_condition import attribute_condition
    from enclave_runtime.measurements import ApprovedMeasurements

    measurements = ApprovedMeasurements.model_validate({"version": "1", "confidentialSpace": {"imageDigests": [DIGEST]}})
    condition = attribute_condition(measurements, workload_service_account="ccp-workload@ccp-dev-project.iam.gserviceaccount.com")
    rule = RESOURCE_RULES["gcp-iam-workloadidentitypoolprovider-enforce-attestation-condition"]
    assert violations(rule, "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider", {"attributeCondition": condition}) == []


def test_gcp_debug_image_allowed_in_dev() -> None:
    vm = with_(with_(GCP_VM, "labels", DEV), "bootDisk.initializeParams.image", "projects/confidential-space-images/global/images/family/confidential-space-debug")
    assert violations(RESOURCE_RULES["gcp-compute-instance-disallow-debug-image"], "gcp:compute/instance:Instance", vm) == []


def test_stack_tag_sets_environment_when_resource_has_none() -> None:
    key = {"versionTemplate": {"protectionLevel": "SOFTWARE"}}
    rule = RESOURCE_RULES["gcp-kms-cryptokey-enforce-hsm"]
    assert violations(rule, "gcp:kms/cryptoKey:CryptoKey", key, stack_tags={"environment": "dev"}) == []
    assert violations(rule, "gcp:kms/cryptoKey:CryptoKey", key) != []  # no environment at all: prod


def test_waiver_skips_resource_and_waiver_without_reason_is_reported() -> None:
    rule = RESOURCE_RULES["aws-ec2-subnet-disallow-public-ip-on-launch"]
    bad = {"mapPublicIpOnLaunch": True}
    waived = {"excludeFor": [{"resource": "bastion-*", "reason": "jump host subnet, reviewed in #42"}]}
    assert violations(rule, "aws:ec2/subnet:Subnet", bad, waived, name="bastion-a") == []
    assert violations(rule, "aws:ec2/subnet:Subnet", bad, waived, name="private-a") == ["private-a: mapPublicIpOnLaunch is true"]
    unreasoned = {"excludeFor": [{"resource": "bastion-*"}]}
    assert violations(rule, "aws:ec2/subnet:Subnet", bad, unreasoned, name="bastion-a") == [
        "excludeFor[0] waives 'bastion-*' without a reason: the waiver is ignored; every exception needs a reason reviewers can read",
        "bastion-a: mapPublicIpOnLaunch is true",
    ]


def test_waiver_by_urn() -> None:
    rule = RESOURCE_RULES["aws-ec2-subnet-disallow-public-ip-on-launch"]
    urn = "urn:pulumi:dev::ccp::aws:ec2/subnet:Subnet::edge"
    config = {"excludeFor": [{"resource": urn, "reason": "edge subnet"}]}
    assert violations(rule, "aws:ec2/subnet:Subnet", {"mapPublicIpOnLaunch": True}, config, name="edge") == []


def test_launch_template_without_interfaces_leaves_public_ip_to_instance_and_subnet() -> None:
    lt = with_(LT, "networkInterfaces", DROP)
    assert violations(RESOURCE_RULES["aws-ec2-instance-disallow-public-ip"], "aws:ec2/launchTemplate:LaunchTemplate", lt) == []


# --- key purposes (components/key_purpose.py): which rules judge which key -----------------------

ATTESTATION_RULES = ("aws-kms-key-enforce-attestation", "aws-kms-key-missing-unattested-deny")


@pytest.mark.parametrize("name", ATTESTATION_RULES)
def test_attestation_rules_leave_service_keys_to_the_via_service_rule(name: str) -> None:
    assert violations(RESOURCE_RULES[name], "aws:kms/key:Key", SERVICE_KEY) == []


@pytest.mark.parametrize("tags", [PROD, purpose("party-data"), purpose("party-storgae"), purpose("confidential-disk")])
@pytest.mark.parametrize("name", ATTESTATION_RULES)
def test_attestation_rules_judge_party_data_untagged_and_unknown_purposes(name: str, tags: dict[str, str]) -> None:
    """No purpose, a misspelt one or an attested one: the key is judged as a party data key (fail closed)."""
    assert violations(RESOURCE_RULES[name], "aws:kms/key:Key", {**SERVICE_KEY, "tags": tags})


def test_key_policy_resource_has_no_tags_and_is_always_judged_for_attestation() -> None:
    assert violations(RESOURCE_RULES["aws-kms-key-enforce-attestation"], "aws:kms/keyPolicy:KeyPolicy", {"policy": SERVICE_KEY["policy"]})


def test_via_service_rule_ignores_party_data_keys() -> None:
    rule = RESOURCE_RULES["aws-kms-key-enforce-via-service"]
    assert violations(rule, "aws:kms/key:Key", {"tags": purpose("party-data"), "policy": kms_policy()}) == []
    assert violations(rule, "aws:kms/key:Key", {"tags": PROD}) == []  # untagged: the attestation rules judge it


@pytest.mark.parametrize(
    "statement,why",
    [
        (DIRECT_USE, "has no kms:ViaService condition"),
        ({**VIA_S3, "Condition": {"StringEqualsIfExists": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}}}, "has no kms:ViaService condition"),
        ({**VIA_S3, "Condition": {"ForAllValues:StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}}}, "has no kms:ViaService condition"),
        ({**VIA_S3, "Condition": {"StringLike": {"kms:ViaService": "*.amazonaws.com"}}}, "has kms:ViaService ['*.amazonaws.com'], not exact service endpoints (<service>.<region>.amazonaws.com)"),
        ({**DIRECT_USE, "Principal": "*", "Action": "kms:*"}, "has no kms:ViaService condition"),
        ({**DIRECT_USE, "Action": "kms:CreateGrant"}, "has no kms:ViaService condition"),
        ({**DIRECT_USE, "Principal": {"Service": "cloudtrail.amazonaws.com", "AWS": ROLE}}, "has no kms:ViaService condition"),
    ],
)
def test_via_service_refuses_direct_use(statement: dict[str, Any], why: str) -> None:
    found = violations(RESOURCE_RULES["aws-kms-key-enforce-via-service"], "aws:kms/key:Key", {"tags": purpose("audit"), "policy": service_policy(statement)})
    assert found == [f"subject: audit key statement {statement['Sid']!r} lets a principal use the key directly: it {why}"]


def test_via_service_admits_aws_service_principals() -> None:
    statements = [
        {"Sid": "CloudTrail", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "kms:GenerateDataKey*", "Resource": "*"},
        {"Sid": "Logs", "Effect": "Allow", "Principal": {"Service": ["logs.eu-west-1.amazonaws.com"]}, "Action": ["kms:Encrypt*", "kms:Decrypt*"], "Resource": "*"},
    ]
    assert violations(RESOURCE_RULES["aws-kms-key-enforce-via-service"], "aws:kms/key:Key", {"tags": purpose("audit"), "policy": service_policy(*statements)}) == []


def test_generated_service_key_policies_pass_the_via_service_rule() -> None:
    """The component's service key policies (EBS with grants, audit, storage) are service-bound."""
    from components.aws.audit import audit_key_policy
    from components.aws.common import Account
    from components.attestation.aws_key_policy import break_glass_statements
    from components.aws.keys import via_service_statement
    from components.aws.site import ebs_key_policy

    account = Account("111122223333")
    documents = {
        "disk": ebs_key_policy(account, "eu-west-1", kubernetes=True),
        "audit": audit_key_policy(account, "eu-west-1", "arn:aws:cloudtrail:eu-west-1:111122223333:trail/t"),
        "party-storage": {"Statement": [*break_glass_statements(BREAK_GLASS), via_service_statement("UseThroughS3", [ROLE], "s3", "eu-west-1", account)]},
    }
    rule = RESOURCE_RULES["aws-kms-key-enforce-via-service"]
    for name, document in documents.items():
        assert violations(rule, "aws:kms/key:Key", {"tags": purpose(name), "policy": json.dumps(document)}) == [], name


def test_azure_release_rules_leave_service_keys_to_the_service_rule() -> None:
    key = {**azure_key(GOOD_CLAIMS[:2]), "tags": purpose("disk")}
    for name in ("azure-keyvault-key-enforce-workload-claim", "azure-keyvault-key-disallow-debuggable-release"):
        assert violations(RESOURCE_RULES[name], "azure-native:keyvault:Key", key) == [], name
    assert violations(RESOURCE_RULES["azure-keyvault-key-disallow-service-release"], "azure-native:keyvault:Key", key) == [
        "subject: disk key is exportable: a service key never leaves the HSM",
        "subject: disk key has a release policy: service keys are never released",
    ]


@pytest.mark.parametrize("tags", [PROD, purpose("party-data"), purpose("confidential-disk"), purpose("storage")])
def test_azure_release_rules_judge_attested_untagged_and_unknown_purposes(tags: dict[str, str]) -> None:
    key = {**azure_key(GOOD_CLAIMS[:2]), "tags": tags}
    assert violations(RESOURCE_RULES["azure-keyvault-key-enforce-workload-claim"], "azure-native:keyvault:Key", key)
    assert violations(RESOURCE_RULES["azure-keyvault-key-disallow-service-release"], "azure-native:keyvault:Key", key) == []


def test_storage_diagnostics_need_every_access_category() -> None:
    policy = RESOURCE_RULES["azure-monitor-diagnosticsetting-enable-audit-logs"]
    type_ = "azure-native:monitor:DiagnosticSetting"

    def setting(*categories: str) -> dict[str, Any]:
        return {"logs": [{"category": c, "enabled": True} for c in categories], "workspaceId": "/ws"}

    assert violations(policy, type_, setting("StorageRead", "StorageWrite", "StorageDelete")) == []
    assert violations(policy, type_, setting("StorageWrite", "StorageDelete")) == [
        "subject: no enabled audit log category (AuditEvent, category group audit or allLogs, or all of "
        "StorageRead/StorageWrite/StorageDelete)"
    ]


def test_kms_root_admin_message_names_the_statement_and_the_root() -> None:
    found = violations(RESOURCE_RULES["aws-kms-key-disallow-root-admin"], "aws:kms/key:Key", {"policy": kms_policy(extra=[ROOT_ADMIN, DENY_CHANGE])})
    assert len(found) == 1 and "'KeyAdministration'" in found[0] and "arn:aws:iam::111122223333:root" in found[0], found
    bare = {**ROOT_ADMIN, "Principal": {"AWS": ["111122223333"]}}
    assert violations(RESOURCE_RULES["aws-kms-key-disallow-root-admin"], "aws:kms/key:Key", {"policy": kms_policy(extra=[bare])})


def test_kms_root_admin_leaves_shared_service_keys_to_the_via_service_rule() -> None:
    shared = {**SERVICE_KEY, "tags": purpose("disk")}
    for name in ("aws-kms-key-disallow-root-admin", "aws-kms-key-enforce-policy-change-deny"):
        assert violations(RESOURCE_RULES[name], "aws:kms/key:Key", shared) == [], name


def test_kms_admin_rules_judge_party_storage_keys() -> None:
    """A party's storage key is administered like its data key: a root admin or no Deny fails."""
    assert violations(RESOURCE_RULES["aws-kms-key-disallow-root-admin"], "aws:kms/key:Key", SERVICE_KEY)
    assert violations(RESOURCE_RULES["aws-kms-key-enforce-policy-change-deny"], "aws:kms/key:Key", SERVICE_KEY)
    from components.attestation.aws_key_policy import break_glass_statements

    good = {**SERVICE_KEY, "policy": json.dumps({"Version": "2012-10-17", "Statement": [*break_glass_statements(BREAK_GLASS), VIA_S3]})}
    for name in ("aws-kms-key-disallow-root-admin", "aws-kms-key-enforce-policy-change-deny", "aws-kms-key-enforce-via-service"):
        assert violations(RESOURCE_RULES[name], "aws:kms/key:Key", good) == [], name


@pytest.mark.parametrize(
    ("deny", "problem"),
    [
        (None, "no explicit Deny"),
        ({**DENY_CHANGE, "Action": ["kms:PutKeyPolicy"]}, "no explicit Deny"),
        ({**DENY_CHANGE, "Condition": {"ArnNotEquals": {"aws:PrincipalArn": "arn:aws:iam::111122223333:root"}}}, "account root"),
        ({**DENY_CHANGE, "Condition": {"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/*"}}}, "ArnNotLike"),
        ({**DENY_CHANGE, "Condition": {"ArnNotEquals": {"aws:PrincipalArn": [BREAK_GLASS, ROLE]}}}, "exempts 2 principals"),
        ({**DENY_CHANGE, "Condition": {**DENY_CHANGE["Condition"], "StringEquals": {"aws:RequestedRegion": "eu-west-1"}}}, "not exactly one"),
        ({**DENY_CHANGE, "Principal": {"AWS": ROLE}}, "no explicit Deny"),
    ],
)
def test_kms_policy_change_must_be_confined_by_an_explicit_deny(deny: dict[str, Any] | None, problem: str) -> None:
    found = violations(RESOURCE_RULES["aws-kms-key-enforce-policy-change-deny"], "aws:kms/key:Key", {"policy": kms_policy(extra=[deny] if deny else [])})
    assert len(found) == 1 and "kms:PutKeyPolicy/kms:CreateGrant are not confined" in found[0] and problem in found[0], found


def test_kms_policy_change_deny_accepts_kms_star_and_string_not_equals() -> None:
    deny = {**DENY_CHANGE, "Action": "kms:*", "Condition": {"StringNotEquals": {"aws:PrincipalArn": BREAK_GLASS}}}
    assert violations(RESOURCE_RULES["aws-kms-key-enforce-policy-change-deny"], "aws:kms/key:Key", {"policy": kms_policy(extra=[deny])}) == []


def test_azure_confidential_des_auto_rotation_message_names_the_problem() -> None:
    found = violations(
        RESOURCE_RULES["azure-compute-diskencryptionset-disallow-confidential-auto-rotation"],
        "azure-native:compute:DiskEncryptionSet",
        {"encryptionType": "ConfidentialVmEncryptedWithCustomerKey", "rotationToLatestKeyVersionEnabled": True},
    )
    assert len(found) == 1 and "auto-rotation is not supported" in found[0], found
    # a standard customer-key set still follows its key's rotation
    assert violations(
        RESOURCE_RULES["azure-compute-diskencryptionset-disallow-confidential-auto-rotation"],
        "azure-native:compute:DiskEncryptionSet",
        {"encryptionType": "EncryptionAtRestWithCustomerKey", "rotationToLatestKeyVersionEnabled": True},
    ) == []
    # and the general CMK rule no longer asks a confidential set to auto-rotate
    assert violations(
        RESOURCE_RULES["azure-compute-diskencryptionset-configure-cmk"],
        "azure-native:compute:DiskEncryptionSet",
        {"encryptionType": "ConfidentialVmEncryptedWithCustomerKey", "activeKey": {"keyUrl": "https://v/keys/k/1"}, "rotationToLatestKeyVersionEnabled": False},
    ) == []


def test_azure_attestation_provider_without_signing_certificates_prod_only() -> None:
    rule = RESOURCE_RULES["azure-attestation-attestationprovider-require-policy-signing-certificates"]
    aad_mode = {"properties": {"publicNetworkAccess": "Enabled"}}
    found = violations(rule, "azure-native:attestation:AttestationProvider", {**aad_mode, "tags": PROD})
    assert found and "policySigningCertificates" in found[0], found
    found = violations(rule, "azure-native:attestation:AttestationProvider", {"properties": {"policySigningCertificates": {"keys": []}}, "tags": PROD})
    assert found and "AAD mode" in found[0], found
    # the environment comes from the resource tag, else the stack tag; dev is exempt
    assert violations(rule, "azure-native:attestation:AttestationProvider", {**aad_mode, "tags": DEV}) == []
    assert violations(rule, "azure-native:attestation:AttestationProvider", aad_mode, stack_tags=DEV) == []
    assert violations(rule, "azure-native:attestation:AttestationProvider", aad_mode, stack_tags=PROD)


# --- issue 12 item 5: every path to a key's plaintext that bypasses attestation ---------------------


@pytest.mark.parametrize(
    "operator,value,problem",
    [
        ("StringLike", PCR0, "StringLike, a pattern or set operator"),
        ("StringEqualsIfExists", PCR0, "true when the request carries no attestation document"),
        ("StringEqualsIgnoreCaseIfExists", PCR0, "true when the request carries no attestation document"),
        ("ForAnyValue:StringEquals", PCR0, "ForAnyValue:StringEquals, a pattern or set operator"),
        ("StringNotEquals", PCR0, "StringNotEquals, a pattern or set operator"),
        ("StringEqualsIgnoreCase", "*", "the wildcard value '*'"),
        ("StringEquals", PCR0[:-1] + "?", "wildcard value"),
        ("StringEqualsIgnoreCase", "approved-image", "not a full hex measurement"),
    ],
)
def test_kms_attestation_condition_must_pin_exactly(operator: str, value: str, problem: str) -> None:
    policy = RESOURCE_RULES["aws-kms-key-disallow-attestation-pattern"]
    found = violations(policy, "aws:kms/keyPolicy:KeyPolicy", {"policy": kms_policy(extra=[attestation_condition(operator, value)])})
    assert len(found) == 1 and problem in found[0] and "a pattern is not a pinned measurement" in found[0], found
    assert "AllowDecryptByAttestedEnclave" in found[0] and "kms:RecipientAttestation:ImageSha384" in found[0]


def test_kms_attestation_pattern_rule_accepts_exact_pins_and_the_null_deny() -> None:
    policy = RESOURCE_RULES["aws-kms-key-disallow-attestation-pattern"]
    exact = kms_policy(extra=[attestation_condition("StringEquals", PCR0.upper()), DENY_CHANGE])
    assert violations(policy, "aws:kms/key:Key", {"policy": exact}) == []
    # Service keys are judged by the via-service rule.
    bad = kms_policy(extra=[attestation_condition("StringLike", "*")])
    assert violations(policy, "aws:kms/key:Key", {"policy": bad, "tags": purpose("disk")}) == []


@pytest.mark.parametrize(
    "condition,problem",
    [
        (f"assertion.submods.container.image_digest.startsWith('{DIGEST[:20]}')", "with startsWith(), a pattern, not equality"),
        (f"assertion.submods.container.image_digest.matches('^{DIGEST}$')", "with matches(), a pattern, not equality"),
        (f"assertion.submods.container.image_digest.contains('{DIGEST[7:]}')", "with contains(), a pattern, not equality"),
        (f"assertion.submods.container.image_digest in ['{DIGEST}', 'sha256:*']", "'sha256:*', a partial or wildcard digest"),
    ],
)
def test_gcp_condition_refuses_digest_patterns(condition: str, problem: str) -> None:
    cel = GOOD_CEL.replace(f"assertion.submods.container.image_digest in ['{DIGEST}']", condition)
    found = violations(RESOURCE_RULES["gcp-iam-workloadidentitypoolprovider-enforce-attestation-condition"], "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider", {"attributeCondition": cel})
    assert any(problem in m for m in found), found


def test_azure_shared_key_is_mandatory_for_party_data_only() -> None:
    party = RESOURCE_RULES["azure-storage-storageaccount-disallow-party-shared-key"]
    general = RESOURCE_RULES["azure-storage-storageaccount-disallow-shared-key"]
    assert party.severity.value == "critical" and general.severity.value == "medium"
    party_on = with_(PARTY_STORAGE_ACCOUNT, "allowSharedKeyAccess", True)
    assert violations(party, "azure-native:storage:StorageAccount", party_on) == [
        "subject: allowSharedKeyAccess is not false on an account holding party data: the account keys and account SAS "
        "reach it without attestation"
    ]
    assert violations(general, "azure-native:storage:StorageAccount", party_on) == []
    # Untagged accounts hold party data (fail closed); `party: shared` ones are left to the general rule.
    untagged = with_(STORAGE, "allowSharedKeyAccess", True)
    assert violations(party, "azure-native:storage:StorageAccount", untagged)
    shared_on = with_(SHARED_STORAGE, "allowSharedKeyAccess", True)
    assert violations(party, "azure-native:storage:StorageAccount", shared_on) == []
    assert violations(general, "azure-native:storage:StorageAccount", shared_on) == ["subject: allowSharedKeyAccess is not false"]


@pytest.mark.parametrize(
    "path,value,problem",
    [
        ("sku", "Standard", "sku is 'Standard', not Confidential"),
        ("confidentialComputeProperties.ccePolicy", "", "ccePolicy is empty"),
        ("ipAddress", {"type": "Public", "ports": [{"port": 443}]}, "ipAddress.type is Public"),
        ("containers[0].securityContext.privileged", True, "containers[0] is privileged"),
        ("diagnostics", {"logAnalytics": {"workspaceId": "ws-1", "workspaceKey": "k"}}, "container logs go to Log Analytics"),
    ],
)
def test_confidential_container_group_problems_are_named(path: str, value: Any, problem: str) -> None:
    rule = RESOURCE_RULES["azure-containerinstance-containergroup-enforce-confidential"]
    found = violations(rule, "azure-native:containerinstance:ContainerGroup", with_(ACI, path, value))
    assert len(found) == 1 and problem in found[0], found


def test_container_group_rule_skips_groups_of_other_programs_and_fails_closed() -> None:
    rule = RESOURCE_RULES["azure-containerinstance-containergroup-enforce-confidential"]
    other = with_(with_(ACI, "tags", {"team": "web"}), "sku", "Standard")
    assert violations(rule, "azure-native:containerinstance:ContainerGroup", other) == []
    untagged = with_(with_(ACI, "tags", DROP), "sku", "Standard")
    assert violations(rule, "azure-native:containerinstance:ContainerGroup", untagged)
    private = with_(ACI, "ipAddress", {"type": "Private", "ports": [{"port": 443}]})
    assert violations(rule, "azure-native:containerinstance:ContainerGroup", private) == []
    no_context = with_(ACI, "containers[0].securityContext", DROP)
    assert any("containers[0].securityContext.privileged` is not set" in m for m in violations(rule, "azure-native:containerinstance:ContainerGroup", no_context))


def test_gcp_hmac_key_message_names_the_account() -> None:
    rule = RESOURCE_RULES["gcp-storage-hmackey-disallow-active-key"]
    assert rule.severity.value == "high"
    assert violations(rule, "gcp:storage/hmacKey:HmacKey", {"serviceAccountEmail": "sa@p.iam.gserviceaccount.com", "state": "ACTIVE"}) == [
        "subject: HMAC key of sa@p.iam.gserviceaccount.com is active: a shared secret that reads its buckets without attestation"
    ]


@pytest.mark.parametrize(("instance_type", "reason"), [
    ("trn1.2xlarge", "Requirements exclude this family"),  # starts with "t" but is refused for being excluded
    ("m7i.48xlarge", "Requirements exclude this size"),
    ("t3.large", "burstable T-family"),
    ("m6i.large", "needs >= 4 vCPUs"),
    ("m6i.metal", "needs >= 4 vCPUs, Nitro, not metal"),
])
def test_enclave_type_rule_names_the_reason(instance_type: str, reason: str) -> None:
    policy = RESOURCE_RULES["aws-ec2-instance-enforce-enclave-capable-type"]
    found = violations(policy, "aws:ec2/launchTemplate:LaunchTemplate", with_(LT, "instanceType", instance_type))
    assert len(found) == 1 and reason in found[0], found


@pytest.mark.parametrize(("change", "flagged"), [
    ({"privacy": DROP}, ["global-model"]),  # no budget at all: nothing is DP
    ({"outputs": ["global-model", "cohort-counts"]}, ["cohort-counts"]),
    ({"dataClassifications": ["confidential", "internal"], "privacy": DROP}, []),  # no personal data: not judged
    ({"dataClassifications": ["pci"], "privacy": DROP}, ["global-model"]),
    ({"outputs": []}, []),  # nothing released
])
def test_collaboration_releases_over_personal_data_must_be_dp(change: dict[str, Any], flagged: list[str]) -> None:
    props = dict(RELEASES)
    for key, value in change.items():
        props = with_(props, key, value)
    found = violations(RESOURCE_RULES["stack-collaboration-output-enforce-dp"], "ccp:index:Collaboration", props)
    assert [m.split("output ")[1].split(" ")[0].strip("'") for m in found] == flagged, found


def test_cvm_ssh_logins_other_than_the_no_access_key_are_operator_access() -> None:
    """ARM requires a credential: ccp's no-access key (private half discarded) opens nothing, any other key does."""
    from components.azure.options import NO_ACCESS_SSH_PUBLIC_KEY

    rule = RESOURCE_RULES["azure-compute-vm-disallow-operator-access"]
    path = "osProfile.linuxConfiguration.ssh"
    no_access = with_(GUEST_VM, path, {"publicKeys": [{"path": "/home/a/.ssh/authorized_keys", "keyData": NO_ACCESS_SSH_PUBLIC_KEY}]})
    assert violations(rule, "azure-native:compute:VirtualMachine", no_access) == []
    operator = with_(no_access, f"{path}.publicKeys", [*no_access["osProfile"]["linuxConfiguration"]["ssh"]["publicKeys"],
                                                      {"keyData": "ssh-ed25519 AAAAC3Nza operator"}])
    assert violations(rule, "azure-native:compute:VirtualMachine", operator) == [
        "subject: 1 SSH key(s) other than ccp's no-access key log in to the guest"
    ]
