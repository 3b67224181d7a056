"""The two operator cases of the key-release matrix, judged from the declared resources.

`operator-repolicies-key`: an operator of the party's account / subscription / project tries to take
the key away from attestation by changing who may use it.

- AWS (aws.py): `kms:PutKeyPolicy` / `kms:CreateGrant` by the account's IAM principals.
- Azure: changing an exportable key's release policy is a Key Vault *data-plane* operation (Update
  Key / Create Key with `release_policy`; both data actions `Microsoft.KeyVault/vaults/keys/write`
  and `.../keys/update/action` are counted, fail closed). An `immutable` release policy is not relied
  on: a key-write holder can still create a new version with another policy. On a vault with the Azure RBAC permission model, control-plane roles
  (Owner, Contributor, Key Vault Contributor: "lets you manage key vaults, but not access to them",
  no `dataActions`) cannot do it; Key Vault Administrator (`vaults/*`), Crypto Officer (`keys/*`)
  and Crypto User (`keys/update/action`) can. On a vault with access policies, Key Vault
  Contributor writes `vaults/accessPolicies` (control plane) and so grants itself key permissions.
  A role that writes role assignments (Owner, User Access Administrator, Role Based Access Control
  Administrator, Key Vault Data Access Administrator) can grant itself Crypto Officer: the
  simulation counts every such assignment *declared* at the key, vault, resource group or
  subscription; assignments made outside the program are not in the recording (the stack's design
  declares none; see the collaborations README for this limit).
- GCP: `cloudkms.cryptoKeys.setIamPolicy` on the key, key ring or project (roles/cloudkms.admin,
  roles/owner, and project IAM admins that can grant themselves either), and
  `iam.workloadIdentityPoolProviders.update` on the pool (roles/iam.workloadIdentityPoolAdmin,
  roles/owner, roles/editor), which rewrites the attribute condition. Every declared binding of
  such a role counts; custom or unknown roles count too (fail closed).

`operator-runs-code-on-host`: the operator gets code execution on the workload's host outside the
attested measurement, and asks for the key with what that host can present.

- AWS: SSM/SSH on the parent EC2 instance gives the instance profile's credentials (the enclave
  role) but no attestation document of the approved enclave: the parent calls KMS without a
  `Recipient`, or runs its own EIF / the approved EIF in debug mode in an enclave on the same
  parent (same PCR3 role and PCR4 instance, other PCR0/1/2/8, or all-zero PCRs).
- Azure confidential container group: exec into the container is refused by the CCE policy; an
  operator who redeploys the group with another CCE policy (exec enabled) gets a token whose
  `x-ms-sevsnpvm-hostdata` is that policy's hash. SGX/TDX: code outside the enclave / TD has other
  measurements. A confidential VM's guest presents the guest's own token: on the measured-guest path
  (vTPM PCRs) the operator gets it only through a declared way in (VM agent, extension operations,
  extensions, Run Command, a password login); otherwise it can only boot its own image (other PCRs).
- GCP Confidential Space: an operator-launched container on a Confidential Space VM with the
  workload's service account (another image digest, production and debug image), and the service
  account used from an ordinary VM (no attestation).
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any, Final, Iterable, Mapping

from components.azure.options import login_keys
from policies.review.key_release import aws, azure, claims, gcp
from policies.review.mocks import Recording, RecordedResource, unwrap

CASES: Final[tuple[str, ...]] = ("operator-repolicies-key", "operator-runs-code-on-host")
OPERATOR_LABEL: Final = "operator-host"

# --- Azure ---------------------------------------------------------------------------------------

# Built-in role definitions (Azure RBAC "Azure built-in roles"): their data actions and whether they
# write role assignments. A role id not listed (or a custom role not recorded) is treated as able to
# do everything (fail closed).
AZURE_ROLES: Final[dict[str, tuple[str, tuple[str, ...], bool]]] = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": ("Owner", (), True),
    "b24988ac-6180-42a0-ab88-20f7382dd24c": ("Contributor", (), False),
    "acdd72a7-3385-48ef-bd42-f606fba81ae7": ("Reader", (), False),
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": ("User Access Administrator", (), True),
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168": ("Role Based Access Control Administrator", (), True),
    "8b54135c-b56d-4d72-a534-26097cfdc8d8": ("Key Vault Data Access Administrator", (), True),
    "f25e0fa2-a7c8-4377-a976-54943a77a395": ("Key Vault Contributor", (), False),
    "21090545-7ca7-4776-b22c-e363652d74d2": ("Key Vault Reader", ("Microsoft.KeyVault/vaults/*/read",), False),
    "00482a5a-887f-4fb3-b363-3b7fe8e74483": ("Key Vault Administrator", ("Microsoft.KeyVault/vaults/*",), False),
    "14b46e9e-c2b7-41b4-b07b-48a6ebf60603": (
        "Key Vault Crypto Officer",
        ("Microsoft.KeyVault/vaults/keys/*", "Microsoft.KeyVault/vaults/keyrotationpolicies/*"),
        False,
    ),
    "12338af0-0e69-4776-bea7-57ae8d297424": (
        "Key Vault Crypto User",
        (
            "Microsoft.KeyVault/vaults/keys/read",
            "Microsoft.KeyVault/vaults/keys/update/action",
            "Microsoft.KeyVault/vaults/keys/backup/action",
            "Microsoft.KeyVault/vaults/keys/encrypt/action",
            "Microsoft.KeyVault/vaults/keys/decrypt/action",
            "Microsoft.KeyVault/vaults/keys/wrap/action",
            "Microsoft.KeyVault/vaults/keys/unwrap/action",
            "Microsoft.KeyVault/vaults/keys/sign/action",
            "Microsoft.KeyVault/vaults/keys/verify/action",
        ),
        False,
    ),
    "e147488a-f6f5-4113-8e2d-b22465e65bf6": (
        "Key Vault Crypto Service Encryption User",
        (
            "Microsoft.KeyVault/vaults/keys/read",
            "Microsoft.KeyVault/vaults/keys/wrap/action",
            "Microsoft.KeyVault/vaults/keys/unwrap/action",
        ),
        False,
    ),
    "08bbd89e-9f13-488c-ac41-acfcb10c90ab": (
        "Key Vault Crypto Service Release User",
        ("Microsoft.KeyVault/vaults/keys/release/action",),
        False,
    ),
}
# Data actions that change a key's release policy (Update Key / Create Key with release_policy).
REPOLICY_DATA_ACTIONS: Final = ("Microsoft.KeyVault/vaults/keys/write", "Microsoft.KeyVault/vaults/keys/update/action")
ROLE_ASSIGNMENT_WRITE: Final = "Microsoft.Authorization/roleAssignments/write"


def _matches_any(patterns: Iterable[str], action: str) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in patterns)


def _custom_role(recording: Recording, assignment: RecordedResource) -> tuple[tuple[str, ...], bool] | None:
    """Data actions and role-assignment writing of a role definition declared in the program."""
    targets = set(assignment.property_dependencies.get("roleDefinitionId", []))
    for resource in recording.of_type("azure-native:authorization:RoleDefinition"):
        if resource.urn not in targets:
            continue
        data: list[str] = []
        writes = False
        for permission in unwrap(resource.properties).get("permissions") or []:
            data += list(permission.get("dataActions") or [])
            writes = writes or _matches_any(permission.get("actions") or [], ROLE_ASSIGNMENT_WRITE)
        return tuple(data), writes
    return None


def azure_role_can_repolicy(recording: Recording, assignment: RecordedResource) -> str | None:
    """Why this assignment's role can change a key's release policy (None: it cannot)."""
    role_id = str(unwrap(assignment.properties).get("roleDefinitionId") or "").rsplit("/", 1)[-1].lower()
    known = AZURE_ROLES.get(role_id)
    if known is not None:
        name, data_actions, writes_assignments = known
    else:
        custom = _custom_role(recording, assignment)
        if custom is None:
            return f"unknown role {role_id or '?'} (fail closed)"
        name, (data_actions, writes_assignments) = f"custom role {assignment.name}", custom
    if writes_assignments:
        return f"{name} can grant itself Key Vault Crypto Officer"
    if any(_matches_any(data_actions, action) for action in REPOLICY_DATA_ACTIONS):
        return f"{name} holds a key-write data action"
    return None


def _azure_scope_contains(assignment: RecordedResource, key: RecordedResource, containers: set[str]) -> bool:
    """Does the assignment's scope contain the key (the key, its vault, resource group, subscription)?
    A scope this code cannot place counts as containing it (fail closed)."""
    deps = assignment.property_dependencies.get("scope", [])
    if deps:
        return any(d in containers for d in deps)
    scope = unwrap(assignment.properties).get("scope")
    key_id = key.outputs.get("id")
    if isinstance(scope, str) and scope.lower().startswith("/subscriptions/") and isinstance(key_id, str):
        parts = scope.rstrip("/").lower().split("/")
        if "providers" not in parts:  # subscription or resource group
            return key_id.lower().startswith(scope.rstrip("/").lower() + "/")
        return key_id.lower().startswith(scope.rstrip("/").lower()) or scope.lower() in {
            str(c).lower() for c in containers
        }
    return True


def azure_repolicy_paths(key: RecordedResource, recording: Recording) -> list[str]:
    """Declared ways an operator changes the key's release policy; empty: none the program allows."""
    vault_urns = set(key.property_dependencies.get("vaultName", []))
    containers = {key.urn, *vault_urns, *key.property_dependencies.get("resourceGroupName", [])}
    paths: list[str] = []
    vaults = [r for r in recording.of_type("azure-native:keyvault:Vault") if r.urn in vault_urns]
    if not vaults:
        paths.append("the key's vault is not in the recording: its permission model is unknown (fail closed)")
    for vault in vaults:
        containers.add(str(vault.outputs.get("id") or vault.urn))
        props = unwrap(vault.properties).get("properties") or {}
        if props.get("enableRbacAuthorization") is not True:
            paths.append(
                f"vault {vault.name} uses access policies: Key Vault Contributor (control plane) "
                "writes vaults/accessPolicies and grants itself key permissions"
            )
    for assignment in recording.of_type("azure-native:authorization:RoleAssignment"):
        if not _azure_scope_contains(assignment, key, containers):
            continue
        why = azure_role_can_repolicy(recording, assignment)
        if why is not None:
            paths.append(f"role assignment {assignment.name}: {why}")
    return paths


# A confidential VM's operator paths into the guest (azure-native VirtualMachine inputs): the VM agent runs
# extensions and Run Command, a password logs in. Absent means on (ARM's defaults), fail closed.
VM: Final = "azure-native:compute:VirtualMachine"
GUEST_ENTRY_TYPES: Final = (
    "azure-native:compute:VirtualMachineExtension",
    "azure-native:compute:VirtualMachineRunCommandByVirtualMachine",
)


def azure_guest_entry_paths(recording: Recording) -> list[str]:
    """How the operator runs code inside a declared confidential VM's guest (after the measured boot)."""
    paths: list[str] = []
    for vm in recording.of_type(VM):
        inputs = unwrap(vm.properties)
        if (inputs.get("securityProfile") or {}).get("securityType") != "ConfidentialVM":
            continue
        profile = inputs.get("osProfile") or {}
        linux = profile.get("linuxConfiguration") or {}
        if profile.get("allowExtensionOperations") is not False:
            paths.append(f"{vm.name}: extension operations (extensions, Run Command)")
        if linux.get("provisionVMAgent") is not False:
            paths.append(f"{vm.name}: the VM agent")
        if linux.get("disablePasswordAuthentication") is not True:
            paths.append(f"{vm.name}: an admin password login")
        if login_keys((linux.get("ssh") or {}).get("publicKeys")):
            paths.append(f"{vm.name}: an SSH key login")
    paths += [f"{r.name}: {r.type.rsplit(':', 1)[-1]}" for t in GUEST_ENTRY_TYPES for r in recording.of_type(t)]
    return paths


def azure_operator_host_token(
    measurements: Any,
    workload: claims.AzureWorkload,
    issuer: str,
    recording: Recording,
    guest_policies: Mapping[str, str],
) -> dict[str, Any] | None:
    """What the host presents when the operator runs its own code there (see the module docstring)."""
    if workload.container:
        token = claims.maa_token(measurements, workload, issuer, "approved")
        assert token is not None  # a container token is always issued
        token["x-ms-sevsnpvm-hostdata"] = claims.stand_in(f"{OPERATOR_LABEL}-cce-policy-exec-enabled", 64)
        return token
    if workload.tee in ("sgx", "tdx"):
        return claims.maa_token(measurements, workload, issuer, f"other:{OPERATOR_LABEL}")
    if workload.measured_guest and not azure_guest_entry_paths(recording):
        # No way into the measured guest: the operator can only boot its own image with the host's identity.
        return claims.maa_token(measurements, workload, issuer, f"other:{OPERATOR_LABEL}", guest_policies)
    # A confidential VM with a way in: the operator's code runs in the guest the token describes.
    return claims.maa_token(measurements, workload, issuer, "approved", guest_policies)


# --- AWS -----------------------------------------------------------------------------------------


def aws_operator_host_requests(
    policy: Mapping[str, Any], roles: Iterable[str], approved: Mapping[str, str], debug: Mapping[str, str]
) -> Iterable[bool]:
    """The parent instance's credentials without an attestation document, and with the document of
    another enclave the operator starts on the same parent (its own EIF; the approved EIF in debug)."""
    own_eif = dict(approved) | {
        pcr: claims.stand_in(f"{OPERATOR_LABEL}-{pcr}", 96) for pcr in ("pcr0", "pcr1", "pcr2", "pcr8")
    }
    for role in roles:
        yield aws.release(policy, role, None)
        yield aws.release(policy, role, own_eif)
        yield aws.release(policy, role, debug)


# --- GCP -----------------------------------------------------------------------------------------

KMS_SET_IAM_ROLES: Final = frozenset(
    {
        "roles/cloudkms.admin",
        "roles/owner",
        "roles/iam.securityAdmin",
        "roles/resourcemanager.projectIamAdmin",
        "roles/resourcemanager.folderAdmin",
        "roles/resourcemanager.folderIamAdmin",
        "roles/resourcemanager.organizationAdmin",
    }
)
PROVIDER_UPDATE_ROLES: Final = frozenset(
    {
        "roles/iam.workloadIdentityPoolAdmin",
        "roles/owner",
        "roles/editor",
        "roles/iam.securityAdmin",
        "roles/resourcemanager.projectIamAdmin",
        "roles/resourcemanager.folderAdmin",
        "roles/resourcemanager.folderIamAdmin",
        "roles/resourcemanager.organizationAdmin",
    }
)
_KNOWN_ROLE_PREFIX: Final = "roles/"


def _iam_entries(resource: RecordedResource) -> list[tuple[str, str]]:
    props = unwrap(resource.properties)
    if "policyData" in props:
        policy = json.loads(props.get("policyData") or "{}")
        return [(b.get("role", ""), m) for b in policy.get("bindings", []) for m in b.get("members", [])]
    if "members" in props:
        return [(props.get("role", ""), m) for m in props.get("members") or []]
    return [(props.get("role", ""), props.get("member", ""))]


def _capable(role: str, roles: frozenset[str]) -> bool:
    return role in roles or not role.startswith(_KNOWN_ROLE_PREFIX)


def _key_ring_and_project(key: RecordedResource) -> tuple[str | None, str | None]:
    ring = unwrap(key.properties).get("keyRing")
    if isinstance(ring, str) and ring.startswith("projects/"):
        return ring, ring.split("/")[1]
    return None, None


KEY_IAM_TYPES: Final = (
    "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember",
    "gcp:kms/cryptoKeyIAMBinding:CryptoKeyIAMBinding",
    "gcp:kms/cryptoKeyIAMPolicy:CryptoKeyIAMPolicy",
)
RING_IAM_TYPES: Final = (
    "gcp:kms/keyRingIAMMember:KeyRingIAMMember",
    "gcp:kms/keyRingIAMBinding:KeyRingIAMBinding",
    "gcp:kms/keyRingIAMPolicy:KeyRingIAMPolicy",
)
PROJECT_IAM_TYPES: Final = (
    "gcp:projects/iAMMember:IAMMember",
    "gcp:projects/iAMBinding:IAMBinding",
    "gcp:projects/iAMPolicy:IAMPolicy",
)
POOL_IAM_TYPES: Final = (
    "gcp:iam/workloadIdentityPoolIamMember:WorkloadIdentityPoolIamMember",
    "gcp:iam/workloadIdentityPoolIamBinding:WorkloadIdentityPoolIamBinding",
    "gcp:iam/workloadIdentityPoolIamPolicy:WorkloadIdentityPoolIamPolicy",
)
ABOVE_PROJECT_IAM_TYPES: Final = (
    "gcp:folder/iAMMember:IAMMember",
    "gcp:folder/iAMBinding:IAMBinding",
    "gcp:folder/iAMPolicy:IAMPolicy",
    "gcp:organizations/iAMMember:IAMMember",
    "gcp:organizations/iAMBinding:IAMBinding",
    "gcp:organizations/iAMPolicy:IAMPolicy",
)


def gcp_repolicy_paths(key: RecordedResource, recording: Recording, refers_to: Any) -> list[str]:
    """Declared bindings that let someone re-policy the key or rewrite the provider's condition."""
    ring, project = _key_ring_and_project(key)
    ring_urns = set(key.property_dependencies.get("keyRing", []))
    paths: list[str] = []

    def check(resource: RecordedResource, roles: frozenset[str], what: str) -> None:
        for role, member in _iam_entries(resource):
            if _capable(role, roles):
                paths.append(f"{resource.name}: {member} holds {role or '?'} ({what})")

    for type_ in KEY_IAM_TYPES:
        for resource in recording.of_type(type_):
            if refers_to(resource, key):
                check(resource, KMS_SET_IAM_ROLES, "cloudkms.cryptoKeys.setIamPolicy on the key")
    for type_ in RING_IAM_TYPES:
        for resource in recording.of_type(type_):
            target = unwrap(resource.properties).get("keyRingId")
            deps = set(resource.property_dependencies.get("keyRingId", []))
            if deps & ring_urns or (ring is not None and target == ring) or (not deps and target is None):
                check(resource, KMS_SET_IAM_ROLES, "cloudkms.cryptoKeys.setIamPolicy on the key ring")
    for type_ in PROJECT_IAM_TYPES:
        for resource in recording.of_type(type_):
            target = unwrap(resource.properties).get("project")
            if project is None or target in (None, project):
                check(resource, KMS_SET_IAM_ROLES | PROVIDER_UPDATE_ROLES, "on the project")
    for type_ in POOL_IAM_TYPES:
        for resource in recording.of_type(type_):
            check(resource, PROVIDER_UPDATE_ROLES, "iam.workloadIdentityPoolProviders.update on the pool")
    for type_ in ABOVE_PROJECT_IAM_TYPES:
        for resource in recording.of_type(type_):
            check(resource, KMS_SET_IAM_ROLES | PROVIDER_UPDATE_ROLES, "above the project")
    return paths


def gcp_operator_host_requests(
    providers: list[gcp.Provider], bindings: list[gcp.Binding], workloads: list[claims.GcpWorkload]
) -> Iterable[bool]:
    digest = claims.other_image_digest(OPERATOR_LABEL)
    for workload in workloads:
        yield gcp.release(providers, bindings, claims.confidential_space_token(workload, digest))
        yield gcp.release(providers, bindings, claims.confidential_space_token(workload, digest, debug=True))
    yield gcp.direct_release(bindings, [w.service_account for w in workloads])


def azure_host_requests(
    policy: Mapping[str, Any],
    measurements: Any,
    workloads: list[claims.AzureWorkload],
    issuers: list[str],
    recording: Recording,
    guest_policies: Mapping[str, str],
) -> Iterable[bool]:
    for workload in workloads:
        for issuer in issuers:
            yield azure.evaluate(
                policy, azure_operator_host_token(measurements, workload, issuer, recording, guest_policies)
            )
