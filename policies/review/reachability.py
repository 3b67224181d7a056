"""Who can reach this key: every path to a party key's plaintext or to changing its policy.

A pure function over the recorded resources (the inputs the program declared, never the
generators), so a hand edit, an extra role holder or a forgotten host setting shows up. For each
party key (AWS KMS key, Azure Key Vault key, GCP Cloud KMS crypto key tagged with a party other
than `shared`, or untagged: fail closed), one entry `{key_urn, party, paths}`; each path is
`{kind, principal, condition, attested, alarmed}`:

- `attested-workload`: the release path whose condition pins measurements (AWS
  `kms:RecipientAttestation:*` compared exactly; Azure secure key release to the holder of the
  release role, with the release policy's claims; GCP a workload-identity principal set whose
  provider's attribute condition pins its value). `attested` is true only when the condition binds
  a measurement of the workload (a wildcard, a range or a CVM launch measurement / MRTD, which
  measure the paravisor and firmware, do not).
- `break-glass`: a key-policy admin statement (PutKeyPolicy) for a named role in an MFA session;
  `alarmed` when a CloudWatch metric filter on that key's ARN matches PutKeyPolicy and a metric
  alarm watches its metric.
- `key-admin`: any other principal that may change the key policy or create grants (e.g. the account
  root, which delegates to every IAM identity of the account).
- `owner` / `owner-encrypt`: owners allowed to decrypt / only to encrypt (seal; Encrypt never returns
  plaintext, so it is listed but is no path to plaintext).
- `key-policy`: any other key-policy allow of a data-plane action.
- `iam-policy`: an IAM role (or user) policy allowing kms actions on the key (or `*`) where the key
  policy delegates to the account.
- `access-key`: an IAM user policy allowing kms actions on the key (where the key policy delegates to the
  account) for a user with an active long-lived access key.
- `grant`: a declared KMS grant.
- `rbac-access-admin`: Azure "Key Vault Data Access Administrator" on the key, vault or an enclosing scope
  (resource group, subscription, management group): it can assign itself release or decrypt.
- `iam-conditional`: a GCP grant on a party key under an IAM condition, to anyone but the attestation
  principal set (whose conditional binding stays `attested-workload`, the condition in its text).
- `rbac` / `iam`: Azure role assignments on the key, vault, resource group, subscription or management group; GCP IAM
  members/bindings on the crypto key, key ring or project with a Cloud KMS (or basic) role (a GCP
  `cryptoKeyEncrypter` is `owner-encrypt`).
- `service`: a cloud service using a service-bound key on a caller's behalf (S3 through
  `kms:ViaService`, a service principal, Azure "Crypto Service Encryption User", GCP service agents).
- `operator-*`: operator paths into the host the key is released to: `operator-ssm`, `operator-ssh`,
  `operator-vm-agent`, `operator-extensions` (Run Command), `operator-extension`,
  `operator-serial-console`. On a Nitro parent instance they are `attested` when the key policy
  denies every unattested use (the operator's code on the parent gets nothing without an enclave
  attestation document with the pinned PCRs); on a CVM or a Confidential Space VM code run by the
  operator inside the guest is what gets attested, so they are not.

`failing(entry)` lists the paths that are neither attested, nor declared alarmed break-glass, nor a
service path of a service-bound key, nor seal-only.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Final, Iterable, Mapping

from components.azure.options import login_keys
from components.key_purpose import PURPOSE_TAG, is_service
from policies.review.mocks import RecordedResource, UNKNOWN, dig, unwrapped
from policies.review.tokens import canonical_type

KEY_TYPES: Final = {
    "aws:kms/key:Key": "aws",
    "azure-native:keyvault:Key": "azure",
    "gcp:kms/cryptoKey:CryptoKey": "gcp",
}
SHARED_PARTY: Final = "shared"
POLICY: Final = "ccp-key-reachability"

# Paths that never fail: attested (checked separately), service on a service-bound key, seal-only.
SEAL_ONLY: Final = "owner-encrypt"

# --- helpers -------------------------------------------------------------------------------------


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _rids(resource: RecordedResource) -> set[str]:
    """The ids a reference to this resource may carry (the mocks' id is `<name>-id`)."""
    return {str(i) for i in (resource.outputs.get("id"), f"{resource.name}-id") if i}


def _path(kind: str, principal: str, condition: str, attested: bool = False, alarmed: bool = False) -> dict[str, Any]:
    return {"kind": kind, "principal": principal, "condition": condition, "attested": attested, "alarmed": alarmed}


class _Index:
    """Recorded resources by type, built once per review (keeps the 30-party bench linear)."""

    def __init__(self, resources: Iterable[RecordedResource]):
        self.by_type: dict[str, list[RecordedResource]] = {}
        self.props: dict[str, dict[str, Any]] = {}
        for resource in resources:
            self.by_type.setdefault(canonical_type(resource.type), []).append(resource)

    def of(self, *types: str) -> list[RecordedResource]:
        return [r for t in types for r in self.by_type.get(t, [])]

    def p(self, resource: RecordedResource) -> dict[str, Any]:
        cached = self.props.get(resource.urn)
        if cached is None:
            cached = self.props[resource.urn] = unwrapped(resource)
        return cached


def key_tags(resource: RecordedResource, props: Mapping[str, Any]) -> Mapping[str, Any]:
    tags = props.get("labels" if resource.type.startswith("gcp:") else "tags")
    return tags if isinstance(tags, Mapping) else {}


# --- AWS -----------------------------------------------------------------------------------------

PLAINTEXT_ACTIONS: Final = (
    "kms:decrypt", "kms:reencryptfrom", "kms:generatedatakey", "kms:generatedatakeypair",
    "kms:derivesharedsecret",
)
POLICY_ACTIONS: Final = ("kms:putkeypolicy", "kms:creategrant", "kms:replicatekey")
ENCRYPT_ACTIONS: Final = ("kms:encrypt",)
ROOT: Final = re.compile(r"^(arn:[a-z-]+:iam::\d{12}:root|\d{12})$")
ATTESTATION_PREFIX: Final = "kms:recipientattestation:"


def _matches(pattern: str, action: str) -> bool:
    pattern = pattern.lower()
    if pattern in ("*", "kms:*"):
        return True
    if pattern.endswith("*"):
        return action.startswith(pattern[:-1])
    return pattern == action


def _granted(actions: Iterable[str], wanted: Iterable[str]) -> set[str]:
    actions = [a for a in actions if isinstance(a, str)]
    return {w for w in wanted if any(_matches(a, w) for a in actions)}


def _principals(statement: Mapping[str, Any]) -> list[tuple[str, str]]:
    principal = statement.get("Principal")
    if principal == "*":
        return [("AWS", "*")]
    if not isinstance(principal, Mapping):
        return []
    return [(kind, str(p)) for kind, values in principal.items() for p in _list(values)]


def _condition_text(condition: Any) -> str:
    return json.dumps(condition, sort_keys=True) if condition else ""


def _pinned_attestation(condition: Any) -> dict[str, str]:
    """`kms:RecipientAttestation:*` keys compared exactly (no wildcard, no IfExists) -> value."""
    pinned: dict[str, str] = {}
    if not isinstance(condition, Mapping):
        return pinned
    for operator, keys in condition.items():
        if operator not in ("StringEquals", "StringEqualsIgnoreCase") or not isinstance(keys, Mapping):
            continue
        for key, value in keys.items():
            values = _list(value)
            if (
                key.lower().startswith(ATTESTATION_PREFIX)
                and len(values) == 1
                and isinstance(values[0], str)
                and "*" not in values[0] and "?" not in values[0]
                and values[0].strip("0")
            ):
                pinned[key] = values[0]
    return pinned


def _arn_exemptions(condition: Any) -> set[str] | None:
    """Principals a Deny does not apply to (`ArnNotEquals/ArnNotLike aws:PrincipalArn`), None if all."""
    if not isinstance(condition, Mapping):
        return None
    for operator in ("ArnNotEquals", "ArnNotLike", "StringNotEquals"):
        keys = condition.get(operator)
        if isinstance(keys, Mapping) and "aws:PrincipalArn" in keys:
            return {str(v) for v in _list(keys["aws:PrincipalArn"])}
    return None


def _denies(policy: Mapping[str, Any]) -> tuple[set[str] | None, bool, set[str] | None]:
    """(unattested-use deny exemptions, PCR denies present, policy-change deny exemptions).

    An exemption set of None means no such Deny; an empty set means it applies to everyone."""
    unattested: set[str] | None = None
    pcr_denies = False
    policy_change: set[str] | None = None
    for statement in _list(policy.get("Statement")):
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Deny" or statement.get("Principal") not in (
            "*", {"AWS": "*"}
        ):
            continue
        actions = _list(statement.get("Action"))
        condition = statement.get("Condition") or {}
        null = condition.get("Null") if isinstance(condition, Mapping) else None
        exempt = _arn_exemptions(condition)
        if _granted(actions, PLAINTEXT_ACTIONS) >= {"kms:decrypt"} and isinstance(null, Mapping):
            if any(k.lower().startswith(ATTESTATION_PREFIX) and str(v).lower() == "true" for k, v in null.items()):
                unattested = exempt if exempt is not None else set()
            elif any(k.lower().startswith(ATTESTATION_PREFIX) and str(v).lower() == "false" for k, v in null.items()):
                pcr_denies = True
        if "kms:putkeypolicy" in _granted(actions, POLICY_ACTIONS) and exempt is not None:
            policy_change = exempt
    return unattested, pcr_denies, policy_change


def _has_mfa(condition: Any) -> bool:
    if not isinstance(condition, Mapping):
        return False
    flag = dig(condition, "Bool")
    if isinstance(flag, Mapping) and str(flag.get("aws:MultiFactorAuthPresent", "")).lower() == "true":
        return True
    age = condition.get("NumericLessThan") or condition.get("NumericLessThanEquals")
    return isinstance(age, Mapping) and "aws:MultiFactorAuthAge" in age


def _admin_alarmed(index: _Index, key_arn: str) -> bool:
    """A metric filter matching PutKeyPolicy on this key's ARN whose metric an alarm watches."""
    metrics: set[tuple[str, str]] = set()
    for metric_filter in index.of("aws:cloudwatch/logMetricFilter:LogMetricFilter"):
        props = index.p(metric_filter)
        pattern = str(props.get("pattern") or "")
        if "PutKeyPolicy" in pattern and key_arn and key_arn in pattern:
            transform = props.get("metricTransformation") or {}
            for t in _list(transform):
                if isinstance(t, Mapping):
                    metrics.add((str(t.get("namespace")), str(t.get("name"))))
    for alarm in index.of("aws:cloudwatch/metricAlarm:MetricAlarm"):
        props = index.p(alarm)
        if (str(props.get("namespace")), str(props.get("metricName"))) in metrics and props.get("alarmActions"):
            return True
    return False


def _role_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1] if ":role/" in arn else arn


def _aws_hosts(index: _Index, role_arn: str) -> list[tuple[RecordedResource, dict[str, Any]]]:
    """Enclave-enabled launch templates/instances whose instance profile's role is `role_arn`."""
    role = _role_name(role_arn)
    profiles = {
        str(index.p(p).get("name") or p.outputs.get("name") or p.name)
        for p in index.of("aws:iam/instanceProfile:InstanceProfile")
        if _role_name(str(index.p(p).get("role") or "")) == role
    }
    hosts = []
    for host in index.of("aws:ec2/launchTemplate:LaunchTemplate", "aws:ec2/instance:Instance"):
        props = index.p(host)
        profile = props.get("iamInstanceProfile")
        if isinstance(profile, Mapping):
            profile = profile.get("name") or profile.get("arn")
        if isinstance(profile, str) and profile.rsplit("/", 1)[-1] in profiles:
            hosts.append((host, props))
    return hosts


def _aws_paths(index: _Index, key: RecordedResource, props: Mapping[str, Any], service_bound: bool) -> list[dict[str, Any]]:
    text = props.get("policy")
    if text is None:  # KMS applies the default key policy: the account root, delegating to IAM
        return [_path("key-admin", "account root (default key policy)", "kms:* delegated to every IAM identity of the account")]
    if not isinstance(text, str) or text == UNKNOWN:
        return [_path("key-policy", "(unknown)", "the key has no known policy document")]
    policy = json.loads(text)
    key_arn = str(key.outputs.get("arn") or "")
    unattested_exempt, pcr_denies, change_exempt = _denies(policy)
    paths: list[dict[str, Any]] = []
    attested_roles: dict[str, str] = {}
    delegated: set[str] = set()
    for statement in _list(policy.get("Statement")):
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        actions = _list(statement.get("Action"))
        condition = statement.get("Condition") or {}
        via_service = isinstance(condition, Mapping) and any(
            isinstance(keys, Mapping) and "kms:ViaService" in keys for keys in condition.values()
        )
        pinned = _pinned_attestation(condition)
        for kind, principal in _principals(statement):
            plaintext = _granted(actions, PLAINTEXT_ACTIONS)
            change = _granted(actions, POLICY_ACTIONS)
            encrypt = _granted(actions, ENCRYPT_ACTIONS)
            if not pinned and unattested_exempt is not None and principal not in unattested_exempt:
                plaintext = set()  # denied without an attestation document (and with other PCRs)
            if change_exempt is not None and principal not in change_exempt:
                change = set()
            if pinned and plaintext:
                cond = ", ".join(f"{k}={v}" for k, v in sorted(pinned.items()))
                paths.append(_path("attested-workload", principal, cond, attested=True))
                attested_roles[principal] = cond
                continue
            if not (plaintext or change or encrypt):
                continue
            cond = _condition_text(condition)
            if kind == "Service" or (via_service and not change):
                paths.append(_path("service", principal, cond))
            elif change and ROOT.match(principal) is None and principal != "*" and _has_mfa(condition):
                paths.append(_path("break-glass", principal, cond, alarmed=_admin_alarmed(index, key_arn)))
            elif change:
                paths.append(_path("key-admin", principal, cond))
            elif plaintext:
                paths.append(_path("owner" if "owner" in str(statement.get("Sid", "")).lower() else "key-policy", principal, cond))
            else:
                paths.append(_path(SEAL_ONLY, principal, cond))
            if ROOT.match(principal) and (plaintext or change) and not via_service:
                delegated |= plaintext | change
    if delegated:
        paths += _aws_iam_paths(index, key_arn, delegated)
    for grant in index.of("aws:kms/grant:Grant"):
        gprops = index.p(grant)
        if str(gprops.get("keyId")) in _rids(key) | {key_arn, key_arn.rsplit("/", 1)[-1]}:
            ops = ",".join(str(o) for o in _list(gprops.get("operations")))
            paths.append(_path("grant", str(gprops.get("granteePrincipal")), f"operations {ops}"))
    guarded = unattested_exempt is not None and pcr_denies
    for role_arn, cond in attested_roles.items():
        for host, hprops in _aws_hosts(index, role_arn):
            where = f"{host.type.split(':')[-1]} {host.name}"
            gate = f"on {where}; the key requires {cond}" if guarded else f"on {where}"
            if any(
                "ssm" in str(index.p(a).get("policyArn", "")).lower()
                for a in index.of("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                if _role_name(str(index.p(a).get("role") or "")) == _role_name(role_arn)
            ):
                paths.append(_path("operator-ssm", role_arn, gate, attested=guarded))
            if hprops.get("keyName"):
                paths.append(_path("operator-ssh", f"key pair {hprops['keyName']}", gate, attested=guarded))
    return paths


def _aws_iam_paths(index: _Index, key_arn: str, delegated: set[str]) -> list[dict[str, Any]]:
    paths = []
    keyed_users = {
        str(index.p(k).get("user")) for k in index.of("aws:iam/accessKey:AccessKey")
        if str(index.p(k).get("status") or "Active") != "Inactive"
    }
    for policy in index.of("aws:iam/rolePolicy:RolePolicy", "aws:iam/userPolicy:UserPolicy"):
        props = index.p(policy)
        user = policy.type == "aws:iam/userPolicy:UserPolicy"
        try:
            document = json.loads(props.get("policy") or "{}")
        except (TypeError, ValueError):
            continue
        for statement in _list(document.get("Statement")):
            if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
                continue
            resources = [str(r) for r in _list(statement.get("Resource"))]
            if not any(r == "*" or r == key_arn or r == "arn:aws:kms:*" for r in resources):
                continue
            if not _granted(_list(statement.get("Action")), delegated):
                continue
            condition = _condition_text(statement.get("Condition"))
            if user and str(props.get("user")) in keyed_users:
                # A long-lived access key acts as the user from anywhere, without attestation or expiry.
                paths.append(_path("access-key", f"user {props.get('user')}", f"active IAM access key; {condition}"))
            else:
                paths.append(_path("iam-policy", f"{'user' if user else 'role'} {props.get('user' if user else 'role')}", condition))
    return paths


# --- Azure ---------------------------------------------------------------------------------------

RELEASE_ROLE: Final = "08bbd89e-9f13-488c-ac41-acfcb10c90ab"  # Key Vault Crypto Service Release User
ENCRYPTION_ROLE: Final = "e147488a-f6f5-4113-8e2d-b22465e65bf6"  # Key Vault Crypto Service Encryption User
# Manages role assignments on Key Vault: can grant itself release or decrypt (a path to the key's policy).
DATA_ACCESS_ADMIN_ROLE: Final = "8b54135c-b56d-4d72-a534-26097cfdc8d8"
# Claims that identify the workload when compared exactly (container group host data = CCE policy
# hash, SGX enclave/signer, a custom attestation policy's PCR claims).
WORKLOAD_CLAIMS: Final = ("x-ms-sevsnpvm-hostdata", "x-ms-sgx-mrenclave", "x-ms-sgx-mrsigner", "pcr")
# Measure the paravisor/firmware, not the guest (issue 12; reference attestation-key-release.md).
PARAVISOR_CLAIMS: Final = ("x-ms-sevsnpvm-launchmeasurement", "mrtd")


def _release_claims(props: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    data = dig(props, "properties.releasePolicy.data")
    if not isinstance(data, str) or data == UNKNOWN:
        return []
    try:
        document = json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
    except (ValueError, TypeError):
        return []
    claims: list[tuple[str, str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            if "claim" in node:
                op = next((k for k in node if k not in ("claim",)), "")
                claims.append((str(node["claim"]), op, node.get(op)))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    return claims


def _release_condition(claims: list[tuple[str, str, Any]]) -> tuple[str, bool, bool]:
    """(condition text, binds a workload measurement, pins a paravisor-only measurement)."""
    text = "; ".join(f"{c} {op} {v}" for c, op, v in claims)
    workload = any(op == "equals" and any(w in c.lower() for w in WORKLOAD_CLAIMS) for c, op, v in claims)
    paravisor = any(any(p in c.lower() for p in PARAVISOR_CLAIMS) for c, _, _ in claims)
    return text or "no release policy", workload, paravisor


def _azure_scope_matches(scope: str, key: RecordedResource, key_props: Mapping[str, Any], vault: RecordedResource | None) -> bool:
    scope = scope.rstrip("/")
    if scope in _rids(key) or (vault is not None and scope in _rids(vault)):
        return True
    lowered = scope.lower()
    key_name = str(key_props.get("keyName") or "")
    if key_name and lowered.endswith(f"/keys/{key_name.lower()}"):
        return True
    vault_name = str((vault and (unwrapped(vault).get("vaultName"))) or key_props.get("vaultName") or "")
    if vault_name and lowered.endswith(f"/vaults/{vault_name.lower()}"):
        return True
    rg = str(key_props.get("resourceGroupName") or "").lower()
    # A subscription or a management group covers every vault below it.
    if re.fullmatch(r"/subscriptions/[^/]+|/providers/microsoft\.management/managementgroups/[^/]+", lowered):
        return True
    return bool(rg) and re.fullmatch(rf"/subscriptions/[^/]+/resourcegroups/{re.escape(rg)}", lowered) is not None


def _azure_vms_of(index: _Index, principal_id: str) -> list[tuple[RecordedResource, dict[str, Any]]]:
    identity_ids = {
        rid for i in index.of("azure-native:managedidentity:UserAssignedIdentity")
        if i.outputs.get("principalId") == principal_id for rid in _rids(i)
    }
    vms = []
    for vm in index.of("azure-native:compute:VirtualMachine"):
        props = index.p(vm)
        assigned = dig(props, "identity.userAssignedIdentities")
        ids = set(assigned) if isinstance(assigned, (list, Mapping)) else set()
        if ids & identity_ids or dig(vm.outputs, "identity.principalId") == principal_id:
            vms.append((vm, props))
    return vms


def _azure_operator_paths(index: _Index, vm: RecordedResource, props: Mapping[str, Any]) -> list[dict[str, Any]]:
    where = f"on VirtualMachine {vm.name}"
    os_profile = props.get("osProfile") or {}
    linux = os_profile.get("linuxConfiguration") or {}
    windows = os_profile.get("windowsConfiguration") or {}
    paths = []
    agent = linux.get("provisionVMAgent", windows.get("provisionVMAgent", True)) if os_profile else False
    if agent is not False:
        paths.append(_path("operator-vm-agent", "subscription operator", f"{where}: osProfile provisionVMAgent={agent}"))
    if os_profile and os_profile.get("allowExtensionOperations", True) is not False:
        paths.append(_path("operator-extensions", "subscription operator", f"{where}: extensions and Run Command allowed"))
    # ARM requires a credential on a Linux VM: ccp's default key has no private half (it was discarded when
    # generated, components/azure/options.py), so it opens no login; any other key or a password does.
    keys = login_keys(dig(linux, "ssh.publicKeys"))
    if keys or os_profile.get("adminPassword"):
        login = f"{where}: admin {os_profile.get('adminUsername')} with " + (
            f"{len(keys)} SSH key(s)" if keys else "a password"
        )
        paths.append(_path("operator-ssh", str(os_profile.get("adminUsername") or "admin"), login))
    if dig(props, "diagnosticsProfile.bootDiagnostics.enabled") is True:
        paths.append(_path("operator-serial-console", "subscription operator", f"{where}: boot diagnostics (serial console)"))
    vm_name = str(props.get("vmName") or vm.name)
    for extension in index.of("azure-native:compute:VirtualMachineExtension"):
        eprops = index.p(extension)
        if str(eprops.get("vmName")) in {vm_name, vm.name} | _rids(vm):
            paths.append(_path("operator-extension", "subscription operator", f"{where}: extension {extension.name}"))
    return paths


def _azure_paths(index: _Index, key: RecordedResource, props: Mapping[str, Any], service_bound: bool) -> list[dict[str, Any]]:
    vault_name = str(props.get("vaultName") or "")
    vault = next(
        (v for v in index.of("azure-native:keyvault:Vault") if vault_name in (v.name, str(index.p(v).get("vaultName")))),
        None,
    )
    condition, workload, paravisor = _release_condition(_release_claims(props))
    paths: list[dict[str, Any]] = []
    for assignment in index.of("azure-native:authorization:RoleAssignment"):
        aprops = index.p(assignment)
        if not _azure_scope_matches(str(aprops.get("scope") or ""), key, props, vault):
            continue
        role = str(aprops.get("roleDefinitionId") or "").rsplit("/", 1)[-1].lower()
        principal = str(aprops.get("principalId"))
        if role == RELEASE_ROLE and dig(props, "properties.releasePolicy.data"):
            note = " (paravisor/firmware measurement only)" if paravisor and not workload else ""
            paths.append(_path("attested-workload", principal, condition + note, attested=workload))
            for vm, vm_props in _azure_vms_of(index, principal):
                paths += _azure_operator_paths(index, vm, vm_props)
        elif role == ENCRYPTION_ROLE and service_bound:
            paths.append(_path("service", principal, f"role {role} at {aprops.get('scope')}"))
        elif role == DATA_ACCESS_ADMIN_ROLE:
            paths.append(_path("rbac-access-admin", principal, f"Key Vault Data Access Administrator at {aprops.get('scope')}: "
                                                            "can assign itself the roles that decrypt or release the key"))
        else:
            paths.append(_path("rbac", principal, f"role {role} at {aprops.get('scope')}"))
    return paths


# --- GCP -----------------------------------------------------------------------------------------

SERVICE_AGENT: Final = re.compile(r"^serviceAccount:(service-\d+@|.*@gcp-sa-)[\w.-]*\.?iam\.gserviceaccount\.com$")
# Roles whose permissions return no plaintext: `cloudkms.cryptoKeyEncrypter` is encrypt only
# (https://cloud.google.com/kms/docs/reference/permissions-and-roles#predefined_roles).
ENCRYPT_ONLY_ROLES: Final = frozenset({"roles/cloudkms.cryptoKeyEncrypter"})
KEY_ROLES: Final = re.compile(r"^roles/(cloudkms\.|owner$|editor$)|^projects/.+/roles/|^organizations/.+/roles/")


def _gcp_members(index: _Index, types: tuple[str, ...], field: str, target: str) -> list[tuple[str, str, str]]:
    """(role, member, IAM condition expression or "") of every grant on `target`."""
    found = []
    for resource in index.of(*types):
        props = index.p(resource)
        if str(props.get(field) or "") != target:
            continue
        if resource.type.endswith("IAMPolicy"):
            try:
                bindings = json.loads(props.get("policyData") or "{}").get("bindings", [])
            except (TypeError, ValueError):
                continue
            found += [(str(b.get("role")), str(m), _iam_condition(b.get("condition")))
                      for b in bindings for m in _list(b.get("members"))]
        else:
            condition = _iam_condition(props.get("condition"))
            found += [(str(props.get("role")), str(m), condition) for m in _list(props.get("member")) + _list(props.get("members"))]
    return found


def _iam_condition(condition: Any) -> str:
    if not condition:
        return ""
    return str(condition.get("expression") or condition) if isinstance(condition, Mapping) else str(condition)


def _gcp_paths(index: _Index, key: RecordedResource, props: Mapping[str, Any], service_bound: bool) -> list[dict[str, Any]]:
    ring = str(props.get("keyRing") or "")
    key_id = f"{ring}/cryptoKeys/{props.get('name')}"
    project_match = re.match(r"projects/([^/]+)/", ring)
    project = project_match.group(1) if project_match else ""
    members = [("crypto key", m) for m in _gcp_members(
        index, ("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember", "gcp:kms/cryptoKeyIAMBinding:CryptoKeyIAMBinding",
                "gcp:kms/cryptoKeyIAMPolicy:CryptoKeyIAMPolicy"), "cryptoKeyId", key_id)]
    members += [("key ring", m) for m in _gcp_members(
        index, ("gcp:kms/keyRingIAMMember:KeyRingIAMMember", "gcp:kms/keyRingIAMBinding:KeyRingIAMBinding",
                "gcp:kms/keyRingIAMPolicy:KeyRingIAMPolicy"), "keyRingId", ring)]
    members += [("project", m) for m in _gcp_members(
        index, ("gcp:projects/iAMMember:IAMMember", "gcp:projects/iAMBinding:IAMBinding",
                "gcp:projects/iAMPolicy:IAMPolicy"), "project", project)]
    paths: list[dict[str, Any]] = []
    attested_digests: list[str] = []
    for level, (role, member, iam_condition) in members:
        if not KEY_ROLES.match(role):
            continue
        where = f"{role} on the {level}"
        if iam_condition:
            where += f" under IAM condition {iam_condition}"
        pool = re.search(r"/workloadIdentityPools/([^/]+)/(attribute\.[\w]+)/(.+)$", member)
        if pool:
            conditions = [
                str(index.p(p).get("attributeCondition") or "")
                for p in index.of("gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider")
                if index.p(p).get("workloadIdentityPoolId") == pool.group(1)
            ]
            value = pool.group(3)
            attested = bool(conditions) and all(f"'{value}'" in c or f'"{value}"' in c for c in conditions)
            if attested:
                attested_digests.append(value)
            paths.append(_path("attested-workload", member, f"{where}; WIF condition: " + " | ".join(conditions), attested=attested))
        elif iam_condition and not service_bound:
            # A conditional grant on a party key (the condition may widen or narrow who reaches it).
            paths.append(_path("iam-conditional", member, where))
        elif service_bound and SERVICE_AGENT.match(member):
            paths.append(_path("service", member, where))
        elif role in ENCRYPT_ONLY_ROLES:
            paths.append(_path(SEAL_ONLY, member, where))
        else:
            paths.append(_path("iam", member, where))
    for digest in attested_digests:
        for instance in index.of("gcp:compute/instance:Instance"):
            iprops = index.p(instance)
            metadata = iprops.get("metadata") or {}
            if digest not in str(metadata.get("tee-image-reference") or ""):
                continue
            where = f"on Instance {instance.name}"
            image = str(dig(iprops, "bootDisk.initializeParams.image") or "")
            if str(metadata.get("serial-port-enable", "")).lower() in ("true", "1"):
                paths.append(_path("operator-serial-console", "project operator", f"{where}: serial-port-enable"))
            debug_or_other = "confidential-space-debug" in image or "confidential-space" not in image
            if metadata.get("ssh-keys") or (
                debug_or_other and str(metadata.get("enable-oslogin", "")).lower() == "true"
            ):
                paths.append(_path("operator-ssh", "project operator", f"{where}: SSH ({image or 'unknown image'})"))
    return paths


# --- entry points --------------------------------------------------------------------------------

_CLOUD_PATHS: Final = {"aws": _aws_paths, "azure": _azure_paths, "gcp": _gcp_paths}


def reachability(resources: Iterable[RecordedResource]) -> list[dict[str, Any]]:
    """`[{key_urn, party, paths: [{kind, principal, condition, attested, alarmed}]}]` for every party key."""
    index = _Index(resources)
    entries = []
    for type_, cloud in KEY_TYPES.items():
        for key in index.of(type_):
            props = index.p(key)
            tags = key_tags(key, props)
            party = tags.get("party")
            if party == SHARED_PARTY:
                continue
            service_bound = is_service(tags.get(PURPOSE_TAG))
            paths = _CLOUD_PATHS[cloud](index, key, props, service_bound)
            entries.append({"key_urn": key.urn, "party": party, "paths": sorted(paths, key=_path_order)})
    # The mocks register resources concurrently, so recording order varies between runs: sort, so that
    # the report (and a pull request's diff of it) is stable.
    return sorted(entries, key=lambda e: (str(e["party"]), e["key_urn"]))


def _path_order(path: dict[str, Any]) -> tuple[bool, str, str, str]:
    """The attested workload first, then by kind, principal and condition."""
    return (path["kind"] != "attested-workload", path["kind"], path["principal"], path["condition"])


def service_bound(resources: Iterable[RecordedResource]) -> set[str]:
    return {
        r.urn for r in resources
        if canonical_type(r.type) in KEY_TYPES and is_service(key_tags(r, unwrapped(r)).get(PURPOSE_TAG))
    }


def failing(entry: Mapping[str, Any], service_keys: set[str]) -> list[dict[str, Any]]:
    """Paths other than the attested workload, declared alarmed break-glass, a service-bound key's
    service, or seal-only."""
    bad = []
    for path in entry["paths"]:
        if path["attested"] or path["kind"] == SEAL_ONLY:
            continue
        if path["kind"] == "break-glass" and path["alarmed"]:
            continue
        if path["kind"] == "service" and entry["key_urn"] in service_keys:
            continue
        bad.append(path)
    return bad


def markdown(entries: list[dict[str, Any]]) -> str:
    lines = ["## Who can reach this key", ""]
    if not entries:
        return "\n".join(lines + ["No party key.", ""])
    lines += [
        "| party | key | kind | principal | condition | attested | alarmed |",
        "|---|---|---|---|---|---|---|",
    ]
    for entry in entries:
        key = entry["key_urn"].split("::")[-1]
        if not entry["paths"]:
            lines.append(f"| {entry['party']} | `{key}` | (none) | | | | |")
        for p in entry["paths"]:
            cells = [
                str(entry["party"]), f"`{key}`", p["kind"], f"`{p['principal']}`",
                _escape(p["condition"]), "yes" if p["attested"] else "**no**", "yes" if p["alarmed"] else "no",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 300 else text[:297] + "..."
