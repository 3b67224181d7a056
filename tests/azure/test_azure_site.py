"""The Azure site under recording mocks: exact properties on what it declares (wire-form keys,
as CrossGuard sees them)."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from components.attestation.azure_release_policy import decode_release_policy
from components.azure.options import NO_ACCESS_SSH_PUBLIC_KEY, AzureOptions
from components.azure.site import Site
from components.site import SiteArgs
from policies.review.fakes.azure import SUBSCRIPTION, principal_id
from policies.review.mocks import Recording, RecordedResource, run, unwrap
from stacks import config

from tests.support import read_stack, stack_site_args
from tests.azure.test_attestation_isolation import SIGNER_PEM

RELEASE_USER = "08bbd89e-9f13-488c-ac41-acfcb10c90ab"
ENCRYPTION_USER = "e147488a-f6f5-4113-8e2d-b22465e65bf6"
ORCHESTRATOR = "0b0b0b0b-0000-4000-8000-00000000000e"
SITE = "t-azure"
# Types whose ARM resource has no location / no tags (child or extension resources).
NO_LOCATION = {
    "azure-native:keyvault:Key", "azure-native:network:Subnet", "azure-native:authorization:RoleAssignment",
    "azure-native:monitor:DiagnosticSetting", "azure-native:network:PrivateDnsZoneGroup",
    "azure-native:network:VirtualNetworkPeering", "azure-native:storage:BlobContainer",
    "azure-native:managedidentity:FederatedIdentityCredential", "azure-native:containerservice:AgentPool",
    "azure-native:operationalinsights:Table",
}
NO_TAGS = NO_LOCATION - {"azure-native:keyvault:Key", "azure-native:containerservice:AgentPool"}
REQUIRED_TAGS = {"collaboration", "environment", "managed-by", "measurements"}


def site_args(raw: dict[str, Any]) -> SiteArgs:
    return stack_site_args(raw, "azure")


def build(raw: dict[str, Any], options: AzureOptions | None = None) -> Recording:
    args = site_args(raw)
    return run(lambda: Site(SITE, replace(args, options=options or AzureOptions())))


def custom(rec: Recording, name: str) -> RecordedResource:
    """The cloud resource named `name` (components may share a name with their main resource)."""
    (found,) = [r for r in rec.resources if r.custom and r.name == name]
    return found


def resource_id(resource: RecordedResource) -> str:
    """The id the mocks give a resource (what `.id` resolves to in the program)."""
    return f"{resource.name}-id"


def props(resource: RecordedResource) -> dict[str, Any]:
    return unwrap(resource.properties)


def with_hosts(raw: dict[str, Any], hosts: list[dict[str, Any]], **measurements: Any) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    collab = raw["collaboration"]
    collab["workload"]["hosts"] = [h for h in collab["workload"]["hosts"] if h["cloud"] != "azure"] + hosts
    collab["measurements"].update(measurements)
    return raw


def without_azure_parties(raw: dict[str, Any]) -> dict[str, Any]:
    """The stack without its Azure parties (and them as output recipients): where an Azure confidential
    VM may still be a host, since no Azure data key is released to it."""
    raw = copy.deepcopy(raw)
    collab = raw["collaboration"]
    gone = {p["name"] for p in collab["parties"] if p["cloud"] == "azure"}
    collab["parties"] = [p for p in collab["parties"] if p["name"] not in gone]
    collab.pop("federated", None)  # secure aggregation needs 3 parties; these variants are about hosts
    for output in collab.get("outputs", []):
        output["recipients"] = [r for r in output["recipients"] if r not in gone]
    return raw


def prod_cvm() -> dict[str, Any]:
    """The prod stack with its Azure host as a TDX confidential VM and no Azure party: a CVM may be a host,
    but no Azure data key is released to it (MRTD measures Microsoft's firmware and paravisor, not the
    workload: components/azure/checks.TDX_CVM_REFUSED)."""
    return without_azure_parties(with_hosts(
        read_stack("prod"),
        [{"cloud": "azure", "region": "germanywestcentral", "tee": "tdx", "instanceType": "Standard_DC8es_v5"}],
        tdx={"mrtd": "5d" * 48},
    ))


@pytest.fixture(scope="module")
def dev() -> Recording:
    return build(read_stack("dev"))


@pytest.fixture(scope="module")
def cvm() -> Recording:
    """An Azure SEV-SNP confidential VM host in a stack with no Azure party."""
    return build(with_hosts(
        without_azure_parties(read_stack("dev")),
        [{"cloud": "azure", "region": "westeurope", "tee": "sev-snp", "instanceType": "Standard_DC4as_v5"}],
        sevSnp={"launchMeasurement": "b6" * 48},
    ))


@pytest.fixture(scope="module")
def dev_measurements() -> dict[str, Any]:
    return read_stack("dev")["collaboration"]["measurements"]


def data_key(rec: Recording, party: str = "clinic-azure") -> RecordedResource:
    return custom(rec, f"{SITE}-{party}-data-key-key")


def test_dev_site_declares_the_azure_slice(dev: Recording) -> None:
    types = [r.type for r in dev.resources]
    for component in ["Site", "Network", "PrivateDns", "AttestationProvider", "ConfidentialContainerGroup",
                      "KeyVault", "PartyDataKey", "PartyStorage", "Monitoring"]:
        assert types.count(f"ccp:azure:{component}") == 1, component
    # The default Azure host is a confidential container group, not a VM.
    assert types.count("azure-native:containerinstance:ContainerGroup") == 1
    assert types.count("azure-native:compute:VirtualMachine") == 0
    assert types.count("azure-native:keyvault:Key") == 2  # data key + storage CMK
    assert types.count("azure-native:monitor:ScheduledQueryRule") == 3  # refused releases, refused access, ingestion errors
    assert "ccp:azure:SgxVm" not in types and "azure-native:containerservice:ManagedCluster" not in types
    # every resource is in the tree under the site
    site = dev.one("ccp:azure:Site")
    assert all(r.parent is not None for r in dev.resources if r is not site)
    group = props(dev.one("azure-native:resources:ResourceGroup"))
    assert group["location"] == "westeurope" and group["resourceGroupName"] == "ccp-dev-demo-westeurope"


def test_every_resource_has_location_and_tags(dev: Recording) -> None:
    for resource in dev.resources:
        if not resource.custom:
            continue
        p = props(resource)
        if resource.type not in NO_LOCATION:
            assert p.get("location") in {"westeurope", "global"}, resource.name
        if resource.type not in NO_TAGS:
            assert REQUIRED_TAGS <= set(p.get("tags", {})), resource.name
            assert p["tags"]["environment"] == "dev" and p["tags"]["collaboration"] == "dev-demo"


def test_party_resources_carry_party_tags(dev: Recording) -> None:
    for name in [f"{SITE}-clinic-azure-vault", f"{SITE}-clinic-azure-storage-account", f"{SITE}-clinic-azure-data-key-key"]:
        tags = props(custom(dev, name))["tags"]
        assert tags["party"] == "clinic-azure" and tags["data-classification"] == "phi"


def test_data_key_release_policy_pins_the_container_group_hostdata(dev: Recording, dev_measurements: dict) -> None:
    key = props(data_key(dev))
    assert key["keyName"] == "clinic-azure-data"
    properties = key["properties"]
    assert properties["kty"] == "RSA-HSM"
    assert properties["keySize"] == 3072
    assert properties["attributes"] == {"enabled": True, "exportable": True}
    assert properties["releasePolicy"]["contentType"] == "application/json; charset=utf-8"
    policy = decode_release_policy(properties["releasePolicy"]["data"])
    authority = props(dev.one("azure-native:attestation:AttestationProvider"))
    assert authority["providerName"] == "ccpdevdemowesteurope"
    assert policy == {
        "version": "1.0.0",
        "anyOf": [
            {
                # Real attest hosts use Microsoft's short region code (West Europe: `weu`), as the
                # shared provider https://sharedweu.weu.attest.azure.net does (Azure Attestation
                # "Basic concepts", regional shared provider table).
                "authority": "https://ccpdevdemowesteurope.weu.attest.azure.net",
                # A confidential container group's token: top-level claims, hostdata = SHA-256 of the
                # CCE policy (Microsoft Learn, confidential containers on ACI / SKR sidecar policy).
                "allOf": [
                    {"claim": "x-ms-attestation-type", "equals": "sevsnpvm"},
                    {"claim": "x-ms-compliance-status", "equals": "azure-compliant-uvm"},
                    {"claim": "x-ms-sevsnpvm-hostdata", "equals": dev_measurements["sevSnp"]["hostData"]},
                    {"claim": "x-ms-sevsnpvm-is-debuggable", "equals": False},
                    {"claim": "x-ms-sevsnpvm-vmpl", "equals": 0},
                ],
            }
        ],
    }
    assert properties["rotationPolicy"] == {
        "attributes": {"expiryTime": "P180D"},
        "lifetimeActions": [
            {"action": {"type": "rotate"}, "trigger": {"timeAfterCreate": "P90D"}},
            {"action": {"type": "notify"}, "trigger": {"timeBeforeExpiry": "P30D"}},
        ],
    }


def test_release_role_goes_to_the_workload_identity_only(dev: Recording) -> None:
    release = [
        props(r) for r in dev.of_type("azure-native:authorization:RoleAssignment")
        if props(r)["roleDefinitionId"].endswith(RELEASE_USER)
    ]
    assert len(release) == 1
    grant = release[0]
    assert grant["roleDefinitionId"] == (
        f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{RELEASE_USER}"
    )
    assert grant["principalId"] == principal_id(f"{SITE}-confidential-containers-westeurope-0-identity")
    assert grant["principalType"] == "ServicePrincipal"
    assert grant["scope"] == resource_id(data_key(dev))


def test_storage_cmk_is_a_non_exportable_key_granted_to_the_storage_identity(dev: Recording) -> None:
    cmk = props(custom(dev, f"{SITE}-clinic-azure-storage-cmk"))["properties"]
    assert cmk["kty"] == "RSA-HSM" and cmk["attributes"]["exportable"] is False
    assert "releasePolicy" not in cmk
    grant = props(custom(dev, f"{SITE}-clinic-azure-storage-cmk-encryption"))
    assert grant["roleDefinitionId"].endswith(ENCRYPTION_USER)
    assert grant["principalId"] == principal_id(f"{SITE}-clinic-azure-storage-identity")


def test_vault_is_hardened_and_private(dev: Recording) -> None:
    vault = props(dev.one("azure-native:keyvault:Vault"))["properties"]
    assert vault["sku"] == {"family": "A", "name": "premium"}
    assert vault["enablePurgeProtection"] is True
    assert vault["enableSoftDelete"] is True
    assert vault["softDeleteRetentionInDays"] == 90
    assert vault["enableRbacAuthorization"] is True
    assert vault["publicNetworkAccess"] == "Disabled"
    assert vault["networkAcls"] == {"defaultAction": "Deny", "bypass": "AzureServices"}
    assert vault["tenantId"] == "00000000-0000-4000-8000-0000000000aa"
    assert "accessPolicies" not in vault
    endpoints = {props(r)["privateLinkServiceConnections"][0]["groupIds"][0]: props(r)
                 for r in dev.of_type("azure-native:network:PrivateEndpoint")}
    assert set(endpoints) == {"vault", "blob"}
    assert endpoints["vault"]["privateLinkServiceConnections"][0]["privateLinkServiceId"] == (
        resource_id(dev.one("azure-native:keyvault:Vault"))
    )
    zones = sorted(props(r)["privateZoneName"] for r in dev.of_type("azure-native:privatedns:PrivateZone"))
    assert zones == ["privatelink.blob.core.windows.net", "privatelink.managedhsm.azure.net",
                     "privatelink.vaultcore.azure.net"]


def test_storage_account_flags(dev: Recording) -> None:
    account = props(dev.one("azure-native:storage:StorageAccount"))
    assert account["enableHttpsTrafficOnly"] is True
    assert account["minimumTlsVersion"] == "TLS1_2"
    assert account["allowBlobPublicAccess"] is False
    assert account["allowSharedKeyAccess"] is False
    assert account["publicNetworkAccess"] == "Disabled"
    assert account["networkRuleSet"] == {"defaultAction": "Deny", "bypass": "None"}
    encryption = account["encryption"]
    assert encryption["keySource"] == "Microsoft.Keyvault"
    assert encryption["requireInfrastructureEncryption"] is True
    assert encryption["keyVaultProperties"] == {
        "keyName": "clinic-azure-storage",
        "keyVaultUri": f"https://{props(dev.one('azure-native:keyvault:Vault'))['vaultName']}.vault.azure.net/",
    }
    identity_id = resource_id(custom(dev, f"{SITE}-clinic-azure-storage-identity"))
    assert encryption["encryptionIdentity"] == {"encryptionUserAssignedIdentity": identity_id}
    assert account["identity"] == {"type": "UserAssigned", "userAssignedIdentities": [identity_id]}
    container = props(dev.one("azure-native:storage:BlobContainer"))
    assert container["containerName"] == "imaging-labels" and container["publicAccess"] == "None"


def test_confidential_vm_security_profile(cvm: Recording) -> None:
    dev = cvm
    vm = props(dev.one("azure-native:compute:VirtualMachine"))
    assert vm["hardwareProfile"] == {"vmSize": "Standard_DC4as_v5"}
    assert vm["securityProfile"] == {
        "securityType": "ConfidentialVM",
        "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True},
    }
    os_disk = vm["storageProfile"]["osDisk"]
    assert os_disk["managedDisk"]["securityProfile"] == {"securityEncryptionType": "DiskWithVMGuestState"}
    linux = vm["osProfile"]["linuxConfiguration"]
    assert linux["disablePasswordAuthentication"] is True
    assert linux["ssh"]["publicKeys"][0]["keyData"] == NO_ACCESS_SSH_PUBLIC_KEY
    assert "adminPassword" not in vm["osProfile"]
    identity_id = resource_id(custom(dev, f"{SITE}-sev-snp-westeurope-0-identity"))
    assert vm["identity"] == {"type": "UserAssigned", "userAssignedIdentities": [identity_id]}
    nic = props(dev.one("azure-native:network:NetworkInterface"))
    assert all("publicIPAddress" not in c for c in nic["ipConfigurations"])
    assert vm["storageProfile"]["imageReference"]["offer"] == "0001-com-ubuntu-confidential-vm-jammy"


def test_nsgs_deny_internet_ingress(dev: Recording) -> None:
    for nsg in dev.of_type("azure-native:network:NetworkSecurityGroup"):
        rules = props(nsg)["securityRules"]
        inbound_allows = [r for r in rules if r["direction"] == "Inbound" and r["access"] == "Allow"]
        assert all(r["sourceAddressPrefix"] not in {"*", "Internet", "0.0.0.0/0"} for r in inbound_allows)
        denies = {(r["sourceAddressPrefix"], r["priority"]) for r in rules if r["access"] == "Deny"}
        assert {("Internet", 4000), ("*", 4096)} <= denies
    for subnet in dev.of_type("azure-native:network:Subnet"):
        assert props(subnet)["defaultOutboundAccess"] is False


def test_monitoring_audits_vault_and_storage(dev: Recording) -> None:
    settings = {props(r)["name"]: props(r) for r in dev.of_type("azure-native:monitor:DiagnosticSetting")}
    vault_setting = settings[f"{SITE}-clinic-azure-monitoring-vault-audit"]
    assert vault_setting["logs"] == [{"category": "AuditEvent", "enabled": True}]
    assert vault_setting["resourceUri"] == resource_id(dev.one("azure-native:keyvault:Vault"))
    blob_setting = settings[f"{SITE}-clinic-azure-monitoring-blob-audit"]
    assert blob_setting["resourceUri"].endswith("/blobServices/default")
    workspace = props(dev.one("azure-native:operationalinsights:Workspace"))
    assert workspace["retentionInDays"] == 30 and workspace["publicNetworkAccessForIngestion"] == "Disabled"
    queries = {props(r)["displayName"]: props(r)["criteria"]["allOf"][0]["query"]
               for r in dev.of_type("azure-native:monitor:ScheduledQueryRule")}
    assert 'OperationName == "KeyRelease"' in queries[f"{SITE}-clinic-azure-monitoring-key-release-failures"]
    assert "(401, 403)" in queries[f"{SITE}-clinic-azure-monitoring-unauthorized-access"]


def test_prod_encrypts_confidential_disks_with_customer_key() -> None:
    rec = build(prod_cvm(), AzureOptions(cvm_orchestrator_object_id=ORCHESTRATOR, attestation_policy_signing_certificates=(SIGNER_PEM,)))
    des = props(rec.one("azure-native:compute:DiskEncryptionSet"))
    assert des["encryptionType"] == "ConfidentialVmEncryptedWithCustomerKey"
    assert des["location"] == "germanywestcentral"
    vm = props(rec.one("azure-native:compute:VirtualMachine"))
    assert vm["hardwareProfile"] == {"vmSize": "Standard_DC8es_v5"}
    assert vm["storageProfile"]["osDisk"]["managedDisk"]["securityProfile"] == {
        "securityEncryptionType": "DiskWithVMGuestState",
        "diskEncryptionSet": {"id": resource_id(rec.one("azure-native:compute:DiskEncryptionSet"))},
    }
    disk_key = props(custom(rec, f"{SITE}-tdx-germanywestcentral-0-disk-key"))["properties"]
    assert disk_key["attributes"]["exportable"] is True  # its release policy: tests/azure/test_cvm_disk_key.py
    orchestrator = props(custom(rec, f"{SITE}-tdx-germanywestcentral-0-disk-orchestrator-release"))
    assert orchestrator["principalId"] == ORCHESTRATOR and orchestrator["roleDefinitionId"].endswith(RELEASE_USER)
    # no party data key exists to be released to the CVM: the only key release is the platform's disk key
    assert not [r for r in rec.of_type("azure-native:keyvault:Key") if props(r)["tags"]["ccp-key-purpose"] == "party-data"]
    releasers = [props(r)["principalId"] for r in rec.of_type("azure-native:authorization:RoleAssignment")
                 if props(r)["roleDefinitionId"].endswith(RELEASE_USER)]
    assert releasers == [ORCHESTRATOR]
    accounts = {r.name: props(r) for r in rec.of_type("azure-native:storage:StorageAccount")}
    assert {a["sku"]["name"] for a in accounts.values()} == {"Standard_ZRS"}
    # prod: an immutable audit copy per vault (here only the operator vault's: no Azure party)
    archives = [a for a in accounts.values() if "immutableStorageWithVersioning" in a]
    assert len(archives) == 1 and len(accounts) == 1
    # with its Azure party (prod's container group host, no disk key, so no operator vault) the party's vault gets one
    with_party = build(read_stack("prod"), AzureOptions(cvm_orchestrator_object_id=ORCHESTRATOR,
                                                        attestation_policy_signing_certificates=(SIGNER_PEM,)))
    party_accounts = [props(r) for r in with_party.of_type("azure-native:storage:StorageAccount")]
    assert len([a for a in party_accounts if "immutableStorageWithVersioning" in a]) == 1 and len(party_accounts) == 2
    tables = {props(r)["tableName"]: props(r) for r in rec.of_type("azure-native:operationalinsights:Table")}
    assert tables["AzureDiagnostics"]["totalRetentionInDays"] == 2557


def test_sgx_vm_and_confidential_aks() -> None:
    raw = with_hosts(
        read_stack("dev"),
        [
            {"cloud": "azure", "region": "westeurope", "tee": "sgx", "instanceType": "Standard_DC4s_v3"},
            {"cloud": "azure", "region": "northeurope", "tee": "sev-snp", "instanceType": "Standard_DC8as_v5",
             "kubernetes": True},
        ],
        sgx={"mrenclave": "e9" * 32, "productId": 1, "minSvn": 2},
    )
    rec = build(raw)
    sgx_vm = props(rec.one("azure-native:compute:VirtualMachine"))
    assert sgx_vm["hardwareProfile"] == {"vmSize": "Standard_DC4s_v3"}
    assert sgx_vm["securityProfile"]["securityType"] == "TrustedLaunch"
    assert sgx_vm["securityProfile"]["uefiSettings"] == {"secureBootEnabled": True, "vTpmEnabled": True}
    cluster = props(rec.one("azure-native:containerservice:ManagedCluster"))
    assert cluster["location"] == "northeurope"
    assert cluster["apiServerAccessProfile"]["enablePrivateCluster"] is True
    assert cluster["apiServerAccessProfile"]["enablePrivateClusterPublicFQDN"] is False
    assert cluster["aadProfile"]["enableAzureRBAC"] is True and cluster["disableLocalAccounts"] is True
    assert cluster["networkProfile"]["networkPolicy"] == "azure"
    kms = cluster["securityProfile"]["azureKeyVaultKms"]
    assert kms["enabled"] is True and kms["keyVaultNetworkAccess"] == "Private"
    assert cluster["agentPoolProfiles"][0]["enableNodePublicIP"] is False
    pool = props(rec.one("azure-native:containerservice:AgentPool"))
    assert pool["vmSize"] == "Standard_DC8as_v5" and pool["enableNodePublicIP"] is False
    # two regions: VNets peered both ways, distinct address spaces
    spaces = sorted(props(r)["addressSpace"]["addressPrefixes"][0] for r in rec.of_type("azure-native:network:VirtualNetwork"))
    assert spaces == ["10.40.0.0/16", "10.41.0.0/16"]
    assert len(rec.of_type("azure-native:network:VirtualNetworkPeering")) == 2
    # the data key admits either approved workload, each fully pinned
    policy = decode_release_policy(props(data_key(rec))["properties"]["releasePolicy"]["data"])
    pins = [[c for c in alt["allOf"] if "mrenclave" in c["claim"] or "hostdata" in c["claim"]]
            for alt in policy["anyOf"]]
    # AKS confidential containers: the container (UVM) claims, pinned by the CCE policy hash.
    assert [p[0]["claim"] for p in pins] == ["x-ms-sevsnpvm-hostdata", "x-ms-sgx-mrenclave"]
    releasers = sorted(props(r)["principalId"] for r in rec.of_type("azure-native:authorization:RoleAssignment")
                       if props(r)["roleDefinitionId"].endswith(RELEASE_USER))
    assert releasers == sorted([principal_id(f"{SITE}-sgx-westeurope-0-identity"),
                                principal_id(f"{SITE}-sev-snp-northeurope-1-identity")])
    federation = props(rec.one("azure-native:managedidentity:FederatedIdentityCredential"))
    assert federation["subject"] == "system:serviceaccount:ccp:workload"


def test_missing_measurements_for_azure_tee_is_refused() -> None:
    raw = with_hosts(read_stack("dev"), [{"cloud": "azure", "region": "westeurope", "tee": "tdx",
                                          "instanceType": "Standard_DC4es_v5"}])
    # config validation already refuses a host without its measurement section
    with pytest.raises(config.ConfigError, match="measurements.tdx"):
        site_args(raw)


# --- Key purposes (components/key_purpose.py) and the operator vault's audit ------------------------


def _purposes(rec: Recording) -> dict[str, tuple[str, str, bool]]:
    """key resource name -> (purpose, party, exportable)."""
    return {
        r.name: (props(r)["tags"]["ccp-key-purpose"], props(r)["tags"]["party"], props(r)["properties"]["attributes"]["exportable"])
        for r in rec.of_type("azure-native:keyvault:Key")
    }


def test_party_has_two_keys_data_and_storage(dev: Recording) -> None:
    assert _purposes(dev) == {
        f"{SITE}-clinic-azure-data-key-key": ("party-data", "clinic-azure", True),
        f"{SITE}-clinic-azure-storage-cmk": ("party-storage", "clinic-azure", False),
    }
    storage_key = props(custom(dev, f"{SITE}-clinic-azure-storage-cmk"))
    assert "releasePolicy" not in storage_key["properties"]
    account = props(dev.one("azure-native:storage:StorageAccount"))
    assert account["encryption"]["keyVaultProperties"]["keyName"] == storage_key["keyName"] == "clinic-azure-storage"


def test_prod_disk_key_is_a_shared_confidential_disk_key_and_its_vault_is_audited() -> None:
    rec = build(prod_cvm(), AzureOptions(cvm_orchestrator_object_id=ORCHESTRATOR, attestation_policy_signing_certificates=(SIGNER_PEM,)))
    purposes = _purposes(rec)
    assert purposes[f"{SITE}-tdx-germanywestcentral-0-disk-key"] == ("confidential-disk", "shared", True)
    ops_vault = next(r for r in rec.of_type("azure-native:keyvault:Vault") if "-ops-" in r.name)
    assert props(ops_vault)["tags"]["party"] == "shared"
    settings = [props(r) for r in rec.of_type("azure-native:monitor:DiagnosticSetting")
                if props(r)["resourceUri"] == resource_id(ops_vault)]
    assert [(s["name"], s["logs"]) for s in settings] == [
        (f"{SITE}-ops-germanywestcentral-monitoring-vault-audit", [{"category": "AuditEvent", "enabled": True}])
    ]
    assert settings[0]["workspaceId"] == resource_id(custom(rec, f"{SITE}-ops-germanywestcentral-monitoring-logs"))
    queries = {props(r)["displayName"]: props(r)["criteria"]["allOf"][0]["query"]
               for r in rec.of_type("azure-native:monitor:ScheduledQueryRule")}
    assert "StorageBlobLogs" not in queries[f"{SITE}-ops-germanywestcentral-monitoring-unauthorized-access"]
    assert 'OperationName == "KeyRelease"' in queries[f"{SITE}-ops-germanywestcentral-monitoring-key-release-failures"]


def test_aks_kms_key_is_a_shared_cluster_secrets_key() -> None:
    raw = with_hosts(
        read_stack("dev"),
        [{"cloud": "azure", "region": "westeurope", "tee": "sev-snp", "instanceType": "Standard_DC8as_v5", "kubernetes": True}],
    )
    rec = build(raw)
    assert _purposes(rec)[f"{SITE}-sev-snp-westeurope-0-kms"] == ("cluster-secrets", "shared", False)
    assert any(props(r)["name"] == f"{SITE}-ops-westeurope-monitoring-vault-audit"
               for r in rec.of_type("azure-native:monitor:DiagnosticSetting"))


@pytest.mark.parametrize(("purpose", "policy", "problem"), [
    ("party-storage", "e30", "a service key is never exportable and has no release policy"),
    ("party-data", None, "an attested key needs a release policy"),
    ("confidential-disk", None, "an attested key needs a release policy"),
])
def test_hsm_key_refuses_a_purpose_without_its_release_shape(purpose: str, policy: str | None, problem: str) -> None:
    from types import SimpleNamespace

    from components.azure.keyvault import hsm_key

    vault = SimpleNamespace(require_vault=lambda _: SimpleNamespace(name="v"), resource_group_name="rg")
    with pytest.raises(ValueError, match=problem):
        hsm_key("k", vault=vault, key_name="k", key_ops=["wrapKey"], tags={}, parent=None,  # type: ignore[arg-type]
                purpose=purpose, release_policy_data=policy)
