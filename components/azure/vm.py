"""Workload hosts on Azure: confidential VMs (AMD SEV-SNP / Intel TDX) and SGX VMs.

Every host: a validated size, UEFI secure boot + vTPM, a NIC without a public IP on a subnet
without inbound rules, Linux with password authentication disabled, the host's user-assigned
identity (the principal its party keys are released to), and a cloud-init custom data
(`runtime_cloud_init`) that starts the enclave runtime at boot and closes the operator paths (sshd
masked, no VM agent, no extensions; ARM still requires an SSH key in the Linux profile, which the
first boot removes).
Confidential VMs also encrypt the OS disk together with the VM guest state
(`DiskWithVMGuestState`); in prod under a customer key through a `DiskEncryptionSet` of type
`ConfidentialVmEncryptedWithCustomerKey` (https://learn.microsoft.com/azure/confidential-computing/confidential-vm-overview).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Final

import pulumi
from pulumi_azure_native import compute, managedidentity, network

from components.azure.common import (
    KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
    KEY_VAULT_CRYPTO_SERVICE_RELEASE_USER,
    assign_role,
    child,
    placement,
)
from components.azure.keyvault import TRUSTED_SERVICES_BYPASS, KeyVault, hsm_key
from components.azure.sizes import EXAMPLE_SIZE, validate_cvm_size
from components.key_purpose import CONFIDENTIAL_DISK, DISK
from components.model import WorkloadHost

ADMIN_USERNAME: Final = "ccpadmin"
# Marketplace images (Canonical): the CVM image carries the confidential-VM-capable kernel.
CVM_IMAGE: Final = {
    "publisher": "Canonical",
    "offer": "0001-com-ubuntu-confidential-vm-jammy",
    "sku": "22_04-lts-cvm",
    "version": "latest",
}
SGX_IMAGE: Final = {
    "publisher": "Canonical",
    "offer": "0001-com-ubuntu-server-jammy",
    "sku": "22_04-lts-gen2",
    "version": "latest",
}
CONFIDENTIAL_DES_TYPE: Final = "ConfidentialVmEncryptedWithCustomerKey"
STANDARD_DES_TYPE: Final = "EncryptionAtRestWithCustomerKey"


RUNTIME_UNIT: Final = "ccp-runtime.service"


def runtime_cloud_init(workload_name: str = "workload") -> str:
    """cloud-init user data of a workload VM: start the enclave runtime at boot, close the operator paths.

    - `ccp-runtime.service` runs `python3 -m enclave_runtime serve` (the runtime baked into the image,
      images/cvm/README.md) as an unprivileged dynamic user, restarted on failure;
    - sshd is masked and the admin account's authorized keys removed at first boot (Azure requires a
      key in the Linux profile; the NSG admits no SSH either), and the Azure Linux agent is stopped
      (the VM also declares provisionVMAgent/allowExtensionOperations false: no Run Command, no extensions).
    """
    return (
        "#cloud-config\n"
        "ssh_pwauth: false\n"
        "disable_root: true\n"
        "write_files:\n"
        f"  - path: /etc/systemd/system/{RUNTIME_UNIT}\n"
        "    permissions: '0644'\n"
        "    content: |\n"
        f"      [Unit]\n"
        f"      Description=ccp enclave runtime ({workload_name})\n"
        "      After=network-online.target\n"
        "      Wants=network-online.target\n"
        "      [Service]\n"
        "      ExecStart=/usr/bin/python3 -m enclave_runtime serve --host 0.0.0.0 --port 8443\n"
        "      Environment=PYTHONPATH=/opt/ccp\n"
        "      DynamicUser=yes\n"
        "      NoNewPrivileges=yes\n"
        "      Restart=on-failure\n"
        "      [Install]\n"
        "      WantedBy=multi-user.target\n"
        "runcmd:\n"
        f"  - [systemctl, daemon-reload]\n"
        f"  - [systemctl, enable, --now, {RUNTIME_UNIT}]\n"
        "  - [systemctl, mask, --now, ssh.service, ssh.socket]\n"
        f"  - [rm, -f, /home/{ADMIN_USERNAME}/.ssh/authorized_keys]\n"
        "  - [systemctl, mask, --now, walinuxagent.service]\n"
    )


def host_size(host: WorkloadHost) -> str:
    """The host's size, validated for its TEE (a representative size when config gives none)."""
    size = host.instance_type or EXAMPLE_SIZE.get(host.tee, "")
    validate_cvm_size(size, host.tee)
    return size


@dataclass(frozen=True)
class DiskEncryptionArgs:
    resource_group_name: pulumi.Input[str]
    location: str
    vault: KeyVault
    key_name: str
    encryption_type: str
    tags: dict[str, str]
    # Confidential disks: the release policy (Microsoft's platform policy for the host's region,
    # components/attestation/azure_release_policy.cvm_disk_release_policy) and the
    # "Confidential VM Orchestrator" principal that releases the key when the VM starts.
    release_policy_data: pulumi.Input[str] | None = None
    orchestrator_object_id: str | None = None


class DiskEncryption(pulumi.ComponentResource):
    """A DiskEncryptionSet whose key lives in a vault the operator (not a party) owns."""

    disk_encryption_set: compute.DiskEncryptionSet

    def __init__(self, name: str, args: DiskEncryptionArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:azure:DiskEncryption", name, None, opts)
        confidential = args.encryption_type == CONFIDENTIAL_DES_TYPE
        if confidential and (args.release_policy_data is None or args.orchestrator_object_id is None):
            raise ValueError(
                "a ConfidentialVmEncryptedWithCustomerKey disk encryption set needs an exportable key "
                "with a release policy and the Confidential VM Orchestrator's object id "
                "(ccp-azure:cvmOrchestratorObjectId)"
            )
        if confidential and args.vault.network_bypass != TRUSTED_SERVICES_BYPASS:
            raise ValueError(
                f"the vault of confidential disk key {args.key_name!r} must let trusted Microsoft services "
                f"through its firewall (network_acls.bypass={TRUSTED_SERVICES_BYPASS!r}): the disk encryption "
                "set and the platform's release of the key at VM start do not come through its private endpoint"
            )
        common = placement(args.resource_group_name, args.location, args.tags)
        identity = managedidentity.UserAssignedIdentity(f"{name}-identity", **common, opts=child(self))
        key = hsm_key(
            f"{name}-key",
            vault=args.vault,
            key_name=args.key_name,
            key_ops=["wrapKey", "unwrapKey"],
            tags=args.tags,
            parent=self,
            # Azure releases a confidential OS disk key into the attested CVM (exportable, release
            # policy); a standard disk key never leaves the HSM.
            purpose=CONFIDENTIAL_DISK if confidential else DISK,
            release_policy_data=args.release_policy_data if confidential else None,
        )
        grants = [
            assign_role(
                f"{name}-encryption",
                scope=key.id,
                role=KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
                principal_id=identity.principal_id,
                parent=self,
                description=f"disk encryption set {name} wraps disk keys with {args.key_name}",
            )
        ]
        if confidential:
            grants.append(
                assign_role(
                    f"{name}-orchestrator-release",
                    scope=key.id,
                    role=KEY_VAULT_CRYPTO_SERVICE_RELEASE_USER,
                    principal_id=args.orchestrator_object_id,  # type: ignore[arg-type]
                    parent=self,
                    description="Confidential VM Orchestrator releases the confidential OS disk key at VM start",
                )
            )
        store = args.vault.require_vault("disk encryption")
        self.disk_encryption_set = compute.DiskEncryptionSet(
            f"{name}-des",
            encryption_type=args.encryption_type,
            active_key=compute.KeyForDiskEncryptionSetArgs(
                key_url=key.key_uri_with_version, source_vault=compute.SourceVaultArgs(id=store.id)
            ),
            identity=compute.EncryptionSetIdentityArgs(type="UserAssigned", user_assigned_identities=[identity.id]),
            # Azure does not support auto-rotation for confidential-VM disk keys: the confidential
            # set stays on its key version and is rotated by hand (components/README.md).
            rotation_to_latest_key_version_enabled=not confidential,
            **common,
            opts=child(self, *grants),
        )
        self.register_outputs({"id": self.disk_encryption_set.id})


@dataclass(frozen=True)
class VmArgs:
    host: WorkloadHost
    resource_group_name: pulumi.Input[str]
    subnet: network.Subnet
    identity: managedidentity.UserAssignedIdentity
    admin_ssh_public_key: str
    tags: dict[str, str]
    prod: bool
    disk_encryption_set: compute.DiskEncryptionSet | None = None


def disk_encryption_set_ref(args: VmArgs) -> compute.DiskEncryptionSetParametersArgs | None:
    """The OS disk's customer-key DiskEncryptionSet, if the stack gave one (prod always does)."""
    if args.disk_encryption_set is None:
        return None
    return compute.DiskEncryptionSetParametersArgs(id=args.disk_encryption_set.id)


def _linux_vm(
    component: pulumi.ComponentResource,
    name: str,
    args: VmArgs,
    *,
    size: str,
    security_type: str,
    image: dict[str, str],
    disk_security: compute.VMDiskSecurityProfileArgs | None = None,
) -> compute.VirtualMachine:
    """The NIC and VM every Azure workload host shares (one definition of the common hardening).

    Every host boots with secure boot and a vTPM. The OS disk's customer key (`args.disk_encryption_set`)
    goes where Azure reads it: inside `disk_security` for confidential OS disk encryption, which
    the caller builds with `disk_encryption_set_ref(args)`, otherwise on the managed disk itself.
    """
    common = placement(args.resource_group_name, args.host.region, args.tags)
    nic = network.NetworkInterface(
        f"{name}-nic",
        ip_configurations=[
            network.NetworkInterfaceIPConfigurationArgs(
                name="primary",
                primary=True,
                subnet=network.SubnetArgs(id=args.subnet.id),
                private_ip_allocation_method="Dynamic",
            )
        ],
        enable_ip_forwarding=False,
        **common,
        opts=child(component),
    )
    return compute.VirtualMachine(
        f"{name}-vm",
        hardware_profile=compute.HardwareProfileArgs(vm_size=size),
        identity=compute.VirtualMachineIdentityArgs(type="UserAssigned", user_assigned_identities=[args.identity.id]),
        security_profile=compute.SecurityProfileArgs(
            security_type=security_type,
            uefi_settings=compute.UefiSettingsArgs(secure_boot_enabled=True, v_tpm_enabled=True),
        ),
        storage_profile=compute.StorageProfileArgs(
            image_reference=compute.ImageReferenceArgs(**image),
            os_disk=compute.OSDiskArgs(
                create_option="FromImage",
                caching="ReadWrite",
                delete_option="Delete",
                managed_disk=compute.ManagedDiskParametersArgs(
                    storage_account_type="Premium_LRS",
                    security_profile=disk_security,
                    disk_encryption_set=None if disk_security is not None else disk_encryption_set_ref(args),
                ),
            ),
        ),
        os_profile=compute.OSProfileArgs(
            computer_name=name[:63],
            admin_username=ADMIN_USERNAME,
            # The workload starts at boot from this cloud-init; nobody gets in afterwards (no extensions,
            # no Run Command through the agent, sshd masked, no inbound NSG rule).
            custom_data=base64.b64encode(runtime_cloud_init().encode()).decode(),
            allow_extension_operations=False,
            linux_configuration=compute.LinuxConfigurationArgs(
                disable_password_authentication=True,
                provision_vm_agent=False,
                ssh=compute.SshConfigurationArgs(
                    public_keys=[
                        compute.SshPublicKeyArgs(
                            path=f"/home/{ADMIN_USERNAME}/.ssh/authorized_keys",
                            key_data=args.admin_ssh_public_key,
                        )
                    ]
                ),
            ),
        ),
        network_profile=compute.NetworkProfileArgs(
            network_interfaces=[compute.NetworkInterfaceReferenceArgs(id=nic.id, primary=True, delete_option="Delete")]
        ),
        **common,
        opts=child(component),
    )


class ConfidentialVm(pulumi.ComponentResource):
    """An AMD SEV-SNP or Intel TDX confidential VM."""

    vm: compute.VirtualMachine

    def __init__(self, name: str, args: VmArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:azure:ConfidentialVm", name, None, opts)
        if args.host.tee not in ("sev-snp", "tdx"):
            raise ValueError(f"ConfidentialVm runs sev-snp or tdx, not {args.host.tee!r} (use SgxVm for sgx)")
        size = host_size(args.host)
        if args.prod and args.disk_encryption_set is None:
            raise ValueError(
                f"prod confidential VM {name!r} needs a customer-key DiskEncryptionSet "
                f"({CONFIDENTIAL_DES_TYPE}) for its OS disk and guest state"
            )
        self.vm = _linux_vm(
            self,
            name,
            args,
            size=size,
            security_type="ConfidentialVM",
            image=CVM_IMAGE,
            disk_security=compute.VMDiskSecurityProfileArgs(
                security_encryption_type="DiskWithVMGuestState", disk_encryption_set=disk_encryption_set_ref(args)
            ),
        )
        self.register_outputs({"vmId": self.vm.id})


class SgxVm(pulumi.ComponentResource):
    """An Intel SGX VM (DCsv2/DCsv3/DCdsv3), trusted launch, OS disk under a customer key in prod."""

    vm: compute.VirtualMachine

    def __init__(self, name: str, args: VmArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:azure:SgxVm", name, None, opts)
        if args.host.tee != "sgx":
            raise ValueError(f"SgxVm runs sgx, not {args.host.tee!r} (use ConfidentialVm)")
        size = host_size(args.host)
        if args.prod and args.disk_encryption_set is None:
            raise ValueError(f"prod SGX VM {name!r} needs a customer-key DiskEncryptionSet ({STANDARD_DES_TYPE})")
        self.vm = _linux_vm(
            self,
            name,
            args,
            size=size,
            security_type="TrustedLaunch",
            image=SGX_IMAGE,
        )
        self.register_outputs({"vmId": self.vm.id})
