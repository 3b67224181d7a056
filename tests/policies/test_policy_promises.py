"""Every promise a rule makes, pinned by a test generated from what the rule declares it reads.

For each rule and each (type, path) in its `reads`:
- the path removed from a compliant fixture must give a violation naming it (fail closed), unless the
  allow-list below says, with a reason, why its absence is safe;
- a boolean at the path flipped must give a violation naming it, unless allow-listed with a reason.
Non-compliant cases must name the problem; waivers need a reason that is not blank; the GCP
attestation-condition rule refuses a condition missing any clause its own remediation asks for.

Rules are evaluated directly (as in test_policy_rules.py), never through a program run, so this file
stays fast.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Iterator

import pytest
from pulumi_policy import StackValidationArgs
from pulumi_policy.policy import PolicyResource, PolicyResourceOptions

from tests.policies import kubernetes_cases
from policies.zero_trust import pack
from policies.zero_trust.rules._base import ZeroTrustStackPolicy, _segments, lookup, read_waivers
from test_policy_rules import (
    AZ_VM,
    CASES,
    DENY_CHANGE,
    DIGEST,
    EC2,
    GCP_VM,
    GOOD_CEL,
    LT,
    PRINCIPAL,
    RESOURCE_RULES,
    azure_key,
    kms_policy,
    purpose,
    violations,
    with_,
    DROP,
    PROD,
    GOOD_CLAIMS,
    RUN_ENCLAVE_SCRIPT,
    b64text,
)

# --- fixtures: every compliant shape of every (rule, type) -----------------------------------------

KEY, KEY_POLICY = "aws:kms/key:Key", "aws:kms/keyPolicy:KeyPolicy"
AWS_INSTANCE, AWS_LT, AWS_VOLUME = "aws:ec2/instance:Instance", "aws:ec2/launchTemplate:LaunchTemplate", "aws:ebs/volume:Volume"
SG, SG_RULE = "aws:ec2/securityGroup:SecurityGroup", "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
GCE, GCE_TEMPLATE = "gcp:compute/instance:Instance", "gcp:compute/instanceTemplate:InstanceTemplate"
NSG, NSG_RULE = "azure-native:network:NetworkSecurityGroup", "azure-native:network:SecurityRule"
CS_IMAGE = "projects/confidential-space-images/global/images/family/confidential-space"
GCP_TEMPLATE = {
    "labels": PROD,
    "confidentialInstanceConfig": {"confidentialInstanceType": "SEV_SNP"},
    "scheduling": {"onHostMaintenance": "TERMINATE"},
    "shieldedInstanceConfig": {"enableSecureBoot": True, "enableVtpm": True, "enableIntegrityMonitoring": True},
    "disks": [{"sourceImage": CS_IMAGE, "diskEncryptionKey": {"kmsKeySelfLink": "projects/p/locations/l/keyRings/r/cryptoKeys/k"}}],
    "metadata": {"tee-image-reference": f"europe-docker.pkg.dev/p/w/fl@{DIGEST}"},
    "networkInterfaces": [{"network": "n"}],
    "serviceAccount": {"email": "wl@p.iam.gserviceaccount.com"},
}
DATA_KEY_POLICY = {"policy": kms_policy(extra=[DENY_CHANGE])}
DATA_KEY = {**DATA_KEY_POLICY, "tags": purpose("party-data")}
POD_SPEC = {"containers": [{"name": "w", "image": f"r/w@{DIGEST}"}]}

# (rule, type) -> compliant props, besides the CASES fixture of the rule's first type.
EXTRA: dict[tuple[str, str], list[dict[str, Any]]] = {
    **{(r, t): [DATA_KEY_POLICY, DATA_KEY] for r in (
        "aws-kms-key-enforce-attestation", "aws-kms-key-missing-unattested-deny", "aws-kms-key-disallow-debug-pcr",
        "aws-kms-key-disallow-owner-decrypt", "aws-kms-key-disallow-root-admin", "aws-kms-key-enforce-policy-change-deny",
        "aws-kms-key-disallow-attestation-pattern") for t in (KEY, KEY_POLICY)},
    ("aws-ec2-instance-enable-enclave", AWS_INSTANCE): [{**EC2, "enclaveOptions": {"enabled": False}, "cpuOptions": {"amdSevSnp": "enabled"}}],
    ("aws-ec2-instance-enable-enclave", AWS_LT): [LT, {**LT, "enclaveOptions": {"enabled": False}, "cpuOptions": {"amdSevSnp": "enabled"}}],
    ("aws-ec2-instance-enforce-enclave-capable-type", AWS_INSTANCE): [EC2],
    ("aws-ec2-instance-enforce-imdsv2", AWS_LT): [LT],
    ("aws-ec2-instance-disallow-public-ip", AWS_INSTANCE): [EC2],
    ("aws-ec2-volume-enforce-cmk-encryption", AWS_INSTANCE): [{**EC2, "ebsBlockDevices": [{"encrypted": True, "kmsKeyId": "arn:key"}]}],
    ("aws-ec2-volume-enforce-cmk-encryption", AWS_LT): [LT],
    ("aws-ec2-volume-enforce-cmk-encryption", AWS_VOLUME): [{"encrypted": True, "kmsKeyId": "arn:key"}],
    ("aws-ec2-securitygroup-disallow-open-ingress", SG_RULE): [{"cidrIpv6": "fd00::/8"}, {"referencedSecurityGroupId": "sg-1"}, {"prefixListId": "pl-1"}],
    ("aws-ec2-securitygroup-disallow-open-ingress", SG): [{"ingress": [{"cidrBlocks": ["10.0.0.0/16"], "ipv6CidrBlocks": ["fd00::/8"]}]}],
    ("aws-iam-policy-disallow-wildcard-kms", "aws:iam/policy:Policy"): [CASES["aws-iam-policy-disallow-wildcard-kms"][1]],
    ("azure-compute-vm-enforce-cmk-disk", "azure-native:compute:VirtualMachine"): [
        with_(with_(AZ_VM, "storageProfile.osDisk.managedDisk.securityProfile.diskEncryptionSet", DROP), "storageProfile.osDisk.managedDisk.diskEncryptionSet", {"id": "/des"})
    ],
    ("azure-containerinstance-containergroup-enforce-confidential", "azure-native:containerinstance:ContainerGroup"): [
        {**CASES["azure-containerinstance-containergroup-enforce-confidential"][1], "ipAddress": {"type": "Private"},
         "initContainers": [{"name": "i", "image": f"r/i@{DIGEST}", "securityContext": {"privileged": False}}]},
    ],
    ("azure-keyvault-vault-disallow-public-network", "azure-native:keyvault:Vault"): [{"properties": {"publicNetworkAccess": "Enabled", "networkAcls": {"defaultAction": "Deny"}}}],
    ("azure-monitor-diagnosticsetting-enable-audit-logs", "azure-native:monitor:DiagnosticSetting"): [{"logs": [{"category": "AuditEvent", "enabled": True}], "storageAccountId": "/sa"}],
    ("azure-network-networksecuritygroup-disallow-open-ingress", NSG_RULE): [{"direction": "Inbound", "access": "Allow", "sourceAddressPrefixes": ["10.0.0.0/8"]}],
    ("azure-network-networksecuritygroup-disallow-open-ingress", NSG): [
        {"securityRules": [{"name": "r", "direction": "Inbound", "access": "Allow", "sourceAddressPrefix": "VirtualNetwork"}]},
        {"securityRules": [{"name": "r", "direction": "Inbound", "access": "Allow", "sourceAddressPrefixes": ["10.0.0.0/8"]}]},
    ],
    ("gcp-compute-firewall-disallow-open-ingress", "gcp:compute/firewall:Firewall"): [
        {"direction": "INGRESS", "sourceTags": ["bastion"], "allows": [{"protocol": "tcp"}]},
        {"direction": "INGRESS", "sourceServiceAccounts": ["b@p.iam.gserviceaccount.com"], "allows": [{"protocol": "tcp"}]},
    ],
    ("gcp-compute-instance-enforce-confidential", GCE): [with_(GCP_VM, "confidentialInstanceConfig", {"enableConfidentialCompute": True})],
    ("gcp-compute-instance-enforce-confidential", GCE_TEMPLATE): [GCP_TEMPLATE, with_(GCP_TEMPLATE, "confidentialInstanceConfig", {"enableConfidentialCompute": True})],
    **{(r, GCE_TEMPLATE): [GCP_TEMPLATE] for r in (
        "gcp-compute-instance-enable-shielded-vm", "gcp-compute-instance-disallow-debug-image", "gcp-compute-instance-enforce-image-digest",
        "gcp-compute-instance-disallow-public-ip", "gcp-compute-instance-enforce-cmk-disk", "gcp-compute-instance-disallow-default-service-account")},
    ("gcp-iam-member-disallow-public-principal", "gcp:kms/cryptoKeyIAMBinding:CryptoKeyIAMBinding"): [{"role": "roles/cloudkms.cryptoKeyDecrypter", "members": [PRINCIPAL]}],
    ("gcp-iam-member-disallow-public-principal", "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"): [{"role": "roles/cloudkms.cryptoKeyDecrypter", "member": PRINCIPAL}],
    ("gcp-iam-member-disallow-public-principal", "gcp:storage/bucketIAMMember:BucketIAMMember"): [{"role": "roles/storage.objectViewer", "member": PRINCIPAL}],
    ("gcp-projects-iamauditconfig-enable-data-access", "gcp:projects/iAMAuditConfig:IAMAuditConfig"): [
        {"service": "cloudkms.googleapis.com", "auditLogConfigs": [{"logType": t, "exemptedMembers": []} for t in ("DATA_READ", "DATA_WRITE", "ADMIN_READ")]},
    ],
    **{("kubernetes-apps-workload-enforce-image-digest", t): [{"spec": {"template": {"spec": POD_SPEC}}}] for t in ("kubernetes:apps/v1:DaemonSet", "kubernetes:apps/v1:StatefulSet")},
    ("kubernetes-apps-workload-enforce-image-digest", "kubernetes:core/v1:Pod"): [{"spec": POD_SPEC}],
    # Workload start: every host type's compliant shape (the instance case is in CASES).
    ("stack-compute-host-enforce-workload-start", AWS_INSTANCE): [{**EC2, "userData": RUN_ENCLAVE_SCRIPT}],
    ("stack-compute-host-enforce-workload-start", AWS_LT): [
        {**LT, "userData": b64text(RUN_ENCLAVE_SCRIPT)},
        {**LT, "userData": b64text("# ccp-workload-start: kubernetes\n")},
    ],
    ("stack-compute-host-enforce-workload-start", "azure-native:compute:VirtualMachine"): [
        {**AZ_VM, "osProfile": {"customData": b64text("#cloud-config\n")}}],
    ("stack-compute-host-enforce-workload-start", "azure-native:containerinstance:ContainerGroup"): [
        {"containers": [{"name": "w", "image": f"r/w@{DIGEST}", "command": ["python", "-m", "enclave_runtime", "serve"]}]}],
    ("stack-compute-host-enforce-workload-start", GCE): [GCP_VM],
    ("stack-compute-host-enforce-workload-start", GCE_TEMPLATE): [GCP_TEMPLATE],
    # Tagged variants: a tag that only narrows which keys/stores a rule judges, dropped, must leave the rule judging.
    **{(r, "azure-native:keyvault:Key"): [{**azure_key(), "tags": purpose("party-data")}] for r in (
        "azure-keyvault-key-enforce-workload-claim", "azure-keyvault-key-disallow-debuggable-release",
        "azure-keyvault-key-disallow-client-payload-claim", "azure-keyvault-key-disallow-measurement-pattern")},
}


EXTRA.update(kubernetes_cases.EXTRA)


def fixtures(rule: str, type_: str) -> list[dict[str, Any]]:
    case_type, good, _, _ = CASES[rule]
    return ([good] if case_type == type_ else []) + EXTRA.get((rule, type_), [])


# --- allow-lists: absences and flips that are safe, and why ----------------------------------------

_UNTAGGED_KEY = "an untagged key is judged as a party data key (key_purpose fails closed): the strictest rules apply"
_UNTAGGED_PROD = "without labels/tags the environment is prod (Subject.environment fails closed): the strict branch applies"
_POLICY_SUFFICES = "a release policy is present and judged; exportable only matters for a key without one"

# (rule, path) -> why removing that property from a compliant resource is safe (no violation expected).
SAFE_ABSENCE: dict[tuple[str, str], str] = {
    **{(r, "tags"): _UNTAGGED_KEY for r in (
        "aws-kms-key-enforce-attestation", "aws-kms-key-missing-unattested-deny", "aws-kms-key-disallow-root-admin",
        "aws-kms-key-enforce-policy-change-deny", "aws-kms-key-disallow-attestation-pattern",
        "azure-keyvault-key-enforce-workload-claim", "azure-keyvault-key-disallow-debuggable-release",
        "azure-keyvault-key-disallow-client-payload-claim", "azure-keyvault-key-disallow-product-id-range",
        "azure-keyvault-key-disallow-paravisor-only-binding", "azure-keyvault-key-disallow-measurement-pattern",
        "azure-keyvault-key-enforce-measured-guest-release")},
    ("azure-compute-vm-disallow-operator-access", "tags"): "an untagged VM runs a collaboration workload (fails closed): judged by this rule",
    ("aws-kms-key-enforce-via-service", "tags"): "an untagged key is not a service key: the attestation rules judge it (test_attestation_rules_judge_party_data_untagged_and_unknown_purposes)",
    ("azure-keyvault-key-disallow-service-release", "tags"): "an untagged key is not a service key: the release-policy rules judge it (test_azure_release_rules_judge_attested_untagged_and_unknown_purposes)",
    ("azure-keyvault-key-disallow-service-release", "properties.releasePolicy.data"): "no release policy is the compliant state of a service key",
    ("azure-storage-storageaccount-disallow-party-shared-key", "tags"): "an untagged account holds party data (holds_party_data fails closed): judged by this rule",
    ("azure-containerinstance-containergroup-enforce-confidential", "tags"): "an untagged group runs a collaboration workload (fails closed): judged by this rule",
    ("azure-containerinstance-containergroup-enforce-confidential", "diagnostics.logAnalytics.workspaceId"): "no Log Analytics destination is the compliant state: container output stays in the TEE",
    **{(r, "properties.attributes.exportable"): _POLICY_SUFFICES for r in (
        "azure-keyvault-key-enforce-workload-claim", "azure-keyvault-key-disallow-debuggable-release",
        "azure-keyvault-key-disallow-client-payload-claim", "azure-keyvault-key-disallow-product-id-range",
        "azure-keyvault-key-disallow-paravisor-only-binding", "azure-keyvault-key-disallow-measurement-pattern",
        "azure-keyvault-key-enforce-measured-guest-release")},
    ("gcp-compute-instance-disallow-debug-image", "labels"): _UNTAGGED_PROD,
    ("gcp-kms-cryptokey-enforce-hsm", "labels"): _UNTAGGED_PROD,
    ("gcp-compute-firewall-disallow-open-ingress", "direction"): "the provider's default direction is INGRESS, and the rule judges a missing direction as INGRESS",
    ("gcp-compute-firewall-disallow-open-ingress", "allows"): "a firewall without allow blocks is a deny rule: it admits nothing",
    ("gcp-compute-instance-disallow-public-ip", "networkInterfaces[*].network"): "the network names the VPC; only accessConfigs gives an external IP",
    ("gcp-compute-instance-disallow-public-ip", "networkInterfaces[*].accessConfigs"): "no access config is the compliant state: no external IP",
    ("gcp-projects-iamauditconfig-enable-data-access", "auditLogConfigs[*].exemptedMembers"): "no exemption list is the compliant state: nobody is exempt",
    ("gcp-storage-hmackey-disallow-active-key", "serviceAccountEmail"): "an INACTIVE key signs nothing, whichever account it belongs to",
    ("aws-iam-accesskey-disallow-long-lived-key", "user"): "an Inactive access key signs nothing, whichever user it belongs to",
    ("azure-network-networkinterface-disallow-public-ip", "ipConfigurations[*].name"): "the name labels the configuration; only publicIPAddress exposes it",
    ("azure-network-networkinterface-disallow-public-ip", "ipConfigurations[*].publicIPAddress"): "no public IP is the compliant state",
    ("aws-ec2-securitygroup-disallow-open-ingress", "ingress[*].cidrBlocks"): "an ingress block without CIDRs admits no address range (it names groups or prefix lists)",
    ("aws-ec2-securitygroup-disallow-open-ingress", "ingress[*].ipv6CidrBlocks"): "an ingress block without IPv6 CIDRs admits no IPv6 range",
    ("aws-ec2-instance-enable-enclave", "cpuOptions.amdSevSnp"): "alternative to enclaveOptions.enabled: either TEE suffices; dropping the one in use fails (fixture with SEV-SNP only)",
    ("aws-ec2-instance-enable-enclave", "enclaveOptions.enabled"): "alternative to cpuOptions.amdSevSnp: either TEE suffices; dropping the one in use fails (fixture with Nitro only)",
    ("azure-compute-vm-enforce-cmk-disk", "storageProfile.osDisk.managedDisk.diskEncryptionSet.id"): "alternative to the security profile's set (confidential VMs); dropping the one in use fails",
    ("azure-compute-vm-enforce-cmk-disk", "storageProfile.osDisk.managedDisk.securityProfile.diskEncryptionSet.id"): "alternative to managedDisk.diskEncryptionSet; dropping the one in use fails",
    ("azure-keyvault-vault-disallow-public-network", "properties.publicNetworkAccess"): "alternative to networkAcls.defaultAction Deny; dropping both fails",
    ("azure-keyvault-vault-disallow-public-network", "properties.networkAcls.defaultAction"): "alternative to publicNetworkAccess Disabled; dropping both fails",
    ("azure-monitor-diagnosticsetting-enable-audit-logs", "workspaceId"): "alternative destination to storageAccountId; dropping both fails",
    ("azure-monitor-diagnosticsetting-enable-audit-logs", "storageAccountId"): "alternative destination to workspaceId; dropping both fails",
    ("azure-monitor-diagnosticsetting-enable-audit-logs", "logs[*].category"): "alternative to categoryGroup; dropping the one in use fails",
    ("azure-monitor-diagnosticsetting-enable-audit-logs", "logs[*].categoryGroup"): "alternative to category; dropping the one in use fails",
    ("azure-network-networksecuritygroup-disallow-open-ingress", "sourceAddressPrefix"): "alternative to sourceAddressPrefixes; dropping the one in use fails",
    ("azure-network-networksecuritygroup-disallow-open-ingress", "sourceAddressPrefixes"): "alternative to sourceAddressPrefix; dropping the one in use fails",
    ("azure-network-networksecuritygroup-disallow-open-ingress", "securityRules[*].sourceAddressPrefix"): "alternative to sourceAddressPrefixes; dropping the one in use fails",
    ("azure-network-networksecuritygroup-disallow-open-ingress", "securityRules[*].sourceAddressPrefixes"): "alternative to sourceAddressPrefix; dropping the one in use fails",
    ("aws-ec2-securitygroup-disallow-open-ingress", "cidrIpv4"): "alternative source (cidrIpv6, a security group or a prefix list); dropping the only one fails",
    ("aws-ec2-securitygroup-disallow-open-ingress", "cidrIpv6"): "alternative source; dropping the only one fails",
    ("aws-ec2-securitygroup-disallow-open-ingress", "referencedSecurityGroupId"): "alternative source; dropping the only one fails",
    ("aws-ec2-securitygroup-disallow-open-ingress", "prefixListId"): "alternative source; dropping the only one fails",
    ("gcp-compute-firewall-disallow-open-ingress", "sourceRanges"): "alternative source (tags, service accounts); dropping the only one fails",
    ("gcp-compute-firewall-disallow-open-ingress", "sourceTags"): "alternative source; dropping the only one fails",
    ("gcp-compute-firewall-disallow-open-ingress", "sourceServiceAccounts"): "alternative source; dropping the only one fails",
    ("gcp-compute-instance-enforce-confidential", "confidentialInstanceConfig.enableConfidentialCompute"): "alternative to confidentialInstanceType; dropping the one in use fails",
    ("gcp-compute-instance-enforce-confidential", "confidentialInstanceConfig.confidentialInstanceType"): "alternative to enableConfidentialCompute; dropping the one in use fails",
    ("stack-compute-host-enforce-workload-start", "enclaveOptions.enabled"): "a host without Nitro Enclaves is not an enclave host: aws-ec2-instance-enable-enclave judges that",
    ("stack-compute-host-enforce-workload-start", "bootDisk.initializeParams.image"): "a VM not booting the Confidential Space image has no launcher to start; the GCP image rules judge the image",
    ("stack-compute-host-enforce-workload-start", "disks[*].sourceImage"): "a template not booting the Confidential Space image has no launcher to start; the GCP image rules judge the image",
    # Backup and recovery (issue 18): untagged is prod (the strict minimum applies).
    ("aws-kms-key-enforce-deletion-window", "tags"): _UNTAGGED_PROD,
    ("azure-keyvault-vault-enforce-soft-delete-retention", "tags"): _UNTAGGED_PROD,
    ("azure-storage-storageaccount-enforce-immutable-audit", "tags"): _UNTAGGED_PROD,
    ("gcp-kms-cryptokey-enforce-destroy-scheduled-duration", "labels"): _UNTAGGED_PROD,
    ("gcp-storage-bucket-enforce-locked-retention", "labels"): _UNTAGGED_PROD,
}

SAFE_ABSENCE.update(kubernetes_cases.SAFE_ABSENCE)
SAFE_ABSENCE[("azure-compute-vm-disallow-operator-access", "osProfile.linuxConfiguration.ssh.publicKeys[*].keyData")] = (
    "no SSH key is no key login")

# path -> how a rule's message names it when the path's last key is not the word it uses.
NAMED_AS: dict[str, str] = {
    "auditLogConfigs[*].logType": "does not log",
    "agentPoolProfiles[*].vmSize": "size None",
    "properties.releasePolicy.data": "release policy",
    "properties.rotationPolicy.lifetimeActions[*].action.type": "'rotate' lifetime action",
    "properties.rotationPolicy.lifetimeActions[*].trigger.timeAfterCreate": "timeAfterCreate",
    "vpcConfig.endpointPrivateAccess": "private endpoint is disabled",
    "vpcConfig.endpointPublicAccess": "API endpoint is public",
    "securityProfile.azureKeyVaultKms.enabled": "KMS secrets encryption is disabled",
    "apiServerAccessProfile.enablePrivateCluster": "API server is public",
    "confidentialInstanceConfig.enableConfidentialCompute": "confidential computing is not enabled",
}


def drop(props: dict[str, Any], path: str) -> dict[str, Any]:
    """A deep copy of `props` without `path` (`[*]` drops the key from every list item)."""
    out = copy.deepcopy(props)

    def walk(node: Any, segments: list[str]) -> None:
        head, rest = segments[0], segments[1:]
        if head.startswith("["):
            if not isinstance(node, list):
                return
            items = node if head == "[*]" else node[int(head[1:-1]):int(head[1:-1]) + 1]
            if rest:
                for item in items:
                    walk(item, rest)
            else:
                node.clear()
        elif isinstance(node, dict) and head in node:
            if rest:
                walk(node[head], rest)
            else:
                del node[head]

    walk(out, _segments(path))
    return out


def leaf(path: str) -> str:
    return [s for s in _segments(path) if not s.startswith("[")][-1]


def _reads() -> Iterator[tuple[str, str, str]]:
    for name, rule in sorted(RESOURCE_RULES.items()):
        for type_, path in rule.reads:
            yield name, type_, path


READS = sorted(set(_reads()))


@pytest.mark.parametrize(("name", "type_", "path"), READS, ids=lambda v: str(v))
def test_every_read_is_in_a_compliant_fixture(name: str, type_: str, path: str) -> None:
    """Each declared read has a compliant fixture that sets it (or an absence reason): no vacuous test."""
    found = [p for p in fixtures(name, type_) if lookup(p, path)]
    assert found or (name, path) in SAFE_ABSENCE, f"{name} {type_}: no compliant fixture sets {path}"
    for props in fixtures(name, type_):
        assert violations(RESOURCE_RULES[name], type_, props) == [], (name, type_, props)


@pytest.mark.parametrize(("name", "type_", "path"), READS, ids=lambda v: str(v))
def test_removing_a_read_property_fails_closed(name: str, type_: str, path: str) -> None:
    """Dropping any property a rule reads from a compliant resource is a violation naming it."""
    rule = RESOURCE_RULES[name]
    for props in fixtures(name, type_):
        if not lookup(props, path):
            continue
        # A fixture where another read supplies the same guarantee (alternatives) cannot show the drop.
        found = violations(rule, type_, drop(props, path))
        if (name, path) in SAFE_ABSENCE:
            continue
        assert found, f"{name}: dropping {path} from a compliant {type_} is silent (fail open)"
        named = NAMED_AS.get(path, leaf(path))
        assert any(named in m or "is not set" in m for m in found), (path, found)


@pytest.mark.parametrize("key", sorted(SAFE_ABSENCE), ids=lambda v: str(v))
def test_safe_absence_is_real_and_reasoned(key: tuple[str, str]) -> None:
    """Each allow-listed absence names a property the rule really reads and gives a reason."""
    name, path = key
    assert name in RESOURCE_RULES, name
    assert path in {p for _, p in RESOURCE_RULES[name].reads}, key
    assert len(SAFE_ABSENCE[key].split()) >= 4, "give a reason a reviewer can check"


ALTERNATIVES: dict[tuple[str, str], list[str]] = {
    # Dropping every alternative at once fails closed.
    ("aws-ec2-instance-enable-enclave", AWS_INSTANCE): ["enclaveOptions.enabled", "cpuOptions.amdSevSnp"],
    ("azure-compute-vm-enforce-cmk-disk", "azure-native:compute:VirtualMachine"): [
        "storageProfile.osDisk.managedDisk.diskEncryptionSet.id", "storageProfile.osDisk.managedDisk.securityProfile.diskEncryptionSet.id"],
    ("azure-keyvault-vault-disallow-public-network", "azure-native:keyvault:Vault"): ["properties.publicNetworkAccess", "properties.networkAcls.defaultAction"],
    ("azure-monitor-diagnosticsetting-enable-audit-logs", "azure-native:monitor:DiagnosticSetting"): ["workspaceId", "storageAccountId"],
    ("azure-network-networksecuritygroup-disallow-open-ingress", NSG_RULE): ["sourceAddressPrefix", "sourceAddressPrefixes"],
    ("azure-network-networksecuritygroup-disallow-open-ingress", NSG): ["securityRules[*].sourceAddressPrefix", "securityRules[*].sourceAddressPrefixes"],
    ("aws-ec2-securitygroup-disallow-open-ingress", SG_RULE): ["cidrIpv4", "cidrIpv6", "referencedSecurityGroupId", "prefixListId"],
    ("gcp-compute-firewall-disallow-open-ingress", "gcp:compute/firewall:Firewall"): ["sourceRanges", "sourceTags", "sourceServiceAccounts"],
    ("gcp-compute-instance-enforce-confidential", GCE): ["confidentialInstanceConfig.enableConfidentialCompute", "confidentialInstanceConfig.confidentialInstanceType"],
    ("gcp-compute-instance-enforce-confidential", GCE_TEMPLATE): ["confidentialInstanceConfig.enableConfidentialCompute", "confidentialInstanceConfig.confidentialInstanceType"],
}


@pytest.mark.parametrize("key", sorted(ALTERNATIVES), ids=lambda v: str(v))
def test_dropping_every_alternative_fails_closed(key: tuple[str, str]) -> None:
    name, type_ = key
    for props in fixtures(name, type_):
        for path in ALTERNATIVES[key]:
            props = drop(props, path)
        assert violations(RESOURCE_RULES[name], type_, props), f"{name}: none of {ALTERNATIVES[key]} set, yet silent"


@pytest.mark.parametrize("path", ["securityRules[*].direction", "securityRules[*].access"])
def test_nsg_inline_rule_without_direction_or_access_fails_closed(path: str) -> None:
    """Fail-open fixed: an inline NSG rule without direction/access was judged 'not inbound/allow'."""
    open_rule = {"securityRules": [{"name": "r", "direction": "Inbound", "access": "Allow", "sourceAddressPrefix": "*"}]}
    rule = RESOURCE_RULES["azure-network-networksecuritygroup-disallow-open-ingress"]
    assert violations(rule, NSG, open_rule) == ["subject: rule 'r' allows inbound from *"]
    found = violations(rule, NSG, drop(open_rule, path))
    assert found and f"securityRules[0].{leaf(path)}` is not set" in found[0], found


# --- flipped booleans ---------------------------------------------------------------------------

# (rule, path) -> why flipping that boolean in a compliant resource is safe.
SAFE_FLIP: dict[tuple[str, str], str] = {
    ("stack-compute-host-enforce-workload-start", "enclaveOptions.enabled"): "a host with enclaves off starts no enclave; aws-ec2-instance-enable-enclave refuses it",
    ("aws-ec2-instance-enable-enclave", "enclaveOptions.enabled"): "the SEV-SNP fixture has Nitro off on purpose: either TEE suffices",
    **{(r, "properties.attributes.exportable"): "false is the stricter value (the key never leaves the HSM); a present release policy is judged either way"
       for r in ("azure-keyvault-key-enforce-workload-claim", "azure-keyvault-key-disallow-debuggable-release",
                 "azure-keyvault-key-disallow-client-payload-claim", "azure-keyvault-key-disallow-product-id-range",
                 "azure-keyvault-key-disallow-paravisor-only-binding", "azure-keyvault-key-disallow-measurement-pattern",
                 "azure-keyvault-key-enforce-hsm-release", "azure-keyvault-key-enforce-measured-guest-release")},
}


def _flips() -> Iterator[tuple[str, str, str, int]]:
    for name, type_, path in READS:
        for i, props in enumerate(fixtures(name, type_)):
            values = lookup(props, path)
            if values and all(isinstance(v, bool) for v in values):
                yield name, type_, path, i


FLIPS = sorted(set(_flips()))


def flip(props: dict[str, Any], path: str) -> dict[str, Any]:
    out = copy.deepcopy(props)
    segments = _segments(path)

    def walk(node: Any, rest: list[str]) -> None:
        head, tail = rest[0], rest[1:]
        if head.startswith("["):
            for item in node if head == "[*]" else [node[int(head[1:-1])]]:
                walk(item, tail)
        elif not tail:
            node[head] = not node[head]
        else:
            walk(node[head], tail)

    walk(out, segments)
    return out


def test_flips_cover_every_boolean_rule() -> None:
    assert len(FLIPS) >= 40, len(FLIPS)


@pytest.mark.parametrize(("name", "type_", "path", "index"), FLIPS, ids=lambda v: str(v))
def test_flipping_a_boolean_is_refused(name: str, type_: str, path: str, index: int) -> None:
    """Every boolean a compliant resource sets is the value the rule checks: the other value is a violation."""
    if (name, path) in SAFE_FLIP:
        return
    props = fixtures(name, type_)[index]
    found = violations(RESOURCE_RULES[name], type_, flip(props, path))
    assert found, f"{name}: {path} flipped in a compliant {type_} is still compliant (value check missing)"
    named = NAMED_AS.get(path, leaf(path))
    assert any(named in m for m in found), (path, found)


# --- non-compliant cases name the problem ----------------------------------------------------------

# rule -> a fragment its non-compliant case's message must contain: the property or value at fault.
PROBLEM: dict[str, str] = {
    "aws-cloudtrail-trail-enforce-integrity": "isMultiRegionTrail is not true",
    "aws-cloudwatch-loggroup-enforce-cmk-retention": "retentionInDays 30 is under 2192",
    "aws-ec2-instance-disallow-public-ip": "associatePublicIpAddress is 'true'",
    "aws-ec2-instance-enable-enclave": "enclaveOptions.enabled is not true",
    "aws-ec2-instance-enforce-enclave-capable-type": "'t3.large' cannot run Nitro Enclaves",
    "aws-ec2-instance-enforce-imdsv2": "httpTokens is not 'required'",
    "aws-ec2-securitygroup-disallow-open-ingress": "ingress from 0.0.0.0/0",
    "aws-ec2-subnet-disallow-public-ip-on-launch": "mapPublicIpOnLaunch is true",
    "aws-ec2-volume-enforce-cmk-encryption": "has no kmsKeyId",
    "aws-eks-cluster-disallow-public-endpoint": "API endpoint is public",
    "aws-eks-cluster-enable-audit-logging": "'audit' is not enabled",
    "aws-eks-cluster-enable-secrets-encryption": "does not include 'secrets'",
    "aws-iam-policy-disallow-wildcard-kms": "wildcard action (['kms:*'])",
    "aws-kms-key-disallow-attestation-pattern": "with StringLike",
    "aws-kms-key-disallow-debug-pcr": "all-zero value",
    "aws-kms-key-disallow-owner-decrypt": "AllowOwnerDecryptOutsideEnclave",
    "aws-kms-key-disallow-root-admin": "names the account root arn:aws:iam::111122223333:root",
    "aws-kms-key-enable-rotation": "rotationPeriodInDays is 365",
    "aws-kms-key-enforce-deletion-window": "deletionWindowInDays 7 is under 30",
    "aws-s3-bucketobjectlockconfiguration-enforce-retention": "defaultRetention.days 30 is under 2192",
    "azure-keyvault-vault-enforce-soft-delete-retention": "softDeleteRetentionInDays 7 is under 90",
    "azure-storage-storageaccount-enforce-immutable-audit": "state is 'Unlocked', not 'Locked'",
    "gcp-kms-cryptokey-enforce-destroy-scheduled-duration": "'86400s' is under 30 days",
    "gcp-storage-bucket-enforce-locked-retention": "retentionPolicy.isLocked is not true",
    "aws-kms-key-enforce-attestation": "statement 'EnableRoot'",
    "aws-kms-key-enforce-policy-change-deny": "no explicit Deny to Principal '*'",
    "aws-kms-key-enforce-via-service": "'DirectUse'",
    "aws-kms-key-missing-unattested-deny": "no Deny-if-Null",
    "aws-s3-bucketpolicy-enforce-tls": "aws:SecureTransport = false",
    "aws-s3-bucketpublicaccessblock-enable-all": "blockPublicPolicy is not true",
    "azure-attestation-attestationprovider-require-policy-signing-certificates": "no policy signing certificates",
    "azure-keyvault-key-enforce-measured-guest-release": "does not pin x-ms-policy-hash",
    "azure-compute-vm-disallow-operator-access": "provisionVMAgent is not false",
    "azure-authorization-roleassignment-disallow-broad-role": "'Owner'",
    "azure-compute-diskencryptionset-configure-cmk": "'EncryptionAtRestWithPlatformKey' is not customer-managed",
    "azure-compute-diskencryptionset-disallow-confidential-auto-rotation": "rotationToLatestKeyVersionEnabled True",
    "azure-compute-vm-enable-secure-boot-vtpm": "vTpmEnabled is not true",
    "azure-compute-vm-enforce-cmk-disk": "disk encryption set id is empty",
    "azure-compute-vm-enforce-confidential": "'Standard_D4s_v5' is not a confidential VM size",
    "azure-containerinstance-containergroup-enforce-confidential": "sku is 'Standard'",
    "azure-containerservice-managedcluster-enable-kms-secrets": "Key Vault KMS secrets encryption is disabled",
    "azure-containerservice-managedcluster-enforce-confidential-nodes": "size 'Standard_D4s_v5' is not confidential",
    "azure-containerservice-managedcluster-enforce-private-cluster": "API server is public",
    "azure-keyvault-key-disallow-client-payload-claim": "'x-ms-runtime.client-payload.nonce'",
    "azure-keyvault-key-disallow-debuggable-release": "does not require is-debuggable == false",
    "azure-keyvault-key-disallow-measurement-pattern": "'x-ms-sevsnpvm-hostdata' to '*'",
    "azure-keyvault-key-disallow-paravisor-only-binding": "pins only x-ms-isolation-tee.x-ms-sevsnpvm-launchmeasurement",
    "azure-keyvault-key-disallow-product-id-range": "'x-ms-sgx-product-id' by range (greaterOrEquals)",
    "azure-keyvault-key-disallow-service-release": "party-storage key is exportable",
    "azure-keyvault-key-enable-rotation": "timeAfterCreate <= P90D",
    "azure-keyvault-key-enforce-hsm-release": "kty 'RSA' is not HSM-backed",
    "azure-keyvault-key-enforce-workload-claim": "release branch 0 pins no workload claim",
    "azure-keyvault-vault-disallow-public-network": "public network access is enabled",
    "azure-keyvault-vault-enable-purge-protection": "enablePurgeProtection is not true",
    "azure-keyvault-vault-enforce-premium-sku": "sku 'standard'",
    "azure-keyvault-vault-enforce-rbac": "enableRbacAuthorization is not true",
    "azure-monitor-diagnosticsetting-enable-audit-logs": "no enabled audit log category",
    "azure-network-networkinterface-disallow-public-ip": "ipConfigurations[0] has a public IP address",
    "azure-network-networksecuritygroup-disallow-open-ingress": "allows inbound from Internet",
    "azure-storage-storageaccount-disallow-party-shared-key": "allowSharedKeyAccess is not false",
    "azure-storage-storageaccount-disallow-public-access": "allowBlobPublicAccess is not false",
    "azure-storage-storageaccount-disallow-shared-key": "allowSharedKeyAccess is not false",
    "azure-storage-storageaccount-enforce-cmk": "keySource is 'Microsoft.Storage'",
    "azure-storage-storageaccount-enforce-tls": "minimumTlsVersion is 'TLS1_0'",
    "gcp-compute-firewall-disallow-open-ingress": "ingress from 0.0.0.0/0",
    "gcp-compute-instance-disallow-debug-image": "confidential-space-debug",
    "gcp-compute-instance-disallow-default-service-account": "default compute service account",
    "gcp-compute-instance-disallow-public-ip": "networkInterfaces[0] has an access config",
    "gcp-compute-instance-enable-shielded-vm": "enableVtpm is not true",
    "gcp-compute-instance-enforce-cmk-disk": "bootDisk.kmsKeySelfLink is empty",
    "gcp-compute-instance-enforce-confidential": "onHostMaintenance is not TERMINATE",
    "gcp-compute-instance-enforce-image-digest": "'europe-docker.pkg.dev/p/w/fl:latest' is not pinned by digest",
    "gcp-container-cluster-enable-secrets-encryption": "databaseEncryption.state is not ENCRYPTED",
    "gcp-container-cluster-enforce-confidential-nodes": "confidentialNodes.enabled is not true",
    "gcp-container-cluster-enforce-private-cluster": "enablePrivateEndpoint is not true",
    "gcp-container-cluster-enforce-workload-identity": "mode is not GKE_METADATA",
    "gcp-iam-member-disallow-public-principal": "grants to allUsers",
    "gcp-iam-workloadidentitypoolprovider-configure-attestation-issuer": "'https://accounts.google.com'",
    "gcp-iam-workloadidentitypoolprovider-enforce-attestation-condition": "admits a debug image (dbgstat 'enabled')",
    "gcp-kms-cryptokey-enable-rotation": "'31536000s' exceeds 7776000s",
    "gcp-kms-cryptokey-enforce-hsm": "protectionLevel is 'SOFTWARE'",
    "gcp-projects-iamauditconfig-enable-data-access": "does not log DATA_READ",
    "gcp-storage-bucket-disallow-public-access": "publicAccessPrevention is not 'enforced'",
    "gcp-storage-bucket-enforce-cmk": "encryption.defaultKmsKeyName is empty",
    "gcp-storage-hmackey-disallow-active-key": "HMAC key of sa@p.iam.gserviceaccount.com is active",
    "aws-iam-accesskey-disallow-long-lived-key": "access key of IAM user 'ops-deployer' is 'Active'",
    "azure-authorization-roleassignment-disallow-management-group-scope": "is a management group",
    "kubernetes-apps-workload-enforce-image-digest": "'r/w:1.0' is not pinned by digest",
    "stack-compute-host-enforce-workload-start": "never runs `nitro-cli run-enclave`",
}
PROBLEM.update(kubernetes_cases.PROBLEM)
PROBLEM["stack-collaboration-output-enforce-dp"] = "no privacy budget charges it"


def test_every_non_compliant_case_has_a_named_problem() -> None:
    assert sorted(PROBLEM) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(PROBLEM))
def test_non_compliant_message_names_the_problem(name: str) -> None:
    type_, _, bad, _ = CASES[name]
    found = violations(RESOURCE_RULES[name], type_, bad)
    assert any(PROBLEM[name] in m for m in found), (PROBLEM[name], found)


# --- value checks the generic cases above do not reach ---------------------------------------------


def _release(claims: list[dict[str, Any]]) -> dict[str, Any]:
    return azure_key(claims)


@pytest.mark.parametrize("debuggable", [True, "false", 0, None])
def test_debuggable_release_needs_the_value_false(debuggable: Any) -> None:
    """A release policy *naming* the debug claim is not enough: the value must be the boolean false."""
    claims = [dict(c) for c in GOOD_CLAIMS]
    claims[3]["equals"] = debuggable
    rule = RESOURCE_RULES["azure-keyvault-key-disallow-debuggable-release"]
    assert violations(rule, "azure-native:keyvault:Key", _release(claims)) == [
        "subject: release branch 0 does not require is-debuggable == false"
    ]
    notequals = [*GOOD_CLAIMS[:3], {"claim": GOOD_CLAIMS[3]["claim"], "notEquals": True}]
    assert violations(rule, "azure-native:keyvault:Key", _release(notequals))


def test_debuggable_release_judges_every_branch() -> None:
    policy = {"version": "1.0.0", "anyOf": [
        {"authority": "https://a", "allOf": GOOD_CLAIMS},
        {"authority": "https://b", "allOf": GOOD_CLAIMS[:3]},
    ]}
    import base64

    data = base64.urlsafe_b64encode(json.dumps(policy).encode()).decode().rstrip("=")
    props = {"properties": {"kty": "RSA-HSM", "releasePolicy": {"data": data}}, "tags": PROD}
    found = violations(RESOURCE_RULES["azure-keyvault-key-disallow-debuggable-release"], "azure-native:keyvault:Key", props)
    assert found == ["subject: release branch 1 does not require is-debuggable == false"]


@pytest.mark.parametrize(
    ("name", "type_", "props", "problem"),
    [
        ("aws-kms-key-enable-rotation", KEY, {"enableKeyRotation": True, "rotationPeriodInDays": 91}, "rotationPeriodInDays is 91"),
        ("aws-ec2-instance-enforce-imdsv2", AWS_INSTANCE, with_(EC2, "metadataOptions.httpPutResponseHopLimit", 3), "httpPutResponseHopLimit is 3"),
        ("aws-ec2-instance-enforce-enclave-capable-type", AWS_INSTANCE, with_(EC2, "instanceType", "m6i.metal"), "'m6i.metal'"),
        ("aws-ec2-instance-enable-enclave", AWS_INSTANCE, {**EC2, "enclaveOptions": {"enabled": False}, "cpuOptions": {"amdSevSnp": "disabled"}}, "enclaveOptions.enabled is not true"),
        ("aws-cloudwatch-loggroup-enforce-cmk-retention", "aws:cloudwatch/logGroup:LogGroup", {"kmsKeyId": "arn:key", "retentionInDays": 2191, "tags": PROD}, "retentionInDays 2191 is under 2192"),
        ("aws-eks-cluster-enable-audit-logging", "aws:eks/cluster:Cluster", {"enabledClusterLogTypes": ["api", "audit"]}, "'authenticator'"),
        ("aws-ec2-securitygroup-disallow-open-ingress", SG, {"ingress": [{"cidrBlocks": ["10.0.0.0/8"], "ipv6CidrBlocks": ["::/0"]}]}, "ingress from ::/0"),
        ("gcp-kms-cryptokey-enable-rotation", "gcp:kms/cryptoKey:CryptoKey", {"rotationPeriod": "7776001s"}, "'7776001s'"),
        ("gcp-kms-cryptokey-enable-rotation", "gcp:kms/cryptoKey:CryptoKey", {"rotationPeriod": "90d"}, "'90d'"),
        ("gcp-compute-instance-enforce-image-digest", GCE, with_(GCP_VM, "metadata", {"tee-image-reference": "r/w@sha256:" + "0" * 64}), "all-zero digest"),
        ("gcp-compute-instance-disallow-default-service-account", GCE, with_(GCP_VM, "serviceAccount.email", "default"), "default compute service account"),
        ("gcp-iam-workloadidentitypoolprovider-configure-attestation-issuer", "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider",
         {"oidc": {"issuerUri": "https://confidentialcomputing.googleapis.com/", "allowedAudiences": ["https://sts.googleapis.com", "x"]}}, "allowedAudiences"),
        ("gcp-projects-iamauditconfig-enable-data-access", "gcp:projects/iAMAuditConfig:IAMAuditConfig",
         {"service": "allServices", "auditLogConfigs": [{"logType": t, "exemptedMembers": ["user:a@b.c"] if t == "DATA_READ" else []} for t in ("DATA_READ", "DATA_WRITE", "ADMIN_READ")]}, "DATA_READ exempts ['user:a@b.c']"),
        ("azure-keyvault-key-enable-rotation", "azure-native:keyvault:Key",
         {"properties": {"rotationPolicy": {"lifetimeActions": [{"action": {"type": "notify"}, "trigger": {"timeAfterCreate": "P30D"}}]}}}, "no 'rotate' lifetime action"),
        ("azure-storage-storageaccount-enforce-cmk", "azure-native:storage:StorageAccount", with_(CASES["azure-storage-storageaccount-enforce-cmk"][1], "encryption.keyVaultProperties.keyName", ""), "keyName is empty"),
        ("azure-compute-vm-enforce-confidential", "azure-native:compute:VirtualMachine", with_(AZ_VM, "securityProfile.securityType", "TrustedLaunch"), "'TrustedLaunch', not ConfidentialVM"),
        ("kubernetes-apps-workload-enforce-image-digest", "kubernetes:core/v1:Pod", {"spec": {"containers": [{"name": "w", "image": "r/w@sha256:" + "0" * 64}]}}, "all-zero digest"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 80 else "",
)
def test_value_check_refuses(name: str, type_: str, props: dict[str, Any], problem: str) -> None:
    found = violations(RESOURCE_RULES[name], type_, props)
    assert any(problem in m for m in found), (problem, found)


# --- the GCP attestation condition: every clause its remediation requires --------------------------

CONDITION_RULE = "gcp-iam-workloadidentitypoolprovider-enforce-attestation-condition"
WIP = "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider"
CLAUSES = {
    "assertion.swname == 'CONFIDENTIAL_SPACE'": "admits software other than CONFIDENTIAL_SPACE",
    "assertion.dbgstat == 'disabled-since-boot'": "admits a debug image (dbgstat 'enabled')",
    "'STABLE' in assertion.submods.confidential_space.support_attributes": "admits an image without STABLE support",
    "assertion.hwmodel in ['GCP_AMD_SEV', 'GCP_INTEL_TDX']": "admits a non-confidential hardware model (hwmodel 'GCP_SHIELDED_VM')",
    "assertion.secboot == true": "admits a token without secure boot (secboot false)",
    f"assertion.submods.container.image_digest in ['{DIGEST}']": "pins no image digest",
    "'wl@p.iam.gserviceaccount.com' in assertion.google_service_accounts": "admits a VM running as another service account",
}


def test_every_remediation_clause_is_in_the_good_condition() -> None:
    rule = RESOURCE_RULES[CONDITION_RULE]
    for clause in CLAUSES:
        assert clause in GOOD_CEL, clause
    for keyword in ("swname", "dbgstat", "STABLE", "hwmodel", "secboot", "image_digest", "google_service_accounts"):
        assert keyword in rule.remediation_steps, keyword


@pytest.mark.parametrize("clause", sorted(CLAUSES))
def test_condition_missing_a_remediation_clause_is_refused(clause: str) -> None:
    """Fail-open fixed: without hwmodel, secboot or the service account the condition used to pass."""
    parts = [p for p in GOOD_CEL.split(" && ") if p != clause]
    assert len(parts) == len(GOOD_CEL.split(" && ")) - 1
    found = violations(RESOURCE_RULES[CONDITION_RULE], WIP, {"attributeCondition": " && ".join(parts)})
    assert any(m.startswith(f"subject: attribute condition {CLAUSES[clause]}") for m in found), found


@pytest.mark.parametrize(
    ("replace", "problem"),
    [
        (("['GCP_AMD_SEV', 'GCP_INTEL_TDX']", "['GCP_AMD_SEV', 'GCP_SHIELDED_VM']"), "non-confidential hardware model"),
        (("assertion.secboot == true", "(assertion.secboot == false || assertion.secboot == true)"), "without secure boot"),
        (("'wl@p.iam.gserviceaccount.com' in assertion.google_service_accounts", "('wl@p.iam.gserviceaccount.com' in assertion.google_service_accounts || size(assertion.google_service_accounts) > 0)"), "another service account"),
    ],
)
def test_condition_weakened_clause_is_refused(replace: tuple[str, str], problem: str) -> None:
    condition = GOOD_CEL.replace(*replace)
    assert condition != GOOD_CEL
    found = violations(RESOURCE_RULES[CONDITION_RULE], WIP, {"attributeCondition": condition})
    assert any(problem in m for m in found), found


def test_generated_condition_for_each_hardware_model_passes() -> None:
    from components.attestation.gcp_condition import attribute_condition
    from enclave_runtime.measurements import ApprovedMeasurements

    measurements = ApprovedMeasurements.model_validate({"version": "1", "confidentialSpace": {"imageDigests": [DIGEST]}})
    for models in (["GCP_INTEL_TDX"], ["GCP_AMD_SEV_ES"], ["GCP_AMD_SEV", "GCP_INTEL_TDX"]):
        condition = attribute_condition(measurements, workload_service_account="ccp-workload@ccp-dev-project.iam.gserviceaccount.com", hardware_models=models)
        assert violations(RESOURCE_RULES[CONDITION_RULE], WIP, {"attributeCondition": condition}) == [], models


# --- waivers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["", " ", "\t\n ", None, 42])
def test_waiver_with_blank_reason_is_refused(reason: Any) -> None:
    entry: dict[str, Any] = {"resource": "bastion-*"}
    if reason is not None:
        entry["reason"] = reason
    waivers, problems = read_waivers({"excludeFor": [entry]})
    assert waivers == []
    assert problems == [
        "excludeFor[0] waives 'bastion-*' without a reason: the waiver is ignored; every exception needs a reason reviewers can read"
    ]
    rule = RESOURCE_RULES["aws-ec2-subnet-disallow-public-ip-on-launch"]
    found = violations(rule, "aws:ec2/subnet:Subnet", {"mapPublicIpOnLaunch": True}, {"excludeFor": [entry]}, name="bastion-a")
    assert "bastion-a: mapPublicIpOnLaunch is true" in found
    resources = [{"urn": "urn:pulumi:prod::ccp::aws:ec2/subnet:Subnet::bastion-a", "type": "aws:ec2/subnet:Subnet", "name": "bastion-a"}]
    assert pack.applied_waivers({rule.name: {"excludeFor": [entry]}}, resources) == []


@pytest.mark.parametrize("resource", ["", "  ", None])
def test_waiver_without_resource_is_refused(resource: Any) -> None:
    waivers, problems = read_waivers({"excludeFor": [{"resource": resource, "reason": "reviewed"}]})
    assert waivers == [] and problems == ["excludeFor[0] names no resource: the waiver is ignored"]


def test_waiver_reason_is_kept_trimmed_and_only_matching_resources_are_waived() -> None:
    waivers, problems = read_waivers({"excludeFor": [{"resource": "edge-*", "reason": "  NAT subnet, #42 "}]})
    assert problems == [] and [(w.resource, w.reason) for w in waivers] == [("edge-*", "NAT subnet, #42")]
    assert waivers[0].matches("edge-a", "urn:x::edge-a") and not waivers[0].matches("core-a", "urn:x::core-a")
    assert read_waivers({"excludeFor": "edge-*"})[1] == ["excludeFor must be a list of {resource, reason} objects, got 'edge-*'"]


STACK_RULES = {p.name: p for p in pack.POLICIES if isinstance(p, ZeroTrustStackPolicy)}


def stack_findings(rule: ZeroTrustStackPolicy, resources: list[tuple], config: dict[str, Any] | None = None) -> list[str]:
    """A stack rule evaluated directly on (type, name, props, deps) tuples, as the servicer tests build them."""
    from pulumi_policy.proxy import unknown_checking_proxy

    built: dict[str, PolicyResource] = {}
    for type_, name, props, deps in resources:
        built[f"{type_}::{name}"] = PolicyResource(
            type_, unknown_checking_proxy(copy.deepcopy(props)), f"urn:pulumi:prod::ccp::{type_}::{name}", name,
            PolicyResourceOptions(False, [], None, [], None, []), None, None, [], {},
        )
    for type_, name, _, deps in resources:
        res = built[f"{type_}::{name}"]
        res.property_dependencies = {k: [built[d] for d in v] for k, v in deps.items()}
        res.dependencies = list({d.urn: d for v in res.property_dependencies.values() for d in v}.values())
    found: list[str] = []
    rule.validate(StackValidationArgs(list(built.values()), config or {}, {}), lambda message, urn=None: found.append(message))
    return found


def test_stack_waiver_with_blank_reason_is_refused() -> None:
    from test_policy_servicer import good_stack, replace

    rule = STACK_RULES["stack-tags-missing-required"]
    resources = replace(good_stack(), "trail", tags={})
    reasoned = {"excludeFor": [{"resource": "trail", "reason": "org trail tagged by the org"}]}
    assert stack_findings(rule, resources, reasoned) == []
    blank = {"excludeFor": [{"resource": "trail", "reason": "   "}]}
    found = stack_findings(rule, resources, blank)
    assert found[0].startswith("excludeFor[0] waives 'trail' without a reason")
    assert any(m.startswith("trail (tags) lacks collaboration") for m in found), found


# --- stack rules: each read dropped from the compliant three-cloud stack ---------------------------

_UNTAGGED_DATA = "an unlabelled/untagged key is judged as a party data key (fail closed): the strictest branch of the rule applies"
_SERVICE_SIDE = "belongs to a service key or its service-agent binding, which this rule does not judge (service keys release nothing, pin nothing)"
_NO_PARTY = (
    "a resource without a party tag belongs to no party here; stack-tags-missing-required reports the missing tag and "
    "stack-kms-partykey-enforce-own-key refuses an untagged data store (test_party_store_missing_party_tag_fails_closed)"
)
_NO_SUBJECT = "links keys to a resource type this compliant stack does not declare (grants/role assignments are tested in test_policy_servicer)"

# (rule, path) -> why dropping that property from the compliant stack is safe for that rule.
STACK_SAFE_ABSENCE: dict[tuple[str, str], str] = {
    ("aws-kms-grant-disallow-unattested-data-plane", "tags"): _UNTAGGED_DATA,
    ("aws-s3-bucket-enforce-cmk-encryption", "bucket"): "the link only marks an access-log target (where SSE-S3 is allowed); unlinked, the configuration is held to SSE-KMS with a CMK",
    ("azure-authorization-roleassignment-disallow-data-plane-role", "keyName"): _NO_SUBJECT,
    ("azure-authorization-roleassignment-disallow-data-plane-role", "vaultName"): _NO_SUBJECT,
    ("azure-authorization-roleassignment-disallow-data-plane-role", "tags"): _UNTAGGED_DATA,
    ("azure-authorization-roleassignment-disallow-data-access-administrator", "keyName"): _NO_SUBJECT,
    ("azure-authorization-roleassignment-disallow-data-access-administrator", "vaultName"): _NO_SUBJECT,
    ("azure-authorization-roleassignment-disallow-data-access-administrator", "tags"): _UNTAGGED_DATA,
    ("gcp-kms-cryptokeyiammember-disallow-conditional-binding", "labels"): _UNTAGGED_DATA,
    ("gcp-kms-cryptokeyiammember-disallow-conditional-binding", "cryptoKeyId"): "an unresolved key is judged as a data key (on_service_key fails closed); an unconditional binding is compliant there",
    ("gcp-kms-cryptokeyiammember-disallow-conditional-binding", "member"): "the compliant stack's bindings carry no condition: members are read only for a conditional binding (test_gcp_conditional_binding_on_party_key_is_refused)",
    ("gcp-kms-cryptokeyiammember-disallow-conditional-binding", "role"): "the compliant stack's bindings carry no condition: the role is read only for a conditional binding",
    ("gcp-kms-cryptokeyiammember-enforce-digest-principalset", "labels"): _UNTAGGED_DATA,
    ("gcp-kms-cryptokeyiammember-enforce-digest-principalset", "cryptoKeyId"): "an unresolved key is judged as a data key (on_service_key fails closed); the digest principalSet is compliant there",
    ("gcp-kms-cryptokeyiammember-enforce-digest-principalset", "member"): _SERVICE_SIDE,
    ("gcp-kms-cryptokeyiammember-enforce-digest-principalset", "role"): _SERVICE_SIDE,
    ("gcp-kms-cryptokeyiammember-enforce-service-agent", "labels"): "an unlabelled key is a data key: gcp-kms-cryptokeyiammember-enforce-digest-principalset judges its bindings",
    ("gcp-kms-cryptokeyiammember-enforce-service-agent", "cryptoKeyId"): "an unresolved key is a data key: gcp-kms-cryptokeyiammember-enforce-digest-principalset judges the binding",
    ("gcp-kms-cryptokeyiammember-enforce-service-agent", "member"): "a binding on a data key is judged by gcp-kms-cryptokeyiammember-enforce-digest-principalset",
    ("gcp-kms-cryptokeyiammember-enforce-service-agent", "role"): "a binding on a data key is judged by gcp-kms-cryptokeyiammember-enforce-digest-principalset",
    ("gcp-kms-keyringiammember-disallow-unattested-decrypt", "keyRing"): "only key ring grants use it; this stack declares none (an unresolved ring counts as holding a data key)",
    ("gcp-kms-keyringiammember-disallow-unattested-decrypt", "labels"): _UNTAGGED_DATA,
    ("gcp-kms-keyringiammember-disallow-unattested-decrypt", "cryptoKeyId"): "an unresolved key counts as a data key; the digest principalSet / service agent is judged by the key-level rules",
    ("gcp-kms-keyringiammember-disallow-unattested-decrypt", "member"): "key-level decrypter bindings are judged by gcp-kms-cryptokeyiammember-enforce-digest-principalset",
    ("gcp-kms-keyringiammember-disallow-unattested-decrypt", "role"): "key-level bindings are judged by the key-level rules; an unknown role grants no plaintext role",
    ("gcp-artifactregistry-enforce-image-pull", "metadata"): (
        "without tee-image-reference the VM runs no Confidential Space workload to pull: "
        "stack-compute-host-enforce-workload-start and gcp-compute-instance-enforce-image-digest report the missing reference"
    ),
    ("stack-audit-enforce-key-logging", "tags"): "audit logging is required of every key, tagged or not",
    ("stack-audit-enforce-key-logging", "labels"): "audit logging is required of every key, labelled or not",
    ("stack-audit-enforce-key-logging", "vaultName"): "a key reaches its vault through its own vaultName dependency, which remains",
    ("stack-kms-partykey-enforce-own-key", "policy"): _SERVICE_SIDE,
    ("stack-kms-partykey-enforce-own-key", "keyName"): "the data key is not what a store references; the storage key is",
    ("stack-kms-partykey-enforce-own-key", "cryptoKeyId"): _SERVICE_SIDE,
    ("stack-kms-partykey-enforce-own-key", "member"): _SERVICE_SIDE,
    ("stack-kms-partykey-enforce-own-key", "role"): _SERVICE_SIDE,
    ("stack-kms-partykey-enforce-same-measurements", "policy"): _SERVICE_SIDE,
    ("stack-kms-partykey-enforce-same-measurements", "keyName"): "key names identify keys; the measurements come from the release documents",
    ("stack-kms-partykey-enforce-same-measurements", "cryptoKeyId"): _SERVICE_SIDE,
    ("stack-kms-partykey-enforce-same-measurements", "member"): _SERVICE_SIDE,
    ("stack-kms-partykey-enforce-same-measurements", "role"): _SERVICE_SIDE,
    ("stack-residency-enforce-allowed-regions", "tags"): _NO_PARTY,
    ("stack-residency-enforce-allowed-regions", "labels"): _NO_PARTY,
    ("stack-residency-enforce-allowed-regions", "location"): "the region is derived through dependencies (the bucket's key ring location): test_residency_derives_region_through_dependencies",
    ("stack-audit-enforce-immutable-copy", "tags"): (
        _UNTAGGED_DATA + "; an untagged trail, vault or account is judged as prod (fail closed): the copy is still required"
    ),
    ("stack-audit-enforce-immutable-copy", "vaultName"): "a key reaches its vault through its own vaultName dependency, which remains",
    ("stack-audit-enforce-immutable-copy", "filter"): "a sink without a filter exports every log entry, the audit logs included",
    ("stack-audit-enforce-immutable-copy", "labels"): "an unlabelled resource is judged as prod (fail closed): the copy is still required",
}
STACK_SAFE_ABSENCE.update(kubernetes_cases.STACK_SAFE_ABSENCE)

_TRAIL_BUCKET = (
    "the trail bucket is `party: shared` (audit logs, no party data): its at-rest key is judged by "
    "aws-s3-bucket-enforce-cmk-encryption, not by the party-key rule"
)
# (rule, path, resource) -> why dropping that property from that one resource is safe (the same path on
# other resources stays judged by the (rule, path) table above).
STACK_SAFE_ABSENCE_AT: dict[tuple[str, str, str], str] = {
    ("aws-s3-bucket-missing-encryption", "bucket", "trail-bucket"): "its companions name it through their `bucket` dependency, which remains",
    ("stack-audit-enforce-immutable-copy", "bucket", "trail-bucket"): "the trail names it through its s3BucketName dependency, which remains",
    ("stack-kms-partykey-enforce-own-key", "bucket", "trail-bucket-sse"): _TRAIL_BUCKET,
    ("stack-kms-partykey-enforce-own-key", "rules[*].applyServerSideEncryptionByDefault.kmsMasterKeyId", "trail-bucket-sse"): _TRAIL_BUCKET,
}


def compliant_stack(rule: str) -> list[tuple]:
    """The Kubernetes stack rules are judged on the query service's objects, the others on the three-cloud stack."""
    from test_policy_servicer import good_stack

    return kubernetes_cases.kubernetes_stack() if rule.startswith("kubernetes-") else good_stack()


def _stack_drops() -> Iterator[tuple[str, str, str, str]]:
    for name, rule in sorted(STACK_RULES.items()):
        stack = compliant_stack(name)
        for type_, path in sorted(set(rule.reads)):
            for t, resource, props, _ in stack:
                if t == type_ and lookup(props, path):
                    yield name, type_, path, resource


STACK_DROPS = sorted(set(_stack_drops()))


def test_stack_drops_cover_every_stack_rule() -> None:
    assert {d[0] for d in STACK_DROPS} == set(STACK_RULES)
    assert len(STACK_DROPS) >= 100, len(STACK_DROPS)


@pytest.mark.parametrize(("name", "type_", "path", "resource"), STACK_DROPS, ids=lambda v: str(v))
def test_stack_rule_fails_closed_without_a_read_property(name: str, type_: str, path: str, resource: str) -> None:
    """The property (and the dependency Pulumi records for it) removed from one resource of the compliant
    stack: the rule reports it, or the allow-list says why that is safe."""
    from test_policy_servicer import STACK_CONFIG

    top = _segments(path)[0]
    stack = [
        (t, n, drop(p, path) if n == resource else p, {k: v for k, v in d.items() if not (n == resource and k == top)})
        for t, n, p, d in compliant_stack(name)
    ]
    found = stack_findings(STACK_RULES[name], stack, STACK_CONFIG.get(name))
    if (name, path) in STACK_SAFE_ABSENCE or (name, path, resource) in STACK_SAFE_ABSENCE_AT:
        return
    assert found, f"{name}: dropping {path} from {resource} ({type_}) is silent"


@pytest.mark.parametrize("key", sorted(STACK_SAFE_ABSENCE) + sorted(STACK_SAFE_ABSENCE_AT), ids=lambda v: str(v))
def test_stack_safe_absence_is_a_real_read(key: tuple[str, ...]) -> None:
    name, path = key[:2]
    assert path in {p for _, p in STACK_RULES[name].reads}, key
    if len(key) == 3:
        assert any(n == key[2] and lookup(p, path) for _, n, p, _ in compliant_stack(name)), key


# --- killed mutants the tables above did not reach (tools/mutations.py) ----------------------------


@pytest.mark.parametrize("missing", ["kms:GenerateDataKey", "kms:GenerateDataKeyPair", "kms:ReEncryptFrom", "kms:DeriveSharedSecret"])
def test_null_deny_must_cover_every_bypass_action(missing: str) -> None:
    """A Deny-if-Null that leaves one plaintext-returning action open does not close the unattested path."""
    import json as _json

    doc = _json.loads(kms_policy())
    for statement in doc["Statement"]:
        if statement["Sid"] == "DenyDecryptWithoutAttestation":
            statement["Action"] = [a for a in statement["Action"] if a != missing]
    found = violations(RESOURCE_RULES["aws-kms-key-missing-unattested-deny"], KEY_POLICY, {"policy": _json.dumps(doc)})
    assert len(found) == 1 and "no Deny-if-Null statement closes the unattested path" in found[0], found


def test_decrypt_binding_to_an_all_zero_digest_is_refused() -> None:
    from test_policy_servicer import good_stack, replace

    zero = PRINCIPAL.replace(DIGEST, "sha256:" + "0" * 64)
    resources = replace(good_stack(), "gcp-key-release", member=zero)
    found = stack_findings(STACK_RULES["gcp-kms-cryptokeyiammember-enforce-digest-principalset"], resources)
    assert found == [f"gcp-key-release: {zero!r} binds an all-zero image digest"], found
